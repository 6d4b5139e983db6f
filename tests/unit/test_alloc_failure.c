/* Allocation failures, one at a time, through complete client+server
 * sessions in memory (CVE-2023-2283 class: libssh let a failed allocation
 * in its signature check end in "authenticated").
 *
 * tests/lib/failmalloc.c wraps malloc, calloc, realloc, strdup, strndup
 * (for the code linked into this executable: shoal_core, shoal_uv, this
 * test) and libcrypto's allocator. Each scenario runs once to warm the
 * per-process and per-thread caches, once counting its allocations (T),
 * then again failing allocation N, for every N = 1..T (+ a margin: a few
 * counts vary from run to run, e.g. with libcrypto's random numbers).
 * That full sweep is cheap (the Ed25519 sessions take 150 to 400
 * allocations once the caches are warm), so it runs twice: on this thread
 * (warm caches) and with every run on a fresh thread, whose per-thread
 * caches (src/crypto/kept.c, libcrypto's) start empty, are filled by the
 * run and freed when it ends. The ECDSA and RSA/DH scenarios are swept
 * warm only and with a stride outside authentication (HEAVY_STRIDE).
 * SHOAL_FAILMALLOC_ONLY=scenario:N runs one N alone (see failmalloc.h for
 * the backtrace switches).
 *
 * Each run must end without a crash (ASan/UBSan in that build), with
 * every block given back once both sessions are freed (the wrappers'
 * count of live blocks returns to where it was; LeakSanitizer checks the
 * rest at exit), and with an outcome, never a stall: either the scenario
 * completed as it does without failures, or a session closed with an
 * error, or an API call told the application of one (a refused channel
 * open or request counts). When the server or the client ends, the pump
 * tells the other side about the closed connection (recv_eof), as a
 * driver would. Each sweep prints a summary: the allocation numbers at
 * the client's host key check and at the server's last auth decision.
 *
 * The scenarios (keys made in memory; the host key is checked by the
 * client against a known_hosts text, with a negated wildcard line and a
 * hashed line before the one that matches, by shoal_knownhosts_check_buf;
 * each ends with an exec channel: stdin, output, exit status):
 *  - pubkey:       Ed25519 user key in memory, signed at once; curve25519,
 *                  Ed25519 host key, chacha20-poly1305;
 *  - pubkey_query: a refused key first, then a key queried and signed by
 *                  the application's sign callback;
 *  - password;
 *  - kbdint:       two keyboard-interactive prompts;
 *  - ecdsa:        ecdh-sha2-nistp256, ECDSA P-256 host key, aes128-gcm,
 *                  ECDSA P-384 user key;
 *  - rsa_dh:       diffie-hellman-group14-sha256, rsa-sha2-512 host key,
 *                  aes256-ctr + hmac-sha2-256-etm, RSA user key (queried,
 *                  then signed with rsa-sha2-512 from server-sig-algs);
 *  - rekey:        pubkey, and the client re-exchanges keys once
 *                  authenticated, before opening the channel;
 * and the ones that must never log in, whatever allocation fails (the
 * CVE-2023-2283 property):
 *  - wrong_key:        the server allows another key;
 *  - probe_then_other: the key offered is allowed, the signature is by
 *                      another one (CVE-2024-45337 class);
 *  - wrong_password, wrong_kbdint;
 *  - hostkey_mismatch: known_hosts has another key for the host, so the
 *                      client must stop before any authentication. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "failmalloc.h"
#include "keys/key.h"
#include "shoal/knownhosts.h"
#include "shoal/server.h"

#define HOST "server.test"
#define PASSWORD "secret"
#define COMMAND "do-it"
#define MARGIN 64 /* allocations past the counted end still failed */
/* The ECDSA and RSA/DH scenarios make 700 to 1,700 allocations each, most
 * of them libcrypto's big-number and EC-point work in the key exchange, and
 * cost more per run: they are swept warm only, every allocation from the
 * host key check to the last auth decision and every HEAVY_STRIDE-th one
 * outside it (the per-thread caches they use are made by the same code as
 * the Ed25519 scenarios', which are also swept cold). */
#define HEAVY_STRIDE 2

