/* Local processes behind server channels: see include/shoal/proc.h.
 *
 * We fork and exec ourselves rather than through uv_spawn because a pty
 * session needs setsid() + TIOCSCTTY in the child and a user switch needs
 * setgroups() with the user's groups; both happen between fork and exec,
 * where only async-signal-safe calls are allowed, so everything (groups,
 * argv, env) is prepared before the fork. The child is reaped with
 * waitpid() on its own pid (leaving libuv's own children alone) when its
 * pidfd becomes readable (Linux 5.3+). A SIGCHLD watcher per process is the
 * fallback only: libuv writes one message per watcher into its signal pipe
 * for every SIGCHLD, so with hundreds of processes that pipe fills, messages
 * are dropped and children would stay unreaped. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "abi.h"
#include "shoal/proc.h"
#include "wire/buf.h"

#define MAX_GROUPS 256
#define PEND_MAX (64u * 1024u)

enum { S_OUT = 0, S_ERR = 1 };

typedef struct shoal_proc shoal_proc_t;

typedef struct stream {
    uv_pipe_t pipe;    /* data points back at this stream */
    shoal_proc_t *p;
    int idx;
    int open;     /* handle initialised and not closing */
    int reading;
    int eof;      /* no more data from the process */
    uint8_t *pend; /* read but not yet accepted by the channel */
    size_t pend_len, pend_off;
} stream;

struct shoal_proc {
    shoal_uv_sconn *conn;
    shoal_channel *ch;
    uv_loop_t *loop;
    pid_t pid;
    int exited, wstatus;
    int pty;
    stream out[2];     /* stdout (or the pty master), stderr */
    uv_pipe_t in;      /* the process's stdin (not used with a pty: out[0] is both ways) */
    int in_open;
    size_t in_inflight; /* bytes written to stdin, not yet completed */
    int in_eof_wanted;
    uv_signal_t sigchld;  /* fallback without pidfd */
    int sig_open;
    uv_poll_t pidpoll;    /* readable when the process has exited */
    int pidfd;
    int poll_open;
    int finished;       /* exit reported to the channel */
    int handles;        /* open libuv handles */
};

static void proc_check_done(shoal_proc *p);

/* ---- freeing ---- */

static void on_handle_closed(uv_handle_t *h)
{
    shoal_proc *p = h->data;
    if (--p->handles == 0) {
        for (int i = 0; i < 2; i++)
            free(p->out[i].pend);
        free(p);
    }
}

static void close_handle(shoal_proc *p, uv_handle_t *h, int *flag)
{
    if (*flag) {
        *flag = 0;
        h->data = p;
        uv_close(h, on_handle_closed);
    }
}

/* Everything ends: the process was reaped and the channel is done with. */
static void maybe_free(shoal_proc *p)
{
    if (!p->exited || p->ch)
        return;
    for (int i = 0; i < 2; i++)
        close_handle(p, (uv_handle_t *)&p->out[i].pipe, &p->out[i].open);
    close_handle(p, (uv_handle_t *)&p->in, &p->in_open);
    close_handle(p, (uv_handle_t *)&p->sigchld, &p->sig_open);
    if (p->poll_open) {
        close_handle(p, (uv_handle_t *)&p->pidpoll, &p->poll_open);
        close(p->pidfd);
        p->pidfd = -1;
    }
}

/* ---- process -> channel ---- */

static void stream_start(shoal_proc *p, int i);

/* Sends pending output; returns 1 when all of it went. */
static int push_pending(shoal_proc *p, int i)
{
    stream *st = &p->out[i];
    while (st->pend_len > 0 && p->ch) {
        size_t w = 0;
        int rc = i == S_ERR ? shoal_channel_write_stderr(p->ch, st->pend + st->pend_off, st->pend_len, &w)
                            : shoal_channel_write(p->ch, st->pend + st->pend_off, st->pend_len, &w);
        if (rc || w == 0)
            break;
        st->pend_off += w;
        st->pend_len -= w;
    }
    if (st->pend_len == 0)
        st->pend_off = 0;
    return st->pend_len == 0;
}

