/* The public key calls that hand out plain memory (include/shoal/keys.h):
 * the blob, the one-line text, the MD5 fingerprint, signing into a malloc'd
 * blob. Programs use these instead of the shoal_buf based internal calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "keys/key_internal.h"

int shoal_key_public_blob(const shoal_key *key, uint8_t **out, size_t *len)
{
    if (out)
        *out = NULL;
    if (!key || !out || !len)
        return SHOAL_ERR_INVALID_ARG;
    uint8_t *copy = malloc(key->blob_len);
    if (!copy)
        return SHOAL_ERR_NOMEM;
    memcpy(copy, key->blob, key->blob_len);
    *out = copy;
    *len = key->blob_len;
    return SHOAL_OK;
}

int shoal_key_public_text(const shoal_key *key, const char *comment, char **out)
{
    if (out)
        *out = NULL;
    if (!key || !out || (comment && strpbrk(comment, "\r\n")))
        return SHOAL_ERR_INVALID_ARG;
    if (!comment)
        comment = "";
    const char *type = shoal_keytype_name(key->type);
    size_t b64_room = (key->blob_len + 2) / 3 * 4 + 1;
    size_t room = strlen(type) + 1 + b64_room + 1 + strlen(comment) + 1;
    char *text = malloc(room);
    if (!text)
        return SHOAL_ERR_NOMEM;
    size_t n = (size_t)snprintf(text, room, "%s ", type);
    int rc = shoal_base64_encode(key->blob, key->blob_len, text + n, room - n, 1);
    if (rc) {
        free(text);
        return rc;
    }
    if (*comment) {
        n = strlen(text);
        snprintf(text + n, room - n, " %s", comment);
    }
    *out = text;
    return SHOAL_OK;
}

int shoal_key_fingerprint_md5(const shoal_key *key, char *out, size_t outsz)
{
    static const char prefix[] = "MD5:";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!key || !out)
        return SHOAL_ERR_INVALID_ARG;
    if (outsz)
        out[0] = 0;
    EVP_MD *alg = EVP_MD_fetch(NULL, "MD5", NULL);
    int ok = alg && EVP_Digest(key->blob, key->blob_len, md, &mdlen, alg, NULL) == 1 && mdlen == 16;
    EVP_MD_free(alg);
    ERR_clear_error();
    if (!ok)
        return SHOAL_ERR_CRYPTO; /* e.g. a FIPS-only libcrypto without MD5 */
    if (outsz < sizeof(prefix) - 1 + 16 * 3)
        return SHOAL_ERR_TOO_LARGE;
    memcpy(out, prefix, sizeof(prefix) - 1);
    char *p = out + sizeof(prefix) - 1;
    for (unsigned i = 0; i < 16; i++)
        p += snprintf(p, 4, i ? ":%02x" : "%02x", md[i]);
    return SHOAL_OK;
}

const char *shoal_key_default_sigalg(const shoal_key *key)
{
    if (!key)
        return NULL;
    return key->type == SHOAL_KEY_RSA ? "rsa-sha2-512" : shoal_keytype_name(key->type);
}

int shoal_key_sign_data(const shoal_key *key, const char *sigalg, const uint8_t *data, size_t data_len,
                        uint8_t **sig, size_t *sig_len)
{
    if (sig)
        *sig = NULL;
    if (!sig || !sig_len)
        return SHOAL_ERR_INVALID_ARG;
    shoal_buf b;
    shoal_buf_init(&b, SHOAL_KEY_MAX_BLOB);
    int rc = shoal_key_sign(key, sigalg, data, data_len, &b);
    if (!rc) {
        uint8_t *copy = malloc(shoal_buf_len(&b));
        if (copy) {
            memcpy(copy, shoal_buf_ptr(&b), shoal_buf_len(&b));
            *sig = copy;
            *sig_len = shoal_buf_len(&b);
        } else {
            rc = SHOAL_ERR_NOMEM;
        }
    }
    shoal_buf_free(&b);
    return rc;
}
