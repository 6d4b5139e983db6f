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
#include "session/session_impl.h"

int shoal__kex_is_msg(uint8_t type)
{
    return type >= SSH_MSG_KEXINIT && type <= 49;
}

void shoal__kex_free(shoal_session *s)
{
    shoal_kex_state_free(s->kex_st);
    s->kex_st = NULL;
    shoal_pktcrypt_free(s->next_rx);
    shoal_pktcrypt_free(s->next_tx);
    s->next_rx = s->next_tx = NULL;
    shoal_buf_reset(&s->K);
    shoal_wipe(s->H, sizeof(s->H));
}

int shoal__kex_start(shoal_session *s)
{
    if (s->kexinit_sent)
        return SHOAL_OK;
    /* Mark first: sending may itself cross the rekey threshold. */
    s->kexinit_sent = 1;
    s->kex_running = 1;
    s->kex_started_at = s->now;
    int rc = shoal__kexinit_build(s, &s->my_kexinit);
    if (!rc)
        rc = shoal__send_payload(s, shoal_buf_ptr(&s->my_kexinit), shoal_buf_len(&s->my_kexinit));
    if (rc)
        return shoal__fail(s, rc, 0, "cannot send KEXINIT: %s", shoal_strerror(rc));
    return SHOAL_OK;
}

static int put_pub(shoal_session *s, shoal_buf *b, const uint8_t *p, size_t n)
{
    return s->kex_alg->pub_is_mpint ? shoal_buf_put_mpint(b, p, n) : shoal_buf_put_string(b, p, n);
}

/* Exchange hash H over everything both sides said (RFC 4253 8, RFC 5656 4,
 * RFC 8731 3): V_C, V_S, I_C, I_S, K_S, client value, server value, K. */
static int exchange_hash(shoal_session *s, const uint8_t *ks, size_t ks_len, const uint8_t *q_c, size_t q_c_len,
                         const uint8_t *q_s, size_t q_s_len)
{
    const char *v_c = s->is_server ? s->peer_version : s->our_version;
    const char *v_s = s->is_server ? s->our_version : s->peer_version;
    const shoal_buf *i_c = s->is_server ? &s->peer_kexinit : &s->my_kexinit;
    const shoal_buf *i_s = s->is_server ? &s->my_kexinit : &s->peer_kexinit;
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
        rc = shoal_buf_put(&hb, shoal_buf_ptr(&s->K), shoal_buf_len(&s->K));
    if (!rc) {
        s->H_len = shoal_hash_len(s->kex_alg->hash);
        rc = shoal_hash(s->kex_alg->hash, shoal_buf_ptr(&hb), shoal_buf_len(&hb), s->H);
    }
    shoal_buf_free(&hb);
    return rc;
}

static int on_kexinit(shoal_session *s, const uint8_t *p, size_t n)
{
    if (s->kexinit_received)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "second KEXINIT during kex");
    kexinit_lists peer, mine;
    int rc = shoal__kexinit_parse(p, n, &peer);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed KEXINIT: %s", shoal_strerror(rc));
    s->kexinit_received = 1;
    shoal_buf_reset(&s->peer_kexinit);
    rc = shoal_buf_put(&s->peer_kexinit, p, n);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "KEXINIT too large");
    /* A server-initiated re-exchange: answer with ours first. */
    if (!s->kexinit_sent && (rc = shoal__kex_start(s)) != 0)
        return rc;
    rc = shoal__kexinit_parse(shoal_buf_ptr(&s->my_kexinit), shoal_buf_len(&s->my_kexinit), &mine);
    if (rc)
        return shoal__fail(s, rc, 0, "internal: our KEXINIT does not parse");
    rc = shoal__kexinit_negotiate(s, &mine, &peer);
    if (rc)
        return rc;
    if (s->is_server)
        return SHOAL_OK; /* the client speaks next (KEX_ECDH_INIT) */
    /* Client: generate our ephemeral key and send it. */
    shoal_kex_state_free(s->kex_st);
    s->kex_st = NULL;
    shoal_buf_reset(&s->kex_pub);
    rc = shoal_kex_keypair(s->kex_alg, &s->kex_st, &s->kex_pub);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "cannot generate %s key: %s", s->alg_kex,
                           shoal_strerror(rc));
    size_t mark;
    rc = shoal__pkt_begin(s, SSH_MSG_KEX_ECDH_INIT, &mark);
    if (!rc)
        rc = put_pub(s, &s->out, shoal_buf_ptr(&s->kex_pub), shoal_buf_len(&s->kex_pub));
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

