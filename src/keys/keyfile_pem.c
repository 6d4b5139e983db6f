/* PEM private keys through libcrypto: PKCS#8 ("PRIVATE KEY", "ENCRYPTED
 * PRIVATE KEY") and the traditional "RSA/EC PRIVATE KEY" forms, possibly
 * encrypted with a "Proc-Type: 4,ENCRYPTED" header. The passphrase callback
 * records whether libcrypto asked for a passphrase, which tells an
 * encrypted key (SHOAL_ERR_KEY_ENCRYPTED without a passphrase,
 * SHOAL_ERR_BAD_PASSPHRASE with a wrong one) from a malformed one. */
#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keys/key_internal.h"

#define PEM_BEGIN "-----BEGIN "
#define PEM_END "-----END "

typedef struct pw_state {
    const char *pass;
    int asked;
} pw_state;

static int pw_cb(char *buf, int size, int rwflag, void *u)
{
    pw_state *st = u;
    (void)rwflag;
    st->asked = 1;
    if (!st->pass)
        return -1;
    size_t n = strlen(st->pass);
    if (size < 0 || n > (size_t)size)
        return -1;
    memcpy(buf, st->pass, n);
    return (int)n;
}

/* Finds the first "-----BEGIN <label>-----" whose label ends in
 * "PRIVATE KEY"; returns the label start and sets *label_len. */
static const uint8_t *find_private_begin(const uint8_t *data, size_t len, size_t *label_len)
{
    const uint8_t *p = data, *end = data + len;
    while ((p = memmem(p, (size_t)(end - p), PEM_BEGIN, strlen(PEM_BEGIN))) != NULL) {
        const uint8_t *label = p + strlen(PEM_BEGIN);
        const uint8_t *eol = memchr(label, '\n', (size_t)(end - label));
        const uint8_t *stop = eol ? eol : end;
        const uint8_t *dash = memmem(label, (size_t)(stop - label), "-----", 5);
        if (dash && (size_t)(dash - label) >= 11 && memcmp(dash - 11, "PRIVATE KEY", 11) == 0) {
            *label_len = (size_t)(dash - label);
            return label;
        }
        p = label;
    }
    return NULL;
}

int shoal_keyfile_pem_is_encrypted(const uint8_t *data, size_t len)
{
    size_t llen;
    const uint8_t *label = find_private_begin(data, len, &llen);
    if (!label)
        return SHOAL_ERR_NOT_FOUND;
    if (llen == strlen("ENCRYPTED PRIVATE KEY") && memcmp(label, "ENCRYPTED PRIVATE KEY", llen) == 0)
        return 1;
    /* Traditional form: RFC 1421 headers before the base64. */
    const uint8_t *end = data + len;
    const uint8_t *stop = memmem(label, (size_t)(end - label), PEM_END, strlen(PEM_END));
    if (!stop)
        return SHOAL_ERR_BAD_FORMAT;
    static const char proc[] = "Proc-Type: 4,ENCRYPTED";
    return memmem(label, (size_t)(stop - label), proc, strlen(proc)) ? 1 : 0;
}

int shoal_keyfile_pem_load(const uint8_t *data, size_t len, const char *passphrase, shoal_key **out)
{
    size_t llen;
    if (!find_private_begin(data, len, &llen))
        return SHOAL_ERR_NOT_FOUND;
    if (len > INT_MAX)
        return SHOAL_ERR_TOO_LARGE;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio)
        return SHOAL_ERR_NOMEM;
    pw_state st = {passphrase, 0};
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, pw_cb, &st);
    BIO_free(bio);
    ERR_clear_error();
    if (!pkey) {
        if (st.asked)
            return passphrase ? SHOAL_ERR_BAD_PASSPHRASE : SHOAL_ERR_KEY_ENCRYPTED;
        return SHOAL_ERR_BAD_FORMAT;
    }
    shoal_keytype type = shoal_key_type_of_pkey(pkey);
    if (type == SHOAL_KEY_UNKNOWN) {
        EVP_PKEY_free(pkey);
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (type != SHOAL_KEY_ED25519 && type != SHOAL_KEY_RSA) {
        /* EC: the stored public point must belong to the private scalar.
         * (RSA's pairwise check runs primality tests: too costly for
         * 16k-bit keys; a bad RSA key only yields bad signatures.) */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int ok = ctx && EVP_PKEY_pairwise_check(ctx) == 1;
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        if (!ok) {
            EVP_PKEY_free(pkey);
            return SHOAL_ERR_BAD_FORMAT;
        }
    }
    return shoal_key_from_pkey(pkey, type, 1, out);
}
