/* `shoal run` and `shoal put`: one command or one file on many hosts, for
 * people: a live progress line, output grouped by identical result (as
 * ClusterShell's clubak), failures classified, and an exit code that says
 * whether every host succeeded. --json prints the agent's Reply lines. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "commands.h"
#include "shoal/fleet.h"
#include "fleetopts.h"
#include "groupout.h"
#include "hostlist.h"
#include "nodeset.h"
#include "common/numarg.h"
#include "common/prompt.h"
#include "replyjson.h"
#include "shoal/strvis.h"
#include "shoal/version.h"

typedef struct partial {
    char *buf;
    size_t len;
} partial;

/* -I: our stdin is read once for every host; beyond this it must be a
 * file (mapped, any size). */
#define RUN_STDIN_CAP (64u << 20)

typedef struct result {
    shoal_fleet_class cls;
    int truncated;
    char *message;
    char label[96];   /* class_label() for the summary */
} result;

typedef struct run_state {
    uv_loop_t *loop;
    shoal_fleet *f;
    shoal_fleet_request *req;
    hostlist *hl;
    shoal_fleet_host *hosts;
    char **users, **hostnames;
    size_t n, next, inflight, done, failed;
    unsigned max_parallel;
    int json, stream, progress, color, is_put;
    uint64_t t0, t_end;        /* t_end: the last result (not the clean-up after it) */
    uv_timer_t progress_timer;
    uv_signal_t sigint;
    int interrupted;
    groupout *groups;
    result *results;
    partial *partials; /* --stream: incomplete lines per host and stream */
} run_state;

/* Terminal width of stderr, 0 when unknown. */
static unsigned term_cols(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

static void progress_line(run_state *st, int final)
{
    if (!st->progress)
        return;
    double secs = (double)(uv_hrtime() - st->t0) / 1e9;
    char line[200];
    int n = snprintf(line, sizeof(line), "[shoal] %zu/%zu done  %zu failed  %zu running  %.0f hosts/s", st->done,
                     st->n, st->failed, st->inflight, secs > 0 ? (double)st->done / secs : 0.0);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    /* A line as wide as the terminal wraps, and "\r" then returns to the
     * start of its last row only: each update would leave a stale row.
     * Cut it to one column less than the width (asked each time: the
     * window may be resized). */
    unsigned cols = term_cols();
    if (cols && (unsigned)n >= cols)
        n = cols > 1 ? (int)cols - 1 : 0;
    fprintf(stderr, "\r\033[K%.*s", n, line);
    if (final)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

static void on_progress(uv_timer_t *t)
{
    progress_line(t->data, 0);
}

static void pump(run_state *st);
static void class_label(shoal_fleet_class cls, const char *phase, int status, const char *signal, int name_signal,
                        char *buf, size_t sz);

/* Ctrl-C: hosts not started are cancelled, running ones stopped; each still
 * gets its result and the summary is printed. A second Ctrl-C exits now. */
static void on_sigint(uv_signal_t *h, int sig)
{
    run_state *st = h->data;
    (void)sig;
    if (st->interrupted++) {
        fprintf(stderr, "\nshoal: interrupted\n");
        _exit(130);
    }
    if (st->progress)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "shoal: interrupted: stopping %zu running host(s); Ctrl-C again to quit at once\n", st->inflight);
    while (st->next < st->n) {
        result *r = &st->results[st->next++];
        r->cls = SHOAL_FLEET_FAIL_CANCELLED;
        class_label(r->cls, "queued", 0, NULL, 0, r->label, sizeof(r->label));
        r->message = strdup("cancelled before it started");
        st->done++;
        st->failed++;
    }
    shoal_fleet_stop(st->f, st->req, SHOAL_FLEET_STOP_CANCEL);
    if (st->done == st->n)
        uv_stop(st->loop);
}

static void pump(run_state *st)
{
    while (st->next < st->n && (!st->max_parallel || st->inflight < st->max_parallel)) {
        size_t i = st->next++;
        if (shoal_fleet_submit(st->f, st->req, &st->hosts[i], i) == 0) {
            st->inflight++;
        } else {
            st->results[i].cls = SHOAL_FLEET_FAIL_LOCAL;
            st->results[i].message = strdup("out of memory");
            st->done++;
            st->failed++;
        }
    }
}

/* Prints complete lines of streamed output as "host: line". */
static void stream_out(run_state *st, size_t idx, int stream, const uint8_t *d, size_t n, int flush)
{
    partial *p = &st->partials[idx * 2 + (stream == SHOAL_STDERR)];
    FILE *f = stream == SHOAL_STDERR ? stderr : stdout;
    const char *name = hostlist_get(st->hl, idx);
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\n') {
            if (st->progress)
                fputs("\r\033[K", stderr);
            fprintf(f, "%s: %.*s\n", name, (int)p->len, p->buf ? p->buf : "");
            p->len = 0;
            continue;
        }
        char *nb = realloc(p->buf, p->len + 1);
        if (!nb)
            continue;
        p->buf = nb;
        p->buf[p->len++] = (char)d[i];
    }
    if (flush && p->len) {
        fprintf(f, "%s: %.*s\n", name, (int)p->len, p->buf);
        p->len = 0;
    }
}

