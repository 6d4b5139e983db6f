/* OpenSSH known_hosts files: lookup and append (see shoal/knownhosts.h).
 *
 * Semantics follow OpenSSH's hostfile.c / match.c:
 *  - the query is "host" for port 22 (or 0) and "[host]:port" otherwise; it
 *    is lowercased, and patterns are compared case-insensitively, so a plain
 *    "host" pattern never matches a non-22 port, while a wildcard such as "*"
 *    matches the bracketed form too (exactly like OpenSSH, which matches
 *    patterns against that composed string);
 *  - a hosts field starting with '|' is one hashed entry "|1|salt|hmac";
 *  - @revoked lines are host-scoped: OpenSSH only loads lines whose host
 *    field matches the host being checked, so "@revoked * ..." revokes a key
 *    everywhere while "@revoked foo ..." revokes it for foo only;
 *  - @cert-authority lines are parsed but never decide the status of a plain
 *    key (OpenSSH only consults them for certificates).
 * Anything malformed is skipped line by line: a broken line must never hide
 * a later @revoked line or abort the lookup. */
#include "shoal/knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "keys/key.h"
#include "keys/knownhosts_internal.h"
#include "wire/buf.h"
#include "wire/match.h"

/* Largest key blob append accepts (keeps the written line under KH_MAX_LINE). */
#define KH_MAX_APPEND_BLOB (32u * 1024u)

/* ASCII-only lowercase: host names are compared byte-wise and the C locale
 * functions could fold non-ASCII bytes differently depending on LC_CTYPE. */
static unsigned char kh_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int kh_is_space(char c)
{
    return c == ' ' || c == '\t';
}


/* OpenSSH match_hostname() semantics over a comma-separated list: a matching
 * negated pattern rejects the whole list, otherwise one positive match is
 * enough. q must already be lowercase. */
int shoal__kh_match_plain_list(const char *pat, size_t plen, const char *q, size_t qlen)
{
    int positive = 0;
    size_t i = 0;
    while (i <= plen) {
        size_t j = i;
        while (j < plen && pat[j] != ',')
            j++;
        const char *sub = pat + i;
        size_t sublen = j - i;
        int negated = sublen > 0 && sub[0] == '!';
        if (negated) {
            sub++;
            sublen--;
        }
        if (shoal_wildmatch(sub, sublen, q, qlen, 1)) {
            if (negated)
                return 0;
            positive = 1;
        }
        i = j + 1;
    }
    return positive;
}

/* ---- hashed entries ---- */

/* The HMAC-SHA1 context is reused for every hashed line of a scan:
 * fetching the algorithm per line would dominate the cost on a large hashed
 * file. */
void shoal__kh_hasher_free(shoal__kh_hasher *h)
{
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    h->ctx = NULL;
    h->mac = NULL;
}

static int kh_hmac_sha1(shoal__kh_hasher *h, const uint8_t *salt, size_t saltlen, const char *msg, size_t msglen,
                        uint8_t out[KH_HASH_LEN])
{
    if (!h->ctx) {
        h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        h->ctx = h->mac ? EVP_MAC_CTX_new(h->mac) : NULL;
        if (!h->ctx) {
            shoal__kh_hasher_free(h);
            return SHOAL_ERR_CRYPTO;
        }
    }
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outlen = 0;
    if (EVP_MAC_init(h->ctx, salt, saltlen, params) != 1 ||
        EVP_MAC_update(h->ctx, (const unsigned char *)msg, msglen) != 1 ||
        EVP_MAC_final(h->ctx, out, &outlen, KH_HASH_LEN) != 1 || outlen != KH_HASH_LEN)
        return SHOAL_ERR_CRYPTO;
    return SHOAL_OK;
}

/* Decodes base64 that must yield exactly KH_HASH_LEN bytes. */
static int kh_decode20(const char *p, size_t n, uint8_t out[KH_HASH_LEN])
{
    shoal_buf b;
    shoal_buf_init(&b, 64);
    int rc = shoal_base64_decode(p, n, &b);
    if (rc == SHOAL_OK && shoal_buf_len(&b) != KH_HASH_LEN)
        rc = SHOAL_ERR_BAD_FORMAT;
    if (rc == SHOAL_OK)
        memcpy(out, shoal_buf_ptr(&b), KH_HASH_LEN);
    shoal_buf_free(&b);
    return rc;
}

