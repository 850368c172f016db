/*
 * ctl_agreement_ds.c - the Dawid-Skene part of `quorumctl agreement
 * FILE.csv --method dawid_skene` (issue 16 point 7): runs the consensus
 * (common/agreement/agreement_ds.c) on the judgements the CSV reader
 * stored, and renders it: a "dawid_skene" key and two keys per item in the
 * JSON, a section in the text. ctl_agreement.c calls it at a few places
 * and renders everything else.
 */
#include "ctl_agreement_ds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agreement_ds.h"
#include "ctl_agreement.h"
#include "protocol.h"
#include "util.h"

struct qr_ctl_ds_s {
    qr_dawid_skene_t r; /* items, annotators and labels in the report's order */
    char **label;       /* per label: its name (NUL-terminated) */
    char **label_json;  /* per label: its name as a JSON string */
    char *buf;          /* the keys of one item (qr_ctl_agreement_ds_item_json) */
    size_t cap;         /* bytes allocated for buf */
};

int qr_ctl_agreement_ds_new(const qr_agreement_t *a, qr_ctl_ds_t **out)
{
    qr_ctl_ds_t *ds = qr_xcalloc(1, sizeof(*ds));
    char err[256];
    int rc = qr_dawid_skene_agreement(a, NULL, &ds->r, err, sizeof(err));

    if (rc != 0) {
        fprintf(stderr, "quorumctl agreement: %s\n", err);
        free(ds);
        return rc == -ENOMEM ? QR_EXIT_ERROR : QR_EXIT_USAGE;
    }
    const uint32_t K = ds->r.labels;
    const char **names = qr_xmalloc((K + 1) * sizeof(*names));
    size_t *lens = qr_xmalloc((K + 1) * sizeof(*lens));
    qr_dawid_skene_label_names(a, names, lens);
    ds->label = qr_xcalloc(K + 1, sizeof(*ds->label));
    ds->label_json = qr_xcalloc(K + 1, sizeof(*ds->label_json));
    for (uint32_t k = 0; k < K; k++) {
        json_t *s = json_stringn_nocheck(names[k], lens[k]);
        ds->label[k] = qr_xstrndup(names[k], lens[k]);
        ds->label_json[k] = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        json_decref(s);
        if (!ds->label_json[k]) {
            fprintf(stderr, "quorumctl agreement: out of memory\n");
            free(names);
            free(lens);
            qr_ctl_agreement_ds_free(ds);
            return QR_EXIT_ERROR;
        }
    }
    free(names);
    free(lens);
    *out = ds;
    return QR_EXIT_OK;
}

void qr_ctl_agreement_ds_free(qr_ctl_ds_t *ds)
{
    if (!ds)
        return;
    for (uint32_t k = 0; k < ds->r.labels; k++) {
        free(ds->label[k]);
        free(ds->label_json[k]);
    }
    free(ds->label);
    free(ds->label_json);
    free(ds->buf);
    qr_dawid_skene_free(&ds->r);
    free(ds);
}

/* The name of the annotator at position a of the report's "per_annotator". */
static const char *annotator_name(const json_t *report, uint32_t a)
{
    const json_t *e = json_array_get(json_object_get(report, "per_annotator"), a);
    return json_string_value(json_object_get(e, "annotator"));
}

void qr_ctl_agreement_ds_json(const qr_ctl_ds_t *ds, json_t *report)
{
    json_object_set_new(report, "dawid_skene",
                        qr_dawid_skene_json(&ds->r, (const char *const *)ds->label, report));
}

const char *qr_ctl_agreement_ds_item_json(qr_ctl_ds_t *ds, size_t pos, size_t *len)
{
    const qr_dawid_skene_t *r = &ds->r;
    const char *label = "null";
    char num[64] = "null";

    if (pos >= r->items)
        return NULL;
    if (r->label[pos] >= 0) {
        json_t *v = json_real(r->support[pos]);
        size_t m = v ? json_dumpb(v, num, sizeof(num) - 1, JSON_ENCODE_ANY) : 0;
        json_decref(v);
        if (m == 0 || m >= sizeof(num))
            return NULL;
        num[m] = '\0';
        label = ds->label_json[r->label[pos]];
    }
    size_t need = strlen(label) + strlen(num) + 64;
    if (need > ds->cap) {
        ds->buf = qr_xrealloc(ds->buf, need);
        ds->cap = need;
    }
    int n = snprintf(ds->buf, ds->cap, ",\n      \"consensus\": %s,\n      \"support\": %s", label,
                     num);
    if (n < 0 || (size_t)n >= ds->cap)
        return NULL;
    *len = (size_t)n;
    return ds->buf;
}

void qr_ctl_agreement_ds_text(FILE *out, const qr_ctl_ds_t *ds, const json_t *report,
                              qr_agreement_items_t *items)
{
    const qr_dawid_skene_t *r = &ds->r;
    int w = 9;

    fprintf(out, "\nDawid-Skene (EM over per-annotator confusion matrices, from the majority "
                 "vote)\n");
    if (r->converged)
        fprintf(out,
                "  %u iterations; converged: the last changed the log-likelihood by at most %g "
                "per judgement\n",
                r->iterations, r->tolerance);
    else
        fprintf(out,
                "  %u iterations; not converged: stopped at the cap before the log-likelihood "
                "changed by at most %g per judgement\n",
                r->iterations, r->tolerance);
    fprintf(out, "  log-likelihood %.4f\n  ", r->log_likelihood);
    for (uint32_t a = 0; a < r->annotators; a++) {
        int n = qr_ctl_agreement_name_width(annotator_name(report, a));
        w = n > w ? n : w;
    }
    w = w > 32 ? 32 : w;
    qr_ctl_agreement_put_name(out, "ANNOTATOR", w);
    fprintf(out, "  %10s  %18s\n", "judgements", "estimated_accuracy");
    for (uint32_t a = 0; a < r->annotators; a++) {
        fputs("  ", out);
        qr_ctl_agreement_put_name(out, annotator_name(report, a), w);
        fprintf(out, "  %10llu  %18.4f\n", (unsigned long long)r->judgements[a], r->accuracy[a]);
    }
    if (!items)
        return;

    qr_agreement_item_t e;
    w = 4;
    qr_agreement_items_rewind(items);
    while (qr_agreement_items_next(items, &e)) {
        int n = qr_ctl_agreement_name_width(e.item);
        w = n > w ? n : w;
    }
    w = w > 32 ? 32 : w;
    qr_agreement_items_rewind(items);
    fprintf(out, "\nDawid-Skene per item (consensus label and its posterior probability)\n  ");
    qr_ctl_agreement_put_name(out, "ITEM", w);
    fprintf(out, "  %9s  %s\n", "support", "consensus");
    for (size_t pos = 0; qr_agreement_items_next(items, &e) && pos < r->items; pos++) {
        fputs("  ", out);
        qr_ctl_agreement_put_name(out, e.item, w);
        if (r->label[pos] < 0) {
            fprintf(out, "  %9s  (none)\n", "-");
            continue;
        }
        fprintf(out, "  %9.4f  ", r->support[pos]);
        qr_ctl_agreement_put_name(out, ds->label[r->label[pos]], 0);
        fputc('\n', out);
    }
}
