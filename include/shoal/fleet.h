/* shoal: the fan-out engine (library target shoal_fleet), behind `shoal run`,
 * `shoal put` and `shoal agent`: one command or one upload on many hosts.
 *
 * Threads. The caller's thread owns a libuv loop (main_loop) on which every
 * callback of this API runs; W worker threads each run their own loop with
 * their share of the SSH connections (a host always lands on the same
 * worker, so the connection pool needs no lock and a host is dialled once
 * even when requests overlap). The handshake crypto therefore runs on every
 * core. Every function here is called from the caller's thread, except
 * where said otherwise.
 *
 * Work is described by a request (shoal_fleet_request: a command or an
 * upload, shared by all its hosts, reference counted) and one task per host
 * (shoal_fleet_submit). Results and progress come back on the caller's loop
 * as shoal_fleet_event values given to the event callback: always exactly
 * one SHOAL_FLEET_EV_RESULT per submitted task.
 *
 * Errors: functions returning int give SHOAL_OK (0) or a negative SHOAL_ERR_*
 * code (shoal/error.h); those with an err buffer also write a message there.
 *
 * Options structs the caller fills (shoal_fleet_config) start with a size
 * field set by their _init function: the library reads only that many bytes,
 * so a program built against an older, shorter struct keeps working. */
#ifndef SHOAL_FLEET_H
#define SHOAL_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal/command.h"
#include "shoal/error.h"
#include "shoal/keys.h"
#include "shoal/uv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_fleet shoal_fleet;
typedef struct shoal_fleet_request shoal_fleet_request;
typedef struct shoal_fleet_source shoal_fleet_source;

/* ---- requests ---- */

typedef enum shoal_fleet_kind { SHOAL_FLEET_EXEC = 0, SHOAL_FLEET_UPLOAD } shoal_fleet_kind;

/* Upload transports, tried in this order unless one is forced. */
typedef enum shoal_fleet_xfer {
    SHOAL_FLEET_XFER_AUTO = 0,
    SHOAL_FLEET_XFER_SFTP,
    SHOAL_FLEET_XFER_SCP,
    SHOAL_FLEET_XFER_CAT
} shoal_fleet_xfer;

/* Why a request's remaining work stops early (shoal_fleet_stop). */
enum { SHOAL_FLEET_RUNNING = 0, SHOAL_FLEET_STOP_TIMEOUT = 1, SHOAL_FLEET_STOP_CANCEL = 2 };

/* A new request holding one reference, or NULL without memory. Defaults:
 * output cap 1 MiB per stream, no deadline, no input (the command's stdin
 * gets EOF at once), no streaming, the connection closed after the task,
 * automatic transport, no rate caps.
 *
 * The setters below are for a request not yet submitted (a submitted
 * request is read by the worker threads without a lock). The ones that
 * can fail return SHOAL_ERR_INVALID_ARG for a setting of the other kind
 * and SHOAL_ERR_NOMEM. */
SHOAL_EXTERN shoal_fleet_request *shoal_fleet_request_new(shoal_fleet_kind kind);
/* A reference more; any thread. */
SHOAL_EXTERN shoal_fleet_request *shoal_fleet_request_ref(shoal_fleet_request *r);
/* Drops a reference (NULL is ignored); the last one frees the request, its
 * strings and the sources it took. Any thread. */
SHOAL_EXTERN void shoal_fleet_request_unref(shoal_fleet_request *r);
SHOAL_EXTERN shoal_fleet_kind shoal_fleet_request_kind(const shoal_fleet_request *r);

/* EXEC: the command line, run by the remote user's shell (copied). */
SHOAL_EXTERN int shoal_fleet_request_set_command(shoal_fleet_request *r, const char *command);
/* EXEC: bytes sent to every host's stdin, then EOF. The request takes the
 * source (freed with the request, also on error). */
SHOAL_EXTERN int shoal_fleet_request_set_input(shoal_fleet_request *r, shoal_fleet_source *input);
/* UPLOAD: the file to send; the request takes it (also on error). */
SHOAL_EXTERN int shoal_fleet_request_set_source(shoal_fleet_request *r, shoal_fleet_source *source);
/* UPLOAD: the remote path (copied); an existing directory receives the
 * file under the source's name. With no source and clean-temp set, the
 * directory to clean. */
SHOAL_EXTERN int shoal_fleet_request_set_target(shoal_fleet_request *r, const char *path);
/* UPLOAD: the target's permission bits. Without this an existing target
 * keeps its mode and a new one gets the source's. */
