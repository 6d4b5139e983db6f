/* Key exchange flow, client side (RFC 4253 7-8, RFC 5656 4, RFC 8731):
 *
 *   KEXINIT both ways -> negotiate -> KEX_ECDH_INIT / KEXDH_INIT (our public
 *   value) -> REPLY (host key, server value, signature over H) -> verify,
 *   host key decision (may be deferred) -> NEWKEYS both ways -> new keys.
 *
 * Every method shares one path: the public values differ only in encoding
 * (string for ECDH/X25519, mpint for finite-field DH). */
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "transport/kexinit.h"
#include "transport/transport_impl.h"

int shoal__kex_is_msg(uint8_t type)
{
    return type >= SSH_MSG_KEXINIT && type <= 49;
}

void shoal__kex_free(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    shoal_kex_state_free(t->kex_st);
    t->kex_st = NULL;
    shoal_pktcrypt_free(t->next_rx);
    shoal_pktcrypt_free(t->next_tx);
    t->next_rx = t->next_tx = NULL;
    shoal_buf_reset(&t->K);
    shoal_wipe(t->H, sizeof(t->H));
}

int shoal__kex_start(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    if (t->kexinit_sent)
        return SHOAL_OK;
    /* Mark first: sending may itself cross the rekey threshold. */
    t->kexinit_sent = 1;
    t->kex_running = 1;
    t->kex_started_at = t->now;
    int rc = shoal__kexinit_build(s, &t->my_kexinit);
    if (!rc)
        rc = shoal__send_payload(s, shoal_buf_ptr(&t->my_kexinit), shoal_buf_len(&t->my_kexinit));
    if (rc)
        return shoal__fail(s, rc, 0, "cannot send KEXINIT: %s", shoal_strerror(rc));
    return SHOAL_OK;
}

static int put_pub(shoal_session *s, shoal_buf *b, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    return t->kex_alg->pub_is_mpint ? shoal_buf_put_mpint(b, p, n) : shoal_buf_put_string(b, p, n);
}

/* Exchange hash H over everything both sides said (RFC 4253 8, RFC 5656 4,
 * RFC 8731 3): V_C, V_S, I_C, I_S, K_S, client value, server value, K. */
static int exchange_hash(shoal_session *s, const uint8_t *ks, size_t ks_len, const uint8_t *q_c, size_t q_c_len,
                         const uint8_t *q_s, size_t q_s_len)
{
    shoal_transport *t = shoal__tp(s);
    const char *v_c = t->is_server ? t->peer_version : t->our_version;
    const char *v_s = t->is_server ? t->our_version : t->peer_version;
    const shoal_buf *i_c = t->is_server ? &t->peer_kexinit : &t->my_kexinit;
    const shoal_buf *i_s = t->is_server ? &t->my_kexinit : &t->peer_kexinit;
    shoal_buf hb;
    shoal_buf_init(&hb, 1u << 20);
    int rc = shoal_buf_put_cstring(&hb, v_c);
    if (!rc)
        rc = shoal_buf_put_cstring(&hb, v_s);
    if (!rc)
        rc = shoal_buf_put_string(&hb, shoal_buf_ptr(i_c), shoal_buf_len(i_c));
    if (!rc)
        rc = shoal_buf_put_string(&hb, shoal_buf_ptr(i_s), shoal_buf_len(i_s));
    if (!rc)
        rc = shoal_buf_put_string(&hb, ks, ks_len);
    if (!rc)
        rc = put_pub(s, &hb, q_c, q_c_len);
    if (!rc)
        rc = put_pub(s, &hb, q_s, q_s_len);
    if (!rc)
        rc = shoal_buf_put(&hb, shoal_buf_ptr(&t->K), shoal_buf_len(&t->K));
    if (!rc) {
        t->H_len = shoal_hash_len(t->kex_alg->hash);
        rc = shoal_hash(t->kex_alg->hash, shoal_buf_ptr(&hb), shoal_buf_len(&hb), t->H);
    }
    shoal_buf_free(&hb);
    return rc;
}

