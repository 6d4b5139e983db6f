/* Versioned options structs: see abi.h. */
#include "abi.h"

#include <string.h>

#include "shoal/error.h"

void shoal__struct_init(void *p, size_t size)
{
    memset(p, 0, size);
    memcpy(p, &size, sizeof(size));
}

int shoal__struct_copy(void *dst, size_t dst_size, const void *src)
{
    shoal__struct_init(dst, dst_size);
    if (!src)
        return SHOAL_ERR_INVALID_ARG;
    size_t n;
    memcpy(&n, src, sizeof(n));
    if (n < sizeof(n))
        return SHOAL_ERR_INVALID_ARG;
    if (n > dst_size)
        n = dst_size;
    /* Everything after the size member, as far as both know it. */
    memcpy((char *)dst + sizeof(n), (const char *)src + sizeof(n), n - sizeof(n));
    return SHOAL_OK;
}

int shoal__struct_copy_opt(void *dst, size_t dst_size, const void *src)
{
    if (!src) {
        shoal__struct_init(dst, dst_size);
        return SHOAL_OK;
    }
    return shoal__struct_copy(dst, dst_size, src);
}

/* The public init functions of the core's structs (driver structs:
 * src/uv/struct_init.c). */
#include "shoal/server.h"
#include "shoal/sftp.h"

SHOAL__INIT_FN(shoal_client_config)
SHOAL__INIT_FN(shoal_client_callbacks)
SHOAL__INIT_FN(shoal_server_config)
SHOAL__INIT_FN(shoal_server_callbacks)
SHOAL__INIT_FN(shoal_server_channel_callbacks)
SHOAL__INIT_FN(shoal_channel_callbacks)
SHOAL__INIT_FN(shoal_sftp_callbacks)
SHOAL__INIT_FN(shoal_sftp_put_callbacks)
SHOAL__INIT_FN(shoal_sftp_put_options)
