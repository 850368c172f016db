/*
 * validate.c - the v1 API's checks of JSON request bodies (validate.h). Pure
 * functions over jansson values: the handlers answer with what they report, and the
 * fuzz harness calls them directly, so there is one copy of each rule.
 */
#include "validate.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "protocol.h"

void qr_validate_scrub(char *message)
{
    for (char *p = message; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    json_t *ok = json_string(message); /* jansson's own UTF-8 check */
    if (ok) {
        json_decref(ok);
        return;
    }
    for (char *p = message; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
}

/* Fills why (a one-line, valid UTF-8 message) and returns -1. */
static int refuse(qr_invalid_t *why, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(qr_invalid_t *why, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    why->status = status;
    why->code = code;
    why->field[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(why->message, sizeof why->message, fmt, ap);
    va_end(ap);
    qr_validate_scrub(why->message);
    return -1;
}

/* An upper bound of the values in a JSON text, counted without parsing it:
 * one for the text, one more for each '[', '{' or ',' outside strings. */
static size_t count_values(const char *p, size_t n)
{
    size_t values = 1;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = 0;
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '[' || ch == '{' || ch == ',') {
            values++;
        }
    }
    return values;
}

json_t *qr_validate_body(const char *body, size_t len, int allow_empty, qr_invalid_t *why)
{
    const char *p = body;
    size_t n = len;
    while (n && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    if (n == 0 && allow_empty)
        return json_object();
    if (count_values(p, n) > QR_JSON_MAX_VALUES) {
        refuse(why, 400, "too_many_values", "the body holds more than %d JSON values",
               QR_JSON_MAX_VALUES);
        return NULL;
    }
    json_error_t e;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &e);
    if (!o) {
        refuse(why, 400, "invalid_json", "the body is not valid JSON: line %d column %d: %s",
               e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        refuse(why, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return o;
}

int qr_validate_int(json_t *body, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                    int64_t *out, qr_invalid_t *why)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return refuse(why, 422, "invalid", "%s must be an integer from %" PRId64 " to %" PRId64,
                      key, lo, hi);
    *out = json_integer_value(v);
    return 0;
}

int qr_validate_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* U+0080-U+009F in UTF-8 */
            return 0;
    }
    return 1;
}

int qr_validate_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 200 && qr_validate_text(s);
}

int qr_validate_role(const char *s)
{
    if (!s)
        return 0;
    if (!strcmp(s, "admin"))
        return QR_ROLE_ADMIN;
    if (!strcmp(s, "manager"))
        return QR_ROLE_MANAGER;
    if (!strcmp(s, "reviewer"))
        return QR_ROLE_REVIEWER;
    if (!strcmp(s, "annotator"))
        return QR_ROLE_ANNOTATOR;
    return 0;
}

int qr_validate_role_rank(int role)
{
    switch (role) {
    case QR_ROLE_ANNOTATOR:
        return 1;
    case QR_ROLE_REVIEWER:
        return 2;
    case QR_ROLE_MANAGER:
        return 3;
    case QR_ROLE_ADMIN:
        return 4;
    default:
        return 0;
    }
}

int64_t qr_validate_lifetime(const char *s)
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

int qr_validate_user_body(json_t *body, int caller_role, const char **name, int *role,
                          qr_invalid_t *why)
{
    *name = json_string_value(json_object_get(body, "name"));
    *role = qr_validate_role(json_string_value(json_object_get(body, "role")));
    if (!qr_validate_name(*name))
        return refuse(why, 422, "invalid",
                      "name must be a string of 1 to 200 characters and no control characters");
    if (!*role)
        return refuse(why, 422, "invalid", "role must be admin, manager, reviewer or annotator");
    if (*role == QR_ROLE_ADMIN && caller_role != QR_ROLE_ADMIN)
        return refuse(why, 403, "forbidden", "only an admin may create an admin");
    return 0;
}

int qr_validate_token_body(json_t *body, int caller_role, qr_token_body_t *out, qr_invalid_t *why)
{
    out->user = json_string_value(json_object_get(body, "user"));
    out->role = json_string_value(json_object_get(body, "role"));
    out->role_bit = qr_validate_role(out->role);
    out->lifetime_s = 0;
    json_t *exp = json_object_get(body, "expires");
    if (!qr_validate_name(out->user))
        return refuse(why, 422, "invalid",
                      "user must be a string of 1 to 200 characters and no control characters");
    if (!out->role_bit)
        return refuse(why, 422, "invalid", "role must be admin, manager, reviewer or annotator");
    if (out->role_bit == QR_ROLE_ADMIN && caller_role != QR_ROLE_ADMIN)
        return refuse(why, 403, "forbidden", "only an admin may create an admin token");
    if (exp && !json_is_null(exp)) {
        out->lifetime_s = json_is_string(exp) ? qr_validate_lifetime(json_string_value(exp)) : -1;
        if (out->lifetime_s < 0)
            return refuse(why, 422, "invalid",
                          "expires must look like 30d, 12h, 90m or 45s (at most 10 years)");
    }
    return 0;
}

/* A refusal of a label schema or of labels: status 422, code, and the
 * checker's field and message. */
static int refuse_field(qr_invalid_t *why, const char *code, const qr_label_error_t *err)
{
    refuse(why, 422, code, "%s", err->message);
    snprintf(why->field, sizeof why->field, "%s", err->field);
    return -1;
}

void qr_validate_labels_refusal(const qr_label_error_t *err, qr_invalid_t *why)
{
    refuse_field(why, QR_CODE_INVALID_LABELS, err);
}

/* The label schema of a project body: checked, normalized, and put back
 * into the body normalized (out->schema borrows it from there). */
static int project_schema(json_t *body, json_t *schema, qr_project_body_t *out, qr_invalid_t *why)
{
    qr_label_schema_t *s;
    qr_label_error_t err;
    if (qr_label_schema_parse(schema, &s, &err) < 0)
        return refuse_field(why, QR_CODE_INVALID_SCHEMA, &err);
    json_object_set_new(body, "schema", qr_label_schema_to_json(s));
    qr_label_schema_free(s);
    out->schema = json_object_get(body, "schema");
    return 0;
}

int qr_validate_project_body(json_t *body, qr_project_body_t *out, qr_invalid_t *why)
{
    memset(out, 0, sizeof *out);
    out->name = json_string_value(json_object_get(body, "name"));
    out->labels = json_object_get(body, "labels");
    json_t *schema = json_object_get(body, "schema");
    if (!qr_validate_name(out->name))
        return refuse(why, 422, "invalid",
                      "name must be a string of 1 to 200 characters and no control characters");
    if (schema && !json_is_null(schema)) {
        if (out->labels && !json_is_null(out->labels)) {
            qr_label_error_t err = {.field = "schema"};
            snprintf(err.message, sizeof err.message,
                     "schema: a project takes labels (one choice among them) or a schema, not "
                     "both");
            return refuse_field(why, QR_CODE_INVALID_SCHEMA, &err);
        }
        out->labels = NULL;
        if (project_schema(body, schema, out, why) < 0)
            return -1;
        goto rest;
    }
    size_t n = json_array_size(out->labels);
    if (!json_is_array(out->labels) || n < 1 || n > 1000)
        return refuse(why, 422, "invalid", "labels must be an array of 1 to 1000 strings");
    for (size_t i = 0; i < n; i++) {
        /* Labels are trimmed: " negative" is "negative", as a user means it
         * and as gold answers and predictions will be compared to it. */
        const char *l = json_string_value(json_array_get(out->labels, i));
        if (l) {
            size_t len = strlen(l);
            const char *t = l;
            while (len && isspace((unsigned char)*t))
                t++, len--;
            while (len && isspace((unsigned char)t[len - 1]))
                len--;
            if (t != l || len != strlen(l)) {
                if (len == 0)
                    return refuse(why, 422, "invalid", "label %zu is blank", i + 1);
                json_array_set_new(out->labels, i, json_stringn(t, len));
                l = json_string_value(json_array_get(out->labels, i));
            }
        }
        if (!qr_validate_name(l))
            return refuse(
                why, 422, "invalid",
                "label %zu must be a string of 1 to 200 characters and no control characters",
                i + 1);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l, json_string_value(json_array_get(out->labels, j))))
                return refuse(why, 422, "invalid", "label \"%s\" appears twice", l);
    }
