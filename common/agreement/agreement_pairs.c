/*
 * agreement_pairs.c - the pair table of an agreement report: for each pair
 * of annotators with items in common, how many items they share, on how
 * many they gave the same label, and the sum over labels of the products of
 * their label counts (what Cohen's kappa of the pair needs; the JSON form
 * renders it under "pairwise").
 *
 * Two passes compute the same table. The dense one counts straight into a
 * table indexed by pair and label when that table is small (tens of
 * annotators, a handful of labels); the sparse one, for everything else,
 * buckets the judgements each annotator shares with higher-ranked ones.
 * Both cost what the data has: k(k-1)/2 pairs per item with k judgements.
 */
#include <stdint.h>
#include <stdlib.h>

#include "agreement_stats_internal.h"
#include "util.h"

/* One pair instance gathered while scanning an annotator's items. */
typedef struct {
    uint32_t b;  /* the other annotator's rank */
    uint32_t la; /* label of the lower-ranked annotator */
    uint32_t lb; /* label of the other annotator */
} rec_t;

static int cmp_u32(const void *p, const void *q)
{
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    return (x > y) - (x < y);
}

/* Largest dense pair table, in label counters per side: (annotator pairs) x
 * labels. Above it the sparse pass below is used. Overridable for tests. */
#ifndef QR_AGR_DENSE_PAIR_COUNTERS
#define QR_AGR_DENSE_PAIR_COUNTERS (1u << 20)
#endif

/*
 * The pair table when annotator pairs x labels is small (the usual case: tens
 * of annotators, a handful of labels): one sequential pass over the items,
 * each pair of judgements on an item counted straight into a dense table
 * indexed by the pair's rank. Returns 0 when the table would be too big.
 */
static int pair_pass_dense(an_t *s)
{
    if (s->na < 2)
        return 1;
    uint64_t na = s->na, np = na * (na - 1) / 2;
    if (np > QR_AGR_DENSE_PAIR_COUNTERS || np * s->nl > QR_AGR_DENSE_PAIR_COUNTERS)
        return 0;
    uint32_t *items = qr_xcalloc(np, sizeof(uint32_t));
    uint32_t *agree = qr_xcalloc(np, sizeof(uint32_t));
    uint32_t *ca = qr_xcalloc(np * s->nl, sizeof(uint32_t));
    uint32_t *cb = qr_xcalloc(np * s->nl, sizeof(uint32_t));
    /* Pairs (a, b), a < b, are numbered in order of a then b: pair (a, b) is
     * row[a] + b. */
    uint64_t *row = qr_xmalloc(na * sizeof(uint64_t));
    uint32_t *lab = qr_xmalloc(na * sizeof(uint32_t)), *rank = qr_xmalloc(na * sizeof(uint32_t));
    for (uint64_t ra = 0; ra < na; ra++)
        row[ra] = ra * na - ra * (ra + 1) / 2 - ra - 1;
    for (uint32_t i = 0; i < s->ni; i++) {
        uint32_t b = s->istart[i], k = s->istart[i + 1] - b; /* k <= na */
        an_decode(s, b, b + k, lab, rank);
        for (uint32_t x = 0; x < k; x++) {
            for (uint32_t y = x + 1; y < k; y++) {
                uint32_t ra = rank[x], rb = rank[y], la = lab[x], lb = lab[y];
                if (ra > rb) {
                    uint32_t t = ra;
                    ra = rb, rb = t;
                    t = la;
                    la = lb, lb = t;
                }
                uint64_t idx = row[ra] + rb;
                items[idx]++;
                agree[idx] += la == lb;
                ca[idx * s->nl + la]++;
                cb[idx * s->nl + lb]++;
            }
        }
    }
    free(row);
    free(lab);
    free(rank);
    uint64_t idx = 0;
    for (uint32_t ra = 0; ra < s->na; ra++) {
        for (uint32_t rb = ra + 1; rb < s->na; rb++, idx++) {
            if (items[idx] == 0)
                continue;
            uint64_t sp = 0;
            const uint32_t *pa = ca + idx * s->nl, *pb = cb + idx * s->nl;
            for (uint32_t l = 0; l < s->nl; l++)
                sp += (uint64_t)pa[l] * pb[l];
            if (s->npairs == s->cap_pairs) {
                s->cap_pairs = s->cap_pairs ? s->cap_pairs * 2 : 256;
                s->pairs = qr_xrealloc(s->pairs, s->cap_pairs * sizeof(*s->pairs));
            }
            pair_t *pp = &s->pairs[s->npairs++];
            pp->a = ra;
            pp->b = rb;
            pp->items = items[idx];
            pp->agree = agree[idx];
            pp->sum_prod = sp;
        }
    }
    free(items);
    free(agree);
    free(ca);
    free(cb);
    return 1;
}

