/* "shoal serve" configuration: every keyword, syntax, first-value-wins,
 * command-line precedence, Match resolution, Include, error messages,
 * %-tokens, and the command policy (allowlist and the git preset against
 * path traversal and symlink escapes built at test time). */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shoal/serveconfig.h"

#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

static char *g_dir;

static int group_setup(void **st)
{
    (void)st;
    g_dir = tu_mkdtemp();
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* Applies the -o options, parses text, finishes. Returns the config or
 * NULL with the error in err. */
static shoal_serve_config *load(const char *const *opts, const char *text, char *err, size_t errsz)
{
    shoal_serve_config *c = shoal_serve_config_new();
    assert_non_null(c);
    for (; opts && *opts; opts++)
        if (shoal_serve_config_apply_option(c, *opts, err, errsz) != 0)
            goto fail;
    if (shoal_serve_config_parse_text(c, text, strlen(text), "config", err, errsz) != 0)
        goto fail;
    if (shoal_serve_config_finish(c, err, errsz) != 0)
        goto fail;
    return c;
fail:
    shoal_serve_config_free(c);
    return NULL;
}

static shoal_serve_config *load_ok(const char *const *opts, const char *text)
{
    char err[512] = "";
    shoal_serve_config *c = load(opts, text, err, sizeof(err));
    if (!c)
        fail_msg("config refused: %s", err);
    return c;
}

/* The error message text refuses with. */
static void expect_error(const char *const *opts, const char *text, const char *want)
{
    char err[512] = "";
    shoal_serve_config *c = load(opts, text, err, sizeof(err));
    if (c)
        fail_msg("config accepted, expected error \"%s\"", want);
    if (strcmp(err, want) != 0)
        fail_msg("error \"%s\", expected \"%s\"", err, want);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **st)
{
    (void)st;
    shoal_serve_config *c = load_ok(NULL, "");
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_non_null(g);
    assert_int_equal(g->n_ports, 1);
    assert_int_equal(g->ports[0], 22);
    assert_int_equal(g->n_listen, 1);
    assert_null(g->listen[0].host);
    assert_int_equal(g->listen[0].port, 22);
    assert_int_equal(g->n_host_keys, 0);
    assert_int_equal(g->strict_modes, 1);
    assert_int_equal(g->login_grace_time, 120);
    assert_int_equal(g->max_startups_begin, 10);
    assert_int_equal(g->max_startups_rate, 30);
    assert_int_equal(g->max_startups_full, 100);
    assert_int_equal(g->n_subsystems, 0);
    assert_null(g->permit_user_environment);
    assert_int_equal(g->address_family, SHOAL_SERVE_AF_ANY);
    assert_int_equal(g->log_level, 3);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "alice", "192.0.2.1", &e), 0);
    assert_int_equal(e.n_authorized_keys_files, 2);
    assert_string_equal(e.authorized_keys_files[0], ".ssh/authorized_keys");
    assert_string_equal(e.authorized_keys_files[1], ".ssh/authorized_keys2");
    assert_null(e.authorized_keys_command);
    assert_null(e.authorized_keys_command_user);
    assert_int_equal(e.pubkey_authentication, 1);
    assert_int_equal(e.password_authentication, 1);
    assert_int_equal(e.kbd_interactive_authentication, 1);
    assert_int_equal(e.permit_empty_passwords, 0);
    assert_null(e.password_file);
    assert_int_equal(e.n_auth_methods, 0);
    assert_int_equal(e.permit_root_login, SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD);
    assert_int_equal(e.max_auth_tries, 6);
    assert_int_equal(e.max_sessions, 10);
    assert_null(e.force_command);
    assert_int_equal(e.n_accept_env, 0);
    assert_null(e.banner);
    assert_int_equal(e.client_alive_interval, 0);
    assert_int_equal(e.client_alive_count_max, 3);
    assert_int_equal(e.allow_tcp_forwarding, SHOAL_SERVE_FWD_ALL);
    assert_int_equal(e.allow_agent_forwarding, 1);
    assert_int_equal(e.permit_tty, 1);
    assert_int_equal(e.x11_forwarding, 0);
    assert_int_equal(e.command_policy, SHOAL_SERVE_POLICY_ANY);
    assert_int_equal(e.n_allow_commands, 0);
    assert_null(e.git_root);
    /* Parsing after finish is refused. */
    char err[128];
    assert_int_equal(shoal_serve_config_parse_text(c, "Port 1", 6, "x", err, sizeof(err)), SHOAL_ERR_BAD_STATE);
    assert_int_equal(shoal_serve_config_apply_option(c, "Port=1", err, sizeof(err)), SHOAL_ERR_BAD_STATE);
    shoal_serve_config_free(c);
    /* Unfinished configs give nothing. */
    c = shoal_serve_config_new();
    assert_null(shoal_serve_config_global(c));
    assert_int_equal(shoal_serve_config_for(c, "a", "192.0.2.1", &e), SHOAL_ERR_BAD_STATE);
    shoal_serve_config_free(c);
}

