/*
 * agreement_fields_jsonl.c - the JSONL reader of agreement_fields.h
 * (qr_fields_read_jsonl): one judgement a line, {"item", "annotator",
 * "field", "value"[, "text"]}, typed by the schema or inferred from the
 * values. The only I/O of the field engine, on a FILE * the caller opened.
 */
#include "agreement_fields_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A line whose field's type is not known yet (its value is an empty array). */
typedef struct {
    long line;
    json_t *obj; /* the parsed line */
} pending_t;

typedef struct {
    qr_fields_t *fs;
    char *err;
    size_t errlen;
    long *lines[QR_FIELDS_MAX]; /* per field, per judgement: its line */
    size_t lines_cap[QR_FIELDS_MAX];
    pending_t *pend;
    size_t npend, pend_cap;
} reader_t;

static int fail(reader_t *r, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(reader_t *r, long line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(r->err, r->errlen, "line %ld: ", line);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return (int)-line;
}

/* An item or annotator: a non-empty string or an integer, as text in buf. */
static const char *id_of(const json_t *v, char *buf, size_t n, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return *len && !memchr(json_string_value(v), 0, *len) ? json_string_value(v) : NULL;
    }
    if (json_is_integer(v)) {
        *len = (size_t)snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* The type a value says its field has; -1 for an empty array (says
 * nothing), -2 for a value of no type. */
static int infer(const json_t *v)
{
    if (json_is_string(v))
        return QR_FIELD_CHOICE;
    if (json_is_number(v))
        return QR_FIELD_RATING;
    if (!json_is_array(v))
        return -2;
    if (json_array_size(v) == 0)
        return -1;
    const json_t *e = json_array_get(v, 0);
    if (json_is_string(e))
        return QR_FIELD_MULTI_CHOICE;
    if (json_is_object(e) && json_object_get(e, "start"))
        return QR_FIELD_SPANS;
    if (json_is_object(e) && json_object_get(e, "x"))
        return QR_FIELD_BOXES;
    return -2;
}

/* Adds the judgement of parsed line obj (field f known). */
static int add_line(reader_t *r, long line, const json_t *obj, int f)
{
    qr_fields_t *fs = r->fs;
    char ibuf[32], abuf[32], why[256];
    size_t ilen = 0, alen = 0;
    const char *item = id_of(json_object_get(obj, "item"), ibuf, sizeof(ibuf), &ilen);
    const char *ann = id_of(json_object_get(obj, "annotator"), abuf, sizeof(abuf), &alen);
    const json_t *text = json_object_get(obj, "text");

    if (!item)
        return fail(r, line, "\"item\" must be a non-empty string or an integer");
    if (!ann)
        return fail(r, line, "\"annotator\" must be a non-empty string or an integer");
    int rc = qr_fields_add_json(fs, f, item, ilen, ann, alen, json_object_get(obj, "value"), why,
                                sizeof(why));
    if (rc == QR_ECONFLCT) {
        long j = qr_fields_find_judgement(fs, f, item, ilen, ann, alen);
        return fail(r, line,
                    "duplicate judgement: annotator \"%.*s\" already gave field \"%s\" on item "
                    "\"%.*s\" on line %ld",
                    (int)alen, ann, qr_fields_name(fs, f), (int)ilen, item,
                    j >= 0 ? r->lines[f][j] : 0L);
    }
    if (rc == QR_EINVAL)
        return fail(r, line, "field \"%s\" (%s): %s", qr_fields_name(fs, f),
                    qr_field_type_name(qr_fields_type(fs, f)),
                    why[0] ? why : "invalid item, annotator or value");
    if (rc < 0)
        return fail(r, line, "too many judgements or too long a value");
    size_t j = qr_fields_judgements(fs, f) - 1;
    if (j >= r->lines_cap[f]) {
        r->lines_cap[f] = r->lines_cap[f] ? r->lines_cap[f] * 2 : 1024;
        r->lines[f] = qr_xrealloc(r->lines[f], r->lines_cap[f] * sizeof(long));
    }
    r->lines[f][j] = line;
    if (text && qr_fields_type(fs, f) == QR_FIELD_SPANS) {
        if (!json_is_string(text))
            return fail(r, line, "\"text\" must be a string");
        rc = qr_fields_set_text(fs, f, item, ilen, json_string_value(text),
                                json_string_length(text));
        if (rc == QR_ECONFLCT)
            return fail(r, line, "item \"%.*s\" has another \"text\" than on an earlier line",
                        (int)ilen, item);
        if (rc < 0)
            return fail(r, line, "\"text\" holds a NUL");
    }
    return 0;
}

/* Adds the pending lines of field name (now declared as f), in order. */
static int flush(reader_t *r, const char *name, int f)
{
    size_t keep = 0;
    int rc = 0;
    for (size_t i = 0; i < r->npend; i++) {
        pending_t *p = &r->pend[i];
        if (rc == 0 && strcmp(json_string_value(json_object_get(p->obj, "field")), name) == 0) {
            rc = add_line(r, p->line, p->obj, f);
            json_decref(p->obj);
        } else {
            r->pend[keep++] = *p;
        }
    }
    r->npend = keep;
    return rc;
}

static int line_in(reader_t *r, long line, const char *buf, size_t len)
{
    json_error_t jerr;
    size_t i = 0;
    int rc;

    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len)
        return 0;
    json_t *obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!obj)
        return fail(r, line, "not JSON: %s (column %d)", jerr.text, jerr.column);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return fail(r, line,
                    "a line must be a JSON object {\"item\", \"annotator\", \"field\", "
                    "\"value\"}");
    }
    const json_t *field = json_object_get(obj, "field"), *value = json_object_get(obj, "value");
    if (!json_is_string(field) || json_string_length(field) == 0 ||
        memchr(json_string_value(field), 0, json_string_length(field))) {
        json_decref(obj);
        return fail(r, line, "\"field\" must be a non-empty string");
    }
    if (!value) {
        json_decref(obj);
        return fail(r, line, "missing \"value\"");
    }
    const char *name = json_string_value(field);
    int f = qr_fields_find(r->fs, name, json_string_length(field));
    if (f < 0) {
        int t = infer(value);
        if (t == -1) {
            if (r->npend == r->pend_cap) {
                r->pend_cap = r->pend_cap ? r->pend_cap * 2 : 64;
                r->pend = qr_xrealloc(r->pend, r->pend_cap * sizeof(*r->pend));
            }
            r->pend[r->npend].line = line;
            r->pend[r->npend++].obj = obj;
            return 0;
        }
        if (t == -2) {
            rc = fail(r, line,
                      "field \"%s\": cannot tell its type from this value (a string, a "
                      "number, or an array of strings, spans or boxes; or give --schema)",
                      name);
            json_decref(obj); /* after the message: name is in obj */
            return rc;
        }
        f = qr_fields_declare(r->fs, name, json_string_length(field), (qr_field_type_t)t);
        if (f < 0) {
            rc = fail(r, line, "field \"%s\": more than %d fields, or a bad name", name,
                      QR_FIELDS_MAX);
            json_decref(obj);
            return rc;
        }
        if ((rc = flush(r, name, f)) < 0) {
            json_decref(obj);
            return rc;
        }
    }
    rc = add_line(r, line, obj, f);
    json_decref(obj);
    return rc;
}

