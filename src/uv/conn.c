/* libuv driver for one client connection: resolve, connect, pump bytes
 * between the socket and the sans-I/O session, enforce a deadline for each
 * stage, and report exactly one result. */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "shoal/uv.h"
#include "uv/conn_impl.h"
#include "uv/pump.h"

#define DEFAULT_STAGE_TIMEOUT 30000u
#define DEFAULT_AUTH_TIMEOUT 60000u
#define LINGER_MS 2000u

static void flush(shoal_uv_conn *c);
static void schedule(shoal_uv_conn *c);
static void maybe_close_handles(shoal_uv_conn *c);
static void try_connect(shoal_uv_conn *c);
static void on_handle_closed(uv_handle_t *h);

const char *shoal_uv_stage_name(shoal_uv_stage st)
{
    switch (st) {
    case SHOAL_STAGE_RESOLVE:
        return "resolve";
    case SHOAL_STAGE_CONNECT:
        return "connect";
    case SHOAL_STAGE_BANNER:
        return "banner";
    case SHOAL_STAGE_KEX:
        return "key exchange";
    case SHOAL_STAGE_AUTH:
        return "authentication";
    case SHOAL_STAGE_READY:
        return "session";
    }
    return "unknown";
}

void shoal__uv_log(shoal_uv_conn *c, int level, const char *fmt, ...)
{
    if (!c->cb.log || level > c->opt.log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->cb.log(c, level, msg, c->ud);
}

static void report_closed(shoal_uv_conn *c)
{
    if (c->closed_reported)
        return;
    c->closed_reported = 1;
    uv_timer_stop(&c->timer);
    c->timer_due = UINT64_MAX;
    /* The agent connection would keep the loop alive: it is done. */
    shoal__uv_agent_free(c);
    if (c->cb.on_closed)
        c->cb.on_closed(c, c->err, c->err ? c->errmsg : NULL, c->ud);
}

/* Driver-level failure: before the session runs we report directly; once it
 * runs we abort it, and its closed callback reports. */
void shoal__uv_fail(shoal_uv_conn *c, int err, const char *fmt, ...)
{
    if (c->closed_reported || c->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
    if (c->started && !shoal_session_is_closed(c->s)) {
        shoal_session_abort(c->s, err, c->detail); /* -> on_session_closed */
        flush(c);
    } else {
        c->err = err;
        snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s: %s", c->name, shoal_uv_stage_name(c->stage), c->detail);
        report_closed(c);
    }
    maybe_close_handles(c);
}

/* ---- session callbacks ---- */

static int on_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    return shoal__uv_hostkey_check(ud, info);
}

static int on_sign(shoal_session *s, unsigned ident, const char *sigalg, const uint8_t *data, size_t len, void *ud)
{
    (void)s;
    return shoal__uv_sign(ud, ident, sigalg, data, len);
}

static int on_password(shoal_session *s, const char *user, void *ud)
{
    shoal_uv_conn *c = ud;
    if (!c->cb.password)
        return SHOAL_ERR_UNSUPPORTED;
    char pw[1024];
    int rc = c->cb.password(c, user, pw, sizeof(pw), c->ud);
    if (rc == 0)
        rc = shoal_session_password_reply(s, pw);
    shoal_wipe(pw, sizeof(pw));
    return rc;
}

static int on_kbdint(shoal_session *s, const shoal_kbdint_request *req, void *ud)
{
    shoal_uv_conn *c = ud;
    if (!c->cb.kbdint)
        return SHOAL_ERR_UNSUPPORTED;
    char **resp = calloc(req->nprompts ? req->nprompts : 1, sizeof(char *));
    if (!resp)
        return SHOAL_ERR_NOMEM;
    int rc = c->cb.kbdint(c, req, resp, c->ud);
    if (rc == 0)
        rc = shoal_session_kbdint_reply(s, req->nprompts, (const char *const *)resp);
    for (unsigned i = 0; i < req->nprompts; i++) {
        if (resp[i]) {
            shoal_wipe(resp[i], strlen(resp[i]));
            free(resp[i]);
        }
    }
    free(resp);
    return rc;
}

static void on_banner(shoal_session *s, const char *text, size_t len, void *ud)
{
    (void)s;
    (void)len;
    shoal_uv_conn *c = ud;
    if (c->cb.banner)
        c->cb.banner(c, text, c->ud);
}

static void on_session_log(shoal_session *s, int level, const char *msg, void *ud)
{
    (void)s;
    shoal__uv_log(ud, level, "%s", msg);
}

static void on_session_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s;
    shoal_uv_conn *c = ud;
    c->err = err;
    if (err) {
        /* The session's message names its phase; the driver's detail (e.g.
         * which known_hosts line) is better when it has one. */
        if (c->detail[0])
            snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s: %s", c->name, shoal_uv_stage_name(c->stage), c->detail);
        else
            snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s", c->name, message ? message : shoal_strerror(err));
    }
    report_closed(c);
}

