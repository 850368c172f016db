/*
 * import.h - turns a JSONL import body into COPY text-format rows for the
 * tasks table, applying the project's overlap policy and sampling order.
 * Pure: no I/O, so all of it is unit-tested. A JSON body may also be read
 * as it streams in (below, "Streamed imports").
 *
 * Import is two steps because task ids come from PostgreSQL in between:
 *   1. qr_import_parse validates every line (all or nothing) and keeps what
 *      each task carries: data, prediction and its score, gold answer,
 *      stratum (the value of the project's stratify field);
 *   2. once n ids are allocated, qr_import_rows decides which tasks get the
 *      higher overlap and each task's priority, and writes the COPY rows.
 */
#ifndef QR_IMPORT_H
#define QR_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct qr_import_task_s {
    char *data;        /* JSON text of the task's data */
    char *prediction;  /* JSON text of the prediction, or NULL */
    double score;      /* prediction score; NAN when none */
    char *gold;        /* gold answer label, or NULL */
    char *stratum;     /* value of the stratify field as text, or NULL */
    char *external_id; /* the row's "external_id" (unique in the project), or NULL */
    char *predictions; /* Label Studio's "predictions" array, kept whole (JSON text), or NULL */
    char *annotations; /* the task's imported annotations, normalized (see below), or NULL */
    int64_t where;     /* line (JSONL, CSV) or task number (JSON array) it came from */
} qr_import_task_t;

/* A task's imported annotations (Label Studio's "annotations") are kept as
 * a JSON array of objects {"label": the single choice or null, "result":
 * the result array as given, "lead_time": seconds or null,
 * "was_cancelled", "ground_truth": booleans, "source_id": the annotation's
 * id there as text or null, "created_at": text or null, "completed_by": the
 * user id there (an integer) or null}; the broker writes them to
 * imported_annotations (sql/0021_import_rules.sql, 0023_source_completed_by.sql). */

typedef struct qr_import_s {
    qr_import_task_t *tasks;
    int64_t n;
    size_t bytes;      /* what the tasks hold, as the budget counts it (see below) */
    size_t peak_bytes; /* the most the parse held at once, output + transient */
    int64_t annotated; /* tasks that carry imported annotations */
    /* Where a failed parse stopped (kept by qr_import_free): the line (from
     * 1; 0 when the failure names none) and, for a rule violation
     * (QR_IMPORT_EREJECT), the field that broke it. */
    int64_t fail_line;
    char fail_field[96];
} qr_import_t;

/* A task that parses but breaks one of the project's rules: a gold answer or
 * a prediction's or annotation's label not among the project's labels, a
 * score outside [0, 1]. The broker answers 422 naming the line and field. */
#define QR_IMPORT_EREJECT (-10101)

/* A label schema project's schema as an import reads labels against it:
 * owned copies, so a parse in the thread pool never shares the project
 * cache's entry (which may be replaced meanwhile). */
typedef struct qr_import_schema_s {
    struct qr_label_schema_s *schema;  /* the schema (label_schema.h) */
    struct qr_label_schema_s *relaxed; /* the same with no field required: predictions */
    struct json_t *fields;             /* its "fields" JSON, for Label Studio's shapes */
} qr_import_schema_t;

/* Copies of schema, or NULL when schema is NULL or the implied schema of a
 * plain label list (such a project reads labels as strings). */
qr_import_schema_t *qr_import_schema_new(const struct qr_label_schema_s *schema);
void qr_import_schema_free(qr_import_schema_t *s);

/* What the project and the request say about one parse. */
typedef struct qr_import_opts_s {
    const char *stratify_field; /* may be NULL */
    char *const *labels;        /* the project's labels; nlabels 0: not checked */
    int nlabels;
    /* A label schema project's schema, or NULL. Then every label an import
     * carries is a labels object checked against it with the task's data
     * (a gold answer, a prediction's "labels"; a Label Studio result mapped
     * onto its fields, ls_result.h) and kept in its canonical text; a bare
     * label is taken only by a schema of one choice field. */
    const qr_import_schema_t *schema;
    const char *external_id_key; /* the key (JSON) or column (CSV) holding the external
                                    id; NULL: "external_id", or a Label Studio task's "id" */
    char delimiter;              /* CSV: the field separator; 0: detected from the header */
} qr_import_opts_t;

/* The CSV delimiter the header line of body uses: of ',', '\t', ';' and '|'
 * the one it holds most often outside quotes (',' when none). */
char qr_import_detect_delimiter(const char *body, size_t len);

