/*
 * agent_hist.c - log-bucket latency histogram (see agent_hist.h).
 *
 * Bucket layout: index v for v < 64; above, with m the position of v's
 * highest set bit (m >= 6) and shift = m - 5, index shift * 32 + (v >> shift),
 * where v >> shift lies in [32, 64). So bucket i >= 64 starts at
 * (32 + i % 32) << (i / 32 - 1) and is 2^(i / 32 - 1) wide.
 */
#include "agent_hist.h"

#include <string.h>

void qr_hist_reset(qr_hist_t *h)
{
    memset(h, 0, sizeof *h);
}

int qr_hist_index(uint64_t v)
{
    if (v < 2 * QR_HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - QR_HIST_SUB_BITS;
    return shift * QR_HIST_SUB + (int)(v >> shift);
}

uint64_t qr_hist_bucket_low(int i)
{
    if (i < 2 * QR_HIST_SUB)
        return (uint64_t)i;
    int shift = i / QR_HIST_SUB - 1;
    return (uint64_t)(QR_HIST_SUB + i % QR_HIST_SUB) << shift;
}

/* Width of bucket i (values it covers). */
static uint64_t bucket_width(int i)
{
    return i < 2 * QR_HIST_SUB ? 1 : (uint64_t)1 << (i / QR_HIST_SUB - 1);
}

void qr_hist_record(qr_hist_t *h, uint64_t v)
{
    h->buckets[qr_hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

void qr_hist_merge(qr_hist_t *into, const qr_hist_t *from)
{
    for (int i = 0; i < QR_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t qr_hist_quantile(const qr_hist_t *h, double q)
{
    if (!h->count)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++; /* ceil, without libm */
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < QR_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t mid = qr_hist_bucket_low(i) + (bucket_width(i) - 1) / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}