/* How a host ended, as group labels and summary lines show it. The summary
 * counts signals together under their class; groups name the signal. */
static void class_label(shoal_fleet_class cls, const char *phase, int status, const char *signal, int name_signal,
                        char *buf, size_t sz)
{
    if (cls == SHOAL_FLEET_OK)
        buf[0] = 0;
    else if (cls == SHOAL_FLEET_FAIL_EXIT)
        snprintf(buf, sz, "exit status %d", status);
    else if (cls == SHOAL_FLEET_FAIL_SIGNAL && name_signal)
        snprintf(buf, sz, "killed by signal %s", signal);
    else if (cls == SHOAL_FLEET_FAIL_TIMEOUT)
        snprintf(buf, sz, "timeout during %s", phase ? phase : "?");
    else
        snprintf(buf, sz, "%s (%s)", shoal_fleet_class_name(cls), phase ? phase : "?");
}

/* msg without a leading "host: " or "host:port: " (or "[host]:port: "):
 * --stream puts the host name first already. */
static const char *without_host(const char *msg, const char *host)
{
    size_t hl = strlen(host);
    const char *p = msg;
    if (p[0] == '[' && !strncmp(p + 1, host, hl) && p[1 + hl] == ']')
        p += hl + 2;
    else if (!strncmp(p, host, hl))
        p += hl;
    else
        return msg;
    if (p[0] == ':' && p[1] >= '0' && p[1] <= '9') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p[0] == ':' && p[1] == ' ' ? p + 2 : msg;
}

/* A host's output as its group shows it: stdout as is, then, marked, what
 * was cut and stderr (kept after stdout, but never mistaken for it). Hosts
 * group by all of it. */
typedef struct outbuf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} outbuf;

