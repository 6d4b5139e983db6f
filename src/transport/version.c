/* Protocol version exchange (RFC 4253 4.2).
 *
 * The server may send other lines before its version line; we tolerate a
 * bounded number of them. Every line must end in LF (CR LF, or a bare LF as
 * some servers send). A version line is "SSH-2.0-softwareversion [comments]";
 * "SSH-1.99-" is accepted as meaning 2.0 (RFC 4253 5.1). */
#include <string.h>

#include "transport/transport_impl.h"

static int line_is_version(const char *l, size_t n)
{
    return n >= 4 && memcmp(l, "SSH-", 4) == 0;
}

static int check_version(shoal_session *s, const char *l, size_t n)
{
    shoal_transport *t = shoal__tp(s);
    if (n > SHOAL_BANNER_MAX_LINE) /* 256 characters + bare LF: would overflow peer_version */
        return shoal__fail(s, SHOAL_ERR_BANNER, 0, "version line longer than %u bytes", SHOAL_BANNER_MAX_LINE);
    if (!(n >= 8 && memcmp(l, "SSH-2.0-", 8) == 0) && !(n >= 9 && memcmp(l, "SSH-1.99-", 9) == 0))
        return shoal__fail(s, SHOAL_ERR_BANNER, 0, "server speaks an unsupported protocol version: \"%.*s\"",
                           (int)(n > 60 ? 60 : n), l);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        if (c < 0x20 || c > 0x7e)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "version line contains a control character");
    }
    memcpy(t->peer_version, l, n);
    t->peer_version[n] = 0;
    t->version_done = 1;
    t->phase = SHOAL_PHASE_KEX;
    shoal__log(s, 1, "server version: %s", t->peer_version);
    return SHOAL_OK;
}

int shoal__recv_version(shoal_session *s, const uint8_t *in, size_t len, size_t *used)
{
    shoal_transport *t = shoal__tp(s);
    size_t i = 0;
    *used = 0;
    while (i < len && !t->version_done) {
        uint8_t c = in[i++];
        t->banner_bytes++;
        if (t->banner_bytes > SHOAL_BANNER_MAX_BYTES)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "no version line in the first %u bytes",
                               SHOAL_BANNER_MAX_BYTES);
        if (c == '\n') {
            size_t n = t->line_len;
            if (n && t->line[n - 1] == '\r')
                n--;
            if (line_is_version(t->line, n)) {
                int rc = check_version(s, t->line, n);
                if (rc)
                    return rc;
            } else if (++t->banner_lines > SHOAL_BANNER_MAX_LINES) {
                return shoal__fail(s, SHOAL_ERR_BANNER, 0, "more than %u lines before the version line",
                                   SHOAL_BANNER_MAX_LINES);
            }
            t->line_len = 0;
            continue;
        }
        if (c == 0)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "NUL byte in the version exchange");
        if (t->line_len >= SHOAL_BANNER_MAX_LINE + 1)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "version line longer than %u bytes",
                               SHOAL_BANNER_MAX_LINE);
        t->line[t->line_len++] = (char)c;
    }
    *used = i;
    return SHOAL_OK;
}
