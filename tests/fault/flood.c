/* fault_flood: a hostile SSH peer that sends requests and never reads the
 * replies, to show that the other side's memory stays bounded (the
 * CVE-2025-26466 class: replies queued without read backpressure).
 *
 *   fault_flood client --connect ADDR:PORT --user USER [--key FILE]
 *               --kind KIND [--conns N] [--count N per connection] --dir DIR
 *   fault_flood server --listen ADDR:PORT --hostkey FILE --kind KIND
 *               [--count N] --dir DIR
 *
 * Client kinds (against a server that accepts --key): none, probe (a
 * publickey query for --key, answered PK_OK), both before authentication;
 * keepalive (keepalive@openssh.com global requests wanting a reply) and
 * unimplemented (message 150, answered UNIMPLEMENTED), both after logging
 * in with --key.
 * Server kinds (against a client that logs in and runs a command):
 * keepalive, unimplemented.
 *
 * It runs libshoal's own sans-I/O session for the handshake and builds the
 * flood with the session's packet writer (an internal call: this is a
 * test program), so every message is valid and encrypted. Once flooding
 * it stops reading its socket, so the peer's replies can only pile up in
 * the peer -- unless the peer stops reading too. It writes while the
 * kernel takes bytes and stops after --count messages, when the peer
 * closed the connection, or when nothing could be written for 2 s (the
 * peer stopped reading: the outcome wanted).
 *
 * Files in DIR, for the test script, which measures the peer's memory:
 * "started" once the flood begins, "done" once it ended, holding
 * "sent=N bytes=B closed=0|1" -- while the connection is still open: the
 * tool waits until DIR/release exists (or 60 s), then exits. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keys/key.h"
#include "shoal/channel.h"
#include "shoal/server.h"
#include "shoal/session.h"
#include "session/session_impl.h"

#define MAX_CONNS 64
#define STALL_MS 2000

typedef enum kind { K_NONE, K_PROBE, K_KEEPALIVE, K_UNIMPLEMENTED } kind;

typedef struct peer {
    int fd;
    shoal_session *s;
    int ready;      /* handshake done: flood now */
    int closed;     /* the other side closed or reset */
    int exec_seen;  /* server mode: the client started its command */
    unsigned long sent; /* flood messages made */
} peer;

static const char *opt_dir;
static kind opt_kind;
static const char *opt_user = "flood";
static shoal_key *opt_key;
static unsigned long opt_count = 1000000;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

/* what names the problem, arg the thing it is about (or "") */
static void die(const char *what, const char *arg)
{
    fprintf(stderr, "fault_flood: %s%s%s\n", what, *arg ? ": " : "", arg);
    exit(2);
}

static void write_file(const char *name, const char *text)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", opt_dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("cannot write", tmp);
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

static int file_exists(const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", opt_dir, name);
    return stat(path, &st) == 0;
}

static void parse_addr(const char *spec, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        die("bad address", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || (ntohl(sa->sin_addr.s_addr) >> 24) != 127)
        die("not a loopback address", spec);
}

static size_t unsent(shoal_session *s)
{
    const uint8_t *d;
    return shoal_session_output(s, &d);
}

/* Writes what the session has; returns bytes written (0 when the kernel is
 * full), marks the peer closed on an error. */
static size_t push(peer *p)
{
    size_t total = 0;
    const uint8_t *d;
    size_t n;
    while (!p->closed && (n = shoal_session_output(p->s, &d)) > 0) {
        ssize_t w = send(p->fd, d, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            p->closed = 1;
            break;
        }
        shoal_session_output_consume(p->s, (size_t)w);
        total += (size_t)w;
    }
    return total;
}

/* Reads and feeds the session (handshake only). */
static void pull(peer *p)
{
    uint8_t buf[65536];
    ssize_t r = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r > 0)
        shoal_session_recv(p->s, buf, (size_t)r, now_ms());
    else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        p->closed = 1;
}

