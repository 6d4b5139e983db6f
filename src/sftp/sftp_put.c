/* SFTP uploads: write to a temporary file next to the target, then move it
 * into place, so a failed upload never leaves a partial file under the
 * target name.
 *
 *   OPEN temp (CREAT|TRUNC|WRITE|EXCL, mode)      stage OPENING
 *   WRITE ... (up to max_writes outstanding)      stage WRITING
 *   finish: [fsync@openssh.com] FSETSTAT CLOSE    stage CLOSING (pipelined
 *           behind the writes: same handle, processed in order)
 *   [on_closed_temp: the caller checks the file]   stage HELD (until
 *                                                  shoal_sftp_put_commit)
 *   posix-rename@openssh.com temp -> target       stage RENAMING
 *     or REMOVE target, RENAME temp -> target (not atomic, logged)
 *   on_done(0)
 *
 * The first failure (or an abort) is remembered; then the handle is
 * closed, every outstanding reply awaited, the temporary file removed, and
 * on_done reports the first error.
 *
 * In place (options.in_place): OPEN target CREAT|TRUNC|WRITE, the writes,
 * [FSETSTAT] CLOSE, done: no temporary file, nothing to remove on failure
 * (the message says the target is incomplete). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "crypto/kex.h"
#include "sftp/sftp_impl.h"

enum put_stage { P_OPENING = 0, P_WRITING, P_CLOSING, P_HELD, P_RENAMING, P_DONE };

/* What a request of this upload was (sftp_req.aux). */
enum put_op {
    OP_OPEN = 1,
    OP_WRITE,
    OP_FSYNC,
    OP_FSETSTAT,
    OP_CLOSE,
    OP_POSIX_RENAME,
    OP_REMOVE_TARGET,
    OP_RENAME,
    OP_REMOVE_TEMP,
};

/* Slots writes leave free for the control requests of every upload. */
#define PUT_RESERVED_SLOTS 8u

struct shoal_sftp_put {
    shoal_sftp *sf;
    shoal_sftp_put *next;
    shoal_sftp_put_callbacks cb;
    void *ud;
    char *target;
    char *temp;
    uint32_t mode;
    int want_fsync;
    int in_place, keep_mode;
    unsigned max_writes;
    size_t chunk;
    int stage;
    int finish_called;
    int cancel_pending; /* abort arrived while the rename was on its way */
    uint8_t handle[SFTP_MAX_HANDLE];
    size_t handle_len;
    int have_handle;
    int close_sent;
    int temp_exists;
    int remove_sent;
    unsigned outstanding; /* requests in flight */
    unsigned writes_out;  /* WRITEs in flight */
    uint64_t offset;
    unsigned notify_gen;
    int err;
    char msg[640];
};

/* Uploads that reported on_done, freed when the client is idle. */
static void put_free(shoal_sftp_put *p)
{
    free(p->target);
    free(p->temp);
    free(p);
}

/* Finished uploads sit on a separate list hanging off sf->puts' sentinel:
 * we keep them in the same list with stage P_DONE and reap them here. */
void shoal__sftp_put_reap(shoal_sftp *sf)
{
    shoal_sftp_put **pp = &sf->puts;
    while (*pp) {
        shoal_sftp_put *p = *pp;
        if (p->stage == P_DONE) {
            *pp = p->next;
            put_free(p);
        } else {
            pp = &p->next;
        }
    }
}

static void complete(shoal_sftp_put *p, int err, const char *message)
{
    if (p->stage == P_DONE)
        return;
    p->stage = P_DONE;
    if (p->cb.on_done)
        p->cb.on_done(p, err, err ? message : NULL, p->ud);
}

/* Remembers the first failure. */
static void set_err(shoal_sftp_put *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(shoal_sftp_put *p, int err, const char *fmt, ...)
{
    if (p->err)
        return;
    p->err = err;
    int k = snprintf(p->msg, sizeof(p->msg), "%s: ", p->target);
    if (k < 0 || (size_t)k >= sizeof(p->msg))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg + k, sizeof(p->msg) - (size_t)k, fmt, ap);
    va_end(ap);
}

static void set_status_err(shoal_sftp_put *p, const char *what, const char *path, const sftp_reply *rep)
{
    char m[sizeof(p->msg)];
    shoal__sftp_status_message(m, sizeof(m), what, path, rep);
    set_err(p, shoal__sftp_status_err(rep->code), "%s", m);
}

