/*
 * agreement_geom.h - the geometry behind the agreement of span and box fields
 * (issue 15): matching two annotators' spans or boxes on one item, the IoU of
 * two boxes, and the consensus of n annotators' spans or boxes on one item.
 *
 * Pure: no I/O, no JSON, no global state; every function is thread-safe. The
 * caller keeps its lists; nothing here holds on to a pointer after it
 * returns. Labels are numbers the caller chose (an index into the field's
 * labels, say); they compare as numbers. Workspace comes from a buffer on
 * the stack for small lists and from qr_xmalloc beyond it (out-of-memory
 * aborts, as everywhere in the library); a size whose workspace would not
 * fit in size_t aborts through QR_ASSERT (lists are capped at 1000 entries
 * by validation, far below that).
 *
 * F1 from the counts: with exact or overlap matches m between lists of na
 * and nb entries, precision m/na, recall m/nb, F1 = 2m / (na + nb). Two
 * empty lists give m = 0 and 0/0: callers count that pair as full agreement
 * (F1 1; the two annotators agree that there is nothing to mark), and one
 * empty list against a non-empty one as F1 0.
 */
#ifndef QR_AGREEMENT_GEOM_H
#define QR_AGREEMENT_GEOM_H

#include <stddef.h>
#include <stdint.h>

/* A labeled character range [start, end) of an item's text, in code points. */
typedef struct {
    int64_t start, end;
    uint32_t label;
} qr_span_t;

/* A labeled rectangle on an item's image, in percent of its width (x, w) and
 * height (y, h); (x, y) is the top-left corner. */
typedef struct {
    double x, y, w, h;
    uint32_t label;
} qr_box_t;

/*
 * Two annotators' spans on one item (each list sorted by start, end, label;
 * no exact duplicates inside a list).
 *
 * *exact: spans equal in start, end and label (one to one).
 * *overlap: size of the best one-to-one pairing of same-label spans whose
 * ranges intersect (maximum cardinality, ties broken by the larger total
 * intersection). Ranges are half-open: [0,5) and [5,9) touch but do not
 * intersect; [2,4) inside [0,9) does.
 *
 * The overlap count is exact, computed per label by a sweep over the spans in
 * order of their end: the unmatched span ending first is paired with the
 * unmatched span of the other list that starts before that end and ends
 * first (an exchange argument shows this reaches the maximum cardinality on
 * intersecting intervals). The contract's tie-break (larger total
 * intersection) only chooses among pairings of that same size, so it cannot
 * change the count; no pairing is returned, so none is computed.
 *
 * Edge cases: an empty list gives 0 and 0 (two empty lists too: see the
 * F1 note above); a span with end <= start is empty and matches nothing. The
 * input order is not relied upon (the lists are copied and sorted), so an
 * unsorted list gives the same counts. Either output pointer may be NULL.
 * Cost: O((na + nb) log(na + nb)) time, O(na + nb) memory.
 */
void qr_spans_match(const qr_span_t *a, size_t na, const qr_span_t *b, size_t nb, size_t *exact,
                    size_t *overlap);

/*
 * Intersection over union of two boxes, in [0, 1]; labels are ignored. 0 when
 * either box has no area (width or height <= 0, or not a number) and when the
 * boxes only touch along an edge. Identical boxes give exactly 1.
 */
double qr_box_iou(const qr_box_t *a, const qr_box_t *b);

/*
 * Two annotators' boxes on one item matched one to one by optimal assignment
 * maximizing the total IoU over same-label pairs; a pair counts as a match
 * when its IoU >= thr. *matched = counted matches, *iou_sum = sum of their
 * IoUs (the mean IoU of matches is *iou_sum / *matched).
 *
 * A pair of different labels, or of the same label with IoU 0, weighs 0 and
 * is never a match, so a thr <= 0 counts every assigned pair that overlaps.
 * The assignment is split first into the connected parts of the graph of
 * overlapping same-label pairs (separate parts do not compete); a part of one
 * box against one box is taken as it is, a larger one goes through the
 * Hungarian algorithm (Kuhn-Munkres, O(r^2 c) for r <= c boxes). When two
 * assignments reach the same total IoU, the one found is fixed by the input
 * order; they may differ in how many pairs clear thr.
 *
 * Edge cases: an empty list gives 0 and 0.0. Either output pointer may be
 * NULL. Cost: O(na nb) IoU computations plus the assignments, which only
 * approach O(n^3) when many boxes of one label overlap each other.
 */
void qr_boxes_match(const qr_box_t *a, size_t na, const qr_box_t *b, size_t nb, double thr,
                    size_t *matched, double *iou_sum);

/*
 * Consensus of n annotators' span lists on one item: the spans (exact match
 * of start, end and label) present in more than n/2 lists, sorted by start,
 * end, label; support[i] = how many lists hold out[i]. Returns the count
 * written (at most cap: the first cap spans in that order).
 *
 * lists[k] holds counts[k] spans (lists[k] may be NULL when counts[k] is 0:
 * an annotator who marked nothing still counts in n). A span twice in one
 * list counts once; an empty span (end <= start) is never chosen. n == 0
 * gives 0; n == 1 gives that list. support may be NULL.
 * Cost: O(T log T) time and O(T) memory for T spans in all lists.
 */
size_t qr_spans_consensus(const qr_span_t *const *lists, const size_t *counts, size_t n,
                          qr_span_t *out, size_t *support, size_t cap);

/*
 * Consensus of n annotators' boxes on one item: clusters of boxes of one
 * label from distinct annotators, kept when more than n/2 annotators are in
 * them; out[i] is the mean of a kept cluster's x, y, w and h (with its
 * label), support[i] its annotator count. Returns the count written (at most
 * cap), sorted by label, then x, y, w, h of the mean box.
 *
 * Clustering, per label (complete linkage, greedy by IoU): every box starts
 * as a cluster of its own. The pairs of boxes of different annotators whose
 * IoU is > 0 and >= thr are taken in order of decreasing IoU (ties: the pair
 * whose boxes come first in the input, annotator by annotator, list order
 * inside one); a pair joins the two clusters of its boxes when they have no
 * annotator in common and every box of one matches every box of the other
 * (IoU > 0 and >= thr). So every two boxes in a cluster match each other
 * (in particular each matches the cluster's first box, as the contract
 * asks), and a cluster holds at most one box per annotator.
 *
 * lists[k] holds counts[k] boxes (NULL when counts[k] is 0; that annotator
 * still counts in n). n == 0 gives 0; n == 1 gives that list's boxes, each
 * with support 1. A box without area matches nothing, but alone is still a
 * cluster of one. support may be NULL.
 * Cost: O(T^2) IoU computations for T boxes of one label over all lists, plus
 * O(E log E) for the E matching pairs of boxes of different annotators;
 * memory O(T + E), 16 bytes a pair. E stays near T when annotators draw
 * separate objects; its worst case, every box matching every other box of
 * another annotator, is 5 annotators x 1000 boxes: 10^7 pairs, 160 MB (twice that
 * while qsort sorts them) and about 5 s, against milliseconds for 100,000
 * boxes spread over items.
 */
size_t qr_boxes_consensus(const qr_box_t *const *lists, const size_t *counts, size_t n, double thr,
                          qr_box_t *out, size_t *support, size_t cap);

#endif
