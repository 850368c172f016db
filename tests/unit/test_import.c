/*
 * test_import.c - the JSONL importer: both task shapes, COPY escaping,
 * blank lines, and every malformed line named by its number.
 */
#include "testlib.h"

#include <string.h>

#include "import.h"

static int run(const char *body, qr_buf_t *out, int64_t *n, char *err)
{
    qr_buf_init(out);
    return qr_import_jsonl(body, strlen(body), 7, 3, out, n, err, 256);
}

static void test_both_shapes(void **state)
{
    qr_buf_t out;
    int64_t n;
    char err[256];
    assert_int_equal(
        run("{\"data\": {\"text\": \"a\"}}\n\n  \n{\"text\": \"b\", \"k\": 1}\n", &out, &n, err),
        0);
    assert_int_equal(n, 2);
    assert_string_equal(out.data, "\t7\t{\"text\":\"a\"}\t3\n\t7\t{\"text\":\"b\",\"k\":1}\t3\n");
    qr_buf_free(&out);
}

static void test_copy_escaping(void **state)
{
    qr_buf_t out;
    int64_t n;
    char err[256];
    /* A JSON escape \n stays an escape in the dump; COPY must see its
     * backslash doubled. A real tab cannot appear in JSON text. */
    assert_int_equal(run("{\"t\": \"x\\ny\\\\z\"}\r\n", &out, &n, err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out.data, "\t7\t{\"t\":\"x\\\\ny\\\\\\\\z\"}\t3\n");
    qr_buf_free(&out);
}

static void test_no_trailing_newline_and_utf8(void **state)
{
    qr_buf_t out;
    int64_t n;
    char err[256];
    assert_int_equal(run("{\"t\": \"caf\xc3\xa9\"}", &out, &n, err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out.data, "\t7\t{\"t\":\"caf\xc3\xa9\"}\t3\n");
    qr_buf_free(&out);
}

static void expect_error(const char *body, const char *prefix)
{
    qr_buf_t out;
    int64_t n;
    char err[256] = "";
    assert_int_equal(run(body, &out, &n, err), QR_EINVAL);
    if (strncmp(err, prefix, strlen(prefix)))
        fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
    qr_buf_free(&out);
}

static void test_bad_lines_are_named(void **state)
{
    expect_error("{\"a\":1}\n{\"a\":2}\n{oops}\n", "line 3:");
    expect_error("{\"a\":1}\n\n[1,2]\n", "line 3: a task must be a JSON object");
    expect_error("\"text\"\n", "line 1:");
    expect_error("{\"data\": 5}\n", "line 1: \"data\" must be a JSON object");
    expect_error("{\"a\":1, \"a\":2}\n", "line 1:");
    expect_error("{\"a\":\"\\u0000\"}\n", "line 1:");
    expect_error("{\"a\":\"\xff\"}\n", "line 1:");
    expect_error("{\"a\":1} {\"b\":2}\n", "line 1:");
    expect_error("", "the body holds no task");
    expect_error("\n \n", "the body holds no task");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_shapes),
        cmocka_unit_test(test_copy_escaping),
        cmocka_unit_test(test_no_trailing_newline_and_utf8),
        cmocka_unit_test(test_bad_lines_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