static void put_reply(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message);
static void advance(shoal_sftp_put *p);

/* Sends one request of this upload: packet type, then the body written by
 * the caller between begin and end. */
static int req_begin(shoal_sftp_put *p, uint8_t type, unsigned op, sftp_req **rq, size_t *mark)
{
    shoal_sftp *sf = p->sf;
    *rq = shoal__sftp_req_new(sf, type, put_reply, p);
    if (!*rq)
        return SHOAL_ERR_TOO_LARGE;
    (*rq)->aux = op;
    int rc = shoal__sftp_send_begin(sf, *rq, mark);
    if (rc)
        shoal__sftp_req_free(sf, *rq);
    return rc;
}

static int req_end(shoal_sftp_put *p, sftp_req *rq, size_t mark, int rc)
{
    /* Count it first: a failed send kills the client, which completes the
     * request through put_reply. */
    p->outstanding++;
    rc = shoal__sftp_send_end(p->sf, rq, mark, rc);
    if (rc)
        p->outstanding--;
    return rc;
}

static int put_handle(shoal_sftp_put *p)
{
    return shoal_buf_put_string(&p->sf->out, p->handle, p->handle_len);
}

static int send_handle_req(shoal_sftp_put *p, uint8_t type, unsigned op)
{
    sftp_req *rq;
    size_t mark;
    int rc = req_begin(p, type, op, &rq, &mark);
    if (rc)
        return rc;
    if (op == OP_FSYNC)
        rc = shoal_buf_put_cstring(&p->sf->out, "fsync@openssh.com");
    if (!rc)
        rc = put_handle(p);
    if (!rc && op == OP_FSETSTAT) {
        shoal_sftp_attrs a = {.flags = SHOAL_SFTP_ATTR_PERMISSIONS, .permissions = p->mode};
        rc = shoal__sftp_attrs_put(&p->sf->out, &a);
    }
    return req_end(p, rq, mark, rc);
}

static int send_paths(shoal_sftp_put *p, uint8_t type, unsigned op, const char *ext, const char *a, const char *b)
{
    sftp_req *rq;
    size_t mark;
    int rc = req_begin(p, type, op, &rq, &mark);
    if (rc)
        return rc;
    if (ext)
        rc = shoal_buf_put_cstring(&p->sf->out, ext);
    if (!rc)
        rc = shoal_buf_put_cstring(&p->sf->out, a);
    if (!rc && b)
        rc = shoal_buf_put_cstring(&p->sf->out, b);
    return req_end(p, rq, mark, rc);
}

static int alive(const shoal_sftp_put *p)
{
    return p->stage != P_DONE && p->sf->state == SFTP_READY;
}

/* A request could not be sent (no slot, no memory): the upload fails. */
static void send_failed(shoal_sftp_put *p, const char *what, int rc)
{
    if (!alive(p))
        return; /* the client died and failed us already */
    set_err(p, rc, "cannot send %s: %s", what, shoal_strerror(rc));
}

static void start_rename(shoal_sftp_put *p)
{
    shoal_sftp *sf = p->sf;
    p->stage = P_RENAMING;
    int rc;
    if (shoal_sftp_has_extension(sf, "posix-rename@openssh.com", "1")) {
        rc = send_paths(p, SSH_FXP_EXTENDED, OP_POSIX_RENAME, "posix-rename@openssh.com", p->temp, p->target);
    } else {
        shoal__sftp_logf(sf, 1, "%s: the server lacks posix-rename@openssh.com: replacing it with REMOVE + "
                                "RENAME, which is not atomic",
                         p->target);
        rc = send_paths(p, SSH_FXP_REMOVE, OP_REMOVE_TARGET, NULL, p->target, NULL);
    }
    if (rc)
        send_failed(p, "the rename", rc);
}

