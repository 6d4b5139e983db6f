/* fault_faultpeer: an SSH server for tests that misbehaves on purpose.
 *
 * It listens on loopback addresses only, each listener with one "mode":
 * a healthy server (ok), or one that stops, stalls or resets the TCP
 * connection at a chosen phase of the protocol. It runs libshoal's
 * sans-I/O server session behind its own small libuv socket loop, so every
 * byte in both directions passes through here first: until NEWKEYS the
 * packets are in the clear, and their message numbers tell where the
 * session is (KEXINIT 20, NEWKEYS 21, KEX_ECDH_REPLY / KEXDH_REPLY 31).
 * Later phases are reached through the session's deferred decisions (an
 * authentication attempt or a channel open that is never answered).
 *
 * A reset-* mode closes with SO_LINGER {1, 0} (the kernel sends RST) at the
 * moment the client has sent what the phase asks of it and waits for the
 * server: the client then sees the reset on a read, deterministically,
 * rather than sometimes on a write of its own.
 *
 *   fault_faultpeer --hostkey FILE [--hostkey2 FILE] [--authorized-keys FILE]
 *                   --listen SPEC [--mode MODE[,MODE...]] [--listen SPEC [--mode ...]]...
 *                   [--ready-file FILE] [--max-lifetime SECONDS] [-v]
 *   fault_faultpeer --list-modes
 *
 * SPEC is ADDR:PORT, [::1]:PORT or FIRST-LAST:PORT (an IPv4 range, every
 * address of which is bound). A mode list is assigned to the addresses of
 * the preceding SPEC in turn (cycling); "all" stands for every mode in the
 * order of --list-modes. Without --mode a listener is "ok".
 *
 * Once every listener is bound, "listen ADDR:PORT MODE" lines and then
 * "ready" are printed on stdout, and "ready" is written to --ready-file.
 * SIGTERM / SIGINT close everything and exit 0. Fault points reached are
 * logged on stderr, one line each ("ADDR:PORT MODE PEER: what"). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "shoal/channel.h"
#include "shoal/keys.h"
#include "shoal/server.h"
#include "shoal/session.h"

/* ---------------------------------------------------------------- modes */

typedef enum mode {
    M_OK,
    M_SILENT_ACCEPT,
    M_BANNER_NO_NEWLINE,
    M_ENDLESS_PREBANNER,
    M_SILENT_AFTER_BANNER,
    M_SILENT_AFTER_KEXINIT,
    M_SILENT_AFTER_KEXREPLY,
    M_SILENT_AFTER_NEWKEYS,
    M_NO_AUTH_REPLY,
    M_CHANNEL_NEVER_CONFIRMED,
    M_EXEC_NEVER_EXITS,
    M_TRICKLE,
    M_RESET_ACCEPT,
    M_RESET_BANNER,
    M_RESET_KEXINIT,
    M_RESET_KEXREPLY,
    M_RESET_NEWKEYS,
    M_RESET_AUTH,
    M_RESET_CHANNEL,
    M_RESET_EXEC,
    M_CHANGED_HOSTKEY,
    M_COUNT
} mode;

static const char *const MODE_NAMES[M_COUNT] = {
    "ok",
    "silent-accept",
    "banner-no-newline",
    "endless-prebanner",
    "silent-after-banner",
    "silent-after-kexinit",
    "silent-after-kexreply",
    "silent-after-newkeys",
    "no-auth-reply",
    "channel-never-confirmed",
    "exec-never-exits",
    "trickle",
    "reset-accept",
    "reset-banner",
    "reset-kexinit",
    "reset-kexreply",
    "reset-newkeys",
    "reset-auth",
    "reset-channel",
    "reset-exec",
    "changed-hostkey",
};

static const char *const MODE_HELP[M_COUNT] = {
    "healthy: publickey auth, exec \"echo X\" prints X, any other command prints itself; exit 0",
    "accepts, never sends a byte",
    "sends \"SSH-2.0-fault\" without CR LF, then nothing",
    "sends a pre-banner text line every 10 ms, never a version line",
    "sends its version line, then nothing",
    "sends its version line and KEXINIT, then nothing",
    "sends the key exchange reply, never NEWKEYS",
    "completes the key exchange, never answers SERVICE_REQUEST",
    "never answers the first USERAUTH_REQUEST",
    "authenticates, never answers CHANNEL_OPEN",
    "accepts exec, then sends nothing more on the channel",
    "sends its version line one byte every 5 s (then behaves)",
    "accepts, sends nothing, TCP RST when the client's first bytes arrive (or after 1 s)",
    "sends \"SSH-2.0-\" (half a version line), TCP RST 100 ms after the client's version line",
    "sends version and KEXINIT, TCP RST when the client's key exchange init arrives",
    "sends the key exchange reply without NEWKEYS, TCP RST when the client's NEWKEYS arrives",
    "completes the key exchange, TCP RST on SERVICE_REQUEST",
    "TCP RST on the first USERAUTH_REQUEST",
    "TCP RST on CHANNEL_OPEN",
    "TCP RST on the exec request",
    "healthy, but presents --hostkey2 instead of --hostkey",
};

