/* Versioned options structs (docs/API.md, "Options structs"): a struct from
 * an older header (smaller size) is read as far as it goes and the rest is
 * the default; a struct that was never initialised (size 0) is refused. */
#include "testutil.h"

#include <stddef.h>
#include <string.h>

#include "abi.h"
#include "shoal/command.h"
#include "shoal/session.h"
#include "shoal/uv.h"

static int hostkey_yes(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s, (void)info, (void)ud;
    return 0;
}

static void test_init_sets_size(void **st)
{
    (void)st;
    shoal_uv_options o;
    memset(&o, 0x5a, sizeof(o));
    shoal_uv_options_init(&o);
    assert_int_equal(o.size, sizeof(o));
    assert_null(o.host);
    assert_int_equal(o.port, 0);
    shoal_child_callbacks cb;
    shoal_child_callbacks_init(&cb);
    assert_int_equal(cb.size, sizeof(cb));
    assert_null(cb.on_exit);
}

static void test_older_struct_zero_fills(void **st)
{
    (void)st;
    /* A caller whose header ended before agent_limiter. */
    shoal_uv_options old;
    memset(&old, 0x5a, sizeof(old)); /* bytes past its size are garbage to us */
    old.size = offsetof(shoal_uv_options, agent_limiter);
    old.host = "h";
    old.port = 2222;
    shoal_uv_options mine;
    assert_int_equal(shoal__struct_copy(&mine, sizeof(mine), &old), SHOAL_OK);
    assert_int_equal(mine.size, sizeof(mine));
    assert_string_equal(mine.host, "h");
    assert_int_equal(mine.port, 2222);
    assert_null(mine.agent_limiter);
}

static void test_newer_struct_truncated(void **st)
{
    (void)st;
    /* A caller with a newer header: we read only what we know. */
    struct {
        shoal_child_options known;
        uint64_t future_member;
    } newer;
    memset(&newer, 0, sizeof(newer));
    newer.known.size = sizeof(newer);
    newer.known.timeout_ms = 1234;
    newer.future_member = 99;
    shoal_child_options mine;
    assert_int_equal(shoal__struct_copy(&mine, sizeof(mine), &newer), SHOAL_OK);
    assert_int_equal(mine.size, sizeof(mine));
    assert_int_equal(mine.timeout_ms, 1234);
}

static void test_uninitialised_refused(void **st)
{
    (void)st;
    shoal_client_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.user = "u";
    shoal_client_callbacks cb;
    shoal_client_callbacks_init(&cb);
    cb.hostkey = hostkey_yes;
    shoal_session *s = NULL;
    assert_int_equal(shoal_session_new_client(&s, &cfg, &cb, NULL), SHOAL_ERR_INVALID_ARG);
    assert_null(s);
    shoal_client_config_init(&cfg);
    cfg.user = "u";
    cb.size = 0;
    assert_int_equal(shoal_session_new_client(&s, &cfg, &cb, NULL), SHOAL_ERR_INVALID_ARG);
    cb.size = sizeof(cb);
    assert_int_equal(shoal_session_new_client(&s, &cfg, &cb, NULL), SHOAL_OK);
    shoal_session_free(s);
    /* The optional ones: NULL is "all defaults", size 0 is still an error. */
    shoal_channel_callbacks zero;
    memset(&zero, 0, sizeof(zero));
    char junk[16];
    assert_int_equal(shoal__struct_copy_opt(junk, sizeof(junk), NULL), SHOAL_OK);
    assert_int_equal(shoal__struct_copy_opt(junk, sizeof(junk), &zero), SHOAL_ERR_INVALID_ARG);
}

static void test_uv_conn_refuses_missing_ssh(void **st)
{
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    shoal_uv_options o;
    shoal_uv_options_init(&o);
    o.host = "127.0.0.1";
    shoal_uv_conn *c = NULL;
    assert_int_equal(shoal_uv_conn_new(&loop, &o, NULL, NULL, &c), SHOAL_ERR_INVALID_ARG);
    shoal_client_config sc;
    memset(&sc, 0, sizeof(sc));
    sc.user = "u";
    o.ssh = &sc;
    assert_int_equal(shoal_uv_conn_new(&loop, &o, NULL, NULL, &c), SHOAL_ERR_INVALID_ARG);
    assert_null(c);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_sets_size),
        cmocka_unit_test(test_older_struct_zero_fills),
        cmocka_unit_test(test_newer_struct_truncated),
        cmocka_unit_test(test_uninitialised_refused),
        cmocka_unit_test(test_uv_conn_refuses_missing_ssh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
