/*
 * test_sim_values.c - the simulated crew's values for label schema fields
 * (worker-agent/sim_values.c): every truth and every noisy value is valid
 * for its field (checked here against the shapes of the issue 15 contract,
 * written out independently of the code under test), accuracy 1 gives the
 * truth exactly, the same seed gives the same value, and the measured
 * accuracy of each type follows the accuracy asked for.
 */
#include "sim_values.h"
#include "testlib.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Tasks per measurement. */
#define N_TASKS 3000

/* All six types; spans without overlaps; a multi_choice with a small max. */
static const char *const schema_text =
    "{\"fields\": ["
    "{\"name\": \"sentiment\", \"type\": \"choice\", \"choices\": [\"pos\", \"neg\", \"neu\"]},"
    "{\"name\": \"tags\", \"type\": \"multi_choice\", \"choices\": [\"a\", \"b\", \"c\", \"d\", "
    "\"e\"], \"min\": 1, \"max\": 2},"
    "{\"name\": \"score\", \"type\": \"rating\", \"min\": 1, \"max\": 5, \"step\": 1},"
    "{\"name\": \"entities\", \"type\": \"spans\", \"over\": \"text\", \"labels\": [\"ORG\", "
    "\"PER\"], \"overlap\": false},"
    "{\"name\": \"objects\", \"type\": \"boxes\", \"over\": \"image\", \"labels\": [\"car\", "
    "\"tree\"]},"
    "{\"name\": \"note\", \"type\": \"text\", \"max_length\": 12}"
    "]}";

/* Texts the spans are over: ASCII, accents and CJK (code points are not
 * bytes), one word, blanks only. */
static const char *const texts[] = {
    "Acme Corp hired Jane Doe in Paris last year",
    "Zürich café: naïve Müller met Ærø’s mayor",
    "東京 の 会社 が 山田 さん を 雇った",
    "word",
    "   ",
    "two  spaces\tand\nlines here and there again",
};

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (!v)
        fail_msg("bad JSON in the test: %s", err.text);
    return v;
}

static json_t *field_named(json_t *schema, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            return f;
    }
    fail_msg("no field %s", name);
    return NULL;
}

static json_t *task_data(size_t k)
{
    return json_pack("{s:s, s:s}", "text", texts[k % (sizeof texts / sizeof texts[0])], "image",
                     "https://img.example/1.png");
}

