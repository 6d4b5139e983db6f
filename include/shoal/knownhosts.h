/* shoal: OpenSSH known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 *
 * Lines: [marker] hostpatterns keytype base64key [comment]
 *  - marker: "@revoked" or "@cert-authority" (the latter parsed and kept,
 *    but a plain host key never matches a CA line);
 *  - hostpatterns: comma-separated, with "*" and "?" wildcards, "!" negation,
 *    "[host]:port" for non-22 ports, or one hashed "|1|salt|hash" entry
 *    (HMAC-SHA1 keyed with the salt over "host" or "[host]:port"). */
#ifndef SHOAL_KNOWNHOSTS_H
#define SHOAL_KNOWNHOSTS_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shoal_kh_status {
    SHOAL_KH_NOT_FOUND = 0, /* no line names this host (with any key type) */
    SHOAL_KH_MATCH,         /* a line names this host with this exact key */
    SHOAL_KH_MISMATCH,      /* the host is known with a different key of the same type */
    SHOAL_KH_OTHER_TYPE,    /* the host is known, only with keys of other types */
    SHOAL_KH_REVOKED,       /* the key is listed under @revoked */
} shoal_kh_status;

typedef struct shoal_kh_result {
    shoal_kh_status status;
    /* For MATCH / MISMATCH / REVOKED / OTHER_TYPE: the deciding line. */
    unsigned line;
    char keytype[64]; /* key type of that line */
} shoal_kh_result;

/* Checks (host, port) with the key blob against the known_hosts text in
 * buf. keytype is the key's SSH type name ("ssh-ed25519", ...). Malformed
 * lines are skipped (as OpenSSH does) and never abort the scan. A REVOKED
 * line wins over everything; MATCH wins over MISMATCH. */
SHOAL_EXTERN int shoal_knownhosts_check_buf(const char *buf, size_t len, const char *host, unsigned port,
                                            const char *keytype, const uint8_t *blob, size_t bloblen,
                                            shoal_kh_result *res);
/* Same, reading the file at path (a missing file is NOT_FOUND, not an error;
 * files over 64 MiB are refused). */
SHOAL_EXTERN int shoal_knownhosts_check_file(const char *path, const char *host, unsigned port,
                                             const char *keytype, const uint8_t *blob, size_t bloblen,
                                             shoal_kh_result *res);
/* Appends "host keytype base64" (host written as "[host]:port" when port != 22;
 * hashed with a fresh salt when hash is non-zero), creating the file (mode 0600)
 * and its directory (0700) if needed. */
SHOAL_EXTERN int shoal_knownhosts_append(const char *path, const char *host, unsigned port,
                                         const char *keytype, const uint8_t *blob, size_t bloblen,
                                         int hash);
/* 1 when host matches the comma-separated pattern list (OpenSSH match_hostname
 * semantics: any negated match makes the whole list fail). */
SHOAL_EXTERN int shoal_knownhosts_match_patterns(const char *patterns, size_t len, const char *host_or_bracketed);

#ifdef __cplusplus
}
#endif
#endif
