/* Fleet settings from OpenSSH-style options (see fleetopts.h). */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetopts.h"
#include "shoal/keys.h"
#include "shoal/strvis.h"

#include <openssl/crypto.h>

void fleetopts_init(fleetopts *o)
{
    memset(o, 0, sizeof(*o));
    shoal_ssh_options_init(&o->ssh);
}

const char *fleetopts_default_user(void)
{
    const char *u = getenv("LOGNAME");
    if (!u || !*u)
        u = getenv("USER");
    if (!u || !*u) {
        struct passwd *pw = getpwuid(getuid());
        u = pw ? pw->pw_name : "root";
    }
    return u;
}

const char *fleetopts_login_name(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
}

int fleetopts_load_key(const char *path, fleetopts_ask_fn ask, void *ask_ud, shoal_key **out, char *err,
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

static int add_key(fleetopts *o, shoal_key *k)
{
    shoal_key **nk = realloc(o->keys, (o->n_keys + 1) * sizeof(*nk));
    if (!nk)
        return -1;
    o->keys = nk;
    o->keys[o->n_keys++] = k;
    return 0;
}

/* -o LogLevel=VERBOSE or DEBUG*: each connection's log on stderr, named by
 * host. Worker threads call this; one fprintf per line keeps lines whole. */
static void log_to_stderr(shoal_uv_conn *conn, int level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    char vis[4096];
    fprintf(stderr, "%s: %s\n", shoal_uv_conn_name(conn), shoal_vis(vis, sizeof(vis), msg));
}

int fleetopts_prepare(fleetopts *o, shoal_hostkey_policy default_policy, fleetopts_ask_fn ask, void *ask_ud,
                      fleetopts_warn_fn warn, void *warn_ud, char *err, size_t errsz)
{
    const char *home = getenv("HOME");
    shoal_ssh_options *s = &o->ssh;

    /* Keys: ~/.ssh defaults unless IdentityFile was given, then -i. */
    const char *paths[SHOAL_OPT_MAX_FILES * 2 + 4];
    unsigned np = 0;
    char defaults[4][4096];
    if (s->n_identity_files) {
        for (unsigned i = 0; i < s->n_identity_files; i++)
            paths[np++] = s->identity_files[i];
    } else if (home) {
        static const char *const names[] = {"id_ed25519", "id_ecdsa", "id_rsa", "id_dsa"};
        for (unsigned i = 0; i < (o->include_dsa ? 4u : 3u); i++) {
            snprintf(defaults[i], sizeof(defaults[i]), "%s/.ssh/%s", home, names[i]);
            if (access(defaults[i], R_OK) == 0)
                paths[np++] = defaults[i];
        }
    }
    for (unsigned i = 0; i < o->n_extra_keys; i++)
        paths[np++] = o->extra_keys[i];
    for (unsigned i = 0; i < np; i++) {
        shoal_key *k = NULL;
        char msg[600];
        if (fleetopts_load_key(paths[i], ask, ask_ud, &k, msg, sizeof(msg)) == 0) {
            if (add_key(o, k)) {
                shoal_key_free(k);
                snprintf(err, errsz, "out of memory");
                return -1;
            }
        } else if (warn) {
            warn(msg, warn_ud);
        }
    }

    /* known_hosts, read once for every host. */
    if (s->n_user_known_hosts) {
        for (unsigned i = 0; i < s->n_user_known_hosts; i++)
            o->kh_files[o->n_kh++] = s->user_known_hosts[i];
    } else if (home) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/.ssh/known_hosts", home);
        o->kh_store[0] = strdup(p);
        if (o->kh_store[0])
            o->kh_files[o->n_kh++] = o->kh_store[0];
    }
    for (unsigned i = 0; i < s->n_global_known_hosts; i++)
        o->kh_files[o->n_kh++] = s->global_known_hosts[i];
    if (!s->n_global_known_hosts)
        o->kh_files[o->n_kh++] = "/etc/ssh/ssh_known_hosts";
    unsigned bad = 0;
    int bad_errno = 0;
    int rc = shoal_kh_db_open_files(o->kh_files, o->n_kh, &o->khdb, &bad, &bad_errno);
    if (rc) {
        shoal_knownhosts_read_error(bad < o->n_kh ? o->kh_files[bad] : NULL, rc, bad_errno, err, errsz);
        return -1;
    }

    const char *agent = s->identity_agent ? s->identity_agent : getenv("SSH_AUTH_SOCK");
    if (agent && *agent && strcmp(agent, "none") != 0)
        o->agent = strdup(agent);

    shoal_fleet_config *c = &o->cfg;
    shoal_fleet_config_init(c);
    c->default_user = o->user ? o->user : (s->user ? s->user : fleetopts_default_user());
    c->default_port = s->port;
    c->connection_attempts = s->connection_attempts > 0 ? (unsigned)s->connection_attempts : 0;
    shoal_uv_options *u = &c->conn;
    u->ssh.kex_algorithms = s->kex;
    u->ssh.ciphers = s->ciphers;
    u->ssh.macs = s->macs;
    u->ssh.hostkey_algorithms = s->hostkey_algs;
    u->ssh.rekey_bytes = s->rekey_bytes;
    u->ssh.rekey_interval_ms = s->rekey_seconds * 1000;
    u->ssh.keepalive_interval_ms = s->server_alive_interval_s > 0 ? (uint64_t)s->server_alive_interval_s * 1000 : 0;
    u->ssh.keepalive_count_max = s->server_alive_count_max > 0 ? (unsigned)s->server_alive_count_max : 3;
    /* A fan-out never prompts per host: keys and the agent only, unless
     * password or keyboard-interactive were asked for explicitly. */
    unsigned methods = 0;
    if (s->pubkey_auth != 0)
        methods |= SHOAL_AUTH_PUBLICKEY;
    if (s->password_auth == 1)
        methods |= SHOAL_AUTH_PASSWORD;
    if (s->kbdint_auth == 1)
        methods |= SHOAL_AUTH_KBDINT;
    u->ssh.auth_methods = methods ? methods : SHOAL_AUTH_NONE_ONLY;
    u->known_hosts = o->kh_files;
    u->n_known_hosts = o->n_kh;
    u->known_hosts_db = o->khdb;
    u->host_key_alias = s->host_key_alias;
    int shkc = s->strict_host_key_checking;
    u->hostkey_policy = shkc < 0    ? default_policy
                        : shkc == 0 ? SHOAL_HOSTKEY_OFF
                        : shkc == 2 ? SHOAL_HOSTKEY_ACCEPT_NEW
                        : shkc == 3 ? SHOAL_HOSTKEY_STRICT /* nobody to ask */
                                    : SHOAL_HOSTKEY_STRICT;
    u->hash_known_hosts = s->hash_known_hosts == 1;
    u->agent_socket = o->agent;
    u->keys = o->keys;
    u->n_keys = o->n_keys;
    u->connect_timeout_ms = s->connect_timeout_s > 0 ? (uint64_t)s->connect_timeout_s * 1000 : 0;
    u->banner_timeout_ms = u->connect_timeout_ms;
    u->kex_timeout_ms = u->connect_timeout_ms;
    u->log_level = s->log_level >= 0 ? s->log_level : 0;
    if (u->log_level > 0)
        c->conn_cb.log = log_to_stderr;
    return 0;
}

void fleetopts_free(fleetopts *o)
{
    for (unsigned i = 0; i < o->n_keys; i++)
        shoal_key_free(o->keys[i]);
    free(o->keys);
    if (o->khdb)
        shoal_kh_db_free(o->khdb);
    free(o->kh_store[0]);
    free(o->kh_store[1]);
    free(o->agent);
    free(o->user);
    for (unsigned i = 0; i < o->n_extra_keys; i++)
        free(o->extra_keys[i]);
    shoal_ssh_options_free(&o->ssh);
}
