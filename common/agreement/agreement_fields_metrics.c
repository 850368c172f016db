/*
 * agreement_fields_metrics.c - the figures of one field of agreement_fields.h
 * (issue 15) from the per-field store, in one pass over the items plus the
 * expected-disagreement terms.
 *
 * Each item's judgements are reduced to its distinct values with their
 * counts (values are interned, so equal values share an id); a pair score is
 * computed once per pair of distinct values and weighted by the product of
 * their counts. That is Krippendorff's coincidence approach: for multi_choice
 * alpha, the observed disagreement sums n_x n_y d(x, y) / (k - 1) per item and
 * the expected one sums N_x N_y d(x, y) over the distinct sets of the
 * pairable items (O(S^2) distances for S distinct sets: a few thousand in
 * practice; a distance is three popcounts when every choice id is < 64).
 */
#include "agreement_fields_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Figure slots per type. */
enum { F_MASI = 0, F_JACCARD = 1 };                         /* multi_choice */
enum { F_SPAN_EXACT = 0, F_SPAN_OVERLAP = 1, F_TOKEN = 2 }; /* spans */
enum { F_BOX_F1 = 0, F_BOX_IOU = 1 };                       /* boxes */
enum { F_TEXT_EXACT = 0, F_TEXT_SIM = 1 };                  /* text */

#define NO_PAIRS "no item has two or more judgements"

static void fig_value(qr_fig_t *f, double v)
{
    f->status = QR_FIG_DEFINED;
    f->value = v;
    f->reason[0] = '\0';
}

static void fig_reason(qr_fig_t *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fig_reason(qr_fig_t *f, int status, const char *fmt, ...)
{
    va_list ap;
    f->status = status;
    f->value = 0;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
}

double qr_masi_distance(uint32_t na, uint32_t nb, uint32_t ni)
{
    uint32_t nu = na + nb - ni;
    double m;

    if (nu == 0)
        return 0;
    if (na == nb && na == ni)
        m = 1;
    else if (ni == (na < nb ? na : nb))
        m = 0.67;
    else if (ni > 0)
        m = 0.33;
    else
        m = 0;
    return 1.0 - (double)ni / nu * m;
}

double qr_jaccard_distance(uint32_t na, uint32_t nb, uint32_t ni)
{
    uint32_t nu = na + nb - ni;
    return nu == 0 ? 0 : (double)(nu - ni) / nu;
}

/* |x ∩ y| of two interned sets. */
static uint32_t set_common(const qr_field_t *fd, uint32_t x, uint32_t y)
{
    if (!fd->wide)
        return (uint32_t)__builtin_popcountll(fd->v_mask[x] & fd->v_mask[y]);
    const uint32_t *a = fd->set_ids + fd->v_off[x], *b = fd->set_ids + fd->v_off[y];
    uint32_t na = fd->v_cnt[x], nb = fd->v_cnt[y], i = 0, j = 0, c = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j])
            c++, i++, j++;
        else if (a[i] < b[j])
            i++;
        else
            j++;
    }
    return c;
}

/* F1 of m matches between lists of na and nb entries; two empty lists: 1. */
static double f1(size_t m, size_t na, size_t nb)
{
    return na + nb == 0 ? 1.0 : 2.0 * (double)m / (double)(na + nb);
}

/*
 * The scores of the pair of values (x, y) of field fd into s[]: s[0] is the
 * pair score (per-item agreement, per-annotator pair_score), the rest depend
 * on the type: multi_choice s[1] MASI distance, s[2] Jaccard distance; spans
 * s[1] overlap F1; boxes s[1] matches, s[2] their IoU sum; text s[1] exact
 * (0 or 1); choice and rating s[0] only (1 when equal).
 */
