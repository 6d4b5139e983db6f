/* Session object: lifecycle, byte I/O with the driver, timers. The
 * protocol work happens in src/transport, src/auth and src/conn; the hooks
 * joining them are installed in hooks.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "session/hooks.h"
#include "session/session_impl.h"

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
    s->ud = ud;
    s->user = strdup(cfg->user);
    s->kex_algs = dup_or(cfg->kex_algorithms, SHOAL_KEX_DEFAULT);
    s->hostkey_algs = dup_or(cfg->hostkey_algorithms, SHOAL_HOSTKEY_ALGS_DEFAULT);
    s->ciphers = dup_or(cfg->ciphers, SHOAL_CIPHERS_DEFAULT);
    s->macs = dup_or(cfg->macs, SHOAL_MACS_DEFAULT);
    s->rekey_bytes = cfg->rekey_bytes ? cfg->rekey_bytes : SHOAL_DEFAULT_REKEY_BYTES;
    s->rekey_interval_ms = cfg->rekey_interval_ms;
    s->keepalive_ms = cfg->keepalive_interval_ms;
    s->keepalive_max = cfg->keepalive_count_max ? cfg->keepalive_count_max : 3;
    s->rekey_timeout_ms = cfg->rekey_timeout_ms ? cfg->rekey_timeout_ms : SHOAL_DEFAULT_REKEY_TIMEOUT_MS;
    s->auth_methods = cfg->auth_methods ? cfg->auth_methods & ~(unsigned)SHOAL_AUTH_NONE_ONLY
                                        : (SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_KBDINT | SHOAL_AUTH_PASSWORD);
    char ver[300];
    snprintf(ver, sizeof(ver), "SSH-2.0-%s",
             cfg->software_version ? cfg->software_version : "shoal_" SHOAL_VERSION_STRING);
    /* A version string is printable ASCII without spaces or '-' in the
     * software part (RFC 4253 4.2); enforce what we send. */
    for (char *p = ver + 8; *p; p++)
        if (*p <= ' ' || *p > '~')
            *p = '_';
    s->our_version = strdup(ver);
    shoal_buf_init(&s->in, SHOAL_MAX_PACKET + 4096 + (1u << 20));
    shoal_buf_init(&s->out, 64u << 20);
    shoal_buf_init(&s->my_kexinit, 16384);
    shoal_buf_init(&s->peer_kexinit, 65536);
    shoal_buf_init(&s->kex_queue, SHOAL_KEX_QUEUE_MAX);
    shoal_buf_init(&s->kex_pub, 4096);
    shoal_buf_init(&s->K, 4096);
    if (!s->user || !s->kex_algs || !s->hostkey_algs || !s->ciphers || !s->macs || !s->our_version) {
        shoal_session_free(s);
        return SHOAL_ERR_NOMEM;
    }
    s->phase = SHOAL_PHASE_BANNER;
    shoal__session_install_hooks(s, 0);
    *out = s;
    return SHOAL_OK;
}

int shoal_session_new_client(shoal_session **out, const shoal_client_config *cfg, const shoal_client_callbacks *cb,
                             void *ud)
{
    *out = NULL;
    if (!cfg || !cfg->user || !cb || !cb->hostkey)
        return SHOAL_ERR_INVALID_ARG;
    int rc = session_alloc(out, cfg, ud);
    if (!rc)
        (*out)->cb = *cb;
    return rc;
}

