/*
 * agreement_fields.h - agreement per field of a label schema (issue 15):
 * one set of judgements per named field, each field of one type (choice,
 * multi_choice, rating, spans, boxes, text), with the metrics, breakdowns and
 * consensus the issue names for that type.
 *
 * A judgement is one annotator's value of one field on one item. The caller
 * declares the fields (or loads a schema), adds values one by one in typed
 * form (or as JSON values, qr_fields_add_json) and asks for the report
 * (qr_fields_json). Items and annotators are strings shared by all fields.
 *
 * Per type (every figure {"value", "status"[, "reason"]}, never NaN):
 * - choice, rating: the values go into a qr_agreement_t (agreement.h), so the
 *   metrics are today's keys; a rating's number is its label, written in the
 *   shortest form that reads back to the same double.
 * - multi_choice: Krippendorff's alpha with the MASI distance (Passonneau
 *   2006, with NLTK's weights 0.67 and 0.33) and with the Jaccard distance,
 *   over the values of items with two or more judgements; the distance of
 *   two empty sets is 0 (NLTK divides by zero there). per_choice_alpha: per
 *   choice, nominal alpha of present/absent.
 * - spans: per annotator pair on an item, F1 = 2m / (na + nb) with m the exact
 *   (start, end, label) or the overlap (same label, intersecting, one to one)
 *   matches of qr_spans_match; two empty lists score 1. span_f1_* is the mean
 *   over items of the item's mean over pairs. token_alpha_nominal: the item's
 *   text (qr_fields_set_text) is cut into whitespace-separated tokens (code
 *   points); an annotator's value of a token is the set of labels of the spans
 *   that intersect it ("O" when none), and nominal alpha runs over (item,
 *   token) units; items without a text are left out, and without any text the
 *   figure is not_applicable.
 * - boxes: per pair, qr_boxes_match at the IoU threshold; box_f1 as span F1;
 *   box_mean_iou = the IoUs of all matches of all pairs, averaged.
 * - text: values are normalized (NFC, case-folded, whitespace runs to one
 *   space, trimmed; utf8proc). text_exact_agreement: mean over items of the
 *   share of pairs with equal normalized values; text_mean_similarity: the
 *   same mean of 1 - levenshtein / max(length) over code points (two empty
 *   values: 1).
 *
 * Statuses: no item with two or more judgements -> undefined "no item has two
 * or more judgements"; an alpha whose expected disagreement is 0 (every
 * pairable value the same) -> undefined "no variation: ...".
 *
 * The math does no I/O; qr_fields_read_jsonl() reads a FILE * the caller
 * opened. Not thread-safe: one object per thread.
 */
#ifndef QR_AGREEMENT_FIELDS_H
#define QR_AGREEMENT_FIELDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "agreement.h"

typedef enum {
    QR_FIELD_CHOICE,
    QR_FIELD_MULTI_CHOICE,
    QR_FIELD_RATING,
    QR_FIELD_SPANS,
    QR_FIELD_BOXES,
    QR_FIELD_TEXT,
} qr_field_type_t;

#define QR_FIELDS_MAX 32 /* fields in one set, as in a schema */

/* "choice", "multi_choice", ...; and back (0, or QR_EINVAL for another name). */
const char *qr_field_type_name(qr_field_type_t t);
int qr_field_type_parse(const char *s, qr_field_type_t *t);

typedef struct qr_fields_s qr_fields_t;

/* An empty set of fields, IoU threshold 0.5. Aborts on out-of-memory. */
qr_fields_t *qr_fields_new(void);

/* Frees fs and all it holds; NULL is a no-op. */
void qr_fields_free(qr_fields_t *fs);

/* The IoU at or above which two boxes match (box metrics and consensus). */
void qr_fields_set_iou_threshold(qr_fields_t *fs, double thr);

