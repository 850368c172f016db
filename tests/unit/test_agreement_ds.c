/*
 * test_agreement_ds.c - the Dawid-Skene consensus (issue 16 point 7,
 * common/agreement/agreement_ds.c): one EM iteration computed by hand; the
 * fixed point checked against a plain reference implementation written
 * here (probabilities, not logarithms); the corner cases (no judgement, one
 * annotator, unanimity, one label, items without judgements, bad input);
 * the same bits from the judgements in any order; the run over an
 * agreement set in its report's order; and the acceptance: on a
 * simulated crew of mixed accuracies, Dawid-Skene beats the majority vote
 * and estimates each annotator's accuracy within 0.05.
 */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "agreement_ds.h"
#include "util.h"

#define EPS 1e-12

/* splitmix64: the tests' own generator, so that no libc rand() decides. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t below(uint64_t *state, uint32_t n)
{
    return (uint32_t)((next_u64(state) >> 11) % n);
}

/* Uniform in [0, 1). */
static double unit(uint64_t *state)
{
    return (double)(next_u64(state) >> 11) / 9007199254740992.0;
}

static void expect_near(double want, double got, double eps, const char *what)
{
    if (!(fabs(want - got) <= eps))
        fail_msg("%s: expected %.15g, got %.15g", what, want, got);
}

/* Every number of r is finite. */
static void expect_finite(const qr_dawid_skene_t *r)
{
    const uint32_t K = r->labels;
    for (size_t i = 0; i < r->items; i++) {
        assert_true(isfinite(r->support[i]));
        for (uint32_t k = 0; k < K; k++)
            assert_true(isfinite(r->posterior[i * K + k]));
    }
    for (uint32_t k = 0; k < K; k++)
        assert_true(isfinite(r->prior[k]));
    for (size_t c = 0; c < (size_t)r->annotators * K * K; c++)
        assert_true(isfinite(r->confusion[c]));
    for (uint32_t a = 0; a < r->annotators; a++)
        assert_true(isfinite(r->accuracy[a]));
    assert_true(isfinite(r->log_likelihood));
    assert_true(isfinite(r->max_change));
}

/* The judgements of a test case. */
typedef struct {
    size_t n;
    uint32_t item[64], ann[64], lab[64];
} small_t;

static void add(small_t *c, uint32_t item, uint32_t ann, uint32_t lab)
{
    assert_true(c->n < 64);
    c->item[c->n] = item;
    c->ann[c->n] = ann;
    c->lab[c->n] = lab;
    c->n++;
}

static int run(const small_t *c, uint32_t items, uint32_t anns, uint32_t K, unsigned max_iter,
               qr_dawid_skene_t *r)
{
    qr_dawid_skene_options_t o;
    char err[200];
    qr_dawid_skene_options_init(&o);
    if (max_iter)
        o.max_iterations = max_iter;
    return qr_dawid_skene_run(c->n, c->item, c->ann, c->lab, items, anns, K, &o, r, err,
                              sizeof(err));
}

/* The tiny case: annotators A (0) and B (1), labels 0 and 1; both say 0 on
 * item 0, both say 1 on item 1, A says 0 and B 1 on item 2. */
static void tiny(small_t *c)
{
    memset(c, 0, sizeof(*c));
    add(c, 0, 0, 0);
    add(c, 0, 1, 0);
    add(c, 1, 0, 1);
    add(c, 1, 1, 1);
    add(c, 2, 0, 0);
    add(c, 2, 1, 1);
}

