/* The -o resolver (src/uv/ssh_resolve.c) shared by shoal exec, the fan-out,
 * the benchmark and the examples: precedence of -l/-p over User/Port, the
 * authentication methods and host key policy with and without someone to
 * ask, default files under $HOME, and the options-struct size rule (also
 * shoal_fleet_new's). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shoal/config.h"
#include "shoal/fleet.h"
#include "shoal/ssh_resolve.h"

static char home[256];

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-resolve.XXXXXX");
    if (!mkdtemp(home))
        return -1;
    setenv("HOME", home, 1);
    unsetenv("SSH_AUTH_SOCK");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(home);
    return 0;
}

static void options(shoal_ssh_options *o, const char *const *texts)
{
    char err[256];
    shoal_ssh_options_init(o);
    for (; *texts; texts++)
        if (shoal_ssh_options_apply(o, *texts, err, sizeof(err)) != 0)
            fail_msg("%s: %s", *texts, err);
}

static shoal_ssh_resolved *resolve(const shoal_ssh_options *o, const shoal_ssh_resolve_params *p)
{
    char err[600] = "";
    shoal_ssh_resolved *r = NULL;
    int rc = shoal_ssh_resolve(o, p, &r, err, sizeof(err));
    if (rc)
        fail_msg("resolve: %s (%s)", shoal_errname(rc), err);
    return r;
}

static void no_events(shoal_fleet *f, shoal_fleet_event *ev, void *ud)
{
    (void)f, (void)ud;
    shoal_fleet_event_free(ev);
}

static void test_user_and_port(void **state)
{
    (void)state;
    shoal_ssh_options o;
    const char *const opts[] = {"User=optuser", "Port=2222", NULL};
    options(&o, opts);
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    shoal_ssh_resolved *r = resolve(&o, &p);
    assert_string_equal(shoal_ssh_resolved_user(r), "optuser");
    assert_int_equal(shoal_ssh_resolved_port(r), 2222);
    assert_string_equal(shoal_ssh_resolved_conn(r)->ssh->user, "optuser");
    shoal_ssh_resolved_free(r);
    p.user = "dash-l";
    p.port = 22022;
    p.default_user = "fallback";
    r = resolve(&o, &p);
    assert_string_equal(shoal_ssh_resolved_user(r), "dash-l");
    assert_int_equal(shoal_ssh_resolved_conn(r)->port, 22022);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);

    const char *const none[] = {NULL};
    options(&o, none);
    r = resolve(&o, &p);
    assert_string_equal(shoal_ssh_resolved_user(r), "dash-l");
    shoal_ssh_resolved_free(r);
    p.user = NULL;
    p.port = 0;
    r = resolve(&o, &p);
    assert_string_equal(shoal_ssh_resolved_user(r), "fallback");
    assert_int_equal(shoal_ssh_resolved_port(r), 22);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);
}

static void test_auth_methods(void **state)
{
    (void)state;
    shoal_ssh_options o;
    const char *const none[] = {NULL};
    options(&o, none);
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    p.default_user = "u";
    shoal_ssh_resolved *r = resolve(&o, &p);
    assert_int_equal(shoal_ssh_resolved_conn(r)->ssh->auth_methods, SHOAL_AUTH_PUBLICKEY);
    shoal_ssh_resolved_free(r);
    p.flags = SHOAL_SSH_RESOLVE_INTERACTIVE;
    r = resolve(&o, &p);
    assert_int_equal(shoal_ssh_resolved_conn(r)->ssh->auth_methods,
                     SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD | SHOAL_AUTH_KBDINT);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);

    const char *const off[] = {"PubkeyAuthentication=no", "PasswordAuthentication=no",
                               "KbdInteractiveAuthentication=no", NULL};
    options(&o, off);
    r = resolve(&o, &p);
    assert_int_equal(shoal_ssh_resolved_conn(r)->ssh->auth_methods, SHOAL_AUTH_NONE_ONLY);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);

    const char *const pw[] = {"PasswordAuthentication=yes", NULL};
    options(&o, pw);
    p.flags = 0;
    r = resolve(&o, &p);
    assert_int_equal(shoal_ssh_resolved_conn(r)->ssh->auth_methods, SHOAL_AUTH_PUBLICKEY | SHOAL_AUTH_PASSWORD);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);
}

static shoal_hostkey_policy policy(const char *text, unsigned flags, shoal_hostkey_policy dflt)
{
    shoal_ssh_options o;
    const char *const opts[] = {text, NULL};
    options(&o, text ? opts : opts + 1);
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    p.default_user = "u";
    p.flags = flags;
    p.default_policy = dflt;
    shoal_ssh_resolved *r = resolve(&o, &p);
    shoal_hostkey_policy got = shoal_ssh_resolved_conn(r)->hostkey_policy;
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);
    return got;
}

static void test_hostkey_policy(void **state)
{
    (void)state;
    const unsigned I = SHOAL_SSH_RESOLVE_INTERACTIVE;
    assert_int_equal(policy(NULL, 0, SHOAL_HOSTKEY_ACCEPT_NEW), SHOAL_HOSTKEY_ACCEPT_NEW);
    assert_int_equal(policy(NULL, I, SHOAL_HOSTKEY_ASK), SHOAL_HOSTKEY_ASK);
    assert_int_equal(policy(NULL, 0, SHOAL_HOSTKEY_ASK), SHOAL_HOSTKEY_STRICT);
    assert_int_equal(policy("StrictHostKeyChecking=ask", I, SHOAL_HOSTKEY_STRICT), SHOAL_HOSTKEY_ASK);
    assert_int_equal(policy("StrictHostKeyChecking=ask", 0, SHOAL_HOSTKEY_ACCEPT_NEW), SHOAL_HOSTKEY_STRICT);
    assert_int_equal(policy("StrictHostKeyChecking=no", 0, SHOAL_HOSTKEY_STRICT), SHOAL_HOSTKEY_OFF);
    assert_int_equal(policy("StrictHostKeyChecking=yes", I, SHOAL_HOSTKEY_ASK), SHOAL_HOSTKEY_STRICT);
    assert_int_equal(policy("StrictHostKeyChecking=accept-new", 0, SHOAL_HOSTKEY_STRICT),
                     SHOAL_HOSTKEY_ACCEPT_NEW);
}

static void count_warning(const char *message, void *ud)
{
    (void)message;
    (*(int *)ud)++;
}

static void test_files(void **state)
{
    (void)state;
    shoal_ssh_options o;
    const char *const opts[] = {"IdentityFile=/nonexistent/a", "IdentityAgent=none", "ConnectTimeout=7",
                                "ConnectionAttempts=5", NULL};
    options(&o, opts);
    setenv("SSH_AUTH_SOCK", "/tmp/agent.sock", 1);
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    p.default_user = "u";
    const char *extra[] = {"/nonexistent/b"};
    p.extra_keys = extra;
    p.n_extra_keys = 1;
    shoal_ssh_resolved *r = resolve(&o, &p);
    const shoal_uv_options *c = shoal_ssh_resolved_conn(r);
    assert_int_equal(c->n_identity_files, 2);
    assert_string_equal(c->identity_files[0], "/nonexistent/a");
    assert_string_equal(c->identity_files[1], "/nonexistent/b");
    assert_null(c->agent_socket);
    assert_int_equal(c->connect_timeout_ms, 7000);
    assert_int_equal(c->kex_timeout_ms, 7000);
    assert_int_equal(shoal_ssh_resolved_connection_attempts(r), 5);
    char want[300];
    snprintf(want, sizeof(want), "%s/.ssh/known_hosts", home);
    assert_int_equal(c->n_known_hosts, 2);
    assert_string_equal(c->known_hosts[0], want);
    assert_string_equal(c->known_hosts[1], "/etc/ssh/ssh_known_hosts");
    assert_null(c->known_hosts_db);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);

    /* Loading: keys that cannot be read are reported and skipped. */
    const char *const none[] = {NULL};
    options(&o, none);
    int warned = 0;
    p.flags = SHOAL_SSH_RESOLVE_LOAD_KEYS;
    p.warn = count_warning;
    p.warn_ud = &warned;
    r = resolve(&o, &p);
    c = shoal_ssh_resolved_conn(r);
    assert_int_equal(c->n_keys, 0);
    assert_int_equal(c->n_identity_files, 0);
    assert_string_equal(c->agent_socket, "/tmp/agent.sock");
    assert_int_equal(warned, 1); /* the extra key; no default key exists under $HOME */
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);
    unsetenv("SSH_AUTH_SOCK");
}

