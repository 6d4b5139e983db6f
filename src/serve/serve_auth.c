/* The server engine (shoal serve): authentication decisions.
 *
 * publickey: the user's AuthorizedKeysFile entries (checked for safe
 * ownership and permissions when StrictModes is on), then the
 * AuthorizedKeysCommand backend, run asynchronously as
 * AuthorizedKeysCommandUser with the user, key type, base64 key and
 * fingerprint as arguments; its output is read as authorized_keys lines.
 * password / keyboard-interactive: the PasswordFile ("user:crypt-hash"
 * lines, checked with crypt(3) and a constant-time comparison).
 * AuthenticationMethods lists, PermitRootLogin and the account's existence
 * are applied on top. Only keys whose signature verified (req->proven) can
 * complete a login; probes only learn whether a key would do. */
#include <crypt.h>
#include <errno.h>
#include <signal.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "serve_impl.h"
#include "shoal/keys.h"

#define AKC_MAX_OUTPUT (1u << 20)
#define AKC_TIMEOUT_MS 10000u

static unsigned method_bit(shoal_serve_method m)
{
    switch (m) {
    case SHOAL_SERVE_METHOD_PUBLICKEY:
        return SHOAL_AUTH_PUBLICKEY;
    case SHOAL_SERVE_METHOD_PASSWORD:
        return SHOAL_AUTH_PASSWORD;
    case SHOAL_SERVE_METHOD_KBDINT:
        return SHOAL_AUTH_KBDINT;
    }
    return 0;
}

/* Methods enabled for this user at all. */
static unsigned enabled_methods(const serve_conn *sc)
{
    unsigned m = 0;
    if (sc->eff.pubkey_authentication)
        m |= SHOAL_AUTH_PUBLICKEY;
    if (sc->eff.password_authentication && sc->eff.password_file)
        m |= SHOAL_AUTH_PASSWORD;
    if (sc->eff.kbd_interactive_authentication && sc->eff.password_file)
        m |= SHOAL_AUTH_KBDINT;
    return m;
}

/* What may come next under AuthenticationMethods, given what succeeded:
 * for each list whose methods so far all succeeded in order, its next one. */
static unsigned next_methods(const serve_conn *sc, int *complete)
{
    unsigned enabled = enabled_methods(sc), next = 0;
    *complete = 0;
    if (sc->eff.n_auth_methods == 0) {
        *complete = sc->done_methods != 0;
        return enabled;
    }
    for (unsigned i = 0; i < sc->eff.n_auth_methods; i++) {
        const shoal_serve_method_list *l = &sc->eff.auth_methods[i];
        unsigned k = 0;
        while (k < l->n && (sc->done_methods & method_bit(l->m[k])))
            k++;
        if (k == l->n) {
            *complete = 1;
            return 0;
        }
        int prefix_ok = 1; /* nothing done outside this list's prefix */
        unsigned prefix = 0;
        for (unsigned j = 0; j < k; j++)
            prefix |= method_bit(l->m[j]);
        if (sc->done_methods & ~prefix)
            prefix_ok = 0;
        if (prefix_ok)
            next |= method_bit(l->m[k]) & enabled;
    }
    return next;
}

static int root_allowed(const serve_conn *sc, shoal_auth_method m, int forced_command)
{
    if (sc->uid != 0)
        return 1;
    switch (sc->eff.permit_root_login) {
    case SHOAL_SERVE_ROOT_YES:
        return 1;
    case SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD:
        return m == SHOAL_METHOD_PUBLICKEY;
    case SHOAL_SERVE_ROOT_FORCED_COMMANDS_ONLY:
        return m == SHOAL_METHOD_PUBLICKEY && forced_command;
    case SHOAL_SERVE_ROOT_NO:
        return 0;
    }
    return 0;
}

/* Resolves the account and the per-user settings once per user name. The
 * settings are those of the name whether or not the account exists: an
 * unknown user is offered the same methods as a known one (no enumeration
 * through the method list, CVE-2018-15473 class). */
