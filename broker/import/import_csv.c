/*
 * import_csv.c - CSV import bodies to tasks (see import.h).
 *
 * RFC 4180 through Debian's libcsv in strict mode. The header names the
 * fields; every row becomes a task whose data is an object of header ->
 * cell text. Three columns are not data: `prediction` (the model's label),
 * `prediction_score` (its confidence, a number) and `gold` (the known
 * answer), as the JSONL fields of the same names. libcsv counts no lines,
 * so it runs with CSV_REPALL_NL (every unquoted line feed ends a row; blank
 * lines are rows of no fields) and line feeds inside quoted fields are
 * counted here: every error names the line where its record starts.
 */
#include <csv.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h" /* qr_agreement_utf8_valid */
#include "import.h"
#include "import_int.h"

#define MAX_COLUMNS 1000
/* Bytes of body handed to libcsv at a time: a parse that failed stops
 * within this much of where it failed. */
#define CHUNK_BYTES (64u << 10)
/* A row's member in jansson's object, beside its text (import_int.h). */
#define MEMBER_COST 160

typedef struct reader_s {
    qr_import_t *imp;
    qr_import_sink_t sink;
    size_t header_cost; /* the column names, held for the whole parse */
    size_t row_cost;    /* the row being read: its object, then its dump */
    const char *stratify_field;
    const qr_import_opts_t *opts; /* labels, external id column (may be NULL) */
    int ext_in_data;              /* the external id column is also data (a chosen one) */
    char **cols;                  /* header names */
    size_t ncols;
    int header_done;
    int pred_col, score_col, gold_col, ext_col; /* -1 when absent */
    json_t *row;                                /* data of the row being read */
    char *pred, *gold, *ext;
    double score;
    size_t field;                 /* fields of the current row so far */
    unsigned long line, rec_line; /* physical lines, from 1 */
    int failed;
    int rc; /* QR_EINVAL, or QR_ETOOBIG over a limit */
    char *err;
    size_t errlen;
    qr_import_emit_fn emit; /* streamed: each task goes here, not to the sink */
    void *emit_arg;
    int emit_failed; /* the failure is emit's: it named the place itself */
    int64_t rows;    /* tasks given to emit */
} reader_t;

