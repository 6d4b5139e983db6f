/* Per-source startups and penalties: see srclimit.h.
 *
 * One table type serves both uses: entries in a stable array (freed slots
 * chained for reuse), an open-addressing index of entry numbers (linear
 * probing, backward-shift deletion) hashed with a secret seed so a client
 * cannot aim addresses at one chain, and, for penalties, a binary min-heap
 * of entry numbers ordered by expiry (expiring and "permissive" eviction
 * both take the top). */
#include "uv/srclimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/parse_util.h"
#include "shoal/error.h"

#define NONE UINT32_MAX
#define DEFAULT_SOURCES 65536u

typedef struct sent {
    shoal_srckey k;
    uint32_t count;    /* startups */
    uint64_t expiry;   /* penalties: refusal time runs out at this instant (ms) */
    uint32_t heap_pos; /* penalties; the free list's link while unused */
    uint8_t used, active, kind;
} sent;

typedef struct stab {
    sent *e;
    uint32_t n_e, cap_e, n_used, free_head;
    uint32_t *idx; /* entry numbers, NONE = empty; size a power of two */
    uint32_t idx_mask;
    uint32_t *heap;
    uint32_t n_heap;
    uint32_t max;        /* most entries (penalties), UINT32_MAX for startups */
    int deny_all, overflowed;
    uint64_t seed;
} stab;

struct shoal_srclimit {
    shoal_srclimit_config cfg;
    char *exempt;
    stab starts, pen4, pen6;
};

/* ---- keys ---- */

static void mask_bits(uint8_t *a, unsigned len, unsigned bits)
{
    for (unsigned i = 0; i < len; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : (bits > 8 * i ? bits - 8 * i : 0);
        a[i] &= (uint8_t)(keep ? 0xff << (8 - keep) : 0);
    }
}

int shoal__srclimit_key(const shoal_srclimit *sl, const struct sockaddr *sa, shoal_srckey *k)
{
    memset(k, 0, sizeof(*k));
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(s6->sin6_addr.s6_addr, mapped, 12) != 0) {
            k->fam = 6;
            k->bits = (uint8_t)sl->cfg.bits6;
            memcpy(k->a, s6->sin6_addr.s6_addr, 16);
            mask_bits(k->a, 16, k->bits);
            return 0;
        }
        k->fam = 4;
        memcpy(k->a, s6->sin6_addr.s6_addr + 12, 4);
    } else if (sa->sa_family == AF_INET) {
        k->fam = 4;
        memcpy(k->a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else {
        return -1;
    }
    k->bits = (uint8_t)sl->cfg.bits4;
    mask_bits(k->a, 4, k->bits);
    return 0;
}

void shoal__srclimit_key_str(const shoal_srckey *k, char *buf, size_t bufsz)
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(k->fam == 6 ? AF_INET6 : AF_INET, k->a, a, sizeof(a));
    snprintf(buf, bufsz, "%s/%u", a, k->bits);
}

static int key_eq(const shoal_srckey *x, const shoal_srckey *y)
{
    return x->fam == y->fam && memcmp(x->a, y->a, x->fam == 6 ? 16 : 4) == 0;
}

