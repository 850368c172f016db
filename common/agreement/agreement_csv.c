/*
 * agreement_csv.c - reads judgements from a CSV file into an agreement set,
 * for `quorumctl agreement FILE.csv`.
 *
 * The reference parser is Debian's libcsv in strict mode (RFC 4180 quoting; a
 * stray quote or an unterminated quoted field is an error). libcsv does not
 * count lines, so it runs with CSV_REPALL_NL: every unquoted line feed then
 * ends a row (blank lines are rows of no fields), and line feeds inside
 * quoted fields are counted in the field data. Every error names the line
 * where the offending record starts. The caller owns the FILE *; nothing here
 * opens or closes files.
 *
 * Most lines of an export are plain: fields without quotes (or quoted without
 * anything to unquote), no space at a field's edge (libcsv trims it), no CR
 * but the one of a CRLF, no NUL, valid UTF-8, the header's number of fields,
 * no empty value where one is needed. Such a line is split here and its
 * judgement added directly, which is what libcsv's callbacks would have led
 * to; any other line (and the header, and every line of a record that spans
 * lines) goes through libcsv and the same callbacks as before, so results and
 * errors are libcsv's in every case.
 */
#include "agreement_internal.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "text_out.h"
#include "util.h"

#define READ_CHUNK (256 * 1024) /* bytes per fread, at least */
#define READ_SLACK 64           /* bytes past the read buffer that the fast path may read */

enum { COL_ITEM, COL_ANNOTATOR, COL_LABEL, NCOLS };
static const char *const col_names[NCOLS] = {"item", "annotator", "label"};

/* The current row's value of one needed column. It is kept from row to row:
 * a value equal to the previous row's (an item's judgements are usually
 * adjacent) is neither copied nor hashed again. */
typedef struct {
    char *s;    /* bytes, copied out of libcsv's buffer */
    size_t len; /* 0 until set in this row (an empty field stays 0) */
    size_t cap;
    uint64_t h; /* hash in its table (qr_strtab_hash), valid when len > 0 */
} val_t;

typedef struct {
    qr_agreement_t *a;
    qr_strtab_t *tab[NCOLS]; /* the table each column is interned in */
    long col[NCOLS];         /* field index of each needed column, -1 until seen */
    signed char *colk;       /* per header field: the column it is, or -1 */
    size_t ncols;            /* fields in the header row */
    size_t field;            /* index of the next field in the current row */
    int header_done;         /* the header row has been read */
    unsigned long line;      /* physical line at the parser's position, from 1 */
    unsigned long rec_line;  /* physical line where the current record started */
    val_t val[NCOLS];        /* the current row's item, annotator and label */
    int failed;              /* an error was recorded; ignore further callbacks */
    unsigned long fail_line; /* the line the error names */
    char *err;
    size_t errlen;
    /* The line each judgement's record started on, as runs: from judgement
     * seg[k].j on, judgement j is on line j + seg[k].off (a file without
     * blank lines or multi-line records is one run). */
    struct {
        uint64_t j, off;
    } * seg;
    size_t nseg, cap_seg;
    const char **fs; /* fast path: per header field, its start and end (2 x ncols) */
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

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* What the producer found in a field (see scan_field). */
enum { F_NONASCII = 1, F_NUL = 2, F_NEWLINE = 4 };

/* Scans a field once, eight bytes at a time: F_NONASCII if a byte is >= 0x80,
 * F_NUL if one is 0, F_NEWLINE if one is a line feed (only a quoted field can
 * hold one). */
static inline unsigned scan_field(const unsigned char *s, size_t n)
{
    uint64_t acc = 0, z = 0, nlw = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w, x;
        memcpy(&w, s + i, 8);
        acc |= w;
        z |= (w - ONES) & ~w & HIGHS;
        x = w ^ (ONES * '\n');
        nlw |= (x - ONES) & ~x & HIGHS;
    }
    for (; i < n; i++) {
        acc |= s[i];
        z |= s[i] == 0;
        nlw |= s[i] == '\n';
    }
    return ((acc & HIGHS) ? F_NONASCII : 0) | (z ? F_NUL : 0) | (nlw ? F_NEWLINE : 0);
}

/* One field, in the order libcsv delivered it, with the producer's scan
 * flags. */
