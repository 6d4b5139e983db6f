/* Test-only entry points into kex.c. Not part of the kex.h contract and
 * never called by the library itself: they let unit tests pin a private key
 * (RFC 7748 test vectors) and inspect the DH exponent size. */
#ifndef SHOAL_CRYPTO_KEX_TEST_HOOKS_H
#define SHOAL_CRYPTO_KEX_TEST_HOOKS_H

#include "crypto/kex.h"

/* Like shoal_kex_keypair() but with a caller-chosen X25519 private key
 * (32 bytes, RFC 7748 little-endian scalar). SHOAL_ERR_UNSUPPORTED for any
 * other kind of method. */
int shoal_kex_test_keypair_from_private(const shoal_kex_alg *alg, const uint8_t *priv, size_t priv_len,
                                        shoal_kex_state **st, shoal_buf *pub_out);

/* Bit length of our DH private exponent; -1 if the state holds no DH key. */
int shoal_kex_test_dh_priv_bits(const shoal_kex_state *st);

#endif
