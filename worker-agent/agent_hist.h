/*
 * agent_hist.h - a latency histogram with logarithmic buckets, HDR style:
 * values below 64 have a bucket each, and every power of two above is split
 * into 32 equal buckets, so any recorded value is known to within about 3%
 * (1/32) whatever its size. Fixed memory (about 16 KiB), O(1) recording, no
 * allocation: cheap enough to record every request of a 1,000-agent run.
 *
 * Values are unsigned integers in whatever unit the caller picks (the agent
 * records microseconds).
 */
#ifndef QR_AGENT_HIST_H
#define QR_AGENT_HIST_H

#include <stdint.h>

#define QR_HIST_SUB_BITS 5                       /* 32 buckets per power of two */
#define QR_HIST_SUB      (1 << QR_HIST_SUB_BITS) /* 32 */
#define QR_HIST_BUCKETS  (QR_HIST_SUB * (64 - QR_HIST_SUB_BITS) + 2 * QR_HIST_SUB)

typedef struct qr_hist_s {
    uint64_t count; /* values recorded */
    uint64_t max;   /* the largest value recorded */
    uint64_t buckets[QR_HIST_BUCKETS];
} qr_hist_t;

/* Empties h. */
void qr_hist_reset(qr_hist_t *h);

/* Records one value. */
void qr_hist_record(qr_hist_t *h, uint64_t v);

/* Adds every value of from into into. */
void qr_hist_merge(qr_hist_t *into, const qr_hist_t *from);

/*
 * The value at quantile q (0..1): the smallest recorded value v such that at
 * least q of all values are <= v, reported as the middle of its bucket (and
 * never above the largest value recorded). 0 when h is empty.
 */
uint64_t qr_hist_quantile(const qr_hist_t *h, double q);

/* The bucket index of v, and the smallest value of bucket i (for tests). */
int qr_hist_index(uint64_t v);
uint64_t qr_hist_bucket_low(int i);

#endif