#define MAX_LISTENERS 4096
#define MAX_RANGE 1024
#define MAX_CONNS 8192
#define MAX_QUEUED (1u << 20) /* unsent bytes per connection before we stop pulling output */
#define PREBANNER_MS 10u
#define TRICKLE_MS 5000u
#define RESET_FALLBACK_MS 1000u
#define RESET_BANNER_DELAY_MS 100u
#define DEFAULT_LIFETIME_S 300u
#define MAX_AUTH_KEYS 1024

/* ---------------------------------------------------------------- sniffer
 *
 * Follows one direction of the byte stream until NEWKEYS: the version line
 * (lines before it that do not start with "SSH-" are skipped), then
 * cleartext binary packets: uint32 length, byte padding length, byte
 * message number, the rest. Reports the end of the version line and of
 * each packet; goes quiet after NEWKEYS (encrypted from then on). */

enum { SN_VERSION, SN_HEADER, SN_BODY, SN_OFF };
#define EV_NONE (-1)
#define EV_VERSION 256

typedef struct sniff {
    int state;
    uint8_t hdr[6];
    unsigned hn;
    uint64_t left;
    char pre[4];
    unsigned line_len;
} sniff;

/* Consumes bytes up to and including the next event (returned in *ev), or
 * all of them (*ev = EV_NONE). */
static size_t sniff_step(sniff *sn, const uint8_t *p, size_t n, int *ev)
{
    *ev = EV_NONE;
    size_t i = 0;
    while (i < n) {
        if (sn->state == SN_OFF)
            return n;
        if (sn->state == SN_VERSION) {
            uint8_t b = p[i++];
            if (sn->line_len < sizeof(sn->pre))
                sn->pre[sn->line_len] = (char)b;
            if (sn->line_len < UINT32_MAX)
                sn->line_len++;
            if (b == '\n') {
                int version = sn->line_len > 4 && memcmp(sn->pre, "SSH-", 4) == 0;
                sn->line_len = 0;
                if (version) {
                    sn->state = SN_HEADER;
                    sn->hn = 0;
                    *ev = EV_VERSION;
                    return i;
                }
            }
        } else if (sn->state == SN_HEADER) {
            sn->hdr[sn->hn++] = p[i++];
            if (sn->hn == sizeof(sn->hdr)) {
                uint32_t len = (uint32_t)sn->hdr[0] << 24 | (uint32_t)sn->hdr[1] << 16 | (uint32_t)sn->hdr[2] << 8 |
                               sn->hdr[3];
                if (len < 2 || len > 262144) {
                    sn->state = SN_OFF; /* not a cleartext packet: stop following */
                    return n;
                }
                sn->left = len - 2;
                sn->state = SN_BODY;
            }
        } else { /* SN_BODY */
            size_t k = n - i;
            if (k > sn->left)
                k = (size_t)sn->left;
            i += k;
            sn->left -= k;
        }
        if (sn->state == SN_BODY && sn->left == 0) {
            *ev = sn->hdr[5];
            sn->state = *ev == 21 ? SN_OFF : SN_HEADER;
            sn->hn = 0;
            return i;
        }
    }
    return i;
}

/* ---------------------------------------------------------------- state */

typedef struct listener {
    uv_tcp_t tcp;
    mode m;
    char name[80]; /* "addr:port" */
    int open;
} listener;

typedef struct conn conn;

typedef struct chan {
    conn *c;
    shoal_channel *ch;
    struct chan *next;
    char *out; /* ok mode: what the command prints */
    size_t out_len, out_off;
    int exec_pending; /* the exec reply is still to be sent */
    int exec_running; /* output being written */
} chan;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;  /* session deadline and lifetime */
    uv_timer_t ftimer; /* trickle / pre-banner lines */
    int handles;       /* open handles; freed at 0 */
    conn *prev, *next;
    listener *l;
    mode m;
    char peer[80];
    shoal_session *s;
    chan *chans;
    sniff in_sn, out_sn;
    uint64_t out_consumed; /* session output taken so far (stream offset) */
    uint64_t out_sniffed;  /* session output followed by out_sn so far */
    uint64_t out_limit;    /* stream offset up to which output may go out */
    uint64_t version_end;  /* end of our version line in the output (trickle) */
    int out_discard;       /* output past out_limit is dropped (else held) */
    int in_frozen;         /* input is read and dropped */
    const char *reset_on_input; /* set: the next input byte triggers a RST (the reason) */
    int seen_client_kexinit;
    int reset_when_sent;   /* RST once out_limit is reached and written */
    int want_reset;        /* set inside a session callback */
    int closing;
    unsigned lines;
    uint64_t accepted_at;
    uint64_t expires;
};

