/* Settings shared by `shoal run`, `shoal put` and `shoal agent`: the
 * OpenSSH-style options turned into a fleet configuration by the library's
 * resolver (shoal/ssh_resolve.h), with the known_hosts database and the
 * private keys loaded once for all hosts. */
#ifndef SHOAL_APP_FLEETOPTS_H
#define SHOAL_APP_FLEETOPTS_H

#include "shoal/config.h"
#include "shoal/fleet.h"
#include "shoal/ssh_resolve.h"

/* Answers a passphrase question for a key file: fill buf, return 0, or
 * return non-zero to skip the key. */
typedef shoal_ssh_ask_fn fleetopts_ask_fn;
/* Reports a non-fatal problem (a key that could not be loaded). */
typedef shoal_ssh_warn_fn fleetopts_warn_fn;

typedef struct fleetopts {
    shoal_ssh_options ssh;
    char *user;                  /* -l */
    char *extra_keys[SHOAL_OPT_MAX_FILES]; /* -i */
    unsigned n_extra_keys;
    int include_dsa;             /* GoSSHa also looks for ~/.ssh/id_dsa */
    const char *default_user;    /* without -l or User; NULL = the login name of the real uid */
    /* filled by fleetopts_prepare */
    shoal_fleet_config cfg;     /* cfg.conn and cfg.conn_cb point at conn and conn_cb */
    shoal_uv_options conn;
    shoal_uv_callbacks conn_cb;
    shoal_ssh_resolved *resolved;
    const char *agent;           /* the ssh-agent socket, or NULL */
} fleetopts;

void fleetopts_init(fleetopts *o);
/* Loads keys (asking for passphrases through ask), opens known_hosts and
 * fills o->cfg. default_policy applies when StrictHostKeyChecking is not
 * given. Returns 0, or -1 with err set. */
int fleetopts_prepare(fleetopts *o, shoal_hostkey_policy default_policy, fleetopts_ask_fn ask, void *ask_ud,
                      fleetopts_warn_fn warn, void *warn_ud, char *err, size_t errsz);
void fleetopts_free(fleetopts *o);
/* $LOGNAME, then $USER, then the passwd entry (GoSSHa's default, for the
 * agent). */
const char *fleetopts_default_user(void);

#endif
