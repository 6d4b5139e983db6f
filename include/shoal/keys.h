/* shoal: SSH keys: public key blobs, signatures, private key files.
 *
 * Supported types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (with
 * signature algorithms rsa-sha2-256, rsa-sha2-512 and, only when asked for,
 * ssh-rsa). Private key files: openssh-key-v1 (unencrypted, or encrypted with
 * bcrypt-pbkdf and aes256-ctr / aes256-gcm@openssh.com / aes128-ctr...) and
 * PEM / PKCS#8 (through libcrypto). */
#ifndef SHOAL_KEYS_H
#define SHOAL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_key shoal_key;

typedef enum shoal_keytype {
    SHOAL_KEY_UNKNOWN = 0,
    SHOAL_KEY_ED25519,
    SHOAL_KEY_ECDSA_P256,
    SHOAL_KEY_ECDSA_P384,
    SHOAL_KEY_ECDSA_P521,
    SHOAL_KEY_RSA,
} shoal_keytype;

/* Parses an SSH public key blob (RFC 4253 6.6 encoding). */
SHOAL_EXTERN int shoal_key_from_blob(const uint8_t *blob, size_t len, shoal_key **out);
/* Parses "type base64 [comment]" (one authorized_keys / .pub line, no options). */
SHOAL_EXTERN int shoal_key_from_public_text(const char *text, size_t len, shoal_key **out);
/* Loads a private key file's bytes. passphrase may be NULL: an encrypted key
 * then gives SHOAL_ERR_KEY_ENCRYPTED; a wrong one SHOAL_ERR_BAD_PASSPHRASE. */
SHOAL_EXTERN int shoal_key_load_private(const uint8_t *data, size_t len, const char *passphrase,
                                        shoal_key **out);
/* 1 when the file bytes are an encrypted private key (any format), 0 when
 * not, negative when not a key file at all. */
SHOAL_EXTERN int shoal_key_file_is_encrypted(const uint8_t *data, size_t len);
/* Reads a whole file (capped at 1 MiB) and loads it. Reading the file is
 * the driver's (shoal_uv, src/uv/files.c): the core reads no files. */
SHOAL_EXTERN int shoal_key_load_private_file(const char *path, const char *passphrase, shoal_key **out);
/* Drops one reference; the key is freed (and its secrets wiped) when the
 * last one goes. */
SHOAL_EXTERN void shoal_key_free(shoal_key *key);
/* Takes another reference and returns key (NULL stays NULL): each
 * shoal_key_ref needs its own shoal_key_free. Counting is atomic, so the
 * owners may live on different threads. A key is never modified after it
 * is loaded, so one key may sign on several threads at once (each
 * signature uses its own libcrypto context). */
SHOAL_EXTERN shoal_key *shoal_key_ref(shoal_key *key);

SHOAL_EXTERN shoal_keytype shoal_key_type(const shoal_key *key);
SHOAL_EXTERN int shoal_key_has_private(const shoal_key *key);
/* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ... */
SHOAL_EXTERN const char *shoal_key_type_name(const shoal_key *key);
SHOAL_EXTERN const char *shoal_keytype_name(shoal_keytype t);
SHOAL_EXTERN shoal_keytype shoal_keytype_from_name(const char *name, size_t len);
/* Key size in bits (RSA modulus, curve size, 256 for ed25519). */
SHOAL_EXTERN unsigned shoal_key_bits(const shoal_key *key);
/* 1 when both keys have the same public part. */
SHOAL_EXTERN int shoal_key_equal_public(const shoal_key *a, const shoal_key *b);
/* "SHA256:<base64 without padding>" as ssh-keygen -l prints it. out gets
 * the NUL-terminated text (64 bytes always suffice);
 * SHOAL_ERR_TOO_LARGE when outsz is too small (out is then ""). */
SHOAL_EXTERN int shoal_key_fingerprint(const shoal_key *key, char *out, size_t outsz);
/* "MD5:xx:xx:...:xx" (16 colon-separated lowercase hex bytes) as
 * ssh-keygen -l -E md5 prints it; 52 bytes suffice. Errors as
 * shoal_key_fingerprint. */
SHOAL_EXTERN int shoal_key_fingerprint_md5(const shoal_key *key, char *out, size_t outsz);

/* The public key blob (RFC 4253 6.6 wire encoding, what shoal_key_from_blob
 * reads). *out is a malloc'd copy the caller frees with free(); *len its
 * length. SHOAL_ERR_INVALID_ARG on a NULL argument, SHOAL_ERR_NOMEM. On
 * error *out is NULL. */
SHOAL_EXTERN int shoal_key_public_blob(const shoal_key *key, uint8_t **out, size_t *len);
/* The OpenSSH one-line text "ssh-ed25519 AAAA... comment" (as in a .pub
 * file or authorized_keys, without a newline); comment NULL or "" leaves it
 * out (and the blank before it). *out is a malloc'd NUL-terminated string
 * the caller frees with free(); NULL on error. SHOAL_ERR_INVALID_ARG when
 * the comment holds a line break (it would start a second line). */
SHOAL_EXTERN int shoal_key_public_text(const shoal_key *key, const char *comment, char **out);
/* The signature algorithm a key signs with when none is chosen:
 * "rsa-sha2-512" for RSA, else the key type name. */
SHOAL_EXTERN const char *shoal_key_default_sigalg(const shoal_key *key);

/* Signs data with a private key. sigalg chooses the algorithm: NULL for
 * shoal_key_default_sigalg(), "rsa-sha2-256" / "rsa-sha2-512" (or, only when
 * asked for, the legacy SHA-1 "ssh-rsa") for RSA, the key type name for the
 * others. *sig gets the SSH signature blob (string algorithm, string
 * signature; what shoal_key_verify and the SSH protocol take), malloc'd, the
 * caller frees it with free(); *sig_len its length. Errors:
 * SHOAL_ERR_INVALID_ARG (NULL argument, or a key without its private part),
 * SHOAL_ERR_UNSUPPORTED (an algorithm the key cannot use), SHOAL_ERR_NOMEM,
 * SHOAL_ERR_CRYPTO. On error *sig is NULL. Thread-safe like signing is. */
SHOAL_EXTERN int shoal_key_sign_data(const shoal_key *key, const char *sigalg, const uint8_t *data,
                                     size_t data_len, uint8_t **sig, size_t *sig_len);
/* Verifies an SSH signature blob (string alg, string sig) over data, with a
 * public or private key. sigalg, when not NULL, is the algorithm the
 * signature must use (e.g. a negotiated "rsa-sha2-256"); when NULL any
 * algorithm valid for the key type except the legacy "ssh-rsa" is accepted.
 * SHOAL_OK when it verifies; SHOAL_ERR_SIGNATURE on a bad signature or an
 * algorithm mismatch, SHOAL_ERR_BAD_FORMAT / SHOAL_ERR_TRUNCATED /
 * SHOAL_ERR_TRAILING on a malformed blob, SHOAL_ERR_INVALID_ARG. */
SHOAL_EXTERN int shoal_key_verify(const shoal_key *key, const char *sigalg, const uint8_t *sig, size_t sig_len,
                                  const uint8_t *data, size_t data_len);

#ifdef __cplusplus
}
#endif
#endif
