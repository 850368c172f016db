/*
 * agreement.c - the judgement store behind the agreement engine: interning of
 * item, annotator and label strings in hash tables, the (item, annotator)
 * duplicate check, and the label facts (numeric or not) the coefficients need.
 * The coefficients themselves are in agreement_stats.c and agreement_pairs.c,
 * their JSON form in agreement_json.c.
 *
 * Everything is kept in flat arrays of ids, and only what the input needs:
 * judgements grouped by item (as exports are) keep no item id or chain per
 * judgement, ids that fit 16 bits are packed in pairs, names that arrive in
 * order are not hashed. A million judgements of 200,000 items then take about
 * 10 MiB, which matters as much as the instructions: where a fresh page costs
 * microseconds (virtual machines), memory first touched is much of the time.
 */
#include "agreement_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_IDS UINT32_C(0xfffffffe)

/* A hash seed from the OS random source; if that fails, from the clock and
 * addresses (still different per process and per call). */
static uint64_t seed_new(void)
{
    static _Atomic uint64_t counter;
    uint64_t s = 0;

    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)(uintptr_t)&ts ^
            (uint64_t)getpid() << 16 ^
            (atomic_fetch_add(&counter, 1) + 1) * UINT64_C(0x9e3779b97f4a7c15);
    }
    return qr_agr_mum(s ^ UINT64_C(0x9e3779b97f4a7c15), UINT64_C(0xbf58476d1ce4e5b9)) | 1;
}

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

static void strtab_init(qr_strtab_t *t, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    t->off = qr_xcalloc(1, sizeof(*t->off));
    t->mask = 63;
    t->slots = qr_xcalloc(t->mask + 1, sizeof(*t->slots));
    t->seed = seed;
    t->order = QR_STRTAB_BYTES | QR_STRTAB_SHORTLEX;
}

static void strtab_free(qr_strtab_t *t)
{
    free(t->bytes);
    free(t->off);
    free(t->slots);
    free(t->memo);
}

/* Slot index of s in t: the slot holding it, or the empty slot where it goes. */
static inline size_t strtab_probe(const qr_strtab_t *t, const char *s, size_t n, uint64_t h)
{
    uint64_t tag = h >> 32;
    size_t i = (size_t)h & t->mask;

    for (;;) {
        uint64_t v = t->slots[i];
        if (v == 0)
            return i;
        if ((v >> 32) == tag) {
            uint32_t id = (uint32_t)v - 1;
            if (qr_strtab_len(t, id) == n && qr_agr_bytes_eq(qr_strtab_str(t, id), s, n))
                return i;
        }
        i = (i + 1) & t->mask;
    }
}

/* Fills empty slots (a table of at least 2n + 2 of them) with every id,
 * hashing the strings in id order (the arena is read front to back). */
static void strtab_rehash(qr_strtab_t *t, size_t ncap)
{
    uint64_t *ns = qr_xcalloc(ncap, sizeof(*ns));

    for (uint32_t id = 0; id < t->n; id++) {
        uint64_t h = qr_agr_hash(t->seed, qr_strtab_str(t, id), qr_strtab_len(t, id));
        size_t j = (size_t)h & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = (h >> 32) << 32 | ((uint64_t)id + 1);
    }
    free(t->slots);
    t->slots = ns;
    t->mask = ncap - 1;
}

/* The table leaves its ordered mode: every string is hashed into the slots,
 * sized so that the load stays at or below one half. */
static void strtab_index(qr_strtab_t *t)
{
    size_t ncap = t->mask + 1;

    while ((size_t)t->n * 2 + 2 > ncap)
        ncap *= 2;
    strtab_rehash(t, ncap);
    t->order = 0;
    t->memo = qr_xcalloc((size_t)1 << QR_STRTAB_MEMO_BITS, sizeof(*t->memo));
}

/* The memo entry for a short string's key (any mixing will do: a collision
 * only costs a lookup in the slots). */
static inline qr_strmemo_t *strtab_memo(const qr_strtab_t *t, uint64_t ka, uint64_t kb, size_t n)
{
    uint64_t x =
        (ka ^ t->seed) * UINT64_C(0x9e3779b97f4a7c15) ^ (kb + n) * UINT64_C(0xc2b2ae3d27d4eb4f);
    return &t->memo[(x ^ x >> 29) * UINT64_C(0xbf58476d1ce4e5b9) >> (64 - QR_STRTAB_MEMO_BITS)];
}

/* Which orders s[0..n) is above id's string in (QR_STRTAB_* bits), or -1 if
 * it is that string. */
