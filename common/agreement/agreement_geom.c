/*
 * agreement_geom.c - span and box matching and consensus for the agreement
 * of span and box fields (agreement_geom.h says what each function promises).
 *
 * Each call works on one item: a few spans or boxes per annotator, called
 * once per annotator pair of each item. So the per-call overhead matters as
 * much as the asymptotics: small workspaces live on the stack, and lists are
 * split (by label, and for boxes by which boxes overlap at all) before any
 * quadratic or cubic step.
 */
#include "agreement_geom.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Workspace: one block carved into arrays, on the stack when it fits. */
typedef union {
    max_align_t align;
    unsigned char bytes[4096];
} stackbuf_t;

/* Reserves count elements of elem bytes at *off (8-byte aligned) and returns
 * their offset; aborts when the total would overflow size_t. */
static size_t carve(size_t *off, size_t count, size_t elem)
{
    size_t o = *off;
    QR_ASSERT(elem == 0 || count <= (SIZE_MAX - o - 8) / elem);
    *off = o + (count * elem + 7) / 8 * 8;
    return o;
}

static unsigned char *ws_get(stackbuf_t *sb, size_t n)
{
    return n <= sizeof(sb->bytes) ? sb->bytes : qr_xmalloc(n);
}

static void ws_put(stackbuf_t *sb, unsigned char *p)
{
    if (p != sb->bytes)
        free(p);
}

/* --- spans ------------------------------------------------------------- */

/* A span with its index in the by-start order of its label group. */
typedef struct {
    int64_t start, end;
    uint32_t label;
    uint32_t id;
} ent_t;

static int cmp_i64(int64_t x, int64_t y)
{
    return (x > y) - (x < y);
}

/* Label, start, end: groups by label, each group in order of start. */
static int cmp_label_start(const void *p, const void *q)
{
    const ent_t *x = p, *y = q;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    int c = cmp_i64(x->start, y->start);
    return c ? c : cmp_i64(x->end, y->end);
}

/* End, then id: the sweep's order inside a label group. */
static int cmp_end(const void *p, const void *q)
{
    const ent_t *x = p, *y = q;
    int c = cmp_i64(x->end, y->end);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* Spans of one list by start, for the sweep: a min-heap of their ids keyed by
 * end, filled with the spans that start before the sweep's current end. */
typedef struct {
    const ent_t *by_start; /* the group, in order of start */
    size_t n;              /* its size */
    size_t next;           /* first span of by_start not pushed yet */
    uint32_t *heap;        /* ids, min end first */
    size_t len;            /* ids in heap */
    unsigned char *done;   /* by id: paired, or passed by the sweep */
} side_t;

static int heap_less(const side_t *s, uint32_t x, uint32_t y)
{
    int64_t ex = s->by_start[x].end, ey = s->by_start[y].end;
    return ex < ey || (ex == ey && x < y);
}

static void heap_push(side_t *s, uint32_t id)
{
    size_t i = s->len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_less(s, id, s->heap[up]))
            break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = id;
}

static void heap_pop(side_t *s)
{
    uint32_t last = s->heap[--s->len];
    size_t i = 0, n = s->len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(s, s->heap[c + 1], s->heap[c]))
            c++;
        if (!heap_less(s, s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0)
        s->heap[i] = last;
}

/*
 * The sweep reaches span x (the unpaired span, of either list, that ends
 * first): pairs it with the unpaired span of the other list that starts
 * before x ends and ends first, if there is one. Returns 1 when it paired.
 *
 * Why this is a maximum pairing: every unpaired span y of the other list ends
 * at or after x (x ends first), so y intersects x exactly when y starts
 * before x ends. Take a maximum pairing M and y the span chosen here. If x is
 * unpaired in M, pairing x with y (dropping y's partner) keeps the size. If M
 * pairs x with y' and y with z: y' ends no earlier than y and starts before x
 * ends; z starts before y ends and ends no earlier than x, so z intersects y'
 * and {x-y, z-y'} replaces {x-y', z-y}. Either way some maximum pairing holds
 * x-y, and the rest of the sweep solves what is left the same way.
 */
