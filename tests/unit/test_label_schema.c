/*
 * test_label_schema.c - the label schema (common/label_schema.c): every rule
 * of a schema and of a submitted value, each refusal's field and reason, the
 * code-point lengths of UTF-8 text, and the canonical stored form (order,
 * numbers, byte identity of equal submissions).
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "label_schema.h"
#include "util.h"

/* A schema of every type, as the example. */
static const char *const full_schema =
    "{\"fields\": ["
    "{\"name\": \"sentiment\", \"type\": \"choice\", \"choices\": [\"positive\", \"negative\", "
    "\"neutral\"]},"
    "{\"name\": \"tags\", \"type\": \"multi_choice\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], "
    "\"min\": 1, \"max\": 3},"
    "{\"name\": \"score\", \"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": 1},"
    "{\"name\": \"entities\", \"type\": \"spans\", \"over\": \"text\", \"labels\": [\"PER\", "
    "\"ORG\"]},"
    "{\"name\": \"objects\", \"type\": \"boxes\", \"over\": \"image\", \"labels\": [\"car\", "
    "\"dog\"], \"required\": false},"
    "{\"name\": \"note\", \"type\": \"text\", \"max_length\": 5, \"required\": false}"
    "]}";

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad JSON in the test: %s: %s", text, e.text);
    return j;
}

static qr_label_schema_t *schema_of(const char *text)
{
    json_t *j = js(text);
    qr_label_schema_t *s = NULL;
    qr_label_error_t err;
    if (qr_label_schema_parse(j, &s, &err) < 0)
        fail_msg("schema refused: %s", err.message);
    json_decref(j);
    return s;
}

/* The schema text is refused, on field, with a message holding reason. */
static void schema_refused(const char *text, const char *field, const char *reason)
{
    json_t *j = js(text);
    qr_label_schema_t *s = (qr_label_schema_t *)1;
    qr_label_error_t err;
    memset(&err, 'x', sizeof err);
    if (qr_label_schema_parse(j, &s, &err) == 0)
        fail_msg("schema accepted: %s", text);
    json_decref(j);
    assert_null(s);
    assert_string_equal(err.field, field);
    /* The message starts with the field and a colon. */
    assert_int_equal(strncmp(err.message, field, strlen(field)), 0);
    assert_int_equal(err.message[strlen(field)], ':');
    if (!strstr(err.message, reason))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, reason);
}

/* One field's schema, from the inside of its object. */
static char *one_field(const char *inside)
{
    return qr_xasprintf("{\"fields\": [{\"name\": \"f\", %s}]}", inside);
}

static void field_refused(const char *inside, const char *reason)
{
    char *t = one_field(inside);
    schema_refused(t, "f", reason);
    free(t);
}

static qr_label_schema_t *field_schema(const char *inside)
{
    char *t = one_field(inside);
    qr_label_schema_t *s = schema_of(t);
    free(t);
    return s;
}

/* labels checked against s (with data, which may be NULL): the canonical text. */
static char *accepted(const qr_label_schema_t *s, const char *labels, const qr_label_data_t *data)
{
    json_t *j = js(labels);
    char *canon = NULL;
    qr_label_error_t err;
    if (qr_label_check(s, j, data, &canon, &err) < 0)
        fail_msg("labels %s refused: %s", labels, err.message);
    json_decref(j);
    assert_non_null(canon);
    return canon;
}

static void accepted_as(const qr_label_schema_t *s, const char *labels, const qr_label_data_t *data,
                        const char *want)
{
    char *canon = accepted(s, labels, data);
    assert_string_equal(canon, want);
    free(canon);
}

/* labels are accepted (the canonical text is not looked at). */
static void ok(const qr_label_schema_t *s, const char *labels, const qr_label_data_t *data)
{
    free(accepted(s, labels, data));
}

static void refused(const qr_label_schema_t *s, const char *labels, const qr_label_data_t *data,
                    const char *field, const char *reason)
{
    json_t *j = js(labels);
    char *canon = (char *)1;
    qr_label_error_t err;
    if (qr_label_check(s, j, data, &canon, &err) == 0)
        fail_msg("labels %s accepted", labels);
    json_decref(j);
    assert_null(canon);
    assert_string_equal(err.field, field);
    assert_int_equal(strncmp(err.message, field, strlen(field)), 0);
    assert_int_equal(err.message[strlen(field)], ':');
    if (!strstr(err.message, reason))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, reason);
    /* Every message is valid UTF-8 without control characters. */
    assert_true(qr_label_utf8_length(err.message, strlen(err.message)) >= 0);
    for (const char *p = err.message; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
}

/* --- schemas ---------------------------------------------------------------------------------- */

static void test_schema_top_level(void **state)
{
    (void)state;
    schema_refused("[]", "schema", "must be an object");
    schema_refused("{}", "schema", "fields must be an array of 1 to 32 fields");
    schema_refused("{\"fields\": []}", "schema", "fields must be an array of 1 to 32 fields");
    schema_refused("{\"fields\": {}}", "schema", "fields must be an array");
    schema_refused("{\"fields\": [{\"name\": \"a\", \"type\": \"text\"}], \"extra\": 1}", "schema",
                   "unknown key \"extra\"");
    /* 32 fields are fine, 33 are not. */
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "{\"fields\": [");
    for (int i = 0; i < 33; i++)
        qr_buf_appendf(&b, "%s{\"name\": \"t%d\", \"type\": \"text\"}", i ? "," : "", i);
    qr_buf_appends(&b, "]}");
    schema_refused(b.data, "schema", "1 to 32 fields");
    char *cut = strstr(b.data, ",{\"name\": \"t32\"");
    strcpy(cut, "]}");
    qr_label_schema_t *s = schema_of(b.data);
    assert_int_equal(s->nfields, 32);
    qr_label_schema_free(s);
    qr_buf_free(&b);
}

