/* shoal: OpenSSH-style client options ("-o Keyword=value").
 *
 * Supported keywords (case-insensitive, "Keyword=value" or "Keyword value"):
 * Port, User, IdentityFile, IdentityAgent, KexAlgorithms, Ciphers, MACs,
 * HostKeyAlgorithms, StrictHostKeyChecking, UserKnownHostsFile,
 * GlobalKnownHostsFile, HostKeyAlias, HashKnownHosts, BatchMode,
 * ConnectTimeout, ConnectionAttempts, ServerAliveInterval, ServerAliveCountMax,
 * PasswordAuthentication, PubkeyAuthentication, KbdInteractiveAuthentication,
 * RekeyLimit, LogLevel, Compression (no only).
 * Algorithm lists take OpenSSH's modifiers: "+list" appends to the defaults,
 * "-list" removes (wildcards allowed), "^list" puts first. */
#ifndef SHOAL_CONFIG_H
#define SHOAL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHOAL_OPT_MAX_FILES 16

typedef struct shoal_ssh_options {
    unsigned port;                 /* 0 = unset */
    char *user;
    char *identity_files[SHOAL_OPT_MAX_FILES];
    unsigned n_identity_files;
    char *identity_agent;          /* "none" disables the agent */
    char *kex, *ciphers, *macs, *hostkey_algs; /* resolved lists */
    int strict_host_key_checking;  /* -1 unset, 0 no, 1 yes, 2 accept-new, 3 ask */
    char *user_known_hosts[SHOAL_OPT_MAX_FILES];
    unsigned n_user_known_hosts;
    char *global_known_hosts[SHOAL_OPT_MAX_FILES];
    unsigned n_global_known_hosts;
    char *host_key_alias;
    int hash_known_hosts;          /* -1 unset */
    int batch_mode;                /* -1 unset */
    int64_t connect_timeout_s;     /* -1 unset */
    int connection_attempts;       /* -1 unset (fan-out: retries of a connection reset before the
                                      server's version line; shoal exec makes one attempt) */
    int64_t server_alive_interval_s;
    int64_t server_alive_count_max;
    int password_auth, pubkey_auth, kbdint_auth; /* -1 unset */
    uint64_t rekey_bytes;          /* 0 unset */
    uint64_t rekey_seconds;        /* 0 unset */
    int log_level;                 /* -1 unset */
} shoal_ssh_options;

SHOAL_EXTERN void shoal_ssh_options_init(shoal_ssh_options *o);
SHOAL_EXTERN void shoal_ssh_options_free(shoal_ssh_options *o);
/* Applies one option; err (if not NULL) receives a message naming the
 * problem. First value wins for single-valued keywords, as in ssh_config. */
SHOAL_EXTERN int shoal_ssh_options_apply(shoal_ssh_options *o, const char *text, char *err, size_t errsz);
/* Resolves an algorithm list with modifiers against defaults and the set
 * of supported names; *out is malloc'd. */
SHOAL_EXTERN int shoal_algorithm_list(const char *spec, const char *defaults, const char *supported, char **out,
                                      char *err, size_t errsz);

#ifdef __cplusplus
}
#endif
#endif
