/*
 * ctl_agreement_fields.h - the per-field part of `quorumctl agreement`
 * (issue 15): JSONL input and --schema.
 */
#ifndef QR_CTL_AGREEMENT_FIELDS_H
#define QR_CTL_AGREEMENT_FIELDS_H

#include <stdio.h>

/* A stream that reads f from its start although its first bytes were
 * peeked: *jsonl = 1 when the first byte past a byte-order mark and
 * whitespace is '{'. f itself, rewound, when it seeks; else a new stream
 * (fclose() it before f); NULL on failure. */
FILE *qr_ctl_agreement_sniff(FILE *f, int *jsonl);

/* The JSONL path: reads f (named source in messages), prints the report.
 * Returns the exit code. */
int qr_ctl_agreement_jsonl(FILE *f, const char *source, const char *schema_path, double iou,
                           int as_json, int per_item);

#endif
