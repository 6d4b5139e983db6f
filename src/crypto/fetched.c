/* Process-wide cache of fetched libcrypto algorithms: see fetched.h. */
#include "crypto/fetched.h"

#include <string.h>

#include <openssl/crypto.h>

static const char *const cipher_names[] = {"ChaCha20",    "AES-128-CTR", "AES-192-CTR",
                                           "AES-256-CTR", "AES-128-GCM", "AES-256-GCM"};
static const char *const mac_names[] = {"HMAC", "POLY1305"};

#define N_CIPHERS (sizeof(cipher_names) / sizeof(cipher_names[0]))
#define N_MACS (sizeof(mac_names) / sizeof(mac_names[0]))

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static EVP_CIPHER *ciphers[N_CIPHERS];
static EVP_MAC *macs[N_MACS];

/* Fetched together, once: a few microseconds at the first connection. */
static void fetch_all(void)
{
    for (size_t i = 0; i < N_CIPHERS; i++)
        ciphers[i] = EVP_CIPHER_fetch(NULL, cipher_names[i], NULL);
    for (size_t i = 0; i < N_MACS; i++)
        macs[i] = EVP_MAC_fetch(NULL, mac_names[i], NULL);
}

/* Index of name in names (after the one fetch), or -1. */
static int lookup(const char *const *names, size_t n, const char *name)
{
    if (!name || !CRYPTO_THREAD_run_once(&once, fetch_all))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

EVP_CIPHER *shoal__fetched_cipher(const char *name)
{
    int i = lookup(cipher_names, N_CIPHERS, name);
    return i < 0 ? NULL : ciphers[i];
}

EVP_MAC *shoal__fetched_mac(const char *name)
{
    int i = lookup(mac_names, N_MACS, name);
    return i < 0 ? NULL : macs[i];
}
