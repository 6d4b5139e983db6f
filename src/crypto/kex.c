/* Key exchange methods reduced to keypair / shared secret (see kex.h):
 *   X25519       curve25519-sha256[@libssh.org]        RFC 8731
 *   ECDH         ecdh-sha2-nistp256/384/521             RFC 5656
 *   finite-field diffie-hellman-group14/16/18-sha*      RFC 8268 (RFC 4253 8)
 * Everything goes through libcrypto 3 EVP_PKEY / OSSL_PARAM; no deprecated
 * low-level DH or EC_KEY calls.
 *
 * Error codes of shoal_kex_shared() for a bad peer value:
 *   SHOAL_ERR_BAD_FORMAT  wrong length or encoding (e.g. a compressed point)
 *   SHOAL_ERR_PROTOCOL    well-formed but invalid (point not on the curve,
 *                         f outside 1 < f < p-1, all-zero X25519 result)
 *   SHOAL_ERR_BAD_STATE   second call on the same state */
#include "crypto/kex.h"
#include "crypto/kex_test_hooks.h"
#include "crypto/kept.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

/* ---- method table ---- */

static const shoal_kex_alg kex_algs[] = {
    {"curve25519-sha256", SHOAL_HASH_SHA256, SHOAL_KEX_X25519, NID_X25519, 0},
    {"curve25519-sha256@libssh.org", SHOAL_HASH_SHA256, SHOAL_KEX_X25519, NID_X25519, 0},
    {"ecdh-sha2-nistp256", SHOAL_HASH_SHA256, SHOAL_KEX_ECDH, NID_X9_62_prime256v1, 0},
    {"ecdh-sha2-nistp384", SHOAL_HASH_SHA384, SHOAL_KEX_ECDH, NID_secp384r1, 0},
    {"ecdh-sha2-nistp521", SHOAL_HASH_SHA512, SHOAL_KEX_ECDH, NID_secp521r1, 0},
    {"diffie-hellman-group16-sha512", SHOAL_HASH_SHA512, SHOAL_KEX_DH, 16, 1},
    {"diffie-hellman-group18-sha512", SHOAL_HASH_SHA512, SHOAL_KEX_DH, 18, 1},
    {"diffie-hellman-group14-sha256", SHOAL_HASH_SHA256, SHOAL_KEX_DH, 14, 1},
    {"diffie-hellman-group14-sha1", SHOAL_HASH_SHA1, SHOAL_KEX_DH, 14, 1},
};

#define KEX_DEFAULT_LIST                                                                                        \
    "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521," \
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"

const char SHOAL_KEX_DEFAULT[] = KEX_DEFAULT_LIST;
/* group14-sha1 only when a configuration names it explicitly. */
const char SHOAL_KEX_ALL[] = KEX_DEFAULT_LIST ",diffie-hellman-group14-sha1";

const shoal_kex_alg *shoal_kex_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(kex_algs) / sizeof(kex_algs[0]); i++)
        if (strcmp(kex_algs[i].name, name) == 0)
            return &kex_algs[i];
    return NULL;
}

/* ---- group parameters ---- */

#define X25519_LEN 32
/* SEC1 2.3.3 prefix of an uncompressed point. */
#define SEC1_UNCOMPRESSED 0x04
/* Largest shared secret: the 8192-bit DH modulus. */
#define KEX_MAX_SECRET 1024
/* Largest public value we produce: a P-521 point, 1 + 2 * 66 bytes, or
 * the 8192-bit DH modulus. */
#define KEX_MAX_PUB 1024

typedef struct kex_group {
    int param;         /* shoal_kex_alg.param */
    const char *name;  /* libcrypto group name */
    size_t len;        /* EC field element or DH modulus, in bytes */
} kex_group;

static const kex_group ec_groups[] = {
    {NID_X9_62_prime256v1, "P-256", 32},
    {NID_secp384r1, "P-384", 48},
    {NID_secp521r1, "P-521", 66},
};

/* RFC 3526 MODP groups, built into libcrypto. libcrypto picks the private
 * exponent length for these named groups (RFC 7919 sizes: 225, 325 and 400
 * bits) and itself refuses any length below twice the SP 800-56B security
 * strength of the modulus (112, 152 and 200 bits), which is the RFC 8268 /
 * RFC 4419 guidance; test_kex checks the resulting exponent sizes. */
static const kex_group dh_groups[] = {
    {14, "modp_2048", 256},
    {16, "modp_4096", 512},
    {18, "modp_8192", 1024},
};

