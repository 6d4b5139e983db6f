/* Kept for tests/fault/flood.c, which builds raw packets into a session:
 * the session object now lives in src/session/. Do not include this from
 * src/. */
#include "session/session_impl.h"
