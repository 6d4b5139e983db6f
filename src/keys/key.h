/* Internal key API: blobs and signatures (see include/shoal/keys.h). */
#ifndef SHOAL_KEYS_KEY_H
#define SHOAL_KEYS_KEY_H

#include "shoal/keys.h"
#include "wire/buf.h"

/* Bounds on what a peer can make us process. */
#define SHOAL_RSA_MIN_BITS 1024
#define SHOAL_RSA_MAX_BITS 16384
#define SHOAL_KEY_MAX_BLOB 4096

/* Host key algorithm lists (hostkey_algs.c). */
extern const char SHOAL_HOSTKEY_ALGS_DEFAULT[];
extern const char SHOAL_HOSTKEY_ALGS_ALL[];

/* Appends the public key blob. */
int shoal_key_to_blob(const shoal_key *key, shoal_buf *out);

/* Signature algorithm names a key can produce or verify:
 * ed25519 -> "ssh-ed25519"; ecdsa -> its type name;
 * rsa -> "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa". */
int shoal_key_sigalg_valid(const shoal_key *key, const char *sigalg, size_t len);

/* shoal_key_verify: see include/shoal/keys.h. */

/* Signs data with a private key, appending the SSH signature blob
 * (string alg, string sig) to out. sigalg chooses the RSA hash; NULL means
 * the key type's default (rsa-sha2-512 for RSA). */
int shoal_key_sign(const shoal_key *key, const char *sigalg, const uint8_t *data, size_t data_len,
                   shoal_buf *out);

/* Duplicates the public part only. */
int shoal_key_dup_public(const shoal_key *key, shoal_key **out);

/* Base64 (RFC 4648) helpers built on libcrypto's EVP_Encode/Decode. */
int shoal_base64_decode(const char *in, size_t in_len, shoal_buf *out);
int shoal_base64_encode(const uint8_t *in, size_t len, char *out, size_t outsz, int pad);

#endif
