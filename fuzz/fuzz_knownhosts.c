/* Fuzzes the known_hosts parser: the input is a whole known_hosts buffer,
 * looked up for a few host/port combinations with a fixed key, and its first
 * line is also fed to the pattern matcher as a hosts field. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/knownhosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Any fixed blob works: the interesting code is the scanning, and a seed
     * that contains its base64 ("AAAAC3NzaC1lZDI1NTE5AAAAIA...") reaches the
     * comparison paths. This is an ssh-ed25519 blob with an all-'A' key. */
    static const uint8_t blob[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32,
                                   0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0,
                                   0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0};
    static const struct {
        const char *host;
        unsigned port;
    } q[] = {{"example.com", 22}, {"example.com", 2222}, {"a.b.example.org", 22}, {"192.0.2.1", 0}};
    if (!data)
        data = (const uint8_t *)"";
    shoal_kh_result res;
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
        shoal_knownhosts_check_buf((const char *)data, size, q[i].host, q[i].port, "ssh-ed25519", blob,
                                   sizeof(blob), &res);

    /* First line (up to the first space) as a hosts field. */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl ? (size_t)(nl - data) : size;
    const uint8_t *sp = memchr(data, ' ', line);
    size_t field = sp ? (size_t)(sp - data) : line;
    shoal_knownhosts_match_patterns((const char *)data, field, "example.com");
    shoal_knownhosts_match_patterns((const char *)data, field, "[example.com]:2222");
    /* The rest of the first line, NUL-terminated, as the host being matched. */
    if (line > field) {
        char *h = malloc(line - field);
        if (h) {
            memcpy(h, data + field + 1, line - field - 1);
            h[line - field - 1] = 0;
            shoal_knownhosts_match_patterns((const char *)data, field, h);
            free(h);
        }
    }
    return 0;
}
