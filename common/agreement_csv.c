/*
 * agreement_csv.c - reads judgements from a CSV file into an agreement set,
 * for `quorumctl agreement FILE.csv`.
 *
 * Parsing is Debian's libcsv in strict mode (RFC 4180 quoting; a stray quote or
 * an unterminated quoted field is an error). libcsv does not count lines, so
 * it runs with CSV_REPALL_NL: every unquoted line feed then ends a row (blank
 * lines are rows of no fields), and line feeds inside quoted fields are
 * counted in the field data. Every error names the line where the offending
 * record starts. The caller owns the FILE *; nothing here opens or closes
 * files.
 */
#include "agreement.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define READ_CHUNK (256 * 1024) /* bytes per fread */

enum { COL_ITEM, COL_ANNOTATOR, COL_LABEL, NCOLS };
static const char *const col_names[NCOLS] = {"item", "annotator", "label"};

typedef struct {
    qr_agreement_t *a;
    long col[NCOLS];         /* field index of each needed column, -1 until seen */
    size_t ncols;            /* fields in the header row */
    size_t field;            /* index of the next field in the current row */
    int header_done;         /* the header row has been read */
    unsigned long line;      /* physical line at the parser's position, from 1 */
    unsigned long rec_line;  /* physical line where the current record started */
    qr_buf_t val[NCOLS];     /* the current row's item, annotator and label */
    int failed;              /* an error was recorded; ignore further callbacks */
    unsigned long fail_line; /* the line the error names */
    char *err;
    size_t errlen;
    uint32_t *lines; /* per judgement: the line its record started on */
    size_t cap_lines;
} reader_t;

