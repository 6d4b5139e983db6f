/* Packet protection: round trips for every cipher x MAC, tamper detection at
 * every byte, known answers (draft-ietf-sshm-chacha20-poly1305 worked
 * example, the openssl command line for HMAC) and cross-checks against an
 * independent composition of one-shot libcrypto calls. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/cipher.h"
#include "shoal/error.h"
#include "wire/buf.h"

#define MAX_PAYLOAD 32768
#define BUF_LEN (MAX_PAYLOAD + 64 + 4 + 64)

/* One negotiated combination: an AEAD cipher alone or a CTR cipher + MAC. */
typedef struct combo {
    const shoal_cipher_alg *c;
    const shoal_mac_alg *m;
} combo;

typedef struct keyset {
    uint8_t key[64], iv[16], mac_key[64];
} keyset;

static void rnd(void *p, size_t n)
{
    assert_int_equal(RAND_bytes(p, (int)n), 1);
}

/* Splits a comma-separated name-list into names[]; returns the count. */
static size_t split_names(const char *list, char names[][64], size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (*p && n < max) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        assert_true(l > 0 && l < 64);
        memcpy(names[n], p, l);
        names[n][l] = 0;
        n++;
        p += l + (e ? 1 : 0);
    }
    return n;
}

static size_t all_combos(combo *out, size_t max)
{
    char cn[16][64], mn[16][64];
    size_t nc = split_names(SHOAL_CIPHERS_ALL, cn, 16), nm = split_names(SHOAL_MACS_ALL, mn, 16), n = 0;
    for (size_t i = 0; i < nc; i++) {
        const shoal_cipher_alg *c = shoal_cipher_find(cn[i]);
        assert_non_null(c);
        if (c->aead) {
            assert_true(n < max);
            out[n++] = (combo){c, NULL};
            continue;
        }
        for (size_t j = 0; j < nm; j++) {
            const shoal_mac_alg *m = shoal_mac_find(mn[j]);
            assert_non_null(m);
            assert_true(n < max);
            out[n++] = (combo){c, m};
        }
    }
    return n;
}

static shoal_pktcrypt *mk(const combo *cb, const keyset *k, int encrypt)
{
    shoal_pktcrypt *pc = NULL;
    assert_int_equal(shoal_pktcrypt_new(&pc, cb->c, cb->m, k->key, k->iv, k->mac_key, encrypt), 0);
    assert_non_null(pc);
    return pc;
}

/* Builds uint32 packet_length | byte padding_length | payload | padding with
 * the RFC 4253 rules: at least 4 bytes of padding, and the aligned part (the
 * whole packet, or everything after the length when length_in_clear) a
 * multiple of the block size. Returns the packet's total length. */
static size_t build_packet(const shoal_pktcrypt *pc, const uint8_t *payload, size_t plen, uint8_t *out)
{
    size_t bl = shoal_pktcrypt_block_len(pc);
    size_t skip = shoal_pktcrypt_length_in_clear(pc) ? 4 : 0;
    size_t pad = bl - ((4 + 1 + plen - skip) % bl);
    if (pad < 4)
        pad += bl;
    size_t len = 4 + 1 + plen + pad;
    shoal_store_u32(out, (uint32_t)(len - 4));
    out[4] = (uint8_t)pad;
    memcpy(out + 5, payload, plen);
    rnd(out + 5 + plen, pad);
    assert_int_equal((len - skip) % bl, 0);
    return len;
}

/* Receives one wire image (packet || tag) the way the transport will:
 * peek at the first bytes, then open the whole packet. */
static int receive(shoal_pktcrypt *rx, uint32_t seq, uint8_t *wire, size_t len, uint32_t *peeked)
{
    int rc = shoal_pktcrypt_peek_length(rx, seq, wire, peeked);
    if (rc != 0)
        return rc;
    return shoal_pktcrypt_open(rx, seq, wire, len, wire + len);
}

