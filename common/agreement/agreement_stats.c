/*
 * agreement_stats.c - the coefficients and breakdowns of issue 4, computed
 * from the judgement store in a few linear passes. The pair table is in
 * agreement_pairs.c and the JSON form in agreement_json.c; this file does no
 * I/O and builds no JSON.
 *
 * Layout: the judgements are counting-sorted once by item (so each item's
 * judgements are contiguous) and once by annotator. One pass over the items
 * then yields percent agreement, Fleiss, Krippendorff (all four metrics, the
 * ordinal one in a second cheap pass), Gwet's chance term and the majority
 * comparisons; one pass per annotator over the items it labeled yields the
 * pair table. No step is quadratic in the number of items or judgements;
 * pairs cost what the data has (k(k-1)/2 per item with k judgements), and the
 * ratio metric's expected disagreement is quadratic in the number of distinct
 * numeric levels.
 *
 * Definitions (the issue fixes them where the literature varies):
 * - percent agreement: Fleiss' mean over items with k >= 2 judgements of the
 *   share of agreeing ordered pairs, sum_c n_c (n_c - 1) / (k (k - 1)).
 * - Cohen's kappa (weighted forms with sklearn's rank weights), Scott's pi:
 *   exactly two annotators, over the items both labeled.
 * - Fleiss (1971): every item has the same k >= 2.
 * - Davies & Fleiss (1982) / Conger / NLTK multi_kappa: every annotator labeled
 *   every item; observed = mean pairwise agreement, expected = mean over
 *   annotator pairs of sum_c p_ac p_bc.
 * - Krippendorff (2011): coincidence matrix over pairable values.
 * - Gwet's AC1 (2008) as irrCAC's gwet.ac1.raw: pa as percent agreement, pi_c
 *   averaged over all items (single-judgement items included), pe =
 *   sum_c pi_c (1 - pi_c) / (q - 1) with q the labels used.
 * Where a coefficient is 0/0 on the data it is "undefined" with the reason;
 * where its precondition does not hold it is "not_applicable".
 */
#include "agreement_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "agreement_stats_internal.h"

static void coef_value(coef_t *c, double v)
{
    c->status = ST_DEFINED;
    c->value = v;
    c->reason[0] = '\0';
}

