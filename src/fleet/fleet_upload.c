/* Uploads for the fan-out engine: one mapped source file streamed to each
 * host over SFTP when the server offers it, else SCP (`scp -t`), else
 * `cat >` as GoSSHa does. Every transport writes a temporary name in the
 * target's directory and renames it into place only when every byte (and,
 * when asked, the sha256) is confirmed, so a failure never leaves a partial
 * file under the target name. Bandwidth: a token bucket per host and one
 * shared by all hosts of the request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "fleet_impl.h"
#include "scp_ack.h"
#include "shoal/channel.h"
#include "shoal/sftp.h"

#define CHUNK (256u * 1024u)
#define SMALL_CAP 8192

typedef struct remote_cmd remote_cmd;
typedef void (*rcmd_done_fn)(remote_cmd *x, int err, const char *msg, void *ud);

/* A remote command on its own channel, fed from the source for scp/cat. */
struct remote_cmd {
    fleet_upload *u;
    shoal_channel *ch;
    int feeding;              /* stdin comes from the upload */
    int scp;                  /* speak the scp sink protocol */
    int scp_stage;            /* 0 wait ready, 1 wait C ack, 2 data, 3 wait final ack, 4 done */
    scp_ack ack;              /* the sink's replies */
    int scp_failed;           /* the sink sent an error (its message in ack.msg) */
    /* Protocol bytes not sent yet (the scp header line, the end-of-file
     * byte): they need window space like data, and go before any data. */
    char ctl[600];
    size_t ctl_len, ctl_off;
    char out[SMALL_CAP], err[SMALL_CAP];
    size_t out_len, err_len;
    int have_status, status;
    int exec_ok;
    int to_task;              /* its output is the task's (--clean-temp) */
    char *cmd;
    char open_err[200];
    rcmd_done_fn done;
};

struct fleet_upload {
    fleet_task *t;            /* NULL once aborted: callbacks then only clean up */
    shoal_uv_conn *conn;
    shoal_fleet_request *req;
    const uint8_t *data;
    uint64_t size, off;
    int via;
    fleet_bucket bucket;      /* per host */
    uv_timer_t *wait;         /* waiting for tokens */
    int waiting;
    shoal_sftp *sf;
    shoal_sftp_put *put;
    int finishing;
    remote_cmd *x;
    char *target;             /* the request's Target with %h expanded */
    char *final;              /* SFTP: where the file goes (target resolved) */
    int final_exists, into_dir, resolve_steps;
    uint32_t final_mode;      /* SFTP: the existing file's mode */
    char hex[17];             /* names the temporary file (scp, cat) */
    char *prelude;            /* scp, cat: the shell prelude (see build_prelude) */
    int fail_err;             /* scp, cat: the failure told once the clean-up ran */
    char fail_msg[1200];
    /* --clean-temp over SFTP: the leftovers found, removed in order. */
    char **clean_names;
    unsigned clean_n, clean_sent, clean_done_n, clean_inflight, clean_errors;
    unsigned live;            /* objects still calling back (sftp, channels, timers) */
    pconn *hold;              /* connection kept open while cleaning up */
    uv_timer_t *guard;
};

static void up_pump(fleet_upload *u);
static void start_scp(fleet_upload *u);
static void start_cat(fleet_upload *u);

static void up_release(fleet_upload *u);

static void on_wait_closed(uv_handle_t *h)
{
    fleet_upload *u = h->data;
    free(h);
    if (u->wait == (uv_timer_t *)h)
        u->wait = NULL;
    up_release(u);
}

static void drop_hold(fleet_upload *u)
{
    if (u->hold) {
        pconn *pc = u->hold;
        u->hold = NULL;
        fleet__pc_release(pc);
    }
}

static void up_release(fleet_upload *u)
{
    if (u->live)
        u->live--;
    if (!u->t && u->live == 1 && u->guard) {
        /* Clean-up finished before the guard: stop waiting. */
        uv_timer_t *g = u->guard;
        u->guard = NULL;
        uv_close((uv_handle_t *)g, on_wait_closed);
        return;
    }
    if (!u->t && !u->live) {
        drop_hold(u);
        for (unsigned i = 0; u->clean_names && i < u->clean_n; i++)
            free(u->clean_names[i]);
        free(u->clean_names);
        free(u->final);
        free(u->prelude);
        free(u->target);
        free(u);
    }
}

/* An aborted upload gets this long to remove its temporary file before
 * the connection is let go anyway. */
#define CLEANUP_GRACE_MS 3000

static void on_guard(uv_timer_t *tm)
{
    fleet_upload *u = tm->data;
    u->guard = NULL;
    u->live++;
    uv_close((uv_handle_t *)tm, on_wait_closed);
    drop_hold(u);
    up_release(u);
}

