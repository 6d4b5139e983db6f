/* The server engine's shared state (src/serve/serve*.c): the server and
 * one connection. Not part of any interface outside src/serve; programs use
 * include/shoal/serve.h. */
#ifndef SHOAL_SERVE_IMPL_H
#define SHOAL_SERVE_IMPL_H

#include <sys/types.h>

#include "shoal/authkeys.h"
#include "shoal/proc.h"
#include "shoal/serve.h"
#include "shoal/serveconfig.h"
#include "shoal/uv_server.h"

typedef struct shoal_serve serve_ctx;
typedef struct shoal_serve_conn serve_conn;

struct shoal_serve {
    const shoal_serve_config *cfg;
    const shoal_serve_global *g;
    uv_loop_t *loop;
    shoal_uv_server *srv;
    shoal_serve_callbacks cb;
    void *ud;
    shoal_key **host_keys;
    unsigned n_host_keys;
    int is_root;
    uid_t self_uid;
    char self_user[64];
    int log_level;
    char *banner_text;
    char **listen_specs;
    unsigned n_listen;
    int *inherit_fds;
    unsigned n_inherit_fds;
};

/* Per connection (the session's app data). */
struct shoal_serve_conn {
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
};

/* serve_auth.c */
int serve_auth(shoal_session *s, const shoal_auth_request *req, void *ud);
void serve_conn_free(serve_conn *sc);

/* serve_session.c */
int serve_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud);

/* serve_engine.c */
void serve_log(serve_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
