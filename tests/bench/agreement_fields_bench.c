/*
 * agreement_fields_bench.c - benchmark (not a test) of the field agreement
 * library (agreement_fields.h, issue 15): the wall time to add the
 * judgements and compute the whole report (qr_fields_json, no per-item
 * list), median of RUNS runs (default 5).
 *
 *   multi_choice: 1,000,000 judgements: 200,000 items x 5 annotators of 50,
 *     10 choices; each annotator copies the item's 1-3 true tags, flipping
 *     each choice with probability 0.1 (limit 0.5 s).
 *   spans: 100,000 span annotations: 10,000 items x 5 annotators x 2 spans of
 *     3 labels over a 16-word text given per item (so the token alpha runs
 *     too); a span is kept (80 %), shifted (10 %) or moved elsewhere (10 %)
 *     (limit 1 s).
 *
 * Build: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release &&
 *        cmake --build build-rel --target agreement_fields_bench
 * Usage: build-rel/bin/agreement_fields_bench [RUNS]
 * Prints one line per case: "CASE median S min S max S (CPU median S) ..." and
 * the figures computed (so a broken run shows); the CPU time (user + system)
 * is what load from other processes does not inflate.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agreement_fields.h"
#include "bench_util.h"

enum { ITEMS = 200000, PER_ITEM = 5, ANNS = 50, CHOICES = 10 };
enum { SITEMS = 10000, SPANS_PER = 2, WORDS = 16 };

static char item_names[ITEMS][12], ann_names[ANNS][8];
static const char *choice_names[CHOICES] = {"c0", "c1", "c2", "c3", "c4",
                                            "c5", "c6", "c7", "c8", "c9"};
static const size_t choice_lens[CHOICES] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};

typedef struct {
    uint32_t ann;
    uint16_t mask;
} mjudgement_t;

/* CPU seconds of this process (user + system): the figure that load from
 * other processes on the machine does not inflate. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double last_cpu; /* CPU seconds of the last run_* */

static double figure(const json_t *r, const char *field, const char *key)
{
    const json_t *m = json_object_get(
        json_object_get(json_object_get(json_object_get(r, "fields"), field), "metrics"), key);
    return json_is_number(json_object_get(m, "value"))
               ? json_number_value(json_object_get(m, "value"))
               : -99;
}

static double run_multi(const mjudgement_t *js, double *alpha)
{
    const char *names[CHOICES];
    size_t lens[CHOICES];
    double t0 = now(), c0 = cpu_now();
    qr_fields_t *fs = qr_fields_new();
    int f = qr_fields_declare(fs, "tags", 4, QR_FIELD_MULTI_CHOICE);
    qr_fields_set_choices(fs, f, choice_names, choice_lens, CHOICES);
    for (size_t i = 0; i < ITEMS; i++) {
        for (int k = 0; k < PER_ITEM; k++) {
            const mjudgement_t *j = &js[i * PER_ITEM + k];
            size_t n = 0;
            for (int c = 0; c < CHOICES; c++) {
                if (j->mask >> c & 1) {
                    names[n] = choice_names[c];
                    lens[n++] = 2;
                }
            }
            if (qr_fields_add_multi(fs, f, item_names[i], strlen(item_names[i]), ann_names[j->ann],
                                    strlen(ann_names[j->ann]), names, lens, n) != 0) {
                fprintf(stderr, "agreement_fields_bench: add failed\n");
                exit(1);
            }
        }
    }
    json_t *r = qr_fields_json(fs, 0);
    double t = now() - t0;
    last_cpu = cpu_now() - c0;
    *alpha = figure(r, "tags", "krippendorff_alpha_masi");
    json_decref(r);
    qr_fields_free(fs);
    return t;
}

typedef struct {
    uint32_t ann;
    qr_span_value_t s[SPANS_PER];
} sjudgement_t;

static const char *labels[] = {"ORG", "PER", "LOC"};

static double run_spans(const sjudgement_t *js, char (*texts)[160], double out[3])
{
    double t0 = now(), c0 = cpu_now();
    qr_fields_t *fs = qr_fields_new();
    int f = qr_fields_declare(fs, "ents", 4, QR_FIELD_SPANS);
    for (size_t i = 0; i < SITEMS; i++) {
        qr_fields_set_text(fs, f, item_names[i], strlen(item_names[i]), texts[i], strlen(texts[i]));
        for (int k = 0; k < PER_ITEM; k++) {
            const sjudgement_t *j = &js[i * PER_ITEM + k];
            if (qr_fields_add_spans(fs, f, item_names[i], strlen(item_names[i]), ann_names[j->ann],
                                    strlen(ann_names[j->ann]), j->s, SPANS_PER) != 0) {
                fprintf(stderr, "agreement_fields_bench: add failed\n");
                exit(1);
            }
        }
    }
    json_t *r = qr_fields_json(fs, 0);
    double t = now() - t0;
    last_cpu = cpu_now() - c0;
    out[0] = figure(r, "ents", "span_f1_exact");
    out[1] = figure(r, "ents", "span_f1_overlap");
    out[2] = figure(r, "ents", "token_alpha_nominal");
    json_decref(r);
    qr_fields_free(fs);
    return t;
}

