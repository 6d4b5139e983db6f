/* Session object: lifecycle, byte I/O with the driver, timers. The
 * protocol work happens in src/transport, src/auth and src/conn; the hooks
 * joining them are installed in hooks.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "session/hooks.h"
#include "conn/conn_impl.h"
#include "session/session_impl.h"
#include "abi.h"

static char *dup_or(const char *s, const char *dflt)
{
    const char *v = (s && *s) ? s : dflt;
    return v ? strdup(v) : NULL;
}

/* Everything both roles share: configuration copies and buffers. */
static int session_alloc(shoal_session **out, const shoal_client_config *cfg, void *ud)
{
    *out = NULL;
    shoal_session *s = calloc(1, sizeof(*s));
    if (!s)
        return SHOAL_ERR_NOMEM;
    s->tp.ud = ud;
    s->auth.user = strdup(cfg->user);
    s->tp.kex_algs = dup_or(cfg->kex_algorithms, SHOAL_KEX_DEFAULT);
    s->tp.hostkey_algs = dup_or(cfg->hostkey_algorithms, SHOAL_HOSTKEY_ALGS_DEFAULT);
    s->tp.ciphers = dup_or(cfg->ciphers, SHOAL_CIPHERS_DEFAULT);
    s->tp.macs = dup_or(cfg->macs, SHOAL_MACS_DEFAULT);
    s->tp.rekey_bytes = cfg->rekey_bytes ? cfg->rekey_bytes : SHOAL_DEFAULT_REKEY_BYTES;
    s->tp.rekey_interval_ms = cfg->rekey_interval_ms;
    s->conn.keepalive_ms = cfg->keepalive_interval_ms;
    s->conn.keepalive_max = cfg->keepalive_count_max ? cfg->keepalive_count_max : 3;
    s->tp.rekey_timeout_ms = cfg->rekey_timeout_ms ? cfg->rekey_timeout_ms : SHOAL_DEFAULT_REKEY_TIMEOUT_MS;
    s->auth.auth_methods = cfg->auth_methods ? cfg->auth_methods & ~(unsigned)SHOAL_AUTH_NONE_ONLY
                                        : (SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_KBDINT | SHOAL_AUTH_PASSWORD);
    char ver[300];
    snprintf(ver, sizeof(ver), "SSH-2.0-%s",
             cfg->software_version ? cfg->software_version : "shoal_" SHOAL_VERSION_STRING);
    /* A version string is printable ASCII without spaces or '-' in the
     * software part (RFC 4253 4.2); enforce what we send. */
    for (char *p = ver + 8; *p; p++)
        if (*p <= ' ' || *p > '~')
            *p = '_';
    s->tp.our_version = strdup(ver);
    shoal__transport_init(&s->tp);
    if (!s->auth.user || !s->tp.kex_algs || !s->tp.hostkey_algs || !s->tp.ciphers || !s->tp.macs ||
        !s->tp.our_version) {
        shoal_session_free(s);
        return SHOAL_ERR_NOMEM;
    }
    s->tp.phase = SHOAL_PHASE_BANNER;
    shoal__session_install_hooks(s, 0);
    *out = s;
    return SHOAL_OK;
}

int shoal_session_new_client(shoal_session **out, const shoal_client_config *cfg, const shoal_client_callbacks *cb,
                             void *ud)
{
    *out = NULL;
    shoal_client_config c;
    shoal_client_callbacks cbs;
    if (SHOAL_COPY_IN(&c, cfg) || !c.user || SHOAL_COPY_IN(&cbs, cb) || !cbs.hostkey)
        return SHOAL_ERR_INVALID_ARG;
    cfg = &c;
    cb = &cbs;
    int rc = session_alloc(out, cfg, ud);
    if (rc)
        return rc;
    shoal_session *s = *out;
    s->cb = *cb;
    s->tp.log_cb = cb->log;
    s->tp.closed_cb = cb->closed;
    s->tp.hostkey_cb = cb->hostkey;
    return SHOAL_OK;
}

