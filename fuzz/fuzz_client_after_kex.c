/* Fuzzes the client past the key exchange: everything a server sends once
 * keys are in place (EXT_INFO, SERVICE_ACCEPT, USERAUTH_FAILURE / PK_OK /
 * INFO_REQUEST / BANNER / SUCCESS, then the whole connection layer:
 * channel confirmations, data, requests, exit status and signal, windows,
 * global requests, a KEXINIT for a rekey), with real encryption.
 *
 * How the harness gets there without changing the library: for every
 * input a fresh server session (ours, Ed25519 host key) and client session
 * run the initial key exchange in memory until the client has taken the
 * server's NEWKEYS and so has keys in both directions. The server is then
 * only an encryptor: it never reads what the client sends after its
 * NEWKEYS; the fuzzer's payloads are sealed with the server's outgoing
 * keys by shoal__send_payload() (the library's own packet sealing,
 * reached through session/session_impl.h as fuzz_userauth does for the
 * other direction) and handed to the client. The server's own EXT_INFO is
 * switched off (its peer_ext_info flag is cleared once it has read the
 * client's KEXINIT) so that the fuzzer decides what the first packet under
 * the new keys is. Nothing in src/ is compiled differently for this.
 *
 * Keys are fixed: the host key and the two user keys are Ed25519 keys made
 * from constant 32-byte seeds (test patterns, below), so a signature over
 * a given exchange hash is the same every run and PK_OK seeds can name the
 * user key's blob (fuzz/make_client_seeds.py derives the same blobs). The
 * ephemeral X25519 keys are random, which changes the ciphertext but not
 * what the client sees once decrypted.
 *
 * The client: user "fuzz", identity 0 = user key A in memory (signed at
 * once, in the same flight as NEWKEYS), identity 1 = user key B's public
 * blob only (signed through the sign callback, answered later), a password
 * callback and a keyboard-interactive callback (both answered later,
 * between two records), keepalives every second (the clock advances 400 ms
 * a record, 1.5 s for an empty one). Once authenticated it opens a session
 * channel (or before authentication, see byte 0), asks for a pty, an
 * environment variable and a command, writes stdin as the window allows
 * and sends EOF; a second channel is opened from the first one's
 * confirmation when byte 0 says so.
 * The application also reacts to what it is told: channel data or an
 * exit-signal message starting "bye" (exit status 255), or a banner
 * starting "bye", make it end the session from inside the callback; data
 * starting "cls" (exit status 254) make it close the channel.
 *
 * Input:
 *   byte 0    bits 0-1: cipher (chacha20-poly1305, aes128-gcm,
 *             aes128-ctr + hmac-sha2-256-etm, aes256-ctr + hmac-sha2-512)
 *             bit 2: open the channel before authentication
 *             bits 3-4: delivery (whole, 1-byte, 7-byte, 64-byte pieces)
 *             bit 5: a second channel; bit 6: manual window on channels
 *             bit 7: one identity only (key A) and no password or
 *             keyboard-interactive callback: the signed request is the
 *             final one, so an early channel open travels with it
 *   records   u16 header (big endian): bits 0-14 payload length, bit 15
 *             set = keep it for the next read (several packets in one
 *             recv); then the payload, type byte first. A record of
 *             length 0 lets 1.5 s pass instead (keepalives are due).
 *
 * Checked beyond crashes: the session contract (an error return means
 * closed with that error, one closed callback), authenticated at most once
 * and only in the OPEN phase, each channel's on_close exactly once (every
 * channel is closed once the session is), no channel callback after it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keys/key.h"
#include "shoal/server.h"
#include "session/session_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- fixed keys ---- */

static shoal_key *host_key, *user_a, *user_b;
static shoal_buf blob_a, blob_b;

/* An Ed25519 key from the seed first, first+1, ..., first+31. */
static shoal_key *fixed_ed25519(uint8_t first)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(first + i);
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;
    shoal_key *k = NULL;
    if (!pk || !bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &pem)) <= 0 || shoal_key_load_private((const uint8_t *)pem, (size_t)n, NULL, &k))
        abort();
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

