/* Checked SSH wire buffers: see buf.h. */
#include "wire/buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void shoal_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int shoal_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void shoal_buf_init(shoal_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void shoal_buf_free(shoal_buf *b)
{
    if (b->data) {
        shoal_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}

void shoal_buf_reset(shoal_buf *b)
{
    if (b->data)
        shoal_wipe(b->data, b->len);
    b->len = b->off = 0;
}

static size_t buf_max(const shoal_buf *b)
{
    return b->max ? b->max : SHOAL_BUF_DEFAULT_MAX;
}

int shoal_buf_reserve(shoal_buf *b, size_t n, uint8_t **out)
{
    if (out)
        *out = NULL;
    if (n > buf_max(b) || b->len - b->off > buf_max(b) - n)
        return SHOAL_ERR_TOO_LARGE;
    if (b->len + n > b->cap) {
        /* Reclaim consumed space first; it is cheaper than growing. */
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t want = b->cap ? b->cap : 256;
            while (want < b->len + n)
                want *= 2;
            uint8_t *nd = malloc(want);
            if (!nd)
                return SHOAL_ERR_NOMEM;
            if (b->data) {
                memcpy(nd, b->data, b->len);
                shoal_wipe(b->data, b->cap);
                free(b->data);
            }
            b->data = nd;
            b->cap = want;
        }
    }
    if (out)
        *out = b->data + b->len;
    b->len += n;
    return SHOAL_OK;
}

void shoal_buf_consume(shoal_buf *b, size_t n)
{
    size_t have = b->len - b->off;
    if (n >= have) {
        b->len = b->off = 0;
        return;
    }
    b->off += n;
}

void shoal_buf_truncate(shoal_buf *b, size_t n)
{
    if (n < b->len - b->off)
        b->len = b->off + n;
}

int shoal_buf_put(shoal_buf *b, const void *p, size_t n)
{
    uint8_t *d;
    int rc = shoal_buf_reserve(b, n, &d);
    if (rc)
        return rc;
    if (n)
        memcpy(d, p, n);
    return SHOAL_OK;
}

int shoal_buf_put_u8(shoal_buf *b, uint8_t v)
{
    return shoal_buf_put(b, &v, 1);
}

int shoal_buf_put_bool(shoal_buf *b, int v)
{
    return shoal_buf_put_u8(b, v ? 1 : 0);
}

int shoal_buf_put_u32(shoal_buf *b, uint32_t v)
{
    uint8_t t[4];
    shoal_store_u32(t, v);
    return shoal_buf_put(b, t, 4);
}

int shoal_buf_put_u64(shoal_buf *b, uint64_t v)
{
    uint8_t t[8];
    shoal_store_u32(t, (uint32_t)(v >> 32));
    shoal_store_u32(t + 4, (uint32_t)v);
    return shoal_buf_put(b, t, 8);
}

int shoal_buf_put_string(shoal_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return SHOAL_ERR_TOO_LARGE;
    int rc = shoal_buf_put_u32(b, (uint32_t)n);
    if (rc)
        return rc;
    return shoal_buf_put(b, p, n);
}

int shoal_buf_put_cstring(shoal_buf *b, const char *s)
{
    return shoal_buf_put_string(b, s, s ? strlen(s) : 0);
}

int shoal_buf_put_mpint(shoal_buf *b, const uint8_t *mag, size_t n)
{
    while (n > 0 && mag[0] == 0) {
        mag++;
        n--;
    }
    int pad = (n > 0 && (mag[0] & 0x80)) ? 1 : 0;
    if (n + pad > UINT32_MAX)
        return SHOAL_ERR_TOO_LARGE;
    int rc = shoal_buf_put_u32(b, (uint32_t)(n + pad));
    if (!rc && pad)
        rc = shoal_buf_put_u8(b, 0);
    if (!rc)
        rc = shoal_buf_put(b, mag, n);
    return rc;
}

int shoal_buf_begin_string(shoal_buf *b, size_t *mark)
{
    *mark = b->len - b->off;
    return shoal_buf_put_u32(b, 0);
}

void shoal_buf_end_string(shoal_buf *b, size_t mark)
{
    size_t n = (b->len - b->off) - mark - 4;
    shoal_store_u32(b->data + b->off + mark, (uint32_t)n);
}

/* ---- reader ---- */

int shoal_rd_bytes(shoal_rd *r, size_t n, const uint8_t **p)
{
    if (shoal_rd_left(r) < n) {
        if (p)
            *p = NULL;
        return SHOAL_ERR_TRUNCATED;
    }
    if (p)
        *p = r->p + r->pos;
    r->pos += n;
    return SHOAL_OK;
}

int shoal_rd_skip(shoal_rd *r, size_t n)
{
    return shoal_rd_bytes(r, n, NULL);
}

int shoal_rd_u8(shoal_rd *r, uint8_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = shoal_rd_bytes(r, 1, &p);
    if (!rc)
        *v = p[0];
    return rc;
}

int shoal_rd_bool(shoal_rd *r, int *v)
{
    uint8_t b;
    int rc = shoal_rd_u8(r, &b);
    *v = b != 0;
    return rc;
}

int shoal_rd_u32(shoal_rd *r, uint32_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = shoal_rd_bytes(r, 4, &p);
    if (!rc)
        *v = shoal_load_u32(p);
    return rc;
}

