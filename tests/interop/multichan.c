/* Library-level interop check against a real server, driven by
 * tests/interop/openssh_channels.sh:
 *   - N concurrent session channels on ONE connection, each running its own
 *     command; every channel's stdout, stderr and exit status are checked;
 *   - the process API: stdin through shoal_child_write, a command killed by
 *     a signal (SHOAL_EXIT_SIGNAL, not an exit code), shell quoting of
 *     awkward arguments, and shoal_run's one-call form;
 *   - a connection failure is an error, never an exit status.
 * Usage: multichan PORT KEY KNOWN_HOSTS USER [N]
 * Prints TAP-style lines and a final "N passed, M failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/command.h"

static int passed, failed;

static void check(int cond, const char *what)
{
    printf("%s - %s\n", cond ? "ok" : "not ok", what);
    if (cond)
        passed++;
    else
        failed++;
}

typedef struct job {
    int index;
    shoal_child *child;
    int done;
    shoal_exit_kind kind;
    int status;
    char signal[16];
    char out[64], err[64];
} job;

typedef struct suite {
    uv_loop_t *loop;
    shoal_uv_conn *conn;
    int n;
    job *jobs;
    int finished;
    int conn_err;
    char conn_msg[512];
    /* extra children for the process API */
    job stdin_job, sig_job, quote_job, env_job, pty_job, kill_job, slow_job;
    int slow_err;
    int extra_done;
    const char *awkward;
    int kill_pending, kill_done;
    uv_timer_t kill_timer;
} suite;

static void record(job *j, shoal_child *ch, const shoal_exit *ex)
{
    j->done = 1;
    j->kind = ex->kind;
    j->status = ex->status;
    if (ex->signal)
        snprintf(j->signal, sizeof(j->signal), "%s", ex->signal);
    size_t n;
    const uint8_t *p = shoal_child_stdout(ch, &n);
    snprintf(j->out, sizeof(j->out), "%.*s", (int)(n < 63 ? n : 63), (const char *)p);
    p = shoal_child_stderr(ch, &n);
    snprintf(j->err, sizeof(j->err), "%.*s", (int)(n < 63 ? n : 63), (const char *)p);
}

static void maybe_finish(suite *su)
{
    if (su->finished == su->n && su->extra_done == 7)
        shoal_uv_conn_close(su->conn);
}

static suite *g_suite;

static void on_exit_main(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    record(ud, ch, ex);
    g_suite->finished++;
    maybe_finish(g_suite);
}

static void on_exit_extra(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    record(ud, ch, ex);
    if (ud == &g_suite->slow_job)
        g_suite->slow_err = ex->err;
    g_suite->extra_done++;
    maybe_finish(g_suite);
}

