/* Library-level interop check of the fan-out options of shoal_uv_options
 * against a real sshd, driven by tests/interop/shared_state.sh:
 *   - known_hosts_db: one in-memory database shared by every connection (and
 *     by every loop thread);
 *   - keys: private keys loaded once and shared (no identity_files);
 *   - agent_limiter: at most L agent connections at once per loop.
 * N connections (split over T loop threads) each run `echo ok`.
 *
 * Usage: shared_state -m accept|mismatch -p PORT -u USER -k KNOWN_HOSTS
 *                     [-n N] [-t THREADS] [-i KEYFILE]... [-a AGENT_SOCK [-l LIMIT]]
 *                     [-L LINE]   (mismatch: the line the old key is on)
 * accept:   the database starts from KNOWN_HOSTS with accept-new; every
 *           connection must succeed and the file must end up with exactly
 *           one more line, for [127.0.0.1]:PORT.
 * mismatch: KNOWN_HOSTS holds another key for the server; every connection
 *           must fail with SHOAL_ERR_HOSTKEY_MISMATCH naming KNOWN_HOSTS:LINE
 *           and never become ready.
 * Prints TAP-style lines and "N passed, M failed"; exits 1 on failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/command.h"
#include "shoal/keys.h"
#include "shoal/knownhosts.h"

static int passed, failed;

static void check(int cond, const char *what)
{
    printf("%s - %s\n", cond ? "ok" : "not ok", what);
    if (cond)
        passed++;
    else
        failed++;
}

typedef struct conn_state {
    struct loop_run *run;
    shoal_uv_conn *conn;
    shoal_child *child;
    int ready, closed, exited;
    int err;
    char msg[600];
    shoal_exit_kind kind;
    int status;
    char out[64];
} conn_state;

typedef struct loop_run {
    uv_loop_t loop;
    uv_check_t probe;
    shoal_uv_limiter *lim;
    unsigned max_in_use;
    int n;
    conn_state *cs;
} loop_run;

/* Shared by every thread (read-only once the threads start). */
static struct {
    const char *mode, *user, *kh, *agent;
    unsigned port, limit;
    int threads;
    shoal_kh_db *db;
    shoal_key **keys;
    unsigned n_keys;
} g;

static void sample(loop_run *r)
{
    if (!r->lim)
        return;
    unsigned n = shoal_uv_limiter_in_use(r->lim, NULL);
    if (n > r->max_in_use)
        r->max_in_use = n;
}

static void on_probe(uv_check_t *h)
{
    sample(h->data);
}

static void on_exit_cb(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    conn_state *s = ud;
    s->exited = 1;
    s->kind = ex->kind;
    s->status = ex->status;
    size_t n;
    const uint8_t *p = shoal_child_stdout(ch, &n);
    snprintf(s->out, sizeof(s->out), "%.*s", (int)(n < 63 ? n : 63), (const char *)p);
    shoal_uv_conn_close(s->conn);
}

static void on_ready(shoal_uv_conn *c, void *ud)
{
    conn_state *s = ud;
    s->ready = 1;
    sample(s->run);
    shoal_child_callbacks cb;
    shoal_child_callbacks_init(&cb);
    cb.on_exit = on_exit_cb;
    if (shoal_child_spawn(c, "echo ok", NULL, &cb, s, &s->child) != 0)
        shoal_uv_conn_close(c);
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    (void)c;
    conn_state *s = ud;
    s->closed = 1;
    s->err = err;
    if (message)
        snprintf(s->msg, sizeof(s->msg), "%s", message);
    sample(s->run);
}

