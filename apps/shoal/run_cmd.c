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
#include <unistd.h>

#include "commands.h"
#include "fleet.h"
#include "ratelimit.h"
#include "fleetopts.h"
#include "groupout.h"
#include "hostlist.h"
#include "nodeset.h"
#include "prompt.h"
#include "replyjson.h"
#include "shoal/strvis.h"

typedef struct partial {
    char *buf;
    size_t len;
} partial;

typedef struct result {
    fleet_class cls;
    char *message;
    char label[96];   /* class_label() for the summary */
} result;

typedef struct run_state {
    uv_loop_t *loop;
    fleet *f;
    fleet_request *req;
    hostlist *hl;
    fleet_host *hosts;
    char **users, **hostnames;
    size_t n, next, inflight, done, failed;
    unsigned max_parallel;
    int json, stream, progress, color, is_put;
    uint64_t t0;
    uv_timer_t progress_timer;
    uv_signal_t sigint;
    int interrupted;
    groupout *groups;
    result *results;
    partial *partials; /* --stream: incomplete lines per host and stream */
} run_state;

static void progress_line(run_state *st, int final)
{
    if (!st->progress)
        return;
    double secs = (double)(uv_hrtime() - st->t0) / 1e9;
    fprintf(stderr, "\r\033[K[shoal] %zu/%zu done  %zu failed  %zu running  %.0f hosts/s", st->done, st->n,
            st->failed, st->inflight, secs > 0 ? (double)st->done / secs : 0.0);
    if (final)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

static void on_progress(uv_timer_t *t)
{
    progress_line(t->data, 0);
}

static void pump(run_state *st);
static void class_label(fleet_class cls, const char *phase, int status, const char *signal, int name_signal,
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
        r->cls = FLEET_FAIL_CANCELLED;
        class_label(r->cls, "queued", 0, NULL, 0, r->label, sizeof(r->label));
        r->message = strdup("cancelled before it started");
        st->done++;
        st->failed++;
    }
    fleet_stop(st->f, st->req, FLEET_STOP_CANCEL);
    if (st->done == st->n)
        uv_stop(st->loop);
}

