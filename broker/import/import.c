/*
 * import.c - JSONL import bodies to COPY rows (see import.h).
 */
#include "import.h"
#include "import_int.h"
#include "label_schema.h"
#include "ls_result.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Overlap tasks' priority shift with overlap_first: beyond any other
 * priority (ids stay below 2^53). */
#define OVERLAP_FIRST_SHIFT 1e16

void qr_import_json_string(qr_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    qr_buf_append(b, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        qr_buf_append(b, s + from, i - from);
        from = i + 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            qr_buf_append(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            qr_buf_append(b, esc, 6);
        }
    }
    qr_buf_append(b, s + from, n - from);
    qr_buf_append(b, "\"", 1);
}

void qr_import_copy_escape(qr_buf_t *b, const char *s)
{
    /* Runs of plain bytes are appended at once: a byte at a time was a
     * function call per byte of every task of an import. */
    for (;;) {
        size_t run = strcspn(s, "\\\n\r\t");
        if (run)
            qr_buf_append(b, s, run);
        s += run;
        switch (*s) {
        case '\0':
            return;
        case '\\':
            qr_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            qr_buf_append(b, "\\n", 2);
            break;
        case '\r':
            qr_buf_append(b, "\\r", 2);
            break;
        default:
            qr_buf_append(b, "\\t", 2);
            break;
        }
        s++;
    }
}

/* The stratify field's value as text: a string as it is, anything else as
 * compact JSON; NULL when the field is missing. */
