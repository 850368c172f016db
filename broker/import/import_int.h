/*
 * import_int.h - what the importers (import.c, import_csv.c) share through
 * import_sink.c: the budget of one parse (import.h, qr_import_limits_t) and
 * the task array it bounds. Not for use outside them.
 */
#ifndef QR_IMPORT_INT_H
#define QR_IMPORT_INT_H

#include <jansson.h>

#include "import.h"

/* One parse's output and its accounting. */
typedef struct qr_import_sink_s {
    qr_import_t *imp;
    int64_t cap;      /* tasks the array has room for */
    size_t max_bytes; /* 0: no budget */
    int64_t max_tasks;
    const char *unit; /* "line" or "task": how errors name where the parse was */
} qr_import_sink_t;

/* Starts an empty import in imp under limits (NULL: the defaults). */
void qr_import_sink_init(qr_import_sink_t *s, qr_import_t *imp, const qr_import_limits_t *limits,
                         const char *unit);

/* Before element `where` is parsed: 0 if transient bytes (its estimated
 * parse state) fit beside what is held and a task more is within the cap;
 * else QR_ETOOBIG with the reason in err. */
int qr_import_sink_admit(qr_import_sink_t *s, size_t transient, int64_t where, char *err,
                         size_t errlen);

/* A zeroed task at the end of the array (grown within the budget), or NULL
 * with QR_ETOOBIG's reason in err. */
qr_import_task_t *qr_import_sink_add(qr_import_sink_t *s, size_t transient, int64_t where,
                                     char *err, size_t errlen);

/* Counts the last task's strings against the budget: 0, or QR_ETOOBIG with
 * the reason in err. */
int qr_import_sink_charge(qr_import_sink_t *s, size_t transient, int64_t where, char *err,
                          size_t errlen);

/* QR_EINVAL, with "<unit> N: external_id "x" is also on <unit> M" in err,
 * when two tasks of imp share an external id; else 0 (import.c). */
int qr_import_check_external_ids(const qr_import_t *imp, const char *unit, char *err,
                                 size_t errlen);

/* Streamed CSV (import_csv.c, for import_stream.c): each task read is
 * handed to emit (which keeps nothing of t: t is cleared after), with the
 * line its record starts on; a negative return stops the read with that
 * code (emit wrote err). */
typedef int (*qr_import_emit_fn)(void *arg, qr_import_task_t *t, int64_t line, char *err,
                                 size_t errlen);
typedef struct qr_import_csv_s qr_import_csv_t;

/* A CSV reader under opts (kept, not copied: they must outlive it) and
 * limits (the row being read counts against max_bytes). */
qr_import_csv_t *qr_import_csv_new(const qr_import_opts_t *opts, const qr_import_limits_t *limits,
                                   qr_import_emit_fn emit, void *arg);
void qr_import_csv_free(qr_import_csv_t *cs);

/* Reads len more bytes of the body (with last, its end). *taken: the bytes
 * read, the rest to be given again with more (only before the header line
 * is whole: it sets the delimiter). Returns 0, or QR_EINVAL,
 * QR_IMPORT_EREJECT, QR_ETOOBIG with "line N: ..." in err and, unless emit
 * failed, *fail_line and fail_field set (the whole-body parse's words). */
int qr_import_csv_feed(qr_import_csv_t *cs, const char *data, size_t len, size_t *taken, int last,
                       char *err, size_t errlen, int64_t *fail_line, char *fail_field,
                       size_t fieldlen);

/* qr_import_parse_bounded for CSV (import_csv.c). */
int qr_import_parse_csv_bounded(const char *body, size_t len, const qr_import_opts_t *opts,
                                const qr_import_limits_t *limits, qr_import_t *imp, char *err,
                                size_t errlen);

/* The label l (len bytes) with blanks around it trimmed, checked against
 * opts' labels: 0 when it is one of them (or opts checks none), else -1
 * with "\"l\" is not one of the project's labels (a, b, ...)" in why. */
int qr_import_check_label(const qr_import_opts_t *opts, const char *l, size_t len, char *why,
                          size_t whylen);

/* A label value of an import into a schema project (opts->schema set): a
 * labels object, or a bare choice for a schema of one choice field, checked
 * against the schema (relaxed: with no field required) with the task's data
 * (NULL: none, so a span field's text is missing). Returns its canonical
 * text (heap), or NULL with the reason ("<field>: ...") in why. */
char *qr_import_schema_labels(const qr_import_opts_t *opts, json_t *value, json_t *data,
                              int relaxed, char *why, size_t whylen);

/* A score that must lie in [0, 1]: 0, or -1 with the reason in why. */
int qr_import_check_score(double v, char *why, size_t whylen);

/* Estimated bytes jansson takes to parse and then dump n bytes of JSON at
 * p: its tree (measured with jansson 2.14 on 64 bits: about 140 bytes an
 * array, 240 an object, 40-130 a value or member) and the dump's buffer. */
size_t qr_import_json_cost(const char *p, size_t n);

#endif
