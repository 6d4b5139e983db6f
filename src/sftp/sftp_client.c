/* SFTP v3 client: the channel glue, the request table, reply dispatch and
 * the small operations (stat, remove, rename, mkdir, realpath).
 *
 * Lifetime: a shoal_sftp lives until its channel is gone (on_close of the
 * channel, or shoal__sftp_io_closed for a fake transport). Every entry point
 * (public call or transport event) holds sf->busy, so callbacks that close
 * or abort cannot free memory still in use: uploads that finished and sf
 * itself are freed when the outermost entry returns. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "abi.h"
#include "sftp/sftp_impl.h"
#include "transport/transport_impl.h"

/* ---- logging ---- */

void shoal__sftp_logf(shoal_sftp *sf, int level, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (sf->s)
        shoal__log(sf->s, level, "sftp: %s", line);
    if (sf->cb.on_log)
        sf->cb.on_log(sf, level, line, sf->ud);
}

/* ---- lifetime ---- */

static void sftp_free(shoal_sftp *sf)
{
    for (unsigned i = 0; i < SFTP_MAX_REQS; i++)
        free(sf->reqs[i].path);
    shoal_buf_free(&sf->in);
    shoal_buf_free(&sf->out);
    free(sf);
}

void shoal__sftp_enter(shoal_sftp *sf)
{
    sf->busy++;
}

void shoal__sftp_leave(shoal_sftp *sf)
{
    if (--sf->busy > 0)
        return;
    shoal__sftp_put_reap(sf);
    if (sf->transport_gone && sf->closed_reported)
        sftp_free(sf);
}

/* ---- request table ---- */

sftp_req *shoal__sftp_req_new(shoal_sftp *sf, uint8_t type, sftp_req_fn fn, void *ctx)
{
    if (sf->nreqs >= SFTP_MAX_REQS)
        return NULL;
    /* Slots are reused round-robin; the id carries the slot in its low byte
     * and a sequence number above it, so a stale id never matches. */
    for (unsigned k = 0; k < SFTP_MAX_REQS; k++) {
        unsigned slot = (sf->seq + k) % SFTP_MAX_REQS;
        sftp_req *rq = &sf->reqs[slot];
        if (rq->used)
            continue;
        sf->seq++;
        memset(rq, 0, sizeof(*rq));
        rq->used = 1;
        rq->id = (sf->seq << 8) | slot;
        rq->type = type;
        rq->fn = fn;
        rq->ctx = ctx;
        sf->nreqs++;
        return rq;
    }
    return NULL;
}

void shoal__sftp_req_free(shoal_sftp *sf, sftp_req *rq)
{
    if (!rq->used)
        return;
    free(rq->path);
    memset(rq, 0, sizeof(*rq));
    sf->nreqs--;
}

unsigned shoal__sftp_free_slots(const shoal_sftp *sf)
{
    return SFTP_MAX_REQS - sf->nreqs;
}

static sftp_req *req_find(shoal_sftp *sf, uint32_t id)
{
    sftp_req *rq = &sf->reqs[(id & 0xffu) % SFTP_MAX_REQS];
    if ((id & 0xffu) >= SFTP_MAX_REQS || !rq->used || rq->id != id)
        return NULL;
    return rq;
}

/* ---- sending ---- */

size_t shoal__sftp_staged(const shoal_sftp *sf)
{
    return shoal_buf_len(&sf->out);
}

size_t shoal__sftp_room(const shoal_sftp *sf)
{
    if (sf->state == SFTP_DEAD || sf->transport_gone || shoal_buf_len(&sf->out) > 0)
        return 0;
    return sf->io->writable(sf->io_ctx);
}

/* Hands staged bytes to the transport; asks to hear about room when it is
 * full. */
static int flush(shoal_sftp *sf)
{
    if (sf->transport_gone)
        return SHOAL_ERR_CLOSED;
    while (shoal_buf_len(&sf->out) > 0) {
        size_t taken = 0;
        int rc = sf->io->write(sf->io_ctx, shoal_buf_ptr(&sf->out), shoal_buf_len(&sf->out), &taken);
        if (rc)
            return rc;
        if (taken == 0)
            break;
        shoal_buf_consume(&sf->out, taken);
    }
    if (shoal_buf_len(&sf->out) > 0 || sf->io->writable(sf->io_ctx) == 0)
        sf->io->arm(sf->io_ctx);
    return SHOAL_OK;
}

