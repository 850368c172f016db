/*
 * ds_fit.c - a project's Dawid-Skene crew model, read from PostgreSQL and
 * fitted on libuv's thread pool (ds_fit.h). The loop only queues the
 * statements and the work; the parse of the judgements' text and the EM
 * run happen in the worker, touching nothing but the fit.
 */
#include "ds_fit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sql_export.h"
#include "util.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void fail(qr_ds_fit_t *f, int status, const char *what, const char *err)
{
    f->failed = what;
    snprintf(f->err, sizeof f->err, "%s", err && *err ? err : "it failed");
    f->cb(f, status, f->arg);
}

/* In a worker thread: the judgements' text ("task annotator label,...", in
 * task and annotator order) to dense indexes (items in task order,
 * annotators in id order), then the fit. Touches only f. */
static void fit_work(uv_work_t *w)
{
    qr_ds_fit_t *f = w->data;
    json_t *labels = json_loads(f->labels_text, 0, NULL);
    f->nlabels = (uint32_t)json_array_size(labels);
    f->labels = qr_xcalloc(f->nlabels + 1, sizeof *f->labels);
    for (uint32_t k = 0; k < f->nlabels; k++)
        f->labels[k] = qr_xstrdup(json_string_value(json_array_get(labels, k)));
    json_decref(labels);
    const char *p = f->judgements_text;
    size_t n = *p ? 1 : 0;
    for (const char *q = p; *q; q++)
        n += *q == ',';
    int64_t *task = qr_xcalloc(n + 1, sizeof *task), *who = qr_xcalloc(n + 1, sizeof *who);
    uint32_t *item = qr_xcalloc(n + 1, sizeof *item), *ann = qr_xcalloc(n + 1, sizeof *ann);
    uint32_t *lab = qr_xcalloc(n + 1, sizeof *lab);
    uint32_t items = 0;
    f->task = qr_xcalloc(n + 1, sizeof *f->task);
    for (size_t j = 0; j < n; j++) {
        char *end;
        task[j] = strtoll(p, &end, 10);
        who[j] = strtoll(end, &end, 10);
        lab[j] = (uint32_t)strtoul(end, &end, 10);
        p = *end == ',' ? end + 1 : end;
        if (j == 0 || task[j] != task[j - 1])
            f->task[items++] = task[j];
        item[j] = items - 1;
    }
    /* Annotators: their ids sorted and made unique, each judgement's index
     * found by bisection. */
    int64_t *ids = qr_xcalloc(n + 1, sizeof *ids);
    memcpy(ids, who, n * sizeof *ids);
    qsort(ids, n, sizeof *ids, cmp_i64);
    uint32_t anns = 0;
    for (size_t j = 0; j < n; j++)
        if (j == 0 || ids[j] != ids[anns - 1])
            ids[anns++] = ids[j];
    for (size_t j = 0; j < n; j++)
        ann[j] = (uint32_t)((int64_t *)bsearch(&who[j], ids, anns, sizeof *ids, cmp_i64) - ids);
    f->rc = qr_dawid_skene_run(n, item, ann, lab, items, anns, f->nlabels, NULL, &f->fit, f->err,
                               sizeof f->err);
    free(task);
    free(who);
    free(item);
    free(ann);
    free(lab);
    free(ids);
}

/* On the loop: the fit is in. */
static void fit_done(uv_work_t *w, int status)
{
    qr_ds_fit_t *f = w->data;
    free(f->labels_text);
    free(f->judgements_text);
    f->labels_text = f->judgements_text = NULL;
    if (status < 0) {
        fail(f, QR_EIO, "the Dawid-Skene fit", uv_strerror(status));
        return;
    }
    if (f->rc < 0) {
        fail(f, f->rc, "the Dawid-Skene fit", f->err);
        return;
    }
    f->cb(f, 0, f->arg);
}

static void on_judgements(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    qr_ds_fit_t *f = arg;
    if (!res || PQntuples(res) != 1) {
        fail(f, QR_EIO, "PostgreSQL", err ? err : "no judgements row");
        return;
    }
    f->labels_text = qr_xstrdup(PQgetvalue(res, 0, 0));
    f->judgements_text = qr_xstrdup(PQgetvalue(res, 0, 1));
    f->work.data = f;
    int rc = uv_queue_work(f->loop, &f->work, fit_work, fit_done);
    if (rc < 0)
        fail(f, QR_EIO, "the Dawid-Skene fit", uv_strerror(rc));
}

/* Reads every judgement as of f->snapshot. */
static int load(qr_ds_fit_t *f)
{
    const char *params[] = {f->project, f->snapshot, f->org};
    /* Unprepared, as the export's pages: one run reads the whole project. */
    return qr_pg_query_unprepared(f->pg, QR_SQL_EXPORT_DS_JUDGEMENTS, 3, params, on_judgements, f);
}

static void on_snapshot(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    qr_ds_fit_t *f = arg;
    if (!res || PQntuples(res) != 1) {
        fail(f, QR_EIO, "PostgreSQL", err ? err : "no snapshot");
        return;
    }
    f->snapshot = qr_xstrdup(PQgetvalue(res, 0, 0));
    if (load(f) < 0)
        fail(f, QR_EIO, "PostgreSQL", "pool closing");
}

int qr_ds_fit_start(qr_ds_fit_t *f, uv_loop_t *loop, qr_pg_t *pg, int64_t project,
                    const char *snapshot, int64_t org, qr_ds_fit_cb cb, void *arg)
{
    f->loop = loop;
    f->pg = pg;
    f->cb = cb;
    f->arg = arg;
    snprintf(f->project, sizeof f->project, "%" PRId64, project);
    snprintf(f->org, sizeof f->org, "%" PRId64, org);
    if (snapshot) {
        f->snapshot = qr_xstrdup(snapshot);
        return load(f);
    }
    /* The export's first statement without a cursor: the present snapshot. */
    const char *params[] = {NULL};
    return qr_pg_query(pg, QR_SQL_EXPORT_BEGIN, 1, params, on_snapshot, f);
}

int64_t qr_ds_fit_item(const qr_ds_fit_t *f, int64_t task)
{
    if (!f->task || !f->fit.items)
        return -1;
    const int64_t *at = bsearch(&task, f->task, f->fit.items, sizeof *f->task, cmp_i64);
    return at ? (int64_t)(at - f->task) : -1;
}

void qr_ds_fit_free(qr_ds_fit_t *f)
{
    if (!f)
        return;
    free(f->labels_text);
    free(f->judgements_text);
    free(f->task);
    for (uint32_t k = 0; f->labels && k < f->nlabels; k++)
        free(f->labels[k]);
    free(f->labels);
    free(f->snapshot);
    qr_dawid_skene_free(&f->fit);
    memset(f, 0, sizeof *f);
}
