/* known_hosts files held in memory (see shoal/knownhosts.h, "in-memory
 * database").
 *
 * Every usable line becomes an entry (its key base64-decoded once). An
 * entry is found in one of two ways:
 *  - through the hash table, by each name of a plain hosts field made only
 *    of literal names ("host", "[host]:port"): lowercased, such a name
 *    matches a query exactly when it equals it (shoal_wildmatch treats only
 *    '*' and '?' specially, and folds ASCII case), so an exact-match lookup
 *    gives the same answer as the pattern matcher;
 *  - through a list scanned on every lookup: fields with '*', '?' or a '!'
 *    negation (a negation changes the meaning of the whole field), "|1|"
 *    hashed fields (salt and hash decoded once, one HMAC per lookup) and
 *    @revoked lines.
 * Lines are parsed by the file checker's own parser (knownhosts_internal.h)
 * and classified by the same function, so both agree line by line. Each
 * entry carries its position (file, line); a lookup keeps the first entry
 * of each kind in that order, which is what checking the files one after
 * the other and combining the answers as the uv driver does gives. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "keys/knownhosts_internal.h"
#include "wire/buf.h"

typedef struct kh_entry {
    uint64_t seq; /* file << 32 | line: the order the driver reads lines in */
    uint32_t file, line;
    enum shoal__kh_marker marker;
    size_t typelen;
    char type[KH_MAX_TYPE];
    uint8_t *key;
    size_t keylen;
} kh_entry;

typedef struct kh_name {
    char *name; /* lowercased */
    size_t len;
    uint32_t hash;
    uint32_t entry;
    uint32_t next; /* next name in the bucket, index + 1 (0 = end) */
} kh_name;

typedef struct kh_pattern {
    uint32_t entry;
    int hashed;
    char *pat; /* plain pattern list (not hashed) */
    size_t patlen;
    uint8_t salt[KH_HASH_LEN], want[KH_HASH_LEN]; /* hashed */
} kh_pattern;

struct shoal_kh_db {
    pthread_rwlock_t lock;
    char **files;
    unsigned nfiles;
    uint32_t next_line; /* line number the next append to files[0] gets */
    kh_entry *entries;
    size_t n_entries, cap_entries;
    kh_name *names;
    size_t n_names, cap_names;
    uint32_t *buckets; /* name index + 1, 0 = empty; nbuckets is a power of two */
    size_t nbuckets;
    kh_pattern *pats;
    size_t n_pats, cap_pats;
    EVP_MAC *hmac; /* fetched once, shared by every lookup (read-only) */
};

/* FNV-1a: names are short and already lowercase. */
static uint32_t kh_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return SHOAL_OK;
    size_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX - 1)
        return SHOAL_ERR_TOO_LARGE; /* indexes are 32-bit */
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return SHOAL_ERR_NOMEM;
    *p = np;
    *cap = ncap;
    return SHOAL_OK;
}

static int rehash(shoal_kh_db *db, size_t nb)
{
    uint32_t *b = calloc(nb, sizeof(*b));
    if (!b)
        return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < db->n_names; i++) {
        kh_name *n = &db->names[i];
        size_t slot = n->hash & (nb - 1);
        n->next = b[slot];
        b[slot] = (uint32_t)(i + 1);
    }
    free(db->buckets);
    db->buckets = b;
    db->nbuckets = nb;
    return SHOAL_OK;
}

