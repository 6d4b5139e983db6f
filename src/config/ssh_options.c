/* OpenSSH-style client options (ssh_config(5) meanings) for "-o". */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/cipher.h"
#include "crypto/kex.h"
#include "keys/key.h"
#include "shoal/config.h"
#include "wire/match.h"

void shoal_ssh_options_init(shoal_ssh_options *o)
{
    memset(o, 0, sizeof(*o));
    o->strict_host_key_checking = -1;
    o->hash_known_hosts = -1;
    o->batch_mode = -1;
    o->connect_timeout_s = -1;
    o->connection_attempts = -1;
    o->server_alive_interval_s = -1;
    o->server_alive_count_max = -1;
    o->password_auth = o->pubkey_auth = o->kbdint_auth = -1;
    o->log_level = -1;
}

void shoal_ssh_options_free(shoal_ssh_options *o)
{
    free(o->user);
    for (unsigned i = 0; i < o->n_identity_files; i++)
        free(o->identity_files[i]);
    for (unsigned i = 0; i < o->n_user_known_hosts; i++)
        free(o->user_known_hosts[i]);
    for (unsigned i = 0; i < o->n_global_known_hosts; i++)
        free(o->global_known_hosts[i]);
    free(o->identity_agent);
    free(o->kex);
    free(o->ciphers);
    free(o->macs);
    free(o->hostkey_algs);
    free(o->host_key_alias);
    memset(o, 0, sizeof(*o));
}


static int list_append(char *out, size_t outsz, const char *name, size_t len)
{
    size_t cur = strlen(out);
    if (cur + len + 2 > outsz)
        return SHOAL_ERR_TOO_LARGE;
    if (cur)
        out[cur++] = ',';
    memcpy(out + cur, name, len);
    out[cur + len] = 0;
    return SHOAL_OK;
}

static int in_list(const char *list, const char *name, size_t len)
{
    const char *cur = list, *end = list + strlen(list), *nm;
    size_t l;
    while (shoal_namelist_next(&cur, end, &nm, &l))
        if (l == len && memcmp(nm, name, l) == 0)
            return 1;
    return 0;
}

int shoal_algorithm_list(const char *spec, const char *defaults, const char *supported, char **out, char *err,
                         size_t errsz)
{
    *out = NULL;
    char mod = 0;
    if (*spec == '+' || *spec == '-' || *spec == '^')
        mod = *spec++;
    size_t cap = strlen(spec) + strlen(supported) + strlen(defaults) + 4;
    char *res = calloc(1, cap);
    if (!res)
        return SHOAL_ERR_NOMEM;
    const char *cur = spec, *end = spec + strlen(spec), *nm;
    size_t l;
    /* Every name (or pattern, for "-") must be something we implement. */
    while (shoal_namelist_next(&cur, end, &nm, &l)) {
        int ok = 0;
        if (mod == '-') {
            const char *c2 = supported, *e2 = supported + strlen(supported), *n2;
            size_t l2;
            while (!ok && shoal_namelist_next(&c2, e2, &n2, &l2))
                ok = shoal_wildmatch(nm, l, n2, l2, 0);
            ok = 1; /* removing something unknown is harmless */
        } else {
            ok = l > 0 && in_list(supported, nm, l);
        }
        if (!ok) {
            if (err)
                snprintf(err, errsz, "unsupported algorithm \"%.*s\" (supported: %s)", (int)l, nm, supported);
            free(res);
            return SHOAL_ERR_UNSUPPORTED;
        }
    }
    int rc = SHOAL_OK;
    if (mod == 0) {
        snprintf(res, cap, "%s", spec);
    } else if (mod == '+') {
        snprintf(res, cap, "%s", defaults);
        cur = spec;
        while (!rc && shoal_namelist_next(&cur, end, &nm, &l))
            if (!in_list(res, nm, l))
                rc = list_append(res, cap, nm, l);
    } else if (mod == '^') {
        cur = spec;
        while (!rc && shoal_namelist_next(&cur, end, &nm, &l))
            if (!in_list(res, nm, l))
                rc = list_append(res, cap, nm, l);
        const char *c2 = defaults, *e2 = defaults + strlen(defaults);
        while (!rc && shoal_namelist_next(&c2, e2, &nm, &l))
            if (!in_list(res, nm, l))
                rc = list_append(res, cap, nm, l);
    } else { /* '-' */
        const char *c2 = defaults, *e2 = defaults + strlen(defaults);
        while (!rc && shoal_namelist_next(&c2, e2, &nm, &l)) {
            int drop = 0;
            const char *c3 = spec, *n3;
            size_t l3;
            while (!drop && shoal_namelist_next(&c3, end, &n3, &l3))
                drop = shoal_wildmatch(n3, l3, nm, l, 0);
            if (!drop)
                rc = list_append(res, cap, nm, l);
        }
    }
    if (!rc && !*res) {
        if (err)
            snprintf(err, errsz, "algorithm list \"%s\" leaves nothing to negotiate", spec);
        rc = SHOAL_ERR_CONFIG;
    }
    if (rc) {
        free(res);
        return rc;
    }
    *out = res;
    return SHOAL_OK;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true"))
        *out = 1;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false"))
        *out = 0;
    else
        return SHOAL_ERR_CONFIG;
    return SHOAL_OK;
}