static void test_lists_and_lookup(void **st)
{
    (void)st;
    char names[16][64];
    size_t n = split_names(SHOAL_CIPHERS_DEFAULT, names, 16);
    assert_int_equal(n, 6);
    assert_string_equal(names[0], "chacha20-poly1305@openssh.com");
    for (size_t i = 0; i < n; i++)
        assert_non_null(shoal_cipher_find(names[i]));
    n = split_names(SHOAL_MACS_DEFAULT, names, 16);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(shoal_mac_find(names[i]));
        assert_null(strstr(names[i], "sha1"));
    }
    n = split_names(SHOAL_MACS_ALL, names, 16);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_non_null(shoal_mac_find(names[i]));
    assert_null(shoal_cipher_find("aes128-cbc"));
    assert_null(shoal_cipher_find("aes128-ctr "));
    assert_null(shoal_cipher_find(""));
    assert_null(shoal_cipher_find(NULL));
    assert_null(shoal_mac_find("hmac-md5"));
    assert_null(shoal_mac_find(NULL));

    const shoal_cipher_alg *c = shoal_cipher_find("chacha20-poly1305@openssh.com");
    assert_int_equal(c->key_len, 64);
    assert_int_equal(c->iv_len, 0);
    assert_int_equal(c->block_len, 8);
    assert_int_equal(c->tag_len, 16);
    assert_true(c->aead);
    c = shoal_cipher_find("aes256-gcm@openssh.com");
    assert_int_equal(c->key_len, 32);
    assert_int_equal(c->iv_len, 12);
    assert_true(c->aead);
    c = shoal_cipher_find("aes192-ctr");
    assert_int_equal(c->key_len, 24);
    assert_int_equal(c->iv_len, 16);
    assert_false(c->aead);
    const shoal_mac_alg *m = shoal_mac_find("hmac-sha2-512-etm@openssh.com");
    assert_int_equal(m->key_len, 64);
    assert_int_equal(m->mac_len, 64);
    assert_true(m->etm);
    m = shoal_mac_find("hmac-sha1");
    assert_int_equal(m->mac_len, 20);
    assert_false(m->etm);
}

static void test_geometry(void **st)
{
    (void)st;
    combo cb[32];
    size_t n = all_combos(cb, 32);
    assert_int_equal(n, 3 * 6 + 3);
    keyset k;
    rnd(&k, sizeof(k));
    for (size_t i = 0; i < n; i++) {
        shoal_pktcrypt *pc = mk(&cb[i], &k, 1);
        int etm = cb[i].m && cb[i].m->etm;
        assert_int_equal(shoal_pktcrypt_block_len(pc), cb[i].c->block_len);
        assert_int_equal(shoal_pktcrypt_tag_len(pc), cb[i].m ? cb[i].m->mac_len : 16);
        assert_int_equal(shoal_pktcrypt_length_in_clear(pc), cb[i].c->aead || etm);
        assert_int_equal(shoal_pktcrypt_first_len(pc), cb[i].c->aead || etm ? 4 : 16);
        shoal_pktcrypt_free(pc);
    }
}

