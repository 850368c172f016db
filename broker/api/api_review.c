/*
 * api_review.c - review and adjudication (issue 16, point 2): POST
 * /v1/projects/{id}/reviews/leases grants review items, and a review
 * lease's submit (the decision), heartbeat and release.
 *
 * A review item is a completed task the project's review_mode selected
 * (sql/0031_review.sql, at the task's completion). Its lease lives in its
 * row of reviews in PostgreSQL, not in Redis: reviews are a small share of
 * the traffic, and a decision commits in the statement that checks the
 * lease, so there is nothing to rebuild after Redis loses its state and no
 * window to refill. The lease keeps the engine's guarantees: a TTL (the
 * project's lease_ttl_ms), a fencing token that never repeats, one reviewer
 * per item (FOR UPDATE SKIP LOCKED), never a reviewer on a task they
 * annotated. An expired lease is simply granted again. A grant with wait_ms
 * that finds nothing asks again every REVIEW_POLL_MS until its deadline
 * (review items appear as tasks complete, on any broker: PostgreSQL is the
 * one place that knows, and a reviewer's poll costs one indexed query).
 *
 * POST /v1/projects/{id}/reviews/select records review items on request:
 * the complete tasks whose consensus support, by the majority or by the
 * crew's Dawid-Skene model (fitted off the loop, broker/reports/ds_fit.h,
 * as the consensus export fits it), is below a share, least sure first.
 * The items are rows of reviews like those the completion trigger makes,
 * so the grant above hands them out with no more to do: PostgreSQL is the
 * review items' one queue.
 *
 * The routes are the owning organization's admins, managers and reviewers
 * (ROUTE_NOT_VENDOR): a reviewer sees every annotator's answer; selecting
 * is the admins' and managers'.
 */
#include "api_int.h"
#include "ds_fit.h"
#include "sql_review.h"

/* How often a waiting review grant asks PostgreSQL again (ms). */
#define REVIEW_POLL_MS 250

/* Answers 409 and returns 1 when the project is archived: nothing of it is
 * reviewed, nor selected for review. */
static int refused_archived(ctx_t *c)
{
    if (!c->project->archived_at)
        return 0;
    respond_error(c, 409, QR_CODE_PROJECT_ARCHIVED,
                  "project %" PRId64 " is archived: nothing is reviewed", c->project->id);
    return 1;
}

/* --- POST /v1/projects/{id}/reviews/leases ------------------------------------------------ */

static void review_try(ctx_t *c);

static void on_review_poll(uv_timer_t *t)
{
    ctx_t *c = t->data;
    if (qr_http_request_gone(c->req)) {
        respond_json(c, 200, json_pack("{s:[]}", "leases")); /* to nobody: frees c */
        return;
    }
    review_try(c);
}

/* Waits REVIEW_POLL_MS (or what is left of c's wait) and asks again;
 * answers the empty list when the wait is over. */
static void review_wait(ctx_t *c)
{
    int64_t left = c->wait_until_ms - qr_mono_ms();
    if (left <= 0 || qr_http_request_gone(c->req)) {
        respond_json(c, 200, json_pack("{s:[]}", "leases"));
        return;
    }
    if (!c->timer_inited) {
        if (uv_timer_init(c->b->loop, &c->wait_timer) < 0) {
            respond_json(c, 200, json_pack("{s:[]}", "leases"));
            return;
        }
        c->timer_inited = 1;
    }
    c->wait_timer.data = c;
    c->timed = 0; /* its time is the long-poll wait, not the broker's */
    if (uv_timer_start(&c->wait_timer, on_review_poll,
                       (uint64_t)(left < REVIEW_POLL_MS ? left : REVIEW_POLL_MS), 0) < 0)
        respond_json(c, 200, json_pack("{s:[]}", "leases"));
}

static void on_review_given_back(const PGresult *res, const char *err, const char *sqlstate,
                                 void *arg)
{
    (void)arg;
    if (!res)
        qr_warn("giving back a review lease failed: %s", err ? err : "?");
}

static void on_review_granted(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 0 && c->wait_until_ms) {
        review_wait(c);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        if (o)
            json_array_append_new(arr, o);
    }
    if (json_array_size(arr))
        qr_info("project %" PRId64 ": %zu review leases to user %" PRId64, c->project->id,
                json_array_size(arr), c->user.id);
    /* Leases whose answer could not be written are given back at once (else
     * they would wait out their TTL). */
    qr_broker_t *b = c->b;
    char proj[24], user[24];
    i64(c->project->id, proj);
    i64(c->user.id, user);
    /* "O": the answer takes a reference of its own; arr is ours until the end. */
    if (respond_json(c, 200, json_pack("{s:O}", "leases", arr)) < 0) {
        size_t i;
        json_t *l;
        json_array_foreach(arr, i, l)
        {
            const char *params[] = {proj, user, json_string_value(json_object_get(l, "lease"))};
            if (qr_pg_query(b->pg, QR_SQL_REVIEW_RELEASE, 3, params, on_review_given_back, NULL) <
                0)
                break;
        }
    }
    json_decref(arr);
}