static shoal_key *host_keys[3], *other_host_key, *user_key, *other_key, *user_ecdsa, *user_rsa;
#define host_key host_keys[0]
static char known_hosts[16384], known_hosts_bad[4096];

typedef enum scenario {
    SC_PUBKEY = 0,
    SC_PUBKEY_QUERY,
    SC_PASSWORD,
    SC_KBDINT,
    SC_ECDSA,
    SC_RSA_DH,
    SC_REKEY,
    SC_WRONG_KEY, /* from here on: must never log in */
    SC_PROBE_THEN_OTHER,
    SC_WRONG_PASSWORD,
    SC_WRONG_KBDINT,
    SC_HOSTKEY_MISMATCH,
    SC_COUNT
} scenario;

static const struct sc_info {
    const char *name;
    const char *kex, *hostkey, *cipher, *mac;
    unsigned methods; /* the client's */
    int heavy;        /* see HEAVY_STRIDE */
} sc_info[SC_COUNT] = {
    [SC_PUBKEY] = {"pubkey", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
    [SC_PUBKEY_QUERY] = {"pubkey_query", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
    [SC_PASSWORD] = {"password", NULL, NULL, NULL, NULL, SHOAL_AUTH_PASSWORD, 0},
    [SC_KBDINT] = {"kbdint", NULL, NULL, NULL, NULL, SHOAL_AUTH_KBDINT, 0},
    [SC_ECDSA] = {"ecdsa", "ecdh-sha2-nistp256", "ecdsa-sha2-nistp256", "aes128-gcm@openssh.com", NULL,
                  SHOAL_AUTH_PUBLICKEY, 1},
    [SC_RSA_DH] = {"rsa_dh", "diffie-hellman-group14-sha256", "rsa-sha2-512", "aes256-ctr",
                   "hmac-sha2-256-etm@openssh.com", SHOAL_AUTH_PUBLICKEY, 1},
    [SC_REKEY] = {"rekey", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
    [SC_WRONG_KEY] = {"wrong_key", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
    [SC_PROBE_THEN_OTHER] = {"probe_then_other", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
    [SC_WRONG_PASSWORD] = {"wrong_password", NULL, NULL, NULL, NULL, SHOAL_AUTH_PASSWORD, 0},
    [SC_WRONG_KBDINT] = {"wrong_kbdint", NULL, NULL, NULL, NULL, SHOAL_AUTH_KBDINT, 0},
    [SC_HOSTKEY_MISMATCH] = {"hostkey_mismatch", NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY, 0},
};

static int sc_must_fail(scenario sc)
{
    return sc >= SC_WRONG_KEY;
}

/* ---- what both applications saw ---- */

typedef struct run {
    scenario sc;
    shoal_session *c, *s;
    /* server */
    int srv_authenticated, srv_closed, srv_err, srv_exec;
    int srv_bad_success; /* SUCCESS granted to something it should not be */
    int app_err;         /* an API call of either application failed (it was told) */
    int rekeyed;
    unsigned kex_count; /* the client's, at the end */
    char command[64];
    /* client */
    int cli_authenticated, cli_closed, cli_err;
    int hostkey_calls, hostkey_accepted;
    shoal_channel *ch;
    int ch_open_err, ch_closed;
    char out[128];
    size_t out_len;
    int status;
    /* the window failed in full: host key check to end of authentication */
    unsigned long mark_hostkey, mark_auth_end;
} run;

/* ---- the server application ---- */

static const shoal_key *allowed_key(scenario sc)
{
    switch (sc) {
    case SC_ECDSA:
        return user_ecdsa;
    case SC_RSA_DH:
        return user_rsa;
    case SC_PROBE_THEN_OTHER:
        return other_key; /* offered, but signed by user_key */
    default:
        return user_key;
    }
}

static int srv_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    run *r = ud;
    r->mark_auth_end = failmalloc_count();
    int ok = 0;
    switch (req->method) {
    case SHOAL_METHOD_PUBLICKEY:
        if (!shoal_key_equal_public(req->key, allowed_key(r->sc)))
            return SHOAL_AUTH_DENY;
        if (!req->proven)
            return SHOAL_AUTH_SUCCESS; /* "this key would do": PK_OK */
        ok = 1;
        break;
    case SHOAL_METHOD_PASSWORD:
        ok = strcmp(req->password, PASSWORD) == 0;
        break;
    case SHOAL_METHOD_KBDINT:
        if (req->n_responses == 0) {
            static const shoal_kbdint_prompt prompts[2] = {{"Password: ", 0}, {"Code: ", 1}};
            int rc = shoal_session_kbdint_prompts(s, "login", "two questions", 2, prompts);
            return rc ? SHOAL_AUTH_DENY : SHOAL_AUTH_PROMPT;
        }
        ok = req->n_responses == 2 && strcmp(req->responses[0], PASSWORD) == 0 &&
             strcmp(req->responses[1], "123456") == 0;
        break;
    default:
        return SHOAL_AUTH_DENY;
    }
    if (!ok)
        return SHOAL_AUTH_DENY;
    if (sc_must_fail(r->sc))
        r->srv_bad_success = 1; /* the library showed us a proof that cannot exist */
    return SHOAL_AUTH_SUCCESS;
}

static void srv_authenticated(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    (void)user;
    ((run *)ud)->srv_authenticated++;
}

static int srv_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    run *r = ud;
    (void)ch;
    if (strcmp(req->type, "exec") != 0)
        return 0;
    r->srv_exec = 1;
    snprintf(r->command, sizeof(r->command), "%s", req->command ? req->command : "");
    return 1;
}

/* An application that checks what it calls: on an error it notes it and
 * closes the channel, unless the error closed the whole session, which
 * has then released its channels (after their on_close). */
static void app_call(run *r, shoal_session *s, shoal_channel *ch, int rc)
{
    if (rc && !r->app_err) {
        r->app_err = rc;
        if (!shoal_session_is_closed(s))
            shoal_channel_close(ch);
    }
}

static void srv_eof(shoal_channel *ch, void *ud)
{
    run *r = ud;
    size_t w;
    char msg[100];
    snprintf(msg, sizeof(msg), "ran: %s\n", r->command);
    app_call(r, r->s, ch, shoal_channel_write(ch, msg, strlen(msg), &w));
    if (!r->app_err)
        app_call(r, r->s, ch, shoal_channel_exit_status(ch, 7));
    if (!r->app_err)
        app_call(r, r->s, ch, shoal_channel_send_eof(ch));
    if (!r->app_err)
        app_call(r, r->s, ch, shoal_channel_close(ch));
}

static void srv_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    (void)ch;
    (void)stream;
    (void)d;
    (void)n;
    (void)ud;
}

static int srv_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    if (strcmp(type, "session") != 0)
        return 3;
    static const shoal_server_channel_callbacks cb = {
        sizeof(shoal_server_channel_callbacks), srv_request, srv_data, srv_eof, NULL, NULL};
    shoal_channel_set_server_callbacks(ch, &cb, ud);
    return 0;
}

static void srv_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    run *r = ud;
    (void)s;
    (void)msg;
    r->srv_closed++;
    r->srv_err = err;
}

