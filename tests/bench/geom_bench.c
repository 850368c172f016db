/*
 * geom_bench.c - benchmark (not a test) for the span and box geometry of
 * agreement_geom.c: 100,000 spans (and 100,000 boxes) over 5 annotators,
 * spread as 1, 10 or 100 per annotator and item; every annotator pair of
 * every item matched (what span_f1_* and box_* need), then one consensus per
 * item. Prints the median wall time of RUNS runs (default 5) per case.
 *
 * Build: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release &&
 *        cmake --build build-rel --target geom_bench
 * Usage: build-rel/bin/geom_bench [RUNS]
 *
 * Annotators copy a random truth: a span is kept (80 %), shifted by up to 3
 * characters at either end (10 %) or put elsewhere (10 %); a box is kept,
 * moved by up to 2 % or put elsewhere, in the same shares.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agreement_geom.h"
#include "bench_util.h"

enum { ANNOTATORS = 5, TOTAL = 100000 };

static int cmp_span(const void *p, const void *q)
{
    const qr_span_t *x = p, *y = q;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

/* Items x annotators lists, list (i, k) at [start[i*A+k], start[i*A+k+1]). */
typedef struct {
    size_t items, per_list;
    size_t *start;
    qr_span_t *spans;
    qr_box_t *boxes;
} data_t;

static void make_spans(data_t *d)
{
    size_t n = d->items * ANNOTATORS, t = 0;
    qr_span_t *truth = xmalloc(d->per_list * sizeof(*truth));
    d->start = xmalloc((n + 1) * sizeof(size_t));
    d->spans = xmalloc(d->items * ANNOTATORS * d->per_list * sizeof(qr_span_t));
    int64_t len = (int64_t)(d->per_list * 40);
    for (size_t i = 0; i < d->items; i++) {
        for (size_t s = 0; s < d->per_list; s++) {
            int64_t st = (int64_t)(rnd() % (uint64_t)len);
            truth[s] = (qr_span_t){st, st + 3 + (int64_t)(rnd() % 13), (uint32_t)(rnd() % 4)};
        }
        for (size_t k = 0; k < ANNOTATORS; k++) {
            size_t first = t;
            d->start[i * ANNOTATORS + k] = t;
            for (size_t s = 0; s < d->per_list; s++) {
                qr_span_t sp = truth[s];
                unsigned r = (unsigned)(rnd() % 10);
                if (r == 0) {
                    sp.start = (int64_t)(rnd() % (uint64_t)len);
                    sp.end = sp.start + 3 + (int64_t)(rnd() % 13);
                } else if (r == 1) {
                    sp.start += (int64_t)(rnd() % 3);
                    sp.end += (int64_t)(rnd() % 3) + 1;
                }
                d->spans[t++] = sp;
            }
            /* The contract's order; duplicates are rare and harmless. */
            qsort(d->spans + first, t - first, sizeof(qr_span_t), cmp_span);
        }
    }
    d->start[n] = t;
    free(truth);
}

static void make_boxes(data_t *d)
{
    size_t n = d->items * ANNOTATORS, t = 0;
    qr_box_t *truth = xmalloc(d->per_list * sizeof(*truth));
    d->start = xmalloc((n + 1) * sizeof(size_t));
    d->boxes = xmalloc(d->items * ANNOTATORS * d->per_list * sizeof(qr_box_t));
    for (size_t i = 0; i < d->items; i++) {
        for (size_t s = 0; s < d->per_list; s++) {
            double w = 3 + (double)(rnd() % 1000) / 100, h = 3 + (double)(rnd() % 1000) / 100;
            double x = (double)(rnd() % 8000) / 100, y = (double)(rnd() % 8000) / 100;
            truth[s] = (qr_box_t){x, y, w, h, (uint32_t)(rnd() % 4)};
        }
        for (size_t k = 0; k < ANNOTATORS; k++) {
            d->start[i * ANNOTATORS + k] = t;
            for (size_t s = 0; s < d->per_list; s++) {
                qr_box_t b = truth[s];
                unsigned r = (unsigned)(rnd() % 10);
                if (r == 0) {
                    b.x = (double)(rnd() % 8000) / 100;
                    b.y = (double)(rnd() % 8000) / 100;
                } else if (r == 1) {
                    b.x += (double)(rnd() % 200) / 100;
                    b.y += (double)(rnd() % 200) / 100;
                }
                d->boxes[t++] = b;
            }
        }
    }
    d->start[n] = t;
    free(truth);
}

