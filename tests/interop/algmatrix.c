/* Library-level interop check: the FULL algorithm product against a real
 * server, in one process, driven by tests/interop/openssh_algmatrix*.sh.
 *
 *   kex (9) x host key algorithm (7) x cipher (6) x MAC (6, non-AEAD only)
 *   = 9 x 7 x (3 AEAD + 3 CTR x 6 MACs) = 1323 connections
 *
 * Every connection offers exactly one algorithm of each kind (the defaults
 * for the MAC when the cipher is AEAD), checks the host key strictly against
 * KNOWN_HOSTS, logs in with KEY, runs `echo ok`, checks stdout "ok\n" and
 * exit status 0, and checks that shoal_session_algorithm() reports exactly
 * what was asked for (MAC "" for AEAD ciphers). CONCURRENCY connections run
 * at a time on one uv loop.
 *
 * Usage: interop_algmatrix PORT KEY KNOWN_HOSTS USER [CONCURRENCY]
 *
 * Environment (all optional, comma lists):
 *   SHOAL_MATRIX_KEX      only these key exchanges (to split the run)
 *   SHOAL_MATRIX_HOSTKEY  only these host key algorithms
 *   SHOAL_MATRIX_SERVER_KEX, _SERVER_HOSTKEY, _SERVER_CIPHERS, _SERVER_MACS:
 *                         what the server has enabled (sshd -T); combinations
 *                         using anything else are skipped with a reason
 *                         instead of failing.
 *
 * Output: one TAP line per (kex x host key) group summarising its
 * connections, a "# FAIL ..." line for every failing combination with the
 * error, a summary (wall time, combinations per second) and the final
 * "N passed, M failed" line, where N and M count groups. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/command.h"

static const char *const KEX[] = {
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha1",
};
static const char *const HOSTKEY[] = {
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-256", "rsa-sha2-512",       "ssh-rsa",
};
static const char *const CIPHER[] = {
    "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    "aes128-ctr",                    "aes192-ctr",             "aes256-ctr",
};
static const char *const MAC[] = {
    "hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1",     "hmac-sha1-etm@openssh.com",
};
#define N_KEX (sizeof(KEX) / sizeof(KEX[0]))
#define N_HOSTKEY (sizeof(HOSTKEY) / sizeof(HOSTKEY[0]))
#define N_CIPHER (sizeof(CIPHER) / sizeof(CIPHER[0]))
#define N_MAC (sizeof(MAC) / sizeof(MAC[0]))
#define N_GROUP (N_KEX * N_HOSTKEY)
/* Connections per (kex x host key) group: AEAD ciphers once, others x MACs. */
#define MAX_PER_GROUP (N_CIPHER * N_MAC)

#define COMMAND "echo ok"
#define WANT_OUT "ok\n"

static int is_aead(const char *cipher)
{
    return strcmp(cipher, "chacha20-poly1305@openssh.com") == 0 || strstr(cipher, "-gcm@openssh.com") != NULL;
}

/* Is name an element of the comma list? NULL list = everything. */
static int in_list(const char *list, const char *name)
{
    if (!list)
        return 1;
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

typedef enum job_state { J_PENDING = 0, J_SKIPPED, J_RUNNING, J_DONE } job_state;

struct matrix;

typedef struct job {
    struct matrix *m;
    int group;
    const char *kex, *hostkey, *cipher, *mac; /* mac NULL for AEAD ciphers */
    job_state state;
    shoal_uv_conn *conn;
    shoal_child *child;
    int got_exit;
    int failed;
    char error[768];
    uint64_t t_start, t_end;
    struct job *next_reap;
} job;

typedef struct group {
    int total, finished, passed, failed, skipped;
    uint64_t ns_sum, ns_max;
} group;

typedef struct matrix {
    uv_loop_t *loop;
    shoal_uv_options base;
    shoal_client_config base_ssh; /* base.ssh points here */
    job *jobs;
    int njobs;
    int next;     /* next job to start */
    int running;
    int concurrency;
    group groups[N_GROUP];
    int next_print;
    int tap_no;
    int groups_passed, groups_failed;
    int conns_passed, conns_failed, conns_skipped;
    uv_timer_t reaper;
    job *reap_list;
} matrix;

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

__attribute__((format(printf, 2, 3))) static void job_fail(job *j, const char *fmt, ...)
{
    if (j->failed)
        return;
    j->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof(j->error), fmt, ap);
    va_end(ap);
}

