/*
 * ds_fit.h - the Dawid-Skene model of a project's crew (issue 16, point 7),
 * loaded from PostgreSQL and fitted off the loop: what the consensus export
 * (method=dawid_skene) and review selection by the model's doubt
 * (POST .../reviews/select) both read, so the two see the same posteriors
 * for the same judgements.
 *
 * A fit reads every judgement of the project as of a snapshot in one
 * statement (QR_SQL_EXPORT_DS_JUDGEMENTS: each task one item, its
 * annotations of every round, live or undone after the snapshot; labels
 * indexed in byte order), then turns the text into dense indexes and runs
 * qr_dawid_skene_run on libuv's thread pool. The fit is deterministic
 * (agreement_ds.h): the same judgements give the same bits.
 */
#ifndef QR_DS_FIT_H
#define QR_DS_FIT_H

#include <stdint.h>
#include <uv.h>

#include "agreement_ds.h"
#include "pg.h"

typedef struct qr_ds_fit_s qr_ds_fit_t;

/* Called once with status 0 (the fit is in f) or a negative code, with
 * f->failed naming what failed ("PostgreSQL", "the Dawid-Skene fit") and
 * f->err the reason. f stays the caller's. */
typedef void (*qr_ds_fit_cb)(qr_ds_fit_t *f, int status, void *arg);

struct qr_ds_fit_s {
    /* The result, once the callback had status 0. */
    int64_t *task;    /* per item: its task id, ascending */
    char **labels;    /* per label index: the label */
    uint32_t nlabels; /* labels given in the judgements */
    qr_dawid_skene_t fit;
    char *snapshot;     /* the snapshot the judgements were read as of (pg_snapshot text) */
    const char *failed; /* on failure: what failed (static) */
    char err[200];      /* on failure: why */
    /* Private. */
    uv_work_t work;
    uv_loop_t *loop;
    qr_pg_t *pg;
    qr_ds_fit_cb cb;
    void *arg;
    char project[24], org[24];
    char *labels_text, *judgements_text; /* the query's answer, until parsed */
    int rc;                              /* of the parse and the fit */
};

/*
 * Starts fitting project's crew model into f (zeroed by the caller, then
 * freed with qr_ds_fit_free once the callback ran, or once this call
 * failed). snapshot: the
 * pg_snapshot text to read as of (copied), or NULL for the present (one
 * more statement takes it). org: 0 for every annotator, else only the
 * annotators of that organization (a vendor's export). Returns 0 and calls
 * cb exactly once, later; or a negative code (the pool is closing) without
 * calling it.
 */
QR_MUST_CHECK int qr_ds_fit_start(qr_ds_fit_t *f, uv_loop_t *loop, qr_pg_t *pg, int64_t project,
                                  const char *snapshot, int64_t org, qr_ds_fit_cb cb, void *arg);

/* The item index of task in a fit, or -1 when the fit has no judgement of it. */
int64_t qr_ds_fit_item(const qr_ds_fit_t *f, int64_t task);

/* Frees what f holds (not f); never while a fit is running. */
void qr_ds_fit_free(qr_ds_fit_t *f);

#endif
