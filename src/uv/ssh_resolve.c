/* OpenSSH-style options to driver connection settings (shoal/ssh_resolve.h).
 *
 * A table of rules, one per option (or per group of options that make one
 * setting together), each filling its part of the result; the order of the
 * table is the order they run in (the keys need the home directory, the
 * policy nothing else). */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "shoal/knownhosts.h"
#include "shoal/ssh_resolve.h"
#include "abi.h"

#define MAX_KEY_PATHS (SHOAL_OPT_MAX_FILES * 2 + 4)
#define MAX_KH_FILES (SHOAL_OPT_MAX_FILES * 2 + 2)

struct shoal_ssh_resolved {
    shoal_uv_options conn;             /* conn.ssh points at ssh */
    shoal_client_config ssh;
    char *user;
    unsigned port;
    unsigned connection_attempts;
    const char *kh[MAX_KH_FILES];
    unsigned n_kh;
    char *kh_home;                     /* ~/.ssh/known_hosts */
    shoal_kh_db *khdb;
    const char *ids[MAX_KEY_PATHS];    /* without LOAD_KEYS: for the driver */
    unsigned n_ids;
    char *id_defaults[4];              /* ~/.ssh/id_* found readable */
    shoal_key **keys;                  /* with LOAD_KEYS */
    unsigned n_keys;
    char *agent;
};

typedef struct resolve_ctx {
    const shoal_ssh_options *o;
    const shoal_ssh_resolve_params *p;
    shoal_ssh_resolved *r;
    const char *home;
    char *err;
    size_t errsz;
} resolve_ctx;

typedef int (*rule_fn)(resolve_ctx *c);

static int fail(resolve_ctx *c, int rc, const char *msg)
{
    snprintf(c->err, c->errsz, "%s", msg);
    return rc;
}

/* ---- the rules ---- */

/* User (-l wins; then User; then the caller's default; then the real
 * uid's login name, as ssh: $USER and $LOGNAME play no part). */
static int rule_user(resolve_ctx *c)
{
    const char *u = c->p->user && *c->p->user ? c->p->user : NULL;
    if (!u)
        u = c->o->user && *c->o->user ? c->o->user : NULL;
    if (!u)
        u = c->p->default_user && *c->p->default_user ? c->p->default_user : NULL;
    if (!u) {
        struct passwd *pw = getpwuid(getuid());
        u = pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
    }
    if (!u) {
        snprintf(c->err, c->errsz, "no user exists for uid %lu (give a login name with -l)",
                 (unsigned long)getuid());
        return SHOAL_ERR_CONFIG;
    }
    c->r->user = strdup(u);
    if (!c->r->user)
        return fail(c, SHOAL_ERR_NOMEM, "out of memory");
    c->r->ssh.user = c->r->user;
    return SHOAL_OK;
}

static int rule_port(resolve_ctx *c)
{
    c->r->port = c->p->port ? c->p->port : (c->o->port ? c->o->port : 22);
    c->r->conn.port = c->r->port;
    return SHOAL_OK;
}

/* KexAlgorithms, Ciphers, MACs, HostKeyAlgorithms (resolved lists). */
static int rule_algorithms(resolve_ctx *c)
{
    c->r->ssh.kex_algorithms = c->o->kex;
    c->r->ssh.ciphers = c->o->ciphers;
    c->r->ssh.macs = c->o->macs;
    c->r->ssh.hostkey_algorithms = c->o->hostkey_algs;
    return SHOAL_OK;
}

static int rule_rekey_limit(resolve_ctx *c)
{
    c->r->ssh.rekey_bytes = c->o->rekey_bytes;
    c->r->ssh.rekey_interval_ms = c->o->rekey_seconds * 1000;
    return SHOAL_OK;
}

/* ServerAliveInterval, ServerAliveCountMax (3 unless given, as ssh). */
static int rule_server_alive(resolve_ctx *c)
{
    const shoal_ssh_options *o = c->o;
    c->r->ssh.keepalive_interval_ms =
        o->server_alive_interval_s > 0 ? (uint64_t)o->server_alive_interval_s * 1000 : 0;
    c->r->ssh.keepalive_count_max = o->server_alive_count_max > 0 ? (unsigned)o->server_alive_count_max : 3;
    return SHOAL_OK;
}

