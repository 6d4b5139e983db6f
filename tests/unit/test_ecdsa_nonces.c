/* ECDSA nonces made by shoal's signing code must be full-range and never
 * repeat (CVE-2024-31497: PuTTY's P-521 nonces had their top 9 bits zero,
 * which gives the private key away from about 60 signatures).
 *
 * For each curve a test key is generated in memory and loaded through our
 * key loader; 2000 messages are signed with shoal_key_sign(); from each
 * signature (r, s), the message digest z and the private scalar d, the
 * nonce is recovered as k = s^-1 (z + r d) mod n (checked against r =
 * x(kG) mod n for the first ones, so the recovery itself is right). Then:
 * no r repeats, some k has the full bit length of n, and the top and
 * bottom bytes of k take most of their 256 values. With uniform nonces each
 * of these fails with probability far below 2^-100; with PuTTY's bug the
 * top byte of a P-521 nonce is always 0. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "keys/key.h"
#include "wire/buf.h"

#define SIGNATURES 2000
#define CHECK_POINTS 16 /* signatures whose k is checked against r = x(kG) */

static const struct curve {
    const char *ossl_name, *ssh_name, *digest;
    int nid;
} curves[] = {
    {"P-256", "ecdsa-sha2-nistp256", "SHA256", NID_X9_62_prime256v1},
    {"P-384", "ecdsa-sha2-nistp384", "SHA384", NID_secp384r1},
    {"P-521", "ecdsa-sha2-nistp521", "SHA512", NID_secp521r1},
};

static int cmp_bn(const void *a, const void *b)
{
    return BN_cmp(*(BIGNUM *const *)a, *(BIGNUM *const *)b);
}

/* Reads the SSH signature blob: string alg, string (mpint r, mpint s). */
static void parse_sig(const shoal_buf *sig, const char *alg, BIGNUM **r, BIGNUM **s)
{
    shoal_rd rd, inner;
    const uint8_t *name, *body, *rp, *sp;
    size_t name_len, body_len, rl, sl;
    shoal_rd_init(&rd, shoal_buf_ptr(sig), shoal_buf_len(sig));
    assert_int_equal(shoal_rd_string(&rd, &name, &name_len), 0);
    assert_int_equal(name_len, strlen(alg));
    assert_memory_equal(name, alg, name_len);
    assert_int_equal(shoal_rd_string(&rd, &body, &body_len), 0);
    assert_int_equal(shoal_rd_end(&rd), 0);
    shoal_rd_init(&inner, body, body_len);
    assert_int_equal(shoal_rd_mpint(&inner, &rp, &rl), 0);
    assert_int_equal(shoal_rd_mpint(&inner, &sp, &sl), 0);
    assert_int_equal(shoal_rd_end(&inner), 0);
    *r = BN_bin2bn(rp, (int)rl, NULL);
    *s = BN_bin2bn(sp, (int)sl, NULL);
    assert_non_null(*r);
    assert_non_null(*s);
}

