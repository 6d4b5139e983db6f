/* "shoal serve" configuration: an sshd_config(5) subset (see
 * shoal/serveconfig.h for the keywords and the precedence rules).
 *
 * Model. Every keyword has a slot. The global section is one layer of
 * slots, each Match block another. A slot remembers whether it was set and
 * whether the command line set it. Parsing only validates and stores;
 * shoal_serve_config_for() picks, per keyword, the first matching block's
 * slot (unless the command line locked the keyword), else the global slot,
 * else the default. Nothing allocates after finish(): the effective
 * settings borrow from the slots.
 *
 * Every line is copied into a bounded NUL-terminated buffer before it is
 * looked at, and split into at most CF_MAX_ARGS arguments. */
#include "shoal/serveconfig.h"

#include <glob.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/parse_util.h"
#include "uv/files.h"

#define CF_MAX_ARGS 256u
#define CF_MAX_BLOCKS 1024u
#define CF_MAX_VALUES 4096u /* entries of one list keyword */
#define CF_MAX_CRIT 8u      /* criteria on one Match line */
#define CF_MAX_DEPTH 16u    /* Include nesting, as sshd */
#define CF_MAX_FILES 256u   /* files read through Include, in all */
#define CF_MAX_HOST 255u

/* ---- keyword table ---- */

enum kw {
    /* global only */
    KW_LISTEN,
    KW_PORT,
    KW_ADDRFAMILY,
    KW_HOSTKEY,
    KW_STRICTMODES,
    KW_LOGINGRACE,
    KW_MAXSTARTUPS,
    KW_PSMAXSTARTUPS,
    KW_PSNETBLOCK,
    KW_PSPENALTIES,
    KW_PSEXEMPT,
    KW_SUBSYSTEM,
    KW_PERMITUSERENV,
    KW_LOGLEVEL,
    /* per connection (Match-able) */
    KW_AKFILE,
    KW_AKCMD,
    KW_AKCMDUSER,
    KW_PUBKEY,
    KW_PASSWORD,
    KW_KBDINT,
    KW_EMPTYPW,
    KW_PASSWORDFILE,
    KW_AUTHMETHODS,
    KW_PERMITROOT,
    KW_MAXAUTHTRIES,
    KW_MAXSESSIONS,
    KW_FORCECMD,
    KW_ACCEPTENV,
    KW_BANNER,
    KW_CAINTERVAL,
    KW_CACOUNT,
    KW_TCPFWD,
    KW_AGENTFWD,
    KW_PERMITTTY,
    KW_X11,
    KW_CMDPOLICY,
    KW_ALLOWCMDS,
    KW_GITROOT,
    KW_GATEWAY,
    KW_GATEWAYUSER,
    KW_GATEWAYKEY,
    KW_GATEWAYKNOWNHOSTS,
    KW_COUNT,
    /* handled apart, never stored */
    KW_MATCH = 100,
    KW_INCLUDE,
    KW_IGNORED,
};

enum vtype {
    V_FLAG,      /* yes | no */
    V_UINT,      /* lo..hi */
    V_TIME,      /* sshd time format */
    V_ENUM,      /* a name from a table */
    V_ONE,       /* one argument (a path, a user); "none" -> NULL with KF_NONE */
    V_REST,      /* the rest of the line, verbatim; "none" -> NULL */
    V_LIST,      /* arguments appended across lines */
    V_FIRSTLIST, /* all arguments of the first line that sets it */
    V_SPECIAL,   /* own parser */
    V_NONE,      /* Match / Include / ignored */
};

#define KF_MATCH 1u  /* allowed inside Match */
#define KF_NONE 2u   /* "none" is a value */

typedef struct enumval {
    const char *name;
    int value;
} enumval;

static const enumval EV_FAMILY[] = {{"any", SHOAL_SERVE_AF_ANY}, {"inet", SHOAL_SERVE_AF_INET},
                                    {"inet6", SHOAL_SERVE_AF_INET6}, {NULL, 0}};
static const enumval EV_ROOT[] = {{"yes", SHOAL_SERVE_ROOT_YES},
                                  {"prohibit-password", SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD},
                                  {"without-password", SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD},
                                  {"forced-commands-only", SHOAL_SERVE_ROOT_FORCED_COMMANDS_ONLY},
                                  {"no", SHOAL_SERVE_ROOT_NO},
                                  {NULL, 0}};
static const enumval EV_FWD[] = {{"yes", SHOAL_SERVE_FWD_ALL},       {"all", SHOAL_SERVE_FWD_ALL},
                                 {"no", SHOAL_SERVE_FWD_NO},         {"local", SHOAL_SERVE_FWD_LOCAL},
                                 {"remote", SHOAL_SERVE_FWD_REMOTE}, {NULL, 0}};
static const enumval EV_POLICY[] = {{"any", SHOAL_SERVE_POLICY_ANY},
                                    {"allowlist", SHOAL_SERVE_POLICY_ALLOWLIST},
                                    {"git", SHOAL_SERVE_POLICY_GIT},
                                    {NULL, 0}};
static const enumval EV_LOGLEVEL[] = {{"QUIET", 0},   {"FATAL", 1},  {"ERROR", 2},  {"INFO", 3},
                                      {"VERBOSE", 4}, {"DEBUG", 5},  {"DEBUG1", 5}, {"DEBUG2", 6},
                                      {"DEBUG3", 7},  {NULL, 0}};

typedef struct kwdef {
    const char *name;
    int id;
    unsigned char type;
    unsigned char flags;
    uint32_t lo, hi;     /* V_UINT */
    const enumval *ev;   /* V_ENUM */
} kwdef;