static void coef_reason(coef_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void coef_reason(coef_t *c, int status, const char *fmt, ...)
{
    va_list ap;

    c->status = status;
    c->value = 0;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
}

/* kappa = (po - pe) / (1 - pe) with po = agree / n and pe = sum_prod / n^2,
 * computed from integers so the 0/0 case is found exactly. */
void qr_agr_kappa_counts(coef_t *c, uint64_t n, uint64_t agree, uint64_t sum_prod)
{
    if (n == 0) {
        coef_reason(c, ST_UNDEFINED, "the two annotators share no item");
        return;
    }
    double nn = (double)n * (double)n;
    double den = nn - (double)sum_prod;
    if (den <= 0) {
        coef_reason(c, ST_UNDEFINED,
                    "chance agreement is 1: both annotators gave one and the same label "
                    "on every shared item");
        return;
    }
    coef_value(c, ((double)n * (double)agree - (double)sum_prod) / den);
}

/* Byte order of (s, n) strings, shorter prefix first. */
typedef struct {
    const char *s;
    uint32_t len;
    uint32_t id;
    double v;
} sortkey_t;

static int cmp_bytes(const sortkey_t *x, const sortkey_t *y)
{
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, m);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static int cmp_key_bytes(const void *p, const void *q)
{
    return cmp_bytes(p, q);
}

static int cmp_key_value(const void *p, const void *q)
{
    const sortkey_t *x = p, *y = q;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return cmp_bytes(x, y);
}

void qr_agr_sort_ids(const qr_strtab_t *t, const double *values, uint32_t *out)
{
    /* Exports usually list items (and often annotators) in name order: then
     * the order of first appearance is the answer, found in one pass. */
    if (!values) {
        uint32_t i = 1;
        for (; i < t->n; i++) {
            const char *x = qr_strtab_str(t, i - 1), *y = qr_strtab_str(t, i);
            uint32_t lx = qr_strtab_len(t, i - 1), ly = qr_strtab_len(t, i);
            int c = memcmp(x, y, lx < ly ? lx : ly);
            if (c > 0 || (c == 0 && lx > ly))
                break;
        }
        if (i >= t->n) {
            for (i = 0; i < t->n; i++)
                out[i] = i;
            return;
        }
    }
    sortkey_t *k = qr_xmalloc((size_t)t->n * sizeof(*k) + 1);

    for (uint32_t i = 0; i < t->n; i++) {
        k[i].s = qr_strtab_str(t, i);
        k[i].len = qr_strtab_len(t, i);
        k[i].id = i;
        k[i].v = values ? values[i] : 0;
    }
    qsort(k, t->n, sizeof(*k), values ? cmp_key_value : cmp_key_bytes);
    for (uint32_t i = 0; i < t->n; i++)
        out[i] = k[i].id;
    free(k);
}

/* Builds the item-major and annotator-major layouts and the label orders. */
static void layout(an_t *s)
{
    const qr_agreement_t *a = s->a;
    uint32_t *fill;

    s->ann_by_rank = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1);
    s->rank_of_ann = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1);
    qr_agr_sort_ids(&a->annotators, NULL, s->ann_by_rank);
    for (uint32_t r = 0; r < s->na; r++)
        s->rank_of_ann[s->ann_by_rank[r]] = r;

    s->numeric = qr_agr_labels_numeric(a);
    s->lab_order = qr_xmalloc((size_t)s->nl * sizeof(uint32_t) + 1);
    qr_agr_sort_ids(&a->labels, s->numeric ? a->label_value : NULL, s->lab_order);
    s->lev_of_label = qr_xcalloc((size_t)s->nl + 1, sizeof(uint32_t));
    s->lev_value = qr_xmalloc((size_t)s->nl * sizeof(double) + 1);
    if (s->numeric) {
        for (uint32_t i = 0; i < s->nl; i++) {
            uint32_t l = s->lab_order[i];
            double v = a->label_value[l];
            if (s->nlev == 0 || s->lev_value[s->nlev - 1] != v)
                s->lev_value[s->nlev++] = v;
            s->lev_of_label[l] = s->nlev - 1;
        }
    }

    s->label_count = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t));
    s->astart = qr_xcalloc((size_t)s->na + 1, sizeof(uint32_t));
    if (a->grouped) {
        /* Already in item order: positions are judgement indexes. */
        s->istart = a->item_end;
        s->ipack = a->packed ? a->j_al : NULL;
        s->iann = a->j_ann;
        s->ilab = a->j_label;
    } else {
        uint32_t *istart = s->own_istart = qr_xcalloc((size_t)s->ni + 1, sizeof(uint32_t));
        for (size_t j = 0; j < s->n; j++)
            istart[a->j_item[j] + 1]++;
        for (uint32_t i = 0; i < s->ni; i++)
            istart[i + 1] += istart[i];
        s->istart = istart;
        s->own_pos = qr_xmalloc((a->packed ? 1 : 2) * s->n * sizeof(uint32_t) + 1);
        fill = qr_xmalloc((size_t)s->ni * sizeof(uint32_t) + 1);
        memcpy(fill, s->istart, (size_t)s->ni * sizeof(uint32_t));
        if (a->packed) {
            for (size_t j = 0; j < s->n; j++)
                s->own_pos[fill[a->j_item[j]]++] = a->j_al[j];
            s->ipack = s->own_pos;
        } else {
            uint32_t *iann = s->own_pos, *ilab = s->own_pos + s->n;
            for (size_t j = 0; j < s->n; j++) {
                uint32_t p = fill[a->j_item[j]]++;
                iann[p] = a->j_ann[j];
                ilab[p] = a->j_label[j];
            }
            s->iann = iann;
            s->ilab = ilab;
        }
        free(fill);
    }
    /* astart[] and label_count[] are counted in item_pass(), which reads
     * every position anyway. */
}

/* The annotator-major layout (pitem, apos), built only by the passes that
 * need it: Davies-Fleiss when it applies and the sparse pair pass. */
