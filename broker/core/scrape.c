/*
 * scrape.c - one GET /metrics scrape (scrape.h): the queue figures from
 * PostgreSQL, the window sizes from the lease engine, the process-local
 * families from the Prometheus registry.
 */
#include "scrape.h"

#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "broker_int.h"
#include "committer.h"
#include "events.h"
#include "metrics.h"
#include "util.h"

typedef struct scrape_s {
    qr_broker_t *b;
    qr_metrics_sources_t src;
    qr_scrape_cb cb;
    void *arg;
    qr_analytics_queue_t *rows; /* the queue, or NULL when PostgreSQL failed */
    int n;
    const int64_t *ready, *live; /* the first nsizes rows; -1 when Redis did not answer */
    int nsizes;                  /* rows asked of Redis (at most QR_METRICS_MAX_PROJECTS) */
} scrape_t;

static void scrape_finish(scrape_t *s)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_metrics_family(&b, "quorum_queue_up", "gauge",
                      "1 when the queue figures below could be read from PostgreSQL.");
    qr_buf_appendf(&b, "quorum_queue_up %d\n", s->rows ? 1 : 0);
    static const char *const states[] = {"waiting", "in_progress", "complete", "auto_accepted",
                                         "reviewed"};
    qr_metrics_family(&b, "quorum_tasks", "gauge",
                      "Tasks per project by state: waiting (no annotation yet, leased or not), "
                      "in_progress (some annotations in), complete (every required annotation "
                      "in), auto_accepted (complete without a human: a confident prediction), "
                      "reviewed (complete, its answer a reviewer's).");
    for (int i = 0; i < s->n; i++) {
        int64_t v[] = {s->rows[i].waiting, s->rows[i].in_progress, s->rows[i].complete,
                       s->rows[i].auto_accepted, s->rows[i].reviewed};
        for (int k = 0; k < 5; k++)
            qr_buf_appendf(&b, "quorum_tasks{project=\"%lld\",state=\"%s\"} %lld\n",
                           (long long)s->rows[i].project, states[k], (long long)v[k]);
    }
    qr_metrics_family(&b, "quorum_annotations_remaining", "gauge",
                      "Annotations still needed per project (sum over open tasks of required - "
                      "done).");
    for (int i = 0; i < s->n; i++)
        qr_buf_appendf(&b, "quorum_annotations_remaining{project=\"%lld\"} %lld\n",
                       (long long)s->rows[i].project, (long long)s->rows[i].remaining);
    qr_metrics_family(&b, "quorum_annotations", "gauge",
                      "Annotations stored per project (an undo removes one).");
    for (int i = 0; i < s->n; i++)
        qr_buf_appendf(&b, "quorum_annotations{project=\"%lld\"} %lld\n",
                       (long long)s->rows[i].project, (long long)s->rows[i].annotations);
    qr_metrics_family(&b, "quorum_ready_window_tasks", "gauge",
                      "Tasks in the project's Redis ready window.");
    for (int i = 0; i < s->n; i++)
        if (i < s->nsizes && s->ready[i] >= 0)
            qr_buf_appendf(&b, "quorum_ready_window_tasks{project=\"%lld\"} %lld\n",
                           (long long)s->rows[i].project, (long long)s->ready[i]);
    qr_metrics_family(&b, "quorum_leases_live", "gauge", "Leases live in Redis per project.");
    for (int i = 0; i < s->n; i++)
        if (i < s->nsizes && s->live[i] >= 0)
            qr_buf_appendf(&b, "quorum_leases_live{project=\"%lld\"} %lld\n",
                           (long long)s->rows[i].project, (long long)s->live[i]);
    qr_metrics_render_process(&s->src, &b);
    s->cb(b.data ? b.data : "", b.len, s->arg);
    qr_buf_free(&b);
    free(s->rows);
    free(s);
}

static void on_sizes(const int64_t *ready, const int64_t *live, int n, void *arg)
{
    scrape_t *s = arg;
    s->ready = ready;
    s->live = live;
    s->nsizes = n;
    scrape_finish(s);
}

static void on_queue_rows(const qr_analytics_queue_t *rows, int n, const char *err, void *arg)
{
    scrape_t *s = arg;
    if (rows) {
        s->n = n;
        s->rows = qr_xmalloc((n ? (size_t)n : 1) * sizeof *rows);
        memcpy(s->rows, rows, (size_t)n * sizeof *rows);
    }
    int nq = s->n < QR_METRICS_MAX_PROJECTS ? s->n : QR_METRICS_MAX_PROJECTS;
    int64_t *ids = qr_xmalloc((nq ? (size_t)nq : 1) * sizeof *ids);
    for (int i = 0; i < nq; i++)
        ids[i] = s->rows[i].project;
    qr_lease_window_sizes(s->b->lease, ids, nq, on_sizes, s);
    free(ids);
}

int qr_broker_scrape(qr_broker_t *b, qr_scrape_cb cb, void *arg)
{
    scrape_t *s = qr_xcalloc(1, sizeof *s);
    s->b = b;
    s->src = (qr_metrics_sources_t){
        .connections = qr_http_connections(b->http),
        .pg = qr_pg_stats(b->pg),
        .redis = qr_redis_stats(b->redis),
        .pg_connected = qr_pg_connected(b->pg),
        .pg_pool = b->cfg.pg_pool,
        .redis_ready = qr_lease_ready(b->lease),
        .redis_moved = qr_redis_redirects(b->redis)->moved,
        .redis_ask = qr_redis_redirects(b->redis)->ask,
        .redis_tryagain = qr_redis_redirects(b->redis)->tryagain,
        .events_dropped = qr_events_dropped(b->events),
        .commit_batches = qr_committer_batches(b->committer),
    };
    if (b->read) {
        s->src.pg_read = 1;
        s->src.pg_read_lag_s = qr_read_pool_lag_s(b->read);
        s->src.pg_read_connected = qr_read_pool_connected(b->read);
        s->src.pg_read_pool = qr_read_pool_size(b->read);
    }
    s->cb = cb;
    s->arg = arg;
    int rc = qr_analytics_queue(b->pg, on_queue_rows, s);
    if (rc < 0)
        free(s);
    return rc;
}
