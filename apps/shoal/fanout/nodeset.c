/* Node sets: expansion of bracket patterns and folding of name lists.
 * See nodeset.h for the syntax. No global state; every allocation checked;
 * no recursion (the sort is a bottom-up merge sort). */
#include "nodeset.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Numbers longer than this are not ranges (expansion: error; folding: text). */
#define NS_MAX_DIGITS 18

static int ns_isdigit(int c)
{
    return c >= '0' && c <= '9';
}

static void ns_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ns_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || errsz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

const char *nodeset_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case NODESET_ESYNTAX:
        return "bad node set syntax";
    case NODESET_ERANGE:
        return "bad range in node set";
    case NODESET_ETOOMANY:
        return "node set expands to too many names";
    case NODESET_ENOMEM:
        return "out of memory";
    default:
        return "unknown node set error";
    }
}

void nodeset_free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------------------------------ */
/* Expansion                                                           */
/* ------------------------------------------------------------------ */

typedef struct ns_range {
    uint64_t lo, hi, step;
    unsigned pad; /* minimum width, 0 = none */
} ns_range;

/* A range list; values are generated on the fly, never stored. */
typedef struct ns_group {
    ns_range *r;
    size_t nr;
    size_t count; /* number of values */
    size_t ri;    /* odometer: current range */
    uint64_t cur; /* odometer: current value */
} ns_group;

