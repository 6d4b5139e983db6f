/* Fuzzes the encrypted packet decoder: the receive path of
 * src/transport/packet.c (peek at the length, check it against the cap and
 * the cipher's alignment before reading on, authenticate and decrypt, check
 * the padding) over shoal_pktcrypt, for one construction of each kind.
 *
 * Input: byte 0 selects the cipher (bits 0-1) and the mode (bits 2-3):
 *  - decode: the rest is a received byte stream, optionally preceded by one
 *    valid packet so the fuzzed bytes meet a context that has moved on;
 *  - round trip: the rest (after one byte of padding choice) is a payload,
 *    sealed into two packets with a sending context. Opening them must give
 *    the payloads back, and a copy with one bit flipped must not open: any
 *    failure there is a real bug and aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cipher.h"
#include "shoal/error.h"
#include "wire/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

typedef struct combo {
    const char *cipher, *mac;
} combo;

static const combo combos[4] = {
    {"chacha20-poly1305@openssh.com", NULL},
    {"aes128-gcm@openssh.com", NULL},
    {"aes128-ctr", "hmac-sha2-256"},
    {"aes256-ctr", "hmac-sha2-512-etm@openssh.com"},
};

/* Fixed keys: the fuzzer explores packet structure, not key schedules. */
static shoal_pktcrypt *make(const combo *c, int encrypt)
{
    uint8_t key[64], iv[16], mac_key[64];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0x11 * i + 3);
    for (size_t i = 0; i < sizeof(iv); i++)
        iv[i] = (uint8_t)(0xa5 ^ i);
    for (size_t i = 0; i < sizeof(mac_key); i++)
        mac_key[i] = (uint8_t)(0x3c + 7 * i);
    const shoal_cipher_alg *ca = shoal_cipher_find(c->cipher);
    const shoal_mac_alg *ma = c->mac ? shoal_mac_find(c->mac) : NULL;
    shoal_pktcrypt *pc = NULL;
    if (!ca || (c->mac && !ma) || shoal_pktcrypt_new(&pc, ca, ma, key, iv, mac_key, encrypt) != 0)
        abort();
    return pc;
}

/* Appends one sealed packet carrying payload to wire at *off (wire has room
 * for it: see packet_room). extra_blocks adds padding blocks beyond the
 * minimum, as a peer may (RFC 4253 6: up to 255 bytes). */
static void seal_packet(shoal_pktcrypt *tx, uint32_t seq, const uint8_t *payload, size_t n, unsigned extra_blocks,
                        uint8_t *wire, size_t *off)
{
    size_t block = shoal_pktcrypt_block_len(tx);
    size_t unpadded = (shoal_pktcrypt_length_in_clear(tx) ? 1 : 5) + n;
    size_t pad = block - (unpadded % block);
    if (pad < 4)
        pad += block;
    while (extra_blocks-- && pad + block <= 255)
        pad += block;
    uint8_t *p = wire + *off;
    size_t plen = 1 + n + pad;
    shoal_store_u32(p, (uint32_t)plen);
    p[4] = (uint8_t)pad;
    memcpy(p + 5, payload, n);
    for (size_t i = 0; i < pad; i++)
        p[5 + n + i] = (uint8_t)(i * 31);
    if (shoal_pktcrypt_seal(tx, seq, p, 4 + plen, p + 4 + plen) != 0)
        abort();
    *off += 4 + plen + shoal_pktcrypt_tag_len(tx);
}

static size_t packet_room(size_t n)
{
    return 4 + 1 + n + 255 + 64;
}

typedef struct decoded {
    const uint8_t *payload[2];
    size_t len[2];
} decoded;

/* The transport's receive loop over a buffer. Returns the number of
 * packets opened; *failed is set where the transport would close the
 * session (stopping for lack of bytes is not a failure). Payloads are
 * recorded (the first two) and read in full so ASan sees their bounds. */