static uv_loop_t *loop;
static shoal_key *host_key, *host_key2;
static shoal_key *auth_keys[MAX_AUTH_KEYS];
static unsigned n_auth_keys;
static shoal_server_config cfg1, cfg2;
static listener *listeners[MAX_LISTENERS];
static unsigned n_listeners;
static conn *conns;
static unsigned n_conns;
static uint64_t lifetime_ms = DEFAULT_LIFETIME_S * 1000u;
static int verbose;
static uv_signal_t sig_term, sig_int;
static int shutting_down;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "faultpeer: %s\n", msg);
}

#define CLOG(c, ...)                                                                                               \
    do {                                                                                                           \
        char cl_msg_[512];                                                                                         \
        snprintf(cl_msg_, sizeof(cl_msg_), __VA_ARGS__);                                                           \
        logf_("%s %s %s: %s", (c)->l->name, MODE_NAMES[(c)->m], (c)->peer, cl_msg_);                               \
    } while (0)

/* ---------------------------------------------------------------- closing */

static void conn_free(conn *c)
{
    if (c->s)
        shoal_session_free(c->s); /* may call channel on_close callbacks */
    while (c->chans) {
        chan *k = c->chans;
        c->chans = k->next;
        free(k->out);
        free(k);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n_conns--;
    free(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles == 0)
        conn_free(c);
}

/* rst: SO_LINGER {1, 0} before close(), so the kernel answers with RST. */
static void conn_close(conn *c, int rst)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (rst) {
        uv_os_fd_t fd;
        struct linger lg = {1, 0};
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->ftimer, on_conn_handle_closed);
}

static void conn_reset(conn *c, const char *why)
{
    if (c->closing)
        return;
    CLOG(c, "TCP RST %s", why);
    conn_close(c, 1);
}

/* ---------------------------------------------------------------- output */

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char data[];
} wreq;

static void after_write(conn *c);

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        if (verbose)
            CLOG(c, "write failed: %s", uv_strerror(status));
        conn_close(c, 0);
        return;
    }
    after_write(c);
}

static int write_bytes(conn *c, const void *p, size_t n)
{
    if (c->closing || n == 0)
        return c->closing ? -1 : 0;
    wreq *w = malloc(sizeof(*w) + n);
    if (!w) {
        conn_close(c, 0);
        return -1;
    }
    memcpy(w->data, p, n);
    w->c = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w);
        conn_close(c, 0);
        return -1;
    }
    return 0;
}

/* A fault point in the output: nothing after offset `end` goes out. */
static void cut_output(conn *c, uint64_t end, const char *what)
{
    c->out_limit = end;
    c->out_discard = 1;
    c->in_frozen = 1; /* nothing the client says matters any more */
    CLOG(c, "%s", what);
}

static void on_output_event(conn *c, int ev, uint64_t end)
{
    if (ev == EV_VERSION) {
        c->version_end = end;
        if (c->m == M_SILENT_AFTER_BANNER)
            cut_output(c, end, "version line sent; silent from now on");
    } else if (ev == 20) {
        if (c->m == M_SILENT_AFTER_KEXINIT)
            cut_output(c, end, "KEXINIT sent; silent from now on");
    } else if (ev == 31) {
        if (c->m == M_SILENT_AFTER_KEXREPLY) {
            cut_output(c, end, "key exchange reply sent; NEWKEYS withheld, silent from now on");
        } else if (c->m == M_RESET_KEXREPLY) {
            /* Keep reading: the RST comes with the client's NEWKEYS. */
            c->out_limit = end;
            c->out_discard = 1;
            CLOG(c, "key exchange reply sent; NEWKEYS withheld");
        }
    }
}

static void maybe_reset_after_send(conn *c)
{
    if (c->closing || !c->reset_when_sent || c->out_consumed < c->out_limit || c->tcp.write_queue_size)
        return;
    conn_reset(c, "after the last byte allowed out");
}

/* Moves the session's output to the socket, through the fault filter. */
static void flush_out(conn *c)
{
    while (!c->closing && c->s && c->tcp.write_queue_size < MAX_QUEUED) {
        const uint8_t *d;
        size_t n = shoal_session_output(c->s, &d);
        if (n == 0)
            break;
        /* Follow what is new in this buffer (before any of it is dropped). */
        if (c->out_sniffed < c->out_consumed)
            c->out_sniffed = c->out_consumed;
        size_t done = (size_t)(c->out_sniffed - c->out_consumed);
        while (done < n && c->out_sn.state != SN_OFF) {
            int ev;
            size_t k = sniff_step(&c->out_sn, d + done, n - done, &ev);
            done += k;
            c->out_sniffed += k;
            if (ev != EV_NONE)
                on_output_event(c, ev, c->out_sniffed);
        }
        size_t send = n;
        if (c->out_limit != UINT64_MAX) {
            uint64_t room = c->out_limit > c->out_consumed ? c->out_limit - c->out_consumed : 0;
            if (send > room)
                send = (size_t)room;
        }
        if (send == 0) {
            if (!c->out_discard)
                break; /* held back (trickle) */
            send = n;  /* past the fault point: dropped */
        } else if (write_bytes(c, d, send) != 0) {
            return;
        }
        shoal_session_output_consume(c->s, send);
        c->out_consumed += send;
    }
    maybe_reset_after_send(c);
}

