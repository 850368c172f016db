/*
 * histogram.h - the latency histogram type that the PostgreSQL pool, the
 * Redis client and the request timers keep, and metrics.h renders. A plain
 * value type with no dependency, so the lower layers can embed one without
 * including the Prometheus registry.
 */
#ifndef QR_HISTOGRAM_H
#define QR_HISTOGRAM_H

#include <stdint.h>

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

#endif
