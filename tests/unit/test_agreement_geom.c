/*
 * test_agreement_geom.c - span and box matching and consensus
 * (common/agreement/agreement_geom.c) on hand-computed cases, and against
 * brute force (augmenting paths for spans, every assignment for boxes) on
 * random small lists.
 *
 * Hand computations: half-open ranges intersect when each starts before the
 * other ends. Boxes of height 10 on one row have IoU = (length of the x
 * overlap) / (length of the x union); two 10 x 10 boxes shifted by 5 share
 * 50 of 150, IoU 1/3.
 */
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement_geom.h"

enum { ORG = 1, PER = 2, CAR = 7 };

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect_spans(const qr_span_t *a, size_t na, const qr_span_t *b, size_t nb, size_t exact,
                         size_t overlap)
{
    size_t ex = 99, ov = 99;
    qr_spans_match(a, na, b, nb, &ex, &ov);
    assert_int_equal(ex, exact);
    assert_int_equal(ov, overlap);
    /* Symmetric in its two lists. */
    qr_spans_match(b, nb, a, na, &ex, &ov);
    assert_int_equal(ex, exact);
    assert_int_equal(ov, overlap);
}

static void test_spans_hand(void **state)
{
    (void)state;
    /* Nested: [2,4) inside [0,10). */
    qr_span_t outer[] = {{0, 10, ORG}}, inner[] = {{2, 4, ORG}};
    expect_spans(outer, 1, inner, 1, 0, 1);
    /* Touching: [0,5) and [5,9) share no character. */
    qr_span_t left[] = {{0, 5, ORG}}, right[] = {{5, 9, ORG}};
    expect_spans(left, 1, right, 1, 0, 0);
    /* Overlapping: [0,5) and [3,8) share [3,5). */
    qr_span_t ov[] = {{3, 8, ORG}};
    expect_spans(left, 1, ov, 1, 0, 1);
    /* Identical lists. */
    qr_span_t same[] = {{0, 5, ORG}, {0, 5, PER}, {6, 9, ORG}};
    expect_spans(same, 3, same, 3, 3, 3);
    /* Same range, different labels: no match of either kind. */
    qr_span_t org[] = {{0, 5, ORG}}, per[] = {{0, 5, PER}};
    expect_spans(org, 1, per, 1, 0, 0);
    /* Exact implies overlap; one exact and one overlap-only. */
    qr_span_t x[] = {{0, 5, ORG}, {10, 20, PER}}, y[] = {{0, 5, ORG}, {12, 30, PER}};
    expect_spans(x, 2, y, 2, 1, 2);
}

static void test_spans_empty(void **state)
{
    (void)state;
    qr_span_t one[] = {{0, 5, ORG}};
    /* Two empty lists: 0 and 0 (callers count F1 of that pair as 1). */
    expect_spans(NULL, 0, NULL, 0, 0, 0);
    /* One list empty. */
    expect_spans(one, 1, NULL, 0, 0, 0);
    /* An empty range matches nothing, not even itself. */
    qr_span_t empty[] = {{3, 3, ORG}};
    expect_spans(empty, 1, empty, 1, 0, 0);
    expect_spans(empty, 1, one, 1, 0, 0);
    /* NULL outputs are allowed. */
    qr_spans_match(one, 1, one, 1, NULL, NULL);
}

static void test_spans_many_to_one(void **state)
{
    (void)state;
    /* One long span against two short ones inside it: one to one, so only
     * one of the two pairs. */
    qr_span_t longs[] = {{0, 10, ORG}}, shorts[] = {{0, 4, ORG}, {5, 9, ORG}};
    expect_spans(longs, 1, shorts, 2, 0, 1);
    /* Two long against two short: both pair. */
    qr_span_t two_long[] = {{0, 10, ORG}, {0, 10, PER}};
    qr_span_t mixed[] = {{0, 4, ORG}, {5, 9, PER}};
    expect_spans(two_long, 2, mixed, 2, 0, 2);
    /* Giving [0,10) the first span it meets ([1,3)) would leave [0,2) with
     * nothing; the best pairing is [0,10)-[5,7) and [0,2)-[1,3). */
    qr_span_t a[] = {{0, 2, ORG}, {0, 10, ORG}}, b[] = {{1, 3, ORG}, {5, 7, ORG}};
    expect_spans(a, 2, b, 2, 0, 2);
}