static void describe(const job *j, char *out, size_t outsz)
{
    snprintf(out, outsz, "kex=%s hostkey=%s cipher=%s mac=%s", j->kex, j->hostkey, j->cipher,
             j->mac ? j->mac : "(aead)");
}

/* Prints the TAP lines of every group whose connections are all finished,
 * in group order. */
static void print_groups(matrix *m)
{
    while (m->next_print < (int)N_GROUP) {
        group *g = &m->groups[m->next_print];
        if (g->finished + g->skipped < g->total)
            return;
        if (g->total > 0 && g->skipped < g->total) {
            const char *kex = KEX[m->next_print / N_HOSTKEY];
            const char *hk = HOSTKEY[m->next_print % N_HOSTKEY];
            int ran = g->total - g->skipped;
            double avg = ran ? (double)g->ns_sum / ran / 1e6 : 0.0;
            char skipped[64] = "";
            if (g->skipped)
                snprintf(skipped, sizeof(skipped), ", %d skipped", g->skipped);
            m->tap_no++;
            printf("%s %d - kex=%s hostkey=%s: %d/%d connections ok%s (avg %.0f ms, max %.0f ms)\n",
                   g->failed ? "not ok" : "ok", m->tap_no, kex, hk, g->passed, ran, skipped, avg,
                   (double)g->ns_max / 1e6);
            if (g->failed)
                m->groups_failed++;
            else
                m->groups_passed++;
        } else if (g->total > 0) {
            m->tap_no++;
            printf("ok %d - kex=%s hostkey=%s # SKIP all %d combinations: not enabled by the server\n", m->tap_no,
                   KEX[m->next_print / N_HOSTKEY], HOSTKEY[m->next_print % N_HOSTKEY], g->total);
        }
        m->next_print++;
    }
    fflush(stdout);
}

static void start_jobs(matrix *m);

/* Runs on the next loop iteration after connections ended: frees them
 * outside of any shoal callback and starts the next ones. */
static void on_reap(uv_timer_t *t)
{
    matrix *m = t->data;
    job *list = m->reap_list;
    m->reap_list = NULL;
    while (list) {
        job *j = list;
        list = j->next_reap;
        shoal_child_free(j->child);
        j->child = NULL;
        shoal_uv_conn_free(j->conn);
        j->conn = NULL;
    }
    start_jobs(m);
}

static void job_finished(job *j)
{
    matrix *m = j->m;
    if (j->state == J_DONE)
        return;
    j->state = J_DONE;
    j->t_end = now_ns();
    m->running--;
    group *g = &m->groups[j->group];
    uint64_t ns = j->t_end - j->t_start;
    g->finished++;
    g->ns_sum += ns;
    if (ns > g->ns_max)
        g->ns_max = ns;
    if (j->failed) {
        char d[256];
        describe(j, d, sizeof(d));
        printf("# FAIL %s: %s\n", d, j->error);
        g->failed++;
        m->conns_failed++;
    } else {
        g->passed++;
        m->conns_passed++;
    }
    print_groups(m);
}

static void schedule_reap(job *j)
{
    matrix *m = j->m;
    j->next_reap = m->reap_list;
    m->reap_list = j;
    uv_timer_start(&m->reaper, on_reap, 0, 0);
}

