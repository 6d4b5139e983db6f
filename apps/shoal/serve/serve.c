/* shoal serve: a programmable SSH server that OpenSSH clients use unchanged.
 *
 *   shoal serve [-f config] [-p port] [-h hostkey]... [-o Keyword=value]... [-d]
 *
 * Runs in the foreground and logs to stderr. Configuration follows
 * sshd_config (a documented subset, include/shoal/serveconfig.h); command-line
 * options take precedence over the file. The server itself is the library's
 * engine (include/shoal/serve.h); this file parses the arguments, prepares
 * the engine and runs it, with the signals and the graceful restart
 * (serve_restart.c) around it. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "serve_restart.h"
#include "shoal/serve.h"
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

/* ---- signals ---- */

static void on_hup(uv_signal_t *h, int signum)
{
    shoal_serve *srv = h->data;
    (void)signum;
    if (serve_restart_begin(srv) != 0)
        shoal_serve_log(srv, 0, "SIGHUP: a restart is already under way, or cannot start one");
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    shoal_serve *srv = h->data;
    shoal_serve_log(srv, 0, "received signal %d; shutting down", signum);
    shoal_serve_close(srv);
    uv_stop(h->loop);
}

/* ---- the three steps ---- */

/* Arguments into a finished configuration: 0, or the exit status. */
static int parse_args(int argc, char **argv, shoal_serve_config **out, int *debug)
{
    shoal_serve_config *cfg = shoal_serve_config_new();
    if (!cfg) {
        fprintf(stderr, "shoal serve: out of memory\n");
        return 1;
    }
    const char *file = NULL;
    int opt;
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
            rc = shoal_serve_config_apply_option(cfg, line, err, sizeof(err));
            break;
        case 'h':
            snprintf(line, sizeof(line), "HostKey=%s", optarg);
            rc = shoal_serve_config_apply_option(cfg, line, err, sizeof(err));
            break;
        case 'o':
            rc = shoal_serve_config_apply_option(cfg, optarg, err, sizeof(err));
            break;
        case 'd':
            (*debug)++;
            break;
        case 'H':
            usage(stdout);
            shoal_serve_config_free(cfg);
            return -1; /* exit 0 */
        case 'V': /* --version */
            printf("shoal %s\n", shoal_version());
            shoal_serve_config_free(cfg);
            return -1; /* exit 0 */
        default:
            usage(stderr);
            shoal_serve_config_free(cfg);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "shoal serve: %s\n", err);
            shoal_serve_config_free(cfg);
            return 1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        shoal_serve_config_free(cfg);
        return 2;
    }
    if ((file && shoal_serve_config_parse_file(cfg, file, err, sizeof(err)) != 0) ||
        shoal_serve_config_finish(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal serve: %s\n", err);
        shoal_serve_config_free(cfg);
        return 1;
    }
    *out = cfg;
    return 0;
}

/* The engine from the configuration (host keys, banner, listeners, the
 * sockets a restart handed over). */
static int prepare(uv_loop_t *loop, const shoal_serve_config *cfg, int debug, shoal_serve **out)
{
    int inherited[32];
    shoal_serve_options o;
    shoal_serve_options_init(&o);
    o.config = cfg;
    o.log_level = debug ? 1 + debug : (shoal_serve_config_global(cfg)->log_level >= 4 ? 1 : 0);
    o.n_inherit_fds = serve_restart_inherited(inherited, 32);
    o.inherit_fds = inherited;
    char err[600];
    int rc = shoal_serve_new(loop, &o, NULL, NULL, out, err, sizeof(err));
    if (rc)
        fprintf(stderr, "shoal serve: %s\n", err);
    return rc;
}

/* Listens, then serves until a stop signal (or the end of a restart's
 * drain); returns the exit status. */
static int run(uv_loop_t *loop, shoal_serve *srv)
{
    char err[600];
    int rc = shoal_serve_start(srv, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "shoal serve: %s\n", rc == SHOAL_ERR_IO || rc == SHOAL_ERR_CONFIG ? err : shoal_strerror(rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_hup);
    sig_int.data = sig_term.data = sig_hup.data = srv;
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    serve_restart_ready();
    unsigned nk = shoal_serve_host_key_count(srv);
    shoal_serve_log(srv, 0, "listening on port %u (%u host key%s)", shoal_serve_bound_port(srv), nk,
                    nk == 1 ? "" : "s");
    uv_run(loop, UV_RUN_DEFAULT);

    /* Shut down: let handles close. */
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    shoal_serve_close(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    /* argv here starts at "serve": the re-exec needs the program name. */
    serve_restart_init(argv - 1);
    serve_restart_cloexec_inherited();
    shoal_serve_config *cfg = NULL;
    int debug = 0;
    int status = parse_args(argc, argv, &cfg, &debug);
    if (status)
        return status < 0 ? 0 : status;
    uv_loop_t *loop = uv_default_loop();
    shoal_serve *srv = NULL;
    if (prepare(loop, cfg, debug, &srv) != 0) {
        shoal_serve_config_free(cfg);
        return 1;
    }
    status = run(loop, srv);
    shoal_serve_free(srv);
    shoal_serve_config_free(cfg);
    return status;
}