/*
 * One iteration by hand, smoothing s = 0.01. Start (majority): T0 = (1, 0),
 * T1 = (0, 1), T2 = (0.5, 0.5). M-step: p = ((1.5 + s) / (3 + 2s), ...) =
 * (0.5, 0.5). A's counts: truth 0 -> said 0: T0[0] + T2[0] = 1.5, said 1:
 * T1[0] = 0; truth 1 -> said 0: 0 + 0.5, said 1: 1. So pi_A[0] = (1.51,
 * 0.01) / 1.52 and pi_A[1] = (0.51, 1.01) / 1.52; symmetrically pi_B[0] =
 * (1.01, 0.51) / 1.52 and pi_B[1] = (0.01, 1.51) / 1.52. E-step: item 0 is
 * proportional to (1.51 * 1.01, 0.51 * 0.01) = (1.5251, 0.0051); item 1 to
 * (0.01 * 0.51, 1.01 * 1.51) = (0.0051, 1.5251); item 2 to (1.51 * 0.51,
 * 0.51 * 1.51): a tie, resolved to label 0. Both accuracies are 0.5 * 1.51 /
 * 1.52 + 0.5 * 1.01 / 1.52 = 1.26 / 1.52. The log-likelihood sums, per item,
 * log of sum_k p[k] prod pi: 2 log(0.5 * 1.5302 / 1.52^2) + log(0.7701 /
 * 1.52^2).
 */
static void test_one_iteration_by_hand(void **state)
{
    (void)state;
    small_t c;
    qr_dawid_skene_t r;
    const double q = 1.52;

    tiny(&c);
    assert_int_equal(run(&c, 3, 2, 2, 1, &r), 0);
    expect_finite(&r);
    assert_int_equal(r.iterations, 1);
    assert_int_equal(r.converged, 0);
    expect_near(0.5, r.prior[0], EPS, "p[0]");
    expect_near(0.5, r.prior[1], EPS, "p[1]");
    const double pa[2][2] = {{1.51 / q, 0.01 / q}, {0.51 / q, 1.01 / q}};
    const double pb[2][2] = {{1.01 / q, 0.51 / q}, {0.01 / q, 1.51 / q}};
    for (int k = 0; k < 2; k++) {
        for (int l = 0; l < 2; l++) {
            expect_near(pa[k][l], r.confusion[(0 * 2 + k) * 2 + l], EPS, "pi_A");
            expect_near(pb[k][l], r.confusion[(1 * 2 + k) * 2 + l], EPS, "pi_B");
        }
    }
    const double t0 = 1.5251 / 1.5302;
    expect_near(t0, r.posterior[0], EPS, "T0[0]");
    expect_near(1 - t0, r.posterior[1], EPS, "T0[1]");
    expect_near(1 - t0, r.posterior[2], EPS, "T1[0]");
    expect_near(t0, r.posterior[3], EPS, "T1[1]");
    expect_near(0.5, r.posterior[4], EPS, "T2[0]");
    expect_near(0.5, r.posterior[5], EPS, "T2[1]");
    assert_int_equal(r.label[0], 0);
    assert_int_equal(r.label[1], 1);
    assert_int_equal(r.label[2], 0); /* the tie goes to the lowest label */
    expect_near(t0, r.support[0], EPS, "support 0");
    expect_near(0.5, r.support[2], EPS, "support 2");
    expect_near(1.26 / q, r.accuracy[0], EPS, "accuracy A");
    expect_near(1.26 / q, r.accuracy[1], EPS, "accuracy B");
    assert_int_equal(r.judgements[0], 3);
    assert_int_equal(r.judgements[1], 3);
    expect_near(2 * log(0.5 * 1.5302 / (q * q)) + log(0.7701 / (q * q)), r.log_likelihood, 1e-12,
                "log-likelihood");
    expect_near(1 - t0, r.max_change, EPS, "change");
    qr_dawid_skene_free(&r);
}

/*
 * The reference: one iteration (M-step, then E-step) in plain
 * probabilities, from T into T2 (items x K); returns the log-likelihood.
 */
