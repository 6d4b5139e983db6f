/* The list of target hosts of a fan-out run, from -H patterns and -h files.
 * Each entry is one expanded name, user@ and :port kept as typed; duplicates
 * are dropped, the first occurrence keeps its place. */
#ifndef SHOAL_APP_HOSTLIST_H
#define SHOAL_APP_HOSTLIST_H

#include <stddef.h>

typedef struct hostlist hostlist;

/* Limit on the number of hosts when max_hosts is 0. */
#define HOSTLIST_DEFAULT_MAX 1000000

/* New empty list holding at most max_hosts names (0: HOSTLIST_DEFAULT_MAX).
 * NULL on allocation failure. */
hostlist *hostlist_new(size_t max_hosts);
/* Adds "host[,host]..." (each item a node set pattern, see nodeset.h).
 * 0 on success; on error a negative NODESET_E* code, the list is left as it
 * was and hostlist_error tells why. */
int hostlist_add_arg(hostlist *hl, const char *arg);
/* Adds the hosts of a file: one host or pattern per line, '#' starts a
 * comment, blank lines and surrounding whitespace ignored. 0 on success; on
 * error -1 (file unreadable) or a negative NODESET_E* code, the list is left
 * as it was and err gets "path:line: message" (or "path: reason"). */
int hostlist_add_file(hostlist *hl, const char *path, char *err, size_t errsz);
/* Removes the hosts named by "host[,host]..." (node set patterns, matched
 * exactly as expanded, as pdsh's -x). 0 on success (also when nothing
 * matched); on error a negative NODESET_E* code, the list is left as it was
 * and hostlist_error tells why. */
int hostlist_exclude(hostlist *hl, const char *arg);
/* Number of hosts. */
size_t hostlist_count(const hostlist *hl);
/* Host i (0 <= i < count), NULL when out of range. Valid until the next
 * change of the list. */
const char *hostlist_get(const hostlist *hl, size_t i);
/* Message about the last failed hostlist_add_arg ("" if none). */
const char *hostlist_error(const hostlist *hl);
/* Frees the list (NULL is fine). */
void hostlist_free(hostlist *hl);

#endif