static void test_schema_field_common(void **state)
{
    (void)state;
    schema_refused("{\"fields\": [1]}", "fields[0]", "must be an object");
    schema_refused("{\"fields\": [{\"type\": \"text\"}]}", "fields[0]", "name must be 1 to 64");
    schema_refused("{\"fields\": [{\"name\": \"\", \"type\": \"text\"}]}", "fields[0]",
                   "name must be");
    schema_refused("{\"fields\": [{\"name\": \"a b\", \"type\": \"text\"}]}", "fields[0]",
                   "name must be");
    schema_refused("{\"fields\": [{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"é\", "
                   "\"type\": \"text\"}]}",
                   "fields[1]", "name must be");
    char name64[65], name65[66];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    memset(name65, 'n', 65);
    name65[65] = '\0';
    char *t = qr_xasprintf("{\"fields\": [{\"name\": \"%s\", \"type\": \"text\"}]}", name65);
    schema_refused(t, "fields[0]", "name must be");
    free(t);
    t = qr_xasprintf("{\"fields\": [{\"name\": \"%s\", \"type\": \"text\"}]}", name64);
    qr_label_schema_t *s = schema_of(t);
    assert_string_equal(s->fields[0].name, name64);
    qr_label_schema_free(s);
    free(t);
    /* Names may use A-Z a-z 0-9 _ . - */
    s = schema_of("{\"fields\": [{\"name\": \"A-z_0.9\", \"type\": \"text\"}]}");
    qr_label_schema_free(s);
    schema_refused("{\"fields\": [{\"name\": \"a\", \"type\": \"text\"}, {\"name\": \"a\", "
                   "\"type\": \"text\"}]}",
                   "a", "two fields have this name");
    field_refused("\"type\": \"polygon\"", "type must be choice, multi_choice");
    field_refused("\"choices\": [\"x\"]", "type must be");
    field_refused("\"type\": \"text\", \"choices\": [\"x\"]",
                  "unknown key \"choices\" for a text field");
    field_refused("\"type\": \"choice\", \"choices\": [\"x\"], \"min\": 1",
                  "unknown key \"min\" for a choice field");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 2, \"over\": \"t\"",
                  "unknown key \"over\"");
    field_refused("\"type\": \"boxes\", \"over\": \"i\", \"labels\": [\"a\"], \"overlap\": true",
                  "unknown key \"overlap\" for a boxes field");
    field_refused("\"type\": \"text\", \"required\": 1", "required must be true or false");
    s = field_schema("\"type\": \"text\", \"required\": false");
    assert_int_equal(s->fields[0].required, 0);
    qr_label_schema_free(s);
    s = field_schema("\"type\": \"text\"");
    assert_int_equal(s->fields[0].required, 1);
    assert_int_equal(s->fields[0].max_length, QR_LABEL_TEXT_DEFAULT);
    qr_label_schema_free(s);
}

static void test_schema_choices(void **state)
{
    (void)state;
    field_refused("\"type\": \"choice\"", "choices must be an array of 1 to 1000 strings");
    field_refused("\"type\": \"choice\", \"choices\": []", "choices must be an array");
    field_refused("\"type\": \"choice\", \"choices\": \"a\"", "choices must be an array");
    field_refused("\"type\": \"choice\", \"choices\": [\"a\", 2]",
                  "choices[1] must be a string of 1 to 200 bytes");
    field_refused("\"type\": \"choice\", \"choices\": [\"\"]", "choices[0] must be a string");
    field_refused("\"type\": \"choice\", \"choices\": [\"a\\nb\"]", "no control characters");
    field_refused("\"type\": \"choice\", \"choices\": [\"a\", \"b\", \"a\"]",
                  "choices holds \"a\" twice");
    field_refused("\"type\": \"spans\", \"over\": \"t\", \"labels\": [\"X\", \"X\"]",
                  "labels holds \"X\" twice");
    field_refused("\"type\": \"boxes\", \"over\": \"t\", \"labels\": []",
                  "labels must be an array of 1 to 1000");
    char long200[201], long201[202];
    memset(long200, 'c', 200);
    long200[200] = '\0';
    memset(long201, 'c', 201);
    long201[201] = '\0';
    char *inside = qr_xasprintf("\"type\": \"choice\", \"choices\": [\"%s\"]", long201);
    field_refused(inside, "choices[0] must be a string of 1 to 200 bytes");
    free(inside);
    inside = qr_xasprintf("\"type\": \"choice\", \"choices\": [\"%s\"]", long200);
    qr_label_schema_t *s = field_schema(inside);
    free(inside);
    qr_label_schema_free(s);
    /* 1000 choices, not 1001. */
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "\"type\": \"choice\", \"choices\": [");
    for (int i = 0; i < 1001; i++)
        qr_buf_appendf(&b, "%s\"c%d\"", i ? "," : "", i);
    qr_buf_appends(&b, "]");
    field_refused(b.data, "1 to 1000 strings");
    strcpy(strstr(b.data, ",\"c1000\""), "]");
    s = field_schema(b.data);
    assert_int_equal(s->fields[0].nchoices, 1000);
    qr_label_schema_free(s);
    qr_buf_free(&b);
}

static void test_schema_multi_choice(void **state)
{
    (void)state;
    const char *c = "\"type\": \"multi_choice\", \"choices\": [\"a\", \"b\", \"c\"]";
    qr_label_schema_t *s = field_schema(c);
    assert_int_equal(s->fields[0].min_count, 0);
    assert_int_equal(s->fields[0].max_count, 3);
    qr_label_schema_free(s);
    char *t;
#define MC(extra, reason)                                                                          \
    do {                                                                                           \
        t = qr_xasprintf("%s, %s", c, extra);                                                      \
        field_refused(t, reason);                                                                  \
        free(t);                                                                                   \
    } while (0)
    MC("\"min\": -1", "min must be an integer from 0 to 3");
    MC("\"min\": 4", "min must be an integer from 0 to 3");
    MC("\"min\": 1.5", "min must be an integer");
    MC("\"max\": 0", "max must be an integer from 1 to 3");
    MC("\"max\": 4", "max must be an integer from 1 to 3");
    MC("\"min\": 2, \"max\": 1", "max must be an integer from 2 to 3");
#undef MC
    t = qr_xasprintf("%s, \"min\": 3", c);
    s = field_schema(t);
    free(t);
    assert_int_equal(s->fields[0].min_count, 3);
    assert_int_equal(s->fields[0].max_count, 3);
    qr_label_schema_free(s);
}

