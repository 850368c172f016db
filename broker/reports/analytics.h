/*
 * analytics.h - the throughput and workforce report of a project (issue 6,
 * docs/THROUGHPUT.md): rates, time on task, active and idle time, lease
 * outcomes, the queue, an ETA and fast-response flags, computed by one SQL
 * statement over lease_events, annotations, tasks, users and organizations.
 *
 * The module knows nothing of HTTP beyond handing back the status and body
 * the API should answer with; the router decides who may ask and for which
 * organization's crew.
 */
#ifndef QR_ANALYTICS_H
#define QR_ANALYTICS_H

#include <jansson.h>
#include <stdint.h>

#include "pg.h"
#include "read_pool.h"
#include "report.h"
#include "util.h"

/* Idle threshold: a gap between two lease events of one annotator longer
 * than this (ms) is idle time; shorter gaps are active time. */
#define QR_ANALYTICS_IDLE_GAP_MS 300000
/* Fast-response rule: flagged when an annotator has at least MIN_N timed
 * submissions in the window and their median time on task is below RATIO
 * times the crew median (the median of the medians of every annotator of
 * the project with at least MIN_N timed submissions in the window). */
#define QR_ANALYTICS_FAST_MIN_N 10
#define QR_ANALYTICS_FAST_RATIO 0.25
/* The old ETA (eta.seconds) divides the remaining annotations by the
 * annotations of this window, ending now (ms). */
#define QR_ANALYTICS_ETA_WINDOW_MS 3600000
/* The pace (store/sql_work.h) is the rate of the annotations of this span
 * (ms) up to the latest one: "the last 10 minutes of work"; the ETA the
 * reports print (eta.pace, eta_seconds) divides what is left by it. */
#define QR_ANALYTICS_PACE_SPAN_MS 600000
/* Longest report window (ms): 92 days. */
#define QR_ANALYTICS_MAX_WINDOW_MS (92LL * 86400000)

/* st: QR_REPORT_OK with the report in data (a new reference that the
 * callback owns: it must json_decref it or hand it on), QR_REPORT_NOT_FOUND
 * (no such project) or QR_REPORT_UNAVAILABLE (PostgreSQL failed), with
 * data NULL and a one-line reason in message. */
typedef void (*qr_analytics_cb)(qr_report_status_t st, json_t *data, const char *message,
                                void *arg);

/* The parsed query string of a throughput request. */
typedef struct qr_throughput_query_s {
    int64_t from_ms, to_ms; /* the window [from, to), epoch ms */
    char window[256];       /* the window as asked ("1h", or "FROM..TO") */
    char by[16];            /* "annotator", "vendor" or "hour" */
    int64_t annotator;      /* only this annotator (0: all) */
    int exact;              /* 1: read every event even for a long window */
    int64_t idle_gap_ms;    /* idle threshold (default QR_ANALYTICS_IDLE_GAP_MS) */
    /* annotator=NAME as given ("" for an id): the API looks the name up and
     * sets annotator (qr_analytics_throughput refuses it unresolved). */
    char annotator_name[256];
} qr_throughput_query_t;

/* Windows up to this long (ms) are computed from the raw lease events,
 * exactly; longer ones from the rollups (docs/THROUGHPUT.md, "Precision"):
 * whole hours from the per-hour rollups, whole minutes around them from the
 * per-minute rollup, the partial minutes at the edges from the raw events;
 * with an idle threshold other than QR_ANALYTICS_IDLE_GAP_MS (which the
 * hour rows' inner activity assumes) every whole minute comes from the
 * minute rollup. Raw events throughout when the query asks for exact=1 or
 * an idle threshold under a minute (the rollups count every gap inside a
 * minute as active). */
#define QR_ANALYTICS_EXACT_MAX_MS (2LL * 3600000)

/*
 * Parses a raw URL query string (NULL or "" for the defaults: window=1h,
 * by=annotator). Keys: exact=0|1; idle_gap_ms=N (1000 to 86400000); window=15m|1h|1d (any N
 * followed by m, h or d) or window=FROM..TO (ISO 8601:
 * YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM], UTC when no offset); by=annotator|vendor|hour;
 * annotator=ID. A relative window ends at now_ms. Returns 0, or QR_EINVAL with a one-line reason in
 * msg (msg_size bytes) for an unknown key, a bad value, a window that is
 * empty, reversed or longer than 92 days.
 */
int qr_analytics_parse_query(const char *query, int64_t now_ms, qr_throughput_query_t *out,
                             char *msg, size_t msg_size);

/*
 * Computes the throughput report of project_id (docs/THROUGHPUT.md) over the
 * window and options of q (qr_analytics_parse_query).
 * only_org_id: 0 for every annotator, else only annotators of that
 * organization are counted and listed (the project-wide queue, ETA baseline
 * remaining work and the crew median of the fast-response rule are still
 * reported; see the document). now_ms: the wall clock (epoch ms), passed in
 * so tests can fix it.
 *
 * rd: where to read (qr_read_pool_choose; a failing replica is left for
 * the primary, qr_read_query), the caller's until cb has run.
 * cb runs exactly once, later, from the loop. Returns a negative code,
 * without calling cb, only when the pool refuses the query (it is closing),
 * or QR_EINVAL when q names an annotator by a name not looked up yet
 * (annotator_name set, annotator 0).
 */
QR_MUST_CHECK int qr_analytics_throughput(qr_read_t *rd, int64_t project_id, int64_t only_org_id,
                                          const qr_throughput_query_t *q, int64_t now_ms,
                                          qr_analytics_cb cb, void *arg);

/* One project's queue, as GET /metrics reports it. */
typedef struct qr_analytics_queue_s {
    int64_t project;
    int64_t waiting;       /* not complete, no annotation yet (leased or not) */
    int64_t in_progress;   /* not complete, some annotations in */
    int64_t complete;      /* every required annotation in */
    int64_t remaining;     /* annotations still needed (sum of required - done) */
    int64_t annotations;   /* annotations stored */
    int64_t auto_accepted; /* complete without a human: a confident prediction */
    int64_t reviewed;      /* complete, its answer a reviewer's (counted apart from complete) */
} qr_analytics_queue_t;

/* rows: n projects by id (valid during the callback only), or NULL with err
 * when PostgreSQL failed. */
typedef void (*qr_analytics_queue_cb)(const qr_analytics_queue_t *rows, int n, const char *err,
                                      void *arg);

/*
 * Every project's queue from PostgreSQL (tasks by state, annotations
 * remaining and stored). It scans tasks and the annotations index, so
 * scrape it every 15 s or more, not every second. Returns a negative code,
 * without calling cb, only when the pool is closing.
 */
int qr_analytics_queue(qr_pg_t *pg, qr_analytics_queue_cb cb, void *arg);

#endif