int shoal_session_new_server(shoal_session **out, const shoal_server_config *cfg, const shoal_server_callbacks *cb,
                             void *ud)
{
    *out = NULL;
    shoal_server_config c;
    shoal_server_callbacks cbs;
    if (SHOAL_COPY_IN(&c, cfg) || !c.n_host_keys || !c.host_keys || SHOAL_COPY_IN(&cbs, cb) || !cbs.auth ||
        !cbs.channel_open)
        return SHOAL_ERR_INVALID_ARG;
    cfg = &c;
    cb = &cbs;
    for (unsigned i = 0; i < cfg->n_host_keys; i++)
        if (!cfg->host_keys[i] || !shoal_key_has_private(cfg->host_keys[i]))
            return SHOAL_ERR_INVALID_ARG;
    /* Reuse the client constructor for everything both roles share. */
    shoal_client_config cc;
    shoal_client_config_init(&cc);
    cc.user = "";
    cc.kex_algorithms = cfg->kex_algorithms;
    cc.hostkey_algorithms = cfg->hostkey_algorithms;
    cc.ciphers = cfg->ciphers;
    cc.macs = cfg->macs;
    cc.rekey_bytes = cfg->rekey_bytes;
    cc.rekey_interval_ms = cfg->rekey_interval_ms;
    cc.software_version = cfg->software_version;
    cc.keepalive_interval_ms = cfg->keepalive_interval_ms;
    cc.keepalive_count_max = cfg->keepalive_count_max;
    cc.rekey_timeout_ms = cfg->rekey_timeout_ms;
    shoal_session *s;
    int rc = session_alloc(&s, &cc, ud);
    if (rc)
        return rc;
    /* Closing and logging go through the same fields for both roles. */
    s->cb.closed = s->tp.closed_cb = cb->closed;
    s->cb.log = s->tp.log_cb = cb->log;
    s->tp.is_server = 1;
    shoal__session_install_hooks(s, 1);
    s->scb = *cb;
    s->tp.host_keys = calloc(cfg->n_host_keys, sizeof(shoal_key *));
    if (!s->tp.host_keys) {
        shoal_session_free(s);
        return SHOAL_ERR_NOMEM;
    }
    memcpy(s->tp.host_keys, cfg->host_keys, cfg->n_host_keys * sizeof(shoal_key *));
    s->tp.n_host_keys = cfg->n_host_keys;
    s->sauth.srv_methods = cfg->auth_methods ? cfg->auth_methods : (SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD);
    s->sauth.max_auth_tries = cfg->max_auth_tries ? cfg->max_auth_tries : 6;
    s->conn.max_channels = cfg->max_channels ? cfg->max_channels : 10;
    if (cfg->banner && !(s->sauth.banner = strdup(cfg->banner))) {
        shoal_session_free(s);
        return SHOAL_ERR_NOMEM;
    }
    *out = s;
    return SHOAL_OK;
}

void shoal_session_free(shoal_session *s)
{
    if (!s)
        return;
    shoal__conn_free(s);
    shoal__auth_free(s);
    shoal__sauth_free(s);
    free(s->sauth.banner);
    free(s->auth.server_sig_algs);
    free(s->auth.user);
    shoal__transport_free(s);
    shoal_wipe(s, sizeof(*s));
    free(s);
}

void *shoal_session_userdata(const shoal_session *s)
{
    return s->tp.ud;
}

void shoal_session_set_app_data(shoal_session *s, void *data)
{
    s->app_data = data;
}

void *shoal_session_app_data(const shoal_session *s)
{
    return s->app_data;
}

void shoal_session_set_log_level(shoal_session *s, int level)
{
    s->tp.log_level = level;
}

void shoal_session_abort(shoal_session *s, int err, const char *message)
{
    shoal__fail(s, err ? err : SHOAL_ERR_CLOSED, err == SHOAL_ERR_TIMEOUT ? SSH_DISCONNECT_BY_APPLICATION : 0, "%s",
                message ? message : shoal_strerror(err));
}

int shoal_session_disconnect(shoal_session *s, const char *message)
{
    if (s->tp.closed)
        return SHOAL_OK;
    if (s->tp.version_done)
        shoal__send_disconnect(s, SSH_DISCONNECT_BY_APPLICATION, message ? message : "bye");
    s->tp.closed = 1;
    s->tp.phase = SHOAL_PHASE_CLOSED;
    shoal__report_closed(s);
    return SHOAL_OK;
}

int shoal_session_start(shoal_session *s, uint64_t now)
{
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    s->tp.now = now;
    s->conn.last_rx_time = now;
    size_t n = strlen(s->tp.our_version);
    int rc = shoal_buf_put(&s->tp.out, s->tp.our_version, n);
    if (!rc)
        rc = shoal_buf_put(&s->tp.out, "\r\n", 2);
    /* Send KEXINIT right away, without waiting for the server's version:
     * saves a round trip (RFC 4253 7.1 allows it). */
    if (!rc)
        rc = shoal__kex_start(s);
    return rc;
}

