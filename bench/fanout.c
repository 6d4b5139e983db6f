/* shoal_bench_fanout: many SSH connections from one process, on one libuv
 * loop, to measure what the library costs per connection without a process
 * start-up per connection.
 *
 *   shoal_bench_fanout -p port -i key -k known_hosts [-c concurrency]
 *                      [-n total] [-o Option=value]... [-v] user@host command
 *
 * Opens `total` connections to host:port, at most `concurrency` at a time.
 * Each one authenticates with the -i key only (no agent), checks the host
 * key strictly against the -k file, opens one session channel, runs
 * `command` and counts as a success when the command exits with status 0.
 * Output is discarded. One summary line goes to stdout:
 *
 *   n=200 ok=200 wall_ms=812.3 conn_per_s=246.2 cpu_ms=95.1 cpu_ms_per_conn=0.476
 *   lat_p50_ms=... lat_p90_ms=... lat_max_ms=...
 *
 * (on one line). cpu_ms is this process's own user+sys time from
 * getrusage(); latency is from starting a connection to its close being
 * reported. The exit status is 1 when any connection failed, 2 on a usage
 * error. The first few failure messages go to stderr. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "shoal/channel.h"
#include "shoal/config.h"
#include "shoal/ssh_resolve.h"
#include "shoal/uv.h"

#define MAX_REPORTED_ERRORS 5

typedef struct bench bench;

typedef struct job {
    bench *b;
    shoal_uv_conn *conn;
    shoal_channel *ch;
    unsigned index;
    int have_status;
    uint32_t status;
    int exec_refused;
    char chan_err[200];
    uint64_t t_start_ns;
} job;

struct bench {
    uv_loop_t *loop;
    shoal_uv_options uo;
    shoal_client_config uo_ssh; /* uo.ssh points here */
    const char *command;
    unsigned total, concurrency;
    unsigned started, finished, ok, running;
    unsigned errors_reported;
    int verbose;
    double *lat_ms; /* one per finished connection */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void report_error(bench *b, unsigned index, const char *what)
{
    b->errors_reported++;
    if (b->errors_reported <= MAX_REPORTED_ERRORS)
        fprintf(stderr, "shoal_bench_fanout: connection %u: %s\n", index, what);
    else if (b->errors_reported == MAX_REPORTED_ERRORS + 1)
        fprintf(stderr, "shoal_bench_fanout: (further errors not shown)\n");
}

static void start_more(bench *b);

/* ---- channel ---- */

static void on_ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    job *j = ud;
    if (err) {
        snprintf(j->chan_err, sizeof(j->chan_err), "channel open refused: %s",
                 reason ? reason : shoal_strerror(err));
        return; /* the session closes and frees the channel; on_ch_close follows */
    }
    int rc = shoal_channel_exec(ch, j->b->command);
    if (rc) {
        snprintf(j->chan_err, sizeof(j->chan_err), "exec request: %s", shoal_strerror(rc));
        shoal_channel_close(ch);
    }
}

static void on_ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    job *j = ud;
    if (strcmp(request, "exec") != 0)
        return;
    if (!ok) {
        j->exec_refused = 1;
        shoal_channel_close(ch);
        return;
    }
    /* The command gets no input. */
    shoal_channel_send_eof(ch);
}

static void on_ch_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    job *j = ud;
    (void)ch;
    if (j->b->verbose > 1)
        fwrite(data, 1, len, stream == SHOAL_STDERR ? stderr : stdout);
}

static void on_ch_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_ch_exit_status(shoal_channel *ch, uint32_t status, void *ud)
{
    job *j = ud;
    (void)ch;
    j->have_status = 1;
    j->status = status;
}

static void on_ch_exit_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    job *j = ud;
    (void)ch;
    (void)core;
    (void)msg;
    snprintf(j->chan_err, sizeof(j->chan_err), "remote command killed by signal %s", sig);
}

