/* Per-source limits of the server driver (src/uv/srclimit.c): source
 * blocks (PerSourceNetBlockSize), unauthenticated connections per block
 * (PerSourceMaxStartups) and PerSourcePenalties with sshd's meaning:
 * accrual, the min threshold, the max cap, running down, the two overflow
 * modes, the exempt list; time is passed in, so nothing here waits. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "shoal/error.h"
#include "uv/srclimit.h"

#define S 1000ull /* ms per second */

static shoal_srclimit_config base(void)
{
    shoal_srclimit_config c;
    memset(&c, 0, sizeof(c));
    c.bits4 = 32;
    c.bits6 = 128;
    c.penalties = 1;
    c.authfail_s = 5;
    c.noauth_s = 1;
    c.grace_s = 10;
    c.min_s = 15;
    c.max_s = 600;
    return c;
}

static shoal_srclimit *mk(const shoal_srclimit_config *c)
{
    shoal_srclimit *sl = NULL;
    assert_int_equal(shoal__srclimit_new(c, 12345, &sl), SHOAL_OK);
    return sl;
}

static shoal_srckey key4(const shoal_srclimit *sl, const char *a)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &sin.sin_addr), 1);
    shoal_srckey k;
    assert_int_equal(shoal__srclimit_key(sl, (struct sockaddr *)&sin, &k), 0);
    return k;
}

static shoal_srckey key6(const shoal_srclimit *sl, const char *a)
{
    struct sockaddr_in6 sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &sin.sin6_addr), 1);
    shoal_srckey k;
    assert_int_equal(shoal__srclimit_key(sl, (struct sockaddr *)&sin, &k), 0);
    return k;
}

