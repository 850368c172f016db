/*
 * live_agreement.c - per-project agreement reports, kept warm (see
 * live_agreement.h).
 */
#include "live_agreement.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "log.h"
#include "util.h"

/* New annotations of a project since an id, and the project's total (to
 * notice rows committed out of id order). $1 project, $2 after id. */
#define SQL_NEW_ANNOTATIONS                                                                        \
    "SELECT a.id, a.task_id::text, u.name, a.label,"                                               \
    " (SELECT count(*) FROM annotations WHERE project_id = $1)"                                    \
    " FROM annotations a JOIN users u ON u.id = a.annotator_id"                                    \
    " WHERE a.project_id = $1 AND a.id > $2 ORDER BY a.id"

/* Agreement with gold answers, per annotator. $1 project. */
#define SQL_GOLD                                                                                   \
    "SELECT u.name, count(*), count(*) FILTER (WHERE a.label = t.gold)"                            \
    " FROM tasks t JOIN annotations a ON a.task_id = t.id JOIN users u ON u.id = a.annotator_id"   \
    " WHERE t.project_id = $1 AND t.gold IS NOT NULL GROUP BY u.name ORDER BY u.name"

typedef struct waiter_s {
    qr_live_agreement_cb cb;
    void *arg;
    struct waiter_s *next;
} waiter_t;

typedef struct entry_s {
    qr_live_agreement_t *la;
    int64_t project;
    qr_agreement_t *agr;
    int64_t last_id;   /* highest annotation id fed into agr */
    int64_t fed;       /* judgements fed */
    int busy;          /* a refresh is running */
    int full_reload;   /* the running refresh started from scratch */
    json_t *report;    /* last computed report, or NULL */
    json_t *gold;      /* gold section being built by the running refresh */
    int64_t report_ms; /* monotonic time of report */
    waiter_t *waiters; /* requests waiting for the running refresh */
    uv_work_t work;
    json_t *computed;
    struct entry_s *next;
} entry_t;

struct qr_live_agreement_s {
    uv_loop_t *loop;
    qr_pg_t *pg;
    int max_age_ms;
    entry_t *entries;
    int working; /* thread-pool jobs out */
    int dying;   /* free requested while jobs were out */
};

qr_live_agreement_t *qr_live_agreement_new(uv_loop_t *loop, qr_pg_t *pg, int max_age_ms)
{
    qr_live_agreement_t *la = qr_xcalloc(1, sizeof *la);
    la->loop = loop;
    la->pg = pg;
    la->max_age_ms = max_age_ms;
    return la;
}

static void entry_free(entry_t *e)
{
    if (e->agr)
        qr_agreement_free(e->agr);
    json_decref(e->report);
    json_decref(e->gold);
    json_decref(e->computed);
    while (e->waiters) {
        waiter_t *w = e->waiters;
        e->waiters = w->next;
        w->cb(503, NULL, "the broker is stopping", w->arg);
        free(w);
    }
    free(e);
}

static void la_free_now(qr_live_agreement_t *la)
{
    while (la->entries) {
        entry_t *e = la->entries;
        la->entries = e->next;
        entry_free(e);
    }
    free(la);
}

void qr_live_agreement_free(qr_live_agreement_t *la)
{
    if (la->working) {
        la->dying = 1; /* the last job's completion frees it */
        return;
    }
    la_free_now(la);
}

static entry_t *entry_of(qr_live_agreement_t *la, int64_t project)
{
    for (entry_t *e = la->entries; e; e = e->next)
        if (e->project == project)
            return e;
    entry_t *e = qr_xcalloc(1, sizeof *e);
    e->la = la;
    e->project = project;
    e->agr = qr_agreement_new();
    e->next = la->entries;
    la->entries = e;
    return e;
}

/* Answers every waiter with the current report (or the error). */
static void answer_waiters(entry_t *e, const char *err)
{
    waiter_t *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        waiter_t *next = w->next;
        if (e->report)
            w->cb(200, json_deep_copy(e->report), NULL, w->arg);
        else
            w->cb(503, NULL, err ? err : "no report", w->arg);
        free(w);
        w = next;
    }
}

static void refresh_failed(entry_t *e, const char *err)
{
    qr_warn("agreement of project %" PRId64 ": %s", e->project, err);
    e->busy = 0;
    answer_waiters(e, err);
}

static void compute(uv_work_t *w)
{
    entry_t *e = w->data;
    e->computed = qr_agreement_json(e->agr, 0);
}

