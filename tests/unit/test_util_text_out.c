/*
 * test_util_text_out.c - common/text_out.c: CSV cells neutralized against
 * formula injection (OWASP's rule, reversibly), and text escaped for the
 * terminal so that a name cannot move the cursor or forge a row; and
 * common/util.c's formatting into heap strings and buffers (one pass when
 * the text fits, two when it does not).
 */
#include "testlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_out.h"
#include "util.h"

static void test_formatting(void **state)
{
    (void)state;
    const int64_t vals[] = {0, 7, -7, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "%" PRId64, vals[i]);
        char *got = qr_xi64(vals[i]);
        assert_string_equal(got, want);
        free(got);
        qr_buf_t nb;
        qr_buf_init(&nb);
        qr_buf_append(&nb, "{", 1);
        qr_buf_append_i64(&nb, vals[i]);
        assert_int_equal(nb.len, 1 + strlen(want));
        assert_string_equal(nb.data + 1, want);
        qr_buf_free(&nb);
    }
    char *s = qr_xasprintf("{p:%d}:%s", 42, "ready");
    assert_string_equal(s, "{p:42}:ready");
    free(s);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s = qr_xasprintf("<%s>", big); /* past the one-pass buffer */
    assert_int_equal(strlen(s), sizeof big + 1);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[sizeof big], '>');
    free(s);

    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appendf(&b, "%d,", 1);
    for (int i = 0; i < 3; i++)
        qr_buf_appendf(&b, "%s", big); /* grows past its room: formatted again */
    qr_buf_appendf(&b, ",%s", "end");
    assert_int_equal(b.len, 2 + 3 * (sizeof big - 1) + 4);
    assert_int_equal(strlen(b.data), b.len);
    assert_memory_equal(b.data, "1,xxx", 5);
    assert_string_equal(b.data + b.len - 4, ",end");
    qr_buf_free(&b);
}

static void expect_cell(const char *in, const char *out)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_csv_cell(&b, in);
    assert_string_equal(b.data ? b.data : "", out);
    qr_buf_free(&b);
}

static void test_csv_neutralized(void **state)
{
    (void)state;
    expect_cell("=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
    expect_cell("=1+2", "'=1+2");
    expect_cell("+1", "'+1");
    expect_cell("-1", "'-1");
    expect_cell("@SUM(A1)", "'@SUM(A1)");
    expect_cell("\tx", "'\tx");
    expect_cell("\rx", "\"'\rx\"");
    expect_cell("'=x", "''=x"); /* so reading back is exact */
    expect_cell("alice", "alice");
    expect_cell("a,b", "\"a,b\"");
    expect_cell("", "");
    expect_cell("x=1", "x=1");
    expect_cell("'quoted", "'quoted");
}

static void test_csv_value(void **state)
{
    (void)state;
    assert_int_equal(qr_csv_cell_value("'=x", 3), 1);
    assert_int_equal(qr_csv_cell_value("''=x", 4), 1);
    assert_int_equal(qr_csv_cell_value("'-1", 3), 1);
    assert_int_equal(qr_csv_cell_value("'quoted", 7), 0);
    assert_int_equal(qr_csv_cell_value("'", 1), 0);
    assert_int_equal(qr_csv_cell_value("=x", 2), 0);
}

static void expect_term(const char *in, const char *out)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_term_escape(&b, in);
    assert_string_equal(b.data ? b.data : "", out);
    qr_buf_free(&b);
    char small[512];
    assert_string_equal(qr_term_escape_to(small, sizeof small, in), out);
}

static void test_term_escape(void **state)
{
    (void)state;
    expect_term("\x1b[31mred\nevil  999", "\\x1b[31mred\\x0aevil  999");
    expect_term("del\x7f", "del\\x7f");
    expect_term("csi\xc2\x9b"
                "2J",
                "csi\\u009b2J");                 /* U+009B, a C1 CSI */
    expect_term("bad\xff\xc2", "bad\\xff\\xc2"); /* not UTF-8 */
    expect_term("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x99\x82",
                "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x99\x82");
    expect_term("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
    expect_term("plain", "plain");
}

static void test_term_escape_cut(void **state)
{
    (void)state;
    char out[8];
    /* "ab" then "\x1b" (4 bytes) fits 7; the next escape does not: cut before it. */
    assert_string_equal(qr_term_escape_to(out, sizeof out, "ab\x1b\x1b"), "ab\\x1b");
    assert_string_equal(qr_term_escape_to(out, 4, "ab\xc3\xa9"), "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formatting),      cmocka_unit_test(test_csv_neutralized),
        cmocka_unit_test(test_csv_value),       cmocka_unit_test(test_term_escape),
        cmocka_unit_test(test_term_escape_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
