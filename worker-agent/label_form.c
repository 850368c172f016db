/*
 * label_form.c - the terminal labeler's form for a project with a label
 * schema (issue 15): the fields of the task on screen, one at a time, then
 * one submit of {"labels": {...}}. The UI thread's alone (label.c calls it;
 * the state is lb->form).
 *
 * What each field type takes:
 *   choice        a digit (1-9, 0 the 10th) picks a choice;
 *   multi_choice  digits toggle choices, Enter confirms (min..max of them);
 *   rating        a digit picks the value on a scale of whole numbers
 *                 within 0..9; any other scale takes a typed number, Enter;
 *   text          typed text (UTF-8), Backspace erases, Enter confirms
 *                 (at most max_length code points).
 * Esc (and Backspace where nothing is being typed) goes back a field; n
 * leaves out a field that is not required (an empty text does too). spans
 * and boxes cannot be drawn in a terminal: those fields, when not required,
 * are left out, and a project where one is required is refused before
 * anything is leased (label_form_check) - it needs `exec` or `simulate`.
 *
 * The broker validates the whole submission (a 422 names the field and the
 * reason, shown on the status line); the form only keeps typed input in the
 * shape the field asks for (a number on the scale, a text not too long, a
 * count of choices within bounds), so that a typo is caught while the task
 * is still on screen.
 */
#include "label_int.h"

#include "schema_view.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest typed number (bytes). */
#define MAX_NUMBER_INPUT 32

static json_t *field_at(const label_t *lb, size_t i)
{
    return json_array_get(qr_schema_fields(lb->ag.schema), i);
}

static size_t field_count(const label_t *lb)
{
    return json_array_size(qr_schema_fields(lb->ag.schema));
}

static int labelable(const json_t *f)
{
    qr_field_type_t t = qr_field_type(f);
    return t == QR_FIELD_CHOICE || t == QR_FIELD_MULTI_CHOICE || t == QR_FIELD_RATING ||
           t == QR_FIELD_TEXT;
}

static const char *type_name(const json_t *f)
{
    const char *t = json_string_value(json_object_get(f, "type"));
    return t ? t : "?";
}

int label_form_check(const json_t *schema, char *why, size_t size)
{
    size_t i, n = 0;
    json_t *f;
    json_array_foreach(qr_schema_fields(schema), i, f)
    {
        if (labelable(f)) {
            n++;
        } else if (qr_field_required(f)) {
            snprintf(why, size,
                     "its field '%s' (%s) is required and cannot be labeled in the terminal",
                     qr_field_name(f), type_name(f));
            return -1;
        }
    }
    if (n == 0) {
        snprintf(why, size, "none of its fields can be labeled in the terminal");
        return -1;
    }
    return 0;
}

/* The first labelable field at or after i (field_count when none). */
static size_t next_field(const label_t *lb, size_t i)
{
    while (i < field_count(lb) && !labelable(field_at(lb, i)))
        i++;
    return i;
}

/* Clears what was typed or toggled, and sizes the toggles for the field on
 * screen. */
static void clear_input(form_t *fm, const json_t *f)
{
    qr_buf_reset(&fm->input);
    free(fm->sel);
    fm->nsel = qr_field_type(f) == QR_FIELD_MULTI_CHOICE ? json_array_size(qr_field_choices(f)) : 0;
    fm->sel = qr_xcalloc(fm->nsel ? fm->nsel : 1, 1);
}

void label_form_reset(label_t *lb)
{
    form_t *fm = &lb->form;
    json_decref(fm->labels);
    fm->labels = json_object();
    if (!fm->labels)
        abort(); /* out of memory */
    fm->field = next_field(lb, 0);
    clear_input(fm, field_at(lb, fm->field));
}

void label_form_free(form_t *fm)
{
    json_decref(fm->labels);
    free(fm->sel);
    qr_buf_free(&fm->input);
    memset(fm, 0, sizeof *fm);
}

static const json_t *current(const label_t *lb)
{
    return lb->form.labels ? field_at(lb, lb->form.field) : NULL;
}

/* A rating scale of whole numbers within 0..9: one digit picks a value. */
static int digit_scale(const json_t *f)
{
    double mn = qr_field_number(f, "min", 0), mx = qr_field_number(f, "max", 1),
           st = qr_field_number(f, "step", 1);
    return mn >= 0 && mx <= 9 && mn == floor(mn) && st >= 1 && st == floor(st);
}

int label_form_typing(const label_t *lb)
{
    const json_t *f = current(lb);
    return f && qr_field_type(f) == QR_FIELD_TEXT;
}