static char *stratum_of(json_t *data, const char *field)
{
    json_t *v = field ? json_object_get(data, field) : NULL;
    if (!v)
        return NULL;
    if (json_is_string(v))
        return qr_xstrdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Reals in what is kept from another tool (predictions, annotations) are
 * written with 15 significant digits, so 0.55 stays 0.55 rather than
 * becoming 0.55000000000000004 (jansson's default of 17). */
#define KEPT_PRECISION JSON_REAL_PRECISION(15)

/* A violation of the project's rules: the field it is in, and why. */
typedef struct verdict_s {
    int rule; /* 1: a rule violation (QR_IMPORT_EREJECT), 0: bad input (QR_EINVAL) */
    char field[96];
    char why[384];
} verdict_t;

static int reject(verdict_t *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills v with a rule violation in field; returns -1. */
static int reject(verdict_t *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    v->rule = 1;
    snprintf(v->field, sizeof v->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int invalid(verdict_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fills v with bad input (no rule: the shape is wrong); returns -1. */
static int invalid(verdict_t *v, const char *fmt, ...)
{
    va_list ap;
    v->rule = 0;
    v->field[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
    return -1;
}

int qr_import_check_label(const qr_import_opts_t *opts, const char *l, size_t len, char *why,
                          size_t whylen)
{
    while (len && isspace((unsigned char)*l))
        l++, len--;
    while (len && isspace((unsigned char)l[len - 1]))
        len--;
    if (!opts || opts->nlabels == 0)
        return 0;
    for (int i = 0; i < opts->nlabels; i++)
        if (strlen(opts->labels[i]) == len && !memcmp(opts->labels[i], l, len))
            return 0;
    qr_buf_t b;
    qr_buf_init(&b);
    for (int i = 0; i < opts->nlabels && b.len < 200; i++)
        qr_buf_appendf(&b, "%s%s", i ? ", " : "", opts->labels[i]);
    snprintf(why, whylen, "\"%.*s\" is not one of the project's labels (%s%s)",
             len > 100 ? 100 : (int)len, l, b.data ? b.data : "",
             b.len >= 200 && opts->nlabels > 1 ? ", ..." : "");
    qr_buf_free(&b);
    return -1;
}

int qr_import_check_score(double v, char *why, size_t whylen)
{
    if (isfinite(v) && v >= 0.0 && v <= 1.0)
        return 0;
    snprintf(why, whylen, "score %g is outside [0, 1]", v);
    return -1;
}

qr_import_schema_t *qr_import_schema_new(const qr_label_schema_t *schema)
{
    if (!schema || schema->implied)
        return NULL;
    json_t *j = qr_label_schema_to_json(schema);
    qr_import_schema_t *s = qr_xcalloc(1, sizeof *s);
    qr_label_error_t err;
    if (!j || qr_label_schema_parse(j, &s->schema, &err) < 0 ||
        qr_label_schema_parse(j, &s->relaxed, &err) < 0) {
        /* A schema the broker stored parses again: anything else is a bug. */
        fprintf(stderr, "quorum: a stored label schema does not parse: %s\n", err.message);
        abort();
    }
    for (int i = 0; i < s->relaxed->nfields; i++)
        s->relaxed->fields[i].required = 0;
    s->fields = json_incref(json_object_get(j, "fields"));
    json_decref(j);
    return s;
}

void qr_import_schema_free(qr_import_schema_t *s)
{
    if (!s)
        return;
    qr_label_schema_free(s->schema);
    qr_label_schema_free(s->relaxed);
    json_decref(s->fields);
    free(s);
}

char *qr_import_schema_labels(const qr_import_opts_t *opts, json_t *value, json_t *data,
                              int relaxed, char *why, size_t whylen)
{
    const qr_label_schema_t *s = relaxed ? opts->schema->relaxed : opts->schema->schema;
    qr_label_error_t err;
    json_t *labels = NULL;
    if (json_is_object(value)) {
        labels = json_incref(value);
    } else if (json_is_string(value)) {
        labels = qr_label_from_single(s, value, &err);
        if (!labels) {
            snprintf(why, whylen, "%s", err.message);
            return NULL;
        }
    } else {
        snprintf(why, whylen,
                 "must be a labels object ({\"<field>\": value, ...}) for this project's schema");
        return NULL;
    }
    /* Span ends are checked against the task's text, in code points. */
    const char *keys[QR_LABEL_FIELDS_MAX];
    int64_t lengths[QR_LABEL_FIELDS_MAX];
    int n = qr_label_data_keys(s, labels, keys, QR_LABEL_FIELDS_MAX);
    if (n > QR_LABEL_FIELDS_MAX)
        n = QR_LABEL_FIELDS_MAX;
    for (int i = 0; i < n; i++) {
        json_t *x = data ? json_object_get(data, keys[i]) : NULL;
        lengths[i] = !x ? QR_LABEL_DATA_MISSING
                     : !json_is_string(x)
                         ? QR_LABEL_DATA_NOT_TEXT
                         : qr_label_utf8_length(json_string_value(x), json_string_length(x));
    }
    qr_label_data_t d = {.n = n, .keys = keys, .lengths = lengths};
    char *canonical = NULL;
    int rc = qr_label_check(s, labels, &d, &canonical, &err);
    json_decref(labels);
    if (rc < 0) {
        snprintf(why, whylen, "%s", err.message);
        return NULL;
    }
    return canonical;
}

/* A Label Studio result array mapped onto the schema's fields and checked
 * (relaxed: no field required): canonical text; NULL with *empty set when
 * the result fills no field; NULL with v (in field) when it breaks a rule. */
static char *schema_result(const qr_import_opts_t *opts, json_t *result, json_t *data, int relaxed,
                           const char *field, int *empty, verdict_t *v)
{
    char why[384];
    *empty = 0;
    if (!json_is_array(result)) {
        reject(v, field, "must be an array (Label Studio's result)");
        return NULL;
    }
    json_t *labels = qr_ls_result_to_labels(opts->schema->fields, result, data, why, sizeof why);
    if (!labels) {
        reject(v, field, "%s", why);
        return NULL;
    }
    if (json_object_size(labels) == 0) {
        json_decref(labels);
        *empty = 1;
        return NULL;
    }
    char *canonical = qr_import_schema_labels(opts, labels, data, relaxed, why, sizeof why);
    json_decref(labels);
    if (!canonical)
        reject(v, field, "%s", why);
    return canonical;
}

/* A label-valued JSON string checked and trimmed: heap text, or NULL with
 * the violation in v. */
static char *take_label(const qr_import_opts_t *opts, json_t *s, const char *field, verdict_t *v)
{
    if (!json_is_string(s) || json_string_length(s) == 0) {
        reject(v, field, "must be a non-empty string");
        return NULL;
    }
    const char *l = json_string_value(s);
    size_t len = json_string_length(s);
    char why[320];
    if (qr_import_check_label(opts, l, len, why, sizeof why) < 0) {
        reject(v, field, "%s", why);
        return NULL;
    }
    while (len && isspace((unsigned char)*l))
        l++, len--;
    while (len && isspace((unsigned char)l[len - 1]))
        len--;
    if (len == 0) {
        reject(v, field, "must be a non-empty string");
        return NULL;
    }
    return qr_xstrndup(l, len);
}

/* A score: 0 with *out set (NAN when missing or null), or -1 with v. */
static int take_score(json_t *score, const char *field, double *out, verdict_t *v)
{
    *out = NAN;
    if (!score || json_is_null(score))
        return 0;
    if (!json_is_number(score) || !isfinite(json_number_value(score)))
        return reject(v, field, "must be a number in [0, 1]");
    char why[128];
    if (qr_import_check_score(json_number_value(score), why, sizeof why) < 0)
        return reject(v, field, "%s", why);
    *out = json_number_value(score);
    return 0;
}

/* Checks a Label Studio result array (field names it): every choice among
 * the project's labels. Sets *single to the choice when the result holds
 * exactly one (borrowed from result), else NULL. */
static int check_result(const qr_import_opts_t *opts, json_t *result, const char *field,
                        const char **single, verdict_t *v)
{
    *single = NULL;
    if (!json_is_array(result))
        return reject(v, field, "must be an array (Label Studio's result)");
    size_t i, nchoices = 0;
    json_t *item;
    json_array_foreach(result, i, item)
    {
        char f[96];
        if (!json_is_object(item)) {
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            return reject(v, f, "must be an object");
        }
        json_t *choices = json_object_get(json_object_get(item, "value"), "choices");
        if (!choices)
            continue; /* not a classification: kept as it is */
        snprintf(f, sizeof f, "%s[%zu].value.choices", field, i);
        if (!json_is_array(choices))
            return reject(v, f, "must be an array of labels");
        size_t j;
        json_t *c;
        json_array_foreach(choices, j, c)
        {
            char why[320];
            if (!json_is_string(c))
                return reject(v, f, "must be an array of labels");
            if (qr_import_check_label(opts, json_string_value(c), json_string_length(c), why,
                                      sizeof why) < 0)
                return reject(v, f, "%s", why);
            *single = nchoices++ ? NULL : json_string_value(c);
        }
    }
    if (nchoices != 1)
        *single = NULL;
    return 0;
}

/* Label Studio's "predictions": kept whole in t->predictions; the best
 * scored (else the first) becomes the task's prediction {"label", "score",
 * "model_version"} unless the row also has a "prediction". */
static int take_predictions(const qr_import_opts_t *opts, json_t *preds, json_t *data, int has_own,
                            qr_import_task_t *t, verdict_t *v)
{
    if (!json_is_array(preds))
        return reject(v, "predictions", "must be an array");
    size_t i, best = 0;
    double best_score = NAN;
    const char *best_label = NULL;
    char *best_labels = NULL; /* a schema project's: canonical text */
    json_t *p;
    json_array_foreach(preds, i, p)
    {
        char f[96];
        snprintf(f, sizeof f, "predictions[%zu]", i);
        if (!json_is_object(p))
            return reject(v, f, "must be an object");
        double score;
        snprintf(f, sizeof f, "predictions[%zu].score", i);
        if (take_score(json_object_get(p, "score"), f, &score, v) < 0)
            goto fail;
        const char *single = NULL;
        char *labels = NULL;
        json_t *result = json_object_get(p, "result");
        snprintf(f, sizeof f, "predictions[%zu].result", i);
        if (result && opts && opts->schema) {
            /* A model may fill some fields only: none is required here. */
            int empty;
            labels = schema_result(opts, result, data, 1, f, &empty, v);
            if (!labels && !empty)
                goto fail;
        } else if (result && check_result(opts, result, f, &single, v) < 0) {
            goto fail;
        }
        if (i == 0 || (!isnan(score) && (isnan(best_score) || score > best_score))) {
            best = i;
            best_score = score;
            best_label = single;
            free(best_labels);
            best_labels = labels;
        } else {
            free(labels);
        }
    }
    if (json_array_size(preds) == 0)
        return 0;
    t->predictions = json_dumps(preds, JSON_COMPACT | KEPT_PRECISION);
    if (has_own) {
        free(best_labels);
        return 0;
    }
    json_t *top = json_array_get(preds, best);
    json_t *own = json_object();
    if (best_label)
        json_object_set_new(own, "label", json_string(best_label));
    if (best_labels)
        json_object_set_new(own, "labels", json_loads(best_labels, 0, NULL));
    free(best_labels);
    if (!isnan(best_score))
        json_object_set_new(own, "score", json_real(best_score));
    json_t *mv = json_object_get(top, "model_version");
    if (mv && !json_is_null(mv))
        json_object_set(own, "model_version", mv);
    t->prediction = json_dumps(own, JSON_COMPACT | KEPT_PRECISION);
    t->score = best_score;
    json_decref(own);
    return 0;
fail:
    free(best_labels);
    return -1;
}

/* Label Studio's "annotations", normalized into t->annotations (import.h). */
static int take_annotations(const qr_import_opts_t *opts, json_t *anns, json_t *data,
                            qr_import_task_t *t, verdict_t *v)
{
    if (!json_is_array(anns))
        return reject(v, "annotations", "must be an array");
    if (json_array_size(anns) == 0)
        return 0;
    json_t *out = json_array();
    char *labels = NULL; /* a schema project's label: canonical text */
    size_t i;
    json_t *a;
    json_array_foreach(anns, i, a)
    {
        char f[96];
        const char *single = NULL;
        snprintf(f, sizeof f, "annotations[%zu]", i);
        if (!json_is_object(a))
            goto rejected_obj;
        json_t *result = json_object_get(a, "result");
        snprintf(f, sizeof f, "annotations[%zu].result", i);
        if (opts && opts->schema) {
            /* As a submission: every required field. An empty result
             * (a skipped task) has no label, as one without choices. */
            int empty;
            labels = schema_result(opts, result ? result : json_null(), data, 0, f, &empty, v);
            if (!labels && !empty)
                goto fail;
        } else if (check_result(opts, result ? result : json_null(), f, &single, v) < 0) {
            goto fail;
        }
        json_t *lead = json_object_get(a, "lead_time");
        snprintf(f, sizeof f, "annotations[%zu].lead_time", i);
        if (lead && !json_is_null(lead) &&
            (!json_is_number(lead) || !isfinite(json_number_value(lead)) ||
             json_number_value(lead) < 0)) {
            reject(v, f, "must be a number of seconds, 0 or more");
            goto fail;
        }
        json_t *cancelled = json_object_get(a, "was_cancelled");
        json_t *truth = json_object_get(a, "ground_truth");
        snprintf(f, sizeof f, "annotations[%zu].%s", i,
                 cancelled && !json_is_boolean(cancelled) ? "was_cancelled" : "ground_truth");
        if ((cancelled && !json_is_boolean(cancelled)) || (truth && !json_is_boolean(truth))) {
            reject(v, f, "must be true or false");
            goto fail;
        }
        /* Who made it at the source: a user id, or (some Label Studio
         * exports) an object with one; anything else is not kept. */
        json_t *by = json_object_get(a, "completed_by");
        if (json_is_object(by))
            by = json_object_get(by, "id");
        if (!json_is_integer(by))
            by = NULL;
        json_t *id = json_object_get(a, "id");
        json_t *source = NULL;
        if (json_is_integer(id)) {
            char buf[32];
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
            source = json_string(buf);
        } else if (json_is_string(id) && json_string_length(id) >= 1 &&
                   json_string_length(id) <= 1000) {
            source = json_incref(id);
        }
        json_t *created = json_object_get(a, "created_at");
        snprintf(f, sizeof f, "annotations[%zu].created_at", i);
        if (created && !json_is_null(created)) {
            const char *c = json_string_value(created);
            int y, mo, d;
            if (!c || sscanf(c, "%4d-%2d-%2d", &y, &mo, &d) != 3 || mo < 1 || mo > 12 || d < 1 ||
                d > 31) {
                json_decref(source);
                reject(v, f, "must be a timestamp such as 2024-05-01T12:00:00Z");
                goto fail;
            }
        }
        json_t *n = json_object();
        json_object_set_new(n, "label",
                            labels   ? json_string(labels)
                            : single ? json_string(single)
                                     : json_null());
        free(labels);
        labels = NULL;
        json_object_set(n, "result", result);
        json_object_set(n, "lead_time", lead && json_is_number(lead) ? lead : json_null());
        json_object_set_new(n, "was_cancelled", json_boolean(json_is_true(cancelled)));
        json_object_set_new(n, "ground_truth", json_boolean(json_is_true(truth)));
        json_object_set_new(n, "source_id", source ? source : json_null());
        json_object_set(n, "created_at",
                        created && json_is_string(created) ? created : json_null());
        json_object_set(n, "completed_by", by ? by : json_null());
        json_array_append_new(out, n);
        continue;
    rejected_obj:
        reject(v, f, "must be an object");
        goto fail;
    }
    t->annotations = json_dumps(out, JSON_COMPACT | KEPT_PRECISION);
    json_decref(out);
    return 0;
fail:
    free(labels);
    json_decref(out);
    return -1;
}

/* An external id value (integer, or a string of 1 to 1000 bytes) into t;
 * 0 or -1 with v naming key. */
static int take_id_value(json_t *val, const char *key, qr_import_task_t *t, verdict_t *v)
{
    if (!val || json_is_null(val))
        return 0;
    if (json_is_integer(val)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(val));
        t->external_id = qr_xstrdup(buf);
        return 0;
    }
    if (json_is_string(val) && json_string_length(val) > 0 &&
        json_string_length(val) <= QR_IMPORT_MAX_EXTERNAL_ID) {
        t->external_id = qr_xstrdup(json_string_value(val));
        return 0;
    }
    return reject(v, key, "an external id must be an integer or a string of 1 to %d bytes",
                  QR_IMPORT_MAX_EXTERNAL_ID);
}

/* The task's external id: the chosen key (top level, else in the data; it
 * stays in the data), else "external_id" (taken out of o when o is the data
 * itself), else a Label Studio task's meta.external_id (what Quorum's own
 * Label Studio export writes there), else its "id". */
static int take_external_id(const qr_import_opts_t *opts, json_t *o, json_t *data,
                            qr_import_task_t *t, verdict_t *v)
{
    const char *key = opts ? opts->external_id_key : NULL;
    if (key) {
        json_t *val = json_object_get(o, key);
        if (!val && data)
            val = json_object_get(data, key);
        if (!val || json_is_null(val))
            return reject(v, key, "is missing (the external id key)");
        return take_id_value(val, key, t, v);
    }
    json_t *val = json_object_get(o, "external_id");
    int rc;
    if (val && !json_is_null(val)) {
        rc = take_id_value(val, "external_id", t, v);
    } else if (data) {
        /* A task Quorum exported as Label Studio JSON carries its original
         * id in meta.external_id ("id" is Quorum's task id there): it wins,
         * so an export imported again keeps the ids of the source. */
        json_t *meta = json_object_get(o, "meta");
        json_t *kept = json_is_object(meta) ? json_object_get(meta, "external_id") : NULL;
        if (kept && !json_is_null(kept))
            rc = take_id_value(kept, "meta.external_id", t, v);
        else
            rc = take_id_value(json_object_get(o, "id"), "id", t, v);
    } else {
        rc = 0;
    }
    if (!data)
        json_object_del(o, "external_id");
    return rc;
}

/* A schema project's own prediction ({"labels": {...}, "score"}, or
 * {"label": ...} for a schema of one choice field): kept with its labels
 * checked (no field required: a model may fill some) and canonical. */
static int schema_prediction(const qr_import_opts_t *opts, json_t *pred, json_t *data,
                             qr_import_task_t *t, verdict_t *v)
{
    json_t *labels = json_object_get(pred, "labels");
    json_t *label = json_object_get(pred, "label");
    const char *field = "prediction.labels";
    if ((!labels || json_is_null(labels)) && label && !json_is_null(label)) {
        labels = label;
        field = "prediction.label";
    }
    json_t *copy = json_deep_copy(pred);
    json_object_del(copy, "label");
    json_object_del(copy, "labels");
    if (labels && !json_is_null(labels)) {
        char why[384];
        char *canonical = qr_import_schema_labels(opts, labels, data, 1, why, sizeof why);
        if (!canonical) {
            json_decref(copy);
            return reject(v, field, "%s", why);
        }
        json_object_set_new(copy, "labels", json_loads(canonical, 0, NULL));
        free(canonical);
    }
    t->prediction = json_dumps(copy, JSON_COMPACT | KEPT_PRECISION);
    json_decref(copy);
    return 0;
}

/* Reads one task into t: 0, or -1 with v filled. */
static int parse_task(json_t *o, const qr_import_opts_t *opts, qr_import_task_t *t, verdict_t *v)
{
    const char *stratify_field = opts ? opts->stratify_field : NULL;
    json_t *data = json_object_get(o, "data");
    if (data && !json_is_object(data))
        return invalid(v, "\"data\" must be a JSON object");
    if (take_external_id(opts, o, data, t, v) < 0)
        return -1;
    t->score = NAN;
    if (data) {
        json_t *pred = json_object_get(o, "prediction");
        json_t *preds = json_object_get(o, "predictions");
        json_t *gold = json_object_get(o, "gold");
        json_t *anns = json_object_get(o, "annotations");
        int has_own = pred && !json_is_null(pred);
        if (has_own) {
            if (!json_is_object(pred))
                return invalid(v, "\"prediction\" must be a JSON object");
            if (take_score(json_object_get(pred, "score"), "prediction.score", &t->score, v) < 0)
                return -1;
            json_t *label = json_object_get(pred, "label");
            if (opts && opts->schema) {
                if (schema_prediction(opts, pred, data, t, v) < 0)
                    return -1;
            } else if (label && !json_is_null(label)) {
                char *l = take_label(opts, label, "prediction.label", v);
                if (!l)
                    return -1;
                json_t *copy = json_deep_copy(pred);
                json_object_set_new(copy, "label", json_string(l));
                free(l);
                t->prediction = json_dumps(copy, JSON_COMPACT);
                json_decref(copy);
            } else {
                t->prediction = json_dumps(pred, JSON_COMPACT);
            }
        }
        if (preds && !json_is_null(preds) && take_predictions(opts, preds, data, has_own, t, v) < 0)
            return -1;
        if (anns && !json_is_null(anns) && take_annotations(opts, anns, data, t, v) < 0)
            return -1;
        if (gold && !json_is_null(gold)) {
            char why[384];
            t->gold = opts && opts->schema
                          ? qr_import_schema_labels(opts, gold, data, 0, why, sizeof why)
                          : take_label(opts, gold, "gold", v);
            if (!t->gold && opts && opts->schema)
                reject(v, "gold", "%s", why);
            if (!t->gold)
                return -1;
        }
    }
    json_t *d = data ? data : o;
    t->data = json_dumps(d, JSON_COMPACT);
    t->stratum = stratum_of(d, stratify_field);
    if (!t->data)
        return invalid(v, "cannot encode the task");
    return 0;
}

/* Walks one JSON value from p to at most end, outside strings counting
 * containers and separators, and line feeds everywhere. With stop, ends at
 * the first ',', ']' or '}' at depth 0 (the end of an array element); the
 * value is not validated here: jansson does that. Returns where it ended. */
typedef struct scan_s {
    size_t containers, separators;
    int64_t newlines;
} scan_t;

static const char *scan_json(const char *p, const char *end, int stop, scan_t *st)
{
    size_t depth = 0;
    int in_string = 0;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '\n')
            st->newlines++;
        if (in_string) {
            if (ch == '\\' && p + 1 < end) {
                p++;
                st->newlines += *p == '\n';
            } else if (ch == '"') {
                in_string = 0;
            }
            continue;
        }
        switch (ch) {
        case '"':
            in_string = 1;
            break;
        case '{':
        case '[':
            depth++;
            st->containers++;
            break;
        case '}':
        case ']':
            if (depth == 0 && stop)
                return p;
            if (depth)
                depth--;
            break;
        case ',':
            if (depth == 0 && stop)
                return p;
            st->separators++;
            break;
        case ':':
            st->separators++;
            break;
        default:
            break;
        }
    }
    return p;
}

static size_t cost_of(size_t n, const scan_t *st)
{
    return 3 * n + 256 * st->containers + 160 * st->separators + 512;
}

size_t qr_import_json_cost(const char *p, size_t n)
{
    scan_t st = {0};
    scan_json(p, p + n, 0, &st);
    return cost_of(n, &st);
}

/* Parses one task (n bytes at p, starting on line `line`) into the sink:
 * 0, QR_EINVAL, QR_IMPORT_EREJECT or QR_ETOOBIG with "<unit> <where>:
 * reason" in err. */
static int parse_one(qr_import_sink_t *s, const char *p, size_t n, size_t transient,
                     const qr_import_opts_t *opts, int64_t where, int64_t line, char *err,
                     size_t errlen)
{
    int rc = qr_import_sink_admit(s, transient, where, err, errlen);
    if (rc < 0)
        return rc;
    json_error_t e;
    /* jansson refuses "\u0000" unless JSON_ALLOW_NUL is given, which
     * suits jsonb: it cannot hold NUL characters either. */
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!o) {
        snprintf(err, errlen, "%s %" PRId64 ": %s", s->unit, where, e.text);
        s->imp->fail_line = line;
        return QR_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "%s %" PRId64 ": a task must be a JSON object", s->unit, where);
        s->imp->fail_line = line;
        return QR_EINVAL;
    }
    qr_import_task_t *t = qr_import_sink_add(s, transient, where, err, errlen);
    if (!t) {
        json_decref(o);
        return QR_ETOOBIG;
    }
    verdict_t v = {0};
    rc = parse_task(o, opts, t, &v);
    json_decref(o);
    if (rc < 0) {
        s->imp->fail_line = line;
        if (v.rule) {
            snprintf(s->imp->fail_field, sizeof s->imp->fail_field, "%s", v.field);
            snprintf(err, errlen, "%s %" PRId64 ": field \"%s\": %s", s->unit, where, v.field,
                     v.why);
            return QR_IMPORT_EREJECT;
        }
        snprintf(err, errlen, "%s %" PRId64 ": %s", s->unit, where, v.why);
        return QR_EINVAL;
    }
    s->imp->annotated += t->annotations != NULL;
    return qr_import_sink_charge(s, transient, where, err, errlen);
}

int qr_import_parse_task(const char *p, size_t n, const qr_import_opts_t *opts, qr_import_task_t *t,
                         char *field, size_t fieldlen, char *why, size_t whylen)
{
    memset(t, 0, sizeof *t);
    t->score = NAN;
    field[0] = '\0';
    json_error_t e;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!o) {
        snprintf(why, whylen, "%s", e.text);
        return QR_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(why, whylen, "a task must be a JSON object");
        return QR_EINVAL;
    }
    verdict_t v = {0};
    int rc = parse_task(o, opts, t, &v);
    json_decref(o);
    if (rc == 0)
        return 0;
    qr_import_task_clear(t);
    snprintf(why, whylen, "%s", v.why);
    if (!v.rule)
        return QR_EINVAL;
    snprintf(field, fieldlen, "%s", v.field);
    return QR_IMPORT_EREJECT;
}

void qr_import_task_clear(qr_import_task_t *t)
{
    free(t->data);
    free(t->prediction);
    free(t->gold);
    free(t->stratum);
    free(t->external_id);
    free(t->predictions);
    free(t->annotations);
    memset(t, 0, sizeof *t);
    t->score = NAN;
}

static int parse_jsonl(const char *body, size_t len, const qr_import_opts_t *opts,
                       qr_import_sink_t *s, char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q))
            q++;
        if (q < le) {
            size_t n = (size_t)(le - p);
            int rc =
                parse_one(s, p, n, qr_import_json_cost(p, n), opts, lineno, lineno, err, errlen);
            if (rc == QR_EINVAL && lineno == 1 && qr_import_looks_delimited(body, len)) {
                size_t used = strlen(err);
                snprintf(err + used, errlen - used,
                         " (the first line looks like a CSV/TSV header: import it as CSV, "
                         "quorumctl import --format csv or tsv, or Content-Type text/csv)");
            }
            if (rc < 0)
                return rc;
        }
        p = nl ? nl + 1 : end;
    }
    if (s->imp->n == 0) {
        snprintf(err, errlen, "the body holds no task");
        return QR_EINVAL;
    }
    return 0;
}

