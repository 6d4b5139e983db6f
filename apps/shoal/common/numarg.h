/* Numbers typed on the command line of `shoal run`, `shoal put` and
 * `shoal agent`, parsed strictly: the whole argument must be the number,
 * with no sign, no blank, no overflow; anything else is an error for the
 * caller to report as a usage error naming the flag. */
#ifndef SHOAL_APP_NUMARG_H
#define SHOAL_APP_NUMARG_H

#include <stdint.h>

/* A decimal whole number in [lo, hi]. 0, or -1. */
int numarg_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* A byte count or rate: a decimal number (fractions allowed, "1.5M") with
 * an optional multiplier k/K, m/M, g/G, t/T, powers of 1024 as OpenSSH's
 * RekeyLimit reads them, optionally followed by "i" and/or "B" ("10MiB",
 * "10MB", "10M" are the same); with rate set, a trailing "/s" is allowed.
 * The result is rounded down to a whole byte. 0, or -1. */
int numarg_size(const char *s, int rate, uint64_t *out);

/* A duration, in milliseconds: a decimal number of seconds ("30", "1.5"),
 * or numbers with units ms, s, m, h, d, w, also combined as OpenSSH's time
 * format ("1h30m", "2m30s"; the last number may omit its unit: seconds).
 * At most about 100 years. 0, or -1. */
int numarg_duration_ms(const char *s, uint64_t *out);

/* Permission bits in octal, 0 to 07777 ("644", "0644"). 0, or -1. */
int numarg_mode(const char *s, uint32_t *out);

#endif
