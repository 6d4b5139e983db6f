/* Our client against our server, in memory (no sockets): every key
 * exchange × host key × cipher × MAC combination runs a handshake,
 * publickey authentication and an exec channel; plus the server's safety
 * rules as seen through the API (probe vs proven keys, password, deferred
 * decisions, max tries). Host and user keys come from ssh-keygen at test
 * time. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cipher.h"
#include "crypto/kex.h"
#include "keys/key.h"
#include "conn/conn_impl.h"
#include "session/session_impl.h"
#include "shoal/server.h"

static char *dir;
static shoal_key *hostkeys[5];
static unsigned n_hostkeys;
static shoal_key *user_key, *other_key;

/* ---- the server application ---- */

typedef struct srv_app {
    int auth_calls, probes, proven, passwords;
    int defer_auth;     /* answer auth later */
    int pending_result;
    int accept_password;
    const shoal_key *allowed;
    int exec_seen;
    char command[128];
    int authenticated;
    int closed, err;
    int auth_batch, open_batch; /* client->server deliveries seen at the last auth call / channel open */
} srv_app;

static int c2s_batches; /* deliveries from the client to the server so far */
static int no_password_cb; /* pair_new: a client that cannot answer for a password */

static int srv_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    srv_app *a = ud;
    (void)s;
    a->auth_calls++;
    a->auth_batch = c2s_batches;
    int result = SHOAL_AUTH_DENY;
    if (req->method == SHOAL_METHOD_PUBLICKEY) {
        if (req->proven)
            a->proven++;
        else
            a->probes++;
        if (a->allowed && shoal_key_equal_public(req->key, a->allowed))
            result = SHOAL_AUTH_SUCCESS;
    } else if (req->method == SHOAL_METHOD_PASSWORD) {
        a->passwords++;
        if (a->accept_password && strcmp(req->password, "secret") == 0)
            result = SHOAL_AUTH_SUCCESS;
    }
    if (a->defer_auth) {
        a->pending_result = result;
        return SHOAL_ERR_DEFERRED;
    }
    return result;
}

static void srv_authenticated(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    (void)user;
    ((srv_app *)ud)->authenticated = 1;
}

static int srv_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    srv_app *a = ud;
    if (strcmp(req->type, "exec") != 0)
        return 0;
    a->exec_seen = 1;
    snprintf(a->command, sizeof(a->command), "%s", req->command);
    /* The reply goes out after we return: output follows at the client's EOF. */
    (void)ch;
    return 1;
}

static void srv_eof(shoal_channel *ch, void *ud)
{
    srv_app *a = ud;
    size_t w;
    char msg[200];
    snprintf(msg, sizeof(msg), "ran: %s\n", a->command);
    shoal_channel_write(ch, msg, strlen(msg), &w);
    shoal_channel_write_stderr(ch, "err\n", 4, &w);
    shoal_channel_exit_status(ch, 7);
    shoal_channel_send_eof(ch);
    shoal_channel_close(ch);
}

static int srv_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    if (strcmp(type, "session") != 0)
        return 3;
    ((srv_app *)ud)->open_batch = c2s_batches;
    static const shoal_server_channel_callbacks cb = {
        sizeof(shoal_server_channel_callbacks), srv_request, NULL, srv_eof, NULL, NULL};
    shoal_channel_set_server_callbacks(ch, &cb, ud);
    return 0;
}

static void srv_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    srv_app *a = ud;
    (void)s;
    (void)msg;
    a->closed = 1;
    a->err = err;
}

/* ---- the client application ---- */

typedef struct cli_app {
    int authenticated, closed, err;
    char errmsg[300];
    shoal_channel *ch;
    char out[256], errout[64];
    size_t out_len, err_len;
    int status;
    int channel_closed;
    const char *password;
} cli_app;

static int cli_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    (void)ud;
    return 0;
}

static int cli_password(shoal_session *s, const char *user, void *ud)
{
    cli_app *a = ud;
    (void)user;
    return a->password ? shoal_session_password_reply(s, a->password) : SHOAL_ERR_AUTH_FAILED;
}

static void cli_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    ((cli_app *)ud)->authenticated = 1;
}