static uint32_t key_hash(const stab *t, const shoal_srckey *k)
{
    /* FNV-1a with a secret offset, then a final mix. */
    uint64_t h = 1469598103934665603ull ^ t->seed;
    h = (h ^ k->fam) * 1099511628211ull;
    for (unsigned i = 0; i < (k->fam == 6 ? 16u : 4u); i++)
        h = (h ^ k->a[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* ---- the table ---- */

static void stab_init(stab *t, uint32_t max, int deny_all, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    t->max = max;
    t->deny_all = deny_all;
    t->seed = seed;
    t->free_head = NONE;
}

static void stab_free(stab *t)
{
    free(t->e);
    free(t->idx);
    free(t->heap);
    memset(t, 0, sizeof(*t));
}

static uint32_t stab_find(const stab *t, const shoal_srckey *k)
{
    if (!t->idx)
        return NONE;
    for (uint32_t i = key_hash(t, k) & t->idx_mask;; i = (i + 1) & t->idx_mask) {
        uint32_t e = t->idx[i];
        if (e == NONE)
            return NONE;
        if (key_eq(&t->e[e].k, k))
            return e;
    }
}

static void idx_put(stab *t, uint32_t e)
{
    uint32_t i = key_hash(t, &t->e[e].k) & t->idx_mask;
    while (t->idx[i] != NONE)
        i = (i + 1) & t->idx_mask;
    t->idx[i] = e;
}

/* Keeps the index at most half full. */
static int idx_grow(stab *t)
{
    if (t->idx && (uint64_t)(t->n_used + 1) * 2 <= (uint64_t)t->idx_mask + 1)
        return SHOAL_OK;
    uint32_t size = t->idx ? (t->idx_mask + 1) * 2 : 64;
    if (size == 0 || size > (1u << 30))
        return SHOAL_ERR_TOO_LARGE;
    uint32_t *n = malloc((size_t)size * sizeof(*n));
    if (!n)
        return SHOAL_ERR_NOMEM;
    free(t->idx);
    t->idx = n;
    t->idx_mask = size - 1;
    for (uint32_t i = 0; i < size; i++)
        t->idx[i] = NONE;
    for (uint32_t e = 0; e < t->n_e; e++)
        if (t->e[e].used)
            idx_put(t, e);
    return SHOAL_OK;
}

static void idx_del(stab *t, uint32_t e)
{
    uint32_t i = key_hash(t, &t->e[e].k) & t->idx_mask;
    while (t->idx[i] != e)
        i = (i + 1) & t->idx_mask;
    /* Backward-shift deletion: later members of the run move up. */
    for (uint32_t j = (i + 1) & t->idx_mask; t->idx[j] != NONE; j = (j + 1) & t->idx_mask) {
        uint32_t home = key_hash(t, &t->e[t->idx[j]].k) & t->idx_mask;
        /* Move j into the hole i unless its home lies cyclically in (i, j]. */
        int in_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_between) {
            t->idx[i] = t->idx[j];
            i = j;
        }
    }
    t->idx[i] = NONE;
}

/* ---- the heap (penalties) ---- */

static void heap_swap(stab *t, uint32_t a, uint32_t b)
{
    uint32_t x = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = x;
    t->e[t->heap[a]].heap_pos = a;
    t->e[t->heap[b]].heap_pos = b;
}

static void heap_up(stab *t, uint32_t p)
{
    while (p > 0) {
        uint32_t parent = (p - 1) / 2;
        if (t->e[t->heap[parent]].expiry <= t->e[t->heap[p]].expiry)
            break;
        heap_swap(t, p, parent);
        p = parent;
    }
}

static void heap_down(stab *t, uint32_t p)
{
    for (;;) {
        uint32_t l = 2 * p + 1, r = l + 1, m = p;
        if (l < t->n_heap && t->e[t->heap[l]].expiry < t->e[t->heap[m]].expiry)
            m = l;
        if (r < t->n_heap && t->e[t->heap[r]].expiry < t->e[t->heap[m]].expiry)
            m = r;
        if (m == p)
            return;
        heap_swap(t, p, m);
        p = m;
    }
}

static void heap_remove(stab *t, uint32_t e)
{
    uint32_t p = t->e[e].heap_pos;
    t->n_heap--;
    if (p != t->n_heap) {
        t->heap[p] = t->heap[t->n_heap];
        t->e[t->heap[p]].heap_pos = p;
        heap_down(t, p);
        heap_up(t, p);
    }
}

/* ---- entries ---- */

static uint32_t stab_add(stab *t, const shoal_srckey *k, int with_heap)
{
    if (idx_grow(t) != SHOAL_OK)
        return NONE;
    uint32_t e;
    if (t->free_head != NONE) {
        e = t->free_head;
        t->free_head = t->e[e].heap_pos;
    } else {
        if (t->n_e == t->cap_e) {
            uint32_t cap = t->cap_e ? t->cap_e * 2 : 16;
            sent *ne = realloc(t->e, (size_t)cap * sizeof(*ne));
            if (!ne)
                return NONE;
            t->e = ne;
            if (with_heap) {
                uint32_t *nh = realloc(t->heap, (size_t)cap * sizeof(*nh));
                if (!nh)
                    return NONE;
                t->heap = nh;
            }
            t->cap_e = cap;
        }
        e = t->n_e++;
    }
    memset(&t->e[e], 0, sizeof(t->e[e]));
    t->e[e].k = *k;
    t->e[e].used = 1;
    t->n_used++;
    idx_put(t, e);
    if (with_heap) {
        t->e[e].heap_pos = t->n_heap;
        t->heap[t->n_heap++] = e;
    }
    return e;
}

static void stab_del(stab *t, uint32_t e, int with_heap)
{
    idx_del(t, e);
    if (with_heap)
        heap_remove(t, e);
    t->e[e].used = 0;
    t->e[e].heap_pos = t->free_head;
    t->free_head = e;
    t->n_used--;
}

/* Drops the penalties whose time ran out. */
static void expire(stab *t, uint64_t now)
{
    while (t->n_heap && t->e[t->heap[0]].expiry <= now)
        stab_del(t, t->heap[0], 1);
    if (t->n_used < t->max)
        t->overflowed = 0;
}

/* ---- public ---- */

int shoal__srclimit_new(const shoal_srclimit_config *cfg, uint64_t seed, shoal_srclimit **out)
{
    *out = NULL;
    shoal_srclimit *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return SHOAL_ERR_NOMEM;
    sl->cfg = *cfg;
    if (!sl->cfg.bits4 || sl->cfg.bits4 > 32)
        sl->cfg.bits4 = 32;
    if (!sl->cfg.bits6 || sl->cfg.bits6 > 128)
        sl->cfg.bits6 = 128;
    if (cfg->exempt && !(sl->exempt = strdup(cfg->exempt))) {
        free(sl);
        return SHOAL_ERR_NOMEM;
    }
    sl->cfg.exempt = sl->exempt;
    stab_init(&sl->starts, UINT32_MAX, 0, seed);
    stab_init(&sl->pen4, cfg->max_sources4 ? cfg->max_sources4 : DEFAULT_SOURCES, cfg->deny_all4, seed ^ 0x5bd1e995);
    stab_init(&sl->pen6, cfg->max_sources6 ? cfg->max_sources6 : DEFAULT_SOURCES, cfg->deny_all6, seed ^ 0x9e3779b9);
    *out = sl;
    return SHOAL_OK;
}

void shoal__srclimit_free(shoal_srclimit *sl)
{
    if (!sl)
        return;
    stab_free(&sl->starts);
    stab_free(&sl->pen4);
    stab_free(&sl->pen6);
    free(sl->exempt);
    free(sl);
}

int shoal__srclimit_startup_ok(const shoal_srclimit *sl, const shoal_srckey *k)
{
    return !sl->cfg.max_startups || shoal__srclimit_startups(sl, k) < sl->cfg.max_startups;
}

unsigned shoal__srclimit_startups(const shoal_srclimit *sl, const shoal_srckey *k)
{
    uint32_t e = stab_find(&sl->starts, k);
    return e == NONE ? 0 : sl->starts.e[e].count;
}

int shoal__srclimit_startup_begin(shoal_srclimit *sl, const shoal_srckey *k)
{
    if (!sl->cfg.max_startups)
        return SHOAL_OK;
    uint32_t e = stab_find(&sl->starts, k);
    if (e == NONE && (e = stab_add(&sl->starts, k, 0)) == NONE)
        return SHOAL_ERR_NOMEM;
    sl->starts.e[e].count++;
    return SHOAL_OK;
}

void shoal__srclimit_startup_end(shoal_srclimit *sl, const shoal_srckey *k)
{
    if (!sl->cfg.max_startups)
        return;
    uint32_t e = stab_find(&sl->starts, k);
    if (e != NONE && --sl->starts.e[e].count == 0)
        stab_del(&sl->starts, e, 0);
}

const char *shoal__srclimit_reason(int kind)
{
    switch (kind) {
    case SHOAL_PENALTY_AUTHFAIL:
        return "penalty: failed authentication";
    case SHOAL_PENALTY_NOAUTH:
        return "penalty: connections without attempting authentication";
    case SHOAL_PENALTY_GRACE:
        return "penalty: exceeded LoginGraceTime";
    }
    return "penalty";
}

static int exempt(const shoal_srclimit *sl, const char *addr)
{
    return sl->exempt && addr && shoal_pu_addr_match_list(addr, sl->exempt, strlen(sl->exempt)) == 1;
}

static stab *pen_table(shoal_srclimit *sl, const shoal_srckey *k)
{
    return k->fam == 6 ? &sl->pen6 : &sl->pen4;
}

int shoal__srclimit_refused(shoal_srclimit *sl, const shoal_srckey *k, const char *addr, uint64_t now_ms,
                            const char **why)
{
    if (!sl->cfg.penalties || exempt(sl, addr))
        return 0;
    stab *t = pen_table(sl, k);
    expire(t, now_ms);
    if (t->overflowed) {
        *why = "penalty table full";
        return 1;
    }
    uint32_t e = stab_find(t, k);
    if (e == NONE || !t->e[e].active)
        return 0;
    *why = shoal__srclimit_reason(t->e[e].kind);
    return 1;
}

int shoal__srclimit_penalise(shoal_srclimit *sl, const shoal_srckey *k, const char *addr, int kind, uint64_t now_ms,
                             char *msg, size_t msgsz)
{
    const shoal_srclimit_config *c = &sl->cfg;
    unsigned secs = kind == SHOAL_PENALTY_AUTHFAIL ? c->authfail_s
                    : kind == SHOAL_PENALTY_NOAUTH ? c->noauth_s
                    : kind == SHOAL_PENALTY_GRACE  ? c->grace_s
                                                   : 0;
    if (!c->penalties || secs == 0 || exempt(sl, addr))
        return 0;
    stab *t = pen_table(sl, k);
    expire(t, now_ms);
    uint64_t max_ms = (uint64_t)c->max_s * 1000, min_ms = (uint64_t)c->min_s * 1000;
    uint64_t add = (uint64_t)secs * 1000;
    char block[80];
    shoal__srclimit_key_str(k, block, sizeof(block));
    const char *fam = k->fam == 6 ? "ipv6" : "ipv4";
    uint32_t e = stab_find(t, k);
    if (e == NONE) {
        if (t->n_used >= t->max) {
            if (t->deny_all) {
                int first = !t->overflowed;
                t->overflowed = 1;
                snprintf(msg, msgsz, "penalise: %s: penalty table full, cannot penalise %s for %s; refusing every "
                         "source of the family until one expires (overflow deny-all)", fam, block,
                         shoal__srclimit_reason(kind));
                return first ? 1 : 2;
            }
            stab_del(t, t->heap[0], 1); /* permissive: forget the one closest to expiry */
        }
        if ((e = stab_add(t, k, 1)) == NONE)
            return 0;
        uint64_t d = add < max_ms ? add : max_ms;
        t->e[e].expiry = now_ms + d;
        t->e[e].kind = (uint8_t)kind;
        t->e[e].active = d >= min_ms;
        heap_up(t, t->e[e].heap_pos);
        snprintf(msg, msgsz, "penalise: %s: new %s %s penalty of %llu seconds for %s", fam, block,
                 t->e[e].active ? "active" : "deferred", (unsigned long long)(d / 1000), shoal__srclimit_reason(kind));
        return t->e[e].active ? 1 : 2;
    }
    sent *x = &t->e[e];
    uint64_t left = x->expiry > now_ms ? x->expiry - now_ms : 0;
    uint64_t d = left + add;
    if (d > max_ms)
        d = max_ms;
    x->expiry = now_ms + d;
    x->kind = (uint8_t)kind;
    heap_down(t, x->heap_pos); /* the expiry only grew */
    if (!x->active && d >= min_ms) {
        x->active = 1;
        snprintf(msg, msgsz, "penalise: %s: activating %s penalty of %llu seconds for %s", fam, block,
                 (unsigned long long)(d / 1000), shoal__srclimit_reason(kind));
        return 1;
    }
    snprintf(msg, msgsz, "penalise: %s: %s penalty of %s now %llu seconds (%s)", fam, block,
             x->active ? "active" : "deferred", (unsigned long long)(d / 1000), shoal__srclimit_reason(kind));
    return 2;
}

unsigned shoal__srclimit_tracked(shoal_srclimit *sl, int fam, uint64_t now_ms)
{
    stab *t = fam == 6 ? &sl->pen6 : &sl->pen4;
    expire(t, now_ms);
    return t->n_used;
}