/* ---- the client application ---- */

static int cli_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    run *r = ud;
    (void)s;
    r->hostkey_calls++;
    r->mark_hostkey = failmalloc_count();
    const char *text = r->sc == SC_HOSTKEY_MISMATCH ? known_hosts_bad : known_hosts;
    shoal_kh_result res;
    int rc = shoal_knownhosts_check_buf(text, strlen(text), HOST, 22, shoal_key_type_name(info->key), info->blob,
                                        info->blob_len, &res);
    if (rc)
        return rc; /* could not check: refuse, as the driver does */
    if (res.status != SHOAL_KH_MATCH)
        return res.status == SHOAL_KH_NOT_FOUND ? SHOAL_ERR_HOSTKEY_UNKNOWN : SHOAL_ERR_HOSTKEY_MISMATCH;
    r->hostkey_accepted = 1;
    return 0;
}

static int cli_sign(shoal_session *s, unsigned ident, const char *alg, const uint8_t *d, size_t n, void *ud)
{
    run *r = ud;
    (void)ident;
    (void)r;
    /* Always user_key: right for pubkey_query's second identity, the wrong
     * key for probe_then_other, whose identity is other_key. */
    const shoal_key *signer = user_key;
    shoal_buf sig;
    shoal_buf_init(&sig, 1u << 16);
    int rc = shoal_key_sign(signer, alg, d, n, &sig);
    if (!rc)
        rc = shoal_session_sign_reply(s, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    shoal_buf_free(&sig);
    return rc;
}

static int cli_password(shoal_session *s, const char *user, void *ud)
{
    run *r = ud;
    (void)user;
    return shoal_session_password_reply(s, r->sc == SC_WRONG_PASSWORD ? "wrong" : PASSWORD);
}

static int cli_kbdint(shoal_session *s, const shoal_kbdint_request *req, void *ud)
{
    run *r = ud;
    const char *answers[2] = {r->sc == SC_WRONG_KBDINT ? "wrong" : PASSWORD, "123456"};
    return shoal_session_kbdint_reply(s, req->nprompts < 2 ? req->nprompts : 2, answers);
}

static void cli_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    ((run *)ud)->cli_authenticated++;
}