rest:
    if (qr_validate_int(body, "annotations_per_task", 1, 100, 1, &out->annotations_per_task, why) <
            0 ||
        qr_validate_int(body, "lease_ttl_ms", 1000, 86400000, 60000, &out->lease_ttl_ms, why) < 0 ||
        qr_validate_int(body, "overlap_annotations", 1, 100, out->annotations_per_task,
                        &out->overlap_annotations, why) < 0 ||
        qr_validate_int(body, "max_leases_per_annotator", 1, 10000, 0,
                        &out->max_leases_per_annotator, why) < 0)
        return -1;
    json_t *frac = json_object_get(body, "overlap_fraction");
    if (frac && !json_is_null(frac)) {
        if (!json_is_number(frac) || json_number_value(frac) < 0 || json_number_value(frac) > 1)
            return refuse(why, 422, "invalid", "overlap_fraction must be a number from 0 to 1");
        out->overlap_fraction = json_number_value(frac);
    }
    json_t *first = json_object_get(body, "overlap_first");
    if (first && !json_is_boolean(first) && !json_is_null(first))
        return refuse(why, 422, "invalid", "overlap_first must be true or false");
    out->overlap_first = json_is_true(first);
    json_t *sampling = json_object_get(body, "sampling");
    const char *s = json_string_value(sampling);
    const char *field = json_string_value(json_object_get(body, "stratify_field"));
    if (sampling && !json_is_null(sampling) &&
        !(s && (!strcmp(s, "sequential") || !strcmp(s, "random") || !strcmp(s, "uncertainty") ||
                !strcmp(s, "stratified"))))
        return refuse(why, 422, "invalid",
                      "sampling must be sequential, random, uncertainty or stratified");
    if (!s)
        s = "sequential";
    if (!strcmp(s, "stratified") && !qr_validate_name(field))
        return refuse(why, 422, "invalid",
                      "stratified sampling needs stratify_field (a data field)");
    out->sampling = s;
    out->stratify_field = strcmp(s, "stratified") ? NULL : field;
    int set;
    if (qr_validate_auto_accept(body, NAN, &set, &out->auto_accept_confidence,
                                &out->auto_accept_audit, why) < 0)
        return -1;
    if (isnan(out->auto_accept_audit))
        out->auto_accept_audit = 0;
    int dyn;
    if (qr_validate_dynamic_overlap(body, 0, 0, NAN, &dyn, &out->overlap_min, &out->overlap_max,
                                    &out->overlap_agreement_threshold, why) < 0)
        return -1;
    if (out->overlap_min) {
        /* A task starts with overlap_min annotations: that is what
         * annotations_per_task means, so the two cannot differ. */
        json_t *apt = json_object_get(body, "annotations_per_task");
        if (apt && !json_is_null(apt) && out->annotations_per_task != out->overlap_min)
            return refuse(why, 422, "invalid",
                          "annotations_per_task is overlap_min with dynamic overlap (the "
                          "annotations a task starts with): %" PRId64 " and %" PRId64
                          " differ; leave annotations_per_task out",
                          out->annotations_per_task, out->overlap_min);
        json_t *ova = json_object_get(body, "overlap_annotations");
        out->annotations_per_task = out->overlap_min;
        if (!ova || json_is_null(ova))
            out->overlap_annotations = out->overlap_min;
        if (out->overlap_fraction > 0 && out->overlap_annotations > out->overlap_max)
            return refuse(why, 422, "invalid",
                          "overlap_annotations (%" PRId64 ") may not pass overlap_max (%" PRId64
                          "): no task may need more than overlap_max annotations",
                          out->overlap_annotations, out->overlap_max);
    }
    int shown;
    if (qr_validate_show_predictions(body, &shown, &out->show_predictions, why) < 0)
        return -1;
    if (qr_validate_gold(body, 0, 0, NAN, &out->gold, why) < 0)
        return -1;
    if (qr_validate_overlap_measure(body, &out->overlap_measure, &out->overlap_prior_accuracy,
                                    why) < 0)
        return -1;
    return qr_validate_review(body, &out->review_mode, &out->review_share,
                              &out->review_agreement_threshold, why);
}