static void on_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    shoal_uv_conn *c = ud;
    c->stage = SHOAL_STAGE_READY;
    c->stage_deadline = UINT64_MAX;
    /* No more signatures will be needed: release the agent socket. */
    shoal__uv_agent_free(c);
    if (!c->ready_reported) {
        c->ready_reported = 1;
        if (c->cb.on_ready)
            c->cb.on_ready(c, c->ud);
    }
}

/* ---- lifecycle ---- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char **dup_list(const char *const *v, unsigned n)
{
    if (!n)
        return NULL;
    char **d = calloc(n, sizeof(char *));
    for (unsigned i = 0; d && i < n; i++)
        d[i] = xstrdup(v[i]);
    return d;
}

static void free_list(char **v, unsigned n)
{
    for (unsigned i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int shoal_uv_conn_new(uv_loop_t *loop, const shoal_uv_options *opt, const shoal_uv_callbacks *cb, void *ud,
                      shoal_uv_conn **out)
{
    *out = NULL;
    shoal_uv_options o;
    shoal_client_config sshc;
    shoal_uv_callbacks cbs;
    if (!loop || SHOAL_COPY_IN(&o, opt) || !o.host || SHOAL_COPY_IN(&sshc, o.ssh) || !sshc.user ||
        SHOAL_COPY_IN_OPT(&cbs, cb))
        return SHOAL_ERR_INVALID_ARG;
    opt = &o;
    shoal_uv_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return SHOAL_ERR_NOMEM;
    c->loop = loop;
    c->opt = o;
    c->ssh = sshc;
    c->opt.ssh = &c->ssh;
    c->cb = cbs;
    c->ud = ud;
    c->host = xstrdup(opt->host);
    c->user = xstrdup(opt->ssh->user);
    c->alias = xstrdup(opt->host_key_alias);
    c->agent_path = xstrdup(opt->agent_socket);
    c->kh_files = dup_list(opt->known_hosts, opt->n_known_hosts);
    c->id_files = dup_list(opt->identity_files, opt->n_identity_files);
    c->kex = xstrdup(opt->ssh->kex_algorithms);
    c->hka = xstrdup(opt->ssh->hostkey_algorithms);
    c->ciphers = xstrdup(opt->ssh->ciphers);
    c->macs = xstrdup(opt->ssh->macs);
    if (!c->opt.port)
        c->opt.port = 22;
    c->opt.host = c->host;
    c->ssh.user = c->user;
    c->opt.host_key_alias = c->alias;
    c->opt.agent_socket = c->agent_path;
    c->opt.known_hosts = (const char *const *)c->kh_files;
    c->opt.identity_files = (const char *const *)c->id_files;
    /* Preloaded keys: our own array and a reference on each, so the
     * caller's array and keys need not outlive the connection. */
    c->opt.keys = NULL;
    c->opt.n_keys = 0;
    if (opt->n_keys && opt->keys) {
        c->keys = calloc(opt->n_keys, sizeof(shoal_key *));
        if (!c->keys) {
            shoal_uv_conn_free(c);
            return SHOAL_ERR_NOMEM;
        }
        for (unsigned i = 0; i < opt->n_keys; i++)
            c->keys[i] = shoal_key_ref(opt->keys[i]);
        c->opt.keys = (shoal_key *const *)c->keys;
        c->opt.n_keys = opt->n_keys;
    }
    if (strchr(c->host, ':'))
        snprintf(c->name, sizeof(c->name), "[%s]:%u", c->host, c->opt.port);
    else
        snprintf(c->name, sizeof(c->name), "%s:%u", c->host, c->opt.port);

    /* Prefer host key algorithms we already know for this host (as OpenSSH
     * does), so a host with several keys is checked against the known one. */
    char *order = c->hka ? NULL : shoal__uv_hostkey_order(c);
    shoal_client_config sc = c->ssh;
    sc.kex_algorithms = c->kex;
    sc.hostkey_algorithms = c->hka ? c->hka : order;
    sc.ciphers = c->ciphers;
    sc.macs = c->macs;
    /* Methods the application cannot answer are not tried at all. */
    shoal_client_callbacks scb = {sizeof(shoal_client_callbacks),
                                  on_hostkey,
                                  on_sign,
                                  c->cb.password ? on_password : NULL,
                                  c->cb.kbdint ? on_kbdint : NULL,
                                  on_banner,
                                  on_authenticated,
                                  on_session_closed,
                                  on_session_log};
    int rc = shoal_session_new_client(&c->s, &sc, &scb, c);
    free(order);
    if (rc) {
        c->s = NULL;
        shoal_uv_conn_free(c);
        return rc;
    }
    shoal_session_set_log_level(c->s, opt->log_level);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    c->timer_due = UINT64_MAX;
    *out = c;
    return SHOAL_OK;
}

