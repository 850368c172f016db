/*
 * api_projects.c - projects (create, get, pause, resume) and their shares with vendors.
 */
#include "api_int.h"

/* --- POST /v1/projects, GET /v1/projects/{id} ------------------------------------------ */

/* Caches the project row (JSON text) of a PostgreSQL answer and returns
 * it referenced, or responds 503 and returns NULL. */
qr_project_t *cache_project_row(ctx_t *c, const PGresult *res)
{
    json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    qr_project_t *p = o ? qr_project_from_json(o) : NULL;
    json_decref(o);
    if (!p) {
        respond_backend(c, "PostgreSQL", "bad project row");
        return NULL;
    }
    qr_project_cache_put(c->b, p);
    return p;
}

static void on_project_created(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    qr_project_t *p = cache_project_row(c, res);
    if (!p)
        return;
    respond_json(c, 201, qr_project_to_json(p));
    qr_project_release(p);
}

void h_project_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    qr_project_body_t pb;
    qr_invalid_t why;
    if (qr_validate_project_body(c->body, &pb, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    const char *name = pb.name, *sampling = pb.sampling, *field = pb.stratify_field;
    json_t *labels = pb.labels;
    int64_t apt = pb.annotations_per_task, ttl = pb.lease_ttl_ms, ov_ann = pb.overlap_annotations;
    double fraction = pb.overlap_fraction;
    /* A schema project has no labels list: its schema says what a value is. */
    char *labels_text = labels ? json_dumps(labels, JSON_COMPACT) : qr_xstrdup("[]");
    /* 15 significant digits: a rating's min, max and step read back as the
     * same doubles they were checked as (label_schema.h). */
    char *schema_text =
        pb.schema ? json_dumps(pb.schema, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    char org[24], user[24], a[24], t[24], fr[40], oa[24], ml[24], conf[40], audit[40];
    char omin[24], omax[24], othr[40];
    snprintf(othr, sizeof othr, "%.17g", pb.overlap_agreement_threshold);
    char grate[40], gonb[24], gmin[40], gcount[24];
    snprintf(grate, sizeof grate, "%.17g", isnan(pb.gold.rate) ? 0 : pb.gold.rate);
    snprintf(gmin, sizeof gmin, "%.17g", pb.gold.min_accuracy);
    char rv_share[40], rv_threshold[40];
    snprintf(rv_share, sizeof rv_share, "%.17g", pb.review_share);
    snprintf(rv_threshold, sizeof rv_threshold, "%.17g", pb.review_agreement_threshold);
    char ov_prior[40];
    snprintf(ov_prior, sizeof ov_prior, "%.17g", pb.overlap_prior_accuracy);
    snprintf(fr, sizeof fr, "%.17g", fraction);
    snprintf(conf, sizeof conf, "%.17g", pb.auto_accept_confidence);
    snprintf(audit, sizeof audit, "%.17g", pb.auto_accept_audit);
    const char *params[] = {i64(c->user.org_id, org),
                            name,
                            labels_text,
                            i64(apt, a),
                            i64(ttl, t),
                            i64(c->user.id, user),
                            fr,
                            i64(ov_ann, oa),
                            pb.overlap_first ? "true" : "false",
                            sampling,
                            field,
                            pb.max_leases_per_annotator ? i64(pb.max_leases_per_annotator, ml)
                                                        : NULL,
                            schema_text,
                            isnan(pb.auto_accept_confidence) ? NULL : conf,
                            audit,
                            pb.overlap_min ? i64(pb.overlap_min, omin) : NULL,
                            pb.overlap_min ? i64(pb.overlap_max, omax) : NULL,
                            pb.overlap_min ? othr : NULL,
                            pb.show_predictions ? "true" : "false",
                            grate,
                            i64(pb.gold.onboarding > 0 ? pb.gold.onboarding : 0, gonb),
                            isnan(pb.gold.min_accuracy) ? NULL : gmin,
                            i64(pb.gold.min_count > 0 ? pb.gold.min_count : 10, gcount),
                            pb.review_mode,
                            isnan(pb.review_share) ? NULL : rv_share,
                            isnan(pb.review_agreement_threshold) ? NULL : rv_threshold,
                            pb.overlap_measure,
                            isnan(pb.overlap_prior_accuracy) ? NULL : ov_prior};
    int rc = qr_pg_query(c->b->pg, QR_SQL_PROJECT_CREATE, 28, params, on_project_created, c);
    free(labels_text);
    free(schema_text);
    if (rc < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_project_get(ctx_t *c)
{
    respond_json(c, 200, qr_project_to_json(c->project));
}

/* --- POST /v1/projects/{id}/pause and /resume ------------------------------------------------ */

/* The project in res (one row of QR_SQL_PROJECT_JSON), cached and referenced;
 * NULL, answered 503, when res has none. */
qr_project_t *cache_project_result(ctx_t *c, const PGresult *res, const char *err)
{
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "project gone");
        return NULL;
    }
    return cache_project_row(c, res);
}

/* The project is stored paused or running: this broker's copy is replaced at
 * once and every other broker drops its own through pub/sub, so the next
 * lease request anywhere sees the change. A resume also wakes the long polls
 * waiting for it, here and on every broker. */
static void on_project_paused(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_broker_project_changed(c->b, p->id);
    if (!p->paused_at)
        qr_broker_work_ready(c->b, p->id);
    qr_info("project %" PRId64 " %s", p->id, p->paused_at ? "paused" : "resumed");
    respond_json(c, 200,
                 json_pack("{sI s:b s:s?}", "id", (json_int_t)p->id, "paused", p->paused_at != NULL,
                           "paused_at", p->paused_at));
    qr_project_release(p);
}

/* Idempotent: pausing a paused project, or resuming a running one, answers
 * its state unchanged. Who may: the owning organization's admins and
 * managers (the route's roles, and vendor_may). */
void h_project_pause(ctx_t *c)
{
    int pause = !strcmp(c->route->pattern + strlen(c->route->pattern) - 5, "pause");
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, org),
                            pause ? "true" : "false"};
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_PAUSE, 3, params, on_project_paused, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects/{id}/annotators/{user}/reinstate ---------------------------------------
 *
 * An annotator paused below the project's gold accuracy (issue 16) gets
 * leases again: PostgreSQL first (the truth, and the report's record), then
 * the flag every broker's grant reads in Redis. A manager's retry after a
 * failed Redis step finds no live pause (404) but clears the flag all the
 * same; a grant that finds the flag without a pause in PostgreSQL clears it
 * too (api_leases.c). */

static void on_reinstated_redis(int rc, void *arg)
{
    ctx_t *c = arg;
    json_t *o = c->out;
    c->out = NULL;
    if (rc < 0) {
        json_decref(o);
        respond_backend(c, "Redis", "annotator pause");
        return;
    }
    if (!o) {
        respond_error(c, 404, QR_CODE_NOT_FOUND,
                      "annotator %" PRId64 " is not paused in project %" PRId64, c->ids[1],
                      c->project->id);
        return;
    }
    qr_info("project %" PRId64 ": annotator %" PRId64 " reinstated by user %" PRId64,
            c->project->id, c->ids[1], c->user.id);
    respond_json(c, 200, o);
}

static void on_reinstated(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 1)
        c->out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (qr_lease_annotator_pause(c->b->lease, c->project->id, c->ids[1], 0, on_reinstated_redis,
                                 c) < 0)
        on_reinstated_redis(QR_EIO, c);
}

void h_annotator_reinstate(ctx_t *c)
{
    char proj[24], ann[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], ann), i64(c->user.id, user)};
    if (qr_pg_query(c->b->pg, QR_SQL_REINSTATE, 3, params, on_reinstated, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- shares: PUT, DELETE /v1/projects/{id}/shares/{org}, GET /v1/projects/{id}/shares -------- */

/* After a share changed: this broker's copy of the project is replaced at
 * once, and other brokers drop theirs when Redis pub/sub tells them (or,
 * should that message be lost, when it expires: cache_ttl_ms). */
static void on_share_reloaded(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = res && PQntuples(res) == 1 ? cache_project_row(c, res) : NULL;
    if (!p) {
        if (!res || PQntuples(res) != 1)
            respond_backend(c, "PostgreSQL", err ? err : "project gone");
        return;
    }
    qr_project_release(p);
    qr_broker_project_changed(c->b, c->project->id);
    /* Long polls of the project try again: a raised quota frees work. */
    qr_broker_work_ready(c->b, c->project->id);
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, c->max, o);
}

/* Answers status with o once the project is reloaded (c->max holds the
 * status meanwhile). */
static void share_reload(ctx_t *c, int status, json_t *o)
{
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->out = o;
    c->max = status;
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_GET, 1, params, on_share_reloaded, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static json_t *int_or_null(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null()
                                    : json_integer(strtoll(PQgetvalue(res, 0, col), NULL, 10));
}

/* The share's quota or cap may be new: grants of a share without either
 * were not counted, so the project's counters are rebuilt from PostgreSQL
 * by the next counted grant (qr_lease_count_reset). Should Redis not
 * answer, the share is stored but the answer is 503: a PUT sent again
 * resets them. */
static void on_counts_reset(int rc, void *arg)
{
    ctx_t *c = arg;
    json_t *o = c->out;
    c->out = NULL;
    if (rc < 0) {
        json_decref(o);
        respond_backend(c, "Redis", "lease counters reset");
        return;
    }
    share_reload(c, c->max, o);
}

static void on_share_put(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    /* No such organization (23503) and an owner organization (23514) get
     * the same answer: a share does not tell which organizations exist. */
    if (!res && sqlstate && (!strcmp(sqlstate, "23503") || !strcmp(sqlstate, "23514"))) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "there is no vendor organization %" PRId64,
                      c->ids[1]);
        return;
    }
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no share row");
        return;
    }
    int created = PQgetvalue(res, 0, 3)[0] == 't';
    c->out = json_pack("{sI sI s:o s:o s:b}", "project_id", (json_int_t)c->project->id, "org_id",
                       (json_int_t)c->ids[1], "quota_annotations", int_or_null(res, 1),
                       "max_tasks_per_annotator", int_or_null(res, 2), "created", created);
    c->max = created ? 201 : 200;
    if (qr_lease_count_reset(c->b->lease, c->project->id, on_counts_reset, c) < 0)
        on_counts_reset(QR_EIO, c);
}

void h_share_put(ctx_t *c)
{
    int64_t quota, cap;
    if (parse_body(c, 1) < 0 || int_field(c, "quota_annotations", 0, 1000000000, -1, &quota) < 0 ||
        int_field(c, "max_tasks_per_annotator", 0, 1000000000, -1, &cap) < 0)
        return;
    char proj[24], org[24], q[24], k[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], org),
                            quota < 0 ? NULL : i64(quota, q), cap < 0 ? NULL : i64(cap, k),
                            i64(c->user.org_id, owner)};
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_PUT, 5, params, on_share_put, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_share_deleted(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, QR_CODE_NOT_FOUND,
                      "project %" PRId64 " is not shared with organization %" PRId64,
                      c->project->id, c->ids[1]);
        return;
    }
    share_reload(c, 200,
                 json_pack("{sI sI s:b}", "project_id", (json_int_t)c->project->id, "org_id",
                           (json_int_t)c->ids[1], "removed", 1));
}

void h_share_delete(ctx_t *c)
{
    char proj[24], org[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], org),
                            i64(c->user.org_id, owner)};
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_DELETE, 3, params, on_share_deleted, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_share_list(ctx_t *c)
{
    char proj[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, owner)};
    c->list_key = "shares";
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_LIST, 2, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