void qr_agr_layout_by_annotator(an_t *s)
{
    if (s->apos)
        return;
    uint32_t *fill = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1);
    s->pitem = qr_xmalloc(s->n * sizeof(uint32_t) + 1);
    s->apos = qr_xmalloc(s->n * sizeof(uint32_t) + 1);
    memcpy(fill, s->astart, (size_t)s->na * sizeof(uint32_t));
    for (uint32_t i = 0; i < s->ni; i++) {
        for (uint32_t p = s->istart[i]; p < s->istart[i + 1]; p++) {
            s->pitem[p] = i;
            s->apos[fill[an_rank(s, p)]++] = p;
        }
    }
    free(fill);
}

/* Krippendorff's alpha from the summed observed disagreement do_sum =
 * sum_ck o_ck delta_ck and the expected de_sum = sum_ck n_c n_k delta_ck over
 * n pairable values: alpha = 1 - (n - 1) do_sum / de_sum. */
static void alpha_from(coef_t *c, double n, double do_sum, double de_sum)
{
    coef_value(c, 1.0 - (n - 1.0) * do_sum / de_sum);
}

/*
 * The pass over items: percent agreement, Fleiss, Krippendorff, Gwet, the
 * majority comparisons per annotator and, when asked, per-item results.
 */
static void item_pass(an_t *s, int per_item)
{
    const qr_agreement_t *a = s->a;
    uint32_t *cnt = qr_xcalloc((size_t)s->nl + 1, sizeof(uint32_t));
    uint32_t *touched = qr_xmalloc((size_t)s->nl * sizeof(uint32_t) + 1);
    uint64_t *pc = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t)); /* pairable counts */
    double *pi_sum = qr_xcalloc((size_t)s->nl + 1, sizeof(double));
    double pa_sum = 0, do_nom = 0, do_int = 0, do_ratio = 0;
    uint64_t q_sum = 0, npair_values = 0;
    uint32_t kmin = UINT32_MAX, kmax = 0;
    int ratio_ok = s->numeric && s->lev_value[0] >= 0;

    uint32_t *lab = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1);  /* an item's labels */
    uint32_t *rank = qr_xmalloc((size_t)s->na * sizeof(uint32_t) + 1); /* and annotators */

    s->maj_agree = qr_xcalloc((size_t)s->na + 1, sizeof(uint64_t));
    s->maj_compared = qr_xcalloc((size_t)s->na + 1, sizeof(uint64_t));
    if (per_item) {
        s->item_agr = qr_xmalloc((size_t)s->ni * sizeof(double) + 1);
        s->item_major = qr_xmalloc((size_t)s->ni * sizeof(int64_t) + 1);
        s->item_top = qr_xmalloc((size_t)s->ni * sizeof(uint32_t) + 1);
    }

    for (uint32_t i = 0; i < s->ni; i++) {
        uint32_t b = s->istart[i], e = s->istart[i + 1], k = e - b, d = 0;
        uint32_t c1 = 0, c2 = 0, c3 = 0, l1 = UINT32_MAX, l2 = UINT32_MAX;
        uint64_t sumsq = 0;

        /* k <= na: no annotator labels an item twice. */
        an_decode(s, b, e, lab, rank);
        for (uint32_t t = 0; t < k; t++) {
            uint32_t l = lab[t];
            s->label_count[l]++;
            s->astart[rank[t] + 1]++;
            if (cnt[l]++ == 0)
                touched[d++] = l;
        }
        for (uint32_t t = 0; t < d; t++) {
            uint32_t l = touched[t], c = cnt[l];
            sumsq += (uint64_t)c * c;
            pi_sum[l] += (double)c / k;
            if (c > c1) {
                c3 = c2, c2 = c1, l2 = l1;
                c1 = c, l1 = l;
            } else if (c > c2) {
                c3 = c2;
                c2 = c, l2 = l;
            } else if (c > c3) {
                c3 = c;
            }
        }
        kmin = k < kmin ? k : kmin;
        kmax = k > kmax ? k : kmax;
        q_sum += sumsq;
        if (per_item) {
            s->item_agr[i] = k >= 2 ? (double)(sumsq - k) / ((double)k * (double)(k - 1)) : -1.0;
            s->item_major[i] = c1 > c2 ? (int64_t)l1 : -1;
            s->item_top[i] = c1 > c2 ? c1 : 0;
        }

        if (k >= 2) {
            s->pairable++;
            npair_values += k;
            pa_sum += (double)(sumsq - k) / ((double)k * (double)(k - 1));
            do_nom += ((double)k * (double)k - (double)sumsq) / (double)(k - 1);
            for (uint32_t t = 0; t < d; t++)
                pc[touched[t]] += cnt[touched[t]];
            if (s->numeric) {
                double sum = 0, ss = 0;
                for (uint32_t t = 0; t < d; t++)
                    sum += cnt[touched[t]] * a->label_value[touched[t]];
                double mean = sum / k;
                for (uint32_t t = 0; t < d; t++) {
                    double dv = a->label_value[touched[t]] - mean;
                    ss += cnt[touched[t]] * dv * dv;
                }
                do_int += 2.0 * k * ss / (k - 1);
                if (ratio_ok) {
                    double r = 0;
                    for (uint32_t t = 0; t < d; t++) {
                        double x = a->label_value[touched[t]];
                        for (uint32_t u = t + 1; u < d; u++) {
                            double y = a->label_value[touched[u]];
                            if (x + y > 0) {
                                double q = (x - y) / (x + y);
                                r += (double)cnt[touched[t]] * cnt[touched[u]] * q * q;
                            }
                        }
                    }
                    do_ratio += 2.0 * r / (k - 1);
                }
            }
            /* Majority of the others: the counts minus this judgement. */
            for (uint32_t t = 0; t < k; t++) {
                uint32_t l = lab[t];
                int64_t win = -1;
                if (l != l1 && l != l2) {
                    if (c1 > c2)
                        win = l1;
                } else if (l == l1) {
                    if (c1 - 1 > c2)
                        win = l1;
                    else if (c2 > c1 - 1 && c2 > c3)
                        win = l2;
                } else if (c1 > c3) { /* l == l2: l1 keeps c1 > c2 - 1 */
                    win = l1;
                }
                if (win >= 0) {
                    uint32_t r = rank[t];
                    s->maj_compared[r]++;
                    s->maj_agree[r] += (uint32_t)win == l;
                }
            }
        }
        for (uint32_t t = 0; t < d; t++)
            cnt[touched[t]] = 0;
    }

    for (uint32_t r = 0; r < s->na; r++)
        s->astart[r + 1] += s->astart[r];
    for (uint32_t l = 0; l < s->nl; l++)
        s->labels_used += s->label_count[l] > 0;

    /* percent_agreement */
    if (s->pairable == 0)
        coef_reason(&s->m[M_PERCENT], ST_UNDEFINED, "no item has two or more judgements");
    else
        coef_value(&s->m[M_PERCENT], pa_sum / s->pairable);

    /* fleiss_kappa */
    coef_t *fk = &s->m[M_FLEISS];
    if (s->ni == 0) {
        coef_reason(fk, ST_NOT_APPLICABLE, "there are no items");
    } else if (kmin != kmax) {
        coef_reason(fk, ST_NOT_APPLICABLE,
                    "needs the same number of judgements on every item; items have %u to %u", kmin,
                    kmax);
    } else if (kmin < 2) {
        coef_reason(fk, ST_NOT_APPLICABLE, "needs at least two judgements per item; items have %u",
                    kmin);
    } else if (s->labels_used < 2) {
        coef_reason(fk, ST_UNDEFINED, "every judgement has the same label (chance agreement is 1)");
    } else {
        double k = kmin, ni = s->ni, t = ni * k, sumc2 = 0;
        for (uint32_t l = 0; l < s->nl; l++)
            sumc2 += (double)s->label_count[l] * (double)s->label_count[l];
        double pbar = ((double)q_sum - t) / (t * (k - 1));
        double pe = sumc2 / (t * t);
        coef_value(fk, (pbar - pe) / (1 - pe));
    }

    /* krippendorff_alpha_* */
    uint32_t pairable_labels = 0;
    double sum_pc2 = 0, nv = (double)npair_values;
    for (uint32_t l = 0; l < s->nl; l++) {
        pairable_labels += pc[l] > 0;
        sum_pc2 += (double)pc[l] * (double)pc[l];
    }
    if (s->pairable == 0)
        coef_reason(&s->m[M_ALPHA_NOMINAL], ST_UNDEFINED, "no item has two or more judgements");
    else if (pairable_labels < 2)
        coef_reason(&s->m[M_ALPHA_NOMINAL], ST_UNDEFINED,
                    "every pairable judgement has the same label (expected disagreement is 0)");
    else
        alpha_from(&s->m[M_ALPHA_NOMINAL], nv, do_nom, nv * nv - sum_pc2);

    if (!s->numeric) {
        for (int m = M_ALPHA_ORDINAL; m <= M_ALPHA_RATIO; m++)
            coef_reason(&s->m[m], ST_NOT_APPLICABLE,
                        "needs numeric labels; %u of %u are not numbers", a->non_numeric, s->nl);
    } else {
        /* Pairable counts per numeric level; distinct levels decide 0/0. */
        double *nc = qr_xcalloc(s->nlev + 1, sizeof(double));
        uint32_t levels = 0;
        for (uint32_t l = 0; l < s->nl; l++)
            nc[s->lev_of_label[l]] += (double)pc[l];
        for (uint32_t v = 0; v < s->nlev; v++)
            levels += nc[v] > 0;
        const char *why = NULL;
        if (s->pairable == 0)
            why = "no item has two or more judgements";
        else if (levels < 2)
            why = "every pairable judgement has the same value (expected disagreement is 0)";
        if (why) {
            for (int m = M_ALPHA_ORDINAL; m <= M_ALPHA_RATIO; m++)
                coef_reason(&s->m[m], ST_UNDEFINED, "%s", why);
        } else {
            /* interval: sum_ck n_c n_k (v_c - v_k)^2 = 2 n sum_c n_c (v_c - mean)^2 */
            double sum = 0, ss = 0;
            for (uint32_t v = 0; v < s->nlev; v++)
                sum += nc[v] * s->lev_value[v];
            double mean = sum / nv;
            for (uint32_t v = 0; v < s->nlev; v++)
                ss += nc[v] * (s->lev_value[v] - mean) * (s->lev_value[v] - mean);
            alpha_from(&s->m[M_ALPHA_INTERVAL], nv, do_int, 2.0 * nv * ss);

            /* ordinal: delta_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2, which is
             * the interval metric on the mid-rank F_c = sum_{g<c} n_g + n_c / 2. */
            double *f = qr_xmalloc(s->nlev * sizeof(double) + 1);
            double below = 0, fsum = 0, fss = 0, do_ord = 0;
            for (uint32_t v = 0; v < s->nlev; v++) {
                f[v] = below + nc[v] / 2;
                below += nc[v];
                fsum += nc[v] * f[v];
            }
            double fmean = fsum / nv;
            for (uint32_t v = 0; v < s->nlev; v++)
                fss += nc[v] * (f[v] - fmean) * (f[v] - fmean);
            for (uint32_t i = 0; i < s->ni; i++) {
                uint32_t b = s->istart[i], e = s->istart[i + 1], k = e - b;
                if (k < 2)
                    continue;
                double us = 0, uss = 0;
                an_decode(s, b, e, lab, NULL);
                for (uint32_t t = 0; t < k; t++)
                    us += f[s->lev_of_label[lab[t]]];
                double um = us / k;
                for (uint32_t t = 0; t < k; t++) {
                    double dv = f[s->lev_of_label[lab[t]]] - um;
                    uss += dv * dv;
                }
                do_ord += 2.0 * k * uss / (k - 1);
            }
            alpha_from(&s->m[M_ALPHA_ORDINAL], nv, do_ord, 2.0 * nv * fss);
            free(f);

            /* ratio: delta_ck = ((c - k) / (c + k))^2; needs values >= 0. */
            if (!ratio_ok) {
                coef_reason(&s->m[M_ALPHA_RATIO], ST_NOT_APPLICABLE,
                            "the ratio metric needs non-negative values; the smallest is %g",
                            s->lev_value[0]);
            } else {
                double de = 0;
                for (uint32_t x = 0; x < s->nlev; x++) {
                    if (nc[x] == 0)
                        continue;
                    for (uint32_t y = x + 1; y < s->nlev; y++) {
                        if (nc[y] == 0)
                            continue;
                        double q = (s->lev_value[x] - s->lev_value[y]) /
                                   (s->lev_value[x] + s->lev_value[y]);
                        de += 2.0 * nc[x] * nc[y] * q * q;
                    }
                }
                alpha_from(&s->m[M_ALPHA_RATIO], nv, do_ratio, de);
            }
        }
        free(nc);
    }

    /* gwet_ac1 */
    coef_t *g = &s->m[M_GWET];
    if (s->pairable == 0) {
        coef_reason(g, ST_UNDEFINED, "no item has two or more judgements");
    } else if (s->labels_used < 2) {
        coef_reason(g, ST_UNDEFINED,
                    "every judgement has the same label (chance agreement is 0/0 with one "
                    "category)");
    } else {
        double pe = 0;
        for (uint32_t l = 0; l < s->nl; l++) {
            double pi = pi_sum[l] / s->ni;
            pe += pi * (1 - pi);
        }
        pe /= (double)(s->labels_used - 1);
        coef_value(g, (s->m[M_PERCENT].value - pe) / (1 - pe));
    }

    free(cnt);
    free(touched);
    free(pc);
    free(pi_sum);
    free(lab);
    free(rank);
}