static void computed(uv_work_t *w, int status)
{
    entry_t *e = w->data;
    qr_live_agreement_t *la = e->la;
    la->working--;
    if (la->dying) {
        if (la->working == 0)
            la_free_now(la);
        return;
    }
    e->busy = 0;
    if (status < 0 || !e->computed) {
        refresh_failed(e, "computation failed");
        return;
    }
    json_decref(e->report);
    e->report = e->computed;
    e->computed = NULL;
    json_object_set_new(e->report, "project", json_integer(e->project));
    json_object_set(e->report, "gold", e->gold ? e->gold : json_null());
    json_object_set_new(e->report, "as_of_ms", json_integer(qr_now_ms()));
    e->report_ms = qr_mono_ms();
    answer_waiters(e, NULL);
}

static void on_gold(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    entry_t *e = arg;
    if (e->la->dying)
        return;
    if (!res) {
        refresh_failed(e, err);
        return;
    }
    json_t *per = json_array();
    int64_t n_all = 0, agree_all = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t n = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        int64_t agree = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        n_all += n;
        agree_all += agree;
        json_array_append_new(per, json_pack("{s:s sI sI s:f}", "annotator", PQgetvalue(res, i, 0),
                                             "compared", (json_int_t)n, "agree", (json_int_t)agree,
                                             "accuracy", (double)agree / (double)n));
    }
    json_t *overall =
        n_all ? json_pack("{s:f s:s sI sI}", "value", (double)agree_all / (double)n_all, "status",
                          "defined", "agree", (json_int_t)agree_all, "compared", (json_int_t)n_all)
              : json_pack("{s:n s:s s:s}", "value", "status", "not_applicable", "reason",
                          "no annotated task carries a gold answer");
    json_decref(e->gold);
    e->gold = json_pack("{s:o s:o}", "accuracy", overall, "per_annotator", per);
    e->work.data = e;
    int rc = uv_queue_work(e->la->loop, &e->work, compute, computed);
    if (rc < 0) {
        refresh_failed(e, uv_strerror(rc));
        return;
    }
    e->la->working++;
}

static void start_refresh(entry_t *e);

static void on_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    entry_t *e = arg;
    if (e->la->dying)
        return;
    if (!res) {
        refresh_failed(e, err);
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        int rc = qr_agreement_add(e->agr, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
                                  PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2),
                                  PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3));
        if (rc == 0)
            e->fed++;
        e->last_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    /* Rows committed after a higher id was read would be missed forever:
     * PostgreSQL's count says whether the feed is complete. */
    int64_t total = n ? strtoll(PQgetvalue(res, 0, 4), NULL, 10) : e->fed;
    if (total != e->fed && !e->full_reload) {
        qr_info("agreement of project %" PRId64 ": reloading (%" PRId64 " fed, %" PRId64
                " in PostgreSQL)",
                e->project, e->fed, total);
        qr_agreement_free(e->agr);
        e->agr = qr_agreement_new();
        e->fed = 0;
        e->last_id = 0;
        e->full_reload = 1;
        start_refresh(e);
        return;
    }
    char proj[24];
    snprintf(proj, sizeof proj, "%" PRId64, e->project);
    const char *params[] = {proj};
    if (qr_pg_query(e->la->pg, SQL_GOLD, 1, params, on_gold, e) < 0)
        refresh_failed(e, "PostgreSQL pool closing");
}

static void start_refresh(entry_t *e)
{
    e->busy = 1;
    char proj[24], after[24];
    snprintf(proj, sizeof proj, "%" PRId64, e->project);
    snprintf(after, sizeof after, "%" PRId64, e->last_id);
    const char *params[] = {proj, after};
    if (qr_pg_query(e->la->pg, SQL_NEW_ANNOTATIONS, 2, params, on_rows, e) < 0)
        refresh_failed(e, "PostgreSQL pool closing");
}

void qr_live_agreement_get(qr_live_agreement_t *la, int64_t project, int fresh,
                           qr_live_agreement_cb cb, void *arg)
{
    entry_t *e = entry_of(la, project);
    int stale = !e->report || qr_mono_ms() - e->report_ms > la->max_age_ms;
    if (e->report && !fresh) {
        cb(200, json_deep_copy(e->report), NULL, arg);
        if (stale && !e->busy) {
            e->full_reload = 0;
            start_refresh(e);
        }
        return;
    }
    waiter_t *w = qr_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    if (!e->busy) {
        e->full_reload = 0;
        start_refresh(e);
    }
}