/* Decides the next step after any event. */
static void advance(shoal_sftp_put *p)
{
    if (!alive(p))
        return;
    if (p->err) {
        if (p->have_handle && !p->close_sent) {
            p->close_sent = 1;
            int rc = send_handle_req(p, SSH_FXP_CLOSE, OP_CLOSE);
            if (!alive(p))
                return;
            (void)rc; /* without the CLOSE the REMOVE below still runs */
        }
        if (p->outstanding > 0)
            return;
        if (p->in_place && p->temp_exists) {
            /* The target itself: never removed, but said to be incomplete. */
            size_t k = strlen(p->msg);
            snprintf(p->msg + k, sizeof(p->msg) - k, " (written in place: %s is incomplete)", p->target);
            p->temp_exists = 0;
        }
        if (p->temp_exists && !p->remove_sent) {
            p->remove_sent = 1;
            int rc = send_paths(p, SSH_FXP_REMOVE, OP_REMOVE_TEMP, NULL, p->temp, NULL);
            if (!alive(p))
                return;
            if (rc == 0)
                return;
            size_t k = strlen(p->msg);
            snprintf(p->msg + k, sizeof(p->msg) - k, " (temporary file %s not removed)", p->temp);
        }
        if (p->outstanding == 0)
            complete(p, p->err, p->msg);
        return;
    }
    switch (p->stage) {
    case P_WRITING:
        if (!p->finish_called || p->close_sent)
            return;
        p->stage = P_CLOSING;
        p->close_sent = 1;
        {
            int rc = 0;
            if (p->want_fsync && shoal_sftp_has_extension(p->sf, "fsync@openssh.com", "1"))
                rc = send_handle_req(p, SSH_FXP_EXTENDED, OP_FSYNC);
            if (!rc && alive(p) && !p->keep_mode)
                rc = send_handle_req(p, SSH_FXP_FSETSTAT, OP_FSETSTAT);
            if (!rc && alive(p))
                rc = send_handle_req(p, SSH_FXP_CLOSE, OP_CLOSE);
            if (rc) {
                p->close_sent = 0; /* the CLOSE did not leave: the failure path sends it */
                send_failed(p, "the final requests", rc);
                advance(p);
            }
        }
        return;
    case P_CLOSING:
        if (p->outstanding == 0 && !p->err && p->cb.on_closed_temp) {
            /* The file is complete under its temporary name: the caller
             * may check it (e.g. its checksum) before it goes into place. */
            p->stage = P_HELD;
            p->cb.on_closed_temp(p, p->temp, p->ud);
            return;
        }
        if (p->outstanding == 0 && p->in_place) {
            complete(p, 0, NULL); /* written where it belongs */
            return;
        }
        if (p->outstanding == 0)
            start_rename(p);
        if (p->err)
            advance(p);
        return;
    default:
        return;
    }
}

static void put_reply(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message)
{
    shoal_sftp_put *p = rq->ctx;
    (void)err;
    (void)message;
    p->outstanding--;
    if (rq->aux == OP_WRITE)
        p->writes_out--;
    if (!rep || p->stage == P_DONE)
        return; /* the client is dying: shoal__sftp_put_fail_all reports */
    int ok = rep->type != SSH_FXP_STATUS || rep->code == SSH_FX_OK;
    if (rep->type == SSH_FXP_EXTENDED_REPLY) {
        shoal__sftp_fail(sf, SHOAL_ERR_PROTOCOL, "unexpected extended reply during the upload to %s", p->target);
        return;
    }
    switch (rq->aux) {
    case OP_OPEN:
        if (!ok) {
            set_status_err(p, p->in_place ? "cannot open" : "cannot create temporary file", p->temp, rep);
            break;
        }
        memcpy(p->handle, rep->handle, rep->handle_len);
        p->handle_len = rep->handle_len;
        p->have_handle = 1;
        p->temp_exists = 1;
        if (p->stage == P_OPENING)
            p->stage = P_WRITING;
        break;
    case OP_WRITE:
        if (!ok)
            set_status_err(p, "write to", p->temp, rep);
        break;
    case OP_FSYNC:
        if (!ok)
            set_status_err(p, "fsync of", p->temp, rep);
        break;
    case OP_FSETSTAT:
        if (!ok) {
            char what[64];
            snprintf(what, sizeof(what), "cannot set mode %04o on", (unsigned)p->mode);
            set_status_err(p, what, p->temp, rep);
        }
        break;
    case OP_CLOSE:
        if (!ok)
            set_status_err(p, "close of", p->temp, rep);
        break;
    case OP_REMOVE_TARGET: {
        /* Whatever happened (most often: no such file), try the rename. */
        int rc = send_paths(p, SSH_FXP_RENAME, OP_RENAME, NULL, p->temp, p->target);
        if (rc)
            send_failed(p, "the rename", rc);
        break;
    }
    case OP_POSIX_RENAME:
    case OP_RENAME:
        if (!ok) {
            char what[SFTP_MAX_PATH + 32];
            snprintf(what, sizeof(what), "cannot rename %s to", p->temp);
            set_status_err(p, what, p->target, rep);
            break;
        }
        p->temp_exists = 0;
        if (rq->aux == OP_RENAME)
            shoal__sftp_logf(sf, 1, "%s: replaced by REMOVE + RENAME (not atomic)", p->target);
        complete(p, 0, NULL);
        return;
    case OP_REMOVE_TEMP:
        if (ok || rep->code == SSH_FX_NO_SUCH_FILE) {
            p->temp_exists = 0;
        } else {
            size_t k = strlen(p->msg);
            char st[200];
            shoal__sftp_clean(st, sizeof(st), rep->msg ? rep->msg : "", rep->msg_len);
            snprintf(p->msg + k, sizeof(p->msg) - k, " (temporary file %s not removed: %s%s%s)", p->temp,
                     shoal__sftp_status_text(rep->code), st[0] ? ": " : "", st);
        }
        break;
    }
    if (p->cancel_pending && p->stage != P_RENAMING && p->stage != P_DONE)
        set_err(p, SHOAL_ERR_CANCELLED, "upload cancelled");
    advance(p);
    if (alive(p) && !p->err && p->stage == P_WRITING && !p->finish_called)
        shoal__sftp_put_notify(sf);
}

