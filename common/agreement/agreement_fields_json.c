/*
 * agreement_fields_json.c - the JSON report of a set of fields
 * (agreement_fields.h, qr_fields_json): per field its type, counts, metrics
 * under the contract's names, per-annotator and per-item breakdowns; before
 * "fields", the issue-4 top-level keys of the first choice or rating field.
 * The per-item entries come from one iterator (qr_fields_items_t), which
 * builds the lists here and lets a caller that writes them itself get the
 * report without them (qr_fields_report).
 * Also qr_fields_adopt_agreement(), which turns a CSV read by the issue-4
 * reader into the one field "label".
 */
#include "agreement_fields_internal.h"

#include <stdlib.h>
#include <string.h>

#include "agreement_internal.h"
#include "util.h"

static json_t *fig_json(const qr_fig_t *f)
{
    static const char *const names[] = {"defined", "undefined", "not_applicable"};
    if (f->status == QR_FIG_DEFINED)
        return json_pack("{s:f, s:s}", "value", f->value, "status", names[0]);
    return json_pack("{s:n, s:s, s:s}", "value", "status", names[f->status], "reason", f->reason);
}

static json_t *name_json(const qr_fmap_t *m, uint32_t id)
{
    return json_stringn_nocheck(qr_fmap_str(m, id), qr_fmap_len(m, id));
}

static json_t *counts_json(size_t items, size_t anns, size_t judgements, size_t pairable)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "items", (json_int_t)items, "annotators",
                     (json_int_t)anns, "judgements", (json_int_t)judgements, "pairable_items",
                     (json_int_t)pairable);
}

/* The metrics of a non-choice field from its analysis. */
static json_t *metrics_json(const qr_field_an_t *an)
{
    const qr_field_t *fd = an->fd;
    json_t *m = json_object();

    switch (fd->type) {
    case QR_FIELD_MULTI_CHOICE: {
        json_object_set_new(m, "krippendorff_alpha_masi", fig_json(&an->fig[0]));
        json_object_set_new(m, "krippendorff_alpha_jaccard", fig_json(&an->fig[1]));
        json_t *pc = json_object();
        uint32_t *ids = qr_xmalloc((size_t)an->nchoice * sizeof(uint32_t) + 1);
        for (uint32_t c = 0; c < an->nchoice; c++)
            ids[c] = c;
        qr_field_choice_order(fd, ids, an->nchoice);
        for (uint32_t c = 0; c < an->nchoice; c++)
            json_object_set_new_nocheck(pc, qr_fmap_str(&fd->choices, ids[c]),
                                        fig_json(&an->per_choice[ids[c]]));
        free(ids);
        json_object_set_new(m, "per_choice_alpha", pc);
        break;
    }
    case QR_FIELD_SPANS:
        json_object_set_new(m, "span_f1_exact", fig_json(&an->fig[0]));
        json_object_set_new(m, "span_f1_overlap", fig_json(&an->fig[1]));
        json_object_set_new(m, "token_alpha_nominal", fig_json(&an->fig[2]));
        break;
    case QR_FIELD_BOXES:
        json_object_set_new(m, "box_f1", fig_json(&an->fig[0]));
        json_object_set_new(m, "box_mean_iou", fig_json(&an->fig[1]));
        break;
    case QR_FIELD_TEXT:
        json_object_set_new(m, "text_exact_agreement", fig_json(&an->fig[0]));
        json_object_set_new(m, "text_mean_similarity", fig_json(&an->fig[1]));
        break;
    default:
        break;
    }
    return m;
}

static json_t *per_annotator_json(const qr_field_an_t *an)
{
    const qr_fields_t *fs = an->fs;
    json_t *arr = json_array();

    for (uint32_t r = 0; r < an->nann; r++) {
        qr_fig_t f;
        if (an->ann_pairs[r]) {
            f.status = QR_FIG_DEFINED;
            f.value = an->ann_score[r] / (double)an->ann_pairs[r];
        } else {
            f.status = QR_FIG_UNDEFINED;
            snprintf(f.reason, sizeof(f.reason), "shares no item with another annotator");
        }
        json_array_append_new(arr, json_pack("{s:o, s:I, s:o}", "annotator",
                                             name_json(&fs->anns, an->anns[r]), "judgements",
                                             (json_int_t)an->ann_j[r], "pair_score", fig_json(&f)));
    }
    return arr;
}

/* One field's analysis, kept for its per-item entries; or the issue-4
 * iterator of the store the field would adopt. */
struct qr_fields_items_s {
    qr_field_an_t an;
    uint32_t pos;              /* next listed item */
    qr_agreement_items_t *agr; /* not owned; when set, an is unused */
};

/* Field f analysed; sorted: items in byte order, as the listings need. */
static qr_fields_items_t *items_analyse(qr_fields_t *fs, int f, int sorted)
{
    qr_fields_items_t *it = qr_xcalloc(1, sizeof(*it));
    qr_field_analyse(&it->an, fs, fs->f[f], sorted);
    return it;
}