static void test_every_keyword(void **st)
{
    (void)st;
    const char *text = "# every keyword once\n"
                       "ListenAddress 127.0.0.1\n"
                       "ListenAddress [::1]:2200\n"
                       "Port 2222\n"
                       "AddressFamily inet6\n"
                       "HostKey /etc/shoal/ed25519\n"
                       "HostKey /etc/shoal/rsa\n"
                       "StrictModes no\n"
                       "LoginGraceTime 1m30s\n"
                       "MaxStartups 5:50:20\n"
                       "Subsystem sftp /usr/lib/openssh/sftp-server -f AUTH -l INFO\n"
                       "Subsystem\tbackup \"/opt/backup tool/run\" --serve   # trailing comment\n"
                       "PermitUserEnvironment LANG,LC_*\n"
                       "LogLevel VERBOSE\n"
                       "AuthorizedKeysFile %h/.ssh/authorized_keys /etc/shoal/keys/%u %%literal\n"
                       "AuthorizedKeysCommand /usr/local/bin/keys %u %t %k %f\n"
                       "AuthorizedKeysCommandUser nobody\n"
                       "PubkeyAuthentication yes\n"
                       "PasswordAuthentication no\n"
                       "KbdInteractiveAuthentication no\n"
                       "PermitEmptyPasswords no\n"
                       "PasswordFile /etc/shoal/passwd\n"
                       "AuthenticationMethods publickey,password publickey,keyboard-interactive publickey\n"
                       "PermitRootLogin forced-commands-only\n"
                       "MaxAuthTries 3\n"
                       "MaxSessions 0\n"
                       "ForceCommand /usr/bin/logger -t shoal \"$SSH_ORIGINAL_COMMAND\"\n"
                       "AcceptEnv LANG LC_*\n"
                       "AcceptEnv TZ\n"
                       "Banner /etc/issue.net\n"
                       "ClientAliveInterval 15\n"
                       "ClientAliveCountMax 4\n"
                       "AllowTcpForwarding local\n"
                       "AllowAgentForwarding no\n"
                       "PermitTTY no\n"
                       "X11Forwarding yes\n"
                       "CommandPolicy allowlist\n"
                       "AllowCommands uptime \"rsync --server *\"\n"
                       "AllowCommands whoami\n"
                       "GitRoot /srv/git\n";
    shoal_serve_config *c = load_ok(NULL, text);
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_int_equal(g->n_ports, 1);
    assert_int_equal(g->ports[0], 2222);
    assert_int_equal(g->n_listen, 2);
    assert_string_equal(g->listen[0].host, "127.0.0.1");
    assert_int_equal(g->listen[0].port, 2222);
    assert_string_equal(g->listen[1].host, "::1");
    assert_int_equal(g->listen[1].port, 2200);
    assert_int_equal(g->address_family, SHOAL_SERVE_AF_INET6);
    assert_int_equal(g->n_host_keys, 2);
    assert_string_equal(g->host_keys[0], "/etc/shoal/ed25519");
    assert_string_equal(g->host_keys[1], "/etc/shoal/rsa");
    assert_int_equal(g->strict_modes, 0);
    assert_int_equal(g->login_grace_time, 90);
    assert_int_equal(g->max_startups_begin, 5);
    assert_int_equal(g->max_startups_rate, 50);
    assert_int_equal(g->max_startups_full, 20);
    assert_int_equal(g->n_subsystems, 2);
    assert_string_equal(g->subsystems[0].name, "sftp");
    assert_string_equal(g->subsystems[0].command, "/usr/lib/openssh/sftp-server -f AUTH -l INFO");
    assert_string_equal(g->subsystems[1].name, "backup");
    /* Verbatim (quotes kept for the shell), trailing comment dropped. */
    assert_string_equal(g->subsystems[1].command, "\"/opt/backup tool/run\" --serve");
    assert_string_equal(g->permit_user_environment, "LANG,LC_*");
    assert_int_equal(g->log_level, 4);

    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "alice", "192.0.2.1", &e), 0);
    assert_int_equal(e.n_authorized_keys_files, 3);
    assert_string_equal(e.authorized_keys_files[0], "%h/.ssh/authorized_keys");
    assert_string_equal(e.authorized_keys_files[1], "/etc/shoal/keys/%u");
    assert_string_equal(e.authorized_keys_files[2], "%%literal");
    assert_string_equal(e.authorized_keys_command, "/usr/local/bin/keys %u %t %k %f");
    assert_string_equal(e.authorized_keys_command_user, "nobody");
    assert_int_equal(e.pubkey_authentication, 1);
    assert_int_equal(e.password_authentication, 0);
    assert_int_equal(e.kbd_interactive_authentication, 0);
    assert_int_equal(e.permit_empty_passwords, 0);
    assert_string_equal(e.password_file, "/etc/shoal/passwd");
    assert_int_equal(e.n_auth_methods, 3);
    assert_int_equal(e.auth_methods[0].n, 2);
    assert_int_equal(e.auth_methods[0].m[0], SHOAL_SERVE_METHOD_PUBLICKEY);
    assert_int_equal(e.auth_methods[0].m[1], SHOAL_SERVE_METHOD_PASSWORD);
    assert_int_equal(e.auth_methods[1].m[1], SHOAL_SERVE_METHOD_KBDINT);
    assert_int_equal(e.auth_methods[2].n, 1);
    assert_int_equal(e.permit_root_login, SHOAL_SERVE_ROOT_FORCED_COMMANDS_ONLY);
    assert_int_equal(e.max_auth_tries, 3);
    assert_int_equal(e.max_sessions, 0);
    assert_string_equal(e.force_command, "/usr/bin/logger -t shoal \"$SSH_ORIGINAL_COMMAND\"");
    assert_int_equal(e.n_accept_env, 3);
    assert_string_equal(e.accept_env[0], "LANG");
    assert_string_equal(e.accept_env[1], "LC_*");
    assert_string_equal(e.accept_env[2], "TZ");
    assert_string_equal(e.banner, "/etc/issue.net");
    assert_int_equal(e.client_alive_interval, 15);
    assert_int_equal(e.client_alive_count_max, 4);
    assert_int_equal(e.allow_tcp_forwarding, SHOAL_SERVE_FWD_LOCAL);
    assert_int_equal(e.allow_agent_forwarding, 0);
    assert_int_equal(e.permit_tty, 0);
    assert_int_equal(e.x11_forwarding, 1);
    assert_int_equal(e.command_policy, SHOAL_SERVE_POLICY_ALLOWLIST);
    assert_int_equal(e.n_allow_commands, 3);
    assert_string_equal(e.allow_commands[1], "rsync --server *");
    assert_string_equal(e.git_root, "/srv/git");
    shoal_serve_config_free(c);

    /* Enum spellings and "none" values. */
    c = load_ok(NULL, "PermitRootLogin without-password\nAllowTcpForwarding remote\nBanner none\n"
                      "AuthorizedKeysFile none\nAuthorizedKeysCommand none\nForceCommand none\nPasswordFile none\n"
                      "PermitUserEnvironment yes\nMaxStartups 7\nAddressFamily INET\nLoginGraceTime 0\n"
                      "ChallengeResponseAuthentication no\nAuthenticationMethods any\nCommandPolicy GIT\n"
                      "GitRoot /srv/git/\nLogLevel debug3\n");
    g = shoal_serve_config_global(c);
    assert_string_equal(g->permit_user_environment, "*");
    assert_int_equal(g->max_startups_begin, 7);
    assert_int_equal(g->max_startups_rate, 100);
    assert_int_equal(g->max_startups_full, 7);
    assert_int_equal(g->address_family, SHOAL_SERVE_AF_INET);
    assert_int_equal(g->login_grace_time, 0);
    assert_int_equal(g->log_level, 7);
    assert_int_equal(shoal_serve_config_for(c, "root", "192.0.2.1", &e), 0);
    assert_int_equal(e.permit_root_login, SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD);
    assert_int_equal(e.allow_tcp_forwarding, SHOAL_SERVE_FWD_REMOTE);
    assert_null(e.banner);
    assert_int_equal(e.n_authorized_keys_files, 0);
    assert_null(e.authorized_keys_command);
    assert_null(e.force_command);
    assert_null(e.password_file);
    assert_int_equal(e.kbd_interactive_authentication, 0);
    assert_int_equal(e.n_auth_methods, 0);
    assert_int_equal(e.command_policy, SHOAL_SERVE_POLICY_GIT);
    shoal_serve_config_free(c);
}

static void test_syntax(void **st)
{
    (void)st;
    const char *text = "  # indented comment\r\n"
                       "\n"
                       "port=2201\n"
                       "PORT = 2202\n"
                       "Port\t=\t2203\r\n"
                       "passwordauthentication=no # comment after the value\n"
                       "Banner \"/etc/my banner\"\n"
                       "AcceptEnv 'A B' C\\ D \"E\\\"F\" G#notacomment\n"
                       "AllowCommands 'x' # y z\n"
                       "MaxAuthTries=4\n";
    shoal_serve_config *c = load_ok(NULL, text);
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_int_equal(g->n_ports, 3);
    assert_int_equal(g->ports[2], 2203);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "u", "192.0.2.1", &e), 0);
    assert_int_equal(e.password_authentication, 0);
    assert_string_equal(e.banner, "/etc/my banner");
    assert_int_equal(e.n_accept_env, 4);
    assert_string_equal(e.accept_env[0], "A B");
    assert_string_equal(e.accept_env[1], "C D");
    assert_string_equal(e.accept_env[2], "E\"F");
    assert_string_equal(e.accept_env[3], "G#notacomment");
    assert_int_equal(e.n_allow_commands, 1);
    assert_int_equal(e.max_auth_tries, 4);
    shoal_serve_config_free(c);
    /* No final newline. */
    c = load_ok(NULL, "MaxSessions 3");
    assert_int_equal(shoal_serve_config_for(c, "u", NULL, &e), 0);
    assert_int_equal(e.max_sessions, 3);
    shoal_serve_config_free(c);
}

static void test_first_value_wins(void **st)
{
    (void)st;
    const char *text = "PasswordAuthentication no\n"
                       "PasswordAuthentication yes\n"
                       "AuthorizedKeysFile /a /b\n"
                       "AuthorizedKeysFile /c\n"
                       "MaxAuthTries 2\n"
                       "MaxAuthTries 9\n"
                       "Port 1\nPort 2\nPort 1\n"
                       "HostKey /k1\nHostKey /k2\n"
                       "ForceCommand first\nForceCommand second\n";
    shoal_serve_config *c = load_ok(NULL, text);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "u", "192.0.2.1", &e), 0);
    assert_int_equal(e.password_authentication, 0);
    assert_int_equal(e.n_authorized_keys_files, 2);
    assert_string_equal(e.authorized_keys_files[1], "/b");
    assert_int_equal(e.max_auth_tries, 2);
    assert_string_equal(e.force_command, "first");
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_int_equal(g->n_ports, 2); /* duplicates dropped */
    assert_int_equal(g->n_host_keys, 2);
    shoal_serve_config_free(c);
    /* Two subsystems with one name are an error, as in sshd. */
    expect_error(NULL, "Subsystem sftp a\nSubsystem sftp b\n", "config:2: Subsystem: \"sftp\" is already defined");
}

