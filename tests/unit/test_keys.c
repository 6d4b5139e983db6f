/* SSH keys: blobs, public text, fingerprints, signatures, private key
 * files. Keys are generated at test time with ssh-keygen in a temporary
 * directory (none are committed). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "keys/key.h"
#include "wire/buf.h"

#define PASS "correct horse"

typedef struct kcase {
    const char *file;    /* base name in the temp dir */
    const char *keygen;  /* ssh-keygen -t/-b arguments */
    shoal_keytype type;
    unsigned bits;
} kcase;

static const kcase cases[] = {
    {"ed25519", "-t ed25519", SHOAL_KEY_ED25519, 256},
    {"ecdsa256", "-t ecdsa -b 256", SHOAL_KEY_ECDSA_P256, 256},
    {"ecdsa384", "-t ecdsa -b 384", SHOAL_KEY_ECDSA_P384, 384},
    {"ecdsa521", "-t ecdsa -b 521", SHOAL_KEY_ECDSA_P521, 521},
    {"rsa2048", "-t rsa -b 2048", SHOAL_KEY_RSA, 2048},
    {"rsa3072", "-t rsa -b 3072", SHOAL_KEY_RSA, 3072},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* File variants made from each base key with ssh-keygen -p. */
typedef struct variant {
    const char *suffix;
    const char *format; /* ssh-keygen -m */
    int encrypted;
} variant;

static const variant variants[] = {
    {"openssh", "RFC4716", 0}, {"openssh.enc", "RFC4716", 1}, {"pem", "PEM", 0},
    {"pem.enc", "PEM", 1},     {"pkcs8", "PKCS8", 0},         {"pkcs8.enc", "PKCS8", 1},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

static const char *const openssh_ciphers[] = {
    "aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes192-cbc", "aes256-cbc",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
};

static char *dir;

static char *path_of(const char *name, const char *suffix)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s%s%s", dir, name, suffix ? "." : "", suffix ? suffix : "");
    return p;
}

static uint8_t *read_or_fail(const char *path, size_t *len)
{
    uint8_t *b = tu_read_file(path, len);
    if (!b)
        fail_msg("cannot read %s", path);
    return b;
}

static int setup(void **st)
{
    (void)st;
    if (!tu_have("ssh-keygen"))
        return -1;
    dir = tu_mkdtemp();
    for (size_t i = 0; i < NCASES; i++) {
        char base[1024];
        snprintf(base, sizeof(base), "%s", path_of(cases[i].file, NULL));
        if (tu_system("ssh-keygen -q %s -N '' -C test -f '%s' </dev/null >/dev/null", cases[i].keygen, base) != 0)
            return -1;
        if (tu_system("ssh-keygen -l -f '%s.pub' > '%s.fp'", base, base) != 0)
            return -1;
        for (size_t v = 0; v < NVARIANTS; v++) {
            const char *file = path_of(cases[i].file, variants[v].suffix);
            if (tu_system("cp '%s' '%s' && ssh-keygen -p -P '' -N '%s' -m %s -f '%s' >/dev/null 2>&1", base, file,
                          variants[v].encrypted ? PASS : "", variants[v].format, file) != 0)
                return -1;
        }
    }
    /* The ed25519 key once per openssh-key-v1 cipher, and with 2 KDF rounds. */
    for (size_t c = 0; c < sizeof(openssh_ciphers) / sizeof(openssh_ciphers[0]); c++) {
        const char *file = path_of("ed25519", openssh_ciphers[c]);
        if (tu_system("cp '%s' '%s' && ssh-keygen -p -P '' -N '%s' -Z %s -f '%s' >/dev/null 2>&1",
                      path_of("ed25519", NULL), file, PASS, openssh_ciphers[c], file) != 0)
            return -1;
    }
    if (tu_system("cp '%s' '%s' && ssh-keygen -p -P '' -N '%s' -a 2 -f '%s' >/dev/null 2>&1",
                  path_of("ecdsa256", NULL), path_of("ecdsa256", "a2"), PASS, path_of("ecdsa256", "a2")) != 0)
        return -1;
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    tu_rmtree(dir);
    free(dir);
    return 0;
}

static shoal_key *load_pub(const kcase *kc)
{
    size_t len;
    char *text = (char *)read_or_fail(path_of(kc->file, "pub"), &len);
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_from_public_text(text, len, &k), SHOAL_OK);
    free(text);
    return k;
}

static shoal_key *load_priv(const char *path, const char *pass, int want)
{
    size_t len;
    uint8_t *data = read_or_fail(path, &len);
    shoal_key *k = NULL;
    int rc = shoal_key_load_private(data, len, pass, &k);
    if (rc != want)
        fail_msg("%s with %s: got %s, want %s", path, pass ? pass : "(null)", shoal_errname(rc), shoal_errname(want));
    free(data);
    if (want != SHOAL_OK)
        assert_null(k);
    return k;
}

static void blob_of(const shoal_key *k, shoal_buf *b)
{
    shoal_buf_init(b, 0);
    assert_int_equal(shoal_key_to_blob(k, b), SHOAL_OK);
}

/* ---- signatures ---- */

/* Signs with every algorithm the key offers and checks verification, also
 * its failures: changed message, flipped byte, wrong or legacy algorithm,
 * truncation at every length, a trailing byte. */
