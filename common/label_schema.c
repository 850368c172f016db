/*
 * label_schema.c - a project's label schema: parsing and checking it, and
 * checking a submission's labels against it into their canonical stored form
 * (label_schema.h). Pure functions over jansson values.
 *
 * Lookups of a choice go through a sorted index of the field's choices
 * (binary search), so that a value of 1,000 tags against 1,000 choices costs
 * some 10,000 comparisons, not a million: the broker checks submissions on
 * its event loop.
 */
#include "label_schema.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Slack of the contract's comparisons of reals: a rating's place on its grid,
 * a scale's number of steps (relative), a box's right and bottom edges. */
#define GRID_SLACK 1e-9
#define EDGE_SLACK 1e-9

static const char *const type_names[] = {"choice", "multi_choice", "rating",
                                         "spans",  "boxes",        "text"};
#define NTYPES (sizeof type_names / sizeof type_names[0])

const char *qr_label_type_name(qr_label_type_t type)
{
    return (unsigned)type < NTYPES ? type_names[type] : "?";
}

static int type_from_name(const char *s)
{
    for (size_t i = 0; s && i < NTYPES; i++)
        if (!strcmp(s, type_names[i]))
            return (int)i;
    return -1;
}

int64_t qr_label_utf8_length(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int64_t count = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp, least;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, least = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, least = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, least = 0x10000;
        } else {
            return -1;
        }
        if (n - i < len)
            return -1;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += len;
        count++;
    }
    return count;
}

/* Copies s into dst[cap] for a message: cut at a character boundary, with
 * "..." when cut, control characters as '?'. */
static const char *quoted(char *dst, size_t cap, const char *s, size_t n)
{
    size_t take = n < cap - 4 ? n : cap - 4;
    /* Back off to the start of a UTF-8 sequence. */
    while (take < n && take > 0 && ((unsigned char)s[take] & 0xc0) == 0x80)
        take--;
    memcpy(dst, s, take);
    if (take < n)
        memcpy(dst + take, "...", 4);
    else
        dst[take] = '\0';
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return dst;
}

/* Makes text one line of valid UTF-8 in place (a name cut by a limit, bytes
 * of a malformed key): control characters, and every non-ASCII byte of text
 * that is not valid UTF-8, become '?'. */
