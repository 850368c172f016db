/*
 * agreement_consensus.c - the consensus of one item's values of one field
 * (issue 15), with the share of annotators that back it: for the per-item
 * breakdown of the report and, through qr_field_consensus(), for the
 * broker's consensus export and review. Rules per type in
 * agreement_fields.h; spans and boxes go through agreement_geom.c.
 */
#include "agreement_fields_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A number as JSON: an integer when it is one (and exact in a double). */
static json_t *number_json(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *name_json(const qr_fmap_t *m, uint32_t id)
{
    return json_stringn_nocheck(qr_fmap_str(m, id), qr_fmap_len(m, id));
}

static int cmp_double(const void *p, const void *q)
{
    double x = *(const double *)p, y = *(const double *)q;
    return (x > y) - (x < y);
}

/* Choice ids in output order: schema ones first, then the others by name. */
static int cmp_choice(const void *p, const void *q, void *arg)
{
    const qr_field_t *fd = arg;
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    int sx = x < fd->schema_choices, sy = y < fd->schema_choices;
    if (sx || sy)
        return sx && sy ? (x > y) - (x < y) : sy - sx;
    return qr_fmap_cmp_ids(p, q, (void *)&fd->choices);
}

void qr_field_choice_order(const qr_field_t *fd, uint32_t *ids, size_t n)
{
    qsort_r(ids, n, sizeof(uint32_t), cmp_choice, (void *)fd);
}

static json_t *spans_json(const qr_field_t *fd, const qr_span_t *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:I, s:I, s:o}", "start", (json_int_t)s[i].start,
                                           "end", (json_int_t)s[i].end, "label",
                                           name_json(&fd->choices, s[i].label)));
    return a;
}

static json_t *boxes_json(const qr_field_t *fd, const qr_box_t *b, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:o, s:o, s:o, s:o, s:o}", "x", number_json(b[i].x),
                                           "y", number_json(b[i].y), "width", number_json(b[i].w),
                                           "height", number_json(b[i].h), "label",
                                           name_json(&fd->choices, b[i].label)));
    return a;
}

/* The value with the unique largest count among js[0..k) (by value id, or
 * by normalized text when norm), or -1 on a tie; *top = its count. */
static long plurality(const qr_field_t *fd, const uint32_t *js, size_t k, int norm, size_t *top)
{
    uint32_t *keys = qr_xmalloc(k * sizeof(uint32_t) + 1);
    size_t best = 0, second = 0;
    long winner = -1;

    for (size_t i = 0; i < k; i++) {
        uint32_t v = fd->j[js[i]].val;
        keys[i] = norm ? fd->v_off[v] : v;
    }
    for (size_t i = 0; i < k; i++) {
        size_t c = 0;
        int seen = 0;
        for (size_t q = 0; q < i && !seen; q++)
            seen = keys[q] == keys[i];
        if (seen)
            continue;
        for (size_t q = i; q < k; q++)
            c += keys[q] == keys[i];
        if (c > best) {
            second = best;
            best = c;
            winner = (long)i;
        } else if (c > second) {
            second = c;
        }
    }
    free(keys);
    *top = best;
    return best > second ? winner : -1;
}

