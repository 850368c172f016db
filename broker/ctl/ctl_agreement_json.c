/*
 * ctl_agreement_json.c - `quorumctl agreement --json`: the report of a CSV
 * or of JSONL fields with each "per_item" list written one entry at a time
 * (issue 15). As jansson objects, 200,000 entries cost more memory and time
 * than the whole analysis; here the report is built without them, with a
 * slot of ctl_jsonw.h where each list goes, and the entries are written
 * from the iterators of agreement.h and agreement_fields.h. The output is
 * byte for byte what json_dumpf(JSON_INDENT(2)) prints for the whole tree.
 */
#include "ctl_agreement_json.h"

#include <stdlib.h>

#include "ctl_agreement_ds.h"
#include "ctl_jsonw.h"
#include "util.h"

/* The lists of a report, by slot number: one iterator set in each. */
typedef struct {
    struct {
        qr_agreement_items_t *top; /* the top-level list (issue 4's entries) */
        qr_fields_items_t *field;  /* a field's list */
    } list[QR_FIELDS_MAX + 1];
    int n;
    qr_ctl_ds_t *ds; /* a CSV's Dawid-Skene run: its keys end each top-level entry */
} lists_t;

/* A slot for a list, to put in the report where the list goes. */
static json_t *slot(qr_jsonw_t *w, lists_t *ls, qr_agreement_items_t *top, qr_fields_items_t *field)
{
    ls->list[ls->n].top = top;
    ls->list[ls->n].field = field;
    ls->n++;
    return qr_jsonw_slot(w); /* numbered as ls->list */
}

/* The key of an entry's member after the first. The list's key is indent
 * spaces in, so its entries are indent + 2 and their members indent + 4. */
static void member(qr_jsonw_t *w, int indent, const char *key)
{
    qr_jsonw_put(w, ",", 1);
    qr_jsonw_newline(w, indent + 4);
    qr_jsonw_puts(w, key);
}

/* The next entry of list k into *e; for the top-level list, with no
 * consensus but the majority label in *top. 1, or 0 past the last one. */
static int next_entry(lists_t *ls, int k, qr_fields_item_t *e, qr_agreement_item_t *top)
{
    if (!ls->list[k].top)
        return qr_fields_items_next(ls->list[k].field, e);
    if (!qr_agreement_items_next(ls->list[k].top, top))
        return 0;
    e->item = top->item;
    e->item_len = top->item_len;
    e->judgements = top->judgements;
    e->has_agreement = top->has_agreement;
    e->agreement = top->agreement;
    e->consensus = NULL;
    return 1;
}

/* Writes list k, whose key is indent spaces in: entries {"item",
 * "judgements", "agreement", then "majority_label" (the top-level list, and
 * Dawid-Skene's "consensus" and "support" with ls->ds) or "consensus" and
 * "support" (a field's)}. */
static int fill(qr_jsonw_t *w, int k, int indent, void *data)
{
    lists_t *ls = data;
    qr_fields_item_t e;
    qr_agreement_item_t top;
    char num[32];
    const char *d;
    size_t n, dn;

    if (ls->list[k].top)
        qr_agreement_items_rewind(ls->list[k].top); /* a CSV's field read it first */
    qr_jsonw_put(w, "[", 1);
    for (n = 0; next_entry(ls, k, &e, &top); n++) {
        if (n > 0)
            qr_jsonw_put(w, ",", 1);
        qr_jsonw_newline(w, indent + 2);
        qr_jsonw_put(w, "{", 1);
        qr_jsonw_newline(w, indent + 4);
        qr_jsonw_puts(w, "\"item\": ");
        qr_jsonw_string(w, e.item, e.item_len);
        member(w, indent, "\"judgements\": ");
        snprintf(num, sizeof(num), "%zu", e.judgements);
        qr_jsonw_puts(w, num);
        member(w, indent, "\"agreement\": ");
        if (e.has_agreement)
            qr_jsonw_real(w, e.agreement);
        else
            qr_jsonw_puts(w, "null");
        if (ls->list[k].top) {
            member(w, indent, "\"majority_label\": ");
            if (top.majority)
                qr_jsonw_string(w, top.majority, top.majority_len);
            else
                qr_jsonw_puts(w, "null");
            if (ls->ds) {
                if (!(d = qr_ctl_agreement_ds_item_json(ls->ds, n, &dn)))
                    return QR_EIO;
                qr_jsonw_put(w, d, dn);
            }
        } else {
            member(w, indent, "\"consensus\": ");
            qr_jsonw_value(w, e.consensus, indent + 4);
            member(w, indent, "\"support\": ");
            if (json_is_null(e.consensus))
                qr_jsonw_puts(w, "null");
            else
                qr_jsonw_real(w, e.support);
            json_decref(e.consensus);
        }
        qr_jsonw_newline(w, indent + 2);
        qr_jsonw_put(w, "}", 1);
    }
    if (n > 0)
        qr_jsonw_newline(w, indent);
    qr_jsonw_put(w, "]", 1);
    return 0;
}