static void test_roundtrip_all(void **st)
{
    (void)st;
    static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 100, 1000, 4096, MAX_PAYLOAD};
    /* Starting sequence numbers, including a run across the uint32 wrap. */
    static const uint32_t starts[] = {0, 3, 0xfffffffdu};
    combo cb[32];
    size_t n = all_combos(cb, 32);
    uint8_t *payload = malloc(MAX_PAYLOAD), *pkt = malloc(BUF_LEN), *orig = malloc(BUF_LEN);
    assert_non_null(payload);
    assert_non_null(pkt);
    assert_non_null(orig);
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
            keyset k;
            rnd(&k, sizeof(k));
            shoal_pktcrypt *tx = mk(&cb[i], &k, 1), *rx = mk(&cb[i], &k, 0);
            int clear_len = cb[i].m ? cb[i].m->etm : strstr(cb[i].c->name, "gcm") != NULL;
            uint32_t seq = starts[s];
            /* Several packets in a row on the same contexts: CTR keystream
             * and GCM IV counter must stay in step on both ends. */
            for (size_t rep = 0; rep < 2; rep++) {
                for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++, seq++) {
                    rnd(payload, sizes[z]);
                    size_t len = build_packet(tx, payload, sizes[z], pkt);
                    memcpy(orig, pkt, len);
                    assert_int_equal(shoal_pktcrypt_seal(tx, seq, pkt, len, pkt + len), 0);
                    if (clear_len)
                        assert_memory_equal(pkt, orig, 4); /* GCM / EtM */
                    else
                        assert_memory_not_equal(pkt, orig, 4);
                    assert_memory_not_equal(pkt + 5, orig + 5, len - 5);
                    uint32_t plen = 0;
                    assert_int_equal(receive(rx, seq, pkt, len, &plen), 0);
                    assert_int_equal(plen, len - 4);
                    assert_memory_equal(pkt, orig, len);
                    assert_int_equal(pkt[4], len - 5 - sizes[z]);
                    assert_memory_equal(pkt + 5, payload, sizes[z]);
                }
            }
            shoal_pktcrypt_free(tx);
            shoal_pktcrypt_free(rx);
        }
    }
    free(payload);
    free(pkt);
    free(orig);
}

/* open() without a prior peek_length, and a repeated peek, give the same
 * result (the classic CTR path must not advance its keystream twice). */
static void test_peek_variants(void **st)
{
    (void)st;
    combo cb[32];
    size_t n = all_combos(cb, 32);
    uint8_t payload[40], pkt[256], orig[256];
    for (size_t i = 0; i < n; i++) {
        keyset k;
        rnd(&k, sizeof(k));
        shoal_pktcrypt *tx = mk(&cb[i], &k, 1), *rx = mk(&cb[i], &k, 0);
        for (uint32_t seq = 10; seq < 16; seq++) {
            rnd(payload, sizeof(payload));
            size_t len = build_packet(tx, payload, sizeof(payload), pkt);
            memcpy(orig, pkt, len);
            assert_int_equal(shoal_pktcrypt_seal(tx, seq, pkt, len, pkt + len), 0);
            uint32_t a = 0, b = 0;
            switch (seq % 3) {
            case 0: /* no peek */
                break;
            case 1: /* one peek */
                assert_int_equal(shoal_pktcrypt_peek_length(rx, seq, pkt, &a), 0);
                assert_int_equal(a, len - 4);
                break;
            default: /* two peeks */
                assert_int_equal(shoal_pktcrypt_peek_length(rx, seq, pkt, &a), 0);
                assert_int_equal(shoal_pktcrypt_peek_length(rx, seq, pkt, &b), 0);
                assert_int_equal(a, len - 4);
                assert_int_equal(b, len - 4);
                break;
            }
            assert_int_equal(shoal_pktcrypt_open(rx, seq, pkt, len, pkt + len), 0);
            assert_memory_equal(pkt, orig, len);
        }
        shoal_pktcrypt_free(tx);
        shoal_pktcrypt_free(rx);
    }

    /* chacha caches the peeked length; open() of a different (authentic)
     * packet under the same seq must not reuse it. */
    combo cc = {shoal_cipher_find("chacha20-poly1305@openssh.com"), NULL};
    keyset k;
    rnd(&k, sizeof(k));
    shoal_pktcrypt *tx1 = mk(&cc, &k, 1), *tx2 = mk(&cc, &k, 1), *rx = mk(&cc, &k, 0);
    uint8_t other[256];
    rnd(payload, sizeof(payload));
    size_t len1 = build_packet(tx1, payload, 8, pkt);
    size_t len2 = build_packet(tx2, payload, sizeof(payload), other);
    memcpy(orig, other, len2);
    assert_int_not_equal(len1, len2);
    assert_int_equal(shoal_pktcrypt_seal(tx1, 9, pkt, len1, pkt + len1), 0);
    assert_int_equal(shoal_pktcrypt_seal(tx2, 9, other, len2, other + len2), 0);
    uint32_t plen = 0;
    assert_int_equal(shoal_pktcrypt_peek_length(rx, 9, pkt, &plen), 0);
    assert_int_equal(plen, len1 - 4);
    assert_int_equal(shoal_pktcrypt_open(rx, 9, other, len2, other + len2), 0);
    assert_memory_equal(other, orig, len2);
    shoal_pktcrypt_free(tx1);
    shoal_pktcrypt_free(tx2);
    shoal_pktcrypt_free(rx);
}

