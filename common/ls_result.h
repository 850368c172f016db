/*
 * ls_result.h - Label Studio's result shapes and a schema project's labels
 * object, one to one (issue 15): `choices` (a choice or a multi_choice
 * field), `labels` (one span each, with start, end and text), `rectanglelabels`
 * (one box each), `rating` and `textarea`.
 *
 * Fields are the schema's "fields" array (the contract of POST /v1/projects).
 * A result item names its field by "from_name"; one whose from_name is no
 * field's name goes to the only field its type can fill, if there is exactly
 * one. Items of other types (relations, brushes, ...) are left out.
 *
 * Offsets: Label Studio counts a text's characters in UTF-16 code units (the
 * JavaScript string it shows), Quorum in Unicode code points. Both directions
 * convert through the task's text (data[over]) when it is a string; they
 * differ only past characters outside the Basic Multilingual Plane (emoji).
 *
 * Pure: no I/O; values are not validated against the schema here (that is
 * label_schema's check, which the caller runs on the result).
 */
#ifndef QR_LS_RESULT_H
#define QR_LS_RESULT_H

#include <stddef.h>

#include <jansson.h>

/*
 * A Label Studio result array as a labels object ({"<field>": value}), a new
 * reference; NULL with err set to "<where>: <reason>" (where = "result[i]"
 * or "result[i].value...") when an item cannot be mapped: not an object, a
 * from_name matching no field where no single field fits, a value of the
 * wrong shape, two values for a field that takes one.
 */
json_t *qr_ls_result_to_labels(const json_t *fields, const json_t *result, const json_t *data,
                               char *err, size_t errlen);

/*
 * A labels object as a Label Studio result array, a new reference. Choice,
 * rating and text results point at to_name (the object tag they describe);
 * spans and boxes at their field's "over". Fields absent from labels (or
 * null) give no item.
 */
json_t *qr_ls_labels_to_result(const json_t *fields, const json_t *labels, const json_t *data,
                               const char *to_name);

/* Code point offset cp of the UTF-8 text s as a UTF-16 offset, and back;
 * offsets past the end count one unit per missing character. */
long long qr_utf16_of_codepoint(const char *s, size_t len, long long cp);
long long qr_codepoint_of_utf16(const char *s, size_t len, long long u16);

#endif
