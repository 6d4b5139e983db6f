/* multiplex: three commands at once on ONE SSH connection, each on its own
 * channel, their output streamed as it arrives (each line prefixed with the
 * command's number), on a libuv loop.
 *
 *   multiplex [-p port] [-l user] [-i key] [-o Option=value]... host [cmd1 cmd2 cmd3]
 *
 * Without commands it runs three that interleave (each prints a few lines
 * with pauses). Exit code: 0 when all three exited 0, 1 otherwise, 255 when
 * the connection failed.
 * Build: cc multiplex.c $(pkg-config --cflags --libs libshoal) -o multiplex */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <shoal/command.h>
#include <shoal/config.h>
#include <shoal/ssh_resolve.h>
#include <shoal/uv.h>

#define N_CMDS 3

typedef struct app app;

typedef struct job {
    app *app;
    int index;
    const char *command;
    shoal_child *child;
    char line[4096]; /* the part of a line not printed yet */
    size_t line_len;
    int done, ok;
} job;

struct app {
    shoal_uv_conn *conn;
    job jobs[N_CMDS];
    int n_done;
    int conn_err;
    char conn_msg[512];
};

/* The -o/-p/-l/-i options as the driver's connection options, through the
 * library's resolver (the same rules as `shoal exec`: defaults from ~/.ssh,
 * the ssh-agent, known_hosts files, StrictHostKeyChecking). */
static shoal_ssh_resolved *resolve(const shoal_ssh_options *o, const char *host, shoal_uv_options *uo)
{
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    shoal_ssh_resolved *r;
    char err[512];
    if (shoal_ssh_resolve(o, &p, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", "multiplex", err);
        return NULL;
    }
    *uo = *shoal_ssh_resolved_conn(r);
    uo->host = host;
    return r;
}

/* Prints whole lines as "[n] text"; keeps a partial line for later. */
static void emit(job *j, FILE *f, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (j->line_len < sizeof(j->line) - 1)
            j->line[j->line_len++] = (char)data[i];
        if (data[i] == '\n' || j->line_len == sizeof(j->line) - 1) {
            fprintf(f, "[%d] %.*s", j->index + 1, (int)j->line_len, j->line);
            if (j->line[j->line_len - 1] != '\n')
                fputc('\n', f);
            fflush(f);
            j->line_len = 0;
        }
    }
}

static void on_stdout(shoal_child *ch, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    emit(ud, stdout, data, len);
}

static void on_stderr(shoal_child *ch, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    emit(ud, stderr, data, len);
}

static void on_exit_cb(shoal_child *ch, const shoal_exit *ex, void *ud)
{
    job *j = ud;
    app *a = j->app;
    (void)ch;
    if (j->line_len) /* a last line without newline */
        emit(j, stdout, (const uint8_t *)"\n", 1);
    switch (ex->kind) {
    case SHOAL_EXIT_STATUS:
        printf("[%d] exit status %d\n", j->index + 1, ex->status);
        j->ok = ex->status == 0;
        break;
    case SHOAL_EXIT_SIGNAL:
        printf("[%d] killed by signal %s\n", j->index + 1, ex->signal);
        break;
    case SHOAL_EXIT_NONE:
        printf("[%d] no exit status\n", j->index + 1);
        break;
    default:
        printf("[%d] error: %s\n", j->index + 1, ex->message ? ex->message : shoal_strerror(ex->err));
        break;
    }
    fflush(stdout);
    j->done = 1;
    if (++a->n_done == N_CMDS)
        shoal_uv_conn_close(a->conn); /* all done: an orderly disconnect */
}

/* Logged in: open the three channels at once on this one connection. */
static void on_ready(shoal_uv_conn *c, void *ud)
{
    app *a = ud;
    static const shoal_child_callbacks cb = {sizeof(shoal_child_callbacks), on_stdout, on_stderr, on_exit_cb};
    for (int i = 0; i < N_CMDS; i++) {
        job *j = &a->jobs[i];
        int rc = shoal_child_spawn(c, j->command, NULL, &cb, j, &j->child);
        if (rc) {
            fprintf(stderr, "multiplex: [%d] %s: %s\n", i + 1, j->command, shoal_strerror(rc));
            j->done = 1;
            if (++a->n_done == N_CMDS)
                shoal_uv_conn_close(c);
            continue;
        }
        shoal_child_close_stdin(j->child); /* nothing to send: EOF at once */
    }
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    app *a = ud;
    (void)c;
    a->conn_err = err;
    if (err)
        snprintf(a->conn_msg, sizeof(a->conn_msg), "%s", message ? message : shoal_strerror(err));
}

int main(int argc, char **argv)
{
    static const char *const demo[N_CMDS] = {
        "for i in 1 2 3; do echo \"one $i\"; sleep 0.2; done",
        "sleep 0.1; for i in 1 2 3; do echo \"two $i\"; sleep 0.2; done",
        "echo three to stderr >&2; sleep 0.3; echo three done",
    };
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    char err[512], line[600];
    int c;
    while ((c = getopt(argc, argv, "+p:l:i:o:")) != -1) {
        const char *kw = c == 'p' ? "Port" : c == 'l' ? "User" : c == 'i' ? "IdentityFile" : NULL;
        if (c == '?')
            return 2;
        snprintf(line, sizeof(line), "%s%s%s", kw ? kw : "", kw ? "=" : "", optarg);
        if (shoal_ssh_options_apply(&o, line, err, sizeof(err)) != 0) {
            fprintf(stderr, "multiplex: %s\n", err);
            return 2;
        }
    }
    int nargs = argc - optind;
    if (nargs != 1 && nargs != 1 + N_CMDS) {
        fprintf(stderr, "usage: multiplex [-p port] [-l user] [-i key] [-o Option=value]... host [cmd1 cmd2 cmd3]\n");
        return 2;
    }
    static app a;
    for (int i = 0; i < N_CMDS; i++) {
        a.jobs[i].app = &a;
        a.jobs[i].index = i;
        a.jobs[i].command = nargs == 1 ? demo[i] : argv[optind + 1 + i];
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    shoal_uv_options uo;
    shoal_ssh_resolved *resolved = resolve(&o, argv[optind], &uo);
    if (!resolved)
        return 255;
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_ready;
    cb.on_closed = on_closed;
    int rc = shoal_uv_conn_new(&loop, &uo, &cb, &a, &a.conn);
    if (rc == 0)
        rc = shoal_uv_conn_start(a.conn);
    if (rc) {
        fprintf(stderr, "multiplex: %s\n", shoal_strerror(rc));
        return 255;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* until the connection is closed */

    int all_ok = a.n_done == N_CMDS;
    for (int i = 0; i < N_CMDS; i++) {
        all_ok = all_ok && a.jobs[i].ok;
        shoal_child_free(a.jobs[i].child); /* NULL is fine */
    }
    shoal_uv_conn_free(a.conn);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the handles close */
    uv_loop_close(&loop);
    shoal_ssh_resolved_free(resolved);
    shoal_ssh_options_free(&o);
    if (a.conn_err && a.n_done < N_CMDS) {
        fprintf(stderr, "multiplex: %s\n", a.conn_msg);
        return 255;
    }
    return all_ok ? 0 : 1;
}