static size_t cps(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int in_list(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (s && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

static double num(json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);
    return v ? json_number_value(v) : def;
}

/*
 * Whether value is valid for field over data, after the contract of issue
 * 15 (docs: "Values"). Says why on failure.
 */
static int valid(json_t *field, json_t *value, json_t *data, char *why, size_t size)
{
    const char *type = json_string_value(json_object_get(field, "type"));
    why[0] = '\0';
    if (!strcmp(type, "choice")) {
        if (!json_is_string(value) ||
            !in_list(json_object_get(field, "choices"), json_string_value(value)))
            return snprintf(why, size, "not a choice"), 0;
    } else if (!strcmp(type, "multi_choice")) {
        json_t *choices = json_object_get(field, "choices");
        size_t i, j, n = json_array_size(value);
        json_t *v;
        if (!json_is_array(value))
            return snprintf(why, size, "not an array"), 0;
        json_array_foreach(value, i, v)
        {
            if (!json_is_string(v) || !in_list(choices, json_string_value(v)))
                return snprintf(why, size, "element not a choice"), 0;
            for (j = 0; j < i; j++)
                if (json_equal(v, json_array_get(value, j)))
                    return snprintf(why, size, "duplicate"), 0;
        }
        if (n < num(field, "min", 0) || n > num(field, "max", json_array_size(choices)))
            return snprintf(why, size, "count %zu outside min..max", n), 0;
    } else if (!strcmp(type, "rating")) {
        double mn = num(field, "min", 0), mx = num(field, "max", 1), st = num(field, "step", 1);
        if (!json_is_number(value))
            return snprintf(why, size, "not a number"), 0;
        double v = json_number_value(value), k = (v - mn) / st;
        if (v < mn || v > mx || fabs(k - round(k)) > 1e-9)
            return snprintf(why, size, "%g off the scale or grid", v), 0;
        if (mn == floor(mn) && st == floor(st) && !json_is_integer(value))
            return snprintf(why, size, "not an integer on an integer scale"), 0;
    } else if (!strcmp(type, "spans")) {
        const char *text = json_string_value(
            json_object_get(data, json_string_value(json_object_get(field, "over"))));
        long len = text ? (long)cps(text) : -1;
        int overlap = !json_is_false(json_object_get(field, "overlap"));
        size_t i, j;
        json_t *s;
        if (!json_is_array(value))
            return snprintf(why, size, "not an array"), 0;
        json_array_foreach(value, i, s)
        {
            json_t *a = json_object_get(s, "start"), *b = json_object_get(s, "end");
            const char *label = json_string_value(json_object_get(s, "label"));
            if (!json_is_integer(a) || !json_is_integer(b) || !label)
                return snprintf(why, size, "span %zu malformed", i), 0;
            long st = (long)json_integer_value(a), en = (long)json_integer_value(b);
            if (st < 0 || en <= st || en > len)
                return snprintf(why, size, "span [%ld, %ld) outside 0..%ld", st, en, len), 0;
            if (!in_list(json_object_get(field, "labels"), label))
                return snprintf(why, size, "span label %s", label), 0;
            for (j = 0; j < i; j++) {
                json_t *o = json_array_get(value, j);
                long os = (long)json_integer_value(json_object_get(o, "start"));
                long oe = (long)json_integer_value(json_object_get(o, "end"));
                if (os == st && oe == en &&
                    !strcmp(label, json_string_value(json_object_get(o, "label"))))
                    return snprintf(why, size, "duplicate span"), 0;
                if (!overlap && st < oe && os < en)
                    return snprintf(why, size, "spans intersect"), 0;
            }
        }
    } else if (!strcmp(type, "boxes")) {
        size_t i;
        json_t *b;
        if (!json_is_array(value))
            return snprintf(why, size, "not an array"), 0;
        json_array_foreach(value, i, b)
        {
            double x = num(b, "x", -1), y = num(b, "y", -1), w = num(b, "width", -1),
                   h = num(b, "height", -1);
            if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 100 + 1e-9 || y + h > 100 + 1e-9)
                return snprintf(why, size, "box %g %g %g %g outside", x, y, w, h), 0;
            if (!in_list(json_object_get(field, "labels"),
                         json_string_value(json_object_get(b, "label"))))
                return snprintf(why, size, "box label"), 0;
        }
    } else if (!strcmp(type, "text")) {
        if (!json_is_string(value))
            return snprintf(why, size, "not a string"), 0;
        if (cps(json_string_value(value)) > num(field, "max_length", 1000))
            return snprintf(why, size, "too long"), 0;
    } else {
        return snprintf(why, size, "unknown type"), 0;
    }
    return 1;
}

/* Asserts every field of labels is valid. */
static void assert_all_valid(json_t *schema, json_t *labels, json_t *data)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *v = json_object_get(labels, name);
        char why[200];
        if (!v || !valid(f, v, data, why, sizeof why)) {
            char *text = json_dumps(labels, JSON_COMPACT);
            char *d = json_dumps(data, JSON_COMPACT);
            fail_msg("field %s invalid (%s) in %s over %s", name, v ? why : "missing", text, d);
        }
    }
}

static void test_truths_and_values_valid(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    const double accs[] = {0.0, 0.3, 0.7, 0.95, 1.0};
    for (size_t k = 0; k < N_TASKS; k++) {
        json_t *data = task_data(k);
        json_t *truths = qr_sim_truths(schema, data, NULL, (int64_t)k + 1);
        assert_all_valid(schema, truths, data);
        for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++) {
            json_t *labels = qr_sim_labels(schema, data, truths, accs[a], k * 31 + a);
            assert_all_valid(schema, labels, data);
            json_decref(labels);
        }
        json_decref(truths);
        json_decref(data);
    }
    json_decref(schema);
}

/* Fraction of tasks where field's value (NULL: every field's) equals the
 * truth, at accuracy acc. */
static double exact_rate(json_t *schema, const char *field, double acc)
{
    size_t same = 0;
    for (size_t k = 0; k < N_TASKS; k++) {
        json_t *data = task_data(k);
        json_t *truths = qr_sim_truths(schema, data, NULL, (int64_t)k);
        json_t *labels = qr_sim_labels(schema, data, truths, acc, 1000 + k);
        same += field ? json_equal(json_object_get(truths, field), json_object_get(labels, field))
                      : json_equal(truths, labels);
        json_decref(labels);
        json_decref(truths);
        json_decref(data);
    }
    return (double)same / N_TASKS;
}

