/* SSH signatures: ssh-ed25519 (RFC 8709), ecdsa-sha2-* (RFC 5656 3.1.2),
 * rsa-sha2-256 / rsa-sha2-512 (RFC 8332) and, only on request, ssh-rsa
 * (RFC 4253 6.6, SHA-1). A signature blob is string(alg) || string(sig).
 *
 * RSA signature length: RFC 8332 section 3 says the octet string S "has the
 * same length (in octets) as the RSA modulus". We always sign with exactly
 * that length. When verifying we follow OpenSSH (ssh-rsa.c): a longer S is
 * rejected, a shorter one is left-padded with zeros before checking, since
 * some implementations (following RFC 4253's "without lengths or padding"
 * for ssh-rsa) strip leading zero octets. The padding changes nothing about
 * what is verified: S is an integer and the zeros are its leading digits.
 *
 * Verification errors: SHOAL_ERR_SIGNATURE when the signature does not
 * verify, and also when its algorithm is not one the key can use or not
 * the algorithm the caller requires; SHOAL_ERR_BAD_FORMAT (or the reader's
 * TRUNCATED / TRAILING) when the blob or the inner signature is malformed
 * (wrong Ed25519 length, RSA S longer than the modulus, ECDSA r or s not a
 * minimal non-zero mpint no longer than the curve order). */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "keys/key_internal.h"

/* The hash a signature algorithm uses; NULL for ed25519 (PureEdDSA).
 * Returns 0 when alg is not valid for the key. */
static int sigalg_digest(const shoal_key *key, const char *alg, size_t len, const char **digest)
{
    *digest = NULL;
#define IS(s) (len == sizeof(s) - 1 && memcmp(alg, s, len) == 0)
    if (!key || !alg)
        return 0;
    switch (key->type) {
    case SHOAL_KEY_ED25519:
        return IS("ssh-ed25519");
    case SHOAL_KEY_RSA:
        if (IS("rsa-sha2-256"))
            *digest = "SHA256";
        else if (IS("rsa-sha2-512"))
            *digest = "SHA512";
        else if (IS("ssh-rsa"))
            *digest = "SHA1";
        return *digest != NULL;
    default: {
        const shoal_ecinfo *ec = shoal_key_ecinfo(key->type);
        if (!ec || len != strlen(ec->name) || memcmp(alg, ec->name, len) != 0)
            return 0;
        *digest = ec->digest;
        return 1;
    }
    }
#undef IS
}

int shoal_key_sigalg_valid(const shoal_key *key, const char *sigalg, size_t len)
{
    const char *d;
    return sigalg_digest(key, sigalg, len, &d);
}

/* ---- ECDSA: DER (libcrypto) <-> mpint r || mpint s (SSH) ---- */

static int ecdsa_der_to_ssh(const uint8_t *der, size_t der_len, shoal_buf *out)
{
    uint8_t mag[66];
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!es)
        return SHOAL_ERR_CRYPTO;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    int rc = SHOAL_ERR_CRYPTO;
    size_t mark;
    if (BN_num_bytes(r) <= (int)sizeof(mag) && BN_num_bytes(s) <= (int)sizeof(mag)) {
        rc = shoal_buf_begin_string(out, &mark);
        if (!rc)
            rc = shoal_buf_put_mpint(out, mag, (size_t)BN_bn2bin(r, mag));
        if (!rc)
            rc = shoal_buf_put_mpint(out, mag, (size_t)BN_bn2bin(s, mag));
        if (!rc)
            shoal_buf_end_string(out, mark);
    }
    ECDSA_SIG_free(es);
    return rc;
}

