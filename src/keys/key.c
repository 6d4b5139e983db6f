/* SSH public keys: the blob encoding (RFC 4253 6.6 ssh-rsa, RFC 5656 3.1
 * ecdsa-sha2-*, RFC 8709 ssh-ed25519), the one-line text form, comparison
 * and the SHA256 fingerprint. Keys live in libcrypto EVP_PKEYs. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "crypto/kept.h"
#include "crypto/kex.h"
#include "keys/key_internal.h"

static const shoal_ecinfo ec_infos[] = {
    {SHOAL_KEY_ECDSA_P256, "ecdsa-sha2-nistp256", "nistp256", "prime256v1", 32, 256, "SHA256"},
    {SHOAL_KEY_ECDSA_P384, "ecdsa-sha2-nistp384", "nistp384", "secp384r1", 48, 384, "SHA384"},
    {SHOAL_KEY_ECDSA_P521, "ecdsa-sha2-nistp521", "nistp521", "secp521r1", 66, 521, "SHA512"},
};

const shoal_ecinfo *shoal_key_ecinfo(shoal_keytype t)
{
    for (size_t i = 0; i < sizeof(ec_infos) / sizeof(ec_infos[0]); i++)
        if (ec_infos[i].type == t)
            return &ec_infos[i];
    return NULL;
}

const char *shoal_keytype_name(shoal_keytype t)
{
    const shoal_ecinfo *ec = shoal_key_ecinfo(t);
    if (ec)
        return ec->name;
    switch (t) {
    case SHOAL_KEY_ED25519:
        return "ssh-ed25519";
    case SHOAL_KEY_RSA:
        return "ssh-rsa";
    default:
        return "unknown";
    }
}

shoal_keytype shoal_keytype_from_name(const char *name, size_t len)
{
    static const shoal_keytype all[] = {SHOAL_KEY_ED25519, SHOAL_KEY_ECDSA_P256, SHOAL_KEY_ECDSA_P384,
                                        SHOAL_KEY_ECDSA_P521, SHOAL_KEY_RSA};
    if (!name)
        return SHOAL_KEY_UNKNOWN;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *n = shoal_keytype_name(all[i]);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return all[i];
    }
    return SHOAL_KEY_UNKNOWN;
}

/* ---- EVP_PKEY construction from public parts ---- */

static int pkey_fromdata_params(const char *alg, shoal_kept_slot slot, int selection, OSSL_PARAM *params,
                                EVP_PKEY **out)
{
    int owned;
    EVP_PKEY_CTX *ctx = shoal__kept_ctx(slot, alg, EVP_PKEY_fromdata_init, &owned);
    int rc = SHOAL_ERR_NOMEM;
    *out = NULL;
    if (params && ctx)
        rc = EVP_PKEY_fromdata(ctx, out, selection, params) == 1 ? SHOAL_OK : SHOAL_ERR_BAD_FORMAT;
    if (owned)
        EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

static int pkey_fromdata(const char *alg, shoal_kept_slot slot, int selection, OSSL_PARAM_BLD *bld,
                         EVP_PKEY **out)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    int rc = pkey_fromdata_params(alg, slot, selection, params, out);
    OSSL_PARAM_free(params); /* may hold private numbers: the builder clears them */
    return rc;
}

static int rsa_public_pkey(const uint8_t *e, size_t elen, const uint8_t *n, size_t nlen, EVP_PKEY **out)
{
    int rc = SHOAL_ERR_NOMEM;
    BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL), *bn_n = BN_bin2bn(n, (int)nlen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bn_e && bn_n && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        rc = pkey_fromdata("RSA", SHOAL_KEPT_FROMDATA_RSA, EVP_PKEY_PUBLIC_KEY, bld, out);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_e);
    BN_free(bn_n);
    return rc;
}

static int ec_public_pkey(const shoal_ecinfo *ec, const uint8_t *q, size_t qlen, EVP_PKEY **out)
{
    int rc = SHOAL_ERR_NOMEM;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ec->group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen))
        rc = pkey_fromdata("EC", SHOAL_KEPT_FROMDATA_EC, EVP_PKEY_PUBLIC_KEY, bld, out);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