int qr_validate_show_predictions(json_t *body, int *set, int *on, qr_invalid_t *why)
{
    json_t *v = json_object_get(body, "show_predictions");
    *set = v && !json_is_null(v);
    *on = json_is_true(v);
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return refuse(why, 422, "invalid",
                      "show_predictions must be true (each leased task comes with its "
                      "prediction) or false");
    return 0;
}

int qr_validate_dynamic_overlap(json_t *body, int64_t held_min, int64_t held_max, double held_thr,
                                int *set, int64_t *min, int64_t *max, double *thr,
                                qr_invalid_t *why)
{
    json_t *jmin = json_object_get(body, "overlap_min");
    json_t *jmax = json_object_get(body, "overlap_max");
    json_t *jthr = json_object_get(body, "overlap_agreement_threshold");
    *set = jmin || jmax || jthr;
    *min = held_min;
    *max = held_max;
    *thr = held_thr;
    if (jmin) {
        *min = 0;
        if (!json_is_null(jmin) && (!json_is_integer(jmin) || json_integer_value(jmin) < 1 ||
                                    json_integer_value(jmin) > 100))
            return refuse(why, 422, "invalid",
                          "overlap_min must be an integer from 1 to 100 (the annotations every "
                          "task gets), or null for fixed overlap");
        if (!json_is_null(jmin))
            *min = json_integer_value(jmin);
    }
    if (jmax) {
        *max = 0;
        if (!json_is_null(jmax) && (!json_is_integer(jmax) || json_integer_value(jmax) < 1 ||
                                    json_integer_value(jmax) > 100))
            return refuse(why, 422, "invalid",
                          "overlap_max must be an integer from 1 to 100 (the most annotations a "
                          "task may get), or null for fixed overlap");
        if (!json_is_null(jmax))
            *max = json_integer_value(jmax);
    }
    if (jthr) {
        *thr = NAN;
        if (!json_is_null(jthr) && (!json_is_number(jthr) ||
                                    !(json_number_value(jthr) > 0 && json_number_value(jthr) <= 1)))
            return refuse(why, 422, "invalid",
                          "overlap_agreement_threshold must be a number above 0 and at most 1 "
                          "(a task below this support gets one more annotator), or null for "
                          "fixed overlap");
        if (!json_is_null(jthr))
            *thr = json_number_value(jthr);
    }
    int on = (*min > 0) + (*max > 0) + !isnan(*thr);
    if (on != 0 && on != 3)
        return refuse(why, 422, "invalid",
                      "overlap_min, overlap_max and overlap_agreement_threshold go together: "
                      "all three (dynamic overlap) or none (fixed overlap); missing: %s%s%s%s%s",
                      *min ? "" : "overlap_min", !*min && (!*max || isnan(*thr)) ? ", " : "",
                      *max ? "" : "overlap_max", !*max && isnan(*thr) ? ", " : "",
                      isnan(*thr) ? "overlap_agreement_threshold" : "");
    if (on == 3 && *min > *max)
        return refuse(why, 422, "invalid",
                      "overlap_min (%" PRId64 ") may not exceed overlap_max (%" PRId64 ")", *min,
                      *max);
    return 0;
}

