/* libuv server driver: listeners, accepted connections, per-connection
 * timers (login grace, the session's own deadlines). See uv_server.h. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "crypto/kex.h"
#include "shoal/uv_server.h"
#include "uv/pump.h"
#include "uv/srclimit.h"

#define DEFAULT_GRACE_MS 120000u
#define DEFAULT_MAX_STARTUPS 100u
#define LINGER_MS 2000u
#define MAX_LISTENERS 1024 /* e.g. one per loopback address for fan-out demos and tests */
/* Refused connections and new penalties: at most this many lines each per
 * interval, then one summary line per interval. */
#define DROPLOG_INTERVAL_MS 10000u
#define DROPLOG_LINES 5u

/* DROP_GONE: reset by the client before it was accepted (no peer address
 * left): counted while throttling, never a reason to begin. */
enum { DROP_MAXSTARTUPS, DROP_PERSOURCE, DROP_PENALTY, DROP_GONE, DROP_REASONS };
static const char *const DROP_NAMES[DROP_REASONS] = {"MaxStartups", "PerSourceMaxStartups", "PerSourcePenalties",
                                                      "reset"};

/* Rate-limited logging of refusals (sshd's "MaxStartups throttling"). */
typedef struct droplog {
    int throttling;            /* refusals going on: began logged, exited not yet */
    int first_reason;
    uint64_t began, last_drop;
    unsigned long long total;  /* since began */
    unsigned long long iv[DROP_REASONS]; /* this interval */
    unsigned drop_lines, pen_lines, dbg_lines; /* lines left this interval (refusals, new
                                                  active penalties, other penalty changes) */
    unsigned long long drops_unlogged, pens_unlogged;
    char last_peer[80];
} droplog;

typedef struct listener {
    uv_tcp_t tcp;
    shoal_uv_server *srv;
    int open;
} listener;

struct shoal_uv_server {
    uv_loop_t *loop;
    shoal_uv_server_options opt;
    shoal_uv_server_callbacks cb; /* cb.ssh points at sshcb */
    shoal_server_config ssh;      /* our copies of *opt.ssh, *cb.ssh, *opt.penalties */
    shoal_server_callbacks sshcb;
    shoal_uv_penalties pen;
    void *ud;
    shoal_key **host_keys;
    char **listen;
    listener ls[MAX_LISTENERS];
    unsigned n_ls;
    unsigned listeners_open;
    shoal_uv_sconn *conns; /* doubly linked list */
    unsigned n_conns, n_unauth;
    int freeing;
    unsigned long long n_accepted;
    shoal_srclimit *sl;    /* per-source startups and penalties */
    droplog dl;
    uv_timer_t logtick;    /* the droplog's interval */
    int logtick_open, logtick_running;
};

struct shoal_uv_sconn {
    shoal_uv_server *srv;
    shoal_uv_sconn *prev, *next;
    shoal_session *s;
    shoal_pump pump;
    uv_timer_t timer;
    int timer_open, pump_open;
    int authenticated, ended, freeing;
    int dropped;           /* refused before serving: never penalised */
    int auth_attempted;    /* a request other than "none" reached the application */
    int grace_exceeded;
    int have_key, counted; /* its source block; counted in the block's startups */
    int in_unauth;         /* counted in the server's unauthenticated connections */
    shoal_srckey key;
    struct sockaddr_storage peer_sa;
    uint64_t grace_deadline;
    char peer[80], addr[64];
    char local_addr[64];
    unsigned local_port;
};