/* ---------------------------------------------------------------- timers */

static void on_timer(uv_timer_t *t);

static void schedule(conn *c)
{
    if (c->closing)
        return;
    uint64_t d = c->s ? shoal_session_deadline(c->s) : UINT64_MAX;
    if (c->expires < d)
        d = c->expires;
    uint64_t now = uv_now(loop);
    uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

static void run_execs(conn *c);

/* After any call into the session: act on what its callbacks decided,
 * send its output, close when it is done. */
static void after_session(conn *c)
{
    if (c->closing)
        return;
    if (c->want_reset) {
        conn_close(c, 1);
        return;
    }
    run_execs(c);
    flush_out(c);
    if (c->closing)
        return;
    if (c->s && shoal_session_is_closed(c->s) && shoal_session_is_done(c->s) && c->tcp.write_queue_size == 0) {
        const char *msg = NULL;
        int err = shoal_session_error(c->s, &msg);
        if (verbose || (err && c->m != M_OK && c->m != M_CHANGED_HOSTKEY))
            CLOG(c, "session ended: %s", err ? (msg ? msg : "error") : "orderly");
        conn_close(c, 0);
        return;
    }
    schedule(c);
}

static void after_write(conn *c)
{
    maybe_reset_after_send(c);
    after_session(c);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->closing)
        return;
    uint64_t now = uv_now(loop);
    if (now >= c->expires) {
        CLOG(c, "lifetime over: closing");
        conn_close(c, 0);
        return;
    }
    if (c->s)
        shoal_session_tick(c->s, now);
    after_session(c);
}

static void on_prebanner(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->closing)
        return;
    /* Only when the last line left: a client that does not read cannot
     * make us queue without bound. */
    if (c->tcp.write_queue_size)
        return;
    char line[80];
    int n = snprintf(line, sizeof(line), "fault peer pre-banner line %u, no version will follow\r\n", c->lines);
    if (c->lines == 0)
        CLOG(c, "sending pre-banner lines every %u ms", PREBANNER_MS);
    c->lines++;
    write_bytes(c, line, (size_t)n);
}

static void on_reset_banner(uv_timer_t *t)
{
    conn_reset(t->data, "after half a version line");
}

static void on_reset_fallback(uv_timer_t *t)
{
    conn_reset(t->data, "after 1 s without a byte from the client");
}

static void on_trickle(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->closing)
        return;
    if (c->out_limit == UINT64_MAX)
        return;
    c->out_limit++;
    if (c->version_end && c->out_limit >= c->version_end) {
        CLOG(c, "version line complete after %u bytes; behaving from now on", (unsigned)c->version_end);
        c->out_limit = UINT64_MAX;
        uv_timer_stop(&c->ftimer);
    }
    after_session(c);
}

/* ---------------------------------------------------------------- input */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[64 * 1024];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

/* A RST decided while reading: sent by after_session() before the
 * session's answer to what was just read can go out. */
static void reset_soon(conn *c, const char *why)
{
    c->want_reset = 1;
    CLOG(c, "TCP RST %s", why);
}

/* Each RST comes when the client has sent what the phase asks of it and
 * waits for us, so it finds the client reading, not writing. */
static void on_input_event(conn *c, int ev)
{
    if (ev == EV_VERSION) {
        if (c->m == M_RESET_BANNER) {
            /* Not at once: our half line (sent at accept) must reach the
             * client in a read of its own, not together with the RST. */
            c->in_frozen = 1;
            CLOG(c, "client version line received; TCP RST in %u ms", RESET_BANNER_DELAY_MS);
            uv_timer_start(&c->ftimer, on_reset_banner, RESET_BANNER_DELAY_MS, 0);
        }
    } else if (ev == 20) {
        c->seen_client_kexinit = 1;
    } else if (ev == 21) {
        if (c->m == M_SILENT_AFTER_NEWKEYS) {
            c->in_frozen = 1;
            CLOG(c, "key exchange complete; nothing after NEWKEYS is answered");
        } else if (c->m == M_RESET_NEWKEYS) {
            c->reset_on_input = "on the first packet after NEWKEYS (SERVICE_REQUEST)";
        } else if (c->m == M_RESET_KEXREPLY) {
            reset_soon(c, "on the client's NEWKEYS (ours withheld)");
        }
    } else if (ev >= 30 && ev <= 49) {
        if (c->m == M_RESET_KEXINIT && c->seen_client_kexinit)
            reset_soon(c, "on the client's key exchange init (no reply sent)");
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (c->closing)
        return;
    if (nread < 0) {
        /* How long the client held on (for checking its deadlines). */
        uv_update_time(loop);
        if (verbose || c->m != M_OK)
            CLOG(c, "client closed the connection (%s) after %llu ms",
                 nread == UV_EOF ? "EOF" : uv_strerror((int)nread),
                 (unsigned long long)(uv_now(loop) - c->accepted_at));
        conn_close(c, 0);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread, off = 0;
    while (off < n && !c->closing && !c->in_frozen) {
        if (c->reset_on_input) {
            conn_reset(c, c->reset_on_input);
            return;
        }
        size_t k = n - off;
        int ev = EV_NONE;
        if (c->in_sn.state != SN_OFF)
            k = sniff_step(&c->in_sn, p + off, n - off, &ev);
        if (c->s)
            shoal_session_recv(c->s, p + off, k, uv_now(loop));
        off += k;
        if (ev != EV_NONE)
            on_input_event(c, ev);
        after_session(c);
    }
}

/* ---------------------------------------------------------------- session callbacks */

static int cb_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    conn *c = ud;
    (void)s;
    if (c->m == M_NO_AUTH_REPLY) {
        CLOG(c, "USERAUTH_REQUEST from \"%s\" held, never answered", req->user ? req->user : "");
        return SHOAL_ERR_DEFERRED;
    }
    if (c->m == M_RESET_AUTH) {
        c->want_reset = 1;
        CLOG(c, "TCP RST on USERAUTH_REQUEST");
        return SHOAL_ERR_DEFERRED;
    }
    if (req->method != SHOAL_METHOD_PUBLICKEY || !req->key)
        return SHOAL_AUTH_DENY;
    for (unsigned i = 0; i < n_auth_keys; i++)
        if (shoal_key_equal_public(req->key, auth_keys[i]))
            return SHOAL_AUTH_SUCCESS;
    return SHOAL_AUTH_DENY;
}

static void cb_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s;
    conn *c = ud;
    if (verbose)
        CLOG(c, "session closed (%d): %s", err, message ? message : "");
}

