/* JSON lines of `shoal agent` and `shoal run --json` (apps/shoal/fanout/replyjson.c):
 * U+0085, U+2028 and U+2029 leave escaped, even when jansson hands them
 * over split between two writes (a front-end that splits lines with
 * Python's str.splitlines() would otherwise cut a Reply in two), and the
 * Truncated field is always there, with the streams that were cut. */
#include "../../apps/shoal/fanout/replyjson.c"

#include "testutil.h"

#include <stdio.h>

const char *shoal_fleet_class_name(shoal_fleet_class c)
{
    (void)c;
    return "?";
}

/* What replyjson_emit writes for obj, as a malloc'd string. */
static char *emit(json_t *obj)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(replyjson_emit(f, obj), 0);
    fclose(f);
    return buf;
}

static void test_line_separators_escaped(void **state)
{
    (void)state;
    const char text[] = "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xc2\x85" "d\xe2\x82\xac" "e\xc3\xa9";
    json_t *o = json_object();
    json_object_set_new(o, "Stdout", replyjson_text((const uint8_t *)text, strlen(text)));
    char *line = emit(o);
    assert_string_equal(line, "{\"Stdout\":\"a\\u2028b\\u2029c\\u0085d\xe2\x82\xac" "e\xc3\xa9\"}\n");
    /* It parses back to the same text. */
    json_error_t err;
    json_t *back = json_loads(line, 0, &err);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "Stdout")), text);
    json_decref(back);
    free(line);
}

/* Every way of cutting the bytes in two writes gives the same output. */
static void test_split_sequences(void **state)
{
    (void)state;
    const char in[] = "\"x\xe2\x80\xa8y\xc2\x85z\xe2\x82\xac\xe2\x80\xa9\"";
    const char want[] = "\"x\\u2028y\\u0085z\xe2\x82\xac\\u2029\"";
    size_t n = strlen(in);
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2++) {
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            assert_non_null(f);
            line_writer w = {f, {0, 0}, 0, 0};
            lw_write(in, cut1, &w);
            lw_write(in + cut1, cut2 - cut1, &w);
            lw_write(in + cut2, n - cut2, &w);
            if (w.nheld)
                lw_put(&w, w.held, w.nheld);
            fclose(f);
            if (strcmp(buf, want) != 0)
                fail_msg("cuts %zu/%zu: got %s", cut1, cut2, buf);
            free(buf);
        }
    }
}

static void test_truncated_field(void **state)
{
    (void)state;
    shoal_fleet_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.cls = SHOAL_FLEET_OK;
    char *line = emit(replyjson_reply(&ev, "h", NULL, 0));
    assert_non_null(strstr(line, "\"Truncated\":false"));
    assert_null(strstr(line, "TruncatedStreams"));
    free(line);
    ev.truncated = SHOAL_FLEET_TRUNC_STDERR;
    line = emit(replyjson_reply(&ev, "h", NULL, 0));
    assert_non_null(strstr(line, "\"Truncated\":true,\"TruncatedStreams\":[\"stderr\"]"));
    free(line);
    ev.truncated = SHOAL_FLEET_TRUNC_STDOUT | SHOAL_FLEET_TRUNC_STDERR;
    line = emit(replyjson_reply(&ev, "h", NULL, 0));
    assert_non_null(strstr(line, "\"TruncatedStreams\":[\"stdout\",\"stderr\"]"));
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_separators_escaped),
        cmocka_unit_test(test_split_sequences),
        cmocka_unit_test(test_truncated_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
