/*
 * sim_values.c - truths and noisy values of label schema fields for the
 * simulated crew (see sim_values.h for what each type does). Randomness is
 * a splitmix64 stream seeded from the caller's seed and the field's name,
 * so a value depends on nothing but the arguments.
 */
#include "sim_values.h"

#include "schema_view.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The most spans or boxes a derived truth has. */
#define TRUTH_MAX_ITEMS 3
/* Tries at placing an extra span before giving up. */
#define EXTRA_SPAN_TRIES 8

typedef struct rng_s {
    uint64_t state;
} rng_t;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t next(rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return mix64(r->state);
}

/* Uniform in [0, 1). */
static double unit(rng_t *r)
{
    return (double)(next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n), n > 0. */
static size_t below(rng_t *r, size_t n)
{
    return (size_t)(next(r) % (uint64_t)n);
}

/* FNV-1a of a field name: each field draws from a stream of its own. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static rng_t field_rng(uint64_t seed, const json_t *field)
{
    return (rng_t){mix64(seed ^ name_hash(qr_field_name(field)))};
}

static json_t *take(json_t *v)
{
    if (!v)
        abort(); /* out of memory: jansson fails on nothing else here */
    return v;
}

/* Index of string s in the array list, or the array's size. */
static size_t index_of(const json_t *list, const char *s)
{
    size_t i, n = json_array_size(list);
    for (i = 0; s && i < n; i++) {
        const char *c = json_string_value(json_array_get(list, i));
        if (c && strcmp(c, s) == 0)
            break;
    }
    return s ? i : n;
}

/* A random string of list (list not empty). */
static json_t *pick(const json_t *list, rng_t *r)
{
    return json_copy(json_array_get(list, below(r, json_array_size(list))));
}

/* --- rating ------------------------------------------------------------------------------ */

typedef struct grid_s {
    double min, step;
    long levels;  /* steps from min to max */
    int integral; /* min and step are integers: values are JSON integers */
} grid_t;

static grid_t rating_grid(const json_t *field)
{
    grid_t g;
    g.min = qr_field_number(field, "min", 0);
    double max = qr_field_number(field, "max", g.min + 1);
    g.step = qr_field_number(field, "step", 1);
    if (!(g.step > 0))
        g.step = 1;
    double n = floor((max - g.min) / g.step + 0.5);
    g.levels = n > 0 && n < 1e6 ? (long)n : 0;
    g.integral = g.min == floor(g.min) && g.step == floor(g.step) && fabs(g.min) < 1e15;
    return g;
}

/* The value at step k of the grid: rounded to 6 decimals when that stays on
 * the grid (the broker allows 1e-9 of it), for readable values. */
static json_t *grid_value(const grid_t *g, long k)
{
    double v = g->min + (double)k * g->step;
    if (g->integral)
        return take(json_integer((json_int_t)llround(v)));
    double r = round(v * 1e6) / 1e6;
    if (fabs((r - g->min) / g->step - (double)k) <= 1e-10)
        v = r;
    return take(json_real(v));
}

static json_t *rating_noisy(const json_t *field, const json_t *truth, double acc, rng_t *r)
{
    if (!json_is_number(truth))
        return json_deep_copy(truth);
    grid_t g = rating_grid(field);
    double k0 = floor((json_number_value(truth) - g.min) / g.step + 0.5);
    if (unit(r) < acc || g.levels == 0 || k0 < 0 || k0 > (double)g.levels)
        return json_deep_copy(truth);
    /* d steps up or down; the other way when there is no room; fewer steps
     * when neither way has room for d (a scale of one or two steps). */
    long k = (long)k0, d = 1 + (long)below(r, 2), up = g.levels - k, down = k;
    int sign = next(r) & 1 ? 1 : -1;
    if ((sign > 0 ? up : down) < d)
        sign = -sign;
    if ((sign > 0 ? up : down) < d) {
        sign = up >= down ? 1 : -1;
        d = up >= down ? up : down;
    }
    return grid_value(&g, k + sign * d);
}

