/* shoal: "shoal serve" configuration, a documented subset of sshd_config(5).
 *
 * Syntax (as sshd): one "Keyword value..." or "Keyword=value..." per line;
 * keywords are case-insensitive, values case-sensitive; '#' starts a
 * comment at the start of a line or of an argument; arguments are split on
 * blanks, and may be quoted with "..." or '...' (\" \' \\ and "\ " escape).
 * Lines are capped at SHOAL_SERVE_MAX_LINE bytes, files at
 * SHOAL_SERVE_MAX_FILE. Unknown keywords are errors (fail closed), and so is
 * a known sshd keyword whose meaning shoal does not implement, except the
 * "ignored" list below.
 *
 * Precedence, as sshd: the first value of a single-valued keyword wins.
 * Command-line options (shoal_serve_config_apply_option, i.e. -o, -p, -h)
 * must be applied before the file is parsed, and then take precedence over
 * everything in the file, Match blocks included: a keyword given on the
 * command line makes the file's values for that keyword ignored (they are
 * still syntax-checked). For list keywords (Port, HostKey, ...) this means
 * the command-line values replace the file's, like sshd's -p.
 *
 * Global keywords (not allowed inside Match):
 *   ListenAddress host | host:port | [host]:port | IPv6   (repeatable)
 *   Port n                          (repeatable; default 22)
 *   AddressFamily any|inet|inet6
 *   HostKey path                    (repeatable)
 *   StrictModes yes|no              (default yes)
 *   LoginGraceTime time             (sshd time format; 0 = none; default 120)
 *   MaxStartups start[:rate:full]   (default 10:30:100)
 *   PerSourceMaxStartups n|none     (unauthenticated connections from one
 *                                    source block at once; default none)
 *   PerSourceNetBlockSize v4[:v6]   (prefix lengths grouping sources into
 *                                    blocks, 1..32 and 1..128; default 32:128)
 *   PerSourcePenalties yes|no|keyword:value...   (default yes, as sshd 9.8;
 *                                    see shoal_serve_penalties)
 *   PerSourcePenaltyExemptList list (addresses, CIDR blocks, wildcards,
 *                                    comma-separated; default none)
 *   Subsystem name command...       (repeatable, one per name; the command is
 *                                    the rest of the line, verbatim)
 *   PermitUserEnvironment yes|no|pattern-list   (default no)
 *   LogLevel QUIET|FATAL|ERROR|INFO|VERBOSE|DEBUG|DEBUG1|DEBUG2|DEBUG3
 *   Include glob...                 (files only, not in text or -o; relative
 *                                    paths are taken from the including
 *                                    file's directory; at most 16 deep)
 *
 * Per-connection keywords (also allowed inside Match):
 *   AuthorizedKeysFile files...|none   (tokens %% %h %u; relative = from home;
 *                                       default ".ssh/authorized_keys
 *                                       .ssh/authorized_keys2")
 *   AuthorizedKeysCommand /abs/path args...|none (rest of the line; tokens
 *                                       %% %f %h %k %t %U %u)
 *   AuthorizedKeysCommandUser user
 *   PubkeyAuthentication, PasswordAuthentication, KbdInteractiveAuthentication
 *     (alias ChallengeResponseAuthentication), PermitEmptyPasswords  yes|no
 *   PasswordFile path|none          (shoal: "user:crypt-hash" lines)
 *   AuthenticationMethods any | list...   (lists of publickey, password,
 *                                       keyboard-interactive joined by ',')
 *   PermitRootLogin yes|prohibit-password|without-password|forced-commands-only|no
 *   MaxAuthTries n (1..1000, default 6)   MaxSessions n (0..10000, default 10)
 *   ForceCommand command|none       (rest of the line, verbatim)
 *   AcceptEnv pattern...            (repeatable; names, '*' '?' allowed; see
 *                                    shoal_serve_env_allowed for the names a
 *                                    wildcard never admits)
 *   Banner path|none
 *   ClientAliveInterval time (default 0)  ClientAliveCountMax n (default 3)
 *   AllowTcpForwarding yes|all|no|local|remote   AllowAgentForwarding yes|no
 *   PermitTTY yes|no   X11Forwarding yes|no
 *   CommandPolicy any|allowlist|git (shoal; default any)
 *   AllowCommands pattern...        (shoal; repeatable; whole-command patterns)
 *   GitRoot /abs/dir                (shoal; root of the git preset)
 *
 * Match User pattern-list [Address pattern-list] | Match Address ... | Match All
 *   Criteria are ANDed. User patterns are case-sensitive wildcards with '!'
 *   negation; Address patterns may also be CIDR blocks. Other sshd criteria
 *   (Group, Host, LocalAddress, LocalPort, RDomain) are errors. A block runs
 *   to the next Match or the end of the file it is in. For each keyword the
 *   first matching block that sets it wins over the global value; for list
 *   keywords (AcceptEnv, AllowCommands) that block's whole list is used
 *   (sshd would merge the lists of all matching blocks; keeping the first
 *   is never more permissive).
 *
 * Ignored, accepted for sshd_config compatibility (any value; shoal has
 * no such feature): PrintMotd, PrintLastLog, SyslogFacility, UseDNS (shoal
 * never resolves client names), TCPKeepAlive, Compression (shoal never
 * compresses), PidFile, DebianBanner, VersionAddendum, X11DisplayOffset,
 * X11UseLocalhost, XAuthLocation, and UsePAM: shoal never uses PAM, so
 * account or session rules configured in PAM do not apply to shoal serve.
 * Other sshd keywords (AllowUsers, ChrootDirectory, PermitOpen, Ciphers...)
 * are refused with "not supported by shoal serve", because silently
 * dropping them could admit what the file means to refuse.
 *
 * Differences from sshd worth knowing: ForceCommand none clears a global
 * ForceCommand inside a Match block; AuthorizedKeysFile accepts "~/" as a
 * synonym of "%h/"; all semantics not listed here (e.g. Include inside a
 * Match block being conditional) follow sshd. */
