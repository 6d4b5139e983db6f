/* The connection layer's part of the session (s->conn) and the channel
 * object. Private. Types only: the session object embeds them, and what
 * includes the session object sees no connection function by that. */
#ifndef SHOAL_CONN_CONN_STATE_H
#define SHOAL_CONN_CONN_STATE_H

#include <stdint.h>

#include "shoal/channel.h"
#include "shoal/server.h"
#include "shoal/session.h"

#define SHOAL_CHAN_WINDOW (2u * 1024u * 1024u)
#define SHOAL_CHAN_MAXPKT (32u * 1024u)
#define SHOAL_MAX_CHANNELS 4096u

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

typedef struct shoal_conn {
    shoal_channel **chans;
    uint32_t nchans;
    uint32_t open_channels;
    unsigned max_channels;    /* server: channels a client may have open */
    /* keepalives (the timer runs in src/session/session.c) */
    uint64_t keepalive_ms;
    unsigned keepalive_max;
    uint64_t last_rx_time;
    unsigned keepalive_outstanding;
    uint64_t keepalive_sent_at;
} shoal_conn;

#endif