static void cli_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    cli_app *a = ud;
    (void)s;
    a->closed = 1;
    a->err = err;
    if (msg)
        snprintf(a->errmsg, sizeof(a->errmsg), "%s", msg);
}

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    (void)ud;
    (void)reason;
    if (!err) {
        shoal_channel_exec(ch, "do-it");
        shoal_channel_send_eof(ch);
    }
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    cli_app *a = ud;
    (void)ch;
    if (stream == SHOAL_STDOUT && a->out_len + n < sizeof(a->out)) {
        memcpy(a->out + a->out_len, d, n);
        a->out_len += n;
    } else if (stream == SHOAL_STDERR && a->err_len + n < sizeof(a->errout)) {
        memcpy(a->errout + a->err_len, d, n);
        a->err_len += n;
    }
}

static void ch_status(shoal_channel *ch, uint32_t st, void *ud)
{
    (void)ch;
    ((cli_app *)ud)->status = (int)st;
}

static void ch_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    ((cli_app *)ud)->channel_closed = 1;
}

static int cli_sign(shoal_session *s, unsigned ident, const char *alg, const uint8_t *d, size_t n, void *ud);

/* ---- the pump ---- */

static int move(shoal_session *from, shoal_session *to)
{
    const uint8_t *p;
    size_t n = shoal_session_output(from, &p);
    if (!n)
        return 0;
    /* Copy: feeding may make `from` produce more output. */
    uint8_t *copy = malloc(n);
    memcpy(copy, p, n);
    shoal_session_output_consume(from, n);
    if (!shoal_session_is_closed(to))
        shoal_session_recv(to, copy, n, 0);
    free(copy);
    return 1;
}

typedef struct pair {
    shoal_session *c, *s;
    cli_app ca;
    srv_app sa;
} pair;

static void pump(pair *pr, int open_channel)
{
    for (int i = 0; i < 10000; i++) {
        c2s_batches++; /* numbers the delivery the server is reading */
        int to_srv = move(pr->c, pr->s);
        if (!to_srv)
            c2s_batches--;
        int moved = to_srv | move(pr->s, pr->c);
        if (open_channel && pr->ca.authenticated && !pr->ca.ch && !pr->ca.channel_closed) {
            static const shoal_channel_callbacks cb = {
                sizeof(shoal_channel_callbacks), ch_open, NULL, ch_data, NULL, ch_status, NULL, NULL, ch_close};
            shoal_channel_open_session(pr->c, &cb, &pr->ca, &pr->ca.ch);
            moved = 1;
        }
        if (pr->sa.defer_auth && pr->sa.pending_result >= 0 && pr->sa.auth_calls) {
            int r = pr->sa.pending_result;
            pr->sa.pending_result = -1;
            shoal_session_auth_reply(pr->s, r);
            moved = 1;
        }
        if (!moved)
            break;
    }
}

static void pair_new(pair *pr, const char *kex, const char *hk, const char *cipher, const char *mac,
                     unsigned srv_methods)
{
    memset(pr, 0, sizeof(*pr));
    pr->sa.pending_result = -1;
    pr->sa.allowed = user_key;
    shoal_server_config sc;
    shoal_server_config_init(&sc);
    sc.host_keys = hostkeys;
    sc.n_host_keys = n_hostkeys;
    sc.kex_algorithms = SHOAL_KEX_ALL;
    sc.hostkey_algorithms = SHOAL_HOSTKEY_ALGS_ALL;
    sc.ciphers = SHOAL_CIPHERS_ALL;
    sc.macs = SHOAL_MACS_ALL;
    sc.auth_methods = srv_methods;
    shoal_server_callbacks scb = {
        sizeof(shoal_server_callbacks), srv_auth, srv_authenticated, srv_channel_open, srv_closed, NULL};
    assert_int_equal(shoal_session_new_server(&pr->s, &sc, &scb, &pr->sa), 0);
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "tester";
    cc.kex_algorithms = kex;
    cc.hostkey_algorithms = hk;
    cc.ciphers = cipher;
    cc.macs = mac;
    shoal_client_callbacks ccb;
    shoal_client_callbacks_init(&ccb);
    ccb.hostkey = cli_hostkey;
    ccb.password = no_password_cb ? NULL : cli_password;
    ccb.sign = cli_sign;
    ccb.authenticated = cli_authenticated;
    ccb.closed = cli_closed;
    assert_int_equal(shoal_session_new_client(&pr->c, &cc, &ccb, &pr->ca), 0);
    shoal_session_start(pr->s, 0);
    shoal_session_start(pr->c, 0);
}

