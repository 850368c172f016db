/*
 * label_schema.h - a project's label schema (issue 15): one or more named
 * fields, each of a type (choice, multi_choice, rating, spans, boxes, text);
 * the schema parsed and checked from its JSON; the implied schema of a plain
 * label list; and a submission's labels object checked against a schema and
 * put in its canonical stored form.
 *
 * Pure: no I/O, no global state, thread-safe. The contract of the JSON shapes,
 * the rules and the canonical form is /work/briefs/i15-spec.md, as documented
 * in docs/API.md ("Label schemas").
 *
 * Span fields refer to a string of the task's data (their `over` key), and a
 * span may not end past it. The checker does not read task data: the caller
 * first asks which data keys a submission needs (qr_label_data_keys), finds
 * their lengths in Unicode code points however it likes (the broker asks
 * PostgreSQL, off the event loop's critical path), then checks with them
 * (qr_label_check). A check without data (data NULL) runs every rule but
 * those needing the lengths, so a broker can refuse most bad submissions
 * before it asks anything.
 *
 * Errors are words for people: a field name (the schema field, "labels" for
 * the submission as a whole, "schema" or "fields[i]" for a schema itself) and
 * a one-line message that starts with that name and a colon. Messages are
 * valid UTF-8 with no control characters.
 */
#ifndef QR_LABEL_SCHEMA_H
#define QR_LABEL_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The limits of the contract. */
#define QR_LABEL_FIELDS_MAX    32      /* fields in a schema */
#define QR_LABEL_NAME_MAX      64      /* bytes of a field name, [A-Za-z0-9_.-] */
#define QR_LABEL_CHOICES_MAX   1000    /* choices (or labels) of a field */
#define QR_LABEL_CHOICE_MAX    200     /* bytes of one choice */
#define QR_LABEL_ITEMS_MAX     1000    /* spans or boxes in one value */
#define QR_LABEL_LEVELS_MAX    1000    /* levels of a rating scale */
#define QR_LABEL_TEXT_MAX      100000  /* the largest max_length of a text field */
#define QR_LABEL_TEXT_DEFAULT  1000    /* max_length when not given */
#define QR_LABEL_NUMBER_MAX    1e15    /* |min|, |max| of a rating scale */
#define QR_LABEL_IMPLIED_FIELD "label" /* the one field of a plain label list */

typedef enum qr_label_type_e {
    QR_LABEL_CHOICE = 0,
    QR_LABEL_MULTI_CHOICE,
    QR_LABEL_RATING,
    QR_LABEL_SPANS,
    QR_LABEL_BOXES,
    QR_LABEL_TEXT,
} qr_label_type_t;

/* One field of a schema. Owned by its schema. */
typedef struct qr_label_field_s {
    char name[QR_LABEL_NAME_MAX + 1];
    qr_label_type_t type;
    int required; /* 1 unless "required": false */
    /* choice, multi_choice: the choices; spans, boxes: the labels. In schema order. */
    char **choices;
    int nchoices;
    int min_count, max_count; /* multi_choice: how many choices a value holds */
    double min, max, step;    /* rating: the scale */
    int levels;               /* rating: (max - min) / step + 1 */
    int integral;             /* rating: min and step are whole numbers: values are integers */
    char *over;               /* spans, boxes: the data key the field refers to */
    int overlap;              /* spans: 1 when spans of one value may intersect */
    int max_length;           /* text: code points */
    int *order;               /* private: choice indices sorted by their bytes, for lookups */
} qr_label_field_t;

typedef struct qr_label_schema_s {
    qr_label_field_t *fields;
    int nfields;
    int implied; /* 1: the implied schema of a plain label list (qr_label_schema_implied) */
} qr_label_schema_t;

/* Why a schema or a submission was refused. */
typedef struct qr_label_error_s {
    char field[QR_LABEL_NAME_MAX + 1]; /* the field, "labels", "schema" or "fields[i]" */
    char message[320];                 /* "<field>: <reason>", one line, valid UTF-8 */
} qr_label_error_t;

