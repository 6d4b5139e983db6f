/* User authentication, server side (RFC 4252, RFC 4256, RFC 8308).
 *
 * The application decides every attempt through the auth callback, which
 * may answer later. Safety rules enforced here, whatever it answers:
 *  - nothing but SERVICE_REQUEST is accepted before the userauth service
 *    was granted, and no USERAUTH_SUCCESS can come from anything but an
 *    accepted attempt (the client cannot send one: the message table drops
 *    it);
 *  - a public key only logs a user in after its signature over this
 *    session verified; a probe can at most earn PK_OK (CVE-2024-45337's
 *    trap: the callback is told which is which);
 *  - every attempt is counted against the limit (failures, probes that
 *    earned PK_OK, every "none" but the first) and the connection ends
 *    past it: a client cannot try without end, whatever it tries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "session/session_impl.h"

#define MAX_USER_LEN 256
/* Public key algorithms we accept from clients: SHA-1 RSA is not one. */
static const char PUBKEY_ALGS[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                                  "rsa-sha2-512,rsa-sha2-256";

#define FAIL_PROTO(s, ...) shoal__fail((s), SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, __VA_ARGS__)

static void clear_pending(shoal_session *s)
{
    s->tp.hold_input = 0;
    free(s->sauth.user);
    s->sauth.user = NULL;
    shoal_key_free(s->sauth.key);
    s->sauth.key = NULL;
    free(s->sauth.blob);
    s->sauth.blob = NULL;
    s->sauth.blob_len = 0;
}

static void clear_prompts(shoal_session *s)
{
    free(s->sauth.kbd_name);
    free(s->sauth.kbd_instr);
    for (unsigned i = 0; i < s->sauth.kbd_count; i++)
        free(s->sauth.kbd_texts[i]);
    free(s->sauth.kbd_texts);
    free(s->sauth.kbd_echo);
    s->sauth.kbd_name = s->sauth.kbd_instr = NULL;
    s->sauth.kbd_texts = NULL;
    s->sauth.kbd_echo = NULL;
    s->sauth.kbd_count = 0;
    s->sauth.kbd_prompts_set = 0;
}

void shoal__sauth_free(shoal_session *s)
{
    clear_pending(s);
    clear_prompts(s);
    free(s->sauth.auth_user);
    s->sauth.auth_user = NULL;
    shoal_key_free(s->sauth.auth_key);
    s->sauth.auth_key = NULL;
}

int shoal__sauth_send_ext_info(shoal_session *s)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_EXT_INFO, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, 1);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "server-sig-algs");
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, PUBKEY_ALGS);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

static int methods_list(shoal_session *s, char *out, size_t outsz)
{
    out[0] = 0;
    if (s->sauth.srv_methods & SHOAL_AUTH_PUBLICKEY)
        strncat(out, "publickey,", outsz - strlen(out) - 1);
    if (s->sauth.srv_methods & SHOAL_AUTH_PASSWORD)
        strncat(out, "password,", outsz - strlen(out) - 1);
    if (s->sauth.srv_methods & SHOAL_AUTH_KBDINT)
        strncat(out, "keyboard-interactive,", outsz - strlen(out) - 1);
    size_t n = strlen(out);
    if (n)
        out[n - 1] = 0;
    return SHOAL_OK;
}

static int send_failure(shoal_session *s, int partial)
{
    char list[128];
    methods_list(s, list, sizeof(list));
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_FAILURE, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, list);
    if (!rc)
        rc = shoal_buf_put_bool(&s->tp.out, partial);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

static int count_attempt(shoal_session *s)
{
    if (++s->sauth.auth_failures > s->sauth.max_auth_tries)
        return shoal__fail(s, SHOAL_ERR_AUTH_FAILED, SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                           "too many authentication failures (%u) for %s", s->sauth.auth_failures,
                           s->sauth.user ? s->sauth.user : "?");
    return SHOAL_OK;
}

static int count_failure(shoal_session *s)
{
    int rc = count_attempt(s);
    return rc ? rc : send_failure(s, 0);
}

