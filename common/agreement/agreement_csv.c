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
#include "agreement_internal.h"

#include <csv.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text_out.h"
#include "util.h"

#define READ_CHUNK (256 * 1024) /* bytes per fread */

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

static void on_row(reader_t *r, int term)
{
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
                     "missing column \"%s\" in the header (need item or task_id, annotator, label)",
                     col_names[k]);
                return;
            }
        }
        r->ncols = nf;
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
    int rc =
        qr_agr_add_valid(r->a, it->s, it->len, it->h, an->s, an->len, an->h, lb->s, lb->len, lb->h);
    if (rc == QR_ECONFLCT) {
        long j = qr_agreement_find(r->a, it->s, it->len, an->s, an->len);
        fail(r, r->rec_line,
             "duplicate judgement: annotator \"%s\" already labeled item \"%s\" on line %lu",
             show(sv[0], an->s, an->len), show(sv[1], it->s, it->len),
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
}

/*
 * Reading runs as a two-stage pipeline. The producer (a second thread) does
 * fread() and libcsv's byte-by-byte parse and logs its callbacks into batches:
 * each field's bytes and length, each row end. The consumer (the calling
 * thread) replays the batches in order through on_field() and on_row() above,
 * which check, intern and add. The callbacks thus see exactly the sequence
 * that a direct csv_parse() would give them, so every result and every error
 * (first in file order wins) is the same; the two halves of the work merely
 * overlap on two cores. If the thread cannot be created, the same code runs
 * both stages in turn on the calling thread.
 */
#define NBATCH      3
#define BATCH_BYTES (512 * 1024) /* field bytes per batch before it is handed over */
#define BATCH_EV    (64 * 1024)  /* events per batch before it is handed over */

enum { END_NONE, END_OK, END_INIT, END_PARSE, END_FINI, END_READ, END_STOPPED };

typedef struct batch_s {
    char *bytes; /* the fields' bytes, back to back */
    size_t used, cap;
    uint64_t *ev; /* len << 4 | flags << 1 for a field, term << 1 | 1 for a row end */
    size_t nev, cap_ev;
    int end;      /* END_*: the last batch says how parsing ended */
    int end_code; /* csv_error() for END_PARSE, errno for END_READ */
    struct batch_s *next;
} batch_t;

typedef struct {
    FILE *f;
    reader_t *r; /* the consumer's state (used directly when !threaded) */
    int threaded;
    pthread_mutex_t mu;
    pthread_cond_t cv_full, cv_free;
    batch_t *full_head, *full_tail; /* FIFO of filled batches */
    batch_t *free_list;
    atomic_int stop; /* set by the consumer once it failed: parsing can end */
    batch_t *cur;    /* the producer's batch being filled */
    batch_t all[NBATCH];
} pipe_t;

static void replay(reader_t *r, const batch_t *b)
{
    size_t off = 0;

    for (size_t e = 0; e < b->nev && !r->failed; e++) {
        uint64_t v = b->ev[e];
        if (v & 1) {
            on_row(r, (int)(v >> 1));
        } else {
            on_field(r, b->bytes + off, (size_t)(v >> 4), (unsigned)(v >> 1) & 7);
            off += (size_t)(v >> 4);
        }
    }
}

/* Producer: hands the current batch over and, unless it is the last, takes
 * an empty one. */
static void submit(pipe_t *pp, int last)
{
    batch_t *b = pp->cur;

    if (!pp->threaded) {
        replay(pp->r, b);
        b->used = b->nev = 0;
        return;
    }
    pthread_mutex_lock(&pp->mu);
    b->next = NULL;
    if (pp->full_tail)
        pp->full_tail->next = b;
    else
        pp->full_head = b;
    pp->full_tail = b;
    pthread_cond_signal(&pp->cv_full);
    if (last) {
        pthread_mutex_unlock(&pp->mu);
        return;
    }
    while (!pp->free_list)
        pthread_cond_wait(&pp->cv_free, &pp->mu);
    pp->cur = pp->free_list;
    pp->free_list = pp->cur->next;
    pthread_mutex_unlock(&pp->mu);
    pp->cur->used = pp->cur->nev = 0;
    pp->cur->end = END_NONE;
}

static inline void log_event(pipe_t *pp, uint64_t v)
{
    batch_t *b = pp->cur;

    if (b->nev == b->cap_ev) {
        b->cap_ev *= 2;
        b->ev = qr_xrealloc(b->ev, b->cap_ev * sizeof(*b->ev));
    }
    b->ev[b->nev++] = v;
    if (b->nev >= BATCH_EV || b->used >= BATCH_BYTES)
        submit(pp, 0);
}

static void log_field(void *data, size_t len, void *ctx)
{
    pipe_t *pp = ctx;
    batch_t *b = pp->cur;

    if (b->cap - b->used < len) {
        while (b->cap - b->used < len)
            b->cap *= 2;
        b->bytes = qr_xrealloc(b->bytes, b->cap);
    }
    unsigned flags = 0;
    if (len) {
        memcpy(b->bytes + b->used, data, len);
        flags = scan_field(data, len);
    }
    b->used += len;
    log_event(pp, (uint64_t)len << 4 | flags << 1);
}

static void log_row(int term, void *ctx)
{
    log_event(ctx, (uint64_t)(unsigned)term << 1 | 1);
}

/* The producer: read, parse, log; the last batch carries how it ended. */
static void *produce(void *arg)
{
    pipe_t *pp = arg;
    struct csv_parser p;
    char *buf = NULL;
    int first = 1, end = END_OK, code = 0;

    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0) {
        end = END_INIT;
        goto out;
    }
    buf = qr_xmalloc(READ_CHUNK);
    for (;;) {
        if (atomic_load_explicit(&pp->stop, memory_order_relaxed) ||
            (!pp->threaded && pp->r->failed)) {
            end = END_STOPPED;
            break;
        }
        size_t got = fread(buf, 1, READ_CHUNK, pp->f);
        if (got == 0) {
            if (ferror(pp->f)) {
                end = END_READ;
                code = errno;
            }
            break;
        }
        const char *s = buf;
        if (first) {
            first = 0;
            if (got >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3, got -= 3;
        }
        if (csv_parse(&p, s, got, log_field, log_row, pp) != got) {
            end = END_PARSE;
            code = csv_error(&p);
            break;
        }
    }
    if (end == END_OK && csv_fini(&p, log_field, log_row, pp) != 0)
        end = END_FINI;
    csv_free(&p);
out:
    free(buf);
    pp->cur->end = end;
    pp->cur->end_code = code;
    if (pp->threaded)
        submit(pp, 1);
    return NULL;
}

int qr_agreement_read_csv(FILE *f, qr_agreement_t *a, char *err, size_t errlen)
{
    reader_t r;
    pipe_t pp;
    pthread_t th;
    int end = END_NONE, code = 0;

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

    memset(&pp, 0, sizeof(pp));
    pp.f = f;
    pp.r = &r;
    atomic_init(&pp.stop, 0);
    for (int i = 0; i < NBATCH; i++) {
        batch_t *b = &pp.all[i];
        b->cap = BATCH_BYTES + 4096;
        b->bytes = qr_xmalloc(b->cap);
        b->cap_ev = BATCH_EV;
        b->ev = qr_xmalloc(b->cap_ev * sizeof(*b->ev));
        b->next = i + 1 < NBATCH ? &pp.all[i + 1] : NULL;
    }
    pp.cur = &pp.all[0];
    pp.free_list = &pp.all[1];
    pthread_mutex_init(&pp.mu, NULL);
    pthread_cond_init(&pp.cv_full, NULL);
    pthread_cond_init(&pp.cv_free, NULL);
    pp.threaded = 1; /* read by the thread: set before it starts */
    if (pthread_create(&th, NULL, produce, &pp) != 0)
        pp.threaded = 0;
    if (pp.threaded) {
        while (end == END_NONE) {
            pthread_mutex_lock(&pp.mu);
            while (!pp.full_head)
                pthread_cond_wait(&pp.cv_full, &pp.mu);
            batch_t *b = pp.full_head;
            pp.full_head = b->next;
            if (!pp.full_head)
                pp.full_tail = NULL;
            pthread_mutex_unlock(&pp.mu);

            replay(&r, b);
            if (r.failed)
                atomic_store_explicit(&pp.stop, 1, memory_order_relaxed);
            end = b->end;
            code = b->end_code;

            pthread_mutex_lock(&pp.mu);
            b->next = pp.free_list;
            pp.free_list = b;
            pthread_cond_signal(&pp.cv_free);
            pthread_mutex_unlock(&pp.mu);
        }
        pthread_join(th, NULL);
    } else {
        produce(&pp);
        replay(&r, pp.cur);
        end = pp.cur->end;
        code = pp.cur->end_code;
    }

    /* How parsing ended, judged as a direct parse would: after every callback
     * before it, and only if none of them failed (fail() keeps the first). */
    if (end == END_INIT) {
        fail(&r, 1, "out of memory");
    } else if (end == END_PARSE) {
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
    } else if (end == END_FINI) {
        fail(&r, r.field ? r.rec_line : r.line,
             "unterminated quoted field in the record starting on this line");
    }
    if (!r.failed && !r.header_done)
        fail(&r, 1, "empty file: expected a header row naming item, annotator and label");

    pthread_mutex_destroy(&pp.mu);
    pthread_cond_destroy(&pp.cv_full);
    pthread_cond_destroy(&pp.cv_free);
    for (int i = 0; i < NBATCH; i++) {
        free(pp.all[i].bytes);
        free(pp.all[i].ev);
    }
    free(r.lines);
    free(r.colk);
    for (int k = 0; k < NCOLS; k++)
        free(r.val[k].s);
    return r.failed ? -(int)(r.fail_line > INT32_MAX ? INT32_MAX : r.fail_line) : 0;
}
