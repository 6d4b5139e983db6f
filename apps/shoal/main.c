/* shoal: command-line entry point. */
#include <stdio.h>
#include <string.h>

#include "shoal/error.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: shoal exec [options] [user@]host command...\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "shoal: unknown command '%s'\n", argv[1]);
    return 2;
}