static int send_info_request(shoal_session *s)
{
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_PK_OK /* INFO_REQUEST */, &mark);
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, s->sauth.kbd_name ? s->sauth.kbd_name : "");
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, s->sauth.kbd_instr ? s->sauth.kbd_instr : "");
    if (!rc)
        rc = shoal_buf_put_cstring(&s->tp.out, "");
    if (!rc)
        rc = shoal_buf_put_u32(&s->tp.out, s->sauth.kbd_count);
    for (unsigned i = 0; !rc && i < s->sauth.kbd_count; i++) {
        rc = shoal_buf_put_cstring(&s->tp.out, s->sauth.kbd_texts[i]);
        if (!rc)
            rc = shoal_buf_put_bool(&s->tp.out, s->sauth.kbd_echo[i]);
    }
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    s->sauth.kbd_waiting = 1;
    return rc;
}

/* Applies the application's decision on the pending attempt. */
static int apply_result(shoal_session *s, int result)
{
    int method = s->sauth.method;
    if ((result == SHOAL_AUTH_SUCCESS || result == SHOAL_AUTH_PARTIAL) && method == SHOAL_METHOD_PUBLICKEY &&
        !s->sauth.proven) {
        /* A probe the application likes: say the key would do (PK_OK).
         * PARTIAL too: a probe must never pass a step of a multi-step login.
         * It counts as an attempt: a client repeating accepted probes must
         * reach the limit too. */
        int rc = count_attempt(s);
        if (rc) {
            clear_pending(s);
            return rc;
        }
        size_t mark;
        rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_PK_OK, &mark);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, s->sauth.alg);
        if (!rc)
            rc = shoal_buf_put_string(&s->tp.out, s->sauth.blob, s->sauth.blob_len);
        if (!rc)
            rc = shoal__pkt_end(s, mark);
        clear_pending(s);
        return rc;
    }
    if (result == SHOAL_AUTH_SUCCESS) {
        size_t mark;
        int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_SUCCESS, &mark);
        if (!rc)
            rc = shoal__pkt_end(s, mark);
        free(s->sauth.auth_user);
        s->sauth.auth_user = s->sauth.user;
        s->sauth.user = NULL;
        if (method == SHOAL_METHOD_PUBLICKEY) {
            shoal_key_free(s->sauth.auth_key);
            s->sauth.auth_key = s->sauth.key;
            s->sauth.key = NULL;
        }
        clear_pending(s);
        clear_prompts(s);
        s->sauth.state = AUTH_DONE;
        s->tp.phase = SHOAL_PHASE_OPEN;
        shoal__log(s, 1, "user %s authenticated", s->sauth.auth_user);
        if (s->scb.authenticated)
            s->scb.authenticated(s, s->sauth.auth_user, s->tp.ud);
        return rc;
    }
    if (result == SHOAL_AUTH_PARTIAL) {
        clear_pending(s);
        clear_prompts(s);
        return send_failure(s, 1);
    }
    if (result == SHOAL_AUTH_PROMPT && method == SHOAL_METHOD_KBDINT) {
        if (!s->sauth.kbd_prompts_set)
            return shoal__fail(s, SHOAL_ERR_CALLBACK, SSH_DISCONNECT_BY_APPLICATION,
                               "auth callback asked for prompts but set none");
        s->tp.hold_input = 0;
        return send_info_request(s);
    }
    /* DENY, or anything unexpected: this attempt fails (the first "none"
     * is how clients learn the methods, so it is not counted; later ones
     * are, as in OpenSSH). */
    int rc = method == SHOAL_METHOD_NONE && s->sauth.nones++ == 0 ? send_failure(s, 0) : count_failure(s);
    clear_pending(s);
    clear_prompts(s);
    return rc;
}

static int decide(shoal_session *s, const shoal_auth_request *req)
{
    s->tp.hold_input = 1;
    int result = s->scb.auth(s, req, s->tp.ud);
    if (s->tp.closed)
        return SHOAL_OK;
    if (result == SHOAL_ERR_DEFERRED)
        return SHOAL_OK;
    if (result < 0)
        result = SHOAL_AUTH_DENY;
    return apply_result(s, result);
}

int shoal_session_auth_reply(shoal_session *s, int result)
{
    if (s->tp.closed || !s->tp.is_server || !s->tp.hold_input)
        return SHOAL_ERR_BAD_STATE;
    int rc = apply_result(s, result < 0 ? SHOAL_AUTH_DENY : result);
    /* Packets that arrived while the decision was pending. */
    if (!rc && !s->tp.closed)
        rc = shoal__process_packets(s);
    return rc;
}

int shoal_session_set_auth_methods(shoal_session *s, unsigned methods)
{
    if (!s->tp.is_server)
        return SHOAL_ERR_BAD_STATE;
    s->sauth.srv_methods = methods;
    return SHOAL_OK;
}