/* ---- public API ---- */

static int make_temp(const char *target, char **out)
{
    size_t tl = strlen(target);
    const char *slash = strrchr(target, '/');
    size_t dirlen = slash ? (size_t)(slash - target) + 1 : 0;
    const char *base = target + dirlen;
    size_t bl = tl - dirlen;
    if (bl == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return SHOAL_ERR_INVALID_ARG;
    if (bl > 200)
        bl = 200; /* keep the name under NAME_MAX */
    uint8_t rnd[8];
    int rc = shoal_random(rnd, sizeof(rnd));
    if (rc)
        return rc;
    char hex[17];
    for (unsigned i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    size_t n = dirlen + 1 + bl + 7 + 16 + 1;
    char *t = malloc(n);
    if (!t)
        return SHOAL_ERR_NOMEM;
    snprintf(t, n, "%.*s.%.*s.shoal-%s", (int)dirlen, target, (int)bl, base, hex);
    *out = t;
    return SHOAL_OK;
}

int shoal_sftp_put_begin_ex(shoal_sftp *sf, const char *target, uint32_t mode, const shoal_sftp_put_options *opt,
                            const shoal_sftp_put_callbacks *cb, void *ud, shoal_sftp_put **out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!sf || !target || !target[0] || strlen(target) > SFTP_MAX_PATH - 64)
        return SHOAL_ERR_INVALID_ARG;
    if (sf->state != SFTP_READY)
        return SHOAL_ERR_BAD_STATE;
    shoal_sftp_put *p = calloc(1, sizeof(*p));
    if (!p)
        return SHOAL_ERR_NOMEM;
    shoal_sftp_put_options o;
    if (SHOAL_COPY_IN_OPT(&p->cb, cb) || SHOAL_COPY_IN_OPT(&o, opt)) {
        free(p);
        return SHOAL_ERR_INVALID_ARG;
    }
    opt = &o;
    p->sf = sf;
    p->ud = ud;
    p->mode = mode & 07777u;
    p->max_writes = SFTP_PUT_WRITES;
    p->chunk = SFTP_PUT_CHUNK;
    if (opt) {
        p->want_fsync = opt->fsync;
        p->in_place = opt->in_place;
        p->keep_mode = opt->keep_mode;
        if (opt->max_writes)
            p->max_writes = opt->max_writes > SFTP_MAX_REQS ? SFTP_MAX_REQS : (unsigned)opt->max_writes;
        if (opt->write_size)
            p->chunk = opt->write_size > SFTP_PUT_CHUNK_MAX ? SFTP_PUT_CHUNK_MAX : opt->write_size;
    }
    p->target = strdup(target);
    int rc = !p->target ? SHOAL_ERR_NOMEM
             : p->in_place ? ((p->temp = strdup(target)) ? SHOAL_OK : SHOAL_ERR_NOMEM)
                           : make_temp(target, &p->temp);
    if (rc) {
        put_free(p);
        return rc;
    }
    shoal__sftp_enter(sf);
    sftp_req *rq;
    size_t mark;
    rc = req_begin(p, SSH_FXP_OPEN, OP_OPEN, &rq, &mark);
    if (!rc) {
        shoal_sftp_attrs a = {.flags = SHOAL_SFTP_ATTR_PERMISSIONS, .permissions = p->mode};
        rc = shoal_buf_put_cstring(&sf->out, p->temp);
        if (!rc)
            rc = shoal_buf_put_u32(&sf->out, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC |
                                                 (p->in_place ? 0 : SSH_FXF_EXCL));
        if (!rc)
            rc = shoal__sftp_attrs_put(&sf->out, &a);
        rc = req_end(p, rq, mark, rc);
        /* When sending failed the client died (and completed the OPEN):
         * report it here rather than through on_done. */
        if (!rc && sf->state != SFTP_READY)
            rc = sf->err ? sf->err : SHOAL_ERR_CLOSED;
    }
    if (!rc) {
        p->next = sf->puts;
        sf->puts = p;
    } else {
        put_free(p);
        shoal__sftp_leave(sf);
        return rc;
    }
    *out = p;
    shoal__sftp_leave(sf);
    return SHOAL_OK;
}

int shoal_sftp_put_begin(shoal_sftp *sf, const char *target, uint32_t mode, const shoal_sftp_put_callbacks *cb,
                         void *ud, shoal_sftp_put **out)
{
    return shoal_sftp_put_begin_ex(sf, target, mode, NULL, cb, ud, out);
}

/* Packet overhead of one WRITE besides its data. */
static size_t write_overhead(const shoal_sftp_put *p)
{
    return 4 + 1 + 4 + 4 + p->handle_len + 8 + 4;
}

size_t shoal_sftp_put_writable(const shoal_sftp_put *p)
{
    if (!p || !alive(p) || p->err || p->stage != P_WRITING || p->finish_called)
        return 0;
    const shoal_sftp *sf = p->sf;
    unsigned slots = p->max_writes > p->writes_out ? p->max_writes - p->writes_out : 0;
    unsigned free_slots = shoal__sftp_free_slots(sf);
    free_slots = free_slots > PUT_RESERVED_SLOTS ? free_slots - PUT_RESERVED_SLOTS : 0;
    if (slots > free_slots)
        slots = free_slots;
    if (slots == 0)
        return 0;
    size_t room = shoal__sftp_room(sf);
    if (room == 0)
        return 0;
    /* Packets that fit the channel's room leave at once; with less room
     * than one packet, one packet is staged and drains as the window
     * opens, so staging never exceeds about one packet. */
    size_t pkt = write_overhead(p) + p->chunk;
    size_t total = 0;
    while (slots-- > 0) {
        if (total > 0 && room < pkt)
            break;
        total += p->chunk;
        room = room > pkt ? room - pkt : 0;
        if (room == 0)
            break;
    }
    return total;
}

int shoal_sftp_put_write(shoal_sftp_put *p, const void *data, size_t len, size_t *taken)
{
    if (taken)
        *taken = 0;
    if (!p || !taken || (!data && len))
        return SHOAL_ERR_INVALID_ARG;
    if (!alive(p) || p->err || p->finish_called)
        return SHOAL_ERR_BAD_STATE;
    shoal_sftp *sf = p->sf;
    shoal__sftp_enter(sf);
    int rc = SHOAL_OK;
    const uint8_t *d = data;
    while (len > 0 && alive(p) && !p->err) {
        size_t avail = shoal_sftp_put_writable(p);
        if (avail == 0)
            break;
        size_t n = len < avail ? len : avail;
        if (n > p->chunk)
            n = p->chunk;
        sftp_req *rq;
        size_t mark;
        rc = req_begin(p, SSH_FXP_WRITE, OP_WRITE, &rq, &mark);
        if (rc)
            break;
        rc = put_handle(p);
        if (!rc)
            rc = shoal_buf_put_u64(&sf->out, p->offset);
        if (!rc)
            rc = shoal_buf_put_string(&sf->out, d, n);
        p->writes_out++;
        rc = req_end(p, rq, mark, rc);
        if (rc) {
            p->writes_out--;
            break;
        }
        p->offset += n;
        d += n;
        len -= n;
        *taken += n;
    }
    if (rc && alive(p)) {
        set_err(p, rc, "cannot send a WRITE: %s", shoal_strerror(rc));
        advance(p);
    }
    shoal__sftp_leave(sf);
    return rc;
}

int shoal_sftp_put_finish(shoal_sftp_put *p)
{
    if (!p)
        return SHOAL_ERR_INVALID_ARG;
    if (!alive(p) || p->finish_called)
        return SHOAL_ERR_BAD_STATE;
    shoal__sftp_enter(p->sf);
    p->finish_called = 1;
    advance(p);
    shoal__sftp_leave(p->sf);
    return SHOAL_OK;
}

int shoal_sftp_put_commit(shoal_sftp_put *p)
{
    if (!p)
        return SHOAL_ERR_INVALID_ARG;
    if (p->stage != P_HELD || !alive(p))
        return SHOAL_ERR_BAD_STATE;
    shoal__sftp_enter(p->sf);
    if (p->in_place)
        complete(p, 0, NULL);
    else
        start_rename(p);
    advance(p);
    shoal__sftp_leave(p->sf);
    return SHOAL_OK;
}

void shoal_sftp_put_fail(shoal_sftp_put *p, int err, const char *message)
{
    if (!p || p->stage == P_DONE || p->stage == P_RENAMING)
        return;
    shoal_sftp *sf = p->sf;
    shoal__sftp_enter(sf);
    set_err(p, err ? err : SHOAL_ERR_SFTP, "%s: %s", p->target, message ? message : "rejected by the caller");
    advance(p);
    shoal__sftp_leave(sf);
}

void shoal_sftp_put_abort(shoal_sftp_put *p)
{
    if (!p || p->stage == P_DONE)
        return;
    shoal_sftp *sf = p->sf;
    shoal__sftp_enter(sf);
    if (p->stage == P_RENAMING) {
        p->cancel_pending = 1; /* the rename's outcome decides */
    } else {
        set_err(p, SHOAL_ERR_CANCELLED, "upload cancelled");
        advance(p);
    }
    shoal__sftp_leave(sf);
}

uint64_t shoal_sftp_put_offset(const shoal_sftp_put *p)
{
    return p ? p->offset : 0;
}

const char *shoal_sftp_put_target(const shoal_sftp_put *p)
{
    return p ? p->target : NULL;
}

const char *shoal_sftp_put_temp_path(const shoal_sftp_put *p)
{
    return p ? p->temp : NULL;
}

void *shoal_sftp_put_userdata(const shoal_sftp_put *p)
{
    return p ? p->ud : NULL;
}

/* ---- client hooks ---- */

void shoal__sftp_put_fail_all(shoal_sftp *sf, int err, const char *message)
{
    /* complete() only marks; the list changes only in reap, so a plain walk
     * is safe even when on_done starts or aborts uploads. */
    for (shoal_sftp_put *p = sf->puts; p; p = p->next) {
        if (p->stage == P_DONE)
            continue;
        char m[sizeof(p->msg) + 64];
        if (!p->err)
            set_err(p, err, "%s", message);
        if (p->temp_exists)
            snprintf(m, sizeof(m), "%s (temporary file %s may remain)", p->msg, p->temp);
        else
            snprintf(m, sizeof(m), "%s", p->msg);
        complete(p, p->err, m);
    }
}

void shoal__sftp_put_notify(shoal_sftp *sf)
{
    /* New uploads are linked at the head, so walking on from p never
     * misses one that matters; each gets at most one call per round. */
    unsigned gen = 0;
    for (shoal_sftp_put *p = sf->puts; p; p = p->next)
        if (p->notify_gen > gen)
            gen = p->notify_gen;
    gen++;
    for (shoal_sftp_put *p = sf->puts; p && sf->state == SFTP_READY; p = p->next) {
        if (p->notify_gen == gen)
            continue;
        p->notify_gen = gen;
        if (p->cb.on_writable && shoal_sftp_put_writable(p) > 0)
            p->cb.on_writable(p, p->ud);
    }
}