static void on_handle_closed(uv_handle_t *h)
{
    shoal_uv_conn *c = h->data;
    if (--c->handles_pending == 0 && c->freeing) {
        shoal__uv_identities_free(c);
        shoal__uv_agent_free(c);
        shoal_session_free(c->s);
        if (c->ai && c->ai_numeric)
            free(c->ai);
        else if (c->ai)
            uv_freeaddrinfo(c->ai);
        free(c->host);
        free(c->user);
        free(c->alias);
        free(c->agent_path);
        free_list(c->kh_files, c->opt.n_known_hosts);
        free_list(c->id_files, c->opt.n_identity_files);
        free(c->kex);
        free(c->hka);
        free(c->ciphers);
        free(c->macs);
        for (unsigned i = 0; c->keys && i < c->opt.n_keys; i++)
            shoal_key_free(c->keys[i]); /* our reference only */
        free(c->keys);
        free(c);
    }
}

static void on_linger_timeout(uv_timer_t *t)
{
    shoal_uv_conn *c = t->data;
    shoal__pump_close(&c->pump);
}

/* Close the socket once the session is over and its last bytes (e.g. a
 * DISCONNECT) were handed to the kernel; a peer that stopped reading gets
 * LINGER_MS, then the socket is closed anyway. */
static void maybe_close_handles(shoal_uv_conn *c)
{
    if (!c->closed_reported || !c->tcp_open || c->connecting || c->pump.closing)
        return;
    if (!shoal__pump_close_when_drained(&c->pump) && c->timer_open) {
        uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
        c->timer_due = UINT64_MAX; /* not the deadline timer any more */
    }
}

void shoal_uv_conn_free(shoal_uv_conn *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai);
    c->handles_pending++; /* guard while we close */
    if (c->tcp_open)
        shoal__pump_close(&c->pump); /* pump_closed() drops its count */
    if (c->timer_open) {
        c->timer_open = 0;
        c->handles_pending++;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    shoal__uv_agent_free(c);
    /* Drop the guard through the same path so the last one frees. */
    uv_handle_t fake;
    fake.data = c;
    on_handle_closed(&fake);
}

shoal_session *shoal_uv_conn_session(shoal_uv_conn *c)
{
    return c->s;
}

