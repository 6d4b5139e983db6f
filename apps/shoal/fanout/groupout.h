/* Per-host results of a fan-out run, printed grouped by identical output
 * like ClusterShell's `clubak -b`:
 *
 *   ---------------
 *   web[01-40] (40)
 *   ---------------
 *   <output>
 */
#ifndef SHOAL_APP_GROUPOUT_H
#define SHOAL_APP_GROUPOUT_H

#include <stddef.h>
#include <stdio.h>

typedef struct groupout groupout;

/* New empty collection; NULL on allocation failure. */
groupout *groupout_new(void);
/* Records host's output (outlen bytes, any content; out may be NULL when
 * outlen is 0) and label (NULL or "" for success, else e.g. "exit 3" or
 * "timeout (kex)"). Hosts share a group when both output bytes and label are
 * equal. Adding the same host twice records it twice. 0 on success, -1 on
 * bad arguments or allocation failure (nothing recorded). */
int groupout_add(groupout *g, const char *host, const void *out, size_t outlen, const char *label);
/* Number of hosts recorded / of distinct groups. */
size_t groupout_hosts(const groupout *g);
size_t groupout_groups(const groupout *g);
/* Prints every group, largest first, then by folded host names (natural
 * order): a header "<folded names> (<count>)[ <label>]" between two lines of
 * dashes as long as the header, then the output bytes as they are, NUL bytes
 * left out, with a final newline added when missing (nothing for an empty
 * output). color: header in bold, label in red (ANSI). */
void groupout_print(groupout *g, FILE *f, int color);
/* Frees everything (NULL is fine). */
void groupout_free(groupout *g);

#endif
