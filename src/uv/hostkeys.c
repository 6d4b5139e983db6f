/* Host key decision against known_hosts files, by policy (OpenSSH's
 * StrictHostKeyChecking). Decided before any authentication data is sent:
 * the session asks during key exchange and waits for the answer.
 * With shoal_uv_options.known_hosts_db the lookups and additions go to that
 * shared in-memory database instead of the files (same answers). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "shoal/knownhosts.h"
#include "uv/conn_impl.h"

static const char *lookup_name(shoal_uv_conn *c, unsigned *port)
{
    if (c->alias && *c->alias) {
        *port = 22; /* an alias names the entry itself */
        return c->alias;
    }
    *port = c->opt.port;
    return c->host;
}

static void display_name(shoal_uv_conn *c, char *out, size_t sz)
{
    unsigned port;
    const char *h = lookup_name(c, &port);
    if (port == 22)
        snprintf(out, sz, "%s", h);
    else
        snprintf(out, sz, "[%s]:%u", h, port);
}

int shoal__uv_hostkey_check(shoal_uv_conn *c, const shoal_hostkey_info *info)
{
    unsigned port;
    const char *host = lookup_name(c, &port);
    const char *type = shoal_key_type_name(info->key);
    char shown[300];
    display_name(c, shown, sizeof(shown));
    /* Read every file before deciding: a revocation anywhere wins over a
     * match elsewhere (as OpenSSH), then a match, then a mismatch. */
    int known_other = 0;
    const char *match_file = NULL, *bad_file = NULL;
    unsigned match_line = 0, bad_line = 0;
    shoal_kh_db *db = c->opt.known_hosts_db;
    if (db) {
        /* The database combines its files exactly as the loop below does. */
        shoal_kh_result r;
        const char *file = NULL;
        int rc = shoal_kh_db_check(db, host, port, type, info->blob, info->blob_len, &r, &file);
        if (rc) {
            snprintf(c->detail, sizeof(c->detail), "cannot look up host key for %s: %s", shown, shoal_strerror(rc));
            return rc;
        }
        if (!file)
            file = "known hosts database";
        switch (r.status) {
        case SHOAL_KH_REVOKED:
            snprintf(c->detail, sizeof(c->detail), "host key %s %s for %s is marked @revoked in %s:%u", type,
                     info->fingerprint, shown, file, r.line);
            return SHOAL_ERR_HOSTKEY_REVOKED;
        case SHOAL_KH_MATCH:
            match_file = file;
            match_line = r.line;
            break;
        case SHOAL_KH_MISMATCH:
            bad_file = file;
            bad_line = r.line;
            break;
        case SHOAL_KH_OTHER_TYPE:
            known_other = 1;
            break;
        case SHOAL_KH_NOT_FOUND:
            break;
        }
    }
    for (unsigned i = 0; !db && i < c->opt.n_known_hosts; i++) {
        shoal_kh_result r;
        const char *file = c->kh_files[i];
        int rc = shoal_knownhosts_check_file(file, host, port, type, info->blob, info->blob_len, &r);
        if (rc) {
            /* A file that exists and cannot be read may hold this host's
             * key (or its revocation): never go on as if it were absent. */
            int e = errno;
            char why[600];
            shoal_knownhosts_read_error(file, rc, e, why, sizeof(why));
            snprintf(c->detail, sizeof(c->detail), "%s; cannot check the host key of %s", why, shown);
            return rc;
        }
        switch (r.status) {
        case SHOAL_KH_REVOKED:
            snprintf(c->detail, sizeof(c->detail), "host key %s %s for %s is marked @revoked in %s:%u", type,
                     info->fingerprint, shown, file, r.line);
            return SHOAL_ERR_HOSTKEY_REVOKED;
        case SHOAL_KH_MISMATCH:
            if (!bad_file) {
                bad_file = file;
                bad_line = r.line;
            }
            break;
        case SHOAL_KH_MATCH:
            if (!match_file) {
                match_file = file;
                match_line = r.line;
            }
            break;
        case SHOAL_KH_OTHER_TYPE:
            known_other = 1;
            break;
        case SHOAL_KH_NOT_FOUND:
            break;
        }
    }
    if (match_file) {
        shoal__uv_log(c, 1, "host key found in %s:%u", match_file, match_line);
        return SHOAL_OK;
    }
    if (bad_file) {
        snprintf(c->detail, sizeof(c->detail),
                 "HOST KEY CHANGED for %s: server offers %s %s, which differs from the key in %s:%u "
                 "(possible man-in-the-middle attack; if the change is expected, remove the old entry with "
                 "ssh-keygen -R '%s' -f %s)",
                 shown, type, info->fingerprint, bad_file, bad_line, shown, bad_file);
        return SHOAL_ERR_HOSTKEY_MISMATCH;
    }
    if (c->opt.hostkey_policy == SHOAL_HOSTKEY_ASK) {
        int yes = c->cb.confirm_hostkey && c->cb.confirm_hostkey(c, shown, type, info->fingerprint, c->ud) == 1;
        if (!yes) {
            snprintf(c->detail, sizeof(c->detail), "host key %s %s for %s is not known and was not accepted", type,
                     info->fingerprint, shown);
            return SHOAL_ERR_HOSTKEY_UNKNOWN;
        }
    }
    if (c->opt.hostkey_policy == SHOAL_HOSTKEY_STRICT) {
        snprintf(c->detail, sizeof(c->detail), "host key %s %s for %s is not in %s%s (StrictHostKeyChecking=yes)",
                 type, info->fingerprint, shown, c->opt.n_known_hosts ? c->kh_files[0] : "any known_hosts file",
                 known_other ? "; only keys of other types are known" : "");
        return SHOAL_ERR_HOSTKEY_UNKNOWN;
    }
    if (db) {
        /* Written to the database's first file, and seen at once by every
         * other connection using it. */
        const char *where = c->opt.n_known_hosts ? c->kh_files[0] : "the known hosts database";
        int rc = shoal_kh_db_add(db, host, port, type, info->blob, info->blob_len, c->opt.hash_known_hosts);
        if (rc)
            shoal__uv_log(c, 0, "warning: could not add the host key to %s: %s", where, shoal_strerror(rc));
        else
            shoal__uv_log(c, 0, "Permanently added '%s' (%s) to the list of known hosts (%s).", shown, type,
                          where);
    } else if (c->opt.n_known_hosts) {
        int rc = shoal_knownhosts_append(c->kh_files[0], host, port, type, info->blob, info->blob_len,
                                         c->opt.hash_known_hosts);
        if (rc)
            shoal__uv_log(c, 0, "warning: could not add the host key to %s: %s", c->kh_files[0],
                          shoal_strerror(rc));
        else
            shoal__uv_log(c, 0, "Permanently added '%s' (%s) to the list of known hosts (%s).", shown, type,
                          c->kh_files[0]);
    }
    return SHOAL_OK;
}

