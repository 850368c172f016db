/*
 * metrics.c - the broker's in-memory Prometheus registry (metrics.h): lease
 * event counters per project, request latency histograms, and the text
 * rendering of those and of the PostgreSQL and Redis round-trip histograms
 * the lower layers keep.
 *
 * The registry is process-wide: Prometheus counters are per process, and
 * every broker of a process (tests run several) shares one loop thread, so
 * plain increments are enough. Per-project counters sit in an
 * open-addressing table keyed by project id that doubles at half load.
 */
#include "metrics.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"

#define NKINDS QR_METRIC_NLEASE

typedef struct slot_s {
    int64_t project; /* 0: empty */
    uint64_t counts[NKINDS];
} slot_t;

static slot_t *slots; /* the table, cap entries */
static size_t cap;    /* a power of two, or 0 */
static size_t used;   /* occupied entries */
static qr_latency_t requests[QR_METRIC_NREQUESTS];
static qr_latency_t loop_turns; /* the event loop's busy time per turn */
static int64_t start_ms;        /* process start, epoch ms */

__attribute__((constructor)) static void record_start(void)
{
    start_ms = qr_now_ms();
}

static size_t slot_index(int64_t project, size_t n)
{
    uint64_t h = (uint64_t)project * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (n - 1);
}

static void grow(void)
{
    size_t ncap = cap ? cap * 2 : 64;
    slot_t *n = qr_xcalloc(ncap, sizeof *n);
    for (size_t i = 0; i < cap; i++) {
        if (!slots[i].project)
            continue;
        size_t j = slot_index(slots[i].project, ncap);
        while (n[j].project)
            j = (j + 1) & (ncap - 1);
        n[j] = slots[i];
    }
    free(slots);
    slots = n;
    cap = ncap;
}

void qr_metrics_lease_event(qr_metric_lease_t kind, int64_t project)
{
    if ((int)kind < 0 || kind >= NKINDS || project <= 0)
        return;
    if ((used + 1) * 2 > cap)
        grow();
    size_t i = slot_index(project, cap);
    while (slots[i].project && slots[i].project != project)
        i = (i + 1) & (cap - 1);
    if (!slots[i].project) {
        slots[i].project = project;
        used++;
    }
    slots[i].counts[kind]++;
}

void qr_metrics_request(qr_metric_request_t kind, uint64_t ns, int status)
{
    if ((unsigned)kind >= QR_METRIC_NREQUESTS)
        return;
    qr_latency_observe(&requests[kind], ns);
    if (status >= 500)
        requests[kind].errors++;
}

void qr_metrics_loop_turn(uint64_t ns)
{
    qr_latency_observe(&loop_turns, ns);
}

void qr_metrics_reset(void)
{
    free(slots);
    slots = NULL;
    cap = used = 0;
    memset(requests, 0, sizeof requests);
    memset(&loop_turns, 0, sizeof loop_turns);
}

/* --- rendering -------------------------------------------------------------------- */

void qr_metrics_family(qr_buf_t *out, const char *name, const char *type, const char *help)
{
    qr_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The buckets, sum and count of one histogram; labels is "" or
 * `key="value",` pieces ending in a comma. */
static void histogram_samples(qr_buf_t *out, const char *name, const char *labels,
                              const qr_latency_t *h)
{
    static const double bounds[QR_LATENCY_NBOUNDS] = QR_LATENCY_BOUNDS;
    uint64_t cum = 0;
    for (int i = 0; i < QR_LATENCY_NBOUNDS; i++) {
        cum += h->counts[i];
        qr_buf_appendf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i],
                       (unsigned long long)cum);
    }
    qr_buf_appendf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                   (unsigned long long)h->count);
    size_t n = strlen(labels);
    /* The labels without their trailing comma, in braces, or nothing. */
    if (n)
        qr_buf_appendf(out, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, (int)(n - 1), labels,
                       h->sum_s, name, (int)(n - 1), labels, (unsigned long long)h->count);
    else
        qr_buf_appendf(out, "%s_sum %.9g\n%s_count %llu\n", name, h->sum_s, name,
                       (unsigned long long)h->count);
}

