/* openssh-key-v1 private key files (OpenSSH PROTOCOL.key):
 *
 *   "-----BEGIN OPENSSH PRIVATE KEY-----", base64, "-----END ...-----"
 *   byte[15] "openssh-key-v1\0"
 *   string ciphername, string kdfname, string kdfoptions
 *   uint32 N (we accept only 1), string publickey
 *   string encrypted section [, AEAD tag of the cipher's tag length]
 *
 * kdf "bcrypt": kdfoptions = string salt || uint32 rounds; the KDF gives
 * the cipher's key || IV. The decrypted section is
 *   uint32 checkint, uint32 checkint (equal unless the passphrase is wrong)
 *   string keytype, <private key fields of that type>, string comment
 *   byte 1, 2, 3, ... padding up to the cipher's block size.
 * Private fields: ed25519 string pk, string sk (seed || pk);
 * ecdsa string curve, string Q, mpint d; rsa mpint n, e, d, iqmp, p, q.
 *
 * Besides the armored text we accept the raw binary (starting with the
 * magic): it costs nothing and lets the fuzzer reach the parser directly. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "keys/bcrypt_pbkdf.h"
#include "keys/key_internal.h"
#include "keys/keyfile_cipher.h"

#define MARK_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----"
#define MARK_END "-----END OPENSSH PRIVATE KEY-----"
static const char auth_magic[] = "openssh-key-v1"; /* sizeof includes the NUL */

/* Bounds the CPU a hostile file can make the KDF burn (see bcrypt_pbkdf.h). */
static unsigned max_rounds = SHOAL_BCRYPT_MAX_ROUNDS;

void shoal_keyfile_openssh_set_max_rounds(unsigned rounds)
{
    max_rounds = rounds < SHOAL_BCRYPT_MAX_ROUNDS ? rounds : SHOAL_BCRYPT_MAX_ROUNDS;
}

typedef struct ossh_file {
    const shoal_keyfile_cipher *cipher;
    int kdf_bcrypt;
    const uint8_t *salt;
    size_t salt_len;
    uint32_t rounds;
    const uint8_t *pub;
    size_t pub_len;
    const uint8_t *enc;
    size_t enc_len;
    const uint8_t *tag;
} ossh_file;

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Turns the file into the binary container in bin. SHOAL_ERR_NOT_FOUND
 * when this is not an OpenSSH key at all. */
static int ossh_dearmor(const uint8_t *data, size_t len, shoal_buf *bin)
{
    const uint8_t *begin = memmem(data, len, MARK_BEGIN, strlen(MARK_BEGIN));
    if (!begin) {
        if (len >= sizeof(auth_magic) && memcmp(data, auth_magic, sizeof(auth_magic)) == 0)
            return shoal_buf_put(bin, data, len);
        return SHOAL_ERR_NOT_FOUND;
    }
    if (begin != data && begin[-1] != '\n')
        return SHOAL_ERR_BAD_FORMAT;
    const uint8_t *body = begin + strlen(MARK_BEGIN);
    size_t rest = len - (size_t)(body - data);
    const uint8_t *end = memmem(body, rest, MARK_END, strlen(MARK_END));
    if (!end || end == body || end[-1] != '\n')
        return SHOAL_ERR_BAD_FORMAT;
    size_t blen = (size_t)(end - body), n = 0;
    char *b64 = malloc(blen);
    if (!b64)
        return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < blen; i++)
        if (!is_space(body[i]))
            b64[n++] = (char)body[i];
    int rc = n ? shoal_base64_decode(b64, n, bin) : SHOAL_ERR_BAD_FORMAT;
    shoal_wipe(b64, blen); /* an unencrypted key is in there */
    free(b64);
    return rc;
}