/* Ends the task with a result (once). */
static void up_result(fleet_upload *u, int err, const char *msg)
{
    fleet_task *t = u->t;
    if (!t)
        return;
    shoal_fleet_event *ev = fleet__task_event(t);
    if (ev) {
        ev->phase = "upload";
        ev->via = u->via == SHOAL_FLEET_XFER_SCP ? "scp" : u->via == SHOAL_FLEET_XFER_CAT ? "cat" : "sftp";
        if (err) {
            ev->cls = SHOAL_FLEET_FAIL_UPLOAD;
            ev->err = err;
            ev->exit_kind = SHOAL_EXIT_ERROR;
            if (err == SHOAL_ERR_EOF || err == SHOAL_ERR_DISCONNECTED || err == SHOAL_ERR_TIMEOUT ||
                err == SHOAL_ERR_CLOSED) {
                fleet__classify(ev, err, SHOAL_STAGE_READY, NULL);
                ev->phase = "upload";
            }
            fleet__set_message(ev, "%s: upload: %s", t->host, msg ? msg : shoal_strerror(err));
        } else {
            ev->cls = SHOAL_FLEET_OK;
            ev->exit_kind = SHOAL_EXIT_STATUS;
            ev->status = 0;
        }
    }
    /* Detach first so task_finish does not abort us. */
    t->up = NULL;
    u->t = NULL;
    u->live++; /* hold while closing */
    if (u->wait && !uv_is_closing((uv_handle_t *)u->wait)) {
        uv_close((uv_handle_t *)u->wait, on_wait_closed);
        u->live++;
    }
    if (u->sf)
        shoal_sftp_close(u->sf);
    if (u->x && u->x->ch)
        shoal_channel_close(u->x->ch);
    shoal_uv_conn_flush(u->conn);
    fleet__task_finish(t, ev);
    up_release(u);
}

/* ---- tokens ---- */

static void on_wait(uv_timer_t *tm)
{
    fleet_upload *u = tm->data;
    u->waiting = 0;
    if (u->t)
        up_pump(u);
}

/* How many bytes may go now (0: a timer will call up_pump again). */
static size_t grant(fleet_upload *u, size_t want)
{
    uint64_t now = uv_now(shoal_uv_conn_loop(u->conn)), w1 = 0, w2 = 0;
    size_t g = want;
    if (u->req->host_rate)
        g = fleet_bucket_take(&u->bucket, g, now, &w1);
    if (g && u->req->global_rate) {
        size_t g2 = fleet_bucket_take(u->req->global_rate, g, now, &w2);
        if (g2 < g && u->req->host_rate)
            fleet_bucket_refund(&u->bucket, g - g2);
        g = g2;
    }
    if (!g && !u->waiting) {
        uint64_t ms = w1 > w2 ? w1 : w2;
        if (!u->wait) {
            u->wait = malloc(sizeof(uv_timer_t));
            if (!u->wait)
                return want; /* cannot wait: do not stall forever */
            uv_timer_init(shoal_uv_conn_loop(u->conn), u->wait);
            u->wait->data = u;
        }
        u->waiting = 1;
        uv_timer_start(u->wait, on_wait, ms ? ms : 1, 0);
    }
    return g;
}

static void give_back(fleet_upload *u, size_t n)
{
    if (!n)
        return;
    if (u->req->host_rate)
        fleet_bucket_refund(&u->bucket, n);
    if (u->req->global_rate)
        fleet_bucket_refund(u->req->global_rate, n);
}

/* ---- SFTP ---- */

static void verify_start(fleet_upload *u, const char *path);

static void put_writable(shoal_sftp_put *p, void *ud)
{
    (void)p;
    fleet_upload *u = ud;
    if (u->t)
        up_pump(u);
}

static void put_done(shoal_sftp_put *p, int err, const char *msg, void *ud)
{
    (void)p;
    fleet_upload *u = ud;
    u->put = NULL;
    if (!u->t) {
        /* Aborted: the temporary file is gone (or could not be removed). */
        if (u->sf)
            shoal_sftp_close(u->sf);
        return;
    }
    up_result(u, err, err ? msg : NULL);
}

/* --verify over SFTP: the whole file is closed under its temporary name;
 * its sha256 is checked there, before it is renamed into place. */
static void put_closed_temp(shoal_sftp_put *p, const char *temp, void *ud)
{
    (void)p;
    fleet_upload *u = ud;
    if (u->t)
        verify_start(u, temp);
}

/* ---- where the file goes (SFTP) ----
 *
 * As scp does: a target that is a directory receives the file under the
 * source's name; a symbolic link is followed (the link stays, the file it
 * points to is replaced); an existing file keeps its mode unless one was
 * given. The shell transports decide the same way remotely (the prelude
 * below). */

#define RESOLVE_STEPS 4

static void sftp_put_start(fleet_upload *u);
static void resolve(fleet_upload *u, const char *path);

/* dir + "/" + name (no second slash), malloc'd. */
static char *path_join(const char *dir, const char *name)
{
    size_t l = strlen(dir), n = l + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", dir, l && dir[l - 1] == '/' ? "" : "/", name);
    return p;
}
static void clean_sftp(fleet_upload *u);
static void clean_shell(fleet_upload *u);

static void resolved_path(shoal_sftp *sf, int err, const char *msg, const char *path, void *ud)
{
    (void)sf;
    fleet_upload *u = ud;
    if (!u->t)
        return;
    if (err) {
        up_result(u, err, msg);
        return;
    }
    resolve(u, path);
}

