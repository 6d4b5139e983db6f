/* Token buckets of the upload caps (src/fleet/ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/fleet/ratelimit.c"

static void test_unlimited(void **state)
{
    (void)state;
    fleet_bucket b;
    fleet_bucket_init(&b, 0, 0, 0);
    uint64_t wait = 99;
    assert_int_equal(fleet_bucket_take(&b, 1u << 30, 5, &wait), 1u << 30);
    assert_int_equal(wait, 0);
    assert_int_equal(fleet_bucket_take(NULL, 7, 5, &wait), 7);
}

static void test_rate_over_time(void **state)
{
    (void)state;
    /* 1 MB/s: a burst of 100 KB, then 1,000 bytes per millisecond. */
    fleet_bucket b;
    fleet_bucket_init(&b, 1000000, 0, 0);
    uint64_t wait = 0, total = 0;
    total += fleet_bucket_take(&b, 1u << 20, 0, &wait);
    assert_int_equal(total, 100000);
    assert_int_equal(fleet_bucket_take(&b, 10, 0, &wait), 0);
    assert_true(wait >= 1 && wait <= 2);
    /* Over one simulated second, never more than rate + burst. */
    for (uint64_t ms = 1; ms <= 1000; ms++)
        total += fleet_bucket_take(&b, 1u << 20, ms, &wait);
    assert_true(total <= 1100000);
    assert_true(total >= 1090000);
}

static void test_tiny_rate(void **state)
{
    (void)state;
    /* 10 bytes/s: bytes trickle out, the wait says when the next one is due. */
    fleet_bucket b;
    fleet_bucket_init(&b, 10, 0, 0);
    uint64_t wait = 0;
    assert_int_equal(fleet_bucket_take(&b, 1000, 0, &wait), 10);
    assert_int_equal(fleet_bucket_take(&b, 1000, 0, &wait), 0);
    assert_true(wait >= 100 && wait <= 101);
    assert_int_equal(fleet_bucket_take(&b, 1000, 100, &wait), 1);
    assert_int_equal(fleet_bucket_take(&b, 1000, 5100, &wait), 10); /* capped at the burst */
}

static void test_refund_shared(void **state)
{
    (void)state;
    fleet_bucket b;
    fleet_bucket_init(&b, 100000, 1, 0);
    uint64_t wait = 0;
    size_t got = fleet_bucket_take(&b, 1u << 20, 0, &wait);
    assert_int_equal(got, 16384);
    fleet_bucket_refund(&b, 4000);
    assert_int_equal(fleet_bucket_take(&b, 1u << 20, 0, &wait), 4000);
    fleet_bucket_refund(&b, 1u << 20); /* never above the burst */
    assert_int_equal(fleet_bucket_take(&b, 1u << 20, 0, &wait), 16384);
    fleet_bucket_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_rate_over_time),
        cmocka_unit_test(test_tiny_rate),
        cmocka_unit_test(test_refund_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
