/* Remote commands as processes (include/shoal/command.h): one session
 * channel running one command, with queued stdin, collected or streamed
 * output, deadlines, and a result that never confuses a failure with an
 * exit code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "shoal/command.h"
#include "wire/buf.h"

#define DEFAULT_COLLECT (1u << 20)
#define DEFAULT_OPEN_TIMEOUT 30000u
#define STDIN_CHUNK (256u * 1024u)

struct shoal_child {
    shoal_uv_conn *conn;
    shoal_channel *ch;
    shoal_child_callbacks cb;
    void *ud;
    char *command;
    char **env;
    unsigned n_env;
    int pty;
    char *term;
    uint32_t cols, rows;
    size_t collect_limit;
    uint64_t open_timeout_ms, timeout_ms;

    shoal_buf in;            /* stdin not yet sent */
    const uint8_t *lent;     /* shoal_child_write_borrowed: the caller's bytes, sent after `in` */
    size_t lent_len;
    int stdin_close_wanted, eof_sent;
    shoal_buf out, err;
    int truncated;
    int paused;
    size_t held;             /* delivered while paused, not yet consumed */

    uv_timer_t timer;
    int timer_open;
    int exec_sent, exec_ok, done;
    /* shoal_child_stop: TERM sent, KILL at the timer; nothing reaches the
     * application but stop_done when it is over. */
    int stopping;
    void (*stop_done)(void *);
    void *stop_ud;
    int have_status, have_signal;
    int status, core;
    char signal[33];
    int err_code;
    char message[512];
};

static void finish(shoal_child *c, shoal_exit_kind kind);

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void child_destroy(shoal_child *c)
{
    shoal_buf_free(&c->in);
    shoal_buf_free(&c->out);
    shoal_buf_free(&c->err);
    for (unsigned i = 0; i < c->n_env; i++)
        free(c->env[i]);
    free(c->env);
    free(c->command);
    free(c->term);
    if (c->timer_open) {
        /* The struct is freed when the timer handle is closed. */
        c->timer_open = 0;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    } else {
        free(c);
    }
}

static void fail(shoal_child *c, int err, const char *what)
{
    if (c->done)
        return;
    c->err_code = err;
    snprintf(c->message, sizeof(c->message), "%s: %s", shoal_uv_conn_name(c->conn), what);
    finish(c, SHOAL_EXIT_ERROR);
}

static void finish(shoal_child *c, shoal_exit_kind kind)
{
    if (c->done)
        return;
    c->done = 1;
    if (c->timer_open)
        uv_timer_stop(&c->timer);
    shoal_exit ex;
    memset(&ex, 0, sizeof(ex));
    ex.kind = kind;
    ex.status = c->status;
    ex.signal = c->have_signal ? c->signal : NULL;
    ex.core_dumped = c->core;
    ex.err = c->err_code;
    ex.message = kind == SHOAL_EXIT_ERROR ? c->message : NULL;
    if (c->cb.on_exit)
        c->cb.on_exit(c, &ex, c->ud);
}

static void close_channel(shoal_child *c)
{
    if (c->ch) {
        shoal_channel *ch = c->ch;
        c->ch = NULL;
        shoal_channel_detach(ch);
        shoal_channel_close(ch);
        shoal_uv_conn_flush(c->conn);
    }
}

static void arm(shoal_child *c, uint64_t ms);

static void stop_over(shoal_child *c);

static void on_timer(uv_timer_t *t)
{
    shoal_child *c = t->data;
    char d[128];
    if (c->stopping) {
        /* The grace period is over: KILL, and the channel goes without
         * waiting for the server's answer. */
        if (c->ch)
            shoal_channel_signal(c->ch, "KILL");
        close_channel(c);
        stop_over(c);
        return;
    }
    if (!c->exec_ok && shoal_uv_conn_stage(c->conn) != SHOAL_STAGE_READY) {
        /* Spawned before authentication ended (on_authenticating): the
         * connection's own deadlines govern until then. */
        arm(c, c->open_timeout_ms);
        return;
    }
    /* Close first: the exit callback may free the child. */
    if (!c->exec_ok) {
        snprintf(d, sizeof(d), "channel: no session channel with the command started within %.1f s",
                 (double)c->open_timeout_ms / 1000.0);
        close_channel(c);
        fail(c, SHOAL_ERR_TIMEOUT, d);
    } else {
        snprintf(d, sizeof(d), "command: still running after %.1f s; channel closed",
                 (double)c->timeout_ms / 1000.0);
        if (c->ch)
            shoal_channel_signal(c->ch, "KILL");
        close_channel(c);
        fail(c, SHOAL_ERR_TIMEOUT, d);
    }
}

