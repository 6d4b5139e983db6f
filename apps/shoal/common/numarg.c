/* Strict command-line numbers (numarg.h). No strtod: it takes "inf",
 * "nan", hex, blanks and a locale's decimal point, none of which a user
 * means by "-t 30". */
#include "numarg.h"

#include <stddef.h>
#include <string.h>

typedef unsigned __int128 u128;

/* A decimal "digits[.digits]" at *p (at least one digit): the whole part,
 * and the fraction as num / den (den a power of ten, digits past the 18th
 * dropped). Advances *p. 0, or -1 (no digit, or the whole part overflows). */
static int decimal(const char **p, uint64_t *whole, uint64_t *num, uint64_t *den)
{
    const char *s = *p;
    uint64_t w = 0, n = 0, d = 1;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned v = (unsigned)(*s - '0');
        if (w > (UINT64_MAX - v) / 10)
            return -1;
        w = w * 10 + v;
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            if (d < 1000000000000000000ull) {
                n = n * 10 + (uint64_t)(*s - '0');
                d *= 10;
            }
            s++;
            digits++;
        }
    }
    if (!digits)
        return -1;
    *p = s;
    *whole = w;
    *num = n;
    *den = d;
    return 0;
}

/* (whole + num/den) * mult, rounded down; -1 when above max. */
static int scale(uint64_t whole, uint64_t num, uint64_t den, uint64_t mult, uint64_t max, uint64_t *out)
{
    u128 v = (u128)whole * mult + (u128)num * mult / den;
    if (v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int numarg_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int numarg_size(const char *s, int rate, uint64_t *out)
{
    if (!s)
        return -1;
    const char *p = s;
    uint64_t whole, num, den;
    if (decimal(&p, &whole, &num, &den))
        return -1;
    uint64_t mult = 1;
    switch (*p) {
    case 'k':
    case 'K':
        mult = 1ull << 10;
        break;
    case 'm':
    case 'M':
        mult = 1ull << 20;
        break;
    case 'g':
    case 'G':
        mult = 1ull << 30;
        break;
    case 't':
    case 'T':
        mult = 1ull << 40;
        break;
    }
    if (mult > 1) {
        p++;
        if (*p == 'i')
            p++;
    }
    if (*p == 'B')
        p++;
    if (rate && p[0] == '/' && p[1] == 's')
        p += 2;
    if (*p)
        return -1;
    return scale(whole, num, den, mult, UINT64_MAX, out);
}

int numarg_duration_ms(const char *s, uint64_t *out)
{
    static const uint64_t MAX_MS = 100ull * 366 * 86400 * 1000;
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
    if (!s || !*s)
        return -1;
    const char *p = s;
    uint64_t total = 0;
    while (*p) {
        uint64_t whole, num, den, v;
        if (decimal(&p, &whole, &num, &den))
            return -1;
        uint64_t mult = 0;
        if (!*p) {
            mult = 1000; /* a bare number: seconds */
        } else {
            /* "ms" is tried before "m". */
            for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                size_t l = strlen(units[i].name);
                if (!strncmp(p, units[i].name, l)) {
                    mult = units[i].ms;
                    p += l;
                    break;
                }
            }
            if (!mult)
                return -1;
        }
        if (scale(whole, num, den, mult, MAX_MS, &v) || v > MAX_MS - total)
            return -1;
        total += v;
    }
    *out = total;
    return 0;
}

int numarg_mode(const char *s, uint32_t *out)
{
    if (!s || !*s || strlen(s) > 5)
        return -1;
    uint32_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        v = v * 8 + (uint32_t)(*p - '0');
    }
    if (v > 07777)
        return -1;
    *out = v;
    return 0;
}