static const kex_group *group_for(const shoal_kex_alg *alg)
{
    const kex_group *tab;
    size_t n;
    if (alg->kind == SHOAL_KEX_ECDH) {
        tab = ec_groups;
        n = sizeof(ec_groups) / sizeof(ec_groups[0]);
    } else if (alg->kind == SHOAL_KEX_DH) {
        tab = dh_groups;
        n = sizeof(dh_groups) / sizeof(dh_groups[0]);
    } else {
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (tab[i].param == alg->param)
            return &tab[i];
    return NULL;
}

/* ---- state ---- */

struct shoal_kex_state {
    const shoal_kex_alg *alg;
    const kex_group *group; /* NULL for X25519 */
    EVP_PKEY *key;          /* our ephemeral key; dropped once K is derived */
    EVP_PKEY_CTX *derive;   /* X25519: derive-initialised on key, or NULL */
    uint8_t x25519_pub[X25519_LEN]; /* X25519: our public value */
    int used;               /* shoal_kex_shared() has run */
};

void shoal_kex_state_free(shoal_kex_state *st)
{
    if (!st)
        return;
    EVP_PKEY_CTX_free(st->derive);
    EVP_PKEY_free(st->key); /* libcrypto clears private key material on free */
    OPENSSL_cleanse(st, sizeof(*st));
    free(st);
}

/* ---- key generation ---- */

/* The X25519 base point, u = 9 (RFC 7748 4.1), little-endian. */
static const uint8_t x25519_nine[X25519_LEN] = {9};

/* The thread's X25519 key holding the base point, or, when it cannot be
 * kept, a new one that *owned tells the caller to free. */
static EVP_PKEY *x25519_base(int *owned)
{
    EVP_PKEY *base = shoal__kept_get(SHOAL_KEPT_X25519_BASE);
    *owned = 0;
    if (base)
        return base;
    base = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, x25519_nine, X25519_LEN);
    if (base && !shoal__kept_set(SHOAL_KEPT_X25519_BASE, base))
        *owned = 1;
    return base;
}

/* Our X25519 key from a 32-byte private value, with its public value
 * computed as X25519(priv, 9) (RFC 7748 section 6.1) on a context that stays
 * derive-initialised for the shared secret.
 *
 * Why not EVP_PKEY_keygen: OpenSSL 3.0 computes the public value with the
 * generic fixed-base Edwards multiplication and its 30 KB table, which is
 * cold in a fan-out; the Montgomery ladder it uses for derivation has an
 * assembly implementation and no table (~10 us less per connection here).
 * The key is built with a placeholder public value, which nothing reads: the
 * real one is kept in the state, and derivation uses the private value only.
 * (EVP_PKEY_set1_encoded_public_key would drop the private value.) */
static int x25519_from_private(shoal_kex_state *st, const uint8_t *priv)
{
    int base_owned, owned;
    EVP_PKEY *base = x25519_base(&base_owned);
    EVP_PKEY_CTX *from = shoal__kept_ctx(SHOAL_KEPT_FROMDATA_X25519, "X25519", EVP_PKEY_fromdata_init, &owned);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, (void *)priv, X25519_LEN),
        /* the placeholder public value: any 32 bytes do */
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)x25519_nine, X25519_LEN),
        OSSL_PARAM_construct_end(),
    };
    size_t len = X25519_LEN;
    int ok = base && from && EVP_PKEY_fromdata(from, &st->key, EVP_PKEY_KEYPAIR, params) > 0 &&
             (st->derive = EVP_PKEY_CTX_new_from_pkey(NULL, st->key, NULL)) != NULL &&
             EVP_PKEY_derive_init(st->derive) > 0 && EVP_PKEY_derive_set_peer_ex(st->derive, base, 0) > 0 &&
             EVP_PKEY_derive(st->derive, st->x25519_pub, &len) > 0 && len == X25519_LEN;
    if (owned)
        EVP_PKEY_CTX_free(from);
    if (base_owned) /* the context holds its own reference */
        EVP_PKEY_free(base);
    if (!ok) {
        ERR_clear_error();
        return SHOAL_ERR_CRYPTO;
    }
    return SHOAL_OK;
}

/* A fresh key of libcrypto type `type` ("EC", "DH") in the named group
 * `group`. */