int shoal_session_new_server(shoal_session **out, const shoal_server_config *cfg, const shoal_server_callbacks *cb,
                             void *ud)
{
    *out = NULL;
    if (!cfg || !cfg->n_host_keys || !cfg->host_keys || !cb || !cb->auth || !cb->channel_open)
        return SHOAL_ERR_INVALID_ARG;
    for (unsigned i = 0; i < cfg->n_host_keys; i++)
        if (!cfg->host_keys[i] || !shoal_key_has_private(cfg->host_keys[i]))
            return SHOAL_ERR_INVALID_ARG;
    /* Reuse the client constructor for everything both roles share. */
    shoal_client_config cc;
    memset(&cc, 0, sizeof(cc));
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
    s->cb.closed = cb->closed;
    s->cb.log = cb->log;
    s->is_server = 1;
    shoal__session_install_hooks(s, 1);
    s->scb = *cb;
    s->host_keys = calloc(cfg->n_host_keys, sizeof(shoal_key *));
    if (!s->host_keys) {
        shoal_session_free(s);
        return SHOAL_ERR_NOMEM;
    }
    memcpy(s->host_keys, cfg->host_keys, cfg->n_host_keys * sizeof(shoal_key *));
    s->n_host_keys = cfg->n_host_keys;
    s->srv_methods = cfg->auth_methods ? cfg->auth_methods : (SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD);
    s->max_auth_tries = cfg->max_auth_tries ? cfg->max_auth_tries : 6;
    s->max_channels = cfg->max_channels ? cfg->max_channels : 10;
    if (cfg->banner && !(s->banner = strdup(cfg->banner))) {
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
    free(s->host_keys);
    free(s->banner);
    shoal__kex_free(s);
    shoal_pktcrypt_free(s->rx);
    shoal_pktcrypt_free(s->tx);
    shoal_buf_free(&s->in);
    shoal_buf_free(&s->out);
    shoal_buf_free(&s->my_kexinit);
    shoal_buf_free(&s->peer_kexinit);
    shoal_buf_free(&s->kex_queue);
    shoal_buf_free(&s->kex_pub);
    shoal_buf_free(&s->K);
    shoal_key_free(s->hostkey);
    free(s->server_sig_algs);
    free(s->user);
    free(s->kex_algs);
    free(s->hostkey_algs);
    free(s->ciphers);
    free(s->macs);
    free(s->our_version);
    shoal_wipe(s, sizeof(*s));
    free(s);
}

void *shoal_session_userdata(const shoal_session *s)
{
    return s->ud;
}

void shoal_session_set_log_level(shoal_session *s, int level)
{
    s->log_level = level;
}

void shoal_session_abort(shoal_session *s, int err, const char *message)
{
    shoal__fail(s, err ? err : SHOAL_ERR_CLOSED, err == SHOAL_ERR_TIMEOUT ? SSH_DISCONNECT_BY_APPLICATION : 0, "%s",
                message ? message : shoal_strerror(err));
}

int shoal_session_disconnect(shoal_session *s, const char *message)
{
    if (s->closed)
        return SHOAL_OK;
    if (s->version_done)
        shoal__send_disconnect(s, SSH_DISCONNECT_BY_APPLICATION, message ? message : "bye");
    s->closed = 1;
    s->phase = SHOAL_PHASE_CLOSED;
    shoal__report_closed(s);
    return SHOAL_OK;
}

int shoal_session_start(shoal_session *s, uint64_t now)
{
    if (s->closed)
        return SHOAL_ERR_CLOSED;
    s->now = now;
    s->last_rx_time = now;
    size_t n = strlen(s->our_version);
    int rc = shoal_buf_put(&s->out, s->our_version, n);
    if (!rc)
        rc = shoal_buf_put(&s->out, "\r\n", 2);
    /* Send KEXINIT right away, without waiting for the server's version:
     * saves a round trip (RFC 4253 7.1 allows it). */
    if (!rc)
        rc = shoal__kex_start(s);
    return rc;
}

int shoal_session_recv(shoal_session *s, const uint8_t *in, size_t len, uint64_t now)
{
    if (s->closed)
        return s->err ? s->err : SHOAL_ERR_CLOSED;
    s->now = now;
    s->last_rx_time = now;
    s->keepalive_outstanding = 0;
    if (!s->version_done) {
        size_t used = 0;
        int rc = shoal__recv_version(s, in, len, &used);
        if (rc)
            return rc;
        in += used;
        len -= used;
        if (!s->version_done)
            return SHOAL_OK;
    }
    /* A client waiting for its authentication's answer has little to say:
     * what it sends meanwhile is held unread (packet.c), within a cap. */
    if (len && s->is_server && s->sauth_pending && shoal_buf_len(&s->in) + len > SHOAL_MAX_HELD_INPUT)
        return shoal__fail(s, SHOAL_ERR_TOO_LARGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "more than %u bytes sent while the authentication was being decided",
                           SHOAL_MAX_HELD_INPUT);
    if (len) {
        int rc = shoal_buf_put(&s->in, in, len);
        if (rc)
            return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "input buffer overflow");
    }
    int rc = shoal__process_packets(s);
    if (rc && rc != SHOAL_ERR_DEFERRED)
        return rc;
    return s->closed ? (s->err ? s->err : SHOAL_ERR_CLOSED) : SHOAL_OK;
}

int shoal_session_wants_input(const shoal_session *s)
{
    return !s->closed && shoal__input_room(s);
}