int shoal__kh_hashed_parse(const char *f, size_t flen, uint8_t salt[KH_HASH_LEN], uint8_t want[KH_HASH_LEN])
{
    if (flen < 3 || memcmp(f, "|1|", 3) != 0)
        return SHOAL_ERR_BAD_FORMAT;
    const char *salt64 = f + 3;
    const char *bar = memchr(salt64, '|', flen - 3);
    if (!bar)
        return SHOAL_ERR_BAD_FORMAT;
    if (kh_decode20(salt64, (size_t)(bar - salt64), salt) != SHOAL_OK ||
        kh_decode20(bar + 1, flen - (size_t)(bar + 1 - f), want) != SHOAL_OK)
        return SHOAL_ERR_BAD_FORMAT;
    return SHOAL_OK;
}

int shoal__kh_hashed_check(shoal__kh_hasher *h, const uint8_t salt[KH_HASH_LEN], const uint8_t want[KH_HASH_LEN],
                           const char *q, size_t qlen)
{
    uint8_t got[KH_HASH_LEN];
    int rc = kh_hmac_sha1(h, salt, KH_HASH_LEN, q, qlen, got);
    if (rc)
        return rc;
    /* Constant time: the stored hash is the secret a file reader should not
     * be able to probe for through timing. */
    return CRYPTO_memcmp(got, want, KH_HASH_LEN) == 0;
}

/* "|1|base64(salt)|base64(hmac)": 1 on match, 0 on no match,
 * SHOAL_ERR_BAD_FORMAT when the field is not a valid hashed entry. */
static int kh_match_hashed(shoal__kh_hasher *h, const char *f, size_t flen, const char *q, size_t qlen)
{
    uint8_t salt[KH_HASH_LEN], want[KH_HASH_LEN];
    int rc = shoal__kh_hashed_parse(f, flen, salt, want);
    if (rc)
        return rc;
    return shoal__kh_hashed_check(h, salt, want, q, qlen);
}

/* Whole hosts field: hashed entry or plain pattern list. 1 / 0 / negative. */
static int kh_match_field(shoal__kh_hasher *h, const char *f, size_t flen, const char *q, size_t qlen)
{
    if (flen > 0 && f[0] == '|')
        return kh_match_hashed(h, f, flen, q, qlen);
    return shoal__kh_match_plain_list(f, flen, q, qlen);
}

int shoal__kh_make_query(const char *host, unsigned port, char *out, size_t outsz, size_t *outlen)
{
    if (!host)
        return SHOAL_ERR_INVALID_ARG;
    size_t hlen = strlen(host);
    if (hlen == 0 || hlen > KH_MAX_HOST || port > 65535)
        return SHOAL_ERR_INVALID_ARG;
    char low[KH_MAX_HOST + 1];
    for (size_t i = 0; i < hlen; i++)
        low[i] = (char)kh_lower((unsigned char)host[i]);
    low[hlen] = 0;
    int n;
    /* Port 0 means "default", as in OpenSSH's put_host_port(). */
    if (port == 0 || port == 22)
        n = snprintf(out, outsz, "%s", low);
    else
        n = snprintf(out, outsz, "[%s]:%u", low, port);
    if (n < 0 || (size_t)n >= outsz)
        return SHOAL_ERR_INVALID_ARG;
    *outlen = (size_t)n;
    return SHOAL_OK;
}

int shoal_knownhosts_match_patterns(const char *patterns, size_t len, const char *host_or_bracketed)
{
    if (!patterns || !host_or_bracketed)
        return 0;
    size_t qlen = strlen(host_or_bracketed);
    if (qlen > KH_MAX_QUERY)
        return 0;
    char q[KH_MAX_QUERY + 1];
    for (size_t i = 0; i < qlen; i++)
        q[i] = (char)kh_lower((unsigned char)host_or_bracketed[i]);
    q[qlen] = 0;
    shoal__kh_hasher h = {NULL, NULL};
    int rc = kh_match_field(&h, patterns, len, q, qlen);
    shoal__kh_hasher_free(&h);
    return rc == 1;
}

/* ---- line scanning ---- */

/* Next whitespace-delimited token at or after *pos within [0, len). */
static int kh_next_token(const char *line, size_t len, size_t *pos, const char **tok, size_t *toklen)
{
    size_t i = *pos;
    while (i < len && kh_is_space(line[i]))
        i++;
    size_t start = i;
    while (i < len && !kh_is_space(line[i]))
        i++;
    *pos = i;
    *tok = line + start;
    *toklen = i - start;
    return i > start;
}