static int decode(shoal_pktcrypt *rx, uint32_t seq, uint8_t *buf, size_t len, decoded *out, int *failed)
{
    size_t off = 0, block = shoal_pktcrypt_block_len(rx), tag = shoal_pktcrypt_tag_len(rx);
    size_t first = shoal_pktcrypt_first_len(rx);
    int clear = shoal_pktcrypt_length_in_clear(rx);
    int count = 0;
    *failed = 0;
    for (;;) {
        uint8_t *p = buf + off;
        size_t avail = len - off;
        if (avail < first)
            return count;
        uint32_t plen;
        /* Length checks come before waiting for (or touching) the rest. */
        if (shoal_pktcrypt_peek_length(rx, seq, p, &plen) != 0 || plen < 5 || plen > SHOAL_MAX_PACKET - 4 ||
            (clear ? plen : plen + 4) % block != 0) {
            *failed = 1;
            return count;
        }
        size_t total = 4 + (size_t)plen + tag;
        if (avail < total)
            return count;
        if (shoal_pktcrypt_open(rx, seq, p, 4 + (size_t)plen, p + 4 + plen) != 0 || p[4] < 4 ||
            (size_t)p[4] + 1 >= plen) {
            *failed = 1;
            return count;
        }
        uint8_t padlen = p[4];
        size_t n = plen - padlen - 1;
        size_t acc = 0;
        for (size_t i = 0; i < n; i++)
            acc += p[5 + i];
        sink += acc;
        if (out && count < 2) {
            out->payload[count] = p + 5;
            out->len[count] = n;
        }
        count++;
        seq++;
        off += total;
    }
}

static void run_decode(const combo *c, int prefix, const uint8_t *data, size_t size)
{
    const uint8_t hello[] = {2, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    size_t room = (prefix ? packet_room(sizeof(hello)) : 0) + size;
    uint8_t *buf = malloc(room ? room : 1);
    if (!buf)
        return;
    size_t off = 0;
    if (prefix) {
        shoal_pktcrypt *tx = make(c, 1);
        seal_packet(tx, 0, hello, sizeof(hello), 0, buf, &off);
        shoal_pktcrypt_free(tx);
    }
    memcpy(buf + off, data, size);
    /* Shrink to the exact length so any overread is out of bounds. */
    uint8_t *exact = malloc(off + size ? off + size : 1);
    if (exact) {
        memcpy(exact, buf, off + size);
        shoal_pktcrypt *rx = make(c, 0);
        int failed;
        int got = decode(rx, 0, exact, off + size, NULL, &failed);
        if (prefix && got == 0)
            abort(); /* the valid leading packet must open */
        shoal_pktcrypt_free(rx);
        free(exact);
    }
    free(buf);
}

static void run_roundtrip(const combo *c, const uint8_t *data, size_t size)
{
    unsigned extra = size ? data[0] % 8 : 0;
    const uint8_t *payload = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0;
    uint8_t one = 0;
    if (n == 0) {
        payload = &one; /* a payload has at least its type byte */
        n = 1;
    }
    if (n > 35000)
        n = 35000; /* RFC 4253 6.1's guaranteed size is plenty */
    size_t n2 = (n + 1) / 2;
    size_t room = packet_room(n) + packet_room(n2);
    uint8_t *wire = malloc(room), *copy = malloc(room);
    if (!wire || !copy)
        abort();
    size_t len = 0;
    shoal_pktcrypt *tx = make(c, 1);
    seal_packet(tx, 0, payload, n, extra, wire, &len);
    size_t first_len = len;
    seal_packet(tx, 1, payload + (n - n2), n2, extra / 2, wire, &len);
    shoal_pktcrypt_free(tx);
    memcpy(copy, wire, len);

    decoded d;
    memset(&d, 0, sizeof(d));
    int failed;
    shoal_pktcrypt *rx = make(c, 0);
    if (decode(rx, 0, wire, len, &d, &failed) != 2 || failed || d.len[0] != n || d.len[1] != n2 ||
        memcmp(d.payload[0], payload, n) != 0 || memcmp(d.payload[1], payload + (n - n2), n2) != 0)
        abort();
    shoal_pktcrypt_free(rx);

    /* One flipped bit anywhere in the first packet (length, body or tag):
     * that packet must not come out. */
    size_t h = n * 2654435761u;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + payload[i];
    size_t bit = h % (first_len * 8);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    rx = make(c, 0);
    if (decode(rx, 0, copy, len, NULL, &failed) != 0)
        abort();
    shoal_pktcrypt_free(rx);
    free(wire);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const combo *c = &combos[data[0] & 3];
    unsigned mode = (data[0] >> 2) & 3;
    if (mode == 0 || mode == 1)
        run_decode(c, mode == 1, data + 1, size - 1);
    else
        run_roundtrip(c, data + 1, size - 1);
    return 0;
}