static int sweep_take(const ent_t *x, side_t *other)
{
    while (other->next < other->n && other->by_start[other->next].start < x->end) {
        heap_push(other, (uint32_t)other->next);
        other->next++;
    }
    while (other->len > 0 && other->done[other->heap[0]])
        heap_pop(other);
    if (other->len == 0)
        return 0;
    other->done[other->heap[0]] = 1;
    heap_pop(other);
    return 1;
}

/* Maximum number of disjoint intersecting pairs between the same-label
 * groups a[0..na) and b[0..nb) (each in order of start). ea, eb: scratch of
 * na and nb entries; heap: na + nb ids; done: na + nb bytes. */
static size_t overlap_group(const ent_t *a, size_t na, const ent_t *b, size_t nb, ent_t *ea,
                            ent_t *eb, uint32_t *heap, unsigned char *done)
{
    for (size_t i = 0; i < na; i++) {
        ea[i] = a[i];
        ea[i].id = (uint32_t)i;
    }
    for (size_t i = 0; i < nb; i++) {
        eb[i] = b[i];
        eb[i].id = (uint32_t)i;
    }
    qsort(ea, na, sizeof(*ea), cmp_end);
    qsort(eb, nb, sizeof(*eb), cmp_end);
    memset(done, 0, na + nb);
    side_t sa = {a, na, 0, heap, 0, done};
    side_t sb = {b, nb, 0, heap + na, 0, done + na};
    size_t ia = 0, ib = 0, pairs = 0;
    while (ia < na || ib < nb) {
        int from_a = ib == nb || (ia < na && ea[ia].end <= eb[ib].end);
        const ent_t *x = from_a ? &ea[ia++] : &eb[ib++];
        side_t *own = from_a ? &sa : &sb, *other = from_a ? &sb : &sa;
        if (own->done[x->id])
            continue;
        own->done[x->id] = 1;
        pairs += (size_t)sweep_take(x, other);
    }
    return pairs;
}

/* Copies the non-empty spans of s[0..n) into e, sorted by label, start, end;
 * returns how many. */
static size_t spans_copy(const qr_span_t *s, size_t n, ent_t *e)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].end <= s[i].start)
            continue;
        e[k].start = s[i].start;
        e[k].end = s[i].end;
        e[k].label = s[i].label;
        e[k].id = 0;
        k++;
    }
    qsort(e, k, sizeof(*e), cmp_label_start);
    return k;
}

void qr_spans_match(const qr_span_t *a, size_t na, const qr_span_t *b, size_t nb, size_t *exact,
                    size_t *overlap)
{
    size_t ex = 0, ov = 0;
    if (na == 1 && nb == 1) {
        /* One span each (the common case of short texts): no workspace. */
        const qr_span_t *x = a, *y = b;
        int meet = x->label == y->label && x->start < x->end && y->start < y->end &&
                   x->start < y->end && y->start < x->end;
        ov = (size_t)meet;
        ex = (size_t)(meet && x->start == y->start && x->end == y->end);
    } else if (na > 0 && nb > 0) {
        QR_ASSERT(na < UINT32_MAX && nb < UINT32_MAX);
        size_t off = 0, n = na + nb;
        size_t o_a = carve(&off, na, sizeof(ent_t)), o_b = carve(&off, nb, sizeof(ent_t));
        size_t o_ea = carve(&off, na, sizeof(ent_t)), o_eb = carve(&off, nb, sizeof(ent_t));
        size_t o_heap = carve(&off, n, sizeof(uint32_t)), o_done = carve(&off, n, 1);
        stackbuf_t sb;
        unsigned char *ws = ws_get(&sb, off);
        ent_t *sa = (ent_t *)(ws + o_a), *sbs = (ent_t *)(ws + o_b);
        size_t ka = spans_copy(a, na, sa), kb = spans_copy(b, nb, sbs);

        /* Exact: a merge of the two sorted lists. */
        for (size_t i = 0, j = 0; i < ka && j < kb;) {
            int c = cmp_label_start(&sa[i], &sbs[j]);
            if (c == 0)
                ex++, i++, j++;
            else if (c < 0)
                i++;
            else
                j++;
        }

        /* Overlap: one sweep per label present in both lists. */
        for (size_t i = 0, j = 0; i < ka && j < kb;) {
            uint32_t la = sa[i].label, lb = sbs[j].label;
            if (la < lb) {
                i++;
                continue;
            }
            if (lb < la) {
                j++;
                continue;
            }
            size_t i1 = i, j1 = j;
            while (i1 < ka && sa[i1].label == la)
                i1++;
            while (j1 < kb && sbs[j1].label == la)
                j1++;
            ov += overlap_group(sa + i, i1 - i, sbs + j, j1 - j, (ent_t *)(ws + o_ea),
                                (ent_t *)(ws + o_eb), (uint32_t *)(ws + o_heap), ws + o_done);
            i = i1, j = j1;
        }
        ws_put(&sb, ws);
    }
    if (exact)
        *exact = ex;
    if (overlap)
        *overlap = ov;
}