static void fail(reader_t *r, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(reader_t *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keeps the first error, a rule violation (QR_IMPORT_EREJECT) in column
 * field of the record being read: "line N: field "F": " and the message. */
static void reject(reader_t *r, const char *field, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = 1;
    r->rc = QR_IMPORT_EREJECT;
    r->imp->fail_line = (int64_t)r->rec_line;
    snprintf(r->imp->fail_field, sizeof r->imp->fail_field, "%s", field);
    int n = snprintf(r->err, r->errlen, "line %lu: field \"%s\": ", r->rec_line, field);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

/* Keeps the first error: "line N: " and the message. */
static void fail(reader_t *r, unsigned long line, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = 1;
    r->rc = QR_EINVAL;
    r->imp->fail_line = (int64_t)line;
    int n = snprintf(r->err, r->errlen, "line %lu: ", line);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static int column_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

static void on_field(void *s, size_t len, void *arg)
{
    reader_t *r = arg;
    const char *p = s;
    if (r->failed)
        return;
    if (r->field == 0)
        r->rec_line = r->line;
    for (size_t i = 0; i < len; i++)
        r->line += p[i] == '\n';
    size_t k = r->field++;
    if (memchr(p, '\0', len)) {
        fail(r, r->rec_line, "field %zu contains a NUL byte", k + 1);
        return;
    }
    if (!qr_agreement_utf8_valid(p, len)) {
        fail(r, r->rec_line, "field %zu is not valid UTF-8", k + 1);
        return;
    }
    size_t cost = MEMBER_COST + 3 * len;
    if (!r->header_done)
        r->header_cost += cost;
    else
        r->row_cost += cost;
    if (!r->failed && qr_import_sink_admit(&r->sink, r->header_cost + r->row_cost,
                                           (int64_t)r->rec_line, r->err, r->errlen) < 0) {
        r->failed = 1;
        r->rc = QR_ETOOBIG;
        return;
    }
    if (!r->header_done) {
        if (k >= MAX_COLUMNS) {
            fail(r, r->rec_line, "more than %d columns", MAX_COLUMNS);
            return;
        }
        if (len == 0) {
            fail(r, r->rec_line, "column %zu of the header has no name", k + 1);
            return;
        }
        for (size_t j = 0; j < k; j++) {
            if (column_is(r->cols[j], p, len)) {
                fail(r, r->rec_line, "the header names column \"%s\" twice", r->cols[j]);
                return;
            }
        }
        r->cols = qr_xrealloc(r->cols, (k + 1) * sizeof *r->cols);
        r->cols[k] = qr_xstrndup(p, len);
        r->ncols = k + 1;
        if (column_is("prediction", p, len))
            r->pred_col = (int)k;
        else if (column_is("prediction_score", p, len))
            r->score_col = (int)k;
        else if (column_is("gold", p, len))
            r->gold_col = (int)k;
        else if (r->opts && r->opts->external_id_key ? column_is(r->opts->external_id_key, p, len)
                                                     : column_is("external_id", p, len))
            r->ext_col = (int)k;
        return;
    }
    if (k >= r->ncols)
        return; /* a ragged row: reported at its end */
    if ((int)k == r->pred_col || (int)k == r->gold_col) {
        /* A label: trimmed, and among the project's. */
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char why[320];
        /* A schema project's labels need the whole row (a span field's
         * text): checked in on_row. */
        if (len && !(r->opts && r->opts->schema) &&
            qr_import_check_label(r->opts, p, len, why, sizeof why) < 0) {
            reject(r, r->cols[k], "%s", why);
            return;
        }
        char **to = (int)k == r->pred_col ? &r->pred : &r->gold;
        *to = len ? qr_xstrndup(p, len) : NULL;
    } else if ((int)k == r->ext_col) {
        if (len > QR_IMPORT_MAX_EXTERNAL_ID) {
            fail(r, r->rec_line, "%s is over %d bytes", r->cols[k], QR_IMPORT_MAX_EXTERNAL_ID);
            return;
        }
        r->ext = len ? qr_xstrndup(p, len) : NULL;
        if (r->ext_in_data)
            json_object_set_new(r->row, r->cols[k], json_stringn(p, len));
    } else if ((int)k == r->score_col) {
        if (len == 0)
            return;
        char buf[64], *end;
        if (len >= sizeof buf) {
            reject(r, "prediction_score", "is not a number in [0, 1]");
            return;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        double v = strtod(buf, &end);
        if (end == buf || *end || !isfinite(v)) {
            reject(r, "prediction_score", "\"%s\" is not a number in [0, 1]", buf);
            return;
        }
        char why[128];
        if (qr_import_check_score(v, why, sizeof why) < 0) {
            reject(r, "prediction_score", "%s", why);
            return;
        }
        r->score = v;
    } else {
        json_object_set_new(r->row, r->cols[k], json_stringn(p, len));
    }
}

static void row_reset(reader_t *r)
{
    r->row_cost = 0;
    json_object_clear(r->row);
    free(r->pred);
    free(r->gold);
    free(r->ext);
    r->pred = r->gold = r->ext = NULL;
    r->score = NAN;
}

/* A schema project's gold and prediction cells: a labels object as JSON
 * text (or a bare choice for a schema of one choice field), checked with
 * the row's data and replaced by its canonical text. 0, or -1 rejected. */
static int schema_cells(reader_t *r)
{
    char **cells[2] = {&r->gold, &r->pred};
    int cols[2] = {r->gold_col, r->pred_col};
    for (int i = 0; i < 2; i++) {
        if (!*cells[i])
            continue;
        json_t *v = json_loads(*cells[i], JSON_DECODE_ANY, NULL);
        if (!json_is_object(v)) {
            json_decref(v);
            v = json_string(*cells[i]);
        }
        char why[384];
        char *canonical =
            v ? qr_import_schema_labels(r->opts, v, r->row, i == 1, why, sizeof why) : NULL;
        if (!v)
            snprintf(why, sizeof why, "is not valid UTF-8");
        json_decref(v);
        if (!canonical) {
            reject(r, r->cols[cols[i]], "%s", why);
            return -1;
        }
        free(*cells[i]);
        *cells[i] = canonical;
    }
    return 0;
}

static void on_row(int term, void *arg)
{
    reader_t *r = arg;
    size_t nf = r->field;
    r->field = 0;
    if (term == '\n')
        r->line++; /* the next record starts on the following line */
    if (r->failed || nf == 0)
        return; /* nf == 0: a blank line, or the LF of a CRLF */
    if (!r->header_done) {
        r->header_done = 1;
        return;
    }
    if (nf != r->ncols) {
        fail(r, r->rec_line, "row has %zu fields but the header has %zu", nf, r->ncols);
        row_reset(r);
        return;
    }
    if (r->opts && r->opts->schema && schema_cells(r) < 0) {
        row_reset(r);
        return;
    }
    size_t transient = r->header_cost + r->row_cost;
    qr_import_task_t one = {.score = NAN, .where = (int64_t)r->rec_line};
    qr_import_task_t *t =
        r->emit ? &one
                : qr_import_sink_add(&r->sink, transient, (int64_t)r->rec_line, r->err, r->errlen);
    if (!t) {
        r->failed = 1;
        r->rc = QR_ETOOBIG;
        row_reset(r);
        return;
    }
    t->data = json_dumps(r->row, JSON_COMPACT);
    t->score = r->score;
    if (r->pred || !isnan(r->score)) {
        json_t *pr = json_object();
        if (r->pred && r->opts && r->opts->schema)
            json_object_set_new(pr, "labels", json_loads(r->pred, 0, NULL));
        else if (r->pred)
            json_object_set_new(pr, "label", json_string(r->pred));
        if (!isnan(r->score))
            json_object_set_new(pr, "score", json_real(r->score));
        t->prediction = json_dumps(pr, JSON_COMPACT);
        json_decref(pr);
    }
    t->gold = r->gold;
    r->gold = NULL;
    t->external_id = r->ext;
    r->ext = NULL;
    json_t *st = r->stratify_field ? json_object_get(r->row, r->stratify_field) : NULL;
    t->stratum = st ? qr_xstrdup(json_string_value(st)) : NULL;
    if (!t->data) {
        fail(r, r->rec_line, "cannot encode the task");
    } else if (r->emit) {
        int rc = r->emit(r->emit_arg, t, (int64_t)r->rec_line, r->err, r->errlen);
        r->rows++;
        if (rc < 0) {
            r->failed = r->emit_failed = 1;
            r->rc = rc;
        }
    } else if (qr_import_sink_charge(&r->sink, transient, (int64_t)r->rec_line, r->err, r->errlen) <
               0) {
        r->failed = 1;
        r->rc = QR_ETOOBIG;
    }
    if (r->emit)
        qr_import_task_clear(&one);
    row_reset(r);
}

int qr_import_parse_csv(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                        char *err, size_t errlen)
{
    qr_import_opts_t opts = {.stratify_field = stratify_field, .delimiter = ','};
    return qr_import_parse_csv_bounded(body, len, &opts, NULL, imp, err, errlen);
}

int qr_import_parse_csv_bounded(const char *body, size_t len, const qr_import_opts_t *opts,
                                const qr_import_limits_t *limits, qr_import_t *imp, char *err,
                                size_t errlen)
{
    reader_t r = {.imp = imp,
                  .stratify_field = opts ? opts->stratify_field : NULL,
                  .opts = opts,
                  .ext_in_data = opts && opts->external_id_key &&
                                 strcmp(opts->external_id_key, "external_id") != 0,
                  .pred_col = -1,
                  .score_col = -1,
                  .gold_col = -1,
                  .ext_col = -1,
                  .row = json_object(),
                  .score = NAN,
                  .line = 1,
                  .rec_line = 1,
                  .err = err,
                  .errlen = errlen};
    qr_import_sink_init(&r.sink, imp, limits, "line");
    if (len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3)) { /* a UTF-8 byte-order mark */
        body += 3;
        len -= 3;
    }
    struct csv_parser p;
    if (!r.row || csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0) {
        snprintf(err, errlen, "out of memory");
        json_decref(r.row);
        return QR_EINVAL;
    }
    char delim = opts && opts->delimiter ? opts->delimiter : qr_import_detect_delimiter(body, len);
    csv_set_delim(&p, (unsigned char)delim);
    size_t done = 0;
    while (done < len && !r.failed) {
        size_t n = len - done < CHUNK_BYTES ? len - done : CHUNK_BYTES;
        if (csv_parse(&p, body + done, n, on_field, on_row, &r) != n)
            break;
        done += n;
    }
    if (r.failed) {
        /* a row's error, or a limit: err says which */
    } else if (done < len) {
        if (csv_error(&p) == CSV_EPARSE)
            fail(&r, r.field ? r.rec_line : r.line,
                 "malformed quoting: a quote inside an unquoted field, or text after a "
                 "closing quote (a literal quote is written \"\" inside a quoted field)");
        else
            fail(&r, r.line, "%s", csv_strerror(csv_error(&p)));
    } else if (csv_fini(&p, on_field, on_row, &r) != 0) {
        fail(&r, r.field ? r.rec_line : r.line, "a quoted field is not closed before the end");
    }
    csv_free(&p);
    row_reset(&r);
    json_decref(r.row);
    for (size_t i = 0; i < r.ncols; i++)
        free(r.cols[i]);
    free(r.cols);
    if (!r.failed && !r.header_done)
        snprintf(err, errlen, "the body holds no CSV header");
    else if (!r.failed && imp->n == 0)
        snprintf(err, errlen, "the body holds no task (a header and no rows)");
    else if (!r.failed && opts && opts->external_id_key && r.ext_col < 0)
        snprintf(err, errlen, "the header has no column \"%s\" (the external id column)",
                 opts->external_id_key);
    else if (!r.failed && qr_import_check_external_ids(imp, "line", err, errlen) == 0)
        return 0;
    qr_import_free(imp);
    return r.failed && r.rc ? r.rc : QR_EINVAL;
}

/* --- a CSV body as it streams in (import_stream.c) ----------------------------------------- */

struct qr_import_csv_s {
    reader_t r;
    qr_import_t held; /* the sink's array: empty (every task goes to emit) */
    struct csv_parser p;
    int started; /* the header line was seen: the delimiter is set */
    char delim;  /* the caller's, or 0: detected from the header line */
    int ended;   /* the last batch was read */
};

qr_import_csv_t *qr_import_csv_new(const qr_import_opts_t *opts, const qr_import_limits_t *limits,
                                   qr_import_emit_fn emit, void *arg)
{
    qr_import_csv_t *cs = qr_xcalloc(1, sizeof *cs);
    reader_t *r = &cs->r;
    r->imp = &cs->held;
    r->stratify_field = opts ? opts->stratify_field : NULL;
    r->opts = opts;
    r->ext_in_data = opts && opts->external_id_key && strcmp(opts->external_id_key, "external_id");
    r->pred_col = r->score_col = r->gold_col = r->ext_col = -1;
    r->row = json_object();
    r->score = NAN;
    r->line = r->rec_line = 1;
    r->emit = emit;
    r->emit_arg = arg;
    cs->delim = opts ? opts->delimiter : 0;
    qr_import_sink_init(&r->sink, &cs->held, limits, "line");
    if (!r->row || csv_init(&cs->p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0) {
        fprintf(stderr, "quorum: out of memory\n");
        abort();
    }
    return cs;
}

void qr_import_csv_free(qr_import_csv_t *cs)
{
    if (!cs)
        return;
    csv_free(&cs->p);
    row_reset(&cs->r);
    json_decref(cs->r.row);
    for (size_t i = 0; i < cs->r.ncols; i++)
        free(cs->r.cols[i]);
    free(cs->r.cols);
    qr_import_free(&cs->held);
    free(cs);
}

/* Where the header line ends (its first line feed or carriage return
 * outside quotes) in len bytes at p, or NULL. */
static const char *header_end(const char *p, size_t len)
{
    int quoted = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (!quoted && (p[i] == '\n' || p[i] == '\r'))
            return p + i;
    }
    return NULL;
}

int qr_import_csv_feed(qr_import_csv_t *cs, const char *data, size_t len, size_t *taken, int last,
                       char *err, size_t errlen, int64_t *fail_line, char *fail_field,
                       size_t fieldlen)
{
    reader_t *r = &cs->r;
    r->err = err;
    r->errlen = errlen;
    *taken = 0;
    if (!cs->started) {
        if (!last && !header_end(data, len))
            return 0; /* the header line is not whole yet: the caller keeps the bytes */
        cs->started = 1;
        if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) { /* a UTF-8 byte-order mark */
            data += 3;
            len -= 3;
            *taken = 3;
        }
        char delim = cs->delim ? cs->delim : qr_import_detect_delimiter(data, len);
        csv_set_delim(&cs->p, (unsigned char)delim);
    }
    size_t done = 0;
    while (done < len && !r->failed) {
        size_t n = len - done < CHUNK_BYTES ? len - done : CHUNK_BYTES;
        if (csv_parse(&cs->p, data + done, n, on_field, on_row, r) != n)
            break;
        done += n;
    }
    *taken += done;
    if (!r->failed && done < len) {
        if (csv_error(&cs->p) == CSV_EPARSE)
            fail(r, r->field ? r->rec_line : r->line,
                 "malformed quoting: a quote inside an unquoted field, or text after a "
                 "closing quote (a literal quote is written \"\" inside a quoted field)");
        else
            fail(r, r->line, "%s", csv_strerror(csv_error(&cs->p)));
    } else if (!r->failed && last && csv_fini(&cs->p, on_field, on_row, r) != 0) {
        fail(r, r->field ? r->rec_line : r->line, "a quoted field is not closed before the end");
    }
    int rc = 0;
    if (r->failed) {
        rc = r->rc ? r->rc : QR_EINVAL;
    } else if (last) {
        cs->ended = 1;
        rc = QR_EINVAL;
        cs->held.fail_line = 0;
        if (!r->header_done)
            snprintf(err, errlen, "the body holds no CSV header");
        else if (r->sink.imp->n == 0 && !r->rows)
            snprintf(err, errlen, "the body holds no task (a header and no rows)");
        else if (r->opts && r->opts->external_id_key && r->ext_col < 0)
            snprintf(err, errlen, "the header has no column \"%s\" (the external id column)",
                     r->opts->external_id_key);
        else
            rc = 0;
    }
    if (rc < 0 && !r->emit_failed) {
        *fail_line = cs->held.fail_line;
        snprintf(fail_field, fieldlen, "%s", cs->held.fail_field);
    }
    return rc;
}