static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    stream *st = h->data;
    (void)suggested;
    if (!st->pend)
        st->pend = malloc(PEND_MAX);
    *buf = uv_buf_init((char *)st->pend, st->pend ? PEND_MAX : 0);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void stream_start(shoal_proc *p, int i)
{
    stream *st = &p->out[i];
    if (!st->open || st->reading || st->eof || st->pend_len)
        return;
    st->reading = 1;
    uv_read_start((uv_stream_t *)&st->pipe, on_out_alloc, read_cb);
}

static void stream_stop(stream *st)
{
    if (st->reading) {
        uv_read_stop((uv_stream_t *)&st->pipe);
        st->reading = 0;
    }
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    stream *st = s->data;
    shoal_proc *p = st->p;
    int i = st->idx;
    (void)buf;
    if (n == 0)
        return;
    if (n < 0) {
        /* EOF, or EIO on a pty master once the slave side is closed. */
        stream_stop(st);
        st->eof = 1;
        proc_check_done(p);
        return;
    }
    st->pend_off = 0;
    st->pend_len = (size_t)n;
    if (!p->ch) {
        st->pend_len = 0; /* the channel is gone: drain and drop */
        return;
    }
    if (!push_pending(p, i))
        stream_stop(st); /* window full: on_writable resumes */
    shoal_uv_sconn_flush(p->conn);
}

/* ---- channel -> process ---- */

typedef struct in_write {
    uv_write_t req;
    shoal_proc *p;
    size_t len;
    uint8_t data[];
} in_write;

static void close_stdin(shoal_proc *p)
{
    if (p->pty) {
        /* A pty has no separate stdin to close; EOF is the terminal's ^D,
         * which the client sends itself when it wants one. */
        return;
    }
    close_handle(p, (uv_handle_t *)&p->in, &p->in_open);
}

static void on_in_write(uv_write_t *req, int status)
{
    in_write *w = (in_write *)req;
    shoal_proc *p = w->p;
    p->in_inflight -= w->len;
    /* Consumed by the process: the client may send as much again. */
    if (p->ch && status == 0)
        shoal_channel_consume(p->ch, w->len);
    free(w);
    if (p->in_eof_wanted && p->in_inflight == 0)
        close_stdin(p);
    if (p->ch)
        shoal_uv_sconn_flush(p->conn);
}

static void ch_data(shoal_channel *ch, int stream_no, const uint8_t *d, size_t n, void *ud)
{
    shoal_proc *p = ud;
    (void)stream_no;
    uv_stream_t *target = p->pty ? (uv_stream_t *)&p->out[S_OUT].pipe : (uv_stream_t *)&p->in;
    int open = p->pty ? p->out[S_OUT].open : p->in_open;
    if (!open) {
        shoal_channel_consume(ch, n); /* the process closed its input: drop */
        return;
    }
    in_write *w = malloc(sizeof(*w) + n);
    if (!w) {
        shoal_channel_consume(ch, n);
        return;
    }
    w->p = p;
    w->len = n;
    memcpy(w->data, d, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    p->in_inflight += n;
    if (uv_write(&w->req, target, &b, 1, on_in_write) != 0) {
        p->in_inflight -= n;
        free(w);
        shoal_channel_consume(ch, n);
    }
}

static void ch_eof(shoal_channel *ch, void *ud)
{
    shoal_proc *p = ud;
    (void)ch;
    p->in_eof_wanted = 1;
    if (p->in_inflight == 0)
        close_stdin(p);
}

static void ch_writable(shoal_channel *ch, void *ud)
{
    shoal_proc *p = ud;
    (void)ch;
    for (int i = 0; i < 2; i++)
        if (push_pending(p, i))
            stream_start(p, i);
    proc_check_done(p);
    shoal_uv_sconn_flush(p->conn);
}

static int signal_from_name(const char *name)
{
    static const struct {
        const char *n;
        int v;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
                {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!strcmp(name, sigs[i].n))
            return sigs[i].v;
    return 0;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "HUP";
    case SIGINT:
        return "INT";
    case SIGQUIT:
        return "QUIT";
    case SIGILL:
        return "ILL";
    case SIGABRT:
        return "ABRT";
    case SIGFPE:
        return "FPE";
    case SIGKILL:
        return "KILL";
    case SIGSEGV:
        return "SEGV";
    case SIGPIPE:
        return "PIPE";
    case SIGALRM:
        return "ALRM";
    case SIGTERM:
        return "TERM";
    case SIGUSR1:
        return "USR1";
    case SIGUSR2:
        return "USR2";
    case SIGBUS:
        return "BUS";
    case SIGTRAP:
        return "TRAP";
    }
    return NULL;
}

static int ch_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    shoal_proc *p = ud;
    (void)ch;
    if (!strcmp(req->type, "signal")) {
        int sig = signal_from_name(req->signal);
        if (!sig || p->exited)
            return 0;
        /* The process leads its own session: signal its whole group. */
        return kill(-p->pid, sig) == 0 || kill(p->pid, sig) == 0;
    }
    if (!strcmp(req->type, "window-change") && p->pty && p->out[S_OUT].open) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&p->out[S_OUT].pipe, &fd) != 0)
            return 0;
        struct winsize ws = {(unsigned short)req->rows, (unsigned short)req->cols, (unsigned short)req->width_px,
                             (unsigned short)req->height_px};
        return ioctl(fd, TIOCSWINSZ, &ws) == 0;
    }
    return 0; /* exec/shell/pty-req on a running channel: refused */
}

