/* shoal: the sans-I/O SSH session (client side).
 *
 * A session is a pure state machine: the driver feeds it received bytes with
 * shoal_session_recv(), sends what shoal_session_output() lends it, calls
 * shoal_session_tick() when shoal_session_deadline() passes, and tells it
 * about end of input with shoal_session_recv_eof(). The session never
 * touches a socket or a clock: time is an argument (milliseconds on any
 * monotonic scale the driver likes).
 *
 * Events reach the application through callbacks. Decisions that may need
 * I/O (accepting a host key, a password, a signature from ssh-agent) may be
 * answered later: the callback returns SHOAL_ERR_DEFERRED and the
 * application calls the matching shoal_session_*_reply() function when it
 * knows the answer. */
#ifndef SHOAL_SESSION_H
#define SHOAL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"
#include "shoal/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_session shoal_session;
typedef struct shoal_channel shoal_channel;

/* Where a session is in its life; also names the phase in error messages. */
typedef enum shoal_phase {
    SHOAL_PHASE_BANNER = 0, /* exchanging version strings */
    SHOAL_PHASE_KEX,        /* initial key exchange */
    SHOAL_PHASE_HOSTKEY,    /* waiting for the host key decision */
    SHOAL_PHASE_AUTH,       /* user authentication */
    SHOAL_PHASE_OPEN,       /* authenticated: channels may be opened */
    SHOAL_PHASE_CLOSED,
} shoal_phase;

SHOAL_EXTERN const char *shoal_phase_name(shoal_phase p);

/* Authentication methods, as a bit set. */
enum {
    SHOAL_AUTH_PUBLICKEY = 1u << 0,
    SHOAL_AUTH_KBDINT = 1u << 1,
    SHOAL_AUTH_PASSWORD = 1u << 2,
    /* Alone: no method at all, only the "none" probe (a server that needs
     * no credentials). 0 in auth_methods means every method. */
    SHOAL_AUTH_NONE_ONLY = 1u << 3,
};

typedef struct shoal_client_config {
    size_t size;                    /* sizeof(shoal_client_config): set by shoal_client_config_init() (docs/API.md) */
    const char *user;               /* required */
    const char *kex_algorithms;     /* comma lists; NULL = defaults */
    const char *hostkey_algorithms;
    const char *ciphers;
    const char *macs;
    uint64_t rekey_bytes;           /* 0 = 1 GiB; rekey after this many bytes either way */
    uint64_t rekey_interval_ms;     /* 0 = never by time */
    uint64_t keepalive_interval_ms; /* ServerAliveInterval; 0 = off. Before authentication
                                       ends (no keepalives can be sent yet) a server silent
                                       for interval x count while we wait for it fails the
                                       session, as OpenSSH's packet timeout does */
    unsigned keepalive_count_max;   /* ServerAliveCountMax; 0 = 3 */
    unsigned auth_methods;          /* SHOAL_AUTH_* bits; 0 = all */
    const char *software_version;   /* after "SSH-2.0-"; NULL = "shoal_<version>" */
    uint64_t rekey_timeout_ms;      /* a key re-exchange must complete within this; 0 = 60 s,
                                       UINT64_MAX = never (a peer that stalls one while we
                                       hold data for it must not hold us forever) */
} shoal_client_config;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_client_config_init(shoal_client_config *x);

/* What the host key callback is told. */
typedef struct shoal_hostkey_info {
    const shoal_key *key;    /* the server's host key (verified signature) */
    const char *algorithm;   /* negotiated host key algorithm */
    const uint8_t *blob;     /* the key's public blob */
    size_t blob_len;
    const char *fingerprint; /* "SHA256:..." */
} shoal_hostkey_info;

/* One keyboard-interactive round (RFC 4256). */
typedef struct shoal_kbdint_prompt {
    const char *text;
    int echo;
} shoal_kbdint_prompt;

typedef struct shoal_kbdint_request {
    const char *name;
    const char *instruction;
    unsigned nprompts;
    const shoal_kbdint_prompt *prompts;
} shoal_kbdint_request;

typedef struct shoal_client_callbacks {
    size_t size; /* sizeof(shoal_client_callbacks): set by shoal_client_callbacks_init() (docs/API.md) */
    /* Host key decision. Return 0 to accept, a negative error to reject
     * (SHOAL_ERR_HOSTKEY_*), or SHOAL_ERR_DEFERRED and call
     * shoal_session_hostkey_reply() later. Called during the initial key
     * exchange only; at rekeys the key must equal the first one. Required. */
    int (*hostkey)(shoal_session *s, const shoal_hostkey_info *info, void *ud);
    /* An identity without a private key (agent key, or file key whose
     * passphrase has not been asked yet) was accepted by the server: sign
     * data with sigalg. Return SHOAL_ERR_DEFERRED and call
     * shoal_session_sign_reply(), or an error to skip the key. */
    int (*sign)(shoal_session *s, unsigned identity, const char *sigalg, const uint8_t *data, size_t len,
                void *ud);
    /* A password is wanted. Return SHOAL_ERR_DEFERRED and call
     * shoal_session_password_reply() (NULL skips the method), or an error. */
    int (*password)(shoal_session *s, const char *user, void *ud);
    /* A keyboard-interactive round. Return SHOAL_ERR_DEFERRED and call
     * shoal_session_kbdint_reply(). */
    int (*kbdint)(shoal_session *s, const shoal_kbdint_request *req, void *ud);
    /* SSH_MSG_USERAUTH_BANNER text (may be NULL). */
    void (*banner)(shoal_session *s, const char *text, size_t len, void *ud);
    /* Authentication succeeded: channels may be opened now. */
    void (*authenticated)(shoal_session *s, void *ud);
    /* The session ended (err = 0 for an orderly close). Called once. */
    void (*closed)(shoal_session *s, int err, const char *message, void *ud);
    /* Diagnostics (verbosity 1 = -v). May be NULL. */
    void (*log)(shoal_session *s, int level, const char *message, void *ud);
} shoal_client_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_client_callbacks_init(shoal_client_callbacks *x);