static void test_schema_rating(void **state)
{
    (void)state;
    field_refused("\"type\": \"rating\", \"max\": 5", "min and max must be numbers");
    field_refused("\"type\": \"rating\", \"min\": \"1\", \"max\": 5", "min and max must be");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 1e16", "from -1e15 to 1e15");
    field_refused("\"type\": \"rating\", \"min\": 5, \"max\": 5", "min (5) must be less than max");
    field_refused("\"type\": \"rating\", \"min\": 5, \"max\": 1", "must be less than max (1)");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": 0",
                  "step must be a number greater than 0");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": -1",
                  "step must be a number greater than 0");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": true",
                  "step must be a number");
    field_refused("\"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": 3",
                  "(max - min) / step must be a whole number");
    field_refused("\"type\": \"rating\", \"min\": 0, \"max\": 1000", "1001 levels; at most 1000");
    field_refused("\"type\": \"rating\", \"min\": 0, \"max\": 1, \"step\": 0.0001", "10001 levels");
    qr_label_schema_t *s = field_schema("\"type\": \"rating\", \"min\": 0, \"max\": 999");
    assert_int_equal(s->fields[0].levels, 1000);
    assert_true(s->fields[0].integral);
    assert_true(s->fields[0].step == 1);
    qr_label_schema_free(s);
    /* 0.1 steps from 0 to 1: 10 steps within the relative slack. */
    s = field_schema("\"type\": \"rating\", \"min\": 0, \"max\": 1, \"step\": 0.1");
    assert_int_equal(s->fields[0].levels, 11);
    assert_false(s->fields[0].integral);
    qr_label_schema_free(s);
    /* Integral values given as reals are integral. */
    s = field_schema("\"type\": \"rating\", \"min\": 1.0, \"max\": 10.0, \"step\": 3.0");
    assert_true(s->fields[0].integral);
    assert_int_equal(s->fields[0].levels, 4);
    qr_label_schema_free(s);
    /* A decimal min makes the scale decimal even with an integral step. */
    s = field_schema("\"type\": \"rating\", \"min\": 0.5, \"max\": 4.5");
    assert_false(s->fields[0].integral);
    qr_label_schema_free(s);
}

static void test_schema_spans_boxes_text(void **state)
{
    (void)state;
    field_refused("\"type\": \"spans\", \"labels\": [\"A\"]", "over must name the task's data key");
    field_refused("\"type\": \"spans\", \"over\": \"\", \"labels\": [\"A\"]", "over must name");
    field_refused("\"type\": \"spans\", \"over\": 3, \"labels\": [\"A\"]", "over must name");
    field_refused("\"type\": \"spans\", \"over\": \"t\"", "labels must be an array");
    field_refused("\"type\": \"spans\", \"over\": \"t\", \"labels\": [\"A\"], \"overlap\": \"no\"",
                  "overlap must be true or false");
    qr_label_schema_t *s =
        field_schema("\"type\": \"spans\", \"over\": \"t\", \"labels\": [\"A\"]");
    assert_int_equal(s->fields[0].overlap, 1);
    assert_string_equal(s->fields[0].over, "t");
    qr_label_schema_free(s);
    s = field_schema(
        "\"type\": \"spans\", \"over\": \"t\", \"labels\": [\"A\"], \"overlap\": false");
    assert_int_equal(s->fields[0].overlap, 0);
    qr_label_schema_free(s);
    field_refused("\"type\": \"boxes\", \"labels\": [\"A\"]", "over must name");
    field_refused("\"type\": \"boxes\", \"over\": \"img\"", "labels must be an array");
    field_refused("\"type\": \"text\", \"max_length\": 0", "max_length must be an integer from 1 "
                                                           "to 100000");
    field_refused("\"type\": \"text\", \"max_length\": 100001", "from 1 to 100000");
    field_refused("\"type\": \"text\", \"max_length\": \"5\"", "max_length must be an integer");
    s = field_schema("\"type\": \"text\", \"max_length\": 100000");
    assert_int_equal(s->fields[0].max_length, 100000);
    qr_label_schema_free(s);
}

/* The stored schema is the normalized one: defaults filled, whole numbers as
 * integers; it parses back to itself. */
static void test_schema_normalized(void **state)
{
    (void)state;
    qr_label_schema_t *s = schema_of(
        "{\"fields\": [{\"name\": \"c\", \"type\": \"choice\", \"choices\": [\"x\", \"y\"]},"
        "{\"name\": \"m\", \"type\": \"multi_choice\", \"choices\": [\"x\", \"y\"]},"
        "{\"name\": \"r\", \"type\": \"rating\", \"min\": 0.0, \"max\": 1, \"step\": 0.1},"
        "{\"name\": \"s\", \"type\": \"spans\", \"over\": \"t\", \"labels\": [\"A\"]},"
        "{\"name\": \"b\", \"type\": \"boxes\", \"over\": \"i\", \"labels\": [\"A\"], "
        "\"required\": false},"
        "{\"name\": \"t\", \"type\": \"text\"}]}");
    json_t *j = qr_label_schema_to_json(s);
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    assert_string_equal(
        text,
        "{\"fields\":[{\"name\":\"c\",\"type\":\"choice\",\"required\":true,\"choices\":[\"x\","
        "\"y\"]},{\"name\":\"m\",\"type\":\"multi_choice\",\"required\":true,\"choices\":[\"x\","
        "\"y\"],\"min\":0,\"max\":2},{\"name\":\"r\",\"type\":\"rating\",\"required\":true,"
        "\"min\":0,\"max\":1,\"step\":0.1},{\"name\":\"s\",\"type\":\"spans\",\"required\":true,"
        "\"over\":\"t\",\"labels\":[\"A\"],\"overlap\":true},{\"name\":\"b\",\"type\":\"boxes\","
        "\"required\":false,\"over\":\"i\",\"labels\":[\"A\"]},{\"name\":\"t\",\"type\":\"text\","
        "\"required\":true,\"max_length\":1000}]}");
    qr_label_schema_t *again = NULL;
    qr_label_error_t err;
    assert_int_equal(qr_label_schema_parse(j, &again, &err), 0);
    json_t *j2 = qr_label_schema_to_json(again);
    assert_true(json_equal(j, j2));
    json_decref(j2);
    qr_label_schema_free(again);
    json_decref(j);
    free(text);
    static const char *const names[] = {"choice", "multi_choice", "rating",
                                        "spans",  "boxes",        "text"};
    for (int i = 0; i < s->nfields; i++)
        assert_string_equal(qr_label_type_name(s->fields[i].type), names[i]);
    assert_int_equal(qr_label_schema_field(s, "r"), 2);
    assert_int_equal(qr_label_schema_field(s, "nope"), -1);
    qr_label_schema_free(s);
}