static void ch_close(shoal_channel *ch, void *ud)
{
    shoal_proc *p = ud;
    (void)ch;
    p->ch = NULL;
    if (!p->exited) {
        /* The client went away first: end the process (SIGHUP for a
         * terminal session, as when a terminal closes). */
        kill(-p->pid, p->pty ? SIGHUP : SIGTERM);
    }
    for (int i = 0; i < 2; i++) {
        p->out[i].pend_len = 0;
        stream_start(p, i); /* keep draining so the process does not block */
    }
    maybe_free(p);
}

static const shoal_server_channel_callbacks PROC_CBS = {
    sizeof(shoal_server_channel_callbacks), ch_request, ch_data, ch_eof, ch_writable, ch_close};

/* ---- exit ---- */

static void proc_check_done(shoal_proc *p)
{
    if (p->finished || !p->exited || !p->ch)
        return;
    for (int i = 0; i < 2; i++)
        if (p->out[i].open && (!p->out[i].eof || p->out[i].pend_len))
            return; /* output still coming or waiting for window */
    p->finished = 1;
    if (WIFSIGNALED(p->wstatus)) {
        const char *name = signal_name(WTERMSIG(p->wstatus));
        if (name)
            shoal_channel_exit_signal(p->ch, name, WCOREDUMP(p->wstatus) != 0, "");
        else
            shoal_channel_exit_status(p->ch, 128 + (uint32_t)WTERMSIG(p->wstatus));
    } else {
        shoal_channel_exit_status(p->ch, (uint32_t)WEXITSTATUS(p->wstatus));
    }
    shoal_channel_send_eof(p->ch);
    shoal_channel_close(p->ch);
    shoal_uv_sconn_flush(p->conn);
}

static void reap(shoal_proc *p)
{
    if (p->exited)
        return;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r != p->pid)
        return;
    p->exited = 1;
    p->wstatus = st;
    if (p->sig_open)
        uv_signal_stop(&p->sigchld);
    if (p->poll_open)
        uv_poll_stop(&p->pidpoll);
    if (p->pty) {
        /* Nothing else may hold the slave side open: once the process is
         * gone, pending output is read until EIO. */
        stream_start(p, S_OUT);
    }
    proc_check_done(p);
    maybe_free(p);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    reap(h->data);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    reap(h->data);
}

/* ---- spawning ---- */

static int open_stream(shoal_proc *p, int i, int fd)
{
    stream *st = &p->out[i];
    st->p = p;
    st->idx = i;
    if (uv_pipe_init(p->loop, &st->pipe, 0) != 0)
        return -1;
    p->handles++;
    st->open = 1;
    st->pipe.data = st;
    if (uv_pipe_open(&st->pipe, fd) != 0)
        return -1;
    return 0;
}