static void cb_log(shoal_session *s, int level, const char *message, void *ud)
{
    (void)s;
    conn *c = ud;
    if (verbose > level)
        CLOG(c, "%s", message);
}

static void chan_remove(conn *c, chan *k)
{
    for (chan **pp = &c->chans; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    free(k->out);
    free(k);
}

/* What the pretend command prints: "echo X" prints X; anything else prints
 * itself. */
static char *fake_output(const char *cmd, size_t *len)
{
    const char *text = cmd;
    if (strcmp(cmd, "echo") == 0)
        text = "";
    else if (strncmp(cmd, "echo ", 5) == 0)
        text = cmd + 5;
    size_t n = strlen(text);
    char *o = malloc(n + 2);
    if (!o)
        return NULL;
    memcpy(o, text, n);
    o[n] = '\n';
    o[n + 1] = 0;
    *len = n + 1;
    return o;
}

static int ch_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    chan *k = ud;
    conn *c = k->c;
    if (strcmp(req->type, "exec") == 0) {
        if (c->m == M_RESET_EXEC) {
            c->want_reset = 1;
            CLOG(c, "TCP RST on exec \"%s\"", req->command ? req->command : "");
            return SHOAL_ERR_DEFERRED;
        }
        if (c->m == M_EXEC_NEVER_EXITS) {
            CLOG(c, "exec \"%s\" accepted; it never produces output or exits", req->command ? req->command : "");
            return 1;
        }
        if (k->exec_pending || k->exec_running || k->out)
            return 0;
        k->out = fake_output(req->command ? req->command : "", &k->out_len);
        if (!k->out)
            return 0;
        k->exec_pending = 1; /* replied, then run, from run_execs() */
        return SHOAL_ERR_DEFERRED;
    }
    if (strcmp(req->type, "pty-req") == 0 || strcmp(req->type, "env") == 0 ||
        strcmp(req->type, "window-change") == 0)
        return 1;
    return 0;
}

static void ch_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    (void)ch;
    (void)stream;
    (void)data;
    (void)len;
    (void)ud; /* stdin of the pretend command: ignored */
}

static void ch_eof(shoal_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static void exec_progress(chan *k)
{
    while (k->out_off < k->out_len) {
        size_t w = 0;
        if (shoal_channel_write(k->ch, k->out + k->out_off, k->out_len - k->out_off, &w) != 0)
            return;
        if (w == 0)
            return; /* on_writable continues */
        k->out_off += w;
    }
    if (k->exec_running) {
        k->exec_running = 0;
        shoal_channel_exit_status(k->ch, 0);
        shoal_channel_send_eof(k->ch);
        shoal_channel_close(k->ch);
    }
}

static void ch_writable(shoal_channel *ch, void *ud)
{
    (void)ch;
    chan *k = ud;
    if (k->exec_running)
        exec_progress(k);
}

static void ch_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    chan *k = ud;
    chan_remove(k->c, k);
}

static const shoal_server_channel_callbacks CHAN_CB = {
    sizeof(shoal_server_channel_callbacks), ch_request, ch_data, ch_eof, ch_writable, ch_close};

static void run_execs(conn *c)
{
    /* Start over after each one: a channel may go away meanwhile. */
    for (;;) {
        chan *k = c->chans;
        while (k && !k->exec_pending)
            k = k->next;
        if (!k)
            return;
        k->exec_pending = 0;
        k->exec_running = 1;
        if (shoal_channel_request_reply(k->ch, 1) == 0)
            exec_progress(k);
        else
            k->exec_running = 0;
    }
}

