/* The sans-I/O core driven by hand, without libuv, against a real sshd:
 * a plain socket, poll(), and our own clock. It shows the contract
 * (recv / output / deadline / tick) and exercises the deferred answers:
 *   - the host key decision is returned as SHOAL_ERR_DEFERRED and answered
 *     only a few loop turns later (the server's NEWKEYS waits meanwhile);
 *   - the identity is added without its private key, so the session asks
 *     the sign callback, which defers and signs later;
 *   - a host key rejected later ends the session before authentication.
 * Usage: sansio PORT KEY USER
 * Prints TAP-style lines and "N passed, M failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shoal/channel.h"
#include "shoal/keys.h"
#include "shoal/session.h"

static int passed, failed;

static void check(int cond, const char *what)
{
    printf("%s - %s\n", cond ? "ok" : "not ok", what);
    if (cond)
        passed++;
    else
        failed++;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct app {
    shoal_key *user_key;
    int accept_hostkey;
    /* deferred work, done by the loop a few turns later */
    int hostkey_waiting, hostkey_turns;
    int sign_waiting, sign_turns;
    char sigalg[64];
    uint8_t sign_data[4096];
    size_t sign_len;
    int authenticated, closed, err;
    char errmsg[512];
    shoal_channel *ch;
    char out[256];
    size_t out_len;
    int have_status;
    uint32_t status;
    int channel_closed;
} app;

static int on_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    app *a = ud;
    (void)s;
    (void)info;
    a->hostkey_waiting = 1;
    a->hostkey_turns = 3;
    return SHOAL_ERR_DEFERRED;
}

static int on_sign(shoal_session *s, unsigned ident, const char *sigalg, const uint8_t *data, size_t len, void *ud)
{
    app *a = ud;
    (void)s;
    (void)ident;
    if (len > sizeof(a->sign_data))
        return SHOAL_ERR_TOO_LARGE;
    memcpy(a->sign_data, data, len);
    a->sign_len = len;
    snprintf(a->sigalg, sizeof(a->sigalg), "%s", sigalg);
    a->sign_waiting = 1;
    a->sign_turns = 2;
    return SHOAL_ERR_DEFERRED;
}

static void on_authenticated(shoal_session *s, void *ud)
{
    (void)s;
    ((app *)ud)->authenticated = 1;
}

static void on_closed(shoal_session *s, int err, const char *msg, void *ud)
{
    app *a = ud;
    (void)s;
    a->closed = 1;
    a->err = err;
    if (msg)
        snprintf(a->errmsg, sizeof(a->errmsg), "%s", msg);
}

static void ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    (void)ud;
    (void)reason;
    if (!err)
        shoal_channel_exec(ch, "echo sans-io");
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    app *a = ud;
    (void)ch;
    if (stream == SHOAL_STDOUT && a->out_len + n < sizeof(a->out)) {
        memcpy(a->out + a->out_len, d, n);
        a->out_len += n;
    }
}

static void ch_status(shoal_channel *ch, uint32_t st, void *ud)
{
    app *a = ud;
    (void)ch;
    a->have_status = 1;
    a->status = st;
}

static void ch_close(shoal_channel *ch, void *ud)
{
    app *a = ud;
    (void)ch;
    a->channel_closed = 1;
    a->ch = NULL;
}

