/* bcrypt_pbkdf, as OpenSSH uses it for openssh-key-v1 private key files.
 *
 * Algorithm (Ted Unangst's bcrypt_pbkdf, OpenBSD; described in its man page
 * and in Provos & Mazieres, "A Future-Adaptable Password Scheme", 1999):
 *
 *   bcrypt_hash(P, S), with P = SHA-512(password), S = SHA-512(salt'):
 *     state = Blowfish initial state (pi)
 *     eks-expand(state, salt=S, key=P)
 *     64 times: expand0(state, S); expand0(state, P)
 *     C = "OxychromaticBlowfishSwatDynamite" as 8 big-endian words
 *     64 times: Blowfish-ECB-encrypt the 4 blocks of C in place
 *     output = the 8 words of C, each stored little-endian (32 bytes)
 *
 *   bcrypt_pbkdf(password, salt, rounds, keylen):
 *     stride = ceil(keylen / 32); each 32-byte block b (counting from 1):
 *       T = bcrypt_hash(P, SHA-512(salt || be32(b))), out = T
 *       rounds - 1 times: T = bcrypt_hash(P, SHA-512(T)); out ^= T
 *       out[i] goes to key[i * stride + b - 1] (the "strided" spreading,
 *       so every key byte depends on every block's work)
 *
 * Blowfish itself is libcrypto's BF_encrypt() over a BF_KEY whose P and S
 * arrays we fill and mutate ourselves (eksblowfish needs a key schedule
 * libcrypto does not offer). */

/* BF_encrypt() and BF_KEY are deprecated in OpenSSL 3.0 (low-level cipher
 * API), but eksblowfish needs direct access to the Blowfish state, which
 * EVP does not give. The suppression is limited to this file. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "keys/bcrypt_pbkdf.h"

#include <string.h>

#include <openssl/blowfish.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "keys/bf_pi.h"
#include "shoal/error.h"

#define BCRYPT_WORDS 8
#define BCRYPT_HASHSIZE (BCRYPT_WORDS * 4)
#define SHA512_LEN 64

/* Reads the next big-endian word from data, wrapping around cyclically. */
static uint32_t stream_word(const uint8_t *data, size_t len, size_t *pos)
{
    uint32_t w = 0;
    for (int i = 0; i < 4; i++) {
        w = (w << 8) | data[*pos];
        *pos = (*pos + 1) % len;
    }
    return w;
}

static void bf_init_state(BF_KEY *ks)
{
    memcpy(ks->P, shoal_bf_pi_p, sizeof(ks->P));
    memcpy(ks->S, shoal_bf_pi_s, sizeof(ks->S));
}

/* XORs the key cyclically into P, then re-keys P and S by encrypting a
 * running block that is itself XORed with words of data (when data is
 * not NULL: eksblowfish's salted expansion; otherwise plain Blowfish). */
static void bf_expand(BF_KEY *ks, const uint8_t *data, size_t data_len, const uint8_t *key, size_t key_len)
{
    size_t kpos = 0, dpos = 0;
    BF_LONG blk[2] = {0, 0};
    for (int i = 0; i < BF_ROUNDS + 2; i++)
        ks->P[i] ^= stream_word(key, key_len, &kpos);
    for (int i = 0; i < BF_ROUNDS + 2; i += 2) {
        if (data) {
            blk[0] ^= stream_word(data, data_len, &dpos);
            blk[1] ^= stream_word(data, data_len, &dpos);
        }
        BF_encrypt(blk, ks);
        ks->P[i] = blk[0];
        ks->P[i + 1] = blk[1];
    }
    for (int i = 0; i < 4 * 256; i += 2) {
        if (data) {
            blk[0] ^= stream_word(data, data_len, &dpos);
            blk[1] ^= stream_word(data, data_len, &dpos);
        }
        BF_encrypt(blk, ks);
        ks->S[i] = blk[0];
        ks->S[i + 1] = blk[1];
    }
    OPENSSL_cleanse(blk, sizeof(blk));
}

void shoal_bf_plain_setkey(struct bf_key_st *ks, const uint8_t *key, size_t len)
{
    bf_init_state(ks);
    bf_expand(ks, NULL, 0, key, len);
}