static double ref_step(const small_t *c, uint32_t ni, uint32_t na, uint32_t K, double s,
                       const double *T, double *T2)
{
    double p[8], cnt[8][8][8] = {{{0}}}, row[8][8] = {{0}}, used = 0, ll = 0;
    int judged[64] = {0};

    assert_true(K <= 8 && na <= 8 && ni <= 64);
    for (size_t j = 0; j < c->n; j++) {
        judged[c->item[j]] = 1;
        for (uint32_t k = 0; k < K; k++) {
            cnt[c->ann[j]][k][c->lab[j]] += T[c->item[j] * K + k];
            row[c->ann[j]][k] += T[c->item[j] * K + k];
        }
    }
    for (uint32_t k = 0; k < K; k++) {
        p[k] = 0;
        for (uint32_t i = 0; i < ni; i++)
            p[k] += T[i * K + k];
    }
    for (uint32_t i = 0; i < ni; i++)
        used += judged[i];
    for (uint32_t k = 0; k < K; k++)
        p[k] = (p[k] + s) / (used + K * s);
    for (uint32_t i = 0; i < ni; i++) {
        double sum = 0;
        if (!judged[i]) {
            for (uint32_t k = 0; k < K; k++)
                T2[i * K + k] = 0;
            continue;
        }
        for (uint32_t k = 0; k < K; k++) {
            double v = p[k];
            for (size_t j = 0; j < c->n; j++)
                if (c->item[j] == i)
                    v *= (cnt[c->ann[j]][k][c->lab[j]] + s) / (row[c->ann[j]][k] + K * s);
            T2[i * K + k] = v;
            sum += v;
        }
        for (uint32_t k = 0; k < K; k++)
            T2[i * K + k] /= sum;
        ll += log(sum);
    }
    return ll;
}

/* The reference run: from the soft majority, iterations of ref_step. */
static double ref_run(const small_t *c, uint32_t ni, uint32_t na, uint32_t K, unsigned iterations,
                      double *T)
{
    double T2[64 * 8], ll = 0;
    int n_of[64] = {0};

    memset(T, 0, sizeof(double) * ni * K);
    for (size_t j = 0; j < c->n; j++) {
        T[c->item[j] * K + c->lab[j]] += 1;
        n_of[c->item[j]]++;
    }
    for (uint32_t i = 0; i < ni; i++)
        for (uint32_t k = 0; k < K && n_of[i]; k++)
            T[i * K + k] /= n_of[i];
    for (unsigned t = 0; t < iterations; t++) {
        ll = ref_step(c, ni, na, K, QR_DAWID_SKENE_SMOOTHING, T, T2);
        memcpy(T, T2, sizeof(double) * ni * K);
    }
    return ll;
}

/* Run to a tight tolerance, the tiny case reaches a fixed point: one more
 * reference iteration moves no posterior by more than 1e-6, and item 2 stays
 * the tie it is by symmetry (up to rounding: which label wins it is not
 * checked). */
static void test_fixed_point(void **state)
{
    (void)state;
    small_t c;
    qr_dawid_skene_t r;
    qr_dawid_skene_options_t o;
    double T2[6];

    tiny(&c);
    qr_dawid_skene_options_init(&o);
    o.tolerance = 1e-15;
    o.max_iterations = 100000;
    assert_int_equal(qr_dawid_skene_run(c.n, c.item, c.ann, c.lab, 3, 2, 2, &o, &r, NULL, 0), 0);
    expect_finite(&r);
    assert_int_equal(r.converged, 1);
    assert_true(r.iterations > 2);
    ref_step(&c, 3, 2, 2, QR_DAWID_SKENE_SMOOTHING, r.posterior, T2);
    for (int x = 0; x < 6; x++)
        expect_near(r.posterior[x], T2[x], 1e-6, "one more iteration");
    assert_int_equal(r.label[0], 0);
    assert_int_equal(r.label[1], 1);
    expect_near(0.5, r.support[2], 1e-9, "the tie stays a tie");
    expect_near(r.support[0], r.support[1], 1e-9, "symmetric items");
    /* A little less sure than after the first iteration (0.99667): at the
     * fixed point, item 2's disagreement weighs on both annotators. */
    assert_true(r.support[0] > 0.99 && r.support[0] < 1.5251 / 1.5302);
    qr_dawid_skene_free(&r);
}

/* A random case of 40 items, 5 annotators (3 an item) and 3 labels: every
 * number after 1, 2, 5 and 30 iterations is the reference's. */
