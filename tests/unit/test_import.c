/*
 * test_import.c - the importers (JSONL, JSON array, CSV): task shapes, predictions and
 * gold answers, COPY escaping, every malformed line named by its number, and
 * the overlap draw and sampling priorities written into the rows.
 */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

static qr_import_policy_t policy(const char *sampling)
{
    qr_import_policy_t p = {.project_id = 7,
                            .annotations_per_task = 1,
                            .overlap_fraction = 0,
                            .overlap_annotations = 3,
                            .sampling = sampling,
                            .stratify_field = "genre"};
    return p;
}

/* Parses body and writes its rows with ids 101, 102, ... */
static char *rows_for(const char *body, qr_import_policy_t *pol, const qr_strata_t *prior)
{
    qr_import_t imp;
    char err[256] = "";
    if (qr_import_parse(body, strlen(body), pol->stratify_field, &imp, err, sizeof err) != 0)
        fail_msg("parse failed: %s", err);
    int64_t *ids = calloc((size_t)imp.n, sizeof *ids);
    for (int64_t i = 0; i < imp.n; i++)
        ids[i] = 101 + i;
    qr_buf_t out;
    qr_buf_init(&out);
    qr_import_rows(&imp, ids, pol, prior, 42, &out);
    free(ids);
    qr_import_free(&imp);
    return qr_buf_steal(&out);
}

