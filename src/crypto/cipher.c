/* Packet protection: algorithm tables, context life cycle, argument checks
 * and dispatch to the three constructions. See cipher.h for the contract and
 * cipher_int.h for the context layout. */
#include "crypto/cipher_int.h"
#include "crypto/fetched.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "shoal/error.h"
#include "wire/buf.h"

const char SHOAL_CIPHERS_DEFAULT[] = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
                                     "aes128-gcm@openssh.com,aes256-gcm@openssh.com";
const char SHOAL_CIPHERS_ALL[] = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
                                 "aes128-gcm@openssh.com,aes256-gcm@openssh.com";
/* hmac-sha1 is supported for old peers but only offered when asked for. */
const char SHOAL_MACS_DEFAULT[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
                                  "hmac-sha2-256,hmac-sha2-512";
const char SHOAL_MACS_ALL[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
                              "hmac-sha2-256,hmac-sha2-512,hmac-sha1-etm@openssh.com,hmac-sha1";

static const shoal_cipher_alg cipher_table[] = {
    /* name, key_len, iv_len, block_len, tag_len, aead, id */
    {"chacha20-poly1305@openssh.com", 64, 0, 8, SHOAL_AEAD_TAG_LEN, 1, SHOAL_CMODE_CHACHAPOLY},
    {"aes128-ctr", 16, 16, 16, 0, 0, SHOAL_CMODE_CTR},
    {"aes192-ctr", 24, 16, 16, 0, 0, SHOAL_CMODE_CTR},
    {"aes256-ctr", 32, 16, 16, 0, 0, SHOAL_CMODE_CTR},
    {"aes128-gcm@openssh.com", 16, SHOAL_GCM_IV_LEN, 16, SHOAL_AEAD_TAG_LEN, 1, SHOAL_CMODE_GCM},
    {"aes256-gcm@openssh.com", 32, SHOAL_GCM_IV_LEN, 16, SHOAL_AEAD_TAG_LEN, 1, SHOAL_CMODE_GCM},
};

static const shoal_mac_alg mac_table[] = {
    /* name, key_len, mac_len, etm, id (RFC 6668, RFC 4253, OpenSSH PROTOCOL) */
    {"hmac-sha2-256-etm@openssh.com", 32, 32, 1, SHOAL_MACH_SHA256},
    {"hmac-sha2-512-etm@openssh.com", 64, 64, 1, SHOAL_MACH_SHA512},
    {"hmac-sha1-etm@openssh.com", 20, 20, 1, SHOAL_MACH_SHA1},
    {"hmac-sha2-256", 32, 32, 0, SHOAL_MACH_SHA256},
    {"hmac-sha2-512", 64, 64, 0, SHOAL_MACH_SHA512},
    {"hmac-sha1", 20, 20, 0, SHOAL_MACH_SHA1},
};

const shoal_cipher_alg *shoal_cipher_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(cipher_table) / sizeof(cipher_table[0]); i++)
        if (strcmp(cipher_table[i].name, name) == 0)
            return &cipher_table[i];
    return NULL;
}

const shoal_mac_alg *shoal_mac_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(mac_table) / sizeof(mac_table[0]); i++)
        if (strcmp(mac_table[i].name, name) == 0)
            return &mac_table[i];
    return NULL;
}

int shoal__cipher_ctx_new(EVP_CIPHER_CTX **out, const char *evp_name, const uint8_t *key, const uint8_t *iv,
                          int enc)
{
    /* An explicit fetch makes a missing provider algorithm fail here, once,
     * rather than on the first packet. The context keeps its own reference. */
    EVP_CIPHER *cached = shoal__fetched_cipher(evp_name);
    EVP_CIPHER *c = cached ? cached : EVP_CIPHER_fetch(NULL, evp_name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = c && ctx && EVP_CipherInit_ex(ctx, c, NULL, key, iv, enc) == 1;
    if (!cached)
        EVP_CIPHER_free(c);
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        return SHOAL_ERR_CRYPTO;
    }
    *out = ctx;
    return 0;
}

int shoal__cipher_inplace(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len)
{
    int outl = 0;
    if (len == 0)
        return 0;
    /* Lengths were capped at INT_MAX by check_layout(). */
    if (EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) != 1 || outl != (int)len)
        return SHOAL_ERR_CRYPTO;
    return 0;
}

int shoal_pktcrypt_new(shoal_pktcrypt **out, const shoal_cipher_alg *cipher, const shoal_mac_alg *mac,
                       const uint8_t *key, const uint8_t *iv, const uint8_t *mac_key, int encrypt)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!cipher || !key || (cipher->iv_len && !iv))
        return SHOAL_ERR_INVALID_ARG;
    if (cipher->aead)
        mac = NULL; /* the negotiated MAC is ignored (PROTOCOL.chacha20poly1305, RFC 5647 as used by OpenSSH) */
    else if (!mac || !mac_key)
        return SHOAL_ERR_INVALID_ARG;

    shoal_pktcrypt *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return SHOAL_ERR_NOMEM;
    pc->cipher = cipher;
    pc->mac = mac;
    pc->encrypt = encrypt ? 1 : 0;

    int rc;
    switch (cipher->id) {
    case SHOAL_CMODE_CHACHAPOLY:
        rc = shoal__chachapoly_init(pc, key);
        break;
    case SHOAL_CMODE_GCM:
        rc = shoal__gcm_init(pc, key, iv);
        break;
    case SHOAL_CMODE_CTR:
        rc = shoal__ctr_mac_init(pc, key, iv, mac_key);
        break;
    default:
        rc = SHOAL_ERR_UNSUPPORTED;
        break;
    }
    if (rc != 0) {
        shoal_pktcrypt_free(pc);
        return rc;
    }
    *out = pc;
    return 0;
}

