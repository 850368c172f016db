/*
 * test_agreement.c - the agreement engine (common/agreement*.c) against the
 * published worked examples, degenerate inputs and properties that must hold
 * whatever the data.
 *
 * Published references: Krippendorff (2011) "Computing Krippendorff's
 * Alpha-Reliability", 4 coders x 12 units with missing values (alpha nominal
 * 0.743, ordinal 0.815, interval 0.849, ratio 0.797); the same data is
 * irrCAC's cac.raw4raters, whose README prints AC1 0.77544 and pa 0.8181818;
 * Wikipedia's Fleiss' kappa example (10 items x 14 raters, P-bar 0.378,
 * kappa 0.210); Wikipedia's Cohen's kappa example (50 items, kappa 0.4).
 * Weighted kappa values are scikit-learn 1.2.1's cohen_kappa_score on the
 * same vectors.
 */
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "agreement_interval.h"
#include "agreement_internal.h"
#include "util.h"

static void add(qr_agreement_t *a, const char *item, const char *ann, const char *label)
{
    assert_int_equal(
        qr_agreement_add(a, item, strlen(item), ann, strlen(ann), label, strlen(label)), 0);
}

static const json_t *metric(const json_t *r, const char *name)
{
    const json_t *m = json_object_get(json_object_get(r, "metrics"), name);
    assert_non_null(m);
    return m;
}

static double value_of(const json_t *r, const char *name)
{
    const json_t *m = metric(r, name);
    assert_string_equal(json_string_value(json_object_get(m, "status")), "defined");
    assert_true(json_is_real(json_object_get(m, "value")));
    return json_real_value(json_object_get(m, "value"));
}

/* Asserts |metric - expected| <= tol. */
static void expect(const json_t *r, const char *name, double expected, double tol)
{
    double v = value_of(r, name);
    if (fabs(v - expected) > tol)
        fail_msg("%s = %.10f, expected %.10f (tolerance %g)", name, v, expected, tol);
}

/* Asserts the metric has the status, a null value and a non-empty reason. */
static void expect_status(const json_t *r, const char *name, const char *status)
{
    const json_t *m = metric(r, name);
    const char *got = json_string_value(json_object_get(m, "status"));
    if (!got || strcmp(got, status) != 0)
        fail_msg("%s: status %s, expected %s", name, got ? got : "(none)", status);
    assert_true(json_is_null(json_object_get(m, "value")));
    const char *why = json_string_value(json_object_get(m, "reason"));
    assert_non_null(why);
    assert_true(strlen(why) > 0);
}

static json_int_t count(const json_t *r, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(r, "counts"), key));
}

/* The report, checked to serialise (a NaN or infinity would make jansson fail). */
static json_t *report(qr_agreement_t *a, int per_item)
{
    json_t *r = qr_agreement_json(a, per_item);
    assert_non_null(r);
    char *s = json_dumps(r, 0);
    assert_non_null(s);
    free(s);
    return r;
}

/* Krippendorff 2011, section C: coders A-D, units 1-12, "." = missing. */
static qr_agreement_t *krippendorff_2011(void)
{
    static const char *const rows[4][12] = {
        {"1", "2", "3", "3", "2", "1", "4", "1", "2", NULL, NULL, NULL},
        {"1", "2", "3", "3", "2", "2", "4", "1", "2", "5", NULL, "3"},
        {NULL, "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", NULL},
        {"1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", NULL},
    };
    static const char *const coders[4] = {"A", "B", "C", "D"};
    qr_agreement_t *a = qr_agreement_new();
    char unit[16];

    for (int c = 0; c < 4; c++) {
        for (int u = 0; u < 12; u++) {
            if (!rows[c][u])
                continue;
            snprintf(unit, sizeof unit, "u%d", u + 1);
            add(a, unit, coders[c], rows[c][u]);
        }
    }
    return a;
}

static void test_krippendorff_2011(void **state)
{
    qr_agreement_t *a = krippendorff_2011();
    json_t *r = report(a, 1);

    expect(r, "krippendorff_alpha_nominal", 0.743, 0.0005);
    expect(r, "krippendorff_alpha_ordinal", 0.815, 0.0005);
    expect(r, "krippendorff_alpha_interval", 0.849, 0.0005);
    expect(r, "krippendorff_alpha_ratio", 0.797, 0.0005);
    expect(r, "gwet_ac1", 0.77544, 0.000005);             /* irrCAC README */
    expect(r, "percent_agreement", 0.8181818, 0.0000001); /* irrCAC pa */
    assert_int_equal(count(r, "items"), 12);
    assert_int_equal(count(r, "annotators"), 4);
    assert_int_equal(count(r, "judgements"), 41);
    assert_int_equal(count(r, "pairable_items"), 11);
    assert_true(json_is_true(json_object_get(r, "labels_numeric")));
    expect_status(r, "cohen_kappa", "not_applicable");
    expect_status(r, "fleiss_kappa", "not_applicable");
    expect_status(r, "davies_fleiss_kappa", "not_applicable");
    /* Six coder pairs all share items; unit 12 has one value: no pair. */
    assert_int_equal(json_array_size(json_object_get(r, "pairwise")), 6);
    const json_t *items = json_object_get(r, "per_item");
    assert_int_equal(json_array_size(items), 12);
    /* Byte order: u1, u10, u11, u12, u2, ...; u12 has a single judgement. */
    const json_t *u12 = json_array_get(items, 3);
    assert_string_equal(json_string_value(json_object_get(u12, "item")), "u12");
    assert_true(json_is_null(json_object_get(u12, "agreement")));
    /* Unit 6 (1, 2, 3, 4): no majority. */
    const json_t *u6 = json_array_get(items, 8);
    assert_string_equal(json_string_value(json_object_get(u6, "item")), "u6");
    assert_true(json_is_null(json_object_get(u6, "majority_label")));
    assert_true(fabs(json_real_value(json_object_get(u6, "agreement"))) < 1e-12);
    json_decref(r);
    qr_agreement_free(a);
}

