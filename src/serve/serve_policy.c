/* "shoal serve": %-token expansion and the command policy (allowlist and
 * the git preset). See shoal/serveconfig.h.
 *
 * The git preset is the security-sensitive part: the repository path comes
 * from the client. It is dequoted exactly as git quotes it, normalised
 * lexically (no "..", no "~user"), placed under GitRoot, and then every
 * location git-upload-pack / git-receive-pack would try for it is resolved
 * with realpath() and must stay strictly inside the resolved GitRoot. A
 * TOCTOU race remains against someone who can create symlinks inside
 * GitRoot between this check and git starting; such a writer owns the
 * repositories anyway. */
#include "shoal/serveconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wire/buf.h"
#include "wire/match.h"

/* Longest expansion result and longest repository path we handle. */
#define SP_MAX_EXPANSION (64u * 1024u)
#define SP_MAX_PATH 4096u
#define SP_MAX_USER 64u

static void sp_why(char *why, size_t whysz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sp_why(char *why, size_t whysz, const char *fmt, ...)
{
    if (!why || !whysz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

static int sp_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

/* ---- tokens ---- */

int shoal_serve_user_name_ok(const char *user)
{
    if (!user)
        return 0;
    size_t n = strlen(user);
    if (n == 0 || n > SP_MAX_USER || user[0] == '.' || user[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = user[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '@' || c == '+' || c == '-'))
            return 0;
    }
    return 1;
}

int shoal_serve_expand(const char *tmpl, const shoal_serve_tokens *t, char **out)
{
    if (out)
        *out = NULL;
    if (!tmpl || !t || !out)
        return SHOAL_ERR_INVALID_ARG;
    shoal_buf b;
    shoal_buf_init(&b, SP_MAX_EXPANSION);
    int rc = SHOAL_OK;
    for (const char *p = tmpl; *p && rc == SHOAL_OK; p++) {
        if (*p != '%') {
            rc = shoal_buf_put_u8(&b, (uint8_t)*p);
            continue;
        }
        const char *v;
        switch (*++p) {
        case '%':
            v = "%";
            break;
        case 'u':
            /* The user name reaches paths and argument lists: only safe names. */
            v = shoal_serve_user_name_ok(t->user) ? t->user : NULL;
            break;
        case 'h':
            v = t->home;
            break;
        case 'U':
            v = t->uid;
            break;
        case 't':
            v = t->key_type;
            break;
        case 'k':
            v = t->key_base64;
            break;
        case 'f':
            v = t->fingerprint;
            break;
        default: /* unknown token, or '%' at the end */
            v = NULL;
            break;
        }
        if (!v || sp_has_control(v)) {
            rc = SHOAL_ERR_INVALID_ARG;
            break;
        }
        rc = shoal_buf_put(&b, v, strlen(v));
    }
    if (rc == SHOAL_OK)
        rc = shoal_buf_put_u8(&b, 0);
    if (rc == SHOAL_OK) {
        *out = strdup((const char *)shoal_buf_ptr(&b));
        if (!*out)
            rc = SHOAL_ERR_NOMEM;
    }
    shoal_buf_free(&b);
    return rc;
}

int shoal_serve_expand_tokens(const char *tmpl, const char *user, const char *home, char **out)
{
    shoal_serve_tokens t;
    memset(&t, 0, sizeof(t));
    t.user = user;
    t.home = home;
    return shoal_serve_expand(tmpl, &t, out);
}

int shoal_serve_keys_file_path(const char *tmpl, const char *user, const char *home, char **out)
{
    if (out)
        *out = NULL;
    if (!tmpl || !out || !home || home[0] != '/')
        return SHOAL_ERR_INVALID_ARG;
    /* "~/x" is "%h/x" (sshd would expand "~" for its own user at startup,
     * which is never what a per-user file list means). */
    const char *body = tmpl;
    int tilde = tmpl[0] == '~' && tmpl[1] == '/';
    if (tilde)
        body = tmpl + 2;
    char *exp;
    int rc = shoal_serve_expand_tokens(body, user, home, &exp);
    if (rc)
        return rc;
    if (!tilde && exp[0] == '/') {
        *out = exp;
        return SHOAL_OK;
    }
    size_t n = strlen(home) + strlen(exp) + 2;
    char *r = malloc(n);
    if (!r) {
        free(exp);
        return SHOAL_ERR_NOMEM;
    }
    size_t hl = strlen(home);
    /* No doubled slash when home is "/" or ends in one. */
    snprintf(r, n, "%s%s%s", home, (hl && home[hl - 1] == '/') ? "" : "/", exp);
    free(exp);
    *out = r;
    return SHOAL_OK;
}

/* ---- allowlist ---- */

/* Bytes that let a command do more than run one program with arguments
 * once it reaches a shell. */
static int sp_has_shell_meta(const char *s)
{
    for (; *s; s++)
        if (strchr(";&|$`<>(){}\\", *s) || (unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

static int sp_allowlist(const shoal_serve_effective *e, const char *cmd, shoal_serve_command *out, char *why,
                        size_t whysz)
{
    if (!cmd) {
        sp_why(why, whysz, "shell access is not allowed here; only specific commands can be run");
        return 0;
    }
    if (sp_has_control(cmd)) {
        sp_why(why, whysz, "command not allowed here");
        return 0;
    }
    size_t cl = strlen(cmd);
    int meta = sp_has_shell_meta(cmd);
    for (unsigned i = 0; i < e->n_allow_commands; i++) {
        const char *p = e->allow_commands[i];
        int wild = strpbrk(p, "*?") != NULL;
        int ok = wild ? !meta && shoal_wildmatch(p, strlen(p), cmd, cl, 0) : strcmp(p, cmd) == 0;
        if (ok) {
            out->command = strdup(cmd);
            return out->command ? 1 : SHOAL_ERR_NOMEM;
        }
    }
    sp_why(why, whysz, "command not allowed here");
    return 0;
}

/* ---- git ---- */

static const char *const GIT_PROGRAMS[] = {"git-upload-pack", "git-receive-pack", "git-upload-archive"};
static const char GIT_REFUSAL[] = "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here";

/* Undoes git's sq_quote_buf(): 'a'\''b'\!'c' -> a'b!c. A bare argument of
 * safe characters is accepted as is. Returns a malloc'd string or NULL. */
static char *sp_git_dequote(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SP_MAX_PATH * 4)
        return NULL;
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    size_t o = 0;
    if (s[0] != '\'') {
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("._~/+@-", c))) {
                free(r);
                return NULL;
            }
        }
        memcpy(r, s, n + 1);
        return r;
    }
    const char *p = s + 1;
    for (;;) {
        if (!*p)
            goto bad; /* unterminated */
        if (*p != '\'') {
            r[o++] = *p++;
            continue;
        }
        p++; /* closing quote */
        if (!*p)
            break;
        /* Between quoted parts only \' and \! may appear, then a new quote. */
        if (p[0] == '\\' && (p[1] == '\'' || p[1] == '!') && p[2] == '\'') {
            r[o++] = p[1];
            p += 3;
            continue;
        }
        goto bad;
    }
    r[o] = 0;
    return r;
bad:
    free(r);
    return NULL;
}

/* Lexical normalisation of the client's path: "/" and "~/" prefixes are
 * relative to the root, empty and "." components dropped; "..", "~user",
 * control bytes and backslashes refused. Returns the relative path
 * (malloc'd, never empty) or NULL with why set. */
static char *sp_git_normalize(const char *path, char *why, size_t whysz)
{
    if (sp_has_control(path) || strchr(path, '\\')) {
        sp_why(why, whysz, "invalid repository path");
        return NULL;
    }
    const char *p = path;
    if (p[0] == '~') {
        if (p[1] != '/' && p[1] != 0) {
            sp_why(why, whysz, "~user repository paths are not supported here");
            return NULL;
        }
        p++;
    }
    size_t n = strlen(p);
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    size_t o = 0;
    while (*p) {
        while (*p == '/')
            p++;
        const char *c = p;
        while (*p && *p != '/')
            p++;
        size_t cl = (size_t)(p - c);
        if (cl == 0 || (cl == 1 && c[0] == '.'))
            continue;
        if (cl == 2 && c[0] == '.' && c[1] == '.') {
            free(r);
            sp_why(why, whysz, "repository path must not contain \"..\"");
            return NULL;
        }
        if (o)
            r[o++] = '/';
        memcpy(r + o, c, cl);
        o += cl;
    }
    r[o] = 0;
    if (o == 0) {
        free(r);
        sp_why(why, whysz, "no repository path given");
        return NULL;
    }
    return r;
}

/* 1 when real is strictly below root (both resolved, root not "/"). */
static int sp_inside(const char *real, const char *root)
{
    size_t rl = strlen(root);
    return strncmp(real, root, rl) == 0 && real[rl] == '/' && real[rl + 1] != 0;
}

/* Checks every place git would look for the repository at full. 1 ok,
 * 0 refused (why set). */
static int sp_git_check_candidates(const char *full, const char *realroot, char *why, size_t whysz)
{
    static const char *const suffixes[] = {"", ".git", "/.git", ".git/.git"};
    char cand[SP_MAX_PATH + 16];
    int found = 0;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(cand, sizeof(cand), "%s%s", full, suffixes[i]);
        struct stat st;
        if (stat(cand, &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue; /* git will not pick it either */
            sp_why(why, whysz, "repository not accessible");
            return 0;
        }
        if (!S_ISDIR(st.st_mode)) {
            /* A ".git" file would redirect git anywhere ("gitdir: /x"). */
            sp_why(why, whysz, "repository not found");
            return 0;
        }
        char *real = realpath(cand, NULL);
        int ok = real && sp_inside(real, realroot);
        free(real);
        if (!ok) {
            sp_why(why, whysz, "repository path leaves the repository root");
            return 0;
        }
        found = 1;
    }
    if (!found)
        sp_why(why, whysz, "repository not found");
    return found;
}

/* git's sq_quote_buf(): ' and ! leave the quotes as '\'' and '\!'. */
static char *sp_sq_quote(const char *prog, const char *path)
{
    size_t n = strlen(prog) + 4 + strlen(path) * 4;
    char *r = malloc(n);
    if (!r)
        return NULL;
    size_t o = (size_t)snprintf(r, n, "%s '", prog);
    for (const char *p = path; *p; p++) {
        if (*p == '\'' || *p == '!') {
            r[o++] = '\'';
            r[o++] = '\\';
            r[o++] = *p;
            r[o++] = '\'';
        } else {
            r[o++] = *p;
        }
    }
    r[o++] = '\'';
    r[o] = 0;
    return r;
}

static int sp_git(const shoal_serve_effective *e, const char *cmd, shoal_serve_command *out, char *why, size_t whysz)
{
    if (!cmd) {
        sp_why(why, whysz, "shell access is not allowed here; %s", GIT_REFUSAL);
        return 0;
    }
    const char *prog = NULL, *arg = NULL;
    for (size_t i = 0; i < sizeof(GIT_PROGRAMS) / sizeof(GIT_PROGRAMS[0]) && !prog; i++) {
        const char *g = GIT_PROGRAMS[i];
        size_t gl = strlen(g);
        if (strncmp(cmd, g, gl) == 0 && cmd[gl] == ' ') {
            prog = g;
            arg = cmd + gl + 1;
        } else if (strncmp(cmd, "git ", 4) == 0 && strncmp(cmd + 4, g + 4, gl - 4) == 0 && cmd[gl] == ' ') {
            prog = g; /* "git upload-pack 'x'", as some clients send it */
            arg = cmd + gl + 1;
        }
    }
    if (!prog) {
        sp_why(why, whysz, "%s", GIT_REFUSAL);
        return 0;
    }
    if (!e->git_root || e->git_root[0] != '/') {
        sp_why(why, whysz, "git access is not configured on this server");
        return 0;
    }
    char *path = sp_git_dequote(arg);
    if (!path) {
        sp_why(why, whysz, "%s (with one quoted repository path)", GIT_REFUSAL);
        return 0;
    }
    char *rel = sp_git_normalize(path, why, whysz);
    free(path);
    if (!rel)
        return 0;
    int rc = 0;
    char *full = NULL;
    char *realroot = realpath(e->git_root, NULL);
    if (!realroot || strcmp(realroot, "/") == 0) {
        sp_why(why, whysz, "repository root not available");
        goto out;
    }
    size_t fl = strlen(realroot) + strlen(rel) + 2;
    if (fl > SP_MAX_PATH) {
        sp_why(why, whysz, "repository path too long");
        goto out;
    }
    if (!(full = malloc(fl))) {
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    snprintf(full, fl, "%s/%s", realroot, rel);
    if (!sp_git_check_candidates(full, realroot, why, whysz))
        goto out;
    out->program = strdup(prog);
    out->path = strdup(full);
    out->command = sp_sq_quote(prog, full);
    if (!out->program || !out->path || !out->command) {
        shoal_serve_command_free(out);
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    rc = 1;
out:
    free(realroot);
    free(full);
    free(rel);
    return rc;
}

void shoal_serve_command_free(shoal_serve_command *c)
{
    if (!c)
        return;
    free(c->command);
    free(c->program);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

int shoal_serve_command_allowed(const shoal_serve_effective *e, const char *command, shoal_serve_command *out,
                                char *why, size_t whysz)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (why && whysz)
        why[0] = 0;
    if (!e || !out)
        return SHOAL_ERR_INVALID_ARG;
    switch (e->command_policy) {
    case SHOAL_SERVE_POLICY_ANY:
        if (command && !(out->command = strdup(command)))
            return SHOAL_ERR_NOMEM;
        return 1;
    case SHOAL_SERVE_POLICY_ALLOWLIST:
        return sp_allowlist(e, command, out, why, whysz);
    case SHOAL_SERVE_POLICY_GIT:
        return sp_git(e, command, out, why, whysz);
    default:
        sp_why(why, whysz, "command not allowed here");
        return 0;
    }
}

/* ---- environment requests (AcceptEnv) ---- */

/* Names that change what a program runs or where it looks for code before
 * the command itself gets a say: a client that can set one of them can
 * escape a command policy or a forced command (LD_PRELOAD, BASH_ENV,
 * GIT_CONFIG_PARAMETERS's uploadpack.packObjectsHook...). A wildcard
 * AcceptEnv pattern never admits them; a pattern that is exactly the name
 * does. The list is documented in shoal/serveconfig.h and docs/SERVE.md. */
static const char *const SP_DANGEROUS_ENV[] = {
    /* the dynamic loader and the C library */
    "LD_*", "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_*",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZ", "TZDIR",
    /* shell start-up */
    "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "IFS",
    "CDPATH", "ZDOTDIR", "INPUTRC", "HISTFILE",
    /* interpreter hooks */
    "PYTHON*", "PERL*", "RUBY*", "GEM_*", "NODE_*", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "CLASSPATH", "LUA_*", "TCLLIBPATH", "PHPRC", "PHP_INI_SCAN_DIR",
    /* tools that run other programs or load code */
    "GIT_*", "LESSOPEN", "LESSCLOSE", "PAGER", "EDITOR", "VISUAL", "TERMINFO", "TERMINFO_DIRS", "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    /* the session's own variables */
    "PATH", "HOME", "SHELL", "USER", "LOGNAME", "MAIL", "SSH_*",
};

int shoal_serve_env_dangerous(const char *name)
{
    if (!name)
        return 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i < sizeof(SP_DANGEROUS_ENV) / sizeof(SP_DANGEROUS_ENV[0]); i++)
        if (shoal_wildmatch(SP_DANGEROUS_ENV[i], strlen(SP_DANGEROUS_ENV[i]), name, nl, 0))
            return 1;
    return 0;
}

/* git sends GIT_PROTOCOL=version=2 (RFC-less, gitprotocol-v2(5)). */
static int sp_git_protocol_ok(const char *v)
{
    if (!v || strncmp(v, "version=", 8) != 0)
        return 0;
    size_t n = strspn(v + 8, "0123456789");
    return n >= 1 && n <= 3 && v[8 + n] == 0;
}

int shoal_serve_env_allowed(const shoal_serve_effective *e, const char *name, const char *value, char *why,
                            size_t whysz)
{
    if (why && whysz)
        why[0] = 0;
    if (!e || !name || !name[0] || strchr(name, '=') || sp_has_control(name)) {
        sp_why(why, whysz, "invalid name");
        return 0;
    }
    int git_protocol = strcmp(name, "GIT_PROTOCOL") == 0;
    if (git_protocol && !sp_git_protocol_ok(value)) {
        sp_why(why, whysz, "GIT_PROTOCOL must be version=N");
        return 0;
    }
    if (e->command_policy != SHOAL_SERVE_POLICY_ANY && !git_protocol) {
        sp_why(why, whysz, "CommandPolicy %s accepts no environment but GIT_PROTOCOL",
               e->command_policy == SHOAL_SERVE_POLICY_GIT ? "git" : "allowlist");
        return 0;
    }
    size_t nl = strlen(name);
    int exact = 0, matched = 0;
    for (unsigned i = 0; i < e->n_accept_env; i++) {
        const char *p = e->accept_env[i];
        if (strcmp(p, name) == 0)
            exact = 1;
        if (shoal_wildmatch(p, strlen(p), name, nl, 0))
            matched = 1;
    }
    if (!matched) {
        sp_why(why, whysz, "not in AcceptEnv");
        return 0;
    }
    if (!exact && shoal_serve_env_dangerous(name)) {
        sp_why(why, whysz, "dangerous name, admitted only by an AcceptEnv entry that is exactly %s", name);
        return 0;
    }
    return 1;
}