/* davies_fleiss_kappa: needs per-annotator label counts, so one pass over the
 * annotator-major layout. */
static void davies_fleiss(an_t *s)
{
    coef_t *c = &s->m[M_DAVIES_FLEISS];

    if (s->na < 2) {
        coef_reason(c, ST_NOT_APPLICABLE, "needs at least two annotators; found %u", s->na);
        return;
    }
    if (s->ni == 0 || (double)s->n != (double)s->ni * s->na) {
        coef_reason(c, ST_NOT_APPLICABLE,
                    "needs every annotator to label every item; %zu of %u x %u judgements present",
                    s->n, s->ni, s->na);
        return;
    }
    if (s->labels_used < 2) {
        coef_reason(c, ST_UNDEFINED, "every judgement has the same label (chance agreement is 1)");
        return;
    }
    qr_agr_layout_by_annotator(s);
    uint32_t *cnt = qr_xcalloc((size_t)s->nl + 1, sizeof(uint32_t));
    uint32_t *touched = qr_xmalloc((size_t)s->nl * sizeof(uint32_t) + 1);
    double within = 0, total = 0, pbar = 0;
    for (uint32_t r = 0; r < s->na; r++) {
        uint32_t d = 0;
        for (uint32_t q = s->astart[r]; q < s->astart[r + 1]; q++) {
            uint32_t l = an_lab(s, s->apos[q]);
            if (cnt[l]++ == 0)
                touched[d++] = l;
        }
        for (uint32_t t = 0; t < d; t++) {
            within += (double)cnt[touched[t]] * cnt[touched[t]];
            cnt[touched[t]] = 0;
        }
    }
    for (uint32_t l = 0; l < s->nl; l++)
        total += (double)s->label_count[l] * (double)s->label_count[l];
    free(cnt);
    free(touched);
    double ni = s->ni, m = s->na;
    double pe = (total - within) / (ni * ni * m * (m - 1));
    pbar = s->m[M_PERCENT].value; /* every item has m >= 2 judgements */
    coef_value(c, (pbar - pe) / (1 - pe));
}

