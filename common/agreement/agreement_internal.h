/*
 * agreement_internal.h - the judgement store shared by agreement.c (adding and
 * interning), the analysis (agreement_stats.c, agreement_pairs.c), its JSON
 * form (agreement_json.c, which reads the names) and agreement_csv.c (which
 * interns fields it has validated itself). Private to the qr_agreement library.
 */
#ifndef QR_AGREEMENT_INTERNAL_H
#define QR_AGREEMENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agreement.h"

#define QR_AGR_LIST_MAX 16
#define QR_AGR_PACK_MAX 0xffffu

/* Interned strings: ids run from 0 in order of first appearance. The hash is
 * seeded per agreement set (the same seed for its three tables) from the OS
 * random source, so the slot layout differs from
 * run to run; nothing that is output depends on it (ids are in order of first
 * appearance and every listing is sorted by name).
 *
 * While the strings arrive in increasing order (byte order, or shorter first
 * then byte order, as numbered ids do), a new string is told from a known one
 * by comparing it with the last: then nothing is hashed and the slots stay
 * empty (order != 0). The first string out of order indexes them all and the
 * table hashes from then on (order == 0). */
enum { QR_STRTAB_BYTES = 1, QR_STRTAB_SHORTLEX = 2 };

/* A remembered lookup: a string of up to 16 bytes as two words (see
 * qr_agr_short_key) and its length, and its id. */
typedef struct {
    uint64_t a, b;
    uint32_t len, id;
} qr_strmemo_t;

#define QR_STRTAB_MEMO_BITS 8

typedef struct {
    char *bytes;        /* arena; the strings back to back, each NUL-terminated */
    uint64_t *off;      /* per id and one more: where its string starts in the arena (so
                         * off[n] is the bytes used, and a length is a difference) */
    size_t cap;         /* bytes allocated for the arena */
    uint32_t n;         /* number of ids */
    uint32_t cap_id;    /* capacity of off[], less one */
    uint32_t last;      /* id interned or found last (valid when n > 0) */
    unsigned order;     /* QR_STRTAB_*: orders ids 0..n-1 are strictly increasing in; while
                         * non-zero the slots are empty */
    uint64_t *slots;    /* open addressing: (hash >> 32) << 32 | (id + 1); 0 is empty */
    qr_strmemo_t *memo; /* direct-mapped, 1 << QR_STRTAB_MEMO_BITS entries: the short strings
                         * looked up last, found without hashing (NULL while in order) */
    size_t mask;        /* slot count - 1; slot count is a power of two */
    uint64_t seed;      /* hash seed */
} qr_strtab_t;

/*
 * Judgements are stored in order of addition. While every item's judgements
 * are adjacent and items come in id order (grouped != 0: exports list them
 * so), item i's judgements are the indexes [item_end[i], item_end[i + 1]),
 * and j_item, j_next, item_head and item_cnt are not kept (NULL). The first
 * judgement added to an item other than the latest one builds them, frees
 * item_end and clears grouped. qr_agr_item_count() reads either form.
 */
