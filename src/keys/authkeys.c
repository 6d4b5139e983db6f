/* OpenSSH authorized_keys files: line parsing, option parsing and key
 * lookup (see shoal/authkeys.h).
 *
 * The semantics follow OpenSSH's auth-options.c and auth2-pubkeyfile.c:
 *  - a line starts with a key type, or with an options field that runs to
 *    the first blank outside double quotes;
 *  - an option list that does not parse makes the line unusable (never a
 *    partial set of options: fail closed);
 *  - lookup continues after a line that names the key but is refused
 *    (expired, from= mismatch, bad options), exactly like sshd, so a later
 *    line for the same key can still admit it.
 * Every line is handled in a bounded scratch copy, NUL-terminated, so the
 * option parser can never read past it. */
#include "shoal/authkeys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/parse_util.h"
#include "keys/key.h"
#include "wire/buf.h"

/* Longest host part of a permitopen/permitlisten entry (NI_MAXHOST). */
#define AK_MAX_PERMIT_HOST 1025u
/* Largest tun device number (OpenSSH SSH_TUNID_MAX). */
#define AK_MAX_TUN 0x7ffffffdLL

static int ak_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void ak_why(char *why, size_t whysz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ak_why(char *why, size_t whysz, const char *fmt, ...)
{
    if (!why || !whysz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

/* ---- options ---- */

void shoal_authkey_opts_init(shoal_authkey_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->expiry_time = -1;
    o->tunnel = SHOAL_AUTHKEY_TUN_NONE;
}

static void ak_free_list(char **l, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void shoal_authkey_opts_free(shoal_authkey_opts *o)
{
    if (!o)
        return;
    free(o->command);
    free(o->from);
    free(o->principals);
    free(o->gateway);
    ak_free_list(o->environment, o->n_environment);
    ak_free_list(o->permitopen, o->n_permitopen);
    ak_free_list(o->permitlisten, o->n_permitlisten);
    shoal_authkey_opts_init(o);
}

/* Appends s (ownership taken, freed on failure). */
static int ak_list_add(char ***l, unsigned *n, char *s)
{
    char **nl = realloc(*l, ((size_t)*n + 1) * sizeof(*nl));
    if (!nl) {
        free(s);
        return SHOAL_ERR_NOMEM;
    }
    nl[(*n)++] = s;
    *l = nl;
    return SHOAL_OK;
}

/* A double-quoted value starting at *p (before end): the quotes removed
 * and \" turned into ". *out is malloc'd; *p moves past the closing quote.
 * Returns SHOAL_OK, SHOAL_ERR_BAD_FORMAT or SHOAL_ERR_NOMEM. */
static int ak_dequote(const char **p, const char *end, char **out, char *why, size_t whysz)
{
    const char *s = *p;
    if (s >= end || *s != '"') {
        ak_why(why, whysz, "missing start quote");
        return SHOAL_ERR_BAD_FORMAT;
    }
    s++;
    char *r = malloc((size_t)(end - s) + 1);
    if (!r)
        return SHOAL_ERR_NOMEM;
    size_t n = 0;
    while (s < end && *s != '"') {
        if (*s == '\\' && s + 1 < end && s[1] == '"')
            s++;
        r[n++] = *s++;
    }
    if (s >= end) {
        free(r);
        ak_why(why, whysz, "missing end quote");
        return SHOAL_ERR_BAD_FORMAT;
    }
    r[n] = 0;
    *p = s + 1;
    *out = r;
    return SHOAL_OK;
}

/* Case-insensitive comparison of (s, n) with a NUL-terminated name. */
static int ak_name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* Environment names: [A-Za-z0-9_]+ (OpenSSH valid_env_name, ASCII only). */
static int ak_env_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Splits a permitopen/permitlisten entry "host:port" / "[host]:port" (also
 * with '/' as the separator, as OpenSSH's hpdelim2 allows). The host keeps
 * its brackets. Returns 0 and the parts, or -1. */
static int ak_split_permit(const char *v, const char **host, size_t *hostlen, const char **port)
{
    const char *sep;
    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (!rb)
            return -1;
        sep = rb + 1;
        if (*sep != ':' && *sep != '/')
            return -1; /* "[host]" alone has no port; "[host]x" is garbage */
    } else {
        sep = strpbrk(v, ":/");
        if (!sep)
            return -1;
    }
    *host = v;
    *hostlen = (size_t)(sep - v);
    *port = sep + 1;
    return 0;
}

static int ak_port_ok(const char *p)
{
    uint64_t n;
    return strcmp(p, "*") == 0 || shoal_pu_parse_uint(p, 1, 65535, &n) == 0;
}

static int ak_add_permit(char ***l, unsigned *n, char *v, int bare_port_ok, char *why, size_t whysz)
{
    if (*n >= SHOAL_AUTHKEYS_MAX_PERMIT) {
        free(v);
        ak_why(why, whysz, "too many permission directives");
        return SHOAL_ERR_BAD_FORMAT;
    }
    if (bare_port_ok && !strchr(v, ':')) {
        /* permitlisten="8080" means any listen address. */
        size_t vl = strlen(v);
        char *w = malloc(vl + 3);
        if (!w) {
            free(v);
            return SHOAL_ERR_NOMEM;
        }
        memcpy(w, "*:", 2);
        memcpy(w + 2, v, vl + 1);
        free(v);
        v = w;
    }
    const char *host, *port;
    size_t hostlen;
    if (ak_split_permit(v, &host, &hostlen, &port) != 0 || hostlen >= AK_MAX_PERMIT_HOST) {
        free(v);
        ak_why(why, whysz, "invalid permission hostname");
        return SHOAL_ERR_BAD_FORMAT;
    }
    if (!ak_port_ok(port)) {
        free(v);
        ak_why(why, whysz, "invalid permission port");
        return SHOAL_ERR_BAD_FORMAT;
    }
    return ak_list_add(l, n, v);
}

static int ak_add_env(shoal_authkey_opts *o, char *v, char *why, size_t whysz)
{
    if (o->n_environment >= SHOAL_AUTHKEYS_MAX_ENV) {
        free(v);
        ak_why(why, whysz, "too many environment strings");
        return SHOAL_ERR_BAD_FORMAT;
    }
    const char *eq = strchr(v, '=');
    if (!eq || !ak_env_name_ok(v, (size_t)(eq - v))) {
        free(v);
        ak_why(why, whysz, "invalid environment string");
        return SHOAL_ERR_BAD_FORMAT;
    }
    size_t nl = (size_t)(eq - v) + 1; /* name and '=' */
    for (unsigned i = 0; i < o->n_environment; i++)
        if (strncmp(o->environment[i], v, nl) == 0) {
            free(v); /* the first value of a name wins */
            return SHOAL_OK;
        }
    return ak_list_add(&o->environment, &o->n_environment, v);
}

static int ak_set_tunnel(shoal_authkey_opts *o, const char *v, char *why, size_t whysz)
{
    uint64_t n;
    if (strcmp(v, "any") == 0)
        o->tunnel = SHOAL_AUTHKEY_TUN_ANY;
    else if (shoal_pu_parse_uint(v, 0, (uint64_t)AK_MAX_TUN, &n) == 0)
        o->tunnel = (int64_t)n;
    else {
        ak_why(why, whysz, "invalid tun device");
        return SHOAL_ERR_BAD_FORMAT;
    }
    return SHOAL_OK;
}

/* Options taking a quoted value. */
static int ak_value_option(shoal_authkey_opts *o, const char *name, size_t nlen, char *v, char *why, size_t whysz)
{
    char **single = NULL;
    const char *what = NULL;
    if (ak_name_is(name, nlen, "command")) {
        single = &o->command;
        what = "command";
    } else if (ak_name_is(name, nlen, "from")) {
        single = &o->from;
        what = "from";
    } else if (ak_name_is(name, nlen, "principals")) {
        single = &o->principals;
        what = "principals";
    } else if (ak_name_is(name, nlen, "gateway")) {
        /* shoal extension: forward this key's sessions to host[:port] */
        single = &o->gateway;
        what = "gateway";
    }
    if (single) {
        if (*single) {
            free(v);
            ak_why(why, whysz, "multiple \"%s\" clauses", what);
            return SHOAL_ERR_BAD_FORMAT;
        }
        *single = v;
        return SHOAL_OK;
    }
    if (ak_name_is(name, nlen, "expiry-time")) {
        int64_t t;
        int bad = shoal_authkey_parse_time(v, &t) != 0;
        free(v);
        if (bad) {
            ak_why(why, whysz, "invalid expires time");
            return SHOAL_ERR_BAD_FORMAT;
        }
        if (o->expiry_time < 0 || t < o->expiry_time)
            o->expiry_time = t; /* the earliest one wins */
        return SHOAL_OK;
    }
    if (ak_name_is(name, nlen, "environment"))
        return ak_add_env(o, v, why, whysz);
    if (ak_name_is(name, nlen, "permitopen"))
        return ak_add_permit(&o->permitopen, &o->n_permitopen, v, 0, why, whysz);
    if (ak_name_is(name, nlen, "permitlisten"))
        return ak_add_permit(&o->permitlisten, &o->n_permitlisten, v, 1, why, whysz);
    if (ak_name_is(name, nlen, "tunnel")) {
        int rc = ak_set_tunnel(o, v, why, whysz);
        free(v);
        return rc;
    }
    free(v);
    return SHOAL_ERR_NOT_FOUND; /* not a value option */
}

/* Flag options; returns SHOAL_ERR_NOT_FOUND for unknown names. */
static int ak_flag_option(shoal_authkey_opts *o, const char *name, size_t nlen)
{
    if (ak_name_is(name, nlen, "restrict")) {
        o->restricted = 1;
        o->no_pty = o->no_port_forwarding = o->no_agent_forwarding = 1;
        o->no_x11_forwarding = o->no_user_rc = 1;
        return SHOAL_OK;
    }
    if (ak_name_is(name, nlen, "cert-authority")) {
        o->cert_authority = 1;
        return SHOAL_OK;
    }
    int neg = nlen > 3 && strncasecmp(name, "no-", 3) == 0;
    const char *base = neg ? name + 3 : name;
    size_t blen = neg ? nlen - 3 : nlen;
    /* Each flag: its name and the field holding "forbidden"/"set". */
    struct {
        const char *name;
        int *field;
        int no_means_set; /* field is a "no_" flag: no-X sets it */
    } flags[] = {
        {"pty", &o->no_pty, 1},
        {"port-forwarding", &o->no_port_forwarding, 1},
        {"agent-forwarding", &o->no_agent_forwarding, 1},
        {"x11-forwarding", &o->no_x11_forwarding, 1},
        {"user-rc", &o->no_user_rc, 1},
        {"touch-required", &o->no_touch_required, 1},
        {"verify-required", &o->verify_required, 0},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (ak_name_is(base, blen, flags[i].name)) {
            *flags[i].field = flags[i].no_means_set ? neg : !neg;
            return SHOAL_OK;
        }
    return SHOAL_ERR_NOT_FOUND;
}

int shoal_authkey_opts_parse(const char *s, size_t len, shoal_authkey_opts *o, char *why, size_t whysz)
{
    if (!o)
        return SHOAL_ERR_INVALID_ARG;
    shoal_authkey_opts_init(o);
    if (why && whysz)
        why[0] = 0;
    if (!s && len)
        return SHOAL_ERR_INVALID_ARG;
    if (len && memchr(s, 0, len)) {
        ak_why(why, whysz, "NUL byte in options");
        return SHOAL_ERR_BAD_FORMAT;
    }
    const char *p = s, *end = s + len;
    for (;;) {
        if (p == end)
            return SHOAL_OK;
        if (ak_blank(*p)) {
            /* Only blanks may follow: the caller cut the field already. */
            while (p < end && ak_blank(*p))
                p++;
            if (p == end)
                return SHOAL_OK;
            ak_why(why, whysz, "blank inside options");
            return SHOAL_ERR_BAD_FORMAT;
        }
        if (*p == ',') {
            /* Empty list element (",,", leading or trailing comma): OpenSSH
             * ignores them, and they carry no meaning either way. */
            p++;
            continue;
        }
        const char *name = p;
        while (p < end && *p != ',' && *p != '=' && !ak_blank(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        int rc;
        char shown[48];
        snprintf(shown, sizeof(shown), "%.*s", (int)(nlen > 40 ? 40 : nlen), name);
        if (p < end && *p == '=') {
            p++;
            char *v;
            rc = ak_dequote(&p, end, &v, why, whysz);
            if (rc)
                return rc;
            rc = ak_value_option(o, name, nlen, v, why, whysz);
        } else {
            rc = ak_flag_option(o, name, nlen);
        }
        if (rc == SHOAL_ERR_NOT_FOUND) {
            ak_why(why, whysz, "unknown option \"%s\"", shown);
            return SHOAL_ERR_BAD_FORMAT;
        }
        if (rc)
            return rc;
        if (p < end && *p != ',' && !ak_blank(*p)) {
            ak_why(why, whysz, "garbage after option \"%s\"", shown);
            return SHOAL_ERR_BAD_FORMAT;
        }
    }
}

/* ---- expiry-time ---- */

static int ak_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1970). */
static int64_t ak_days(int64_t y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    /* Leap days in the years before y, counted from year 1. */
    int64_t p = y - 1, q = 1969;
    int64_t leaps = (p / 4 - p / 100 + p / 400) - (q / 4 - q / 100 + q / 400);
    int64_t days = (y - 1970) * 365 + leaps + before[m - 1] + (d - 1);
    if (m > 2 && ak_leap(y))
        days++;
    return days;
}

/* n decimal digits at s (all checked to be digits by the caller). */
static int ak_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int shoal_authkey_parse_time(const char *s, int64_t *out)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || !out)
        return -1;
    size_t l = strlen(s);
    int utc = 0;
    if (l > 1 && (s[l - 1] == 'Z' || s[l - 1] == 'z')) {
        utc = 1;
        l--;
    } else if (l > 3 && strcasecmp(s + l - 3, "UTC") == 0) {
        utc = 1;
        l -= 3;
    }
    if (l != 8 && l != 12 && l != 14)
        return -1;
    for (size_t i = 0; i < l; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    int y = ak_num(s, 4), mo = ak_num(s + 4, 2), d = ak_num(s + 6, 2);
    int h = l >= 12 ? ak_num(s + 8, 2) : 0, mi = l >= 12 ? ak_num(s + 10, 2) : 0;
    int sec = l == 14 ? ak_num(s + 12, 2) : 0;
    /* Stricter than strptime: no day 31 in a 30-day month, no 60th second. */
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !ak_leap(y)) ||
        h > 23 || mi > 59 || sec > 59)
        return -1;
    int64_t t;
    if (utc) {
        t = ak_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    } else {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        tm.tm_isdst = -1; /* let the zone rules decide, unlike OpenSSH's fixed standard time */
        time_t tt = mktime(&tm);
        if (tt == (time_t)-1)
            return -1;
        t = (int64_t)tt;
    }
    if (t <= 0)
        return -1; /* OpenSSH refuses 0 and negative times too */
    *out = t;
    return 0;
}

int shoal_authkey_expired(const shoal_authkey_opts *o, int64_t now_unix)
{
    /* The key stays valid through the expiry second itself, as in sshd. */
    return o && o->expiry_time >= 0 && now_unix > o->expiry_time;
}

/* ---- from= and permitopen= ---- */

int shoal_authkey_from_allowed(const shoal_authkey_opts *o, const char *client_ip, const char *client_name)
{
    if (!o || !o->from)
        return 1;
    if (!client_ip)
        return 0;
    size_t flen = strlen(o->from);
    int mip = shoal_pu_addr_match_list(client_ip, o->from, flen);
    if (mip == -2 || mip == -1)
        return 0; /* malformed list, or a negated address entry matched */
    const char *name = client_name ? client_name : client_ip;
    size_t nlen = strlen(name);
    char low[AK_MAX_PERMIT_HOST];
    if (nlen >= sizeof(low))
        return 0; /* cannot check negations against it: refuse */
    for (size_t i = 0; i < nlen; i++) {
        char c = name[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    low[nlen] = 0;
    int mhost = shoal_pu_match_list(low, nlen, o->from, flen, 1);
    if (mhost == -1)
        return 0;
    return mhost == 1 || mip == 1;
}

int shoal_authkey_open_allowed(const shoal_authkey_opts *o, const char *host, unsigned port)
{
    if (!o || !host)
        return 0;
    if (o->no_port_forwarding)
        return 0;
    if (o->n_permitopen == 0)
        return 1;
    size_t hl = strlen(host);
    for (unsigned i = 0; i < o->n_permitopen; i++) {
        const char *h, *p;
        size_t n;
        if (ak_split_permit(o->permitopen[i], &h, &n, &p) != 0)
            continue; /* cannot happen: validated when parsed */
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            h++;
            n -= 2;
        }
        uint64_t pn = 0;
        if (strcmp(p, "*") != 0 && (shoal_pu_parse_uint(p, 1, 65535, &pn) != 0 || pn != port))
            continue;
        if (!(n == 1 && h[0] == '*') && !(n == hl && memcmp(h, host, n) == 0))
            continue;
        return 1;
    }
    return 0;
}

/* ---- lines ---- */

/* The fields of a key line, as pointers into the (NUL-terminated) copy. */
typedef struct ak_fields {
    const char *opts;
    size_t opts_len; /* 0: no options field */
    const char *type;
    size_t type_len;
    const char *b64;
    size_t b64_len;
    const char *comment;
    size_t comment_len;
} ak_fields;

static const char *ak_token_end(const char *p)
{
    while (*p && !ak_blank(*p))
        p++;
    return p;
}

/* Splits a NUL-terminated line. 1 key line, 0 blank/comment, or
 * SHOAL_ERR_BAD_FORMAT. Options are located, not parsed. */
static int ak_split(const char *s, ak_fields *f, char *why, size_t whysz)
{
    memset(f, 0, sizeof(*f));
    while (ak_blank(*s))
        s++;
    if (*s == 0 || *s == '#')
        return 0;
    const char *t = ak_token_end(s);
    if (shoal_keytype_from_name(s, (size_t)(t - s)) == SHOAL_KEY_UNKNOWN) {
        /* An options field: up to the first blank outside quotes; \" is
         * skipped whole, as OpenSSH's sshkey_advance_past_options does. */
        const char *p = s;
        int quoted = 0;
        for (; *p && (quoted || !ak_blank(*p)); p++) {
            if (p[0] == '\\' && p[1] == '"')
                p++;
            else if (*p == '"')
                quoted = !quoted;
        }
        if (quoted) {
            ak_why(why, whysz, "unterminated quote in options");
            return SHOAL_ERR_BAD_FORMAT;
        }
        f->opts = s;
        f->opts_len = (size_t)(p - s);
        while (ak_blank(*p))
            p++;
        s = p;
        t = ak_token_end(s);
        if (t == s) {
            ak_why(why, whysz, "no key after the options");
            return SHOAL_ERR_BAD_FORMAT;
        }
        if (shoal_keytype_from_name(s, (size_t)(t - s)) == SHOAL_KEY_UNKNOWN) {
            ak_why(why, whysz, "unsupported or unknown key type");
            return SHOAL_ERR_BAD_FORMAT;
        }
    }
    f->type = s;
    f->type_len = (size_t)(t - s);
    s = t;
    while (ak_blank(*s))
        s++;
    t = ak_token_end(s);
    if (t == s) {
        ak_why(why, whysz, "missing base64 key");
        return SHOAL_ERR_BAD_FORMAT;
    }
    f->b64 = s;
    f->b64_len = (size_t)(t - s);
    s = t;
    while (ak_blank(*s))
        s++;
    size_t cl = strlen(s);
    while (cl > 0 && (ak_blank(s[cl - 1]) || s[cl - 1] == '\r'))
        cl--;
    f->comment = cl ? s : NULL;
    f->comment_len = cl;
    return 1;
}

/* Decodes the key field into blob (reset first) and checks that the
 * blob's own type string is the type written on the line. */
static int ak_decode(const ak_fields *f, shoal_buf *blob, char *why, size_t whysz)
{
    shoal_buf_reset(blob);
    int rc = shoal_base64_decode(f->b64, f->b64_len, blob);
    if (rc == SHOAL_ERR_NOMEM)
        return rc;
    if (rc) {
        ak_why(why, whysz, "bad base64 key");
        return SHOAL_ERR_BAD_FORMAT;
    }
    shoal_rd r;
    const uint8_t *t;
    size_t tl;
    shoal_rd_init(&r, shoal_buf_ptr(blob), shoal_buf_len(blob));
    if (shoal_rd_string(&r, &t, &tl) != SHOAL_OK || tl != f->type_len || memcmp(t, f->type, tl) != 0) {
        ak_why(why, whysz, "key type does not match the key blob");
        return SHOAL_ERR_BAD_FORMAT;
    }
    return SHOAL_OK;
}

/* Copies a line into scratch (NUL-terminated, trailing CR/LF dropped).
 * -1 when it is too long or contains NUL. */
static int ak_copy_line(const char *line, size_t len, char *scratch)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len > SHOAL_AUTHKEYS_MAX_LINE || memchr(line, 0, len))
        return -1;
    memcpy(scratch, line, len);
    scratch[len] = 0;
    return 0;
}

void shoal_authkey_line_free(shoal_authkey_line *l)
{
    if (!l)
        return;
    shoal_authkey_opts_free(&l->opts);
    free(l->blob);
    free(l->comment);
    memset(l, 0, sizeof(*l));
    shoal_authkey_opts_init(&l->opts);
}

int shoal_authkeys_parse_line(const char *line, size_t len, shoal_authkey_line *out, char *why, size_t whysz)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    shoal_authkey_opts_init(&out->opts);
    if (why && whysz)
        why[0] = 0;
    if (!line && len)
        return SHOAL_ERR_INVALID_ARG;
    char *s = malloc(SHOAL_AUTHKEYS_MAX_LINE + 1);
    if (!s)
        return SHOAL_ERR_NOMEM;
    shoal_buf blob;
    shoal_buf_init(&blob, SHOAL_AUTHKEYS_MAX_LINE);
    ak_fields f;
    int rc;
    if (ak_copy_line(line ? line : "", len, s) != 0) {
        ak_why(why, whysz, "line too long or contains NUL");
        rc = SHOAL_ERR_BAD_FORMAT;
        goto out;
    }
    rc = ak_split(s, &f, why, whysz);
    if (rc <= 0)
        goto out;
    if (f.type_len >= sizeof(out->keytype)) {
        ak_why(why, whysz, "key type too long");
        rc = SHOAL_ERR_BAD_FORMAT;
        goto out;
    }
    if ((rc = ak_decode(&f, &blob, why, whysz)) != SHOAL_OK)
        goto out;
    if (f.opts_len && (rc = shoal_authkey_opts_parse(f.opts, f.opts_len, &out->opts, why, whysz)) != SHOAL_OK)
        goto out;
    memcpy(out->keytype, f.type, f.type_len);
    out->keytype[f.type_len] = 0;
    out->blob_len = shoal_buf_len(&blob);
    out->blob = malloc(out->blob_len ? out->blob_len : 1);
    if (!out->blob) {
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    memcpy(out->blob, shoal_buf_ptr(&blob), out->blob_len);
    if (f.comment) {
        out->comment = strndup(f.comment, f.comment_len);
        if (!out->comment) {
            rc = SHOAL_ERR_NOMEM;
            goto out;
        }
    }
    rc = 1;
out:
    free(s);
    shoal_buf_free(&blob);
    return rc;
}

/* ---- lookup ---- */

typedef struct ak_scan {
    const char *type; /* our key's type name */
    size_t type_len;
    shoal_buf want;   /* our key's blob */
    shoal_buf blob;   /* scratch for decoded blobs */
    char *line;       /* scratch line copy */
    const shoal_authkeys_peer *peer;
    shoal_authkeys_result *res;
} ak_scan;

static void ak_refuse(ak_scan *sc, unsigned lineno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ak_refuse(ak_scan *sc, unsigned lineno, const char *fmt, ...)
{
    if (sc->res->refused_line)
        return; /* keep the first reason */
    sc->res->refused_line = lineno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->res->refused_why, sizeof(sc->res->refused_why), fmt, ap);
    va_end(ap);
}

/* One line: 1 accepted (*opts filled), 0 not, negative on fatal errors. */
static int ak_scan_line(ak_scan *sc, const char *line, size_t len, unsigned lineno, shoal_authkey_opts *opts)
{
    ak_fields f;
    if (ak_copy_line(line, len, sc->line) != 0 || ak_split(sc->line, &f, NULL, 0) != 1)
        return 0;
    /* Cheap filter before decoding: the type written must be ours. */
    if (f.type_len != sc->type_len || memcmp(f.type, sc->type, f.type_len) != 0)
        return 0;
    int rc = ak_decode(&f, &sc->blob, NULL, 0);
    if (rc == SHOAL_ERR_NOMEM)
        return rc;
    if (rc || shoal_buf_len(&sc->blob) != shoal_buf_len(&sc->want) ||
        memcmp(shoal_buf_ptr(&sc->blob), shoal_buf_ptr(&sc->want), shoal_buf_len(&sc->want)) != 0)
        return 0;

    /* The key is ours: now the options decide. */
    char why[160];
    shoal_authkey_opts o;
    shoal_authkey_opts_init(&o);
    if (f.opts_len && (rc = shoal_authkey_opts_parse(f.opts, f.opts_len, &o, why, sizeof(why))) != SHOAL_OK) {
        shoal_authkey_opts_free(&o);
        if (rc == SHOAL_ERR_NOMEM)
            return rc;
        ak_refuse(sc, lineno, "bad options: %s", why);
        return 0;
    }
    const shoal_authkeys_peer *p = sc->peer;
    int ok = 0;
    if (o.cert_authority)
        ak_refuse(sc, lineno, "cert-authority line (only certificates can match it)");
    else if (shoal_authkey_expired(&o, p->now))
        ak_refuse(sc, lineno, "key expired");
    else if (!shoal_authkey_from_allowed(&o, p->ip, p->host))
        ak_refuse(sc, lineno, "from= does not admit %s", p->ip ? p->ip : "an unknown address");
    else
        ok = 1;
    if (!ok) {
        shoal_authkey_opts_free(&o);
        return 0;
    }
    *opts = o;
    sc->res->line = lineno;
    return 1;
}

int shoal_authkeys_find(const char *buf, size_t len, const shoal_key *key, const shoal_authkeys_peer *peer,
                        shoal_authkey_opts *opts, shoal_authkeys_result *res)
{
    shoal_authkeys_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    if (opts)
        shoal_authkey_opts_init(opts);
    if (!opts || !key || !peer || (!buf && len))
        return SHOAL_ERR_INVALID_ARG;

    ak_scan sc;
    memset(&sc, 0, sizeof(sc));
    sc.peer = peer;
    sc.res = res;
    sc.type = shoal_key_type_name(key);
    if (!sc.type)
        return SHOAL_ERR_INVALID_ARG;
    sc.type_len = strlen(sc.type);
    shoal_buf_init(&sc.want, SHOAL_AUTHKEYS_MAX_LINE);
    shoal_buf_init(&sc.blob, SHOAL_AUTHKEYS_MAX_LINE);
    int rc = shoal_key_to_blob(key, &sc.want);
    if (rc == SHOAL_OK && !(sc.line = malloc(SHOAL_AUTHKEYS_MAX_LINE + 1)))
        rc = SHOAL_ERR_NOMEM;

    unsigned lineno = 0;
    size_t off = 0;
    while (rc == SHOAL_OK && off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (lineno < UINT32_MAX)
            lineno++;
        rc = ak_scan_line(&sc, buf + off, end - off, lineno, opts);
        if (rc == 1)
            break;
        off = end + 1;
    }
    free(sc.line);
    shoal_buf_free(&sc.want);
    shoal_buf_free(&sc.blob);
    return rc;
}