/* --- multi_choice ------------------------------------------------------------------------ */

/* min and max of a multi_choice field, within 0..n. */
static void multi_bounds(const json_t *field, size_t n, size_t *lo, size_t *hi)
{
    double mn = qr_field_number(field, "min", 0), mx = qr_field_number(field, "max", (double)n);
    *lo = mn > 0 ? (size_t)mn : 0;
    *hi = mx > 0 ? (size_t)mx : 0;
    if (*hi > n)
        *hi = n;
    if (*lo > *hi)
        *lo = *hi;
}

/* The chosen flags as an array in the schema's choice order. */
static json_t *multi_value(const json_t *choices, const char *sel)
{
    json_t *out = take(json_array());
    for (size_t i = 0; i < json_array_size(choices); i++)
        if (sel[i])
            json_array_append(out, json_array_get(choices, i));
    return out;
}

/* Drops or adds flags at random until between lo and hi are set. */
static void clamp_count(char *sel, size_t n, size_t lo, size_t hi, rng_t *r)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += sel[i] != 0;
    while (count > hi || count < lo) {
        int want = count < lo; /* flip an unset one on, else a set one off */
        size_t k = below(r, want ? n - count : count);
        for (size_t i = 0; i < n; i++) {
            if ((sel[i] != 0) != want && k-- == 0) {
                sel[i] = (char)want;
                break;
            }
        }
        count += want ? 1 : (size_t)-1;
    }
}

static json_t *multi_truth(const json_t *field, rng_t *r)
{
    const json_t *choices = qr_field_choices(field);
    size_t n = json_array_size(choices), lo, hi;
    multi_bounds(field, n, &lo, &hi);
    char *sel = qr_xcalloc(n ? n : 1, 1);
    size_t want = lo + below(r, hi - lo + 1);
    clamp_count(sel, n, want, want, r);
    json_t *v = multi_value(choices, sel);
    free(sel);
    return v;
}

static json_t *multi_noisy(const json_t *field, const json_t *truth, double acc, rng_t *r)
{
    const json_t *choices = qr_field_choices(field);
    size_t n = json_array_size(choices), lo, hi, i;
    json_t *v;
    if (!json_is_array(truth) || acc >= 1)
        return json_deep_copy(truth);
    json_array_foreach(truth, i, v)
    {
        if (index_of(choices, json_string_value(v)) == n)
            return json_deep_copy(truth);
    }
    multi_bounds(field, n, &lo, &hi);
    char *sel = qr_xcalloc(n ? n : 1, 1);
    json_array_foreach(truth, i, v)
    {
        sel[index_of(choices, json_string_value(v))] = 1;
    }
    for (i = 0; i < n; i++)
        if (unit(r) < (1 - acc) / 2)
            sel[i] = !sel[i];
    clamp_count(sel, n, lo, hi, r);
    v = multi_value(choices, sel);
    free(sel);
    return v;
}

/* --- spans ------------------------------------------------------------------------------- */

typedef struct span_s {
    long start, end;   /* [start, end) in code points */
    const char *label; /* borrowed */
} span_t;

/* The text a spans field is over: data[over] when a string, else NULL. */
static const char *over_text(const json_t *field, const json_t *data)
{
    const char *over = json_string_value(json_object_get(field, "over"));
    return over ? json_string_value(json_object_get(data, over)) : NULL;
}

static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The whitespace-separated words of text as [start, end) in code points;
 * returns their number (at most max). */
static size_t words(const char *text, span_t *w, size_t max)
{
    size_t n = 0;
    long cp = 0, start = -1;
    for (const char *p = text;; p++) {
        int end = *p == '\0';
        if (end || is_space((unsigned char)*p)) {
            if (start >= 0 && n < max)
                w[n++] = (span_t){start, cp, NULL};
            start = -1;
        } else if (start < 0) {
            start = cp;
        }
        if (end)
            break;
        cp += ((unsigned char)*p & 0xC0) != 0x80;
    }
    return n;
}