/* A run of decimal digits, nothing else (strtoull would also take blanks,
 * a sign and wrap around); advances *p. */
static int parse_digits(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*s))
        return SHOAL_ERR_CONFIG;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return SHOAL_ERR_CONFIG;
        n = n * 10 + d;
    }
    *p = s;
    *out = n;
    return SHOAL_OK;
}

/* "123", "10K", "5M", "1G" (bytes, powers of 1024). */
static int parse_size(const char *v, uint64_t *out)
{
    uint64_t n;
    if (parse_digits(&v, &n))
        return SHOAL_ERR_CONFIG;
    uint64_t mul = 1;
    switch (toupper((unsigned char)*v)) {
    case 0:
        break;
    case 'K':
        mul = 1024;
        v++;
        break;
    case 'M':
        mul = 1024 * 1024;
        v++;
        break;
    case 'G':
        mul = 1024ull * 1024 * 1024;
        v++;
        break;
    default:
        return SHOAL_ERR_CONFIG;
    }
    if (*v || n == 0 || n > UINT64_MAX / mul)
        return SHOAL_ERR_CONFIG;
    *out = n * mul;
    return SHOAL_OK;
}

/* sshd-style time: "30", "30s", "5m", "1h", "1h30m"; a sum that does not
 * fit is refused, not wrapped. */
static int parse_time(const char *v, uint64_t *out)
{
    uint64_t total = 0;
    const char *p = v;
    if (!*p)
        return SHOAL_ERR_CONFIG;
    while (*p) {
        uint64_t n;
        if (parse_digits(&p, &n))
            return SHOAL_ERR_CONFIG;
        uint64_t mul = 1;
        switch (tolower((unsigned char)*p)) {
        case 0:
            break;
        case 's':
            p++;
            break;
        case 'm':
            mul = 60;
            p++;
            break;
        case 'h':
            mul = 3600;
            p++;
            break;
        case 'd':
            mul = 86400;
            p++;
            break;
        case 'w':
            mul = 604800;
            p++;
            break;
        default:
            return SHOAL_ERR_CONFIG;
        }
        if (n > (UINT64_MAX - total) / mul)
            return SHOAL_ERR_CONFIG;
        total += n * mul;
    }
    *out = total;
    return SHOAL_OK;
}

static int parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end || n < lo || n > hi)
        return SHOAL_ERR_CONFIG;
    *out = n;
    return SHOAL_OK;
}

static char *expand_tilde(const char *path)
{
    if (path[0] == '~' && (path[1] == '/' || path[1] == 0)) {
        const char *home = getenv("HOME");
        if (home) {
            size_t n = strlen(home) + strlen(path) + 1;
            char *r = malloc(n);
            if (r)
                snprintf(r, n, "%s%s", home, path + 1);
            return r;
        }
    }
    return strdup(path);
}

