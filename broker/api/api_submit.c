/*
 * api_submit.c - submits: one result, and a batch of them, through the group commit.
 */
#include "api_int.h"

/* --- POST /v1/projects/{id}/leases/{lease}/submit -------------------------------------------- */

static void on_lease_ended(int rc, void *arg)
{
    ctx_t *c = arg;
    json_t *o = c->out;
    int status = json_is_true(json_object_get(o, "replayed")) ? 200 : 201;
    c->out = NULL;
    if (o) {
        respond_json(c, status, o);
        return;
    }
    respond_error(c, 409, QR_CODE_CONFLICT,
                  "task %" PRId64 " needs no more annotations, or you labeled it already",
                  c->task_id);
}

static void lease_unknown(ctx_t *c);

/* --- gold answers judged (issue 16) -------------------------------------------------------------
 *
 * After an annotation of a gold task committed, in a project that sets
 * gold_min_accuracy, PostgreSQL judges the annotator's gold answers
 * (quorum_gold_judge, sql/0028_gold_serving.sql); a pause, new or found,
 * is written to Redis, where every broker's grant reads it, before the
 * submit is answered: the annotator's next lease request is refused on any
 * broker. Should the Redis step fail, the next gold answer judges again and
 * a rebuild of the gold set reloads every live pause. The submit's answer
 * does not change: the annotation is stored either way. */

static void on_paused(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0)
        qr_warn("project %" PRId64 ": annotator %" PRId64
                " paused in PostgreSQL, not in Redis (%d)",
                c->project->id, c->user.id, rc);
    on_lease_ended(0, c);
}

static void on_gold_judged(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        qr_warn("project %" PRId64 ": judging annotator %" PRId64 "'s gold answers failed: %s",
                c->project->id, c->user.id, err ? err : "no row");
        on_lease_ended(0, c);
        return;
    }
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        on_lease_ended(0, c);
        return;
    }
    if (PQgetvalue(res, 0, 1)[0] == 't')
        qr_info("project %" PRId64 ": annotator %" PRId64 " paused: %s", c->project->id, c->user.id,
                PQgetvalue(res, 0, 2));
    if (qr_lease_annotator_pause(c->b->lease, c->project->id, c->user.id, 1, on_paused, c) < 0)
        on_paused(QR_EIO, c);
}

static void on_lease_committed(int rc, void *arg)
{
    ctx_t *c = arg;
    if (!c->gold || isnan(c->project->gold_min_accuracy)) {
        on_lease_ended(rc, c);
        return;
    }
    char proj[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user)};
    if (qr_pg_query(c->b->pg, QR_SQL_GOLD_JUDGE, 2, params, on_gold_judged, c) < 0)
        on_lease_ended(rc, c);
}

static void respond_idem_conflict(ctx_t *c)
{
    respond_error(c, 409, QR_CODE_IDEMPOTENCY_CONFLICT,
                  "idempotency key \"%s\" was used for annotation %" PRId64 " (task %" PRId64
                  ", lease %" PRId64 ") in this project; nothing stored, lease %" PRId64
                  " given back",
                  c->idem_key, c->idem_annotation, c->idem_task, c->idem_token, c->ids[1]);
}

static void on_idem_release_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                     void *arg)
{
    ctx_t *c = arg;
    if (!res)
        qr_warn("recording lease %" PRId64 " failed: %s", c->ids[1], err);
    respond_idem_conflict(c);
}

static void on_idem_returned(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* Gone meanwhile, or Redis is down: the reaper returns it at expiry. */
        respond_idem_conflict(c);
        return;
    }
    qr_broker_slots_freed(c->b, c->project->id, 1);
    const char *reason = "idempotency_conflict";
    record_event(c, QR_EV_RELEASE, info->task_id, c->ids[1], qr_now_ms(), info->granted_ms, NULL,
                 reason);
    char proj[24], tok[24], task[24], ann[24], g[24], x[24];
    const char *params[] = {i64(c->project->id, proj),
                            i64(c->ids[1], tok),
                            i64(info->task_id, task),
                            i64(c->user.id, ann),
                            i64(info->granted_ms, g),
                            i64(info->expires_ms, x),
                            "released",
                            reason};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_idem_release_recorded, c) < 0)
        on_idem_release_recorded(NULL, "pool closing", "", c);
}

