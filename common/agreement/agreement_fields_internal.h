/*
 * agreement_fields_internal.h - the per-field judgement store shared by the
 * files of agreement_fields.h: adding values (agreement_fields.c), the text
 * helpers (agreement_text.c), the metrics (agreement_fields_metrics.c), the
 * consensus (agreement_consensus.c) and the JSON report
 * (agreement_fields_json.c). Private to the qr_agreement library.
 *
 * Every value is interned per field: judgements hold value ids, and the
 * metrics work on the distinct values of an item with their counts, so equal
 * values are compared once (a coincidence matrix over distinct values).
 */
#ifndef QR_AGREEMENT_FIELDS_INTERNAL_H
#define QR_AGREEMENT_FIELDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agreement_fields.h"
#include "agreement_geom.h"

/* Byte strings to dense ids (0, 1, ... in order of first appearance). Keys
 * live in one arena; the slot table holds ids + 1 (0: empty) under a hash tag, probed
 * linearly from the key's hash, at most half full. */
typedef struct {
    char *arena; /* keys, each followed by a NUL */
    size_t used, cap;
    uint64_t *key;  /* per id: offset << 24 | length (lengths < 16 MiB), see fmap_* */
    uint64_t *hash; /* per id: its hash */
    uint32_t n, cap_id;
    uint32_t last;  /* id interned or found last (valid when n > 0) */
    uint64_t *slot; /* hash >> 32 << 32 | (id + 1), or 0 */
    uint32_t nslot; /* a power of two */
    uint64_t seed;
} qr_fmap_t;

void qr_fmap_init(qr_fmap_t *m);
void qr_fmap_free(qr_fmap_t *m);
/* Id of key[0..len) (added when new: *added = 1). QR_ETOOBIG for a key of
 * 16 MiB or more, or past 2^32 - 2 ids. */
int qr_fmap_intern(qr_fmap_t *m, const void *key, size_t len, uint32_t *id, int *added);
/* Id, or -1. */
long qr_fmap_find(const qr_fmap_t *m, const void *key, size_t len);
const char *qr_fmap_str(const qr_fmap_t *m, uint32_t id);
size_t qr_fmap_len(const qr_fmap_t *m, uint32_t id);
/* Byte order of the names of two ids (qsort_r comparator; names: the map). */
int qr_fmap_cmp_ids(const void *p, const void *q, void *names);
/* ids[0..n) into byte order of their names in m (one pass when sorted). */
void qr_fmap_sort_ids(const qr_fmap_t *m, uint32_t *ids, size_t n);

/* One judgement of a field. */
typedef struct {
    uint32_t item, ann, val; /* ids */
    uint32_t next;           /* the item's previous judgement + 1, 0 none */
} qr_judgement_t;

/* One field's store. */
typedef struct {
    char *name;
    qr_field_type_t type;
    qr_agreement_t *agr; /* choice and rating: the issue-4 engine */
    qr_judgement_t *j;   /* per judgement */
    size_t n, cap;
    uint32_t *item_head; /* per item id: its latest judgement + 1, 0 none */
    uint32_t *item_cnt;  /* per item id: judgements */
    size_t item_cap;
    qr_fmap_t big;   /* (item, annotator) of the judgements of items with many */
    uint32_t *big_j; /* per id of big: the judgement */
    size_t big_cap;

    qr_fmap_t vals; /* value key -> value id */
    /* Choices (choice, multi_choice) or labels (spans, boxes): ids in schema
     * order first. */
    qr_fmap_t choices;
    uint32_t schema_choices; /* how many were declared */
    /* multi_choice: values as given (choices length-prefixed, in the given
     * order) -> value id, for the first RAW_MAX distinct ones */
    qr_fmap_t raw;
    uint32_t *raw_val;
    size_t raw_cap;

    /* per value id: */
    size_t vcap;
    double *v_num;   /* rating: the number */
    uint32_t *v_off; /* multi_choice: into set_ids; spans, boxes: into spans/boxes; text: norm id */
    uint32_t *v_cnt; /* elements */
    uint64_t *v_mask;  /* multi_choice: bit c for choice c < 64 */
    uint32_t *set_ids; /* multi_choice: sorted choice ids of every set */
    size_t set_used, set_cap;
    int wide; /* multi_choice: some choice id >= 64 */
    qr_span_t *spans;
    qr_box_t *boxes;
    size_t geo_used, geo_cap;

    /* text: normalized forms (id = v_off[value]) as code points */
    qr_fmap_t norms;
    uint32_t *norm_cp_off, *norm_cp_len;
    int32_t *cps;
    size_t cps_used, cps_cap, norm_cap;

    /* rating grid */
    int has_scale;
    double scale_min, scale_step;

    /* spans: the items' texts (equal texts stored once); per item id: its
     * text's id + 1, 0 none */
    qr_fmap_t texts;
    uint32_t *item_text;
    size_t item_text_cap;
} qr_field_t;

