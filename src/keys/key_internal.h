/* What the files of src/keys share: the key object and its constructors.
 * Not part of any interface outside src/keys. */
#ifndef SHOAL_KEYS_KEY_INTERNAL_H
#define SHOAL_KEYS_KEY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/evp.h>

#include "keys/key.h"

/* Most bytes of a private key file we read (also the base64 armor). */
#define SHOAL_KEYFILE_MAX (1u << 20)
/* Largest RSA mpint magnitude: SHOAL_RSA_MAX_BITS / 8 (the wire reader's
 * generic mpint cap is smaller, so RSA uses shoal_rd_mpint_max with its own cap). */
#define SHOAL_RSA_MAX_BYTES (SHOAL_RSA_MAX_BITS / 8)
/* Largest public exponent we accept (bounds verification cost; libcrypto
 * itself refuses e over 64 bits for moduli above 3072 bits). */
#define SHOAL_RSA_MAX_E_BITS 64

/* Digests a key may sign with: none (Ed25519), SHA1, SHA256, SHA384, SHA512. */
#define SHOAL_KEY_SIGN_DIGESTS 5

struct shoal_key {
    /* References beyond the first (shoal_key_ref); 0 = one owner. Counting
     * the extra ones keeps calloc'd keys correct without an initializer. */
    atomic_uint extra_refs;
    shoal_keytype type;
    int has_private;
    EVP_PKEY *pkey;  /* public, or the key pair when has_private */
    uint8_t *blob;   /* the public key blob, cached */
    size_t blob_len;
    /* Private keys: a signing context per digest, initialised on first use
     * and copied for each signature (sig.c says why); under sign_mu, as
     * threads share keys. */
    pthread_mutex_t sign_mu;
    EVP_MD_CTX *sign_tmpl[SHOAL_KEY_SIGN_DIGESTS];
};

/* Per-type constants. */
typedef struct shoal_ecinfo {
    shoal_keytype type;
    const char *name;       /* "ecdsa-sha2-nistp256" */
    const char *curve;      /* "nistp256" (the SSH curve identifier) */
    const char *group;      /* libcrypto group name "prime256v1" */
    size_t field_len;       /* bytes of one coordinate */
    unsigned bits;
    const char *digest;     /* "SHA256" */
} shoal_ecinfo;
const shoal_ecinfo *shoal_key_ecinfo(shoal_keytype t);

/* An mpint (RFC 4251: minimal, non-negative) of at most max bytes,
 * returning the magnitude; built on shoal_rd_string. */

/* Wraps pkey (ownership moves in, freed on failure): checks the key's
 * parameters (RSA size and exponent, curve, point) and builds the blob. */
int shoal_key_from_pkey(EVP_PKEY *pkey, shoal_keytype type, int has_private, shoal_key **out);
/* Maps a libcrypto key to our type: SHOAL_KEY_UNKNOWN when unsupported. */
shoal_keytype shoal_key_type_of_pkey(const EVP_PKEY *pkey);

/* Public key pieces from a blob reader positioned after the type name:
 * builds an EVP_PKEY (public only). */
int shoal_key_parse_public_body(shoal_keytype type, shoal_rd *r, EVP_PKEY **out);

/* Private key loaders (keyfile_openssh.c, keyfile_pem.c). They return
 * SHOAL_ERR_NOT_FOUND when the bytes are not of their format. */
int shoal_keyfile_openssh_load(const uint8_t *data, size_t len, const char *passphrase, shoal_key **out);
int shoal_keyfile_openssh_is_encrypted(const uint8_t *data, size_t len);
/* Lowers the bcrypt rounds cap (SHOAL_BCRYPT_MAX_ROUNDS by default) for the
 * whole process. For fuzz targets only, so every input runs fast. */
void shoal_keyfile_openssh_set_max_rounds(unsigned rounds);
int shoal_keyfile_pem_load(const uint8_t *data, size_t len, const char *passphrase, shoal_key **out);
int shoal_keyfile_pem_is_encrypted(const uint8_t *data, size_t len);

#endif