static void srv_log(shoal_uv_server *srv, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void srv_log(shoal_uv_server *srv, int level, const char *fmt, ...)
{
    if (!srv->cb.log || level > srv->opt.log_level)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv->cb.log(srv, level, msg, srv->ud);
}

/* ---- rate-limited refusal logging ---- */

static void on_logtick(uv_timer_t *t);

static void logtick_start(shoal_uv_server *srv)
{
    if (srv->logtick_open && !srv->logtick_running) {
        srv->logtick_running = 1;
        uv_timer_start(&srv->logtick, on_logtick, DROPLOG_INTERVAL_MS, DROPLOG_INTERVAL_MS);
    }
}

static void on_logtick(uv_timer_t *t)
{
    shoal_uv_server *srv = t->data;
    droplog *d = &srv->dl;
    uint64_t now = uv_now(srv->loop);
    unsigned long long n = d->iv[0] + d->iv[1] + d->iv[2] + d->iv[3];
    if (n || d->pens_unlogged) {
        char extra[160] = "";
        if (d->drops_unlogged || d->pens_unlogged)
            snprintf(extra, sizeof(extra), "; not logged one by one: %llu refusals, %llu penalty changes",
                     d->drops_unlogged, d->pens_unlogged);
        srv_log(srv, 0,
                "throttling: %llu connections dropped in the last %us (MaxStartups %llu, PerSourceMaxStartups %llu, "
                "PerSourcePenalties %llu, reset by the client before accept %llu), latest from %s%s",
                n, DROPLOG_INTERVAL_MS / 1000, d->iv[DROP_MAXSTARTUPS], d->iv[DROP_PERSOURCE], d->iv[DROP_PENALTY],
                d->iv[DROP_GONE], d->last_peer[0] ? d->last_peer : "-", extra);
    }
    memset(d->iv, 0, sizeof(d->iv));
    d->drops_unlogged = d->pens_unlogged = 0;
    d->drop_lines = d->pen_lines = d->dbg_lines = DROPLOG_LINES;
    if (d->throttling && now - d->last_drop >= DROPLOG_INTERVAL_MS) {
        srv_log(srv, 0, "exited %s throttling after %llus, %llu connections dropped", DROP_NAMES[d->first_reason],
                (unsigned long long)((d->last_drop - d->began) / 1000), d->total);
        d->throttling = 0;
    }
    if (!d->throttling && n == 0) {
        uv_timer_stop(t);
        srv->logtick_running = 0;
    }
}

static void note_drop(shoal_uv_server *srv, shoal_uv_sconn *c, int reason, const char *why)
{
    droplog *d = &srv->dl;
    uint64_t now = uv_now(srv->loop);
    if (reason == DROP_GONE) {
        /* Nothing to serve and no address to report: counted only when
         * part of a flood already being reported. */
        if (!d->throttling) {
            srv_log(srv, 2, "connection #%llu reset by the client before it was served", srv->n_accepted);
            return;
        }
        d->iv[reason]++;
        d->total++;
        d->drops_unlogged++;
        return;
    }
    if (!d->throttling) {
        if (!srv->logtick_running)
            d->drop_lines = d->pen_lines = d->dbg_lines = DROPLOG_LINES;
        d->throttling = 1;
        d->first_reason = reason;
        d->began = now;
        d->total = 0;
        srv_log(srv, 0, "beginning %s throttling: dropping connections from %s (%s)", DROP_NAMES[reason], c->addr,
                why);
        logtick_start(srv);
    }
    d->last_drop = now;
    d->total++;
    d->iv[reason]++;
    snprintf(d->last_peer, sizeof(d->last_peer), "%s", c->addr);
    if (d->drop_lines) {
        d->drop_lines--;
        srv_log(srv, 1, "drop connection #%llu from %s on %s:%u %s", srv->n_accepted, c->peer, c->local_addr,
                c->local_port, why);
    } else {
        d->drops_unlogged++;
    }
}

/* A connection ended without logging in: charge its source block. */
static void penalise(shoal_uv_server *srv, shoal_uv_sconn *c)
{
    if (!srv->sl || !c->have_key || c->dropped || c->authenticated || srv->freeing || !c->s)
        return;
    int kind = c->grace_exceeded ? SHOAL_PENALTY_GRACE
               : c->auth_attempted ? SHOAL_PENALTY_AUTHFAIL
                                   : SHOAL_PENALTY_NOAUTH;
    char msg[300];
    int r = shoal__srclimit_penalise(srv->sl, &c->key, c->addr, kind, uv_now(srv->loop), msg, sizeof(msg));
    if (!r)
        return;
    droplog *d = &srv->dl;
    if (!srv->logtick_running)
        d->drop_lines = d->pen_lines = d->dbg_lines = DROPLOG_LINES;
    /* A penalty becoming active is worth the default level; the rest
     * (deferred, extended) is debug, with its own budget. */
    unsigned *budget = r == 1 ? &d->pen_lines : &d->dbg_lines;
    if (r != 1 && srv->opt.log_level < 2)
        return;
    if (*budget) {
        --*budget;
        srv_log(srv, r == 1 ? 0 : 2, "%s", msg);
    } else {
        d->pens_unlogged++;
    }
    logtick_start(srv);
}

/* ---- per connection ---- */

static void maybe_free_server(shoal_uv_server *srv);

/* The connection no longer counts as unauthenticated (it logged in, was
 * refused, or is gone): refused ones stop counting at once, so a flood of
 * refusals still closing cannot push the counts up for everyone else. */
static void release_counts(shoal_uv_sconn *c)
{
    if (c->in_unauth) {
        c->in_unauth = 0;
        c->srv->n_unauth--;
    }
    if (c->counted) {
        c->counted = 0;
        shoal__srclimit_startup_end(c->srv->sl, &c->key);
    }
}

static void sconn_maybe_free(shoal_uv_sconn *c)
{
    if (!c->freeing || c->timer_open || c->pump_open)
        return;
    shoal_uv_server *srv = c->srv;
    penalise(srv, c);
    release_counts(c);
    if (srv->cb.on_sconn_free)
        srv->cb.on_sconn_free(c, srv->ud);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    shoal_session_free(c->s);
    free(c);
    maybe_free_server(srv);
}

static void on_timer_closed(uv_handle_t *h)
{
    shoal_uv_sconn *c = h->data;
    c->timer_open = 0;
    sconn_maybe_free(c);
}

static void close_timer(shoal_uv_sconn *c)
{
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
}

static void on_linger(uv_timer_t *t)
{
    shoal_uv_sconn *c = t->data;
    shoal__pump_close(&c->pump); /* the client stopped reading: give up */
}

/* The session ended (or never started): close the socket once its last
 * bytes are out (or after a linger time), then free. */
static void sconn_finish(shoal_uv_sconn *c)
{
    if (c->freeing)
        return;
    c->freeing = 1;
    if (c->pump_open && !c->pump.closing) {
        if (!shoal__pump_close_when_drained(&c->pump) && c->timer_open) {
            uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
            return; /* the timer closes with the socket (pump_closed) */
        }
    }
    if (!c->pump_open)
        close_timer(c);
    sconn_maybe_free(c);
}

static void schedule(shoal_uv_sconn *c);

static void sconn_after_io(shoal_uv_sconn *c)
{
    if (c->freeing) {
        /* Still draining the last bytes. */
        if (c->pump_open && !c->pump.closing)
            shoal__pump_close_when_drained(&c->pump);
        return;
    }
    int rc = shoal__pump_flush(&c->pump);
    if (rc)
        shoal_session_abort(c->s, rc, "write failed");
    if (shoal_session_is_closed(c->s)) {
        sconn_finish(c);
        return;
    }
    schedule(c);
}

static void pump_after_io(shoal_pump *p)
{
    sconn_after_io(p->owner);
}

static void pump_io_error(shoal_pump *p, int err, const char *message)
{
    shoal_uv_sconn *c = p->owner;
    if (err && !c->freeing)
        shoal_session_abort(c->s, err, message);
}

static void pump_closed(shoal_pump *p)
{
    shoal_uv_sconn *c = p->owner;
    c->pump_open = 0;
    c->freeing = 1;
    close_timer(c);
    sconn_maybe_free(c);
}

static const shoal_pump_ops PUMP_OPS = {pump_after_io, pump_io_error, pump_closed};

static void on_sconn_timer(uv_timer_t *t)
{
    shoal_uv_sconn *c = t->data;
    if (c->freeing)
        return;
    uint64_t now = uv_now(c->srv->loop);
    if (!c->authenticated && now >= c->grace_deadline) {
        c->grace_exceeded = 1;
        shoal_session_abort(c->s, SHOAL_ERR_TIMEOUT, "login grace time exceeded");
    } else {
        shoal_session_tick(c->s, now);
    }
    sconn_after_io(c);
}

static void schedule(shoal_uv_sconn *c)
{
    if (c->freeing || !c->timer_open)
        return;
    uint64_t d = shoal_session_deadline(c->s);
    if (!c->authenticated && c->grace_deadline < d)
        d = c->grace_deadline;
    if (d == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, on_sconn_timer, d > now ? d - now : 0, 0);
}

/* Session callbacks pass through to the application, plus our bookkeeping. */
static void wrap_authenticated(shoal_session *s, const char *user, void *ud)
{
    shoal_uv_sconn *c = ud;
    if (!c->authenticated) {
        c->authenticated = 1;
        release_counts(c);
    }
    if (c->srv->sshcb.authenticated)
        c->srv->sshcb.authenticated(s, user, ud);
}

static int wrap_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    shoal_uv_sconn *c = ud;
    if (req->method != SHOAL_METHOD_NONE)
        c->auth_attempted = 1; /* for PerSourcePenalties: authfail, not noauth */
    return c->srv->sshcb.auth(s, req, ud);
}

