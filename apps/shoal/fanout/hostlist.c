/* Target host list: node set patterns from -H and -h, deduplicated in order. */
#include "hostlist.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeset.h"

struct hostlist {
    char **names;
    size_t n, cap, max;
    size_t *tab; /* open addressing: index + 1, 0 = empty */
    size_t tabsz; /* power of two, > 2 * n */
    char err[512];
};

static uint64_t hl_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Slot for s: the one holding it, or the empty one where it would go. */
static size_t hl_slot(const hostlist *hl, const char *s)
{
    size_t mask = hl->tabsz - 1;
    size_t i = (size_t)hl_hash(s) & mask;
    while (hl->tab[i] != 0 && strcmp(hl->names[hl->tab[i] - 1], s) != 0)
        i = (i + 1) & mask;
    return i;
}

static int hl_rehash(hostlist *hl, size_t tabsz)
{
    size_t *tab = calloc(tabsz, sizeof *tab);
    if (!tab)
        return -1;
    free(hl->tab);
    hl->tab = tab;
    hl->tabsz = tabsz;
    for (size_t i = 0; i < hl->n; i++)
        hl->tab[hl_slot(hl, hl->names[i])] = i + 1;
    return 0;
}

hostlist *hostlist_new(size_t max_hosts)
{
    hostlist *hl = calloc(1, sizeof *hl);
    if (!hl)
        return NULL;
    hl->max = max_hosts ? max_hosts : HOSTLIST_DEFAULT_MAX;
    if (hl_rehash(hl, 64) != 0) {
        free(hl);
        return NULL;
    }
    return hl;
}

void hostlist_free(hostlist *hl)
{
    if (!hl)
        return;
    for (size_t i = 0; i < hl->n; i++)
        free(hl->names[i]);
    free(hl->names);
    free(hl->tab);
    free(hl);
}

size_t hostlist_count(const hostlist *hl)
{
    return hl ? hl->n : 0;
}

const char *hostlist_get(const hostlist *hl, size_t i)
{
    if (!hl || i >= hl->n)
        return NULL;
    return hl->names[i];
}

const char *hostlist_error(const hostlist *hl)
{
    return hl ? hl->err : "";
}

/* Drops the entries added since n0 (error path). The table is rebuilt in
 * place at its current size, which cannot fail. */
static void hl_rollback(hostlist *hl, size_t n0)
{
    for (size_t i = n0; i < hl->n; i++)
        free(hl->names[i]);
    hl->n = n0;
    memset(hl->tab, 0, hl->tabsz * sizeof *hl->tab);
    for (size_t i = 0; i < hl->n; i++)
        hl->tab[hl_slot(hl, hl->names[i])] = i + 1;
}

/* Takes ownership of names[0..k) (and the array). */
static int hl_add_names(hostlist *hl, char **names, size_t k, char *err, size_t errsz)
{
    int rc = 0;
    size_t i = 0;
    for (; i < k; i++) {
        size_t slot = hl_slot(hl, names[i]);
        if (hl->tab[slot] != 0) {
            free(names[i]);
            continue;
        }
        if (hl->n >= hl->max) {
            snprintf(err, errsz, "more than %zu hosts", hl->max);
            rc = NODESET_ETOOMANY;
            break;
        }
        if (hl->n == hl->cap) {
            size_t ncap = hl->cap ? hl->cap * 2 : 64;
            char **nn = ncap <= SIZE_MAX / sizeof *nn ? realloc(hl->names, ncap * sizeof *nn) : NULL;
            if (!nn) {
                snprintf(err, errsz, "out of memory");
                rc = NODESET_ENOMEM;
                break;
            }
            hl->names = nn;
            hl->cap = ncap;
        }
        if ((hl->n + 1) * 2 >= hl->tabsz) {
            if (hl->tabsz > SIZE_MAX / 2 / sizeof(size_t) || hl_rehash(hl, hl->tabsz * 2) != 0) {
                snprintf(err, errsz, "out of memory");
                rc = NODESET_ENOMEM;
                break;
            }
            slot = hl_slot(hl, names[i]);
        }
        hl->names[hl->n++] = names[i];
        hl->tab[slot] = hl->n;
    }
    for (; i < k; i++)
        free(names[i]);
    free(names);
    return rc;
}

