/* Error code to text. */
#include "shoal/error.h"

const char *shoal_strerror(int err)
{
    switch (err) {
    case SHOAL_OK:
        return "success";
#define SHOAL__ERR_CASE(name, val, msg) \
    case SHOAL_ERR_##name:               \
        return msg;
        SHOAL_ERRNO_MAP(SHOAL__ERR_CASE)
#undef SHOAL__ERR_CASE
    }
    return "unknown error";
}

const char *shoal_errname(int err)
{
    switch (err) {
    case SHOAL_OK:
        return "SHOAL_OK";
#define SHOAL__ERR_NAME(name, val, msg) \
    case SHOAL_ERR_##name:               \
        return "SHOAL_ERR_" #name;
        SHOAL_ERRNO_MAP(SHOAL__ERR_NAME)
#undef SHOAL__ERR_NAME
    }
    return "SHOAL_ERR_UNKNOWN";
}