static void wrap_closed(shoal_session *s, int err, const char *message, void *ud)
{
    shoal_uv_sconn *c = ud;
    c->ended = 1;
    if (c->srv->sshcb.closed)
        c->srv->sshcb.closed(s, err, message, ud);
}

static void wrap_log(shoal_session *s, int level, const char *message, void *ud)
{
    shoal_uv_sconn *c = ud;
    if (c->srv->sshcb.log)
        c->srv->sshcb.log(s, level, message, ud);
}

static void format_peer(shoal_uv_sconn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&c->pump.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->local_addr, sizeof(c->local_addr));
            c->local_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, c->local_addr, sizeof(c->local_addr));
            c->local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    len = sizeof(ss);
    c->addr[0] = 0;
    snprintf(c->peer, sizeof(c->peer), "unknown");
    if (uv_tcp_getpeername(&c->pump.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    c->peer_sa = ss;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->addr, sizeof(c->addr));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", c->addr, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->addr, sizeof(c->addr));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", c->addr, ntohs(a->sin_port));
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    listener *l = server->data;
    shoal_uv_server *srv = l->srv;
    if (status < 0) {
        srv_log(srv, 0, "accept failed: %s", uv_strerror(status));
        return;
    }
    shoal_uv_sconn *c = calloc(1, sizeof(*c));
    if (!c || shoal__pump_init(&c->pump, srv->loop, &PUMP_OPS, c) != 0) {
        free(c);
        return; /* the pending connection stays in the backlog */
    }
    c->srv = srv;
    c->pump_open = 1;
    if (uv_accept(server, (uv_stream_t *)&c->pump.tcp) != 0) {
        c->freeing = 1;
        shoal__pump_close(&c->pump);
        return;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    format_peer(c);
    srv->n_accepted++;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    if (!c->addr[0]) {
        /* Reset before we got to it: no address, nothing to serve. Not
         * counted anywhere, so a flood of these cannot crowd anyone out. */
        c->dropped = 1;
        note_drop(srv, c, DROP_GONE, "reset by the client");
        sconn_finish(c);
        return;
    }
    /* Penalised sources first, then one source's share of the
     * unauthenticated connections, then MaxStartups (as sshd). */
    const char *why = NULL;
    c->have_key = srv->sl && shoal__srclimit_key(srv->sl, (struct sockaddr *)&c->peer_sa, &c->key) == 0;
    if (c->have_key && shoal__srclimit_refused(srv->sl, &c->key, c->addr, uv_now(srv->loop), &why)) {
        c->dropped = 1;
        note_drop(srv, c, DROP_PENALTY, why);
        sconn_finish(c);
        return;
    }
    if (c->have_key && (!shoal__srclimit_startup_ok(srv->sl, &c->key) ||
                        shoal__srclimit_startup_begin(srv->sl, &c->key) != 0)) {
        c->dropped = 1;
        note_drop(srv, c, DROP_PERSOURCE, "past PerSourceMaxStartups");
        sconn_finish(c);
        return;
    }
    c->counted = c->have_key && srv->opt.per_source_max_startups;
    srv->n_unauth++;
    c->in_unauth = 1;
    /* MaxStartups: unauthenticated connections are cheap for a client to
     * open and hold; past the cap new ones are dropped at once. */
    unsigned cap = srv->opt.max_startups ? srv->opt.max_startups : DEFAULT_MAX_STARTUPS;
    unsigned begin = srv->opt.max_startups_begin;
    int drop = srv->n_unauth > cap;
    if (!drop && begin && begin < cap && srv->n_unauth > begin) {
        /* Random early drop, as sshd: rate% at begin, rising to 100% at cap. */
        unsigned span = cap - begin, over = srv->n_unauth - 1 - begin;
        unsigned p = srv->opt.max_startups_rate + (100 - srv->opt.max_startups_rate) * over / span;
        uint32_t r = 0;
        shoal_random(&r, sizeof(r));
        drop = r % 100 < p;
    }
    if (drop) {
        c->dropped = 1;
        release_counts(c);
        note_drop(srv, c, DROP_MAXSTARTUPS, "past MaxStartups");
        sconn_finish(c);
        return;
    }
    shoal_server_callbacks scb = srv->sshcb;
    scb.auth = wrap_auth;
    scb.authenticated = wrap_authenticated;
    scb.closed = wrap_closed;
    scb.log = wrap_log;
    if (shoal_session_new_server(&c->s, &srv->ssh, &scb, c) != 0) {
        c->dropped = 1;
        release_counts(c);
        srv_log(srv, 0, "%s: cannot create a session", c->peer);
        sconn_finish(c);
        return;
    }
    shoal_session_set_log_level(c->s, srv->opt.log_level);
    /* The session exists, not started: the application may attach its
     * per-connection data (shoal_session_set_app_data) or refuse. */
    if (srv->cb.on_connection && srv->cb.on_connection(srv, c, srv->ud) < 0) {
        c->dropped = 1;
        release_counts(c);
        srv_log(srv, 1, "%s: refused by the application", c->peer);
        sconn_finish(c);
        return;
    }
    uint64_t now = uv_now(srv->loop);
    c->grace_deadline = now + (srv->opt.login_grace_ms ? srv->opt.login_grace_ms : DEFAULT_GRACE_MS);
    srv_log(srv, 1, "connection from %s", c->peer);
    if (shoal_session_start(c->s, now) != 0 || shoal__pump_start(&c->pump, c->s) != 0) {
        sconn_finish(c);
        return;
    }
    sconn_after_io(c);
}

