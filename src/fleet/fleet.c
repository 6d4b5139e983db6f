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
#include "abi.h"

static const char *const CLASS_NAMES[SHOAL_FLEET_CLASS_COUNT] = {
    "ok",      "exit status", "signal",   "no exit status", "dns",    "refused",   "connect", "timeout",
    "host key", "auth",       "closed",   "protocol",       "channel", "upload",   "cancelled", "local",
};

const char *shoal_fleet_class_name(shoal_fleet_class c)
{
    return (unsigned)c < SHOAL_FLEET_CLASS_COUNT ? CLASS_NAMES[c] : "?";
}

/* ---- upload sources ---- */

struct shoal_fleet_source {
    char *name;                 /* the file's base name (uploads into a directory use it) */
    int fd;                     /* -1 when the bytes are in memory (heap) */
    int heap;
    uint8_t *map;
    uint64_t size;
    uint32_t mode;
    char sha[65];
    pthread_mutex_t mu;
};

int shoal_fleet_source_open(const char *path, shoal_fleet_source **out, char *err, size_t errsz)
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
    shoal_fleet_source *s = calloc(1, sizeof(*s));
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

const uint8_t *shoal_fleet_source_data(const shoal_fleet_source *s)
{
    return s->map;
}

uint64_t shoal_fleet_source_size(const shoal_fleet_source *s)
{
    return s->size;
}

uint32_t shoal_fleet_source_mode(const shoal_fleet_source *s)
{
    return s->mode;
}

const char *shoal_fleet_source_name(const shoal_fleet_source *s)
{
    return s->name;
}

const char *shoal_fleet_source_sha256(shoal_fleet_source *s)
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

int shoal_fleet_source_open_input(const char *path, size_t cap, shoal_fleet_source **out, char *err, size_t errsz)
{
    *out = NULL;
    const char *name = path ? path : "stdin";
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
    if (fd < 0) {
        snprintf(err, errsz, "cannot open %s: %s", name, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errsz, "cannot read %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISREG(st.st_mode) && path) {
        close(fd);
        return shoal_fleet_source_open(path, out, err, errsz);
    }
    shoal_fleet_source *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0 && lseek(fd, 0, SEEK_CUR) == 0) {
        /* stdin redirected from a file: mapped like --stdin FILE. */
        s->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (s->map != MAP_FAILED) {
            s->fd = fd;
            s->size = (uint64_t)st.st_size;
            pthread_mutex_init(&s->mu, NULL);
            *out = s;
            return 0;
        }
        s->map = NULL;
    }
    /* A pipe or a terminal: read once, kept for every host. */
    size_t len = 0, alloc = 0;
    uint8_t *buf = NULL;
    for (;;) {
        if (len == alloc) {
            size_t na = alloc ? alloc * 2 : 65536;
            if (na > cap + 1)
                na = cap + 1;
            uint8_t *nb = na > alloc ? realloc(buf, na) : NULL;
            if (!nb) {
                if (len > cap)
                    snprintf(err, errsz, "%s: more than %zu bytes; give a file (--stdin FILE), which is mapped instead",
                             name, cap);
                else
                    snprintf(err, errsz, "%s: out of memory", name);
                free(buf);
                free(s);
                close(fd);
                return -1;
            }
            buf = nb;
            alloc = na;
        }
        ssize_t n = read(fd, buf + len, alloc - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errsz, "cannot read %s: %s", name, strerror(errno));
            free(buf);
            free(s);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > cap) {
            snprintf(err, errsz, "%s: more than %zu bytes; give a file (--stdin FILE), which is mapped instead", name,
                     cap);
            free(buf);
            free(s);
            close(fd);
            return -1;
        }
    }
    close(fd);
    s->fd = -1;
    s->heap = 1;
    s->map = buf;
    s->size = len;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

void shoal_fleet_source_free(shoal_fleet_source *s)
{
    if (!s)
        return;
    if (s->heap)
        free(s->map);
    else if (s->map)
        munmap(s->map, (size_t)s->size);
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}

unsigned long shoal_fleet_raise_fd_limit(void)
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