static void add_user_key(pair *pr, shoal_key *k)
{
    shoal_buf b;
    shoal_buf_init(&b, 4096);
    assert_int_equal(shoal_key_to_blob(k, &b), 0);
    shoal_key *dup = NULL;
    assert_int_equal(shoal_key_dup_public(k, &dup), 0);
    shoal_key_free(dup);
    /* The session takes ownership of a private key; load a fresh copy. */
    assert_true(shoal_session_add_identity(pr->c, shoal_buf_ptr(&b), shoal_buf_len(&b), NULL) >= 0);
    shoal_buf_free(&b);
}

static void pair_free(pair *pr)
{
    shoal_session_free(pr->c);
    shoal_session_free(pr->s);
}

/* ---- fixtures ---- */

static shoal_key *keygen(const char *type, const char *bits)
{
    static int serial;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s-%d", dir, type, bits, serial++);
    assert_int_equal(tu_system("ssh-keygen -q -t %s %s%s -N '' -f '%s'", type, *bits ? "-b " : "", bits, path), 0);
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_load_private_file(path, NULL, &k), 0);
    return k;
}

static int setup(void **st)
{
    (void)st;
    dir = tu_mkdtemp();
    hostkeys[n_hostkeys++] = keygen("ed25519", "");
    hostkeys[n_hostkeys++] = keygen("ecdsa", "256");
    hostkeys[n_hostkeys++] = keygen("ecdsa", "384");
    hostkeys[n_hostkeys++] = keygen("ecdsa", "521");
    hostkeys[n_hostkeys++] = keygen("rsa", "2048");
    user_key = keygen("ed25519", "");
    other_key = keygen("ecdsa", "256");
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    for (unsigned i = 0; i < n_hostkeys; i++)
        shoal_key_free(hostkeys[i]);
    shoal_key_free(user_key);
    shoal_key_free(other_key);
    tu_rmtree(dir);
    free(dir);
    return 0;
}