static void test_exact_at_accuracy_one(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    assert_true(exact_rate(schema, NULL, 1.0) == 1.0);
    /* A truth the data gives, spans with their "text" and boxes with
     * decimals, is given back as it is. */
    json_t *data = load("{\"text\": \"Acme hired Jane\", \"image\": \"x.png\"}");
    json_t *given =
        load("{\"entities\": [{\"start\": 11, \"end\": 15, \"label\": \"PER\", "
             "\"text\": \"Jane\"}, {\"start\": 0, \"end\": 4, \"label\": \"ORG\"}], "
             "\"objects\": [{\"x\": 10.5, \"y\": 20.25, \"width\": 30, \"height\": "
             "40, \"label\": \"car\"}], \"tags\": [\"e\", \"a\"], \"note\": \"ça va\"}");
    json_t *truths = qr_sim_truths(schema, data, given, 3);
    for (const char *const *n = (const char *const[]){"entities", "objects", "tags", "note", NULL};
         *n; n++)
        assert_true(json_equal(json_object_get(truths, *n), json_object_get(given, *n)));
    json_t *labels = qr_sim_labels(schema, data, truths, 1.0, 99);
    assert_true(json_equal(truths, labels));
    json_decref(labels);
    json_decref(truths);
    json_decref(given);
    json_decref(data);
    json_decref(schema);
}

static void test_deterministic(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    int differ = 0, truth_differ = 0;
    for (size_t k = 0; k < 200; k++) {
        json_t *data = task_data(k);
        json_t *t1 = qr_sim_truths(schema, data, NULL, (int64_t)k);
        json_t *t2 = qr_sim_truths(schema, data, NULL, (int64_t)k);
        json_t *t3 = qr_sim_truths(schema, data, NULL, (int64_t)k + 1000);
        assert_true(json_equal(t1, t2)); /* from (task, field) alone */
        truth_differ += !json_equal(t1, t3);
        json_t *a = qr_sim_labels(schema, data, t1, 0.6, 42);
        json_t *b = qr_sim_labels(schema, data, t1, 0.6, 42);
        json_t *c = qr_sim_labels(schema, data, t1, 0.6, 43);
        assert_true(json_equal(a, b));
        differ += !json_equal(a, c);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        json_decref(t1);
        json_decref(t2);
        json_decref(t3);
        json_decref(data);
    }
    assert_true(differ > 150);
    assert_true(truth_differ > 150);
    json_decref(schema);
}

static void test_measured_accuracy(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    /* choice, rating and text: the value is the truth with probability acc
     * (3000 draws: 3 standard deviations are under 0.03). */
    const double accs[] = {0.2, 0.5, 0.8, 0.95};
    for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++) {
        for (const char *const *f = (const char *const[]){"sentiment", "score", "note", NULL}; *f;
             f++) {
            double r = exact_rate(schema, *f, accs[a]);
            if (fabs(r - accs[a]) > 0.03)
                fail_msg("%s at accuracy %.2f: %.3f exact", *f, accs[a], r);
        }
    }
    /* The more accurate crew is exact more often (boxes are never exact
     * below 1: test_boxes_jitter). */
    const char *const all[] = {"sentiment", "tags", "score", "entities", "note"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_true(exact_rate(schema, all[i], 0.9) > exact_rate(schema, all[i], 0.5));
    json_decref(schema);
}

/* multi_choice without bounds: each choice flipped with probability
 * (1-acc)/2. */
static void test_multi_choice_flips(void **state)
{
    (void)state;
    json_t *schema = load("{\"fields\": [{\"name\": \"t\", \"type\": \"multi_choice\", "
                          "\"choices\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]}]}");
    json_t *field = field_named(schema, "t");
    json_t *choices = json_object_get(field, "choices");
    const double accs[] = {0.0, 0.5, 0.9};
    for (size_t a = 0; a < 3; a++) {
        size_t flips = 0, total = 0;
        for (size_t k = 0; k < N_TASKS; k++) {
            json_t *truth = qr_sim_truth(field, NULL, (int64_t)k);
            json_t *v = qr_sim_noisy(field, truth, NULL, accs[a], k);
            size_t i;
            json_t *c;
            json_array_foreach(choices, i, c)
            {
                flips += in_list(truth, json_string_value(c)) != in_list(v, json_string_value(c));
                total++;
            }
            json_decref(v);
            json_decref(truth);
        }
        double rate = (double)flips / (double)total, want = (1 - accs[a]) / 2;
        if (fabs(rate - want) > 0.02)
            fail_msg("multi_choice at %.1f: flip rate %.3f, want %.3f", accs[a], rate, want);
    }
    json_decref(schema);
}