static void make_keys(void)
{
    host_key = fixed_ed25519(0x10);
    user_a = fixed_ed25519(0x40);
    user_b = fixed_ed25519(0x80);
    shoal_buf_init(&blob_a, 4096);
    shoal_buf_init(&blob_b, 4096);
    if (shoal_key_to_blob(user_a, &blob_a) || shoal_key_to_blob(user_b, &blob_b))
        abort();
}

static const struct {
    const char *cipher, *mac;
} algs[4] = {
    {"chacha20-poly1305@openssh.com", "hmac-sha2-256"},
    {"aes128-gcm@openssh.com", "hmac-sha2-256"},
    {"aes128-ctr", "hmac-sha2-256-etm@openssh.com"},
    {"aes256-ctr", "hmac-sha2-512"},
};

/* ---- the client application ---- */

#define MAX_CH 8

typedef struct chan_state {
    shoal_channel *ch;
    int opened, closed;
    size_t sent;
} chan_state;

typedef struct app {
    shoal_session *c;
    unsigned closed_calls;
    int closed_err;
    unsigned authenticated;
    int app_ended; /* the application disconnected from a callback */
    int want_second, manual;
    int sign_pending, password_pending, kbd_pending;
    unsigned kbd_n;
    const uint8_t *sign_data;
    size_t sign_len;
    uint8_t sign_buf[4096];
    char sign_alg[64];
    chan_state chans[MAX_CH];
    unsigned nchans;
    volatile size_t sink;
} app;

static void read_text(app *a, const char *t)
{
    for (; t && *t; t++)
        a->sink += (unsigned char)*t;
}

static chan_state *state_of(app *a, void *ud)
{
    chan_state *cs = ud;
    if (cs < a->chans || cs >= a->chans + a->nchans || cs->closed)
        abort(); /* a callback for a channel after its on_close */
    return cs;
}

static app *the_app;
static int verbose = -1; /* SHOAL_FUZZ_LOG=1: the client's log on stderr, to check what a seed reaches */

static void write_stdin(shoal_channel *ch, chan_state *cs)
{
    static const uint8_t chunk[4096];
    while (cs->sent < 8192) {
        size_t w = 0;
        if (shoal_channel_write(ch, chunk, sizeof(chunk), &w) || w == 0)
            return;
        cs->sent += w;
    }
    shoal_channel_send_eof(ch);
}

static void open_channel(app *a);

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    app *a = the_app;
    chan_state *cs = state_of(a, ud);
    if (cs->opened)
        abort();
    cs->opened = 1;
    read_text(a, reason);
    if (err)
        return;
    shoal_channel_pty(ch, "xterm", 80, 24);
    shoal_channel_env(ch, "LANG", "C");
    shoal_channel_exec(ch, "fuzz command");
    write_stdin(ch, cs);
    if (a->want_second && a->nchans < 2)
        open_channel(a);
}

static void ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    (void)ch;
    (void)ok;
    read_text(the_app, request);
    state_of(the_app, ud);
}

/* Data starting "bye" makes the application end the session from the
 * callback, "cls" close the channel (exit status 255 and 254 likewise). */
static int app_reacts(shoal_channel *ch, const uint8_t *d, size_t n)
{
    if (n >= 3 && !memcmp(d, "bye", 3)) {
        the_app->app_ended = 1;
        shoal_session_disconnect(shoal_channel_session(ch), "the application is done");
        return 1;
    }
    if (n >= 3 && !memcmp(d, "cls", 3))
        shoal_channel_close(ch);
    return 0;
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    app *a = the_app;
    state_of(a, ud);
    for (size_t i = 0; i < n; i++)
        a->sink += d[i] + (unsigned)stream;
    if (app_reacts(ch, d, n))
        return;
    if (a->manual)
        shoal_channel_consume(ch, n);
}

static void ch_eof(shoal_channel *ch, void *ud)
{
    state_of(the_app, ud);
    shoal_channel_close(ch);
}

static void ch_status(shoal_channel *ch, uint32_t status, void *ud)
{
    state_of(the_app, ud);
    the_app->sink += status;
    if (status >= 254)
        app_reacts(ch, (const uint8_t *)(status == 255 ? "bye" : "cls"), 3);
}