int shoal_rd_u64(shoal_rd *r, uint64_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = shoal_rd_bytes(r, 8, &p);
    if (!rc)
        *v = ((uint64_t)shoal_load_u32(p) << 32) | shoal_load_u32(p + 4);
    return rc;
}

int shoal_rd_string(shoal_rd *r, const uint8_t **p, size_t *n)
{
    size_t save = r->pos;
    uint32_t len;
    *p = NULL;
    *n = 0;
    int rc = shoal_rd_u32(r, &len);
    if (!rc)
        rc = shoal_rd_bytes(r, len, p);
    if (rc) {
        r->pos = save;
        *p = NULL;
        return rc;
    }
    *n = len;
    return SHOAL_OK;
}

int shoal_rd_cstring(shoal_rd *r, const char **p, size_t *n)
{
    const uint8_t *s;
    size_t save = r->pos;
    *p = NULL;
    *n = 0;
    int rc = shoal_rd_string(r, &s, n);
    if (rc)
        return rc;
    if (memchr(s, 0, *n)) {
        r->pos = save;
        *n = 0;
        return SHOAL_ERR_BAD_FORMAT;
    }
    *p = (const char *)s;
    return SHOAL_OK;
}

int shoal_rd_sub(shoal_rd *r, shoal_rd *sub)
{
    const uint8_t *p;
    size_t n;
    int rc = shoal_rd_string(r, &p, &n);
    shoal_rd_init(sub, rc ? NULL : p, rc ? 0 : n);
    return rc;
}

int shoal_rd_mpint_max(shoal_rd *r, size_t max, const uint8_t **mag, size_t *n)
{
    const uint8_t *p;
    size_t len, save = r->pos;
    *mag = NULL;
    *n = 0;
    int rc = shoal_rd_string(r, &p, &len);
    if (rc)
        return rc;
    rc = SHOAL_ERR_BAD_FORMAT;
    if (len > 0 && (p[0] & 0x80))
        goto fail; /* negative */
    if (len > 0 && p[0] == 0 && (len == 1 || !(p[1] & 0x80)))
        goto fail; /* not minimal (zero is the empty string) */
    if (len > 0 && p[0] == 0) {
        p++;
        len--;
    }
    if (len > max) {
        rc = SHOAL_ERR_TOO_LARGE;
        goto fail;
    }
    *mag = p;
    *n = len;
    return SHOAL_OK;
fail:
    r->pos = save;
    return rc;
}

int shoal_rd_mpint(shoal_rd *r, const uint8_t **mag, size_t *n)
{
    return shoal_rd_mpint_max(r, SHOAL_MAX_MPINT_BYTES, mag, n);
}

int shoal_rd_namelist(shoal_rd *r, const char **p, size_t *n)
{
    const uint8_t *s;
    size_t len, save = r->pos;
    *p = NULL;
    *n = 0;
    int rc = shoal_rd_string(r, &s, &len);
    if (rc)
        return rc;
    if (len > SHOAL_MAX_NAMELIST) {
        r->pos = save;
        return SHOAL_ERR_TOO_LARGE;
    }
    size_t names = len ? 1 : 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == ',') {
            if (i == 0 || i + 1 == len || s[i - 1] == ',')
                goto bad; /* empty name */
            names++;
        } else if (c <= 0x20 || c >= 0x7f) {
            goto bad;
        }
    }
    if (names > SHOAL_MAX_NAMES) {
        r->pos = save;
        return SHOAL_ERR_TOO_LARGE;
    }
    *p = (const char *)s;
    *n = len;
    return SHOAL_OK;
bad:
    r->pos = save;
    return SHOAL_ERR_BAD_FORMAT;
}

int shoal_rd_end(const shoal_rd *r)
{
    return shoal_rd_left(r) ? SHOAL_ERR_TRAILING : SHOAL_OK;
}

/* ---- name-lists ---- */

int shoal_namelist_next(const char **cursor, const char *end, const char **name, size_t *len)
{
    const char *c = *cursor;
    if (!c || c >= end)
        return 0;
    const char *comma = memchr(c, ',', (size_t)(end - c));
    const char *stop = comma ? comma : end;
    *name = c;
    *len = (size_t)(stop - c);
    *cursor = comma ? comma + 1 : end;
    return 1;
}

int shoal_namelist_has(const char *p, size_t n, const char *name)
{
    const char *cur = p, *end = p + n, *nm;
    size_t l, want = strlen(name);
    while (shoal_namelist_next(&cur, end, &nm, &l))
        if (l == want && memcmp(nm, name, l) == 0)
            return 1;
    return 0;
}

int shoal_namelist_choose(const char *ours, size_t ours_len, const char *theirs, size_t theirs_len,
                          char *out, size_t outsz)
{
    const char *cur = ours, *end = ours + ours_len, *nm;
    size_t l;
    if (outsz)
        out[0] = 0;
    while (shoal_namelist_next(&cur, end, &nm, &l)) {
        const char *c2 = theirs, *e2 = theirs + theirs_len, *n2;
        size_t l2;
        while (shoal_namelist_next(&c2, e2, &n2, &l2)) {
            if (l == l2 && memcmp(nm, n2, l) == 0) {
                if (l + 1 > outsz)
                    return SHOAL_ERR_TOO_LARGE;
                memcpy(out, nm, l);
                out[l] = 0;
                return SHOAL_OK;
            }
        }
    }
    return SHOAL_ERR_NO_ALGORITHM;
}
