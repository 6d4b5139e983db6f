/* shoal: local processes behind server channels (exec, shell, subsystem).
 *
 * shoal_proc_spawn() starts a program for a channel the client opened and
 * takes over that channel's server callbacks: channel data goes to the
 * process's stdin, its stdout and stderr come back as channel data and
 * extended data, both ways with flow control (we stop reading the process
 * while the client's window is full, and the client's window only reopens
 * as the process consumes its input). "signal" and "window-change" requests
 * reach the process; its exit becomes exit-status or exit-signal, then EOF
 * and CLOSE. Children are reaped (no zombies) and killed if the channel
 * goes away first.
 *
 * With a pty, the program gets a new session whose controlling terminal is
 * the pty's slave side, sized as requested. When running as root, uid/gid
 * switch users (supplementary groups set from the group database, looked up
 * before the fork). */
#ifndef SHOAL_PROC_H
#define SHOAL_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shoal/uv_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_proc shoal_proc;

typedef struct shoal_proc_options {
    size_t size;              /* sizeof(shoal_proc_options): set by shoal_proc_options_init() (docs/API.md) */
    const char *program;      /* path to execute; NULL = argv[0] */
    const char *const *argv;  /* NULL-terminated (argv[0] may be "-sh" for a login shell) */
    const char *const *env;   /* NULL-terminated "NAME=value" strings (the whole environment) */
    const char *cwd;          /* NULL = inherit */
    int switch_user;          /* set uid/gid/groups (needs root) */
    uid_t uid;
    gid_t gid;
    const char *user;         /* for supplementary groups */
    int pty;
    uint32_t cols, rows;
    const uint8_t *pty_modes; /* RFC 4254 8 encoded modes from pty-req (applied where known) */
    size_t pty_modes_len;
} shoal_proc_options;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_proc_options_init(shoal_proc_options *x);

/* Starts the process for ch. On failure err holds a message for the log. */
SHOAL_EXTERN int shoal_proc_spawn(shoal_uv_sconn *conn, shoal_channel *ch, const shoal_proc_options *opt,
                                  shoal_proc **out, char *err, size_t errsz);
SHOAL_EXTERN pid_t shoal_proc_pid(const shoal_proc *p);

#ifdef __cplusplus
}
#endif
#endif
