/* A fan-out worker: one thread, one uv loop, a pool of connections keyed
 * by user@host:port, and the tasks running on them.
 *
 * Task life: queued on its connection (dialled once; later tasks for the
 * same host wait for the same handshake) -> working (a command or an
 * upload) -> one RESULT event. A deadline or a stop ends a task at any
 * point; its connection is closed when nobody else needs it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_impl.h"

static void pool_pump(fleet_worker *w);
static void task_begin(fleet_task *t);
static void pc_release(pconn *pc);

void fleet__pc_hold(pconn *pc)
{
    pc->users++;
}

void fleet__pc_release(pconn *pc)
{
    pc_release(pc);
}

/* shoal_child_stop is over: the connection may go. */
static void on_child_stopped(void *ud)
{
    pc_release(ud);
}

/* ---- results ---- */

void fleet__set_message(shoal_fleet_event *ev, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(ev->message);
    ev->message = strdup(buf);
}

shoal_fleet_event *fleet__task_event(fleet_task *t)
{
    shoal_fleet_event *ev = t->result ? t->result : calloc(1, sizeof(*ev));
    t->result = NULL;
    if (!ev)
        return NULL;
    ev->type = SHOAL_FLEET_EV_RESULT;
    ev->req = shoal_fleet_request_ref(t->req);
    ev->index = t->index;
    return ev;
}

static const char *stage_phase(shoal_uv_stage st)
{
    switch (st) {
    case SHOAL_STAGE_RESOLVE:
        return "dns";
    case SHOAL_STAGE_CONNECT:
        return "connect";
    case SHOAL_STAGE_BANNER:
        return "banner";
    case SHOAL_STAGE_KEX:
        return "kex";
    case SHOAL_STAGE_AUTH:
        return "auth";
    case SHOAL_STAGE_READY:
        return "channel";
    }
    return "connect";
}

void fleet__classify(shoal_fleet_event *ev, int err, shoal_uv_stage stage, const char *msg)
{
    ev->err = err;
    ev->exit_kind = SHOAL_EXIT_ERROR;
    if (!ev->phase)
        ev->phase = stage_phase(stage);
    switch (err) {
    case SHOAL_ERR_DNS:
        ev->cls = SHOAL_FLEET_FAIL_DNS;
        ev->phase = "dns";
        break;
    case SHOAL_ERR_CONNECT:
        ev->cls = msg && (strstr(msg, "refused") || strstr(msg, "reset")) ? SHOAL_FLEET_FAIL_REFUSED : SHOAL_FLEET_FAIL_CONNECT;
        ev->phase = "connect";
        break;
    case SHOAL_ERR_TIMEOUT:
        ev->cls = SHOAL_FLEET_FAIL_TIMEOUT;
        ev->timed_out = 1;
        break;
    case SHOAL_ERR_HOSTKEY_UNKNOWN:
    case SHOAL_ERR_HOSTKEY_MISMATCH:
    case SHOAL_ERR_HOSTKEY_REVOKED:
    case SHOAL_ERR_SIGNATURE:
        ev->cls = SHOAL_FLEET_FAIL_HOSTKEY;
        ev->phase = "kex";
        break;
    case SHOAL_ERR_AUTH_FAILED:
    case SHOAL_ERR_KEY_ENCRYPTED:
    case SHOAL_ERR_BAD_PASSPHRASE:
    case SHOAL_ERR_AGENT:
        ev->cls = SHOAL_FLEET_FAIL_AUTH;
        ev->phase = "auth";
        break;
    case SHOAL_ERR_EOF:
    case SHOAL_ERR_DISCONNECTED:
    case SHOAL_ERR_IO:
    case SHOAL_ERR_CLOSED:
        ev->cls = SHOAL_FLEET_FAIL_CLOSED;
        break;
    case SHOAL_ERR_CHANNEL_OPEN:
    case SHOAL_ERR_REQUEST_DENIED:
        ev->cls = SHOAL_FLEET_FAIL_CHANNEL;
        break;
    case SHOAL_ERR_NOMEM:
    case SHOAL_ERR_INVALID_ARG:
    case SHOAL_ERR_CONFIG:
        ev->cls = SHOAL_FLEET_FAIL_LOCAL;
        break;
    default:
        ev->cls = SHOAL_FLEET_FAIL_PROTOCOL;
        break;
    }
    if (msg)
        fleet__set_message(ev, "%s", msg);
    else
        fleet__set_message(ev, "%s", shoal_strerror(err));
}

