/* libcrypto objects kept per thread.
 *
 * OpenSSL 3.0 looks a name up in its whole name map (a walk over every
 * algorithm name it knows, under a lock) for every new key context and every
 * key it builds from parts. In a fan-out the map is cold in the cache by the
 * time the next connection's packet arrives: ~10 us a walk on this machine,
 * against ~1 us when warm. Contexts that can serve any number of operations
 * are therefore made once per thread and kept here, freed when the thread
 * exits. Each slot holds one object of the type its comment names. */
#ifndef SHOAL_CRYPTO_KEPT_H
#define SHOAL_CRYPTO_KEPT_H

#include <openssl/types.h>

typedef enum shoal_kept_slot {
    SHOAL_KEPT_FROMDATA_X25519,   /* EVP_PKEY_CTX, fromdata-initialised, X25519 */
    SHOAL_KEPT_X25519_PEER,       /* EVP_PKEY: X25519 public, takes each peer's value */
    SHOAL_KEPT_X25519_BASE,       /* EVP_PKEY: X25519 public, the base point u = 9 */
    SHOAL_KEPT_FROMDATA_ED25519,  /* EVP_PKEY_CTX, fromdata-initialised, ED25519 */
    SHOAL_KEPT_FROMDATA_EC,       /* EVP_PKEY_CTX, fromdata-initialised, EC */
    SHOAL_KEPT_FROMDATA_RSA,      /* EVP_PKEY_CTX, fromdata-initialised, RSA */
    SHOAL_KEPT_COUNT
} shoal_kept_slot;

/* This thread's object in slot, or NULL when none is kept (yet). */
void *shoal__kept_get(shoal_kept_slot slot);

/* Keeps obj in the (empty) slot for this thread, which frees it at exit.
 * Returns 0 when it cannot: the caller still owns obj. */
int shoal__kept_set(shoal_kept_slot slot, void *obj);

/* A context for algorithm alg prepared by init (e.g. EVP_PKEY_fromdata_init):
 * this thread's one in slot, made and kept on first use; or, when it cannot be kept, a new one that *owned tells the caller
 * to free. NULL when libcrypto cannot make it. */
EVP_PKEY_CTX *shoal__kept_ctx(shoal_kept_slot slot, const char *alg, int (*init)(EVP_PKEY_CTX *), int *owned);

#endif