static void check_sign_verify(const shoal_key *priv, const shoal_key *pub)
{
    static const char *const rsa_algs[] = {NULL, "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"};
    const char *const *algs = rsa_algs;
    size_t nalgs = 4;
    const char *own[2] = {NULL, shoal_key_type_name(pub)};
    if (shoal_key_type(pub) != SHOAL_KEY_RSA) {
        algs = own;
        nalgs = 2;
    }
    const uint8_t msg[] = "the exchange hash H, or anything else";
    for (size_t a = 0; a < nalgs; a++) {
        shoal_buf sig;
        shoal_buf_init(&sig, 0);
        assert_int_equal(shoal_key_sign(priv, algs[a], msg, sizeof(msg), &sig), SHOAL_OK);
        const uint8_t *s = shoal_buf_ptr(&sig);
        size_t n = shoal_buf_len(&sig);
        const char *name = algs[a] ? algs[a] : (shoal_key_type(pub) == SHOAL_KEY_RSA ? "rsa-sha2-512"
                                                                                      : shoal_key_type_name(pub));
        assert_int_equal(shoal_load_u32(s), strlen(name));
        assert_memory_equal(s + 4, name, strlen(name));
        int legacy = !strcmp(name, "ssh-rsa");

        assert_int_equal(shoal_key_verify(pub, name, s, n, msg, sizeof(msg)), SHOAL_OK);
        assert_int_equal(shoal_key_verify(priv, name, s, n, msg, sizeof(msg)), SHOAL_OK);
        assert_int_equal(shoal_key_verify(pub, NULL, s, n, msg, sizeof(msg)), legacy ? SHOAL_ERR_SIGNATURE : SHOAL_OK);
        assert_int_equal(shoal_key_verify(pub, name, s, n, msg, sizeof(msg) - 1), SHOAL_ERR_SIGNATURE);
        if (shoal_key_type(pub) == SHOAL_KEY_RSA)
            assert_int_equal(shoal_key_verify(pub, strcmp(name, "rsa-sha2-256") ? "rsa-sha2-256" : "rsa-sha2-512", s,
                                              n, msg, sizeof(msg)),
                             SHOAL_ERR_SIGNATURE);
        assert_int_equal(shoal_key_verify(pub, "ssh-ed25519x", s, n, msg, sizeof(msg)), SHOAL_ERR_SIGNATURE);

        uint8_t *c = malloc(n + 1);
        memcpy(c, s, n);
        c[n - 1] ^= 0x01; /* last byte of the signature proper */
        assert_int_equal(shoal_key_verify(pub, name, c, n, msg, sizeof(msg)), SHOAL_ERR_SIGNATURE);
        c[n - 1] ^= 0x01;
        for (size_t i = 0; i < n; i++) { /* any single flipped byte */
            c[i] ^= 0x40;
            assert_int_not_equal(shoal_key_verify(pub, name, c, n, msg, sizeof(msg)), SHOAL_OK);
            c[i] ^= 0x40;
        }
        for (size_t i = 0; i < n; i++)
            assert_int_not_equal(shoal_key_verify(pub, name, c, i, msg, sizeof(msg)), SHOAL_OK);
        c[n] = 0;
        assert_int_equal(shoal_key_verify(pub, name, c, n + 1, msg, sizeof(msg)), SHOAL_ERR_TRAILING);
        free(c);
        shoal_buf_free(&sig);
    }
    shoal_buf sig;
    shoal_buf_init(&sig, 0);
    assert_int_equal(shoal_key_sign(pub, NULL, msg, sizeof(msg), &sig), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_key_sign(priv, "ssh-dss", msg, sizeof(msg), &sig), SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(shoal_buf_len(&sig), 0);
    shoal_buf_free(&sig);
}

/* ---- every key in every file format ---- */

static void check_fingerprint(const kcase *kc, const shoal_key *k)
{
    char fp[64], want[128] = "";
    char *line = (char *)read_or_fail(path_of(kc->file, "fp"), NULL);
    assert_int_equal(sscanf(line, "%*u %127s", want), 1);
    free(line);
    assert_int_equal(shoal_key_fingerprint(k, fp, sizeof(fp)), SHOAL_OK);
    assert_string_equal(fp, want);
    assert_int_equal(shoal_key_fingerprint(k, fp, strlen(want)), SHOAL_ERR_TOO_LARGE);
    assert_int_equal(shoal_key_fingerprint(k, fp, strlen(want) + 1), SHOAL_OK);
}

static void test_all_formats(void **st)
{
    (void)st;
    for (size_t i = 0; i < NCASES; i++) {
        const kcase *kc = &cases[i];
        shoal_key *pub = load_pub(kc);
        assert_int_equal(shoal_key_type(pub), kc->type);
        assert_int_equal(shoal_key_bits(pub), kc->bits);
        assert_false(shoal_key_has_private(pub));
        assert_string_equal(shoal_key_type_name(pub), shoal_keytype_name(kc->type));
        check_fingerprint(kc, pub);
        for (size_t v = 0; v < NVARIANTS; v++) {
            const char *file = path_of(kc->file, variants[v].suffix);
            size_t len;
            uint8_t *data = read_or_fail(file, &len);
            /* ssh-keygen writes ed25519 in openssh-key-v1 whatever -m says. */
            assert_int_equal(shoal_key_file_is_encrypted(data, len), variants[v].encrypted);
            free(data);
            shoal_key *k;
            if (variants[v].encrypted) {
                load_priv(file, NULL, SHOAL_ERR_KEY_ENCRYPTED);
                load_priv(file, "wrong horse", SHOAL_ERR_BAD_PASSPHRASE);
                k = load_priv(file, PASS, SHOAL_OK);
            } else {
                k = load_priv(file, NULL, SHOAL_OK);
                shoal_key_free(load_priv(file, "ignored", SHOAL_OK));
            }
            assert_true(shoal_key_has_private(k));
            assert_int_equal(shoal_key_type(k), kc->type);
            assert_int_equal(shoal_key_bits(k), kc->bits);
            assert_true(shoal_key_equal_public(k, pub));
            check_fingerprint(kc, k);
            if (v == 0 || v == 3) /* signing is format-independent: two formats suffice */
                check_sign_verify(k, pub);
            shoal_key *dup;
            assert_int_equal(shoal_key_dup_public(k, &dup), SHOAL_OK);
            assert_false(shoal_key_has_private(dup));
            assert_true(shoal_key_equal_public(dup, pub));
            shoal_key_free(dup);
            shoal_key_free(k);
        }
        shoal_key_free(pub);
    }
}

static void test_openssh_ciphers(void **st)
{
    (void)st;
    shoal_key *pub = load_pub(&cases[0]);
    for (size_t c = 0; c < sizeof(openssh_ciphers) / sizeof(openssh_ciphers[0]); c++) {
        const char *file = path_of("ed25519", openssh_ciphers[c]);
        load_priv(file, NULL, SHOAL_ERR_KEY_ENCRYPTED);
        load_priv(file, "wrong horse", SHOAL_ERR_BAD_PASSPHRASE);
        load_priv(file, "", SHOAL_ERR_BAD_PASSPHRASE);
        shoal_key *k = load_priv(file, PASS, SHOAL_OK);
        assert_true(shoal_key_equal_public(k, pub));
        shoal_key_free(k);
    }
    shoal_key_free(pub);
    pub = load_pub(&cases[1]);
    shoal_key *k = load_priv(path_of("ecdsa256", "a2"), PASS, SHOAL_OK);
    assert_true(shoal_key_equal_public(k, pub));
    shoal_key_free(k);
    shoal_key_free(pub);

    shoal_key *kf = NULL;
    assert_int_equal(shoal_key_load_private_file(path_of("ed25519", "aes256-ctr"), PASS, &kf), SHOAL_OK);
    assert_non_null(kf);
    shoal_key_free(kf);
    assert_int_equal(shoal_key_load_private_file(path_of("nonexistent", NULL), NULL, &kf), SHOAL_ERR_IO);
    assert_null(kf);
    assert_int_equal(tu_system("head -c 1048577 /dev/zero > '%s'", path_of("big", NULL)), 0);
    assert_int_equal(shoal_key_load_private_file(path_of("big", NULL), NULL, &kf), SHOAL_ERR_TOO_LARGE);

    /* A cipher we do not implement: still reported as encrypted. */
    const char *tdes = path_of("ed25519", "3des");
    if (tu_system("cp '%s' '%s' && ssh-keygen -p -P '' -N '%s' -Z 3des-cbc -f '%s' >/dev/null 2>&1",
                  path_of("ed25519", NULL), tdes, PASS, tdes) == 0) {
        size_t len;
        uint8_t *data = read_or_fail(tdes, &len);
        assert_int_equal(shoal_key_file_is_encrypted(data, len), 1);
        free(data);
        load_priv(tdes, PASS, SHOAL_ERR_UNSUPPORTED);
    }
}

/* Libcrypto's own encoders: ed25519 in PKCS#8, an EC key with a compressed
 * point. ssh-keygen cannot write either. */
static void test_openssl_pem(void **st)
{
    (void)st;
    if (!tu_have("openssl"))
        skip();
    const char *ed = path_of("ossl-ed25519", "pem"), *ede = path_of("ossl-ed25519", "enc");
    const char *ec = path_of("ossl-ec", "pem");
    assert_int_equal(tu_system("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", ed), 0);
    assert_int_equal(tu_system("openssl pkey -in '%s' -aes256 -passout 'pass:%s' -out '%s' 2>/dev/null", ed, PASS, ede),
                     0);
    assert_int_equal(tu_system("openssl ecparam -name secp384r1 -genkey -noout -conv_form compressed 2>/dev/null |"
                               " openssl ec -conv_form compressed -out '%s' 2>/dev/null",
                               ec),
                     0);
    shoal_key *k = load_priv(ed, NULL, SHOAL_OK);
    assert_int_equal(shoal_key_type(k), SHOAL_KEY_ED25519);
    shoal_key *pub;
    assert_int_equal(shoal_key_dup_public(k, &pub), SHOAL_OK);
    check_sign_verify(k, pub);
    shoal_key *k2 = load_priv(ede, PASS, SHOAL_OK);
    assert_true(shoal_key_equal_public(k2, pub));
    load_priv(ede, NULL, SHOAL_ERR_KEY_ENCRYPTED);
    load_priv(ede, "nope", SHOAL_ERR_BAD_PASSPHRASE);
    shoal_key_free(k2);
    shoal_key_free(pub);
    shoal_key_free(k);

    k = load_priv(ec, NULL, SHOAL_OK);
    assert_int_equal(shoal_key_type(k), SHOAL_KEY_ECDSA_P384);
    assert_int_equal(shoal_key_dup_public(k, &pub), SHOAL_OK);
    shoal_buf b;
    blob_of(pub, &b);
    /* string "ecdsa-sha2-nistp384", string "nistp384", string Q: Q is 97 bytes, 0x04 first */
    assert_int_equal(shoal_buf_len(&b), 4 + 19 + 4 + 8 + 4 + 97);
    assert_int_equal(shoal_buf_ptr(&b)[4 + 19 + 4 + 8 + 4], 0x04);
    shoal_buf_free(&b);
    check_sign_verify(k, pub);
    shoal_key_free(pub);
    shoal_key_free(k);
}

/* ---- malformed public blobs and text ---- */

static void expect_blob(const uint8_t *p, size_t n, int want)
{
    shoal_key *k = (shoal_key *)(uintptr_t)1;
    int rc = shoal_key_from_blob(p, n, &k);
    if (rc != want)
        fail_msg("blob of %zu bytes: got %s, want %s", n, shoal_errname(rc), shoal_errname(want));
    if (rc == SHOAL_OK)
        shoal_key_free(k);
    else
        assert_null(k);
}

static void test_blob_truncated_trailing(void **st)
{
    (void)st;
    for (size_t i = 0; i < NCASES; i++) {
        shoal_key *pub = load_pub(&cases[i]);
        shoal_buf b;
        blob_of(pub, &b);
        size_t n = shoal_buf_len(&b);
        uint8_t *c = malloc(n + 1);
        memcpy(c, shoal_buf_ptr(&b), n);
        expect_blob(c, n, SHOAL_OK);
        for (size_t l = 0; l < n; l++) {
            shoal_key *k = NULL;
            assert_int_not_equal(shoal_key_from_blob(c, l, &k), SHOAL_OK);
            assert_null(k);
        }
        c[n] = 0;
        expect_blob(c, n + 1, SHOAL_ERR_TRAILING);
        for (size_t l = 0; l < n; l++) { /* single flipped bytes never crash */
            shoal_key *k = NULL;
            c[l] ^= 0x21;
            if (shoal_key_from_blob(c, n, &k) == SHOAL_OK)
                shoal_key_free(k);
            c[l] ^= 0x21;
        }
        free(c);
        shoal_buf_free(&b);
        shoal_key_free(pub);
    }
}

/* Builds blobs from pieces to hit each semantic check. */
static void test_blob_semantics(void **st)
{
    (void)st;
    shoal_key *ec = load_pub(&cases[1]), *rsa = load_pub(&cases[4]);
    shoal_buf b, x;
    shoal_rd r;
    const uint8_t *q, *e, *n;
    size_t qlen, elen, nlen;

    /* ECDSA: curve name must match the type; the point must be on the curve
     * and uncompressed. */
    blob_of(ec, &b);
    shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
    assert_int_equal(shoal_rd_skip(&r, 4 + 19 + 4 + 8), 0);
    assert_int_equal(shoal_rd_string(&r, &q, &qlen), 0);
    assert_int_equal(qlen, 65);
    uint8_t pt[65];
    memcpy(pt, q, 65);
    shoal_buf_init(&x, 0);
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_put_cstring(&x, "nistp384");
    shoal_buf_put_string(&x, pt, 65);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&x);
    pt[64] ^= 1; /* y off by one: not on the curve */
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_put_cstring(&x, "nistp256");
    shoal_buf_put_string(&x, pt, 65);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&x);
    pt[64] ^= 1;
    pt[0] = 0x02 | (pt[64] & 1); /* compressed form of the same point */
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_put_cstring(&x, "nistp256");
    shoal_buf_put_string(&x, pt, 33);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256"); /* point at infinity */
    shoal_buf_put_cstring(&x, "nistp256");
    shoal_buf_put_string(&x, "\0", 1);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ssh-dss");
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_UNSUPPORTED);
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ssh-ed25519");
    shoal_buf_put_string(&x, pt, 31);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_free(&b);

    /* RSA: e odd and >= 3, modulus within bounds, minimal mpints. */
    blob_of(rsa, &b);
    shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
    assert_int_equal(shoal_rd_skip(&r, 4 + 7), 0);
    assert_int_equal(shoal_rd_mpint(&r, &e, &elen), 0);
    assert_int_equal(shoal_rd_string(&r, &n, &nlen), 0); /* raw, with its 0x00 */
    static const uint8_t e_even[] = {0x01, 0x00, 0x00}, e_one[] = {0x01}, e_ok[] = {0x01, 0x00, 0x01};
    const struct {
        const uint8_t *e;
        size_t elen;
        size_t nlen;
        int want;
    } rs[] = {
        {e_ok, 3, nlen, SHOAL_OK},
        {e_even, 3, nlen, SHOAL_ERR_BAD_FORMAT},
        {e_one, 1, nlen, SHOAL_ERR_BAD_FORMAT},
        {e_ok, 3, 1 + 96, SHOAL_ERR_UNSUPPORTED}, /* 768 bits (n's top 96 bytes, odd) */
    };
    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        uint8_t *nn = malloc(rs[i].nlen);
        memcpy(nn, n, rs[i].nlen);
        nn[rs[i].nlen - 1] |= 1;
        shoal_buf_reset(&x);
        shoal_buf_put_cstring(&x, "ssh-rsa");
        shoal_buf_put_mpint(&x, rs[i].e, rs[i].elen);
        shoal_buf_put_string(&x, nn, rs[i].nlen);
        expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), rs[i].want);
        free(nn);
    }
    shoal_buf_reset(&x); /* non-minimal e */
    shoal_buf_put_cstring(&x, "ssh-rsa");
    shoal_buf_put_string(&x, "\0\x01\0\x01", 4);
    shoal_buf_put_string(&x, n, nlen);
    expect_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&x); /* 16385-bit modulus */
    shoal_buf_put_cstring(&x, "ssh-rsa");
    shoal_buf_put_mpint(&x, e_ok, 3);
    uint8_t big[2049];
    memset(big, 0xff, sizeof(big));
    big[0] = 1;
    shoal_buf_put_string(&x, big, sizeof(big));
    assert_int_not_equal(shoal_key_from_blob(shoal_buf_ptr(&x), shoal_buf_len(&x), &(shoal_key *){NULL}), SHOAL_OK);
    uint8_t huge[SHOAL_KEY_MAX_BLOB + 1] = {0};
    expect_blob(huge, sizeof(huge), SHOAL_ERR_TOO_LARGE);
    shoal_buf_free(&x);
    shoal_buf_free(&b);
    shoal_key_free(ec);
    shoal_key_free(rsa);
}