/* Applies the few RFC 4254 terminal modes that matter to most programs. */
static void apply_modes(int fd, const uint8_t *m, size_t n)
{
    struct termios t;
    if (!m || tcgetattr(fd, &t) != 0)
        return;
    size_t i = 0;
    while (i < n && m[i] != 0 && m[i] < 160) {
        if (i + 5 > n)
            break;
        uint8_t op = m[i];
        uint32_t v = ((uint32_t)m[i + 1] << 24) | ((uint32_t)m[i + 2] << 16) | ((uint32_t)m[i + 3] << 8) | m[i + 4];
        i += 5;
        switch (op) {
        case 1: /* VINTR */
            t.c_cc[VINTR] = (cc_t)v;
            break;
        case 3: /* VERASE */
            t.c_cc[VERASE] = (cc_t)v;
            break;
        case 5: /* VEOF */
            t.c_cc[VEOF] = (cc_t)v;
            break;
        case 53: /* ECHO */
            t.c_lflag = v ? (t.c_lflag | ECHO) : (t.c_lflag & ~(tcflag_t)ECHO);
            break;
        case 51: /* ICANON */
            t.c_lflag = v ? (t.c_lflag | ICANON) : (t.c_lflag & ~(tcflag_t)ICANON);
            break;
        case 50: /* ISIG */
            t.c_lflag = v ? (t.c_lflag | ISIG) : (t.c_lflag & ~(tcflag_t)ISIG);
            break;
        default:
            break;
        }
    }
    tcsetattr(fd, TCSANOW, &t);
}

/* Closes every descriptor above 2 except keep (async-signal-safe: raw
 * system calls only). limit bounds the fallback loop without close_range. */
static void close_all_but(int keep, int limit)
{
#ifdef SYS_close_range
    int ok = 1;
    if (keep > 3)
        ok = syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u) == 0;
    if (ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
        return;
#endif
    for (int fd = 3; fd < limit; fd++)
        if (fd != keep)
            close(fd);
}

static void child_fail(int fd, int err)
{
    ssize_t w = write(fd, &err, sizeof(err));
    (void)w;
    _exit(127);
}