static void on_ready(shoal_uv_conn *c, void *ud)
{
    suite *su = ud;
    shoal_child_callbacks cb = {sizeof(shoal_child_callbacks), NULL, NULL, on_exit_main};
    for (int i = 0; i < su->n; i++) {
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "echo out%d; echo err%d >&2; exit %d", i, i, i % 100);
        su->jobs[i].index = i;
        if (shoal_child_spawn(c, cmd, NULL, &cb, &su->jobs[i], &su->jobs[i].child) != 0) {
            su->jobs[i].done = 1;
            su->finished++;
        }
    }
    shoal_child_callbacks xcb = {sizeof(shoal_child_callbacks), NULL, NULL, on_exit_extra};
    /* stdin: 100 KiB through the window, counted remotely. */
    if (shoal_child_spawn(c, "wc -c", NULL, &xcb, &su->stdin_job, &su->stdin_job.child) == 0) {
        static char blob[100 * 1024];
        memset(blob, 'x', sizeof(blob));
        shoal_child_write(su->stdin_job.child, blob, sizeof(blob));
        shoal_child_close_stdin(su->stdin_job.child);
    } else {
        su->extra_done++;
    }
    if (shoal_child_spawn(c, "kill -TERM $$", NULL, &xcb, &su->sig_job, &su->sig_job.child) != 0)
        su->extra_done++;
    shoal_cmdline *cl;
    shoal_cmdline_new(&cl);
    shoal_cmdline_raw(cl, "printf %s");
    shoal_cmdline_arg(cl, su->awkward);
    if (shoal_child_spawn(c, shoal_cmdline_str(cl), NULL, &xcb, &su->quote_job, &su->quote_job.child) != 0)
        su->extra_done++;
    shoal_cmdline_free(cl);
    /* env request (sshd: AcceptEnv SHOAL_*) and a pty. */
    const char *env[] = {"SHOAL_PROBE=hello env"};
    shoal_child_options eo = {.size = sizeof(shoal_child_options), .env = env, .n_env = 1};
    if (shoal_child_spawn(c, "printf %s \"$SHOAL_PROBE\"", &eo, &xcb, &su->env_job, &su->env_job.child) != 0)
        su->extra_done++;
    shoal_child_options po = {.size = sizeof(shoal_child_options), .pty = 1, .term = "vt100", .cols = 100, .rows = 40};
    if (shoal_child_spawn(c, "test -t 0 && printf '%s' \"$TERM $(stty size)\"", &po, &xcb, &su->pty_job,
                          &su->pty_job.child) != 0)
        su->extra_done++;
    /* The command deadline: an error, not an exit status. */
    shoal_child_options to = {.size = sizeof(shoal_child_options), .timeout_ms = 1000};
    if (shoal_child_spawn(c, "sleep 30", &to, &xcb, &su->slow_job, &su->slow_job.child) != 0)
        su->extra_done++;
    /* A signal delivered to a running command. */
    if (shoal_child_spawn(c, "exec sleep 30", NULL, &xcb, &su->kill_job, &su->kill_job.child) != 0) {
        su->extra_done++;
        su->kill_done = 1;
    }
    else
        su->kill_pending = 1;
}

static void on_kill_timer(uv_timer_t *t)
{
    suite *su = t->data;
    if (su->kill_pending && shoal_child_kill(su->kill_job.child, "TERM") == 0) {
        su->kill_pending = 0;
        su->kill_done = 1;
        uv_close((uv_handle_t *)t, NULL);
        return;
    }
    if (su->kill_done) {
        uv_close((uv_handle_t *)t, NULL);
        return;
    }
    uv_timer_start(t, on_kill_timer, 200, 0); /* not connected or exec not accepted yet */
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    suite *su = ud;
    (void)c;
    su->conn_err = err;
    if (message)
        snprintf(su->conn_msg, sizeof(su->conn_msg), "%s", message);
}

