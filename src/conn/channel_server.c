/* Connection protocol, server side (RFC 4254): channels the client opens,
 * their requests, and what a server sends back (stderr, exit status, exit
 * signal). The client-side machinery in channel.c (windows, data, EOF,
 * CLOSE) is shared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "conn/channel_impl.h"

#define PROTO_FAIL(s, ...) shoal__fail((s), SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, __VA_ARGS__)

static int send_open_failure(shoal_session *s, uint32_t remote, uint32_t reason, const char *desc)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_OPEN_FAILURE, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, remote);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, reason);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, desc);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "");
    return shoal__chan_finish(s, mark, rc);
}

static int send_open_confirmation(shoal_channel *ch)
{
    shoal_session *s = ch->s;
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_OPEN_CONFIRMATION, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->local_id);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, SHOAL_CHAN_WINDOW);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, SHOAL_CHAN_MAXPKT);
    return shoal__chan_finish(s, mark, rc);
}

static const char *reason_text(int reason)
{
    switch (reason) {
    case 1:
        return "administratively prohibited";
    case 2:
        return "connect failed";
    case 3:
        return "unknown channel type";
    default:
        return "resource shortage";
    }
}

/* Frees a channel the application never accepted (no close callback). */
static void drop(shoal_channel *ch)
{
    shoal_session *s = ch->s;
    s->conn.chans[ch->local_id] = NULL;
    s->conn.open_channels--;
    free(ch);
}

static int finish_open(shoal_channel *ch, int reason, const char *desc)
{
    shoal_session *s = ch->s;
    if (reason == 0) {
        ch->state = CH_OPEN;
        return send_open_confirmation(ch);
    }
    uint32_t remote = ch->remote_id;
    drop(ch);
    return send_open_failure(s, remote, (uint32_t)(reason > 0 && reason <= 4 ? reason : 4),
                             desc ? desc : reason_text(reason));
}

int shoal__chan_server_open(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *type;
    size_t tl;
    uint32_t sender, window, maxpkt;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &type, &tl) || shoal_rd_u32(&r, &sender) || shoal_rd_u32(&r, &window) ||
        shoal_rd_u32(&r, &maxpkt))
        return PROTO_FAIL(s, "malformed CHANNEL_OPEN");
    /* A maximum packet of 0 would make every write spin (CVE-2026-59843). */
    if (maxpkt == 0)
        return send_open_failure(s, sender, 2, "maximum packet size of 0");
    if (s->conn.open_channels >= s->conn.max_channels)
        return send_open_failure(s, sender, 4, "too many channels");
    char tname[64];
    if (tl == 0 || tl >= sizeof(tname))
        return send_open_failure(s, sender, 3, "unknown channel type");
    memcpy(tname, type, tl);
    tname[tl] = 0;
    shoal_channel *ch;
    int rc = shoal__chan_alloc(s, &ch);
    if (rc)
        return send_open_failure(s, sender, 4, "resource shortage");
    ch->peer_opened = 1;
    ch->state = CH_PEER_OPENING;
    ch->remote_id = sender;
    ch->remote_window = window;
    ch->remote_maxpkt = maxpkt < SHOAL_MAX_PACKET - 1024 ? maxpkt : SHOAL_MAX_PACKET - 1024;
    ch->local_window = SHOAL_CHAN_WINDOW;
    int result = s->scb.channel_open(s, ch, tname, s->tp.ud);
    if (s->tp.closed)
        return SHOAL_OK;
    if (result == SHOAL_ERR_DEFERRED)
        return SHOAL_OK;
    return finish_open(ch, result < 0 ? 1 : result, NULL);
}

