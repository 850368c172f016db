/*
 * test_ls_result.c - Label Studio results <-> labels objects
 * (common/ls_result.c): every result type one to one, offsets in UTF-16
 * units against code points, and the results that cannot be mapped.
 */
#include "testlib.h"

#include <string.h>

#include "ls_result.h"

static const char *schema_text =
    "[{\"name\":\"sentiment\",\"type\":\"choice\",\"choices\":[\"pos\",\"neg\"]},"
    "{\"name\":\"tags\",\"type\":\"multi_choice\",\"choices\":[\"a\",\"b\",\"c\"]},"
    "{\"name\":\"score\",\"type\":\"rating\",\"min\":1,\"max\":5,\"step\":1},"
    "{\"name\":\"entities\",\"type\":\"spans\",\"over\":\"text\",\"labels\":[\"ORG\",\"PER\"]},"
    "{\"name\":\"objects\",\"type\":\"boxes\",\"over\":\"image\",\"labels\":[\"car\"]},"
    "{\"name\":\"note\",\"type\":\"text\",\"max_length\":500}]";

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    return j;
}

static void assert_json_eq(const json_t *got, const char *want)
{
    json_t *w = load(want);
    if (!json_equal((json_t *)got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("got  %s\nwant %s\n", g, want);
        free(g);
        fail();
    }
    json_decref(w);
}

/* Every type, there and back: a labels object -> result -> the same object. */
static void test_roundtrip(void **state)
{
    (void)state;
    json_t *fields = load(schema_text);
    /* "😀" is one code point and two UTF-16 units: the span after it starts
     * at code point 2 and at UTF-16 unit 3. */
    json_t *data = load("{\"text\":\"\xF0\x9F\x98\x80 Acme hired Bob\",\"image\":\"x.png\"}");
    const char *labels_text =
        "{\"sentiment\":\"pos\",\"tags\":[\"a\",\"c\"],\"score\":4,"
        "\"entities\":[{\"start\":2,\"end\":6,\"label\":\"ORG\"},{\"start\":13,\"end\":16,"
        "\"label\":\"PER\"}],"
        "\"objects\":[{\"x\":10.5,\"y\":20.0,\"width\":30.0,\"height\":40.0,\"label\":\"car\"}],"
        "\"note\":\"two\\nlines\"}";
    json_t *labels = load(labels_text);
    json_t *result = qr_ls_labels_to_result(fields, labels, data, "text");
    assert_int_equal(json_array_size(result), 7);
    assert_json_eq(json_array_get(result, 0),
                   "{\"from_name\":\"sentiment\",\"to_name\":\"text\",\"type\":\"choices\","
                   "\"value\":{\"choices\":[\"pos\"]}}");
    assert_json_eq(json_array_get(result, 1),
                   "{\"from_name\":\"tags\",\"to_name\":\"text\",\"type\":\"choices\","
                   "\"value\":{\"choices\":[\"a\",\"c\"]}}");
    assert_json_eq(json_array_get(result, 2),
                   "{\"from_name\":\"score\",\"to_name\":\"text\",\"type\":\"rating\","
                   "\"value\":{\"rating\":4}}");
    assert_json_eq(json_array_get(result, 3),
                   "{\"from_name\":\"entities\",\"to_name\":\"text\",\"type\":\"labels\","
                   "\"id\":\"entities-0\",\"value\":{\"start\":3,\"end\":7,\"text\":\"Acme\","
                   "\"labels\":[\"ORG\"]}}");
    assert_json_eq(json_array_get(result, 4),
                   "{\"from_name\":\"entities\",\"to_name\":\"text\",\"type\":\"labels\","
                   "\"id\":\"entities-1\",\"value\":{\"start\":14,\"end\":17,\"text\":\"Bob\","
                   "\"labels\":[\"PER\"]}}");
    assert_json_eq(json_array_get(result, 5),
                   "{\"from_name\":\"objects\",\"to_name\":\"image\",\"type\":\"rectanglelabels\","
                   "\"id\":\"objects-0\",\"value\":{\"x\":10.5,\"y\":20.0,\"width\":30.0,"
                   "\"height\":40.0,\"rotation\":0,\"rectanglelabels\":[\"car\"]}}");
    assert_json_eq(json_array_get(result, 6),
                   "{\"from_name\":\"note\",\"to_name\":\"text\",\"type\":\"textarea\","
                   "\"value\":{\"text\":[\"two\\nlines\"]}}");
    char err[256] = "";
    json_t *back = qr_ls_result_to_labels(fields, result, data, err, sizeof err);
    assert_non_null(back);
    assert_true(json_equal(back, labels));
    json_decref(back);
    json_decref(result);
    json_decref(labels);
    json_decref(data);
    json_decref(fields);
}

/* Label Studio's own export: from_name of its config, textarea lines, a
 * relation left out, a result whose from_name is unknown going to the only
 * field of its type. */
static void test_from_label_studio(void **state)
{
    (void)state;
    json_t *fields = load(schema_text);
    json_t *data = load("{\"text\":\"Acme\"}");
    json_t *result = load(
        "[{\"from_name\":\"sentiment\",\"to_name\":\"text\",\"type\":\"choices\",\"value\":"
        "{\"choices\":[\"neg\"]}},"
        "{\"from_name\":\"ner\",\"to_name\":\"text\",\"type\":\"labels\",\"value\":{\"start\":0,"
        "\"end\":4,\"text\":\"Acme\",\"labels\":[\"ORG\"]}},"
        "{\"from_id\":\"a\",\"to_id\":\"b\",\"type\":\"relation\"},"
        "{\"from_name\":\"note\",\"to_name\":\"text\",\"type\":\"textarea\",\"value\":{\"text\":"
        "[\"one\",\"two\"]}}]");
    char err[256] = "";
    json_t *labels = qr_ls_result_to_labels(fields, result, data, err, sizeof err);
    assert_non_null(labels);
    assert_json_eq(labels, "{\"sentiment\":\"neg\",\"entities\":[{\"start\":0,\"end\":4,"
                           "\"label\":\"ORG\"}],\"note\":\"one\\ntwo\"}");
    json_decref(labels);
    json_decref(result);
    json_decref(data);
    json_decref(fields);
}

static void expect_error(const char *result_text, const char *want)
{
    json_t *fields = load(schema_text);
    json_t *result = load(result_text);
    char err[256] = "";
    json_t *labels = qr_ls_result_to_labels(fields, result, NULL, err, sizeof err);
    assert_null(labels);
    if (!strstr(err, want)) {
        print_error("error \"%s\" lacks \"%s\"\n", err, want);
        fail();
    }
    json_decref(result);
    json_decref(fields);
}

static void test_refused(void **state)
{
    (void)state;
    expect_error("{}", "result: must be an array");
    expect_error("[3]", "result[0]: must be an object");
    expect_error("[{\"type\":\"choices\",\"from_name\":\"x\",\"value\":{\"choices\":[\"pos\"]}}]",
                 "result[0].from_name: \"x\" names no field of the schema and several fields");
    expect_error(
        "[{\"type\":\"choices\",\"from_name\":\"score\",\"value\":{\"choices\":[\"pos\"]}}]",
        "field \"score\" is a rating field");
    expect_error("[{\"type\":\"choices\",\"from_name\":\"sentiment\",\"value\":{\"choices\":"
                 "[\"pos\",\"neg\"]}}]",
                 "result[0].value.choices: must be an array of one label");
    expect_error("[{\"type\":\"rating\",\"from_name\":\"score\",\"value\":{\"rating\":4}},"
                 "{\"type\":\"rating\",\"from_name\":\"score\",\"value\":{\"rating\":5}}]",
                 "result[1]: a second value for field \"score\"");
    expect_error("[{\"type\":\"labels\",\"from_name\":\"entities\",\"value\":{\"start\":\"0\","
                 "\"end\":4,\"labels\":[\"ORG\"]}}]",
                 "result[0].value: start and end must be integers");
    expect_error("[{\"type\":\"rectanglelabels\",\"from_name\":\"objects\",\"value\":{\"x\":1,"
                 "\"y\":1,\"width\":1,\"rectanglelabels\":[\"car\"]}}]",
                 "result[0].value.height: must be a number");
    expect_error("[{\"type\":\"textarea\",\"from_name\":\"note\",\"value\":{\"text\":[1]}}]",
                 "result[0].value.text[0]: must be a string");
}

static void test_offsets(void **state)
{
    (void)state;
    const char *s = "a\xF0\x9F\x98\x80"
                    "b\xC3\xA9"; /* a, emoji, b, e-acute */
    size_t len = strlen(s);
    assert_int_equal(qr_utf16_of_codepoint(s, len, 0), 0);
    assert_int_equal(qr_utf16_of_codepoint(s, len, 1), 1);
    assert_int_equal(qr_utf16_of_codepoint(s, len, 2), 3);
    assert_int_equal(qr_utf16_of_codepoint(s, len, 4), 5);
    assert_int_equal(qr_codepoint_of_utf16(s, len, 3), 2);
    assert_int_equal(qr_codepoint_of_utf16(s, len, 5), 4);
    /* Past the end: one unit per missing character. */
    assert_int_equal(qr_utf16_of_codepoint(s, len, 6), 7);
    assert_int_equal(qr_codepoint_of_utf16(s, len, 7), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_from_label_studio),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
