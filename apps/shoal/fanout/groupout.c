/* Output of many hosts grouped by identical (output, label), clubak -b style.
 * Groups live in a chained hash table keyed by a hash of output and label. */
#include "groupout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodeset.h"

typedef struct go_group {
    uint64_t hash;
    unsigned char *out;
    size_t outlen;
    char *label; /* NULL: success */
    char **hosts;
    size_t nhosts, cap;
    char *folded; /* set while printing */
    struct go_group *next; /* hash chain */
} go_group;

struct groupout {
    go_group **buckets;
    size_t nbuckets; /* power of two */
    go_group **list; /* in order of creation */
    size_t ngroups, listcap;
    size_t nhosts;
};

#define GO_BOLD "\033[1m"
#define GO_RED "\033[31m"
#define GO_RESET "\033[0m"

static uint64_t go_hash(const unsigned char *p, size_t n, const char *label)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    /* Mark the boundary and whether there is a label. */
    h ^= label ? 0x1ff : 0x2ff;
    h *= 1099511628211ULL;
    if (label)
        for (const char *s = label; *s; s++) {
            h ^= (unsigned char)*s;
            h *= 1099511628211ULL;
        }
    return h;
}

groupout *groupout_new(void)
{
    groupout *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->nbuckets = 256;
    g->buckets = calloc(g->nbuckets, sizeof *g->buckets);
    if (!g->buckets) {
        free(g);
        return NULL;
    }
    return g;
}

static void go_group_free(go_group *gr)
{
    if (!gr)
        return;
    for (size_t i = 0; i < gr->nhosts; i++)
        free(gr->hosts[i]);
    free(gr->hosts);
    free(gr->out);
    free(gr->label);
    free(gr->folded);
    free(gr);
}

void groupout_free(groupout *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->ngroups; i++)
        go_group_free(g->list[i]);
    free(g->list);
    free(g->buckets);
    free(g);
}

size_t groupout_hosts(const groupout *g)
{
    return g ? g->nhosts : 0;
}

size_t groupout_groups(const groupout *g)
{
    return g ? g->ngroups : 0;
}

static char *go_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Doubles the bucket array when groups outnumber buckets; on allocation
 * failure the table just keeps longer chains. */
static void go_grow_buckets(groupout *g)
{
    if (g->ngroups <= g->nbuckets || g->nbuckets > SIZE_MAX / 2 / sizeof(go_group *))
        return;
    size_t nb = g->nbuckets * 2;
    go_group **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < g->nbuckets; i++) {
        go_group *gr = g->buckets[i];
        while (gr) {
            go_group *next = gr->next;
            size_t k = (size_t)gr->hash & (nb - 1);
            gr->next = b[k];
            b[k] = gr;
            gr = next;
        }
    }
    free(g->buckets);
    g->buckets = b;
    g->nbuckets = nb;
}

int groupout_add(groupout *g, const char *host, const void *out, size_t outlen, const char *label)
{
    if (!g || !host || (!out && outlen > 0))
        return -1;
    if (label && !*label)
        label = NULL;
    const unsigned char *o = out;
    uint64_t h = go_hash(o, outlen, label);
    size_t b = (size_t)h & (g->nbuckets - 1);
    go_group *gr = g->buckets[b];
    while (gr) {
        if (gr->hash == h && gr->outlen == outlen && (outlen == 0 || memcmp(gr->out, o, outlen) == 0) &&
            ((!gr->label && !label) || (gr->label && label && strcmp(gr->label, label) == 0)))
            break;
        gr = gr->next;
    }

    char *hcopy = go_strdup(host);
    if (!hcopy)
        return -1;

    if (gr) {
        if (gr->nhosts == gr->cap) {
            size_t ncap = gr->cap * 2;
            char **nh = ncap <= SIZE_MAX / sizeof *nh ? realloc(gr->hosts, ncap * sizeof *nh) : NULL;
            if (!nh) {
                free(hcopy);
                return -1;
            }
            gr->hosts = nh;
            gr->cap = ncap;
        }
        gr->hosts[gr->nhosts++] = hcopy;
        g->nhosts++;
        return 0;
    }

    if (g->ngroups == g->listcap) {
        size_t ncap = g->listcap ? g->listcap * 2 : 16;
        go_group **nl = ncap <= SIZE_MAX / sizeof *nl ? realloc(g->list, ncap * sizeof *nl) : NULL;
        if (!nl) {
            free(hcopy);
            return -1;
        }
        g->list = nl;
        g->listcap = ncap;
    }
    gr = calloc(1, sizeof *gr);
    if (!gr) {
        free(hcopy);
        return -1;
    }
    gr->hash = h;
    gr->outlen = outlen;
    gr->out = malloc(outlen ? outlen : 1);
    gr->label = label ? go_strdup(label) : NULL;
    gr->cap = 4;
    gr->hosts = malloc(gr->cap * sizeof *gr->hosts);
    if (!gr->out || (label && !gr->label) || !gr->hosts) {
        free(hcopy);
        go_group_free(gr);
        return -1;
    }
    if (outlen)
        memcpy(gr->out, o, outlen);
    gr->hosts[gr->nhosts++] = hcopy;
    gr->next = g->buckets[b];
    g->buckets[b] = gr;
    g->list[g->ngroups++] = gr;
    g->nhosts++;
    go_grow_buckets(g);
    return 0;
}