/* Flips one bit in every byte of packet and tag, each time on a fresh
 * receiver; every change must be caught. For classic encrypt-and-MAC the
 * caller reads as many bytes as peek_length says, so a changed length is
 * caught there (it would read the wrong amount and then fail the MAC). */
static void test_tamper_every_byte(void **st)
{
    (void)st;
    combo cb[32];
    size_t n = all_combos(cb, 32);
    uint8_t payload[11], pkt[256], wire[256];
    for (size_t i = 0; i < n; i++) {
        keyset k;
        rnd(&k, sizeof(k));
        shoal_pktcrypt *tx = mk(&cb[i], &k, 1);
        rnd(payload, sizeof(payload));
        const uint32_t seq = 5;
        size_t len = build_packet(tx, payload, sizeof(payload), pkt);
        size_t tl = shoal_pktcrypt_tag_len(tx);
        int classic = !shoal_pktcrypt_length_in_clear(tx);
        assert_int_equal(shoal_pktcrypt_seal(tx, seq, pkt, len, pkt + len), 0);
        shoal_pktcrypt_free(tx);

        for (size_t pos = 0; pos < len + tl; pos++) {
            memcpy(wire, pkt, len + tl);
            wire[pos] ^= (uint8_t)(1u << (pos % 8));
            shoal_pktcrypt *rx = mk(&cb[i], &k, 0);
            uint32_t plen = 0;
            assert_int_equal(shoal_pktcrypt_peek_length(rx, seq, wire, &plen), 0);
            if (classic && plen != len - 4) {
                assert_true(pos < 4);
            } else {
                assert_int_equal(shoal_pktcrypt_open(rx, seq, wire, len, wire + len), SHOAL_ERR_MAC);
            }
            shoal_pktcrypt_free(rx);
        }

        /* Wrong sequence number (GCM has its own nonce counter and ignores
         * it) and wrong key fail too; the untouched packet still opens. */
        shoal_pktcrypt *rx = mk(&cb[i], &k, 0);
        uint32_t plen;
        memcpy(wire, pkt, len + tl);
        if (!strstr(cb[i].c->name, "gcm"))
            assert_true(receive(rx, seq + 1, wire, len, &plen) == SHOAL_ERR_MAC || plen != len - 4);
        shoal_pktcrypt_free(rx);
        keyset k2 = k;
        k2.key[3] ^= 1;
        k2.mac_key[0] ^= 1;
        rx = mk(&cb[i], &k2, 0);
        memcpy(wire, pkt, len + tl);
        assert_true(receive(rx, seq, wire, len, &plen) == SHOAL_ERR_MAC || plen != len - 4);
        shoal_pktcrypt_free(rx);
        rx = mk(&cb[i], &k, 0);
        memcpy(wire, pkt, len + tl);
        assert_int_equal(receive(rx, seq, wire, len, &plen), 0);
        assert_memory_equal(wire + 5, payload, sizeof(payload));
        shoal_pktcrypt_free(rx);
    }
}

