/* The hooks between the layers (docs/ARCHITECTURE.md "Hooks between
 * layers"). The transport and auth know nothing of what is above them;
 * these tables, one per role, say what their reports mean. */
#include "session/hooks.h"

#include "conn/conn_impl.h"
#include "session/session_impl.h"

/* The initial exchange done: the client asks for the userauth service at
 * once; the server waits for the client's SERVICE_REQUEST. A later one:
 * channels held back while it ran may write again. */
static int client_kex_done(shoal_session *s, int first)
{
    if (first)
        return shoal__auth_start(s);
    shoal__conn_notify_writable(s);
    return SHOAL_OK;
}

static int server_kex_done(shoal_session *s, int first)
{
    if (!first)
        shoal__conn_notify_writable(s);
    return SHOAL_OK;
}

static void session_closed(shoal_session *s)
{
    shoal__conn_session_closed(s);
}

static const shoal_transport_hooks client_hooks = {
    .service = {[SHOAL_SERVICE_USERAUTH] = shoal__auth_dispatch, [SHOAL_SERVICE_CONNECTION] = shoal__conn_dispatch},
    .kex_done = client_kex_done,
    .newkeys_sent = NULL,
    .closed = session_closed,
};

static const shoal_transport_hooks server_hooks = {
    .service = {[SHOAL_SERVICE_USERAUTH] = shoal__sauth_dispatch, [SHOAL_SERVICE_CONNECTION] = shoal__conn_dispatch},
    .kex_done = server_kex_done,
    .newkeys_sent = shoal__sauth_send_ext_info,
    .closed = session_closed,
};

static const shoal_auth_hooks auth_hooks = {
    .service_may_follow = shoal__chan_send_deferred_opens,
    .final_request_failed = shoal__chan_requeue_early_opens,
};

void shoal__session_install_hooks(shoal_session *s, int is_server)
{
    s->tp.hooks = is_server ? &server_hooks : &client_hooks;
    s->auth.hooks = &auth_hooks;
}
