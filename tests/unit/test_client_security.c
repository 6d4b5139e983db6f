/* Security regressions of the client session after the key exchange,
 * entirely in memory.
 *
 * A real server session (ours) runs the key exchange against the client,
 * and is then used only as an encryptor: payloads we craft are sealed with
 * the server's outgoing keys (shoal__send_payload) and handed to the
 * client, in any client state. The server's own EXT_INFO is switched off
 * (peer_ext_info cleared once it has read the client's KEXINIT) so the
 * test decides what comes first under the new keys. What the client sends
 * back is decrypted with the server's pending client-to-server keys (its
 * next_rx, taken before the server could install them), so a case can
 * check the client's answers too (DISCONNECT, channel requests, data).
 *
 * Cases, named after the CVE class they guard against:
 *  - cve_2023_46445_ext_info_out_of_place: EXT_INFO is taken only as the
 *    first packet after the first NEWKEYS, or once right before
 *    USERAUTH_SUCCESS (RFC 8308 2.4); anywhere else the client disconnects
 *    (AsyncSSH's "rogue extension negotiation");
 *  - cve_2026_59843_open_confirmation_max_packet_zero: a channel confirmed
 *    with a maximum packet size of 0 ends the session cleanly (the channel
 *    hears about it, nothing is sent on it); 1 still works. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/cipher.h"
#include "keys/key.h"
#include "shoal/server.h"
#include "session/session_impl.h"

static shoal_key *host_key, *user_key;

static shoal_key *gen_ed25519(void)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(pk);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    assert_true(n > 0);
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_load_private((const uint8_t *)pem, (size_t)n, NULL, &k), 0);
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

/* ---- the client application ---- */

typedef struct capp {
    int authenticated, closed_calls, closed_err;
    char closed_msg[300];
    shoal_channel *ch;
    int ch_open_calls, ch_open_err, ch_close_calls;
    size_t stdin_sent;
    int end_in; /* END_IN_*: the application disconnects from that callback */
    int end_calls;
} capp;

enum { END_IN_STATUS = 1, END_IN_SIGNAL, END_IN_REPLY, END_IN_DATA, END_IN_EOF, END_IN_OPEN, END_IN_CLOSE };

static int cli_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)ud;
    assert_true(shoal_key_equal_public(info->key, host_key));
    return 0;
}

static void cli_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    ((capp *)ud)->authenticated++;
}

static void cli_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    capp *a = ud;
    (void)s;
    a->closed_calls++;
    a->closed_err = err;
    snprintf(a->closed_msg, sizeof(a->closed_msg), "%s", msg ? msg : "");
}

/* The application ends the session from inside a callback. */
static void maybe_end(shoal_channel *ch, capp *a, int where)
{
    if (a->end_in == where) {
        a->end_calls++;
        shoal_session_disconnect(shoal_channel_session(ch), "the application is done");
    }
}

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    capp *a = ud;
    (void)reason;
    a->ch_open_calls++;
    a->ch_open_err = err;
    if (err)
        return;
    if (a->end_in == END_IN_OPEN) {
        maybe_end(ch, a, END_IN_OPEN);
        return;
    }
    assert_int_equal(shoal_channel_exec(ch, "true"), 0);
    static const char input[100];
    size_t w = 0;
    assert_int_equal(shoal_channel_write(ch, input, sizeof(input), &w), 0);
    a->stdin_sent += w;
}

static void ch_close(shoal_channel *ch, void *ud)
{
    ((capp *)ud)->ch_close_calls++;
    maybe_end(ch, ud, END_IN_CLOSE);
}

static void ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    (void)request;
    (void)ok;
    maybe_end(ch, ud, END_IN_REPLY);
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    (void)stream;
    (void)d;
    (void)n;
    maybe_end(ch, ud, END_IN_DATA);
}

static void ch_eof(shoal_channel *ch, void *ud)
{
    maybe_end(ch, ud, END_IN_EOF);
}

static void ch_status(shoal_channel *ch, uint32_t status, void *ud)
{
    (void)status;
    maybe_end(ch, ud, END_IN_STATUS);
}

static void ch_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    (void)sig;
    (void)core;
    (void)msg;
    maybe_end(ch, ud, END_IN_SIGNAL);
}

static const shoal_channel_callbacks CH_CB = {
    sizeof(shoal_channel_callbacks), ch_open, ch_request, ch_data, ch_eof, ch_status, ch_signal, NULL, ch_close};

