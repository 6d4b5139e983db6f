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
/* Same, reading the file at path. A missing file (ENOENT, ENOTDIR) is
 * NOT_FOUND, not an error. A file that exists but cannot be read is an
 * error that callers must never take for "not found" (CVE-2025-26465's
 * class): SHOAL_ERR_PERMISSION (EACCES, EPERM) or SHOAL_ERR_IO (any other
 * open or read error), both with errno left set to the system's reason;
 * SHOAL_ERR_TOO_LARGE (over 64 MiB); SHOAL_ERR_NOMEM. */
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

/* ---- in-memory database ----
 *
 * For programs that check many connections against the same files: the
 * files are read and parsed once, and a lookup costs O(1) for plain host
 * names and "[host]:port" names (hash table), plus one pass over the lines
 * that cannot be indexed: wildcard patterns, negations, "|1|" hashed
 * entries (one HMAC-SHA1 each per lookup) and @revoked lines.
 * @cert-authority lines are dropped at load (they never decide a plain key,
 * exactly as in the file checker). Answers are the same as running
 * shoal_knownhosts_check_file over the files in order and combining them as
 * the uv driver does (see shoal_kh_db_check).
 *
 * Thread-safe: lookups take a shared lock, shoal_kh_db_add an exclusive
 * one, so one database may serve several loops on several threads. The
 * files are not watched: lines other processes add later are not seen. */
typedef struct shoal_kh_db shoal_kh_db;

/* Reads files[0..n) (same limits and parsing as the file checker: lines over
 * 64 KiB and malformed lines are skipped, files over 64 MiB refused). A
 * missing file counts as empty; /dev/null and pipes are fine. Any other
 * read error fails the whole open (SHOAL_ERR_IO / SHOAL_ERR_TOO_LARGE), so a
 * file that cannot be read is never silently ignored. n may be 0 (an empty,
 * memory-only database). The first file receives shoal_kh_db_add's lines. */
SHOAL_EXTERN int shoal_kh_db_open(const char *const *files, unsigned n, shoal_kh_db **out);
/* The same, telling which file could not be read: *failed gets its index
 * and *sys_errno the system's reason (0 for TOO_LARGE and NOMEM); either
 * pointer may be NULL. */
SHOAL_EXTERN int shoal_kh_db_open_files(const char *const *files, unsigned n, shoal_kh_db **out, unsigned *failed,
                                        int *sys_errno);
/* One line for a read error of the calls above, e.g. "cannot read known_hosts
 * file /x: Permission denied" (rc is their result, sys_errno the errno). */
SHOAL_EXTERN void shoal_knownhosts_read_error(const char *path, int rc, int sys_errno, char *buf, size_t sz);
SHOAL_EXTERN void shoal_kh_db_free(shoal_kh_db *db);

/* Checks (host, port) with the key blob against all files at once, with the
 * precedence the uv driver applies across files: REVOKED in any file wins,
 * then the first MATCH (in file order, then line order), then the first
 * MISMATCH, then OTHER_TYPE. r->line and *file (when file is not NULL)
 * name the deciding line; *file points into the database (valid until
 * shoal_kh_db_free) and is NULL for NOT_FOUND or a line that only exists in
 * memory (a database without files). An empty blob never matches, as in
 * shoal_knownhosts_check_buf. */
SHOAL_EXTERN int shoal_kh_db_check(shoal_kh_db *db, const char *host, unsigned port, const char *keytype,
                                   const uint8_t *blob, size_t bloblen, shoal_kh_result *r, const char **file);

/* For each of the ntypes key type names, known[i] = 1 when a line that is
 * not @revoked names (host, port) with that key type, else 0. One pass for
 * all types (what the driver needs to order host key algorithms). */
SHOAL_EXTERN int shoal_kh_db_known_types(shoal_kh_db *db, const char *host, unsigned port,
                                         const char *const *types, unsigned ntypes, int *known);

/* Records a newly accepted key: appends it to the first file exactly as
 * shoal_knownhosts_append does (hashed when hash is non-zero), and adds it
 * to memory, so later lookups in this process see it without re-reading.
 * If the key already matches (another thread added it meanwhile), nothing
 * is written and SHOAL_OK is returned. When writing the file fails, the key
 * is still added to memory (it was accepted for this run) and the write
 * error is returned. */
SHOAL_EXTERN int shoal_kh_db_add(shoal_kh_db *db, const char *host, unsigned port, const char *keytype,
                                 const uint8_t *blob, size_t bloblen, int hash);

#ifdef __cplusplus
}
#endif
#endif