/* RFC 4253 7.2 key derivation and the next packet contexts. */
static int derive_keys(shoal_session *s)
{
    const shoal_cipher_alg *cc = shoal_cipher_find(s->alg_cipher_c2s), *cs = shoal_cipher_find(s->alg_cipher_s2c);
    const shoal_mac_alg *mc = cc && cc->aead ? NULL : shoal_mac_find(s->alg_mac_c2s);
    const shoal_mac_alg *ms = cs && cs->aead ? NULL : shoal_mac_find(s->alg_mac_s2c);
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
        rc = shoal_kex_derive(s->kex_alg->hash, shoal_buf_ptr(&s->K), shoal_buf_len(&s->K), s->H, s->H_len,
                              want[i].letter, s->session_id, s->session_id_len, want[i].out, want[i].len);
    }
    /* Client sends with the c2s keys, server with the s2c keys. */
    if (!rc && !s->is_server)
        rc = shoal_pktcrypt_new(&s->next_tx, cc, mc, k_c, iv_c, m_c, 1);
    if (!rc && !s->is_server)
        rc = shoal_pktcrypt_new(&s->next_rx, cs, ms, k_s, iv_s, m_s, 0);
    if (!rc && s->is_server)
        rc = shoal_pktcrypt_new(&s->next_tx, cs, ms, k_s, iv_s, m_s, 1);
    if (!rc && s->is_server)
        rc = shoal_pktcrypt_new(&s->next_rx, cc, mc, k_c, iv_c, m_c, 0);
    shoal_wipe(iv_c, sizeof(iv_c));
    shoal_wipe(iv_s, sizeof(iv_s));
    shoal_wipe(k_c, sizeof(k_c));
    shoal_wipe(k_s, sizeof(k_s));
    shoal_wipe(m_c, sizeof(m_c));
    shoal_wipe(m_s, sizeof(m_s));
    shoal_buf_reset(&s->K);
    return rc;
}

/* After the host key is accepted: keys, NEWKEYS, and held-back messages. */
static int send_newkeys(shoal_session *s)
{
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
    shoal_pktcrypt_free(s->tx);
    s->tx = s->next_tx;
    s->next_tx = NULL;
    if (s->strict)
        s->tx_seq = 0;
    s->newkeys_sent = 1;
    s->tx_bytes = 0;
    /* RFC 8308 2.4: the server's EXT_INFO is the first packet under the new keys. */
    if (s->is_server && !s->first_kex_done && s->peer_ext_info && s->hooks->newkeys_sent &&
        (rc = s->hooks->newkeys_sent(s)) != 0)
        return rc;
    return shoal__kex_flush_queue(s);
}