/* One flood message into the session's output. */
static int add_message(peer *p)
{
    shoal_session *s = p->s;
    size_t mark;
    int rc;
    switch (opt_kind) {
    case K_NONE:
    case K_PROBE:
        rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_REQUEST, &mark);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, opt_user);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, "ssh-connection");
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, opt_kind == K_NONE ? "none" : "publickey");
        if (!rc && opt_kind == K_PROBE) {
            shoal_buf blob;
            shoal_buf_init(&blob, SHOAL_KEY_MAX_BLOB);
            rc = shoal_buf_put_bool(&s->tp.out, 0);
            if (!rc)
                rc = shoal_key_to_blob(opt_key, &blob);
            if (!rc)
                rc = shoal_buf_put_cstring(&s->tp.out, shoal_key_type_name(opt_key));
            if (!rc)
                rc = shoal_buf_put_string(&s->tp.out, shoal_buf_ptr(&blob), shoal_buf_len(&blob));
            shoal_buf_free(&blob);
        }
        break;
    case K_KEEPALIVE:
        rc = shoal__pkt_begin(s, SSH_MSG_GLOBAL_REQUEST, &mark);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, "keepalive@openssh.com");
        if (!rc)
            rc = shoal_buf_put_bool(&s->tp.out, 1);
        break;
    default:
        rc = shoal__pkt_begin(s, 150, &mark);
        if (!rc)
            rc = shoal_buf_put_u32(&s->tp.out, 0);
        break;
    }
    if (rc) {
        shoal_buf_truncate(&s->tp.out, mark);
        return rc;
    }
    return shoal__pkt_end(s, mark);
}

/* The flood: every ready peer gets messages while its kernel takes them. */
static void flood(peer *peers, unsigned n)
{
    unsigned long sent = 0;
    uint64_t bytes = 0, last_progress = now_ms();
    write_file("started", "started\n");
    for (;;) {
        unsigned open = 0;
        size_t wrote = 0;
        for (unsigned i = 0; i < n; i++) {
            peer *p = &peers[i];
            if (p->closed)
                continue;
            open++;
            /* Keep a little output ready, never much: what matters is what
             * the other side queues, not what we do. */
            while (p->sent < opt_count && unsent(p->s) < (64u << 10)) {
                if (add_message(p) != 0) {
                    p->closed = 1;
                    break;
                }
                p->sent++;
                sent++;
            }
            size_t w = push(p);
            wrote += w;
            bytes += w;
        }
        uint64_t t = now_ms();
        if (wrote)
            last_progress = t;
        int finished = 1;
        for (unsigned i = 0; i < n; i++)
            if (!peers[i].closed && (peers[i].sent < opt_count || unsent(peers[i].s) > 0))
                finished = 0;
        if (!open || finished || t - last_progress >= STALL_MS)
            break;
        if (!wrote) {
            struct pollfd pf[MAX_CONNS];
            unsigned k = 0;
            for (unsigned i = 0; i < n; i++)
                if (!peers[i].closed)
                    pf[k++] = (struct pollfd){.fd = peers[i].fd, .events = POLLOUT};
            poll(pf, k, 100);
            for (unsigned i = 0, j = 0; i < n; i++)
                if (!peers[i].closed && (pf[j++].revents & (POLLERR | POLLHUP)))
                    peers[i].closed = 1;
        }
    }
    unsigned closed = 0;
    for (unsigned i = 0; i < n; i++) {
        /* A closed connection: the other side hung up on us. */
        if (!peers[i].closed) {
            char c;
            ssize_t r = recv(peers[i].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r == 0)
                peers[i].closed = 1;
        }
        closed += (unsigned)peers[i].closed;
    }
    char line[200];
    snprintf(line, sizeof(line), "sent=%lu bytes=%llu closed=%u of %u\n", sent, (unsigned long long)bytes, closed,
             n);
    fputs(line, stdout);
    fflush(stdout);
    write_file("done", line);
    /* Hold the connections open while the test measures the other side. */
    uint64_t t0 = now_ms();
    while (!file_exists("release") && now_ms() - t0 < 60000)
        usleep(50000);
}