static void test_blocks(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.bits4 = 24;
    c.bits6 = 64;
    shoal_srclimit *sl = mk(&c);
    char buf[80];
    shoal_srckey a = key4(sl, "192.0.2.77"), b = key4(sl, "192.0.2.1"), o = key4(sl, "192.0.3.1");
    shoal__srclimit_key_str(&a, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.0/24");
    shoal_srckey m = key6(sl, "::ffff:192.0.2.9"); /* IPv4-mapped: an IPv4 source */
    shoal__srclimit_key_str(&m, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.0/24");
    shoal_srckey v6 = key6(sl, "2001:db8:1:2:3:4:5:6");
    shoal__srclimit_key_str(&v6, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8:1:2::/64");
    /* Same block, same count. */
    c.max_startups = 2;
    shoal__srclimit_free(sl);
    sl = mk(&c);
    a = key4(sl, "192.0.2.77");
    b = key4(sl, "192.0.2.1");
    o = key4(sl, "192.0.3.1");
    assert_int_equal(shoal__srclimit_startup_begin(sl, &a), 0);
    assert_int_equal(shoal__srclimit_startup_begin(sl, &b), 0);
    assert_int_equal(shoal__srclimit_startups(sl, &a), 2);
    assert_false(shoal__srclimit_startup_ok(sl, &b));
    assert_true(shoal__srclimit_startup_ok(sl, &o));
    shoal__srclimit_startup_end(sl, &a);
    assert_true(shoal__srclimit_startup_ok(sl, &b));
    shoal__srclimit_startup_end(sl, &b);
    assert_int_equal(shoal__srclimit_startups(sl, &b), 0);
    shoal__srclimit_free(sl);
}

static void test_startups_many_sources(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.max_startups = 3;
    shoal_srclimit *sl = mk(&c);
    /* Enough sources to grow and rehash the index several times, then all gone. */
    for (unsigned i = 0; i < 5000; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
        shoal_srckey k = key4(sl, a);
        for (int j = 0; j < 3; j++)
            assert_int_equal(shoal__srclimit_startup_begin(sl, &k), 0);
        assert_false(shoal__srclimit_startup_ok(sl, &k));
    }
    for (unsigned i = 0; i < 5000; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
        shoal_srckey k = key4(sl, a);
        assert_int_equal(shoal__srclimit_startups(sl, &k), 3);
        for (int j = 0; j < 3; j++)
            shoal__srclimit_startup_end(sl, &k);
        assert_int_equal(shoal__srclimit_startups(sl, &k), 0);
    }
    /* Without a limit nothing is counted and everything may start. */
    shoal__srclimit_free(sl);
    c.max_startups = 0;
    sl = mk(&c);
    shoal_srckey k = key4(sl, "10.0.0.1");
    for (int j = 0; j < 100; j++)
        assert_int_equal(shoal__srclimit_startup_begin(sl, &k), 0);
    assert_true(shoal__srclimit_startup_ok(sl, &k));
    shoal__srclimit_free(sl);
}

static void test_penalty_accrues_to_min_then_refuses(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    shoal_srclimit *sl = mk(&c);
    shoal_srckey k = key4(sl, "127.0.0.2"), other = key4(sl, "127.0.0.1");
    const char *why = NULL;
    char msg[300];
    uint64_t t = 1000 * S;
    /* Two failed logins: 10 s accrued, below min (15 s): not refused. */
    assert_int_equal(shoal__srclimit_penalise(sl, &k, "127.0.0.2", SHOAL_PENALTY_AUTHFAIL, t, msg, sizeof(msg)), 2);
    assert_non_null(strstr(msg, "deferred"));
    assert_int_equal(shoal__srclimit_penalise(sl, &k, "127.0.0.2", SHOAL_PENALTY_AUTHFAIL, t, msg, sizeof(msg)), 2);
    assert_false(shoal__srclimit_refused(sl, &k, "127.0.0.2", t, &why));
    /* The third makes 15 s: active. */
    assert_int_equal(shoal__srclimit_penalise(sl, &k, "127.0.0.2", SHOAL_PENALTY_AUTHFAIL, t, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "127.0.0.2/32"));
    assert_non_null(strstr(msg, "penalty of 15 seconds for penalty: failed authentication"));
    assert_true(shoal__srclimit_refused(sl, &k, "127.0.0.2", t, &why));
    assert_string_equal(why, "penalty: failed authentication");
    assert_false(shoal__srclimit_refused(sl, &other, "127.0.0.1", t, &why));
    /* It runs down in real time and ends. */
    assert_true(shoal__srclimit_refused(sl, &k, "127.0.0.2", t + 14 * S, &why));
    assert_false(shoal__srclimit_refused(sl, &k, "127.0.0.2", t + 15 * S, &why));
    assert_int_equal(shoal__srclimit_tracked(sl, 4, t + 15 * S), 0);
    shoal__srclimit_free(sl);
}

static void test_penalty_decays_between_offences(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    shoal_srclimit *sl = mk(&c);
    shoal_srckey k = key4(sl, "198.51.100.1");
    const char *why;
    char msg[300];
    uint64_t t = 50 * S;
    /* One noauth per 2 s never adds up (1 s each, running down meanwhile). */
    for (int i = 0; i < 30; i++) {
        shoal__srclimit_penalise(sl, &k, "198.51.100.1", SHOAL_PENALTY_NOAUTH, t, msg, sizeof(msg));
        assert_false(shoal__srclimit_refused(sl, &k, "198.51.100.1", t, &why));
        t += 2 * S;
    }
    /* Fifteen at once do. */
    for (int i = 0; i < 15; i++)
        shoal__srclimit_penalise(sl, &k, "198.51.100.1", SHOAL_PENALTY_NOAUTH, t, msg, sizeof(msg));
    assert_true(shoal__srclimit_refused(sl, &k, "198.51.100.1", t, &why));
    assert_string_equal(why, "penalty: connections without attempting authentication");
    shoal__srclimit_free(sl);
}

static void test_penalty_capped_at_max(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.max_s = 60;
    shoal_srclimit *sl = mk(&c);
    shoal_srckey k = key4(sl, "203.0.113.5");
    const char *why;
    char msg[300];
    for (int i = 0; i < 1000; i++)
        shoal__srclimit_penalise(sl, &k, "203.0.113.5", SHOAL_PENALTY_GRACE, 0, msg, sizeof(msg));
    assert_true(shoal__srclimit_refused(sl, &k, "203.0.113.5", 59 * S, &why));
    assert_string_equal(why, "penalty: exceeded LoginGraceTime");
    assert_false(shoal__srclimit_refused(sl, &k, "203.0.113.5", 60 * S, &why));
    /* A single penalty above min is active at once, and still capped. */
    c.max_s = 20;
    c.grace_s = 90;
    shoal__srclimit_free(sl);
    sl = mk(&c);
    assert_int_equal(shoal__srclimit_penalise(sl, &k, "203.0.113.5", SHOAL_PENALTY_GRACE, 0, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "new 203.0.113.5/32 active penalty of 20 seconds"));
    assert_false(shoal__srclimit_refused(sl, &k, "203.0.113.5", 20 * S, &why));
    shoal__srclimit_free(sl);
}

static void test_zero_durations_and_disabled(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.noauth_s = 0;
    shoal_srclimit *sl = mk(&c);
    shoal_srckey k = key4(sl, "192.0.2.1");
    const char *why;
    char msg[300];
    for (int i = 0; i < 100; i++)
        assert_int_equal(shoal__srclimit_penalise(sl, &k, "192.0.2.1", SHOAL_PENALTY_NOAUTH, 0, msg, sizeof(msg)), 0);
    assert_false(shoal__srclimit_refused(sl, &k, "192.0.2.1", 0, &why));
    shoal__srclimit_free(sl);
    c = base();
    c.penalties = 0;
    sl = mk(&c);
    for (int i = 0; i < 100; i++)
        assert_int_equal(shoal__srclimit_penalise(sl, &k, "192.0.2.1", SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg)),
                         0);
    assert_false(shoal__srclimit_refused(sl, &k, "192.0.2.1", 0, &why));
    shoal__srclimit_free(sl);
}

static void test_exempt(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.exempt = "10.0.0.0/8,192.0.2.7";
    shoal_srclimit *sl = mk(&c);
    const char *why;
    char msg[300];
    static const char *const ex[] = {"10.1.2.3", "192.0.2.7"};
    for (size_t i = 0; i < 2; i++) {
        shoal_srckey k = key4(sl, ex[i]);
        for (int j = 0; j < 10; j++)
            assert_int_equal(shoal__srclimit_penalise(sl, &k, ex[i], SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg)), 0);
        assert_false(shoal__srclimit_refused(sl, &k, ex[i], 0, &why));
    }
    shoal_srckey k = key4(sl, "192.0.2.8");
    for (int j = 0; j < 3; j++)
        shoal__srclimit_penalise(sl, &k, "192.0.2.8", SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg));
    assert_true(shoal__srclimit_refused(sl, &k, "192.0.2.8", 0, &why));
    shoal__srclimit_free(sl);
}

