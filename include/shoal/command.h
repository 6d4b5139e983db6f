/* shoal: remote commands as processes.
 *
 * Two pieces:
 *  - shoal_cmdline builds a command string for a POSIX shell from separate
 *    arguments (each quoted so the remote shell sees it as one word) or raw
 *    text (passed as is, for shell syntax or non-POSIX remote shells);
 *  - shoal_child runs a command on an authenticated connection with stdin,
 *    stdout and stderr streams and reports how it ended. A connection or
 *    protocol failure is reported as an error, never as an exit code: the
 *    result says which of "exit status", "killed by signal", "no status"
 *    happened, or that the command could not be run or followed at all.
 *
 * shoal_run() wraps both in one blocking call for simple scripts. */
#ifndef SHOAL_COMMAND_H
#define SHOAL_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/uv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- command lines ---- */

typedef struct shoal_cmdline shoal_cmdline;

SHOAL_EXTERN int shoal_cmdline_new(shoal_cmdline **out);
/* Appends one argument, quoted for a POSIX shell (single quotes; an
 * embedded ' becomes '\''). Arguments with NUL bytes cannot exist in C. */
SHOAL_EXTERN int shoal_cmdline_arg(shoal_cmdline *c, const char *arg);
/* Appends text exactly as given (separated by a space). */
SHOAL_EXTERN int shoal_cmdline_raw(shoal_cmdline *c, const char *text);
SHOAL_EXTERN const char *shoal_cmdline_str(const shoal_cmdline *c);
SHOAL_EXTERN void shoal_cmdline_free(shoal_cmdline *c);
/* Quotes one word into out (NUL-terminated); SHOAL_ERR_TOO_LARGE if it
 * does not fit. */
SHOAL_EXTERN int shoal_shell_quote(const char *arg, char *out, size_t outsz);

/* ---- running ---- */

typedef enum shoal_exit_kind {
    SHOAL_EXIT_ERROR = 0,  /* the command's fate is unknown: see err/message */
    SHOAL_EXIT_STATUS,     /* exited with status */
    SHOAL_EXIT_SIGNAL,     /* killed by signal */
    SHOAL_EXIT_NONE,       /* the server closed the channel without saying */
} shoal_exit_kind;

typedef struct shoal_exit {
    shoal_exit_kind kind;
    int status;               /* SHOAL_EXIT_STATUS */
    const char *signal;       /* SHOAL_EXIT_SIGNAL: name without "SIG" */
    int core_dumped;
    int err;                  /* SHOAL_EXIT_ERROR: the error code */
    const char *message;      /* SHOAL_EXIT_ERROR: what failed, naming the host */
} shoal_exit;

typedef struct shoal_child shoal_child;

typedef struct shoal_child_options {
    size_t size;              /* sizeof(shoal_child_options): set by shoal_child_options_init() (docs/API.md) */
    const char *const *env;   /* "NAME=value" strings sent as env requests (the
                                 server may refuse them: see AcceptEnv) */
    unsigned n_env;
    int pty;                  /* request a pseudo-terminal */
    const char *term;         /* TERM for the pty ("xterm" if NULL) */
    uint32_t cols, rows;
    size_t collect_limit;     /* keep up to this many bytes of stdout and of
                                 stderr when no callback is set (0 = 1 MiB) */
    uint64_t open_timeout_ms; /* channel open + exec accepted; 0 = 30 s */
    uint64_t timeout_ms;      /* whole command; 0 = none. On expiry the
                                 channel is closed and the result is an error */
} shoal_child_options;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_child_options_init(shoal_child_options *x);

typedef struct shoal_child_callbacks {
    size_t size; /* sizeof(shoal_child_callbacks): set by shoal_child_callbacks_init() (docs/API.md) */
    /* Output as it arrives; when NULL, output is collected (see
     * shoal_child_stdout). Call shoal_child_pause_output() to stop the
     * remote side when you cannot keep up. */
    void (*on_stdout)(shoal_child *ch, const uint8_t *data, size_t len, void *ud);
    void (*on_stderr)(shoal_child *ch, const uint8_t *data, size_t len, void *ud);
    /* Called once; the child stays valid until shoal_child_free(). */
    void (*on_exit)(shoal_child *ch, const shoal_exit *exit, void *ud);
} shoal_child_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_child_callbacks_init(shoal_child_callbacks *x);

