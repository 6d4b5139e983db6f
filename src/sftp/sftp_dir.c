/* Directory listing (OPENDIR, READDIR until EOF, CLOSE): see
 * shoal_sftp_listdir in include/shoal/sftp.h.
 *
 * One READDIR is in flight at a time (each NAME reply may carry many
 * entries, so this costs little), and entries are handed over in batches
 * of at most DIR_BATCH, straight from the reply: nothing a server sends is
 * kept beyond its packet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftp/sftp_impl.h"

#define DIR_BATCH 64u

typedef struct sftp_dir {
    shoal_sftp_dir_entries_cb entries;
    shoal_sftp_status_cb done;
    void *ud;
    char *path;
    uint8_t handle[SFTP_MAX_HANDLE];
    size_t handle_len;
    int err;          /* first failure, reported once the handle is closed */
    char msg[640];
} sftp_dir;

static void dir_reply(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message);

static void dir_finish(shoal_sftp *sf, sftp_dir *d)
{
    if (d->done)
        d->done(sf, d->err, d->err ? d->msg : NULL, d->ud);
    free(d->path);
    free(d);
}

static void dir_set_err(sftp_dir *d, int err, const char *what, const sftp_reply *rep, const char *message)
{
    if (d->err)
        return;
    d->err = err;
    if (rep)
        shoal__sftp_status_message(d->msg, sizeof(d->msg), what, d->path, rep);
    else
        snprintf(d->msg, sizeof(d->msg), "%s %s: %s", what, d->path, message ? message : shoal_strerror(err));
}

/* Sends a request on the directory's handle (READDIR or CLOSE). */
static int dir_send(shoal_sftp *sf, sftp_dir *d, uint8_t type)
{
    sftp_req *rq = shoal__sftp_req_new(sf, type, dir_reply, d);
    if (!rq)
        return SHOAL_ERR_TOO_LARGE;
    size_t mark;
    int rc = shoal__sftp_send_begin(sf, rq, &mark);
    if (rc) {
        shoal__sftp_req_free(sf, rq);
        return rc;
    }
    rc = shoal_buf_put_string(&sf->out, d->handle, d->handle_len);
    return shoal__sftp_send_end(sf, rq, mark, rc);
}

static void dir_close(shoal_sftp *sf, sftp_dir *d)
{
    if (sf->state != SFTP_READY) { /* nobody to answer a CLOSE */
        if (!d->err)
            dir_set_err(d, sf->err ? sf->err : SHOAL_ERR_CLOSED, "listing of", NULL, "the sftp client is closed");
        dir_finish(sf, d);
        return;
    }
    if (dir_send(sf, d, SSH_FXP_CLOSE) != 0) {
        if (!d->err)
            dir_set_err(d, SHOAL_ERR_CLOSED, "close of", NULL, "cannot send");
        dir_finish(sf, d);
    }
}

/* Hands a NAME reply's entries over; 1 when the caller asked to stop. */
static int deliver(shoal_sftp *sf, sftp_dir *d, const sftp_reply *rep)
{
    shoal_rd r;
    shoal_rd_init(&r, rep->entries, rep->entries_len);
    shoal_sftp_dirent batch[DIR_BATCH];
    /* Names are not NUL-terminated in the packet: copied per batch. */
    char names[DIR_BATCH][256], lnames[DIR_BATCH][256];
    size_t n = 0;
    sftp_name_entry e;
    for (uint32_t i = 0; i < rep->count && shoal__sftp_name_next(&r, &e); i++) {
        size_t nl = e.name_len < sizeof(names[0]) - 1 ? e.name_len : sizeof(names[0]) - 1;
        if (nl != e.name_len)
            continue; /* longer than NAME_MAX: not a name we could use */
        memcpy(names[n], e.name, nl);
        names[n][nl] = 0;
        shoal__sftp_clean(lnames[n], sizeof(lnames[n]), e.longname, e.longname_len);
        batch[n].name = names[n];
        batch[n].longname = lnames[n];
        batch[n].attrs = e.attrs;
        if (++n == DIR_BATCH) {
            if (d->entries && d->entries(sf, batch, n, d->ud))
                return 1;
            n = 0;
        }
    }
    return n && d->entries && d->entries(sf, batch, n, d->ud);
}

static void dir_reply(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message)
{
    sftp_dir *d = rq->ctx;
    if (!rep) { /* the client is going away: no more requests */
        dir_set_err(d, err ? err : SHOAL_ERR_CLOSED, "listing of", NULL, message);
        dir_finish(sf, d);
        return;
    }
    switch (rq->type) {
    case SSH_FXP_OPENDIR:
        if (rep->type != SSH_FXP_HANDLE) {
            dir_set_err(d, shoal__sftp_status_err(rep->code), "opendir", rep, NULL);
            dir_finish(sf, d);
            return;
        }
        memcpy(d->handle, rep->handle, rep->handle_len);
        d->handle_len = rep->handle_len;
        break; /* READDIR below */
    case SSH_FXP_READDIR:
        if (rep->type == SSH_FXP_STATUS) {
            if (rep->code != SSH_FX_EOF)
                dir_set_err(d, shoal__sftp_status_err(rep->code), "readdir", rep, NULL);
            dir_close(sf, d);
            return;
        }
        if (deliver(sf, d, rep)) {
            dir_set_err(d, SHOAL_ERR_CANCELLED, "listing of", NULL, "stopped by the caller");
            dir_close(sf, d);
            return;
        }
        if (sf->state != SFTP_READY) { /* a callback closed the client */
            dir_set_err(d, SHOAL_ERR_CLOSED, "listing of", NULL, "client closed");
            dir_finish(sf, d);
            return;
        }
        break;
    default: /* CLOSE: whatever it says, the listing is over */
        dir_finish(sf, d);
        return;
    }
    int rc = dir_send(sf, d, SSH_FXP_READDIR);
    if (rc) {
        dir_set_err(d, rc, "readdir", NULL, "cannot send");
        dir_close(sf, d);
    }
}

int shoal_sftp_listdir(shoal_sftp *sf, const char *path, shoal_sftp_dir_entries_cb entries, shoal_sftp_status_cb done,
                       void *ud)
{
    if (!sf || !path || !path[0] || strlen(path) > SFTP_MAX_PATH)
        return SHOAL_ERR_INVALID_ARG;
    if (sf->state != SFTP_READY)
        return SHOAL_ERR_BAD_STATE;
    sftp_dir *d = calloc(1, sizeof(*d));
    if (!d)
        return SHOAL_ERR_NOMEM;
    d->entries = entries;
    d->done = done;
    d->ud = ud;
    d->path = strdup(path);
    if (!d->path) {
        free(d);
        return SHOAL_ERR_NOMEM;
    }
    shoal__sftp_enter(sf);
    int rc = SHOAL_ERR_TOO_LARGE;
    sftp_req *rq = shoal__sftp_req_new(sf, SSH_FXP_OPENDIR, dir_reply, d);
    if (rq) {
        size_t mark;
        rc = shoal__sftp_send_begin(sf, rq, &mark);
        if (rc) {
            shoal__sftp_req_free(sf, rq);
        } else {
            rc = shoal_buf_put_cstring(&sf->out, path);
            rc = shoal__sftp_send_end(sf, rq, mark, rc);
        }
    }
    if (rc) {
        free(d->path);
        free(d);
    }
    shoal__sftp_leave(sf);
    return rc;
}