/* Signs with user_key on behalf of the client (identity without key). */
static int cli_sign(shoal_session *s, unsigned ident, const char *alg, const uint8_t *d, size_t n, void *ud)
{
    (void)ident;
    (void)ud;
    shoal_buf sig;
    shoal_buf_init(&sig, 1u << 16);
    int rc = shoal_key_sign(user_key, alg, d, n, &sig);
    if (!rc)
        rc = shoal_session_sign_reply(s, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    shoal_buf_free(&sig);
    return rc;
}

static int run_one(const char *kex, const char *hk, const char *cipher, const char *mac, char *why, size_t whysz)
{
    pair pr;
    pair_new(&pr, kex, hk, cipher, mac, 0);
    add_user_key(&pr, user_key);
    pump(&pr, 1);
    int ok = pr.ca.authenticated && pr.ca.status == 7 && strcmp(pr.ca.out, "ran: do-it\n") == 0 &&
             strcmp(pr.ca.errout, "err\n") == 0 && pr.ca.channel_closed && !pr.ca.err && !pr.sa.err &&
             strcmp(shoal_session_algorithm(pr.c, "kex"), kex) == 0 &&
             strcmp(shoal_session_algorithm(pr.c, "hostkey"), hk) == 0 &&
             strcmp(shoal_session_algorithm(pr.c, "cipher_c2s"), cipher) == 0 &&
             strcmp(shoal_session_algorithm(pr.s, "cipher_s2c"), cipher) == 0 &&
             pr.sa.probes == 1 && pr.sa.proven == 1;
    if (!ok)
        snprintf(why, whysz, "auth=%d status=%d out=%s err=%d (%s) srv_err=%d", pr.ca.authenticated, pr.ca.status,
                 pr.ca.out, pr.ca.err, pr.ca.errmsg, pr.sa.err);
    pair_free(&pr);
    return ok;
}

static void test_every_combination(void **st)
{
    (void)st;
    static const char *kex[] = {"curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
                                "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group14-sha256",
                                "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512",
                                "diffie-hellman-group14-sha1"};
    static const char *hk[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                               "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"};
    static const char *ciphers[] = {"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com",
                                    "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"};
    static const char *macs[] = {"hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com",
                                 "hmac-sha2-512-etm@openssh.com", "hmac-sha1", "hmac-sha1-etm@openssh.com"};
    int runs = 0, fails = 0;
    char why[512];
    /* Every kex × host key with each cipher × MAC: the full product. The
     * slow DH groups make it ~1300 handshakes; each is small in memory. */
    for (size_t k = 0; k < sizeof(kex) / sizeof(kex[0]); k++)
        for (size_t h = 0; h < sizeof(hk) / sizeof(hk[0]); h++)
            for (size_t c = 0; c < sizeof(ciphers) / sizeof(ciphers[0]); c++) {
                const shoal_cipher_alg *ca = shoal_cipher_find(ciphers[c]);
                size_t nm = ca->aead ? 1 : sizeof(macs) / sizeof(macs[0]);
                for (size_t m = 0; m < nm; m++) {
                    runs++;
                    if (!run_one(kex[k], hk[h], ciphers[c], ca->aead ? "hmac-sha2-256" : macs[m], why,
                                 sizeof(why))) {
                        fails++;
                        printf("FAIL %s %s %s %s: %s\n", kex[k], hk[h], ciphers[c], ca->aead ? "-" : macs[m], why);
                    }
                }
            }
    printf("%d combinations, %d failed\n", runs, fails);
    assert_int_equal(fails, 0);
}

/* Only a proven key logs in: a client that offers key B as a probe and then
 * signs with key A gets in as A only if A is allowed (CVE-2024-45337). */
static void test_probe_then_other_key(void **st)
{
    (void)st;
    pair pr;
    pair_new(&pr, NULL, NULL, NULL, NULL, 0);
    pr.sa.allowed = other_key; /* the server likes other_key... */
    /* ...but the client (cli_sign) signs with user_key */
    add_user_key(&pr, other_key);
    pump(&pr, 0);
    /* PK_OK for other_key, but the signature (by user_key) does not verify
     * against other_key: no login. */
    assert_false(pr.ca.authenticated);
    assert_int_equal(pr.sa.probes, 1);
    assert_int_equal(pr.sa.proven, 0);
    assert_null(shoal_session_auth_key(pr.s));
    pair_free(&pr);
}

static void test_deferred_and_password(void **st)
{
    (void)st;
    pair pr;
    pair_new(&pr, NULL, NULL, NULL, NULL, SHOAL_AUTH_PASSWORD);
    pr.sa.defer_auth = 1;
    pr.sa.accept_password = 1;
    pr.ca.password = "secret";
    pump(&pr, 1);
    assert_true(pr.ca.authenticated);
    assert_int_equal(pr.sa.passwords, 1);
    assert_string_equal(shoal_session_auth_user(pr.s), "tester");
    assert_null(shoal_session_auth_key(pr.s));
    assert_int_equal(pr.ca.status, 7);
    pair_free(&pr);
}

/* An identity whose private key is in memory: the client signs it itself,
 * and as the first identity at once (no query). */
static void add_private_identity(pair *pr, shoal_key *k)
{
    shoal_buf b;
    shoal_buf_init(&b, 4096);
    assert_int_equal(shoal_key_to_blob(k, &b), 0);
    assert_true(shoal_session_add_identity(pr->c, shoal_buf_ptr(&b), shoal_buf_len(&b), shoal_key_ref(k)) >= 0);
    shoal_buf_free(&b);
}

static const shoal_channel_callbacks CLI_CH = {
    sizeof(shoal_channel_callbacks), ch_open, NULL, ch_data, NULL, ch_status, NULL, NULL, ch_close};

/* A channel opened before authentication: with a single key and nothing
 * else to try, its CHANNEL_OPEN travels with the signed request and the
 * server reads it once the (deferred) decision is made (RFC 4252 5.1). */
static void test_channel_with_final_request(void **st)
{
    (void)st;
    no_password_cb = 1;
    for (int defer = 0; defer < 2; defer++) {
        pair pr;
        pair_new(&pr, NULL, NULL, NULL, NULL, 0);
        pr.sa.defer_auth = defer;
        add_private_identity(&pr, user_key);
        assert_int_equal(shoal_channel_open_session(pr.c, &CLI_CH, &pr.ca, &pr.ca.ch), 0);
        pump(&pr, 0);
        assert_true(pr.ca.authenticated);
        assert_int_equal(pr.ca.status, 7);
        assert_string_equal(pr.ca.out, "ran: do-it\n");
        assert_int_equal(pr.sa.auth_calls, 1);
        assert_int_equal(pr.sa.proven, 1);
        assert_int_equal(pr.sa.open_batch, pr.sa.auth_batch); /* same delivery */
        pair_free(&pr);
    }

    /* A second identity, or a password, could follow a failure: the open
     * waits for the success (one more delivery). */
    pair pr;
    for (int fallback = 0; fallback < 2; fallback++) {
        no_password_cb = fallback == 0; /* 0: a second key; 1: a password */
        pair_new(&pr, NULL, NULL, NULL, NULL, 0);
        add_private_identity(&pr, user_key);
        if (fallback == 0)
            add_user_key(&pr, other_key);
        assert_int_equal(shoal_channel_open_session(pr.c, &CLI_CH, &pr.ca, &pr.ca.ch), 0);
        pump(&pr, 0);
        assert_true(pr.ca.authenticated);
        assert_int_equal(pr.ca.status, 7);
        assert_true(pr.sa.open_batch > pr.sa.auth_batch);
        pair_free(&pr);
    }
    no_password_cb = 1;

    /* The final request fails: the client reports the authentication
     * failure (not the server's complaint about the early open) and the
     * channel learns it. */
    pair_new(&pr, NULL, NULL, NULL, NULL, 0);
    pr.sa.allowed = other_key;
    add_private_identity(&pr, user_key);
    assert_int_equal(shoal_channel_open_session(pr.c, &CLI_CH, &pr.ca, &pr.ca.ch), 0);
    pump(&pr, 0);
    assert_false(pr.ca.authenticated);
    assert_int_equal(pr.ca.err, SHOAL_ERR_AUTH_FAILED);
    assert_int_equal(pr.sa.authenticated, 0);
    pair_free(&pr);

    /* Closed before it was ever sent: freed at once, nothing goes out. */
    pair_new(&pr, NULL, NULL, NULL, NULL, 0);
    add_user_key(&pr, user_key);
    add_user_key(&pr, other_key);
    assert_int_equal(shoal_channel_open_session(pr.c, &CLI_CH, &pr.ca, &pr.ca.ch), 0);
    assert_int_equal(shoal_channel_close(pr.ca.ch), 0);
    assert_true(pr.ca.channel_closed);
    pr.ca.ch = NULL;
    pump(&pr, 0);
    assert_true(pr.ca.authenticated);
    assert_int_equal(pr.sa.open_batch, 0);
    pair_free(&pr);
    no_password_cb = 0;
}

/* The sender's contract (channel.h): a writer that stops because
 * shoal_channel_writable() said 0 -- without ever being turned away by a
 * write -- is still told when there is room again. The audit's uploads
 * above ~1 MiB hung because it was not. */
typedef struct feeder {
    shoal_channel *ch;
    size_t sent, total;
    int writable_calls, stops;
    int opened;
} feeder;

static void feed_some(feeder *f)
{
    for (;;) {
        size_t room = shoal_channel_writable(f->ch);
        if (room == 0 || f->sent == f->total) {
            if (room == 0)
                f->stops++;
            return;
        }
        static uint8_t junk[65536];
        size_t n = f->total - f->sent;
        if (n > room)
            n = room;
        if (n > sizeof(junk))
            n = sizeof(junk);
        size_t w = 0;
        assert_int_equal(shoal_channel_write(f->ch, junk, n, &w), 0);
        assert_int_equal(w, n); /* never more than writable() said: always taken whole */
        f->sent += w;
    }
}

static void feeder_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    feeder *f = ud;
    (void)reason;
    assert_int_equal(err, 0);
    f->opened = 1;
    shoal_channel_exec(ch, "sink");
    feed_some(f);
}