static void resolved_stat(shoal_sftp *sf, int err, const char *msg, const shoal_sftp_attrs *a, void *ud)
{
    fleet_upload *u = ud;
    if (!u->t)
        return;
    if (err == SHOAL_ERR_NOT_FOUND) {
        u->final_exists = 0; /* a new file */
        sftp_put_start(u);
        return;
    }
    if (err) {
        up_result(u, err, msg);
        return;
    }
    uint32_t type = (a->flags & SHOAL_SFTP_ATTR_PERMISSIONS) ? (a->permissions & 0170000u) : 0100000u;
    if (type == 0120000u) { /* a symbolic link: upload to what it points to */
        int rc = shoal_sftp_realpath(sf, u->final, resolved_path, u);
        if (rc)
            up_result(u, rc, "cannot resolve the target's symbolic link");
        return;
    }
    if (type == 0040000u) { /* a directory: into it, under the source's name */
        if (u->into_dir) {
            char m[4300];
            snprintf(m, sizeof(m), "%s: is a directory", u->final);
            up_result(u, SHOAL_ERR_INVALID_ARG, m);
            return;
        }
        u->into_dir = 1;
        char *p = path_join(u->final, shoal_fleet_source_name(u->req->source));
        if (!p) {
            up_result(u, SHOAL_ERR_NOMEM, "out of memory");
            return;
        }
        resolve(u, p);
        free(p);
        return;
    }
    if (type != 0100000u) {
        char m[4300];
        snprintf(m, sizeof(m), "%s: is not a regular file", u->final);
        up_result(u, SHOAL_ERR_INVALID_ARG, m);
        return;
    }
    u->final_exists = 1;
    u->final_mode = (a->flags & SHOAL_SFTP_ATTR_PERMISSIONS) ? a->permissions & 07777u : 0;
    sftp_put_start(u);
}

static void resolve(fleet_upload *u, const char *path)
{
    if (++u->resolve_steps > RESOLVE_STEPS) {
        up_result(u, SHOAL_ERR_INVALID_ARG, "target: too many directory or link steps");
        return;
    }
    char *p = strdup(path);
    if (!p) {
        up_result(u, SHOAL_ERR_NOMEM, "out of memory");
        return;
    }
    free(u->final);
    u->final = p;
    int rc = shoal_sftp_lstat(u->sf, u->final, resolved_stat, u);
    if (rc)
        up_result(u, rc, "cannot look at the target");
}

static void sftp_put_start(fleet_upload *u)
{
    static const shoal_sftp_put_callbacks plain = {sizeof(shoal_sftp_put_callbacks), put_writable, put_done, NULL};
    static const shoal_sftp_put_callbacks checked = {sizeof(shoal_sftp_put_callbacks), put_writable, put_done,
                                                     put_closed_temp};
    shoal_sftp_put_options o;
    shoal_sftp_put_options_init(&o);
    o.in_place = u->req->inplace;
    uint32_t mode = u->req->mode_given ? u->req->mode
                    : u->final_exists  ? u->final_mode
                                       : shoal_fleet_source_mode(u->req->source);
    o.keep_mode = u->req->inplace && !u->req->mode_given; /* an existing file keeps its own */
    int rc = shoal_sftp_put_begin_ex(u->sf, u->final, mode, &o, u->req->verify ? &checked : &plain, u, &u->put);
    if (rc)
        up_result(u, rc, "cannot start the SFTP upload");
}

static void sftp_ready(shoal_sftp *sf, int err, const char *msg, void *ud)
{
    fleet_upload *u = ud;
    if (!u->t)
        return;
    if (err) {
        if (u->req->xfer == SHOAL_FLEET_XFER_AUTO) {
            /* No SFTP here: SCP next (the channel is closed by the library). */
            u->sf = NULL;
            if (u->req->clean_temp)
                clean_shell(u);
            else
                start_scp(u);
            return;
        }
        up_result(u, err, msg);
        return;
    }
    (void)sf;
    if (u->req->clean_temp)
        clean_sftp(u);
    else
        resolve(u, u->target);
}

static void sftp_closed(shoal_sftp *sf, void *ud)
{
    (void)sf;
    fleet_upload *u = ud;
    if (u->sf == sf)
        u->sf = NULL;
    if (u->t && !u->x)
        up_result(u, SHOAL_ERR_CLOSED, "SFTP channel closed");
    up_release(u);
}

static void start_sftp(fleet_upload *u)
{
    static const shoal_sftp_callbacks cb = {sizeof(shoal_sftp_callbacks), sftp_ready, sftp_closed, NULL};
    u->via = SHOAL_FLEET_XFER_SFTP;
    int rc = shoal_sftp_start(shoal_uv_conn_session(u->conn), &cb, u, &u->sf);
    if (rc) {
        up_result(u, rc, "cannot open an SFTP channel");
        return;
    }
    u->live++;
    shoal_uv_conn_flush(u->conn);
}

/* ---- remote commands (scp, cat, checks) ---- */

static void x_open(shoal_channel *ch, int err, const char *reason, void *ud)
{
    remote_cmd *x = ud;
    if (err) {
        /* on_close follows and reports. */
        snprintf(x->open_err, sizeof(x->open_err), "server refused a session channel: %s",
                 reason ? reason : shoal_strerror(err));
        return;
    }
    shoal_channel_exec(ch, x->cmd);
}

static void x_feed(remote_cmd *x);

static void x_request(shoal_channel *ch, const char *req, int ok, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    if (strcmp(req, "exec"))
        return;
    if (!ok) {
        shoal_channel_close(x->ch);
        return;
    }
    x->exec_ok = 1;
    if (x->feeding && !x->scp)
        x_feed(x);
}

/* Sends pending protocol bytes; 1 when none are left. A partial write
 * brings on_writable (x_writable), which calls again. */
static int x_flush_ctl(remote_cmd *x)
{
    while (x->ctl_off < x->ctl_len) {
        size_t w = 0;
        if (shoal_channel_write(x->ch, x->ctl + x->ctl_off, x->ctl_len - x->ctl_off, &w) != 0 || w == 0)
            return 0;
        x->ctl_off += w;
    }
    x->ctl_len = x->ctl_off = 0;
    return 1;
}