static int on_reply(shoal_session *s, const uint8_t *p, size_t n)
{
    if (!s->kex_st || s->H_len)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected kex reply");
    shoal_rd r;
    const uint8_t *ks, *qs, *sig;
    size_t ks_len, qs_len, sig_len;
    shoal_rd_init(&r, p + 1, n - 1);
    int rc = shoal_rd_string(&r, &ks, &ks_len);
    if (!rc)
        rc = s->kex_alg->pub_is_mpint ? shoal_rd_mpint(&r, &qs, &qs_len) : shoal_rd_string(&r, &qs, &qs_len);
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
    if (!shoal_key_sigalg_valid(hk, s->alg_hostkey, strlen(s->alg_hostkey))) {
        shoal_key_free(hk);
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                           "server host key type does not match the negotiated %s", s->alg_hostkey);
    }
    shoal_buf_reset(&s->K);
    rc = shoal_kex_shared(s->kex_st, qs, qs_len, &s->K);
    shoal_kex_state_free(s->kex_st);
    s->kex_st = NULL;
    if (rc) {
        shoal_key_free(hk);
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "invalid server kex value: %s",
                           shoal_strerror(rc));
    }
    rc = exchange_hash(s, ks, ks_len, shoal_buf_ptr(&s->kex_pub), shoal_buf_len(&s->kex_pub), qs, qs_len);
    if (!rc)
        rc = shoal_key_verify(hk, s->alg_hostkey, sig, sig_len, s->H, s->H_len);
    if (rc) {
        shoal_key_free(hk);
        return shoal__fail(s, rc == SHOAL_ERR_SIGNATURE ? rc : rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                           "server's signature over the exchange hash does not verify (%s)", shoal_strerror(rc));
    }
    if (!s->session_id_len) {
        memcpy(s->session_id, s->H, s->H_len);
        s->session_id_len = s->H_len;
    }
    if (s->first_kex_done) {
        /* Re-exchange: the host key must not change mid-connection. */
        int same = shoal_key_equal_public(hk, s->hostkey);
        shoal_key_free(hk);
        if (!same)
            return shoal__fail(s, SHOAL_ERR_HOSTKEY_MISMATCH, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE,
                               "server host key changed during re-exchange");
        return send_newkeys(s);
    }
    shoal_key_free(s->hostkey);
    s->hostkey = hk;
    char fp[128] = "";
    shoal_key_fingerprint(hk, fp, sizeof(fp));
    shoal__log(s, 1, "server host key %s %s", shoal_key_type_name(hk), fp);
    shoal_hostkey_info info = {hk, s->alg_hostkey, ks, ks_len, fp};
    s->phase = SHOAL_PHASE_HOSTKEY;
    s->hostkey_answer = 1; /* 1 = no answer yet */
    s->in_hostkey_cb = 1;
    rc = s->cb.hostkey(s, &info, s->ud);
    s->in_hostkey_cb = 0;
    if (rc == SHOAL_ERR_DEFERRED) {
        if (s->hostkey_answer != 1)
            return shoal__kex_resume_after_hostkey(s, s->hostkey_answer);
        s->hostkey_pending = 1;
        return SHOAL_OK;
    }
    return shoal__kex_resume_after_hostkey(s, rc);
}

/* Server: the client's ephemeral value arrives; answer with ours, the host
 * key and its signature over H, then NEWKEYS. */
static int on_ecdh_init(shoal_session *s, const uint8_t *p, size_t n)
{
    if (!s->kexinit_received || !s->kex_alg || s->H_len || s->newkeys_sent)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected KEX_ECDH_INIT");
    shoal_rd r;
    const uint8_t *qc;
    size_t qc_len;
    shoal_rd_init(&r, p + 1, n - 1);
    int rc = s->kex_alg->pub_is_mpint ? shoal_rd_mpint(&r, &qc, &qc_len) : shoal_rd_string(&r, &qc, &qc_len);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (rc)
        return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed KEX_ECDH_INIT: %s", shoal_strerror(rc));
    const shoal_key *hk = NULL;
    for (unsigned i = 0; i < s->n_host_keys && !hk; i++)
        if (shoal_key_sigalg_valid(s->host_keys[i], s->alg_hostkey, strlen(s->alg_hostkey)))
            hk = s->host_keys[i];
    if (!hk)
        return shoal__fail(s, SHOAL_ERR_NO_ALGORITHM, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "no host key for %s",
                           s->alg_hostkey);
    shoal_buf ks, sig;
    shoal_buf_init(&ks, SHOAL_KEY_MAX_BLOB);
    shoal_buf_init(&sig, 1u << 16);
    shoal_kex_state_free(s->kex_st);
    s->kex_st = NULL;
    shoal_buf_reset(&s->kex_pub);
    shoal_buf_reset(&s->K);
    rc = shoal_kex_keypair(s->kex_alg, &s->kex_st, &s->kex_pub);
    if (!rc)
        rc = shoal_kex_shared(s->kex_st, qc, qc_len, &s->K);
    shoal_kex_state_free(s->kex_st);
    s->kex_st = NULL;
    if (rc) {
        shoal_buf_free(&ks);
        shoal_buf_free(&sig);
        return shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "invalid client kex value: %s",
                           shoal_strerror(rc));
    }
    rc = shoal_key_to_blob(hk, &ks);
    if (!rc)
        rc = exchange_hash(s, shoal_buf_ptr(&ks), shoal_buf_len(&ks), qc, qc_len, shoal_buf_ptr(&s->kex_pub),
                           shoal_buf_len(&s->kex_pub));
    if (!rc)
        rc = shoal_key_sign(hk, s->alg_hostkey, s->H, s->H_len, &sig);
    if (!rc && !s->session_id_len) {
        memcpy(s->session_id, s->H, s->H_len);
        s->session_id_len = s->H_len;
    }
    size_t mark = 0;
    if (!rc)
        rc = shoal__pkt_begin(s, SSH_MSG_KEX_ECDH_REPLY, &mark);
    if (!rc)
        rc = shoal_buf_put_string(&s->out, shoal_buf_ptr(&ks), shoal_buf_len(&ks));
    if (!rc)
        rc = put_pub(s, &s->out, shoal_buf_ptr(&s->kex_pub), shoal_buf_len(&s->kex_pub));
    if (!rc)
        rc = shoal_buf_put_string(&s->out, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    shoal_buf_free(&ks);
    shoal_buf_free(&sig);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    if (rc)
        return s->closed ? rc : shoal__fail(s, rc, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "cannot answer the key exchange: %s",
                                            shoal_strerror(rc));
    return send_newkeys(s);
}