static int add_files(char **arr, unsigned *n, char *value)
{
    char *save = NULL;
    for (char *tok = strtok_r(value, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (*n >= SHOAL_OPT_MAX_FILES)
            return SHOAL_ERR_TOO_LARGE;
        char *p = strcasecmp(tok, "none") == 0 ? strdup("/dev/null") : expand_tilde(tok);
        if (!p)
            return SHOAL_ERR_NOMEM;
        arr[(*n)++] = p;
    }
    return SHOAL_OK;
}

#define ERR(...)                                                                                                       \
    do {                                                                                                               \
        if (err)                                                                                                       \
            snprintf(err, errsz, __VA_ARGS__);                                                                         \
        rc = SHOAL_ERR_CONFIG;                                                                                         \
        goto out;                                                                                                      \
    } while (0)

int shoal_ssh_options_apply(shoal_ssh_options *o, const char *text, char *err, size_t errsz)
{
    int rc = SHOAL_OK;
    char *buf = strdup(text);
    if (!buf)
        return SHOAL_ERR_NOMEM;
    char *k = buf;
    while (isspace((unsigned char)*k))
        k++;
    char *sep = k + strcspn(k, "= \t");
    char *v = sep;
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
    if (!*k)
        ERR("empty option");
    if (!*v)
        ERR("option %s needs a value", k);

    int b;
    int64_t n;
    uint64_t u;
    if (!strcasecmp(k, "Port")) {
        if (parse_int(v, 1, 65535, &n))
            ERR("bad port \"%s\"", v);
        if (!o->port)
            o->port = (unsigned)n;
    } else if (!strcasecmp(k, "User")) {
        if (!o->user && !(o->user = strdup(v)))
            rc = SHOAL_ERR_NOMEM;
    } else if (!strcasecmp(k, "IdentityFile")) {
        if (o->n_identity_files >= SHOAL_OPT_MAX_FILES)
            ERR("too many identity files");
        if (!(o->identity_files[o->n_identity_files] = expand_tilde(v)))
            rc = SHOAL_ERR_NOMEM;
        else
            o->n_identity_files++;
    } else if (!strcasecmp(k, "IdentityAgent")) {
        if (!o->identity_agent && !(o->identity_agent = expand_tilde(v)))
            rc = SHOAL_ERR_NOMEM;
    } else if (!strcasecmp(k, "KexAlgorithms") || !strcasecmp(k, "Ciphers") || !strcasecmp(k, "MACs") ||
               !strcasecmp(k, "HostKeyAlgorithms")) {
        char **dst;
        const char *dflt, *all;
        if (!strcasecmp(k, "KexAlgorithms")) {
            dst = &o->kex;
            dflt = SHOAL_KEX_DEFAULT;
            all = SHOAL_KEX_ALL;
        } else if (!strcasecmp(k, "Ciphers")) {
            dst = &o->ciphers;
            dflt = SHOAL_CIPHERS_DEFAULT;
            all = SHOAL_CIPHERS_ALL;
        } else if (!strcasecmp(k, "MACs")) {
            dst = &o->macs;
            dflt = SHOAL_MACS_DEFAULT;
            all = SHOAL_MACS_ALL;
        } else {
            dst = &o->hostkey_algs;
            dflt = SHOAL_HOSTKEY_ALGS_DEFAULT;
            all = SHOAL_HOSTKEY_ALGS_ALL;
        }
        if (!*dst) {
            char e2[512];
            rc = shoal_algorithm_list(v, dflt, all, dst, e2, sizeof(e2));
            if (rc)
                ERR("%s: %s", k, e2);
        }
    } else if (!strcasecmp(k, "StrictHostKeyChecking")) {
        int val;
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true"))
            val = 1;
        else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcasecmp(v, "false"))
            val = 0;
        else if (!strcasecmp(v, "accept-new"))
            val = 2;
        else if (!strcasecmp(v, "ask"))
            val = 3;
        else
            ERR("StrictHostKeyChecking: expected yes, no, accept-new or ask, got \"%s\"", v);
        if (o->strict_host_key_checking < 0)
            o->strict_host_key_checking = val;
    } else if (!strcasecmp(k, "UserKnownHostsFile")) {
        if (!o->n_user_known_hosts && (rc = add_files(o->user_known_hosts, &o->n_user_known_hosts, v)) != 0)
            ERR("UserKnownHostsFile: %s", shoal_strerror(rc));
    } else if (!strcasecmp(k, "GlobalKnownHostsFile")) {
        if (!o->n_global_known_hosts && (rc = add_files(o->global_known_hosts, &o->n_global_known_hosts, v)) != 0)
            ERR("GlobalKnownHostsFile: %s", shoal_strerror(rc));
    } else if (!strcasecmp(k, "HostKeyAlias")) {
        if (!o->host_key_alias && !(o->host_key_alias = strdup(v)))
            rc = SHOAL_ERR_NOMEM;
    } else if (!strcasecmp(k, "HashKnownHosts")) {
        if (parse_bool(v, &b))
            ERR("HashKnownHosts: expected yes or no");
        if (o->hash_known_hosts < 0)
            o->hash_known_hosts = b;
    } else if (!strcasecmp(k, "BatchMode")) {
        if (parse_bool(v, &b))
            ERR("BatchMode: expected yes or no");
        if (o->batch_mode < 0)
            o->batch_mode = b;
    } else if (!strcasecmp(k, "ConnectTimeout")) {
        if (parse_time(v, &u) || u > 86400)
            ERR("ConnectTimeout: bad time \"%s\"", v);
        if (o->connect_timeout_s < 0)
            o->connect_timeout_s = (int64_t)u;
    } else if (!strcasecmp(k, "ConnectionAttempts")) {
        char *end;
        unsigned long tries = strtoul(v, &end, 10);
        if (!*v || *end || tries < 1 || tries > 100)
            ERR("ConnectionAttempts: expected a number from 1 to 100, not \"%s\"", v);
        if (o->connection_attempts < 0)
            o->connection_attempts = (int)tries;
    } else if (!strcasecmp(k, "ServerAliveInterval")) {
        if (parse_time(v, &u) || u > 86400)
            ERR("ServerAliveInterval: bad time \"%s\"", v);
        if (o->server_alive_interval_s < 0)
            o->server_alive_interval_s = (int64_t)u;
    } else if (!strcasecmp(k, "ServerAliveCountMax")) {
        if (parse_int(v, 1, 1000, &n))
            ERR("ServerAliveCountMax: bad count \"%s\"", v);
        if (o->server_alive_count_max < 0)
            o->server_alive_count_max = n;
    } else if (!strcasecmp(k, "PasswordAuthentication") || !strcasecmp(k, "PubkeyAuthentication") ||
               !strcasecmp(k, "KbdInteractiveAuthentication") ||
               !strcasecmp(k, "ChallengeResponseAuthentication")) {
        if (parse_bool(v, &b))
            ERR("%s: expected yes or no", k);
        int *dst = !strcasecmp(k, "PasswordAuthentication") ? &o->password_auth
                   : !strcasecmp(k, "PubkeyAuthentication") ? &o->pubkey_auth
                                                              : &o->kbdint_auth;
        if (*dst < 0)
            *dst = b;
    } else if (!strcasecmp(k, "RekeyLimit")) {
        /* "bytes [time]"; "default" and "none" keep defaults. */
        char *t = v + strcspn(v, " \t");
        if (*t) {
            *t++ = 0;
            while (*t == ' ' || *t == '\t')
                t++;
        }
        if (strcasecmp(v, "default") != 0 && !o->rekey_bytes) {
            if (parse_size(v, &u) || u < 16)
                ERR("RekeyLimit: bad size \"%s\"", v);
            o->rekey_bytes = u;
        }
        if (*t && strcasecmp(t, "none") != 0 && !o->rekey_seconds) {
            /* OpenSSH's bound; also keeps the milliseconds in 64 bits. */
            if (parse_time(t, &u) || u == 0 || u > INT32_MAX)
                ERR("RekeyLimit: bad time \"%s\"", t);
            o->rekey_seconds = u;
        }
    } else if (!strcasecmp(k, "LogLevel")) {
        static const char *const levels[] = {"QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1",
                                             "DEBUG2", "DEBUG3"};
        static const int map[] = {-1, -1, 0, 0, 1, 2, 2, 3, 3};
        int found = -2;
        for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
            if (!strcasecmp(v, levels[i]))
                found = map[i];
        if (found == -2)
            ERR("LogLevel: unknown level \"%s\"", v);
        if (o->log_level < 0)
            o->log_level = found < 0 ? 0 : found;
    } else if (!strcasecmp(k, "Compression")) {
        if (parse_bool(v, &b) || b)
            ERR("Compression: only \"no\" is supported");
    } else {
        ERR("unsupported option \"%s\"", k);
    }
out:
    free(buf);
    return rc;
}
