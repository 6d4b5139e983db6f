/* The session object: one part per layer. Private: only src/ includes
 * this. The transport does not include it (it sees its own part through
 * shoal__tp()); auth includes it but no connection function with it. */
#ifndef SHOAL_SESSION_SESSION_IMPL_H
#define SHOAL_SESSION_SESSION_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/channel.h"
#include "shoal/server.h"
#include "shoal/session.h"
#include "auth/auth_impl.h"
#include "conn/conn_state.h"
#include "transport/transport_impl.h"
#include "wire/buf.h"

/* The session: the transport's part first (shoal__tp() relies on it), then
 * the other layers' parts and what only the session holds. */
struct shoal_session {
    shoal_transport tp;        /* src/transport/transport_impl.h */
    shoal_auth_client auth;    /* client: src/auth/auth_impl.h */
    shoal_auth_server sauth;   /* server: src/auth/auth_impl.h */
    shoal_conn conn;           /* src/conn/conn_state.h */
    shoal_client_callbacks cb; /* server: only closed and log are set */
    shoal_server_callbacks scb;
    void *app_data;
};

_Static_assert(offsetof(struct shoal_session, tp) == 0, "shoal__tp() needs the transport's part first");

#endif