qr_fields_items_t *qr_fields_items_new(qr_fields_t *fs, int f)
{
    return items_analyse(fs, f, 1);
}

qr_fields_items_t *qr_fields_items_of_agreement(qr_agreement_items_t *items)
{
    qr_fields_items_t *it = qr_xcalloc(1, sizeof(*it));
    it->agr = items;
    return it;
}

/* The next entry of it->agr. A choice field's consensus is the unique
 * plurality (agreement_consensus.c) and its support top / k, and its
 * agreement the share of agreeing pairs: what issue 4 computes per item,
 * to the bit (both are ratios of the same integers). */
static int agreement_next(qr_fields_items_t *it, qr_fields_item_t *e)
{
    qr_agreement_item_t a;

    if (!qr_agreement_items_next(it->agr, &a))
        return 0;
    e->item = a.item;
    e->item_len = a.item_len;
    e->judgements = a.judgements;
    e->has_agreement = a.has_agreement;
    e->agreement = a.agreement;
    e->consensus = a.majority ? json_stringn_nocheck(a.majority, a.majority_len) : json_null();
    e->support = a.majority ? (double)a.majority_count / (double)a.judgements : 0;
    return 1;
}

int qr_fields_items_next(qr_fields_items_t *it, qr_fields_item_t *e)
{
    const qr_field_an_t *an = &it->an;

    if (it->agr)
        return agreement_next(it, e);
    if (it->pos >= an->ni)
        return 0;
    uint32_t i = it->pos++, b = an->istart[i], k = an->istart[i + 1] - b;
    e->item = qr_fmap_str(&an->fs->items, an->items[i]);
    e->item_len = qr_fmap_len(&an->fs->items, an->items[i]);
    e->judgements = k;
    e->has_agreement = an->item_agr[i] >= 0;
    e->agreement = e->has_agreement ? an->item_agr[i] : 0;
    e->consensus = qr_field_consensus_of(an->fs, an->fd, an->jpos + b, k, &e->support);
    if (json_is_null(e->consensus))
        e->support = 0;
    return 1;
}

void qr_fields_items_free(qr_fields_items_t *it)
{
    if (!it)
        return;
    qr_field_analysis_free(&it->an);
    free(it);
}

