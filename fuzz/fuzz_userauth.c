/* Fuzzes the server past the key exchange: user authentication and, once
 * in, the connection protocol (channels, requests, windows, global
 * requests), with real encryption.
 *
 * For every input a fresh client session (ours) and server session run
 * the key exchange in memory; the client is stopped right after it sent
 * its NEWKEYS (it never sees the server's), so it does nothing on its own.
 * The input is then a sequence of records, each a payload the client seals
 * with its keys (shoal__pkt_begin/_end) and hands to the server:
 *
 *   byte 0      bits 0-1: cipher (chacha20-poly1305, aes128-gcm,
 *               aes128-ctr + hmac-sha2-256-etm, aes256-ctr + hmac-sha2-512)
 *   records     u16 header (big endian): bits 0-14 payload length,
 *               bit 15 set = keep it for the next read (several packets
 *               in one recv); then the payload, type byte first.
 *
 * The server application answers from the request contents: password
 * "secret" succeeds, "partial" passes one step, "defer" is answered later
 * (success, at the next record); keyboard-interactive prompts twice and
 * accepts "secret"; channels of type "session" open, "direct-tcpip" opens
 * later, requests succeed or fail by type, data is echoed.
 *
 * Checked beyond crashes: the session contract (an error return means
 * closed with that error, one closed callback), and the login rules: the
 * authenticated callback only after a success we granted, no channel
 * before it, and never a proven key (the fuzzer cannot sign for this
 * session, so shoal_session_auth_key() must stay NULL). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "shoal/server.h"
#include "session/session_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static shoal_key *host_key;

static shoal_key *make_host_key(void)
{
    shoal_key *k = NULL;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;
    if (!pk || !bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &pem)) <= 0 || shoal_key_load_private((const uint8_t *)pem, (size_t)n, NULL, &k))
        abort();
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

static const struct {
    const char *cipher, *mac;
} algs[4] = {
    {"chacha20-poly1305@openssh.com", "hmac-sha2-256"},
    {"aes128-gcm@openssh.com", "hmac-sha2-256"},
    {"aes128-ctr", "hmac-sha2-256-etm@openssh.com"},
    {"aes256-ctr", "hmac-sha2-512"},
};

/* ---- the server application ---- */

typedef struct app {
    shoal_session *s;
    unsigned closed_calls;
    int closed_err;
    int granted;          /* we answered SUCCESS to something that may log in */
    int authenticated;
    int defer_pending;    /* an auth answer is owed */
    int kbd_round;
    shoal_channel *late_open; /* a channel whose opening we answer later */
    unsigned late_replies;    /* channel requests answered later */
    shoal_channel *late_reply_ch;
    volatile size_t sink;
} app;

static int on_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    app *a = ud;
    switch (req->method) {
    case SHOAL_METHOD_PASSWORD:
        if (strcmp(req->password, "secret") == 0) {
            a->granted = 1;
            return SHOAL_AUTH_SUCCESS;
        }
        if (strcmp(req->password, "partial") == 0) {
            shoal_session_set_auth_methods(s, SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_KBDINT);
            return SHOAL_AUTH_PARTIAL;
        }
        if (strcmp(req->password, "defer") == 0) {
            a->defer_pending = 1;
            return SHOAL_ERR_DEFERRED;
        }
        return SHOAL_AUTH_DENY;
    case SHOAL_METHOD_PUBLICKEY:
        /* Any key would do: only a proven one may log in, and the fuzzer
         * cannot prove one. */
        if (req->proven)
            a->granted = 1;
        return SHOAL_AUTH_SUCCESS;
    case SHOAL_METHOD_KBDINT:
        if (req->n_responses > 0 && strcmp(req->responses[0], "secret") == 0) {
            a->granted = 1;
            return SHOAL_AUTH_SUCCESS;
        }
        if (a->kbd_round++ < 2) {
            static const shoal_kbdint_prompt prompts[2] = {{"Password: ", 0}, {"Code: ", 1}};
            if (shoal_session_kbdint_prompts(s, "fuzz", "two prompts", 2, prompts) != 0)
                abort();
            return SHOAL_AUTH_PROMPT;
        }
        return SHOAL_AUTH_DENY;
    default:
        return SHOAL_AUTH_DENY;
    }
}

