/* Fan-out helpers of `shoal run`: node set expansion and folding
 * (ClusterShell syntax), host lists from -H and -h, and clubak-style grouped
 * output. The module's sources are compiled into this test directly. */
#include "../../apps/shoal/fanout/nodeset.c"
#include "../../apps/shoal/fanout/hostlist.c"
#include "../../apps/shoal/fanout/groupout.c"

#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ---- */

/* Expands and joins with spaces; returns malloc'd string (test fails on error). */
static char *expand_join(const char *pattern)
{
    char **names = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = nodeset_expand_ex(pattern, &names, &n, 1000000, err, sizeof err);
    if (rc != 0)
        fail_msg("expand \"%s\": %d %s", pattern, rc, err);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *s = malloc(len);
    assert_non_null(s);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, names[i]);
    }
    nodeset_free_names(names, n);
    return s;
}

static void check_expand(const char *pattern, const char *want)
{
    char *got = expand_join(pattern);
    if (strcmp(got, want) != 0)
        fail_msg("expand \"%s\":\n got  \"%s\"\n want \"%s\"", pattern, got, want);
    free(got);
}

static void check_expand_err(const char *pattern, size_t max_n, int want_rc, const char *want_msg)
{
    char **names = (char **)1;
    size_t n = 99;
    char err[256] = "";
    int rc = nodeset_expand_ex(pattern, &names, &n, max_n, err, sizeof err);
    if (rc != want_rc)
        fail_msg("expand \"%s\": rc %d, want %d (%s)", pattern, rc, want_rc, err);
    assert_null(names);
    assert_int_equal(n, 0);
    assert_true(err[0] != '\0');
    if (want_msg && !strstr(err, want_msg))
        fail_msg("expand \"%s\": message \"%s\" lacks \"%s\"", pattern, err, want_msg);
    /* The plain form fails the same way. */
    assert_int_equal(nodeset_expand(pattern, &names, &n, max_n), want_rc);
    assert_null(names);
}

static void check_fold(const char *const *names, size_t n, const char *want)
{
    char *got = nodeset_fold(names, n);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("fold: got \"%s\", want \"%s\"", got, want);
    free(got);
}

