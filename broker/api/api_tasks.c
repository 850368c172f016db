/*
 * api_tasks.c - POST /v1/projects/{id}/tasks: imports, parsed off the loop.
 */
#include "api_int.h"

/* --- POST /v1/projects/{id}/tasks (JSONL import) ----------------------------------------- */

static void on_import_reopened(int rc, void *arg)
{
    ctx_t *c = arg;
    qr_broker_work_ready(c->b, c->project->id);
    /* Redis being down does not undo the import: the window reloads later. */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 201, o);
}

static void on_import_copied(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    qr_info("project %" PRId64 ": imported %" PRId64 " tasks", c->project->id, c->ntasks);
    if (qr_lease_window_reopen(c->b->lease, c->project->id, on_import_reopened, c) < 0)
        on_import_reopened(QR_EIO, c);
}

static void on_import_ids(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != c->imp.n) {
        respond_backend(c, "PostgreSQL", err ? err : "wrong id count");
        return;
    }
    int64_t n = c->imp.n;
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    qr_project_t *p = c->project;
    qr_import_policy_t pol = {
        .project_id = p->id,
        .annotations_per_task = p->annotations_per_task,
        .overlap_fraction = p->overlap_fraction,
        .overlap_annotations = p->overlap_annotations,
        .overlap_first = p->overlap_first,
        .sampling = p->sampling,
        .stratify_field = p->stratify_field,
    };
    uint64_t seed;
    char hex[17];
    if (qr_random_hex(8, hex) < 0)
        seed = (uint64_t)qr_now_ms();
    else
        seed = strtoull(hex, NULL, 16);
    qr_buf_t rows;
    qr_buf_init(&rows);
    qr_import_rows(&c->imp, ids, &pol, c->strata.n ? &c->strata : NULL, seed, &rows);
    c->ntasks = n;
    c->out = json_pack("{sI sI sI}", "imported", (json_int_t)n, "first_task_id", (json_int_t)ids[0],
                       "last_task_id", (json_int_t)ids[n - 1]);
    free(ids);
    qr_import_free(&c->imp);
    if (qr_pg_copy_in(c->b->pg, QR_SQL_TASKS_COPY, rows.data, rows.len, on_import_copied, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
    qr_buf_free(&rows);
}

static void import_allocate_ids(ctx_t *c)
{
    char n[24];
    const char *params[] = {i64(c->imp.n, n)};
    if (qr_pg_query(c->b->pg, QR_SQL_TASK_IDS, 1, params, on_import_ids, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_import_strata(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    c->strata.n = n;
    c->strata.names = qr_xcalloc(n + 1, sizeof *c->strata.names);
    c->strata.counts = qr_xcalloc(n + 1, sizeof *c->strata.counts);
    for (size_t i = 0; i < n; i++) {
        c->strata.names[i] = qr_xstrdup(PQgetvalue(res, (int)i, 0));
        c->strata.counts[i] = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
    }
    import_allocate_ids(c);
}

/* The client went away while its import waited for a parse slot: it is not
 * parsed for nobody (import_queue.h). */
static void on_import_gone(qr_http_request_t *req, void *arg)
{
    (void)req;
    qr_import_job_t *job = arg;
    job->cancelled = 1;
}

/* Back on the loop once the parse ran in the thread pool (or did not: the
 * client left, or the broker is stopping). */
static void on_import_parsed(qr_import_job_t *job, int status)
{
    ctx_t *c = job->data;
    qr_http_on_gone(c->req, NULL, NULL);
    int rc = job->rc;
    char err[sizeof job->err];
    memcpy(err, job->err, sizeof err);
    const char *code = job->format == QR_IMPORT_CSV          ? "invalid_csv"
                       : job->format == QR_IMPORT_JSON_ARRAY ? "invalid_json"
                                                             : "invalid_jsonl";
    c->imp = job->imp;
    free((char *)job->stratify_field);
    free(job);
    if (status < 0 || qr_http_request_gone(c->req)) {
        /* Nobody to tell: a client that left imports nothing. */
        qr_import_free(&c->imp);
        respond_error(c, 503, QR_CODE_UNAVAILABLE, "the broker is stopping; retry");
        return;
    }
    if (rc == QR_ETOOBIG) {
        respond_error(c, 413, QR_CODE_IMPORT_TOO_LARGE, "%s", err);
        return;
    }
    if (rc < 0) {
        respond_error(c, 400, code, "%s", err);
        return;
    }
    if (!strcmp(c->project->sampling, "stratified")) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (qr_pg_query(c->b->pg, QR_SQL_STRATA, 1, params, on_import_strata, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    import_allocate_ids(c);
}

/* The body by its Content-Type: text/csv is CSV; otherwise a JSON array
 * (its first non-blank byte is '[') or JSON lines. Parsed in the thread
 * pool within the configured budget and task cap, a few imports at a time
 * (import_queue.h): the body stays valid until the request is answered, and
 * the job holds its own copy of the stratify field. */
void h_import(ctx_t *c)
{
    const char *ct = c->req->content_type;
    qr_import_job_t *job = qr_xcalloc(1, sizeof *job);
    job->format = ct && !strncasecmp(ct, "text/csv", 8) ? QR_IMPORT_CSV : QR_IMPORT_JSON_ANY;
    job->body = c->req->body;
    job->len = c->req->body_len;
    job->stratify_field =
        c->project->stratify_field ? qr_xstrdup(c->project->stratify_field) : NULL;
    job->limits = c->b->cfg.import;
    job->data = c;
    int rc = qr_import_queue_submit(c->b->imports, job, on_import_parsed);
    if (rc < 0) {
        free((char *)job->stratify_field);
        free(job);
        if (rc == UV_ECANCELED)
            respond_error(c, 503, QR_CODE_UNAVAILABLE, "the broker is stopping; retry");
        else
            respond_backend(c, "the import parser", uv_strerror(rc));
        return;
    }
    qr_http_on_gone(c->req, on_import_gone, job);
}
