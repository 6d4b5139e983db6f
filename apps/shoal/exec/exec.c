/* shoal exec: run one command on one host, like `ssh host command`.
 *
 * stdin is forwarded (with backpressure: we stop reading it while the
 * channel window is full), stdout and stderr are kept apart, the exit code
 * is the remote exit status; a command killed by a signal gives 128+signal;
 * any connection or protocol failure gives 255 and one line on stderr that
 * names the host and the stage that failed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common/prompt.h"
#include "exec/exec_args.h"
#include "shoal/channel.h"
#include "shoal/config.h"
#include "shoal/ssh_resolve.h"
#include "shoal/strvis.h"
#include "shoal/uv.h"

#define IN_BUF (256u * 1024u)
/* Opening the session channel and starting the command: the server must
 * answer within this (ConnectTimeout when given). OpenSSH would wait for
 * ever on a server that never confirms the channel. */
#define DEFAULT_OPEN_TIMEOUT_MS 30000u

enum { IN_NONE, IN_STREAM, IN_FILE };

typedef struct exec_state {
    uv_loop_t *loop;
    shoal_uv_conn *conn;
    shoal_channel *ch;
    const char *command;
    const char *fwd_host;      /* -W: forward stdin/stdout to fwd_host:fwd_port instead */
    unsigned fwd_port;
    shoal_ssh_resolved *resolved; /* the connection's settings */
    int batch;
    int verbose;

    int have_status, have_signal, channel_done, exec_refused;
    int exec_started;          /* the server accepted the command */
    uv_signal_t sigs[3];       /* SIGINT, SIGTERM, SIGHUP: passed on to the command */
    int sigs_open, sig_sent;
    uv_timer_t sig_timer;      /* after TERM/HUP: how long the command gets to end */
    int sig_timer_open, sig_num;
    uint32_t status;
    char signame[40];
    char sigmsg[256];
    int core;
    int conn_err;
    char conn_msg[800];
    uv_timer_t open_timer; /* channel open + exec reply */
    uint64_t open_timeout_ms;
    int open_timer_init, open_timer_on, ch_opened;

    int in_kind;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int in_open, in_reading, in_eof, eof_sent;
    int in_feeding; /* inside file_feed (a write may call back) */
    char *inbuf;       /* IN_BUF bytes, allocated with the input (never on the stack: a
                          tight address-space limit must give an error, not SIGSEGV) */
    size_t pend_off, pend_len; /* unsent part of inbuf */
} exec_state;

/* ---- output ---- */

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The descriptor may share a non-blocking file description
             * with a terminal libuv set up: wait until it drains. */
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, 1000);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return; /* EPIPE etc.: the reader went away; drop output */
        }
    }
}

/* ---- stdin pump ---- */

static void stdin_start(exec_state *st);

static void maybe_send_eof(exec_state *st)
{
    if (st->in_eof && st->pend_len == 0 && !st->eof_sent && st->ch) {
        st->eof_sent = 1;
        shoal_channel_send_eof(st->ch);
        shoal_uv_conn_flush(st->conn);
    }
}

/* Writes what is pending; returns 1 when everything went out. */
static int push_pending(exec_state *st)
{
    if (!st->ch)
        return 0;
    while (st->pend_len > 0) {
        size_t w = 0;
        int rc = shoal_channel_write(st->ch, st->inbuf + st->pend_off, st->pend_len, &w);
        if (rc)
            return 0;
        st->pend_off += w;
        st->pend_len -= w;
        if (w == 0)
            break;
    }
    shoal_uv_conn_flush(st->conn);
    return st->pend_len == 0;
}

static void on_stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    exec_state *st = h->data;
    (void)suggested;
    *buf = uv_buf_init(st->inbuf, IN_BUF);
}

static void on_stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    exec_state *st = s->data;
    (void)buf;
    if (n == 0)
        return;
    if (n < 0) {
        uv_read_stop(s);
        st->in_reading = 0;
        st->in_eof = 1;
        maybe_send_eof(st);
        return;
    }
    st->pend_off = 0;
    st->pend_len = (size_t)n;
    if (!push_pending(st)) {
        /* Window full: stop reading until the channel is writable. */
        uv_read_stop(s);
        st->in_reading = 0;
    }
}