static void pair_scores(const qr_fields_t *fs, const qr_field_t *fd, uint32_t x, uint32_t y,
                        double s[3])
{
    switch (fd->type) {
    case QR_FIELD_CHOICE:
    case QR_FIELD_RATING:
        s[0] = x == y;
        break;
    case QR_FIELD_MULTI_CHOICE: {
        uint32_t ni = x == y ? fd->v_cnt[x] : set_common(fd, x, y);
        s[1] = qr_masi_distance(fd->v_cnt[x], fd->v_cnt[y], ni);
        s[2] = qr_jaccard_distance(fd->v_cnt[x], fd->v_cnt[y], ni);
        s[0] = 1.0 - s[1];
        break;
    }
    case QR_FIELD_SPANS: {
        size_t exact = 0, overlap = 0, na = fd->v_cnt[x], nb = fd->v_cnt[y];
        if (x == y)
            exact = overlap = na;
        else
            qr_spans_match(qr_field_spans(fd, x), na, qr_field_spans(fd, y), nb, &exact, &overlap);
        s[0] = f1(exact, na, nb);
        s[1] = f1(overlap, na, nb);
        break;
    }
    case QR_FIELD_BOXES: {
        size_t m = 0, na = fd->v_cnt[x], nb = fd->v_cnt[y];
        double iou = 0;
        qr_boxes_match(qr_field_boxes(fd, x), na, qr_field_boxes(fd, y), nb, fs->iou, &m, &iou);
        s[0] = f1(m, na, nb);
        s[1] = (double)m;
        s[2] = iou;
        break;
    }
    case QR_FIELD_TEXT: {
        uint32_t a = fd->v_off[x], b = fd->v_off[y];
        if (a == b) {
            s[0] = s[1] = 1;
        } else {
            size_t la = fd->norm_cp_len[a], lb = fd->norm_cp_len[b];
            size_t d =
                qr_text_lev_cp(fd->cps + fd->norm_cp_off[a], la, fd->cps + fd->norm_cp_off[b], lb);
            s[0] = 1.0 - (double)d / (double)(la > lb ? la : lb);
            s[1] = 0;
        }
        break;
    }
    }
}

