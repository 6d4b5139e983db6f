/* poll_session: the sans-I/O session driven by hand, with a plain socket
 * and poll(2), no libuv at all: connect, check the host key against a
 * known_hosts file, log in with one key file, run one command, print its
 * output and exit status.
 *
 *   poll_session [-p port] [-l user] -i key [-k known_hosts] host command
 *
 * (host: a name or an address; key: a private key without passphrase;
 * known_hosts defaults to ~/.ssh/known_hosts and the host must be in it.)
 *
 * The session never touches a socket or a clock: we feed it what we read
 * (shoal_session_recv), send what it lends us (shoal_session_output), and
 * call shoal_session_tick when its deadline (our clock, milliseconds)
 * passes. Everything else arrives through callbacks.
 * Build: cc poll_session.c $(pkg-config --cflags --libs libshoal) -o poll_session */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <shoal/channel.h>
#include <shoal/keys.h>
#include <shoal/knownhosts.h>
#include <shoal/session.h>

typedef struct app {
    const char *host;
    unsigned port;
    const char *known_hosts;
    const char *command;
    shoal_channel *ch;
    int authenticated, channel_done, have_status;
    uint32_t status;
    char signal[32];
} app;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- session callbacks ---- */

static int on_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    app *a = ud;
    (void)s;
    shoal_kh_result r;
    int rc = shoal_knownhosts_check_file(a->known_hosts, a->host, a->port, shoal_key_type_name(info->key),
                                         info->blob, info->blob_len, &r);
    if (rc)
        return rc; /* a file we cannot read is an error, never "unknown" */
    if (r.status == SHOAL_KH_MATCH)
        return 0;
    fprintf(stderr, "poll_session: host key %s of %s is %s in %s\n", info->fingerprint, a->host,
            r.status == SHOAL_KH_REVOKED ? "revoked" : r.status == SHOAL_KH_MISMATCH ? "CHANGED" : "not known",
            a->known_hosts);
    return r.status == SHOAL_KH_REVOKED    ? SHOAL_ERR_HOSTKEY_REVOKED
           : r.status == SHOAL_KH_MISMATCH ? SHOAL_ERR_HOSTKEY_MISMATCH
                                           : SHOAL_ERR_HOSTKEY_UNKNOWN;
}

static void on_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    ((app *)ud)->authenticated = 1;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s, (void)ud;
    if (err)
        fprintf(stderr, "poll_session: %s\n", message ? message : shoal_strerror(err));
}

/* ---- channel callbacks ---- */

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    (void)ud;
    if (err)
        fprintf(stderr, "poll_session: channel refused: %s\n", reason ? reason : shoal_strerror(err));
    else
        shoal_channel_exec(ch, ((app *)ud)->command);
}

static void ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    (void)ud;
    if (!ok) {
        fprintf(stderr, "poll_session: %s refused\n", request);
        shoal_channel_close(ch);
    } else if (!strcmp(request, "exec")) {
        shoal_channel_send_eof(ch); /* we send no stdin */
    }
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    (void)ch, (void)ud;
    fwrite(data, 1, len, stream == SHOAL_STDERR ? stderr : stdout);
}

static void ch_exit_status(shoal_channel *ch, uint32_t status, void *ud)
{
    app *a = ud;
    (void)ch;
    a->have_status = 1;
    a->status = status;
}

static void ch_exit_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    app *a = ud;
    (void)ch, (void)core, (void)msg;
    snprintf(a->signal, sizeof(a->signal), "%s", sig);
}

static void ch_close(shoal_channel *ch, void *ud)
{
    app *a = ud;
    (void)ch;
    a->channel_done = 1;
    a->ch = NULL;
}

/* ---- plumbing ---- */

