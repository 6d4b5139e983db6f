/* shoal: the server engine, what `shoal serve` runs, for embedding.
 *
 * A shoal_serve runs an SSH server on a libuv loop from a finished
 * shoal_serve_config (shoal/serveconfig.h, the sshd_config subset): it loads
 * the host keys, reads the Banner, listens on every ListenAddress / Port,
 * and decides authentication as `shoal serve` does (AuthorizedKeysFile with
 * StrictModes, the asynchronous AuthorizedKeysCommand, the PasswordFile
 * backend, AuthenticationMethods, PermitRootLogin), starts sessions (exec,
 * shell and subsystem requests under ForceCommand / authorized_keys
 * command= / CommandPolicy, pty-req, the environment rules) and forwards to
 * an upstream server when a Gateway is configured.
 *
 * A program may override two decisions with callbacks: authentication
 * (before the engine's own checks) and what runs for a session (after the
 * policy chose the command and the environment is built). Everything else
 * stays the engine's.
 *
 * Options and callbacks structs start with a size field: fill them after
 * shoal_serve_options_init() / shoal_serve_callbacks_init(), which set it.
 * The library copies min(size, its sizeof) bytes into a zero-filled copy, so
 * a program built against an older, shorter struct keeps working; size 0 is
 * rejected with SHOAL_ERR_INVALID_ARG.
 *
 * Threading: everything runs on the loop's thread; call these functions
 * from it only. */
#ifndef SHOAL_SERVE_H
#define SHOAL_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal/serveconfig.h"
#include "shoal/server.h"
#include "shoal/uv_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_serve shoal_serve;
/* One client connection (valid from the auth callback until the client is
 * gone). */
typedef struct shoal_serve_conn shoal_serve_conn;

typedef struct shoal_serve_options {
    size_t size;                      /* set by shoal_serve_options_init() */
    const shoal_serve_config *config; /* finished (shoal_serve_config_finish); borrowed: it must
                                         outlive the server. Required. */
    int log_level;                    /* lines up to this level are logged: 0 = the essentials
                                         (errors, logins refused and accepted), 1 verbose, 2+ debug */
    const int *inherit_fds;           /* listening sockets to adopt instead of binding (a graceful
                                         restart hands them over); copied */
    unsigned n_inherit_fds;
} shoal_serve_options;

/* Zero-fills *o and sets its size. */
SHOAL_EXTERN void shoal_serve_options_init(shoal_serve_options *o);

/* Callback answer: let the engine decide as `shoal serve` does. */
#define SHOAL_SERVE_DEFAULT 100

/* What a session is about to run (the exec callback's view). */
typedef struct shoal_serve_exec {
    const char *kind;           /* "exec", "shell" or "subsystem" */
    const char *command;        /* what the engine would run through the user's shell (ForceCommand,
                                   command=, the policy's rewrite or the client's); NULL = a login shell */
    const char *client_command; /* what the client asked for (the subsystem's command for a
                                   subsystem); NULL for a shell */
    const char *const *env;     /* the environment the engine built ("NAME=value", NULL-terminated) */
    int pty;                    /* the client asked for a terminal (pty-req accepted) */
    const char *term;           /* its TERM ("" without a pty) */
    uint32_t cols, rows;
} shoal_serve_exec;

typedef struct shoal_serve_callbacks {
    size_t size; /* set by shoal_serve_callbacks_init() */
    /* Every log line, already escaped with shoal_strvis() (peer text cannot
     * forge lines). NULL = written to stderr with a UTC time stamp and the
     * process id, as `shoal serve` logs. */
    void (*log)(shoal_serve *srv, int level, const char *line, void *ud);
    /* An authentication attempt, once the user's settings are resolved
     * (shoal_serve_conn_user / _account_ok): return SHOAL_SERVE_DEFAULT for
     * the engine's decision, SHOAL_AUTH_DENY to refuse this attempt, or
     * SHOAL_AUTH_SUCCESS to accept it: the method then counts as done under
     * AuthenticationMethods (the answer may become PARTIAL), and for a
     * public key probe (req->proven 0) it only means "this key would do".
     * Accepting a user without a local account (account_ok 0) needs an exec
     * callback that runs the sessions: the engine runs nothing for it.
     * SHOAL_AUTH_PROMPT and SHOAL_ERR_DEFERRED are passed to the session as
     * they are (the callback then drives that exchange itself, shoal/server.h).
     * May be NULL. */
    int (*auth)(shoal_serve_conn *c, const shoal_auth_request *req, void *ud);
    /* A session is about to start what req describes: return
     * SHOAL_SERVE_DEFAULT to let the engine spawn it (as the user, in their
     * home, through their shell), 0 to make the request fail, or 1 when the
     * callback took the channel: it has set the channel's callbacks
     * (shoal_channel_set_server_callbacks, or shoal_proc_spawn) and the
     * request is answered with success; or SHOAL_ERR_DEFERRED when it took
     * the channel and answers the request itself with
     * shoal_channel_request_reply() (now, before writing output and closing,
     * or later). req and its strings are valid during
     * the call only. The engine's own refusals (CommandPolicy) happen before
     * and never reach this callback. May be NULL. */
    int (*exec)(shoal_serve_conn *c, shoal_channel *ch, const shoal_serve_exec *req, void *ud);
} shoal_serve_callbacks;