int shoal_session_recv(shoal_session *s, const uint8_t *in, size_t len, uint64_t now)
{
    if (s->tp.closed)
        return s->tp.err ? s->tp.err : SHOAL_ERR_CLOSED;
    s->tp.now = now;
    s->conn.last_rx_time = now;
    s->conn.keepalive_outstanding = 0;
    if (!s->tp.version_done) {
        size_t used = 0;
        int rc = shoal__recv_version(s, in, len, &used);
        if (rc)
            return rc;
        in += used;
        len -= used;
        if (!s->tp.version_done)
            return SHOAL_OK;
    }
    /* A client waiting for its authentication's answer has little to say:
     * what it sends meanwhile is held unread (packet.c), within a cap. */
    if (len && s->tp.is_server && s->tp.hold_input && shoal_buf_len(&s->tp.in) + len > SHOAL_MAX_HELD_INPUT)
        return shoal__fail(s, SHOAL_ERR_TOO_LARGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "more than %u bytes sent while the authentication was being decided",
                           SHOAL_MAX_HELD_INPUT);
    if (len) {
        int rc = shoal_buf_put(&s->tp.in, in, len);
        if (rc)
            return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "input buffer overflow");
    }
    int rc = shoal__process_packets(s);
    if (rc && rc != SHOAL_ERR_DEFERRED)
        return rc;
    return s->tp.closed ? (s->tp.err ? s->tp.err : SHOAL_ERR_CLOSED) : SHOAL_OK;
}

int shoal_session_wants_input(const shoal_session *s)
{
    return !s->tp.closed && shoal__input_room(s);
}

int shoal_session_resume(shoal_session *s, uint64_t now)
{
    if (s->tp.closed)
        return s->tp.err ? s->tp.err : SHOAL_ERR_CLOSED;
    if (!shoal_buf_len(&s->tp.in) || !shoal__input_room(s))
        return SHOAL_OK;
    s->tp.now = now;
    int rc = shoal__process_packets(s);
    if (rc && rc != SHOAL_ERR_DEFERRED)
        return rc;
    return s->tp.closed ? (s->tp.err ? s->tp.err : SHOAL_ERR_CLOSED) : SHOAL_OK;
}

void shoal_session_recv_eof(shoal_session *s, uint64_t now)
{
    s->tp.now = now;
    if (s->tp.closed)
        return;
    if (s->tp.phase == SHOAL_PHASE_OPEN && s->conn.open_channels == 0 && !shoal_buf_len(&s->tp.in)) {
        /* The server went away after everything was done: not an error. */
        s->tp.closed = 1;
        s->tp.phase = SHOAL_PHASE_CLOSED;
        shoal__report_closed(s);
        return;
    }
    if (!s->tp.version_done && s->tp.line_len)
        shoal__fail(s, SHOAL_ERR_BANNER, 0, "connection closed before a complete version line");
    else
        shoal__fail(s, SHOAL_ERR_EOF, 0, "connection closed by the %s%s", s->tp.is_server ? "client" : "server",
                    s->tp.version_done ? "" : " before sending its version");
}

size_t shoal_session_output(shoal_session *s, const uint8_t **p)
{
    *p = shoal_buf_ptr(&s->tp.out);
    return shoal_buf_len(&s->tp.out);
}

void shoal_session_output_consume(shoal_session *s, size_t n)
{
    size_t before = shoal_buf_len(&s->tp.out);
    shoal_buf_consume(&s->tp.out, n);
    if (before >= SHOAL_OUT_HIGH_WATER && shoal_buf_len(&s->tp.out) < SHOAL_OUT_HIGH_WATER && !s->tp.closed)
        shoal__conn_notify_writable(s);
}

/* A client waiting for the server before authentication has ended: no
 * keepalive can be sent yet, so ServerAliveInterval x ServerAliveCountMax
 * of silence ends the session (OpenSSH's packet timeout). Not while the
 * wait is ours: a host key decision, a signature, a password. */
static int client_waits_for_server(const shoal_session *s)
{
    if (s->tp.is_server || !s->conn.keepalive_ms || !s->tp.version_done || s->tp.phase == SHOAL_PHASE_OPEN ||
        s->tp.hostkey_pending)
        return 0;
    return s->auth.state != AUTH_PK_SIGNING && s->auth.state != AUTH_PASSWORD_WAIT && s->auth.state != AUTH_KBDINT_WAIT;
}

static uint64_t silence_deadline(const shoal_session *s)
{
    return s->conn.last_rx_time + s->conn.keepalive_ms * s->conn.keepalive_max;
}