int shoal__kh_parse_line(const char *line, size_t len, shoal__kh_line *out)
{
    memset(out, 0, sizeof(*out));
    if (len > KH_MAX_LINE || memchr(line, 0, len))
        return 0;
    if (len > 0 && line[len - 1] == '\r') /* files edited on Windows */
        len--;
    size_t pos = 0;
    const char *tok;
    size_t toklen;
    if (!kh_next_token(line, len, &pos, &tok, &toklen) || tok[0] == '#')
        return 0; /* blank line or comment */

    out->marker = KH_MARK_NONE;
    if (tok[0] == '@') {
        if (toklen == 8 && memcmp(tok, "@revoked", 8) == 0)
            out->marker = KH_MARK_REVOKED;
        else if (toklen == 15 && memcmp(tok, "@cert-authority", 15) == 0)
            out->marker = KH_MARK_CA;
        else
            return 0; /* unknown marker: OpenSSH skips the line */
        if (!kh_next_token(line, len, &pos, &tok, &toklen))
            return 0;
    }
    out->hosts = tok;
    out->hostslen = toklen;
    if (!kh_next_token(line, len, &pos, &out->type, &out->typelen) ||
        !kh_next_token(line, len, &pos, &out->b64, &out->b64len))
        return 0;
    if (out->typelen >= KH_MAX_TYPE || out->type[0] == '#' || out->b64[0] == '#')
        return 0;
    /* The rest of the line is a comment. */
    return 1;
}

int shoal__kh_foreach_line(const char *buf, size_t len, shoal__kh_line_fn fn, void *ud, unsigned *nlines)
{
    unsigned lineno = 0;
    size_t off = 0;
    int rc = SHOAL_OK;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - buf) : len;
        /* Saturate instead of wrapping on absurd inputs (> 4G lines). */
        if (lineno < UINT32_MAX)
            lineno++;
        shoal__kh_line l;
        if (shoal__kh_parse_line(buf + off, end - off, &l)) {
            rc = fn(ud, &l, lineno);
            if (rc)
                break;
        }
        off = end + 1;
    }
    if (nlines)
        *nlines = lineno;
    return rc;
}

enum shoal__kh_class shoal__kh_classify(enum shoal__kh_marker marker, const char *type, size_t typelen,
                                        const uint8_t *key, size_t keylen, const char *want_type,
                                        size_t want_typelen, const uint8_t *blob, size_t bloblen)
{
    if (marker == KH_MARK_CA || keylen == 0)
        return KH_CLASS_NONE; /* CA lines only matter for certificates; an empty key is no key */
    int same_type = typelen == want_typelen && memcmp(type, want_type, typelen) == 0;
    int same_key = same_type && keylen == bloblen && memcmp(key, blob, bloblen) == 0;
    if (marker == KH_MARK_REVOKED) /* a revoked line never counts as knowing the host */
        return same_key ? KH_CLASS_REVOKED : KH_CLASS_NONE;
    if (same_key)
        return KH_CLASS_MATCH;
    return same_type ? KH_CLASS_MISMATCH : KH_CLASS_OTHER;
}

typedef struct kh_scan {
    const char *q; /* lowercased query */
    size_t qlen;
    const char *keytype;
    size_t keytype_len;
    const uint8_t *blob;
    size_t bloblen;
    shoal__kh_hasher hasher;
    shoal_buf keybuf; /* scratch for decoded key blobs */
    /* First deciding line of each kind (0 = none seen). */
    unsigned revoked, match, mismatch, other;
    char revoked_type[KH_MAX_TYPE], match_type[KH_MAX_TYPE], mismatch_type[KH_MAX_TYPE], other_type[KH_MAX_TYPE];
} kh_scan;

static void kh_set_type(char dst[KH_MAX_TYPE], const char *t, size_t n)
{
    memcpy(dst, t, n);
    dst[n] = 0;
}

/* Handles one parsed line. Returns 0 or a fatal error (crypto / memory);
 * malformed content is simply ignored. */