static void resolve_user(serve_conn *sc, const char *user)
{
    if (sc->have_user && strcmp(sc->user, user) == 0)
        return;
    sc->have_user = 1;
    sc->user_ok = 0;
    sc->invalid_logged = 0;
    sc->done_methods = 0;
    sc->uid = (uid_t)-1;
    sc->gid = (gid_t)-1;
    sc->home[0] = sc->shell[0] = 0;
    snprintf(sc->user, sizeof(sc->user), "%s", user);
    if (shoal_serve_config_for(sc->ctx->cfg, user, shoal_uv_sconn_address(sc->sconn), &sc->eff) != 0)
        memset(&sc->eff, 0, sizeof(sc->eff));
    if (strlen(user) >= sizeof(sc->user) || !shoal_serve_user_name_ok(user))
        return;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return;
    /* Not root: we can only run commands as ourselves. */
    if (!sc->ctx->is_root && pw.pw_uid != sc->ctx->self_uid)
        return;
    sc->uid = pw.pw_uid;
    sc->gid = pw.pw_gid;
    snprintf(sc->home, sizeof(sc->home), "%s", pw.pw_dir);
    snprintf(sc->shell, sizeof(sc->shell), "%s", pw.pw_shell && *pw.pw_shell ? pw.pw_shell : "/bin/sh");
    sc->user_ok = 1;
}

/* StrictModes: the file and every directory up to the home (or /) must be
 * owned by root or the user and not writable by group or others. */
static int safe_path(const serve_conn *sc, const char *path, char *why, size_t whysz)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s", path);
    for (;;) {
        struct stat st;
        if (stat(p, &st) != 0)
            return 1; /* missing: nothing to trust or distrust */
        if ((st.st_uid != 0 && st.st_uid != sc->uid) || (st.st_mode & 022)) {
            snprintf(why, whysz, "bad ownership or modes for %s", p);
            return 0;
        }
        if (strcmp(p, sc->home) == 0 || strcmp(p, "/") == 0)
            return 1;
        char *slash = strrchr(p, '/');
        if (!slash)
            return 1;
        if (slash == p)
            slash[1] = 0;
        else
            *slash = 0;
    }
}

static int key_in_files(serve_conn *sc, const shoal_key *key, shoal_authkey_opts *opts)
{
    shoal_authkeys_peer peer = {shoal_uv_sconn_address(sc->sconn), NULL, (int64_t)time(NULL)};
    for (unsigned i = 0; i < sc->eff.n_authorized_keys_files; i++) {
        char *path = NULL;
        if (shoal_serve_keys_file_path(sc->eff.authorized_keys_files[i], sc->user, sc->home, &path) != 0)
            continue;
        char why[300];
        if (sc->ctx->g->strict_modes && !safe_path(sc, path, why, sizeof(why))) {
            serve_log(sc->ctx, 1, "%s: authentication refused: %s", sc->user, why);
            free(path);
            continue;
        }
        shoal_authkeys_result res;
        int found = shoal_authkeys_find_file(path, key, &peer, opts, &res);
        if (found == 1) {
            serve_log(sc->ctx, 2, "%s: key found at %s:%u", sc->user, path, res.line);
            free(path);
            return 1;
        }
        if (res.refused_line)
            serve_log(sc->ctx, 1, "%s: %s:%u: key refused: %s", sc->user, path, res.refused_line, res.refused_why);
        shoal_authkey_opts_free(opts);
        free(path);
    }
    return 0;
}

/* ---- AuthorizedKeysCommand (asynchronous) ---- */

typedef struct akc_job {
    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t timer;
    int handles;
    serve_conn *sc; /* NULL once the connection is gone */
    shoal_session *s;
    shoal_key *key;
    char *key_text; /* "type base64": argv points into it */
    char *output;
    size_t len;
    int exited, eof, answered;
    int64_t status;
    int proven; /* the request's signature verified (else: a probe) */
} akc_job;

static void akc_handle_closed(uv_handle_t *h)
{
    akc_job *j = h->data;
    if (--j->handles == 0) {
        shoal_key_free(j->key);
        free(j->key_text);
        free(j->output);
        free(j);
    }
}

static void akc_answer(akc_job *j, int result)
{
    if (j->answered)
        return;
    j->answered = 1;
    if (j->sc) {
        serve_conn *sc = j->sc;
        sc->akc = NULL;
        j->sc = NULL;
        shoal_session_auth_reply(j->s, result);
        shoal_uv_sconn_flush(sc->sconn);
    }
    uv_close((uv_handle_t *)&j->timer, akc_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&j->out))
        uv_close((uv_handle_t *)&j->out, akc_handle_closed);
}

static int finish_publickey(serve_conn *sc, const shoal_auth_request *req, shoal_authkey_opts *opts);

