/* What knownhosts.c (the file checker) and knownhosts_db.c (the in-memory
 * database) share: limits, the line parser, host matching, hashed entries,
 * the classification of one line against a key, and file reading. Having
 * one parser is what keeps both answering the same on the same input.
 * Not part of any interface outside src/keys. */
#ifndef SHOAL_KEYS_KNOWNHOSTS_INTERNAL_H
#define SHOAL_KEYS_KNOWNHOSTS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "shoal/knownhosts.h"

/* Longest line we look at; OpenSSH itself stops at 8 KiB, but certificates
 * and large RSA keys in the wild justify some headroom. */
#define KH_MAX_LINE (64u * 1024u)
/* Largest file we read. */
#define KH_MAX_FILE (64u * 1024u * 1024u)
/* Longest host name we build a query from (DNS allows 253; aliases are free-form). */
#define KH_MAX_HOST 1024u
/* Room for "[" host "]:" port and a NUL. */
#define KH_MAX_QUERY (KH_MAX_HOST + 16u)
/* HMAC-SHA1 salt and output length used by "|1|" hashed entries. */
#define KH_HASH_LEN 20u
/* Longest key type name (with its NUL: shoal_kh_result.keytype). */
#define KH_MAX_TYPE 64u

enum shoal__kh_marker { KH_MARK_NONE, KH_MARK_REVOKED, KH_MARK_CA };

/* One usable line, pointing into the caller's text. */
typedef struct shoal__kh_line {
    enum shoal__kh_marker marker;
    const char *hosts; /* hosts field: pattern list or "|1|salt|hash" */
    size_t hostslen;
    const char *type; /* key type name, shorter than KH_MAX_TYPE */
    size_t typelen;
    const char *b64; /* base64 key (not decoded here) */
    size_t b64len;
} shoal__kh_line;

/* Splits one line (without its newline) into fields. Returns 1 for a line
 * with a marker/hosts/type/key, 0 for anything to skip: blank, comment,
 * unknown marker, too long, embedded NUL, missing fields. */
int shoal__kh_parse_line(const char *line, size_t len, shoal__kh_line *out);

/* Calls fn for every usable line of buf with its 1-based line number (lines
 * are counted whether usable or not). Stops at fn's first non-zero return
 * and returns it. *nlines (may be NULL) gets the number of lines seen. */
typedef int (*shoal__kh_line_fn)(void *ud, const shoal__kh_line *l, unsigned lineno);
int shoal__kh_foreach_line(const char *buf, size_t len, shoal__kh_line_fn fn, void *ud, unsigned *nlines);

/* Lowercased query "host" (port 0 or 22) or "[host]:port". */
int shoal__kh_make_query(const char *host, unsigned port, char *out, size_t outsz, size_t *outlen);

/* OpenSSH match_hostname() over a comma-separated plain pattern list (q lowercase). */
int shoal__kh_match_plain_list(const char *pat, size_t plen, const char *q, size_t qlen);

/* One HMAC-SHA1 context reused for every hashed entry of a lookup. */
typedef struct shoal__kh_hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
} shoal__kh_hasher;
void shoal__kh_hasher_free(shoal__kh_hasher *h);
/* Decodes "|1|base64(salt)|base64(hmac)"; SHOAL_ERR_BAD_FORMAT when it is not one. */
int shoal__kh_hashed_parse(const char *f, size_t flen, uint8_t salt[KH_HASH_LEN], uint8_t want[KH_HASH_LEN]);
/* 1 when HMAC-SHA1(salt, q) equals want (constant-time compare), 0 when
 * not, negative on a crypto failure. */
int shoal__kh_hashed_check(shoal__kh_hasher *h, const uint8_t salt[KH_HASH_LEN], const uint8_t want[KH_HASH_LEN],
                           const char *q, size_t qlen);

/* How one line that names the host relates to the key being checked. */
enum shoal__kh_class { KH_CLASS_NONE, KH_CLASS_REVOKED, KH_CLASS_MATCH, KH_CLASS_MISMATCH, KH_CLASS_OTHER };
enum shoal__kh_class shoal__kh_classify(enum shoal__kh_marker marker, const char *type, size_t typelen,
                                        const uint8_t *key, size_t keylen, const char *want_type,
                                        size_t want_typelen, const uint8_t *blob, size_t bloblen);

/* Reads a whole file (at most KH_MAX_FILE bytes). *data is NULL with rc 0
 * when the file does not exist. Errors: see shoal_knownhosts_check_file;
 * *sys_errno (when not NULL) gets the errno of a failed open or read, else 0. */
int shoal__kh_read_file(const char *path, char **data, size_t *len, int *sys_errno);

/* SHOAL_OK when shoal_knownhosts_append would accept these (host name safe
 * to write, key type sane, blob non-empty and not too large), else its error. */
int shoal__kh_append_check(const char *host, unsigned port, const char *keytype, const uint8_t *blob,
                           size_t bloblen);

#endif
