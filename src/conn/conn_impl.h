/* What the connection layer offers the session. Private. */
#ifndef SHOAL_CONN_CONN_IMPL_H
#define SHOAL_CONN_CONN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/session.h"

int shoal__conn_dispatch(shoal_session *s, uint8_t type, const uint8_t *payload, size_t len);
void shoal__conn_session_closed(shoal_session *s);
/* Client: writes CHANNEL_OPEN for channels opened before authentication.
 * Called when the final auth request goes out (RFC 4252 5.1 lets messages
 * of the service follow the request that succeeds) and on USERAUTH_SUCCESS. */
int shoal__chan_send_deferred_opens(shoal_session *s);
/* Client: the final auth request failed; channels sent with it were
 * dropped by the server (or it disconnects): write them again on success. */
void shoal__chan_requeue_early_opens(shoal_session *s);
/* Output has room again (or a key exchange ended): channels may write. */
void shoal__conn_notify_writable(shoal_session *s);
int shoal__conn_keepalive(shoal_session *s);
void shoal__conn_free(shoal_session *s);

#endif