static inline int strtab_above(const qr_strtab_t *t, const char *s, size_t n, uint32_t id)
{
    const char *x = qr_strtab_str(t, id);
    size_t m = qr_strtab_len(t, id);
    int c = memcmp(s, x, n < m ? n : m);

    if (c == 0 && n == m)
        return -1;
    int bytes = c > 0 || (c == 0 && n > m);
    int shortlex = n > m || (n == m && c > 0);
    return (bytes ? QR_STRTAB_BYTES : 0) | (shortlex ? QR_STRTAB_SHORTLEX : 0);
}

/* -1, 0 or 1 as s[0..n) is below, at or above id's string in the order o. */
static inline int strtab_cmp(const qr_strtab_t *t, unsigned o, const char *s, size_t n, uint32_t id)
{
    int up = strtab_above(t, s, n, id);
    return up < 0 ? 0 : ((unsigned)up & o) ? 1 : -1;
}

/* Adds s as a new id (the caller found it absent). */
static inline int strtab_append(qr_strtab_t *t, const char *s, size_t n, uint32_t *id)
{
    if (t->n >= MAX_IDS || n >= UINT32_MAX)
        return QR_ETOOBIG;
    if (t->n == t->cap_id) {
        t->cap_id = t->cap_id ? (t->cap_id > MAX_IDS / 2 ? MAX_IDS : t->cap_id * 2) : 64;
        t->off = qr_xrealloc(t->off, ((size_t)t->cap_id + 1) * sizeof(*t->off));
    }
    size_t used = t->off[t->n];
    if (t->cap - used < n + 1) {
        size_t ncap = t->cap ? t->cap : 4096;
        while (ncap - used < n + 1)
            ncap *= 2;
        t->bytes = qr_xrealloc(t->bytes, ncap);
        t->cap = ncap;
    }
    memcpy(t->bytes + used, s, n);
    t->bytes[used + n] = '\0';
    t->off[t->n + 1] = used + n + 1;
    *id = t->last = t->n++;
    return 0;
}

/* strtab_intern() past its quick checks: the ordered mode, the memo, the
 * slots. */
static __attribute__((noinline)) int strtab_intern_slow(qr_strtab_t *t, const char *s, size_t n,
                                                        uint64_t h, uint32_t *id, int *added)
{
    if (t->order) {
        /* In order so far: greater than the last string (in an order all the
         * others keep) means new; equal to it means found. */
        unsigned keep = t->order;
        if (t->n) {
            int up = strtab_above(t, s, n, t->n - 1);
            if (up < 0) {
                *id = t->last = t->n - 1;
                return 0;
            }
            keep &= (unsigned)up;
        }
        if (keep) {
            int rc = strtab_append(t, s, n, id);
            if (rc == 0) {
                t->order = keep;
                *added = 1;
            }
            return rc;
        }
        strtab_index(t);
    }
    if (h == 0)
        h = qr_agr_hash(t->seed, s, n);
    size_t i = strtab_probe(t, s, n, h);

    if (t->slots[i]) {
        *id = t->last = (uint32_t)t->slots[i] - 1;
    } else {
        int rc = strtab_append(t, s, n, id);
        if (rc < 0)
            return rc;
        t->slots[i] = (h >> 32) << 32 | ((uint64_t)*id + 1);
        *added = 1;
        if ((size_t)t->n * 2 > t->mask + 1)
            strtab_rehash(t, (t->mask + 1) * 2);
    }
    if (n - 1 < 16) {
        uint64_t ka, kb;
        qr_agr_short_key(s, n, &ka, &kb);
        qr_strmemo_t *m = strtab_memo(t, ka, kb, n);
        m->a = ka;
        m->b = kb;
        m->len = (uint32_t)n;
        m->id = *id;
    }
    return 0;
}

/* Id of s (found or newly added) through *id; *added says which. h is the
 * string's hash, or 0 to compute it. Returns 0 or QR_ETOOBIG. Load factor
 * stays at or below one half. */
static inline __attribute__((always_inline)) int
strtab_intern(qr_strtab_t *t, const char *s, size_t n, uint64_t h, uint32_t *id, int *added)
{
    *added = 0;
    if (t->memo && n - 1 < 16) {
        /* A short string looked up before (1 to 16 bytes; an unused entry
         * has length 0); the last one is among them. */
        uint64_t ka, kb;
        qr_agr_short_key(s, n, &ka, &kb);
        const qr_strmemo_t *m = strtab_memo(t, ka, kb, n);
        if (m->a == ka && m->b == kb && m->len == n) {
            *id = t->last = m->id;
            return 0;
        }
    } else if (t->n && qr_strtab_len(t, t->last) == n &&
               qr_agr_bytes_eq(qr_strtab_str(t, t->last), s, n)) {
        /* Exports are usually grouped by item: the same string again is
         * common. */
        *id = t->last;
        return 0;
    }
    return strtab_intern_slow(t, s, n, h, id, added);
}

