/* The replies of an `scp -t` sink (the SCP protocol's acknowledgements).
 *
 * After each step (its start, our "C" header line, the file's end marker)
 * the sink answers with one byte: 0 for ok, 1 for a warning or 2 for a
 * fatal error, the last two followed by a message line ending in '\n'.
 * Bytes arrive in arbitrary pieces; this parser turns them into replies,
 * bounded: a message longer than SCP_ACK_MSG_MAX is cut there. */
#ifndef SHOAL_APP_SCP_ACK_H
#define SHOAL_APP_SCP_ACK_H

#include <stddef.h>
#include <stdint.h>

#define SCP_ACK_MSG_MAX 1024

typedef enum scp_ack_kind { SCP_ACK_NONE = 0, SCP_ACK_OK, SCP_ACK_WARNING, SCP_ACK_FATAL } scp_ack_kind;

typedef struct scp_ack {
    int in_message;             /* reading the message line of a 1 or 2 */
    scp_ack_kind kind;          /* of the reply being read */
    char msg[SCP_ACK_MSG_MAX + 1]; /* NUL-terminated, control bytes replaced by '?' */
    size_t msg_len;
} scp_ack;

void scp_ack_init(scp_ack *a);
/* Reads bytes until one complete reply: returns its kind (msg holds the
 * message of a warning or fatal error) and sets *used to the bytes taken;
 * returns SCP_ACK_NONE when all n bytes were taken and no reply is complete
 * yet. Bytes after a reply are the next call's. */
scp_ack_kind scp_ack_feed(scp_ack *a, const uint8_t *d, size_t n, size_t *used);

#endif
