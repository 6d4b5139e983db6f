/* Socket <-> session byte pump: see pump.h. */
#include "uv/pump.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "shoal/error.h"

/* During the first exchanges, input we do not answer is acknowledged at
 * once. Peers send some messages we never answer (OpenSSH's
 * hostkeys-00@openssh.com after authentication, EXT_INFO); with delayed
 * ACKs their next small message (the channel confirmation) then waits
 * ~40 ms behind Nagle's algorithm on the peer. Setting TCP_QUICKACK sends a
 * pending ACK now; it is not sticky, hence per read. Input we answer needs
 * nothing: the answer carries the ACK (and no pure ACK segment is sent for
 * it, which on a fan-out is a good share of the packets). Later bulk
 * transfers keep the kernel's delayed ACKs. */
#define QUICKACK_READS 32

typedef struct pump_write {
    uv_write_t req;
    shoal_pump *p;
    uint8_t data[];
} pump_write;

#ifdef TCP_QUICKACK
static void set_quickack(shoal_pump *p, int on)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&p->tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
}
#endif

static void quick_ack(shoal_pump *p)
{
#ifdef TCP_QUICKACK
    if (p->reads >= QUICKACK_READS)
        return;
    p->reads++;
    set_quickack(p, 1);
    /* Back to delayed ACKs (see shoal__pump_start): setting 1 also leaves
     * that mode, and the next input we answer would get a pure ACK of its
     * own. */
    set_quickack(p, 0);
#else
    (void)p;
#endif
}

int shoal__pump_init(shoal_pump *p, uv_loop_t *loop, const shoal_pump_ops *ops, void *owner)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->ops = ops;
    p->owner = owner;
    if (uv_tcp_init(loop, &p->tcp) != 0)
        return SHOAL_ERR_IO;
    p->tcp.data = p;
    p->open = 1;
    return SHOAL_OK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* The session copies what it is fed, so one buffer per thread serves
     * every connection. */
    static _Thread_local char rbuf[64 * 1024];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    shoal_pump *p = st->data;
    uint64_t now = uv_now(p->loop);
    p->wrote = 0;
    if (nread > 0) {
        shoal_session_recv(p->s, (const uint8_t *)buf->base, (size_t)nread, now);
    } else if (nread == UV_EOF) {
        uv_read_stop(st);
        p->reading = 0;
        p->read_ended = 1;
        shoal_session_recv_eof(p->s, now);
        p->ops->io_error(p, 0, NULL);
    } else if (nread < 0) {
        uv_read_stop(st);
        p->reading = 0;
        p->read_ended = 1;
        if (nread == UV_ECONNRESET)
            p->ops->io_error(p, SHOAL_ERR_EOF, "connection reset by peer");
        else
            p->ops->io_error(p, SHOAL_ERR_IO, uv_strerror((int)nread));
    }
    p->ops->after_io(p);
    /* Our answer carries the ACK; only input we do not answer needs one at
     * once (see quick_ack). */
    if (nread > 0 && !p->wrote && p->open && !p->closing)
        quick_ack(p);
}

int shoal__pump_start(shoal_pump *p, shoal_session *s)
{
    p->s = s;
    uv_tcp_nodelay(&p->tcp, 1);
#ifdef TCP_QUICKACK
    /* A new connection starts in the kernel's quick-ACK mode, which sends a
     * pure ACK for each of the first segments even when our answer follows
     * at once. Delayed-ACK mode from the start lets the answers carry them;
     * input we do not answer is acknowledged by quick_ack(). */
    set_quickack(p, 0);
#endif
    if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) != 0)
        return SHOAL_ERR_IO;
    p->reading = 1;
    return SHOAL_OK;
}

static void on_write(uv_write_t *req, int status)
{
    pump_write *w = (pump_write *)req;
    shoal_pump *p = w->p;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !p->closing)
        p->ops->io_error(p, SHOAL_ERR_IO, uv_strerror(status));
    if (!p->closing)
        p->ops->after_io(p);
}

size_t shoal__pump_queued(const shoal_pump *p)
{
    return p->open ? p->tcp.write_queue_size : 0;
}

/* The session's last bytes (a DISCONNECT) before the socket is closed:
 * MSG_MORE holds them in the kernel for a moment, so that close() sends them
 * in the same segment as the FIN instead of one segment each. */