static void base_options(shoal_uv_options *o, shoal_client_config *sc, unsigned port, const char **kh, const char **ids,
                         const char *user)
{
    shoal_uv_options_init(o);
    shoal_client_config_init(sc);
    o->ssh = sc;
    o->host = "127.0.0.1";
    o->port = port;
    sc->user = user;
    o->known_hosts = kh;
    o->n_known_hosts = 1;
    o->hostkey_policy = SHOAL_HOSTKEY_STRICT;
    o->identity_files = ids;
    o->n_identity_files = 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: multichan PORT KEY KNOWN_HOSTS USER [N]\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    const char *ids[1] = {argv[2]};
    const char *kh[1] = {argv[3]};
    const char *user = argv[4];
    int n = argc > 5 ? atoi(argv[5]) : 100;

    suite su;
    memset(&su, 0, sizeof(su));
    g_suite = &su;
    su.loop = uv_default_loop();
    su.n = n;
    su.jobs = calloc((size_t)n, sizeof(job));
    su.awkward = "it's a \"test\" $HOME `id` \\ * ; | & \n end";
    shoal_uv_options o;
    shoal_client_config o_ssh;
    base_options(&o, &o_ssh, port, kh, ids, user);
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_ready;
    cb.on_closed = on_closed;
    uv_timer_init(su.loop, &su.kill_timer);
    su.kill_timer.data = &su;
    uv_timer_start(&su.kill_timer, on_kill_timer, 1000, 0);
    int rc = shoal_uv_conn_new(su.loop, &o, &cb, &su, &su.conn);
    check(rc == 0, "connection object created");
    shoal_uv_conn_start(su.conn);
    uv_run(su.loop, UV_RUN_DEFAULT);

    int all_ok = 1, missing = 0;
    for (int i = 0; i < n; i++) {
        job *j = &su.jobs[i];
        char want_out[32], want_err[32];
        snprintf(want_out, sizeof(want_out), "out%d\n", i);
        snprintf(want_err, sizeof(want_err), "err%d\n", i);
        if (!j->done)
            missing++;
        if (!j->done || j->kind != SHOAL_EXIT_STATUS || j->status != i % 100 || strcmp(j->out, want_out) != 0 ||
            strcmp(j->err, want_err) != 0) {
            if (all_ok)
                printf("# channel %d: done=%d kind=%d status=%d out=%s err=%s\n", i, j->done, j->kind, j->status,
                       j->out, j->err);
            all_ok = 0;
        }
        shoal_child_free(j->child);
    }
    char what[128];
    snprintf(what, sizeof(what), "%d concurrent channels on one connection: output and exit status each", n);
    check(all_ok && !missing, what);
    check(su.stdin_job.kind == SHOAL_EXIT_STATUS && su.stdin_job.status == 0 &&
              atoi(su.stdin_job.out) == 100 * 1024,
          "stdin through shoal_child_write arrives whole (100 KiB)");
    check(su.sig_job.kind == SHOAL_EXIT_SIGNAL && strcmp(su.sig_job.signal, "TERM") == 0,
          "a killed command is reported as SHOAL_EXIT_SIGNAL TERM, not as an exit code");
    check(su.quote_job.kind == SHOAL_EXIT_STATUS && strcmp(su.quote_job.out, su.awkward) == 0,
          "shoal_cmdline_arg quotes an awkward argument into exactly one word");
    check(su.env_job.kind == SHOAL_EXIT_STATUS && strcmp(su.env_job.out, "hello env") == 0,
          "env request reaches the command");
    check(su.pty_job.kind == SHOAL_EXIT_STATUS && strcmp(su.pty_job.out, "vt100 40 100") == 0,
          "pty request: a terminal with the requested TERM and size");
    if (strcmp(su.pty_job.out, "vt100 40 100") != 0)
        printf("# pty output: %s\n", su.pty_job.out);
    check(su.kill_job.kind == SHOAL_EXIT_SIGNAL && strcmp(su.kill_job.signal, "TERM") == 0,
          "shoal_child_kill delivers TERM to the remote command");
    if (su.kill_job.kind != SHOAL_EXIT_SIGNAL)
        printf("# kill job: kind=%d status=%d\n", su.kill_job.kind, su.kill_job.status);
    check(su.slow_job.kind == SHOAL_EXIT_ERROR && su.slow_err == SHOAL_ERR_TIMEOUT,
          "command deadline: reported as a timeout error, not an exit status");
    shoal_child_free(su.slow_job.child);
    shoal_child_free(su.env_job.child);
    shoal_child_free(su.pty_job.child);
    shoal_child_free(su.kill_job.child);
    shoal_child_free(su.stdin_job.child);
    shoal_child_free(su.sig_job.child);
    shoal_child_free(su.quote_job.child);
    check(su.conn_err == 0, "connection closed cleanly");
    if (su.conn_err)
        printf("# %s\n", su.conn_msg);
    shoal_uv_conn_free(su.conn);
    uv_run(su.loop, UV_RUN_DEFAULT);

    /* shoal_run: one call. */
    shoal_run_result r;
    base_options(&o, &o_ssh, port, kh, ids, user);
    rc = shoal_run(&o, "tr a-z A-Z; exit 3", "hello", 5, NULL, &r);
    check(rc == 0 && r.kind == SHOAL_EXIT_STATUS && r.status == 3 && strcmp((char *)r.out, "HELLO") == 0,
          "shoal_run: stdin, stdout and exit status 3");
    shoal_run_result_free(&r);

    /* A connection failure is an error with a message, not an exit code. */
    base_options(&o, &o_ssh, 1, kh, ids, user);
    rc = shoal_run(&o, "true", NULL, 0, NULL, &r);
    check(rc != 0 && r.kind == SHOAL_EXIT_ERROR && strstr(r.message, "connect") != NULL,
          "shoal_run: refused connection is SHOAL_EXIT_ERROR naming the stage");
    printf("# %s\n", r.message);
    shoal_run_result_free(&r);

    free(su.jobs);
    uv_loop_close(su.loop);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
