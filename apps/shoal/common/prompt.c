/* Asking the user for secrets: SSH_ASKPASS (as OpenSSH uses it) or the
 * controlling terminal with echo off. Never stdin: it belongs to the remote
 * command. */
#include "prompt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int run_askpass(const char *prog, const char *prompt, char *buf, size_t bufsz)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(127);
        execlp(prog, prog, prompt, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], buf + n, bufsz - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= bufsz - 1)
            break;
    }
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        memset(buf, 0, bufsz);
        return -1;
    }
    return 0;
}

static int read_tty(const char *prompt, int echo, char *buf, size_t bufsz)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct termios old, t;
    int have_termios = tcgetattr(fd, &old) == 0;
    if (have_termios && !echo) {
        t = old;
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        tcsetattr(fd, TCSAFLUSH, &t);
    }
    ssize_t w = write(fd, prompt, strlen(prompt));
    (void)w;
    size_t n = 0;
    int ok = 0;
    while (n + 1 < bufsz) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (c == '\n' || c == '\r') {
            ok = 1;
            break;
        }
        buf[n++] = c;
    }
    buf[n] = 0;
    if (have_termios && !echo) {
        tcsetattr(fd, TCSAFLUSH, &old);
        w = write(fd, "\n", 1);
        (void)w;
    }
    close(fd);
    return ok ? 0 : -1;
}

int prompt_secret(const char *prompt, int echo, int batch, char *buf, size_t bufsz)
{
    const char *askpass = getenv("SSH_ASKPASS");
    const char *require = getenv("SSH_ASKPASS_REQUIRE");
    if (bufsz == 0)
        return -1;
    buf[0] = 0;
    /* BatchMode means no questions at all, askpass included (as OpenSSH). */
    if (batch)
        return -1;
    if (require && strcmp(require, "never") == 0)
        askpass = NULL;
    int force = require && strcmp(require, "force") == 0;
    if (askpass && *askpass && (force || (!isatty(STDIN_FILENO) && getenv("DISPLAY"))))
        return run_askpass(askpass, prompt, buf, bufsz);
    return read_tty(prompt, echo, buf, bufsz);
}

int prompt_yes_no(const char *question)
{
    char ans[16];
    for (int i = 0; i < 3; i++) {
        if (read_tty(question, 1, ans, sizeof(ans)) != 0)
            return 0;
        if (!strcmp(ans, "yes"))
            return 1;
        if (!strcmp(ans, "no"))
            return 0;
        question = "Please type 'yes' or 'no': ";
    }
    return 0;
}