/* A regular file or a device (/dev/null, /dev/zero) as stdin: read on the
 * loop thread, as much as the channel takes now. Reads of a file come from
 * the page cache; libuv's thread pool would add a hand-off (futex and
 * epoll wake-ups) per read, 18-30% of the client's CPU per GiB. */
static void file_feed(exec_state *st)
{
    if (st->in_feeding)
        return;
    st->in_feeding = 1;
    while (!st->in_eof && st->ch && st->pend_len == 0) {
        size_t room = shoal_channel_writable(st->ch);
        if (room == 0)
            break; /* on_writable comes back */
        size_t want = room < IN_BUF ? room : IN_BUF;
        ssize_t n = read(STDIN_FILENO, st->inbuf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A non-blocking descriptor with nothing yet: not a file we can
             * wait on here; try again shortly through on_writable. */
            break;
        }
        if (n <= 0) {
            if (n < 0)
                fprintf(stderr, "shoal: reading stdin: %s\n", strerror(errno));
            st->in_eof = 1;
            break;
        }
        st->pend_off = 0;
        st->pend_len = (size_t)n;
        if (!push_pending(st))
            break;
    }
    st->in_feeding = 0;
    maybe_send_eof(st);
}

static void stdin_start(exec_state *st)
{
    if (st->in_eof || !st->ch)
        return;
    if (st->in_kind == IN_STREAM && !st->in_reading) {
        st->in_reading = 1;
        uv_read_start((uv_stream_t *)&st->in.pipe, on_stdin_alloc, on_stdin_read);
    } else if (st->in_kind == IN_FILE) {
        file_feed(st);
    }
}

static int stdin_init(exec_state *st, int no_stdin)
{
    st->in_kind = IN_NONE;
    if (no_stdin)
        return 0;
    struct stat sb;
    if (fstat(STDIN_FILENO, &sb) != 0)
        return 0; /* closed: nothing to send */
    st->inbuf = malloc(IN_BUF);
    if (!st->inbuf)
        return -1;
    uv_handle_type t = uv_guess_handle(STDIN_FILENO);
    if (t == UV_TTY && uv_tty_init(st->loop, &st->in.tty, STDIN_FILENO, 1) == 0) {
        st->in_kind = IN_STREAM;
    } else if ((t == UV_NAMED_PIPE || t == UV_TCP) && uv_pipe_init(st->loop, &st->in.pipe, 0) == 0) {
        if (uv_pipe_open(&st->in.pipe, STDIN_FILENO) == 0) {
            st->in_kind = IN_STREAM;
        } else {
            uv_close((uv_handle_t *)&st->in.pipe, NULL);
            st->in_kind = IN_FILE;
            return 0;
        }
    } else {
        st->in_kind = IN_FILE; /* regular files, /dev/null and other devices */
        return 0;
    }
    st->in.pipe.data = st;
    st->in_open = 1;
    return 0;
}

static void stdin_close(exec_state *st)
{
    if (st->in_open) {
        st->in_open = 0;
        if (st->in_reading)
            uv_read_stop((uv_stream_t *)&st->in.pipe);
        if (uv_guess_handle(STDIN_FILENO) == UV_TTY)
            uv_tty_reset_mode();
        uv_close((uv_handle_t *)&st->in.pipe, NULL);
    }
}

/* ---- channel ---- */

static void open_timer_stop(exec_state *st)
{
    if (st->open_timer_on) {
        st->open_timer_on = 0;
        uv_timer_stop(&st->open_timer);
    }
}

static void on_open_timeout(uv_timer_t *t)
{
    exec_state *st = t->data;
    st->open_timer_on = 0;
    if (st->conn_err || st->channel_done)
        return;
    snprintf(st->conn_msg, sizeof(st->conn_msg), "%s: channel: timed out after %.1f s: %s",
             shoal_uv_conn_name(st->conn), (double)st->open_timeout_ms / 1000.0,
             st->ch_opened     ? "the server did not answer the exec request"
             : st->fwd_port    ? "the server did not confirm the forwarding channel"
                               : "the server did not confirm the session channel");
    st->conn_err = SHOAL_ERR_TIMEOUT;
    stdin_close(st);
    shoal_uv_conn_close(st->conn);
}

/* The command runs (or the forwarding channel is open): stdin flows. */
static void start_input(exec_state *st)
{
    open_timer_stop(st);
    st->exec_started = 1;
    if (st->in_kind == IN_NONE) {
        st->in_eof = 1;
        maybe_send_eof(st);
    } else {
        stdin_start(st);
    }
}

