/* Uploads one local file over SFTP with the put API (driven by
 * tests/interop/sftp_upload.sh):
 *
 *   sftp_put HOST PORT USER IDENTITY KNOWN_HOSTS TARGET LOCAL [MODE]
 *
 * MODE is octal (default 0644). Host keys: accept-new. Exits 0 when the
 * file is in place, 1 with "sftp_put: <message>" on stderr otherwise.
 * Reads the file in 64 KiB pieces and offers each piece until the upload
 * took all of it, as a fan-out runner does. With SFTP_PUT_ABORT_AFTER=N the
 * upload is aborted once N bytes were taken (to test cleanup). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/sftp.h"
#include "shoal/uv.h"

typedef struct job {
    shoal_uv_conn *conn;
    shoal_sftp *sf;
    shoal_sftp_put *put;
    FILE *in;
    const char *target;
    uint32_t mode;
    uint8_t buf[65536];
    size_t len, off;
    int eof;
    int finished;
    long long abort_after;
    uint64_t taken;
    int done;
    int err;
    char msg[1024];
} job;

static void fail(job *j, int err, const char *message)
{
    if (j->err)
        return;
    j->err = err ? err : SHOAL_ERR_IO;
    snprintf(j->msg, sizeof(j->msg), "%s", message ? message : shoal_strerror(err));
}

static void finish_all(job *j)
{
    if (j->sf)
        shoal_sftp_close(j->sf);
    else
        shoal_uv_conn_close(j->conn);
}

static void on_put_writable(shoal_sftp_put *p, void *ud)
{
    job *j = ud;
    for (;;) {
        if (j->off == j->len && !j->eof) {
            j->len = fread(j->buf, 1, sizeof(j->buf), j->in);
            j->off = 0;
            if (j->len < sizeof(j->buf)) {
                if (ferror(j->in)) {
                    fail(j, SHOAL_ERR_IO, strerror(errno));
                    shoal_sftp_put_abort(p);
                    return;
                }
                j->eof = 1;
            }
        }
        if (j->off == j->len) {
            if (j->eof && !j->finished) {
                j->finished = 1;
                int rc = shoal_sftp_put_finish(p);
                if (rc)
                    fprintf(stderr, "sftp_put: finish: %s\n", shoal_strerror(rc));
            }
            return;
        }
        size_t taken = 0;
        int rc = shoal_sftp_put_write(p, j->buf + j->off, j->len - j->off, &taken);
        if (rc)
            return; /* on_done follows */
        j->off += taken;
        j->taken += taken;
        if (j->abort_after >= 0 && j->taken >= (uint64_t)j->abort_after) {
            shoal_sftp_put_abort(p);
            return;
        }
        if (taken == 0)
            return; /* on_writable again when there is room */
    }
}

static void on_put_done(shoal_sftp_put *p, int err, const char *message, void *ud)
{
    job *j = ud;
    (void)p;
    j->put = NULL;
    j->done = 1;
    if (err)
        fail(j, err, message);
    finish_all(j);
}

static void on_sftp_log(shoal_sftp *sf, int level, const char *message, void *ud)
{
    (void)sf;
    (void)ud;
    if (level <= 1)
        fprintf(stderr, "sftp_put: log: %s\n", message);
}

static void on_sftp_ready(shoal_sftp *sf, int err, const char *message, void *ud)
{
    job *j = ud;
    if (err) {
        fail(j, err, message);
        return; /* on_closed follows */
    }
    static const shoal_sftp_put_callbacks pcb = {sizeof(shoal_sftp_put_callbacks), on_put_writable, on_put_done, NULL};
    shoal_sftp_put_options opt = {.size = sizeof(shoal_sftp_put_options), .fsync = 1};
    int rc = shoal_sftp_put_begin_ex(sf, j->target, j->mode, &opt, &pcb, j, &j->put);
    if (rc) {
        fail(j, rc, "cannot start the upload");
        shoal_sftp_close(sf);
    }
}

static void on_sftp_closed(shoal_sftp *sf, void *ud)
{
    job *j = ud;
    (void)sf;
    j->sf = NULL;
    if (!j->done)
        fail(j, SHOAL_ERR_CLOSED, "the sftp session ended before the upload finished");
    shoal_uv_conn_close(j->conn);
}

static void on_ready(shoal_uv_conn *c, void *ud)
{
    job *j = ud;
    static const shoal_sftp_callbacks scb = {sizeof(shoal_sftp_callbacks), on_sftp_ready, on_sftp_closed, on_sftp_log};
    int rc = shoal_sftp_start(shoal_uv_conn_session(c), &scb, j, &j->sf);
    if (rc) {
        fail(j, rc, "cannot start sftp");
        shoal_uv_conn_close(c);
    }
}

static void on_closed(shoal_uv_conn *c, int err, const char *message, void *ud)
{
    job *j = ud;
    (void)c;
    if (err)
        fail(j, err, message);
}

int main(int argc, char **argv)
{
    if (argc < 8 || argc > 9) {
        fprintf(stderr, "usage: sftp_put HOST PORT USER IDENTITY KNOWN_HOSTS TARGET LOCAL [MODE]\n");
        return 2;
    }
    static job j;
    j.target = argv[6];
    j.mode = argc == 9 ? (uint32_t)strtoul(argv[8], NULL, 8) : 0644;
    const char *ab = getenv("SFTP_PUT_ABORT_AFTER");
    j.abort_after = ab ? atoll(ab) : -1;
    j.in = fopen(argv[7], "rb");
    if (!j.in) {
        fprintf(stderr, "sftp_put: %s: %s\n", argv[7], strerror(errno));
        return 1;
    }
    const char *kh[] = {argv[5]};
    const char *ids[] = {argv[4]};
    shoal_uv_options o;
    shoal_uv_options_init(&o);
    shoal_client_config o_ssh;
    shoal_client_config_init(&o_ssh);
    o.ssh = &o_ssh;
    o.host = argv[1];
    o.port = (unsigned)atoi(argv[2]);
    o_ssh.user = argv[3];
    o.known_hosts = kh;
    o.n_known_hosts = 1;
    o.hostkey_policy = SHOAL_HOSTKEY_ACCEPT_NEW;
    o.identity_files = ids;
    o.n_identity_files = 1;
    shoal_uv_callbacks cb;
    shoal_uv_callbacks_init(&cb);
    cb.on_ready = on_ready;
    cb.on_closed = on_closed;
    uv_loop_t *loop = uv_default_loop();
    int rc = shoal_uv_conn_new(loop, &o, &cb, &j, &j.conn);
    if (rc) {
        fprintf(stderr, "sftp_put: %s\n", shoal_strerror(rc));
        return 1;
    }
    shoal_uv_conn_start(j.conn);
    uv_run(loop, UV_RUN_DEFAULT);
    shoal_uv_conn_free(j.conn);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    fclose(j.in);
    if (!j.done && !j.err)
        fail(&j, SHOAL_ERR_CLOSED, "the connection ended before the upload finished");
    if (j.err) {
        fprintf(stderr, "sftp_put: %s (%s)\n", j.msg, shoal_errname(j.err));
        return 1;
    }
    printf("uploaded %llu bytes to %s\n", (unsigned long long)j.taken, j.target);
    return 0;
}