/* Wikipedia, "Fleiss' kappa", worked example: n_ij for 10 subjects, 5
 * categories, 14 raters each. */
static void test_fleiss_wikipedia(void **state)
{
    static const int n[10][5] = {
        {0, 0, 0, 0, 14}, {0, 2, 6, 4, 2}, {0, 0, 3, 5, 6}, {0, 3, 9, 2, 0}, {2, 2, 8, 1, 1},
        {7, 7, 0, 0, 0},  {3, 2, 6, 3, 0}, {2, 5, 3, 2, 2}, {6, 5, 2, 1, 0}, {0, 2, 2, 3, 7},
    };
    qr_agreement_t *a = qr_agreement_new();
    char item[16], rater[16], label[16];

    for (int i = 0; i < 10; i++) {
        int r = 0;
        for (int j = 0; j < 5; j++) {
            for (int k = 0; k < n[i][j]; k++) {
                snprintf(item, sizeof item, "s%d", i + 1);
                snprintf(rater, sizeof rater, "r%02d", r++);
                snprintf(label, sizeof label, "c%d", j + 1);
                add(a, item, rater, label);
            }
        }
    }
    json_t *r = report(a, 0);
    expect(r, "fleiss_kappa", 0.210, 0.0005);
    expect(r, "percent_agreement", 0.378, 0.0005); /* P-bar */
    expect(r, "fleiss_kappa", 0.2099307, 0.0000005);
    json_decref(r);
    qr_agreement_free(a);
}

/* Two annotators from parallel label arrays; item i is "i<i>". */
static qr_agreement_t *two_raters(const char *const *x, const char *const *y, int n)
{
    qr_agreement_t *a = qr_agreement_new();
    char item[16];
    for (int i = 0; i < n; i++) {
        snprintf(item, sizeof item, "i%d", i);
        if (x[i])
            add(a, item, "A", x[i]);
        if (y[i])
            add(a, item, "B", y[i]);
    }
    return a;
}

/* Wikipedia, "Cohen's kappa": 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes,
 * 15 no/no; po 0.7, pe 0.5, kappa 0.4. */
static void test_cohen_wikipedia(void **state)
{
    const char *x[50], *y[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i < 25 ? "yes" : "no";
        y[i] = i < 20 ? "yes" : i < 25 ? "no" : i < 35 ? "yes" : "no";
    }
    qr_agreement_t *a = two_raters(x, y, 50);
    json_t *r = report(a, 0);
    expect(r, "cohen_kappa", 0.4, 1e-12);
    expect(r, "percent_agreement", 0.7, 1e-12);
    /* Scott: pooled yes 55/100 -> pe 0.505 -> (0.7 - 0.505) / 0.495. */
    expect(r, "scott_pi", 0.195 / 0.495, 1e-12);
    expect_status(r, "cohen_kappa_linear", "not_applicable");
    const json_t *p = json_array_get(json_object_get(r, "pairwise"), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "items")), 50);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(p, "cohen_kappa"), "value")) -
                     0.4) < 1e-12);
    json_decref(r);
    qr_agreement_free(a);
}

/* Weighted kappa: scikit-learn 1.2.1 cohen_kappa_score gives 0.3739130434782608
 * (unweighted), 0.6146788990825687 (linear), 0.7906976744186046 (quadratic). */
static void test_cohen_weighted_sklearn(void **state)
{
    const char *x[] = {"1", "2", "3", "4", "5", "1", "2", "3", "4", "5", "2", "3"};
    const char *y[] = {"1", "3", "3", "5", "4", "2", "2", "1", "4", "5", "2", "4"};
    qr_agreement_t *a = two_raters(x, y, 12);
    json_t *r = report(a, 0);
    expect(r, "cohen_kappa", 0.3739130434782608, 1e-12);
    expect(r, "cohen_kappa_linear", 0.6146788990825687, 1e-12);
    expect(r, "cohen_kappa_quadratic", 0.7906976744186046, 1e-12);
    json_decref(r);
    qr_agreement_free(a);

    /* Weights use ranks, not values: 1, 10, 100 weigh like 1, 2, 3. */
    const char *xs[] = {"1", "10", "100", "1", "10"}, *ys[] = {"10", "10", "1", "1", "100"};
    const char *xr[] = {"1", "2", "3", "1", "2"}, *yr[] = {"2", "2", "1", "1", "3"};
    qr_agreement_t *b = two_raters(xs, ys, 5), *c = two_raters(xr, yr, 5);
    json_t *rb = report(b, 0), *rc = report(c, 0);
    expect(rb, "cohen_kappa_linear", value_of(rc, "cohen_kappa_linear"), 1e-12);
    expect(rb, "cohen_kappa_quadratic", value_of(rc, "cohen_kappa_quadratic"), 1e-12);
    json_decref(rb);
    json_decref(rc);
    qr_agreement_free(b);
    qr_agreement_free(c);
}

