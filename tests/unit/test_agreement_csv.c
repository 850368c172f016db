/*
 * test_agreement_csv.c - the CSV reader behind `quorumctl agreement`
 * (common/agreement/agreement_csv.c): what RFC 4180 allows is read, and every bad input
 * is refused with an error naming the line of the offending record.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "agreement_internal.h"
#include "util.h"

/* Reads text (len bytes) into a fresh set; returns the reader's result and
 * leaves the message in err. *out gets the set (caller frees) or NULL. */
static int read_text(const char *text, size_t len, char *err, size_t errlen, qr_agreement_t **out)
{
    /* fmemopen refuses a zero-length buffer on some libcs; read "" from a
     * one-byte buffer opened for zero bytes instead. */
    static char empty[1];
    FILE *f = fmemopen(len ? (void *)text : empty, len ? len : 1, "r");
    assert_non_null(f);
    if (!len)
        fseek(f, 1, SEEK_SET);
    qr_agreement_t *a = qr_agreement_new();
    int rc = qr_agreement_read_csv(f, a, err, errlen);
    fclose(f);
    if (out)
        *out = a;
    else
        qr_agreement_free(a);
    return rc;
}

/* Asserts the text is refused at line `line` with a message naming that line
 * and containing `what`. */
static void expect_error(const char *text, size_t len, int line, const char *what)
{
    char err[512], prefix[32];
    int rc = read_text(text, len, err, sizeof err, NULL);
    if (rc != -line)
        fail_msg("expected error on line %d, got %d (%s)", line, rc, err);
    snprintf(prefix, sizeof prefix, "line %d: ", line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err, prefix, what);
}

#define EXPECT_ERROR(text, line, what) expect_error(text, sizeof(text) - 1, line, what)

static json_int_t counts(qr_agreement_t *a, const char *key, json_t **keep)
{
    json_t *r = qr_agreement_json(a, 0);
    json_int_t v = json_integer_value(json_object_get(json_object_get(r, "counts"), key));
    if (keep)
        *keep = r;
    else
        json_decref(r);
    return v;
}

static void test_reads_rfc4180(void **state)
{
    /* BOM, CRLF, columns in another order plus an ignored one, quoted
     * fields with commas, doubled quotes and a line break, a blank line,
     * no final line break. */
    static const char text[] = "\xef\xbb\xbf"
                               "label,note,Annotator,item\r\n"
                               "\"a, b\",n1,ann1,i1\r\n"
                               "\"a, b\",\"x\"\"y\",ann2,i1\r\n"
                               "\r\n"
                               "\"say \"\"hi\"\"\",,ann1,\"two\r\nlines\"\r\n"
                               "\xc3\xa9,n,ann2,\"two\r\nlines\"";
    char err[256];
    qr_agreement_t *a;
    json_t *r;

    assert_int_equal(read_text(text, sizeof text - 1, err, sizeof err, &a), 0);
    assert_int_equal(qr_agreement_count(a), 4);
    assert_int_equal(counts(a, "items", &r), 2);
    const json_t *labels = json_object_get(r, "labels");
    assert_int_equal(json_integer_value(json_object_get(labels, "a, b")), 2);
    assert_int_equal(json_integer_value(json_object_get(labels, "say \"hi\"")), 1);
    assert_int_equal(json_integer_value(json_object_get(labels, "\xc3\xa9")), 1);
    assert_int_equal(qr_agreement_find(a, "two\r\nlines", 10, "ann2", 4), 3);
    json_decref(r);
    qr_agreement_free(a);

    /* A header alone is a valid, empty set. */
    assert_int_equal(read_text("item,annotator,label\n", 21, err, sizeof err, &a), 0);
    assert_int_equal(qr_agreement_count(a), 0);
    qr_agreement_free(a);
}

/* Lines are counted across CRLF, blank lines and quoted line breaks. */
static void test_line_numbers(void **state)
{
    EXPECT_ERROR("item,annotator,label\r\n"
                 "\r\n"
                 "\"multi\nline\",a,x\r\n"
                 "\n"
                 "1,a\r\n",
                 6, "row has 2 fields but the header has 3");
}

static void test_duplicate(void **state)
{
    EXPECT_ERROR("item,annotator,label\n1,a,x\n2,a,y\n1,a,z\n", 4,
                 "duplicate judgement: annotator \"a\" already labeled item \"1\" on line 2");
}