static void on_ch_writable(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_ch_close(shoal_channel *ch, void *ud)
{
    job *j = ud;
    (void)ch;
    j->ch = NULL;
    shoal_uv_conn_close(j->conn);
}

/* ---- connection ---- */

static void on_ready(shoal_uv_conn *c, void *ud)
{
    job *j = ud;
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
    int rc = shoal_channel_open_session(shoal_uv_conn_session(c), &cbs, j, &j->ch);
    if (rc) {
        snprintf(j->chan_err, sizeof(j->chan_err), "channel open: %s", shoal_strerror(rc));
        shoal_uv_conn_close(c);
    }
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    job *j = ud;
    bench *b = j->b;
    double ms = (double)(now_ns() - j->t_start_ns) / 1e6;
    b->lat_ms[b->finished] = ms;
    b->finished++;
    b->running--;
    if (j->have_status && j->status == 0) {
        b->ok++;
    } else {
        char what[1200];
        if (j->have_status)
            snprintf(what, sizeof(what), "command exited with status %u", (unsigned)j->status);
        else if (j->chan_err[0])
            snprintf(what, sizeof(what), "%s", j->chan_err);
        else if (j->exec_refused)
            snprintf(what, sizeof(what), "server refused to execute the command");
        else if (err)
            snprintf(what, sizeof(what), "%s", message ? message : shoal_strerror(err));
        else
            snprintf(what, sizeof(what), "closed without an exit status");
        report_error(b, j->index, what);
    }
    if (b->verbose)
        fprintf(stderr, "connection %u done in %.2f ms\n", j->index, ms);
    shoal_uv_conn_free(c);
    free(j);
    start_more(b);
}

static void on_log(shoal_uv_conn *c, int level, const char *message, void *ud)
{
    (void)c;
    (void)ud;
    fprintf(stderr, "%s%s\n", level > 0 ? "debug1: " : "", message);
}

static void start_more(bench *b)
{
    static const shoal_uv_callbacks cbs = {
        .size = sizeof(shoal_uv_callbacks), .on_ready = on_ready, .on_closed = on_closed, .log = on_log};
    while (b->started < b->total && b->running < b->concurrency) {
        job *j = calloc(1, sizeof(*j));
        if (!j) {
            fprintf(stderr, "shoal_bench_fanout: out of memory\n");
            exit(1);
        }
        j->b = b;
        j->index = b->started++;
        j->t_start_ns = now_ns();
        int rc = shoal_uv_conn_new(b->loop, &b->uo, &cbs, j, &j->conn);
        if (rc) {
            /* Counts as started and finished at once. */
            b->lat_ms[b->finished++] = 0;
            report_error(b, j->index, shoal_strerror(rc));
            free(j);
            continue;
        }
        b->running++;
        /* A failure here is reported through on_closed. */
        shoal_uv_conn_start(j->conn);
    }
}

/* ---- summary ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, unsigned n, double p)
{
    if (!n)
        return 0;
    unsigned i = (unsigned)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal_bench_fanout -p port -i key -k known_hosts [-c concurrency] [-n total]\n"
               "                          [-o Option=value]... [-v] user@host command...\n");
}

static char *join_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    char *p = s;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (i)
            *p++ = ' ';
        memcpy(p, argv[i], l);
        p += l;
    }
    *p = 0;
    return s;
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
    unsigned nids = 0;
    const char *known_hosts = NULL;
    unsigned port = 22, concurrency = 1, total = 1;
    int verbose = 0, opt;
    char err[600];

    while ((opt = getopt(argc, argv, "+p:i:k:c:n:o:vh")) != -1) {
        switch (opt) {
        case 'p':
            if (parse_unsigned(optarg, &port) || port > 65535) {
                fprintf(stderr, "shoal_bench_fanout: bad port \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'i':
            if (nids == SHOAL_OPT_MAX_FILES) {
                fprintf(stderr, "shoal_bench_fanout: too many -i\n");
                return 2;
            }
            ids[nids++] = optarg;
            break;
        case 'k':
            known_hosts = optarg;
            break;
        case 'c':
            if (parse_unsigned(optarg, &concurrency)) {
                fprintf(stderr, "shoal_bench_fanout: bad concurrency \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'n':
            if (parse_unsigned(optarg, &total)) {
                fprintf(stderr, "shoal_bench_fanout: bad total \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'o':
            if (shoal_ssh_options_apply(&o, optarg, err, sizeof(err))) {
                fprintf(stderr, "shoal_bench_fanout: %s\n", err);
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
    if (argc - optind < 2 || !nids || !known_hosts) {
        usage(stderr);
        return 2;
    }
    char user[256] = "", host[512];
    if (shoal_parse_destination(argv[optind], user, sizeof(user), host, sizeof(host), &port) || !*user) {
        fprintf(stderr, "shoal_bench_fanout: destination must be user@host[:port], got \"%s\"\n", argv[optind]);
        return 2;
    }

    bench b;
    memset(&b, 0, sizeof(b));
    b.loop = uv_default_loop();
    b.command = join_args(argc - optind - 1, argv + optind + 1);
    b.total = total;
    b.concurrency = concurrency;
    b.verbose = verbose;
    b.lat_ms = calloc(total, sizeof(double));
    if (!b.command || !b.lat_ms) {
        fprintf(stderr, "shoal_bench_fanout: out of memory\n");
        return 1;
    }

    /* The bench's fixed settings, after the user's -o (the first value of
     * an option wins): this -k file only, the -i keys only, no agent, no
     * prompts, strict host key checking. */
    char text[4200];
    const char *fixed[] = {"StrictHostKeyChecking=yes", "IdentityAgent=none", "PasswordAuthentication=no",
                           "KbdInteractiveAuthentication=no", "GlobalKnownHostsFile=none"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (shoal_ssh_options_apply(&o, fixed[i], err, sizeof(err))) {
            fprintf(stderr, "shoal_bench_fanout: %s\n", err);
            return 2;
        }
    snprintf(text, sizeof(text), "UserKnownHostsFile=%s", known_hosts);
    if (shoal_ssh_options_apply(&o, text, err, sizeof(err))) {
        fprintf(stderr, "shoal_bench_fanout: %s\n", err);
        return 2;
    }
    for (unsigned i = 0; i < nids; i++) {
        snprintf(text, sizeof(text), "IdentityFile=%s", ids[i]);
        if (shoal_ssh_options_apply(&o, text, err, sizeof(err))) {
            fprintf(stderr, "shoal_bench_fanout: %s\n", err);
            return 2;
        }
    }
    shoal_ssh_resolve_params rp;
    shoal_ssh_resolve_params_init(&rp);
    rp.user = user;
    rp.port = port;
    rp.verbose = verbose > 2 ? verbose - 2 : 0;
    shoal_ssh_resolved *resolved = NULL;
    if (shoal_ssh_resolve(&o, &rp, &resolved, err, sizeof(err)) != SHOAL_OK) {
        fprintf(stderr, "shoal_bench_fanout: %s\n", err);
        return 2;
    }
    b.uo = *shoal_ssh_resolved_conn(resolved);
    b.uo.host = host;

    double cpu0 = cpu_ms();
    uint64_t t0 = now_ns();
    start_more(&b);
    uv_run(b.loop, UV_RUN_DEFAULT);
    double wall = (double)(now_ns() - t0) / 1e6;
    double cpu = cpu_ms() - cpu0;

    qsort(b.lat_ms, b.finished, sizeof(double), cmp_double);
    printf("n=%u ok=%u wall_ms=%.1f conn_per_s=%.1f cpu_ms=%.1f cpu_ms_per_conn=%.3f "
           "lat_p50_ms=%.2f lat_p90_ms=%.2f lat_max_ms=%.2f\n",
           b.total, b.ok, wall, wall > 0 ? (double)b.total * 1e3 / wall : 0.0, cpu, cpu / (double)b.total,
           percentile(b.lat_ms, b.finished, 0.5), percentile(b.lat_ms, b.finished, 0.9),
           b.finished ? b.lat_ms[b.finished - 1] : 0.0);
    fflush(stdout);

    uv_loop_close(b.loop);
    free(b.lat_ms);
    free((char *)b.command);
    shoal_ssh_resolved_free(resolved);
    shoal_ssh_options_free(&o);
    return b.ok == b.total ? 0 : 1;
}
