/* Private state of a libuv-driven client connection. */
#ifndef SHOAL_UV_CONN_IMPL_H
#define SHOAL_UV_CONN_IMPL_H

#include "shoal/uv.h"
#include "uv/pump.h"
#include "wire/buf.h"

typedef struct agent_client agent_client;

/* limiter.c: a place in a shoal_uv_limiter (waiting or holding a slot). */
enum { SHOAL_LIM_NONE = 0, SHOAL_LIM_WAITING, SHOAL_LIM_HOLDING };
typedef struct shoal__lim_node {
    struct shoal__lim_node *prev, *next;
    shoal_uv_limiter *lim;
    int state;
    void (*granted)(struct shoal__lim_node *n); /* a waiter got its slot: schedule, do not run */
} shoal__lim_node;
/* 1: holding a slot now; 0: queued, granted() is called when one frees up. */
int shoal__lim_acquire(shoal_uv_limiter *l, shoal__lim_node *n, void (*granted)(shoal__lim_node *n));
/* Leaves the queue or gives the slot back; a no-op the second time. */
void shoal__lim_release(shoal__lim_node *n);

struct shoal_uv_conn {
    uv_loop_t *loop;
    shoal_uv_options opt;    /* our copy; opt.ssh points at ssh */
    shoal_client_config ssh; /* our copy of *opt.ssh */
    shoal_uv_callbacks cb;
    void *ud;
    shoal_session *s;

    /* owned copies of option strings */
    char *host, *user, *alias, *agent_path;
    char **kh_files, **id_files;
    char *kex, *hka, *ciphers, *macs;

    uv_getaddrinfo_t gai;
    struct addrinfo *ai, *ai_cur;
    int ai_numeric; /* ai was built here for an address literal (free(), not uv_freeaddrinfo) */
    shoal_pump pump;          /* the socket (uv/pump.c) */
    uv_connect_t creq;
    uv_timer_t timer;
    uint64_t timer_due; /* loop time the armed deadline timer fires; UINT64_MAX when stopped */
    int tcp_open, timer_open, handles_pending;
    int resolving, connecting, started;
    int retry_connect;        /* try the next address once the handle is closed */

    shoal_uv_stage stage;
    uint64_t stage_deadline;
    int ready_reported, closed_reported, freeing, closing_handles;
    int err;
    char errmsg[1600];
    char detail[1024]; /* a better message from the driver (host key, timeout) */
    char name[300];

    char **ident_paths; /* per session identity: key file needing a passphrase */
    unsigned n_ident_paths;
    agent_client *agent;
    int *agent_ident; /* per session identity: agent key index or -1 */
    int agent_wake;   /* an agent limiter slot was granted: connect from the timer */

    shoal_key **keys; /* preloaded keys (opt.keys), one reference each */
};

/* hostkeys.c */
int shoal__uv_hostkey_check(shoal_uv_conn *c, const shoal_hostkey_info *info);
char *shoal__uv_hostkey_order(shoal_uv_conn *c);

/* identities.c */
int shoal__uv_add_file_identities(shoal_uv_conn *c);
int shoal__uv_sign(shoal_uv_conn *c, unsigned ident, const char *sigalg, const uint8_t *data, size_t len);
void shoal__uv_identities_free(shoal_uv_conn *c);

/* agent.c */
int shoal__uv_agent_start(shoal_uv_conn *c, void (*done)(shoal_uv_conn *c));
int shoal__uv_agent_sign(shoal_uv_conn *c, unsigned ident, const uint8_t *blob, size_t blob_len, const char *sigalg,
                         const uint8_t *data, size_t len);
void shoal__uv_agent_free(shoal_uv_conn *c);
/* The limiter slot granted earlier (shoal__uv_agent_wake): connect now. */
void shoal__uv_agent_granted(shoal_uv_conn *c);

/* conn.c */
void shoal__uv_fail(shoal_uv_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void shoal__uv_log(shoal_uv_conn *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void shoal__uv_begin_connect(shoal_uv_conn *c);
/* Runs shoal__uv_agent_granted(c) from the connection's timer, soon. */
void shoal__uv_agent_wake(shoal_uv_conn *c);

#endif