static int go_cmp(const void *a, const void *b)
{
    const go_group *x = *(const go_group *const *)a;
    const go_group *y = *(const go_group *const *)b;
    if (x->nhosts != y->nhosts)
        return x->nhosts > y->nhosts ? -1 : 1;
    if (x->folded && y->folded) {
        int c = nodeset_natcmp(x->folded, y->folded);
        if (c != 0)
            return c;
    } else if (x->folded || y->folded) {
        return x->folded ? -1 : 1;
    }
    if (!x->label != !y->label)
        return x->label ? 1 : -1;
    if (x->label) {
        int c = strcmp(x->label, y->label);
        if (c != 0)
            return c;
    }
    size_t m = x->outlen < y->outlen ? x->outlen : y->outlen;
    int c = m ? memcmp(x->out, y->out, m) : 0;
    if (c != 0)
        return c;
    if (x->outlen != y->outlen)
        return x->outlen < y->outlen ? -1 : 1;
    return 0; /* same output and label: same group */
}

static size_t go_decimal_len(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static void go_dashes(FILE *f, size_t n, int color)
{
    if (color)
        fputs(GO_BOLD, f);
    for (size_t i = 0; i < n; i++)
        fputc('-', f);
    if (color)
        fputs(GO_RESET, f);
    fputc('\n', f);
}

/* Names of a group: folded, or joined with commas if folding ran out of memory. */
static size_t go_names_len(const go_group *gr)
{
    if (gr->folded)
        return strlen(gr->folded);
    size_t n = 0;
    for (size_t i = 0; i < gr->nhosts; i++)
        n += strlen(gr->hosts[i]) + (i > 0);
    return n;
}

static void go_names_print(const go_group *gr, FILE *f)
{
    if (gr->folded) {
        fputs(gr->folded, f);
        return;
    }
    for (size_t i = 0; i < gr->nhosts; i++) {
        if (i > 0)
            fputc(',', f);
        fputs(gr->hosts[i], f);
    }
}

static void go_print_group(const go_group *gr, FILE *f, int color)
{
    size_t hlen = go_names_len(gr) + 3 + go_decimal_len(gr->nhosts); /* " (N)" */
    if (gr->label)
        hlen += 1 + strlen(gr->label);

    go_dashes(f, hlen, color);
    if (color)
        fputs(GO_BOLD, f);
    go_names_print(gr, f);
    fprintf(f, " (%zu)", gr->nhosts);
    if (gr->label) {
        fputc(' ', f);
        if (color)
            fputs(GO_RED, f);
        fputs(gr->label, f);
    }
    if (color)
        fputs(GO_RESET, f);
    fputc('\n', f);
    go_dashes(f, hlen, color);

    /* The output as is, NUL bytes left out. */
    const unsigned char *p = gr->out, *end = gr->out + gr->outlen;
    int last = -1;
    while (p < end) {
        const unsigned char *z = memchr(p, '\0', (size_t)(end - p));
        const unsigned char *stop = z ? z : end;
        if (stop > p) {
            fwrite(p, 1, (size_t)(stop - p), f);
            last = stop[-1];
        }
        p = z ? z + 1 : end;
    }
    if (last != -1 && last != '\n')
        fputc('\n', f);
}

void groupout_print(groupout *g, FILE *f, int color)
{
    if (!g || !f || g->ngroups == 0)
        return;
    for (size_t i = 0; i < g->ngroups; i++) {
        go_group *gr = g->list[i];
        free(gr->folded);
        gr->folded = nodeset_fold((const char *const *)gr->hosts, gr->nhosts);
    }
    go_group **order = malloc(g->ngroups * sizeof *order);
    if (order) {
        memcpy(order, g->list, g->ngroups * sizeof *order);
        qsort(order, g->ngroups, sizeof *order, go_cmp);
    }
    for (size_t i = 0; i < g->ngroups; i++)
        go_print_group(order ? order[i] : g->list[i], f, color);
    free(order);
}
