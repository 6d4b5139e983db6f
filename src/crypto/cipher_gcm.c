/* aes128-gcm@openssh.com / aes256-gcm@openssh.com: RFC 5647 as OpenSSH
 * implements it (its PROTOCOL, section 1.6):
 *   - the 12-byte IV from key derivation is fixed(4) || invocation_counter(8);
 *     the first packet uses it as derived, and after every packet the
 *     invocation counter is incremented as a 64-bit big-endian integer
 *     (wrapping, never touching the fixed field). The counter is per
 *     direction and per key, not the sequence number;
 *   - packet_length is sent in clear as the AAD;
 *   - padding_length || payload || padding is encrypted;
 *   - the 16-byte GCM tag follows, and the negotiated MAC is ignored.
 * The AES key schedule is set up once; each packet only resets the IV. */
#include "crypto/cipher_int.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "shoal/error.h"

int shoal__gcm_init(shoal_pktcrypt *pc, const uint8_t *key, const uint8_t *iv)
{
    const char *name = pc->cipher->key_len == 16 ? "AES-128-GCM" : "AES-256-GCM";
    memcpy(pc->gcm_iv, iv, SHOAL_GCM_IV_LEN);
    /* No IV yet: it is set per packet. The default GCM IV length is 12. */
    return shoal__cipher_ctx_new(&pc->main_ctx, name, key, NULL, pc->encrypt);
}

static void gcm_next_iv(uint8_t iv[SHOAL_GCM_IV_LEN])
{
    for (int i = SHOAL_GCM_IV_LEN - 1; i >= 4; i--)
        if (++iv[i] != 0)
            break;
}

/* Sets this packet's IV and feeds the clear packet_length as AAD. */
static int gcm_begin(shoal_pktcrypt *pc, const uint8_t *pkt)
{
    int outl = 0;
    if (EVP_CipherInit_ex(pc->main_ctx, NULL, NULL, NULL, pc->gcm_iv, -1) != 1)
        return SHOAL_ERR_CRYPTO;
    if (EVP_CipherUpdate(pc->main_ctx, NULL, &outl, pkt, 4) != 1)
        return SHOAL_ERR_CRYPTO;
    return 0;
}

int shoal__gcm_seal(shoal_pktcrypt *pc, uint8_t *pkt, size_t len, uint8_t *tag_out)
{
    uint8_t scratch[16];
    int outl = 0;
    int rc = gcm_begin(pc, pkt);
    if (rc == 0)
        rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
    if (rc != 0)
        return rc;
    /* GCM emits nothing at Final; scratch only satisfies the API. */
    if (EVP_CipherFinal_ex(pc->main_ctx, scratch, &outl) != 1 || outl != 0)
        return SHOAL_ERR_CRYPTO;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag_out, SHOAL_AEAD_TAG_LEN),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_CIPHER_CTX_get_params(pc->main_ctx, params) != 1)
        return SHOAL_ERR_CRYPTO;
    gcm_next_iv(pc->gcm_iv);
    return 0;
}

int shoal__gcm_open(shoal_pktcrypt *pc, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    /* The param API wants a mutable buffer; copying 16 bytes avoids casting
     * away const from the caller's tag. */
    uint8_t want[SHOAL_AEAD_TAG_LEN], scratch[16];
    int outl = 0;
    memcpy(want, tag, sizeof(want));
    int rc = gcm_begin(pc, pkt);
    if (rc == 0)
        rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
    if (rc != 0)
        return rc;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, want, sizeof(want)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_CIPHER_CTX_set_params(pc->main_ctx, params) != 1)
        return SHOAL_ERR_CRYPTO;
    /* libcrypto compares the tag in constant time (CRYPTO_memcmp) inside
     * Final; a mismatch is the only way Final fails here. The decrypted
     * bytes already in pkt are then garbage the caller must drop, as the
     * contract says. */
    if (EVP_CipherFinal_ex(pc->main_ctx, scratch, &outl) != 1)
        return SHOAL_ERR_MAC;
    gcm_next_iv(pc->gcm_iv);
    return 0;
}
