/* aes128-ctr / aes192-ctr / aes256-ctr (RFC 4344) with an HMAC (RFC 4253
 * section 6.4, RFC 6668, OpenSSH PROTOCOL section 1.5 for -etm).
 *
 * CTR is one continuous keystream per direction and key: the counter starts
 * at the derived IV and carries over from packet to packet, so the cipher
 * context is keyed once and then only ever advanced.
 *
 * MAC input is always uint32 seq || the packet as it stands when the MAC is
 * taken:
 *   - classic (encrypt-and-MAC): the whole packet in plaintext, and the whole
 *     packet is encrypted, so the receiver must decrypt the first block to
 *     learn the length. peek_length does that in place and the context
 *     remembers it; open() then decrypts only the remainder and checks the
 *     MAC over the plaintext.
 *   - -etm (encrypt-then-MAC): packet_length stays clear, the rest is
 *     encrypted, and the MAC is over length || ciphertext, verified before
 *     anything is decrypted. */
#include "crypto/cipher_int.h"
#include "crypto/fetched.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "shoal/error.h"
#include "wire/buf.h"

static const char *ctr_evp_name(size_t key_len)
{
    switch (key_len) {
    case 16:
        return "AES-128-CTR";
    case 24:
        return "AES-192-CTR";
    case 32:
        return "AES-256-CTR";
    default:
        return NULL;
    }
}

static int hmac_new(shoal_pktcrypt *pc, const uint8_t *mac_key)
{
    /* OSSL_PARAM wants a char *; string literals are char[] in C. */
    char *digest;
    switch (pc->mac->id) {
    case SHOAL_MACH_SHA1:
        digest = "SHA1";
        break;
    case SHOAL_MACH_SHA256:
        digest = "SHA256";
        break;
    case SHOAL_MACH_SHA512:
        digest = "SHA512";
        break;
    default:
        return SHOAL_ERR_UNSUPPORTED;
    }
    EVP_MAC *m = shoal__fetched_mac("HMAC"); /* shared: not freed here */
    pc->mac_ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    if (!pc->mac_ctx)
        return SHOAL_ERR_CRYPTO;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    /* The key is installed once; per packet, EVP_MAC_init with a NULL key
     * restarts HMAC with the same key (OpenSSL 3 HMAC provider semantics,
     * checked by the unit tests against one-shot HMACs). */
    if (EVP_MAC_init(pc->mac_ctx, mac_key, pc->mac->key_len, params) != 1 ||
        EVP_MAC_CTX_get_mac_size(pc->mac_ctx) != pc->mac->mac_len)
        return SHOAL_ERR_CRYPTO;
    return 0;
}

int shoal__ctr_mac_init(shoal_pktcrypt *pc, const uint8_t *key, const uint8_t *iv, const uint8_t *mac_key)
{
    const char *name = ctr_evp_name(pc->cipher->key_len);
    if (!name)
        return SHOAL_ERR_UNSUPPORTED;
    int rc = shoal__cipher_ctx_new(&pc->main_ctx, name, key, iv, pc->encrypt);
    if (rc != 0)
        return rc;
    return hmac_new(pc, mac_key);
}

/* out = HMAC(seq || pkt[0..len)); out holds mac_len bytes. */
static int mac_compute(shoal_pktcrypt *pc, uint32_t seq, const uint8_t *pkt, size_t len, uint8_t *out)
{
    uint8_t seqbuf[4];
    size_t outl = 0;
    shoal_store_u32(seqbuf, seq);
    if (EVP_MAC_init(pc->mac_ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(pc->mac_ctx, seqbuf, 4) != 1 ||
        EVP_MAC_update(pc->mac_ctx, pkt, len) != 1 ||
        EVP_MAC_final(pc->mac_ctx, out, &outl, pc->mac->mac_len) != 1 || outl != pc->mac->mac_len)
        return SHOAL_ERR_CRYPTO;
    return 0;
}

static int mac_verify(shoal_pktcrypt *pc, uint32_t seq, const uint8_t *pkt, size_t len, const uint8_t *tag)
{
    uint8_t want[SHOAL_MAC_MAX];
    int rc = mac_compute(pc, seq, pkt, len, want);
    if (rc == 0 && CRYPTO_memcmp(want, tag, pc->mac->mac_len) != 0)
        rc = SHOAL_ERR_MAC;
    return rc;
}

int shoal__ctr_mac_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out)
{
    int rc;
    if (pc->mac->etm) {
        rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
        if (rc == 0)
            rc = mac_compute(pc, seq, pkt, len, tag_out);
    } else {
        rc = mac_compute(pc, seq, pkt, len, tag_out);
        if (rc == 0)
            rc = shoal__cipher_inplace(pc->main_ctx, pkt, len);
    }
    return rc;
}

int shoal__ctr_mac_peek(shoal_pktcrypt *pc, uint32_t seq, uint8_t *first, uint32_t *packet_length)
{
    if (pc->mac->etm) {
        *packet_length = shoal_load_u32(first);
        return 0;
    }
    /* A second peek at the same packet must not advance the keystream again:
     * the block is already plaintext, so answer from memory. */
    if (!(pc->peeked && pc->peek_seq == seq)) {
        int rc = shoal__cipher_inplace(pc->main_ctx, first, pc->cipher->block_len);
        if (rc != 0)
            return rc;
        pc->peeked = 1;
        pc->peek_seq = seq;
        pc->peek_len = shoal_load_u32(first);
    }
    *packet_length = pc->peek_len;
    return 0;
}

int shoal__ctr_mac_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    int rc;
    if (pc->mac->etm) {
        rc = mac_verify(pc, seq, pkt, len, tag);
        if (rc == 0)
            rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
        return rc;
    }
    /* Classic: the first block is plaintext already if peek_length ran. */
    size_t done = pc->peeked ? pc->cipher->block_len : 0;
    rc = shoal__cipher_inplace(pc->main_ctx, pkt + done, len - done);
    if (rc == 0)
        rc = mac_verify(pc, seq, pkt, len, tag);
    return rc;
}