/*
 * Declares a field; returns its index (0, 1, ... in order of declaration).
 * The same name again with the same type returns its index; with another
 * type QR_ECONFLCT. QR_EINVAL for an empty name or one that is not valid
 * UTF-8, QR_ETOOBIG past QR_FIELDS_MAX fields.
 */
int qr_fields_declare(qr_fields_t *fs, const char *name, size_t len, qr_field_type_t type);

/* Index of the field, or -1. */
int qr_fields_find(const qr_fields_t *fs, const char *name, size_t len);
size_t qr_fields_count(const qr_fields_t *fs);
const char *qr_fields_name(const qr_fields_t *fs, int f);
qr_field_type_t qr_fields_type(const qr_fields_t *fs, int f);

/* Judgements of field f so far; they are numbered from 0 in order of
 * addition. */
size_t qr_fields_judgements(const qr_fields_t *fs, int f);

/* Number of the judgement of (item, annotator) in field f, or -1. */
long qr_fields_find_judgement(const qr_fields_t *fs, int f, const char *item, size_t item_len,
                              const char *ann, size_t ann_len);

/*
 * The choices (choice, multi_choice) or labels (spans, boxes) of field f in
 * schema order: multi_choice values and per_choice_alpha are listed in this
 * order (other values are still accepted and come after, in byte order).
 * Call before adding values. Returns 0 or QR_EINVAL.
 */
int qr_fields_set_choices(qr_fields_t *fs, int f, const char *const *names, const size_t *lens,
                          size_t n);

/* The grid of a rating field (min, step > 0): the consensus of an even count
 * takes the mean of the two middle values only when it is on this grid.
 * Without it, the grid is the integers when every value is one. */
int qr_fields_set_scale(qr_fields_t *fs, int f, double min, double step);

/*
 * Loads {"fields": [...]} or {"schema": {"fields": [...]}} (issue 15's
 * schema shape): declares each field with its choices/labels and scale. Keys
 * this module does not use (required, max_length, over, ...) are ignored.
 * Returns 0, or QR_EINVAL with a message in err.
 */
int qr_fields_load_schema(qr_fields_t *fs, const json_t *schema, char *err, size_t errlen);

/* A span or box as the caller has it: its label as a string. */
typedef struct {
    int64_t start, end; /* code points, [start, end) */
    const char *label;
    size_t label_len;
} qr_span_value_t;

typedef struct {
    double x, y, w, h; /* percent of the image */
    const char *label;
    size_t label_len;
} qr_box_value_t;

/*
 * Adds one judgement of field f (which must be of the type the function
 * names). Strings are copied. Returns 0;
 * QR_ECONFLCT if (item, annotator) has a value of f already (nothing
 * changes); QR_EINVAL for an empty or invalid-UTF-8 item, annotator, choice
 * or label, a wrong type, a rating that is not finite, a span with end <
 * start, a text with a NUL; QR_ETOOBIG past 2^32 - 2 judgements.
 */
int qr_fields_add_choice(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                         size_t ann_len, const char *v, size_t len);
int qr_fields_add_rating(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                         size_t ann_len, double v);
int qr_fields_add_multi(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const char *const *choices, const size_t *lens, size_t n);
int qr_fields_add_spans(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const qr_span_value_t *spans, size_t n);
int qr_fields_add_boxes(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                        size_t ann_len, const qr_box_value_t *boxes, size_t n);
int qr_fields_add_text(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                       size_t ann_len, const char *text, size_t len);

/*
 * Adds a value given as JSON, in the shape of the issue-15 contract for f's
 * type: a string (choice, text), a number (rating), an array of strings
 * (multi_choice), of {"start", "end", "label"} (spans; a "text" key is
 * ignored) or of {"x", "y", "width", "height", "label"} (boxes; "rotation": 0
 * accepted). Returns what the typed functions return; on QR_EINVAL err says
 * what is wrong with the value.
 */
int qr_fields_add_json(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *ann,
                       size_t ann_len, const json_t *value, char *err, size_t errlen);