int shoal__sftp_send_begin(shoal_sftp *sf, sftp_req *rq, size_t *mark)
{
    int rc = shoal__sftp_pkt_begin(&sf->out, rq->type, mark);
    if (!rc)
        rc = shoal_buf_put_u32(&sf->out, rq->id);
    if (rc)
        shoal_buf_truncate(&sf->out, *mark);
    return rc;
}

int shoal__sftp_send_end(shoal_sftp *sf, sftp_req *rq, size_t mark, int rc)
{
    if (!rc)
        rc = shoal__sftp_pkt_end(&sf->out, mark);
    else
        shoal_buf_truncate(&sf->out, mark);
    if (rc) {
        shoal__sftp_req_free(sf, rq);
        return rc;
    }
    rc = flush(sf);
    if (rc) {
        /* The request is queued but cannot leave: the client dies, which
         * completes rq with the error (so this still counts as queued). */
        shoal__sftp_fail(sf, rc, "cannot send to the sftp channel: %s", shoal_strerror(rc));
    }
    return SHOAL_OK;
}

/* ---- failure ---- */

static void fail_requests(shoal_sftp *sf, int err, const char *message)
{
    for (unsigned i = 0; i < SFTP_MAX_REQS; i++) {
        sftp_req *rq = &sf->reqs[i];
        if (!rq->used)
            continue;
        sftp_req copy = *rq;
        rq->path = NULL;
        shoal__sftp_req_free(sf, rq);
        copy.fn(sf, &copy, NULL, err, message);
        free(copy.path);
    }
}

void shoal__sftp_fail(shoal_sftp *sf, int err, const char *fmt, ...)
{
    if (sf->state == SFTP_DEAD)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sf->msg, sizeof(sf->msg), fmt, ap);
    va_end(ap);
    sf->state = SFTP_DEAD;
    sf->err = err;
    char message[sizeof(sf->msg)];
    memcpy(message, sf->msg, sizeof(message));
    if (err != SHOAL_ERR_CLOSED)
        shoal__sftp_logf(sf, 1, "%s", message);
    if (!sf->transport_gone) {
        /* Close first, so callbacks below see a dead client. */
        shoal_buf_reset(&sf->out);
        sf->io->close(sf->io_ctx);
    }
    fail_requests(sf, err, message);
    shoal__sftp_put_fail_all(sf, err, message);
    if (!sf->ready_reported) {
        sf->ready_reported = 1;
        if (sf->cb.on_ready)
            sf->cb.on_ready(sf, err, message, sf->ud);
    }
}

/* ---- transport events ---- */

static int dispatch_version(shoal_sftp *sf, const uint8_t *p, size_t n)
{
    uint32_t version;
    int rc = shoal__sftp_parse_version(p, n, &version, sf->exts, SFTP_MAX_EXTENSIONS, &sf->n_exts);
    if (rc == SHOAL_ERR_UNEXPECTED_MESSAGE) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp server sent message %u before VERSION", p[0]);
        return SHOAL_ERR_PROTOCOL;
    }
    if (rc) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "malformed sftp VERSION: %s", shoal_strerror(rc));
        return SHOAL_ERR_PROTOCOL;
    }
    if (version != SFTP_VERSION) {
        shoal__sftp_fail(sf, SHOAL_ERR_UNSUPPORTED, "sftp server speaks protocol version %u, not 3", version);
        return SHOAL_ERR_UNSUPPORTED;
    }
    sf->version = version;
    sf->state = SFTP_READY;
    sf->ready_reported = 1;
    shoal__sftp_logf(sf, 2, "sftp version 3, %u extension(s)", sf->n_exts);
    if (sf->cb.on_ready)
        sf->cb.on_ready(sf, 0, NULL, sf->ud);
    return SHOAL_OK;
}