static void test_misuse(void **st)
{
    (void)st;
    keyset k;
    rnd(&k, sizeof(k));
    shoal_pktcrypt *pc = (shoal_pktcrypt *)(uintptr_t)1; /* must be overwritten with NULL */
    const shoal_cipher_alg *ctr = shoal_cipher_find("aes128-ctr");
    const shoal_cipher_alg *gcm = shoal_cipher_find("aes128-gcm@openssh.com");
    const shoal_mac_alg *mac = shoal_mac_find("hmac-sha2-256");
    assert_int_equal(shoal_pktcrypt_new(&pc, ctr, NULL, k.key, k.iv, k.mac_key, 1), SHOAL_ERR_INVALID_ARG);
    assert_null(pc);
    assert_int_equal(shoal_pktcrypt_new(&pc, ctr, mac, k.key, NULL, k.mac_key, 1), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_pktcrypt_new(&pc, NULL, mac, k.key, k.iv, k.mac_key, 1), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_pktcrypt_new(NULL, ctr, mac, k.key, k.iv, k.mac_key, 1), SHOAL_ERR_INVALID_ARG);
    shoal_pktcrypt_free(NULL);

    /* AEAD ignores the MAC arguments entirely. */
    assert_int_equal(shoal_pktcrypt_new(&pc, gcm, mac, k.key, k.iv, NULL, 1), 0);
    assert_int_equal(shoal_pktcrypt_tag_len(pc), 16);
    uint8_t pkt[64 + 16] = {0};
    uint32_t plen;
    shoal_store_u32(pkt, 32 - 4);
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, pkt, 32, pkt + 32), SHOAL_ERR_INVALID_ARG); /* 28 % 16 */
    shoal_store_u32(pkt, 36 - 4);
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, pkt, 36, pkt + 36), 0);
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, pkt, 52, pkt + 52), SHOAL_ERR_INVALID_ARG); /* length field */
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, pkt, 0, pkt), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, NULL, 36, pkt), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_pktcrypt_open(pc, 0, pkt, 36, pkt + 36), SHOAL_ERR_INVALID_ARG); /* sender */
    assert_int_equal(shoal_pktcrypt_peek_length(pc, 0, pkt, &plen), SHOAL_ERR_INVALID_ARG);
    shoal_pktcrypt_free(pc);

    assert_int_equal(shoal_pktcrypt_new(&pc, ctr, mac, k.key, k.iv, k.mac_key, 0), 0);
    shoal_store_u32(pkt, 40 - 4);
    assert_int_equal(shoal_pktcrypt_seal(pc, 0, pkt, 40, pkt + 40), SHOAL_ERR_INVALID_ARG); /* receiver */
    assert_int_equal(shoal_pktcrypt_open(pc, 0, pkt, 40, pkt + 40), SHOAL_ERR_INVALID_ARG); /* 40 % 16 */
    assert_int_equal(shoal_pktcrypt_open(pc, 0, pkt, 0, pkt), SHOAL_ERR_INVALID_ARG);
    shoal_pktcrypt_free(pc);
}

/* ---- known answers and independent compositions ---- */