static void expect_text(const char *text, int want)
{
    shoal_key *k = NULL;
    int rc = shoal_key_from_public_text(text, strlen(text), &k);
    if (rc != want)
        fail_msg("\"%.60s\": got %s, want %s", text, shoal_errname(rc), shoal_errname(want));
    shoal_key_free(k);
}

static void test_public_text(void **st)
{
    (void)st;
    size_t len;
    char *ed = (char *)read_or_fail(path_of("ed25519", "pub"), &len);
    char *ec = (char *)read_or_fail(path_of("ecdsa256", "pub"), NULL);
    char line[4096];
    expect_text(ed, SHOAL_OK);
    char *b64 = strchr(ed, ' ') + 1;
    *strchr(b64, ' ') = 0;
    snprintf(line, sizeof(line), "ssh-ed25519 %s", b64); /* no comment, no newline */
    expect_text(line, SHOAL_OK);
    snprintf(line, sizeof(line), "  ssh-ed25519\t%s  a comment with spaces\r\n", b64);
    expect_text(line, SHOAL_OK);
    snprintf(line, sizeof(line), "ssh-ed25519 %s c\n\n  \n", b64);
    expect_text(line, SHOAL_OK);
    snprintf(line, sizeof(line), "ssh-ed25519 %s c\nssh-ed25519 %s", b64, b64); /* two lines */
    expect_text(line, SHOAL_ERR_BAD_FORMAT);
    snprintf(line, sizeof(line), "ssh-rsa %s", b64); /* type differs from the blob's */
    expect_text(line, SHOAL_ERR_BAD_FORMAT);
    snprintf(line, sizeof(line), "ssh-dss %s", b64);
    expect_text(line, SHOAL_ERR_UNSUPPORTED);
    snprintf(line, sizeof(line), "ssh-ed25519 %.*s", (int)strlen(b64) - 4, b64); /* truncated blob */
    expect_text(line, SHOAL_ERR_TRUNCATED);
    snprintf(line, sizeof(line), "ssh-ed25519 %s=", b64);
    expect_text(line, SHOAL_ERR_BAD_FORMAT);
    snprintf(line, sizeof(line), "ssh-ed25519 A%s", b64);
    assert_int_not_equal(shoal_key_from_public_text(line, strlen(line), &(shoal_key *){NULL}), SHOAL_OK);
    expect_text("ssh-ed25519", SHOAL_ERR_BAD_FORMAT);
    expect_text("ssh-ed25519 ", SHOAL_ERR_BAD_FORMAT);
    expect_text("", SHOAL_ERR_BAD_FORMAT);
    expect_text("ssh-ed25519 !!!!", SHOAL_ERR_BAD_FORMAT);
    /* Embedded NUL. */
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_from_public_text("ssh-ed25519 AAAA\0x", 18, &k), SHOAL_ERR_BAD_FORMAT);
    /* Every truncation of a real line fails or parses, never crashes. */
    size_t eclen = strlen(ec);
    for (size_t l = 0; l < eclen; l++) {
        k = NULL;
        if (shoal_key_from_public_text(ec, l, &k) == SHOAL_OK)
            shoal_key_free(k);
    }
    free(ed);
    free(ec);
    assert_int_equal(shoal_keytype_from_name("ssh-rsa", 7), SHOAL_KEY_RSA);
    assert_int_equal(shoal_keytype_from_name("ssh-rsa", 6), SHOAL_KEY_UNKNOWN);
    assert_int_equal(shoal_keytype_from_name("rsa-sha2-256", 12), SHOAL_KEY_UNKNOWN);
    assert_int_equal(shoal_keytype_from_name("ecdsa-sha2-nistp521", 19), SHOAL_KEY_ECDSA_P521);
}

