/* shoal_bench_hold: open many SSH connections from one process, authenticate
 * each (and optionally start one idle command on a session channel), then
 * keep them all open, so the server's memory per idle connection can be
 * measured.
 *
 *   shoal_bench_hold -p port -i key -k known_hosts [-c inflight] [-n total]
 *                    [-a address]... [-s command] [-W] [-o Option=value]...
 *                    [-v] user@host
 *
 * Connections are started at most `inflight` at a time (a connection stops
 * being in flight once it is authenticated, or with -s once the server has
 * accepted the exec request). With -a, connections are spread over those
 * addresses instead of host, and each address gets at most
 * ceil(inflight / addresses) in flight: servers that cap unauthenticated
 * connections per source address (dropbear: 5) can still be loaded when each
 * target address is also a distinct source address (see bench/serve_run.sh).
 *
 * Without -s a connection is authenticated and has no channel. With -s it has
 * one session channel running `command` (e.g. "sleep 600"); its stdin stays
 * open and its output is discarded.
 *
 * With -W one connection is opened, authenticated and closed first, then
 * "waiting" is printed and nothing more is started until SIGUSR2 arrives: a
 * measurement of the server can be taken with this process already running
 * and its code pages in memory (it shares libraries such as libcrypto with
 * shoal serve, and every page both touch lowers the server's Pss).
 *
 * When every connection is up or has failed, one line goes to stdout:
 *
 *   ready n=2000 ok=2000 failed=0 wall_ms=5123.4 conn_per_s=390.4
 *
 * and the connections are held until SIGTERM or SIGINT, which print
 *
 *   done open=2000 dropped=0
 *
 * (dropped: connections that were up and were closed while being held) and
 * exit without an orderly disconnect; the kernel closes the sockets. SIGUSR1
 * prints the same figures as "status open=2000 dropped=0" and goes on. The
 * exit status is 0 when every connection came up and none was dropped, 1
 * otherwise, 2 on a usage error. The first few failures go to stderr. */
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shoal/channel.h"
#include "shoal/config.h"
#include "shoal/uv.h"

#define MAX_REPORTED_ERRORS 5
#define MAX_ADDRS 64

typedef struct holder holder;

typedef struct target {
    const char *host;
    unsigned inflight;
} target;

typedef struct conn {
    holder *h;
    target *t;
    shoal_uv_conn *uc;
    shoal_channel *ch;
    unsigned index;
    int up;
    char err[200];
} conn;

struct holder {
    uv_loop_t *loop;
    shoal_uv_options uo;
    shoal_client_config uo_ssh; /* uo.ssh points here */
    target targets[MAX_ADDRS];
    unsigned n_targets, next_target;
    unsigned per_target;
    const char *command; /* NULL: authenticate only */
    unsigned total, inflight_max;
    unsigned started, inflight, ok, failed, open, dropped;
    int holding;
    unsigned errors_reported;
    int verbose;
    uint64_t t0_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void report_error(holder *h, unsigned index, const char *what)
{
    h->errors_reported++;
    if (h->errors_reported <= MAX_REPORTED_ERRORS)
        fprintf(stderr, "shoal_bench_hold: connection %u: %s\n", index, what);
    else if (h->errors_reported == MAX_REPORTED_ERRORS + 1)
        fprintf(stderr, "shoal_bench_hold: (further errors not shown)\n");
}

static void start_more(holder *h);

static void check_all_up(holder *h)
{
    if (h->holding || h->ok + h->failed < h->total)
        return;
    h->holding = 1;
    double wall = (double)(now_ns() - h->t0_ns) / 1e6;
    printf("ready n=%u ok=%u failed=%u wall_ms=%.1f conn_per_s=%.1f\n", h->total, h->ok, h->failed, wall,
           wall > 0 ? (double)h->ok * 1e3 / wall : 0.0);
    fflush(stdout);
}

/* The connection is authenticated (and its command started, with -s). */
static void mark_up(conn *c)
{
    holder *h = c->h;
    c->up = 1;
    h->ok++;
    h->open++;
    h->inflight--;
    c->t->inflight--;
    start_more(h);
    check_all_up(h);
}

/* ---- channel (-s) ---- */

static void on_ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    conn *c = ud;
    if (err) {
        snprintf(c->err, sizeof(c->err), "channel open refused: %s", reason ? reason : shoal_strerror(err));
        return; /* on_ch_close follows */
    }
    int rc = shoal_channel_exec(ch, c->h->command);
    if (rc) {
        snprintf(c->err, sizeof(c->err), "exec request: %s", shoal_strerror(rc));
        shoal_channel_close(ch);
    }
}

