/* Private key files: format detection and file reading. The formats
 * themselves are in keyfile_openssh.c and keyfile_pem.c. */
#include <stdio.h>
#include <stdlib.h>

#include "keys/key_internal.h"

int shoal_key_load_private(const uint8_t *data, size_t len, const char *passphrase, shoal_key **out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!data)
        return len ? SHOAL_ERR_INVALID_ARG : SHOAL_ERR_BAD_FORMAT;
    if (len > SHOAL_KEYFILE_MAX)
        return SHOAL_ERR_TOO_LARGE;
    int rc = shoal_keyfile_openssh_load(data, len, passphrase, out);
    if (rc == SHOAL_ERR_NOT_FOUND)
        rc = shoal_keyfile_pem_load(data, len, passphrase, out);
    return rc == SHOAL_ERR_NOT_FOUND ? SHOAL_ERR_BAD_FORMAT : rc;
}

int shoal_key_file_is_encrypted(const uint8_t *data, size_t len)
{
    if (!data)
        return len ? SHOAL_ERR_INVALID_ARG : SHOAL_ERR_BAD_FORMAT;
    if (len > SHOAL_KEYFILE_MAX)
        return SHOAL_ERR_TOO_LARGE;
    int rc = shoal_keyfile_openssh_is_encrypted(data, len);
    if (rc == SHOAL_ERR_NOT_FOUND)
        rc = shoal_keyfile_pem_is_encrypted(data, len);
    return rc == SHOAL_ERR_NOT_FOUND ? SHOAL_ERR_BAD_FORMAT : rc;
}

int shoal_key_load_private_file(const char *path, const char *passphrase, shoal_key **out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (!path)
        return SHOAL_ERR_INVALID_ARG;
    FILE *f = fopen(path, "rb");
    if (!f)
        return SHOAL_ERR_IO;
    /* One byte more than the cap tells "too large" from "exactly the cap". */
    uint8_t *buf = malloc(SHOAL_KEYFILE_MAX + 1);
    size_t len = 0, n;
    int rc = SHOAL_OK;
    if (!buf)
        rc = SHOAL_ERR_NOMEM;
    while (!rc && len <= SHOAL_KEYFILE_MAX && (n = fread(buf + len, 1, SHOAL_KEYFILE_MAX + 1 - len, f)) > 0)
        len += n;
    if (!rc && ferror(f))
        rc = SHOAL_ERR_IO;
    fclose(f);
    if (!rc)
        rc = len > SHOAL_KEYFILE_MAX ? SHOAL_ERR_TOO_LARGE : shoal_key_load_private(buf, len, passphrase, out);
    if (buf) {
        shoal_wipe(buf, len);
        free(buf);
    }
    return rc;
}