/* Which reply types a request may get besides a non-OK STATUS. */
static int reply_fits(uint8_t req, const sftp_reply *rep)
{
    switch (req) {
    case SSH_FXP_OPEN:
    case SSH_FXP_OPENDIR:
        return rep->type == SSH_FXP_HANDLE || (rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK);
    case SSH_FXP_STAT:
    case SSH_FXP_LSTAT:
    case SSH_FXP_FSTAT:
        return rep->type == SSH_FXP_ATTRS || (rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK);
    case SSH_FXP_REALPATH:
    case SSH_FXP_READLINK:
        return (rep->type == SSH_FXP_NAME && rep->count == 1) ||
               (rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK);
    case SSH_FXP_READ:
        return rep->type == SSH_FXP_DATA || (rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK);
    case SSH_FXP_READDIR:
        return rep->type == SSH_FXP_NAME || (rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK);
    case SSH_FXP_EXTENDED:
        return rep->type == SSH_FXP_STATUS || rep->type == SSH_FXP_EXTENDED_REPLY;
    }
    return rep->type == SSH_FXP_STATUS;
}

static int dispatch(shoal_sftp *sf, const uint8_t *p, size_t n)
{
    if (sf->state == SFTP_INIT_SENT)
        return dispatch_version(sf, p, n);
    if (sf->state != SFTP_READY) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp server sent data before INIT");
        return SHOAL_ERR_PROTOCOL;
    }
    sftp_reply rep;
    int rc = shoal__sftp_parse_reply(p, n, &rep);
    if (rc) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "malformed sftp reply (type %u): %s", p[0], shoal_strerror(rc));
        return SHOAL_ERR_PROTOCOL;
    }
    sftp_req *rq = req_find(sf, rep.id);
    if (!rq) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp reply (type %u) to unknown request id %u", rep.type,
                         rep.id);
        return SHOAL_ERR_PROTOCOL;
    }
    if (!reply_fits(rq->type, &rep)) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp reply of type %u does not answer request type %u", rep.type,
                         rq->type);
        return SHOAL_ERR_PROTOCOL;
    }
    /* Free the slot before the callback so it can start another request. */
    sftp_req copy = *rq;
    rq->path = NULL;
    shoal__sftp_req_free(sf, rq);
    copy.fn(sf, &copy, &rep, 0, NULL);
    free(copy.path);
    return sf->state == SFTP_DEAD ? sf->err : SHOAL_OK;
}

int shoal__sftp_io_data(shoal_sftp *sf, const uint8_t *p, size_t n)
{
    int rc = SHOAL_OK;
    shoal__sftp_enter(sf);
    while (n > 0 && sf->state != SFTP_DEAD) {
        size_t have = shoal_buf_len(&sf->in), pkt = 0;
        if (have == 0 && n >= 4) {
            /* Whole packets straight from the input, no copy. */
            if ((rc = shoal__sftp_frame(p, n, &pkt)) != 0)
                break;
            if (pkt <= n) {
                rc = dispatch(sf, p + 4, pkt - 4);
                p += pkt;
                n -= pkt;
                if (rc)
                    break;
                continue;
            }
        }
        if (have < 4) {
            size_t take = 4 - have < n ? 4 - have : n;
            if ((rc = shoal_buf_put(&sf->in, p, take)) != 0)
                break;
            p += take;
            n -= take;
            /* Judge the length as soon as it is complete. */
            if (shoal_buf_len(&sf->in) == 4 && (rc = shoal__sftp_frame(shoal_buf_ptr(&sf->in), 4, &pkt)) != 0)
                break;
            continue;
        }
        if ((rc = shoal__sftp_frame(shoal_buf_ptr(&sf->in), have, &pkt)) != 0)
            break;
        size_t take = pkt - have < n ? pkt - have : n;
        if ((rc = shoal_buf_put(&sf->in, p, take)) != 0)
            break;
        p += take;
        n -= take;
        if (shoal_buf_len(&sf->in) == pkt) {
            rc = dispatch(sf, shoal_buf_ptr(&sf->in) + 4, pkt - 4);
            shoal_buf_reset(&sf->in);
            if (rc)
                break;
        }
    }
    if (rc && sf->state != SFTP_DEAD) {
        if (rc == SHOAL_ERR_TOO_LARGE)
            shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp packet from the server exceeds %u bytes",
                             SFTP_MAX_PACKET);
        else
            shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "bad sftp packet from the server: %s", shoal_strerror(rc));
    }
    if (sf->state == SFTP_DEAD)
        rc = sf->err;
    shoal__sftp_leave(sf);
    return rc;
}