/* ---- malformed openssh-key-v1 files ---- */

/* The binary inside a file's armor. */
static void dearmor(const char *path, shoal_buf *bin)
{
    size_t len;
    char *text = (char *)read_or_fail(path, &len);
    char *p = strstr(text, "-----\n"), *end = strstr(text, "-----END");
    assert_non_null(p);
    assert_non_null(end);
    size_t n = 0;
    for (p += 6; p < end; p++)
        if (*p != '\n' && *p != '\r')
            text[n++] = *p;
    shoal_buf_init(bin, 0);
    assert_int_equal(shoal_base64_decode(text, n, bin), SHOAL_OK);
    free(text);
}

static int load_bin(const shoal_buf *b, const char *pass)
{
    shoal_key *k = NULL;
    int rc = shoal_key_load_private(shoal_buf_ptr(b), shoal_buf_len(b), pass, &k);
    shoal_key_free(k);
    return rc;
}

/* Offset of the kdfoptions' rounds field, of N and of the encrypted
 * section's contents. */
static void layout(const shoal_buf *b, size_t *rounds_at, size_t *nkeys_at, size_t *priv_at)
{
    shoal_rd r, opts;
    const uint8_t *s;
    size_t n;
    uint32_t v;
    shoal_rd_init(&r, shoal_buf_ptr(b), shoal_buf_len(b));
    assert_int_equal(shoal_rd_skip(&r, 15), 0);
    assert_int_equal(shoal_rd_string(&r, &s, &n), 0);
    assert_int_equal(shoal_rd_string(&r, &s, &n), 0);
    size_t opts_at = r.pos + 4;
    assert_int_equal(shoal_rd_sub(&r, &opts), 0);
    *rounds_at = 0;
    if (opts.len) {
        assert_int_equal(shoal_rd_string(&opts, &s, &n), 0);
        *rounds_at = opts_at + opts.pos;
    }
    *nkeys_at = r.pos;
    assert_int_equal(shoal_rd_u32(&r, &v), 0);
    assert_int_equal(shoal_rd_string(&r, &s, &n), 0);
    *priv_at = r.pos + 4;
}