/* --- values ----------------------------------------------------------------------------------- */

static const char *const keys_text[] = {"text"};

static void test_values_top_level(void **state)
{
    (void)state;
    qr_label_schema_t *s = schema_of(full_schema);
    int64_t len[] = {20};
    qr_label_data_t data = {1, keys_text, len};
    refused(s, "[]", &data, "labels", "must be an object of the schema's fields (sentiment, tags");
    refused(s, "\"positive\"", &data, "labels", "must be an object");
    refused(s,
            "{\"sentiment\": \"positive\", \"tags\": [\"a\"], \"score\": 3, \"entities\": [], "
            "\"colour\": \"red\"}",
            &data, "colour", "not a field of this project's schema");
    refused(s, "{\"tags\": [\"a\"], \"score\": 3, \"entities\": []}", &data, "sentiment",
            "required");
    refused(s, "{\"sentiment\": null, \"tags\": [\"a\"], \"score\": 3, \"entities\": []}", &data,
            "sentiment", "required");
    refused(s, "{\"sentiment\": \"positive\", \"tags\": [\"a\"], \"score\": 3}", &data, "entities",
            "required");
    /* Optional fields may be omitted or null; the canonical text leaves them out. */
    accepted_as(s,
                "{\"note\": null, \"entities\": [], \"score\": 3, \"tags\": [\"a\"], "
                "\"sentiment\": \"positive\"}",
                &data, "{\"sentiment\":\"positive\",\"tags\":[\"a\"],\"score\":3,\"entities\":[]}");
    qr_label_schema_free(s);
}

static void test_values_choice(void **state)
{
    (void)state;
    qr_label_schema_t *s = field_schema("\"type\": \"choice\", \"choices\": [\"yes\", \"no\"]");
    accepted_as(s, "{\"f\": \"no\"}", NULL, "{\"f\":\"no\"}");
    refused(s, "{\"f\": 1}", NULL, "f", "must be a string, one of the field's choices");
    refused(s, "{\"f\": [\"yes\"]}", NULL, "f", "must be a string");
    refused(s, "{\"f\": \"maybe\"}", NULL, "f", "\"maybe\" is not one of the field's choices");
    refused(s, "{\"f\": \"Yes\"}", NULL, "f", "is not one of");
    /* A string with a NUL is no choice. */
    json_t *v = json_object();
    json_object_set_new(v, "f", json_stringn("yes\0x", 5));
    qr_label_error_t err;
    char *canon = NULL;
    assert_int_equal(qr_label_check(s, v, NULL, &canon, &err), -1);
    json_decref(v);
    qr_label_schema_free(s);
}

static void test_values_multi_choice(void **state)
{
    (void)state;
    qr_label_schema_t *s = field_schema("\"type\": \"multi_choice\", \"choices\": [\"z\", \"a\", "
                                        "\"m\", \"b\"], \"min\": 1, \"max\": 3");
    /* Canonical: in schema choice order, not the order given or byte order. */
    accepted_as(s, "{\"f\": [\"b\", \"a\", \"z\"]}", NULL, "{\"f\":[\"z\",\"a\",\"b\"]}");
    accepted_as(s, "{\"f\": [\"m\"]}", NULL, "{\"f\":[\"m\"]}");
    refused(s, "{\"f\": \"a\"}", NULL, "f", "must be an array of the field's choices");
    refused(s, "{\"f\": [\"a\", 2]}", NULL, "f", "element 1 is not a string");
    refused(s, "{\"f\": [\"a\", \"q\"]}", NULL, "f", "\"q\" is not one of the field's choices");
    refused(s, "{\"f\": [\"a\", \"a\"]}", NULL, "f", "\"a\" appears twice");
    refused(s, "{\"f\": []}", NULL, "f", "holds 0 choices; it must hold 1 to 3");
    refused(s, "{\"f\": [\"a\", \"b\", \"m\", \"z\"]}", NULL, "f", "holds 4 choices");
    qr_label_schema_free(s);
    /* min 0: the empty set is a value. */
    s = field_schema("\"type\": \"multi_choice\", \"choices\": [\"a\"]");
    accepted_as(s, "{\"f\": []}", NULL, "{\"f\":[]}");
    qr_label_schema_free(s);
}

static void test_values_rating(void **state)
{
    (void)state;
    qr_label_schema_t *s = field_schema("\"type\": \"rating\", \"min\": 1, \"max\": 5");
    accepted_as(s, "{\"f\": 3}", NULL, "{\"f\":3}");
    /* A real on an integral grid is stored as an integer. */
    accepted_as(s, "{\"f\": 3.0}", NULL, "{\"f\":3}");
    accepted_as(s, "{\"f\": 5.0000000000001}", NULL, "{\"f\":5}");
    refused(s, "{\"f\": \"3\"}", NULL, "f", "must be a number from 1 to 5 in steps of 1");
    refused(s, "{\"f\": true}", NULL, "f", "must be a number");
    refused(s, "{\"f\": 0}", NULL, "f", "0 is out of range: the scale runs from 1 to 5");
    refused(s, "{\"f\": 6}", NULL, "f", "6 is out of range");
    refused(s, "{\"f\": 5.001}", NULL, "f", "out of range");
    refused(s, "{\"f\": 2.5}", NULL, "f", "2.5 is not on the scale: from 1 in steps of 1");
    qr_label_schema_free(s);
    /* A decimal grid: reals, on the grid, 15 digits. */
    s = field_schema("\"type\": \"rating\", \"min\": 0, \"max\": 1, \"step\": 0.1");
    accepted_as(s, "{\"f\": 0.3}", NULL, "{\"f\":0.3}");
    accepted_as(s, "{\"f\": 0.30000000000000004}", NULL, "{\"f\":0.3}");
    accepted_as(s, "{\"f\": 1}", NULL, "{\"f\":1.0}");
    accepted_as(s, "{\"f\": 0}", NULL, "{\"f\":0.0}");
    refused(s, "{\"f\": 0.35}", NULL, "f", "not on the scale");
    refused(s, "{\"f\": 0.3000001}", NULL, "f", "not on the scale");
    qr_label_schema_free(s);
    s = field_schema("\"type\": \"rating\", \"min\": -2, \"max\": 2, \"step\": 0.5");
    accepted_as(s, "{\"f\": -1.5}", NULL, "{\"f\":-1.5}");
    accepted_as(s, "{\"f\": 2}", NULL, "{\"f\":2.0}");
    refused(s, "{\"f\": -2.5}", NULL, "f", "out of range");
    qr_label_schema_free(s);
    /* Integral scale with a step: values min + k * step. */
    s = field_schema("\"type\": \"rating\", \"min\": 0, \"max\": 100, \"step\": 10");
    accepted_as(s, "{\"f\": 70}", NULL, "{\"f\":70}");
    refused(s, "{\"f\": 75}", NULL, "f", "not on the scale");
    qr_label_schema_free(s);
}