static int cb_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    conn *c = ud;
    if (c->m == M_CHANNEL_NEVER_CONFIRMED) {
        CLOG(c, "CHANNEL_OPEN \"%s\" held, never answered", type);
        return SHOAL_ERR_DEFERRED;
    }
    if (c->m == M_RESET_CHANNEL) {
        c->want_reset = 1;
        CLOG(c, "TCP RST on CHANNEL_OPEN \"%s\"", type);
        return SHOAL_ERR_DEFERRED;
    }
    if (strcmp(type, "session") != 0)
        return 3;
    chan *k = calloc(1, sizeof(*k));
    if (!k)
        return 4;
    k->c = c;
    k->ch = ch;
    k->next = c->chans;
    c->chans = k;
    shoal_channel_set_server_callbacks(ch, &CHAN_CB, k);
    return 0;
}

static void cb_authenticated(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    conn *c = ud;
    if (verbose)
        CLOG(c, "user \"%s\" authenticated", user);
}

static const shoal_server_callbacks SESSION_CB = {
    sizeof(shoal_server_callbacks), cb_auth, cb_authenticated, cb_channel_open, cb_closed, cb_log};

/* ---------------------------------------------------------------- accept */

static void format_peer(conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    char a[64] = "";
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, a, sizeof(a));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", a, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, a, sizeof(a));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", a, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    listener *l = server->data;
    if (status < 0) {
        logf_("%s: accept failed: %s", l->name, uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return; /* stays in the backlog */
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->ftimer);
    c->tcp.data = c->timer.data = c->ftimer.data = c;
    c->handles = 3;
    c->l = l;
    c->m = l->m;
    c->out_limit = UINT64_MAX;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, 0);
        return;
    }
    format_peer(c);
    if (n_conns > MAX_CONNS) {
        CLOG(c, "too many connections (%u): dropped", n_conns - 1);
        conn_close(c, 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_update_time(loop);
    c->accepted_at = uv_now(loop);
    c->expires = c->accepted_at + lifetime_ms;
    if (shoal_session_new_server(&c->s, c->m == M_CHANGED_HOSTKEY ? &cfg2 : &cfg1, &SESSION_CB, c) != 0 ||
        shoal_session_start(c->s, uv_now(loop)) != 0) {
        CLOG(c, "cannot start a session");
        conn_close(c, 0);
        return;
    }
    if (verbose)
        CLOG(c, "connection accepted");
    switch (c->m) {
    case M_SILENT_ACCEPT:
    case M_BANNER_NO_NEWLINE:
    case M_ENDLESS_PREBANNER:
        c->out_limit = 0;
        c->out_discard = 1;
        c->in_frozen = 1;
        if (c->m == M_SILENT_ACCEPT) {
            CLOG(c, "accepted; silent from now on");
        } else if (c->m == M_BANNER_NO_NEWLINE) {
            CLOG(c, "sending \"SSH-2.0-fault\" without CR LF; silent from now on");
            write_bytes(c, "SSH-2.0-fault", 13);
        } else {
            uv_timer_start(&c->ftimer, on_prebanner, 0, PREBANNER_MS);
        }
        break;
    case M_RESET_ACCEPT:
        c->out_limit = 0;
        c->out_discard = 1;
        c->reset_on_input = "on the client's first bytes (nothing sent)";
        /* A client that waits for us first gets it after a second. */
        uv_timer_start(&c->ftimer, on_reset_fallback, RESET_FALLBACK_MS, 0);
        break;
    case M_RESET_BANNER:
        c->out_limit = 8; /* "SSH-2.0-": the rest of our version never goes out */
        c->out_discard = 1;
        break;
    case M_TRICKLE:
        c->out_limit = 0; /* released one byte at a time by on_trickle */
        c->out_discard = 0;
        CLOG(c, "sending the version line one byte every %u ms", TRICKLE_MS);
        uv_timer_start(&c->ftimer, on_trickle, 0, TRICKLE_MS);
        break;
    default:
        break;
    }
    if (c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c, 0);
        return;
    }
    after_session(c);
}

/* ---------------------------------------------------------------- setup */

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void shutdown_all(void)
{
    if (shutting_down)
        return;
    shutting_down = 1;
    for (unsigned i = 0; i < n_listeners; i++) {
        if (listeners[i] && listeners[i]->open) {
            listeners[i]->open = 0;
            uv_close((uv_handle_t *)&listeners[i]->tcp, on_listener_closed);
        }
        listeners[i] = NULL;
    }
    for (conn *c = conns; c; c = c->next)
        conn_close(c, 0);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    logf_("signal %d: shutting down (%u connections open)", signum, n_conns);
    shutdown_all();
}

static int parse_mode(const char *name, mode *out)
{
    for (int i = 0; i < M_COUNT; i++) {
        if (strcmp(name, MODE_NAMES[i]) == 0) {
            *out = (mode)i;
            return 0;
        }
    }
    return -1;
}

