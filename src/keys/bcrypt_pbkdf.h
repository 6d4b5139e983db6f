/* bcrypt_pbkdf: the password-based KDF of OpenSSH's openssh-key-v1 files
 * (a PBKDF2-like construction around the "bcrypt hash", an eksblowfish
 * variant; see bcrypt_pbkdf.c). Private to src/keys. */
#ifndef SHOAL_KEYS_BCRYPT_PBKDF_H
#define SHOAL_KEYS_BCRYPT_PBKDF_H

#include <stddef.h>
#include <stdint.h>

/* Most rounds we run for a key file: ssh-keygen's default is 16 and users
 * raise it to 100 or so; a hostile file must not make us spin for minutes. */
#define SHOAL_BCRYPT_MAX_ROUNDS 1000u
/* Longest salt we hash (OpenSSH writes 16 bytes). */
#define SHOAL_BCRYPT_MAX_SALT 1024u
/* Longest output (OpenSSH's own limit). */
#define SHOAL_BCRYPT_MAX_KEY 1024u

/* Derives keylen bytes into key. Fails (SHOAL_ERR_INVALID_ARG) on an empty
 * password or salt, rounds 0, or lengths over the limits above. */
int shoal_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, unsigned rounds,
                       uint8_t *key, size_t keylen);

/* Plain Blowfish key schedule built from our pi table (for the self test
 * that compares it with libcrypto's BF_set_key). ks points to a BF_KEY. */
struct bf_key_st;
void shoal_bf_plain_setkey(struct bf_key_st *ks, const uint8_t *key, size_t len);

#endif