/* Parses the outer container (nothing secret in it). */
static int ossh_parse(const uint8_t *p, size_t len, ossh_file *f)
{
    shoal_rd r, opts;
    const char *cname, *kname;
    size_t clen, klen;
    uint32_t nkeys;
    const uint8_t *magic;
    int rc;
    memset(f, 0, sizeof(*f));
    shoal_rd_init(&r, p, len);
    if ((rc = shoal_rd_bytes(&r, sizeof(auth_magic), &magic)) != SHOAL_OK)
        return rc;
    if (memcmp(magic, auth_magic, sizeof(auth_magic)) != 0)
        return SHOAL_ERR_BAD_FORMAT;
    if ((rc = shoal_rd_cstring(&r, &cname, &clen)) != SHOAL_OK || (rc = shoal_rd_cstring(&r, &kname, &klen)) ||
        (rc = shoal_rd_sub(&r, &opts)) != SHOAL_OK || (rc = shoal_rd_u32(&r, &nkeys)) != SHOAL_OK)
        return rc;
    if (!(f->cipher = shoal_keyfile_cipher_find(cname, clen)))
        return SHOAL_ERR_UNSUPPORTED;
    if (klen == 6 && memcmp(kname, "bcrypt", 6) == 0) {
        f->kdf_bcrypt = 1;
        if ((rc = shoal_rd_string(&opts, &f->salt, &f->salt_len)) != SHOAL_OK ||
            (rc = shoal_rd_u32(&opts, &f->rounds)) != SHOAL_OK || (rc = shoal_rd_end(&opts)) != SHOAL_OK)
            return rc;
    } else if (klen == 4 && memcmp(kname, "none", 4) == 0) {
        if (shoal_rd_left(&opts))
            return SHOAL_ERR_BAD_FORMAT;
    } else {
        return SHOAL_ERR_UNSUPPORTED;
    }
    /* Encryption and KDF go together: none/none or cipher/bcrypt. */
    if ((f->cipher->key_len == 0) == f->kdf_bcrypt)
        return SHOAL_ERR_BAD_FORMAT;
    if (nkeys != 1)
        return SHOAL_ERR_UNSUPPORTED; /* and no loop a file could make long */
    if ((rc = shoal_rd_string(&r, &f->pub, &f->pub_len)) != SHOAL_OK ||
        (rc = shoal_rd_string(&r, &f->enc, &f->enc_len)) != SHOAL_OK ||
        (rc = shoal_rd_bytes(&r, f->cipher->tag_len, &f->tag)) != SHOAL_OK)
        return rc;
    if (f->enc_len < f->cipher->block_len || f->enc_len % f->cipher->block_len != 0)
        return SHOAL_ERR_BAD_FORMAT;
    return shoal_rd_end(&r);
}

/* ---- private sections ---- */

static int ed25519_private(shoal_rd *r, EVP_PKEY **out)
{
    const uint8_t *pk, *sk;
    size_t pklen, sklen;
    uint8_t derived[32];
    size_t dlen = sizeof(derived);
    int rc;
    if ((rc = shoal_rd_string(r, &pk, &pklen)) != SHOAL_OK || (rc = shoal_rd_string(r, &sk, &sklen)) != SHOAL_OK)
        return rc;
    /* sk is the 32-byte seed followed by the public key. */
    if (pklen != 32 || sklen != 64 || memcmp(sk + 32, pk, 32) != 0)
        return SHOAL_ERR_BAD_FORMAT;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
    if (!pkey || EVP_PKEY_get_raw_public_key(pkey, derived, &dlen) != 1 || dlen != 32 ||
        memcmp(derived, pk, 32) != 0) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return SHOAL_ERR_BAD_FORMAT;
    }
    *out = pkey;
    return SHOAL_OK;
}