/* One --listen with its --mode list: binds every address. */
typedef struct listen_spec {
    const char *spec;
    const char *modes;
} listen_spec;

static int ip4_parse(const char *s, uint32_t *out)
{
    struct sockaddr_in a;
    if (uv_ip4_addr(s, 0, &a) != 0)
        return -1;
    *out = ntohl(a.sin_addr.s_addr);
    return 0;
}

static int bind_one(const struct sockaddr *sa, mode m, const char *name)
{
    if (n_listeners >= MAX_LISTENERS) {
        logf_("too many listeners (max %u)", MAX_LISTENERS);
        return -1;
    }
    listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -1;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    l->m = m;
    l->open = 1;
    snprintf(l->name, sizeof(l->name), "%s", name);
    listeners[n_listeners++] = l;
    int r = uv_tcp_bind(&l->tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 511, on_accept);
    if (r != 0) {
        logf_("cannot listen on %s: %s", name, uv_strerror(r));
        return -1;
    }
    return 0;
}

static int setup_listen(const listen_spec *ls)
{
    mode modes[M_COUNT * 4];
    unsigned nm = 0;
    if (!ls->modes || !*ls->modes) {
        modes[nm++] = M_OK;
    } else {
        char *copy = strdup(ls->modes), *save = NULL;
        if (!copy)
            return -1;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (strcmp(tok, "all") == 0) {
                for (int i = 0; i < M_COUNT && nm < sizeof(modes) / sizeof(modes[0]); i++)
                    modes[nm++] = (mode)i;
                continue;
            }
            if (nm >= sizeof(modes) / sizeof(modes[0]) || parse_mode(tok, &modes[nm]) != 0) {
                logf_("unknown mode \"%s\" (see --list-modes)", tok);
                free(copy);
                return -1;
            }
            nm++;
        }
        free(copy);
        if (nm == 0) {
            logf_("empty mode list");
            return -1;
        }
    }
    const char *spec = ls->spec;
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        logf_("--listen %s: ADDR:PORT expected", spec);
        return -1;
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535) {
        logf_("--listen %s: bad port", spec);
        return -1;
    }
    char host[128];
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof(host)) {
        logf_("--listen %s: address too long", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = 0;
    char name[96];
    if (host[0] == '[') {
        if (hl < 2 || host[hl - 1] != ']') {
            logf_("--listen %s: bad address", spec);
            return -1;
        }
        host[hl - 1] = 0;
        struct sockaddr_in6 a6;
        if (uv_ip6_addr(host + 1, (int)port, &a6) != 0 || !IN6_IS_ADDR_LOOPBACK(&a6.sin6_addr)) {
            logf_("--listen %s: only loopback addresses ([::1]) are allowed", spec);
            return -1;
        }
        snprintf(name, sizeof(name), "[::1]:%lu", port);
        return bind_one((const struct sockaddr *)&a6, modes[0], name);
    }
    uint32_t first, last;
    char *dash = strchr(host, '-');
    if (dash) {
        *dash = 0;
        if (ip4_parse(host, &first) != 0 || ip4_parse(dash + 1, &last) != 0 || last < first) {
            logf_("--listen %s: bad address range", spec);
            return -1;
        }
    } else if (ip4_parse(host, &first) != 0) {
        logf_("--listen %s: bad IPv4 address", spec);
        return -1;
    } else {
        last = first;
    }
    if ((first >> 24) != 127 || (last >> 24) != 127) {
        logf_("--listen %s: only loopback addresses (127.0.0.0/8, [::1]) are allowed", spec);
        return -1;
    }
    if (last - first >= MAX_RANGE) {
        logf_("--listen %s: more than %u addresses", spec, MAX_RANGE);
        return -1;
    }
    for (uint32_t a = first, i = 0;; a++, i++) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(a);
        char ip[32];
        uv_ip4_name(&sa, ip, sizeof(ip));
        snprintf(name, sizeof(name), "%s:%lu", ip, port);
        if (bind_one((const struct sockaddr *)&sa, modes[i % nm], name) != 0)
            return -1;
        if (a == last)
            break;
    }
    return 0;
}

static int load_authorized_keys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        logf_("%s: %s", path, strerror(errno));
        return -1;
    }
    char line[16384];
    unsigned lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        shoal_key *k = NULL;
        if (shoal_key_from_public_text(p, strlen(p), &k) != 0) {
            /* Options first ("restrict,command=... type key"): try the rest. */
            char *sp = strpbrk(p, " \t");
            if (!sp || shoal_key_from_public_text(sp + 1, strlen(sp + 1), &k) != 0) {
                logf_("%s:%u: not a public key line, ignored", path, lineno);
                continue;
            }
        }
        if (n_auth_keys >= MAX_AUTH_KEYS) {
            shoal_key_free(k);
            logf_("%s: more than %u keys; the rest are ignored", path, MAX_AUTH_KEYS);
            break;
        }
        auth_keys[n_auth_keys++] = k;
    }
    fclose(f);
    return 0;
}

