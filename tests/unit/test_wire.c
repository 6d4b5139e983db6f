/* Wire layer: readers on truncated, oversized and malformed input; writers. */
#include "testutil.h"

#include <string.h>

#include "wire/buf.h"

static void test_u32_truncated(void **st)
{
    (void)st;
    const uint8_t in[] = {0, 0, 1};
    shoal_rd r;
    uint32_t v = 7;
    shoal_rd_init(&r, in, sizeof(in));
    assert_int_equal(shoal_rd_u32(&r, &v), SHOAL_ERR_TRUNCATED);
    assert_int_equal(v, 0);
    assert_int_equal(shoal_rd_left(&r), 3);
}

static void test_string_overlong(void **st)
{
    (void)st;
    const uint8_t in[] = {0, 0, 0, 5, 'a', 'b', 'c'};
    shoal_rd r;
    const uint8_t *p;
    size_t n;
    shoal_rd_init(&r, in, sizeof(in));
    assert_int_equal(shoal_rd_string(&r, &p, &n), SHOAL_ERR_TRUNCATED);
    assert_null(p);
    assert_int_equal(n, 0);
    assert_int_equal(r.pos, 0); /* position restored */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a'};
    shoal_rd_init(&r, huge, sizeof(huge));
    assert_int_equal(shoal_rd_string(&r, &p, &n), SHOAL_ERR_TRUNCATED);
}

static void test_cstring_nul(void **st)
{
    (void)st;
    const uint8_t in[] = {0, 0, 0, 3, 'a', 0, 'c'};
    shoal_rd r;
    const char *p;
    size_t n;
    shoal_rd_init(&r, in, sizeof(in));
    assert_int_equal(shoal_rd_cstring(&r, &p, &n), SHOAL_ERR_BAD_FORMAT);
}

static void test_sub_and_end(void **st)
{
    (void)st;
    const uint8_t in[] = {0, 0, 0, 5, 1, 0, 0, 0, 2, 9};
    shoal_rd r, sub;
    uint8_t b;
    uint32_t v;
    shoal_rd_init(&r, in, sizeof(in));
    assert_int_equal(shoal_rd_sub(&r, &sub), 0);
    assert_int_equal(shoal_rd_u8(&sub, &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(shoal_rd_u32(&sub, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(shoal_rd_end(&sub), 0);
    assert_int_equal(shoal_rd_end(&r), SHOAL_ERR_TRAILING);
    assert_int_equal(shoal_rd_u8(&r, &b), 0);
    assert_int_equal(shoal_rd_end(&r), 0);
}

static void test_mpint(void **st)
{
    (void)st;
    const uint8_t *m;
    size_t n;
    shoal_rd r;
    const uint8_t ok[] = {0, 0, 0, 2, 0x00, 0x80};
    shoal_rd_init(&r, ok, sizeof(ok));
    assert_int_equal(shoal_rd_mpint(&r, &m, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(m[0], 0x80);
    const uint8_t neg[] = {0, 0, 0, 1, 0x80};
    shoal_rd_init(&r, neg, sizeof(neg));
    assert_int_equal(shoal_rd_mpint(&r, &m, &n), SHOAL_ERR_BAD_FORMAT);
    const uint8_t nonmin[] = {0, 0, 0, 2, 0x00, 0x01};
    shoal_rd_init(&r, nonmin, sizeof(nonmin));
    assert_int_equal(shoal_rd_mpint(&r, &m, &n), SHOAL_ERR_BAD_FORMAT);
    const uint8_t zero[] = {0, 0, 0, 0};
    shoal_rd_init(&r, zero, sizeof(zero));
    assert_int_equal(shoal_rd_mpint(&r, &m, &n), 0);
    assert_int_equal(n, 0);
}

static void test_mpint_roundtrip(void **st)
{
    (void)st;
    shoal_buf b = SHOAL_BUF_INIT;
    const uint8_t mag[] = {0, 0, 0xff, 1};
    assert_int_equal(shoal_buf_put_mpint(&b, mag, sizeof(mag)), 0);
    const uint8_t want[] = {0, 0, 0, 3, 0, 0xff, 1};
    assert_int_equal(shoal_buf_len(&b), sizeof(want));
    assert_memory_equal(shoal_buf_ptr(&b), want, sizeof(want));
    shoal_buf_free(&b);
}

static void test_namelist(void **st)
{
    (void)st;
    shoal_buf b = SHOAL_BUF_INIT;
    shoal_rd r;
    const char *p;
    size_t n;
    const char *bad[] = {",a", "a,", "a,,b", "a b", "a\x01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        shoal_buf_reset(&b);
        shoal_buf_put_cstring(&b, bad[i]);
        shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
        assert_int_equal(shoal_rd_namelist(&r, &p, &n), SHOAL_ERR_BAD_FORMAT);
    }
    shoal_buf_reset(&b);
    shoal_buf_put_cstring(&b, "aes128-ctr,aes256-gcm@openssh.com");
    shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
    assert_int_equal(shoal_rd_namelist(&r, &p, &n), 0);
    char out[64];
    const char ours[] = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr";
    assert_int_equal(shoal_namelist_choose(ours, strlen(ours), p, n, out, sizeof(out)), 0);
    assert_string_equal(out, "aes256-gcm@openssh.com");
    assert_int_equal(shoal_namelist_choose("x", 1, p, n, out, sizeof(out)), SHOAL_ERR_NO_ALGORITHM);
    assert_true(shoal_namelist_has(p, n, "aes128-ctr"));
    assert_false(shoal_namelist_has(p, n, "aes128"));
    /* too many names */
    shoal_buf_reset(&b);
    char big[SHOAL_MAX_NAMES * 2 + 10];
    size_t k = 0;
    for (unsigned i = 0; i < SHOAL_MAX_NAMES + 1; i++) {
        big[k++] = 'a';
        big[k++] = ',';
    }
    big[k - 1] = 0;
    shoal_buf_put_cstring(&b, big);
    shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
    assert_int_equal(shoal_rd_namelist(&r, &p, &n), SHOAL_ERR_TOO_LARGE);
    shoal_buf_free(&b);
}

static void test_buf_cap(void **st)
{
    (void)st;
    shoal_buf b;
    shoal_buf_init(&b, 16);
    assert_int_equal(shoal_buf_put(&b, "0123456789abcdef", 16), 0);
    assert_int_equal(shoal_buf_put_u8(&b, 1), SHOAL_ERR_TOO_LARGE);
    shoal_buf_consume(&b, 4);
    assert_int_equal(shoal_buf_put_u32(&b, 0x01020304), 0);
    assert_int_equal(shoal_buf_len(&b), 16);
    assert_memory_equal(shoal_buf_ptr(&b), "456789abcdef\x01\x02\x03\x04", 16);
    size_t mark;
    shoal_buf_reset(&b);
    assert_int_equal(shoal_buf_begin_string(&b, &mark), 0);
    shoal_buf_put(&b, "xyz", 3);
    shoal_buf_end_string(&b, mark);
    assert_memory_equal(shoal_buf_ptr(&b), "\0\0\0\3xyz", 7);
    shoal_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u32_truncated), cmocka_unit_test(test_string_overlong),
        cmocka_unit_test(test_cstring_nul),   cmocka_unit_test(test_sub_and_end),
        cmocka_unit_test(test_mpint),         cmocka_unit_test(test_mpint_roundtrip),
        cmocka_unit_test(test_namelist),      cmocka_unit_test(test_buf_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