/* Starts command on an authenticated connection (after on_ready), or on one
 * still authenticating (from on_authenticating: the channel then rides with
 * the final auth request; the open timeout does not expire while the
 * connection is still authenticating, and a failed login is reported as the
 * connection's error). */
SHOAL_EXTERN int shoal_child_spawn(shoal_uv_conn *conn, const char *command, const shoal_child_options *opt,
                                   const shoal_child_callbacks *cb, void *ud, shoal_child **out);
/* Queues stdin bytes (copied); they are sent as the window allows. */
SHOAL_EXTERN int shoal_child_write(shoal_child *ch, const void *data, size_t len);
/* Sends len bytes at data as stdin without copying them: they must stay
 * valid and unchanged until shoal_child_stdin_pending() is 0, the child
 * exits or it is freed. One such buffer at a time, after what
 * shoal_child_write() queued; SHOAL_ERR_BAD_STATE while one is pending
 * (shoal_child_write() too, so the order stays). */
SHOAL_EXTERN int shoal_child_write_borrowed(shoal_child *ch, const void *data, size_t len);
/* Bytes queued (or lent) for stdin and not yet sent. */
SHOAL_EXTERN size_t shoal_child_stdin_pending(const shoal_child *ch);
/* Sends EOF on stdin once the queued bytes are out. */
SHOAL_EXTERN int shoal_child_close_stdin(shoal_child *ch);
/* Delivers a signal ("TERM", "INT", "KILL"...) to the remote command. */
SHOAL_EXTERN int shoal_child_kill(shoal_child *ch, const char *signal);
/* Stops (1) or resumes (0) reading output: the window closes, so the remote
 * command blocks instead of our memory growing. */
SHOAL_EXTERN void shoal_child_pause_output(shoal_child *ch, int pause);
/* Collected output (when no callback was given). */
SHOAL_EXTERN const uint8_t *shoal_child_stdout(const shoal_child *ch, size_t *len);
SHOAL_EXTERN const uint8_t *shoal_child_stderr(const shoal_child *ch, size_t *len);
/* 1 when collected output hit collect_limit and was cut. */
SHOAL_EXTERN int shoal_child_output_truncated(const shoal_child *ch);
SHOAL_EXTERN void *shoal_child_userdata(const shoal_child *ch);
/* 1 once the server accepted the command (channel open and exec granted). */
SHOAL_EXTERN int shoal_child_started(const shoal_child *ch);
/* Frees the child; if it still runs, it is sent the TERM signal and its
 * channel is closed (closing alone does not stop a command on OpenSSH). */
SHOAL_EXTERN void shoal_child_free(shoal_child *ch);
/* Stops a command that may still run and frees the child, in the
 * background: TERM now, then, if the channel is still open after grace_ms,
 * KILL and the channel closed. No callback reaches the application after
 * this call; done(ud) is called once it is over (the connection must stay
 * open until then). Returns 1 when it goes on in the background, 0 when
 * the child was freed at once (nothing was running; done is not called). */
SHOAL_EXTERN int shoal_child_stop(shoal_child *ch, uint64_t grace_ms, void (*done)(void *ud), void *ud);

/* ---- one call ---- */

typedef struct shoal_run_result {
    shoal_exit_kind kind;
    int status;
    char signal[32];
    int core_dumped;
    int err;
    char message[512];
    uint8_t *out;   /* malloc'd, NUL-terminated; free with shoal_run_result_free */
    size_t out_len;
    uint8_t *err_out;
    size_t err_len;
    int truncated;
} shoal_run_result;

/* Connects with opt, runs command with stdin_data (may be NULL) as its
 * input, collects output and waits for the end. Returns 0 when the command
 * ran (look at res->kind), or the connection error (res->message says
 * what and where). */
SHOAL_EXTERN int shoal_run(const shoal_uv_options *opt, const char *command, const void *stdin_data,
                           size_t stdin_len, const shoal_child_options *copt, shoal_run_result *res);
SHOAL_EXTERN void shoal_run_result_free(shoal_run_result *res);

#ifdef __cplusplus
}
#endif
#endif
