/*
 * agreement_ds.h - the Dawid-Skene consensus (issue 16 point 7): a label per
 * item weighted by each annotator's estimated skill, and that skill.
 *
 * The model (Dawid and Skene, 1979): each item has one true label k, drawn
 * with the class prior p[k]; annotator a, shown an item whose truth is k,
 * answers l with probability pi[a][k][l] (their confusion matrix), every
 * judgement independently of the others given the truth. Expectation-
 * maximisation fits p and pi and gives each item a posterior over its
 * truth:
 *
 *   start: T[i][k] = share of item i's judgements that say k (the soft
 *          majority vote);
 *   M-step: p[k] = (sum_i T[i][k] + s) / (items + K s),
 *           pi[a][k][l] = (sum over a's judgements l on item i of T[i][k] + s)
 *                         / (sum over all a's judgements of T[i][k] + K s),
 *           s being the smoothing pseudo-count (a Dirichlet prior) that keeps
 *           every probability above 0;
 *   E-step: T[i][k] proportional to p[k] * prod_j pi[a_j][k][l_j] over item
 *           i's judgements j (summed as logarithms, so no product underflows);
 *
 * one iteration being an M-step and then an E-step. The run stops when an
 * iteration changed the log-likelihood by no more than the tolerance per
 * judgement (|L_t - L_t-1| <= tolerance n; the first iteration has nothing
 * to compare with, so a run takes two unless capped at one), or at the
 * iteration cap. On the likelihood, not on each posterior: near the optimum
 * EM creeps along flat directions (on a crew of 5 at mixed accuracies, the
 * posteriors still move by 1e-6 after 100 iterations while the estimates
 * have not changed in the fourth decimal since the twentieth), and where the
 * model cannot be identified (one annotator alone) the likelihood is flat
 * and the posteriors would drift for as long as they are let. The
 * parameters returned are the ones the last E-step used, so the posteriors,
 * the parameters and the log-likelihood describe one and the same model.
 *
 * Deterministic: the judgements are put in (item, annotator, label) order
 * before anything is summed, every loop runs in index order, equal posteriors
 * are resolved to the lowest label index, there is no randomness and no
 * thread; the same judgements in any order give the same bits.
 *
 * Pure: no I/O, no global state; the functions are thread-safe on distinct
 * results. Costs O(n + items K + annotators K^2) memory and, per iteration,
 * O(n K + items K + annotators K^2) time.
 */
#ifndef QR_AGREEMENT_DS_H
#define QR_AGREEMENT_DS_H

#include <stddef.h>
#include <stdint.h>

#include "agreement.h"
#include "util.h"

#define QR_DAWID_SKENE_TOLERANCE      1e-6 /* default: log-likelihood change per judgement */
#define QR_DAWID_SKENE_MAX_ITERATIONS 100  /* default iteration cap */
#define QR_DAWID_SKENE_SMOOTHING      0.01 /* default pseudo-count per cell */

/* The most confusion cells (annotators x labels x labels) a run takes: 2^25,
 * 256 MiB for each of the two tables of doubles it keeps. */
#define QR_DAWID_SKENE_MAX_CELLS (UINT64_C(1) << 25)

typedef struct {
    double tolerance;        /* converged when the last iteration changed the log-likelihood
                              * by at most this per judgement (>= 0) */
    unsigned max_iterations; /* stop after this many iterations (>= 1) */
    double smoothing;        /* pseudo-count added to every confusion cell and every class
                              * count (> 0) */
} qr_dawid_skene_options_t;

/* Sets o to the defaults above. */
void qr_dawid_skene_options_init(qr_dawid_skene_options_t *o);

/*
 * A run's result. Items, annotators and labels are the caller's indexes.
 * Every array is owned by the result: free them with qr_dawid_skene_free().
 */