int qr_fields_read_jsonl(FILE *f, qr_fields_t *fs, char *err, size_t errlen)
{
    reader_t r;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    long line = 0;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    r.fs = fs;
    r.err = err;
    r.errlen = errlen;
    if (errlen)
        err[0] = '\0';
    /* Fields declared by a schema before: their judgements get lines too. */
    while ((n = getline(&buf, &cap, f)) >= 0) {
        line++;
        if (line == 1 && n >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
            memmove(buf, buf + 3, (size_t)n - 3);
            n -= 3;
        }
        if ((rc = line_in(&r, line, buf, (size_t)n)) < 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = fail(&r, line + 1, "read error");
    /* Fields whose every value was an empty array: multi_choice. */
    while (rc == 0 && r.npend > 0) {
        /* A copy: flushing frees the line the name is in. */
        const json_t *field = json_object_get(r.pend[0].obj, "field");
        char *name = qr_xstrndup(json_string_value(field), json_string_length(field));
        int fi = qr_fields_declare(fs, name, json_string_length(field), QR_FIELD_MULTI_CHOICE);
        if (fi < 0)
            rc = fail(&r, r.pend[0].line, "more than %d fields", QR_FIELDS_MAX);
        else
            rc = flush(&r, name, fi);
        free(name);
    }
    if (rc == 0 && line == 0)
        rc = fail(&r, 1, "empty file");
    for (size_t i = 0; i < r.npend; i++)
        json_decref(r.pend[i].obj);
    free(r.pend);
    for (int i = 0; i < QR_FIELDS_MAX; i++)
        free(r.lines[i]);
    free(buf);
    return rc;
}
