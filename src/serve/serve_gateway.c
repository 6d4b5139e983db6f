/* The server engine (shoal serve): the gateway. A user's session channels
 * are forwarded to an upstream SSH server through our own client (one
 * upstream connection per client connection, authenticated with the
 * configured key, the upstream host key checked strictly against the
 * configured known_hosts file).
 *
 * Each downstream session channel gets an upstream twin. Requests (pty-req,
 * env, exec, shell, subsystem, window-change, signal) are passed on and
 * their answers passed back in order (deferred replies); data flows both
 * ways with flow control (a side's window reopens only as the other side
 * takes the bytes); EOF, exit status, exit signal and CLOSE are mirrored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_gateway.h"
#include "shoal/uv.h"
#include "wire/buf.h"

/* Each side's window is 2 MiB: a buffer can hold what one window lets in. */
#define BUF_MAX (4u << 20)
#define MAX_QUEUED 16

typedef struct gw_conn gw_conn;

typedef struct queued_req {
    char type[32];
    int want_reply;
    char *s1, *s2; /* command / subsystem / term / env name, env value / signal */
    uint32_t cols, rows;
} queued_req;

typedef struct gw_chan {
    gw_conn *g;
    struct gw_chan *next;
    shoal_channel *down, *up;
    int up_open;
    queued_req q[MAX_QUEUED]; /* requests before the upstream channel exists */
    unsigned nq;
    int replies[32];          /* FIFO: 1 = answer the client when upstream answers */
    unsigned r_head, r_count;
    shoal_buf to_up;          /* client bytes waiting for the upstream window */
    shoal_buf to_down[2];     /* upstream stdout / stderr waiting for the client's window */
    int down_eof_pending;     /* client EOF, to pass on once to_up drains */
    int up_eof_pending;       /* upstream EOF, to pass on once to_down drains */
    int up_close_pending;     /* upstream closed: close downstream once drained */
    int closed;
} gw_chan;

struct gw_conn {
    serve_conn *sc;
    shoal_uv_conn *up;
    int ready, failed;
    char err[600];
    gw_chan *chans;
    uv_loop_t *loop;
};

static void chan_fail(gw_chan *c, const char *msg);

/* ---- helpers ---- */

static void free_q(queued_req *q)
{
    free(q->s1);
    free(q->s2);
    memset(q, 0, sizeof(*q));
}

static void push_reply(gw_chan *c, int answer_client)
{
    if (c->r_count < 32) {
        c->replies[(c->r_head + c->r_count) % 32] = answer_client;
        c->r_count++;
    }
}

static void flush_both(gw_chan *c)
{
    shoal_uv_sconn_flush(c->g->sc->sconn);
    if (c->g->up)
        shoal_uv_conn_flush(c->g->up);
}

/* Writes buffered bytes to ch; returns how many went. */
static size_t drain(shoal_channel *ch, shoal_buf *b, int stderr_stream)
{
    size_t w = 0;
    if (!ch || shoal_buf_len(b) == 0)
        return 0;
    if (stderr_stream)
        shoal_channel_write_stderr(ch, shoal_buf_ptr(b), shoal_buf_len(b), &w);
    else
        shoal_channel_write(ch, shoal_buf_ptr(b), shoal_buf_len(b), &w);
    shoal_buf_consume(b, w);
    return w;
}

static size_t down_pending(const gw_chan *c)
{
    return shoal_buf_len(&c->to_down[0]) + shoal_buf_len(&c->to_down[1]);
}

/* ---- upstream channel (our client side) ---- */

static void send_request_up(gw_chan *c, const queued_req *q)
{
    shoal_channel *u = c->up;
    int rc = -1;
    if (!strcmp(q->type, "pty-req"))
        rc = shoal_channel_pty(u, q->s1, q->cols, q->rows);
    else if (!strcmp(q->type, "exec"))
        rc = shoal_channel_exec(u, q->s1);
    else if (!strcmp(q->type, "shell"))
        rc = shoal_channel_shell(u);
    else if (!strcmp(q->type, "subsystem"))
        rc = shoal_channel_subsystem(u, q->s1);
    else if (!strcmp(q->type, "env"))
        shoal_channel_env(u, q->s1, q->s2);
    else if (!strcmp(q->type, "window-change"))
        shoal_channel_window_change(u, q->cols, q->rows);
    else if (!strcmp(q->type, "signal"))
        shoal_channel_signal(u, q->s1);
    /* pty-req, exec, shell, subsystem want a reply upstream. */
    if (rc == 0)
        push_reply(c, q->want_reply);
    else if (rc > 0 || (rc < 0 && (!strcmp(q->type, "pty-req") || !strcmp(q->type, "exec") ||
                                   !strcmp(q->type, "shell") || !strcmp(q->type, "subsystem")))) {
        if (q->want_reply && c->down)
            shoal_channel_request_reply(c->down, 0);
    }
}