static void on_authenticated(shoal_session *s, const char *user, void *ud)
{
    app *a = ud;
    (void)s;
    if (!a->granted || a->authenticated || !user)
        abort();
    a->authenticated = 1;
}

static int on_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    app *a = ud;
    size_t w;
    for (const char *p = req->command; p && *p; p++)
        a->sink++;
    if (!strcmp(req->type, "exec")) {
        shoal_channel_write(ch, "out\n", 4, &w);
        shoal_channel_write_stderr(ch, "err\n", 4, &w);
        shoal_channel_exit_status(ch, 0);
        return 1;
    }
    if (!strcmp(req->type, "shell") && !a->late_replies) {
        a->late_replies = 1;
        a->late_reply_ch = ch;
        return SHOAL_ERR_DEFERRED;
    }
    if (!strcmp(req->type, "signal")) {
        shoal_channel_exit_signal(ch, req->signal, 0, "killed");
        shoal_channel_close(ch);
        return 1;
    }
    return !strcmp(req->type, "pty-req") || !strcmp(req->type, "subsystem");
}

static void on_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    size_t w;
    (void)stream;
    (void)ud;
    shoal_channel_write(ch, d, n, &w);
}

static void on_eof(shoal_channel *ch, void *ud)
{
    (void)ud;
    shoal_channel_send_eof(ch);
    shoal_channel_close(ch);
}

static void on_chan_close(shoal_channel *ch, void *ud)
{
    app *a = ud;
    if (a->late_open == ch)
        a->late_open = NULL;
    if (a->late_reply_ch == ch) {
        a->late_reply_ch = NULL;
        a->late_replies = 0;
    }
}

static int on_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    app *a = ud;
    (void)s;
    if (!a->authenticated)
        abort();
    static const shoal_server_channel_callbacks cb = {
        sizeof(shoal_server_channel_callbacks), on_request, on_data, on_eof, NULL, on_chan_close};
    if (!strcmp(type, "session")) {
        shoal_channel_set_server_callbacks(ch, &cb, a);
        return 0;
    }
    if (!strcmp(type, "direct-tcpip") && !a->late_open) {
        shoal_channel_set_server_callbacks(ch, &cb, a);
        a->late_open = ch;
        return SHOAL_ERR_DEFERRED;
    }
    return strcmp(type, "x11") ? 3 : 1;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    app *a = ud;
    (void)s;
    a->closed_calls++;
    a->closed_err = err;
    for (const char *p = message; p && *p; p++)
        a->sink++;
}

static int accept_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    (void)ud;
    return 0;
}

/* Answers what the application deferred, between two reads. */
static void answer_late(app *a)
{
    if (a->defer_pending) {
        a->defer_pending = 0;
        a->granted = 1;
        shoal_session_auth_reply(a->s, SHOAL_AUTH_SUCCESS);
    }
    if (a->late_open) {
        shoal_channel *ch = a->late_open;
        a->late_open = NULL;
        shoal_channel_open_reply(ch, 0, NULL);
    }
    if (a->late_reply_ch && a->late_replies == 1) {
        a->late_replies = 2; /* one deferred reply per connection */
        shoal_channel_request_reply(a->late_reply_ch, 1);
    }
}

/* ---- the pair ---- */

static void discard_output(shoal_session *s)
{
    const uint8_t *p;
    size_t n = shoal_session_output(s, &p);
    if (n)
        shoal_session_output_consume(s, n);
}

/* Client -> server; returns the server's recv result. */
static int client_to_server(shoal_session *c, shoal_session *s)
{
    const uint8_t *p;
    size_t n = shoal_session_output(c, &p);
    if (!n)
        return SHOAL_OK;
    int rc = shoal_session_is_closed(s) ? SHOAL_ERR_CLOSED : shoal_session_recv(s, p, n, 0);
    shoal_session_output_consume(c, n);
    return rc;
}

/* The key exchange: the client gets the server's version and plaintext
 * packets up to (without) the server's NEWKEYS. Returns 0 once the server
 * has the client's NEWKEYS. */