static void *run_loop(void *p)
{
    loop_run *r = p;
    shoal_uv_options o;
    shoal_uv_options_init(&o);
    shoal_client_config o_ssh;
    shoal_client_config_init(&o_ssh);
    o.ssh = &o_ssh;
    o.host = "127.0.0.1";
    o.port = g.port;
    o_ssh.user = g.user;
    const char *kh[1] = {g.kh};
    o.known_hosts = kh; /* names only: the database does the work */
    o.n_known_hosts = 1;
    o.known_hosts_db = g.db;
    o.hostkey_policy = strcmp(g.mode, "accept") == 0 ? SHOAL_HOSTKEY_ACCEPT_NEW : SHOAL_HOSTKEY_STRICT;
    o.keys = g.keys;
    o.n_keys = g.n_keys;
    o.agent_socket = g.agent;
    o.agent_limiter = r->lim;
    o.connect_timeout_ms = 20000;
    o.kex_timeout_ms = 30000;
    o.auth_timeout_ms = 30000;
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_ready;
    cb.on_closed = on_closed;
    for (int i = 0; i < r->n; i++) {
        conn_state *s = &r->cs[i];
        s->run = r;
        if (shoal_uv_conn_new(&r->loop, &o, &cb, s, &s->conn) != 0) {
            s->closed = 1;
            s->err = -1;
            snprintf(s->msg, sizeof(s->msg), "shoal_uv_conn_new failed");
            continue;
        }
        shoal_uv_conn_start(s->conn);
        sample(r);
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *keyfiles[8];
    unsigned nkeyfiles = 0;
    int n = 50, opt, line = 0;
    g.threads = 1;
    g.limit = 2;
    while ((opt = getopt(argc, argv, "m:p:u:k:n:t:i:a:l:L:")) != -1) {
        switch (opt) {
        case 'm': g.mode = optarg; break;
        case 'p': g.port = (unsigned)atoi(optarg); break;
        case 'u': g.user = optarg; break;
        case 'k': g.kh = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 't': g.threads = atoi(optarg); break;
        case 'i':
            if (nkeyfiles < 8)
                keyfiles[nkeyfiles++] = optarg;
            break;
        case 'a': g.agent = optarg; break;
        case 'l': g.limit = (unsigned)atoi(optarg); break;
        case 'L': line = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!g.mode || !g.port || !g.user || !g.kh || n < 1 || g.threads < 1 || g.threads > 8) {
        fprintf(stderr, "usage: shared_state -m accept|mismatch -p PORT -u USER -k KNOWN_HOSTS [-n N] [-t T] "
                        "[-i KEY]... [-a AGENT_SOCK [-l LIMIT]] [-L LINE]\n");
        return 2;
    }
    int accept = strcmp(g.mode, "accept") == 0;
    int lines_before = count_lines(g.kh);

    const char *files[1] = {g.kh};
    check(shoal_kh_db_open(files, 1, &g.db) == 0, "known_hosts database opened");
    if (!g.db)
        return 1;
    g.keys = calloc(nkeyfiles ? nkeyfiles : 1, sizeof(shoal_key *));
    for (unsigned i = 0; i < nkeyfiles; i++) {
        if (shoal_key_load_private_file(keyfiles[i], NULL, &g.keys[g.n_keys]) == 0)
            g.n_keys++;
        else
            printf("# cannot load %s\n", keyfiles[i]);
    }
    check(g.n_keys == nkeyfiles, "preloaded keys loaded once");

    loop_run *runs = calloc((size_t)g.threads, sizeof(loop_run));
    conn_state *all = calloc((size_t)n, sizeof(conn_state));
    int given = 0;
    for (int t = 0; t < g.threads; t++) {
        loop_run *r = &runs[t];
        r->n = n / g.threads + (t < n % g.threads);
        r->cs = all + given;
        given += r->n;
        uv_loop_init(&r->loop);
        uv_check_init(&r->loop, &r->probe);
        r->probe.data = r;
        uv_check_start(&r->probe, on_probe);
        uv_unref((uv_handle_t *)&r->probe); /* does not keep the loop alive */
        if (g.agent && shoal_uv_limiter_new(g.limit, &r->lim) != 0)
            check(0, "agent limiter created");
    }
    pthread_t th[8];
    for (int t = 0; t < g.threads; t++)
        pthread_create(&th[t], NULL, run_loop, &runs[t]);
    for (int t = 0; t < g.threads; t++)
        pthread_join(th[t], NULL);

    int ready = 0, ran_ok = 0, mismatch_ok = 0, closed = 0, shown = 0;
    char want[700];
    snprintf(want, sizeof(want), "%s:%d", g.kh, line);
    for (int i = 0; i < n; i++) {
        conn_state *s = &all[i];
        closed += s->closed;
        ready += s->ready;
        int good_run = s->exited && s->kind == SHOAL_EXIT_STATUS && s->status == 0 && strcmp(s->out, "ok\n") == 0;
        int good_mismatch = s->err == SHOAL_ERR_HOSTKEY_MISMATCH && strstr(s->msg, want) != NULL;
        ran_ok += good_run;
        mismatch_ok += good_mismatch;
        if ((accept ? !good_run : !good_mismatch) && shown++ < 3)
            printf("# connection %d: ready=%d exited=%d kind=%d status=%d out=%s err=%d %s\n", i, s->ready,
                   s->exited, s->kind, s->status, s->out, s->err, s->msg);
    }
    char what[300];
    snprintf(what, sizeof(what), "all %d connections reported on_closed", n);
    check(closed == n, what);
    if (accept) {
        snprintf(what, sizeof(what), "%d/%d connections ran `echo ok` (shared db, preloaded keys%s, %d thread%s)",
                 ran_ok, n, g.agent ? ", agent limiter" : "", g.threads, g.threads > 1 ? "s" : "");
        check(ran_ok == n, what);
        int lines_after = count_lines(g.kh);
        snprintf(what, sizeof(what), "accept-new: exactly one line added to known_hosts (%d -> %d)", lines_before,
                 lines_after);
        check(lines_after == lines_before + 1, what);
        /* What was added is the server's key, and a new database reads it back. */
        shoal_kh_db *again = NULL;
        int known[1] = {0};
        const char *ed[1] = {"ssh-ed25519"};
        shoal_kh_db_open(files, 1, &again);
        check(again && shoal_kh_db_known_types(again, "127.0.0.1", g.port, ed, 1, known) == 0 && known[0],
              "the added line names [127.0.0.1]:PORT with an ed25519 key (read back from the file)");
        shoal_kh_db_free(again);
    } else {
        snprintf(what, sizeof(what), "%d/%d connections failed with HOSTKEY_MISMATCH naming %s", mismatch_ok, n,
                 want);
        check(mismatch_ok == n, what);
        check(ready == 0, "changed host key: no connection became ready");
        check(count_lines(g.kh) == lines_before, "changed host key: known_hosts left alone");
    }
    if (g.agent) {
        unsigned max = 0, in_use = 0, waiting = 0;
        for (int t = 0; t < g.threads; t++) {
            unsigned w;
            if (runs[t].max_in_use > max)
                max = runs[t].max_in_use;
            in_use += shoal_uv_limiter_in_use(runs[t].lim, &w);
            waiting += w;
        }
        snprintf(what, sizeof(what), "agent limiter: at most %u agent connections at once per loop (saw %u)", g.limit,
                 max);
        check(max >= 1 && max <= g.limit, what);
        check(in_use == 0 && waiting == 0, "agent limiter: every slot given back, nobody left waiting");
    }

    for (int i = 0; i < n; i++) {
        shoal_child_free(all[i].child);
        shoal_uv_conn_free(all[i].conn);
    }
    for (int t = 0; t < g.threads; t++) {
        uv_close((uv_handle_t *)&runs[t].probe, NULL);
        uv_run(&runs[t].loop, UV_RUN_DEFAULT); /* let the handles close */
        check(uv_loop_close(&runs[t].loop) == 0, "loop closed cleanly (no handle left behind)");
        shoal_uv_limiter_free(runs[t].lim);
    }
    /* The driver dropped its references: the keys are still ours to use. */
    int signed_ok = 1;
    for (unsigned i = 0; i < g.n_keys; i++) {
        char fp[128];
        signed_ok &= shoal_key_fingerprint(g.keys[i], fp, sizeof(fp)) == 0 && shoal_key_has_private(g.keys[i]);
        shoal_key_free(g.keys[i]);
    }
    if (g.n_keys)
        check(signed_ok, "preloaded keys still valid after every connection was freed");
    free(g.keys);
    shoal_kh_db_free(g.db);
    free(all);
    free(runs);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