static void fail(reader_t *r, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(reader_t *r, unsigned long line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (r->failed)
        return;
    r->failed = 1;
    r->fail_line = line;
    if (r->errlen == 0)
        return;
    n = snprintf(r->err, r->errlen, "line %lu: ", line);
    if (n < 0 || (size_t)n >= r->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A value for an error message: at most 40 bytes, cut on a UTF-8 boundary,
 * control characters shown as '?', "..." when cut. */
static const char *show(char out[64], const char *s, size_t n)
{
    size_t i = 0, o = 0;

    while (i < n && o < 40) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (o + len > 40 || i + len > n)
            break;
        if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static void on_field(void *data, size_t len, void *ctx)
{
    reader_t *r = ctx;
    const char *s = len ? data : "";

    if (r->failed)
        return;
    if (r->field == 0)
        r->rec_line = r->line;
    /* Line feeds inside (quoted) fields, and whether any byte is non-ASCII. */
    unsigned char hi = 0, zero = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        hi |= c;
        zero |= c == 0;
        r->line += c == '\n';
    }
    if ((hi & 0x80) && !qr_agreement_utf8_valid(s, len)) {
        fail(r, r->rec_line, "field %zu is not valid UTF-8", r->field + 1);
        return;
    }
    if (zero) {
        fail(r, r->rec_line, "field %zu contains a NUL byte", r->field + 1);
        return;
    }
    if (!r->header_done) {
        for (int k = 0; k < NCOLS; k++) {
            if (len != strlen(col_names[k]) || strncasecmp(s, col_names[k], len) != 0)
                continue;
            if (r->col[k] >= 0) {
                fail(r, r->rec_line, "the header names column \"%s\" twice", col_names[k]);
                return;
            }
            r->col[k] = (long)r->field;
        }
    } else {
        for (int k = 0; k < NCOLS; k++) {
            if (r->col[k] == (long)r->field) {
                qr_buf_reset(&r->val[k]);
                qr_buf_append(&r->val[k], s, len);
            }
        }
    }
    r->field++;
}

static void on_row(int term, void *ctx)
{
    reader_t *r = ctx;
    size_t nf = r->field;
    char sv[2][64];

    r->field = 0;
    if (term == '\n')
        r->line++; /* the next record starts on the following line */
    if (r->failed || nf == 0)
        return; /* nf == 0: a blank line, or the LF of a CRLF */
    if (!r->header_done) {
        for (int k = 0; k < NCOLS; k++) {
            if (r->col[k] < 0) {
                fail(r, r->rec_line,
                     "missing column \"%s\" in the header (need item, annotator, label)",
                     col_names[k]);
                return;
            }
        }
        r->ncols = nf;
        r->header_done = 1;
        return;
    }
    if (nf != r->ncols) {
        fail(r, r->rec_line, "row has %zu field%s but the header has %zu", nf, nf == 1 ? "" : "s",
             r->ncols);
        return;
    }
    for (int k = 0; k < NCOLS; k++) {
        if (r->val[k].len == 0) {
            fail(r, r->rec_line, "empty %s", col_names[k]);
            return;
        }
    }
    const qr_buf_t *it = &r->val[COL_ITEM], *an = &r->val[COL_ANNOTATOR], *lb = &r->val[COL_LABEL];
    int rc = qr_agreement_add(r->a, it->data, it->len, an->data, an->len, lb->data, lb->len);
    if (rc == QR_ECONFLCT) {
        long j = qr_agreement_find(r->a, it->data, it->len, an->data, an->len);
        fail(r, r->rec_line,
             "duplicate judgement: annotator \"%s\" already labeled item \"%s\" on line %lu",
             show(sv[0], an->data, an->len), show(sv[1], it->data, it->len),
             j >= 0 ? (unsigned long)r->lines[j] : 0UL);
        return;
    }
    if (rc < 0) {
        fail(r, r->rec_line, "%s", rc == QR_ETOOBIG ? "too many judgements" : "invalid row");
        return;
    }
    size_t n = qr_agreement_count(r->a);
    if (n > r->cap_lines) {
        r->cap_lines = r->cap_lines ? r->cap_lines * 2 : 4096;
        r->lines = qr_xrealloc(r->lines, r->cap_lines * sizeof(*r->lines));
    }
    r->lines[n - 1] = r->rec_line > UINT32_MAX ? UINT32_MAX : (uint32_t)r->rec_line;
    for (int k = 0; k < NCOLS; k++)
        qr_buf_reset(&r->val[k]);
}

int qr_agreement_read_csv(FILE *f, qr_agreement_t *a, char *err, size_t errlen)
{
    struct csv_parser p;
    reader_t r;
    char *buf = NULL;
    int first = 1;

    memset(&r, 0, sizeof(r));
    r.a = a;
    r.err = err;
    r.errlen = errlen;
    r.line = 1;
    r.rec_line = 1;
    for (int k = 0; k < NCOLS; k++) {
        r.col[k] = -1;
        qr_buf_init(&r.val[k]);
    }
    if (errlen)
        err[0] = '\0';
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0) {
        fail(&r, 1, "out of memory");
        goto done_noparser;
    }
    buf = qr_xmalloc(READ_CHUNK);
    while (!r.failed) {
        size_t got = fread(buf, 1, READ_CHUNK, f);
        if (got == 0) {
            if (ferror(f))
                fail(&r, r.line, "read error: %s", strerror(errno));
            break;
        }
        const char *s = buf;
        if (first) {
            first = 0;
            if (got >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3, got -= 3;
        }
        if (csv_parse(&p, s, got, on_field, on_row, &r) != got && !r.failed) {
            /* The bad byte is in the record after the last completed row. */
            if (csv_error(&p) == CSV_EPARSE)
                fail(&r, r.field ? r.rec_line : r.line,
                     "malformed quoting in the record starting on this line: a quote inside an "
                     "unquoted field, or text after a closing quote (a literal quote is written "
                     "\"\" inside a quoted field)");
            else
                fail(&r, r.line, "%s", csv_strerror(csv_error(&p)));
        }
    }
    if (!r.failed && csv_fini(&p, on_field, on_row, &r) != 0 && !r.failed)
        fail(&r, r.field ? r.rec_line : r.line,
             "unterminated quoted field in the record starting on this line");
    if (!r.failed && !r.header_done)
        fail(&r, 1, "empty file: expected a header row naming item, annotator and label");
    csv_free(&p);
done_noparser:
    free(buf);
    free(r.lines);
    for (int k = 0; k < NCOLS; k++)
        qr_buf_free(&r.val[k]);
    return r.failed ? -(int)(r.fail_line > INT32_MAX ? INT32_MAX : r.fail_line) : 0;
}
