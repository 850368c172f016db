/*
 * fuzz_json.c - libFuzzer harness for the JSON request bodies of the API.
 * It runs the very validators the API answers with (broker/api/validate.h): the
 * body parsed as a request body (qr_validate_body), then every body check of
 * users, tokens, projects, leases, release/skip, submit and batch submit.
 * Besides the sanitizers' findings it asserts the validators' promises: a
 * refusal carries a status, a code and a one-line message, and an accepted
 * body's values lie in the documented ranges. Then two properties of jansson
 * the broker relies on when it stores and re-serves bodies: what it encodes
 * decodes to an equal value, and encoding is deterministic.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Aborts (a finding) with what broke. */
static void broken(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* A refusal must say why in a way the API can answer with. */
static void check_refusal(const qr_invalid_t *why)
{
    if (why->status != 400 && why->status != 403 && why->status != 422)
        broken("refusal with an unexpected status", why->message);
    if (!why->code || !why->code[0])
        broken("refusal without a code", why->message);
    if (!why->message[0] || strchr(why->message, '\n'))
        broken("refusal message empty or not one line", why->message);
    /* The message goes into the JSON error answer: jansson must take it. */
    json_t *m = json_string(why->message);
    if (!m)
        broken("refusal message not valid UTF-8", why->message);
    json_decref(m);
}

static void check_in(int64_t v, int64_t lo, int64_t hi, const char *what)
{
    if (v < lo || v > hi)
        broken("accepted value out of range", what);
}

/* POST /v1/users and POST /v1/tokens, as an admin and as a manager. */
static void check_user_and_token(json_t *b)
{
    static const int callers[] = {QR_ROLE_ADMIN, QR_ROLE_MANAGER};
    for (int i = 0; i < 2; i++) {
        qr_invalid_t why;
        const char *name;
        int role;
        if (qr_validate_user_body(b, callers[i], &name, &role, &why) < 0) {
            check_refusal(&why);
        } else {
            if (!qr_validate_name(name) || !role)
                broken("user body accepted without a name or role", NULL);
            if (role == QR_ROLE_ADMIN && callers[i] != QR_ROLE_ADMIN)
                broken("a manager may create an admin", NULL);
        }
        qr_token_body_t tb;
        if (qr_validate_token_body(b, callers[i], &tb, &why) < 0) {
            check_refusal(&why);
        } else {
            if (!qr_validate_name(tb.user) || qr_validate_role(tb.role) != tb.role_bit)
                broken("token body accepted without a user or role", NULL);
            check_in(tb.lifetime_s, 0, 3650LL * 86400, "expires");
        }
    }
}

/* POST /v1/projects. */
static void check_project(json_t *b)
{
    qr_project_body_t pb;
    qr_invalid_t why;
    if (qr_validate_project_body(b, &pb, &why) < 0) {
        check_refusal(&why);
        return;
    }
    if (pb.schema) {
        /* A schema project: no labels, and the schema stored is normalized
         * (parsing it again gives it back). */
        qr_label_schema_t *s;
        qr_label_error_t err;
        if (pb.labels || !qr_validate_name(pb.name))
            broken("schema project accepted with labels or without a name", NULL);
        if (qr_label_schema_parse(pb.schema, &s, &err) < 0)
            broken("normalized schema does not parse", err.message);
        json_t *again = qr_label_schema_to_json(s);
        if (!json_equal(again, pb.schema))
            broken("normalized schema changes when normalized again", NULL);
        json_decref(again);
        qr_label_schema_free(s);
        return;
    }
    size_t n = json_array_size(pb.labels);
    if (!qr_validate_name(pb.name) || n < 1 || n > 1000)
        broken("project accepted without a name or labels", NULL);
    for (size_t i = 0; i < n; i++) {
        const char *l = json_string_value(json_array_get(pb.labels, i));
        if (!qr_validate_name(l))
            broken("project label not a name", NULL);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l, json_string_value(json_array_get(pb.labels, j))))
                broken("project label twice", l);
    }
    char *text = json_dumps(pb.labels, JSON_COMPACT);
    if (!text)
        broken("labels do not encode", NULL);
    free(text);
    check_in(pb.annotations_per_task, 1, 100, "annotations_per_task");
    check_in(pb.lease_ttl_ms, 1000, 86400000, "lease_ttl_ms");
    check_in(pb.overlap_annotations, 1, 100, "overlap_annotations");
    if (!(pb.overlap_fraction >= 0 && pb.overlap_fraction <= 1))
        broken("overlap_fraction out of range", NULL);
    int stratified = !strcmp(pb.sampling, "stratified");
    if (!stratified && strcmp(pb.sampling, "sequential") && strcmp(pb.sampling, "random") &&
        strcmp(pb.sampling, "uncertainty"))
        broken("unknown sampling accepted", pb.sampling);
    if (stratified != (pb.stratify_field != NULL) ||
        (stratified && !qr_validate_name(pb.stratify_field)))
        broken("stratify_field without stratified sampling, or the reverse", NULL);
}

