/* shoal serve: shared state of the server command (serve*.c). */
#ifndef SHOAL_APP_SERVE_H
#define SHOAL_APP_SERVE_H

#include <sys/types.h>

#include "shoal/authkeys.h"
#include "shoal/proc.h"
#include "shoal/serveconfig.h"
#include "shoal/uv_server.h"

typedef struct serve_ctx {
    shoal_serve_config *cfg;
    const shoal_serve_global *g;
    shoal_uv_server *srv;
    shoal_key **host_keys;
    unsigned n_host_keys;
    int is_root;
    uid_t self_uid;
    char self_user[64];
    int log_level;
    char *banner_text;
} serve_ctx;

/* Per connection (the session's app data). */
typedef struct serve_conn {
    serve_ctx *ctx;
    shoal_uv_sconn *sconn;
    char user[257];          /* as the client sent it (at most 256 bytes: the core's limit) */
    int have_user;           /* user and effective settings resolved */
    int user_ok;             /* the account exists and may log in */
    int invalid_logged;      /* "invalid user" was logged for this name */
    shoal_serve_effective eff;
    uid_t uid;
    gid_t gid;
    char home[512];
    char shell[256];
    unsigned done_methods;   /* bit per shoal_serve_method that succeeded */
    shoal_authkey_opts key_opts; /* options of the key that logged in */
    int have_key_opts;
    int authenticated;
    void *akc;               /* AuthorizedKeysCommand run in flight (serve_auth.c) */
    void *gateway;           /* upstream connection (serve_gateway.c) */
} serve_conn;

/* serve_auth.c */
int serve_auth(shoal_session *s, const shoal_auth_request *req, void *ud);
void serve_conn_free(serve_conn *sc);

/* serve_session.c */
int serve_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud);

/* serve.c */
void serve_log(serve_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
