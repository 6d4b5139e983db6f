/* "shoal serve" environment requests: AcceptEnv, the names a wildcard never
 * admits, and the command policies that admit nothing but GIT_PROTOCOL
 * (the finding: "AcceptEnv GIT_*" let GIT_CONFIG_PARAMETERS run any command
 * through uploadpack.packObjectsHook, "AcceptEnv LD_*" let LD_PRELOAD). */
#include "testutil.h"

#include <string.h>

#include "shoal/serveconfig.h"

static shoal_serve_effective eff(shoal_serve_policy policy, const char *const *accept, unsigned n)
{
    shoal_serve_effective e;
    memset(&e, 0, sizeof(e));
    e.command_policy = policy;
    e.accept_env = accept;
    e.n_accept_env = n;
    return e;
}

#define ALLOWED(e, n, v) shoal_serve_env_allowed(&(e), (n), (v), why, sizeof(why))

static void test_accept_env_basics(void **st)
{
    (void)st;
    char why[200];
    static const char *const acc[] = {"LANG", "LC_*", "SHOAL_?"};
    shoal_serve_effective e = eff(SHOAL_SERVE_POLICY_ANY, acc, 3);
    assert_int_equal(ALLOWED(e, "LANG", "C.UTF-8"), 1);
    assert_int_equal(ALLOWED(e, "LC_ALL", "C"), 1);
    assert_int_equal(ALLOWED(e, "SHOAL_X", "1"), 1);
    assert_int_equal(ALLOWED(e, "SHOAL_XY", "1"), 0);
    assert_string_equal(why, "not in AcceptEnv");
    assert_int_equal(ALLOWED(e, "A=B", "1"), 0);
    assert_int_equal(ALLOWED(e, "", "1"), 0);
    assert_int_equal(ALLOWED(e, "LC_\n", "1"), 0);
    shoal_serve_effective none = eff(SHOAL_SERVE_POLICY_ANY, NULL, 0);
    assert_int_equal(ALLOWED(none, "LANG", "C"), 0);
}

static void test_dangerous_names_need_their_full_name(void **st)
{
    (void)st;
    char why[200];
    static const char *const wild[] = {"*", "LD_*", "GIT_*", "BASH*", "PYTHON*", "P*"};
    shoal_serve_effective e = eff(SHOAL_SERVE_POLICY_ANY, wild, 6);
    static const char *const bad[] = {
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GIT_CONFIG_PARAMETERS", "GIT_EXEC_PATH", "GIT_PROTOCOL",
        "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "BASH_FUNC_x%%", "PYTHONSTARTUP", "PYTHONPATH",
        "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "PATH", "HOME", "SHELL", "USER",
        "LOGNAME", "MAIL", "GCONV_PATH", "LOCPATH", "HOSTALIASES", "RES_OPTIONS", "MALLOC_CHECK_",
        "GLIBC_TUNABLES", "TZ", "SSH_ORIGINAL_COMMAND", "SSH_CONNECTION", "LESSOPEN", "PROMPT_COMMAND"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(shoal_serve_env_dangerous(bad[i]), 1);
        int got = ALLOWED(e, bad[i], "version=2");
        if (got)
            fail_msg("%s admitted by a wildcard", bad[i]);
    }
    assert_non_null(strstr(why, "exactly"));
    /* Ordinary names still pass a wildcard. */
    assert_int_equal(shoal_serve_env_dangerous("LANG"), 0);
    assert_int_equal(ALLOWED(e, "LANG", "C"), 1);
    assert_int_equal(ALLOWED(e, "LC_ALL", "C"), 1);
    /* Case matters, as for the loader. */
    assert_int_equal(shoal_serve_env_dangerous("ld_preload"), 0);
    /* Listed by its full name: admitted (the administrator said so). */
    static const char *const full[] = {"LD_PRELOAD", "GIT_PROTOCOL", "TZ"};
    shoal_serve_effective f = eff(SHOAL_SERVE_POLICY_ANY, full, 3);
    assert_int_equal(ALLOWED(f, "LD_PRELOAD", "/x.so"), 1);
    assert_int_equal(ALLOWED(f, "TZ", "UTC"), 1);
    assert_int_equal(ALLOWED(f, "LD_LIBRARY_PATH", "/x"), 0);
}

static void test_command_policy_admits_only_git_protocol(void **st)
{
    (void)st;
    char why[200];
    static const char *const acc[] = {"*", "LANG", "LD_PRELOAD", "GIT_CONFIG_PARAMETERS", "GIT_PROTOCOL"};
    for (int p = SHOAL_SERVE_POLICY_ALLOWLIST; p <= SHOAL_SERVE_POLICY_GIT; p++) {
        shoal_serve_effective e = eff((shoal_serve_policy)p, acc, 5);
        assert_int_equal(ALLOWED(e, "LANG", "C"), 0);
        assert_non_null(strstr(why, "CommandPolicy"));
        assert_int_equal(ALLOWED(e, "LD_PRELOAD", "/x.so"), 0);
        assert_int_equal(ALLOWED(e, "GIT_CONFIG_PARAMETERS", "'uploadpack.packobjectshook'='id'"), 0);
        assert_int_equal(ALLOWED(e, "GIT_PROTOCOL", "version=2"), 1);
        assert_int_equal(ALLOWED(e, "GIT_PROTOCOL", "version=1"), 1);
    }
    /* GIT_PROTOCOL still needs AcceptEnv, by its full name. */
    static const char *const wild[] = {"GIT_*"};
    shoal_serve_effective g = eff(SHOAL_SERVE_POLICY_GIT, wild, 1);
    assert_int_equal(ALLOWED(g, "GIT_PROTOCOL", "version=2"), 0);
    shoal_serve_effective n = eff(SHOAL_SERVE_POLICY_GIT, NULL, 0);
    assert_int_equal(ALLOWED(n, "GIT_PROTOCOL", "version=2"), 0);
}

static void test_git_protocol_value(void **st)
{
    (void)st;
    char why[200];
    static const char *const acc[] = {"GIT_PROTOCOL"};
    shoal_serve_effective e = eff(SHOAL_SERVE_POLICY_GIT, acc, 1);
    static const char *const bad[] = {"",          "version=",      "version=2 ", "version=2:x=y", "version=1234",
                                      "Version=2", "version=-1",    "version=2\n", "x",            "version=2;id"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ALLOWED(e, "GIT_PROTOCOL", bad[i]), 0);
    assert_string_equal(why, "GIT_PROTOCOL must be version=N");
    assert_int_equal(ALLOWED(e, "GIT_PROTOCOL", NULL), 0);
    assert_int_equal(ALLOWED(e, "GIT_PROTOCOL", "version=0"), 1);
    /* The same rule without a command policy. */
    shoal_serve_effective a = eff(SHOAL_SERVE_POLICY_ANY, acc, 1);
    assert_int_equal(ALLOWED(a, "GIT_PROTOCOL", "version=2;id"), 0);
    assert_int_equal(ALLOWED(a, "GIT_PROTOCOL", "version=2"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_env_basics),
        cmocka_unit_test(test_dangerous_names_need_their_full_name),
        cmocka_unit_test(test_command_policy_admits_only_git_protocol),
        cmocka_unit_test(test_git_protocol_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
