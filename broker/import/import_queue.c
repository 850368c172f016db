/*
 * import_queue.c - import parses in libuv's thread pool, a few at a time,
 * in FIFO order (see import_queue.h).
 */
#include "import_queue.h"

#include <stdlib.h>

#include "log.h"
#include "util.h"

struct qr_import_queue_s {
    uv_loop_t *loop;
    int parallel;
    int running;                  /* jobs handed to the thread pool */
    int waiting;                  /* jobs on the list */
    qr_import_job_t *head, *tail; /* waiting jobs, oldest first */
    int closing;                  /* qr_import_queue_close was called */
    void (*close_cb)(void *arg);
    void *close_arg;
};

qr_import_queue_t *qr_import_queue_new(uv_loop_t *loop, int parallel)
{
    qr_import_queue_t *q = qr_xcalloc(1, sizeof *q);
    q->loop = loop;
    q->parallel = parallel > 0 ? parallel : 1;
    return q;
}

/* In a worker thread: the parse, touching only the job. */
static void run_parse(uv_work_t *w)
{
    qr_import_job_t *job = w->data;
    qr_thread_background();
    job->err[0] = '\0';
    if (job->format == QR_IMPORT_JSON_ANY)
        job->format = qr_import_sniff(job->body, job->len);
    /* The body's digest: how a re-import of the same file is recognised
     * (sql/0017_imports.sql). The HTTP layer holds the body whole, so it is
     * hashed here, off the loop, beside the parse. */
    qr_sha256_hex(job->body, job->len, job->sha256);
    qr_import_opts_t opts = {.stratify_field = job->stratify_field,
                             .labels = job->labels,
                             .nlabels = job->nlabels,
                             .schema = job->schema,
                             .external_id_key = job->external_id_key,
                             .delimiter = job->delimiter};
    job->rc = qr_import_parse_opts(job->format, job->body, job->len, &opts, &job->limits, &job->imp,
                                   job->err, sizeof job->err);
}

static void pump(qr_import_queue_t *q);

static void maybe_free(qr_import_queue_t *q)
{
    if (!q->closing || q->running || q->waiting)
        return;
    void (*cb)(void *) = q->close_cb;
    void *arg = q->close_arg;
    free(q);
    if (cb)
        cb(arg);
}

static void parsed(uv_work_t *w, int status)
{
    qr_import_job_t *job = w->data;
    qr_import_queue_t *q = job->queue_;
    q->running--;
    if (q->closing && status == 0) {
        qr_import_free(&job->imp);
        status = UV_ECANCELED;
    }
    job->cb_(job, status);
    if (q->closing)
        maybe_free(q);
    else
        pump(q);
}

/* Starts waiting jobs while fewer than parallel run. A job cancelled while
 * it waited is called back without running. */
static void pump(qr_import_queue_t *q)
{
    while (q->head && q->running < q->parallel) {
        qr_import_job_t *job = q->head;
        q->head = job->next_;
        if (!q->head)
            q->tail = NULL;
        q->waiting--;
        if (job->cancelled) {
            job->cb_(job, UV_ECANCELED);
            continue;
        }
        job->work_.data = job;
        int rc = uv_queue_work(q->loop, &job->work_, run_parse, parsed);
        if (rc < 0) {
            qr_warn("import: uv_queue_work: %s", uv_strerror(rc));
            job->cb_(job, rc);
            continue;
        }
        q->running++;
    }
}

int qr_import_queue_submit(qr_import_queue_t *q, qr_import_job_t *job, qr_import_done_cb cb)
{
    if (q->closing)
        return UV_ECANCELED;
    job->queue_ = q;
    job->cb_ = cb;
    job->next_ = NULL;
    job->rc = 0;
    job->err[0] = '\0';
    if (!q->head && q->running < q->parallel) {
        /* A free slot: start now, so that a failure is returned, not called back. */
        job->work_.data = job;
        int rc = uv_queue_work(q->loop, &job->work_, run_parse, parsed);
        if (rc < 0)
            return rc;
        q->running++;
        return 0;
    }
    if (q->tail)
        q->tail->next_ = job;
    else
        q->head = job;
    q->tail = job;
    q->waiting++;
    return 0;
}

int qr_import_queue_waiting(const qr_import_queue_t *q)
{
    return q->waiting;
}

int qr_import_queue_running(const qr_import_queue_t *q)
{
    return q->running;
}

void qr_import_queue_close(qr_import_queue_t *q, void (*cb)(void *arg), void *arg)
{
    q->closing = 1;
    q->close_cb = cb;
    q->close_arg = arg;
    while (q->head) {
        qr_import_job_t *job = q->head;
        q->head = job->next_;
        q->waiting--;
        job->cb_(job, UV_ECANCELED);
    }
    q->tail = NULL;
    maybe_free(q);
}
