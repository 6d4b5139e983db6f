/* shoal_strvis: the one escaping of peer text in log lines (log forging). */
#include "testutil.h"

#include <string.h>

#include "shoal/strvis.h"

static void test_printable_kept(void **st)
{
    (void)st;
    char out[128];
    const char *s = "alice from 10.0.0.1: \"git-upload-pack 'x.git'\" ~!@#$%^&*()[]{}";
    assert_int_equal(shoal_strvis(out, sizeof(out), s, strlen(s), 0), strlen(s));
    assert_string_equal(out, s);
}

static void test_control_bytes_octal(void **st)
{
    (void)st;
    char out[128];
    const char s[] = "a\nb\rc\td\033[2Je\x7f";
    shoal_strvis(out, sizeof(out), s, sizeof(s) - 1, 0);
    assert_string_equal(out, "a\\012b\\015c\\011d\\033[2Je\\177");
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '\r'));
}

static void test_backslash_and_high_bytes(void **st)
{
    (void)st;
    char out[64];
    /* A literal "\012" typed by the peer must not read as an escape. */
    shoal_vis(out, sizeof(out), "\\012");
    assert_string_equal(out, "\\134012");
    shoal_vis(out, sizeof(out), "caf\xc3\xa9");
    assert_string_equal(out, "caf\\303\\251");
}

static void test_nul_inside_counted(void **st)
{
    (void)st;
    char out[64];
    const char s[] = {'x', 0, 'y'};
    assert_int_equal(shoal_strvis(out, sizeof(out), s, 3, 0), 6);
    assert_string_equal(out, "x\\000y");
}

/* The forged-line attack: the whole fake line ends up inside one line. */
static void test_forged_line(void **st)
{
    (void)st;
    const char *user =
        "nobody\n2030-01-01T00:00:00 shoal[1]: root: accepted publickey ssh-ed25519 SHA256:x from 1.2.3.4:5";
    char out[512];
    shoal_vis(out, sizeof(out), user);
    assert_null(strchr(out, '\n'));
    assert_non_null(strstr(out, "nobody\\0122030-01-01T00:00:00 shoal[1]: root: accepted publickey"));
}

static void test_truncation_never_splits_an_escape(void **st)
{
    (void)st;
    char out[7];
    /* "ab" + \012 needs 2 + 4 + NUL = 7: fits exactly. */
    assert_int_equal(shoal_strvis(out, sizeof(out), "ab\ncd", 5, 0), 6);
    assert_string_equal(out, "ab\\012");
    char small[6];
    assert_int_equal(shoal_strvis(small, sizeof(small), "ab\ncd", 5, 0), 2);
    assert_string_equal(small, "ab");
    char one[1];
    assert_int_equal(shoal_strvis(one, sizeof(one), "abc", 3, 0), 0);
    assert_string_equal(one, "");
    assert_int_equal(shoal_strvis(NULL, 0, "abc", 3, 0), 0);
    /* The documented worst case always fits. */
    char worst[4 * 3 + 1];
    assert_int_equal(shoal_strvis(worst, sizeof(worst), "\n\n\n", 3, 0), 12);
}

static void test_text_mode(void **st)
{
    (void)st;
    char out[128];
    const char s[] = "Welcome\r\nto\tshoal \\_/\n\033[31mred\r\xff";
    shoal_strvis(out, sizeof(out), s, sizeof(s) - 1, SHOAL_VIS_TEXT);
    assert_string_equal(out, "Welcome\nto\tshoal \\_/\n\\033[31mred\\015\\377");
}

static void test_null_source(void **st)
{
    (void)st;
    char out[8] = "zzz";
    assert_string_equal(shoal_vis(out, sizeof(out), NULL), "");
    assert_int_equal(shoal_strvis(out, sizeof(out), NULL, 5, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_kept),       cmocka_unit_test(test_control_bytes_octal),
        cmocka_unit_test(test_backslash_and_high_bytes), cmocka_unit_test(test_nul_inside_counted),
        cmocka_unit_test(test_forged_line),          cmocka_unit_test(test_truncation_never_splits_an_escape),
        cmocka_unit_test(test_text_mode),              cmocka_unit_test(test_null_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