/* Column col (0-based) of row line (0-based) of COPY text, into buf. */
static const char *field(const char *rows, int line, int col, char *buf, size_t len)
{
    const char *p = rows;
    for (int i = 0; i < line; i++)
        p = strchr(p, '\n') + 1;
    for (int i = 0; i < col; i++)
        p = strchr(p, '\t') + 1;
    size_t n = strcspn(p, "\t\n");
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

static void test_shapes_and_columns(void **state)
{
    qr_import_policy_t pol = policy("sequential");
    char *rows = rows_for("{\"data\": {\"text\": \"a\"}, \"prediction\": {\"label\": \"x\", "
                          "\"score\": 0.25}, \"gold\": \"x\"}\n\n  \n{\"text\": \"b\", \"k\": 1}\n",
                          &pol, NULL);
    assert_string_equal(rows,
                        "101\t7\t{\"text\":\"a\"}\t1\t101\tf\t{\"label\":\"x\",\"score\":0.25}"
                        "\t0.25\tx\t\\N\n"
                        "102\t7\t{\"text\":\"b\",\"k\":1}\t1\t102\tf\t\\N\t\\N\t\\N\t\\N\n");
    free(rows);
}

static void test_label_studio_predictions(void **state)
{
    qr_import_policy_t pol = policy("uncertainty");
    char *rows = rows_for("{\"data\": {\"t\": 1}, \"predictions\": [{\"score\": 0.9}]}\n"
                          "{\"data\": {\"t\": 2}, \"predictions\": [{\"score\": 0.1}]}\n"
                          "{\"data\": {\"t\": 3}}\n",
                          &pol, NULL);
    char a[64], b[64], c[64];
    /* uncertainty: the score is the priority; no prediction comes first. */
    assert_true(strtod(field(rows, 1, 4, a, sizeof a), NULL) <
                strtod(field(rows, 0, 4, b, sizeof b), NULL));
    assert_true(strtod(field(rows, 2, 4, c, sizeof c), NULL) < 0);
    assert_string_equal(field(rows, 0, 7, a, sizeof a), "0.90000000000000002");
    free(rows);
}

static void test_copy_escaping(void **state)
{
    qr_import_policy_t pol = policy("sequential");
    /* A JSON escape \n stays an escape in the dump; COPY must see its
     * backslash doubled. */
    char *rows = rows_for("{\"t\": \"x\\ny\\\\z\"}\r\n", &pol, NULL);
    char buf[128];
    assert_string_equal(field(rows, 0, 2, buf, sizeof buf), "{\"t\":\"x\\\\ny\\\\\\\\z\"}");
    free(rows);
    rows = rows_for("{\"t\": \"caf\xc3\xa9\"}", &pol, NULL); /* no final newline, UTF-8 */
    assert_string_equal(field(rows, 0, 2, buf, sizeof buf), "{\"t\":\"caf\xc3\xa9\"}");
    free(rows);
}

static void expect_error(const char *body, const char *prefix)
{
    qr_import_t imp;
    char err[256] = "";
    assert_int_equal(qr_import_parse(body, strlen(body), NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_int_equal(imp.n, 0);
    if (strncmp(err, prefix, strlen(prefix)))
        fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
}

static void test_bad_lines_are_named(void **state)
{
    expect_error("{\"a\":1}\n{\"a\":2}\n{oops}\n", "line 3:");
    expect_error("{\"a\":1}\n\n[1,2]\n", "line 3: a task must be a JSON object");
    expect_error("\"text\"\n", "line 1:");
    expect_error("{\"data\": 5}\n", "line 1: \"data\" must be a JSON object");
    expect_error("{\"data\": {}, \"prediction\": 5}\n", "line 1: \"prediction\" must be");
    expect_error("{\"data\": {}, \"prediction\": {\"score\": \"high\"}}\n",
                 "line 1: the prediction");
    expect_error("{\"data\": {}, \"gold\": 3}\n", "line 1: \"gold\" must be");
    expect_error("{\"a\":1, \"a\":2}\n", "line 1:");
    expect_error("{\"a\":\"\\u0000\"}\n", "line 1:");
    expect_error("{\"a\":\"\xff\"}\n", "line 1:");
    expect_error("{\"a\":1} {\"b\":2}\n", "line 1:");
    expect_error("", "the body holds no task");
    expect_error("\n \n", "the body holds no task");
}

/* Parses CSV; the error (or "") into err. */
static int csv(const char *body, qr_import_t *imp, char *err, size_t n)
{
    err[0] = '\0';
    return qr_import_parse_csv(body, strlen(body), "genre", imp, err, n);
}

static void test_csv_tasks(void **state)
{
    qr_import_t imp;
    char err[256];
    /* BOM, CRLF, quoted commas, quotes and line feeds, UTF-8; the special
     * columns become the prediction and the gold answer, not data. */
    const char *body = "\xef\xbb\xbftext,genre,prediction,prediction_score,gold\r\n"
                       "\"Hello, \"\"world\"\"\",news,pos,0.25,neg\r\n"
                       "\"two\nlines\",caf\xc3\xa9,,,\r\n"
                       "\r\n";
    assert_int_equal(csv(body, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 2);
    assert_string_equal(imp.tasks[0].data,
                        "{\"text\":\"Hello, \\\"world\\\"\",\"genre\":\"news\"}");
    assert_string_equal(imp.tasks[0].prediction, "{\"label\":\"pos\",\"score\":0.25}");
    assert_true(imp.tasks[0].score == 0.25);
    assert_string_equal(imp.tasks[0].gold, "neg");
    assert_string_equal(imp.tasks[0].stratum, "news");
    assert_string_equal(imp.tasks[1].data, "{\"text\":\"two\\nlines\",\"genre\":\"caf\xc3\xa9\"}");
    assert_null(imp.tasks[1].prediction);
    assert_true(isnan(imp.tasks[1].score));
    assert_null(imp.tasks[1].gold);
    qr_import_free(&imp);
}

static void expect_csv_error(const char *body, const char *want)
{
    qr_import_t imp;
    char err[256];
    assert_int_equal(csv(body, &imp, err, sizeof err), QR_EINVAL);
    assert_int_equal(imp.n, 0);
    if (strcmp(err, want))
        fail_msg("error \"%s\", wanted \"%s\"", err, want);
}

static void test_csv_errors_name_the_line(void **state)
{
    expect_csv_error("a,b\n1,2\n\"x\ny\",2\n3\n", "line 5: row has 1 fields but the header has 2");
    expect_csv_error("a,b\n1,2,3\n", "line 2: row has 3 fields but the header has 2");
    expect_csv_error("a,a\n1,2\n", "line 1: the header names column \"a\" twice");
    expect_csv_error("a,,b\n1,2,3\n", "line 1: column 2 of the header has no name");
    expect_csv_error("a\n\"ok\"\n\"open\n", "line 3: a quoted field is not closed before the end");
    expect_csv_error("a\n1\nx\"y\n",
                     "line 3: malformed quoting: a quote inside an unquoted field, or text after "
                     "a closing quote (a literal quote is written \"\" inside a quoted field)");
    expect_csv_error("a\n\xff\n", "line 2: field 1 is not valid UTF-8");
    expect_csv_error("a,prediction_score\nx,high\n",
                     "line 2: prediction_score \"high\" is not a number");
    expect_csv_error("", "the body holds no CSV header");
    expect_csv_error("a,b\r\n", "the body holds no task (a header and no rows)");
}

static void test_json_array(void **state)
{
    qr_import_t imp;
    char err[256] = "";
    const char *ls = "[{\"data\": {\"text\": \"a\"}, \"predictions\": [{\"score\": 0.5}]},"
                     " {\"text\": \"b\"}]";
    assert_int_equal(qr_import_parse_json_array(ls, strlen(ls), NULL, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 2);
    assert_string_equal(imp.tasks[0].data, "{\"text\":\"a\"}");
    assert_true(imp.tasks[0].score == 0.5);
    assert_string_equal(imp.tasks[1].data, "{\"text\":\"b\"}");
    qr_import_free(&imp);
    const char *bad = "[{\"text\": \"a\"}, 7]";
    assert_int_equal(qr_import_parse_json_array(bad, strlen(bad), NULL, &imp, err, sizeof err),
                     QR_EINVAL);
    assert_string_equal(err, "task 2: a task must be a JSON object");
    assert_int_equal(qr_import_parse_json_array("[]", 2, NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_string_equal(err, "the array holds no task");
    assert_int_equal(qr_import_parse_json_array("[1,", 3, NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_int_equal(strncmp(err, "line 1:", 7), 0);
}

static char *many(int n, const char *(*genre)(int))
{
    qr_buf_t b;
    qr_buf_init(&b);
    for (int i = 0; i < n; i++)
        qr_buf_appendf(&b, "{\"i\": %d, \"genre\": \"%s\"}\n", i, genre ? genre(i) : "x");
    return qr_buf_steal(&b);
}

static void test_overlap_draw_is_exact(void **state)
{
    qr_import_policy_t pol = policy("sequential");
    pol.overlap_fraction = 0.1;
    char *body = many(1000, NULL);
    char *rows = rows_for(body, &pol, NULL);
    int overlap = 0, three = 0;
    char buf[64];
    for (int i = 0; i < 1000; i++) {
        overlap += !strcmp(field(rows, i, 5, buf, sizeof buf), "t");
        three += !strcmp(field(rows, i, 3, buf, sizeof buf), "3");
    }
    assert_int_equal(overlap, 100); /* exactly 10 %, not about */
    assert_int_equal(three, 100);
    free(rows);
    /* overlap_first: every overlap task is ahead of every other. */
    pol.overlap_first = 1;
    rows = rows_for(body, &pol, NULL);
    double max_overlap = -INFINITY, min_other = INFINITY;
    for (int i = 0; i < 1000; i++) {
        double pr = strtod(field(rows, i, 4, buf, sizeof buf), NULL);
        if (!strcmp(field(rows, i, 5, buf, sizeof buf), "t"))
            max_overlap = pr > max_overlap ? pr : max_overlap;
        else
            min_other = pr < min_other ? pr : min_other;
    }
    assert_true(max_overlap < min_other);
    free(rows);
    free(body);
}

static void test_random_order(void **state)
{
    qr_import_policy_t pol = policy("random");
    char *body = many(500, NULL);
    char *rows = rows_for(body, &pol, NULL);
    char buf[64];
    int inversions = 0;
    double prev = -1;
    for (int i = 0; i < 500; i++) {
        double pr = strtod(field(rows, i, 4, buf, sizeof buf), NULL);
        assert_true(pr >= 0 && pr < 1);
        inversions += pr < prev;
        prev = pr;
    }
    assert_in_range(inversions, 150, 350); /* about half: not import order */
    free(rows);
    free(body);
}

static const char *skewed(int i)
{
    return i % 4 == 0 ? "rare" : "common"; /* 25 % / 75 % */
}

static int by_priority(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorted priorities of a stratified batch; rare[i] tells the stratum. */
static void stratified(const qr_strata_t *prior, double pr[400][2])
{
    qr_import_policy_t pol = policy("stratified");
    char *body = many(400, skewed);
    char *rows = rows_for(body, &pol, prior);
    char buf[64];
    for (int i = 0; i < 400; i++) {
        pr[i][0] = strtod(field(rows, i, 4, buf, sizeof buf), NULL);
        pr[i][1] = !strcmp(field(rows, i, 9, buf, sizeof buf), "rare");
    }
    qsort(pr, 400, sizeof pr[0], by_priority);
    free(rows);
    free(body);
}

static void test_stratified_follows_distribution(void **state)
{
    double pr[400][2];
    stratified(NULL, pr);
    /* Every prefix of the queue holds the strata in proportion (25 % rare). */
    int rare = 0;
    for (int i = 0; i < 400; i++) {
        rare += (int)pr[i][1];
        if (i % 40 == 39)
            assert_in_range(rare, (i + 1) / 4 - 1, (i + 1) / 4 + 1);
    }
    assert_int_equal(rare, 100);
    assert_true(pr[0][0] > 0 && pr[399][0] < 1);

    /* 100 rare tasks came in an earlier import: this batch's rare tasks
     * continue that stratum's ranks (100..199 of 200), so they sit in the
     * second half of the queue, behind the earlier ones. */
    char *names[] = {"rare"};
    int64_t counts[] = {100};
    qr_strata_t prior = {names, counts, 1};
    stratified(&prior, pr);
    for (int i = 0; i < 400; i++)
        if (pr[i][1] > 0)
            assert_true(pr[i][0] > 0.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_columns),
        cmocka_unit_test(test_label_studio_predictions),
        cmocka_unit_test(test_copy_escaping),
        cmocka_unit_test(test_bad_lines_are_named),
        cmocka_unit_test(test_csv_tasks),
        cmocka_unit_test(test_csv_errors_name_the_line),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_overlap_draw_is_exact),
        cmocka_unit_test(test_random_order),
        cmocka_unit_test(test_stratified_follows_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