static int on_kexinit(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    if (t->kexinit_received)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "second KEXINIT during kex");
    kexinit_lists peer, mine;
    int rc = shoal__kexinit_parse(p, n, &peer);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed KEXINIT: %s", shoal_strerror(rc));
    t->kexinit_received = 1;
    shoal_buf_reset(&t->peer_kexinit);
    rc = shoal_buf_put(&t->peer_kexinit, p, n);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "KEXINIT too large");
    /* A server-initiated re-exchange: answer with ours first. */
    if (!t->kexinit_sent && (rc = shoal__kex_start(s)) != 0)
        return rc;
    rc = shoal__kexinit_parse(shoal_buf_ptr(&t->my_kexinit), shoal_buf_len(&t->my_kexinit), &mine);
    if (rc)
        return shoal__fail(s, rc, 0, "internal: our KEXINIT does not parse");
    rc = shoal__kexinit_negotiate(s, &mine, &peer);
    if (rc)
        return rc;
    if (t->is_server)
        return SHOAL_OK; /* the client speaks next (KEX_ECDH_INIT) */
    /* Client: generate our ephemeral key and send it. */
    shoal_kex_state_free(t->kex_st);
    t->kex_st = NULL;
    shoal_buf_reset(&t->kex_pub);
    rc = shoal_kex_keypair(t->kex_alg, &t->kex_st, &t->kex_pub);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "cannot generate %s key: %s", t->alg_kex,
                           shoal_strerror(rc));
    size_t mark;
    rc = shoal__pkt_begin(s, SSH_MSG_KEX_ECDH_INIT, &mark);
    if (!rc)
        rc = put_pub(s, &t->out, shoal_buf_ptr(&t->kex_pub), shoal_buf_len(&t->kex_pub));
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

/* RFC 4253 7.2 key derivation and the next packet contexts. */
static int derive_keys(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    const shoal_cipher_alg *cc = shoal_cipher_find(t->alg_cipher_c2s), *cs = shoal_cipher_find(t->alg_cipher_s2c);
    const shoal_mac_alg *mc = cc && cc->aead ? NULL : shoal_mac_find(t->alg_mac_c2s);
    const shoal_mac_alg *ms = cs && cs->aead ? NULL : shoal_mac_find(t->alg_mac_s2c);
    if (!cc || !cs || (!cc->aead && !mc) || (!cs->aead && !ms))
        return SHOAL_ERR_UNSUPPORTED;
    uint8_t iv_c[64], iv_s[64], k_c[64], k_s[64], m_c[64], m_s[64];
    const struct {
        char letter;
        uint8_t *out;
        size_t len;
    } want[6] = {{'A', iv_c, cc->iv_len}, {'B', iv_s, cs->iv_len}, {'C', k_c, cc->key_len},
                 {'D', k_s, cs->key_len}, {'E', m_c, mc ? mc->key_len : 0}, {'F', m_s, ms ? ms->key_len : 0}};
    int rc = SHOAL_OK;
    for (int i = 0; !rc && i < 6; i++) {
        if (!want[i].len)
            continue;
        if (want[i].len > 64) {
            rc = SHOAL_ERR_UNSUPPORTED;
            break;
        }
        rc = shoal_kex_derive(t->kex_alg->hash, shoal_buf_ptr(&t->K), shoal_buf_len(&t->K), t->H, t->H_len,
                              want[i].letter, t->session_id, t->session_id_len, want[i].out, want[i].len);
    }
    /* Client sends with the c2s keys, server with the s2c keys. */
    if (!rc && !t->is_server)
        rc = shoal_pktcrypt_new(&t->next_tx, cc, mc, k_c, iv_c, m_c, 1);
    if (!rc && !t->is_server)
        rc = shoal_pktcrypt_new(&t->next_rx, cs, ms, k_s, iv_s, m_s, 0);
    if (!rc && t->is_server)
        rc = shoal_pktcrypt_new(&t->next_tx, cs, ms, k_s, iv_s, m_s, 1);
    if (!rc && t->is_server)
        rc = shoal_pktcrypt_new(&t->next_rx, cc, mc, k_c, iv_c, m_c, 0);
    shoal_wipe(iv_c, sizeof(iv_c));
    shoal_wipe(iv_s, sizeof(iv_s));
    shoal_wipe(k_c, sizeof(k_c));
    shoal_wipe(k_s, sizeof(k_s));
    shoal_wipe(m_c, sizeof(m_c));
    shoal_wipe(m_s, sizeof(m_s));
    shoal_buf_reset(&t->K);
    return rc;
}

