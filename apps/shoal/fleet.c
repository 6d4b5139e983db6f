/* The fan-out engine: threads, queues, requests and upload sources.
 * Per-connection work lives in fleet_worker.c and fleet_upload.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fleet_impl.h"

static const char *const CLASS_NAMES[FLEET_CLASS_COUNT] = {
    "ok",      "exit status", "signal",   "no exit status", "dns",    "refused",   "connect", "timeout",
    "host key", "auth",       "closed",   "protocol",       "channel", "upload",   "cancelled", "local",
};

const char *fleet_class_name(fleet_class c)
{
    return (unsigned)c < FLEET_CLASS_COUNT ? CLASS_NAMES[c] : "?";
}

/* ---- requests ---- */

fleet_request *fleet_request_new(fleet_kind kind)
{
    fleet_request *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->stop, FLEET_RUNNING);
    r->kind = kind;
    r->out_cap = 1u << 20;
    return r;
}

fleet_request *fleet_request_ref(fleet_request *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

void fleet_request_unref(fleet_request *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    free(r->command);
    free(r->target);
    fleet_source_free(r->source);
    if (r->global_rate) {
        fleet_bucket_destroy(r->global_rate);
        free(r->global_rate);
    }
    free(r);
}

/* ---- upload sources ---- */

struct fleet_source {
    char *name;     /* the file's base name (uploads into a directory use it) */
    int fd;
    uint8_t *map;
    uint64_t size;
    uint32_t mode;
    char sha[65];
    pthread_mutex_t mu;
};

int fleet_source_open(const char *path, fleet_source **out, char *err, size_t errsz)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    fleet_source *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    const char *slash = strrchr(path, '/');
    s->name = strdup(slash ? slash + 1 : path);
    if (!s->name) {
        close(fd);
        free(s);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    s->fd = fd;
    s->size = (uint64_t)st.st_size;
    s->mode = (uint32_t)(st.st_mode & 07777);
    if (s->size) {
        s->map = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, fd, 0);
        if (s->map == MAP_FAILED) {
            snprintf(err, errsz, "cannot map %s: %s", path, strerror(errno));
            close(fd);
            free(s->name);
            free(s);
            return -1;
        }
        /* Read ahead: every host streams it from the start. */
        madvise(s->map, (size_t)s->size, MADV_SEQUENTIAL);
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

const uint8_t *fleet_source_data(const fleet_source *s)
{
    return s->map;
}

uint64_t fleet_source_size(const fleet_source *s)
{
    return s->size;
}

uint32_t fleet_source_mode(const fleet_source *s)
{
    return s->mode;
}

const char *fleet_source_name(const fleet_source *s)
{
    return s->name;
}

const char *fleet_source_sha256(fleet_source *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->sha[0]) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_Digest(s->map ? (const void *)s->map : "", (size_t)s->size, md, &mdlen, EVP_sha256(), NULL);
        for (unsigned i = 0; i < 32; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    }
    pthread_mutex_unlock(&s->mu);
    return s->sha;
}

void fleet_source_free(fleet_source *s)
{
    if (!s)
        return;
    if (s->map)
        munmap(s->map, (size_t)s->size);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}

unsigned long fleet_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (unsigned long)rl.rlim_cur;
}

/* ---- events back to the caller's loop ---- */

void fleet__post_event(fleet *f, fleet_event *ev)
{
    ev->next = NULL;
    pthread_mutex_lock(&f->rmu);
    if (f->rtail)
        f->rtail->next = ev;
    else
        f->rhead = ev;
    f->rtail = ev;
    pthread_mutex_unlock(&f->rmu);
    /* A wake-up per event costs the caller's thread a context switch (one
     * per host for a fan-out): with a delay, the drain timer collects them,
     * and only the last outstanding result wakes the loop at once. */
    int last = ev->type == FLEET_EV_RESULT && atomic_fetch_sub(&f->outstanding, 1) == 1;
    if (!f->cfg.event_delay_ms || last)
        uv_async_send(&f->results);
}

