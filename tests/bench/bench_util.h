/*
 * bench_util.h - what the C benchmarks of tests/bench share: a fixed-seed
 * xorshift generator (set rng to change the seed), a monotonic clock in
 * seconds, a comparator for medians and an allocation that exits on
 * out-of-memory. Static: each benchmark is one file.
 */
#ifndef QR_BENCH_UTIL_H
#define QR_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static inline uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int cmp_double(const void *p, const void *q)
{
    double x = *(const double *)p, y = *(const double *)q;
    return (x > y) - (x < y);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "benchmark: out of memory\n");
        exit(1);
    }
    return p;
}

#endif