static json_t *span_json(const span_t *s)
{
    return take(json_pack("{s:I, s:I, s:s}", "start", (json_int_t)s->start, "end",
                          (json_int_t)s->end, "label", s->label));
}

static json_t *spans_truth(const json_t *field, const json_t *data, rng_t *r)
{
    const json_t *labels = qr_field_choices(field);
    const char *text = over_text(field, data);
    json_t *out = take(json_array());
    if (!text || json_array_size(labels) == 0)
        return out;
    size_t len = strlen(text) + 1;
    span_t *w = qr_xcalloc(len, sizeof *w);
    size_t nw = words(text, w, len);
    if (nw > 0) {
        /* k distinct words, in order; a span covers its word and, when that
         * one is not taken, the next word too. */
        size_t k = 1 + below(r, nw < TRUTH_MAX_ITEMS ? nw : TRUTH_MAX_ITEMS);
        char *taken = qr_xcalloc(nw, 1);
        for (size_t got = 0; got < k;) {
            size_t i = below(r, nw);
            got += !taken[i];
            taken[i] = 1;
        }
        for (size_t i = 0; i < nw; i++) {
            if (!taken[i])
                continue;
            span_t s = {
                w[i].start, w[i].end,
                json_string_value(json_array_get(labels, below(r, json_array_size(labels))))};
            if (i + 1 < nw && !taken[i + 1] && (next(r) & 1))
                s.end = w[i + 1].end;
            json_array_append_new(out, span_json(&s));
        }
        free(taken);
    }
    free(w);
    return out;
}

/* Reads a span object; 0 when it is not one this file can move. */
static int span_of(const json_t *v, span_t *s)
{
    json_t *a = json_object_get(v, "start"), *b = json_object_get(v, "end");
    s->label = json_string_value(json_object_get(v, "label"));
    if (!json_is_integer(a) || !json_is_integer(b) || !s->label)
        return 0;
    s->start = (long)json_integer_value(a);
    s->end = (long)json_integer_value(b);
    return 1;
}

static int same_span(const span_t *a, const span_t *b)
{
    return a->start == b->start && a->end == b->end && strcmp(a->label, b->label) == 0;
}

static int intersect(const span_t *a, const span_t *b)
{
    return a->start < b->end && b->start < a->end;
}

/* Whether s may join the spans in placed[0..n) and the truth spans still
 * to come (rest[0..nrest)): inside the text, no duplicate, and no overlap
 * when the field forbids it. */
static int span_fits(const span_t *s, long len, int overlap, const span_t *placed, size_t n,
                     const span_t *rest, size_t nrest)
{
    if (s->start < 0 || s->end > len || s->start >= s->end)
        return 0;
    for (size_t i = 0; i < n + nrest; i++) {
        const span_t *o = i < n ? &placed[i] : &rest[i - n];
        if (same_span(s, o) || (!overlap && intersect(s, o)))
            return 0;
    }
    return 1;
}

static int span_cmp(const void *x, const void *y)
{
    const span_t *a = x, *b = y;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->label, b->label);
}