int hostlist_add_arg(hostlist *hl, const char *arg)
{
    char **names = NULL;
    size_t k = 0;
    if (!hl)
        return NODESET_ESYNTAX;
    hl->err[0] = '\0';
    int rc = nodeset_expand_ex(arg, &names, &k, hl->max, hl->err, sizeof hl->err);
    if (rc != 0)
        return rc;
    size_t n0 = hl->n;
    rc = hl_add_names(hl, names, k, hl->err, sizeof hl->err);
    if (rc != 0)
        hl_rollback(hl, n0);
    return rc;
}

int hostlist_exclude(hostlist *hl, const char *arg)
{
    char **names = NULL;
    size_t k = 0;
    if (!hl)
        return NODESET_ESYNTAX;
    hl->err[0] = '\0';
    int rc = nodeset_expand_ex(arg, &names, &k, hl->max, hl->err, sizeof hl->err);
    if (rc != 0)
        return rc;
    /* Mark the entries to drop (a freed name becomes NULL), then compact
     * the list in place and rebuild the table at its current size. */
    for (size_t i = 0; i < k; i++) {
        size_t slot = hl_slot(hl, names[i]);
        if (hl->tab[slot] != 0) {
            size_t idx = hl->tab[slot] - 1;
            free(hl->names[idx]);
            hl->names[idx] = NULL;
            hl->tab[slot] = 0;
            /* Re-seat the entries that followed it in its probe chain. */
            size_t mask = hl->tabsz - 1;
            for (size_t j = (slot + 1) & mask; hl->tab[j] != 0; j = (j + 1) & mask) {
                size_t e = hl->tab[j];
                hl->tab[j] = 0;
                hl->tab[hl_slot(hl, hl->names[e - 1])] = e;
            }
        }
    }
    nodeset_free_names(names, k);
    size_t n = 0;
    for (size_t i = 0; i < hl->n; i++)
        if (hl->names[i])
            hl->names[n++] = hl->names[i];
    hl->n = n;
    memset(hl->tab, 0, hl->tabsz * sizeof *hl->tab);
    for (size_t i = 0; i < hl->n; i++)
        hl->tab[hl_slot(hl, hl->names[i])] = i + 1;
    return 0;
}

static int hl_isspace(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int hostlist_add_file(hostlist *hl, const char *path, char *err, size_t errsz)
{
    char dummy[1];
    if (!err || errsz == 0) {
        err = dummy;
        errsz = sizeof dummy;
    }
    err[0] = '\0';
    if (!hl || !path) {
        snprintf(err, errsz, "no host file");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t n0 = hl->n;
    char *line = NULL;
    size_t linecap = 0;
    size_t lineno = 0;
    int rc = 0;
    char msg[512];
    ssize_t len;

    errno = 0;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            snprintf(err, errsz, "%s:%zu: NUL byte in line", path, lineno);
            rc = NODESET_ESYNTAX;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = line;
        while (*s && hl_isspace((unsigned char)*s))
            s++;
        char *e = s + strlen(s);
        while (e > s && hl_isspace((unsigned char)e[-1]))
            e--;
        *e = '\0';
        if (*s == '\0')
            continue;

        char **names = NULL;
        size_t k = 0;
        msg[0] = '\0';
        rc = nodeset_expand_ex(s, &names, &k, hl->max, msg, sizeof msg);
        if (rc == 0)
            rc = hl_add_names(hl, names, k, msg, sizeof msg);
        if (rc != 0) {
            snprintf(err, errsz, "%s:%zu: %s", path, lineno, msg);
            break;
        }
        errno = 0;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errsz, "%s:%zu: %s", path, lineno + 1,
                 errno ? strerror(errno) : "read error");
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0)
        hl_rollback(hl, n0);
    return rc;
}