/* ---- the server: key exchange only ---- */

static int srv_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)s;
    (void)req;
    (void)ud;
    fail_msg("the server never reaches authentication here");
    return SHOAL_AUTH_DENY;
}

static int srv_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    (void)ch;
    (void)type;
    (void)ud;
    fail_msg("the server never reaches the connection protocol here");
    return 1;
}

/* ---- the pair ---- */

typedef struct msg {
    uint8_t *p;
    size_t n;
} msg;

typedef struct cpair {
    shoal_session *c, *s;
    capp ca;
    /* the observer: reads the client's output under its new keys */
    shoal_pktcrypt *obs;
    uint32_t obs_seq, obs_len;
    int obs_have_len;
    shoal_buf obs_in;
    msg *msgs;
    size_t nmsgs, msgcap;
    unsigned type_count[256];
} cpair;

static void record_msg(cpair *cp, const uint8_t *p, size_t n)
{
    assert_true(n >= 1);
    if (cp->nmsgs == cp->msgcap) {
        cp->msgcap = cp->msgcap ? cp->msgcap * 2 : 32;
        cp->msgs = realloc(cp->msgs, cp->msgcap * sizeof(*cp->msgs));
        assert_non_null(cp->msgs);
    }
    msg *m = &cp->msgs[cp->nmsgs++];
    m->p = malloc(n);
    assert_non_null(m->p);
    memcpy(m->p, p, n);
    m->n = n;
    cp->type_count[p[0]]++;
}

/* Decrypts what the client sent under its new keys. */
static void decode(cpair *cp)
{
    for (;;) {
        uint8_t *p = shoal_buf_mutptr(&cp->obs_in);
        size_t n = shoal_buf_len(&cp->obs_in);
        size_t tag = shoal_pktcrypt_tag_len(cp->obs);
        if (!cp->obs_have_len) {
            if (n < shoal_pktcrypt_first_len(cp->obs))
                return;
            assert_int_equal(shoal_pktcrypt_peek_length(cp->obs, cp->obs_seq, p, &cp->obs_len), 0);
            assert_true(cp->obs_len >= 5 && cp->obs_len < SHOAL_MAX_PACKET);
            cp->obs_have_len = 1;
        }
        size_t total = 4 + (size_t)cp->obs_len + tag;
        if (n < total)
            return;
        assert_int_equal(shoal_pktcrypt_open(cp->obs, cp->obs_seq, p, 4 + cp->obs_len, p + 4 + cp->obs_len), 0);
        uint8_t pad = p[4];
        assert_true(pad >= 4 && (size_t)pad + 1 < cp->obs_len);
        record_msg(cp, p + 5, cp->obs_len - pad - 1);
        cp->obs_seq++;
        cp->obs_have_len = 0;
        shoal_buf_consume(&cp->obs_in, total);
    }
}

static void take_client_output(cpair *cp)
{
    const uint8_t *p;
    size_t n = shoal_session_output(cp->c, &p);
    if (!n)
        return;
    assert_int_equal(shoal_buf_put(&cp->obs_in, p, n), 0);
    shoal_session_output_consume(cp->c, n);
    if (cp->obs)
        decode(cp);
}

/* Moves the client's output: plaintext to the server, packet by packet,
 * up to and without the client's NEWKEYS; what follows to the observer.
 * Returns 1 once the NEWKEYS went by. */
static int client_to_server(cpair *cp, shoal_buf *plain, int keyed)
{
    const uint8_t *p;
    size_t n = shoal_session_output(cp->c, &p);
    assert_int_equal(shoal_buf_put(keyed ? &cp->obs_in : plain, p, n), 0);
    shoal_session_output_consume(cp->c, n);
    while (!keyed && shoal_buf_len(plain)) {
        const uint8_t *q = shoal_buf_ptr(plain);
        size_t m = shoal_buf_len(plain), take;
        if (!cp->s->tp.version_done) {
            const uint8_t *nl = memchr(q, '\n', m);
            if (!nl)
                break;
            take = (size_t)(nl - q) + 1;
        } else {
            if (m < 6 || m < 4 + (size_t)shoal_load_u32(q))
                break;
            take = 4 + (size_t)shoal_load_u32(q);
            if (q[5] == SSH_MSG_NEWKEYS) {
                shoal_buf_consume(plain, take);
                assert_int_equal(shoal_buf_put(&cp->obs_in, shoal_buf_ptr(plain), shoal_buf_len(plain)), 0);
                shoal_buf_reset(plain);
                return 1;
            }
        }
        assert_int_equal(shoal_session_recv(cp->s, q, take, 0), 0);
        cp->s->tp.peer_ext_info = 0; /* the test sends the EXT_INFO it wants */
        shoal_buf_consume(plain, take);
    }
    return keyed;
}

