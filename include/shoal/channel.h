/* shoal: channels of the SSH connection protocol (RFC 4254), client side.
 *
 * A channel belongs to its session. Open it once the session is
 * authenticated; it is freed by the session after its on_close callback.
 *
 * Flow control works both ways:
 *  - sending: shoal_channel_write() accepts at most what the peer's window
 *    and our output high-water mark allow, and says how much it took.
 *    The rule that keeps a sender from stalling: whenever a write takes
 *    less than it was offered, or shoal_channel_writable() returns 0,
 *    on_writable is called (once) as soon as there is room again. So a
 *    sender may stop on either sign and resume from on_writable; it never
 *    needs to poll;
 *  - receiving: data handed to on_data is consumed automatically unless
 *    shoal_channel_set_manual_window(ch, 1) was called, in which case the
 *    window only reopens as the application calls shoal_channel_consume(). */
#ifndef SHOAL_CHANNEL_H
#define SHOAL_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/session.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SHOAL_STDOUT = 0, SHOAL_STDERR = 1 };

typedef struct shoal_channel_callbacks {
    size_t size; /* sizeof(shoal_channel_callbacks): set by shoal_channel_callbacks_init() (docs/API.md) */
    /* err = 0: open confirmed; otherwise SHOAL_ERR_CHANNEL_OPEN with the
     * peer's reason (the channel is then closed and freed after on_close). */
    void (*on_open)(shoal_channel *ch, int err, const char *reason, void *ud);
    /* Reply to a want_reply request (exec, pty-req, env, subsystem, shell). */
    void (*on_request)(shoal_channel *ch, const char *request, int ok, void *ud);
    void (*on_data)(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud);
    void (*on_eof)(shoal_channel *ch, void *ud);
    void (*on_exit_status)(shoal_channel *ch, uint32_t status, void *ud);
    /* signal is the name without "SIG" ("TERM"). */
    void (*on_exit_signal)(shoal_channel *ch, const char *signal, int core_dumped, const char *message,
                           void *ud);
    /* Window space or output space became available. */
    void (*on_writable)(shoal_channel *ch, void *ud);
    /* Both sides sent CLOSE (or the session ended); ch is freed after this. */
    void (*on_close)(shoal_channel *ch, void *ud);
} shoal_channel_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_channel_callbacks_init(shoal_channel_callbacks *x);

/* Opens a "session" channel. A client may call it before it is
 * authenticated: the CHANNEL_OPEN then goes out with the final
 * authentication request when no other attempt could follow (one key, no
 * password or keyboard-interactive to fall back on; RFC 4252 5.1 lets the
 * service's messages follow the request that succeeds), saving a round
 * trip, or else as soon as authentication succeeds. If authentication
 * fails, on_open reports the session's error. */
SHOAL_EXTERN int shoal_channel_open_session(shoal_session *s, const shoal_channel_callbacks *cb, void *ud,
                                            shoal_channel **out);

/* Opens a "direct-tcpip" channel (RFC 4254 7.2): the server connects to
 * host:port (a name it resolves, or an address) and the channel carries
 * that TCP stream: data both ways with the same flow control as a session,
 * shoal_channel_send_eof() for our half-close, on_eof for the far end's,
 * on_close when both are done (no exit status). originator and orig_port
 * say where the stream comes from (NULL: "127.0.0.1"); a server may log or
 * check them. Only on an authenticated client session
 * (SHOAL_ERR_BAD_STATE before; SHOAL_ERR_INVALID_ARG for an empty or
 * over-long name or a port above 65535). A refusal comes to on_open as
 * SHOAL_ERR_CHANNEL_OPEN with the server's reason, e.g.
 * "administratively prohibited: open failed" or "connect failed: Connection
 * refused". */
SHOAL_EXTERN int shoal_channel_open_direct_tcpip(shoal_session *s, const char *host, uint32_t port,
                                                 const char *originator, uint32_t orig_port,
                                                 const shoal_channel_callbacks *cb, void *ud, shoal_channel **out);

/* Requests. Replies come through on_request (all want a reply, except env
 * when the server ignores it: OpenSSH answers env requests with failure
 * when not accepted, which is reported but not fatal). */
SHOAL_EXTERN int shoal_channel_env(shoal_channel *ch, const char *name, const char *value);
SHOAL_EXTERN int shoal_channel_pty(shoal_channel *ch, const char *term, uint32_t cols, uint32_t rows);
SHOAL_EXTERN int shoal_channel_window_change(shoal_channel *ch, uint32_t cols, uint32_t rows);
SHOAL_EXTERN int shoal_channel_exec(shoal_channel *ch, const char *command);
SHOAL_EXTERN int shoal_channel_shell(shoal_channel *ch);
SHOAL_EXTERN int shoal_channel_subsystem(shoal_channel *ch, const char *name);
/* signal name without "SIG", e.g. "TERM", "INT", "KILL". */
SHOAL_EXTERN int shoal_channel_signal(shoal_channel *ch, const char *signal);

/* Sends data; *written gets how much was taken (possibly 0). When it is
 * less than len, on_writable follows once there is room. */
SHOAL_EXTERN int shoal_channel_write(shoal_channel *ch, const void *data, size_t len, size_t *written);
/* How many bytes shoal_channel_write() would take now. A result of 0 asks
 * for on_writable: it is called once there is room (or never, when the
 * channel can no longer be written: EOF sent, closed). */
SHOAL_EXTERN size_t shoal_channel_writable(shoal_channel *ch);
SHOAL_EXTERN int shoal_channel_send_eof(shoal_channel *ch);
/* A channel whose open was never sent is freed at once (on_close runs). */
SHOAL_EXTERN int shoal_channel_close(shoal_channel *ch);

/* Forgets the callbacks and user data (no more calls into the
 * application for this channel); use before freeing what ud points to. */
SHOAL_EXTERN void shoal_channel_detach(shoal_channel *ch);
SHOAL_EXTERN void shoal_channel_set_manual_window(shoal_channel *ch, int manual);
SHOAL_EXTERN void shoal_channel_consume(shoal_channel *ch, size_t n);

SHOAL_EXTERN shoal_session *shoal_channel_session(const shoal_channel *ch);
SHOAL_EXTERN void *shoal_channel_userdata(const shoal_channel *ch);
SHOAL_EXTERN uint32_t shoal_channel_id(const shoal_channel *ch);

#ifdef __cplusplus
}
#endif
#endif