/* The idempotency key names another annotation of this annotator in this
 * project (another task, or another lease): this is no resend, and storing
 * nothing while answering the other annotation would lose this one. Nothing
 * is stored; a lease still held is given back as released (the slot returns
 * to the queue and the annotator may have the task again), never committed:
 * 409 idempotency_conflict. */
static void idem_conflict(ctx_t *c)
{
    if (c->task_id &&
        qr_lease_submit_return(c->b->lease, c->project->id, c->ids[1], on_idem_returned, c) == 0)
        return;
    respond_idem_conflict(c);
}

/* Ends the lease of a stored annotation found by its idempotency key (a
 * resend after a submit died half-way): as committed, or as extended when
 * that commit gave its task one more annotator (c->idem_extended). */
static int end_committed(ctx_t *c, qr_lease_done_cb cb)
{
    if (c->idem_extended)
        return qr_lease_submit_extend(c->b->lease, c->project->id, c->ids[1], cb, c);
    return qr_lease_submit_commit(c->b->lease, c->project->id, c->ids[1], cb, c);
}

static void respond_body_conflict(ctx_t *c)
{
    char was[48] = "", now[48] = "";
    if (c->idem_active != c->active_ms) {
        snprintf(was, sizeof was, ", active_ms %" PRId64, c->idem_active);
        snprintf(now, sizeof now, ", active_ms %" PRId64, c->active_ms);
    }
    respond_error(c, 409, QR_CODE_IDEMPOTENCY_CONFLICT,
                  "idempotency key \"%s\" was used for annotation %" PRId64 " (task %" PRId64
                  ") with label \"%s\"%s; this request says label \"%s\"%s: a resend must "
                  "repeat the body; nothing changed",
                  c->idem_key, c->idem_annotation, c->idem_task, c->idem_label, was, c->label, now);
}

static void on_body_conflict_ended(int rc, void *arg)
{
    (void)rc;
    respond_body_conflict(arg);
}

/* The key names this very lease's annotation, but the body differs (another
 * label or active_ms): not a resend. The stored annotation stands and
 * nothing changes: 409 idempotency_conflict. A lease still pinned by a
 * submit that died half-way ends as committed, as for a replay, since its
 * annotation is stored. */
static void body_conflict(ctx_t *c)
{
    if (c->task_id && end_committed(c, on_body_conflict_ended) == 0)
        return;
    respond_body_conflict(c);
}

static void on_slots_left(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    (void)err;
    (void)sqlstate;
    /* Complete in PostgreSQL (filled by others, or auto-accepted by a
     * predictions update while this lease was live): the lease ends and its
     * slot goes with it, else the window would grant the task again, each
     * submit refused in turn. Otherwise (this annotator labeled it already,
     * or PostgreSQL cannot say) the slot returns. */
    int complete = res && PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) <= 0;
    int rc = complete
                 ? qr_lease_submit_drop(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c)
                 : qr_lease_submit_abort(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c);
    if (rc < 0)
        on_lease_ended(QR_EIO, c);
}

/* PostgreSQL refused a live lease's annotation as full (qr_lease_submit_abort
 * or _drop, as the task's state in PostgreSQL says), answered 409. */
static void refused_full(ctx_t *c)
{
    char task[24];
    const char *params[] = {i64(c->task_id, task)};
    if (qr_pg_query(c->b->pg, QR_SQL_TASK_SLOTS_LEFT, 1, params, on_slots_left, c) < 0)
        on_slots_left(NULL, "pool closing", "", c);
}

/* An earlier submission with this idempotency key, if any, is the answer,
 * when it was made on this very lease with the same body (a resend); on
 * another lease (idem_conflict) or with another body (body_conflict) it is a
 * conflict. */
