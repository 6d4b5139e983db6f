/* Private key files: format detection (reading the file is the driver's,
 * src/uv/files.c). The formats themselves are in keyfile_openssh.c and
 * keyfile_pem.c. */
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

