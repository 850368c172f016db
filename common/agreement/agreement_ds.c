/*
 * agreement_ds.c - the Dawid-Skene consensus (agreement_ds.h): EM over
 * per-annotator confusion matrices, from the soft majority vote, and the
 * bridge that runs it on an agreement set in its report's order.
 *
 * Layout, for speed without giving up determinism: the judgements are
 * counting-sorted once into item order (CSR: item i's judgements are
 * positions istart[i]..istart[i+1]), each position holding one number, its
 * "cell" a K + l (annotator a, label l), sorted by cell within an item. Both
 * steps then walk the positions front to back. The confusion counts and
 * their logarithms are kept transposed, [a][l][k], so that what one
 * judgement adds to or reads from is K doubles in a row. Nothing is
 * allocated per judgement or per iteration.
 */
#include "agreement_ds.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement_internal.h"

void qr_dawid_skene_options_init(qr_dawid_skene_options_t *o)
{
    o->tolerance = QR_DAWID_SKENE_TOLERANCE;
    o->max_iterations = QR_DAWID_SKENE_MAX_ITERATIONS;
    o->smoothing = QR_DAWID_SKENE_SMOOTHING;
}

void qr_dawid_skene_free(qr_dawid_skene_t *r)
{
    free(r->label);
    free(r->support);
    free(r->posterior);
    free(r->prior);
    free(r->confusion);
    free(r->accuracy);
    free(r->judgements);
    memset(r, 0, sizeof(*r));
}