static void report(const char *name, double *t, double *c, int runs, double limit,
                   const char *extra)
{
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    qsort(c, (size_t)runs, sizeof(double), cmp_double);
    printf("%-13s median %.3f s  min %.3f s  max %.3f s  (CPU median %.3f s)  limit %.2f s  %s  "
           "(%s)\n",
           name, t[(runs - 1) / 2], t[0], t[runs - 1], c[(runs - 1) / 2], limit,
           t[(runs - 1) / 2] <= limit ? "ok" : "OVER", extra);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    rng = 0x2545f4914f6cdd1dull;
    if (runs < 1 || runs > 100)
        runs = 5;
    for (int i = 0; i < ITEMS; i++)
        snprintf(item_names[i], sizeof(item_names[i]), "item-%06d", i);
    for (int a = 0; a < ANNS; a++)
        snprintf(ann_names[a], sizeof(ann_names[a]), "ann-%02d", a);

    /* multi_choice data */
    mjudgement_t *mj = xmalloc((size_t)ITEMS * PER_ITEM * sizeof(*mj));
    for (size_t i = 0; i < ITEMS; i++) {
        uint16_t truth = 0;
        int ntrue = 1 + (int)(rnd() % 3);
        while (__builtin_popcount(truth) < ntrue)
            truth |= (uint16_t)(1u << (rnd() % CHOICES));
        uint32_t start = (uint32_t)(rnd() % ANNS);
        for (int k = 0; k < PER_ITEM; k++) {
            uint16_t m = truth;
            for (int c = 0; c < CHOICES; c++)
                if (rnd() % 10 == 0)
                    m ^= (uint16_t)(1u << c);
            mj[i * PER_ITEM + k].ann = (start + (uint32_t)k * 7) % ANNS;
            mj[i * PER_ITEM + k].mask = m;
        }
    }

    /* spans data: texts of WORDS words of 3-8 letters */
    char(*texts)[160] = xmalloc(SITEMS * sizeof(*texts));
    sjudgement_t *sj = xmalloc((size_t)SITEMS * PER_ITEM * sizeof(*sj));
    for (size_t i = 0; i < SITEMS; i++) {
        int64_t ws[WORDS], we[WORDS], pos = 0;
        char *t = texts[i];
        for (int w = 0; w < WORDS; w++) {
            int len = 3 + (int)(rnd() % 6);
            ws[w] = pos;
            for (int c = 0; c < len; c++)
                t[pos++] = (char)('a' + rnd() % 26);
            we[w] = pos;
            t[pos++] = ' ';
        }
        t[pos - 1] = '\0';
        qr_span_value_t truth[SPANS_PER];
        for (int s = 0; s < SPANS_PER; s++) {
            int w = s * (WORDS / SPANS_PER) + (int)(rnd() % (WORDS / SPANS_PER - 1));
            int l = (int)(rnd() % 3);
            truth[s] = (qr_span_value_t){ws[w], we[w + 1], labels[l], 3};
        }
        for (int k = 0; k < PER_ITEM; k++) {
            sjudgement_t *j = &sj[i * PER_ITEM + k];
            j->ann = (uint32_t)((i * 3 + (size_t)k * 11) % ANNS);
            for (int s = 0; s < SPANS_PER; s++) {
                j->s[s] = truth[s];
                uint64_t r = rnd() % 10;
                if (r == 8) {
                    j->s[s].start += 1;
                } else if (r == 9) {
                    int w = (int)(rnd() % WORDS);
                    j->s[s].start = ws[w];
                    j->s[s].end = we[w];
                }
            }
        }
    }

    double *t = xmalloc((size_t)runs * sizeof(double)), alpha = 0, sp[3] = {0, 0, 0};
    double *c = xmalloc((size_t)runs * sizeof(double));
    char extra[200];
    run_multi(mj, &alpha); /* warm-up */
    for (int r = 0; r < runs; r++) {
        t[r] = run_multi(mj, &alpha);
        c[r] = last_cpu;
    }
    snprintf(extra, sizeof(extra), "1000000 judgements, alpha_masi %.4f", alpha);
    report("multi_choice", t, c, runs, 0.5, extra);
    double multi_median = t[(runs - 1) / 2], multi_cpu = c[(runs - 1) / 2];

    run_spans(sj, texts, sp);
    for (int r = 0; r < runs; r++) {
        t[r] = run_spans(sj, texts, sp);
        c[r] = last_cpu;
    }
    snprintf(extra, sizeof(extra),
             "%d span annotations, f1_exact %.4f, f1_overlap %.4f, token_alpha %.4f",
             SITEMS * PER_ITEM * SPANS_PER, sp[0], sp[1], sp[2]);
    report("spans", t, c, runs, 1.0, extra);
    printf("JSON {\"multi_choice_median_s\": %.4f, \"multi_choice_cpu_median_s\": %.4f, "
           "\"spans_median_s\": %.4f, \"spans_cpu_median_s\": %.4f, \"runs\": %d}\n",
           multi_median, multi_cpu, t[(runs - 1) / 2], c[(runs - 1) / 2], runs);
    free(t);
    free(c);
    free(mj);
    free(sj);
    free(texts);
    return 0;
}
