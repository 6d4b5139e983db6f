/* The library's version, as its build's include/shoal/version.h says. */
#include "shoal/version.h"

const char *shoal_version(void)
{
    return SHOAL_VERSION_STRING;
}