static void on_field(reader_t *r, const char *s, size_t len, unsigned flags)
{
    if (r->failed)
        return;
    if (r->field == 0)
        r->rec_line = r->line;
    /* Line feeds inside (quoted) fields. The producer's scan is the only check
     * of the bytes besides UTF-8 validation here: qr_agr_add_valid() trusts
     * them. */
    if (flags & F_NEWLINE)
        for (size_t i = 0; i < len; i++)
            r->line += s[i] == '\n';
    if ((flags & F_NONASCII) && !qr_agreement_utf8_valid(s, len)) {
        fail(r, r->rec_line, "field %zu is not valid UTF-8", r->field + 1);
        return;
    }
    if (flags & F_NUL) {
        fail(r, r->rec_line, "field %zu contains a NUL byte", r->field + 1);
        return;
    }
    if (r->header_done) {
        int k = r->field < r->ncols ? r->colk[r->field] : -1;
        if (k >= 0) {
            val_t *v = &r->val[k];
            /* A cell our export neutralized ('=x) stands for =x. */
            size_t skip = qr_csv_cell_value(s, len);
            s += skip;
            len -= skip;
            if (len == 0) {
                v->len = 0;
            } else if (len != v->len || !qr_agr_bytes_eq(v->s, s, len)) {
                if (len > v->cap) {
                    v->cap = len < 64 ? 64 : len;
                    free(v->s);
                    v->s = qr_xmalloc(v->cap);
                }
                memcpy(v->s, s, len);
                v->len = len;
                v->h = qr_strtab_hash(r->tab[k], s, len);
                /* The slot is read at the end of the row; start loading it now
                 * (the item table is the one too big for the cache). */
                qr_strtab_prefetch(r->tab[k], v->h);
            }
        }
    } else {
        for (int k = 0; k < NCOLS; k++) {
            /* An export names the item task_id. */
            int alias = k == COL_ITEM && len == 7 && strncasecmp(s, "task_id", len) == 0;
            if (!alias && (len != strlen(col_names[k]) || strncasecmp(s, col_names[k], len) != 0))
                continue;
            if (r->col[k] >= 0) {
                fail(r, r->rec_line, "the header names column \"%s\" twice", col_names[k]);
                return;
            }
            r->col[k] = (long)r->field;
        }
    }
    r->field++;
}