/* Whether the first non-blank line of body looks like a delimited header
 * (text with ',', '\t', ';' or '|' that does not start like JSON): the hint
 * given when a JSON import meets CSV. */
int qr_import_looks_delimited(const char *body, size_t len);

/* Bounds on one parse. The budget counts, in bytes: the task array, every
 * string a task keeps (with the allocator's overhead) and a fixed share for
 * the columns its COPY row adds (the output); plus the transient state of
 * the element being parsed, estimated before it is parsed from its length
 * and its count of containers and values (jansson's tree, then its dump).
 * A parse that would go over either bound stops there, with QR_ETOOBIG: it
 * never holds more than max_bytes by that count, and refuses task number
 * max_tasks + 1 as soon as it meets it. The COPY text built later from the output is of the same
 * order. */
typedef struct qr_import_limits_s {
    size_t max_bytes;  /* 0: no budget */
    int64_t max_tasks; /* 0: no cap */
} qr_import_limits_t;

#define QR_IMPORT_MAX_BYTES ((size_t)64 << 20) /* quorumd's default budget */
#define QR_IMPORT_MAX_TASKS 10000000           /* quorumd's default cap */

typedef enum {
    QR_IMPORT_JSONL,      /* JSON lines (qr_import_parse) */
    QR_IMPORT_JSON_ARRAY, /* a JSON array (qr_import_parse_json_array) */
    QR_IMPORT_CSV,        /* CSV (qr_import_parse_csv) */
    QR_IMPORT_JSON_ANY,   /* a JSON array or JSON lines (qr_import_sniff) */
} qr_import_format_t;

/* Which JSON format body holds: a JSON array when its first non-blank byte
 * is '[', else JSON lines. Reads up to the first non-blank byte. */
qr_import_format_t qr_import_sniff(const char *body, size_t len);

/* What the project says about new tasks. */
typedef struct qr_import_policy_s {
    int64_t project_id;
    int annotations_per_task;
    double overlap_fraction; /* share of the batch that gets overlap_annotations */
    int overlap_annotations;
    int overlap_first;    /* overlap tasks are served before all others */
    const char *sampling; /* sequential, random, uncertainty, stratified */
    const char *stratify_field;
    int64_t import_id; /* the import the tasks come from (0: none) */
} qr_import_policy_t;

/* External ids. A task's external id is the row's top-level "external_id"
 * (JSON, JSONL: a non-empty string of at most 1000 bytes, or an integer,
 * kept as its decimal text; it is taken out of the data when the row is the
 * data itself) or the CSV column external_id (an empty cell: none). Two
 * tasks of one body with the same external id are an error naming both
 * places; the broker refuses ids the project holds already (409). */
#define QR_IMPORT_MAX_EXTERNAL_ID 1000

/* Parses body (len bytes, need not be NUL-terminated) in format, within
 * limits (NULL: the defaults above). Returns 0 and fills imp; QR_EINVAL for
 * bad input (a duplicate external id too), QR_ETOOBIG over a limit, each with "line N: ..." or
 * "task N:
 * ..." in err; imp then holds no task (peak_bytes still says how far the
 * parse went). Thread-safe: it touches only its arguments and jansson (whose
 * only global, the hash seed, is set once thread-safely), and logs nothing,
 * so quorumd runs it in libuv's thread pool. The three functions below are
 * this with the default limits. */
int qr_import_parse_bounded(qr_import_format_t format, const char *body, size_t len,
                            const char *stratify_field, const qr_import_limits_t *limits,
                            qr_import_t *imp, char *err, size_t errlen);

/* The same under opts (NULL: none): the project's labels checked (gold,
 * prediction labels and Label Studio choices among them, scores in [0, 1]:
 * QR_IMPORT_EREJECT with "line N: field F: ..." in err and imp->fail_line,
 * imp->fail_field set), the external id taken from opts->external_id_key,
 * and CSV split on opts->delimiter. Label Studio task objects ({"id", "data",
 * "predictions", "annotations"}) keep their id as the external id, their
 * predictions whole (the best-scored one, else the first, is the task's
 * prediction) and their annotations (see above). */
int qr_import_parse_opts(qr_import_format_t format, const char *body, size_t len,
                         const qr_import_opts_t *opts, const qr_import_limits_t *limits,
                         qr_import_t *imp, char *err, size_t errlen);

/* Parses body (len bytes): one task per line, {"data": {...}, "prediction":
 * {"label": ..., "score": ...}, "predictions": [{"score": ...}], "gold": ...}
 * or a bare object taken as the data; blank lines are skipped. Returns 0 and
 * fills imp, or QR_EINVAL with "line N: reason" in err (imp is then empty). */