static void on_exit_cb(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    job *j = ud;
    j->got_exit = 1;
    size_t olen = 0, elen = 0;
    const uint8_t *out = shoal_child_stdout(ch, &olen);
    const uint8_t *err = shoal_child_stderr(ch, &elen);
    char outs[96], errs[160];
    snprintf(outs, sizeof(outs), "%.*s", (int)(olen < 80 ? olen : 80), out ? (const char *)out : "");
    snprintf(errs, sizeof(errs), "%.*s", (int)(elen < 150 ? elen : 150), err ? (const char *)err : "");
    switch (ex->kind) {
    case SHOAL_EXIT_ERROR:
        job_fail(j, "command failed: %s", ex->message ? ex->message : shoal_strerror(ex->err));
        break;
    case SHOAL_EXIT_SIGNAL:
        job_fail(j, "command killed by signal %s", ex->signal ? ex->signal : "?");
        break;
    case SHOAL_EXIT_NONE:
        job_fail(j, "the server closed the channel without an exit status");
        break;
    case SHOAL_EXIT_STATUS:
        if (ex->status != 0) {
            job_fail(j, "command exited with status %d; stderr: %s", ex->status, errs);
        }
        break;
    }
    if (!j->failed && (olen != strlen(WANT_OUT) || memcmp(out, WANT_OUT, olen) != 0))
        job_fail(j, "stdout is \"%s\", want \"ok\\n\"; stderr: %s", outs, errs);
    shoal_uv_conn_close(j->conn);
}

static void on_ready(shoal_uv_conn *c, void *ud)
{
    job *j = ud;
    shoal_session *s = shoal_uv_conn_session(c);
    const char *mac = j->mac ? j->mac : "";
    const struct {
        const char *what, *want;
    } expect[6] = {
        {"kex", j->kex},           {"hostkey", j->hostkey}, {"cipher_c2s", j->cipher},
        {"cipher_s2c", j->cipher}, {"mac_c2s", mac},        {"mac_s2c", mac},
    };
    for (int i = 0; i < 6; i++) {
        const char *got = shoal_session_algorithm(s, expect[i].what);
        if (!got || strcmp(got, expect[i].want) != 0) {
            job_fail(j, "negotiated %s: asked for \"%s\", shoal_session_algorithm reports \"%s\"", expect[i].what,
                     expect[i].want, got ? got : "(null)");
            shoal_uv_conn_close(c);
            return;
        }
    }
    shoal_child_options co;
    shoal_child_options_init(&co);
    co.collect_limit = 4096;
    co.open_timeout_ms = 30000;
    co.timeout_ms = 30000;
    shoal_child_callbacks cb = {sizeof(shoal_child_callbacks), NULL, NULL, on_exit_cb};
    int rc = shoal_child_spawn(c, COMMAND, &co, &cb, j, &j->child);
    if (rc) {
        j->child = NULL;
        job_fail(j, "shoal_child_spawn: %s", shoal_strerror(rc));
        shoal_uv_conn_close(c);
    }
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    job *j = ud;
    (void)c;
    if (err)
        job_fail(j, "connection: %s", message ? message : shoal_strerror(err));
    else if (!j->got_exit)
        job_fail(j, "connection closed before the command finished");
    job_finished(j);
    schedule_reap(j);
}

static void start_one(matrix *m, job *j)
{
    shoal_uv_options o = m->base;
    shoal_client_config sc = m->base_ssh;
    o.ssh = &sc;
    sc.kex_algorithms = j->kex;
    sc.hostkey_algorithms = j->hostkey;
    sc.ciphers = j->cipher;
    sc.macs = j->mac; /* NULL (defaults) for AEAD: no MAC is used */
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_ready;
    cb.on_closed = on_closed;
    j->state = J_RUNNING;
    j->t_start = now_ns();
    m->running++;
    int rc = shoal_uv_conn_new(m->loop, &o, &cb, j, &j->conn);
    if (rc) {
        j->conn = NULL;
        job_fail(j, "shoal_uv_conn_new: %s", shoal_strerror(rc));
        job_finished(j);
        return;
    }
    rc = shoal_uv_conn_start(j->conn);
    if (rc && j->state != J_DONE) {
        /* on_closed may or may not have been called: make sure it ends. */
        job_fail(j, "shoal_uv_conn_start: %s", shoal_strerror(rc));
        shoal_uv_conn_close(j->conn);
    }
}