int qr_validate_overlap_measure(json_t *body, const char **measure, double *prior,
                                qr_invalid_t *why)
{
    json_t *m = json_object_get(body, "overlap_measure");
    json_t *q = json_object_get(body, "overlap_prior_accuracy");
    *measure = NULL;
    *prior = NAN;
    if (m) {
        const char *v = json_string_value(m);
        if (!v || (strcmp(v, "support") && strcmp(v, "confidence")))
            return refuse(why, 422, "invalid",
                          "overlap_measure must be support (the share of a task's annotations "
                          "on its most common value) or confidence (the posterior probability "
                          "of its consensus)");
        *measure = v;
    }
    if (q) {
        if (!json_is_number(q) || !(json_number_value(q) > 0 && json_number_value(q) < 1))
            return refuse(why, 422, "invalid",
                          "overlap_prior_accuracy must be a number above 0 and below 1 (how "
                          "often an annotator without gold answers is taken to be right)");
        *prior = json_number_value(q);
    }
    return 0;
}

int qr_validate_gold(json_t *body, double held_rate, int held_onboarding, double held_min,
                     qr_gold_settings_t *out, qr_invalid_t *why)
{
    json_t *v;
    out->rate = NAN;
    out->onboarding = -1;
    out->min_set = 0;
    out->min_accuracy = NAN;
    out->min_count = -1;
    if ((v = json_object_get(body, "gold_rate"))) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1))
            return refuse(why, 422, "invalid",
                          "gold_rate must be a number from 0 to 1 (the share of each "
                          "annotator's tasks after onboarding that are gold tasks)");
        out->rate = json_number_value(v);
    }
    if ((v = json_object_get(body, "gold_onboarding"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000)
            return refuse(why, 422, "invalid",
                          "gold_onboarding must be an integer from 0 to 10000 (the first tasks "
                          "of each annotator that are gold tasks)");
        out->onboarding = json_integer_value(v);
    }
    if ((v = json_object_get(body, "gold_min_accuracy"))) {
        out->min_set = 1;
        if (!json_is_null(v)) {
            if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1))
                return refuse(why, 422, "invalid",
                              "gold_min_accuracy must be a number from 0 to 1 (an annotator "
                              "below it on gold tasks is paused), or null for none");
            out->min_accuracy = json_number_value(v);
        }
    }
    if ((v = json_object_get(body, "gold_min_count"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000)
            return refuse(why, 422, "invalid",
                          "gold_min_count must be an integer from 1 to 100000 (the gold answers "
                          "an annotator gives before gold_min_accuracy applies)");
        out->min_count = json_integer_value(v);
    }
    double rate = isnan(out->rate) ? held_rate : out->rate;
    int64_t onboarding = out->onboarding >= 0 ? out->onboarding : held_onboarding;
    double min = out->min_set ? out->min_accuracy : held_min;
    if (!isnan(min) && !(rate > 0 || onboarding > 0))
        return refuse(why, 422, "invalid",
                      "gold_min_accuracy needs gold tasks served: set gold_rate or "
                      "gold_onboarding above 0 (or gold_min_accuracy to null)");
    return 0;
}

