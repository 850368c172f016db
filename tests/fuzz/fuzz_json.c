/*
 * fuzz_json.c - libFuzzer harness for the JSON request bodies of the API
 * (broker/api.c). The handlers' validators are static functions bound to a
 * request context with PostgreSQL and Redis behind it, so this harness runs
 * the same steps on its own: the body parsed as parse_body() parses it
 * (leading white space skipped, empty means {}, json_loadb with
 * JSON_REJECT_DUPLICATES, an object required), then every field access and
 * check the handlers make (users, tokens, projects, leases, release/skip,
 * submit and batch submit), mirrored from api.c. Then two properties of
 * jansson the broker relies on when it stores and re-serves bodies: what it
 * encodes decodes to an equal value, and encoding is deterministic.
 */
#include <ctype.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* api.c's valid_name. */
static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 200;
}

/* api.c's int_field, returning the outcome instead of responding. */
static int int_field(json_t *body, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                     int64_t *out)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* api.c's parse_lifetime: "30d", "12h", "90m", "45s" or seconds -> seconds. */
static int64_t parse_lifetime(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0)
        return -1;
    int64_t unit = 1;
    if (*end == 'd')
        unit = 86400;
    else if (*end == 'h')
        unit = 3600;
    else if (*end == 'm')
        unit = 60;
    else if (*end == 's' || *end == '\0')
        unit = 1;
    else
        return -1;
    if (*end && end[1])
        return -1;
    if (v > 3650LL * 86400 / unit)
        return -1;
    return v * unit;
}

static int role_of(const char *s)
{
    static const char *const roles[] = {"admin", "manager", "reviewer", "annotator"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, roles[i]))
            return i + 1;
    return 0;
}

/* POST /v1/users and POST /v1/tokens. */
static void check_user_and_token(json_t *b)
{
    (void)valid_name(json_string_value(json_object_get(b, "name")));
    (void)role_of(json_string_value(json_object_get(b, "role")));
    (void)valid_name(json_string_value(json_object_get(b, "user")));
    json_t *exp = json_object_get(b, "expires");
    if (exp && !json_is_null(exp) && json_is_string(exp)) {
        int64_t s = parse_lifetime(json_string_value(exp));
        if (s > 3650LL * 86400)
            abort();
    }
}

/* POST /v1/projects. */
static void check_project(json_t *b)
{
    json_t *labels = json_object_get(b, "labels");
    size_t n = json_array_size(labels);
    if (json_is_array(labels) && n >= 1 && n <= 1000) {
        for (size_t i = 0; i < n; i++) {
            const char *l = json_string_value(json_array_get(labels, i));
            if (!valid_name(l))
                break;
            size_t j = 0;
            while (j < i && strcmp(l, json_string_value(json_array_get(labels, j))))
                j++;
            if (j < i)
                break;
        }
        char *text = json_dumps(labels, JSON_COMPACT);
        if (!text)
            abort();
        free(text);
    }
    int64_t apt, ttl, ov;
    if (int_field(b, "annotations_per_task", 1, 100, 1, &apt) == 0 &&
        int_field(b, "lease_ttl_ms", 1000, 86400000, 60000, &ttl) == 0 &&
        int_field(b, "overlap_annotations", 1, 100, apt, &ov) == 0) {
        if (apt < 1 || apt > 100 || ttl < 1000 || ov < 1 || ov > 100)
            abort();
    }
    json_t *frac = json_object_get(b, "overlap_fraction");
    if (json_is_number(frac)) {
        char fr[40];
        snprintf(fr, sizeof fr, "%.17g", json_number_value(frac));
    }
    (void)json_is_boolean(json_object_get(b, "overlap_first"));
    const char *sampling = json_string_value(json_object_get(b, "sampling"));
    const char *field = json_string_value(json_object_get(b, "stratify_field"));
    if (sampling && !strcmp(sampling, "stratified"))
        (void)valid_name(field);
}

/* POST .../leases, .../release and .../skip. */
static void check_lease_and_release(json_t *b)
{
    int64_t max, wait_ms;
    if (int_field(b, "max", 1, 100, 1, &max) == 0 && (max < 1 || max > 100))
        abort();
    if (int_field(b, "wait_ms", 0, 60000, 0, &wait_ms) == 0 && (wait_ms < 0 || wait_ms > 60000))
        abort();
    json_t *reason = json_object_get(b, "reason");
    if (json_is_string(reason) && json_string_length(reason) <= 500)
        (void)strlen(json_string_value(reason));
}

/* api.c's read_result: one submit (label, idempotency_key, active_ms). */
static void check_result(json_t *o)
{
    static const char *const labels[] = {"cat", "dog", "positive", "negative"};
    json_t *label = json_object_get(o, "label");
    if (!json_is_string(label))
        return;
    for (int i = 0; i < 4; i++)
        if (!strcmp(labels[i], json_string_value(label)))
            break;
    char msg[300];
    snprintf(msg, sizeof msg, "\"%.200s\" is not one of the project's labels",
             json_string_value(label));
    json_t *key = json_object_get(o, "idempotency_key");
    if (key && !json_is_null(key) && (!json_is_string(key) || !valid_name(json_string_value(key))))
        return;
    int64_t act;
    (void)int_field(o, "active_ms", 0, 86400000, -1, &act);
}

/* POST .../submit (one) and POST .../submit (batch). */
static void check_submit(json_t *b)
{
    check_result(b);
    json_t *results = json_object_get(b, "results");
    size_t n = json_array_size(results);
    if (!json_is_array(results) || n < 1 || n > 100)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(results, i);
        json_t *lease = json_object_get(o, "lease");
        char *end = NULL;
        long long id = 0;
        if (json_is_integer(lease))
            id = json_integer_value(lease);
        else if (json_is_string(lease))
            id = strtoll(json_string_value(lease), &end, 10);
        (void)id;
        if (json_is_object(o))
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
    const char *p = (const char *)data;
    size_t n = size;
    while (n && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    json_error_t e;
    json_t *body = n ? json_loadb(p, n, JSON_REJECT_DUPLICATES, &e) : json_object();
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "line %d column %d: %s", e.line, e.column, e.text);
    } else if (json_is_object(body)) {
        check_user_and_token(body);
        check_project(body);
        check_lease_and_release(body);
        check_submit(body);
        check_round_trip(body, JSON_COMPACT);
        check_round_trip(body, JSON_COMPACT | JSON_SORT_KEYS);
        check_round_trip(body, JSON_INDENT(2));
    }
    json_decref(body);

    /* Task data as the lease path reloads it: any JSON value. */
    json_t *any = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
    if (any) {
        check_round_trip(any, JSON_COMPACT);
        json_decref(any);
    }
    return 0;
}