static void cli_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    run *r = ud;
    (void)s;
    (void)msg;
    r->cli_closed++;
    r->cli_err = err;
}

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    run *r = ud;
    (void)reason;
    r->ch_open_err = err;
    if (err)
        return;
    size_t w;
    app_call(r, r->c, ch, shoal_channel_exec(ch, COMMAND));
    if (!r->app_err)
        app_call(r, r->c, ch, shoal_channel_write(ch, "input data", 10, &w));
    if (!r->app_err)
        app_call(r, r->c, ch, shoal_channel_send_eof(ch));
}

/* A refused request is an error the application sees (shoal_child turns a
 * refused exec into a failed command). */
static void ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    run *r = ud;
    (void)request;
    if (!ok)
        app_call(r, r->c, ch, SHOAL_ERR_REQUEST_DENIED);
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    run *r = ud;
    (void)ch;
    if (stream == SHOAL_STDOUT && r->out_len + n < sizeof(r->out)) {
        memcpy(r->out + r->out_len, d, n);
        r->out_len += n;
    }
}

static void ch_status(shoal_channel *ch, uint32_t st, void *ud)
{
    (void)ch;
    ((run *)ud)->status = (int)st;
}

static void ch_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    ((run *)ud)->ch_closed++;
}

static const shoal_channel_callbacks CH_CB = {
    sizeof(shoal_channel_callbacks), ch_open, ch_request, ch_data, NULL, ch_status, NULL, NULL, ch_close};

/* ---- one run ---- */

/* Moves `from`'s output to `to` through a fixed buffer (no allocation of
 * the test's own in the counted sequence). Returns 1 when bytes moved. */
static int move(shoal_session *from, shoal_session *to)
{
    static uint8_t buf[1u << 16];
    int moved = 0;
    for (;;) {
        const uint8_t *p;
        size_t n = shoal_session_output(from, &p);
        if (!n)
            return moved;
        if (n > sizeof(buf))
            n = sizeof(buf);
        memcpy(buf, p, n);
        shoal_session_output_consume(from, n);
        moved = 1;
        if (!shoal_session_is_closed(to))
            shoal_session_recv(to, buf, n, 0);
    }
}

static void add_identity(shoal_session *c, const shoal_key *k, int with_private)
{
    shoal_buf blob;
    shoal_buf_init(&blob, 4096);
    if (shoal_key_to_blob(k, &blob) == 0)
        shoal_session_add_identity(c, shoal_buf_ptr(&blob), shoal_buf_len(&blob),
                                   with_private ? shoal_key_ref((shoal_key *)k) : NULL);
    shoal_buf_free(&blob);
}