#ifndef SHOAL_SERVECONFIG_H
#define SHOAL_SERVECONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHOAL_SERVE_MAX_LINE (16u * 1024u)
#define SHOAL_SERVE_MAX_FILE (1024u * 1024u)
/* AuthenticationMethods: at most this many lists, of at most this many methods. */
#define SHOAL_SERVE_MAX_METHOD_LISTS 16u
#define SHOAL_SERVE_MAX_METHODS 8u

typedef struct shoal_serve_config shoal_serve_config;

typedef enum shoal_serve_method {
    SHOAL_SERVE_METHOD_PUBLICKEY = 1,
    SHOAL_SERVE_METHOD_PASSWORD = 2,
    SHOAL_SERVE_METHOD_KBDINT = 3,
} shoal_serve_method;

/* One AuthenticationMethods list: every method must succeed, in order. */
typedef struct shoal_serve_method_list {
    unsigned n;
    shoal_serve_method m[SHOAL_SERVE_MAX_METHODS];
} shoal_serve_method_list;

typedef enum shoal_serve_root {
    SHOAL_SERVE_ROOT_NO = 0,
    SHOAL_SERVE_ROOT_FORCED_COMMANDS_ONLY,
    SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD,
    SHOAL_SERVE_ROOT_YES,
} shoal_serve_root;

typedef enum shoal_serve_policy {
    SHOAL_SERVE_POLICY_ANY = 0,
    SHOAL_SERVE_POLICY_ALLOWLIST,
    SHOAL_SERVE_POLICY_GIT,
} shoal_serve_policy;

/* AllowTcpForwarding: bit 1 local (-L), bit 2 remote (-R). */
enum { SHOAL_SERVE_FWD_NO = 0, SHOAL_SERVE_FWD_LOCAL = 1, SHOAL_SERVE_FWD_REMOTE = 2, SHOAL_SERVE_FWD_ALL = 3 };

enum { SHOAL_SERVE_AF_ANY = 0, SHOAL_SERVE_AF_INET = 4, SHOAL_SERVE_AF_INET6 = 6 };

/* Per-connection settings. Every pointer borrows from the config and stays
 * valid until shoal_serve_config_free(). */