/* Id of s, or -1 when it was never interned. */
static long strtab_find(const qr_strtab_t *t, const char *s, size_t n)
{
    if (t->order) {
        /* Sorted in (at least) this order: binary search. */
        unsigned o = t->order & QR_STRTAB_BYTES ? QR_STRTAB_BYTES : QR_STRTAB_SHORTLEX;
        uint32_t lo = 0, hi = t->n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            int c = strtab_cmp(t, o, s, n, mid);
            if (c == 0)
                return (long)mid;
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        return -1;
    }
    size_t i = strtab_probe(t, s, n, qr_agr_hash(t->seed, s, n));
    return t->slots[i] ? (long)((uint32_t)t->slots[i] - 1) : -1;
}

int qr_agreement_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;

    while (p < end) {
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & UINT64_C(0x8080808080808080))) {
                p += 8;
                continue;
            }
        }
        unsigned c = *p;
        size_t need;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= need)
            return 0;
        unsigned c1 = p[1];
        if ((c1 & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return 0; /* overlong, surrogate or past U+10FFFF */
        for (size_t k = 2; k <= need; k++)
            if ((p[k] & 0xc0) != 0x80)
                return 0;
        p += need + 1;
    }
    return 1;
}

/* 1 and the value in *v if s (NUL-terminated at s[n]) is a finite decimal
 * number: [+-] digits [. digits] [e [+-] digits], digits on at least one side
 * of the point. No spaces, hex, "inf" or "nan". */
static int parse_number(const char *s, size_t n, double *v)
{
    size_t i = 0, digits = 0;
    char *end;

    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, e++;
        if (e == 0)
            return 0;
    }
    if (i != n)
        return 0;
    errno = 0;
    *v = strtod(s, &end);
    return end == s + n && isfinite(*v);
}

/* Non-empty, no NUL byte, valid UTF-8. One byte loop for the ASCII case,
 * which is all that labels and ids usually are. */
static int valid_name(const char *s, size_t n)
{
    unsigned char hi = 0, zero = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        hi |= c;
        zero |= c == 0;
    }
    return n > 0 && !zero && (!(hi & 0x80) || qr_agreement_utf8_valid(s, n));
}

qr_agreement_t *qr_agreement_new(void)
{
    qr_agreement_t *a = qr_xcalloc(1, sizeof(*a));

    /* One seed for the three tables: the CSV reader hashes every field once,
     * before it knows which table the field goes to. */
    uint64_t seed = seed_new();

    strtab_init(&a->items, seed);
    strtab_init(&a->annotators, seed);
    strtab_init(&a->labels, seed);
    a->grouped = 1;
    a->item_end = qr_xcalloc(1, sizeof(*a->item_end));
    a->packed = 1;
    return a;
}

void qr_agreement_free(qr_agreement_t *a)
{
    if (!a)
        return;
    strtab_free(&a->items);
    strtab_free(&a->annotators);
    strtab_free(&a->labels);
    free(a->j_item);
    free(a->j_al);
    free(a->j_ann);
    free(a->j_label);
    free(a->j_next);
    free(a->item_end);
    free(a->item_head);
    free(a->item_cnt);
    free(a->seen);
    free(a->seen_j);
    free(a->label_value);
    free(a->label_is_num);
    free(a);
}

size_t qr_agreement_count(const qr_agreement_t *a)
{
    return a->n;
}

static size_t seen_probe(const qr_agreement_t *a, uint64_t key)
{
    size_t i = (size_t)mix64(key) & a->seen_mask;

    while (a->seen[i] && a->seen[i] != key)
        i = (i + 1) & a->seen_mask;
    return i;
}

static void seen_insert(qr_agreement_t *a, uint64_t key, uint32_t j)
{
    if ((a->seen_n + 1) * 2 > (a->seen ? a->seen_mask + 1 : 0)) {
        uint64_t *old = a->seen;
        uint32_t *old_j = a->seen_j;
        size_t old_cap = old ? a->seen_mask + 1 : 0;
        size_t cap = old_cap ? old_cap * 2 : 1024;

        a->seen_mask = cap - 1;
        a->seen = qr_xcalloc(cap, sizeof(*a->seen));
        a->seen_j = qr_xmalloc(cap * sizeof(*a->seen_j));
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i])
                continue;
            size_t s = seen_probe(a, old[i]);
            a->seen[s] = old[i];
            a->seen_j[s] = old_j[i];
        }
        free(old);
        free(old_j);
    }
    size_t s = seen_probe(a, key);
    a->seen[s] = key;
    a->seen_j[s] = j;
    a->seen_n++;
}