int qr_import_parse(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                    char *err, size_t errlen);

/* The same from a JSON array of such tasks (a Label Studio task export),
 * walked one element at a time, never loaded whole: errors name "task N"
 * (from 1) and the line it starts on; text after the closing bracket or a
 * missing one is an error too. */
int qr_import_parse_json_array(const char *body, size_t len, const char *stratify_field,
                               qr_import_t *imp, char *err, size_t errlen);

/* The same from CSV (RFC 4180; UTF-8, with or without a byte-order mark; LF
 * or CRLF): a header row names the fields, each row is a task whose data maps
 * every other column to its cell text; the columns `prediction` (a label),
 * `prediction_score` (a number) and `gold` (a label) are the task's
 * prediction and gold answer, as in JSONL. A ragged row, a duplicate or
 * empty column name, bad quoting, invalid UTF-8 or a NUL byte is an error
 * naming the line where its record starts (import_csv.c). */
int qr_import_parse_csv(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                        char *err, size_t errlen);

/* How many tasks of each stratum the project held before this batch
 * (from PostgreSQL); names sorted with strcmp. */
typedef struct qr_strata_s {
    char **names;
    int64_t *counts;
    size_t n;
} qr_strata_t;

/* Writes one COPY row per task (columns as QR_SQL_TASKS_COPY lists them:
 * id, project_id, data, required, priority, overlap, prediction,
 * prediction_score, gold, stratum, import_id, external_id, predictions) into out. ids[i] is task
 * i's id, ascending. prior may be NULL (no stratified sampling). seed drives the random choices
 * (which tasks get the higher overlap; random order).
 *
 * Priority, lower served first:
 *   sequential   the task id (import order);
 *   random       a uniform draw in [0, 1);
 *   uncertainty  the prediction score; a task without one comes first (-1);
 *   stratified   (k + 0.5) / n_s for the k-th task (from 0, over all imports)
 *                of a stratum holding n_s tasks: strata interleave in
 *                proportion to their size, so any prefix of the queue
 *                follows the dataset's distribution;
 * and with overlap_first, overlap tasks are shifted ahead of all others. */
void qr_import_rows(const qr_import_t *imp, const int64_t *ids, const qr_import_policy_t *pol,
                    const qr_strata_t *prior, uint64_t seed, qr_buf_t *out);

void qr_import_free(qr_import_t *imp);

/* One task's COPY row (the columns of qr_import_rows) into out: with the
 * higher overlap when overlap, at priority (qr_import_priority, or the
 * stratified one). */
void qr_import_row(const qr_import_task_t *t, int64_t id, const qr_import_policy_t *pol,
                   int overlap, double priority, qr_buf_t *out);

/* A task's priority under sampling (sequential, random, uncertainty; not
 * stratified, which needs the whole batch): see qr_import_rows. */
double qr_import_priority(const qr_import_task_t *t, int64_t id, const char *sampling,
                          uint64_t *rng);

/* Parses one task (n bytes of JSON at p) into t (zeroed first): 0;
 * QR_EINVAL with the reason in why (not JSON, not an object, a bad shape);
 * or QR_IMPORT_EREJECT with the field in field and the reason in why. On
 * failure t holds nothing. Thread-safe as qr_import_parse_bounded. */
int qr_import_parse_task(const char *p, size_t n, const qr_import_opts_t *opts, qr_import_task_t *t,
                         char *field, size_t fieldlen, char *why, size_t whylen);

/* Frees what t holds and zeroes it. */
void qr_import_task_clear(qr_import_task_t *t);

/* --- Streamed imports (import_stream.c) ---------------------------------------------------
 *
 * A JSON body (JSON lines, or a JSON array: its first non-blank byte says)
 * or a CSV one imported as it arrives, for projects whose policy needs no whole batch
 * (no overlap fraction, no stratified sampling): the caller hands the bytes
 * in order, in batches cut anywhere, with fresh task ids (ascending), to
 * qr_import_stream_batch, which appends the COPY rows of the tasks they
 * complete (an unfinished task waits for the next batch). Errors are those
 * of the whole-body parse, with the same words. What a stream holds: the
 * unfinished task, and to its end the external ids seen (to refuse one
 * twice, and for the duplicate check after a refused COPY) and the
 * imported annotations (written after the COPY); limits->max_bytes bounds
 * that plus one task's parse, and limits->max_tasks the tasks. One call at
 * a time per stream, from any thread (batches run in libuv's thread pool). */
