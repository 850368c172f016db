/*
 * import_predictions.c - the body of PUT /v1/projects/{id}/predictions
 * (issue 16, point 5): JSON lines, one prediction a line, read into COPY
 * rows for the update's temporary table (sql/0029_predictions_update.sql).
 *
 * A line is {"task_id": N} or {"external_id": "..."}, with "value" (a label
 * of the project, or a schema project's labels object), "score" (in [0, 1])
 * and "model_version" (a string), each optional: the task's prediction
 * becomes exactly what the line says (a line with none of the three clears
 * it). Any other key is refused, so that a misspelt one is not dropped
 * unseen. The stored prediction has the import's shape ({"label" or
 * "labels", "score", "model_version"}), so the export, auto-accept and the
 * report read an updated prediction as an imported one.
 */
#include "import_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* Fails line `line` with a reason. */
static int refuse(qr_predictions_parse_t *p, int64_t line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(qr_predictions_parse_t *p, int64_t line, int rc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->fail_line = line;
    snprintf(p->err, sizeof p->err, "line %" PRId64 ": %s", line, msg);
    return rc;
}

/* The task a line names: task_id (a positive integer) or external_id (a
 * string of 1 to 1000 bytes, or an integer, read as its decimal text as the
 * import stores it). Appends "task_id\texternal_id\t" to out. */
static int take_task(qr_predictions_parse_t *p, json_t *o, int64_t line, qr_buf_t *out)
{
    json_t *id = json_object_get(o, "task_id");
    json_t *ext = json_object_get(o, "external_id");
    if (id && json_is_null(id))
        id = NULL;
    if (ext && json_is_null(ext))
        ext = NULL;
    if (id && ext)
        return refuse(p, line, QR_EINVAL, "give \"task_id\" or \"external_id\", not both");
    if (!id && !ext)
        return refuse(p, line, QR_EINVAL, "\"task_id\" or \"external_id\" is required");
    if (id) {
        if (!json_is_integer(id) || json_integer_value(id) < 1)
            return refuse(p, line, QR_EINVAL, "\"task_id\" must be a positive integer");
        qr_buf_append_i64(out, (int64_t)json_integer_value(id));
        qr_buf_appends(out, "\t\\N\t");
        return 0;
    }
    if (json_is_integer(ext)) {
        qr_buf_appendf(out, "\\N\t%" JSON_INTEGER_FORMAT "\t", json_integer_value(ext));
        return 0;
    }
    if (!json_is_string(ext) || json_string_length(ext) < 1 || json_string_length(ext) > 1000 ||
        memchr(json_string_value(ext), '\0', json_string_length(ext)))
        return refuse(p, line, QR_EINVAL,
                      "\"external_id\" must be a string of 1 to 1000 bytes or an integer");
    qr_buf_appends(out, "\\N\t");
    qr_import_copy_escape(out, json_string_value(ext));
    qr_buf_appends(out, "\t");
    return 0;
}

/* v as jansson writes a real with JSON_REAL_PRECISION(15) ("%.15g", with
 * ".0" after what would read as an integer: PostgreSQL's jsonb keeps that
 * scale), into num (32 bytes); 1 when num reads back as exactly v. */
static int score_text(double v, char num[32])
{
    int len = snprintf(num, 32, "%.15g", v);
    if (len > 0 && len < 29 && !strpbrk(num, ".eE"))
        memcpy(num + len, ".0", 3);
    return strtod(num, NULL) == v;
}

/* One key of the prediction's JSON text: '{' or ',' before it. */
static void json_key(qr_buf_t *json, const char *key)
{
    qr_buf_appends(json, json->len ? ", \"" : "{\"");
    qr_buf_appends(json, key);
    qr_buf_appends(json, "\": ");
}

/* The prediction a line stores, as JSON text appended to json (nothing:
 * none), and its score (NAN: none) with its text; or -1. The text is
 * written directly, not through a jansson object and its dump: two of
 * those and a "%.17g" a line were a third of the parse's time. */
static int take_prediction(qr_predictions_parse_t *p, json_t *o, int64_t line, qr_buf_t *json,
                           double *score, char num[32], int *exact)
{
    *score = NAN;
    *exact = 0;
    json_t *value = json_object_get(o, "value");
    json_t *sc = json_object_get(o, "score");
    json_t *mv = json_object_get(o, "model_version");
    if (sc && !json_is_null(sc)) {
        char why[128];
        if (!json_is_number(sc) || qr_import_check_score(json_number_value(sc), why, sizeof why))
            return refuse(p, line, QR_IMPORT_EREJECT,
                          "field \"score\": must be a number in [0, 1]");
        *score = json_number_value(sc);
        *exact = score_text(*score, num);
        json_key(json, "score");
        qr_buf_appends(json, num);
    }
    if (mv && !json_is_null(mv)) {
        if (!json_is_string(mv) || json_string_length(mv) > 200)
            return refuse(p, line, QR_EINVAL,
                          "\"model_version\" must be a string of at most 200 bytes");
        json_key(json, "model_version");
        qr_import_json_string(json, json_string_value(mv), json_string_length(mv));
    }
    if (value && !json_is_null(value)) {
        char why[384];
        if (p->opts->schema) {
            char *canonical = qr_import_schema_labels(p->opts, value, NULL, 1, why, sizeof why);
            if (!canonical)
                return refuse(p, line, QR_IMPORT_EREJECT, "field \"value\": %s", why);
            json_key(json, "labels");
            qr_buf_appends(json, canonical);
            free(canonical);
        } else {
            if (!json_is_string(value) || json_string_length(value) == 0)
                return refuse(p, line, QR_IMPORT_EREJECT,
                              "field \"value\": must be one of the project's labels (a string)");
            const char *l = json_string_value(value);
            size_t len = json_string_length(value);
            if (qr_import_check_label(p->opts, l, len, why, sizeof why) < 0)
                return refuse(p, line, QR_IMPORT_EREJECT, "field \"value\": %s", why);
            while (len && (*l == ' ' || *l == '\t' || *l == '\r' || *l == '\n'))
                l++, len--;
            while (len && (l[len - 1] == ' ' || l[len - 1] == '\t' || l[len - 1] == '\r' ||
                           l[len - 1] == '\n'))
                len--;
            json_key(json, "label");
            qr_import_json_string(json, l, len);
        }
    }
    if (json->len)
        qr_buf_appends(json, "}");
    return 0;
}

/* One line (n bytes at s, no newline), number `line`: a row appended. */
static int take_line(qr_predictions_parse_t *p, const char *s, size_t n, int64_t line,
                     qr_buf_t *out)
{
    json_error_t jerr;
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return refuse(p, line, QR_EINVAL, "%s", jerr.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return refuse(p, line, QR_EINVAL, "must be a JSON object");
    }
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        if (strcmp(key, "task_id") && strcmp(key, "external_id") && strcmp(key, "value") &&
            strcmp(key, "score") && strcmp(key, "model_version")) {
            int rc = refuse(p, line, QR_EINVAL,
                            "unknown key \"%.60s\" (a line has task_id or external_id, value, "
                            "score and model_version)",
                            key);
            json_decref(o);
            return rc;
        }
    }
    size_t mark = out->len;
    qr_buf_append_i64(out, line);
    qr_buf_append(out, "\t", 1);
    qr_buf_t json;
    qr_buf_init(&json);
    double score = NAN;
    char num[32];
    int exact = 0;
    int rc = take_task(p, o, line, out);
    if (rc == 0)
        rc = take_prediction(p, o, line, &json, &score, num, &exact);
    json_decref(o);
    if (rc < 0) {
        qr_buf_free(&json);
        out->len = mark;
        return rc;
    }
    if (json.len) {
        qr_buf_append(&json, "", 1); /* a C string for the escape */
        qr_import_copy_escape(out, json.data);
    } else {
        qr_buf_appends(out, "\\N");
    }
    qr_buf_free(&json);
    if (isnan(score))
        qr_buf_appends(out, "\t\\N\n");
    else if (exact) /* the JSON's text reads back as the score: the column's too */
        qr_buf_append(out, "\t", 1), qr_buf_appends(out, num), qr_buf_append(out, "\n", 1);
    else
        qr_buf_appendf(out, "\t%.17g\n", score);
    p->rows++;
    return 0;
}

int qr_predictions_parse(qr_predictions_parse_t *p, const char *data, size_t len, int last,
                         qr_buf_t *out, size_t *taken)
{
    const char *s = data, *end = data + len;
    *taken = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl && !last)
            break; /* the rest of this line comes with more */
        const char *e = nl ? nl : end;
        p->line++;
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\r'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
            b--;
        if (b > a) {
            if (p->max_rows > 0 && p->rows >= p->max_rows)
                return refuse(p, p->line, QR_ETOOBIG,
                              "more than %" PRId64 " predictions in one body; split it",
                              p->max_rows);
            int rc = take_line(p, a, (size_t)(b - a), p->line, out);
            if (rc < 0)
                return rc;
        }
        s = nl ? nl + 1 : end;
        *taken = (size_t)(s - data);
    }
    return 0;
}