typedef struct {
    uint32_t items, annotators, labels; /* the counts given (labels is K) */
    int32_t *label;        /* per item: the consensus (highest posterior, lowest index among
                            * equal ones), or -1 for an item without a judgement */
    double *support;       /* per item: the consensus's posterior, 0 without a judgement */
    double *posterior;     /* items x K, row-major: T[i][k]; a row of 0 without a judgement */
    double *prior;         /* K: the class prior p[k] */
    double *confusion;     /* annotators x K x K: pi[a][k][l] at [(a K + k) K + l] */
    double *accuracy;      /* per annotator: sum_k p[k] pi[a][k][k], the chance that they
                            * answer right on an item drawn from the prior */
    uint64_t *judgements;  /* per annotator: judgements given */
    unsigned iterations;   /* iterations run */
    int converged;         /* 1 when the last one changed the log-likelihood by no more than
                            * the tolerance per judgement, 0 when the cap stopped it */
    double max_change;     /* the largest change of a posterior T[i][k] in the last
                            * iteration, for information */
    double log_likelihood; /* natural log of P(judgements | p, pi), 0 with no judgement */
    double tolerance;      /* the options the run used */
    unsigned max_iterations;
    double smoothing;
} qr_dawid_skene_t;

/*
 * Runs Dawid-Skene on n judgements given as parallel arrays: judgement j is
 * annotator annotator[j]'s label label[j] for item item[j], each index below
 * its count (items, annotators, labels = K). An annotator may judge an item
 * more than once; each judgement counts. opt NULL means the defaults.
 *
 * What comes out in the corner cases, never a NaN: an item without a
 * judgement has no label (-1) and support 0; an annotator without a
 * judgement has the uniform confusion rows of the smoothing alone, so an
 * estimated accuracy of 1/K; with K = 1 every judged item gets label 0 with
 * support 1 and every annotator accuracy 1; with no judgement at all the run
 * stops after two iterations, converged, with the uniform prior; with K = 0
 * (which needs n = 0) accuracies are 0. A single annotator's labels are the
 * consensus, with an accuracy near 1: nothing contradicts them.
 *
 * Returns 0 and fills *out (free it with qr_dawid_skene_free()); on error
 * *out holds nothing to free. QR_EINVAL: an index out of range, or an option
 * out of range (the message goes to err, NUL-terminated, when errlen > 0).
 * QR_ETOOBIG: more than QR_DAWID_SKENE_MAX_CELLS confusion cells, items x K
 * past 2^31 or n past 2^32 - 2. -ENOMEM: an allocation failed.
 */
QR_MUST_CHECK int qr_dawid_skene_run(size_t n, const uint32_t *item, const uint32_t *annotator,
                                     const uint32_t *label, uint32_t items, uint32_t annotators,
                                     uint32_t labels, const qr_dawid_skene_options_t *opt,
                                     qr_dawid_skene_t *out, char *err, size_t errlen);

/* Frees what r holds and zeroes it; a zeroed r is a no-op. */
void qr_dawid_skene_free(qr_dawid_skene_t *r);

/*
 * Dawid-Skene over the judgements of an agreement set, indexed as its report
 * lists them (qr_agreement_report): items in the order of the per-item
 * iterator, annotators in the order of "per_annotator", labels in the order
 * of "labels" (name them with qr_dawid_skene_label_names()). Each label is a
 * category of its own, even when the labels are numbers. Does not change a.
 * Same returns as qr_dawid_skene_run().
 */
QR_MUST_CHECK int qr_dawid_skene_agreement(const qr_agreement_t *a,
                                           const qr_dawid_skene_options_t *opt,
                                           qr_dawid_skene_t *out, char *err, size_t errlen);

/* The names of a's labels in the order qr_dawid_skene_agreement() indexes
 * them: name[k] (NUL-terminated) and len[k] for k below its result's K. The
 * names are a's: valid until a is freed or added to. */
void qr_dawid_skene_label_names(const qr_agreement_t *a, const char **name, size_t *len);

/* A fit as the agreement report's "dawid_skene" key: {"iterations",
 * "converged", "log_likelihood", "tolerance", "max_iterations", "smoothing",
 * "priors" (by label, label[k] naming index k), "per_annotator": [{"annotator",
 * "judgements", "estimated_accuracy"}]}, annotator a named as row a of the
 * report's "per_annotator" (qr_dawid_skene_agreement's order). A new
 * reference. */
json_t *qr_dawid_skene_json(const qr_dawid_skene_t *r, const char *const *label,
                            const json_t *report);

#endif
