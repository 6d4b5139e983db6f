/* The allocation wrappers of failmalloc.h. Everything here calls the
 * __real_ functions directly: this file is linked with the same --wrap
 * options as the code it watches. */
#include "failmalloc.h"

#include <execinfo.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static int armed;
static unsigned long counted, fail_at;
static int failed;

/* ---- the set of live blocks: open addressing, linear probing ---- */

typedef struct slot {
    void *p;
    unsigned long idx; /* its number in the armed run that made it, 0 if none */
    unsigned run;      /* that run */
} slot;

static slot *slots;
static size_t nslots, nlive; /* nslots: power of two, kept above 2 * nlive */
static unsigned long current_idx; /* number of the allocation being made, 0 if not counted */
static unsigned run_no;             /* armed runs so far */

static size_t slot_of(const void *p)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0xed5ad4bbu;
    h ^= h >> 11;
    return (size_t)h & (nslots - 1);
}

static void set_put(slot e)
{
    size_t i = slot_of(e.p);
    while (slots[i].p)
        i = (i + 1) & (nslots - 1);
    slots[i] = e;
    nlive++;
}

static int set_grow(void)
{
    size_t old_n = nslots;
    slot *old = slots;
    size_t n = old_n ? old_n * 2 : 1u << 16;
    slot *fresh = __real_calloc(n, sizeof(*fresh));
    if (!fresh)
        return -1;
    slots = fresh;
    nslots = n;
    nlive = 0;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].p)
            set_put(old[i]);
    __real_free(old);
    return 0;
}

static void set_insert(void *p)
{
    if ((nlive + 1) * 2 > nslots && set_grow() != 0)
        return; /* the watcher itself out of memory: stop tracking this one */
    set_put((slot){p, current_idx, run_no});
}

static void set_remove(void *p)
{
    if (!nslots)
        return;
    size_t i = slot_of(p);
    while (slots[i].p && slots[i].p != p)
        i = (i + 1) & (nslots - 1);
    if (!slots[i].p)
        return; /* allocated elsewhere (libc, or before tracking began) */
    slots[i].p = NULL;
    nlive--;
    /* Re-place the entries of the run after the hole. */
    for (size_t j = (i + 1) & (nslots - 1); slots[j].p; j = (j + 1) & (nslots - 1)) {
        slot e = slots[j];
        slots[j].p = NULL;
        nlive--;
        set_put(e);
    }
}

/* ---- counting ---- */

/* Where allocation number `counted` is made, on stderr
 * (backtrace_symbols_fd does not allocate). */
static void print_backtrace(void)
{
    void *frames[32];
    int n = backtrace(frames, 32);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    if (write(STDERR_FILENO, "--\n", 3) < 0)
        return;
}

static int should_fail(void)
{
    current_idx = 0;
    if (!armed)
        return 0;
    current_idx = ++counted;
    /* FAILMALLOC_BACKTRACE=1: where the failed allocation is made;
     * FAILMALLOC_BACKTRACE_AT=N: where allocation N of a run that fails one
     * is made. */
    static long trace_at = -1;
    if (trace_at < 0) {
        const char *e = getenv("FAILMALLOC_BACKTRACE_AT");
        trace_at = e ? strtol(e, NULL, 10) : 0;
    }
    if (trace_at > 0 && fail_at && counted == (unsigned long)trace_at)
        print_backtrace();
    if (counted == fail_at) {
        failed = 1;
        if (getenv("FAILMALLOC_BACKTRACE"))
            print_backtrace();
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __real_malloc(n);
    if (p)
        set_insert(p);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = __real_calloc(n, size);
    if (p)
        set_insert(p);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (p && n == 0) {
        set_remove(p);
        return __real_realloc(p, 0);
    }
    if (should_fail())
        return NULL; /* p stays valid, as realloc promises */
    void *q = __real_realloc(p, n);
    if (q) {
        if (p)
            set_remove(p);
        set_insert(q);
    }
    return q;
}

void __wrap_free(void *p)
{
    if (p)
        set_remove(p);
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *__wrap_strndup(const char *s, size_t n)
{
    size_t l = strnlen(s, n);
    char *d = __wrap_malloc(l + 1);
    if (d) {
        memcpy(d, s, l);
        d[l] = 0;
    }
    return d;
}

/* ---- libcrypto ---- */

static void *crypto_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return __wrap_malloc(n);
}

static void *crypto_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return __wrap_realloc(p, n);
}

static void crypto_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    __wrap_free(p);
}

int failmalloc_install(void)
{
    return CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free);
}

void failmalloc_arm(unsigned long n)
{
    counted = 0;
    run_no++;
    fail_at = n;
    failed = 0;
    armed = 1;
}

unsigned long failmalloc_disarm(void)
{
    armed = 0;
    return counted;
}

unsigned long failmalloc_count(void)
{
    return counted;
}

int failmalloc_failed(void)
{
    return failed;
}

size_t failmalloc_live(void)
{
    return nlive;
}

size_t failmalloc_live_from_run(unsigned long *idx, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].p && slots[i].idx && slots[i].run == run_no) {
            if (n < max)
                idx[n] = slots[i].idx;
            n++;
        }
    return n;
}
