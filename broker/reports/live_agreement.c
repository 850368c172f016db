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
#include "agreement_ds.h"
#include "agreement_fields.h"
#include "agreement_interval.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* The agreement code keys annotators by string. Two organizations may each
 * have an "alice", so the key is the user's name, U+001F and the user's id:
 * unique by the id, and in the name's byte order as the offline report of
 * an export lists them (save names holding control characters, which may
 * sort apart but still count apart). `who` maps each key back to the
 * annotator's id, name and organization for the report. */
#define KEY_SEP '\x1f'

typedef struct waiter_s {
    qr_live_agreement_cb cb;
    void *arg;
    int extras; /* QR_LIVE_* it wants beside the cached report */
    struct waiter_s *next;
} waiter_t;

typedef struct entry_s {
    qr_live_agreement_t *la;
    int64_t project;
    qr_agreement_t *agr;
    qr_fields_t *fs;   /* a schema project's fields (NULL: plain, agr) */
    json_t *schema;    /* its schema */
    char *text_keys;   /* "{k1,k2}": the data keys span fields refer to, or NULL */
    int64_t last_id;   /* highest annotation id fed into agr */
    int64_t fed;       /* judgements fed */
    int busy;          /* a refresh is running */
    int full_reload;   /* the running refresh started from scratch */
    json_t *report;    /* last computed report, or NULL */
    json_t *gold;      /* gold section being built by the running refresh */
    json_t *who;       /* agreement key -> {annotator_id, annotator, organization_id,
                          organization}; written by refreshes, read by compute */
    int64_t report_ms; /* monotonic time of report */
    waiter_t *waiters; /* requests waiting for the running refresh */
    uv_work_t work;
    int extras_run; /* QR_LIVE_* the running (or last) refresh computes too */
    json_t *computed;
    json_t *computed_items; /* the report with those extras, not cached */
    qr_read_t run_read;     /* where the running refresh reads */
    qr_read_t report_read;  /* where report was read */
    struct entry_s *next;
} entry_t;

struct qr_live_agreement_s {
    uv_loop_t *loop;
    qr_pg_t *pg;
    qr_read_pool_t *read; /* the replica, or NULL */
    int max_age_ms;
    entry_t *entries;
    int working; /* thread-pool jobs out */
    int dying;   /* free requested while jobs were out */
};

qr_live_agreement_t *qr_live_agreement_new(uv_loop_t *loop, qr_pg_t *pg, qr_read_pool_t *read,
                                           int max_age_ms)
{
    qr_live_agreement_t *la = qr_xcalloc(1, sizeof *la);
    la->loop = loop;
    la->pg = pg;
    la->read = read;
    la->max_age_ms = max_age_ms;
    return la;
}

static void entry_free(entry_t *e)
{
    if (e->agr)
        qr_agreement_free(e->agr);
    qr_fields_free(e->fs);
    json_decref(e->schema);
    free(e->text_keys);
    json_decref(e->report);
    json_decref(e->gold);
    json_decref(e->who);
    json_decref(e->computed);
    json_decref(e->computed_items);
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

/* A new, empty judgement store for the entry's kind of project. */
static void store_new(entry_t *e)
{
    if (!e->schema) {
        e->agr = qr_agreement_new();
        return;
    }
    char err[256];
    e->fs = qr_fields_new();
    if (qr_fields_load_schema(e->fs, e->schema, err, sizeof err) < 0)
        qr_warn("agreement of project %" PRId64 ": schema: %s", e->project, err);
}

static void store_free(entry_t *e)
{
    if (e->agr)
        qr_agreement_free(e->agr);
    qr_fields_free(e->fs);
    e->agr = NULL;
    e->fs = NULL;
}

/* "{k1,k2}", a text[] literal of the keys span fields are over, or NULL. */
static char *text_keys_of(const json_t *schema)
{
    qr_buf_t b;
    qr_buf_init(&b);
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        const char *over = json_string_value(json_object_get(f, "over"));
        const char *type = json_string_value(json_object_get(f, "type"));
        if (!over || !type || strcmp(type, "spans"))
            continue;
        qr_buf_appends(&b, b.len ? ",\"" : "{\"");
        for (const char *p = over; *p; p++) {
            if (*p == '"' || *p == '\\')
                qr_buf_append(&b, "\\", 1);
            qr_buf_append(&b, p, 1);
        }
        qr_buf_appends(&b, "\"");
    }
    if (!b.len) {
        qr_buf_free(&b);
        return NULL;
    }
    qr_buf_append(&b, "}", 2); /* and the NUL */
    return b.data;
}