static int write_ready_file(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fputs("ready\n", f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        logf_("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fault_faultpeer --hostkey FILE [--hostkey2 FILE] [--authorized-keys FILE]\n"
            "                       --listen SPEC [--mode MODE[,MODE...]] [--listen SPEC [--mode ...]]...\n"
            "                       [--ready-file FILE] [--max-lifetime SECONDS] [-v]\n"
            "       fault_faultpeer --list-modes\n"
            "SPEC: ADDR:PORT, [::1]:PORT or FIRST-LAST:PORT (IPv4 range); loopback only.\n"
            "A mode list is assigned to the addresses of the preceding --listen in turn;\n"
            "\"all\" = every mode in --list-modes order. Default mode: ok.\n");
}

static void free_keys(void)
{
    shoal_key_free(host_key);
    shoal_key_free(host_key2);
    for (unsigned i = 0; i < n_auth_keys; i++)
        shoal_key_free(auth_keys[i]);
}

int main(int argc, char **argv)
{
    const char *hostkey_path = NULL, *hostkey2_path = NULL, *authkeys_path = NULL, *ready_path = NULL;
    listen_spec *specs = calloc((size_t)argc + 1, sizeof(*specs));
    unsigned n_specs = 0;
    int rc = 1;
    if (!specs)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(specs);
            return 0;
        } else if (!strcmp(a, "--list-modes")) {
            for (int m = 0; m < M_COUNT; m++)
                printf("%-24s %s\n", MODE_NAMES[m], MODE_HELP[m]);
            free(specs);
            return 0;
        } else if (!strcmp(a, "-v")) {
            verbose++;
            continue;
        }
        if (!v) {
            usage(stderr);
            free(specs);
            return 2;
        }
        i++;
        if (!strcmp(a, "--hostkey")) {
            hostkey_path = v;
        } else if (!strcmp(a, "--hostkey2")) {
            hostkey2_path = v;
        } else if (!strcmp(a, "--authorized-keys")) {
            authkeys_path = v;
        } else if (!strcmp(a, "--ready-file")) {
            ready_path = v;
        } else if (!strcmp(a, "--max-lifetime")) {
            char *end;
            unsigned long s = strtoul(v, &end, 10);
            if (*end || s == 0 || s > 86400) {
                logf_("--max-lifetime: 1..86400 seconds expected");
                free(specs);
                return 2;
            }
            lifetime_ms = (uint64_t)s * 1000u;
        } else if (!strcmp(a, "--listen")) {
            specs[n_specs++].spec = v;
        } else if (!strcmp(a, "--mode") || !strcmp(a, "--modes-cycle")) {
            if (n_specs == 0 || specs[n_specs - 1].modes) {
                logf_("%s must follow a --listen (once per --listen)", a);
                free(specs);
                return 2;
            }
            specs[n_specs - 1].modes = v;
        } else {
            usage(stderr);
            free(specs);
            return 2;
        }
    }
    if (!hostkey_path || n_specs == 0) {
        usage(stderr);
        free(specs);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Thousands of connections at once need more than the usual 1024
     * descriptors: take what the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    loop = uv_default_loop();
    int r = shoal_key_load_private_file(hostkey_path, NULL, &host_key);
    if (r != 0) {
        logf_("%s: %s", hostkey_path, shoal_strerror(r));
        goto out;
    }
    if (hostkey2_path && (r = shoal_key_load_private_file(hostkey2_path, NULL, &host_key2)) != 0) {
        logf_("%s: %s", hostkey2_path, shoal_strerror(r));
        goto out;
    }
    if (authkeys_path && load_authorized_keys(authkeys_path) != 0)
        goto out;
    shoal_server_config_init(&cfg1); /* the size member: a zero size is refused */
    cfg1.host_keys = &host_key;
    cfg1.n_host_keys = 1;
    cfg1.auth_methods = SHOAL_AUTH_PUBLICKEY;
    cfg1.software_version = "shoal_faultpeer";
    cfg2 = cfg1;
    if (host_key2)
        cfg2.host_keys = &host_key2;
    for (unsigned i = 0; i < n_specs; i++) {
        if (setup_listen(&specs[i]) != 0)
            goto out;
    }
    for (unsigned j = 0; j < n_listeners; j++) {
        if (listeners[j]->m == M_CHANGED_HOSTKEY && !host_key2) {
            logf_("mode changed-hostkey needs --hostkey2");
            goto out;
        }
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    for (unsigned i = 0; i < n_listeners; i++)
        printf("listen %s %s\n", listeners[i]->name, MODE_NAMES[listeners[i]->m]);
    printf("ready\n");
    fflush(stdout);
    if (ready_path && write_ready_file(ready_path) != 0) {
        shutdown_all();
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (!shutting_down) {
        /* Failed setup: close what was opened so the loop can be closed. */
        for (unsigned i = 0; i < n_listeners; i++) {
            if (listeners[i] && listeners[i]->open) {
                listeners[i]->open = 0;
                uv_close((uv_handle_t *)&listeners[i]->tcp, on_listener_closed);
            }
        }
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(loop);
    free_keys();
    free(specs);
    return rc;
}