static void test_spans_unsorted_input(void **state)
{
    (void)state;
    qr_span_t a[] = {{6, 9, ORG}, {0, 5, PER}, {0, 5, ORG}};
    qr_span_t b[] = {{0, 5, ORG}, {7, 8, ORG}, {1, 2, PER}};
    expect_spans(a, 3, b, 3, 1, 3);
}

/* Maximum bipartite matching by augmenting paths (Kuhn), the reference. */
static int kuhn_try(size_t i, const unsigned char *adj, size_t nb, int *mb, unsigned char *seen)
{
    for (size_t j = 0; j < nb; j++) {
        if (!adj[i * nb + j] || seen[j])
            continue;
        seen[j] = 1;
        if (mb[j] < 0 || kuhn_try((size_t)mb[j], adj, nb, mb, seen)) {
            mb[j] = (int)i;
            return 1;
        }
    }
    return 0;
}

static size_t brute_overlap(const qr_span_t *a, size_t na, const qr_span_t *b, size_t nb)
{
    unsigned char adj[32 * 32], seen[32];
    int mb[32];
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            adj[i * nb + j] =
                a[i].label == b[j].label && a[i].start < b[j].end && b[j].start < a[i].end;
    for (size_t j = 0; j < nb; j++)
        mb[j] = -1;
    size_t m = 0;
    for (size_t i = 0; i < na; i++) {
        memset(seen, 0, sizeof(seen));
        m += (size_t)kuhn_try(i, adj, nb, mb, seen);
    }
    return m;
}

static size_t brute_exact(const qr_span_t *a, size_t na, const qr_span_t *b, size_t nb)
{
    size_t m = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            m += a[i].start == b[j].start && a[i].end == b[j].end && a[i].label == b[j].label;
    return m;
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int cmp_span(const void *p, const void *q)
{
    const qr_span_t *x = p, *y = q;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

/* n random distinct spans over [0, len), sorted as the contract asks. */
static size_t random_spans(qr_span_t *s, size_t n, int64_t len, uint32_t labels)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t st = (int64_t)(rnd() % (uint64_t)len);
        int64_t en = st + 1 + (int64_t)(rnd() % 6);
        qr_span_t c = {st, en, (uint32_t)(rnd() % labels)};
        int dup = 0;
        for (size_t j = 0; j < k; j++)
            dup |= cmp_span(&s[j], &c) == 0;
        if (!dup)
            s[k++] = c;
    }
    qsort(s, k, sizeof(*s), cmp_span);
    return k;
}

static void test_spans_against_brute_force(void **state)
{
    (void)state;
    qr_span_t a[32], b[32];
    for (int trial = 0; trial < 5000; trial++) {
        size_t na = random_spans(a, rnd() % 13, 10 + (int64_t)(rnd() % 30), 1 + rnd() % 3);
        size_t nb = random_spans(b, rnd() % 13, 10 + (int64_t)(rnd() % 30), 1 + rnd() % 3);
        size_t ex, ov;
        qr_spans_match(a, na, b, nb, &ex, &ov);
        if (ex != brute_exact(a, na, b, nb) || ov != brute_overlap(a, na, b, nb))
            fail_msg("trial %d: exact %zu/%zu overlap %zu/%zu", trial, ex,
                     brute_exact(a, na, b, nb), ov, brute_overlap(a, na, b, nb));
    }
}

static void test_spans_large(void **state)
{
    (void)state;
    /* 1000 spans a side (the validation cap), shifted by one: every span
     * meets two of the other list, and the best pairing takes them all. */
    enum { K = 1000 };
    qr_span_t *a = malloc(K * sizeof(*a)), *b = malloc(K * sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < K; i++) {
        a[i] = (qr_span_t){2 * i, 2 * i + 2, ORG};
        b[i] = (qr_span_t){2 * i + 1, 2 * i + 3, ORG};
    }
    expect_spans(a, K, b, K, 0, K);
    expect_spans(a, K, a, K, K, K);
    free(a);
    free(b);
}

static void expect_iou(qr_box_t a, qr_box_t b, double want)
{
    double got = qr_box_iou(&a, &b), back = qr_box_iou(&b, &a);
    if (fabs(got - want) > 1e-12 || fabs(back - want) > 1e-12)
        fail_msg("IoU %.15f / %.15f, expected %.15f", got, back, want);
}

