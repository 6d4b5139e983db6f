/* ssh-agent over SSH_AUTH_SOCK for one connection: list the agent's keys
 * before connecting (they are offered first, as OpenSSH does) and ask it to
 * sign when the server accepts one of them. Messages are built and parsed by
 * src/auth/agent_proto.c; this file only moves bytes.
 *
 * With an agent limiter (shoal_uv_options.agent_limiter) the connection
 * first waits for a slot (AG_WAITING); the slot is held exactly as long as
 * the agent_client exists, and shoal__uv_agent_free() is the one place that
 * gives it back (or leaves the queue): after authentication, when the
 * agent fails, when the connection ends. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "auth/agent_proto.h"
#include "uv/conn_impl.h"

int shoal__uv_remember_agent_identity(shoal_uv_conn *c, int ident, int agent_index);

enum { AG_WAITING, AG_CONNECTING, AG_LISTING, AG_IDLE, AG_SIGNING, AG_DEAD };

struct agent_client {
    shoal_uv_conn *c;
    uv_pipe_t pipe;
    uv_connect_t creq;
    int pipe_open;
    int state;
    shoal_buf rx;
    void (*done)(shoal_uv_conn *c);
    uint8_t **blobs;
    size_t *blob_lens;
    unsigned nkeys;
    shoal__lim_node slot; /* place in c->opt.agent_limiter */
};

typedef struct agent_write {
    uv_write_t req;
    uint8_t data[];
} agent_write;

static void on_pipe_closed(uv_handle_t *h)
{
    agent_client *a = h->data;
    for (unsigned i = 0; i < a->nkeys; i++)
        free(a->blobs[i]);
    free(a->blobs);
    free(a->blob_lens);
    shoal_buf_free(&a->rx);
    free(a);
}

void shoal__uv_agent_free(shoal_uv_conn *c)
{
    agent_client *a = c->agent;
    if (!a)
        return;
    c->agent = NULL;
    a->c = NULL;
    a->state = AG_DEAD;
    shoal__lim_release(&a->slot);
    if (a->pipe_open) {
        a->pipe_open = 0;
        uv_close((uv_handle_t *)&a->pipe, on_pipe_closed);
    } else {
        uv_handle_t fake;
        fake.data = a;
        on_pipe_closed(&fake);
    }
}

/* The agent failed: carry on without it. Its socket and limiter slot are
 * let go of at once (a is still valid until the pipe's close callback, so
 * the libuv callback that called us may look at it after we return). */
static void agent_give_up(agent_client *a, const char *why)
{
    shoal_uv_conn *c = a->c;
    int was = a->state;
    void (*done)(shoal_uv_conn *c) = a->done;
    a->state = AG_DEAD;
    if (!c)
        return;
    shoal__uv_log(c, 1, "ssh-agent: %s", why);
    shoal__uv_agent_free(c);
    if (was == AG_WAITING || was == AG_CONNECTING || was == AG_LISTING) {
        if (done)
            done(c);
    } else if (was == AG_SIGNING) {
        shoal_session_sign_reply(c->s, NULL, 0);
        shoal_uv_conn_flush(c);
    }
}

static void on_agent_write(uv_write_t *req, int status)
{
    agent_write *w = (agent_write *)req;
    agent_client *a = req->data;
    free(w);
    if (status < 0 && a->c && a->state != AG_DEAD)
        agent_give_up(a, uv_strerror(status));
}

static int agent_send(agent_client *a, shoal_buf *msg)
{
    size_t n = shoal_buf_len(msg);
    agent_write *w = malloc(sizeof(*w) + n);
    if (!w)
        return SHOAL_ERR_NOMEM;
    memcpy(w->data, shoal_buf_ptr(msg), n);
    w->req.data = a;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int r = uv_write(&w->req, (uv_stream_t *)&a->pipe, &b, 1, on_agent_write);
    if (r < 0) {
        free(w);
        return SHOAL_ERR_AGENT;
    }
    return SHOAL_OK;
}

static int on_identity(void *ud, const shoal_agent_identity *id)
{
    agent_client *a = ud;
    shoal_uv_conn *c = a->c;
    int ident = shoal_session_add_identity(c->s, id->blob, id->blob_len, NULL);
    if (ident < 0) {
        shoal__uv_log(c, 2, "ssh-agent: skipping a key of an unsupported type");
        return 0;
    }
    uint8_t **nb = realloc(a->blobs, (a->nkeys + 1) * sizeof(*nb));
    if (!nb)
        return SHOAL_ERR_NOMEM;
    a->blobs = nb;
    size_t *nl = realloc(a->blob_lens, (a->nkeys + 1) * sizeof(*nl));
    if (!nl)
        return SHOAL_ERR_NOMEM;
    a->blob_lens = nl;
    a->blobs[a->nkeys] = malloc(id->blob_len);
    if (!a->blobs[a->nkeys])
        return SHOAL_ERR_NOMEM;
    memcpy(a->blobs[a->nkeys], id->blob, id->blob_len);
    a->blob_lens[a->nkeys] = id->blob_len;
    int rc = shoal__uv_remember_agent_identity(c, ident, (int)a->nkeys);
    a->nkeys++;
    return rc;
}

static void handle_message(agent_client *a, const uint8_t *body, size_t len)
{
    shoal_uv_conn *c = a->c;
    if (a->state == AG_LISTING) {
        int rc = shoal_agent_parse_identities(body, len, on_identity, a);
        if (rc) {
            agent_give_up(a, "bad identities answer");
            return;
        }
        shoal__uv_log(c, 1, "ssh-agent offers %u key%s", a->nkeys, a->nkeys == 1 ? "" : "s");
        a->state = AG_IDLE;
        if (a->done)
            a->done(c);
    } else if (a->state == AG_SIGNING) {
        const uint8_t *sig;
        size_t sl;
        a->state = AG_IDLE;
        int rc = shoal_agent_parse_sign_response(body, len, &sig, &sl);
        if (rc)
            shoal__uv_log(c, 0, "ssh-agent refused to sign: %s", shoal_strerror(rc));
        shoal_session_sign_reply(c->s, rc ? NULL : sig, rc ? 0 : sl);
        shoal_uv_conn_flush(c);
    } else {
        agent_give_up(a, "unsolicited message");
    }
}

