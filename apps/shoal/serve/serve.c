/* shoal serve: a programmable SSH server that OpenSSH clients use unchanged.
 *
 *   shoal serve [-f config] [-p port] [-h hostkey]... [-o Keyword=value]... [-d]
 *
 * Runs in the foreground and logs to stderr. Configuration follows
 * sshd_config (a documented subset, include/shoal/serveconfig.h); command-line
 * options take precedence over the file. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "serve.h"
#include "serve_gateway.h"
#include "serve_restart.h"
#include "shoal/strvis.h"
#include "shoal/version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal serve [-f config] [-p port] [-h hostkey]... [-o Keyword=value]... [-d]\n"
               "\n"
               "A programmable SSH server for stock OpenSSH clients. Configuration uses\n"
               "sshd_config keywords (see docs/SERVE.md); -o and the flags win over the file.\n"
               "  -f config   read this configuration file\n"
               "  -p port     listen on this port (as Port)\n"
               "  -h hostkey  a host key file (as HostKey; repeatable)\n"
               "  -o opt      one configuration line, Keyword=value\n"
               "  -d          debug logging (repeat for more)\n");
}

/* Every line passes through shoal_strvis() whole (as OpenSSH's do_log
 * does with strnvis): whatever peer text a message carries (user names,
 * commands, environment, versions, upstream messages...), a client cannot
 * end the line early and write a fake one. */