static void x_queue_ctl(remote_cmd *x, const char *p, size_t n)
{
    if (n > sizeof(x->ctl) - x->ctl_len)
        n = sizeof(x->ctl) - x->ctl_len; /* never: the header line is bounded */
    memcpy(x->ctl + x->ctl_len, p, n);
    x->ctl_len += n;
    x_flush_ctl(x);
    shoal_uv_conn_flush(x->u->conn);
}

static void scp_send_header(remote_cmd *x)
{
    fleet_upload *u = x->u;
    char line[sizeof(x->ctl)];
    /* The sink writes to the path it was given (never a directory): the
     * name here does not matter. The temporary file is private until the
     * finalizer sets the mode; a file written in place is created with the
     * mode it will keep. */
    uint32_t mode = !u->req->inplace ? 0600 : u->req->mode_given ? u->req->mode : shoal_fleet_source_mode(u->req->source);
    int n = snprintf(line, sizeof(line), "C%04o %llu upload\n", (unsigned)mode, (unsigned long long)u->size);
    x->scp_stage = 1;
    x_queue_ctl(x, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
}

/* One reply of the scp sink. */
static void scp_reply(remote_cmd *x, scp_ack_kind k)
{
    if (k != SCP_ACK_OK) {
        /* A warning or a fatal error: either way this upload failed. */
        x->scp_failed = 1;
        x->scp_stage = 4;
        shoal_channel_close(x->ch);
        return;
    }
    if (x->scp_stage == 0) {
        scp_send_header(x);
    } else if (x->scp_stage == 1) {
        x->scp_stage = 2;
        x_feed(x);
    } else if (x->scp_stage == 3) {
        x->scp_stage = 4;
        shoal_channel_send_eof(x->ch);
        shoal_uv_conn_flush(x->u->conn);
    }
}

static void x_data(shoal_channel *ch, int stream, const uint8_t *d, size_t n, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    if (x->to_task && x->u->t) {
        fleet__collect(x->u->t, stream, d, n);
        return;
    }
    if (stream == SHOAL_STDERR) {
        size_t take = n < SMALL_CAP - 1 - x->err_len ? n : SMALL_CAP - 1 - x->err_len;
        memcpy(x->err + x->err_len, d, take);
        x->err_len += take;
        return;
    }
    if (x->scp) {
        while (n > 0 && x->ch && !x->scp_failed && x->scp_stage < 4) {
            size_t used = 0;
            scp_ack_kind k = scp_ack_feed(&x->ack, d, n, &used);
            d += used;
            n -= used;
            if (k != SCP_ACK_NONE)
                scp_reply(x, k);
        }
        return;
    }
    size_t take = n < SMALL_CAP - 1 - x->out_len ? n : SMALL_CAP - 1 - x->out_len;
    memcpy(x->out + x->out_len, d, take);
    x->out_len += take;
}

static void x_status(shoal_channel *ch, uint32_t status, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    x->have_status = 1;
    x->status = (int)status;
}

static void x_signal(shoal_channel *ch, const char *sig, int core, const char *msg, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    (void)sig;
    (void)core;
    (void)msg;
    x->have_status = 1;
    x->status = 255;
}

static void x_writable(shoal_channel *ch, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    if (!x_flush_ctl(x)) {
        shoal_uv_conn_flush(x->u->conn);
        return;
    }
    if (x->feeding && x->exec_ok && (!x->scp || x->scp_stage == 2))
        x_feed(x);
    shoal_uv_conn_flush(x->u->conn);
}

static void x_close(shoal_channel *ch, void *ud)
{
    remote_cmd *x = ud;
    (void)ch;
    x->ch = NULL;
    fleet_upload *u = x->u;
    if (x->done && u->t) {
        char msg[SMALL_CAP + 200];
        x->err[x->err_len] = 0;
        if (x->scp && x->scp_failed) {
            snprintf(msg, sizeof(msg), "scp: %s", x->ack.msg[0] ? x->ack.msg : "the sink refused the file");
            x->done(x, SHOAL_ERR_REQUEST_DENIED, msg, u);
        } else if (x->open_err[0]) {
            x->done(x, SHOAL_ERR_CHANNEL_OPEN, x->open_err, u);
        } else if (!x->exec_ok) {
            x->done(x, SHOAL_ERR_REQUEST_DENIED, "server refused to run the command", u);
        } else if (!x->have_status) {
            x->done(x, SHOAL_ERR_CLOSED, "command ended without an exit status", u);
        } else if (x->status) {
            snprintf(msg, sizeof(msg), "exit status %d%s%s", x->status, x->err_len ? ": " : "", x->err);
            /* Trim the trailing newline of the remote message. */
            size_t l = strlen(msg);
            while (l && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
                msg[--l] = 0;
            x->done(x, SHOAL_ERR_REQUEST_DENIED, msg, u);
        } else {
            x->done(x, 0, NULL, u);
        }
    }
    if (u->x == x)
        u->x = NULL;
    free(x->cmd);
    free(x);
    up_release(u);
}

static const shoal_channel_callbacks XCBS = {
    sizeof(shoal_channel_callbacks), x_open, x_request, x_data, NULL, x_status, x_signal, x_writable, x_close};

static remote_cmd *rcmd_start(fleet_upload *u, const char *cmd, int feeding, int scp, rcmd_done_fn done)
{
    remote_cmd *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->u = u;
    x->feeding = feeding;
    x->scp = scp;
    x->done = done;
    scp_ack_init(&x->ack);
    x->cmd = strdup(cmd);
    if (!x->cmd || shoal_channel_open_session(shoal_uv_conn_session(u->conn), &XCBS, x, &x->ch) != 0) {
        free(x->cmd);
        free(x);
        return NULL;
    }
    if (done)
        u->x = x; /* cleanup commands run unattended */
    u->live++;
    shoal_uv_conn_flush(u->conn);
    return x;
}

/* Data from the source into the exec channel's stdin. Stops when the
 * channel has no room (a write taking less than offered, or writable() of
 * 0, brings x_writable back), when the token buckets are empty (their
 * timer brings up_pump back), or at the end. */
static void x_feed(remote_cmd *x)
{
    fleet_upload *u = x->u;
    if (!u->t || !x->ch)
        return;
    if (!x_flush_ctl(x)) {
        shoal_uv_conn_flush(u->conn);
        return;
    }
    while (u->off < u->size && !u->waiting) {
        size_t room = shoal_channel_writable(x->ch);
        if (!room)
            break;
        uint64_t left = u->size - u->off;
        size_t want = left < room ? (size_t)left : room;
        if (want > CHUNK)
            want = CHUNK;
        size_t g = grant(u, want);
        if (!g)
            break;
        size_t w = 0;
        shoal_channel_write(x->ch, u->data + u->off, g, &w);
        give_back(u, g - w);
        u->off += w;
        if (w < g)
            break;
    }
    if (u->off == u->size && !u->finishing) {
        u->finishing = 1;
        if (x->scp) {
            x->scp_stage = 3;
            x_queue_ctl(x, "", 1); /* the end-of-file byte, sent when there is room */
        } else {
            shoal_channel_send_eof(x->ch);
        }
    }
    shoal_uv_conn_flush(u->conn);
}

static void up_pump(fleet_upload *u)
{
    if (u->via == SHOAL_FLEET_XFER_SFTP) {
        if (!u->put)
            return;
        while (u->off < u->size && !u->waiting) {
            size_t room = shoal_sftp_put_writable(u->put);
            if (!room)
                break;
            uint64_t left = u->size - u->off;
            size_t want = left < room ? (size_t)left : room;
            size_t g = grant(u, want);
            if (!g)
                break;
            size_t w = 0;
            if (shoal_sftp_put_write(u->put, u->data + u->off, g, &w) != 0) {
                give_back(u, g);
                break;
            }
            give_back(u, g - w);
            u->off += w;
            if (!w)
                break;
        }
        if (u->off == u->size && !u->finishing) {
            u->finishing = 1;
            shoal_sftp_put_finish(u->put);
        }
        shoal_uv_conn_flush(u->conn);
    } else if (u->x) {
        x_feed(u->x);
    }
}

/* ---- the scp and cat transports: commands for the remote shell ----
 *
 * Every command starts with the same prelude, which decides where the
 * file goes exactly as the SFTP transport does (fleet_upload.c,
 * "target"), so the commands agree on it without a round trip:
 *   t  the final path: the target; inside it when it is a directory (under
 *      the source's name); the file a symbolic link points to;
 *   p  the temporary file next to t: ".<name of t>.shoal-<16 hex>", the
 *      pattern documented for leftovers (a killed client, a lost
 *      connection).
 * Written in POSIX sh with shell built-ins where it can (a restricted PATH
 * may have little more than cat); readlink -f (only for a link) and stat -c
 * (only to keep an existing file's mode; stat -f is tried for BSD, else
 * the source's mode is used) are GNU/BusyBox. */

static int build_prelude(fleet_upload *u)
{
    char qt[4200], qb[1200];
    if (shoal_shell_quote(u->target, qt, sizeof(qt)) ||
        shoal_shell_quote(shoal_fleet_source_name(u->req->source), qb, sizeof(qb)))
        return -1;
    size_t need = strlen(qt) + strlen(qb) + 600;
    u->prelude = malloc(need);
    if (!u->prelude)
        return -1;
    snprintf(u->prelude, need,
             "t=%s; if [ -d \"$t\" ]; then t=\"${t%%/}\"/%s; fi; "
             "if [ -L \"$t\" ]; then t=$(readlink -f -- \"$t\") || { echo \"cannot resolve the symbolic link\" >&2; "
             "exit 1; }; fi; "
             "if [ -d \"$t\" ]; then echo \"$t: is a directory\" >&2; exit 1; fi; "
             "case $t in */*) d=${t%%/*}; d=${d:-/};; *) d=.;; esac; "
             "p=\"$d/.${t##*/}.shoal-%s\"; ",
             qt, qb, u->hex);
    return 0;
}

/* Checks the file that arrived (size, sha256 when asked), sets the mode
 * and moves it into place; removes it on any failure. In place: the same
 * checks on the target itself, and the mode only when one was given. */
static void build_finalize(fleet_upload *u, char *cmd, size_t sz)
{
    const char *f = u->req->inplace ? "\"$t\"" : "\"$p\"";
    char check[300] = "", mode[300];
    if (u->req->verify)
        snprintf(check, sizeof(check), "h=$(sha256sum < %s) && [ \"${h%%%% *}\" = %s ] && ", f,
                 shoal_fleet_source_sha256(u->req->source));
    /* The mode: the one given; else an existing target's; else the source's. */
    if (u->req->mode_given)
        snprintf(mode, sizeof(mode), "m=%04o && chmod \"$m\" -- %s && ", (unsigned)u->req->mode, f);
    else if (u->req->inplace)
        snprintf(mode, sizeof(mode), "%s", "");
    else
        snprintf(mode, sizeof(mode),
                 "{ m=$(stat -c %%a -- \"$t\" 2>/dev/null) || m=$(stat -f %%Lp -- \"$t\" 2>/dev/null) || "
                 "m=%04o; } && chmod \"$m\" -- \"$p\" && ",
                 (unsigned)shoal_fleet_source_mode(u->req->source));
    if (u->req->inplace)
        snprintf(cmd, sz,
                 "s=$(wc -c < \"$t\") && [ \"$s\" -eq %llu ] && %s%strue || { echo 'upload check failed (size, "
                 "checksum or chmod): the target was written in place and may be incomplete' >&2; exit 1; }",
                 (unsigned long long)u->size, check, mode);
    else
        snprintf(cmd, sz,
                 "s=$(wc -c < \"$p\") && [ \"$s\" -eq %llu ] && %s%smv -f -- \"$p\" \"$t\" "
                 "|| { rm -f -- \"$p\"; echo 'upload check failed (size, checksum, chmod or rename)' >&2; exit 1; }",
                 (unsigned long long)u->size, check, mode);
}

/* A command with the prelude in front. */
static int with_prelude(fleet_upload *u, char *cmd, size_t sz, const char *body)
{
    int n = snprintf(cmd, sz, "%s%s", u->prelude, body);
    return n < 0 || (size_t)n >= sz ? -1 : 0;
}

static void cleanup_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    fleet_upload *u = ud;
    (void)x;
    char m[sizeof(u->fail_msg) + 200];
    if (err)
        snprintf(m, sizeof(m), "%s (its temporary file .*.shoal-%s next to the target was not removed: %s)",
                 u->fail_msg, u->hex, msg ? msg : shoal_strerror(err));
    else
        snprintf(m, sizeof(m), "%s", u->fail_msg);
    up_result(u, u->fail_err, m);
}

/* A failed scp/cat upload: its temporary file is removed before the result
 * is told (a full-size leftover would keep a disk full); the message names
 * it when that is not possible. */
static void fail_after_cleanup(fleet_upload *u, int err, const char *msg)
{
    char cmd[9000];
    u->fail_err = err;
    snprintf(u->fail_msg, sizeof(u->fail_msg), "%s", msg ? msg : shoal_strerror(err));
    if (u->req->inplace || !u->prelude || with_prelude(u, cmd, sizeof(cmd), "rm -f -- \"$p\"") ||
        !rcmd_start(u, cmd, 0, 0, cleanup_done)) {
        char m[sizeof(u->fail_msg) + 200];
        if (u->req->inplace)
            snprintf(m, sizeof(m), "%s (written in place: the target may be incomplete)", u->fail_msg);
        else
            snprintf(m, sizeof(m), "%s (its temporary file .*.shoal-%s next to the target may remain)", u->fail_msg,
                     u->hex);
        up_result(u, err, m);
    }
}

/* Removes the scp/cat temporary file, unattended and best effort (an
 * aborted upload: the connection may be closing too). */
static void remove_temp(fleet_upload *u)
{
    char cmd[9000];
    if (!u->req->inplace && u->prelude && with_prelude(u, cmd, sizeof(cmd), "rm -f -- \"$p\"") == 0)
        rcmd_start(u, cmd, 0, 0, NULL);
}

static void finalize_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    (void)x;
    fleet_upload *u = ud;
    up_result(u, err, err ? msg : NULL);
}

