/*
 * agreement_stats_internal.h - the analysis of one report, shared by the
 * files that compute it (agreement_stats.c: layouts and coefficients;
 * agreement_pairs.c: the pair table) and the one that renders it
 * (agreement_json.c). Private to the qr_agreement library.
 */
#ifndef QR_AGREEMENT_STATS_INTERNAL_H
#define QR_AGREEMENT_STATS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agreement_internal.h"

enum { ST_DEFINED, ST_UNDEFINED, ST_NOT_APPLICABLE };

typedef struct {
    int status;
    double value;     /* meaningful only when status == ST_DEFINED */
    char reason[200]; /* set when status != ST_DEFINED */
} coef_t;

/* The coefficients, in the order agreement_json.c lists their names. */
enum {
    M_PERCENT,
    M_COHEN,
    M_COHEN_LINEAR,
    M_COHEN_QUADRATIC,
    M_SCOTT,
    M_FLEISS,
    M_DAVIES_FLEISS,
    M_ALPHA_NOMINAL,
    M_ALPHA_ORDINAL,
    M_ALPHA_INTERVAL,
    M_ALPHA_RATIO,
    M_GWET,
    M_COUNT
};

/* One annotator pair with shared items; ranks index the name-sorted order. */
typedef struct {
    uint32_t a, b;     /* annotator ranks, a < b */
    uint64_t items;    /* items both labeled */
    uint64_t agree;    /* of those, items with the same label */
    uint64_t sum_prod; /* sum over labels of (a's count) * (b's count) on those items */
} pair_t;

typedef struct {
    const qr_agreement_t *a;
    uint32_t ni, na, nl;
    size_t n;
    const uint32_t *istart; /* ni + 1: item i's judgements are positions istart[i]..istart[i+1] */
    uint32_t *own_istart;   /* istart when s owns it, else NULL (it is a's item_end) */
    /* Per position, its annotator and label ids (read them with an_ann,
     * an_rank and an_lab): packed in ipack as in qr_agreement_t.j_al, or in
     * iann and ilab. */
    const uint32_t *ipack;
    const uint32_t *iann;
    const uint32_t *ilab;
    uint32_t *own_pos;     /* the arrays above when s owns them (one block), else NULL: they are
                            * a's (grouped judgements are in item order already) */
    uint32_t *pitem;       /* per position: item id */
    uint32_t *astart;      /* na + 1: by annotator rank, into apos */
    uint32_t *apos;        /* item-order positions grouped by annotator rank */
    uint32_t *ann_by_rank; /* annotator ids in name order */
    uint32_t *rank_of_ann; /* inverse of ann_by_rank */
    uint32_t *lab_order;   /* label ids in output order */
    uint64_t *label_count; /* per label id: judgements */
    uint32_t labels_used;  /* labels with at least one judgement (all of them) */
    int numeric;           /* every label is a number */
    uint32_t nlev;         /* distinct numeric values */
    double *lev_value;     /* per level, ascending */
    uint32_t *lev_of_label;
    uint32_t pairable; /* items with >= 2 judgements */
    coef_t m[M_COUNT];
    pair_t *pairs;
    size_t npairs, cap_pairs;
    uint64_t *maj_agree;    /* per rank */
    uint64_t *maj_compared; /* per rank */
    double *item_agr;       /* per item (per_item only): share of agreeing pairs, or -1 */
    int64_t *item_major;    /* per item (per_item only): unique plurality label, or -1 */
    uint32_t *item_top;     /* per item (per_item only): judgements with that label, or 0 */
} an_t;

/* The annotator id, the annotator rank and the label id of position p. */
static inline uint32_t an_ann(const an_t *s, uint32_t p)
{
    return s->ipack ? s->ipack[p] & QR_AGR_PACK_MAX : s->iann[p];
}

static inline uint32_t an_rank(const an_t *s, uint32_t p)
{
    return s->rank_of_ann[an_ann(s, p)];
}

static inline uint32_t an_lab(const an_t *s, uint32_t p)
{
    return s->ipack ? s->ipack[p] >> 16 : s->ilab[p];
}

/* The label ids of positions b..e into lab[0..e-b) and, when rank is not
 * NULL, their annotator ranks into rank[]. */
static inline void an_decode(const an_t *s, uint32_t b, uint32_t e, uint32_t *lab, uint32_t *rank)
{
    if (s->ipack) {
        for (uint32_t p = b; p < e; p++) {
            uint32_t v = s->ipack[p];
            lab[p - b] = v >> 16;
            if (rank)
                rank[p - b] = s->rank_of_ann[v & QR_AGR_PACK_MAX];
        }
    } else {
        for (uint32_t p = b; p < e; p++) {
            lab[p - b] = s->ilab[p];
            if (rank)
                rank[p - b] = s->rank_of_ann[s->iann[p]];
        }
    }
}

/* Fills s (its previous contents are ignored) with the analysis of a: the
 * layouts, every coefficient and, when per_item, the per-item results (the
 * pair table is a pass of its own, qr_agr_pair_table). Free with
 * qr_agr_analysis_free. */
void qr_agr_analyse(an_t *s, const qr_agreement_t *a, int per_item);

/* Frees what s holds (not s itself). */
void qr_agr_analysis_free(an_t *s);

/* Cohen's kappa of a pair from its counts (see agreement_stats.c). */
void qr_agr_kappa_counts(coef_t *c, uint64_t n, uint64_t agree, uint64_t sum_prod);

/* Builds the annotator-major layout (pitem, apos) if not built yet. */
void qr_agr_layout_by_annotator(an_t *s);

/* Fills s->pairs, in order of (a, b) rank (agreement_pairs.c). */
void qr_agr_pair_table(an_t *s);

/* Moves the per-item results out of s into a new iterator. */
qr_agreement_items_t *qr_agr_items_new(an_t *s);

#endif
