/* Key exchange primitives (RFC 4253 section 8, RFC 5656, RFC 8731, RFC 8268)
 * and key derivation (RFC 4253 section 7.2).
 *
 * Every method is reduced to keypair / shared-secret, as OpenSSH's kexgen.c
 * does, so the transport state machine has one code path:
 *   client: shoal_kex_keypair() -> send pub (Q_C or e) ; on reply:
 *           shoal_kex_shared(peer pub) -> K ; H = hash(...) ; derive keys
 *   server: receives peer pub, shoal_kex_keypair() + shoal_kex_shared().
 * The shared secret K is returned already encoded as an SSH mpint (the form
 * both the exchange hash and key derivation consume). */
#ifndef SHOAL_CRYPTO_KEX_H
#define SHOAL_CRYPTO_KEX_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

typedef struct shoal_kex_alg {
    const char *name;   /* "curve25519-sha256", "ecdh-sha2-nistp256", ... */
    int hash;           /* SHOAL_HASH_SHA256 / 384 / 512 */
    int kind;           /* SHOAL_KEX_X25519, SHOAL_KEX_ECDH, SHOAL_KEX_DH */
    int param;          /* curve NID or DH group number */
    int pub_is_mpint;   /* 1: public values travel as mpint (DH), 0: as string */
} shoal_kex_alg;

enum { SHOAL_HASH_SHA1 = 1, SHOAL_HASH_SHA256, SHOAL_HASH_SHA384, SHOAL_HASH_SHA512 };
enum { SHOAL_KEX_X25519 = 1, SHOAL_KEX_ECDH, SHOAL_KEX_DH };

#define SHOAL_HASH_MAX 64

const shoal_kex_alg *shoal_kex_find(const char *name);
extern const char SHOAL_KEX_DEFAULT[]; /* OpenSSH 9 order, ours only */
extern const char SHOAL_KEX_ALL[];

typedef struct shoal_kex_state shoal_kex_state;

/* Generates our ephemeral key; appends our public value to pub_out as raw
 * bytes (for DH: the unsigned big-endian magnitude of e or f; the caller
 * encodes it as mpint or string per alg->pub_is_mpint). */
int shoal_kex_keypair(const shoal_kex_alg *alg, shoal_kex_state **st, shoal_buf *pub_out);
/* Computes the shared secret from the peer's public value (raw bytes as
 * above) and appends it to K_out encoded as an SSH mpint. Validates the
 * peer value (point on curve; 1 < f < p-1 for DH; all-zero X25519 result
 * rejected). */
int shoal_kex_shared(shoal_kex_state *st, const uint8_t *peer, size_t peer_len, shoal_buf *K_out);
void shoal_kex_state_free(shoal_kex_state *st);

size_t shoal_hash_len(int hash);
/* out = HASH(data) */
int shoal_hash(int hash, const uint8_t *data, size_t len, uint8_t *out);

/* RFC 4253 7.2: fills out[0..need) with
 *   HASH(K || H || letter || session_id) || HASH(K || H || K1) || ...
 * K_mpint is K as encoded by shoal_kex_shared(). */
int shoal_kex_derive(int hash, const uint8_t *K_mpint, size_t K_len, const uint8_t *H, size_t H_len,
                     char letter, const uint8_t *session_id, size_t sid_len, uint8_t *out, size_t need);

/* Random bytes from libcrypto's CSPRNG. */
int shoal_random(void *out, size_t len);
/* Random bytes that are sent or padded, never kept secret (packet padding,
 * the KEXINIT cookie): served from a per-thread pool of shoal_random output. */
int shoal_random_public(void *out, size_t len);

#endif