static int kh_scan_line(void *ud, const shoal__kh_line *l, unsigned lineno)
{
    kh_scan *s = ud;
    if (l->marker == KH_MARK_CA)
        return SHOAL_OK; /* only meaningful for certificates; never decides a plain key */

    int m = kh_match_field(&s->hasher, l->hosts, l->hostslen, s->q, s->qlen);
    if (m == SHOAL_ERR_CRYPTO || m == SHOAL_ERR_NOMEM)
        return m;
    if (m != 1)
        return SHOAL_OK; /* other host, or a broken hashed entry */

    /* Decode only lines naming our host: base64 of every line would be waste. */
    shoal_buf_reset(&s->keybuf);
    int rc = shoal_base64_decode(l->b64, l->b64len, &s->keybuf);
    if (rc == SHOAL_ERR_NOMEM)
        return rc;
    if (rc != SHOAL_OK)
        return SHOAL_OK;

    switch (shoal__kh_classify(l->marker, l->type, l->typelen, shoal_buf_ptr(&s->keybuf),
                               shoal_buf_len(&s->keybuf), s->keytype, s->keytype_len, s->blob, s->bloblen)) {
    case KH_CLASS_REVOKED:
        if (!s->revoked) {
            s->revoked = lineno;
            kh_set_type(s->revoked_type, l->type, l->typelen);
        }
        break;
    case KH_CLASS_MATCH:
        if (!s->match) {
            s->match = lineno;
            kh_set_type(s->match_type, l->type, l->typelen);
        }
        break;
    case KH_CLASS_MISMATCH:
        if (!s->mismatch) {
            s->mismatch = lineno;
            kh_set_type(s->mismatch_type, l->type, l->typelen);
        }
        break;
    case KH_CLASS_OTHER:
        if (!s->other) {
            s->other = lineno;
            kh_set_type(s->other_type, l->type, l->typelen);
        }
        break;
    case KH_CLASS_NONE:
        break;
    }
    return SHOAL_OK;
}

static void kh_decide(const kh_scan *s, shoal_kh_result *res)
{
    /* Precedence documented in knownhosts.h: REVOKED > MATCH > MISMATCH > OTHER_TYPE. */
    if (s->revoked) {
        res->status = SHOAL_KH_REVOKED;
        res->line = s->revoked;
        memcpy(res->keytype, s->revoked_type, sizeof(res->keytype));
    } else if (s->match) {
        res->status = SHOAL_KH_MATCH;
        res->line = s->match;
        memcpy(res->keytype, s->match_type, sizeof(res->keytype));
    } else if (s->mismatch) {
        res->status = SHOAL_KH_MISMATCH;
        res->line = s->mismatch;
        memcpy(res->keytype, s->mismatch_type, sizeof(res->keytype));
    } else if (s->other) {
        res->status = SHOAL_KH_OTHER_TYPE;
        res->line = s->other;
        memcpy(res->keytype, s->other_type, sizeof(res->keytype));
    }
}

int shoal_knownhosts_check_buf(const char *buf, size_t len, const char *host, unsigned port,
                               const char *keytype, const uint8_t *blob, size_t bloblen, shoal_kh_result *res)
{
    if (res)
        memset(res, 0, sizeof(*res));
    /* An empty blob is allowed: it never matches (no valid line decodes to
     * an empty key), so callers can probe "is this key type known for the
     * host?" and get MISMATCH for yes. */
    if (!res || (!buf && len) || !keytype || (!blob && bloblen))
        return SHOAL_ERR_INVALID_ARG;
    size_t ktlen = strlen(keytype);
    if (ktlen == 0 || ktlen >= sizeof(res->keytype))
        return SHOAL_ERR_INVALID_ARG;

    char q[KH_MAX_QUERY + 1];
    kh_scan s;
    memset(&s, 0, sizeof(s));
    int rc = shoal__kh_make_query(host, port, q, sizeof(q), &s.qlen);
    if (rc)
        return rc;
    s.q = q;
    s.keytype = keytype;
    s.keytype_len = ktlen;
    s.blob = blob;
    s.bloblen = bloblen;
    shoal_buf_init(&s.keybuf, KH_MAX_LINE);

    rc = shoal__kh_foreach_line(buf, len, kh_scan_line, &s, NULL);
    if (rc == SHOAL_OK)
        kh_decide(&s, res);
    shoal__kh_hasher_free(&s.hasher);
    shoal_buf_free(&s.keybuf);
    return rc;
}

/* Reads the whole file: see knownhosts_internal.h. */
static int sys_error(int e, int *sys_errno)
{
    if (sys_errno)
        *sys_errno = e;
    return (e == EACCES || e == EPERM) ? SHOAL_ERR_PERMISSION : SHOAL_ERR_IO;
}