typedef struct shoal_serve_effective {
    const char *const *authorized_keys_files; /* templates; n = 0 for "none" */
    unsigned n_authorized_keys_files;
    const char *authorized_keys_command;      /* NULL = none */
    const char *authorized_keys_command_user; /* NULL = unset: do not run the command */
    int pubkey_authentication;
    int password_authentication;
    int kbd_interactive_authentication;
    int permit_empty_passwords;
    const char *password_file;                /* NULL = none */
    const shoal_serve_method_list *auth_methods; /* n = 0: "any" single method */
    unsigned n_auth_methods;
    shoal_serve_root permit_root_login;
    unsigned max_auth_tries;
    unsigned max_sessions;
    const char *force_command;                /* NULL = none */
    const char *const *accept_env;
    unsigned n_accept_env;
    const char *banner;                       /* NULL = none */
    unsigned client_alive_interval;           /* seconds; 0 = off */
    unsigned client_alive_count_max;
    int allow_tcp_forwarding;                 /* SHOAL_SERVE_FWD_* */
    int allow_agent_forwarding;
    int permit_tty;
    int x11_forwarding;
    shoal_serve_policy command_policy;
    const char *const *allow_commands;
    unsigned n_allow_commands;
    const char *git_root;                     /* NULL = unset */
    const char *gateway;                      /* "host[:port]" or "[v6]:port"; NULL = none */
    const char *gateway_user;                 /* NULL = the same user name */
    const char *gateway_identity_file;
    const char *gateway_known_hosts;
} shoal_serve_effective;

typedef struct shoal_serve_listen {
    const char *host; /* NULL = every local address */
    unsigned port;
} shoal_serve_listen;

typedef struct shoal_serve_subsystem {
    const char *name;
    const char *command;
} shoal_serve_subsystem;

/* PerSourcePenalties (sshd_config(5) of OpenSSH 9.8): a source block whose
 * connections end badly accrues refusal time; once it holds at least min,
 * new connections from the block are refused until it has run down.
 * Connections already open are never affected. Keywords, separated by
 * blanks, any number of lines (for each keyword the first value wins);
 * "yes" or "no" must stand alone; any keyword enables penalties:
 *   authfail:time        a connection that made unsuccessful authentication
 *                        attempts and never logged in (default 5s)
 *   noauth:time          one that ended without attempting authentication
 *                        (default 1s)
 *   grace-exceeded:time  one closed by LoginGraceTime (default 10s)
 *   max:time             most refusal time one block can accrue (default 10m)
 *   min:time             least accrued time before refusals start (default 15s)
 *   max-sources4:n, max-sources6:n   blocks tracked per family (default 65536)
 *   overflow:deny-all|permissive     with a full table: refuse everyone not
 *                        exempt, or forget the penalty closest to expiry
 *                        (default permissive); overflow6: the same for IPv6
 *                        (default: as overflow)
 * A time of 0 turns that kind of penalty off. "crash:" is refused: shoal
 * serve is one process, a crash would end every connection at once, and
 * there is nothing a penalty could be charged to. */
typedef struct shoal_serve_penalties {
    int enabled;
    unsigned authfail, noauth, grace_exceeded, max, min; /* seconds */
    unsigned max_sources4, max_sources6;
    int overflow_deny_all, overflow6_deny_all;
} shoal_serve_penalties;

/* Global settings, valid after shoal_serve_config_finish(). */
typedef struct shoal_serve_global {
    const shoal_serve_listen *listen; /* resolved: each ListenAddress with its
                                         port, or with every Port; without
                                         ListenAddress, (NULL, port) per Port */
    unsigned n_listen;
    const unsigned *ports;
    unsigned n_ports;
    int address_family;               /* SHOAL_SERVE_AF_* */
    const char *const *host_keys;
    unsigned n_host_keys;
    int strict_modes;
    unsigned login_grace_time;        /* seconds; 0 = no limit */
    unsigned max_startups_begin, max_startups_rate, max_startups_full;
    unsigned per_source_max_startups;  /* 0 = none */
    unsigned per_source_netblock4, per_source_netblock6;
    shoal_serve_penalties penalties;
    const char *penalty_exempt;        /* PerSourcePenaltyExemptList; NULL = none */
    const shoal_serve_subsystem *subsystems;
    unsigned n_subsystems;
    const char *permit_user_environment; /* NULL = no; else a pattern list ("*" for yes) */
    int log_level;                    /* 0 quiet .. 3 info, 4 verbose, 5-7 debug1-3 */
} shoal_serve_global;

SHOAL_EXTERN shoal_serve_config *shoal_serve_config_new(void);
SHOAL_EXTERN void shoal_serve_config_free(shoal_serve_config *cfg);

/* One command-line option, "Keyword=value" or "Keyword value". err gets
 * "command line: Keyword: problem". Must come before parse_text/parse_file. */
