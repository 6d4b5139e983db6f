/* shoal: the sans-I/O SSH session, server side.
 *
 * Same byte contract as the client (shoal_session_recv / _output / _tick /
 * _deadline, see session.h). The application decides authentication and
 * channels through callbacks, each of which may answer later: return
 * SHOAL_ERR_DEFERRED and call the matching reply function when the answer
 * is known (e.g. after asking a database), without blocking the loop.
 *
 * Authentication safety: a public key reaches the auth callback either as
 * a probe (proven = 0: the client only asks whether the key would do; the
 * callback may say yes, which proves nothing) or proven (proven = 1: the
 * signature over the session was verified). Only a proven key can log a
 * user in: SHOAL_AUTH_SUCCESS for a probe is answered with PK_OK, never
 * with success, and shoal_session_auth_key() reports only proven keys. */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/channel.h"
#include "shoal/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_server_config {
    size_t size;                    /* sizeof(shoal_server_config): set by shoal_server_config_init() (docs/API.md) */
    shoal_key *const *host_keys;    /* private keys, borrowed: must outlive the session */
    unsigned n_host_keys;
    const char *kex_algorithms;     /* NULL = defaults */
    const char *hostkey_algorithms; /* NULL = defaults (filtered by the keys we have) */
    const char *ciphers;
    const char *macs;
    uint64_t rekey_bytes;
    uint64_t rekey_interval_ms;
    unsigned auth_methods;          /* SHOAL_AUTH_* offered; 0 = publickey and password */
    unsigned max_auth_tries;        /* failed attempts before disconnect; 0 = 6 */
    const char *banner;             /* USERAUTH_BANNER text, or NULL */
    const char *software_version;
    unsigned max_channels;          /* per connection; 0 = 10 */
    uint64_t keepalive_interval_ms; /* ClientAliveInterval; 0 = off */
    unsigned keepalive_count_max;   /* ClientAliveCountMax; 0 = 3 */
    uint64_t rekey_timeout_ms;      /* a key re-exchange must complete within this; 0 = 60 s */
} shoal_server_config;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_server_config_init(shoal_server_config *x);

typedef enum shoal_auth_method {
    SHOAL_METHOD_NONE = 0,
    SHOAL_METHOD_PUBLICKEY,
    SHOAL_METHOD_PASSWORD,
    SHOAL_METHOD_KBDINT,
} shoal_auth_method;

typedef struct shoal_auth_request {
    shoal_auth_method method;
    const char *user;
    const char *service;          /* "ssh-connection" */
    const shoal_key *key;         /* publickey */
    const char *key_algorithm;    /* publickey: signature algorithm */
    int proven;                   /* publickey: 1 when the signature verified */
    const char *password;         /* password (wipe your copies) */
    unsigned n_responses;         /* keyboard-interactive: answers to our prompts */
    const char *const *responses;
} shoal_auth_request;

/* Auth callback results (>= 0), or SHOAL_ERR_DEFERRED. */
enum {
    SHOAL_AUTH_DENY = 0,     /* this attempt fails */
    SHOAL_AUTH_SUCCESS = 1,  /* the user is in (for a probe: "this key would do") */
    SHOAL_AUTH_PARTIAL = 2,  /* this step passed; another method is required */
    SHOAL_AUTH_PROMPT = 3,   /* keyboard-interactive: prompts were set with shoal_session_kbdint_prompts() */
};

/* A request on a channel the client opened. */
typedef struct shoal_channel_request {
    const char *type;        /* "exec", "shell", "subsystem", "pty-req", "env",
                                "window-change", "signal", ... */
    int want_reply;
    const char *command;     /* exec */
    const char *subsystem;   /* subsystem */
    const char *term;        /* pty-req */
    uint32_t cols, rows, width_px, height_px; /* pty-req, window-change */
    const uint8_t *modes;    /* pty-req encoded terminal modes */
    size_t modes_len;
    const char *name;        /* env */
    const char *value;       /* env */
    const char *signal;      /* signal */
} shoal_channel_request;

