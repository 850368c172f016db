/*
 * ls_result.c - Label Studio's result shapes <-> a schema project's labels
 * object (see ls_result.h).
 */
#include "ls_result.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* The Label Studio result types and the field types each can fill. */
typedef struct {
    const char *ls_type;
    const char *types[2];
} ls_kind_t;

static const ls_kind_t kinds[] = {
    {"choices", {"choice", "multi_choice"}},
    {"labels", {"spans", NULL}},
    {"rectanglelabels", {"boxes", NULL}},
    {"rating", {"rating", NULL}},
    {"number", {"rating", NULL}},
    {"textarea", {"text", NULL}},
};

static const ls_kind_t *kind_of(const char *ls_type)
{
    for (size_t i = 0; ls_type && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].ls_type, ls_type) == 0)
            return &kinds[i];
    return NULL;
}

static int fills(const ls_kind_t *k, const char *type)
{
    return type && ((k->types[0] && !strcmp(k->types[0], type)) ||
                    (k->types[1] && !strcmp(k->types[1], type)));
}

static const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The field a result item fills: by from_name, else the only field its type
 * can fill. NULL with err set when none or several fit. */
static const json_t *field_for(const json_t *fields, const ls_kind_t *k, const char *from,
                               const char *where, char *err, size_t errlen)
{
    size_t i;
    const json_t *f, *only = NULL;
    int n = 0;
    json_array_foreach(fields, i, f)
    {
        if (from && !strcmp(from, str_of(f, "name") ? str_of(f, "name") : "")) {
            if (fills(k, str_of(f, "type")))
                return f;
            fail(err, errlen,
                 "%s.from_name: field \"%s\" is a %s field; a \"%s\" result cannot fill it", where,
                 from, str_of(f, "type"), k->ls_type);
            return NULL;
        }
        if (fills(k, str_of(f, "type"))) {
            only = f;
            n++;
        }
    }
    if (n == 1)
        return only;
    fail(err, errlen, "%s.from_name: \"%s\" names no field of the schema and %s", where,
         from ? from : "", n ? "several fields could take it" : "no field takes this type");
    return NULL;
}

/* The one string of a list ("choices", "labels", ...) of a value. */
static const char *one_string(const json_t *value, const char *key, const char *where, char *err,
                              size_t errlen)
{
    const json_t *a = json_object_get(value, key);
    if (!json_is_array(a) || json_array_size(a) != 1 || !json_is_string(json_array_get(a, 0))) {
        fail(err, errlen, "%s.value.%s: must be an array of one label", where, key);
        return NULL;
    }
    return json_string_value(json_array_get(a, 0));
}

/* UTF-8 helpers: the length of the sequence a lead byte starts (1 for
 * anything else, so that broken text still advances). */