int shoal_session_resume(shoal_session *s, uint64_t now)
{
    if (s->closed)
        return s->err ? s->err : SHOAL_ERR_CLOSED;
    if (!shoal_buf_len(&s->in) || !shoal__input_room(s))
        return SHOAL_OK;
    s->now = now;
    int rc = shoal__process_packets(s);
    if (rc && rc != SHOAL_ERR_DEFERRED)
        return rc;
    return s->closed ? (s->err ? s->err : SHOAL_ERR_CLOSED) : SHOAL_OK;
}

void shoal_session_recv_eof(shoal_session *s, uint64_t now)
{
    s->now = now;
    if (s->closed)
        return;
    if (s->phase == SHOAL_PHASE_OPEN && s->open_channels == 0 && !shoal_buf_len(&s->in)) {
        /* The server went away after everything was done: not an error. */
        s->closed = 1;
        s->phase = SHOAL_PHASE_CLOSED;
        shoal__report_closed(s);
        return;
    }
    if (!s->version_done && s->line_len)
        shoal__fail(s, SHOAL_ERR_BANNER, 0, "connection closed before a complete version line");
    else
        shoal__fail(s, SHOAL_ERR_EOF, 0, "connection closed by the %s%s", s->is_server ? "client" : "server",
                    s->version_done ? "" : " before sending its version");
}

size_t shoal_session_output(shoal_session *s, const uint8_t **p)
{
    *p = shoal_buf_ptr(&s->out);
    return shoal_buf_len(&s->out);
}

void shoal_session_output_consume(shoal_session *s, size_t n)
{
    size_t before = shoal_buf_len(&s->out);
    shoal_buf_consume(&s->out, n);
    if (before >= SHOAL_OUT_HIGH_WATER && shoal_buf_len(&s->out) < SHOAL_OUT_HIGH_WATER && !s->closed)
        shoal__conn_notify_writable(s);
}

/* A client waiting for the server before authentication has ended: no
 * keepalive can be sent yet, so ServerAliveInterval x ServerAliveCountMax
 * of silence ends the session (OpenSSH's packet timeout). Not while the
 * wait is ours: a host key decision, a signature, a password. */
static int client_waits_for_server(const shoal_session *s)
{
    if (s->is_server || !s->keepalive_ms || !s->version_done || s->phase == SHOAL_PHASE_OPEN || s->hostkey_pending)
        return 0;
    return s->auth != AUTH_PK_SIGNING && s->auth != AUTH_PASSWORD_WAIT && s->auth != AUTH_KBDINT_WAIT;
}

static uint64_t silence_deadline(const shoal_session *s)
{
    return s->last_rx_time + s->keepalive_ms * s->keepalive_max;
}

static int rekeying(const shoal_session *s)
{
    return s->first_kex_done && s->kex_running && s->rekey_timeout_ms != UINT64_MAX;
}

uint64_t shoal_session_deadline(const shoal_session *s)
{
    uint64_t d = UINT64_MAX;
    if (s->closed)
        return d;
    if (rekeying(s) && s->kex_started_at + s->rekey_timeout_ms < d)
        d = s->kex_started_at + s->rekey_timeout_ms;
    if (client_waits_for_server(s) && silence_deadline(s) < d)
        d = silence_deadline(s);
    if (s->phase == SHOAL_PHASE_OPEN) {
        if (s->keepalive_ms) {
            uint64_t base = s->keepalive_outstanding ? s->keepalive_sent_at : s->last_rx_time;
            if (base + s->keepalive_ms < d)
                d = base + s->keepalive_ms;
        }
        if (s->rekey_interval_ms && !s->kex_running && s->last_kex_time + s->rekey_interval_ms < d)
            d = s->last_kex_time + s->rekey_interval_ms;
    }
    return d;
}

int shoal_session_tick(shoal_session *s, uint64_t now)
{
    s->now = now;
    if (s->closed)
        return SHOAL_OK;
    /* CVE-2025-22869's class: a peer that stalls a key re-exchange while we
     * hold data for it gets a deadline, not our memory for ever. */
    if (rekeying(s) && now >= s->kex_started_at + s->rekey_timeout_ms)
        return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                           "key re-exchange did not complete within %.1f s", (double)s->rekey_timeout_ms / 1000.0);
    if (client_waits_for_server(s) && now >= silence_deadline(s))
        return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                           "server not responding for %.1f s (ServerAliveInterval x ServerAliveCountMax)",
                           (double)(s->keepalive_ms * s->keepalive_max) / 1000.0);
    if (s->phase != SHOAL_PHASE_OPEN)
        return SHOAL_OK;
    if (s->keepalive_ms) {
        uint64_t base = s->keepalive_outstanding ? s->keepalive_sent_at : s->last_rx_time;
        if (now >= base + s->keepalive_ms) {
            if (s->keepalive_outstanding >= s->keepalive_max)
                return shoal__fail(s, SHOAL_ERR_TIMEOUT, SSH_DISCONNECT_BY_APPLICATION,
                                   "%s did not answer %u keepalives", s->is_server ? "client" : "server",
                                   s->keepalive_outstanding);
            shoal__log(s, 2, "sending keepalive %u", s->keepalive_outstanding + 1);
            int rc = shoal__conn_keepalive(s);
            if (rc)
                return rc;
            s->keepalive_outstanding++;
            s->keepalive_sent_at = now;
        }
    }
    if (s->rekey_interval_ms && !s->kex_running && now >= s->last_kex_time + s->rekey_interval_ms)
        return shoal__kex_start(s);
    return SHOAL_OK;
}

