/* shoal: OpenSSH-style pattern matching, as in ssh_config / sshd_config
 * Host and Match lines, known_hosts host fields, AcceptEnv and
 * PermitUserEnvironment.
 *
 * A pattern is a string where '*' matches any run of bytes (also none) and
 * '?' exactly one byte; every other byte matches itself. A pattern list is
 * comma-separated patterns, each optionally negated with a leading '!'.
 * Matching costs at most O(|pattern| * |s|): no hostile pattern makes it
 * backtrack exponentially. Nothing here allocates except with
 * SHOAL_MATCH_FOLD (one copy of s, freed before returning). */
#ifndef SHOAL_MATCH_H
#define SHOAL_MATCH_H

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ASCII letters match either case (host names). */
#define SHOAL_MATCH_FOLD 1u

/* 1 when the NUL-terminated s matches the single pattern (no list, no '!'),
 * 0 when not, SHOAL_ERR_INVALID_ARG on a NULL argument or an unknown flag,
 * SHOAL_ERR_NOMEM (only with SHOAL_MATCH_FOLD). */
SHOAL_EXTERN int shoal_match_pattern(const char *pattern, const char *s, unsigned flags);

/* OpenSSH match_pattern_list(): s against a pattern list. 1 when a
 * positive pattern matches and no negated one does; -1 when a negated
 * pattern matches (it decides at once: "!a*,*" refuses "ab"); 0 when
 * nothing matches (a list of only negated patterns never gives 1).
 * SHOAL_ERR_INVALID_ARG on a NULL argument or an unknown flag,
 * SHOAL_ERR_NOMEM (only with SHOAL_MATCH_FOLD). Note -1 is also the value
 * of SHOAL_ERR_NOMEM: test "== 1" for a match. */
SHOAL_EXTERN int shoal_match_list(const char *list, const char *s, unsigned flags);

/* A host name against a host pattern list, case-insensitively (as ssh
 * matches Host lines): shoal_match_list(list, host, SHOAL_MATCH_FOLD). */
SHOAL_EXTERN int shoal_match_host(const char *list, const char *host);

/* OpenSSH addr_match_list(): a numeric address (IPv4 or IPv6; an
 * IPv4-mapped IPv6 address counts as IPv4) against a list of '!'-negatable
 * CIDR blocks ("192.0.2.0/24", "2001:db8::/32"), addresses or wildcard
 * patterns ("10.1.*"). 1 on a positive match, -1 when a negated entry
 * matches, 0 otherwise (also when addr is not a numeric address),
 * SHOAL_ERR_CONFIG when the list is malformed (an empty entry, a mask too
 * long or with host bits set), SHOAL_ERR_INVALID_ARG on a NULL list; addr
 * NULL only validates the list (0 or SHOAL_ERR_CONFIG). */
SHOAL_EXTERN int shoal_match_addr_list(const char *addr, const char *list);

#ifdef __cplusplus
}
#endif
#endif