typedef struct cp_opts {
    int early_channel; /* open the channel before authentication */
} cp_opts;

/* Both sessions, and the key exchange up to the client having the
 * server's NEWKEYS: see the top. */
static void cp_new(cpair *cp, const cp_opts *o)
{
    static const cp_opts dflt;
    if (!o)
        o = &dflt;
    memset(cp, 0, sizeof(*cp));
    shoal_buf_init(&cp->obs_in, 1u << 22);
    shoal_server_config sc;
    shoal_server_config_init(&sc);
    sc.host_keys = &host_key;
    sc.n_host_keys = 1;
    shoal_server_callbacks scb = {sizeof(shoal_server_callbacks), srv_auth, NULL, srv_channel_open, NULL, NULL};
    assert_int_equal(shoal_session_new_server(&cp->s, &sc, &scb, NULL), 0);
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "tester";
    shoal_client_callbacks ccb;
    shoal_client_callbacks_init(&ccb);
    ccb.hostkey = cli_hostkey;
    ccb.authenticated = cli_authenticated;
    ccb.closed = cli_closed;
    assert_int_equal(shoal_session_new_client(&cp->c, &cc, &ccb, &cp->ca), 0);
    shoal_buf blob;
    shoal_buf_init(&blob, 4096);
    assert_int_equal(shoal_key_to_blob(user_key, &blob), 0);
    assert_true(
        shoal_session_add_identity(cp->c, shoal_buf_ptr(&blob), shoal_buf_len(&blob), shoal_key_ref(user_key)) >= 0);
    shoal_buf_free(&blob);
    if (o->early_channel)
        assert_int_equal(shoal_channel_open_session(cp->c, &CH_CB, &cp->ca, &cp->ca.ch), 0);
    assert_int_equal(shoal_session_start(cp->s, 0), 0);
    assert_int_equal(shoal_session_start(cp->c, 0), 0);

    /* Client bytes go to the server one version line or plaintext packet
     * at a time until the client's NEWKEYS; the rest is the observer's. */
    shoal_buf plain;
    shoal_buf_init(&plain, 1u << 20);
    int client_keyed = 0;
    for (int round = 0; round < 16; round++) {
        client_keyed = client_to_server(cp, &plain, client_keyed);
        if (cp->c->tp.first_kex_done)
            break;
        const uint8_t *p;
        size_t n = shoal_session_output(cp->s, &p);
        if (n)
            assert_int_equal(shoal_session_recv(cp->c, p, n, 0), 0);
        shoal_session_output_consume(cp->s, n);
    }
    assert_true(client_keyed);
    shoal_buf_free(&plain);
    assert_true(cp->c->tp.first_kex_done);
    assert_int_equal(shoal_session_phase(cp->c), SHOAL_PHASE_AUTH);
    assert_true(cp->s->tp.newkeys_sent);
    assert_non_null(cp->s->tp.next_rx);
    cp->obs = cp->s->tp.next_rx;
    cp->s->tp.next_rx = NULL;
    cp->obs_seq = cp->c->tp.strict ? 0 : 3; /* KEXINIT, ECDH_INIT, NEWKEYS */
    take_client_output(cp);
    decode(cp);
    /* The client asked for the userauth service and signed at once. */
    assert_true(cp->nmsgs >= 2);
    assert_int_equal(cp->msgs[0].p[0], SSH_MSG_SERVICE_REQUEST);
    assert_int_equal(cp->msgs[1].p[0], SSH_MSG_USERAUTH_REQUEST);
}

static void cp_free(cpair *cp)
{
    shoal_session_free(cp->c);
    shoal_session_free(cp->s);
    shoal_pktcrypt_free(cp->obs);
    shoal_buf_free(&cp->obs_in);
    for (size_t i = 0; i < cp->nmsgs; i++)
        free(cp->msgs[i].p);
    free(cp->msgs);
    memset(cp, 0, sizeof(*cp));
}

/* ---- crafted server messages ---- */