static void up_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    gw_chan *c = ud;
    if (err) {
        char m[300];
        snprintf(m, sizeof(m), "gateway: upstream refused a session: %s", reason ? reason : shoal_strerror(err));
        c->up = NULL;
        chan_fail(c, m);
        return;
    }
    c->up_open = 1;
    shoal_channel_set_manual_window(ch, 1);
    for (unsigned i = 0; i < c->nq; i++) {
        send_request_up(c, &c->q[i]);
        free_q(&c->q[i]);
    }
    c->nq = 0;
    size_t w = drain(c->up, &c->to_up, 0);
    if (w && c->down)
        shoal_channel_consume(c->down, w);
    if (c->down_eof_pending && shoal_buf_len(&c->to_up) == 0)
        shoal_channel_send_eof(c->up);
    flush_both(c);
}

static void up_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    (void)request;
    if (!c->r_count)
        return;
    int answer = c->replies[c->r_head];
    c->r_head = (c->r_head + 1) % 32;
    c->r_count--;
    if (answer && c->down)
        shoal_channel_request_reply(c->down, ok);
    flush_both(c);
}

static void up_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    gw_chan *c = ud;
    int e = stream == SHOAL_STDERR;
    if (!c->down) {
        shoal_channel_consume(ch, n);
        return;
    }
    /* Pass on what the client's window takes now; keep the rest. Our
     * upstream window reopens only as the client takes the bytes, so the
     * buffer never holds more than one window. */
    size_t w = 0;
    if (down_pending(c) == 0) {
        if (e)
            shoal_channel_write_stderr(c->down, d, n, &w);
        else
            shoal_channel_write(c->down, d, n, &w);
        shoal_channel_consume(ch, w);
    }
    if (w < n && shoal_buf_put(&c->to_down[e], d + w, n - w) != 0) {
        chan_fail(c, "gateway: buffer overflow");
        return;
    }
    flush_both(c);
}

static void up_eof(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    c->up_eof_pending = 1;
    if (c->down && down_pending(c) == 0)
        shoal_channel_send_eof(c->down);
    flush_both(c);
}

static void up_status(shoal_channel *ch, uint32_t st, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    if (c->down)
        shoal_channel_exit_status(c->down, st);
}

static void up_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    if (c->down)
        shoal_channel_exit_signal(c->down, sig, core, msg);
}

static void up_writable(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    size_t w = drain(ch, &c->to_up, 0);
    if (w && c->down)
        shoal_channel_consume(c->down, w);
    if (c->down_eof_pending && shoal_buf_len(&c->to_up) == 0)
        shoal_channel_send_eof(ch);
    flush_both(c);
}

static void up_close(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    c->up = NULL;
    if (!c->down)
        return;
    /* The upstream connection died rather than the command ending: say so. */
    shoal_session *us = c->g->up ? shoal_uv_conn_session(c->g->up) : NULL;
    const char *msg = NULL;
    if (us && shoal_session_is_closed(us) && shoal_session_error(us, &msg) && !c->up_eof_pending) {
        char m[700];
        snprintf(m, sizeof(m), "gateway: upstream connection lost: %s", msg ? msg : "");
        chan_fail(c, m);
        return;
    }
    if (down_pending(c)) {
        c->up_close_pending = 1; /* down_writable closes once drained */
        return;
    }
    shoal_channel_close(c->down);
    flush_both(c);
}

static const shoal_channel_callbacks UP_CBS = {
    sizeof(shoal_channel_callbacks), up_open, up_request, up_data, up_eof, up_status, up_signal, up_writable, up_close};

static void open_up(gw_chan *c)
{
    if (c->up || !c->g->ready)
        return;
    if (shoal_channel_open_session(shoal_uv_conn_session(c->g->up), &UP_CBS, c, &c->up) != 0) {
        c->up = NULL;
        chan_fail(c, "gateway: cannot open an upstream session");
        return;
    }
    shoal_uv_conn_flush(c->g->up);
}