/* Parses string(mpint r || mpint s) contents into DER; *der is malloc'd. */
static int ecdsa_ssh_to_der(const shoal_ecinfo *ec, const uint8_t *sig, size_t sig_len, uint8_t **der, size_t *der_len)
{
    shoal_rd r;
    const uint8_t *rm, *sm;
    size_t rn, sn;
    *der = NULL;
    *der_len = 0;
    shoal_rd_init(&r, sig, sig_len);
    int rc = shoal_rd_mpint(&r, &rm, &rn);
    if (!rc)
        rc = shoal_rd_mpint(&r, &sm, &sn);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (rc)
        return rc == SHOAL_ERR_TRUNCATED || rc == SHOAL_ERR_TRAILING ? rc : SHOAL_ERR_BAD_FORMAT;
    /* r and s are in [1, n-1]: never zero, never longer than the order. */
    if (rn == 0 || sn == 0 || rn > ec->field_len || sn > ec->field_len)
        return SHOAL_ERR_BAD_FORMAT;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(rm, (int)rn, NULL), *bs = BN_bin2bn(sm, (int)sn, NULL);
    if (!es || !br || !bs || ECDSA_SIG_set0(es, br, bs) != 1) {
        ECDSA_SIG_free(es);
        BN_free(br);
        BN_free(bs);
        return SHOAL_ERR_NOMEM;
    }
    unsigned char *d = NULL;
    int n = i2d_ECDSA_SIG(es, &d);
    ECDSA_SIG_free(es); /* frees br and bs */
    if (n <= 0)
        return SHOAL_ERR_CRYPTO;
    *der = d;
    *der_len = (size_t)n;
    return SHOAL_OK;
}

/* ---- sign ---- */

/* The template slot for digest (NULL: Ed25519), or -1. */
static int sign_slot(const char *digest)
{
    static const char *const names[SHOAL_KEY_SIGN_DIGESTS] = {"", "SHA1", "SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < SHOAL_KEY_SIGN_DIGESTS; i++)
        if (strcmp(digest ? digest : "", names[i]) == 0)
            return i;
    return -1;
}

/* Sets md up to sign with key and digest; 1 on success, as libcrypto does.
 * An init costs OpenSSL 3.0 a walk over its whole name map plus fetches,
 * ~16 us when its tables are cold in the cache (as they are between the
 * connections of a fan-out), against ~2 us to copy an initialised context;
 * so the key keeps one initialised context per digest and md gets a copy.
 * A signing context holds no state between one-shot signatures. */
static int sign_init(const shoal_key *key, const char *digest, EVP_MD_CTX *md)
{
    shoal_key *k = (shoal_key *)key; /* the templates are a cache, not the key's value */
    int slot = sign_slot(digest), ok = 0;
    if (slot < 0)
        return EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, key->pkey, NULL);
    pthread_mutex_lock(&k->sign_mu);
    if (!k->sign_tmpl[slot]) {
        EVP_MD_CTX *t = EVP_MD_CTX_new();
        if (t && EVP_DigestSignInit_ex(t, NULL, digest, NULL, NULL, key->pkey, NULL) == 1)
            k->sign_tmpl[slot] = t;
        else
            EVP_MD_CTX_free(t);
    }
    if (k->sign_tmpl[slot])
        ok = EVP_MD_CTX_copy_ex(md, k->sign_tmpl[slot]);
    pthread_mutex_unlock(&k->sign_mu);
    if (ok != 1) { /* no template, or one that does not copy: a context of its own */
        EVP_MD_CTX_reset(md);
        ok = EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, key->pkey, NULL);
    }
    return ok;
}

int shoal_key_sign(const shoal_key *key, const char *sigalg, const uint8_t *data, size_t data_len, shoal_buf *out)
{
    static const uint8_t empty[1] = {0};
    const char *digest;
    if (!key || !out || (!data && data_len))
        return SHOAL_ERR_INVALID_ARG;
    if (!key->has_private)
        return SHOAL_ERR_INVALID_ARG;
    if (!data)
        data = empty;
    if (!sigalg)
        sigalg = key->type == SHOAL_KEY_RSA ? "rsa-sha2-512" : shoal_keytype_name(key->type);
    if (!sigalg_digest(key, sigalg, strlen(sigalg), &digest))
        return SHOAL_ERR_UNSUPPORTED;

    int rc = SHOAL_ERR_CRYPTO;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    size_t start = shoal_buf_len(out);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) {
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    if (sign_init(key, digest, md) != 1 || EVP_DigestSign(md, NULL, &sig_len, data, data_len) != 1)
        goto out;
    if (!(sig = malloc(sig_len ? sig_len : 1))) {
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestSign(md, sig, &sig_len, data, data_len) != 1)
        goto out;
    rc = shoal_buf_put_cstring(out, sigalg);
    if (rc)
        goto out;
    if (key->type == SHOAL_KEY_ED25519 || key->type == SHOAL_KEY_RSA) {
        /* Ed25519: 64 bytes R || S. RSA: libcrypto pads S to the modulus length. */
        if ((key->type == SHOAL_KEY_ED25519 && sig_len != 64) ||
            (key->type == SHOAL_KEY_RSA && sig_len != (size_t)EVP_PKEY_get_size(key->pkey))) {
            rc = SHOAL_ERR_CRYPTO;
            goto out;
        }
        rc = shoal_buf_put_string(out, sig, sig_len);
    } else {
        rc = ecdsa_der_to_ssh(sig, sig_len, out);
    }
out:
    if (rc)
        shoal_buf_truncate(out, start);
    free(sig);
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rc;
}