static void review_try(ctx_t *c)
{
    char proj[24], user[24], n[24], ttl[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), i64(c->max, n),
                            i64(c->project->lease_ttl_ms, ttl)};
    if (qr_pg_query(c->b->pg, QR_SQL_REVIEW_GRANT, 4, params, on_review_granted, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_review_lease(ctx_t *c)
{
    if (parse_body(c, 1) < 0)
        return;
    int64_t max = 1, wait_ms = 0;
    qr_invalid_t why;
    if (qr_validate_lease_body(c->body, &max, &wait_ms, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    if (refused_archived(c))
        return;
    c->max = (int)max;
    c->wait_until_ms = wait_ms ? qr_mono_ms() + wait_ms : 0;
    review_try(c);
}

/* --- heartbeat and release ---------------------------------------------------------------- */

static void review_not_live(ctx_t *c)
{
    respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                  "review lease %" PRId64 " is not live (expired, decided, released or not "
                  "yours)",
                  c->ids[1]);
}

static void on_review_heartbeat(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        review_not_live(c);
        return;
    }
    char tok[24];
    respond_json(c, 200,
                 json_pack("{s:s sI}", "lease", i64(c->ids[1], tok), "expires_at_ms",
                           (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
}

void h_review_heartbeat(ctx_t *c)
{
    char proj[24], user[24], tok[24], ttl[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), i64(c->ids[1], tok),
                            i64(c->project->lease_ttl_ms, ttl)};
    if (qr_pg_query(c->b->pg, QR_SQL_REVIEW_HEARTBEAT, 4, params, on_review_heartbeat, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_review_released(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        review_not_live(c);
        return;
    }
    char tok[24];
    respond_json(c, 200, json_pack("{s:s s:b}", "lease", i64(c->ids[1], tok), "released", 1));
}

void h_review_release(ctx_t *c)
{
    char proj[24], user[24], tok[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), i64(c->ids[1], tok)};
    if (qr_pg_query(c->b->pg, QR_SQL_REVIEW_RELEASE, 3, params, on_review_released, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST .../reviews/leases/{lease}/submit ----------------------------------------------- */

static void on_window_reopened(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc == 0)
        qr_broker_work_ready(c->b, c->project->id);
    /* Redis being down does not undo the requeue: the window reloads later. */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 200, o);
}

static void on_review_decided(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res && !strcmp(sqlstate, QR_SQLSTATE_OVERLAP_MAX)) {
        /* A requeue past dynamic overlap's overlap_max (sql/0027's guard):
         * the transaction rolled back, so nothing changed. */
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "the task needs overlap_max annotations already (dynamic overlap): it "
                      "cannot be requeued for one more; nothing changed (%s)",
                      err);
        return;
    }
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no answer");
        return;
    }
    const char *result = PQgetvalue(res, 0, 0);
    int64_t lease = c->ids[1];
    if (!strcmp(result, "no_lease")) {
        respond_error(c, 404, QR_CODE_NOT_FOUND,
                      "no review lease %" PRId64 " in project %" PRId64
                      " (released, granted again after it expired, requeued, or never granted)",
                      lease, c->project->id);
        return;
    }
    if (!strcmp(result, "not_yours")) {
        respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                      "review lease %" PRId64 " is not yours (its item went to another reviewer)",
                      lease);
        return;
    }
    if (!strcmp(result, "decided")) {
        respond_error(c, 409, QR_CODE_CONFLICT, "review lease %" PRId64 " was decided already",
                      lease);
        return;
    }
    if (!strcmp(result, "expired")) {
        respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                      "review lease %" PRId64 " expired; lease the item again", lease);
        return;
    }
    if (!strcmp(result, "tie")) {
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "the annotators are tied: there is no consensus to accept (pick an "
                      "annotation or correct the value)");
        return;
    }
    if (!strcmp(result, "bad_annotation")) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "annotation_id is not an annotation of this review's task");
        return;
    }
    if (!strcmp(result, "full")) {
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "the task has 100 annotations, the most one may have: it cannot be "
                      "requeued");
        return;
    }
    int64_t task = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    const char *value = PQgetvalue(res, 0, 2);
    json_t *v = c->project->schema->implied ? json_string(value) : json_loads(value, 0, NULL);
    char tok[24];
    json_t *o =
        json_pack("{s:s sI s:s s:o s:b}", "lease", i64(lease, tok), "task_id", (json_int_t)task,
                  "decision", c->label, "value", v ? v : json_null(), "requeued", c->retried);
    qr_info("project %" PRId64 ": task %" PRId64 " reviewed by user %" PRId64 " (%s%s)",
            c->project->id, task, c->user.id, c->label, c->retried ? ", requeued" : "");
    if (!c->retried) {
        respond_json(c, 200, o);
        return;
    }
    /* The task is open again for one more annotator: the window reloads it
     * from the start of the order. */
    c->out = o;
    if (qr_lease_window_reopen(c->b->lease, c->project->id, on_window_reopened, c) < 0)
        on_window_reopened(QR_EIO, c);
}