/* Adds a lowercased copy of name[0..len) pointing at entry. */
static int add_name(shoal_kh_db *db, const char *name, size_t len, uint32_t entry)
{
    int rc = grow((void **)&db->names, &db->cap_names, db->n_names + 1, sizeof(kh_name));
    if (rc)
        return rc;
    if (db->n_names + 1 > db->nbuckets) {
        rc = rehash(db, db->nbuckets ? db->nbuckets * 2 : 1024);
        if (rc)
            return rc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return SHOAL_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        copy[i] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
    copy[len] = 0;
    kh_name *n = &db->names[db->n_names];
    n->name = copy;
    n->len = len;
    n->hash = kh_hash(copy, len);
    n->entry = entry;
    size_t slot = n->hash & (db->nbuckets - 1);
    n->next = db->buckets[slot];
    db->buckets[slot] = (uint32_t)(db->n_names + 1);
    db->n_names++;
    return SHOAL_OK;
}

/* Appends an entry (taking ownership of key); *index gets its position. */
static int add_entry(shoal_kh_db *db, uint32_t file, uint32_t line, enum shoal__kh_marker marker, const char *type,
                     size_t typelen, uint8_t *key, size_t keylen, uint32_t *index)
{
    int rc = grow((void **)&db->entries, &db->cap_entries, db->n_entries + 1, sizeof(kh_entry));
    if (rc) {
        free(key);
        return rc;
    }
    kh_entry *e = &db->entries[db->n_entries];
    memset(e, 0, sizeof(*e));
    e->seq = (uint64_t)file << 32 | line;
    e->file = file;
    e->line = line;
    e->marker = marker;
    e->typelen = typelen;
    memcpy(e->type, type, typelen);
    e->type[typelen] = 0;
    e->key = key;
    e->keylen = keylen;
    *index = (uint32_t)db->n_entries++;
    return SHOAL_OK;
}

static int add_pattern(shoal_kh_db *db, const kh_pattern *p)
{
    int rc = grow((void **)&db->pats, &db->cap_pats, db->n_pats + 1, sizeof(kh_pattern));
    if (rc)
        return rc;
    db->pats[db->n_pats++] = *p;
    return SHOAL_OK;
}

/* A plain field made only of literal names can go to the hash table. */
static int field_is_literal(const char *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i] == '*' || f[i] == '?')
            return 0;
        if (f[i] == '!' && (i == 0 || f[i - 1] == ','))
            return 0;
    }
    return 1;
}

typedef struct load_ctx {
    shoal_kh_db *db;
    uint32_t file;
    shoal_buf keybuf;
} load_ctx;

static int load_line(void *ud, const shoal__kh_line *l, unsigned lineno)
{
    load_ctx *lc = ud;
    shoal_kh_db *db = lc->db;
    if (l->marker == KH_MARK_CA)
        return SHOAL_OK; /* never decides a plain key (see the file checker) */
    kh_pattern p;
    memset(&p, 0, sizeof(p));
    int hashed = l->hostslen > 0 && l->hosts[0] == '|';
    if (hashed && shoal__kh_hashed_parse(l->hosts, l->hostslen, p.salt, p.want) != SHOAL_OK)
        return SHOAL_OK; /* a broken hashed field matches nothing */
    /* A key that does not decode, or decodes to nothing, never decides. */
    shoal_buf_reset(&lc->keybuf);
    int rc = shoal_base64_decode(l->b64, l->b64len, &lc->keybuf);
    if (rc == SHOAL_ERR_NOMEM)
        return rc;
    if (rc != SHOAL_OK || shoal_buf_len(&lc->keybuf) == 0)
        return SHOAL_OK;
    size_t keylen = shoal_buf_len(&lc->keybuf);
    uint8_t *key = malloc(keylen);
    if (!key)
        return SHOAL_ERR_NOMEM;
    memcpy(key, shoal_buf_ptr(&lc->keybuf), keylen);
    uint32_t idx;
    rc = add_entry(db, lc->file, lineno, l->marker, l->type, l->typelen, key, keylen, &idx);
    if (rc)
        return rc;
    p.entry = idx;
    if (hashed) {
        p.hashed = 1;
        return add_pattern(db, &p);
    }
    if (l->marker == KH_MARK_REVOKED || !field_is_literal(l->hosts, l->hostslen)) {
        p.pat = malloc(l->hostslen + 1);
        if (!p.pat)
            return SHOAL_ERR_NOMEM;
        memcpy(p.pat, l->hosts, l->hostslen);
        p.pat[l->hostslen] = 0;
        p.patlen = l->hostslen;
        rc = add_pattern(db, &p);
        if (rc)
            free(p.pat);
        return rc;
    }
    size_t i = 0;
    while (i <= l->hostslen) {
        size_t j = i;
        while (j < l->hostslen && l->hosts[j] != ',')
            j++;
        if (j > i) { /* an empty name matches no query */
            rc = add_name(db, l->hosts + i, j - i, idx);
            if (rc)
                return rc;
        }
        i = j + 1;
    }
    return SHOAL_OK;
}

