/* The public pattern matching calls (include/shoal/match.h). Only public
 * headers here. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "shoal/match.h"

static void test_pattern(void **st)
{
    (void)st;
    assert_int_equal(shoal_match_pattern("*", "", 0), 1);
    assert_int_equal(shoal_match_pattern("", "", 0), 1);
    assert_int_equal(shoal_match_pattern("", "a", 0), 0);
    assert_int_equal(shoal_match_pattern("a?c", "abc", 0), 1);
    assert_int_equal(shoal_match_pattern("a?c", "ac", 0), 0);
    assert_int_equal(shoal_match_pattern("*.example.com", "www.example.com", 0), 1);
    assert_int_equal(shoal_match_pattern("*.example.com", "example.com", 0), 0);
    assert_int_equal(shoal_match_pattern("*.EXAMPLE.com", "WWW.example.COM", 0), 0);
    assert_int_equal(shoal_match_pattern("*.EXAMPLE.com", "WWW.example.COM", SHOAL_MATCH_FOLD), 1);
    assert_int_equal(shoal_match_pattern("a*b*c*d", "aXbYcZd", 0), 1);
    /* '!' and ',' are ordinary bytes in a single pattern */
    assert_int_equal(shoal_match_pattern("!a", "!a", 0), 1);
    assert_int_equal(shoal_match_pattern("a,b", "a", 0), 0);
    assert_int_equal(shoal_match_pattern(NULL, "a", 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_match_pattern("a", NULL, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_match_pattern("a", "a", 4), SHOAL_ERR_INVALID_ARG);
}

/* A pattern that would explode a backtracking matcher finishes at once. */
static void test_pattern_hostile(void **st)
{
    (void)st;
    char pat[4001], s[4001];
    for (int i = 0; i < 4000; i++) {
        pat[i] = (i % 2) ? 'a' : '*';
        s[i] = 'a';
    }
    pat[4000] = 0;
    s[3999] = 'b';
    s[4000] = 0;
    assert_int_equal(shoal_match_pattern(pat, s, 0), 0);
}

static void test_list(void **st)
{
    (void)st;
    assert_int_equal(shoal_match_list("a*,b*", "bee", 0), 1);
    assert_int_equal(shoal_match_list("a*,b*", "cee", 0), 0);
    assert_int_equal(shoal_match_list("!bad*,b*", "badger", 0), -1);
    assert_int_equal(shoal_match_list("b*,!bad*", "badger", 0), -1);
    assert_int_equal(shoal_match_list("b*,!bad*", "bee", 0), 1);
    assert_int_equal(shoal_match_list("!x", "y", 0), 0); /* only negations: never a match */
    assert_int_equal(shoal_match_list("LANG,LC_*", "LC_ALL", 0), 1);
    assert_int_equal(shoal_match_list("LANG,LC_*", "lc_all", 0), 0);
    assert_int_equal(shoal_match_list("", "", 0), 1);
    assert_int_equal(shoal_match_list("", "a", 0), 0);
    assert_int_equal(shoal_match_list(NULL, "a", 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_match_list("a", NULL, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_match_list("a", "a", 2), SHOAL_ERR_INVALID_ARG);
}

static void test_host(void **st)
{
    (void)st;
    assert_int_equal(shoal_match_host("*.Example.COM,!gw.example.com", "WWW.example.com"), 1);
    assert_int_equal(shoal_match_host("*.Example.COM,!gw.example.com", "GW.example.com"), -1);
    assert_int_equal(shoal_match_host("10.0.0.?", "10.0.0.7"), 1);
    assert_int_equal(shoal_match_host("web-??", "web-100"), 0);
    assert_int_equal(shoal_match_host(NULL, "a"), SHOAL_ERR_INVALID_ARG);
}

static void test_addr_list(void **st)
{
    (void)st;
    assert_int_equal(shoal_match_addr_list("192.0.2.7", "192.0.2.0/24"), 1);
    assert_int_equal(shoal_match_addr_list("192.0.3.7", "192.0.2.0/24"), 0);
    assert_int_equal(shoal_match_addr_list("192.0.2.7", "192.0.2.0/24,!192.0.2.7"), -1);
    assert_int_equal(shoal_match_addr_list("::ffff:192.0.2.7", "192.0.2.0/24"), 1);
    assert_int_equal(shoal_match_addr_list("2001:db8::1", "2001:db8::/32"), 1);
    assert_int_equal(shoal_match_addr_list("10.1.2.3", "10.1.*"), 1);
    assert_int_equal(shoal_match_addr_list("host.example", "10.1.*"), 0);
    assert_int_equal(shoal_match_addr_list("10.0.0.1", "10.0.0.1/8"), SHOAL_ERR_CONFIG);
    assert_int_equal(shoal_match_addr_list("10.0.0.1", "10.0.0.0/33"), SHOAL_ERR_CONFIG);
    assert_int_equal(shoal_match_addr_list(NULL, "10.0.0.0/8"), 0);
    assert_int_equal(shoal_match_addr_list(NULL, "a,,b"), SHOAL_ERR_CONFIG);
    assert_int_equal(shoal_match_addr_list("10.0.0.1", NULL), SHOAL_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern), cmocka_unit_test(test_pattern_hostile), cmocka_unit_test(test_list),
        cmocka_unit_test(test_host),    cmocka_unit_test(test_addr_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
