/* The transport layer's internals: message numbers, limits, packets, key
 * exchange, failure, and the hooks through which it reports to the layers
 * above. Private: only src/ includes this. It includes nothing of the
 * session, auth or connection layers (tests/CMakeLists.txt:
 * hygiene.core_layers checks). */
#ifndef SHOAL_TRANSPORT_TRANSPORT_IMPL_H
#define SHOAL_TRANSPORT_TRANSPORT_IMPL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/cipher.h"
#include "crypto/kex.h"
#include "shoal/session.h"
#include "wire/buf.h"
#include "shoal/version.h" /* SHOAL_VERSION_STRING, in our banner */

/* Message numbers (RFC 4250 4.1). */
enum {
    SSH_MSG_DISCONNECT = 1,
    SSH_MSG_IGNORE = 2,
    SSH_MSG_UNIMPLEMENTED = 3,
    SSH_MSG_DEBUG = 4,
    SSH_MSG_SERVICE_REQUEST = 5,
    SSH_MSG_SERVICE_ACCEPT = 6,
    SSH_MSG_EXT_INFO = 7,
    SSH_MSG_KEXINIT = 20,
    SSH_MSG_NEWKEYS = 21,
    SSH_MSG_KEX_ECDH_INIT = 30, /* also KEXDH_INIT */
    SSH_MSG_KEX_ECDH_REPLY = 31, /* also KEXDH_REPLY */
    SSH_MSG_USERAUTH_REQUEST = 50,
    SSH_MSG_USERAUTH_FAILURE = 51,
    SSH_MSG_USERAUTH_SUCCESS = 52,
    SSH_MSG_USERAUTH_BANNER = 53,
    SSH_MSG_USERAUTH_PK_OK = 60, /* also INFO_REQUEST, PASSWD_CHANGEREQ */
    SSH_MSG_USERAUTH_INFO_RESPONSE = 61,
    SSH_MSG_GLOBAL_REQUEST = 80,
    SSH_MSG_REQUEST_SUCCESS = 81,
    SSH_MSG_REQUEST_FAILURE = 82,
    SSH_MSG_CHANNEL_OPEN = 90,
    SSH_MSG_CHANNEL_OPEN_CONFIRMATION = 91,
    SSH_MSG_CHANNEL_OPEN_FAILURE = 92,
    SSH_MSG_CHANNEL_WINDOW_ADJUST = 93,
    SSH_MSG_CHANNEL_DATA = 94,
    SSH_MSG_CHANNEL_EXTENDED_DATA = 95,
    SSH_MSG_CHANNEL_EOF = 96,
    SSH_MSG_CHANNEL_CLOSE = 97,
    SSH_MSG_CHANNEL_REQUEST = 98,
    SSH_MSG_CHANNEL_SUCCESS = 99,
    SSH_MSG_CHANNEL_FAILURE = 100,
};

/* Disconnect reasons (RFC 4250 4.2.2). */
enum {
    SSH_DISCONNECT_PROTOCOL_ERROR = 2,
    SSH_DISCONNECT_KEY_EXCHANGE_FAILED = 3,
    SSH_DISCONNECT_MAC_ERROR = 5,
    SSH_DISCONNECT_SERVICE_NOT_AVAILABLE = 7,
    SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE = 9,
    SSH_DISCONNECT_BY_APPLICATION = 11,
    SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = 14,
};

/* Version exchange bounds: RFC 4253 4.2 says 255 bytes a line; we also cap
 * the lines a server may send before its version and their total size. */
#define SHOAL_BANNER_MAX_LINE 255u
#define SHOAL_BANNER_MAX_LINES 64u
#define SHOAL_BANNER_MAX_BYTES 16384u
/* Output is built in place; above this, channels stop being writable. */
#define SHOAL_OUT_HIGH_WATER (1u << 20)
/* Input is processed only while our unsent output (with what a key
 * exchange holds back) is below a mark, and the driver stops reading the
 * socket meanwhile: a peer that sends requests without reading the replies
 * (keepalives, unknown messages, auth attempts) cannot grow our memory
 * (CVE-2025-26466's class). Before authentication little output is
 * legitimate, so the mark is small. After it, replies get room above the
 * channels' high-water mark: bulk data both ways never pauses input, so two
 * peers that both obey it cannot wait on each other. */
