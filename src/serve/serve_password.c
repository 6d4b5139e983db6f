/* "shoal serve": the PasswordFile check, with the same work whoever asks.
 *
 * Timing must not tell which accounts exist: a user with no entry (or no
 * account, or a locked or empty entry) gets exactly one hash computation,
 * like a user with one, against a setting of the same algorithm and cost
 * (the file's first usable entry; a built-in SHA-512 crypt setting when the
 * file has none). The whole file is read and scanned every time, and the
 * result is compared in constant time. The hashing itself is the caller's
 * (crypt(3) lives in the application, not in the core). */
#include "shoal/serveconfig.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "uv/files.h"

/* Entries that can never match: empty, or locked ("*...", "!..."). */
static int sp_usable(const char *hash, size_t n)
{
    return n > 0 && hash[0] != '*' && hash[0] != '!';
}

int shoal_serve_password_check(const char *path, const char *user, int account_ok, const char *password,
                               shoal_serve_hash_fn hash, void *ud)
{
    if (!hash)
        return SHOAL_ERR_INVALID_ARG;
    char *data = NULL;
    size_t len = 0;
    if (!path || shoal_read_file_capped(path, SHOAL_SERVE_MAX_PASSWORD_FILE, &data, &len, NULL) != 0)
        data = NULL, len = 0;
    size_t ul = user ? strlen(user) : 0;
    /* One pass over every line, whatever is found on the way. */
    const char *mine = NULL, *first = NULL;
    size_t mine_len = 0, first_len = 0;
    for (size_t off = 0; off < len;) {
        const char *line = data + off;
        const char *nl = memchr(line, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - line) : len - off;
        off += ll + 1;
        if (ll && line[ll - 1] == '\r')
            ll--;
        const char *colon = memchr(line, ':', ll);
        if (!colon)
            continue;
        const char *h = colon + 1;
        size_t hl = ll - (size_t)(h - line);
        int usable = sp_usable(h, hl);
        if (usable && !first) {
            first = h;
            first_len = hl;
        }
        if (!mine && account_ok && ul && (size_t)(colon - line) == ul && memcmp(line, user, ul) == 0) {
            mine = h;
            mine_len = hl;
        }
    }
    int have = mine && sp_usable(mine, mine_len);
    const char *src = have ? mine : first;
    size_t src_len = have ? mine_len : first_len;
    char *setting = src ? strndup(src, src_len) : strdup(SHOAL_SERVE_DUMMY_SETTING);
    int ok = 0;
    if (setting) {
        const char *got = hash(password ? password : "", setting, ud);
        size_t sl = strlen(setting);
        /* Compared even for the dummy, so that path costs the same too. */
        int same = got && *got != '*' && strlen(got) == sl && CRYPTO_memcmp(got, setting, sl) == 0;
        ok = have && same;
        OPENSSL_cleanse(setting, sl);
        free(setting);
    }
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return ok;
}