static void test_against_reference(void **state)
{
    (void)state;
    small_t c;
    uint64_t rs = 7;
    double T[64 * 8];

    memset(&c, 0, sizeof(c));
    for (uint32_t i = 0; i < 20; i++) {
        uint32_t first = below(&rs, 5), truth = below(&rs, 3);
        for (uint32_t k = 0; k < 3; k++)
            add(&c, i, (first + k) % 5, unit(&rs) < 0.7 ? truth : below(&rs, 3));
    }
    const unsigned iters[] = {1, 2, 5, 30};
    for (size_t t = 0; t < sizeof(iters) / sizeof(iters[0]); t++) {
        qr_dawid_skene_t r;
        qr_dawid_skene_options_t o;
        qr_dawid_skene_options_init(&o);
        o.max_iterations = iters[t];
        o.tolerance = 0; /* run them all */
        assert_int_equal(qr_dawid_skene_run(c.n, c.item, c.ann, c.lab, 20, 5, 3, &o, &r, NULL, 0),
                         0);
        double ll = ref_run(&c, 20, 5, 3, iters[t], T);
        assert_int_equal(r.iterations, iters[t]);
        for (int x = 0; x < 20 * 3; x++)
            expect_near(T[x], r.posterior[x], 1e-9, "posterior as the reference's");
        expect_near(ll, r.log_likelihood, 1e-9, "log-likelihood as the reference's");
        qr_dawid_skene_free(&r);
    }
}

static void test_degenerate(void **state)
{
    (void)state;
    small_t c;
    qr_dawid_skene_t r;
    char err[200];
    qr_dawid_skene_options_t o;

    /* No judgement: no label, the uniform prior, accuracy 1/K. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(run(&c, 3, 2, 4, 0, &r), 0);
    expect_finite(&r);
    assert_int_equal(r.iterations, 2);
    assert_int_equal(r.converged, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.label[i], -1);
        assert_true(r.support[i] == 0);
    }
    expect_near(0.25, r.prior[3], EPS, "uniform prior");
    expect_near(0.25, r.accuracy[1], EPS, "accuracy 1/K");
    assert_true(r.log_likelihood == 0);
    qr_dawid_skene_free(&r);

    /* No label at all (K = 0). */
    assert_int_equal(run(&c, 2, 2, 0, 0, &r), 0);
    assert_int_equal(r.iterations, 0);
    assert_int_equal(r.converged, 1);
    assert_int_equal(r.label[1], -1);
    assert_true(r.accuracy[0] == 0);
    qr_dawid_skene_free(&r);

    /* Nothing at all. */
    assert_int_equal(run(&c, 0, 0, 0, 0, &r), 0);
    qr_dawid_skene_free(&r);
    qr_dawid_skene_free(&r); /* a zeroed result: a no-op */

    /* One annotator: their labels, accuracy near 1. Item 3 has no
     * judgement; annotator 1 none either. */
    add(&c, 0, 0, 2);
    add(&c, 1, 0, 0);
    add(&c, 2, 0, 1);
    add(&c, 4, 0, 2);
    assert_int_equal(run(&c, 5, 2, 3, 0, &r), 0);
    expect_finite(&r);
    assert_int_equal(r.converged, 1);
    assert_int_equal(r.label[0], 2);
    assert_int_equal(r.label[1], 0);
    assert_int_equal(r.label[2], 1);
    assert_int_equal(r.label[3], -1);
    assert_int_equal(r.label[4], 2);
    assert_true(r.accuracy[0] > 0.95 && r.accuracy[0] <= 1);
    expect_near(1.0 / 3, r.accuracy[1], EPS, "no judgement: accuracy 1/K");
    assert_int_equal(r.judgements[1], 0);
    qr_dawid_skene_free(&r);

    /* Everyone agrees. */
    memset(&c, 0, sizeof(c));
    for (uint32_t i = 0; i < 10; i++)
        for (uint32_t a = 0; a < 3; a++)
            add(&c, i, a, i % 2);
    assert_int_equal(run(&c, 10, 3, 2, 0, &r), 0);
    expect_finite(&r);
    assert_int_equal(r.converged, 1);
    for (uint32_t i = 0; i < 10; i++) {
        assert_int_equal(r.label[i], (int)(i % 2));
        assert_true(r.support[i] > 0.999);
    }
    for (uint32_t a = 0; a < 3; a++)
        assert_true(r.accuracy[a] > 0.99);
    qr_dawid_skene_free(&r);

    /* One label: support 1, accuracy 1, log-likelihood 0. */
    memset(&c, 0, sizeof(c));
    add(&c, 0, 0, 0);
    add(&c, 0, 1, 0);
    add(&c, 1, 1, 0);
    assert_int_equal(run(&c, 2, 2, 1, 0, &r), 0);
    expect_finite(&r);
    assert_int_equal(r.converged, 1);
    assert_int_equal(r.iterations, 2);
    assert_int_equal(r.label[1], 0);
    assert_true(r.support[0] == 1 && r.support[1] == 1);
    assert_true(r.accuracy[0] == 1 && r.accuracy[1] == 1);
    assert_true(r.log_likelihood == 0);
    qr_dawid_skene_free(&r);

    /* Bad input: nothing to free afterwards, and a message. */
    add(&c, 2, 0, 0);
    assert_int_equal(run(&c, 2, 2, 1, 0, &r), QR_EINVAL);
    assert_null(r.label);
    qr_dawid_skene_options_init(&o);
    o.smoothing = 0;
    assert_int_equal(qr_dawid_skene_run(0, NULL, NULL, NULL, 1, 1, 2, &o, &r, err, sizeof(err)),
                     QR_EINVAL);
    assert_non_null(strstr(err, "smoothing"));
    qr_dawid_skene_options_init(&o);
    o.max_iterations = 0;
    assert_int_equal(qr_dawid_skene_run(0, NULL, NULL, NULL, 1, 1, 2, &o, &r, err, sizeof(err)),
                     QR_EINVAL);
    assert_int_equal(
        qr_dawid_skene_run(0, NULL, NULL, NULL, 1, 1u << 20, 1u << 10, NULL, &r, err, sizeof(err)),
        QR_ETOOBIG);
    assert_non_null(strstr(err, "confusion cells"));
}