static const char *skip_blanks(const char *p, const char *end, int64_t *line)
{
    for (; p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); p++)
        *line += *p == '\n';
    return p;
}

/* The array element by element: each is cut out by scan_json and parsed
 * alone, so what is held at a time is one element's tree. */
static int parse_array(const char *body, size_t len, const qr_import_opts_t *opts,
                       qr_import_sink_t *s, char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t line = 1, task = 0;
    p = skip_blanks(p, end, &line);
    if (p == end || *p != '[') {
        snprintf(err, errlen, "the body must be a JSON array of tasks");
        return QR_EINVAL;
    }
    p = skip_blanks(p + 1, end, &line);
    if (p < end && *p == ']') {
        snprintf(err, errlen, "the array holds no task");
        return QR_EINVAL;
    }
    for (;;) {
        task++;
        p = skip_blanks(p, end, &line);
        int64_t first = line;
        scan_t st = {0};
        const char *e = scan_json(p, end, 1, &st);
        line += st.newlines;
        if (p == e) {
            snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 "): %s", task, line,
                     e == end ? "the array is not closed" : "a task is missing here");
            return QR_EINVAL;
        }
        char where[512];
        int rc = parse_one(s, p, (size_t)(e - p), cost_of((size_t)(e - p), &st), opts, task, first,
                           where, sizeof where);
        if (rc < 0) {
            /* "task N: why" becomes "task N (line L): why". */
            const char *why = strchr(where, ':');
            snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 ")%s", task, first,
                     why ? why : ": invalid");
            return rc;
        }
        p = skip_blanks(e, end, &line);
        if (p == end) {
            snprintf(err, errlen, "line %" PRId64 ": the array is not closed after task %" PRId64,
                     line, task);
            return QR_EINVAL;
        }
        if (*p == ']')
            break;
        if (*p != ',') {
            snprintf(err, errlen, "line %" PRId64 ": expected ',' or ']' after task %" PRId64, line,
                     task);
            return QR_EINVAL;
        }
        p++;
    }
    p = skip_blanks(p + 1, end, &line);
    if (p != end) {
        snprintf(err, errlen, "line %" PRId64 ": text after the array's closing ']'", line);
        return QR_EINVAL;
    }
    return 0;
}