static void on_idem_found(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 1) {
        c->idem_annotation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        c->idem_task = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        c->idem_token = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        /* A token names one lease of one task in the project; c->task_id is
         * 0 when the lease is no longer live (the resend of a committed
         * submit). */
        if (c->idem_token != c->ids[1] || (c->task_id && c->idem_task != c->task_id)) {
            idem_conflict(c);
            return;
        }
        c->idem_label = qr_xstrdup(PQgetvalue(res, 0, 3));
        c->idem_active = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        c->idem_extended = !strcmp(PQgetvalue(res, 0, 5), "t");
        if (strcmp(c->idem_label, c->label) || c->idem_active != c->active_ms) {
            body_conflict(c);
            return;
        }
        c->out = json_pack("{sI sI s:b}", "annotation_id", (json_int_t)c->idem_annotation,
                           "task_id", (json_int_t)c->idem_task, "replayed", 1);
        /* The lease, if still pinned by a submit that died half-way, ends
         * as that submit's commit would have ended it. */
        if (c->task_id && end_committed(c, on_lease_ended) == 0)
            return;
        on_lease_ended(0, c);
        return;
    }
    if (c->task_id) {
        refused_full(c);
        return;
    }
    lease_unknown(c);
}

static void find_idempotent(ctx_t *c)
{
    char proj[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), c->idem_key};
    if (qr_pg_query(c->b->pg, QR_SQL_ANNOTATION_BY_KEY, 3, params, on_idem_found, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* The task of a committed submit got one more annotator, and its slot is
 * in Redis: one long poll of the project may take it. */
static void on_extended(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc == 0)
        qr_broker_slots_freed(c->b, c->project->id, 1);
    on_lease_ended(rc, c);
}

static void on_committed(int rc, int64_t annotation_id, const char *outcome, int extended,
                         const char *err, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* Unknown whether PostgreSQL committed. The lease stays pinned, so
         * the agent's resend (same lease, same idempotency key) within the
         * grace goes through or finds the first result; past it the reaper
         * returns the slot, and PostgreSQL's constraints keep it exact. */
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (strcmp(outcome, "created")) {
        /* "duplicate": this idempotency key was used before; "full": the
         * task needs nothing more, or this annotator labeled it already
         * (perhaps with this very key, by a submit whose answer was lost). */
        if (c->idem_key) {
            find_idempotent(c);
            return;
        }
        refused_full(c);
        return;
    }
    c->out = json_pack("{sI sI s:b}", "annotation_id", (json_int_t)annotation_id, "task_id",
                       (json_int_t)c->task_id, "replayed", 0);
    /* The lease log's label feeds time on task per label (the throughput
     * report); a schema project's values are not labels of that kind. */
    record_event(c, QR_EV_SUBMIT, c->task_id, c->ids[1], qr_now_ms(), c->granted_ms,
                 c->project->schema->implied ? c->label : NULL, NULL);
    /* The annotation is committed: the answer is "created" even if Redis is
     * unreachable now (the pinned lease then expires, and PostgreSQL's
     * done_count keeps the task from being over-filled). A commit that gave
     * its task one more annotator (dynamic overlap) leaves it a free slot,
     * and one long poll of the project wakes for it; a gold answer is judged
     * once its lease ended (on_lease_committed). */
    if (extended) {
        if (qr_lease_submit_extend(c->b->lease, c->project->id, c->ids[1], on_extended, c) < 0)
            on_lease_ended(QR_EIO, c);
        return;
    }
    if (qr_lease_submit_commit(c->b->lease, c->project->id, c->ids[1], on_lease_committed, c) < 0)
        on_lease_committed(QR_EIO, c);
}

static void on_submit_begun(int rc, const qr_lease_info_t *info, void *arg);

/* The lease is unknown to Redis. If Redis lost its state after granting
 * it (the project's state was rebuilt since) and PostgreSQL's lease log
 * shows it granted to this annotator, unexpired and not ended, the submit
 * goes through on the log's word; PostgreSQL's constraints still keep the
 * task from being over-filled. Anything else is 409. */
static void lease_refused(ctx_t *c)
{
    respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                  "lease %" PRId64 " is not live (expired, ended or not yours); nothing stored",
                  c->ids[1]);
}

