/* Prints the version libshoal.so reports, and checks it against the
 * version.h macros the program was compiled with (packaging.version). */
#include <stdio.h>
#include <string.h>

#include "shoal/version.h"

int main(void)
{
    char macros[32];
    snprintf(macros, sizeof(macros), "%d.%d.%d", SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR, SHOAL_VERSION_PATCH);
    if (strcmp(macros, SHOAL_VERSION_STRING) != 0 || strcmp(shoal_version(), SHOAL_VERSION_STRING) != 0) {
        fprintf(stderr, "version mismatch: macros %s, string %s, shoal_version() %s\n", macros,
                SHOAL_VERSION_STRING, shoal_version());
        return 1;
    }
    printf("%s\n", shoal_version());
    return 0;
}
