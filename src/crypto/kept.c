/* Per-thread libcrypto objects: see kept.h. */
#include "crypto/kept.h"

#include <pthread.h>

#include <openssl/evp.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t keys[SHOAL_KEPT_COUNT];
static int ready;

static void free_ctx(void *p)
{
    EVP_PKEY_CTX_free(p);
}

static void free_pkey(void *p)
{
    EVP_PKEY_free(p);
}

static void make_keys(void)
{
    for (int i = 0; i < SHOAL_KEPT_COUNT; i++)
        if (pthread_key_create(&keys[i], i == SHOAL_KEPT_X25519_PEER || i == SHOAL_KEPT_X25519_BASE ? free_pkey
                                                                                                    : free_ctx) != 0)
            return; /* ready stays 0: nothing is kept, every caller makes its own */
    ready = 1;
}

void *shoal__kept_get(shoal_kept_slot slot)
{
    if (slot < 0 || slot >= SHOAL_KEPT_COUNT || pthread_once(&once, make_keys) != 0 || !ready)
        return NULL;
    return pthread_getspecific(keys[slot]);
}

int shoal__kept_set(shoal_kept_slot slot, void *obj)
{
    if (slot < 0 || slot >= SHOAL_KEPT_COUNT || pthread_once(&once, make_keys) != 0 || !ready)
        return 0;
    return pthread_setspecific(keys[slot], obj) == 0;
}

EVP_PKEY_CTX *shoal__kept_ctx(shoal_kept_slot slot, const char *alg, int (*init)(EVP_PKEY_CTX *), int *owned)
{
    EVP_PKEY_CTX *ctx = shoal__kept_get(slot);
    *owned = 0;
    if (ctx)
        return ctx;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    if (!ctx || init(ctx) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    if (!shoal__kept_set(slot, ctx))
        *owned = 1;
    return ctx;
}