/* The two-annotator coefficients over the items both labeled. */
static void two_annotators(an_t *s)
{
    static const int ms[] = {M_COHEN, M_COHEN_LINEAR, M_COHEN_QUADRATIC, M_SCOTT};
    const qr_agreement_t *a = s->a;

    if (s->na != 2) {
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
            coef_reason(&s->m[ms[i]], ST_NOT_APPLICABLE, "needs exactly 2 annotators; found %u",
                        s->na);
        return;
    }
    uint64_t *ra = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t));
    uint64_t *rb = qr_xcalloc((size_t)s->nl + 1, sizeof(uint64_t));
    uint64_t n = 0, agree = 0, sum_prod = 0;
    double wl = 0, wq = 0; /* sum of weights over the observed pairs, by level rank */
    uint32_t *rank = NULL;
    if (s->numeric) {
        /* Rank of each level among the levels present on shared items. */
        unsigned char *present = qr_xcalloc(s->nlev + 1, 1);
        rank = qr_xcalloc(s->nlev + 1, sizeof(uint32_t));
        for (uint32_t i = 0; i < s->ni; i++) {
            if (s->istart[i + 1] - s->istart[i] != 2)
                continue;
            present[s->lev_of_label[an_lab(s, s->istart[i])]] = 1;
            present[s->lev_of_label[an_lab(s, s->istart[i] + 1)]] = 1;
        }
        for (uint32_t v = 0, r = 0; v < s->nlev; v++)
            if (present[v])
                rank[v] = r++;
        free(present);
    }
    for (uint32_t i = 0; i < s->ni; i++) {
        uint32_t b = s->istart[i];
        if (s->istart[i + 1] - b != 2)
            continue;
        uint32_t p0 = an_rank(s, b) == 0 ? b : b + 1, p1 = p0 == b ? b + 1 : b;
        uint32_t la = an_lab(s, p0), lb = an_lab(s, p1);
        n++;
        agree += la == lb;
        ra[la]++;
        rb[lb]++;
        if (rank) {
            double d = (double)rank[s->lev_of_label[la]] - (double)rank[s->lev_of_label[lb]];
            wl += fabs(d);
            wq += d * d;
        }
    }
    uint64_t scott = 0;
    uint32_t used = 0;
    for (uint32_t l = 0; l < s->nl; l++) {
        sum_prod += ra[l] * rb[l];
        scott += (ra[l] + rb[l]) * (ra[l] + rb[l]);
        used += ra[l] + rb[l] > 0;
    }
    qr_agr_kappa_counts(&s->m[M_COHEN], n, agree, sum_prod);

    /* Scott: pe = sum_c ((ra_c + rb_c) / 2n)^2 -> (4 n agree - S) / (4 n^2 - S). */
    if (n == 0)
        coef_reason(&s->m[M_SCOTT], ST_UNDEFINED, "the two annotators share no item");
    else if (used < 2)
        coef_reason(&s->m[M_SCOTT], ST_UNDEFINED,
                    "every shared judgement has the same label (chance agreement is 1)");
    else
        coef_value(&s->m[M_SCOTT], (4.0 * n * agree - (double)scott) /
                                       (4.0 * (double)n * (double)n - (double)scott));

    /* Weighted kappa (sklearn): 1 - n sum w_ij o_ij / sum_ij w_ij r_i c_j with
     * w = |i - j| or (i - j)^2 over level ranks. */
    if (!s->numeric) {
        coef_reason(&s->m[M_COHEN_LINEAR], ST_NOT_APPLICABLE,
                    "needs numeric labels; %u of %u are not numbers", a->non_numeric, s->nl);
        coef_reason(&s->m[M_COHEN_QUADRATIC], ST_NOT_APPLICABLE,
                    "needs numeric labels; %u of %u are not numbers", a->non_numeric, s->nl);
    } else if (n == 0) {
        coef_reason(&s->m[M_COHEN_LINEAR], ST_UNDEFINED, "the two annotators share no item");
        coef_reason(&s->m[M_COHEN_QUADRATIC], ST_UNDEFINED, "the two annotators share no item");
    } else {
        /* Marginals per level rank; E_lin and E_quad by prefix sums, O(levels). */
        double *rr = qr_xcalloc(s->nlev + 1, sizeof(double));
        double *cc = qr_xcalloc(s->nlev + 1, sizeof(double));
        uint32_t nr = 0;
        for (uint32_t l = 0; l < s->nl; l++) {
            if (ra[l] + rb[l] == 0)
                continue;
            uint32_t r = rank[s->lev_of_label[l]];
            rr[r] += (double)ra[l];
            cc[r] += (double)rb[l];
            nr = r + 1 > nr ? r + 1 : nr;
        }
        double sr = 0, sri = 0, sri2 = 0, sc = 0, sci = 0, sci2 = 0;
        for (uint32_t r = 0; r < nr; r++) {
            sr += rr[r], sri += rr[r] * r, sri2 += rr[r] * r * (double)r;
            sc += cc[r], sci += cc[r] * r, sci2 += cc[r] * r * (double)r;
        }
        double eq = sri2 * sc + sr * sci2 - 2.0 * sri * sci;
        /* sum_ij |i - j| r_i c_j: for each column j, rows below and above it. */
        double el = 0, pr = 0, pri = 0;
        for (uint32_t j = 0; j < nr; j++) {
            double below = j * pr - pri;
            double above = (sri - pri - rr[j] * j) - j * (sr - pr - rr[j]);
            el += cc[j] * (below + above);
            pr += rr[j];
            pri += rr[j] * j;
        }
        const char *why = "expected weighted disagreement is 0: both annotators gave one and "
                          "the same label on every shared item";
        if (el <= 0)
            coef_reason(&s->m[M_COHEN_LINEAR], ST_UNDEFINED, "%s", why);
        else
            coef_value(&s->m[M_COHEN_LINEAR], 1.0 - (double)n * wl / el);
        if (eq <= 0)
            coef_reason(&s->m[M_COHEN_QUADRATIC], ST_UNDEFINED, "%s", why);
        else
            coef_value(&s->m[M_COHEN_QUADRATIC], 1.0 - (double)n * wq / eq);
        free(rr);
        free(cc);
    }
    free(rank);
    free(ra);
    free(rb);
}