SHOAL_EXTERN int shoal_fleet_request_set_mode(shoal_fleet_request *r, uint32_t mode);
/* UPLOAD: write the target itself instead of a temporary file renamed over
 * it (follows symlinks, keeps its inode, owner and mode; not atomic). */
SHOAL_EXTERN int shoal_fleet_request_set_inplace(shoal_fleet_request *r, int on);
/* UPLOAD without a source: remove our leftover temporary files
 * (".<name>.shoal-<16 hex>") in the target directory last modified more
 * than older_than_s seconds ago. */
SHOAL_EXTERN int shoal_fleet_request_set_clean_temp(shoal_fleet_request *r, uint64_t older_than_s);
SHOAL_EXTERN int shoal_fleet_request_set_xfer(shoal_fleet_request *r, shoal_fleet_xfer xfer);
/* UPLOAD: compare the remote sha256 with the source's afterwards. */
SHOAL_EXTERN int shoal_fleet_request_set_verify(shoal_fleet_request *r, int on);
/* UPLOAD: bandwidth caps in bytes per second, per host and shared by all
 * hosts of the request; 0 = no cap. */
SHOAL_EXTERN int shoal_fleet_request_set_host_rate(shoal_fleet_request *r, uint64_t bytes_per_s);
SHOAL_EXTERN int shoal_fleet_request_set_total_rate(shoal_fleet_request *r, uint64_t bytes_per_s);
/* Per host, from the moment its work starts (connecting included); 0 = none.
 * A host past it gets a RESULT with class SHOAL_FLEET_FAIL_TIMEOUT. */
SHOAL_EXTERN void shoal_fleet_request_set_host_timeout(shoal_fleet_request *r, uint64_t ms);
/* Bytes kept of stdout and of stderr per host (more is counted, not kept). */
SHOAL_EXTERN void shoal_fleet_request_set_output_cap(shoal_fleet_request *r, size_t bytes);
SHOAL_EXTERN size_t shoal_fleet_request_output_cap(const shoal_fleet_request *r);
/* Send SHOAL_FLEET_EV_OUTPUT events as output arrives (the RESULT then
 * still carries the capped output). */
SHOAL_EXTERN void shoal_fleet_request_set_stream(shoal_fleet_request *r, int on);
/* Leave the connection in the fleet's pool after the task (for the next
 * request to the same user@host:port). */
SHOAL_EXTERN void shoal_fleet_request_set_keep_conn(shoal_fleet_request *r, int on);
/* The caller's pointer, read back from events; never touched by the library. */
SHOAL_EXTERN void shoal_fleet_request_set_userdata(shoal_fleet_request *r, void *ud);
SHOAL_EXTERN void *shoal_fleet_request_userdata(const shoal_fleet_request *r);
/* SHOAL_FLEET_RUNNING, or the reason given to the first shoal_fleet_stop(). */
SHOAL_EXTERN int shoal_fleet_request_stopped(const shoal_fleet_request *r);

/* ---- sources (upload files and command input) ---- */

/* The file is mapped once and shared read-only by every host and thread
 * (the page cache holds it once, whatever the host count). -1 with err set
 * when it cannot be opened or is not a regular file. */
SHOAL_EXTERN int shoal_fleet_source_open(const char *path, shoal_fleet_source **out, char *err, size_t errsz);
/* A command's input: the file at path, or our stdin when path is NULL. A
 * regular file is mapped (any size); anything else (a pipe, a terminal) is
 * read to its end into memory, at most cap bytes (more is an error). */
SHOAL_EXTERN int shoal_fleet_source_open_input(const char *path, size_t cap, shoal_fleet_source **out, char *err,
                                               size_t errsz);
SHOAL_EXTERN const uint8_t *shoal_fleet_source_data(const shoal_fleet_source *s);
SHOAL_EXTERN uint64_t shoal_fleet_source_size(const shoal_fleet_source *s);
SHOAL_EXTERN uint32_t shoal_fleet_source_mode(const shoal_fleet_source *s);
/* The file's base name (an upload into a directory lands under it). */
SHOAL_EXTERN const char *shoal_fleet_source_name(const shoal_fleet_source *s);
/* Lower-case hex sha256 of the whole file (computed once, on demand; any thread). */
SHOAL_EXTERN const char *shoal_fleet_source_sha256(shoal_fleet_source *s);
/* For a source no request took. */
SHOAL_EXTERN void shoal_fleet_source_free(shoal_fleet_source *s);

