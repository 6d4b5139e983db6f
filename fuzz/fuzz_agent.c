/* Fuzzes the ssh-agent reply parsers: the input is a stream of framed agent
 * messages; each complete frame is parsed both as an identities answer and
 * as a sign response, exactly as a client would see them. */
#include <stddef.h>
#include <stdint.h>

#include "auth/agent_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the checksum of touched bytes observable so nothing is optimized out. */
static volatile size_t sink;

static int count_cb(void *ud, const shoal_agent_identity *id)
{
    size_t *total = ud;
    /* Touch the borrowed bytes so ASan checks they are inside the input. */
    if (id->blob_len)
        *total += id->blob[0] + id->blob[id->blob_len - 1];
    if (id->comment_len)
        *total += (uint8_t)id->comment[id->comment_len - 1];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, total = 0;
    while (off < size) {
        size_t msg_len = 0;
        if (shoal_agent_frame(data + off, size - off, &msg_len) != 0 || msg_len == 0)
            break;
        const uint8_t *body = data + off + 4;
        size_t body_len = msg_len - 4;
        shoal_agent_parse_identities(body, body_len, count_cb, &total);
        const uint8_t *sig;
        size_t sig_len;
        if (shoal_agent_parse_sign_response(body, body_len, &sig, &sig_len) == 0 && sig_len)
            total += sig[sig_len - 1];
        off += msg_len;
    }
    /* Also the whole input as one unframed body. */
    shoal_agent_parse_identities(data, size, count_cb, &total);
    sink = total;
    return 0;
}
