/* The server engine (include/shoal/serve.h): from a finished configuration
 * to a shoal_uv_server whose callbacks are serve_auth.c (authentication)
 * and serve_session.c (channels), plus the log. */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve_gateway.h"
#include "serve_impl.h"
#include "shoal/strvis.h"
#include "abi.h"

/* Listening sockets at most (one per ListenAddress, two for a wildcard with
 * AddressFamily any). */
#define SERVE_MAX_LISTEN 1024u
#define SERVE_MAX_INHERIT 64u
#define SERVE_MAX_BANNER 65536u

SHOAL__INIT_FN(shoal_serve_options)
SHOAL__INIT_FN(shoal_serve_callbacks)

/* ---- the log ---- */

static void default_log(int level, const char *line)
{
    (void)level;
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
    fprintf(stderr, "%s shoal[%d]: %s\n", ts, (int)getpid(), line);
}

/* Every line passes through shoal_strvis() whole (as OpenSSH's do_log
 * does with strnvis): whatever peer text a message carries (user names,
 * commands, environment, versions, upstream messages...), a client cannot
 * end the line early and write a fake one. */
static void serve_vlog(serve_ctx *ctx, int level, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void serve_vlog(serve_ctx *ctx, int level, const char *fmt, va_list ap)
{
    if (level > ctx->log_level)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    char safe[sizeof(msg) * SHOAL_VIS_MAX_EXPANSION];
    shoal_strvis(safe, sizeof(safe), msg, strlen(msg), 0);
    if (ctx->cb.log)
        ctx->cb.log(ctx, level, safe, ctx->ud);
    else
        default_log(level, safe);
}

void serve_log(serve_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    serve_vlog(ctx, level, fmt, ap);
    va_end(ap);
}

void shoal_serve_log(shoal_serve *srv, int level, const char *fmt, ...)
{
    if (!srv || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    serve_vlog(srv, level, fmt, ap);
    va_end(ap);
}

/* ---- the driver's callbacks ---- */

static int on_connection(shoal_uv_server *srv, shoal_uv_sconn *c, void *ud)
{
    serve_ctx *ctx = ud;
    (void)srv;
    serve_conn *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -1;
    sc->ctx = ctx;
    sc->sconn = c;
    shoal_authkey_opts_init(&sc->key_opts);
    shoal_session_set_app_data(shoal_uv_sconn_session(c), sc);
    return 0;
}

static void on_sconn_free(shoal_uv_sconn *c, void *ud)
{
    (void)ud;
    shoal_session *s = shoal_uv_sconn_session(c);
    serve_conn *sc = s ? shoal_session_app_data(s) : NULL;
    if (sc) {
        serve_gateway_free(sc);
        serve_conn_free(sc);
    }
}

static void on_authenticated(shoal_session *s, const char *user, void *ud)
{
    serve_conn *sc = shoal_session_app_data(s);
    (void)ud;
    (void)user;
    sc->authenticated = 1;
    shoal_session_set_max_channels(s, sc->eff.max_sessions ? sc->eff.max_sessions : 10);
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    shoal_uv_sconn *c = ud;
    serve_conn *sc = shoal_session_app_data(s);
    if (sc)
        serve_log(sc->ctx, err ? 1 : 2, "%s%s%s: disconnected%s%s", sc->have_user ? sc->user : "",
                  sc->have_user ? " from " : "", shoal_uv_sconn_peer(c), message ? ": " : "", message ? message : "");
}

static void on_session_log(shoal_session *s, int level, const char *message, void *ud)
{
    serve_conn *sc = shoal_session_app_data(s);
    if (sc)
        serve_log(sc->ctx, level + 2, "%s: %s", shoal_uv_sconn_peer(ud), message);
}

static void on_server_log(shoal_uv_server *srv, int level, const char *message, void *ud)
{
    (void)srv;
    serve_log(ud, level, "%s", message);
}

/* ---- set-up ---- */

static void set_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* The Banner file: missing or unreadable means no banner (as sshd). */
static char *read_banner(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(SERVE_MAX_BANNER + 1);
    size_t n = buf ? fread(buf, 1, SERVE_MAX_BANNER, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

static int load_host_keys(serve_ctx *ctx, char *err, size_t errsz)
{
    if (!ctx->g->n_host_keys) {
        set_err(err, errsz, "no host keys: give -h FILE or HostKey (ssh-keygen -t ed25519 -f FILE makes one)");
        return SHOAL_ERR_CONFIG;
    }
    ctx->host_keys = calloc(ctx->g->n_host_keys, sizeof(shoal_key *));
    if (!ctx->host_keys)
        return SHOAL_ERR_NOMEM;
    for (unsigned i = 0; i < ctx->g->n_host_keys; i++) {
        int rc = shoal_key_load_private_file(ctx->g->host_keys[i], NULL, &ctx->host_keys[ctx->n_host_keys]);
        if (rc) {
            serve_log(ctx, 0, "cannot load host key %s: %s", ctx->g->host_keys[i], shoal_strerror(rc));
            continue;
        }
        ctx->n_host_keys++;
    }
    if (!ctx->n_host_keys) {
        set_err(err, errsz, "no usable host key");
        return SHOAL_ERR_CONFIG;
    }
    return SHOAL_OK;
}

/* One "addr:port" per socket: two for a wildcard with AddressFamily any
 * (IPv4 and IPv6). */
static int make_listen_specs(serve_ctx *ctx, char *err, size_t errsz)
{
    const shoal_serve_global *g = ctx->g;
    unsigned need = 0;
    for (unsigned i = 0; i < g->n_listen; i++)
        need += !g->listen[i].host && g->address_family == SHOAL_SERVE_AF_ANY ? 2 : 1;
    if (need > SERVE_MAX_LISTEN) {
        set_err(err, errsz, "too many ListenAddress entries (%u sockets; at most %u)", need, SERVE_MAX_LISTEN);
        return SHOAL_ERR_CONFIG;
    }
    ctx->listen_specs = calloc(need ? need : 1, sizeof(char *));
    if (!ctx->listen_specs)
        return SHOAL_ERR_NOMEM;
    for (unsigned i = 0; i < g->n_listen; i++) {
        const shoal_serve_listen *l = &g->listen[i];
        const char *hosts[2] = {l->host, NULL};
        unsigned nh = 1;
        if (!l->host) {
            hosts[0] = g->address_family == SHOAL_SERVE_AF_INET6 ? "::" : "0.0.0.0";
            if (g->address_family == SHOAL_SERVE_AF_ANY) {
                hosts[1] = "::";
                nh = 2;
            }
        }
        for (unsigned k = 0; k < nh; k++) {
            char spec[300];
            if (strchr(hosts[k], ':'))
                snprintf(spec, sizeof(spec), "[%s]:%u", hosts[k], l->port);
            else
                snprintf(spec, sizeof(spec), "%s:%u", hosts[k], l->port);
            if (!(ctx->listen_specs[ctx->n_listen] = strdup(spec)))
                return SHOAL_ERR_NOMEM;
            ctx->n_listen++;
        }
    }
    return SHOAL_OK;
}

static void fill_penalties(const shoal_serve_global *g, shoal_uv_penalties *p)
{
    const shoal_serve_penalties *pen = &g->penalties;
    p->enabled = pen->enabled;
    p->authfail_s = pen->authfail;
    p->noauth_s = pen->noauth;
    p->grace_exceeded_s = pen->grace_exceeded;
    p->min_s = pen->min;
    p->max_s = pen->max;
    p->max_sources4 = pen->max_sources4;
    p->max_sources6 = pen->max_sources6;
    p->overflow_deny_all4 = pen->overflow_deny_all;
    p->overflow_deny_all6 = pen->overflow6_deny_all;
    p->exempt = g->penalty_exempt;
}

static int start_driver(serve_ctx *ctx)
{
    const shoal_serve_global *g = ctx->g;
    /* Defaults for every connection (before the user is known). */
    shoal_serve_effective dflt;
    shoal_serve_config_for(ctx->cfg, NULL, NULL, &dflt);
    if (dflt.banner && strcmp(dflt.banner, "none") != 0)
        ctx->banner_text = read_banner(dflt.banner);

    shoal_uv_server_options so;
    shoal_uv_server_options_init(&so);
    shoal_server_config so_ssh;
    shoal_server_config_init(&so_ssh);
    so.ssh = &so_ssh;
    shoal_uv_penalties so_pen;
    shoal_uv_penalties_init(&so_pen);
    so.penalties = &so_pen;
    so.listen = (const char *const *)ctx->listen_specs;
    so.n_listen = ctx->n_listen;
    so_ssh.host_keys = ctx->host_keys;
    so_ssh.n_host_keys = ctx->n_host_keys;
    so_ssh.auth_methods = SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD | SHOAL_AUTH_KBDINT;
    so_ssh.max_auth_tries = dflt.max_auth_tries;
    so_ssh.banner = ctx->banner_text;
    so_ssh.max_channels = dflt.max_sessions;
    so_ssh.keepalive_interval_ms = (uint64_t)dflt.client_alive_interval * 1000;
    so_ssh.keepalive_count_max = dflt.client_alive_count_max;
    so.login_grace_ms = g->login_grace_time ? (uint64_t)g->login_grace_time * 1000 : UINT32_MAX;
    so.max_startups = g->max_startups_full;
    so.max_startups_begin = g->max_startups_begin;
    so.max_startups_rate = g->max_startups_rate;
    so.per_source_max_startups = g->per_source_max_startups;
    so.per_source_netblock4 = g->per_source_netblock4;
    so.per_source_netblock6 = g->per_source_netblock6;
    fill_penalties(g, &so_pen);
    so.log_level = ctx->log_level;
    so.inherit_fds = ctx->inherit_fds;
    so.n_inherit_fds = ctx->n_inherit_fds;

    shoal_uv_server_callbacks cb;
    shoal_uv_server_callbacks_init(&cb);
    shoal_server_callbacks cb_ssh;
    shoal_server_callbacks_init(&cb_ssh);
    cb.ssh = &cb_ssh;
    cb.on_connection = on_connection;
    cb.on_sconn_free = on_sconn_free;
    cb.log = on_server_log;
    cb_ssh.auth = serve_auth;
    cb_ssh.authenticated = on_authenticated;
    cb_ssh.channel_open = serve_channel_open;
    cb_ssh.closed = on_closed;
    cb_ssh.log = on_session_log;
    return shoal_uv_server_new(ctx->loop, &so, &cb, ctx, &ctx->srv);
}

int shoal_serve_new(uv_loop_t *loop, const shoal_serve_options *opts, const shoal_serve_callbacks *cb, void *ud,
                    shoal_serve **out, char *err, size_t errsz)
{
    if (out)
        *out = NULL;
    if (err && errsz)
        err[0] = 0;
    shoal_serve_options o;
    if (!loop || !opts || !out || SHOAL_COPY_IN(&o, opts) != 0 || !o.config)
        return SHOAL_ERR_INVALID_ARG;
    if (o.n_inherit_fds > SERVE_MAX_INHERIT || (o.n_inherit_fds && !o.inherit_fds))
        return SHOAL_ERR_INVALID_ARG;
    serve_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return SHOAL_ERR_NOMEM;
    if (cb && SHOAL_COPY_IN(&ctx->cb, cb) != 0) {
        free(ctx);
        return SHOAL_ERR_INVALID_ARG;
    }
    ctx->cfg = o.config;
    ctx->g = shoal_serve_config_global(o.config);
    ctx->loop = loop;
    ctx->ud = ud;
    ctx->log_level = o.log_level;
    ctx->is_root = geteuid() == 0;
    ctx->self_uid = geteuid();
    struct passwd pw, *me = NULL;
    char pwbuf[4096];
    getpwuid_r(ctx->self_uid, &pw, pwbuf, sizeof(pwbuf), &me);
    snprintf(ctx->self_user, sizeof(ctx->self_user), "%s", me ? me->pw_name : "?");
    int rc = SHOAL_OK;
    if (o.n_inherit_fds) {
        ctx->inherit_fds = malloc(o.n_inherit_fds * sizeof(int));
        if (!ctx->inherit_fds)
            rc = SHOAL_ERR_NOMEM;
        else
            memcpy(ctx->inherit_fds, o.inherit_fds, o.n_inherit_fds * sizeof(int));
        ctx->n_inherit_fds = o.n_inherit_fds;
    }
    if (!rc)
        rc = load_host_keys(ctx, err, errsz);
    if (!rc)
        rc = make_listen_specs(ctx, err, errsz);
    if (!rc)
        rc = start_driver(ctx);
    if (rc) {
        if (err && errsz && !err[0])
            set_err(err, errsz, "%s", shoal_strerror(rc));
        shoal_serve_free(ctx);
        return rc;
    }
    *out = ctx;
    return SHOAL_OK;
}

int shoal_serve_start(shoal_serve *srv, char *err, size_t errsz)
{
    if (!srv)
        return SHOAL_ERR_INVALID_ARG;
    if (!srv->srv)
        return SHOAL_ERR_CLOSED;
    return shoal_uv_server_listen(srv->srv, err, errsz);
}

unsigned shoal_serve_bound_port(const shoal_serve *srv)
{
    return srv && srv->srv ? shoal_uv_server_bound_port(srv->srv) : 0;
}

unsigned shoal_serve_host_key_count(const shoal_serve *srv)
{
    return srv ? srv->n_host_keys : 0;
}

shoal_uv_server *shoal_serve_uv_server(const shoal_serve *srv)
{
    return srv ? srv->srv : NULL;
}

uv_loop_t *shoal_serve_loop(const shoal_serve *srv)
{
    return srv ? srv->loop : NULL;
}

void shoal_serve_close(shoal_serve *srv)
{
    if (!srv || !srv->srv)
        return;
    shoal_uv_server_free(srv->srv);
    srv->srv = NULL;
}

/* The sessions borrow the host keys and the banner (server.h): the
 * header asks for shoal_serve_close() and a loop run first, so no closing
 * connection is left to use them. */
void shoal_serve_free(shoal_serve *srv)
{
    if (!srv)
        return;
    shoal_serve_close(srv);
    for (unsigned i = 0; i < srv->n_host_keys; i++)
        shoal_key_free(srv->host_keys[i]);
    free(srv->host_keys);
    for (unsigned i = 0; i < srv->n_listen; i++)
        free(srv->listen_specs[i]);
    free(srv->listen_specs);
    free(srv->inherit_fds);
    free(srv->banner_text);
    free(srv);
}

/* ---- one connection ---- */

shoal_serve *shoal_serve_conn_server(const shoal_serve_conn *c)
{
    return c ? c->ctx : NULL;
}

shoal_uv_sconn *shoal_serve_conn_sconn(const shoal_serve_conn *c)
{
    return c ? c->sconn : NULL;
}

const char *shoal_serve_conn_user(const shoal_serve_conn *c)
{
    return c && c->have_user ? c->user : "";
}

int shoal_serve_conn_account_ok(const shoal_serve_conn *c)
{
    return c ? c->user_ok : 0;
}

int shoal_serve_conn_authenticated(const shoal_serve_conn *c)
{
    return c ? c->authenticated : 0;
}

const shoal_serve_effective *shoal_serve_conn_settings(const shoal_serve_conn *c)
{
    return c && c->have_user ? &c->eff : NULL;
}