/* After the host key is accepted: keys, NEWKEYS, and held-back messages. */
static int send_newkeys(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    int rc = derive_keys(s);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "key derivation failed: %s",
                           shoal_strerror(rc));
    size_t mark;
    rc = shoal__pkt_begin(s, SSH_MSG_NEWKEYS, &mark);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    if (rc)
        return rc;
    shoal_pktcrypt_free(t->tx);
    t->tx = t->next_tx;
    t->next_tx = NULL;
    if (t->strict)
        t->tx_seq = 0;
    t->newkeys_sent = 1;
    t->tx_bytes = 0;
    /* RFC 8308 2.4: the server's EXT_INFO is the first packet under the new keys. */
    if (t->is_server && !t->first_kex_done && t->peer_ext_info && t->hooks->newkeys_sent &&
        (rc = t->hooks->newkeys_sent(s)) != 0)
        return rc;
    return shoal__kex_flush_queue(s);
}

static int on_reply(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    if (!t->kex_st || t->H_len)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected kex reply");
    shoal_rd r;
    const uint8_t *ks, *qs, *sig;
    size_t ks_len, qs_len, sig_len;
    shoal_rd_init(&r, p + 1, n - 1);
    int rc = shoal_rd_string(&r, &ks, &ks_len);
    if (!rc)
        rc = t->kex_alg->pub_is_mpint ? shoal_rd_mpint(&r, &qs, &qs_len) : shoal_rd_string(&r, &qs, &qs_len);
    if (!rc)
        rc = shoal_rd_string(&r, &sig, &sig_len);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed kex reply: %s", shoal_strerror(rc));

    shoal_key *hk = NULL;
    rc = shoal_key_from_blob(ks, ks_len, &hk);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "cannot parse server host key: %s",
                           shoal_strerror(rc));
    if (!shoal_key_sigalg_valid(hk, t->alg_hostkey, strlen(t->alg_hostkey))) {
        shoal_key_free(hk);
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                           "server host key type does not match the negotiated %s", t->alg_hostkey);
    }
    shoal_buf_reset(&t->K);
    rc = shoal_kex_shared(t->kex_st, qs, qs_len, &t->K);
    shoal_kex_state_free(t->kex_st);
    t->kex_st = NULL;
    if (rc) {
        shoal_key_free(hk);
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "invalid server kex value: %s",
                           shoal_strerror(rc));
    }
    rc = exchange_hash(s, ks, ks_len, shoal_buf_ptr(&t->kex_pub), shoal_buf_len(&t->kex_pub), qs, qs_len);
    if (!rc)
        rc = shoal_key_verify(hk, t->alg_hostkey, sig, sig_len, t->H, t->H_len);
    if (rc) {
        shoal_key_free(hk);
        return shoal__fail(s, rc == SHOAL_ERR_SIGNATURE ? rc : rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                           "server's signature over the exchange hash does not verify (%s)", shoal_strerror(rc));
    }
    if (!t->session_id_len) {
        memcpy(t->session_id, t->H, t->H_len);
        t->session_id_len = t->H_len;
    }
    if (t->first_kex_done) {
        /* Re-exchange: the host key must not change mid-connection. */
        int same = shoal_key_equal_public(hk, t->hostkey);
        shoal_key_free(hk);
        if (!same)
            return shoal__fail(s, SHOAL_ERR_HOSTKEY_MISMATCH, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE,
                               "server host key changed during re-exchange");
        return send_newkeys(s);
    }
    shoal_key_free(t->hostkey);
    t->hostkey = hk;
    char fp[128] = "";
    shoal_key_fingerprint(hk, fp, sizeof(fp));
    shoal__log(s, 1, "server host key %s %s", shoal_key_type_name(hk), fp);
    shoal_hostkey_info info = {hk, t->alg_hostkey, ks, ks_len, fp};
    t->phase = SHOAL_PHASE_HOSTKEY;
    t->hostkey_answer = 1; /* 1 = no answer yet */
    t->in_hostkey_cb = 1;
    rc = t->hostkey_cb(s, &info, t->ud);
    t->in_hostkey_cb = 0;
    if (rc == SHOAL_ERR_DEFERRED) {
        if (t->hostkey_answer != 1)
            return shoal__kex_resume_after_hostkey(s, t->hostkey_answer);
        t->hostkey_pending = 1;
        return SHOAL_OK;
    }
    return shoal__kex_resume_after_hostkey(s, rc);
}