static void ob_put(outbuf *b, const void *d, size_t n)
{
    if (b->failed || !n)
        return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void ob_line_end(outbuf *b)
{
    if (b->len && b->p[b->len - 1] != '\n')
        ob_put(b, "\n", 1);
}

static void ob_cut_marker(outbuf *b, const char *stream, size_t kept, uint64_t total)
{
    char m[200];
    int n = snprintf(m, sizeof(m), "--- %s truncated: kept the first %zu of %llu bytes (--output-cap) ---\n", stream,
                     kept, (unsigned long long)total);
    ob_line_end(b);
    ob_put(b, m, n > 0 ? (size_t)n : 0);
}

static void group_output(const shoal_fleet_event *ev, outbuf *b)
{
    ob_put(b, ev->out, ev->out_len);
    if (ev->truncated & SHOAL_FLEET_TRUNC_STDOUT)
        ob_cut_marker(b, "stdout", ev->out_len, ev->out_total);
    if (ev->err_len || (ev->truncated & SHOAL_FLEET_TRUNC_STDERR)) {
        ob_line_end(b);
        ob_put(b, "--- stderr ---\n", 15);
        ob_put(b, ev->errout, ev->err_len);
        if (ev->truncated & SHOAL_FLEET_TRUNC_STDERR)
            ob_cut_marker(b, "stderr", ev->err_len, ev->err_total);
    }
}

static void on_event(shoal_fleet *f, shoal_fleet_event *ev, void *ud)
{
    run_state *st = ud;
    (void)f;
    if (ev->type == SHOAL_FLEET_EV_OUTPUT) {
        stream_out(st, ev->index, ev->stream, ev->data, ev->len, 0);
    } else if (ev->type == SHOAL_FLEET_EV_RESULT) {
        st->inflight--;
        st->done++;
        result *r = &st->results[ev->index];
        r->cls = ev->cls;
        r->truncated = ev->truncated;
        class_label(ev->cls, ev->phase, ev->status, ev->signal, 0, r->label, sizeof(r->label));
        if (ev->cls != SHOAL_FLEET_OK) {
            st->failed++;
            r->message = ev->message ? strdup(ev->message) : NULL;
        }
        const char *name = hostlist_get(st->hl, ev->index);
        if (st->stream) {
            stream_out(st, ev->index, SHOAL_STDOUT, NULL, 0, 1);
            stream_out(st, ev->index, SHOAL_STDERR, NULL, 0, 1);
        }
        if (st->json) {
            replyjson_emit(stdout, replyjson_reply(ev, name, NULL, 0));
        } else if (!st->stream) {
            char label[200];
            class_label(ev->cls, ev->phase, ev->status, ev->signal, 1, label, sizeof(label));
            outbuf b = {NULL, 0, 0, 0};
            group_output(ev, &b);
            if (b.failed)
                fprintf(stderr, "shoal: %s: out of memory for its output\n", name);
            else
                groupout_add(st->groups, name, b.p, b.len, label[0] ? label : NULL);
            free(b.p);
        } else if (ev->cls != SHOAL_FLEET_OK) {
            if (st->progress)
                fputs("\r\033[K", stderr);
            char vis[4096];
            const char *msg = ev->message ? without_host(ev->message, st->hostnames[ev->index])
                                          : shoal_fleet_class_name(ev->cls);
            fprintf(stderr, "%s: %s\n", name, shoal_vis(vis, sizeof(vis), msg));
        }
        pump(st);
        if (st->done == st->n) {
            st->t_end = uv_hrtime();
            uv_timer_stop(&st->progress_timer);
            uv_close((uv_handle_t *)&st->progress_timer, NULL);
            uv_stop(st->loop); /* the fleet's handles stay until shoal_fleet_free */
        }
    }
    shoal_fleet_event_free(ev);
}

/* "1 MiB", "64 KiB", or bytes. */
static void size_text(uint64_t v, char *buf, size_t sz)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, sz, "%llu %s", (unsigned long long)v, units[u]);
}

/* Failures by class and phase, with the hosts folded and one example. */
static void summary(run_state *st, FILE *f)
{
    double secs = (double)((st->t_end ? st->t_end : uv_hrtime()) - st->t0) / 1e9;
    const char *bold = st->color ? "\033[1m" : "", *red = st->color ? "\033[31m" : "",
               *reset = st->color ? "\033[0m" : "";
    fprintf(f, "%s%zu hosts in %.2f s: %zu ok, %zu failed%s\n", bold, st->n, secs, st->n - st->failed, st->failed,
            reset);
    const char **names = calloc(st->n ? st->n : 1, sizeof(char *));
    if (!names)
        return;
    /* One line per label, in order of first appearance. */
    for (size_t i = 0; i < st->n && st->failed; i++) {
        result *r = &st->results[i];
        if (r->cls == SHOAL_FLEET_OK)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = st->results[j].cls != SHOAL_FLEET_OK && !strcmp(st->results[j].label, r->label);
        if (seen)
            continue;
        size_t cnt = 0;
        const char *example = NULL;
        for (size_t j = i; j < st->n; j++) {
            result *q = &st->results[j];
            if (q->cls == SHOAL_FLEET_OK || strcmp(q->label, r->label))
                continue;
            names[cnt++] = hostlist_get(st->hl, j);
            if (!example)
                example = q->message;
        }
        char *folded = nodeset_fold(names, cnt);
        fprintf(f, "  %s%s%s: %zu: %s\n", red, r->label, reset, cnt, folded ? folded : "?");
        if (example && r->cls != SHOAL_FLEET_FAIL_EXIT)
            fprintf(f, "    e.g. %s\n", example);
        free(folded);
    }
    /* Output cut at the cap is never silent. */
    size_t cnt = 0;
    for (size_t i = 0; i < st->n; i++)
        if (st->results[i].truncated)
            names[cnt++] = hostlist_get(st->hl, i);
    if (cnt) {
        char *folded = nodeset_fold(names, cnt);
        char cap[64];
        size_text(shoal_fleet_request_output_cap(st->req), cap, sizeof(cap));
        fprintf(f, "  output truncated at %s per stream (--output-cap SIZE keeps more): %zu: %s\n", cap, cnt,
                folded ? folded : "?");
        free(folded);
    }
    free(names);
}

