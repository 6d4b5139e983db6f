/* Connection protocol, client side (RFC 4254): the channel table, session
 * channels and their requests, flow control, global requests.
 *
 * Window rules enforced on the peer: data beyond our window, or a window
 * adjustment that would overflow 2^32-1, ends the connection; messages for
 * unknown channels or channels already closed by the peer do too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "conn/channel_impl.h"
#include "session/session_impl.h"

/* ---- table ---- */

static shoal_channel *chan_get(shoal_session *s, uint32_t id)
{
    return id < s->conn.nchans ? s->conn.chans[id] : NULL;
}

int shoal__chan_alloc(shoal_session *s, shoal_channel **out)
{
    uint32_t id;
    for (id = 0; id < s->conn.nchans; id++)
        if (!s->conn.chans[id])
            break;
    if (id == s->conn.nchans) {
        if (s->conn.nchans >= SHOAL_MAX_CHANNELS)
            return SHOAL_ERR_TOO_LARGE;
        uint32_t ncap = s->conn.nchans ? s->conn.nchans * 2 : 8;
        shoal_channel **nc = realloc(s->conn.chans, ncap * sizeof(*nc));
        if (!nc)
            return SHOAL_ERR_NOMEM;
        for (uint32_t i = s->conn.nchans; i < ncap; i++)
            nc[i] = NULL;
        s->conn.chans = nc;
        s->conn.nchans = ncap;
    }
    shoal_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return SHOAL_ERR_NOMEM;
    ch->s = s;
    ch->local_id = id;
    s->conn.chans[id] = ch;
    s->conn.open_channels++;
    *out = ch;
    return SHOAL_OK;
}

void shoal__chan_release(shoal_channel *ch)
{
    shoal_session *s = ch->s;
    s->conn.chans[ch->local_id] = NULL;
    s->conn.open_channels--;
    if (ch->peer_opened && ch->state != CH_PEER_OPENING) {
        if (ch->scb.on_close)
            ch->scb.on_close(ch, ch->ud);
    } else if (!ch->peer_opened && ch->cb.on_close) {
        ch->cb.on_close(ch, ch->ud);
    }
    free(ch);
}

void shoal__conn_free(shoal_session *s)
{
    for (uint32_t i = 0; i < s->conn.nchans; i++)
        free(s->conn.chans[i]);
    free(s->conn.chans);
    s->conn.chans = NULL;
    s->conn.nchans = 0;
}

void shoal__conn_session_closed(shoal_session *s)
{
    for (uint32_t i = 0; i < s->conn.nchans; i++) {
        shoal_channel *ch = s->conn.chans[i];
        if (!ch)
            continue;
        if (ch->state == CH_OPENING && ch->cb.on_open)
            ch->cb.on_open(ch, s->tp.err ? s->tp.err : SHOAL_ERR_CLOSED, "session closed", ch->ud);
        ch->state = CH_CLOSED;
        shoal__chan_release(ch);
    }
}

/* ---- callbacks of either role ---- */

static void notify_writable(shoal_channel *ch)
{
    if (ch->peer_opened) {
        if (ch->scb.on_writable)
            ch->scb.on_writable(ch, ch->ud);
    } else if (ch->cb.on_writable) {
        ch->cb.on_writable(ch, ch->ud);
    }
}

static void notify_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n)
{
    if (ch->peer_opened) {
        if (ch->scb.on_data)
            ch->scb.on_data(ch, stream, d, n, ch->ud);
    } else if (ch->cb.on_data) {
        ch->cb.on_data(ch, stream, d, n, ch->ud);
    }
}

static void notify_eof(shoal_channel *ch)
{
    if (ch->peer_opened) {
        if (ch->scb.on_eof)
            ch->scb.on_eof(ch, ch->ud);
    } else if (ch->cb.on_eof) {
        ch->cb.on_eof(ch, ch->ud);
    }
}

/* ---- sending helpers ---- */

static int kex_blocks_sending(const shoal_session *s)
{
    return s->tp.kexinit_sent && !s->tp.newkeys_sent;
}

static int send_close(shoal_channel *ch)
{
    if (ch->close_sent)
        return SHOAL_OK;
    size_t mark;
    shoal_session *s = ch->s;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_CLOSE, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    rc = shoal__chan_finish(s, mark, rc);
    if (s->tp.closed)
        return rc; /* a packet that could not be sealed ended the session: ch is released */
    ch->close_sent = 1;
    return rc;
}