struct qr_agreement_s {
    qr_strtab_t items;
    qr_strtab_t annotators;
    qr_strtab_t labels;
    uint32_t *j_item; /* per judgement: item id (NULL while grouped) */
    /* Per judgement, its annotator and label ids: both in j_al (annotator |
     * label << 16) while every id is at most QR_AGR_PACK_MAX (packed != 0), in
     * j_ann and j_label from the first id past it on. Read them with
     * qr_agr_ann_of() and qr_agr_label_of(). */
    int packed;
    uint32_t *j_al;
    uint32_t *j_ann;
    uint32_t *j_label;
    size_t n;            /* judgements */
    size_t cap;          /* capacity of the j_* arrays */
    uint32_t *j_next;    /* per judgement: previous judgement of its item + 1, 0 = none
                          * (NULL while grouped) */
    int grouped;         /* see above */
    uint32_t *item_end;  /* item_cap + 1 (while grouped): item i ends where i + 1 starts */
    uint32_t *item_head; /* per item: its latest judgement + 1, 0 = none (NULL while grouped) */
    uint32_t *item_cnt;  /* per item: judgements (NULL while grouped) */
    uint32_t item_cap;   /* capacity of the item arrays (item_end has one more) */
    /* Duplicate check: an item with few judgements walks its judgements; the
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

static inline uint32_t qr_agr_ann_of(const qr_agreement_t *a, size_t j)
{
    return a->packed ? a->j_al[j] & QR_AGR_PACK_MAX : a->j_ann[j];
}

static inline uint32_t qr_agr_label_of(const qr_agreement_t *a, size_t j)
{
    return a->packed ? a->j_al[j] >> 16 : a->j_label[j];
}

/* Judgements on item i. */
static inline uint32_t qr_agr_item_count(const qr_agreement_t *a, uint32_t i)
{
    return a->grouped ? a->item_end[i + 1] - a->item_end[i] : a->item_cnt[i];
}

static inline const char *qr_strtab_str(const qr_strtab_t *t, uint32_t id)
{
    return t->bytes + t->off[id];
}

static inline uint32_t qr_strtab_len(const qr_strtab_t *t, uint32_t id)
{
    return (uint32_t)(t->off[id + 1] - t->off[id] - 1);
}

/* 64 x 64 -> 128-bit multiply, folded (the wyhash/mum primitive). */
static inline uint64_t qr_agr_mum(uint64_t a, uint64_t b)
{
    __extension__ typedef unsigned __int128 u128;
    u128 r = (u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t qr_agr_load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t qr_agr_load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* The bytes of s[0..n), n <= 16, as two words that tell any two strings of
 * the same length apart (the loads overlap instead of reading past s[n-1]). */
static inline void qr_agr_short_key(const char *s, size_t n, uint64_t *a, uint64_t *b)
{
    if (n >= 8) {
        *a = qr_agr_load64(s);
        *b = qr_agr_load64(s + n - 8);
    } else if (n >= 4) {
        *a = qr_agr_load32(s) << 32 | qr_agr_load32(s + n - 4);
        *b = 0;
    } else if (n > 0) {
        *a = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n >> 1] << 8 |
             (unsigned char)s[n - 1];
        *b = 0;
    } else {
        *a = *b = 0;
    }
}

/*
 * A seeded 64-bit hash in the style of wyhash: 16 bytes per multiply, a string
 * of up to 16 bytes (all names in practice) in one multiply plus the
 * finaliser, the tail read in at most two loads (never past s[n-1]). The seed
 * is random per agreement set (seed_new), so names chosen by users cannot be picked to
 * collide in advance.
 */
static inline uint64_t qr_agr_hash(uint64_t seed, const char *s, size_t n)
{
    const uint64_t k0 = UINT64_C(0xa0761d6478bd642f), k1 = UINT64_C(0xe7037ed1a0b428db),
                   k2 = UINT64_C(0x8ebc6af09c88c6e3);
    uint64_t a, b, h = seed ^ qr_agr_mum(seed ^ k0, (uint64_t)n ^ k1);

    if (n <= 16) {
        if (n >= 8) {
            a = qr_agr_load64(s);
            b = qr_agr_load64(s + n - 8);
        } else if (n >= 4) {
            a = qr_agr_load32(s) << 32 | qr_agr_load32(s + n - 4);
            b = 0;
        } else if (n > 0) {
            a = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n >> 1] << 8 |
                (unsigned char)s[n - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = n;
        while (i > 16) {
            h = qr_agr_mum(qr_agr_load64(s) ^ k1, qr_agr_load64(s + 8) ^ h);
            s += 16;
            i -= 16;
        }
        a = qr_agr_load64(s + i - 16);
        b = qr_agr_load64(s + i - 8);
    }
    return qr_agr_mum(k1 ^ (uint64_t)n, qr_agr_mum(a ^ k1, b ^ h ^ k2));
}

/* The seeded hash of s[0..n) for table t. */
static inline uint64_t qr_strtab_hash(const qr_strtab_t *t, const char *s, size_t n)
{
    return qr_agr_hash(t->seed, s, n);
}

/* Prefetches the slot where a string of hash h is looked up first (none while
 * the table is in order: nothing is looked up there). */
static inline void qr_strtab_prefetch(const qr_strtab_t *t, uint64_t h)
{
    if (!t->order)
        __builtin_prefetch(&t->slots[(size_t)h & t->mask]);
}

/* 1 if a[0..n) == b[0..n); short strings without a library call. Both may be
 * read in full (n bytes) and no further. */
static inline int qr_agr_bytes_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y1, b + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n < 4) /* the first, middle and last bytes cover 0 to 3 */
        return n == 0 || (a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1]);
    return memcmp(a, b, n) == 0;
}

/*
 * qr_agreement_add() without its checks of the strings, for a caller that has
 * already checked each one (non-empty, valid UTF-8, no NUL byte). h_item,
 * h_ann and h_label are the strings' qr_strtab_hash() in their tables, or 0 to
 * have them computed here. Same return values otherwise.
 */
int qr_agr_add_valid(qr_agreement_t *a, const char *item, size_t item_len, uint64_t h_item,
                     const char *annotator, size_t annotator_len, uint64_t h_ann, const char *label,
                     size_t label_len, uint64_t h_label);

/* Ids of t in the order the report lists them into out[t->n]: byte order of
 * the strings (a shorter prefix first), or numeric order (then byte order)
 * when values (per id) is non-NULL. In agreement_stats.c. */
void qr_agr_sort_ids(const qr_strtab_t *t, const double *values, uint32_t *out);

/* 1 when every label of a is a number (and there is one): the report then
 * lists labels in numeric order and the numeric coefficients apply. */
static inline int qr_agr_labels_numeric(const qr_agreement_t *a)
{
    return a->labels.n > 0 && a->non_numeric == 0;
}

/* Judgement index of (item id, annotator id), or -1. */
long qr_agr_judgement_of(const qr_agreement_t *a, uint32_t item, uint32_t annotator);

/*
 * qr_agreement_read_csv() with its fast path on (fast != 0: lines without
 * anything unusual are split here, the rest go to libcsv) or off (every byte
 * goes through libcsv, as the reference the tests compare the fast path
 * with). Same results either way.
 */
int qr_agr_read_csv_mode(FILE *f, qr_agreement_t *a, char *err, size_t errlen, int fast);

#endif