/* Reads a corrected value into c->idem_label: the label (a plain project)
 * or the canonical labels text (a schema project), checked as a submit's;
 * c->labels keeps a labels object whose span fields still need the task's
 * text lengths. Answers 422 and returns -1 when it is not a value of the
 * project. */
static int read_value(ctx_t *c, json_t *value)
{
    const qr_label_schema_t *schema = c->project->schema;
    qr_invalid_t why;
    qr_result_body_t r;
    json_t *o = json_object();
    json_object_set(o, json_is_object(value) ? "labels" : "label", value);
    int rc;
    if (schema->implied && !json_is_object(value)) {
        rc = qr_validate_result(o, c->project->labels, c->project->nlabels, &r, &why);
        if (rc == 0)
            c->idem_label = qr_xstrdup(r.label);
    } else {
        char *canonical = NULL;
        json_t *labels = NULL;
        rc = qr_validate_result_labels(o, schema, &r, &canonical, &labels, &why);
        const char *keys[1];
        if (rc == 0 && labels && qr_label_data_keys(schema, labels, keys, 1) > 0)
            c->labels = labels; /* span offsets: checked against the task's text next */
        else
            json_decref(labels);
        c->idem_label = canonical;
    }
    json_decref(o);
    if (rc < 0) {
        respond_invalid(c, &why);
        return -1;
    }
    return 0;
}