/* Zero-fills *cb and sets its size. */
SHOAL_EXTERN void shoal_serve_callbacks_init(shoal_serve_callbacks *cb);

/* Creates the server: loads the host keys (a key that does not load is
 * logged and skipped), reads the Banner file, prepares the listeners (not
 * bound yet). cb may be NULL (every decision the engine's); ud is passed to
 * the callbacks. Errors: SHOAL_ERR_INVALID_ARG (NULL loop, opts, config or
 * out, or a size of 0), SHOAL_ERR_CONFIG (no host key, no usable one, too
 * many listeners), SHOAL_ERR_NOMEM; err (if not NULL) gets a message. */
SHOAL_EXTERN int shoal_serve_new(uv_loop_t *loop, const shoal_serve_options *opts, const shoal_serve_callbacks *cb,
                                 void *ud, shoal_serve **out, char *err, size_t errsz);
/* Binds and listens (or adopts the inherited sockets). SHOAL_ERR_IO or
 * SHOAL_ERR_CONFIG with err naming the address that failed. */
SHOAL_EXTERN int shoal_serve_start(shoal_serve *srv, char *err, size_t errsz);
/* The port the first listener is bound to (useful with Port 0). */
SHOAL_EXTERN unsigned shoal_serve_bound_port(const shoal_serve *srv);
SHOAL_EXTERN unsigned shoal_serve_host_key_count(const shoal_serve *srv);
/* The driver's server underneath (listening descriptors, connection count,
 * stop accepting: what a graceful restart needs). NULL after
 * shoal_serve_close(). */
SHOAL_EXTERN shoal_uv_server *shoal_serve_uv_server(const shoal_serve *srv);
SHOAL_EXTERN uv_loop_t *shoal_serve_loop(const shoal_serve *srv);
/* Closes the listeners and every connection (their memory goes as the loop
 * runs on). Idempotent; shoal_serve_free() does it too. */
SHOAL_EXTERN void shoal_serve_close(shoal_serve *srv);
/* Frees the server. With connections possibly open, call
 * shoal_serve_close() first and run the loop until their handles are
 * closed (uv_run once more after the loop stopped): the closing sessions
 * still borrow the host keys this frees. It closes the server itself when
 * that was not done (fine before any connection came). NULL is ignored. */
SHOAL_EXTERN void shoal_serve_free(shoal_serve *srv);
/* Logs a line through the server's log (escaped; dropped above the
 * configured level). */
SHOAL_EXTERN void shoal_serve_log(shoal_serve *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- one connection ---- */

SHOAL_EXTERN shoal_serve *shoal_serve_conn_server(const shoal_serve_conn *c);
SHOAL_EXTERN shoal_uv_sconn *shoal_serve_conn_sconn(const shoal_serve_conn *c);
/* The user name the client sent ("" before the first attempt). */
SHOAL_EXTERN const char *shoal_serve_conn_user(const shoal_serve_conn *c);
/* 1 when the user is a local account this server may run commands as. */
SHOAL_EXTERN int shoal_serve_conn_account_ok(const shoal_serve_conn *c);
/* 1 once the client is logged in. */
SHOAL_EXTERN int shoal_serve_conn_authenticated(const shoal_serve_conn *c);
/* The effective per-connection settings (Match applied) for the user. */
SHOAL_EXTERN const shoal_serve_effective *shoal_serve_conn_settings(const shoal_serve_conn *c);

#ifdef __cplusplus
}
#endif
#endif