int qr_validate_review(json_t *body, const char **mode, double *share, double *threshold,
                       qr_invalid_t *why)
{
    json_t *m = json_object_get(body, "review_mode");
    json_t *s = json_object_get(body, "review_share");
    json_t *t = json_object_get(body, "review_agreement_threshold");
    *mode = NULL;
    *share = *threshold = NAN;
    if (m) {
        const char *v = json_string_value(m);
        if (!v || (strcmp(v, "none") && strcmp(v, "all") && strcmp(v, "share") &&
                   strcmp(v, "low_agreement")))
            return refuse(why, 422, "invalid",
                          "review_mode must be none, all, share (review_share of completed "
                          "tasks) or low_agreement (below review_agreement_threshold, or a tie)");
        *mode = v;
    }
    if (s) {
        if (!json_is_number(s) || !(json_number_value(s) >= 0 && json_number_value(s) <= 1))
            return refuse(why, 422, "invalid",
                          "review_share must be a number from 0 to 1 (the share of completed "
                          "tasks reviewed when review_mode is share)");
        *share = json_number_value(s);
    }
    if (t) {
        if (!json_is_number(t) || !(json_number_value(t) >= 0 && json_number_value(t) <= 1))
            return refuse(why, 422, "invalid",
                          "review_agreement_threshold must be a number from 0 to 1 (a task "
                          "whose majority holds a smaller share is reviewed under "
                          "low_agreement)");
        *threshold = json_number_value(t);
    }
    return 0;
}

