/*
 * agreement_fields.c - the per-field judgement store of agreement_fields.h:
 * fields and their schema facts, interning of items, annotators, choices and
 * values, the (item, annotator) duplicate check per field, and adding values
 * in typed form or as JSON. The metrics are in agreement_fields_metrics.c,
 * the consensus in agreement_consensus.c, the report in
 * agreement_fields_json.c.
 *
 * Choice and rating values also go into a qr_agreement_t per field, so those
 * fields get exactly the issue-4 coefficients.
 */
#include "agreement_fields_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "agreement_internal.h"
#include "util.h"

#define MAX_IDS   UINT32_C(0xfffffffe)
#define KEY_LIMIT (UINT64_C(1) << 24)

/* ---- qr_fmap_t ---------------------------------------------------------- */

void qr_fmap_init(qr_fmap_t *m)
{
    memset(m, 0, sizeof(*m));
    if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
        m->seed = (uint64_t)(uintptr_t)m * UINT64_C(0x9e3779b97f4a7c15);
    m->seed |= 1;
    m->nslot = 16;
    m->slot = qr_xcalloc(m->nslot, sizeof(*m->slot));
}

void qr_fmap_free(qr_fmap_t *m)
{
    free(m->arena);
    free(m->key);
    free(m->hash);
    free(m->slot);
}

const char *qr_fmap_str(const qr_fmap_t *m, uint32_t id)
{
    return m->arena ? m->arena + (m->key[id] >> 24) : "";
}

size_t qr_fmap_len(const qr_fmap_t *m, uint32_t id)
{
    return (size_t)(m->key[id] & (KEY_LIMIT - 1));
}

/* 1 if a[0..n) == b[0..n); choice names are often under 4 bytes, where
 * qr_agr_bytes_eq would call memcmp. */
static inline int key_eq(const char *a, const char *b, size_t n)
{
    if (n < 4) {
        unsigned d = 0;
        for (size_t i = 0; i < n; i++)
            d |= (unsigned char)a[i] ^ (unsigned char)b[i];
        return d == 0;
    }
    return qr_agr_bytes_eq(a, b, n);
}

/* Slot of key (holding it, or the empty one where it goes). */
static uint32_t fmap_slot(const qr_fmap_t *m, const void *key, size_t len, uint64_t h)
{
    uint32_t mask = m->nslot - 1, s = (uint32_t)h & mask;
    uint64_t tag = h >> 32;

    /* The slot's high half is the key's hash tag: a different key is
     * usually passed over without touching its entry. */
    while (m->slot[s]) {
        uint32_t id = (uint32_t)m->slot[s] - 1;
        if ((m->slot[s] >> 32) == tag && qr_fmap_len(m, id) == len &&
            key_eq(qr_fmap_str(m, id), key, len))
            break;
        s = (s + 1) & mask;
    }
    return s;
}

long qr_fmap_find(const qr_fmap_t *m, const void *key, size_t len)
{
    uint32_t s = fmap_slot(m, key, len, qr_agr_hash(m->seed, key, len));
    return m->slot[s] ? (long)(uint32_t)m->slot[s] - 1 : -1;
}

int qr_fmap_intern(qr_fmap_t *m, const void *key, size_t len, uint32_t *id, int *added)
{
    /* Input grouped by item repeats the same key: no hash for it. */
    if (m->n && qr_fmap_len(m, m->last) == len && key_eq(qr_fmap_str(m, m->last), key, len)) {
        *added = 0;
        *id = m->last;
        return 0;
    }
    uint64_t h = qr_agr_hash(m->seed, key, len);
    uint32_t s = fmap_slot(m, key, len, h);

    *added = 0;
    if (m->slot[s]) {
        *id = m->last = (uint32_t)m->slot[s] - 1;
        return 0;
    }
    if (len >= KEY_LIMIT || m->n >= MAX_IDS)
        return QR_ETOOBIG;
    if (m->n == m->cap_id) {
        m->cap_id = m->cap_id ? m->cap_id * 2 : 16;
        m->key = qr_xrealloc(m->key, m->cap_id * sizeof(*m->key));
        m->hash = qr_xrealloc(m->hash, m->cap_id * sizeof(*m->hash));
    }
    if (m->cap - m->used < len + 1) {
        size_t ncap = m->cap ? m->cap : 1024;
        while (ncap - m->used < len + 1)
            ncap *= 2;
        m->arena = qr_xrealloc(m->arena, ncap);
        m->cap = ncap;
    }
    if (len)
        memcpy(m->arena + m->used, key, len);
    m->arena[m->used + len] = '\0';
    m->key[m->n] = (uint64_t)m->used << 24 | len;
    m->hash[m->n] = h;
    m->used += len + 1;
    *id = m->last = m->n++;
    m->slot[s] = (h >> 32) << 32 | (*id + 1);
    *added = 1;
    if ((uint64_t)m->n * 2 > m->nslot) {
        uint64_t *old = m->slot;
        uint32_t nold = m->nslot;
        m->nslot *= 2;
        m->slot = qr_xcalloc(m->nslot, sizeof(*m->slot));
        for (uint32_t i = 0; i < nold; i++) {
            if (!old[i])
                continue;
            uint32_t t = (uint32_t)m->hash[(uint32_t)old[i] - 1] & (m->nslot - 1);
            while (m->slot[t])
                t = (t + 1) & (m->nslot - 1);
            m->slot[t] = old[i];
        }
        free(old);
    }
    return 0;
}