static void hex2bin(const char *hex, uint8_t *out, size_t *n)
{
    size_t l = strlen(hex);
    assert_int_equal(l % 2, 0);
    for (size_t i = 0; i < l / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *n = l / 2;
}

/* draft-ietf-sshm-chacha20-poly1305-04, Appendix A: 64 bytes of key
 * material, sequence number 7, one packet in the clear and as sent. */
static void test_chachapoly_draft_vector(void **st)
{
    (void)st;
    uint8_t km[64], plain[128], sent[128], pkt[128];
    size_t kn, pn, sn;
    hex2bin("8bbff6855fc102338c373e73aac0c914f076a905b2444a32eecaffeae22becc5"
            "e9b7a7a5825a8249346ec1c28301cf394543fc7569887d76e168f37562ac0740",
            km, &kn);
    hex2bin("00000048065e00000000000000384c6f72656d20697073756d20646f6c6f7220"
            "73697420616d65742c20636f6e73656374657475722061646970697369636"
            "96e6720656c69744e43e804dc6c",
            plain, &pn);
    hex2bin("2c3ecce4a5bc05895bf07a7ba956b6c68829ac7c83b780b7000ecde745afc705"
            "bbc378ce03a280236b87b53bed5839662302b164b6286a48cd1e097138e3cb90"
            "9b8b2b829dd18d2a35ff82d995349e855bf02c298ef775f2d1a7e8b8",
            sent, &sn);
    assert_int_equal(kn, 64);
    assert_int_equal(pn, 76);
    assert_int_equal(sn, 76 + 16);
    combo cb = {shoal_cipher_find("chacha20-poly1305@openssh.com"), NULL};
    keyset k = {0};
    memcpy(k.key, km, 64);
    shoal_pktcrypt *tx = mk(&cb, &k, 1), *rx = mk(&cb, &k, 0);
    memcpy(pkt, plain, pn);
    assert_int_equal(shoal_pktcrypt_seal(tx, 7, pkt, pn, pkt + pn), 0);
    assert_memory_equal(pkt, sent, sn);
    uint32_t plen;
    assert_int_equal(receive(rx, 7, pkt, pn, &plen), 0);
    assert_int_equal(plen, 72);
    assert_memory_equal(pkt, plain, pn);
    shoal_pktcrypt_free(tx);
    shoal_pktcrypt_free(rx);
}

/* ChaCha20 keystream through a fresh context: OpenSSL's 16-byte IV is the
 * 64-bit little-endian block counter then the 64-bit big-endian seq. */
static void ref_chacha(const uint8_t key[32], uint64_t seq, uint64_t counter, uint8_t *buf, size_t n)
{
    uint8_t iv[16];
    for (int i = 0; i < 8; i++) {
        iv[i] = (uint8_t)(counter >> (8 * i));
        iv[8 + i] = (uint8_t)(seq >> (8 * (7 - i)));
    }
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    assert_non_null(c);
    assert_int_equal(EVP_EncryptInit_ex2(c, EVP_chacha20(), key, iv, NULL), 1);
    assert_int_equal(EVP_EncryptUpdate(c, buf, &outl, buf, (int)n), 1);
    assert_int_equal(outl, (int)n);
    EVP_CIPHER_CTX_free(c);
}

/* Poly1305 through the EVP_PKEY / DigestSign path (the module uses EVP_MAC). */
static void ref_poly1305(const uint8_t key[32], const uint8_t *msg, size_t n, uint8_t tag[16])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_POLY1305, NULL, key, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t tl = 16;
    assert_non_null(pk);
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(md, tag, &tl, msg, n), 1);
    assert_int_equal(tl, 16);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
}

static void test_chachapoly_composition(void **st)
{
    (void)st;
    static const uint32_t seqs[] = {0, 1, 2, 0x01020304u, 0xfffffffeu, 0xffffffffu};
    combo cb = {shoal_cipher_find("chacha20-poly1305@openssh.com"), NULL};
    keyset k;
    rnd(&k, sizeof(k));
    shoal_pktcrypt *tx = mk(&cb, &k, 1);
    uint8_t *payload = malloc(5000), *pkt = malloc(5200), *ref = malloc(5200);
    assert_non_null(payload);
    assert_non_null(pkt);
    assert_non_null(ref);
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        size_t plen = i * 997 % 5000;
        rnd(payload, plen);
        size_t len = build_packet(tx, payload, plen, pkt);
        memcpy(ref, pkt, len);
        assert_int_equal(shoal_pktcrypt_seal(tx, seqs[i], pkt, len, pkt + len), 0);

        /* K_2 = key[0..32), K_1 = key[32..64). */
        uint8_t poly_key[32] = {0};
        ref_chacha(k.key + 32, seqs[i], 0, ref, 4);
        ref_chacha(k.key, seqs[i], 0, poly_key, 32);
        ref_chacha(k.key, seqs[i], 1, ref + 4, len - 4);
        ref_poly1305(poly_key, ref, len, ref + len);
        assert_memory_equal(pkt, ref, len + 16);
    }
    shoal_pktcrypt_free(tx);
    free(payload);
    free(pkt);
    free(ref);
}

/* AES-CTR keystream at a block offset from the IV (128-bit big-endian add),
 * through a fresh context each time. */