static void test_perfect_agreement(void **state)
{
    qr_agreement_t *a = qr_agreement_new();
    static const char *const labels[] = {"cat", "dog", "bird"};
    char item[16];
    for (int i = 0; i < 9; i++) {
        snprintf(item, sizeof item, "i%d", i);
        add(a, item, "x", labels[i % 3]);
        add(a, item, "y", labels[i % 3]);
        add(a, item, "z", labels[i % 3]);
    }
    json_t *r = report(a, 0);
    static const char *const ones[] = {"percent_agreement", "fleiss_kappa", "davies_fleiss_kappa",
                                       "krippendorff_alpha_nominal", "gwet_ac1"};
    for (size_t i = 0; i < sizeof(ones) / sizeof(ones[0]); i++)
        expect(r, ones[i], 1.0, 1e-12);
    const json_t *p;
    size_t i;
    json_array_foreach(json_object_get(r, "pairwise"), i, p)
    {
        assert_true(fabs(json_real_value(json_object_get(p, "percent_agreement")) - 1) < 1e-12);
        assert_true(
            fabs(json_real_value(json_object_get(json_object_get(p, "cohen_kappa"), "value")) - 1) <
            1e-12);
    }
    json_array_foreach(json_object_get(r, "per_annotator"), i, p)
    {
        const json_t *m = json_object_get(p, "majority_agreement");
        assert_int_equal(json_integer_value(json_object_get(m, "compared")), 9);
        assert_int_equal(json_integer_value(json_object_get(m, "agree")), 9);
    }
    json_decref(r);
    qr_agreement_free(a);
}

/* Every judgement the same label: chance-corrected coefficients are 0/0. */
static void test_one_label_everywhere(void **state)
{
    const char *x[] = {"7", "7", "7", "7"}, *y[] = {"7", "7", "7", "7"};
    qr_agreement_t *a = two_raters(x, y, 4);
    json_t *r = report(a, 1);
    expect(r, "percent_agreement", 1.0, 0);
    static const char *const undefined[] = {
        "cohen_kappa",
        "cohen_kappa_linear",
        "cohen_kappa_quadratic",
        "scott_pi",
        "fleiss_kappa",
        "davies_fleiss_kappa",
        "gwet_ac1",
        "krippendorff_alpha_nominal",
        "krippendorff_alpha_ordinal",
        "krippendorff_alpha_interval",
        "krippendorff_alpha_ratio",
    };
    for (size_t i = 0; i < sizeof(undefined) / sizeof(undefined[0]); i++)
        expect_status(r, undefined[i], "undefined");
    const json_t *p = json_array_get(json_object_get(r, "pairwise"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "cohen_kappa"), "status")),
        "undefined");
    json_decref(r);
    qr_agreement_free(a);
}

/* Each item labeled once: nothing is pairable. */
static void test_no_pairable_item(void **state)
{
    qr_agreement_t *a = qr_agreement_new();
    add(a, "i1", "x", "a");
    add(a, "i2", "y", "b");
    add(a, "i3", "z", "a");
    json_t *r = report(a, 1);
    assert_int_equal(count(r, "pairable_items"), 0);
    expect_status(r, "percent_agreement", "undefined");
    expect_status(r, "krippendorff_alpha_nominal", "undefined");
    expect_status(r, "gwet_ac1", "undefined");
    expect_status(r, "fleiss_kappa", "not_applicable");
    expect_status(r, "krippendorff_alpha_interval", "not_applicable");
    assert_int_equal(json_array_size(json_object_get(r, "pairwise")), 0);
    const json_t *pa = json_array_get(json_object_get(r, "per_annotator"), 0);
    const json_t *m = json_object_get(pa, "majority_agreement");
    assert_string_equal(json_string_value(json_object_get(m, "status")), "undefined");
    assert_int_equal(json_integer_value(json_object_get(m, "compared")), 0);
    json_decref(r);
    qr_agreement_free(a);

    /* And nothing at all. */
    a = qr_agreement_new();
    r = report(a, 1);
    assert_int_equal(count(r, "judgements"), 0);
    expect_status(r, "percent_agreement", "undefined");
    expect_status(r, "fleiss_kappa", "not_applicable");
    expect_status(r, "davies_fleiss_kappa", "not_applicable");
    expect_status(r, "cohen_kappa", "not_applicable");
    json_decref(r);
    qr_agreement_free(a);
}

/* A always says "x", B varies: po 0.5, pe 0.5 -> kappa 0; Scott -1/3. */
static void test_one_annotator_constant(void **state)
{
    const char *x[] = {"x", "x", "x", "x"}, *y[] = {"x", "y", "x", "y"};
    qr_agreement_t *a = two_raters(x, y, 4);
    json_t *r = report(a, 0);
    expect(r, "cohen_kappa", 0.0, 1e-12);
    expect(r, "scott_pi", -1.0 / 3.0, 1e-12);
    expect(r, "percent_agreement", 0.5, 1e-12);
    json_decref(r);
    qr_agreement_free(a);
}