static void scrub(char *text)
{
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (qr_label_utf8_length(text, strlen(text)) >= 0)
        return;
    for (char *p = text; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
}

/* Fills err: field, and "<field>: <reason>". Returns -1. */
static int fail(qr_label_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(qr_label_error_t *err, const char *field, const char *fmt, ...)
{
    quoted(err->field, sizeof err->field, field, strlen(field));
    scrub(err->field);
    int n = snprintf(err->message, sizeof err->message, "%s: ", err->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
    va_end(ap);
    /* A message cut by its size may end inside a character: drop that part. */
    size_t len = strlen(err->message), end = len;
    while (end > 0 && ((unsigned char)err->message[end - 1] & 0xc0) == 0x80)
        end--;
    if (end > 0 && (unsigned char)err->message[end - 1] >= 0xc0) {
        unsigned lead = (unsigned char)err->message[end - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (len - (end - 1) < need)
            err->message[end - 1] = '\0';
    }
    scrub(err->message);
    return -1;
}

/* A real as it is stored: 15 significant digits, so that its text (jansson's
 * at JSON_REAL_PRECISION(15), PostgreSQL's numeric) reads back as the same
 * double. */
static double round15(double x)
{
    char b[40];
    snprintf(b, sizeof b, "%.15g", x);
    return strtod(b, NULL);
}

/* A number as JSON: a whole value (below 2^53) as an integer, else a real. */
static json_t *number_json(double x)
{
    if (x == floor(x) && fabs(x) < 9007199254740992.0)
        return json_integer((json_int_t)x);
    return json_real(x);
}

/* --- the schema ------------------------------------------------------------------------------ */

static int valid_field_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > QR_LABEL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* 1 when s is a string of 1 to max bytes without a control character (no
 * byte below 0x20, no DEL, no U+0080-U+009F): names shown on terminals and
 * in spreadsheets. */
static int valid_text(json_t *v, size_t max)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s || n < 1 || n > max || strlen(s) != n)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            return 0;
    }
    return qr_label_utf8_length(s, n) >= 0;
}

/* The keys a field of each type may have, besides name, type and required. */
static int key_allowed(int type, const char *key)
{
    static const char *const keys[NTYPES][4] = {
        [QR_LABEL_CHOICE] = {"choices"},
        [QR_LABEL_MULTI_CHOICE] = {"choices", "min", "max"},
        [QR_LABEL_RATING] = {"min", "max", "step"},
        [QR_LABEL_SPANS] = {"over", "labels", "overlap"},
        [QR_LABEL_BOXES] = {"over", "labels"},
        [QR_LABEL_TEXT] = {"max_length"},
    };
    if (!strcmp(key, "name") || !strcmp(key, "type") || !strcmp(key, "required"))
        return 1;
    for (int i = 0; i < 4 && keys[type][i]; i++)
        if (!strcmp(key, keys[type][i]))
            return 1;
    return 0;
}

/* A choice and its index, for sorting. */
typedef struct ranked_s {
    const char *s;
    int index;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    return strcmp(((const ranked_t *)a)->s, ((const ranked_t *)b)->s);
}

/* The index of the choice s[0..n) in f, or -1. */
static int choice_find(const qr_label_field_t *f, const char *s, size_t n)
{
    if (strlen(s) != n)
        return -1;
    const int *order = f->order;
    int lo = 0, hi = f->nchoices - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s, f->choices[order[mid]]);
        if (c == 0)
            return order[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* Sets f's choices from strings (n of them, already checked) and builds the
 * index; returns the index of a choice that appears twice, or -1. */
static int choices_set(qr_label_field_t *f, const char *const *strings, int n)
{
    f->nchoices = n;
    f->choices = qr_xcalloc((size_t)n + 1, sizeof *f->choices);
    f->order = qr_xcalloc((size_t)n + 1, sizeof *f->order);
    ranked_t *r = qr_xcalloc((size_t)n + 1, sizeof *r);
    for (int i = 0; i < n; i++) {
        f->choices[i] = qr_xstrdup(strings[i]);
        r[i].s = f->choices[i];
        r[i].index = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    int dup = -1;
    for (int i = 0; i < n; i++) {
        f->order[i] = r[i].index;
        if (i && dup < 0 && !strcmp(r[i - 1].s, r[i].s))
            dup = r[i].index > r[i - 1].index ? r[i].index : r[i - 1].index;
    }
    free(r);
    return dup;
}

static void field_free(qr_label_field_t *f)
{
    if (f->choices) {
        for (int i = 0; i < f->nchoices; i++)
            free(f->choices[i]);
        free(f->choices);
    }
    free(f->order);
    free(f->over);
}

void qr_label_schema_free(qr_label_schema_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nfields; i++)
        field_free(&s->fields[i]);
    free(s->fields);
    free(s);
}

/* choices (or labels): 1 to 1000 distinct strings of 1 to 200 bytes. */
static int parse_choices(json_t *arr, const char *key, qr_label_field_t *f, qr_label_error_t *err)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n < 1 || n > QR_LABEL_CHOICES_MAX)
        return fail(err, f->name, "%s must be an array of 1 to %d strings", key,
                    QR_LABEL_CHOICES_MAX);
    const char **strings = qr_xcalloc(n, sizeof *strings);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!valid_text(v, QR_LABEL_CHOICE_MAX)) {
            free(strings);
            return fail(err, f->name,
                        "%s[%zu] must be a string of 1 to %d bytes and no control characters", key,
                        i, QR_LABEL_CHOICE_MAX);
        }
        strings[i] = json_string_value(v);
    }
    int dup = choices_set(f, strings, (int)n);
    free(strings);
    if (dup >= 0) {
        char q[120];
        const char *d = f->choices[dup];
        return fail(err, f->name, "%s holds \"%s\" twice", key, quoted(q, sizeof q, d, strlen(d)));
    }
    return 0;
}

