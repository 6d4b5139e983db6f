/* Private to the packet-protection module (cipher.c, cipher_chachapoly.c,
 * cipher_gcm.c, cipher_ctr_mac.c): the context layout and the per-mode entry
 * points that cipher.c dispatches to after it has checked the arguments. */
#ifndef SHOAL_CRYPTO_CIPHER_INT_H
#define SHOAL_CRYPTO_CIPHER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "crypto/cipher.h"

/* shoal_cipher_alg.id: which construction protects the packet. */
enum { SHOAL_CMODE_CHACHAPOLY = 1, SHOAL_CMODE_GCM, SHOAL_CMODE_CTR };
/* shoal_mac_alg.id: the HMAC digest. */
enum { SHOAL_MACH_SHA1 = 1, SHOAL_MACH_SHA256, SHOAL_MACH_SHA512 };

#define SHOAL_GCM_IV_LEN 12
#define SHOAL_AEAD_TAG_LEN 16
#define SHOAL_MAC_MAX 64 /* largest HMAC output (SHA-512) */

struct shoal_pktcrypt {
    const shoal_cipher_alg *cipher;
    const shoal_mac_alg *mac; /* NULL for AEAD ciphers */
    int encrypt;              /* 1: sending direction, 0: receiving */

    /* Every libcrypto object is created once in shoal_pktcrypt_new and reused
     * for each packet; only IVs (and the Poly1305 one-time key) change. The
     * raw keys live only inside these contexts, which wipe them when freed. */
    EVP_CIPHER_CTX *main_ctx; /* chacha: K_2; AES-GCM; AES-CTR (one stream) */
    EVP_CIPHER_CTX *len_ctx;  /* chacha only: K_1, the length cipher */
    EVP_MAC_CTX *mac_ctx;     /* HMAC (CTR modes) or Poly1305 (chacha) */

    /* AES-GCM: the next IV, fixed(4) || invocation counter(8, big-endian). */
    uint8_t gcm_iv[SHOAL_GCM_IV_LEN];

    /* Receiver state left by peek_length for open:
     *  - classic CTR: the first block has been decrypted in place;
     *  - chacha: the encrypted length bytes seen and what they decrypt to,
     *    so open() need not run the K_1 cipher a second time. */
    int peeked;
    uint32_t peek_seq;
    uint32_t peek_len;
    uint8_t peek_enc[4];
};

/* Helpers shared by the modes (cipher.c). */
int shoal__cipher_ctx_new(EVP_CIPHER_CTX **out, const char *evp_name, const uint8_t *key, const uint8_t *iv,
                          int enc);
/* Runs buf[0..len) through ctx in place (stream modes: output length equals
 * input length). */
int shoal__cipher_inplace(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len);

/* chacha20-poly1305@openssh.com (cipher_chachapoly.c) */
int shoal__chachapoly_init(shoal_pktcrypt *pc, const uint8_t *key);
int shoal__chachapoly_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out);
int shoal__chachapoly_peek(shoal_pktcrypt *pc, uint32_t seq, const uint8_t *first, uint32_t *packet_length);
int shoal__chachapoly_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag);

/* aes*-gcm@openssh.com (cipher_gcm.c); the length is clear, so no peek. */
int shoal__gcm_init(shoal_pktcrypt *pc, const uint8_t *key, const uint8_t *iv);
int shoal__gcm_seal(shoal_pktcrypt *pc, uint8_t *pkt, size_t len, uint8_t *tag_out);
int shoal__gcm_open(shoal_pktcrypt *pc, uint8_t *pkt, size_t len, const uint8_t *tag);

/* aes*-ctr with an HMAC, classic or -etm (cipher_ctr_mac.c) */
int shoal__ctr_mac_init(shoal_pktcrypt *pc, const uint8_t *key, const uint8_t *iv, const uint8_t *mac_key);
int shoal__ctr_mac_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out);
int shoal__ctr_mac_peek(shoal_pktcrypt *pc, uint32_t seq, uint8_t *first, uint32_t *packet_length);
int shoal__ctr_mac_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag);

#endif