/* Called with mu not held: the status line. */
static void say(label_t *lb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(label_t *lb, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    label_lock(lb);
    label_set_status(lb, "%s", msg);
    label_unlock(lb);
}

/* Records value (taken; NULL: left out) for the field on screen and moves
 * to the next one. Returns FORM_DONE with the labels in *value when that
 * was the last. */
static int advance(label_t *lb, json_t *v, json_t **value)
{
    form_t *fm = &lb->form;
    const json_t *f = current(lb);
    if (v && json_object_set_new(fm->labels, qr_field_name(f), v) < 0)
        abort(); /* out of memory */
    fm->field = next_field(lb, fm->field + 1);
    clear_input(fm, field_at(lb, fm->field));
    if (fm->field < field_count(lb))
        return FORM_HANDLED;
    *value = fm->labels;
    fm->labels = NULL; /* the next task's form starts with label_form_reset */
    return FORM_DONE;
}

/* Esc: back to the previous labelable field, its answer taken back into
 * the input (toggles or text) to be changed. */
static int back(label_t *lb)
{
    form_t *fm = &lb->form;
    size_t i = fm->field;
    while (i > 0 && !labelable(field_at(lb, i - 1)))
        i--;
    if (i == 0) {
        qr_buf_reset(&fm->input);
        say(lb, "this is the first field");
        return FORM_HANDLED;
    }
    fm->field = i - 1;
    const json_t *f = field_at(lb, fm->field);
    clear_input(fm, f);
    json_t *was = json_object_get(fm->labels, qr_field_name(f));
    size_t k;
    json_t *c;
    if (qr_field_type(f) == QR_FIELD_MULTI_CHOICE && json_is_array(was)) {
        json_array_foreach(qr_field_choices(f), k, c)
        {
            size_t j;
            json_t *w;
            json_array_foreach(was, j, w)
            {
                fm->sel[k] |= (char)json_equal(c, w);
            }
        }
    } else if (qr_field_type(f) == QR_FIELD_TEXT && json_is_string(was)) {
        qr_buf_append(&fm->input, json_string_value(was), json_string_length(was));
    }
    json_object_del(fm->labels, qr_field_name(f));
    return FORM_HANDLED;
}

/* The number typed for a rating, on its scale: a new value, or NULL with
 * the status line saying why. */
static json_t *typed_rating(label_t *lb, const json_t *f, const char *text)
{
    double mn = qr_field_number(f, "min", 0), mx = qr_field_number(f, "max", 1),
           st = qr_field_number(f, "step", 1);
    char *end = NULL;
    double v = text[0] ? strtod(text, &end) : NAN;
    double k = (v - mn) / st;
    if (!end || *end || !isfinite(v) || v < mn - 1e-9 || v > mx + 1e-9 ||
        fabs(k - round(k)) > 1e-9) {
        say(lb, "%s: type a number from %g to %g in steps of %g", qr_field_name(f), mn, mx, st);
        return NULL;
    }
    if (mn == floor(mn) && st == floor(st))
        return json_integer((json_int_t)llround(v));
    return json_real(v);
}

/* Enter on a text field: its value, or left out when empty and optional. */
static int confirm_text(label_t *lb, const json_t *f, json_t **value)
{
    form_t *fm = &lb->form;
    if (fm->input.len == 0 && !qr_field_required(f))
        return advance(lb, NULL, value);
    json_t *v = json_stringn(fm->input.data ? fm->input.data : "", fm->input.len);
    if (!v) {
        say(lb, "%s: the text is not valid UTF-8; erase and type it again", qr_field_name(f));
        return FORM_HANDLED;
    }
    return advance(lb, v, value);
}

/* Drops the last code point typed. */
static void erase(qr_buf_t *b)
{
    while (b->len > 0 && ((unsigned char)b->data[b->len - 1] & 0xC0) == 0x80)
        b->len--;
    if (b->len > 0)
        b->len--;
    if (b->data)
        b->data[b->len] = '\0';
}

static int text_key(label_t *lb, const json_t *f, int c, json_t **value)
{
    form_t *fm = &lb->form;
    if (c == '\r' || c == '\n')
        return confirm_text(lb, f, value);
    if (c == 0x7f || c == 0x08) {
        erase(&fm->input);
        return FORM_HANDLED;
    }
    if (c == 0x1b)
        return back(lb);
    if ((unsigned char)c < 0x20)
        return FORM_IGNORED;
    size_t limit = (size_t)qr_field_number(f, "max_length", 1000);
    if (((unsigned char)c & 0xC0) != 0x80 &&
        qr_utf8_length(fm->input.data ? fm->input.data : "") >= limit) {
        say(lb, "%s: at most %zu characters", qr_field_name(f), limit);
        return FORM_HANDLED;
    }
    char ch = (char)c;
    qr_buf_append(&fm->input, &ch, 1);
    return FORM_HANDLED;
}

int label_form_key(label_t *lb, int c, json_t **value)
{
    form_t *fm = &lb->form;
    const json_t *f = current(lb);
    *value = NULL;
    if (!f)
        return FORM_IGNORED;
    qr_field_type_t t = qr_field_type(f);
    const json_t *choices = qr_field_choices(f);
    size_t n = json_array_size(choices);
    int enter = c == '\r' || c == '\n';
    if (t == QR_FIELD_TEXT)
        return text_key(lb, f, c, value);
    if (t == QR_FIELD_RATING && !digit_scale(f)) {
        if ((c >= '0' && c <= '9') || c == '.' || c == '-') {
            if (fm->input.len < MAX_NUMBER_INPUT) {
                char ch = (char)c;
                qr_buf_append(&fm->input, &ch, 1);
            }
            return FORM_HANDLED;
        }
        if ((c == 0x7f || c == 0x08) && fm->input.len) {
            erase(&fm->input);
            return FORM_HANDLED;
        }
        if (enter && fm->input.len) {
            json_t *v = typed_rating(lb, f, fm->input.data);
            if (!v) {
                qr_buf_reset(&fm->input);
                return FORM_HANDLED;
            }
            return advance(lb, v, value);
        }
    }
    if (c == 0x1b || c == 0x7f || c == 0x08)
        return back(lb);
    if (c == 'n' || c == 'N') {
        if (qr_field_required(f)) {
            say(lb, "%s is required", qr_field_name(f));
            return FORM_HANDLED;
        }
        return advance(lb, NULL, value);
    }
    if (c >= '0' && c <= '9') {
        size_t k = c == '0' ? 9 : (size_t)(c - '1');
        if (t == QR_FIELD_RATING) {
            char digit[2] = {(char)c, '\0'};
            json_t *v = typed_rating(lb, f, digit);
            return v ? advance(lb, v, value) : FORM_HANDLED;
        }
        if (k >= n) {
            say(lb, "no choice %c", c);
            return FORM_HANDLED;
        }
        if (t == QR_FIELD_CHOICE)
            return advance(lb, json_copy(json_array_get(choices, k)), value);
        fm->sel[k] = !fm->sel[k];
        return FORM_HANDLED;
    }
    if (enter && t == QR_FIELD_MULTI_CHOICE) {
        double mn = qr_field_number(f, "min", 0), mx = qr_field_number(f, "max", (double)n);
        size_t count = 0;
        for (size_t i = 0; i < fm->nsel; i++)
            count += fm->sel[i] != 0;
        if ((double)count < mn || (double)count > mx) {
            say(lb, "%s: choose %s %g", qr_field_name(f),
                (double)count < mn ? "at least" : "at most", (double)count < mn ? mn : mx);
            return FORM_HANDLED;
        }
        json_t *v = json_array();
        for (size_t i = 0; v && i < fm->nsel; i++)
            if (fm->sel[i])
                json_array_append(v, json_array_get(choices, i));
        return advance(lb, v, value);
    }
    return FORM_IGNORED;
}

const char *label_form_hint(const label_t *lb)
{
    const json_t *f = current(lb);
    int opt = f && !qr_field_required(f);
    switch (f ? qr_field_type(f) : QR_FIELD_UNKNOWN) {
    case QR_FIELD_TEXT:
        return "type  Enter done  Backspace erase  Esc back  Ctrl-S skip  Ctrl-R release  "
               "Ctrl-C quit";
    case QR_FIELD_MULTI_CHOICE:
        return opt ? "digits toggle  Enter done  Esc back  n none  s skip  r release  u undo  q "
                     "quit"
                   : "digits toggle  Enter done  Esc back  s skip  r release  u undo  q quit";
    case QR_FIELD_RATING:
        if (!digit_scale(f))
            return opt ? "type a number  Enter done  Esc back  n none  s skip  r release  u undo  "
                         "q quit"
                       : "type a number  Enter done  Esc back  s skip  r release  u undo  q quit";
        /* fall through */
    case QR_FIELD_CHOICE:
        return opt ? "digits choose  Esc back  n none  s skip  r release  u undo  q quit"
                   : "digits choose  Esc back  s skip  r release  u undo  q quit";
    default:
        return "s skip   r release   u undo   q quit";
    }
}

/* Appends items to rows of at most cols columns ("[1] a   [2] b   ..."). */
static int item_rows(qr_buf_t *out, qr_buf_t *row, const char *item, int cols, int flush)
{
    int used = 0;
    if (item && row->len && row->len + strlen(item) > (size_t)cols) {
        used += label_line(out, row->data, cols);
        qr_buf_reset(row);
    }
    if (item)
        qr_buf_appends(row, item);
    if (flush && row->len) {
        used += label_line(out, row->data, cols);
        qr_buf_reset(row);
    }
    return used;
}

int label_form_draw(const label_t *lb, qr_buf_t *out, int cols)
{
    const form_t *fm = &lb->form;
    const json_t *f = current(lb);
    int used = 0;
    size_t i;
    json_t *g;
    if (!f)
        return 0;
    qr_buf_t row;
    qr_buf_init(&row);
    /* What was answered so far, and what is left out. */
    const char *key;
    json_t *v;
    json_object_foreach(fm->labels, key, v)
    {
        char *text = agent_value_text(v);
        qr_buf_appendf(&row, "%s%s: %s", row.len ? "   " : "so far: ", key, text);
        free(text);
    }
    used += item_rows(out, &row, NULL, cols, 1);
    json_array_foreach(qr_schema_fields(lb->ag.schema), i, g)
    {
        if (!labelable(g))
            qr_buf_appendf(&row, "%s%s (%s)",
                           row.len ? ", " : "left out, not labelable here: ", qr_field_name(g),
                           type_name(g));
    }
    used += item_rows(out, &row, NULL, cols, 1);
    /* The field on screen. */
    size_t pos = 0, total = 0;
    json_array_foreach(qr_schema_fields(lb->ag.schema), i, g)
    {
        total += labelable(g);
        pos += labelable(g) && i <= fm->field;
    }
    qr_field_type_t t = qr_field_type(f);
    const json_t *choices = qr_field_choices(f);
    qr_buf_appendf(&row, "Field %zu/%zu  %s  (%s", pos, total, qr_field_name(f), type_name(f));
    if (t == QR_FIELD_MULTI_CHOICE)
        qr_buf_appendf(&row, ", choose %g to %g", qr_field_number(f, "min", 0),
                       qr_field_number(f, "max", (double)json_array_size(choices)));
    else if (t == QR_FIELD_RATING)
        qr_buf_appendf(&row, ", %g to %g in steps of %g", qr_field_number(f, "min", 0),
                       qr_field_number(f, "max", 1), qr_field_number(f, "step", 1));
    else if (t == QR_FIELD_TEXT)
        qr_buf_appendf(&row, ", at most %g characters", qr_field_number(f, "max_length", 1000));
    qr_buf_appendf(&row, "%s)", qr_field_required(f) ? "" : ", optional");
    used += item_rows(out, &row, NULL, cols, 1);
    if (t == QR_FIELD_CHOICE || t == QR_FIELD_MULTI_CHOICE) {
        for (i = 0; i < json_array_size(choices) && i < 10; i++) {
            char item[160];
            snprintf(item, sizeof item, "[%zu] %s%s   ", (i + 1) % 10,
                     t == QR_FIELD_CHOICE ? ""
                     : fm->sel[i]         ? "[x] "
                                          : "[ ] ",
                     json_string_value(json_array_get(choices, i)));
            used += item_rows(out, &row, item, cols, 0);
        }
        used += item_rows(out, &row, NULL, cols, 1);
    } else if (t == QR_FIELD_RATING && digit_scale(f)) {
        double st = qr_field_number(f, "step", 1);
        for (double d = qr_field_number(f, "min", 0); d <= qr_field_number(f, "max", 1) + 1e-9;
             d += st) {
            char item[40];
            snprintf(item, sizeof item, "[%g]   ", d);
            used += item_rows(out, &row, item, cols, 0);
        }
        used += item_rows(out, &row, NULL, cols, 1);
    } else {
        /* What is being typed: its end when longer than the line. */
        const char *typed = fm->input.data ? fm->input.data : "";
        size_t len = fm->input.len, room = cols > 4 ? (size_t)cols - 4 : 1;
        while (len > room) {
            typed++;
            len--;
            while (((unsigned char)*typed & 0xC0) == 0x80 && len > 0) {
                typed++;
                len--;
            }
        }
        qr_buf_appendf(&row, "> %s_", typed);
        used += item_rows(out, &row, NULL, cols, 1);
    }
    qr_buf_free(&row);
    return used;
}