int shoal_key_parse_public_body(shoal_keytype type, shoal_rd *r, EVP_PKEY **out)
{
    const uint8_t *a, *b;
    size_t alen, blen;
    int rc;
    *out = NULL;
    const shoal_ecinfo *ec = shoal_key_ecinfo(type);
    if (type == SHOAL_KEY_ED25519) {
        if ((rc = shoal_rd_string(r, &a, &alen)) != SHOAL_OK)
            return rc;
        if (alen != 32)
            return SHOAL_ERR_BAD_FORMAT;
        OSSL_PARAM params[2] = {OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)a, alen),
                                OSSL_PARAM_construct_end()};
        return pkey_fromdata_params("ED25519", SHOAL_KEPT_FROMDATA_ED25519, EVP_PKEY_PUBLIC_KEY, params, out);
    }
    if (ec) {
        const char *curve;
        size_t clen;
        if ((rc = shoal_rd_cstring(r, &curve, &clen)) != SHOAL_OK || (rc = shoal_rd_string(r, &a, &alen)) != SHOAL_OK)
            return rc;
        /* RFC 5656 3.1: the identifier must name the key type's own curve. */
        if (clen != strlen(ec->curve) || memcmp(curve, ec->curve, clen) != 0)
            return SHOAL_ERR_BAD_FORMAT;
        /* Uncompressed point only (SEC1 2.3.3, as OpenSSH writes it). */
        if (alen != 1 + 2 * ec->field_len || a[0] != 0x04)
            return SHOAL_ERR_BAD_FORMAT;
        return ec_public_pkey(ec, a, alen, out);
    }
    if (type == SHOAL_KEY_RSA) {
        if ((rc = shoal_rd_mpint_max(r, SHOAL_RSA_MAX_BYTES, &a, &alen)) != SHOAL_OK ||
            (rc = shoal_rd_mpint_max(r, SHOAL_RSA_MAX_BYTES, &b, &blen)) != SHOAL_OK)
            return rc;
        /* Cheap size checks before libcrypto sees the numbers. */
        if (alen == 0 || alen > SHOAL_RSA_MAX_E_BITS / 8 || blen == 0)
            return SHOAL_ERR_BAD_FORMAT;
        return rsa_public_pkey(a, alen, b, blen, out);
    }
    return SHOAL_ERR_UNSUPPORTED;
}

/* ---- validation and blob building from an EVP_PKEY ---- */

shoal_keytype shoal_key_type_of_pkey(const EVP_PKEY *pkey)
{
    if (EVP_PKEY_is_a(pkey, "ED25519"))
        return SHOAL_KEY_ED25519;
    if (EVP_PKEY_is_a(pkey, "RSA"))
        return SHOAL_KEY_RSA;
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) != 1) {
            ERR_clear_error();
            return SHOAL_KEY_UNKNOWN; /* explicit curve parameters and the like */
        }
        if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256"))
            return SHOAL_KEY_ECDSA_P256;
        if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384"))
            return SHOAL_KEY_ECDSA_P384;
        if (!strcmp(group, "secp521r1") || !strcmp(group, "P-521"))
            return SHOAL_KEY_ECDSA_P521;
    }
    return SHOAL_KEY_UNKNOWN;
}

static int put_bn_mpint(shoal_buf *out, const BIGNUM *bn)
{
    uint8_t tmp[SHOAL_RSA_MAX_BYTES];
    int n = BN_num_bytes(bn);
    if (n < 0 || (size_t)n > sizeof(tmp))
        return SHOAL_ERR_TOO_LARGE;
    BN_bn2bin(bn, tmp);
    return shoal_buf_put_mpint(out, tmp, (size_t)n);
}