static void ch_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    state_of(the_app, ud);
    read_text(the_app, sig);
    read_text(the_app, msg);
    the_app->sink += (unsigned)core;
    app_reacts(ch, (const uint8_t *)msg, strlen(msg));
}

static void ch_writable(shoal_channel *ch, void *ud)
{
    write_stdin(ch, state_of(the_app, ud));
}

static void ch_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    chan_state *cs = state_of(the_app, ud);
    cs->closed = 1;
}

static const shoal_channel_callbacks chan_cb = {
    sizeof(shoal_channel_callbacks), ch_open, ch_request, ch_data, ch_eof, ch_status, ch_signal, ch_writable, ch_close};

static void open_channel(app *a)
{
    if (a->nchans >= MAX_CH)
        return;
    chan_state *cs = &a->chans[a->nchans++];
    if (shoal_channel_open_session(a->c, &chan_cb, cs, &cs->ch) != 0) {
        a->nchans--;
        memset(cs, 0, sizeof(*cs));
        return;
    }
    if (a->manual)
        shoal_channel_set_manual_window(cs->ch, 1);
}

static int cli_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)ud;
    if (!shoal_key_equal_public(info->key, host_key))
        abort();
    return 0;
}

static int cli_sign(shoal_session *s, unsigned ident, const char *sigalg, const uint8_t *d, size_t n, void *ud)
{
    app *a = ud;
    (void)s;
    if (ident != 1 || n > sizeof(a->sign_buf))
        return SHOAL_ERR_UNSUPPORTED;
    memcpy(a->sign_buf, d, n);
    a->sign_len = n;
    snprintf(a->sign_alg, sizeof(a->sign_alg), "%s", sigalg);
    a->sign_pending = 1;
    return SHOAL_ERR_DEFERRED;
}

static int cli_password(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    read_text(ud, user);
    ((app *)ud)->password_pending = 1;
    return SHOAL_ERR_DEFERRED;
}

static int cli_kbdint(shoal_session *s, const shoal_kbdint_request *req, void *ud)
{
    app *a = ud;
    (void)s;
    read_text(a, req->name);
    read_text(a, req->instruction);
    for (unsigned i = 0; i < req->nprompts; i++)
        read_text(a, req->prompts[i].text);
    a->kbd_n = req->nprompts;
    a->kbd_pending = 1;
    return SHOAL_ERR_DEFERRED;
}

static void cli_banner(shoal_session *s, const char *text, size_t len, void *ud)
{
    read_text(ud, text);
    if (len >= 3 && !memcmp(text, "bye", 3)) {
        ((app *)ud)->app_ended = 1;
        shoal_session_disconnect(s, "the application is done");
    }
}

static void cli_authenticated(shoal_session *s, void *ud)
{
    app *a = ud;
    if (a->authenticated++ || shoal_session_phase(s) != SHOAL_PHASE_OPEN)
        abort();
    if (a->nchans == 0)
        open_channel(a);
}

static void cli_closed(shoal_session *s, int err, const char *message, void *ud)
{
    app *a = ud;
    (void)s;
    a->closed_calls++;
    a->closed_err = err;
    read_text(a, message);
    if (verbose)
        fprintf(stderr, "client closed: %s: %s\n", shoal_errname(err), message ? message : "");
}

static void cli_log(shoal_session *s, int level, const char *message, void *ud)
{
    (void)s;
    read_text(ud, message);
    if (verbose)
        fprintf(stderr, "client[%d]: %s\n", level, message);
}