static int send_request(shoal_channel *ch, const char *name, int want_reply, size_t *mark)
{
    shoal_session *s = ch->s;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (ch->state != CH_OPEN || ch->close_sent)
        return SHOAL_ERR_BAD_STATE;
    if (want_reply && ch->pending_replies >= 8)
        return SHOAL_ERR_TOO_LARGE;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_REQUEST, mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, name);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, want_reply);
    if (!rc && want_reply) {
        snprintf(ch->pending_names[ch->pending_replies], sizeof(ch->pending_names[0]), "%s", name);
        ch->pending_replies++;
    }
    return rc;
}

int shoal__chan_finish(shoal_session *s, size_t mark, int rc)
{
    if (rc) {
        shoal_buf_truncate(&s->tp.out, mark);
        return rc;
    }
    return shoal__pkt_end(s, mark);
}

/* ---- public channel API ---- */

/* A direct-tcpip open's type-specific part (RFC 4254 7.2). */
typedef struct tcpip_target {
    const char *host;
    uint32_t port;
    const char *orig_host;
    uint32_t orig_port;
} tcpip_target;

/* CHANNEL_OPEN of a session (tcp NULL) or a direct-tcpip channel. */
static int write_open_typed(shoal_session *s, shoal_channel *ch, const tcpip_target *tcp)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_OPEN, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, tcp ? "direct-tcpip" : "session");
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->local_id);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, SHOAL_CHAN_WINDOW);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, SHOAL_CHAN_MAXPKT);
    if (tcp) {
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, tcp->host);
        if (!rc)
            rc = shoal_buf_put_u32(&s->tp.out, tcp->port);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, tcp->orig_host);
        if (!rc)
            rc = shoal_buf_put_u32(&s->tp.out, tcp->orig_port);
    }
    return shoal__chan_finish(s, mark, rc);
}

static int write_open(shoal_session *s, shoal_channel *ch)
{
    return write_open_typed(s, ch, NULL);
}

/* Writes the open; before authentication has ended it rides with the final
 * auth request (shoal__chan_requeue_early_opens undoes that). */
static int send_open(shoal_session *s, shoal_channel *ch)
{
    int rc = write_open(s, ch);
    if (rc)
        return rc;
    ch->open_deferred = 0;
    ch->open_early = s->tp.phase != SHOAL_PHASE_OPEN;
    if (ch->open_early)
        shoal__log(s, 1, "channel %u: open sent with the final auth request", ch->local_id);
    return SHOAL_OK;
}

int shoal__chan_send_deferred_opens(shoal_session *s)
{
    for (uint32_t i = 0; i < s->conn.nchans; i++) {
        shoal_channel *ch = s->conn.chans[i];
        if (ch && ch->open_deferred) {
            int rc = send_open(s, ch);
            if (rc)
                return rc;
        }
    }
    return SHOAL_OK;
}

void shoal__chan_requeue_early_opens(shoal_session *s)
{
    for (uint32_t i = 0; i < s->conn.nchans; i++) {
        shoal_channel *ch = s->conn.chans[i];
        if (ch && ch->open_early && ch->state == CH_OPENING) {
            ch->open_early = 0;
            ch->open_deferred = 1;
        }
    }
}

/* A new channel of ours, being opened (no open written yet). */
static int new_opening(shoal_session *s, shoal_channel **out)
{
    int rc = shoal__chan_alloc(s, out);
    if (rc)
        return rc;
    (*out)->state = CH_OPENING;
    (*out)->local_window = SHOAL_CHAN_WINDOW;
    return SHOAL_OK;
}

/* Writing its open failed: the channel goes and rc is returned. A failure
 * that closed the session (a packet that could not be sealed) released it
 * with the others already; it has no callbacks yet, so the application
 * hears only rc. */
static int forget_unsent(shoal_session *s, shoal_channel *ch, int rc)
{
    if (!s->tp.closed) {
        s->conn.chans[ch->local_id] = NULL;
        s->conn.open_channels--;
        free(ch);
    }
    return rc;
}