/* Every pair of every item, then one consensus per item; returns seconds of
 * each phase in *match and *cons, and a checksum so nothing is optimized out. */
static double run(const data_t *d, int boxes, double *match, double *cons)
{
    double sum = 0, t0 = now();
    for (size_t i = 0; i < d->items; i++) {
        const size_t *st = d->start + i * ANNOTATORS;
        for (size_t x = 0; x < ANNOTATORS; x++) {
            for (size_t y = x + 1; y < ANNOTATORS; y++) {
                size_t nx = st[x + 1] - st[x], ny = st[y + 1] - st[y];
                if (boxes) {
                    size_t m;
                    double s;
                    qr_boxes_match(d->boxes + st[x], nx, d->boxes + st[y], ny, 0.5, &m, &s);
                    sum += (double)m + s;
                } else {
                    size_t ex, ov;
                    qr_spans_match(d->spans + st[x], nx, d->spans + st[y], ny, &ex, &ov);
                    sum += (double)(ex + ov);
                }
            }
        }
    }
    double t1 = now();
    size_t cap = d->per_list * ANNOTATORS;
    qr_span_t *so = xmalloc(cap * sizeof(*so));
    qr_box_t *bo = xmalloc(cap * sizeof(*bo));
    size_t *sup = xmalloc(cap * sizeof(*sup));
    for (size_t i = 0; i < d->items; i++) {
        const size_t *st = d->start + i * ANNOTATORS;
        size_t counts[ANNOTATORS];
        const qr_span_t *sl[ANNOTATORS];
        const qr_box_t *bl[ANNOTATORS];
        for (size_t k = 0; k < ANNOTATORS; k++) {
            counts[k] = st[k + 1] - st[k];
            sl[k] = d->spans ? d->spans + st[k] : NULL;
            bl[k] = d->boxes ? d->boxes + st[k] : NULL;
        }
        if (boxes)
            sum += (double)qr_boxes_consensus(bl, counts, ANNOTATORS, 0.5, bo, sup, cap);
        else
            sum += (double)qr_spans_consensus(sl, counts, ANNOTATORS, so, sup, cap);
    }
    double t2 = now();
    free(so);
    free(bo);
    free(sup);
    *match = t1 - t0;
    *cons = t2 - t1;
    return sum;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 100) {
        fprintf(stderr, "usage: geom_bench [RUNS (1-100)]\n");
        return 2;
    }
    static const size_t per_list[] = {1, 10, 100};
    for (int boxes = 0; boxes <= 1; boxes++) {
        for (size_t c = 0; c < sizeof(per_list) / sizeof(per_list[0]); c++) {
            data_t d = {TOTAL / ANNOTATORS / per_list[c], per_list[c], NULL, NULL, NULL};
            if (boxes)
                make_boxes(&d);
            else
                make_spans(&d);
            double tm[100], tc[100], check = 0;
            for (int r = 0; r < runs; r++)
                check += run(&d, boxes, &tm[r], &tc[r]);
            qsort(tm, (size_t)runs, sizeof(double), cmp_double);
            qsort(tc, (size_t)runs, sizeof(double), cmp_double);
            printf("%-5s %6zu items x %d annotators x %3zu: %zu %s, %zu pairs; "
                   "match %7.1f ms, consensus %7.1f ms (median of %d; check %.0f)\n",
                   boxes ? "boxes" : "spans", d.items, ANNOTATORS, d.per_list,
                   d.start[d.items * ANNOTATORS], boxes ? "boxes" : "spans",
                   d.items * ANNOTATORS * (ANNOTATORS - 1) / 2, tm[runs / 2] * 1e3,
                   tc[runs / 2] * 1e3, runs, check);
            free(d.start);
            free(d.spans);
            free(d.boxes);
        }
    }
    return 0;
}