static void decide(ctx_t *c)
{
    char proj[24], user[24], tok[24], a[24];
    const char *params[] = {i64(c->project->id, proj),
                            i64(c->user.id, user),
                            i64(c->ids[1], tok),
                            c->label,
                            c->idem_annotation ? i64(c->idem_annotation, a) : NULL,
                            c->idem_label,
                            c->retried ? "true" : "false"};
    if (qr_pg_query(c->b->pg, QR_SQL_REVIEW_DECIDE, 7, params, on_review_decided, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* A corrected value with span fields, against its task's text lengths. */
static void on_review_text_lengths(const PGresult *res, const char *err, const char *sqlstate,
                                   void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (check_text_lengths(c, res) < 0)
        return; /* answered */
    decide(c);
}

static void on_review_task(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        decide(c); /* no such lease of this reviewer: the decision says which refusal */
        return;
    }
    if (query_text_lengths(c, PQgetvalue(res, 0, 0), on_review_text_lengths) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_review_submit(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    if (!json_is_object(c->body)) {
        respond_error(c, 422, QR_CODE_INVALID, "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(c->body, key, v)
    {
        if (strcmp(key, "decision") && strcmp(key, "annotation_id") && strcmp(key, "value") &&
            strcmp(key, "requeue")) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "unknown field '%.64s' (a review has decision, annotation_id, value "
                          "and requeue)",
                          key);
            return;
        }
    }
    const char *d = json_string_value(json_object_get(c->body, "decision"));
    json_t *ann = json_object_get(c->body, "annotation_id");
    json_t *value = json_object_get(c->body, "value");
    json_t *requeue = json_object_get(c->body, "requeue");
    if (!d || (strcmp(d, "accept") && strcmp(d, "pick") && strcmp(d, "correct"))) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "decision must be accept (the consensus), pick (with annotation_id) or "
                      "correct (with value)");
        return;
    }
    if (requeue && !json_is_boolean(requeue)) {
        respond_error(c, 422, QR_CODE_INVALID, "requeue must be true or false");
        return;
    }
    if (!strcmp(d, "pick") != (ann != NULL)) {
        respond_error(c, 422, QR_CODE_INVALID, "annotation_id goes with decision pick, and only");
        return;
    }
    if (ann && (!json_is_integer(ann) || json_integer_value(ann) < 1)) {
        respond_error(c, 422, QR_CODE_INVALID, "annotation_id must be an annotation's id");
        return;
    }
    if (!strcmp(d, "correct") != (value != NULL)) {
        respond_error(c, 422, QR_CODE_INVALID, "value goes with decision correct, and only");
        return;
    }
    if (value && read_value(c, value) < 0)
        return;
    c->label = qr_xstrdup(d);
    c->retried = json_is_true(requeue);
    c->idem_annotation = ann ? (int64_t)json_integer_value(ann) : 0;
    if (!c->labels) {
        decide(c);
        return;
    }
    /* Span fields: their task's text lengths first (the task of this lease). */
    char proj[24], user[24], tok[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), i64(c->ids[1], tok)};
    if (qr_pg_query(c->b->pg, QR_SQL_REVIEW_TASK, 3, params, on_review_task, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST .../reviews/select ------------------------------------------------------------------ */

/* One selection in flight (owned by its callbacks; freed before the answer). */
typedef struct select_s {
    ctx_t *c;
    qr_review_select_body_t body;
    qr_ds_fit_t fit; /* dawid_skene: the crew's model */
} select_t;

static void on_selected(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    select_t *s = arg;
    ctx_t *c = s->c;
    qr_review_select_body_t body = s->body;
    free(s);
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no counts");
        return;
    }
    json_int_t considered = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    json_int_t selected = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    json_int_t already = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    qr_info("project %" PRId64 ": %" PRId64 " of %" PRId64 " complete task(s) selected for review "
            "by user %" PRId64 " (%s support below %g; %" PRId64 " selected before)",
            c->project->id, (int64_t)selected, (int64_t)considered, c->user.id, body.method,
            body.support_below, (int64_t)already);
    respond_json(c, 200,
                 json_pack("{s:s s:f s:I s:I s:I}", "method", body.method, "support_below",
                           body.support_below, "considered", considered, "selected", selected,
                           "already_selected", already));
}

/* Runs the selection: tasks and supports NULL for the majority (PostgreSQL
 * takes it), else the model's, as bigint[] and float8[] literals. */
static void select_run(select_t *s, const char *tasks, const char *supports)
{
    ctx_t *c = s->c;
    char proj[24], below[40], limit[24];
    snprintf(below, sizeof below, "%.17g", s->body.support_below);
    const char *params[] = {i64(c->project->id, proj),
                            below,
                            s->body.limit ? i64(s->body.limit, limit) : NULL,
                            s->body.method,
                            tasks,
                            supports};
    if (qr_pg_query(c->b->pg, tasks ? QR_SQL_REVIEW_SELECT_GIVEN : QR_SQL_REVIEW_SELECT_MAJORITY,
                    tasks ? 6 : 4, params, on_selected, s) < 0) {
        free(s);
        respond_backend(c, "PostgreSQL", "pool closing");
    }
}

/* The model is fitted: each judged task's support is its consensus's
 * posterior to 4 decimals, as the consensus export shows it, so a task
 * selected below 0.8 is one the export shows below 0.8. */
static void on_select_fit(qr_ds_fit_t *f, int status, void *arg)
{
    select_t *s = arg;
    ctx_t *c = s->c;
    if (status < 0) {
        respond_backend(c, f->failed, f->err);
        qr_ds_fit_free(f);
        free(s);
        return;
    }
    qr_info("project %" PRId64 ": Dawid-Skene for review selection over %u tasks, %u annotators, "
            "%u labels: %u iterations%s",
            c->project->id, f->fit.items, f->fit.annotators, f->fit.labels, f->fit.iterations,
            f->fit.converged ? ", converged" : ", at the cap");
    qr_buf_t ids, sup;
    qr_buf_init(&ids);
    qr_buf_init(&sup);
    qr_buf_appends(&ids, "{");
    qr_buf_appends(&sup, "{");
    int n = 0;
    for (uint32_t i = 0; i < f->fit.items; i++) {
        if (f->fit.label[i] < 0)
            continue;
        qr_buf_appendf(&ids, "%s%" PRId64, n ? "," : "", f->task[i]);
        qr_buf_appendf(&sup, "%s%.4f", n ? "," : "", f->fit.support[i]);
        n++;
    }
    qr_buf_appends(&ids, "}");
    qr_buf_appends(&sup, "}");
    qr_ds_fit_free(f);
    select_run(s, ids.data, sup.data);
    qr_buf_free(&ids);
    qr_buf_free(&sup);
}

void h_review_select(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    qr_review_select_body_t body;
    qr_invalid_t why;
    if (qr_validate_review_select(c->body, &body, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    if (refused_archived(c))
        return;
    int ds = !strcmp(body.method, "dawid_skene");
    if (ds && !c->project->schema->implied) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "method dawid_skene takes a project of one choice (labels); this project "
                      "has a label schema: use majority");
        return;
    }
    select_t *s = qr_xcalloc(1, sizeof *s);
    s->c = c;
    s->body = body;
    if (!ds) {
        select_run(s, NULL, NULL);
        return;
    }
    /* The model as of now, over every annotator's judgements (the owner's
     * view, as an owner's export fits it). */
    if (qr_ds_fit_start(&s->fit, c->b->loop, c->b->pg, c->project->id, NULL, 0, on_select_fit, s) <
        0) {
        qr_ds_fit_free(&s->fit);
        free(s);
        respond_backend(c, "PostgreSQL", "pool closing");
    }
}