static void on_agent_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static _Thread_local char abuf[16384];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(abuf, sizeof(abuf));
}

static void on_agent_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    agent_client *a = st->data;
    if (!a->c || a->state == AG_DEAD)
        return;
    if (nread < 0) {
        uv_read_stop(st);
        agent_give_up(a, nread == UV_EOF ? "agent closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (shoal_buf_put(&a->rx, buf->base, (size_t)nread)) {
        agent_give_up(a, "reply too large");
        return;
    }
    for (;;) {
        size_t msg_len = 0;
        int rc = shoal_agent_frame(shoal_buf_ptr(&a->rx), shoal_buf_len(&a->rx), &msg_len);
        if (rc) {
            agent_give_up(a, "reply too large");
            return;
        }
        if (!msg_len)
            break;
        /* Copy out: handling may send and reuse the buffer. */
        uint8_t *m = malloc(msg_len);
        if (!m) {
            agent_give_up(a, "out of memory");
            return;
        }
        memcpy(m, shoal_buf_ptr(&a->rx), msg_len);
        shoal_buf_consume(&a->rx, msg_len);
        handle_message(a, m + 4, msg_len - 4);
        free(m);
        if (!a->c || a->state == AG_DEAD)
            return;
    }
}

static void on_agent_connect(uv_connect_t *req, int status)
{
    agent_client *a = req->data;
    if (!a->c)
        return;
    if (status < 0) {
        agent_give_up(a, uv_strerror(status));
        return;
    }
    shoal_buf msg;
    shoal_buf_init(&msg, 64);
    int rc = shoal_agent_build_request_identities(&msg);
    if (!rc)
        rc = agent_send(a, &msg);
    shoal_buf_free(&msg);
    if (rc) {
        agent_give_up(a, "cannot send request");
        return;
    }
    a->state = AG_LISTING;
    uv_read_start((uv_stream_t *)&a->pipe, on_agent_alloc, on_agent_read);
}

static int agent_connect(agent_client *a)
{
    shoal_uv_conn *c = a->c;
    if (uv_pipe_init(c->loop, &a->pipe, 0) < 0)
        return SHOAL_ERR_AGENT;
    a->state = AG_CONNECTING;
    a->pipe.data = a;
    a->pipe_open = 1;
    a->creq.data = a;
    uv_pipe_connect(&a->creq, &a->pipe, c->agent_path, on_agent_connect);
    return SHOAL_OK;
}

/* Called by the limiter inside whatever released a slot: only schedule. */
static void on_slot_granted(shoal__lim_node *n)
{
    agent_client *a = (agent_client *)(void *)((char *)n - offsetof(agent_client, slot));
    if (a->c)
        shoal__uv_agent_wake(a->c);
}

void shoal__uv_agent_granted(shoal_uv_conn *c)
{
    agent_client *a = c->agent;
    if (!a || a->state != AG_WAITING)
        return;
    if (agent_connect(a) != SHOAL_OK)
        agent_give_up(a, "cannot create a socket");
}

int shoal__uv_agent_start(shoal_uv_conn *c, void (*done)(shoal_uv_conn *c))
{
    agent_client *a = calloc(1, sizeof(*a));
    if (!a)
        return SHOAL_ERR_NOMEM;
    a->c = c;
    a->done = done;
    a->state = AG_WAITING;
    shoal_buf_init(&a->rx, SHOAL_AGENT_MAX_MSG + 4);
    c->agent = a;
    if (c->opt.agent_limiter && !shoal__lim_acquire(c->opt.agent_limiter, &a->slot, on_slot_granted)) {
        /* Queued: no deadline runs while waiting (see shoal/uv.h). */
        shoal__uv_log(c, 2, "ssh-agent: waiting for a free agent connection slot");
        c->stage_deadline = UINT64_MAX;
        return SHOAL_OK;
    }
    int rc = agent_connect(a);
    if (rc)
        shoal__uv_agent_free(c); /* releases the slot too */
    return rc;
}

int shoal__uv_agent_sign(shoal_uv_conn *c, unsigned ident, const uint8_t *blob, size_t blob_len, const char *sigalg,
                         const uint8_t *data, size_t len)
{
    (void)blob;
    (void)blob_len;
    agent_client *a = c->agent;
    if (!a || a->state != AG_IDLE)
        return SHOAL_ERR_AGENT;
    int idx = c->agent_ident[ident];
    if (idx < 0 || (unsigned)idx >= a->nkeys)
        return SHOAL_ERR_NOT_FOUND;
    uint32_t flags = 0;
    if (strcmp(sigalg, "rsa-sha2-256") == 0)
        flags = SSH_AGENT_RSA_SHA2_256;
    else if (strcmp(sigalg, "rsa-sha2-512") == 0)
        flags = SSH_AGENT_RSA_SHA2_512;
    shoal_buf msg;
    shoal_buf_init(&msg, SHOAL_AGENT_MAX_MSG);
    int rc = shoal_agent_build_sign_request(&msg, a->blobs[idx], a->blob_lens[idx], data, len, flags);
    if (!rc)
        rc = agent_send(a, &msg);
    shoal_buf_free(&msg);
    if (rc)
        return rc;
    a->state = AG_SIGNING;
    return SHOAL_ERR_DEFERRED;
}
