/*
 * ctl_agreement_json.h - the JSON report of `quorumctl agreement`, of a CSV
 * or of JSONL fields, with every "per_item" list written one entry at a time
 * instead of as a jansson tree.
 */
#ifndef QR_CTL_AGREEMENT_JSON_H
#define QR_CTL_AGREEMENT_JSON_H

#include <stdio.h>

#include <jansson.h>

#include "agreement.h"
#include "agreement_fields.h"
#include "ctl_agreement_ds.h"

/*
 * Prints the JSON report of a CSV (no final line break): report (what
 * qr_agreement_report() returned) gains "fields": {"label": ...} and, with
 * ds (--method dawid_skene, else NULL), "dawid_skene"; with items (its
 * per-item iterator, for --per-item), the field's "per_item" and, after
 * those, the top-level "per_item" too, whose entries end with ds's keys.
 * items and ds stay the caller's (items is read to its end, twice). Returns
 * 0, or a negative code when the report could not be written.
 */
int qr_ctl_agreement_json_csv(FILE *out, json_t *report, qr_agreement_items_t *items,
                              qr_ctl_ds_t *ds);

/* Prints the JSON report of a set of fields read from JSONL (no final line
 * break): qr_fields_json(fs, per_item), byte for byte as json_dumpf with
 * JSON_INDENT(2) prints it. Returns 0, or a negative code. */
int qr_ctl_agreement_json_fields(FILE *out, qr_fields_t *fs, int per_item);

#endif
