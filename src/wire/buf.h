/* Checked buffers for the SSH wire format (RFC 4251 section 5).
 *
 * shoal_buf is a growable output buffer with a hard size cap; shoal_rd is a
 * bounded read cursor over borrowed bytes. Every getter checks the bytes left,
 * zeroes its outputs on failure and never allocates: strings are returned as
 * pointers into the input (zero copy), nested strings as sub-readers.
 * Pattern after OpenSSH's sshbuf and picotls' decode blocks. */
#ifndef SHOAL_WIRE_BUF_H
#define SHOAL_WIRE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"

/* Hard ceiling for any single buffer unless the owner asks for more. */
#define SHOAL_BUF_DEFAULT_MAX (1u << 20)
/* Largest SSH packet we accept or build (RFC 4253 6.1 requires 35000). */
#define SHOAL_MAX_PACKET (256u * 1024u)
/* Server: what a client may send while its authentication is being decided
 * (held unread, RFC 4252 5.1): pipelined connection messages, not more. */
#define SHOAL_MAX_HELD_INPUT (64u * 1024u)
/* Largest name-list we accept from a peer, and most names in it. */
#define SHOAL_MAX_NAMELIST 8192u
#define SHOAL_MAX_NAMES 128u
/* Largest mpint magnitude we accept (DH group18 is 8192 bits). */
#define SHOAL_MAX_MPINT_BYTES 1025u

typedef struct shoal_buf {
    uint8_t *data;
    size_t len; /* bytes in use */
    size_t off; /* bytes already consumed from the front */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len - off; 0 means SHOAL_BUF_DEFAULT_MAX */
} shoal_buf;

#define SHOAL_BUF_INIT {NULL, 0, 0, 0, 0}

void shoal_buf_init(shoal_buf *b, size_t max);
/* Wipes and frees the storage; the buffer is reusable afterwards. */
void shoal_buf_free(shoal_buf *b);
/* Drops the contents (wiping them) but keeps the storage. */
void shoal_buf_reset(shoal_buf *b);

static inline const uint8_t *shoal_buf_ptr(const shoal_buf *b) { return b->data ? b->data + b->off : NULL; }
static inline uint8_t *shoal_buf_mutptr(shoal_buf *b) { return b->data ? b->data + b->off : NULL; }
static inline size_t shoal_buf_len(const shoal_buf *b) { return b->len - b->off; }

/* Makes room for n more bytes and returns a pointer to them (len grows by n). */
int shoal_buf_reserve(shoal_buf *b, size_t n, uint8_t **out);
/* Drops n bytes from the front. */
void shoal_buf_consume(shoal_buf *b, size_t n);
/* Drops bytes from the end so that len becomes n. */
void shoal_buf_truncate(shoal_buf *b, size_t n);

int shoal_buf_put(shoal_buf *b, const void *p, size_t n);
int shoal_buf_put_u8(shoal_buf *b, uint8_t v);
int shoal_buf_put_bool(shoal_buf *b, int v);
int shoal_buf_put_u32(shoal_buf *b, uint32_t v);
int shoal_buf_put_u64(shoal_buf *b, uint64_t v);
/* uint32 length + bytes */
int shoal_buf_put_string(shoal_buf *b, const void *p, size_t n);
int shoal_buf_put_cstring(shoal_buf *b, const char *s);
/* An mpint from an unsigned big-endian magnitude (leading zeros stripped,
 * a 0x00 prepended when the top bit is set). */
int shoal_buf_put_mpint(shoal_buf *b, const uint8_t *mag, size_t n);
/* Starts a string whose length is patched by shoal_buf_end_string(). */
int shoal_buf_begin_string(shoal_buf *b, size_t *mark);
void shoal_buf_end_string(shoal_buf *b, size_t mark);

static inline uint32_t shoal_load_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void shoal_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- reader ---- */

typedef struct shoal_rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
} shoal_rd;

static inline void shoal_rd_init(shoal_rd *r, const void *p, size_t len)
{
    r->p = (const uint8_t *)p;
    r->len = p ? len : 0;
    r->pos = 0;
}
static inline size_t shoal_rd_left(const shoal_rd *r) { return r->len - r->pos; }
static inline const uint8_t *shoal_rd_cur(const shoal_rd *r) { return r->p + r->pos; }

int shoal_rd_u8(shoal_rd *r, uint8_t *v);
/* RFC 4251: any non-zero value is true. */
int shoal_rd_bool(shoal_rd *r, int *v);
int shoal_rd_u32(shoal_rd *r, uint32_t *v);
int shoal_rd_u64(shoal_rd *r, uint64_t *v);
int shoal_rd_bytes(shoal_rd *r, size_t n, const uint8_t **p);
int shoal_rd_skip(shoal_rd *r, size_t n);
/* A string, borrowed from the input. */
int shoal_rd_string(shoal_rd *r, const uint8_t **p, size_t *n);
/* A string that must not contain NUL bytes (names, user names, commands). */
int shoal_rd_cstring(shoal_rd *r, const char **p, size_t *n);
/* A nested string opened as its own reader. */
int shoal_rd_sub(shoal_rd *r, shoal_rd *sub);
/* A non-negative, minimally encoded mpint; returns the magnitude without
 * the sign byte. Capped at SHOAL_MAX_MPINT_BYTES. */
int shoal_rd_mpint(shoal_rd *r, const uint8_t **mag, size_t *n);
/* Same with an explicit cap on the magnitude (e.g. RSA moduli). */
int shoal_rd_mpint_max(shoal_rd *r, size_t max, const uint8_t **mag, size_t *n);
/* A name-list: printable US-ASCII, no empty names, no spaces, capped at
 * SHOAL_MAX_NAMELIST bytes and SHOAL_MAX_NAMES names. */
int shoal_rd_namelist(shoal_rd *r, const char **p, size_t *n);
/* SHOAL_ERR_TRAILING unless every byte was consumed. */
int shoal_rd_end(const shoal_rd *r);

/* ---- name-list helpers ---- */

/* Iterates comma-separated names: returns 1 and sets name/len while names remain. */
int shoal_namelist_next(const char **cursor, const char *end, const char **name, size_t *len);
/* 1 if the name-list (p,n) contains name exactly. */
int shoal_namelist_has(const char *p, size_t n, const char *name);
/* First name of ours (client order) that the peer list also contains
 * (RFC 4253 7.1). Copies it into out (NUL-terminated); SHOAL_ERR_NO_ALGORITHM if none. */
int shoal_namelist_choose(const char *ours, size_t ours_len, const char *theirs, size_t theirs_len,
                          char *out, size_t outsz);

/* Wipes memory in a way the compiler cannot elide (OPENSSL_cleanse). */
void shoal_wipe(void *p, size_t n);
/* Constant-time equality of two equal-length buffers: 1 when equal. */
int shoal_ct_equal(const void *a, const void *b, size_t n);

#endif