/* The line judgement j's record started on (0 for one added before reading). */
static unsigned long line_of(const reader_t *r, size_t j)
{
    size_t lo = 0, hi = r->nseg;

    while (lo < hi) { /* the last run starting at or before j */
        size_t mid = lo + (hi - lo) / 2;
        if (r->seg[mid].j <= j)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    uint64_t line = j + r->seg[lo - 1].off;
    return line > UINT32_MAX ? UINT32_MAX : (unsigned long)line;
}

/* Adds the judgement of the record that started on r->rec_line (hashes as
 * for qr_agr_add_valid). */
static void add_row(reader_t *r, const char *it, size_t it_len, uint64_t it_h, const char *an,
                    size_t an_len, uint64_t an_h, const char *lb, size_t lb_len, uint64_t lb_h)
{
    char sv[2][64];
    int rc = qr_agr_add_valid(r->a, it, it_len, it_h, an, an_len, an_h, lb, lb_len, lb_h);

    if (rc == QR_ECONFLCT) {
        long j = qr_agreement_find(r->a, it, it_len, an, an_len);
        fail(r, r->rec_line,
             "duplicate judgement: annotator \"%s\" already labeled item \"%s\" on line %lu",
             show(sv[0], an, an_len), show(sv[1], it, it_len),
             j >= 0 ? line_of(r, (size_t)j) : 0UL);
        return;
    }
    if (rc < 0) {
        fail(r, r->rec_line, "%s", rc == QR_ETOOBIG ? "too many judgements" : "invalid row");
        return;
    }
    uint64_t j = r->a->n - 1, off = (uint64_t)r->rec_line - j;
    if (r->nseg && r->seg[r->nseg - 1].off == off)
        return;
    if (r->nseg == r->cap_seg) {
        r->cap_seg = r->cap_seg ? r->cap_seg * 2 : 16;
        r->seg = qr_xrealloc(r->seg, r->cap_seg * sizeof(*r->seg));
    }
    r->seg[r->nseg].j = j;
    r->seg[r->nseg].off = off;
    r->nseg++;
}

static void on_row(reader_t *r, int term)
{
    size_t nf = r->field;

    r->field = 0;
    if (term == '\n')
        r->line++; /* the next record starts on the following line */
    if (r->failed || nf == 0)
        return; /* nf == 0: a blank line, or the LF of a CRLF */
    if (!r->header_done) {
        for (int k = 0; k < NCOLS; k++) {
            if (r->col[k] < 0) {
                fail(r, r->rec_line,
                     "missing column \"%s\" in the header (need item or task_id, annotator, label)",
                     col_names[k]);
                return;
            }
        }
        r->ncols = nf;
        r->fs = qr_xmalloc(2 * nf * sizeof(*r->fs));
        r->colk = qr_xmalloc(nf);
        memset(r->colk, -1, nf);
        for (int k = 0; k < NCOLS; k++)
            r->colk[r->col[k]] = (signed char)k;
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
    const val_t *it = &r->val[COL_ITEM], *an = &r->val[COL_ANNOTATOR], *lb = &r->val[COL_LABEL];
    add_row(r, it->s, it->len, it->h, an->s, an->len, an->h, lb->s, lb->len, lb->h);
}

/* libcsv's side: its callbacks go straight to on_field() and on_row(). */
typedef struct {
    reader_t *r;
    struct csv_parser p;
    int row_lf; /* the last callback was the end of a row at a line feed */
} slow_t;

static void slow_field(void *data, size_t len, void *ctx)
{
    slow_t *sl = ctx;

    sl->row_lf = 0;
    on_field(sl->r, data, len, len ? scan_field(data, len) : 0);
}

static void slow_row(int term, void *ctx)
{
    slow_t *sl = ctx;

    sl->row_lf = term == '\n';
    on_row(sl->r, term);
}

/* Feeds s[0..n) to libcsv; 0, or the csv_error() code. */
static int slow_feed(slow_t *sl, const char *s, size_t n)
{
    if (n && csv_parse(&sl->p, s, n, slow_field, slow_row, sl) != n)
        return csv_error(&sl->p) ? csv_error(&sl->p) : CSV_EPARSE;
    return 0;
}

/* Byte classes of the fast path. */
enum { C_PLAIN, C_COMMA, C_QUOTE, C_HIGH, C_STOP };

static const unsigned char cls[256] = {
    [0] = C_STOP,    ['\r'] = C_STOP,          ['\n'] = C_STOP, [','] = C_COMMA,
    ['"'] = C_QUOTE, [0x80 ... 0xff] = C_HIGH, /* a GNU C range, as gcc and clang take */
};

static inline int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Splits a plain line p[0..end) (no line feed, no final CR) into its fields
 * (start and end of each into r->fs), a byte at a time: the number of fields,
 * or 0 if the line is not plain. *hi is set when a byte is 0x80 or above.
 */
static size_t split_bytes(reader_t *r, const unsigned char *p, const unsigned char *end,
                          unsigned *hi)
{
    const char **fs = r->fs;
    size_t nf = 0;

    for (;;) {
        const unsigned char *q = p, *f0 = p, *f1;
        if (nf == r->ncols)
            return 0; /* too many fields */
        if (q < end && *q == '"') {
            /* Quoted, nothing to unquote: "..." then a comma or the end. */
            for (q++; q < end; q++) {
                unsigned c = cls[*q];
                if (c == C_PLAIN || c == C_COMMA)
                    continue;
                if (c == C_HIGH)
                    *hi = 1;
                else
                    break;
            }
            if (q == end || *q != '"')
                return 0;
            f0 = p + 1;
            f1 = q++;
            if (q < end && *q != ',')
                return 0;
        } else {
            for (; q < end; q++) {
                unsigned c = cls[*q];
                if (c == C_PLAIN)
                    continue;
                if (c == C_COMMA)
                    break;
                if (c != C_HIGH)
                    return 0; /* a quote inside, a CR or a NUL */
                *hi = 1;
            }
            f1 = q;
            if (f1 > f0 && (is_blank((char)f0[0]) || is_blank((char)f1[-1])))
                return 0; /* libcsv trims */
        }
        fs[2 * nf] = (const char *)f0;
        fs[2 * nf + 1] = (const char *)f1;
        nf++;
        if (q == end)
            return nf;
        p = q + 1; /* past the comma; a comma last means an empty field last */
    }
}

/*
 * The rest of the fast path, once a line s[0..len) (no line feed, no final CR)
 * is split into r->fs as nf plain fields; hi says a byte is 0x80 or above.
 * 1 if done (judgement added, or its error recorded as libcsv's path would),
 * 0 if the line must go to libcsv, nothing done.
 */
static int fast_fields(reader_t *r, size_t nf, unsigned hi, const char *s, size_t len)
{
    const char **fs = r->fs;

    if (nf != r->ncols)
        return 0;
    /* Commas and quotes are ASCII: the line is valid UTF-8 if and only if
     * every field is. */
    if (hi && !qr_agreement_utf8_valid(s, len))
        return 0;
    const char *v[NCOLS];
    size_t n[NCOLS];
    for (int k = 0; k < NCOLS; k++) {
        v[k] = fs[2 * r->col[k]];
        n[k] = (size_t)(fs[2 * r->col[k] + 1] - v[k]);
        if (n[k] && v[k][0] == '\'') {
            size_t skip = qr_csv_cell_value(v[k], n[k]);
            v[k] += skip;
            n[k] -= skip;
        }
        if (n[k] == 0)
            return 0; /* an empty value: libcsv's path says which */
    }
    r->rec_line = r->line;
    add_row(r, v[COL_ITEM], n[COL_ITEM], 0, v[COL_ANNOTATOR], n[COL_ANNOTATOR], 0, v[COL_LABEL],
            n[COL_LABEL], 0);
    r->line++;
    return 1;
}

/*
 * The fast path for one data line s[0..e) (e at its line feed), a byte at a
 * time: 1 if it was plain (see the top of the file) and is done, 0 if it must
 * go to libcsv, nothing done.
 */
static int fast_line(reader_t *r, const char *s, const char *e)
{
    const unsigned char *p = (const unsigned char *)s, *end = (const unsigned char *)e;
    unsigned hi = 0;

    if (end > p && end[-1] == '\r')
        end--;
    if (end == p) { /* blank: a row of no fields */
        r->line++;
        return 1;
    }
    size_t nf = split_bytes(r, p, end, &hi);
    return nf && fast_fields(r, nf, hi, s, (size_t)(end - p));
}

#ifdef __SSE2__
/*
 * The fast path sixteen bytes at a time (SSE2, which every x86-64 has), for a
 * line of at most 63 bytes before its line feed without quotes, CRs (but that
 * of a CRLF) or NULs: finds the line feed from s on (before stop; *nl, or
 * NULL if it is not in the first 64 bytes) and, if the line is plain, does it
 * as fast_line() would: 1 if done, 0 if not (fast_line() or libcsv then
 * decide). Reads up to 64 bytes from s, which the read buffer has.
 */
static int fast_line_sse2(reader_t *r, const char *s, const char *stop, const char **nl)
{
    const __m128i lf = _mm_set1_epi8('\n'), comma = _mm_set1_epi8(','), quote = _mm_set1_epi8('"'),
                  cr = _mm_set1_epi8('\r'), zero = _mm_setzero_si128(), sp = _mm_set1_epi8(' '),
                  tab = _mm_set1_epi8('\t');
    uint64_t m_lf = 0, m_comma = 0, m_bad = 0, m_blank = 0, m_high = 0;
    size_t avail = (size_t)(stop - s);

    for (unsigned off = 0; off < 64; off += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + off));
        m_lf |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)) << off;
        m_comma |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)) << off;
        m_bad |= (uint64_t)(unsigned)_mm_movemask_epi8(
                     _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, cr)),
                                  _mm_cmpeq_epi8(v, zero)))
                 << off;
        m_blank |= (uint64_t)(unsigned)_mm_movemask_epi8(
                       _mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, tab)))
                   << off;
        m_high |= (uint64_t)(unsigned)_mm_movemask_epi8(v) << off;
        if (m_lf)
            break;
    }
    if (avail < 64)
        m_lf &= (UINT64_C(1) << avail) - 1; /* past stop: not read in */
    if (!m_lf)
        return 0;
    size_t len = (size_t)__builtin_ctzll(m_lf);
    *nl = s + len;
    if (len && s[len - 1] == '\r')
        len--;
    if (len == 0) { /* blank: a row of no fields */
        r->line++;
        return 1;
    }
    uint64_t valid = (UINT64_C(1) << len) - 1;
    m_comma &= valid;
    if (m_bad & valid)
        return 0;
    /* A space or tab first or last in a field: libcsv trims it. */
    if (m_blank & valid & (m_comma << 1 | 1 | m_comma >> 1 | UINT64_C(1) << (len - 1)))
        return 0;
    const char **fs = r->fs;
    size_t nf = 0;
    fs[0] = s;
    while (m_comma) {
        size_t c = (size_t)__builtin_ctzll(m_comma);
        m_comma &= m_comma - 1;
        if (nf + 1 == r->ncols)
            return 0; /* too many fields */
        fs[2 * nf + 1] = s + c;
        fs[2 * nf + 2] = s + c + 1;
        nf++;
    }
    fs[2 * nf + 1] = s + len;
    return fast_fields(r, nf + 1, (m_high & valid) != 0, s, len);
}
#endif