static void on_ch_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    exec_state *st = ud;
    if (err && st->conn_err)
        return; /* we closed it (the open timed out): that message stands */
    if (err) {
        /* A connection that ended (reset, disconnect) is not a refusal. */
        shoal_session *s = shoal_channel_session(ch);
        const char *msg = NULL;
        int serr = shoal_session_is_closed(s) ? shoal_session_error(s, &msg) : 0;
        if (serr)
            snprintf(st->conn_msg, sizeof(st->conn_msg), "%s: channel: %s", shoal_uv_conn_name(st->conn),
                     msg ? msg : shoal_strerror(serr));
        else if (st->fwd_port)
            snprintf(st->conn_msg, sizeof(st->conn_msg), "%s: stdio forwarding to %s:%u failed: %s",
                     shoal_uv_conn_name(st->conn), st->fwd_host, st->fwd_port, reason ? reason : shoal_strerror(err));
        else
            snprintf(st->conn_msg, sizeof(st->conn_msg), "%s: channel: server refused to open a session: %s",
                     shoal_uv_conn_name(st->conn), reason ? reason : shoal_strerror(err));
        st->conn_err = serr ? serr : err;
        return;
    }
    st->ch_opened = 1;
    if (st->fwd_port)
        start_input(st); /* a stream: nothing to request */
    else
        shoal_channel_exec(ch, st->command);
}

static void on_ch_request(shoal_channel *ch, const char *request, int ok, void *ud)
{
    exec_state *st = ud;
    if (strcmp(request, "exec") != 0)
        return;
    open_timer_stop(st);
    if (!ok) {
        st->exec_refused = 1;
        shoal_channel_close(ch);
        return;
    }
    start_input(st);
}

static void on_ch_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    (void)ud;
    write_all(stream == SHOAL_STDERR ? STDERR_FILENO : STDOUT_FILENO, data, len);
}

static void on_ch_exit_status(shoal_channel *ch, uint32_t status, void *ud)
{
    exec_state *st = ud;
    (void)ch;
    st->have_status = 1;
    st->status = status;
}

static void on_ch_exit_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    exec_state *st = ud;
    (void)ch;
    st->have_signal = 1;
    snprintf(st->signame, sizeof(st->signame), "%s", sig);
    snprintf(st->sigmsg, sizeof(st->sigmsg), "%s", msg);
    st->core = core;
}

static void on_ch_writable(shoal_channel *ch, void *ud)
{
    exec_state *st = ud;
    (void)ch;
    if (push_pending(st)) {
        if (st->in_eof)
            maybe_send_eof(st);
        else
            stdin_start(st);
    }
}

static void on_ch_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void on_ch_close(shoal_channel *ch, void *ud)
{
    exec_state *st = ud;
    (void)ch;
    open_timer_stop(st);
    st->ch = NULL;
    st->channel_done = 1;
    stdin_close(st);
    shoal_uv_conn_close(st->conn);
}

/* ---- our signals ----
 * A signal while the command runs is passed on to it as a "signal"
 * request, which OpenSSH's sshd delivers to the command's process group:
 * ssh does not do this without a terminal and leaves the command running
 * when it dies, while a user who pressed Ctrl-C wants the command gone.
 *  - Ctrl-C (INT): shoal waits for the command to end, and its exit
 *    (usually 130) becomes ours; a second Ctrl-C ends shoal at once.
 *  - TERM, HUP (a supervisor, `timeout`, a closed terminal): the command
 *    gets SIG_GRACE_MS to end, then shoal exits 128+N anyway, so whoever
 *    sent it sees shoal go promptly even if the server ignores the request.
 * A signal before the command started ends shoal at once (128+N). */
#define SIG_GRACE_MS 1000

static void leave_on_signal(exec_state *st, int signum)
{
    if (uv_guess_handle(STDIN_FILENO) == UV_TTY)
        uv_tty_reset_mode();
    fprintf(stderr, "shoal: %s: %s\n", st->conn ? shoal_uv_conn_name(st->conn) : "exec",
            signum == SIGINT ? "interrupted" : "terminated");
    _exit(128 + signum);
}

static void on_sig_timer(uv_timer_t *t)
{
    exec_state *st = t->data;
    leave_on_signal(st, st->sig_num);
}

