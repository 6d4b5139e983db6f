/* The "-o Keyword=value" parser (src/config/ssh_options.c): times and sizes
 * as ssh_config(5) writes them, and the values it must refuse rather than
 * misread (signs, blanks inside a number, numbers that wrap around 2^64).
 * The regressions here were found by fuzz/fuzz_ssh_options.c. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "shoal/config.h"

/* Applies one option to fresh options; returns the result, *o holds them. */
static int apply1(shoal_ssh_options *o, const char *text)
{
    char err[256] = "";
    shoal_ssh_options_init(o);
    int rc = shoal_ssh_options_apply(o, text, err, sizeof(err));
    if (rc && !err[0])
        fail_msg("%s: refused without a message", text);
    return rc;
}

static void expect_time(const char *text, int64_t connect_timeout)
{
    shoal_ssh_options o;
    int rc = apply1(&o, text);
    if (connect_timeout < 0) {
        if (rc == 0)
            fail_msg("\"%s\" accepted as %lld s", text, (long long)o.connect_timeout_s);
    } else {
        if (rc != 0 || o.connect_timeout_s != connect_timeout)
            fail_msg("\"%s\": rc %d, %lld s (expected %lld)", text, rc, (long long)o.connect_timeout_s,
                     (long long)connect_timeout);
    }
    shoal_ssh_options_free(&o);
}

static void test_times(void **st)
{
    (void)st;
    expect_time("ConnectTimeout 30", 30);
    expect_time("ConnectTimeout=30s", 30);
    expect_time("ConnectTimeout 5m", 300);
    expect_time("ConnectTimeout 1h30m", 5400);
    expect_time("ConnectTimeout 1H30M10", 5410);
    expect_time("ConnectTimeout 1d", 86400);
    expect_time("ConnectTimeout 0", 0);
    expect_time("ConnectTimeout 1d1s", -1); /* above the 1-day cap */
    expect_time("ConnectTimeout 2x", -1);
    expect_time("ConnectTimeout m", -1);
    /* strtoull took these: a sign, blanks between parts, and wrap-around
     * (5m + (2^64 - 1) = 299 s; 307445734561825861 min = 44 s mod 2^64). */
    expect_time("ConnectTimeout 5m-1", -1);
    expect_time("ConnectTimeout -1", -1);
    expect_time("ConnectTimeout +30", -1);
    expect_time("ServerAliveInterval=130s 3", -1);
    expect_time("ConnectTimeout 307445734561825861m", -1);
    expect_time("ConnectTimeout 18446744073709551617", -1);
    expect_time("ConnectTimeout 18446744073709551615s1s", -1);

    shoal_ssh_options o;
    assert_int_equal(apply1(&o, "ServerAliveInterval 15s"), 0);
    assert_int_equal(o.server_alive_interval_s, 15);
    shoal_ssh_options_free(&o);
    assert_int_not_equal(apply1(&o, "ServerAliveInterval 1m 3"), 0);
    shoal_ssh_options_free(&o);
}

static void test_rekey_limit(void **st)
{
    (void)st;
    shoal_ssh_options o;
    assert_int_equal(apply1(&o, "RekeyLimit 1G 1h"), 0);
    assert_true(o.rekey_bytes == 1ull << 30);
    assert_true(o.rekey_seconds == 3600);
    shoal_ssh_options_free(&o);
    assert_int_equal(apply1(&o, "RekeyLimit 64K"), 0);
    assert_true(o.rekey_bytes == 65536);
    assert_true(o.rekey_seconds == 0);
    shoal_ssh_options_free(&o);
    assert_int_equal(apply1(&o, "RekeyLimit default none"), 0);
    assert_true(o.rekey_bytes == 0 && o.rekey_seconds == 0);
    shoal_ssh_options_free(&o);
    assert_int_equal(apply1(&o, "RekeyLimit default 2147483647"), 0);
    assert_true(o.rekey_seconds == 2147483647);
    shoal_ssh_options_free(&o);

    static const char *const bad[] = {
        "RekeyLimit 15",            /* below 16 bytes */
        "RekeyLimit 0",
        "RekeyLimit 1T",
        "RekeyLimit -5",            /* was 2^64 - 5 bytes */
        "RekeyLimit +1G",
        "RekeyLimit 17179869184G",  /* 2^64 bytes */
        "RekeyLimit 1G 0",
        "RekeyLimit 1G 5m-1",
        /* 2^64/1000 s and more: was accepted, and * 1000 wrapped to a few
         * milliseconds, a rekey storm; OpenSSH's bound is INT_MAX s. */
        "RekeyLimit default 18446744073709552s",
        "RekeyLimit default 2147483648",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (apply1(&o, bad[i]) == 0)
            fail_msg("\"%s\" accepted: %llu bytes, %llu s", bad[i], (unsigned long long)o.rekey_bytes,
                     (unsigned long long)o.rekey_seconds);
        shoal_ssh_options_free(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_rekey_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
