/* Parsing and checking `shoal agent` request lines: see agent_request.h. */
#include "agent_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/numarg.h"
#include "shoal/uv.h"

json_t *agent_field(json_t *o, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!strcasecmp(k, name))
            return v;
    }
    return NULL;
}

static const char *field_str(json_t *o, const char *name)
{
    json_t *v = agent_field(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

/* A whole number field in [lo, hi] (a JSON integer, or a real with no
 * fraction such as 1e3). Absent or null: 0 and *present = 0. Anything else
 * (a string, a fraction, a value out of range, which a cast would turn into
 * anything at all) is an error naming the field. */
static int num_field(json_t *o, const char *name, const char *label, uint64_t lo, uint64_t hi, const char *unit,
                     int *present, uint64_t *value, char *err, size_t errsz)
{
    json_t *v = agent_field(o, name);
    *value = 0;
    if (present)
        *present = 0;
    if (!v || json_is_null(v))
        return 0;
    int ok = 0;
    if (json_is_integer(v)) {
        json_int_t iv = json_integer_value(v);
        ok = iv >= 0 && (uint64_t)iv >= lo && (uint64_t)iv <= hi;
        if (ok)
            *value = (uint64_t)iv;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Compared as doubles first: only then is the conversion defined. */
        ok = d >= (double)lo && d <= (double)hi && d == (double)(uint64_t)d;
        if (ok)
            *value = (uint64_t)d;
    }
    if (!ok)
        return fail(err, errsz, "Cannot parse JSON: %s must be a whole number from %llu to %llu%s", label,
                    (unsigned long long)lo, (unsigned long long)hi, unit);
    if (present)
        *present = 1;
    return 0;
}

/* The JSON, with a fallback for whole numbers beyond 2^63, which jansson
 * refuses: read every number as a double, so that the field's own range
 * check names it (all our numeric fields are far below 2^53). */
static json_t *load(const char *text, size_t len, json_error_t *jerr)
{
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, jerr);
    if (j || !strstr(jerr->text, "too big integer"))
        return j;
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, jerr);
    json_t *idv = j && json_is_object(j) ? agent_field(j, "Id") : NULL;
    double d = idv && json_is_real(idv) ? json_real_value(idv) : 0.5;
    if (d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == (double)(json_int_t)d) {
        /* An Id that was a plain integer is echoed as one. */
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (v == idv) {
                json_object_set_new(j, k, json_integer((json_int_t)d));
                break;
            }
        }
    }
    return j;
}

static int parse_host(agent_request *r, size_t i, json_t *h, char *err, size_t errsz)
{
    agent_host_req *hr = &r->hosts[i];
    const char *spec = NULL, *user = r->user;
    if (json_is_string(h)) {
        spec = json_string_value(h);
    } else if (json_is_object(h)) {
        spec = field_str(h, "Host");
        if (field_str(h, "User"))
            user = field_str(h, "User");
        char label[64];
        snprintf(label, sizeof(label), "Hosts[%zu].Port", i);
        uint64_t p;
        int has = 0;
        if (num_field(h, "Port", label, 1, 65535, "", &has, &p, err, errsz) != 0)
            return -1;
        if (has)
            hr->port = (unsigned)p;
        hr->key_path = field_str(h, "Key");
    }
    if (!spec || !*spec)
        return fail(err, errsz, "Hosts[%zu]: expected a host name or an object with \"Host\"", i);
    char u[256] = "", host[1024];
    unsigned pp = 0;
    if (shoal_parse_destination(spec, u, sizeof(u), host, sizeof(host), &pp) != 0)
        return fail(err, errsz, "Hosts[%zu]: invalid host \"%s\" (expected [user@]host[:port] or [v6]:port)", i, spec);
    hr->spec = strdup(spec);
    hr->host = strdup(host);
    hr->user = *u ? strdup(u) : (user && *user ? strdup(user) : NULL);
    if (!hr->spec || !hr->host || ((*u || (user && *user)) && !hr->user))
        return fail(err, errsz, "out of memory");
    if (pp)
        hr->port = pp;
    else if (!hr->port)
        hr->port = (unsigned)r->port;
    return 0;
}