unsigned shoal_fleet_worker_count(unsigned requested)
{
    unsigned nw = requested;
    if (!nw) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nw = n > 0 ? (unsigned)n : 1;
    }
    return nw > 64 ? 64 : nw;
}

/* Descriptors libuv takes (libuv 1.44, measured): 2 for its process-wide
 * signal pipe, and per event loop an epoll descriptor, its signal pipe (2)
 * and an eventfd; a connection needs its socket at least (and one more
 * for the ssh-agent while it logs in). libuv aborts the process when the
 * first of these cannot be had, so they are counted before any is asked
 * for. */
#define FDS_GLOBAL 2
#define FDS_PER_LOOP 4
#define FDS_PER_CONN 1

int shoal_fleet_check_fds(unsigned workers, char *err, size_t errsz)
{
    unsigned nw = shoal_fleet_worker_count(workers);
    unsigned need = FDS_GLOBAL + FDS_PER_LOOP * (nw + 1) + FDS_PER_CONN;
    int fds[64 * FDS_PER_LOOP + 16];
    unsigned have = 0;
    int first = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (first >= 0) {
        fds[have++] = first;
        while (have < need && have < sizeof(fds) / sizeof(fds[0])) {
            int fd = fcntl(first, F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                break;
            fds[have++] = fd;
        }
    }
    int saved = errno;
    for (unsigned i = 0; i < have; i++)
        close(fds[i]);
    if (have >= need)
        return 0;
    struct rlimit rl;
    unsigned long long lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
    if (first < 0 && saved != EMFILE && saved != ENFILE)
        snprintf(err, errsz, "cannot open /dev/null: %s", strerror(saved));
    else if (nw > 1)
        snprintf(err, errsz,
                 "too few file descriptors: %u free of %llu (ulimit -n), %u needed for %u worker threads and one "
                 "connection (%u with --threads 1)",
                 have, lim, need, nw, FDS_GLOBAL + FDS_PER_LOOP * 2 + FDS_PER_CONN);
    else
        snprintf(err, errsz,
                 "too few file descriptors: %u free of %llu (ulimit -n), %u needed for a worker thread and one "
                 "connection",
                 have, lim, need);
    return -1;
}

/* ---- events back to the caller's loop ---- */

void fleet__post_event(shoal_fleet *f, shoal_fleet_event *ev)
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
    int last = ev->type == SHOAL_FLEET_EV_RESULT && atomic_fetch_sub(&f->outstanding, 1) == 1;
    if (!f->cfg.event_delay_ms || last)
        uv_async_send(&f->results);
}

