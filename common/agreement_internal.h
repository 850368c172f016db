/*
 * agreement_internal.h - the judgement store shared by agreement.c (adding and
 * interning) and agreement_stats.c (the coefficients). Private to the
 * qr_agreement library.
 */
#ifndef QR_AGREEMENT_INTERNAL_H
#define QR_AGREEMENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agreement.h"

#define QR_AGR_LIST_MAX 16

/* Interned strings: ids run from 0 in order of first appearance. */
typedef struct {
    char *bytes;     /* arena; each string is NUL-terminated */
    size_t used;     /* bytes used in the arena */
    size_t cap;      /* bytes allocated for the arena */
    size_t *off;     /* per id: offset of its string in bytes */
    uint32_t *len;   /* per id: length in bytes, without the NUL */
    uint32_t n;      /* number of ids */
    uint32_t cap_id; /* capacity of off[] and len[] */
    uint32_t last;   /* id interned or found last (valid when n > 0) */
    uint64_t *slots; /* open addressing: (hash >> 32) << 32 | (id + 1); 0 is empty */
    size_t mask;     /* slot count - 1; slot count is a power of two */
} qr_strtab_t;

struct qr_agreement_s {
    qr_strtab_t items;
    qr_strtab_t annotators;
    qr_strtab_t labels;
    uint32_t *j_item;    /* per judgement: item id */
    uint32_t *j_ann;     /* per judgement: annotator id */
    uint32_t *j_label;   /* per judgement: label id */
    size_t n;            /* judgements */
    size_t cap;          /* capacity of the j_* arrays */
    uint32_t *j_next;    /* per judgement: previous judgement of its item + 1, 0 = none */
    uint32_t *item_head; /* per item: its latest judgement + 1, 0 = none */
    uint32_t *item_cnt;  /* per item: judgements */
    uint32_t item_cap;   /* capacity of item_head[] and item_cnt[] */
    /* Duplicate check: an item with few judgements walks its j_next list; the
     * judgements of items with QR_AGR_LIST_MAX or more go into this hash set,
     * so the common case touches no large table. */
    uint64_t *seen;              /* (item + 1) << 32 | annotator; 0 is empty; NULL until needed */
    uint32_t *seen_j;            /* per slot of seen: judgement index */
    size_t seen_mask;            /* slot count - 1 */
    size_t seen_n;               /* keys in seen */
    double *label_value;         /* per label id: its number, when numeric */
    unsigned char *label_is_num; /* per label id: 1 if it parses as a decimal number */
    size_t label_cap;            /* capacity of the two arrays above */
    uint32_t non_numeric;        /* labels that are not numbers */
};

static inline const char *qr_strtab_str(const qr_strtab_t *t, uint32_t id)
{
    return t->bytes + t->off[id];
}

#endif
