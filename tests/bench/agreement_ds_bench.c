/*
 * agreement_ds_bench.c - benchmark (not a test) of the Dawid-Skene consensus
 * (agreement_ds.h, issue 16 point 7): the wall and CPU time of one run over
 * 1,000,000 judgements (200,000 items x 5 annotators of 50, K = 10 labels),
 * median of RUNS runs (default 5). Annotator a answers the truth (uniform)
 * with probability 0.5 + 0.45 a / 49, else one of the other 9 labels
 * uniformly.
 *
 *   ds_1m:        qr_dawid_skene_run() on the judgements as dense indexes,
 *                 default options (it stops when it converges);
 *   ds_1m_20it:   the same for exactly 20 iterations (tolerance 0, cap 20),
 *                 the figure the "well under 1 s per ~20 iterations"
 *                 is about (limit 1 s);
 *   ds_1m_store:  qr_dawid_skene_agreement() on an agreement set holding the
 *                 same judgements as names (what `quorumctl agreement
 *                 --method dawid_skene` runs; filling the set is not timed).
 *
 * Build: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release &&
 *        cmake --build build-rel --target agreement_ds_bench
 * Usage: build-rel/bin/agreement_ds_bench [RUNS]
 * Prints one line per case: "CASE median S min S max S (CPU median S) ...",
 * the iterations and the consensus accuracy against the truth (so a broken
 * run shows), then a line "JSON {...}" with the same figures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agreement.h"
#include "agreement_ds.h"
#include "bench_util.h"

enum { ITEMS = 200000, PER_ITEM = 5, ANNS = 50, K = 10, N = ITEMS * PER_ITEM };

static uint32_t item[N], ann[N], lab[N], truth[ITEMS];

/* CPU seconds of this process (user + system): the figure that load from
 * other processes on the machine does not inflate. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    const char *name;
    double wall[100], cpu[100];
    unsigned iterations;
    double accuracy; /* consensus right against the truth, share of items */
    double limit;    /* seconds, or 0 for none */
} bench_case_t;

/* Items are named item-NNNNNN, so the agreement set's report order is the
 * dense indexes' order too: item i is r->label[i] in both. */
static void finish_run(bench_case_t *c, int t, double t0, double c0, qr_dawid_skene_t *r)
{
    size_t right = 0;

    c->wall[t] = now() - t0;
    c->cpu[t] = cpu_now() - c0;
    c->iterations = r->iterations;
    for (uint32_t i = 0; i < ITEMS; i++)
        right += r->label[i] == (int32_t)truth[i];
    c->accuracy = (double)right / ITEMS;
    qr_dawid_skene_free(r);
}

static void run_dense(bench_case_t *c, int t, const qr_dawid_skene_options_t *o)
{
    qr_dawid_skene_t r;
    char err[256];
    double t0 = now(), c0 = cpu_now();
    if (qr_dawid_skene_run(N, item, ann, lab, ITEMS, ANNS, K, o, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "agreement_ds_bench: %s\n", err);
        exit(1);
    }
    finish_run(c, t, t0, c0, &r);
}

static void run_store(bench_case_t *c, int t, const qr_agreement_t *a)
{
    qr_dawid_skene_t r;
    char err[256];
    double t0 = now(), c0 = cpu_now();
    if (qr_dawid_skene_agreement(a, NULL, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "agreement_ds_bench: %s\n", err);
        exit(1);
    }
    finish_run(c, t, t0, c0, &r);
}

static double median(double *v, int runs)
{
    qsort(v, (size_t)runs, sizeof(double), cmp_double);
    return v[(runs - 1) / 2];
}