static void test_cmdline_precedence(void **st)
{
    (void)st;
    const char *opts[] = {"PasswordAuthentication=no", "Port=2222", "Port 2223", "HostKey=/cmd/key",
                          "MaxAuthTries=2", NULL};
    const char *text = "PasswordAuthentication yes\n"
                       "Port 22\n"
                       "HostKey /file/key\n"
                       "MaxAuthTries 5\n"
                       "MaxSessions 4\n"
                       "Match User alice\n"
                       "  PasswordAuthentication yes\n"
                       "  MaxAuthTries 7\n"
                       "  MaxSessions 8\n";
    shoal_serve_config *c = load_ok(opts, text);
    const shoal_serve_global *g = shoal_serve_config_global(c);
    /* The command line replaces the file's list values... */
    assert_int_equal(g->n_ports, 2);
    assert_int_equal(g->ports[0], 2222);
    assert_int_equal(g->ports[1], 2223);
    assert_int_equal(g->n_host_keys, 1);
    assert_string_equal(g->host_keys[0], "/cmd/key");
    /* ...and wins over the file's single values, Match blocks included. */
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "alice", "192.0.2.1", &e), 0);
    assert_int_equal(e.password_authentication, 0);
    assert_int_equal(e.max_auth_tries, 2);
    assert_int_equal(e.max_sessions, 8); /* not on the command line: Match applies */
    assert_int_equal(shoal_serve_config_for(c, "bob", "192.0.2.1", &e), 0);
    assert_int_equal(e.max_sessions, 4);
    shoal_serve_config_free(c);

    /* Errors on the command line name it; file values for locked keywords
     * are still checked. */
    const char *bad1[] = {"MaxAuthTries=abc", NULL};
    expect_error(bad1, "", "command line: MaxAuthTries: not a number");
    const char *bad2[] = {"Match User x", NULL};
    expect_error(bad2, "", "command line: Match is not allowed on the command line");
    const char *bad3[] = {"Include /etc/x", NULL};
    expect_error(bad3, "", "command line: Include is only supported in configuration files");
    const char *ok[] = {"MaxAuthTries=2", NULL};
    expect_error(ok, "MaxAuthTries many\n", "config:1: MaxAuthTries: not a number");
    const char *bad4[] = {"Nope=1", NULL};
    expect_error(bad4, "", "command line: unknown keyword \"Nope\"");
}

static void test_match(void **st)
{
    (void)st;
    const char *text = "PasswordAuthentication no\n"
                       "MaxSessions 10\n"
                       "Banner /global\n"
                       "AcceptEnv LANG\n"
                       "Match User alice,bob\n"
                       "\tPasswordAuthentication yes\n"
                       "\tAcceptEnv ALICE_*\n"
                       "Match Address 10.0.0.0/8,!10.9.0.0/16\n"
                       "\tPasswordAuthentication no\n"
                       "\tMaxSessions 2\n"
                       "\tBanner /internal\n"
                       "Match User carol Address 192.0.2.0/24\n"
                       "\tForceCommand /bin/carol\n"
                       "Match User !root,*\n"
                       "\tPermitRootLogin no\n"
                       "\tMaxSessions 5\n"
                       "Match Address 2001:db8::/32\n"
                       "\tBanner /v6\n"
                       "Match All\n"
                       "\tClientAliveInterval 30\n"
                       "\tAcceptEnv EVERYONE\n";
    shoal_serve_config *c = load_ok(NULL, text);
    shoal_serve_effective e;
    /* alice from outside: her block, then the catch-all ones. */
    assert_int_equal(shoal_serve_config_for(c, "alice", "198.51.100.1", &e), 0);
    assert_int_equal(e.password_authentication, 1);
    assert_int_equal(e.max_sessions, 5);
    assert_string_equal(e.banner, "/global");
    assert_int_equal(e.client_alive_interval, 30);
    assert_int_equal(e.n_accept_env, 1); /* the first matching block's whole list */
    assert_string_equal(e.accept_env[0], "ALICE_*");
    /* alice from 10/8: her block still decides PasswordAuthentication (first wins). */
    assert_int_equal(shoal_serve_config_for(c, "alice", "10.1.2.3", &e), 0);
    assert_int_equal(e.password_authentication, 1);
    assert_int_equal(e.max_sessions, 2);
    assert_string_equal(e.banner, "/internal");
    /* The negated subnet does not match the Address block. */
    assert_int_equal(shoal_serve_config_for(c, "dave", "10.9.1.1", &e), 0);
    assert_int_equal(e.max_sessions, 5);
    assert_string_equal(e.banner, "/global");
    assert_int_equal(e.n_accept_env, 1);
    assert_string_equal(e.accept_env[0], "EVERYONE");
    /* Both criteria must hold. */
    assert_int_equal(shoal_serve_config_for(c, "carol", "192.0.2.7", &e), 0);
    assert_string_equal(e.force_command, "/bin/carol");
    assert_int_equal(shoal_serve_config_for(c, "carol", "198.51.100.7", &e), 0);
    assert_null(e.force_command);
    assert_int_equal(shoal_serve_config_for(c, "mallory", "192.0.2.7", &e), 0);
    assert_null(e.force_command);
    /* User patterns are case-sensitive; negation excludes root. */
    assert_int_equal(shoal_serve_config_for(c, "root", "198.51.100.1", &e), 0);
    assert_int_equal(e.permit_root_login, SHOAL_SERVE_ROOT_PROHIBIT_PASSWORD);
    assert_int_equal(e.max_sessions, 10);
    assert_int_equal(shoal_serve_config_for(c, "Alice", "198.51.100.1", &e), 0);
    assert_int_equal(e.password_authentication, 0);
    /* IPv6 and IPv4-mapped addresses. */
    assert_int_equal(shoal_serve_config_for(c, "root", "2001:db8::42", &e), 0);
    assert_string_equal(e.banner, "/v6");
    assert_int_equal(shoal_serve_config_for(c, "root", "::ffff:10.1.1.1", &e), 0);
    assert_string_equal(e.banner, "/internal");
    /* Unknown user or address: only criteria not needing them match. */
    assert_int_equal(shoal_serve_config_for(c, NULL, NULL, &e), 0);
    assert_int_equal(e.password_authentication, 0);
    assert_int_equal(e.client_alive_interval, 30);
    assert_int_equal(e.max_sessions, 10);
    assert_int_equal(shoal_serve_config_for(c, "alice", "not-an-address", &e), 0);
    assert_string_equal(e.banner, "/global");
    shoal_serve_config_free(c);

    /* Errors. */
    expect_error(NULL, "Match User x\nPort 22\n", "config:2: Port is not allowed inside a Match block");
    expect_error(NULL, "Match User x\nHostKey /k\n", "config:2: HostKey is not allowed inside a Match block");
    expect_error(NULL, "Match User x\nStrictModes no\n", "config:2: StrictModes is not allowed inside a Match block");
    expect_error(NULL, "Match Group wheel\n", "config:1: Match: unsupported criterion \"Group\" (User, Address or All)");
    expect_error(NULL, "Match Host h\n", "config:1: Match: unsupported criterion \"Host\" (User, Address or All)");
    expect_error(NULL, "Match All User x\n", "config:1: Match: \"All\" cannot be combined with other criteria");
    expect_error(NULL, "Match User\n", "config:1: Match: User needs a pattern list");
    expect_error(NULL, "Match\n", "config:1: Match: missing criteria");
    expect_error(NULL, "Match Address 10.0.0.1/8\n",
                 "config:1: Match: invalid Address list \"10.0.0.1/8\" (empty entry or inconsistent CIDR mask)");
    expect_error(NULL, "Match Address 10.0.0.0/33\n",
                 "config:1: Match: invalid Address list \"10.0.0.0/33\" (empty entry or inconsistent CIDR mask)");
    expect_error(NULL, "Match Address a,,b\n",
                 "config:1: Match: invalid Address list \"a,,b\" (empty entry or inconsistent CIDR mask)");
}

