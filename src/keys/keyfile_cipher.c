/* Decryption of the private section of openssh-key-v1 files.
 *
 * AES-CTR/CBC and AES-GCM (RFC 5647 as OpenSSH uses it: 12-byte IV from the
 * KDF, no AAD, 16-byte tag after the ciphertext) go straight to EVP.
 * chacha20-poly1305@openssh.com follows OpenSSH's PROTOCOL.chacha20poly1305
 * with sequence number 0 and no length field: the first 32 key bytes key
 * ChaCha20 (64-bit block counter, 64-bit nonce = seqnr = 0); its block 0
 * gives the Poly1305 key, the tag covers the ciphertext, and the payload is
 * encrypted from block 1 on. libcrypto's "ChaCha20" takes a 16-byte IV that
 * is the little-endian counter followed by the nonce, which with a zero
 * nonce is exactly the 64-bit-counter layout. */
#include "keys/keyfile_cipher.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "shoal/error.h"

enum { KIND_NONE, KIND_PLAIN, KIND_GCM, KIND_CHACHA };

static const shoal_keyfile_cipher ciphers[] = {
    {"none", NULL, 0, 0, 8, 0, KIND_NONE},
    {"aes128-ctr", "AES-128-CTR", 16, 16, 16, 0, KIND_PLAIN},
    {"aes192-ctr", "AES-192-CTR", 24, 16, 16, 0, KIND_PLAIN},
    {"aes256-ctr", "AES-256-CTR", 32, 16, 16, 0, KIND_PLAIN},
    {"aes128-cbc", "AES-128-CBC", 16, 16, 16, 0, KIND_PLAIN},
    {"aes192-cbc", "AES-192-CBC", 24, 16, 16, 0, KIND_PLAIN},
    {"aes256-cbc", "AES-256-CBC", 32, 16, 16, 0, KIND_PLAIN},
    {"aes128-gcm@openssh.com", "AES-128-GCM", 16, 12, 16, 16, KIND_GCM},
    {"aes256-gcm@openssh.com", "AES-256-GCM", 32, 12, 16, 16, KIND_GCM},
    {"chacha20-poly1305@openssh.com", NULL, 64, 0, 8, 16, KIND_CHACHA},
};

const shoal_keyfile_cipher *shoal_keyfile_cipher_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
        if (strlen(ciphers[i].name) == len && memcmp(ciphers[i].name, name, len) == 0)
            return &ciphers[i];
    return NULL;
}

/* One EVP decryption pass; tag (GCM) may be NULL. */
static int evp_decrypt(const char *alg, const uint8_t *key, const uint8_t *iv, const uint8_t *in, size_t len,
                       const uint8_t *tag, size_t tag_len, uint8_t *out)
{
    int rc = SHOAL_ERR_CRYPTO, n = 0, fin = 0;
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, alg, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!c || !ctx || len > (size_t)INT32_MAX)
        goto out;
    if (EVP_DecryptInit_ex2(ctx, c, key, iv, NULL) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)
        goto out;
    if (EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1)
        goto out;
    if (tag) {
        OSSL_PARAM p[2];
        p[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, tag_len);
        p[1] = OSSL_PARAM_construct_end();
        if (EVP_CIPHER_CTX_set_params(ctx, p) != 1)
            goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1) {
        rc = tag ? SHOAL_ERR_BAD_PASSPHRASE : SHOAL_ERR_CRYPTO;
        goto out;
    }
    rc = (size_t)n + (size_t)fin == len ? SHOAL_OK : SHOAL_ERR_CRYPTO;
out:
    if (rc)
        OPENSSL_cleanse(out, len);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    ERR_clear_error();
    return rc;
}

static int poly1305(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t tag[16])
{
    int rc = SHOAL_ERR_CRYPTO;
    size_t outl = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx && EVP_MAC_init(ctx, key, 32, NULL) == 1 && EVP_MAC_update(ctx, in, len) == 1 &&
        EVP_MAC_final(ctx, tag, &outl, 16) == 1 && outl == 16)
        rc = SHOAL_OK;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    ERR_clear_error();
    return rc;
}

static int chacha_decrypt(const uint8_t *key, const uint8_t *in, size_t len, const uint8_t *tag, uint8_t *out)
{
    static const uint8_t zero64[64] = {0};
    uint8_t iv[16] = {0}, block0[64], polykey[32], want[16];
    /* Block 0 of the key stream (counter 0, nonce 0) keys Poly1305. */
    int rc = evp_decrypt("ChaCha20", key, iv, zero64, sizeof(block0), NULL, 0, block0);
    if (!rc) {
        memcpy(polykey, block0, sizeof(polykey));
        rc = poly1305(polykey, in, len, want);
    }
    if (!rc && CRYPTO_memcmp(want, tag, sizeof(want)) != 0)
        rc = SHOAL_ERR_BAD_PASSPHRASE;
    if (!rc) {
        iv[0] = 1; /* counter 1 onwards encrypts the payload */
        rc = evp_decrypt("ChaCha20", key, iv, in, len, NULL, 0, out);
    }
    OPENSSL_cleanse(block0, sizeof(block0));
    OPENSSL_cleanse(polykey, sizeof(polykey));
    return rc;
}

int shoal_keyfile_cipher_decrypt(const shoal_keyfile_cipher *c, const uint8_t *keyiv, const uint8_t *in, size_t len,
                           const uint8_t *tag, uint8_t *out)
{
    switch (c->kind) {
    case KIND_NONE:
        memcpy(out, in, len);
        return SHOAL_OK;
    case KIND_PLAIN:
        return evp_decrypt(c->evp, keyiv, keyiv + c->key_len, in, len, NULL, 0, out);
    case KIND_GCM:
        return evp_decrypt(c->evp, keyiv, keyiv + c->key_len, in, len, tag, c->tag_len, out);
    case KIND_CHACHA:
        return chacha_decrypt(keyiv, in, len, tag, out);
    default:
        return SHOAL_ERR_UNSUPPORTED;
    }
}