/* An optional value: absent and null are the same. */
static json_t *opt(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

/* An optional integer of o in [lo, hi], dflt when absent. */
static int opt_int(json_t *o, const char *key, int lo, int hi, int dflt, int *out,
                   qr_label_field_t *f, qr_label_error_t *err)
{
    json_t *v = opt(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return fail(err, f->name, "%s must be an integer from %d to %d", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* over: the data key a span or box field refers to. */
static int parse_over(json_t *o, qr_label_field_t *f, qr_label_error_t *err)
{
    json_t *v = json_object_get(o, "over");
    if (!valid_text(v, QR_LABEL_CHOICE_MAX))
        return fail(err, f->name,
                    "over must name the task's data key (a string of 1 to %d bytes and no "
                    "control characters)",
                    QR_LABEL_CHOICE_MAX);
    f->over = qr_xstrdup(json_string_value(v));
    return 0;
}

static int parse_rating(json_t *o, qr_label_field_t *f, qr_label_error_t *err)
{
    json_t *lo = json_object_get(o, "min"), *hi = json_object_get(o, "max"), *st = opt(o, "step");
    if (!json_is_number(lo) || !json_is_number(hi) ||
        fabs(json_number_value(lo)) > QR_LABEL_NUMBER_MAX ||
        fabs(json_number_value(hi)) > QR_LABEL_NUMBER_MAX)
        return fail(err, f->name, "min and max must be numbers from -1e15 to 1e15");
    f->min = round15(json_number_value(lo));
    f->max = round15(json_number_value(hi));
    if (!(f->min < f->max))
        return fail(err, f->name, "min (%.15g) must be less than max (%.15g)", f->min, f->max);
    f->step = 1;
    if (st) {
        if (!json_is_number(st) || !(json_number_value(st) > 0))
            return fail(err, f->name, "step must be a number greater than 0");
        f->step = round15(json_number_value(st));
        if (!(f->step > 0))
            return fail(err, f->name, "step must be a number greater than 0");
    }
    double q = (f->max - f->min) / f->step, k = round(q);
    if (fabs(q - k) > GRID_SLACK * fmax(1.0, fabs(q)))
        return fail(err, f->name,
                    "(max - min) / step must be a whole number; it is %.15g (min %.15g, max "
                    "%.15g, step %.15g)",
                    q, f->min, f->max, f->step);
    if (k + 1 > QR_LABEL_LEVELS_MAX)
        return fail(err, f->name, "the scale has %.15g levels; at most %d", k + 1,
                    QR_LABEL_LEVELS_MAX);
    f->levels = (int)k + 1;
    f->integral = f->min == floor(f->min) && f->step == floor(f->step);
    return 0;
}

static int parse_field(json_t *o, size_t i, qr_label_field_t *f, qr_label_error_t *err)
{
    char where[32];
    snprintf(where, sizeof where, "fields[%zu]", i);
    if (!json_is_object(o))
        return fail(err, where, "must be an object with a name and a type");
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!valid_field_name(name))
        return fail(err, where, "name must be 1 to %d characters of A-Z, a-z, 0-9, _, . and -",
                    QR_LABEL_NAME_MAX);
    snprintf(f->name, sizeof f->name, "%s", name);
    int type = type_from_name(json_string_value(json_object_get(o, "type")));
    if (type < 0)
        return fail(err, f->name,
                    "type must be choice, multi_choice, rating, spans, boxes or text");
    f->type = (qr_label_type_t)type;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (!key_allowed(type, key)) {
            char q[80];
            return fail(err, f->name, "unknown key \"%s\" for a %s field",
                        quoted(q, sizeof q, key, strlen(key)), type_names[type]);
        }
    }
    json_t *req = opt(o, "required");
    if (req && !json_is_boolean(req))
        return fail(err, f->name, "required must be true or false");
    f->required = req ? json_is_true(req) : 1;
    switch (f->type) {
    case QR_LABEL_CHOICE:
        return parse_choices(json_object_get(o, "choices"), "choices", f, err);
    case QR_LABEL_MULTI_CHOICE:
        if (parse_choices(json_object_get(o, "choices"), "choices", f, err) < 0 ||
            opt_int(o, "min", 0, f->nchoices, 0, &f->min_count, f, err) < 0 ||
            opt_int(o, "max", f->min_count > 1 ? f->min_count : 1, f->nchoices, f->nchoices,
                    &f->max_count, f, err) < 0)
            return -1;
        return 0;
    case QR_LABEL_RATING:
        return parse_rating(o, f, err);
    case QR_LABEL_SPANS: {
        if (parse_over(o, f, err) < 0 ||
            parse_choices(json_object_get(o, "labels"), "labels", f, err) < 0)
            return -1;
        json_t *ov = opt(o, "overlap");
        if (ov && !json_is_boolean(ov))
            return fail(err, f->name, "overlap must be true or false");
        f->overlap = ov ? json_is_true(ov) : 1;
        return 0;
    }
    case QR_LABEL_BOXES:
        if (parse_over(o, f, err) < 0 ||
            parse_choices(json_object_get(o, "labels"), "labels", f, err) < 0)
            return -1;
        return 0;
    case QR_LABEL_TEXT:
        return opt_int(o, "max_length", 1, QR_LABEL_TEXT_MAX, QR_LABEL_TEXT_DEFAULT, &f->max_length,
                       f, err);
    }
    return 0;
}

int qr_label_schema_parse(json_t *schema, qr_label_schema_t **out, qr_label_error_t *err)
{
    *out = NULL;
    if (!json_is_object(schema))
        return fail(err, "schema", "must be an object {\"fields\": [...]}");
    const char *key;
    json_t *v;
    json_object_foreach(schema, key, v)
    {
        if (strcmp(key, "fields")) {
            char q[80];
            return fail(err, "schema", "unknown key \"%s\" (a schema has only \"fields\")",
                        quoted(q, sizeof q, key, strlen(key)));
        }
    }
    json_t *fields = json_object_get(schema, "fields");
    size_t n = json_array_size(fields);
    if (!json_is_array(fields) || n < 1 || n > QR_LABEL_FIELDS_MAX)
        return fail(err, "schema", "fields must be an array of 1 to %d fields",
                    QR_LABEL_FIELDS_MAX);
    qr_label_schema_t *s = qr_xcalloc(1, sizeof *s);
    s->fields = qr_xcalloc(n, sizeof *s->fields);
    for (size_t i = 0; i < n; i++) {
        s->nfields = (int)i + 1; /* freed with the schema, parsed or not */
        if (parse_field(json_array_get(fields, i), i, &s->fields[i], err) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(s->fields[j].name, s->fields[i].name)) {
                fail(err, s->fields[i].name, "two fields have this name");
                goto fail;
            }
        }
    }
    *out = s;
    return 0;
fail:
    qr_label_schema_free(s);
    return -1;
}

static json_t *choices_json(const qr_label_field_t *f)
{
    json_t *a = json_array();
    for (int i = 0; i < f->nchoices; i++)
        json_array_append_new(a, json_string(f->choices[i]));
    return a;
}

json_t *qr_label_schema_to_json(const qr_label_schema_t *s)
{
    json_t *fields = json_array();
    for (int i = 0; i < s->nfields; i++) {
        const qr_label_field_t *f = &s->fields[i];
        json_t *o = json_pack("{s:s s:s s:b}", "name", f->name, "type", type_names[f->type],
                              "required", f->required);
        switch (f->type) {
        case QR_LABEL_CHOICE:
            json_object_set_new(o, "choices", choices_json(f));
            break;
        case QR_LABEL_MULTI_CHOICE:
            json_object_set_new(o, "choices", choices_json(f));
            json_object_set_new(o, "min", json_integer(f->min_count));
            json_object_set_new(o, "max", json_integer(f->max_count));
            break;
        case QR_LABEL_RATING:
            json_object_set_new(o, "min", number_json(f->min));
            json_object_set_new(o, "max", number_json(f->max));
            json_object_set_new(o, "step", number_json(f->step));
            break;
        case QR_LABEL_SPANS:
            json_object_set_new(o, "over", json_string(f->over));
            json_object_set_new(o, "labels", choices_json(f));
            json_object_set_new(o, "overlap", json_boolean(f->overlap));
            break;
        case QR_LABEL_BOXES:
            json_object_set_new(o, "over", json_string(f->over));
            json_object_set_new(o, "labels", choices_json(f));
            break;
        case QR_LABEL_TEXT:
            json_object_set_new(o, "max_length", json_integer(f->max_length));
            break;
        }
        json_array_append_new(fields, o);
    }
    return json_pack("{s:o}", "fields", fields);
}

qr_label_schema_t *qr_label_schema_implied(const char *const *labels, int n)
{
    qr_label_schema_t *s = qr_xcalloc(1, sizeof *s);
    s->fields = qr_xcalloc(1, sizeof *s->fields);
    s->nfields = 1;
    s->implied = 1;
    qr_label_field_t *f = &s->fields[0];
    snprintf(f->name, sizeof f->name, "%s", QR_LABEL_IMPLIED_FIELD);
    f->type = QR_LABEL_CHOICE;
    f->required = 1;
    (void)choices_set(f, labels, n); /* a plain project's labels are distinct already */
    return s;
}

int qr_label_schema_field(const qr_label_schema_t *s, const char *name)
{
    for (int i = 0; name && i < s->nfields; i++)
        if (!strcmp(s->fields[i].name, name))
            return i;
    return -1;
}

/* --- values ---------------------------------------------------------------------------------- */

int qr_label_data_keys(const qr_label_schema_t *s, json_t *labels, const char **keys, int max)
{
    int n = 0;
    if (!json_is_object(labels))
        return 0;
    for (int i = 0; i < s->nfields; i++) {
        const qr_label_field_t *f = &s->fields[i];
        if (f->type != QR_LABEL_SPANS || !opt(labels, f->name))
            continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = s->fields[j].type == QR_LABEL_SPANS && opt(labels, s->fields[j].name) &&
                   !strcmp(s->fields[j].over, f->over);
        if (seen)
            continue;
        if (n < max)
            keys[n] = f->over;
        n++;
    }
    return n;
}

/* The length of data[key], QR_LABEL_DATA_MISSING when the caller gave none. */
static int64_t data_length(const qr_label_data_t *data, const char *key)
{
    for (int i = 0; i < data->n; i++)
        if (!strcmp(data->keys[i], key))
            return data->lengths[i];
    return QR_LABEL_DATA_MISSING;
}

/* The field's choice named by v (a JSON string): its index, or -1. */
static int choice_of(const qr_label_field_t *f, json_t *v)
{
    return json_is_string(v) ? choice_find(f, json_string_value(v), json_string_length(v)) : -1;
}

/* "\"x\"" of a JSON string value for a message. */
static const char *quoted_value(char *q, size_t cap, json_t *v)
{
    return quoted(q, cap, json_string_value(v), json_string_length(v));
}

static int check_choice(const qr_label_field_t *f, json_t *v, json_t **out, qr_label_error_t *err)
{
    if (!json_is_string(v))
        return fail(err, f->name, "must be a string, one of the field's choices");
    int k = choice_of(f, v);
    char q[120];
    if (k < 0)
        return fail(err, f->name, "\"%s\" is not one of the field's choices",
                    quoted_value(q, sizeof q, v));
    *out = json_string(f->choices[k]);
    return 0;
}

static int check_multi(const qr_label_field_t *f, json_t *v, json_t **out, qr_label_error_t *err)
{
    if (!json_is_array(v))
        return fail(err, f->name, "must be an array of the field's choices");
    size_t n = json_array_size(v);
    char *chosen = qr_xcalloc((size_t)f->nchoices, 1);
    char q[120];
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(v, i);
        int k = choice_of(f, c);
        if (!json_is_string(c) || k < 0 || chosen[k]) {
            free(chosen);
            if (!json_is_string(c))
                return fail(err, f->name, "element %zu is not a string", i);
            if (k < 0)
                return fail(err, f->name, "\"%s\" is not one of the field's choices",
                            quoted_value(q, sizeof q, c));
            return fail(err, f->name, "\"%s\" appears twice", quoted_value(q, sizeof q, c));
        }
        chosen[k] = 1;
    }
    if (n < (size_t)f->min_count || n > (size_t)f->max_count) {
        free(chosen);
        return fail(err, f->name, "holds %zu choices; it must hold %d to %d", n, f->min_count,
                    f->max_count);
    }
    *out = json_array();
    for (int k = 0; k < f->nchoices; k++)
        if (chosen[k])
            json_array_append_new(*out, json_string(f->choices[k]));
    free(chosen);
    return 0;
}