/* "choice", "multi_choice", ... for a type. */
const char *qr_label_type_name(qr_label_type_t type);

/*
 * Parses and checks a schema object ({"fields": [...]}) against every rule of
 * the contract. Returns 0 and a new schema in *out (free with
 * qr_label_schema_free), or -1 with err filled. schema is borrowed and not
 * changed.
 */
int qr_label_schema_parse(json_t *schema, qr_label_schema_t **out, qr_label_error_t *err);

/*
 * The schema as stored and shown: {"fields": [...]}, every field with each
 * key of its type, defaults filled in ("required", multi_choice "min" and
 * "max", rating "step", spans "overlap", text "max_length"); numbers with a
 * whole value as JSON integers. A new reference; parsing it gives the same
 * schema.
 */
json_t *qr_label_schema_to_json(const qr_label_schema_t *s);

/*
 * The schema a plain project's label list implies: one required choice field
 * named "label" with those choices (copied). Its canonical stored form is the
 * label itself (a string), as it was before schemas.
 */
qr_label_schema_t *qr_label_schema_implied(const char *const *labels, int n);

void qr_label_schema_free(qr_label_schema_t *s);

/* The index of the field called name, or -1. */
int qr_label_schema_field(const qr_label_schema_t *s, const char *name);

/* A task's data as the checker needs it: the length in code points of the
 * string under each key asked for, or one of these. */
#define QR_LABEL_DATA_MISSING  (-1) /* the data has no such key */
#define QR_LABEL_DATA_NOT_TEXT (-2) /* the value there is not a string */

typedef struct qr_label_data_s {
    int n;
    const char *const *keys; /* n keys, as qr_label_data_keys named them */
    const int64_t *lengths;  /* n lengths: code points, or QR_LABEL_DATA_* */
} qr_label_data_t;

/*
 * The data keys checking labels (a submission's labels object, borrowed)
 * needs: the `over` key of each span field given a value (not null), each
 * key once, in schema order. Writes at most max pointers (borrowed from the
 * schema) to keys and returns how many there are (may exceed max; a schema
 * has at most QR_LABEL_FIELDS_MAX). 0: the check needs no data. labels that is
 * not an object needs none (the check refuses it).
 */
int qr_label_data_keys(const qr_label_schema_t *s, json_t *labels, const char **keys, int max);

/*
 * Checks a submission's labels object (borrowed) against the schema: every
 * value of the contract's rules, unknown fields, required ones. With data
 * NULL the rules that need the task's data (a span's end within data[over],
 * data[over] a string) are skipped; with data, each key of
 * qr_label_data_keys must be in it.
 *
 * Returns 0 and, when canonical is not NULL, the canonical stored text in
 * *canonical (heap; the caller frees): for a schema, the compact JSON object
 * with keys in schema field order (omitted optional fields absent),
 * multi_choice values in schema choice order, ratings on the grid (integers
 * when the scale is integral), spans sorted by (start, end, label) without
 * "text", boxes sorted by (x, y, width, height, label) without "rotation",
 * whole numbers as integers, reals with 15 significant digits; for an implied
 * schema, the label string. The same labels give byte-identical text.
 * Returns -1 with err filled otherwise.
 */
int qr_label_check(const qr_label_schema_t *s, json_t *labels, const qr_label_data_t *data,
                   char **canonical, qr_label_error_t *err);

/*
 * A submission's single "label" (today's shape) as a labels object for s: for
 * an implied schema or a schema of exactly one choice field, {"<field>":
 * label} (a new reference); else NULL with err filled (field "labels").
 */
json_t *qr_label_from_single(const qr_label_schema_t *s, json_t *label, qr_label_error_t *err);

/* The length of s[0..n) in Unicode code points, or -1 when it is not valid
 * UTF-8 (overlong forms, surrogates and code points past U+10FFFF are not). */
int64_t qr_label_utf8_length(const char *s, size_t n);

#endif
