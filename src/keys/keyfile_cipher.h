/* Ciphers of openssh-key-v1 files (OpenSSH PROTOCOL.key; the names are the
 * transport cipher names). Private to src/keys. */
#ifndef SHOAL_KEYS_KEYFILE_CIPHER_H
#define SHOAL_KEYS_KEYFILE_CIPHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct shoal_keyfile_cipher {
    const char *name;    /* "aes256-ctr" */
    const char *evp;     /* libcrypto name, NULL for none and chacha */
    size_t key_len;      /* bytes of key, then iv_len bytes of IV, from the KDF */
    size_t iv_len;
    size_t block_len;    /* the encrypted section is a multiple of this */
    size_t tag_len;      /* AEAD tag stored after the encrypted string */
    int kind;            /* see keyfile_cipher.c */
} shoal_keyfile_cipher;

#define KEYFILE_MAX_KEYIV 64

/* NULL when the name is not a cipher we can open. */
const shoal_keyfile_cipher *shoal_keyfile_cipher_find(const char *name, size_t len);

/* Decrypts (and, for AEAD ciphers, authenticates) len bytes of in into out
 * (len bytes). keyiv holds key_len + iv_len bytes. A tag that does not
 * verify gives SHOAL_ERR_BAD_PASSPHRASE (the usual cause). */
int shoal_keyfile_cipher_decrypt(const shoal_keyfile_cipher *c, const uint8_t *keyiv, const uint8_t *in, size_t len,
                           const uint8_t *tag, uint8_t *out);

#endif