static int by_external_id(const void *a, const void *b)
{
    const qr_import_task_t *x = *(const qr_import_task_t *const *)a;
    const qr_import_task_t *y = *(const qr_import_task_t *const *)b;
    int c = strcmp(x->external_id, y->external_id);
    return c ? c : (x->where > y->where) - (x->where < y->where);
}

int qr_import_check_external_ids(const qr_import_t *imp, const char *unit, char *err, size_t errlen)
{
    size_t n = 0;
    for (int64_t i = 0; i < imp->n; i++)
        n += imp->tasks[i].external_id != NULL;
    if (n < 2)
        return 0;
    const qr_import_task_t **v = qr_xcalloc(n, sizeof *v);
    n = 0;
    for (int64_t i = 0; i < imp->n; i++)
        if (imp->tasks[i].external_id)
            v[n++] = &imp->tasks[i];
    qsort(v, n, sizeof *v, by_external_id);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (strcmp(v[i - 1]->external_id, v[i]->external_id) == 0) {
            snprintf(err, errlen,
                     "%s %" PRId64 ": external_id \"%.200s\" is also on %s %" PRId64
                     "; each task's external_id must be unique",
                     unit, v[i]->where, v[i]->external_id, unit, v[i - 1]->where);
            rc = QR_EINVAL;
        }
    }
    free(v);
    return rc;
}