static int dial(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

/* One session, driven until it closes or 20 s pass. */
static void run(app *a, shoal_session *s, int fd)
{
    shoal_session_start(s, now_ms());
    uint64_t stop = now_ms() + 20000;
    while (!shoal_session_is_done(s) && now_ms() < stop) {
        const uint8_t *p;
        size_t n;
        while ((n = shoal_session_output(s, &p)) > 0) {
            ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            shoal_session_output_consume(s, (size_t)w);
        }
        if (shoal_session_is_closed(s))
            break;
        /* Deferred answers, a few turns late on purpose. */
        if (a->hostkey_waiting && --a->hostkey_turns <= 0) {
            a->hostkey_waiting = 0;
            shoal_session_hostkey_reply(s, a->accept_hostkey ? 0 : SHOAL_ERR_HOSTKEY_MISMATCH);
            continue;
        }
        if (a->sign_waiting && --a->sign_turns <= 0) {
            uint8_t *sig = NULL;
            size_t sig_len = 0;
            a->sign_waiting = 0;
            if (shoal_key_sign_data(a->user_key, a->sigalg, a->sign_data, a->sign_len, &sig, &sig_len) == 0)
                shoal_session_sign_reply(s, sig, sig_len);
            else
                shoal_session_sign_reply(s, NULL, 0);
            free(sig);
            continue;
        }
        if (a->authenticated && !a->ch && !a->channel_closed) {
            static const shoal_channel_callbacks cb = {
                sizeof(shoal_channel_callbacks), ch_open, NULL, ch_data, NULL, ch_status, NULL, NULL, ch_close};
            shoal_channel_open_session(s, &cb, a, &a->ch);
            continue;
        }
        if (a->channel_closed) {
            shoal_session_disconnect(s, "done");
            continue;
        }
        uint64_t dl = shoal_session_deadline(s), t = now_ms();
        int timeout = (a->hostkey_waiting || a->sign_waiting) ? 10 : 1000;
        if (dl != UINT64_MAX && dl > t && dl - t < (uint64_t)timeout)
            timeout = (int)(dl - t);
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, timeout);
        if (r > 0) {
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
    if (argc < 4) {
        fprintf(stderr, "usage: sansio PORT KEY USER\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    app a;
    memset(&a, 0, sizeof(a));
    check(shoal_key_load_private_file(argv[2], NULL, &a.user_key) == 0, "user key loads");
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    check(shoal_key_public_blob(a.user_key, &blob, &blob_len) == 0, "public blob");

    shoal_client_config cfg;
    shoal_client_config_init(&cfg);
    cfg.user = argv[3];
    cfg.auth_methods = SHOAL_AUTH_PUBLICKEY;
    shoal_client_callbacks cb;
    shoal_client_callbacks_init(&cb);
    cb.hostkey = on_hostkey;
    cb.sign = on_sign;
    cb.authenticated = on_authenticated;
    cb.closed = on_closed;

    /* 1: everything deferred, accepted. */
    shoal_session *s;
    a.accept_hostkey = 1;
    check(shoal_session_new_client(&s, &cfg, &cb, &a) == 0, "session created");
    /* Public half only: the session must ask us to sign. */
    int ident = shoal_session_add_identity(s, blob, blob_len, NULL);
    check(ident == 0, "identity added without its private key");
    int fd = dial(port);
    run(&a, s, fd);
    close(fd);
    check(a.authenticated, "deferred host key + deferred signature: authenticated");
    check(a.have_status && a.status == 0 && strcmp(a.out, "sans-io\n") == 0, "command output and status through the sans-I/O loop");
    check(a.closed && a.err == 0, "orderly close");
    if (a.err)
        printf("# %s\n", a.errmsg);
    check(shoal_session_kex_count(s) >= 1 && shoal_session_algorithm(s, "kex") != NULL, "algorithms reported");
    shoal_session_free(s);

    /* 2: host key rejected after a delay: closed before authentication. */
    app b;
    memset(&b, 0, sizeof(b));
    b.user_key = a.user_key;
    b.accept_hostkey = 0;
    check(shoal_session_new_client(&s, &cfg, &cb, &b) == 0, "second session created");
    shoal_session_add_identity(s, blob, blob_len, NULL);
    fd = dial(port);
    run(&b, s, fd);
    close(fd);
    check(b.closed && b.err == SHOAL_ERR_HOSTKEY_MISMATCH && !b.authenticated && !b.sign_len,
          "deferred rejection: closed with the host key error, nothing signed");
    printf("# %s\n", b.errmsg);
    shoal_session_free(s);

    free(blob);
    shoal_key_free(a.user_key);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