static void task_unlink(fleet_task *t)
{
    fleet_worker *w = t->w;
    if (t->prev)
        t->prev->next = t->next;
    else if (w->active == t)
        w->active = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

void fleet__task_free(fleet_task *t)
{
    if (t->timer)
        uv_close((uv_handle_t *)t->timer, on_timer_closed);
    shoal_fleet_request_unref(t->req);
    free(t->user);
    free(t->host);
    free(t->out);
    free(t->err);
    free(t->result);
    free(t);
}

static void waiting_remove(pconn *pc, fleet_task *t)
{
    for (fleet_task **pp = &pc->waiting; *pp; pp = &(*pp)->wnext) {
        if (*pp == t) {
            *pp = t->wnext;
            t->wnext = NULL;
            return;
        }
    }
}

/* Hands the result over and releases everything the task holds. Called
 * once per task; ev may be NULL only when out of memory. */
void fleet__task_finish(fleet_task *t, shoal_fleet_event *ev)
{
    if (t->done)
        return;
    t->done = 1;
    task_unlink(t);
    if (t->child) {
        /* A command still running is asked to stop (TERM, KILL after a
         * grace period) while its connection is held open: closing the
         * channel alone leaves it running on OpenSSH's sshd. */
        shoal_child *c = t->child;
        t->child = NULL;
        if (!t->pc)
            shoal_child_free(c);
        else if (shoal_child_stop(c, SHOAL_FLEET_KILL_GRACE_MS, on_child_stopped, t->pc))
            fleet__pc_hold(t->pc);
    }
    if (t->up) {
        fleet_upload *u = t->up;
        t->up = NULL;
        fleet__upload_abort(u);
    }
    if (ev) {
        ev->seconds = (double)(uv_now(&t->w->loop) - t->t0) / 1000.0;
        if (t->out_len || t->err_len) {
            ev->out = t->out;
            ev->out_len = t->out_len;
            ev->errout = t->err;
            ev->err_len = t->err_len;
            t->out = t->err = NULL;
        }
        ev->truncated = t->truncated;
        ev->out_total = t->out_total;
        ev->err_total = t->err_total;
        fleet__post_event(t->w->f, ev);
    }
    pconn *pc = t->pc;
    t->pc = NULL;
    if (pc) {
        waiting_remove(pc, t);
        pc_release(pc);
    }
    fleet__task_free(t);
}

/* The task is over before it could finish: deadline or stop. */
/* A command started while its connection was still authenticating
 * (on_conn_authenticating) that ends before the connection is ready: the
 * connection failed, and its stage says where. */
static int ended_while_authenticating(const fleet_task *t)
{
    return t->pc && t->pc->state != PC_READY && t->pc->c;
}

static void task_stopped(fleet_task *t, int reason)
{
    shoal_fleet_event *ev = fleet__task_event(t);
    if (!ev) {
        fleet__task_finish(t, NULL);
        return;
    }
    pconn *pc = t->pc;
    const char *phase = "command";
    if (t->child && ended_while_authenticating(t))
        phase = stage_phase(shoal_uv_conn_stage(pc->c));
    else if (t->child && !shoal_child_started(t->child))
        phase = "channel";
    else if (t->up)
        phase = "upload";
    else if (!t->child && pc)
        phase = pc->state == PC_READY ? "channel" : stage_phase(pc->c ? shoal_uv_conn_stage(pc->c) : SHOAL_STAGE_CONNECT);
    else if (!pc)
        phase = "queued";
    ev->phase = phase;
    ev->exit_kind = SHOAL_EXIT_ERROR;
    ev->stopped = t->own_deadline ? 0 : reason;
    if (reason == SHOAL_FLEET_STOP_CANCEL) {
        ev->cls = SHOAL_FLEET_FAIL_CANCELLED;
        ev->err = SHOAL_ERR_CLOSED;
        fleet__set_message(ev, "%s: %s: cancelled", t->host, phase);
    } else {
        ev->cls = SHOAL_FLEET_FAIL_TIMEOUT;
        ev->err = SHOAL_ERR_TIMEOUT;
        ev->timed_out = 1;
        fleet__set_message(ev, "%s: %s: timed out", t->host, phase);
    }
    fleet__task_finish(t, ev);
}

static void on_task_timer(uv_timer_t *tm)
{
    /* The host's own deadline, not a stop of the whole request. */
    fleet_task *t = tm->data;
    t->own_deadline = 1;
    task_stopped(t, SHOAL_FLEET_STOP_TIMEOUT);
}

/* ---- output ---- */

static int grow_put(uint8_t **buf, size_t *len, size_t *alloc, const uint8_t *d, size_t n)
{
    if (*len + n > *alloc) {
        size_t na = *alloc ? *alloc : 256;
        while (na < *len + n)
            na *= 2;
        uint8_t *nb = realloc(*buf, na);
        if (!nb)
            return -1;
        *buf = nb;
        *alloc = na;
    }
    memcpy(*buf + *len, d, n);
    *len += n;
    return 0;
}

void fleet__collect(fleet_task *t, int stream, const uint8_t *d, size_t n)
{
    if (t->req->stream) {
        shoal_fleet_event *ev = calloc(1, sizeof(*ev));
        if (ev && (ev->data = malloc(n ? n : 1)) != NULL) {
            ev->type = SHOAL_FLEET_EV_OUTPUT;
            ev->req = shoal_fleet_request_ref(t->req);
            ev->index = t->index;
            ev->stream = stream;
            memcpy(ev->data, d, n);
            ev->len = n;
            fleet__post_event(t->w->f, ev);
        } else {
            free(ev);
        }
        return;
    }
    size_t cap = t->req->out_cap;
    int err = stream == SHOAL_STDERR;
    uint8_t **buf = err ? &t->err : &t->out;
    size_t *len = err ? &t->err_len : &t->out_len;
    size_t *alloc = err ? &t->err_cap_alloc : &t->out_cap_alloc;
    int bit = err ? SHOAL_FLEET_TRUNC_STDERR : SHOAL_FLEET_TRUNC_STDOUT;
    *(err ? &t->err_total : &t->out_total) += n;
    if (*len >= cap) {
        if (n)
            t->truncated |= bit;
        return;
    }
    size_t take = n < cap - *len ? n : cap - *len;
    if (take < n)
        t->truncated |= bit;
    if (grow_put(buf, len, alloc, d, take))
        t->truncated |= bit;
}

/* ---- exec ---- */

static void on_child_stdout(shoal_child *ch, const uint8_t *d, size_t n, void *ud)
{
    (void)ch;
    fleet__collect(ud, SHOAL_STDOUT, d, n);
}

static void on_child_stderr(shoal_child *ch, const uint8_t *d, size_t n, void *ud)
{
    (void)ch;
    fleet__collect(ud, SHOAL_STDERR, d, n);
}

/* The signals Go's x/crypto/ssh numbers (RFC 4254 names), 0 for others. */
static int go_signal_number(const char *name)
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"ABRT", 6}, {"ALRM", 14}, {"FPE", 8},   {"HUP", 1},   {"ILL", 4}, {"INT", 2},
                {"KILL", 9}, {"PIPE", 13}, {"QUIT", 3}, {"SEGV", 11}, {"TERM", 15}};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!strcmp(name, sigs[i].name))
            return sigs[i].num;
    return 0;
}