/* ---- client mode ---- */

static int cli_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    (void)ud;
    return 0;
}

static void cli_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    (void)s;
    peer *p = ud;
    if (err && !p->ready)
        fprintf(stderr, "fault_flood: handshake failed: %s\n", msg ? msg : shoal_strerror(err));
}

/* Where the flood starts. Before authentication: once our session waits
 * for a signature it will never get (its own "none" and query are
 * answered, so the server has granted the userauth service and knows the
 * key), the session stays quiet while we flood in its name. After: once
 * logged in. */
static int handshake_done(peer *p)
{
    if (opt_kind == K_NONE || opt_kind == K_PROBE)
        return p->s->tp.phase == SHOAL_PHASE_AUTH && p->s->auth.state == AUTH_PK_SIGNING;
    return p->s->tp.phase == SHOAL_PHASE_OPEN;
}

static int cli_sign(shoal_session *s, unsigned ident, const char *alg, const uint8_t *d, size_t n, void *ud)
{
    (void)s;
    (void)ident;
    (void)alg;
    (void)d;
    (void)n;
    (void)ud;
    return SHOAL_ERR_DEFERRED; /* never answered */
}

static int run_client(const char *addr, unsigned nconns)
{
    struct sockaddr_in sa;
    parse_addr(addr, &sa);
    peer peers[MAX_CONNS];
    memset(peers, 0, sizeof(peers));
    for (unsigned i = 0; i < nconns; i++) {
        peer *p = &peers[i];
        p->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            die("cannot connect to", addr);
        int one = 1;
        setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        shoal_client_config cc;
        shoal_client_config_init(&cc);
        cc.user = opt_user;
        cc.rekey_bytes = UINT64_MAX; /* no rekey in the middle of the flood */
        cc.auth_methods = SHOAL_AUTH_PUBLICKEY;
        shoal_client_callbacks cb;
        shoal_client_callbacks_init(&cb);
        cb.hostkey = cli_hostkey;
        cb.closed = cli_closed;
        cb.sign = cli_sign;
        if (shoal_session_new_client(&p->s, &cc, &cb, p) != 0)
            die("cannot make a session", "");
        /* Logging in: the private key. Flooding before: only the public
         * part, so the session asks cli_sign, which never answers. */
        shoal_buf b;
        shoal_buf_init(&b, SHOAL_KEY_MAX_BLOB);
        int before_auth = opt_kind == K_NONE || opt_kind == K_PROBE;
        if (shoal_key_to_blob(opt_key, &b) != 0 ||
            shoal_session_add_identity(p->s, shoal_buf_ptr(&b), shoal_buf_len(&b),
                                       before_auth ? NULL : shoal_key_ref(opt_key)) < 0)
            die("cannot add the key", "");
        shoal_buf_free(&b);
        shoal_session_start(p->s, now_ms());
    }
    uint64_t t0 = now_ms();
    for (;;) {
        unsigned done = 0;
        for (unsigned i = 0; i < nconns; i++) {
            peer *p = &peers[i];
            push(p);
            if (!p->ready && handshake_done(p))
                p->ready = 1;
            if (p->closed || shoal_session_is_closed(p->s))
                die("the connection ended during the handshake", "");
            done += (unsigned)p->ready;
        }
        if (done == nconns)
            break;
        if (now_ms() - t0 > 60000)
            die("handshake timed out", "");
        struct pollfd pf[MAX_CONNS];
        for (unsigned i = 0; i < nconns; i++)
            pf[i] = (struct pollfd){.fd = peers[i].fd, .events = POLLIN};
        poll(pf, nconns, 100);
        for (unsigned i = 0; i < nconns; i++)
            if (!peers[i].ready && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                pull(&peers[i]);
    }
    flood(peers, nconns);
    return 0;
}

/* ---- server mode ---- */

static int srv_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)s;
    (void)ud;
    return req->method == SHOAL_METHOD_PUBLICKEY ? SHOAL_AUTH_SUCCESS : SHOAL_AUTH_DENY;
}