static int rekeying(const shoal_session *s)
{
    return s->tp.first_kex_done && s->tp.kex_running && s->tp.rekey_timeout_ms != UINT64_MAX;
}

uint64_t shoal_session_deadline(const shoal_session *s)
{
    uint64_t d = UINT64_MAX;
    if (s->tp.closed)
        return d;
    if (rekeying(s) && s->tp.kex_started_at + s->tp.rekey_timeout_ms < d)
        d = s->tp.kex_started_at + s->tp.rekey_timeout_ms;
    if (client_waits_for_server(s) && silence_deadline(s) < d)
        d = silence_deadline(s);
    if (s->tp.phase == SHOAL_PHASE_OPEN) {
        if (s->conn.keepalive_ms) {
            uint64_t base = s->conn.keepalive_outstanding ? s->conn.keepalive_sent_at : s->conn.last_rx_time;
            if (base + s->conn.keepalive_ms < d)
                d = base + s->conn.keepalive_ms;
        }
        if (s->tp.rekey_interval_ms && !s->tp.kex_running && s->tp.last_kex_time + s->tp.rekey_interval_ms < d)
            d = s->tp.last_kex_time + s->tp.rekey_interval_ms;
    }
    return d;
}

int shoal_session_tick(shoal_session *s, uint64_t now)
{
    s->tp.now = now;
    if (s->tp.closed)
        return SHOAL_OK;
    /* CVE-2025-22869's class: a peer that stalls a key re-exchange while we
     * hold data for it gets a deadline, not our memory for ever. */
    if (rekeying(s) && now >= s->tp.kex_started_at + s->tp.rekey_timeout_ms)
        return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                           "key re-exchange did not complete within %.1f s", (double)s->tp.rekey_timeout_ms / 1000.0);
    if (client_waits_for_server(s) && now >= silence_deadline(s))
        return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                           "server not responding for %.1f s (ServerAliveInterval x ServerAliveCountMax)",
                           (double)(s->conn.keepalive_ms * s->conn.keepalive_max) / 1000.0);
    if (s->tp.phase != SHOAL_PHASE_OPEN)
        return SHOAL_OK;
    if (s->conn.keepalive_ms) {
        uint64_t base = s->conn.keepalive_outstanding ? s->conn.keepalive_sent_at : s->conn.last_rx_time;
        if (now >= base + s->conn.keepalive_ms) {
            if (s->conn.keepalive_outstanding >= s->conn.keepalive_max)
                return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                                   "%s did not answer %u keepalives", s->tp.is_server ? "client" : "server",
                                   s->conn.keepalive_outstanding);
            shoal__log(s, 2, "sending keepalive %u", s->conn.keepalive_outstanding + 1);
            int rc = shoal__conn_keepalive(s);
            if (rc)
                return rc;
            s->conn.keepalive_outstanding++;
            s->conn.keepalive_sent_at = now;
        }
    }
    if (s->tp.rekey_interval_ms && !s->tp.kex_running && now >= s->tp.last_kex_time + s->tp.rekey_interval_ms)
        return shoal__kex_start(s);
    return SHOAL_OK;
}

shoal_phase shoal_session_phase(const shoal_session *s)
{
    return s->tp.phase;
}

int shoal_session_is_closed(const shoal_session *s)
{
    return s->tp.closed;
}

int shoal_session_is_done(const shoal_session *s)
{
    return s->tp.closed && shoal_buf_len(&s->tp.out) == 0;
}

int shoal_session_error(const shoal_session *s, const char **message)
{
    if (message)
        *message = s->tp.err ? s->tp.errmsg : NULL;
    return s->tp.err;
}

const char *shoal_session_peer_version(const shoal_session *s)
{
    return s->tp.version_done ? s->tp.peer_version : NULL;
}

const char *shoal_session_algorithm(const shoal_session *s, const char *what)
{
    static const char *const names[6] = {"kex", "hostkey", "cipher_c2s", "cipher_s2c", "mac_c2s", "mac_s2c"};
    if (!s->tp.kex_count)
        return NULL;
    for (int i = 0; i < 6; i++)
        if (strcmp(what, names[i]) == 0)
            return s->tp.cur_alg[i];
    return NULL;
}

unsigned shoal_session_kex_count(const shoal_session *s)
{
    return s->tp.kex_count;
}

int shoal_session_rekey(shoal_session *s)
{
    if (s->tp.closed)
        return SHOAL_ERR_CLOSED;
    if (!s->tp.first_kex_done || s->tp.kex_running)
        return SHOAL_OK;
    return shoal__kex_start(s);
}