static int dial(const char *host, unsigned port)
{
    char service[16];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc) {
        fprintf(stderr, "poll_session: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "poll_session: %s:%u: %s\n", host, port, strerror(errno));
    return fd;
}

/* The identity: the private key, and its public blob. */
static int add_identity(shoal_session *s, const char *path)
{
    shoal_key *key;
    int rc = shoal_key_load_private_file(path, NULL, &key);
    if (rc) {
        fprintf(stderr, "poll_session: %s: %s\n", path, shoal_strerror(rc));
        return rc;
    }
    uint8_t *blob;
    size_t blob_len;
    rc = shoal_key_public_blob(key, &blob, &blob_len);
    if (rc == 0)
        rc = shoal_session_add_identity(s, blob, blob_len, key); /* takes the key, copies the blob */
    else
        shoal_key_free(key);
    free(blob);
    if (rc < 0)
        fprintf(stderr, "poll_session: %s: %s\n", path, shoal_strerror(rc));
    return rc < 0 ? rc : 0;
}

/* Sends what the session has for the peer; -1 when the socket failed. */
static int flush_output(shoal_session *s, int fd)
{
    const uint8_t *p;
    size_t n;
    while ((n = shoal_session_output(s, &p)) > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        shoal_session_output_consume(s, (size_t)w);
    }
    return 0;
}

static void run(app *a, shoal_session *s, int fd)
{
    shoal_session_start(s, now_ms());
    while (!shoal_session_is_done(s)) {
        if (flush_output(s, fd) != 0) {
            shoal_session_abort(s, SHOAL_ERR_IO, strerror(errno));
            continue;
        }
        if (shoal_session_is_closed(s))
            break;
        /* Logged in: open the one channel (its callbacks exec the command). */
        if (a->authenticated && !a->ch && !a->channel_done) {
            static const shoal_channel_callbacks cb = {sizeof(shoal_channel_callbacks), ch_open, ch_request, ch_data, NULL,
                                                       ch_exit_status, ch_exit_signal, NULL, ch_close};
            if (shoal_channel_open_session(s, &cb, a, &a->ch) != 0)
                a->channel_done = 1;
            continue;
        }
        if (a->channel_done) {
            shoal_session_disconnect(s, "done");
            continue;
        }
        /* Input held back while our output was above the session's mark:
         * the output is sent now (a blocking socket), so process it. */
        if (!shoal_session_wants_input(s)) {
            shoal_session_resume(s, now_ms());
            if (shoal_session_wants_input(s))
                continue;
        }
        /* Wait for bytes, or for the session's next deadline. */
        uint64_t deadline = shoal_session_deadline(s), t = now_ms();
        int timeout = 1000;
        if (deadline != UINT64_MAX)
            timeout = deadline <= t ? 0 : deadline - t < 1000 ? (int)(deadline - t) : 1000;
        struct pollfd pfd = {fd, shoal_session_wants_input(s) ? POLLIN : 0, 0};
        if (poll(&pfd, 1, timeout) > 0) {
            uint8_t buf[65536];
            ssize_t got = recv(fd, buf, sizeof(buf), 0);
            if (got > 0)
                shoal_session_recv(s, buf, (size_t)got, now_ms());
            else if (got == 0)
                shoal_session_recv_eof(s, now_ms());
            else if (errno != EINTR)
                shoal_session_abort(s, SHOAL_ERR_IO, strerror(errno));
        }
        shoal_session_tick(s, now_ms());
    }
}

int main(int argc, char **argv)
{
    static char kh_default[4096];
    app a;
    memset(&a, 0, sizeof(a));
    a.port = 22;
    const char *user = getenv("USER"), *key = NULL;
    int c;
    while ((c = getopt(argc, argv, "+p:l:i:k:")) != -1) {
        switch (c) {
        case 'p': a.port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'l': user = optarg; break;
        case 'i': key = optarg; break;
        case 'k': a.known_hosts = optarg; break;
        default: return 2;
        }
    }
    if (argc - optind != 2 || !key || !user) {
        fprintf(stderr, "usage: poll_session [-p port] [-l user] -i key [-k known_hosts] host command\n");
        return 2;
    }
    a.host = argv[optind];
    a.command = argv[optind + 1];
    if (!a.known_hosts) {
        snprintf(kh_default, sizeof(kh_default), "%s/.ssh/known_hosts", getenv("HOME") ? getenv("HOME") : ".");
        a.known_hosts = kh_default;
    }

    shoal_client_config cfg;
    shoal_client_config_init(&cfg);
    cfg.user = user;
    cfg.auth_methods = SHOAL_AUTH_PUBLICKEY;
    shoal_client_callbacks cb;
    shoal_client_callbacks_init(&cb);
    cb.hostkey = on_hostkey;
    cb.authenticated = on_authenticated;
    cb.closed = on_closed;
    shoal_session *s;
    int rc = shoal_session_new_client(&s, &cfg, &cb, &a);
    if (rc) {
        fprintf(stderr, "poll_session: %s\n", shoal_strerror(rc));
        return 255;
    }
    int fd = -1;
    if (add_identity(s, key) != 0 || (fd = dial(a.host, a.port)) < 0) {
        shoal_session_free(s);
        return 255;
    }
    run(&a, s, fd);
    close(fd);
    int err = shoal_session_error(s, NULL);
    shoal_session_free(s);
    fflush(stdout);
    if (a.have_status) {
        printf("exit status %u\n", a.status);
        return (int)a.status;
    }
    if (a.signal[0]) {
        printf("killed by signal %s\n", a.signal);
        return 128;
    }
    fprintf(stderr, "poll_session: no exit status (%s)\n", err ? shoal_strerror(err) : "channel closed");
    return 255;
}
