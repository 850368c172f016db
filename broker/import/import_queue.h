/*
 * import_queue.h - runs import parses (import.h) in libuv's thread pool, a
 * few at a time, so that a large body is never parsed on the event loop
 * and concurrent imports cannot multiply the parse's memory budget: past
 * `parallel` parses running, jobs wait their turn in FIFO order.
 *
 * Everything here but the parse itself runs on the loop thread.
 */
#ifndef QR_IMPORT_QUEUE_H
#define QR_IMPORT_QUEUE_H

#include <uv.h>

#include "import.h"

typedef struct qr_import_queue_s qr_import_queue_t;
typedef struct qr_import_job_s qr_import_job_t;

/* Called on the loop thread once per submitted job: status 0 when the parse
 * ran (its outcome is in job->rc, job->imp, job->err); UV_ECANCELED when it
 * did not run, or ran but the queue is closing (job->imp is then empty). */
typedef void (*qr_import_done_cb)(qr_import_job_t *job, int status);

/* One parse. The caller owns the job and sets the inputs; body,
 * stratify_field, labels, schema and external_id_key must stay valid until the done
 * callback. The worker
 * thread reads the inputs and writes the outputs, nothing else. */
struct qr_import_job_s {
    /* inputs */
    qr_import_format_t format; /* QR_IMPORT_JSON_ANY is resolved by the worker */
    const char *body;
    size_t len;
    const char *stratify_field; /* may be NULL */
    char *const *labels;        /* the project's labels (import.h, qr_import_opts_t) */
    int nlabels;
    const qr_import_schema_t *schema; /* a label schema project's (import.h), or NULL */
    const char *external_id_key;      /* may be NULL */
    char delimiter;                   /* CSV; 0: detected */
    qr_import_limits_t limits;
    int cancelled; /* set on the loop thread: a job not yet started never runs */
    void *data;    /* free for the caller's use */
    /* outputs */
    int rc;          /* of qr_import_parse_opts */
    char sha256[65]; /* SHA-256 of the body, hex */
    qr_import_t imp;
    char err[512];
    /* private to import_queue.c */
    uv_work_t work_;
    qr_import_queue_t *queue_;
    qr_import_done_cb cb_;
    qr_import_job_t *next_;
};

/* A queue on loop running at most parallel (>= 1) parses at once. */
qr_import_queue_t *qr_import_queue_new(uv_loop_t *loop, int parallel);

/* Queues job; cb runs when it is done (never from inside this call).
 * Returns 0, or UV_ECANCELED if the queue is closing (cb never runs). */
int qr_import_queue_submit(qr_import_queue_t *q, qr_import_job_t *job, qr_import_done_cb cb);

/* Jobs waiting, and parses running now (metrics, tests). */
int qr_import_queue_waiting(const qr_import_queue_t *q);
int qr_import_queue_running(const qr_import_queue_t *q);

/* Closes the queue: waiting jobs are called back at once with UV_ECANCELED,
 * running ones when their parse ends; then the queue is freed and cb(arg)
 * runs (may be NULL). */
void qr_import_queue_close(qr_import_queue_t *q, void (*cb)(void *arg), void *arg);

#endif
