/* The byte pump between a TCP socket and a sans-I/O session, shared by the
 * client (conn.c) and server (server.c) drivers.
 *
 * Reading: every chunk goes straight to shoal_session_recv(). Writing: the
 * session's output is written with uv_try_write() from its own buffer and
 * copied into a queued uv_write only when the kernel is full; while more
 * than SHOAL_PUMP_QUEUE_MAX bytes are queued (SHOAL_PUMP_QUEUE_PREAUTH
 * before the session is authenticated), output stays in the session
 * (which then stops channels from producing more, and past its mark stops
 * taking input). Read backpressure: the socket is read only while
 * shoal_session_wants_input() says so; when it says so again after a
 * flush, the input the session held is processed and reading resumes. So
 * a peer that does not read our replies stops being read, and neither side
 * queues without bound. The owner is told after every I/O event so it can
 * track phases, timers and closing. */
#ifndef SHOAL_UV_PUMP_H
#define SHOAL_UV_PUMP_H

#include <uv.h>

#include "shoal/session.h"

#define SHOAL_PUMP_QUEUE_MAX (1u << 20)
#define SHOAL_PUMP_QUEUE_PREAUTH (64u << 10)

typedef struct shoal_pump shoal_pump;

typedef struct shoal_pump_ops {
    /* After a read or a write completion (the session may have changed). */
    void (*after_io)(shoal_pump *p);
    /* The socket failed or hit EOF (err is SHOAL_ERR_*; 0 for a clean EOF,
     * already reported to the session with shoal_session_recv_eof). */
    void (*io_error)(shoal_pump *p, int err, const char *message);
    /* The TCP handle is closed: the owner may free itself. */
    void (*closed)(shoal_pump *p);
} shoal_pump_ops;

struct shoal_pump {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    shoal_session *s;
    const shoal_pump_ops *ops;
    void *owner;
    int open;        /* the TCP handle is initialised and not closing */
    int reading;
    int read_ended;  /* EOF or a read error: never read again */
    int closing;
    unsigned reads;
    int wrote;         /* something was written during the current read event */  /* for TCP_QUICKACK during the first exchanges */
};

/* Initialises the TCP handle (uv_tcp_init). */
int shoal__pump_init(shoal_pump *p, uv_loop_t *loop, const shoal_pump_ops *ops, void *owner);
/* Starts reading into the session (after connect or accept). */
int shoal__pump_start(shoal_pump *p, shoal_session *s);
/* Writes what the session has; returns 0 or a SHOAL_ERR_* on a write error. */
int shoal__pump_flush(shoal_pump *p);
/* Bytes queued in libuv and not yet written. */
size_t shoal__pump_queued(const shoal_pump *p);
/* Closes the socket now (ops->closed follows). */
void shoal__pump_close(shoal_pump *p);
/* Closes now if nothing is queued (returns 1); otherwise returns 0 and the
 * owner calls again after the next write completion (after_io), or calls
 * shoal__pump_close() when its linger time runs out: a peer that stopped
 * reading must not keep us alive. */
int shoal__pump_close_when_drained(shoal_pump *p);

#endif