/* The open is out (or deferred): the application's callbacks take over. */
static int opened(shoal_channel *ch, const shoal_channel_callbacks *cbs, void *ud, shoal_channel **out)
{
    ch->cb = *cbs;
    ch->ud = ud;
    *out = ch;
    return SHOAL_OK;
}

int shoal_channel_open_session(shoal_session *s, const shoal_channel_callbacks *cb, void *ud, shoal_channel **out)
{
    *out = NULL;
    shoal_channel_callbacks cbs;
    if (SHOAL_COPY_IN_OPT(&cbs, cb))
        return SHOAL_ERR_INVALID_ARG;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    /* A client may open before it is authenticated: the open waits for the
     * final authentication request or for the success. */
    int early = !s->tp.is_server && s->tp.phase != SHOAL_PHASE_OPEN;
    if (s->tp.phase != SHOAL_PHASE_OPEN && !early)
        return SHOAL_ERR_BAD_STATE;
    shoal_channel *ch;
    int rc = new_opening(s, &ch);
    if (rc)
        return rc;
    if (early && !s->auth.auth_final_sent)
        ch->open_deferred = 1;
    else if ((rc = send_open(s, ch)) != 0)
        return forget_unsent(s, ch, rc);
    return opened(ch, &cbs, ud, out);
}

/* Host names and addresses as RFC 4254 7.2 carries them: a non-empty
 * string; 255 bytes is more than any name or address needs. */
static int tcpip_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= 255;
}

int shoal_channel_open_direct_tcpip(shoal_session *s, const char *host, uint32_t port, const char *originator,
                                    uint32_t orig_port, const shoal_channel_callbacks *cb, void *ud,
                                    shoal_channel **out)
{
    *out = NULL;
    shoal_channel_callbacks cbs;
    if (SHOAL_COPY_IN_OPT(&cbs, cb) || !tcpip_name_ok(host) || port > 65535 || orig_port > 65535 ||
        (originator && !tcpip_name_ok(originator)))
        return SHOAL_ERR_INVALID_ARG;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (s->tp.is_server || s->tp.phase != SHOAL_PHASE_OPEN)
        return SHOAL_ERR_BAD_STATE;
    shoal_channel *ch;
    int rc = new_opening(s, &ch);
    if (rc)
        return rc;
    tcpip_target t = {host, port, originator ? originator : "127.0.0.1", orig_port};
    if ((rc = write_open_typed(s, ch, &t)) != 0)
        return forget_unsent(s, ch, rc);
    return opened(ch, &cbs, ud, out);
}