/* Items with a single judgement count for Gwet's pi (irrCAC) but not for
 * percent agreement or alpha. */
static void test_single_judgement_items(void **state)
{
    const char *x[] = {"a", "b", "a", "a", "b"}, *y[] = {"a", "b", "b", NULL, NULL};
    qr_agreement_t *a = two_raters(x, y, 5);
    json_t *r = report(a, 0);
    assert_int_equal(count(r, "items"), 5);
    assert_int_equal(count(r, "pairable_items"), 3);
    expect(r, "percent_agreement", 2.0 / 3.0, 1e-12);
    /* pi_a = (1 + 0 + .5 + 1 + 0) / 5 = .5 -> pe = .5, AC1 = (2/3 - .5) / .5. */
    expect(r, "gwet_ac1", 1.0 / 3.0, 1e-12);
    expect_status(r, "fleiss_kappa", "not_applicable");
    /* Cohen over the 3 shared items: po 2/3, pe (2*1 + 1*2)/9 = 4/9 -> 0.4. */
    expect(r, "cohen_kappa", 0.4, 1e-12);
    json_decref(r);
    qr_agreement_free(a);
}

/* Labels, items and annotators are opaque strings. */
static void test_strange_strings(void **state)
{
    qr_agreement_t *a = qr_agreement_new();
    const char *l1 = "a, b", *l2 = "say \"hi\"", *l3 = "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93";
    add(a, "item,1", "ann\"1\"", l1);
    add(a, "item,1", "\xe6\x97\xa5\xe6\x9c\xac", l1);
    add(a, "item\n2", "ann\"1\"", l2);
    add(a, "item\n2", "\xe6\x97\xa5\xe6\x9c\xac", l3);
    json_t *r = report(a, 1);
    const json_t *labels = json_object_get(r, "labels");
    assert_int_equal(json_integer_value(json_object_get(labels, l1)), 2);
    assert_int_equal(json_integer_value(json_object_get(labels, l2)), 1);
    assert_int_equal(json_integer_value(json_object_get(labels, l3)), 1);
    assert_false(json_is_true(json_object_get(r, "labels_numeric")));
    expect(r, "percent_agreement", 0.5, 1e-12);
    const json_t *p = json_array_get(json_object_get(r, "pairwise"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "a")), "ann\"1\"");
    const json_t *it = json_array_get(json_object_get(r, "per_item"), 1);
    assert_string_equal(json_string_value(json_object_get(it, "item")), "item,1");
    assert_string_equal(json_string_value(json_object_get(it, "majority_label")), l1);
    json_decref(r);
    qr_agreement_free(a);
}

static void test_add_errors(void **state)
{
    qr_agreement_t *a = qr_agreement_new();
    add(a, "i", "x", "l");
    assert_int_equal(qr_agreement_add(a, "i", 1, "x", 1, "m", 1), QR_ECONFLCT);
    assert_int_equal(qr_agreement_add(a, "i", 1, "y", 1, "", 0), QR_EINVAL);
    assert_int_equal(qr_agreement_add(a, "", 0, "y", 1, "l", 1), QR_EINVAL);
    assert_int_equal(qr_agreement_add(a, "i", 1, "y", 1, "\xff", 1), QR_EINVAL);
    assert_int_equal(qr_agreement_add(a, "i", 1, "y", 1, "\xed\xa0\x80", 3), QR_EINVAL);
    assert_int_equal(qr_agreement_add(a, "i", 1, "y", 1, "a\0b", 3), QR_EINVAL);
    assert_int_equal(qr_agreement_count(a), 1);
    assert_int_equal(qr_agreement_find(a, "i", 1, "x", 1), 0);
    assert_int_equal(qr_agreement_find(a, "i", 1, "y", 1), -1);
    /* An item with many judgements moves to the hash set; duplicates are still found. */
    char ann[16];
    for (int k = 0; k < 40; k++) {
        snprintf(ann, sizeof ann, "a%d", k);
        add(a, "big", ann, k % 2 ? "l" : "m");
    }
    for (int k = 0; k < 40; k++) {
        snprintf(ann, sizeof ann, "a%d", k);
        assert_int_equal(qr_agreement_add(a, "big", 3, ann, strlen(ann), "l", 1), QR_ECONFLCT);
        assert_int_equal(qr_agreement_find(a, "big", 3, ann, strlen(ann)), k + 1);
    }
    assert_int_equal(qr_agreement_count(a), 41);
    qr_agreement_free(a);
}

/* ---- properties over pseudo-random data ---- */

typedef struct {
    char item[24], ann[24], label[24];
} row_t;

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33) % n;
}

/* Rows for nitems items; each annotator labels an item with probability
 * p_pct %, or always when complete. Labels lean towards a per-item truth. */