static entry_t *entry_of(qr_live_agreement_t *la, int64_t project, const json_t *schema)
{
    for (entry_t *e = la->entries; e; e = e->next)
        if (e->project == project)
            return e;
    entry_t *e = qr_xcalloc(1, sizeof *e);
    e->la = la;
    e->project = project;
    e->schema = schema ? json_deep_copy(schema) : NULL;
    e->text_keys = schema ? text_keys_of(schema) : NULL;
    store_new(e);
    e->who = json_object();
    e->next = la->entries;
    la->entries = e;
    return e;
}

/* Takes the extras (QR_LIVE_*) of mask out of report r. */
static void strip_extras(json_t *r, int mask)
{
    const char *name;
    json_t *field;
    if (mask & QR_LIVE_ITEMS) {
        json_object_del(r, "per_item");
        json_object_foreach(json_object_get(r, "fields"), name, field)
        {
            json_object_del(field, "per_item");
        }
    }
    if (mask & QR_LIVE_DAWID_SKENE)
        json_object_del(r, "dawid_skene");
}

/* A copy of report r (NULL: out of memory) saying where it was read
 * (qr_live_agreement_new). */
static json_t *report_copy(const entry_t *e, const json_t *r)
{
    json_t *c = json_deep_copy(r);
    const qr_read_t *rd = &e->report_read;
    if (!c || rd->from == QR_READ_NONE)
        return c;
    json_object_set_new(c, "read_from",
                        json_string(rd->from == QR_READ_REPLICA ? "replica" : "primary"));
    if (rd->from == QR_READ_REPLICA)
        json_object_set_new(c, "stale_seconds_max", json_real(qr_read_stale_s(rd)));
    return c;
}

/* Answers the waiters with the current report (or the error). Waiters for
 * extras stay when the refresh just done did not list items
 * (they joined it while it ran) and keep is set, else they get err; returns
 * how many stayed. */
static int answer_waiters(entry_t *e, const char *err, int keep)
{
    waiter_t *w = e->waiters, *kept = NULL;
    int nkept = 0;
    e->waiters = NULL;
    while (w) {
        waiter_t *next = w->next;
        int covered = e->computed_items && !(w->extras & ~e->extras_run);
        if (e->report && w->extras && !covered && keep) {
            w->next = kept;
            kept = w;
            nkept++;
            w = next;
            continue;
        }
        if (e->report && (!w->extras || covered)) {
            json_t *r = report_copy(e, w->extras ? e->computed_items : e->report);
            if (r)
                strip_extras(r, ~w->extras);
            w->cb(r ? 200 : 503, r, r ? NULL : "out of memory", w->arg);
        } else {
            w->cb(503, NULL, err ? err : "no report", w->arg);
        }
        free(w);
        w = next;
    }
    e->waiters = kept;
    return nkept;
}

static void refresh_failed(entry_t *e, const char *err)
{
    qr_warn("agreement of project %" PRId64 ": %s", e->project, err);
    e->busy = 0;
    json_decref(e->computed_items);
    e->computed_items = NULL;
    answer_waiters(e, err, 0);
}