static void on_child_exit(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    fleet_task *t = ud;
    (void)ch;
    shoal_fleet_event *ev = fleet__task_event(t);
    if (ev) {
        ev->exit_kind = ex->kind;
        switch (ex->kind) {
        case SHOAL_EXIT_STATUS:
            ev->status = ex->status;
            ev->cls = ex->status == 0 ? SHOAL_FLEET_OK : SHOAL_FLEET_FAIL_EXIT;
            ev->phase = "command";
            if (ex->status)
                fleet__set_message(ev, "Process exited with status %d", ex->status);
            break;
        case SHOAL_EXIT_SIGNAL:
            snprintf(ev->signal, sizeof(ev->signal), "%s", ex->signal ? ex->signal : "?");
            ev->cls = SHOAL_FLEET_FAIL_SIGNAL;
            ev->phase = "command";
            ev->core_dumped = ex->core_dumped;
            /* GoSSHa's text (Go's x/crypto/ssh): status 128 + the signal's
             * number for the signals it knows, 128 for the others. */
            fleet__set_message(ev, "Process exited with status %d from signal %s", 128 + go_signal_number(ev->signal),
                               ev->signal);
            break;
        case SHOAL_EXIT_NONE:
            ev->cls = SHOAL_FLEET_FAIL_NOSTATUS;
            ev->phase = "command";
            fleet__set_message(ev, "wait: remote command exited without exit status or exit signal");
            break;
        case SHOAL_EXIT_ERROR:
            if (ended_while_authenticating(t)) {
                fleet__classify(ev, ex->err, shoal_uv_conn_stage(t->pc->c), ex->message);
                break;
            }
            ev->phase = strstr(ex->message ? ex->message : "", ": channel:") ? "channel" : "command";
            fleet__classify(ev, ex->err, SHOAL_STAGE_READY, ex->message);
            break;
        }
    }
    /* The child is freed by task_finish (safe here: nothing touches it
     * after its exit callback returns). */
    fleet__task_finish(t, ev);
}

static void exec_start(fleet_task *t)
{
    static const shoal_child_callbacks cbs = {sizeof(shoal_child_callbacks), on_child_stdout, on_child_stderr,
                                              on_child_exit};
    shoal_child_options o;
    shoal_child_options_init(&o);
    o.open_timeout_ms = 30000;
    if (t->req->host_timeout_ms && t->req->host_timeout_ms < o.open_timeout_ms)
        o.open_timeout_ms = t->req->host_timeout_ms;
    int rc = shoal_child_spawn(t->pc->c, t->req->command, &o, &cbs, t, &t->child);
    if (rc == 0) {
        /* stdin: the request's input, then EOF, as GoSSHa and pssh do; a
         * command that reads stdin (cat, read, a prompt) would otherwise
         * wait for input that never comes. The input is lent, not copied:
         * the task holds the request (and so the bytes) for as long as the
         * child may send them (a child handed to shoal_child_stop sends no
         * more). */
        const shoal_fleet_source *in = t->req->input;
        if (in && shoal_fleet_source_size(in))
            rc = shoal_child_write_borrowed(t->child, shoal_fleet_source_data(in), (size_t)shoal_fleet_source_size(in));
        if (rc == 0)
            rc = shoal_child_close_stdin(t->child);
        if (rc) {
            shoal_child_free(t->child);
            t->child = NULL;
        }
    }
    if (rc) {
        t->child = NULL;
        shoal_fleet_event *ev = fleet__task_event(t);
        if (ev) {
            ev->phase = "channel";
            fleet__classify(ev, rc, SHOAL_STAGE_READY, NULL);
            fleet__set_message(ev, "%s: channel: %s", t->host, shoal_strerror(rc));
        }
        fleet__task_finish(t, ev);
        return;
    }
    shoal_uv_conn_flush(t->pc->c);
}