static char *dup_text(const char *p)
{
    return strdup(p ? p : "");
}

int shoal_session_kbdint_prompts(shoal_session *s, const char *name, const char *instruction, unsigned n,
                                 const shoal_kbdint_prompt *prompts)
{
    if (!s->tp.is_server || n > SHOAL_MAX_KBDINT_PROMPTS)
        return SHOAL_ERR_INVALID_ARG;
    clear_prompts(s);
    s->sauth.kbd_name = dup_text(name);
    s->sauth.kbd_instr = dup_text(instruction);
    s->sauth.kbd_texts = calloc(n ? n : 1, sizeof(char *));
    s->sauth.kbd_echo = calloc(n ? n : 1, sizeof(int));
    if (!s->sauth.kbd_name || !s->sauth.kbd_instr || !s->sauth.kbd_texts || !s->sauth.kbd_echo) {
        clear_prompts(s);
        return SHOAL_ERR_NOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        s->sauth.kbd_texts[i] = dup_text(prompts[i].text);
        if (!s->sauth.kbd_texts[i]) {
            clear_prompts(s);
            return SHOAL_ERR_NOMEM;
        }
        s->sauth.kbd_echo[i] = prompts[i].echo;
        s->sauth.kbd_count = i + 1;
    }
    s->sauth.kbd_prompts_set = 1;
    return SHOAL_OK;
}

const char *shoal_session_auth_user(const shoal_session *s)
{
    return s->sauth.state == AUTH_DONE ? s->sauth.auth_user : NULL;
}

const shoal_key *shoal_session_auth_key(const shoal_session *s)
{
    return s->sauth.state == AUTH_DONE ? s->sauth.auth_key : NULL;
}

/* The data a client signs for publickey (RFC 4252 7). */
static int signed_data(shoal_session *s, const char *user, size_t ul, const char *alg, size_t al,
                       const uint8_t *blob, size_t bl, shoal_buf *d)
{
    int rc = shoal_buf_put_string(d, s->tp.session_id, s->tp.session_id_len);
    if (!rc)
        rc = shoal_buf_put_u8(d, SSH_MSG_USERAUTH_REQUEST);
    if (!rc)
        rc = shoal_buf_put_string(d, user, ul);
    if (!rc)
        rc = shoal_buf_put_cstring(d, "ssh-connection");
    if (!rc)
        rc = shoal_buf_put_cstring(d, "publickey");
    if (!rc)
        rc = shoal_buf_put_bool(d, 1);
    if (!rc)
        rc = shoal_buf_put_string(d, alg, al);
    if (!rc)
        rc = shoal_buf_put_string(d, blob, bl);
    return rc;
}

static int on_publickey(shoal_session *s, shoal_rd *r, shoal_auth_request *req, const char *user, size_t ul)
{
    int has_sig;
    const char *alg;
    const uint8_t *blob, *sig = NULL;
    size_t al, bl, sl = 0;
    if (shoal_rd_bool(r, &has_sig) || shoal_rd_cstring(r, &alg, &al) || shoal_rd_string(r, &blob, &bl) ||
        (has_sig && shoal_rd_string(r, &sig, &sl)) || shoal_rd_end(r))
        return FAIL_PROTO(s, "malformed publickey request");
    char algname[64];
    if (al == 0 || al >= sizeof(algname))
        return count_failure(s);
    memcpy(algname, alg, al);
    algname[al] = 0;
    shoal_key *key = NULL;
    if (!shoal_namelist_has(PUBKEY_ALGS, strlen(PUBKEY_ALGS), algname) || shoal_key_from_blob(blob, bl, &key) ||
        !shoal_key_sigalg_valid(key, alg, al)) {
        shoal_key_free(key);
        shoal__log(s, 1, "refusing public key of algorithm %s", algname);
        return count_failure(s);
    }
    if (has_sig) {
        shoal_buf d;
        shoal_buf_init(&d, 1u << 16);
        int rc = signed_data(s, user, ul, alg, al, blob, bl, &d);
        if (!rc)
            rc = shoal_key_verify(key, algname, sig, sl, shoal_buf_ptr(&d), shoal_buf_len(&d));
        shoal_buf_free(&d);
        if (rc) {
            shoal_key_free(key);
            shoal__log(s, 1, "bad publickey signature for %s", s->sauth.user);
            return count_failure(s);
        }
    }
    s->sauth.key = key;
    s->sauth.blob = malloc(bl);
    if (!s->sauth.blob)
        return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
    memcpy(s->sauth.blob, blob, bl);
    s->sauth.blob_len = bl;
    snprintf(s->sauth.alg, sizeof(s->sauth.alg), "%s", algname);
    s->sauth.proven = has_sig;
    req->method = SHOAL_METHOD_PUBLICKEY;
    req->key = key;
    req->key_algorithm = s->sauth.alg;
    req->proven = has_sig;
    s->sauth.method = SHOAL_METHOD_PUBLICKEY;
    return decide(s, req);
}

