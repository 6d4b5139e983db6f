/* Shared parsing helpers for OpenSSH-style files (sshd_config subset,
 * authorized_keys options): pattern lists, address/CIDR lists, numbers,
 * sshd time values. (The capped file reader is the driver's: uv/files.h.)
 *
 * Everything here is bounded: lengths are explicit, nothing recurses, and
 * no helper keeps state between calls. */
#ifndef SHOAL_CONFIG_PARSE_UTIL_H
#define SHOAL_CONFIG_PARSE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Longest text form of an address we look at (IPv6 with an embedded IPv4
 * is 45 bytes; anything longer cannot be a numeric address). */
#define SHOAL_PU_MAX_ADDR 64u

/* OpenSSH match_pattern_list(): s against a comma-separated list of
 * wildcard patterns, each optionally negated with '!'. Returns 1 when a
 * positive pattern matches and no negated one does, -1 when a negated
 * pattern matches, 0 otherwise. With fold, pattern letters match either
 * case and s must already be lowercase. */
int shoal_pu_match_list(const char *s, size_t slen, const char *list, size_t llen, int fold);

/* OpenSSH addr_match_list(): the numeric address addr against a
 * comma-separated list whose entries are "!"-negatable CIDR blocks
 * ("192.0.2.0/24", "2001:db8::/32"), plain addresses or wildcard patterns
 * ("192.0.2.*"). Returns 1 on a positive match, -1 when a negated entry
 * matches, 0 otherwise (always 0 when addr is not a numeric address), and
 * -2 when the list is malformed (an empty entry, or a CIDR block with a
 * mask too long for its family or host bits set, e.g. "10.0.0.1/8").
 * addr may be NULL to only validate the list (then 0 or -2).
 * IPv4-mapped IPv6 addresses ("::ffff:192.0.2.1") are matched as IPv4,
 * as sshd does for its peers. */
int shoal_pu_addr_match_list(const char *addr, const char *list, size_t llen);

/* Canonical text of a numeric address (IPv4-mapped IPv6 turned into IPv4,
 * IPv6 in RFC 5952 form). 0 on success, -1 when s is not an address. */
int shoal_pu_addr_canon(const char *s, char *out, size_t outsz);

/* Decimal integer made only of digits (no sign, no spaces), lo <= n <= hi.
 * 0 on success, -1 otherwise. */
int shoal_pu_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* sshd TIME FORMATS: a sequence of number[qualifier] (s, m, h, d, w, any
 * case; none = seconds) summed up: "90", "10m", "1h30m". The total must
 * stay at or below INT32_MAX seconds, as in sshd. 0 on success, -1 otherwise. */
int shoal_pu_parse_time(const char *s, uint64_t *out);

#endif