void qr_agr_analysis_free(an_t *s)
{
    free(s->own_istart);
    free(s->own_pos);
    free(s->pitem);
    free(s->astart);
    free(s->apos);
    free(s->ann_by_rank);
    free(s->rank_of_ann);
    free(s->lab_order);
    free(s->label_count);
    free(s->lev_value);
    free(s->lev_of_label);
    free(s->pairs);
    free(s->maj_agree);
    free(s->maj_compared);
    free(s->item_agr);
    free(s->item_major);
    free(s->item_top);
}

struct qr_agreement_items_s {
    const qr_agreement_t *a;
    uint32_t n, pos;
    uint32_t *order; /* item ids in byte order of their names */
    double *agr;     /* per item id: share of agreeing pairs, or -1 */
    int64_t *major;  /* per item id: unique plurality label, or -1 */
    uint32_t *top;   /* per item id: judgements with that label, or 0 */
};

int qr_agreement_items_next(qr_agreement_items_t *it, qr_agreement_item_t *out)
{
    if (it->pos >= it->n)
        return 0;
    const qr_agreement_t *a = it->a;
    uint32_t i = it->order[it->pos++];
    out->item = qr_strtab_str(&a->items, i);
    out->item_len = qr_strtab_len(&a->items, i);
    out->judgements = qr_agr_item_count(a, i);
    out->has_agreement = it->agr[i] >= 0;
    out->agreement = it->agr[i] >= 0 ? it->agr[i] : 0;
    if (it->major[i] >= 0) {
        out->majority = qr_strtab_str(&a->labels, (uint32_t)it->major[i]);
        out->majority_len = qr_strtab_len(&a->labels, (uint32_t)it->major[i]);
    } else {
        out->majority = NULL;
        out->majority_len = 0;
    }
    out->majority_count = it->top[i];
    return 1;
}