static void test_errors(void **st)
{
    (void)st;
    expect_error(NULL, "# x\nPort 22\n\n\n\n\n\n\n\n\n\nFoo bar\n", "config:12: unknown keyword \"Foo\"");
    expect_error(NULL, "\n\nMaxAuthTries x\n", "config:3: MaxAuthTries: not a number");
    expect_error(NULL, "MaxAuthTries 0\n", "config:1: MaxAuthTries: 0 is out of range (1..1000)");
    expect_error(NULL, "MaxAuthTries -1\n", "config:1: MaxAuthTries: not a number");
    expect_error(NULL, "MaxAuthTries 99999999999999999999999\n", "config:1: MaxAuthTries: not a number");
    expect_error(NULL, "AllowUsers alice\n", "config:1: keyword \"AllowUsers\" is not supported by shoal serve");
    expect_error(NULL, "chrootdirectory /x\n",
                 "config:1: keyword \"ChrootDirectory\" is not supported by shoal serve");
    expect_error(NULL, "Port\n", "config:1: Port: missing argument");
    expect_error(NULL, "Port 22 23\n", "config:1: Port: unexpected extra argument \"23\"");
    expect_error(NULL, "Port 0\n", "config:1: Port: bad port \"0\"");
    expect_error(NULL, "Port 65536\n", "config:1: Port: bad port \"65536\"");
    expect_error(NULL, "PasswordAuthentication maybe\n",
                 "config:1: PasswordAuthentication: expected yes or no, got \"maybe\"");
    expect_error(NULL, "PasswordAuthentication yes no\n",
                 "config:1: PasswordAuthentication: unexpected extra argument \"no\"");
    expect_error(NULL, "Banner \"/x\n", "config:1: Banner: unterminated quote");
    expect_error(NULL, "Banner \"\"\n", "config:1: Banner: empty argument");
    expect_error(NULL, "LoginGraceTime 2x\n", "config:1: LoginGraceTime: bad time value \"2x\"");
    expect_error(NULL, "LoginGraceTime 99999999999\n", "config:1: LoginGraceTime: bad time value \"99999999999\"");
    expect_error(NULL, "ClientAliveInterval -5\n", "config:1: ClientAliveInterval: bad time value \"-5\"");
    expect_error(NULL, "PermitRootLogin sometimes\n",
                 "config:1: PermitRootLogin: expected one of yes, prohibit-password, without-password, "
                 "forced-commands-only, no, got \"sometimes\"");
    expect_error(NULL, "CommandPolicy deny\n",
                 "config:1: CommandPolicy: expected one of any, allowlist, git, got \"deny\"");
    expect_error(NULL, "MaxStartups 10:30\n", "config:1: MaxStartups: expected start[:rate:full], got \"10:30\"");
    expect_error(NULL, "MaxStartups 10:0:100\n",
                 "config:1: MaxStartups: need start <= full, full >= 1 and 1 <= rate <= 100");
    expect_error(NULL, "MaxStartups 20:30:10\n",
                 "config:1: MaxStartups: need start <= full, full >= 1 and 1 <= rate <= 100");
    expect_error(NULL, "ListenAddress [::1\n",
                 "config:1: ListenAddress: bad address \"[::1\" (host, host:port or [host]:port)");
    expect_error(NULL, "ListenAddress host:99999\n",
                 "config:1: ListenAddress: bad address \"host:99999\" (host, host:port or [host]:port)");
    expect_error(NULL, "AuthenticationMethods publickey,hostbased\n",
                 "config:1: AuthenticationMethods: unsupported method \"hostbased\" (publickey, password, "
                 "keyboard-interactive)");
    expect_error(NULL, "AuthenticationMethods keyboard-interactive:pam\n",
                 "config:1: AuthenticationMethods: unsupported method \"keyboard-interactive:pam\" (publickey, "
                 "password, keyboard-interactive)");
    expect_error(NULL, "AuthenticationMethods publickey,,password\n",
                 "config:1: AuthenticationMethods: empty method name in \"publickey,,password\"");
    expect_error(NULL, "AuthenticationMethods any publickey\n",
                 "config:1: AuthenticationMethods: \"any\" must be the only argument");
    expect_error(NULL, "AuthorizedKeysFile %h/%x\n",
                 "config:1: AuthorizedKeysFile: unsupported token %x in \"%h/%x\" (use %%, %h, %u)");
    expect_error(NULL, "AuthorizedKeysFile /keys/%\n",
                 "config:1: AuthorizedKeysFile: unsupported token %% in \"/keys/%\" (use %%, %h, %u)");
    expect_error(NULL, "AuthorizedKeysFile none /x\n",
                 "config:1: AuthorizedKeysFile: \"none\" must be the only argument");
    expect_error(NULL, "AuthorizedKeysCommand bin/keys\n", "config:1: AuthorizedKeysCommand: must be an absolute path");
    expect_error(NULL, "AuthorizedKeysCommand /bin/keys %s\nAuthorizedKeysCommandUser n\n",
                 "config:1: AuthorizedKeysCommand: unsupported token %s (use %%, %f, %h, %k, %t, %U, %u)");
    expect_error(NULL, "GitRoot srv/git\n", "config:1: GitRoot: must be an absolute path");
    expect_error(NULL, "GitRoot ///\n", "config:1: GitRoot: must not be the file system root");
    expect_error(NULL, "AcceptEnv A=B\n", "config:1: AcceptEnv: invalid environment name \"A=B\"");
    expect_error(NULL, "Subsystem sftp\n", "config:1: Subsystem: expected a name and a command");
    expect_error(NULL, "=value\n", "config:1: missing keyword before '='");
    expect_error(NULL, "UsePAM\n", "config:1: UsePAM: missing argument");
    expect_error(NULL, "Include /x\n", "config:1: Include is only supported in configuration files");
    /* Control bytes in messages are neutralised. */
    expect_error(NULL, "Fo\x1bo x\n", "config:1: unknown keyword \"Fo?o\"");
    /* Checks at finish, as sshd makes at startup. */
    expect_error(NULL, "AuthorizedKeysCommand /bin/keys\n",
                 "config: AuthorizedKeysCommand requires AuthorizedKeysCommandUser");
    expect_error(NULL, "CommandPolicy git\n", "config: CommandPolicy git requires GitRoot");
    expect_error(NULL, "Match User x\nCommandPolicy git\n",
                 "config: CommandPolicy git in a Match block requires GitRoot (in the block or globally)");
    expect_error(NULL, "PasswordAuthentication no\nAuthenticationMethods password publickey,password\n",
                 "config: AuthenticationMethods cannot be satisfied by the enabled authentication methods");

    /* Size limits: a line over the cap, a NUL byte, more arguments than allowed. */
    char err[256];
    size_t big = SHOAL_SERVE_MAX_LINE + 10;
    char *t = malloc(big + 1);
    assert_non_null(t);
    memset(t, 'x', big);
    memcpy(t, "Banner ", 7);
    t[big] = 0;
    shoal_serve_config *c = shoal_serve_config_new();
    assert_int_equal(shoal_serve_config_parse_text(c, t, big, "big", err, sizeof(err)), SHOAL_ERR_CONFIG);
    assert_string_equal(err, "big:1: line longer than 16384 bytes");
    assert_int_equal(shoal_serve_config_parse_text(c, "Port 22\0x\n", 10, "nul", err, sizeof(err)),
                     SHOAL_ERR_CONFIG);
    assert_string_equal(err, "nul:1: NUL byte in line");
    char *many = malloc(300 * 2 + 20);
    assert_non_null(many);
    strcpy(many, "AcceptEnv");
    for (int i = 0; i < 300; i++)
        strcat(many, " A");
    assert_int_equal(shoal_serve_config_parse_text(c, many, strlen(many), "many", err, sizeof(err)),
                     SHOAL_ERR_CONFIG);
    assert_string_equal(err, "many:1: AcceptEnv: too many arguments");
    free(many);
    free(t);
    /* A tiny error buffer truncates, never overflows. */
    char tiny[8];
    assert_int_equal(shoal_serve_config_parse_text(c, "Foo x", 5, "config", tiny, sizeof(tiny)), SHOAL_ERR_CONFIG);
    assert_string_equal(tiny, "config:");
    shoal_serve_config_free(c);
}