static void akc_maybe_done(akc_job *j)
{
    if (!j->exited || !j->eof || j->answered)
        return;
    int result = SHOAL_AUTH_DENY;
    if (j->sc && j->status == 0) {
        shoal_authkeys_peer peer = {shoal_uv_sconn_address(j->sc->sconn), NULL, (int64_t)time(NULL)};
        shoal_authkey_opts opts;
        if (shoal_authkeys_find(j->output ? j->output : "", j->len, j->key, &peer, &opts, NULL) == 1) {
            shoal_auth_request req;
            memset(&req, 0, sizeof(req));
            req.method = SHOAL_METHOD_PUBLICKEY;
            req.key = j->key;
            req.proven = j->proven; /* a probe stays a probe */
            result = finish_publickey(j->sc, &req, &opts);
        }
        shoal_authkey_opts_free(&opts);
    } else if (j->sc) {
        serve_log(j->sc->ctx, 1, "AuthorizedKeysCommand exited with status %lld", (long long)j->status);
    }
    akc_answer(j, result);
}

static void akc_on_exit(uv_process_t *p, int64_t status, int sig)
{
    akc_job *j = p->data;
    j->exited = 1;
    j->status = sig ? 128 + sig : status;
    uv_close((uv_handle_t *)p, akc_handle_closed);
    akc_maybe_done(j);
}

static void akc_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    akc_job *j = h->data;
    (void)sz;
    if (!j->output)
        j->output = malloc(AKC_MAX_OUTPUT + 1);
    size_t room = j->output && j->len < AKC_MAX_OUTPUT ? AKC_MAX_OUTPUT - j->len : 0;
    *b = uv_buf_init(j->output ? j->output + j->len : NULL, (unsigned)(room > 65536 ? 65536 : room));
}

static void akc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    akc_job *j = st->data;
    (void)b;
    if (n > 0) {
        j->len += (size_t)n;
        return;
    }
    if (n < 0 || j->len >= AKC_MAX_OUTPUT) {
        uv_read_stop(st);
        j->eof = 1;
        akc_maybe_done(j);
    }
}

static void akc_timeout(uv_timer_t *t)
{
    akc_job *j = t->data;
    if (j->sc)
        serve_log(j->sc->ctx, 0, "AuthorizedKeysCommand timed out; denying");
    if (!j->exited)
        uv_process_kill(&j->proc, SIGKILL);
    akc_answer(j, SHOAL_AUTH_DENY);
}

static int run_akc(serve_conn *sc, shoal_session *s, const shoal_key *key, int proven)
{
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (!sc->eff.authorized_keys_command_user ||
        getpwnam_r(sc->eff.authorized_keys_command_user, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || !res)
        return SHOAL_AUTH_DENY;
    /* "type base64": the key argument is the part after the blank. */
    char *text = NULL, fp[128] = "";
    if (shoal_key_public_text(key, NULL, &text) != 0)
        return SHOAL_AUTH_DENY;
    char *b64 = strchr(text, ' ') + 1;
    shoal_key_fingerprint(key, fp, sizeof(fp));
    akc_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(text);
        return SHOAL_AUTH_DENY;
    }
    j->key = shoal_key_ref((shoal_key *)key); /* keys never change once loaded */
    j->key_text = text;
    j->sc = sc;
    j->s = s;
    j->proven = proven;
    /* A bare program gets "user type key fingerprint" as arguments; a
     * command line with arguments is split on blanks after its %-tokens
     * are expanded (%u %h %U %t %k %f, as sshd). */
    char *argv[32];
    char *expanded = NULL;
    unsigned argc = 0;
    const char *cmd = sc->eff.authorized_keys_command;
    if (!strchr(cmd, ' ') && !strchr(cmd, '\t')) {
        argv[argc++] = (char *)cmd;
        argv[argc++] = sc->user;
        argv[argc++] = (char *)shoal_key_type_name(key);
        argv[argc++] = b64;
        argv[argc++] = fp;
    } else {
        char uid[32];
        snprintf(uid, sizeof(uid), "%u", (unsigned)sc->uid);
        shoal_serve_tokens tk = {sc->user, sc->home, uid, shoal_key_type_name(key), b64, fp};
        if (shoal_serve_expand(cmd, &tk, &expanded) != 0) {
            serve_log(sc->ctx, 0, "AuthorizedKeysCommand: cannot expand \"%s\"", cmd);
            shoal_key_free(j->key);
            free(j->key_text);
            free(j);
            return SHOAL_AUTH_DENY;
        }
        char *save = NULL;
        for (char *t = strtok_r(expanded, " \t", &save); t && argc < 31; t = strtok_r(NULL, " \t", &save))
            argv[argc++] = t;
    }
    argv[argc] = NULL;
    uv_loop_t *loop = shoal_uv_server_loop(sc->ctx->srv);
    uv_pipe_init(loop, &j->out, 0);
    j->out.data = j;
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    j->handles = 2;

    char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
    uv_stdio_container_t stdio[3] = {{UV_IGNORE, {0}}, {UV_CREATE_PIPE | UV_WRITABLE_PIPE, {0}}, {UV_IGNORE, {0}}};
    stdio[1].data.stream = (uv_stream_t *)&j->out;
    uv_process_options_t po;
    memset(&po, 0, sizeof(po));
    po.file = argv[0];
    po.args = argv;
    po.env = env;
    po.cwd = "/";
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = akc_on_exit;
    if (sc->ctx->is_root) {
        po.flags = UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        po.uid = pw.pw_uid;
        po.gid = pw.pw_gid;
    }
    j->proc.data = j;
    int r = uv_spawn(loop, &j->proc, &po);
    free(expanded);
    if (r != 0) {
        serve_log(sc->ctx, 0, "cannot run AuthorizedKeysCommand %s: %s", argv[0], uv_strerror(r));
        j->answered = 1;
        uv_close((uv_handle_t *)&j->timer, akc_handle_closed);
        uv_close((uv_handle_t *)&j->out, akc_handle_closed);
        return SHOAL_AUTH_DENY;
    }
    j->handles++;
    uv_read_start((uv_stream_t *)&j->out, akc_alloc, akc_read);
    uv_timer_start(&j->timer, akc_timeout, AKC_TIMEOUT_MS, 0);
    sc->akc = j;
    return SHOAL_ERR_DEFERRED;
}