static void test_size_rule(void **state)
{
    (void)state;
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    shoal_ssh_resolve_params p;
    memset(&p, 0, sizeof(p)); /* no _init: size 0 */
    shoal_ssh_resolved *r = NULL;
    char err[200];
    assert_int_equal(shoal_ssh_resolve(&o, &p, &r, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_null(r);
    /* A caller that knows only the first fields: the rest are zero. */
    shoal_ssh_resolve_params_init(&p);
    p.user = "short";
    p.verbose = 9; /* beyond the size given: ignored */
    p.size = offsetof(shoal_ssh_resolve_params, port);
    assert_int_equal(shoal_ssh_resolve(&o, &p, &r, err, sizeof(err)), SHOAL_OK);
    assert_string_equal(shoal_ssh_resolved_user(r), "short");
    assert_int_equal(shoal_ssh_resolved_conn(r)->log_level, 0);
    shoal_ssh_resolved_free(r);
    shoal_ssh_options_free(&o);

    shoal_fleet_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    shoal_fleet *f = NULL;
    assert_int_equal(shoal_fleet_new(&loop, &cfg, NULL, NULL, &f, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_null(f);
    /* Initialised, but without connection options (a required pointer). */
    shoal_fleet_config_init(&cfg);
    assert_int_equal(shoal_fleet_new(&loop, &cfg, no_events, NULL, &f, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_null(f);
    assert_non_null(strstr(err, "shoal_uv_options_init"));
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_and_port),
        cmocka_unit_test(test_auth_methods),
        cmocka_unit_test(test_hostkey_policy),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_size_rule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