void *shoal_uv_conn_userdata(const shoal_uv_conn *c)
{
    return c->ud;
}

uv_loop_t *shoal_uv_conn_loop(const shoal_uv_conn *c)
{
    return c->loop;
}

const char *shoal_uv_conn_name(const shoal_uv_conn *c)
{
    return c->name;
}

shoal_uv_stage shoal_uv_conn_stage(const shoal_uv_conn *c)
{
    return c->stage;
}

void shoal_uv_conn_close(shoal_uv_conn *c)
{
    if (c->closed_reported)
        return;
    if (c->started) {
        shoal_session_disconnect(c->s, "closed by client");
        flush(c);
    } else {
        c->err = SHOAL_ERR_CLOSED;
        snprintf(c->errmsg, sizeof(c->errmsg), "%s: closed before connecting", c->name);
        report_closed(c);
    }
    maybe_close_handles(c);
}

/* ---- stages and timers ---- */

static uint64_t stage_timeout(shoal_uv_conn *c, shoal_uv_stage st)
{
    uint64_t t = 0;
    switch (st) {
    case SHOAL_STAGE_RESOLVE:
    case SHOAL_STAGE_CONNECT:
        t = c->opt.connect_timeout_ms;
        break;
    case SHOAL_STAGE_BANNER:
        t = c->opt.banner_timeout_ms;
        break;
    case SHOAL_STAGE_KEX:
        t = c->opt.kex_timeout_ms;
        break;
    case SHOAL_STAGE_AUTH:
        t = c->opt.auth_timeout_ms ? c->opt.auth_timeout_ms : DEFAULT_AUTH_TIMEOUT;
        return t;
    case SHOAL_STAGE_READY:
        return 0;
    }
    return t ? t : DEFAULT_STAGE_TIMEOUT;
}

static void set_stage(shoal_uv_conn *c, shoal_uv_stage st)
{
    if (c->stage == st && c->stage_deadline)
        return;
    c->stage = st;
    uint64_t t = stage_timeout(c, st);
    c->stage_deadline = t ? uv_now(c->loop) + t : UINT64_MAX;
}

static void track_stage(shoal_uv_conn *c)
{
    if (!c->started || c->closed_reported)
        return;
    switch (shoal_session_phase(c->s)) {
    case SHOAL_PHASE_BANNER:
        set_stage(c, SHOAL_STAGE_BANNER);
        break;
    case SHOAL_PHASE_KEX:
    case SHOAL_PHASE_HOSTKEY:
        if (c->stage != SHOAL_STAGE_READY && c->stage != SHOAL_STAGE_AUTH)
            set_stage(c, SHOAL_STAGE_KEX);
        break;
    case SHOAL_PHASE_AUTH:
        if (c->stage != SHOAL_STAGE_AUTH) {
            set_stage(c, SHOAL_STAGE_AUTH);
            /* Before the flush that sends the first auth request. */
            if (c->cb.on_authenticating)
                c->cb.on_authenticating(c, c->ud);
        }
        break;
    case SHOAL_PHASE_OPEN:
        c->stage = SHOAL_STAGE_READY;
        c->stage_deadline = UINT64_MAX;
        break;
    case SHOAL_PHASE_CLOSED:
        break;
    }
}

static const char *stage_wait_text(shoal_uv_stage st)
{
    switch (st) {
    case SHOAL_STAGE_RESOLVE:
        return "name resolution did not finish";
    case SHOAL_STAGE_CONNECT:
        return "TCP connection not established";
    case SHOAL_STAGE_BANNER:
        return "no SSH version string from the server";
    case SHOAL_STAGE_KEX:
        return "key exchange did not complete";
    case SHOAL_STAGE_AUTH:
        return "authentication did not complete";
    case SHOAL_STAGE_READY:
        return "session idle";
    }
    return "timeout";
}