/* Spans: a truth span survives exactly with probability acc; the rest are
 * moved (by 1-3 code points) or dropped; extras are occasional. */
static void test_spans_kept_moved_dropped(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    json_t *field = field_named(schema, "entities");
    const double accs[] = {0.3, 0.8};
    for (size_t a = 0; a < 2; a++) {
        size_t kept = 0, total = 0, moved = 0, extra = 0;
        for (size_t k = 0; k < N_TASKS; k++) {
            json_t *data = task_data(k);
            json_t *truth = qr_sim_truth(field, data, (int64_t)k);
            json_t *v = qr_sim_noisy(field, truth, data, accs[a], 5 * k);
            size_t i, j;
            json_t *s, *o;
            json_array_foreach(truth, i, s)
            {
                total++;
                int found = 0;
                json_array_foreach(v, j, o) found |= json_equal(s, o);
                kept += found;
                json_array_foreach(v, j, o)
                {
                    long d = (long)(json_integer_value(json_object_get(o, "start")) -
                                    json_integer_value(json_object_get(s, "start")));
                    long e = (long)(json_integer_value(json_object_get(o, "end")) -
                                    json_integer_value(json_object_get(s, "end")));
                    moved += !found && d == e && d != 0 && labs(d) <= 3 &&
                             json_equal(json_object_get(o, "label"), json_object_get(s, "label"));
                }
            }
            extra += json_array_size(v) > json_array_size(truth);
            json_decref(v);
            json_decref(truth);
            json_decref(data);
        }
        double rate = (double)kept / (double)total;
        if (fabs(rate - accs[a]) > 0.03)
            fail_msg("spans at %.1f: %.3f kept exactly", accs[a], rate);
        assert_true(moved > total * (1 - accs[a]) / 6); /* some were moved... */
        assert_true(extra > 0);                         /* ...and some added */
    }
    json_decref(schema);
}

/* Boxes: every coordinate within (1-acc)*10 of the truth (hundredths), and
 * spread over that range. */
static void test_boxes_jitter(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    json_t *field = field_named(schema, "objects");
    const char *const keys[] = {"x", "y", "width", "height"};
    const double accs[] = {0.5, 0.9};
    for (size_t a = 0; a < 2; a++) {
        double j = (1 - accs[a]) * 10, sum = 0, most = 0;
        size_t n = 0;
        for (size_t k = 0; k < N_TASKS; k++) {
            json_t *truth = qr_sim_truth(field, NULL, (int64_t)k);
            json_t *v = qr_sim_noisy(field, truth, NULL, accs[a], k);
            assert_int_equal(json_array_size(v), json_array_size(truth));
            for (size_t i = 0; i < json_array_size(v); i++) {
                for (int c = 0; c < 4; c++) {
                    double d = fabs(num(json_array_get(v, i), keys[c], 0) -
                                    num(json_array_get(truth, i), keys[c], 0));
                    sum += d;
                    most = d > most ? d : most;
                    n++;
                }
            }
            json_decref(v);
            json_decref(truth);
        }
        assert_true(most <= j + 0.0051);
        double mean = sum / (double)n;
        if (mean < j * 0.4 || mean > j * 0.6)
            fail_msg("boxes at %.1f: mean move %.3f for a jitter of %.1f", accs[a], mean, j);
    }
    json_decref(schema);
}

/* Ratings: a decimal scale gives reals on its grid, off by at most two
 * steps; a scale of one step still moves. */
static void test_rating_scales(void **state)
{
    (void)state;
    json_t *schema = load("{\"fields\": [{\"name\": \"r\", \"type\": \"rating\", \"min\": 0.5, "
                          "\"max\": 2.5, \"step\": 0.1}, {\"name\": \"b\", \"type\": "
                          "\"rating\", \"min\": 0, \"max\": 1, \"step\": 1}]}");
    json_t *r = field_named(schema, "r"), *b = field_named(schema, "b");
    char why[200];
    int seen_real = 0;
    for (size_t k = 0; k < N_TASKS; k++) {
        json_t *t = qr_sim_truth(r, NULL, (int64_t)k);
        json_t *v = qr_sim_noisy(r, t, NULL, 0.0, k);
        if (!valid(r, t, NULL, why, sizeof why) || !valid(r, v, NULL, why, sizeof why))
            fail_msg("decimal rating: %s", why);
        seen_real |= json_is_real(v);
        double steps = fabs(json_number_value(v) - json_number_value(t)) / 0.1;
        assert_true(steps > 0.5 && steps < 2.5);
        json_decref(v);
        json_decref(t);
        t = qr_sim_truth(b, NULL, (int64_t)k);
        v = qr_sim_noisy(b, t, NULL, 0.0, k);
        assert_true(json_is_integer(v));
        assert_false(json_equal(t, v));
        json_decref(v);
        json_decref(t);
    }
    assert_true(seen_real);
    json_decref(schema);
}