static void scp_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    (void)x;
    fleet_upload *u = ud;
    if (err) {
        int fresh = u->off == 0 && !u->finishing;
        if (fresh && u->req->xfer == SHOAL_FLEET_XFER_AUTO && (!msg || strstr(msg, "exit status 127") ||
                                                          strstr(msg, "refused"))) {
            start_cat(u); /* no scp on this host */
            return;
        }
        fail_after_cleanup(u, err, msg); /* whatever the sink created */
        return;
    }
    char fin[9000], cmd[9000];
    build_finalize(u, fin, sizeof(fin));
    if (with_prelude(u, cmd, sizeof(cmd), fin) || !rcmd_start(u, cmd, 0, 0, finalize_done))
        fail_after_cleanup(u, SHOAL_ERR_NOMEM, "cannot open a channel");
}

static void cat_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    (void)x;
    if (err)
        fail_after_cleanup(ud, err, msg); /* the command removes it itself, unless it never ended */
    else
        up_result(ud, 0, NULL);
}

/* Common start of the scp and cat transports (also after a fallback). */
static int begin_shell_transport(fleet_upload *u, int via)
{
    u->via = via;
    u->off = 0;
    u->finishing = 0;
    if (!u->prelude && build_prelude(u)) {
        up_result(u, SHOAL_ERR_TOO_LARGE, "target path too long");
        return -1;
    }
    return 0;
}