static void task_begin(fleet_task *t)
{
    if (atomic_load(&t->req->stop) != SHOAL_FLEET_RUNNING) {
        task_stopped(t, atomic_load(&t->req->stop));
        return;
    }
    if (t->req->kind == SHOAL_FLEET_UPLOAD) {
        if (fleet__upload_start(t) != 0 && !t->done) {
            shoal_fleet_event *ev = fleet__task_event(t);
            if (ev) {
                ev->cls = SHOAL_FLEET_FAIL_UPLOAD;
                ev->phase = "upload";
                fleet__set_message(ev, "%s: upload: cannot start", t->host);
            }
            fleet__task_finish(t, ev);
        }
    } else {
        exec_start(t);
    }
}

/* ---- the pool ---- */


static void table_remove(pconn *pc)
{
    if (!pc->in_table)
        return;
    fleet_worker *w = pc->w;
    size_t b = fleet__hash(pc->key) % w->table_size;
    for (pconn **pp = &w->table[b]; *pp; pp = &(*pp)->hnext) {
        if (*pp == pc) {
            *pp = pc->hnext;
            break;
        }
    }
    pc->in_table = 0;
}

static pconn *table_find(fleet_worker *w, const char *key)
{
    for (pconn *pc = w->table[fleet__hash(key) % w->table_size]; pc; pc = pc->hnext)
        if (!strcmp(pc->key, key))
            return pc;
    return NULL;
}

struct dead_conn {
    shoal_uv_conn *c;
    struct dead_conn *next;
};

static void on_retry_closed(uv_handle_t *h)
{
    free(h);
}

static void pc_free(pconn *pc)
{
    table_remove(pc);
    if (pc->retry) {
        uv_close((uv_handle_t *)pc->retry, on_retry_closed);
        pc->retry = NULL;
    }
    if (pc->c) {
        shoal_uv_conn_free(pc->c);
        atomic_fetch_sub(&pc->w->f->conns, 1);
    }
    if (pc->dial_req)
        shoal_fleet_request_unref(pc->dial_req);
    free(pc->key);
    free(pc->user);
    free(pc->host);
    free(pc);
}

static void on_reap(uv_timer_t *tm)
{
    fleet_worker *w = tm->data;
    while (w->dead) {
        struct dead_conn *d = w->dead;
        w->dead = d->next;
        shoal_uv_conn_free(d->c);
        free(d);
    }
    while (w->grave) {
        pconn *pc = w->grave;
        w->grave = pc->qnext;
        pc_free(pc);
    }
}

/* Frees on the next loop turn: a connection's callbacks may still be on
 * the stack (a failure reported from inside shoal_uv_conn_start). */
static void pc_dispose(pconn *pc)
{
    fleet_worker *w = pc->w;
    table_remove(pc);
    pc->qnext = w->grave;
    w->grave = pc;
    uv_timer_start(&w->reaper, on_reap, 0, 0);
}

/* A task let go of the connection. */
static void pc_release(pconn *pc)
{
    if (pc->users)
        pc->users--;
    if (pc->users)
        return;
    if (pc->state == PC_DEAD) {
        pc_dispose(pc);
        return;
    }
    if (pc->state == PC_PENDING) {
        /* Never started: take it out of the start queue. */
        fleet_worker *w = pc->w;
        pconn **pp = &w->qhead;
        pconn *prev = NULL;
        while (*pp && *pp != pc) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = pc->qnext;
            if (w->qtail == pc)
                w->qtail = prev;
        }
        pc_dispose(pc);
        return;
    }
    int keep = pc->state == PC_READY && pc->dial_req && pc->dial_req->keep_conn && !pc->w->quitting;
    if (!keep) {
        table_remove(pc);
        shoal_uv_conn_close(pc->c); /* on_closed frees it */
    }
}

static void on_conn_ready(shoal_uv_conn *c, void *ud)
{
    pconn *pc = ud;
    (void)c;
    fleet_worker *w = pc->w;
    if (pc->state == PC_CONNECTING)
        w->handshaking--;
    pc->state = PC_READY;
    /* Every event costs the caller's thread a wake-up: only when wanted. */
    shoal_fleet_event *ev = w->f->cfg.no_connected_events ? NULL : calloc(1, sizeof(*ev));
    if (ev) {
        ev->type = SHOAL_FLEET_EV_CONNECTED;
        ev->req = shoal_fleet_request_ref(pc->dial_req);
        ev->index = pc->dial_index;
        fleet__post_event(w->f, ev);
    }
    fleet_task *t = pc->waiting;
    pc->waiting = NULL;
    /* Hold a use while starting tasks so a quick failure cannot free pc. */
    pc->users++;
    while (t) {
        fleet_task *next = t->wnext;
        t->wnext = NULL;
        task_begin(t);
        t = next;
    }
    pc_release(pc);
    pool_pump(w);
}