/* The text of an item for the token alpha of spans field f (the data field
 * its spans are over). The first text given for an item stays; another one
 * later gives QR_ECONFLCT. QR_EINVAL for invalid UTF-8, QR_ETOOBIG for a
 * text of 16 MiB or more. */
int qr_fields_set_text(qr_fields_t *fs, int f, const char *item, size_t item_len, const char *text,
                       size_t len);

/*
 * The report as a new JSON reference (the caller json_decref()s it):
 * "fields": {"<name>": {"type", "counts", "metrics", "per_annotator"
 * [, "per_item"]}} in order of declaration. Before it, the top-level keys of
 * qr_agreement_json() of the first choice or rating field, when there is one
 * (per_item included when asked); otherwise only "counts" over all fields.
 * per_annotator entries: {"annotator", "judgements", "pair_score"} (choice and
 * rating: today's {"annotator", "judgements", "majority_agreement"}); per_item
 * entries: {"item", "judgements", "agreement", "consensus", "support"}.
 * Listings are in byte order of names. Does not change fs.
 */
json_t *qr_fields_json(qr_fields_t *fs, int per_item);

/* Field f's entry alone ({"type", "counts", ...}). For a choice or rating
 * field, report may be qr_agreement_json() of its store, already computed
 * (NULL: computed here). */
json_t *qr_fields_field_json(qr_fields_t *fs, int f, int per_item, const json_t *report);

/*
 * Per-item entries without a JSON tree (200,000 items as jansson objects
 * cost more than the whole analysis), so that a caller can write them one at
 * a time: an iterator over the entries that qr_fields_field_json(fs, f, 1,
 * ...) lists under "per_item", in the same order and with the same values.
 * It reads fs's strings: free it with qr_fields_items_free() before fs, and
 * add nothing to fs meanwhile.
 */
typedef struct qr_fields_items_s qr_fields_items_t;

typedef struct {
    const char *item;  /* the item's name (NUL-terminated), valid while fs is */
    size_t item_len;   /* its length in bytes */
    size_t judgements; /* judgements of the field on the item */
    int has_agreement; /* 0 when the item has fewer than 2 judgements */
    double agreement;  /* mean pair score, when has_agreement */
    json_t *consensus; /* a new reference (json_decref() it); JSON null when none */
    double support;    /* share of the annotators backing it; 0 when none */
} qr_fields_item_t;

/* Field f's iterator; the field is analysed (its figures too) once more. */
qr_fields_items_t *qr_fields_items_new(qr_fields_t *fs, int f);

/*
 * The entries of the choice field that qr_fields_adopt_agreement() makes of
 * a store a, bit for bit, drawn from a's own per-item iterator
 * (qr_agreement_report(a, &items)) instead of a copy of its judgements: the
 * consensus is issue 4's majority label (the unique plurality), its support
 * the share of judgements that gave it. Reads and advances items, which
 * stays the caller's: free the result first.
 */
qr_fields_items_t *qr_fields_items_of_agreement(qr_agreement_items_t *items);

/* The next entry into *e: 1, or 0 past the last one (*e is then unset). */
int qr_fields_items_next(qr_fields_items_t *it, qr_fields_item_t *e);

/* Frees the iterator; NULL is a no-op. */
void qr_fields_items_free(qr_fields_items_t *it);

/*
 * The report of qr_fields_json(fs, 1) with every per-item list given as an
 * iterator instead, from the one analysis that made the figures: each
 * "per_item" key is in its place with the value null. *top (NULL when fs has
 * no choice or rating field) lists the top-level "per_item";
 * items[0..qr_fields_count(fs)) each field's, in order of declaration. The
 * caller frees the report and every iterator (before fs).
 */
json_t *qr_fields_report(qr_fields_t *fs, qr_agreement_items_t **top, qr_fields_items_t **items);

/* Field f's entry as qr_fields_field_json(fs, f, 1, report) gives it, with
 * "per_item": null and its entries in *items (qr_fields_items_free()). */