static void ref_ctr(const shoal_cipher_alg *c, const uint8_t *key, const uint8_t iv0[16], uint64_t blocks,
                    uint8_t *buf, size_t n)
{
    uint8_t iv[16];
    memcpy(iv, iv0, 16);
    unsigned carry = 0;
    for (int i = 15; i >= 0; i--) {
        unsigned add = (i >= 8 ? (unsigned)((blocks >> (8 * (15 - i))) & 0xff) : 0) + carry;
        unsigned v = iv[i] + add;
        iv[i] = (uint8_t)v;
        carry = v >> 8;
    }
    const EVP_CIPHER *e = c->key_len == 16   ? EVP_aes_128_ctr()
                          : c->key_len == 24 ? EVP_aes_192_ctr()
                                             : EVP_aes_256_ctr();
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int outl = 0;
    assert_non_null(x);
    assert_int_equal(EVP_EncryptInit_ex2(x, e, key, iv, NULL), 1);
    assert_int_equal(EVP_EncryptUpdate(x, buf, &outl, buf, (int)n), 1);
    EVP_CIPHER_CTX_free(x);
}

static void ref_hmac(const shoal_mac_alg *m, const uint8_t *key, uint32_t seq, const uint8_t *pkt, size_t len,
                     uint8_t *out)
{
    const char *dg = m->mac_len == 20 ? "SHA1" : m->mac_len == 32 ? "SHA256" : "SHA512";
    uint8_t *msg = malloc(len + 4);
    size_t ol = 0;
    assert_non_null(msg);
    shoal_store_u32(msg, seq);
    memcpy(msg + 4, pkt, len);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, dg, NULL, key, m->key_len, msg, len + 4, out, 64, &ol));
    assert_int_equal(ol, m->mac_len);
    free(msg);
}

/* Every CTR cipher x MAC against one-shot AES-CTR + HMAC, over several
 * packets so that the keystream offset carries between packets. */
static void test_ctr_mac_composition(void **st)
{
    (void)st;
    combo cb[32];
    size_t n = all_combos(cb, 32);
    uint8_t payload[300], pkt[512], ref[512], mac[64];
    for (size_t i = 0; i < n; i++) {
        if (cb[i].c->aead)
            continue;
        keyset k;
        rnd(&k, sizeof(k));
        /* An IV whose low 64 bits are about to wrap checks the full 128-bit
         * counter (RFC 4344: the whole IV is one big-endian integer). */
        memset(k.iv + 8, 0xff, 7);
        shoal_pktcrypt *tx = mk(&cb[i], &k, 1);
        uint64_t blocks = 0;
        for (uint32_t seq = 0x7ffffffe; seq < 0x80000004; seq++) {
            size_t plen = (seq * 37u) % sizeof(payload);
            rnd(payload, plen);
            size_t len = build_packet(tx, payload, plen, pkt);
            memcpy(ref, pkt, len);
            assert_int_equal(shoal_pktcrypt_seal(tx, seq, pkt, len, pkt + len), 0);
            if (cb[i].m->etm) {
                /* CTR over everything after the clear length, MAC after. */
                assert_int_equal((len - 4) % 16, 0);
                ref_ctr(cb[i].c, k.key, k.iv, blocks, ref + 4, len - 4);
                blocks += (len - 4) / 16;
                ref_hmac(cb[i].m, k.mac_key, seq, ref, len, mac);
            } else {
                ref_hmac(cb[i].m, k.mac_key, seq, ref, len, mac);
                ref_ctr(cb[i].c, k.key, k.iv, blocks, ref, len);
                blocks += len / 16;
            }
            assert_memory_equal(pkt, ref, len);
            assert_memory_equal(pkt + len, mac, cb[i].m->mac_len);
        }
        shoal_pktcrypt_free(tx);
    }
}

/* AES-GCM against one-shot contexts: IV = fixed || counter, counter += 1 per
 * packet as a 64-bit big-endian integer that wraps without carrying into the
 * fixed field; packet_length is the AAD. */