/* ---- fields --------------------------------------------------------------- */

static const char *const type_names[] = {"choice", "multi_choice", "rating",
                                         "spans",  "boxes",        "text"};

const char *qr_field_type_name(qr_field_type_t t)
{
    return (unsigned)t < 6 ? type_names[t] : "unknown";
}

int qr_field_type_parse(const char *s, qr_field_type_t *t)
{
    for (int i = 0; i < 6; i++) {
        if (strcmp(s, type_names[i]) == 0) {
            *t = (qr_field_type_t)i;
            return 0;
        }
    }
    return QR_EINVAL;
}

qr_fields_t *qr_fields_new(void)
{
    qr_fields_t *fs = qr_xcalloc(1, sizeof(*fs));
    qr_fmap_init(&fs->items);
    qr_fmap_init(&fs->anns);
    fs->iou = 0.5;
    return fs;
}

static void field_free(qr_field_t *fd)
{
    free(fd->name);
    qr_agreement_free(fd->agr);
    free(fd->j);
    qr_fmap_free(&fd->big);
    free(fd->big_j);
    free(fd->item_head);
    free(fd->item_cnt);
    qr_fmap_free(&fd->vals);
    qr_fmap_free(&fd->choices);
    free(fd->v_num);
    free(fd->v_off);
    free(fd->v_cnt);
    free(fd->v_mask);
    free(fd->set_ids);
    free(fd->spans);
    free(fd->boxes);
    qr_fmap_free(&fd->norms);
    free(fd->norm_cp_off);
    free(fd->norm_cp_len);
    free(fd->cps);
    qr_fmap_free(&fd->texts);
    qr_fmap_free(&fd->raw);
    free(fd->raw_val);
    free(fd->item_text);
    free(fd);
}

void qr_fields_free(qr_fields_t *fs)
{
    if (!fs)
        return;
    for (int i = 0; i < fs->nf; i++)
        field_free(fs->f[i]);
    qr_fmap_free(&fs->items);
    qr_fmap_free(&fs->anns);
    free(fs);
}

void qr_fields_set_iou_threshold(qr_fields_t *fs, double thr)
{
    fs->iou = thr;
}

int qr_fields_find(const qr_fields_t *fs, const char *name, size_t len)
{
    for (int i = 0; i < fs->nf; i++)
        if (strlen(fs->f[i]->name) == len && memcmp(fs->f[i]->name, name, len) == 0)
            return i;
    return -1;
}

int qr_fields_declare(qr_fields_t *fs, const char *name, size_t len, qr_field_type_t type)
{
    if (len == 0 || memchr(name, 0, len) || !qr_agreement_utf8_valid(name, len) ||
        (unsigned)type >= 6)
        return QR_EINVAL;
    int i = qr_fields_find(fs, name, len);
    if (i >= 0)
        return fs->f[i]->type == type ? i : QR_ECONFLCT;
    if (fs->nf >= QR_FIELDS_MAX)
        return QR_ETOOBIG;
    qr_field_t *fd = qr_xcalloc(1, sizeof(*fd));
    fd->name = qr_xstrndup(name, len);
    fd->type = type;
    if (type == QR_FIELD_CHOICE || type == QR_FIELD_RATING)
        fd->agr = qr_agreement_new();
    /* Value arenas are never NULL, so an empty value points into one. */
    fd->set_cap = fd->geo_cap = fd->cps_cap = 16;
    fd->set_ids = qr_xmalloc(fd->set_cap * sizeof(uint32_t));
    if (type == QR_FIELD_SPANS)
        fd->spans = qr_xmalloc(fd->geo_cap * sizeof(qr_span_t));
    else if (type == QR_FIELD_BOXES)
        fd->boxes = qr_xmalloc(fd->geo_cap * sizeof(qr_box_t));
    fd->cps = qr_xmalloc(fd->cps_cap * sizeof(int32_t));
    qr_fmap_init(&fd->vals);
    qr_fmap_init(&fd->texts);
    qr_fmap_init(&fd->raw);
    qr_fmap_init(&fd->big);
    qr_fmap_init(&fd->choices);
    qr_fmap_init(&fd->norms);
    fs->f[fs->nf] = fd;
    return fs->nf++;
}

size_t qr_fields_count(const qr_fields_t *fs)
{
    return (size_t)fs->nf;
}

const char *qr_fields_name(const qr_fields_t *fs, int f)
{
    return fs->f[f]->name;
}

qr_field_type_t qr_fields_type(const qr_fields_t *fs, int f)
{
    return fs->f[f]->type;
}

size_t qr_fields_judgements(const qr_fields_t *fs, int f)
{
    return fs->f[f]->n;
}