/* Sorted copies of the occupied slots (stable output, by project id). */
static int by_project(const void *a, const void *b)
{
    int64_t x = ((const slot_t *)a)->project, y = ((const slot_t *)b)->project;
    return (x > y) - (x < y);
}

static void lease_counters(qr_buf_t *out)
{
    static const struct {
        int kind;
        const char *name, *help;
    } fam[] = {
        {QR_METRIC_GRANT, "quorum_leases_granted_total", "Leases granted by this broker."},
        {QR_METRIC_HEARTBEAT, "quorum_lease_heartbeats_total", "Lease heartbeats (extensions)."},
        {QR_METRIC_SUBMITTED, "quorum_leases_submitted_total",
         "Leases ended by a stored submission."},
        {QR_METRIC_SKIP, "quorum_leases_skipped_total", "Leases ended by a skip."},
        {QR_METRIC_RELEASE, "quorum_leases_released_total", "Leases given back unlabeled."},
        {QR_METRIC_EXPIRE, "quorum_leases_expired_total", "Leases this broker's reaper expired."},
    };
    slot_t *sorted = qr_xmalloc((used ? used : 1) * sizeof *sorted);
    size_t n = 0;
    for (size_t i = 0; i < cap; i++)
        if (slots[i].project)
            sorted[n++] = slots[i];
    qsort(sorted, n, sizeof *sorted, by_project);
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        qr_metrics_family(out, fam[f].name, "counter", fam[f].help);
        for (size_t i = 0; i < n; i++)
            qr_buf_appendf(out, "%s{project=\"%lld\"} %llu\n", fam[f].name,
                           (long long)sorted[i].project,
                           (unsigned long long)sorted[i].counts[fam[f].kind]);
    }
    free(sorted);
}

/* A backend's round-trip histogram and error counter (h may be NULL). */
static void backend(qr_buf_t *out, const char *hist, const char *hist_help, const char *errors,
                    const char *errors_help, const qr_latency_t *h)
{
    static const qr_latency_t none;
    qr_metrics_family(out, hist, "histogram", hist_help);
    histogram_samples(out, hist, "", h ? h : &none);
    qr_metrics_family(out, errors, "counter", errors_help);
    qr_buf_appendf(out, "%s %llu\n", errors, (unsigned long long)(h ? h->errors : 0));
}