static void arm(shoal_child *c, uint64_t ms)
{
    if (c->timer_open && ms)
        uv_timer_start(&c->timer, on_timer, ms, 0);
    else if (c->timer_open)
        uv_timer_stop(&c->timer);
}

static void push_stdin(shoal_child *c)
{
    if (!c->ch || !c->exec_ok || c->stopping)
        return;
    /* Each write is offered everything that is left: a write the channel
     * cannot take whole is what arms on_writable. */
    while (shoal_buf_len(&c->in) > 0) {
        size_t w = 0;
        if (shoal_channel_write(c->ch, shoal_buf_ptr(&c->in), shoal_buf_len(&c->in), &w) != 0 || w == 0)
            break;
        shoal_buf_consume(&c->in, w);
    }
    while (shoal_buf_len(&c->in) == 0 && c->lent_len > 0) {
        size_t w = 0;
        if (shoal_channel_write(c->ch, c->lent, c->lent_len, &w) != 0 || w == 0)
            break;
        c->lent += w;
        c->lent_len -= w;
    }
    if (c->stdin_close_wanted && !c->eof_sent && shoal_buf_len(&c->in) == 0 && c->lent_len == 0) {
        c->eof_sent = 1;
        shoal_channel_send_eof(c->ch);
    }
    shoal_uv_conn_flush(c->conn);
}

/* ---- channel callbacks ---- */

static void on_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    shoal_child *c = ud;
    if (err) {
        char d[400];
        c->ch = NULL;
        /* The connection itself ended (a reset, a disconnect): say that,
         * not that the server refused. */
        shoal_session *s = shoal_uv_conn_session(c->conn);
        const char *msg = NULL;
        int serr = shoal_session_is_closed(s) ? shoal_session_error(s, &msg) : 0;
        if (serr) {
            c->err_code = serr;
            snprintf(c->message, sizeof(c->message), "%s: %s", shoal_uv_conn_name(c->conn),
                     msg ? msg : shoal_strerror(serr));
            finish(c, SHOAL_EXIT_ERROR);
            return;
        }
        snprintf(d, sizeof(d), "channel: server refused a session channel: %s", reason ? reason : shoal_strerror(err));
        fail(c, err, d);
        return;
    }
    for (unsigned i = 0; i < c->n_env; i++) {
        char *eq = strchr(c->env[i], '=');
        if (!eq)
            continue;
        *eq = 0;
        shoal_channel_env(ch, c->env[i], eq + 1);
        *eq = '=';
    }
    if (c->pty)
        shoal_channel_pty(ch, c->term ? c->term : "xterm", c->cols ? c->cols : 80, c->rows ? c->rows : 24);
    if (shoal_channel_exec(ch, c->command) == SHOAL_OK)
        c->exec_sent = 1;
    /* Nothing to send on stdin: its EOF goes right behind the exec request,
     * in the same write (a packet fewer per host in a fan-out; the server
     * reads them in order, so the command starts with stdin closed). */
    if (c->exec_sent && c->stdin_close_wanted && !c->eof_sent && shoal_buf_len(&c->in) == 0 && c->lent_len == 0) {
        c->eof_sent = 1;
        shoal_channel_send_eof(ch);
    }
}

static void on_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    shoal_child *c = ud;
    (void)ch;
    if (strcmp(request, "exec") != 0)
        return; /* a refused pty is not fatal, as with OpenSSH's ssh */
    if (c->stopping) {
        if (!ok) { /* nothing ran: nothing to wait for */
            close_channel(c);
            stop_over(c);
        }
        return;
    }
    if (!ok) {
        close_channel(c);
        fail(c, SHOAL_ERR_REQUEST_DENIED, "command: server refused to execute the command");
        return;
    }
    c->exec_ok = 1;
    arm(c, c->timeout_ms);
    push_stdin(c);
}