static size_t gen_rows(row_t *rows, int nitems, int nann, int nlab, int p_pct, int complete)
{
    size_t n = 0;
    for (int i = 0; i < nitems; i++) {
        int truth = (int)rnd((uint32_t)nlab);
        for (int k = 0; k < nann; k++) {
            if (!complete && (int)rnd(100) >= p_pct)
                continue;
            int l = rnd(100) < 60 ? truth : (int)rnd((uint32_t)nlab);
            snprintf(rows[n].item, sizeof rows[n].item, "it%d", i);
            snprintf(rows[n].ann, sizeof rows[n].ann, "an%d", k);
            snprintf(rows[n].label, sizeof rows[n].label, "%d", l + 1);
            n++;
        }
    }
    return n;
}

static json_t *report_rows(const row_t *rows, size_t n, const size_t *order)
{
    qr_agreement_t *a = qr_agreement_new();
    for (size_t i = 0; i < n; i++) {
        const row_t *r = &rows[order ? order[i] : i];
        add(a, r->item, r->ann, r->label);
    }
    json_t *j = report(a, 0);
    qr_agreement_free(a);
    return j;
}

/* Same status for every metric, values within tol (summation order may
 * differ); only_nominal skips the ones that depend on label values. */
static void same_metrics(const json_t *x, const json_t *y, double tol, int only_nominal)
{
    const char *key;
    const json_t *mx;
    json_object_foreach((json_t *)json_object_get(x, "metrics"), key, mx)
    {
        if (only_nominal &&
            (strstr(key, "linear") || strstr(key, "quadratic") || strstr(key, "ordinal") ||
             strstr(key, "interval") || strstr(key, "ratio")))
            continue;
        const json_t *my = metric(y, key);
        assert_string_equal(json_string_value(json_object_get(mx, "status")),
                            json_string_value(json_object_get(my, "status")));
        double vx = json_real_value(json_object_get(mx, "value"));
        double vy = json_real_value(json_object_get(my, "value"));
        if (fabs(vx - vy) > tol)
            fail_msg("%s: %.15f vs %.15f", key, vx, vy);
    }
}

static void test_shuffle_invariance(void **state)
{
    row_t *rows = qr_xmalloc(600 * 6 * sizeof(*rows));
    size_t *order = qr_xmalloc(600 * 6 * sizeof(*order));
    rng_state = 42;
    for (int round = 0; round < 4; round++) {
        size_t n = gen_rows(rows, 600, 6, 4, 55, round == 3);
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd((uint32_t)i), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        json_t *x = report_rows(rows, n, NULL), *y = report_rows(rows, n, order);
        same_metrics(x, y, 1e-12, 0);
        /* Breakdowns are sorted by name, so they match exactly. */
        char *sx = json_dumps(json_object_get(x, "pairwise"), JSON_REAL_PRECISION(12));
        char *sy = json_dumps(json_object_get(y, "pairwise"), JSON_REAL_PRECISION(12));
        assert_string_equal(sx, sy);
        free(sx);
        free(sy);
        assert_true(
            json_equal(json_object_get(x, "per_annotator"), json_object_get(y, "per_annotator")));
        json_decref(x);
        json_decref(y);
    }
    free(rows);
    free(order);
}

static void test_renaming_invariance(void **state)
{
    row_t *rows = qr_xmalloc(400 * 5 * sizeof(*rows));
    rng_state = 7;
    for (int round = 0; round < 3; round++) {
        size_t n = gen_rows(rows, 400, 5, 3, 60, round == 2);
        json_t *x = report_rows(rows, n, NULL);
        /* Labels 1..3 -> "zeta", "alpha", "mu"; annotators reversed names. */
        static const char *const names[] = {"zeta", "alpha", "mu"};
        for (size_t i = 0; i < n; i++) {
            int l = atoi(rows[i].label);
            snprintf(rows[i].label, sizeof rows[i].label, "%s", names[l - 1]);
            int k = atoi(rows[i].ann + 2);
            snprintf(rows[i].ann, sizeof rows[i].ann, "Q%d", 9 - k);
        }
        json_t *y = report_rows(rows, n, NULL);
        same_metrics(x, y, 1e-12, 1);
        json_decref(x);
        json_decref(y);
    }
    free(rows);
}

