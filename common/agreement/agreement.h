/*
 * agreement.h - inter-annotator agreement over a set of judgements (issue 4).
 *
 * A judgement is one annotator's label for one item. The caller adds
 * judgements one by one (from a CSV file, or from the broker's store) and asks
 * for the report: counts, every coefficient of issue 4 with its status
 * (defined / undefined with a reason / not applicable with a reason; never
 * NaN), the pairwise and per-annotator breakdowns, the label distribution and,
 * on request, one entry per item.
 *
 * Items, annotators and labels are strings compared byte for byte; they must be
 * valid UTF-8 without NUL bytes. When every distinct label parses as a decimal
 * number, the numeric coefficients (weighted Cohen, Krippendorff ordinal,
 * interval and ratio) apply too; labels such as "1" and "1.0" are then one
 * numeric level but two nominal categories.
 *
 * The math does no I/O. qr_agreement_read_csv() (agreement_csv.c) reads a
 * FILE * the caller opened. An agreement object is not thread-safe; use one per
 * thread.
 */
#ifndef QR_AGREEMENT_H
#define QR_AGREEMENT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef struct qr_agreement_s qr_agreement_t;

/* An empty set of judgements. Aborts on out-of-memory (qr_xmalloc); free it
 * with qr_agreement_free(). */
qr_agreement_t *qr_agreement_new(void);

/*
 * Adds one judgement. The three strings are copied; the caller keeps its own.
 * Returns 0; QR_ECONFLCT if (item, annotator) was added before (the set is
 * unchanged); QR_EINVAL if a string is empty, is not valid UTF-8 or holds a NUL
 * byte; QR_ETOOBIG past 2^32 - 2 judgements or strings of 4 GiB.
 */
int qr_agreement_add(qr_agreement_t *a, const char *item, size_t item_len, const char *annotator,
                     size_t annotator_len, const char *label, size_t label_len);

/* Number of judgements added so far; judgement indexes run from 0 in the order
 * of addition. */
size_t qr_agreement_count(const qr_agreement_t *a);

/* Index of the judgement of (item, annotator), or -1 if there is none. The CSV
 * reader uses it to name the line a duplicate first appeared on. */
long qr_agreement_find(const qr_agreement_t *a, const char *item, size_t item_len,
                       const char *annotator, size_t annotator_len);

/*
 * The issue-4 report as a new JSON reference; the caller json_decref()s it.
 * Keys: "counts", "metrics", "pairwise", "per_annotator", "labels",
 * "labels_numeric" and, when per_item != 0, "per_item". Each metric is
 * {"value": X, "status": "defined"} or {"value": null, "status": "undefined" |
 * "not_applicable", "reason": "..."}. Annotators, pairs and items are listed in
 * byte order of their names; labels in numeric order when all are numeric,
 * byte order otherwise. Costs O(judgements + annotator pairs per item) time
 * (plus O(levels^2) for the ratio metric) and does not change a.
 */
json_t *qr_agreement_json(qr_agreement_t *a, int per_item);

/*
 * Per-item results without a JSON tree (200,000 items as jansson objects cost
 * more than the whole analysis): qr_agreement_report(a, &items) returns what
 * qr_agreement_json(a, 0) returns and, when items is non-NULL, sets *items to
 * an iterator over the entries that qr_agreement_json(a, 1) lists under
 * "per_item", in the same order. The iterator reads a's strings: free it with
 * qr_agreement_items_free() before a, and add nothing to a meanwhile.
 */
typedef struct qr_agreement_items_s qr_agreement_items_t;

typedef struct {
    const char *item;      /* the item's name (NUL-terminated) */
    size_t item_len;       /* its length in bytes */
    size_t judgements;     /* judgements on the item */
    int has_agreement;     /* 0 when the item has fewer than 2 judgements */
    double agreement;      /* share of agreeing pairs, when has_agreement */
    const char *majority;  /* the unique most common label, or NULL on a tie */
    size_t majority_len;   /* its length in bytes */
    size_t majority_count; /* judgements that gave it (0 on a tie) */
} qr_agreement_item_t;

json_t *qr_agreement_report(qr_agreement_t *a, qr_agreement_items_t **items);

/* The next entry into *out: 1, or 0 past the last one. */
int qr_agreement_items_next(qr_agreement_items_t *it, qr_agreement_item_t *out);

/* Number of entries, and back to the first one. */
size_t qr_agreement_items_count(const qr_agreement_items_t *it);
void qr_agreement_items_rewind(qr_agreement_items_t *it);

/* Frees the iterator; NULL is a no-op. */
void qr_agreement_items_free(qr_agreement_items_t *it);

/* Frees a and everything it holds; NULL is a no-op. */
void qr_agreement_free(qr_agreement_t *a);

/*
 * Reads a CSV file (RFC 4180 via libcsv; header naming the columns item,
 * annotator and label in any order, other columns ignored; optional UTF-8
 * byte-order mark; LF or CRLF) and adds its rows to a. Returns 0, or -N where N
 * (>= 1) is the physical line of the offending record, with a one-line message
 * naming that line in err (always NUL-terminated when errlen > 0). On error a
 * holds the rows read before it; the caller normally discards it.
 */
int qr_agreement_read_csv(FILE *f, qr_agreement_t *a, char *err, size_t errlen);

/* 1 if s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), else 0. */
int qr_agreement_utf8_valid(const char *s, size_t n);

#endif