static int on_request(shoal_session *s, const uint8_t *p, size_t n)
{
    if (s->sauth.state == AUTH_DONE)
        return SHOAL_OK; /* RFC 4252 5.1: later requests are ignored */
    if (s->sauth.state != AUTH_SERVICE)
        return FAIL_PROTO(s, "USERAUTH_REQUEST before the userauth service was granted");
    if (s->tp.hold_input || s->sauth.kbd_waiting)
        return FAIL_PROTO(s, "USERAUTH_REQUEST while the previous one is unanswered");
    shoal_rd r;
    const char *user, *svc, *method;
    size_t ul, sl, ml;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_cstring(&r, &user, &ul) || shoal_rd_cstring(&r, &svc, &sl) || shoal_rd_cstring(&r, &method, &ml))
        return FAIL_PROTO(s, "malformed USERAUTH_REQUEST");
    if (ul == 0 || ul > MAX_USER_LEN)
        return FAIL_PROTO(s, "user name of %zu bytes", ul);
    if (sl != 14 || memcmp(svc, "ssh-connection", 14) != 0)
        return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_SERVICE_NOT_AVAILABLE, "unknown service requested");
    if (s->sauth.banner && !s->sauth.banner_sent) {
        size_t mark;
        int rc = shoal__pkt_begin(s, SSH_MSG_USERAUTH_BANNER, &mark);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, s->sauth.banner);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, "");
        if (!rc)
            rc = shoal__pkt_end(s, mark);
        if (rc)
            return rc;
        s->sauth.banner_sent = 1;
    }
    /* The user name may change between attempts (RFC 4252 5): each attempt
     * carries its own. */
    free(s->sauth.user);
    s->sauth.user = malloc(ul + 1);
    if (!s->sauth.user)
        return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
    memcpy(s->sauth.user, user, ul);
    s->sauth.user[ul] = 0;
    clear_prompts(s);

    shoal_auth_request req;
    memset(&req, 0, sizeof(req));
    req.user = s->sauth.user;
    req.service = "ssh-connection";
    if (ml == 4 && memcmp(method, "none", 4) == 0) {
        if (shoal_rd_end(&r))
            return FAIL_PROTO(s, "malformed none request");
        req.method = s->sauth.method = SHOAL_METHOD_NONE;
        s->tp.hold_input = 1;
        int result = s->scb.auth(s, &req, s->tp.ud);
        if (s->tp.closed)
            return SHOAL_OK;
        if (result == SHOAL_ERR_DEFERRED)
            return SHOAL_OK;
        return apply_result(s, result == SHOAL_AUTH_SUCCESS ? result : SHOAL_AUTH_DENY);
    }
    if (ml == 9 && memcmp(method, "publickey", 9) == 0 && (s->sauth.srv_methods & SHOAL_AUTH_PUBLICKEY))
        return on_publickey(s, &r, &req, user, ul);
    if (ml == 8 && memcmp(method, "password", 8) == 0 && (s->sauth.srv_methods & SHOAL_AUTH_PASSWORD)) {
        int change;
        const char *pw;
        size_t pl;
        if (shoal_rd_bool(&r, &change) || shoal_rd_cstring(&r, &pw, &pl))
            return FAIL_PROTO(s, "malformed password request");
        if (change)
            return count_failure(s); /* password changes are not offered */
        if (shoal_rd_end(&r))
            return FAIL_PROTO(s, "malformed password request");
        char *copy = malloc(pl + 1);
        if (!copy)
            return shoal__fail(s, SHOAL_ERR_NOMEM, 0, "out of memory");
        memcpy(copy, pw, pl);
        copy[pl] = 0;
        req.method = s->sauth.method = SHOAL_METHOD_PASSWORD;
        req.password = copy;
        int rc = decide(s, &req);
        shoal_wipe(copy, pl);
        free(copy);
        return rc;
    }
    if (ml == 20 && memcmp(method, "keyboard-interactive", 20) == 0 && (s->sauth.srv_methods & SHOAL_AUTH_KBDINT)) {
        const char *lang, *sub;
        size_t ll, subl;
        if (shoal_rd_cstring(&r, &lang, &ll) || shoal_rd_cstring(&r, &sub, &subl) || shoal_rd_end(&r))
            return FAIL_PROTO(s, "malformed keyboard-interactive request");
        req.method = s->sauth.method = SHOAL_METHOD_KBDINT;
        return decide(s, &req);
    }
    return count_failure(s);
}