long qr_agr_judgement_of(const qr_agreement_t *a, uint32_t it, uint32_t an)
{
    if (qr_agr_item_count(a, it) < QR_AGR_LIST_MAX) {
        if (a->grouped) {
            for (uint32_t j = a->item_end[it]; j < a->item_end[it + 1]; j++)
                if (qr_agr_ann_of(a, j) == an)
                    return (long)j;
            return -1;
        }
        for (uint32_t j = a->item_head[it]; j; j = a->j_next[j - 1])
            if (qr_agr_ann_of(a, j - 1) == an)
                return (long)j - 1;
        return -1;
    }
    size_t s = seen_probe(a, ((uint64_t)it + 1) << 32 | an);
    return a->seen[s] ? (long)a->seen_j[s] : -1;
}

long qr_agreement_find(const qr_agreement_t *a, const char *item, size_t item_len,
                       const char *annotator, size_t annotator_len)
{
    long it = strtab_find(&a->items, item, item_len);
    long an = strtab_find(&a->annotators, annotator, annotator_len);

    if (it < 0 || an < 0)
        return -1;
    return qr_agr_judgement_of(a, (uint32_t)it, (uint32_t)an);
}

/* Records the numeric facts of a newly interned label. */
static void label_added(qr_agreement_t *a, uint32_t id)
{
    if (id >= a->label_cap) {
        a->label_cap = a->label_cap ? a->label_cap * 2 : 64;
        a->label_value = qr_xrealloc(a->label_value, a->label_cap * sizeof(*a->label_value));
        a->label_is_num = qr_xrealloc(a->label_is_num, a->label_cap);
    }
    double v = 0;
    int num = parse_number(qr_strtab_str(&a->labels, id), qr_strtab_len(&a->labels, id), &v);
    a->label_value[id] = num ? v : 0;
    a->label_is_num[id] = (unsigned char)num;
    if (!num)
        a->non_numeric++;
}

int qr_agreement_add(qr_agreement_t *a, const char *item, size_t item_len, const char *annotator,
                     size_t annotator_len, const char *label, size_t label_len)
{
    if (!valid_name(item, item_len) || !valid_name(annotator, annotator_len) ||
        !valid_name(label, label_len))
        return QR_EINVAL;
    return qr_agr_add_valid(a, item, item_len, 0, annotator, annotator_len, 0, label, label_len, 0);
}

/* An item gets a judgement while another item's came last: the judgements are
 * no longer grouped by item, so the item of each, its item's chain and the
 * per-item head and count are written out (items lie in id order, each over
 * its index range). */
static void ungroup(qr_agreement_t *a)
{
    a->j_item = qr_xmalloc(a->cap * sizeof(*a->j_item) + 1);
    a->j_next = qr_xmalloc(a->cap * sizeof(*a->j_next) + 1);
    a->item_head = qr_xmalloc((size_t)a->item_cap * sizeof(*a->item_head) + 1);
    a->item_cnt = qr_xmalloc((size_t)a->item_cap * sizeof(*a->item_cnt) + 1);
    for (uint32_t i = 0; i < a->items.n; i++) {
        uint32_t start = a->item_end[i], end = a->item_end[i + 1];
        for (uint32_t j = start; j < end; j++) {
            a->j_item[j] = i;
            a->j_next[j] = j == start ? 0 : j; /* the previous one, plus 1 */
        }
        a->item_head[i] = end > start ? end : 0;
        a->item_cnt[i] = end - start;
    }
    free(a->item_end);
    a->item_end = NULL;
    a->grouped = 0;
}

/* An id past QR_AGR_PACK_MAX: annotator and label ids move to arrays of their
 * own. */
static void unpack(qr_agreement_t *a)
{
    a->j_ann = qr_xmalloc(a->cap * sizeof(*a->j_ann) + 1);
    a->j_label = qr_xmalloc(a->cap * sizeof(*a->j_label) + 1);
    for (size_t j = 0; j < a->n; j++) {
        a->j_ann[j] = a->j_al[j] & QR_AGR_PACK_MAX;
        a->j_label[j] = a->j_al[j] >> 16;
    }
    free(a->j_al);
    a->j_al = NULL;
    a->packed = 0;
}