static int check_rating(const qr_label_field_t *f, json_t *v, json_t **out, qr_label_error_t *err)
{
    if (!json_is_number(v))
        return fail(err, f->name, "must be a number from %.15g to %.15g in steps of %.15g", f->min,
                    f->max, f->step);
    double x = json_number_value(v);
    double q = (x - f->min) / f->step;
    if (!(q >= -GRID_SLACK && q <= (f->levels - 1) + GRID_SLACK))
        return fail(err, f->name, "%.15g is out of range: the scale runs from %.15g to %.15g", x,
                    f->min, f->max);
    double k = round(q);
    if (fabs(q - k) > GRID_SLACK)
        return fail(err, f->name, "%.15g is not on the scale: from %.15g in steps of %.15g", x,
                    f->min, f->step);
    if (f->integral)
        *out = json_integer((json_int_t)llround(f->min) + (json_int_t)k * (json_int_t)f->step);
    else
        *out = json_real(round15(f->min + k * f->step));
    return 0;
}

/* One span, checked, with its label as the index of the field's labels. */
typedef struct span_s {
    int64_t start, end;
    int label;
    const char *name; /* the label's text, borrowed from the field */
} span_t;

static int cmp_span(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Whether every key of o is one of keys[n]; else the first other key. */
static const char *other_key(json_t *o, const char *const *keys, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(key, keys[i]))
            i++;
        if (i == n)
            return key;
    }
    return NULL;
}