SHOAL_EXTERN int shoal_serve_config_apply_option(shoal_serve_config *cfg, const char *text, char *err, size_t errsz);
/* Parses configuration text; name labels errors ("name:12: unknown keyword
 * \"Foo\""). Include is refused here (no file access). Returns SHOAL_OK or
 * SHOAL_ERR_CONFIG / SHOAL_ERR_TOO_LARGE / SHOAL_ERR_NOMEM. */
SHOAL_EXTERN int shoal_serve_config_parse_text(shoal_serve_config *cfg, const char *text, size_t len,
                                               const char *name, char *err, size_t errsz);
/* Reads and parses a regular file of at most SHOAL_SERVE_MAX_FILE bytes. */
SHOAL_EXTERN int shoal_serve_config_parse_file(shoal_serve_config *cfg, const char *path, char *err, size_t errsz);
/* Ends parsing: applies defaults, resolves listen addresses and checks the
 * global settings as sshd does at startup (AuthorizedKeysCommand needs
 * AuthorizedKeysCommandUser; CommandPolicy git needs GitRoot;
 * AuthenticationMethods must be satisfiable by enabled methods). */
SHOAL_EXTERN int shoal_serve_config_finish(shoal_serve_config *cfg, char *err, size_t errsz);
SHOAL_EXTERN const shoal_serve_global *shoal_serve_config_global(const shoal_serve_config *cfg);

/* The settings for a connection from address (numeric) as user, after
 * the matching Match blocks. user NULL (not known yet) or address NULL make
 * the criteria that need them fail. Needs a finished config. */
SHOAL_EXTERN int shoal_serve_config_for(const shoal_serve_config *cfg, const char *user, const char *address,
                                        shoal_serve_effective *out);

/* ---- tokens (serve_policy.c) ---- */

/* Values for %-tokens; a NULL field makes its token an error. */
typedef struct shoal_serve_tokens {
    const char *user;        /* %u */
    const char *home;        /* %h */
    const char *uid;         /* %U */
    const char *key_type;    /* %t */
    const char *key_base64;  /* %k */
    const char *fingerprint; /* %f */
} shoal_serve_tokens;

/* 1 when user is safe to put into paths and command arguments: 1..64
 * bytes of [A-Za-z0-9._@+-], not starting with '.' or '-'. The expansion
 * functions refuse any other user name (SHOAL_ERR_INVALID_ARG). */
SHOAL_EXTERN int shoal_serve_user_name_ok(const char *user);
/* Expands %% and the tokens of t in tmpl into a malloc'd *out. */
SHOAL_EXTERN int shoal_serve_expand(const char *tmpl, const shoal_serve_tokens *t, char **out);
/* Expands %u %h %% (AuthorizedKeysFile). */
SHOAL_EXTERN int shoal_serve_expand_tokens(const char *tmpl, const char *user, const char *home, char **out);
/* An AuthorizedKeysFile entry as a path: expanded, "~/" read as the home,
 * relative paths taken from the home directory. */
SHOAL_EXTERN int shoal_serve_keys_file_path(const char *tmpl, const char *user, const char *home, char **out);

/* ---- command policy (serve_policy.c) ---- */

typedef struct shoal_serve_command {
    char *command; /* what to run (shell syntax): the client's command, or for
                      git the rewritten "git-upload-pack '/abs/repo.git'" */
    char *program; /* git: "git-upload-pack" / "git-receive-pack" / "git-upload-archive" */
    char *path;    /* git: absolute repository path (for an exec without a shell) */
} shoal_serve_command;

/* Decides whether the client's exec command (NULL for a shell request) may
 * run under e's CommandPolicy:
 *  - any: yes;
 *  - allowlist: the whole command matches one AllowCommands pattern. A
 *    pattern with wildcards never admits a command containing shell
 *    metacharacters or control bytes (;&|$`<>(){}\ newline ...), so "rsync
 *    --server *" cannot be stretched into "rsync --server x; rm -rf ~";
 *    an exact pattern admits exactly itself;
 *  - git: exactly "git-upload-pack 'path'", "git-receive-pack 'path'" or
 *    "git-upload-archive 'path'" as git sends them (single quotes with
 *    '\'' and '\!' escapes; a bare path of [A-Za-z0-9._~/+@-] is accepted
 *    too; "git upload-pack" with a space as well). The path may start with
 *    "/" or "~/" and is taken relative to GitRoot; "..", "~user", control
 *    bytes and backslashes are refused. Every place git-upload-pack would
 *    look (path, path.git, path/.git, path.git/.git) must, if it exists,
 *    resolve (symlinks followed) strictly inside GitRoot and not be a
 *    regular ".git" file; at least one must exist.
 * Returns 1 allowed (*out filled; free with shoal_serve_command_free), 0
 * refused (why gets a message for the client), negative on errors. */