/* A span of one annotator's list, for the consensus. */
typedef struct {
    int64_t start, end;
    uint32_t label;
    size_t list;
} lspan_t;

static int cmp_lspan(const void *p, const void *q)
{
    const lspan_t *x = p, *y = q;
    int c = cmp_i64(x->start, y->start);
    if (!c)
        c = cmp_i64(x->end, y->end);
    if (!c)
        c = (x->label > y->label) - (x->label < y->label);
    if (!c)
        c = (x->list > y->list) - (x->list < y->list);
    return c;
}

size_t qr_spans_consensus(const qr_span_t *const *lists, const size_t *counts, size_t n,
                          qr_span_t *out, size_t *support, size_t cap)
{
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        QR_ASSERT(lists[k] || counts[k] == 0);
        QR_ASSERT(counts[k] <= SIZE_MAX - total);
        total += counts[k];
    }
    if (total == 0 || cap == 0)
        return 0;
    size_t off = 0;
    carve(&off, total, sizeof(lspan_t));
    stackbuf_t sb;
    unsigned char *ws = ws_get(&sb, off);
    lspan_t *all = (lspan_t *)ws;
    size_t t = 0;
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < counts[k]; i++) {
            const qr_span_t *s = &lists[k][i];
            if (s->end <= s->start)
                continue;
            all[t++] = (lspan_t){s->start, s->end, s->label, k};
        }
    }
    qsort(all, t, sizeof(*all), cmp_lspan);
    size_t written = 0;
    for (size_t i = 0; i < t && written < cap;) {
        size_t j = i + 1, lists_holding = 1;
        while (j < t && all[j].start == all[i].start && all[j].end == all[i].end &&
               all[j].label == all[i].label) {
            lists_holding += all[j].list != all[j - 1].list;
            j++;
        }
        if (lists_holding > n / 2) {
            out[written] = (qr_span_t){all[i].start, all[i].end, all[i].label};
            if (support)
                support[written] = lists_holding;
            written++;
        }
        i = j;
    }
    ws_put(&sb, ws);
    return written;
}

/* --- boxes ------------------------------------------------------------- */

/* Finite coordinates and a positive area. */
static int box_valid(const qr_box_t *b)
{
    return isfinite(b->x) && isfinite(b->y) && isfinite(b->w) && isfinite(b->h) && b->w > 0 &&
           b->h > 0;
}

double qr_box_iou(const qr_box_t *a, const qr_box_t *b)
{
    if (!box_valid(a) || !box_valid(b))
        return 0.0;
    double ix0 = a->x > b->x ? a->x : b->x, iy0 = a->y > b->y ? a->y : b->y;
    double ax1 = a->x + a->w, bx1 = b->x + b->w, ay1 = a->y + a->h, by1 = b->y + b->h;
    double ix1 = ax1 < bx1 ? ax1 : bx1, iy1 = ay1 < by1 ? ay1 : by1;
    if (!(ix1 > ix0) || !(iy1 > iy0))
        return 0.0;
    double inter = (ix1 - ix0) * (iy1 - iy0);
    double uni = a->w * a->h + b->w * b->h - inter;
    if (!(uni > 0))
        return 0.0;
    /* Areas past DBL_MAX (coordinates far outside 0..100) make inf / inf:
     * answer 0 rather than NaN. */
    double r = inter / uni;
    if (!(r > 0))
        return 0.0;
    return r > 1.0 ? 1.0 : r;
}

