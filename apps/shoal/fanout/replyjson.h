/* JSON lines of the agent protocol (GoSSHa's, plus shoal's extensions),
 * shared by `shoal agent` and `shoal run --json`. */
#ifndef SHOAL_APP_REPLYJSON_H
#define SHOAL_APP_REPLYJSON_H

#include <jansson.h>
#include <stdio.h>

#include "shoal/fleet.h"

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD, as
 * GoSSHa's encoder does (use base64 for byte-exact output). */
json_t *replyjson_text(const uint8_t *d, size_t n);
json_t *replyjson_base64(const uint8_t *d, size_t n);
/* The Reply line for one host's result. id may be NULL. */
json_t *replyjson_reply(const shoal_fleet_event *ev, const char *hostname, json_t *id, int base64);
/* Writes one object as a line and flushes; steals the reference. */
int replyjson_emit(FILE *f, json_t *obj);

#endif
