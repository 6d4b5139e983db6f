/* Base64 (RFC 4648) over libcrypto's EVP encoder, with strict checking. */
#include <string.h>

#include <openssl/evp.h>

#include "keys/key.h"

int shoal_base64_decode(const char *in, size_t in_len, shoal_buf *out)
{
    /* Reject anything that is not the base64 alphabet (whitespace included:
     * callers split lines themselves), and accept missing padding. */
    char tmp[4];
    size_t pad = 0, n = 0;
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                     c == '/'))
            return SHOAL_ERR_BAD_FORMAT;
        n++;
    }
    if (pad > 2 || n % 4 == 1 || (pad && (n + pad) % 4 != 0))
        return SHOAL_ERR_BAD_FORMAT;
    size_t full = n / 4 * 4, rem = n - full;
    size_t want = full / 4 * 3 + (rem ? rem - 1 : 0);
    uint8_t *dst;
    size_t start = shoal_buf_len(out);
    int rc = shoal_buf_reserve(out, want + 3, &dst);
    if (rc)
        return rc;
    if (full > 0 && EVP_DecodeBlock(dst, (const unsigned char *)in, (int)full) < 0)
        goto bad;
    if (rem) {
        memcpy(tmp, in + full, rem);
        for (size_t i = rem; i < 4; i++)
            tmp[i] = '=';
        uint8_t last[3];
        if (EVP_DecodeBlock(last, (const unsigned char *)tmp, 4) < 0)
            goto bad;
        memcpy(dst + full / 4 * 3, last, rem - 1);
    }
    shoal_buf_truncate(out, start + want);
    return SHOAL_OK;
bad:
    shoal_buf_truncate(out, start);
    return SHOAL_ERR_BAD_FORMAT;
}

int shoal_base64_encode(const uint8_t *in, size_t len, char *out, size_t outsz, int pad)
{
    size_t need = (len + 2) / 3 * 4 + 1;
    if (outsz < need || len > (size_t)1 << 28)
        return SHOAL_ERR_TOO_LARGE;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    if (n < 0)
        return SHOAL_ERR_CRYPTO;
    if (!pad)
        while (n > 0 && out[n - 1] == '=')
            n--;
    out[n] = 0;
    return SHOAL_OK;
}