/* RSA: modulus size within bounds, e odd, 3 <= e < 2^64. */
static int rsa_check_and_blob(EVP_PKEY *pkey, shoal_buf *blob)
{
    BIGNUM *n = NULL, *e = NULL;
    int rc = SHOAL_ERR_BAD_FORMAT;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        goto out;
    int bits = BN_num_bits(n);
    if (bits < SHOAL_RSA_MIN_BITS || bits > SHOAL_RSA_MAX_BITS) {
        rc = SHOAL_ERR_UNSUPPORTED;
        goto out;
    }
    if (!BN_is_odd(n) || !BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > SHOAL_RSA_MAX_E_BITS ||
        BN_cmp(e, n) >= 0)
        goto out;
    rc = shoal_buf_put_cstring(blob, "ssh-rsa");
    if (!rc)
        rc = put_bn_mpint(blob, e);
    if (!rc)
        rc = put_bn_mpint(blob, n);
out:
    BN_free(n);
    BN_free(e);
    return rc;
}

/* ECDSA: a valid point of the right curve, written uncompressed. */
static int ec_check_and_blob(EVP_PKEY *pkey, const shoal_ecinfo *ec, shoal_buf *blob)
{
    uint8_t q[1 + 2 * 66];
    size_t qlen = 0;
    int rc = SHOAL_ERR_BAD_FORMAT;
    /* A PEM file may hold a compressed point: ask for the SSH form. */
    (void)EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                         OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED);
    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof(q), &qlen) != 1 ||
        qlen != 1 + 2 * ec->field_len || q[0] != 0x04)
        return rc;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!ctx)
        return SHOAL_ERR_NOMEM;
    int ok = EVP_PKEY_public_check(ctx) == 1; /* on the curve, not infinity, right order */
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return rc;
    rc = shoal_buf_put_cstring(blob, ec->name);
    if (!rc)
        rc = shoal_buf_put_cstring(blob, ec->curve);
    if (!rc)
        rc = shoal_buf_put_string(blob, q, qlen);
    return rc;
}

static int ed25519_blob(EVP_PKEY *pkey, shoal_buf *blob)
{
    uint8_t pk[32];
    size_t pklen = sizeof(pk);
    if (EVP_PKEY_get_raw_public_key(pkey, pk, &pklen) != 1 || pklen != 32)
        return SHOAL_ERR_BAD_FORMAT;
    int rc = shoal_buf_put_cstring(blob, "ssh-ed25519");
    if (!rc)
        rc = shoal_buf_put_string(blob, pk, pklen);
    return rc;
}

/* The key object around pkey (ownership moves in, freed on failure) and a
 * copy of its blob. */
static int key_wrap(EVP_PKEY *pkey, shoal_keytype type, int has_private, const uint8_t *blob, size_t blob_len,
                    shoal_key **out)
{
    shoal_key *k = calloc(1, sizeof(*k));
    if (k && !(k->blob = malloc(blob_len))) {
        free(k);
        k = NULL;
    }
    if (!k) {
        EVP_PKEY_free(pkey);
        return SHOAL_ERR_NOMEM;
    }
    k->type = type;
    k->has_private = has_private;
    pthread_mutex_init(&k->sign_mu, NULL);
    k->pkey = pkey;
    k->blob_len = blob_len;
    memcpy(k->blob, blob, blob_len);
    *out = k;
    return SHOAL_OK;
}

int shoal_key_from_pkey(EVP_PKEY *pkey, shoal_keytype type, int has_private, shoal_key **out)
{
    shoal_buf blob;
    int rc;
    *out = NULL;
    if (!pkey)
        return SHOAL_ERR_INVALID_ARG;
    shoal_buf_init(&blob, SHOAL_KEY_MAX_BLOB);
    if (shoal_key_type_of_pkey(pkey) != type) {
        rc = SHOAL_ERR_UNSUPPORTED;
    } else if (type == SHOAL_KEY_ED25519) {
        rc = ed25519_blob(pkey, &blob);
    } else if (type == SHOAL_KEY_RSA) {
        rc = rsa_check_and_blob(pkey, &blob);
    } else {
        const shoal_ecinfo *ec = shoal_key_ecinfo(type);
        rc = ec ? ec_check_and_blob(pkey, ec, &blob) : SHOAL_ERR_UNSUPPORTED;
    }
    ERR_clear_error();
    if (rc)
        EVP_PKEY_free(pkey);
    else
        rc = key_wrap(pkey, type, has_private, shoal_buf_ptr(&blob), shoal_buf_len(&blob), out);
    shoal_buf_free(&blob);
    return rc;
}