/* POST .../leases, .../release and .../skip. */
static void check_lease_and_release(json_t *b)
{
    qr_invalid_t why;
    int64_t max, wait_ms;
    if (qr_validate_lease_body(b, &max, &wait_ms, &why) < 0) {
        check_refusal(&why);
    } else {
        check_in(max, 1, QR_MAX_LEASES_PER_REQUEST, "max");
        check_in(wait_ms, 0, 60000, "wait_ms");
    }
    const char *reason;
    if (qr_validate_release_body(b, &reason, &why) < 0)
        check_refusal(&why);
    else if (reason && strlen(reason) > 500)
        broken("reason longer than 500 bytes accepted", NULL);
    qr_review_select_body_t sel;
    if (qr_validate_review_select(b, &sel, &why) < 0) {
        check_refusal(&why);
    } else {
        if (strcmp(sel.method, "majority") && strcmp(sel.method, "dawid_skene"))
            broken("unknown review selection method accepted", sel.method);
        if (!(sel.support_below >= 0 && sel.support_below <= 1))
            broken("support_below out of range", NULL);
        check_in(sel.limit, 0, QR_REVIEW_SELECT_MAX, "limit");
    }
}

/* One result (a submit's body or a batch entry) against a fixed label set. */
static void check_result(json_t *o)
{
    static char *const labels[] = {"cat", "dog", "positive", "negative"};
    qr_result_body_t r;
    qr_invalid_t why;
    if (qr_validate_result(o, labels, 4, &r, &why) < 0) {
        check_refusal(&why);
        return;
    }
    int known = 0;
    for (int i = 0; i < 4; i++)
        known |= !strcmp(labels[i], r.label);
    if (!known)
        broken("unknown label accepted", r.label);
    if (r.idempotency_key && !qr_validate_name(r.idempotency_key))
        broken("idempotency_key not a name", NULL);
    if (r.active_ms != -1)
        check_in(r.active_ms, 0, 86400000, "active_ms");
}

/* One result against a schema of every type: an accepted value's canonical
 * text is accepted again as the very same text (what idempotent resends
 * rely on); a refusal of the labels names its field first. */