/* Authentication has begun: one command starts now, so that its channel
 * rides with the final auth request, a round trip sooner (see
 * shoal_channel_open_session); the other tasks start once the connection
 * is ready. Uploads wait: they pick SFTP, SCP or cat by what the server
 * offers. */
static void on_conn_authenticating(shoal_uv_conn *c, void *ud)
{
    pconn *pc = ud;
    (void)c;
    fleet_task **pp = &pc->waiting;
    while (*pp && (*pp)->req->kind == SHOAL_FLEET_UPLOAD)
        pp = &(*pp)->wnext;
    fleet_task *t = *pp;
    if (!t)
        return;
    *pp = t->wnext;
    t->wnext = NULL;
    pc->users++; /* a quick failure must not free pc under us */
    task_begin(t);
    pc_release(pc);
}

/* The connection is gone (or never came up): every task waiting for it
 * gets the failure as its result. */
static void pc_fail(pconn *pc, int err, shoal_uv_stage stage, const char *message)
{
    pc->state = PC_DEAD;
    table_remove(pc);
    pc->users++;
    fleet_task *t = pc->waiting;
    pc->waiting = NULL;
    while (t) {
        fleet_task *next = t->wnext;
        t->wnext = NULL;
        shoal_fleet_event *ev = fleet__task_event(t);
        if (ev)
            fleet__classify(ev, err, stage, message);
        fleet__task_finish(t, ev);
        t = next;
    }
    pc_release(pc);
}

static void pool_enqueue(fleet_worker *w, pconn *pc)
{
    pc->qnext = NULL;
    if (w->qtail)
        w->qtail->qnext = pc;
    else
        w->qhead = pc;
    w->qtail = pc;
}

static void on_retry(uv_timer_t *tm)
{
    pconn *pc = tm->data;
    pool_enqueue(pc->w, pc);
    pool_pump(pc->w);
}

/* A connection reset or closed before the server's version line (an
 * overloaded accept queue, sshd's MaxStartups) is tried again after a
 * short random back-off: nothing was sent but our version line. */
static int retry_later(pconn *pc, shoal_uv_conn *c, int err)
{
    fleet_worker *w = pc->w;
    unsigned max = w->f->cfg.connection_attempts ? w->f->cfg.connection_attempts : 3;
    if (w->quitting || !pc->waiting || pc->attempts >= max || shoal_uv_conn_stage(c) != SHOAL_STAGE_BANNER ||
        (err != SHOAL_ERR_EOF && err != SHOAL_ERR_IO))
        return 0;
    struct dead_conn *d = malloc(sizeof(*d));
    if (!pc->retry) {
        pc->retry = malloc(sizeof(uv_timer_t));
        if (pc->retry) {
            uv_timer_init(&w->loop, pc->retry);
            pc->retry->data = pc;
        }
    }
    if (!d || !pc->retry) {
        free(d);
        return 0;
    }
    d->c = c;
    d->next = w->dead;
    w->dead = d;
    uv_timer_start(&w->reaper, on_reap, 0, 0);
    pc->c = NULL;
    atomic_fetch_sub(&w->f->conns, 1);
    pc->state = PC_PENDING;
    uint64_t backoff = 100u * pc->attempts + (uint64_t)(rand() % 200);
    uv_timer_start(pc->retry, on_retry, backoff, 0);
    return 1;
}

static void on_conn_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    pconn *pc = ud;
    fleet_worker *w = pc->w;
    int was = pc->state;
    if (was == PC_CONNECTING)
        w->handshaking--;
    if (was == PC_CONNECTING && retry_later(pc, c, err)) {
        pool_pump(w);
        return;
    }
    pc_fail(pc, err ? err : SHOAL_ERR_CLOSED, shoal_uv_conn_stage(c), message ? message : "connection closed");
    pool_pump(w);
}

static void conn_log(shoal_uv_conn *c, int level, const char *msg, void *ud)
{
    pconn *pc = ud;
    const shoal_fleet_config *cfg = &pc->w->f->cfg;
    if (cfg->conn_cb->log)
        cfg->conn_cb->log(c, level, msg, cfg->conn_ud);
}

static int conn_passphrase(shoal_uv_conn *c, const char *path, char *buf, size_t sz, void *ud)
{
    pconn *pc = ud;
    const shoal_fleet_config *cfg = &pc->w->f->cfg;
    return cfg->conn_cb->passphrase ? cfg->conn_cb->passphrase(c, path, buf, sz, cfg->conn_ud) : SHOAL_ERR_UNSUPPORTED;
}

static int conn_password(shoal_uv_conn *c, const char *user, char *buf, size_t sz, void *ud)
{
    pconn *pc = ud;
    const shoal_fleet_config *cfg = &pc->w->f->cfg;
    return cfg->conn_cb->password ? cfg->conn_cb->password(c, user, buf, sz, cfg->conn_ud) : SHOAL_ERR_UNSUPPORTED;
}

