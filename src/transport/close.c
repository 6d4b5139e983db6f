/* Logging, failure and the end of a session: one place that closes it,
 * sends DISCONNECT when it can, and tells the layers above (through the
 * closed hook) and the application. */
#include <stdio.h>

#include "transport/transport_impl.h"

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
    shoal_transport *t = shoal__tp(s);
    if (!t->log_cb || level > t->log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->log_cb(s, level, msg, t->ud);
}

void shoal__report_closed(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    if (t->close_reported)
        return;
    t->close_reported = 1;
    t->hooks->closed(s);
    if (t->closed_cb)
        t->closed_cb(s, t->err, t->err ? t->errmsg : NULL, t->ud);
}

int shoal__fail(shoal_session *s, int err, int reason, const char *fmt, ...)
{
    shoal_transport *t = shoal__tp(s);
    if (t->closed)
        return err;
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    t->err = err;
    snprintf(t->errmsg, sizeof(t->errmsg), "%s: %s", shoal_phase_name(t->phase), detail);
    if (reason && t->version_done)
        shoal__send_disconnect(s, (uint32_t)reason, detail);
    t->closed = 1;
    t->phase = SHOAL_PHASE_CLOSED;
    shoal__report_closed(s);
    return err;
}

