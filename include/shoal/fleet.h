/* The fan-out engine behind `shoal run`, `shoal put` and `shoal agent`.
 *
 * Threads: the caller's thread owns a uv loop that reads input and writes
 * results; W worker threads each run their own uv loop with their share of
 * the SSH connections (a host always lands on the same worker, chosen by a
 * hash of user@host:port, so the connection pool needs no lock and one
 * host is dialled once even when requests overlap). The handshake crypto
 * therefore runs on every core.
 *
 * Work is described by a request (a command or an upload, shared by all its
 * hosts) and one task per host. Results and progress come back to the
 * caller's loop as shoal_fleet_event values, always exactly one RESULT per task. */
#ifndef SHOAL_FLEET_H
#define SHOAL_FLEET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal/command.h"
#include "shoal/keys.h"
#include "shoal/uv.h"

typedef struct shoal_fleet shoal_fleet;
typedef struct shoal_fleet_request shoal_fleet_request;
typedef struct shoal_fleet_source shoal_fleet_source;

typedef enum shoal_fleet_kind { SHOAL_FLEET_EXEC = 0, SHOAL_FLEET_UPLOAD } shoal_fleet_kind;

/* Upload transports, tried in this order unless one is forced. */
typedef enum shoal_fleet_xfer { SHOAL_FLEET_XFER_AUTO = 0, SHOAL_FLEET_XFER_SFTP, SHOAL_FLEET_XFER_SCP, SHOAL_FLEET_XFER_CAT } shoal_fleet_xfer;

/* Why a request's remaining work stops early. */
enum { SHOAL_FLEET_RUNNING = 0, SHOAL_FLEET_STOP_TIMEOUT = 1, SHOAL_FLEET_STOP_CANCEL = 2 };

