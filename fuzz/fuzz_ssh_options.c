/* Fuzzes the "-o Keyword=value" parser (src/config/ssh_options.c). The
 * input is a list of options, one a line (an embedded NUL ends a line
 * early), applied in order to one shoal_ssh_options as `shoal exec -o ...
 * -o ...` would; the struct is then freed.
 *
 * `-o` values come from users, scripts and inventory files: beyond crashes
 * and leaks it checks what the options promise:
 *  - every call returns 0 or a negative error, with a NUL-terminated
 *    message when it fails;
 *  - a resolved algorithm list is non-empty and names only algorithms we
 *    implement (no modifier may smuggle in an unknown name);
 *  - counted fields stay within their arrays, numbers within their ranges;
 *  - each line applied alone to fresh options gives the time and size
 *    values a small reference parser (below, written from ssh_config(5):
 *    digits, then a unit; overflow and signs refused) computes from the
 *    same value: ConnectTimeout, ServerAliveInterval, RekeyLimit. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/cipher.h"
#include "crypto/kex.h"
#include "keys/key.h"
#include "shoal/config.h"
#include "wire/buf.h"
#include "wire/match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when every name of list is in all, and list has at least one. */
static int names_supported(const char *list, const char *all)
{
    const char *cur = list, *end = list + strlen(list), *nm;
    size_t l;
    int n = 0;
    while (shoal_namelist_next(&cur, end, &nm, &l)) {
        const char *c2 = all, *e2 = all + strlen(all), *n2;
        size_t l2;
        int found = 0;
        while (!found && shoal_namelist_next(&c2, e2, &n2, &l2))
            found = l == l2 && memcmp(nm, n2, l) == 0;
        if (!found)
            return 0;
        n++;
    }
    return n > 0;
}

static void check_struct(const shoal_ssh_options *o)
{
    if (o->port > 65535 || o->n_identity_files > SHOAL_OPT_MAX_FILES ||
        o->n_user_known_hosts > SHOAL_OPT_MAX_FILES || o->n_global_known_hosts > SHOAL_OPT_MAX_FILES)
        abort();
    for (unsigned i = 0; i < o->n_identity_files; i++)
        if (!o->identity_files[i])
            abort();
    if ((o->kex && !names_supported(o->kex, SHOAL_KEX_ALL)) ||
        (o->ciphers && !names_supported(o->ciphers, SHOAL_CIPHERS_ALL)) ||
        (o->macs && !names_supported(o->macs, SHOAL_MACS_ALL)) ||
        (o->hostkey_algs && !names_supported(o->hostkey_algs, SHOAL_HOSTKEY_ALGS_ALL)))
        abort();
    if (o->connect_timeout_s < -1 || o->connect_timeout_s > 86400 || o->server_alive_interval_s < -1 ||
        o->server_alive_interval_s > 86400 || o->server_alive_count_max < -1 || o->server_alive_count_max > 1000 ||
        o->connection_attempts < -1 || o->connection_attempts > 100 || o->log_level < -1 || o->log_level > 3)
        abort();
    if ((o->rekey_bytes && o->rekey_bytes < 16) || o->rekey_seconds > INT32_MAX)
        abort();
}

/* ---- the reference: ssh_config(5) times and sizes ---- */

/* "30", "30s", "5m", "1h30m", "1w": digits then an optional unit, repeated;
 * the sum must not overflow. -1 when not a time. */
static int64_t ref_time(const char *v)
{
    uint64_t total = 0;
    if (!*v)
        return -1;
    while (*v) {
        if (!isdigit((unsigned char)*v))
            return -1;
        uint64_t n = 0;
        while (isdigit((unsigned char)*v)) {
            if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t)(*v - '0'), &n))
                return -1;
            v++;
        }
        uint64_t mul = 1;
        switch (tolower((unsigned char)*v)) {
        case 0:
            break;
        case 's':
            v++;
            break;
        case 'm':
            mul = 60, v++;
            break;
        case 'h':
            mul = 3600, v++;
            break;
        case 'd':
            mul = 86400, v++;
            break;
        case 'w':
            mul = 604800, v++;
            break;
        default:
            return -1;
        }
        if (__builtin_mul_overflow(n, mul, &n) || __builtin_add_overflow(total, n, &total) || total > INT64_MAX)
            return -1;
    }
    return (int64_t)total;
}

