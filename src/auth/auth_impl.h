/* What the user authentication layer offers the session, and the hooks
 * through which it tells the layer above of its progress. Private. */
#ifndef SHOAL_AUTH_AUTH_IMPL_H
#define SHOAL_AUTH_AUTH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/session.h"

#define SHOAL_MAX_KBDINT_PROMPTS 64u

/* Installed by the session (src/session/hooks.c); auth never calls the
 * connection layer by name. */
typedef struct shoal_auth_hooks {
    /* Client: messages of the connection service may go out now: the
     * request that can succeed was written (RFC 4252 5.1 lets them follow
     * it) or USERAUTH_SUCCESS came. */
    int (*service_may_follow)(shoal_session *s);
    /* Client: the final request failed; what went out with it was dropped
     * by the server and is to be written again on success. */
    void (*final_request_failed)(shoal_session *s);
} shoal_auth_hooks;

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

/* The client's part of the session (s->auth). */
typedef struct shoal_auth_client {
    const shoal_auth_hooks *hooks; /* installed by src/session/hooks.c */
    char *user;
    unsigned auth_methods;
    char *server_sig_algs;    /* from the server's EXT_INFO */
    auth_state state;
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
} shoal_auth_client;

/* The server's part of the session (s->sauth). */
typedef struct shoal_auth_server {
    auth_state state;         /* AUTH_IDLE, AUTH_SERVICE (accepted), AUTH_DONE */
    unsigned srv_methods;     /* methods offered now */
    unsigned max_auth_tries, auth_failures;
    unsigned nones;           /* "none" requests seen (the first one is free) */
    unsigned services;        /* SERVICE_REQUESTs seen (repeats are allowed, bounded) */
    char *banner;
    int banner_sent;
    /* the pending request (while the transport holds input, tp.hold_input) */
    int method;               /* shoal_auth_method of the pending request */
    int proven;
    char *user;               /* user of the pending request */
    shoal_key *key;           /* key of the pending publickey request */
    char alg[64];
    uint8_t *blob;
    size_t blob_len;
    char *auth_user;          /* after success */
    shoal_key *auth_key;      /* proven key, after success by publickey */
    int kbd_prompts_set;      /* prompts ready for the next INFO_REQUEST */
    char *kbd_name, *kbd_instr;
    char **kbd_texts;
    int *kbd_echo;
    unsigned kbd_count;
    int kbd_waiting;          /* INFO_REQUEST sent, awaiting INFO_RESPONSE */
} shoal_auth_server;

/* Client (userauth_client.c). */
int shoal__auth_start(shoal_session *s);
int shoal__auth_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
void shoal__auth_free(shoal_session *s);

/* Server (userauth_server.c). */
int shoal__sauth_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
int shoal__sauth_send_ext_info(shoal_session *s);
void shoal__sauth_free(shoal_session *s);

#endif