shoal_uv_sconn *shoal_uv_sconn_of(const shoal_session *s)
{
    return shoal_session_userdata(s);
}

shoal_session *shoal_uv_sconn_session(const shoal_uv_sconn *c)
{
    return c->s;
}

shoal_uv_server *shoal_uv_sconn_server(const shoal_uv_sconn *c)
{
    return c->srv;
}

const char *shoal_uv_sconn_peer(const shoal_uv_sconn *c)
{
    return c->peer;
}

const char *shoal_uv_sconn_address(const shoal_uv_sconn *c)
{
    return c->addr;
}

const char *shoal_uv_sconn_local_address(const shoal_uv_sconn *c, unsigned *port)
{
    if (port)
        *port = c->local_port;
    return c->local_addr;
}

void shoal_uv_sconn_flush(shoal_uv_sconn *c)
{
    if (!c->freeing)
        sconn_after_io(c);
}

void shoal_uv_sconn_close(shoal_uv_sconn *c, const char *reason)
{
    if (c->freeing)
        return;
    shoal_session_disconnect(c->s, reason ? reason : "closed by server");
    sconn_after_io(c);
}

/* ---- the server ---- */

int shoal_uv_server_new(uv_loop_t *loop, const shoal_uv_server_options *opt, const shoal_uv_server_callbacks *cb,
                        void *ud, shoal_uv_server **out)
{
    *out = NULL;
    shoal_uv_server_options o;
    shoal_uv_server_callbacks cbs;
    shoal_server_config sshc;
    shoal_server_callbacks sshcb;
    shoal_uv_penalties pen;
    if (!loop || SHOAL_COPY_IN(&o, opt) || SHOAL_COPY_IN(&cbs, cb) || SHOAL_COPY_IN(&sshc, o.ssh) ||
        SHOAL_COPY_IN(&sshcb, cbs.ssh) || SHOAL_COPY_IN_OPT(&pen, o.penalties) || !sshcb.auth || !sshcb.channel_open ||
        !sshc.n_host_keys)
        return SHOAL_ERR_INVALID_ARG;
    opt = &o;
    shoal_uv_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return SHOAL_ERR_NOMEM;
    srv->loop = loop;
    srv->opt = o;
    srv->cb = cbs;
    srv->ssh = sshc;
    srv->sshcb = sshcb;
    srv->pen = pen;
    srv->opt.ssh = &srv->ssh;
    srv->cb.ssh = &srv->sshcb;
    srv->opt.penalties = &srv->pen;
    srv->ud = ud;
    srv->host_keys = calloc(opt->ssh->n_host_keys, sizeof(shoal_key *));
    srv->listen = calloc(opt->n_listen ? opt->n_listen : 1, sizeof(char *));
    if (!srv->host_keys || !srv->listen) {
        free(srv->host_keys);
        free(srv->listen);
        free(srv);
        return SHOAL_ERR_NOMEM;
    }
    const shoal_uv_penalties *pn = &srv->pen;
    if (opt->per_source_max_startups || pn->enabled) {
        shoal_srclimit_config sc = {opt->per_source_max_startups, opt->per_source_netblock4,
                                    opt->per_source_netblock6, pn->enabled, pn->authfail_s, pn->noauth_s,
                                    pn->grace_exceeded_s, pn->min_s, pn->max_s, pn->max_sources4, pn->max_sources6,
                                    pn->overflow_deny_all4, pn->overflow_deny_all6, pn->exempt};
        uint64_t seed = 0;
        shoal_random(&seed, sizeof(seed));
        if (shoal__srclimit_new(&sc, seed, &srv->sl) != 0) {
            free(srv->host_keys);
            free(srv->listen);
            free(srv);
            return SHOAL_ERR_NOMEM;
        }
    }
    uv_timer_init(loop, &srv->logtick);
    uv_unref((uv_handle_t *)&srv->logtick);
    srv->logtick.data = srv;
    srv->logtick_open = 1;
    memcpy(srv->host_keys, opt->ssh->host_keys, opt->ssh->n_host_keys * sizeof(shoal_key *));
    srv->ssh.host_keys = srv->host_keys;
    for (unsigned i = 0; i < opt->n_listen; i++)
        srv->listen[i] = strdup(opt->listen[i]);
    srv->opt.listen = (const char *const *)srv->listen;
    *out = srv;
    return SHOAL_OK;
}