typedef struct qr_import_stream_s {
    int64_t tasks; /* imported so far */
    int64_t lines; /* lines read so far */
    int64_t first_id, last_id;
    int64_t fail_line;        /* where a failed batch stopped (0: no line to name) */
    char fail_field[96];      /* the field of a rule violation */
    char sha256[65];          /* the body's digest, hex, after qr_import_stream_end */
    int64_t annotated;        /* tasks with imported annotations */
    qr_buf_t ann_tasks, anns; /* their ids ("{1,2}") and annotations ("[[...],[...]]"),
                                 aligned, complete after qr_import_stream_end */
    size_t held;              /* bytes kept for the end (external ids, annotations) */
    int json_array;           /* the body is a JSON array (known from its first byte on) */
    int csv;                  /* the body is CSV */
    void *priv_;
} qr_import_stream_t;

/* A stream of format (QR_IMPORT_JSON_ANY: JSON lines or a JSON array, as
 * the body's first byte says; QR_IMPORT_CSV: CSV or TSV, its delimiter
 * opts->delimiter or detected from the header line) under opts (NULL:
 * none), limits (NULL: the defaults) and pol
 * (its sampling and overlap: annotations_per_task for every task), random
 * draws from seed. Everything is copied. Freed by qr_import_stream_free. */
qr_import_stream_t *qr_import_stream_new(qr_import_format_t format, const qr_import_opts_t *opts,
                                         const qr_import_limits_t *limits,
                                         const qr_import_policy_t *pol, uint64_t seed);
void qr_import_stream_free(qr_import_stream_t *s);

/* Reads one batch (len bytes at data, the next of the body; with last, the
 * body ended there) into COPY rows appended to rows, its tasks taking
 * their ids from ids[0..nids) in order (*ids_used: how many). Returns 0
 * when all of it was read (an unfinished task waits for the next batch);
 * 1 when the ids ran out first (call again, len 0, with more); or
 * QR_EINVAL, QR_IMPORT_EREJECT, QR_ETOOBIG with "line N: ..." or "task N
 * (line L): ..." in err (and fail_line, fail_field): the stream is not to
 * be fed after that. After a last batch that returned 0, sha256, ann_tasks
 * and anns are complete; "the body holds no task" is QR_EINVAL then. */
int qr_import_stream_batch(qr_import_stream_t *s, const char *data, size_t len, int last,
                           const int64_t *ids, size_t nids, size_t *ids_used, qr_buf_t *rows,
                           char *err, size_t errlen);

/* The external ids seen, as a JSON array of strings (heap text). */
char *qr_import_stream_external_ids(const qr_import_stream_t *s);

/* The external ids of imp's tasks as a JSON array of strings (heap text;
 * "[]" when none has one). */
char *qr_import_external_ids(const qr_import_t *imp);

/* Appends s to out escaped for COPY's text format (\\, \n, \r, \t). */
void qr_import_copy_escape(qr_buf_t *out, const char *s);
/* Appends the n bytes at s (UTF-8, as jansson gives a string) as a JSON
 * string: quoted, with '"', '\\' and control bytes (NUL too) escaped. */
void qr_import_json_string(qr_buf_t *out, const char *s, size_t n);

/* --- PUT /v1/projects/{id}/predictions (import_predictions.c) --------------------------- */

/* One body's parse, fed piece by piece: zero it, set opts (the project's
 * labels or schema) and max_rows (0: no bound). */
typedef struct qr_predictions_parse_s {
    const qr_import_opts_t *opts;
    int64_t max_rows;
    int64_t line;      /* lines read so far */
    int64_t rows;      /* rows made so far */
    int64_t fail_line; /* where it failed */
    char err[512];     /* "line N: ..." */
} qr_predictions_parse_t;

/* Reads the whole lines of len bytes at data (with last, the rest as the
 * last line too) into COPY rows for sql/0029_predictions_update.sql's
 * table: line, task id, external id, prediction, score. *taken: the bytes
 * read; what is left is a line's beginning, to be given again with more.
 * Returns 0, or QR_EINVAL (not JSON, not an object, a bad key or id),
 * QR_IMPORT_EREJECT (a value, or score, against the project's rules) or
 * QR_ETOOBIG (more than max_rows) with p->err and p->fail_line set. */
int qr_predictions_parse(qr_predictions_parse_t *p, const char *data, size_t len, int last,
                         qr_buf_t *out, size_t *taken);

#endif