/* ---- decisions ---- */

static int method_done(serve_conn *sc, shoal_session *s, unsigned bit)
{
    sc->done_methods |= bit;
    int complete;
    unsigned next = next_methods(sc, &complete);
    if (complete)
        return SHOAL_AUTH_SUCCESS;
    if (!next)
        return SHOAL_AUTH_DENY;
    shoal_session_set_auth_methods(s, next);
    return SHOAL_AUTH_PARTIAL;
}

static int finish_publickey(serve_conn *sc, const shoal_auth_request *req, shoal_authkey_opts *opts)
{
    if (!root_allowed(sc, SHOAL_METHOD_PUBLICKEY, opts->command != NULL)) {
        serve_log(sc->ctx, 1, "%s: root login refused by PermitRootLogin", sc->user);
        return SHOAL_AUTH_DENY;
    }
    if (!req->proven)
        return SHOAL_AUTH_SUCCESS; /* a probe: the key would do (PK_OK) */
    if (sc->have_key_opts)
        shoal_authkey_opts_free(&sc->key_opts);
    sc->key_opts = *opts;
    sc->have_key_opts = 1;
    shoal_authkey_opts_init(opts); /* moved */
    char fp[128] = "";
    shoal_key_fingerprint(req->key, fp, sizeof(fp));
    serve_log(sc->ctx, 1, "%s: accepted publickey %s %s from %s", sc->user, shoal_key_type_name(req->key), fp,
              shoal_uv_sconn_peer(sc->sconn));
    shoal_session *s = shoal_uv_sconn_session(sc->sconn);
    return method_done(sc, s, SHOAL_AUTH_PUBLICKEY);
}

static const char *hash_with_crypt(const char *password, const char *setting, void *ud)
{
    struct crypt_data *cd = ud;
    memset(cd, 0, sizeof(*cd));
    return crypt_r(password, setting, cd);
}

/* One hash computation per attempt, for every user (serve_password.c):
 * the time taken does not tell whether the account or its entry exists. */
static int check_password(serve_conn *sc, const char *password)
{
    static struct crypt_data cd; /* 32 KiB: not on the stack */
    int ok = shoal_serve_password_check(sc->eff.password_file, sc->user, sc->user_ok, password, hash_with_crypt, &cd);
    OPENSSL_cleanse(&cd, sizeof(cd));
    return ok == 1;
}

static void log_invalid_user(serve_conn *sc)
{
    if (sc->invalid_logged)
        return;
    sc->invalid_logged = 1;
    serve_log(sc->ctx, 1, "%s: invalid user \"%s\"", shoal_uv_sconn_peer(sc->sconn), sc->user);
}

/* The program's auth callback answered (not SHOAL_SERVE_DEFAULT). */
static int app_decision(serve_conn *sc, shoal_session *s, const shoal_auth_request *req, int r)
{
    if (r != SHOAL_AUTH_SUCCESS)
        return r;
    if (req->method == SHOAL_METHOD_PUBLICKEY && !req->proven)
        return SHOAL_AUTH_SUCCESS; /* a probe: PK_OK, nothing more */
    unsigned bit = req->method == SHOAL_METHOD_PUBLICKEY ? SHOAL_AUTH_PUBLICKEY
                   : req->method == SHOAL_METHOD_PASSWORD ? SHOAL_AUTH_PASSWORD
                   : req->method == SHOAL_METHOD_KBDINT   ? SHOAL_AUTH_KBDINT
                                                          : 0;
    serve_log(sc->ctx, 1, "%s: accepted by the application from %s", sc->user, shoal_uv_sconn_peer(sc->sconn));
    return bit ? method_done(sc, s, bit) : SHOAL_AUTH_SUCCESS;
}

