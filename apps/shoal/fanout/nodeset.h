/* Node sets in ClusterShell's bracket notation: expansion of host patterns
 * such as "root@web[01-03,07]:2222" and folding of host name lists back into
 * a compact form such as "web[01-03,07]" for display. Pure functions, no
 * global state. */
#ifndef SHOAL_APP_NODESET_H
#define SHOAL_APP_NODESET_H

#include <stddef.h>

/* Error codes returned (negated) by nodeset_expand. */
#define NODESET_ESYNTAX  (-1) /* bad syntax (unbalanced bracket, empty item, ...) */
#define NODESET_ERANGE   (-2) /* reversed range, bad step, padding mismatch, number too long */
#define NODESET_ETOOMANY (-3) /* the expansion would exceed max_n names */
#define NODESET_ENOMEM   (-4) /* out of memory */

/* Expands a pattern into *names (malloc'd array of *n malloc'd strings, in
 * the order written, duplicates kept; free with nodeset_free_names).
 *
 * Syntax: comma-separated items at top level (blanks around items ignored);
 * in an item, a bracket whose content is made only of digits, ',', '-' and
 * '/' is a range list ("[01-03,07]", "[1-9/2]"): zero padding of a range's
 * lower bound is kept, several range brackets give the cartesian product
 * ("127.0.[0-1].[1-100]"). Any other bracket is literal text ("[::1]:2222").
 * Everything else, user@ and :port included, is kept as typed.
 *
 * Returns 0, or a negative NODESET_E* code with *names = NULL and *n = 0;
 * nodeset_strerror gives a generic message. */
int nodeset_expand(const char *pattern, char ***names, size_t *n, size_t max_n);
/* Same, and on error writes a message naming the offending part into err
 * (when err and errsz are non-zero). */
int nodeset_expand_ex(const char *pattern, char ***names, size_t *n, size_t max_n,
                      char *err, size_t errsz);
/* Static message for a NODESET_E* code. */
const char *nodeset_strerror(int code);
/* Frees an array from nodeset_expand (NULL is fine). */
void nodeset_free_names(char **names, size_t n);

/* Natural (numeric-aware) comparison of two names: digit runs compare by
 * value, then a shorter (less padded) run first. 0 only for equal strings. */
int nodeset_natcmp(const char *a, const char *b);

/* Folds names into one malloc'd display string: duplicates removed, names
 * differing in numeric fields folded into ranges keeping padding
 * ("web[01-03,07]", "127.0.[0-1].[1-100]"), folded items and unfoldable names
 * comma-separated in natural order of their first name. Deterministic.
 * n == 0 gives "". NULL on allocation failure. */
char *nodeset_fold(const char *const *names, size_t n);

#endif
