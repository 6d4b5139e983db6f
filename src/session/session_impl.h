/* The session object shared by the transport, auth and connection layers,
 * and what only the session calls of the layers. Private: only src/
 * includes this. */
#ifndef SHOAL_SESSION_SESSION_IMPL_H
#define SHOAL_SESSION_SESSION_IMPL_H

#include <stdint.h>

#include "shoal/channel.h"
#include "shoal/server.h"
#include "shoal/session.h"
#include "auth/auth_impl.h"
#include "conn/conn_impl.h"
#include "transport/transport_impl.h"
#include "wire/buf.h"

typedef enum auth_state {
    AUTH_IDLE = 0,       /* not started */
    AUTH_SERVICE,        /* SERVICE_REQUEST sent */
    AUTH_NONE_SENT,      /* "none" probe sent */
    AUTH_PK_QUERY,       /* publickey query sent for identity auth_ident */
    AUTH_PK_SIGNING,     /* waiting for a deferred signature */
    AUTH_PK_SIGNED,      /* signed request sent */
    AUTH_PASSWORD_WAIT,  /* waiting for the application's password */
    AUTH_PASSWORD_SENT,
    AUTH_KBDINT_SENT,    /* keyboard-interactive request sent */
    AUTH_KBDINT_WAIT,    /* waiting for the application's responses */
    AUTH_DONE,
} auth_state;

typedef struct identity {
    uint8_t *blob;
    size_t blob_len;
    shoal_key *key; /* public part always; private part when known */
    int has_private;
} identity;

struct shoal_channel {
    shoal_session *s;
    shoal_server_channel_callbacks scb; /* server side */
    int peer_opened;          /* opened by the peer (server side) */
    unsigned deferred_replies;/* server: requests awaiting shoal_channel_request_reply */
    uint32_t local_id, remote_id;
    int state; /* CH_OPENING, CH_OPEN, CH_CLOSING */
    int eof_sent, eof_received, close_sent, close_received;
    int manual_window;
    int open_deferred;        /* client: CHANNEL_OPEN not written yet (opened before authentication) */
    int open_early;           /* client: CHANNEL_OPEN went out with the final auth request */
    uint32_t local_window;    /* bytes the peer may still send us */
    uint32_t local_consumed;  /* received and consumed, not yet re-announced */
    uint32_t remote_window;   /* bytes we may still send */
    uint32_t remote_maxpkt;
    int want_writable;
    unsigned pending_replies; /* want_reply requests awaiting an answer */
    char pending_names[8][16];/* their names, FIFO */
    shoal_channel_callbacks cb;
    void *ud;
};

enum { CH_OPENING = 1, CH_OPEN, CH_CLOSED, CH_PEER_OPENING };

struct shoal_session {
    const shoal_transport_hooks *hooks; /* installed by src/session/hooks.c */
    const shoal_auth_hooks *auth_hooks;
    int is_server;
    shoal_client_callbacks cb;
    void *ud;
    int log_level;

    /* configuration (owned copies) */
    char *user;
    char *kex_algs, *hostkey_algs, *ciphers, *macs;
    uint64_t rekey_bytes, rekey_interval_ms, keepalive_ms, rekey_timeout_ms;
    unsigned keepalive_max;
    unsigned auth_methods;
    char *our_version; /* "SSH-2.0-..." without CRLF */

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
    int processing;        /* inside shoal__process_packets */

    /* ext-info */
    char *server_sig_algs;

    /* user authentication */
    auth_state auth;
    identity *idents;
    unsigned n_idents, ident_cap;
    unsigned auth_ident;      /* identity being tried */
    int auth_cursor;          /* method being tried (userauth_client.c) */
    char auth_sigalg[64];
    char *auth_allowed;       /* methods from the last USERAUTH_FAILURE */
    unsigned auth_tried;      /* SHOAL_AUTH_* methods already exhausted */
    unsigned auth_attempts;
    int auth_signed_first;   /* the first request was a signed publickey one */
    int auth_final_sent;     /* the request on the wire is the last we could make */
    int kbdint_rounds;
    char **kbd_prompts;       /* owned prompt texts for the current round */
    unsigned kbd_n;

    /* server */
    shoal_server_callbacks scb;
    shoal_key **host_keys;    /* borrowed */
    unsigned n_host_keys;
    unsigned srv_methods;     /* methods offered now */
    unsigned max_auth_tries, auth_failures;
    unsigned sauth_nones;     /* "none" requests seen (the first one is free) */
    unsigned sauth_services;  /* SERVICE_REQUESTs seen (repeats are allowed, bounded) */
    char *banner;
    int banner_sent;
    unsigned max_channels;
    int sauth_pending;        /* an auth decision is deferred */
    int sauth_method;         /* shoal_auth_method of the pending request */
    int sauth_proven;
    char *sauth_user;         /* user of the pending request */
    shoal_key *sauth_key;     /* key of the pending publickey request */
    char sauth_alg[64];
    uint8_t *sauth_blob;
    size_t sauth_blob_len;
    char *auth_user;          /* after success */
    shoal_key *auth_key;      /* proven key, after success by publickey */
    void *app_data;
    int kbd_prompts_set;      /* prompts ready for the next INFO_REQUEST */
    char *kbd_name, *kbd_instr;
    char **kbd_texts;
    int *kbd_echo;
    unsigned kbd_count;
    int kbd_waiting;          /* INFO_REQUEST sent, awaiting INFO_RESPONSE */

    /* connection */
    shoal_channel **chans;
    uint32_t nchans;
    uint32_t open_channels;
    uint64_t last_rx_time;
    unsigned keepalive_outstanding;
    uint64_t keepalive_sent_at;
};

#endif