char *qr_import_external_ids(const qr_import_t *imp)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < imp->n; i++)
        if (imp->tasks[i].external_id)
            json_array_append_new(a, json_string(imp->tasks[i].external_id));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s ? s : qr_xstrdup("[]");
}

char qr_import_detect_delimiter(const char *body, size_t len)
{
    static const char cand[] = {',', '\t', ';', '|'};
    size_t count[4] = {0};
    int quoted = 0;
    size_t i = len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3) ? 3 : 0;
    for (; i < len; i++) {
        char ch = body[i];
        if (ch == '"')
            quoted = !quoted;
        else if (!quoted && (ch == '\n' || ch == '\r'))
            break;
        else if (!quoted)
            for (int k = 0; k < 4; k++)
                count[k] += ch == cand[k];
    }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (count[k] > count[best])
            best = k;
    return cand[best];
}

int qr_import_looks_delimited(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len || body[i] == '{' || body[i] == '[')
        return 0;
    for (; i < len && body[i] != '\n'; i++)
        if (body[i] == ',' || body[i] == '\t' || body[i] == ';' || body[i] == '|')
            return 1;
    return 0;
}

qr_import_format_t qr_import_sniff(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    return i < len && body[i] == '[' ? QR_IMPORT_JSON_ARRAY : QR_IMPORT_JSONL;
}

