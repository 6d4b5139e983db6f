/* shoal: the libuv driver. Runs any number of client sessions on one
 * uv_loop_t: name resolution (IPv4 and IPv6), TCP with TCP_NODELAY, the
 * session's byte pump, a deadline for every phase, known_hosts checking,
 * ssh-agent and key-file identities.
 *
 * Lifecycle (as libuv handles): shoal_uv_conn_new() then _start(); the
 * on_closed callback is called exactly once; shoal_uv_conn_free() may be
 * called from it or later and releases the handles asynchronously. */
#ifndef SHOAL_UV_H
#define SHOAL_UV_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal/channel.h"
#include "shoal/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_uv_conn shoal_uv_conn;

typedef enum shoal_hostkey_policy {
    SHOAL_HOSTKEY_STRICT = 0,  /* StrictHostKeyChecking yes: unknown keys fail */
    SHOAL_HOSTKEY_ACCEPT_NEW,  /* accept-new: unknown keys are added, changed keys fail */
    SHOAL_HOSTKEY_OFF,         /* no: unknown keys are added, changed keys still fail */
    SHOAL_HOSTKEY_ASK,         /* ask: confirm_hostkey decides on unknown keys (no callback = refuse) */
} shoal_hostkey_policy;

/* Which phase failed, for classification (timeouts name it too). */
typedef enum shoal_uv_stage {
    SHOAL_STAGE_RESOLVE = 0,
    SHOAL_STAGE_CONNECT,
    SHOAL_STAGE_BANNER,
    SHOAL_STAGE_KEX,
    SHOAL_STAGE_AUTH,
    SHOAL_STAGE_READY,
} shoal_uv_stage;

SHOAL_EXTERN const char *shoal_uv_stage_name(shoal_uv_stage st);

typedef struct shoal_uv_options {
    const char *host;                 /* name or address; "[v6]" brackets allowed */
    unsigned port;                    /* 0 = 22 */
    shoal_client_config ssh;          /* user, algorithms, rekey, keepalive */
    const char *const *known_hosts;   /* files; the first one receives new keys */
    unsigned n_known_hosts;
    const char *host_key_alias;       /* name looked up in known_hosts instead of host */
    shoal_hostkey_policy hostkey_policy;
    int hash_known_hosts;             /* write new entries hashed */
    const char *agent_socket;         /* SSH_AUTH_SOCK, or NULL */
    const char *const *identity_files;
    unsigned n_identity_files;
    uint64_t connect_timeout_ms;      /* 0 = 30 s */
    uint64_t banner_timeout_ms;       /* 0 = 30 s */
    uint64_t kex_timeout_ms;          /* 0 = 30 s */
    uint64_t auth_timeout_ms;         /* 0 = 60 s */
    int log_level;
} shoal_uv_options;

typedef struct shoal_uv_callbacks {
    /* Authenticated: open channels now. */
    void (*on_ready)(shoal_uv_conn *c, void *ud);
    /* Ended (err 0 = orderly). message names the stage and host. Once. */
    void (*on_closed)(shoal_uv_conn *c, int err, const char *message, void *ud);
    /* Passphrase for an encrypted key file: fill buf (NUL-terminated) and
     * return 0, or return an error to skip the key. May be NULL. */
    int (*passphrase)(shoal_uv_conn *c, const char *path, char *buf, size_t bufsz, void *ud);
    /* Password for user@host: fill buf and return 0, or an error to skip. */
    int (*password)(shoal_uv_conn *c, const char *user, char *buf, size_t bufsz, void *ud);
    /* Keyboard-interactive: set responses[i] (malloc'd, freed by the
     * driver) and return 0, or an error to skip. */
    int (*kbdint)(shoal_uv_conn *c, const shoal_kbdint_request *req, char **responses, void *ud);
    void (*banner)(shoal_uv_conn *c, const char *text, void *ud);
    void (*log)(shoal_uv_conn *c, int level, const char *message, void *ud);
    /* SHOAL_HOSTKEY_ASK: an unknown host key; return 1 to accept (it is then
     * added to the first known_hosts file). May be NULL. */
    int (*confirm_hostkey)(shoal_uv_conn *c, const char *host, const char *keytype, const char *fingerprint,
                           void *ud);
} shoal_uv_callbacks;

SHOAL_EXTERN int shoal_uv_conn_new(uv_loop_t *loop, const shoal_uv_options *opt, const shoal_uv_callbacks *cb,
                                   void *ud, shoal_uv_conn **out);
SHOAL_EXTERN int shoal_uv_conn_start(shoal_uv_conn *c);
/* Sends whatever the session has queued (call after using the session or
 * channel API outside the driver's own callbacks). */
SHOAL_EXTERN void shoal_uv_conn_flush(shoal_uv_conn *c);
/* Orderly disconnect; on_closed follows. */
SHOAL_EXTERN void shoal_uv_conn_close(shoal_uv_conn *c);
SHOAL_EXTERN void shoal_uv_conn_free(shoal_uv_conn *c);

SHOAL_EXTERN shoal_session *shoal_uv_conn_session(shoal_uv_conn *c);
SHOAL_EXTERN void *shoal_uv_conn_userdata(const shoal_uv_conn *c);
SHOAL_EXTERN uv_loop_t *shoal_uv_conn_loop(const shoal_uv_conn *c);
/* "host:port" as given. */
SHOAL_EXTERN const char *shoal_uv_conn_name(const shoal_uv_conn *c);
SHOAL_EXTERN shoal_uv_stage shoal_uv_conn_stage(const shoal_uv_conn *c);

/* Splits "[user@]host[:port]" / "[v6]:port" into parts (host without
 * brackets). user and port are left unchanged when absent. */
SHOAL_EXTERN int shoal_parse_destination(const char *dest, char *user, size_t usersz, char *host, size_t hostsz,
                                         unsigned *port);

#ifdef __cplusplus
}
#endif
#endif
