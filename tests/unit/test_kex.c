/* Key exchange: every method agrees on K between two parties, invalid peer
 * values are refused, RFC 4253 7.2 derivation known answers, RFC 7748
 * X25519 vectors, hashes. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto/kex.h"
#include "crypto/kex_test_hooks.h"
#include "wire/buf.h"

static const char *const all_methods[] = {
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha1",
};
#define N_METHODS (sizeof(all_methods) / sizeof(all_methods[0]))

static size_t unhex(const char *hex, uint8_t *out, size_t outsz)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= outsz);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Checks buf holds exactly one well-formed, minimal, positive mpint and
 * returns its magnitude. */
static void check_mpint(const shoal_buf *K, const uint8_t **mag, size_t *n)
{
    shoal_rd r;
    shoal_rd_init(&r, shoal_buf_ptr(K), shoal_buf_len(K));
    assert_int_equal(shoal_rd_mpint(&r, mag, n), 0);
    assert_int_equal(shoal_rd_end(&r), 0);
    assert_true(*n > 0);
    assert_int_not_equal((*mag)[0], 0);
}

/* The modulus of an RFC 3526 group, straight from libcrypto (independent
 * of the code under test). */
static BIGNUM *dh_prime(int group)
{
    const char *name = group == 14 ? "modp_2048" : group == 16 ? "modp_4096" : "modp_8192";
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *params = NULL;
    BIGNUM *p = NULL;
    OSSL_PARAM set[2] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
                         OSSL_PARAM_construct_end()};
    assert_non_null(ctx);
    assert_true(EVP_PKEY_paramgen_init(ctx) > 0);
    assert_true(EVP_PKEY_CTX_set_params(ctx, set) > 0);
    assert_true(EVP_PKEY_paramgen(ctx, &params) > 0);
    assert_int_equal(EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_P, &p), 1);
    EVP_PKEY_free(params);
    EVP_PKEY_CTX_free(ctx);
    /* RFC 3526: every one of these primes starts and ends with 64 one bits. */
    uint8_t b[1024];
    int n = BN_bn2bin(p, b);
    assert_int_equal(n, group == 14 ? 256 : group == 16 ? 512 : 1024);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(b[i], 0xff);
        assert_int_equal(b[n - 1 - i], 0xff);
    }
    assert_int_equal(b[8], 0xc9); /* 2^N - 2^(N-64) - 1 + 2^64 * [pi...] */
    return p;
}

/* ---- 1. every method: both sides derive the same K ---- */

/* Sends a public value over a simulated wire (mpint or string per the
 * method) and returns the peer's view of it, as the transport will. */
static void wire_roundtrip(const shoal_kex_alg *alg, const shoal_buf *pub, shoal_buf *wire, const uint8_t **out,
                           size_t *out_len)
{
    shoal_rd r;
    shoal_buf_reset(wire);
    if (alg->pub_is_mpint)
        assert_int_equal(shoal_buf_put_mpint(wire, shoal_buf_ptr(pub), shoal_buf_len(pub)), 0);
    else
        assert_int_equal(shoal_buf_put_string(wire, shoal_buf_ptr(pub), shoal_buf_len(pub)), 0);
    shoal_rd_init(&r, shoal_buf_ptr(wire), shoal_buf_len(wire));
    if (alg->pub_is_mpint)
        assert_int_equal(shoal_rd_mpint(&r, out, out_len), 0);
    else
        assert_int_equal(shoal_rd_string(&r, out, out_len), 0);
    assert_int_equal(shoal_rd_end(&r), 0);
    /* raw public values carry no padding the mpint would strip */
    assert_int_equal(*out_len, shoal_buf_len(pub));
}

static void check_public(const shoal_kex_alg *alg, const shoal_buf *pub)
{
    size_t n = shoal_buf_len(pub);
    const uint8_t *p = shoal_buf_ptr(pub);
    switch (alg->kind) {
    case SHOAL_KEX_X25519:
        assert_int_equal(n, 32);
        break;
    case SHOAL_KEX_ECDH: {
        size_t field = alg->hash == SHOAL_HASH_SHA256 ? 32 : alg->hash == SHOAL_HASH_SHA384 ? 48 : 66;
        assert_int_equal(n, 1 + 2 * field);
        assert_int_equal(p[0], 0x04);
        break;
    }
    case SHOAL_KEX_DH: {
        BIGNUM *prime = dh_prime(alg->param);
        assert_true(n <= (size_t)BN_num_bytes(prime));
        assert_true(n > 1);
        assert_int_not_equal(p[0], 0); /* minimal magnitude */
        BN_free(prime);
        break;
    }
    default:
        fail();
    }
}