static void feeder_writable(shoal_channel *ch, void *ud)
{
    feeder *f = ud;
    (void)ch;
    f->writable_calls++;
    feed_some(f);
}

static void test_writable_zero_brings_on_writable(void **st)
{
    (void)st;
    pair pr;
    no_password_cb = 1;
    pair_new(&pr, NULL, NULL, NULL, NULL, 0);
    add_private_identity(&pr, user_key);
    pump(&pr, 0);
    assert_true(pr.ca.authenticated);
    feeder f = {0};
    f.total = 8u << 20; /* four times the server's window, eight times the output mark */
    static const shoal_channel_callbacks cb = {
        sizeof(shoal_channel_callbacks), feeder_open, NULL, NULL, NULL, NULL, NULL, feeder_writable, NULL};
    assert_int_equal(shoal_channel_open_session(pr.c, &cb, &f, &f.ch), 0);
    pump(&pr, 0);
    assert_true(f.opened);
    assert_true(f.stops > 0);
    assert_true(f.writable_calls > 0);
    assert_int_equal(f.sent, f.total);
    pair_free(&pr);
    no_password_cb = 0;
}

/* CVE-2025-22869's class: we start a key re-exchange with data to send,
 * and the peer stalls it (never answers our KEXINIT) while it keeps
 * sending requests that want replies. Our data is not taken meanwhile,
 * the replies are held until the exchange ends, and past the input-pause
 * mark the session stops taking input (the driver stops reading), so
 * memory stays bounded; the re-exchange deadline ends the session. */
