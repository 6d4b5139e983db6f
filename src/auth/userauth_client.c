/* User authentication, client side (RFC 4252, RFC 4256, RFC 8308, RFC 8332).
 *
 * Order of methods, as OpenSSH: publickey (every identity, agent keys and
 * file keys in one pass, each queried before it is signed), then
 * keyboard-interactive, then password; only methods the server lists in its
 * last USERAUTH_FAILURE are tried. A FAILURE with partial success moves on
 * to the methods the server still wants (e.g. publickey then password). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "session/session_impl.h"

#define MAX_PROMPT_ROUNDS 3 /* like OpenSSH's NumberOfPasswordPrompts */

enum { CUR_PUBKEY = 0, CUR_KBDINT, CUR_PASSWORD, CUR_DONE };

static int try_next(shoal_session *s);

static int begin_request(shoal_session *s, const char *method, size_t *mark)
{
    int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_REQUEST, mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, s->auth.user);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "ssh-connection");
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, method);
    return rc;
}

static int pk_sign_data(shoal_session *s, shoal_buf *d);
static int send_pk_signed(shoal_session *s, const uint8_t *sig, size_t sig_len);

static int method_on(const shoal_session *s, unsigned m)
{
    return !s->auth.auth_methods || (s->auth.auth_methods & m);
}

/* Servers known to hold what follows an auth request until it is decided
 * and to pass it to the connection protocol when the request succeeds
 * (RFC 4252 5.1), checked by tests/interop/fanout_peers.sh. AsyncSSH 2.10
 * disconnects instead ("Invalid request before authentication was
 * complete") and an unknown server might too: they get the open after
 * USERAUTH_SUCCESS, a round trip later. */
static int peer_takes_early_open(const shoal_session *s)
{
    static const char *const known[] = {"OpenSSH_", "dropbear", "paramiko_", "shoal_"};
    const char *sw = strchr(s->tp.peer_version + 4, '-'); /* after "SSH-2.0" or "SSH-1.99" */
    if (!sw)
        return 0;
    sw++;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strncmp(sw, known[i], strlen(known[i])) == 0)
            return 1;
    return 0;
}

/* After a failure of the signed request for identity auth_ident, would
 * try_next() find anything else? Only when not may channel opens follow
 * the request before its answer: servers that refuse connection messages
 * during authentication (Go's, dropbear, ours) end the connection after
 * their USERAUTH_FAILURE, which must not cut short attempts still to come. */
static int no_attempt_after(const shoal_session *s)
{
    if (s->auth.auth_ident + 1 < s->auth.n_idents)
        return 0;
    if (method_on(s, SHOAL_AUTH_KBDINT) && s->cb.kbdint)
        return 0;
    if (method_on(s, SHOAL_AUTH_PASSWORD) && s->cb.password)
        return 0;
    return 1;
}

/* A signed publickey request was written: channels opened early follow it
 * when it is the final one. */
static int after_signed_request(shoal_session *s)
{
    if (!no_attempt_after(s) || !peer_takes_early_open(s))
        return SHOAL_OK;
    s->auth.auth_final_sent = 1;
    return s->auth.hooks->service_may_follow(s);
}

/* The first identity is a private key in memory (not the agent's, not one
 * still waiting for its passphrase) of a type whose signature algorithm
 * does not depend on the server's EXT_INFO (not RSA): then the signed
 * request goes instead of the "none" probe and the query. One round trip
 * after the key exchange instead of three when the key is accepted; when
 * it is not, the FAILURE lists the methods as "none" would have, and the
 * other identities are queried as usual. */
static int first_key_signs_at_once(shoal_session *s)
{
    if (s->auth.auth_methods & SHOAL_AUTH_NONE_ONLY)
        return 0;
    if (s->auth.auth_methods && !(s->auth.auth_methods & SHOAL_AUTH_PUBLICKEY))
        return 0;
    return s->auth.n_idents > 0 && s->auth.idents[0].has_private && s->auth.idents[0].key &&
           shoal_key_type(s->auth.idents[0].key) != SHOAL_KEY_RSA;
}