static int fromdata_keypair(const char *alg, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    int rc = SHOAL_ERR_NOMEM;
    if (params && ctx) {
        rc = SHOAL_ERR_BAD_FORMAT;
        if (EVP_PKEY_fromdata_init(ctx) == 1 && EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) == 1)
            rc = SHOAL_OK;
    }
    OSSL_PARAM_free(params); /* secure BNs went to a section cleared on free */
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int ecdsa_private(const shoal_ecinfo *ec, shoal_rd *r, EVP_PKEY **out)
{
    const char *curve;
    const uint8_t *q, *d;
    size_t clen, qlen, dlen;
    int rc;
    if ((rc = shoal_rd_cstring(r, &curve, &clen)) != SHOAL_OK || (rc = shoal_rd_string(r, &q, &qlen)) != SHOAL_OK ||
        (rc = shoal_rd_mpint_max(r, ec->field_len, &d, &dlen)) != SHOAL_OK)
        return rc;
    if (clen != strlen(ec->curve) || memcmp(curve, ec->curve, clen) != 0 || qlen != 1 + 2 * ec->field_len ||
        q[0] != 0x04 || dlen == 0)
        return SHOAL_ERR_BAD_FORMAT;
    BIGNUM *bd = BN_secure_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    rc = SHOAL_ERR_NOMEM;
    if (bd && bld && BN_bin2bn(d, (int)dlen, bd) &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ec->group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd))
        rc = fromdata_keypair("EC", bld, out);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bd);
    if (!rc) {
        /* d in [1, n-1] and Q == d*G. */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
        if (!ctx || EVP_PKEY_pairwise_check(ctx) != 1) {
            EVP_PKEY_free(*out);
            *out = NULL;
            rc = SHOAL_ERR_BAD_FORMAT;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    ERR_clear_error();
    return rc;
}

/* RSA: n, e, d, iqmp, p, q. libcrypto wants the CRT exponents too. */
static int rsa_private(shoal_rd *r, EVP_PKEY **out)
{
    enum { N, E, D, IQMP, P, Q, DMP1, DMQ1, COUNT };
    static const char *const names[COUNT] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,         OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
        OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
    };
    BIGNUM *bn[COUNT] = {0};
    BN_CTX *bctx = BN_CTX_secure_new();
    BIGNUM *t = BN_secure_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    int rc = SHOAL_ERR_NOMEM;
    if (!bctx || !t || !bld)
        goto out;
    for (int i = 0; i <= Q; i++) {
        const uint8_t *m;
        size_t n;
        if ((rc = shoal_rd_mpint_max(r, SHOAL_RSA_MAX_BYTES, &m, &n)) != SHOAL_OK)
            goto out;
        rc = SHOAL_ERR_NOMEM;
        if (!(bn[i] = BN_secure_new()) || !BN_bin2bn(m, (int)n, bn[i]))
            goto out;
    }
    rc = SHOAL_ERR_BAD_FORMAT;
    /* p, q > 1 and p*q == n; iqmp*q == 1 (mod p). */
    if (BN_cmp(bn[P], BN_value_one()) <= 0 || BN_cmp(bn[Q], BN_value_one()) <= 0 || BN_is_zero(bn[D]) ||
        !BN_mul(t, bn[P], bn[Q], bctx) || BN_cmp(t, bn[N]) != 0 || !BN_mod_mul(t, bn[IQMP], bn[Q], bn[P], bctx) ||
        !BN_is_one(t))
        goto out;
    rc = SHOAL_ERR_NOMEM;
    if (!(bn[DMP1] = BN_secure_new()) || !(bn[DMQ1] = BN_secure_new()) || !BN_sub(t, bn[P], BN_value_one()) ||
        !BN_mod(bn[DMP1], bn[D], t, bctx) || !BN_sub(t, bn[Q], BN_value_one()) || !BN_mod(bn[DMQ1], bn[D], t, bctx))
        goto out;
    for (int i = 0; i < COUNT; i++)
        if (!OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]))
            goto out;
    rc = fromdata_keypair("RSA", bld, out);
out:
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < COUNT; i++)
        BN_clear_free(bn[i]);
    BN_clear_free(t);
    BN_CTX_free(bctx);
    ERR_clear_error();
    return rc;
}

/* Parses the decrypted section into a key; checks checkints and padding. */
static int ossh_private(const ossh_file *f, const uint8_t *p, size_t len, shoal_key **out)
{
    shoal_rd r;
    uint32_t c1, c2;
    const char *tname;
    const uint8_t *comment;
    size_t tlen, clen;
    EVP_PKEY *pkey = NULL;
    int rc;
    shoal_rd_init(&r, p, len);
    if ((rc = shoal_rd_u32(&r, &c1)) != SHOAL_OK || (rc = shoal_rd_u32(&r, &c2)) != SHOAL_OK)
        return rc;
    if (c1 != c2) /* a wrong key decrypts to noise */
        return f->kdf_bcrypt ? SHOAL_ERR_BAD_PASSPHRASE : SHOAL_ERR_BAD_FORMAT;
    if ((rc = shoal_rd_cstring(&r, &tname, &tlen)) != SHOAL_OK)
        return rc;
    shoal_keytype type = shoal_keytype_from_name(tname, tlen);
    const shoal_ecinfo *ec = shoal_key_ecinfo(type);
    if (type == SHOAL_KEY_ED25519)
        rc = ed25519_private(&r, &pkey);
    else if (type == SHOAL_KEY_RSA)
        rc = rsa_private(&r, &pkey);
    else if (ec)
        rc = ecdsa_private(ec, &r, &pkey);
    else
        rc = SHOAL_ERR_UNSUPPORTED;
    if (!rc)
        rc = shoal_rd_string(&r, &comment, &clen);
    /* Padding: 1, 2, 3, ... (OpenSSH checks the values, not the count). */
    for (uint32_t i = 1; !rc && shoal_rd_left(&r); i++) {
        uint8_t b;
        if ((rc = shoal_rd_u8(&r, &b)) == SHOAL_OK && b != (uint8_t)i)
            rc = SHOAL_ERR_BAD_FORMAT;
    }
    shoal_key *k = NULL;
    if (!rc) {
        rc = shoal_key_from_pkey(pkey, type, 1, &k); /* takes pkey */
        pkey = NULL;
    }
    /* The private key must be the one the header's public key names. */
    if (!rc && (k->blob_len != f->pub_len || memcmp(k->blob, f->pub, f->pub_len) != 0)) {
        shoal_key_free(k);
        rc = SHOAL_ERR_BAD_FORMAT;
    }
    EVP_PKEY_free(pkey);
    if (!rc)
        *out = k;
    return rc;
}