void shoal_pktcrypt_free(shoal_pktcrypt *pc)
{
    if (!pc)
        return;
    /* libcrypto wipes the key schedules when it frees these contexts. */
    EVP_CIPHER_CTX_free(pc->main_ctx);
    EVP_CIPHER_CTX_free(pc->len_ctx);
    EVP_MAC_CTX_free(pc->mac_ctx);
    /* The IV counter and the peeked length are not keys, but wipe anyway. */
    OPENSSL_clear_free(pc, sizeof(*pc));
}

size_t shoal_pktcrypt_block_len(const shoal_pktcrypt *pc)
{
    return pc->cipher->block_len;
}

size_t shoal_pktcrypt_tag_len(const shoal_pktcrypt *pc)
{
    return pc->cipher->aead ? pc->cipher->tag_len : pc->mac->mac_len;
}

int shoal_pktcrypt_length_in_clear(const shoal_pktcrypt *pc)
{
    /* chacha20-poly1305 encrypts the length, but with its own key, so like
     * GCM and EtM its padding aligns everything after the length field
     * (OpenSSH's packet.c uses the same rule for every AEAD and EtM mode). */
    return pc->cipher->aead || pc->mac->etm;
}

size_t shoal_pktcrypt_first_len(const shoal_pktcrypt *pc)
{
    return shoal_pktcrypt_length_in_clear(pc) ? 4 : pc->cipher->block_len;
}

/* Rejects packets that the mode cannot process: the encrypted part must be a
 * whole number of blocks (the peer checks the same thing), and libcrypto
 * takes int lengths. */
static int check_layout(const shoal_pktcrypt *pc, size_t len)
{
    size_t skip = shoal_pktcrypt_length_in_clear(pc) ? 4 : 0;
    size_t bl = pc->cipher->block_len;
    if (len < 4 || len > (size_t)INT_MAX)
        return SHOAL_ERR_INVALID_ARG;
    if (len - skip < bl || (len - skip) % bl != 0)
        return SHOAL_ERR_INVALID_ARG;
    return 0;
}

int shoal_pktcrypt_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out)
{
    if (!pc || !pkt || !tag_out || !pc->encrypt)
        return SHOAL_ERR_INVALID_ARG;
    int rc = check_layout(pc, len);
    if (rc != 0)
        return rc;
    if (shoal_load_u32(pkt) != len - 4)
        return SHOAL_ERR_INVALID_ARG;
    switch (pc->cipher->id) {
    case SHOAL_CMODE_CHACHAPOLY:
        return shoal__chachapoly_seal(pc, seq, pkt, len, tag_out);
    case SHOAL_CMODE_GCM:
        return shoal__gcm_seal(pc, pkt, len, tag_out); /* its IV counter is independent of seq */
    default:
        return shoal__ctr_mac_seal(pc, seq, pkt, len, tag_out);
    }
}

int shoal_pktcrypt_peek_length(shoal_pktcrypt *pc, uint32_t seq, uint8_t *first, uint32_t *packet_length)
{
    if (packet_length)
        *packet_length = 0;
    if (!pc || !first || !packet_length || pc->encrypt)
        return SHOAL_ERR_INVALID_ARG;
    switch (pc->cipher->id) {
    case SHOAL_CMODE_CHACHAPOLY:
        return shoal__chachapoly_peek(pc, seq, first, packet_length);
    case SHOAL_CMODE_GCM:
        *packet_length = shoal_load_u32(first); /* clear, authenticated later as AAD */
        return 0;
    default:
        return shoal__ctr_mac_peek(pc, seq, first, packet_length);
    }
}

int shoal_pktcrypt_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    if (!pc || !pkt || !tag || pc->encrypt)
        return SHOAL_ERR_INVALID_ARG;
    int rc = check_layout(pc, len);
    if (rc != 0) {
        pc->peeked = 0;
        return rc;
    }
    switch (pc->cipher->id) {
    case SHOAL_CMODE_CHACHAPOLY:
        rc = shoal__chachapoly_open(pc, seq, pkt, len, tag);
        break;
    case SHOAL_CMODE_GCM:
        rc = shoal__gcm_open(pc, pkt, len, tag);
        break;
    default:
        rc = shoal__ctr_mac_open(pc, seq, pkt, len, tag);
        break;
    }
    pc->peeked = 0;
    if (rc != 0)
        return rc;
    /* The packet is authentic; a length that disagrees with len can only
     * mean the caller passed the wrong len. Checked after authentication so
     * that tampering is always reported as SHOAL_ERR_MAC. */
    if (shoal_load_u32(pkt) != len - 4)
        return SHOAL_ERR_INVALID_ARG;
    return 0;
}