/* ---- public API ---- */

int shoal_key_from_blob(const uint8_t *blob, size_t len, shoal_key **out)
{
    shoal_rd r;
    const char *name;
    size_t nlen;
    EVP_PKEY *pkey = NULL;
    shoal_key *k = NULL;
    int rc;
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!blob && len)
        return SHOAL_ERR_INVALID_ARG;
    if (len > SHOAL_KEY_MAX_BLOB)
        return SHOAL_ERR_TOO_LARGE;
    shoal_rd_init(&r, blob, len);
    if ((rc = shoal_rd_cstring(&r, &name, &nlen)) != SHOAL_OK)
        return rc;
    shoal_keytype type = shoal_keytype_from_name(name, nlen);
    if (type == SHOAL_KEY_UNKNOWN)
        return SHOAL_ERR_UNSUPPORTED;
    if ((rc = shoal_key_parse_public_body(type, &r, &pkey)) != SHOAL_OK)
        return rc;
    if ((rc = shoal_rd_end(&r)) != SHOAL_OK) {
        EVP_PKEY_free(pkey);
        return rc;
    }
    /* An Ed25519 blob read to its end is canonical by construction (the
     * name matched exactly, then 32 bytes): it is kept as it came. */
    if (type == SHOAL_KEY_ED25519)
        return key_wrap(pkey, type, 0, blob, len, out);
    if ((rc = shoal_key_from_pkey(pkey, type, 0, &k)) != SHOAL_OK)
        return rc;
    /* Our canonical re-encoding must be the input: anything else means a
     * non-canonical encoding slipped through. */
    if (k->blob_len != len || memcmp(k->blob, blob, len) != 0) {
        shoal_key_free(k);
        return SHOAL_ERR_BAD_FORMAT;
    }
    *out = k;
    return SHOAL_OK;
}

int shoal_key_to_blob(const shoal_key *key, shoal_buf *out)
{
    if (!key || !out)
        return SHOAL_ERR_INVALID_ARG;
    return shoal_buf_put(out, key->blob, key->blob_len);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int shoal_key_from_public_text(const char *text, size_t len, shoal_key **out)
{
    /* A .pub line: the blob's base64 is at most ~5.5 KB; leave room for a comment. */
    const size_t max_text = 64u * 1024u;
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!text && len)
        return SHOAL_ERR_INVALID_ARG;
    if (len > max_text)
        return SHOAL_ERR_TOO_LARGE;
    if (text && memchr(text, 0, len))
        return SHOAL_ERR_BAD_FORMAT;
    size_t i = 0;
    while (i < len && is_blank(text[i]))
        i++;
    size_t t0 = i;
    while (i < len && !is_blank(text[i]) && text[i] != '\r' && text[i] != '\n')
        i++;
    size_t tlen = i - t0;
    if (tlen == 0 || i >= len || !is_blank(text[i]))
        return SHOAL_ERR_BAD_FORMAT;
    while (i < len && is_blank(text[i]))
        i++;
    size_t b0 = i;
    while (i < len && !is_blank(text[i]) && text[i] != '\r' && text[i] != '\n')
        i++;
    size_t blen = i - b0;
    /* The rest of the line is the comment; after the line only white space. */
    while (i < len && text[i] != '\n')
        i++;
    for (; i < len; i++)
        if (!is_blank(text[i]) && text[i] != '\r' && text[i] != '\n')
            return SHOAL_ERR_BAD_FORMAT;
    if (blen == 0)
        return SHOAL_ERR_BAD_FORMAT;
    if (blen > (SHOAL_KEY_MAX_BLOB + 2) / 3 * 4)
        return SHOAL_ERR_TOO_LARGE;
    shoal_keytype type = shoal_keytype_from_name(text + t0, tlen);
    if (type == SHOAL_KEY_UNKNOWN)
        return SHOAL_ERR_UNSUPPORTED;
    shoal_buf blob;
    shoal_buf_init(&blob, SHOAL_KEY_MAX_BLOB + 8);
    shoal_key *k = NULL;
    int rc = shoal_base64_decode(text + b0, blen, &blob);
    if (!rc)
        rc = shoal_key_from_blob(shoal_buf_ptr(&blob), shoal_buf_len(&blob), &k);
    shoal_buf_free(&blob);
    if (rc)
        return rc;
    if (k->type != type) { /* "ssh-rsa AAAA<an ed25519 blob>" */
        shoal_key_free(k);
        return SHOAL_ERR_BAD_FORMAT;
    }
    *out = k;
    return SHOAL_OK;
}