static void print_case(bench_case_t *c, int runs, char *json, size_t jsize)
{
    double mw = median(c->wall, runs), mc = median(c->cpu, runs);
    printf("%-12s median %.3f s  min %.3f s  max %.3f s  (CPU median %.3f s)  %u iterations  "
           "accuracy %.4f",
           c->name, mw, c->wall[0], c->wall[runs - 1], mc, c->iterations, c->accuracy);
    if (c->limit > 0)
        printf("  limit %.2f s  %s", c->limit, mw <= c->limit ? "ok" : "OVER");
    putchar('\n');
    size_t used = strlen(json);
    snprintf(json + used, jsize - used,
             "%s\"%s\": {\"median_s\": %.4f, \"cpu_median_s\": %.4f, \"min_s\": %.4f, "
             "\"max_s\": %.4f, \"iterations\": %u, \"accuracy\": %.4f}",
             used > 1 ? ", " : "", c->name, mw, mc, c->wall[0], c->wall[runs - 1], c->iterations,
             c->accuracy);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    char json[2048] = "{";
    char name[16], aname[8], lname[4];

    if (runs < 1 || runs > 100)
        runs = 5;
    rng = 0x16d5a11ce16d5a11ull;
    for (uint32_t i = 0, j = 0; i < ITEMS; i++) {
        uint32_t start = (uint32_t)(rnd() % ANNS);
        truth[i] = (uint32_t)(rnd() % K);
        for (uint32_t k = 0; k < PER_ITEM; k++, j++) {
            uint32_t a = (start + k * 7) % ANNS, l = truth[i];
            double acc = 0.5 + 0.45 * a / (ANNS - 1);
            if ((double)(rnd() >> 11) / 9007199254740992.0 >= acc)
                l = (l + 1 + (uint32_t)(rnd() % (K - 1))) % K;
            item[j] = i;
            ann[j] = a;
            lab[j] = l;
        }
    }
    /* The majority vote, for comparison (ties to the lowest label). */
    size_t maj_right = 0;
    for (uint32_t i = 0; i < ITEMS; i++) {
        uint32_t votes[K] = {0}, best = 0;
        for (uint32_t j = i * PER_ITEM; j < (i + 1) * PER_ITEM; j++)
            votes[lab[j]]++;
        for (uint32_t k = 1; k < K; k++)
            best = votes[k] > votes[best] ? k : best;
        maj_right += best == truth[i];
    }

    qr_agreement_t *a = qr_agreement_new();
    for (uint32_t j = 0; j < N; j++) {
        int ni = snprintf(name, sizeof(name), "item-%06u", item[j]);
        int na = snprintf(aname, sizeof(aname), "ann-%02u", ann[j]);
        int nl = snprintf(lname, sizeof(lname), "c%u", lab[j]);
        if (qr_agreement_add(a, name, (size_t)ni, aname, (size_t)na, lname, (size_t)nl) != 0) {
            fprintf(stderr, "agreement_ds_bench: add failed\n");
            return 1;
        }
    }

    qr_dawid_skene_options_t dflt, fixed;
    qr_dawid_skene_options_init(&dflt);
    qr_dawid_skene_options_init(&fixed);
    fixed.tolerance = 0;
    fixed.max_iterations = 20;
    static bench_case_t cases[3] = {
        {.name = "ds_1m"}, {.name = "ds_1m_20it", .limit = 1.0}, {.name = "ds_1m_store"}};
    run_dense(&cases[0], 0, &dflt); /* warm the pages */
    for (int t = 0; t < runs; t++) {
        run_dense(&cases[0], t, &dflt);
        run_dense(&cases[1], t, &fixed);
        run_store(&cases[2], t, a);
    }
    printf("agreement_ds_bench: %d judgements, %d items, %d annotators, K = %d, %d runs; majority "
           "vote accuracy %.4f\n",
           N, ITEMS, ANNS, K, runs, (double)maj_right / ITEMS);
    for (int c = 0; c < 3; c++)
        print_case(&cases[c], runs, json, sizeof(json));
    size_t used = strlen(json);
    snprintf(json + used, sizeof(json) - used, ", \"majority_accuracy\": %.4f, \"runs\": %d}",
             (double)maj_right / ITEMS, runs);
    printf("JSON %s\n", json);
    qr_agreement_free(a);
    return 0;
}