/* The length of the text a span field refers to, checked: -1 (err filled)
 * when the data has none; INT64_MAX when data was not given. */
static int64_t span_text_length(const qr_label_field_t *f, const qr_label_data_t *data,
                                qr_label_error_t *err)
{
    if (!data)
        return INT64_MAX;
    int64_t len = data_length(data, f->over);
    char q[120];
    if (len == QR_LABEL_DATA_MISSING) {
        fail(err, f->name, "the task's data has no \"%s\": spans need its text",
             quoted(q, sizeof q, f->over, strlen(f->over)));
        return -1;
    }
    if (len < 0) {
        fail(err, f->name, "the task's data \"%s\" is not a string: spans need text",
             quoted(q, sizeof q, f->over, strlen(f->over)));
        return -1;
    }
    return len;
}

static int check_spans(const qr_label_field_t *f, json_t *v, const qr_label_data_t *data,
                       json_t **out, qr_label_error_t *err)
{
    static const char *const keys[] = {"start", "end", "label", "text"};
    if (!json_is_array(v))
        return fail(err, f->name, "must be an array of spans {\"start\", \"end\", \"label\"}");
    size_t n = json_array_size(v);
    if (n > QR_LABEL_ITEMS_MAX)
        return fail(err, f->name, "holds %zu spans; at most %d", n, QR_LABEL_ITEMS_MAX);
    int64_t len = span_text_length(f, data, err);
    if (len < 0)
        return -1;
    span_t *spans = qr_xcalloc(n + 1, sizeof *spans);
    char q[120];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(v, i), *st = json_object_get(o, "start"),
               *en = json_object_get(o, "end"), *lb = json_object_get(o, "label");
        const char *other = json_is_object(o) ? other_key(o, keys, 4) : NULL;
        if (!json_is_object(o)) {
            fail(err, f->name, "span %zu must be an object {\"start\", \"end\", \"label\"}", i);
            goto fail;
        }
        if (other) {
            fail(err, f->name, "span %zu has an unknown key \"%s\"", i,
                 quoted(q, sizeof q, other, strlen(other)));
            goto fail;
        }
        if (!json_is_integer(st) || !json_is_integer(en)) {
            fail(err, f->name, "span %zu: start and end must be integers", i);
            goto fail;
        }
        spans[i].start = json_integer_value(st);
        spans[i].end = json_integer_value(en);
        spans[i].label = choice_of(f, lb);
        if (!json_is_string(lb)) {
            fail(err, f->name, "span %zu: label must be a string, one of the field's labels", i);
            goto fail;
        }
        if (spans[i].label < 0) {
            fail(err, f->name, "span %zu: \"%s\" is not one of the field's labels", i,
                 quoted_value(q, sizeof q, lb));
            goto fail;
        }
        spans[i].name = f->choices[spans[i].label];
        if (spans[i].start < 0) {
            fail(err, f->name, "span %zu: start (%" PRId64 ") must not be negative", i,
                 spans[i].start);
            goto fail;
        }
        if (spans[i].end <= spans[i].start) {
            fail(err, f->name,
                 "span %zu: end (%" PRId64 ") must be greater than start (%" PRId64 ")", i,
                 spans[i].end, spans[i].start);
            goto fail;
        }
        if (spans[i].end > len) {
            fail(err, f->name,
                 "span %zu: [%" PRId64 ", %" PRId64 ") ends outside the text of \"%s\" (%" PRId64
                 " characters)",
                 i, spans[i].start, spans[i].end, quoted(q, sizeof q, f->over, strlen(f->over)),
                 len);
            goto fail;
        }
    }
    qsort(spans, n, sizeof *spans, cmp_span);
    int64_t reach = -1; /* the furthest end so far */
    for (size_t i = 0; i < n; i++) {
        const span_t *a = &spans[i];
        if (i && !cmp_span(&spans[i - 1], a)) {
            fail(err, f->name, "span [%" PRId64 ", %" PRId64 ") \"%s\" appears twice", a->start,
                 a->end, quoted(q, sizeof q, f->choices[a->label], strlen(f->choices[a->label])));
            goto fail;
        }
        if (!f->overlap && a->start < reach) {
            fail(err, f->name,
                 "spans overlap at [%" PRId64 ", %" PRId64 "): this field's spans may not overlap",
                 a->start, a->end < reach ? a->end : reach);
            goto fail;
        }
        if (a->end > reach)
            reach = a->end;
    }
    *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(*out, json_pack("{sI sI ss}", "start", (json_int_t)spans[i].start,
                                              "end", (json_int_t)spans[i].end, "label",
                                              f->choices[spans[i].label]));
    free(spans);
    return 0;
