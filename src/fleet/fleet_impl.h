/* Private structures of the fan-out engine (fleet.h). */
#ifndef SHOAL_APP_FLEET_IMPL_H
#define SHOAL_APP_FLEET_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "shoal/fleet.h"
#include "ratelimit.h"

/* A request (shoal_fleet_request_*): set by the caller before its first
 * submit, then read by the workers without a lock (stop and refs are
 * atomic). */
struct shoal_fleet_request {
    atomic_int refs;
    atomic_int stop;            /* SHOAL_FLEET_RUNNING or a SHOAL_FLEET_STOP_* reason */
    shoal_fleet_kind kind;
    char *command;              /* SHOAL_FLEET_EXEC */
    shoal_fleet_source *source;       /* SHOAL_FLEET_UPLOAD: shared, read once */
    char *target;               /* SHOAL_FLEET_UPLOAD: remote path */
    uint32_t mode;              /* SHOAL_FLEET_UPLOAD: permission bits when mode_given */
    int mode_given;             /* SHOAL_FLEET_UPLOAD: else an existing target keeps its mode,
                                   a new one gets the source's */
    int inplace;                /* SHOAL_FLEET_UPLOAD: write the target itself (follows symlinks,
                                   keeps its inode, owner and mode; not atomic) */
    int clean_temp;             /* SHOAL_FLEET_UPLOAD without a source: remove our leftover
                                   temporary files in the target directory */
    uint64_t clean_age_s;       /* ... last modified longer ago than this */
    shoal_fleet_xfer xfer;
    int verify;                 /* SHOAL_FLEET_UPLOAD: compare sha256 after the upload */
    uint64_t host_rate;         /* SHOAL_FLEET_UPLOAD: bytes/s per host, 0 = no cap */
    struct fleet_bucket *global_rate; /* shared cap over all hosts, or NULL */
    uint64_t host_timeout_ms;   /* per host, from the moment its work starts; 0 = none */
    size_t out_cap;             /* bytes kept of stdout and of stderr per host */
    shoal_fleet_source *input;        /* SHOAL_FLEET_EXEC: sent to every host's stdin, then EOF;
                                   NULL: EOF as soon as the command starts */
    int stream;                 /* send output events as it arrives */
    int keep_conn;              /* leave the connection in the pool afterwards */
    void *ud;                   /* the caller's */
};

typedef struct fleet_worker fleet_worker;
typedef struct pconn pconn;
typedef struct fleet_task fleet_task;
typedef struct fleet_upload fleet_upload;

enum { MSG_TASK = 0, MSG_STOP, MSG_DROP_IDLE, MSG_QUIT };

/* Worker 0 takes every host that needs a new connection while its core
 * keeps up; the other workers get hosts only while it is saturated (its
 * loop busy FLEET_SPILL_BUSY_PCT % of the time, a moving average over about
 * ten samples taken after its polls, at most one per FLEET_SPILL_TICK_MS),
 * at most FLEET_SPILL_BATCH per worker and sample. See fleet_worker.c,
 * "spilling". */
#define FLEET_SPILL_TICK_MS 10
#define FLEET_SPILL_BUSY_PCT 85
#define FLEET_SPILL_BATCH 64

/* Address space each worker's malloc arena is grown to at start: see
 * fleet__worker_main. */
#define FLEET_ARENA_RESERVE (16u << 20)

typedef struct fleet_msg {
    int type;
    fleet_task *task;
    shoal_fleet_request *req;
    int reason;
    struct fleet_msg *next;
} fleet_msg;

/* One pooled connection, keyed by user@host:port (+ key). */
enum { PC_PENDING = 0, PC_CONNECTING, PC_READY, PC_DEAD };

struct pconn {
    fleet_worker *w;
    char *key;
    char *user, *host;
    unsigned port;
    shoal_key *extra_key;
    shoal_uv_conn *c;
    int state;
    fleet_task *waiting;      /* tasks waiting for the handshake */
    unsigned users;           /* tasks attached (waiting or working) */
    int in_table;
    shoal_fleet_request *dial_req;  /* who dialled, for CONNECTED */
    size_t dial_index;
    unsigned attempts;        /* connection attempts made */
    uv_timer_t *retry;        /* back-off before the next attempt */
    pconn *hnext;             /* hash chain */
    pconn *qnext;             /* pending-start queue */
};