static int ossh_decrypt(const ossh_file *f, const char *passphrase, uint8_t *plain)
{
    uint8_t keyiv[KEYFILE_MAX_KEYIV];
    size_t klen = f->cipher->key_len + f->cipher->iv_len;
    int rc;
    if (!f->kdf_bcrypt)
        return shoal_keyfile_cipher_decrypt(f->cipher, NULL, f->enc, f->enc_len, f->tag, plain);
    if (!passphrase)
        return SHOAL_ERR_KEY_ENCRYPTED;
    if (f->rounds == 0 || f->salt_len == 0)
        return SHOAL_ERR_BAD_FORMAT;
    if (f->rounds > max_rounds || f->salt_len > SHOAL_BCRYPT_MAX_SALT)
        return SHOAL_ERR_TOO_LARGE;
    if (!*passphrase) /* bcrypt_pbkdf is undefined for an empty password */
        return SHOAL_ERR_BAD_PASSPHRASE;
    if (klen > sizeof(keyiv))
        return SHOAL_ERR_UNSUPPORTED;
    rc = shoal_bcrypt_pbkdf(passphrase, strlen(passphrase), f->salt, f->salt_len, f->rounds, keyiv, klen);
    if (!rc)
        rc = shoal_keyfile_cipher_decrypt(f->cipher, keyiv, f->enc, f->enc_len, f->tag, plain);
    shoal_wipe(keyiv, sizeof(keyiv));
    return rc;
}

int shoal_keyfile_openssh_load(const uint8_t *data, size_t len, const char *passphrase, shoal_key **out)
{
    shoal_buf bin, plain;
    ossh_file f;
    uint8_t *dst;
    shoal_buf_init(&bin, SHOAL_KEYFILE_MAX);
    shoal_buf_init(&plain, SHOAL_KEYFILE_MAX);
    int rc = ossh_dearmor(data, len, &bin);
    if (!rc)
        rc = ossh_parse(shoal_buf_ptr(&bin), shoal_buf_len(&bin), &f);
    if (!rc)
        rc = shoal_buf_reserve(&plain, f.enc_len, &dst);
    if (!rc)
        rc = ossh_decrypt(&f, passphrase, dst);
    if (!rc)
        rc = ossh_private(&f, dst, f.enc_len, out);
    shoal_buf_free(&plain); /* both wipe: the decrypted key is in there */
    shoal_buf_free(&bin);
    return rc;
}

int shoal_keyfile_openssh_is_encrypted(const uint8_t *data, size_t len)
{
    /* Only the magic and the cipher name matter: a file whose cipher we
     * cannot open (3des-cbc, ...) is still an encrypted key file. */
    shoal_buf bin;
    shoal_rd r;
    const uint8_t *magic;
    const char *cname;
    size_t clen;
    shoal_buf_init(&bin, SHOAL_KEYFILE_MAX);
    int rc = ossh_dearmor(data, len, &bin);
    if (!rc) {
        shoal_rd_init(&r, shoal_buf_ptr(&bin), shoal_buf_len(&bin));
        rc = shoal_rd_bytes(&r, sizeof(auth_magic), &magic);
        if (!rc && memcmp(magic, auth_magic, sizeof(auth_magic)) != 0)
            rc = SHOAL_ERR_BAD_FORMAT;
        if (!rc)
            rc = shoal_rd_cstring(&r, &cname, &clen);
        if (!rc)
            rc = clen == 4 && memcmp(cname, "none", 4) == 0 ? 0 : 1;
    }
    shoal_buf_free(&bin);
    return rc;
}
