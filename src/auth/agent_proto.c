/* ssh-agent protocol, client side: message building and parsing
 * (see agent_proto.h; draft-miller-ssh-agent sections 3.1, 4.4 and 4.5).
 *
 * Everything the agent sends is untrusted: parsers go through shoal_rd and
 * validate a whole reply before handing any part of it to the caller. */
#include "auth/agent_proto.h"

#include <string.h>

/* Failure codes other agents use; OpenSSH's client treats them like
 * SSH_AGENT_FAILURE (30 = old SSH2_AGENT_FAILURE, 102 = ssh.com's agent). */
#define SSH2_AGENT_FAILURE_OLD 30
#define SSH_COM_AGENT2_FAILURE 102

static int agent_is_failure(uint8_t type)
{
    return type == SSH_AGENT_FAILURE || type == SSH2_AGENT_FAILURE_OLD || type == SSH_COM_AGENT2_FAILURE;
}

int shoal_agent_build_request_identities(shoal_buf *out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    size_t start = shoal_buf_len(out);
    int rc = shoal_buf_put_u32(out, 1);
    if (!rc)
        rc = shoal_buf_put_u8(out, SSH_AGENTC_REQUEST_IDENTITIES);
    if (rc)
        shoal_buf_truncate(out, start); /* never leave half a request behind */
    return rc;
}

int shoal_agent_build_sign_request(shoal_buf *out, const uint8_t *key_blob, size_t key_len, const uint8_t *data,
                                   size_t data_len, uint32_t flags)
{
    if (!out || !key_blob || key_len == 0 || (!data && data_len))
        return SHOAL_ERR_INVALID_ARG;
    /* Refuse what the agent would refuse anyway: type + two strings + flags
     * must fit the message cap (checked piecewise to avoid overflow). */
    if (key_len > SHOAL_AGENT_MAX_MSG || data_len > SHOAL_AGENT_MAX_MSG ||
        1 + 4 + key_len + 4 + data_len + 4 > SHOAL_AGENT_MAX_MSG)
        return SHOAL_ERR_TOO_LARGE;
    size_t start = shoal_buf_len(out), mark;
    int rc = shoal_buf_begin_string(out, &mark); /* the uint32 frame length */
    if (!rc)
        rc = shoal_buf_put_u8(out, SSH_AGENTC_SIGN_REQUEST);
    if (!rc)
        rc = shoal_buf_put_string(out, key_blob, key_len);
    if (!rc)
        rc = shoal_buf_put_string(out, data, data_len);
    if (!rc)
        rc = shoal_buf_put_u32(out, flags);
    if (rc) {
        shoal_buf_truncate(out, start);
        return rc;
    }
    shoal_buf_end_string(out, mark);
    return SHOAL_OK;
}

int shoal_agent_frame(const uint8_t *p, size_t n, size_t *msg_len)
{
    if (!msg_len)
        return SHOAL_ERR_INVALID_ARG;
    *msg_len = 0;
    if (!p && n)
        return SHOAL_ERR_INVALID_ARG;
    if (n < 4)
        return SHOAL_OK;
    uint32_t len = shoal_load_u32(p);
    /* Check the cap before waiting for the body, so a hostile length cannot
     * make the driver buffer gigabytes. */
    if (len > SHOAL_AGENT_MAX_MSG)
        return SHOAL_ERR_TOO_LARGE;
    if (n - 4 >= len)
        *msg_len = 4 + (size_t)len;
    return SHOAL_OK;
}

/* Reads the leading type byte, mapping agent failures and unexpected types. */
static int agent_expect_type(shoal_rd *r, uint8_t want)
{
    uint8_t type;
    int rc = shoal_rd_u8(r, &type);
    if (rc)
        return rc;
    if (type == want)
        return SHOAL_OK;
    return agent_is_failure(type) ? SHOAL_ERR_AGENT : SHOAL_ERR_PROTOCOL;
}

/* Reads one identity; comment must be NUL-free text. */
static int agent_read_identity(shoal_rd *r, shoal_agent_identity *id)
{
    int rc = shoal_rd_string(r, &id->blob, &id->blob_len);
    if (!rc)
        rc = shoal_rd_cstring(r, &id->comment, &id->comment_len);
    if (!rc && id->blob_len == 0)
        rc = SHOAL_ERR_BAD_FORMAT;
    return rc;
}

int shoal_agent_parse_identities(const uint8_t *msg, size_t len,
                                 int (*cb)(void *ud, const shoal_agent_identity *id), void *ud)
{
    if ((!msg && len) || !cb)
        return SHOAL_ERR_INVALID_ARG;
    shoal_rd r;
    shoal_rd_init(&r, msg, len);
    int rc = agent_expect_type(&r, SSH_AGENT_IDENTITIES_ANSWER);
    uint32_t nkeys = 0;
    if (!rc)
        rc = shoal_rd_u32(&r, &nkeys);
    if (rc)
        return rc;
    if (nkeys > SHOAL_AGENT_MAX_KEYS)
        return SHOAL_ERR_TOO_LARGE;
    /* Each identity needs at least two length words. */
    if ((size_t)nkeys * 8 > shoal_rd_left(&r))
        return SHOAL_ERR_TRUNCATED;

    /* First pass validates everything, so the callback never sees keys
     * from a reply that turns out to be malformed. */
    shoal_rd body = r;
    shoal_agent_identity id;
    for (uint32_t i = 0; i < nkeys; i++) {
        rc = agent_read_identity(&r, &id);
        if (rc)
            return rc;
    }
    rc = shoal_rd_end(&r);
    if (rc)
        return rc;

    /* Second pass cannot fail: it walks exactly what was just validated. */
    for (uint32_t i = 0; i < nkeys; i++) {
        if (agent_read_identity(&body, &id) != SHOAL_OK)
            return SHOAL_ERR_BAD_FORMAT;
        rc = cb(ud, &id);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

int shoal_agent_parse_sign_response(const uint8_t *msg, size_t len, const uint8_t **sig, size_t *sig_len)
{
    if (sig)
        *sig = NULL;
    if (sig_len)
        *sig_len = 0;
    if ((!msg && len) || !sig || !sig_len)
        return SHOAL_ERR_INVALID_ARG;
    shoal_rd r;
    shoal_rd_init(&r, msg, len);
    const uint8_t *p;
    size_t n;
    int rc = agent_expect_type(&r, SSH_AGENT_SIGN_RESPONSE);
    if (!rc)
        rc = shoal_rd_string(&r, &p, &n);
    if (!rc)
        rc = shoal_rd_end(&r);
    if (!rc && n == 0)
        rc = SHOAL_ERR_BAD_FORMAT;
    if (rc)
        return rc;
    *sig = p;
    *sig_len = n;
    return SHOAL_OK;
}