/* Server: the client's ephemeral value arrives; answer with ours, the host
 * key and its signature over H, then NEWKEYS. */
static int on_ecdh_init(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    if (!t->kexinit_received || !t->kex_alg || t->H_len || t->newkeys_sent)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected KEX_ECDH_INIT");
    shoal_rd r;
    const uint8_t *qc;
    size_t qc_len;
    shoal_rd_init(&r, p + 1, n - 1);
    int rc = t->kex_alg->pub_is_mpint ? shoal_rd_mpint(&r, &qc, &qc_len) : shoal_rd_string(&r, &qc, &qc_len);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed KEX_ECDH_INIT: %s", shoal_strerror(rc));
    const shoal_key *hk = NULL;
    for (unsigned i = 0; i < t->n_host_keys && !hk; i++)
        if (shoal_key_sigalg_valid(t->host_keys[i], t->alg_hostkey, strlen(t->alg_hostkey)))
            hk = t->host_keys[i];
    if (!hk)
        return shoal__fail(s, SHOAL_ERR_NO_ALGORITHM, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "no host key for %s",
                           t->alg_hostkey);
    shoal_buf ks, sig;
    shoal_buf_init(&ks, SHOAL_KEY_MAX_BLOB);
    shoal_buf_init(&sig, 1u << 16);
    shoal_kex_state_free(t->kex_st);
    t->kex_st = NULL;
    shoal_buf_reset(&t->kex_pub);
    shoal_buf_reset(&t->K);
    rc = shoal_kex_keypair(t->kex_alg, &t->kex_st, &t->kex_pub);
    if (!rc)
        rc = shoal_kex_shared(t->kex_st, qc, qc_len, &t->K);
    shoal_kex_state_free(t->kex_st);
    t->kex_st = NULL;
    if (rc) {
        shoal_buf_free(&ks);
        shoal_buf_free(&sig);
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "invalid client kex value: %s",
                           shoal_strerror(rc));
    }
    rc = shoal_key_to_blob(hk, &ks);
    if (!rc)
        rc = exchange_hash(s, shoal_buf_ptr(&ks), shoal_buf_len(&ks), qc, qc_len, shoal_buf_ptr(&t->kex_pub),
                           shoal_buf_len(&t->kex_pub));
    if (!rc)
        rc = shoal_key_sign(hk, t->alg_hostkey, t->H, t->H_len, &sig);
    if (!rc && !t->session_id_len) {
        memcpy(t->session_id, t->H, t->H_len);
        t->session_id_len = t->H_len;
    }
    size_t mark = 0;
    if (!rc)
        rc = shoal__pkt_begin(s, SSH_MSG_KEX_ECDH_REPLY, &mark);
    if (!rc)
        rc = shoal_buf_put_string(&t->out, shoal_buf_ptr(&ks), shoal_buf_len(&ks));
    if (!rc)
        rc = put_pub(s, &t->out, shoal_buf_ptr(&t->kex_pub), shoal_buf_len(&t->kex_pub));
    if (!rc)
        rc = shoal_buf_put_string(&t->out, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    shoal_buf_free(&ks);
    shoal_buf_free(&sig);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    if (rc)
        return t->closed ? rc
                         : shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                                       "cannot answer the key exchange: %s", shoal_strerror(rc));
    return send_newkeys(s);
}

