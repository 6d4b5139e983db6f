/* Settings shared by `shoal run`, `shoal put` and `shoal agent`: the
 * OpenSSH-style options turned into a fleet configuration, with the
 * known_hosts database and the private keys loaded once for all hosts. */
#ifndef SHOAL_APP_FLEETOPTS_H
#define SHOAL_APP_FLEETOPTS_H

#include "shoal/fleet.h"
#include "shoal/config.h"
#include "shoal/knownhosts.h"

/* Answers a passphrase question for a key file: fill buf, return 0, or
 * return non-zero to skip the key. */
typedef int (*fleetopts_ask_fn)(const char *path, char *buf, size_t bufsz, void *ud);
/* Reports a non-fatal problem (a key that could not be loaded). */
typedef void (*fleetopts_warn_fn)(const char *message, void *ud);

typedef struct fleetopts {
    shoal_ssh_options ssh;
    char *user;                  /* -l */
    char *extra_keys[SHOAL_OPT_MAX_FILES]; /* -i */
    unsigned n_extra_keys;
    int include_dsa;             /* GoSSHa also looks for ~/.ssh/id_dsa */
    /* filled by fleetopts_prepare */
    shoal_fleet_config cfg;
    shoal_kh_db *khdb;
    const char *kh_files[SHOAL_OPT_MAX_FILES * 2];
    unsigned n_kh;
    char *kh_store[2];
    shoal_key **keys;
    unsigned n_keys;
    char *agent;
} fleetopts;

void fleetopts_init(fleetopts *o);
/* Loads keys (asking for passphrases through ask), opens known_hosts and
 * fills o->cfg. default_policy applies when StrictHostKeyChecking is not
 * given. Returns 0, or -1 with err set. */
int fleetopts_prepare(fleetopts *o, shoal_hostkey_policy default_policy, fleetopts_ask_fn ask, void *ask_ud,
                      fleetopts_warn_fn warn, void *warn_ud, char *err, size_t errsz);
/* Loads one private key file, asking for its passphrase when needed (for
 * per-host keys named in requests). */
int fleetopts_load_key(const char *path, fleetopts_ask_fn ask, void *ask_ud, shoal_key **out, char *err,
                       size_t errsz);
void fleetopts_free(fleetopts *o);
/* $LOGNAME, then $USER, then the passwd entry (GoSSHa's default, for the
 * agent). */
const char *fleetopts_default_user(void);
/* The login name of the real uid, as ssh takes it (environment variables
 * play no part); NULL when the uid has no passwd entry. */
const char *fleetopts_login_name(void);

#endif