/* The identity of an annotator: id, name and organization. */
static json_t *identity(const char *id, const char *name, const char *org_id, const char *org)
{
    return json_pack("{sI ss sI ss}", "annotator_id", (json_int_t)strtoll(id, NULL, 10),
                     "annotator", name, "organization_id", (json_int_t)strtoll(org_id, NULL, 10),
                     "organization", org);
}

/* Replaces the agreement key under `key` in o by the annotator's name and
 * adds the annotator's id and organization under the names prefix + "id",
 * prefix + "organization_id", prefix + "organization" ("annotator_id",
 * "organization_id", "organization" for a per-annotator row; "a_id",
 * "a_organization_id", "a_organization" for a pair's a). */
static void identify(json_t *who, json_t *o, const char *key, const char *prefix)
{
    json_t *id = json_object_get(who, json_string_value(json_object_get(o, key)));
    if (!id)
        return; /* every fed key is in who; nothing to add otherwise */
    char name[64];
    json_object_set(o, key, json_object_get(id, "annotator"));
    snprintf(name, sizeof name, "%sid", *prefix ? prefix : "annotator_");
    json_object_set(o, name, json_object_get(id, "annotator_id"));
    snprintf(name, sizeof name, "%sorganization_id", prefix);
    json_object_set(o, name, json_object_get(id, "organization_id"));
    snprintf(name, sizeof name, "%sorganization", prefix);
    json_object_set(o, name, json_object_get(id, "organization"));
}

static void identify_rows(json_t *who, json_t *report)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(report, "per_annotator"), i, row)
    {
        identify(who, row, "annotator", "");
    }
    json_array_foreach(json_object_get(report, "pairwise"), i, row)
    {
        identify(who, row, "a", "a_");
        identify(who, row, "b", "b_");
    }
}

/* A plain project's Dawid-Skene fit (agreement_ds.h): each annotator's
 * estimated accuracy, as `quorumctl agreement --method dawid_skene` gives
 * it for the project's export. Left out if the fit fails (it does only
 * past its size limits). */
static void add_dawid_skene(const qr_agreement_t *a, json_t *report)
{
    qr_dawid_skene_t fit;
    char err[160];
    if (qr_dawid_skene_agreement(a, NULL, &fit, err, sizeof err) != 0)
        return;
    const char **names = qr_xcalloc((size_t)fit.labels + 1, sizeof *names);
    size_t *lens = qr_xcalloc((size_t)fit.labels + 1, sizeof *lens);
    qr_dawid_skene_label_names(a, names, lens);
    json_object_set_new(report, "dawid_skene", qr_dawid_skene_json(&fit, names, report));
    free(names);
    free(lens);
    qr_dawid_skene_free(&fit);
}

/* A plain project's one field, "label", from its report. */
static void add_label_field(json_t *report)
{
    json_t *f =
        json_pack("{s:s s:O s:O s:O}", "type", "choice", "counts",
                  json_object_get(report, "counts"), "metrics", json_object_get(report, "metrics"),
                  "per_annotator", json_object_get(report, "per_annotator"));
    if (f && json_object_get(report, "per_item"))
        json_object_set(f, "per_item", json_object_get(report, "per_item"));
    json_object_set_new(report, "fields", json_pack("{s:o}", "label", f));
}

/* Runs on the thread pool while the entry is busy: no refresh writes `who`
 * meanwhile. */
static void compute(uv_work_t *w)
{
    qr_thread_background();
    entry_t *e = w->data;
    int items = (e->extras_run & QR_LIVE_ITEMS) != 0;
    json_t *r = e->fs ? qr_fields_json(e->fs, items) : qr_agreement_json(e->agr, items);
    if (!r)
        return;
    if (!e->fs) {
        add_label_field(r);
        if (e->extras_run & QR_LIVE_DAWID_SKENE)
            add_dawid_skene(e->agr, r);
    }
    identify_rows(e->who, r);
    identify_rows(e->who, json_object_get(r, "dawid_skene"));
    const char *name;
    json_t *field;
    json_object_foreach(json_object_get(r, "fields"), name, field)
    {
        if (e->fs) /* a plain report's field shares its rows, identified above */
            identify_rows(e->who, field);
    }
    if (e->extras_run) {
        /* The cache keeps the report without its extras. */
        e->computed_items = r;
        r = json_deep_copy(r);
        if (r)
            strip_extras(r, e->extras_run);
    }
    e->computed = r;
}

