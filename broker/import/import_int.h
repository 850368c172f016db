/*
 * import_int.h - what the importers (import.c, import_csv.c) share through
 * import_sink.c: the budget of one parse (import.h, qr_import_limits_t) and
 * the task array it bounds. Not for use outside them.
 */
#ifndef QR_IMPORT_INT_H
#define QR_IMPORT_INT_H

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

/* qr_import_parse_bounded for CSV (import_csv.c). */
int qr_import_parse_csv_bounded(const char *body, size_t len, const qr_import_opts_t *opts,
                                const qr_import_limits_t *limits, qr_import_t *imp, char *err,
                                size_t errlen);

/* The label l (len bytes) with blanks around it trimmed, checked against
 * opts' labels: 0 when it is one of them (or opts checks none), else -1
 * with "\"l\" is not one of the project's labels (a, b, ...)" in why. */
int qr_import_check_label(const qr_import_opts_t *opts, const char *l, size_t len, char *why,
                          size_t whylen);

/* A score that must lie in [0, 1]: 0, or -1 with the reason in why. */
int qr_import_check_score(double v, char *why, size_t whylen);

/* Estimated bytes jansson takes to parse and then dump n bytes of JSON at
 * p: its tree (measured with jansson 2.14 on 64 bits: about 140 bytes an
 * array, 240 an object, 40-130 a value or member) and the dump's buffer. */
size_t qr_import_json_cost(const char *p, size_t n);

#endif
