/*
 * sim_values.h - the values `quorum-agent simulate` gives the fields of a
 * project's label schema (schema_view.h): a truth per task and field, and
 * an annotator's noisy copy of it at a set accuracy. Pure functions: no
 * I/O, no global state; the same arguments give the same value.
 *
 * The truth of a field is the one the task's data gives (its truth field,
 * "_true_label": an object by field name), else one derived from the task
 * id and the field's name alone (every annotator of a task shares it),
 * valid for the schema: a choice from the list; a set of choices within
 * min..max; a rating on the grid; up to three non-overlapping spans over
 * whitespace-separated words of the text data[over] (code points); up to
 * three boxes inside 0..100; a short text within max_length.
 *
 * A noisy value at accuracy acc (0..1), per type:
 *   choice        the truth with probability acc, else another choice
 *                 uniformly (any choice when the truth is not one of them);
 *   multi_choice  each choice flipped with probability (1-acc)/2, then
 *                 choices dropped or added at random to be within min..max;
 *   rating        the truth with probability acc, else one or two steps off
 *                 (the other way when that leaves the scale; one step when
 *                 neither way has room for two);
 *   spans         each span kept exactly with probability acc, else moved by
 *                 1-3 code points (inside the text, and clear of the other
 *                 spans when overlap is false) or dropped (half each); with
 *                 probability (1-acc)/2 one extra span;
 *   boxes         each coordinate moved uniformly by up to (1-acc)*10
 *                 percent points, the box kept inside 0..100 (hundredths);
 *   text          the truth with probability acc, else with one typo (a
 *                 letter replaced, dropped or added, or two swapped).
 * At acc 1 every value equals the truth exactly. A truth this file cannot
 * work with (of the wrong JSON type) is given back unchanged: the broker's
 * 422 then says what is wrong with it.
 */
#ifndef QR_SIM_VALUES_H
#define QR_SIM_VALUES_H

#include <jansson.h>
#include <stdint.h>

/* The truth of field for the task task_id with this data (the task's data
 * object, for spans' "over"). New reference. */
json_t *qr_sim_truth(const json_t *field, const json_t *data, int64_t task_id);

/* A noisy copy of truth (see the top) drawn from seed. New reference;
 * NULL only when truth is NULL. */
json_t *qr_sim_noisy(const json_t *field, const json_t *truth, const json_t *data, double accuracy,
                     uint64_t seed);

/*
 * The truth of every field of schema, as an object by field name: given's
 * value for fields it names (given: the task data's truth field, an object),
 * or, when given is a string, that string for the first choice field; the
 * others derived with qr_sim_truth. New reference.
 */
json_t *qr_sim_truths(const json_t *schema, const json_t *data, const json_t *given,
                      int64_t task_id);

/* The labels object an annotator of this accuracy submits: qr_sim_noisy of
 * every field with a truth in truths, each from its own stream of seed. New
 * reference. */
json_t *qr_sim_labels(const json_t *schema, const json_t *data, const json_t *truths,
                      double accuracy, uint64_t seed);

#endif