static const kwdef KEYWORDS[] = {
    {"ListenAddress", KW_LISTEN, V_LIST, 0, 0, 0, NULL},
    {"Port", KW_PORT, V_LIST, 0, 0, 0, NULL},
    {"AddressFamily", KW_ADDRFAMILY, V_ENUM, 0, 0, 0, EV_FAMILY},
    {"HostKey", KW_HOSTKEY, V_LIST, 0, 0, 0, NULL},
    {"StrictModes", KW_STRICTMODES, V_FLAG, 0, 0, 0, NULL},
    {"LoginGraceTime", KW_LOGINGRACE, V_TIME, 0, 0, 0, NULL},
    {"MaxStartups", KW_MAXSTARTUPS, V_SPECIAL, 0, 0, 0, NULL},
    {"PerSourceMaxStartups", KW_PSMAXSTARTUPS, V_SPECIAL, 0, 0, 0, NULL},
    {"PerSourceNetBlockSize", KW_PSNETBLOCK, V_SPECIAL, 0, 0, 0, NULL},
    {"PerSourcePenalties", KW_PSPENALTIES, V_SPECIAL, 0, 0, 0, NULL},
    {"PerSourcePenaltyExemptList", KW_PSEXEMPT, V_SPECIAL, 0, 0, 0, NULL},
    {"Subsystem", KW_SUBSYSTEM, V_SPECIAL, 0, 0, 0, NULL},
    {"PermitUserEnvironment", KW_PERMITUSERENV, V_SPECIAL, 0, 0, 0, NULL},
    {"LogLevel", KW_LOGLEVEL, V_ENUM, 0, 0, 0, EV_LOGLEVEL},
    {"AuthorizedKeysFile", KW_AKFILE, V_FIRSTLIST, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"AuthorizedKeysCommand", KW_AKCMD, V_REST, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"AuthorizedKeysCommandUser", KW_AKCMDUSER, V_ONE, KF_MATCH, 0, 0, NULL},
    {"PubkeyAuthentication", KW_PUBKEY, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"PasswordAuthentication", KW_PASSWORD, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"KbdInteractiveAuthentication", KW_KBDINT, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"ChallengeResponseAuthentication", KW_KBDINT, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"PermitEmptyPasswords", KW_EMPTYPW, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"PasswordFile", KW_PASSWORDFILE, V_ONE, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"AuthenticationMethods", KW_AUTHMETHODS, V_SPECIAL, KF_MATCH, 0, 0, NULL},
    {"PermitRootLogin", KW_PERMITROOT, V_ENUM, KF_MATCH, 0, 0, EV_ROOT},
    {"MaxAuthTries", KW_MAXAUTHTRIES, V_UINT, KF_MATCH, 1, 1000, NULL},
    {"MaxSessions", KW_MAXSESSIONS, V_UINT, KF_MATCH, 0, 10000, NULL},
    {"ForceCommand", KW_FORCECMD, V_REST, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"AcceptEnv", KW_ACCEPTENV, V_LIST, KF_MATCH, 0, 0, NULL},
    {"Banner", KW_BANNER, V_ONE, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"ClientAliveInterval", KW_CAINTERVAL, V_TIME, KF_MATCH, 0, 0, NULL},
    {"ClientAliveCountMax", KW_CACOUNT, V_UINT, KF_MATCH, 0, 1000000, NULL},
    {"AllowTcpForwarding", KW_TCPFWD, V_ENUM, KF_MATCH, 0, 0, EV_FWD},
    {"AllowAgentForwarding", KW_AGENTFWD, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"PermitTTY", KW_PERMITTTY, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"X11Forwarding", KW_X11, V_FLAG, KF_MATCH, 0, 0, NULL},
    {"CommandPolicy", KW_CMDPOLICY, V_ENUM, KF_MATCH, 0, 0, EV_POLICY},
    {"AllowCommands", KW_ALLOWCMDS, V_LIST, KF_MATCH, 0, 0, NULL},
    {"GitRoot", KW_GITROOT, V_ONE, KF_MATCH, 0, 0, NULL},
    /* The gateway (shoal extension): sessions of matching users are
     * forwarded to an upstream SSH server. */
    {"Gateway", KW_GATEWAY, V_ONE, KF_MATCH | KF_NONE, 0, 0, NULL},
    {"GatewayUser", KW_GATEWAYUSER, V_ONE, KF_MATCH, 0, 0, NULL},
    {"GatewayIdentityFile", KW_GATEWAYKEY, V_ONE, KF_MATCH, 0, 0, NULL},
    {"GatewayKnownHostsFile", KW_GATEWAYKNOWNHOSTS, V_ONE, KF_MATCH, 0, 0, NULL},
    {"Match", KW_MATCH, V_NONE, KF_MATCH, 0, 0, NULL},
    {"Include", KW_INCLUDE, V_NONE, KF_MATCH, 0, 0, NULL},
    /* Accepted and ignored: features shoal does not have, where ignoring
     * the line cannot admit anything the file meant to refuse. */
    {"UsePAM", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"PrintMotd", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"PrintLastLog", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"SyslogFacility", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"UseDNS", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"TCPKeepAlive", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"Compression", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"PidFile", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"DebianBanner", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"VersionAddendum", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
    {"X11DisplayOffset", KW_IGNORED, V_NONE, KF_MATCH, 0, 0, NULL},
    {"X11UseLocalhost", KW_IGNORED, V_NONE, KF_MATCH, 0, 0, NULL},
    {"XAuthLocation", KW_IGNORED, V_NONE, 0, 0, 0, NULL},
};

/* sshd keywords shoal knows about but does not implement: naming them in
 * the error is friendlier than "unknown", and ignoring them could grant
 * access the file means to refuse (AllowUsers, ChrootDirectory, ...). */
static const char *const UNSUPPORTED[] = {
    "AllowGroups", "AllowUsers", "DenyGroups", "DenyUsers", "ChrootDirectory", "PermitOpen", "PermitListen",
    "PermitTunnel", "GatewayPorts", "AllowStreamLocalForwarding", "DisableForwarding", "HostCertificate",
    "TrustedUserCAKeys", "RevokedKeys", "AuthorizedPrincipalsFile", "AuthorizedPrincipalsCommand",
    "AuthorizedPrincipalsCommandUser", "HostbasedAuthentication", "GSSAPIAuthentication",
    "KerberosAuthentication", "Ciphers", "MACs", "KexAlgorithms", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "CASignatureAlgorithms", "RekeyLimit", "SetEnv", "PermitUserRC", "ExposeAuthInfo",
    "ChannelTimeout", "UnusedConnectionTimeout", "HostKeyAgent", "IgnoreRhosts", "IgnoreUserKnownHosts",
    "RequiredRSASize", "SecurityKeyProvider",
    "StreamLocalBindMask", "StreamLocalBindUnlink", "PubkeyAuthOptions", "ModuliFile", "IPQoS", "LogVerbose",
    "FingerprintHash", "HostbasedAcceptedAlgorithms", "MaxStartupsPerSource",
};

static const kwdef *kw_find(const char *name)
{
    for (size_t i = 0; i < sizeof(KEYWORDS) / sizeof(KEYWORDS[0]); i++)
        if (strcasecmp(KEYWORDS[i].name, name) == 0)
            return &KEYWORDS[i];
    return NULL;
}

static const char *kw_unsupported(const char *name)
{
    for (size_t i = 0; i < sizeof(UNSUPPORTED) / sizeof(UNSUPPORTED[0]); i++)
        if (strcasecmp(UNSUPPORTED[i], name) == 0)
            return UNSUPPORTED[i];
    return NULL;
}

/* ---- storage ---- */

typedef struct slot {
    unsigned char set;     /* a value was stored */
    unsigned char cmdline; /* (global layer) it came from the command line */
    int64_t num;           /* flags, numbers, times, enums */
    char *str;             /* V_ONE / V_REST values; NULL for "none" */
    char **list;           /* lists; subsystem names */
    unsigned n;
    char **list2;          /* subsystem commands, parallel to list */
    shoal_serve_method_list *methods;
    unsigned n_methods;
    unsigned ms[3];        /* MaxStartups begin, rate, full; PerSourceNetBlockSize v4, v6 */
    struct penslot *pen;   /* PerSourcePenalties */
} slot;

typedef struct layer {
    slot s[KW_COUNT];
} layer;

enum { CRIT_ALL, CRIT_USER, CRIT_ADDRESS };

typedef struct block {
    layer L;
    unsigned n_crit;
    int crit_type[CF_MAX_CRIT];
    char *crit_pat[CF_MAX_CRIT];
} block;

struct shoal_serve_config {
    layer global;
    block **blocks;
    unsigned n_blocks;
    unsigned files_read;
    int finished;
    /* Resolved at finish. */
    shoal_serve_global g;
    shoal_serve_listen *listen;
    unsigned *ports;
    shoal_serve_subsystem *subsystems;
};

static void free_list(char **l, unsigned n)
{
    if (!l)
        return;
    for (unsigned i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* PerSourcePenalties as parsed: -1 = not given (the default applies). */
typedef struct penslot {
    int enabled;
    int64_t authfail, noauth, grace, max, min, sources4, sources6;
    int overflow, overflow6; /* 1 deny-all, 0 permissive */
} penslot;

static void slot_clear(slot *s)
{
    free(s->pen);
    free(s->str);
    free_list(s->list, s->n);
    free_list(s->list2, s->n);
    free(s->methods);
    memset(s, 0, sizeof(*s));
}

static void layer_clear(layer *l)
{
    for (unsigned i = 0; i < KW_COUNT; i++)
        slot_clear(&l->s[i]);
}

static void block_free(block *b)
{
    if (!b)
        return;
    layer_clear(&b->L);
    for (unsigned i = 0; i < b->n_crit; i++)
        free(b->crit_pat[i]);
    free(b);
}

shoal_serve_config *shoal_serve_config_new(void)
{
    return calloc(1, sizeof(shoal_serve_config));
}

void shoal_serve_config_free(shoal_serve_config *cfg)
{
    if (!cfg)
        return;
    layer_clear(&cfg->global);
    for (unsigned i = 0; i < cfg->n_blocks; i++)
        block_free(cfg->blocks[i]);
    free(cfg->blocks);
    free(cfg->listen);
    free(cfg->ports);
    free(cfg->subsystems);
    free(cfg);
}

/* ---- parser state and errors ---- */

typedef struct pstate {
    shoal_serve_config *cfg;
    const char *name;    /* file name or "command line" */
    unsigned line;       /* 0 on the command line */
    int cur;             /* current Match block, -1 = global section */
    int cmdline;
    int allow_include;
    unsigned depth;
    const char *basedir; /* for relative Include paths */
    char *err;
    size_t errsz;
} pstate;

static int perr(const pstate *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(const pstate *ps, const char *fmt, ...)
{
    if (ps->err && ps->errsz) {
        int n = ps->line ? snprintf(ps->err, ps->errsz, "%s:%u: ", ps->name, ps->line)
                         : snprintf(ps->err, ps->errsz, "%s: ", ps->name);
        if (n >= 0 && (size_t)n < ps->errsz) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + n, ps->errsz - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return SHOAL_ERR_CONFIG;
}

/* A printable, bounded copy of untrusted text for error messages. */
static const char *shown(const char *s, char *buf, size_t bufsz)
{
    size_t i = 0, max = bufsz - 4;
    for (; s[i] && i < max; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s[i] && i >= 3) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = 0;
    return buf;
}
#define SHOWN(s) shown((s), shown_buf, sizeof(shown_buf))

/* ---- lexical helpers ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == '\v';
}

/* Splits s into arguments as sshd's argv_split(): blanks separate, "..."
 * and '...' group, \\ \" \' (and "\ " outside quotes) escape, a '#' at the
 * start of an argument ends the line. out must hold 2 * strlen(s) + 2
 * bytes. ends[i] is the offset in s just past argument i. Returns the
 * count, -1 for an unterminated quote, -2 for too many arguments. */
static int split_args(const char *s, char *out, char **argv, size_t *ends)
{
    size_t i = 0, o = 0;
    int n = 0;
    for (;;) {
        while (s[i] == ' ' || s[i] == '\t')
            i++;
        if (!s[i] || s[i] == '#')
            return n;
        if ((unsigned)n == CF_MAX_ARGS)
            return -2;
        argv[n] = out + o;
        char q = 0;
        for (; s[i]; i++) {
            char c = s[i], d = s[i + 1];
            if (c == '\\' && (d == '\'' || d == '"' || d == '\\' || (!q && d == ' '))) {
                out[o++] = d;
                i++;
            } else if (!q && (c == ' ' || c == '\t')) {
                break;
            } else if (!q && (c == '"' || c == '\'')) {
                q = c;
            } else if (q && c == q) {
                q = 0;
            } else {
                out[o++] = c;
            }
        }
        if (q)
            return -1;
        out[o++] = 0;
        ends[n++] = i;
    }
}

/* Checks the %-tokens of a template against the allowed letters.
 * Returns 0, or the offending character ('%' for a trailing '%'). */
static int bad_token(const char *s, const char *allowed)
{
    for (; *s; s++) {
        if (*s != '%')
            continue;
        s++;
        if (!*s)
            return '%';
        if (*s != '%' && !strchr(allowed, *s))
            return (unsigned char)*s;
    }
    return 0;
}

/* "host", "host:port", "[host]:port", "[host]" or a bare IPv6 address.
 * port 0 = not given. Returns 0 or -1. */
static int parse_listen(const char *s, char *host, size_t hostsz, unsigned *port)
{
    const char *h = s, *p = NULL;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        if (rb[1] == ':')
            p = rb + 2;
        else if (rb[1] != 0)
            return -1;
    } else {
        const char *c = strchr(s, ':');
        if (c && !strchr(c + 1, ':')) {
            hl = (size_t)(c - s);
            p = c + 1;
        } else {
            hl = strlen(s); /* no colon, or an IPv6 address without brackets */
        }
    }
    if (hl == 0 || hl >= hostsz || hl > CF_MAX_HOST)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f || h[i] == '[' || h[i] == ']')
            return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = 0;
    if (p) {
        uint64_t n;
        if (shoal_pu_parse_uint(p, 1, 65535, &n) != 0)
            return -1;
        *port = (unsigned)n;
    }
    return 0;
}

static int list_push(slot *v, const char *s)
{
    if (v->n >= CF_MAX_VALUES)
        return SHOAL_ERR_TOO_LARGE;
    char *d = strdup(s);
    char **nl = realloc(v->list, ((size_t)v->n + 1) * sizeof(*nl));
    if (!d || !nl) {
        free(d);
        if (nl)
            v->list = nl;
        return SHOAL_ERR_NOMEM;
    }
    v->list = nl;
    v->list[v->n++] = d;
    return SHOAL_OK;
}

/* ---- values ---- */

typedef struct args {
    char **v;
    int n;
    const char *rest;  /* the raw text after the keyword */
    const size_t *ends;
} args;

/* The verbatim text of arguments first..last (quotes and escapes kept,
 * a trailing comment dropped), malloc'd. */
static char *raw_args(const args *a, int first)
{
    size_t start = first ? a->ends[first - 1] : 0, end = a->ends[a->n - 1];
    while (start < end && is_blank(a->rest[start]))
        start++;
    return strndup(a->rest + start, end - start);
}

static int need_one(const pstate *ps, const kwdef *k, const args *a)
{
    char shown_buf[64];
    if (a->n < 1)
        return perr(ps, "%s: missing argument", k->name);
    if (a->n > 1)
        return perr(ps, "%s: unexpected extra argument \"%s\"", k->name, SHOWN(a->v[1]));
    if (!a->v[0][0])
        return perr(ps, "%s: empty argument", k->name);
    return SHOAL_OK;
}

static int parse_methods(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    if (a->n < 1)
        return perr(ps, "%s: missing argument", k->name);
    if (a->n == 1 && strcmp(a->v[0], "any") == 0)
        return SHOAL_OK; /* n_methods = 0 */
    if ((unsigned)a->n > SHOAL_SERVE_MAX_METHOD_LISTS)
        return perr(ps, "%s: more than %u lists", k->name, SHOAL_SERVE_MAX_METHOD_LISTS);
    v->methods = calloc((size_t)a->n, sizeof(*v->methods));
    if (!v->methods)
        return SHOAL_ERR_NOMEM;
    for (int i = 0; i < a->n; i++) {
        shoal_serve_method_list *ml = &v->methods[v->n_methods++];
        const char *p = a->v[i];
        for (;;) {
            size_t l = strcspn(p, ",");
            char name[40];
            if (l == 0)
                return perr(ps, "%s: empty method name in \"%s\"", k->name, SHOWN(a->v[i]));
            snprintf(name, sizeof(name), "%.*s", (int)(l < 39 ? l : 39), p);
            shoal_serve_method m;
            if (l == 9 && memcmp(p, "publickey", 9) == 0)
                m = SHOAL_SERVE_METHOD_PUBLICKEY;
            else if (l == 8 && memcmp(p, "password", 8) == 0)
                m = SHOAL_SERVE_METHOD_PASSWORD;
            else if (l == 20 && memcmp(p, "keyboard-interactive", 20) == 0)
                m = SHOAL_SERVE_METHOD_KBDINT;
            else if (strcmp(name, "any") == 0)
                return perr(ps, "%s: \"any\" must be the only argument", k->name);
            else
                return perr(ps, "%s: unsupported method \"%s\" (publickey, password, keyboard-interactive)",
                            k->name, SHOWN(name));
            if (ml->n >= SHOAL_SERVE_MAX_METHODS)
                return perr(ps, "%s: more than %u methods in one list", k->name, SHOAL_SERVE_MAX_METHODS);
            ml->m[ml->n++] = m;
            if (!p[l])
                break;
            p += l + 1;
        }
    }
    return SHOAL_OK;
}

static int parse_maxstartups(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    int rc = need_one(ps, k, a);
    if (rc)
        return rc;
    char tmp[64];
    if (strlen(a->v[0]) >= sizeof(tmp))
        return perr(ps, "%s: bad value \"%s\"", k->name, SHOWN(a->v[0]));
    strcpy(tmp, a->v[0]);
    char *part[3] = {tmp, NULL, NULL};
    int nparts = 1;
    for (char *c = tmp; *c; c++)
        if (*c == ':') {
            if (nparts == 3)
                return perr(ps, "%s: expected start[:rate:full], got \"%s\"", k->name, SHOWN(a->v[0]));
            *c = 0;
            part[nparts++] = c + 1;
        }
    if (nparts == 2)
        return perr(ps, "%s: expected start[:rate:full], got \"%s\"", k->name, SHOWN(a->v[0]));
    uint64_t n[3] = {0, 100, 0};
    for (int i = 0; i < nparts; i++)
        if (shoal_pu_parse_uint(part[i], 0, 100000, &n[i]) != 0)
            return perr(ps, "%s: not a number: \"%s\"", k->name, SHOWN(part[i]));
    if (nparts == 1)
        n[2] = n[0];
    if (n[2] < 1 || n[0] > n[2] || n[1] < 1 || n[1] > 100)
        return perr(ps, "%s: need start <= full, full >= 1 and 1 <= rate <= 100", k->name);
    v->ms[0] = (unsigned)n[0];
    v->ms[1] = (unsigned)n[1];
    v->ms[2] = (unsigned)n[2];
    return SHOAL_OK;
}

static int parse_psmaxstartups(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    int rc = need_one(ps, k, a);
    if (rc)
        return rc;
    uint64_t n = 0;
    if (strcmp(a->v[0], "none") != 0 && shoal_pu_parse_uint(a->v[0], 1, 100000, &n) != 0)
        return perr(ps, "%s: expected a number (1..100000) or none, got \"%s\"", k->name, SHOWN(a->v[0]));
    v->num = (int64_t)n; /* 0 = none */
    return SHOAL_OK;
}

static int parse_psnetblock(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    int rc = need_one(ps, k, a);
    if (rc)
        return rc;
    char tmp[32];
    if (strlen(a->v[0]) >= sizeof(tmp))
        return perr(ps, "%s: bad value \"%s\"", k->name, SHOWN(a->v[0]));
    strcpy(tmp, a->v[0]);
    char *six = strchr(tmp, ':');
    if (six)
        *six++ = 0;
    uint64_t b4 = 32, b6 = 128;
    /* 0 would make every address one block: refused (MaxStartups is that). */
    if (shoal_pu_parse_uint(tmp, 1, 32, &b4) != 0 || (six && shoal_pu_parse_uint(six, 1, 128, &b6) != 0))
        return perr(ps, "%s: expected ipv4bits[:ipv6bits] (1..32, 1..128), got \"%s\"", k->name,
                    SHOWN(a->v[0]));
    v->ms[0] = (unsigned)b4;
    v->ms[1] = (unsigned)b6;
    return SHOAL_OK;
}

static int parse_pspenalties(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    if (a->n < 1)
        return perr(ps, "%s: missing argument", k->name);
    penslot *p = calloc(1, sizeof(*p));
    if (!p)
        return SHOAL_ERR_NOMEM;
    v->pen = p;
    p->enabled = p->overflow = p->overflow6 = -1;
    p->authfail = p->noauth = p->grace = p->max = p->min = p->sources4 = p->sources6 = -1;
    static const struct {
        const char *name;
        size_t off;
        int number; /* a count, not a time */
    } times[] = {
        {"authfail:", offsetof(penslot, authfail), 0},   {"noauth:", offsetof(penslot, noauth), 0},
        {"grace-exceeded:", offsetof(penslot, grace), 0}, {"max:", offsetof(penslot, max), 0},
        {"min:", offsetof(penslot, min), 0},             {"max-sources4:", offsetof(penslot, sources4), 1},
        {"max-sources6:", offsetof(penslot, sources6), 1},
    };
    for (int i = 0; i < a->n; i++) {
        const char *arg = a->v[i];
        if (strcasecmp(arg, "yes") == 0 || strcasecmp(arg, "no") == 0) {
            if (a->n > 1)
                return perr(ps, "%s: \"%s\" must appear alone", k->name, SHOWN(arg));
            p->enabled = strcasecmp(arg, "yes") == 0;
            return SHOAL_OK;
        }
        if (strncmp(arg, "overflow:", 9) == 0 || strncmp(arg, "overflow6:", 10) == 0) {
            int six = arg[8] == '6';
            const char *m = arg + (six ? 10 : 9);
            int deny = strcmp(m, "deny-all") == 0;
            if (!deny && strcmp(m, "permissive") != 0)
                return perr(ps, "%s: unsupported overflow mode \"%s\" (deny-all, permissive)", k->name, SHOWN(m));
            int *dst = six ? &p->overflow6 : &p->overflow;
            if (*dst < 0)
                *dst = deny;
            p->enabled = 1;
            continue;
        }
        if (strncmp(arg, "crash:", 6) == 0)
            return perr(ps, "%s: crash: is not supported by shoal serve (one process: a crash ends every "
                            "connection, and no source can be charged with it)",
                        k->name);
        size_t t = 0;
        while (t < sizeof(times) / sizeof(times[0]) && strncmp(arg, times[t].name, strlen(times[t].name)) != 0)
            t++;
        if (t == sizeof(times) / sizeof(times[0]))
            return perr(ps, "%s: unsupported keyword \"%s\"", k->name, SHOWN(arg));
        const char *val = arg + strlen(times[t].name);
        uint64_t n;
        if (times[t].number ? shoal_pu_parse_uint(val, 1, 16u * 1024u * 1024u, &n) != 0
                            : shoal_pu_parse_time(val, &n) != 0)
            return perr(ps, "%s: invalid %s value \"%s\"", k->name, times[t].number ? "number" : "time",
                        SHOWN(val));
        int64_t *dst = (int64_t *)(void *)((char *)p + times[t].off);
        if (*dst < 0)
            *dst = (int64_t)n;
        p->enabled = 1; /* any keyword enables penalties, as sshd */
    }
    return SHOAL_OK;
}

static int parse_psexempt(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    int rc = need_one(ps, k, a);
    if (rc)
        return rc;
    if (shoal_pu_addr_match_list(NULL, a->v[0], strlen(a->v[0])) == -2)
        return perr(ps, "%s: bad address list \"%s\"", k->name, SHOWN(a->v[0]));
    v->str = strdup(a->v[0]);
    return v->str ? SHOAL_OK : SHOAL_ERR_NOMEM;
}

static int parse_subsystem(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    if (a->n < 2)
        return perr(ps, "%s: expected a name and a command", k->name);
    const char *name = a->v[0];
    if (!name[0])
        return perr(ps, "%s: empty name", k->name);
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return perr(ps, "%s: bad name \"%s\"", k->name, SHOWN(name));
    /* The command: the text after the name, as written. */
    int rc = list_push(v, name);
    if (rc)
        return rc;
    v->list2 = calloc(1, sizeof(*v->list2));
    if (!v->list2 || !(v->list2[0] = raw_args(a, 1)))
        return SHOAL_ERR_NOMEM;
    return SHOAL_OK;
}

static int parse_permituserenv(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    int rc = need_one(ps, k, a);
    if (rc)
        return rc;
    if (strcasecmp(a->v[0], "no") == 0)
        return SHOAL_OK;
    v->str = strdup(strcasecmp(a->v[0], "yes") == 0 ? "*" : a->v[0]);
    return v->str ? SHOAL_OK : SHOAL_ERR_NOMEM;
}

/* Per-keyword checks on list entries. */
static int check_list_item(const pstate *ps, const kwdef *k, const char *s)
{
    char shown_buf[64];
    char host[CF_MAX_HOST + 1];
    unsigned port;
    uint64_t n;
    if (!s[0])
        return perr(ps, "%s: empty argument", k->name);
    switch (k->id) {
    case KW_LISTEN:
        if (parse_listen(s, host, sizeof(host), &port) != 0)
            return perr(ps, "%s: bad address \"%s\" (host, host:port or [host]:port)", k->name, SHOWN(s));
        break;
    case KW_PORT:
        if (shoal_pu_parse_uint(s, 1, 65535, &n) != 0)
            return perr(ps, "%s: bad port \"%s\"", k->name, SHOWN(s));
        break;
    case KW_ACCEPTENV:
        if (strchr(s, '='))
            return perr(ps, "%s: invalid environment name \"%s\"", k->name, SHOWN(s));
        break;
    case KW_AKFILE: {
        int t = bad_token(s, "hu");
        if (t)
            return perr(ps, "%s: unsupported token %%%c in \"%s\" (use %%%%, %%h, %%u)", k->name, t, SHOWN(s));
        break;
    }
    default:
        break;
    }
    return SHOAL_OK;
}

/* Validates the arguments of keyword k into v (an empty slot). */
static int parse_value(const pstate *ps, const kwdef *k, const args *a, slot *v)
{
    char shown_buf[64];
    int rc;
    uint64_t n;
    switch (k->type) {
    case V_FLAG:
        if ((rc = need_one(ps, k, a)) != 0)
            return rc;
        if (strcasecmp(a->v[0], "yes") == 0)
            v->num = 1;
        else if (strcasecmp(a->v[0], "no") == 0)
            v->num = 0;
        else
            return perr(ps, "%s: expected yes or no, got \"%s\"", k->name, SHOWN(a->v[0]));
        return SHOAL_OK;
    case V_UINT:
        if ((rc = need_one(ps, k, a)) != 0)
            return rc;
        if (shoal_pu_parse_uint(a->v[0], 0, UINT64_MAX, &n) != 0)
            return perr(ps, "%s: not a number", k->name);
        if (n < k->lo || n > k->hi)
            return perr(ps, "%s: %s is out of range (%u..%u)", k->name, SHOWN(a->v[0]), (unsigned)k->lo,
                        (unsigned)k->hi);
        v->num = (int64_t)n;
        return SHOAL_OK;
    case V_TIME:
        if ((rc = need_one(ps, k, a)) != 0)
            return rc;
        if (shoal_pu_parse_time(a->v[0], &n) != 0)
            return perr(ps, "%s: bad time value \"%s\"", k->name, SHOWN(a->v[0]));
        v->num = (int64_t)n;
        return SHOAL_OK;
    case V_ENUM: {
        if ((rc = need_one(ps, k, a)) != 0)
            return rc;
        for (const enumval *e = k->ev; e->name; e++)
            if (strcasecmp(e->name, a->v[0]) == 0) {
                v->num = e->value;
                return SHOAL_OK;
            }
        char choices[200] = "";
        for (const enumval *e = k->ev; e->name; e++) {
            size_t l = strlen(choices);
            snprintf(choices + l, sizeof(choices) - l, "%s%s", l ? ", " : "", e->name);
        }
        return perr(ps, "%s: expected one of %s, got \"%s\"", k->name, choices, SHOWN(a->v[0]));
    }
    case V_ONE:
        if ((rc = need_one(ps, k, a)) != 0)
            return rc;
        if ((k->flags & KF_NONE) && strcmp(a->v[0], "none") == 0)
            return SHOAL_OK;
        if (k->id == KW_GITROOT) {
            if (a->v[0][0] != '/')
                return perr(ps, "%s: must be an absolute path", k->name);
            if (a->v[0][strspn(a->v[0], "/")] == 0)
                return perr(ps, "%s: must not be the file system root", k->name);
        }
        v->str = strdup(a->v[0]);
        return v->str ? SHOAL_OK : SHOAL_ERR_NOMEM;
    case V_REST: {
        if (a->n < 1)
            return perr(ps, "%s: missing argument", k->name);
        if ((k->flags & KF_NONE) && a->n == 1 && strcmp(a->v[0], "none") == 0)
            return SHOAL_OK;
        char *r = raw_args(a, 0);
        if (!r)
            return SHOAL_ERR_NOMEM;
        v->str = r;
        if (k->id == KW_AKCMD) {
            if (r[0] != '/')
                return perr(ps, "%s: must be an absolute path", k->name);
            int t = bad_token(r, "fhktUu");
            if (t)
                return perr(ps, "%s: unsupported token %%%c (use %%%%, %%f, %%h, %%k, %%t, %%U, %%u)", k->name,
                            t);
        }
        return SHOAL_OK;
    }
    case V_LIST:
    case V_FIRSTLIST:
        if (a->n < 1)
            return perr(ps, "%s: missing argument", k->name);
        /* One value per line for these, as in sshd. */
        if ((k->id == KW_LISTEN || k->id == KW_PORT || k->id == KW_HOSTKEY) && a->n > 1)
            return perr(ps, "%s: unexpected extra argument \"%s\"", k->name, SHOWN(a->v[1]));
        if ((k->flags & KF_NONE) && strcmp(a->v[0], "none") == 0) {
            if (a->n > 1)
                return perr(ps, "%s: \"none\" must be the only argument", k->name);
            return SHOAL_OK;
        }
        for (int i = 0; i < a->n; i++) {
            if ((rc = check_list_item(ps, k, a->v[i])) != 0)
                return rc;
            if ((rc = list_push(v, a->v[i])) != 0)
                return rc == SHOAL_ERR_TOO_LARGE ? perr(ps, "%s: too many values", k->name) : rc;
        }
        return SHOAL_OK;
    case V_SPECIAL:
        switch (k->id) {
        case KW_AUTHMETHODS:
            return parse_methods(ps, k, a, v);
        case KW_MAXSTARTUPS:
            return parse_maxstartups(ps, k, a, v);
        case KW_PSMAXSTARTUPS:
            return parse_psmaxstartups(ps, k, a, v);
        case KW_PSNETBLOCK:
            return parse_psnetblock(ps, k, a, v);
        case KW_PSPENALTIES:
            return parse_pspenalties(ps, k, a, v);
        case KW_PSEXEMPT:
            return parse_psexempt(ps, k, a, v);
        case KW_SUBSYSTEM:
            return parse_subsystem(ps, k, a, v);
        case KW_PERMITUSERENV:
            return parse_permituserenv(ps, k, a, v);
        default:
            break;
        }
        break;
    default:
        break;
    }
    return perr(ps, "%s: internal error", k->name);
}

/* Moves v's entries to the end of dst's lists. */
static int append_lists(slot *dst, slot *v)
{
    size_t total = (size_t)dst->n + v->n;
    if (total > CF_MAX_VALUES)
        return SHOAL_ERR_TOO_LARGE;
    char **nl = realloc(dst->list, (total ? total : 1) * sizeof(*nl));
    if (!nl)
        return SHOAL_ERR_NOMEM;
    dst->list = nl;
    if (v->list2 || dst->list2) {
        char **n2 = realloc(dst->list2, (total ? total : 1) * sizeof(*n2));
        if (!n2)
            return SHOAL_ERR_NOMEM;
        dst->list2 = n2;
    }
    for (unsigned i = 0; i < v->n; i++) {
        dst->list[dst->n + i] = v->list[i];
        if (dst->list2)
            dst->list2[dst->n + i] = v->list2 ? v->list2[i] : NULL;
    }
    dst->n = (unsigned)total;
    free(v->list);
    free(v->list2);
    v->list = v->list2 = NULL;
    v->n = 0;
    return SHOAL_OK;
}

/* Stores a validated value following the precedence rules; v is consumed. */
static int store(pstate *ps, const kwdef *k, slot *v)
{
    char shown_buf[64];
    layer *L = ps->cur < 0 ? &ps->cfg->global : &ps->cfg->blocks[ps->cur]->L;
    slot *dst = &L->s[k->id];
    int accumulate = k->type == V_LIST || k->id == KW_SUBSYSTEM;
    int rc = SHOAL_OK;
    if (ps->cur < 0 && !ps->cmdline && dst->cmdline) {
        slot_clear(v); /* the command line decided this keyword */
        return SHOAL_OK;
    }
    if (accumulate) {
        if (k->id == KW_SUBSYSTEM)
            for (unsigned i = 0; i < dst->n; i++)
                if (strcmp(dst->list[i], v->list[0]) == 0) {
                    rc = perr(ps, "%s: \"%s\" is already defined", k->name, SHOWN(v->list[0]));
                    slot_clear(v);
                    return rc;
                }
        rc = append_lists(dst, v);
        slot_clear(v);
        if (rc == SHOAL_ERR_TOO_LARGE)
            return perr(ps, "%s: too many values", k->name);
        if (rc)
            return rc;
        dst->set = 1;
        dst->cmdline |= (unsigned char)ps->cmdline;
        return SHOAL_OK;
    }
    if (k->id == KW_PSPENALTIES && dst->set && dst->pen && v->pen) {
        /* Several lines add up: for each keyword its first value wins, and
         * (as in sshd) a keyword taken from a later line turns penalties on
         * even after an earlier "no"; a later "yes"/"no" changes nothing. */
        penslot *d = dst->pen, *n = v->pen;
        int64_t *dv[] = {&d->authfail, &d->noauth, &d->grace, &d->max, &d->min, &d->sources4, &d->sources6};
        int64_t *nv[] = {&n->authfail, &n->noauth, &n->grace, &n->max, &n->min, &n->sources4, &n->sources6};
        int took = 0;
        for (size_t i = 0; i < sizeof(dv) / sizeof(dv[0]); i++)
            if (*dv[i] < 0 && *nv[i] >= 0) {
                *dv[i] = *nv[i];
                took = 1;
            }
        if (d->overflow < 0 && n->overflow >= 0) {
            d->overflow = n->overflow;
            took = 1;
        }
        if (d->overflow6 < 0 && n->overflow6 >= 0) {
            d->overflow6 = n->overflow6;
            took = 1;
        }
        if (took)
            d->enabled = 1;
        slot_clear(v);
        return SHOAL_OK;
    }
    if (dst->set) {
        slot_clear(v); /* first value wins */
        return SHOAL_OK;
    }
    *dst = *v;
    dst->set = 1;
    dst->cmdline = (unsigned char)ps->cmdline;
    memset(v, 0, sizeof(*v));
    return SHOAL_OK;
}

/* ---- Match ---- */

static int new_block(pstate *ps, block **out)
{
    shoal_serve_config *cfg = ps->cfg;
    if (cfg->n_blocks >= CF_MAX_BLOCKS)
        return perr(ps, "too many Match blocks (at most %u)", CF_MAX_BLOCKS);
    block **nb = realloc(cfg->blocks, ((size_t)cfg->n_blocks + 1) * sizeof(*nb));
    if (!nb)
        return SHOAL_ERR_NOMEM;
    cfg->blocks = nb;
    block *b = calloc(1, sizeof(*b));
    if (!b)
        return SHOAL_ERR_NOMEM;
    cfg->blocks[cfg->n_blocks] = b;
    ps->cur = (int)cfg->n_blocks++;
    *out = b;
    return SHOAL_OK;
}

static int parse_match(pstate *ps, const args *a)
{
    char shown_buf[64];
    if (ps->cmdline)
        return perr(ps, "Match is not allowed on the command line");
    if (a->n < 1)
        return perr(ps, "Match: missing criteria");
    block *b;
    int rc = new_block(ps, &b);
    if (rc)
        return rc;
    for (int i = 0; i < a->n;) {
        const char *c = a->v[i];
        int type;
        if (strcasecmp(c, "all") == 0) {
            if (a->n != 1)
                return perr(ps, "Match: \"All\" cannot be combined with other criteria");
            b->crit_type[b->n_crit++] = CRIT_ALL;
            return SHOAL_OK;
        } else if (strcasecmp(c, "user") == 0) {
            type = CRIT_USER;
        } else if (strcasecmp(c, "address") == 0) {
            type = CRIT_ADDRESS;
        } else {
            return perr(ps, "Match: unsupported criterion \"%s\" (User, Address or All)", SHOWN(c));
        }
        if (i + 1 >= a->n || !a->v[i + 1][0])
            return perr(ps, "Match: %s needs a pattern list", SHOWN(c));
        const char *pat = a->v[i + 1];
        if (type == CRIT_ADDRESS && shoal_pu_addr_match_list(NULL, pat, strlen(pat)) == -2)
            return perr(ps, "Match: invalid Address list \"%s\" (empty entry or inconsistent CIDR mask)",
                        SHOWN(pat));
        if (b->n_crit >= CF_MAX_CRIT)
            return perr(ps, "Match: too many criteria");
        if (!(b->crit_pat[b->n_crit] = strdup(pat)))
            return SHOAL_ERR_NOMEM;
        b->crit_type[b->n_crit++] = type;
        i += 2;
    }
    return SHOAL_OK;
}

/* After an Include, the includer's Match block continues (a Match inside
 * the included file ended with it): a new block with the same criteria
 * keeps sshd's textual order of first-wins decisions. */
static int resume_block(pstate *ps, int saved)
{
    if (ps->cur == saved)
        return SHOAL_OK;
    if (saved < 0) {
        ps->cur = -1;
        return SHOAL_OK;
    }
    const block *old = ps->cfg->blocks[saved];
    block *b;
    int rc = new_block(ps, &b);
    if (rc)
        return rc;
    for (unsigned i = 0; i < old->n_crit; i++) {
        b->crit_type[i] = old->crit_type[i];
        if (old->crit_pat[i] && !(b->crit_pat[i] = strdup(old->crit_pat[i])))
            return SHOAL_ERR_NOMEM;
        b->n_crit = i + 1;
    }
    return SHOAL_OK;
}

/* ---- lines, text, files ---- */

static int parse_buffer(pstate *ps, const char *text, size_t len);
static int parse_path(pstate *ps, const char *path);

static int do_include(pstate *ps, const args *a)
{
    char shown_buf[64];
    if (!ps->allow_include)
        return perr(ps, "Include is only supported in configuration files");
    if (a->n < 1)
        return perr(ps, "Include: missing argument");
    if (ps->depth >= CF_MAX_DEPTH)
        return perr(ps, "Include: nested too deeply");
    for (int i = 0; i < a->n; i++) {
        const char *pat = a->v[i];
        char *full = NULL;
        if (pat[0] != '/') {
            size_t l = strlen(ps->basedir) + strlen(pat) + 2;
            if (!(full = malloc(l)))
                return SHOAL_ERR_NOMEM;
            snprintf(full, l, "%s/%s", ps->basedir, pat);
            pat = full;
        }
        glob_t g;
        memset(&g, 0, sizeof(g));
        int gr = glob(pat, 0, NULL, &g);
        int rc = SHOAL_OK;
        if (gr != 0 && gr != GLOB_NOMATCH)
            rc = perr(ps, "Include: cannot expand \"%s\"", SHOWN(pat));
        for (size_t j = 0; rc == SHOAL_OK && gr == 0 && j < g.gl_pathc; j++) {
            int saved = ps->cur;
            rc = parse_path(ps, g.gl_pathv[j]);
            if (rc == SHOAL_OK)
                rc = resume_block(ps, saved);
        }
        globfree(&g);
        free(full);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

/* One line, NUL-terminated and writable. */
static int parse_line(pstate *ps, char *line)
{
    char shown_buf[64];
    size_t len = strlen(line);
    while (len > 0 && is_blank(line[len - 1]))
        line[--len] = 0;
    char *p = line;
    while (is_blank(*p))
        p++;
    if (!*p || *p == '#')
        return SHOAL_OK;
    char *kw = p;
    while (*p && !is_blank(*p) && *p != '=')
        p++;
    if (p == kw)
        return perr(ps, "missing keyword before '='");
    char sep = *p;
    if (*p)
        *p++ = 0;
    if (sep != '=') {
        while (is_blank(*p))
            p++;
        if (*p == '=')
            p++;
    }
    while (is_blank(*p))
        p++;
    const char *rest = p;

    const kwdef *k = kw_find(kw);
    if (!k) {
        const char *u = kw_unsupported(kw);
        if (u)
            return perr(ps, "keyword \"%s\" is not supported by shoal serve", u);
        return perr(ps, "unknown keyword \"%s\"", SHOWN(kw));
    }
    if (ps->cur >= 0 && !(k->flags & KF_MATCH))
        return perr(ps, "%s is not allowed inside a Match block", k->name);

    size_t rl = strlen(rest);
    char *buf = malloc(2 * rl + 2);
    char **argv = malloc(CF_MAX_ARGS * sizeof(*argv));
    size_t *ends = malloc(CF_MAX_ARGS * sizeof(*ends));
    int rc = SHOAL_OK;
    if (!buf || !argv || !ends) {
        rc = SHOAL_ERR_NOMEM;
        goto out;
    }
    int n = split_args(rest, buf, argv, ends);
    if (n == -1) {
        rc = perr(ps, "%s: unterminated quote", k->name);
        goto out;
    }
    if (n < 0) {
        rc = perr(ps, "%s: too many arguments", k->name);
        goto out;
    }
    args a = {argv, n, rest, ends};
    if (k->id == KW_MATCH) {
        rc = parse_match(ps, &a);
    } else if (k->id == KW_INCLUDE) {
        rc = do_include(ps, &a);
    } else if (k->id == KW_IGNORED) {
        if (n < 1)
            rc = perr(ps, "%s: missing argument", k->name);
    } else {
        slot v;
        memset(&v, 0, sizeof(v));
        rc = parse_value(ps, k, &a, &v);
        if (rc == SHOAL_OK)
            rc = store(ps, k, &v);
        else
            slot_clear(&v);
    }
out:
    free(buf);
    free(argv);
    free(ends);
    return rc;
}

static int parse_buffer(pstate *ps, const char *text, size_t len)
{
    char *line = malloc(SHOAL_SERVE_MAX_LINE + 1);
    if (!line)
        return SHOAL_ERR_NOMEM;
    int rc = SHOAL_OK;
    size_t off = 0;
    ps->line = 0;
    while (rc == SHOAL_OK && off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t ll = end - off;
        ps->line++;
        if (ll > SHOAL_SERVE_MAX_LINE)
            rc = perr(ps, "line longer than %u bytes", SHOAL_SERVE_MAX_LINE);
        else if (memchr(text + off, 0, ll))
            rc = perr(ps, "NUL byte in line");
        else {
            memcpy(line, text + off, ll);
            line[ll] = 0;
            rc = parse_line(ps, line);
        }
        off = end + 1;
    }
    free(line);
    return rc;
}

static int parse_path(pstate *ps, const char *path)
{
    if (++ps->cfg->files_read > CF_MAX_FILES)
        return perr(ps, "too many configuration files");
    char *data;
    size_t len;
    const char *why = NULL;
    int rc = shoal_read_file_capped(path, SHOAL_SERVE_MAX_FILE, &data, &len, &why);
    if (rc) {
        if (rc == SHOAL_ERR_NOMEM)
            return rc;
        if (ps->err && ps->errsz) {
            char shown_buf[200];
            if (ps->line)
                snprintf(ps->err, ps->errsz, "%s:%u: Include: %s: %s", ps->name, ps->line, SHOWN(path),
                         why ? why : "cannot read");
            else
                snprintf(ps->err, ps->errsz, "%s: %s", SHOWN(path), why ? why : "cannot read");
        }
        return SHOAL_ERR_CONFIG;
    }
    /* Directory of this file, for its relative Includes. */
    char *dir = strdup(path);
    if (!dir) {
        free(data);
        return SHOAL_ERR_NOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    pstate sub = *ps;
    sub.name = path;
    sub.basedir = dir;
    sub.depth = ps->depth + 1;
    rc = parse_buffer(&sub, data, len);
    ps->cur = sub.cur;
    free(dir);
    free(data);
    return rc;
}

static void pstate_init(pstate *ps, shoal_serve_config *cfg, const char *name, char *err, size_t errsz)
{
    memset(ps, 0, sizeof(*ps));
    ps->cfg = cfg;
    ps->name = name;
    ps->cur = -1;
    ps->basedir = ".";
    ps->err = err;
    ps->errsz = errsz;
    if (err && errsz)
        err[0] = 0;
}

int shoal_serve_config_apply_option(shoal_serve_config *cfg, const char *text, char *err, size_t errsz)
{
    pstate ps;
    pstate_init(&ps, cfg, "command line", err, errsz);
    if (!cfg || !text)
        return SHOAL_ERR_INVALID_ARG;
    if (cfg->finished)
        return SHOAL_ERR_BAD_STATE;
    ps.cmdline = 1;
    size_t len = strlen(text);
    if (len > SHOAL_SERVE_MAX_LINE)
        return perr(&ps, "option longer than %u bytes", SHOAL_SERVE_MAX_LINE);
    if (memchr(text, '\n', len))
        return perr(&ps, "newline in option");
    char *line = strdup(text);
    if (!line)
        return SHOAL_ERR_NOMEM;
    int rc = parse_line(&ps, line);
    free(line);
    return rc;
}

int shoal_serve_config_parse_text(shoal_serve_config *cfg, const char *text, size_t len, const char *name,
                                  char *err, size_t errsz)
{
    pstate ps;
    pstate_init(&ps, cfg, name ? name : "config", err, errsz);
    if (!cfg || (!text && len))
        return SHOAL_ERR_INVALID_ARG;
    if (cfg->finished)
        return SHOAL_ERR_BAD_STATE;
    if (len > SHOAL_SERVE_MAX_FILE) {
        perr(&ps, "configuration larger than %u bytes", SHOAL_SERVE_MAX_FILE);
        return SHOAL_ERR_TOO_LARGE;
    }
    return parse_buffer(&ps, text, len);
}

int shoal_serve_config_parse_file(shoal_serve_config *cfg, const char *path, char *err, size_t errsz)
{
    pstate ps;
    pstate_init(&ps, cfg, path ? path : "?", err, errsz);
    if (!cfg || !path)
        return SHOAL_ERR_INVALID_ARG;
    if (cfg->finished)
        return SHOAL_ERR_BAD_STATE;
    ps.allow_include = 1;
    return parse_path(&ps, path);
}

/* ---- resolution ---- */

static const char *const DEFAULT_AKFILES[] = {".ssh/authorized_keys", ".ssh/authorized_keys2"};

/* The slot deciding keyword id for a connection: command line, first
 * matching block, global section; NULL means the default. */
static const slot *pick(const shoal_serve_config *cfg, int id, const unsigned char *matched)
{
    const slot *g = &cfg->global.s[id];
    if (!g->cmdline && matched)
        for (unsigned i = 0; i < cfg->n_blocks; i++)
            if (matched[i] && cfg->blocks[i]->L.s[id].set)
                return &cfg->blocks[i]->L.s[id];
    return g->set ? g : NULL;
}

static int64_t num_or(const slot *s, int64_t dflt)
{
    return s ? s->num : dflt;
}

/* Fills the per-connection settings from the chosen slots. */
static void build_effective(const shoal_serve_config *cfg, const unsigned char *matched, shoal_serve_effective *e)
{
    const slot *s;
    memset(e, 0, sizeof(*e));
    if ((s = pick(cfg, KW_AKFILE, matched)) != NULL) {
        e->authorized_keys_files = (const char *const *)s->list;
        e->n_authorized_keys_files = s->n;
    } else {
        e->authorized_keys_files = DEFAULT_AKFILES;
        e->n_authorized_keys_files = 2;
    }
    s = pick(cfg, KW_AKCMD, matched);
    e->authorized_keys_command = s ? s->str : NULL;
    s = pick(cfg, KW_AKCMDUSER, matched);
    e->authorized_keys_command_user = s ? s->str : NULL;
    e->pubkey_authentication = (int)num_or(pick(cfg, KW_PUBKEY, matched), 1);
    e->password_authentication = (int)num_or(pick(cfg, KW_PASSWORD, matched), 1);
    e->kbd_interactive_authentication = (int)num_or(pick(cfg, KW_KBDINT, matched), 1);
    e->permit_empty_passwords = (int)num_or(pick(cfg, KW_EMPTYPW, matched), 0);
    s = pick(cfg, KW_PASSWORDFILE, matched);
    e->password_file = s ? s->str : NULL;
    if ((s = pick(cfg, KW_AUTHMETHODS, matched)) != NULL) {
        e->auth_methods = s->methods;
        e->n_auth_methods = s->n_methods;
    }
    e->permit_root_login = (shoal_serve_root)num_or(pick(cfg, KW_PERMITROOT, matched),
                                                    SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD);
    e->max_auth_tries = (unsigned)num_or(pick(cfg, KW_MAXAUTHTRIES, matched), 6);
    e->max_sessions = (unsigned)num_or(pick(cfg, KW_MAXSESSIONS, matched), 10);
    s = pick(cfg, KW_FORCECMD, matched);
    e->force_command = s ? s->str : NULL;
    if ((s = pick(cfg, KW_ACCEPTENV, matched)) != NULL) {
        e->accept_env = (const char *const *)s->list;
        e->n_accept_env = s->n;
    }
    s = pick(cfg, KW_BANNER, matched);
    e->banner = s ? s->str : NULL;
    e->client_alive_interval = (unsigned)num_or(pick(cfg, KW_CAINTERVAL, matched), 0);
    e->client_alive_count_max = (unsigned)num_or(pick(cfg, KW_CACOUNT, matched), 3);
    e->allow_tcp_forwarding = (int)num_or(pick(cfg, KW_TCPFWD, matched), SHOAL_SERVE_FWD_ALL);
    e->allow_agent_forwarding = (int)num_or(pick(cfg, KW_AGENTFWD, matched), 1);
    e->permit_tty = (int)num_or(pick(cfg, KW_PERMITTTY, matched), 1);
    e->x11_forwarding = (int)num_or(pick(cfg, KW_X11, matched), 0);
    e->command_policy = (shoal_serve_policy)num_or(pick(cfg, KW_CMDPOLICY, matched), SHOAL_SERVE_POLICY_ANY);
    if ((s = pick(cfg, KW_ALLOWCMDS, matched)) != NULL) {
        e->allow_commands = (const char *const *)s->list;
        e->n_allow_commands = s->n;
    }
    s = pick(cfg, KW_GITROOT, matched);
    e->git_root = s ? s->str : NULL;
    s = pick(cfg, KW_GATEWAY, matched);
    e->gateway = s ? s->str : NULL;
    s = pick(cfg, KW_GATEWAYUSER, matched);
    e->gateway_user = s ? s->str : NULL;
    s = pick(cfg, KW_GATEWAYKEY, matched);
    e->gateway_identity_file = s ? s->str : NULL;
    s = pick(cfg, KW_GATEWAYKNOWNHOSTS, matched);
    e->gateway_known_hosts = s ? s->str : NULL;
}

static int block_matches(const block *b, const char *user, const char *address)
{
    for (unsigned i = 0; i < b->n_crit; i++) {
        const char *p = b->crit_pat[i];
        switch (b->crit_type[i]) {
        case CRIT_ALL:
            break;
        case CRIT_USER:
            if (!user || shoal_pu_match_list(user, strlen(user), p, strlen(p), 0) != 1)
                return 0;
            break;
        case CRIT_ADDRESS:
            if (!address || shoal_pu_addr_match_list(address, p, strlen(p)) != 1)
                return 0;
            break;
        default:
            return 0;
        }
    }
    return b->n_crit > 0;
}

int shoal_serve_config_for(const shoal_serve_config *cfg, const char *user, const char *address,
                           shoal_serve_effective *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!cfg || !out)
        return SHOAL_ERR_INVALID_ARG;
    if (!cfg->finished)
        return SHOAL_ERR_BAD_STATE;
    unsigned char matched[CF_MAX_BLOCKS];
    for (unsigned i = 0; i < cfg->n_blocks; i++)
        matched[i] = (unsigned char)block_matches(cfg->blocks[i], user, address);
    build_effective(cfg, matched, out);
    return SHOAL_OK;
}

const shoal_serve_global *shoal_serve_config_global(const shoal_serve_config *cfg)
{
    return cfg && cfg->finished ? &cfg->g : NULL;
}

/* Ports and listen addresses, with duplicates dropped. */
static int resolve_listen(shoal_serve_config *cfg)
{
    const slot *ps = &cfg->global.s[KW_PORT], *ls = &cfg->global.s[KW_LISTEN];
    unsigned np = ps->n ? ps->n : 1;
    cfg->ports = calloc(np, sizeof(*cfg->ports));
    if (!cfg->ports)
        return SHOAL_ERR_NOMEM;
    unsigned k = 0;
    for (unsigned i = 0; i < ps->n; i++) {
        uint64_t v = 22;
        shoal_pu_parse_uint(ps->list[i], 1, 65535, &v); /* validated when parsed */
        int dup = 0;
        for (unsigned j = 0; j < k; j++)
            dup |= cfg->ports[j] == (unsigned)v;
        if (!dup)
            cfg->ports[k++] = (unsigned)v;
    }
    if (k == 0)
        cfg->ports[k++] = 22;
    cfg->g.ports = cfg->ports;
    cfg->g.n_ports = k;

    size_t max = ls->n ? (size_t)ls->n * k : k;
    cfg->listen = calloc(max, sizeof(*cfg->listen));
    if (!cfg->listen)
        return SHOAL_ERR_NOMEM;
    unsigned nl = 0;
    if (ls->n == 0) {
        for (unsigned j = 0; j < k; j++)
            cfg->listen[nl++] = (shoal_serve_listen){NULL, cfg->ports[j]};
    }
    for (unsigned i = 0; i < ls->n; i++) {
        char host[CF_MAX_HOST + 1];
        unsigned port;
        if (parse_listen(ls->list[i], host, sizeof(host), &port) != 0)
            continue; /* validated when parsed */
        /* Rewrite the stored entry as the bare host so entries can point at it. */
        strcpy(ls->list[i], host);
        for (unsigned j = 0; j < (port ? 1u : k); j++) {
            unsigned pt = port ? port : cfg->ports[j];
            int dup = 0;
            for (unsigned m = 0; m < nl; m++)
                dup |= cfg->listen[m].port == pt && strcmp(cfg->listen[m].host, ls->list[i]) == 0;
            if (!dup)
                cfg->listen[nl++] = (shoal_serve_listen){ls->list[i], pt};
        }
    }
    cfg->g.listen = cfg->listen;
    cfg->g.n_listen = nl;
    return SHOAL_OK;
}

static int methods_satisfiable(const slot *am, int pk, int pw, int kbd)
{
    if (!am || am->n_methods == 0)
        return 1;
    for (unsigned i = 0; i < am->n_methods; i++) {
        int ok = 1;
        for (unsigned j = 0; j < am->methods[i].n; j++) {
            shoal_serve_method m = am->methods[i].m[j];
            ok &= m == SHOAL_SERVE_METHOD_PUBLICKEY ? pk : m == SHOAL_SERVE_METHOD_PASSWORD ? pw : kbd;
        }
        if (ok)
            return 1;
    }
    return 0;
}

int shoal_serve_config_finish(shoal_serve_config *cfg, char *err, size_t errsz)
{
    pstate ps;
    pstate_init(&ps, cfg, "config", err, errsz);
    if (!cfg)
        return SHOAL_ERR_INVALID_ARG;
    if (cfg->finished)
        return SHOAL_ERR_BAD_STATE;
    const layer *G = &cfg->global;

    /* Checks sshd makes at startup, on the global settings. */
    if (G->s[KW_AKCMD].set && G->s[KW_AKCMD].str && !G->s[KW_AKCMDUSER].set)
        return perr(&ps, "AuthorizedKeysCommand requires AuthorizedKeysCommandUser");
    if (G->s[KW_GATEWAY].set && G->s[KW_GATEWAY].str &&
        (!G->s[KW_GATEWAYKEY].set || !G->s[KW_GATEWAYKNOWNHOSTS].set))
        return perr(&ps, "Gateway requires GatewayIdentityFile and GatewayKnownHostsFile");
    if (G->s[KW_CMDPOLICY].num == SHOAL_SERVE_POLICY_GIT && !G->s[KW_GITROOT].set)
        return perr(&ps, "CommandPolicy git requires GitRoot");
    for (unsigned i = 0; i < cfg->n_blocks; i++) {
        const layer *B = &cfg->blocks[i]->L;
        if (B->s[KW_CMDPOLICY].set && B->s[KW_CMDPOLICY].num == SHOAL_SERVE_POLICY_GIT &&
            !B->s[KW_GITROOT].set && !G->s[KW_GITROOT].set)
            return perr(&ps, "CommandPolicy git in a Match block requires GitRoot (in the block or globally)");
    }
    int pk = (int)num_or(G->s[KW_PUBKEY].set ? &G->s[KW_PUBKEY] : NULL, 1);
    int pw = (int)num_or(G->s[KW_PASSWORD].set ? &G->s[KW_PASSWORD] : NULL, 1);
    int kbd = (int)num_or(G->s[KW_KBDINT].set ? &G->s[KW_KBDINT] : NULL, 1);
    if (!methods_satisfiable(G->s[KW_AUTHMETHODS].set ? &G->s[KW_AUTHMETHODS] : NULL, pk, pw, kbd))
        return perr(&ps, "AuthenticationMethods cannot be satisfied by the enabled authentication methods");

    int rc = resolve_listen(cfg);
    if (rc)
        return rc;
    const slot *s = &G->s[KW_SUBSYSTEM];
    if (s->n) {
        cfg->subsystems = calloc(s->n, sizeof(*cfg->subsystems));
        if (!cfg->subsystems)
            return SHOAL_ERR_NOMEM;
        for (unsigned i = 0; i < s->n; i++)
            cfg->subsystems[i] = (shoal_serve_subsystem){s->list[i], s->list2[i]};
    }
    shoal_serve_global *g = &cfg->g;
    g->subsystems = cfg->subsystems;
    g->n_subsystems = s->n;
    g->host_keys = (const char *const *)G->s[KW_HOSTKEY].list;
    g->n_host_keys = G->s[KW_HOSTKEY].n;
    g->address_family = (int)num_or(G->s[KW_ADDRFAMILY].set ? &G->s[KW_ADDRFAMILY] : NULL, SHOAL_SERVE_AF_ANY);
    g->strict_modes = (int)num_or(G->s[KW_STRICTMODES].set ? &G->s[KW_STRICTMODES] : NULL, 1);
    g->login_grace_time = (unsigned)num_or(G->s[KW_LOGINGRACE].set ? &G->s[KW_LOGINGRACE] : NULL, 120);
    if (G->s[KW_MAXSTARTUPS].set) {
        g->max_startups_begin = G->s[KW_MAXSTARTUPS].ms[0];
        g->max_startups_rate = G->s[KW_MAXSTARTUPS].ms[1];
        g->max_startups_full = G->s[KW_MAXSTARTUPS].ms[2];
    } else {
        g->max_startups_begin = 10;
        g->max_startups_rate = 30;
        g->max_startups_full = 100;
    }
    g->per_source_max_startups = (unsigned)G->s[KW_PSMAXSTARTUPS].num; /* 0 when unset: none */
    g->per_source_netblock4 = G->s[KW_PSNETBLOCK].set ? G->s[KW_PSNETBLOCK].ms[0] : 32;
    g->per_source_netblock6 = G->s[KW_PSNETBLOCK].set ? G->s[KW_PSNETBLOCK].ms[1] : 128;
    const penslot *pen = G->s[KW_PSPENALTIES].set ? G->s[KW_PSPENALTIES].pen : NULL;
    shoal_serve_penalties *P = &g->penalties;
    /* The defaults of OpenSSH 9.8 (on, crash aside). */
    P->enabled = pen && pen->enabled >= 0 ? pen->enabled : 1;
    P->authfail = pen && pen->authfail >= 0 ? (unsigned)pen->authfail : 5;
    P->noauth = pen && pen->noauth >= 0 ? (unsigned)pen->noauth : 1;
    P->grace_exceeded = pen && pen->grace >= 0 ? (unsigned)pen->grace : 10;
    P->max = pen && pen->max >= 0 ? (unsigned)pen->max : 600;
    P->min = pen && pen->min >= 0 ? (unsigned)pen->min : 15;
    P->max_sources4 = pen && pen->sources4 >= 0 ? (unsigned)pen->sources4 : 65536;
    P->max_sources6 = pen && pen->sources6 >= 0 ? (unsigned)pen->sources6 : 65536;
    P->overflow_deny_all = pen && pen->overflow >= 0 ? pen->overflow : 0;
    P->overflow6_deny_all = pen && pen->overflow6 >= 0 ? pen->overflow6 : P->overflow_deny_all;
    g->penalty_exempt = G->s[KW_PSEXEMPT].str;
    g->permit_user_environment = G->s[KW_PERMITUSERENV].str;
    g->log_level = (int)num_or(G->s[KW_LOGLEVEL].set ? &G->s[KW_LOGLEVEL] : NULL, 3);
    cfg->finished = 1;
    return SHOAL_OK;
}