/* permissive: a full table forgets the penalty closest to expiry. */
static void test_overflow_permissive(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.max_sources4 = 4;
    shoal_srclimit *sl = mk(&c);
    const char *why;
    char msg[300];
    char a[32];
    /* 10.0.0.1 gets the shortest penalty (15 s), the others 20..35 s. */
    for (unsigned i = 1; i <= 4; i++) {
        snprintf(a, sizeof(a), "10.0.0.%u", i);
        shoal_srckey k = key4(sl, a);
        for (unsigned j = 0; j < 2 + i; j++)
            shoal__srclimit_penalise(sl, &k, a, SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg));
        assert_true(shoal__srclimit_refused(sl, &k, a, 0, &why));
    }
    assert_int_equal(shoal__srclimit_tracked(sl, 4, 0), 4);
    shoal_srckey n = key4(sl, "10.0.0.9");
    shoal__srclimit_penalise(sl, &n, "10.0.0.9", SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg));
    assert_int_equal(shoal__srclimit_tracked(sl, 4, 0), 4);
    shoal_srckey first = key4(sl, "10.0.0.1"), last = key4(sl, "10.0.0.4");
    assert_false(shoal__srclimit_refused(sl, &first, "10.0.0.1", 0, &why)); /* forgotten */
    assert_true(shoal__srclimit_refused(sl, &last, "10.0.0.4", 0, &why));
    /* Nobody else is refused. */
    shoal_srckey x = key4(sl, "10.9.9.9");
    assert_false(shoal__srclimit_refused(sl, &x, "10.9.9.9", 0, &why));
    shoal__srclimit_free(sl);
}