static void pc_start(pconn *pc)
{
    fleet_worker *w = pc->w;
    const shoal_fleet_config *cfg = &w->f->cfg;
    shoal_uv_options o = *cfg->conn;
    o.host = pc->host;
    o.port = pc->port;
    shoal_client_config sc = *o.ssh;
    sc.user = pc->user;
    o.ssh = &sc;
    o.agent_limiter = o.agent_socket ? w->agent_limiter : NULL;
    shoal_key *keys[65];
    if (pc->extra_key) {
        unsigned n = 0;
        keys[n++] = pc->extra_key;
        for (unsigned i = 0; i < cfg->conn->n_keys && n < 65; i++)
            keys[n++] = cfg->conn->keys[i];
        o.keys = keys;
        o.n_keys = n;
    }
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_conn_ready;
    cb.on_authenticating = on_conn_authenticating;
    cb.on_closed = on_conn_closed;
    cb.log = conn_log;
    cb.passphrase = conn_passphrase;
    /* Without a password source the method is not offered, and a single
     * key's signed request is then the final one: the command's channel
     * can follow it at once (on_conn_authenticating). */
    cb.password = cfg->conn_cb->password ? conn_password : NULL;
    pc->state = PC_CONNECTING;
    pc->attempts++;
    w->handshaking++;
    int rc = shoal_uv_conn_new(&w->loop, &o, &cb, pc, &pc->c);
    if (rc == 0) {
        atomic_fetch_add(&w->f->conns, 1);
        w->dials++;
        rc = shoal_uv_conn_start(pc->c);
        return; /* failures to start are reported through on_closed */
    }
    pc->c = NULL;
    w->handshaking--;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s: cannot set up a connection: %s", pc->host, shoal_strerror(rc));
    pc_fail(pc, rc, SHOAL_STAGE_CONNECT, msg);
}

/* Starts queued connections while the handshake budget allows: pacing
 * keeps a 10,000-host run from stampeding the network and the servers. */
static void task_admit(fleet_worker *w, fleet_task *t, const char *key);
static void backlog_take(fleet_worker *w);

static void pool_pump(fleet_worker *w)
{
    /* Starting a connection can finish tasks, which pump again: one loop. */
    if (w->pumping)
        return;
    w->pumping = 1;
    for (;;) {
        while (w->qhead && w->handshaking < w->max_handshaking && !w->quitting) {
            pconn *pc = w->qhead;
            w->qhead = pc->qnext;
            if (!w->qhead)
                w->qtail = NULL;
            pc->qnext = NULL;
            pc_start(pc);
        }
        if (!w->backlog || w->qhead || (w->handshaking >= w->max_handshaking && !w->quitting))
            break;
        backlog_take(w);
    }
    w->pumping = 0;
}

/* ---- spilling ----
 * One loop on one core costs the least CPU per host: each extra thread that
 * sleeps and wakes for its share of the replies adds context switches (on a
 * server-bound run, 16% more CPU with two workers than with one). So worker
 * 0 receives every task and starts the new hosts itself, paced, from its
 * backlog; only while its loop is busy FLEET_SPILL_BUSY_PCT % of the time
 * does it hand hosts from the backlog to the other workers, for good (a
 * hand-off entry sends later tasks for the same host after them, so a host
 * still has one connection). A fleet of fast servers thus gets every core;
 * a fleet the client waits on gets one. */

struct handoff {
    char *key;
    unsigned worker;
    struct handoff *next;
};

static unsigned handoff_find(fleet_worker *w, const char *key)
{
    if (!w->handoffs)
        return 0;
    for (struct handoff *h = w->handoffs[fleet__hash(key) % w->handoffs_size]; h; h = h->next)
        if (!strcmp(h->key, key))
            return h->worker;
    return 0;
}

/* 0 when out of memory (the task then stays with worker 0). */
static int handoff_add(fleet_worker *w, const char *key, unsigned worker)
{
    if (!w->handoffs) {
        w->handoffs_size = 4096;
        w->handoffs = calloc(w->handoffs_size, sizeof(*w->handoffs));
        if (!w->handoffs)
            return 0;
    }
    struct handoff *h = malloc(sizeof(*h));
    if (!h || !(h->key = strdup(key))) {
        free(h);
        return 0;
    }
    size_t b = fleet__hash(key) % w->handoffs_size;
    h->worker = worker;
    h->next = w->handoffs[b];
    w->handoffs[b] = h;
    return 1;
}

static void handoffs_free(fleet_worker *w)
{
    for (size_t b = 0; w->handoffs && b < w->handoffs_size; b++) {
        while (w->handoffs[b]) {
            struct handoff *h = w->handoffs[b];
            w->handoffs[b] = h->next;
            free(h->key);
            free(h);
        }
    }
    free(w->handoffs);
    w->handoffs = NULL;
}

static void task_key(const fleet_task *t, char *key, size_t n)
{
    snprintf(key, n, "%s@%s:%u/%p", t->user, t->host, t->port, (void *)t->key);
}

/* Runs t on this worker. */
static void admit_here(fleet_worker *w, fleet_task *t)
{
    char key[1200];
    task_key(t, key, sizeof(key));
    task_admit(w, t, key);
}

static void backlog_push(fleet_worker *w, fleet_task *t)
{
    t->wnext = NULL;
    if (w->backlog_tail)
        w->backlog_tail->wnext = t;
    else
        w->backlog = t;
    w->backlog_tail = t;
}