static void on_our_signal(uv_signal_t *h, int signum)
{
    exec_state *st = h->data;
    const char *name = signum == SIGINT ? "INT" : signum == SIGTERM ? "TERM" : "HUP";
    if (st->ch && st->exec_started && !st->sig_sent && !st->channel_done &&
        shoal_channel_signal(st->ch, name) == SHOAL_OK) {
        st->sig_sent = 1;
        shoal_uv_conn_flush(st->conn);
        if (signum != SIGINT && uv_timer_init(st->loop, &st->sig_timer) == 0) {
            st->sig_timer_open = 1;
            st->sig_num = signum;
            st->sig_timer.data = st;
            uv_timer_start(&st->sig_timer, on_sig_timer, SIG_GRACE_MS, 0);
            uv_unref((uv_handle_t *)&st->sig_timer); /* a command that ends in time ends the run */
        }
        return;
    }
    leave_on_signal(st, signum);
}

static void signals_start(exec_state *st)
{
    static const int nums[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        if (uv_signal_init(st->loop, &st->sigs[i]) != 0)
            break;
        st->sigs[i].data = st;
        st->sigs_open = i + 1;
        uv_signal_start(&st->sigs[i], on_our_signal, nums[i]);
        uv_unref((uv_handle_t *)&st->sigs[i]); /* never keeps the loop alive */
    }
}

static void signals_stop(exec_state *st)
{
    for (int i = 0; i < st->sigs_open; i++)
        uv_close((uv_handle_t *)&st->sigs[i], NULL);
    st->sigs_open = 0;
    if (st->sig_timer_open) {
        st->sig_timer_open = 0;
        uv_close((uv_handle_t *)&st->sig_timer, NULL);
    }
}

/* ---- connection ---- */

static void on_ready(shoal_uv_conn *c, void *ud)
{
    exec_state *st = ud;
    static const shoal_channel_callbacks cbs = {sizeof(shoal_channel_callbacks),
                                                on_ch_open,
                                                on_ch_request,
                                                on_ch_data,
                                                on_ch_eof,
                                                on_ch_exit_status,
                                                on_ch_exit_signal,
                                                on_ch_writable,
                                                on_ch_close};
    /* -W: as ssh, the originator is 127.0.0.1 port 65535. */
    int rc = st->fwd_port ? shoal_channel_open_direct_tcpip(shoal_uv_conn_session(c), st->fwd_host, st->fwd_port,
                                                            "127.0.0.1", 65535, &cbs, st, &st->ch)
                          : shoal_channel_open_session(shoal_uv_conn_session(c), &cbs, st, &st->ch);
    if (!rc && uv_timer_start(&st->open_timer, on_open_timeout, st->open_timeout_ms, 0) == 0)
        st->open_timer_on = 1;
    if (rc) {
        snprintf(st->conn_msg, sizeof(st->conn_msg), "%s: channel: %s", shoal_uv_conn_name(c), shoal_strerror(rc));
        st->conn_err = rc;
        shoal_uv_conn_close(c);
    }
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    exec_state *st = ud;
    (void)c;
    if (err && !st->conn_err) {
        st->conn_err = err;
        snprintf(st->conn_msg, sizeof(st->conn_msg), "%s", message ? message : shoal_strerror(err));
    }
    open_timer_stop(st);
    stdin_close(st);
}

static int on_passphrase(shoal_uv_conn *c, const char *path, char *buf, size_t bufsz, void *ud)
{
    exec_state *st = ud;
    (void)c;
    char prompt[600];
    snprintf(prompt, sizeof(prompt), "Enter passphrase for key '%s': ", path);
    return prompt_secret(prompt, 0, st->batch, buf, bufsz) == 0 ? 0 : SHOAL_ERR_KEY_ENCRYPTED;
}

static int on_password(shoal_uv_conn *c, const char *user, char *buf, size_t bufsz, void *ud)
{
    exec_state *st = ud;
    char prompt[600];
    const char *name = shoal_uv_conn_name(c);
    snprintf(prompt, sizeof(prompt), "%s@%s's password: ", user, name);
    return prompt_secret(prompt, 0, st->batch, buf, bufsz) == 0 ? 0 : SHOAL_ERR_AUTH_FAILED;
}