int qr_import_parse_bounded(qr_import_format_t format, const char *body, size_t len,
                            const char *stratify_field, const qr_import_limits_t *limits,
                            qr_import_t *imp, char *err, size_t errlen)
{
    qr_import_opts_t opts = {.stratify_field = stratify_field};
    return qr_import_parse_opts(format, body, len, &opts, limits, imp, err, errlen);
}

int qr_import_parse_opts(qr_import_format_t format, const char *body, size_t len,
                         const qr_import_opts_t *opts, const qr_import_limits_t *limits,
                         qr_import_t *imp, char *err, size_t errlen)
{
    qr_import_sink_t s;
    int rc;
    if (format == QR_IMPORT_JSON_ANY)
        format = qr_import_sniff(body, len);
    switch (format) {
    case QR_IMPORT_CSV:
        return qr_import_parse_csv_bounded(body, len, opts, limits, imp, err, errlen);
    case QR_IMPORT_JSON_ARRAY:
        qr_import_sink_init(&s, imp, limits, "task");
        rc = parse_array(body, len, opts, &s, err, errlen);
        break;
    default:
        qr_import_sink_init(&s, imp, limits, "line");
        rc = parse_jsonl(body, len, opts, &s, err, errlen);
        break;
    }
    if (rc == 0)
        rc = qr_import_check_external_ids(imp, s.unit, err, errlen);
    if (rc < 0)
        qr_import_free(imp);
    return rc;
}