static int ask_tty(const char *path, char *buf, size_t sz, void *ud)
{
    int batch = *(int *)ud;
    char prompt[4200];
    snprintf(prompt, sizeof(prompt), "Enter passphrase for key '%s': ", path);
    return prompt_secret(prompt, 0, batch, buf, sz);
}

static void warn_stderr(const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "shoal: %s\n", msg);
}

static void usage(FILE *f, int put)
{
    if (put)
        fprintf(f, "usage: shoal put [host options] [--mode MODE] [--via sftp|scp|cat] [--verify] [--inplace]\n"
                   "                 [--rate RATE] [--host-rate RATE] local remote\n"
                   "       shoal put [host options] [--via ...] --clean-temp [--older-than TIME] remote-dir\n"
                   "                 (removes temporary files .NAME.shoal-<16 hex> that a killed upload left,\n"
                   "                 last modified longer ago than TIME, default 1d)\n");
    else
        fprintf(f, "usage: shoal run [host options] [--json] [--stream] [--output-cap SIZE]\n"
                   "                 [--stdin FILE | -I] [--] command...\n");
    fprintf(f, "host options:\n"
               "  -H host[,host]...   hosts ([user@]host[:port], ranges like web[01-40]); repeatable\n"
               "  -w host[,host]...   the same, as pdsh: an item ^file reads a hosts file\n"
               "  -x host[,host]...   leave these hosts out (as pdsh)\n"
               "  -h file             hosts file (one per line, # comments)\n"
               "  -l user             login name (default: the user running shoal, as ssh)\n"
               "  -p port             default port (22)\n"
               "  -i key              private key (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa); repeatable\n"
               "  -o Option=value     OpenSSH-style option; repeatable\n"
               "  -t TIME             deadline per host, from connect to the end (30, 1.5, 30s, 5m, 1h30m;\n"
               "                      default 0: none); the command is sent TERM, then KILL\n"
               "  -m, --max-parallel N  hosts in progress at once (default 0: all)\n"
               "  --threads N         worker threads, 1 to 64 (default: one per CPU; the first takes\n"
               "                      the hosts alone until its core is saturated)\n"
               "  --no-progress       no progress line on a terminal\n");
    if (put)
        fprintf(f, "upload options:\n"
                   "  --mode MODE         permission bits in octal (default: the source's)\n"
                   "  --via sftp|scp|cat  force a transport (default: SFTP, else SCP, else cat)\n"
                   "  --verify            compare the sha256 of the remote file before the rename\n"
                   "  --rate RATE         total bandwidth cap (10M, 500k, 1G: bytes/s, powers of 1024)\n"
                   "  --host-rate RATE    cap per host\n");
    else
        fprintf(f, "command options:\n"
                   "  --json              one JSON Reply line per host (docs/AGENT.md)\n"
                   "  --stream            lines as they arrive, prefixed with the host\n"
                   "  --output-cap SIZE   keep this much of stdout and of stderr per host\n"
                   "                      (default 1M; 64k, 10M, 1G: powers of 1024); cut output is marked\n"
                   "  --stdin FILE        send FILE to every host's command, then EOF\n"
                   "  -I                  send our stdin to every host's command (read once, at most\n"
                   "                      64 MiB unless it is a regular file), then EOF\n"
                   "without --stdin or -I the command's stdin is closed at once.\n");
}

/* Usage error naming the flag: exit code 2. */
static int bad_arg(const char *flag, const char *value, const char *want)
{
    fprintf(stderr, "shoal: %s %s: %s\n", flag, value, want);
    return 2;
}

/* -w, as pdsh: comma-separated items, each a host pattern or ^file. */
static int add_pdsh_hosts(hostlist *hl, const char *arg, char *err, size_t errsz)
{
    char *copy = strdup(arg);
    if (!copy) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    int rc = 0, depth = 0;
    char *item = copy;
    for (char *p = copy;; p++) {
        if (*p == '[')
            depth++;
        else if (*p == ']' && depth > 0)
            depth--;
        if (*p && (*p != ',' || depth > 0))
            continue;
        int last = !*p;
        *p = 0;
        if (item[0] == '^') {
            rc = hostlist_add_file(hl, item + 1, err, errsz);
        } else if (item[0]) {
            rc = hostlist_add_arg(hl, item);
            if (rc)
                snprintf(err, errsz, "%s", hostlist_error(hl));
        }
        if (rc || last)
            break;
        item = p + 1;
    }
    free(copy);
    return rc;
}