static void check_result_labels(json_t *o)
{
    static qr_label_schema_t *schema;
    if (!schema) {
        json_t *j = json_loads(
            "{\"fields\": [{\"name\": \"c\", \"type\": \"choice\", \"choices\": [\"a\", \"b\"], "
            "\"required\": false}, {\"name\": \"m\", \"type\": \"multi_choice\", \"choices\": "
            "[\"a\", \"b\", \"c\"], \"required\": false}, {\"name\": \"r\", \"type\": "
            "\"rating\", \"min\": 0, \"max\": 1, \"step\": 0.1, \"required\": false}, {\"name\": "
            "\"s\", \"type\": \"spans\", \"over\": \"text\", \"labels\": [\"A\", \"B\"], "
            "\"overlap\": false, \"required\": false}, {\"name\": \"x\", \"type\": \"boxes\", "
            "\"over\": \"image\", \"labels\": [\"A\"], \"required\": false}, {\"name\": \"t\", "
            "\"type\": \"text\", \"max_length\": 20, \"required\": false}]}",
            0, NULL);
        qr_label_error_t err;
        if (!j || qr_label_schema_parse(j, &schema, &err) < 0)
            abort();
        json_decref(j);
    }
    qr_result_body_t r;
    qr_invalid_t why;
    char *canonical;
    json_t *labels;
    if (qr_validate_result_labels(o, schema, &r, &canonical, &labels, &why) < 0) {
        check_refusal(&why);
        size_t f = strlen(why.field);
        if (!strcmp(why.code, "invalid_labels") &&
            (!f || strncmp(why.message, why.field, f) || why.message[f] != ':'))
            broken("invalid_labels without its field first", why.message);
        return;
    }
    json_t *back = json_loads(canonical, 0, NULL);
    char *again = NULL;
    qr_label_error_t err;
    if (!back || qr_label_check(schema, back, NULL, &again, &err) < 0 || strcmp(again, canonical))
        broken("canonical labels not accepted as themselves", canonical);
    free(again);
    json_decref(back);
    json_decref(labels);
    free(canonical);
}

/* POST .../submit (one) and POST .../submit (batch). */
static void check_submit(json_t *b)
{
    check_result(b);
    check_result_labels(b);
    json_t *results;
    qr_invalid_t why;
    if (qr_validate_batch_body(b, &results, &why) < 0) {
        check_refusal(&why);
        return;
    }
    size_t n = json_array_size(results);
    check_in((int64_t)n, 1, QR_MAX_LEASES_PER_REQUEST, "results");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(results, i);
        int64_t lease;
        if (qr_validate_batch_entry(o, &lease, &why) < 0)
            check_refusal(&why);
        else if (!json_is_object(o))
            broken("batch entry accepted that is not an object", NULL);
        else
            check_result(o);
    }
}

/* Encoding then decoding gives an equal value, and encodes the same again. */
static void check_round_trip(json_t *v, size_t flags)
{
    char *text = json_dumps(v, flags | JSON_ENCODE_ANY);
    if (!text)
        abort();
    json_error_t e;
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!back || !json_equal(v, back)) {
        fprintf(stderr, "fuzz_json: %s does not decode to what was encoded (%s)\n", text,
                back ? "different value" : e.text);
        abort();
    }
    char *again = json_dumps(back, flags | JSON_ENCODE_ANY);
    if (!again || strcmp(text, again))
        abort();
    free(again);
    free(text);
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int allow_empty = 0; allow_empty < 2; allow_empty++) {
        qr_invalid_t why;
        json_t *body = qr_validate_body((const char *)data, size, allow_empty, &why);
        if (!body) {
            check_refusal(&why);
            if (why.status != 400)
                broken("body refused with a status other than 400", why.message);
            continue;
        }
        if (!json_is_object(body))
            broken("body accepted that is not an object", NULL);
        if (allow_empty) { /* the checks do not depend on allow_empty: run them once */
            json_decref(body);
            continue;
        }
        check_user_and_token(body);
        check_project(body);
        check_lease_and_release(body);
        check_submit(body);
        check_round_trip(body, JSON_COMPACT);
        check_round_trip(body, JSON_COMPACT | JSON_SORT_KEYS);
        check_round_trip(body, JSON_INDENT(2));
        json_decref(body);
    }

    /* Task data as the lease path reloads it: any JSON value. */
    json_error_t e;
    json_t *any = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
    if (any) {
        check_round_trip(any, JSON_COMPACT);
        json_decref(any);
    }
    return 0;
}