/* "123", "10K", "5M", "1G": digits, an optional unit; 0 when not a size. */
static uint64_t ref_size(const char *v)
{
    uint64_t n = 0;
    if (!isdigit((unsigned char)*v))
        return 0;
    while (isdigit((unsigned char)*v)) {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t)(*v - '0'), &n))
            return 0;
        v++;
    }
    uint64_t mul = 1;
    switch (toupper((unsigned char)*v)) {
    case 0:
        break;
    case 'K':
        mul = 1024, v++;
        break;
    case 'M':
        mul = 1024 * 1024, v++;
        break;
    case 'G':
        mul = 1024ull * 1024 * 1024, v++;
        break;
    default:
        return 0;
    }
    if (*v || __builtin_mul_overflow(n, mul, &n))
        return 0;
    return n;
}

/* Splits "Keyword=value" / "Keyword value" as ssh_config(5) does: spaces
 * around, one '=' or blanks between, double quotes around the value. The
 * results point into buf (modified). 0 when there is no keyword or value. */
static int split_option(char *buf, char **key, char **val)
{
    char *k = buf;
    while (isspace((unsigned char)*k))
        k++;
    char *v = k + strcspn(k, "= \t");
    if (*v) {
        *v++ = 0;
        while (*v == ' ' || *v == '\t' || *v == '=')
            v++;
    }
    size_t vl = strlen(v);
    while (vl && isspace((unsigned char)v[vl - 1]))
        v[--vl] = 0;
    if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
        v[vl - 1] = 0;
        v++;
    }
    *key = k;
    *val = v;
    return *k && *v;
}

/* Applies one line alone and compares the numbers with the reference. */
static void check_alone(const char *line)
{
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    char err[256];
    int rc = shoal_ssh_options_apply(&o, line, err, sizeof(err));
    char *buf = strdup(line), *k, *v;
    if (!buf)
        abort();
    if (split_option(buf, &k, &v)) {
        int64_t t;
        if (!strcasecmp(k, "ConnectTimeout") || !strcasecmp(k, "ServerAliveInterval")) {
            t = ref_time(v);
            int64_t got = !strcasecmp(k, "ConnectTimeout") ? o.connect_timeout_s : o.server_alive_interval_s;
            if (t < 0 || t > 86400 ? rc == 0 : (rc != 0 || got != t))
                abort();
        } else if (!strcasecmp(k, "RekeyLimit")) {
            char *w = v + strcspn(v, " \t");
            if (*w) {
                *w++ = 0;
                while (*w == ' ' || *w == '\t')
                    w++;
            }
            int size_ok = !strcasecmp(v, "default") || ref_size(v) >= 16;
            t = *w && strcasecmp(w, "none") ? ref_time(w) : -2;
            int time_ok = t == -2 || (t > 0 && t <= INT32_MAX);
            if (!size_ok || !time_ok ? rc == 0 : rc != 0)
                abort();
            if (rc == 0 && strcasecmp(v, "default") && o.rekey_bytes != ref_size(v))
                abort();
            if (rc == 0 && t > 0 && o.rekey_seconds != (uint64_t)t)
                abort();
        }
    }
    free(buf);
    check_struct(&o);
    shoal_ssh_options_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        char *line = malloc(len + 1);
        if (!line)
            abort();
        memcpy(line, data + off, len);
        line[len] = 0;
        char err[256];
        err[0] = 0;
        memset(err + 1, 'x', sizeof(err) - 1);
        int rc = shoal_ssh_options_apply(&o, line, err, sizeof(err));
        if (rc > 0 || (rc && !memchr(err, 0, sizeof(err))))
            abort();
        check_struct(&o);
        check_alone(line);
        free(line);
        off += len + 1;
    }
    shoal_ssh_options_free(&o);
    return 0;
}