static void drain(fleet *f)
{
    pthread_mutex_lock(&f->rmu);
    fleet_event *ev = f->rhead;
    f->rhead = f->rtail = NULL;
    pthread_mutex_unlock(&f->rmu);
    while (ev) {
        fleet_event *next = ev->next;
        f->cb(f, ev, f->ud);
        ev = next;
    }
}

static void on_results(uv_async_t *a)
{
    drain(a->data);
}

static void on_drain_timer(uv_timer_t *t)
{
    fleet *f = t->data;
    drain(f);
    if (atomic_load(&f->outstanding) == 0)
        uv_timer_stop(t);
}

void fleet_event_free(fleet_event *ev)
{
    if (!ev)
        return;
    fleet_request_unref(ev->req);
    free(ev->data);
    free(ev->message);
    free(ev->out);
    free(ev->errout);
    free(ev);
}

/* ---- messages to workers ---- */

static void post(fleet_worker *w, fleet_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->wake);
}

int fleet__post_task(fleet *f, unsigned idx, fleet_task *t)
{
    fleet_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return SHOAL_ERR_NOMEM;
    m->type = MSG_TASK;
    m->task = t;
    post(&f->w[idx], m);
    return SHOAL_OK;
}

uint64_t fleet__hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void free_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void close_results(uv_handle_t *h)
{
    fleet *f = h->data;
    uv_close((uv_handle_t *)&f->results, free_on_close);
}

int fleet_new(uv_loop_t *main_loop, const fleet_config *cfg, fleet_event_cb cb, void *ud, fleet **out)
{
    *out = NULL;
    fleet *f = calloc(1, sizeof(*f));
    if (!f)
        return SHOAL_ERR_NOMEM;
    f->main = main_loop;
    f->cfg = *cfg;
    /* Thousands of connections come and go: keep freed memory in the
     * worker threads' arenas instead of giving it back and asking again
     * (each heap shrink and growth is an mprotect call), and grow them by
     * 1 MiB rather than page by page. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
    /* Blocks below this size come from the arenas, so that each worker can
     * reserve its arena in one step (fleet__worker_main). */
    mallopt(M_MMAP_THRESHOLD, FLEET_ARENA_RESERVE + (1 << 20));
    f->cb = cb;
    f->ud = ud;
    /* Test and tuning knobs (docs/ARCHITECTURE.md): the busy share that
     * makes worker 0 hand hosts to the others (0 = always, 100 = never
     * unless fully busy), and per-worker connection counts at the end. */
    const char *e = getenv("SHOAL_FLEET_SPILL_BUSY");
    f->spill_busy_pct = e && *e ? (unsigned)strtoul(e, NULL, 10) : FLEET_SPILL_BUSY_PCT;
    f->debug = getenv("SHOAL_FLEET_DEBUG") != NULL;
    atomic_init(&f->conns, 0);
    unsigned nw = cfg->workers;
    if (!nw) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nw = n > 0 ? (unsigned)n : 1;
    }
    if (nw > 64)
        nw = 64;
    f->nw = nw;
    unsigned maxh = cfg->max_handshakes ? cfg->max_handshakes : 512;
    unsigned maxa = cfg->max_agent_conns ? cfg->max_agent_conns : 128;
    pthread_mutex_init(&f->rmu, NULL);
    uv_async_init(main_loop, &f->results, on_results);
    f->results.data = f;
    atomic_init(&f->outstanding, 0);
    uv_timer_init(main_loop, &f->drain);
    f->drain.data = f;
    f->w = calloc(nw, sizeof(fleet_worker));
    if (!f->w) {
        uv_close((uv_handle_t *)&f->drain, close_results); /* frees f */
        return SHOAL_ERR_NOMEM;
    }
    for (unsigned i = 0; i < nw; i++) {
        fleet_worker *w = &f->w[i];
        w->f = f;
        w->idx = i;
        /* Worker 0 works alone until its core is saturated (spilling in
         * fleet_worker.c), so it gets the whole budget; the others share it
         * on top while helping. */
        w->max_handshaking = i == 0 ? maxh : (maxh + nw - 1) / nw;
        pthread_mutex_init(&w->mu, NULL);
        uv_loop_init(&w->loop);
        if (i == 0 && nw > 1)
            uv_loop_configure(&w->loop, UV_METRICS_IDLE_TIME);
        uv_async_init(&w->loop, &w->wake, fleet__worker_wake);
        w->wake.data = w;
        w->table_size = 4096;
        w->table = calloc(w->table_size, sizeof(pconn *));
        unsigned share = (maxa + nw - 1) / nw;
        shoal_uv_limiter_new(share ? share : 1, &w->agent_limiter);
        uv_thread_create(&w->thread, fleet__worker_main, w);
    }
    *out = f;
    return SHOAL_OK;
}

