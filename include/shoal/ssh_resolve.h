/* shoal: OpenSSH-style options (shoal/config.h) turned into connection
 * settings for the libuv driver (shoal/uv.h): algorithms, user, port,
 * keys, the ssh-agent, known_hosts and the host key policy, timeouts.
 *
 * One resolver for every program: `shoal exec`, the fan-out (`shoal run`,
 * `put`, `agent`), the benchmarks and the examples. Part of the driver
 * target (shoal_uv): it reads key files and known_hosts.
 *
 * Rules, as OpenSSH's where it has one:
 * - user: params.user (-l, a destination's user@), then User, then
 *   params.default_user, then the login name of the real uid (never $USER);
 *   none of them: SHOAL_ERR_CONFIG "no user exists for uid N".
 * - port: params.port (-p, a destination's :port), then Port, then 22.
 * - keys: IdentityFile, or else those of ~/.ssh/id_ed25519, id_ecdsa,
 *   id_rsa (and id_dsa with SHOAL_SSH_RESOLVE_DSA) that are readable;
 *   then params.extra_keys. With SHOAL_SSH_RESOLVE_LOAD_KEYS they are
 *   loaded here (params.ask answers passphrases; a key that cannot be
 *   loaded goes to params.warn and is skipped), otherwise the driver loads
 *   them per connection (its passphrase callback).
 * - ssh-agent: IdentityAgent, else $SSH_AUTH_SOCK; "none" or empty: none.
 * - known_hosts: UserKnownHostsFile, else ~/.ssh/known_hosts; then
 *   GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts. With
 *   SHOAL_SSH_RESOLVE_KNOWN_HOSTS_DB they are read once here into a
 *   database shared by every connection (a read error fails).
 * - authentication: publickey unless PubkeyAuthentication=no; password and
 *   keyboard-interactive unless turned off when SHOAL_SSH_RESOLVE_INTERACTIVE
 *   (someone can answer), else only when turned on; with every method off
 *   only "none" is tried.
 * - StrictHostKeyChecking: unset gives params.default_policy; "ask" asks
 *   when interactive, else is "yes".
 * - ConnectTimeout covers the TCP connection, the version and the key
 *   exchange; log level: the larger of LogLevel and params.verbose. */
#ifndef SHOAL_SSH_RESOLVE_H
#define SHOAL_SSH_RESOLVE_H

#include <stddef.h>

#include "shoal/config.h"
#include "shoal/error.h"
#include "shoal/keys.h"
#include "shoal/uv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Answers a passphrase question for a key file: fill buf (NUL-terminated),
 * return 0, or return non-zero to skip the key. */
typedef int (*shoal_ssh_ask_fn)(const char *path, char *buf, size_t bufsz, void *ud);
/* Reports a non-fatal problem (a key that could not be loaded). */
typedef void (*shoal_ssh_warn_fn)(const char *message, void *ud);

enum {
    SHOAL_SSH_RESOLVE_INTERACTIVE = 1,     /* a person can answer prompts */
    SHOAL_SSH_RESOLVE_LOAD_KEYS = 2,       /* load the key files now, once for all connections */
    SHOAL_SSH_RESOLVE_KNOWN_HOSTS_DB = 4,  /* read known_hosts once into a shared database */
    SHOAL_SSH_RESOLVE_DSA = 8,             /* ~/.ssh/id_dsa among the default keys (GoSSHa's) */
};

typedef struct shoal_ssh_resolve_params {
    size_t size;                    /* set by shoal_ssh_resolve_params_init */
    unsigned flags;                 /* SHOAL_SSH_RESOLVE_* */
    const char *user;               /* wins over User; NULL = none */
    const char *default_user;       /* after User; NULL = the real uid's login name */
    unsigned port;                  /* wins over Port; 0 = none */
    const char *const *extra_keys;  /* key files after IdentityFile or the defaults */
    unsigned n_extra_keys;
    shoal_hostkey_policy default_policy; /* StrictHostKeyChecking not given */
    int verbose;                    /* the log level is at least this */
    shoal_ssh_ask_fn ask;           /* LOAD_KEYS: passphrases; NULL: encrypted keys are skipped */
    void *ask_ud;
    shoal_ssh_warn_fn warn;         /* LOAD_KEYS: keys skipped; NULL: silent */
    void *warn_ud;
} shoal_ssh_resolve_params;

/* Zero-fills p, sets p->size and default_policy = SHOAL_HOSTKEY_STRICT. */
SHOAL_EXTERN void shoal_ssh_resolve_params_init(shoal_ssh_resolve_params *p);

typedef struct shoal_ssh_resolved shoal_ssh_resolved;

/* Resolves o with p (p->size bytes of it are read; size 0 is
 * SHOAL_ERR_INVALID_ARG). *out borrows o's strings: o must outlive it.
 * Errors: SHOAL_ERR_INVALID_ARG, SHOAL_ERR_NOMEM, SHOAL_ERR_CONFIG (no
 * user), a known_hosts read error (KNOWN_HOSTS_DB);
 * err says which. */
SHOAL_EXTERN int shoal_ssh_resolve(const shoal_ssh_options *o, const shoal_ssh_resolve_params *p,
                                   shoal_ssh_resolved **out, char *err, size_t errsz);
/* The connection settings: everything but host, which the caller sets in
 * its copy; ssh.user and port are the resolved ones. The pointers in it
 * (keys, files, database) belong to r and live as long as r. */
SHOAL_EXTERN const shoal_uv_options *shoal_ssh_resolved_conn(const shoal_ssh_resolved *r);
SHOAL_EXTERN const char *shoal_ssh_resolved_user(const shoal_ssh_resolved *r);
SHOAL_EXTERN unsigned shoal_ssh_resolved_port(const shoal_ssh_resolved *r);
/* ConnectionAttempts, 0 when not given. */
SHOAL_EXTERN unsigned shoal_ssh_resolved_connection_attempts(const shoal_ssh_resolved *r);
/* Frees the keys, the database and r; NULL is ignored. */
SHOAL_EXTERN void shoal_ssh_resolved_free(shoal_ssh_resolved *r);

/* Loads one private key file, asking ask for its passphrase when it is
 * encrypted (no ask: SHOAL_ERR_KEY_ENCRYPTED). err names the file. */
SHOAL_EXTERN int shoal_ssh_load_key(const char *path, shoal_ssh_ask_fn ask, void *ask_ud, shoal_key **out,
                                    char *err, size_t errsz);

#ifdef __cplusplus
}
#endif
#endif