static void on_timer(uv_timer_t *t)
{
    shoal_uv_conn *c = t->data;
    uint64_t now = uv_now(c->loop);
    c->timer_due = UINT64_MAX; /* one-shot: no longer armed */
    if (c->closed_reported)
        return;
    if (c->agent_wake) {
        /* An agent slot was granted: the wait had no deadline, the stage is
         * timed from now. */
        c->agent_wake = 0;
        c->stage_deadline = 0;
        set_stage(c, SHOAL_STAGE_RESOLVE);
        shoal__uv_agent_granted(c);
        schedule(c);
        return;
    }
    if (now >= c->stage_deadline) {
        shoal__uv_fail(c, SHOAL_ERR_TIMEOUT, "timed out after %.1f s: %s",
                       (double)stage_timeout(c, c->stage) / 1000.0, stage_wait_text(c->stage));
        return;
    }
    if (c->started) {
        shoal_session_tick(c->s, now);
        track_stage(c);
        flush(c);
    }
    schedule(c);
    /* A tick may end the session (keepalives unanswered): let go of the
     * socket, or a silent peer would keep the loop alive forever. */
    maybe_close_handles(c);
}

void shoal__uv_agent_wake(shoal_uv_conn *c)
{
    c->agent_wake = 1;
    schedule(c);
}

/* Arms the deadline timer for the nearest deadline. schedule() runs after
 * every read and write, so it avoids touching libuv's timer heap when it
 * can: a timer armed for an earlier time is left alone (when it fires,
 * on_timer() finds nothing due yet and schedules again), and only a deadline
 * earlier than the armed one restarts it. Stage deadlines mostly move later,
 * so a connection restarts its timer a few times rather than per packet. */
static void schedule(shoal_uv_conn *c)
{
    if (c->closed_reported || !c->timer_open)
        return;
    uint64_t now = uv_now(c->loop);
    if (c->agent_wake) {
        uv_timer_start(&c->timer, on_timer, 0, 0);
        c->timer_due = now;
        return;
    }
    uint64_t d = c->stage_deadline;
    if (c->started) {
        uint64_t sd = shoal_session_deadline(c->s);
        if (sd < d)
            d = sd;
    }
    if (d == UINT64_MAX) {
        /* Nothing due: stop, or an idle connection would keep the loop
         * alive until the old deadline. */
        if (c->timer_due != UINT64_MAX) {
            uv_timer_stop(&c->timer);
            c->timer_due = UINT64_MAX;
        }
        return;
    }
    if (d < now)
        d = now;
    if (c->timer_due <= d)
        return;
    uv_timer_start(&c->timer, on_timer, d - now, 0);
    c->timer_due = d;
}

/* ---- the socket (uv/pump.c) ---- */

static void flush(shoal_uv_conn *c)
{
    /* Once the session is over, maybe_close_handles() writes its last
     * bytes together with the FIN (shoal__pump_close_when_drained). */
    if (!c->started || c->closed_reported)
        return;
    int rc = shoal__pump_flush(&c->pump);
    if (rc)
        shoal__uv_fail(c, rc, "write failed: %s", shoal_strerror(rc));
}

void shoal_uv_conn_flush(shoal_uv_conn *c)
{
    flush(c);
    track_stage(c);
    schedule(c);
    maybe_close_handles(c);
}

static void pump_after_io(shoal_pump *p)
{
    shoal_uv_conn *c = p->owner;
    if (c->freeing)
        return;
    /* The stage first: a write that fails because of what was just read
     * belongs to the stage that input moved the session into. */
    track_stage(c);
    flush(c);
    schedule(c);
    maybe_close_handles(c);
}

static void pump_io_error(shoal_pump *p, int err, const char *message)
{
    shoal_uv_conn *c = p->owner;
    if (err) /* a clean EOF went to the session already */
        shoal__uv_fail(c, err, "%s%s", strstr(message, "connection") ? "" : "connection error: ", message);
}

static void pump_closed(shoal_pump *p)
{
    shoal_uv_conn *c = p->owner;
    c->tcp_open = 0;
    if (c->retry_connect && !c->freeing && !c->closed_reported) {
        c->retry_connect = 0;
        try_connect(c);
    }
    uv_handle_t fake;
    fake.data = c;
    on_handle_closed(&fake);
}