int fleet_submit(fleet *f, fleet_request *req, const fleet_host *h, size_t index)
{
    fleet_task *t = calloc(1, sizeof(*t));
    fleet_msg *m = calloc(1, sizeof(*m));
    const char *user = h->user && *h->user ? h->user : f->cfg.default_user;
    if (t) {
        t->user = strdup(user ? user : "");
        t->host = strdup(h->host);
        t->port = h->port ? h->port : (f->cfg.default_port ? f->cfg.default_port : 22);
        t->key = h->key;
        t->result = calloc(1, sizeof(*t->result));
    }
    if (!t || !m || !t->user || !t->host || !t->result) {
        if (t) {
            free(t->user);
            free(t->host);
            free(t->result);
        }
        free(t);
        free(m);
        return SHOAL_ERR_NOMEM;
    }
    t->req = fleet_request_ref(req);
    t->index = index;
    m->type = MSG_TASK;
    m->task = t;
    atomic_fetch_add(&f->outstanding, 1);
    if (f->cfg.event_delay_ms && !uv_is_active((uv_handle_t *)&f->drain))
        uv_timer_start(&f->drain, on_drain_timer, f->cfg.event_delay_ms, f->cfg.event_delay_ms);
    /* Every task goes to worker 0, which keeps it or hands its host to
     * another worker (for good: later tasks for that host follow). */
    post(&f->w[0], m);
    return SHOAL_OK;
}

void fleet_stop(fleet *f, fleet_request *req, int reason)
{
    int expected = FLEET_RUNNING;
    atomic_compare_exchange_strong(&req->stop, &expected, reason);
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_msg *m = calloc(1, sizeof(*m));
        if (!m)
            continue; /* the stop flag is still seen when tasks move on */
        m->type = MSG_STOP;
        m->req = fleet_request_ref(req);
        m->reason = reason;
        post(&f->w[i], m);
    }
}

void fleet_drop_idle(fleet *f)
{
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_msg *m = calloc(1, sizeof(*m));
        if (!m)
            continue;
        m->type = MSG_DROP_IDLE;
        post(&f->w[i], m);
    }
}

size_t fleet_connections(const fleet *f)
{
    return atomic_load(&((fleet *)f)->conns);
}

void fleet_free(fleet *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_msg *m = calloc(1, sizeof(*m));
        if (m) {
            m->type = MSG_QUIT;
            post(&f->w[i], m);
        }
    }
    for (unsigned i = 0; i < f->nw; i++)
        uv_thread_join(&f->w[i].thread);
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_worker *w = &f->w[i];
        /* Tasks handed over by worker 0 after this worker quit. */
        for (fleet_msg *m = w->head, *next; m; m = next) {
            next = m->next;
            if (m->type == MSG_TASK)
                fleet__task_free(m->task);
            else if (m->req)
                fleet_request_unref(m->req);
            free(m);
        }
        w->head = w->tail = NULL;
        uv_loop_close(&w->loop);
        pthread_mutex_destroy(&w->mu);
        free(w->table);
        shoal_uv_limiter_free(w->agent_limiter);
    }
    /* Events posted during shutdown are dropped. */
    fleet_event *ev = f->rhead;
    while (ev) {
        fleet_event *next = ev->next;
        fleet_event_free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&f->rmu);
    free(f->w);
    /* The handles live inside f: free it after the last one has closed. */
    f->results.data = f;
    uv_close((uv_handle_t *)&f->drain, close_results);
}