static int valid_str(const char *s, size_t n)
{
    return n > 0 && !memchr(s, 0, n) && qr_agreement_utf8_valid(s, n);
}

int qr_fields_set_choices(qr_fields_t *fs, int f, const char *const *names, const size_t *lens,
                          size_t n)
{
    qr_field_t *fd = fs->f[f];
    uint32_t id;
    int added;

    for (size_t i = 0; i < n; i++) {
        if (!valid_str(names[i], lens[i]))
            return QR_EINVAL;
        if (qr_fmap_intern(&fd->choices, names[i], lens[i], &id, &added) < 0)
            return QR_EINVAL;
    }
    fd->schema_choices = fd->choices.n;
    return 0;
}

int qr_fields_set_scale(qr_fields_t *fs, int f, double min, double step)
{
    if (!isfinite(min) || !isfinite(step) || step <= 0)
        return QR_EINVAL;
    fs->f[f]->has_scale = 1;
    fs->f[f]->scale_min = min;
    fs->f[f]->scale_step = step;
    return 0;
}

/* ---- judgements ----------------------------------------------------------- */

#define LIST_MAX 16
#define RAW_MAX                                                                                    \
    65536 /* multi_choice values remembered as given */ /* items with fewer judgements walk their  \
                                                           list */

/* Judgement of (item, annotator) in fd, or -1: an item with few judgements
 * walks its own list (contiguous in the common case of grouped input); the
 * judgements of an item with LIST_MAX or more are also in the map big, keyed
 * by (item, annotator). */
static long judgement_of(const qr_field_t *fd, uint32_t it, uint32_t an)
{
    if (it >= fd->item_cap)
        return -1;
    if (fd->item_cnt[it] < LIST_MAX) {
        for (uint32_t j = fd->item_head[it]; j; j = fd->j[j - 1].next)
            if (fd->j[j - 1].ann == an)
                return (long)j - 1;
        return -1;
    }
    uint32_t key[2] = {it, an};
    long id = qr_fmap_find(&fd->big, key, sizeof(key));
    return id < 0 ? -1 : (long)fd->big_j[id];
}

static void big_insert(qr_field_t *fd, uint32_t it, uint32_t an, uint32_t j)
{
    uint32_t key[2] = {it, an}, id;
    int added;

    if (qr_fmap_intern(&fd->big, key, sizeof(key), &id, &added) < 0)
        QR_ASSERT(!"fewer judgements than ids");
    if (id >= fd->big_cap) {
        fd->big_cap = fd->big_cap ? fd->big_cap * 2 : 256;
        fd->big_j = qr_xrealloc(fd->big_j, fd->big_cap * sizeof(uint32_t));
    }
    fd->big_j[id] = j;
}

long qr_fields_find_judgement(const qr_fields_t *fs, int f, const char *item, size_t item_len,
                              const char *ann, size_t ann_len)
{
    long it = qr_fmap_find(&fs->items, item, item_len);
    long an = qr_fmap_find(&fs->anns, ann, ann_len);
    if (it < 0 || an < 0)
        return -1;
    return judgement_of(fs->f[f], (uint32_t)it, (uint32_t)an);
}

/* Interns the item and annotator and checks (item, annotator) is new in fd:
 * 0 with the ids, QR_ECONFLCT, QR_EINVAL or
 * QR_ETOOBIG. Nothing is recorded in fd yet (qr_field_push does that). */
static int judgement_begin(qr_fields_t *fs, qr_field_t *fd, const char *item, size_t item_len,
                           const char *ann, size_t ann_len, uint32_t *it, uint32_t *an)
{
    int added, rc;
    const qr_fmap_t *im = &fs->items;

    /* The item of the last judgement again (grouped input): checked then. */
    if (im->n && qr_fmap_len(im, im->last) == item_len &&
        key_eq(qr_fmap_str(im, im->last), item, item_len)) {
        *it = im->last;
    } else {
        if (!valid_str(item, item_len))
            return QR_EINVAL;
        if ((rc = qr_fmap_intern(&fs->items, item, item_len, it, &added)) < 0)
            return rc;
    }
    if (!valid_str(ann, ann_len))
        return QR_EINVAL;
    if (fd->n >= MAX_IDS)
        return QR_ETOOBIG;
    if ((rc = qr_fmap_intern(&fs->anns, ann, ann_len, an, &added)) < 0)
        return rc;
    if (judgement_of(fd, *it, *an) >= 0)
        return QR_ECONFLCT;
    return 0;
}