static void test_box_iou(void **state)
{
    (void)state;
    qr_box_t a = {10, 20, 30, 40, CAR};
    /* Identical: exactly 1. */
    assert_true(qr_box_iou(&a, &a) == 1.0);
    /* Disjoint. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){50, 50, 10, 10, CAR}, 0);
    /* Half overlap: 50 shared of 150. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){5, 0, 10, 10, CAR}, 1.0 / 3.0);
    /* Shifted in both directions: 5 x 5 = 25 shared of 175. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){5, 5, 10, 10, CAR}, 25.0 / 175.0);
    /* Contained: 100 of 400. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){0, 0, 20, 20, CAR}, 0.25);
    /* Touching along an edge, and at a corner: 0. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){10, 0, 10, 10, CAR}, 0);
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){10, 10, 10, 10, CAR}, 0);
    /* No area: 0, even against itself. */
    expect_iou((qr_box_t){5, 5, 0, 10, CAR}, (qr_box_t){0, 0, 20, 20, CAR}, 0);
    expect_iou((qr_box_t){5, 5, 10, 0, CAR}, (qr_box_t){5, 5, 10, 0, CAR}, 0);
    expect_iou((qr_box_t){5, 5, NAN, 10, CAR}, (qr_box_t){0, 0, 20, 20, CAR}, 0);
    expect_iou((qr_box_t){NAN, 5, 10, 10, CAR}, (qr_box_t){0, 0, 20, 20, CAR}, 0);
    /* Areas that overflow give a number in [0, 1], never NaN. */
    qr_box_t huge = {0, 0, 1e300, 1e300, CAR}, big = {1e299, 0, 1e300, 1e300, CAR};
    double r = qr_box_iou(&huge, &huge);
    assert_true(r >= 0 && r <= 1);
    r = qr_box_iou(&huge, &big);
    assert_true(r >= 0 && r <= 1);
    /* Labels are not IoU's business. */
    expect_iou((qr_box_t){0, 0, 10, 10, CAR}, (qr_box_t){0, 0, 10, 10, ORG}, 1);
}

static void expect_boxes(const qr_box_t *a, size_t na, const qr_box_t *b, size_t nb, double thr,
                         size_t matched, double iou_sum)
{
    size_t m = 99;
    double s = -1;
    qr_boxes_match(a, na, b, nb, thr, &m, &s);
    assert_int_equal(m, matched);
    if (fabs(s - iou_sum) > 1e-12)
        fail_msg("iou_sum %.15f, expected %.15f", s, iou_sum);
    qr_boxes_match(b, nb, a, na, thr, &m, &s);
    assert_int_equal(m, matched);
    if (fabs(s - iou_sum) > 1e-12)
        fail_msg("swapped: iou_sum %.15f, expected %.15f", s, iou_sum);
}

static void test_boxes_match_hand(void **state)
{
    (void)state;
    qr_box_t a[] = {{0, 0, 10, 10, CAR}}, same[] = {{0, 0, 10, 10, CAR}};
    expect_boxes(a, 1, same, 1, 0.5, 1, 1.0);
    /* Disjoint and touching: no match. */
    qr_box_t far[] = {{50, 50, 10, 10, CAR}}, touch[] = {{10, 0, 10, 10, CAR}};
    expect_boxes(a, 1, far, 1, 0.5, 0, 0);
    expect_boxes(a, 1, touch, 1, 0.5, 0, 0);
    /* Half overlap (IoU 1/3): a match at 0.3, not at 0.5. */
    qr_box_t half[] = {{5, 0, 10, 10, CAR}};
    expect_boxes(a, 1, half, 1, 0.5, 0, 0);
    expect_boxes(a, 1, half, 1, 0.3, 1, 1.0 / 3.0);
    /* A threshold of 0 still needs some overlap. */
    expect_boxes(a, 1, touch, 1, 0.0, 0, 0);
    /* Same place, different labels. */
    qr_box_t org[] = {{0, 0, 10, 10, ORG}};
    expect_boxes(a, 1, org, 1, 0.5, 0, 0);
    /* No area. */
    qr_box_t flat[] = {{0, 0, 10, 0, CAR}};
    expect_boxes(flat, 1, flat, 1, 0.5, 0, 0);
    /* Empty lists. */
    expect_boxes(NULL, 0, NULL, 0, 0.5, 0, 0);
    expect_boxes(a, 1, NULL, 0, 0.5, 0, 0);
    qr_boxes_match(a, 1, a, 1, 0.5, NULL, NULL);
}