static void collect(shoal_child *c, shoal_buf *b, const uint8_t *d, size_t n)
{
    size_t have = shoal_buf_len(b);
    if (have >= c->collect_limit) {
        c->truncated = 1;
        return;
    }
    size_t take = n < c->collect_limit - have ? n : c->collect_limit - have;
    if (take < n)
        c->truncated = 1;
    if (shoal_buf_put(b, d, take))
        c->truncated = 1;
}

static void on_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    shoal_child *c = ud;
    if (c->stopping) {
        shoal_channel_consume(ch, n); /* a command blocked on a full window still gets the signal */
        return;
    }
    void (*cb)(shoal_child *, const uint8_t *, size_t, void *) =
        stream == SHOAL_STDERR ? c->cb.on_stderr : c->cb.on_stdout;
    if (cb)
        cb(c, d, n, c->ud);
    else
        collect(c, stream == SHOAL_STDERR ? &c->err : &c->out, d, n);
    if (c->paused)
        c->held += n;
    else
        shoal_channel_consume(ch, n);
}

static void on_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_exit_status(shoal_channel *ch, uint32_t status, void *ud)
{
    shoal_child *c = ud;
    (void)ch;
    c->have_status = 1;
    c->status = (int)status;
}

static void on_exit_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    shoal_child *c = ud;
    (void)ch;
    (void)msg;
    c->have_signal = 1;
    snprintf(c->signal, sizeof(c->signal), "%s", sig);
    c->core = core;
}

static void on_writable(shoal_channel *ch, void *ud)
{
    (void)ch;
    push_stdin(ud);
}

static void on_close(shoal_channel *ch, void *ud)
{
    shoal_child *c = ud;
    (void)ch;
    c->ch = NULL;
    if (c->stopping) {
        stop_over(c); /* the command ended, or the connection did */
        return;
    }
    if (c->have_status) {
        finish(c, SHOAL_EXIT_STATUS);
        return;
    }
    if (c->have_signal) {
        finish(c, SHOAL_EXIT_SIGNAL);
        return;
    }
    shoal_session *s = shoal_uv_conn_session(c->conn);
    const char *msg = NULL;
    int err = shoal_session_is_closed(s) ? shoal_session_error(s, &msg) : 0;
    if (err) {
        c->err_code = err;
        snprintf(c->message, sizeof(c->message), "%s: %s", shoal_uv_conn_name(c->conn), msg ? msg : shoal_strerror(err));
        finish(c, SHOAL_EXIT_ERROR);
    } else if (!c->exec_ok) {
        fail(c, SHOAL_ERR_CLOSED, "channel: closed before the command started");
    } else {
        finish(c, SHOAL_EXIT_NONE);
    }
}

static const shoal_channel_callbacks CHILD_CBS = {sizeof(shoal_channel_callbacks),
                                                  on_open,
                                                  on_request,
                                                  on_data,
                                                  on_eof,
                                                  on_exit_status,
                                                  on_exit_signal,
                                                  on_writable,
                                                  on_close};

/* ---- public ---- */