shoal_key *shoal_key_ref(shoal_key *key)
{
    if (key)
        atomic_fetch_add_explicit(&key->extra_refs, 1, memory_order_relaxed);
    return key;
}

void shoal_key_free(shoal_key *key)
{
    if (!key)
        return;
    /* Drop one extra reference if there is one; only the last owner frees.
     * A compare-and-swap loop, so two threads dropping the last two
     * references at once cannot both see "one left". */
    unsigned refs = atomic_load_explicit(&key->extra_refs, memory_order_relaxed);
    while (refs > 0)
        if (atomic_compare_exchange_weak_explicit(&key->extra_refs, &refs, refs - 1, memory_order_release,
                                                  memory_order_relaxed))
            return;
    /* Everything other owners did with the key happens before the free. */
    atomic_thread_fence(memory_order_acquire);
    for (int i = 0; i < SHOAL_KEY_SIGN_DIGESTS; i++)
        EVP_MD_CTX_free(key->sign_tmpl[i]);
    pthread_mutex_destroy(&key->sign_mu);
    EVP_PKEY_free(key->pkey); /* libcrypto clears private numbers on free */
    free(key->blob);
    shoal_wipe(key, sizeof(*key));
    free(key);
}

shoal_keytype shoal_key_type(const shoal_key *key)
{
    return key ? key->type : SHOAL_KEY_UNKNOWN;
}

int shoal_key_has_private(const shoal_key *key)
{
    return key ? key->has_private : 0;
}

const char *shoal_key_type_name(const shoal_key *key)
{
    return shoal_keytype_name(key ? key->type : SHOAL_KEY_UNKNOWN);
}

unsigned shoal_key_bits(const shoal_key *key)
{
    if (!key)
        return 0;
    const shoal_ecinfo *ec = shoal_key_ecinfo(key->type);
    if (ec)
        return ec->bits;
    if (key->type == SHOAL_KEY_ED25519)
        return 256;
    int b = EVP_PKEY_get_bits(key->pkey);
    return b > 0 ? (unsigned)b : 0;
}

int shoal_key_equal_public(const shoal_key *a, const shoal_key *b)
{
    if (!a || !b)
        return 0;
    return a->type == b->type && a->blob_len == b->blob_len && memcmp(a->blob, b->blob, a->blob_len) == 0;
}

int shoal_key_fingerprint(const shoal_key *key, char *out, size_t outsz)
{
    static const char prefix[] = "SHA256:";
    uint8_t md[32];
    char b64[48]; /* 44 padded base64 characters and the NUL */
    if (!key || !out)
        return SHOAL_ERR_INVALID_ARG;
    if (outsz)
        out[0] = 0;
    int rc = shoal_hash(SHOAL_HASH_SHA256, key->blob, key->blob_len, md);
    if (!rc)
        rc = shoal_base64_encode(md, sizeof(md), b64, sizeof(b64), 0);
    if (rc)
        return rc;
    size_t n = strlen(b64);
    if (outsz < sizeof(prefix) - 1 + n + 1)
        return SHOAL_ERR_TOO_LARGE;
    memcpy(out, prefix, sizeof(prefix) - 1);
    memcpy(out + sizeof(prefix) - 1, b64, n + 1);
    return SHOAL_OK;
}

int shoal_key_dup_public(const shoal_key *key, shoal_key **out)
{
    if (!key || !out)
        return SHOAL_ERR_INVALID_ARG;
    return shoal_key_from_blob(key->blob, key->blob_len, out);
}