static int try_send_last(shoal_pump *p, const uv_buf_t *b)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&p->tcp, &fd) != 0)
        return UV_EBADF;
    ssize_t r;
    do
        r = send(fd, b->base, b->len, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
        return (int)r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : uv_translate_sys_error(errno);
}

static int flush_out(shoal_pump *p, int final);

/* Reads only while the session takes input (see pump.h). */
static void input_control(shoal_pump *p)
{
    if (!p->open || p->closing || !p->s || p->read_ended)
        return;
    int want = shoal_session_wants_input(p->s);
    if (want && !p->reading) {
        if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) == 0)
            p->reading = 1;
    } else if (!want && p->reading && !shoal_session_is_closed(p->s)) {
        uv_read_stop((uv_stream_t *)&p->tcp);
        p->reading = 0;
    }
}

static size_t unsent(shoal_session *s)
{
    const uint8_t *d;
    return shoal_session_output(s, &d);
}

int shoal__pump_flush(shoal_pump *p)
{
    int rc = flush_out(p, 0);
    /* Output below the session's mark: input it held back is processed now
     * (a no-op when none is). That may produce output again: a few rounds,
     * each of which drains it or stops at the kernel's and the queue's
     * limits, where the session pauses again. */
    for (int round = 0; !rc && round < 8 && p->open && !p->closing && p->s && shoal_session_wants_input(p->s);
         round++) {
        size_t before = unsent(p->s);
        shoal_session_resume(p->s, uv_now(p->loop));
        if (unsent(p->s) == before)
            break;
        rc = flush_out(p, 0);
    }
    input_control(p);
    return rc;
}

static int flush_out(shoal_pump *p, int final)
{
    if (!p->open || p->closing || !p->s)
        return SHOAL_OK;
    const uint8_t *data;
    size_t n;
    /* Before authentication a peer is owed little: a small queue. */
    size_t qmax = shoal_session_phase(p->s) == SHOAL_PHASE_OPEN ? SHOAL_PUMP_QUEUE_MAX : SHOAL_PUMP_QUEUE_PREAUTH;
    while ((n = shoal_session_output(p->s, &data)) > 0 && p->tcp.write_queue_size < qmax) {
        if (p->tcp.write_queue_size == 0) {
            /* Nothing queued: write straight from the session's buffer. */
            uv_buf_t b = uv_buf_init((char *)data, (unsigned)(n > (1u << 30) ? (1u << 30) : n));
            int r = final ? try_send_last(p, &b) : uv_try_write((uv_stream_t *)&p->tcp, &b, 1);
            if (r > 0) {
                p->wrote = 1;
                shoal_session_output_consume(p->s, (size_t)r);
                continue;
            }
            if (r != UV_EAGAIN && r != UV_ENOSYS) {
                shoal_session_output_consume(p->s, n);
                return SHOAL_ERR_IO;
            }
        }
        /* The kernel is full: copy into a queued write (bounded above). */
        size_t chunk = n > (1u << 20) ? (1u << 20) : n;
        pump_write *w = malloc(sizeof(*w) + chunk);
        if (!w)
            return SHOAL_ERR_NOMEM;
        memcpy(w->data, data, chunk);
        w->p = p;
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)chunk);
        if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_write) < 0) {
            free(w);
            shoal_session_output_consume(p->s, n);
            return SHOAL_ERR_IO;
        }
        shoal_session_output_consume(p->s, chunk);
        p->wrote = 1;
    }
    return SHOAL_OK;
}

static void on_closed(uv_handle_t *h)
{
    shoal_pump *p = h->data;
    p->ops->closed(p);
}

void shoal__pump_close(shoal_pump *p)
{
    if (!p->open)
        return;
    p->open = 0;
    p->closing = 1;
    p->reading = 0;
    uv_close((uv_handle_t *)&p->tcp, on_closed);
}

int shoal__pump_close_when_drained(shoal_pump *p)
{
    if (!p->open)
        return 1;
    if (p->s)
        flush_out(p, 1);
    if (p->tcp.write_queue_size == 0) {
        shoal__pump_close(p);
        return 1;
    }
    return 0;
}
