/*
 * import_stream.c - a JSON import (JSON lines, or a JSON array read
 * element by element) turned into COPY rows batch by batch as its body
 * arrives (see import.h, "Streamed imports"): what is
 * held is the batch in hand, plus what the end of the import needs (the
 * external ids, to find duplicates; the imported annotations, written after
 * the COPY), never the body or its tasks.
 */
#include "import.h"
#include "import_int.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One external id seen, and the line it was on. */
typedef struct seen_s {
    char *id; /* NULL: a free slot */
    int64_t line;
} seen_t;

/* Where a JSON array's reading is. */
enum { A_OPEN, A_ELEMENT, A_AFTER, A_CLOSED };

typedef struct priv_s {
    qr_import_opts_t opts; /* strings copied */
    char **labels;
    qr_import_schema_t *schema; /* a copy of opts->schema's */
    qr_import_policy_t pol;     /* strings copied */
    size_t max_bytes;
    int64_t max_tasks;
    uint64_t rng;
    EVP_MD_CTX *sha; /* over every byte of the body, in order */
    seen_t *seen;    /* open addressing, a power of two slots */
    size_t nseen, cap;
    qr_buf_t carry;            /* bytes received and not yet read (an unfinished task) */
    size_t pos;                /* where reading is in carry */
    int format;                /* 0 until the first non-blank byte says */
    int array;                 /* a JSON array, else JSON lines */
    int phase;                 /* the array: A_* */
    int64_t elements;          /* the array's tasks so far */
    size_t scan;               /* the element at pos: bytes scanned so far */
    size_t depth;              /* its containers open */
    int in_string;             /* inside a string of it */
    int escaped;               /* after a backslash there */
    int64_t elem_line;         /* the line it starts on */
    int64_t elem_lines;        /* line feeds in it */
    qr_import_csv_t *csv;      /* a CSV body's reader, or NULL */
    qr_import_limits_t limits; /* for it */
    /* The batch being read: its ids (b_used of them taken) and its rows. */
    const int64_t *b_ids;
    size_t b_nids;
    size_t *b_used;
    qr_buf_t *b_rows;
} priv_t;

static int csv_emit(void *arg, qr_import_task_t *t, int64_t line, char *err, size_t errlen);

static char *dup_or_null(const char *s)
{
    return s ? qr_xstrdup(s) : NULL;
}

qr_import_stream_t *qr_import_stream_new(qr_import_format_t format, const qr_import_opts_t *opts,
                                         const qr_import_limits_t *limits,
                                         const qr_import_policy_t *pol, uint64_t seed)
{
    qr_import_stream_t *s = qr_xcalloc(1, sizeof *s);
    priv_t *p = qr_xcalloc(1, sizeof *p);
    s->priv_ = p;
    if (opts) {
        p->opts = *opts;
        p->opts.stratify_field = dup_or_null(opts->stratify_field);
        p->opts.external_id_key = dup_or_null(opts->external_id_key);
        p->labels = qr_xcalloc((size_t)opts->nlabels + 1, sizeof *p->labels);
        for (int i = 0; i < opts->nlabels; i++)
            p->labels[i] = qr_xstrdup(opts->labels[i]);
        p->opts.labels = p->labels;
        p->schema = opts->schema ? qr_import_schema_new(opts->schema->schema) : NULL;
        p->opts.schema = p->schema;
    }
    p->pol = *pol;
    p->pol.sampling = dup_or_null(pol->sampling);
    p->pol.stratify_field = dup_or_null(pol->stratify_field);
    p->max_bytes = limits ? limits->max_bytes : QR_IMPORT_MAX_BYTES;
    p->max_tasks = limits ? limits->max_tasks : QR_IMPORT_MAX_TASKS;
    p->rng = seed;
    p->limits.max_bytes = p->max_bytes;
    p->limits.max_tasks = p->max_tasks;
    if (format == QR_IMPORT_CSV) {
        s->csv = 1;
        p->csv = qr_import_csv_new(&p->opts, &p->limits, csv_emit, s);
    }
    qr_buf_init(&p->carry);
    p->sha = EVP_MD_CTX_new();
    if (!p->sha || EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "quorum: SHA-256 failed\n");
        abort();
    }
    qr_buf_init(&s->ann_tasks);
    qr_buf_init(&s->anns);
    return s;
}