static int on_kbdint(shoal_uv_conn *c, const shoal_kbdint_request *req, char **responses, void *ud)
{
    exec_state *st = ud;
    (void)c;
    /* The server's texts, escaped: they reach the terminal. */
    char vis[4096];
    if (req->name && *req->name && !st->batch) {
        shoal_strvis(vis, sizeof(vis), req->name, strlen(req->name), SHOAL_VIS_TEXT);
        fprintf(stderr, "%s\n", vis);
    }
    if (req->instruction && *req->instruction && !st->batch) {
        shoal_strvis(vis, sizeof(vis), req->instruction, strlen(req->instruction), SHOAL_VIS_TEXT);
        fprintf(stderr, "%s\n", vis);
    }
    for (unsigned i = 0; i < req->nprompts; i++) {
        char buf[1024];
        if (prompt_secret(shoal_vis(vis, sizeof(vis), req->prompts[i].text), req->prompts[i].echo, st->batch, buf,
                          sizeof(buf)) != 0)
            return SHOAL_ERR_AUTH_FAILED;
        responses[i] = strdup(buf);
        memset(buf, 0, sizeof(buf));
        if (!responses[i])
            return SHOAL_ERR_NOMEM;
    }
    return 0;
}

static void on_banner(shoal_uv_conn *c, const char *text, void *ud)
{
    exec_state *st = ud;
    (void)c;
    if (!st->batch || st->verbose) {
        size_t n = strlen(text);
        char *vis = malloc(n * SHOAL_VIS_MAX_EXPANSION + 1);
        if (vis) {
            shoal_strvis(vis, n * SHOAL_VIS_MAX_EXPANSION + 1, text, n, SHOAL_VIS_TEXT);
            fputs(vis, stderr);
            free(vis);
        }
    }
}

static int on_confirm_hostkey(shoal_uv_conn *c, const char *host, const char *keytype, const char *fingerprint,
                              void *ud)
{
    exec_state *st = ud;
    (void)c;
    if (st->batch)
        return 0;
    char q[1024];
    snprintf(q, sizeof(q),
             "The authenticity of host '%s' can't be established.\n%s key fingerprint is %s.\n"
             "Are you sure you want to continue connecting (yes/no)? ",
             host, keytype, fingerprint);
    return prompt_yes_no(q);
}

static void on_log(shoal_uv_conn *c, int level, const char *message, void *ud)
{
    (void)c;
    (void)ud;
    char vis[4096];
    fprintf(stderr, "%s%s\n", level > 0 ? "debug1: " : "", shoal_vis(vis, sizeof(vis), message));
}

/* ---- signal names ---- */

static int signal_number(const char *name)
{
    static const struct {
        const char *n;
        int v;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},   {"ABRT", SIGABRT},
                {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
                {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"BUS", SIGBUS},   {"TRAP", SIGTRAP}};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!strcmp(name, sigs[i].n))
            return sigs[i].v;
    return 0;
}

/* ---- parse (exec_args.c), prepare, run, cleanup ---- */

/* The connection's settings: -o through the library's resolver, with
 * OpenSSH's defaults, interactive (a person answers passphrases,
 * passwords and unknown host keys through the connection's callbacks).
 * -l and -i were applied as User and IdentityFile; a destination's user@
 * and :port win. 0, or -1 with the error said. */
static int exec_resolve(const exec_args *a, shoal_ssh_resolved **resolved)
{
    char err[600];
    shoal_ssh_resolve_params rp;
    shoal_ssh_resolve_params_init(&rp);
    rp.flags = SHOAL_SSH_RESOLVE_INTERACTIVE;
    rp.user = *a->user ? a->user : NULL;
    rp.port = a->port;
    rp.default_policy = SHOAL_HOSTKEY_ASK; /* "ask" without a terminal or in batch mode: no (on_confirm_hostkey) */
    rp.verbose = a->verbose;
    if (shoal_ssh_resolve(&a->ssh, &rp, resolved, err, sizeof(err))) {
        fprintf(stderr, "shoal: %s\n", err);
        return -1;
    }
    return 0;
}

/* Everything that can fail before the connection starts: the resolved
 * options, the connection, stdin. EXEC_GO_ON, or the exit code (the error
 * said); exec_cleanup frees what was made either way. */
