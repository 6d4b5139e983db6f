/* Shell-style wildcard matching ('*' any run, '?' any one byte), as used by
 * known_hosts host patterns and algorithm-list removals. */
#ifndef SHOAL_WIRE_MATCH_H
#define SHOAL_WIRE_MATCH_H

#include <stddef.h>

/* 1 when s matches pattern. With fold, ASCII letters of the pattern match
 * either case (s must already be lowercase). Worst case O(|pattern| * |s|):
 * no backtracking explosion on hostile patterns. */
int shoal_wildmatch(const char *pattern, size_t plen, const char *s, size_t slen, int fold);

#endif