static int run_main(int argc, char **argv, int put)
{
    static uv_loop_t loop;
    run_state st;
    memset(&st, 0, sizeof(st));
    st.is_put = put;
    fleetopts o;
    fleetopts_init(&o);
    st.hl = hostlist_new(HOSTLIST_DEFAULT_MAX);
    char err[1024];
    uint64_t timeout_ms = 0, out_cap = 1u << 20;
    unsigned workers = 0;
    int no_progress = 0, verify = 0, stdin_ours = 0, loop_ready = 0, inplace = 0, clean = 0;
    uint64_t older_ms = 86400000;
    const char *stdin_file = NULL;
    shoal_fleet_xfer via = SHOAL_FLEET_XFER_AUTO;
    uint64_t rate = 0, host_rate = 0, num;
    uint32_t mode = 0;
    int have_mode = 0;
    char **excludes = NULL;
    size_t n_excludes = 0;
    enum {
        O_JSON = 256, O_STREAM, O_NOPROG, O_MODE, O_VIA, O_VERIFY, O_RATE, O_HRATE, O_HELP, O_THREADS, O_CAP,
        O_STDIN, O_INPLACE, O_CLEAN, O_OLDER
    };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, O_JSON},           {"stream", no_argument, NULL, O_STREAM},
        {"no-progress", no_argument, NULL, O_NOPROG},  {"max-parallel", required_argument, NULL, 'm'},
        {"mode", required_argument, NULL, O_MODE},     {"via", required_argument, NULL, O_VIA},
        {"verify", no_argument, NULL, O_VERIFY},       {"rate", required_argument, NULL, O_RATE},
        {"host-rate", required_argument, NULL, O_HRATE}, {"help", no_argument, NULL, O_HELP},
        {"threads", required_argument, NULL, O_THREADS}, {"output-cap", required_argument, NULL, O_CAP},
        {"stdin", required_argument, NULL, O_STDIN},   {"inplace", no_argument, NULL, O_INPLACE},
        {"clean-temp", no_argument, NULL, O_CLEAN},    {"older-than", required_argument, NULL, O_OLDER},
        {"version", no_argument, NULL, 'V'},           {NULL, 0, NULL, 0}};
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+H:h:w:x:l:p:i:o:t:m:I", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            if (hostlist_add_arg(st.hl, optarg) != 0) {
                fprintf(stderr, "shoal: -H %s: %s\n", optarg, hostlist_error(st.hl));
                goto done;
            }
            break;
        case 'w':
            if (add_pdsh_hosts(st.hl, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "shoal: -w %s: %s\n", optarg, err);
                goto done;
            }
            break;
        case 'x': {
            char **nx = realloc(excludes, (n_excludes + 1) * sizeof(*nx));
            if (!nx)
                goto done;
            excludes = nx;
            excludes[n_excludes++] = optarg;
            break;
        }
        case 'h':
            if (hostlist_add_file(st.hl, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "shoal: %s\n", err);
                goto done;
            }
            break;
        case 'l':
            free(o.user);
            o.user = strdup(optarg);
            break;
        case 'p': {
            char tmp[64];
            snprintf(tmp, sizeof(tmp), "Port=%s", optarg);
            if (numarg_uint(optarg, 1, 65535, &num) != 0 ||
                shoal_ssh_options_apply(&o.ssh, tmp, err, sizeof(err)) != 0) {
                rc = bad_arg("-p", optarg, "expected a port number from 1 to 65535");
                goto done;
            }
            break;
        }
        case 'i':
            if (o.n_extra_keys < SHOAL_OPT_MAX_FILES)
                o.extra_keys[o.n_extra_keys++] = strdup(optarg);
            break;
        case 'o':
            if (shoal_ssh_options_apply(&o.ssh, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "shoal: %s\n", err);
                goto done;
            }
            break;
        case 't':
            if (numarg_duration_ms(optarg, &timeout_ms) != 0) {
                rc = bad_arg("-t", optarg, "expected a duration such as 30, 1.5, 30s, 5m or 1h30m");
                goto done;
            }
            break;
        case 'm':
            if (numarg_uint(optarg, 0, 100000000, &num) != 0) {
                rc = bad_arg("-m", optarg, "expected a number of hosts (0: all at once)");
                goto done;
            }
            st.max_parallel = (unsigned)num;
            break;
        case O_THREADS:
            if (numarg_uint(optarg, 1, 64, &num) != 0) {
                rc = bad_arg("--threads", optarg, "expected a number of worker threads from 1 to 64");
                goto done;
            }
            workers = (unsigned)num;
            break;
        case O_JSON:
            st.json = 1;
            break;
        case O_STREAM:
            st.stream = 1;
            break;
        case O_NOPROG:
            no_progress = 1;
            break;
        case O_MODE:
            if (numarg_mode(optarg, &mode) != 0) {
                rc = bad_arg("--mode", optarg, "expected permission bits in octal, 0 to 7777 (e.g. 0644)");
                goto done;
            }
            have_mode = 1;
            break;
        case O_VIA:
            if (!strcmp(optarg, "sftp"))
                via = SHOAL_FLEET_XFER_SFTP;
            else if (!strcmp(optarg, "scp"))
                via = SHOAL_FLEET_XFER_SCP;
            else if (!strcmp(optarg, "cat"))
                via = SHOAL_FLEET_XFER_CAT;
            else {
                rc = bad_arg("--via", optarg, "expected sftp, scp or cat");
                goto done;
            }
            break;
        case O_VERIFY:
            verify = 1;
            break;
        case O_INPLACE:
            inplace = 1;
            break;
        case O_CLEAN:
            clean = 1;
            break;
        case O_OLDER:
            if (numarg_duration_ms(optarg, &older_ms) != 0) {
                rc = bad_arg("--older-than", optarg, "expected a duration such as 0, 3600, 30m, 12h or 2d");
                goto done;
            }
            break;
        case O_RATE:
        case O_HRATE:
            if (numarg_size(optarg, 1, c == O_RATE ? &rate : &host_rate) != 0) {
                rc = bad_arg(c == O_RATE ? "--rate" : "--host-rate", optarg,
                             "expected bytes per second such as 500k, 10M or 1G (powers of 1024; 0: no cap)");
                goto done;
            }
            break;
        case O_CAP:
            if (numarg_size(optarg, 0, &out_cap) != 0 || out_cap > SIZE_MAX / 4) {
                rc = bad_arg("--output-cap", optarg, "expected a size such as 64k, 1M or 1G (powers of 1024)");
                goto done;
            }
            break;
        case O_STDIN:
            stdin_file = optarg;
            break;
        case 'I':
            stdin_ours = 1;
            break;
        case O_HELP:
            usage(stdout, put);
            rc = 0;
            goto done;
        case 'V': /* --version */
            printf("shoal %s\n", shoal_version());
            rc = 0;
            goto done;
        default:
            usage(stderr, put);
            goto done;
        }
    }
    for (size_t i = 0; i < n_excludes; i++) {
        if (hostlist_exclude(st.hl, excludes[i]) != 0) {
            fprintf(stderr, "shoal: -x %s: %s\n", excludes[i], hostlist_error(st.hl));
            goto done;
        }
    }
    if (put && (stdin_file || stdin_ours)) {
        fprintf(stderr, "shoal: --stdin and -I are for shoal run\n");
        goto done;
    }
    if (stdin_file && stdin_ours) {
        fprintf(stderr, "shoal: --stdin and -I cannot be used together\n");
        goto done;
    }
    int nargs = argc - optind;
    if (hostlist_count(st.hl) == 0 || (put ? nargs != (clean ? 1 : 2) : nargs < 1) || (clean && !put)) {
        if (hostlist_count(st.hl) == 0)
            fprintf(stderr, "shoal: no hosts%s\n", n_excludes ? " left after -x" : " (-H, -w or -h)");
        usage(stderr, put);
        goto done;
    }
    st.n = hostlist_count(st.hl);
    /* The user, when neither -l nor -o User gives one: as ssh, the login
     * name of the real uid, never $USER or $LOGNAME (the resolver's rule). */
    int batch = o.ssh.batch_mode == 1;
    if (fleetopts_prepare(&o, SHOAL_HOSTKEY_ACCEPT_NEW, ask_tty, &batch, warn_stderr, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        rc = 1;
        goto done;
    }
    if (timeout_ms && o.ssh.connect_timeout_s < 0) {
        if (timeout_ms < 30000) {
            o.conn.connect_timeout_ms = o.conn.banner_timeout_ms = o.conn.kex_timeout_ms = timeout_ms;
            o.conn.auth_timeout_ms = timeout_ms;
        }
    }
    o.cfg.workers = workers;
    o.cfg.no_connected_events = 1;
    signal(SIGPIPE, SIG_IGN);
    shoal_fleet_raise_fd_limit();
    /* The event loop first: without file descriptors for it nothing can
     * run, and the user is told so (it used to crash). */
    if (shoal_fleet_check_fds(workers, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        rc = 1;
        goto done;
    }
    int urc = uv_loop_init(&loop);
    if (urc != 0) {
        fprintf(stderr, "shoal: cannot create the event loop: %s%s\n", uv_strerror(urc),
                urc == UV_EMFILE ? " (raise the open files limit, ulimit -n)" : "");
        rc = 1;
        goto done;
    }
    loop_ready = 1;
    st.loop = &loop;

    st.req = shoal_fleet_request_new(put ? SHOAL_FLEET_UPLOAD : SHOAL_FLEET_EXEC);
    st.hosts = calloc(st.n, sizeof(shoal_fleet_host));
    st.users = calloc(st.n, sizeof(char *));
    st.hostnames = calloc(st.n, sizeof(char *));
    st.results = calloc(st.n, sizeof(result));
    st.partials = st.stream ? calloc(st.n * 2, sizeof(partial)) : NULL;
    st.groups = groupout_new();
    if (!st.req || !st.hosts || !st.users || !st.hostnames || !st.results || !st.groups ||
        (st.stream && !st.partials)) {
        fprintf(stderr, "shoal: out of memory\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < st.n; i++) {
        const char *spec = hostlist_get(st.hl, i);
        char u[256] = "", h[1024];
        unsigned port = 0;
        if (shoal_parse_destination(spec, u, sizeof(u), h, sizeof(h), &port) != 0) {
            fprintf(stderr, "shoal: invalid host \"%s\" (expected [user@]host[:port] or [v6]:port)\n", spec);
            goto done;
        }
        st.users[i] = *u ? strdup(u) : NULL;
        st.hostnames[i] = strdup(h);
        st.hosts[i].spec = spec;
        st.hosts[i].user = st.users[i];
        st.hosts[i].host = st.hostnames[i];
        st.hosts[i].port = port;
    }
    shoal_fleet_request_set_host_timeout(st.req, timeout_ms);
    shoal_fleet_request_set_stream(st.req, st.stream);
    shoal_fleet_request_set_output_cap(st.req, (size_t)out_cap);
    int set = SHOAL_OK;
    if (put && clean) {
        set = shoal_fleet_request_set_clean_temp(st.req, older_ms / 1000);
        if (!set)
            set = shoal_fleet_request_set_target(st.req, argv[optind]);
        if (!set)
            set = shoal_fleet_request_set_xfer(st.req, via);
    } else if (put) {
        shoal_fleet_source *src = NULL;
        if (shoal_fleet_source_open(argv[optind], &src, err, sizeof(err)) != 0) {
            fprintf(stderr, "shoal: %s\n", err);
            goto done;
        }
        set = shoal_fleet_request_set_source(st.req, src);
        if (!set)
            set = shoal_fleet_request_set_target(st.req, argv[optind + 1]);
        if (!set && have_mode)
            set = shoal_fleet_request_set_mode(st.req, mode);
        if (!set)
            set = shoal_fleet_request_set_inplace(st.req, inplace);
        if (!set)
            set = shoal_fleet_request_set_xfer(st.req, via);
        if (!set)
            set = shoal_fleet_request_set_verify(st.req, verify);
        if (!set)
            set = shoal_fleet_request_set_host_rate(st.req, host_rate);
        if (!set)
            set = shoal_fleet_request_set_total_rate(st.req, rate);
    } else {
        shoal_fleet_source *input = NULL;
        if ((stdin_file || stdin_ours) &&
            shoal_fleet_source_open_input(stdin_file, RUN_STDIN_CAP, &input, err, sizeof(err)) != 0) {
            fprintf(stderr, "shoal: %s%s\n", stdin_file ? "--stdin: " : "-I: ", err);
            goto done;
        }
        if (input)
            set = shoal_fleet_request_set_input(st.req, input);
        /* Arguments are joined with spaces, as ssh does: the remote shell
         * parses the result. */
        size_t len = 1;
        for (int i = optind; i < argc; i++)
            len += strlen(argv[i]) + 1;
        char *command = calloc(1, len);
        if (!command)
            goto done;
        for (int i = optind; i < argc; i++) {
            if (i > optind)
                strcat(command, " ");
            strcat(command, argv[i]);
        }
        if (!set)
            set = shoal_fleet_request_set_command(st.req, command);
        free(command);
    }
    if (set) {
        fprintf(stderr, "shoal: %s\n", shoal_strerror(set));
        goto done;
    }
    st.progress = !no_progress && !st.json && isatty(2);
    st.color = isatty(1);
    /* Results are collected in batches instead of waking this thread once
     * per host: every 25 ms for what is shown as it happens (the progress
     * line, --stream, --json lines), every second when only the final
     * report needs them (a run that waits on slow servers would otherwise
     * wake 40 times a second for nothing). The last outstanding result
     * wakes it at once either way. -m refills its window from results, so
     * it takes them at once. */
    o.cfg.event_delay_ms = st.max_parallel ? 0 : (st.progress || st.stream || st.json) ? 25 : 1000;
    urc = uv_signal_init(st.loop, &st.sigint);
    if (urc != 0) {
        fprintf(stderr, "shoal: cannot watch for Ctrl-C: %s\n", uv_strerror(urc));
        rc = 1;
        goto done;
    }
    st.sigint.data = &st;
    if (shoal_fleet_new(st.loop, &o.cfg, on_event, &st, &st.f, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: cannot start the workers: %s\n", err);
        uv_close((uv_handle_t *)&st.sigint, NULL);
        rc = 1;
        goto done;
    }
    st.t0 = uv_hrtime();
    uv_timer_init(st.loop, &st.progress_timer);
    st.progress_timer.data = &st;
    if (st.progress)
        uv_timer_start(&st.progress_timer, on_progress, 200, 200);
    else
        uv_unref((uv_handle_t *)&st.progress_timer);
    uv_signal_start(&st.sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&st.sigint);
    pump(&st);
    if (st.done == st.n && !uv_is_closing((uv_handle_t *)&st.progress_timer))
        uv_close((uv_handle_t *)&st.progress_timer, NULL);
    else
        uv_run(st.loop, UV_RUN_DEFAULT);
    progress_line(&st, 1);
    /* The report first: stopping the workers may wait for commands that
     * ignore TERM (KILL comes after SHOAL_FLEET_KILL_GRACE_MS). */
    if (!st.json && !st.stream)
        groupout_print(st.groups, stdout, st.color);
    if (!st.json)
        summary(&st, st.stream ? stderr : stdout);
    fflush(stdout);
    fflush(stderr);
    uv_close((uv_handle_t *)&st.sigint, NULL);
    shoal_fleet_free(st.f);
    st.f = NULL;
    uv_run(st.loop, UV_RUN_DEFAULT);
    rc = st.interrupted ? 130 : st.failed ? 1 : 0;
done:
    if (st.f)
        shoal_fleet_free(st.f);
    if (loop_ready) {
        uv_run(&loop, UV_RUN_DEFAULT); /* handles closed on the way out */
        uv_loop_close(&loop);
    }
    for (size_t i = 0; i < st.n; i++) {
        if (st.users)
            free(st.users[i]);
        if (st.hostnames)
            free(st.hostnames[i]);
        if (st.results)
            free(st.results[i].message);
        if (st.partials) {
            free(st.partials[2 * i].buf);
            free(st.partials[2 * i + 1].buf);
        }
    }
    free(st.users);
    free(st.hostnames);
    free(st.hosts);
    free(st.results);
    free(st.partials);
    free(excludes);
    if (st.groups)
        groupout_free(st.groups);
    if (st.req)
        shoal_fleet_request_unref(st.req); /* frees the source with the last reference */
    hostlist_free(st.hl);
    fleetopts_free(&o);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    return run_main(argc, argv, 0);
}

int cmd_put(int argc, char **argv)
{
    return run_main(argc, argv, 1);
}