int qr_agr_add_valid(qr_agreement_t *a, const char *item, size_t item_len, uint64_t h_item,
                     const char *annotator, size_t annotator_len, uint64_t h_ann, const char *label,
                     size_t label_len, uint64_t h_label)
{
    uint32_t it, an, lb;
    int added, rc;

    /* Checked up front so that interning below cannot fail half-way and leave
     * an item or annotator without a judgement. */
    if (((a->n | a->items.n | a->annotators.n | a->labels.n) >= MAX_IDS ||
         (item_len | annotator_len | label_len) >= UINT32_MAX) && /* one test for the usual case */
        (a->n >= MAX_IDS || a->items.n >= MAX_IDS || a->annotators.n >= MAX_IDS ||
         a->labels.n >= MAX_IDS || item_len >= UINT32_MAX || annotator_len >= UINT32_MAX ||
         label_len >= UINT32_MAX))
        return QR_ETOOBIG;
    if ((rc = strtab_intern(&a->items, item, item_len, h_item, &it, &added)) < 0)
        return rc;
    if (added) {
        if (it >= a->item_cap) {
            a->item_cap = a->item_cap ? a->item_cap * 2 : 1024;
            if (a->grouped) {
                a->item_end =
                    qr_xrealloc(a->item_end, ((size_t)a->item_cap + 1) * sizeof(uint32_t));
            } else {
                a->item_head = qr_xrealloc(a->item_head, (size_t)a->item_cap * sizeof(uint32_t));
                a->item_cnt = qr_xrealloc(a->item_cnt, (size_t)a->item_cap * sizeof(uint32_t));
            }
        }
        if (a->grouped) {
            a->item_end[it + 1] = a->item_end[it]; /* empty, after the others */
        } else {
            a->item_head[it] = 0;
            a->item_cnt[it] = 0;
        }
    }
    if ((rc = strtab_intern(&a->annotators, annotator, annotator_len, h_ann, &an, &added)) < 0)
        return rc;
    /* A duplicate needs the item and the annotator to exist already, so the
     * interning above never leaves a judgement-less item behind. */
    if (!added) {
        if (a->grouped && a->item_end[it + 1] - a->item_end[it] < QR_AGR_LIST_MAX) {
            for (uint32_t j = a->item_end[it]; j < a->item_end[it + 1]; j++)
                if (qr_agr_ann_of(a, j) == an)
                    return QR_ECONFLCT;
        } else if (qr_agr_item_count(a, it) > 0 && qr_agr_judgement_of(a, it, an) >= 0) {
            return QR_ECONFLCT;
        }
    }
    if ((rc = strtab_intern(&a->labels, label, label_len, h_label, &lb, &added)) < 0)
        return rc;
    if (added)
        label_added(a, lb);

    if (a->grouped && it != a->items.n - 1)
        ungroup(a);
    if (a->packed && (an > QR_AGR_PACK_MAX || lb > QR_AGR_PACK_MAX))
        unpack(a);
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        if (a->packed) {
            a->j_al = qr_xrealloc(a->j_al, a->cap * sizeof(*a->j_al));
        } else {
            a->j_ann = qr_xrealloc(a->j_ann, a->cap * sizeof(*a->j_ann));
            a->j_label = qr_xrealloc(a->j_label, a->cap * sizeof(*a->j_label));
        }
        if (!a->grouped) {
            a->j_item = qr_xrealloc(a->j_item, a->cap * sizeof(*a->j_item));
            a->j_next = qr_xrealloc(a->j_next, a->cap * sizeof(*a->j_next));
        }
    }
    uint32_t j = (uint32_t)a->n++, cnt;
    if (a->packed) {
        a->j_al[j] = an | lb << 16;
    } else {
        a->j_ann[j] = an;
        a->j_label[j] = lb;
    }
    if (a->grouped) {
        a->item_end[it + 1] = j + 1;
        cnt = j + 1 - a->item_end[it];
    } else {
        a->j_item[j] = it;
        a->j_next[j] = a->item_head[it];
        a->item_head[it] = j + 1;
        cnt = ++a->item_cnt[it];
    }
    if (cnt == QR_AGR_LIST_MAX) {
        if (a->grouped) {
            for (uint32_t x = j + 1 - QR_AGR_LIST_MAX; x <= j; x++)
                seen_insert(a, ((uint64_t)it + 1) << 32 | qr_agr_ann_of(a, x), x);
        } else {
            for (uint32_t x = a->item_head[it]; x; x = a->j_next[x - 1])
                seen_insert(a, ((uint64_t)it + 1) << 32 | qr_agr_ann_of(a, x - 1), x - 1);
        }
    } else if (cnt > QR_AGR_LIST_MAX) {
        seen_insert(a, ((uint64_t)it + 1) << 32 | an, j);
    }
    return 0;
}
