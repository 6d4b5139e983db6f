/* Algorithm implementations fetched from libcrypto once per process.
 *
 * In OpenSSL 3 every EVP_*_fetch (and every implicit fetch behind a name)
 * walks the provider name map under locks. A connection needs a cipher
 * twice per direction and a MAC per direction: for a fan-out of thousands of
 * connections that is a measurable share of the handshake's non-crypto
 * work. The objects below are fetched on first use and kept (never freed:
 * they belong to the default library context, which lives as long as the
 * process). Callers must not free what they get. */
#ifndef SHOAL_CRYPTO_FETCHED_H
#define SHOAL_CRYPTO_FETCHED_H

#include <openssl/evp.h>

/* The cipher for one of the libcrypto names our cipher table uses
 * ("ChaCha20", "AES-128-CTR", ...), or NULL for another name or when the
 * provider lacks it (the caller then fetches it itself, and fails there). */
EVP_CIPHER *shoal__fetched_cipher(const char *name);
/* Likewise for MACs ("HMAC", "POLY1305"); their callers treat NULL as the
 * provider lacking it. */
EVP_MAC *shoal__fetched_mac(const char *name);

#endif
