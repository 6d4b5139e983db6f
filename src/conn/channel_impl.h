/* Channel internals shared by the client and server halves of src/conn/. */
#ifndef SHOAL_CONN_CHANNEL_IMPL_H
#define SHOAL_CONN_CHANNEL_IMPL_H

#include "conn/conn_impl.h"
#include "session/session_impl.h"

int shoal__chan_alloc(shoal_session *s, shoal_channel **out);
/* Removes the channel from the table, tells the application, frees it. */
void shoal__chan_release(shoal_channel *ch);
/* Ends a packet started with shoal__pkt_begin, or drops it when rc != 0. */
int shoal__chan_finish(shoal_session *s, size_t mark, int rc);

/* Data (ext 0) or extended data of type ext, within the peer's window. */
int shoal__chan_write(shoal_channel *ch, uint32_t ext, const void *data, size_t len, size_t *written);

/* Server role (channel_server.c). */
int shoal__chan_server_open(shoal_session *s, const uint8_t *p, size_t n);
int shoal__chan_server_request(shoal_session *s, shoal_channel *ch, shoal_rd *r);

#endif