int qr_import_parse(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                    char *err, size_t errlen)
{
    return qr_import_parse_bounded(QR_IMPORT_JSONL, body, len, stratify_field, NULL, imp, err,
                                   errlen);
}

int qr_import_parse_json_array(const char *body, size_t len, const char *stratify_field,
                               qr_import_t *imp, char *err, size_t errlen)
{
    return qr_import_parse_bounded(QR_IMPORT_JSON_ARRAY, body, len, stratify_field, NULL, imp, err,
                                   errlen);
}

/* splitmix64: small, fast, good enough to draw tasks and orders. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rand_unit(uint64_t *s)
{
    return (double)(next_rand(s) >> 11) * 0x1.0p-53;
}

static const qr_import_t *sort_imp; /* qsort has no context argument in C11 */

static int by_stratum(const void *a, const void *b)
{
    const char *x = sort_imp->tasks[*(const int64_t *)a].stratum;
    const char *y = sort_imp->tasks[*(const int64_t *)b].stratum;
    int c = strcmp(x ? x : "", y ? y : "");
    if (c)
        return c;
    return (*(const int64_t *)a > *(const int64_t *)b) -
           (*(const int64_t *)a < *(const int64_t *)b);
}

static int64_t prior_count(const qr_strata_t *prior, const char *name)
{
    if (!prior)
        return 0;
    size_t lo = 0, hi = prior->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(prior->names[mid], name);
        if (c == 0)
            return prior->counts[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Stratified priorities: (k + 0.5) / n_s over every task of the stratum. */
static void stratified_priorities(const qr_import_t *imp, const qr_strata_t *prior,
                                  double *priority)
{
    int64_t *order = qr_xcalloc((size_t)imp->n, sizeof *order);
    for (int64_t i = 0; i < imp->n; i++)
        order[i] = i;
    sort_imp = imp;
    qsort(order, (size_t)imp->n, sizeof *order, by_stratum);
    for (int64_t g = 0; g < imp->n;) {
        const char *name = imp->tasks[order[g]].stratum;
        int64_t h = g;
        while (h < imp->n &&
               !strcmp(imp->tasks[order[h]].stratum ? imp->tasks[order[h]].stratum : "",
                       name ? name : ""))
            h++;
        int64_t before = prior_count(prior, name ? name : "");
        double total = (double)(before + (h - g));
        for (int64_t k = g; k < h; k++)
            priority[order[k]] = ((double)(before + (k - g)) + 0.5) / total;
        g = h;
    }
    free(order);
}

void qr_import_rows(const qr_import_t *imp, const int64_t *ids, const qr_import_policy_t *pol,
                    const qr_strata_t *prior, uint64_t seed, qr_buf_t *out)
{
    int64_t n = imp->n;
    double *priority = qr_xcalloc((size_t)n, sizeof *priority);
    char *overlap = qr_xcalloc((size_t)n, 1);
    uint64_t rng = seed;

    /* Exactly round(fraction * n) tasks of the batch, drawn uniformly
     * (a partial Fisher-Yates shuffle over the indices). */
    int64_t k = (int64_t)llround(pol->overlap_fraction * (double)n);
    if (pol->overlap_annotations == pol->annotations_per_task)
        k = 0;
    if (k > 0) {
        int64_t *idx = qr_xcalloc((size_t)n, sizeof *idx);
        for (int64_t i = 0; i < n; i++)
            idx[i] = i;
        for (int64_t i = 0; i < k; i++) {
            int64_t j = i + (int64_t)(next_rand(&rng) % (uint64_t)(n - i));
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            overlap[idx[i]] = 1;
        }
        free(idx);
    }

    const char *s = pol->sampling ? pol->sampling : "sequential";
    if (!strcmp(s, "stratified")) {
        stratified_priorities(imp, prior, priority);
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (!strcmp(s, "random"))
                priority[i] = rand_unit(&rng);
            else if (!strcmp(s, "uncertainty"))
                priority[i] = isnan(imp->tasks[i].score) ? -1.0 : imp->tasks[i].score;
            else
                priority[i] = (double)ids[i];
        }
    }

    /* The rows' size, reserved at once: growing by doubling would hold up
     * to twice the rows of a large import. 128 bytes a row cover the ids,
     * numbers, tabs and \N; escapes beyond that grow the buffer. */
    size_t need = 128 * (size_t)n;
    for (int64_t i = 0; i < n; i++) {
        const qr_import_task_t *t = &imp->tasks[i];
        const char *str[] = {t->data,    t->prediction,  t->gold,
                             t->stratum, t->external_id, t->predictions};
        for (size_t k = 0; k < sizeof str / sizeof *str; k++)
            need += str[k] ? strlen(str[k]) : 0;
    }
    qr_buf_reserve(out, need);

    for (int64_t i = 0; i < n; i++)
        qr_import_row(&imp->tasks[i], ids[i], pol, overlap[i], priority[i], out);
    free(priority);
    free(overlap);
}

double qr_import_priority(const qr_import_task_t *t, int64_t id, const char *sampling,
                          uint64_t *rng)
{
    const char *s = sampling ? sampling : "sequential";
    if (!strcmp(s, "random"))
        return rand_unit(rng);
    if (!strcmp(s, "uncertainty"))
        return isnan(t->score) ? -1.0 : t->score;
    return (double)id;
}

void qr_import_row(const qr_import_task_t *t, int64_t id, const qr_import_policy_t *pol,
                   int overlap, double priority, qr_buf_t *out)
{
    double pr = priority - (pol->overlap_first && overlap ? OVERLAP_FIRST_SHIFT : 0);
    qr_buf_appendf(out, "%" PRId64 "\t%" PRId64 "\t", id, pol->project_id);
    qr_import_copy_escape(out, t->data);
    qr_buf_appendf(out, "\t%d\t%.17g\t%s\t",
                   overlap ? pol->overlap_annotations : pol->annotations_per_task, pr,
                   overlap ? "t" : "f");
    if (t->prediction)
        qr_import_copy_escape(out, t->prediction);
    else
        qr_buf_appends(out, "\\N");
    if (isnan(t->score))
        qr_buf_appends(out, "\t\\N\t");
    else
        qr_buf_appendf(out, "\t%.17g\t", t->score);
    if (t->gold)
        qr_import_copy_escape(out, t->gold);
    else
        qr_buf_appends(out, "\\N");
    qr_buf_appends(out, "\t");
    if (t->stratum)
        qr_import_copy_escape(out, t->stratum);
    else
        qr_buf_appends(out, "\\N");
    if (pol->import_id)
        qr_buf_appendf(out, "\t%" PRId64 "\t", pol->import_id);
    else
        qr_buf_appends(out, "\t\\N\t");
    if (t->external_id)
        qr_import_copy_escape(out, t->external_id);
    else
        qr_buf_appends(out, "\\N");
    qr_buf_appends(out, "\t");
    if (t->predictions)
        qr_import_copy_escape(out, t->predictions);
    else
        qr_buf_appends(out, "\\N");
    qr_buf_appends(out, "\n");
}
