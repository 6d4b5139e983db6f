/* `shoal agent`: the GoSSHa JSON-lines protocol on stdin/stdout, done
 * right, plus optional extensions (Id, concurrent requests, streaming,
 * exit status fields, base64 output, cancel, per-host user/port/key,
 * output caps, SFTP/SCP uploads with temp-name + rename).
 *
 * stdin is read by its own thread (agent_stdin.c: any kind of file,
 * lines of any length) and lines reach the loop through an async handle;
 * stdout lines are written whole and flushed one at a time by the loop
 * thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "agent_args.h"
#include "agent_request.h"
#include "agent_stdin.h"
#include "commands.h"
#include "shoal/fleet.h"
#include "fleetopts.h"
#include "replyjson.h"

/* ---- JSON helpers ---- */

#define field agent_field

static const char *field_str(json_t *o, const char *name)
{
    json_t *v = field(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static FILE *out;

static void user_error(int critical, json_t *id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void user_error(int critical, json_t *id, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "Type", json_string("UserError"));
    json_object_set_new(o, "IsCritical", json_boolean(critical));
    json_object_set_new(o, "ErrorMsg", replyjson_text((const uint8_t *)msg, strlen(msg)));
    if (id)
        json_object_set(o, "Id", id);
    replyjson_emit(out, o);
}

/* ---- state ---- */

typedef struct keycache {
    char *path;
    shoal_key *key;
    struct keycache *next;
} keycache;

typedef struct agent_req agent_req;

typedef struct agent {
    uv_loop_t *loop;
    agent_stdin rd;
    uv_async_t lines;
    shoal_fleet *f;
    fleetopts *opts;          /* the command line's, filled by fleetopts_prepare */
    unsigned max_per_request; /* -m */
    int disconnect;           /* -d */
    pthread_t reader_thread;
    int reader_running;       /* started and not joined */
    agent_req *reqs;
    keycache *keys;
    int eof;
    int in_init;
    agent_line *held, *held_tail;   /* request lines read while asking passphrases */
    /* Requests without an Id are served one at a time, in order, as GoSSHa
     * does: the one running, and the lines (of any kind, but with no Id)
     * that came after it. */
    agent_req *serial;
    agent_line *waiting, *waiting_tail;
    int draining;
    int exited;
} agent;

struct agent_req {
    agent *a;
    shoal_fleet_request *fr;
    json_t *id;
    char **names;             /* Hostname as requested */
    shoal_fleet_host *hosts;
    char **users, **hostnames;
    size_t n, next, inflight, done;
    uint64_t t0;
    uv_timer_t *timer;
    json_t *timed_out;
    int base64;
    int cancelled;
    agent_req *link;
};


/* ---- passphrases: PasswordRequest / {"Password":...} ---- */

static int ask_passphrase(const char *path, char *buf, size_t sz, void *ud)
{
    agent *a = ud;
    json_t *o = json_object();
    json_object_set_new(o, "Type", json_string("PasswordRequest"));
    json_object_set_new(o, "PasswordFor", json_string(path));
    replyjson_emit(out, o);
    for (;;) {
        agent_line *l = agent_stdin_wait(&a->rd);
        if (!l)
            return -1;
        json_error_t jerr;
        json_t *j = json_loadb(l->text, l->len, 0, &jerr);
        /* Only a password answer answers: {"Password":"..."} or {}.
         * Anything else (an early request) waits its turn. */
        if (j && json_is_object(j) && (json_object_size(j) == 0 || field(j, "Password")) && !field(j, "Action")) {
            const char *p = field_str(j, "Password");
            int rc = -1;
            if (p && *p && strlen(p) < sz) {
                snprintf(buf, sz, "%s", p);
                rc = 0;
            }
            json_decref(j);
            OPENSSL_cleanse(l->text, l->len);
            agent_line_free(l);
            return rc;
        }
        json_decref(j);
        l->next = NULL;
        if (a->held_tail)
            a->held_tail->next = l;
        else
            a->held = l;
        a->held_tail = l;
    }
}

static void warn_key(const char *msg, void *ud)
{
    (void)ud;
    user_error(0, NULL, "%s", msg);
}

static shoal_key *key_for(agent *a, const char *path, json_t *id)
{
    for (keycache *k = a->keys; k; k = k->next)
        if (!strcmp(k->path, path))
            return k->key;
    shoal_key *key = NULL;
    char err[600];
    if (shoal_ssh_load_key(path, ask_passphrase, a, &key, err, sizeof(err)) != 0) {
        user_error(0, id, "%s", err);
        return NULL;
    }
    keycache *k = calloc(1, sizeof(*k));
    if (!k) {
        shoal_key_free(key);
        return NULL;
    }
    k->path = strdup(path);
    k->key = key;
    k->next = a->keys;
    a->keys = k;
    return key;
}

/* ---- requests ---- */

static void req_free(agent_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->names[i]);
        free(r->users[i]);
        free(r->hostnames[i]);
    }
    free(r->names);
    free(r->users);
    free(r->hostnames);
    free(r->hosts);
    json_decref(r->id);
    json_decref(r->timed_out);
    shoal_fleet_request_set_userdata(r->fr, NULL);
    shoal_fleet_request_unref(r->fr);
    free(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void maybe_exit(agent *a);
static void drain_waiting(agent *a);

static void req_final(agent_req *r)
{
    agent *a = r->a;
    json_t *o = json_object();
    json_object_set_new(o, "Type", json_string("FinalReply"));
    json_object_set_new(o, "TotalTime", json_real((double)(uv_hrtime() - r->t0) / 1e9));
    json_object_set(o, "TimedOutHosts", r->timed_out);
    if (r->id)
        json_object_set(o, "Id", r->id);
    if (r->cancelled)
        json_object_set_new(o, "Cancelled", json_true());
    replyjson_emit(out, o);
    if (r->timer) {
        uv_close((uv_handle_t *)r->timer, on_timer_closed);
        r->timer = NULL;
    }
    for (agent_req **pp = &a->reqs; *pp; pp = &(*pp)->link) {
        if (*pp == r) {
            *pp = r->link;
            break;
        }
    }
    int was_serial = a->serial == r;
    if (was_serial)
        a->serial = NULL;
    req_free(r);
    if (a->disconnect && a->f)
        shoal_fleet_drop_idle(a->f);
    if (was_serial)
        drain_waiting(a); /* the next line without an Id, in order */
    maybe_exit(a);
}

/* Starts hosts while the request's in-progress limit (-m) allows. */
static void req_pump(agent_req *r)
{
    unsigned max = r->a->max_per_request;
    while (r->next < r->n && (!max || r->inflight < max)) {
        size_t i = r->next++;
        if (shoal_fleet_submit(r->a->f, r->fr, &r->hosts[i], i) == 0) {
            r->inflight++;
        } else {
            shoal_fleet_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.cls = SHOAL_FLEET_FAIL_LOCAL;
            ev.message = (char *)"out of memory";
            replyjson_emit(out, replyjson_reply(&ev, r->names[i], r->id, r->base64));
            r->done++;
        }
    }
    if (r->done == r->n)
        req_final(r);
}

/* Deadline of the whole request (GoSSHa's Timeout): what is not done is
 * listed in TimedOutHosts and its work is cancelled. */
static void on_req_timeout(uv_timer_t *t)
{
    agent_req *r = t->data;
    /* Hosts not started yet are timed out without being dialled. */
    while (r->next < r->n) {
        json_object_set_new(r->timed_out, r->names[r->next], json_true());
        r->next++;
        r->done++;
    }
    shoal_fleet_stop(r->a->f, r->fr, SHOAL_FLEET_STOP_TIMEOUT);
    if (r->done == r->n)
        req_final(r);
}

static void on_event(shoal_fleet *f, shoal_fleet_event *ev, void *ud)
{
    agent *a = ud;
    (void)f;
    agent_req *r = shoal_fleet_request_userdata(ev->req);
    if (!r) {
        shoal_fleet_event_free(ev);
        return;
    }
    switch (ev->type) {
    case SHOAL_FLEET_EV_CONNECTED: {
        json_t *o = json_object();
        json_object_set_new(o, "Type", json_string("ConnectionProgress"));
        json_object_set_new(o, "ConnectedHost", json_string(r->hostnames[ev->index]));
        if (r->id)
            json_object_set(o, "Id", r->id);
        replyjson_emit(out, o);
        break;
    }
    case SHOAL_FLEET_EV_OUTPUT: {
        json_t *o = json_object();
        json_object_set_new(o, "Type", json_string("Output"));
        json_object_set_new(o, "Hostname", json_string(r->names[ev->index]));
        json_object_set_new(o, "Stream", json_string(ev->stream == SHOAL_STDERR ? "stderr" : "stdout"));
        json_object_set_new(o, "Data", r->base64 ? replyjson_base64(ev->data, ev->len) : replyjson_text(ev->data, ev->len));
        if (r->id)
            json_object_set(o, "Id", r->id);
        replyjson_emit(out, o);
        break;
    }
    case SHOAL_FLEET_EV_RESULT:
        r->inflight--;
        r->done++;
        if (ev->stopped == SHOAL_FLEET_STOP_TIMEOUT)
            json_object_set_new(r->timed_out, r->names[ev->index], json_true());
        else
            replyjson_emit(out, replyjson_reply(ev, r->names[ev->index], r->id, r->base64));
        shoal_fleet_event_free(ev);
        if (shoal_fleet_request_stopped(r->fr) == SHOAL_FLEET_RUNNING)
            req_pump(r);
        else if (r->done == r->n)
            req_final(r);
        (void)a;
        return;
    }
    shoal_fleet_event_free(ev);
}

static void handle_cancel(agent *a, json_t *id)
{
    int found = 0;
    for (agent_req *r = a->reqs; r; r = r->link) {
        if (!id || !r->id || !json_equal(id, r->id))
            continue;
        found = 1;
        r->cancelled = 1;
        while (r->next < r->n) {
            shoal_fleet_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.cls = SHOAL_FLEET_FAIL_CANCELLED;
            ev.phase = "queued";
            ev.message = (char *)"cancelled";
            replyjson_emit(out, replyjson_reply(&ev, r->names[r->next], r->id, r->base64));
            r->next++;
            r->done++;
        }
        shoal_fleet_stop(a->f, r->fr, SHOAL_FLEET_STOP_CANCEL);
        if (r->done == r->n) {
            req_final(r);
            break;
        }
    }
    if (!found)
        user_error(0, id, "cancel: no request in progress with this Id");
}

static void handle_line(agent *a, const char *text, size_t len)
{
    agent_request q;
    char err[2048];
    if (agent_request_parse(text, len, &q, err, sizeof(err)) != 0) {
        user_error(1, q.id, "%s", err);
        agent_request_free(&q);
        return;
    }
    json_t *id = q.id;
    if (q.kind == AGENT_LINE_BLANK || q.kind == AGENT_LINE_PASSWORD) {
        agent_request_free(&q);
        return;
    }
    if (q.kind == AGENT_LINE_CANCEL) {
        handle_cancel(a, id);
        agent_request_free(&q);
        return;
    }
    shoal_fleet_request *fr = shoal_fleet_request_new(q.kind == AGENT_LINE_EXEC ? SHOAL_FLEET_EXEC : SHOAL_FLEET_UPLOAD);
    agent_req *r = calloc(1, sizeof(*r));
    if (!fr || !r) {
        free(r);
        shoal_fleet_request_unref(fr);
        user_error(1, id, "out of memory");
        agent_request_free(&q);
        return;
    }
    r->a = a;
    r->fr = fr;
    shoal_fleet_request_set_userdata(fr, r);
    r->id = id ? json_incref(id) : NULL;
    r->timed_out = json_object();
    r->t0 = uv_hrtime();
    r->base64 = q.base64;
    shoal_fleet_request_set_stream(fr, q.stream);
    shoal_fleet_request_set_keep_conn(fr, !a->disconnect);
    shoal_fleet_request_set_output_cap(fr, q.out_cap && q.out_cap <= SIZE_MAX ? (size_t)q.out_cap
                                                                              : AGENT_DEFAULT_OUTPUT_CAP);
    int bad = 0, set = SHOAL_OK;
    if (q.kind == AGENT_LINE_EXEC) {
        set = shoal_fleet_request_set_command(fr, q.cmd);
    } else {
        char ferr[600];
        shoal_fleet_source *src = NULL;
        if (shoal_fleet_source_open(q.source, &src, ferr, sizeof(ferr)) != 0) {
            user_error(1, id, "Cannot read source file: %s", ferr);
            bad = 1;
        } else {
            set = shoal_fleet_request_set_source(fr, src);
        }
        if (!set)
            set = shoal_fleet_request_set_target(fr, q.target);
        if (!set && q.mode_given)
            set = shoal_fleet_request_set_mode(fr, q.mode);
        if (!set)
            set = shoal_fleet_request_set_inplace(fr, q.inplace);
        if (!set)
            set = shoal_fleet_request_set_verify(fr, q.verify);
        if (!set)
            set = shoal_fleet_request_set_xfer(fr, q.xfer);
        if (!set)
            set = shoal_fleet_request_set_host_rate(fr, q.host_rate);
        if (!set)
            set = shoal_fleet_request_set_total_rate(fr, q.rate);
    }
    if (set && !bad) {
        user_error(1, id, "%s", shoal_strerror(set));
        bad = 1;
    }
    shoal_key *req_key = NULL;
    if (!bad && q.key_path)
        req_key = key_for(a, q.key_path, id);
    size_t n = q.n_hosts;
    if (!bad) {
        r->n = n;
        r->names = calloc(n + 1, sizeof(char *));
        r->users = calloc(n + 1, sizeof(char *));
        r->hostnames = calloc(n + 1, sizeof(char *));
        r->hosts = calloc(n + 1, sizeof(shoal_fleet_host));
        if (!r->names || !r->users || !r->hostnames || !r->hosts)
            bad = 1;
        for (size_t k = 0; !bad && k < n; k++) {
            agent_host_req *h = &q.hosts[k];
            /* Taken over from the parsed request. */
            r->names[k] = h->spec;
            r->users[k] = h->user;
            r->hostnames[k] = h->host;
            h->spec = h->user = h->host = NULL;
            r->hosts[k].spec = r->names[k];
            r->hosts[k].user = r->users[k];
            r->hosts[k].host = r->hostnames[k];
            r->hosts[k].port = h->port;
            r->hosts[k].key = h->key_path ? key_for(a, h->key_path, id) : req_key;
        }
    }
    uint64_t timeout = q.timeout_ms;
    agent_request_free(&q);
    if (bad) {
        req_free(r);
        return;
    }
    r->link = a->reqs;
    a->reqs = r;
    if (!r->id)
        a->serial = r; /* later lines without an Id wait for its FinalReply */
    r->timer = malloc(sizeof(uv_timer_t));
    if (r->timer) {
        uv_timer_init(a->loop, r->timer);
        r->timer->data = r;
        uv_timer_start(r->timer, on_req_timeout, timeout, 0);
    }
    req_pump(r);
}

/* Does this line carry an Id? (A line that is not a JSON object has none.) */
static int line_has_id(const agent_line *l)
{
    json_error_t jerr;
    json_t *j = json_loadb(l->text, l->len, 0, &jerr);
    int has = j && json_is_object(j) && field(j, "Id") != NULL;
    json_decref(j);
    return has;
}

/* Takes a line from stdin (or held during start-up). A line with an Id is
 * handled at once (requests with Ids run concurrently; a cancel must not
 * wait); one without waits while an earlier request without Id runs. */
static void take_line(agent *a, agent_line *l)
{
    if ((a->serial || a->waiting) && !line_has_id(l)) {
        l->next = NULL;
        if (a->waiting_tail)
            a->waiting_tail->next = l;
        else
            a->waiting = l;
        a->waiting_tail = l;
        return;
    }
    handle_line(a, l->text, l->len);
    agent_line_free(l);
}

static void drain_waiting(agent *a)
{
    if (a->draining)
        return; /* the loop below is on the stack: it goes on */
    a->draining = 1;
    while (!a->serial && a->waiting) {
        agent_line *l = a->waiting;
        a->waiting = l->next;
        if (!a->waiting)
            a->waiting_tail = NULL;
        handle_line(a, l->text, l->len);
        agent_line_free(l);
    }
    a->draining = 0;
}

static void maybe_exit(agent *a)
{
    if (a->eof && !a->reqs && !a->in_init && !a->waiting && !a->draining && !a->exited) {
        a->exited = 1;
        uv_close((uv_handle_t *)&a->lines, NULL);
        if (a->f) {
            shoal_fleet_free(a->f);
            a->f = NULL;
        }
    }
}

static void on_lines(uv_async_t *h)
{
    agent *a = h->data;
    for (;;) {
        int eof;
        agent_line *l = agent_stdin_take(&a->rd, &eof);
        if (!l) {
            if (eof && !a->eof) {
                a->eof = 1;
                maybe_exit(a);
            }
            return;
        }
        take_line(a, l);
    }
}

/* GoSSHa says so (non-critical) when SSH_AUTH_SOCK names no agent, and
 * goes on with the key files: a dead socket left in the environment would
 * otherwise fail every login without a word. */
static void check_agent_socket(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        user_error(0, NULL, "Cannot open connection to SSH agent: %s: path too long", path);
        return;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        user_error(0, NULL, "Cannot open connection to SSH agent: %s: %s", path, strerror(errno));
        return;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        user_error(0, NULL, "Cannot open connection to SSH agent: dial unix %s: connect: %s", path, strerror(errno));
    close(fd);
}

/* ---- parse (agent_args.c), prepare, run, cleanup ---- */

/* The agent's event loop (a->loop once it is open). */
static uv_loop_t agent_loop;

/* A start-up failure, said on both: the front-end reads stdout, a person
 * stderr. */
static void startup_error(const char *msg)
{
    user_error(1, NULL, "%s", msg);
    fprintf(stderr, "shoal agent: %s\n", msg);
}

/* The loop first: it needs descriptors (epoll, eventfd), and without them
 * nothing else can work; say so instead of crashing. Then the stdin
 * reader. AGENT_GO_ON or 1 (said). */
static int open_loop_and_reader(agent *a, unsigned workers)
{
    char err[1024];
    signal(SIGPIPE, SIG_IGN);
    shoal_fleet_raise_fd_limit();
    if (shoal_fleet_check_fds(workers, err, sizeof(err)) != 0) {
        startup_error(err);
        return 1;
    }
    int urc = uv_loop_init(&agent_loop);
    if (urc != 0) {
        snprintf(err, sizeof(err), "cannot create the event loop: %s%s", uv_strerror(urc),
                 urc == UV_EMFILE ? " (raise the open files limit, ulimit -n)" : "");
        startup_error(err);
        return 1;
    }
    a->loop = &agent_loop;
    int prc = agent_stdin_start(&a->rd, &a->reader_thread);
    if (prc != 0) {
        fprintf(stderr, "shoal agent: cannot start the stdin reader: %s\n", strerror(prc));
        return 1;
    }
    a->reader_running = 1;
    return AGENT_GO_ON;
}

/* Keys (with PasswordRequest lines), known_hosts, the fleet and the
 * handle that brings stdin's lines to the loop. AGENT_GO_ON or 1 (said). */
static int start_fleet(agent *a, const agent_args *args)
{
    char err[1024];
    if (fleetopts_prepare(a->opts, SHOAL_HOSTKEY_ACCEPT_NEW, ask_passphrase, a, warn_key, a, err, sizeof(err)) != 0) {
        user_error(1, NULL, "%s", err);
        return 1;
    }
    if (a->opts->agent)
        check_agent_socket(a->opts->agent);
    a->opts->cfg.workers = args->workers;
    a->opts->cfg.max_agent_conns = args->agent_conns ? args->agent_conns : 128;
    if (shoal_fleet_new(a->loop, &a->opts->cfg, on_event, a, &a->f, err, sizeof(err)) != 0) {
        user_error(1, NULL, "cannot start the workers: %s", err);
        fprintf(stderr, "shoal agent: cannot start the workers: %s\n", err);
        uv_run(a->loop, UV_RUN_DEFAULT); /* closes what shoal_fleet_new set up */
        return 1;
    }
    int urc = uv_async_init(a->loop, &a->lines, on_lines);
    if (urc != 0) {
        user_error(1, NULL, "cannot start: uv_async_init: %s", uv_strerror(urc));
        fprintf(stderr, "shoal agent: cannot start: uv_async_init: %s\n", uv_strerror(urc));
        shoal_fleet_free(a->f);
        a->f = NULL;
        uv_run(a->loop, UV_RUN_DEFAULT);
        return 1;
    }
    a->lines.data = a;
    return AGENT_GO_ON;
}

/* Everything before InitializeComplete. AGENT_GO_ON, or the exit code
 * (said); agent_cleanup frees what was made either way. */
static int agent_prepare(agent *a, agent_args *args)
{
    memset(a, 0, sizeof(*a));
    a->opts = &args->opts;
    a->max_per_request = args->max_per_request;
    a->disconnect = args->disconnect;
    int code = open_loop_and_reader(a, args->workers);
    if (code != AGENT_GO_ON)
        return code;
    /* Initialisation: keys (with PasswordRequest lines), known_hosts. */
    a->in_init = 1;
    return start_fleet(a, args);
}

/* Says InitializeComplete, serves the request lines until stdin ends and
 * every request is done, then stops the fleet. The exit code (0). */
static int agent_run(agent *a)
{
    json_t *ic = json_object();
    json_object_set_new(ic, "Type", json_string("InitializeComplete"));
    json_object_set_new(ic, "InitializeComplete", json_true());
    replyjson_emit(out, ic);
    a->in_init = 0;

    /* Lines held back while passphrases were asked go first. */
    while (a->held) {
        agent_line *l = a->held;
        a->held = l->next;
        take_line(a, l);
    }
    a->held_tail = NULL;
    agent_stdin_attach(&a->rd, &a->lines);
    uv_run(a->loop, UV_RUN_DEFAULT);
    if (a->f)
        shoal_fleet_free(a->f);
    uv_run(a->loop, UV_RUN_DEFAULT);
    fflush(out);
    pthread_join(a->reader_thread, NULL);
    a->reader_running = 0;
    return 0;
}

/* Frees what agent_prepare made (in any state it left) and args. */
static void agent_cleanup(agent *a, agent_args *args)
{
    if (a->reader_running) {
        /* Start-up failed: the reader thread may be blocked in read(); it
         * is not joined (the process exits). */
        pthread_detach(a->reader_thread);
        while (a->held) {
            agent_line *l = a->held;
            a->held = l->next;
            agent_line_free(l);
        }
    }
    while (a->keys) {
        keycache *k = a->keys;
        a->keys = k->next;
        shoal_key_free(k->key);
        free(k->path);
        free(k);
    }
    fleetopts_free(&args->opts);
    if (a->loop)
        uv_loop_close(a->loop);
}

int cmd_agent(int argc, char **argv)
{
    static agent a;
    agent_args args;
    out = stdout;
    int code = agent_parse(argc, argv, &args);
    if (code != AGENT_GO_ON)
        return code;
    code = agent_prepare(&a, &args);
    if (code == AGENT_GO_ON)
        code = agent_run(&a);
    agent_cleanup(&a, &args);
    return code;
}