static void on_init_time(int rc, int64_t init_ms, void *arg)
{
    ctx_t *c = arg;
    int64_t now = qr_now_ms();
    if (rc < 0 || init_ms <= c->granted_ms || c->granted_ms + c->project->lease_ttl_ms <= now) {
        lease_refused(c);
        return;
    }
    qr_info("project %" PRId64 ": lease %" PRId64 " lost with Redis; accepted from the lease log",
            c->project->id, c->ids[1]);
    qr_lease_info_t info = {c->task_id, c->granted_ms, c->granted_ms + c->project->lease_ttl_ms, 0};
    c->task_id = 0;
    on_submit_begun(0, &info, c);
}

static void on_lease_from_log(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        lease_refused(c);
        return;
    }
    c->task_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->granted_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    if (qr_lease_init_time(c->b->lease, c->project->id, on_init_time, c) < 0)
        lease_refused(c);
}

static void lease_unknown(ctx_t *c)
{
    char proj[24], tok[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], tok), i64(c->user.id, user)};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_FROM_LOG, 3, params, on_lease_from_log, c) < 0)
        lease_refused(c);
}

/* --- labels checked against the task's data --------------------------------------------------
 *
 * A span field's value may not end past the text it marks (data[over], in
 * code points), so a submission with span values waits for the lengths of
 * those data keys before anything is stored. While the lease is live in
 * Redis this happens before the submit begins: qr_lease_peek finds the
 * task and changes nothing, so a refused value (422) leaves the lease as it
 * was (live, heartbeats allowed, its expiry unchanged) and the annotator
 * resubmits. A lease only the lease log still knows (Redis lost it) is
 * checked after the log vouched for it, before its commit. */

static void submit_start_now(ctx_t *c);
static void commit_row(ctx_t *c);

static void on_text_lengths(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        /* The task is gone with its project, and the lease with it. */
        lease_refused(c);
        return;
    }
    if (check_text_lengths(c, res) < 0)
        return; /* answered */
    json_decref(c->labels);
    c->labels = NULL;
    c->then(c);
}

/* Reads the lengths of the data keys c->labels needs from task, checks,
 * then runs then(c); or answers 422 (nothing stored), 409 or 503. */
static void check_with_data(ctx_t *c, int64_t task, void (*then)(ctx_t *c))
{
    char t[24];
    c->then = then;
    if (query_text_lengths(c, i64(task, t), on_text_lengths) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_peeked(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc == QR_ECONFLCT) {
        /* Not live in Redis: the submit's own path answers (a resend, the
         * lease log, or 409), checking the data first if it stores. */
        submit_start_now(c);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "submit");
        return;
    }
    check_with_data(c, info->task_id, submit_start_now);
}

static void on_submit_begun(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc == QR_ECONFLCT) {
        if (c->idem_key) {
            find_idempotent(c);
            return;
        }
        lease_unknown(c);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "submit");
        return;
    }
    c->task_id = info->task_id;
    c->granted_ms = info->granted_ms;
    c->expires_ms = info->expires_ms;
    c->gold = info->gold;
    if (c->labels) {
        /* Only a lease from the lease log gets here unchecked: one live in
         * Redis was checked before it began (on_peeked). */
        check_with_data(c, info->task_id, commit_row);
        return;
    }
    commit_row(c);
}

static void commit_row(ctx_t *c)
{
    qr_commit_row_t row = {
        .task_id = c->task_id,
        .project_id = c->project->id,
        .annotator_id = c->user.id,
        .token = c->ids[1],
        .granted_ms = c->granted_ms,
        .expires_ms = c->expires_ms,
        .active_ms = c->active_ms,
        .label = c->label,
        .idempotency_key = c->idem_key,
    };
    qr_committer_add(c->b->committer, &row, on_committed, c);
}

/* Reads one result object (label or labels, idempotency_key, active_ms)
 * into c: c->label is the text to store (the label of a plain project, the
 * canonical JSON of a schema project's labels, label_schema.h), c->labels
 * the labels object when span fields still need the task's data. Responds
 * 422 and returns -1 when a field is wrong. A plain project's "label" is
 * checked as it always was (422 invalid or unknown_label). */