void shoal_kh_db_free(shoal_kh_db *db)
{
    if (!db)
        return;
    pthread_rwlock_destroy(&db->lock);
    for (unsigned i = 0; i < db->nfiles; i++)
        free(db->files[i]);
    free(db->files);
    for (size_t i = 0; i < db->n_entries; i++)
        free(db->entries[i].key);
    free(db->entries);
    for (size_t i = 0; i < db->n_names; i++)
        free(db->names[i].name);
    free(db->names);
    free(db->buckets);
    for (size_t i = 0; i < db->n_pats; i++)
        free(db->pats[i].pat);
    free(db->pats);
    EVP_MAC_free(db->hmac);
    free(db);
}

int shoal_kh_db_open(const char *const *files, unsigned n, shoal_kh_db **out)
{
    return shoal_kh_db_open_files(files, n, out, NULL, NULL);
}

int shoal_kh_db_open_files(const char *const *files, unsigned n, shoal_kh_db **out, unsigned *failed,
                           int *sys_errno)
{
    if (failed)
        *failed = 0;
    if (sys_errno)
        *sys_errno = 0;
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (n && !files)
        return SHOAL_ERR_INVALID_ARG;
    for (unsigned i = 0; i < n; i++)
        if (!files[i] || !*files[i])
            return SHOAL_ERR_INVALID_ARG;
    shoal_kh_db *db = calloc(1, sizeof(*db));
    if (!db)
        return SHOAL_ERR_NOMEM;
    if (pthread_rwlock_init(&db->lock, NULL) != 0) {
        free(db);
        return SHOAL_ERR_NOMEM;
    }
    db->next_line = 1;
    int rc = SHOAL_OK;
    if (n) {
        db->files = calloc(n, sizeof(char *));
        if (!db->files)
            rc = SHOAL_ERR_NOMEM;
        for (unsigned i = 0; !rc && i < n; i++) {
            db->files[i] = strdup(files[i]);
            if (!db->files[i])
                rc = SHOAL_ERR_NOMEM;
            else
                db->nfiles = i + 1;
        }
    }
    if (!rc)
        rc = rehash(db, 1024);
    db->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL); /* NULL: each lookup fetches its own */
    load_ctx lc;
    lc.db = db;
    shoal_buf_init(&lc.keybuf, KH_MAX_LINE);
    for (unsigned i = 0; !rc && i < n; i++) {
        char *data = NULL;
        size_t len = 0;
        rc = shoal__kh_read_file(files[i], &data, &len, sys_errno);
        if (rc) {
            if (failed)
                *failed = i;
            break;
        }
        unsigned nlines = 0;
        lc.file = i;
        if (data)
            rc = shoal__kh_foreach_line(data, len, load_line, &lc, &nlines);
        free(data);
        /* An append writes a newline first when the last line lacks one,
         * so either way the new line is number nlines + 1. */
        if (i == 0)
            db->next_line = nlines < UINT32_MAX ? nlines + 1 : UINT32_MAX;
    }
    shoal_buf_free(&lc.keybuf);
    if (rc) {
        shoal_kh_db_free(db);
        return rc;
    }
    *out = db;
    return SHOAL_OK;
}

/* ---- lookups (caller holds the lock) ---- */

typedef int (*visit_fn)(void *ud, const kh_entry *e);