static int send_first_signed(shoal_session *s)
{
    identity *id = &s->auth.idents[0];
    snprintf(s->auth.auth_sigalg, sizeof(s->auth.auth_sigalg), "%s", shoal_key_type_name(id->key));
    shoal_buf data, sig;
    shoal_buf_init(&data, 1u << 16);
    shoal_buf_init(&sig, 1u << 16);
    int rc = pk_sign_data(s, &data);
    if (!rc)
        rc = shoal_key_sign(id->key, s->auth.auth_sigalg, shoal_buf_ptr(&data), shoal_buf_len(&data), &sig);
    if (!rc) {
        rc = send_pk_signed(s, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
        s->auth.state = AUTH_SERVICE; /* SERVICE_ACCEPT comes first */
        s->auth.auth_signed_first = 1;
        s->auth.auth_attempts++;
        shoal__log(s, 1, "signing with key 0 (%s) at once", s->auth.auth_sigalg);
    }
    shoal_buf_free(&data);
    shoal_buf_free(&sig);
    if (rc) {
        /* Could not sign: the usual "none" probe instead. */
        size_t mark;
        s->auth.auth_signed_first = 0;
        rc = begin_request(s, "none", &mark);
        if (!rc)
            rc = shoal__pkt_end(s, mark);
    }
    return rc;
}

int shoal__auth_start(shoal_session *s)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_SERVICE_REQUEST, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "ssh-userauth");
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_SERVICE;
    s->auth.auth_cursor = CUR_PUBKEY;
    s->auth.auth_ident = 0;
    /* Messages are processed in order, so the first attempt can follow the
     * service request at once instead of a round trip later. */
    if (!rc && first_key_signs_at_once(s))
        return send_first_signed(s);
    if (!rc)
        rc = begin_request(s, "none", &mark);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

void shoal__auth_free(shoal_session *s)
{
    for (unsigned i = 0; i < s->auth.n_idents; i++) {
        free(s->auth.idents[i].blob);
        shoal_key_free(s->auth.idents[i].key);
    }
    free(s->auth.idents);
    s->auth.idents = NULL;
    s->auth.n_idents = s->auth.ident_cap = 0;
    free(s->auth.auth_allowed);
    s->auth.auth_allowed = NULL;
    for (unsigned i = 0; i < s->auth.kbd_n; i++)
        free(s->auth.kbd_prompts[i]);
    free(s->auth.kbd_prompts);
    s->auth.kbd_prompts = NULL;
    s->auth.kbd_n = 0;
}

static int allowed(shoal_session *s, const char *method)
{
    if (!s->auth.auth_allowed)
        return 1;
    return shoal_namelist_has(s->auth.auth_allowed, strlen(s->auth.auth_allowed), method);
}

/* Signature algorithm for an identity: RSA keys use rsa-sha2-* as the
 * server's server-sig-algs allows (RFC 8332 3.3); never SHA-1 silently. */
static const char *choose_sigalg(shoal_session *s, const shoal_key *k)
{
    if (shoal_key_type(k) != SHOAL_KEY_RSA)
        return shoal_key_type_name(k);
    if (s->auth.server_sig_algs) {
        size_t l = strlen(s->auth.server_sig_algs);
        if (shoal_namelist_has(s->auth.server_sig_algs, l, "rsa-sha2-512"))
            return "rsa-sha2-512";
        if (shoal_namelist_has(s->auth.server_sig_algs, l, "rsa-sha2-256"))
            return "rsa-sha2-256";
    }
    return "rsa-sha2-512";
}

static int send_pk_query(shoal_session *s)
{
    identity *id = &s->auth.idents[s->auth.auth_ident];
    const char *alg = choose_sigalg(s, id->key);
    snprintf(s->auth.auth_sigalg, sizeof(s->auth.auth_sigalg), "%s", alg);
    size_t mark;
    int rc = begin_request(s, "publickey", &mark);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, 0);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, alg);
    if (!rc)
        rc = shoal_buf_put_string(&s->tp.out, id->blob, id->blob_len);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_PK_QUERY;
    s->auth.auth_attempts++;
    shoal__log(s, 1, "offering public key %u (%s)", s->auth.auth_ident, alg);
    return rc;
}