/* Algorithms for key types already known for this host go first. */
char *shoal__uv_hostkey_order(shoal_uv_conn *c)
{
    static const struct {
        const char *type;
        const char *algs;
    } map[] = {
        {"ssh-ed25519", "ssh-ed25519"},
        {"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"},
        {"ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"},
        {"ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"},
        {"ssh-rsa", "rsa-sha2-512,rsa-sha2-256"},
    };
    const size_t n = sizeof(map) / sizeof(map[0]);
    int known[sizeof(map) / sizeof(map[0])] = {0};
    int any = 0;
    unsigned port;
    const char *host = lookup_name(c, &port);
    if (c->opt.known_hosts_db) {
        const char *types[sizeof(map) / sizeof(map[0])];
        for (size_t k = 0; k < n; k++)
            types[k] = map[k].type;
        if (shoal_kh_db_known_types(c->opt.known_hosts_db, host, port, types, (unsigned)n, known) != 0)
            return NULL;
        for (size_t k = 0; k < n; k++)
            any |= known[k];
    }
    for (size_t k = 0; !c->opt.known_hosts_db && k < n; k++) {
        for (unsigned i = 0; i < c->opt.n_known_hosts && !known[k]; i++) {
            shoal_kh_result r;
            /* An empty blob never matches: MISMATCH means "known with this type". */
            if (shoal_knownhosts_check_file(c->kh_files[i], host, port, map[k].type, (const uint8_t *)"", 0, &r) ==
                    0 &&
                (r.status == SHOAL_KH_MISMATCH || r.status == SHOAL_KH_MATCH))
                known[k] = any = 1;
        }
    }
    if (!any)
        return NULL;
    char *out = calloc(1, 512);
    if (!out)
        return NULL;
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < n; k++)
            if (known[k] == (pass == 0)) {
                if (*out)
                    strcat(out, ",");
                strcat(out, map[k].algs);
            }
    return out;
}