static void start_scp(fleet_upload *u)
{
    if (begin_shell_transport(u, SHOAL_FLEET_XFER_SCP))
        return;
    char cmd[9000];
    if (with_prelude(u, cmd, sizeof(cmd), u->req->inplace ? "exec scp -t -- \"$t\"" : "exec scp -t -- \"$p\"") ||
        !rcmd_start(u, cmd, 1, 1, scp_done))
        up_result(u, SHOAL_ERR_NOMEM, "cannot open a channel");
}

static void start_cat(fleet_upload *u)
{
    if (begin_shell_transport(u, SHOAL_FLEET_XFER_CAT))
        return;
    char fin[9000], body[9400], cmd[9400];
    build_finalize(u, fin, sizeof(fin));
    /* The size check in the finalizer makes a cut stream harmless: cat
     * also ends on a closed channel, and a short file is never renamed
     * (and is removed). */
    if (u->req->inplace)
        snprintf(body, sizeof(body), "cat > \"$t\" && %s", fin);
    else
        snprintf(body, sizeof(body), "(umask 077 && cat > \"$p\") && %s", fin);
    if (with_prelude(u, cmd, sizeof(cmd), body) || !rcmd_start(u, cmd, 1, 0, cat_done))
        up_result(u, SHOAL_ERR_NOMEM, "cannot open a channel");
}