static void start_refresh(entry_t *e);

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
    json_t *targets[2] = {e->report, e->computed_items};
    for (int t = 0; t < 2 && targets[t]; t++) {
        json_object_set_new(targets[t], "project", json_integer(e->project));
        json_object_set(targets[t], "gold", e->gold ? e->gold : json_null());
        json_object_set_new(targets[t], "as_of_ms", json_integer(qr_now_ms()));
    }
    e->report_ms = qr_mono_ms();
    e->report_read = e->run_read;
    if (answer_waiters(e, NULL, 1) > 0)
        start_refresh(e); /* for the per-item waiters that joined late */
    json_decref(e->computed_items);
    e->computed_items = NULL;
}

/* "low" and "high": the 95 % Wilson interval of agree in n (n > 0). */
static void put_interval(json_t *o, int64_t agree, int64_t n)
{
    double low, high;
    if (qr_wilson_interval(agree, n, QR_Z95, &low, &high) < 0)
        return;
    json_object_set_new(o, "low", json_real(low));
    json_object_set_new(o, "high", json_real(high));
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
        int64_t n = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        int64_t agree = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        n_all += n;
        agree_all += agree;
        json_t *row = identity(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                               PQgetvalue(res, i, 3));
        json_object_set_new(row, "compared", json_integer((json_int_t)n));
        json_object_set_new(row, "agree", json_integer((json_int_t)agree));
        json_object_set_new(row, "accuracy", json_real((double)agree / (double)n));
        put_interval(row, agree, n);
        json_array_append_new(per, row);
    }
    json_t *overall =
        n_all ? json_pack("{s:f s:s sI sI}", "value", (double)agree_all / (double)n_all, "status",
                          "defined", "agree", (json_int_t)agree_all, "compared", (json_int_t)n_all)
              : json_pack("{s:n s:s s:s}", "value", "status", "not_applicable", "reason",
                          "no annotated task carries a gold answer");
    if (n_all)
        put_interval(overall, agree_all, n_all);
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

/* Feeds row i of a schema project (label: the canonical labels object;
 * column 8: the task's texts) into its fields. 0 when it counted (a labels
 * object; -1 for text that is not one). */