void shoal__sftp_io_writable(shoal_sftp *sf)
{
    shoal__sftp_enter(sf);
    if (sf->state != SFTP_DEAD) {
        int rc = flush(sf);
        if (rc)
            shoal__sftp_fail(sf, rc, "cannot send to the sftp channel: %s", shoal_strerror(rc));
        else if (sf->state == SFTP_READY)
            shoal__sftp_put_notify(sf);
    }
    shoal__sftp_leave(sf);
}

void shoal__sftp_io_eof(shoal_sftp *sf)
{
    shoal__sftp_enter(sf);
    shoal__sftp_fail(sf, SHOAL_ERR_EOF, "the sftp server ended the session");
    shoal__sftp_leave(sf);
}

void shoal__sftp_io_closed(shoal_sftp *sf)
{
    shoal__sftp_enter(sf);
    sf->transport_gone = 1;
    if (sf->state != SFTP_DEAD)
        shoal__sftp_fail(sf, SHOAL_ERR_CLOSED, "the sftp channel was closed");
    if (!sf->ready_reported) { /* the channel open failed (ch_on_open) */
        sf->ready_reported = 1;
        if (sf->cb.on_ready)
            sf->cb.on_ready(sf, sf->err ? sf->err : SHOAL_ERR_CLOSED, sf->msg, sf->ud);
    }
    if (!sf->closed_reported) {
        sf->closed_reported = 1;
        if (sf->cb.on_closed)
            sf->cb.on_closed(sf, sf->ud);
    }
    shoal__sftp_leave(sf);
}

/* ---- construction ---- */

static int sftp_alloc(const shoal_sftp_callbacks *cb, void *ud, shoal_sftp **out)
{
    shoal_sftp *sf = calloc(1, sizeof(*sf));
    if (!sf)
        return SHOAL_ERR_NOMEM;
    if (SHOAL_COPY_IN_OPT(&sf->cb, cb)) {
        free(sf);
        return SHOAL_ERR_INVALID_ARG;
    }
    sf->ud = ud;
    shoal_buf_init(&sf->in, SFTP_MAX_PACKET + 4);
    shoal_buf_init(&sf->out, SFTP_OUT_MAX);
    *out = sf;
    return SHOAL_OK;
}

static int send_init(shoal_sftp *sf)
{
    size_t mark;
    int rc = shoal__sftp_pkt_begin(&sf->out, SSH_FXP_INIT, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&sf->out, SFTP_VERSION);
    if (!rc)
        rc = shoal__sftp_pkt_end(&sf->out, mark);
    if (!rc) {
        sf->state = SFTP_INIT_SENT;
        rc = flush(sf);
    }
    return rc;
}

int shoal__sftp_new_detached(const sftp_io *io, void *io_ctx, const shoal_sftp_callbacks *cb, void *ud,
                             shoal_sftp **out)
{
    *out = NULL;
    shoal_sftp *sf;
    int rc = sftp_alloc(cb, ud, &sf);
    if (rc)
        return rc;
    sf->io = io;
    sf->io_ctx = io_ctx;
    if ((rc = send_init(sf)) != 0) {
        sftp_free(sf);
        return rc;
    }
    *out = sf;
    return SHOAL_OK;
}

/* ---- the real transport: a session channel ---- */

static int ch_io_write(void *ctx, const uint8_t *p, size_t n, size_t *taken)
{
    shoal_sftp *sf = ctx;
    return shoal_channel_write(sf->ch, p, n, taken);
}

static size_t ch_io_writable(void *ctx)
{
    shoal_sftp *sf = ctx;
    return shoal_channel_writable(sf->ch);
}

static void ch_io_arm(void *ctx)
{
    shoal_sftp *sf = ctx;
    /* A writable() of 0 asks the channel for on_writable. */
    (void)shoal_channel_writable(sf->ch);
}