struct fleet_task {
    shoal_fleet_request *req;
    size_t index;
    char *user, *host;
    unsigned port;
    shoal_key *key;
    fleet_worker *w;
    pconn *pc;
    fleet_task *prev, *next;  /* worker's active list */
    fleet_task *wnext;        /* pconn waiting list; worker 0's backlog */
    uv_timer_t *timer;
    uint64_t t0;
    shoal_child *child;
    fleet_upload *up;
    uint8_t *out, *err;
    size_t out_len, err_len, out_cap_alloc, err_cap_alloc;
    uint64_t out_total, err_total;
    int truncated;            /* FLEET_TRUNC_* */
    int done;
    int own_deadline;
    /* The result event, allocated by the submitting thread, which also
     * frees it: glibc serves an allocation freed on another thread only
     * through its slow path (its per-thread cache stays empty). */
    shoal_fleet_event *result;
};

struct fleet_worker {
    shoal_fleet *f;
    unsigned idx;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t mu;
    fleet_msg *head, *tail;
    /* loop-local from here */
    pconn **table;
    size_t table_size;
    pconn *qhead, *qtail;
    unsigned handshaking, max_handshaking;
    fleet_task *active;
    int quitting;
    shoal_uv_limiter *agent_limiter;
    uv_timer_t reaper;        /* frees dead connections on the next turn */
    pconn *grave;
    struct dead_conn *dead;   /* connections replaced by a retry, freed by the reaper */
    /* Worker 0 of several only (spilling): tasks for hosts without a
     * connection here, not started yet; the hosts handed to other workers. */
    fleet_task *backlog, *backlog_tail;
    struct handoff **handoffs;
    size_t handoffs_size;
    uv_check_t spill;         /* samples the loop's busy share after each poll */
    uint64_t spill_t0, spill_idle0;
    unsigned spill_busy;      /* moving average, percent x 10 */
    unsigned spill_next;
    int pumping;
    unsigned long dials;       /* connections started (SHOAL_FLEET_DEBUG) */
    int inited;                /* shoal_fleet_new: 1 mutex, 2 loop, 4 wake handle set up */
};

struct shoal_fleet {
    uv_loop_t *main;
    uv_async_t results;
    pthread_mutex_t rmu;
    shoal_fleet_event *rhead, *rtail;
    atomic_size_t outstanding; /* tasks submitted whose RESULT is not posted yet */
    uv_timer_t drain;          /* cfg.event_delay_ms: drains the queue periodically */
    shoal_fleet_event_cb cb;
    void *ud;
    shoal_fleet_config cfg;  /* cfg.conn, cfg.conn_cb and conn.ssh point at our copies: */
    shoal_uv_options conn;
    shoal_uv_callbacks conn_cb;
    shoal_client_config ssh;
    unsigned nw;
    fleet_worker *w;
    atomic_size_t conns;
    unsigned spill_busy_pct;   /* FLEET_SPILL_BUSY_PCT, or SHOAL_FLEET_SPILL_BUSY */
    int debug;                 /* SHOAL_FLEET_DEBUG: per-worker counts on stderr */
};

/* fleet.c */
/* FNV-1a of a string: picks a host's worker and its pool bucket. */
uint64_t fleet__hash(const char *s);
void fleet__post_event(shoal_fleet *f, shoal_fleet_event *ev);
/* Queues a task on worker idx (from any thread); SHOAL_ERR_NOMEM if it
 * could not (the caller keeps the task). */
int fleet__post_task(shoal_fleet *f, unsigned idx, fleet_task *t);

/* fleet_worker.c */
void fleet__worker_main(void *arg);
/* Frees a task that is in no list (its request reference included). */
void fleet__task_free(fleet_task *t);
void fleet__worker_wake(uv_async_t *a);
/* Keeps a connection open while an aborted upload cleans up. */
void fleet__pc_hold(pconn *pc);
void fleet__pc_release(pconn *pc);
void fleet__task_finish(fleet_task *t, shoal_fleet_event *ev);
shoal_fleet_event *fleet__task_event(fleet_task *t);
void fleet__classify(shoal_fleet_event *ev, int err, shoal_uv_stage stage, const char *msg);
void fleet__collect(fleet_task *t, int stream, const uint8_t *d, size_t n);
void fleet__set_message(shoal_fleet_event *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fleet_upload.c */
int fleet__upload_start(fleet_task *t);
/* Cancels a running upload (no callback afterwards); the temporary file is
 * removed when the connection still allows it. */
void fleet__upload_abort(fleet_upload *u);
/* 1 for a name of our temporary files: ".<name>.shoal-<16 lowercase hex>". */
int fleet__is_temp_name(const char *name);

#endif
