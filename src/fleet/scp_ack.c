/* SCP sink replies: see scp_ack.h. */
#include "scp_ack.h"

#include <string.h>

void scp_ack_init(scp_ack *a)
{
    memset(a, 0, sizeof(*a));
}

scp_ack_kind scp_ack_feed(scp_ack *a, const uint8_t *d, size_t n, size_t *used)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        if (!a->in_message) {
            if (c == 0) {
                *used = i + 1;
                return SCP_ACK_OK;
            }
            /* 1 is a warning, 2 fatal; anything else is not the protocol:
             * treated as fatal, its byte the start of the message. */
            a->kind = c == 1 ? SCP_ACK_WARNING : SCP_ACK_FATAL;
            a->in_message = 1;
            a->msg_len = 0;
            a->msg[0] = 0;
            if (c == 1 || c == 2)
                continue;
        }
        if (c == '\n') {
            scp_ack_kind k = a->kind;
            a->in_message = 0;
            a->kind = SCP_ACK_NONE;
            *used = i + 1;
            return k;
        }
        if (a->msg_len < SCP_ACK_MSG_MAX) {
            a->msg[a->msg_len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
            a->msg[a->msg_len] = 0;
        }
    }
    *used = n;
    return SCP_ACK_NONE;
}