SHOAL_EXTERN int shoal_serve_command_allowed(const shoal_serve_effective *e, const char *command,
                                             shoal_serve_command *out, char *why, size_t whysz);
SHOAL_EXTERN void shoal_serve_command_free(shoal_serve_command *c);

/* ---- PasswordFile (serve_password.c) ---- */

/* At most this much of a PasswordFile is read. */
#define SHOAL_SERVE_MAX_PASSWORD_FILE (4u * 1024u * 1024u)
/* The setting hashed against when the file has no usable entry at all
 * (SHA-512 crypt, 5000 rounds: what `openssl passwd -6` makes). */
#define SHOAL_SERVE_DUMMY_SETTING "$6$shoalDummySalt$"

/* crypt(3)-like: hashes password with setting (a full hash is a setting);
 * returns the hash (storage owned by the function's ud), or NULL or a
 * string starting with '*' on failure. */
typedef const char *(*shoal_serve_hash_fn)(const char *password, const char *setting, void *ud);

/* Checks password against path ("user:crypt-hash" lines; the first line for
 * the user counts). account_ok 0 (no such account, or one that may not log
 * in) never matches. Whatever the user, the file is read and scanned whole
 * and hash is called exactly once: with the user's usable hash, else with
 * the file's first usable hash (same algorithm and cost), else with
 * SHOAL_SERVE_DUMMY_SETTING; so the time taken does not tell whether the
 * account or its entry exists. Returns 1 when the password matches. */
SHOAL_EXTERN int shoal_serve_password_check(const char *path, const char *user, int account_ok,
                                            const char *password, shoal_serve_hash_fn hash, void *ud);

/* ---- environment requests (serve_policy.c) ---- */

/* Decides a client's "env" request NAME=value:
 *  - under CommandPolicy allowlist or git, nothing is accepted but
 *    GIT_PROTOCOL, whatever AcceptEnv says;
 *  - GIT_PROTOCOL's value must be "version=N" (N: 1 to 3 digits);
 *  - the name must match an AcceptEnv pattern;
 *  - a dangerous name (shoal_serve_env_dangerous) is only admitted by an
 *    AcceptEnv entry that is exactly that name: "AcceptEnv LD_*", "GIT_*" or
 *    "*" never let LD_PRELOAD or GIT_CONFIG_PARAMETERS through, "AcceptEnv
 *    GIT_PROTOCOL" does let GIT_PROTOCOL through.
 * Returns 1 accepted, 0 refused (why says why, for the log). */
SHOAL_EXTERN int shoal_serve_env_allowed(const shoal_serve_effective *e, const char *name, const char *value,
                                         char *why, size_t whysz);
/* 1 for the names that change what runs before the command has a say:
 * the dynamic loader and C library (LD_*, GCONV_PATH, GETCONF_DIR,
 * GLIBC_TUNABLES, HOSTALIASES, LOCALDOMAIN, LOCPATH, MALLOC_*, NIS_PATH,
 * NLSPATH, RESOLV_HOST_CONF, RES_OPTIONS, TMPDIR, TZ, TZDIR), shell start-up
 * (BASH_ENV, ENV, BASH_FUNC_*, SHELLOPTS, BASHOPTS, PS1-PS4, PROMPT_COMMAND,
 * IFS, CDPATH, ZDOTDIR, INPUTRC, HISTFILE), interpreter hooks (PYTHON*,
 * PERL*, RUBY*, GEM_*, NODE_*, JAVA_TOOL_OPTIONS, _JAVA_OPTIONS,
 * JDK_JAVA_OPTIONS, CLASSPATH, LUA_*, TCLLIBPATH, PHPRC, PHP_INI_SCAN_DIR),
 * tools (GIT_*, LESSOPEN, LESSCLOSE, PAGER, EDITOR, VISUAL, TERMINFO,
 * TERMINFO_DIRS, OPENSSL_CONF, OPENSSL_ENGINES) and the session's own
 * (PATH, HOME, SHELL, USER, LOGNAME, MAIL, SSH_*). Case-sensitive. */
SHOAL_EXTERN int shoal_serve_env_dangerous(const char *name);

#ifdef __cplusplus
}
#endif
#endif