/* The data a publickey signature covers (RFC 4252 7). */
static int pk_sign_data(shoal_session *s, shoal_buf *d)
{
    identity *id = &s->auth.idents[s->auth.auth_ident];
    int rc = shoal_buf_put_string(d, s->tp.session_id, s->tp.session_id_len);
    if (!rc)
        rc = shoal_buf_put_u8(d, SSH_MSG_USERAUTH_REQUEST);
    if (!rc)
        rc = shoal_buf_put_cstring(d, s->auth.user);
    if (!rc)
        rc = shoal_buf_put_cstring(d, "ssh-connection");
    if (!rc)
        rc = shoal_buf_put_cstring(d, "publickey");
    if (!rc)
        rc = shoal_buf_put_bool(d, 1);
    if (!rc)
        rc = shoal_buf_put_cstring(d, s->auth.auth_sigalg);
    if (!rc)
        rc = shoal_buf_put_string(d, id->blob, id->blob_len);
    return rc;
}

static int send_pk_signed(shoal_session *s, const uint8_t *sig, size_t sig_len)
{
    identity *id = &s->auth.idents[s->auth.auth_ident];
    size_t mark;
    int rc = begin_request(s, "publickey", &mark);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, 1);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, s->auth.auth_sigalg);
    if (!rc)
        rc = shoal_buf_put_string(&s->tp.out, id->blob, id->blob_len);
    if (!rc)
        rc = shoal_buf_put_string(&s->tp.out, sig, sig_len);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_PK_SIGNED;
    if (!rc)
        rc = after_signed_request(s);
    return rc;
}

static int on_pk_ok(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *alg;
    const uint8_t *blob;
    size_t alg_len, blob_len;
    identity *id = &s->auth.idents[s->auth.auth_ident];
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &alg, &alg_len) || shoal_rd_string(&r, &blob, &blob_len) || shoal_rd_end(&r) ||
        blob_len != id->blob_len || memcmp(blob, id->blob, blob_len) != 0 || alg_len != strlen(s->auth.auth_sigalg) ||
        memcmp(alg, s->auth.auth_sigalg, alg_len) != 0)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "USERAUTH_PK_OK does not match the key offered");
    shoal__log(s, 1, "server accepts key %u; signing", s->auth.auth_ident);
    shoal_buf data, sig;
    shoal_buf_init(&data, 1u << 16);
    shoal_buf_init(&sig, 1u << 16);
    int rc = pk_sign_data(s, &data);
    if (rc)
        goto out;
    if (id->has_private) {
        rc = shoal_key_sign(id->key, s->auth.auth_sigalg, shoal_buf_ptr(&data), shoal_buf_len(&data), &sig);
        if (!rc)
            rc = send_pk_signed(s, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
        else {
            shoal__log(s, 1, "signing with key %u failed: %s", s->auth.auth_ident, shoal_strerror(rc));
            s->auth.auth_ident++;
            rc = try_next(s);
        }
        goto out;
    }
    if (!s->cb.sign) {
        s->auth.auth_ident++;
        rc = try_next(s);
        goto out;
    }
    s->auth.state = AUTH_PK_SIGNING;
    rc = s->cb.sign(s, s->auth.auth_ident, s->auth.auth_sigalg, shoal_buf_ptr(&data), shoal_buf_len(&data), s->tp.ud);
    if (rc == SHOAL_ERR_DEFERRED)
        rc = SHOAL_OK;
    else if (rc && s->auth.state == AUTH_PK_SIGNING) {
        s->auth.auth_ident++;
        rc = try_next(s);
    }
out:
    shoal_buf_free(&data);
    shoal_buf_free(&sig);
    return rc;
}

int shoal_session_sign_reply(shoal_session *s, const uint8_t *sig, size_t sig_len)
{
    if (s->tp.closed || s->auth.state != AUTH_PK_SIGNING)
        return SHOAL_ERR_BAD_STATE;
    int rc;
    if (sig && sig_len) {
        rc = send_pk_signed(s, sig, sig_len);
    } else {
        s->auth.auth_ident++;
        rc = try_next(s);
    }
    return rc;
}

static int start_password(shoal_session *s)
{
    s->auth.state = AUTH_PASSWORD_WAIT;
    s->auth.kbdint_rounds++;
    int rc = s->cb.password(s, s->auth.user, s->tp.ud);
    if (rc == SHOAL_ERR_DEFERRED)
        return SHOAL_OK;
    if (rc && s->auth.state == AUTH_PASSWORD_WAIT) {
        s->auth.auth_cursor = CUR_DONE;
        return try_next(s);
    }
    return rc;
}