#define SHOAL_IN_PAUSE_PREAUTH (256u << 10)
#define SHOAL_IN_PAUSE (2u * SHOAL_OUT_HIGH_WATER)
/* Payloads held back while a key exchange runs (RFC 4253 7.1). */
#define SHOAL_KEX_QUEUE_MAX (8u << 20)
#define SHOAL_DEFAULT_REKEY_BYTES (1ull << 30)
#define SHOAL_DEFAULT_REKEY_TIMEOUT_MS 60000u

/* ---- hooks: how the transport reports upward ----
 *
 * The transport never calls the layers above by name. The session installs
 * one constant table per role (src/session/hooks.c) and the transport calls
 * through it: one indirect call per packet, no allocation. */

/* A handler of the messages of one service. payload[0] is the type. */
typedef int (*shoal_msg_handler)(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);

/* Message number ranges (RFC 4250 4.1.2). The user authentication range
 * also takes SERVICE_REQUEST, SERVICE_ACCEPT and EXT_INFO (the service
 * request is authentication's, and EXT_INFO is read by it, RFC 8308). */
enum {
    SHOAL_SERVICE_USERAUTH = 0,   /* 50-79 (+ 5, 6, 7) */
    SHOAL_SERVICE_CONNECTION = 1, /* 80-127 */
    SHOAL_SERVICE_COUNT
};

typedef struct shoal_transport_hooks {
    /* Messages past the transport's own (1-49), by service. */
    shoal_msg_handler service[SHOAL_SERVICE_COUNT];
    /* A key exchange completed; first is 1 for the initial one (the phase
     * is then SHOAL_PHASE_AUTH already). */
    int (*kex_done)(shoal_session *s, int first);
    /* The initial NEWKEYS went out and the peer asked for EXT_INFO: it is
     * the first packet under the new keys (RFC 8308 2.4). May be NULL. */
    int (*newkeys_sent)(shoal_session *s);
    /* The session closed (once, before the application's closed callback). */
    void (*closed)(shoal_session *s);
} shoal_transport_hooks;

/* Which service a message number past 49 (or 5, 6, 7) belongs to. */
static inline int shoal__service_of(uint8_t type)
{
    return type >= SSH_MSG_GLOBAL_REQUEST ? SHOAL_SERVICE_CONNECTION : SHOAL_SERVICE_USERAUTH;
}

/* ---- the transport's part of the session ----
 *
 * The session object (src/session/) begins with this part, so
 * the transport reaches its state from a shoal_session * with shoal__tp()
 * without knowing the rest of the object. It also holds what every layer
 * reads: the role, the phase, whether and why the session closed, the
 * application's user data and the time. */
