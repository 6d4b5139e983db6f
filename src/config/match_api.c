/* The public pattern matching calls (include/shoal/match.h), on top of the
 * core's wildcard matcher and list helpers. */
#include <stdlib.h>
#include <string.h>

#include "config/parse_util.h"
#include "shoal/match.h"
#include "wire/match.h"

/* The wildcard matcher folds only the pattern's letters: fold s here. */
static char *lowered(const char *s)
{
    size_t n = strlen(s);
    char *l = malloc(n + 1);
    if (!l)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        l[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    return l;
}

int shoal_match_pattern(const char *pattern, const char *s, unsigned flags)
{
    if (!pattern || !s || (flags & ~SHOAL_MATCH_FOLD))
        return SHOAL_ERR_INVALID_ARG;
    if (!(flags & SHOAL_MATCH_FOLD))
        return shoal_wildmatch(pattern, strlen(pattern), s, strlen(s), 0);
    char *l = lowered(s);
    if (!l)
        return SHOAL_ERR_NOMEM;
    int r = shoal_wildmatch(pattern, strlen(pattern), l, strlen(l), 1);
    free(l);
    return r;
}

int shoal_match_list(const char *list, const char *s, unsigned flags)
{
    if (!list || !s || (flags & ~SHOAL_MATCH_FOLD))
        return SHOAL_ERR_INVALID_ARG;
    if (!(flags & SHOAL_MATCH_FOLD))
        return shoal_pu_match_list(s, strlen(s), list, strlen(list), 0);
    char *l = lowered(s);
    if (!l)
        return SHOAL_ERR_NOMEM;
    int r = shoal_pu_match_list(l, strlen(l), list, strlen(list), 1);
    free(l);
    return r;
}

int shoal_match_host(const char *list, const char *host)
{
    return shoal_match_list(list, host, SHOAL_MATCH_FOLD);
}

int shoal_match_addr_list(const char *addr, const char *list)
{
    if (!list)
        return SHOAL_ERR_INVALID_ARG;
    int r = shoal_pu_addr_match_list(addr, list, strlen(list));
    return r == -2 ? SHOAL_ERR_CONFIG : r;
}