static int keygen(const char *type, const char *group, EVP_PKEY **out)
{
    *out = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    int ok = ctx && EVP_PKEY_keygen_init(ctx) > 0;
    if (ok && group) {
        OSSL_PARAM params[3], *p = params;
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
        if (strcmp(type, "EC") == 0) /* RFC 5656: uncompressed points */
            *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                    (char *)OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED, 0);
        *p = OSSL_PARAM_construct_end();
        ok = EVP_PKEY_CTX_set_params(ctx, params) > 0;
    }
    ok = ok && EVP_PKEY_keygen(ctx, out) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(*out);
        *out = NULL;
        ERR_clear_error();
        return SHOAL_ERR_CRYPTO;
    }
    return SHOAL_OK;
}

/* Appends our public value in the raw form kex.h promises: the 32-byte
 * X25519 u-coordinate, the uncompressed SEC1 point, or the big-endian
 * magnitude of e/f without leading zeros. */
static int put_public(const shoal_kex_state *st, shoal_buf *out)
{
    uint8_t pub[KEX_MAX_PUB];
    size_t len = 0;
    const uint8_t *p = pub;
    switch (st->alg->kind) {
    case SHOAL_KEX_X25519:
        p = st->x25519_pub;
        len = X25519_LEN;
        break;
    case SHOAL_KEX_ECDH:
        if (EVP_PKEY_get_octet_string_param(st->key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len) != 1 ||
            len != 1 + 2 * st->group->len || pub[0] != SEC1_UNCOMPRESSED)
            return SHOAL_ERR_CRYPTO;
        break;
    case SHOAL_KEX_DH:
        /* Padded to the modulus size; strip the padding. */
        if (EVP_PKEY_get_octet_string_param(st->key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                            &len) != 1 ||
            len > st->group->len)
            return SHOAL_ERR_CRYPTO;
        while (len > 0 && *p == 0) {
            p++;
            len--;
        }
        break;
    default:
        return SHOAL_ERR_UNSUPPORTED;
    }
    return shoal_buf_put(out, p, len);
}

/* A new state for alg with our key: from key (EC, DH; taken over in every
 * case) or, for X25519, from the private value priv (NULL: a random one).
 * Emits our public value. */
static int make_keypair(const shoal_kex_alg *alg, const kex_group *group, EVP_PKEY *key, const uint8_t *priv,
                        shoal_kex_state **stp, shoal_buf *pub_out)
{
    shoal_kex_state *st = calloc(1, sizeof(*st));
    if (!st) {
        EVP_PKEY_free(key);
        return SHOAL_ERR_NOMEM;
    }
    st->alg = alg;
    st->group = group;
    st->key = key;
    int rc = SHOAL_OK;
    if (alg->kind == SHOAL_KEX_X25519) {
        uint8_t fresh[X25519_LEN];
        if (!priv && RAND_priv_bytes(fresh, sizeof(fresh)) != 1)
            rc = SHOAL_ERR_CRYPTO;
        if (!rc)
            rc = x25519_from_private(st, priv ? priv : fresh);
        OPENSSL_cleanse(fresh, sizeof(fresh));
    }
    size_t mark = shoal_buf_len(pub_out);
    if (!rc)
        rc = put_public(st, pub_out);
    if (rc) {
        shoal_buf_truncate(pub_out, mark);
        shoal_kex_state_free(st);
        ERR_clear_error();
        return rc;
    }
    *stp = st;
    return SHOAL_OK;
}

int shoal_kex_keypair(const shoal_kex_alg *alg, shoal_kex_state **st, shoal_buf *pub_out)
{
    if (!st)
        return SHOAL_ERR_INVALID_ARG;
    *st = NULL;
    if (!alg || !pub_out)
        return SHOAL_ERR_INVALID_ARG;
    const kex_group *group = NULL;
    const char *type;
    switch (alg->kind) {
    case SHOAL_KEX_X25519:
        return make_keypair(alg, NULL, NULL, NULL, st, pub_out);
    case SHOAL_KEX_ECDH:
        type = "EC";
        break;
    case SHOAL_KEX_DH:
        type = "DH";
        break;
    default:
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (!(group = group_for(alg)))
        return SHOAL_ERR_UNSUPPORTED;
    EVP_PKEY *key;
    int rc = keygen(type, group->name, &key);
    if (rc)
        return rc;
    return make_keypair(alg, group, key, NULL, st, pub_out);
}

/* ---- peer public values ---- */

/* X25519: exactly 32 bytes. Low-order points are caught after derivation
 * by the all-zero check (RFC 8731 section 3, RFC 7748 section 6.1). The
 * value goes into the thread's kept key (EVP_PKEY_set1_encoded_public_key,
 * ~0.03 us, against ~3 us for a new key). The caller gets a reference; the
 * derivation that uses it ends before the thread's next connection can
 * replace the value. */
static int peer_x25519(const uint8_t *peer, size_t len, EVP_PKEY **out)
{
    *out = NULL;
    if (len != X25519_LEN)
        return SHOAL_ERR_BAD_FORMAT;
    EVP_PKEY *pk = shoal__kept_get(SHOAL_KEPT_X25519_PEER);
    if (pk && EVP_PKEY_set1_encoded_public_key(pk, peer, len) == 1 && EVP_PKEY_up_ref(pk) == 1) {
        *out = pk;
        return SHOAL_OK;
    }
    pk = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer, len);
    if (!pk)
        return SHOAL_ERR_CRYPTO;
    /* Kept for the thread's next connection: one reference for the thread,
     * one for the caller. */
    if (!shoal__kept_get(SHOAL_KEPT_X25519_PEER) && EVP_PKEY_up_ref(pk) == 1 &&
        !shoal__kept_set(SHOAL_KEPT_X25519_PEER, pk))
        EVP_PKEY_free(pk);
    *out = pk;
    return SHOAL_OK;
}

