/* shoal serve: graceful restart (serve_restart.c). */
#ifndef SHOAL_APP_SERVE_RESTART_H
#define SHOAL_APP_SERVE_RESTART_H

#include "shoal/serve.h"

/* Remembers argv for the re-exec. */
void serve_restart_init(char **argv);
/* Marks every descriptor above 2 close-on-exec: whatever the parent left
 * open (a log file, a socket, a secret) must not reach user sessions or the
 * AuthorizedKeysCommand. The listening sockets of a restart are among them;
 * serve_restart_begin() clears the flag on exactly those in its child. */
void serve_restart_cloexec_inherited(void);
/* Listening sockets handed over by a previous process (from the
 * environment); returns how many. */
unsigned serve_restart_inherited(int *fds, unsigned max);
/* Tells the previous process we are listening. */
void serve_restart_ready(void);
/* SIGHUP: starts the new process; 0 when under way. */
int serve_restart_begin(shoal_serve *srv);

#endif
