/* shoal: OpenSSH authorized_keys files (sshd(8) "AUTHORIZED_KEYS FILE FORMAT").
 *
 * Lines: [options] keytype base64key [comment]. Blank lines and lines whose
 * first non-blank byte is '#' are ignored. Options are comma-separated, with
 * no spaces except inside double quotes; option names are case-insensitive;
 * inside a quoted value \" stands for a quote (and nothing else is an
 * escape, as in OpenSSH). Supported options, exactly OpenSSH's set:
 *
 *   restrict               no-pty, no-port-forwarding, no-agent-forwarding,
 *                          no-X11-forwarding and no-user-rc at once
 *   [no-]pty  [no-]port-forwarding  [no-]agent-forwarding
 *   [no-]X11-forwarding  [no-]user-rc  [no-]touch-required  [no-]verify-required
 *   cert-authority         the key is a CA (never matches a plain key)
 *   command="cmd"          forced command (at most one)
 *   from="pattern-list"    client name/address patterns, CIDR allowed (at most one)
 *   principals="a,b"       for cert-authority lines (at most one)
 *   environment="NAME=v"   repeatable; the first value of each NAME is kept
 *   expiry-time="YYYYMMDD[HHMM[SS]][Z|UTC]"  repeatable; the earliest wins.
 *                          Without Z/UTC the system time zone is used.
 *   permitopen="host:port" repeatable; host may be [v6]; port may be "*"
 *   permitlisten="[host:]port"  repeatable
 *   tunnel="n"             tun device number or "any"
 *
 * Flags apply in order: "pty,restrict" ends with no pty, "restrict,pty"
 * with a pty. Empty list elements (",,", a leading or trailing comma) are
 * ignored, as OpenSSH does. A line with an unknown or malformed option is
 * never used (OpenSSH skips it too). shoal is stricter than OpenSSH in a
 * few corners, each of which can only refuse a line OpenSSH would use:
 *  - expiry-time must be a real calendar date and time (OpenSSH lets
 *    mktime() roll "20230231" over into March);
 *  - permitopen/permitlisten ports must be numbers (OpenSSH also looks
 *    service names such as "http" up in /etc/services);
 *  - local expiry times follow the zone's daylight saving rules (OpenSSH
 *    always reads them as standard time).
 *
 * Lines longer than SHOAL_AUTHKEYS_MAX_LINE bytes, or containing NUL bytes,
 * are skipped. Only the key types shoal implements can match; lines with
 * other types (ssh-dss, sk-*, certificates) are skipped. */
#ifndef SHOAL_AUTHKEYS_H
#define SHOAL_AUTHKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"
#include "shoal/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest line considered (OpenSSH documents 8 KiB; a 16384-bit RSA key
 * with a few options still fits twice over). */
#define SHOAL_AUTHKEYS_MAX_LINE (16u * 1024u)
/* Largest file shoal_authkeys_find_file() reads. */
#define SHOAL_AUTHKEYS_MAX_FILE (4u * 1024u * 1024u)
/* Per-line caps on repeatable options (OpenSSH's limits). */
#define SHOAL_AUTHKEYS_MAX_ENV 1024u
#define SHOAL_AUTHKEYS_MAX_PERMIT 4096u

/* tunnel= values besides a device number. */
#define SHOAL_AUTHKEY_TUN_NONE (-1)
#define SHOAL_AUTHKEY_TUN_ANY (-2)

typedef struct shoal_authkey_opts {
    /* Restrictions: 1 = forbidden for sessions authenticated by this key. */
    int restricted; /* "restrict" appeared */
    int no_pty;
    int no_port_forwarding;
    int no_agent_forwarding;
    int no_x11_forwarding;
    int no_user_rc;
    /* FIDO options (only meaningful for sk-* keys, which shoal does not
     * support; parsed so such lines are understood). */
    int no_touch_required;
    int verify_required;
    int cert_authority;
    char *command;    /* command="...", NULL when absent */
    char *from;       /* from="...", the raw pattern list, NULL when absent */
    char *principals; /* principals="...", NULL when absent */
    char *gateway;    /* gateway="host[:port]" (shoal extension): the sessions of a
                         login by this key go to that upstream host */
    char **environment; /* "NAME=value" strings */
    unsigned n_environment;
    char **permitopen;  /* "host:port" as written ("[::1]:22") */
    unsigned n_permitopen;
    char **permitlisten; /* "host:port"; a bare port is stored as "*:port" */
    unsigned n_permitlisten;
    int64_t expiry_time; /* unix seconds; -1 when absent */
    int64_t tunnel;      /* device number, SHOAL_AUTHKEY_TUN_ANY or SHOAL_AUTHKEY_TUN_NONE */
} shoal_authkey_opts;