static void test_listen(void **st)
{
    (void)st;
    const char *text = "Port 22\nPort 2222\n"
                       "ListenAddress 0.0.0.0\n"
                       "ListenAddress 192.0.2.1:2022\n"
                       "ListenAddress [2001:db8::1]:2023\n"
                       "ListenAddress [2001:db8::2]\n"
                       "ListenAddress ::\n"
                       "ListenAddress host.example.com\n"
                       "ListenAddress 192.0.2.1:2022\n";
    shoal_serve_config *c = load_ok(NULL, text);
    const shoal_serve_global *g = shoal_serve_config_global(c);
    struct {
        const char *host;
        unsigned port;
    } want[] = {{"0.0.0.0", 22},       {"0.0.0.0", 2222},          {"192.0.2.1", 2022},
                {"2001:db8::1", 2023}, {"2001:db8::2", 22},        {"2001:db8::2", 2222},
                {"::", 22},            {"::", 2222},               {"host.example.com", 22},
                {"host.example.com", 2222}};
    assert_int_equal(g->n_listen, sizeof(want) / sizeof(want[0]));
    for (unsigned i = 0; i < g->n_listen; i++) {
        assert_string_equal(g->listen[i].host, want[i].host);
        assert_int_equal(g->listen[i].port, want[i].port);
    }
    shoal_serve_config_free(c);
}

/* Lines of Debian's stock sshd_config and of the sshd_config our interop
 * tests write (tests/lib/peers.sh), which shoal serve must accept. */
static void test_debian_lines(void **st)
{
    (void)st;
    const char *debian = "# This is the sshd server system-wide configuration file.\n"
                         "#Port 22\n"
                         "#AddressFamily any\n"
                         "#ListenAddress 0.0.0.0\n"
                         "#HostKey /etc/ssh/ssh_host_rsa_key\n"
                         "#PermitRootLogin prohibit-password\n"
                         "#AuthorizedKeysFile\t.ssh/authorized_keys .ssh/authorized_keys2\n"
                         "KbdInteractiveAuthentication no\n"
                         "UsePAM yes\n"
                         "X11Forwarding yes\n"
                         "PrintMotd no\n"
                         "AcceptEnv LANG LC_*\n"
                         "Subsystem\tsftp\t/usr/lib/openssh/sftp-server\n"
                         "#Match User anoncvs\n"
                         "#\tX11Forwarding no\n";
    shoal_serve_config *c = load_ok(NULL, debian);
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_int_equal(g->n_subsystems, 1);
    assert_string_equal(g->subsystems[0].command, "/usr/lib/openssh/sftp-server");
    shoal_serve_config_free(c);

    const char *peers = "ListenAddress 127.0.0.1\n"
                        "Port 40022\n"
                        "AddressFamily inet\n"
                        "HostKey /tmp/h/ssh_host_ed25519_key\n"
                        "HostKey /tmp/h/ssh_host_rsa_key\n"
                        "PidFile /tmp/d/sshd.pid\n"
                        "AuthorizedKeysFile /tmp/T/keys/authorized_keys\n"
                        "StrictModes no\n"
                        "UsePAM no\n"
                        "PermitRootLogin yes\n"
                        "PubkeyAuthentication yes\n"
                        "PasswordAuthentication yes\n"
                        "KbdInteractiveAuthentication yes\n"
                        "PermitEmptyPasswords no\n"
                        "MaxAuthTries 10\n"
                        "MaxStartups 1000:30:1000\n"
                        "MaxSessions 200\n"
                        "LoginGraceTime 60\n"
                        "LogLevel VERBOSE\n"
                        "SyslogFacility AUTH\n"
                        "PrintMotd no\n"
                        "PrintLastLog no\n"
                        "UseDNS no\n"
                        "X11Forwarding no\n"
                        "Subsystem sftp internal-sftp\n"
                        "AcceptEnv LANG LC_* SHOAL_*\n"
                        "Match User nobody\n"
                        "    PasswordAuthentication no\n"
                        "    X11Forwarding no\n";
    c = load_ok(NULL, peers);
    g = shoal_serve_config_global(c);
    assert_int_equal(g->n_listen, 1);
    assert_int_equal(g->listen[0].port, 40022);
    assert_int_equal(g->max_startups_full, 1000);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "nobody", "127.0.0.1", &e), 0);
    assert_int_equal(e.password_authentication, 0);
    assert_int_equal(e.permit_root_login, SHOAL_SERVE_ROOT_YES);
    shoal_serve_config_free(c);

    /* The same lines must pass OpenSSH's own parser too (when sshd and
     * ssh-keygen are here; -h gives it a host key, -t only checks). */
    if (access("/usr/sbin/sshd", X_OK) != 0 || !tu_have("ssh-keygen"))
        return;
    char p[600], k[600];
    FMT(k, "%s/sshd_check_key", g_dir);
    FMT(p, "%s/sshd_check", g_dir);
    assert_int_equal(tu_system("ssh-keygen -q -t ed25519 -N '' -f '%s' </dev/null >/dev/null 2>&1", k), 0);
    write_text(p, "");
    if (tu_system("/usr/sbin/sshd -t -f '%s' -h '%s' >/dev/null 2>&1", p, k) != 0)
        return; /* sshd cannot run its checks here (privilege separation setup) */
    const char *samples[] = {debian, peers};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        for (const char *l = samples[i]; *l;) {
            const char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) + 1 : strlen(l);
            if (strncmp(l, "HostKey ", 8) != 0)
                assert_int_equal(fwrite(l, 1, n, f), n);
            l += n;
        }
        assert_int_equal(fclose(f), 0);
        assert_int_equal(tu_system("/usr/sbin/sshd -t -f '%s' -h '%s'", p, k), 0);
    }
}