static int parse_numbers(agent_request *r, json_t *j, char *err, size_t errsz)
{
    const uint64_t big = AGENT_JSON_MAX_EXACT;
    if (num_field(j, "Timeout", "Timeout", 0, big, " (milliseconds)", NULL, &r->timeout_ms, err, errsz) ||
        num_field(j, "MaxThroughput", "MaxThroughput", 0, big, " (bytes per second)", NULL, &r->rate, err,
                  errsz) ||
        num_field(j, "HostThroughput", "HostThroughput", 0, big, " (bytes per second)", NULL, &r->host_rate, err,
                  errsz) ||
        num_field(j, "OutputLimit", "OutputLimit", 0, big, " (bytes)", NULL, &r->out_cap, err, errsz) ||
        num_field(j, "Port", "Port", 1, 65535, "", NULL, &r->port, err, errsz))
        return -1;
    if (!r->timeout_ms)
        r->timeout_ms = AGENT_DEFAULT_TIMEOUT_MS;
    json_t *mv = agent_field(j, "Mode");
    if (mv && !json_is_null(mv)) {
        uint64_t m = 0;
        if (json_is_string(mv)) {
            if (numarg_mode(json_string_value(mv), &r->mode) != 0)
                return fail(err, errsz, "Cannot parse JSON: Mode must be permission bits from 0 to 4095, or an "
                                        "octal string from \"0\" to \"7777\"");
        } else if (num_field(j, "Mode", "Mode", 0, 07777,
                             " (permission bits, or an octal string such as \"0644\")", NULL, &m, err, errsz) != 0) {
            return -1;
        } else {
            r->mode = (uint32_t)m;
        }
        r->mode_given = 1;
    }
    json_t *vv = agent_field(j, "Via");
    if (vv && !json_is_null(vv)) {
        const char *via = json_is_string(vv) ? json_string_value(vv) : "";
        if (!strcasecmp(via, "sftp"))
            r->xfer = SHOAL_FLEET_XFER_SFTP;
        else if (!strcasecmp(via, "scp"))
            r->xfer = SHOAL_FLEET_XFER_SCP;
        else if (!strcasecmp(via, "cat"))
            r->xfer = SHOAL_FLEET_XFER_CAT;
        else
            return fail(err, errsz, "Cannot parse JSON: Via must be \"sftp\", \"scp\" or \"cat\"");
    }
    return 0;
}

int agent_request_parse(const char *text, size_t len, agent_request *r, char *err, size_t errsz)
{
    memset(r, 0, sizeof(*r));
    err[0] = 0;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (i == len)
        return 0; /* blank lines are ignored */
    json_error_t jerr;
    json_t *j = load(text, len, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return fail(err, errsz, "Cannot parse JSON: %s", j ? "expected an object" : jerr.text);
    }
    r->root = j;
    r->id = agent_field(j, "Id");
    const char *action = field_str(j, "Action");
    if (!action) {
        if (agent_field(j, "Password")) {
            r->kind = AGENT_LINE_PASSWORD; /* a late passphrase answer: nothing asked */
            return 0;
        }
        return fail(err, errsz, "Unsupported action: %s", "");
    }
    if (!strcasecmp(action, "cancel")) {
        r->kind = AGENT_LINE_CANCEL;
        return 0;
    }
    if (!strcmp(action, "ssh"))
        r->kind = AGENT_LINE_EXEC;
    else if (!strcmp(action, "scp"))
        r->kind = AGENT_LINE_UPLOAD;
    else
        return fail(err, errsz, "Unsupported action: %s", action);
    /* Every number is range-checked before use: a double beyond the
     * target type makes the conversion undefined (1e300 ms used to time
     * out at once). */
    if (parse_numbers(r, j, err, errsz) != 0)
        return -1;
    json_t *hosts = agent_field(j, "Hosts");
    if (hosts && !json_is_array(hosts))
        return fail(err, errsz, "Cannot parse JSON: Hosts must be an array");
    r->base64 = json_is_true(agent_field(j, "Base64"));
    r->stream = json_is_true(agent_field(j, "Stream"));
    if (r->kind == AGENT_LINE_EXEC) {
        r->cmd = field_str(j, "Cmd");
        if (!r->cmd || !*r->cmd)
            return fail(err, errsz, "Empty 'Cmd'");
    } else {
        r->source = field_str(j, "Source");
        r->target = field_str(j, "Target");
        if (!r->source || !*r->source)
            return fail(err, errsz, "Empty 'Source'");
        if (!r->target || !*r->target)
            return fail(err, errsz, "Empty 'Target'");
        r->inplace = json_is_true(agent_field(j, "Inplace"));
        r->verify = json_is_true(agent_field(j, "Verify"));
    }
    r->user = field_str(j, "User");
    r->key_path = field_str(j, "Key");
    size_t n = hosts ? json_array_size(hosts) : 0;
    r->hosts = calloc(n + 1, sizeof(agent_host_req));
    if (!r->hosts)
        return fail(err, errsz, "out of memory");
    r->n_hosts = n;
    for (size_t k = 0; k < n; k++)
        if (parse_host(r, k, json_array_get(hosts, k), err, errsz) != 0)
            return -1;
    return 0;
}

void agent_request_free(agent_request *r)
{
    for (size_t i = 0; r->hosts && i < r->n_hosts; i++) {
        free(r->hosts[i].spec);
        free(r->hosts[i].user);
        free(r->hosts[i].host);
    }
    free(r->hosts);
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}