/* The entries of it not yet read, as a "per_item" list. */
static json_t *per_item_json(qr_fields_items_t *it)
{
    json_t *arr = json_array();
    qr_fields_item_t e;

    while (qr_fields_items_next(it, &e)) {
        json_t *o = json_object();
        json_object_set_new(o, "item", json_stringn_nocheck(e.item, e.item_len));
        json_object_set_new(o, "judgements", json_integer((json_int_t)e.judgements));
        json_object_set_new(o, "agreement", e.has_agreement ? json_real(e.agreement) : json_null());
        json_object_set_new(o, "consensus", e.consensus);
        json_object_set_new(o, "support",
                            json_is_null(e.consensus) ? json_null() : json_real(e.support));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* Field f's entry; for choice and rating, report is its issue-4 report.
 * With per_item and items, "per_item" is null and its entries go to *items
 * (the iterator that holds the analysis); without items, they are listed. */
static json_t *field_json(qr_fields_t *fs, int f, int per_item, const json_t *report,
                          qr_fields_items_t **items)
{
    const qr_field_t *fd = fs->f[f];
    qr_fields_items_t *it = items_analyse(fs, f, per_item);
    const qr_field_an_t *an = &it->an;
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(qr_field_type_name(fd->type)));
    json_object_set_new(o, "counts", counts_json(an->ni, an->nann, fd->n, an->pairable));
    if (report && fd->agr) {
        json_object_set(o, "metrics", json_object_get(report, "metrics"));
        json_object_set(o, "per_annotator", json_object_get(report, "per_annotator"));
    } else {
        json_object_set_new(o, "metrics", metrics_json(an));
        json_object_set_new(o, "per_annotator", per_annotator_json(an));
    }
    if (per_item && items) {
        json_object_set_new(o, "per_item", json_null());
        *items = it;
        return o;
    }
    if (per_item)
        json_object_set_new(o, "per_item", per_item_json(it));
    qr_fields_items_free(it);
    return o;
}

/* qr_fields_field_json() and qr_fields_field_report(). */
static json_t *field_entry(qr_fields_t *fs, int f, int per_item, const json_t *report,
                           qr_fields_items_t **items)
{
    const qr_field_t *fd = fs->f[f];
    json_t *own = fd->agr && !report ? qr_agreement_json(fd->agr, 0) : NULL;
    json_t *o = field_json(fs, f, per_item, own ? own : report, items);
    json_decref(own);
    return o;
}

json_t *qr_fields_field_json(qr_fields_t *fs, int f, int per_item, const json_t *report)
{
    return field_entry(fs, f, per_item, report, NULL);
}

json_t *qr_fields_field_report(qr_fields_t *fs, int f, const json_t *report,
                               qr_fields_items_t **items)
{
    return field_entry(fs, f, 1, report, items);
}

/* qr_fields_json() and, with top and field_items, qr_fields_report(). */
static json_t *fields_json(qr_fields_t *fs, int per_item, qr_agreement_items_t **top,
                           qr_fields_items_t **field_items)
{
    json_t *root = NULL, *fields = json_object(), *first = NULL;
    int first_f = -1;

    for (int f = 0; f < fs->nf; f++) {
        if (fs->f[f]->agr) {
            first_f = f;
            break;
        }
    }
    if (top)
        *top = NULL;
    if (first_f >= 0 && top) {
        root = qr_agreement_report(fs->f[first_f]->agr, top);
        json_object_set_new(root, "per_item", json_null()); /* where qr_agreement_json puts it */
        first = root;
    } else if (first_f >= 0) {
        root = qr_agreement_json(fs->f[first_f]->agr, per_item);
        first = root;
    } else {
        /* Counts over all fields. */
        uint32_t *item_n = qr_xcalloc((size_t)fs->items.n + 1, sizeof(uint32_t));
        unsigned char *ann_seen = qr_xcalloc((size_t)fs->anns.n + 1, 1);
        unsigned char *pairable = qr_xcalloc((size_t)fs->items.n + 1, 1);
        size_t items = 0, anns = 0, judgements = 0, npair = 0;
        for (int f = 0; f < fs->nf; f++) {
            const qr_field_t *fd = fs->f[f];
            memset(item_n, 0, (size_t)fs->items.n * sizeof(uint32_t));
            for (size_t j = 0; j < fd->n; j++) {
                uint32_t it = fd->j[j].item;
                if (++item_n[it] == 2 && !(pairable[it] & 1)) {
                    pairable[it] |= 1;
                    npair++;
                }
                if (!ann_seen[fd->j[j].ann]) {
                    ann_seen[fd->j[j].ann] = 1;
                    anns++;
                }
                if (!(pairable[it] & 2)) {
                    pairable[it] |= 2;
                    items++;
                }
            }
            judgements += fd->n;
        }
        free(item_n);
        free(ann_seen);
        free(pairable);
        root = json_object();
        json_object_set_new(root, "counts", counts_json(items, anns, judgements, npair));
    }
    for (int f = 0; f < fs->nf; f++) {
        json_t *report = NULL;
        if (fs->f[f]->agr)
            report = f == first_f ? json_incref(first) : qr_agreement_json(fs->f[f]->agr, 0);
        json_object_set_new_nocheck(
            fields, fs->f[f]->name,
            field_json(fs, f, per_item, report, field_items ? &field_items[f] : NULL));
        json_decref(report);
    }
    json_object_set_new(root, "fields", fields);
    return root;
}

json_t *qr_fields_json(qr_fields_t *fs, int per_item)
{
    return fields_json(fs, per_item, NULL, NULL);
}

json_t *qr_fields_report(qr_fields_t *fs, qr_agreement_items_t **top, qr_fields_items_t **items)
{
    return fields_json(fs, 1, top, items);
}

int qr_fields_adopt_agreement(qr_fields_t *fs, const char *name, size_t len, qr_agreement_t *a)
{
    int f = qr_fields_declare(fs, name, len, QR_FIELD_CHOICE);
    if (f < 0)
        return f;
    qr_field_t *fd = fs->f[f];
    if (fd->n > 0)
        return QR_ECONFLCT;
    qr_agreement_free(fd->agr);
    fd->agr = a;
    /* Label ids of a are value ids here: intern them in a's order. */
    for (uint32_t l = 0; l < a->labels.n; l++) {
        uint32_t id;
        int added;
        qr_fmap_intern(&fd->vals, qr_strtab_str(&a->labels, l), qr_strtab_len(&a->labels, l), &id,
                       &added);
    }
    uint32_t *item_id = qr_xmalloc((size_t)a->items.n * sizeof(uint32_t) + 1);
    uint32_t *ann_id = qr_xmalloc((size_t)a->annotators.n * sizeof(uint32_t) + 1);
    int added;
    for (uint32_t i = 0; i < a->items.n; i++)
        qr_fmap_intern(&fs->items, qr_strtab_str(&a->items, i), qr_strtab_len(&a->items, i),
                       &item_id[i], &added);
    for (uint32_t i = 0; i < a->annotators.n; i++)
        qr_fmap_intern(&fs->anns, qr_strtab_str(&a->annotators, i),
                       qr_strtab_len(&a->annotators, i), &ann_id[i], &added);
    /* The store keeps item ids per judgement only once items came out of
     * order; while grouped, item i's judgements are [item_end[i],
     * item_end[i + 1]). Annotator and label ids may be packed. */
    uint32_t it = 0;
    for (size_t j = 0; j < a->n; j++) {
        if (a->grouped) {
            while (j >= a->item_end[it + 1])
                it++;
        } else {
            it = a->j_item[j];
        }
        qr_field_push(fd, item_id[it], ann_id[qr_agr_ann_of(a, j)], qr_agr_label_of(a, j));
    }
    free(item_id);
    free(ann_id);
    return f;
}