void qr_import_stream_free(qr_import_stream_t *s)
{
    if (!s)
        return;
    priv_t *p = s->priv_;
    free((char *)p->opts.stratify_field);
    free((char *)p->opts.external_id_key);
    for (int i = 0; p->labels && i < p->opts.nlabels; i++)
        free(p->labels[i]);
    free(p->labels);
    qr_import_schema_free(p->schema);
    free((char *)p->pol.sampling);
    free((char *)p->pol.stratify_field);
    EVP_MD_CTX_free(p->sha);
    qr_buf_free(&p->carry);
    qr_import_csv_free(p->csv);
    for (size_t i = 0; i < p->cap; i++)
        free(p->seen[i].id);
    free(p->seen);
    free(p);
    qr_buf_free(&s->ann_tasks);
    qr_buf_free(&s->anns);
    free(s);
}

static uint64_t hash_of(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The line that holds id already, or 0 after noting it on line. */
static int64_t seen_add(priv_t *p, const char *id, int64_t line, size_t *held)
{
    if ((p->nseen + 1) * 2 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        seen_t *t = qr_xcalloc(cap, sizeof *t);
        for (size_t i = 0; i < p->cap; i++) {
            if (!p->seen[i].id)
                continue;
            size_t k = (size_t)hash_of(p->seen[i].id) & (cap - 1);
            while (t[k].id)
                k = (k + 1) & (cap - 1);
            t[k] = p->seen[i];
        }
        *held += (cap - p->cap) * sizeof *t;
        free(p->seen);
        p->seen = t;
        p->cap = cap;
    }
    size_t k = (size_t)hash_of(id) & (p->cap - 1);
    for (; p->seen[k].id; k = (k + 1) & (p->cap - 1))
        if (!strcmp(p->seen[k].id, id))
            return p->seen[k].line;
    p->seen[k].id = qr_xstrdup(id);
    p->seen[k].line = line;
    p->nseen++;
    *held += strlen(id) + 1 + 16;
    return 0;
}

/* err: "<unit> N: ..." of a budget overrun. */
static int over_budget(qr_import_stream_t *s, const priv_t *p, const char *unit, int64_t where,
                       int64_t line, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "%s %" PRId64 ": the import is larger than the broker holds at once (%zu bytes "
             "after %" PRId64 " tasks, over a budget of %zu); split it into several imports",
             unit, where, s->held + (p->carry.len - p->pos), s->tasks, p->max_bytes);
    s->fail_line = line;
    return QR_ETOOBIG;
}

/* After the last batch: the digest, and the annotations' closing brackets. */
static int finish(qr_import_stream_t *s, priv_t *p, char *err, size_t errlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(p->sha, md, &mdlen) != 1 || mdlen != 32) {
        fprintf(stderr, "quorum: SHA-256 failed\n");
        abort();
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(s->sha256 + 2 * i, 3, "%02x", md[i]);
    if (s->annotated) {
        qr_buf_appends(&s->ann_tasks, "}");
        qr_buf_appends(&s->anns, "]");
    }
    if (s->tasks == 0 && !p->csv) { /* the CSV reader says it in its words */
        snprintf(err, errlen, p->array ? "the array holds no task" : "the body holds no task");
        return QR_EINVAL;
    }
    return 0;
}

/* One task read (t, still the caller's) into rows with the next id: its
 * external id checked and kept, its annotations kept for the end. */