static void ch_io_close(void *ctx)
{
    shoal_sftp *sf = ctx;
    (void)shoal_channel_close(sf->ch);
}

static const sftp_io CHANNEL_IO = {ch_io_write, ch_io_writable, ch_io_arm, ch_io_close};

static void ch_on_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    shoal_sftp *sf = ud;
    shoal__sftp_enter(sf);
    if (err) {
        /* The channel is released right after this: on_close reports. */
        sf->state = SFTP_DEAD;
        sf->err = err;
        snprintf(sf->msg, sizeof(sf->msg), "cannot open a channel for sftp: %s", reason ? reason : "refused");
    } else if (sf->state == SFTP_OPENING) {
        int rc = shoal_channel_subsystem(ch, "sftp");
        if (rc)
            shoal__sftp_fail(sf, rc, "cannot request the sftp subsystem: %s", shoal_strerror(rc));
        else
            sf->state = SFTP_SUBSYSTEM;
    }
    shoal__sftp_leave(sf);
}

static void ch_on_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    shoal_sftp *sf = ud;
    (void)ch;
    shoal__sftp_enter(sf);
    if (sf->state == SFTP_SUBSYSTEM && strcmp(request, "subsystem") == 0) {
        if (!ok) {
            shoal__sftp_fail(sf, SHOAL_ERR_REQUEST_DENIED, "the server refused the sftp subsystem");
        } else {
            int rc = send_init(sf);
            if (rc)
                shoal__sftp_fail(sf, rc, "cannot send sftp INIT: %s", shoal_strerror(rc));
        }
    }
    shoal__sftp_leave(sf);
}

static void ch_on_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    shoal_sftp *sf = ud;
    (void)ch;
    if (stream == SHOAL_STDERR) {
        char line[256];
        shoal__sftp_clean(line, sizeof(line), (const char *)data, len);
        shoal__sftp_logf(sf, 1, "server stderr: %s", line);
        return;
    }
    if (sf->state == SFTP_OPENING || sf->state == SFTP_SUBSYSTEM) {
        shoal__sftp_enter(sf);
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "sftp server sent data before INIT");
        shoal__sftp_leave(sf);
        return;
    }
    (void)shoal__sftp_io_data(sf, data, len);
}

static void ch_on_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    shoal__sftp_io_eof(ud);
}

static void ch_on_writable(shoal_channel *ch, void *ud)
{
    (void)ch;
    shoal__sftp_io_writable(ud);
}

static void ch_on_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    shoal__sftp_io_closed(ud);
}

int shoal_sftp_start(shoal_session *s, const shoal_sftp_callbacks *cb, void *ud, shoal_sftp **out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!s)
        return SHOAL_ERR_INVALID_ARG;
    shoal_sftp *sf;
    int rc = sftp_alloc(cb, ud, &sf);
    if (rc)
        return rc;
    sf->s = s;
    sf->io = &CHANNEL_IO;
    sf->io_ctx = sf;
    static const shoal_channel_callbacks ccb = {
        .size = sizeof(shoal_channel_callbacks),
        .on_open = ch_on_open,
        .on_request = ch_on_request,
        .on_data = ch_on_data,
        .on_eof = ch_on_eof,
        .on_writable = ch_on_writable,
        .on_close = ch_on_close,
    };
    rc = shoal_channel_open_session(s, &ccb, sf, &sf->ch);
    if (rc) {
        sftp_free(sf);
        return rc;
    }
    sf->state = SFTP_OPENING;
    *out = sf;
    return SHOAL_OK;
}

void shoal_sftp_close(shoal_sftp *sf)
{
    if (!sf)
        return;
    shoal__sftp_enter(sf);
    shoal__sftp_fail(sf, SHOAL_ERR_CLOSED, "sftp session closed");
    shoal__sftp_leave(sf);
}

int shoal_sftp_has_extension(const shoal_sftp *sf, const char *name, const char *version)
{
    if (!sf || !name || sf->version == 0)
        return 0;
    for (unsigned i = 0; i < sf->n_exts; i++)
        if (strcmp(sf->exts[i].name, name) == 0 && (!version || strcmp(sf->exts[i].version, version) == 0))
            return 1;
    return 0;
}