/* PubkeyAuthentication, PasswordAuthentication, KbdInteractiveAuthentication. */
static int rule_auth_methods(resolve_ctx *c)
{
    const shoal_ssh_options *o = c->o;
    /* Without someone to answer, asking methods are opt-in. */
    int prompts = (c->p->flags & SHOAL_SSH_RESOLVE_INTERACTIVE) != 0;
    unsigned methods = 0;
    if (o->pubkey_auth != 0)
        methods |= SHOAL_AUTH_PUBLICKEY;
    if (prompts ? o->kbdint_auth != 0 : o->kbdint_auth == 1)
        methods |= SHOAL_AUTH_KBDINT;
    if (prompts ? o->password_auth != 0 : o->password_auth == 1)
        methods |= SHOAL_AUTH_PASSWORD;
    /* With every method off only "none" is tried (a server that needs no
     * credentials), as with OpenSSH. */
    c->r->ssh.auth_methods = methods ? methods : SHOAL_AUTH_NONE_ONLY;
    return SHOAL_OK;
}

static int add_key_path(resolve_ctx *c, const char *path)
{
    if (c->r->n_ids == MAX_KEY_PATHS)
        return fail(c, SHOAL_ERR_TOO_LARGE, "too many key files");
    c->r->ids[c->r->n_ids++] = path;
    return SHOAL_OK;
}

/* IdentityFile (or the default ~/.ssh keys), then the extra keys (-i). */
static int rule_identity_files(resolve_ctx *c)
{
    shoal_ssh_resolved *r = c->r;
    int rc = SHOAL_OK;
    if (c->o->n_identity_files) {
        for (unsigned i = 0; !rc && i < c->o->n_identity_files; i++)
            rc = add_key_path(c, c->o->identity_files[i]);
    } else if (c->home) {
        static const char *const names[] = {"id_ed25519", "id_ecdsa", "id_rsa", "id_dsa"};
        unsigned n = c->p->flags & SHOAL_SSH_RESOLVE_DSA ? 4 : 3;
        for (unsigned i = 0; !rc && i < n; i++) {
            size_t len = strlen(c->home) + strlen(names[i]) + 8;
            r->id_defaults[i] = malloc(len);
            if (!r->id_defaults[i])
                return fail(c, SHOAL_ERR_NOMEM, "out of memory");
            snprintf(r->id_defaults[i], len, "%s/.ssh/%s", c->home, names[i]);
            if (access(r->id_defaults[i], R_OK) == 0)
                rc = add_key_path(c, r->id_defaults[i]);
        }
    }
    for (unsigned i = 0; !rc && i < c->p->n_extra_keys; i++)
        rc = add_key_path(c, c->p->extra_keys[i]);
    if (rc)
        return rc;
    if (!(c->p->flags & SHOAL_SSH_RESOLVE_LOAD_KEYS)) {
        r->conn.identity_files = r->ids;
        r->conn.n_identity_files = r->n_ids;
        return SHOAL_OK;
    }
    r->keys = calloc(r->n_ids ? r->n_ids : 1, sizeof(*r->keys));
    if (!r->keys)
        return fail(c, SHOAL_ERR_NOMEM, "out of memory");
    for (unsigned i = 0; i < r->n_ids; i++) {
        shoal_key *k = NULL;
        char msg[600];
        if (shoal_ssh_load_key(r->ids[i], c->p->ask, c->p->ask_ud, &k, msg, sizeof(msg)) == 0)
            r->keys[r->n_keys++] = k;
        else if (c->p->warn)
            c->p->warn(msg, c->p->warn_ud);
    }
    r->conn.keys = r->keys;
    r->conn.n_keys = r->n_keys;
    return SHOAL_OK;
}

static int rule_identity_agent(resolve_ctx *c)
{
    const char *agent = c->o->identity_agent ? c->o->identity_agent : getenv("SSH_AUTH_SOCK");
    if (!agent || !*agent || !strcmp(agent, "none"))
        return SHOAL_OK;
    c->r->agent = strdup(agent);
    if (!c->r->agent)
        return fail(c, SHOAL_ERR_NOMEM, "out of memory");
    c->r->conn.agent_socket = c->r->agent;
    return SHOAL_OK;
}

