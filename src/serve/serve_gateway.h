/* The server engine: forwarding sessions to an upstream SSH server (serve_gateway.c). */
#ifndef SHOAL_SERVE_GATEWAY_H
#define SHOAL_SERVE_GATEWAY_H

#include "serve_impl.h"

typedef struct serve_gateway {
    const char *host;
    unsigned port;
    const char *user;          /* NULL = the same user name */
    const char *identity_file; /* key for the upstream login */
    const char *known_hosts;   /* the upstream host key must be here */
} serve_gateway;

/* Takes over a session channel the client opened: 0, or an SSH open
 * failure reason. */
int serve_gateway_channel(serve_conn *sc, shoal_channel *ch, const serve_gateway *cfg);
/* The client connection is gone: drop the upstream one. */
void serve_gateway_free(serve_conn *sc);

#endif