int shoal_channel_env(shoal_channel *ch, const char *name, const char *value)
{
    size_t mark;
    int rc = send_request(ch, "env", 0, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, name);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, value);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_pty(shoal_channel *ch, const char *term, uint32_t cols, uint32_t rows)
{
    size_t mark;
    shoal_buf *o = &ch->s->tp.out;
    int rc = send_request(ch, "pty-req", 1, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(o, term ? term : "xterm");
    if (!rc)
        rc = shoal_buf_put_u32(o, cols);
    if (!rc)
        rc = shoal_buf_put_u32(o, rows);
    if (!rc)
        rc = shoal_buf_put_u32(o, 0);
    if (!rc)
        rc = shoal_buf_put_u32(o, 0);
    /* Encoded terminal modes (RFC 4254 8): none set, just TTY_OP_END. */
    if (!rc)
        rc = shoal_buf_put_string(o, "\0", 1);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_window_change(shoal_channel *ch, uint32_t cols, uint32_t rows)
{
    size_t mark;
    shoal_buf *o = &ch->s->tp.out;
    int rc = send_request(ch, "window-change", 0, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(o, cols);
    if (!rc)
        rc = shoal_buf_put_u32(o, rows);
    if (!rc)
        rc = shoal_buf_put_u32(o, 0);
    if (!rc)
        rc = shoal_buf_put_u32(o, 0);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_exec(shoal_channel *ch, const char *command)
{
    size_t mark;
    int rc = send_request(ch, "exec", 1, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, command);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_shell(shoal_channel *ch)
{
    size_t mark;
    int rc = send_request(ch, "shell", 1, &mark);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_subsystem(shoal_channel *ch, const char *name)
{
    size_t mark;
    int rc = send_request(ch, "subsystem", 1, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, name);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_signal(shoal_channel *ch, const char *signal)
{
    size_t mark;
    int rc = send_request(ch, "signal", 0, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, signal);
    return shoal__chan_finish(ch->s, mark, rc);
}

/* Room without side effects (the notification checks use it). */
static size_t room_now(const shoal_channel *ch)
{
    const shoal_session *s = ch->s;
    if (s->tp.closed || ch->state != CH_OPEN || ch->eof_sent || ch->close_sent || kex_blocks_sending(s))
        return 0;
    size_t out = shoal_buf_len(&s->tp.out);
    if (out >= SHOAL_OUT_HIGH_WATER)
        return 0;
    /* Never past the mark by more than one packet's headers: channel data
     * alone keeps output below the input-pause mark (session_impl.h). */
    size_t room = SHOAL_OUT_HIGH_WATER - out;
    return ch->remote_window < room ? ch->remote_window : room;
}

size_t shoal_channel_writable(shoal_channel *ch)
{
    size_t room = room_now(ch);
    /* A caller told "no room" waits for on_writable: make sure it comes
     * (the audit's hung uploads stopped here and were never told). */
    if (room == 0)
        ch->want_writable = 1;
    return room;
}

/* Sends data (ext = 0) or extended data of type ext, as far as the peer's
 * window and our output high-water mark allow. */
int shoal__chan_write(shoal_channel *ch, uint32_t ext, const void *data, size_t len, size_t *written)
{
    shoal_session *s = ch->s;
    const uint8_t *p = data;
    *written = 0;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (ch->state != CH_OPEN || ch->eof_sent || ch->close_sent)
        return SHOAL_ERR_BAD_STATE;
    /* Measured once: writable() said exactly this much would be taken
     * (packet headers may take output a little past the mark). */
    size_t room = room_now(ch);
    while (len > 0 && room > 0) {
        size_t n = len < room ? len : room;
        if (n > ch->remote_maxpkt)
            n = ch->remote_maxpkt;
        size_t mark;
        int rc = shoal__pkt_begin(s, ext ? SSH_MSG_CHANNEL_EXTENDED_DATA : SSH_MSG_CHANNEL_DATA, &mark);
        if (!rc)
            rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
        if (!rc && ext)
            rc = shoal_buf_put_u32(&s->tp.out, ext);
        if (!rc)
            rc = shoal_buf_put_string(&s->tp.out, p, n);
        rc = shoal__chan_finish(s, mark, rc);
        if (rc)
            return rc;
        ch->remote_window -= (uint32_t)n;
        room -= n;
        p += n;
        len -= n;
        *written += n;
    }
    if (len > 0)
        ch->want_writable = 1;
    return SHOAL_OK;
}

int shoal_channel_write(shoal_channel *ch, const void *data, size_t len, size_t *written)
{
    return shoal__chan_write(ch, 0, data, len, written);
}

int shoal_channel_send_eof(shoal_channel *ch)
{
    shoal_session *s = ch->s;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (ch->state != CH_OPEN || ch->close_sent)
        return SHOAL_ERR_BAD_STATE;
    if (ch->eof_sent)
        return SHOAL_OK;
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_EOF, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    rc = shoal__chan_finish(s, mark, rc);
    if (s->tp.closed)
        return rc; /* the session ended on it and released its channels */
    ch->eof_sent = 1;
    return rc;
}

int shoal_channel_close(shoal_channel *ch)
{
    if (ch->s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (ch->open_deferred) {
        /* Never sent: the peer knows nothing of it. */
        ch->state = CH_CLOSED;
        shoal__chan_release(ch);
        return SHOAL_OK;
    }
    if (ch->state == CH_OPENING) {
        /* Cannot close before the peer answers; close as soon as it does. */
        ch->close_sent = 2;
        return SHOAL_OK;
    }
    return send_close(ch);
}

void shoal_channel_detach(shoal_channel *ch)
{
    memset(&ch->cb, 0, sizeof(ch->cb));
    ch->ud = NULL;
    ch->manual_window = 0;
}

void shoal_channel_set_manual_window(shoal_channel *ch, int manual)
{
    ch->manual_window = manual;
}

void shoal_channel_consume(shoal_channel *ch, size_t n)
{
    shoal_session *s = ch->s;
    if (n > UINT32_MAX - ch->local_consumed)
        n = UINT32_MAX - ch->local_consumed;
    ch->local_consumed += (uint32_t)n;
    if (s->tp.closed || ch->state != CH_OPEN || ch->eof_received || ch->close_sent)
        return;
    /* Re-announce in big steps: one WINDOW_ADJUST per half window. */
    if (ch->local_consumed < SHOAL_CHAN_WINDOW / 2)
        return;
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_WINDOW_ADJUST, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->local_consumed);
    if (shoal__chan_finish(s, mark, rc) == 0) {
        ch->local_window += ch->local_consumed;
        ch->local_consumed = 0;
    }
}

shoal_session *shoal_channel_session(const shoal_channel *ch)
{
    return ch->s;
}

void *shoal_channel_userdata(const shoal_channel *ch)
{
    return ch->ud;
}

uint32_t shoal_channel_id(const shoal_channel *ch)
{
    return ch->local_id;
}

void shoal__conn_notify_writable(shoal_session *s)
{
    for (uint32_t i = 0; i < s->conn.nchans && !s->tp.closed; i++) {
        shoal_channel *ch = s->conn.chans[i];
        if (ch && ch->want_writable && room_now(ch) > 0) {
            ch->want_writable = 0;
            notify_writable(ch);
        }
    }
}

int shoal__conn_keepalive(shoal_session *s)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_GLOBAL_REQUEST, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "keepalive@openssh.com");
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, 1);
    return shoal__chan_finish(s, mark, rc);
}

/* ---- receiving ---- */

#define PROTO_FAIL(s, ...) shoal__fail((s), SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, __VA_ARGS__)

static int on_open_confirm(shoal_session *s, shoal_channel *ch, shoal_rd *r)
{
    uint32_t rid, win, maxpkt;
    if (shoal_rd_u32(r, &rid) || shoal_rd_u32(r, &win) || shoal_rd_u32(r, &maxpkt))
        return PROTO_FAIL(s, "malformed CHANNEL_OPEN_CONFIRMATION");
    if (ch->state != CH_OPENING)
        return PROTO_FAIL(s, "CHANNEL_OPEN_CONFIRMATION for channel %u not being opened", ch->local_id);
    if (maxpkt == 0)
        return PROTO_FAIL(s, "channel %u confirmed with a maximum packet size of 0", ch->local_id);
    ch->remote_id = rid;
    ch->remote_window = win;
    /* Our packets must also fit our own cap, headers included. */
    ch->remote_maxpkt = maxpkt < SHOAL_MAX_PACKET - 1024 ? maxpkt : SHOAL_MAX_PACKET - 1024;
    ch->state = CH_OPEN;
    if (ch->close_sent == 2) { /* closed by the application meanwhile */
        ch->close_sent = 0;
        return send_close(ch);
    }
    if (ch->cb.on_open)
        ch->cb.on_open(ch, 0, NULL, ch->ud);
    return SHOAL_OK;
}

static const char *open_failure_reason(uint32_t code)
{
    switch (code) {
    case 1:
        return "administratively prohibited";
    case 2:
        return "connect failed";
    case 3:
        return "unknown channel type";
    case 4:
        return "resource shortage";
    }
    return "unknown reason";
}

static int on_open_failure(shoal_session *s, shoal_channel *ch, shoal_rd *r)
{
    uint32_t code;
    const char *desc;
    size_t dl;
    if (shoal_rd_u32(r, &code) || shoal_rd_cstring(r, &desc, &dl))
        return PROTO_FAIL(s, "malformed CHANNEL_OPEN_FAILURE");
    if (ch->state != CH_OPENING)
        return PROTO_FAIL(s, "CHANNEL_OPEN_FAILURE for channel %u not being opened", ch->local_id);
    char msg[300];
    snprintf(msg, sizeof(msg), "%s%s%.*s", open_failure_reason(code), dl ? ": " : "", (int)(dl > 200 ? 200 : dl),
             desc);
    for (char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    ch->state = CH_CLOSED;
    if (ch->cb.on_open)
        ch->cb.on_open(ch, SHOAL_ERR_CHANNEL_OPEN, msg, ch->ud);
    shoal__chan_release(ch);
    return SHOAL_OK;
}

static int on_data(shoal_session *s, shoal_channel *ch, int stream, shoal_rd *r)
{
    const uint8_t *d;
    size_t n;
    if (shoal_rd_string(r, &d, &n) || shoal_rd_end(r))
        return PROTO_FAIL(s, "malformed channel data");
    if (ch->state != CH_OPEN || ch->eof_received)
        return PROTO_FAIL(s, "data on channel %u after EOF or before it was open", ch->local_id);
    if (n > ch->local_window || n > SHOAL_CHAN_MAXPKT)
        return PROTO_FAIL(s, "server sent %zu bytes on channel %u beyond its window (%u)", n, ch->local_id,
                          ch->local_window);
    ch->local_window -= (uint32_t)n;
    if (ch->close_sent)
        return SHOAL_OK; /* we are closing: discard */
    if (n)
        notify_data(ch, stream, d, n);
    if (s->tp.closed)
        return SHOAL_OK;
    if (!ch->manual_window && s->conn.chans[ch->local_id] == ch)
        shoal_channel_consume(ch, n);
    return SHOAL_OK;
}

static int on_channel_request(shoal_session *s, shoal_channel *ch, shoal_rd *r)
{
    const char *name;
    size_t nl;
    int want_reply;
    if (shoal_rd_cstring(r, &name, &nl) || shoal_rd_bool(r, &want_reply))
        return PROTO_FAIL(s, "malformed CHANNEL_REQUEST");
    int ok = 0;
    if (nl == 11 && memcmp(name, "exit-status", 11) == 0) {
        uint32_t st;
        if (shoal_rd_u32(r, &st) || shoal_rd_end(r))
            return PROTO_FAIL(s, "malformed exit-status");
        if (ch->cb.on_exit_status)
            ch->cb.on_exit_status(ch, st, ch->ud);
        ok = 1;
    } else if (nl == 11 && memcmp(name, "exit-signal", 11) == 0) {
        const char *sig, *msg, *lang;
        size_t sl, ml, ll;
        int core;
        if (shoal_rd_cstring(r, &sig, &sl) || shoal_rd_bool(r, &core) || shoal_rd_cstring(r, &msg, &ml) ||
            shoal_rd_cstring(r, &lang, &ll) || shoal_rd_end(r) || sl == 0 || sl > 32)
            return PROTO_FAIL(s, "malformed exit-signal");
        char sname[33], smsg[256];
        size_t k = 0;
        for (size_t i = 0; i < sl; i++)
            sname[k++] = (sig[i] > 0x20 && sig[i] < 0x7f) ? sig[i] : '?';
        sname[k] = 0;
        k = 0;
        for (size_t i = 0; i < ml && k + 1 < sizeof(smsg); i++)
            smsg[k++] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? msg[i] : '?';
        smsg[k] = 0;
        if (ch->cb.on_exit_signal)
            ch->cb.on_exit_signal(ch, sname, core, smsg, ch->ud);
        ok = 1;
    }
    if (s->tp.closed)
        return SHOAL_OK; /* the application ended the session from the callback: ch is released */
    if (want_reply && !ch->close_sent) {
        size_t mark;
        int rc = shoal__pkt_begin(s, ok ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE, &mark);
        if (!rc)
            rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
        return shoal__chan_finish(s, mark, rc);
    }
    return SHOAL_OK;
}

static int on_global_request(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *name;
    size_t nl;
    int want_reply;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &name, &nl) || shoal_rd_bool(&r, &want_reply))
        return PROTO_FAIL(s, "malformed GLOBAL_REQUEST");
    /* We accept no global requests from a server (e.g. hostkeys-00@openssh.com
     * needs no answer); refuse those that want one. */
    if (!want_reply)
        return SHOAL_OK;
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_REQUEST_FAILURE, &mark);
    return shoal__chan_finish(s, mark, rc);
}

static int on_server_channel_open(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *type;
    size_t tl;
    uint32_t sender;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &type, &tl) || shoal_rd_u32(&r, &sender))
        return PROTO_FAIL(s, "malformed CHANNEL_OPEN");
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_OPEN_FAILURE, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, sender);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, 1);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "not accepted by this client");
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "");
    return shoal__chan_finish(s, mark, rc);
}

