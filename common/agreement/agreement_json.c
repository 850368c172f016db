/*
 * agreement_json.c - the JSON form of an agreement report (agreement.h,
 * qr_agreement_report and qr_agreement_json): counts, every coefficient
 * with its status, the pairwise and per-annotator breakdowns, the label
 * distribution and, on request, one entry per item. The numbers come from
 * the analysis in agreement_stats.c; nothing here computes a coefficient
 * apart from each pair's kappa, which is read off its counts.
 */
#include <stdint.h>

#include "agreement_stats_internal.h"

static const char *const metric_names[M_COUNT] = {
    "percent_agreement",
    "cohen_kappa",
    "cohen_kappa_linear",
    "cohen_kappa_quadratic",
    "scott_pi",
    "fleiss_kappa",
    "davies_fleiss_kappa",
    "krippendorff_alpha_nominal",
    "krippendorff_alpha_ordinal",
    "krippendorff_alpha_interval",
    "krippendorff_alpha_ratio",
    "gwet_ac1",
};

static json_t *coef_json(const coef_t *c)
{
    static const char *const names[] = {"defined", "undefined", "not_applicable"};

    if (c->status == ST_DEFINED)
        return json_pack("{s:f, s:s}", "value", c->value, "status", names[0]);
    return json_pack("{s:n, s:s, s:s}", "value", "status", names[c->status], "reason", c->reason);
}

static json_t *str_json(const qr_strtab_t *t, uint32_t id)
{
    return json_stringn_nocheck(qr_strtab_str(t, id), qr_strtab_len(t, id)); /* validated on add */
}

static json_t *build_json(const an_t *s)
{
    const qr_agreement_t *a = s->a;
    json_t *root = json_object(), *metrics = json_object(), *arr, *labels = json_object();

    json_object_set_new(root, "counts",
                        json_pack("{s:I, s:I, s:I, s:I}", "items", (json_int_t)s->ni, "annotators",
                                  (json_int_t)s->na, "judgements", (json_int_t)s->n,
                                  "pairable_items", (json_int_t)s->pairable));
    for (int m = 0; m < M_COUNT; m++)
        json_object_set_new(metrics, metric_names[m], coef_json(&s->m[m]));
    json_object_set_new(root, "metrics", metrics);

    arr = json_array();
    for (size_t i = 0; i < s->npairs; i++) {
        const pair_t *p = &s->pairs[i];
        coef_t k;
        qr_agr_kappa_counts(&k, p->items, p->agree, p->sum_prod);
        json_t *o = json_object();
        json_object_set_new(o, "a", str_json(&a->annotators, s->ann_by_rank[p->a]));
        json_object_set_new(o, "b", str_json(&a->annotators, s->ann_by_rank[p->b]));
        json_object_set_new(o, "items", json_integer((json_int_t)p->items));
        json_object_set_new(o, "agree", json_integer((json_int_t)p->agree));
        json_object_set_new(o, "percent_agreement", json_real((double)p->agree / p->items));
        json_object_set_new(o, "cohen_kappa", coef_json(&k));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "pairwise", arr);

    arr = json_array();
    for (uint32_t r = 0; r < s->na; r++) {
        json_t *o = json_object(), *maj;
        uint64_t agree = s->maj_agree[r], compared = s->maj_compared[r];
        json_object_set_new(o, "annotator", str_json(&a->annotators, s->ann_by_rank[r]));
        json_object_set_new(o, "judgements", json_integer(s->astart[r + 1] - s->astart[r]));
        if (compared)
            maj = json_pack("{s:f, s:s}", "value", (double)agree / compared, "status", "defined");
        else
            maj = json_pack("{s:n, s:s, s:s}", "value", "status", "undefined", "reason",
                            "no item with a unique majority among the other annotators");
        json_object_set_new(maj, "agree", json_integer((json_int_t)agree));
        json_object_set_new(maj, "compared", json_integer((json_int_t)compared));
        json_object_set_new(o, "majority_agreement", maj);
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "per_annotator", arr);

    for (uint32_t i = 0; i < s->nl; i++) {
        uint32_t l = s->lab_order[i];
        json_object_set_new_nocheck(labels, qr_strtab_str(&a->labels, l),
                                    json_integer((json_int_t)s->label_count[l]));
    }
    json_object_set_new(root, "labels", labels);
    json_object_set_new(root, "labels_numeric", json_boolean(s->numeric));

    return root;
}

json_t *qr_agreement_report(qr_agreement_t *a, qr_agreement_items_t **items)
{
    an_t s;

    qr_agr_analyse(&s, a, items != NULL);
    qr_agr_pair_table(&s);
    json_t *j = build_json(&s);
    if (items)
        *items = qr_agr_items_new(&s);
    qr_agr_analysis_free(&s);
    return j;
}

json_t *qr_agreement_json(qr_agreement_t *a, int per_item)
{
    qr_agreement_items_t *it = NULL;
    json_t *root = qr_agreement_report(a, per_item ? &it : NULL);
    qr_agreement_item_t e;

    if (it) {
        json_t *arr = json_array();
        while (qr_agreement_items_next(it, &e)) {
            json_t *o = json_object();
            json_object_set_new(o, "item", json_stringn_nocheck(e.item, e.item_len));
            json_object_set_new(o, "judgements", json_integer((json_int_t)e.judgements));
            json_object_set_new(o, "agreement",
                                e.has_agreement ? json_real(e.agreement) : json_null());
            json_object_set_new(o, "majority_label",
                                e.majority ? json_stringn_nocheck(e.majority, e.majority_len)
                                           : json_null());
            json_array_append_new(arr, o);
        }
        json_object_set_new(root, "per_item", arr);
        qr_agreement_items_free(it);
    }
    return root;
}