int shoal__kh_read_file(const char *path, char **data, size_t *len, int *sys_errno)
{
    *data = NULL;
    *len = 0;
    if (sys_errno)
        *sys_errno = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SHOAL_OK;
        int e = errno;
        int rc = sys_error(e, sys_errno);
        errno = e;
        return rc;
    }
    int read_errno = 0;
    size_t cap = 0, n = 0;
    char *b = NULL;
    int rc = SHOAL_OK;
    /* Read to EOF rather than trusting st_size: /dev/null and pipes are
     * legitimate known_hosts "files" too. */
    for (;;) {
        if (n == cap) {
            if (cap > KH_MAX_FILE) {
                rc = SHOAL_ERR_TOO_LARGE;
                break;
            }
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > KH_MAX_FILE + 1)
                ncap = KH_MAX_FILE + 1; /* one byte past the cap detects oversize files */
            char *nb = realloc(b, ncap);
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
            read_errno = errno;
            rc = sys_error(read_errno, sys_errno);
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > KH_MAX_FILE) {
            rc = SHOAL_ERR_TOO_LARGE;
            break;
        }
    }
    close(fd);
    if (rc) {
        free(b);
        errno = read_errno;
        return rc;
    }
    if (!b) {
        b = malloc(1); /* empty file: still return a buffer so callers can tell */
        if (!b)
            return SHOAL_ERR_NOMEM;
    }
    *data = b;
    *len = n;
    return SHOAL_OK;
}

int shoal_knownhosts_check_file(const char *path, const char *host, unsigned port, const char *keytype,
                                const uint8_t *blob, size_t bloblen, shoal_kh_result *res)
{
    if (res)
        memset(res, 0, sizeof(*res));
    if (!path || !res)
        return SHOAL_ERR_INVALID_ARG;
    char *data;
    size_t len;
    int rc = shoal__kh_read_file(path, &data, &len, NULL);
    if (rc)
        return rc; /* errno is the system's reason */
    /* A missing file still validates the arguments, then reports NOT_FOUND. */
    rc = shoal_knownhosts_check_buf(data ? data : "", len, host, port, keytype, blob, bloblen, res);
    free(data);
    return rc;
}

void shoal_knownhosts_read_error(const char *path, int rc, int sys_errno, char *buf, size_t sz)
{
    const char *why;
    char tmp[64];
    if ((rc == SHOAL_ERR_IO || rc == SHOAL_ERR_PERMISSION) && sys_errno)
        why = strerror_r(sys_errno, tmp, sizeof(tmp));
    else if (rc == SHOAL_ERR_TOO_LARGE)
        why = "larger than the 64 MiB limit";
    else
        why = shoal_strerror(rc);
    snprintf(buf, sz, "cannot read known_hosts file %s: %s", path ? path : "?", why);
}

/* ---- appending ---- */

/* Host names we write must not be able to change the meaning of the line:
 * no whitespace or control bytes (field/line separators), no pattern
 * syntax, no brackets (we add our own for the port), no leading marker or
 * comment character. */
static int kh_host_ok(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n > KH_MAX_HOST || host[0] == '@' || host[0] == '#')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c >= 0x7f || strchr(",*?!|[]#", c))
            return 0;
    }
    return 1;
}

static int kh_keytype_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= 64 || t[0] == '#')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f)
            return 0;
    }
    return 1;
}

/* Creates the parent directory of path (one level, mode 0700) if missing,
 * as ssh does for ~/.ssh. */
static int kh_make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return SHOAL_OK; /* relative name in the cwd, or a file in "/" */
    size_t dlen = (size_t)(slash - path);
    char *dir = malloc(dlen + 1);
    if (!dir)
        return SHOAL_ERR_NOMEM;
    memcpy(dir, path, dlen);
    dir[dlen] = 0;
    int rc = SHOAL_OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = SHOAL_ERR_IO;
    free(dir);
    return rc;
}

/* "|1|salt|hmac" for query q, with a fresh random salt. */
static int kh_hash_host(const char *q, size_t qlen, shoal_buf *out)
{
    uint8_t salt[KH_HASH_LEN], mac[KH_HASH_LEN];
    char salt64[64], mac64[64];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return SHOAL_ERR_CRYPTO;
    shoal__kh_hasher h = {NULL, NULL};
    int rc = kh_hmac_sha1(&h, salt, sizeof(salt), q, qlen, mac);
    shoal__kh_hasher_free(&h);
    if (rc == SHOAL_OK)
        rc = shoal_base64_encode(salt, sizeof(salt), salt64, sizeof(salt64), 1);
    if (rc == SHOAL_OK)
        rc = shoal_base64_encode(mac, sizeof(mac), mac64, sizeof(mac64), 1);
    if (rc == SHOAL_OK) {
        rc = shoal_buf_put(out, "|1|", 3);
        if (!rc)
            rc = shoal_buf_put(out, salt64, strlen(salt64));
        if (!rc)
            rc = shoal_buf_put_u8(out, '|');
        if (!rc)
            rc = shoal_buf_put(out, mac64, strlen(mac64));
    }
    return rc;
}