/* Runs one scenario to its end; the caller arms failmalloc around it. */
static void run_scenario(run *r, scenario sc)
{
    memset(r, 0, sizeof(*r));
    r->sc = sc;
    r->status = -1;
    const struct sc_info *in = &sc_info[sc];
    shoal_server_config scfg;
    shoal_server_config_init(&scfg);
    scfg.host_keys = host_keys;
    scfg.n_host_keys = 3;
    scfg.kex_algorithms = in->kex;
    scfg.auth_methods = SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD | SHOAL_AUTH_KBDINT;
    shoal_server_callbacks scb = {
        sizeof(shoal_server_callbacks), srv_auth, srv_authenticated, srv_channel_open, srv_closed, NULL};
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "tester";
    cc.kex_algorithms = in->kex ? in->kex : "curve25519-sha256";
    cc.hostkey_algorithms = in->hostkey ? in->hostkey : "ssh-ed25519";
    cc.ciphers = in->cipher ? in->cipher : "chacha20-poly1305@openssh.com";
    cc.macs = in->mac;
    cc.auth_methods = in->methods;
    shoal_client_callbacks ccb;
    shoal_client_callbacks_init(&ccb);
    ccb.hostkey = cli_hostkey;
    ccb.sign = cli_sign;
    ccb.password = cli_password;
    ccb.kbdint = cli_kbdint;
    ccb.authenticated = cli_authenticated;
    ccb.closed = cli_closed;

    shoal_session *s = NULL, *c = NULL;
    if (shoal_session_new_server(&s, &scfg, &scb, r) != 0) {
        r->srv_err = r->cli_err = SHOAL_ERR_NOMEM; /* could not even start: an error, not a login */
        r->srv_closed = r->cli_closed = 1;
        return;
    }
    if (shoal_session_new_client(&c, &cc, &ccb, r) != 0) {
        shoal_session_free(s);
        r->srv_err = r->cli_err = SHOAL_ERR_NOMEM;
        r->srv_closed = r->cli_closed = 1;
        return;
    }
    r->c = c;
    r->s = s;
    switch (sc) {
    case SC_PUBKEY:
    case SC_REKEY:
    case SC_WRONG_KEY:
        add_identity(c, sc == SC_WRONG_KEY ? other_key : user_key, 1);
        break;
    case SC_ECDSA:
        add_identity(c, user_ecdsa, 1);
        break;
    case SC_RSA_DH:
        add_identity(c, user_rsa, 1);
        break;
    case SC_PUBKEY_QUERY:
        add_identity(c, other_key, 1);
        add_identity(c, user_key, 0);
        break;
    case SC_PROBE_THEN_OTHER:
        add_identity(c, other_key, 0); /* offered: other_key; signed (cli_sign): user_key */
        break;
    case SC_HOSTKEY_MISMATCH:
        add_identity(c, user_key, 1);
        break;
    default:
        break;
    }
    if (shoal_session_start(s, 0) == 0 && shoal_session_start(c, 0) == 0) {
        for (int i = 0; i < 1000; i++) {
            int moved = move(c, s) | move(s, c);
            if (sc == SC_REKEY && r->cli_authenticated && !r->rekeyed && !shoal_session_is_closed(c)) {
                r->rekeyed = 1;
                int rc = shoal_session_rekey(c);
                if (rc)
                    r->app_err = rc;
                moved = 1;
                continue;
            }
            if (r->cli_authenticated && !r->ch && !r->ch_closed && !shoal_session_is_closed(c) &&
                (sc != SC_REKEY || shoal_session_kex_count(c) >= 2)) {
                int rc = shoal_channel_open_session(c, &CH_CB, r, &r->ch);
                if (rc) {
                    r->app_err = rc;
                    r->ch_closed = -1; /* could not open: no channel to wait for */
                }
                moved = 1;
            }
            if (!moved) {
                /* Quiet. A closed side means a closed connection for the other. */
                int sc_ = shoal_session_is_closed(s), cc_ = shoal_session_is_closed(c);
                if (sc_ == cc_)
                    break;
                shoal_session_recv_eof(sc_ ? c : s, 0);
            }
        }
    } else {
        /* Starting failed: the session says why. */
        if (!shoal_session_is_closed(s))
            shoal_session_abort(s, SHOAL_ERR_NOMEM, "start failed");
        if (!shoal_session_is_closed(c))
            shoal_session_abort(c, SHOAL_ERR_NOMEM, "start failed");
    }
    r->kex_count = shoal_session_kex_count(c);
    /* What the client's session says at the end. */
    if (!r->cli_closed && shoal_session_is_closed(c)) {
        r->cli_closed = 1;
        r->cli_err = shoal_session_error(c, NULL);
    }
    if (!r->srv_closed && shoal_session_is_closed(s)) {
        r->srv_closed = 1;
        r->srv_err = shoal_session_error(s, NULL);
    }
    shoal_session_free(c);
    shoal_session_free(s);
    /* A failure inside libcrypto may leave an entry on this thread's
     * error queue (the thread's, not a session's). */
    ERR_clear_error();
}

