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
#include "shoal/keys.h"
#include "shoal/knownhosts.h"
#include "shoal/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_uv_conn shoal_uv_conn;

/* Caps how many connections of one loop talk to ssh-agent at once (see
 * shoal_uv_options.agent_limiter). NOT thread-safe, by design: use one
 * limiter per loop, only from that loop's thread. */
typedef struct shoal_uv_limiter shoal_uv_limiter;

/* max >= 1: connections allowed to hold an agent connection at once. */
SHOAL_EXTERN int shoal_uv_limiter_new(unsigned max, shoal_uv_limiter **out);
/* Call only once every connection that used it has reported on_closed
 * (connections hold no slot and are no longer queued after that). */
SHOAL_EXTERN void shoal_uv_limiter_free(shoal_uv_limiter *l);
/* Slots held now; *waiting (may be NULL) gets the number of queued connections. */
SHOAL_EXTERN unsigned shoal_uv_limiter_in_use(const shoal_uv_limiter *l, unsigned *waiting);

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
    size_t size;                      /* sizeof(shoal_uv_options): set by shoal_uv_options_init() (docs/API.md) */
    const char *host;                 /* name or address; "[v6]" brackets allowed */
    unsigned port;                    /* 0 = 22 */
    /* Required: user, algorithms, rekey, keepalive (copied by shoal_uv_conn_new).
     * A pointer, not a member, so each struct grows on its own (docs/API.md). */
    const shoal_client_config *ssh;
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
    /* Shared state for programs that open many connections (fan-out). All
     * three are optional; zeroed they change nothing. */
    /* Host keys are looked up in (and accepted keys added to) this database
     * instead of reading the files: known_hosts then only names files in
     * messages. Thread-safe, may serve several loops; must outlive the
     * connection. Policies work as with files. */
    shoal_kh_db *known_hosts_db;
    /* Already-loaded (decrypted) private keys, offered after the agent's
     * keys and before identity_files. The connection takes a reference on
     * each (shoal_key_ref) for its lifetime and drops it when freed, so it
     * never frees a key the caller still holds; keys without a private
     * part are skipped. The same keys may be used by connections on several
     * threads at once. */
    shoal_key *const *keys;
    unsigned n_keys;
    /* When set, the connection waits for a slot of this limiter before it
     * connects to agent_socket, and gives the slot back as soon as its
     * agent connection is closed (after authentication, when the agent
     * fails, or when the connection ends, also while still waiting). Time
     * spent waiting counts against no deadline (holders release within
     * their own deadlines); stages are timed from the moment the slot is
     * granted. Must belong to this connection's loop. */
    shoal_uv_limiter *agent_limiter;
} shoal_uv_options;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_uv_options_init(shoal_uv_options *x);

typedef struct shoal_uv_callbacks {
    size_t size; /* sizeof(shoal_uv_callbacks): set by shoal_uv_callbacks_init() (docs/API.md) */
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
    /* The key exchange is done and user authentication has begun (once).
     * A channel opened now (shoal_child_spawn) goes out with the final
     * authentication request when no other attempt could follow, a round
     * trip sooner than from on_ready (see shoal_channel_open_session); if
     * authentication fails, it fails with the connection's error. May be
     * NULL. */
    void (*on_authenticating)(shoal_uv_conn *c, void *ud);
} shoal_uv_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_uv_callbacks_init(shoal_uv_callbacks *x);

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