/* ---- downstream channel (our server side) ---- */

static char *dupz(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int down_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    queued_req q;
    memset(&q, 0, sizeof(q));
    snprintf(q.type, sizeof(q.type), "%s", req->type);
    q.want_reply = req->want_reply;
    q.cols = req->cols;
    q.rows = req->rows;
    if (!strcmp(req->type, "exec"))
        q.s1 = dupz(req->command);
    else if (!strcmp(req->type, "subsystem"))
        q.s1 = dupz(req->subsystem);
    else if (!strcmp(req->type, "pty-req"))
        q.s1 = dupz(req->term);
    else if (!strcmp(req->type, "signal"))
        q.s1 = dupz(req->signal);
    else if (!strcmp(req->type, "env")) {
        q.s1 = dupz(req->name);
        q.s2 = dupz(req->value);
    } else if (strcmp(req->type, "shell") != 0 && strcmp(req->type, "window-change") != 0) {
        return 0; /* nothing else is passed on */
    }
    int replied_later = !strcmp(req->type, "pty-req") || !strcmp(req->type, "exec") ||
                        !strcmp(req->type, "shell") || !strcmp(req->type, "subsystem");
    if (c->up_open) {
        send_request_up(c, &q);
        free_q(&q);
        flush_both(c);
    } else if (c->nq < MAX_QUEUED) {
        c->q[c->nq++] = q;
    } else {
        free_q(&q);
        return 0;
    }
    if (replied_later && req->want_reply)
        return SHOAL_ERR_DEFERRED;
    return 1;
}

static void down_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    gw_chan *c = ud;
    (void)stream;
    size_t w = 0;
    if (c->up_open && shoal_buf_len(&c->to_up) == 0)
        shoal_channel_write(c->up, d, n, &w);
    if (w)
        shoal_channel_consume(ch, w);
    if (w < n && shoal_buf_put(&c->to_up, d + w, n - w) != 0) {
        chan_fail(c, "gateway: buffer overflow");
        return;
    }
    flush_both(c);
}

static void down_eof(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    c->down_eof_pending = 1;
    if (c->up_open && shoal_buf_len(&c->to_up) == 0)
        shoal_channel_send_eof(c->up);
    flush_both(c);
}

static void down_writable(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    /* Keep the order the upstream sent: stdout first (stderr waiting
     * behind it is rare). */
    size_t w = drain(ch, &c->to_down[0], 0);
    if (shoal_buf_len(&c->to_down[0]) == 0)
        w += drain(ch, &c->to_down[1], 1);
    if (w && c->up)
        shoal_channel_consume(c->up, w);
    if (down_pending(c) == 0 && c->up_eof_pending)
        shoal_channel_send_eof(ch);
    if (down_pending(c) == 0 && c->up_close_pending)
        shoal_channel_close(ch);
    flush_both(c);
}

static void unlink_chan(gw_chan *c)
{
    gw_chan **pp = &c->g->chans;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
}

static void down_close(shoal_channel *ch, void *ud)
{
    gw_chan *c = ud;
    (void)ch;
    c->down = NULL;
    if (c->up) {
        shoal_channel *u = c->up;
        c->up = NULL;
        shoal_channel_detach(u);
        shoal_channel_close(u);
        if (c->g->up)
            shoal_uv_conn_flush(c->g->up);
    }
    for (unsigned i = 0; i < c->nq; i++)
        free_q(&c->q[i]);
    unlink_chan(c);
    shoal_buf_free(&c->to_up);
    shoal_buf_free(&c->to_down[0]);
    shoal_buf_free(&c->to_down[1]);
    free(c);
}

static const shoal_server_channel_callbacks DOWN_CBS = {
    sizeof(shoal_server_channel_callbacks), down_request, down_data, down_eof, down_writable, down_close};

static void chan_fail(gw_chan *c, const char *msg)
{
    if (!c->down)
        return;
    size_t w;
    char line[700];
    snprintf(line, sizeof(line), "shoal: %s\r\n", msg);
    /* Answer the requests still waiting: exec/shell/subsystem "succeed" so
     * the client reads the message and the exit status (255) instead of
     * stopping at "request failed" without a reason. */
    for (unsigned i = 0; i < c->nq; i++) {
        if (c->q[i].want_reply)
            shoal_channel_request_reply(c->down, strcmp(c->q[i].type, "pty-req") != 0);
        free_q(&c->q[i]);
    }
    c->nq = 0;
    for (; c->r_count; c->r_count--, c->r_head = (c->r_head + 1) % 32)
        if (c->replies[c->r_head])
            shoal_channel_request_reply(c->down, 1);
    shoal_channel_write_stderr(c->down, line, strlen(line), &w);
    shoal_channel_exit_status(c->down, 255);
    shoal_channel_send_eof(c->down);
    shoal_channel_close(c->down);
    shoal_uv_sconn_flush(c->g->sc->sconn);
}