static size_t seq_len(unsigned char c)
{
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

long long qr_utf16_of_codepoint(const char *s, size_t len, long long cp)
{
    long long u = 0;
    size_t i = 0;
    while (cp > 0 && i < len) {
        size_t n = seq_len((unsigned char)s[i]);
        u += n == 4 ? 2 : 1;
        i += n;
        cp--;
    }
    return u + (cp > 0 ? cp : 0);
}

long long qr_codepoint_of_utf16(const char *s, size_t len, long long u16)
{
    long long cp = 0;
    size_t i = 0;
    while (u16 > 0 && i < len) {
        size_t n = seq_len((unsigned char)s[i]);
        u16 -= n == 4 ? 2 : 1;
        i += n;
        cp++;
    }
    return cp + (u16 > 0 ? u16 : 0);
}

/* The text a span or box field refers to, or NULL. */
static const json_t *over_text(const json_t *field, const json_t *data)
{
    const json_t *t = json_object_get(data, str_of(field, "over") ? str_of(field, "over") : "");
    return json_is_string(t) ? t : NULL;
}

static int add_span(json_t *list, const json_t *field, const json_t *value, const json_t *data,
                    const char *where, char *err, size_t errlen)
{
    const json_t *s = json_object_get(value, "start"), *e = json_object_get(value, "end");
    if (!json_is_integer(s) || !json_is_integer(e))
        return fail(err, errlen, "%s.value: start and end must be integers", where);
    const char *label = one_string(value, "labels", where, err, errlen);
    if (!label)
        return -1;
    long long start = json_integer_value(s), end = json_integer_value(e);
    const json_t *text = over_text(field, data);
    if (text) {
        start = qr_codepoint_of_utf16(json_string_value(text), json_string_length(text), start);
        end = qr_codepoint_of_utf16(json_string_value(text), json_string_length(text), end);
    }
    return json_array_append_new(list, json_pack("{sI sI ss}", "start", (json_int_t)start, "end",
                                                 (json_int_t)end, "label", label));
}

static int add_box(json_t *list, const json_t *value, const char *where, char *err, size_t errlen)
{
    static const char *const keys[] = {"x", "y", "width", "height"};
    json_t *box = json_object();
    for (size_t i = 0; i < 4; i++) {
        const json_t *v = json_object_get(value, keys[i]);
        if (!json_is_number(v)) {
            json_decref(box);
            return fail(err, errlen, "%s.value.%s: must be a number", where, keys[i]);
        }
        json_object_set_new(box, keys[i], json_real(json_number_value(v)));
    }
    const char *label = one_string(value, "rectanglelabels", where, err, errlen);
    if (!label) {
        json_decref(box);
        return -1;
    }
    json_object_set_new(box, "label", json_string(label));
    const json_t *rot = json_object_get(value, "rotation");
    if (rot && !(json_is_number(rot) && json_number_value(rot) == 0))
        json_object_set(box, "rotation", (json_t *)rot); /* the schema check refuses it */
    return json_array_append_new(list, box);
}

/* The value of a single-valued field (choice, rating, text), or NULL. */
static json_t *single_value(const json_t *field, const json_t *value, const char *where, char *err,
                            size_t errlen)
{
    const char *type = str_of(field, "type");
    if (!strcmp(type, "choice")) {
        const char *c = one_string(value, "choices", where, err, errlen);
        return c ? json_string(c) : NULL;
    }
    if (!strcmp(type, "rating")) {
        const json_t *r = json_object_get(value, "rating");
        if (!r)
            r = json_object_get(value, "number");
        if (!json_is_number(r)) {
            fail(err, errlen, "%s.value.rating: must be a number", where);
            return NULL;
        }
        return json_deep_copy(r);
    }
    /* text: Label Studio keeps a textarea's lines as an array of strings. */
    const json_t *t = json_object_get(value, "text");
    if (json_is_string(t))
        return json_deep_copy(t);
    if (!json_is_array(t) || json_array_size(t) == 0) {
        fail(err, errlen, "%s.value.text: must be an array of strings", where);
        return NULL;
    }
    size_t i, n = 0;
    const json_t *line;
    json_array_foreach(t, i, line)
    {
        if (!json_is_string(line)) {
            fail(err, errlen, "%s.value.text[%zu]: must be a string", where, i);
            return NULL;
        }
        n += json_string_length(line) + 1;
    }
    char *joined = malloc(n);
    if (!joined)
        return NULL;
    size_t at = 0;
    json_array_foreach(t, i, line)
    {
        if (i)
            joined[at++] = '\n';
        memcpy(joined + at, json_string_value(line), json_string_length(line));
        at += json_string_length(line);
    }
    json_t *out = json_stringn(joined, at);
    free(joined);
    if (!out)
        fail(err, errlen, "%s.value.text: must be valid UTF-8", where);
    return out;
}

json_t *qr_ls_result_to_labels(const json_t *fields, const json_t *result, const json_t *data,
                               char *err, size_t errlen)
{
    if (!json_is_array(result)) {
        fail(err, errlen, "result: must be an array (Label Studio's result)");
        return NULL;
    }
    json_t *labels = json_object();
    size_t i;
    const json_t *item;
    json_array_foreach(result, i, item)
    {
        char where[48];
        snprintf(where, sizeof where, "result[%zu]", i);
        if (!json_is_object(item)) {
            fail(err, errlen, "%s: must be an object", where);
            goto bad;
        }
        const ls_kind_t *k = kind_of(str_of(item, "type"));
        const json_t *value = json_object_get(item, "value");
        if (!k)
            continue; /* relations, brushes, ...: no field holds them */
        if (!json_is_object(value)) {
            fail(err, errlen, "%s.value: must be an object", where);
            goto bad;
        }
        const json_t *f = field_for(fields, k, str_of(item, "from_name"), where, err, errlen);
        if (!f)
            goto bad;
        const char *name = str_of(f, "name"), *type = str_of(f, "type");
        json_t *have = json_object_get(labels, name);
        if (!strcmp(type, "multi_choice") || !strcmp(type, "spans") || !strcmp(type, "boxes")) {
            if (!have) {
                have = json_array();
                json_object_set_new(labels, name, have);
            }
            int rc = 0;
            if (!strcmp(type, "spans")) {
                rc = add_span(have, f, value, data, where, err, errlen);
            } else if (!strcmp(type, "boxes")) {
                rc = add_box(have, value, where, err, errlen);
            } else {
                const json_t *c = json_object_get(value, "choices");
                size_t j;
                const json_t *one;
                if (!json_is_array(c))
                    rc = fail(err, errlen, "%s.value.choices: must be an array of labels", where);
                json_array_foreach(c, j, one)
                {
                    if (rc == 0 && !json_is_string(one))
                        rc = fail(err, errlen, "%s.value.choices[%zu]: must be a string", where, j);
                    if (rc == 0)
                        json_array_append(have, (json_t *)one);
                }
            }
            if (rc < 0)
                goto bad;
            continue;
        }
        if (have) {
            fail(err, errlen, "%s: a second value for field \"%s\", which takes one", where, name);
            goto bad;
        }
        json_t *v = single_value(f, value, where, err, errlen);
        if (!v)
            goto bad;
        json_object_set_new(labels, name, v);
    }
    return labels;
bad:
    json_decref(labels);
    return NULL;
}

/* The text of [start, end) code points of s, or NULL past its end. */
static json_t *substring(const json_t *text, long long start, long long end)
{
    const char *s = json_string_value(text);
    size_t len = json_string_length(text), i = 0, from = 0;
    long long cp = 0;
    while (i < len && cp < end) {
        if (cp == start)
            from = i;
        i += seq_len((unsigned char)s[i]);
        cp++;
    }
    if (cp < end || start < 0 || start >= end || i > len)
        return NULL;
    return json_stringn(s + from, i - from);
}

static json_t *result_item(const char *from, const char *to, const char *type, json_t *value)
{
    return json_pack("{ss ss ss so}", "from_name", from, "to_name", to, "type", type, "value",
                     value);
}

json_t *qr_ls_labels_to_result(const json_t *fields, const json_t *labels, const json_t *data,
                               const char *to_name)
{
    json_t *out = json_array();
    size_t i, j;
    const json_t *f, *e;
    json_array_foreach(fields, i, f)
    {
        const char *name = str_of(f, "name"), *type = str_of(f, "type");
        const json_t *v = json_object_get(labels, name ? name : "");
        if (!name || !type || !v || json_is_null(v))
            continue;
        const char *over = str_of(f, "over") ? str_of(f, "over") : to_name;
        if (!strcmp(type, "choice")) {
            json_array_append_new(
                out, result_item(name, to_name, "choices", json_pack("{s[O]}", "choices", v)));
        } else if (!strcmp(type, "multi_choice")) {
            json_array_append_new(
                out, result_item(name, to_name, "choices", json_pack("{sO}", "choices", v)));
        } else if (!strcmp(type, "rating")) {
            json_array_append_new(
                out, result_item(name, to_name, "rating", json_pack("{sO}", "rating", v)));
        } else if (!strcmp(type, "text")) {
            json_array_append_new(
                out, result_item(name, to_name, "textarea", json_pack("{s[O]}", "text", v)));
        } else if (!strcmp(type, "spans")) {
            const json_t *text = over_text(f, data);
            json_array_foreach(v, j, e)
            {
                long long s = json_integer_value(json_object_get(e, "start"));
                long long t = json_integer_value(json_object_get(e, "end"));
                json_t *value = json_object();
                json_t *sub = text ? substring(text, s, t) : NULL;
                if (text) {
                    const char *str = json_string_value(text);
                    size_t len = json_string_length(text);
                    s = qr_utf16_of_codepoint(str, len, s);
                    t = qr_utf16_of_codepoint(str, len, t);
                }
                json_object_set_new(value, "start", json_integer((json_int_t)s));
                json_object_set_new(value, "end", json_integer((json_int_t)t));
                if (sub)
                    json_object_set_new(value, "text", sub);
                json_object_set_new(value, "labels", json_pack("[O]", json_object_get(e, "label")));
                json_t *item = result_item(name, over, "labels", value);
                char id[80];
                snprintf(id, sizeof id, "%s-%zu", name, j);
                json_object_set_new(item, "id", json_string(id));
                json_array_append_new(out, item);
            }
        } else if (!strcmp(type, "boxes")) {
            json_array_foreach(v, j, e)
            {
                json_t *value =
                    json_pack("{sO sO sO sO si s[O]}", "x", json_object_get(e, "x"), "y",
                              json_object_get(e, "y"), "width", json_object_get(e, "width"),
                              "height", json_object_get(e, "height"), "rotation", 0,
                              "rectanglelabels", json_object_get(e, "label"));
                if (!value)
                    continue; /* not a stored box: nothing to say of it */
                json_t *item = result_item(name, over, "rectanglelabels", value);
                char id[80];
                snprintf(id, sizeof id, "%s-%zu", name, j);
                json_object_set_new(item, "id", json_string(id));
                json_array_append_new(out, item);
            }
        }
    }
    return out;
}