fail:
    free(spans);
    return -1;
}

typedef struct box_s {
    double x, y, w, h;
    int label;
    const char *name; /* the label's text, borrowed from the field */
} box_t;

static int cmp_box(const void *a, const void *b)
{
    const box_t *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    if (p->w != q->w)
        return p->w < q->w ? -1 : 1;
    if (p->h != q->h)
        return p->h < q->h ? -1 : 1;
    return strcmp(p->name, q->name);
}

static int check_boxes(const qr_label_field_t *f, json_t *v, json_t **out, qr_label_error_t *err)
{
    static const char *const keys[] = {"x", "y", "width", "height", "label", "rotation"};
    if (!json_is_array(v))
        return fail(err, f->name,
                    "must be an array of boxes {\"x\", \"y\", \"width\", \"height\", \"label\"}");
    size_t n = json_array_size(v);
    if (n > QR_LABEL_ITEMS_MAX)
        return fail(err, f->name, "holds %zu boxes; at most %d", n, QR_LABEL_ITEMS_MAX);
    box_t *boxes = qr_xcalloc(n + 1, sizeof *boxes);
    char q[120];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(v, i);
        json_t *x = json_object_get(o, "x"), *y = json_object_get(o, "y"),
               *w = json_object_get(o, "width"), *h = json_object_get(o, "height"),
               *lb = json_object_get(o, "label"), *rot = opt(o, "rotation");
        const char *other = json_is_object(o) ? other_key(o, keys, 6) : NULL;
        if (!json_is_object(o)) {
            fail(err, f->name,
                 "box %zu must be an object {\"x\", \"y\", \"width\", \"height\", \"label\"}", i);
            goto fail;
        }
        if (other) {
            fail(err, f->name, "box %zu has an unknown key \"%s\"", i,
                 quoted(q, sizeof q, other, strlen(other)));
            goto fail;
        }
        if (!json_is_number(x) || !json_is_number(y) || !json_is_number(w) || !json_is_number(h)) {
            fail(err, f->name, "box %zu: x, y, width and height must be numbers", i);
            goto fail;
        }
        if (rot && !(json_is_number(rot) && json_number_value(rot) == 0)) {
            fail(err, f->name, "box %zu: rotation must be 0 (rotated boxes are not supported)", i);
            goto fail;
        }
        box_t *b = &boxes[i];
        b->x = json_number_value(x), b->y = json_number_value(y);
        b->w = json_number_value(w), b->h = json_number_value(h);
        b->label = choice_of(f, lb);
        if (!json_is_string(lb)) {
            fail(err, f->name, "box %zu: label must be a string, one of the field's labels", i);
            goto fail;
        }
        if (b->label < 0) {
            fail(err, f->name, "box %zu: \"%s\" is not one of the field's labels", i,
                 quoted_value(q, sizeof q, lb));
            goto fail;
        }
        if (!(b->x >= 0 && b->y >= 0 && b->w > 0 && b->h > 0 && b->x + b->w <= 100 + EDGE_SLACK &&
              b->y + b->h <= 100 + EDGE_SLACK)) {
            fail(err, f->name,
                 "box %zu (x %.15g, y %.15g, width %.15g, height %.15g) is outside 0-100: x and "
                 "y at least 0, width and height above 0, x + width and y + height at most 100",
                 i, b->x, b->y, b->w, b->h);
            goto fail;
        }
        b->name = f->choices[b->label];
        b->x = round15(b->x), b->y = round15(b->y), b->w = round15(b->w), b->h = round15(b->h);
    }
    qsort(boxes, n, sizeof *boxes, cmp_box);
    *out = json_array();
    for (size_t i = 0; i < n; i++) {
        const box_t *b = &boxes[i];
        json_array_append_new(*out,
                              json_pack("{so so so so ss}", "x", number_json(b->x), "y",
                                        number_json(b->y), "width", number_json(b->w), "height",
                                        number_json(b->h), "label", f->choices[b->label]));
    }
    free(boxes);
    return 0;
