/* Logging, failure and the end of a session: one place that closes it,
 * sends DISCONNECT when it can, and tells the layers above (through the
 * closed hook) and the application. */
#include <stdio.h>

#include "session/session_impl.h"

const char *shoal_phase_name(shoal_phase p)
{
    switch (p) {
    case SHOAL_PHASE_BANNER:
        return "banner";
    case SHOAL_PHASE_KEX:
        return "key exchange";
    case SHOAL_PHASE_HOSTKEY:
        return "host key check";
    case SHOAL_PHASE_AUTH:
        return "authentication";
    case SHOAL_PHASE_OPEN:
        return "session";
    case SHOAL_PHASE_CLOSED:
        return "closed";
    }
    return "unknown";
}

void shoal__log(shoal_session *s, int level, const char *fmt, ...)
{
    if (!s->cb.log || level > s->log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->cb.log(s, level, msg, s->ud);
}

void shoal__report_closed(shoal_session *s)
{
    if (s->close_reported)
        return;
    s->close_reported = 1;
    s->hooks->closed(s);
    if (s->cb.closed)
        s->cb.closed(s, s->err, s->err ? s->errmsg : NULL, s->ud);
}

int shoal__fail(shoal_session *s, int err, int reason, const char *fmt, ...)
{
    if (s->closed)
        return err;
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    s->err = err;
    snprintf(s->errmsg, sizeof(s->errmsg), "%s: %s", shoal_phase_name(s->phase), detail);
    if (reason && s->version_done)
        shoal__send_disconnect(s, (uint32_t)reason, detail);
    s->closed = 1;
    s->phase = SHOAL_PHASE_CLOSED;
    shoal__report_closed(s);
    return err;
}