static shoal_buf m_begin(uint8_t type)
{
    shoal_buf b;
    shoal_buf_init(&b, 1u << 20);
    assert_int_equal(shoal_buf_put_u8(&b, type), 0);
    return b;
}

static void put_u32(shoal_buf *b, uint32_t v)
{
    assert_int_equal(shoal_buf_put_u32(b, v), 0);
}

static void put_str(shoal_buf *b, const char *s)
{
    assert_int_equal(shoal_buf_put_cstring(b, s), 0);
}

static shoal_buf m_ext_info(void)
{
    shoal_buf b = m_begin(SSH_MSG_EXT_INFO);
    put_u32(&b, 1);
    put_str(&b, "server-sig-algs");
    put_str(&b, "ssh-ed25519,rsa-sha2-512");
    return b;
}

static shoal_buf m_service_accept(void)
{
    shoal_buf b = m_begin(SSH_MSG_SERVICE_ACCEPT);
    put_str(&b, "ssh-userauth");
    return b;
}

static shoal_buf m_failure(const char *methods)
{
    shoal_buf b = m_begin(SSH_MSG_USERAUTH_FAILURE);
    put_str(&b, methods);
    assert_int_equal(shoal_buf_put_bool(&b, 0), 0);
    return b;
}

static shoal_buf m_ignore(void)
{
    shoal_buf b = m_begin(SSH_MSG_IGNORE);
    put_str(&b, "x");
    return b;
}