/* "addr", "addr:port", "[v6]", "[v6]:port". */
static int parse_listen(const char *spec, unsigned dflt_port, struct sockaddr_storage *ss)
{
    char host[128];
    unsigned port = dflt_port;
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || (size_t)(rb - spec - 1) >= sizeof(host))
            return -1;
        memcpy(host, spec + 1, (size_t)(rb - spec - 1));
        host[rb - spec - 1] = 0;
        if (rb[1] == ':')
            port = (unsigned)strtoul(rb + 2, NULL, 10);
        else if (rb[1])
            return -1;
    } else if (colon && strchr(spec, ':') == colon) { /* exactly one colon: addr:port */
        if ((size_t)(colon - spec) >= sizeof(host))
            return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        port = (unsigned)strtoul(colon + 1, NULL, 10);
    } else {
        snprintf(host, sizeof(host), "%s", spec);
    }
    if (port > 65535)
        return -1;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -1;
}

static int add_listener(shoal_uv_server *srv, listener **out)
{
    if (srv->n_ls >= MAX_LISTENERS)
        return SHOAL_ERR_TOO_LARGE;
    listener *l = &srv->ls[srv->n_ls];
    if (uv_tcp_init(srv->loop, &l->tcp) != 0)
        return SHOAL_ERR_IO;
    l->srv = srv;
    l->tcp.data = l;
    l->open = 1;
    srv->n_ls++;
    srv->listeners_open++;
    *out = l;
    return SHOAL_OK;
}