int qr_validate_auto_accept(json_t *body, double held, int *set_conf, double *conf, double *audit,
                            qr_invalid_t *why)
{
    json_t *c = json_object_get(body, "auto_accept_confidence");
    json_t *a = json_object_get(body, "auto_accept_audit");
    *set_conf = c != NULL;
    *conf = NAN;
    *audit = NAN;
    if (c && !json_is_null(c)) {
        if (!json_is_number(c) || !(json_number_value(c) >= 0 && json_number_value(c) <= 1))
            return refuse(why, 422, "invalid",
                          "auto_accept_confidence must be a number from 0 to 1 (a prediction "
                          "scored at least this completes without a human), or null for none");
        *conf = json_number_value(c);
    }
    if (a && !json_is_null(a)) {
        if (!json_is_number(a) || !(json_number_value(a) >= 0 && json_number_value(a) <= 1))
            return refuse(why, 422, "invalid",
                          "auto_accept_audit must be a number from 0 to 1 (the share of "
                          "confident predictions still sent to humans)");
        *audit = json_number_value(a);
        if (json_number_value(a) > 0 && isnan(*set_conf ? *conf : held))
            return refuse(why, 422, "invalid",
                          "auto_accept_audit goes with auto_accept_confidence: without it no "
                          "prediction is auto-accepted, so there is nothing to audit");
    }
    return 0;
}

int qr_validate_lease_body(json_t *body, int64_t *max, int64_t *wait_ms, qr_invalid_t *why)
{
    if (qr_validate_int(body, "max", 1, QR_MAX_LEASES_PER_REQUEST, 1, max, why) < 0 ||
        qr_validate_int(body, "wait_ms", 0, 60000, 0, wait_ms, why) < 0)
        return -1;
    return 0;
}

int qr_validate_release_body(json_t *body, const char **reason, qr_invalid_t *why)
{
    json_t *r = json_object_get(body, "reason");
    *reason = NULL;
    if (r && !json_is_null(r) &&
        (!json_is_string(r) || json_string_length(r) > 500 ||
         strlen(json_string_value(r)) != json_string_length(r) ||
         !qr_validate_text(json_string_value(r))))
        return refuse(why, 422, "invalid",
                      "reason must be a string of at most 500 characters and no control "
                      "characters");
    *reason = json_string_value(r);
    return 0;
}

/* A result's idempotency_key and active_ms into out. */
static int result_rest(json_t *o, qr_result_body_t *out, qr_invalid_t *why)
{
    json_t *key = json_object_get(o, "idempotency_key");
    if (key && !json_is_null(key) &&
        (!json_is_string(key) || !qr_validate_name(json_string_value(key))))
        return refuse(
            why, 422, "invalid",
            "idempotency_key must be a string of 1 to 200 characters and no control characters");
    json_t *act = json_object_get(o, "active_ms");
    if (act && !json_is_null(act)) {
        if (!json_is_integer(act) || json_integer_value(act) < 0 ||
            json_integer_value(act) > 86400000)
            return refuse(why, 422, "invalid", "active_ms must be an integer from 0 to 86400000");
        out->active_ms = json_integer_value(act);
    }
    out->idempotency_key = json_string_value(key);
    return 0;
}

int qr_validate_result(json_t *o, char *const *labels, int nlabels, qr_result_body_t *out,
                       qr_invalid_t *why)
{
    json_t *label = json_object_get(o, "label");
    memset(out, 0, sizeof *out);
    out->active_ms = -1;
    if (!json_is_string(label))
        return refuse(why, 422, "invalid", "label must be a string");
    int known = 0;
    for (int i = 0; i < nlabels && !known; i++)
        known = !strcmp(labels[i], json_string_value(label));
    if (!known)
        return refuse(why, 422, "unknown_label", "\"%.200s\" is not one of the project's labels",
                      json_string_value(label));
    if (result_rest(o, out, why) < 0)
        return -1;
    out->label = json_string_value(label);
    return 0;
}