static shoal_buf m_open_confirm(uint32_t recipient, uint32_t window, uint32_t maxpkt)
{
    shoal_buf b = m_begin(SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    put_u32(&b, recipient);
    put_u32(&b, 42);
    put_u32(&b, window);
    put_u32(&b, maxpkt);
    return b;
}

static shoal_buf m_chan_u32(uint8_t type, uint32_t recipient)
{
    shoal_buf b = m_begin(type);
    put_u32(&b, recipient);
    return b;
}

static shoal_buf m_chan_request(uint32_t recipient, const char *name, int want_reply)
{
    shoal_buf b = m_chan_u32(SSH_MSG_CHANNEL_REQUEST, recipient);
    put_str(&b, name);
    assert_int_equal(shoal_buf_put_bool(&b, want_reply), 0);
    return b;
}

static shoal_buf m_exit_status(uint32_t recipient, uint32_t status, int want_reply)
{
    shoal_buf b = m_chan_request(recipient, "exit-status", want_reply);
    put_u32(&b, status);
    return b;
}

static shoal_buf m_exit_signal(uint32_t recipient, int want_reply)
{
    shoal_buf b = m_chan_request(recipient, "exit-signal", want_reply);
    put_str(&b, "TERM");
    assert_int_equal(shoal_buf_put_bool(&b, 0), 0);
    put_str(&b, "terminated");
    put_str(&b, "");
    return b;
}

static shoal_buf m_data(uint32_t recipient, const char *text)
{
    shoal_buf b = m_chan_u32(SSH_MSG_CHANNEL_DATA, recipient);
    put_str(&b, text);
    return b;
}

/* Seals a payload with the server's keys and gives it to the client;
 * returns the client's recv result. Frees the payload. */
static int cp_send(cpair *cp, shoal_buf payload)
{
    assert_int_equal(shoal__send_payload(cp->s, shoal_buf_ptr(&payload), shoal_buf_len(&payload)), 0);
    shoal_buf_free(&payload);
    const uint8_t *p;
    size_t n = shoal_session_output(cp->s, &p);
    int rc = shoal_session_is_closed(cp->c) ? SHOAL_ERR_CLOSED : shoal_session_recv(cp->c, p, n, 0);
    shoal_session_output_consume(cp->s, n);
    take_client_output(cp);
    return rc;
}

static shoal_buf m_success(void)
{
    return m_begin(SSH_MSG_USERAUTH_SUCCESS);
}

static void expect_open(cpair *cp, int rc)
{
    if (rc || shoal_session_is_closed(cp->c))
        print_error("client closed: %s: %s\n", shoal_errname(rc), cp->ca.closed_msg);
    assert_int_equal(rc, 0);
    assert_false(shoal_session_is_closed(cp->c));
}

/* The client must have closed with err, once, and told the server with a
 * DISCONNECT under the new keys. */
static void expect_closed(cpair *cp, int rc, int err, const char *what)
{
    if (rc != err || cp->ca.closed_err != err)
        print_error("expected %s, got rc %s, closed with %s (%s)\n", shoal_errname(err), shoal_errname(rc),
                    shoal_errname(cp->ca.closed_err), cp->ca.closed_msg);
    assert_int_equal(rc, err);
    assert_true(shoal_session_is_closed(cp->c));
    assert_int_equal(cp->ca.closed_calls, 1);
    assert_int_equal(cp->ca.closed_err, err);
    if (what && !strstr(cp->ca.closed_msg, what))
        fail_msg("closed with \"%s\", expected it to say \"%s\"", cp->ca.closed_msg, what);
    assert_int_equal(cp->type_count[SSH_MSG_DISCONNECT], 1);
    assert_int_equal(cp->msgs[cp->nmsgs - 1].p[0], SSH_MSG_DISCONNECT);
}

/* ---- CVE-2023-46445 ---- */

static void cve_2023_46445_ext_info_out_of_place(void **st)
{
    (void)st;
    cpair cp;

    /* Where RFC 8308 2.4 puts it: first after NEWKEYS, and once more right
     * before USERAUTH_SUCCESS. */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    assert_non_null(cp.c->auth.server_sig_algs);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_open(&cp, cp_send(&cp, m_success()));
    assert_int_equal(cp.ca.authenticated, 1);
    assert_int_equal(shoal_session_phase(cp.c), SHOAL_PHASE_OPEN);
    cp_free(&cp);

    /* Only the one before SUCCESS is fine too. */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_open(&cp, cp_send(&cp, m_success()));
    assert_int_equal(cp.ca.authenticated, 1);
    cp_free(&cp);

    /* Not first after NEWKEYS: an IGNORE went before it (the injection
     * the rogue extension negotiation attack relies on). */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_ignore()));
    expect_closed(&cp, cp_send(&cp, m_ext_info()), SHOAL_ERR_UNEXPECTED_MESSAGE, "EXT_INFO");
    cp_free(&cp);

    /* In the auth phase but not followed by USERAUTH_SUCCESS. */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_closed(&cp, cp_send(&cp, m_failure("publickey,password")), SHOAL_ERR_UNEXPECTED_MESSAGE, "EXT_INFO");
    assert_int_equal(cp.ca.authenticated, 0);
    cp_free(&cp);

    /* Something between it and the SUCCESS: not "right before". */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_closed(&cp, cp_send(&cp, m_ignore()), SHOAL_ERR_UNEXPECTED_MESSAGE, "EXT_INFO");
    cp_free(&cp);

    /* Two in the auth phase: only one may precede SUCCESS. */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_closed(&cp, cp_send(&cp, m_ext_info()), SHOAL_ERR_UNEXPECTED_MESSAGE, "EXT_INFO");
    cp_free(&cp);

    /* Both places used, then one more in the auth phase. */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_ext_info()));
    expect_closed(&cp, cp_send(&cp, m_ext_info()), SHOAL_ERR_UNEXPECTED_MESSAGE, "EXT_INFO");
    cp_free(&cp);

    /* After authentication (the message table refuses it there). */
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_success()));
    expect_closed(&cp, cp_send(&cp, m_ext_info()), SHOAL_ERR_UNEXPECTED_MESSAGE, "message 7");
    cp_free(&cp);
}

/* ---- CVE-2026-59843: maximum packet size 0 ---- */