/* Builds the complete line (with newline) for append. */
static int kh_build_line(const char *host, unsigned port, const char *keytype, const uint8_t *blob,
                         size_t bloblen, int hash, shoal_buf *line)
{
    char q[KH_MAX_QUERY + 1];
    size_t qlen;
    int rc = shoal__kh_make_query(host, port, q, sizeof(q), &qlen);
    if (rc)
        return rc;
    rc = hash ? kh_hash_host(q, qlen, line) : shoal_buf_put(line, q, qlen);
    if (rc)
        return rc;
    size_t b64sz = (bloblen + 2) / 3 * 4 + 1;
    char *b64 = malloc(b64sz);
    if (!b64)
        return SHOAL_ERR_NOMEM;
    rc = shoal_base64_encode(blob, bloblen, b64, b64sz, 1);
    if (!rc)
        rc = shoal_buf_put_u8(line, ' ');
    if (!rc)
        rc = shoal_buf_put(line, keytype, strlen(keytype));
    if (!rc)
        rc = shoal_buf_put_u8(line, ' ');
    if (!rc)
        rc = shoal_buf_put(line, b64, strlen(b64));
    if (!rc)
        rc = shoal_buf_put_u8(line, '\n');
    free(b64);
    return rc;
}

/* Writes all of p, retrying on EINTR and (rare) short writes. */
static int kh_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return SHOAL_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return SHOAL_OK;
}

int shoal__kh_append_check(const char *host, unsigned port, const char *keytype, const uint8_t *blob,
                           size_t bloblen)
{
    if (!host || !keytype || !blob || bloblen == 0)
        return SHOAL_ERR_INVALID_ARG;
    if (!kh_host_ok(host) || !kh_keytype_ok(keytype) || port > 65535)
        return SHOAL_ERR_INVALID_ARG;
    if (bloblen > KH_MAX_APPEND_BLOB)
        return SHOAL_ERR_TOO_LARGE;
    return SHOAL_OK;
}

int shoal_knownhosts_append(const char *path, const char *host, unsigned port, const char *keytype,
                            const uint8_t *blob, size_t bloblen, int hash)
{
    if (!path || !*path)
        return SHOAL_ERR_INVALID_ARG;
    int rc = shoal__kh_append_check(host, port, keytype, blob, bloblen);
    if (rc)
        return rc;

    shoal_buf line;
    shoal_buf_init(&line, KH_MAX_LINE + 2);
    /* Reserve the first byte for a newline that repairs a file whose last
     * line was not terminated; it is dropped again when not needed. */
    rc = shoal_buf_put_u8(&line, '\n');
    if (!rc)
        rc = kh_build_line(host, port, keytype, blob, bloblen, hash, &line);
    if (!rc)
        rc = kh_make_parent(path);
    if (rc) {
        shoal_buf_free(&line);
        return rc;
    }

    /* O_RDWR (not O_WRONLY) so we can peek at the current last byte;
     * O_APPEND makes the single write land at the end even with concurrent
     * appenders. */
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        shoal_buf_free(&line);
        return SHOAL_ERR_IO;
    }
    struct stat st;
    int need_nl = 0;
    if (fstat(fd, &st) != 0) {
        rc = SHOAL_ERR_IO;
    } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
        char last = '\n';
        ssize_t r;
        do
            r = pread(fd, &last, 1, st.st_size - 1);
        while (r < 0 && errno == EINTR);
        if (r != 1)
            rc = SHOAL_ERR_IO;
        need_nl = last != '\n';
    }
    if (!rc) {
        const uint8_t *p = shoal_buf_ptr(&line);
        size_t n = shoal_buf_len(&line);
        if (!need_nl) {
            p++;
            n--;
        }
        rc = kh_write_all(fd, p, n);
    }
    if (close(fd) != 0 && !rc)
        rc = SHOAL_ERR_IO;
    shoal_buf_free(&line);
    return rc;
}