static int on_info_response(shoal_session *s, const uint8_t *p, size_t n)
{
    if (!s->sauth.kbd_waiting || s->sauth.method != SHOAL_METHOD_KBDINT)
        return FAIL_PROTO(s, "unexpected INFO_RESPONSE");
    s->sauth.kbd_waiting = 0;
    shoal_rd r;
    uint32_t count;
    shoal_rd_init(&r, p + 1, n - 1);
    if (shoal_rd_u32(&r, &count) || count != s->sauth.kbd_count)
        return FAIL_PROTO(s, "INFO_RESPONSE with a wrong number of answers");
    char *answers[SHOAL_MAX_KBDINT_PROMPTS];
    unsigned got = 0;
    int rc = SHOAL_OK;
    for (; got < count; got++) {
        const char *a;
        size_t al;
        if (shoal_rd_cstring(&r, &a, &al) || !(answers[got] = malloc(al + 1))) {
            rc = FAIL_PROTO(s, "malformed INFO_RESPONSE");
            break;
        }
        memcpy(answers[got], a, al);
        answers[got][al] = 0;
    }
    if (!rc && shoal_rd_end(&r))
        rc = FAIL_PROTO(s, "malformed INFO_RESPONSE");
    if (!rc) {
        shoal_auth_request req;
        memset(&req, 0, sizeof(req));
        req.method = SHOAL_METHOD_KBDINT;
        req.user = s->sauth.user;
        req.service = "ssh-connection";
        req.n_responses = count;
        req.responses = (const char *const *)answers;
        clear_prompts(s);
        rc = decide(s, &req);
    }
    for (unsigned i = 0; i < got; i++) {
        shoal_wipe(answers[i], strlen(answers[i]));
        free(answers[i]);
    }
    return rc;
}

int shoal__sauth_dispatch(shoal_session *s, uint8_t type, const uint8_t *p, size_t n)
{
    switch (type) {
    case SSH_MSG_SERVICE_REQUEST: {
        shoal_rd r;
        const char *svc;
        size_t sl;
        shoal_rd_init(&r, p + 1, n - 1);
        if (shoal_rd_cstring(&r, &svc, &sl) || shoal_rd_end(&r))
            return FAIL_PROTO(s, "malformed SERVICE_REQUEST");
        if ((s->sauth.state != AUTH_IDLE && s->sauth.state != AUTH_SERVICE) || sl != 12 ||
            memcmp(svc, "ssh-userauth", 12) != 0)
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_SERVICE_NOT_AVAILABLE,
                               "service \"%.*s\" not available", (int)(sl > 40 ? 40 : sl), svc);
        /* Again before logging in is allowed, as sshd does (paramiko asks
         * for the service before each method it tries), within bounds: a
         * client may not loop on it. */
        if (s->tp.hold_input || s->sauth.kbd_waiting || ++s->sauth.services > 2 * s->sauth.max_auth_tries + 2)
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR,
                               "too many service requests (%u) or one while an attempt is unanswered",
                               s->sauth.services);
        size_t mark;
        int rc = shoal__pkt_begin(s, SSH_MSG_SERVICE_ACCEPT, &mark);
        if (!rc)
            rc = shoal_buf_put_cstring(&s->tp.out, "ssh-userauth");
        if (!rc)
            rc = shoal__pkt_end(s, mark);
        s->sauth.state = AUTH_SERVICE;
        return rc;
    }
    case SSH_MSG_USERAUTH_REQUEST:
        return on_request(s, p, n);
    case SSH_MSG_USERAUTH_INFO_RESPONSE:
        return on_info_response(s, p, n);
    case SSH_MSG_EXT_INFO:
        return SHOAL_OK; /* no client extension is used */
    default:
        return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "client sent authentication message %u", type);
    }
}