void qr_field_push(qr_field_t *fd, uint32_t it, uint32_t an, uint32_t v)
{
    if (fd->n == fd->cap) {
        fd->cap = fd->cap ? fd->cap * 2 : 256;
        fd->j = qr_xrealloc(fd->j, fd->cap * sizeof(*fd->j));
    }
    if (it >= fd->item_cap) {
        size_t ncap = fd->item_cap ? fd->item_cap * 2 : 1024;
        while (ncap <= it)
            ncap *= 2;
        fd->item_head = qr_xrealloc(fd->item_head, ncap * sizeof(uint32_t));
        fd->item_cnt = qr_xrealloc(fd->item_cnt, ncap * sizeof(uint32_t));
        memset(fd->item_head + fd->item_cap, 0, (ncap - fd->item_cap) * sizeof(uint32_t));
        memset(fd->item_cnt + fd->item_cap, 0, (ncap - fd->item_cap) * sizeof(uint32_t));
        fd->item_cap = ncap;
    }
    uint32_t j = (uint32_t)fd->n++;
    fd->j[j].item = it;
    fd->j[j].ann = an;
    fd->j[j].val = v;
    fd->j[j].next = fd->item_head[it];
    fd->item_head[it] = j + 1;
    if (++fd->item_cnt[it] == LIST_MAX) {
        for (uint32_t x = fd->item_head[it]; x; x = fd->j[x - 1].next)
            big_insert(fd, it, fd->j[x - 1].ann, x - 1);
    } else if (fd->item_cnt[it] > LIST_MAX) {
        big_insert(fd, it, an, j);
    }
}

/* Room for per-value facts of value id v. */
static void value_room(qr_field_t *fd, uint32_t v)
{
    if (v < fd->vcap)
        return;
    size_t ncap = fd->vcap ? fd->vcap * 2 : 64;
    while (ncap <= v)
        ncap *= 2;
    fd->v_num = qr_xrealloc(fd->v_num, ncap * sizeof(double));
    fd->v_off = qr_xrealloc(fd->v_off, ncap * sizeof(uint32_t));
    fd->v_cnt = qr_xrealloc(fd->v_cnt, ncap * sizeof(uint32_t));
    fd->v_mask = qr_xrealloc(fd->v_mask, ncap * sizeof(uint64_t));
    fd->vcap = ncap;
}

static int check_type(const qr_fields_t *fs, int f, qr_field_type_t t)
{
    return f >= 0 && f < fs->nf && fs->f[f]->type == t ? 0 : QR_EINVAL;
}