typedef struct shoal_server_callbacks {
    size_t size; /* sizeof(shoal_server_callbacks): set by shoal_server_callbacks_init() (docs/API.md) */
    /* Decide an authentication attempt: a SHOAL_AUTH_* result, or
     * SHOAL_ERR_DEFERRED and shoal_session_auth_reply() later. Required. */
    int (*auth)(shoal_session *s, const shoal_auth_request *req, void *ud);
    /* Authentication finished: channels may be opened by the client now. */
    void (*authenticated)(shoal_session *s, const char *user, void *ud);
    /* The client opens a channel of this type. Set its callbacks with
     * shoal_channel_set_callbacks() and return 0 to accept, a positive
     * SSH reason code (1 = administratively prohibited, 3 = unknown type,
     * 4 = resource shortage) to refuse, or SHOAL_ERR_DEFERRED and call
     * shoal_channel_open_reply() later. Required. */
    int (*channel_open)(shoal_session *s, shoal_channel *ch, const char *type, void *ud);
    /* Ends once (err 0 = orderly). */
    void (*closed)(shoal_session *s, int err, const char *message, void *ud);
    void (*log)(shoal_session *s, int level, const char *message, void *ud);
} shoal_server_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_server_callbacks_init(shoal_server_callbacks *x);

SHOAL_EXTERN int shoal_session_new_server(shoal_session **out, const shoal_server_config *cfg,
                                          const shoal_server_callbacks *cb, void *ud);

/* Deferred authentication answer (a SHOAL_AUTH_* result). */
SHOAL_EXTERN int shoal_session_auth_reply(shoal_session *s, int result);
/* Methods offered from now on (e.g. after SHOAL_AUTH_PARTIAL). */
SHOAL_EXTERN int shoal_session_set_auth_methods(shoal_session *s, unsigned methods);
/* Keyboard-interactive prompts for the next round (from the auth callback,
 * before returning SHOAL_AUTH_PROMPT, or before a deferred reply of it). */
SHOAL_EXTERN int shoal_session_kbdint_prompts(shoal_session *s, const char *name, const char *instruction,
                                              unsigned n, const shoal_kbdint_prompt *prompts);
/* After authentication: the user, and the key whose signature verified
 * (NULL if another method was used). */
SHOAL_EXTERN const char *shoal_session_auth_user(const shoal_session *s);
SHOAL_EXTERN const shoal_key *shoal_session_auth_key(const shoal_session *s);
/* Channels the client may have open at once from now on (MaxSessions). */
SHOAL_EXTERN void shoal_session_set_max_channels(shoal_session *s, unsigned n);
/* Per-connection application data set at auth time (e.g. a backend id). */
SHOAL_EXTERN void shoal_session_set_app_data(shoal_session *s, void *data);
SHOAL_EXTERN void *shoal_session_app_data(const shoal_session *s);

/* ---- server side of channels ---- */

typedef struct shoal_server_channel_callbacks {
    size_t
        size; /* sizeof(shoal_server_channel_callbacks): set by shoal_server_channel_callbacks_init() (docs/API.md) */
    /* A request: return 1 (success), 0 (failure), or SHOAL_ERR_DEFERRED and
     * call shoal_channel_request_reply() later (in order). It may also be
     * called from inside this callback (then return SHOAL_ERR_DEFERRED):
     * to send the answer before what must follow it, e.g. a refusal's
     * message, exit status and close. */
    int (*on_request)(shoal_channel *ch, const shoal_channel_request *req, void *ud);
    void (*on_data)(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud);
    void (*on_eof)(shoal_channel *ch, void *ud);
    void (*on_writable)(shoal_channel *ch, void *ud);
    void (*on_close)(shoal_channel *ch, void *ud);
} shoal_server_channel_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_server_channel_callbacks_init(shoal_server_channel_callbacks *x);

SHOAL_EXTERN void shoal_channel_set_server_callbacks(shoal_channel *ch, const shoal_server_channel_callbacks *cb,
                                                     void *ud);
/* Deferred answer to channel_open: 0 accepts, a positive reason refuses. */
SHOAL_EXTERN int shoal_channel_open_reply(shoal_channel *ch, int reason, const char *description);
SHOAL_EXTERN int shoal_channel_request_reply(shoal_channel *ch, int ok);
/* Sends stderr data (extended data type 1); *written as for write(). */
SHOAL_EXTERN int shoal_channel_write_stderr(shoal_channel *ch, const void *data, size_t len, size_t *written);
SHOAL_EXTERN int shoal_channel_exit_status(shoal_channel *ch, uint32_t status);
SHOAL_EXTERN int shoal_channel_exit_signal(shoal_channel *ch, const char *signal, int core_dumped,
                                           const char *message);

#ifdef __cplusplus
}
#endif
#endif