/* UserKnownHostsFile, GlobalKnownHostsFile; the first file receives new keys. */
static int rule_known_hosts_files(resolve_ctx *c)
{
    const shoal_ssh_options *o = c->o;
    shoal_ssh_resolved *r = c->r;
    for (unsigned i = 0; i < o->n_user_known_hosts; i++)
        r->kh[r->n_kh++] = o->user_known_hosts[i];
    if (!o->n_user_known_hosts && c->home) {
        size_t len = strlen(c->home) + sizeof("/.ssh/known_hosts");
        r->kh_home = malloc(len);
        if (!r->kh_home)
            return fail(c, SHOAL_ERR_NOMEM, "out of memory");
        snprintf(r->kh_home, len, "%s/.ssh/known_hosts", c->home);
        r->kh[r->n_kh++] = r->kh_home;
    }
    for (unsigned i = 0; i < o->n_global_known_hosts; i++)
        r->kh[r->n_kh++] = o->global_known_hosts[i];
    if (!o->n_global_known_hosts)
        r->kh[r->n_kh++] = "/etc/ssh/ssh_known_hosts";
    r->conn.known_hosts = r->kh;
    r->conn.n_known_hosts = r->n_kh;
    if (!(c->p->flags & SHOAL_SSH_RESOLVE_KNOWN_HOSTS_DB))
        return SHOAL_OK;
    unsigned bad = 0;
    int bad_errno = 0;
    int rc = shoal_kh_db_open_files(r->kh, r->n_kh, &r->khdb, &bad, &bad_errno);
    if (rc) {
        shoal_knownhosts_read_error(bad < r->n_kh ? r->kh[bad] : NULL, rc, bad_errno, c->err, c->errsz);
        return rc;
    }
    r->conn.known_hosts_db = r->khdb;
    return SHOAL_OK;
}

static int rule_host_key_alias(resolve_ctx *c)
{
    c->r->conn.host_key_alias = c->o->host_key_alias;
    return SHOAL_OK;
}

static int rule_hash_known_hosts(resolve_ctx *c)
{
    c->r->conn.hash_known_hosts = c->o->hash_known_hosts == 1;
    return SHOAL_OK;
}

static int rule_strict_host_key_checking(resolve_ctx *c)
{
    int interactive = (c->p->flags & SHOAL_SSH_RESOLVE_INTERACTIVE) != 0;
    switch (c->o->strict_host_key_checking) {
    case 0:
        c->r->conn.hostkey_policy = SHOAL_HOSTKEY_OFF;
        break;
    case 2:
        c->r->conn.hostkey_policy = SHOAL_HOSTKEY_ACCEPT_NEW;
        break;
    case 3: /* ask: without someone to ask, no */
        c->r->conn.hostkey_policy = interactive ? SHOAL_HOSTKEY_ASK : SHOAL_HOSTKEY_STRICT;
        break;
    case 1:
        c->r->conn.hostkey_policy = SHOAL_HOSTKEY_STRICT;
        break;
    default:
        c->r->conn.hostkey_policy = c->p->default_policy;
        if (c->p->default_policy == SHOAL_HOSTKEY_ASK && !interactive)
            c->r->conn.hostkey_policy = SHOAL_HOSTKEY_STRICT;
        break;
    }
    return SHOAL_OK;
}

/* As OpenSSH: ConnectTimeout covers the TCP connection and the initial SSH
 * handshake (version exchange and key exchange). */
static int rule_connect_timeout(resolve_ctx *c)
{
    uint64_t ms = c->o->connect_timeout_s > 0 ? (uint64_t)c->o->connect_timeout_s * 1000 : 0;
    c->r->conn.connect_timeout_ms = ms;
    c->r->conn.banner_timeout_ms = ms;
    c->r->conn.kex_timeout_ms = ms;
    return SHOAL_OK;
}

static int rule_connection_attempts(resolve_ctx *c)
{
    c->r->connection_attempts = c->o->connection_attempts > 0 ? (unsigned)c->o->connection_attempts : 0;
    return SHOAL_OK;
}

static int rule_log_level(resolve_ctx *c)
{
    int level = c->o->log_level >= 0 ? c->o->log_level : 0;
    c->r->conn.log_level = c->p->verbose > level ? c->p->verbose : level;
    return SHOAL_OK;
}

