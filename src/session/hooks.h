/* The session joins the layers: it installs the tables through which the
 * transport and auth report upward. */
#ifndef SHOAL_SESSION_HOOKS_H
#define SHOAL_SESSION_HOOKS_H

#include "shoal/session.h"

/* Installs the constant hook tables of the role (no allocation). */
void shoal__session_install_hooks(shoal_session *s, int is_server);

#endif
