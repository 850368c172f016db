/*
 * schema_view.h - what the agents read of a project's label schema (the
 * project JSON's "schema": {"fields": [...]}, issue 15; docs/API.md): a
 * field's name, type, whether it is required, its choices or labels, and
 * its numbers. The broker validated and normalized the schema when the
 * project was made, and it validates every submission again (a 422 names
 * the field and the reason): the agents only read what the terminal
 * labeler and the simulated crew need, and check nothing here.
 *
 * Header only, borrowed pointers into the schema's JSON, valid while it is.
 */
#ifndef QR_SCHEMA_VIEW_H
#define QR_SCHEMA_VIEW_H

#include <jansson.h>
#include <string.h>

typedef enum {
    QR_FIELD_UNKNOWN = 0, /* a type this agent does not know */
    QR_FIELD_CHOICE,
    QR_FIELD_MULTI_CHOICE,
    QR_FIELD_RATING,
    QR_FIELD_SPANS,
    QR_FIELD_BOXES,
    QR_FIELD_TEXT,
} qr_field_type_t;

/* The schema's fields (an array; empty when schema has none). */
static inline json_t *qr_schema_fields(const json_t *schema)
{
    return json_object_get(schema, "fields");
}

static inline qr_field_type_t qr_field_type(const json_t *field)
{
    static const char *const names[] = {"",      "choice", "multi_choice", "rating",
                                        "spans", "boxes",  "text"};
    const char *t = json_string_value(json_object_get(field, "type"));
    for (int i = 1; t && i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(t, names[i]) == 0)
            return (qr_field_type_t)i;
    return QR_FIELD_UNKNOWN;
}

/* The field's name ("" when it has none). */
static inline const char *qr_field_name(const json_t *field)
{
    const char *n = json_string_value(json_object_get(field, "name"));
    return n ? n : "";
}

/* Fields are required unless "required": false. */
static inline int qr_field_required(const json_t *field)
{
    return !json_is_false(json_object_get(field, "required"));
}

/* The strings a value picks from: "choices" of choice and multi_choice,
 * "labels" of spans and boxes (an array, maybe empty). */
static inline json_t *qr_field_choices(const json_t *field)
{
    qr_field_type_t t = qr_field_type(field);
    return json_object_get(field,
                           t == QR_FIELD_SPANS || t == QR_FIELD_BOXES ? "labels" : "choices");
}

/* A number of the field (min, max, step, max_length), def when absent. */
static inline double qr_field_number(const json_t *field, const char *key, double def)
{
    json_t *v = json_object_get(field, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* Unicode code points in UTF-8 text s (jansson's strings are valid UTF-8). */
static inline size_t qr_utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

#endif
