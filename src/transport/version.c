/* Protocol version exchange (RFC 4253 4.2).
 *
 * The server may send other lines before its version line; we tolerate a
 * bounded number of them. Every line must end in LF (CR LF, or a bare LF as
 * some servers send). A version line is "SSH-2.0-softwareversion [comments]";
 * "SSH-1.99-" is accepted as meaning 2.0 (RFC 4253 5.1). */
#include <string.h>

#include "session/session_impl.h"

static int line_is_version(const char *l, size_t n)
{
    return n >= 4 && memcmp(l, "SSH-", 4) == 0;
}

static int check_version(shoal_session *s, const char *l, size_t n)
{
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
    memcpy(s->peer_version, l, n);
    s->peer_version[n] = 0;
    s->version_done = 1;
    s->phase = SHOAL_PHASE_KEX;
    shoal__log(s, 1, "server version: %s", s->peer_version);
    return SHOAL_OK;
}

int shoal__recv_version(shoal_session *s, const uint8_t *in, size_t len, size_t *used)
{
    size_t i = 0;
    *used = 0;
    while (i < len && !s->version_done) {
        uint8_t c = in[i++];
        s->banner_bytes++;
        if (s->banner_bytes > SHOAL_BANNER_MAX_BYTES)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "no version line in the first %u bytes",
                               SHOAL_BANNER_MAX_BYTES);
        if (c == '\n') {
            size_t n = s->line_len;
            if (n && s->line[n - 1] == '\r')
                n--;
            if (line_is_version(s->line, n)) {
                int rc = check_version(s, s->line, n);
                if (rc)
                    return rc;
            } else if (++s->banner_lines > SHOAL_BANNER_MAX_LINES) {
                return shoal__fail(s, SHOAL_ERR_BANNER, 0, "more than %u lines before the version line",
                                   SHOAL_BANNER_MAX_LINES);
            }
            s->line_len = 0;
            continue;
        }
        if (c == 0)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "NUL byte in the version exchange");
        if (s->line_len >= SHOAL_BANNER_MAX_LINE + 1)
            return shoal__fail(s, SHOAL_ERR_BANNER, 0, "version line longer than %u bytes",
                               SHOAL_BANNER_MAX_LINE);
        s->line[s->line_len++] = (char)c;
    }
    *used = i;
    return SHOAL_OK;
}
