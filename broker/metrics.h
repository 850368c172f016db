/*
 * metrics.h - the broker's own Prometheus metrics (issue 6 item 5): lease
 * counters per project, request latency histograms, and the latency
 * histogram type that the PostgreSQL pool (pg.c) and the Redis client
 * (redis_client.c) keep for their round trips.
 *
 * Everything here lives in one process and is touched only from the loop
 * thread: updates are plain increments, no locks, no allocation on the hot
 * path (a new project's counter slot is the one exception, amortised O(1)).
 * qr_metrics_render_process writes the text exposition format 0.0.4
 * (docs/API.md, GET /metrics); the queue sizes, which come from PostgreSQL
 * and Redis, are appended by the API (api.c) from analytics.c's query.
 *
 * This header has no dependency on the broker, so the lower layers (pg.c,
 * redis_client.c, in their own libraries) can embed a qr_latency_t.
 */
#ifndef QR_METRICS_H
#define QR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Upper bounds (seconds) of the latency histograms' finite buckets. */
#define QR_LATENCY_BOUNDS                                                                          \
    {                                                                                              \
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,  \
            5, 10                                                                                  \
    }
#define QR_LATENCY_NBOUNDS 16

/* A latency histogram and an error counter. counts[i] holds observations in
 * (bound[i-1], bound[i]] (not cumulative; the renderer sums them); those
 * above the last bound are counted only in count. */
typedef struct qr_latency_s {
    uint64_t counts[QR_LATENCY_NBOUNDS];
    uint64_t count;  /* observations */
    double sum_s;    /* their sum, seconds */
    uint64_t errors; /* failed operations (not observed) */
} qr_latency_t;

/* Records one observation of ns nanoseconds (uv_hrtime differences). */
static inline void qr_latency_observe(qr_latency_t *h, uint64_t ns)
{
    static const double bounds[QR_LATENCY_NBOUNDS] = QR_LATENCY_BOUNDS;
    double s = (double)ns / 1e9;
    h->count++;
    h->sum_s += s;
    for (int i = 0; i < QR_LATENCY_NBOUNDS; i++)
        if (s <= bounds[i]) {
            h->counts[i]++;
            return;
        }
}

/* The timed API requests. */
typedef enum qr_metric_request_e {
    QR_METRIC_LEASE = 0,    /* POST .../leases, answered without a long-poll wait */
    QR_METRIC_SUBMIT,       /* POST .../leases/{lease}/submit */
    QR_METRIC_BATCH_SUBMIT, /* POST .../submit */
    QR_METRIC_NREQUESTS
} qr_metric_request_t;

/* Counts one lease event (kind: a qr_event_kind_t, events.h) of project. */
void qr_metrics_lease_event(int kind, int64_t project);

/* Records one request of kind that took ns nanoseconds; status is the HTTP
 * status answered (5xx count as errors as well). */
void qr_metrics_request(qr_metric_request_t kind, uint64_t ns, int status);

/* The process-local values the renderer needs from the broker. */
typedef struct qr_metrics_sources_s {
    int connections;           /* open HTTPS connections */
    const qr_latency_t *pg;    /* PostgreSQL round trips, or NULL */
    const qr_latency_t *redis; /* Redis round trips, or NULL */
    int pg_connected, pg_pool; /* PostgreSQL connections up, pool size */
    int redis_ready;           /* 1 when Redis is connected, scripts loaded */
    uint64_t events_dropped;   /* lease events lost (events.h) */
    uint64_t commit_batches;   /* group commits of annotations */
} qr_metrics_sources_t;

/* Appends the process-local families (lease counters, request, PostgreSQL
 * and Redis histograms, connections, process start time, build info). */
void qr_metrics_render_process(const qr_metrics_sources_t *src, qr_buf_t *out);

/* Appends the "# HELP" and "# TYPE" lines of a family. help must hold no
 * newline or backslash. */
void qr_metrics_family(qr_buf_t *out, const char *name, const char *type, const char *help);

struct qr_pg_s;
struct qr_redis_s;

/* The whole exposition, valid during the callback only. */
typedef void (*qr_metrics_text_cb)(const char *text, size_t len, void *arg);

/*
 * A scrape: every project's queue from PostgreSQL (analytics.h), each
 * project's ready window and live leases from Redis (ZCARD of the lease
 * engine's keys, for at most QR_METRICS_MAX_PROJECTS projects), then the
 * process-local families of src (copied; its pointers must stay valid until
 * cb). When PostgreSQL or Redis fails the families they feed are left
 * without samples and quorum_queue_up / quorum_redis_up say so: a scrape
 * always answers. Returns a negative code, without calling cb, only when
 * the PostgreSQL pool is closing.
 */
#define QR_METRICS_MAX_PROJECTS 5000
int qr_metrics_scrape(struct qr_pg_s *pg, struct qr_redis_s *redis, const qr_metrics_sources_t *src,
                      qr_metrics_text_cb cb, void *arg);

/* Forgets every counter and histogram (tests). */
void qr_metrics_reset(void);

#endif