int shoal_channel_open_reply(shoal_channel *ch, int reason, const char *description)
{
    if (ch->s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (!ch->peer_opened || ch->state != CH_PEER_OPENING)
        return SHOAL_ERR_BAD_STATE;
    return finish_open(ch, reason, description);
}

void shoal_channel_set_server_callbacks(shoal_channel *ch, const shoal_server_channel_callbacks *cb, void *ud)
{
    /* A struct that was never initialised (size 0) sets no callbacks. */
    SHOAL_COPY_IN_OPT(&ch->scb, cb);
    ch->ud = ud;
}

static int send_reply(shoal_channel *ch, int ok)
{
    shoal_session *s = ch->s;
    if (ch->close_sent)
        return SHOAL_OK;
    size_t mark;
    int rc = shoal__pkt_begin(s, ok ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    return shoal__chan_finish(s, mark, rc);
}

int shoal_channel_request_reply(shoal_channel *ch, int ok)
{
    if (ch->s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (!ch->deferred_replies)
        return SHOAL_ERR_BAD_STATE;
    ch->deferred_replies--;
    return send_reply(ch, ok);
}

/* Copies a wire string into a NUL-terminated, printable-only buffer. */
static int take_text(shoal_rd *r, char *out, size_t outsz)
{
    const char *p;
    size_t n;
    if (shoal_rd_cstring(r, &p, &n) || n >= outsz)
        return SHOAL_ERR_BAD_FORMAT;
    memcpy(out, p, n);
    out[n] = 0;
    return SHOAL_OK;
}

int shoal__chan_server_request(shoal_session *s, shoal_channel *ch, shoal_rd *r)
{
    const char *type;
    size_t tl;
    int want_reply;
    if (shoal_rd_cstring(r, &type, &tl) || shoal_rd_bool(r, &want_reply))
        return PROTO_FAIL(s, "malformed CHANNEL_REQUEST");
    char tname[64];
    if (tl == 0 || tl >= sizeof(tname))
        return want_reply ? send_reply(ch, 0) : SHOAL_OK;
    memcpy(tname, type, tl);
    tname[tl] = 0;
    shoal_channel_request req;
    memset(&req, 0, sizeof(req));
    req.type = tname;
    req.want_reply = want_reply;
    /* Field buffers: requests are handled synchronously or copied by the
     * application before it defers. */
    char *big = NULL;
    char small1[256] = "", small2[1024] = "";
    const uint8_t *modes;
    size_t ml;
    int bad = 0;
    if (!strcmp(tname, "exec")) {
        const char *c;
        size_t cl;
        if (shoal_rd_cstring(r, &c, &cl) || shoal_rd_end(r) || !(big = malloc(cl + 1)))
            bad = 1;
        else {
            memcpy(big, c, cl);
            big[cl] = 0;
            req.command = big;
        }
    } else if (!strcmp(tname, "subsystem")) {
        bad = take_text(r, small1, sizeof(small1)) || shoal_rd_end(r);
        req.subsystem = small1;
    } else if (!strcmp(tname, "shell")) {
        bad = shoal_rd_end(r) != 0;
    } else if (!strcmp(tname, "pty-req")) {
        bad = take_text(r, small1, sizeof(small1)) || shoal_rd_u32(r, &req.cols) || shoal_rd_u32(r, &req.rows) ||
              shoal_rd_u32(r, &req.width_px) || shoal_rd_u32(r, &req.height_px) ||
              shoal_rd_string(r, &modes, &ml) || shoal_rd_end(r);
        req.term = small1;
        if (!bad) {
            req.modes = modes;
            req.modes_len = ml;
        }
    } else if (!strcmp(tname, "window-change")) {
        bad = shoal_rd_u32(r, &req.cols) || shoal_rd_u32(r, &req.rows) || shoal_rd_u32(r, &req.width_px) ||
              shoal_rd_u32(r, &req.height_px) || shoal_rd_end(r);
    } else if (!strcmp(tname, "env")) {
        bad = take_text(r, small1, sizeof(small1)) || take_text(r, small2, sizeof(small2)) || shoal_rd_end(r);
        req.name = small1;
        req.value = small2;
    } else if (!strcmp(tname, "signal")) {
        bad = take_text(r, small1, 32) || shoal_rd_end(r);
        req.signal = small1;
    }
    int rc = SHOAL_OK;
    if (bad) {
        rc = want_reply ? send_reply(ch, 0) : SHOAL_OK;
    } else {
        /* Counted as owed before the callback runs, so that it may answer
         * at once with shoal_channel_request_reply() (and return
         * SHOAL_ERR_DEFERRED) and then send what must follow the answer. */
        unsigned owed = ch->deferred_replies;
        if (want_reply)
            ch->deferred_replies++;
        int ok = ch->scb.on_request ? ch->scb.on_request(ch, &req, ch->ud) : 0;
        if (s->tp.closed) {
            free(big);
            return SHOAL_OK;
        }
        if (ok != SHOAL_ERR_DEFERRED && want_reply && ch->deferred_replies > owed) {
            ch->deferred_replies--;
            rc = send_reply(ch, ok > 0);
        }
    }
    free(big);
    return rc;
}

int shoal_channel_write_stderr(shoal_channel *ch, const void *data, size_t len, size_t *written)
{
    return shoal__chan_write(ch, 1, data, len, written); /* SSH_EXTENDED_DATA_STDERR */
}

static int begin_exit_request(shoal_channel *ch, const char *name, size_t *mark)
{
    shoal_session *s = ch->s;
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (ch->state != CH_OPEN || ch->close_sent)
        return SHOAL_ERR_BAD_STATE;
    int rc = shoal__pkt_begin(s, SSH_MSG_CHANNEL_REQUEST, mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, ch->remote_id);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, name);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, 0);
    return rc;
}

int shoal_channel_exit_status(shoal_channel *ch, uint32_t status)
{
    size_t mark = 0;
    int rc = begin_exit_request(ch, "exit-status", &mark);
    if (rc == SHOAL_ERR_CLOSED || rc == SHOAL_ERR_BAD_STATE)
        return rc;
    if (!rc)
        rc = shoal_buf_put_u32(&ch->s->tp.out, status);
    return shoal__chan_finish(ch->s, mark, rc);
}

int shoal_channel_exit_signal(shoal_channel *ch, const char *signal, int core_dumped, const char *message)
{
    size_t mark = 0;
    int rc = begin_exit_request(ch, "exit-signal", &mark);
    if (rc == SHOAL_ERR_CLOSED || rc == SHOAL_ERR_BAD_STATE)
        return rc;
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, signal);
    if (!rc)
        rc = shoal_buf_put_bool(&ch->s->tp.out, core_dumped);
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, message ? message : "");
    if (!rc)
        rc = shoal_buf_put_cstring(&ch->s->tp.out, "");
    return shoal__chan_finish(ch->s, mark, rc);
}

void shoal_session_set_max_channels(shoal_session *s, unsigned n)
{
    s->conn.max_channels = n ? n : 1;
}