int shoal__kex_resume_after_hostkey(shoal_session *s, int err)
{
    s->hostkey_pending = 0;
    if (err)
        return shoal__fail(s, err < 0 ? err : SHOAL_ERR_HOSTKEY_UNKNOWN, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE,
                           "host key rejected: %s", shoal_strerror(err < 0 ? err : SHOAL_ERR_HOSTKEY_UNKNOWN));
    s->phase = SHOAL_PHASE_KEX;
    return send_newkeys(s);
}

int shoal_session_hostkey_reply(shoal_session *s, int err)
{
    if (s->in_hostkey_cb) {
        s->hostkey_answer = err;
        return SHOAL_OK;
    }
    if (!s->hostkey_pending || s->closed)
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
    if (n != 1)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed NEWKEYS");
    if (!s->newkeys_sent || !s->next_rx)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "NEWKEYS before the kex reply");
    shoal_pktcrypt_free(s->rx);
    s->rx = s->next_rx;
    s->next_rx = NULL;
    if (s->strict)
        s->rx_seq = 0;
    s->rx_bytes = 0;
    int first = !s->first_kex_done;
    const char *cur[6] = {s->alg_kex, s->alg_hostkey, s->alg_cipher_c2s, s->alg_cipher_s2c, s->alg_mac_c2s,
                          s->alg_mac_s2c};
    for (int i = 0; i < 6; i++)
        memcpy(s->cur_alg[i], cur[i], sizeof(s->cur_alg[i]));
    s->kexinit_sent = s->kexinit_received = s->newkeys_sent = 0;
    s->kex_running = 0;
    s->first_kex_done = 1;
    s->kex_count++;
    s->H_len = 0;
    s->last_kex_time = s->now;
    shoal_wipe(s->H, sizeof(s->H));
    shoal_buf_reset(&s->peer_kexinit);
    if (first) {
        s->phase = SHOAL_PHASE_AUTH;
        /* Client: the server's EXT_INFO may come now. Server: the client's
         * (we offered ext-info-s). */
        s->ext_info_next = 1;
    }
    /* Client: starts authentication; server: waits for the client's
     * service request; after a re-exchange, channels may write again. */
    return s->hooks->kex_done(s, first);
}

int shoal__kex_dispatch(shoal_session *s, uint8_t type, const uint8_t *p, size_t n)
{
    switch (type) {
    case SSH_MSG_KEXINIT:
        return on_kexinit(s, p, n);
    case SSH_MSG_KEX_ECDH_INIT:
        if (s->is_server)
            return on_ecdh_init(s, p, n);
        break;
    case SSH_MSG_KEX_ECDH_REPLY:
        if (!s->is_server)
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