struct shoal_fleet_request {
    atomic_int refs;
    atomic_int stop;            /* SHOAL_FLEET_RUNNING or a FLEET_STOP_* reason */
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

/* A host to work on. Strings are copied. */
typedef struct shoal_fleet_host {
    const char *spec;           /* as the user wrote it; names the host in output */
    const char *user;           /* NULL = the fleet's default */
    const char *host;
    unsigned port;              /* 0 = the fleet's default */
    shoal_key *key;             /* an extra key for this host only, or NULL (borrowed) */
} shoal_fleet_host;

enum { SHOAL_FLEET_TRUNC_STDOUT = 1, SHOAL_FLEET_TRUNC_STDERR = 2 };

/* How long a command asked to stop (a deadline, a cancel, Ctrl-C) gets
 * between the TERM signal and KILL. */
#define SHOAL_FLEET_KILL_GRACE_MS 2000

typedef enum shoal_fleet_event_type {
    SHOAL_FLEET_EV_CONNECTED = 0,     /* a connection finished its handshake */
    SHOAL_FLEET_EV_OUTPUT,            /* streamed output (req->stream) */
    SHOAL_FLEET_EV_RESULT,            /* the host is done; exactly once per task */
} shoal_fleet_event_type;

/* Failure classes, for summaries and exit codes. */
typedef enum shoal_fleet_class {
    SHOAL_FLEET_OK = 0,
    SHOAL_FLEET_FAIL_EXIT,            /* the command ran and exited non-zero */
    SHOAL_FLEET_FAIL_SIGNAL,          /* killed by a signal */
    SHOAL_FLEET_FAIL_NOSTATUS,        /* closed without an exit status */
    SHOAL_FLEET_FAIL_DNS,
    SHOAL_FLEET_FAIL_REFUSED,         /* connection refused or reset while connecting */
    SHOAL_FLEET_FAIL_CONNECT,         /* other connect errors (unreachable...) */
    SHOAL_FLEET_FAIL_TIMEOUT,         /* see phase */
    SHOAL_FLEET_FAIL_HOSTKEY,
    SHOAL_FLEET_FAIL_AUTH,
    SHOAL_FLEET_FAIL_CLOSED,          /* the server closed or reset the connection */
    SHOAL_FLEET_FAIL_PROTOCOL,
    SHOAL_FLEET_FAIL_CHANNEL,         /* channel or exec refused */
    SHOAL_FLEET_FAIL_UPLOAD,          /* transfer, rename or checksum failed */
    SHOAL_FLEET_FAIL_CANCELLED,
    SHOAL_FLEET_FAIL_LOCAL,           /* our side: out of memory, no file descriptors */
    SHOAL_FLEET_CLASS_COUNT
} shoal_fleet_class;

const char *shoal_fleet_class_name(shoal_fleet_class c);

typedef struct shoal_fleet_event {
    shoal_fleet_event_type type;
    shoal_fleet_request *req;         /* a reference held by the event */
    size_t index;               /* host index within the request */
    int conn_index;             /* CONNECTED: index of the host that dialled */
    /* OUTPUT */
    int stream;                 /* SHOAL_STDOUT / SHOAL_STDERR */
    uint8_t *data;
    size_t len;
    /* RESULT */
    shoal_fleet_class cls;
    const char *phase;          /* where it failed: "connect", "banner", "kex", "auth",
                                   "channel", "command", "upload" (static) */
    int timed_out;              /* a deadline passed (a stage's, the host's or the request's) */
    int stopped;                /* ended by shoal_fleet_stop(): SHOAL_FLEET_STOP_TIMEOUT / _CANCEL, else 0 */
    shoal_exit_kind exit_kind;
    int status;
    char signal[32];
    int core_dumped;
    int err;                    /* shoal error code, 0 if the command ran */
    char *message;              /* malloc'd; NULL when ok */
    uint8_t *out, *errout;      /* malloc'd, capped at req->out_cap */
    size_t out_len, err_len;
    int truncated;              /* FLEET_TRUNC_* bits: which streams were cut at out_cap */
    uint64_t out_total, err_total; /* bytes the command wrote to each, kept or not */
    double seconds;             /* from the task's start to its result */
    const char *via;            /* uploads: "sftp", "scp" or "cat" (static) */
    struct shoal_fleet_event *next;
} shoal_fleet_event;

typedef void (*shoal_fleet_event_cb)(shoal_fleet *f, shoal_fleet_event *ev, void *ud);

typedef struct shoal_fleet_config {
    unsigned workers;           /* 0 = number of CPUs */
    const char *default_user;
    unsigned default_port;      /* 0 = 22 */
    /* Connection settings for every host (host, port and user are filled in
     * per host; strings are copied when a connection is made). */
    shoal_uv_options conn;
    shoal_uv_callbacks conn_cb; /* only passphrase/password/kbdint/log are used */
    void *conn_ud;
    unsigned max_handshakes;    /* connections being set up at once, all workers; 0 = 512 */
    unsigned max_agent_conns;   /* ssh-agent connections at once, all workers; 0 = 128 */
    int no_connected_events;    /* the caller does not want SHOAL_FLEET_EV_CONNECTED */
    unsigned event_delay_ms;    /* events may wait this long for the caller's loop
                                   (drained by a timer: one wake-up per period instead
                                   of one per event); the last RESULT outstanding
                                   wakes it at once; 0 = every event at once */
    unsigned connection_attempts; /* tries for a connection reset or closed before the
                                     server's version line (overloaded accept queue,
                                     MaxStartups); 0 = 3 */
} shoal_fleet_config;

/* Starts the workers. On failure (no memory, or no file descriptors left
 * for an event loop) err says what failed, nothing is left running, and
 * the caller runs main_loop once more to close the handles set up on it. */
int shoal_fleet_new(uv_loop_t *main_loop, const shoal_fleet_config *cfg, shoal_fleet_event_cb cb, void *ud, shoal_fleet **out, char *err,
              size_t errsz);
/* Starts hosts[i] work for req (the fleet takes a reference per task). */
int shoal_fleet_submit(shoal_fleet *f, shoal_fleet_request *req, const shoal_fleet_host *host, size_t index);
/* Stops a request's unfinished tasks (timeout or cancel); each still gets
 * its RESULT event, marked timed_out or cancelled. */
void shoal_fleet_stop(shoal_fleet *f, shoal_fleet_request *req, int reason);
/* Closes idle pooled connections. */
void shoal_fleet_drop_idle(shoal_fleet *f);
/* Closes every connection, stops the workers and frees the fleet. */
void shoal_fleet_free(shoal_fleet *f);
void shoal_fleet_event_free(shoal_fleet_event *ev);
/* Largest memory figures the workers saw, for the summary. */
size_t shoal_fleet_connections(const shoal_fleet *f);

shoal_fleet_request *shoal_fleet_request_new(shoal_fleet_kind kind);
shoal_fleet_request *shoal_fleet_request_ref(shoal_fleet_request *r);
void shoal_fleet_request_unref(shoal_fleet_request *r);

/* Upload sources: the file is mapped once and shared read-only by every
 * host and thread (the page cache holds it once, whatever the host count). */
int shoal_fleet_source_open(const char *path, shoal_fleet_source **out, char *err, size_t errsz);
/* A command's input: the file at path, or our stdin when path is NULL. A
 * regular file is mapped (any size); anything else (a pipe, a terminal) is
 * read to its end into memory, at most cap bytes (more is an error). */
int shoal_fleet_source_open_input(const char *path, size_t cap, shoal_fleet_source **out, char *err, size_t errsz);
const uint8_t *shoal_fleet_source_data(const shoal_fleet_source *s);
uint64_t shoal_fleet_source_size(const shoal_fleet_source *s);
uint32_t shoal_fleet_source_mode(const shoal_fleet_source *s);
/* The file's base name (an upload into a directory lands under it). */
const char *shoal_fleet_source_name(const shoal_fleet_source *s);
/* Lower-case hex sha256 of the whole file (computed once, on demand). */
const char *shoal_fleet_source_sha256(shoal_fleet_source *s);
void shoal_fleet_source_free(shoal_fleet_source *s);

/* The number of worker threads shoal_fleet_new starts for cfg.workers. */
unsigned shoal_fleet_worker_count(unsigned requested);
/* Checks that enough file descriptors are free for the event loops of the
 * caller and of the workers, and one connection (libuv aborts when it
 * cannot have one). 0, or -1 with err saying how many are free and needed.
 * Call before the first event loop is made. */
int shoal_fleet_check_fds(unsigned workers, char *err, size_t errsz);
/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
unsigned long shoal_fleet_raise_fd_limit(void);

#endif