static void verify_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    fleet_upload *u = ud;
    const char *want = shoal_fleet_source_sha256(u->req->source);
    x->out[x->out_len] = 0;
    if (!err && strncmp(x->out, want, 64) != 0) {
        err = SHOAL_ERR_MAC;
        msg = "sha256 of the uploaded file differs from the source";
    }
    if (u->put) {
        /* SFTP, file held under its temporary name: into place, or removed. */
        if (err)
            shoal_sftp_put_fail(u->put, err, msg);
        else
            shoal_sftp_put_commit(u->put);
        shoal_uv_conn_flush(u->conn);
        return;
    }
    up_result(u, err, err ? msg : NULL);
}

static void verify_start(fleet_upload *u, const char *path)
{
    char q[4200], cmd[4400];
    if (shoal_shell_quote(path, q, sizeof(q))) {
        up_result(u, SHOAL_ERR_TOO_LARGE, "target path too long");
        return;
    }
    snprintf(cmd, sizeof(cmd), "sha256sum < %s", q);
    if (!rcmd_start(u, cmd, 0, 0, verify_done))
        up_result(u, SHOAL_ERR_NOMEM, "cannot open a channel");
}

/* ---- --clean-temp: leftover temporary files ----
 *
 * Only a killed client or a lost connection leaves a temporary file
 * behind. This removes, in the target directory, the regular files named
 * like ours (".<name>.shoal-<16 lowercase hex>") that were last modified
 * longer ago than the request's clean_age_s (an upload still running
 * keeps its file fresh). Over SFTP: list, then remove; without SFTP:
 * find(1) over an exec channel. Each removed path is a line of output. */

#define CLEAN_MAX 10000u   /* names kept per host and pass */
#define CLEAN_INFLIGHT 32u

int fleet__is_temp_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 2 + 7 + 16 || name[0] != '.')
        return 0;
    const char *hex = name + n - 16;
    if (memcmp(hex - 7, ".shoal-", 7) != 0)
        return 0;
    for (int i = 0; i < 16; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return 0;
    return 1;
}

static void clean_next(fleet_upload *u);

static void clean_removed(shoal_sftp *sf, int err, const char *msg, void *ud)
{
    (void)sf;
    fleet_upload *u = ud;
    u->clean_inflight--;
    char line[4400];
    const char *path = u->clean_names[u->clean_done_n++];
    if (!u->t)
        return;
    if (err) {
        u->clean_errors++;
        snprintf(line, sizeof(line), "%s\n", msg ? msg : shoal_strerror(err));
        fleet__collect(u->t, SHOAL_STDERR, (const uint8_t *)line, strlen(line));
    } else {
        snprintf(line, sizeof(line), "removed %s\n", path);
        fleet__collect(u->t, SHOAL_STDOUT, (const uint8_t *)line, strlen(line));
    }
    clean_next(u);
}

/* Removes what the listing found, a few requests at a time; then the result. */
static void clean_next(fleet_upload *u)
{
    if (!u->t)
        return;
    while (u->clean_sent < u->clean_n && u->clean_inflight < CLEAN_INFLIGHT) {
        int rc = shoal_sftp_remove(u->sf, u->clean_names[u->clean_sent], clean_removed, u);
        if (rc) {
            up_result(u, rc, "cannot send a remove request");
            return;
        }
        u->clean_sent++;
        u->clean_inflight++;
    }
    if (u->clean_inflight == 0 && u->clean_done_n == u->clean_n) {
        if (u->clean_errors)
            up_result(u, SHOAL_ERR_PERMISSION, "some temporary files could not be removed");
        else
            up_result(u, 0, NULL);
    }
}

static int clean_entries(shoal_sftp *sf, const shoal_sftp_dirent *e, size_t n, void *ud)
{
    (void)sf;
    fleet_upload *u = ud;
    time_t cutoff = time(NULL) - (time_t)u->req->clean_age_s;
    for (size_t i = 0; i < n && u->clean_n < CLEAN_MAX; i++) {
        const shoal_sftp_attrs *a = &e[i].attrs;
        if (!fleet__is_temp_name(e[i].name) || strchr(e[i].name, '/'))
            continue;
        if ((a->flags & SHOAL_SFTP_ATTR_PERMISSIONS) && (a->permissions & 0170000u) != 0100000u)
            continue; /* only regular files */
        if (!(a->flags & SHOAL_SFTP_ATTR_ACMODTIME) || (time_t)a->mtime > cutoff)
            continue; /* fresh (or of unknown age): maybe an upload in progress */
        char *p = path_join(u->target, e[i].name);
        if (!p)
            return 1;
        u->clean_names[u->clean_n++] = p;
    }
    return 0;
}