static void cve_2026_59843_open_confirmation_max_packet_zero(void **st)
{
    (void)st;
    for (int early = 0; early < 2; early++) {
        cpair cp;
        cp_opts o = {early};
        cp_new(&cp, &o);
        expect_open(&cp, cp_send(&cp, m_service_accept()));
        expect_open(&cp, cp_send(&cp, m_success()));
        if (!early)
            assert_int_equal(shoal_channel_open_session(cp.c, &CH_CB, &cp.ca, &cp.ca.ch), 0);
        take_client_output(&cp);
        assert_int_equal(cp.type_count[SSH_MSG_CHANNEL_OPEN], 1);
        size_t before = cp.nmsgs;
        expect_closed(&cp, cp_send(&cp, m_open_confirm(0, 1u << 20, 0)), SHOAL_ERR_PROTOCOL, "maximum packet size");
        /* The application hears the open failed, then the close; nothing
         * was sent on the channel: the DISCONNECT is all that followed. */
        assert_int_equal(cp.ca.ch_open_calls, 1);
        assert_int_not_equal(cp.ca.ch_open_err, 0);
        assert_int_equal(cp.ca.ch_close_calls, 1);
        assert_int_equal(cp.nmsgs, before + 1);
        assert_int_equal(cp.type_count[SSH_MSG_CHANNEL_REQUEST], 0);
        assert_int_equal(cp.type_count[SSH_MSG_CHANNEL_DATA], 0);
        cp_free(&cp);
    }

    /* 1 is small but valid: the 100 bytes of stdin go one per packet. */
    cpair cp;
    cp_new(&cp, NULL);
    expect_open(&cp, cp_send(&cp, m_service_accept()));
    expect_open(&cp, cp_send(&cp, m_success()));
    assert_int_equal(shoal_channel_open_session(cp.c, &CH_CB, &cp.ca, &cp.ca.ch), 0);
    take_client_output(&cp);
    expect_open(&cp, cp_send(&cp, m_open_confirm(0, 1u << 20, 1)));
    assert_int_equal(cp.ca.ch_open_calls, 1);
    assert_int_equal(cp.ca.ch_open_err, 0);
    assert_int_equal(cp.ca.stdin_sent, 100);
    assert_int_equal(cp.type_count[SSH_MSG_CHANNEL_DATA], 100);
    for (size_t i = 0; i < cp.nmsgs; i++)
        if (cp.msgs[i].p[0] == SSH_MSG_CHANNEL_DATA)
            assert_int_equal(cp.msgs[i].n, 1 + 4 + 4 + 1);
    cp_free(&cp);
}

/* The application may end the session from any channel callback; the
 * client must not touch the channel (released with the session) once the
 * callback returns, even when the message still wants an answer. */
static void test_app_ends_session_in_callbacks(void **st)
{
    (void)st;
    for (int where = END_IN_STATUS; where <= END_IN_CLOSE; where++) {
        for (int want_reply = 0; want_reply < 2; want_reply++) {
            cpair cp;
            cp_new(&cp, NULL);
            cp.ca.end_in = where;
            expect_open(&cp, cp_send(&cp, m_service_accept()));
            expect_open(&cp, cp_send(&cp, m_success()));
            assert_int_equal(shoal_channel_open_session(cp.c, &CH_CB, &cp.ca, &cp.ca.ch), 0);
            take_client_output(&cp);
            shoal_buf msgs[4];
            int n = 0;
            msgs[n++] = m_open_confirm(0, 1u << 20, 32768);
            switch (where) {
            case END_IN_STATUS:
                msgs[n++] = m_exit_status(0, 3, want_reply);
                break;
            case END_IN_SIGNAL:
                msgs[n++] = m_exit_signal(0, want_reply);
                break;
            case END_IN_REPLY:
                msgs[n++] = m_chan_u32(SSH_MSG_CHANNEL_SUCCESS, 0); /* the exec */
                break;
            case END_IN_DATA:
                msgs[n++] = m_data(0, "output");
                break;
            case END_IN_EOF:
                msgs[n++] = m_chan_u32(SSH_MSG_CHANNEL_EOF, 0);
                break;
            case END_IN_CLOSE:
                msgs[n++] = m_chan_u32(SSH_MSG_CHANNEL_CLOSE, 0);
                break;
            default:
                break;
            }
            int rc = 0;
            for (int i = 0; i < n; i++) {
                if (shoal_session_is_closed(cp.c))
                    shoal_buf_free(&msgs[i]);
                else
                    rc = cp_send(&cp, msgs[i]);
            }
            if (!cp.ca.end_calls)
                fail_msg("case %d: the callback was not reached", where);
            assert_int_equal(rc, SHOAL_ERR_CLOSED); /* what recv says of a session the application closed */
            assert_true(shoal_session_is_closed(cp.c));
            assert_int_equal(cp.ca.closed_calls, 1);
            assert_int_equal(cp.ca.closed_err, 0);
            assert_int_equal(cp.ca.ch_close_calls, 1);
            assert_int_equal(cp.type_count[SSH_MSG_DISCONNECT], 1);
            cp_free(&cp);
        }
    }
}

static int setup(void **st)
{
    (void)st;
    host_key = gen_ed25519();
    user_key = gen_ed25519();
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    shoal_key_free(host_key);
    shoal_key_free(user_key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cve_2023_46445_ext_info_out_of_place),
        cmocka_unit_test(cve_2026_59843_open_confirmation_max_packet_zero),
        cmocka_unit_test(test_app_ends_session_in_callbacks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
