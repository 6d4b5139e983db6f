/* `shoal run` and `shoal put`: one command or one file on many hosts, for
 * people: a live progress line, output grouped by identical result (as
 * ClusterShell's clubak), failures classified, and an exit code that says
 * whether every host succeeded. --json prints the agent's Reply lines. */
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
#include "common/prompt.h"
#include "replyjson.h"
#include "run_args.h"
#include "shoal/strvis.h"

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
    int batch;                 /* BatchMode: no passphrase questions */
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

/* ---- parse (run_args.c), prepare, run, cleanup ---- */

/* The run's event loop (st->loop once it is open). */
static uv_loop_t run_loop;

/* Keys (passphrases are asked here, before any host is dialled) and
 * known_hosts, then the fleet's settings from the flags. RUN_GO_ON or 1
 * (said). */
static int prepare_settings(run_state *st, run_args *a)
{
    char err[1024];
    /* The user, when neither -l nor -o User gives one: as ssh, the login
     * name of the real uid, never $USER or $LOGNAME (the resolver's rule). */
    st->batch = a->opts.ssh.batch_mode == 1;
    if (fleetopts_prepare(&a->opts, SHOAL_HOSTKEY_ACCEPT_NEW, ask_tty, &st->batch, warn_stderr, NULL, err,
                          sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return 1;
    }
    shoal_fleet_config *cfg = &a->opts.cfg;
    if (a->timeout_ms && a->opts.ssh.connect_timeout_s < 0) {
        if (a->timeout_ms < 30000) {
            a->opts.conn.connect_timeout_ms = a->opts.conn.banner_timeout_ms = a->opts.conn.kex_timeout_ms = a->timeout_ms;
            a->opts.conn.auth_timeout_ms = a->timeout_ms;
        }
    }
    cfg->workers = a->workers;
    cfg->no_connected_events = 1;
    return RUN_GO_ON;
}

/* The event loop first: without file descriptors for it nothing can run,
 * and the user is told so (it used to crash). RUN_GO_ON or 1 (said). */
static int open_loop(run_state *st, unsigned workers)
{
    char err[1024];
    signal(SIGPIPE, SIG_IGN);
    shoal_fleet_raise_fd_limit();
    if (shoal_fleet_check_fds(workers, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return 1;
    }
    int urc = uv_loop_init(&run_loop);
    if (urc != 0) {
        fprintf(stderr, "shoal: cannot create the event loop: %s%s\n", uv_strerror(urc),
                urc == UV_EMFILE ? " (raise the open files limit, ulimit -n)" : "");
        return 1;
    }
    st->loop = &run_loop;
    return RUN_GO_ON;
}

/* The request and each host's entry. RUN_GO_ON, 1 (out of memory) or 2
 * (a host that is not [user@]host[:port]), said. */
static int prepare_hosts(run_state *st)
{
    st->req = shoal_fleet_request_new(st->is_put ? SHOAL_FLEET_UPLOAD : SHOAL_FLEET_EXEC);
    st->hosts = calloc(st->n, sizeof(shoal_fleet_host));
    st->users = calloc(st->n, sizeof(char *));
    st->hostnames = calloc(st->n, sizeof(char *));
    st->results = calloc(st->n, sizeof(result));
    st->partials = st->stream ? calloc(st->n * 2, sizeof(partial)) : NULL;
    st->groups = groupout_new();
    if (!st->req || !st->hosts || !st->users || !st->hostnames || !st->results || !st->groups ||
        (st->stream && !st->partials)) {
        fprintf(stderr, "shoal: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < st->n; i++) {
        const char *spec = hostlist_get(st->hl, i);
        char u[256] = "", h[1024];
        unsigned port = 0;
        if (shoal_parse_destination(spec, u, sizeof(u), h, sizeof(h), &port) != 0) {
            fprintf(stderr, "shoal: invalid host \"%s\" (expected [user@]host[:port] or [v6]:port)\n", spec);
            return 2;
        }
        st->users[i] = *u ? strdup(u) : NULL;
        st->hostnames[i] = strdup(h);
        st->hosts[i].spec = spec;
        st->hosts[i].user = st->users[i];
        st->hosts[i].host = st->hostnames[i];
        st->hosts[i].port = port;
    }
    return RUN_GO_ON;
}

/* A request setting the library refused (set != SHOAL_OK): 2, said. */
static int request_set_result(int set)
{
    if (set == SHOAL_OK)
        return RUN_GO_ON;
    fprintf(stderr, "shoal: %s\n", shoal_strerror(set));
    return 2;
}

/* put --clean-temp remote-dir. RUN_GO_ON or 2 (said). */
static int set_clean_temp(shoal_fleet_request *req, const run_args *a)
{
    int set = shoal_fleet_request_set_clean_temp(req, a->older_ms / 1000);
    if (!set)
        set = shoal_fleet_request_set_target(req, a->operands[0]);
    if (!set)
        set = shoal_fleet_request_set_xfer(req, a->via);
    return request_set_result(set);
}

/* put local remote: the source is opened here. RUN_GO_ON or 2 (said). */
static int set_upload(shoal_fleet_request *req, const run_args *a)
{
    char err[1024];
    shoal_fleet_source *src = NULL;
    if (shoal_fleet_source_open(a->operands[0], &src, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return 2;
    }
    int set = shoal_fleet_request_set_source(req, src);
    if (!set)
        set = shoal_fleet_request_set_target(req, a->operands[1]);
    if (!set && a->have_mode)
        set = shoal_fleet_request_set_mode(req, a->mode);
    if (!set)
        set = shoal_fleet_request_set_inplace(req, a->inplace);
    if (!set)
        set = shoal_fleet_request_set_xfer(req, a->via);
    if (!set)
        set = shoal_fleet_request_set_verify(req, a->verify);
    if (!set)
        set = shoal_fleet_request_set_host_rate(req, a->host_rate);
    if (!set)
        set = shoal_fleet_request_set_total_rate(req, a->rate);
    return request_set_result(set);
}

/* Arguments are joined with spaces, as ssh does: the remote shell parses
 * the result. NULL when out of memory. */
static char *join_operands(const run_args *a)
{
    size_t len = 1;
    for (int i = 0; i < a->n_operands; i++)
        len += strlen(a->operands[i]) + 1;
    char *command = calloc(1, len);
    if (!command)
        return NULL;
    for (int i = 0; i < a->n_operands; i++) {
        if (i > 0)
            strcat(command, " ");
        strcat(command, a->operands[i]);
    }
    return command;
}

/* run command...: --stdin FILE or -I are opened (-I: read) here. RUN_GO_ON
 * or 2 (said, but for out of memory). */
static int set_command(shoal_fleet_request *req, const run_args *a)
{
    char err[1024];
    int set = SHOAL_OK;
    shoal_fleet_source *input = NULL;
    if ((a->stdin_file || a->stdin_ours) &&
        shoal_fleet_source_open_input(a->stdin_file, RUN_STDIN_CAP, &input, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s%s\n", a->stdin_file ? "--stdin: " : "-I: ", err);
        return 2;
    }
    if (input)
        set = shoal_fleet_request_set_input(req, input);
    char *command = join_operands(a);
    if (!command)
        return 2;
    if (!set)
        set = shoal_fleet_request_set_command(req, command);
    free(command);
    return request_set_result(set);
}

/* What every host is to do. RUN_GO_ON or 2 (said). */
static int prepare_request(run_state *st, const run_args *a)
{
    shoal_fleet_request_set_host_timeout(st->req, a->timeout_ms);
    shoal_fleet_request_set_stream(st->req, st->stream);
    shoal_fleet_request_set_output_cap(st->req, (size_t)a->out_cap);
    if (a->put && a->clean)
        return set_clean_temp(st->req, a);
    if (a->put)
        return set_upload(st->req, a);
    return set_command(st->req, a);
}

/* How results are shown, the watch for Ctrl-C and the fleet (its worker
 * threads start here). RUN_GO_ON or 1 (said). */
static int prepare_fleet(run_state *st, run_args *a)
{
    char err[1024];
    st->progress = !a->no_progress && !st->json && isatty(2);
    st->color = isatty(1);
    /* Results are collected in batches instead of waking this thread once
     * per host: every 25 ms for what is shown as it happens (the progress
     * line, --stream, --json lines), every second when only the final
     * report needs them (a run that waits on slow servers would otherwise
     * wake 40 times a second for nothing). The last outstanding result
     * wakes it at once either way. -m refills its window from results, so
     * it takes them at once. */
    a->opts.cfg.event_delay_ms = st->max_parallel ? 0 : (st->progress || st->stream || st->json) ? 25 : 1000;
    int urc = uv_signal_init(st->loop, &st->sigint);
    if (urc != 0) {
        fprintf(stderr, "shoal: cannot watch for Ctrl-C: %s\n", uv_strerror(urc));
        return 1;
    }
    st->sigint.data = st;
    if (shoal_fleet_new(st->loop, &a->opts.cfg, on_event, st, &st->f, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: cannot start the workers: %s\n", err);
        uv_close((uv_handle_t *)&st->sigint, NULL);
        return 1;
    }
    return RUN_GO_ON;
}

/* Everything that can fail before the first host is dialled. RUN_GO_ON,
 * or the exit code (said); run_cleanup frees what was made either way. */
static int run_prepare(run_state *st, run_args *a)
{
    memset(st, 0, sizeof(*st));
    st->is_put = a->put;
    st->hl = a->hosts;
    st->n = hostlist_count(a->hosts);
    st->max_parallel = a->max_parallel;
    st->json = a->json;
    st->stream = a->stream;
    int code = prepare_settings(st, a);
    if (code == RUN_GO_ON)
        code = open_loop(st, a->workers);
    if (code == RUN_GO_ON)
        code = prepare_hosts(st);
    if (code == RUN_GO_ON)
        code = prepare_request(st, a);
    if (code == RUN_GO_ON)
        code = prepare_fleet(st, a);
    return code;
}

/* The grouped output and the summary. They come before the workers stop:
 * stopping them may wait for commands that ignore TERM (KILL comes after
 * SHOAL_FLEET_KILL_GRACE_MS). */
static void print_report(run_state *st)
{
    if (!st->json && !st->stream)
        groupout_print(st->groups, stdout, st->color);
    if (!st->json)
        summary(st, st->stream ? stderr : stdout);
    fflush(stdout);
    fflush(stderr);
}

/* Starts the hosts (the progress line with them), waits for every result,
 * prints the report and stops the fleet. The exit code: 0 when every host
 * succeeded, 1 when one failed, 130 after Ctrl-C. */
static int run_until_done(run_state *st)
{
    st->t0 = uv_hrtime();
    uv_timer_init(st->loop, &st->progress_timer);
    st->progress_timer.data = st;
    if (st->progress)
        uv_timer_start(&st->progress_timer, on_progress, 200, 200);
    else
        uv_unref((uv_handle_t *)&st->progress_timer);
    uv_signal_start(&st->sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&st->sigint);
    pump(st);
    if (st->done == st->n && !uv_is_closing((uv_handle_t *)&st->progress_timer))
        uv_close((uv_handle_t *)&st->progress_timer, NULL);
    else
        uv_run(st->loop, UV_RUN_DEFAULT);
    progress_line(st, 1);
    print_report(st);
    uv_close((uv_handle_t *)&st->sigint, NULL);
    shoal_fleet_free(st->f);
    st->f = NULL;
    uv_run(st->loop, UV_RUN_DEFAULT);
    return st->interrupted ? 130 : st->failed ? 1 : 0;
}

/* Frees what run_prepare made (in any state it left) and a. */
static void run_cleanup(run_state *st, run_args *a)
{
    if (st->f)
        shoal_fleet_free(st->f);
    if (st->loop) {
        uv_run(st->loop, UV_RUN_DEFAULT); /* handles closed on the way out */
        uv_loop_close(st->loop);
    }
    for (size_t i = 0; i < st->n; i++) {
        if (st->users)
            free(st->users[i]);
        if (st->hostnames)
            free(st->hostnames[i]);
        if (st->results)
            free(st->results[i].message);
        if (st->partials) {
            free(st->partials[2 * i].buf);
            free(st->partials[2 * i + 1].buf);
        }
    }
    free(st->users);
    free(st->hostnames);
    free(st->hosts);
    free(st->results);
    free(st->partials);
    if (st->groups)
        groupout_free(st->groups);
    if (st->req)
        shoal_fleet_request_unref(st->req); /* frees the source with the last reference */
    run_args_free(a);
}

static int run_or_put(int argc, char **argv, int put)
{
    run_args args;
    int code = run_parse(argc, argv, put, &args);
    if (code != RUN_GO_ON)
        return code;
    run_state st;
    code = run_prepare(&st, &args);
    if (code == RUN_GO_ON)
        code = run_until_done(&st);
    run_cleanup(&st, &args);
    return code;
}

int cmd_run(int argc, char **argv)
{
    return run_or_put(argc, argv, 0);
}

int cmd_put(int argc, char **argv)
{
    return run_or_put(argc, argv, 1);
}