struct qr_fields_s {
    qr_fmap_t items, anns;
    qr_field_t *f[QR_FIELDS_MAX];
    int nf;
    double iou;
};

/* Records judgement (item id, annotator id, value id) in fd; the caller has
 * checked that (item, annotator) is new in fd. */
void qr_field_push(qr_field_t *fd, uint32_t it, uint32_t an, uint32_t v);

/* The analysis of one field: the item-major layout and every figure. */
typedef struct {
    int status; /* ST_* of agreement_stats_internal.h: 0 defined, 1 undefined, 2 n/a */
    double value;
    char reason[160];
} qr_fig_t;

enum { QR_FIG_DEFINED, QR_FIG_UNDEFINED, QR_FIG_NA };

typedef struct {
    const qr_fields_t *fs;
    const qr_field_t *fd;
    uint32_t ni;         /* item ids with judgements of this field are in items[] */
    uint32_t *items;     /* item ids (in byte order of names when asked) */
    uint32_t *istart;    /* per listed item: its judgements at jpos[istart[i]..istart[i+1]) */
    uint32_t *jpos;      /* judgement indexes grouped by item */
    uint32_t nann;       /* annotators with judgements of this field */
    uint32_t *anns;      /* their ids, byte order */
    uint32_t *ann_rank;  /* per annotator id: its rank in anns[], or UINT32_MAX */
    uint32_t *ann_j;     /* per rank: judgements */
    double *ann_score;   /* per rank: sum of pair scores */
    uint64_t *ann_pairs; /* per rank: pairs */
    uint32_t pairable;   /* listed items with >= 2 judgements */
    /* per listed item */
    double *item_agr; /* mean pair score, or -1 */
    /* figures, by type */
    qr_fig_t fig[4];
    qr_fig_t *per_choice; /* multi_choice: per choice id */
    uint32_t nchoice;
} qr_field_an_t;

/* Builds the layout and computes every figure of field fd (not choice or
 * rating, whose figures come from the issue-4 engine; for them only the
 * layout, the per-item agreement and the per-annotator counts). */
void qr_field_analyse(qr_field_an_t *an, const qr_fields_t *fs, const qr_field_t *fd,
                      int sorted_items);
void qr_field_analysis_free(qr_field_an_t *an);

/* The consensus of judgements js[0..k) of field fd as JSON (a new
 * reference, JSON null when none) and its support share. */
json_t *qr_field_consensus_of(const qr_fields_t *fs, const qr_field_t *fd, const uint32_t *js,
                              size_t k, double *support);

/* Choice ids into output order: the schema's first (in its order), then the
 * others in byte order. */
void qr_field_choice_order(const qr_field_t *fd, uint32_t *ids, size_t n);

/* Value id's spans/boxes/normalized text. */
static inline const qr_span_t *qr_field_spans(const qr_field_t *fd, uint32_t v)
{
    return fd->spans + fd->v_off[v];
}
static inline const qr_box_t *qr_field_boxes(const qr_field_t *fd, uint32_t v)
{
    return fd->boxes + fd->v_off[v];
}

/* Text helpers (agreement_text.c). */
/* Normalizes s into code points (*cp, *ncp; free *cp) and UTF-8 (*out,
 * *nout; free *out). Returns 0 or QR_EINVAL (invalid UTF-8). */
int qr_text_normalize_cp(const char *s, size_t n, int32_t **cp, size_t *ncp, char **out,
                         size_t *nout);
/* Levenshtein distance of two code point strings. */
size_t qr_text_lev_cp(const int32_t *a, size_t na, const int32_t *b, size_t nb);
/* Whitespace tokens of a UTF-8 text as code point ranges: *starts and *ends
 * (one allocation: free *starts only), count returned. */
size_t qr_text_tokens(const char *s, size_t n, int64_t **starts, int64_t **ends);

#endif
