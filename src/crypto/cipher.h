/* Packet protection for one direction of the SSH binary packet protocol
 * (RFC 4253 section 6, RFC 5647 / OpenSSH PROTOCOL for AES-GCM,
 * PROTOCOL.chacha20poly1305, and the -etm@openssh.com MACs).
 *
 * Packet layout handled here: the whole packet as it appears on the wire,
 *   uint32 packet_length | byte padding_length | payload | padding
 * followed by a tag of shoal_pktcrypt_tag_len() bytes (MAC or AEAD tag).
 *
 * Modes:
 *  - AEAD (chacha20-poly1305@openssh.com, aes*-gcm@openssh.com): the length
 *    is authenticated; for chacha it is encrypted with its own key, for GCM
 *    it is plaintext AAD. No separate MAC (mac == NULL).
 *  - Encrypt-then-MAC (*-etm@openssh.com): length in clear, rest encrypted,
 *    MAC over seq || length || ciphertext.
 *  - Encrypt-and-MAC (classic): everything encrypted, MAC over
 *    seq || plaintext packet.
 *
 * All primitives come from libcrypto; tags are compared in constant time;
 * keys are wiped when the context is freed. */
#ifndef SHOAL_CRYPTO_CIPHER_H
#define SHOAL_CRYPTO_CIPHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct shoal_cipher_alg {
    const char *name;   /* SSH name, e.g. "aes128-gcm@openssh.com" */
    size_t key_len;     /* bytes of encryption key to derive */
    size_t iv_len;      /* bytes of IV to derive (0 for chacha) */
    size_t block_len;   /* padding multiple (8 for chacha, 16 for AES) */
    size_t tag_len;     /* AEAD tag length, 0 when a MAC is used */
    int aead;           /* 1 when no separate MAC is negotiated */
    int id;             /* implementation detail */
} shoal_cipher_alg;

typedef struct shoal_mac_alg {
    const char *name;   /* e.g. "hmac-sha2-256-etm@openssh.com" */
    size_t key_len;
    size_t mac_len;
    int etm;
    int id;
} shoal_mac_alg;

/* Look-ups by SSH name; NULL when unknown. */
const shoal_cipher_alg *shoal_cipher_find(const char *name);
const shoal_mac_alg *shoal_mac_find(const char *name);

/* Default preference lists (OpenSSH 9 order) and every supported name. */
extern const char SHOAL_CIPHERS_DEFAULT[];
extern const char SHOAL_CIPHERS_ALL[];
extern const char SHOAL_MACS_DEFAULT[];
extern const char SHOAL_MACS_ALL[];

typedef struct shoal_pktcrypt shoal_pktcrypt;

/* Builds one direction's state. mac/mac_key are ignored for AEAD ciphers.
 * encrypt: 1 for sending, 0 for receiving. */
int shoal_pktcrypt_new(shoal_pktcrypt **out, const shoal_cipher_alg *cipher, const shoal_mac_alg *mac,
                       const uint8_t *key, const uint8_t *iv, const uint8_t *mac_key, int encrypt);
void shoal_pktcrypt_free(shoal_pktcrypt *pc);

/* Padding multiple for this direction. */
size_t shoal_pktcrypt_block_len(const shoal_pktcrypt *pc);
/* Bytes appended after the packet (MAC or tag). */
size_t shoal_pktcrypt_tag_len(const shoal_pktcrypt *pc);
/* 1 when packet_length is sent in clear (AES-GCM, -etm MACs) or encrypted
 * under its own key (chacha20-poly1305, as in OpenSSH's packet.c); the
 * padding then aligns padding_length||payload||padding instead of the whole
 * packet. */
int shoal_pktcrypt_length_in_clear(const shoal_pktcrypt *pc);
/* Bytes the receiver needs before it can learn packet_length
 * (4 for AEAD/EtM, block_len otherwise). */
size_t shoal_pktcrypt_first_len(const shoal_pktcrypt *pc);

/* Sender: encrypts pkt[0..len) in place (len = 4 + packet_length) and writes
 * the tag to tag_out (shoal_pktcrypt_tag_len bytes). */
int shoal_pktcrypt_seal(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag_out);

/* Receiver, step 1: given the first shoal_pktcrypt_first_len() bytes of a
 * packet, returns packet_length. May decrypt those bytes in place (the
 * context remembers that it did). Does NOT validate the length: the caller
 * checks it against its cap before reading more. */
int shoal_pktcrypt_peek_length(shoal_pktcrypt *pc, uint32_t seq, uint8_t *first, uint32_t *packet_length);

/* Receiver, step 2: verifies the tag over the whole packet (len = 4 +
 * packet_length bytes, starting with the bytes given to peek_length) and
 * decrypts it in place. Returns SHOAL_ERR_MAC on any authentication failure,
 * in which case the contents of pkt are unspecified. */
int shoal_pktcrypt_open(shoal_pktcrypt *pc, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag);

#endif