static void clean_listed(shoal_sftp *sf, int err, const char *msg, void *ud)
{
    (void)sf;
    fleet_upload *u = ud;
    if (!u->t)
        return;
    if (err) {
        up_result(u, err, msg);
        return;
    }
    clean_next(u);
}

static void clean_sftp(fleet_upload *u)
{
    u->clean_names = calloc(CLEAN_MAX, sizeof(char *));
    if (!u->clean_names) {
        up_result(u, SHOAL_ERR_NOMEM, "out of memory");
        return;
    }
    int rc = shoal_sftp_listdir(u->sf, u->target, clean_entries, clean_listed, u);
    if (rc)
        up_result(u, rc, "cannot list the directory");
}

static void clean_shell_done(remote_cmd *x, int err, const char *msg, void *ud)
{
    (void)x;
    up_result(ud, err, err ? msg : NULL);
}

static void clean_shell(fleet_upload *u)
{
    u->via = SHOAL_FLEET_XFER_CAT;
    char q[4200], cmd[5000], pat[16 + 16 * 8];
    if (shoal_shell_quote(u->target, q, sizeof(q))) {
        up_result(u, SHOAL_ERR_TOO_LARGE, "target path too long");
        return;
    }
    snprintf(pat, sizeof(pat), ".*.shoal-");
    for (int i = 0; i < 16; i++)
        strcat(pat, "[0-9a-f]");
    /* -mmin +N: modified more than N minutes ago (rounded up by find). */
    unsigned long mins = (unsigned long)(u->req->clean_age_s / 60);
    snprintf(cmd, sizeof(cmd),
             "find %s -maxdepth 1 -type f -name '%s' -mmin +%lu "
             "-exec sh -c 'rm -f -- \"$1\" && printf \"removed %%s\\n\" \"$1\"' sh {} \\;",
             q, pat, mins);
    remote_cmd *x = rcmd_start(u, cmd, 0, 0, clean_shell_done);
    if (!x)
        up_result(u, SHOAL_ERR_NOMEM, "cannot open a channel");
    else
        x->to_task = 1;
}

/* ---- entry points ---- */

/* "%h" in a target becomes the host name ("%%" a percent sign), so one
 * request can give every host its own file (e.g. several "hosts" that
 * are one machine, or collecting per-host names on a shared filesystem). */
static char *expand_target(const char *tpl, const char *host)
{
    size_t need = strlen(tpl) + 1;
    for (const char *p = tpl; (p = strstr(p, "%h")) != NULL; p += 2)
        need += strlen(host);
    char *out = malloc(need);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '%' && p[1] == 'h') {
            o += sprintf(o, "%s", host);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            *o++ = '%';
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return out;
}

int fleet__upload_start(fleet_task *t)
{
    fleet_upload *u = calloc(1, sizeof(*u));
    if (!u)
        return -1;
    u->target = expand_target(t->req->target, t->host);
    if (!u->target) {
        free(u);
        return -1;
    }
    u->t = t;
    u->conn = t->pc->c;
    u->req = t->req;
    u->data = t->req->source ? shoal_fleet_source_data(t->req->source) : NULL;
    u->size = t->req->source ? shoal_fleet_source_size(t->req->source) : 0;
    uint8_t rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        free(u->target);
        free(u);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        snprintf(u->hex + 2 * i, 3, "%02x", rnd[i]);
    if (t->req->host_rate)
        fleet_bucket_init(&u->bucket, t->req->host_rate, 0, uv_now(&t->w->loop));
    t->up = u;
    if (t->req->clean_temp && (t->req->xfer == SHOAL_FLEET_XFER_SCP || t->req->xfer == SHOAL_FLEET_XFER_CAT)) {
        clean_shell(u);
        return 0;
    }
    switch (t->req->xfer) {
    case SHOAL_FLEET_XFER_SCP:
        start_scp(u);
        break;
    case SHOAL_FLEET_XFER_CAT:
        start_cat(u);
        break;
    default:
        start_sftp(u);
        break;
    }
    return 0;
}

void fleet__upload_abort(fleet_upload *u)
{
    if (!u || !u->t)
        return;
    /* Keep the connection for the clean-up (bounded by a guard timer). */
    if (u->t->pc) {
        u->hold = u->t->pc;
        fleet__pc_hold(u->hold);
        uv_timer_t *guard = malloc(sizeof(*guard));
        if (guard) {
            uv_timer_init(shoal_uv_conn_loop(u->conn), guard);
            guard->data = u;
            uv_timer_start(guard, on_guard, CLEANUP_GRACE_MS, 0);
            u->guard = guard;
            u->live++;
        }
    }
    u->t = NULL;
    u->live++;
    if (u->wait && !uv_is_closing((uv_handle_t *)u->wait)) {
        u->live++;
        uv_close((uv_handle_t *)u->wait, on_wait_closed);
    }
    if (u->put) {
        /* Removes the temporary file; put_done then closes the channel. */
        shoal_sftp_put_abort(u->put);
    } else if (u->sf) {
        shoal_sftp_close(u->sf);
    }
    if (u->x && u->x->ch) {
        remote_cmd *x = u->x;
        x->done = NULL;
        shoal_channel_close(x->ch);
        /* A partial temporary file may remain for scp/cat. */
        remove_temp(u);
    }
    shoal_uv_conn_flush(u->conn);
    up_release(u);
}