static const shoal_pump_ops PUMP_OPS = {pump_after_io, pump_io_error, pump_closed};

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    shoal_uv_conn *c = req->data;
    c->connecting = 0;
    if (c->freeing)
        return;
    if (c->closed_reported) {
        maybe_close_handles(c);
        return;
    }
    if (status < 0) {
        char addr[64] = "";
        if (c->ai_cur) {
            if (c->ai_cur->ai_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)c->ai_cur->ai_addr, addr, sizeof(addr));
            else
                uv_ip4_name((struct sockaddr_in *)c->ai_cur->ai_addr, addr, sizeof(addr));
        }
        shoal__uv_log(c, 1, "connect to %s failed: %s", addr, uv_strerror(status));
        c->ai_cur = c->ai_cur ? c->ai_cur->ai_next : NULL;
        if (c->ai_cur) {
            /* The handle must be closed before it can be used again: the
             * next address is tried from pump_closed(). */
            c->retry_connect = 1;
            shoal__pump_close(&c->pump);
            return;
        }
        shoal__uv_fail(c, SHOAL_ERR_CONNECT, "%s", uv_strerror(status));
        return;
    }
    c->started = 1;
    set_stage(c, SHOAL_STAGE_BANNER);
    int rc = shoal_session_start(c->s, uv_now(c->loop));
    if (rc == 0)
        shoal__pump_start(&c->pump, c->s);
    flush(c);
    schedule(c);
    maybe_close_handles(c);
}

static void try_connect(shoal_uv_conn *c)
{
    while (c->ai_cur && c->ai_cur->ai_family != AF_INET && c->ai_cur->ai_family != AF_INET6)
        c->ai_cur = c->ai_cur->ai_next;
    if (!c->ai_cur) {
        shoal__uv_fail(c, SHOAL_ERR_CONNECT, "no usable address");
        return;
    }
    if (shoal__pump_init(&c->pump, c->loop, &PUMP_OPS, c) != 0) {
        shoal__uv_fail(c, SHOAL_ERR_CONNECT, "cannot create a socket");
        return;
    }
    c->tcp_open = 1;
    c->handles_pending++;
    c->creq.data = c;
    int r = uv_tcp_connect(&c->creq, &c->pump.tcp, c->ai_cur->ai_addr, on_connect);
    if (r == 0) {
        c->connecting = 1;
        return;
    }
    c->ai_cur = c->ai_cur->ai_next;
    c->retry_connect = c->ai_cur != NULL;
    shoal__pump_close(&c->pump);
    if (!c->retry_connect)
        shoal__uv_fail(c, SHOAL_ERR_CONNECT, "%s", uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    shoal_uv_conn *c = req->data;
    c->resolving = 0;
    if (c->freeing || status == UV_ECANCELED) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || !res) {
        shoal__uv_fail(c, SHOAL_ERR_DNS, "cannot resolve host name \"%s\": %s", c->host, uv_strerror(status));
        return;
    }
    c->ai = res;
    c->ai_cur = res;
    set_stage(c, SHOAL_STAGE_CONNECT);
    schedule(c);
    try_connect(c);
}

/* An IPv4 or IPv6 literal needs no resolver: connecting at once spares a
 * trip through libuv's thread pool (two thread wake-ups per connection,
 * which add up over thousands of hosts). */
