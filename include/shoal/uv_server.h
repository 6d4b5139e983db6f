/* shoal: the libuv server driver. Listens on any number of addresses (or
 * adopts listening sockets handed over by a previous process), accepts
 * connections, runs one sans-I/O server session per connection on the loop,
 * and enforces the login grace time, the caps on unauthenticated connections
 * (MaxStartups, PerSourceMaxStartups), per-source penalties
 * (PerSourcePenalties) and client keepalives. Connections refused by those
 * are logged at most a few per 10 s, with a summary line per interval
 * ("beginning MaxStartups throttling", "throttling: N connections dropped
 * in the last 10s ...", "exited MaxStartups throttling after Ns, N
 * connections dropped"): one source cannot fill the log.
 *
 * The session callbacks (server.h) are the application's; each connection's
 * session has the shoal_uv_sconn as its user data (shoal_uv_sconn_of). */
#ifndef SHOAL_UV_SERVER_H
#define SHOAL_UV_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal/server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_uv_server shoal_uv_server;
typedef struct shoal_uv_sconn shoal_uv_sconn;

/* sshd's PerSourcePenalties (OpenSSH 9.8): a source block (see
 * per_source_netblock4/6) accrues refusal time each time one of its
 * connections ends unauthenticated; while it holds at least min_s, new
 * connections from it are refused at once (open ones go on). Times in
 * seconds; a kind with 0 is not charged. */
typedef struct shoal_uv_penalties {
    size_t size; /* sizeof(shoal_uv_penalties): set by shoal_uv_penalties_init() (docs/API.md) */
    int enabled;
    unsigned authfail_s;         /* made authentication attempts, none succeeded */
    unsigned noauth_s;           /* ended without attempting authentication */
    unsigned grace_exceeded_s;   /* closed by the login grace time */
    unsigned min_s, max_s;       /* refusals start at min_s; accrued time is capped at max_s */
    unsigned max_sources4, max_sources6; /* blocks tracked per family; 0 = 65536 */
    int overflow_deny_all4, overflow_deny_all6; /* full table: refuse all (1) or forget the
                                                   penalty closest to expiry (0, "permissive") */
    const char *exempt;          /* PerSourcePenaltyExemptList: addresses, CIDR blocks and
                                    wildcards, comma-separated; NULL = none */
} shoal_uv_penalties;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_uv_penalties_init(shoal_uv_penalties *x);

typedef struct shoal_uv_server_options {
    size_t size; /* sizeof(shoal_uv_server_options): set by shoal_uv_server_options_init() (docs/API.md) */
    const char *const *listen;   /* "addr", "addr:port", "[v6]:port"; none = 0.0.0.0 and :: */
    unsigned n_listen;
    unsigned port;               /* for entries without a port; 0 = 22 */
    const int *inherit_fds;      /* listening sockets to adopt instead (graceful restart) */
    unsigned n_inherit_fds;
    const shoal_server_config *ssh; /* required (copied; its host keys stay borrowed) */
    uint64_t login_grace_ms;     /* unauthenticated connections are closed after this; 0 = 120 s */
    unsigned max_startups;       /* unauthenticated connections at once; more are dropped; 0 = 100 */
    unsigned max_startups_begin; /* sshd's MaxStartups start:rate:full: from `begin` on, a new */
    unsigned max_startups_rate;  /* connection is dropped with a probability rising from rate% */
                                 /* to 100% at max_startups (begin 0 = hard cap only) */
    unsigned per_source_max_startups; /* PerSourceMaxStartups: unauthenticated connections from
                                         one source block at once; 0 = no limit */
    unsigned per_source_netblock4;    /* PerSourceNetBlockSize: prefix lengths making a source */
    unsigned per_source_netblock6;    /* block; 0 = 32 and 128 (each address on its own) */
    const shoal_uv_penalties *penalties; /* NULL = no PerSourcePenalties (copied) */
    int log_level;
} shoal_uv_server_options;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_uv_server_options_init(shoal_uv_server_options *x);

typedef struct shoal_uv_server_callbacks {
    size_t size; /* sizeof(shoal_uv_server_callbacks): set by shoal_uv_server_callbacks_init() (docs/API.md) */
    /* A client connected; its session exists but has not started: attach
     * data with shoal_session_set_app_data(). Return 0 to serve it, negative
     * to drop it. May be NULL. */
    int (*on_connection)(shoal_uv_server *srv, shoal_uv_sconn *c, void *ud);
    /* The session callbacks; their ud argument is the shoal_uv_sconn. */
    const shoal_server_callbacks *ssh; /* required (copied) */
    /* The connection is gone and its resources about to be freed. May be NULL. */
    void (*on_sconn_free)(shoal_uv_sconn *c, void *ud);
    /* Server-level log lines (listen, accept, drops). They may carry peer
     * text (addresses only today; session messages through ssh.log carry
     * user names and more): escape with shoal_strvis() before writing them
     * to a log or terminal. May be NULL. */
    void (*log)(shoal_uv_server *srv, int level, const char *message, void *ud);
} shoal_uv_server_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_uv_server_callbacks_init(shoal_uv_server_callbacks *x);

SHOAL_EXTERN int shoal_uv_server_new(uv_loop_t *loop, const shoal_uv_server_options *opt,
                                     const shoal_uv_server_callbacks *cb, void *ud, shoal_uv_server **out);
/* Binds and listens (or adopts the inherited sockets). The message names the
 * address that failed. */
SHOAL_EXTERN int shoal_uv_server_listen(shoal_uv_server *srv, char *err, size_t errsz);
/* The listening sockets' descriptors (for handing over at a restart). */
SHOAL_EXTERN unsigned shoal_uv_server_fds(const shoal_uv_server *srv, int *fds, unsigned max);
/* The port the first listener is bound to (useful with port 0). */
SHOAL_EXTERN unsigned shoal_uv_server_bound_port(const shoal_uv_server *srv);
/* Stops accepting; running connections go on. */
SHOAL_EXTERN void shoal_uv_server_stop(shoal_uv_server *srv);
SHOAL_EXTERN unsigned shoal_uv_server_connections(const shoal_uv_server *srv);
/* Closes listeners and every connection; memory is released asynchronously. */
SHOAL_EXTERN void shoal_uv_server_free(shoal_uv_server *srv);
SHOAL_EXTERN void *shoal_uv_server_userdata(const shoal_uv_server *srv);
SHOAL_EXTERN uv_loop_t *shoal_uv_server_loop(const shoal_uv_server *srv);

/* ---- one connection ---- */

SHOAL_EXTERN shoal_uv_sconn *shoal_uv_sconn_of(const shoal_session *s);
SHOAL_EXTERN shoal_session *shoal_uv_sconn_session(const shoal_uv_sconn *c);
SHOAL_EXTERN shoal_uv_server *shoal_uv_sconn_server(const shoal_uv_sconn *c);
/* "address:port" of the client ("[v6]:port" for IPv6), and the bare address. */
SHOAL_EXTERN const char *shoal_uv_sconn_peer(const shoal_uv_sconn *c);
SHOAL_EXTERN const char *shoal_uv_sconn_address(const shoal_uv_sconn *c);
/* Our side of the connection: address and (in *port) port. */
SHOAL_EXTERN const char *shoal_uv_sconn_local_address(const shoal_uv_sconn *c, unsigned *port);
/* Sends what the session queued (after using the session or channel API
 * outside the driver's callbacks). */
SHOAL_EXTERN void shoal_uv_sconn_flush(shoal_uv_sconn *c);
SHOAL_EXTERN void shoal_uv_sconn_close(shoal_uv_sconn *c, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