static void test_boxes_threshold_exact(void **state)
{
    (void)state;
    /* 100 shared of 200: IoU exactly 0.5 (every figure is exact in binary). */
    qr_box_t a[] = {{0, 0, 10, 10, CAR}}, b[] = {{0, 0, 20, 10, CAR}};
    assert_true(qr_box_iou(&a[0], &b[0]) == 0.5);
    expect_boxes(a, 1, b, 1, 0.5, 1, 0.5);
    expect_boxes(a, 1, b, 1, nextafter(0.5, 1.0), 0, 0);
}

static void test_boxes_optimal_beats_greedy(void **state)
{
    (void)state;
    /* One row, height 10, x ranges: b1 [0,10), a0 [2,12), b0 [3,13),
     * a1 [5,15). IoUs: a0-b0 9/11, a0-b1 8/12, a1-b0 8/12, a1-b1 5/15.
     * Greedy by highest IoU takes a0-b0 (0.818), then a1-b1 (1/3 < 0.5): one
     * match, total 1.152. The optimum a0-b1 + a1-b0 totals 4/3: two. */
    qr_box_t a[] = {{2, 0, 10, 10, CAR}, {5, 0, 10, 10, CAR}};
    qr_box_t b[] = {{3, 0, 10, 10, CAR}, {0, 0, 10, 10, CAR}};
    expect_boxes(a, 2, b, 2, 0.5, 2, 16.0 / 12.0);
    /* Other labels around them change nothing, unequal sizes neither. */
    qr_box_t a2[] = {{2, 0, 10, 10, CAR}, {2, 0, 10, 10, ORG}, {5, 0, 10, 10, CAR}};
    qr_box_t b2[] = {{3, 0, 10, 10, CAR}, {0, 0, 10, 10, CAR}, {80, 80, 5, 5, CAR}};
    expect_boxes(a2, 3, b2, 3, 0.5, 2, 16.0 / 12.0);
}

static void test_boxes_many_to_one(void **state)
{
    (void)state;
    /* One box against its two halves (IoU 1/2 each): one to one, so one
     * match. */
    qr_box_t whole[] = {{0, 0, 20, 10, CAR}};
    qr_box_t halves[] = {{0, 0, 10, 10, CAR}, {10, 0, 10, 10, CAR}};
    expect_boxes(whole, 1, halves, 2, 0.5, 1, 0.5);
    /* Two separate groups, each solved on its own. */
    qr_box_t a[] = {{0, 0, 10, 10, CAR}, {50, 50, 10, 10, CAR}, {52, 50, 10, 10, CAR}};
    qr_box_t b[] = {{51, 50, 10, 10, CAR}, {0, 0, 10, 10, CAR}, {80, 0, 5, 5, CAR}};
    /* a1-b0 and a2-b0 are both 9/11; a1 or a2 gets it. */
    expect_boxes(a, 3, b, 3, 0.5, 2, 1.0 + 9.0 / 11.0);
}

/* Best assignment by dynamic programming over the subsets of b's boxes
 * (na <= nb <= 10): best[mask] is the largest total IoU of a[0..popcount)
 * assigned into the boxes of mask. Ties keep the first found. */
static void brute_boxes(const qr_box_t *a, size_t na, const qr_box_t *b, size_t nb, double thr,
                        size_t *matched, double *sum)
{
    enum { MAXB = 10 };
    static double best[1 << MAXB];
    static signed char last[1 << MAXB];
    double w[MAXB][MAXB];
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            w[i][j] = a[i].label == b[j].label ? qr_box_iou(&a[i], &b[j]) : 0;
    size_t full = (size_t)1 << nb;
    for (size_t m = 0; m < full; m++)
        best[m] = -1, last[m] = -1;
    best[0] = 0;
    size_t best_mask = 0;
    double best_total = na == 0 ? 0 : -1;
    for (size_t m = 0; m < full; m++) {
        if (best[m] < 0)
            continue;
        size_t i = (size_t)__builtin_popcount((unsigned)m);
        if (i == na) {
            if (best[m] > best_total + 1e-12)
                best_total = best[m], best_mask = m;
            continue;
        }
        for (size_t j = 0; j < nb; j++) {
            size_t to = m | ((size_t)1 << j);
            if (to != m && best[m] + w[i][j] > best[to] + 1e-12)
                best[to] = best[m] + w[i][j], last[to] = (signed char)j;
        }
    }
    size_t mcount = 0;
    double s = 0;
    for (size_t m = best_mask, i = na; m != 0; i--) {
        size_t j = (size_t)last[m];
        if (w[i - 1][j] > 0 && w[i - 1][j] >= thr)
            mcount++, s += w[i - 1][j];
        m &= ~((size_t)1 << j);
    }
    *matched = mcount;
    *sum = s;
}

