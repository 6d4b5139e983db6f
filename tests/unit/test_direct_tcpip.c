/* shoal_channel_open_direct_tcpip's checks before anything is sent (the
 * stream itself is tested against OpenSSH's sshd in
 * tests/interop/openssh_stdio_forward.sh). */
#include "testutil.h"

#include <string.h>

#include "shoal/channel.h"
#include "shoal/session.h"

static int hostkey_yes(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s, (void)info, (void)ud;
    return 0;
}

static shoal_session *new_client(void)
{
    shoal_client_config cfg;
    shoal_client_config_init(&cfg);
    cfg.user = "u";
    shoal_client_callbacks cb;
    shoal_client_callbacks_init(&cb);
    cb.hostkey = hostkey_yes;
    shoal_session *s = NULL;
    assert_int_equal(shoal_session_new_client(&s, &cfg, &cb, NULL), SHOAL_OK);
    return s;
}

static void test_arguments(void **st)
{
    (void)st;
    shoal_session *s = new_client();
    shoal_channel *ch = (shoal_channel *)&ch;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "", 80, NULL, 0, NULL, NULL, &ch), SHOAL_ERR_INVALID_ARG);
    assert_null(ch);
    assert_int_equal(shoal_channel_open_direct_tcpip(s, NULL, 80, NULL, 0, NULL, NULL, &ch), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_channel_open_direct_tcpip(s, longname, 80, NULL, 0, NULL, NULL, &ch),
                     SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "h", 65536, NULL, 0, NULL, NULL, &ch), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "h", 80, "", 0, NULL, NULL, &ch), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "h", 80, NULL, 70000, NULL, NULL, &ch),
                     SHOAL_ERR_INVALID_ARG);
    shoal_channel_callbacks zero;
    memset(&zero, 0, sizeof(zero)); /* never initialised: size 0 */
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "h", 80, NULL, 0, &zero, NULL, &ch), SHOAL_ERR_INVALID_ARG);
    shoal_session_free(s);
}

static void test_not_before_authentication(void **st)
{
    (void)st;
    shoal_session *s = new_client();
    assert_int_equal(shoal_session_start(s, 0), SHOAL_OK);
    shoal_channel *ch = NULL;
    /* Unlike a session channel, no early open: nothing to ride with. */
    assert_int_equal(shoal_channel_open_direct_tcpip(s, "h", 80, NULL, 0, NULL, NULL, &ch), SHOAL_ERR_BAD_STATE);
    assert_null(ch);
    shoal_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_not_before_authentication),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