void serve_log(serve_ctx *ctx, int level, const char *fmt, ...)
{
    if (level > ctx->log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char safe[sizeof(msg) * SHOAL_VIS_MAX_EXPANSION];
    shoal_strvis(safe, sizeof(safe), msg, strlen(msg), 0);
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
    fprintf(stderr, "%s shoal[%d]: %s\n", ts, (int)getpid(), safe);
}

/* ---- server callbacks ---- */

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

/* ---- signals ---- */

static void on_hup(uv_signal_t *h, int signum)
{
    serve_ctx *ctx = h->data;
    (void)signum;
    if (serve_restart_begin(ctx) != 0)
        serve_log(ctx, 0, "SIGHUP: a restart is already under way, or cannot start one");
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    serve_ctx *ctx = h->data;
    serve_log(ctx, 0, "received signal %d; shutting down", signum);
    shoal_uv_server_free(ctx->srv);
    ctx->srv = NULL;
    uv_stop(h->loop);
}

/* ---- setup ---- */

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

int cmd_serve(int argc, char **argv)
{
    serve_ctx ctx;
    /* argv here starts at "serve": the re-exec needs the program name. */
    serve_restart_init(argv - 1);
    serve_restart_cloexec_inherited();
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = shoal_serve_config_new();
    if (!ctx.cfg) {
        fprintf(stderr, "shoal serve: out of memory\n");
        return 1;
    }
    const char *file = NULL;
    int debug = 0, opt;
    char err[600], line[4200];
    optind = 1;
    static const struct option longopts[] = {{"help", no_argument, NULL, 'H'}, {"version", no_argument, NULL, 'V'},
                                                  {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "f:p:h:o:d", longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'f':
            file = optarg;
            break;
        case 'p':
            snprintf(line, sizeof(line), "Port=%s", optarg);
            rc = shoal_serve_config_apply_option(ctx.cfg, line, err, sizeof(err));
            break;
        case 'h':
            snprintf(line, sizeof(line), "HostKey=%s", optarg);
            rc = shoal_serve_config_apply_option(ctx.cfg, line, err, sizeof(err));
            break;
        case 'o':
            rc = shoal_serve_config_apply_option(ctx.cfg, optarg, err, sizeof(err));
            break;
        case 'd':
            debug++;
            break;
        case 'H':
            usage(stdout);
            shoal_serve_config_free(ctx.cfg);
            return 0;
        case 'V': /* --version */
            printf("shoal %s\n", shoal_version());
            shoal_serve_config_free(ctx.cfg);
            return 0;
        default:
            usage(stderr);
            shoal_serve_config_free(ctx.cfg);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "shoal serve: %s\n", err);
            shoal_serve_config_free(ctx.cfg);
            return 1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        shoal_serve_config_free(ctx.cfg);
        return 2;
    }
    if ((file && shoal_serve_config_parse_file(ctx.cfg, file, err, sizeof(err)) != 0) ||
        shoal_serve_config_finish(ctx.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal serve: %s\n", err);
        shoal_serve_config_free(ctx.cfg);
        return 1;
    }
    ctx.g = shoal_serve_config_global(ctx.cfg);
    ctx.log_level = debug ? 1 + debug : (ctx.g->log_level >= 4 ? 1 : 0);
    ctx.is_root = geteuid() == 0;
    ctx.self_uid = geteuid();
    struct passwd *me = getpwuid(ctx.self_uid);
    snprintf(ctx.self_user, sizeof(ctx.self_user), "%s", me ? me->pw_name : "?");

    /* Host keys. */
    if (!ctx.g->n_host_keys) {
        fprintf(stderr, "shoal serve: no host keys: give -h FILE or HostKey (ssh-keygen -t ed25519 -f FILE makes one)\n");
        shoal_serve_config_free(ctx.cfg);
        return 1;
    }
    ctx.host_keys = calloc(ctx.g->n_host_keys, sizeof(shoal_key *));
    for (unsigned i = 0; ctx.host_keys && i < ctx.g->n_host_keys; i++) {
        int rc = shoal_key_load_private_file(ctx.g->host_keys[i], NULL, &ctx.host_keys[ctx.n_host_keys]);
        if (rc) {
            fprintf(stderr, "shoal serve: cannot load host key %s: %s\n", ctx.g->host_keys[i], shoal_strerror(rc));
            continue;
        }
        ctx.n_host_keys++;
    }
    if (!ctx.n_host_keys) {
        fprintf(stderr, "shoal serve: no usable host key\n");
        shoal_serve_config_free(ctx.cfg);
        free(ctx.host_keys);
        return 1;
    }

    /* Defaults for every connection (before the user is known). */
    shoal_serve_effective dflt;
    shoal_serve_config_for(ctx.cfg, NULL, NULL, &dflt);
    if (dflt.banner && strcmp(dflt.banner, "none") != 0)
        ctx.banner_text = read_small_file(dflt.banner);

    /* One socket per ListenAddress, two for a wildcard with AddressFamily
     * any (IPv4 and IPv6). */
    enum { MAX_LISTEN = 1024 };
    unsigned need = 0;
    for (unsigned i = 0; i < ctx.g->n_listen; i++)
        need += !ctx.g->listen[i].host && ctx.g->address_family == SHOAL_SERVE_AF_ANY ? 2 : 1;
    if (need > MAX_LISTEN) {
        fprintf(stderr, "shoal serve: too many ListenAddress entries (%u sockets; at most %u)\n", need, MAX_LISTEN);
        return 1;
    }
    static char *listen_specs[MAX_LISTEN];
    static const char *listen_ptrs[MAX_LISTEN];
    unsigned nl = 0;
    for (unsigned i = 0; i < ctx.g->n_listen && nl + 2 <= MAX_LISTEN; i++) {
        const shoal_serve_listen *l = &ctx.g->listen[i];
        const char *hosts[2] = {l->host, NULL};
        unsigned nh = 1;
        if (!l->host) {
            hosts[0] = ctx.g->address_family == SHOAL_SERVE_AF_INET6 ? "::" : "0.0.0.0";
            if (ctx.g->address_family == SHOAL_SERVE_AF_ANY) {
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
            listen_specs[nl] = strdup(spec);
            listen_ptrs[nl] = listen_specs[nl];
            nl++;
        }
    }

    uv_loop_t *loop = uv_default_loop();
    shoal_uv_server_options so;
    shoal_uv_server_options_init(&so);
    shoal_server_config so_ssh;
    shoal_server_config_init(&so_ssh);
    so.ssh = &so_ssh;
    shoal_uv_penalties so_pen;
    shoal_uv_penalties_init(&so_pen);
    so.penalties = &so_pen;
    so.listen = listen_ptrs;
    so.n_listen = nl;
    so_ssh.host_keys = ctx.host_keys;
    so_ssh.n_host_keys = ctx.n_host_keys;
    so_ssh.auth_methods = SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD | SHOAL_AUTH_KBDINT;
    so_ssh.max_auth_tries = dflt.max_auth_tries;
    so_ssh.banner = ctx.banner_text;
    so_ssh.max_channels = dflt.max_sessions;
    so_ssh.keepalive_interval_ms = (uint64_t)dflt.client_alive_interval * 1000;
    so_ssh.keepalive_count_max = dflt.client_alive_count_max;
    so.login_grace_ms = ctx.g->login_grace_time ? (uint64_t)ctx.g->login_grace_time * 1000 : UINT32_MAX;
    so.max_startups = ctx.g->max_startups_full;
    so.max_startups_begin = ctx.g->max_startups_begin;
    so.max_startups_rate = ctx.g->max_startups_rate;
    so.per_source_max_startups = ctx.g->per_source_max_startups;
    so.per_source_netblock4 = ctx.g->per_source_netblock4;
    so.per_source_netblock6 = ctx.g->per_source_netblock6;
    const shoal_serve_penalties *pen = &ctx.g->penalties;
    so_pen.enabled = pen->enabled;
    so_pen.authfail_s = pen->authfail;
    so_pen.noauth_s = pen->noauth;
    so_pen.grace_exceeded_s = pen->grace_exceeded;
    so_pen.min_s = pen->min;
    so_pen.max_s = pen->max;
    so_pen.max_sources4 = pen->max_sources4;
    so_pen.max_sources6 = pen->max_sources6;
    so_pen.overflow_deny_all4 = pen->overflow_deny_all;
    so_pen.overflow_deny_all6 = pen->overflow6_deny_all;
    so_pen.exempt = ctx.g->penalty_exempt;
    so.log_level = ctx.log_level;
    int inherited[32];
    so.n_inherit_fds = serve_restart_inherited(inherited, 32);
    so.inherit_fds = inherited;
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
    int rc = shoal_uv_server_new(loop, &so, &cb, &ctx, &ctx.srv);
    if (!rc)
        rc = shoal_uv_server_listen(ctx.srv, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "shoal serve: %s\n", rc == SHOAL_ERR_IO || rc == SHOAL_ERR_CONFIG ? err : shoal_strerror(rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_hup);
    sig_int.data = sig_term.data = sig_hup.data = &ctx;
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    serve_restart_ready();
    serve_log(&ctx, 0, "listening on port %u (%u host key%s)", shoal_uv_server_bound_port(ctx.srv), ctx.n_host_keys,
              ctx.n_host_keys == 1 ? "" : "s");
    uv_run(loop, UV_RUN_DEFAULT);

    /* Shut down: let handles close. */
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    if (ctx.srv)
        shoal_uv_server_free(ctx.srv);
    uv_run(loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < ctx.n_host_keys; i++)
        shoal_key_free(ctx.host_keys[i]);
    free(ctx.host_keys);
    for (unsigned i = 0; i < nl; i++)
        free(listen_specs[i]);
    free(ctx.banner_text);
    shoal_serve_config_free(ctx.cfg);
    return 0;
}