static int emit_task(qr_import_stream_t *s, priv_t *p, const qr_import_task_t *t, int64_t where,
                     int64_t line, char *err, size_t errlen)
{
    const char *unit = p->array ? "task" : "line";
    if (p->max_tasks && s->tasks >= p->max_tasks) {
        snprintf(err, errlen,
                 "%s %" PRId64 ": more than %" PRId64
                 " tasks in one import; split it into several imports",
                 unit, where, p->max_tasks);
        s->fail_line = line;
        return QR_ETOOBIG;
    }
    if (t->external_id) {
        int64_t before = seen_add(p, t->external_id, where, &s->held);
        if (before) {
            snprintf(err, errlen,
                     "%s %" PRId64 ": external_id \"%.200s\" is also on %s %" PRId64
                     "; each task's external_id must be unique",
                     unit, where, t->external_id, unit, before);
            s->fail_line = 0; /* as the whole-body parse answers it: no line field */
            return QR_EINVAL;
        }
    }
    QR_ASSERT(*p->b_used < p->b_nids); /* the caller gave ids enough */
    int64_t id = p->b_ids[(*p->b_used)++];
    if (!s->tasks)
        s->first_id = id;
    s->last_id = id;
    s->tasks++;
    if (t->annotations) {
        /* Written after the COPY (quorum_import_annotations): kept. */
        qr_buf_appendf(&s->ann_tasks, "%s%" PRId64, s->annotated ? "," : "{", id);
        qr_buf_appends(&s->anns, s->annotated ? "," : "[");
        qr_buf_appends(&s->anns, t->annotations);
        s->held += strlen(t->annotations) + 24;
        s->annotated++;
    }
    double pr = qr_import_priority(t, id, p->pol.sampling, &p->rng);
    qr_import_row(t, id, &p->pol, 0, pr, p->b_rows);
    if (p->max_bytes && s->held > p->max_bytes)
        return over_budget(s, p, unit, where, line, err, errlen);
    return 0;
}

/* A CSV task, from the reader (import_csv.c). */
static int csv_emit(void *arg, qr_import_task_t *t, int64_t line, char *err, size_t errlen)
{
    qr_import_stream_t *s = arg;
    return emit_task(s, s->priv_, t, line, line, err, errlen);
}

/* One JSON task (n bytes at q; task or line number where, starting on line
 * line) into rows with the next id. */
static int take_task(qr_import_stream_t *s, priv_t *p, const char *q, size_t n, int64_t where,
                     int64_t line, char *err, size_t errlen)
{
    const char *unit = p->array ? "task" : "line";
    char at[64];
    if (p->array)
        snprintf(at, sizeof at, "task %" PRId64 " (line %" PRId64 ")", where, line);
    else
        snprintf(at, sizeof at, "line %" PRId64, where);
    if (p->max_tasks && s->tasks >= p->max_tasks)
        return emit_task(s, p, NULL, where, line, err, errlen); /* says so, before the parse */
    /* One task's parse state beside what the import holds to its end. */
    if (p->max_bytes && s->held + qr_import_json_cost(q, n) > p->max_bytes)
        return over_budget(s, p, unit, where, line, err, errlen);
    qr_import_task_t t;
    char field[96], why[448];
    int rc = qr_import_parse_task(q, n, &p->opts, &t, field, sizeof field, why, sizeof why);
    if (rc < 0) {
        s->fail_line = line;
        if (rc == QR_IMPORT_EREJECT) {
            snprintf(s->fail_field, sizeof s->fail_field, "%s", field);
            snprintf(err, errlen, "%s: field \"%s\": %s", at, field, why);
            return rc;
        }
        snprintf(err, errlen, "%s: %s", at, why);
        if (!p->array && where == 1 && qr_import_looks_delimited(q, n)) {
            size_t k = strlen(err);
            snprintf(err + k, errlen - k,
                     " (the first line looks like a CSV/TSV header: import it as CSV, "
                     "quorumctl import --format csv or tsv, or Content-Type text/csv)");
        }
        return rc;
    }
    rc = emit_task(s, p, &t, where, line, err, errlen);
    qr_import_task_clear(&t);
    return rc;
}

/* JSON lines: every complete line of the carry (and with last, the line
 * after the final line feed). 1 when the ids ran out first. */
static int feed_lines(qr_import_stream_t *s, priv_t *p, int last, const int64_t *ids, size_t nids,
                      size_t *used, qr_buf_t *rows, char *err, size_t errlen)
{
    while (p->pos < p->carry.len) {
        const char *q = p->carry.data + p->pos, *end = p->carry.data + p->carry.len;
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl && !last)
            return 0; /* the rest comes with the next batch */
        const char *le = nl ? nl : end;
        const char *k = q;
        while (k < le && (*k == ' ' || *k == '\t' || *k == '\r' || *k == '\f' || *k == '\v'))
            k++;
        if (k < le) {
            if (*used == nids)
                return 1;
            int rc = take_task(s, p, q, (size_t)(le - q), s->lines + 1, s->lines + 1, err, errlen);
            if (rc < 0)
                return rc;
        }
        s->lines++;
        p->pos = (size_t)(le - p->carry.data) + (nl ? 1 : 0);
    }
    return 0;
}