int qr_ctl_agreement_json_csv(FILE *out, json_t *report, qr_agreement_items_t *items,
                              qr_ctl_ds_t *ds)
{
    json_t *fields = json_object(), *label = json_object();
    qr_fields_items_t *label_items = NULL;
    qr_jsonw_t *w = NULL;
    lists_t ls = {.n = 0, .ds = ds};
    int rc, wrc;

    /* The one field, label: what qr_fields_field_json() gives for the
     * field qr_fields_adopt_agreement() makes of the store, without a copy
     * of its judgements (its counts are the report's). */
    json_object_set_new(label, "type", json_string("choice"));
    json_object_set(label, "counts", json_object_get(report, "counts"));
    json_object_set(label, "metrics", json_object_get(report, "metrics"));
    json_object_set(label, "per_annotator", json_object_get(report, "per_annotator"));
    json_object_set_new(fields, "label", label);
    json_object_set_new(report, "fields", fields);
    if (ds)
        qr_ctl_agreement_ds_json(ds, report);
    if (!items)
        return json_dumpf(report, out, JSON_INDENT(2)) == 0 ? 0 : QR_EIO;

    if (!(w = qr_jsonw_new(out)))
        return QR_EIO;
    /* The field's list, then the top-level one after "fields"; both read
     * items (the second from its start again). */
    label_items = qr_fields_items_of_agreement(items);
    json_object_set_new(label, "per_item", slot(w, &ls, NULL, label_items));
    json_object_set_new(report, "per_item", slot(w, &ls, items, NULL));
    rc = qr_jsonw_dump(w, report, fill, &ls);
    if ((wrc = qr_jsonw_free(w)) < 0 && rc == 0)
        rc = wrc;
    qr_fields_items_free(label_items);
    return rc;
}

int qr_ctl_agreement_json_fields(FILE *out, qr_fields_t *fs, int per_item)
{
    qr_agreement_items_t *top = NULL;
    qr_fields_items_t *items[QR_FIELDS_MAX] = {NULL};
    json_t *report, *fields;
    qr_jsonw_t *w = NULL;
    lists_t ls = {.n = 0};
    int nf = (int)qr_fields_count(fs), rc, wrc;

    if (!per_item) {
        report = qr_fields_json(fs, 0);
        rc = json_dumpf(report, out, JSON_INDENT(2)) == 0 ? 0 : QR_EIO;
        json_decref(report);
        return rc;
    }
    report = qr_fields_report(fs, &top, items);
    if (!(w = qr_jsonw_new(out))) {
        rc = QR_EIO;
        goto fail;
    }
    /* Each "per_item" is null in its place: a slot goes there. */
    if (top)
        json_object_set_new(report, "per_item", slot(w, &ls, top, NULL));
    fields = json_object_get(report, "fields");
    for (int f = 0; f < nf; f++)
        json_object_set_new(json_object_get(fields, qr_fields_name(fs, f)), "per_item",
                            slot(w, &ls, NULL, items[f]));
    rc = qr_jsonw_dump(w, report, fill, &ls);
fail:
    if ((wrc = qr_jsonw_free(w)) < 0 && rc == 0)
        rc = wrc;
    for (int f = 0; f < nf; f++)
        qr_fields_items_free(items[f]);
    qr_agreement_items_free(top);
    json_decref(report);
    return rc;
}
