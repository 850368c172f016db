/*
 * ctl_agreement_ds.h - `quorumctl agreement FILE.csv --method dawid_skene`
 * (issue 16 point 7): the Dawid-Skene consensus of a CSV's judgements and
 * each annotator's estimated accuracy, beside the report of
 * ctl_agreement.c.
 */
#ifndef QR_CTL_AGREEMENT_DS_H
#define QR_CTL_AGREEMENT_DS_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "agreement.h"

typedef struct qr_ctl_ds_s qr_ctl_ds_t;

/* Runs Dawid-Skene (the library's defaults) on a, indexed as a's report
 * lists items, annotators and labels; copies what it needs of a, so a may be
 * handed over or freed afterwards. Returns the exit code: 0 with *out set
 * (free it with qr_ctl_agreement_ds_free()), else non-zero after one line on
 * stderr (2 when the input is past the method's limits). */
int qr_ctl_agreement_ds_new(const qr_agreement_t *a, qr_ctl_ds_t **out);

/* Adds "dawid_skene" to report: {"iterations", "converged",
 * "log_likelihood", "tolerance", "max_iterations", "smoothing", "priors",
 * "per_annotator": [{"annotator", "judgements", "estimated_accuracy"}]},
 * annotators named and ordered as the report's "per_annotator". */
void qr_ctl_agreement_ds_json(const qr_ctl_ds_t *ds, json_t *report);

/* The keys Dawid-Skene adds to the per-item entry at position pos of the
 * report's item iterator, as JSON text that goes in before the entry's
 * closing brace (",\n      \"consensus\": ...,\n      \"support\": ..."), with
 * its length in *len; the text is ds's, valid until the next call. NULL
 * when it cannot be formatted. */
const char *qr_ctl_agreement_ds_item_json(qr_ctl_ds_t *ds, size_t pos, size_t *len);

/* The text section: iterations, convergence, the per-annotator estimated
 * accuracy and, when items is not NULL (the report's iterator; it is
 * rewound), each item's consensus and support. */
void qr_ctl_agreement_ds_text(FILE *out, const qr_ctl_ds_t *ds, const json_t *report,
                              qr_agreement_items_t *items);

/* NULL is a no-op. */
void qr_ctl_agreement_ds_free(qr_ctl_ds_t *ds);

#endif