void qr_metrics_render_process(const qr_metrics_sources_t *src, qr_buf_t *out)
{
    lease_counters(out);

    static const char *const req_names[QR_METRIC_NREQUESTS] = {"lease", "submit", "batch_submit"};
    qr_metrics_family(out, "quorum_request_duration_seconds", "histogram",
                      "API request time from the complete request to the response, by endpoint "
                      "(lease: answered without a long-poll wait).");
    for (int k = 0; k < QR_METRIC_NREQUESTS; k++) {
        char labels[64];
        snprintf(labels, sizeof labels, "endpoint=\"%s\",", req_names[k]);
        histogram_samples(out, "quorum_request_duration_seconds", labels, &requests[k]);
    }
    qr_metrics_family(out, "quorum_request_errors_total", "counter",
                      "Timed API requests answered with a 5xx status, by endpoint.");
    for (int k = 0; k < QR_METRIC_NREQUESTS; k++)
        qr_buf_appendf(out, "quorum_request_errors_total{endpoint=\"%s\"} %llu\n", req_names[k],
                       (unsigned long long)requests[k].errors);

    qr_metrics_family(out, "quorum_loop_busy_seconds", "histogram",
                      "Time one turn of the event loop kept it from waiting for events (its "
                      "callbacks); every request under way waits for a long turn.");
    histogram_samples(out, "quorum_loop_busy_seconds", "", &loop_turns);

    backend(out, "quorum_pg_query_duration_seconds",
            "PostgreSQL round trips: statement sent to its last result.", "quorum_pg_errors_total",
            "PostgreSQL statements that failed (server error, connection lost or none available).",
            src->pg);
    qr_metrics_family(out, "quorum_pg_connections", "gauge",
                      "PostgreSQL pool connections by state (up, size).");
    qr_buf_appendf(out, "quorum_pg_connections{state=\"up\"} %d\n", src->pg_connected);
    qr_buf_appendf(out, "quorum_pg_connections{state=\"size\"} %d\n", src->pg_pool);
    if (src->pg_read) {
        qr_metrics_family(out, "quorum_pg_read_lag_seconds", "gauge",
                          "How stale a report read from the --pg-read replica may be now: the "
                          "time since the last probe that found it had replayed the primary's "
                          "WAL (+Inf: not known, the replica is down or never caught up).");
        if (src->pg_read_lag_s < 0)
            qr_buf_appendf(out, "quorum_pg_read_lag_seconds +Inf\n");
        else
            qr_buf_appendf(out, "quorum_pg_read_lag_seconds %.3f\n", src->pg_read_lag_s);
        qr_metrics_family(out, "quorum_pg_read_connections", "gauge",
                          "The --pg-read replica's pool connections by state (up, size).");
        qr_buf_appendf(out, "quorum_pg_read_connections{state=\"up\"} %d\n",
                       src->pg_read_connected);
        qr_buf_appendf(out, "quorum_pg_read_connections{state=\"size\"} %d\n", src->pg_read_pool);
    }
    backend(out, "quorum_redis_command_duration_seconds",
            "Redis round trips: command sent to its reply.", "quorum_redis_errors_total",
            "Redis commands that failed (error reply, timeout, not connected, connection lost).",
            src->redis);
    qr_metrics_family(out, "quorum_redis_up", "gauge",
                      "1 when Redis is connected and the lease scripts are loaded.");
    qr_buf_appendf(out, "quorum_redis_up %d\n", src->redis_ready ? 1 : 0);
    qr_metrics_family(out, "quorum_redis_redirects_total", "counter",
                      "Redis Cluster answers naming another node that were followed: MOVED "
                      "(the slot moved; the command resent there) and ASK (the slot is "
                      "migrating; ASKING and the command sent there).");
    qr_buf_appendf(out, "quorum_redis_redirects_total{kind=\"moved\"} %" PRIu64 "\n",
                   src->redis_moved);
    qr_buf_appendf(out, "quorum_redis_redirects_total{kind=\"ask\"} %" PRIu64 "\n", src->redis_ask);
    qr_metrics_family(out, "quorum_redis_tryagain_total", "counter",
                      "Redis Cluster TRYAGAIN answers (a script's keys split between the two "
                      "nodes of a migrating slot) retried after a pause.");
    qr_buf_appendf(out, "quorum_redis_tryagain_total %" PRIu64 "\n", src->redis_tryagain);

    qr_metrics_family(out, "quorum_http_connections", "gauge", "Open HTTPS connections.");
    qr_buf_appendf(out, "quorum_http_connections %d\n", src->connections);
    qr_metrics_family(out, "quorum_events_dropped_total", "counter",
                      "Lease events dropped (buffer full, refused by PostgreSQL).");
    qr_buf_appendf(out, "quorum_events_dropped_total %llu\n",
                   (unsigned long long)src->events_dropped);
    qr_metrics_family(out, "quorum_annotation_commits_total", "counter",
                      "Group commits of annotations.");
    qr_buf_appendf(out, "quorum_annotation_commits_total %llu\n",
                   (unsigned long long)src->commit_batches);
    qr_metrics_family(out, "quorum_process_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch, seconds.");
    qr_buf_appendf(out, "quorum_process_start_time_seconds %.3f\n", (double)start_ms / 1000.0);

    /* Versions carry no quote, backslash or newline: no escaping needed. */
    int pq = PQlibVersion();
    qr_metrics_family(out, "quorum_build_info", "gauge",
                      "Always 1; the labels name the versions quorumd was built and runs with.");
    qr_buf_appendf(out,
                   "quorum_build_info{libuv=\"%s\",libpq=\"%d.%d\",hiredis=\"%d.%d.%d\","
                   "openssl=\"%s\",compiler=\"%s\"} 1\n",
                   uv_version_string(), pq / 10000, pq % 10000, HIREDIS_MAJOR, HIREDIS_MINOR,
                   HIREDIS_PATCH, OpenSSL_version(OPENSSL_VERSION_STRING),
#if defined(__clang__)
                   "clang " __clang_version__
#elif defined(__GNUC__)
                   "gcc " __VERSION__
#else
                   "unknown"
#endif
    );
}