static const struct {
    const char *keyword; /* the options a rule reads, for error messages */
    rule_fn apply;
} RULES[] = {
    {"User", rule_user},
    {"Port", rule_port},
    {"KexAlgorithms, Ciphers, MACs, HostKeyAlgorithms", rule_algorithms},
    {"RekeyLimit", rule_rekey_limit},
    {"ServerAliveInterval, ServerAliveCountMax", rule_server_alive},
    {"PubkeyAuthentication, PasswordAuthentication, KbdInteractiveAuthentication", rule_auth_methods},
    {"IdentityFile", rule_identity_files},
    {"IdentityAgent", rule_identity_agent},
    {"UserKnownHostsFile, GlobalKnownHostsFile", rule_known_hosts_files},
    {"HostKeyAlias", rule_host_key_alias},
    {"HashKnownHosts", rule_hash_known_hosts},
    {"StrictHostKeyChecking", rule_strict_host_key_checking},
    {"ConnectTimeout", rule_connect_timeout},
    {"ConnectionAttempts", rule_connection_attempts},
    {"LogLevel", rule_log_level},
};

/* ---- the API ---- */

void shoal_ssh_resolve_params_init(shoal_ssh_resolve_params *p)
{
    shoal__struct_init(p, sizeof(*p));
    p->default_policy = SHOAL_HOSTKEY_STRICT;
}

int shoal_ssh_resolve(const shoal_ssh_options *o, const shoal_ssh_resolve_params *params,
                      shoal_ssh_resolved **out, char *err, size_t errsz)
{
    char dummy[1];
    if (!err || !errsz) {
        err = dummy;
        errsz = sizeof(dummy);
    }
    err[0] = 0;
    if (out)
        *out = NULL;
    if (!o || !params || !params->size || !out) {
        snprintf(err, errsz, "resolver parameters not initialised (shoal_ssh_resolve_params_init)");
        return SHOAL_ERR_INVALID_ARG;
    }
    /* Fields a caller built against an older, shorter struct does not know stay zero. */
    shoal_ssh_resolve_params p;
    SHOAL_COPY_IN(&p, params);
    shoal_ssh_resolved *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errsz, "out of memory");
        return SHOAL_ERR_NOMEM;
    }
    shoal_uv_options_init(&r->conn);
    shoal_client_config_init(&r->ssh);
    r->conn.ssh = &r->ssh;
    resolve_ctx c = {o, &p, r, getenv("HOME"), err, errsz};
    for (size_t i = 0; i < sizeof(RULES) / sizeof(RULES[0]); i++) {
        int rc = RULES[i].apply(&c);
        if (rc) {
            if (!err[0])
                snprintf(err, errsz, "%s: %s", RULES[i].keyword, shoal_strerror(rc));
            shoal_ssh_resolved_free(r);
            return rc;
        }
    }
    *out = r;
    return SHOAL_OK;
}

const shoal_uv_options *shoal_ssh_resolved_conn(const shoal_ssh_resolved *r)
{
    return &r->conn;
}

const char *shoal_ssh_resolved_user(const shoal_ssh_resolved *r)
{
    return r->user;
}

unsigned shoal_ssh_resolved_port(const shoal_ssh_resolved *r)
{
    return r->port;
}

unsigned shoal_ssh_resolved_connection_attempts(const shoal_ssh_resolved *r)
{
    return r->connection_attempts;
}

void shoal_ssh_resolved_free(shoal_ssh_resolved *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->n_keys; i++)
        shoal_key_free(r->keys[i]);
    free(r->keys);
    if (r->khdb)
        shoal_kh_db_free(r->khdb);
    for (unsigned i = 0; i < 4; i++)
        free(r->id_defaults[i]);
    free(r->kh_home);
    free(r->agent);
    free(r->user);
    free(r);
}

int shoal_ssh_load_key(const char *path, shoal_ssh_ask_fn ask, void *ask_ud, shoal_key **out, char *err,
                       size_t errsz)
{
    *out = NULL;
    int rc = shoal_key_load_private_file(path, NULL, out);
    if (rc == SHOAL_ERR_KEY_ENCRYPTED) {
        if (!ask) {
            snprintf(err, errsz, "key %s is encrypted and no passphrase can be asked", path);
            return rc;
        }
        char pass[1024];
        if (ask(path, pass, sizeof(pass), ask_ud) != 0) {
            OPENSSL_cleanse(pass, sizeof(pass));
            snprintf(err, errsz, "No passphrase supplied in request for %s", path);
            return SHOAL_ERR_KEY_ENCRYPTED;
        }
        rc = shoal_key_load_private_file(path, pass, out);
        OPENSSL_cleanse(pass, sizeof(pass));
    }
    if (rc)
        snprintf(err, errsz, "cannot load key %s: %s", path, shoal_strerror(rc));
    return rc;
}