fail:
    free(boxes);
    return -1;
}

static int check_text(const qr_label_field_t *f, json_t *v, json_t **out, qr_label_error_t *err)
{
    if (!json_is_string(v))
        return fail(err, f->name, "must be a string of at most %d characters", f->max_length);
    int64_t len = qr_label_utf8_length(json_string_value(v), json_string_length(v));
    if (len < 0)
        return fail(err, f->name, "is not valid UTF-8");
    if (len > f->max_length)
        return fail(err, f->name, "is %" PRId64 " characters long; at most %d", len, f->max_length);
    *out = json_stringn(json_string_value(v), json_string_length(v));
    return 0;
}

static int check_value(const qr_label_field_t *f, json_t *v, const qr_label_data_t *data,
                       json_t **out, qr_label_error_t *err)
{
    switch (f->type) {
    case QR_LABEL_CHOICE:
        return check_choice(f, v, out, err);
    case QR_LABEL_MULTI_CHOICE:
        return check_multi(f, v, out, err);
    case QR_LABEL_RATING:
        return check_rating(f, v, out, err);
    case QR_LABEL_SPANS:
        return check_spans(f, v, data, out, err);
    case QR_LABEL_BOXES:
        return check_boxes(f, v, out, err);
    case QR_LABEL_TEXT:
        return check_text(f, v, out, err);
    }
    return fail(err, f->name, "has an unknown type");
}