/* Answers what the client application deferred, between two reads. */
static void answer_late(app *a)
{
    shoal_session *c = a->c;
    if (a->sign_pending) {
        a->sign_pending = 0;
        shoal_buf sig;
        shoal_buf_init(&sig, 1u << 16);
        if (shoal_key_sign(user_b, a->sign_alg, a->sign_buf, a->sign_len, &sig) == 0)
            shoal_session_sign_reply(c, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
        else
            shoal_session_sign_reply(c, NULL, 0);
        shoal_buf_free(&sig);
    }
    if (a->password_pending && !shoal_session_is_closed(c)) {
        a->password_pending = 0;
        shoal_session_password_reply(c, "secret");
    }
    if (a->kbd_pending && !shoal_session_is_closed(c)) {
        static const char *const answers[4] = {"secret", "123456", "", "yes"};
        const char *resp[SHOAL_MAX_KBDINT_PROMPTS];
        a->kbd_pending = 0;
        for (unsigned i = 0; i < a->kbd_n && i < SHOAL_MAX_KBDINT_PROMPTS; i++)
            resp[i] = answers[i % 4];
        shoal_session_kbdint_reply(c, a->kbd_n, resp);
    }
}

/* ---- the key exchange ---- */

/* The server never reaches authentication here; its callbacks only have
 * to exist. */
static int srv_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)s;
    (void)req;
    (void)ud;
    abort();
}

static int srv_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    (void)ch;
    (void)type;
    (void)ud;
    abort();
}

static void discard_output(shoal_session *s)
{
    const uint8_t *p;
    size_t n = shoal_session_output(s, &p);
    if (n)
        shoal_session_output_consume(s, n);
}

/* Client -> server, one version line or plaintext packet at a time, until
 * the client's NEWKEYS (what follows is for a server we do not run). After
 * each, the server's EXT_INFO is turned off (see the top). Returns 1 once
 * the client's NEWKEYS went by. */
static int client_to_server(shoal_session *c, shoal_session *s, shoal_buf *pending)
{
    const uint8_t *p;
    size_t n = shoal_session_output(c, &p);
    if (n && shoal_buf_put(pending, p, n))
        abort();
    shoal_session_output_consume(c, n);
    for (;;) {
        const uint8_t *q = shoal_buf_ptr(pending);
        size_t m = shoal_buf_len(pending), take;
        if (!m)
            return 0;
        if (!s->tp.version_done) {
            const uint8_t *nl = memchr(q, '\n', m);
            if (!nl)
                return 0;
            take = (size_t)(nl - q) + 1;
        } else {
            if (m < 6 || m < 4 + (size_t)shoal_load_u32(q))
                return 0;
            take = 4 + (size_t)shoal_load_u32(q);
            if (q[5] == SSH_MSG_NEWKEYS)
                return 1;
        }
        if (shoal_session_recv(s, q, take, 0))
            abort();
        s->tp.peer_ext_info = 0;
        shoal_buf_consume(pending, take);
    }
}

static void run_kex(shoal_session *c, shoal_session *s)
{
    shoal_buf pending;
    shoal_buf_init(&pending, 1u << 20);
    int client_keyed = 0;
    for (int round = 0; round < 16 && !c->tp.first_kex_done; round++) {
        if (!client_keyed)
            client_keyed = client_to_server(c, s, &pending);
        else
            discard_output(c);
        const uint8_t *p;
        size_t n = shoal_session_output(s, &p);
        if (n && shoal_session_recv(c, p, n, 0))
            abort();
        shoal_session_output_consume(s, n);
    }
    shoal_buf_free(&pending);
    const uint8_t *p_unused;
    if (!c->tp.first_kex_done || !s->tp.newkeys_sent || shoal_session_phase(c) != SHOAL_PHASE_AUTH ||
        shoal_session_output(s, &p_unused) != 0)
        abort();
    discard_output(c);
}

/* ---- the input ---- */