/* Folds the names of a pattern and compares. */
static void check_fold_pattern(const char *pattern, const char *want)
{
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(nodeset_expand(pattern, &names, &n, 1000000), 0);
    check_fold((const char *const *)names, n, want);
    nodeset_free_names(names, n);
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void shuffle(char **v, size_t n, uint64_t *seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(seed) % i);
        char *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a memstream's text into a comparison. */
static char *print_groups(groupout *g, int color)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    groupout_print(g, f, color);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

/* ---- expansion ---- */

static void test_expand_basic(void **state)
{
    (void)state;
    check_expand("web1", "web1");
    check_expand("web[01-03,07]", "web01 web02 web03 web07");
    check_expand("web[1-3]", "web1 web2 web3");
    check_expand("n[8-11]", "n8 n9 n10 n11");
    check_expand("n[08-11]", "n08 n09 n10 n11");
    check_expand("n[098-101]", "n098 n099 n100 n101");
    check_expand("n[001-3]", "n001 n002 n003");
    check_expand("n[0-2]", "n0 n1 n2");
    check_expand("n[5]", "n5");
    check_expand("n[1-9/4]", "n1 n5 n9");
    check_expand("n[00-10/5]", "n00 n05 n10");
    check_expand("[1-3]", "1 2 3");
    check_expand("rack[1-2]-node[01-02].example.com",
                 "rack1-node01.example.com rack1-node02.example.com "
                 "rack2-node01.example.com rack2-node02.example.com");
    check_expand("db[1-2]-a", "db1-a db2-a");
    /* Duplicates are kept (the host list removes them). */
    check_expand("n[1-2,2]", "n1 n2 n2");
}

static void test_expand_product(void **state)
{
    (void)state;
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(nodeset_expand("127.0.[0-1].[1-100]", &names, &n, 1000000), 0);
    assert_int_equal(n, 200);
    assert_string_equal(names[0], "127.0.0.1");
    assert_string_equal(names[99], "127.0.0.100");
    assert_string_equal(names[100], "127.0.1.1");
    assert_string_equal(names[199], "127.0.1.100");
    nodeset_free_names(names, n);
    check_expand("r[1-2]c[1-2]", "r1c1 r1c2 r2c1 r2c2");
    check_expand("a[1-2]b[1]c[7,9]", "a1b1c7 a1b1c9 a2b1c7 a2b1c9");
}

static void test_expand_lists(void **state)
{
    (void)state;
    check_expand("a,b[1-2]", "a b1 b2");
    check_expand("a, b[1-2] ,\tc", "a b1 b2 c");
    check_expand("x[1,3],y[2-3],x1", "x1 x3 y2 y3 x1");
}

static void test_expand_user_port(void **state)
{
    (void)state;
    check_expand("root@web[1-3]:2222", "root@web1:2222 root@web2:2222 root@web3:2222");
    check_expand("u@h[1-2]:[22-23]", "u@h1:22 u@h1:23 u@h2:22 u@h2:23");
    check_expand("admin@10.0.0.[1-2]", "admin@10.0.0.1 admin@10.0.0.2");
}

static void test_expand_v6_literal(void **state)
{
    (void)state;
    check_expand("[::1]:2222", "[::1]:2222");
    check_expand("[::1]", "[::1]");
    check_expand("root@[2001:db8::1]:22", "root@[2001:db8::1]:22");
    check_expand("[10.0.0.1]:22", "[10.0.0.1]:22");
    check_expand("[::1]:2222,[fe80::1%eth0]:22,web[1-2]", "[::1]:2222 [fe80::1%eth0]:22 web1 web2");
    check_expand("[::1]:[2222-2223]", "[::1]:2222 [::1]:2223");
    check_expand("web[a-c]", "web[a-c]"); /* not a range: literal */
}

static void test_expand_errors(void **state)
{
    (void)state;
    check_expand_err("", 100, NODESET_ESYNTAX, "empty");
    check_expand_err("a,,b", 100, NODESET_ESYNTAX, "empty");
    check_expand_err("a,", 100, NODESET_ESYNTAX, "empty");
    check_expand_err(" ", 100, NODESET_ESYNTAX, "empty");
    check_expand_err("web[1-", 100, NODESET_ESYNTAX, "unbalanced '['");
    check_expand_err("web[1-2],x[", 100, NODESET_ESYNTAX, "\"x[\"");
    check_expand_err("a[1,2", 100, NODESET_ESYNTAX, "unbalanced '['");
}

static void test_expand_errors2(void **state)
{
    (void)state;
    check_expand_err("web1]", 100, NODESET_ESYNTAX, "unbalanced ']'");
    check_expand_err("web[]", 100, NODESET_ESYNTAX, "empty brackets");
    check_expand_err("web[1[2]]", 100, NODESET_ESYNTAX, "nested");
    check_expand_err("web[3-1]", 100, NODESET_ERANGE, "reversed range \"3-1\"");
    check_expand_err("web[10-09]", 100, NODESET_ERANGE, "reversed");
    check_expand_err("web[1-2-3]", 100, NODESET_ESYNTAX, "bad range");
    check_expand_err("web[-1]", 100, NODESET_ESYNTAX, "bad range");
    check_expand_err("web[1-]", 100, NODESET_ESYNTAX, "bad range");
    check_expand_err("web[1,]", 100, NODESET_ESYNTAX, "empty range element");
    check_expand_err("web[,1]", 100, NODESET_ESYNTAX, "empty range element");
    check_expand_err("web[5/2]", 100, NODESET_ESYNTAX, "bad range");
    check_expand_err("web[1-4/0]", 100, NODESET_ERANGE, "zero range step");
    check_expand_err("web[1-4/]", 100, NODESET_ESYNTAX, "step");
    check_expand_err("w[1-010]", 100, NODESET_ERANGE, "padding");
    check_expand_err("w[1234567890123456789]", 100, NODESET_ERANGE, "too long");
    check_expand_err("web 1", 100, NODESET_ESYNTAX, "blank");
    check_expand_err("web[a b]", 100, NODESET_ESYNTAX, "blank");
    check_expand_err("web\n1", 100, NODESET_ESYNTAX, "control");
    check_expand_err("ok,bad[2-1]", 100, NODESET_ERANGE, "bad[2-1]");
    assert_string_equal(nodeset_strerror(NODESET_ERANGE), "bad range in node set");
    assert_string_equal(nodeset_strerror(NODESET_ETOOMANY), "node set expands to too many names");
    assert_string_equal(nodeset_strerror(NODESET_ENOMEM), "out of memory");
    assert_string_equal(nodeset_strerror(NODESET_ESYNTAX), "bad node set syntax");
    char **names = (char **)1;
    size_t n = 5;
    assert_int_equal(nodeset_expand(NULL, &names, &n, 10), NODESET_ESYNTAX);
    assert_null(names);
    assert_int_equal(n, 0);
}

static void test_expand_max(void **state)
{
    (void)state;
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(nodeset_expand("n[1-10]", &names, &n, 10), 0);
    assert_int_equal(n, 10);
    nodeset_free_names(names, n);
    check_expand_err("n[1-10]", 9, NODESET_ETOOMANY, "more than 9");
    check_expand_err("a[1-5],b[1-5]", 9, NODESET_ETOOMANY, NULL);
    check_expand_err("a[1-5],b", 5, NODESET_ETOOMANY, NULL);
    check_expand_err("x", 0, NODESET_ETOOMANY, NULL);
    /* Refused before anything is generated: these must be instant. */
    double t0 = now_sec();
    check_expand_err("a[1-1000][1-1000][1-1000]", 1000000, NODESET_ETOOMANY, NULL);
    check_expand_err("n[1-999999999999999999]", 1000000, NODESET_ETOOMANY, NULL);
    check_expand_err("n[1-999999,1-999999]", 1000000, NODESET_ETOOMANY, NULL);
    check_expand_err("[0-999999999][0-999999999][0-999999999]", SIZE_MAX, NODESET_ETOOMANY, NULL);
    assert_true(now_sec() - t0 < 1.0);
    /* The exact limit works. */
    assert_int_equal(nodeset_expand("a[1-1000][1-1000]", &names, &n, 1000000), 0);
    assert_int_equal(n, 1000000);
    assert_string_equal(names[999999], "a1000" "1000");
    nodeset_free_names(names, n);
}

/* ---- natural order and folding ---- */

static void test_natcmp(void **state)
{
    (void)state;
    assert_true(nodeset_natcmp("web2", "web10") < 0);
    assert_true(nodeset_natcmp("web10", "web2") > 0);
    assert_true(nodeset_natcmp("web1", "web01") < 0);
    assert_true(nodeset_natcmp("web01", "web2") < 0);
    assert_true(nodeset_natcmp("a", "a1") < 0);
    assert_true(nodeset_natcmp("a1b", "a1") > 0);
    assert_true(nodeset_natcmp("10.0.0.9", "10.0.0.10") < 0);
    assert_true(nodeset_natcmp("db9", "web1") < 0);
    assert_int_equal(nodeset_natcmp("web007", "web007"), 0);
    assert_true(nodeset_natcmp("x000", "x0") > 0);
}

static void test_fold_one_field(void **state)
{
    (void)state;
    check_fold_pattern("web[01-40]", "web[01-40]");
    check_fold_pattern("127.0.0.[1-200]", "127.0.0.[1-200]");
    check_fold_pattern("web[07,01-03,10-12]", "web[01-03,07,10-12]");
    check_fold_pattern("n[1-9,10-11]", "n[1-11]");
    check_fold_pattern("n[098-101]", "n[098-101]");
    check_fold_pattern("root@web[1-3]:2222", "root@web[1-3]:2222");
    check_fold_pattern("web1:[22-23]", "web1:[22-23]");
    check_fold_pattern("web1", "web1");

    /* Shuffled input, duplicates. */
    const char *v[] = {"web12", "web03", "web07", "web01", "web11", "web02", "web10", "web03"};
    check_fold(v, sizeof v / sizeof v[0], "web[01-03,07,10-12]");
    /* Padded and unpadded numbers never merge. */
    const char *p[] = {"web1", "web01", "web2"};
    check_fold(p, 3, "web[1-2,01]");
    const char *q[] = {"web9", "web10", "web09"};
    check_fold(q, 3, "web[9,09-10]");
    const char *r[] = {"n0", "n00", "n1"};
    check_fold(r, 3, "n[0-1,00]");
    /* Empty set. */
    check_fold(NULL, 0, "");
}

static void test_fold_mixed(void **state)
{
    (void)state;
    /* Unfoldable names listed as they are, natural order of first names. */
    const char *a[] = {"web2", "[::1]:2222", "db1", "web1", "alpha", "web2"};
    check_fold(a, 6, "[::1]:2222,alpha,db1,web[1-2]");
    const char *b[] = {"web1:22", "web2:23"};
    check_fold(b, 2, "web1:22,web2:23");
    const char *c[] = {"db10", "web1", "db9", "web3", "db11"};
    check_fold(c, 5, "db[9-11],web[1,3]");
    const char *d[] = {"a.example.com", "b.example.com"};
    check_fold(d, 2, "a.example.com,b.example.com");
    /* 19+ digit runs are text, not numbers. */
    const char *e[] = {"n1234567890123456789", "n1234567890123456780"};
    check_fold(e, 2, "n1234567890123456780,n1234567890123456789");
}

static void test_fold_two_fields(void **state)
{
    (void)state;
    check_fold_pattern("127.0.[0-1].[1-100]", "127.0.[0-1].[1-100]");
    check_fold_pattern("r[1-4]c[01-16]", "r[1-4]c[01-16]");
    check_fold_pattern("u@r[1-2]n[1-3]:[22,2222]", "u@r[1-2]n[1-3]:[22,2222]");
    /* Not rectangular: folds on the last field, then groups what it can. */
    const char *a[] = {"a1b1", "a1b2", "a2b1"};
    check_fold(a, 3, "a1b[1-2],a2b1");
    const char *b[] = {"a1b1", "a1b2", "a2b1", "a2b2", "a3b5"};
    check_fold(b, 5, "a[1-2]b[1-2],a3b5");
    const char *c[] = {"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2", "10.0.2.1"};
    check_fold(c, 5, "10.0.[0-1].[1-2],10.0.2.1");
}

/* Random sets of names: fold, expand back, same set. */
static void test_fold_roundtrip(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + (size_t)(rng_next(&seed) % 60);
        char **names = calloc(n, sizeof *names);
        assert_non_null(names);
        for (size_t i = 0; i < n; i++) {
            unsigned t = (unsigned)(rng_next(&seed) % 6);
            unsigned x = (unsigned)(rng_next(&seed) % 120), y = (unsigned)(rng_next(&seed) % 12);
            char buf[64];
            switch (t) {
            case 0: snprintf(buf, sizeof buf, "web%u", x); break;
            case 1: snprintf(buf, sizeof buf, "web%02u", x); break;
            case 2: snprintf(buf, sizeof buf, "r%uc%u", x, y); break;
            case 3: snprintf(buf, sizeof buf, "10.0.%u.%u", x, y); break;
            case 4: snprintf(buf, sizeof buf, "u@h%u:%u", y, x); break;
            default: snprintf(buf, sizeof buf, "x%03u-y%u", x, y); break;
            }
            names[i] = strdup(buf);
            assert_non_null(names[i]);
        }
        char *folded = nodeset_fold((const char *const *)names, n);
        assert_non_null(folded);
        char **back = NULL;
        size_t nb = 0;
        char err[256] = "";
        if (nodeset_expand_ex(folded, &back, &nb, 1000000, err, sizeof err) != 0)
            fail_msg("round %d: \"%s\": %s", round, folded, err);
        /* Unique sorted input == sorted expansion (which has no duplicates). */
        qsort(names, n, sizeof *names, cmp_str);
        size_t nu = 0;
        for (size_t i = 0; i < n; i++) {
            if (nu && strcmp(names[nu - 1], names[i]) == 0) {
                free(names[i]);
                continue;
            }
            names[nu++] = names[i];
        }
        qsort(back, nb, sizeof *back, cmp_str);
        if (nb != nu)
            fail_msg("round %d: \"%s\" gives %zu names, want %zu", round, folded, nb, nu);
        for (size_t i = 0; i < nu; i++)
            assert_string_equal(back[i], names[i]);
        /* Deterministic whatever the input order. */
        shuffle(names, nu, &seed);
        char *again = nodeset_fold((const char *const *)names, nu);
        assert_non_null(again);
        assert_string_equal(again, folded);
        free(again);
        nodeset_free_names(back, nb);
        nodeset_free_names(names, nu);
        free(folded);
    }
}