static json_t *spans_noisy(const json_t *field, const json_t *truth, const json_t *data, double acc,
                           rng_t *r)
{
    const json_t *labels = qr_field_choices(field);
    const char *text = over_text(field, data);
    size_t n = json_array_size(truth), i;
    json_t *v;
    if (!json_is_array(truth) || !text || acc >= 1)
        return json_deep_copy(truth);
    span_t *in = qr_xcalloc(n + 1, sizeof *in);
    json_array_foreach(truth, i, v)
    {
        if (!span_of(v, &in[i])) {
            free(in);
            return json_deep_copy(truth);
        }
    }
    long len = (long)qr_utf8_length(text);
    int overlap = !json_is_false(json_object_get(field, "overlap"));
    span_t *out = qr_xcalloc(n + 1, sizeof *out);
    size_t m = 0;
    for (i = 0; i < n; i++) {
        span_t s = in[i];
        if (unit(r) >= acc) {
            int shift = next(r) & 1;
            long d = 1 + (long)below(r, 3);
            int placed = 0;
            for (int turn = 0; shift && turn < 2 && !placed; turn++, d = -d) {
                span_t t = {s.start + d, s.end + d, s.label};
                if (span_fits(&t, len, overlap, out, m, in + i + 1, n - i - 1)) {
                    s = t;
                    placed = 1;
                }
            }
            if (!placed)
                continue; /* dropped */
        }
        out[m++] = s;
    }
    if (len > 0 && json_array_size(labels) > 0 && unit(r) < (1 - acc) / 2) {
        for (int t = 0; t < EXTRA_SPAN_TRIES; t++) {
            span_t s;
            s.start = (long)below(r, (size_t)len);
            long room = len - s.start < 8 ? len - s.start : 8;
            s.end = s.start + 1 + (long)below(r, (size_t)room);
            s.label = json_string_value(json_array_get(labels, below(r, json_array_size(labels))));
            if (span_fits(&s, len, overlap, out, m, NULL, 0)) {
                out[m++] = s;
                break;
            }
        }
    }
    qsort(out, m, sizeof *out, span_cmp);
    json_t *res = take(json_array());
    for (i = 0; i < m; i++) {
        /* A span kept as it was is the truth's own object (with its "text"). */
        json_t *same = NULL;
        for (size_t j = 0; j < n && !same; j++)
            if (same_span(&out[i], &in[j]))
                same = json_array_get(truth, j);
        json_array_append_new(res, same ? json_deep_copy(same) : span_json(&out[i]));
    }
    free(in);
    free(out);
    return res;
}

/* --- boxes ------------------------------------------------------------------------------- */

static json_t *boxes_truth(const json_t *field, rng_t *r)
{
    const json_t *labels = qr_field_choices(field);
    json_t *out = take(json_array());
    if (json_array_size(labels) == 0)
        return out;
    size_t k = 1 + below(r, TRUTH_MAX_ITEMS);
    for (size_t i = 0; i < k; i++) {
        long w = 5 + (long)below(r, 36), h = 5 + (long)below(r, 36);
        long x = (long)below(r, (size_t)(101 - w)), y = (long)below(r, (size_t)(101 - h));
        json_array_append_new(out,
                              take(json_pack("{s:I, s:I, s:I, s:I, s:o}", "x", (json_int_t)x, "y",
                                             (json_int_t)y, "width", (json_int_t)w, "height",
                                             (json_int_t)h, "label", pick(labels, r))));
    }
    return out;
}

/* A coordinate moved by up to j, in hundredths of a percent point. */
static long jitter(double v, double j, rng_t *r)
{
    return llround((v + (2 * unit(r) - 1) * j) * 100);
}

static json_t *boxes_noisy(const json_t *truth, double acc, rng_t *r)
{
    static const char *const keys[] = {"x", "y", "width", "height"};
    size_t i;
    json_t *b;
    if (!json_is_array(truth) || acc >= 1)
        return json_deep_copy(truth);
    json_array_foreach(truth, i, b)
    {
        for (int k = 0; k < 4; k++)
            if (!json_is_number(json_object_get(b, keys[k])))
                return json_deep_copy(truth);
    }
    double j = (1 - acc) * 10;
    json_t *out = take(json_array());
    json_array_foreach(truth, i, b)
    {
        long c[4];
        for (int k = 0; k < 4; k++)
            c[k] = jitter(json_number_value(json_object_get(b, keys[k])), j, r);
        /* width and height in 0.01..100, then the corner so the box fits. */
        for (int k = 2; k < 4; k++)
            c[k] = c[k] < 1 ? 1 : c[k] > 10000 ? 10000 : c[k];
        for (int k = 0; k < 2; k++)
            c[k] = c[k] < 0 ? 0 : c[k] > 10000 - c[k + 2] ? 10000 - c[k + 2] : c[k];
        json_t *nb = take(json_deep_copy(b));
        for (int k = 0; k < 4; k++)
            json_object_set_new(nb, keys[k], take(json_real((double)c[k] / 100)));
        json_array_append_new(out, nb);
    }
    return out;
}