/* Server -> client in pieces of `piece` bytes (0 = at once). */
static int deliver(shoal_session *s, shoal_session *c, size_t piece, uint64_t now)
{
    const uint8_t *p;
    size_t n = shoal_session_output(s, &p);
    int rc = SHOAL_OK;
    for (size_t off = 0; off < n && !rc && !shoal_session_is_closed(c);) {
        size_t k = piece && n - off > piece ? piece : n - off;
        rc = shoal_session_recv(c, p + off, k, now);
        off += k;
    }
    shoal_session_output_consume(s, n);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!host_key)
        make_keys();
    if (verbose < 0)
        verbose = getenv("SHOAL_FUZZ_LOG") != NULL;
    if (size == 0)
        return 0;
    static const size_t pieces[4] = {0, 1, 7, 64};
    unsigned flags = data[0];
    data++;
    size--;

    app a;
    memset(&a, 0, sizeof(a));
    the_app = &a;
    a.want_second = (flags >> 5) & 1;
    a.manual = (flags >> 6) & 1;
    size_t piece = pieces[(flags >> 3) & 3];

    shoal_server_config sc;
    shoal_server_config_init(&sc);
    sc.host_keys = &host_key;
    sc.n_host_keys = 1;
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "fuzz";
    cc.kex_algorithms = "curve25519-sha256";
    cc.hostkey_algorithms = "ssh-ed25519";
    cc.ciphers = algs[flags & 3].cipher;
    cc.macs = algs[flags & 3].mac;
    cc.keepalive_interval_ms = 1000;
    int single = (flags >> 7) & 1;
    shoal_client_callbacks ccb = {sizeof(shoal_client_callbacks),
                                  cli_hostkey,
                                  cli_sign,
                                  single ? NULL : cli_password,
                                  single ? NULL : cli_kbdint,
                                  cli_banner,
                                  cli_authenticated,
                                  cli_closed,
                                  cli_log};
    shoal_server_callbacks scb = {sizeof(shoal_server_callbacks), srv_auth, NULL, srv_channel_open, NULL, NULL};
    shoal_session *c = NULL, *s = NULL;
    if (shoal_session_new_server(&s, &sc, &scb, NULL) || shoal_session_new_client(&c, &cc, &ccb, &a))
        abort();
    a.c = c;
    shoal_session_set_log_level(c, 3);
    if (shoal_session_add_identity(c, shoal_buf_ptr(&blob_a), shoal_buf_len(&blob_a), shoal_key_ref(user_a)) < 0 ||
        (!single && shoal_session_add_identity(c, shoal_buf_ptr(&blob_b), shoal_buf_len(&blob_b), NULL) < 0))
        abort();
    if (flags & 4)
        open_channel(&a);
    if (shoal_session_start(s, 0) || shoal_session_start(c, 0))
        abort();
    run_kex(c, s);

    size_t off = 0;
    uint64_t now = 1;
    while (off + 2 <= size && !shoal_session_is_closed(c)) {
        unsigned hdr = (unsigned)data[off] << 8 | data[off + 1];
        size_t len = hdr & 0x7fff;
        int hold = (hdr & 0x8000) != 0;
        off += 2;
        if (len > size - off)
            len = size - off;
        if (len == 0) {
            now += 1500;
            if (!hold && shoal_session_deadline(c) <= now)
                shoal_session_tick(c, now);
            discard_output(c);
            continue;
        }
        if (shoal__send_payload(s, data + off, len))
            abort();
        off += len;
        if (hold && off + 2 <= size)
            continue;
        int rc = deliver(s, c, piece, now);
        /* An error return means closed with that error; a session the
         * application closed answers SHOAL_ERR_CLOSED. */
        int want = a.app_ended && a.closed_err == 0 ? SHOAL_ERR_CLOSED : a.closed_err;
        if (rc != 0 && (!shoal_session_is_closed(c) || a.closed_calls != 1 || rc != want ||
                        shoal_session_error(c, NULL) != a.closed_err))
            abort();
        discard_output(c);
        if (!shoal_session_is_closed(c))
            answer_late(&a);
        discard_output(c);
        now += 400;
        if (!shoal_session_is_closed(c) && shoal_session_deadline(c) <= now)
            shoal_session_tick(c, now);
        discard_output(c);
    }
    if (!shoal_session_is_closed(c) && deliver(s, c, piece, now) != 0 && a.closed_calls != 1)
        abort();
    if (a.authenticated && !shoal_session_is_closed(c) && shoal_session_phase(c) != SHOAL_PHASE_OPEN)
        abort();
    shoal_session_recv_eof(c, now);
    discard_output(c);
    if (!shoal_session_is_closed(c) || a.closed_calls != 1)
        abort();
    /* The session is closed: every channel it made has had its on_close. */
    for (unsigned i = 0; i < a.nchans; i++)
        if (!a.chans[i].closed)
            abort();
    shoal_session_free(c);
    shoal_session_free(s);
    return 0;
}