int shoal_session_password_reply(shoal_session *s, const char *password)
{
    if (s->tp.closed || s->auth.state != AUTH_PASSWORD_WAIT)
        return SHOAL_ERR_BAD_STATE;
    if (!password) {
        s->auth.auth_cursor = CUR_DONE;
        return try_next(s);
    }
    size_t mark;
    int rc = begin_request(s, "password", &mark);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, 0);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, password);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_PASSWORD_SENT;
    s->auth.auth_attempts++;
    return rc;
}

static int start_kbdint(shoal_session *s)
{
    size_t mark;
    int rc = begin_request(s, "keyboard-interactive", &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, ""); /* language */
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, ""); /* submethods */
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_KBDINT_SENT;
    s->auth.kbdint_rounds++;
    s->auth.auth_attempts++;
    return rc;
}

static void free_prompts(shoal_session *s)
{
    for (unsigned i = 0; i < s->auth.kbd_n; i++)
        free(s->auth.kbd_prompts[i]);
    free(s->auth.kbd_prompts);
    s->auth.kbd_prompts = NULL;
    s->auth.kbd_n = 0;
}

static char *dup_clean(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    /* Prompts reach a terminal: keep printable text, tabs and newlines only. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        d[i] = (c >= 0x20 && c != 0x7f) || c == '\n' || c == '\t' ? (char)c : '?';
    }
    d[n] = 0;
    return d;
}

static int on_info_request(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *name, *instr, *lang;
    size_t nl, il, ll;
    uint32_t np;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &name, &nl) || shoal_rd_cstring(&r, &instr, &il) || shoal_rd_cstring(&r, &lang, &ll) ||
        shoal_rd_u32(&r, &np))
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed INFO_REQUEST");
    if (np > SHOAL_MAX_KBDINT_PROMPTS)
        return shoal__fail(s, SHOAL_ERR_TOO_LARGE, SSH_DISCONNECT_PROTOCOL_ERROR, "INFO_REQUEST with %u prompts",
                           np);
    free_prompts(s);
    shoal_kbdint_prompt prompts[SHOAL_MAX_KBDINT_PROMPTS];
    s->auth.kbd_prompts = calloc(np ? np : 1, sizeof(char *));
    if (!s->auth.kbd_prompts)
        return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
    for (uint32_t i = 0; i < np; i++) {
        const char *pr;
        size_t pl;
        int echo;
        if (shoal_rd_cstring(&r, &pr, &pl) || shoal_rd_bool(&r, &echo))
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed INFO_REQUEST");
        s->auth.kbd_prompts[i] = dup_clean(pr, pl);
        s->auth.kbd_n = i + 1;
        if (!s->auth.kbd_prompts[i])
            return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
        prompts[i].text = s->auth.kbd_prompts[i];
        prompts[i].echo = echo;
    }
    if (shoal_rd_end(&r))
        return shoal__fail(s, SHOAL_ERR_TRAILING, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed INFO_REQUEST");
    if (np == 0) { /* OpenSSH sends an empty round at the end: answer it directly */
        s->auth.state = AUTH_KBDINT_WAIT;
        return shoal_session_kbdint_reply(s, 0, NULL);
    }
    char *nm = dup_clean(name, nl), *in = dup_clean(instr, il);
    shoal_kbdint_request req = {nm ? nm : "", in ? in : "", np, prompts};
    s->auth.state = AUTH_KBDINT_WAIT;
    int rc = s->cb.kbdint ? s->cb.kbdint(s, &req, s->tp.ud) : SHOAL_ERR_UNSUPPORTED;
    free(nm);
    free(in);
    if (rc == SHOAL_ERR_DEFERRED)
        return SHOAL_OK;
    if (rc && s->auth.state == AUTH_KBDINT_WAIT) {
        /* Give up on this method: answer with no responses so the server
         * fails it, then the next method is tried. */
        s->auth.kbdint_rounds = MAX_PROMPT_ROUNDS;
        return shoal_session_kbdint_reply(s, 0, NULL);
    }
    return rc;
}