/* Calls fn for every entry whose hosts field matches the query. */
static int visit_matching(shoal_kh_db *db, const char *q, size_t qlen, visit_fn fn, void *ud)
{
    int rc = SHOAL_OK;
    uint32_t h = kh_hash(q, qlen);
    for (uint32_t i = db->buckets[h & (db->nbuckets - 1)]; i && !rc; i = db->names[i - 1].next) {
        const kh_name *n = &db->names[i - 1];
        if (n->hash == h && n->len == qlen && memcmp(n->name, q, qlen) == 0)
            rc = fn(ud, &db->entries[n->entry]);
    }
    shoal__kh_hasher hasher = {NULL, NULL};
    for (size_t i = 0; i < db->n_pats && !rc; i++) {
        const kh_pattern *p = &db->pats[i];
        /* One context per lookup, from the algorithm fetched at open (a
         * fetch per lookup would cost more than the HMACs). */
        if (p->hashed && !hasher.ctx && db->hmac && EVP_MAC_up_ref(db->hmac) == 1) {
            hasher.mac = db->hmac;
            hasher.ctx = EVP_MAC_CTX_new(db->hmac);
        }
        int m = p->hashed ? shoal__kh_hashed_check(&hasher, p->salt, p->want, q, qlen)
                          : shoal__kh_match_plain_list(p->pat, p->patlen, q, qlen);
        if (m < 0)
            rc = m;
        else if (m == 1)
            rc = fn(ud, &db->entries[p->entry]);
    }
    shoal__kh_hasher_free(&hasher);
    return rc;
}

typedef struct check_ctx {
    const char *type;
    size_t typelen;
    const uint8_t *blob;
    size_t bloblen;
    const kh_entry *best[5]; /* per shoal__kh_class: the first entry of that kind */
} check_ctx;

static int check_visit(void *ud, const kh_entry *e)
{
    check_ctx *cc = ud;
    enum shoal__kh_class k = shoal__kh_classify(e->marker, e->type, e->typelen, e->key, e->keylen, cc->type,
                                                cc->typelen, cc->blob, cc->bloblen);
    if (k != KH_CLASS_NONE && (!cc->best[k] || e->seq < cc->best[k]->seq))
        cc->best[k] = e;
    return SHOAL_OK;
}

static int check_locked(shoal_kh_db *db, const char *q, size_t qlen, const char *keytype, size_t ktlen,
                        const uint8_t *blob, size_t bloblen, shoal_kh_result *r, const char **file)
{
    check_ctx cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = keytype;
    cc.typelen = ktlen;
    cc.blob = blob;
    cc.bloblen = bloblen;
    int rc = visit_matching(db, q, qlen, check_visit, &cc);
    if (rc)
        return rc;
    static const struct {
        enum shoal__kh_class k;
        shoal_kh_status st;
    } order[] = {{KH_CLASS_REVOKED, SHOAL_KH_REVOKED},
                 {KH_CLASS_MATCH, SHOAL_KH_MATCH},
                 {KH_CLASS_MISMATCH, SHOAL_KH_MISMATCH},
                 {KH_CLASS_OTHER, SHOAL_KH_OTHER_TYPE}};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const kh_entry *e = cc.best[order[i].k];
        if (!e)
            continue;
        r->status = order[i].st;
        r->line = e->line;
        memcpy(r->keytype, e->type, e->typelen + 1);
        if (file)
            *file = e->file < db->nfiles ? db->files[e->file] : NULL;
        break;
    }
    return SHOAL_OK;
}

/* Validates the common arguments and builds the query. */
static int prepare(const char *host, unsigned port, const char *keytype, const uint8_t *blob, size_t bloblen,
                   char *q, size_t qsz, size_t *qlen, size_t *ktlen)
{
    if (!keytype || (!blob && bloblen))
        return SHOAL_ERR_INVALID_ARG;
    *ktlen = strlen(keytype);
    if (*ktlen == 0 || *ktlen >= KH_MAX_TYPE)
        return SHOAL_ERR_INVALID_ARG;
    return shoal__kh_make_query(host, port, q, qsz, qlen);
}