static void test_utf8_length(void **state)
{
    (void)state;
    assert_int_equal(qr_label_utf8_length("", 0), 0);
    assert_int_equal(qr_label_utf8_length("abc", 3), 3);
    /* é (2 bytes), € (3 bytes), 😀 (4 bytes): one code point each. */
    const char *mixed = "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80!";
    assert_int_equal(qr_label_utf8_length(mixed, strlen(mixed)), 5);
    /* Not UTF-8: a lone continuation byte, a cut sequence, an overlong form,
     * a surrogate, a code point past U+10FFFF, a byte that is never UTF-8. */
    assert_int_equal(qr_label_utf8_length("\x80", 1), -1);
    assert_int_equal(qr_label_utf8_length("\xe2\x82", 2), -1);
    assert_int_equal(qr_label_utf8_length("\xc0\x80", 2), -1);
    assert_int_equal(qr_label_utf8_length("\xe0\x80\x80", 3), -1);
    assert_int_equal(qr_label_utf8_length("\xed\xa0\x80", 3), -1);
    assert_int_equal(qr_label_utf8_length("\xf4\x90\x80\x80", 4), -1);
    assert_int_equal(qr_label_utf8_length("\xff", 1), -1);
    assert_int_equal(qr_label_utf8_length("\xf4\x8f\xbf\xbf", 4), 1); /* U+10FFFF */
    /* A NUL is a code point. */
    assert_int_equal(qr_label_utf8_length("a\0b", 3), 3);
}