uint32_t shoal_sftp_version(const shoal_sftp *sf)
{
    return sf ? sf->version : 0;
}

void *shoal_sftp_userdata(const shoal_sftp *sf)
{
    return sf ? sf->ud : NULL;
}

/* ---- messages ---- */

void shoal__sftp_status_message(char *out, size_t outsz, const char *what, const char *path,
                                const sftp_reply *rep)
{
    char server[256] = "";
    if (rep->msg_len)
        shoal__sftp_clean(server, sizeof(server), rep->msg, rep->msg_len);
    const char *text = shoal__sftp_status_text(rep->code);
    if (server[0] && strcasecmp(server, text) != 0)
        snprintf(out, outsz, "%s %s: %s (server: %s)", what, path ? path : "", text, server);
    else
        snprintf(out, outsz, "%s %s: %s", what, path ? path : "", text);
}

/* ---- small operations ---- */

static const char *op_name(uint8_t type)
{
    switch (type) {
    case SSH_FXP_STAT:
        return "stat";
    case SSH_FXP_LSTAT:
        return "lstat";
    case SSH_FXP_REMOVE:
        return "remove";
    case SSH_FXP_RMDIR:
        return "rmdir";
    case SSH_FXP_MKDIR:
        return "mkdir";
    case SSH_FXP_RENAME:
    case SSH_FXP_EXTENDED:
        return "rename";
    case SSH_FXP_REALPATH:
        return "realpath";
    }
    return "request";
}

static void op_done(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message)
{
    char msg[sizeof(sf->msg)];
    const char *what = op_name(rq->type);
    if (rep && rep->type == SSH_FXP_STATUS && rep->code != SSH_FX_OK) {
        err = shoal__sftp_status_err(rep->code);
        shoal__sftp_status_message(msg, sizeof(msg), what, rq->path, rep);
        message = msg;
    } else if (!rep) {
        snprintf(msg, sizeof(msg), "%s %s: %s", what, rq->path ? rq->path : "", message ? message : "failed");
        message = msg;
    } else {
        err = SHOAL_OK;
        message = NULL;
    }
    switch (rq->type) {
    case SSH_FXP_STAT:
    case SSH_FXP_LSTAT:
        if (rq->cb.stat)
            rq->cb.stat(sf, err, message, err ? NULL : &rep->attrs, rq->ctx);
        break;
    case SSH_FXP_REALPATH: {
        if (err) {
            if (rq->cb.path)
                rq->cb.path(sf, err, message, NULL, rq->ctx);
            break;
        }
        char *path = malloc(rep->name_len + 1);
        if (!path || memchr(rep->name, 0, rep->name_len)) {
            free(path);
            if (rq->cb.path)
                rq->cb.path(sf, SHOAL_ERR_NOMEM, "realpath: out of memory", NULL, rq->ctx);
            break;
        }
        memcpy(path, rep->name, rep->name_len);
        path[rep->name_len] = 0;
        if (rq->cb.path)
            rq->cb.path(sf, 0, NULL, path, rq->ctx);
        free(path);
        break;
    }
    default:
        if (rep && rep->type != SSH_FXP_STATUS && !err) {
            /* An EXTENDED_REPLY where a status was due is not an answer. */
            shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "unexpected extended reply to %s", what);
            break;
        }
        if (rq->cb.status)
            rq->cb.status(sf, err, message, rq->ctx);
        break;
    }
}

static int check_path(const char *path)
{
    if (!path || !path[0])
        return SHOAL_ERR_INVALID_ARG;
    if (strlen(path) > SFTP_MAX_PATH)
        return SHOAL_ERR_INVALID_ARG;
    return SHOAL_OK;
}

typedef union op_cb {
    shoal_sftp_status_cb status;
    shoal_sftp_stat_cb stat;
    shoal_sftp_path_cb path;
} op_cb;

/* Queues a request with one or two paths (and attributes). Returns 0 once
 * queued: the callback then runs exactly once. */