static void test_missing_column(void **state)
{
    EXPECT_ERROR("item,label\n1,x\n", 1, "missing column \"annotator\"");
    EXPECT_ERROR("item,annotator,lable\n1,a,x\n", 1, "missing column \"label\"");
    EXPECT_ERROR("item,annotator,label,item\n1,a,x,1\n", 1, "column \"item\" twice");
    /* A row missing its label field. */
    EXPECT_ERROR("item,annotator,label\n1,a,x\n2,b\n", 3, "row has 2 fields");
    EXPECT_ERROR("item,annotator,label\n1,a,x,extra\n", 2, "row has 4 fields");
}

static void test_ragged_quote(void **state)
{
    EXPECT_ERROR("item,annotator,label\n1,a,x\n2,a,x\"y\n", 3, "malformed quoting");
    EXPECT_ERROR("item,annotator,label\n1,a,\"x\"y\n", 2, "malformed quoting");
    /* Unterminated: the record starting on line 3 runs to the end. */
    EXPECT_ERROR("item,annotator,label\n1,a,x\n2,a,\"y\n3,a,z\n", 3, "unterminated quoted field");
    EXPECT_ERROR("item,annotator,label\n\"1,a,x\n", 2, "unterminated quoted field");
}

static void test_invalid_utf8(void **state)
{
    EXPECT_ERROR("item,annotator,label\n1,a,ok\n2,a,\xff\xfe\n", 3, "field 3 is not valid UTF-8");
    EXPECT_ERROR("item,annotator,label\n1,\xc3(,x\n", 2, "field 2 is not valid UTF-8");
    EXPECT_ERROR("item,annotator,label\n1,\xed\xa0\x80,x\n", 2, "not valid UTF-8"); /* surrogate */
    EXPECT_ERROR("item,annotator,label\n1,\xc0\xaf,x\n", 2, "not valid UTF-8");     /* overlong */
    EXPECT_ERROR("item,annotator,label\n1,a,x\0y\n", 2, "NUL byte");
    /* UTF-16 is not UTF-8 either. */
    EXPECT_ERROR("\xff\xfei\0t\0e\0m\0\n", 1, "not valid UTF-8");
}

static void test_empty_inputs(void **state)
{
    EXPECT_ERROR("", 1, "empty file");
    EXPECT_ERROR("\xef\xbb\xbf", 1, "empty file");
    EXPECT_ERROR("\n\r\n  \n", 1, "empty file");
    EXPECT_ERROR("item,annotator,label\n1,a,\n", 2, "empty label");
    EXPECT_ERROR("item,annotator,label\n1,\"\",x\n", 2, "empty annotator");
    EXPECT_ERROR("item,annotator,label\n,a,x\n", 2, "empty item");
}

/* Large inputs cross many of the reader's buffers (it reads 256 KiB at a
 * time): results and error lines must be what a single pass gives, wherever
 * the boundaries fall. */
static char *big_csv(int rows, int dup_at, int quoted_at, size_t *len)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "item,annotator,label\n");
    for (int i = 0; i < rows; i++) {
        if (i == quoted_at)
            qr_buf_appendf(&b, "\"it\n%d\",a%d,\"l\n%d\"\n", i / 4, i % 4, i % 3);
        else if (i == dup_at)
            qr_buf_appendf(&b, "it%d,a%d,l%d\n", (i - 4) / 4, (i - 4) % 4, i % 3);
        else
            qr_buf_appendf(&b, "it%d,a%d,l%d\n", i / 4, i % 4, i % 3);
    }
    *len = b.len;
    return qr_buf_steal(&b);
}

static void test_large_input_batches(void **state)
{
    char err[512];
    size_t len;
    qr_agreement_t *a;
    json_t *r;

    /* A quoted field with line feeds near the end: every later line number
     * counts them. Row i is on line i + 2 before it, i + 4 after it. */
    char *text = big_csv(200000, -1, 150001, &len);
    assert_int_equal(read_text(text, len, err, sizeof err, &a), 0);
    assert_int_equal(counts(a, "judgements", &r), 200000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "counts"), "items")),
                     50001);
    json_decref(r);
    qr_agreement_free(a);
    free(text);

    /* A duplicate far from the start, after the multi-line field. */
    text = big_csv(200000, 190003, 150001, &len);
    assert_int_equal(read_text(text, len, err, sizeof err, NULL), -(190003 + 4));
    char want[128];
    snprintf(want, sizeof want, "already labeled item \"it%d\" on line %d", 47499, 189999 + 4);
    if (!strstr(err, want))
        fail_msg("message \"%s\" lacks \"%s\"", err, want);
    free(text);

    /* A bad quote late in the file. */
    text = big_csv(120000, -1, -1, &len);
    char *q = strstr(text, "\nit29000,a1,");
    assert_non_null(q);
    q[3] = '"'; /* it29000 -> it"9000: a quote inside an unquoted field */
    assert_int_equal(read_text(text, len, err, sizeof err, NULL), -(116001 + 2));
    assert_non_null(strstr(err, "malformed quoting"));
    free(text);
}

