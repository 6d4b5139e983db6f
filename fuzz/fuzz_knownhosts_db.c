/* Fuzzes the in-memory known_hosts database differentially: the input is
 * one known_hosts file, loaded with shoal_kh_db_open and looked up for a
 * few host/port/key combinations; every answer must equal the file
 * checker's (shoal_knownhosts_check_buf) on the same text, or the target
 * traps. Then a key is added (memory only) and must be found. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/knownhosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void remove_input(void)
{
    unlink(g_path);
}

/* The database reads files: the input goes to one temporary file per
 * process, removed at exit. */
static int write_input(const uint8_t *data, size_t size)
{
    if (!g_path[0]) {
        snprintf(g_path, sizeof(g_path), "/tmp/shoal-fuzz-khdb-%ld", (long)getpid());
        atexit(remove_input);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f)
        return -1;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    return (fclose(f) == 0 && w == size) ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The same all-'A' ed25519 blob as fuzz_knownhosts.c, and a second one. */
    static const uint8_t blob[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32,
                                   0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0,
                                   0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0};
    static const struct {
        const char *host;
        unsigned port;
        const char *type;
        size_t bloblen;
    } q[] = {{"example.com", 22, "ssh-ed25519", sizeof(blob)},
             {"example.com", 2222, "ssh-ed25519", sizeof(blob)},
             {"a.b.example.org", 22, "ssh-ed25519", sizeof(blob)},
             {"192.0.2.1", 0, "ssh-ed25519", sizeof(blob)},
             {"Example.COM", 22, "ecdsa-sha2-nistp256", sizeof(blob)},
             {"example.com", 22, "ssh-ed25519", 0}};
    if (!data)
        data = (const uint8_t *)"";
    if (size > (1u << 20) || write_input(data, size) != 0)
        return 0;
    const char *files[1] = {g_path};
    shoal_kh_db *db = NULL;
    if (shoal_kh_db_open(files, 1, &db) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        shoal_kh_result want, got;
        const char *file = NULL;
        int rw = shoal_knownhosts_check_buf((const char *)data, size, q[i].host, q[i].port, q[i].type, blob,
                                            q[i].bloblen, &want);
        int rg = shoal_kh_db_check(db, q[i].host, q[i].port, q[i].type, blob, q[i].bloblen, &got, &file);
        if (rw != rg)
            __builtin_trap();
        if (rw == 0 && (want.status != got.status || want.line != got.line ||
                        strcmp(want.keytype, got.keytype) != 0 || (want.status != SHOAL_KH_NOT_FOUND) != (file != NULL)))
            __builtin_trap();
    }
    int known[2];
    const char *types[2] = {"ssh-ed25519", "ecdsa-sha2-nistp256"};
    shoal_kh_db_known_types(db, "example.com", 22, types, 2, known);
    shoal_kh_db_free(db);

    /* Adding to a memory-only database: found afterwards, unless revoked. */
    if (shoal_kh_db_open(NULL, 0, &db) == 0) {
        shoal_kh_result r;
        if (shoal_kh_db_add(db, "new.example.com", 2222, "ssh-ed25519", blob, sizeof(blob), 1) != 0 ||
            shoal_kh_db_check(db, "new.example.com", 2222, "ssh-ed25519", blob, sizeof(blob), &r, NULL) != 0 ||
            r.status != SHOAL_KH_MATCH)
            __builtin_trap();
        shoal_kh_db_free(db);
    }
    return 0;
}