static void start_jobs(matrix *m)
{
    while (m->running < m->concurrency && m->next < m->njobs) {
        job *j = &m->jobs[m->next++];
        if (j->state != J_PENDING)
            continue;
        start_one(m, j);
    }
}

/* Every name of a comma list must be one we know, else the caller made a
 * typo and would silently test less. */
static int check_names(const char *env, const char *list, const char *const *names, size_t n)
{
    if (!list)
        return 1;
    char *copy = strdup(list);
    int ok = 1;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < n && strcmp(tok, names[i]) != 0; i++)
            ;
        if (i == n) {
            fprintf(stderr, "%s: unknown algorithm \"%s\"\n", env, tok);
            ok = 0;
        }
    }
    free(copy);
    return ok;
}

static const char *env_list(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: interop_algmatrix PORT KEY KNOWN_HOSTS USER [CONCURRENCY]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned port = (unsigned)atoi(argv[1]);
    const char *ids[1] = {argv[2]};
    const char *kh[1] = {argv[3]};
    const char *user = argv[4];
    int conc = argc > 5 ? atoi(argv[5]) : 8;
    if (port == 0 || port > 65535 || conc < 1) {
        fprintf(stderr, "interop_algmatrix: bad PORT or CONCURRENCY\n");
        return 2;
    }

    const char *only_kex = env_list("SHOAL_MATRIX_KEX");
    const char *only_hk = env_list("SHOAL_MATRIX_HOSTKEY");
    const char *srv_kex = env_list("SHOAL_MATRIX_SERVER_KEX");
    const char *srv_hk = env_list("SHOAL_MATRIX_SERVER_HOSTKEY");
    const char *srv_cipher = env_list("SHOAL_MATRIX_SERVER_CIPHERS");
    const char *srv_mac = env_list("SHOAL_MATRIX_SERVER_MACS");
    if (!check_names("SHOAL_MATRIX_KEX", only_kex, KEX, N_KEX) ||
        !check_names("SHOAL_MATRIX_HOSTKEY", only_hk, HOSTKEY, N_HOSTKEY))
        return 2;

    static matrix mx;
    matrix *m = &mx;
    m->loop = uv_default_loop();
    m->concurrency = conc;
    shoal_uv_options *o = &m->base;
    shoal_uv_options_init(o);
    shoal_client_config_init(&m->base_ssh);
    o->ssh = &m->base_ssh;
    o->host = "127.0.0.1";
    o->port = port;
    m->base_ssh.user = user;
    o->known_hosts = kh;
    o->n_known_hosts = 1;
    o->hostkey_policy = SHOAL_HOSTKEY_STRICT;
    o->identity_files = ids;
    o->n_identity_files = 1;
    o->connect_timeout_ms = 30000;
    o->banner_timeout_ms = 30000;
    o->kex_timeout_ms = 30000;
    o->auth_timeout_ms = 30000;

    m->jobs = calloc(N_GROUP * MAX_PER_GROUP, sizeof(job));
    if (!m->jobs)
        return 2;
    /* Reasons for skipped algorithms, printed once each. */
    for (size_t k = 0; k < N_KEX; k++)
        if (in_list(only_kex, KEX[k]) && !in_list(srv_kex, KEX[k]))
            printf("# SKIP kex %s: the server does not enable it (SHOAL_MATRIX_SERVER_KEX)\n", KEX[k]);
    for (size_t h = 0; h < N_HOSTKEY; h++)
        if (in_list(only_hk, HOSTKEY[h]) && !in_list(srv_hk, HOSTKEY[h]))
            printf("# SKIP host key algorithm %s: the server does not enable it (SHOAL_MATRIX_SERVER_HOSTKEY)\n",
                   HOSTKEY[h]);
    for (size_t c = 0; c < N_CIPHER; c++)
        if (!in_list(srv_cipher, CIPHER[c]))
            printf("# SKIP cipher %s: the server does not enable it (SHOAL_MATRIX_SERVER_CIPHERS)\n", CIPHER[c]);
    for (size_t c = 0; c < N_MAC; c++)
        if (!in_list(srv_mac, MAC[c]))
            printf("# SKIP MAC %s: the server does not enable it (SHOAL_MATRIX_SERVER_MACS)\n", MAC[c]);

    for (size_t k = 0; k < N_KEX; k++) {
        if (!in_list(only_kex, KEX[k]))
            continue;
        for (size_t h = 0; h < N_HOSTKEY; h++) {
            if (!in_list(only_hk, HOSTKEY[h]))
                continue;
            int gi = (int)(k * N_HOSTKEY + h);
            group *g = &m->groups[gi];
            for (size_t c = 0; c < N_CIPHER; c++) {
                int aead = is_aead(CIPHER[c]);
                for (size_t mc = 0; mc < (aead ? 1 : N_MAC); mc++) {
                    job *j = &m->jobs[m->njobs++];
                    j->m = m;
                    j->group = gi;
                    j->kex = KEX[k];
                    j->hostkey = HOSTKEY[h];
                    j->cipher = CIPHER[c];
                    j->mac = aead ? NULL : MAC[mc];
                    g->total++;
                    if (!in_list(srv_kex, j->kex) || !in_list(srv_hk, j->hostkey) ||
                        !in_list(srv_cipher, j->cipher) || (j->mac && !in_list(srv_mac, j->mac))) {
                        j->state = J_SKIPPED;
                        g->skipped++;
                        m->conns_skipped++;
                    }
                }
            }
        }
    }
    int to_run = m->njobs - m->conns_skipped;
    printf("# %d combinations (%d to run, %d skipped), %d at a time, command \"%s\"\n", m->njobs, to_run,
           m->conns_skipped, conc, COMMAND);

    uv_timer_init(m->loop, &m->reaper);
    m->reaper.data = m;
    uint64_t t0 = now_ns();
    start_jobs(m);
    print_groups(m); /* groups that are entirely skipped */
    uv_run(m->loop, UV_RUN_DEFAULT);
    double wall = (double)(now_ns() - t0) / 1e9;

    /* Everything must have run to the end (a stuck loop would not get here,
     * but a job left pending would be a bug in this program). */
    int not_run = 0;
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].state == J_PENDING || m->jobs[i].state == J_RUNNING)
            not_run++;
    print_groups(m);

    printf("# %d connections: %d ok, %d failed, %d skipped, %d not run\n", to_run, m->conns_passed,
           m->conns_failed, m->conns_skipped, not_run);
    printf("# wall time %.1f s, %.1f combinations/s, concurrency %d\n", wall,
           wall > 0 ? (double)(m->conns_passed + m->conns_failed) / wall : 0.0, conc);
    if (m->conns_failed > 40) {
        printf("# %d failing combinations: see the \"# FAIL\" lines above\n", m->conns_failed);
    } else if (m->conns_failed) {
        printf("# failing combinations:\n");
        for (int i = 0; i < m->njobs; i++) {
            job *j = &m->jobs[i];
            if (j->state == J_DONE && j->failed) {
                char d[256];
                describe(j, d, sizeof(d));
                printf("#   %s: %s\n", d, j->error);
            }
        }
    }
    if (not_run) {
        m->tap_no++;
        printf("not ok %d - %d combinations were never run\n", m->tap_no, not_run);
        m->groups_failed++;
    }

    uv_close((uv_handle_t *)&m->reaper, NULL);
    uv_run(m->loop, UV_RUN_DEFAULT);
    uv_loop_close(m->loop);
    free(m->jobs);
    printf("%d passed, %d failed\n", m->groups_passed, m->groups_failed);
    return m->groups_failed ? 1 : 0;
}