int qr_fields_add_choice(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                         size_t ann_len, const char *v, size_t len)
{
    uint32_t it, an, id;
    int added, rc;

    if ((rc = check_type(fs, f, QR_FIELD_CHOICE)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    if (!valid_str(v, len))
        return QR_EINVAL;
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    if ((rc = qr_agreement_add(fd->agr, item, item_len, ann, ann_len, v, len)) < 0)
        return rc;
    if ((rc = qr_fmap_intern(&fd->vals, v, len, &id, &added)) < 0)
        return rc;
    qr_field_push(fd, it, an, id);
    return 0;
}

/* The shortest "%.*g" that reads back as v. */
static int format_number(char *buf, size_t n, double v)
{
    int len = 0;
    for (int prec = 1; prec <= 17; prec++) {
        len = snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return len;
}

int qr_fields_add_rating(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                         size_t ann_len, double v)
{
    uint32_t it, an, id;
    int added, rc;
    char buf[40];

    if ((rc = check_type(fs, f, QR_FIELD_RATING)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    if (!isfinite(v))
        return QR_EINVAL;
    v += 0.0; /* -0 is 0 */
    int len = format_number(buf, sizeof(buf), v);
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    if ((rc = qr_agreement_add(fd->agr, item, item_len, ann, ann_len, buf, (size_t)len)) < 0)
        return rc;
    if ((rc = qr_fmap_intern(&fd->vals, buf, (size_t)len, &id, &added)) < 0)
        return rc;
    if (added) {
        value_room(fd, id);
        fd->v_num[id] = v;
    }
    qr_field_push(fd, it, an, id);
    return 0;
}

static int cmp_u32(const void *p, const void *q)
{
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    return (x > y) - (x < y);
}

/* Interns choice (or label) s of fd: its id. */
static int choice_id(qr_field_t *fd, const char *s, size_t len, uint32_t *id)
{
    int added;
    if (!valid_str(s, len))
        return QR_EINVAL;
    return qr_fmap_intern(&fd->choices, s, len, id, &added);
}

int qr_fields_add_multi(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const char *const *choices, const size_t *lens, size_t n)
{
    uint32_t it, an, id, small[64], *ids = small;
    int added, rc;

    if ((rc = check_type(fs, f, QR_FIELD_MULTI_CHOICE)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    /* The choices as given (length-prefixed) map straight to their set once
     * seen: no choice is looked up on the common path. */
    unsigned char rawbuf[512], *raw = rawbuf;
    size_t rlen = 0, rcap = sizeof(rawbuf);
    for (size_t i = 0; i < n; i++) {
        if (rcap - rlen < lens[i] + 4 || lens[i] >= UINT32_MAX) {
            raw = NULL; /* too long to be worth it */
            break;
        }
        uint32_t l = (uint32_t)lens[i];
        memcpy(raw + rlen, &l, 4);
        memcpy(raw + rlen + 4, choices[i], lens[i]);
        rlen += 4 + lens[i];
    }
    if (raw) {
        long rid = qr_fmap_find(&fd->raw, raw, rlen);
        if (rid >= 0) {
            qr_field_push(fd, it, an, fd->raw_val[rid]);
            return 0;
        }
    }
    if (n > 64)
        ids = qr_xmalloc(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        if ((rc = choice_id(fd, choices[i], lens[i], &ids[i])) < 0)
            goto done;
    }
    /* Sorted, each once: the set's key. Usually already in order. */
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        sorted &= ids[i - 1] < ids[i];
    if (!sorted) {
        qsort(ids, n, sizeof(uint32_t), cmp_u32);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (m == 0 || ids[m - 1] != ids[i])
                ids[m++] = ids[i];
        n = m;
    }
    if ((rc = qr_fmap_intern(&fd->vals, ids, n * sizeof(uint32_t), &id, &added)) < 0)
        goto done;
    if (added) {
        value_room(fd, id);
        if (fd->set_cap - fd->set_used < n) {
            while (fd->set_cap - fd->set_used < n)
                fd->set_cap = fd->set_cap ? fd->set_cap * 2 : 256;
            fd->set_ids = qr_xrealloc(fd->set_ids, fd->set_cap * sizeof(uint32_t));
        }
        uint64_t mask = 0;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 64)
                mask |= UINT64_C(1) << ids[i];
            else
                fd->wide = 1;
        }
        if (n)
            memcpy(fd->set_ids + fd->set_used, ids, n * sizeof(uint32_t));
        fd->v_off[id] = (uint32_t)fd->set_used;
        fd->v_cnt[id] = (uint32_t)n;
        fd->v_mask[id] = mask;
        fd->set_used += n;
    }
    if (raw && fd->raw.n < RAW_MAX) {
        uint32_t rid;
        if (qr_fmap_intern(&fd->raw, raw, rlen, &rid, &added) == 0 && added) {
            if (rid >= fd->raw_cap) {
                fd->raw_cap = fd->raw_cap ? fd->raw_cap * 2 : 64;
                fd->raw_val = qr_xrealloc(fd->raw_val, fd->raw_cap * sizeof(uint32_t));
            }
            fd->raw_val[rid] = id;
        }
    }
    qr_field_push(fd, it, an, id);
done:
    if (ids != small)
        free(ids);
    return rc;
}

static int cmp_span(const void *p, const void *q)
{
    const qr_span_t *x = p, *y = q;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

static int cmp_box(const void *p, const void *q)
{
    const qr_box_t *x = p, *y = q;
    if (x->x != y->x)
        return x->x < y->x ? -1 : 1;
    if (x->y != y->y)
        return x->y < y->y ? -1 : 1;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

/* Interns a sorted list of n elements of size sz (spans or boxes, no
 * padding-dependent bytes: packed into key first) and stores it once. */
static int geo_value(qr_field_t *fd, const void *list, size_t n, size_t sz, uint32_t *id)
{
    int added, rc;
    size_t klen = n * sz;
    unsigned char small[1024], *key = klen <= sizeof(small) ? small : qr_xmalloc(klen);

    small[0] = 0; /* an empty list is the empty key */

    /* Pack fields without padding so equal lists give equal keys. */
    for (size_t i = 0; i < n; i++) {
        unsigned char *k = key + i * sz;
        if (fd->type == QR_FIELD_SPANS) {
            const qr_span_t *s = (const qr_span_t *)list + i;
            memcpy(k, &s->start, 8);
            memcpy(k + 8, &s->end, 8);
            memcpy(k + 16, &s->label, 4);
        } else {
            const qr_box_t *b = (const qr_box_t *)list + i;
            memcpy(k, &b->x, 8);
            memcpy(k + 8, &b->y, 8);
            memcpy(k + 16, &b->w, 8);
            memcpy(k + 24, &b->h, 8);
            memcpy(k + 32, &b->label, 4);
        }
    }
    rc = qr_fmap_intern(&fd->vals, key, klen, id, &added);
    if (key != small)
        free(key);
    if (rc < 0 || !added)
        return rc;
    value_room(fd, *id);
    if (fd->geo_cap - fd->geo_used < n) {
        while (fd->geo_cap - fd->geo_used < n)
            fd->geo_cap = fd->geo_cap ? fd->geo_cap * 2 : 256;
        if (fd->type == QR_FIELD_SPANS)
            fd->spans = qr_xrealloc(fd->spans, fd->geo_cap * sizeof(qr_span_t));
        else
            fd->boxes = qr_xrealloc(fd->boxes, fd->geo_cap * sizeof(qr_box_t));
    }
    if (fd->geo_used > UINT32_MAX - n)
        return QR_ETOOBIG;
    if (fd->type == QR_FIELD_SPANS)
        memcpy(fd->spans + fd->geo_used, list, n * sizeof(qr_span_t));
    else
        memcpy(fd->boxes + fd->geo_used, list, n * sizeof(qr_box_t));
    fd->v_off[*id] = (uint32_t)fd->geo_used;
    fd->v_cnt[*id] = (uint32_t)n;
    fd->geo_used += n;
    return 0;
}

int qr_fields_add_spans(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const qr_span_value_t *spans, size_t n)
{
    uint32_t it, an, id;
    int rc;

    if ((rc = check_type(fs, f, QR_FIELD_SPANS)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    for (size_t i = 0; i < n; i++)
        if (spans[i].end < spans[i].start || spans[i].start < 0)
            return QR_EINVAL;
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    qr_span_t *l = qr_xmalloc(n * sizeof(*l) + 1);
    for (size_t i = 0; i < n; i++) {
        l[i].start = spans[i].start;
        l[i].end = spans[i].end;
        if ((rc = choice_id(fd, spans[i].label, spans[i].label_len, &l[i].label)) < 0)
            goto done;
    }
    qsort(l, n, sizeof(*l), cmp_span);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || cmp_span(&l[m - 1], &l[i]) != 0)
            l[m++] = l[i];
    if ((rc = geo_value(fd, l, m, 20, &id)) < 0)
        goto done;
    qr_field_push(fd, it, an, id);
done:
    free(l);
    return rc;
}

int qr_fields_add_boxes(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const qr_box_value_t *boxes, size_t n)
{
    uint32_t it, an, id;
    int rc;

    if ((rc = check_type(fs, f, QR_FIELD_BOXES)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    for (size_t i = 0; i < n; i++)
        if (!isfinite(boxes[i].x) || !isfinite(boxes[i].y) || !isfinite(boxes[i].w) ||
            !isfinite(boxes[i].h))
            return QR_EINVAL;
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    qr_box_t *l = qr_xmalloc(n * sizeof(*l) + 1);
    for (size_t i = 0; i < n; i++) {
        l[i].x = boxes[i].x + 0.0;
        l[i].y = boxes[i].y + 0.0;
        l[i].w = boxes[i].w + 0.0;
        l[i].h = boxes[i].h + 0.0;
        if ((rc = choice_id(fd, boxes[i].label, boxes[i].label_len, &l[i].label)) < 0)
            goto done;
    }
    qsort(l, n, sizeof(*l), cmp_box);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || cmp_box(&l[m - 1], &l[i]) != 0)
            l[m++] = l[i];
    if ((rc = geo_value(fd, l, m, 36, &id)) < 0)
        goto done;
    qr_field_push(fd, it, an, id);
done:
    free(l);
    return rc;
}

int qr_fields_add_text(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                       size_t ann_len, const char *text, size_t len)
{
    uint32_t it, an, id, nid;
    int added, rc;

    if ((rc = check_type(fs, f, QR_FIELD_TEXT)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    if (memchr(text, 0, len) || !qr_agreement_utf8_valid(text, len))
        return QR_EINVAL;
    if ((rc = judgement_begin(fs, fd, item, item_len, ann, ann_len, &it, &an)) < 0)
        return rc;
    if ((rc = qr_fmap_intern(&fd->vals, text, len, &id, &added)) < 0)
        return rc;
    if (added) {
        int32_t *cp;
        char *norm;
        size_t ncp, nnorm;
        value_room(fd, id);
        if ((rc = qr_text_normalize_cp(text, len, &cp, &ncp, &norm, &nnorm)) < 0)
            return rc;
        rc = qr_fmap_intern(&fd->norms, norm, nnorm, &nid, &added);
        free(norm);
        if (rc == 0 && added) {
            if (nid >= fd->norm_cap) {
                fd->norm_cap = fd->norm_cap ? fd->norm_cap * 2 : 64;
                fd->norm_cp_off = qr_xrealloc(fd->norm_cp_off, fd->norm_cap * sizeof(uint32_t));
                fd->norm_cp_len = qr_xrealloc(fd->norm_cp_len, fd->norm_cap * sizeof(uint32_t));
            }
            if (fd->cps_cap - fd->cps_used < ncp) {
                while (fd->cps_cap - fd->cps_used < ncp)
                    fd->cps_cap = fd->cps_cap ? fd->cps_cap * 2 : 1024;
                fd->cps = qr_xrealloc(fd->cps, fd->cps_cap * sizeof(int32_t));
            }
            if (fd->cps_used + ncp > UINT32_MAX)
                rc = QR_ETOOBIG;
            else {
                memcpy(fd->cps + fd->cps_used, cp, ncp * sizeof(int32_t));
                fd->norm_cp_off[nid] = (uint32_t)fd->cps_used;
                fd->norm_cp_len[nid] = (uint32_t)ncp;
                fd->cps_used += ncp;
            }
        }
        free(cp);
        if (rc < 0)
            return rc;
        fd->v_off[id] = nid;
    }
    qr_field_push(fd, it, an, id);
    return 0;
}

int qr_fields_set_text(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *text,
                       size_t len)
{
    uint32_t it;
    int added, rc;

    if ((rc = check_type(fs, f, QR_FIELD_SPANS)) < 0)
        return rc;
    qr_field_t *fd = fs->f[f];
    if (!valid_str(item, item_len) || memchr(text, 0, len) || !qr_agreement_utf8_valid(text, len))
        return QR_EINVAL;
    if ((rc = qr_fmap_intern(&fs->items, item, item_len, &it, &added)) < 0)
        return rc;
    if (it >= fd->item_text_cap) {
        size_t ncap = fd->item_text_cap ? fd->item_text_cap * 2 : 1024;
        while (ncap <= it)
            ncap *= 2;
        fd->item_text = qr_xrealloc(fd->item_text, ncap * sizeof(uint32_t));
        memset(fd->item_text + fd->item_text_cap, 0, (ncap - fd->item_text_cap) * sizeof(uint32_t));
        fd->item_text_cap = ncap;
    }
    uint32_t id;
    if ((rc = qr_fmap_intern(&fd->texts, text, len, &id, &added)) < 0)
        return rc;
    if (fd->item_text[it])
        return fd->item_text[it] == id + 1 ? 0 : QR_ECONFLCT;
    fd->item_text[it] = id + 1;
    return 0;
}

/* ---- JSON values ----------------------------------------------------------- */

static int err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_set(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return QR_EINVAL;
}

#define ERR(...) err_set(err, errlen, __VA_ARGS__)

/* A JSON number that is an integer (a real with no fraction counts). */
static int json_int64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9e15) {
            *out = (int64_t)d;
            return 1;
        }
    }
    return 0;
}

static int add_json_spans(qr_fields_t *fs, int f, const char *item, size_t item_len,
                          const char *ann, size_t ann_len, const json_t *value, char *err,
                          size_t errlen)
{
    size_t n = json_array_size(value), i;
    qr_span_value_t *l = qr_xmalloc(n * sizeof(*l) + 1);
    const json_t *e;
    int rc = 0;

    json_array_foreach(value, i, e)
    {
        const json_t *lab = json_object_get(e, "label");
        if (!json_is_object(e) || !json_int64(json_object_get(e, "start"), &l[i].start) ||
            !json_int64(json_object_get(e, "end"), &l[i].end) || !json_is_string(lab)) {
            rc = ERR("span %zu: needs integer \"start\" and \"end\" and a string \"label\"", i);
            goto done;
        }
        if (l[i].start < 0 || l[i].end <= l[i].start) {
            rc = ERR("span %zu: needs 0 <= start < end; got [%lld, %lld)", i, (long long)l[i].start,
                     (long long)l[i].end);
            goto done;
        }
        l[i].label = json_string_value(lab);
        l[i].label_len = json_string_length(lab);
        if (l[i].label_len == 0) {
            rc = ERR("span %zu: empty label", i);
            goto done;
        }
    }
    rc = qr_fields_add_spans(fs, f, item, item_len, ann, ann_len, l, n);
    if (rc == QR_EINVAL)
        ERR("a label is not valid UTF-8 or holds a NUL");
done:
    free(l);
    return rc;
}

static int add_json_boxes(qr_fields_t *fs, int f, const char *item, size_t item_len,
                          const char *ann, size_t ann_len, const json_t *value, char *err,
                          size_t errlen)
{
    size_t n = json_array_size(value), i;
    qr_box_value_t *l = qr_xmalloc(n * sizeof(*l) + 1);
    const json_t *e;
    int rc = 0;

    json_array_foreach(value, i, e)
    {
        const json_t *x = json_object_get(e, "x"), *y = json_object_get(e, "y"),
                     *w = json_object_get(e, "width"), *h = json_object_get(e, "height"),
                     *lab = json_object_get(e, "label"), *rot = json_object_get(e, "rotation");
        if (!json_is_object(e) || !json_is_number(x) || !json_is_number(y) || !json_is_number(w) ||
            !json_is_number(h) || !json_is_string(lab) || json_string_length(lab) == 0) {
            rc = ERR("box %zu: needs numbers \"x\", \"y\", \"width\", \"height\" and a "
                     "non-empty string \"label\"",
                     i);
            goto done;
        }
        if (rot && !(json_is_number(rot) && json_number_value(rot) == 0)) {
            rc = ERR("box %zu: \"rotation\" must be 0", i);
            goto done;
        }
        l[i].x = json_number_value(x);
        l[i].y = json_number_value(y);
        l[i].w = json_number_value(w);
        l[i].h = json_number_value(h);
        if (l[i].w <= 0 || l[i].h <= 0) {
            rc = ERR("box %zu: width and height must be > 0", i);
            goto done;
        }
        l[i].label = json_string_value(lab);
        l[i].label_len = json_string_length(lab);
    }
    rc = qr_fields_add_boxes(fs, f, item, item_len, ann, ann_len, l, n);
    if (rc == QR_EINVAL)
        ERR("a label is not valid UTF-8 or holds a NUL");
done:
    free(l);
    return rc;
}

int qr_fields_add_json(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                       size_t ann_len, const json_t *value, char *err, size_t errlen)
{
    int rc;

    if (errlen)
        err[0] = '\0';
    if (f < 0 || f >= fs->nf)
        return ERR("no such field");
    qr_field_type_t t = fs->f[f]->type;
    switch (t) {
    case QR_FIELD_CHOICE:
        if (!json_is_string(value) || json_string_length(value) == 0)
            return ERR("a choice value must be a non-empty string");
        rc = qr_fields_add_choice(fs, f, item, item_len, ann, ann_len, json_string_value(value),
                                  json_string_length(value));
        if (rc == QR_EINVAL)
            ERR("the value holds a NUL");
        return rc;
    case QR_FIELD_RATING:
        if (!json_is_number(value))
            return ERR("a rating value must be a number");
        return qr_fields_add_rating(fs, f, item, item_len, ann, ann_len, json_number_value(value));
    case QR_FIELD_TEXT:
        if (!json_is_string(value))
            return ERR("a text value must be a string");
        rc = qr_fields_add_text(fs, f, item, item_len, ann, ann_len, json_string_value(value),
                                json_string_length(value));
        if (rc == QR_EINVAL)
            ERR("the text holds a NUL");
        return rc;
    case QR_FIELD_MULTI_CHOICE: {
        if (!json_is_array(value))
            return ERR("a multi_choice value must be an array of strings");
        size_t n = json_array_size(value), i;
        const char **s = qr_xmalloc(n * sizeof(*s) + 1);
        size_t *lens = qr_xmalloc(n * sizeof(*lens) + 1);
        const json_t *e;
        rc = 0;
        json_array_foreach(value, i, e)
        {
            if (!json_is_string(e) || json_string_length(e) == 0) {
                rc = ERR("element %zu: a multi_choice value must be an array of non-empty "
                         "strings",
                         i);
                break;
            }
            s[i] = json_string_value(e);
            lens[i] = json_string_length(e);
        }
        if (rc == 0) {
            rc = qr_fields_add_multi(fs, f, item, item_len, ann, ann_len, s, lens, n);
            if (rc == QR_EINVAL)
                ERR("a choice holds a NUL");
        }
        free(s);
        free(lens);
        return rc;
    }
    case QR_FIELD_SPANS:
        if (!json_is_array(value))
            return ERR("a spans value must be an array of {\"start\", \"end\", \"label\"}");
        return add_json_spans(fs, f, item, item_len, ann, ann_len, value, err, errlen);
    case QR_FIELD_BOXES:
        if (!json_is_array(value))
            return ERR("a boxes value must be an array of {\"x\", \"y\", \"width\", "
                       "\"height\", \"label\"}");
        return add_json_boxes(fs, f, item, item_len, ann, ann_len, value, err, errlen);
    }
    return ERR("unknown field type");
}

/* ---- schema ---------------------------------------------------------------- */

int qr_fields_load_schema(qr_fields_t *fs, const json_t *schema, char *err, size_t errlen)
{
    const json_t *inner = json_object_get(schema, "schema");
    const json_t *fields = json_object_get(inner ? inner : schema, "fields"), *fo;
    size_t i;

    if (!json_is_array(fields) || json_array_size(fields) == 0)
        return ERR("the schema needs a non-empty \"fields\" array ({\"fields\": [...]} or "
                   "{\"schema\": {\"fields\": [...]}})");
    json_array_foreach(fields, i, fo)
    {
        const json_t *name = json_object_get(fo, "name"), *type = json_object_get(fo, "type");
        qr_field_type_t t;
        if (!json_is_string(name) || !json_is_string(type))
            return ERR("field %zu: needs a string \"name\" and \"type\"", i);
        if (qr_field_type_parse(json_string_value(type), &t) < 0)
            return ERR("field %s: unknown type \"%s\"", json_string_value(name),
                       json_string_value(type));
        int f = qr_fields_declare(fs, json_string_value(name), json_string_length(name), t);
        if (f == QR_ECONFLCT)
            return ERR("field %s: declared twice", json_string_value(name));
        if (f < 0)
            return ERR("field %zu: bad name, or more than %d fields", i, QR_FIELDS_MAX);
        const json_t *list =
            json_object_get(fo, t == QR_FIELD_SPANS || t == QR_FIELD_BOXES ? "labels" : "choices");
        if (json_is_array(list)) {
            size_t n = json_array_size(list), k;
            const char **s = qr_xmalloc(n * sizeof(*s) + 1);
            size_t *lens = qr_xmalloc(n * sizeof(*lens) + 1);
            const json_t *e;
            int ok = 1;
            json_array_foreach(list, k, e)
            {
                ok &= json_is_string(e);
                s[k] = json_string_value(e);
                lens[k] = json_string_length(e);
            }
            int rc = ok ? qr_fields_set_choices(fs, f, s, lens, n) : QR_EINVAL;
            free(s);
            free(lens);
            if (rc < 0)
                return ERR("field %s: its choices or labels must be non-empty strings",
                           json_string_value(name));
        }
        if (t == QR_FIELD_RATING) {
            const json_t *mn = json_object_get(fo, "min"), *st = json_object_get(fo, "step");
            double step = json_is_number(st) ? json_number_value(st) : 1;
            if (json_is_number(mn) && qr_fields_set_scale(fs, f, json_number_value(mn), step) < 0)
                return ERR("field %s: bad min or step", json_string_value(name));
        }
    }
    return 0;
}