static qr_box_t random_box(uint32_t labels)
{
    double x = (double)(rnd() % 10000) / 200.0, y = (double)(rnd() % 10000) / 200.0;
    double w = 5 + (double)(rnd() % 10000) / 500.0, h = 5 + (double)(rnd() % 10000) / 500.0;
    return (qr_box_t){x / 2, y / 2, w, h, (uint32_t)(rnd() % labels)};
}

static void test_boxes_against_brute_force(void **state)
{
    (void)state;
    qr_box_t a[10], b[10];
    for (int trial = 0; trial < 3000; trial++) {
        size_t na = rnd() % 11, nb = rnd() % 11;
        uint32_t labels = 1 + (uint32_t)(rnd() % 2);
        for (size_t i = 0; i < na; i++)
            a[i] = random_box(labels);
        for (size_t i = 0; i < nb; i++)
            b[i] = random_box(labels);
        double thr = trial % 3 == 0 ? 0.1 : 0.3;
        size_t m, bm;
        double s, bs;
        qr_boxes_match(a, na, b, nb, thr, &m, &s);
        if (na <= nb)
            brute_boxes(a, na, b, nb, thr, &bm, &bs);
        else
            brute_boxes(b, nb, a, na, thr, &bm, &bs);
        if (m != bm || fabs(s - bs) > 1e-9)
            fail_msg("trial %d (%zu x %zu): matched %zu/%zu sum %.12f/%.12f", trial, na, nb, m, bm,
                     s, bs);
    }
}

static void test_spans_consensus(void **state)
{
    (void)state;
    qr_span_t out[8];
    size_t sup[8];
    /* 3 annotators: [0,5) ORG chosen by two (kept, support 2); [6,9) PER by
     * one (dropped); the third marked nothing else. */
    qr_span_t l0[] = {{0, 5, ORG}, {6, 9, PER}}, l1[] = {{0, 5, ORG}}, l2[] = {{0, 4, ORG}};
    const qr_span_t *three[] = {l0, l1, l2};
    size_t c3[] = {2, 1, 1};
    assert_int_equal(qr_spans_consensus(three, c3, 3, out, sup, 8), 1);
    assert_true(out[0].start == 0 && out[0].end == 5 && out[0].label == ORG);
    assert_int_equal(sup[0], 2);
    /* 4 annotators, the same two agreeing: 2 is not more than half. */
    const qr_span_t *four[] = {l0, l1, l2, NULL};
    size_t c4[] = {2, 1, 1, 0};
    assert_int_equal(qr_spans_consensus(four, c4, 4, out, sup, 8), 0);
    /* A third backer makes it. */
    const qr_span_t *four3[] = {l0, l1, l2, l1};
    size_t c43[] = {2, 1, 1, 1};
    assert_int_equal(qr_spans_consensus(four3, c43, 4, out, sup, 8), 1);
    assert_int_equal(sup[0], 3);
    /* One annotator: the list itself, sorted; a duplicate counts once. */
    qr_span_t one[] = {{6, 9, PER}, {0, 5, PER}, {0, 5, ORG}, {0, 5, ORG}};
    const qr_span_t *l_one[] = {one};
    size_t c1[] = {4};
    assert_int_equal(qr_spans_consensus(l_one, c1, 1, out, sup, 8), 3);
    assert_true(out[0].start == 0 && out[0].label == ORG && sup[0] == 1);
    assert_true(out[1].start == 0 && out[1].label == PER && sup[1] == 1);
    assert_true(out[2].start == 6 && out[2].label == PER && sup[2] == 1);
    /* cap: the first ones in order. */
    assert_int_equal(qr_spans_consensus(l_one, c1, 1, out, NULL, 2), 2);
    assert_true(out[1].label == PER && out[1].start == 0);
    /* Nobody, or nothing marked. */
    assert_int_equal(qr_spans_consensus(NULL, NULL, 0, out, sup, 8), 0);
    const qr_span_t *none[] = {NULL, NULL};
    size_t c0[] = {0, 0};
    assert_int_equal(qr_spans_consensus(none, c0, 2, out, sup, 8), 0);
}

