/*
 * text_out.h - writing text that came from elsewhere (names, labels,
 * reasons: what a user typed, stored by the broker) where it could do harm:
 * into a CSV cell a spreadsheet opens, and onto a terminal.
 *
 * Both are pure functions over NUL-terminated strings appending to a qr_buf_t
 * (util.h); the caller owns the buffer. One copy of each rule for quorumd's
 * export, quorumctl's tables and quorum-agent's labeler.
 */
#ifndef QR_TEXT_OUT_H
#define QR_TEXT_OUT_H

#include <stddef.h>

#include "util.h"

/*
 * Appends s to b as one RFC 4180 CSV field, neutralized against formula
 * injection (OWASP's rule): a cell starting with '=', '+', '-', '@', a tab
 * or a carriage return gets a single quote in front, so a spreadsheet shows
 * it as text. So does a cell that is such a cell with quotes in front
 * already ("'=x"), which keeps the rule reversible (qr_csv_cell_value). The
 * field is quoted when it holds a comma, double quote, CR or LF (quotes
 * doubled).
 */
void qr_csv_cell(qr_buf_t *b, const char *s);

/*
 * The value a field written by qr_csv_cell stood for, as a length (the
 * value starts at *s + the returned offset): 1 when the field is a single
 * quote followed by quotes and then one of the characters above, else 0.
 * For readers of our exports (quorumctl agreement).
 */
size_t qr_csv_cell_value(const char *s, size_t len);

/*
 * Appends s to b fit for a terminal: C0 control characters and DEL
 * (U+0000-U+001F, U+007F) become "\xNN", C1 controls (U+0080-U+009F) become
 * "\u00NN", and bytes that are not valid UTF-8 become "\xNN", so a name can
 * neither move the cursor nor start a line of its own. Other text is
 * copied as is.
 */
void qr_term_escape(qr_buf_t *b, const char *s);

/*
 * The same into out (size bytes, NUL-terminated), cut at a character
 * boundary, never inside an escape, when it does not fit. Returns out.
 */
const char *qr_term_escape_to(char *out, size_t size, const char *s);

#endif