static int run_kex(shoal_session *c, shoal_session *s, shoal_buf *to_client)
{
    int keyed = 0;
    for (int round = 0; round < 16; round++) {
        if (client_to_server(c, s))
            return -1;
        if (s->tp.first_kex_done)
            return keyed ? 0 : -1;
        const uint8_t *p;
        size_t n = shoal_session_output(s, &p);
        if (!keyed && n && shoal_buf_put(to_client, p, n))
            return -1;
        shoal_session_output_consume(s, n);
        while (!keyed && shoal_buf_len(to_client)) {
            const uint8_t *q = shoal_buf_ptr(to_client);
            size_t m = shoal_buf_len(to_client), take;
            if (!c->tp.version_done) {
                const uint8_t *nl = memchr(q, '\n', m);
                if (!nl)
                    break;
                take = (size_t)(nl - q) + 1;
            } else {
                if (m < 6 || m < 4 + (size_t)shoal_load_u32(q))
                    break;
                take = 4 + (size_t)shoal_load_u32(q);
                if (q[5] == SSH_MSG_NEWKEYS) {
                    keyed = 1;
                    break;
                }
            }
            if (shoal_session_recv(c, q, take, 0))
                return -1;
            shoal_buf_consume(to_client, take);
        }
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!host_key)
        host_key = make_host_key();
    if (size == 0)
        return 0;
    unsigned pick = data[0] & 3;
    data++;
    size--;

    app a;
    memset(&a, 0, sizeof(a));
    shoal_server_config sc;
    shoal_server_config_init(&sc);
    sc.host_keys = &host_key;
    sc.n_host_keys = 1;
    sc.auth_methods = SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD | SHOAL_AUTH_KBDINT;
    sc.banner = "fuzz banner";
    sc.max_channels = 4;
    shoal_server_callbacks scb = {
        sizeof(shoal_server_callbacks), on_auth, on_authenticated, on_channel_open, on_closed, NULL};
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "fuzz";
    cc.kex_algorithms = "curve25519-sha256";
    cc.hostkey_algorithms = "ssh-ed25519";
    cc.ciphers = algs[pick].cipher;
    cc.macs = algs[pick].mac;
    shoal_client_callbacks ccb;
    shoal_client_callbacks_init(&ccb);
    ccb.hostkey = accept_hostkey;
    shoal_session *c = NULL, *s = NULL;
    if (shoal_session_new_server(&s, &sc, &scb, &a) || shoal_session_new_client(&c, &cc, &ccb, NULL) ||
        shoal_session_start(s, 0) || shoal_session_start(c, 0))
        abort();
    a.s = s;
    shoal_buf to_client;
    shoal_buf_init(&to_client, 1u << 20);
    if (run_kex(c, s, &to_client) != 0 || shoal_session_phase(s) != SHOAL_PHASE_AUTH)
        abort();
    shoal_buf_free(&to_client);
    discard_output(s);

    size_t off = 0;
    uint64_t now = 1;
    while (off + 2 <= size && !shoal_session_is_closed(s)) {
        unsigned hdr = (unsigned)data[off] << 8 | data[off + 1];
        size_t len = hdr & 0x7fff;
        int hold = (hdr & 0x8000) != 0;
        off += 2;
        if (len > size - off)
            len = size - off;
        if (len == 0)
            continue;
        size_t mark;
        if (shoal__pkt_begin(c, data[off], &mark) || shoal_buf_put(&c->tp.out, data + off + 1, len - 1) ||
            shoal__pkt_end(c, mark))
            abort();
        off += len;
        if (hold && off + 2 <= size)
            continue;
        int rc = client_to_server(c, s);
        if (rc != 0 &&
            (!shoal_session_is_closed(s) || shoal_session_error(s, NULL) != rc || a.closed_calls != 1 ||
             a.closed_err != rc))
            abort();
        discard_output(s);
        if (!shoal_session_is_closed(s))
            answer_late(&a);
        discard_output(s);
        if (shoal_session_deadline(s) <= now)
            shoal_session_tick(s, now);
        now += 10;
    }
    if (!shoal_session_is_closed(s) && client_to_server(c, s) != 0 && a.closed_calls != 1)
        abort();
    /* The fuzzer cannot sign for this session: no key is ever proven. */
    if (shoal_session_auth_key(s) || (a.authenticated && !shoal_session_is_closed(s) &&
                                      shoal_session_phase(s) != SHOAL_PHASE_OPEN))
        abort();
    shoal_session_recv_eof(s, now);
    discard_output(s);
    if (!shoal_session_is_closed(s) || a.closed_calls != 1)
        abort();
    shoal_session_free(s);
    shoal_session_free(c);
    return 0;
}
