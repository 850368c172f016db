/*
 * ctl_agreement_fields.h - the per-field part of `quorumctl agreement`
 * (issue 15): JSONL input, --schema, and the "fields" key of the report.
 */
#ifndef QR_CTL_AGREEMENT_FIELDS_H
#define QR_CTL_AGREEMENT_FIELDS_H

#include <stdio.h>

#include <jansson.h>

#include "agreement.h"

/* A stream that reads f from its start although its first bytes were
 * peeked: *jsonl = 1 when the first byte past a byte-order mark and
 * whitespace is '{'. f itself, rewound, when it seeks; else a new stream
 * (fclose() it before f); NULL on failure. */
FILE *qr_ctl_agreement_sniff(FILE *f, int *jsonl);

/* Adds "fields": {"label": ...} to the report of a CSV. With per_item, the
 * field engine takes *a over (and sets *a to NULL) and is returned: free it
 * with qr_ctl_agreement_csv_done() after the report's item iterator;
 * otherwise NULL. */
void *qr_ctl_agreement_csv_fields(json_t *report, qr_agreement_t **a, int per_item);
void qr_ctl_agreement_csv_done(void *fields);

/* The JSONL path: reads f (named source in messages), prints the report.
 * Returns the exit code. */
int qr_ctl_agreement_jsonl(FILE *f, const char *source, const char *schema_path, double iou,
                           int as_json, int per_item);

#endif