static void check_curve(const struct curve *cv)
{
    /* The key: generated here, loaded by our loader, d kept for the test. */
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", cv->ossl_name);
    assert_non_null(pk);
    BIGNUM *d = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    shoal_key *key = NULL;
    assert_int_equal(shoal_key_load_private((const uint8_t *)pem, (size_t)pem_len, NULL, &key), 0);
    BIO_free(bio);
    assert_string_equal(shoal_key_type_name(key), cv->ssh_name);

    EC_GROUP *group = EC_GROUP_new_by_curve_name(cv->nid);
    assert_non_null(group);
    const BIGNUM *n = EC_GROUP_get0_order(group);
    int nbits = BN_num_bits(n);
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM **rs = calloc(SIGNATURES, sizeof(*rs));
    BIGNUM *k = BN_new(), *t = BN_new(), *sinv = BN_new(), *x = BN_new(), *shifted = BN_new();
    EC_POINT *R = EC_POINT_new(group);
    assert_true(ctx && rs && k && t && sinv && x && shifted && R);
    const EVP_MD *md = EVP_get_digestbyname(cv->digest);
    assert_non_null(md);

    int full_length = 0, top9_zero = 0;
    unsigned char top_seen[256] = {0}, low_seen[256] = {0};
    for (int i = 0; i < SIGNATURES; i++) {
        char msg[64];
        int mlen = snprintf(msg, sizeof(msg), "message %d for %s", i, cv->ssh_name);
        shoal_buf sig;
        shoal_buf_init(&sig, 4096);
        assert_int_equal(shoal_key_sign(key, cv->ssh_name, (const uint8_t *)msg, (size_t)mlen, &sig), 0);
        BIGNUM *r, *s;
        parse_sig(&sig, cv->ssh_name, &r, &s);
        shoal_buf_free(&sig);

        /* z: the digest, as an integer (its length never exceeds n's here:
         * 256/256, 384/384, 512/521 bits). */
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned hl = 0;
        assert_int_equal(EVP_Digest(msg, (size_t)mlen, h, &hl, md, NULL), 1);
        BIGNUM *z = BN_bin2bn(h, (int)hl, NULL);
        assert_non_null(z);
        /* k = s^-1 (z + r d) mod n */
        assert_non_null(BN_mod_inverse(sinv, s, n, ctx));
        assert_int_equal(BN_mod_mul(t, r, d, n, ctx), 1);
        assert_int_equal(BN_mod_add(t, t, z, n, ctx), 1);
        assert_int_equal(BN_mod_mul(k, t, sinv, n, ctx), 1);
        if (i < CHECK_POINTS) {
            assert_int_equal(EC_POINT_mul(group, R, k, NULL, NULL, ctx), 1);
            assert_int_equal(EC_POINT_get_affine_coordinates(group, R, x, NULL, ctx), 1);
            assert_int_equal(BN_nnmod(x, x, n, ctx), 1);
            assert_int_equal(BN_cmp(x, r), 0);
        }
        int kbits = BN_num_bits(k);
        if (kbits == nbits)
            full_length++;
        if (kbits <= nbits - 9)
            top9_zero++;
        assert_int_equal(BN_rshift(shifted, k, nbits - 8), 1);
        top_seen[BN_get_word(shifted) & 0xff] = 1;
        low_seen[BN_mod_word(k, 256)] = 1;
        rs[i] = r;
        BN_free(s);
        BN_free(z);
    }
    qsort(rs, SIGNATURES, sizeof(*rs), cmp_bn);
    int repeats = 0;
    for (int i = 1; i < SIGNATURES; i++)
        repeats += BN_cmp(rs[i - 1], rs[i]) == 0;
    int top_values = 0, low_values = 0;
    for (int v = 0; v < 256; v++) {
        top_values += top_seen[v];
        low_values += low_seen[v];
    }
    printf("%s: %d signatures, %d nonces of the full %d bits, %d with the top 9 bits zero, "
           "%d/256 top bytes, %d/256 low bytes, %d repeated r\n",
           cv->ssh_name, SIGNATURES, full_length, nbits, top9_zero, top_values, low_values, repeats);
    assert_int_equal(repeats, 0);
    assert_true(full_length > 0);
    /* Uniform k: about SIGNATURES / 512 such nonces; PuTTY's: all of them. */
    assert_true(top9_zero < SIGNATURES / 20);
    assert_true(top_values >= 200);
    assert_true(low_values >= 200);

    for (int i = 0; i < SIGNATURES; i++)
        BN_free(rs[i]);
    free(rs);
    BN_free(k);
    BN_free(t);
    BN_free(sinv);
    BN_free(x);
    BN_free(shifted);
    BN_free(d);
    EC_POINT_free(R);
    BN_CTX_free(ctx);
    EC_GROUP_free(group);
    shoal_key_free(key);
    EVP_PKEY_free(pk);
}

static void cve_2024_31497_ecdsa_nonce_full_range(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        check_curve(&curves[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cve_2024_31497_ecdsa_nonce_full_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