/* --- text -------------------------------------------------------------------------------- */

static const char *const text_words[] = {"ok",    "blurry", "cat",     "unclear", "needs",
                                         "check", "review", "dark",    "noise",   "fine",
                                         "late",  "fast",   "missing", "label",   "sure"};

static size_t max_length(const json_t *field)
{
    double m = qr_field_number(field, "max_length", 1000);
    return m >= 1 ? (size_t)m : 1;
}

static json_t *text_truth(const json_t *field, rng_t *r)
{
    size_t words_n = sizeof text_words / sizeof text_words[0], limit = max_length(field);
    qr_buf_t b;
    qr_buf_init(&b);
    size_t k = 1 + below(r, 3);
    for (size_t i = 0; i < k; i++)
        qr_buf_appendf(&b, "%s%s", i ? " " : "", text_words[below(r, words_n)]);
    if (b.len > limit)
        b.len = limit; /* ASCII: bytes are code points */
    json_t *v = take(json_stringn(b.data, b.len));
    qr_buf_free(&b);
    return v;
}

/* Byte offsets of the code points of s (n of them), with offs[n] = strlen. */
static size_t code_points(const char *s, size_t *offs)
{
    size_t n = 0, i;
    for (i = 0; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            offs[n++] = i;
    offs[n] = i;
    return n;
}

/* s with one typo, within limit code points (s has at most limit). */
static json_t *typo(const char *s, size_t limit, rng_t *r)
{
    size_t len = strlen(s);
    size_t *offs = qr_xcalloc(len + 1, sizeof *offs);
    size_t n = code_points(s, offs);
    char letter = (char)('a' + below(r, 26));
    int kind = (int)below(r, 4); /* replace, drop, add, swap */
    if (n == 0)
        kind = 2;
    if (kind == 2 && n >= limit)
        kind = 0;
    size_t at = n ? below(r, n) : 0;
    if (kind == 3) {
        /* Swap two neighbours that differ; none: replace instead. */
        size_t i;
        for (i = 0; i + 1 < n; i++) {
            size_t p = (at + i) % (n - 1);
            if (offs[p + 1] - offs[p] != offs[p + 2] - offs[p + 1] ||
                memcmp(s + offs[p], s + offs[p + 1], offs[p + 1] - offs[p]) != 0) {
                at = p;
                break;
            }
        }
        if (i + 1 >= n)
            kind = 0;
    }
    if (kind == 0 && offs[at + 1] - offs[at] == 1 && s[offs[at]] == letter)
        letter = letter == 'z' ? 'a' : (char)(letter + 1);
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_append(&b, s, offs[at]);
    if (kind == 0) {
        qr_buf_append(&b, &letter, 1);
        qr_buf_appends(&b, s + offs[at + 1]);
    } else if (kind == 1) {
        qr_buf_appends(&b, s + offs[at + 1]);
    } else if (kind == 2) {
        qr_buf_append(&b, &letter, 1);
        qr_buf_appends(&b, s + offs[at]);
    } else {
        qr_buf_append(&b, s + offs[at + 1], offs[at + 2] - offs[at + 1]);
        qr_buf_append(&b, s + offs[at], offs[at + 1] - offs[at]);
        qr_buf_appends(&b, s + offs[at + 2]);
    }
    json_t *v = take(json_stringn(b.data ? b.data : "", b.len));
    qr_buf_free(&b);
    free(offs);
    return v;
}

static json_t *text_noisy(const json_t *field, const json_t *truth, double acc, rng_t *r)
{
    const char *s = json_string_value(truth);
    size_t limit = max_length(field);
    if (!s || unit(r) < acc || qr_utf8_length(s) > limit)
        return json_deep_copy(truth);
    return typo(s, limit, r);
}

/* --- choice ------------------------------------------------------------------------------ */

static json_t *choice_noisy(const json_t *field, const json_t *truth, double acc, rng_t *r)
{
    const json_t *choices = qr_field_choices(field);
    size_t n = json_array_size(choices);
    size_t t = index_of(choices, json_string_value(truth));
    if (n == 0)
        return json_deep_copy(truth);
    if (t == n)
        return pick(choices, r); /* no usable truth: any choice, as for plain projects */
    if (n == 1 || unit(r) < acc)
        return json_deep_copy(truth);
    size_t k = below(r, n - 1);
    return json_copy(json_array_get(choices, k >= t ? k + 1 : k));
}

/* --- the whole ---------------------------------------------------------------------------- */

json_t *qr_sim_truth(const json_t *field, const json_t *data, int64_t task_id)
{
    rng_t r = field_rng(mix64((uint64_t)task_id) ^ 0x7275746855ULL, field);
    const json_t *choices = qr_field_choices(field);
    switch (qr_field_type(field)) {
    case QR_FIELD_CHOICE:
        return json_array_size(choices) ? pick(choices, &r) : take(json_null());
    case QR_FIELD_MULTI_CHOICE:
        return multi_truth(field, &r);
    case QR_FIELD_RATING: {
        grid_t g = rating_grid(field);
        return grid_value(&g, (long)below(&r, (size_t)g.levels + 1));
    }
    case QR_FIELD_SPANS:
        return spans_truth(field, data, &r);
    case QR_FIELD_BOXES:
        return boxes_truth(field, &r);
    case QR_FIELD_TEXT:
        return text_truth(field, &r);
    default:
        return take(json_null());
    }
}

json_t *qr_sim_noisy(const json_t *field, const json_t *truth, const json_t *data, double accuracy,
                     uint64_t seed)
{
    rng_t r = field_rng(seed, field);
    if (!truth)
        return NULL;
    switch (qr_field_type(field)) {
    case QR_FIELD_CHOICE:
        return choice_noisy(field, truth, accuracy, &r);
    case QR_FIELD_MULTI_CHOICE:
        return multi_noisy(field, truth, accuracy, &r);
    case QR_FIELD_RATING:
        return rating_noisy(field, truth, accuracy, &r);
    case QR_FIELD_SPANS:
        return spans_noisy(field, truth, data, accuracy, &r);
    case QR_FIELD_BOXES:
        return boxes_noisy(truth, accuracy, &r);
    case QR_FIELD_TEXT:
        return text_noisy(field, truth, accuracy, &r);
    default:
        return json_deep_copy(truth);
    }
}

json_t *qr_sim_truths(const json_t *schema, const json_t *data, const json_t *given,
                      int64_t task_id)
{
    json_t *out = take(json_object());
    json_t *f;
    size_t i;
    int first_choice = 1;
    json_array_foreach(qr_schema_fields(schema), i, f)
    {
        const char *name = qr_field_name(f);
        json_t *v = json_object_get(given, name);
        if (v)
            v = json_deep_copy(v);
        else if (json_is_string(given) && qr_field_type(f) == QR_FIELD_CHOICE && first_choice)
            v = json_copy((json_t *)given);
        else
            v = qr_sim_truth(f, data, task_id);
        first_choice &= qr_field_type(f) != QR_FIELD_CHOICE;
        json_object_set_new(out, name, take(v));
    }
    return out;
}

json_t *qr_sim_labels(const json_t *schema, const json_t *data, const json_t *truths,
                      double accuracy, uint64_t seed)
{
    json_t *out = take(json_object());
    json_t *f;
    size_t i;
    json_array_foreach(qr_schema_fields(schema), i, f)
    {
        json_t *t = json_object_get(truths, qr_field_name(f));
        if (t)
            json_object_set_new(out, qr_field_name(f),
                                take(qr_sim_noisy(f, t, data, accuracy, seed)));
    }
    return out;
}