static int completed(const run *r)
{
    return (r->sc != SC_REKEY || r->kex_count == 2) && r->cli_authenticated == 1 && r->srv_authenticated == 1 &&
           r->status == 7 &&
           strcmp(r->out, "ran: " COMMAND "\n") == 0 && strcmp(r->command, COMMAND) == 0 && r->ch_closed == 1 &&
           !r->cli_err && !r->srv_err;
}

/* Checks one run; returns a description of what is wrong, or NULL. */
static const char *verdict(const run *r)
{
    if (r->srv_bad_success)
        return "the server application was asked to let in a key or password it must refuse";
    if (sc_must_fail(r->sc)) {
        if (r->cli_authenticated || r->srv_authenticated)
            return "logged in although the scenario must always fail";
        if (r->srv_exec)
            return "a command ran although the scenario must always fail";
        if (r->sc == SC_HOSTKEY_MISMATCH && r->hostkey_accepted)
            return "a mismatching host key was accepted";
        if (!(r->cli_closed && r->cli_err) && !(r->srv_closed && r->srv_err) && !r->app_err)
            return "no error although the scenario must fail";
        return NULL;
    }
    if (completed(r))
        return NULL;
    if ((r->cli_closed && r->cli_err) || (r->srv_closed && r->srv_err) || r->app_err || r->ch_open_err) {
        /* Failed with an error: fine, as long as nothing half-true was reported. */
        if (r->cli_authenticated > 1 || r->srv_authenticated > 1)
            return "authenticated twice";
        return NULL;
    }
    return "neither completed nor failed with an error (a stall)";
}

/* ---- the sweep ---- */

typedef struct job {
    scenario sc;
    unsigned long fail_at; /* 0: count only */
    int counting;
    run r;
    unsigned long total;
} job;

static void do_job(job *j)
{
    failmalloc_arm(j->fail_at);
    run_scenario(&j->r, j->sc);
    j->total = failmalloc_disarm();
}

static void *job_thread(void *arg)
{
    do_job(arg);
    return NULL;
}

/* Runs the job on this thread (warm caches) or on a new one, whose
 * per-thread caches (src/crypto/kept.c, libcrypto's) start empty and are
 * freed when it ends (cold). */
