/* chacha20-poly1305@openssh.com (OpenSSH PROTOCOL.chacha20poly1305).
 *
 * The 64 bytes of key material are K_2 (first 32 bytes: payload cipher and
 * Poly1305 key source) || K_1 (last 32 bytes: length cipher). Both ChaCha20
 * instances use the original 64-bit-nonce layout: nonce = seq as a uint64
 * (big-endian, SSH wire encoding), 64-bit little-endian block counter.
 * OpenSSL's "ChaCha20" takes a 16-byte IV that it loads as state words 12..15,
 * little-endian; the original ChaCha puts the block counter in words 12..13
 * and the nonce in words 14..15, so the IV we pass is
 *     counter (8 bytes, little-endian) || seq (8 bytes, big-endian).
 * Per packet, with that nonce:
 *   - K_1, counter 0: encrypts the 4-byte packet_length;
 *   - K_2, counter 0: the first 32 bytes of keystream are the Poly1305 key;
 *   - K_2, counter 1 onwards: encrypts padding_length || payload || padding;
 *   - tag = Poly1305(encrypted length || encrypted rest).
 *
 * Receive-side decision: peek_length decrypts the length into a copy and
 * leaves the wire bytes untouched, because the tag covers the ENCRYPTED
 * length. It records those encrypted bytes and their plaintext in the
 * context; open() verifies the tag over the untouched packet first (the spec
 * requires checking before decrypting), then decrypts the rest and writes the
 * plaintext length into pkt[0..4), reusing the peeked value when the bytes
 * and seq match, otherwise running K_1 again. */
#include "crypto/cipher_int.h"
#include "crypto/fetched.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "shoal/error.h"
#include "wire/buf.h"

#define CHACHA_KEY_LEN 32
#define CHACHA_BLOCK_LEN 64
#define POLY1305_KEY_LEN 32

/* 16-byte OpenSSL ChaCha20 IV for block counter 0 and this seq (see above). */
static void chacha_iv(uint8_t iv[16], uint32_t seq)
{
    memset(iv, 0, 16);              /* counter 0, high half of the uint64 seq */
    shoal_store_u32(iv + 12, seq);  /* low half of the big-endian uint64 seq */
}

int shoal__chachapoly_init(shoal_pktcrypt *pc, const uint8_t *key)
{
    static const uint8_t zero_iv[16];
    int rc = shoal__cipher_ctx_new(&pc->main_ctx, "ChaCha20", key, zero_iv, 1);
    if (rc == 0)
        rc = shoal__cipher_ctx_new(&pc->len_ctx, "ChaCha20", key + CHACHA_KEY_LEN, zero_iv, 1);
    if (rc != 0)
        return rc;
    EVP_MAC *m = shoal__fetched_mac("POLY1305"); /* shared: not freed here */
    pc->mac_ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    return pc->mac_ctx ? 0 : SHOAL_ERR_CRYPTO;
}

/* Positions K_2 at (seq, block 0), takes block 0 as keystream into block0
 * (its first 32 bytes are the Poly1305 key) and leaves the cipher at block 1,
 * ready for the payload: a single IV reset per packet. */
static int k2_start(shoal_pktcrypt *pc, uint32_t seq, uint8_t block0[CHACHA_BLOCK_LEN])
{
    uint8_t iv[16];
    chacha_iv(iv, seq);
    memset(block0, 0, CHACHA_BLOCK_LEN);
    if (EVP_CipherInit_ex(pc->main_ctx, NULL, NULL, NULL, iv, -1) != 1)
        return SHOAL_ERR_CRYPTO;
    return shoal__cipher_inplace(pc->main_ctx, block0, CHACHA_BLOCK_LEN);
}

/* Runs the 4 length bytes at p through K_1 at (seq, block 0). */
static int k1_crypt(shoal_pktcrypt *pc, uint32_t seq, uint8_t p[4])
{
    uint8_t iv[16];
    chacha_iv(iv, seq);
    if (EVP_CipherInit_ex(pc->len_ctx, NULL, NULL, NULL, iv, -1) != 1)
        return SHOAL_ERR_CRYPTO;
    return shoal__cipher_inplace(pc->len_ctx, p, 4);
}

/* tag_out = Poly1305 under the one-time key over pkt[0..len). */
static int poly1305(shoal_pktcrypt *pc, const uint8_t *poly_key, const uint8_t *pkt, size_t len,
                    uint8_t tag_out[SHOAL_AEAD_TAG_LEN])
{
    size_t outl = 0;
    if (EVP_MAC_init(pc->mac_ctx, poly_key, POLY1305_KEY_LEN, NULL) != 1 ||
        EVP_MAC_update(pc->mac_ctx, pkt, len) != 1 ||
        EVP_MAC_final(pc->mac_ctx, tag_out, &outl, SHOAL_AEAD_TAG_LEN) != 1 || outl != SHOAL_AEAD_TAG_LEN)
        return SHOAL_ERR_CRYPTO;
    return 0;
}

int shoal__chachapoly_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out)
{
    uint8_t block0[CHACHA_BLOCK_LEN];
    int rc = k1_crypt(pc, seq, pkt);
    if (rc == 0)
        rc = k2_start(pc, seq, block0);
    if (rc == 0)
        rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
    if (rc == 0)
        rc = poly1305(pc, block0, pkt, len, tag_out);
    OPENSSL_cleanse(block0, sizeof(block0));
    return rc;
}

int shoal__chachapoly_peek(shoal_pktcrypt *pc, uint32_t seq, const uint8_t *first, uint32_t *packet_length)
{
    uint8_t plain[4];
    memcpy(plain, first, 4);
    int rc = k1_crypt(pc, seq, plain);
    if (rc != 0)
        return rc;
    memcpy(pc->peek_enc, first, 4);
    pc->peek_len = shoal_load_u32(plain);
    pc->peek_seq = seq;
    pc->peeked = 1;
    *packet_length = pc->peek_len;
    return 0;
}

int shoal__chachapoly_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    uint8_t block0[CHACHA_BLOCK_LEN], want[SHOAL_AEAD_TAG_LEN];
    int rc = k2_start(pc, seq, block0);
    if (rc == 0)
        rc = poly1305(pc, block0, pkt, len, want);
    OPENSSL_cleanse(block0, sizeof(block0));
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(want, tag, SHOAL_AEAD_TAG_LEN) != 0)
        return SHOAL_ERR_MAC;

    /* Authentic: decrypt. K_2 already sits at block 1. */
    rc = shoal__cipher_inplace(pc->main_ctx, pkt + 4, len - 4);
    if (rc != 0)
        return rc;
    if (pc->peeked && pc->peek_seq == seq && memcmp(pc->peek_enc, pkt, 4) == 0) {
        shoal_store_u32(pkt, pc->peek_len);
        return 0;
    }
    return k1_crypt(pc, seq, pkt);
}