size_t qr_agreement_items_count(const qr_agreement_items_t *it)
{
    return it->n;
}

void qr_agreement_items_rewind(qr_agreement_items_t *it)
{
    it->pos = 0;
}

void qr_agreement_items_free(qr_agreement_items_t *it)
{
    if (!it)
        return;
    free(it->order);
    free(it->agr);
    free(it->major);
    free(it->top);
    free(it);
}

/* Moves the per-item results out of s into a new iterator. */
qr_agreement_items_t *qr_agr_items_new(an_t *s)
{
    qr_agreement_items_t *it = qr_xcalloc(1, sizeof(*it));

    it->a = s->a;
    it->n = s->ni;
    it->order = qr_xmalloc((size_t)s->ni * sizeof(uint32_t) + 1);
    qr_agr_sort_ids(&s->a->items, NULL, it->order);
    it->agr = s->item_agr;
    it->major = s->item_major;
    it->top = s->item_top;
    s->item_agr = NULL;
    s->item_major = NULL;
    s->item_top = NULL;
    return it;
}

void qr_agr_analyse(an_t *s, const qr_agreement_t *a, int per_item)
{
    memset(s, 0, sizeof(*s));
    s->a = a;
    s->ni = a->items.n;
    s->na = a->annotators.n;
    s->nl = a->labels.n;
    s->n = a->n;
    layout(s);
    item_pass(s, per_item);
    davies_fleiss(s);
    two_annotators(s);
}