/* Skips blanks from pos, counting lines. */
static void skip_blanks(qr_import_stream_t *s, priv_t *p)
{
    for (; p->pos < p->carry.len; p->pos++) {
        char ch = p->carry.data[p->pos];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
            break;
        s->lines += ch == '\n';
    }
}

/* Scans the element at pos from pos + scan on (its state kept between
 * batches): 1 once it ended, scan then its length (at a ',', ']' or '}' at
 * depth 0, or at the end of the carry with last), else 0. Not validated:
 * jansson does that. */
static int scan_element(priv_t *p, int last)
{
    const char *d = p->carry.data + p->pos;
    size_t n = p->carry.len - p->pos;
    for (; p->scan < n; p->scan++) {
        char ch = d[p->scan];
        if (ch == '\n')
            p->elem_lines++;
        if (p->in_string) {
            if (p->escaped)
                p->escaped = 0;
            else if (ch == '\\')
                p->escaped = 1;
            else if (ch == '"')
                p->in_string = 0;
            continue;
        }
        if (ch == '"') {
            p->in_string = 1;
        } else if (ch == '{' || ch == '[') {
            p->depth++;
        } else if (ch == '}' || ch == ']' || ch == ',') {
            if (p->depth == 0)
                return 1;
            if (ch != ',')
                p->depth--;
        }
    }
    return last;
}

/* A JSON array, element by element, in the whole-body parse's words
 * (import.c, parse_array). 1 when the ids ran out first. */
static int feed_array(qr_import_stream_t *s, priv_t *p, int last, const int64_t *ids, size_t nids,
                      size_t *used, qr_buf_t *rows, char *err, size_t errlen)
{
    for (;;) {
        if (p->phase != A_ELEMENT || p->scan == 0)
            skip_blanks(s, p);
        int more = p->pos < p->carry.len;
        char ch = more ? p->carry.data[p->pos] : 0;
        if (p->phase == A_OPEN) { /* after '[': a task, or ']' (none) */
            if (!more)
                goto need;
            if (ch == ']') {
                snprintf(err, errlen, "the array holds no task");
                return QR_EINVAL;
            }
            p->phase = A_ELEMENT;
        } else if (p->phase == A_ELEMENT) {
            if (p->scan == 0 && !p->elem_line) {
                if (!more)
                    goto need;
                p->elem_line = s->lines + 1;
                p->elem_lines = 0;
            }
            if (!scan_element(p, last))
                return 0;
            int64_t task = p->elements + 1;
            if (p->scan == 0) {
                snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 "): %s", task, p->elem_line,
                         p->pos == p->carry.len ? "the array is not closed"
                                                : "a task is missing here");
                return QR_EINVAL;
            }
            if (*used == nids)
                return 1;
            int rc =
                take_task(s, p, p->carry.data + p->pos, p->scan, task, p->elem_line, err, errlen);
            if (rc < 0)
                return rc;
            p->elements++;
            s->lines += p->elem_lines;
            p->pos += p->scan;
            p->scan = 0;
            p->depth = 0;
            p->in_string = p->escaped = 0;
            p->elem_line = 0;
            p->phase = A_AFTER;
        } else if (p->phase == A_AFTER) { /* after a task: ',' or ']' */
            if (!more) {
                if (!last)
                    return 0;
                snprintf(err, errlen,
                         "line %" PRId64 ": the array is not closed after task %" PRId64,
                         s->lines + 1, p->elements);
                return QR_EINVAL;
            }
            if (ch != ',' && ch != ']') {
                snprintf(err, errlen, "line %" PRId64 ": expected ',' or ']' after task %" PRId64,
                         s->lines + 1, p->elements);
                return QR_EINVAL;
            }
            p->phase = ch == ']' ? A_CLOSED : A_ELEMENT;
            p->pos++;
        } else { /* A_CLOSED: blanks only */
            if (more) {
                snprintf(err, errlen, "line %" PRId64 ": text after the array's closing ']'",
                         s->lines + 1);
                return QR_EINVAL;
            }
            return 0;
        }
        continue;
    need:
        if (!last)
            return 0;
        snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 "): the array is not closed",
                 p->elements + 1, s->lines + 1);
        return QR_EINVAL;
    }
}