/* ---- hosts ---- */

/* A host to work on, given to shoal_fleet_submit (strings are copied there). */
typedef struct shoal_fleet_host {
    const char *spec;           /* as the user wrote it; names the host in output */
    const char *user;           /* NULL = the fleet's default */
    const char *host;
    unsigned port;              /* 0 = the fleet's default */
    shoal_key *key;             /* an extra key for this host only, or NULL (borrowed:
                                   it must outlive the task's RESULT) */
} shoal_fleet_host;

/* ---- events ---- */

enum { SHOAL_FLEET_TRUNC_STDOUT = 1, SHOAL_FLEET_TRUNC_STDERR = 2 };

/* How long a command asked to stop (a deadline, a cancel) gets between the
 * TERM signal and KILL. */
#define SHOAL_FLEET_KILL_GRACE_MS 2000

typedef enum shoal_fleet_event_type {
    SHOAL_FLEET_EV_CONNECTED = 0, /* a connection finished its handshake */
    SHOAL_FLEET_EV_OUTPUT,        /* streamed output (set_stream) */
    SHOAL_FLEET_EV_RESULT,        /* the host is done; exactly once per task */
} shoal_fleet_event_type;

/* Failure classes, for summaries and exit codes. */
typedef enum shoal_fleet_class {
    SHOAL_FLEET_OK = 0,
    SHOAL_FLEET_FAIL_EXIT,      /* the command ran and exited non-zero */
    SHOAL_FLEET_FAIL_SIGNAL,    /* killed by a signal */
    SHOAL_FLEET_FAIL_NOSTATUS,  /* closed without an exit status */
    SHOAL_FLEET_FAIL_DNS,
    SHOAL_FLEET_FAIL_REFUSED,   /* connection refused or reset while connecting */
    SHOAL_FLEET_FAIL_CONNECT,   /* other connect errors (unreachable...) */
    SHOAL_FLEET_FAIL_TIMEOUT,   /* see phase */
    SHOAL_FLEET_FAIL_HOSTKEY,
    SHOAL_FLEET_FAIL_AUTH,
    SHOAL_FLEET_FAIL_CLOSED,    /* the server closed or reset the connection */
    SHOAL_FLEET_FAIL_PROTOCOL,
    SHOAL_FLEET_FAIL_CHANNEL,   /* channel or exec refused */
    SHOAL_FLEET_FAIL_UPLOAD,    /* transfer, rename or checksum failed */
    SHOAL_FLEET_FAIL_CANCELLED,
    SHOAL_FLEET_FAIL_LOCAL,     /* our side: out of memory, no file descriptors */
    SHOAL_FLEET_CLASS_COUNT
} shoal_fleet_class;

/* "ok", "exit status", "timeout"...; "?" for an unknown value. */
SHOAL_EXTERN const char *shoal_fleet_class_name(shoal_fleet_class c);

/* An event, owned by the callback that receives it: free it with
 * shoal_fleet_event_free (now or later; it may be kept). The pointers in it
 * may be taken over by setting them to NULL before freeing. */
typedef struct shoal_fleet_event {
    /* all types */
    shoal_fleet_event_type type;
    shoal_fleet_request *req;   /* a reference held by the event */
    size_t index;               /* host index given to shoal_fleet_submit */
    /* CONNECTED */
    int conn_index;             /* index of the host whose task dialled */
    /* OUTPUT */
    int stream;                 /* SHOAL_STDOUT / SHOAL_STDERR */
    uint8_t *data;              /* malloc'd */
    size_t len;
    /* RESULT */
    shoal_fleet_class cls;
    const char *phase;          /* where it failed: "connect", "banner", "kex", "auth",
                                   "channel", "command", "upload" (static) */
    int timed_out;              /* a deadline passed (a stage's, the host's or the request's) */
    int stopped;                /* ended by shoal_fleet_stop(): its reason, else 0 */
    shoal_exit_kind exit_kind;  /* EXEC: how the command ended */
    int status;                 /* EXEC: exit status when exit_kind says so */
    char signal[32];            /* EXEC: signal name when killed */
    int core_dumped;
    int err;                    /* SHOAL_ERR_* code, 0 if the command ran */
    char *message;              /* malloc'd; NULL when ok */
    uint8_t *out, *errout;      /* malloc'd, capped at the request's output cap */
    size_t out_len, err_len;
    int truncated;              /* SHOAL_FLEET_TRUNC_* bits: which streams were cut */
    uint64_t out_total, err_total; /* bytes the command wrote to each, kept or not */
    double seconds;             /* from the task's start to its result */
    const char *via;            /* UPLOAD: "sftp", "scp" or "cat" (static) */
    struct shoal_fleet_event *next; /* the library's; ignore */
} shoal_fleet_event;