static int numeric_address(shoal_uv_conn *c)
{
    struct {
        struct addrinfo ai;
        struct sockaddr_storage ss;
    } *n = calloc(1, sizeof(*n));
    if (!n)
        return 0;
    if (uv_ip4_addr(c->host, (int)c->opt.port, (struct sockaddr_in *)&n->ss) == 0 && !strchr(c->host, ':')) {
        n->ai.ai_family = AF_INET;
        n->ai.ai_addrlen = sizeof(struct sockaddr_in);
    } else if (strchr(c->host, ':') && uv_ip6_addr(c->host, (int)c->opt.port, (struct sockaddr_in6 *)&n->ss) == 0) {
        n->ai.ai_family = AF_INET6;
        n->ai.ai_addrlen = sizeof(struct sockaddr_in6);
    } else {
        free(n);
        return 0;
    }
    /* uv_ip4_addr accepts what inet_pton does: dotted quads only. */
    n->ai.ai_socktype = SOCK_STREAM;
    n->ai.ai_protocol = IPPROTO_TCP;
    n->ai.ai_addr = (struct sockaddr *)&n->ss;
    c->ai = &n->ai;
    c->ai_numeric = 1;
    c->ai_cur = c->ai;
    set_stage(c, SHOAL_STAGE_CONNECT);
    schedule(c);
    try_connect(c);
    return 1;
}

void shoal__uv_begin_connect(shoal_uv_conn *c)
{
    if (c->closed_reported || c->freeing)
        return;
    int rc = shoal__uv_add_file_identities(c);
    if (rc) {
        shoal__uv_fail(c, rc, "cannot load identities: %s", shoal_strerror(rc));
        return;
    }
    if (numeric_address(c))
        return;
    char port[16];
    snprintf(port, sizeof(port), "%u", c->opt.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    c->gai.data = c;
    c->resolving = 1;
    int r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
    if (r < 0) {
        c->resolving = 0;
        shoal__uv_fail(c, SHOAL_ERR_DNS, "cannot resolve \"%s\": %s", c->host, uv_strerror(r));
    }
}

static void agent_done(shoal_uv_conn *c)
{
    shoal__uv_begin_connect(c);
}

int shoal_uv_conn_start(shoal_uv_conn *c)
{
    if (c->started || c->resolving || c->closed_reported)
        return SHOAL_ERR_BAD_STATE;
    set_stage(c, SHOAL_STAGE_RESOLVE);
    schedule(c);
    if (c->agent_path && *c->agent_path && (c->ssh.auth_methods == 0 || (c->ssh.auth_methods & SHOAL_AUTH_PUBLICKEY))) {
        if (shoal__uv_agent_start(c, agent_done) == 0) {
            schedule(c); /* waiting for an agent slot: no deadline */
            return SHOAL_OK;
        }
    }
    shoal__uv_begin_connect(c);
    return SHOAL_OK;
}

/* ---- destinations ---- */

int shoal_parse_destination(const char *dest, char *user, size_t usersz, char *host, size_t hostsz, unsigned *port)
{
    const char *at = strrchr(dest, '@');
    const char *h = dest;
    if (at) {
        size_t ul = (size_t)(at - dest);
        if (ul == 0 || ul + 1 > usersz)
            return SHOAL_ERR_INVALID_ARG;
        memcpy(user, dest, ul);
        user[ul] = 0;
        h = at + 1;
    }
    const char *hend;
    const char *portp = NULL;
    if (*h == '[') {
        const char *rb = strchr(h, ']');
        if (!rb)
            return SHOAL_ERR_INVALID_ARG;
        hend = rb;
        h++;
        if (rb[1] == ':')
            portp = rb + 2;
        else if (rb[1] != 0)
            return SHOAL_ERR_INVALID_ARG;
    } else {
        const char *colon = strchr(h, ':');
        /* More than one colon: a bare IPv6 address, no port. */
        if (colon && !strchr(colon + 1, ':')) {
            hend = colon;
            portp = colon + 1;
        } else {
            hend = h + strlen(h);
        }
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl + 1 > hostsz)
        return SHOAL_ERR_INVALID_ARG;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '\\')
            return SHOAL_ERR_INVALID_ARG;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (portp) {
        char *end;
        unsigned long pv = strtoul(portp, &end, 10);
        if (*portp == 0 || *end || pv == 0 || pv > 65535)
            return SHOAL_ERR_INVALID_ARG;
        *port = (unsigned)pv;
    }
    return SHOAL_OK;
}
