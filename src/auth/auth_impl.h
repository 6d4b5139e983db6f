/* What the user authentication layer offers the session, and the hooks
 * through which it tells the layer above of its progress. Private. */
#ifndef SHOAL_AUTH_AUTH_IMPL_H
#define SHOAL_AUTH_AUTH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/session.h"

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

/* Client (userauth_client.c). */
int shoal__auth_start(shoal_session *s);
int shoal__auth_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
void shoal__auth_free(shoal_session *s);

/* Server (userauth_server.c). */
int shoal__sauth_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
int shoal__sauth_send_ext_info(shoal_session *s);
void shoal__sauth_free(shoal_session *s);

#endif