/* Reads text with the fast path on or off; the report (per item, compact
 * JSON) or the error into *out (caller frees). */
static int read_mode(const char *text, size_t len, int fast, char **out)
{
    static char empty[1];
    char err[512];
    FILE *f = fmemopen(len ? (void *)text : empty, len ? len : 1, "r");
    assert_non_null(f);
    if (!len)
        fseek(f, 1, SEEK_SET);
    qr_agreement_t *a = qr_agreement_new();
    int rc = qr_agr_read_csv_mode(f, a, err, sizeof err, fast);
    fclose(f);
    json_t *r = qr_agreement_json(a, 1);
    char *dump = json_dumps(r, JSON_COMPACT);
    assert_non_null(dump);
    size_t n = strlen(err) + strlen(dump) + 64;
    *out = qr_xmalloc(n);
    snprintf(*out, n, "rc %d err %s report %s", rc, err, dump);
    free(dump);
    json_decref(r);
    qr_agreement_free(a);
    return rc;
}

/* Asserts that the fast path and libcsv alone read text the same way. */
static void expect_same(const char *text, size_t len)
{
    char *fast, *ref;
    read_mode(text, len, 1, &fast);
    read_mode(text, len, 0, &ref);
    if (strcmp(fast, ref) != 0)
        fail_msg("fast path and libcsv differ on \"%.*s\":\n fast: %.300s\n  ref: %.300s",
                 (int)(len < 200 ? len : 200), text, fast, ref);
    free(fast);
    free(ref);
}

/* Every line shape the fast path takes or hands to libcsv: the same report,
 * or the same error on the same line, either way. */