static void drain(shoal_fleet *f)
{
    pthread_mutex_lock(&f->rmu);
    shoal_fleet_event *ev = f->rhead;
    f->rhead = f->rtail = NULL;
    pthread_mutex_unlock(&f->rmu);
    while (ev) {
        shoal_fleet_event *next = ev->next;
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
    shoal_fleet *f = t->data;
    drain(f);
    if (atomic_load(&f->outstanding) == 0)
        uv_timer_stop(t);
}

void shoal_fleet_event_free(shoal_fleet_event *ev)
{
    if (!ev)
        return;
    shoal_fleet_request_unref(ev->req);
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

int fleet__post_task(shoal_fleet *f, unsigned idx, fleet_task *t)
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
    shoal_fleet *f = h->data;
    uv_close((uv_handle_t *)&f->results, free_on_close);
}

/* "uv_loop_init: too many open files (the limit is 16 descriptors; ulimit -n)". */
static void init_error(char *err, size_t errsz, const char *what, int uverr)
{
    if (!err || !errsz)
        return;
    struct rlimit rl;
    if ((uverr == UV_EMFILE || uverr == UV_ENFILE) && getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(err, errsz, "%s: %s (the limit is %llu open files; see ulimit -n)", what, uv_strerror(uverr),
                 (unsigned long long)rl.rlim_cur);
    else
        snprintf(err, errsz, "%s: %s", what, uverr ? uv_strerror(uverr) : "out of memory");
}

/* Undoes what worker_init did, for a worker whose thread never ran. */
static void worker_uninit(fleet_worker *w)
{
    if (w->inited & 4) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (w->inited & 2)
        uv_loop_close(&w->loop);
    if (w->inited & 1)
        pthread_mutex_destroy(&w->mu);
    free(w->table);
    w->table = NULL;
    shoal_uv_limiter_free(w->agent_limiter);
    w->agent_limiter = NULL;
    w->inited = 0;
}

static int worker_init(shoal_fleet *f, unsigned i, unsigned maxh, unsigned maxa, char *err, size_t errsz)
{
    fleet_worker *w = &f->w[i];
    unsigned nw = f->nw;
    char what[64];
    w->f = f;
    w->idx = i;
    /* Worker 0 works alone until its core is saturated (spilling in
     * fleet_worker.c), so it gets the whole budget; the others share it
     * on top while helping. */
    w->max_handshaking = i == 0 ? maxh : (maxh + nw - 1) / nw;
    pthread_mutex_init(&w->mu, NULL);
    w->inited |= 1;
    int rc = uv_loop_init(&w->loop);
    if (rc) {
        snprintf(what, sizeof(what), "worker %u: uv_loop_init", i + 1);
        init_error(err, errsz, what, rc);
        return -1;
    }
    w->inited |= 2;
    if (i == 0 && nw > 1)
        uv_loop_configure(&w->loop, UV_METRICS_IDLE_TIME);
    rc = uv_async_init(&w->loop, &w->wake, fleet__worker_wake);
    if (rc) {
        snprintf(what, sizeof(what), "worker %u: uv_async_init", i + 1);
        init_error(err, errsz, what, rc);
        return -1;
    }
    w->inited |= 4;
    w->wake.data = w;
    w->table_size = 4096;
    w->table = calloc(w->table_size, sizeof(pconn *));
    unsigned share = (maxa + nw - 1) / nw;
    if (!w->table || shoal_uv_limiter_new(share ? share : 1, &w->agent_limiter) != SHOAL_OK) {
        init_error(err, errsz, "worker set-up", 0);
        return -1;
    }
    return 0;
}

SHOAL__INIT_FN(shoal_fleet_config)

int shoal_fleet_new(uv_loop_t *main_loop, const shoal_fleet_config *cfg, shoal_fleet_event_cb cb, void *ud,
                    shoal_fleet **out, char *err, size_t errsz)
{
    *out = NULL;
    if (err && errsz)
        err[0] = 0;
    if (!main_loop || !cfg || !cfg->size || !cb) {
        if (err && errsz)
            snprintf(err, errsz, "%s", !cfg || !cfg->size ? "fleet configuration not initialised (shoal_fleet_config_init)"
                                                          : "no event loop or event callback");
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_fleet *f = calloc(1, sizeof(*f));
    if (!f) {
        init_error(err, errsz, "fleet", 0);
        return SHOAL_ERR_NOMEM;
    }
    f->main = main_loop;
    /* A caller built against a shorter (older) struct: the fields it does
     * not know stay zero, their defaults. */
    SHOAL_COPY_IN(&f->cfg, cfg);
    cfg = &f->cfg;
    if (SHOAL_COPY_IN(&f->conn, f->cfg.conn) || SHOAL_COPY_IN_OPT(&f->conn_cb, f->cfg.conn_cb) ||
        SHOAL_COPY_IN(&f->ssh, f->conn.ssh)) {
        free(f);
        if (err && errsz)
            snprintf(err, errsz, "fleet connection options missing or not initialised (shoal_uv_options_init)");
        return SHOAL_ERR_INVALID_ARG;
    }
    f->conn.ssh = &f->ssh;
    f->cfg.conn = &f->conn;
    f->cfg.conn_cb = &f->conn_cb;
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
    unsigned nw = shoal_fleet_worker_count(cfg->workers);
    f->nw = nw;
    unsigned maxh = cfg->max_handshakes ? cfg->max_handshakes : 512;
    unsigned maxa = cfg->max_agent_conns ? cfg->max_agent_conns : 128;
    pthread_mutex_init(&f->rmu, NULL);
    atomic_init(&f->outstanding, 0);
    /* Every libuv set-up can fail for want of file descriptors (an event
     * loop is an epoll and an eventfd descriptor): each is checked, and
     * what was set up is undone. */
    int rc = uv_async_init(main_loop, &f->results, on_results);
    if (rc) {
        init_error(err, errsz, "uv_async_init", rc);
        pthread_mutex_destroy(&f->rmu);
        free(f);
        return SHOAL_ERR_IO;
    }
    f->results.data = f;
    uv_timer_init(main_loop, &f->drain);
    f->drain.data = f;
    f->w = calloc(nw, sizeof(fleet_worker));
    if (!f->w) {
        init_error(err, errsz, "fleet", 0);
        pthread_mutex_destroy(&f->rmu);
        uv_close((uv_handle_t *)&f->drain, close_results); /* frees f */
        return SHOAL_ERR_NOMEM;
    }
    unsigned ready = 0;
    for (; ready < nw; ready++)
        if (worker_init(f, ready, maxh, maxa, err, errsz) != 0)
            break;
    unsigned started = 0;
    if (ready == nw) {
        for (; started < nw; started++) {
            rc = uv_thread_create(&f->w[started].thread, fleet__worker_main, &f->w[started]);
            if (rc) {
                char what[64];
                snprintf(what, sizeof(what), "worker %u: uv_thread_create", started + 1);
                init_error(err, errsz, what, rc);
                break;
            }
        }
    }
    if (started < nw) {
        /* Stop the threads that run, then undo every worker's set-up. */
        for (unsigned i = 0; i < started; i++) {
            fleet_msg *m = calloc(1, sizeof(*m));
            if (m) {
                m->type = MSG_QUIT;
                post(&f->w[i], m);
            }
        }
        for (unsigned i = 0; i < started; i++)
            uv_thread_join(&f->w[i].thread);
        for (unsigned i = 0; i < started; i++) {
            fleet_worker *w = &f->w[i];
            uv_loop_close(&w->loop);
            pthread_mutex_destroy(&w->mu);
            free(w->table);
            shoal_uv_limiter_free(w->agent_limiter);
        }
        for (unsigned i = started; i <= ready && i < nw; i++)
            worker_uninit(&f->w[i]);
        pthread_mutex_destroy(&f->rmu);
        free(f->w);
        uv_close((uv_handle_t *)&f->drain, close_results); /* frees f */
        return SHOAL_ERR_IO;
    }
    *out = f;
    return SHOAL_OK;
}

int shoal_fleet_submit(shoal_fleet *f, shoal_fleet_request *req, const shoal_fleet_host *h, size_t index)
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
    t->req = shoal_fleet_request_ref(req);
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

void shoal_fleet_stop(shoal_fleet *f, shoal_fleet_request *req, int reason)
{
    int expected = SHOAL_FLEET_RUNNING;
    atomic_compare_exchange_strong(&req->stop, &expected, reason);
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_msg *m = calloc(1, sizeof(*m));
        if (!m)
            continue; /* the stop flag is still seen when tasks move on */
        m->type = MSG_STOP;
        m->req = shoal_fleet_request_ref(req);
        m->reason = reason;
        post(&f->w[i], m);
    }
}

void shoal_fleet_drop_idle(shoal_fleet *f)
{
    for (unsigned i = 0; i < f->nw; i++) {
        fleet_msg *m = calloc(1, sizeof(*m));
        if (!m)
            continue;
        m->type = MSG_DROP_IDLE;
        post(&f->w[i], m);
    }
}

size_t shoal_fleet_connections(const shoal_fleet *f)
{
    return atomic_load(&((shoal_fleet *)f)->conns);
}

void shoal_fleet_free(shoal_fleet *f)
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
                shoal_fleet_request_unref(m->req);
            free(m);
        }
        w->head = w->tail = NULL;
        uv_loop_close(&w->loop);
        pthread_mutex_destroy(&w->mu);
        free(w->table);
        shoal_uv_limiter_free(w->agent_limiter);
    }
    /* Events posted during shutdown are dropped. */
    shoal_fleet_event *ev = f->rhead;
    while (ev) {
        shoal_fleet_event *next = ev->next;
        shoal_fleet_event_free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&f->rmu);
    free(f->w);
    /* The handles live inside f: free it after the last one has closed. */
    f->results.data = f;
    uv_close((uv_handle_t *)&f->drain, close_results);
}
