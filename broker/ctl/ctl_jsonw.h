/*
 * ctl_jsonw.h - writing a JSON document too large for a jansson tree (a
 * report with 200,000 per-item objects) in pieces, byte for byte as
 * json_dumpf(doc, out, JSON_INDENT(2)) would print the whole tree.
 *
 * The caller builds the document without its large arrays, puts a slot
 * (qr_jsonw_slot) where each one goes, and dumps it (qr_jsonw_dump): jansson
 * prints the document, and at each slot a callback writes the array with the
 * writers below. Those let jansson format every number and every string that
 * needs escaping, so the pieces cannot drift from what jansson would print.
 */
#ifndef QR_CTL_JSONW_H
#define QR_CTL_JSONW_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef struct qr_jsonw_s qr_jsonw_t;

/* A writer to out (which the caller keeps open and closes), buffered in
 * 64 KiB. NULL when the OS gives no random bytes for the slots' nonce. */
qr_jsonw_t *qr_jsonw_new(FILE *out);

/* Flushes and frees w. Returns 0, or QR_EIO when a write to out failed
 * (then or before) or the document was not dumped whole. NULL: 0. */
int qr_jsonw_free(qr_jsonw_t *w);

/* The bytes s[0..n), as they are. */
void qr_jsonw_put(qr_jsonw_t *w, const char *s, size_t n);
void qr_jsonw_puts(qr_jsonw_t *w, const char *s);

/* A line break and indent spaces: where JSON_INDENT(2) starts the next
 * member of a container whose members are indent spaces in. */
void qr_jsonw_newline(qr_jsonw_t *w, int indent);

/* The JSON string of s[0..n) (valid UTF-8), quoted and escaped. */
void qr_jsonw_string(qr_jsonw_t *w, const char *s, size_t n);

/* The JSON number of v as jansson writes a real (few distinct values, such
 * as per-item agreements, are formatted once and then served from a cache). */
void qr_jsonw_real(qr_jsonw_t *w, double v);

/* Any JSON value, as JSON_INDENT(2) prints it as a member indent spaces in
 * (an array or object spans lines indented from there). */
void qr_jsonw_value(qr_jsonw_t *w, const json_t *v, int indent);

/* A new slot's placeholder (a new reference, a string no input can hold:
 * it carries a random nonce); slots are numbered 0, 1, ... in order of
 * creation. Put each in the document once. */
json_t *qr_jsonw_slot(qr_jsonw_t *w);

/* Writes the value of slot k, whose member starts indent spaces in (as
 * qr_jsonw_value writes one there). Returns 0, or a negative code to stop. */
typedef int (*qr_jsonw_fill_cb)(qr_jsonw_t *w, int k, int indent, void *data);

/*
 * Writes doc as json_dumpf(doc, out, JSON_INDENT(2)) does (no final line
 * break), with each slot's placeholder replaced by what fill writes for it.
 * Returns 0; QR_EIO when doc cannot be dumped or a slot is missing from it
 * (nothing is written then); fill's negative code. Writing errors show in
 * qr_jsonw_free().
 */
int qr_jsonw_dump(qr_jsonw_t *w, const json_t *doc, qr_jsonw_fill_cb fill, void *data);

#endif