static void test_values_spans(void **state)
{
    (void)state;
    qr_label_schema_t *s =
        field_schema("\"type\": \"spans\", \"over\": \"text\", \"labels\": [\"PER\", \"ORG\"]");
    /* "Zoë works at Ünïcode 😀": 22 code points, 27 bytes. */
    const char *text = "Zo\xc3\xab works at \xc3\x9cn\xc3\xaf"
                       "code \xf0\x9f\x98\x80";
    int64_t len[] = {qr_label_utf8_length(text, strlen(text))};
    assert_int_equal(len[0], 22);
    qr_label_data_t data = {1, keys_text, len};
    /* Sorted by (start, end, label), "text" dropped, in code points. */
    accepted_as(s,
                "{\"f\": [{\"start\": 13, \"end\": 22, \"label\": \"ORG\", \"text\": \"x\"}, "
                "{\"start\": 0, \"end\": 3, \"label\": \"PER\"}, "
                "{\"start\": 0, \"end\": 3, \"label\": \"ORG\"}]}",
                &data,
                "{\"f\":[{\"start\":0,\"end\":3,\"label\":\"ORG\"},{\"start\":0,\"end\":3,"
                "\"label\":\"PER\"},{\"start\":13,\"end\":22,\"label\":\"ORG\"}]}");
    accepted_as(s, "{\"f\": []}", &data, "{\"f\":[]}");
    /* The end may be the text's length, not past it (22 code points, not 27 bytes). */
    refused(s, "{\"f\": [{\"start\": 13, \"end\": 23, \"label\": \"ORG\"}]}", &data, "f",
            "span 0: [13, 23) ends outside the text of \"text\" (22 characters)");
    refused(s, "{\"f\": [{\"start\": 20, \"end\": 27, \"label\": \"ORG\"}]}", &data, "f",
            "ends outside the text");
    /* Without data the length is not checked (the broker's first pass). */
    ok(s, "{\"f\": [{\"start\": 20, \"end\": 27, \"label\": \"ORG\"}]}", NULL);
    refused(s, "{\"f\": {}}", &data, "f", "must be an array of spans");
    refused(s, "{\"f\": [3]}", &data, "f", "span 0 must be an object");
    refused(s, "{\"f\": [{\"start\": 0, \"end\": 1, \"label\": \"PER\", \"score\": 1}]}", &data,
            "f", "span 0 has an unknown key \"score\"");
    refused(s, "{\"f\": [{\"start\": 0, \"end\": 1.5, \"label\": \"PER\"}]}", &data, "f",
            "span 0: start and end must be integers");
    refused(s, "{\"f\": [{\"end\": 1, \"label\": \"PER\"}]}", &data, "f",
            "start and end must be integers");
    refused(s, "{\"f\": [{\"start\": 0, \"end\": 1}]}", &data, "f",
            "span 0: label must be a string");
    refused(s, "{\"f\": [{\"start\": 0, \"end\": 1, \"label\": \"LOC\"}]}", &data, "f",
            "span 0: \"LOC\" is not one of the field's labels");
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 1, \"label\": \"PER\"}, {\"start\": -1, \"end\": 1, "
            "\"label\": \"PER\"}]}",
            &data, "f", "span 1: start (-1) must not be negative");
    refused(s, "{\"f\": [{\"start\": 5, \"end\": 5, \"label\": \"PER\"}]}", &data, "f",
            "span 0: end (5) must be greater than start (5)");
    refused(s, "{\"f\": [{\"start\": 5, \"end\": 2, \"label\": \"PER\"}]}", &data, "f",
            "end (2) must be greater than start (5)");
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 2, \"label\": \"PER\"}, {\"start\": 0, \"end\": 2, "
            "\"label\": \"PER\", \"text\": \"Zo\"}]}",
            &data, "f", "span [0, 2) \"PER\" appears twice");
    /* Overlaps are allowed by default. */
    ok(s,
       "{\"f\": [{\"start\": 0, \"end\": 10, \"label\": \"PER\"}, {\"start\": 2, \"end\": 4, "
       "\"label\": \"ORG\"}]}",
       &data);
    /* data[over] missing or not a string. */
    int64_t missing[] = {QR_LABEL_DATA_MISSING}, not_text[] = {QR_LABEL_DATA_NOT_TEXT};
    qr_label_data_t no = {1, keys_text, missing}, nt = {1, keys_text, not_text}, none = {0};
    refused(s, "{\"f\": []}", &no, "f", "the task's data has no \"text\": spans need its text");
    refused(s, "{\"f\": [{\"start\": 0, \"end\": 1, \"label\": \"PER\"}]}", &nt, "f",
            "the task's data \"text\" is not a string");
    refused(s, "{\"f\": []}", &none, "f", "the task's data has no \"text\"");
    /* 1000 spans, not 1001. */
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "{\"f\": [");
    for (int i = 0; i < 1001; i++)
        qr_buf_appendf(&b, "%s{\"start\": %d, \"end\": %d, \"label\": \"PER\"}", i ? "," : "", i,
                       i + 1);
    qr_buf_appends(&b, "]}");
    int64_t big[] = {5000};
    qr_label_data_t bigdata = {1, keys_text, big};
    refused(s, b.data, &bigdata, "f", "holds 1001 spans; at most 1000");
    strcpy(strstr(b.data, ",{\"start\": 1000,"), "]}");
    ok(s, b.data, &bigdata);
    qr_buf_free(&b);
    qr_label_schema_free(s);

    /* overlap false: intersecting spans are refused, touching ones are not. */
    s = field_schema("\"type\": \"spans\", \"over\": \"text\", \"labels\": [\"A\", \"B\"], "
                     "\"overlap\": false");
    accepted_as(s,
                "{\"f\": [{\"start\": 5, \"end\": 9, \"label\": \"B\"}, {\"start\": 0, \"end\": 5, "
                "\"label\": \"A\"}]}",
                &data,
                "{\"f\":[{\"start\":0,\"end\":5,\"label\":\"A\"},{\"start\":5,\"end\":9,"
                "\"label\":\"B\"}]}");
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 5, \"label\": \"A\"}, {\"start\": 4, \"end\": 9, "
            "\"label\": \"B\"}]}",
            &data, "f", "spans overlap at [4, 5): this field's spans may not overlap");
    /* Nested, and an overlap with an earlier span that is not the one before. */
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 10, \"label\": \"A\"}, {\"start\": 1, \"end\": 2, "
            "\"label\": \"B\"}]}",
            &data, "f", "spans overlap");
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 10, \"label\": \"A\"}, {\"start\": 1, \"end\": 2, "
            "\"label\": \"B\"}, {\"start\": 5, \"end\": 6, \"label\": \"B\"}]}",
            &data, "f", "spans overlap");
    /* Same range, two labels: they intersect. */
    refused(s,
            "{\"f\": [{\"start\": 0, \"end\": 3, \"label\": \"A\"}, {\"start\": 0, \"end\": 3, "
            "\"label\": \"B\"}]}",
            &data, "f", "spans overlap");
    qr_label_schema_free(s);
}

static void test_data_keys(void **state)
{
    (void)state;
    qr_label_schema_t *s = schema_of(
        "{\"fields\": [{\"name\": \"a\", \"type\": \"spans\", \"over\": \"body\", \"labels\": "
        "[\"X\"], \"required\": false},"
        "{\"name\": \"b\", \"type\": \"spans\", \"over\": \"title\", \"labels\": [\"X\"], "
        "\"required\": false},"
        "{\"name\": \"c\", \"type\": \"spans\", \"over\": \"body\", \"labels\": [\"X\"], "
        "\"required\": false},"
        "{\"name\": \"d\", \"type\": \"boxes\", \"over\": \"img\", \"labels\": [\"X\"], "
        "\"required\": false}]}");
    const char *keys[4];
    json_t *l = js("{\"a\": [], \"b\": null, \"c\": [], \"d\": []}");
    assert_int_equal(qr_label_data_keys(s, l, keys, 4), 1);
    assert_string_equal(keys[0], "body");
    json_decref(l);
    l = js("{\"c\": [], \"b\": []}");
    assert_int_equal(qr_label_data_keys(s, l, keys, 4), 2);
    assert_string_equal(keys[0], "title");
    assert_string_equal(keys[1], "body");
    /* More keys than room: the count says so. */
    assert_int_equal(qr_label_data_keys(s, l, keys, 1), 2);
    json_decref(l);
    l = js("{\"d\": []}");
    assert_int_equal(qr_label_data_keys(s, l, keys, 4), 0);
    json_decref(l);
    l = js("[1]");
    assert_int_equal(qr_label_data_keys(s, l, keys, 4), 0);
    json_decref(l);
    qr_label_schema_free(s);
}

