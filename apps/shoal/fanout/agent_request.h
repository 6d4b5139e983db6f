/* One request line of `shoal agent` (GoSSHa's JSON-lines protocol, see
 * docs/AGENT.md), parsed and checked before anything is started: the JSON
 * itself, the action, every number against its range, the upload fields
 * and each host. Pure (no files, no connections): what a line asks for, or
 * the UserError text that answers it. Fuzzed by fuzz/fuzz_agent_request.c. */
#ifndef SHOAL_APP_AGENT_REQUEST_H
#define SHOAL_APP_AGENT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shoal/fleet.h"

#define AGENT_DEFAULT_TIMEOUT_MS 30000
#define AGENT_DEFAULT_OUTPUT_CAP (64u << 20)
/* The largest whole number every JSON reader holds exactly (2^53 - 1):
 * the upper bound of the byte and millisecond fields. */
#define AGENT_JSON_MAX_EXACT 9007199254740991ull

typedef enum agent_line_kind {
    AGENT_LINE_BLANK = 0,   /* nothing to do */
    AGENT_LINE_PASSWORD,    /* a passphrase answer nobody asked for: ignored */
    AGENT_LINE_CANCEL,
    AGENT_LINE_EXEC,        /* "ssh" */
    AGENT_LINE_UPLOAD,      /* "scp" */
} agent_line_kind;

typedef struct agent_host_req {
    char *spec;             /* as written */
    char *user;             /* from the spec, the host object or the request; NULL: the default */
    char *host;
    unsigned port;          /* 0: the request's or the default */
    const char *key_path;   /* the host object's "Key" (into root), or NULL */
} agent_host_req;

typedef struct agent_request {
    agent_line_kind kind;
    json_t *root;           /* the parsed line (owns the strings below) */
    json_t *id;             /* "Id" (borrowed from root), also on errors when the JSON parsed */
    const char *cmd;        /* EXEC */
    const char *source, *target; /* UPLOAD */
    const char *user, *key_path; /* request-wide "User" and "Key" */
    uint64_t timeout_ms;    /* AGENT_DEFAULT_TIMEOUT_MS when absent or 0 */
    uint64_t rate, host_rate, out_cap, port;
    uint32_t mode;
    int mode_given, inplace, verify, stream, base64;
    shoal_fleet_xfer xfer;
    size_t n_hosts;
    agent_host_req *hosts;
} agent_request;

/* Parses one line. 0: *r says what it asks for (free it with
 * agent_request_free). -1: err holds the (critical) UserError text; r->id
 * may still be set (free r all the same). */
int agent_request_parse(const char *text, size_t len, agent_request *r, char *err, size_t errsz);
void agent_request_free(agent_request *r);

/* Field lookup ignoring case, as GoSSHa's decoder does. */
json_t *agent_field(json_t *o, const char *name);

#endif