static void test_all_methods_agree(void **state)
{
    (void)state;
    shoal_buf cpub = SHOAL_BUF_INIT, spub = SHOAL_BUF_INIT, wire = SHOAL_BUF_INIT;
    shoal_buf Kc = SHOAL_BUF_INIT, Ks = SHOAL_BUF_INIT;
    for (size_t i = 0; i < N_METHODS; i++) {
        const shoal_kex_alg *alg = shoal_kex_find(all_methods[i]);
        assert_non_null(alg);
        assert_string_equal(alg->name, all_methods[i]);
        shoal_kex_state *c = NULL, *s = NULL;
        const uint8_t *peer;
        size_t peer_len;

        /* client: e / Q_C */
        assert_int_equal(shoal_kex_keypair(alg, &c, &cpub), 0);
        assert_non_null(c);
        check_public(alg, &cpub);
        /* server: reads it, answers with f / Q_S and computes K */
        wire_roundtrip(alg, &cpub, &wire, &peer, &peer_len);
        assert_int_equal(shoal_kex_keypair(alg, &s, &spub), 0);
        check_public(alg, &spub);
        assert_int_equal(shoal_kex_shared(s, peer, peer_len, &Ks), 0);
        /* client: K from the server's value */
        wire_roundtrip(alg, &spub, &wire, &peer, &peer_len);
        assert_int_equal(shoal_kex_shared(c, peer, peer_len, &Kc), 0);

        assert_int_equal(shoal_buf_len(&Kc), shoal_buf_len(&Ks));
        assert_memory_equal(shoal_buf_ptr(&Kc), shoal_buf_ptr(&Ks), shoal_buf_len(&Kc));
        const uint8_t *mag;
        size_t n;
        check_mpint(&Kc, &mag, &n);
        size_t max = alg->kind == SHOAL_KEX_X25519 ? 32 : alg->param == NID_X9_62_prime256v1 ? 32
                                                      : alg->param == NID_secp384r1          ? 48
                                                      : alg->param == NID_secp521r1          ? 66
                                                      : alg->param == 14                     ? 256
                                                      : alg->param == 16                     ? 512
                                                                                             : 1024;
        assert_true(n <= max);
        /* the public values differ between the sides (fresh keys) */
        assert_false(shoal_buf_len(&cpub) == shoal_buf_len(&spub) &&
                     memcmp(shoal_buf_ptr(&cpub), shoal_buf_ptr(&spub), shoal_buf_len(&cpub)) == 0);

        /* a state computes K once */
        assert_int_equal(shoal_kex_shared(c, peer, peer_len, &Kc), SHOAL_ERR_BAD_STATE);

        shoal_kex_state_free(c);
        shoal_kex_state_free(s);
        shoal_buf_reset(&cpub);
        shoal_buf_reset(&spub);
        shoal_buf_reset(&Kc);
        shoal_buf_reset(&Ks);
    }
    shoal_buf_free(&cpub);
    shoal_buf_free(&spub);
    shoal_buf_free(&wire);
    shoal_buf_free(&Kc);
    shoal_buf_free(&Ks);
}

static void test_find_and_lists(void **state)
{
    (void)state;
    assert_null(shoal_kex_find("diffie-hellman-group1-sha1"));
    assert_null(shoal_kex_find("curve25519-sha256 "));
    assert_null(shoal_kex_find(""));
    assert_null(shoal_kex_find(NULL));
    const shoal_kex_alg *a = shoal_kex_find("ecdh-sha2-nistp384");
    assert_int_equal(a->hash, SHOAL_HASH_SHA384);
    assert_int_equal(a->kind, SHOAL_KEX_ECDH);
    assert_int_equal(a->pub_is_mpint, 0);
    a = shoal_kex_find("diffie-hellman-group18-sha512");
    assert_int_equal(a->hash, SHOAL_HASH_SHA512);
    assert_int_equal(a->param, 18);
    assert_int_equal(a->pub_is_mpint, 1);
    assert_int_equal(shoal_kex_find("diffie-hellman-group14-sha1")->hash, SHOAL_HASH_SHA1);
    assert_int_equal(shoal_kex_find("curve25519-sha256@libssh.org")->kind, SHOAL_KEX_X25519);

    assert_string_equal(SHOAL_KEX_DEFAULT,
                        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
                        "ecdh-sha2-nistp521,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
                        "diffie-hellman-group14-sha256");
    assert_false(shoal_namelist_has(SHOAL_KEX_DEFAULT, strlen(SHOAL_KEX_DEFAULT), "diffie-hellman-group14-sha1"));
    size_t dl = strlen(SHOAL_KEX_DEFAULT);
    assert_memory_equal(SHOAL_KEX_ALL, SHOAL_KEX_DEFAULT, dl);
    assert_string_equal(SHOAL_KEX_ALL + dl, ",diffie-hellman-group14-sha1");
    /* every advertised name resolves, and every method is advertised */
    const char *cur = SHOAL_KEX_ALL, *end = SHOAL_KEX_ALL + strlen(SHOAL_KEX_ALL), *name;
    size_t len, count = 0;
    char tmp[64];
    while (shoal_namelist_next(&cur, end, &name, &len)) {
        assert_true(len < sizeof(tmp));
        memcpy(tmp, name, len);
        tmp[len] = 0;
        assert_non_null(shoal_kex_find(tmp));
        count++;
    }
    assert_int_equal(count, N_METHODS);
}