/* Text: typos stay within max_length and valid UTF-8, on non-ASCII truths
 * and on the empty string too. */
static void test_text_typos(void **state)
{
    (void)state;
    json_t *schema = load("{\"fields\": [{\"name\": \"n\", \"type\": \"text\", \"max_length\": "
                          "5}, {\"name\": \"one\", \"type\": \"text\", \"max_length\": 1}]}");
    json_t *n = field_named(schema, "n"), *one = field_named(schema, "one");
    const char *const truths[] = {"", "x", "aa", "çàé", "東京都市", "abcde", "ééééé"};
    char why[200];
    for (size_t i = 0; i < sizeof truths / sizeof truths[0]; i++) {
        json_t *t = json_string(truths[i]);
        for (uint64_t seed = 0; seed < 300; seed++) {
            json_t *v = qr_sim_noisy(n, t, NULL, 0.0, seed);
            if (!valid(n, v, NULL, why, sizeof why))
                fail_msg("typo of '%s': %s", truths[i], why);
            assert_false(json_equal(t, v));
            json_decref(v);
        }
        json_decref(t);
    }
    for (uint64_t k = 0; k < 200; k++) {
        json_t *t = qr_sim_truth(one, NULL, (int64_t)k);
        assert_int_equal(strlen(json_string_value(t)), 1);
        json_t *v = qr_sim_noisy(one, t, NULL, 0.0, k);
        assert_true(valid(one, v, NULL, why, sizeof why));
        json_decref(v);
        json_decref(t);
    }
    json_decref(schema);
}

/* What cannot be worked with passes through for the broker to judge; a
 * choice truth outside the list gives some choice (as plain projects do);
 * spans over missing data have the empty truth; a string truth is the first
 * choice field's. */
static void test_edges(void **state)
{
    (void)state;
    json_t *schema = load(schema_text);
    json_t *data = load("{\"image\": \"x.png\"}"); /* no "text" */
    json_t *neg = json_string("neg");
    json_t *truths = qr_sim_truths(schema, data, neg, 1);
    json_decref(neg);
    assert_string_equal(json_string_value(json_object_get(truths, "sentiment")), "neg");
    assert_int_equal(json_array_size(json_object_get(truths, "entities")), 0);
    json_decref(truths);
    json_t *bad = load("{\"tags\": \"a\", \"score\": \"high\", \"entities\": [{\"start\": \"x\"}], "
                       "\"objects\": {}, \"note\": 5, \"sentiment\": \"joy\"}");
    truths = qr_sim_truths(schema, data, bad, 1);
    json_t *labels = qr_sim_labels(schema, data, truths, 0.0, 7);
    const char *const kept[] = {"tags", "score", "entities", "objects", "note"};
    for (size_t i = 0; i < 5; i++)
        assert_true(json_equal(json_object_get(labels, kept[i]), json_object_get(bad, kept[i])));
    assert_true(in_list(json_object_get(field_named(schema, "sentiment"), "choices"),
                        json_string_value(json_object_get(labels, "sentiment"))));
    json_decref(labels);
    json_decref(truths);
    json_decref(bad);
    json_decref(data);
    /* multi_choice with min = max = all: always every choice. */
    json_t *all = load("{\"name\": \"m\", \"type\": \"multi_choice\", \"choices\": [\"a\", "
                       "\"b\"], \"min\": 2, \"max\": 2}");
    for (uint64_t k = 0; k < 50; k++) {
        json_t *t = qr_sim_truth(all, NULL, (int64_t)k);
        json_t *v = qr_sim_noisy(all, t, NULL, 0.0, k);
        assert_int_equal(json_array_size(v), 2);
        json_decref(v);
        json_decref(t);
    }
    json_decref(all);
    json_decref(schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truths_and_values_valid),
        cmocka_unit_test(test_exact_at_accuracy_one),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_measured_accuracy),
        cmocka_unit_test(test_multi_choice_flips),
        cmocka_unit_test(test_spans_kept_moved_dropped),
        cmocka_unit_test(test_boxes_jitter),
        cmocka_unit_test(test_rating_scales),
        cmocka_unit_test(test_text_typos),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
