/* Reading files, for the core's parsers that take memory: the core never
 * opens a file (hygiene.core_is_sans_io), the driver tier does it here and
 * hands the bytes over. Public calls declared in include/shoal/keys.h and
 * include/shoal/authkeys.h; shoal_read_file_capped in uv/files.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/key_internal.h"
#include "shoal/authkeys.h"
#include "uv/files.h"

int shoal_read_file_capped(const char *path, size_t max, char **data, size_t *len, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *data = NULL;
    *len = 0;
    *why = NULL;
    if (!path || !*path) {
        *why = "empty path";
        return SHOAL_ERR_INVALID_ARG;
    }
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; the type check
     * below then refuses it before any read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        *why = strerror(e);
        return (e == ENOENT || e == ENOTDIR) ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *why = strerror(errno);
        close(fd);
        return SHOAL_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        close(fd);
        return SHOAL_ERR_IO;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        *why = "file too large";
        close(fd);
        return SHOAL_ERR_TOO_LARGE;
    }
    /* Read to EOF with the cap enforced on the bytes actually read: the
     * file may grow between fstat and read. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap + 1);
    int rc = SHOAL_OK;
    if (!b) {
        close(fd);
        return SHOAL_ERR_NOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                *why = "file too large";
                rc = SHOAL_ERR_TOO_LARGE;
                break;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                rc = SHOAL_ERR_NOMEM;
                break;
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *why = strerror(errno);
            rc = SHOAL_ERR_IO;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc == SHOAL_OK && n > max) {
        *why = "file too large";
        rc = SHOAL_ERR_TOO_LARGE;
    }
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = 0;
    *data = b;
    *len = n;
    return SHOAL_OK;
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

int shoal_authkeys_find_file(const char *path, const shoal_key *key, const shoal_authkeys_peer *peer,
                             shoal_authkey_opts *opts, shoal_authkeys_result *res)
{
    if (res)
        memset(res, 0, sizeof(*res));
    if (opts)
        shoal_authkey_opts_init(opts);
    if (!path || !key || !peer || !opts)
        return SHOAL_ERR_INVALID_ARG;
    char *data;
    size_t len;
    int rc = shoal_read_file_capped(path, SHOAL_AUTHKEYS_MAX_FILE, &data, &len, NULL);
    if (rc == SHOAL_ERR_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    rc = shoal_authkeys_find(data, len, key, peer, opts, res);
    free(data);
    return rc;
}