int shoal_uv_server_listen(shoal_uv_server *srv, char *err, size_t errsz)
{
    unsigned port = srv->opt.port ? srv->opt.port : 22;
    if (srv->opt.n_inherit_fds) {
        for (unsigned i = 0; i < srv->opt.n_inherit_fds; i++) {
            listener *l;
            int rc = add_listener(srv, &l);
            if (rc == 0 && uv_tcp_open(&l->tcp, srv->opt.inherit_fds[i]) != 0)
                rc = SHOAL_ERR_IO;
            if (rc == 0 && uv_listen((uv_stream_t *)&l->tcp, 511, on_accept) != 0)
                rc = SHOAL_ERR_IO;
            if (rc) {
                snprintf(err, errsz, "cannot adopt inherited socket %d", srv->opt.inherit_fds[i]);
                return rc;
            }
        }
        return SHOAL_OK;
    }
    static const char *const any[] = {"0.0.0.0", "::"};
    const char *const *addrs = srv->opt.n_listen ? srv->opt.listen : any;
    unsigned n = srv->opt.n_listen ? srv->opt.n_listen : 2;
    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (parse_listen(addrs[i], port, &ss) != 0) {
            snprintf(err, errsz, "bad listen address \"%s\"", addrs[i]);
            return SHOAL_ERR_CONFIG;
        }
        listener *l;
        int rc = add_listener(srv, &l);
        if (rc) {
            snprintf(err, errsz, "too many listen addresses");
            return rc;
        }
        int r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->tcp, 511, on_accept);
        if (r != 0) {
            snprintf(err, errsz, "cannot listen on %s: %s", addrs[i], uv_strerror(r));
            return SHOAL_ERR_IO;
        }
        srv_log(srv, 1, "listening on %s port %u", addrs[i], shoal_uv_server_bound_port(srv));
    }
    return SHOAL_OK;
}