/* Runs on the caller's loop (main_loop), never on a worker thread. It may
 * submit and stop requests; it may call shoal_fleet_free only once the
 * RESULT of every task submitted has arrived. */
typedef void (*shoal_fleet_event_cb)(shoal_fleet *f, shoal_fleet_event *ev, void *ud);

SHOAL_EXTERN void shoal_fleet_event_free(shoal_fleet_event *ev);

/* ---- the fleet ---- */

typedef struct shoal_fleet_config {
    size_t size;                /* set by shoal_fleet_config_init: sizeof(shoal_fleet_config) */
    unsigned workers;           /* 0 = number of CPUs (at most 64) */
    const char *default_user;   /* for hosts without a user; copied per task */
    unsigned default_port;      /* 0 = 22 */
    /* Connection settings for every host (host, port and user are filled in
     * per host; strings are copied when a connection is made, but keys,
     * the known_hosts database and the limiter are borrowed: they must
     * outlive the fleet). shoal_ssh_resolve (shoal/ssh_resolve.h) makes
     * them from OpenSSH-style options. Required; copied by shoal_fleet_new
     * (a pointer, so that each options struct grows on its own). */
    const shoal_uv_options *conn;
    /* Only passphrase, password, kbdint and log are used; they run on the
     * worker threads, so they must be thread-safe. May be NULL; copied. */
    const shoal_uv_callbacks *conn_cb;
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

/* Zero-fills cfg and sets cfg->size. */
SHOAL_EXTERN void shoal_fleet_config_init(shoal_fleet_config *cfg);

/* Starts the workers; cfg is copied (cfg->size bytes of it, the rest zero).
 * cb gets every event with ud. Errors: SHOAL_ERR_INVALID_ARG (no cfg, cfg
 * not initialised: size 0, no cb), SHOAL_ERR_NOMEM, SHOAL_ERR_IO (no file
 * descriptor for an event loop, a thread that would not start). On failure
 * err says what failed, nothing is left running, and the caller runs
 * main_loop once more to close the handles set up on it. */
SHOAL_EXTERN int shoal_fleet_new(uv_loop_t *main_loop, const shoal_fleet_config *cfg, shoal_fleet_event_cb cb,
                                 void *ud, shoal_fleet **out, char *err, size_t errsz);
/* Starts host's work for req (the fleet takes a reference per task); index
 * comes back in the events. SHOAL_ERR_NOMEM: nothing was submitted, no
 * event will come for it. */
SHOAL_EXTERN int shoal_fleet_submit(shoal_fleet *f, shoal_fleet_request *req, const shoal_fleet_host *host,
                                    size_t index);
/* Stops a request's unfinished tasks (reason: SHOAL_FLEET_STOP_TIMEOUT or
 * _CANCEL); each still gets its RESULT event, marked timed_out or
 * cancelled. Running commands get TERM, then KILL after
 * SHOAL_FLEET_KILL_GRACE_MS. */
SHOAL_EXTERN void shoal_fleet_stop(shoal_fleet *f, shoal_fleet_request *req, int reason);
/* Closes idle pooled connections. */
SHOAL_EXTERN void shoal_fleet_drop_idle(shoal_fleet *f);
/* Closes every connection, stops the workers and frees the fleet; events
 * not delivered yet are dropped. Run main_loop once more afterwards: its
 * handles close there. NULL is ignored. */
SHOAL_EXTERN void shoal_fleet_free(shoal_fleet *f);
/* Connections open now (all workers; any thread). */
SHOAL_EXTERN size_t shoal_fleet_connections(const shoal_fleet *f);

/* The number of worker threads shoal_fleet_new starts for cfg.workers. */
SHOAL_EXTERN unsigned shoal_fleet_worker_count(unsigned requested);
/* Checks that enough file descriptors are free for the event loops of the
 * caller and of the workers, and one connection (libuv aborts when it
 * cannot have one). 0, or -1 with err saying how many are free and needed.
 * Call before the first event loop is made. */
SHOAL_EXTERN int shoal_fleet_check_fds(unsigned workers, char *err, size_t errsz);
/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
SHOAL_EXTERN unsigned long shoal_fleet_raise_fd_limit(void);

#ifdef __cplusplus
}
#endif
#endif