/* CSV: what the carry holds, once there are ids for every row it may
 * complete (each ends at a line feed or carriage return, the last at the
 * body's end); 1 when there are not. */
static int feed_csv(qr_import_stream_t *s, priv_t *p, int last, size_t nids, char *err,
                    size_t errlen)
{
    size_t rows = 1;
    for (size_t i = p->pos; i < p->carry.len; i++)
        rows += p->carry.data[i] == '\n' || p->carry.data[i] == '\r';
    if (nids < rows)
        return 1;
    size_t taken;
    int rc = qr_import_csv_feed(p->csv, p->carry.data + p->pos, p->carry.len - p->pos, &taken, last,
                                err, errlen, &s->fail_line, s->fail_field, sizeof s->fail_field);
    p->pos += taken;
    if (rc < 0)
        return rc;
    if (p->max_bytes && p->carry.len - p->pos > p->max_bytes)
        /* A header line larger than the budget. */
        return over_budget(s, p, "line", 1, 1, err, errlen);
    return last ? finish(s, p, err, errlen) : 0;
}

int qr_import_stream_batch(qr_import_stream_t *s, const char *data, size_t len, int last,
                           const int64_t *ids, size_t nids, size_t *ids_used, qr_buf_t *rows,
                           char *err, size_t errlen)
{
    priv_t *p = s->priv_;
    *ids_used = 0;
    if (len && EVP_DigestUpdate(p->sha, data, len) != 1) {
        fprintf(stderr, "quorum: SHA-256 failed\n");
        abort();
    }
    /* What was read leaves the carry first: it holds no more than an
     * unfinished task and the batch. */
    if (p->pos > 0) {
        memmove(p->carry.data, p->carry.data + p->pos, p->carry.len - p->pos);
        p->carry.len -= p->pos;
        p->pos = 0;
    }
    if (len)
        qr_buf_append(&p->carry, data, len);
    p->b_ids = ids;
    p->b_nids = nids;
    p->b_used = ids_used;
    p->b_rows = rows;
    if (p->csv)
        return feed_csv(s, p, last, nids, err, errlen);
    if (p->format == 0) {
        /* JSON lines, or (its first non-blank byte a '[') a JSON array. */
        size_t k = 0;
        while (k < p->carry.len && (p->carry.data[k] == ' ' || p->carry.data[k] == '\t' ||
                                    p->carry.data[k] == '\r' || p->carry.data[k] == '\n'))
            k++;
        if (k == p->carry.len && !last)
            return 0;
        p->format = 1;
        if (k < p->carry.len && p->carry.data[k] == '[') {
            p->array = 1;
            s->json_array = 1;
            skip_blanks(s, p);
            p->pos++; /* the '[' */
            p->phase = A_OPEN;
        }
    }
    int rc = p->array ? feed_array(s, p, last, ids, nids, ids_used, rows, err, errlen)
                      : feed_lines(s, p, last, ids, nids, ids_used, rows, err, errlen);
    if (rc == 0 && p->max_bytes && s->held + (p->carry.len - p->pos) > p->max_bytes)
        /* An unfinished task larger than the budget. */
        return over_budget(s, p, p->array ? "task" : "line",
                           p->array ? p->elements + 1 : s->lines + 1, s->lines + 1, err, errlen);
    if (rc != 0 || !last)
        return rc;
    return finish(s, p, err, errlen);
}

char *qr_import_stream_external_ids(const qr_import_stream_t *s)
{
    const priv_t *p = s->priv_;
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "[");
    int first = 1;
    for (size_t i = 0; i < p->cap; i++) {
        if (!p->seen[i].id)
            continue;
        if (!first)
            qr_buf_appends(&b, ",");
        first = 0;
        qr_import_json_string(&b, p->seen[i].id, strlen(p->seen[i].id));
    }
    qr_buf_appends(&b, "]");
    return qr_buf_steal(&b);
}