unsigned shoal_uv_server_fds(const shoal_uv_server *srv, int *fds, unsigned max)
{
    unsigned k = 0;
    for (unsigned i = 0; i < srv->n_ls && k < max; i++) {
        uv_os_fd_t fd;
        if (srv->ls[i].open && uv_fileno((const uv_handle_t *)&srv->ls[i].tcp, &fd) == 0)
            fds[k++] = fd;
    }
    return k;
}

unsigned shoal_uv_server_bound_port(const shoal_uv_server *srv)
{
    for (unsigned i = 0; i < srv->n_ls; i++) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (!srv->ls[i].open || uv_tcp_getsockname(&srv->ls[i].tcp, (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET6)
            return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

static void maybe_free_server(shoal_uv_server *srv)
{
    if (!srv->freeing || srv->listeners_open || srv->conns || srv->logtick_open)
        return;
    shoal__srclimit_free(srv->sl);
    for (unsigned i = 0; i < srv->opt.n_listen; i++)
        free(srv->listen[i]);
    free(srv->listen);
    free(srv->host_keys);
    free(srv);
}

static void on_listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    shoal_uv_server *srv = l->srv;
    srv->listeners_open--;
    maybe_free_server(srv);
}

void shoal_uv_server_stop(shoal_uv_server *srv)
{
    for (unsigned i = 0; i < srv->n_ls; i++) {
        if (srv->ls[i].open) {
            srv->ls[i].open = 0;
            uv_close((uv_handle_t *)&srv->ls[i].tcp, on_listener_closed);
        }
    }
}

unsigned shoal_uv_server_connections(const shoal_uv_server *srv)
{
    return srv->n_conns;
}

static void on_logtick_closed(uv_handle_t *h)
{
    shoal_uv_server *srv = h->data;
    srv->logtick_open = 0;
    maybe_free_server(srv);
}

void shoal_uv_server_free(shoal_uv_server *srv)
{
    if (!srv || srv->freeing)
        return;
    srv->freeing = 1;
    if (srv->logtick_open && !uv_is_closing((uv_handle_t *)&srv->logtick)) {
        uv_timer_stop(&srv->logtick);
        uv_close((uv_handle_t *)&srv->logtick, on_logtick_closed);
    }
    shoal_uv_server_stop(srv);
    for (shoal_uv_sconn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (!c->freeing && c->s)
            shoal_session_disconnect(c->s, "server shutting down");
        /* No lingering at shutdown. While the socket is open the
         * connection cannot have been freed by sconn_finish. */
        int live = c->pump_open && !c->pump.closing;
        sconn_finish(c);
        if (live)
            shoal__pump_close(&c->pump);
    }
    maybe_free_server(srv);
}

void *shoal_uv_server_userdata(const shoal_uv_server *srv)
{
    return srv->ud;
}

uv_loop_t *shoal_uv_server_loop(const shoal_uv_server *srv)
{
    return srv->loop;
}