json_t *qr_fields_field_report(qr_fields_t *fs, int f, const json_t *report,
                               qr_fields_items_t **items);

/*
 * Declares a choice field named name backed by a (issue 4's store, say as
 * qr_agreement_read_csv filled it): fs takes a over (qr_fields_free frees
 * it) and copies its judgements, so the field has per-item entries too.
 * Returns the field's index, QR_ECONFLCT if the field has values already, or
 * what qr_fields_declare returns.
 */
int qr_fields_adopt_agreement(qr_fields_t *fs, const char *name, size_t len, qr_agreement_t *a);

/*
 * Consensus of one item's values of one field (issue 15): values[0..n) are
 * the annotators' values as JSON (as qr_fields_add_json takes them); opts
 * may be NULL for the defaults (IoU threshold 0.5, no rating grid).
 * On success returns 0, *out = the consensus value (a new reference; JSON
 * null when there is none: a choice tie, a text tie, no values) and *support
 * = the share of the n annotators backing it (0 when there is none). A
 * malformed value gives QR_EINVAL and a message naming its index in err.
 *   choice: the unique plurality; multi_choice: each choice chosen by more
 *   than half (in schema order when given, else byte order); rating: the
 *   median (even count: the mean of the two middles if on the grid, else the
 *   lower); spans: the exact spans in more than half the lists; boxes:
 *   clusters of matched boxes backed by more than half, averaged
 *   (qr_boxes_consensus); text: the most common normalized value if unique,
 *   given as the first raw value with that form.
 * Support of a set: the smallest share among its elements; of the empty set,
 * the share of annotators who gave the empty set. Rating: the share of values
 * equal to the median.
 */
typedef struct {
    double iou_threshold;       /* boxes; <= 0 means 0.5 */
    int has_grid;               /* rating: grid_min and grid_step are set */
    double grid_min, grid_step; /* rating grid */
    const char *const *choices; /* multi_choice: schema order (may be NULL) */
    const size_t *choice_lens;  /* lengths of choices[] */
    size_t nchoices;
} qr_consensus_opts_t;

int qr_field_consensus(qr_field_type_t type, const qr_consensus_opts_t *opts, json_t *const *values,
                       size_t n, json_t **out, double *support, char *err, size_t errlen);

/*
 * Reads JSONL lines {"item": str|int, "annotator": str|int, "field": str,
 * "value": ...} from f into fs (blank lines skipped; optional "text": str on
 * a spans line gives the item's text, qr_fields_set_text). A field not
 * declared before (by a schema) is declared by its first value: string ->
 * choice, number -> rating, array of strings -> multi_choice, of objects with
 * start -> spans, with x -> boxes; an empty array says nothing (its line
 * waits until the field's type is known), and a field whose every value is an
 * empty array is a multi_choice. A text field needs the schema (a string
 * field without one is a choice). A value of another type than its field's
 * is an error.
 * Returns 0, or -N with N the 1-based line of the error and a one-line
 * message naming that line in err.
 */
int qr_fields_read_jsonl(FILE *f, qr_fields_t *fs, char *err, size_t errlen);

/* Normalizes a text value as the text metrics do (NFC, case fold, collapsed
 * and trimmed whitespace). Returns a new NUL-terminated string (free()) and
 * its length in *len, or NULL when s is not valid UTF-8. */
char *qr_text_normalize(const char *s, size_t n, size_t *len);

/* Levenshtein distance over code points of two valid UTF-8 strings. */
size_t qr_text_levenshtein(const char *a, size_t na, const char *b, size_t nb);

/* MASI and Jaccard distance of two sets of sizes na and nb with ni in
 * common (NLTK's definitions; two empty sets: 0). */
double qr_masi_distance(uint32_t na, uint32_t nb, uint32_t ni);
double qr_jaccard_distance(uint32_t na, uint32_t nb, uint32_t ni);

#endif