int shoal_session_kbdint_reply(shoal_session *s, unsigned n, const char *const *responses)
{
    if (s->tp.closed || s->auth.state != AUTH_KBDINT_WAIT)
        return SHOAL_ERR_BAD_STATE;
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_INFO_RESPONSE, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, n);
    for (unsigned i = 0; !rc && i < n; i++)
        rc = shoal_buf_put_cstring(&s->tp.out, responses[i] ? responses[i] : "");
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->auth.state = AUTH_KBDINT_SENT;
    return rc;
}

static int auth_exhausted(shoal_session *s)
{
    return shoal__fail(s, SHOAL_ERR_AUTH_FAILED, SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                       "permission denied for user %s (server allows: %s; tried %u attempt%s)", s->auth.user,
                       s->auth.auth_allowed && *s->auth.auth_allowed ? s->auth.auth_allowed : "nothing",
                       s->auth.auth_attempts, s->auth.auth_attempts == 1 ? "" : "s");
}

/* Picks the next thing to try given the cursor and the server's list. */
static int try_next(shoal_session *s)
{
    for (;;) {
        switch (s->auth.auth_cursor) {
        case CUR_PUBKEY:
            if ((s->auth.auth_methods & SHOAL_AUTH_PUBLICKEY) && allowed(s, "publickey") &&
                s->auth.auth_ident < s->auth.n_idents)
                return send_pk_query(s);
            s->auth.auth_cursor = CUR_KBDINT;
            s->auth.kbdint_rounds = 0;
            break;
        case CUR_KBDINT:
            if ((s->auth.auth_methods & SHOAL_AUTH_KBDINT) && allowed(s, "keyboard-interactive") && s->cb.kbdint &&
                s->auth.kbdint_rounds < MAX_PROMPT_ROUNDS)
                return start_kbdint(s);
            s->auth.auth_cursor = CUR_PASSWORD;
            s->auth.kbdint_rounds = 0;
            break;
        case CUR_PASSWORD:
            if ((s->auth.auth_methods & SHOAL_AUTH_PASSWORD) && allowed(s, "password") && s->cb.password &&
                s->auth.kbdint_rounds < MAX_PROMPT_ROUNDS)
                return start_password(s);
            s->auth.auth_cursor = CUR_DONE;
            break;
        default:
            return auth_exhausted(s);
        }
    }
}

static int on_failure(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    const char *list;
    size_t ll;
    int partial;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_namelist(&r, &list, &ll) || shoal_rd_bool(&r, &partial) || shoal_rd_end(&r))
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed USERAUTH_FAILURE");
    char *nl = malloc(ll + 1);
    if (!nl)
        return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
    memcpy(nl, list, ll);
    nl[ll] = 0;
    free(s->auth.auth_allowed);
    s->auth.auth_allowed = nl;
    if (s->auth.auth_final_sent) {
        /* Opens sent with the request are lost with it (OpenSSH ignores
         * them): should anything still be tried, they go again on success. */
        s->auth.auth_final_sent = 0;
        s->auth.hooks->final_request_failed(s);
    }
    if (partial) {
        /* One factor passed; the server wants another: start over on the
         * methods it still lists. */
        shoal__log(s, 1, "partial success; server continues with: %s", nl);
        s->auth.auth_cursor = CUR_PUBKEY;
        s->auth.auth_ident = s->auth.state == AUTH_PK_SIGNED ? s->auth.auth_ident + 1 : s->auth.auth_ident;
        s->auth.kbdint_rounds = 0;
        return try_next(s);
    }
    switch (s->auth.state) {
    case AUTH_NONE_SENT:
        break;
    case AUTH_PK_QUERY:
    case AUTH_PK_SIGNED:
        s->auth.auth_ident++;
        break;
    case AUTH_KBDINT_SENT:
    case AUTH_PASSWORD_SENT:
        break; /* the cursor stays: another round until the limit */
    default:
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected USERAUTH_FAILURE");
    }
    return try_next(s);
}