/* A crew of 5 with 3 an item; judgements in *n. */
typedef struct {
    size_t n;
    uint32_t *item, *ann, *lab, *truth;
} crew_t;

static void crew_free(crew_t *c)
{
    free(c->item);
    free(c->ann);
    free(c->lab);
    free(c->truth);
}

/* items items of K labels with a uniform truth, each judged by 3 distinct
 * annotators of 5 drawn uniformly; annotator a answers the truth with
 * probability acc[a], else one of the other labels, uniformly. */
static void simulate(crew_t *c, uint32_t items, uint32_t K, const double acc[5], uint64_t seed)
{
    uint64_t rs = seed;

    c->n = (size_t)items * 3;
    c->item = qr_xmalloc(c->n * sizeof(uint32_t));
    c->ann = qr_xmalloc(c->n * sizeof(uint32_t));
    c->lab = qr_xmalloc(c->n * sizeof(uint32_t));
    c->truth = qr_xmalloc(items * sizeof(uint32_t));
    for (uint32_t i = 0, j = 0; i < items; i++) {
        uint32_t crew[5] = {0, 1, 2, 3, 4};
        c->truth[i] = below(&rs, K);
        for (uint32_t k = 0; k < 3; k++, j++) {
            uint32_t pick = k + below(&rs, 5 - k), a = crew[pick];
            crew[pick] = crew[k];
            crew[k] = a;
            uint32_t l = c->truth[i];
            if (unit(&rs) >= acc[a])
                l = (l + 1 + below(&rs, K - 1)) % K;
            c->item[j] = i;
            c->ann[j] = a;
            c->lab[j] = l;
        }
    }
}

/* The same judgements, in a shuffled order, give the same bits. Item 500
 * has 40 judgements (the annotators' repeated: each counts), sorted
 * another way than the few of the others. */
