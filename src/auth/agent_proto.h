/* ssh-agent protocol, client side (draft-miller-ssh-agent, OpenSSH PROTOCOL.agent).
 * Pure message encoding and parsing: the driver moves the bytes over
 * SSH_AUTH_SOCK. Every message is uint32 length || byte type || contents. */
#ifndef SHOAL_AUTH_AGENT_PROTO_H
#define SHOAL_AUTH_AGENT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

#define SSH_AGENTC_REQUEST_IDENTITIES 11
#define SSH_AGENT_IDENTITIES_ANSWER 12
#define SSH_AGENTC_SIGN_REQUEST 13
#define SSH_AGENT_SIGN_RESPONSE 14
#define SSH_AGENT_FAILURE 5
#define SSH_AGENT_RSA_SHA2_256 0x02
#define SSH_AGENT_RSA_SHA2_512 0x04

/* Largest agent message we accept, and most identities in one answer. */
#define SHOAL_AGENT_MAX_MSG (256u * 1024u)
#define SHOAL_AGENT_MAX_KEYS 1024u

typedef struct shoal_agent_identity {
    const uint8_t *blob; /* borrowed from the reply buffer */
    size_t blob_len;
    const char *comment;
    size_t comment_len;
} shoal_agent_identity;

/* Appends a complete framed request. */
int shoal_agent_build_request_identities(shoal_buf *out);
int shoal_agent_build_sign_request(shoal_buf *out, const uint8_t *key_blob, size_t key_len,
                                   const uint8_t *data, size_t data_len, uint32_t flags);

/* Given bytes received so far, returns the total length of the first
 * complete framed message (4 + length) in *msg_len, 0 in *msg_len when more
 * bytes are needed, or SHOAL_ERR_TOO_LARGE when the length exceeds the cap. */
int shoal_agent_frame(const uint8_t *p, size_t n, size_t *msg_len);

/* Parses an IDENTITIES_ANSWER message body (the bytes after the uint32
 * length). Calls cb for each identity; stops with cb's non-zero result.
 * SSH_AGENT_FAILURE gives SHOAL_ERR_AGENT. */
int shoal_agent_parse_identities(const uint8_t *msg, size_t len,
                                 int (*cb)(void *ud, const shoal_agent_identity *id), void *ud);
/* Parses a SIGN_RESPONSE body; *sig points at the signature blob inside msg. */
int shoal_agent_parse_sign_response(const uint8_t *msg, size_t len, const uint8_t **sig, size_t *sig_len);

#endif