int qr_fmap_cmp_ids(const void *p, const void *q, void *names)
{
    const qr_fmap_t *m = names;
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    size_t lx = qr_fmap_len(m, x), ly = qr_fmap_len(m, y);
    int c = memcmp(qr_fmap_str(m, x), qr_fmap_str(m, y), lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

void qr_fmap_sort_ids(const qr_fmap_t *m, uint32_t *ids, size_t n)
{
    size_t i = 1;
    while (i < n && qr_fmap_cmp_ids(&ids[i - 1], &ids[i], (void *)m) <= 0)
        i++;
    if (i < n)
        qsort_r(ids, n, sizeof(uint32_t), qr_fmap_cmp_ids, (void *)m);
}

/* Token value of span lists (token alpha): 0 "O", 1 + label for one label,
 * 1 + labels + combo id for a set of several (combos interned in cm). */
static uint32_t token_join(qr_fmap_t *cm, uint32_t nlab, uint32_t tv, uint32_t label)
{
    uint32_t set[64], n = 0, id;
    int added;

    if (tv == 0)
        return 1 + label;
    if (tv == 1 + label)
        return tv;
    if (tv <= nlab) {
        set[n++] = tv - 1;
    } else {
        const uint32_t *old = (const uint32_t *)(const void *)qr_fmap_str(cm, tv - 1 - nlab);
        uint32_t on = (uint32_t)(qr_fmap_len(cm, tv - 1 - nlab) / sizeof(uint32_t));
        for (uint32_t i = 0; i < on && n < 63; i++) {
            uint32_t v;
            memcpy(&v, old + i, sizeof(v));
            if (v == label)
                return tv;
            set[n++] = v;
        }
    }
    /* Insert label in order. */
    uint32_t k = n;
    while (k > 0 && set[k - 1] > label) {
        set[k] = set[k - 1];
        k--;
    }
    set[k] = label;
    n++;
    if (qr_fmap_intern(cm, set, n * sizeof(uint32_t), &id, &added) < 0)
        return tv;
    return 1 + nlab + id;
}

/* The token alpha of a spans field over the items with a text. */
static void token_alpha(qr_field_an_t *an, qr_fig_t *fig)
{
    const qr_field_t *fd = an->fd;
    uint32_t nlab = fd->choices.n;
    qr_fmap_t combos;
    size_t cnt_cap = 64, tv_cap = 0, with_text = 0;
    uint64_t *cnt = qr_xcalloc(cnt_cap, sizeof(uint64_t)); /* per token value: count here */
    double *tot = qr_xcalloc(cnt_cap, sizeof(double));     /* per token value: pairable total */
    uint32_t *tv = NULL, *vals = qr_xmalloc(64 * sizeof(uint32_t)), *touched = NULL;
    size_t vals_cap = 64;
    double n_all = 0, do_sum = 0;

    qr_fmap_init(&combos);
    for (uint32_t i = 0; i < an->ni; i++) {
        uint32_t it = an->items[i], b = an->istart[i], e = an->istart[i + 1], k = e - b;
        if (k < 2 || it >= fd->item_text_cap || !fd->item_text[it])
            continue;
        with_text++;
        int64_t *ts, *te;
        size_t nt = qr_text_tokens(qr_fmap_str(&fd->texts, fd->item_text[it] - 1),
                                   qr_fmap_len(&fd->texts, fd->item_text[it] - 1), &ts, &te);
        if (k > vals_cap) {
            vals_cap = k;
            vals = qr_xrealloc(vals, vals_cap * sizeof(uint32_t));
        }
        if ((size_t)k * nt > tv_cap) {
            tv_cap = (size_t)k * nt;
            tv = qr_xrealloc(tv, tv_cap * sizeof(uint32_t) + 1);
        }
        memset(tv, 0, (size_t)k * nt * sizeof(uint32_t));
        for (uint32_t p = 0; p < k; p++) {
            uint32_t v = fd->j[an->jpos[b + p]].val;
            const qr_span_t *sp = qr_field_spans(fd, v);
            uint32_t *row = tv + (size_t)p * nt;
            for (uint32_t q = 0; q < fd->v_cnt[v]; q++) {
                /* First token ending after the span's start. */
                size_t lo = 0, hi = nt;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (te[mid] > sp[q].start)
                        hi = mid;
                    else
                        lo = mid + 1;
                }
                for (size_t t = lo; t < nt && ts[t] < sp[q].end; t++)
                    row[t] = token_join(&combos, nlab, row[t], sp[q].label);
            }
        }
        size_t ncodes = 1 + nlab + combos.n;
        if (ncodes > cnt_cap) {
            size_t old = cnt_cap;
            while (cnt_cap < ncodes)
                cnt_cap *= 2;
            cnt = qr_xrealloc(cnt, cnt_cap * sizeof(uint64_t));
            tot = qr_xrealloc(tot, cnt_cap * sizeof(double));
            memset(cnt + old, 0, (cnt_cap - old) * sizeof(uint64_t));
            memset(tot + old, 0, (cnt_cap - old) * sizeof(double));
        }
        touched = qr_xrealloc(touched, k * sizeof(uint32_t) + 1);
        for (size_t t = 0; t < nt; t++) {
            uint32_t d = 0;
            uint64_t sumsq = 0;
            for (uint32_t p = 0; p < k; p++) {
                uint32_t c = tv[(size_t)p * nt + t];
                if (cnt[c]++ == 0)
                    touched[d++] = c;
            }
            for (uint32_t u = 0; u < d; u++) {
                uint64_t c = cnt[touched[u]];
                sumsq += c * c;
                tot[touched[u]] += (double)c;
                cnt[touched[u]] = 0;
            }
            do_sum += ((double)k * k - (double)sumsq) / (k - 1);
            n_all += k;
        }
        free(ts);
    }
    if (with_text == 0) {
        fig_reason(fig, QR_FIG_NA,
                   "needs the items' text (the data field the spans are over; offline: a "
                   "\"text\" key on the item's lines)");
    } else if (n_all == 0) {
        fig_reason(fig, QR_FIG_UNDEFINED,
                   "no item with a text has two or more judgements and "
                   "a token");
    } else {
        double sum2 = 0;
        for (size_t c = 0; c < cnt_cap; c++)
            sum2 += tot[c] * tot[c];
        double de = n_all * n_all - sum2;
        if (de <= 0)
            fig_reason(fig, QR_FIG_UNDEFINED,
                       "no variation: every token has the same value (expected disagreement is "
                       "0)");
        else
            fig_value(fig, 1.0 - (n_all - 1) * do_sum / de);
    }
    qr_fmap_free(&combos);
    free(cnt);
    free(tot);
    free(tv);
    free(vals);
    free(touched);
}

/* Builds the item-major layout of fd's judgements; items in byte order of
 * their names when sorted_items, else in order of first appearance. */
static void layout(qr_field_an_t *an, int sorted_items)
{
    const qr_fields_t *fs = an->fs;
    const qr_field_t *fd = an->fd;
    uint32_t nitems = fs->items.n, nanns = fs->anns.n;
    uint32_t *pos = qr_xcalloc((size_t)nitems + 1, sizeof(uint32_t)); /* item id -> listed + 1 */

    an->items = qr_xmalloc((size_t)nitems * sizeof(uint32_t) + 1);
    an->ann_rank = qr_xmalloc((size_t)nanns * sizeof(uint32_t) + 1);
    an->anns = qr_xmalloc((size_t)nanns * sizeof(uint32_t) + 1);
    for (uint32_t a = 0; a < nanns; a++)
        an->ann_rank[a] = UINT32_MAX;
    for (size_t j = 0; j < fd->n; j++) {
        uint32_t it = fd->j[j].item, a = fd->j[j].ann;
        if (!pos[it]) {
            an->items[an->ni++] = it;
            pos[it] = 1;
        }
        if (an->ann_rank[a] == UINT32_MAX) {
            an->ann_rank[a] = 0;
            an->anns[an->nann++] = a;
        }
    }
    if (sorted_items) /* only listings need the order */
        qr_fmap_sort_ids(&fs->items, an->items, an->ni);
    qr_fmap_sort_ids(&fs->anns, an->anns, an->nann);
    for (uint32_t r = 0; r < an->nann; r++)
        an->ann_rank[an->anns[r]] = r;
    for (uint32_t i = 0; i < an->ni; i++)
        pos[an->items[i]] = i;

    an->istart = qr_xcalloc((size_t)an->ni + 1, sizeof(uint32_t));
    for (size_t j = 0; j < fd->n; j++)
        an->istart[pos[fd->j[j].item] + 1]++;
    for (uint32_t i = 0; i < an->ni; i++)
        an->istart[i + 1] += an->istart[i];
    uint32_t *fill = qr_xmalloc((size_t)an->ni * sizeof(uint32_t) + 1);
    memcpy(fill, an->istart, (size_t)an->ni * sizeof(uint32_t));
    an->jpos = qr_xmalloc(fd->n * sizeof(uint32_t) + 1);
    for (size_t j = 0; j < fd->n; j++)
        an->jpos[fill[pos[fd->j[j].item]]++] = (uint32_t)j;
    free(fill);
    free(pos);
}

void qr_field_analyse(qr_field_an_t *an, const qr_fields_t *fs, const qr_field_t *fd,
                      int sorted_items)
{
    uint32_t nv = fd->vals.n;
    uint32_t *cnt = qr_xcalloc((size_t)nv + 1, sizeof(uint32_t)); /* per value: count here */
    uint32_t *touched = qr_xmalloc(64 * sizeof(uint32_t));
    double *pc = qr_xcalloc((size_t)nv + 1, sizeof(double)); /* per value: pairable total */
    size_t touched_cap = 64, mat_cap = 0;
    double *mat = NULL; /* d x d pair scores s[0] */
    double sum_item[3] = {0, 0, 0}, pooled[3] = {0, 0, 0}, do_masi = 0, do_jac = 0, n_pair = 0;
    uint32_t nchoice = fd->type == QR_FIELD_MULTI_CHOICE ? fd->choices.n : 0;
    uint64_t *ccnt = NULL; /* per choice: count on this item */
    double *cdo = NULL, *ctot = NULL;

    memset(an, 0, sizeof(*an));
    an->fs = fs;
    an->fd = fd;
    layout(an, sorted_items);
    an->ann_j = qr_xcalloc((size_t)an->nann + 1, sizeof(uint32_t));
    an->ann_score = qr_xcalloc((size_t)an->nann + 1, sizeof(double));
    an->ann_pairs = qr_xcalloc((size_t)an->nann + 1, sizeof(uint64_t));
    an->item_agr = qr_xmalloc((size_t)an->ni * sizeof(double) + 1);
    if (nchoice) {
        ccnt = qr_xcalloc(nchoice, sizeof(uint64_t));
        cdo = qr_xcalloc(nchoice, sizeof(double));
        ctot = qr_xcalloc(nchoice, sizeof(double));
    }

    for (uint32_t i = 0; i < an->ni; i++) {
        uint32_t b = an->istart[i], e = an->istart[i + 1], k = e - b, d = 0;
        for (uint32_t p = b; p < e; p++)
            an->ann_j[an->ann_rank[fd->j[an->jpos[p]].ann]]++;
        if (k < 2) {
            an->item_agr[i] = -1;
            continue;
        }
        an->pairable++;
        if (k > touched_cap) {
            touched_cap = k;
            touched = qr_xrealloc(touched, touched_cap * sizeof(uint32_t));
        }
        for (uint32_t p = b; p < e; p++) {
            uint32_t v = fd->j[an->jpos[p]].val;
            if (cnt[v]++ == 0)
                touched[d++] = v;
        }
        if ((size_t)d * d > mat_cap) {
            mat_cap = (size_t)d * d;
            mat = qr_xrealloc(mat, mat_cap * sizeof(double));
        }
        double item_sum[3] = {0, 0, 0}, pairs = (double)k * (k - 1) / 2.0;
        for (uint32_t x = 0; x < d; x++) {
            uint32_t vx = touched[x];
            double nx = cnt[vx];
            pc[vx] += nx;
            for (uint32_t y = x; y < d; y++) {
                uint32_t vy = touched[y];
                double s[3] = {0, 0, 0}, w = x == y ? nx * (nx - 1) / 2.0 : nx * cnt[vy];
                if (w == 0) {
                    /* A value given once still needs its self score for the
                     * per-annotator rows (weighted by n_x - 1 = 0 there). */
                    mat[(size_t)x * d + y] = 0;
                    continue;
                }
                pair_scores(fs, fd, vx, vy, s);
                mat[(size_t)x * d + y] = mat[(size_t)y * d + x] = s[0];
                for (int m = 0; m < 3; m++)
                    item_sum[m] += w * s[m];
                if (fd->type == QR_FIELD_MULTI_CHOICE && x != y) {
                    do_masi += 2.0 * w * s[1] / (k - 1);
                    do_jac += 2.0 * w * s[2] / (k - 1);
                }
            }
        }
        /* Per annotator: the judgement of value x against the k - 1 others. */
        for (uint32_t p = b; p < e; p++) {
            uint32_t v = fd->j[an->jpos[p]].val, x = 0;
            while (touched[x] != v)
                x++;
            double row = 0;
            for (uint32_t y = 0; y < d; y++)
                row += (y == x ? cnt[v] - 1.0 : (double)cnt[touched[y]]) * mat[(size_t)x * d + y];
            uint32_t r = an->ann_rank[fd->j[an->jpos[p]].ann];
            an->ann_score[r] += row;
            an->ann_pairs[r] += k - 1;
        }
        if (nchoice) {
            uint32_t touched_c[64], nc = 0, *tc = touched_c, tc_cap = 64;
            for (uint32_t x = 0; x < d; x++) {
                uint32_t v = touched[x];
                const uint32_t *ids = fd->set_ids + fd->v_off[v];
                for (uint32_t q = 0; q < fd->v_cnt[v]; q++) {
                    if (ccnt[ids[q]] == 0) {
                        if (nc == tc_cap) {
                            tc_cap *= 2;
                            uint32_t *n2 = qr_xmalloc(tc_cap * sizeof(uint32_t));
                            memcpy(n2, tc, nc * sizeof(uint32_t));
                            if (tc != touched_c)
                                free(tc);
                            tc = n2;
                        }
                        tc[nc++] = ids[q];
                    }
                    ccnt[ids[q]] += cnt[v];
                }
            }
            for (uint32_t q = 0; q < nc; q++) {
                double pcount = (double)ccnt[tc[q]];
                cdo[tc[q]] += 2.0 * pcount * (k - pcount) / (k - 1);
                ctot[tc[q]] += pcount;
                ccnt[tc[q]] = 0;
            }
            if (tc != touched_c)
                free(tc);
        }
        for (uint32_t x = 0; x < d; x++)
            cnt[touched[x]] = 0;
        n_pair += k;
        an->item_agr[i] = item_sum[0] / pairs;
        for (int m = 0; m < 3; m++) {
            sum_item[m] += item_sum[m] / pairs;
            pooled[m] += item_sum[m];
        }
    }

    int none = an->pairable == 0;
    switch (fd->type) {
    case QR_FIELD_CHOICE:
    case QR_FIELD_RATING:
        break;
    case QR_FIELD_MULTI_CHOICE: {
        if (none) {
            fig_reason(&an->fig[F_MASI], QR_FIG_UNDEFINED, NO_PAIRS);
            fig_reason(&an->fig[F_JACCARD], QR_FIG_UNDEFINED, NO_PAIRS);
        } else {
            /* Expected disagreement over distinct pairable sets. */
            uint32_t *used = qr_xmalloc((size_t)nv * sizeof(uint32_t) + 1), nu = 0;
            for (uint32_t v = 0; v < nv; v++)
                if (pc[v] > 0)
                    used[nu++] = v;
            double de_masi = 0, de_jac = 0;
            for (uint32_t x = 0; x < nu; x++) {
                uint32_t vx = used[x], cx = fd->v_cnt[vx];
                for (uint32_t y = x + 1; y < nu; y++) {
                    uint32_t vy = used[y], ni = set_common(fd, vx, vy);
                    double w = 2.0 * pc[vx] * pc[vy];
                    de_masi += w * qr_masi_distance(cx, fd->v_cnt[vy], ni);
                    de_jac += w * qr_jaccard_distance(cx, fd->v_cnt[vy], ni);
                }
            }
            free(used);
            const char *flat = "no variation: every pairable judgement has the same set "
                               "(expected disagreement is 0)";
            if (de_masi <= 0)
                fig_reason(&an->fig[F_MASI], QR_FIG_UNDEFINED, "%s", flat);
            else
                fig_value(&an->fig[F_MASI], 1.0 - (n_pair - 1) * do_masi / de_masi);
            if (de_jac <= 0)
                fig_reason(&an->fig[F_JACCARD], QR_FIG_UNDEFINED, "%s", flat);
            else
                fig_value(&an->fig[F_JACCARD], 1.0 - (n_pair - 1) * do_jac / de_jac);
        }
        an->nchoice = nchoice;
        an->per_choice = qr_xcalloc((size_t)nchoice + 1, sizeof(qr_fig_t));
        for (uint32_t c = 0; c < nchoice; c++) {
            double de = 2.0 * ctot[c] * (n_pair - ctot[c]);
            if (none)
                fig_reason(&an->per_choice[c], QR_FIG_UNDEFINED, NO_PAIRS);
            else if (de <= 0)
                fig_reason(&an->per_choice[c], QR_FIG_UNDEFINED,
                           "no variation: the choice is in %s pairable judgement",
                           ctot[c] > 0 ? "every" : "no");
            else
                fig_value(&an->per_choice[c], 1.0 - (n_pair - 1) * cdo[c] / de);
        }
        break;
    }
    case QR_FIELD_SPANS:
        if (none) {
            fig_reason(&an->fig[F_SPAN_EXACT], QR_FIG_UNDEFINED, NO_PAIRS);
            fig_reason(&an->fig[F_SPAN_OVERLAP], QR_FIG_UNDEFINED, NO_PAIRS);
        } else {
            fig_value(&an->fig[F_SPAN_EXACT], sum_item[0] / an->pairable);
            fig_value(&an->fig[F_SPAN_OVERLAP], sum_item[1] / an->pairable);
        }
        if (none)
            fig_reason(&an->fig[F_TOKEN], QR_FIG_UNDEFINED, NO_PAIRS);
        else
            token_alpha(an, &an->fig[F_TOKEN]);
        break;
    case QR_FIELD_BOXES:
        if (none) {
            fig_reason(&an->fig[F_BOX_F1], QR_FIG_UNDEFINED, NO_PAIRS);
            fig_reason(&an->fig[F_BOX_IOU], QR_FIG_UNDEFINED, NO_PAIRS);
        } else {
            fig_value(&an->fig[F_BOX_F1], sum_item[0] / an->pairable);
            if (pooled[1] > 0)
                fig_value(&an->fig[F_BOX_IOU], pooled[2] / pooled[1]);
            else
                fig_reason(&an->fig[F_BOX_IOU], QR_FIG_UNDEFINED,
                           "no two annotators' boxes matched (IoU >= %g, same label)", fs->iou);
        }
        break;
    case QR_FIELD_TEXT:
        if (none) {
            fig_reason(&an->fig[F_TEXT_EXACT], QR_FIG_UNDEFINED, NO_PAIRS);
            fig_reason(&an->fig[F_TEXT_SIM], QR_FIG_UNDEFINED, NO_PAIRS);
        } else {
            fig_value(&an->fig[F_TEXT_EXACT], sum_item[1] / an->pairable);
            fig_value(&an->fig[F_TEXT_SIM], sum_item[0] / an->pairable);
        }
        break;
    }
    free(cnt);
    free(touched);
    free(pc);
    free(mat);
    free(ccnt);
    free(cdo);
    free(ctot);
}

void qr_field_analysis_free(qr_field_an_t *an)
{
    free(an->items);
    free(an->istart);
    free(an->jpos);
    free(an->anns);
    free(an->ann_rank);
    free(an->ann_j);
    free(an->ann_score);
    free(an->ann_pairs);
    free(an->item_agr);
    free(an->per_choice);
}