static int feed_fields(entry_t *e, const PGresult *res, int i, const char *ann, size_t ann_len)
{
    const char *item = PQgetvalue(res, i, 1);
    size_t item_len = (size_t)PQgetlength(res, i, 1);
    json_t *labels = json_loads(PQgetvalue(res, i, 2), 0, NULL);
    json_t *texts = PQgetisnull(res, i, 8) ? NULL : json_loads(PQgetvalue(res, i, 8), 0, NULL);
    const char *name;
    json_t *v;
    /* Every stored labels object counts as fed, also one whose fields are
     * all left out: the feed's count is matched against PostgreSQL's, and
     * a row that did not count would reload the project on every refresh. */
    int counted = json_is_object(labels) ? 0 : -1;
    json_object_foreach(labels, name, v)
    {
        int f = qr_fields_find(e->fs, name, strlen(name));
        if (f < 0 || json_is_null(v))
            continue;
        char err[160];
        (void)qr_fields_add_json(e->fs, f, item, item_len, ann, ann_len, v, err, sizeof err);
        if (qr_fields_type(e->fs, f) != QR_FIELD_SPANS)
            continue;
        const json_t *field = json_array_get(json_object_get(e->schema, "fields"), (size_t)f);
        const char *over = json_string_value(json_object_get(field, "over"));
        const json_t *text = over ? json_object_get(texts, over) : NULL;
        if (json_is_string(text))
            (void)qr_fields_set_text(e->fs, f, item, item_len, json_string_value(text),
                                     json_string_length(text)); /* the first stays */
    }
    json_decref(texts);
    json_decref(labels);
    return counted;
}

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
    qr_buf_t key;
    qr_buf_init(&key);
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, 4), *name = PQgetvalue(res, i, 5);
        qr_buf_reset(&key);
        qr_buf_append(&key, name, (size_t)PQgetlength(res, i, 5));
        qr_buf_append(&key, (char[]){KEY_SEP}, 1);
        qr_buf_appends(&key, id);
        qr_buf_append(&key, "", 1); /* NUL for json_object_get */
        if (!json_object_get(e->who, key.data))
            json_object_set_new(e->who, key.data,
                                identity(id, name, PQgetvalue(res, i, 6), PQgetvalue(res, i, 7)));
        int rc = e->fs ? feed_fields(e, res, i, key.data, key.len - 1)
                       : qr_agreement_add(e->agr, PQgetvalue(res, i, 1),
                                          (size_t)PQgetlength(res, i, 1), key.data, key.len - 1,
                                          PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
        if (rc == 0)
            e->fed++;
        e->last_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    qr_buf_free(&key);
    /* Rows committed after a higher id was read would be missed forever:
     * PostgreSQL's count says whether the feed is complete. */
    int64_t total = n ? strtoll(PQgetvalue(res, 0, 3), NULL, 10) : e->fed;
    if (total != e->fed && !e->full_reload) {
        qr_info("agreement of project %" PRId64 ": reloading (%" PRId64 " fed, %" PRId64
                " in PostgreSQL)",
                e->project, e->fed, total);
        store_free(e);
        store_new(e);
        e->fed = 0;
        e->last_id = 0;
        e->full_reload = 1;
        start_refresh(e);
        return;
    }
    char proj[24];
    snprintf(proj, sizeof proj, "%" PRId64, e->project);
    const char *params[] = {proj};
    if (qr_pg_query(e->run_read.pg, QR_SQL_AGREEMENT_GOLD, 1, params, on_gold, e) < 0)
        refresh_failed(e, "PostgreSQL pool closing");
}

static void start_refresh(entry_t *e)
{
    e->busy = 1;
    e->extras_run = 0;
    for (waiter_t *w = e->waiters; w; w = w->next)
        e->extras_run |= w->extras;
    char proj[24], after[24];
    snprintf(proj, sizeof proj, "%" PRId64, e->project);
    snprintf(after, sizeof after, "%" PRId64, e->last_id);
    const char *params[] = {proj, after, e->text_keys};
    /* Every statement of the refresh reads where its first did. */
    e->run_read = qr_read_pool_choose(e->la->read, e->la->pg);
    if (qr_pg_query(e->run_read.pg, QR_SQL_AGREEMENT_NEW, 3, params, on_rows, e) < 0)
        refresh_failed(e, "PostgreSQL pool closing");
}

void qr_live_agreement_get(qr_live_agreement_t *la, int64_t project, const json_t *schema,
                           int fresh, int extras, qr_live_agreement_cb cb, void *arg)
{
    entry_t *e = entry_of(la, project, schema);
    int stale = !e->report || qr_mono_ms() - e->report_ms > la->max_age_ms;
    if (e->report && !fresh && !extras) {
        json_t *r = report_copy(e, e->report);
        cb(r ? 200 : 503, r, r ? NULL : "out of memory", arg);
        if (stale && !e->busy) {
            e->full_reload = 0;
            start_refresh(e);
        }
        return;
    }
    waiter_t *w = qr_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->extras = extras;
    w->next = e->waiters;
    e->waiters = w;
    if (!e->busy) {
        e->full_reload = 0;
        start_refresh(e);
    }
}