static void test_order_does_not_matter(void **state)
{
    (void)state;
    const double acc[5] = {0.9, 0.8, 0.6, 0.5, 0.4};
    crew_t c;
    qr_dawid_skene_t r1, r2;
    uint64_t rs = 99;

    simulate(&c, 501, 4, acc, 3);
    c.n -= 3;
    c.item = qr_xrealloc(c.item, (c.n + 40) * sizeof(uint32_t));
    c.ann = qr_xrealloc(c.ann, (c.n + 40) * sizeof(uint32_t));
    c.lab = qr_xrealloc(c.lab, (c.n + 40) * sizeof(uint32_t));
    for (uint32_t k = 0; k < 40; k++, c.n++) {
        c.item[c.n] = 500;
        c.ann[c.n] = below(&rs, 5);
        c.lab[c.n] = below(&rs, 4);
    }
    assert_int_equal(qr_dawid_skene_run(c.n, c.item, c.ann, c.lab, 501, 5, 4, NULL, &r1, NULL, 0),
                     0);
    assert_int_equal(r1.judgements[0] + r1.judgements[1] + r1.judgements[2] + r1.judgements[3] +
                         r1.judgements[4],
                     500 * 3 + 40);
    for (size_t j = c.n - 1; j > 0; j--) {
        size_t x = below(&rs, (uint32_t)(j + 1));
        uint32_t t;
        t = c.item[j], c.item[j] = c.item[x], c.item[x] = t;
        t = c.ann[j], c.ann[j] = c.ann[x], c.ann[x] = t;
        t = c.lab[j], c.lab[j] = c.lab[x], c.lab[x] = t;
    }
    assert_int_equal(qr_dawid_skene_run(c.n, c.item, c.ann, c.lab, 501, 5, 4, NULL, &r2, NULL, 0),
                     0);
    assert_true(r1.iterations > 2);
    assert_int_equal(r1.iterations, r2.iterations);
    assert_int_equal(r1.converged, r2.converged);
    assert_memory_equal(&r1.log_likelihood, &r2.log_likelihood, sizeof(double));
    assert_memory_equal(&r1.max_change, &r2.max_change, sizeof(double));
    assert_memory_equal(r1.label, r2.label, 501 * sizeof(int32_t));
    assert_memory_equal(r1.support, r2.support, 501 * sizeof(double));
    assert_memory_equal(r1.posterior, r2.posterior, 501 * 4 * sizeof(double));
    assert_memory_equal(r1.prior, r2.prior, 4 * sizeof(double));
    assert_memory_equal(r1.confusion, r2.confusion, 5 * 16 * sizeof(double));
    assert_memory_equal(r1.accuracy, r2.accuracy, 5 * sizeof(double));
    qr_dawid_skene_free(&r1);
    qr_dawid_skene_free(&r2);
    crew_free(&c);
}

/*
 * The acceptance: 5 annotators at accuracies 0.95, 0.9, 0.7, 0.55
 * and 0.55, 3 distinct ones per task, errors uniform over the other labels;
 * 5,000 tasks, K = 4 labels, uniform truth, seed 16. The majority vote breaks
 * its ties (three different labels, or none repeated) uniformly at random
 * (the best it can do without knowing who is good), from a generator of its
 * own. Dawid-Skene's consensus must be right more often, and each estimated
 * accuracy within 0.05 of the simulated one. Prints both accuracies and the
 * estimates.
 */