/* A public-only key in the group of our own key, holding the peer's
 * encoded public value. libcrypto decodes and checks it while setting it:
 * SEC1 decoding refuses coordinates >= p and points off the curve, and the
 * DH setter refuses values outside 1 < y < p-1. Copying the group from our
 * key is several times cheaper than building it again by name. */
static int peer_from_encoded(EVP_PKEY *ours, const uint8_t *enc, size_t len, EVP_PKEY **out)
{
    EVP_PKEY *pk = EVP_PKEY_new();
    if (!pk)
        return SHOAL_ERR_NOMEM;
    if (EVP_PKEY_copy_parameters(pk, ours) != 1) {
        EVP_PKEY_free(pk);
        return SHOAL_ERR_CRYPTO;
    }
    if (EVP_PKEY_set1_encoded_public_key(pk, enc, len) != 1) {
        EVP_PKEY_free(pk);
        return SHOAL_ERR_PROTOCOL;
    }
    *out = pk;
    return SHOAL_OK;
}

/* ECDH: an uncompressed SEC1 point (0x04 || x || y) of the right size,
 * which must lie on the curve (RFC 5656 sections 3.1 and 4; compressed
 * points are refused, as OpenSSH does). Decoding checks the curve
 * equation; the quick public check repeats the range, on-curve and
 * point-at-infinity tests explicitly. The full check (n * Q == O) is
 * redundant on these prime-order curves (cofactor 1) and costs a scalar
 * multiplication. */
static int peer_ecdh(const shoal_kex_state *st, const uint8_t *peer, size_t len, EVP_PKEY **out)
{
    if (len != 1 + 2 * st->group->len || peer[0] != SEC1_UNCOMPRESSED)
        return SHOAL_ERR_BAD_FORMAT;
    int rc = peer_from_encoded(st->key, peer, len, out);
    if (rc)
        return rc;
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    if (!check || EVP_PKEY_public_check_quick(check) != 1)
        rc = SHOAL_ERR_PROTOCOL;
    EVP_PKEY_CTX_free(check);
    return rc;
}

/* DH: f as an unsigned big-endian magnitude; RFC 4253 section 8 as amended
 * by RFC 8268 section 4 requires 1 < f < p-1. Checked here explicitly
 * (libcrypto checks it again when the value is set). */
static int peer_dh(const shoal_kex_state *st, const uint8_t *peer, size_t len, EVP_PKEY **out)
{
    static const uint8_t none[1] = {0};
    if (len > SHOAL_MAX_MPINT_BYTES)
        return SHOAL_ERR_BAD_FORMAT;
    if (!peer)
        peer = none; /* len == 0: f = 0 */
    BIGNUM *f = BN_bin2bn(peer, (int)len, NULL);
    BIGNUM *pm1 = NULL; /* p - 1 */
    int rc = SHOAL_ERR_CRYPTO;
    if (f && EVP_PKEY_get_bn_param(st->key, OSSL_PKEY_PARAM_FFC_P, &pm1) == 1 && BN_sub_word(pm1, 1)) {
        if (BN_cmp(f, BN_value_one()) <= 0 || BN_cmp(f, pm1) >= 0)
            rc = SHOAL_ERR_PROTOCOL;
        else
            rc = peer_from_encoded(st->key, peer, len, out);
    }
    BN_free(pm1);
    BN_free(f);
    return rc;
}

/* ---- shared secret ---- */

/* Raw ECDH/DH output of our key with an already validated peer key. ECDH
 * yields the x-coordinate padded to the field size, DH the big-endian
 * g^xy mod p; both become K as an mpint, as X25519's 32-byte string does. */