int shoal__conn_dispatch(shoal_session *s, uint8_t type, const uint8_t *p, size_t n)
{
    switch (type) {
    case SSH_MSG_GLOBAL_REQUEST:
        return on_global_request(s, p, n);
    case SSH_MSG_REQUEST_SUCCESS:
    case SSH_MSG_REQUEST_FAILURE:
        return SHOAL_OK; /* answers to our keepalives */
    case SSH_MSG_CHANNEL_OPEN:
        return s->tp.is_server ? shoal__chan_server_open(s, p, n) : on_server_channel_open(s, p, n);
    default:
        break;
    }
    shoal_rd r;
    uint32_t id;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_u32(&r, &id))
        return PROTO_FAIL(s, "malformed channel message %u", type);
    shoal_channel *ch = chan_get(s, id);
    if (!ch || ch->close_received)
        return PROTO_FAIL(s, "message %u for unknown channel %u", type, id);
    switch (type) {
    case SSH_MSG_CHANNEL_OPEN_CONFIRMATION:
        return on_open_confirm(s, ch, &r);
    case SSH_MSG_CHANNEL_OPEN_FAILURE:
        return on_open_failure(s, ch, &r);
    case SSH_MSG_CHANNEL_WINDOW_ADJUST: {
        uint32_t add;
        if (shoal_rd_u32(&r, &add) || shoal_rd_end(&r))
            return PROTO_FAIL(s, "malformed WINDOW_ADJUST");
        if (ch->state != CH_OPEN)
            return PROTO_FAIL(s, "WINDOW_ADJUST for channel %u not open", id);
        if (add > UINT32_MAX - ch->remote_window)
            return PROTO_FAIL(s, "window of channel %u overflows 2^32-1", id);
        ch->remote_window += add;
        if (ch->want_writable && room_now(ch) > 0) {
            ch->want_writable = 0;
            notify_writable(ch);
        }
        return SHOAL_OK;
    }
    case SSH_MSG_CHANNEL_DATA:
        return on_data(s, ch, SHOAL_STDOUT, &r);
    case SSH_MSG_CHANNEL_EXTENDED_DATA: {
        uint32_t code;
        if (shoal_rd_u32(&r, &code))
            return PROTO_FAIL(s, "malformed EXTENDED_DATA");
        /* Only stderr (1) is defined; other codes are counted against the
         * window and dropped. */
        if (code != 1) {
            const uint8_t *d;
            size_t dl;
            if (shoal_rd_string(&r, &d, &dl) || dl > ch->local_window)
                return PROTO_FAIL(s, "bad EXTENDED_DATA");
            ch->local_window -= (uint32_t)dl;
            shoal_channel_consume(ch, dl);
            return SHOAL_OK;
        }
        return on_data(s, ch, SHOAL_STDERR, &r);
    }
    case SSH_MSG_CHANNEL_EOF:
        if (ch->state != CH_OPEN || ch->eof_received)
            return PROTO_FAIL(s, "unexpected EOF on channel %u", id);
        ch->eof_received = 1;
        if (!ch->close_sent)
            notify_eof(ch);
        return SHOAL_OK;
    case SSH_MSG_CHANNEL_CLOSE: {
        if (ch->state != CH_OPEN)
            return PROTO_FAIL(s, "CLOSE for channel %u not open", id);
        ch->close_received = 1;
        int rc = send_close(ch);
        if (s->tp.closed)
            return rc; /* released with the session */
        ch->state = CH_CLOSED;
        shoal__chan_release(ch);
        return rc;
    }
    case SSH_MSG_CHANNEL_REQUEST:
        if (ch->state != CH_OPEN)
            return PROTO_FAIL(s, "request for channel %u not open", id);
        return ch->peer_opened ? shoal__chan_server_request(s, ch, &r) : on_channel_request(s, ch, &r);
    case SSH_MSG_CHANNEL_SUCCESS:
    case SSH_MSG_CHANNEL_FAILURE: {
        if (!ch->pending_replies)
            return PROTO_FAIL(s, "unsolicited reply on channel %u", id);
        char name[16];
        memcpy(name, ch->pending_names[0], sizeof(name));
        memmove(ch->pending_names[0], ch->pending_names[1], sizeof(ch->pending_names[0]) * 7);
        ch->pending_replies--;
        if (ch->cb.on_request)
            ch->cb.on_request(ch, name, type == SSH_MSG_CHANNEL_SUCCESS, ch->ud);
        return SHOAL_OK;
    }
    }
    return PROTO_FAIL(s, "unexpected message %u", type);
}