/* Three annotators with identical labels everywhere -> 1 for everything. */
static void test_identical_annotators(void **state)
{
    row_t *rows = qr_xmalloc(300 * 3 * sizeof(*rows));
    rng_state = 99;
    size_t n = gen_rows(rows, 300, 1, 5, 100, 1);
    qr_agreement_t *a = qr_agreement_new();
    for (size_t i = 0; i < n; i++) {
        add(a, rows[i].item, "p", rows[i].label);
        add(a, rows[i].item, "q", rows[i].label);
        add(a, rows[i].item, "r", rows[i].label);
    }
    json_t *r = report(a, 0);
    static const char *const ones[] = {"percent_agreement",          "fleiss_kappa",
                                       "davies_fleiss_kappa",        "krippendorff_alpha_nominal",
                                       "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                                       "krippendorff_alpha_ratio",   "gwet_ac1"};
    for (size_t i = 0; i < sizeof(ones) / sizeof(ones[0]); i++)
        expect(r, ones[i], 1.0, 1e-12);
    json_decref(r);
    free(rows);
    qr_agreement_free(a);
}

/*
 * Where the theory makes coefficients coincide. Two annotators who both label
 * every item: Fleiss = Scott, Davies-Fleiss = Cohen, and Krippendorff's
 * nominal alpha = 1 - (2N - 1) / (2N) (1 - pi). Equal marginals: Cohen = Scott.
 */
static void test_coefficient_relations(void **state)
{
    row_t *rows = qr_xmalloc(500 * 2 * sizeof(*rows));
    rng_state = 2024;
    for (int round = 0; round < 5; round++) {
        size_t n = gen_rows(rows, 250 + round * 50, 2, 2 + round, 100, 1);
        json_t *r = report_rows(rows, n, NULL);
        double big_n = (double)(n / 2);
        expect(r, "fleiss_kappa", value_of(r, "scott_pi"), 1e-12);
        expect(r, "davies_fleiss_kappa", value_of(r, "cohen_kappa"), 1e-12);
        expect(r, "krippendorff_alpha_nominal",
               1 - (2 * big_n - 1) / (2 * big_n) * (1 - value_of(r, "scott_pi")), 1e-12);
        json_decref(r);
    }
    free(rows);

    /* Equal marginals (B is A with two swapped answers). */
    const char *x[] = {"a", "b", "a", "c", "b", "a"}, *y[] = {"b", "a", "a", "c", "b", "a"};
    qr_agreement_t *a = two_raters(x, y, 6);
    json_t *r = report(a, 0);
    expect(r, "cohen_kappa", value_of(r, "scott_pi"), 1e-12);
    json_decref(r);
    qr_agreement_free(a);
}

/* Pairwise numbers against a direct count, for a small annotator pool (dense
 * pair table) and a large one (sparse pass). */
static void check_pairwise(const row_t *rows, size_t n, const json_t *r, size_t max_pairs)
{
    const json_t *p;
    size_t i;
    json_array_foreach(json_object_get(r, "pairwise"), i, p)
    {
        if (i >= max_pairs)
            break;
        const char *pa = json_string_value(json_object_get(p, "a"));
        const char *pb = json_string_value(json_object_get(p, "b"));
        assert_true(strcmp(pa, pb) < 0);
        long items = 0, agree = 0, ca[8] = {0}, cb[8] = {0};
        for (size_t x = 0; x < n; x++) {
            if (strcmp(rows[x].ann, pa) != 0)
                continue;
            for (size_t y = 0; y < n; y++) {
                if (strcmp(rows[y].ann, pb) != 0 || strcmp(rows[y].item, rows[x].item) != 0)
                    continue;
                items++;
                agree += strcmp(rows[x].label, rows[y].label) == 0;
                ca[atoi(rows[x].label)]++;
                cb[atoi(rows[y].label)]++;
            }
        }
        assert_int_equal(json_integer_value(json_object_get(p, "items")), items);
        assert_int_equal(json_integer_value(json_object_get(p, "agree")), agree);
        double pe = 0;
        for (int l = 0; l < 8; l++)
            pe += (double)ca[l] * cb[l] / ((double)items * items);
        const json_t *k = json_object_get(p, "cohen_kappa");
        if (pe < 1) {
            double kappa = ((double)agree / items - pe) / (1 - pe);
            assert_true(fabs(json_real_value(json_object_get(k, "value")) - kappa) < 1e-12);
        } else {
            assert_string_equal(json_string_value(json_object_get(k, "status")), "undefined");
        }
    }
}

static void test_pairwise_dense_and_sparse(void **state)
{
    /* 12 annotators: dense table. */
    row_t *rows = qr_xmalloc(200 * 12 * sizeof(*rows));
    rng_state = 5;
    size_t n = gen_rows(rows, 200, 12, 4, 40, 0);
    json_t *r = report_rows(rows, n, NULL);
    check_pairwise(rows, n, r, SIZE_MAX);
    json_decref(r);
    free(rows);

    /* 1600 annotators x 3 labels: over a million pairs x labels, sparse pass.
     * Item i is labeled by annotators i, i+1 and i+7 (mod 1600). */
    rows = qr_xmalloc(1600 * 3 * sizeof(*rows));
    n = 0;
    for (int i = 0; i < 1600; i++) {
        static const int off[3] = {0, 1, 7};
        for (int k = 0; k < 3; k++) {
            snprintf(rows[n].item, sizeof rows[n].item, "it%d", i);
            snprintf(rows[n].ann, sizeof rows[n].ann, "an%04d", (i + off[k]) % 1600);
            snprintf(rows[n].label, sizeof rows[n].label, "%d", 1 + (int)rnd(3));
            n++;
        }
    }
    r = report_rows(rows, n, NULL);
    /* Item i yields the pairs at distances 1, 6 and 7, so every pair is
     * distinct: 3 x 1600, one shared item each. */
    assert_int_equal(json_array_size(json_object_get(r, "pairwise")), 4800);
    check_pairwise(rows, n, r, 400);
    json_decref(r);
    free(rows);
}

/* qr_agreement_report()'s item iterator lists what qr_agreement_json(a, 1)
 * puts under "per_item", in the same order; and the report does not depend
 * on the random hash seed (two sets built from the same rows, each with its
 * own seed, dump to the same bytes), with items given in name order or not. */
static void test_items_iterator_and_seed(void **state)
{
    row_t *rows = qr_xmalloc(3000 * 6 * sizeof(*rows));
    size_t *order = qr_xmalloc(3000 * 6 * sizeof(*order));
    rng_state = 11;
    size_t n = gen_rows(rows, 3000, 6, 5, 50, 0);
    for (size_t i = 0; i < n; i++)
        order[i] = n - 1 - i; /* items in reverse order of their names' first appearance */

    for (int pass = 0; pass < 2; pass++) {
        qr_agreement_t *a = qr_agreement_new(), *b = qr_agreement_new();
        for (size_t i = 0; i < n; i++) {
            const row_t *r = &rows[pass ? order[i] : i];
            add(a, r->item, r->ann, r->label);
            add(b, r->item, r->ann, r->label);
        }
        json_t *ja = qr_agreement_json(a, 1), *jb = qr_agreement_json(b, 1);
        char *da = json_dumps(ja, JSON_INDENT(2)), *db = json_dumps(jb, JSON_INDENT(2));
        assert_string_equal(da, db);
        free(da);
        free(db);

        qr_agreement_items_t *it = NULL;
        json_t *rep = qr_agreement_report(a, &it);
        assert_non_null(it);
        assert_null(json_object_get(rep, "per_item"));
        const json_t *arr = json_object_get(ja, "per_item");
        assert_int_equal(qr_agreement_items_count(it), json_array_size(arr));
        for (int round = 0; round < 2; round++) {
            qr_agreement_item_t e;
            size_t k = 0;
            while (qr_agreement_items_next(it, &e)) {
                const json_t *o = json_array_get(arr, k++);
                assert_string_equal(e.item, json_string_value(json_object_get(o, "item")));
                assert_int_equal(e.item_len, strlen(e.item));
                assert_int_equal(e.judgements,
                                 json_integer_value(json_object_get(o, "judgements")));
                const json_t *ag = json_object_get(o, "agreement");
                assert_int_equal(e.has_agreement, json_is_real(ag));
                if (e.has_agreement)
                    assert_true(e.agreement == json_real_value(ag));
                const json_t *mj = json_object_get(o, "majority_label");
                if (e.majority)
                    assert_string_equal(e.majority, json_string_value(mj));
                else
                    assert_true(json_is_null(mj));
                /* Its count (test_agreement_fields.c checks the value). */
                if (e.majority)
                    assert_true(e.majority_count >= 1 && e.majority_count <= e.judgements);
                else
                    assert_int_equal(e.majority_count, 0);
            }
            assert_int_equal(k, json_array_size(arr));
            qr_agreement_items_rewind(it);
        }
        json_object_set(rep, "per_item", (json_t *)arr);
        assert_true(json_equal(rep, ja));
        qr_agreement_items_free(it);
        json_decref(rep);
        json_decref(ja);
        json_decref(jb);
        qr_agreement_free(a);
        qr_agreement_free(b);
    }
    free(rows);
    free(order);
}

/*
 * The store keeps judgements grouped by item without per-judgement item ids
 * while it can, packs annotator and label ids while they fit 16 bits, and
 * interns names that arrive in order without hashing. Each pair of sets below
 * differs in one of those forms only (item ids in the same order, each item's
 * judgements in the same order), so the reports must be byte for byte the
 * same, and lookups and duplicates must be found in every form.
 */
static void add_form(qr_agreement_t *a, int items, int per_item, int spread, int round_robin,
                     const char *fmt)
{
    char it[32], an[32], lb[32];
    for (int x = 0; x < items * per_item; x++) {
        int i = round_robin ? x % items : x / per_item, k = round_robin ? x / items : x % per_item;
        snprintf(it, sizeof it, fmt, i);
        snprintf(an, sizeof an, "ann%d", spread ? i * per_item + k : k);
        /* Labels first appear in the same order either way (item 0's, then
         * the first judgements'), so their ids and the sums over them are
         * the same. */
        snprintf(lb, sizeof lb, "%d", (i + k + i * k % 3) % 5 + 1);
        add(a, it, an, lb);
    }
}

static void expect_same_report(qr_agreement_t *x, qr_agreement_t *y)
{
    qr_agreement_items_t *ix, *iy;
    json_t *rx = qr_agreement_report(x, &ix), *ry = qr_agreement_report(y, &iy);
    char *sx = json_dumps(rx, JSON_COMPACT), *sy = json_dumps(ry, JSON_COMPACT);
    assert_string_equal(sx, sy);
    free(sx);
    free(sy);
    json_decref(rx);
    json_decref(ry);
    /* Per item, without a JSON tree (jansson is slow at 15,000 objects). */
    qr_agreement_item_t ex, ey;
    assert_int_equal(qr_agreement_items_count(ix), qr_agreement_items_count(iy));
    while (qr_agreement_items_next(ix, &ex)) {
        assert_true(qr_agreement_items_next(iy, &ey));
        assert_string_equal(ex.item, ey.item);
        assert_int_equal(ex.judgements, ey.judgements);
        assert_int_equal(ex.has_agreement, ey.has_agreement);
        assert_memory_equal(&ex.agreement, &ey.agreement, sizeof(double));
        assert_true(ex.majority == ey.majority ||
                    (ex.majority && ey.majority && strcmp(ex.majority, ey.majority) == 0));
    }
    qr_agreement_items_free(ix);
    qr_agreement_items_free(iy);
}

static void test_store_forms(void **state)
{
    static const struct {
        int items, per_item, spread;
        const char *fmt;
    } cases[] = {
        {3000, 5, 0, "item-%06d"}, /* in byte order */
        {3000, 5, 0, "%d"},        /* shorter first: 9 before 10 */
        {500, 20, 0, "%d"},        /* items past QR_AGR_LIST_MAX judgements */
        {13200, 5, 1, "%d"},       /* 66,000 annotators: ids past 16 bits */
        {3000, 5, 0, "x%dy"},      /* "x10y" < "x9y": hashed after the tenth */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        qr_agreement_t *g = qr_agreement_new(), *rr = qr_agreement_new();
        add_form(g, cases[c].items, cases[c].per_item, cases[c].spread, 0, cases[c].fmt);
        add_form(rr, cases[c].items, cases[c].per_item, cases[c].spread, 1, cases[c].fmt);
        assert_int_equal(g->grouped, 1);
        assert_int_equal(rr->grouped, 0);
        assert_int_equal(g->packed, !cases[c].spread);
        expect_same_report(g, rr);
        /* Every judgement is found, at its index, and refused again. */
        qr_agreement_t *sets[2] = {g, rr};
        for (int w = 0; w < 2; w++) {
            for (int i = 0; i < cases[c].items; i += 97) {
                for (int k = 0; k < cases[c].per_item; k++) {
                    char it[32], an[32];
                    snprintf(it, sizeof it, cases[c].fmt, i);
                    snprintf(an, sizeof an, "ann%d",
                             cases[c].spread ? i * cases[c].per_item + k : k);
                    long want = w ? (long)k * cases[c].items + i : (long)i * cases[c].per_item + k;
                    assert_int_equal(qr_agreement_find(sets[w], it, strlen(it), an, strlen(an)),
                                     want);
                    assert_int_equal(
                        qr_agreement_add(sets[w], it, strlen(it), an, strlen(an), "9", 1),
                        QR_ECONFLCT);
                }
                char it[32];
                snprintf(it, sizeof it, cases[c].fmt, i);
                assert_int_equal(qr_agreement_find(sets[w], it, strlen(it), "nobody", 6), -1);
            }
            assert_int_equal(qr_agreement_find(sets[w], "absent", 6, "ann0", 4), -1);
        }
        /* A judgement for an earlier item ends the grouped form: nothing
         * changes but that. */
        char it[32];
        snprintf(it, sizeof it, cases[c].fmt, 0);
        add(g, it, "late", "1");
        add(rr, it, "late", "1");
        assert_int_equal(g->grouped, 0);
        expect_same_report(g, rr);
        qr_agreement_free(g);
        qr_agreement_free(rr);
    }
}

/* The Wilson score interval against Newcombe (1998), "Two-sided confidence
 * intervals for the single proportion", Statistics in Medicine 17, Table I,
 * method 3 (4 decimals); and its edges. */
static void test_wilson_interval(void **state)
{
    (void)state;
    static const struct {
        int64_t k, n;
        double low, high;
    } cases[] = {
        {81, 263, 0.2553, 0.3662},
        {15, 148, 0.0624, 0.1605},
        {0, 20, 0.0, 0.1611},
        {1, 29, 0.0061, 0.1718},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double lo, hi;
        assert_int_equal(qr_wilson_interval(cases[i].k, cases[i].n, QR_Z95, &lo, &hi), 0);
        if (fabs(lo - cases[i].low) > 5e-5 || fabs(hi - cases[i].high) > 5e-5)
            fail_msg("%lld/%lld: [%.5f, %.5f], want [%.4f, %.4f]", (long long)cases[i].k,
                     (long long)cases[i].n, lo, hi, cases[i].low, cases[i].high);
    }
    double lo, hi;
    assert_int_equal(qr_wilson_interval(5, 5, QR_Z95, &lo, &hi), 0);
    assert_true(hi == 1.0 && lo > 0.5 && lo < 0.6); /* 0.5655 */
    assert_int_equal(qr_wilson_interval(0, 0, QR_Z95, &lo, &hi), -1);
    assert_int_equal(qr_wilson_interval(3, 2, QR_Z95, &lo, &hi), -1);
    assert_int_equal(qr_wilson_interval(-1, 2, QR_Z95, &lo, &hi), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_krippendorff_2011),
        cmocka_unit_test(test_fleiss_wikipedia),
        cmocka_unit_test(test_cohen_wikipedia),
        cmocka_unit_test(test_cohen_weighted_sklearn),
        cmocka_unit_test(test_perfect_agreement),
        cmocka_unit_test(test_one_label_everywhere),
        cmocka_unit_test(test_no_pairable_item),
        cmocka_unit_test(test_one_annotator_constant),
        cmocka_unit_test(test_single_judgement_items),
        cmocka_unit_test(test_strange_strings),
        cmocka_unit_test(test_add_errors),
        cmocka_unit_test(test_shuffle_invariance),
        cmocka_unit_test(test_renaming_invariance),
        cmocka_unit_test(test_identical_annotators),
        cmocka_unit_test(test_coefficient_relations),
        cmocka_unit_test(test_pairwise_dense_and_sparse),
        cmocka_unit_test(test_items_iterator_and_seed),
        cmocka_unit_test(test_store_forms),
        cmocka_unit_test(test_wilson_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