static void test_values_boxes(void **state)
{
    (void)state;
    qr_label_schema_t *s =
        field_schema("\"type\": \"boxes\", \"over\": \"image\", \"labels\": [\"dog\", \"car\"]");
    /* Sorted by (x, y, width, height, label); whole numbers as integers;
     * rotation 0 dropped; reals to 15 digits. */
    accepted_as(s,
                "{\"f\": [{\"x\": 50, \"y\": 0, \"width\": 50, \"height\": 100, \"label\": "
                "\"car\"}, {\"x\": 10.0, \"y\": 20.5, \"width\": 33.33333333333333333, "
                "\"height\": 5, \"label\": \"dog\", \"rotation\": 0}, {\"x\": 10, \"y\": 20.5, "
                "\"width\": 33.33333333333333333, \"height\": 5, \"label\": \"car\"}]}",
                NULL,
                "{\"f\":[{\"x\":10,\"y\":20.5,\"width\":33.3333333333333,\"height\":5,\"label\":"
                "\"car\"},{\"x\":10,\"y\":20.5,\"width\":33.3333333333333,\"height\":5,\"label\":"
                "\"dog\"},{\"x\":50,\"y\":0,\"width\":50,\"height\":100,\"label\":\"car\"}]}");
    accepted_as(s, "{\"f\": []}", NULL, "{\"f\":[]}");
    /* The edge may be passed by the slack, not more. */
    ok(s,
       "{\"f\": [{\"x\": 60, \"y\": 0, \"width\": 40.0000000000001, \"height\": 1, "
       "\"label\": \"dog\"}]}",
       NULL);
    refused(s, "{\"f\": {}}", NULL, "f", "must be an array of boxes");
    refused(s, "{\"f\": [[]]}", NULL, "f", "box 0 must be an object");
    refused(s,
            "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": 1, \"label\": \"dog\", "
            "\"z\": 1}]}",
            NULL, "f", "box 0 has an unknown key \"z\"");
    refused(s,
            "{\"f\": [{\"x\": \"0\", \"y\": 0, \"width\": 1, \"height\": 1, \"label\": \"dog\"}]}",
            NULL, "f", "box 0: x, y, width and height must be numbers");
    refused(s, "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"label\": \"dog\"}]}", NULL, "f",
            "must be numbers");
    refused(s,
            "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": 1, \"label\": \"dog\", "
            "\"rotation\": 15}]}",
            NULL, "f", "box 0: rotation must be 0");
    refused(s,
            "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": 1, \"label\": \"dog\", "
            "\"rotation\": \"0\"}]}",
            NULL, "f", "rotation must be 0");
    refused(s, "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": 1}]}", NULL, "f",
            "box 0: label must be a string");
    refused(s, "{\"f\": [{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": 1, \"label\": \"cat\"}]}",
            NULL, "f", "box 0: \"cat\" is not one of the field's labels");
    const char *outside[] = {
        "{\"x\": -1, \"y\": 0, \"width\": 1, \"height\": 1",
        "{\"x\": 0, \"y\": -0.5, \"width\": 1, \"height\": 1",
        "{\"x\": 0, \"y\": 0, \"width\": 0, \"height\": 1",
        "{\"x\": 0, \"y\": 0, \"width\": 1, \"height\": -1",
        "{\"x\": 60, \"y\": 0, \"width\": 40.001, \"height\": 1",
        "{\"x\": 0, \"y\": 99, \"width\": 1, \"height\": 2",
        "{\"x\": 101, \"y\": 0, \"width\": 1, \"height\": 1",
        "{\"x\": 0, \"y\": 0, \"width\": 1e308, \"height\": 1e308",
    };
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        char *t = qr_xasprintf("{\"f\": [{\"x\": 1, \"y\": 1, \"width\": 1, \"height\": 1, "
                               "\"label\": \"car\"}, %s, \"label\": \"dog\"}]}",
                               outside[i]);
        refused(s, t, NULL, "f", "box 1 (x ");
        refused(s, t, NULL, "f", "is outside 0-100");
        free(t);
    }
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "{\"f\": [");
    for (int i = 0; i < 1001; i++)
        qr_buf_appendf(&b,
                       "%s{\"x\": 1, \"y\": 1, \"width\": 1, \"height\": 1, \"label\": "
                       "\"dog\"}",
                       i ? "," : "");
    qr_buf_appends(&b, "]}");
    refused(s, b.data, NULL, "f", "holds 1001 boxes; at most 1000");
    qr_buf_free(&b);
    qr_label_schema_free(s);
}

static void test_values_text(void **state)
{
    (void)state;
    qr_label_schema_t *s = field_schema("\"type\": \"text\", \"max_length\": 5");
    accepted_as(s, "{\"f\": \"hello\"}", NULL, "{\"f\":\"hello\"}");
    accepted_as(s, "{\"f\": \"\"}", NULL, "{\"f\":\"\"}");
    /* Five code points of ten bytes are five, not ten. */
    accepted_as(s, "{\"f\": \"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"}", NULL,
                "{\"f\":\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"}");
    /* Text is as given: spaces and line breaks kept. */
    accepted_as(s, "{\"f\": \" a\\nb \"}", NULL, "{\"f\":\" a\\nb \"}");
    refused(s, "{\"f\": \"hello!\"}", NULL, "f", "is 6 characters long; at most 5");
    refused(s, "{\"f\": \"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80x\"}", NULL, "f",
            "is 6 characters long");
    refused(s, "{\"f\": 5}", NULL, "f", "must be a string of at most 5 characters");
    refused(s, "{\"f\": [\"a\"]}", NULL, "f", "must be a string");
    /* Bytes that are not UTF-8 (jansson would not load them; a caller could
     * build them). */
    json_t *v = json_object();
    json_object_set_new(v, "f", json_stringn_nocheck("\xff", 1));
    qr_label_error_t err;
    char *canon = NULL;
    assert_int_equal(qr_label_check(s, v, NULL, &canon, &err), -1);
    assert_string_equal(err.message, "f: is not valid UTF-8");
    json_decref(v);
    qr_label_schema_free(s);
}

/* The same labels, however given, are the same bytes: key order, element
 * order, number spelling. */