static fleet_task *backlog_pop(fleet_worker *w)
{
    fleet_task *t = w->backlog;
    if (t) {
        w->backlog = t->wnext;
        if (!w->backlog)
            w->backlog_tail = NULL;
        t->wnext = NULL;
    }
    return t;
}

/* The next backlog task, kept here unless its host was handed off. */
static void backlog_take(fleet_worker *w)
{
    fleet_task *t = backlog_pop(w);
    char key[1200];
    task_key(t, key, sizeof(key));
    unsigned to = handoff_find(w, key);
    if (!to || fleet__post_task(w->f, to, t) != SHOAL_OK)
        task_admit(w, t, key); /* kept (a hand-off it cannot send runs here) */
}

/* Runs after every poll of worker 0's loop while it has a backlog, and
 * samples at most every FLEET_SPILL_TICK_MS. A timer would wake a loop that
 * waits on its servers a hundred times a second just to find it idle; an
 * idle loop runs no check and needs no help, and a saturated one runs it
 * all the time. */
static void on_spill_check(uv_check_t *ck)
{
    fleet_worker *w = ck->data;
    if (!w->backlog || w->quitting) {
        uv_check_stop(ck);
        return;
    }
    uint64_t now = uv_hrtime();
    if (now - w->spill_t0 < (uint64_t)FLEET_SPILL_TICK_MS * 1000000u)
        return;
    uint64_t idle = uv_metrics_idle_time(&w->loop);
    uint64_t span = now - w->spill_t0, idled = idle - w->spill_idle0;
    w->spill_t0 = now;
    w->spill_idle0 = idle;
    /* Busy share of the loop, averaged over ~10 samples: the burst of a
     * fan-out's first handshakes alone does not make a saturated core. */
    unsigned busy = span && idled < span ? (unsigned)(100 - idled * 100 / span) : 0;
    w->spill_busy = (w->spill_busy * 9 + busy * 10 + 5) / 10; /* percent x 10 */
    if (w->spill_busy < w->f->spill_busy_pct * 10u)
        return; /* this core keeps up */
    unsigned others = w->f->nw - 1;
    for (unsigned n = 0; n < FLEET_SPILL_BATCH * others && w->backlog; n++) {
        fleet_task *t = backlog_pop(w);
        char key[1200];
        task_key(t, key, sizeof(key));
        unsigned to = handoff_find(w, key);
        if (!to && !table_find(w, key)) {
            to = 1 + w->spill_next++ % others;
            if (!handoff_add(w, key, to))
                to = 0;
        }
        if (!to || fleet__post_task(w->f, to, t) != SHOAL_OK)
            task_admit(w, t, key); /* its host has a connection here now */
    }
}

static void task_arrive(fleet_worker *w, fleet_task *t)
{
    char key[1200];
    task_key(t, key, sizeof(key));
    if (w->idx == 0 && w->f->nw > 1) {
        unsigned to = handoff_find(w, key);
        if (to && fleet__post_task(w->f, to, t) == SHOAL_OK)
            return;
        if (!table_find(w, key) && !w->quitting) {
            /* A new host: into the backlog, started when the budget
             * allows, or handed off while this core is saturated. */
            backlog_push(w, t);
            if (!uv_is_active((uv_handle_t *)&w->spill)) {
                w->spill_busy = 0;
                w->spill_t0 = uv_hrtime();
                w->spill_idle0 = uv_metrics_idle_time(&w->loop);
                uv_check_start(&w->spill, on_spill_check);
            }
            pool_pump(w);
            return;
        }
    }
    task_admit(w, t, key);
}

static void task_admit(fleet_worker *w, fleet_task *t, const char *key)
{
    t->w = w;
    t->t0 = uv_now(&w->loop);
    t->next = w->active;
    if (w->active)
        w->active->prev = t;
    w->active = t;
    if (atomic_load(&t->req->stop) != SHOAL_FLEET_RUNNING || w->quitting) {
        task_stopped(t, w->quitting ? SHOAL_FLEET_STOP_CANCEL : atomic_load(&t->req->stop));
        return;
    }
    if (t->req->host_timeout_ms) {
        t->timer = malloc(sizeof(uv_timer_t));
        if (t->timer) {
            uv_timer_init(&w->loop, t->timer);
            t->timer->data = t;
            uv_timer_start(t->timer, on_task_timer, t->req->host_timeout_ms, 0);
        }
    }
    pconn *pc = table_find(w, key);
    if (!pc) {
        pc = calloc(1, sizeof(*pc));
        if (pc) {
            pc->w = w;
            pc->key = strdup(key);
            pc->user = strdup(t->user);
            pc->host = strdup(t->host);
            pc->port = t->port;
            pc->extra_key = t->key;
            pc->dial_req = shoal_fleet_request_ref(t->req);
            pc->dial_index = t->index;
        }
        if (!pc || !pc->key || !pc->user || !pc->host) {
            if (pc) {
                free(pc->key);
                free(pc->user);
                free(pc->host);
                if (pc->dial_req)
                    shoal_fleet_request_unref(pc->dial_req);
                free(pc);
            }
            shoal_fleet_event *ev = fleet__task_event(t);
            if (ev) {
                ev->cls = SHOAL_FLEET_FAIL_LOCAL;
                ev->phase = "connect";
                fleet__set_message(ev, "%s: out of memory", t->host);
            }
            fleet__task_finish(t, ev);
            return;
        }
        size_t b = fleet__hash(key) % w->table_size;
        pc->hnext = w->table[b];
        w->table[b] = pc;
        pc->in_table = 1;
        if (w->qtail)
            w->qtail->qnext = pc;
        else
            w->qhead = pc;
        w->qtail = pc;
    } else if (pc->dial_req != t->req && pc->state == PC_READY) {
        /* A reused connection takes the newest request's settings (keep). */
        shoal_fleet_request_unref(pc->dial_req);
        pc->dial_req = shoal_fleet_request_ref(t->req);
        pc->dial_index = t->index;
    }
    t->pc = pc;
    pc->users++;
    if (pc->state == PC_READY) {
        task_begin(t);
    } else {
        t->wnext = pc->waiting;
        pc->waiting = t;
        pool_pump(w);
    }
}