static void run_job(job *j, int cold)
{
    if (!cold) {
        do_job(j);
        ERR_clear_error();
        return;
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, job_thread, j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void sweep(scenario sc, int cold)
{
    const char *how = cold ? "cold" : "warm";
    /* SHOAL_FAILMALLOC_ONLY=name:N runs just that one, to look at it with
     * FAILMALLOC_BACKTRACE=1 or FAILMALLOC_BACKTRACE_AT=M (failmalloc.h). */
    const char *only = getenv("SHOAL_FAILMALLOC_ONLY");
    size_t nl = strlen(sc_info[sc].name);
    unsigned long only_n = only && !strncmp(only, sc_info[sc].name, nl) && only[nl] == ':'
                               ? strtoul(only + nl + 1, NULL, 10)
                               : 0;
    if (only && !only_n)
        return;
    if (cold && sc_info[sc].heavy)
        return;
    job j;
    memset(&j, 0, sizeof(j));
    j.sc = sc;
    /* Warm-up: the per-process caches (and, warm, this thread's) are
     * filled once. libcrypto's error queue keeps a text buffer in each of
     * its slots once used (ERR_clear_error empties it, keeps it): every
     * slot gets one now, or a run that fails inside libcrypto would seem
     * to keep a block. */
    for (int i = 0; i < ERR_NUM_ERRORS; i++)
        ERR_raise_data(ERR_LIB_USER, ERR_R_MALLOC_FAILURE, "%s", "filling the error queue");
    ERR_clear_error();
    run_job(&j, 0);
    /* Some state is made for the first other thread that uses a key and
     * then kept in the key (libcrypto's RSA blinding for other threads). */
    if (cold)
        run_job(&j, 1);
    size_t base = failmalloc_live();
    run_job(&j, cold);
    unsigned long total = j.total;
    const char *why = verdict(&j.r);
    if (why || (!sc_must_fail(sc) && !completed(&j.r)))
        fail_msg("%s: the scenario does not pass without failures: %s", sc_info[sc].name,
                 why ? why : "did not complete");
    assert_int_equal(failmalloc_live(), base);
    unsigned long lo = j.r.mark_hostkey, hi = j.r.mark_auth_end ? j.r.mark_auth_end : total;
    unsigned long tried = 0, completed_runs = 0, problems = 0;
    for (unsigned long n = only_n ? only_n : 1; n <= (only_n ? only_n : total + MARGIN); n++) {
        int in_window = n + MARGIN >= lo && n <= hi + MARGIN;
        if (sc_info[sc].heavy && !only_n && !in_window && n % HEAVY_STRIDE != 0)
            continue;
        j.fail_at = n;
        run_job(&j, cold);
        tried++;
        why = verdict(&j.r);
        size_t live = failmalloc_live();
        static char msg[128];
        if (!why && live != base) {
            unsigned long idx[4] = {0};
            size_t k = failmalloc_live_from_run(idx, 4);
            snprintf(msg, sizeof(msg), "%ld blocks not freed (%zu made in this run, e.g. allocations %lu %lu %lu %lu)",
                     (long)(live - base), k, idx[0], idx[1], idx[2], idx[3]);
            why = msg;
            base = live; /* report each leak once */
        }
        if (why) {
            problems++;
            print_error("%s (%s): failing allocation %lu of %lu: %s (client %s, server %s)\n", sc_info[sc].name, how, n,
                        total, why, shoal_errname(j.r.cli_err), shoal_errname(j.r.srv_err));
        }
        completed_runs += completed(&j.r);
    }
    printf("%-16s %s: %3lu allocations (host key check at %lu, last auth decision at %lu), %lu runs: "
           "%lu completed, %lu failed cleanly, %lu problems\n",
           sc_info[sc].name, how, total, lo, hi, tried, completed_runs, tried - completed_runs - problems, problems);
    assert_int_equal(problems, 0);
}

#define SWEEP_TEST(name, sc)                                                                                           \
    static void name(void **st)                                                                                        \
    {                                                                                                                  \
        (void)st;                                                                                                      \
        sweep(sc, 0);                                                                                                  \
        sweep(sc, 1);                                                                                                  \
    }

SWEEP_TEST(alloc_failure_pubkey, SC_PUBKEY)
SWEEP_TEST(alloc_failure_pubkey_query, SC_PUBKEY_QUERY)
SWEEP_TEST(alloc_failure_password, SC_PASSWORD)
SWEEP_TEST(alloc_failure_kbdint, SC_KBDINT)
SWEEP_TEST(alloc_failure_ecdsa, SC_ECDSA)
SWEEP_TEST(alloc_failure_rsa_dh, SC_RSA_DH)
SWEEP_TEST(alloc_failure_rekey, SC_REKEY)
SWEEP_TEST(cve_2023_2283_alloc_failure_wrong_key, SC_WRONG_KEY)
SWEEP_TEST(cve_2023_2283_alloc_failure_probe_then_other_key, SC_PROBE_THEN_OTHER)
SWEEP_TEST(cve_2023_2283_alloc_failure_wrong_password, SC_WRONG_PASSWORD)
SWEEP_TEST(cve_2023_2283_alloc_failure_wrong_kbdint, SC_WRONG_KBDINT)
SWEEP_TEST(cve_2023_2283_alloc_failure_hostkey_mismatch, SC_HOSTKEY_MISMATCH)

/* ---- fixtures ---- */

/* A key made in memory by libcrypto, loaded by our loader. */
static shoal_key *gen_key(const char *type, const char *param)
{
    EVP_PKEY *pk = param && !strcmp(type, "RSA") ? EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)atoi(param))
                   : param                       ? EVP_PKEY_Q_keygen(NULL, NULL, type, param)
                                                 : EVP_PKEY_Q_keygen(NULL, NULL, type);
    assert_non_null(pk);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_load_private((const uint8_t *)pem, (size_t)n, NULL, &k), 0);
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