static void test_canonical_identity(void **state)
{
    (void)state;
    qr_label_schema_t *s = schema_of(full_schema);
    int64_t len[] = {40};
    qr_label_data_t data = {1, keys_text, len};
    char *a = accepted(s,
                       "{\"sentiment\": \"negative\", \"tags\": [\"c\", \"a\"], \"score\": 4, "
                       "\"entities\": [{\"start\": 9, \"end\": 12, \"label\": \"ORG\"}, "
                       "{\"start\": 0, \"end\": 4, \"label\": \"PER\"}], \"objects\": "
                       "[{\"x\": 5, \"y\": 5, \"width\": 10, \"height\": 10, \"label\": \"dog\"}], "
                       "\"note\": \"ok\"}",
                       &data);
    char *b = accepted(s,
                       "{\"note\": \"ok\", \"objects\": [{\"label\": \"dog\", \"height\": 10.0, "
                       "\"width\": 1e1, \"y\": 5.0, \"x\": 5, \"rotation\": 0.0}], "
                       "\"entities\": [{\"label\": \"PER\", \"end\": 4, \"start\": 0, "
                       "\"text\": \"Zoë\"}, {\"end\": 12, \"start\": 9, \"label\": \"ORG\"}], "
                       "\"score\": 4.0, \"tags\": [\"a\", \"c\"], \"sentiment\": \"negative\"}",
                       &data);
    assert_string_equal(a, b);
    assert_string_equal(
        a, "{\"sentiment\":\"negative\",\"tags\":[\"a\",\"c\"],\"score\":4,\"entities\":[{"
           "\"start\":0,\"end\":4,\"label\":\"PER\"},{\"start\":9,\"end\":12,\"label\":\"ORG\"}],"
           "\"objects\":[{\"x\":5,\"y\":5,\"width\":10,\"height\":10,\"label\":\"dog\"}],"
           "\"note\":\"ok\"}");
    /* The canonical text is itself accepted, as the same text. */
    accepted_as(s, a, &data, a);
    free(a);
    free(b);
    /* A check may skip the canonical text. */
    json_t *l =
        js("{\"sentiment\": \"neutral\", \"tags\": [\"d\"], \"score\": 1, \"entities\": []}");
    qr_label_error_t err;
    assert_int_equal(qr_label_check(s, l, &data, NULL, &err), 0);
    json_decref(l);
    qr_label_schema_free(s);
}

/* A plain project's label list: one choice field "label", stored as the
 * label itself; a single "label" maps onto a one-choice schema only. */
static void test_implied_and_single(void **state)
{
    (void)state;
    const char *labels[] = {"cat", "dog"};
    qr_label_schema_t *s = qr_label_schema_implied(labels, 2);
    assert_true(s->implied);
    assert_int_equal(s->nfields, 1);
    assert_string_equal(s->fields[0].name, "label");
    accepted_as(s, "{\"label\": \"dog\"}", NULL, "dog");
    refused(s, "{\"label\": \"cow\"}", NULL, "label", "\"cow\" is not one of the field's choices");
    refused(s, "{}", NULL, "label", "required");
    refused(s, "{\"label\": \"dog\", \"tags\": []}", NULL, "tags", "not a field");
    json_t *one = json_string("cat");
    qr_label_error_t err;
    json_t *l = qr_label_from_single(s, one, &err);
    assert_non_null(l);
    char *canon = NULL;
    assert_int_equal(qr_label_check(s, l, NULL, &canon, &err), 0);
    assert_string_equal(canon, "cat");
    free(canon);
    json_decref(l);
    json_t *j = qr_label_schema_to_json(s);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "{\"fields\":[{\"name\":\"label\",\"type\":\"choice\",\"required\":"
                              "true,\"choices\":[\"cat\",\"dog\"]}]}");
    free(text);
    json_decref(j);
    qr_label_schema_free(s);

    /* A schema of one choice field takes "label" as that field's value. */
    s = field_schema("\"type\": \"choice\", \"choices\": [\"cat\", \"dog\"]");
    l = qr_label_from_single(s, one, &err);
    assert_non_null(l);
    assert_int_equal(qr_label_check(s, l, NULL, &canon, &err), 0);
    assert_string_equal(canon, "{\"f\":\"cat\"}");
    free(canon);
    json_decref(l);
    qr_label_schema_free(s);

    /* Anything else refuses it, naming "labels". */
    s = schema_of(full_schema);
    assert_null(qr_label_from_single(s, one, &err));
    assert_string_equal(err.field, "labels");
    assert_non_null(strstr(err.message, "labels: this project's schema has 6 fields (sentiment, "
                                        "tags, score, entities, objects, note)"));
    qr_label_schema_free(s);
    s = field_schema("\"type\": \"text\"");
    assert_null(qr_label_from_single(s, one, &err));
    assert_non_null(strstr(err.message, "has 1 field (f)"));
    qr_label_schema_free(s);
    json_decref(one);
}

/* Messages quote what they were given, cut at a character boundary, and stay
 * one line of valid UTF-8. */
static void test_messages(void **state)
{
    (void)state;
    qr_label_schema_t *s = field_schema("\"type\": \"choice\", \"choices\": [\"a\"]");
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "{\"f\": \"");
    for (int i = 0; i < 300; i++)
        qr_buf_appends(&b, "\xc3\xa9"); /* é */
    qr_buf_appends(&b, "\\n\"}");
    refused(s, b.data, NULL, "f", "...\" is not one of the field's choices");
    qr_buf_free(&b);
    /* An unknown field's name is shown whole up to 64 bytes, without its
     * control characters. */
    refused(s, "{\"f\": \"a\", \"bad\\tname\": 1}", NULL, "bad?name", "not a field");
    char key[200];
    memset(key, 'k', 150);
    key[150] = '\0';
    char *t = qr_xasprintf("{\"%s\": 1}", key);
    json_t *l = js(t);
    qr_label_error_t err;
    assert_int_equal(qr_label_check(s, l, NULL, NULL, &err), -1);
    assert_int_equal(strlen(err.field), 64);
    assert_non_null(strstr(err.field, "..."));
    json_decref(l);
    free(t);
    qr_label_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_top_level),   cmocka_unit_test(test_schema_field_common),
        cmocka_unit_test(test_schema_choices),     cmocka_unit_test(test_schema_multi_choice),
        cmocka_unit_test(test_schema_rating),      cmocka_unit_test(test_schema_spans_boxes_text),
        cmocka_unit_test(test_schema_normalized),  cmocka_unit_test(test_values_top_level),
        cmocka_unit_test(test_values_choice),      cmocka_unit_test(test_values_multi_choice),
        cmocka_unit_test(test_values_rating),      cmocka_unit_test(test_utf8_length),
        cmocka_unit_test(test_values_spans),       cmocka_unit_test(test_data_keys),
        cmocka_unit_test(test_values_boxes),       cmocka_unit_test(test_values_text),
        cmocka_unit_test(test_canonical_identity), cmocka_unit_test(test_implied_and_single),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
