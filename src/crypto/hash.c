/* Hashes for the key exchange (SHA-1 and SHA-2 through EVP), the RFC 4253
 * section 7.2 key derivation, and the CSPRNG. See kex.h. */
#include "crypto/kex.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- digest cache ----
 * libcrypto 3 performs an implicit provider look-up on every EVP_DigestInit
 * when given an EVP_sha256()-style handle. Fetching each digest once per
 * process and reusing it avoids that per call. The objects live for the
 * whole process (never freed), and are fetched under CRYPTO_THREAD_run_once
 * so concurrent first use from several threads is safe. */

#define HASH_COUNT 4 /* SHOAL_HASH_SHA1 .. SHOAL_HASH_SHA512 */

static CRYPTO_ONCE md_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MD *md_cache[HASH_COUNT];

static void md_fetch_all(void)
{
    static const char *const names[HASH_COUNT] = {"SHA1", "SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < HASH_COUNT; i++)
        md_cache[i] = EVP_MD_fetch(NULL, names[i], NULL);
}

/* The fetched digest for a SHOAL_HASH_* id; NULL if unknown or unavailable. */
static const EVP_MD *md_for(int hash)
{
    if (hash < SHOAL_HASH_SHA1 || hash > SHOAL_HASH_SHA512)
        return NULL;
    if (!CRYPTO_THREAD_run_once(&md_once, md_fetch_all))
        return NULL;
    return md_cache[hash - SHOAL_HASH_SHA1];
}

size_t shoal_hash_len(int hash)
{
    switch (hash) {
    case SHOAL_HASH_SHA1:
        return 20;
    case SHOAL_HASH_SHA256:
        return 32;
    case SHOAL_HASH_SHA384:
        return 48;
    case SHOAL_HASH_SHA512:
        return 64;
    default:
        return 0;
    }
}

int shoal_hash(int hash, const uint8_t *data, size_t len, uint8_t *out)
{
    if (!shoal_hash_len(hash) || !out || (!data && len))
        return SHOAL_ERR_INVALID_ARG;
    const EVP_MD *md = md_for(hash);
    if (!md)
        return SHOAL_ERR_CRYPTO;
    unsigned int olen = 0;
    if (!EVP_Digest(data, len, out, &olen, md, NULL) || olen != shoal_hash_len(hash))
        return SHOAL_ERR_CRYPTO;
    return SHOAL_OK;
}

/* ---- RFC 4253 section 7.2 ----
 *   K1 = HASH(K || H || X || session_id)      X is the letter "A".."F"
 *   K2 = HASH(K || H || K1)
 *   K3 = HASH(K || H || K1 || K2) ...
 *   key = K1 || K2 || K3 || ... truncated to the length needed.
 * Every block but the last is copied whole into out, so out[0..have) is
 * exactly K1 || ... || K(n-1) when block n is computed. */
int shoal_kex_derive(int hash, const uint8_t *K_mpint, size_t K_len, const uint8_t *H, size_t H_len,
                     char letter, const uint8_t *session_id, size_t sid_len, uint8_t *out, size_t need)
{
    const EVP_MD *md = md_for(hash);
    const size_t hlen = shoal_hash_len(hash);
    if (!hlen || (!K_mpint && K_len) || (!H && H_len) || (!session_id && sid_len) || (!out && need))
        return SHOAL_ERR_INVALID_ARG;
    if (!md)
        return SHOAL_ERR_CRYPTO;
    if (need == 0)
        return SHOAL_OK;

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return SHOAL_ERR_NOMEM;
    uint8_t block[SHOAL_HASH_MAX];
    const uint8_t x = (uint8_t)letter;
    size_t have = 0;
    int rc = SHOAL_ERR_CRYPTO;

    /* K1 */
    if (!EVP_DigestInit_ex2(ctx, md, NULL) || !EVP_DigestUpdate(ctx, K_mpint, K_len) ||
        !EVP_DigestUpdate(ctx, H, H_len) || !EVP_DigestUpdate(ctx, &x, 1) ||
        !EVP_DigestUpdate(ctx, session_id, sid_len) || !EVP_DigestFinal_ex(ctx, block, NULL))
        goto out;
    for (;;) {
        size_t n = need - have < hlen ? need - have : hlen;
        memcpy(out + have, block, n);
        have += n;
        if (have == need)
            break;
        /* K(n+1) over everything produced so far */
        if (!EVP_DigestInit_ex2(ctx, md, NULL) || !EVP_DigestUpdate(ctx, K_mpint, K_len) ||
            !EVP_DigestUpdate(ctx, H, H_len) || !EVP_DigestUpdate(ctx, out, have) ||
            !EVP_DigestFinal_ex(ctx, block, NULL))
            goto out;
    }
    rc = SHOAL_OK;
out:
    OPENSSL_cleanse(block, sizeof(block));
    EVP_MD_CTX_free(ctx); /* also wipes the digest state */
    if (rc)
        OPENSSL_cleanse(out, need);
    return rc;
}

int shoal_random(void *out, size_t len)
{
    uint8_t *p = out;
    if (!p && len)
        return SHOAL_ERR_INVALID_ARG;
    while (len > 0) { /* RAND_bytes takes an int */
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, chunk) != 1)
            return SHOAL_ERR_CRYPTO;
        p += chunk;
        len -= (size_t)chunk;
    }
    return SHOAL_OK;
}

/* One libcrypto call fills the pool for many callers: RAND_bytes costs
 * ~0.6 us warm, several times that when its state is cold in the cache, as
 * it is between the connections of a fan-out, while a connection needs only
 * ~150 bytes of padding and a cookie. The bytes come from the same
 * generator; nothing secret is ever drawn from the pool. */
int shoal_random_public(void *out, size_t len)
{
    static _Thread_local uint8_t pool[2048];
    static _Thread_local size_t left;
    if (len > sizeof(pool) / 4)
        return shoal_random(out, len);
    if (left < len) {
        int rc = shoal_random(pool, sizeof(pool));
        if (rc)
            return rc;
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, len);
    left -= len;
    return SHOAL_OK;
}
