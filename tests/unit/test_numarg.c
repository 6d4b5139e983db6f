/* Strict command-line numbers of `shoal run`, `shoal put` and `shoal
 * agent` (apps/shoal/common/numarg.c): the units users type, and everything else
 * refused (the flags used to go through strtoul/strtod unchecked, so
 * "--rate 10M" meant 10 bytes/s and "-t abc" meant no deadline). */
#include "../../apps/shoal/common/numarg.c"

#include "testutil.h"

static uint64_t size_ok(const char *s, int rate)
{
    uint64_t v = 12345;
    if (numarg_size(s, rate, &v) != 0)
        fail_msg("numarg_size(\"%s\") refused", s);
    return v;
}

static void size_bad(const char *s, int rate)
{
    uint64_t v = 12345;
    if (numarg_size(s, rate, &v) == 0)
        fail_msg("numarg_size(\"%s\") accepted: %llu", s, (unsigned long long)v);
    assert_int_equal(v, 12345); /* untouched on error */
}

static uint64_t ms_ok(const char *s)
{
    uint64_t v = 12345;
    if (numarg_duration_ms(s, &v) != 0)
        fail_msg("numarg_duration_ms(\"%s\") refused", s);
    return v;
}

static void ms_bad(const char *s)
{
    uint64_t v = 12345;
    if (numarg_duration_ms(s, &v) == 0)
        fail_msg("numarg_duration_ms(\"%s\") accepted: %llu", s, (unsigned long long)v);
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(size_ok("0", 0), 0);
    assert_int_equal(size_ok("1", 0), 1);
    assert_int_equal(size_ok("500k", 1), 500u * 1024);
    assert_int_equal(size_ok("500K", 1), 500u * 1024);
    assert_int_equal(size_ok("10M", 1), 10u << 20);
    assert_int_equal(size_ok("10MiB", 1), 10u << 20);
    assert_int_equal(size_ok("10MB/s", 1), 10u << 20);
    assert_int_equal(size_ok("10m", 1), 10u << 20);
    assert_int_equal(size_ok("1G", 0), 1ull << 30);
    assert_int_equal(size_ok("2T", 0), 2ull << 40);
    assert_int_equal(size_ok("1.5M", 0), 3u << 19);
    assert_int_equal(size_ok("0.5k", 0), 512);
    assert_int_equal(size_ok("100B", 0), 100);
    assert_int_equal(size_ok("18446744073709551615", 0), UINT64_MAX);
    size_bad("", 0);
    size_bad("abc", 0);
    size_bad("-5", 0);
    size_bad("+5", 0);
    size_bad(" 5", 0);
    size_bad("5 ", 0);
    size_bad("10X", 1);
    size_bad("10MM", 1);
    size_bad("10M/s", 0); /* /s only for rates */
    size_bad("1e6", 0);
    size_bad("0x10", 0);
    size_bad("inf", 0);
    size_bad("nan", 0);
    size_bad(".", 0);
    size_bad("18446744073709551616", 0);
    size_bad("16777216T", 0); /* 2^64 */
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(ms_ok("30"), 30000);
    assert_int_equal(ms_ok("1.5"), 1500);
    assert_int_equal(ms_ok("0"), 0);
    assert_int_equal(ms_ok("30s"), 30000);
    assert_int_equal(ms_ok("5m"), 300000);
    assert_int_equal(ms_ok("500ms"), 500);
    assert_int_equal(ms_ok("1h30m"), 5400000);
    assert_int_equal(ms_ok("2m30"), 150000);
    assert_int_equal(ms_ok("1d"), 86400000);
    assert_int_equal(ms_ok("1w"), 604800000);
    assert_int_equal(ms_ok("0.25m"), 15000);
    ms_bad("");
    ms_bad("abc");
    ms_bad("-5");
    ms_bad("5x");
    ms_bad("5 s");
    ms_bad("1e3");
    ms_bad("inf");
    ms_bad("s");
    ms_bad("1h30mm");
    ms_bad("99999999999999999999");
    ms_bad("1000000w"); /* past 100 years */
}

static void test_uints_and_modes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(numarg_uint("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(numarg_uint("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(numarg_uint("11", 0, 10, &v), -1);
    assert_int_equal(numarg_uint("0", 1, 10, &v), -1);
    assert_int_equal(numarg_uint("abc", 0, 10, &v), -1);
    assert_int_equal(numarg_uint("-1", 0, 10, &v), -1);
    assert_int_equal(numarg_uint("", 0, 10, &v), -1);
    assert_int_equal(numarg_uint("3x", 0, 10, &v), -1);
    assert_int_equal(numarg_uint("99999999999999999999", 0, UINT64_MAX, &v), -1);
    uint32_t m;
    assert_int_equal(numarg_mode("644", &m), 0);
    assert_int_equal(m, 0644);
    assert_int_equal(numarg_mode("0600", &m), 0);
    assert_int_equal(m, 0600);
    assert_int_equal(numarg_mode("7777", &m), 0);
    assert_int_equal(m, 07777);
    assert_int_equal(numarg_mode("0", &m), 0);
    assert_int_equal(numarg_mode("rwx", &m), -1);
    assert_int_equal(numarg_mode("0800", &m), -1);
    assert_int_equal(numarg_mode("17777", &m), -1);
    assert_int_equal(numarg_mode("", &m), -1);
    assert_int_equal(numarg_mode("-644", &m), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_uints_and_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
