/*
 * metrics.h - the broker's own Prometheus metrics (issue 6 item 5): lease
 * counters per project, request latency histograms, and the rendering of
 * those and of the round-trip histograms (histogram.h) that the PostgreSQL
 * pool (pg.c) and the Redis client (redis_client.c) keep.
 *
 * Everything here lives in one process and is touched only from the loop
 * thread: updates are plain increments, no locks, no allocation on the hot
 * path (a new project's counter slot is the one exception, amortised O(1)).
 * qr_metrics_render_process writes the text exposition format 0.0.4
 * (docs/API.md, GET /metrics); the queue sizes, which come from PostgreSQL
 * and Redis, are added by the scrape in core (core/scrape.c).
 *
 * This module imports nothing of the broker; the latency histogram type it
 * renders lives in common/histogram.h so the lower layers (pg.c,
 * redis_client.c) need not include the registry.
 */
#ifndef QR_METRICS_H
#define QR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "util.h"

/* The timed API requests. */
typedef enum qr_metric_request_e {
    QR_METRIC_LEASE = 0,    /* POST .../leases, answered without a long-poll wait */
    QR_METRIC_SUBMIT,       /* POST .../leases/{lease}/submit */
    QR_METRIC_BATCH_SUBMIT, /* POST .../submit */
    QR_METRIC_NREQUESTS
} qr_metric_request_t;

/* The lease events counted per project; the same order as the event log's
 * kinds (events.h asserts it). */
typedef enum qr_metric_lease_e {
    QR_METRIC_GRANT = 0,
    QR_METRIC_HEARTBEAT,
    QR_METRIC_SUBMITTED,
    QR_METRIC_SKIP,
    QR_METRIC_RELEASE,
    QR_METRIC_EXPIRE,
    QR_METRIC_NLEASE
} qr_metric_lease_t;

/* Counts one lease event of kind of project. */
void qr_metrics_lease_event(qr_metric_lease_t kind, int64_t project);

/* Records one request of kind that took ns nanoseconds; status is the HTTP
 * status answered (5xx count as errors as well). */
void qr_metrics_request(qr_metric_request_t kind, uint64_t ns, int status);

/* Records one turn of the event loop that kept it busy (not waiting for
 * events) for ns nanoseconds (loop_watch.h). */
void qr_metrics_loop_turn(uint64_t ns);

/* The process-local values the renderer needs from the broker. */
typedef struct qr_metrics_sources_s {
    int connections;           /* open HTTPS connections */
    const qr_latency_t *pg;    /* PostgreSQL round trips, or NULL */
    const qr_latency_t *redis; /* Redis round trips, or NULL */
    int pg_connected, pg_pool; /* PostgreSQL connections up, pool size */
    int redis_ready;           /* 1 when Redis is connected, scripts loaded */
    /* A Redis Cluster's answers the client followed: MOVED, ASK, and
     * TRYAGAIN retried (0 on a single Redis). */
    uint64_t redis_moved, redis_ask, redis_tryagain;
    uint64_t events_dropped; /* lease events lost (events.h) */
    uint64_t commit_batches; /* group commits of annotations */
    /* The reports' replica (--pg-read): pg_read 1 when there is one; how
     * stale a read from it may be now (s; < 0: not known); its
     * connections up and pool size. */
    int pg_read;
    double pg_read_lag_s;
    int pg_read_connected;
    int pg_read_pool;
} qr_metrics_sources_t;

/* Appends the process-local families (lease counters, request, PostgreSQL
 * and Redis histograms, connections, process start time, build info). */
void qr_metrics_render_process(const qr_metrics_sources_t *src, qr_buf_t *out);

/* Appends the "# HELP" and "# TYPE" lines of a family. help must hold no
 * newline or backslash. */
void qr_metrics_family(qr_buf_t *out, const char *name, const char *type, const char *help);

/* Forgets every counter and histogram (tests). */
void qr_metrics_reset(void);

#endif