/* Parses an unsigned decimal of len digits (1..NS_MAX_DIGITS). */
static int ns_parse_uint(const char *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > NS_MAX_DIGITS)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!ns_isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* One range element "lo", "lo-hi" or "lo-hi/step". */
static int ns_parse_elem(const char *p, size_t len, uint64_t *lo, uint64_t *hi, uint64_t *step,
                         unsigned *pad, const char *item, char *err, size_t errsz)
{
    const char *dash = memchr(p, '-', len);
    const char *slash = memchr(p, '/', len);
    size_t lolen = dash ? (size_t)(dash - p) : (slash ? (size_t)(slash - p) : len);

    if (len == 0) {
        ns_err(err, errsz, "empty range element in \"%s\"", item);
        return NODESET_ESYNTAX;
    }
    if (lolen == 0 || (slash && !dash) || (dash && slash && slash < dash)) {
        ns_err(err, errsz, "bad range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ESYNTAX;
    }
    if (lolen > NS_MAX_DIGITS) {
        ns_err(err, errsz, "number too long in \"%s\"", item);
        return NODESET_ERANGE;
    }
    if (ns_parse_uint(p, lolen, lo) != 0) {
        ns_err(err, errsz, "bad range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ESYNTAX;
    }
    *pad = (p[0] == '0' && lolen > 1) ? (unsigned)lolen : 0;
    *hi = *lo;
    *step = 1;
    if (!dash)
        return 0;

    const char *h = dash + 1;
    const char *end = p + len;
    size_t hilen = slash ? (size_t)(slash - h) : (size_t)(end - h);
    if (hilen == 0 || memchr(h, '-', (size_t)(end - h))) {
        ns_err(err, errsz, "bad range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ESYNTAX;
    }
    if (hilen > NS_MAX_DIGITS) {
        ns_err(err, errsz, "number too long in \"%s\"", item);
        return NODESET_ERANGE;
    }
    if (ns_parse_uint(h, hilen, hi) != 0) {
        ns_err(err, errsz, "bad range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ESYNTAX;
    }
    if (h[0] == '0' && hilen > 1 && hilen != lolen) {
        ns_err(err, errsz, "padding mismatch in range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ERANGE;
    }
    if (*hi < *lo) {
        ns_err(err, errsz, "reversed range \"%.*s\" in \"%s\"", (int)len, p, item);
        return NODESET_ERANGE;
    }
    if (slash) {
        const char *s = slash + 1;
        size_t slen = (size_t)(end - s);
        if (slen == 0 || memchr(s, '/', slen) || ns_parse_uint(s, slen, step) != 0) {
            ns_err(err, errsz, "bad range step \"%.*s\" in \"%s\"", (int)len, p, item);
            return slen > NS_MAX_DIGITS ? NODESET_ERANGE : NODESET_ESYNTAX;
        }
        if (*step == 0) {
            ns_err(err, errsz, "zero range step \"%.*s\" in \"%s\"", (int)len, p, item);
            return NODESET_ERANGE;
        }
    }
    return 0;
}

/* Parses a range list (content of a bracket) into g. Counts first, so a
 * list of more than max_n values fails before anything is allocated. */
static int ns_parse_ranges(const char *c, size_t clen, size_t max_n, ns_group *g, const char *item,
                           char *err, size_t errsz)
{
    size_t count = 0, nr = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = c;
        const char *end = c + clen;
        nr = 0;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t elen = comma ? (size_t)(comma - p) : (size_t)(end - p);
            uint64_t lo, hi, step;
            unsigned pad;
            int rc = ns_parse_elem(p, elen, &lo, &hi, &step, &pad, item, err, errsz);
            if (rc != 0)
                return rc;
            uint64_t cnt = (hi - lo) / step + 1;
            if (pass == 0) {
                if (cnt > (uint64_t)(max_n - count)) {
                    ns_err(err, errsz, "\"%s\" expands to more than %zu names", item, max_n);
                    return NODESET_ETOOMANY;
                }
                count += (size_t)cnt;
            } else {
                g->r[nr].lo = lo;
                g->r[nr].hi = lo + (cnt - 1) * step; /* last value actually reached */
                g->r[nr].step = step;
                g->r[nr].pad = pad;
            }
            nr++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (pass == 0) {
            g->r = malloc(nr * sizeof *g->r);
            if (!g->r) {
                ns_err(err, errsz, "out of memory");
                return NODESET_ENOMEM;
            }
        }
    }
    g->nr = nr;
    g->count = count;
    g->ri = 0;
    g->cur = g->r[0].lo;
    return 0;
}

static int ns_is_range_content(const char *c, size_t len)
{
    int digit = 0;
    for (size_t i = 0; i < len; i++) {
        if (ns_isdigit((unsigned char)c[i]))
            digit = 1;
        else if (c[i] != ',' && c[i] != '-' && c[i] != '/')
            return 0;
    }
    return digit;
}

typedef struct ns_out {
    char **names;
    size_t n, cap;
} ns_out;

/* Expands one top-level item (len bytes at s, already trimmed) onto out. */
static int ns_expand_item(const char *s, size_t len, ns_out *out, size_t max_n, char *err,
                          size_t errsz)
{
    int rc = 0;
    char *item = malloc(len + 1);
    char *lit = malloc(len + 1);
    size_t nseg = len / 2 + 2; /* groups are >= 3 bytes each */
    size_t *lit_off = calloc(nseg, sizeof *lit_off);
    size_t *lit_len = calloc(nseg, sizeof *lit_len);
    ns_group *groups = calloc(nseg, sizeof *groups);
    char *buf = NULL;
    size_t ngroups = 0, litpos = 0;

    if (!item || !lit || !lit_off || !lit_len || !groups) {
        ns_err(err, errsz, "out of memory");
        rc = NODESET_ENOMEM;
        goto done;
    }
    memcpy(item, s, len);
    item[len] = '\0';

    lit_off[0] = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '[') {
            const char *close = memchr(s + i + 1, ']', len - i - 1);
            const char *open = memchr(s + i + 1, '[', len - i - 1);
            if (!close) {
                ns_err(err, errsz, "unbalanced '[' in \"%s\"", item);
                rc = NODESET_ESYNTAX;
                goto done;
            }
            if (open && open < close) {
                ns_err(err, errsz, "nested '[' in \"%s\"", item);
                rc = NODESET_ESYNTAX;
                goto done;
            }
            const char *c = s + i + 1;
            size_t clen = (size_t)(close - c);
            if (clen == 0) {
                ns_err(err, errsz, "empty brackets in \"%s\"", item);
                rc = NODESET_ESYNTAX;
                goto done;
            }
            if (ns_is_range_content(c, clen)) {
                rc = ns_parse_ranges(c, clen, max_n, &groups[ngroups], item, err, errsz);
                if (rc != 0)
                    goto done;
                lit_len[ngroups] = litpos - lit_off[ngroups];
                ngroups++;
                lit_off[ngroups] = litpos;
            } else {
                for (size_t k = 0; k < clen; k++) {
                    unsigned char cc = (unsigned char)c[k];
                    if (cc <= ' ' || cc == 0x7f) {
                        ns_err(err, errsz, "blank or control character in \"%s\"", item);
                        rc = NODESET_ESYNTAX;
                        goto done;
                    }
                }
                memcpy(lit + litpos, s + i, clen + 2);
                litpos += clen + 2;
            }
            i += clen + 2;
        } else if (ch == ']') {
            ns_err(err, errsz, "unbalanced ']' in \"%s\"", item);
            rc = NODESET_ESYNTAX;
            goto done;
        } else if (ch <= ' ' || ch == 0x7f) {
            ns_err(err, errsz, "blank or control character in \"%s\"", item);
            rc = NODESET_ESYNTAX;
            goto done;
        } else {
            lit[litpos++] = (char)ch;
            i++;
        }
    }
    lit_len[ngroups] = litpos - lit_off[ngroups];

    /* Number of names: product of group sizes, bounded by what is left. */
    size_t room = max_n - out->n;
    size_t total = 1;
    for (size_t gi = 0; gi < ngroups; gi++) {
        if (groups[gi].count > room || groups[gi].count > room / total) {
            ns_err(err, errsz, "\"%s\" expands to more than %zu names", item, max_n);
            rc = NODESET_ETOOMANY;
            goto done;
        }
        total *= groups[gi].count;
    }
    if (total > room) {
        ns_err(err, errsz, "\"%s\" expands to more than %zu names", item, max_n);
        rc = NODESET_ETOOMANY;
        goto done;
    }
    if (out->n + total > out->cap) {
        size_t ncap = out->cap ? out->cap : 16;
        while (ncap < out->n + total)
            ncap = ncap > SIZE_MAX / 2 ? out->n + total : ncap * 2;
        if (ncap > SIZE_MAX / sizeof(char *)) {
            rc = NODESET_ENOMEM;
            ns_err(err, errsz, "out of memory");
            goto done;
        }
        char **nn = realloc(out->names, ncap * sizeof *nn);
        if (!nn) {
            ns_err(err, errsz, "out of memory");
            rc = NODESET_ENOMEM;
            goto done;
        }
        out->names = nn;
        out->cap = ncap;
    }

    size_t bufsz = litpos + ngroups * 24 + 1;
    buf = malloc(bufsz);
    if (!buf) {
        ns_err(err, errsz, "out of memory");
        rc = NODESET_ENOMEM;
        goto done;
    }
    for (size_t made = 0; made < total; made++) {
        size_t pos = 0;
        for (size_t gi = 0; gi <= ngroups; gi++) {
            memcpy(buf + pos, lit + lit_off[gi], lit_len[gi]);
            pos += lit_len[gi];
            if (gi < ngroups) {
                const ns_group *gr = &groups[gi];
                int w = snprintf(buf + pos, bufsz - pos, "%0*" PRIu64, (int)gr->r[gr->ri].pad,
                                 gr->cur);
                if (w < 0) {
                    ns_err(err, errsz, "out of memory");
                    rc = NODESET_ENOMEM;
                    goto done;
                }
                pos += (size_t)w;
            }
        }
        char *name = malloc(pos + 1);
        if (!name) {
            ns_err(err, errsz, "out of memory");
            rc = NODESET_ENOMEM;
            goto done;
        }
        memcpy(name, buf, pos);
        name[pos] = '\0';
        out->names[out->n++] = name;
        /* Odometer: the last group varies fastest. */
        for (size_t gi = ngroups; gi > 0; gi--) {
            ns_group *gr = &groups[gi - 1];
            if (gr->cur < gr->r[gr->ri].hi) {
                gr->cur += gr->r[gr->ri].step;
                break;
            }
            if (++gr->ri < gr->nr) {
                gr->cur = gr->r[gr->ri].lo;
                break;
            }
            gr->ri = 0;
            gr->cur = gr->r[0].lo;
        }
    }

done:
    if (groups)
        for (size_t gi = 0; gi < nseg; gi++)
            free(groups[gi].r);
    free(buf);
    free(groups);
    free(lit_len);
    free(lit_off);
    free(lit);
    free(item);
    return rc;
}

static int ns_isblank(int c)
{
    return c == ' ' || c == '\t';
}

int nodeset_expand_ex(const char *pattern, char ***names, size_t *n, size_t max_n, char *err,
                      size_t errsz)
{
    ns_out out = {0};
    int rc = 0;

    if (names)
        *names = NULL;
    if (n)
        *n = 0;
    if (!pattern || !names || !n) {
        ns_err(err, errsz, "no node set");
        return NODESET_ESYNTAX;
    }

    const char *p = pattern;
    for (;;) {
        /* Find the end of this item: a comma outside brackets. */
        const char *q = p;
        int inb = 0;
        while (*q && (inb || *q != ',')) {
            if (*q == '[')
                inb = 1;
            else if (*q == ']')
                inb = 0;
            q++;
        }
        const char *s = p, *e = q;
        while (s < e && ns_isblank((unsigned char)*s))
            s++;
        while (e > s && ns_isblank((unsigned char)e[-1]))
            e--;
        if (s == e) {
            ns_err(err, errsz, "empty host name in \"%s\"", pattern);
            rc = NODESET_ESYNTAX;
            break;
        }
        rc = ns_expand_item(s, (size_t)(e - s), &out, max_n, err, errsz);
        if (rc != 0)
            break;
        if (!*q)
            break;
        p = q + 1;
    }
    if (rc != 0) {
        nodeset_free_names(out.names, out.n);
        return rc;
    }
    *names = out.names;
    *n = out.n;
    return 0;
}

int nodeset_expand(const char *pattern, char ***names, size_t *n, size_t max_n)
{
    return nodeset_expand_ex(pattern, names, n, max_n, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Natural order and a stable merge sort with context                 */
/* ------------------------------------------------------------------ */

int nodeset_natcmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    while (*x && *y) {
        if (ns_isdigit(*x) && ns_isdigit(*y)) {
            const unsigned char *xs = x, *ys = y;
            while (ns_isdigit(*x))
                x++;
            while (ns_isdigit(*y))
                y++;
            const unsigned char *xz = xs, *yz = ys;
            while (xz < x - 1 && *xz == '0')
                xz++;
            while (yz < y - 1 && *yz == '0')
                yz++;
            size_t xl = (size_t)(x - xz), yl = (size_t)(y - yz);
            if (xl != yl)
                return xl < yl ? -1 : 1;
            int c = memcmp(xz, yz, xl);
            if (c != 0)
                return c < 0 ? -1 : 1;
            size_t xw = (size_t)(x - xs), yw = (size_t)(y - ys);
            if (xw != yw)
                return xw < yw ? -1 : 1;
            continue;
        }
        if (*x != *y)
            return *x < *y ? -1 : 1;
        x++;
        y++;
    }
    if (*x == *y)
        return 0;
    return *x ? 1 : -1;
}

typedef int (*ns_cmp_fn)(const void *a, const void *b, void *ctx);

/* Stable bottom-up merge sort of an array of pointers. -1 on ENOMEM. */
static int ns_msort(void **v, size_t n, ns_cmp_fn cmp, void *ctx)
{
    if (n < 2)
        return 0;
    if (n > SIZE_MAX / sizeof(void *))
        return -1;
    void **tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return -1;
    void **src = v, **dst = tmp;
    for (size_t width = 1; width < n; width = width > n / 2 ? n : width * 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = mid + width < n ? mid + width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = cmp(src[j], src[i], ctx) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
            if (2 * width > n - lo)
                break;
        }
        void **t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
    free(tmp);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Folding                                                             */
/* ------------------------------------------------------------------ */

/* A field of a name: one number (pointing into the name) or, once folded,
 * a range list (own text). */
typedef struct ns_cell {
    const char *p;
    size_t plen;
    char *own;
    uint64_t v;
    unsigned len;     /* digits of a single number */
    unsigned char lz; /* single number written with leading zeros */
    unsigned char set;/* p is a range list of two or more values */
} ns_cell;

typedef struct ns_item {
    const char *skel; /* name with each numeric field replaced by \x01 */
    size_t k;         /* number of fields (0: unfoldable or no digits) */
    ns_cell *cells;
    size_t rank;      /* natural rank of the first name */
} ns_item;

static int ns_cmp_names(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return nodeset_natcmp(a, b);
}

static int ns_cmp_skel(const void *a, const void *b, void *ctx)
{
    const ns_item *x = a, *y = b;
    (void)ctx;
    int c = strcmp(x->skel, y->skel);
    if (c != 0)
        return c;
    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    return x->rank < y->rank ? -1 : (x->rank > y->rank);
}

static int ns_cmp_rank(const void *a, const void *b, void *ctx)
{
    const ns_item *x = a, *y = b;
    (void)ctx;
    return x->rank < y->rank ? -1 : (x->rank > y->rank);
}

static int ns_cell_cmp(const ns_cell *x, const ns_cell *y)
{
    size_t m = x->plen < y->plen ? x->plen : y->plen;
    int c = memcmp(x->p, y->p, m);
    if (c != 0)
        return c;
    if (x->plen != y->plen)
        return x->plen < y->plen ? -1 : 1;
    return 0;
}

/* Items equal on every field but *axis sort together, then by that field. */
static int ns_cmp_axis(const void *a, const void *b, void *ctx)
{
    const ns_item *x = a, *y = b;
    size_t axis = *(const size_t *)ctx;
    for (size_t i = 0; i < x->k; i++) {
        if (i == axis)
            continue;
        int c = ns_cell_cmp(&x->cells[i], &y->cells[i]);
        if (c != 0)
            return c;
    }
    const ns_cell *cx = &x->cells[axis], *cy = &y->cells[axis];
    if (cx->v != cy->v)
        return cx->v < cy->v ? -1 : 1;
    if (cx->len != cy->len)
        return cx->len < cy->len ? -1 : 1;
    return 0;
}

static int ns_same_but(const ns_item *x, const ns_item *y, size_t axis)
{
    for (size_t i = 0; i < x->k; i++)
        if (i != axis && ns_cell_cmp(&x->cells[i], &y->cells[i]) != 0)
            return 0;
    return 1;
}

/* Pad a single number takes in a range list: its own width when written
 * with leading zeros; otherwise the widest such pad it fits (so "10" joins
 * "01".."09"), else none. */
static unsigned ns_pad_of(const ns_cell *c, const unsigned char *fixed)
{
    if (c->lz)
        return c->len;
    for (unsigned p = c->len; p >= 2; p--)
        if (fixed[p])
            return p;
    return 0;
}

/* Builds the range list text for the field `axis` of run[0..r). Values are
 * sorted by (value, width) in the run. Returns malloc'd text, *count the
 * number of distinct values. NULL on allocation failure. */
static char *ns_rangelist(ns_item **run, size_t r, size_t axis, size_t *count)
{
    unsigned char fixed[NS_MAX_DIGITS + 2] = {0};
    for (size_t i = 0; i < r; i++) {
        const ns_cell *c = &run[i]->cells[axis];
        if (c->lz)
            fixed[c->len] = 1;
    }
    if (r > SIZE_MAX / 48)
        return NULL;
    size_t cap = r * 42 + 1, pos = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    *count = 0;
    for (unsigned pad = 0; pad <= NS_MAX_DIGITS; pad++) {
        if (pad == 1)
            continue;
        if (pad >= 2 && !fixed[pad]) {
            /* Unpadded numbers may still map to this pad only if fixed. */
            continue;
        }
        int open = 0;
        uint64_t lo = 0, hi = 0;
        for (size_t i = 0; i <= r; i++) {
            const ns_cell *c = i < r ? &run[i]->cells[axis] : NULL;
            if (c && ns_pad_of(c, fixed) != pad)
                continue;
            if (c && open && c->v == hi)
                continue; /* duplicate */
            if (c && open && c->v == hi + 1) {
                hi = c->v;
                (*count)++;
                continue;
            }
            if (open) {
                int w;
                if (pos > 0)
                    s[pos++] = ',';
                if (hi > lo)
                    w = snprintf(s + pos, cap - pos, "%0*" PRIu64 "-%0*" PRIu64, (int)pad, lo,
                                 (int)pad, hi);
                else
                    w = snprintf(s + pos, cap - pos, "%0*" PRIu64, (int)pad, lo);
                if (w < 0 || (size_t)w >= cap - pos) {
                    free(s);
                    return NULL;
                }
                pos += (size_t)w;
                open = 0;
            }
            if (c) {
                open = 1;
                lo = hi = c->v;
                (*count)++;
            }
        }
    }
    s[pos] = '\0';
    return s;
}

static int ns_fold_axis(ns_item **arr, size_t *m, size_t axis)
{
    if (ns_msort((void **)arr, *m, ns_cmp_axis, &axis) != 0)
        return -1;
    size_t w = 0;
    for (size_t i = 0; i < *m;) {
        size_t j = i + 1;
        while (j < *m && ns_same_but(arr[i], arr[j], axis))
            j++;
        if (j - i > 1) {
            size_t count = 0;
            char *txt = ns_rangelist(arr + i, j - i, axis, &count);
            if (!txt)
                return -1;
            ns_item *keep = arr[i];
            size_t rank = keep->rank;
            for (size_t t = i + 1; t < j; t++)
                if (arr[t]->rank < rank)
                    rank = arr[t]->rank;
            keep->rank = rank;
            ns_cell *c = &keep->cells[axis];
            if (count > 1) {
                free(c->own);
                c->own = txt;
                c->p = txt;
                c->plen = strlen(txt);
                c->set = 1;
            } else {
                free(txt);
            }
            arr[w++] = keep;
        } else {
            arr[w++] = arr[i];
        }
        i = j;
    }
    *m = w;
    return 0;
}

typedef struct ns_sbuf {
    char *s;
    size_t len, cap;
    int oom;
} ns_sbuf;

static void ns_sbuf_add(ns_sbuf *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Can this name take part in folding? Brackets and commas would make the
 * folded text ambiguous; control bytes would clash with the field marker. */
static int ns_foldable(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '[' || c == ']' || c == ',' || c < 0x20)
            return 0;
    }
    return 1;
}

char *nodeset_fold(const char *const *names, size_t n)
{
    char *result = NULL;
    const char **sorted = NULL;
    ns_item *items = NULL;
    ns_item **ptrs = NULL;
    ns_cell *cells = NULL;
    char *skels = NULL;
    size_t nu = 0, ncells = 0, skelsz = 0;
    ns_sbuf out = {0};

    if (n == 0 || !names) {
        result = malloc(1);
        if (result)
            result[0] = '\0';
        return result;
    }
    if (n > SIZE_MAX / sizeof(ns_item))
        return NULL;

    sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        goto done;
    memcpy(sorted, names, n * sizeof *sorted);
    if (ns_msort((void **)sorted, n, ns_cmp_names, NULL) != 0)
        goto done;
    /* Drop duplicates; count fields and skeleton bytes. */
    for (size_t i = 0; i < n; i++) {
        if (nu > 0 && strcmp(sorted[nu - 1], sorted[i]) == 0)
            continue;
        sorted[nu++] = sorted[i];
    }
    for (size_t i = 0; i < nu; i++) {
        const char *s = sorted[i];
        size_t len = strlen(s);
        if (skelsz > SIZE_MAX - len - 1)
            goto done;
        skelsz += len + 1;
        if (!ns_foldable(s))
            continue;
        for (const char *p = s; *p;) {
            if (ns_isdigit((unsigned char)*p)) {
                const char *q = p;
                while (ns_isdigit((unsigned char)*q))
                    q++;
                if ((size_t)(q - p) <= NS_MAX_DIGITS)
                    ncells++;
                p = q;
            } else {
                p++;
            }
        }
    }
    items = calloc(nu, sizeof *items);
    ptrs = malloc(nu * sizeof *ptrs);
    cells = calloc(ncells ? ncells : 1, sizeof *cells);
    skels = malloc(skelsz);
    if (!items || !ptrs || !cells || !skels)
        goto done;

    size_t ci = 0, sp = 0;
    for (size_t i = 0; i < nu; i++) {
        const char *s = sorted[i];
        ns_item *it = &items[i];
        it->rank = i;
        it->skel = skels + sp;
        it->cells = cells + ci;
        if (!ns_foldable(s)) {
            size_t len = strlen(s);
            memcpy(skels + sp, s, len + 1);
            sp += len + 1;
        } else {
            for (const char *p = s; *p;) {
                if (ns_isdigit((unsigned char)*p)) {
                    const char *q = p;
                    while (ns_isdigit((unsigned char)*q))
                        q++;
                    size_t dl = (size_t)(q - p);
                    if (dl <= NS_MAX_DIGITS) {
                        ns_cell *c = &cells[ci++];
                        c->p = p;
                        c->plen = dl;
                        c->len = (unsigned)dl;
                        c->lz = (unsigned char)(p[0] == '0' && dl > 1);
                        (void)ns_parse_uint(p, dl, &c->v);
                        it->k++;
                        skels[sp++] = '\x01';
                    } else {
                        memcpy(skels + sp, p, dl);
                        sp += dl;
                    }
                    p = q;
                } else {
                    skels[sp++] = *p++;
                }
            }
            skels[sp++] = '\0';
        }
        ptrs[i] = it;
    }

    if (ns_msort((void **)ptrs, nu, ns_cmp_skel, NULL) != 0)
        goto done;
    /* Fold each run of same-skeleton names, last field first; the runs are
     * compacted in place to the front of ptrs. */
    size_t total = 0;
    for (size_t i = 0; i < nu;) {
        size_t j = i + 1;
        while (j < nu && ptrs[j]->k == ptrs[i]->k && strcmp(ptrs[j]->skel, ptrs[i]->skel) == 0)
            j++;
        size_t m = j - i;
        ns_item **run = ptrs + i;
        if (ptrs[i]->k > 0 && m > 1) {
            for (size_t axis = ptrs[i]->k; axis > 0; axis--)
                if (ns_fold_axis(run, &m, axis - 1) != 0)
                    goto done;
        }
        memmove(ptrs + total, run, m * sizeof *ptrs);
        total += m;
        i = j;
    }
    if (ns_msort((void **)ptrs, total, ns_cmp_rank, NULL) != 0)
        goto done;

    for (size_t i = 0; i < total; i++) {
        const ns_item *it = ptrs[i];
        if (i > 0)
            ns_sbuf_add(&out, ",", 1);
        if (it->k == 0) {
            ns_sbuf_add(&out, it->skel, strlen(it->skel));
            continue;
        }
        size_t f = 0;
        for (const char *p = it->skel; *p; p++) {
            if (*p != '\x01') {
                const char *q = p;
                while (q[1] && q[1] != '\x01')
                    q++;
                ns_sbuf_add(&out, p, (size_t)(q - p) + 1);
                p = q;
                continue;
            }
            const ns_cell *c = &it->cells[f++];
            if (c->set)
                ns_sbuf_add(&out, "[", 1);
            ns_sbuf_add(&out, c->p, c->plen);
            if (c->set)
                ns_sbuf_add(&out, "]", 1);
        }
    }
    if (!out.oom) {
        if (!out.s) {
            out.s = malloc(1);
            if (out.s)
                out.s[0] = '\0';
        }
        result = out.s;
        out.s = NULL;
    }

done:
    free(out.s);
    if (cells)
        for (size_t i = 0; i < ncells; i++)
            free(cells[i].own);
    free(cells);
    free(skels);
    free(ptrs);
    free(items);
    free(sorted);
    return result;
}