/* ---- the worker loop ---- */

static void stop_request(fleet_worker *w, shoal_fleet_request *req, int reason)
{
    /* Backlog tasks of the request: admitted, they stop at once (the stop
     * flag is set before this message is sent). */
    fleet_task *keep = NULL, **tail = &keep;
    for (fleet_task *t = backlog_pop(w); t; t = backlog_pop(w)) {
        if (t->req == req) {
            admit_here(w, t);
        } else {
            *tail = t;
            tail = &t->wnext;
        }
    }
    for (fleet_task *t = keep, *next; t; t = next) {
        next = t->wnext;
        backlog_push(w, t);
    }
    /* Restart from the head after each stop: finishing a task can finish
     * others (a shared connection closing). */
    for (;;) {
        fleet_task *t = w->active;
        while (t && (t->req != req || t->done))
            t = t->next;
        if (!t)
            break;
        task_stopped(t, reason);
    }
}

static void drop_idle(fleet_worker *w)
{
    for (size_t b = 0; b < w->table_size; b++) {
        pconn *pc = w->table[b];
        while (pc) {
            pconn *next = pc->hnext;
            if (pc->users == 0 && pc->state == PC_READY) {
                table_remove(pc);
                shoal_uv_conn_close(pc->c);
            }
            pc = next;
        }
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void quit(fleet_worker *w)
{
    w->quitting = 1;
    for (fleet_task *t = backlog_pop(w); t; t = backlog_pop(w))
        admit_here(w, t); /* quitting: stopped at once */
    if (w->idx == 0 && w->f->nw > 1)
        uv_close((uv_handle_t *)&w->spill, NULL);
    while (w->active)
        task_stopped(w->active, SHOAL_FLEET_STOP_CANCEL);
    while (w->qhead) {
        pconn *pc = w->qhead;
        w->qhead = pc->qnext;
        pc_free(pc);
    }
    w->qtail = NULL;
    for (size_t b = 0; b < w->table_size; b++) {
        pconn *pc = w->table[b];
        while (pc) {
            pconn *next = pc->hnext;
            /* A connection still held (an aborted upload cleaning up) is
             * closed when the hold is dropped. */
            if (pc->users == 0) {
                table_remove(pc);
                if (pc->c)
                    shoal_uv_conn_close(pc->c);
            }
            pc = next;
        }
    }
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_unref((uv_handle_t *)&w->reaper);
}

void fleet__worker_wake(uv_async_t *a)
{
    fleet_worker *w = a->data;
    pthread_mutex_lock(&w->mu);
    fleet_msg *m = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (m) {
        fleet_msg *next = m->next;
        switch (m->type) {
        case MSG_TASK:
            task_arrive(w, m->task);
            break;
        case MSG_STOP:
            stop_request(w, m->req, m->reason);
            shoal_fleet_request_unref(m->req);
            break;
        case MSG_DROP_IDLE:
            drop_idle(w);
            break;
        case MSG_QUIT:
            if (!w->quitting)
                quit(w);
            break;
        }
        free(m);
        m = next;
    }
}

void fleet__worker_main(void *arg)
{
    fleet_worker *w = arg;
    /* glibc grows a thread's arena only by what each allocation needs, one
     * mprotect() call per step: thousands per thousand connections. One
     * block of the reserve size, freed at once, grows it in one call; the
     * pages are still only touched (and counted in RSS) when used, and the
     * trim threshold keeps the arena from shrinking back. */
    void *volatile reserve = malloc(FLEET_ARENA_RESERVE); /* volatile: kept by the optimiser */
    free(reserve);
    uv_timer_init(&w->loop, &w->reaper);
    w->reaper.data = w;
    if (w->idx == 0 && w->f->nw > 1) {
        uv_check_init(&w->loop, &w->spill);
        w->spill.data = w;
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    on_reap(&w->reaper);
    handoffs_free(w);
    if (w->f->debug)
        fprintf(stderr, "shoal: worker %u: %lu connections\n", w->idx, w->dials);
    /* Anything left (closing connections' handles) is closed here. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}