json_t *qr_field_consensus_of(const qr_fields_t *fs, const qr_field_t *fd, const uint32_t *js,
                              size_t k, double *support)
{
    *support = 0;
    if (k == 0)
        return json_null();
    switch (fd->type) {
    case QR_FIELD_CHOICE:
    case QR_FIELD_TEXT: {
        size_t top;
        long w = plurality(fd, js, k, fd->type == QR_FIELD_TEXT, &top);
        if (w < 0)
            return json_null();
        *support = (double)top / k;
        return name_json(&fd->vals, fd->j[js[w]].val);
    }
    case QR_FIELD_RATING: {
        double *v = qr_xmalloc(k * sizeof(double));
        int integers = 1;
        for (size_t i = 0; i < k; i++) {
            v[i] = fd->v_num[fd->j[js[i]].val];
            integers &= v[i] == floor(v[i]);
        }
        qsort(v, k, sizeof(double), cmp_double);
        double med = v[(k - 1) / 2];
        if (k % 2 == 0) {
            double mean = (v[k / 2 - 1] + v[k / 2]) / 2;
            int on_grid;
            if (fd->has_scale) {
                double g = (mean - fd->scale_min) / fd->scale_step;
                on_grid = fabs(g - nearbyint(g)) <= 1e-9;
            } else {
                on_grid = integers && mean == floor(mean);
            }
            if (on_grid)
                med = mean;
        }
        size_t same = 0;
        for (size_t i = 0; i < k; i++)
            same += v[i] == med;
        free(v);
        *support = (double)same / k;
        return number_json(med);
    }
    case QR_FIELD_MULTI_CHOICE: {
        uint32_t nc = fd->choices.n, *cnt = qr_xcalloc((size_t)nc + 1, sizeof(uint32_t));
        uint32_t *chosen = qr_xmalloc((size_t)nc * sizeof(uint32_t) + 1), n = 0;
        size_t empty = 0;
        for (size_t i = 0; i < k; i++) {
            uint32_t v = fd->j[js[i]].val;
            empty += fd->v_cnt[v] == 0;
            for (uint32_t q = 0; q < fd->v_cnt[v]; q++)
                cnt[fd->set_ids[fd->v_off[v] + q]]++;
        }
        size_t least = k;
        for (uint32_t c = 0; c < nc; c++) {
            if (2 * (size_t)cnt[c] > k) {
                chosen[n++] = c;
                least = cnt[c] < least ? cnt[c] : least;
            }
        }
        qr_field_choice_order(fd, chosen, n);
        json_t *a = json_array();
        for (uint32_t i = 0; i < n; i++)
            json_array_append_new(a, name_json(&fd->choices, chosen[i]));
        *support = (double)(n ? least : empty) / k;
        free(cnt);
        free(chosen);
        return a;
    }
    case QR_FIELD_SPANS:
    case QR_FIELD_BOXES: {
        const void **lists = qr_xmalloc(k * sizeof(void *));
        size_t *counts = qr_xmalloc(k * sizeof(size_t)), total = 0, empty = 0;
        for (size_t i = 0; i < k; i++) {
            uint32_t v = fd->j[js[i]].val;
            counts[i] = fd->v_cnt[v];
            total += counts[i];
            empty += counts[i] == 0;
            lists[i] = fd->type == QR_FIELD_SPANS ? (const void *)qr_field_spans(fd, v)
                                                  : (const void *)qr_field_boxes(fd, v);
        }
        size_t *sup = qr_xmalloc((total + 1) * sizeof(size_t)), n;
        json_t *out;
        if (fd->type == QR_FIELD_SPANS) {
            qr_span_t *o = qr_xmalloc((total + 1) * sizeof(qr_span_t));
            n = qr_spans_consensus((const qr_span_t *const *)lists, counts, k, o, sup, total);
            out = spans_json(fd, o, n);
            free(o);
        } else {
            qr_box_t *o = qr_xmalloc((total + 1) * sizeof(qr_box_t));
            n = qr_boxes_consensus((const qr_box_t *const *)lists, counts, k, fs->iou, o, sup,
                                   total);
            out = boxes_json(fd, o, n);
            free(o);
        }
        size_t least = k;
        for (size_t i = 0; i < n; i++)
            least = sup[i] < least ? sup[i] : least;
        *support = (double)(n ? least : empty) / k;
        free(sup);
        free(lists);
        free(counts);
        return out;
    }
    }
    return json_null();
}

int qr_field_consensus(qr_field_type_t type, const qr_consensus_opts_t *opts, json_t *const *values,
                       size_t n, json_t **out, double *support, char *err, size_t errlen)
{
    qr_fields_t *fs = qr_fields_new();
    int f = qr_fields_declare(fs, "value", 5, type), rc = 0;
    char ann[24], why[200];

    *out = NULL;
    *support = 0;
    if (errlen)
        err[0] = '\0';
    if (f < 0) {
        snprintf(err, errlen, "unknown field type");
        rc = QR_EINVAL;
        goto done;
    }
    if (opts) {
        if (opts->iou_threshold > 0)
            qr_fields_set_iou_threshold(fs, opts->iou_threshold);
        if (opts->has_grid && qr_fields_set_scale(fs, f, opts->grid_min, opts->grid_step) < 0) {
            snprintf(err, errlen, "bad rating grid");
            rc = QR_EINVAL;
            goto done;
        }
        if (opts->nchoices &&
            qr_fields_set_choices(fs, f, opts->choices, opts->choice_lens, opts->nchoices) < 0) {
            snprintf(err, errlen, "bad choices");
            rc = QR_EINVAL;
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(ann, sizeof(ann), "%zu", i);
        rc = qr_fields_add_json(fs, f, "item", 4, ann, (size_t)len, values[i], why, sizeof(why));
        if (rc < 0) {
            snprintf(err, errlen, "value %zu: %s", i, why);
            goto done;
        }
    }
    uint32_t *js = qr_xmalloc(n * sizeof(uint32_t) + 1);
    for (size_t i = 0; i < n; i++)
        js[i] = (uint32_t)i;
    *out = qr_field_consensus_of(fs, fs->f[f], js, n, support);
    free(js);
done:
    qr_fields_free(fs);
    return rc;
}
