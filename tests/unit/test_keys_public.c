/* The public key calls of include/shoal/keys.h that programs use instead of
 * the internal ones: blob, one-line text, fingerprints, default signature
 * algorithm, signing into malloc'd memory, verifying. Only public headers
 * here, as a program would have. Keys are made with ssh-keygen at test time. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/keys.h"

typedef struct kcase {
    const char *file;
    const char *keygen;
    const char *sigalg; /* the default */
} kcase;

static const kcase cases[] = {
    {"ed25519", "-t ed25519", "ssh-ed25519"},
    {"ecdsa256", "-t ecdsa -b 256", "ecdsa-sha2-nistp256"},
    {"ecdsa384", "-t ecdsa -b 384", "ecdsa-sha2-nistp384"},
    {"rsa2048", "-t rsa -b 2048", "rsa-sha2-512"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static char *dir;

static const char *path_of(const char *name, const char *suffix)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s%s", dir, name, suffix);
    return p;
}

static char *read_text(const char *path)
{
    size_t len;
    char *t = (char *)tu_read_file(path, &len);
    if (!t)
        fail_msg("cannot read %s", path);
    while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
        t[--len] = 0;
    return t;
}

static int setup(void **st)
{
    (void)st;
    if (!tu_have("ssh-keygen"))
        return -1;
    dir = tu_mkdtemp();
    for (size_t i = 0; i < NCASES; i++) {
        const char *base = path_of(cases[i].file, "");
        if (tu_system("ssh-keygen -q %s -N '' -C 'a comment' -f '%s' </dev/null >/dev/null", cases[i].keygen, base) ||
            tu_system("ssh-keygen -l -E sha256 -f '%s.pub' | cut -d' ' -f2 > '%s.sha256'", base, base) ||
            tu_system("ssh-keygen -l -E md5 -f '%s.pub' | cut -d' ' -f2 > '%s.md5'", base, base))
            return -1;
    }
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    tu_rmtree(dir);
    free(dir);
    return 0;
}

static shoal_key *load(const kcase *kc, int priv)
{
    shoal_key *k = NULL;
    if (priv) {
        assert_int_equal(shoal_key_load_private_file(path_of(kc->file, ""), NULL, &k), SHOAL_OK);
    } else {
        char *text = read_text(path_of(kc->file, ".pub"));
        assert_int_equal(shoal_key_from_public_text(text, strlen(text), &k), SHOAL_OK);
        free(text);
    }
    return k;
}

/* The blob round-trips, the text is what ssh-keygen wrote (with and
 * without the comment) and parses back to the same key. */
static void test_blob_and_text(void **st)
{
    (void)st;
    for (size_t i = 0; i < NCASES; i++) {
        shoal_key *pub = load(&cases[i], 0), *priv = load(&cases[i], 1);
        uint8_t *blob = NULL, *blob2 = NULL;
        size_t len = 0, len2 = 0;
        assert_int_equal(shoal_key_public_blob(pub, &blob, &len), SHOAL_OK);
        assert_int_equal(shoal_key_public_blob(priv, &blob2, &len2), SHOAL_OK);
        assert_int_equal(len, len2);
        assert_memory_equal(blob, blob2, len);
        shoal_key *back = NULL;
        assert_int_equal(shoal_key_from_blob(blob, len, &back), SHOAL_OK);
        assert_true(shoal_key_equal_public(back, pub));
        shoal_key_free(back);
        free(blob);
        free(blob2);

        char *want = read_text(path_of(cases[i].file, ".pub"));
        char *text = NULL;
        assert_int_equal(shoal_key_public_text(priv, "a comment", &text), SHOAL_OK);
        assert_string_equal(text, want);
        free(text);
        assert_int_equal(shoal_key_public_text(pub, NULL, &text), SHOAL_OK);
        assert_int_equal(strlen(text), strlen(want) - strlen(" a comment"));
        assert_memory_equal(text, want, strlen(text));
        assert_int_equal(shoal_key_from_public_text(text, strlen(text), &back), SHOAL_OK);
        assert_true(shoal_key_equal_public(back, pub));
        shoal_key_free(back);
        free(text);
        assert_int_equal(shoal_key_public_text(pub, "", &text), SHOAL_OK);
        assert_null(strchr(text + strlen(text) - 1, ' '));
        free(text);
        free(want);

        text = (char *)1;
        assert_int_equal(shoal_key_public_text(pub, "two\nlines", &text), SHOAL_ERR_INVALID_ARG);
        assert_null(text);
        assert_int_equal(shoal_key_public_text(NULL, NULL, &text), SHOAL_ERR_INVALID_ARG);
        assert_int_equal(shoal_key_public_text(pub, NULL, NULL), SHOAL_ERR_INVALID_ARG);
        assert_int_equal(shoal_key_public_blob(NULL, &blob, &len), SHOAL_ERR_INVALID_ARG);
        assert_null(blob);
        assert_int_equal(shoal_key_public_blob(pub, &blob, NULL), SHOAL_ERR_INVALID_ARG);
        shoal_key_free(pub);
        shoal_key_free(priv);
    }
}

static void test_fingerprints_and_names(void **st)
{
    (void)st;
    for (size_t i = 0; i < NCASES; i++) {
        shoal_key *pub = load(&cases[i], 0);
        char *sha = read_text(path_of(cases[i].file, ".sha256"));
        char *md5 = read_text(path_of(cases[i].file, ".md5"));
        char fp[64];
        assert_int_equal(shoal_key_fingerprint(pub, fp, sizeof(fp)), SHOAL_OK);
        assert_string_equal(fp, sha);
        assert_int_equal(shoal_key_fingerprint_md5(pub, fp, sizeof(fp)), SHOAL_OK);
        assert_string_equal(fp, md5);
        assert_int_equal(strlen(fp), 51);
        assert_int_equal(shoal_key_fingerprint_md5(pub, fp, 51), SHOAL_ERR_TOO_LARGE);
        assert_string_equal(fp, "");
        assert_int_equal(shoal_key_fingerprint_md5(pub, fp, 52), SHOAL_OK);
        assert_int_equal(shoal_key_fingerprint_md5(NULL, fp, sizeof(fp)), SHOAL_ERR_INVALID_ARG);
        assert_string_equal(shoal_key_default_sigalg(pub), cases[i].sigalg);
        /* The algorithm name is the first word of the text. */
        char *text = NULL;
        assert_int_equal(shoal_key_public_text(pub, NULL, &text), SHOAL_OK);
        assert_int_equal(strncmp(text, shoal_key_type_name(pub), strlen(shoal_key_type_name(pub))), 0);
        free(text);
        free(sha);
        free(md5);
        shoal_key_free(pub);
    }
    assert_null(shoal_key_default_sigalg(NULL));
}

static void sign_one(const shoal_key *priv, const shoal_key *pub, const char *alg, const char *want_alg)
{
    static const uint8_t msg[] = "what a program signs";
    uint8_t *sig = NULL;
    size_t n = 0;
    assert_int_equal(shoal_key_sign_data(priv, alg, msg, sizeof(msg), &sig, &n), SHOAL_OK);
    assert_non_null(sig);
    /* string algorithm first */
    assert_true(n > 4 + strlen(want_alg));
    assert_int_equal(((size_t)sig[0] << 24 | (size_t)sig[1] << 16 | (size_t)sig[2] << 8 | sig[3]), strlen(want_alg));
    assert_memory_equal(sig + 4, want_alg, strlen(want_alg));
    assert_int_equal(shoal_key_verify(pub, want_alg, sig, n, msg, sizeof(msg)), SHOAL_OK);
    assert_int_equal(shoal_key_verify(priv, want_alg, sig, n, msg, sizeof(msg)), SHOAL_OK);
    int legacy = strcmp(want_alg, "ssh-rsa") == 0;
    assert_int_equal(shoal_key_verify(pub, NULL, sig, n, msg, sizeof(msg)), legacy ? SHOAL_ERR_SIGNATURE : SHOAL_OK);
    assert_int_equal(shoal_key_verify(pub, want_alg, sig, n, msg, sizeof(msg) - 1), SHOAL_ERR_SIGNATURE);
    sig[n - 1] ^= 1;
    assert_int_equal(shoal_key_verify(pub, want_alg, sig, n, msg, sizeof(msg)), SHOAL_ERR_SIGNATURE);
    assert_int_not_equal(shoal_key_verify(pub, want_alg, sig, n - 1, msg, sizeof(msg)), SHOAL_OK);
    free(sig);
}

static void test_sign_verify(void **st)
{
    (void)st;
    for (size_t i = 0; i < NCASES; i++) {
        shoal_key *pub = load(&cases[i], 0), *priv = load(&cases[i], 1);
        sign_one(priv, pub, NULL, cases[i].sigalg);
        if (!strcmp(cases[i].sigalg, "rsa-sha2-512")) {
            sign_one(priv, pub, "rsa-sha2-256", "rsa-sha2-256");
            sign_one(priv, pub, "rsa-sha2-512", "rsa-sha2-512");
            sign_one(priv, pub, "ssh-rsa", "ssh-rsa");
        } else {
            sign_one(priv, pub, cases[i].sigalg, cases[i].sigalg);
        }
        uint8_t *sig = (uint8_t *)1;
        size_t n = 0;
        assert_int_equal(shoal_key_sign_data(pub, NULL, (const uint8_t *)"x", 1, &sig, &n), SHOAL_ERR_INVALID_ARG);
        assert_null(sig);
        assert_int_equal(shoal_key_sign_data(priv, "ssh-dss", (const uint8_t *)"x", 1, &sig, &n),
                         SHOAL_ERR_UNSUPPORTED);
        assert_null(sig);
        assert_int_equal(shoal_key_sign_data(priv, NULL, (const uint8_t *)"x", 1, NULL, &n), SHOAL_ERR_INVALID_ARG);
        assert_int_equal(shoal_key_sign_data(priv, NULL, (const uint8_t *)"x", 1, &sig, NULL), SHOAL_ERR_INVALID_ARG);
        /* Empty data signs too. */
        assert_int_equal(shoal_key_sign_data(priv, NULL, NULL, 0, &sig, &n), SHOAL_OK);
        assert_int_equal(shoal_key_verify(pub, NULL, sig, n, NULL, 0), SHOAL_OK);
        free(sig);
        shoal_key_free(pub);
        shoal_key_free(priv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_and_text),
        cmocka_unit_test(test_fingerprints_and_names),
        cmocka_unit_test(test_sign_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