static void pump(run_state *st)
{
    while (st->next < st->n && (!st->max_parallel || st->inflight < st->max_parallel)) {
        size_t i = st->next++;
        if (fleet_submit(st->f, st->req, &st->hosts[i], i) == 0) {
            st->inflight++;
        } else {
            st->results[i].cls = FLEET_FAIL_LOCAL;
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
static void class_label(fleet_class cls, const char *phase, int status, const char *signal, int name_signal,
                        char *buf, size_t sz)
{
    if (cls == FLEET_OK)
        buf[0] = 0;
    else if (cls == FLEET_FAIL_EXIT)
        snprintf(buf, sz, "exit status %d", status);
    else if (cls == FLEET_FAIL_SIGNAL && name_signal)
        snprintf(buf, sz, "killed by signal %s", signal);
    else if (cls == FLEET_FAIL_TIMEOUT)
        snprintf(buf, sz, "timeout during %s", phase ? phase : "?");
    else
        snprintf(buf, sz, "%s (%s)", fleet_class_name(cls), phase ? phase : "?");
}

static void on_event(fleet *f, fleet_event *ev, void *ud)
{
    run_state *st = ud;
    (void)f;
    if (ev->type == FLEET_EV_OUTPUT) {
        stream_out(st, ev->index, ev->stream, ev->data, ev->len, 0);
    } else if (ev->type == FLEET_EV_RESULT) {
        st->inflight--;
        st->done++;
        result *r = &st->results[ev->index];
        r->cls = ev->cls;
        class_label(ev->cls, ev->phase, ev->status, ev->signal, 0, r->label, sizeof(r->label));
        if (ev->cls != FLEET_OK) {
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
            /* stdout then stderr, as a terminal would show them. */
            size_t tot = ev->out_len + ev->err_len;
            uint8_t *both = malloc(tot ? tot : 1);
            if (both) {
                if (ev->out_len)
                    memcpy(both, ev->out, ev->out_len);
                if (ev->err_len)
                    memcpy(both + ev->out_len, ev->errout, ev->err_len);
                groupout_add(st->groups, name, both, tot, label[0] ? label : NULL);
                free(both);
            }
        } else if (ev->cls != FLEET_OK) {
            if (st->progress)
                fputs("\r\033[K", stderr);
            char vis[4096];
            fprintf(stderr, "%s: %s\n", name,
                    ev->message ? shoal_vis(vis, sizeof(vis), ev->message) : fleet_class_name(ev->cls));
        }
        pump(st);
        if (st->done == st->n) {
            uv_timer_stop(&st->progress_timer);
            uv_close((uv_handle_t *)&st->progress_timer, NULL);
            uv_stop(st->loop); /* the fleet's handles stay until fleet_free */
        }
    }
    fleet_event_free(ev);
}

/* Failures by class and phase, with the hosts folded and one example. */
static void summary(run_state *st, FILE *f)
{
    double secs = (double)(uv_hrtime() - st->t0) / 1e9;
    const char *bold = st->color ? "\033[1m" : "", *red = st->color ? "\033[31m" : "",
               *reset = st->color ? "\033[0m" : "";
    fprintf(f, "%s%zu hosts in %.2f s: %zu ok, %zu failed%s\n", bold, st->n, secs, st->n - st->failed, st->failed,
            reset);
    if (!st->failed)
        return;
    const char **names = calloc(st->n, sizeof(char *));
    if (!names)
        return;
    /* One line per label, in order of first appearance. */
    for (size_t i = 0; i < st->n; i++) {
        result *r = &st->results[i];
        if (r->cls == FLEET_OK)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = st->results[j].cls != FLEET_OK && !strcmp(st->results[j].label, r->label);
        if (seen)
            continue;
        size_t cnt = 0;
        const char *example = NULL;
        for (size_t j = i; j < st->n; j++) {
            result *q = &st->results[j];
            if (q->cls == FLEET_OK || strcmp(q->label, r->label))
                continue;
            names[cnt++] = hostlist_get(st->hl, j);
            if (!example)
                example = q->message;
        }
        char *folded = nodeset_fold(names, cnt);
        fprintf(f, "  %s%s%s: %zu: %s\n", red, r->label, reset, cnt, folded ? folded : "?");
        if (example && r->cls != FLEET_FAIL_EXIT)
            fprintf(f, "    e.g. %s\n", example);
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
                   "                 [--rate BYTES/S] [--host-rate BYTES/S] local remote\n"
                   "       shoal put [host options] [--via ...] --clean-temp [--older-than SECONDS] remote-dir\n"
                   "                 (removes temporary files .NAME.shoal-<16 hex> that a killed upload left,\n"
                   "                 older than SECONDS, default 86400)\n");
    else
        fprintf(f, "usage: shoal run [host options] [--json] [--stream] [--] command...\n");
    fprintf(f, "host options:\n"
               "  -H host[,host]...   hosts ([user@]host[:port], ranges like web[01-40]); repeatable\n"
               "  -h file             hosts file (one per line, # comments)\n"
               "  -l user             login name (default $LOGNAME, then $USER)\n"
               "  -p port             default port (22)\n"
               "  -i key              private key (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa); repeatable\n"
               "  -o Option=value     OpenSSH-style option; repeatable\n"
               "  -t seconds          deadline per host, from connect to the end (default none)\n"
               "  -m, --max-parallel N  hosts in progress at once (default 0: all)\n"
               "  -w N                worker threads (default: one per CPU; the first takes\n"
               "                      the hosts alone until its core is saturated)\n"
               "  --no-progress       no progress line on a terminal\n");
}

static int run_main(int argc, char **argv, int put)
{
    run_state st;
    memset(&st, 0, sizeof(st));
    st.is_put = put;
    fleetopts o;
    fleetopts_init(&o);
    st.hl = hostlist_new(HOSTLIST_DEFAULT_MAX);
    char err[1024];
    double tsec = 0;
    unsigned workers = 0;
    int no_progress = 0, verify = 0, inplace = 0, clean = 0;
    double older = 86400;
    fleet_xfer via = FLEET_XFER_AUTO;
    uint64_t rate = 0, host_rate = 0;
    long mode = -1;
    enum { O_JSON = 256, O_STREAM, O_NOPROG, O_MODE, O_VIA, O_VERIFY, O_RATE, O_HRATE, O_HELP, O_INPLACE, O_CLEAN,
           O_OLDER };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, O_JSON},           {"stream", no_argument, NULL, O_STREAM},
        {"no-progress", no_argument, NULL, O_NOPROG},  {"max-parallel", required_argument, NULL, 'm'},
        {"mode", required_argument, NULL, O_MODE},     {"via", required_argument, NULL, O_VIA},
        {"verify", no_argument, NULL, O_VERIFY},       {"rate", required_argument, NULL, O_RATE},
        {"host-rate", required_argument, NULL, O_HRATE}, {"help", no_argument, NULL, O_HELP},
        {"inplace", no_argument, NULL, O_INPLACE},     {"clean-temp", no_argument, NULL, O_CLEAN},
        {"older-than", required_argument, NULL, O_OLDER},
        {NULL, 0, NULL, 0}};
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+H:h:l:p:i:o:t:m:w:", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            if (hostlist_add_arg(st.hl, optarg) != 0) {
                fprintf(stderr, "shoal: -H %s: %s\n", optarg, hostlist_error(st.hl));
                goto done;
            }
            break;
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
            if (shoal_ssh_options_apply(&o.ssh, tmp, err, sizeof(err)) != 0) {
                fprintf(stderr, "shoal: %s\n", err);
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
            tsec = strtod(optarg, NULL);
            break;
        case 'm':
            st.max_parallel = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            workers = (unsigned)strtoul(optarg, NULL, 10);
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
            mode = strtol(optarg, NULL, 8) & 07777;
            break;
        case O_VIA:
            via = !strcmp(optarg, "sftp") ? FLEET_XFER_SFTP
                  : !strcmp(optarg, "scp") ? FLEET_XFER_SCP
                  : !strcmp(optarg, "cat") ? FLEET_XFER_CAT
                                           : FLEET_XFER_AUTO;
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
        case O_OLDER: {
            char *end;
            older = strtod(optarg, &end);
            if (end == optarg || *end || older < 0) {
                fprintf(stderr, "shoal: --older-than %s: not a number of seconds\n", optarg);
                goto done;
            }
            break;
        }
        case O_RATE:
            rate = strtoull(optarg, NULL, 10);
            break;
        case O_HRATE:
            host_rate = strtoull(optarg, NULL, 10);
            break;
        case O_HELP:
            usage(stdout, put);
            rc = 0;
            goto done;
        default:
            usage(stderr, put);
            goto done;
        }
    }
    int nargs = argc - optind;
    if (hostlist_count(st.hl) == 0 || (put ? nargs != (clean ? 1 : 2) : nargs < 1) || (clean && !put)) {
        usage(stderr, put);
        goto done;
    }
    st.n = hostlist_count(st.hl);
    int batch = o.ssh.batch_mode == 1;
    if (fleetopts_prepare(&o, SHOAL_HOSTKEY_ACCEPT_NEW, ask_tty, &batch, warn_stderr, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        goto done;
    }
    if (tsec > 0 && o.ssh.connect_timeout_s < 0) {
        uint64_t ms = (uint64_t)(tsec * 1000);
        if (ms < 30000) {
            o.cfg.conn.connect_timeout_ms = o.cfg.conn.banner_timeout_ms = o.cfg.conn.kex_timeout_ms = ms;
            o.cfg.conn.auth_timeout_ms = ms;
        }
    }
    o.cfg.workers = workers;
    o.cfg.no_connected_events = 1;
    signal(SIGPIPE, SIG_IGN);
    fleet_raise_fd_limit();

    st.req = fleet_request_new(put ? FLEET_UPLOAD : FLEET_EXEC);
    st.hosts = calloc(st.n, sizeof(fleet_host));
    st.users = calloc(st.n, sizeof(char *));
    st.hostnames = calloc(st.n, sizeof(char *));
    st.results = calloc(st.n, sizeof(result));
    st.partials = st.stream ? calloc(st.n * 2, sizeof(partial)) : NULL;
    st.groups = groupout_new();
    if (!st.req || !st.hosts || !st.users || !st.hostnames || !st.results || !st.groups ||
        (st.stream && !st.partials)) {
        fprintf(stderr, "shoal: out of memory\n");
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
    st.req->host_timeout_ms = tsec > 0 ? (uint64_t)(tsec * 1000) : 0;
    st.req->stream = st.stream;
    st.req->out_cap = 1u << 20;
    if (put && clean) {
        st.req->clean_temp = 1;
        st.req->clean_age_s = (uint64_t)older;
        st.req->target = strdup(argv[optind]);
        st.req->xfer = via;
    } else if (put) {
        if (fleet_source_open(argv[optind], &st.req->source, err, sizeof(err)) != 0) {
            fprintf(stderr, "shoal: %s\n", err);
            goto done;
        }
        st.req->target = strdup(argv[optind + 1]);
        st.req->mode = mode >= 0 ? (uint32_t)mode : 0;
        st.req->mode_given = mode >= 0;
        st.req->inplace = inplace;
        st.req->xfer = via;
        st.req->verify = verify;
        st.req->host_rate = host_rate;
    } else {
        /* Arguments are joined with spaces, as ssh does: the remote shell
         * parses the result. */
        size_t len = 1;
        for (int i = optind; i < argc; i++)
            len += strlen(argv[i]) + 1;
        st.req->command = calloc(1, len);
        if (!st.req->command)
            goto done;
        for (int i = optind; i < argc; i++) {
            if (i > optind)
                strcat(st.req->command, " ");
            strcat(st.req->command, argv[i]);
        }
    }
    st.loop = uv_default_loop();
    if (put && rate) {
        st.req->global_rate = calloc(1, sizeof(fleet_bucket));
        if (st.req->global_rate)
            fleet_bucket_init(st.req->global_rate, rate, 1, uv_now(st.loop));
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
    if (fleet_new(st.loop, &o.cfg, on_event, &st, &st.f) != 0) {
        fprintf(stderr, "shoal: cannot start the workers\n");
        goto done;
    }
    st.t0 = uv_hrtime();
    uv_timer_init(st.loop, &st.progress_timer);
    st.progress_timer.data = &st;
    if (st.progress)
        uv_timer_start(&st.progress_timer, on_progress, 200, 200);
    else
        uv_unref((uv_handle_t *)&st.progress_timer);
    uv_signal_init(st.loop, &st.sigint);
    st.sigint.data = &st;
    uv_signal_start(&st.sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&st.sigint);
    pump(&st);
    if (st.done == st.n && !uv_is_closing((uv_handle_t *)&st.progress_timer))
        uv_close((uv_handle_t *)&st.progress_timer, NULL);
    else
        uv_run(st.loop, UV_RUN_DEFAULT);
    progress_line(&st, 1);
    uv_close((uv_handle_t *)&st.sigint, NULL);
    fleet_free(st.f);
    st.f = NULL;
    uv_run(st.loop, UV_RUN_DEFAULT);
    if (!st.json && !st.stream)
        groupout_print(st.groups, stdout, st.color);
    if (!st.json)
        summary(&st, st.stream ? stderr : stdout);
    fflush(stdout);
    rc = st.interrupted ? 130 : st.failed ? 1 : 0;
done:
    if (st.f)
        fleet_free(st.f);
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
    if (st.groups)
        groupout_free(st.groups);
    if (st.req)
        fleet_request_unref(st.req); /* frees the source with the last reference */
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