/* A pair counts as a match: it overlaps, at the threshold or above. */
static int box_match(double iou, double thr)
{
    return iou > 0 && iou >= thr;
}

static size_t uf_find(size_t *parent, size_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/*
 * The Hungarian algorithm (Kuhn-Munkres with potentials, O(r^2 c)) on the
 * r x c matrix cost (row major), r <= c: the assignment of every row to a
 * distinct column of least total cost. On return p[j] (j = 1..c) is the row
 * (1..r) given column j, or 0. u: r + 1, v, minv: c + 1 doubles; way: c + 1;
 * used: c + 1 bytes.
 */
static void hungarian(const double *cost, size_t r, size_t c, double *u, double *v, double *minv,
                      size_t *p, size_t *way, unsigned char *used)
{
    for (size_t i = 0; i <= r; i++)
        u[i] = 0;
    for (size_t j = 0; j <= c; j++)
        v[j] = 0, p[j] = 0, way[j] = 0;
    for (size_t i = 1; i <= r; i++) {
        p[0] = i;
        size_t j0 = 0;
        for (size_t j = 0; j <= c; j++)
            minv[j] = 1e300, used[j] = 0;
        do {
            used[j0] = 1;
            size_t i0 = p[j0], j1 = 0;
            double delta = 1e300;
            for (size_t j = 1; j <= c; j++) {
                if (used[j])
                    continue;
                double cur = cost[(i0 - 1) * c + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j])
                    minv[j] = cur, way[j] = j0;
                if (minv[j] < delta)
                    delta = minv[j], j1 = j;
            }
            QR_ASSERT(j1 != 0);
            for (size_t j = 0; j <= c; j++) {
                if (used[j])
                    u[p[j]] += delta, v[j] -= delta;
                else
                    minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            size_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }
}

void qr_boxes_match(const qr_box_t *a, size_t na, const qr_box_t *b, size_t nb, double thr,
                    size_t *matched, double *iou_sum)
{
    size_t m = 0;
    double sum = 0;
    if (na == 1 && nb == 1) {
        double iou = a[0].label == b[0].label ? qr_box_iou(&a[0], &b[0]) : 0;
        if (box_match(iou, thr))
            m = 1, sum = iou;
    } else if (na > 0 && nb > 0) {
        /* The parts of the graph of overlapping same-label pairs: nodes
         * 0..na-1 are a's boxes, na..na+nb-1 b's. */
        QR_ASSERT(na <= SIZE_MAX / 2 - nb);
        size_t n = na + nb, off = 0;
        size_t o_parent = carve(&off, n, sizeof(size_t)), o_comp = carve(&off, n, sizeof(size_t));
        size_t o_rs = carve(&off, n + 1, sizeof(size_t)), o_cs = carve(&off, n + 1, sizeof(size_t));
        size_t o_rl = carve(&off, na, sizeof(size_t)), o_cl = carve(&off, nb, sizeof(size_t));
        stackbuf_t sb;
        unsigned char *ws = ws_get(&sb, off);
        size_t *parent = (size_t *)(ws + o_parent), *comp = (size_t *)(ws + o_comp);
        size_t *rstart = (size_t *)(ws + o_rs), *cstart = (size_t *)(ws + o_cs);
        size_t *rlist = (size_t *)(ws + o_rl), *clist = (size_t *)(ws + o_cl);
        for (size_t x = 0; x < n; x++)
            parent[x] = x;
        for (size_t i = 0; i < na; i++) {
            for (size_t j = 0; j < nb; j++) {
                if (a[i].label != b[j].label || qr_box_iou(&a[i], &b[j]) <= 0)
                    continue;
                size_t ri = uf_find(parent, i), rj = uf_find(parent, na + j);
                if (ri != rj)
                    parent[ri > rj ? ri : rj] = ri < rj ? ri : rj;
            }
        }
        /* Number the parts in order of their first node; then list each
         * part's rows (a) and columns (b) by a counting sort. */
        size_t parts = 0;
        for (size_t x = 0; x < n; x++)
            comp[x] = SIZE_MAX;
        for (size_t x = 0; x < n; x++) {
            size_t r = uf_find(parent, x);
            if (comp[r] == SIZE_MAX)
                comp[r] = parts++;
            comp[x] = comp[r];
        }
        memset(rstart, 0, (parts + 1) * sizeof(size_t));
        memset(cstart, 0, (parts + 1) * sizeof(size_t));
        for (size_t i = 0; i < na; i++)
            rstart[comp[i] + 1]++;
        for (size_t j = 0; j < nb; j++)
            cstart[comp[na + j] + 1]++;
        for (size_t k = 0; k < parts; k++)
            rstart[k + 1] += rstart[k], cstart[k + 1] += cstart[k];
        /* parent is free again: it serves as the fill cursor. */
        size_t *fill = parent;
        for (size_t k = 0; k < parts; k++)
            fill[k] = rstart[k];
        for (size_t i = 0; i < na; i++)
            rlist[fill[comp[i]]++] = i;
        for (size_t k = 0; k < parts; k++)
            fill[k] = cstart[k];
        for (size_t j = 0; j < nb; j++)
            clist[fill[comp[na + j]]++] = j;

        /* The largest assignment decides the second workspace. */
        size_t max_rc = 0, max_r = 0, max_c = 0;
        for (size_t k = 0; k < parts; k++) {
            size_t r = rstart[k + 1] - rstart[k], c = cstart[k + 1] - cstart[k];
            if (r > c) {
                size_t t = r;
                r = c, c = t;
            }
            if (r == 0 || c == 1)
                continue;
            QR_ASSERT(r == 0 || c <= SIZE_MAX / sizeof(double) / r);
            max_rc = r * c > max_rc ? r * c : max_rc;
            max_r = r > max_r ? r : max_r;
            max_c = c > max_c ? c : max_c;
        }
        size_t off2 = 0;
        size_t o_cost = carve(&off2, max_rc, sizeof(double));
        size_t o_u = carve(&off2, max_r + 1, sizeof(double));
        size_t o_v = carve(&off2, max_c + 1, sizeof(double));
        size_t o_minv = carve(&off2, max_c + 1, sizeof(double));
        size_t o_p = carve(&off2, max_c + 1, sizeof(size_t));
        size_t o_way = carve(&off2, max_c + 1, sizeof(size_t));
        size_t o_used = carve(&off2, max_c + 1, 1);
        stackbuf_t sb2;
        unsigned char *ws2 = ws_get(&sb2, off2);
        double *cost = (double *)(ws2 + o_cost);
        size_t *p = (size_t *)(ws2 + o_p);

        for (size_t k = 0; k < parts; k++) {
            const size_t *rows = rlist + rstart[k], *cols = clist + cstart[k];
            size_t r = rstart[k + 1] - rstart[k], c = cstart[k + 1] - cstart[k];
            if (r == 0 || c == 0)
                continue;
            if (r == 1 && c == 1) {
                double iou = qr_box_iou(&a[rows[0]], &b[cols[0]]);
                if (box_match(iou, thr))
                    m++, sum += iou;
                continue;
            }
            /* Rows are the smaller side; cost = -IoU. */
            int flip = r > c;
            const qr_box_t *rb = flip ? b : a, *cb = flip ? a : b;
            const size_t *ri = flip ? cols : rows, *ci = flip ? rows : cols;
            size_t nr = flip ? c : r, nc = flip ? r : c;
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < nc; j++)
                    cost[i * nc + j] = -qr_box_iou(&rb[ri[i]], &cb[ci[j]]);
            hungarian(cost, nr, nc, (double *)(ws2 + o_u), (double *)(ws2 + o_v),
                      (double *)(ws2 + o_minv), p, (size_t *)(ws2 + o_way), ws2 + o_used);
            for (size_t j = 1; j <= nc; j++) {
                if (p[j] == 0)
                    continue;
                double iou = -cost[(p[j] - 1) * nc + (j - 1)];
                if (box_match(iou, thr))
                    m++, sum += iou;
            }
        }
        ws_put(&sb2, ws2);
        ws_put(&sb, ws);
    }
    if (matched)
        *matched = m;
    if (iou_sum)
        *iou_sum = sum;
}

/* A box of one annotator's list, for the consensus. */
typedef struct {
    qr_box_t box;
    size_t list;  /* the annotator */
    size_t order; /* position over all lists, annotator by annotator */
} lbox_t;

/* A matching pair of boxes (indexes into the label group). */
typedef struct {
    double iou;
    uint32_t p, q; /* p < q */
} edge_t;

/* A kept cluster. */
typedef struct {
    qr_box_t mean;
    size_t support;
} kept_t;

static int cmp_lbox(const void *x, const void *y)
{
    const lbox_t *p = x, *q = y;
    if (p->box.label != q->box.label)
        return p->box.label < q->box.label ? -1 : 1;
    return (p->order > q->order) - (p->order < q->order);
}

static int cmp_edge(const void *x, const void *y)
{
    const edge_t *e = x, *f = y;
    if (e->iou != f->iou)
        return e->iou > f->iou ? -1 : 1;
    if (e->p != f->p)
        return e->p < f->p ? -1 : 1;
    return (e->q > f->q) - (e->q < f->q);
}

static int cmp_double(double x, double y)
{
    return (x > y) - (x < y);
}

static int cmp_kept(const void *x, const void *y)
{
    const kept_t *e = x, *f = y;
    if (e->mean.label != f->mean.label)
        return e->mean.label < f->mean.label ? -1 : 1;
    int c = cmp_double(e->mean.x, f->mean.x);
    if (!c)
        c = cmp_double(e->mean.y, f->mean.y);
    if (!c)
        c = cmp_double(e->mean.w, f->mean.w);
    if (!c)
        c = cmp_double(e->mean.h, f->mean.h);
    return c;
}

/* Cluster state over one label group of g boxes; a cluster is named by one
 * of its boxes and lists its boxes through next. */
typedef struct {
    const lbox_t *g; /* the group */
    size_t *cl;      /* box -> its cluster */
    size_t *first;   /* cluster -> its first box */
    size_t *next;    /* box -> the next box of its cluster, or SIZE_MAX */
    size_t *size;    /* cluster -> its boxes */
    double thr;
} clusters_t;

/* Joins the clusters of boxes p and q when they share no annotator and every
 * box of one matches every box of the other (complete linkage). */
static void cluster_join(clusters_t *c, size_t p, size_t q)
{
    size_t cp = c->cl[p], cq = c->cl[q];
    if (cp == cq)
        return;
    for (size_t x = c->first[cp]; x != SIZE_MAX; x = c->next[x]) {
        for (size_t y = c->first[cq]; y != SIZE_MAX; y = c->next[y]) {
            if (c->g[x].list == c->g[y].list ||
                !box_match(qr_box_iou(&c->g[x].box, &c->g[y].box), c->thr))
                return;
        }
    }
    if (c->size[cp] < c->size[cq]) {
        size_t t = cp;
        cp = cq, cq = t;
    }
    size_t last = SIZE_MAX;
    for (size_t y = c->first[cq]; y != SIZE_MAX; y = c->next[y])
        c->cl[y] = cp, last = y;
    c->next[last] = c->first[cp];
    c->first[cp] = c->first[cq];
    c->size[cp] += c->size[cq];
}

size_t qr_boxes_consensus(const qr_box_t *const *lists, const size_t *counts, size_t n, double thr,
                          qr_box_t *out, size_t *support, size_t cap)
{
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        QR_ASSERT(lists[k] || counts[k] == 0);
        QR_ASSERT(counts[k] <= SIZE_MAX / 2 - total);
        total += counts[k];
    }
    QR_ASSERT(total < UINT32_MAX);
    if (total == 0 || cap == 0)
        return 0;
    size_t off = 0;
    size_t o_all = carve(&off, total, sizeof(lbox_t));
    size_t o_cl = carve(&off, total, sizeof(size_t)), o_first = carve(&off, total, sizeof(size_t));
    size_t o_next = carve(&off, total, sizeof(size_t)), o_size = carve(&off, total, sizeof(size_t));
    size_t o_acc = carve(&off, total, 4 * sizeof(double));
    size_t o_kept = carve(&off, total, sizeof(kept_t));
    stackbuf_t sb;
    unsigned char *ws = ws_get(&sb, off);
    lbox_t *all = (lbox_t *)(ws + o_all);
    double *acc = (double *)(ws + o_acc);
    kept_t *kept = (kept_t *)(ws + o_kept);
    size_t t = 0;
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < counts[k]; i++, t++)
            all[t] = (lbox_t){lists[k][i], k, t};
    }
    qsort(all, total, sizeof(*all), cmp_lbox);

    edge_t *edges = NULL;
    size_t edges_cap = 0, nkept = 0;
    for (size_t g0 = 0; g0 < total;) {
        size_t g1 = g0 + 1;
        while (g1 < total && all[g1].box.label == all[g0].box.label)
            g1++;
        size_t gn = g1 - g0;
        const lbox_t *g = all + g0;
        clusters_t c = {g,
                        (size_t *)(ws + o_cl) + g0,
                        (size_t *)(ws + o_first) + g0,
                        (size_t *)(ws + o_next) + g0,
                        (size_t *)(ws + o_size) + g0,
                        thr};
        for (size_t x = 0; x < gn; x++)
            c.cl[x] = x, c.first[x] = x, c.next[x] = SIZE_MAX, c.size[x] = 1;

        /* Count the matching pairs first, so the list is allocated once at
         * its size (it is the one big allocation when many boxes overlap). */
        size_t ne = 0;
        for (size_t p = 0; p < gn; p++)
            for (size_t q = p + 1; q < gn; q++)
                ne += g[p].list != g[q].list && box_match(qr_box_iou(&g[p].box, &g[q].box), thr);
        if (ne > edges_cap) {
            QR_ASSERT(ne <= SIZE_MAX / sizeof(edge_t));
            free(edges);
            edges = qr_xmalloc(ne * sizeof(edge_t));
            edges_cap = ne;
        }
        ne = 0;
        for (size_t p = 0; p < gn; p++) {
            for (size_t q = p + 1; q < gn; q++) {
                if (g[p].list == g[q].list)
                    continue;
                double iou = qr_box_iou(&g[p].box, &g[q].box);
                if (box_match(iou, thr))
                    edges[ne++] = (edge_t){iou, (uint32_t)p, (uint32_t)q};
            }
        }
        if (ne > 1)
            qsort(edges, ne, sizeof(*edges), cmp_edge);
        for (size_t e = 0; e < ne; e++)
            cluster_join(&c, edges[e].p, edges[e].q);

        /* Sums in input order, so the mean does not depend on the order the
         * clusters grew in. */
        double *gacc = acc + 4 * g0;
        memset(gacc, 0, 4 * gn * sizeof(double));
        for (size_t x = 0; x < gn; x++) {
            double *s = gacc + 4 * c.cl[x];
            s[0] += g[x].box.x, s[1] += g[x].box.y, s[2] += g[x].box.w, s[3] += g[x].box.h;
        }
        for (size_t x = 0; x < gn; x++) {
            if (c.cl[x] != x || c.size[x] <= n / 2)
                continue;
            double k = (double)c.size[x], *s = gacc + 4 * x;
            kept[nkept].mean = (qr_box_t){s[0] / k, s[1] / k, s[2] / k, s[3] / k, g[x].box.label};
            kept[nkept].support = c.size[x];
            nkept++;
        }
        g0 = g1;
    }
    free(edges);
    qsort(kept, nkept, sizeof(*kept), cmp_kept);
    size_t written = nkept < cap ? nkept : cap;
    for (size_t i = 0; i < written; i++) {
        out[i] = kept[i].mean;
        if (support)
            support[i] = kept[i].support;
    }
    ws_put(&sb, ws);
    return written;
}