static void test_openssh_malformed(void **st)
{
    (void)st;
    shoal_buf b;
    size_t rounds_at, nkeys_at, priv_at;
    uint8_t *p;

    /* Unencrypted: the binary form loads; every truncation fails; a
     * trailing byte, a bad check-int, bad padding or a second key fail. */
    for (size_t i = 0; i < NCASES; i++) {
        dearmor(path_of(cases[i].file, "openssh"), &b);
        assert_int_equal(load_bin(&b, NULL), SHOAL_OK);
        size_t n = shoal_buf_len(&b);
        for (size_t l = 0; l < n; l++) {
            shoal_key *k = NULL;
            assert_int_not_equal(shoal_key_load_private(shoal_buf_ptr(&b), l, NULL, &k), SHOAL_OK);
            assert_null(k);
        }
        shoal_buf_put_u8(&b, 0);
        assert_int_equal(load_bin(&b, NULL), SHOAL_ERR_TRAILING);
        shoal_buf_truncate(&b, n);
        assert_int_equal(shoal_key_file_is_encrypted(shoal_buf_ptr(&b), n), 0);
        layout(&b, &rounds_at, &nkeys_at, &priv_at);
        p = shoal_buf_mutptr(&b);
        p[priv_at] ^= 1;
        assert_int_equal(load_bin(&b, NULL), SHOAL_ERR_BAD_FORMAT); /* check-ints differ */
        p[priv_at] ^= 1;
        p[nkeys_at + 3] = 2;
        assert_int_equal(load_bin(&b, NULL), SHOAL_ERR_UNSUPPORTED);
        p[nkeys_at + 3] = 1;
        if (p[n - 1] >= 1 && p[n - 1] <= 15 && p[n - 1] == p[n - 2] + 1) { /* ends in padding */
            p[n - 1] ^= 0x80;
            assert_int_equal(load_bin(&b, NULL), SHOAL_ERR_BAD_FORMAT);
            p[n - 1] ^= 0x80;
        }
        for (size_t l = priv_at; l < n; l++) { /* flipped private bytes never crash */
            p[l] ^= 0x10;
            int rc = load_bin(&b, NULL);
            if (l < priv_at + 8 + 4 + strlen(shoal_keytype_name(cases[i].type)))
                assert_int_not_equal(rc, SHOAL_OK); /* check-ints and key type */
            p[l] ^= 0x10;
        }
        assert_int_equal(load_bin(&b, NULL), SHOAL_OK);
        shoal_buf_free(&b);
    }

    /* The public key in the header must match the private key. */
    shoal_buf other;
    dearmor(path_of("ed25519", "openssh"), &b);
    dearmor(path_of("ed25519", "pem"), &other); /* same key: still openssh format */
    assert_int_equal(load_bin(&other, NULL), SHOAL_OK);
    shoal_buf_free(&other);
    layout(&b, &rounds_at, &nkeys_at, &priv_at);
    p = shoal_buf_mutptr(&b);
    p[nkeys_at + 4 + 4 + 11 + 4 + 5] ^= 1; /* a byte of the header's ed25519 key */
    assert_int_equal(load_bin(&b, NULL), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_free(&b);

    /* Encrypted: KDF limits. */
    dearmor(path_of("ed25519", "openssh.enc"), &b);
    assert_int_equal(shoal_key_file_is_encrypted(shoal_buf_ptr(&b), shoal_buf_len(&b)), 1);
    assert_int_equal(load_bin(&b, PASS), SHOAL_OK);
    layout(&b, &rounds_at, &nkeys_at, &priv_at);
    assert_int_not_equal(rounds_at, 0);
    p = shoal_buf_mutptr(&b);
    assert_int_equal(shoal_load_u32(p + rounds_at), 16); /* ssh-keygen's default */
    shoal_store_u32(p + rounds_at, 1001);
    assert_int_equal(load_bin(&b, PASS), SHOAL_ERR_TOO_LARGE);
    shoal_store_u32(p + rounds_at, 0);
    assert_int_equal(load_bin(&b, PASS), SHOAL_ERR_BAD_FORMAT);
    shoal_store_u32(p + rounds_at, 15); /* another key: the check-ints differ */
    assert_int_equal(load_bin(&b, PASS), SHOAL_ERR_BAD_PASSPHRASE);
    shoal_buf_free(&b);

    /* Armor problems. */
    size_t len;
    uint8_t *text = read_or_fail(path_of("ecdsa256", "openssh"), &len);
    shoal_key *k = NULL;
    for (size_t l = 0; l < len - 40; l++) { /* every cut before the END line */
        assert_int_not_equal(shoal_key_load_private(text, l, NULL, &k), SHOAL_OK);
        assert_null(k);
        assert_true(shoal_key_file_is_encrypted(text, l) < 0);
    }
    text[60] = '*'; /* not base64 */
    assert_int_equal(shoal_key_load_private(text, len, NULL, &k), SHOAL_ERR_BAD_FORMAT);
    free(text);
    assert_int_equal(shoal_key_load_private((const uint8_t *)"hello", 5, NULL, &k), SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(shoal_key_file_is_encrypted((const uint8_t *)"hello", 5), SHOAL_ERR_BAD_FORMAT);
    static const char cut_pem[] = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n";
    assert_int_equal(shoal_key_load_private((const uint8_t *)cut_pem, strlen(cut_pem), NULL, &k),
                     SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(shoal_key_file_is_encrypted((const uint8_t *)cut_pem, strlen(cut_pem)), SHOAL_ERR_BAD_FORMAT);
    uint8_t *big = calloc(1, (1u << 20) + 1);
    assert_int_equal(shoal_key_load_private(big, (1u << 20) + 1, NULL, &k), SHOAL_ERR_TOO_LARGE);
    free(big);
}

/* ---- signature encodings ---- */

/* RSA: a signature one octet shorter than the modulus (its leading zero
 * dropped) is accepted, as OpenSSH does; a longer one is not. ECDSA: r and
 * s must be minimal mpints. */
static void test_signature_encodings(void **st)
{
    (void)st;
    shoal_key *k = load_priv(path_of("rsa2048", "openssh"), NULL, SHOAL_OK);
    shoal_buf sig, x;
    uint8_t msg[16] = {0};
    shoal_buf_init(&sig, 0);
    shoal_buf_init(&x, 0);
    const size_t hdr = 4 + 12 + 4; /* string "rsa-sha2-256", then the length of S */
    for (unsigned i = 0;; i++) { /* about 1 in 256 signatures starts with 0x00 */
        assert_true(i < 100000);
        memcpy(msg, &i, sizeof(i));
        shoal_buf_reset(&sig);
        assert_int_equal(shoal_key_sign(k, "rsa-sha2-256", msg, sizeof(msg), &sig), SHOAL_OK);
        if (shoal_buf_ptr(&sig)[hdr] == 0)
            break;
    }
    const uint8_t *s = shoal_buf_ptr(&sig) + hdr;
    size_t slen = shoal_buf_len(&sig) - hdr;
    assert_int_equal(slen, 256);
    shoal_buf_put_cstring(&x, "rsa-sha2-256");
    shoal_buf_put_string(&x, s + 1, slen - 1);
    assert_int_equal(shoal_key_verify(k, "rsa-sha2-256", shoal_buf_ptr(&x), shoal_buf_len(&x), msg, sizeof(msg)),
                     SHOAL_OK);
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "rsa-sha2-256");
    shoal_buf_put_u32(&x, (uint32_t)slen + 1);
    shoal_buf_put_u8(&x, 0);
    shoal_buf_put(&x, s, slen);
    assert_int_equal(shoal_key_verify(k, "rsa-sha2-256", shoal_buf_ptr(&x), shoal_buf_len(&x), msg, sizeof(msg)),
                     SHOAL_ERR_BAD_FORMAT);
    shoal_key_free(k);

    k = load_priv(path_of("ecdsa256", "openssh"), NULL, SHOAL_OK);
    shoal_buf_reset(&sig);
    assert_int_equal(shoal_key_sign(k, NULL, msg, sizeof(msg), &sig), SHOAL_OK);
    shoal_rd r, inner;
    const uint8_t *rm, *sm;
    size_t rn, sn;
    shoal_rd_init(&r, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    assert_int_equal(shoal_rd_skip(&r, 4 + 19), 0);
    assert_int_equal(shoal_rd_sub(&r, &inner), 0);
    assert_int_equal(shoal_rd_mpint(&inner, &rm, &rn), 0);
    assert_int_equal(shoal_rd_mpint(&inner, &sm, &sn), 0);
    assert_int_equal(shoal_rd_end(&inner), 0);
    /* Re-encode r with a redundant leading zero: not minimal. */
    uint8_t rpad[34] = {0};
    memcpy(rpad + (rm[0] & 0x80 ? 2 : 1), rm, rn);
    size_t mark;
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_begin_string(&x, &mark);
    shoal_buf_put_string(&x, rpad, rn + (rm[0] & 0x80 ? 2 : 1));
    shoal_buf_put_mpint(&x, sm, sn);
    shoal_buf_end_string(&x, mark);
    assert_int_equal(shoal_key_verify(k, NULL, shoal_buf_ptr(&x), shoal_buf_len(&x), msg, sizeof(msg)),
                     SHOAL_ERR_BAD_FORMAT);
    /* The same numbers, minimally encoded, verify. */
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_begin_string(&x, &mark);
    shoal_buf_put_mpint(&x, rm, rn);
    shoal_buf_put_mpint(&x, sm, sn);
    shoal_buf_end_string(&x, mark);
    assert_int_equal(shoal_key_verify(k, NULL, shoal_buf_ptr(&x), shoal_buf_len(&x), msg, sizeof(msg)), SHOAL_OK);
    /* r = 0. */
    shoal_buf_reset(&x);
    shoal_buf_put_cstring(&x, "ecdsa-sha2-nistp256");
    shoal_buf_begin_string(&x, &mark);
    shoal_buf_put_u32(&x, 0);
    shoal_buf_put_mpint(&x, sm, sn);
    shoal_buf_end_string(&x, mark);
    assert_int_equal(shoal_key_verify(k, NULL, shoal_buf_ptr(&x), shoal_buf_len(&x), msg, sizeof(msg)),
                     SHOAL_ERR_BAD_FORMAT);
    shoal_buf_free(&x);
    shoal_buf_free(&sig);
    shoal_key_free(k);
}

/* ---- interoperability: OpenSSH's sshsig (ssh-keygen -Y sign / verify) ----
 * Proves our signature encodings byte for byte against OpenSSH. The signed
 * data is "SSHSIG" || string namespace || string reserved ||
 * string hash_alg || string H(message); the file carries the public key
 * and the ordinary SSH signature blob. */

#define NS "shoal-test@example.org"

static void sshsig_signed_data(const uint8_t *msg, size_t len, shoal_buf *out)
{
    uint8_t h[64];
    unsigned int hl = 0;
    assert_int_equal(EVP_Digest(msg, len, h, &hl, EVP_sha512(), NULL), 1);
    shoal_buf_init(out, 0);
    shoal_buf_put(out, "SSHSIG", 6);
    shoal_buf_put_cstring(out, NS);
    shoal_buf_put_cstring(out, "");
    shoal_buf_put_cstring(out, "sha512");
    shoal_buf_put_string(out, h, hl);
}

static void test_sshsig_interop(void **st)
{
    (void)st;
    static const uint8_t msg[] = "interop message\n";
    char msgpath[1024];
    snprintf(msgpath, sizeof(msgpath), "%s", path_of("message", NULL));
    FILE *f = fopen(msgpath, "wb");
    assert_non_null(f);
    fwrite(msg, 1, sizeof(msg) - 1, f);
    fclose(f);
    shoal_buf sd;
    sshsig_signed_data(msg, sizeof(msg) - 1, &sd);
    for (size_t i = 0; i < NCASES; i++) {
        const kcase *kc = &cases[i];
        shoal_key *k = load_priv(path_of(kc->file, "openssh"), NULL, SHOAL_OK), *pub = load_pub(kc);

        /* ssh-keygen signs, we verify. */
        assert_int_equal(tu_system("rm -f '%s.sig' && ssh-keygen -q -Y sign -f '%s' -n " NS " '%s' 2>/dev/null",
                                   msgpath, path_of(kc->file, "openssh"), msgpath),
                         0);
        shoal_buf sig;
        char sigpath[1100];
        snprintf(sigpath, sizeof(sigpath), "%s.sig", msgpath);
        dearmor(sigpath, &sig);
        shoal_rd r;
        const uint8_t *magic, *blob, *s;
        size_t blen, slen;
        uint32_t ver;
        shoal_rd_init(&r, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
        assert_int_equal(shoal_rd_bytes(&r, 6, &magic), 0);
        assert_int_equal(shoal_rd_u32(&r, &ver), 0);
        assert_int_equal(shoal_rd_string(&r, &blob, &blen), 0);
        assert_int_equal(shoal_rd_skip(&r, 4 + strlen(NS) + 4 + 4 + 6), 0);
        assert_int_equal(shoal_rd_string(&r, &s, &slen), 0);
        assert_int_equal(shoal_rd_end(&r), 0);
        assert_int_equal(shoal_key_verify(pub, NULL, s, slen, shoal_buf_ptr(&sd), shoal_buf_len(&sd)), SHOAL_OK);
        shoal_buf_free(&sig);

        /* We sign, ssh-keygen verifies. */
        shoal_buf out, pubblob, arm;
        shoal_buf_init(&sig, 0);
        assert_int_equal(shoal_key_sign(k, NULL, shoal_buf_ptr(&sd), shoal_buf_len(&sd), &sig), SHOAL_OK);
        blob_of(pub, &pubblob);
        shoal_buf_init(&out, 0);
        shoal_buf_put(&out, "SSHSIG", 6);
        shoal_buf_put_u32(&out, 1);
        shoal_buf_put_string(&out, shoal_buf_ptr(&pubblob), shoal_buf_len(&pubblob));
        shoal_buf_put_cstring(&out, NS);
        shoal_buf_put_cstring(&out, "");
        shoal_buf_put_cstring(&out, "sha512");
        shoal_buf_put_string(&out, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
        char *b64 = malloc(shoal_buf_len(&out) * 2 + 8);
        assert_int_equal(shoal_base64_encode(shoal_buf_ptr(&out), shoal_buf_len(&out), b64,
                                             shoal_buf_len(&out) * 2 + 8, 1),
                         SHOAL_OK);
        f = fopen(sigpath, "wb");
        assert_non_null(f);
        fputs("-----BEGIN SSH SIGNATURE-----\n", f);
        for (size_t o = 0; o < strlen(b64); o += 70)
            fprintf(f, "%.70s\n", b64 + o);
        fputs("-----END SSH SIGNATURE-----\n", f);
        fclose(f);
        free(b64);
        (void)arm;
        assert_int_equal(tu_system("printf 'signer@test ' > '%s/allowed' && cat '%s' >> '%s/allowed'", dir,
                                   path_of(kc->file, "pub"), dir),
                         0);
        assert_int_equal(tu_system("ssh-keygen -Y verify -f '%s/allowed' -I signer@test -n " NS
                                   " -s '%s' < '%s' >/dev/null",
                                   dir, sigpath, msgpath),
                         0);
        shoal_buf_free(&out);
        shoal_buf_free(&pubblob);
        shoal_buf_free(&sig);
        shoal_key_free(pub);
        shoal_key_free(k);
    }
    shoal_buf_free(&sd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_formats),         cmocka_unit_test(test_openssh_ciphers),
        cmocka_unit_test(test_openssl_pem),         cmocka_unit_test(test_blob_truncated_trailing),
        cmocka_unit_test(test_blob_semantics),      cmocka_unit_test(test_public_text),
        cmocka_unit_test(test_openssh_malformed),   cmocka_unit_test(test_signature_encodings),
        cmocka_unit_test(test_sshsig_interop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
