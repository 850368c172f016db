/*
 * ctl_schema.c - a project's label schema for quorumctl (ctl_schema.h): the
 * file `project create --schema` sends, and the lines `project show` and
 * `project list` print.
 */
#include "ctl_schema.h"

#include "text_out.h"

#include <stdio.h>
#include <string.h>

json_t *qr_ctl_schema_load(const char *path, char *err, size_t errlen)
{
    json_error_t e;
    json_t *j = !strcmp(path, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &e)
                                   : json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        snprintf(err, errlen, "--schema %s: line %d: %s", path, e.line, e.text);
        return NULL;
    }
    json_t *inner = json_object_get(j, "schema");
    if (json_is_object(inner)) {
        json_incref(inner);
        json_decref(j);
        j = inner;
    }
    if (!json_is_object(j) || !json_is_array(json_object_get(j, "fields"))) {
        snprintf(err, errlen,
                 "--schema %s: not a schema: give {\"fields\": [...]} or {\"schema\": "
                 "{\"fields\": [...]}}",
                 path);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The strings of a JSON array as "a,b,c" (terminal-safe) after " key=". */
static void append_list(qr_buf_t *b, const char *key, json_t *arr)
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr))
        return;
    qr_buf_appendf(b, " %s=", key);
    json_array_foreach(arr, i, v)
    {
        if (i)
            qr_buf_appends(b, ",");
        qr_term_escape(b, json_string_value(v) ? json_string_value(v) : "");
    }
}

/* A number of a schema field as " key=N". */
static void append_number(qr_buf_t *b, const char *key, json_t *v)
{
    if (json_is_integer(v))
        qr_buf_appendf(b, " %s=%" JSON_INTEGER_FORMAT, key, json_integer_value(v));
    else if (json_is_real(v))
        qr_buf_appendf(b, " %s=%.15g", key, json_real_value(v));
}

void qr_ctl_schema_show(json_t *project)
{
    json_t *fields = json_object_get(json_object_get(project, "schema"), "fields");
    if (!json_is_array(fields))
        return;
    printf("schema: %zu field%s\n", json_array_size(fields),
           json_array_size(fields) == 1 ? "" : "s");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        qr_buf_t b;
        qr_buf_init(&b);
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *type = json_string_value(json_object_get(f, "type"));
        qr_term_escape(&b, name ? name : "?");
        qr_buf_appends(&b, " ");
        qr_term_escape(&b, type ? type : "?");
        qr_buf_appends(&b,
                       json_is_false(json_object_get(f, "required")) ? " optional" : " required");
        json_t *over = json_object_get(f, "over");
        if (json_is_string(over)) {
            qr_buf_appends(&b, " over=");
            qr_term_escape(&b, json_string_value(over));
        }
        append_number(&b, "min", json_object_get(f, "min"));
        append_number(&b, "max", json_object_get(f, "max"));
        append_number(&b, "step", json_object_get(f, "step"));
        append_number(&b, "max_length", json_object_get(f, "max_length"));
        json_t *overlap = json_object_get(f, "overlap");
        if (json_is_boolean(overlap))
            qr_buf_appends(&b, json_is_true(overlap) ? " overlap=yes" : " overlap=no");
        append_list(&b, "choices", json_object_get(f, "choices"));
        append_list(&b, "labels", json_object_get(f, "labels"));
        printf("field: %s\n", b.data ? b.data : "");
        qr_buf_free(&b);
    }
}

int qr_ctl_schema_summary(qr_buf_t *b, json_t *project)
{
    json_t *fields = json_object_get(json_object_get(project, "schema"), "fields");
    if (!json_is_array(fields))
        return 0;
    qr_buf_appends(b, "schema:");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (i)
            qr_buf_appends(b, ",");
        qr_term_escape(b, name ? name : "?");
    }
    return 1;
}