/* The schema's field names, for a message: "a, b, c". */
static void field_list(const qr_label_schema_t *s, char *dst, size_t cap)
{
    size_t len = 0;
    dst[0] = '\0';
    for (int i = 0; i < s->nfields && len + 1 < cap; i++) {
        int w = snprintf(dst + len, cap - len, "%s%s", i ? ", " : "", s->fields[i].name);
        if (w < 0 || (size_t)w >= cap - len) {
            snprintf(dst + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            return;
        }
        len += (size_t)w;
    }
}

int qr_label_check(const qr_label_schema_t *s, json_t *labels, const qr_label_data_t *data,
                   char **canonical, qr_label_error_t *err)
{
    if (canonical)
        *canonical = NULL;
    char names[160];
    field_list(s, names, sizeof names);
    if (!json_is_object(labels))
        return fail(err, "labels", "must be an object of the schema's fields (%s)", names);
    const char *key;
    json_t *v;
    json_object_foreach(labels, key, v)
    {
        if (qr_label_schema_field(s, key) < 0)
            return fail(err, key, "not a field of this project's schema (its fields: %s)", names);
    }
    json_t *out = json_object();
    for (int i = 0; i < s->nfields; i++) {
        const qr_label_field_t *f = &s->fields[i];
        v = opt(labels, f->name);
        if (!v) {
            if (f->required) {
                json_decref(out);
                return fail(err, f->name, "required (a %s field), but missing",
                            type_names[f->type]);
            }
            continue;
        }
        json_t *c = NULL;
        if (check_value(f, v, data, &c, err) < 0) {
            json_decref(out);
            return -1;
        }
        json_object_set_new(out, f->name, c);
    }
    if (canonical) {
        if (s->implied)
            *canonical = qr_xstrdup(json_string_value(json_object_get(out, s->fields[0].name)));
        else
            *canonical = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15));
        QR_ASSERT(*canonical);
    }
    json_decref(out);
    return 0;
}

json_t *qr_label_from_single(const qr_label_schema_t *s, json_t *label, qr_label_error_t *err)
{
    if (s->nfields != 1 || s->fields[0].type != QR_LABEL_CHOICE) {
        char names[160];
        field_list(s, names, sizeof names);
        fail(err, "labels",
             "this project's schema has %d field%s (%s): send them as \"labels\": {...}, not "
             "\"label\"",
             s->nfields, s->nfields == 1 ? "" : "s", names);
        return NULL;
    }
    return json_pack("{sO}", s->fields[0].name, label);
}