static int exec_prepare(exec_state *st, const exec_args *a)
{
    memset(st, 0, sizeof(*st));
    st->loop = uv_default_loop();
    st->command = a->command;
    st->fwd_host = a->fwd_host;
    st->fwd_port = a->fwd_port;
    st->batch = a->ssh.batch_mode == 1;
    st->verbose = a->verbose;
    signal(SIGPIPE, SIG_IGN);

    if (exec_resolve(a, &st->resolved) != 0)
        return EXIT_CONN_ERROR;
    shoal_uv_options uo = *shoal_ssh_resolved_conn(st->resolved);
    uo.host = a->host;
    st->open_timeout_ms = uo.connect_timeout_ms ? uo.connect_timeout_ms : DEFAULT_OPEN_TIMEOUT_MS;
    uv_timer_init(st->loop, &st->open_timer);
    st->open_timer.data = st;
    st->open_timer_init = 1;

    shoal_uv_callbacks cb = {sizeof(shoal_uv_callbacks), on_ready,  on_closed, on_passphrase,      on_password,
                             on_kbdint, on_banner, on_log,             on_confirm_hostkey,
                             NULL /* on_authenticating: the channel opens in on_ready */};
    int rc = shoal_uv_conn_new(st->loop, &uo, &cb, st, &st->conn);
    if (rc) {
        fprintf(stderr, "shoal: %s\n", shoal_strerror(rc));
        return EXIT_CONN_ERROR;
    }
    if (stdin_init(st, a->no_stdin) != 0) {
        fprintf(stderr, "shoal: out of memory\n");
        return EXIT_CONN_ERROR;
    }
    return EXEC_GO_ON;
}

/* How the command ended, as our exit code, with a line on stderr when it
 * did not end by itself. */
static int exec_exit_code(const exec_state *st)
{
    if (st->have_status)
        return (int)(st->status & 0xff);
    if (st->have_signal) {
        int n = signal_number(st->signame);
        char vname[sizeof(st->signame) * SHOAL_VIS_MAX_EXPANSION], vmsg[sizeof(st->sigmsg) * SHOAL_VIS_MAX_EXPANSION];
        fprintf(stderr, "shoal: %s: remote command killed by signal %s%s%s%s\n", shoal_uv_conn_name(st->conn),
                shoal_vis(vname, sizeof(vname), st->signame), st->core ? " (core dumped)" : "",
                st->sigmsg[0] ? ": " : "", shoal_vis(vmsg, sizeof(vmsg), st->sigmsg));
        return n ? 128 + n : EXIT_CONN_ERROR;
    }
    char vis[sizeof(st->conn_msg) * SHOAL_VIS_MAX_EXPANSION];
    if (st->fwd_port && st->exec_started && st->channel_done && !st->conn_err)
        return 0; /* -W: the forwarded stream ended */
    if (st->conn_err)
        fprintf(stderr, "shoal: %s\n", shoal_vis(vis, sizeof(vis), st->conn_msg));
    else if (st->exec_refused)
        fprintf(stderr, "shoal: %s: session: server refused to execute the command\n", shoal_uv_conn_name(st->conn));
    else
        fprintf(stderr, "shoal: %s: session: closed without an exit status\n", shoal_uv_conn_name(st->conn));
    return EXIT_CONN_ERROR;
}

/* Connects, runs the command to its end; the exit code. */
static int exec_run(exec_state *st)
{
    signals_start(st);
    shoal_uv_conn_start(st->conn);
    uv_run(st->loop, UV_RUN_DEFAULT);
    signals_stop(st);
    return exec_exit_code(st);
}

/* Frees what exec_prepare made (in any state it left) and a. */
static void exec_cleanup(exec_state *st, exec_args *a)
{
    if (st->conn)
        shoal_uv_conn_free(st->conn);
    if (st->open_timer_init) {
        uv_close((uv_handle_t *)&st->open_timer, NULL);
        uv_run(st->loop, UV_RUN_DEFAULT);
        uv_loop_close(st->loop);
    }
    free(st->inbuf);
    shoal_ssh_resolved_free(st->resolved);
    exec_args_free(a);
}

int cmd_exec(int argc, char **argv)
{
    exec_args args;
    int code = exec_parse(argc, argv, &args);
    if (code != EXEC_GO_ON)
        return code;
    exec_state st;
    code = exec_prepare(&st, &args);
    if (code == EXEC_GO_ON)
        code = exec_run(&st);
    exec_cleanup(&st, &args);
    return code;
}
