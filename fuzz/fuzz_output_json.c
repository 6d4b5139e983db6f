/* Fuzz target: remote command output turned into agent JSON lines
 * (apps/shoal/fanout/replyjson.c). Output bytes come from the network, so the
 * UTF-8 sanitizer and the base64 encoder must accept anything and always
 * produce JSON that parses back: valid UTF-8 (without NUL) unchanged,
 * anything else with U+FFFD, base64 decoding to the exact bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../apps/shoal/fanout/replyjson.c"

/* replyjson_reply names failure classes; not exercised here. */
const char *shoal_fleet_class_name(shoal_fleet_class c)
{
    (void)c;
    return "?";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    json_t *s = replyjson_text(data, size);
    if (!s)
        abort();
    /* Valid UTF-8 without NUL comes through unchanged. */
    size_t i = 0;
    while (i < size) {
        size_t l = utf8_seq(data + i, size - i);
        if (!l)
            break;
        i += l;
    }
    if (i == size && (json_string_length(s) != size || memcmp(json_string_value(s), data, size) != 0))
        abort();
    json_t *arr = json_pack("[o, o]", s, replyjson_base64(data, size));
    char *text = json_dumps(arr, JSON_COMPACT);
    if (!text)
        abort();
    json_error_t err;
    json_t *back = json_loads(text, 0, &err);
    if (!back || !json_is_array(back))
        abort();
    const char *b64 = json_string_value(json_array_get(back, 1));
    size_t blen = strlen(b64);
    unsigned char *dec = malloc(blen + 1);
    int n = blen ? EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)blen) : 0;
    if (n < 0)
        abort();
    /* EVP_DecodeBlock counts padding bytes as zeros. */
    size_t pad = blen >= 2 && b64[blen - 1] == '=' ? (b64[blen - 2] == '=' ? 2 : 1) : 0;
    if ((size_t)n - pad != size || memcmp(dec, data, size) != 0)
        abort();
    free(dec);
    free(text);
    json_decref(back);
    json_decref(arr);
    return 0;
}