static void expect_box(qr_box_t got, qr_box_t want)
{
    if (fabs(got.x - want.x) > 1e-9 || fabs(got.y - want.y) > 1e-9 || fabs(got.w - want.w) > 1e-9 ||
        fabs(got.h - want.h) > 1e-9 || got.label != want.label)
        fail_msg("box %g %g %g %g /%u, expected %g %g %g %g /%u", got.x, got.y, got.w, got.h,
                 got.label, want.x, want.y, want.w, want.h, want.label);
}

static void test_boxes_consensus(void **state)
{
    (void)state;
    qr_box_t out[8];
    size_t sup[8];
    /* 3 annotators: two nearly agree (IoU 9/11), the third is elsewhere.
     * Kept: the mean of the two, support 2. */
    qr_box_t l0[] = {{0, 0, 10, 10, CAR}}, l1[] = {{1, 0, 10, 10, CAR}};
    qr_box_t l2[] = {{50, 50, 10, 10, CAR}};
    const qr_box_t *three[] = {l0, l1, l2};
    size_t c3[] = {1, 1, 1};
    assert_int_equal(qr_boxes_consensus(three, c3, 3, 0.5, out, sup, 8), 1);
    expect_box(out[0], (qr_box_t){0.5, 0, 10, 10, CAR});
    assert_int_equal(sup[0], 2);
    /* 4 annotators, two agreeing: not more than half. */
    const qr_box_t *four[] = {l0, l1, l2, NULL};
    size_t c4[] = {1, 1, 1, 0};
    assert_int_equal(qr_boxes_consensus(four, c4, 4, 0.5, out, sup, 8), 0);
    /* Labels never mix: the same boxes under two labels. */
    qr_box_t o1[] = {{1, 0, 10, 10, ORG}};
    const qr_box_t *mixed[] = {l0, o1, l2};
    assert_int_equal(qr_boxes_consensus(mixed, c3, 3, 0.5, out, sup, 8), 0);
    /* One annotator: its boxes, support 1, sorted by label then x. */
    qr_box_t mine[] = {{40, 0, 5, 5, CAR}, {0, 0, 5, 5, CAR}, {20, 0, 5, 5, ORG}};
    const qr_box_t *l_one[] = {mine};
    size_t c1[] = {3};
    assert_int_equal(qr_boxes_consensus(l_one, c1, 1, 0.5, out, sup, 8), 3);
    expect_box(out[0], (qr_box_t){20, 0, 5, 5, ORG});
    expect_box(out[1], (qr_box_t){0, 0, 5, 5, CAR});
    expect_box(out[2], (qr_box_t){40, 0, 5, 5, CAR});
    assert_true(sup[0] == 1 && sup[1] == 1 && sup[2] == 1);
    assert_int_equal(qr_boxes_consensus(l_one, c1, 1, 0.5, out, NULL, 1), 1);
    expect_box(out[0], (qr_box_t){20, 0, 5, 5, ORG});
    assert_int_equal(qr_boxes_consensus(NULL, NULL, 0, 0.5, out, sup, 8), 0);
}