static void test_fold_speed(void **state)
{
    (void)state;
    enum { N = 10000 };
    char **names = calloc(N, sizeof *names);
    assert_non_null(names);
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "node%05d", i + 1);
        names[i] = strdup(buf);
        assert_non_null(names[i]);
    }
    shuffle(names, N, &seed);
    double t0 = now_sec();
    char *s = nodeset_fold((const char *const *)names, N);
    double dt = now_sec() - t0;
    assert_non_null(s);
    assert_string_equal(s, "node[00001-10000]");
    free(s);
    print_message("fold of %d names: %.1f ms\n", N, dt * 1000);
    assert_true(dt < 0.5); /* loose: sanitizers and loaded machines */

    /* Two fields, with holes: 10.0.[0-39].[1-250] minus every 7th. */
    size_t k = 0;
    for (int a = 0; a < 40; a++)
        for (int b = 1; b <= 250; b++) {
            char buf[32];
            snprintf(buf, sizeof buf, "10.0.%d.%d", a, b);
            free(names[k]);
            names[k] = strdup(buf);
            assert_non_null(names[k]);
            k++;
        }
    assert_int_equal(k, N);
    t0 = now_sec();
    s = nodeset_fold((const char *const *)names, N);
    dt = now_sec() - t0;
    assert_non_null(s);
    assert_string_equal(s, "10.0.[0-39].[1-250]");
    free(s);
    print_message("fold of %d addresses: %.1f ms\n", N, dt * 1000);
    assert_true(dt < 0.5);
    nodeset_free_names(names, N);
}

