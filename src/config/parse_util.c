/* Shared parsing helpers (see parse_util.h). */
#include "config/parse_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/error.h"
#include "wire/match.h"

/* Longest list entry tried as "address/masklen" (a full IPv6 address with
 * an embedded IPv4 part and "/128" is 49 bytes). */
#define PU_MAX_CIDR 64u

int shoal_pu_match_list(const char *s, size_t slen, const char *list, size_t llen, int fold)
{
    int positive = 0;
    size_t i = 0;
    while (i <= llen) {
        size_t j = i;
        while (j < llen && list[j] != ',')
            j++;
        const char *p = list + i;
        size_t plen = j - i;
        int neg = plen > 0 && p[0] == '!';
        if (neg) {
            p++;
            plen--;
        }
        if (shoal_wildmatch(p, plen, s, slen, fold)) {
            if (neg)
                return -1; /* a negated match decides at once */
            positive = 1;
        }
        i = j + 1;
    }
    return positive;
}

/* A parsed numeric address: family 4 or 6 and its bytes. */
typedef struct pu_addr {
    int family;
    uint8_t b[16];
} pu_addr;

/* Parses a NUL-terminated numeric address; IPv4-mapped IPv6 becomes IPv4. */
static int pu_addr_parse(const char *s, pu_addr *a)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        a->family = 4;
        memcpy(a->b, &v4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, s, &v6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(v6.s6_addr, mapped, sizeof(mapped)) == 0) {
            a->family = 4;
            memcpy(a->b, v6.s6_addr + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->b, v6.s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

/* Copies (s, n) into a NUL-terminated buffer when it fits. */
static int pu_copy(const char *s, size_t n, char *out, size_t outsz)
{
    if (n >= outsz || memchr(s, 0, n))
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

int shoal_pu_addr_canon(const char *s, char *out, size_t outsz)
{
    char tmp[SHOAL_PU_MAX_ADDR];
    pu_addr a;
    if (!s || pu_copy(s, strlen(s), tmp, sizeof(tmp)) != 0 || pu_addr_parse(tmp, &a) != 0)
        return -1;
    if (!inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.b, out, (socklen_t)outsz))
        return -1;
    return 0;
}

/* "address[/masklen]": 0 parsed (net, bits set), -1 not a CIDR block (the
 * caller falls back to wildcard matching), -2 a block that is inconsistent:
 * mask longer than the family allows or bits set past the mask. */
static int pu_cidr_parse(const char *s, size_t n, pu_addr *net, unsigned *bits)
{
    char tmp[PU_MAX_CIDR];
    if (pu_copy(s, n, tmp, sizeof(tmp)) != 0)
        return -1;
    char *slash = strchr(tmp, '/');
    unsigned len = 0;
    int have_len = 0;
    if (slash) {
        *slash = 0;
        const char *m = slash + 1;
        size_t ml = strlen(m);
        if (ml == 0 || ml > 3)
            return -1;
        for (size_t i = 0; i < ml; i++) {
            if (m[i] < '0' || m[i] > '9')
                return -1;
            len = len * 10 + (unsigned)(m[i] - '0');
        }
        if (len > 128)
            return -1;
        have_len = 1;
    }
    if (pu_addr_parse(tmp, net) != 0)
        return -1;
    unsigned max = net->family == 4 ? 32u : 128u;
    if (!have_len)
        len = max;
    if (len > max)
        return -2;
    /* Host bits must be zero: "10.0.0.1/8" is almost certainly a typo. */
    for (unsigned bit = len; bit < max; bit++)
        if (net->b[bit / 8] & (0x80u >> (bit % 8)))
            return -2;
    *bits = len;
    return 0;
}

static int pu_in_net(const pu_addr *a, const pu_addr *net, unsigned bits)
{
    if (a->family != net->family)
        return 0;
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a->b, net->b, full) != 0)
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        if ((a->b[full] & mask) != (net->b[full] & mask))
            return 0;
    }
    return 1;
}

int shoal_pu_addr_match_list(const char *addr, const char *list, size_t llen)
{
    pu_addr a;
    char canon[SHOAL_PU_MAX_ADDR];
    size_t clen = 0;
    if (addr) {
        /* Not a numeric address: nothing can match (OpenSSH does the same). */
        if (shoal_pu_addr_canon(addr, canon, sizeof(canon)) != 0 || pu_addr_parse(canon, &a) != 0)
            return 0;
        clen = strlen(canon);
    }
    int ret = 0;
    size_t i = 0;
    while (i <= llen) {
        size_t j = i;
        while (j < llen && list[j] != ',')
            j++;
        const char *p = list + i;
        size_t plen = j - i;
        i = j + 1;
        int neg = plen > 0 && p[0] == '!';
        if (neg) {
            p++;
            plen--;
        }
        if (plen == 0)
            return -2;
        pu_addr net;
        unsigned bits = 0;
        int r = pu_cidr_parse(p, plen, &net, &bits);
        if (r == -2)
            return -2;
        int hit;
        if (r == 0)
            hit = addr && pu_in_net(&a, &net, bits);
        else
            hit = addr && shoal_wildmatch(p, plen, canon, clen, 0);
        if (hit) {
            if (neg)
                return -1;
            ret = 1;
        }
    }
    return ret;
}

int shoal_pu_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    uint64_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if (n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

int shoal_pu_parse_time(const char *s, uint64_t *out)
{
    const uint64_t max = INT32_MAX;
    uint64_t total = 0;
    if (!s || !*s)
        return -1;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -1; /* every member starts with digits */
        uint64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (uint64_t)(*p - '0');
            if (n > max)
                return -1;
            p++;
        }
        uint64_t mul = 1;
        switch (*p) {
        case 0:
            break;
        case 's':
        case 'S':
            p++;
            break;
        case 'm':
        case 'M':
            mul = 60;
            p++;
            break;
        case 'h':
        case 'H':
            mul = 3600;
            p++;
            break;
        case 'd':
        case 'D':
            mul = 86400;
            p++;
            break;
        case 'w':
        case 'W':
            mul = 604800;
            p++;
            break;
        default:
            return -1;
        }
        /* n <= INT32_MAX and mul < 2^20: the product cannot wrap. */
        total += n * mul;
        if (total > max)
            return -1;
    }
    *out = total;
    return 0;
}