/*
 * The pair table in general. For each annotator (in name order) gather, over the items it
 * labeled, one record per higher-ranked co-annotator; bucket the records by
 * that co-annotator and reduce each bucket to (items, agree, sum_prod). Work is
 * the number of (pair, shared item) incidences; memory is bounded by the
 * judgements on one annotator's items.
 */
static void pair_pass(an_t *s)
{
    uint32_t *bcnt = qr_xcalloc((size_t)s->na + 1, sizeof(uint32_t));
    uint32_t *btouched = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1);
    uint64_t *ca = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t));
    uint64_t *cb = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t));
    uint32_t *ltouched = qr_xmalloc((size_t)s->nl * sizeof(uint32_t) + 1);
    rec_t *rec = NULL, *sorted = NULL;
    size_t rec_cap = 0;

    qr_agr_layout_by_annotator(s);
    for (uint32_t r = 0; r < s->na; r++) {
        size_t need = 0, nrec = 0;
        for (uint32_t q = s->astart[r]; q < s->astart[r + 1]; q++) {
            uint32_t it = s->pitem[s->apos[q]];
            need += s->istart[it + 1] - s->istart[it] - 1;
        }
        if (need == 0)
            continue;
        if (need > rec_cap) {
            rec_cap = need;
            free(rec);
            free(sorted);
            rec = qr_xmalloc(rec_cap * sizeof(*rec));
            sorted = qr_xmalloc(rec_cap * sizeof(*sorted));
        }
        uint32_t nb = 0;
        for (uint32_t q = s->astart[r]; q < s->astart[r + 1]; q++) {
            uint32_t p = s->apos[q], it = s->pitem[p], la = an_lab(s, p);
            for (uint32_t p2 = s->istart[it]; p2 < s->istart[it + 1]; p2++) {
                uint32_t rb = an_rank(s, p2);
                if (rb <= r)
                    continue;
                rec[nrec].b = rb;
                rec[nrec].la = la;
                rec[nrec].lb = an_lab(s, p2);
                nrec++;
                if (bcnt[rb]++ == 0)
                    btouched[nb++] = rb;
            }
        }
        if (nrec == 0)
            continue;
        qsort(btouched, nb, sizeof(*btouched), cmp_u32);
        /* bcnt becomes each bucket's fill cursor. */
        uint32_t off = 0;
        for (uint32_t t = 0; t < nb; t++) {
            uint32_t c = bcnt[btouched[t]];
            bcnt[btouched[t]] = off;
            off += c;
        }
        for (size_t x = 0; x < nrec; x++)
            sorted[bcnt[rec[x].b]++] = rec[x];
        size_t x = 0;
        for (uint32_t t = 0; t < nb; t++) {
            uint32_t rb = btouched[t], d = 0;
            uint64_t items = 0, agree = 0, sp = 0;
            for (; x < nrec && sorted[x].b == rb; x++) {
                uint32_t la = sorted[x].la, lb = sorted[x].lb;
                items++;
                agree += la == lb;
                if (ca[la] == 0 && cb[la] == 0)
                    ltouched[d++] = la;
                ca[la]++;
                if (ca[lb] == 0 && cb[lb] == 0)
                    ltouched[d++] = lb;
                cb[lb]++;
            }
            for (uint32_t u = 0; u < d; u++) {
                sp += ca[ltouched[u]] * cb[ltouched[u]];
                ca[ltouched[u]] = cb[ltouched[u]] = 0;
            }
            if (s->npairs == s->cap_pairs) {
                s->cap_pairs = s->cap_pairs ? s->cap_pairs * 2 : 256;
                s->pairs = qr_xrealloc(s->pairs, s->cap_pairs * sizeof(*s->pairs));
            }
            pair_t *pp = &s->pairs[s->npairs++];
            pp->a = r;
            pp->b = rb;
            pp->items = items;
            pp->agree = agree;
            pp->sum_prod = sp;
            bcnt[rb] = 0;
        }
    }
    free(rec);
    free(sorted);
    free(bcnt);
    free(btouched);
    free(ca);
    free(cb);
    free(ltouched);
}

void qr_agr_pair_table(an_t *s)
{
    if (!pair_pass_dense(s))
        pair_pass(s);
}