static int on_ext_info(shoal_session *s, const uint8_t *p, size_t n)
{
    shoal_rd r;
    uint32_t count;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_u32(&r, &count) || count > 64)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed EXT_INFO");
    for (uint32_t i = 0; i < count; i++) {
        const char *name;
        const uint8_t *val;
        size_t nl, vl;
        if (shoal_rd_cstring(&r, &name, &nl) || shoal_rd_string(&r, &val, &vl))
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed EXT_INFO");
        if (nl == 15 && memcmp(name, "server-sig-algs", 15) == 0) {
            shoal_rd vr;
            const char *list;
            size_t ll;
            /* Re-read the value as a name-list to validate it. */
            shoal_buf tmp;
            shoal_buf_init(&tmp, SHOAL_MAX_NAMELIST + 8);
            if (shoal_buf_put_string(&tmp, val, vl) == 0) {
                shoal_rd_init(&vr, shoal_buf_ptr(&tmp), shoal_buf_len(&tmp));
                if (shoal_rd_namelist(&vr, &list, &ll) == 0) {
                    free(s->auth.server_sig_algs);
                    s->auth.server_sig_algs = malloc(ll + 1);
                    if (s->auth.server_sig_algs) {
                        memcpy(s->auth.server_sig_algs, list, ll);
                        s->auth.server_sig_algs[ll] = 0;
                    }
                }
            }
            shoal_buf_free(&tmp);
        }
    }
    if (shoal_rd_end(&r))
        return shoal__fail(s, SHOAL_ERR_TRAILING, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed EXT_INFO");
    return SHOAL_OK;
}

int shoal__auth_dispatch(shoal_session *s, uint8_t type, const uint8_t *p, size_t n)
{
    switch (type) {
    case SSH_MSG_EXT_INFO:
        return on_ext_info(s, p, n);
    case SSH_MSG_SERVICE_ACCEPT: {
        shoal_rd r;
        const char *svc;
        size_t sl;
        shoal_rd_init(&r, p + 1, n - 1);
        if (s->auth.state != AUTH_SERVICE || shoal_rd_cstring(&r, &svc, &sl) || sl != 12 ||
            memcmp(svc, "ssh-userauth", 12) != 0 || shoal_rd_end(&r))
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "bad SERVICE_ACCEPT");
        /* The "none" probe (or a signed first key) is already on its way
         * (see shoal__auth_start): its answer tells the allowed methods, or
         * logs us in. */
        s->auth.state = s->auth.auth_signed_first ? AUTH_PK_SIGNED : AUTH_NONE_SENT;
        s->tp.ext_info_in_auth_ok = 1;
        return SHOAL_OK;
    }
    case SSH_MSG_USERAUTH_BANNER: {
        shoal_rd r;
        const char *msg, *lang;
        size_t ml, ll;
        shoal_rd_init(&r, p + 1, n - 1);
        if (shoal_rd_cstring(&r, &msg, &ml) || shoal_rd_cstring(&r, &lang, &ll))
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "malformed banner");
        if (s->cb.banner) {
            char *clean = dup_clean(msg, ml > 65536 ? 65536 : ml);
            if (clean)
                s->cb.banner(s, clean, strlen(clean), s->tp.ud);
            free(clean);
        }
        return SHOAL_OK;
    }
    case SSH_MSG_USERAUTH_FAILURE:
        return on_failure(s, p, n);
    case SSH_MSG_USERAUTH_SUCCESS: {
        if (n != 1 || s->auth.state == AUTH_SERVICE || s->auth.state == AUTH_IDLE || s->auth.state == AUTH_DONE)
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected USERAUTH_SUCCESS");
        s->auth.state = AUTH_DONE;
        s->tp.phase = SHOAL_PHASE_OPEN;
        s->tp.ext_info_in_auth_ok = 0;
        s->auth.auth_final_sent = 0;
        free_prompts(s);
        shoal__log(s, 1, "authenticated as %s", s->auth.user);
        int rc = s->auth.hooks->service_may_follow(s);
        if (rc)
            return rc;
        if (s->cb.authenticated)
            s->cb.authenticated(s, s->tp.ud);
        return SHOAL_OK;
    }
    case SSH_MSG_USERAUTH_PK_OK: /* 60 means what the method in progress says */
        if (s->auth.state == AUTH_PK_QUERY)
            return on_pk_ok(s, p, n);
        if (s->auth.state == AUTH_KBDINT_SENT)
            return on_info_request(s, p, n);
        if (s->auth.state == AUTH_PASSWORD_SENT) {
            /* PASSWD_CHANGEREQ: changing an expired password is not supported. */
            shoal__log(s, 0, "server asks for a password change; not supported");
            s->auth.auth_cursor = CUR_DONE;
            return try_next(s);
        }
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "unexpected message 60");
    default:
        return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "unexpected authentication message %u", type);
    }
}