/* The 32-byte bcrypt hash of (SHA-512(password), SHA-512(salt)). */
static void bcrypt_hash(const uint8_t pass[SHA512_LEN], const uint8_t salt[SHA512_LEN], uint8_t out[BCRYPT_HASHSIZE])
{
    static const char magic[BCRYPT_HASHSIZE + 1] = "OxychromaticBlowfishSwatDynamite";
    BF_KEY ks;
    BF_LONG c[BCRYPT_WORDS];
    size_t pos = 0;

    bf_init_state(&ks);
    bf_expand(&ks, salt, SHA512_LEN, pass, SHA512_LEN);
    for (int r = 0; r < 64; r++) {
        bf_expand(&ks, NULL, 0, salt, SHA512_LEN);
        bf_expand(&ks, NULL, 0, pass, SHA512_LEN);
    }
    for (int i = 0; i < BCRYPT_WORDS; i++)
        c[i] = stream_word((const uint8_t *)magic, BCRYPT_HASHSIZE, &pos);
    for (int r = 0; r < 64; r++)
        for (int i = 0; i < BCRYPT_WORDS; i += 2)
            BF_encrypt(&c[i], &ks);
    for (int i = 0; i < BCRYPT_WORDS; i++) {
        out[4 * i + 0] = (uint8_t)c[i];
        out[4 * i + 1] = (uint8_t)(c[i] >> 8);
        out[4 * i + 2] = (uint8_t)(c[i] >> 16);
        out[4 * i + 3] = (uint8_t)(c[i] >> 24);
    }
    OPENSSL_cleanse(&ks, sizeof(ks));
    OPENSSL_cleanse(c, sizeof(c));
}

static int sha512(const void *p, size_t n, uint8_t out[SHA512_LEN])
{
    unsigned int len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha512(), NULL) == 1 && len == SHA512_LEN ? SHOAL_OK : SHOAL_ERR_CRYPTO;
}

int shoal_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, unsigned rounds,
                       uint8_t *key, size_t keylen)
{
    uint8_t hpass[SHA512_LEN], hsalt[SHA512_LEN], tmp[BCRYPT_HASHSIZE], acc[BCRYPT_HASHSIZE];
    uint8_t countsalt[SHOAL_BCRYPT_MAX_SALT + 4];
    int rc = SHOAL_ERR_INVALID_ARG;

    if (!pass || !salt || !key || passlen == 0 || saltlen == 0 || saltlen > SHOAL_BCRYPT_MAX_SALT || rounds == 0 ||
        keylen == 0 || keylen > SHOAL_BCRYPT_MAX_KEY)
        return rc;
    size_t stride = (keylen + BCRYPT_HASHSIZE - 1) / BCRYPT_HASHSIZE;
    size_t per_block = (keylen + stride - 1) / stride; /* key bytes each block supplies */

    memcpy(countsalt, salt, saltlen);
    if ((rc = sha512(pass, passlen, hpass)) != SHOAL_OK)
        goto out;
    for (uint32_t block = 1; (size_t)(block - 1) < stride; block++) {
        countsalt[saltlen + 0] = (uint8_t)(block >> 24);
        countsalt[saltlen + 1] = (uint8_t)(block >> 16);
        countsalt[saltlen + 2] = (uint8_t)(block >> 8);
        countsalt[saltlen + 3] = (uint8_t)block;
        if ((rc = sha512(countsalt, saltlen + 4, hsalt)) != SHOAL_OK)
            goto out;
        bcrypt_hash(hpass, hsalt, tmp);
        memcpy(acc, tmp, sizeof(acc));
        for (unsigned r = 1; r < rounds; r++) {
            if ((rc = sha512(tmp, sizeof(tmp), hsalt)) != SHOAL_OK)
                goto out;
            bcrypt_hash(hpass, hsalt, tmp);
            for (size_t i = 0; i < sizeof(acc); i++)
                acc[i] ^= tmp[i];
        }
        /* Spread this block's bytes with the stride; the last block may
         * have fewer destinations left. */
        for (size_t i = 0; i < per_block; i++) {
            size_t dest = i * stride + (block - 1);
            if (dest >= keylen)
                break;
            key[dest] = acc[i];
        }
    }
    rc = SHOAL_OK;
out:
    OPENSSL_cleanse(hpass, sizeof(hpass));
    OPENSSL_cleanse(hsalt, sizeof(hsalt));
    OPENSSL_cleanse(tmp, sizeof(tmp));
    OPENSSL_cleanse(acc, sizeof(acc));
    OPENSSL_cleanse(countsalt, sizeof(countsalt));
    return rc;
}