static void test_include(void **st)
{
    (void)st;
    char d[600], p[700], sub[700], err[512];
    FMT(d, "%s/inc", g_dir);
    assert_int_equal(mkdir(d, 0700), 0);
    FMT(sub, "%s/conf.d", d);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* Included first (before the main file's own lines, as Debian does). */
    FMT(p, "%s/conf.d/10-first.conf", d);
    write_text(p, "PasswordAuthentication no\nMatch User alice\n  MaxSessions 1\n");
    FMT(p, "%s/conf.d/banner.inc", d);
    write_text(p, "Banner /from-inc\nMatch User zed\n  Banner /zed\n");
    FMT(p, "%s/conf.d/ignored.txt", d);
    write_text(p, "Nonsense here\n");
    FMT(p, "%s/main", d);
    write_text(p, "Include conf.d/*.conf\n"
                  "PasswordAuthentication yes\n"
                  "MaxSessions 3\n"
                  "Include conf.d/nothing-*.conf\n"
                  "Match User bob\n"
                  "  Include conf.d/banner.inc\n"
                  "  MaxSessions 4\n");
    shoal_serve_config *c = shoal_serve_config_new();
    if (shoal_serve_config_parse_file(c, p, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(shoal_serve_config_finish(c, err, sizeof(err)), 0);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "alice", "192.0.2.1", &e), 0);
    assert_int_equal(e.password_authentication, 0); /* the included line came first */
    assert_int_equal(e.max_sessions, 1);            /* the Match in 10-first.conf */
    assert_null(e.banner);
    /* The Match of the included file ended with it: MaxSessions 3 is global. */
    assert_int_equal(shoal_serve_config_for(c, "carol", "192.0.2.1", &e), 0);
    assert_int_equal(e.max_sessions, 3);
    /* Include inside a Match block is conditional, and the block resumes
     * after it even though the included file opened a Match of its own. */
    assert_int_equal(shoal_serve_config_for(c, "bob", "192.0.2.1", &e), 0);
    assert_string_equal(e.banner, "/from-inc");
    assert_int_equal(e.max_sessions, 4);
    assert_int_equal(shoal_serve_config_for(c, "zed", "192.0.2.1", &e), 0);
    assert_string_equal(e.banner, "/zed");
    assert_int_equal(e.max_sessions, 3);
    shoal_serve_config_free(c);

    /* Errors in included files name that file and line. */
    FMT(p, "%s/bad.conf", d);
    write_text(p, "\nMaxAuthTries x\n");
    FMT(p, "%s/main2", d);
    write_text(p, "Port 22\nInclude bad.conf\n");
    c = shoal_serve_config_new();
    assert_int_equal(shoal_serve_config_parse_file(c, p, err, sizeof(err)), SHOAL_ERR_CONFIG);
    char want[900];
    FMT(want, "%s/bad.conf:2: MaxAuthTries: not a number", d);
    assert_string_equal(err, want);
    shoal_serve_config_free(c);

    /* An Include loop stops at the depth limit. */
    FMT(p, "%s/loop", d);
    write_text(p, "Include loop\n");
    c = shoal_serve_config_new();
    assert_int_equal(shoal_serve_config_parse_file(c, p, err, sizeof(err)), SHOAL_ERR_CONFIG);
    assert_non_null(strstr(err, "Include: nested too deeply"));
    shoal_serve_config_free(c);

    /* Files: missing, a directory, too large. */
    c = shoal_serve_config_new();
    FMT(p, "%s/missing", d);
    assert_int_equal(shoal_serve_config_parse_file(c, p, err, sizeof(err)), SHOAL_ERR_CONFIG);
    FMT(want, "%s/missing: No such file or directory", d);
    assert_string_equal(err, want);
    assert_int_equal(shoal_serve_config_parse_file(c, d, err, sizeof(err)), SHOAL_ERR_CONFIG);
    FMT(want, "%s: not a regular file", d);
    assert_string_equal(err, want);
    FMT(p, "%s/huge", d);
    assert_int_equal(tu_system("truncate -s %u '%s'", SHOAL_SERVE_MAX_FILE + 1, p), 0);
    assert_int_equal(shoal_serve_config_parse_file(c, p, err, sizeof(err)), SHOAL_ERR_CONFIG);
    FMT(want, "%s: file too large", p);
    assert_string_equal(err, want);
    shoal_serve_config_free(c);
}

static void test_tokens(void **st)
{
    (void)st;
    char *out;
    assert_int_equal(shoal_serve_expand_tokens("%h/.ssh/keys_%u %%u", "alice", "/home/alice", &out), 0);
    assert_string_equal(out, "/home/alice/.ssh/keys_alice %u");
    free(out);
    assert_int_equal(shoal_serve_expand_tokens("plain", NULL, NULL, &out), 0);
    assert_string_equal(out, "plain");
    free(out);
    /* Unsafe or missing values, unknown and dangling tokens. */
    static const char *const bad_users[] = {"../etc", "a/b", ".", "..", "-rf", ".hidden", "a b", "a\nb", "",
                                            "x;y", "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); i++) {
        assert_int_equal(shoal_serve_user_name_ok(bad_users[i]), 0);
        assert_int_equal(shoal_serve_expand_tokens("/k/%u", bad_users[i], "/h", &out), SHOAL_ERR_INVALID_ARG);
        assert_null(out);
    }
    assert_int_equal(shoal_serve_user_name_ok("git"), 1);
    assert_int_equal(shoal_serve_user_name_ok("first.last+tag@example.com"), 1);
    assert_int_equal(shoal_serve_expand_tokens("%h", "a", NULL, &out), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_serve_expand_tokens("%x", "a", "/h", &out), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_serve_expand_tokens("abc%", "a", "/h", &out), SHOAL_ERR_INVALID_ARG);
    /* Every token of the command form. */
    shoal_serve_tokens t = {"git", "/srv/git", "998", "ssh-ed25519", "AAAAC3Nz", "SHA256:abc"};
    assert_int_equal(shoal_serve_expand("/bin/keys %u %h %U %t %k %f %%", &t, &out), 0);
    assert_string_equal(out, "/bin/keys git /srv/git 998 ssh-ed25519 AAAAC3Nz SHA256:abc %");
    free(out);
    t.fingerprint = "bad\nvalue";
    assert_int_equal(shoal_serve_expand("%f", &t, &out), SHOAL_ERR_INVALID_ARG);
    /* AuthorizedKeysFile paths. */
    assert_int_equal(shoal_serve_keys_file_path(".ssh/authorized_keys", "bob", "/home/bob", &out), 0);
    assert_string_equal(out, "/home/bob/.ssh/authorized_keys");
    free(out);
    assert_int_equal(shoal_serve_keys_file_path("/etc/keys/%u", "bob", "/home/bob", &out), 0);
    assert_string_equal(out, "/etc/keys/bob");
    free(out);
    assert_int_equal(shoal_serve_keys_file_path("~/k", "bob", "/home/bob/", &out), 0);
    assert_string_equal(out, "/home/bob/k");
    free(out);
    assert_int_equal(shoal_serve_keys_file_path("%h/k", "bob", "/home/bob", &out), 0);
    assert_string_equal(out, "/home/bob/k");
    free(out);
    assert_int_equal(shoal_serve_keys_file_path("k", "bob", "relative", &out), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_serve_keys_file_path("/k/%u", "../../etc/shadow", "/home/x", &out),
                     SHOAL_ERR_INVALID_ARG);
}

static void test_allowlist(void **st)
{
    (void)st;
    shoal_serve_config *c = load_ok(NULL, "CommandPolicy allowlist\n"
                                          "AllowCommands uptime \"rsync --server *\" 'backup ?'\n"
                                          "AllowCommands \"tar czf - /var/www; echo done\"\n"
                                          "Match User free\n  CommandPolicy any\n");
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "u", "192.0.2.1", &e), 0);
    shoal_serve_command cmd;
    char why[200];
    struct {
        const char *command;
        int want;
    } cases[] = {
        {"uptime", 1},
        {"uptime ", 0},
        {" uptime", 0},
        {"uptimex", 0},
        {"rsync --server -logDtpre.iLsfxC . /backup", 1},
        {"rsync --server x; rm -rf ~", 0},        /* metacharacters vs a wildcard pattern */
        {"rsync --server $(id)", 0},
        {"rsync --server `id`", 0},
        {"rsync --server a | nc h 1", 0},
        {"rsync --server a > /etc/passwd", 0},
        {"rsync --server a\nid", 0},
        {"rsync --server 'quoted arg'", 1},
        {"rsync", 0},
        {"backup 1", 1},
        {"backup 12", 0},
        {"tar czf - /var/www; echo done", 1},     /* an exact pattern admits exactly itself */
        {"tar czf - /var/www; echo done; id", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = shoal_serve_command_allowed(&e, cases[i].command, &cmd, why, sizeof(why));
        if (rc != cases[i].want)
            fail_msg("allowlist \"%s\": got %d want %d", cases[i].command, rc, cases[i].want);
        if (rc == 1)
            assert_string_equal(cmd.command, cases[i].command);
        else
            assert_string_equal(why, "command not allowed here");
        shoal_serve_command_free(&cmd);
    }
    assert_int_equal(shoal_serve_command_allowed(&e, NULL, &cmd, why, sizeof(why)), 0);
    assert_string_equal(why, "shell access is not allowed here; only specific commands can be run");
    /* Policy any: everything, shells included. */
    assert_int_equal(shoal_serve_config_for(c, "free", "192.0.2.1", &e), 0);
    assert_int_equal(shoal_serve_command_allowed(&e, "anything; at all", &cmd, why, sizeof(why)), 1);
    assert_string_equal(cmd.command, "anything; at all");
    shoal_serve_command_free(&cmd);
    assert_int_equal(shoal_serve_command_allowed(&e, NULL, &cmd, why, sizeof(why)), 1);
    assert_null(cmd.command);
    shoal_serve_config_free(c);
    /* An allowlist without entries refuses everything. */
    c = load_ok(NULL, "CommandPolicy allowlist\n");
    assert_int_equal(shoal_serve_config_for(c, "u", "192.0.2.1", &e), 0);
    assert_int_equal(shoal_serve_command_allowed(&e, "uptime", &cmd, why, sizeof(why)), 0);
    shoal_serve_config_free(c);
}

/* Builds the git test tree under g_dir:
 *   srv/git/a.git            repository (bare layout: a HEAD file)
 *   srv/git/team/b.git
 *   srv/git/it's!.git
 *   srv/git/plain            a directory holding plain/.git
 *   srv/git/escape -> ../git2/c.git      symlink out of the root
 *   srv/git/sneaky.git -> /tmp          symlink out, reached by suffix search
 *   srv/git/inner -> a.git              symlink inside (fine)
 *   srv/git/gitfile/.git                a "gitdir:" file
 *   srv/git/file.git                    a regular file
 *   srv/git2/c.git           the sibling root the prefix trick aims at */