int qr_agr_read_csv_mode(FILE *f, qr_agreement_t *a, char *err, size_t errlen, int fast)
{
    reader_t r;
    slow_t sl;
    char *buf;
    size_t cap = READ_CHUNK, have = 0;
    int first = 1, code = 0, in_record = 0;
    enum { END_OK, END_PARSE, END_READ, END_STOPPED } end = END_OK;

    memset(&r, 0, sizeof(r));
    r.a = a;
    r.err = err;
    r.errlen = errlen;
    r.line = 1;
    r.rec_line = 1;
    r.tab[COL_ITEM] = &a->items;
    r.tab[COL_ANNOTATOR] = &a->annotators;
    r.tab[COL_LABEL] = &a->labels;
    for (int k = 0; k < NCOLS; k++)
        r.col[k] = -1;
    if (errlen)
        err[0] = '\0';
    memset(&sl, 0, sizeof(sl));
    sl.r = &r;
    if (csv_init(&sl.p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0) {
        fail(&r, 1, "out of memory");
        return -1;
    }

    /* buf[0..have) is the start of a line (or, past the fast path, anything
     * libcsv has not seen yet) that the next fread continues. */
    buf = qr_xcalloc(1, cap + READ_SLACK);
    for (;;) {
        if (r.failed) {
            end = END_STOPPED;
            break;
        }
        if (cap - have < READ_CHUNK / 2) {
            cap *= 2;
            buf = qr_xrealloc(buf, cap + READ_SLACK);
            memset(buf + cap, 0, READ_SLACK);
        }
        size_t got = fread(buf + have, 1, cap - have, f);
        if (got == 0) {
            if (ferror(f)) {
                end = END_READ;
                code = errno;
            }
            break;
        }
        const char *s = buf, *stop = buf + have + got;
        if (first) {
            first = 0;
            if (got >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3;
        }
        if (!fast) {
            if ((code = slow_feed(&sl, s, (size_t)(stop - s))) != 0)
                end = END_PARSE;
            have = 0;
            if (end != END_OK)
                break;
            continue;
        }
        /* Whole lines: plain ones here, the others (and the header, and the
         * lines of a record libcsv holds part of) to libcsv. */
        while (!r.failed && s < stop) {
            const char *nl = NULL;
#ifdef __SSE2__
            if (!in_record && r.header_done && fast_line_sse2(&r, s, stop, &nl)) {
                s = nl + 1;
                continue;
            }
#endif
            if (!nl && !(nl = memchr(s, '\n', (size_t)(stop - s))))
                break;
            if (in_record || !r.header_done || !fast_line(&r, s, nl)) {
                sl.row_lf = 0;
                if ((code = slow_feed(&sl, s, (size_t)(nl + 1 - s))) != 0) {
                    end = END_PARSE;
                    break;
                }
                /* The line feed ended the record, or it is inside a quoted
                 * field and libcsv holds part of the record. */
                in_record = !sl.row_lf;
            }
            s = nl + 1;
        }
        if (end != END_OK)
            break;
        have = (size_t)(stop - s);
        memmove(buf, s, have);
    }
    /* What is left (a last line without a line feed, the part of a line
     * before a read error) goes to libcsv, then how parsing ended. */
    if (!r.failed && end != END_PARSE && (code = slow_feed(&sl, buf, have)) != 0)
        end = END_PARSE;
    free(buf);

    /* How parsing ended, judged after every callback before it, and only if
     * none of them failed (fail() keeps the first). */
    if (end == END_PARSE) {
        /* The bad byte is in the record after the last completed row. */
        if (code == CSV_EPARSE)
            fail(&r, r.field ? r.rec_line : r.line,
                 "malformed quoting in the record starting on this line: a quote inside an "
                 "unquoted field, or text after a closing quote (a literal quote is written "
                 "\"\" inside a quoted field)");
        else
            fail(&r, r.line, "%s", csv_strerror(code));
    } else if (end == END_READ) {
        fail(&r, r.line, "read error: %s", strerror(code));
    } else if (end == END_OK && !r.failed && csv_fini(&sl.p, slow_field, slow_row, &sl) != 0) {
        fail(&r, r.field ? r.rec_line : r.line,
             "unterminated quoted field in the record starting on this line");
    }
    if (!r.failed && !r.header_done)
        fail(&r, 1, "empty file: expected a header row naming item, annotator and label");

    csv_free(&sl.p);
    free(r.seg);
    free(r.fs);
    free(r.colk);
    for (int k = 0; k < NCOLS; k++)
        free(r.val[k].s);
    return r.failed ? -(int)(r.fail_line > INT32_MAX ? INT32_MAX : r.fail_line) : 0;
}

int qr_agreement_read_csv(FILE *f, qr_agreement_t *a, char *err, size_t errlen)
{
    return qr_agr_read_csv_mode(f, a, err, errlen, 1);
}