static void test_simulated_crew(void **state)
{
    (void)state;
    enum { ITEMS = 5000, K = 4 };
    const double acc[5] = {0.95, 0.9, 0.7, 0.55, 0.55};
    crew_t c;
    qr_dawid_skene_t r;
    uint64_t ties = 1616;
    size_t maj_right = 0, ds_right = 0, tied = 0, given[5] = {0}, right[5] = {0};

    simulate(&c, ITEMS, K, acc, 16);
    assert_int_equal(qr_dawid_skene_run(c.n, c.item, c.ann, c.lab, ITEMS, 5, K, NULL, &r, NULL, 0),
                     0);
    expect_finite(&r);
    assert_int_equal(r.converged, 1);
    for (uint32_t i = 0; i < ITEMS; i++) {
        uint32_t votes[K] = {0}, top = 0, best[K], nbest = 0;
        for (uint32_t j = i * 3; j < i * 3 + 3; j++)
            votes[c.lab[j]]++;
        for (uint32_t k = 0; k < K; k++)
            top = votes[k] > top ? votes[k] : top;
        for (uint32_t k = 0; k < K; k++)
            if (votes[k] == top)
                best[nbest++] = k;
        tied += nbest > 1;
        maj_right += best[nbest > 1 ? below(&ties, nbest) : 0] == c.truth[i];
        ds_right += r.label[i] == (int32_t)c.truth[i];
    }
    for (size_t j = 0; j < c.n; j++) {
        given[c.ann[j]]++;
        right[c.ann[j]] += c.lab[j] == c.truth[c.item[j]];
    }
    double maj = (double)maj_right / ITEMS, ds = (double)ds_right / ITEMS;
    print_message("simulated crew: %d tasks, K = %d, 3 of 5 annotators a task, seed 16\n", ITEMS,
                  K);
    print_message("  majority vote (ties at random, %zu tied): accuracy %.4f\n", tied, maj);
    print_message("  Dawid-Skene (%u iterations, converged %d): accuracy %.4f\n", r.iterations,
                  r.converged, ds);
    print_message("  annotator  simulated  in sample  estimated  difference\n");
    for (int a = 0; a < 5; a++)
        print_message("  %9d  %9.2f  %9.4f  %9.4f  %+10.4f\n", a, acc[a],
                      (double)right[a] / (double)given[a], r.accuracy[a], r.accuracy[a] - acc[a]);
    assert_true(ds > maj);
    for (int a = 0; a < 5; a++) {
        assert_int_equal(r.judgements[a], given[a]);
        if (!(fabs(r.accuracy[a] - acc[a]) < 0.05))
            fail_msg("annotator %d: estimated %.4f, simulated %.2f", a, r.accuracy[a], acc[a]);
    }
    qr_dawid_skene_free(&r);
    crew_free(&c);
}

/* Over an agreement set, indexes follow the report: items and annotators in
 * byte order of their names, labels in numeric order when all are numbers. */
static void test_agreement_order(void **state)
{
    (void)state;
    qr_agreement_t *a = qr_agreement_new();
    qr_dawid_skene_t r;
    const char *names[3];
    size_t lens[3];
    const char *rows[][3] = {
        {"t2", "zed", "10"}, {"t2", "amy", "10"},  {"t1", "zed", "9"},   {"t1", "amy", "9"},
        {"t3", "zed", "9"},  {"t3", "amy", "10"},  {"t3", "bob", "10"},  {"t1", "bob", "9"},
        {"t2", "bob", "10"}, {"t4", "bob", "011"}, {"t4", "amy", "011"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(qr_agreement_add(a, rows[i][0], strlen(rows[i][0]), rows[i][1],
                                          strlen(rows[i][1]), rows[i][2], strlen(rows[i][2])),
                         0);
    assert_int_equal(qr_dawid_skene_agreement(a, NULL, &r, NULL, 0), 0);
    assert_int_equal(r.items, 4);
    assert_int_equal(r.annotators, 3);
    assert_int_equal(r.labels, 3);
    qr_dawid_skene_label_names(a, names, lens);
    assert_string_equal(names[0], "9");
    assert_string_equal(names[1], "10");
    assert_string_equal(names[2], "011");
    assert_int_equal(lens[2], 3);
    /* Items t1..t4: 9, 10, 10 (two of three), 011. */
    assert_int_equal(r.label[0], 0);
    assert_int_equal(r.label[1], 1);
    assert_int_equal(r.label[2], 1);
    assert_int_equal(r.label[3], 2);
    /* Annotators amy, bob, zed. */
    assert_int_equal(r.judgements[0], 4);
    assert_int_equal(r.judgements[1], 4);
    assert_int_equal(r.judgements[2], 3);
    assert_true(r.accuracy[2] < r.accuracy[0]); /* zed was the one who differed */
    qr_dawid_skene_free(&r);
    qr_agreement_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_iteration_by_hand), cmocka_unit_test(test_fixed_point),
        cmocka_unit_test(test_against_reference),     cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_order_does_not_matter), cmocka_unit_test(test_simulated_crew),
        cmocka_unit_test(test_agreement_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