/* ---- the upstream connection ---- */

static void on_up_ready(shoal_uv_conn *u, void *ud)
{
    gw_conn *g = ud;
    (void)u;
    g->ready = 1;
    serve_log(g->sc->ctx, 1, "%s: gateway connected to %s", g->sc->user, shoal_uv_conn_name(u));
    for (gw_chan *c = g->chans; c; c = c->next)
        open_up(c);
}

static void on_up_closed(shoal_uv_conn *u, int err, const char *message, void *ud)
{
    gw_conn *g = ud;
    (void)u;
    g->failed = 1;
    g->ready = 0;
    snprintf(g->err, sizeof(g->err), "gateway: %s", message ? message : "upstream connection closed");
    if (err)
        serve_log(g->sc->ctx, 0, "%s: %s", g->sc->user, g->err);
    for (gw_chan *c = g->chans, *next; c; c = next) {
        next = c->next;
        chan_fail(c, g->err);
    }
}

static int start_upstream(gw_conn *g, const serve_gateway *cfg)
{
    const char *kh[1] = {cfg->known_hosts};
    const char *ids[1] = {cfg->identity_file};
    shoal_uv_options o;
    shoal_uv_options_init(&o);
    shoal_client_config o_ssh;
    shoal_client_config_init(&o_ssh);
    o.ssh = &o_ssh;
    o.host = cfg->host;
    o.port = cfg->port;
    o_ssh.user = cfg->user ? cfg->user : g->sc->user;
    o.known_hosts = kh;
    o.n_known_hosts = cfg->known_hosts ? 1 : 0;
    o.hostkey_policy = SHOAL_HOSTKEY_STRICT;
    o.identity_files = ids;
    o.n_identity_files = cfg->identity_file ? 1 : 0;
    o_ssh.auth_methods = SHOAL_AUTH_PUBLICKEY;
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_up_ready;
    cb.on_closed = on_up_closed;
    int rc = shoal_uv_conn_new(g->loop, &o, &cb, g, &g->up);
    if (!rc)
        rc = shoal_uv_conn_start(g->up);
    return rc;
}

int serve_gateway_channel(serve_conn *sc, shoal_channel *ch, const serve_gateway *cfg)
{
    gw_conn *g = sc->gateway;
    if (!g) {
        g = calloc(1, sizeof(*g));
        if (!g)
            return 4;
        g->sc = sc;
        g->loop = shoal_uv_server_loop(shoal_uv_sconn_server(sc->sconn));
        sc->gateway = g;
        if (start_upstream(g, cfg) != 0) {
            g->failed = 1;
            snprintf(g->err, sizeof(g->err), "gateway: cannot connect to %s", cfg->host);
        }
    }
    if (g->failed)
        return 2; /* connect failed */
    gw_chan *c = calloc(1, sizeof(*c));
    if (!c)
        return 4;
    shoal_buf_init(&c->to_up, BUF_MAX);
    shoal_buf_init(&c->to_down[0], BUF_MAX);
    shoal_buf_init(&c->to_down[1], BUF_MAX);
    c->g = g;
    c->down = ch;
    c->next = g->chans;
    g->chans = c;
    shoal_channel_set_server_callbacks(ch, &DOWN_CBS, c);
    shoal_channel_set_manual_window(ch, 1);
    open_up(c);
    return 0;
}

void serve_gateway_free(serve_conn *sc)
{
    gw_conn *g = sc->gateway;
    if (!g)
        return;
    sc->gateway = NULL;
    for (gw_chan *c = g->chans; c; c = c->next) {
        c->down = NULL;
        if (c->up)
            shoal_channel_detach(c->up);
    }
    if (g->up) {
        shoal_uv_conn_close(g->up);
        shoal_uv_conn_free(g->up);
    }
    /* The downstream channels are freed with their session; their down_close
     * callbacks free the gw_chan structs. */
    free(g);
}