static void on_ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    conn *c = ud;
    if (strcmp(request, "exec") != 0 || c->up)
        return;
    if (!ok) {
        snprintf(c->err, sizeof(c->err), "server refused to execute the command");
        shoal_channel_close(ch);
        return;
    }
    mark_up(c);
}

static void on_ch_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    (void)stream;
    (void)data;
    (void)len;
    (void)ud;
}

static void on_ch_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_ch_exit_status(shoal_channel *ch, uint32_t status, void *ud)
{
    conn *c = ud;
    (void)ch;
    if (!c->err[0])
        snprintf(c->err, sizeof(c->err), "command exited with status %u", (unsigned)status);
}

static void on_ch_exit_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    conn *c = ud;
    (void)ch;
    (void)core;
    (void)msg;
    if (!c->err[0])
        snprintf(c->err, sizeof(c->err), "command killed by signal %s", sig);
}

static void on_ch_writable(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_ch_close(shoal_channel *ch, void *ud)
{
    conn *c = ud;
    (void)ch;
    c->ch = NULL;
    /* The command ended or the channel was refused: the connection no
     * longer is what is being measured. */
    shoal_uv_conn_close(c->uc);
}

/* ---- connection ---- */

static void on_ready(shoal_uv_conn *uc, void *ud)
{
    conn *c = ud;
    if (!c->h->command) {
        mark_up(c);
        return;
    }
    static const shoal_channel_callbacks cbs = {
        sizeof(shoal_channel_callbacks),
        on_ch_open,
        on_ch_request,
        on_ch_data,
        on_ch_eof,
        on_ch_exit_status,
        on_ch_exit_signal,
        on_ch_writable,
        on_ch_close,
    };
    int rc = shoal_channel_open_session(shoal_uv_conn_session(uc), &cbs, c, &c->ch);
    if (rc) {
        snprintf(c->err, sizeof(c->err), "channel open: %s", shoal_strerror(rc));
        shoal_uv_conn_close(uc);
    }
}

static void on_closed(shoal_uv_conn *uc, int err, const char *message, void *ud)
{
    conn *c = ud;
    holder *h = c->h;
    char what[1200];
    if (c->err[0])
        snprintf(what, sizeof(what), "%s", c->err);
    else if (err)
        snprintf(what, sizeof(what), "%s", message ? message : shoal_strerror(err));
    else
        snprintf(what, sizeof(what), "closed by the server");
    if (c->up) {
        h->open--;
        h->dropped++;
        report_error(h, c->index, what);
    } else {
        h->failed++;
        h->inflight--;
        c->t->inflight--;
        report_error(h, c->index, what);
    }
    shoal_uv_conn_free(uc);
    free(c);
    start_more(h);
    check_all_up(h);
}

static void on_log(shoal_uv_conn *uc, int level, const char *message, void *ud)
{
    (void)uc;
    (void)ud;
    fprintf(stderr, "%s%s\n", level > 0 ? "debug1: " : "", message);
}

/* ---- -W: one throwaway connection before waiting ---- */

static void on_warm_ready(shoal_uv_conn *uc, void *ud)
{
    (void)ud;
    shoal_uv_conn_close(uc);
}

static void on_warm_closed(shoal_uv_conn *uc, int err, const char *message, void *ud)
{
    (void)ud;
    if (err)
        fprintf(stderr, "shoal_bench_hold: warm-up connection: %s\n", message ? message : shoal_strerror(err));
    shoal_uv_conn_free(uc);
    printf("waiting\n");
    fflush(stdout);
}

static void start_warm(holder *h)
{
    static const shoal_uv_callbacks cbs = {
        .size = sizeof(shoal_uv_callbacks), .on_ready = on_warm_ready, .on_closed = on_warm_closed, .log = on_log};
    shoal_uv_options uo = h->uo;
    uo.host = h->targets[0].host;
    shoal_uv_conn *uc;
    if (shoal_uv_conn_new(h->loop, &uo, &cbs, h, &uc) != 0) {
        printf("waiting\n");
        fflush(stdout);
        return;
    }
    shoal_uv_conn_start(uc);
}

/* The next target with room for one more connection in flight, or NULL. */
static target *pick_target(holder *h)
{
    for (unsigned k = 0; k < h->n_targets; k++) {
        target *t = &h->targets[(h->next_target + k) % h->n_targets];
        if (t->inflight < h->per_target) {
            h->next_target = (h->next_target + k + 1) % h->n_targets;
            return t;
        }
    }
    return NULL;
}

static void start_more(holder *h)
{
    static const shoal_uv_callbacks cbs = {
        .size = sizeof(shoal_uv_callbacks), .on_ready = on_ready, .on_closed = on_closed, .log = on_log};
    while (h->started < h->total && h->inflight < h->inflight_max) {
        target *t = pick_target(h);
        if (!t)
            return;
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
            fprintf(stderr, "shoal_bench_hold: out of memory\n");
            exit(1);
        }
        c->h = h;
        c->t = t;
        c->index = h->started++;
        shoal_uv_options uo = h->uo;
        uo.host = t->host;
        int rc = shoal_uv_conn_new(h->loop, &uo, &cbs, c, &c->uc);
        if (rc) {
            h->failed++;
            report_error(h, c->index, shoal_strerror(rc));
            free(c);
            continue;
        }
        h->inflight++;
        t->inflight++;
        /* A failure here is reported through on_closed. */
        shoal_uv_conn_start(c->uc);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    holder *h = s->data;
    if (signum == SIGUSR2) {
        if (!h->t0_ns) {
            h->t0_ns = now_ns();
            start_more(h);
            check_all_up(h);
        }
        return;
    }
    if (signum == SIGUSR1) {
        printf("status open=%u dropped=%u\n", h->open, h->dropped);
        fflush(stdout);
        return;
    }
    printf("done open=%u dropped=%u\n", h->open, h->dropped);
    fflush(stdout);
    /* No orderly teardown of thousands of connections: exit closes them. */
    exit(h->failed || h->dropped ? 1 : 0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal_bench_hold -p port -i key -k known_hosts [-c inflight] [-n total]\n"
               "                        [-a address]... [-s command] [-W] [-o Option=value]... [-v] user@host\n");
}

static int parse_unsigned(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v == 0 || v > 1000000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    const char *ids[SHOAL_OPT_MAX_FILES];
    const char *addrs[MAX_ADDRS];
    unsigned nids = 0, naddrs = 0;
    const char *known_hosts = NULL, *command = NULL;
    unsigned port = 22, inflight = 32, total = 1;
    int verbose = 0, wait_go = 0, opt;
    char err[600];

    while ((opt = getopt(argc, argv, "+p:i:k:c:n:a:s:Wo:vh")) != -1) {
        switch (opt) {
        case 'p':
            if (parse_unsigned(optarg, &port) || port > 65535) {
                fprintf(stderr, "shoal_bench_hold: bad port \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'i':
            if (nids == SHOAL_OPT_MAX_FILES) {
                fprintf(stderr, "shoal_bench_hold: too many -i\n");
                return 2;
            }
            ids[nids++] = optarg;
            break;
        case 'k':
            known_hosts = optarg;
            break;
        case 'c':
            if (parse_unsigned(optarg, &inflight)) {
                fprintf(stderr, "shoal_bench_hold: bad inflight count \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'n':
            if (parse_unsigned(optarg, &total)) {
                fprintf(stderr, "shoal_bench_hold: bad total \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'a':
            if (naddrs == MAX_ADDRS) {
                fprintf(stderr, "shoal_bench_hold: too many -a (at most %d)\n", MAX_ADDRS);
                return 2;
            }
            addrs[naddrs++] = optarg;
            break;
        case 's':
            command = optarg;
            break;
        case 'W':
            wait_go = 1;
            break;
        case 'o':
            if (shoal_ssh_options_apply(&o, optarg, err, sizeof(err))) {
                fprintf(stderr, "shoal_bench_hold: %s\n", err);
                return 2;
            }
            break;
        case 'v':
            verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1 || !nids || !known_hosts) {
        usage(stderr);
        return 2;
    }
    char user[256] = "", host[512];
    if (shoal_parse_destination(argv[optind], user, sizeof(user), host, sizeof(host), &port) || !*user) {
        fprintf(stderr, "shoal_bench_hold: destination must be user@host[:port], got \"%s\"\n", argv[optind]);
        return 2;
    }

    static holder h;
    h.loop = uv_default_loop();
    h.command = command;
    h.total = total;
    h.inflight_max = inflight;
    h.verbose = verbose;
    if (naddrs) {
        for (unsigned i = 0; i < naddrs; i++)
            h.targets[i].host = addrs[i];
        h.n_targets = naddrs;
    } else {
        h.targets[0].host = host;
        h.n_targets = 1;
    }
    h.per_target = (inflight + h.n_targets - 1) / h.n_targets;

    const char *kh[1] = {known_hosts};
    shoal_uv_options *uo = &h.uo;
    shoal_uv_options_init(uo);
    shoal_client_config_init(&h.uo_ssh);
    uo->ssh = &h.uo_ssh;
    uo->host = host;
    uo->port = port;
    h.uo_ssh.user = user;
    h.uo_ssh.kex_algorithms = o.kex;
    h.uo_ssh.ciphers = o.ciphers;
    h.uo_ssh.macs = o.macs;
    h.uo_ssh.hostkey_algorithms = o.hostkey_algs;
    h.uo_ssh.auth_methods = SHOAL_AUTH_PUBLICKEY;
    uo->known_hosts = kh;
    uo->n_known_hosts = 1;
    uo->hostkey_policy = SHOAL_HOSTKEY_STRICT;
    uo->agent_socket = NULL;
    uo->identity_files = ids;
    uo->n_identity_files = nids;
    uo->log_level = verbose > 1 ? verbose - 1 : 0;

    uv_signal_t sig_term, sig_int, sig_usr1, sig_usr2;
    uv_signal_init(h.loop, &sig_term);
    uv_signal_init(h.loop, &sig_int);
    uv_signal_init(h.loop, &sig_usr1);
    uv_signal_init(h.loop, &sig_usr2);
    sig_term.data = sig_int.data = sig_usr1.data = sig_usr2.data = &h;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
    uv_signal_start(&sig_usr2, on_signal, SIGUSR2);

    if (wait_go) {
        start_warm(&h);
    } else {
        h.t0_ns = now_ns();
        start_more(&h);
        check_all_up(&h);
    }
    /* Runs until a signal (or until every connection is gone). */
    uv_run(h.loop, UV_RUN_DEFAULT);
    printf("done open=%u dropped=%u\n", h.open, h.dropped);
    shoal_ssh_options_free(&o);
    return 1;
}
