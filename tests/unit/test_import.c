/*
 * test_import.c - the importers (JSONL, JSON array, CSV): task shapes, predictions and
 * gold answers, COPY escaping, every malformed line named by its number, and
 * the overlap draw and sampling priorities written into the rows.
 */
#include "testlib.h"

#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "label_schema.h"

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
                        "\t0.25\tx\t\\N\t\\N\t\\N\t\\N\n"
                        "102\t7\t{\"text\":\"b\",\"k\":1}\t1\t102\tf\t\\N\t\\N\t\\N\t\\N"
                        "\t\\N\t\\N\t\\N\n");
    free(rows);
}

/* A row's top-level "external_id" is the task's, out of the data when the
 * row is the data; the import id is on every row; a duplicate within the
 * body, or a bad value, is an error naming where. */
static void test_external_ids(void **state)
{
    qr_import_policy_t pol = policy("sequential");
    pol.import_id = 9;
    char *rows = rows_for("{\"data\": {\"t\": 1}, \"external_id\": \"doc-1\"}\n"
                          "{\"t\": 2, \"external_id\": 17}\n"
                          "{\"t\": 3}\n",
                          &pol, NULL);
    char buf[64];
    assert_string_equal(field(rows, 0, 2, buf, sizeof buf), "{\"t\":1}");
    assert_string_equal(field(rows, 0, 10, buf, sizeof buf), "9");
    assert_string_equal(field(rows, 0, 11, buf, sizeof buf), "doc-1");
    assert_string_equal(field(rows, 1, 2, buf, sizeof buf), "{\"t\":2}");
    assert_string_equal(field(rows, 1, 11, buf, sizeof buf), "17");
    assert_string_equal(field(rows, 2, 11, buf, sizeof buf), "\\N");
    free(rows);

    qr_import_t imp;
    char err[256] = "";
    const char *dup =
        "{\"external_id\": \"a\"}\n{\"external_id\": \"b\"}\n\n{\"external_id\": \"a\"}\n";
    assert_int_equal(qr_import_parse(dup, strlen(dup), NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_string_equal(err, "line 4: external_id \"a\" is also on line 1; each task's "
                             "external_id must be unique");
    assert_int_equal(imp.n, 0);
    const char *bad = "{\"external_id\": \"\"}\n";
    assert_int_equal(qr_import_parse(bad, strlen(bad), NULL, &imp, err, sizeof err),
                     QR_IMPORT_EREJECT);
    assert_non_null(strstr(err, "line 1: field \"external_id\": an external id must be"));
    const char *csv = "external_id,text\nx1,hello\n,no id\nx1,again\n";
    assert_int_equal(qr_import_parse_csv(csv, strlen(csv), NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_string_equal(err, "line 4: external_id \"x1\" is also on line 2; each task's "
                             "external_id must be unique");
    const char *csv_ok = "external_id,text\nx1,hello\n,no id\n";
    assert_int_equal(qr_import_parse_csv(csv_ok, strlen(csv_ok), NULL, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 2);
    assert_string_equal(imp.tasks[0].external_id, "x1");
    assert_string_equal(imp.tasks[0].data, "{\"text\":\"hello\"}");
    assert_null(imp.tasks[1].external_id);
    char *ids = qr_import_external_ids(&imp);
    assert_string_equal(ids, "[\"x1\"]");
    free(ids);
    qr_import_free(&imp);
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
    assert_string_equal(err, "task 2 (line 1): a task must be a JSON object");
    assert_int_equal(qr_import_parse_json_array("[]", 2, NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_string_equal(err, "the array holds no task");
    assert_int_equal(qr_import_parse_json_array("[1,", 3, NULL, &imp, err, sizeof err), QR_EINVAL);
    assert_string_equal(err, "task 1 (line 1): a task must be a JSON object");
}

/* Parses body (format f) under the labels pos, neg: must break a rule, with
 * err, fail_line and fail_field as given and nothing kept. */
static void expect_rule(qr_import_format_t f, const char *body, const char *want, int64_t line,
                        const char *field)
{
    static char *labels[] = {"pos", "neg"};
    qr_import_opts_t o = {.labels = labels, .nlabels = 2};
    qr_import_t imp;
    char err[512] = "";
    int rc = qr_import_parse_opts(f, body, strlen(body), &o, NULL, &imp, err, sizeof err);
    if (rc != QR_IMPORT_EREJECT || strcmp(err, want))
        fail_msg("%s: rc %d, \"%s\", want \"%s\"", body, rc, err, want);
    assert_int_equal(imp.n, 0);
    assert_int_equal(imp.fail_line, line);
    assert_string_equal(imp.fail_field, field);
}

/* Every rule a task can break names its line and field, in every format. */
static void test_rules(void **state)
{
    expect_rule(
        QR_IMPORT_JSONL, "{\"data\": {}, \"gold\": \"pos\"}\n{\"data\": {}, \"gold\": \"POS\"}\n",
        "line 2: field \"gold\": \"POS\" is not one of the project's labels (pos, neg)", 2, "gold");
    expect_rule(QR_IMPORT_JSONL, "{\"data\": {}, \"gold\": 3}\n",
                "line 1: field \"gold\": must be a non-empty string", 1, "gold");
    expect_rule(QR_IMPORT_JSONL, "{\"data\": {}, \"prediction\": {\"label\": \"sarcastic\"}}\n",
                "line 1: field \"prediction.label\": \"sarcastic\" is not one of the project's "
                "labels (pos, neg)",
                1, "prediction.label");
    expect_rule(QR_IMPORT_JSONL, "{\"data\": {}, \"prediction\": {\"score\": 7}}\n",
                "line 1: field \"prediction.score\": score 7 is outside [0, 1]", 1,
                "prediction.score");
    expect_rule(QR_IMPORT_JSONL, "{\"data\": {}, \"prediction\": {\"score\": \"high\"}}\n",
                "line 1: field \"prediction.score\": must be a number in [0, 1]", 1,
                "prediction.score");
    expect_rule(QR_IMPORT_JSON_ARRAY,
                "[{\"id\": 1, \"data\": {}},\n {\"id\": 2, \"data\": {}, \"predictions\": "
                "[{\"score\": -0.5}]}]",
                "task 2 (line 2): field \"predictions[0].score\": score -0.5 is outside [0, 1]", 2,
                "predictions[0].score");
    expect_rule(
        QR_IMPORT_JSON_ARRAY,
        "[{\"data\": {}, \"predictions\": [{\"result\": [{\"type\": \"choices\", "
        "\"value\": {\"choices\": [\"maybe\"]}}]}]}]",
        "task 1 (line 1): field \"predictions[0].result[0].value.choices\": \"maybe\" is not "
        "one of the project's labels (pos, neg)",
        1, "predictions[0].result[0].value.choices");
    expect_rule(QR_IMPORT_JSON_ARRAY,
                "[{\"data\": {}, \"annotations\": [{\"result\": [{\"value\": {\"choices\": "
                "[\"Pos\"]}}]}]}]",
                "task 1 (line 1): field \"annotations[0].result[0].value.choices\": \"Pos\" is not "
                "one of the project's labels (pos, neg)",
                1, "annotations[0].result[0].value.choices");
    expect_rule(QR_IMPORT_JSON_ARRAY,
                "[{\"data\": {}, \"annotations\": [{\"result\": [], \"lead_time\": -1}]}]",
                "task 1 (line 1): field \"annotations[0].lead_time\": must be a number of seconds, "
                "0 or more",
                1, "annotations[0].lead_time");
    expect_rule(
        QR_IMPORT_CSV, "text,gold\na,pos\nb,POSITIVE\n",
        "line 3: field \"gold\": \"POSITIVE\" is not one of the project's labels (pos, neg)", 3,
        "gold");
    expect_rule(QR_IMPORT_CSV, "text;prediction\na;sarcastic\n",
                "line 2: field \"prediction\": \"sarcastic\" is not one of the project's labels "
                "(pos, neg)",
                2, "prediction");
    expect_rule(QR_IMPORT_CSV, "text\tprediction_score\na\t7\n",
                "line 2: field \"prediction_score\": score 7 is outside [0, 1]", 2,
                "prediction_score");
    expect_rule(QR_IMPORT_CSV, "a,prediction_score\nx,high\n",
                "line 2: field \"prediction_score\": \"high\" is not a number in [0, 1]", 2,
                "prediction_score");
}

/* A Label Studio task: id as the external id, predictions whole (the best
 * scored feeds the prediction), annotations normalized; labels trimmed. */
static void test_label_studio_task(void **state)
{
    static char *labels[] = {"pos", "neg"};
    qr_import_opts_t o = {.labels = labels, .nlabels = 2};
    const char *body =
        "[{\"id\": 101, \"data\": {\"text\": \"t\"}, \"gold\": \" neg \",\n"
        "  \"predictions\": [{\"model_version\": \"a\", \"score\": 0.2, \"result\": "
        "[{\"from_name\": \"s\", \"to_name\": \"text\", \"type\": \"choices\", \"value\": "
        "{\"choices\": [\"neg\"]}}]},\n"
        "                  {\"model_version\": \"b\", \"score\": 0.9, \"result\": [{\"value\": "
        "{\"choices\": [\"pos\"]}}]}],\n"
        "  \"annotations\": [{\"id\": 7, \"completed_by\": 3, \"lead_time\": 2.5, "
        "\"was_cancelled\": false, \"ground_truth\": true, \"created_at\": "
        "\"2024-05-01T12:00:00Z\", \"result\": [{\"value\": {\"choices\": [\"pos\"]}}]}]},\n"
        " {\"id\": \"x-2\", \"data\": {\"text\": \"u\"}, \"annotations\": [{\"completed_by\": "
        "{\"id\": 12, \"email\": \"a@b.c\"}, \"result\": []}, {\"completed_by\": \"bob\", "
        "\"result\": []}]}]";
    qr_import_t imp;
    char err[512] = "";
    int rc = qr_import_parse_opts(QR_IMPORT_JSON_ARRAY, body, strlen(body), &o, NULL, &imp, err,
                                  sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(imp.n, 2);
    assert_int_equal(imp.annotated, 2);
    assert_string_equal(imp.tasks[0].external_id, "101");
    assert_string_equal(imp.tasks[1].external_id, "x-2");
    assert_string_equal(imp.tasks[0].gold, "neg");
    assert_string_equal(imp.tasks[0].prediction,
                        "{\"label\":\"pos\",\"score\":0.9,\"model_version\":\"b\"}");
    assert_true(imp.tasks[0].score == 0.9);
    assert_non_null(strstr(imp.tasks[0].predictions, "\"model_version\":\"a\""));
    assert_string_equal(imp.tasks[0].annotations,
                        "[{\"label\":\"pos\",\"result\":[{\"value\":{\"choices\":[\"pos\"]}}],"
                        "\"lead_time\":2.5,\"was_cancelled\":false,\"ground_truth\":true,"
                        "\"source_id\":\"7\",\"created_at\":\"2024-05-01T12:00:00Z\","
                        "\"completed_by\":3}]");
    /* completed_by as an object (some Label Studio exports): its id; a
     * name is not an id and is not kept. */
    assert_non_null(strstr(imp.tasks[1].annotations, "\"completed_by\":12}"));
    assert_non_null(strstr(imp.tasks[1].annotations, "\"completed_by\":null}"));
    assert_null(imp.tasks[1].predictions);
    qr_import_free(&imp);

    /* Quorum's own Label Studio export: "id" is Quorum's task id there and
     * meta.external_id the source's, which wins; a bad one is named. */
    const char *again = "[{\"id\": 5, \"data\": {\"t\": 1}, \"meta\": {\"quorum_task_id\": 5, "
                        "\"external_id\": \"101\"}},\n"
                        " {\"id\": 6, \"data\": {\"t\": 2}, \"meta\": {\"external_id\": null}}]";
    assert_int_equal(qr_import_parse_opts(QR_IMPORT_JSON_ARRAY, again, strlen(again), &o, NULL,
                                          &imp, err, sizeof err),
                     0);
    assert_string_equal(imp.tasks[0].external_id, "101");
    assert_string_equal(imp.tasks[1].external_id, "6");
    qr_import_free(&imp);
    const char *bad_meta = "[{\"id\": 5, \"data\": {}, \"meta\": {\"external_id\": true}}]";
    assert_int_equal(qr_import_parse_opts(QR_IMPORT_JSON_ARRAY, bad_meta, strlen(bad_meta), &o,
                                          NULL, &imp, err, sizeof err),
                     QR_IMPORT_EREJECT);
    assert_non_null(strstr(err, "field \"meta.external_id\""));

    /* A chosen key: the external id comes from the data and stays in it. */
    o.external_id_key = "doc";
    const char *jl = "{\"doc\": \"d1\", \"text\": \"a\"}\n{\"text\": \"b\"}\n";
    assert_int_equal(
        qr_import_parse_opts(QR_IMPORT_JSONL, jl, strlen(jl), &o, NULL, &imp, err, sizeof err),
        QR_IMPORT_EREJECT);
    assert_string_equal(err, "line 2: field \"doc\": is missing (the external id key)");
    jl = "{\"doc\": \"d1\", \"text\": \"a\"}\n";
    assert_int_equal(
        qr_import_parse_opts(QR_IMPORT_JSONL, jl, strlen(jl), &o, NULL, &imp, err, sizeof err), 0);
    assert_string_equal(imp.tasks[0].external_id, "d1");
    assert_string_equal(imp.tasks[0].data, "{\"doc\":\"d1\",\"text\":\"a\"}");
    qr_import_free(&imp);
    const char *c = "doc,text\nd9,hello\n";
    assert_int_equal(
        qr_import_parse_opts(QR_IMPORT_CSV, c, strlen(c), &o, NULL, &imp, err, sizeof err), 0);
    assert_string_equal(imp.tasks[0].external_id, "d9");
    assert_string_equal(imp.tasks[0].data, "{\"doc\":\"d9\",\"text\":\"hello\"}");
    qr_import_free(&imp);
}

/* The delimiter comes from the header line, outside quotes. */
static void test_delimiter_detection(void **state)
{
    assert_int_equal(qr_import_detect_delimiter("a,b,c\n1;2\n", 11), ',');
    assert_int_equal(qr_import_detect_delimiter("text;source\nx,y;z\n", 19), ';');
    assert_int_equal(qr_import_detect_delimiter("a\tb\n", 4), '\t');
    assert_int_equal(qr_import_detect_delimiter("\"a;b\",c\n", 8), ',');
    assert_int_equal(qr_import_detect_delimiter("a|b|c\n", 6), '|');
    assert_int_equal(qr_import_detect_delimiter("text\n", 5), ',');
    qr_import_opts_t o = {0};
    qr_import_t imp;
    char err[256];
    const char *semi = "text;source\n\"a; b\";web\n";
    assert_int_equal(
        qr_import_parse_opts(QR_IMPORT_CSV, semi, strlen(semi), &o, NULL, &imp, err, sizeof err),
        0);
    assert_string_equal(imp.tasks[0].data, "{\"text\":\"a; b\",\"source\":\"web\"}");
    qr_import_free(&imp);
    o.delimiter = ',';
    semi = "text;source\na;web\n";
    assert_int_equal(
        qr_import_parse_opts(QR_IMPORT_CSV, semi, strlen(semi), &o, NULL, &imp, err, sizeof err),
        0);
    assert_string_equal(imp.tasks[0].data, "{\"text;source\":\"a;web\"}");
    qr_import_free(&imp);
    assert_true(qr_import_looks_delimited("text,source\n", 12));
    assert_false(qr_import_looks_delimited("{\"a\": 1}\n", 9));
    const char *csvish = "text,source\nhi,web\n";
    assert_int_equal(qr_import_parse(csvish, strlen(csvish), NULL, &imp, err, sizeof err),
                     QR_EINVAL);
    assert_non_null(strstr(err, "looks like a CSV/TSV header"));
}

/* Parses a JSON array that must succeed with n tasks; returns the import. */
static qr_import_t array_ok(const char *body, int64_t n)
{
    qr_import_t imp;
    char err[512] = "";
    int rc = qr_import_parse_json_array(body, strlen(body), NULL, &imp, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: %s", body, err);
    assert_int_equal(imp.n, n);
    return imp;
}

static void expect_array_error(const char *body, const char *want)
{
    qr_import_t imp;
    char err[512] = "";
    assert_int_equal(qr_import_parse_json_array(body, strlen(body), NULL, &imp, err, sizeof err),
                     QR_EINVAL);
    assert_int_equal(imp.n, 0);
    assert_null(imp.tasks);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s: got \"%s\", want \"%s...\"", body, err, want);
}

/* The array is walked one element at a time: the walker must find each
 * element's end through nesting, strings holding brackets, commas and
 * escaped quotes, and any whitespace, and refuse what is not one array. */
static void test_json_array_walker(void **state)
{
    qr_import_t imp = array_ok("[{\"a\": [1, [2, {\"b\": [3]}]], \"c\": {\"d\": {}}},"
                               " {\"data\": {\"e\": [[[]]]}}]",
                               2);
    assert_string_equal(imp.tasks[0].data, "{\"a\":[1,[2,{\"b\":[3]}]],\"c\":{\"d\":{}}}");
    assert_string_equal(imp.tasks[1].data, "{\"e\":[[[]]]}");
    qr_import_free(&imp);

    imp = array_ok("[{\"t\": \"a ] b, } [ { \\\" ], \\\\\"}, {\"u\": \"\\\\\", \"v\": \"]\"}]", 2);
    assert_string_equal(imp.tasks[0].data, "{\"t\":\"a ] b, } [ { \\\" ], \\\\\"}");
    assert_string_equal(imp.tasks[1].data, "{\"u\":\"\\\\\",\"v\":\"]\"}");
    qr_import_free(&imp);

    imp = array_ok("\n\t [ \r\n {\"a\":1} \n ,\n\n {\"b\":2}\n ] \n", 2);
    assert_string_equal(imp.tasks[1].data, "{\"b\":2}");
    qr_import_free(&imp);
    imp = array_ok("[{}]", 1);
    qr_import_free(&imp);

    expect_array_error("[]", "the array holds no task");
    expect_array_error(" [ \n ] ", "the array holds no task");
    expect_array_error("", "the body must be a JSON array of tasks");
    expect_array_error("{}", "the body must be a JSON array of tasks");
    expect_array_error("[{}] x", "line 1: text after the array's closing ']'");
    expect_array_error("[{}]\n]", "line 2: text after the array's closing ']'");
    expect_array_error("[{}", "line 1: the array is not closed after task 1");
    expect_array_error("[{},\n", "task 2 (line 2): the array is not closed");
    expect_array_error("[{\"a\": \"b]", "task 1 (line 1):");
    expect_array_error("[{\"a\": [}]", "task 1 (line 1):");
    expect_array_error("[{]}", "task 1 (line 1):");
    expect_array_error("[{},]", "task 2 (line 1): a task is missing here");
    expect_array_error("[,{}]", "task 1 (line 1): a task is missing here");
    expect_array_error("[{} {}]", "task 1 (line 1):");
    expect_array_error("[{}\n{}]", "task 1 (line 1):");
    expect_array_error("[{}\n}", "line 2: expected ',' or ']' after task 1");
    expect_array_error("[{},\n{},\n{oops}]", "task 3 (line 3):");
    expect_array_error("[{},\n{\"a\":1,\n\"a\":2}]", "task 2 (line 2):");
    expect_array_error("[{}, \"x\"]", "task 2 (line 1): a task must be a JSON object");
    expect_array_error("[{\"data\": 5}]", "task 1 (line 1): \"data\" must be a JSON object");
    expect_array_error("[{\"a\":\"\\u0000\"}]", "task 1 (line 1):");
}

/* --- the budget and the cap ------------------------------------------------ */

/* jansson's allocations, counted by the bytes the allocator hands out. */
static size_t json_live, json_peak;

static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    if (p) {
        json_live += malloc_usable_size(p);
        if (json_live > json_peak)
            json_peak = json_live;
    }
    return p;
}

static void counting_free(void *p)
{
    if (p)
        json_live -= malloc_usable_size(p);
    free(p);
}

/* Parses body under limits with jansson's memory counted; returns rc. */
static int bounded(qr_import_format_t f, const char *body, size_t max_bytes, int64_t max_tasks,
                   qr_import_t *imp, char *err, size_t errlen)
{
    qr_import_limits_t lim = {max_bytes, max_tasks};
    json_live = json_peak = 0;
    json_set_alloc_funcs(counting_malloc, counting_free);
    int rc = qr_import_parse_bounded(f, body, strlen(body), "genre", &lim, imp, err, errlen);
    json_set_alloc_funcs(malloc, free);
    return rc;
}

/* The finding: a large JSON array of {} is refused while parsing, once the
 * budget is reached, not after: neither the parse's own count nor what
 * jansson really allocated ever passes the budget. */
static void test_budget_refuses_while_parsing(void **state)
{
    const size_t budget = 1u << 20;
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "[");
    for (int i = 0; i < 50000; i++)
        qr_buf_appends(&b, i ? ",{}" : "{}");
    qr_buf_appends(&b, "]");
    char *body = qr_buf_steal(&b);
    qr_import_t imp;
    char err[512] = "";
    assert_int_equal(bounded(QR_IMPORT_JSON_ARRAY, body, budget, 0, &imp, err, sizeof err),
                     QR_ETOOBIG);
    assert_int_equal(imp.n, 0);
    assert_null(imp.tasks);
    assert_non_null(strstr(err, "split it into several imports"));
    assert_int_equal(strncmp(err, "task ", 5), 0);
    long at = strtol(err + 5, NULL, 10);
    assert_in_range(at, 1000, 49999); /* stopped early, where the budget ran out */
    assert_true(imp.peak_bytes <= budget);
    assert_true(imp.peak_bytes > budget / 2);
    assert_true(json_peak <= budget); /* the tasks' strings and one element's tree */

    /* The same tasks fit a larger budget, and the count stays under it. */
    assert_int_equal(bounded(QR_IMPORT_JSON_ARRAY, body, 64u << 20, 0, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 50000);
    assert_true(imp.bytes <= imp.peak_bytes && imp.peak_bytes <= 64u << 20);
    qr_import_free(&imp);
    free(body);

    /* One element alone over the budget is refused before jansson sees it. */
    qr_buf_init(&b);
    qr_buf_appends(&b, "[{\"x\": [");
    for (int i = 0; i < 100000; i++)
        qr_buf_appends(&b, i ? ",[]" : "[]");
    qr_buf_appends(&b, "]}]");
    body = qr_buf_steal(&b);
    assert_int_equal(bounded(QR_IMPORT_JSON_ARRAY, body, budget, 0, &imp, err, sizeof err),
                     QR_ETOOBIG);
    assert_string_equal(strstr(err, "task 1 (line 1): ") ? "ok" : err, "ok");
    assert_true(json_peak < 4096);
    /* ... and as a JSON line. */
    assert_int_equal(bounded(QR_IMPORT_JSONL, body + 1, budget, 0, &imp, err, sizeof err),
                     QR_ETOOBIG);
    assert_int_equal(strncmp(err, "line 1: ", 8), 0);
    assert_true(json_peak < 4096);
    free(body);

    /* JSONL and CSV count the same way. */
    qr_buf_init(&b);
    for (int i = 0; i < 50000; i++)
        qr_buf_appendf(&b, "{\"i\": %d}\n", i);
    body = qr_buf_steal(&b);
    assert_int_equal(bounded(QR_IMPORT_JSONL, body, budget, 0, &imp, err, sizeof err), QR_ETOOBIG);
    assert_int_equal(strncmp(err, "line ", 5), 0);
    assert_true(imp.peak_bytes <= budget && json_peak <= budget);
    free(body);
    qr_buf_init(&b);
    qr_buf_appends(&b, "text,genre\n");
    for (int i = 0; i < 50000; i++)
        qr_buf_appendf(&b, "t%d,g\n", i);
    body = qr_buf_steal(&b);
    assert_int_equal(bounded(QR_IMPORT_CSV, body, budget, 0, &imp, err, sizeof err), QR_ETOOBIG);
    assert_int_equal(strncmp(err, "line ", 5), 0);
    assert_non_null(strstr(err, "split it into several imports"));
    assert_true(imp.peak_bytes <= budget && json_peak <= budget);
    assert_int_equal(bounded(QR_IMPORT_CSV, body, 64u << 20, 0, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 50000);
    qr_import_free(&imp);
    free(body);
}

/* The task cap is checked while parsing: the parse stops at task cap + 1,
 * before reading further (the broken task after it is never reached). */
static void test_task_cap_while_parsing(void **state)
{
    qr_import_t imp;
    char err[512] = "";
    const char *jsonl = "{}\n{}\n\n{}\n{}\n{oops\n";
    assert_int_equal(bounded(QR_IMPORT_JSONL, jsonl, 0, 3, &imp, err, sizeof err), QR_ETOOBIG);
    assert_string_equal(err,
                        "line 5: more than 3 tasks in one import; split it into several imports");
    assert_int_equal(imp.n, 0);
    assert_int_equal(bounded(QR_IMPORT_JSONL, "{}\n{}\n{}\n", 0, 3, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 3);
    qr_import_free(&imp);

    assert_int_equal(
        bounded(QR_IMPORT_JSON_ARRAY, "[{},{},{},\n{}, oops]", 0, 3, &imp, err, sizeof err),
        QR_ETOOBIG);
    assert_string_equal(err, "task 4 (line 2): more than 3 tasks in one import; split it into "
                             "several imports");
    assert_int_equal(bounded(QR_IMPORT_CSV, "a\n1\n2\n3\n4\n\"open\n", 0, 3, &imp, err, sizeof err),
                     QR_ETOOBIG);
    assert_string_equal(err,
                        "line 5: more than 3 tasks in one import; split it into several imports");
    assert_int_equal(bounded(QR_IMPORT_CSV, "a\n1\n2\n3\n", 0, 3, &imp, err, sizeof err), 0);
    assert_int_equal(imp.n, 3);
    qr_import_free(&imp);
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

/* --- streamed imports (import_stream.c) ----------------------------------------- */

/* Streams body in pieces of chunk bytes (0: all at once) with ids 101,
 * 102, ... handed out a few at a time (so that batches also stop for want
 * of ids); returns rc, the rows in *rows (heap) and the error in err. */
static int stream_all(qr_import_format_t format, const qr_import_opts_t *opts, const char *body,
                      size_t chunk, char **rows, char *err, size_t errlen, int64_t *fail_line,
                      char *fail_field)
{
    qr_import_policy_t pol = policy("sequential");
    qr_import_stream_t *s = qr_import_stream_new(format, opts, NULL, &pol, 42);
    qr_buf_t out;
    qr_buf_init(&out);
    size_t len = strlen(body), off = 0;
    int64_t next = 101;
    int rc;
    err[0] = '\0';
    for (;;) {
        size_t n = chunk && chunk < len - off ? chunk : len - off;
        int last = off + n == len;
        int64_t ids[3] = {next, next + 1, next + 2};
        size_t used = 0;
        rc = qr_import_stream_batch(s, body + off, n, last, ids, 3, &used, &out, err, errlen);
        next += (int64_t)used;
        off += n;
        for (size_t more = 3; rc == 1; more *= 2) { /* more ids, the same batch */
            int64_t *m = calloc(more, sizeof *m);
            for (size_t k = 0; k < more; k++)
                m[k] = next + (int64_t)k;
            rc = qr_import_stream_batch(s, NULL, 0, last, m, more, &used, &out, err, errlen);
            next += (int64_t)used;
            free(m);
        }
        if (rc < 0 || last)
            break;
    }
    if (rc == 0) {
        assert_int_equal(s->tasks, next - 101);
        char sha[65];
        qr_sha256_hex(body, len, sha);
        assert_string_equal(s->sha256, sha);
    }
    *fail_line = s->fail_line;
    snprintf(fail_field, 96, "%s", s->fail_field);
    qr_import_stream_free(s);
    *rows = qr_buf_steal(&out);
    return rc;
}

/* Streams body in each of the chunk sizes and checks it says what the
 * whole-body parse says: the same rows, or the same error, line and field. */
static void same_as_whole_body(qr_import_format_t format, const qr_import_opts_t *opts,
                               const char *body, const size_t *chunks, size_t nchunks)
{
    qr_import_t imp;
    char want_err[512] = "";
    int want = qr_import_parse_opts(format, body, strlen(body), opts, NULL, &imp, want_err,
                                    sizeof want_err);
    char *want_rows = NULL;
    if (want == 0) {
        int64_t *ids = calloc((size_t)imp.n, sizeof *ids);
        for (int64_t k = 0; k < imp.n; k++)
            ids[k] = 101 + k;
        qr_buf_t out;
        qr_buf_init(&out);
        qr_import_policy_t pol = policy("sequential");
        qr_import_rows(&imp, ids, &pol, NULL, 42, &out);
        want_rows = qr_buf_steal(&out);
        free(ids);
    }
    for (size_t k = 0; k < nchunks; k++) {
        char *rows, err[512], field[96];
        int64_t line;
        int rc = stream_all(format, opts, body, chunks[k], &rows, err, sizeof err, &line, field);
        if ((rc < 0) != (want < 0) || (want < 0 && (rc != want || strcmp(err, want_err))))
            fail_msg("\"%s\", chunks of %zu: %d \"%s\", want %d \"%s\"", body, chunks[k], rc, err,
                     want, want_err);
        if (want < 0 && (line != imp.fail_line || strcmp(field, imp.fail_field)))
            fail_msg("\"%s\", chunks of %zu: line %lld field \"%s\", want %lld \"%s\"", body,
                     chunks[k], (long long)line, field, (long long)imp.fail_line, imp.fail_field);
        if (want == 0 && strcmp(rows, want_rows ? want_rows : ""))
            fail_msg("\"%s\", chunks of %zu: rows differ:\n%s\nwant\n%s", body, chunks[k], rows,
                     want_rows);
        free(rows);
    }
    free(want_rows);
    qr_import_free(&imp);
}

/* A stream says what the whole-body parse says, whatever the pieces: the
 * same rows for a good body, the same words for a bad one. */
static void test_stream_matches_whole_body(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"text\": \"a\"}\n{\"data\": {\"t\": \"b\\n\\\\\", \"genre\": \"x\"}, \"gold\": \"g\"}\n",
        "\n\n{\"a\": 1}\r\n  \n{\"b\": [1, {\"c\": \"]\"}]}",
        "{\"data\": {\"q\": 1}, \"prediction\": {\"label\": \"p\", \"score\": 0.25}}\n",
        "{\"text\": \"x1\", \"external_id\": \"e1\"}\n{\"text\": \"x2\", \"external_id\": 7}\n",
        "[{\"a\": [1, [2, {\"b\": [3]}]], \"c\": {\"d\": {}}}, {\"data\": {\"e\": [[[]]]}}]",
        "[{\"t\": \"a ] b, } [ { \\\" ], \\\\\"}, {\"u\": \"\\\\\", \"v\": \"]\"}]",
        "\n\t [ \r\n {\"a\":1} \n ,\n\n {\"b\":2}\n ] \n",
        "[{}]",
        /* bad ones */
        "",
        "  \n ",
        "{\"a\": 1}\n{oops}\n",
        "{\"a\": 1}\n\n[1]\n",
        "{\"data\": 5}",
        "text,source\nhello,web\n",
        "{\"text\": \"z1\", \"external_id\": \"a9\"}\n{}\n{\"external_id\": \"a9\"}\n",
        "[]",
        " [ \n ] ",
        "[{}] x",
        "[{}]\n]",
        "[{}",
        "[{},\n",
        "[{\"a\": \"b]",
        "[{\"a\": [}]",
        "[{]}",
        "[{},]",
        "[,{}]",
        "[{} {}]",
        "[{}\n{}]",
        "[{}\n}",
        "[{},\n{},\n{oops}]",
        "[{},\n{\"a\":1,\n\"a\":2}]",
        "[{}, \"x\"]",
        "[{\"data\": 5}]",
        "[{\"a\":\"\\u0000\"}]",
        "[{\"external_id\": 1}, {\"external_id\": \"1\"}]",
    };
    static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 64};
    qr_import_opts_t json_opts = {.stratify_field = "genre"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        same_as_whole_body(QR_IMPORT_JSON_ANY, &json_opts, bodies[i], chunks,
                           sizeof chunks / sizeof *chunks);
    static char *const labels[] = {"pos", "neg"};
    qr_import_opts_t csv_opts = {.stratify_field = "genre", .labels = labels, .nlabels = 2};
    static const char *const csv[] = {
        "text,genre\nhello,x\n\"a, \"\"quoted\"\"\nline\",y\n",
        "\xef\xbb\xbftext;prediction;prediction_score;gold\r\nhi;pos;0.5; neg \r\nho;;;\r\n",
        "text\thow\na\tb\n\nc\td",
        "external_id,text\nc1,hello\nc2,world\n",
        "text|n\n\"x|y\"|1\n",
        /* bad ones */
        "",
        "\n\n",
        "text,genre\n",
        "text,genre\nhello\n",
        "text,text\nhello,x\n",
        "text,\nhello,x\n",
        "text,gold\nhi,maybe\n",
        "text,prediction_score\nhi,7\n",
        "text\n\"open\n",
        "text\nab\"c\n",
        "text\na\xff\n",
        "external_id,text\nc1,a\nc2,b\nc1,c\n",
    };
    for (size_t i = 0; i < sizeof csv / sizeof *csv; i++)
        same_as_whole_body(QR_IMPORT_CSV, &csv_opts, csv[i], chunks,
                           sizeof chunks / sizeof *chunks);
    qr_import_opts_t key_opts = {.external_id_key = "ref"};
    same_as_whole_body(QR_IMPORT_CSV, &key_opts, "text,id\na,1\n", chunks, 1);
}

/* A stream holds an unfinished task and what the end needs, not the body:
 * the cap and the budget refuse while it streams. */
static void test_stream_limits(void **state)
{
    (void)state;
    qr_import_policy_t pol = policy("sequential");
    qr_import_limits_t lim = {.max_bytes = 0, .max_tasks = 2};
    qr_import_stream_t *s = qr_import_stream_new(QR_IMPORT_JSON_ANY, NULL, &lim, &pol, 1);
    qr_buf_t out;
    qr_buf_init(&out);
    int64_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t used;
    char err[512];
    const char *body = "{}\n{}\n{}\n";
    assert_int_equal(
        qr_import_stream_batch(s, body, strlen(body), 0, ids, 8, &used, &out, err, sizeof err),
        QR_ETOOBIG);
    assert_string_equal(err, "line 3: more than 2 tasks in one import; split it into several "
                             "imports");
    qr_import_stream_free(s);
    qr_buf_reset(&out);

    /* 10,000 small tasks through a 64 KiB budget: nothing accumulates. */
    lim = (qr_import_limits_t){.max_bytes = 64 << 10, .max_tasks = 0};
    s = qr_import_stream_new(QR_IMPORT_JSON_ANY, NULL, &lim, &pol, 1);
    int64_t id = 1;
    for (int i = 0; i < 100; i++) {
        char chunk[4096];
        size_t n = 0;
        for (int k = 0; k < 100; k++)
            n += (size_t)snprintf(chunk + n, sizeof chunk - n, "{\"i\": %d}\n", i * 100 + k);
        int64_t block[100];
        for (int k = 0; k < 100; k++)
            block[k] = id + k;
        assert_int_equal(
            qr_import_stream_batch(s, chunk, n, i == 99, block, 100, &used, &out, err, sizeof err),
            0);
        id += (int64_t)used;
        qr_buf_reset(&out);
    }
    assert_int_equal(s->tasks, 10000);
    assert_int_equal(s->last_id, 10000);
    qr_import_stream_free(s);

    /* One line larger than the budget: refused before it ends. */
    s = qr_import_stream_new(QR_IMPORT_JSON_ANY, NULL, &lim, &pol, 1);
    char *big = malloc(70 << 10);
    memset(big, ' ', 70 << 10);
    big[0] = '{';
    assert_int_equal(
        qr_import_stream_batch(s, big, 70 << 10, 0, ids, 8, &used, &out, err, sizeof err),
        QR_ETOOBIG);
    assert_non_null(strstr(err, "line 1: the import is larger than the broker holds at once"));
    free(big);
    qr_import_stream_free(s);
    qr_buf_free(&out);
}

/* --- label schema projects (issue 15) ------------------------------------------------- */

static qr_import_schema_t *schema_of(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    qr_label_schema_t *s;
    qr_label_error_t e;
    if (qr_label_schema_parse(j, &s, &e) < 0)
        fail_msg("%s", e.message);
    json_decref(j);
    qr_import_schema_t *is = qr_import_schema_new(s);
    qr_label_schema_free(s); /* the import keeps its own copies */
    return is;
}

static const char schema_text[] =
    "{\"fields\": [{\"name\": \"sentiment\", \"type\": \"choice\", \"choices\": [\"pos\", "
    "\"neg\"]},"
    " {\"name\": \"tags\", \"type\": \"multi_choice\", \"choices\": [\"a\", \"b\", \"c\"]},"
    " {\"name\": \"ents\", \"type\": \"spans\", \"over\": \"text\", \"labels\": [\"ORG\"],"
    "  \"required\": false}]}";

/* Gold answers, predictions and Label Studio annotations of a schema
 * project become canonical labels objects, span ends checked against the
 * task's text in code points (Label Studio's UTF-16 offsets converted). */
static void test_schema_labels(void **state)
{
    (void)state;
    qr_import_schema_t *sch = schema_of(schema_text);
    qr_import_opts_t o = {.schema = sch};
    /* "\xf0\x9f\x98\x80" (an emoji) is one code point and two UTF-16 units. */
    const char *body =
        "{\"data\": {\"text\": \"\xf0\x9f\x98\x80 Acme\"}, \"gold\": {\"tags\": [\"c\", \"a\"], "
        "\"ents\": [{\"start\": 2, \"end\": 6, \"label\": \"ORG\"}], \"sentiment\": \"pos\"}, "
        "\"predictions\": [{\"score\": 0.7, \"result\": [{\"from_name\": \"tags\", \"type\": "
        "\"choices\", \"value\": {\"choices\": [\"b\"]}}]}], "
        "\"annotations\": [{\"id\": 4, \"result\": [{\"from_name\": \"sentiment\", \"type\": "
        "\"choices\", \"value\": {\"choices\": [\"neg\"]}}, {\"from_name\": \"tags\", \"type\": "
        "\"choices\", \"value\": {\"choices\": []}}, {\"type\": \"labels\", \"value\": {\"start\": "
        "3, \"end\": 7, \"labels\": [\"ORG\"]}}]}, {\"was_cancelled\": true, \"result\": []}]}\n";
    qr_import_t imp;
    char err[512] = "";
    if (qr_import_parse_opts(QR_IMPORT_JSONL, body, strlen(body), &o, NULL, &imp, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(imp.n, 1);
    assert_string_equal(imp.tasks[0].gold, "{\"sentiment\":\"pos\",\"tags\":[\"a\",\"c\"],\"ents\":"
                                           "[{\"start\":2,\"end\":6,\"label\":\"ORG\"}]}");
    /* A prediction need not fill every field. */
    assert_string_equal(imp.tasks[0].prediction, "{\"labels\":{\"tags\":[\"b\"]},\"score\":0.7}");
    json_t *anns = json_loads(imp.tasks[0].annotations, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(anns, 0), "label")),
                        "{\"sentiment\":\"neg\",\"tags\":[],\"ents\":[{\"start\":2,\"end\":6,"
                        "\"label\":\"ORG\"}]}");
    assert_true(json_is_null(json_object_get(json_array_get(anns, 1), "label")));
    json_decref(anns);
    qr_import_free(&imp);

    /* Refusals name the field; nothing is kept. */
    static const struct {
        const char *body, *field, *why;
    } bad[] = {
        {"{\"data\": {\"text\": \"abc\"}, \"gold\": {\"sentiment\": \"pos\", \"tags\": [], "
         "\"ents\": "
         "[{\"start\": 1, \"end\": 4, \"label\": \"ORG\"}]}}",
         "gold", "ents: span 0"},
        {"{\"data\": {\"text\": \"abc\"}, \"gold\": {\"sentiment\": \"pos\"}}", "gold",
         "tags: required"},
        {"{\"data\": {\"text\": \"abc\"}, \"gold\": 3}", "gold", "must be a labels object"},
        {"{\"data\": {\"text\": \"abc\"}, \"prediction\": {\"label\": \"pos\"}}",
         "prediction.label", "labels: this project's schema has 3 fields"},
        {"{\"data\": {\"text\": \"abc\"}, \"annotations\": [{\"result\": [{\"type\": \"rating\", "
         "\"value\": {\"rating\": 3}}]}]}",
         "annotations[0].result", "result[0]"},
        {"{\"data\": {\"text\": \"abc\"}, \"predictions\": [{\"result\": [{\"from_name\": "
         "\"tags\", "
         "\"type\": \"choices\", \"value\": {\"choices\": [\"z\"]}}]}]}",
         "predictions[0].result", "tags: \"z\""},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int rc = qr_import_parse_opts(QR_IMPORT_JSONL, bad[k].body, strlen(bad[k].body), &o, NULL,
                                      &imp, err, sizeof err);
        if (rc != QR_IMPORT_EREJECT || strcmp(imp.fail_field, bad[k].field) ||
            !strstr(err, bad[k].why))
            fail_msg("case %zu: rc %d field \"%s\": %s", k, rc, imp.fail_field, err);
        assert_int_equal(imp.n, 0);
        qr_import_free(&imp);
    }

    /* CSV: a gold cell is a labels object's JSON, checked once the whole
     * row (the text after it too) is read; a bare label is no object. */
    const char *csv = "gold,text\n\"{\"\"sentiment\"\": \"\"neg\"\", \"\"tags\"\": [\"\"b\"\"], "
                      "\"\"ents\"\": [{\"\"start\"\": 0, \"\"end\"\": 3, \"\"label\"\": "
                      "\"\"ORG\"\"}]}\",abc\n";
    if (qr_import_parse_opts(QR_IMPORT_CSV, csv, strlen(csv), &o, NULL, &imp, err, sizeof err))
        fail_msg("%s", err);
    assert_string_equal(imp.tasks[0].gold, "{\"sentiment\":\"neg\",\"tags\":[\"b\"],\"ents\":"
                                           "[{\"start\":0,\"end\":3,\"label\":\"ORG\"}]}");
    qr_import_free(&imp);
    const char *csv_bad = "text,gold\nab,pos\n";
    assert_int_equal(qr_import_parse_opts(QR_IMPORT_CSV, csv_bad, strlen(csv_bad), &o, NULL, &imp,
                                          err, sizeof err),
                     QR_IMPORT_EREJECT);
    assert_string_equal(imp.fail_field, "gold");
    qr_import_free(&imp);

    /* Streamed, in any pieces: what the whole-body parse says. */
    static const size_t chunks[] = {0, 1, 5, 64};
    same_as_whole_body(QR_IMPORT_JSON_ANY, &o, body, chunks, 4);
    same_as_whole_body(QR_IMPORT_CSV, &o, csv, chunks, 4);
    same_as_whole_body(QR_IMPORT_CSV, &o, csv_bad, chunks, 4);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        same_as_whole_body(QR_IMPORT_JSON_ANY, &o, bad[k].body, chunks, 4);
    qr_import_schema_free(sch);

    /* A plain project's implied schema is no schema for an import. */
    const char *const labels[] = {"x"};
    qr_label_schema_t *implied = qr_label_schema_implied(labels, 1);
    assert_null(qr_import_schema_new(implied));
    assert_null(qr_import_schema_new(NULL));
    qr_label_schema_free(implied);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_columns),
        cmocka_unit_test(test_external_ids),
        cmocka_unit_test(test_label_studio_predictions),
        cmocka_unit_test(test_copy_escaping),
        cmocka_unit_test(test_bad_lines_are_named),
        cmocka_unit_test(test_csv_tasks),
        cmocka_unit_test(test_csv_errors_name_the_line),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_label_studio_task),
        cmocka_unit_test(test_delimiter_detection),
        cmocka_unit_test(test_json_array_walker),
        cmocka_unit_test(test_budget_refuses_while_parsing),
        cmocka_unit_test(test_task_cap_while_parsing),
        cmocka_unit_test(test_overlap_draw_is_exact),
        cmocka_unit_test(test_random_order),
        cmocka_unit_test(test_stratified_follows_distribution),
        cmocka_unit_test(test_stream_matches_whole_body),
        cmocka_unit_test(test_stream_limits),
        cmocka_unit_test(test_schema_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