static int fail_with(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_with(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The working state of one run; the arrays of r are the results. */
typedef struct {
    uint32_t ni, na, K;
    double s;          /* smoothing */
    uint32_t *istart;  /* ni + 1: item i's positions */
    uint32_t *cell;    /* per position: annotator K + label */
    uint32_t judged;   /* items with at least one judgement */
    double *count;     /* na K K, [a][l][k]: sum of T[i][k] over a's judgements l, for the
                        * next M-step */
    double *class_sum; /* K: sum over judged items of T[i][k], for the next M-step */
    double *pi;        /* na K K, [a][l][k]: pi[a][k][l], from the last M-step */
    double *logpi;     /* na K K: their logarithms */
    double *logp;      /* K: log p[k] */
    double *score;     /* K: one item's log joint, then its exponentials; the M-step's row
                        * sums */
    qr_dawid_skene_t *r;
} ds_t;

static int cmp_cell(const void *p, const void *q)
{
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    return (x > y) - (x < y);
}

/* Puts the judgements in the CSR layout: grouped by item (a counting sort:
 * two passes that read the input in order), then each item's cells sorted
 * (insertion sort for the few an item usually has), so that within an item
 * they run by annotator, then label: an order that the order of input does
 * not change. Equal cells are equal numbers, so no sort needs to be stable.
 * Counts each annotator's judgements on the way. */
static void layout(ds_t *d, size_t n, const uint32_t *item, const uint32_t *annotator,
                   const uint32_t *label)
{
    for (size_t j = 0; j < n; j++) {
        d->istart[item[j] + 1]++;
        d->r->judgements[annotator[j]]++;
    }
    for (uint32_t i = 0; i < d->ni; i++) {
        d->judged += d->istart[i + 1] > 0;
        d->istart[i + 1] += d->istart[i];
    }
    /* istart[i] is used as item i's fill pointer, which leaves it at
     * item i + 1's start: shifted back afterwards. */
    for (size_t j = 0; j < n; j++)
        d->cell[d->istart[item[j]]++] = annotator[j] * d->K + label[j];
    for (uint32_t i = d->ni; i > 0; i--)
        d->istart[i] = d->istart[i - 1];
    d->istart[0] = 0;
    for (uint32_t i = 0; i < d->ni; i++) {
        uint32_t *c = d->cell + d->istart[i], m = d->istart[i + 1] - d->istart[i];
        if (m > 32) {
            qsort(c, m, sizeof(*c), cmp_cell);
            continue;
        }
        for (uint32_t x = 1; x < m; x++) {
            uint32_t v = c[x], y = x;
            for (; y > 0 && c[y - 1] > v; y--)
                c[y] = c[y - 1];
            c[y] = v;
        }
    }
}

/* Adds the posterior t of the item whose judgements are positions b..e to
 * the counts the next M-step reads. Items in index order, so that every sum
 * is taken in one order. */
static inline void add_counts(ds_t *d, uint32_t b, uint32_t e, const double *t)
{
    const uint32_t K = d->K;

    for (uint32_t p = b; p < e; p++) {
        double *c = d->count + (size_t)d->cell[p] * K;
        for (uint32_t k = 0; k < K; k++)
            c[k] += t[k];
    }
    for (uint32_t k = 0; k < K; k++)
        d->class_sum[k] += t[k];
}

/* The soft majority vote, T[i][k] = share of item i's judgements saying k,
 * and its counts. */
static void start(ds_t *d)
{
    const uint32_t K = d->K;

    for (uint32_t i = 0; i < d->ni; i++) {
        double *t = d->r->posterior + (size_t)i * K;
        uint32_t b = d->istart[i], e = d->istart[i + 1];
        if (b == e)
            continue;
        for (uint32_t p = b; p < e; p++)
            t[d->cell[p] % K] += 1;
        for (uint32_t k = 0; k < K; k++)
            t[k] /= (double)(e - b);
        add_counts(d, b, e, t);
    }
}

/* The M-step: the class prior (into r->prior) and the confusion matrices
 * from the counts of the posteriors, with their logarithms for the
 * E-step. */
static void m_step(ds_t *d)
{
    const uint32_t K = d->K;
    const double s = d->s;
    double *row = d->score;

    for (uint32_t k = 0; k < K; k++) {
        d->r->prior[k] = (d->class_sum[k] + s) / ((double)d->judged + K * s);
        d->logp[k] = log(d->r->prior[k]);
    }
    for (uint32_t a = 0; a < d->na; a++) {
        const size_t at = (size_t)a * K * K;
        const double *c = d->count + at;
        memset(row, 0, K * sizeof(double));
        for (uint32_t l = 0; l < K; l++)
            for (uint32_t k = 0; k < K; k++)
                row[k] += c[(size_t)l * K + k];
        for (uint32_t l = 0; l < K; l++) {
            for (uint32_t k = 0; k < K; k++) {
                size_t x = at + (size_t)l * K + k;
                d->pi[x] = (d->count[x] + s) / (row[k] + K * s);
                d->logpi[x] = log(d->pi[x]);
            }
        }
    }
}

/* The E-step: every judged item's posterior under the parameters of the
 * last M-step, and the counts of the next one (added while the item is at
 * hand, which saves a pass over every judgement). Sets r->log_likelihood;
 * returns the largest change of any T[i][k]. */
static double e_step(ds_t *d)
{
    const uint32_t K = d->K;
    double change = 0, tops = 0, prod = 1;
    long scale = 0; /* log L = tops + log(prod) + scale log 2: one log a step, not one an item */
    double *sc = d->score;

    memset(d->count, 0, (size_t)d->na * K * K * sizeof(double));
    memset(d->class_sum, 0, K * sizeof(double));
    for (uint32_t i = 0; i < d->ni; i++) {
        uint32_t b = d->istart[i], e = d->istart[i + 1];
        if (b == e)
            continue;
        double *t = d->r->posterior + (size_t)i * K;
        memcpy(sc, d->logp, K * sizeof(double));
        for (uint32_t p = b; p < e; p++) {
            const double *lp = d->logpi + (size_t)d->cell[p] * K;
            for (uint32_t k = 0; k < K; k++)
                sc[k] += lp[k];
        }
        double top = sc[0], sum = 0;
        for (uint32_t k = 1; k < K; k++)
            top = sc[k] > top ? sc[k] : top;
        for (uint32_t k = 0; k < K; k++) {
            sc[k] = exp(sc[k] - top);
            sum += sc[k];
        }
        /* sum is in [1, K]: prod only grows, and is brought back below
         * 2^900 exactly, by its binary exponent. */
        tops += top;
        prod *= sum;
        if (prod > 0x1p900) {
            int x;
            prod = frexp(prod, &x);
            scale += x;
        }
        const double inv = 1 / sum;
        for (uint32_t k = 0; k < K; k++) {
            double v = sc[k] * inv, dv = fabs(v - t[k]);
            change = dv > change ? dv : change;
            t[k] = v;
        }
        add_counts(d, b, e, t);
    }
    d->r->log_likelihood = tops + (log(prod) + (double)scale * 0.693147180559945309417);
    return change;
}

/* The results that follow from the last M-step and E-step: each item's
 * label and support, the confusion matrices in [a][k][l] order, and each
 * annotator's accuracy. */
static void finish(ds_t *d)
{
    const uint32_t K = d->K;
    qr_dawid_skene_t *r = d->r;

    for (uint32_t i = 0; i < d->ni; i++) {
        const double *t = r->posterior + (size_t)i * K;
        r->label[i] = -1;
        if (d->istart[i + 1] == d->istart[i])
            continue;
        uint32_t best = 0;
        for (uint32_t k = 1; k < K; k++)
            best = t[k] > t[best] ? k : best;
        r->label[i] = (int32_t)best;
        r->support[i] = t[best];
    }
    for (uint32_t a = 0; a < d->na; a++) {
        const double *from = d->pi + (size_t)a * K * K;
        double *to = r->confusion + (size_t)a * K * K, acc = 0;
        for (uint32_t k = 0; k < K; k++) {
            for (uint32_t l = 0; l < K; l++)
                to[(size_t)k * K + l] = from[(size_t)l * K + k];
            acc += r->prior[k] * to[(size_t)k * K + k];
        }
        r->accuracy[a] = acc;
    }
}

int qr_dawid_skene_run(size_t n, const uint32_t *item, const uint32_t *annotator,
                       const uint32_t *label, uint32_t items, uint32_t annotators, uint32_t labels,
                       const qr_dawid_skene_options_t *opt, qr_dawid_skene_t *out, char *err,
                       size_t errlen)
{
    qr_dawid_skene_options_t defaults;
    const uint32_t K = labels;
    const uint64_t ncell = (uint64_t)annotators * K * K;
    ds_t d = {.ni = items, .na = annotators, .K = K, .r = out};
    int rc = -ENOMEM;

    memset(out, 0, sizeof(*out));
    if (errlen > 0)
        err[0] = '\0';
    if (!opt) {
        qr_dawid_skene_options_init(&defaults);
        opt = &defaults;
    }
    if (!(opt->tolerance >= 0) || opt->max_iterations < 1 || !(opt->smoothing > 0) ||
        !isfinite(opt->smoothing))
        return fail_with(err, errlen, QR_EINVAL,
                         "Dawid-Skene needs a tolerance >= 0, at least one iteration and a "
                         "smoothing > 0");
    if (n > UINT32_MAX - 1)
        return fail_with(err, errlen, QR_ETOOBIG, "Dawid-Skene takes at most %u judgements",
                         UINT32_MAX - 1);
    if (ncell > QR_DAWID_SKENE_MAX_CELLS)
        return fail_with(err, errlen, QR_ETOOBIG,
                         "Dawid-Skene over %u annotators and %u labels needs %llu confusion "
                         "cells; the limit is %llu",
                         annotators, K, (unsigned long long)ncell,
                         (unsigned long long)QR_DAWID_SKENE_MAX_CELLS);
    if ((uint64_t)items * K > (UINT64_C(1) << 31))
        return fail_with(err, errlen, QR_ETOOBIG,
                         "Dawid-Skene over %u items and %u labels is past its limit of 2^31 "
                         "posteriors",
                         items, K);
    for (size_t j = 0; j < n; j++) {
        if (item[j] >= items || annotator[j] >= annotators || label[j] >= K)
            return fail_with(err, errlen, QR_EINVAL,
                             "judgement %zu: item %u, annotator %u or label %u is out of range "
                             "(%u items, %u annotators, %u labels)",
                             j, item[j], annotator[j], label[j], items, annotators, K);
    }

    out->items = items;
    out->annotators = annotators;
    out->labels = K;
    out->tolerance = opt->tolerance;
    out->max_iterations = opt->max_iterations;
    out->smoothing = d.s = opt->smoothing;
    /* One spare element each, so that no size is 0. */
    out->label = malloc((size_t)items * sizeof(int32_t) + 1);
    out->support = calloc((size_t)items + 1, sizeof(double));
    out->posterior = calloc((size_t)items * K + 1, sizeof(double));
    out->prior = calloc((size_t)K + 1, sizeof(double));
    out->confusion = calloc(ncell + 1, sizeof(double));
    out->accuracy = calloc((size_t)annotators + 1, sizeof(double));
    out->judgements = calloc((size_t)annotators + 1, sizeof(uint64_t));
    d.istart = calloc((size_t)items + 1, sizeof(uint32_t));
    d.cell = malloc(n * sizeof(uint32_t) + 1);
    d.count = calloc(ncell + 1, sizeof(double));
    d.pi = malloc(ncell * sizeof(double) + 1);
    d.logpi = malloc(ncell * sizeof(double) + 1);
    d.class_sum = calloc((size_t)K + 1, sizeof(double));
    d.logp = malloc(K * sizeof(double) + 1);
    d.score = malloc(K * sizeof(double) + 1);
    if (!out->label || !out->support || !out->posterior || !out->prior || !out->confusion ||
        !out->accuracy || !out->judgements || !d.istart || !d.cell || !d.count || !d.pi ||
        !d.logpi || !d.class_sum || !d.logp || !d.score) {
        fail_with(err, errlen, rc, "out of memory for Dawid-Skene over %zu judgements", n);
        goto fail;
    }

    layout(&d, n, item, annotator, label);
    if (K == 0) {
        /* No label, so no judgement: nothing to estimate. */
        for (uint32_t i = 0; i < items; i++)
            out->label[i] = -1;
        out->converged = 1;
    } else {
        double before = 0;
        start(&d);
        while (out->iterations < opt->max_iterations) {
            m_step(&d);
            out->max_change = e_step(&d);
            if (out->iterations++ > 0 &&
                fabs(out->log_likelihood - before) <= opt->tolerance * (double)n) {
                out->converged = 1;
                break;
            }
            before = out->log_likelihood;
        }
        finish(&d);
    }
    rc = 0;
fail:
    free(d.istart);
    free(d.cell);
    free(d.count);
    free(d.pi);
    free(d.logpi);
    free(d.class_sum);
    free(d.logp);
    free(d.score);
    if (rc != 0)
        qr_dawid_skene_free(out);
    return rc;
}

/* Position of every id of t in the report's order (rank[id]), from
 * qr_agr_sort_ids(). */
static uint32_t *ranks_of(const qr_strtab_t *t, const double *values)
{
    uint32_t *by_rank = qr_xmalloc((size_t)t->n * sizeof(uint32_t) + 1);
    uint32_t *rank = qr_xmalloc((size_t)t->n * sizeof(uint32_t) + 1);

    qr_agr_sort_ids(t, values, by_rank);
    for (uint32_t r = 0; r < t->n; r++)
        rank[by_rank[r]] = r;
    free(by_rank);
    return rank;
}

static const double *label_values(const qr_agreement_t *a)
{
    return qr_agr_labels_numeric(a) ? a->label_value : NULL;
}

int qr_dawid_skene_agreement(const qr_agreement_t *a, const qr_dawid_skene_options_t *opt,
                             qr_dawid_skene_t *out, char *err, size_t errlen)
{
    const size_t n = a->n;
    uint32_t *item = malloc(n * sizeof(uint32_t) + 1);
    uint32_t *ann = malloc(n * sizeof(uint32_t) + 1);
    uint32_t *lab = malloc(n * sizeof(uint32_t) + 1);
    int rc;

    if (!item || !ann || !lab) {
        free(item);
        free(ann);
        free(lab);
        memset(out, 0, sizeof(*out));
        return fail_with(err, errlen, -ENOMEM, "out of memory for Dawid-Skene over %zu judgements",
                         n);
    }
    uint32_t *item_rank = ranks_of(&a->items, NULL);
    uint32_t *ann_rank = ranks_of(&a->annotators, NULL);
    uint32_t *lab_rank = ranks_of(&a->labels, label_values(a));

    if (a->grouped) {
        for (uint32_t i = 0; i < a->items.n; i++)
            for (uint32_t j = a->item_end[i]; j < a->item_end[i + 1]; j++)
                item[j] = item_rank[i];
    } else {
        for (size_t j = 0; j < n; j++)
            item[j] = item_rank[a->j_item[j]];
    }
    for (size_t j = 0; j < n; j++) {
        ann[j] = ann_rank[qr_agr_ann_of(a, j)];
        lab[j] = lab_rank[qr_agr_label_of(a, j)];
    }
    free(item_rank);
    free(ann_rank);
    free(lab_rank);
    rc = qr_dawid_skene_run(n, item, ann, lab, a->items.n, a->annotators.n, a->labels.n, opt, out,
                            err, errlen);
    free(item);
    free(ann);
    free(lab);
    return rc;
}

void qr_dawid_skene_label_names(const qr_agreement_t *a, const char **name, size_t *len)
{
    uint32_t *by_rank = qr_xmalloc((size_t)a->labels.n * sizeof(uint32_t) + 1);

    qr_agr_sort_ids(&a->labels, label_values(a), by_rank);
    for (uint32_t k = 0; k < a->labels.n; k++) {
        name[k] = qr_strtab_str(&a->labels, by_rank[k]);
        len[k] = qr_strtab_len(&a->labels, by_rank[k]);
    }
    free(by_rank);
}

/* The name of the annotator at position a of the report's "per_annotator". */
static const char *annotator_name(const json_t *report, uint32_t a)
{
    const json_t *e = json_array_get(json_object_get(report, "per_annotator"), a);
    return json_string_value(json_object_get(e, "annotator"));
}

json_t *qr_dawid_skene_json(const qr_dawid_skene_t *r, const char *const *label,
                            const json_t *report)
{
    json_t *o = json_object(), *priors = json_object(), *anns = json_array();

    json_object_set_new(o, "iterations", json_integer(r->iterations));
    json_object_set_new(o, "converged", json_boolean(r->converged));
    json_object_set_new(o, "log_likelihood", json_real(r->log_likelihood));
    json_object_set_new(o, "tolerance", json_real(r->tolerance));
    json_object_set_new(o, "max_iterations", json_integer(r->max_iterations));
    json_object_set_new(o, "smoothing", json_real(r->smoothing));
    for (uint32_t k = 0; k < r->labels; k++)
        json_object_set_new(priors, label[k], json_real(r->prior[k]));
    json_object_set_new(o, "priors", priors);
    for (uint32_t a = 0; a < r->annotators; a++) {
        const char *name = annotator_name(report, a);
        json_array_append_new(anns, json_pack("{s:s?, s:I, s:f}", "annotator", name, "judgements",
                                              (json_int_t)r->judgements[a], "estimated_accuracy",
                                              r->accuracy[a]));
    }
    json_object_set_new(o, "per_annotator", anns);
    return o;
}