/* ---- host lists ---- */

static void test_hostlist_arg(void **state)
{
    (void)state;
    hostlist *hl = hostlist_new(0);
    assert_non_null(hl);
    assert_int_equal(hostlist_count(hl), 0);
    assert_string_equal(hostlist_error(hl), "");
    assert_int_equal(hostlist_add_arg(hl, "web[1-3],web2,db1"), 0);
    assert_int_equal(hostlist_add_arg(hl, "web1,db[1-2],root@web1:2222"), 0);
    assert_int_equal(hostlist_count(hl), 6);
    const char *want[] = {"web1", "web2", "web3", "db1", "db2", "root@web1:2222"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(hostlist_get(hl, i), want[i]);
    assert_null(hostlist_get(hl, 6));

    /* A failing pattern leaves the list as it was. */
    assert_int_equal(hostlist_add_arg(hl, "new1,web[3-1]"), NODESET_ERANGE);
    assert_non_null(strstr(hostlist_error(hl), "reversed"));
    assert_int_equal(hostlist_count(hl), 6);
    assert_int_equal(hostlist_add_arg(hl, "new1"), 0);
    assert_int_equal(hostlist_count(hl), 7);
    assert_string_equal(hostlist_get(hl, 6), "new1");
    assert_string_equal(hostlist_error(hl), "");
    hostlist_free(hl);
    hostlist_free(NULL);
}

static void test_hostlist_many(void **state)
{
    (void)state;
    hostlist *hl = hostlist_new(0);
    assert_non_null(hl);
    assert_int_equal(hostlist_add_arg(hl, "n[1-20000]"), 0);
    assert_int_equal(hostlist_add_arg(hl, "n[19990-20010]"), 0);
    assert_int_equal(hostlist_count(hl), 20010);
    assert_string_equal(hostlist_get(hl, 0), "n1");
    assert_string_equal(hostlist_get(hl, 20009), "n20010");
    hostlist_free(hl);

    /* Limit on distinct hosts; duplicates do not count. */
    hl = hostlist_new(5);
    assert_non_null(hl);
    assert_int_equal(hostlist_add_arg(hl, "n[1-5]"), 0);
    assert_int_equal(hostlist_add_arg(hl, "n3,n1"), 0);
    assert_int_equal(hostlist_add_arg(hl, "n2,m1"), NODESET_ETOOMANY);
    assert_non_null(strstr(hostlist_error(hl), "more than 5"));
    assert_int_equal(hostlist_add_arg(hl, "n[1-6]"), NODESET_ETOOMANY);
    assert_int_equal(hostlist_count(hl), 5);
    assert_string_equal(hostlist_get(hl, 4), "n5");
    hostlist_free(hl);
}

/* -x (pdsh): hosts taken out after the list is built, patterns expanded;
 * the list stays deduplicated and in order, and can grow again. */
static void test_hostlist_exclude(void **state)
{
    (void)state;
    hostlist *hl = hostlist_new(0);
    assert_non_null(hl);
    assert_int_equal(hostlist_add_arg(hl, "n[1-2000]"), 0);
    assert_int_equal(hostlist_exclude(hl, "n[2-1999],nosuch,n1000"), 0);
    assert_int_equal(hostlist_count(hl), 2);
    assert_string_equal(hostlist_get(hl, 0), "n1");
    assert_string_equal(hostlist_get(hl, 1), "n2000");
    /* What is left is still found (deduplicated), what went can come back. */
    assert_int_equal(hostlist_add_arg(hl, "n2000,n5,n1"), 0);
    assert_int_equal(hostlist_count(hl), 3);
    assert_string_equal(hostlist_get(hl, 2), "n5");
    assert_int_equal(hostlist_exclude(hl, "web["), NODESET_ESYNTAX);
    assert_true(hostlist_error(hl)[0] != 0);
    assert_int_equal(hostlist_count(hl), 3);
    assert_int_equal(hostlist_exclude(hl, "n1,n5,n2000"), 0);
    assert_int_equal(hostlist_count(hl), 0);
    hostlist_free(hl);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_hostlist_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512], bad[512], missing[512], err[512];
    assert_true(snprintf(path, sizeof path, "%s/hosts", dir) < (int)sizeof path);
    assert_true(snprintf(bad, sizeof bad, "%s/bad", dir) < (int)sizeof bad);
    assert_true(snprintf(missing, sizeof missing, "%s/missing", dir) < (int)sizeof missing);
    write_file(path,
               "# cluster hosts\n"
               "\n"
               "  web[01-03]  \n"
               "\tdb1 # primary\r\n"
               "root@db2:2222\n"
               "   # indented comment\n"
               "[::1]:2222\n"
               "web02\n"
               "last-no-newline");
    hostlist *hl = hostlist_new(0);
    assert_non_null(hl);
    assert_int_equal(hostlist_add_arg(hl, "db1,first"), 0);
    err[0] = 'x';
    assert_int_equal(hostlist_add_file(hl, path, err, sizeof err), 0);
    assert_string_equal(err, "");
    const char *want[] = {"db1", "first", "web01", "web02", "web03", "root@db2:2222", "[::1]:2222",
                          "last-no-newline"};
    assert_int_equal(hostlist_count(hl), 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(hostlist_get(hl, i), want[i]);

    /* Error on line 4: file:line in the message, nothing of the file kept. */
    write_file(bad, "new1\n\n# c\nweb[3-1]\nnew2\n");
    assert_int_equal(hostlist_add_file(hl, bad, err, sizeof err), NODESET_ERANGE);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:4: reversed range", bad);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\"", err);
    assert_int_equal(hostlist_count(hl), 8);

    write_file(bad, "a\nb c\n");
    assert_int_equal(hostlist_add_file(hl, bad, err, sizeof err), NODESET_ESYNTAX);
    snprintf(prefix, sizeof prefix, "%s:2: ", bad);
    assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
    assert_int_equal(hostlist_count(hl), 8);

    /* NUL byte in a line. */
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fwrite("ok\nx\0y\n", 1, 7, f);
    fclose(f);
    assert_int_equal(hostlist_add_file(hl, bad, err, sizeof err), NODESET_ESYNTAX);
    assert_non_null(strstr(err, ":2: NUL"));

    /* Missing file. */
    assert_int_equal(hostlist_add_file(hl, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    /* No error buffer is fine. */
    assert_int_equal(hostlist_add_file(hl, missing, NULL, 0), -1);

    /* Limit counted across the file. */
    hostlist *small = hostlist_new(3);
    assert_non_null(small);
    write_file(bad, "a\nb\nc\nd\n");
    assert_int_equal(hostlist_add_file(small, bad, err, sizeof err), NODESET_ETOOMANY);
    snprintf(prefix, sizeof prefix, "%s:4: more than 3 hosts", bad);
    assert_string_equal(err, prefix);
    assert_int_equal(hostlist_count(small), 0);
    hostlist_free(small);

    /* Empty file. */
    write_file(bad, "");
    assert_int_equal(hostlist_add_file(hl, bad, err, sizeof err), 0);
    assert_int_equal(hostlist_count(hl), 8);

    hostlist_free(hl);
    tu_rmtree(dir);
    free(dir);
}

/* ---- grouped output ---- */

static void test_groupout_grouping(void **state)
{
    (void)state;
    groupout *g = groupout_new();
    assert_non_null(g);
    assert_int_equal(groupout_add(g, "web1", "ok\n", 3, NULL), 0);
    assert_int_equal(groupout_add(g, "web2", "ok\n", 3, ""), 0); /* "" == no label */
    assert_int_equal(groupout_add(g, "web3", "ok\n", 3, "exit 1"), 0);
    assert_int_equal(groupout_add(g, "web4", "ok", 2, NULL), 0);
    assert_int_equal(groupout_add(g, "web5", "ok\n\0", 4, NULL), 0);
    assert_int_equal(groupout_add(g, "web6", NULL, 0, NULL), 0);
    assert_int_equal(groupout_add(g, "web7", "", 0, NULL), 0);
    assert_int_equal(groupout_add(g, "web8", "ok\n", 3, "exit 1"), 0);
    assert_int_equal(groupout_add(g, "web9", "", 0, "exit 1"), 0);
    assert_int_equal(groupout_add(g, NULL, "x", 1, NULL), -1);
    assert_int_equal(groupout_add(g, "x", NULL, 1, NULL), -1);
    assert_int_equal(groupout_add(NULL, "x", "x", 1, NULL), -1);
    assert_int_equal(groupout_hosts(g), 9);
    assert_int_equal(groupout_groups(g), 6);
    groupout_free(g);
    groupout_free(NULL);
}

static void test_groupout_print(void **state)
{
    (void)state;
    groupout *g = groupout_new();
    assert_non_null(g);
    char host[32];
    for (int i = 40; i >= 1; i--) {
        if (i == 7)
            continue;
        snprintf(host, sizeof host, "web%02d", i);
        assert_int_equal(groupout_add(g, host, "Linux 6.1\n", 10, NULL), 0);
    }
    assert_int_equal(groupout_add(g, "web07", "oops", 4, "exit 3"), 0);
    assert_int_equal(groupout_add(g, "db2", "", 0, "timeout (kex)"), 0);
    assert_int_equal(groupout_add(g, "db1", "", 0, "timeout (kex)"), 0);
    assert_int_equal(groupout_add(g, "cache1", "a\0b\x01\n", 5, NULL), 0);

    char *text = print_groups(g, 0);
    /* Dash lines are exactly as long as their header. */
    const char *want =
        "---------------------\n"
        "web[01-06,08-40] (39)\n"
        "---------------------\n"
        "Linux 6.1\n"
        "-------------------------\n"
        "db[1-2] (2) timeout (kex)\n"
        "-------------------------\n"
        "----------\n"
        "cache1 (1)\n"
        "----------\n"
        "ab\x01\n"
        "----------------\n"
        "web07 (1) exit 3\n"
        "----------------\n"
        "oops\n";
    assert_string_equal(text, want);
    free(text);

    /* Printing twice gives the same text. */
    text = print_groups(g, 0);
    assert_string_equal(text, want);
    free(text);

    text = print_groups(g, 1);
    const char *want_color =
        "\033[1m---------------------\033[0m\n"
        "\033[1mweb[01-06,08-40] (39)\033[0m\n"
        "\033[1m---------------------\033[0m\n"
        "Linux 6.1\n"
        "\033[1m-------------------------\033[0m\n"
        "\033[1mdb[1-2] (2) \033[31mtimeout (kex)\033[0m\n"
        "\033[1m-------------------------\033[0m\n"
        "\033[1m----------\033[0m\n"
        "\033[1mcache1 (1)\033[0m\n"
        "\033[1m----------\033[0m\n"
        "ab\x01\n"
        "\033[1m----------------\033[0m\n"
        "\033[1mweb07 (1) \033[31mexit 3\033[0m\n"
        "\033[1m----------------\033[0m\n"
        "oops\n";
    assert_string_equal(text, want_color);
    free(text);
    groupout_free(g);

    /* Nothing recorded: nothing printed. */
    g = groupout_new();
    assert_non_null(g);
    text = print_groups(g, 0);
    assert_string_equal(text, "");
    free(text);
    groupout_free(g);
}

static void test_groupout_same_names(void **state)
{
    (void)state;
    /* Same size: ordered by folded names; same names: by label then output. */
    groupout *g = groupout_new();
    assert_non_null(g);
    assert_int_equal(groupout_add(g, "b10", "x\n", 2, NULL), 0);
    assert_int_equal(groupout_add(g, "b9", "y\n", 2, NULL), 0);
    assert_int_equal(groupout_add(g, "a1", "z\n", 2, "exit 1"), 0);
    assert_int_equal(groupout_add(g, "a1", "z\n", 2, NULL), 0);
    char *text = print_groups(g, 0);
    assert_string_equal(text,
                        "------\n" "a1 (1)\n" "------\n" "z\n"
                        "-------------\n" "a1 (1) exit 1\n" "-------------\n" "z\n"
                        "------\n" "b9 (1)\n" "------\n" "y\n"
                        "-------\n" "b10 (1)\n" "-------\n" "x\n");
    free(text);
    groupout_free(g);
}

static void test_groupout_many(void **state)
{
    (void)state;
    enum { N = 10000 };
    groupout *g = groupout_new();
    assert_non_null(g);
    double t0 = now_sec();
    for (int i = 0; i < N; i++) {
        char host[32], out[64];
        snprintf(host, sizeof host, "10.1.%d.%d", i / 250, i % 250 + 1);
        int len;
        if (i % 1000 == 999)
            len = snprintf(out, sizeof out, "unique %d\n", i); /* 10 singletons */
        else
            len = snprintf(out, sizeof out, "kernel %d\n", i % 3);
        assert_int_equal(groupout_add(g, host, out, (size_t)len, NULL), 0);
    }
    assert_int_equal(groupout_groups(g), 13);
    char *text = print_groups(g, 0);
    double dt = now_sec() - t0;
    print_message("grouping %d hosts: %.1f ms\n", N, dt * 1000);
    assert_true(dt < 1.0);
    /* Three groups of 3330, by folded names, then the ten singletons in
     * natural order; the last output ends the text. */
    const char *p = text;
    int big = 0;
    while ((p = strstr(p, "] (3330)\n")) != NULL) {
        big++;
        p++;
    }
    assert_int_equal(big, 3);
    assert_true(strstr(text, "kernel 1\n") < strstr(text, "kernel 2\n"));
    assert_true(strstr(text, "kernel 2\n") < strstr(text, "kernel 0\n"));
    assert_true(strstr(text, "kernel 0\n") < strstr(text, "10.1.3.250 (1)\n"));
    assert_true(strstr(text, "10.1.7.250 (1)\n") < strstr(text, "10.1.11.250 (1)\n"));
    size_t tl = strlen(text);
    assert_true(tl > 12 && strcmp(text + tl - 12, "unique 9999\n") == 0);
    free(text);
    groupout_free(g);

    /* Everyone agrees: one compact header. */
    g = groupout_new();
    assert_non_null(g);
    for (int i = 0; i < N; i++) {
        char host[32];
        snprintf(host, sizeof host, "10.1.%d.%d", i / 250, i % 250 + 1);
        assert_int_equal(groupout_add(g, host, "same\n", 5, NULL), 0);
    }
    text = print_groups(g, 0);
    assert_string_equal(text, "---------------------------\n"
                              "10.1.[0-39].[1-250] (10000)\n"
                              "---------------------------\n"
                              "same\n");
    free(text);
    groupout_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_basic),
        cmocka_unit_test(test_expand_product),
        cmocka_unit_test(test_expand_lists),
        cmocka_unit_test(test_expand_user_port),
        cmocka_unit_test(test_expand_v6_literal),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_expand_errors2),
        cmocka_unit_test(test_expand_max),
        cmocka_unit_test(test_natcmp),
        cmocka_unit_test(test_fold_one_field),
        cmocka_unit_test(test_fold_mixed),
        cmocka_unit_test(test_fold_two_fields),
        cmocka_unit_test(test_fold_roundtrip),
        cmocka_unit_test(test_fold_speed),
        cmocka_unit_test(test_hostlist_arg),
        cmocka_unit_test(test_hostlist_many),
        cmocka_unit_test(test_hostlist_file),
        cmocka_unit_test(test_hostlist_exclude),
        cmocka_unit_test(test_groupout_grouping),
        cmocka_unit_test(test_groupout_print),
        cmocka_unit_test(test_groupout_same_names),
        cmocka_unit_test(test_groupout_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