int shoal_kh_db_check(shoal_kh_db *db, const char *host, unsigned port, const char *keytype, const uint8_t *blob,
                      size_t bloblen, shoal_kh_result *r, const char **file)
{
    if (r)
        memset(r, 0, sizeof(*r));
    if (file)
        *file = NULL;
    if (!db || !r)
        return SHOAL_ERR_INVALID_ARG;
    char q[KH_MAX_QUERY + 1];
    size_t qlen, ktlen;
    int rc = prepare(host, port, keytype, blob, bloblen, q, sizeof(q), &qlen, &ktlen);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&db->lock);
    rc = check_locked(db, q, qlen, keytype, ktlen, blob, bloblen, r, file);
    pthread_rwlock_unlock(&db->lock);
    if (rc) {
        memset(r, 0, sizeof(*r));
        if (file)
            *file = NULL;
    }
    return rc;
}

typedef struct types_ctx {
    const char *const *types;
    unsigned ntypes;
    int *known;
} types_ctx;

static int types_visit(void *ud, const kh_entry *e)
{
    types_ctx *tc = ud;
    if (e->marker != KH_MARK_NONE)
        return SHOAL_OK; /* a revoked line never counts as knowing the host */
    for (unsigned i = 0; i < tc->ntypes; i++)
        if (strlen(tc->types[i]) == e->typelen && memcmp(tc->types[i], e->type, e->typelen) == 0)
            tc->known[i] = 1;
    return SHOAL_OK;
}

int shoal_kh_db_known_types(shoal_kh_db *db, const char *host, unsigned port, const char *const *types,
                            unsigned ntypes, int *known)
{
    if (!db || (ntypes && (!types || !known)))
        return SHOAL_ERR_INVALID_ARG;
    for (unsigned i = 0; i < ntypes; i++) {
        if (!types[i])
            return SHOAL_ERR_INVALID_ARG;
        known[i] = 0;
    }
    char q[KH_MAX_QUERY + 1];
    size_t qlen;
    int rc = shoal__kh_make_query(host, port, q, sizeof(q), &qlen);
    if (rc)
        return rc;
    types_ctx tc = {types, ntypes, known};
    pthread_rwlock_rdlock(&db->lock);
    rc = visit_matching(db, q, qlen, types_visit, &tc);
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

int shoal_kh_db_add(shoal_kh_db *db, const char *host, unsigned port, const char *keytype, const uint8_t *blob,
                    size_t bloblen, int hash)
{
    if (!db)
        return SHOAL_ERR_INVALID_ARG;
    int rc = shoal__kh_append_check(host, port, keytype, blob, bloblen);
    if (rc)
        return rc;
    char q[KH_MAX_QUERY + 1];
    size_t qlen, ktlen;
    rc = prepare(host, port, keytype, blob, bloblen, q, sizeof(q), &qlen, &ktlen);
    if (rc)
        return rc;
    uint8_t *key = malloc(bloblen);
    if (!key)
        return SHOAL_ERR_NOMEM;
    memcpy(key, blob, bloblen);

    pthread_rwlock_wrlock(&db->lock);
    /* Two connections to one new host may both have been told NOT_FOUND:
     * the second one finds the first one's line here and writes nothing. */
    shoal_kh_result r;
    memset(&r, 0, sizeof(r));
    rc = check_locked(db, q, qlen, keytype, ktlen, blob, bloblen, &r, NULL);
    if (rc || r.status == SHOAL_KH_MATCH) {
        pthread_rwlock_unlock(&db->lock);
        free(key);
        return rc;
    }
    /* Written under the lock: appends from this process stay in the order
     * of their line numbers. */
    int wrc = db->nfiles ? shoal_knownhosts_append(db->files[0], host, port, keytype, blob, bloblen, hash)
                         : SHOAL_OK;
    /* Without files the counter only keeps added entries in order. */
    uint32_t line = db->next_line;
    if (wrc == SHOAL_OK && db->next_line < UINT32_MAX)
        db->next_line++;
    /* In memory the entry is always plain: a hashed line matches exactly
     * the query it was made from, which is what the index does. */
    uint32_t idx;
    rc = add_entry(db, 0, line, KH_MARK_NONE, keytype, ktlen, key, bloblen, &idx);
    if (!rc)
        rc = add_name(db, q, qlen, idx);
    pthread_rwlock_unlock(&db->lock);
    return rc ? rc : wrc;
}