static int derive_raw(EVP_PKEY *ours, EVP_PKEY *peer, uint8_t *out, size_t *outlen)
{
    size_t need = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ours, NULL);
    /* validate_peer = 0: each peer_* function above did the validation. */
    int ok = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) > 0 &&
             EVP_PKEY_derive(ctx, NULL, &need) > 0 && need <= *outlen && EVP_PKEY_derive(ctx, out, outlen) > 0;
    EVP_PKEY_CTX_free(ctx);
    return ok ? SHOAL_OK : SHOAL_ERR_CRYPTO;
}

/* 1 when all n bytes are zero; runs in time independent of the contents. */
static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

int shoal_kex_shared(shoal_kex_state *st, const uint8_t *peer, size_t peer_len, shoal_buf *K_out)
{
    if (!st || !K_out || (!peer && peer_len))
        return SHOAL_ERR_INVALID_ARG;
    if (st->used || !st->key)
        return SHOAL_ERR_BAD_STATE;
    st->used = 1; /* single use, whatever the outcome: no retries against our key */

    uint8_t secret[KEX_MAX_SECRET];
    size_t slen = sizeof(secret);
    EVP_PKEY *pk = NULL;
    size_t mark = shoal_buf_len(K_out);
    int rc;

    switch (st->alg->kind) {
    case SHOAL_KEX_X25519:
        rc = peer_x25519(peer, peer_len, &pk);
        break;
    case SHOAL_KEX_ECDH:
        rc = peer_ecdh(st, peer, peer_len, &pk);
        break;
    case SHOAL_KEX_DH:
        rc = peer_dh(st, peer, peer_len, &pk);
        break;
    default:
        rc = SHOAL_ERR_UNSUPPORTED;
        break;
    }
    if (!rc && st->alg->kind == SHOAL_KEX_X25519) {
        /* On the context that made our public value (x25519_from_private).
         * libcrypto already fails X25519 on an all-zero result (a low-order
         * peer point); report that as the peer's fault, and check again
         * ourselves rather than rely on it (RFC 8731 section 3). */
        int ok = st->derive && EVP_PKEY_derive_set_peer_ex(st->derive, pk, 0) > 0 &&
                 EVP_PKEY_derive(st->derive, secret, &slen) > 0;
        if (!ok || slen != X25519_LEN || all_zero(secret, slen))
            rc = SHOAL_ERR_PROTOCOL;
    } else if (!rc) {
        rc = derive_raw(st->key, pk, secret, &slen);
    }
    if (!rc)
        rc = shoal_buf_put_mpint(K_out, secret, slen);
    if (rc && shoal_buf_len(K_out) > mark) { /* a partial K: wipe it */
        shoal_wipe(shoal_buf_mutptr(K_out) + mark, shoal_buf_len(K_out) - mark);
        shoal_buf_truncate(K_out, mark);
    }

    OPENSSL_cleanse(secret, sizeof(secret));
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(st->derive); /* also drops its hold on the thread's peer key */
    st->derive = NULL;
    EVP_PKEY_free(st->key); /* forward secrecy: the ephemeral key is done */
    st->key = NULL;
    if (rc)
        ERR_clear_error(); /* don't leave peer-induced errors on the queue */
    return rc;
}

/* ---- test hooks (kex_test_hooks.h) ---- */

int shoal_kex_test_keypair_from_private(const shoal_kex_alg *alg, const uint8_t *priv, size_t priv_len,
                                        shoal_kex_state **st, shoal_buf *pub_out)
{
    if (!st)
        return SHOAL_ERR_INVALID_ARG;
    *st = NULL;
    if (!alg || !priv || !pub_out)
        return SHOAL_ERR_INVALID_ARG;
    if (alg->kind != SHOAL_KEX_X25519)
        return SHOAL_ERR_UNSUPPORTED;
    if (priv_len != X25519_LEN)
        return SHOAL_ERR_BAD_FORMAT;
    return make_keypair(alg, NULL, NULL, priv, st, pub_out);
}

int shoal_kex_test_dh_priv_bits(const shoal_kex_state *st)
{
    if (!st || !st->key || st->alg->kind != SHOAL_KEX_DH)
        return -1;
    BIGNUM *x = NULL;
    if (EVP_PKEY_get_bn_param(st->key, OSSL_PKEY_PARAM_PRIV_KEY, &x) != 1)
        return -1;
    int bits = BN_num_bits(x);
    BN_clear_free(x);
    return bits;
}