static void make_git_tree(char *root, size_t rootsz)
{
    int n = snprintf(root, rootsz, "%s/srv/git", g_dir);
    assert_true(n > 0 && (size_t)n < rootsz);
    assert_int_equal(tu_system("set -e; cd '%s'; mkdir -p srv/git/a.git srv/git/team/b.git \"srv/git/it's!.git\" "
                               "srv/git/plain/.git srv/git2/c.git srv/git/gitfile; "
                               "for r in srv/git/a.git srv/git/team/b.git \"srv/git/it's!.git\" srv/git/plain/.git "
                               "srv/git2/c.git; do echo 'ref: refs/heads/main' > \"$r/HEAD\"; done; "
                               "ln -s ../git2/c.git srv/git/escape; ln -s /tmp srv/git/sneaky.git; "
                               "ln -s a.git srv/git/inner; echo 'gitdir: /etc' > srv/git/gitfile/.git; "
                               ": > srv/git/file.git",
                               g_dir),
                     0);
}

static void test_git_policy(void **st)
{
    (void)st;
    char root[600], text[800], real[PATH_MAX], want[PATH_MAX + 100];
    make_git_tree(root, sizeof(root));
    assert_non_null(realpath(root, real));
    FMT(text, "CommandPolicy git\nGitRoot %s\nMatch User other\n  GitRoot %s2\n", root, root);
    shoal_serve_config *c = load_ok(NULL, text);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "git", "192.0.2.1", &e), 0);
    shoal_serve_command cmd;
    char why[200];

    /* Accepted forms, as git sends them. */
    struct {
        const char *command, *program, *rel;
    } ok[] = {
        {"git-upload-pack 'a.git'", "git-upload-pack", "a.git"},
        {"git-receive-pack '/a.git'", "git-receive-pack", "a.git"},
        {"git-upload-archive '~/a.git'", "git-upload-archive", "a.git"},
        {"git-upload-pack 'a'", "git-upload-pack", "a"}, /* git itself finds a.git */
        {"git-upload-pack '//team/./b.git/'", "git-upload-pack", "team/b.git"},
        {"git-upload-pack 'it'\\''s'\\!'.git'", "git-upload-pack", "it's!.git"},
        {"git-upload-pack team/b.git", "git-upload-pack", "team/b.git"},
        {"git upload-pack '/a.git'", "git-upload-pack", "a.git"},
        {"git-upload-pack 'inner'", "git-upload-pack", "inner"}, /* a symlink that stays inside */
        {"git-upload-pack 'plain'", "git-upload-pack", "plain"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int rc = shoal_serve_command_allowed(&e, ok[i].command, &cmd, why, sizeof(why));
        if (rc != 1)
            fail_msg("refused %s: %s", ok[i].command, why);
        assert_string_equal(cmd.program, ok[i].program);
        FMT(want, "%s/%s", real, ok[i].rel);
        assert_string_equal(cmd.path, want);
        shoal_serve_command_free(&cmd);
    }
    /* The command to run is quoted the way git quotes. */
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'it'\\''s'\\!'.git'", &cmd, why, sizeof(why)),
                     1);
    FMT(want, "git-upload-pack '%s/it'\\''s'\\!'.git'", real);
    assert_string_equal(cmd.command, want);
    shoal_serve_command_free(&cmd);

    /* Refused, with the reason given to the client. */
    struct {
        const char *command, *why;
    } bad[] = {
        {"git-upload-pack '../git2/c.git'", "repository path must not contain \"..\""},
        {"git-upload-pack 'team/../../git2/c.git'", "repository path must not contain \"..\""},
        {"git-upload-pack '/..'", "repository path must not contain \"..\""},
        {"git-upload-pack 'escape'", "repository path leaves the repository root"},
        {"git-upload-pack 'sneaky'", "repository path leaves the repository root"},
        {"git-upload-pack '/etc/passwd'", "repository not found"}, /* read as <root>/etc/passwd */
        {"git-upload-pack '/tmp'", "repository not found"},
        {"git-upload-pack 'gitfile'", "repository not found"},
        {"git-upload-pack 'file.git'", "repository not found"},
        {"git-upload-pack 'nothere.git'", "repository not found"},
        {"git-upload-pack '/'", "no repository path given"},
        {"git-upload-pack '~'", "no repository path given"},
        {"git-upload-pack '~root/a.git'", "~user repository paths are not supported here"},
        {"git-upload-pack 'a\\b.git'", "invalid repository path"},
        {"git-upload-pack \"a.git\"",
         "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here (with one quoted repository "
         "path)"},
        {"git-upload-pack 'a.git' extra",
         "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here (with one quoted repository "
         "path)"},
        {"git-upload-pack 'a.git'; rm -rf /",
         "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here (with one quoted repository "
         "path)"},
        {"git-upload-pack 'a.git", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here "
                                   "(with one quoted repository path)"},
        {"git-upload-pack a.git;id", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here "
                                     "(with one quoted repository path)"},
        {"git-upload-pack  'a.git'", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here "
                                     "(with one quoted repository path)"},
        {"git-upload-pack", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here"},
        {"git-shell -c x", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here"},
        {"sh -c 'git-upload-pack a.git'",
         "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here"},
        {"git-upload-packx 'a.git'", "only git-upload-pack, git-receive-pack and git-upload-archive are allowed here"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = shoal_serve_command_allowed(&e, bad[i].command, &cmd, why, sizeof(why));
        if (rc != 0)
            fail_msg("accepted %s (rc %d)", bad[i].command, rc);
        if (strcmp(why, bad[i].why) != 0)
            fail_msg("%s: why \"%s\", expected \"%s\"", bad[i].command, why, bad[i].why);
        assert_null(cmd.command);
    }
    /* A control byte inside the quotes. */
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'a\x01.git'", &cmd, why, sizeof(why)), 0);
    assert_string_equal(why, "invalid repository path");
    /* Shell requests. */
    assert_int_equal(shoal_serve_command_allowed(&e, NULL, &cmd, why, sizeof(why)), 0);
    assert_string_equal(why, "shell access is not allowed here; only git-upload-pack, git-receive-pack and "
                             "git-upload-archive are allowed here");

    /* The root prefix trick: a user whose root is srv/git2 cannot reach srv/git,
     * and srv/git's users cannot reach srv/git2 through "../git2". */
    assert_int_equal(shoal_serve_config_for(c, "other", "192.0.2.1", &e), 0);
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'c.git'", &cmd, why, sizeof(why)), 1);
    FMT(want, "%s2/c.git", real);
    assert_string_equal(cmd.path, want);
    shoal_serve_command_free(&cmd);
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'a.git'", &cmd, why, sizeof(why)), 0);
    shoal_serve_config_free(c);

    /* A root that is a symlink resolves; a missing root refuses everything. */
    char link[700];
    FMT(link, "%s/gitlink", g_dir);
    assert_int_equal(symlink(root, link), 0);
    FMT(text, "CommandPolicy git\nGitRoot %s\n", link);
    c = load_ok(NULL, text);
    assert_int_equal(shoal_serve_config_for(c, "git", "192.0.2.1", &e), 0);
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'a.git'", &cmd, why, sizeof(why)), 1);
    FMT(want, "%s/a.git", real);
    assert_string_equal(cmd.path, want);
    shoal_serve_command_free(&cmd);
    shoal_serve_config_free(c);
    FMT(text, "CommandPolicy git\nGitRoot %s/nonexistent\n", g_dir);
    c = load_ok(NULL, text);
    assert_int_equal(shoal_serve_config_for(c, "git", "192.0.2.1", &e), 0);
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'a.git'", &cmd, why, sizeof(why)), 0);
    assert_string_equal(why, "repository root not available");
    shoal_serve_config_free(c);
    /* No GitRoot in the effective settings: refuse, never fall back to "/". */
    shoal_serve_effective none;
    memset(&none, 0, sizeof(none));
    none.command_policy = SHOAL_SERVE_POLICY_GIT;
    assert_int_equal(shoal_serve_command_allowed(&none, "git-upload-pack 'a.git'", &cmd, why, sizeof(why)), 0);
    assert_string_equal(why, "git access is not configured on this server");
}

/* The resolved command really works with git (when git is installed). */
static void test_git_real(void **st)
{
    (void)st;
    if (!tu_have("git"))
        skip();
    char root[600], text[800], why[200];
    FMT(root, "%s/real/git", g_dir);
    assert_int_equal(tu_system("mkdir -p '%s' && git init -q --bare '%s/proj.git'", root, root), 0);
    FMT(text, "CommandPolicy git\nGitRoot %s\n", root);
    shoal_serve_config *c = load_ok(NULL, text);
    shoal_serve_effective e;
    assert_int_equal(shoal_serve_config_for(c, "git", "192.0.2.1", &e), 0);
    shoal_serve_command cmd;
    /* What "git clone host:proj" sends: git finds proj.git itself. */
    assert_int_equal(shoal_serve_command_allowed(&e, "git-upload-pack 'proj'", &cmd, why, sizeof(why)), 1);
    assert_int_equal(tu_system("cd / && git-upload-pack --advertise-refs %s >/dev/null 2>&1 </dev/null || "
                               "git upload-pack --advertise-refs '%s' >/dev/null 2>&1 </dev/null",
                               strchr(cmd.command, ' ') + 1, cmd.path),
                     0);
    shoal_serve_command_free(&cmd);
    shoal_serve_config_free(c);
}

/* PerSourceMaxStartups, PerSourceNetBlockSize, PerSourcePenalties and
 * PerSourcePenaltyExemptList: sshd's syntax and defaults (OpenSSH 9.8:
 * penalties on), the unsupported parts refused with file:line. */
static void test_per_source(void **st)
{
    (void)st;
    shoal_serve_config *c = load_ok(NULL, "");
    const shoal_serve_global *g = shoal_serve_config_global(c);
    assert_int_equal(g->per_source_max_startups, 0);
    assert_int_equal(g->per_source_netblock4, 32);
    assert_int_equal(g->per_source_netblock6, 128);
    assert_int_equal(g->penalties.enabled, 1);
    assert_int_equal(g->penalties.authfail, 5);
    assert_int_equal(g->penalties.noauth, 1);
    assert_int_equal(g->penalties.grace_exceeded, 10);
    assert_int_equal(g->penalties.max, 600);
    assert_int_equal(g->penalties.min, 15);
    assert_int_equal(g->penalties.max_sources4, 65536);
    assert_int_equal(g->penalties.max_sources6, 65536);
    assert_int_equal(g->penalties.overflow_deny_all, 0);
    assert_int_equal(g->penalties.overflow6_deny_all, 0);
    assert_null(g->penalty_exempt);
    shoal_serve_config_free(c);

    c = load_ok(NULL, "PerSourceMaxStartups 7\nPerSourceNetBlockSize 24:56\n"
                      "PerSourcePenalties authfail:1m noauth:0 min:30s max:1h max-sources4:100 overflow:deny-all\n"
                      "PerSourcePenalties authfail:2s grace-exceeded:20s max-sources6:200\n"
                      "PerSourcePenaltyExemptList 10.0.0.0/8,192.0.2.*\n");
    g = shoal_serve_config_global(c);
    assert_int_equal(g->per_source_max_startups, 7);
    assert_int_equal(g->per_source_netblock4, 24);
    assert_int_equal(g->per_source_netblock6, 56);
    assert_int_equal(g->penalties.enabled, 1);
    assert_int_equal(g->penalties.authfail, 60); /* the first line's value wins */
    assert_int_equal(g->penalties.noauth, 0);
    assert_int_equal(g->penalties.grace_exceeded, 20);
    assert_int_equal(g->penalties.min, 30);
    assert_int_equal(g->penalties.max, 3600);
    assert_int_equal(g->penalties.max_sources4, 100);
    assert_int_equal(g->penalties.max_sources6, 200);
    assert_int_equal(g->penalties.overflow_deny_all, 1);
    assert_int_equal(g->penalties.overflow6_deny_all, 1); /* as overflow when not given */
    assert_string_equal(g->penalty_exempt, "10.0.0.0/8,192.0.2.*");
    shoal_serve_config_free(c);

    c = load_ok(NULL, "PerSourceNetBlockSize 16\nPerSourcePenalties no\nPerSourceMaxStartups none\n"
                      "PerSourcePenalties yes\n");
    g = shoal_serve_config_global(c);
    assert_int_equal(g->per_source_netblock4, 16);
    assert_int_equal(g->per_source_netblock6, 128);
    assert_int_equal(g->per_source_max_startups, 0);
    assert_int_equal(g->penalties.enabled, 0); /* the first yes/no wins */
    shoal_serve_config_free(c);
    /* As sshd: a keyword taken from a later line turns them on again. */
    c = load_ok(NULL, "PerSourcePenalties no\nPerSourcePenalties noauth:3\n");
    g = shoal_serve_config_global(c);
    assert_int_equal(g->penalties.enabled, 1);
    assert_int_equal(g->penalties.noauth, 3);
    shoal_serve_config_free(c);
    c = load_ok(NULL, "PerSourcePenalties overflow:permissive overflow6:deny-all\n");
    g = shoal_serve_config_global(c);
    assert_int_equal(g->penalties.overflow_deny_all, 0);
    assert_int_equal(g->penalties.overflow6_deny_all, 1);
    shoal_serve_config_free(c);
    /* The command line decides over the file. */
    const char *const opts[] = {"PerSourcePenalties=no", "PerSourceMaxStartups=3", NULL};
    c = load_ok(opts, "PerSourcePenalties authfail:9\nPerSourceMaxStartups 9\n");
    g = shoal_serve_config_global(c);
    assert_int_equal(g->penalties.enabled, 0);
    assert_int_equal(g->per_source_max_startups, 3);
    shoal_serve_config_free(c);

    expect_error(NULL, "\n\nPerSourcePenalties crash:90s authfail:5s\n",
                 "config:3: PerSourcePenalties: crash: is not supported by shoal serve (one process: a crash ends "
                 "every connection, and no source can be charged with it)");
    expect_error(NULL, "PerSourcePenalties authfail:5s bogus:1\n",
                 "config:1: PerSourcePenalties: unsupported keyword \"bogus:1\"");
    expect_error(NULL, "PerSourcePenalties yes authfail:5\n",
                 "config:1: PerSourcePenalties: \"yes\" must appear alone");
    expect_error(NULL, "PerSourcePenalties authfail:soon\n",
                 "config:1: PerSourcePenalties: invalid time value \"soon\"");
    expect_error(NULL, "PerSourcePenalties max-sources4:0\n",
                 "config:1: PerSourcePenalties: invalid number value \"0\"");
    expect_error(NULL, "PerSourcePenalties overflow:drop\n",
                 "config:1: PerSourcePenalties: unsupported overflow mode \"drop\" (deny-all, permissive)");
    expect_error(NULL, "PerSourcePenalties\n", "config:1: PerSourcePenalties: missing argument");
    expect_error(NULL, "PerSourceMaxStartups 0\n",
                 "config:1: PerSourceMaxStartups: expected a number (1..100000) or none, got \"0\"");
    expect_error(NULL, "PerSourceMaxStartups lots\n",
                 "config:1: PerSourceMaxStartups: expected a number (1..100000) or none, got \"lots\"");
    expect_error(NULL, "PerSourceNetBlockSize 33\n",
                 "config:1: PerSourceNetBlockSize: expected ipv4bits[:ipv6bits] (1..32, 1..128), got \"33\"");
    expect_error(NULL, "PerSourceNetBlockSize 24:129\n",
                 "config:1: PerSourceNetBlockSize: expected ipv4bits[:ipv6bits] (1..32, 1..128), got \"24:129\"");
    expect_error(NULL, "PerSourceNetBlockSize 0\n",
                 "config:1: PerSourceNetBlockSize: expected ipv4bits[:ipv6bits] (1..32, 1..128), got \"0\"");
    expect_error(NULL, "PerSourcePenaltyExemptList 10.0.0.1/8\n",
                 "config:1: PerSourcePenaltyExemptList: bad address list \"10.0.0.1/8\"");
    expect_error(NULL, "Match User x\nPerSourcePenalties no\n",
                 "config:2: PerSourcePenalties is not allowed inside a Match block");
    expect_error(NULL, "Match User x\nPerSourceMaxStartups 3\n",
                 "config:2: PerSourceMaxStartups is not allowed inside a Match block");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_keyword),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_first_value_wins),
        cmocka_unit_test(test_cmdline_precedence),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_debian_lines),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_git_policy),
        cmocka_unit_test(test_git_real),
        cmocka_unit_test(test_per_source),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
