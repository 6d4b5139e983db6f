/* Fleet settings from OpenSSH-style options (see fleetopts.h). */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetopts.h"
#include "shoal/strvis.h"

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
    /* A fan-out never prompts per host: keys (loaded once, here) and the
     * agent only, unless password or keyboard-interactive were asked for. */
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    p.flags = SHOAL_SSH_RESOLVE_LOAD_KEYS | SHOAL_SSH_RESOLVE_KNOWN_HOSTS_DB |
              (o->include_dsa ? SHOAL_SSH_RESOLVE_DSA : 0);
    p.user = o->user;
    p.default_user = o->default_user;
    p.extra_keys = (const char *const *)o->extra_keys;
    p.n_extra_keys = o->n_extra_keys;
    p.default_policy = default_policy;
    p.ask = ask;
    p.ask_ud = ask_ud;
    p.warn = warn;
    p.warn_ud = warn_ud;
    if (shoal_ssh_resolve(&o->ssh, &p, &o->resolved, err, errsz) != SHOAL_OK)
        return -1;

    shoal_fleet_config *c = &o->cfg;
    shoal_fleet_config_init(c);
    o->conn = *shoal_ssh_resolved_conn(o->resolved);
    shoal_uv_callbacks_init(&o->conn_cb);
    c->conn = &o->conn;
    c->conn_cb = &o->conn_cb;
    c->default_user = shoal_ssh_resolved_user(o->resolved);
    c->default_port = shoal_ssh_resolved_port(o->resolved);
    c->connection_attempts = shoal_ssh_resolved_connection_attempts(o->resolved);
    o->agent = o->conn.agent_socket;
    if (o->conn.log_level > 0)
        o->conn_cb.log = log_to_stderr;
    return 0;
}

void fleetopts_free(fleetopts *o)
{
    shoal_ssh_resolved_free(o->resolved);
    o->resolved = NULL;
    free(o->user);
    for (unsigned i = 0; i < o->n_extra_keys; i++)
        free(o->extra_keys[i]);
    shoal_ssh_options_free(&o->ssh);
}