static int op_send(shoal_sftp *sf, uint8_t type, const char *ext, const char *path, const char *path2,
                   const shoal_sftp_attrs *attrs, op_cb cb, void *ud)
{
    if (!sf)
        return SHOAL_ERR_INVALID_ARG;
    if (sf->state != SFTP_READY)
        return SHOAL_ERR_BAD_STATE;
    int rc = check_path(path);
    if (!rc && path2)
        rc = check_path(path2);
    if (rc)
        return rc;
    shoal__sftp_enter(sf);
    sftp_req *rq = shoal__sftp_req_new(sf, type, op_done, ud);
    if (!rq) {
        rc = SHOAL_ERR_TOO_LARGE;
        goto out;
    }
    memcpy(&rq->cb, &cb, sizeof(cb));
    rq->path = strdup(path);
    if (!rq->path) {
        shoal__sftp_req_free(sf, rq);
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    size_t mark;
    rc = shoal__sftp_send_begin(sf, rq, &mark);
    if (rc) {
        shoal__sftp_req_free(sf, rq);
        goto out;
    }
    if (ext)
        rc = shoal_buf_put_cstring(&sf->out, ext);
    if (!rc)
        rc = shoal_buf_put_cstring(&sf->out, path);
    if (!rc && path2)
        rc = shoal_buf_put_cstring(&sf->out, path2);
    if (!rc && attrs)
        rc = shoal__sftp_attrs_put(&sf->out, attrs);
    rc = shoal__sftp_send_end(sf, rq, mark, rc);
out:
    shoal__sftp_leave(sf);
    return rc;
}

int shoal_sftp_stat(shoal_sftp *sf, const char *path, shoal_sftp_stat_cb cb, void *ud)
{
    op_cb c = {.stat = cb};
    return op_send(sf, SSH_FXP_STAT, NULL, path, NULL, NULL, c, ud);
}

int shoal_sftp_lstat(shoal_sftp *sf, const char *path, shoal_sftp_stat_cb cb, void *ud)
{
    op_cb c = {.stat = cb};
    return op_send(sf, SSH_FXP_LSTAT, NULL, path, NULL, NULL, c, ud);
}

int shoal_sftp_remove(shoal_sftp *sf, const char *path, shoal_sftp_status_cb cb, void *ud)
{
    op_cb c = {.status = cb};
    return op_send(sf, SSH_FXP_REMOVE, NULL, path, NULL, NULL, c, ud);
}

int shoal_sftp_rmdir(shoal_sftp *sf, const char *path, shoal_sftp_status_cb cb, void *ud)
{
    op_cb c = {.status = cb};
    return op_send(sf, SSH_FXP_RMDIR, NULL, path, NULL, NULL, c, ud);
}

int shoal_sftp_mkdir(shoal_sftp *sf, const char *path, uint32_t mode, shoal_sftp_status_cb cb, void *ud)
{
    op_cb c = {.status = cb};
    shoal_sftp_attrs a = {.flags = SHOAL_SFTP_ATTR_PERMISSIONS, .permissions = mode & 07777u};
    return op_send(sf, SSH_FXP_MKDIR, NULL, path, NULL, &a, c, ud);
}

int shoal_sftp_rename(shoal_sftp *sf, const char *oldpath, const char *newpath, unsigned flags,
                      shoal_sftp_status_cb cb, void *ud)
{
    op_cb c = {.status = cb};
    if (!sf || !newpath || (flags & ~(unsigned)SHOAL_SFTP_RENAME_POSIX))
        return SHOAL_ERR_INVALID_ARG;
    if (flags & SHOAL_SFTP_RENAME_POSIX) {
        if (sf->state == SFTP_READY && !shoal_sftp_has_extension(sf, "posix-rename@openssh.com", "1"))
            return SHOAL_ERR_UNSUPPORTED;
        return op_send(sf, SSH_FXP_EXTENDED, "posix-rename@openssh.com", oldpath, newpath, NULL, c, ud);
    }
    return op_send(sf, SSH_FXP_RENAME, NULL, oldpath, newpath, NULL, c, ud);
}

int shoal_sftp_realpath(shoal_sftp *sf, const char *path, shoal_sftp_path_cb cb, void *ud)
{
    op_cb c = {.path = cb};
    return op_send(sf, SSH_FXP_REALPATH, NULL, path, NULL, NULL, c, ud);
}
