/*
 * import_sink.c - where every importer (import.c's JSON and JSONL,
 * import_csv.c's CSV) puts its tasks: the task array and the byte budget
 * of one parse (import_int.h).
 */
#include "import_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qr_import_free(qr_import_t *imp)
{
    for (int64_t i = 0; i < imp->n; i++) {
        free(imp->tasks[i].data);
        free(imp->tasks[i].prediction);
        free(imp->tasks[i].gold);
        free(imp->tasks[i].stratum);
        free(imp->tasks[i].external_id);
        free(imp->tasks[i].predictions);
        free(imp->tasks[i].annotations);
    }
    free(imp->tasks);
    imp->tasks = NULL;
    imp->n = 0;
    imp->bytes = 0; /* peak_bytes, fail_line, fail_field stay: how far a failed parse went */
    imp->annotated = 0;
}

/* --- the budget (import_int.h) ------------------------------------------------------- */

/* What the COPY row of a task adds beyond its strings (ids, numbers, tabs),
 * counted with the task so the budget also stands for what is sent. */
#define ROW_EXTRA 64

/* A malloc'd block of n bytes as glibc's allocator takes it (header and
 * 16-byte rounding, 32 at least). */
static size_t chunk(size_t n)
{
    return n + 8 <= 32 ? 32 : (n + 8 + 15) & ~(size_t)15;
}

static size_t str_cost(const char *s)
{
    return s ? chunk(strlen(s) + 1) : 0;
}

void qr_import_sink_init(qr_import_sink_t *s, qr_import_t *imp, const qr_import_limits_t *limits,
                         const char *unit)
{
    memset(imp, 0, sizeof *imp);
    s->imp = imp;
    s->cap = 0;
    s->max_bytes = limits ? limits->max_bytes : QR_IMPORT_MAX_BYTES;
    s->max_tasks = limits ? limits->max_tasks : QR_IMPORT_MAX_TASKS;
    s->unit = unit;
}

static int over_budget(qr_import_sink_t *s, int64_t where, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "%s %" PRId64 ": the import is larger than the broker parses at once (%zu bytes "
             "after %" PRId64 " tasks, over a budget of %zu); split it into several imports",
             s->unit, where, s->imp->bytes, s->imp->n, s->max_bytes);
    return QR_ETOOBIG;
}

/* Whether held + extra bytes fit the budget; records the peak when they do. */
static int fits(qr_import_sink_t *s, size_t extra)
{
    size_t total = s->imp->bytes + extra;
    if (total < extra || (s->max_bytes && total > s->max_bytes))
        return 0;
    if (total > s->imp->peak_bytes)
        s->imp->peak_bytes = total;
    return 1;
}

int qr_import_sink_admit(qr_import_sink_t *s, size_t transient, int64_t where, char *err,
                         size_t errlen)
{
    if (s->max_tasks && s->imp->n >= s->max_tasks) {
        snprintf(err, errlen,
                 "%s %" PRId64 ": more than %" PRId64
                 " tasks in one import; split it into several imports",
                 s->unit, where, s->max_tasks);
        return QR_ETOOBIG;
    }
    return fits(s, transient) ? 0 : over_budget(s, where, err, errlen);
}

qr_import_task_t *qr_import_sink_add(qr_import_sink_t *s, size_t transient, int64_t where,
                                     char *err, size_t errlen)
{
    qr_import_t *imp = s->imp;
    if (imp->n == s->cap) {
        /* Grow by half, and no further than the budget or the cap allow:
         * the array is the one allocation that is not per task. */
        int64_t cap = s->cap ? s->cap + s->cap / 2 : 256;
        if (s->max_tasks && cap > s->max_tasks)
            cap = s->max_tasks;
        if (s->max_bytes) {
            size_t room = s->max_bytes > imp->bytes + transient
                              ? (s->max_bytes - imp->bytes - transient) / sizeof *imp->tasks
                              : 0;
            if ((size_t)(cap - s->cap) > room)
                cap = s->cap + (int64_t)room;
        }
        if (cap <= s->cap) {
            over_budget(s, where, err, errlen);
            return NULL;
        }
        imp->tasks = qr_xrealloc(imp->tasks, (size_t)cap * sizeof *imp->tasks);
        imp->bytes += (size_t)(cap - s->cap) * sizeof *imp->tasks;
        s->cap = cap;
        fits(s, transient);
    }
    QR_ASSERT(imp->n < s->cap); /* grown above, or refused */
    qr_import_task_t *t = &imp->tasks[imp->n++];
    memset(t, 0, sizeof *t);
    t->score = NAN;
    t->where = where;
    return t;
}

int qr_import_sink_charge(qr_import_sink_t *s, size_t transient, int64_t where, char *err,
                          size_t errlen)
{
    const qr_import_task_t *t = &s->imp->tasks[s->imp->n - 1];
    s->imp->bytes += str_cost(t->data) + str_cost(t->prediction) + str_cost(t->gold) +
                     str_cost(t->stratum) + str_cost(t->external_id) + str_cost(t->predictions) +
                     str_cost(t->annotations) + ROW_EXTRA;
    return fits(s, transient) ? 0 : over_budget(s, where, err, errlen);
}