/* One parsed line (for tests, fuzzing and tools). */
typedef struct shoal_authkey_line {
    shoal_authkey_opts opts;
    char keytype[64];  /* as written, e.g. "ssh-ed25519" */
    uint8_t *blob;     /* decoded key blob (malloc'd) */
    size_t blob_len;
    char *comment;     /* rest of the line after the key, trimmed; NULL when none */
} shoal_authkey_line;

/* Who is connecting, for from= and expiry-time=. */
typedef struct shoal_authkeys_peer {
    const char *ip;   /* numeric client address; NULL refuses every from= line */
    const char *host; /* canonical client host name, or NULL: the address is then
                         used as the name (sshd with UseDNS no) */
    int64_t now;      /* current unix time */
} shoal_authkeys_peer;

/* Diagnostics of a lookup, for the server log. */
typedef struct shoal_authkeys_result {
    unsigned line;         /* line of the accepted entry; 0 when none */
    unsigned refused_line; /* first line that names the key but was refused; 0 when none */
    char refused_why[192]; /* why, e.g. "key expired" or "bad options: unknown option \"foo\"" */
} shoal_authkeys_result;

SHOAL_EXTERN void shoal_authkey_opts_init(shoal_authkey_opts *o);
SHOAL_EXTERN void shoal_authkey_opts_free(shoal_authkey_opts *o);

/* Parses an options field (the part before the key type; not
 * NUL-terminated, must not contain unquoted blanks). why (optional)
 * receives the reason on SHOAL_ERR_BAD_FORMAT. *o is initialised first
 * and must be freed with shoal_authkey_opts_free() whatever the result. */
SHOAL_EXTERN int shoal_authkey_opts_parse(const char *s, size_t len, shoal_authkey_opts *o, char *why,
                                          size_t whysz);

/* Parses one line (no newline needed; a trailing "\r" or "\n" is ignored).
 * Returns 1 for a key line (*out filled), 0 for a blank or comment line,
 * SHOAL_ERR_BAD_FORMAT (why says why) or SHOAL_ERR_NOMEM. *out must be freed
 * with shoal_authkey_line_free() whatever the result. */
SHOAL_EXTERN int shoal_authkeys_parse_line(const char *line, size_t len, shoal_authkey_line *out, char *why,
                                           size_t whysz);
SHOAL_EXTERN void shoal_authkey_line_free(shoal_authkey_line *l);

/* Looks key up in an authorized_keys buffer, as sshd does: the first line
 * whose key equals key (same type and public blob), whose options parse,
 * that is not a cert-authority line, whose expiry-time has not passed
 * (peer->now) and whose from= admits the peer is accepted; refused lines do
 * not stop the scan. Returns 1 when accepted (*opts filled), 0 when not
 * (*opts empty), negative on errors. *opts must be freed with
 * shoal_authkey_opts_free() whatever the result. res is optional. */
SHOAL_EXTERN int shoal_authkeys_find(const char *buf, size_t len, const shoal_key *key,
                                     const shoal_authkeys_peer *peer, shoal_authkey_opts *opts,
                                     shoal_authkeys_result *res);
/* Same over a file: a missing file gives 0; a file that is not a regular
 * file gives SHOAL_ERR_IO; over SHOAL_AUTHKEYS_MAX_FILE, SHOAL_ERR_TOO_LARGE.
 * Permissions and ownership (StrictModes) are the caller's business.
 * Reading the file is the driver's (shoal_uv, src/uv/files.c). */
SHOAL_EXTERN int shoal_authkeys_find_file(const char *path, const shoal_key *key, const shoal_authkeys_peer *peer,
                                          shoal_authkey_opts *opts, shoal_authkeys_result *res);

/* from= with OpenSSH semantics (match_host_and_ip): 1 when o has no from=
 * or when the client is admitted, 0 otherwise. The list's entries are
 * patterns with '*', '?' and '!' negation, matched against the host name
 * (case-insensitively) and the address, plus CIDR blocks matched against
 * the address. Any matching negated entry refuses; a malformed list
 * (empty entry, inconsistent CIDR block) refuses; no client_ip refuses.
 * client_name NULL means "use the address as the name". */
SHOAL_EXTERN int shoal_authkey_from_allowed(const shoal_authkey_opts *o, const char *client_ip,
                                            const char *client_name);
/* 1 when an expiry-time is set and now_unix is past it. */
SHOAL_EXTERN int shoal_authkey_expired(const shoal_authkey_opts *o, int64_t now_unix);
/* permitopen= / no-port-forwarding for a direct-tcpip request to
 * host:port: 1 allowed, 0 refused. No permitopen= means any destination;
 * otherwise host must equal an entry's host (brackets removed; "*" = any)
 * and port its port ("*" = any). */
SHOAL_EXTERN int shoal_authkey_open_allowed(const shoal_authkey_opts *o, const char *host, unsigned port);
/* Parses an expiry-time value: 0 and *out (unix seconds), or -1. */
SHOAL_EXTERN int shoal_authkey_parse_time(const char *s, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
