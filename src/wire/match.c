/* Wildcard matching: see match.h.
 *
 * The greedy matcher remembers only the last '*': on a mismatch that star
 * swallows one more byte and the match resumes after it. Earlier stars never
 * need revisiting because the last one can absorb anything they could. */
#include "wire/match.h"

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int shoal_wildmatch(const char *p, size_t plen, const char *s, size_t slen, int fold)
{
    size_t pi = 0, si = 0;
    size_t star_p = (size_t)-1, star_s = 0;
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < plen && (p[pi] == '?' || (fold ? lower(p[pi]) : p[pi]) == s[si])) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}