/* deny-all: a full table refuses every non-exempt source of that family
 * until an entry expires; the other family is not affected. */
static void test_overflow_deny_all(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.max_sources4 = 2;
    c.deny_all4 = 1;
    c.exempt = "127.0.0.1";
    shoal_srclimit *sl = mk(&c);
    const char *why;
    char msg[300];
    shoal_srckey a = key4(sl, "10.0.0.1"), b = key4(sl, "10.0.0.2"), n = key4(sl, "10.0.0.3");
    shoal__srclimit_penalise(sl, &a, "10.0.0.1", SHOAL_PENALTY_NOAUTH, 0, msg, sizeof(msg));
    shoal__srclimit_penalise(sl, &b, "10.0.0.2", SHOAL_PENALTY_AUTHFAIL, 0, msg, sizeof(msg));
    shoal_srckey x = key4(sl, "10.9.9.9");
    assert_false(shoal__srclimit_refused(sl, &x, "10.9.9.9", 0, &why));
    assert_int_equal(shoal__srclimit_penalise(sl, &n, "10.0.0.3", SHOAL_PENALTY_NOAUTH, 0, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "table full"));
    assert_true(shoal__srclimit_refused(sl, &x, "10.9.9.9", 0, &why));
    assert_string_equal(why, "penalty table full");
    shoal_srckey lo = key4(sl, "127.0.0.1");
    assert_false(shoal__srclimit_refused(sl, &lo, "127.0.0.1", 0, &why)); /* exempt */
    shoal_srckey v6 = key6(sl, "2001:db8::1");
    assert_false(shoal__srclimit_refused(sl, &v6, "2001:db8::1", 0, &why));
    /* 10.0.0.1's second runs out: room again, refusals end. */
    assert_false(shoal__srclimit_refused(sl, &x, "10.9.9.9", 1 * S, &why));
    shoal__srclimit_free(sl);
}

/* Many sources coming and going through the heap and the index. */
static void test_churn(void **st)
{
    (void)st;
    shoal_srclimit_config c = base();
    c.max_sources6 = 1000;
    shoal_srclimit *sl = mk(&c);
    char msg[300], a[64];
    const char *why;
    uint64_t t = 0;
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(a, sizeof(a), "2001:db8::%x:%x", i >> 8, i & 255);
        shoal_srckey k = key6(sl, a);
        shoal__srclimit_penalise(sl, &k, a, (int)(i % 3) + 1, t, msg, sizeof(msg));
        assert_true(shoal__srclimit_tracked(sl, 6, t) <= 1000);
        t += 7;
    }
    /* Everything runs out eventually. */
    assert_int_equal(shoal__srclimit_tracked(sl, 6, t + 700 * S), 0);
    shoal_srckey k = key6(sl, "2001:db8::1");
    assert_false(shoal__srclimit_refused(sl, &k, "2001:db8::1", t + 700 * S, &why));
    shoal__srclimit_free(sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_startups_many_sources),
        cmocka_unit_test(test_penalty_accrues_to_min_then_refuses),
        cmocka_unit_test(test_penalty_decays_between_offences),
        cmocka_unit_test(test_penalty_capped_at_max),
        cmocka_unit_test(test_zero_durations_and_disabled),
        cmocka_unit_test(test_exempt),
        cmocka_unit_test(test_overflow_permissive),
        cmocka_unit_test(test_overflow_deny_all),
        cmocka_unit_test(test_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