static void test_stalled_rekey_bounded_and_deadline(void **st)
{
    (void)st;
    pair pr;
    no_password_cb = 1;
    pair_new(&pr, NULL, NULL, NULL, NULL, 0);
    add_private_identity(&pr, user_key);
    pump(&pr, 0);
    assert_true(pr.ca.authenticated);
    feeder f = {0};
    static const shoal_channel_callbacks fcb = {
        sizeof(shoal_channel_callbacks), feeder_open, NULL, NULL, NULL, NULL, NULL, feeder_writable, NULL};
    assert_int_equal(shoal_channel_open_session(pr.c, &fcb, &f, &f.ch), 0);
    pump(&pr, 0);
    assert_true(f.opened);
    assert_int_equal(shoal_session_rekey(pr.c), 0); /* at time 0 */
    const uint8_t *p;
    size_t n = shoal_session_output(pr.c, &p);
    shoal_session_output_consume(pr.c, n); /* our KEXINIT: never reaches the peer, which stalls */
    /* Our data waits for the exchange: nothing is taken. */
    static uint8_t big[1u << 20];
    size_t w = 1;
    assert_int_equal(shoal_channel_writable(f.ch), 0);
    assert_int_equal(shoal_channel_write(f.ch, big, sizeof(big), &w), 0);
    assert_int_equal(w, 0);
    unsigned sent = 0;
    while (sent < 2000000 && shoal_session_wants_input(pr.c)) {
        for (int k = 0; k < 256; k++, sent++)
            assert_int_equal(shoal__conn_keepalive(pr.s), 0); /* the peer's requests */
        n = shoal_session_output(pr.s, &p);
        assert_int_equal(shoal_session_recv(pr.c, p, n, 1000), 0);
        shoal_session_output_consume(pr.s, n);
        n = shoal_session_output(pr.c, &p); /* nothing may leave during the kex */
        shoal_session_output_consume(pr.c, n);
    }
    assert_false(shoal_session_wants_input(pr.c));
    assert_false(shoal_session_is_closed(pr.c));
    size_t held = shoal_buf_len(&pr.c->tp.kex_queue) + pr.c->tp.kex_queue_n * 64 + shoal_buf_len(&pr.c->tp.out);
    printf("paused after %u requests, %zu bytes of replies held (as sealed)\n", sent, held);
    assert_true(held <= SHOAL_IN_PAUSE + 4096);
    assert_true(shoal_buf_len(&pr.c->tp.in) <= (64u << 10) + SHOAL_MAX_PACKET);
    /* The deadline: 60 s after the KEXINIT went out. */
    assert_int_equal(shoal_session_deadline(pr.c), 60000);
    assert_int_equal(shoal_session_tick(pr.c, 59999), 0);
    assert_false(shoal_session_is_closed(pr.c));
    shoal_session_tick(pr.c, 60000);
    assert_true(shoal_session_is_closed(pr.c));
    const char *msg = NULL;
    assert_int_equal(shoal_session_error(pr.c, &msg), SHOAL_ERR_TIMEOUT);
    assert_non_null(strstr(msg, "key re-exchange did not complete within 60.0 s"));
    pair_free(&pr);
    no_password_cb = 0;
}

static void test_max_tries(void **st)
{
    (void)st;
    pair pr;
    pair_new(&pr, NULL, NULL, NULL, NULL, SHOAL_AUTH_PUBLICKEY);
    pr.sa.allowed = NULL; /* nothing is accepted */
    for (int i = 0; i < 10; i++)
        add_user_key(&pr, i % 2 ? user_key : other_key);
    pump(&pr, 0);
    assert_false(pr.ca.authenticated);
    assert_true(pr.sa.closed);
    assert_int_equal(pr.sa.err, SHOAL_ERR_AUTH_FAILED);
    assert_true(pr.sa.probes <= 7);
    pair_free(&pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_combination),
        cmocka_unit_test(test_probe_then_other_key),
        cmocka_unit_test(test_deferred_and_password),
        cmocka_unit_test(test_max_tries),
        cmocka_unit_test(test_channel_with_final_request),
        cmocka_unit_test(test_writable_zero_brings_on_writable),
        cmocka_unit_test(test_stalled_rekey_bounded_and_deadline),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
