/* Fuzz target: host patterns (`-H web[01-40]`, hosts files) and the
 * folding of host lists for display (apps/shoal/fanout/nodeset.c). Patterns are
 * typed by users, but hosts files are often generated: any input must give
 * a clean error or names, never a crash or an unbounded expansion; folding
 * what was expanded and expanding it again gives the same set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../apps/shoal/fanout/nodeset.c"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *pat = malloc(size + 1);
    memcpy(pat, data, size);
    pat[size] = 0;
    char **names = NULL;
    size_t n = 0;
    if (nodeset_expand(pat, &names, &n, 5000) == 0 && n) {
        int plain = 1;
        for (size_t i = 0; i < n; i++)
            if (strpbrk(names[i], "[],") || !names[i][0])
                plain = 0;
        char *folded = nodeset_fold((const char *const *)names, n);
        if (!folded)
            abort();
        if (plain) {
            char **again = NULL;
            size_t m = 0;
            if (nodeset_expand(folded, &again, &m, 1000000) != 0)
                abort();
            /* Same set (the fold may reorder and drops nothing); compare
             * sorted, duplicate-free views without touching the arrays. */
            char **x = malloc(n * sizeof(char *)), **y = malloc((m ? m : 1) * sizeof(char *));
            memcpy(x, names, n * sizeof(char *));
            if (m)
                memcpy(y, again, m * sizeof(char *));
            qsort(x, n, sizeof(char *), cmp);
            qsort(y, m, sizeof(char *), cmp);
            size_t u = 0;
            for (size_t i = 0; i < n; i++)
                if (i == 0 || strcmp(x[i], x[i - 1]))
                    x[u++] = x[i];
            size_t v = 0;
            for (size_t i = 0; i < m; i++)
                if (i == 0 || strcmp(y[i], y[i - 1]))
                    y[v++] = y[i];
            if (u != v)
                abort();
            for (size_t i = 0; i < u; i++)
                if (strcmp(x[i], y[i]))
                    abort();
            free(x);
            free(y);
            nodeset_free_names(again, m);
        }
        free(folded);
    }
    if (names)
        nodeset_free_names(names, n);
    free(pat);
    return 0;
}