/* ---- verify ---- */

static int evp_verify(const shoal_key *key, const char *digest, const uint8_t *sig, size_t sig_len,
                      const uint8_t *data, size_t data_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return SHOAL_ERR_NOMEM;
    int rc = SHOAL_ERR_SIGNATURE;
    if (EVP_DigestVerifyInit_ex(md, NULL, digest, NULL, NULL, key->pkey, NULL) != 1)
        rc = SHOAL_ERR_CRYPTO;
    else if (EVP_DigestVerify(md, sig, sig_len, data, data_len) == 1)
        rc = SHOAL_OK;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rc;
}

int shoal_key_verify(const shoal_key *key, const char *sigalg, const uint8_t *sig, size_t sig_len,
                     const uint8_t *data, size_t data_len)
{
    static const uint8_t empty[1] = {0};
    shoal_rd r;
    const char *alg;
    const uint8_t *s;
    size_t alen, slen;
    const char *digest;
    if (!key || (!sig && sig_len) || (!data && data_len))
        return SHOAL_ERR_INVALID_ARG;
    if (!data)
        data = empty;
    shoal_rd_init(&r, sig, sig_len);
    int rc = shoal_rd_cstring(&r, &alg, &alen);
    if (!rc)
        rc = shoal_rd_string(&r, &s, &slen);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (rc)
        return rc;
    /* The algorithm named in the blob must suit the key, and be the one
     * negotiated when the caller says which; legacy ssh-rsa only then. */
    if (!sigalg_digest(key, alg, alen, &digest))
        return SHOAL_ERR_SIGNATURE;
    if (sigalg) {
        if (strlen(sigalg) != alen || memcmp(sigalg, alg, alen) != 0)
            return SHOAL_ERR_SIGNATURE;
    } else if (alen == 7 && memcmp(alg, "ssh-rsa", 7) == 0) {
        return SHOAL_ERR_SIGNATURE;
    }

    if (key->type == SHOAL_KEY_ED25519) {
        if (slen != 64)
            return SHOAL_ERR_BAD_FORMAT;
        return evp_verify(key, NULL, s, slen, data, data_len);
    }
    if (key->type == SHOAL_KEY_RSA) {
        size_t modlen = (size_t)EVP_PKEY_get_size(key->pkey);
        if (slen == 0 || slen > modlen)
            return SHOAL_ERR_BAD_FORMAT;
        if (slen == modlen)
            return evp_verify(key, digest, s, slen, data, data_len);
        uint8_t *padded = calloc(1, modlen); /* shorter S: left-pad (see top) */
        if (!padded)
            return SHOAL_ERR_NOMEM;
        memcpy(padded + (modlen - slen), s, slen);
        rc = evp_verify(key, digest, padded, modlen, data, data_len);
        free(padded);
        return rc;
    }
    const shoal_ecinfo *ec = shoal_key_ecinfo(key->type);
    uint8_t *der;
    size_t der_len;
    if (!ec)
        return SHOAL_ERR_UNSUPPORTED;
    if ((rc = ecdsa_ssh_to_der(ec, s, slen, &der, &der_len)) != SHOAL_OK)
        return rc;
    rc = evp_verify(key, digest, der, der_len, data, data_len);
    OPENSSL_free(der);
    return rc;
}
