/* shoal serve: graceful restart on SIGHUP.
 *
 * The running server re-executes itself (same program, same arguments)
 * with its listening sockets inherited: SHOAL_INHERIT_FDS lists their
 * numbers and SHOAL_READY_FD names a pipe on which the new process says
 * "ready" once it listens. Until then the old process keeps accepting, so
 * a new process that fails to start (a broken configuration) changes
 * nothing. Once the new one is ready the old one stops accepting and exits
 * when its last connection ends. The sockets never close, so no connection
 * attempt is refused during the switch: the kernel queues them for
 * whichever process accepts next. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serve_restart.h"

#define MAX_FDS 32

static char **saved_argv;
static int restarting, draining;
static uv_pipe_t ready_pipe;
static uv_timer_t drain_timer;
static shoal_serve *g_srv;

void serve_restart_init(char **argv)
{
    saved_argv = argv;
}

static void set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

void serve_restart_cloexec_inherited(void)
{
#ifdef SYS_close_range
    /* Linux 5.11+: one call. */
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
        return;
#endif
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long fd = strtol(e->d_name, &end, 10);
            if (*end == 0 && end != e->d_name && fd > 2 && fd != self && fd < 1048576)
                set_cloexec((int)fd);
        }
        closedir(d);
        return;
    }
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    for (long fd = 3; fd < max && fd < 1048576; fd++)
        set_cloexec((int)fd);
}

unsigned serve_restart_inherited(int *fds, unsigned max)
{
    const char *s = getenv("SHOAL_INHERIT_FDS");
    unsigned n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 3 || v > 65535)
            break;
        fds[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    unsetenv("SHOAL_INHERIT_FDS");
    return n;
}

void serve_restart_ready(void)
{
    const char *s = getenv("SHOAL_READY_FD");
    if (!s)
        return;
    int fd = atoi(s);
    unsetenv("SHOAL_READY_FD");
    if (fd > 2) {
        ssize_t w = write(fd, "1", 1);
        (void)w;
        close(fd);
    }
}

static void on_drain_tick(uv_timer_t *t)
{
    shoal_serve *srv = t->data;
    shoal_uv_server *us = shoal_serve_uv_server(srv);
    if (us && shoal_uv_server_connections(us) == 0) {
        shoal_serve_log(srv, 0, "restart: last connection finished; old process exits");
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        shoal_serve_close(srv);
        uv_stop(t->loop);
    }
}

static void on_ready_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    static char c[8];
    (void)h;
    (void)sz;
    *b = uv_buf_init(c, sizeof(c));
}

static void on_ready_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    shoal_serve *srv = g_srv;
    shoal_uv_server *us = shoal_serve_uv_server(srv);
    (void)b;
    if (n == 0)
        return;
    uv_read_stop(st);
    uv_close((uv_handle_t *)st, NULL);
    restarting = 0;
    if (n < 0 || !us) {
        shoal_serve_log(srv, 0, "restart: the new process did not start; this one goes on serving");
        return;
    }
    shoal_serve_log(srv, 0, "restart: new process is listening; no longer accepting here (%u connection%s left)",
                    shoal_uv_server_connections(us), shoal_uv_server_connections(us) == 1 ? "" : "s");
    shoal_uv_server_stop(us);
    draining = 1;
    uv_timer_init(shoal_serve_loop(srv), &drain_timer);
    drain_timer.data = srv;
    uv_timer_start(&drain_timer, on_drain_tick, 0, 200);
}

int serve_restart_begin(shoal_serve *srv)
{
    shoal_uv_server *us = shoal_serve_uv_server(srv);
    if (restarting || draining || !us || !saved_argv)
        return -1;
    int fds[MAX_FDS];
    unsigned n = shoal_uv_server_fds(us, fds, MAX_FDS);
    if (!n)
        return -1;
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) != 0)
        return -1;
    char list[MAX_FDS * 8] = "", num[16];
    for (unsigned i = 0; i < n; i++) {
        snprintf(num, sizeof(num), "%s%d", i ? "," : "", fds[i]);
        strcat(list, num);
    }
    snprintf(num, sizeof(num), "%d", rp[1]);
    pid_t pid = fork();
    if (pid < 0) {
        close(rp[0]);
        close(rp[1]);
        return -1;
    }
    if (pid == 0) {
        /* Child: keep the listeners and the ready pipe across exec. */
        for (unsigned i = 0; i < n; i++)
            fcntl(fds[i], F_SETFD, 0);
        fcntl(rp[1], F_SETFD, 0);
        setenv("SHOAL_INHERIT_FDS", list, 1);
        setenv("SHOAL_READY_FD", num, 1);
        execv("/proc/self/exe", saved_argv);
        _exit(127);
    }
    close(rp[1]);
    restarting = 1;
    g_srv = srv;
    uv_loop_t *loop = shoal_serve_loop(srv);
    uv_pipe_init(loop, &ready_pipe, 0);
    uv_pipe_open(&ready_pipe, rp[0]);
    uv_read_start((uv_stream_t *)&ready_pipe, on_ready_alloc, on_ready_read);
    shoal_serve_log(srv, 0, "restart: started new process %d with %u listening socket%s", (int)pid, n, n == 1 ? "" : "s");
    return 0;
}