int shoal_child_spawn(shoal_uv_conn *conn, const char *command, const shoal_child_options *opt,
                      const shoal_child_callbacks *cb, void *ud, shoal_child **out)
{
    *out = NULL;
    shoal_child_options o;
    shoal_child_callbacks cbs;
    if (!conn || !command || SHOAL_COPY_IN_OPT(&o, opt) || SHOAL_COPY_IN_OPT(&cbs, cb))
        return SHOAL_ERR_INVALID_ARG;
    opt = &o;
    shoal_child *c = calloc(1, sizeof(*c));
    if (!c)
        return SHOAL_ERR_NOMEM;
    c->conn = conn;
    c->cb = cbs;
    c->ud = ud;
    c->command = strdup(command);
    c->collect_limit = opt && opt->collect_limit ? opt->collect_limit : DEFAULT_COLLECT;
    c->open_timeout_ms = opt && opt->open_timeout_ms ? opt->open_timeout_ms : DEFAULT_OPEN_TIMEOUT;
    c->timeout_ms = opt ? opt->timeout_ms : 0;
    if (opt && opt->pty) {
        c->pty = 1;
        c->term = opt->term ? strdup(opt->term) : NULL;
        c->cols = opt->cols;
        c->rows = opt->rows;
    }
    if (opt && opt->n_env) {
        c->env = calloc(opt->n_env, sizeof(char *));
        for (unsigned i = 0; c->env && i < opt->n_env; i++)
            if ((c->env[i] = strdup(opt->env[i])) != NULL)
                c->n_env = i + 1;
    }
    shoal_buf_init(&c->in, 64u << 20);
    shoal_buf_init(&c->out, c->collect_limit + 1);
    shoal_buf_init(&c->err, c->collect_limit + 1);
    if (!c->command) {
        child_destroy(c);
        return SHOAL_ERR_NOMEM;
    }
    int rc = shoal_channel_open_session(shoal_uv_conn_session(conn), &CHILD_CBS, c, &c->ch);
    if (rc) {
        child_destroy(c);
        return rc;
    }
    shoal_channel_set_manual_window(c->ch, 1);
    uv_timer_init(shoal_uv_conn_loop(conn), &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    arm(c, c->open_timeout_ms);
    shoal_uv_conn_flush(conn);
    *out = c;
    return SHOAL_OK;
}

int shoal_child_write(shoal_child *c, const void *data, size_t len)
{
    if (c->done || c->stdin_close_wanted || c->lent_len)
        return SHOAL_ERR_BAD_STATE;
    int rc = shoal_buf_put(&c->in, data, len);
    if (rc)
        return rc;
    push_stdin(c);
    return SHOAL_OK;
}

int shoal_child_write_borrowed(shoal_child *c, const void *data, size_t len)
{
    if (c->done || c->stdin_close_wanted || c->lent_len)
        return SHOAL_ERR_BAD_STATE;
    c->lent = data;
    c->lent_len = len;
    push_stdin(c);
    return SHOAL_OK;
}

size_t shoal_child_stdin_pending(const shoal_child *c)
{
    return shoal_buf_len(&c->in) + c->lent_len;
}

int shoal_child_close_stdin(shoal_child *c)
{
    c->stdin_close_wanted = 1;
    push_stdin(c);
    return SHOAL_OK;
}

int shoal_child_kill(shoal_child *c, const char *signal)
{
    if (!c->ch || !c->exec_ok)
        return SHOAL_ERR_BAD_STATE;
    int rc = shoal_channel_signal(c->ch, signal);
    shoal_uv_conn_flush(c->conn);
    return rc;
}

void shoal_child_pause_output(shoal_child *c, int pause)
{
    c->paused = pause;
    if (!pause && c->held && c->ch) {
        shoal_channel_consume(c->ch, c->held);
        c->held = 0;
        shoal_uv_conn_flush(c->conn);
    }
}

const uint8_t *shoal_child_stdout(const shoal_child *c, size_t *len)
{
    *len = shoal_buf_len(&c->out);
    return shoal_buf_ptr(&c->out);
}

const uint8_t *shoal_child_stderr(const shoal_child *c, size_t *len)
{
    *len = shoal_buf_len(&c->err);
    return shoal_buf_ptr(&c->err);
}

int shoal_child_output_truncated(const shoal_child *c)
{
    return c->truncated;
}

void *shoal_child_userdata(const shoal_child *c)
{
    return c->ud;
}

int shoal_child_started(const shoal_child *c)
{
    return c && c->exec_ok;
}

/* A command that may be running: its exec request went out and no exit
 * was reported. */
static int may_be_running(const shoal_child *c)
{
    return c->ch && c->exec_sent && !c->done;
}

static void stop_over(shoal_child *c)
{
    void (*done)(void *) = c->stop_done;
    void *ud = c->stop_ud;
    child_destroy(c);
    if (done)
        done(ud);
}

int shoal_child_stop(shoal_child *c, uint64_t grace_ms, void (*done)(void *ud), void *ud)
{
    if (!c)
        return 0;
    if (!may_be_running(c) || !c->timer_open) {
        shoal_child_free(c);
        return 0;
    }
    /* OpenSSH's sshd delivers "signal" to the session's process group (its
     * killpg), so the shell and what it started both get it; it refuses for
     * subsystems and forced commands, where KILL fails the same way and the
     * channel close is all that is left. */
    c->stopping = 1;
    c->lent = NULL; /* the caller's bytes may go away now */
    c->lent_len = 0;
    c->stop_done = done;
    c->stop_ud = ud;
    memset(&c->cb, 0, sizeof(c->cb));
    c->ud = NULL;
    c->paused = 0;
    if (c->held) {
        shoal_channel_consume(c->ch, c->held);
        c->held = 0;
    }
    shoal_channel_signal(c->ch, "TERM");
    shoal_uv_conn_flush(c->conn);
    uv_timer_start(&c->timer, on_timer, grace_ms ? grace_ms : 1, 0);
    return 1;
}

void shoal_child_free(shoal_child *c)
{
    if (!c)
        return;
    /* Closing the channel alone leaves the command running on OpenSSH
     * (it only notices when it next writes): ask it to stop first. */
    if (may_be_running(c))
        shoal_channel_signal(c->ch, "TERM");
    close_channel(c);
    child_destroy(c);
}

/* ---- shoal_run ---- */

typedef struct run_state {
    shoal_run_result *res;
    const char *command;
    const void *in;
    size_t in_len;
    const shoal_child_options *copt;
    shoal_child *child;
    int got_exit;
} run_state;

static void run_on_exit(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    run_state *rs = ud;
    shoal_run_result *r = rs->res;
    rs->got_exit = 1;
    r->kind = ex->kind;
    r->status = ex->status;
    r->core_dumped = ex->core_dumped;
    if (ex->signal)
        snprintf(r->signal, sizeof(r->signal), "%s", ex->signal);
    r->err = ex->err;
    if (ex->message)
        snprintf(r->message, sizeof(r->message), "%s", ex->message);
    size_t n;
    const uint8_t *p = shoal_child_stdout(ch, &n);
    r->out = malloc(n + 1);
    if (r->out) {
        if (n)
            memcpy(r->out, p, n);
        r->out[n] = 0;
        r->out_len = n;
    }
    p = shoal_child_stderr(ch, &n);
    r->err_out = malloc(n + 1);
    if (r->err_out) {
        if (n)
            memcpy(r->err_out, p, n);
        r->err_out[n] = 0;
        r->err_len = n;
    }
    r->truncated = shoal_child_output_truncated(ch);
    shoal_uv_conn_close(ch->conn);
}

static void run_on_ready(shoal_uv_conn *c, void *ud)
{
    run_state *rs = ud;
    shoal_child_callbacks cb = {sizeof(shoal_child_callbacks), NULL, NULL, run_on_exit};
    int rc = shoal_child_spawn(c, rs->command, rs->copt, &cb, rs, &rs->child);
    if (rc) {
        rs->res->err = rc;
        snprintf(rs->res->message, sizeof(rs->res->message), "%s: channel: %s", shoal_uv_conn_name(c),
                 shoal_strerror(rc));
        shoal_uv_conn_close(c);
        return;
    }
    if (rs->in && rs->in_len)
        shoal_child_write(rs->child, rs->in, rs->in_len);
    shoal_child_close_stdin(rs->child);
}

static void run_on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    run_state *rs = ud;
    (void)c;
    if (!rs->got_exit && !rs->res->err) {
        rs->res->kind = SHOAL_EXIT_ERROR;
        rs->res->err = err ? err : SHOAL_ERR_CLOSED;
        snprintf(rs->res->message, sizeof(rs->res->message), "%s",
                 message ? message : shoal_strerror(rs->res->err));
    }
}

int shoal_run(const shoal_uv_options *opt, const char *command, const void *stdin_data, size_t stdin_len,
              const shoal_child_options *copt, shoal_run_result *res)
{
    memset(res, 0, sizeof(*res));
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return SHOAL_ERR_IO;
    run_state rs = {res, command, stdin_data, stdin_len, copt, NULL, 0};
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = run_on_ready;
    cb.on_closed = run_on_closed;
    shoal_uv_conn *conn;
    int rc = shoal_uv_conn_new(&loop, opt, &cb, &rs, &conn);
    if (rc) {
        uv_loop_close(&loop);
        res->err = rc;
        snprintf(res->message, sizeof(res->message), "%s", shoal_strerror(rc));
        return rc;
    }
    shoal_uv_conn_start(conn);
    uv_run(&loop, UV_RUN_DEFAULT);
    shoal_child_free(rs.child);
    shoal_uv_conn_free(conn);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rs.got_exit && res->kind != SHOAL_EXIT_ERROR ? SHOAL_OK : (res->err ? res->err : SHOAL_ERR_CLOSED);
}

void shoal_run_result_free(shoal_run_result *res)
{
    free(res->out);
    free(res->err_out);
    res->out = res->err_out = NULL;
}