SHOAL_EXTERN int shoal_session_new_client(shoal_session **out, const shoal_client_config *cfg,
                                          const shoal_client_callbacks *cb, void *ud);
SHOAL_EXTERN void shoal_session_free(shoal_session *s);
SHOAL_EXTERN void *shoal_session_userdata(const shoal_session *s);
SHOAL_EXTERN void shoal_session_set_log_level(shoal_session *s, int level);

/* Identities for publickey authentication, tried in the order added (add
 * agent keys first, then file keys, to get OpenSSH's order). key may be a
 * private key (signed in-process) or NULL (the sign callback is asked).
 * Returns the identity index (>= 0) or an error. */
SHOAL_EXTERN int shoal_session_add_identity(shoal_session *s, const uint8_t *blob, size_t blob_len,
                                            shoal_key *key_owned);

/* Starts the session: queues our version string. now = current time. */
SHOAL_EXTERN int shoal_session_start(shoal_session *s, uint64_t now);
/* Feeds received bytes. Consumes everything unless it fails; on failure the
 * session is closed and the error is returned (also reported once via the
 * closed callback). */
SHOAL_EXTERN int shoal_session_recv(shoal_session *s, const uint8_t *in, size_t len, uint64_t now);
/* The peer closed its side of the connection. */
SHOAL_EXTERN void shoal_session_recv_eof(shoal_session *s, uint64_t now);
/* Read backpressure. While the session's unsent output is above a small
 * mark (a few hundred KiB before authentication, 2 MiB after), it stops
 * processing input and this returns 0: the driver should stop reading the
 * socket (bytes already read stay buffered, at most one read's worth).
 * Once output was consumed and this returns 1 again, call
 * shoal_session_resume() to process what was held, and read again. So a
 * peer that sends requests without reading our replies cannot grow our
 * memory. Also 0 once the session is closed. */
SHOAL_EXTERN int shoal_session_wants_input(const shoal_session *s);
/* Processes input held while output was above the mark (a no-op when none
 * is held or output is still above it). Errors as shoal_session_recv(). */
SHOAL_EXTERN int shoal_session_resume(shoal_session *s, uint64_t now);
/* Bytes to send: returns their count and lends a pointer valid until the
 * next call into the session. */
SHOAL_EXTERN size_t shoal_session_output(shoal_session *s, const uint8_t **p);
SHOAL_EXTERN void shoal_session_output_consume(shoal_session *s, size_t n);
/* Next time at which shoal_session_tick() must be called (UINT64_MAX: none). */
SHOAL_EXTERN uint64_t shoal_session_deadline(const shoal_session *s);
SHOAL_EXTERN int shoal_session_tick(shoal_session *s, uint64_t now);
/* Sends DISCONNECT (by application) and closes. */
SHOAL_EXTERN int shoal_session_disconnect(shoal_session *s, const char *message);
/* Closes with an error decided by the driver (e.g. a timeout): the closed
 * callback gets err and message. */
SHOAL_EXTERN void shoal_session_abort(shoal_session *s, int err, const char *message);

SHOAL_EXTERN shoal_phase shoal_session_phase(const shoal_session *s);
SHOAL_EXTERN int shoal_session_is_closed(const shoal_session *s);
/* 1 when the session has no more output to produce and is closed. */
SHOAL_EXTERN int shoal_session_is_done(const shoal_session *s);
/* The error that closed the session and its message (NULL when none). */
SHOAL_EXTERN int shoal_session_error(const shoal_session *s, const char **message);
/* The peer's version string, once received. */
SHOAL_EXTERN const char *shoal_session_peer_version(const shoal_session *s);
/* Negotiated algorithm names: what = "kex", "hostkey", "cipher_c2s",
 * "cipher_s2c", "mac_c2s", "mac_s2c". NULL before the first kex. */
SHOAL_EXTERN const char *shoal_session_algorithm(const shoal_session *s, const char *what);
/* Completed key exchanges (1 after the initial one). */
SHOAL_EXTERN unsigned shoal_session_kex_count(const shoal_session *s);
/* Starts a key re-exchange now (no-op when one is running). */
SHOAL_EXTERN int shoal_session_rekey(shoal_session *s);

/* Deferred answers. */
SHOAL_EXTERN int shoal_session_hostkey_reply(shoal_session *s, int err);
/* sig = SSH signature blob (string alg, string sig), or NULL to skip the key. */
SHOAL_EXTERN int shoal_session_sign_reply(shoal_session *s, const uint8_t *sig, size_t sig_len);
SHOAL_EXTERN int shoal_session_password_reply(shoal_session *s, const char *password);
SHOAL_EXTERN int shoal_session_kbdint_reply(shoal_session *s, unsigned n, const char *const *responses);

#ifdef __cplusplus
}
#endif
#endif