static void test_boxes_consensus_clusters(void **state)
{
    (void)state;
    qr_box_t out[8];
    size_t sup[8];
    /* One annotator's two boxes never share a cluster: annotator 0 drew two
     * boxes on annotator 1's one, both at IoU 9/11; on that tie the first in
     * input order joins it, the other stays alone (support 1 of 2). */
    qr_box_t twice[] = {{0, 0, 10, 10, CAR}, {2, 0, 10, 10, CAR}}, once[] = {{1, 0, 10, 10, CAR}};
    const qr_box_t *l2[] = {twice, once};
    size_t c2[] = {2, 1};
    assert_int_equal(qr_boxes_consensus(l2, c2, 2, 0.5, out, sup, 8), 1);
    expect_box(out[0], (qr_box_t){0.5, 0, 10, 10, CAR});
    assert_int_equal(sup[0], 2);
    /* Complete linkage: x at 0, 1.5 and 4; A-B 8.5/11.5, B-C 7.5/12.5, but
     * A-C 6/14 (< 0.5). B joins A first; C matches B but not A, so it stays
     * out (a chain would have taken it: support 3). */
    qr_box_t A[] = {{0, 0, 10, 10, CAR}}, B[] = {{1.5, 0, 10, 10, CAR}};
    qr_box_t C2[] = {{4, 0, 10, 10, CAR}};
    const qr_box_t *chain[] = {A, B, C2};
    size_t c3[] = {1, 1, 1};
    assert_int_equal(qr_boxes_consensus(chain, c3, 3, 0.5, out, sup, 8), 1);
    expect_box(out[0], (qr_box_t){0.75, 0, 10, 10, CAR});
    assert_int_equal(sup[0], 2);
    /* x at 0, 1 and 3: A-B 9/11, B-C 8/12, A-C 7/13; all three join. */
    qr_box_t B1[] = {{1, 0, 10, 10, CAR}}, C[] = {{3, 0, 10, 10, CAR}};
    const qr_box_t *close[] = {A, B1, C};
    assert_int_equal(qr_boxes_consensus(close, c3, 3, 0.5, out, sup, 8), 1);
    expect_box(out[0], (qr_box_t){4.0 / 3.0, 0, 10, 10, CAR});
    assert_int_equal(sup[0], 3);
    /* Two pairs that grew apart merge when every cross pair matches:
     * {0, 0.25} and {1, 1.25} (x offsets) become one cluster of 4. */
    qr_box_t p0[] = {{0, 0, 10, 10, CAR}}, p1[] = {{0.25, 0, 10, 10, CAR}};
    qr_box_t p2[] = {{1, 0, 10, 10, CAR}}, p3[] = {{1.25, 0, 10, 10, CAR}};
    const qr_box_t *pairs[] = {p0, p1, p2, p3};
    size_t c4[] = {1, 1, 1, 1};
    assert_int_equal(qr_boxes_consensus(pairs, c4, 4, 0.5, out, sup, 8), 1);
    expect_box(out[0], (qr_box_t){0.625, 0, 10, 10, CAR});
    assert_int_equal(sup[0], 4);
}

static void test_boxes_consensus_identical_crew(void **state)
{
    (void)state;
    /* Five annotators draw the same three boxes, two of which overlap each
     * other above the threshold (IoU 9/11): the consensus is those three
     * boxes, each backed by all five. */
    qr_box_t truth[] = {{0, 0, 10, 10, CAR}, {1, 0, 10, 10, CAR}, {60, 60, 20, 20, ORG}};
    const qr_box_t *lists[] = {truth, truth, truth, truth, truth};
    size_t counts[] = {3, 3, 3, 3, 3};
    qr_box_t out[8];
    size_t sup[8];
    assert_int_equal(qr_boxes_consensus(lists, counts, 5, 0.5, out, sup, 8), 3);
    expect_box(out[0], truth[2]);
    expect_box(out[1], truth[0]);
    expect_box(out[2], truth[1]);
    assert_true(sup[0] == 5 && sup[1] == 5 && sup[2] == 5);
    /* And the spans of such a crew are the truth too. */
    qr_span_t st[] = {{0, 5, ORG}, {3, 9, PER}};
    const qr_span_t *sl[] = {st, st, st, st, st};
    size_t sc[] = {2, 2, 2, 2, 2};
    qr_span_t so[4];
    assert_int_equal(qr_spans_consensus(sl, sc, 5, so, sup, 4), 2);
    assert_true(so[0].start == 0 && so[1].start == 3 && sup[0] == 5 && sup[1] == 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans_hand),
        cmocka_unit_test(test_spans_empty),
        cmocka_unit_test(test_spans_many_to_one),
        cmocka_unit_test(test_spans_unsorted_input),
        cmocka_unit_test(test_spans_against_brute_force),
        cmocka_unit_test(test_spans_large),
        cmocka_unit_test(test_box_iou),
        cmocka_unit_test(test_boxes_match_hand),
        cmocka_unit_test(test_boxes_threshold_exact),
        cmocka_unit_test(test_boxes_optimal_beats_greedy),
        cmocka_unit_test(test_boxes_many_to_one),
        cmocka_unit_test(test_boxes_against_brute_force),
        cmocka_unit_test(test_spans_consensus),
        cmocka_unit_test(test_boxes_consensus),
        cmocka_unit_test(test_boxes_consensus_clusters),
        cmocka_unit_test(test_boxes_consensus_identical_crew),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