static void test_bad_args(void **state)
{
    (void)state;
    shoal_buf pub = SHOAL_BUF_INIT, K = SHOAL_BUF_INIT;
    shoal_kex_state *st = (shoal_kex_state *)&pub; /* must be reset to NULL */
    shoal_kex_alg bogus = {"bogus", SHOAL_HASH_SHA256, 99, 0, 0};
    assert_int_equal(shoal_kex_keypair(&bogus, &st, &pub), SHOAL_ERR_UNSUPPORTED);
    assert_null(st);
    shoal_kex_alg badcurve = {"ecdh-bogus", SHOAL_HASH_SHA256, SHOAL_KEX_ECDH, 12345, 0};
    assert_int_equal(shoal_kex_keypair(&badcurve, &st, &pub), SHOAL_ERR_UNSUPPORTED);
    shoal_kex_alg badgroup = {"dh-bogus", SHOAL_HASH_SHA256, SHOAL_KEX_DH, 1, 1};
    assert_int_equal(shoal_kex_keypair(&badgroup, &st, &pub), SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(shoal_kex_keypair(NULL, &st, &pub), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kex_keypair(shoal_kex_find("curve25519-sha256"), NULL, &pub), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_buf_len(&pub), 0);
    assert_int_equal(shoal_kex_shared(NULL, NULL, 0, &K), SHOAL_ERR_INVALID_ARG);
    shoal_kex_state_free(NULL);

    /* a full output buffer: no partial public value, no partial K */
    shoal_buf small;
    shoal_buf_init(&small, 16);
    assert_int_equal(shoal_kex_keypair(shoal_kex_find("ecdh-sha2-nistp256"), &st, &small), SHOAL_ERR_TOO_LARGE);
    assert_null(st);
    assert_int_equal(shoal_buf_len(&small), 0);
    assert_int_equal(shoal_kex_keypair(shoal_kex_find("curve25519-sha256"), &st, &pub), 0);
    assert_int_equal(shoal_buf_put(&small, "0123456789ab", 12), 0);
    assert_int_equal(shoal_kex_shared(st, shoal_buf_ptr(&pub), shoal_buf_len(&pub), &small), SHOAL_ERR_TOO_LARGE);
    assert_int_equal(shoal_buf_len(&small), 12);
    shoal_kex_state_free(st);
    shoal_buf_free(&small);
    shoal_buf_free(&pub);
    shoal_buf_free(&K);
}

/* ---- 2. invalid peer values ---- */

/* A fresh key of method `name`, then shoal_kex_shared(peer); returns its
 * result and checks nothing was appended on failure. */
static int try_peer(const char *name, const uint8_t *peer, size_t len)
{
    shoal_buf pub = SHOAL_BUF_INIT, K = SHOAL_BUF_INIT;
    shoal_kex_state *st;
    assert_int_equal(shoal_kex_keypair(shoal_kex_find(name), &st, &pub), 0);
    int rc = shoal_kex_shared(st, peer, len, &K);
    if (rc)
        assert_int_equal(shoal_buf_len(&K), 0);
    /* failed or not, the state is spent */
    assert_int_equal(shoal_kex_shared(st, peer, len, &K), SHOAL_ERR_BAD_STATE);
    shoal_kex_state_free(st);
    shoal_buf_free(&pub);
    shoal_buf_free(&K);
    return rc;
}

static void test_x25519_invalid(void **state)
{
    (void)state;
    uint8_t u[40];
    /* low-order points: the shared secret is all zero (RFC 7748 6.1) */
    memset(u, 0, sizeof(u));
    assert_int_equal(try_peer("curve25519-sha256", u, 32), SHOAL_ERR_PROTOCOL);
    u[0] = 1; /* u = 1 */
    assert_int_equal(try_peer("curve25519-sha256@libssh.org", u, 32), SHOAL_ERR_PROTOCOL);
    /* u = p - 1 = 2^255 - 20 (order 2) */
    unhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", u, sizeof(u));
    assert_int_equal(try_peer("curve25519-sha256", u, 32), SHOAL_ERR_PROTOCOL);
    /* a point of order 8 */
    unhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", u, sizeof(u));
    assert_int_equal(try_peer("curve25519-sha256", u, 32), SHOAL_ERR_PROTOCOL);
    /* wrong lengths */
    memset(u, 9, sizeof(u));
    assert_int_equal(try_peer("curve25519-sha256", u, 31), SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(try_peer("curve25519-sha256", u, 33), SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(try_peer("curve25519-sha256", u, 0), SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(try_peer("curve25519-sha256", NULL, 0), SHOAL_ERR_BAD_FORMAT);
    /* the base point u = 9 is fine */
    memset(u, 0, sizeof(u));
    u[0] = 9;
    assert_int_equal(try_peer("curve25519-sha256", u, 32), 0);
}

static void test_ecdh_invalid(void **state)
{
    (void)state;
    static const char *const curves[] = {"ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521"};
    static const size_t fields[] = {32, 48, 66};
    for (size_t c = 0; c < 3; c++) {
        const char *name = curves[c];
        const size_t plen = 1 + 2 * fields[c];
        shoal_buf pub = SHOAL_BUF_INIT;
        shoal_kex_state *other;
        /* a genuine point to start from */
        assert_int_equal(shoal_kex_keypair(shoal_kex_find(name), &other, &pub), 0);
        shoal_kex_state_free(other);
        uint8_t good[200], bad[200];
        assert_int_equal(shoal_buf_len(&pub), plen);
        memcpy(good, shoal_buf_ptr(&pub), plen);
        shoal_buf_free(&pub);
        assert_int_equal(try_peer(name, good, plen), 0);

        /* not on the curve: one bit of y flipped */
        memcpy(bad, good, plen);
        bad[plen - 1] ^= 1;
        assert_int_equal(try_peer(name, bad, plen), SHOAL_ERR_PROTOCOL);
        /* (0, 0) is not on any of these curves */
        memset(bad, 0, plen);
        bad[0] = 0x04;
        assert_int_equal(try_peer(name, bad, plen), SHOAL_ERR_PROTOCOL);
        /* coordinates >= p */
        memset(bad, 0xff, plen);
        bad[0] = 0x04;
        assert_int_equal(try_peer(name, bad, plen), SHOAL_ERR_PROTOCOL);
        /* wrong lengths */
        assert_int_equal(try_peer(name, good, plen - 1), SHOAL_ERR_BAD_FORMAT);
        memcpy(bad, good, plen);
        bad[plen] = 0;
        assert_int_equal(try_peer(name, bad, plen + 1), SHOAL_ERR_BAD_FORMAT);
        assert_int_equal(try_peer(name, NULL, 0), SHOAL_ERR_BAD_FORMAT);
        /* the point at infinity encoding */
        bad[0] = 0;
        assert_int_equal(try_peer(name, bad, 1), SHOAL_ERR_BAD_FORMAT);
        /* compressed encodings: of the genuine point, and garbage */
        memcpy(bad, good, 1 + fields[c]);
        bad[0] = (uint8_t)(0x02 | (good[plen - 1] & 1));
        assert_int_equal(try_peer(name, bad, 1 + fields[c]), SHOAL_ERR_BAD_FORMAT);
        memset(bad, 0xa5, sizeof(bad));
        bad[0] = 0x03;
        assert_int_equal(try_peer(name, bad, 1 + fields[c]), SHOAL_ERR_BAD_FORMAT);
        /* right length but a compressed / hybrid prefix */
        memcpy(bad, good, plen);
        bad[0] = 0x02;
        assert_int_equal(try_peer(name, bad, plen), SHOAL_ERR_BAD_FORMAT);
        bad[0] = 0x06;
        assert_int_equal(try_peer(name, bad, plen), SHOAL_ERR_BAD_FORMAT);
    }
}

/* A P-256 point with a small x encoded twice: canonically (accepted) and
 * with x + p in place of x (same point mod p, refused: SEC1 requires
 * coordinates below p). */
static void test_ecdh_noncanonical(void **state)
{
    (void)state;
    BN_CTX *bc = BN_CTX_new();
    BIGNUM *p = NULL, *b = NULL, *x = BN_new(), *rhs = BN_new(), *t = BN_new(), *y = NULL;
    assert_true(BN_hex2bn(&p, "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"));
    assert_true(BN_hex2bn(&b, "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"));
    for (BN_ULONG xv = 0;; xv++) {
        assert_true(xv < 100);
        /* rhs = x^3 - 3x + b mod p */
        assert_true(BN_set_word(x, xv));
        assert_true(BN_mod_sqr(t, x, p, bc) && BN_mod_mul(rhs, t, x, p, bc));
        assert_true(BN_set_word(t, 3 * xv) && BN_mod_sub(rhs, rhs, t, p, bc) && BN_mod_add(rhs, rhs, b, p, bc));
        y = BN_mod_sqrt(NULL, rhs, p, bc);
        if (y && BN_mod_sqr(t, y, p, bc) && BN_cmp(t, rhs) == 0)
            break;
        BN_free(y);
        y = NULL;
    }
    uint8_t pt[65];
    pt[0] = 0x04;
    assert_int_equal(BN_bn2binpad(x, pt + 1, 32), 32);
    assert_int_equal(BN_bn2binpad(y, pt + 33, 32), 32);
    assert_int_equal(try_peer("ecdh-sha2-nistp256", pt, sizeof(pt)), 0);
    assert_true(BN_add(x, x, p));
    assert_int_equal(BN_bn2binpad(x, pt + 1, 32), 32); /* still fits: x + p < 2^256 */
    assert_int_equal(try_peer("ecdh-sha2-nistp256", pt, sizeof(pt)), SHOAL_ERR_PROTOCOL);
    BN_free(y);
    BN_free(t);
    BN_free(rhs);
    BN_free(x);
    BN_free(b);
    BN_free(p);
    BN_CTX_free(bc);
}

/* f = p + delta as a big-endian magnitude. */
static size_t p_plus(const BIGNUM *p, long delta, uint8_t *out)
{
    BIGNUM *v = BN_dup(p);
    assert_non_null(v);
    if (delta >= 0)
        assert_true(BN_add_word(v, (BN_ULONG)delta));
    else
        assert_true(BN_sub_word(v, (BN_ULONG)-delta));
    size_t n = (size_t)BN_bn2bin(v, out);
    BN_free(v);
    return n;
}

static void test_dh_invalid(void **state)
{
    (void)state;
    static const char *const groups[] = {"diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512",
                                         "diffie-hellman-group18-sha512"};
    static const int nums[] = {14, 16, 18};
    static uint8_t f[SHOAL_MAX_MPINT_BYTES + 8];
    for (size_t g = 0; g < 3; g++) {
        const char *name = groups[g];
        BIGNUM *p = dh_prime(nums[g]);
        size_t n;
        const uint8_t zero = 0, one = 1, two = 2;

        assert_int_equal(try_peer(name, NULL, 0), SHOAL_ERR_PROTOCOL); /* f = 0 */
        assert_int_equal(try_peer(name, &zero, 1), SHOAL_ERR_PROTOCOL);
        assert_int_equal(try_peer(name, &one, 1), SHOAL_ERR_PROTOCOL);
        n = p_plus(p, -1, f);
        assert_int_equal(try_peer(name, f, n), SHOAL_ERR_PROTOCOL);
        n = p_plus(p, 0, f);
        assert_int_equal(try_peer(name, f, n), SHOAL_ERR_PROTOCOL);
        n = p_plus(p, 1, f);
        assert_int_equal(try_peer(name, f, n), SHOAL_ERR_PROTOCOL);
        /* 2^(8 * len(p)): longer than p */
        memset(f, 0, sizeof(f));
        f[0] = 1;
        n = (size_t)BN_num_bytes(p) + 1;
        assert_int_equal(try_peer(name, f, n), SHOAL_ERR_PROTOCOL);
        /* over the mpint size limit */
        memset(f, 0xff, sizeof(f));
        assert_int_equal(try_peer(name, f, SHOAL_MAX_MPINT_BYTES + 1), SHOAL_ERR_BAD_FORMAT);
        /* the boundaries just inside the range are accepted */
        if (g == 0) {
            assert_int_equal(try_peer(name, &two, 1), 0);
            n = p_plus(p, -2, f);
            assert_int_equal(try_peer(name, f, n), 0);
            /* leading zero bytes in the magnitude are harmless */
            memmove(f + 3, f, n);
            memset(f, 0, 3);
            assert_int_equal(try_peer(name, f, n + 3), 0);
        }
        BN_free(p);
    }
}

/* Libcrypto picks the exponent size; it must be at least twice the
 * security strength of the group (RFC 8268 / RFC 4419 guidance;
 * SP 800-56B strengths 112, 152, 200 bits) and shorter than q. */
static void test_dh_exponent_size(void **state)
{
    (void)state;
    static const char *const groups[] = {"diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512",
                                         "diffie-hellman-group18-sha512"};
    static const int strength[] = {112, 152, 200}, pbits[] = {2048, 4096, 8192};
    shoal_buf pub = SHOAL_BUF_INIT;
    for (size_t g = 0; g < 3; g++) {
        int max = 0;
        /* a uniform N-bit exponent has fewer than N - 8 bits with
         * probability 2^-8; over 16 keys the max falls that short with
         * probability 2^-128 */
        for (int i = 0; i < 16; i++) {
            shoal_kex_state *st;
            assert_int_equal(shoal_kex_keypair(shoal_kex_find(groups[g]), &st, &pub), 0);
            int bits = shoal_kex_test_dh_priv_bits(st);
            assert_true(bits > 0);
            assert_true(bits < pbits[g] - 1);
            if (bits > max)
                max = bits;
            shoal_kex_state_free(st);
            shoal_buf_reset(&pub);
        }
        print_message("%s: private exponent up to %d bits\n", groups[g], max);
        assert_true(max >= 2 * strength[g] - 8);
    }
    shoal_buf_free(&pub);
}

/* ---- 3. key derivation ---- */

/* The RFC 4253 7.2 construction computed the slow, obvious way with
 * EVP_Digest over explicit concatenations. */
static void append(uint8_t *msg, size_t *ml, const uint8_t *p, size_t n)
{
    memcpy(msg + *ml, p, n);
    *ml += n;
}

static void ref_derive(const EVP_MD *md, const uint8_t *K, size_t Kl, const uint8_t *H, size_t Hl, char x,
                       const uint8_t *sid, size_t sl, uint8_t *out, size_t need)
{
    uint8_t msg[1024], acc[512];
    const uint8_t letter = (uint8_t)x;
    size_t accl, ml = 0;
    unsigned int dl;
    append(msg, &ml, K, Kl);
    append(msg, &ml, H, Hl);
    append(msg, &ml, &letter, 1);
    append(msg, &ml, sid, sl);
    assert_true(EVP_Digest(msg, ml, acc, &dl, md, NULL));
    accl = dl;
    while (accl < need) {
        ml = 0;
        append(msg, &ml, K, Kl);
        append(msg, &ml, H, Hl);
        append(msg, &ml, acc, accl);
        assert_true(EVP_Digest(msg, ml, acc + accl, &dl, md, NULL));
        accl += dl;
    }
    memcpy(out, acc, need);
}

static void test_derive_reference(void **state)
{
    (void)state;
    static const int hashes[] = {SHOAL_HASH_SHA1, SHOAL_HASH_SHA256, SHOAL_HASH_SHA384, SHOAL_HASH_SHA512};
    static const char *const mdnames[] = {"SHA1", "SHA256", "SHA384", "SHA512"};
    uint8_t K[300], H[64], sid[64], got[300], want[300];
    shoal_buf Kb = SHOAL_BUF_INIT;
    for (size_t i = 0; i < sizeof(K); i++)
        K[i] = (uint8_t)(i * 7 + 3);
    K[0] = 0x80; /* forces the mpint sign byte */
    assert_int_equal(shoal_buf_put_mpint(&Kb, K, 257), 0);
    for (size_t i = 0; i < sizeof(H); i++) {
        H[i] = (uint8_t)(0x11 * i);
        sid[i] = (uint8_t)(0xff - i);
    }
    for (size_t h = 0; h < 4; h++) {
        EVP_MD *md = EVP_MD_fetch(NULL, mdnames[h], NULL);
        size_t hl = shoal_hash_len(hashes[h]);
        assert_int_equal(hl, (size_t)EVP_MD_get_size(md));
        const size_t needs[] = {1, hl - 1, hl, hl + 1, 2 * hl, 2 * hl + 5, 4 * hl};
        for (char x = 'A'; x <= 'F'; x++) {
            for (size_t k = 0; k < sizeof(needs) / sizeof(needs[0]); k++) {
                size_t need = needs[k];
                memset(got, 0xcc, sizeof(got));
                assert_int_equal(shoal_kex_derive(hashes[h], shoal_buf_ptr(&Kb), shoal_buf_len(&Kb), H, hl, x, sid,
                                                  hl, got, need),
                                 0);
                ref_derive(md, shoal_buf_ptr(&Kb), shoal_buf_len(&Kb), H, hl, x, sid, hl, want, need);
                assert_memory_equal(got, want, need);
                assert_int_equal(got[need], 0xcc); /* nothing past need */
            }
        }
        /* letters give independent keys */
        uint8_t a[64], b[64];
        shoal_kex_derive(hashes[h], shoal_buf_ptr(&Kb), shoal_buf_len(&Kb), H, hl, 'A', sid, hl, a, hl);
        shoal_kex_derive(hashes[h], shoal_buf_ptr(&Kb), shoal_buf_len(&Kb), H, hl, 'B', sid, hl, b, hl);
        assert_memory_not_equal(a, b, hl);
        EVP_MD_free(md);
    }
    assert_int_equal(shoal_kex_derive(99, K, 1, H, 1, 'A', sid, 1, got, 1), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kex_derive(SHOAL_HASH_SHA256, K, 1, H, 1, 'A', sid, 1, NULL, 1), SHOAL_ERR_INVALID_ARG);
    shoal_buf_free(&Kb);
}

/* Fixed answers computed outside this code base (Python hashlib) for
 * K = mpint(0x80..0x9f), H = 00..1f, session_id = 40..5f. */
static void test_derive_known_answer(void **state)
{
    (void)state;
    uint8_t K[64], H[32], sid[32], got[160], want[160];
    const size_t Kl = 37;
    memcpy(K, "\0\0\0\x21\0", 5);
    for (int i = 0; i < 32; i++)
        K[5 + i] = (uint8_t)(0x80 + i);
    for (int i = 0; i < 32; i++) {
        H[i] = (uint8_t)i;
        sid[i] = (uint8_t)(0x40 + i);
    }
    size_t n = unhex("7550783e3516102ea7773b04aed6a42ee1068115b3d10bceb8c1c95c450cfbc61af64600f527848587e061c68433"
                     "2e246a352eb48b12cf4c4f86f87463d3dc19b41b81828e75ed132c9c03d2c82026e4",
                     want, sizeof(want));
    assert_int_equal(n, 80);
    assert_int_equal(shoal_kex_derive(SHOAL_HASH_SHA256, K, Kl, H, 32, 'C', sid, 32, got, n), 0);
    assert_memory_equal(got, want, n);

    n = unhex("e3292e48fc09be72b6381648410d572a193f9ace384070a43020599b7f6a37e5b320b06729d4251bb2f7c68a2482a7b828df"
              "0ebf63bb97af76b6ae5e4b48e2a5ab36287c3e140d7bf690373db010146fc7ac52cce3844ef677de1db65e52a0e2709256dc"
              "530f2f2908ac8386fb31204dd0214e3fdcf594afd6eaf83cd2851e86a59a9c4acd29f820cc33f822a4b98a79259bd7978f3b",
              want, sizeof(want));
    assert_int_equal(n, 150);
    assert_int_equal(shoal_kex_derive(SHOAL_HASH_SHA512, K, Kl, H, 32, 'E', sid, 32, got, n), 0);
    assert_memory_equal(got, want, n);

    n = unhex("e75479cc66efec36c5bc07fcb9df17cb194f079f266a082f82cdfccc8ded3b8a4d3ae2e86b2881c657", want, sizeof(want));
    assert_int_equal(n, 41);
    assert_int_equal(shoal_kex_derive(SHOAL_HASH_SHA1, K, Kl, H, 32, 'A', sid, 32, got, n), 0);
    assert_memory_equal(got, want, n);
}

/* ---- 4. RFC 7748 section 6.1 ---- */

static void test_x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t a[32], A[32], b[32], B[32], k[32], Kwant[40];
    unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
    unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", A, 32);
    unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
    unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", B, 32);
    unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", k, 32);
    /* RFC 8731: K is the shared string read as a big-endian integer, as an
     * mpint; 0x4a has the top bit clear, so no sign byte */
    unhex("00000020", Kwant, 4);
    memcpy(Kwant + 4, k, 32);

    const shoal_kex_alg *alg = shoal_kex_find("curve25519-sha256");
    shoal_buf pa = SHOAL_BUF_INIT, pb = SHOAL_BUF_INIT, Ka = SHOAL_BUF_INIT, Kb = SHOAL_BUF_INIT;
    shoal_kex_state *alice, *bob;
    assert_int_equal(shoal_kex_test_keypair_from_private(alg, a, 32, &alice, &pa), 0);
    assert_int_equal(shoal_kex_test_keypair_from_private(alg, b, 32, &bob, &pb), 0);
    assert_int_equal(shoal_buf_len(&pa), 32);
    assert_memory_equal(shoal_buf_ptr(&pa), A, 32);
    assert_memory_equal(shoal_buf_ptr(&pb), B, 32);
    assert_int_equal(shoal_kex_shared(alice, B, 32, &Ka), 0);
    assert_int_equal(shoal_kex_shared(bob, A, 32, &Kb), 0);
    assert_int_equal(shoal_buf_len(&Ka), 36);
    assert_memory_equal(shoal_buf_ptr(&Ka), Kwant, 36);
    assert_memory_equal(shoal_buf_ptr(&Kb), Kwant, 36);
    shoal_kex_state_free(alice);
    shoal_kex_state_free(bob);

    /* the hook refuses what it cannot do */
    assert_int_equal(shoal_kex_test_keypair_from_private(shoal_kex_find("ecdh-sha2-nistp256"), a, 32, &alice, &pa),
                     SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(shoal_kex_test_keypair_from_private(alg, a, 31, &alice, &pa), SHOAL_ERR_BAD_FORMAT);
    assert_null(alice);
    shoal_buf_free(&pa);
    shoal_buf_free(&pb);
    shoal_buf_free(&Ka);
    shoal_buf_free(&Kb);
}

/* ---- hashes and random ---- */

static void test_hash(void **state)
{
    (void)state;
    uint8_t out[SHOAL_HASH_MAX], want[SHOAL_HASH_MAX];
    assert_int_equal(shoal_hash_len(SHOAL_HASH_SHA1), 20);
    assert_int_equal(shoal_hash_len(SHOAL_HASH_SHA256), 32);
    assert_int_equal(shoal_hash_len(SHOAL_HASH_SHA384), 48);
    assert_int_equal(shoal_hash_len(SHOAL_HASH_SHA512), 64);
    assert_int_equal(shoal_hash_len(0), 0);
    assert_int_equal(shoal_hash_len(5), 0);
    /* FIPS 180 "abc" examples */
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA1, (const uint8_t *)"abc", 3, out), 0);
    unhex("a9993e364706816aba3e25717850c26c9cd0d89d", want, sizeof(want));
    assert_memory_equal(out, want, 20);
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA256, (const uint8_t *)"abc", 3, out), 0);
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, sizeof(want));
    assert_memory_equal(out, want, 32);
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA384, (const uint8_t *)"abc", 3, out), 0);
    unhex("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7", want,
          sizeof(want));
    assert_memory_equal(out, want, 48);
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA512, (const uint8_t *)"abc", 3, out), 0);
    unhex("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
          "454d4423643ce80e2a9ac94fa54ca49f",
          want, sizeof(want));
    assert_memory_equal(out, want, 64);
    /* empty input */
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA256, NULL, 0, out), 0);
    unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, sizeof(want));
    assert_memory_equal(out, want, 32);
    assert_int_equal(shoal_hash(0, (const uint8_t *)"abc", 3, out), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_hash(SHOAL_HASH_SHA256, NULL, 3, out), SHOAL_ERR_INVALID_ARG);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(shoal_random(a, sizeof(a)), 0);
    assert_int_equal(shoal_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(shoal_random(NULL, 0), 0);
    assert_int_equal(shoal_random(NULL, 1), SHOAL_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_methods_agree), cmocka_unit_test(test_find_and_lists),
        cmocka_unit_test(test_bad_args),          cmocka_unit_test(test_x25519_invalid),
        cmocka_unit_test(test_ecdh_invalid),      cmocka_unit_test(test_ecdh_noncanonical),
        cmocka_unit_test(test_dh_invalid),
        cmocka_unit_test(test_dh_exponent_size),  cmocka_unit_test(test_derive_reference),
        cmocka_unit_test(test_derive_known_answer), cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_hash),              cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