static int srv_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    (void)ch;
    peer *p = ud;
    if (strcmp(req->type, "exec") == 0 || strcmp(req->type, "shell") == 0) {
        p->exec_seen = 1;
        return 1;
    }
    return 0;
}

static int srv_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    static const shoal_server_channel_callbacks cb = {
        sizeof(shoal_server_channel_callbacks), srv_request, NULL, NULL, NULL, NULL};
    if (strcmp(type, "session") != 0)
        return 3;
    shoal_channel_set_server_callbacks(ch, &cb, ud);
    return 0;
}

static int run_server(const char *addr, const char *hostkey_file)
{
    struct sockaddr_in sa;
    parse_addr(addr, &sa);
    shoal_key *hk = NULL;
    if (shoal_key_load_private_file(hostkey_file, NULL, &hk) != 0)
        die("cannot load host key", hostkey_file);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0)
        die("cannot listen on", addr);
    write_file("listening", "listening\n");
    peer p;
    memset(&p, 0, sizeof(p));
    p.fd = accept(lfd, NULL, NULL);
    if (p.fd < 0)
        die("accept failed", "");
    shoal_server_config sc;
    shoal_server_config_init(&sc);
    sc.host_keys = &hk;
    sc.n_host_keys = 1;
    sc.auth_methods = SHOAL_AUTH_PUBLICKEY;
    sc.rekey_bytes = UINT64_MAX;
    shoal_server_callbacks cb = {sizeof(shoal_server_callbacks), srv_auth, NULL, srv_open, NULL, NULL};
    if (shoal_session_new_server(&p.s, &sc, &cb, &p) != 0)
        die("cannot make a session", "");
    shoal_session_start(p.s, now_ms());
    uint64_t t0 = now_ms();
    while (!p.exec_seen) {
        push(&p);
        if (p.closed || shoal_session_is_closed(p.s))
            die("the client left during the handshake", "");
        if (now_ms() - t0 > 60000)
            die("handshake timed out", "");
        struct pollfd pf = {.fd = p.fd, .events = POLLIN};
        if (poll(&pf, 1, 100) > 0)
            pull(&p);
    }
    push(&p); /* the exec reply */
    p.ready = 1;
    flood(&p, 1);
    close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: fault_flood client|server ...", "");
    const char *mode = argv[1], *addr = NULL, *hostkey = NULL, *kind_name = NULL;
    unsigned conns = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--connect") || !strcmp(k, "--listen"))
            addr = v;
        else if (!strcmp(k, "--user"))
            opt_user = v;
        else if (!strcmp(k, "--key")) {
            if (shoal_key_load_private_file(v, NULL, &opt_key) != 0)
                die("cannot load key", v);
        } else if (!strcmp(k, "--hostkey"))
            hostkey = v;
        else if (!strcmp(k, "--kind"))
            kind_name = v;
        else if (!strcmp(k, "--conns"))
            conns = (unsigned)atoi(v);
        else if (!strcmp(k, "--count"))
            opt_count = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--dir"))
            opt_dir = v;
        else
            die("unknown option", k);
    }
    if (!addr || !opt_dir || !kind_name || conns == 0 || conns > MAX_CONNS)
        die("missing --connect/--listen, --dir or --kind", "");
    static const char *const kinds[] = {"none", "probe", "keepalive", "unimplemented"};
    int found = 0;
    for (int k = 0; k < 4; k++)
        if (!strcmp(kind_name, kinds[k])) {
            opt_kind = (kind)k;
            found = 1;
        }
    if (!found)
        die("unknown kind", kind_name);
    if (!strcmp(mode, "client")) {
        if (!opt_key)
            die("--key (a key the server accepts) is needed", "");
        return run_client(addr, conns);
    }
    if (!strcmp(mode, "server") && hostkey && (opt_kind == K_KEEPALIVE || opt_kind == K_UNIMPLEMENTED))
        return run_server(addr, hostkey);
    die("bad mode or kind", "");
    return 2;
}
