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

/* Opens entry number n of a list and writes the members both kinds of entry
 * start with: item, judgements, agreement. */
static void entry_head(qr_jsonw_t *w, int indent, size_t n, const char *item, size_t item_len,
                       size_t judgements, int has_agreement, double agreement)
{
    char num[32];

    if (n > 0)
        qr_jsonw_put(w, ",", 1);
    qr_jsonw_newline(w, indent + 2);
    qr_jsonw_put(w, "{", 1);
    qr_jsonw_newline(w, indent + 4);
    qr_jsonw_puts(w, "\"item\": ");
    qr_jsonw_string(w, item, item_len);
    member(w, indent, "\"judgements\": ");
    snprintf(num, sizeof(num), "%zu", judgements);
    qr_jsonw_puts(w, num);
    member(w, indent, "\"agreement\": ");
    if (has_agreement)
        qr_jsonw_real(w, agreement);
    else
        qr_jsonw_puts(w, "null");
}

static void entry_end(qr_jsonw_t *w, int indent)
{
    qr_jsonw_newline(w, indent + 2);
    qr_jsonw_put(w, "}", 1);
}

static void list_end(qr_jsonw_t *w, int indent, size_t n)
{
    if (n > 0)
        qr_jsonw_newline(w, indent);
    qr_jsonw_put(w, "]", 1);
}

/* The top-level list: {"item", "judgements", "agreement", "majority_label"
 * [, Dawid-Skene's "consensus", "support"]}. */
static int write_top(qr_jsonw_t *w, qr_agreement_items_t *it, int indent, qr_ctl_ds_t *ds)
{
    qr_agreement_item_t e;
    const char *d;
    size_t n = 0, dn;

    qr_jsonw_put(w, "[", 1);
    for (; qr_agreement_items_next(it, &e); n++) {
        entry_head(w, indent, n, e.item, e.item_len, e.judgements, e.has_agreement, e.agreement);
        member(w, indent, "\"majority_label\": ");
        if (e.majority)
            qr_jsonw_string(w, e.majority, e.majority_len);
        else
            qr_jsonw_puts(w, "null");
        if (ds) {
            if (!(d = qr_ctl_agreement_ds_item_json(ds, n, &dn)))
                return QR_EIO;
            qr_jsonw_put(w, d, dn);
        }
        entry_end(w, indent);
    }
    list_end(w, indent, n);
    return 0;
}

/* A field's list: {"item", "judgements", "agreement", "consensus",
 * "support"}. */
static void write_field(qr_jsonw_t *w, qr_fields_items_t *it, int indent)
{
    qr_fields_item_t e;
    size_t n = 0;

    qr_jsonw_put(w, "[", 1);
    for (; qr_fields_items_next(it, &e); n++) {
        entry_head(w, indent, n, e.item, e.item_len, e.judgements, e.has_agreement, e.agreement);
        member(w, indent, "\"consensus\": ");
        qr_jsonw_value(w, e.consensus, indent + 4);
        member(w, indent, "\"support\": ");
        if (json_is_null(e.consensus))
            qr_jsonw_puts(w, "null");
        else
            qr_jsonw_real(w, e.support);
        json_decref(e.consensus);
        entry_end(w, indent);
    }
    list_end(w, indent, n);
}

static int fill(qr_jsonw_t *w, int k, int indent, void *data)
{
    lists_t *ls = data;

    if (ls->list[k].top) {
        qr_agreement_items_rewind(ls->list[k].top); /* a CSV's field read it first */
        return write_top(w, ls->list[k].top, indent, ls->ds);
    }
    write_field(w, ls->list[k].field, indent);
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