static int read_result(ctx_t *c, json_t *o)
{
    qr_result_body_t r;
    qr_invalid_t why;
    const qr_label_schema_t *schema = c->project->schema;
    json_t *labels = NULL;
    char *canonical = NULL;
    if (schema->implied && !json_object_get(o, "labels")) {
        if (qr_validate_result(o, c->project->labels, c->project->nlabels, &r, &why) < 0) {
            respond_invalid(c, &why);
            return -1;
        }
        canonical = qr_xstrdup(r.label);
    } else if (qr_validate_result_labels(o, schema, &r, &canonical, &labels, &why) < 0) {
        respond_invalid(c, &why);
        return -1;
    }
    const char *keys[1];
    if (labels && qr_label_data_keys(schema, labels, keys, 1) > 0)
        c->labels = labels;
    else
        json_decref(labels);
    c->active_ms = r.active_ms;
    c->label = canonical;
    c->idem_key = r.idempotency_key ? qr_xstrdup(r.idempotency_key) : NULL;
    return 0;
}

static void submit_start_now(ctx_t *c)
{
    if (qr_lease_submit_begin(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(),
                              SUBMIT_GRACE_MS, on_submit_begun, c) < 0)
        respond_backend(c, "Redis", "submit");
}

static void submit_start(ctx_t *c)
{
    if (!c->labels) {
        submit_start_now(c);
        return;
    }
    if (qr_lease_peek(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(), on_peeked,
                      c) < 0)
        respond_backend(c, "Redis", "submit");
}

void h_submit(ctx_t *c)
{
    c->timed = 1 + QR_METRIC_SUBMIT;
    if (parse_body(c, 0) < 0 || read_result(c, c->body) < 0)
        return;
    submit_start(c);
}

/* --- POST /v1/projects/{id}/submit (batch) -----------------------------------------------------
 */

static void batch_result(ctx_t *child, int status, json_t *j)
{
    ctx_t *parent = child->parent;
    /* Each child answers once, and the parent waits for all of them: an
     * answer too many would free the parent under the others. */
    QR_ASSERT(parent->pending > 0);
    char tok[24];
    json_t *entry = json_pack("{s:s s:i}", "lease", i64(child->ids[1], tok), "status", status);
    json_object_update(entry, j);
    json_decref(j);
    json_array_set_new(parent->out, (size_t)child->index, entry);
    child->parent = NULL;
    ctx_free(child);
    if (--parent->pending == 0) {
        json_t *o = json_pack("{s:O}", "results", parent->out);
        respond_json(parent, 200, o);
    }
}

void h_batch_submit(ctx_t *c)
{
    c->timed = 1 + QR_METRIC_BATCH_SUBMIT;
    if (parse_body(c, 0) < 0)
        return;
    json_t *results;
    qr_invalid_t why;
    if (qr_validate_batch_body(c->body, &results, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    size_t n = json_array_size(results);
    c->out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(c->out, json_null());
    c->pending = (int)n + 1; /* +1 until every child has started */
    /* The children's leases are pinned (or peeked at) in one Redis call. */
    qr_lease_cork(c->b->lease);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(results, i);
        ctx_t *k = qr_xcalloc(1, sizeof *k);
        k->b = c->b;
        /* Borrowed for logging: the parent holds the request until every
         * child has answered through batch_result. */
        k->req = c->req;
        k->route = c->route;
        k->user = c->user;
        k->project = c->project;
        k->project->refs++;
        k->parent = c;
        k->child_done = batch_result;
        k->index = (int)i;
        k->ids[0] = c->ids[0];
        if (qr_validate_batch_entry(o, &k->ids[1], &why) < 0) {
            respond_invalid(k, &why);
            continue;
        }
        if (read_result(k, o) < 0)
            continue;
        submit_start(k);
    }
    qr_lease_uncork(c->b->lease);
    if (--c->pending == 0) {
        json_t *o = json_pack("{s:O}", "results", c->out);
        respond_json(c, 200, o);
    }
}