int shoal__kex_resume_after_hostkey(shoal_session *s, int err)
{
    shoal_transport *t = shoal__tp(s);
    t->hostkey_pending = 0;
    if (err)
        return shoal__fail(s, err < 0 ? err : SHOAL_ERR_HOSTKEY_UNKNOWN, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE,
                           "host key rejected: %s", shoal_strerror(err < 0 ? err : SHOAL_ERR_HOSTKEY_UNKNOWN));
    t->phase = SHOAL_PHASE_KEX;
    return send_newkeys(s);
}

int shoal_session_hostkey_reply(shoal_session *s, int err)
{
    shoal_transport *t = shoal__tp(s);
    if (t->in_hostkey_cb) {
        t->hostkey_answer = err;
        return SHOAL_OK;
    }
    if (!t->hostkey_pending || t->closed)
        return SHOAL_ERR_BAD_STATE;
    int rc = shoal__kex_resume_after_hostkey(s, err);
    if (rc)
        return rc;
    /* Packets that arrived while we waited. */
    rc = shoal__process_packets(s);
    return rc;
}

static int on_newkeys(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    if (n != 1)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed NEWKEYS");
    if (!t->newkeys_sent || !t->next_rx)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "NEWKEYS before the kex reply");
    shoal_pktcrypt_free(t->rx);
    t->rx = t->next_rx;
    t->next_rx = NULL;
    if (t->strict)
        t->rx_seq = 0;
    t->rx_bytes = 0;
    int first = !t->first_kex_done;
    const char *cur[6] = {t->alg_kex, t->alg_hostkey, t->alg_cipher_c2s, t->alg_cipher_s2c, t->alg_mac_c2s,
                          t->alg_mac_s2c};
    for (int i = 0; i < 6; i++)
        memcpy(t->cur_alg[i], cur[i], sizeof(t->cur_alg[i]));
    t->kexinit_sent = t->kexinit_received = t->newkeys_sent = 0;
    t->kex_running = 0;
    t->first_kex_done = 1;
    t->kex_count++;
    t->H_len = 0;
    t->last_kex_time = t->now;
    shoal_wipe(t->H, sizeof(t->H));
    shoal_buf_reset(&t->peer_kexinit);
    if (first) {
        t->phase = SHOAL_PHASE_AUTH;
        /* Client: the server's EXT_INFO may come now. Server: the client's
         * (we offered ext-info-s). */
        t->ext_info_next = 1;
    }
    /* Client: starts authentication; server: waits for the client's
     * service request; after a re-exchange, channels may write again. */
    return t->hooks->kex_done(s, first);
}

int shoal__kex_dispatch(shoal_session *s, uint8_t type, const uint8_t *p, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    switch (type) {
    case SSH_MSG_KEXINIT:
        return on_kexinit(s, p, n);
    case SSH_MSG_KEX_ECDH_INIT:
        if (t->is_server)
            return on_ecdh_init(s, p, n);
        break;
    case SSH_MSG_KEX_ECDH_REPLY:
        if (!t->is_server)
            return on_reply(s, p, n);
        break;
    case SSH_MSG_NEWKEYS:
        return on_newkeys(s, p, n);
    default:
        break;
    }
    return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                       "unexpected key exchange message %u", type);
}