int serve_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)ud;
    serve_conn *sc = shoal_session_app_data(s);
    resolve_user(sc, req->user);
    /* Each attempt is judged on its own, and an unknown user is treated
     * like a known one up to the final answer: the same methods offered,
     * the same prompts, the same password work. */
    unsigned enabled = enabled_methods(sc);
    int complete;
    unsigned next = next_methods(sc, &complete);
    /* Advertise what this user may use next (as sshd does per user). */
    shoal_session_set_auth_methods(s, next ? next : (enabled ? enabled : SHOAL_AUTH_PUBLICKEY));
    if (!sc->user_ok)
        log_invalid_user(sc);
    if (sc->ctx->cb.auth) {
        int r = sc->ctx->cb.auth(sc, req, sc->ctx->ud);
        if (r != SHOAL_SERVE_DEFAULT)
            return app_decision(sc, s, req, r);
    }
    const char *invalid = sc->user_ok ? "" : "invalid user ";
    switch (req->method) {
    case SHOAL_METHOD_NONE:
        return SHOAL_AUTH_DENY;
    case SHOAL_METHOD_PUBLICKEY: {
        if (!(next & SHOAL_AUTH_PUBLICKEY) || !sc->user_ok)
            return SHOAL_AUTH_DENY;
        shoal_authkey_opts opts;
        shoal_authkey_opts_init(&opts);
        int result = SHOAL_AUTH_DENY;
        if (key_in_files(sc, req->key, &opts))
            result = finish_publickey(sc, req, &opts);
        else if (sc->eff.authorized_keys_command)
            result = run_akc(sc, s, req->key, req->proven);
        shoal_authkey_opts_free(&opts);
        return result;
    }
    case SHOAL_METHOD_PASSWORD: {
        if (!(next & SHOAL_AUTH_PASSWORD))
            return SHOAL_AUTH_DENY;
        /* Hashed first, whatever the answer will be (as sshd does for a
         * refused root). */
        int pw_ok = check_password(sc, req->password);
        if (!sc->user_ok || !root_allowed(sc, SHOAL_METHOD_PASSWORD, 0) || !pw_ok) {
            serve_log(sc->ctx, 1, "%s: failed password for %s%s from %s", sc->user, invalid, sc->user,
                      shoal_uv_sconn_peer(sc->sconn));
            return SHOAL_AUTH_DENY;
        }
        serve_log(sc->ctx, 1, "%s: accepted password from %s", sc->user, shoal_uv_sconn_peer(sc->sconn));
        return method_done(sc, s, SHOAL_AUTH_PASSWORD);
    }
    case SHOAL_METHOD_KBDINT: {
        if (!(next & SHOAL_AUTH_KBDINT))
            return SHOAL_AUTH_DENY;
        if (req->n_responses == 0) {
            /* Unknown users and a refused root are prompted too. */
            shoal_kbdint_prompt pr = {"Password: ", 0};
            shoal_session_kbdint_prompts(s, "", "", 1, &pr);
            return SHOAL_AUTH_PROMPT;
        }
        int pw_ok = check_password(sc, req->n_responses == 1 ? req->responses[0] : "");
        if (req->n_responses != 1 || !sc->user_ok || !root_allowed(sc, SHOAL_METHOD_KBDINT, 0) || !pw_ok) {
            serve_log(sc->ctx, 1, "%s: failed keyboard-interactive for %s%s from %s", sc->user, invalid, sc->user,
                      shoal_uv_sconn_peer(sc->sconn));
            return SHOAL_AUTH_DENY;
        }
        serve_log(sc->ctx, 1, "%s: accepted keyboard-interactive from %s", sc->user, shoal_uv_sconn_peer(sc->sconn));
        return method_done(sc, s, SHOAL_AUTH_KBDINT);
    }
    }
    return SHOAL_AUTH_DENY;
}

void serve_conn_free(serve_conn *sc)
{
    akc_job *j = sc->akc;
    if (j) {
        /* The connection is gone: the backend's answer has nowhere to go. */
        j->sc = NULL;
        if (!j->exited)
            uv_process_kill(&j->proc, SIGKILL);
    }
    if (sc->have_key_opts)
        shoal_authkey_opts_free(&sc->key_opts);
    free(sc);
}