static void test_gcm_composition(void **st)
{
    (void)st;
    const char *names[] = {"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"};
    uint8_t payload[200], pkt[512], ref[512], tag[16];
    for (size_t i = 0; i < 2; i++) {
        combo cb = {shoal_cipher_find(names[i]), NULL};
        keyset k;
        rnd(&k, sizeof(k));
        memset(k.iv + 4, 0xff, 8);
        k.iv[11] = 0xfe; /* counter ...fe, ...ff, then wraps to 0 */
        uint8_t fixed[4];
        memcpy(fixed, k.iv, 4);
        shoal_pktcrypt *tx = mk(&cb, &k, 1);
        for (unsigned p = 0; p < 5; p++) {
            size_t plen = p * 41 % sizeof(payload);
            rnd(payload, plen);
            size_t len = build_packet(tx, payload, plen, pkt);
            memcpy(ref, pkt, len);
            /* seq deliberately unrelated: the GCM nonce ignores it. */
            assert_int_equal(shoal_pktcrypt_seal(tx, 1000 + 7 * p, pkt, len, pkt + len), 0);

            uint8_t iv[12];
            memcpy(iv, fixed, 4);
            uint64_t ctr = 0xfffffffffffffffeull + p; /* wraps mod 2^64 */
            for (int b = 0; b < 8; b++)
                iv[4 + b] = (uint8_t)(ctr >> (8 * (7 - b)));
            EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
            int outl = 0;
            assert_non_null(x);
            const EVP_CIPHER *e = i == 0 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
            assert_int_equal(EVP_EncryptInit_ex2(x, e, k.key, iv, NULL), 1);
            assert_int_equal(EVP_EncryptUpdate(x, NULL, &outl, ref, 4), 1);
            assert_int_equal(EVP_EncryptUpdate(x, ref + 4, &outl, ref + 4, (int)(len - 4)), 1);
            assert_int_equal(EVP_EncryptFinal_ex(x, ref + len, &outl), 1);
            assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag), 1);
            EVP_CIPHER_CTX_free(x);
            assert_memory_equal(pkt, ref, len);
            assert_memory_equal(pkt + len, tag, 16);
        }
        shoal_pktcrypt_free(tx);
    }
}

/* hmac-sha2-256 over seq || plaintext packet, checked against the openssl
 * command-line tool (a separate program and code path). */
static void test_hmac_openssl_cli(void **st)
{
    (void)st;
    if (!tu_have("openssl"))
        skip();
    combo cb = {shoal_cipher_find("aes128-ctr"), shoal_mac_find("hmac-sha2-256")};
    keyset k;
    rnd(&k, sizeof(k));
    shoal_pktcrypt *tx = mk(&cb, &k, 1);
    uint8_t payload[77], pkt[256], msg[260];
    rnd(payload, sizeof(payload));
    size_t len = build_packet(tx, payload, sizeof(payload), pkt);
    const uint32_t seq = 0x01020304;
    shoal_store_u32(msg, seq);
    memcpy(msg + 4, pkt, len);
    assert_int_equal(shoal_pktcrypt_seal(tx, seq, pkt, len, pkt + len), 0);
    shoal_pktcrypt_free(tx);

    char *dir = tu_mkdtemp(), in[600], out[600], hexkey[65];
    snprintf(in, sizeof(in), "%s/msg", dir);
    snprintf(out, sizeof(out), "%s/mac", dir);
    for (int i = 0; i < 32; i++)
        snprintf(hexkey + 2 * i, 3, "%02x", k.mac_key[i]);
    FILE *f = fopen(in, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(msg, 1, len + 4, f), len + 4);
    fclose(f);
    assert_int_equal(tu_system("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s -binary -out '%s' '%s'", hexkey,
                               out, in),
                     0);
    size_t ml = 0;
    uint8_t *want = tu_read_file(out, &ml);
    assert_non_null(want);
    assert_int_equal(ml, 32);
    assert_memory_equal(pkt + len, want, 32);
    free(want);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_and_lookup),   cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_roundtrip_all),      cmocka_unit_test(test_peek_variants),
        cmocka_unit_test(test_tamper_every_byte),  cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_chachapoly_draft_vector), cmocka_unit_test(test_chachapoly_composition),
        cmocka_unit_test(test_ctr_mac_composition), cmocka_unit_test(test_gcm_composition),
        cmocka_unit_test(test_hmac_openssl_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