static void test_fast_path_edges(void **state)
{
    static const char *const cases[] = {
        "item,annotator,label\n1,a,x\n1,b,y\n",
        "item,annotator,label\r\n1,a,x\r\n1,b,y\r\n",
        "item,annotator,label\r1,a,x\r1,b,y\r",       /* lone CRs end rows */
        "item,annotator,label\n1,a,x\r2,b,y\n",       /* a CR inside a line */
        "item,annotator,label\n1,a,x\r\r\n1,b,y\n",   /* CR CR LF */
        "item,annotator,label\n 1,a,x\n1 ,b,x\n",     /* spaces libcsv trims */
        "item,annotator,label\n1,\ta,x\n1,b,x\t\n",   /* tabs too */
        "item,annotator,label\n1,a b,x y\n1,b,x y\n", /* inner spaces stay */
        "item,annotator,label\n1,a,\" x \"\n1,b,x\n", /* quoted spaces stay */
        "item,annotator,label\n\"1\",\"a\",\"x\"\n\"1\",b,\"x, y\"\n",
        "item,annotator,label\n1,a,\"x\"\"y\"\n1,b,x\n", /* a doubled quote */
        "item,annotator,label\n1,a,\"x\" \n1,b,x\n",     /* a space after the quote */
        "item,annotator,label\n1,a,\"x\"y\n",            /* text after the quote */
        "item,annotator,label\n1,a,x\"y\n",              /* a quote inside */
        "item,annotator,label\n1,a,\"x\n\n1,b,y\n",      /* unterminated */
        "item,annotator,label\n\"1\n2\",a,x\n\"1\n2\",b,x\n3,a,x\n3,a,y\n",
        "item,annotator,label\n1,a,x\n\n\n1,b,x\n   \n\t\n2,a,x\n",
        "item,annotator,label\n1,a,x\n1,b", /* no final line feed */
        "item,annotator,label\n1,a,x\n1,b,",
        "item,annotator,label\n1,a,x\n1,b,\"y",
        "item,annotator,label\n1,a,\n",
        "item,annotator,label\n,a,x\n",
        "item,annotator,label\n1,\"\",x\n",
        "item,annotator,label\n1,a\n",
        "item,annotator,label\n1,a,x,y\n",
        "item,annotator,label,\n1,a,x,\n1,b,y,\n",
        "label,x,annotator,y,item\n1,,a,,i\n2,,b,,i\n",
        "task_id,annotator,label\n1,a,x\n1,b,x\n",
        "item,annotator,label\n1,a,'=x\n1,b,'=x\n2,a,'x\n2,b,''=y\n",
        "item,annotator,label\n1,a,\xc3\xa9\n1,b,\xe6\x97\xa5\n",
        "item,annotator,label\n1,a,\xff\n",
        "item,annotator,label\n1,\xc3,x\n",
        "item,annotator,label,note\n1,a,x,\xed\xa0\x80\n",
        "item,annotator,label\n1,a,x\n1,a,y\n",
        "item,annotator,label\n1,a,x\n2,a,y\n1,b,x\n2,b,y\n1,a,z\n",
        "item,annotator,label\nb,a,x\na,a,y\nb,b,x\nc,a,x\na,a,z\n",
        "item,annotator,label\n10,a,x\n9,a,y\n10,b,x\n",
        "\xef\xbb\xbfitem,annotator,label\n1,a,x\n1,b,x\n",
        "\n\nitem,annotator,label\n1,a,x\n",
        "item,annotator,label\n1,a,x\n1,b,x\n2,a,1234567890123456789\n2,b,12345678901234567\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_same(cases[i], strlen(cases[i]));
    /* A NUL byte inside a line. */
    static const char nul[] = "item,annotator,label\n1,a,x\0y\n1,b,x\n";
    expect_same(nul, sizeof nul - 1);
}

/* Random lines from pieces that each path treats differently, in files
 * long enough to cross the read buffer: the same result either way. */
static void test_fast_path_random(void **state)
{
    static const char *const pieces[] = {
        "a",   "b",        "x y",  " a", "a ", "\t", "\"a\"", "\"a,b\"", "\"a\"\"b\"", "\"a\nb\"",
        "'=a", "\xc3\xa9", "\xff", "1",  "2",  "10", "1.0",   "",        "\"\"",       "\r",
    };
    uint64_t rnd = 88172645463325252u;
#define NEXT() (rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17, rnd)
    for (int round = 0; round < 60; round++) {
        qr_buf_t b;
        qr_buf_init(&b);
        qr_buf_appends(&b, round % 3 ? "item,annotator,label\n" : "label,item,note,annotator\r\n");
        int rows = round < 50 ? 40 : 30000, odd = (int)(NEXT() % 4);
        for (int i = 0; i < rows; i++) {
            int ncol = NEXT() % 50 == 0 ? 3 + (int)(NEXT() % 3) : (round % 3 ? 3 : 4);
            for (int c = 0; c < ncol; c++) {
                if (c)
                    qr_buf_append(&b, ",", 1);
                if (NEXT() % 40 < (uint64_t)odd) {
                    qr_buf_appends(&b, pieces[NEXT() % (sizeof(pieces) / sizeof(pieces[0]))]);
                } else if (c == (round % 3 ? 0 : 1)) {
                    qr_buf_appendf(&b, "it%d", round % 2 ? i / 4 : (int)(NEXT() % (rows / 3 + 1)));
                } else if (c == (round % 3 ? 1 : 3)) {
                    qr_buf_appendf(&b, "ann%d", round % 2 ? i % 4 : (int)(NEXT() % 7));
                } else {
                    qr_buf_appendf(&b, "%d", (int)(NEXT() % 5));
                }
            }
            qr_buf_appends(&b, NEXT() % 30 == 0 ? "\r\n" : "\n");
        }
        expect_same(b.data, b.len);
        qr_buf_free(&b);
    }
#undef NEXT
}

/* A line longer than the read buffer, and lines of every length around the
 * sixteen-byte steps of the fast path's split. */
static void test_fast_path_long_lines(void **state)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "item,annotator,label\n");
    for (int len = 1; len < 70; len++) {
        for (int k = 0; k < 2; k++) {
            qr_buf_appendf(&b, "i%d,a%d,", len, k);
            for (int c = 0; c < len; c++)
                qr_buf_append(&b, c == len - 1 && k ? " " : "l", 1);
            qr_buf_append(&b, "\n", 1);
        }
    }
    qr_buf_appends(&b, "big,a,");
    for (int c = 0; c < 700000; c++)
        qr_buf_append(&b, "abcdefg" + c % 7, 1);
    qr_buf_appends(&b, "\nbig,b,x\n");
    expect_same(b.data, b.len);
    qr_buf_free(&b);
}

/* The message always fits the buffer and is NUL-terminated. */
static void test_small_error_buffer(void **state)
{
    char err[12];
    memset(err, 'z', sizeof err);
    assert_int_equal(read_text("item,label\n", 11, err, sizeof err, NULL), -1);
    assert_non_null(memchr(err, '\0', sizeof err));
    assert_int_equal(read_text("item,label\n", 11, NULL, 0, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_rfc4180),       cmocka_unit_test(test_line_numbers),
        cmocka_unit_test(test_duplicate),           cmocka_unit_test(test_missing_column),
        cmocka_unit_test(test_ragged_quote),        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_empty_inputs),        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_large_input_batches), cmocka_unit_test(test_fast_path_edges),
        cmocka_unit_test(test_fast_path_random),    cmocka_unit_test(test_fast_path_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