shoal_phase shoal_session_phase(const shoal_session *s)
{
    return s->phase;
}

int shoal_session_is_closed(const shoal_session *s)
{
    return s->closed;
}

int shoal_session_is_done(const shoal_session *s)
{
    return s->closed && shoal_buf_len(&s->out) == 0;
}

int shoal_session_error(const shoal_session *s, const char **message)
{
    if (message)
        *message = s->err ? s->errmsg : NULL;
    return s->err;
}

const char *shoal_session_peer_version(const shoal_session *s)
{
    return s->version_done ? s->peer_version : NULL;
}

const char *shoal_session_algorithm(const shoal_session *s, const char *what)
{
    static const char *const names[6] = {"kex", "hostkey", "cipher_c2s", "cipher_s2c", "mac_c2s", "mac_s2c"};
    if (!s->kex_count)
        return NULL;
    for (int i = 0; i < 6; i++)
        if (strcmp(what, names[i]) == 0)
            return s->cur_alg[i];
    return NULL;
}

unsigned shoal_session_kex_count(const shoal_session *s)
{
    return s->kex_count;
}

int shoal_session_rekey(shoal_session *s)
{
    if (s->closed)
        return SHOAL_ERR_CLOSED;
    if (!s->first_kex_done || s->kex_running)
        return SHOAL_OK;
    return shoal__kex_start(s);
}

/* 1 when blob is exactly key's public blob: then key serves as is and the
 * blob needs no parsing (a libcrypto key object fewer per connection when
 * a fan-out offers the same preloaded key to thousands of hosts). */
static int blob_is_key(const shoal_key *key, const uint8_t *blob, size_t blob_len)
{
    shoal_buf b;
    shoal_buf_init(&b, SHOAL_KEY_MAX_BLOB);
    int same = shoal_key_to_blob(key, &b) == 0 && shoal_buf_len(&b) == blob_len &&
               memcmp(shoal_buf_ptr(&b), blob, blob_len) == 0;
    shoal_buf_free(&b);
    return same;
}

int shoal_session_add_identity(shoal_session *s, const uint8_t *blob, size_t blob_len, shoal_key *key_owned)
{
    shoal_key *pub = NULL;
    int rc = SHOAL_OK;
    if (!(key_owned && shoal_key_has_private(key_owned) && blob_is_key(key_owned, blob, blob_len)))
        rc = shoal_key_from_blob(blob, blob_len, &pub);
    if (rc) {
        shoal_key_free(key_owned);
        return rc;
    }
    if (s->n_idents == s->ident_cap) {
        unsigned ncap = s->ident_cap ? s->ident_cap * 2 : 8;
        identity *ni = realloc(s->idents, ncap * sizeof(*ni));
        if (!ni) {
            shoal_key_free(pub);
            shoal_key_free(key_owned);
            return SHOAL_ERR_NOMEM;
        }
        s->idents = ni;
        s->ident_cap = ncap;
    }
    identity *id = &s->idents[s->n_idents];
    memset(id, 0, sizeof(*id));
    id->blob = malloc(blob_len);
    if (!id->blob) {
        shoal_key_free(pub);
        shoal_key_free(key_owned);
        return SHOAL_ERR_NOMEM;
    }
    memcpy(id->blob, blob, blob_len);
    id->blob_len = blob_len;
    if (key_owned && shoal_key_has_private(key_owned) && (!pub || shoal_key_equal_public(key_owned, pub))) {
        shoal_key_free(pub);
        id->key = key_owned;
        id->has_private = 1;
    } else {
        shoal_key_free(key_owned);
        id->key = pub;
    }
    return (int)s->n_idents++;
}