int qr_validate_result_labels(json_t *o, const qr_label_schema_t *schema, qr_result_body_t *out,
                              char **canonical, json_t **labels, qr_invalid_t *why)
{
    json_t *label = json_object_get(o, "label"), *given = json_object_get(o, "labels");
    qr_label_error_t err;
    json_t *l = NULL;
    memset(out, 0, sizeof *out);
    out->active_ms = -1;
    *canonical = NULL;
    *labels = NULL;
    if (json_is_null(label))
        label = NULL;
    if (json_is_null(given))
        given = NULL;
    if (label && given) {
        qr_label_error_t both = {.field = "labels"};
        snprintf(both.message, sizeof both.message,
                 "labels: give \"label\" or \"labels\", not both");
        return refuse_field(why, QR_CODE_INVALID_LABELS, &both);
    }
    if (!label && !given) {
        qr_label_error_t none = {.field = "labels"};
        snprintf(none.message, sizeof none.message,
                 "labels: missing: send \"labels\", an object with a value for each field of "
                 "the project's schema");
        return refuse_field(why, QR_CODE_INVALID_LABELS, &none);
    }
    if (given) {
        l = json_incref(given);
    } else if (!(l = qr_label_from_single(schema, label, &err))) {
        return refuse_field(why, QR_CODE_INVALID_LABELS, &err);
    }
    if (qr_label_check(schema, l, NULL, canonical, &err) < 0) {
        json_decref(l);
        return refuse_field(why, QR_CODE_INVALID_LABELS, &err);
    }
    if (result_rest(o, out, why) < 0) {
        json_decref(l);
        free(*canonical);
        *canonical = NULL;
        return -1;
    }
    *labels = l;
    return 0;
}

int qr_validate_batch_body(json_t *body, json_t **results, qr_invalid_t *why)
{
    *results = json_object_get(body, "results");
    size_t n = json_array_size(*results);
    if (!json_is_array(*results) || n < 1 || n > QR_MAX_LEASES_PER_REQUEST)
        return refuse(why, 400, "bad_request", "results must be an array of 1 to %d results",
                      QR_MAX_LEASES_PER_REQUEST);
    return 0;
}

int qr_validate_batch_entry(json_t *o, int64_t *lease, qr_invalid_t *why)
{
    json_t *l = json_object_get(o, "lease");
    char *end = NULL;
    *lease = 0;
    if (json_is_integer(l))
        *lease = json_integer_value(l);
    else if (json_is_string(l))
        *lease = strtoll(json_string_value(l), &end, 10);
    if (!json_is_object(o) ||
        !(json_is_integer(l) || (end && !*end && end != json_string_value(l))))
        return refuse(why, 422, "invalid", "each result needs an object with a lease");
    return 0;
}

int qr_validate_review_select(json_t *body, qr_review_select_body_t *out, qr_invalid_t *why)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "method") && strcmp(key, "support_below") && strcmp(key, "limit"))
            return refuse(why, 422, "invalid",
                          "unknown field '%.64s' (a review selection has method, support_below "
                          "and limit)",
                          key);
    }
    const char *m = json_string_value(json_object_get(body, "method"));
    if (!m || (strcmp(m, "majority") && strcmp(m, "dawid_skene")))
        return refuse(why, 422, "invalid",
                      "method must be majority (the share of a task's annotations giving its "
                      "most common value) or dawid_skene (the crew model's posterior of its "
                      "consensus)");
    out->method = !strcmp(m, "majority") ? "majority" : "dawid_skene";
    json_t *b = json_object_get(body, "support_below");
    if (!json_is_number(b) || !(json_number_value(b) >= 0 && json_number_value(b) <= 1))
        return refuse(why, 422, "invalid",
                      "support_below must be a number from 0 to 1 (a complete task whose "
                      "consensus support is below it is selected for review)");
    out->support_below = json_number_value(b);
    json_t *l = json_object_get(body, "limit");
    if (l && !json_is_null(l) &&
        (!json_is_integer(l) || json_integer_value(l) < 1 ||
         json_integer_value(l) > QR_REVIEW_SELECT_MAX))
        return refuse(why, 422, "invalid",
                      "limit must be an integer from 1 to %d (the most tasks selected, least "
                      "sure first)",
                      QR_REVIEW_SELECT_MAX);
    out->limit = l && !json_is_null(l) ? json_integer_value(l) : 0;
    return 0;
}