/* "<patterns> <type> <base64>" */
static void kh_line(char *out, size_t outsz, const char *patterns, const shoal_key *k)
{
    shoal_buf blob;
    shoal_buf_init(&blob, 4096);
    assert_int_equal(shoal_key_to_blob(k, &blob), 0);
    static unsigned char b64[2048];
    int n = EVP_EncodeBlock(b64, shoal_buf_ptr(&blob), (int)shoal_buf_len(&blob));
    assert_true(n > 0);
    size_t l = strlen(out);
    snprintf(out + l, outsz - l, "%s %s %s comment\n", patterns, shoal_key_type_name(k), b64);
    shoal_buf_free(&blob);
}

/* A hashed line (|1|salt|hash) for host with key k, as ssh-keygen -H
 * writes them: made by our own writer in a temporary file. */
static void kh_hashed_line(char *out, size_t outsz, const char *host, const shoal_key *k)
{
    char *dir = tu_mkdtemp(), path[512];
    snprintf(path, sizeof(path), "%s/known_hosts", dir);
    shoal_buf blob;
    shoal_buf_init(&blob, 4096);
    assert_int_equal(shoal_key_to_blob(k, &blob), 0);
    assert_int_equal(
        shoal_knownhosts_append(path, host, 22, shoal_key_type_name(k), shoal_buf_ptr(&blob), shoal_buf_len(&blob), 1),
        0);
    shoal_buf_free(&blob);
    size_t len = 0;
    uint8_t *text = tu_read_file(path, &len);
    assert_non_null(text);
    assert_true(text[0] == '|');
    size_t l = strlen(out);
    snprintf(out + l, outsz - l, "%s", (char *)text);
    free(text);
    tu_rmtree(dir);
    free(dir);
}

static int setup(void **st)
{
    (void)st;
    host_keys[0] = gen_key("ED25519", NULL);
    host_keys[1] = gen_key("EC", "P-256");
    host_keys[2] = gen_key("RSA", "2048");
    other_host_key = gen_key("ED25519", NULL);
    user_key = gen_key("ED25519", NULL);
    other_key = gen_key("ED25519", NULL);
    user_ecdsa = gen_key("EC", "P-384");
    user_rsa = gen_key("RSA", "2048");
    /* Lines that do not decide, then the ones that do. */
    snprintf(known_hosts, sizeof(known_hosts), "# known hosts\n");
    kh_line(known_hosts, sizeof(known_hosts), "*.example,!server.test", other_host_key);
    kh_hashed_line(known_hosts, sizeof(known_hosts), "another.test", other_host_key);
    kh_line(known_hosts, sizeof(known_hosts), "[server.test]:2222", other_host_key);
    for (int i = 0; i < 3; i++)
        kh_line(known_hosts, sizeof(known_hosts), "other.test," HOST ",*.test", host_keys[i]);
    kh_hashed_line(known_hosts_bad, sizeof(known_hosts_bad), HOST, other_host_key);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    for (int i = 0; i < 3; i++)
        shoal_key_free(host_keys[i]);
    shoal_key_free(other_host_key);
    shoal_key_free(user_key);
    shoal_key_free(other_key);
    shoal_key_free(user_ecdsa);
    shoal_key_free(user_rsa);
    return 0;
}

int main(void)
{
    /* Before anything makes libcrypto allocate. */
    if (!failmalloc_install()) {
        fprintf(stderr, "CRYPTO_set_mem_functions came too late\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alloc_failure_pubkey),
        cmocka_unit_test(alloc_failure_pubkey_query),
        cmocka_unit_test(alloc_failure_password),
        cmocka_unit_test(alloc_failure_kbdint),
        cmocka_unit_test(alloc_failure_ecdsa),
        cmocka_unit_test(alloc_failure_rsa_dh),
        cmocka_unit_test(alloc_failure_rekey),
        cmocka_unit_test(cve_2023_2283_alloc_failure_wrong_key),
        cmocka_unit_test(cve_2023_2283_alloc_failure_probe_then_other_key),
        cmocka_unit_test(cve_2023_2283_alloc_failure_wrong_password),
        cmocka_unit_test(cve_2023_2283_alloc_failure_wrong_kbdint),
        cmocka_unit_test(cve_2023_2283_alloc_failure_hostkey_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