typedef struct shoal_transport {
    const shoal_transport_hooks *hooks; /* installed by src/session/hooks.c */
    int is_server;
    void *ud;
    int log_level;
    /* The application's callbacks the transport calls itself (copies). */
    void (*log_cb)(shoal_session *s, int level, const char *message, void *ud);
    void (*closed_cb)(shoal_session *s, int err, const char *message, void *ud);
    int (*hostkey_cb)(shoal_session *s, const shoal_hostkey_info *info, void *ud);

    /* configuration (owned copies) */
    char *kex_algs, *hostkey_algs, *ciphers, *macs;
    uint64_t rekey_bytes, rekey_interval_ms, rekey_timeout_ms;
    char *our_version; /* "SSH-2.0-..." without CRLF */
    shoal_key **host_keys; /* server: borrowed */
    unsigned n_host_keys;

    shoal_phase phase;
    int closed;
    int close_reported;
    int err;
    char errmsg[1200];
    uint64_t now;

    /* version exchange */
    char peer_version[SHOAL_BANNER_MAX_LINE + 1];
    char line[SHOAL_BANNER_MAX_LINE + 2];
    size_t line_len;
    unsigned banner_lines;
    size_t banner_bytes;
    int version_done;

    /* packet layer */
    shoal_buf in;  /* received, not yet processed */
    shoal_buf out; /* to send */
    shoal_pktcrypt *rx, *tx;
    uint32_t rx_seq, tx_seq;
    int rx_have_len;
    uint32_t rx_pkt_len;
    uint64_t rx_bytes, tx_bytes; /* since the last key exchange */
    uint64_t rx_packets_total;
    int processing;  /* inside shoal__process_packets */
    int hold_input;  /* server: an auth decision is deferred; what follows the request waits unread */

    /* key exchange */
    int kex_running;       /* we sent KEXINIT, NEWKEYS not yet received */
    int kexinit_sent, kexinit_received, newkeys_sent, newkeys_received;
    int first_kex_done;
    int strict;            /* both sides offered strict kex */
    int peer_ext_info;     /* server offered ext-info-s? (client: server sends EXT_INFO) */
    int ignore_next_kex_packet; /* first_kex_packet_follows with a wrong guess */
    int ext_info_next;          /* EXT_INFO may be the next packet (right after NEWKEYS) */
    int ext_info_in_auth_ok;    /* one more EXT_INFO may precede USERAUTH_SUCCESS */
    int ext_info_awaits_success; /* that EXT_INFO came: the next message must be USERAUTH_SUCCESS */
    int hostkey_answer;         /* answer given inside the hostkey callback */
    int in_hostkey_cb;
    unsigned kex_count;
    uint64_t last_kex_time;
    uint64_t kex_started_at;    /* when our KEXINIT went out (the rekey deadline) */
    shoal_buf my_kexinit, peer_kexinit;
    const shoal_kex_alg *kex_alg;
    char alg_kex[64], alg_hostkey[64], alg_cipher_c2s[64], alg_cipher_s2c[64], alg_mac_c2s[64],
        alg_mac_s2c[64];
    char cur_alg[6][64]; /* in force after NEWKEYS, for reporting */
    shoal_kex_state *kex_st;
    shoal_buf kex_pub;     /* our ephemeral public value (raw) */
    uint8_t H[SHOAL_HASH_MAX];
    size_t H_len;
    uint8_t session_id[SHOAL_HASH_MAX];
    size_t session_id_len;
    shoal_buf K;           /* shared secret, mpint-encoded (wiped) */
    shoal_pktcrypt *next_rx, *next_tx;
    shoal_buf kex_queue;   /* payloads held during kex: u32 len || payload */
    size_t kex_queue_n;    /* how many (each grows by a packet's overhead when sealed) */
    shoal_key *hostkey;    /* from the first kex */
    int hostkey_pending;   /* waiting for shoal_session_hostkey_reply */
} shoal_transport;

/* The transport's part of s (its first member, see above). */
static inline shoal_transport *shoal__tp(shoal_session *s)
{
    return (shoal_transport *)(void *)s;
}

static inline const shoal_transport *shoal__tp_c(const shoal_session *s)
{
    return (const shoal_transport *)(const void *)s;
}

/* Buffers and secrets of the part (session creation and free). */
void shoal__transport_init(shoal_transport *t);
void shoal__transport_free(shoal_session *s);

/* ---- shared internals (shoal__ prefix) ---- */

/* Logging and failure. */
void shoal__log(shoal_session *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Closes the session with err and a message; sends DISCONNECT when reason
 * is non-zero and keys allow. Returns err for convenient `return`. */
int shoal__fail(shoal_session *s, int err, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Packet building: begin reserves the header in the output buffer (the
 * part's out) and writes the type; append with shoal_buf_put_*() to it; end
 * pads, seals and counts. */
int shoal__pkt_begin(shoal_session *s, uint8_t type, size_t *mark);
int shoal__pkt_end(shoal_session *s, size_t mark);
/* Sends a complete payload (type byte first). */
int shoal__send_payload(shoal_session *s, const uint8_t *payload, size_t len);
int shoal__send_disconnect(shoal_session *s, uint32_t reason, const char *msg);

/* Transport. */
int shoal__recv_version(shoal_session *s, const uint8_t *in, size_t len, size_t *used);
int shoal__process_packets(shoal_session *s);
int shoal__kex_start(shoal_session *s);
int shoal__kex_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
int shoal__kex_resume_after_hostkey(shoal_session *s, int err);
int shoal__kex_is_msg(uint8_t type);
void shoal__kex_free(shoal_session *s);

/* Record the end of a kex for time-based rekeying and queued payloads. */
int shoal__kex_flush_queue(shoal_session *s);

/* 1 while input may be processed: unsent output below the mark for the
 * phase (SHOAL_IN_PAUSE_PREAUTH / SHOAL_IN_PAUSE). */
int shoal__input_room(const shoal_session *s);

/* Closes for good and tells the layers above and the application (once). */
void shoal__report_closed(shoal_session *s);

#endif
