/* KEXINIT encoding and algorithm negotiation (RFC 4253 7.1). */
#ifndef SHOAL_TRANSPORT_KEXINIT_H
#define SHOAL_TRANSPORT_KEXINIT_H

#include <stddef.h>

#include "wire/buf.h"

typedef struct shoal_session shoal_session;

enum {
    KEXINIT_KEX = 0,
    KEXINIT_HOSTKEY,
    KEXINIT_CIPHER_C2S,
    KEXINIT_CIPHER_S2C,
    KEXINIT_MAC_C2S,
    KEXINIT_MAC_S2C,
    KEXINIT_COMP_C2S,
    KEXINIT_COMP_S2C,
    KEXINIT_LANG_C2S,
    KEXINIT_LANG_S2C,
    KEXINIT_NLISTS
};

/* The name-lists of a KEXINIT payload, borrowed from it. */
typedef struct kexinit_lists {
    const char *list[KEXINIT_NLISTS];
    size_t len[KEXINIT_NLISTS];
    int first_follows;
} kexinit_lists;

/* Builds our KEXINIT payload (type byte first) into out. */
int shoal__kexinit_build(shoal_session *s, shoal_buf *out);
/* Parses a KEXINIT payload (type byte first). Every list is checked as a
 * name-list; trailing bytes are rejected. */
int shoal__kexinit_parse(const uint8_t *p, size_t n, kexinit_lists *kl);
/* Negotiation (the client's preference wins, RFC 4253 7.1): fills t->alg_*, t->kex_alg, strict and ext-info
 * flags. Fails the session (and returns the error) when nothing matches. */
int shoal__kexinit_negotiate(shoal_session *s, const kexinit_lists *mine, const kexinit_lists *peer);

#endif