int shoal_proc_spawn(shoal_uv_sconn *conn, shoal_channel *ch, const shoal_proc_options *opt, shoal_proc **out,
                     char *err, size_t errsz)
{
    *out = NULL;
    shoal_proc_options o;
    if (SHOAL_COPY_IN(&o, opt) || !o.argv || !o.argv[0]) {
        snprintf(err, errsz, "no program to run");
        return SHOAL_ERR_INVALID_ARG;
    }
    opt = &o;
    gid_t groups[MAX_GROUPS];
    int ngroups = 0;
    /* For the child's fallback descriptor sweep (no getrlimit after fork). */
    long open_max = sysconf(_SC_OPEN_MAX);
    int fd_limit = open_max > 0 && open_max < 65536 ? (int)open_max : 65536;
    if (opt->switch_user) {
        ngroups = MAX_GROUPS;
        if (getgrouplist(opt->user ? opt->user : "", opt->gid, groups, &ngroups) < 0) {
            ngroups = 1;
            groups[0] = opt->gid;
        }
    }
    int in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1}, err_fds[2] = {-1, -1}, st_fds[2] = {-1, -1};
    int master = -1, slave = -1;
    if (pipe2(st_fds, O_CLOEXEC) != 0)
        goto fail_errno;
    if (opt->pty) {
        struct winsize ws = {(unsigned short)(opt->rows ? opt->rows : 24), (unsigned short)(opt->cols ? opt->cols : 80),
                             0, 0};
        if (openpty(&master, &slave, NULL, NULL, &ws) != 0)
            goto fail_errno;
        fcntl(master, F_SETFD, FD_CLOEXEC);
        fcntl(slave, F_SETFD, FD_CLOEXEC);
        apply_modes(slave, opt->pty_modes, opt->pty_modes_len);
    } else if (pipe2(in_fds, O_CLOEXEC) != 0 || pipe2(out_fds, O_CLOEXEC) != 0 || pipe2(err_fds, O_CLOEXEC) != 0) {
        goto fail_errno;
    }
    pid_t pid = fork();
    if (pid < 0)
        goto fail_errno;
    if (pid == 0) {
        /* Child: async-signal-safe calls only until exec. */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP)
                signal(s, SIG_DFL);
        if (setsid() < 0)
            child_fail(st_fds[1], errno);
        int fin = opt->pty ? slave : in_fds[0], fout = opt->pty ? slave : out_fds[1],
            ferr = opt->pty ? slave : err_fds[1];
        if (opt->pty && ioctl(slave, TIOCSCTTY, 0) != 0)
            child_fail(st_fds[1], errno);
        if (dup2(fin, 0) < 0 || dup2(fout, 1) < 0 || dup2(ferr, 2) < 0)
            child_fail(st_fds[1], errno);
        /* Nothing but stdio reaches the program: every other descriptor
         * of the server (inherited from its parent, or opened by a library
         * without close-on-exec) is closed here; the status pipe closes
         * itself at exec. */
        close_all_but(st_fds[1], fd_limit);
        if (opt->switch_user) {
            if (setgroups((size_t)ngroups, groups) != 0 || setgid(opt->gid) != 0 || setuid(opt->uid) != 0)
                child_fail(st_fds[1], errno);
            /* Dropping root must be irreversible. */
            if (opt->uid != 0 && setuid(0) == 0)
                child_fail(st_fds[1], EPERM);
        }
        if (opt->cwd && chdir(opt->cwd) != 0 && chdir("/") != 0)
            child_fail(st_fds[1], errno);
        static char *const empty_env[] = {NULL};
        execve(opt->program ? opt->program : opt->argv[0], (char *const *)opt->argv,
               opt->env ? (char *const *)opt->env : empty_env);
        child_fail(st_fds[1], errno);
    }
    /* Parent. */
    close(st_fds[1]);
    st_fds[1] = -1;
    int child_errno = 0;
    ssize_t r;
    do
        r = read(st_fds[0], &child_errno, sizeof(child_errno));
    while (r < 0 && errno == EINTR);
    close(st_fds[0]);
    st_fds[0] = -1;
    if (opt->pty)
        close(slave);
    else {
        close(in_fds[0]);
        close(out_fds[1]);
        close(err_fds[1]);
    }
    if (r == (ssize_t)sizeof(child_errno)) {
        int st;
        waitpid(pid, &st, 0);
        snprintf(err, errsz, "cannot run %s: %s", opt->program ? opt->program : opt->argv[0], strerror(child_errno));
        if (opt->pty)
            close(master);
        else {
            close(in_fds[1]);
            close(out_fds[0]);
            close(err_fds[0]);
        }
        return SHOAL_ERR_IO;
    }

    shoal_proc *p = calloc(1, sizeof(*p));
    if (!p) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(err, errsz, "out of memory");
        return SHOAL_ERR_NOMEM;
    }
    p->conn = conn;
    p->ch = ch;
    p->loop = shoal_uv_server_loop(shoal_uv_sconn_server(conn));
    p->pid = pid;
    p->pty = opt->pty;
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (p->pidfd >= 0 && uv_poll_init(p->loop, &p->pidpoll, p->pidfd) == 0) {
        p->pidpoll.data = p;
        p->poll_open = 1;
        p->handles++;
    } else {
        if (p->pidfd >= 0)
            close(p->pidfd);
        p->pidfd = -1;
        uv_signal_init(p->loop, &p->sigchld);
        p->sigchld.data = p;
        p->sig_open = 1;
        p->handles++;
    }
    if (opt->pty) {
        open_stream(p, S_OUT, master);
    } else {
        open_stream(p, S_OUT, out_fds[0]);
        open_stream(p, S_ERR, err_fds[0]);
        uv_pipe_init(p->loop, &p->in, 0);
        p->in.data = p;
        p->in_open = 1;
        p->handles++;
        uv_pipe_open(&p->in, in_fds[1]);
    }
    shoal_channel_set_server_callbacks(ch, &PROC_CBS, p);
    shoal_channel_set_manual_window(ch, 1);
    if (p->poll_open)
        uv_poll_start(&p->pidpoll, UV_READABLE, on_pidfd);
    else
        uv_signal_start(&p->sigchld, on_sigchld, SIGCHLD);
    /* It may have exited before the watcher was in place. */
    reap(p);
    for (int i = 0; i < 2; i++)
        stream_start(p, i);
    *out = p;
    return SHOAL_OK;

fail_errno:
    snprintf(err, errsz, "cannot start %s: %s", opt->program ? opt->program : opt->argv[0], strerror(errno));
    int fds[] = {in_fds[0], in_fds[1], out_fds[0], out_fds[1], err_fds[0], err_fds[1], st_fds[0], st_fds[1],
                 master,    slave};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return SHOAL_ERR_IO;
}

pid_t shoal_proc_pid(const shoal_proc *p)
{
    return p->pid;
}
