/*
 * api_tasks.c - POST /v1/projects/{id}/tasks: imports, parsed off the loop,
 * each recorded with its tasks in one transaction (sql/0017_imports.sql);
 * GET /v1/projects/{id}/imports lists them.
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

/* 409 duplicate_import, with the count of duplicate tasks and the earlier
 * import (0: unknown) beside the message. */
void respond_duplicate(ctx_t *c, long long dups, long long earlier, int same_file)
{
    char msg[512], ago[64] = "";
    if (earlier)
        snprintf(ago, sizeof ago, " (import %lld)", earlier);
    if (same_file)
        snprintf(msg, sizeof msg,
                 "this file (SHA-256 %.12s...) was imported into project %" PRId64
                 " already%s; nothing imported; allow_duplicates=1 imports it again",
                 c->import_sha256, c->project->id, ago);
    else
        snprintf(msg, sizeof msg,
                 "%lld of these %" PRId64 " tasks have an external_id project %" PRId64
                 " holds already%s; nothing imported; allow_duplicates=1 imports them again"
                 " (without their external ids)",
                 dups, c->imp.n ? c->imp.n : c->ntasks, c->project->id, ago);
    respond_json(c, 409,
                 json_pack("{s:{s:s,s:s,s:I,s:I}}", "error", "code", QR_CODE_DUPLICATE_IMPORT,
                           "message", msg, "duplicates", (json_int_t)dups, "import_id",
                           (json_int_t)earlier));
}

static void on_import_copied(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        long long dups = 0, earlier = 0;
        int same = 0;
        if (!strcmp(sqlstate, QR_SQLSTATE_DUPLICATE_IMPORT) &&
            sscanf(err, "%lld %lld %d", &dups, &earlier, &same) == 3) {
            respond_duplicate(c, dups, earlier, same);
            return;
        }
        if (!strcmp(sqlstate, QR_SQLSTATE_IMPORT_USER)) {
            respond_error(c, 422, QR_CODE_IMPORT_UNKNOWN_USER,
                          "annotations_as: %s; nothing imported", err);
            return;
        }
        if (!strcmp(sqlstate, "23505")) {
            /* Another import took one of these external ids (or this import
             * key) since: nothing of this one was committed. */
            respond_error(c, 409, QR_CODE_DUPLICATE_IMPORT,
                          "an external_id of this file, or its import key, is in project %" PRId64
                          " already (another import took it meanwhile); nothing imported",
                          c->project->id);
            return;
        }
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    qr_info("project %" PRId64 ": imported %" PRId64 " tasks", c->project->id, c->ntasks);
    if (qr_lease_window_reopen(c->b->lease, c->project->id, on_import_reopened, c) < 0)
        on_import_reopened(QR_EIO, c);
}

/* Writes the import: its COPY rows for task ids ids[0..n) (ascending) and
 * import import_id, then the transaction that records it, copies them and
 * adds their annotations. Takes ids. */
static void import_write(ctx_t *c, int64_t *ids, int64_t import_id)
{
    int64_t n = c->imp.n;
    qr_project_t *p = c->project;
    qr_import_policy_t pol = {
        .project_id = p->id,
        .annotations_per_task = p->annotations_per_task,
        .overlap_fraction = p->overlap_fraction,
        .overlap_annotations = p->overlap_annotations,
        .overlap_first = p->overlap_first,
        .sampling = p->sampling,
        .stratify_field = p->stratify_field,
        .import_id = import_id,
    };
    uint64_t seed = import_seed();
    qr_buf_t rows;
    qr_buf_init(&rows);
    qr_import_rows(&c->imp, ids, &pol, c->strata.n ? &c->strata : NULL, seed, &rows);
    size_t rows_len = rows.len;
    char *rows_data = qr_buf_steal(&rows);
    c->ntasks = n;
    c->out =
        json_pack("{sI sI sI sI}", "imported", (json_int_t)n, "first_task_id", (json_int_t)ids[0],
                  "last_task_id", (json_int_t)ids[n - 1], "import_id", (json_int_t)import_id);
    if (c->external_dropped)
        json_object_set_new(c->out, "external_ids_dropped",
                            json_integer((json_int_t)c->external_dropped));
    char proj[24], imp[24], user[24], count[24], first[24], last[24];
    char *external = qr_import_external_ids(&c->imp);
    const char *params[] = {i64(p->id, proj),
                            i64(import_id, imp),
                            c->import_key,
                            c->import_file,
                            c->import_sha256,
                            i64(c->user.id, user),
                            i64(n, count),
                            i64(ids[0], first),
                            i64(ids[n - 1], last),
                            c->allow_duplicates ? "true" : "false",
                            external};
    /* The imported annotations, written after the COPY in its transaction:
     * the ids of the tasks that have some, and their arrays, aligned. */
    qr_buf_t task_ids, anns;
    qr_buf_init(&task_ids);
    qr_buf_init(&anns);
    if (c->imp.annotated) {
        qr_buf_appends(&task_ids, "{");
        qr_buf_appends(&anns, "[");
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            const char *a = c->imp.tasks[i].annotations;
            if (!a)
                continue;
            qr_buf_appendf(&task_ids, "%s%" PRId64, k ? "," : "", ids[i]);
            if (k)
                qr_buf_appends(&anns, ",");
            qr_buf_appends(&anns, a);
            k++;
        }
        qr_buf_appends(&task_ids, "}");
        qr_buf_appends(&anns, "]");
    }
    const char *post[] = {proj,
                          c->annotations_as,
                          c->count_annotations ? "true" : "false",
                          task_ids.data,
                          anns.data,
                          imp,
                          first,
                          last};
    free(ids);
    qr_import_free(&c->imp);
    /* The import's row, its tasks, their annotations and the auto-accept of
     * its confident ones commit together, or nothing does. */
    if (qr_pg_copy_in_tx_post(c->b->pg, QR_SQL_IMPORT_BEGIN, 11, params, QR_SQL_TASKS_COPY,
                              rows_data, rows_len, QR_SQL_IMPORT_POST, 8, post, on_import_copied,
                              c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
    free(external);
    qr_buf_free(&task_ids);
    qr_buf_free(&anns);
}

/* The ids one by one, when the range was not contiguous. */
static void on_import_ids(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    (void)sqlstate;
    if (!res || PQntuples(res) != c->imp.n) {
        respond_backend(c, "PostgreSQL", err ? err : "wrong id count");
        return;
    }
    int64_t n = c->imp.n;
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    import_write(c, ids, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
}

static void on_import_range(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    (void)sqlstate;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no id range");
        return;
    }
    int64_t n = c->imp.n;
    int64_t lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    int64_t count = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (count != n || hi - lo + 1 != n) {
        /* Another import drew ids meanwhile: draw them one by one. */
        char num[24];
        const char *params[] = {i64(n, num)};
        if (qr_pg_query(c->b->pg, QR_SQL_IMPORT_IDS, 1, params, on_import_ids, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = lo + i;
    import_write(c, ids, strtoll(PQgetvalue(res, 0, 3), NULL, 10));
}

static void import_allocate_ids(ctx_t *c)
{
    char n[24];
    const char *params[] = {i64(c->imp.n, n)};
    if (qr_pg_query(c->b->pg, QR_SQL_IMPORT_ID_RANGE, 1, params, on_import_range, c) < 0)
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

/* The steps before the task ids: the strata's counts, for stratified
 * sampling. */
static void import_prepare(ctx_t *c)
{
    if (!strcmp(c->project->sampling, "stratified")) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (qr_pg_query(c->b->pg, QR_SQL_STRATA, 1, params, on_import_strata, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    import_allocate_ids(c);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* allow_duplicates: the tasks whose external id the project holds already
 * are imported without one (an external id names one task of a project). */
static void on_external_held(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    char **held = qr_xcalloc(n + 1, sizeof *held);
    for (size_t i = 0; i < n; i++)
        held[i] = PQgetvalue(res, (int)i, 0);
    qsort(held, n, sizeof *held, by_string);
    for (int64_t i = 0; i < c->imp.n && n; i++) {
        qr_import_task_t *t = &c->imp.tasks[i];
        if (t->external_id && bsearch(&t->external_id, held, n, sizeof *held, by_string)) {
            free(t->external_id);
            t->external_id = NULL;
            c->external_dropped++;
        }
    }
    free(held);
    import_prepare(c);
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
    memcpy(c->import_sha256, job->sha256, sizeof c->import_sha256);
    free((char *)job->stratify_field);
    for (int i = 0; i < job->nlabels; i++)
        free(job->labels[i]);
    free((char **)job->labels);
    qr_import_schema_free((qr_import_schema_t *)job->schema);
    free(job);
    /* Parsed (and hashed): the body is not needed any more, and held until
     * the COPY commits it would sit beside the tasks and their rows. */
    qr_http_request_drop_body(c->req);
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
    if (rc == QR_IMPORT_EREJECT) {
        /* A task against the project's rules: 422 naming its line and field. */
        respond_json(c, 422,
                     json_pack("{s:{s:s,s:s,s:I,s:s}}", "error", "code", QR_CODE_INVALID_TASK,
                               "message", err, "line", (json_int_t)c->imp.fail_line, "field",
                               c->imp.fail_field));
        return;
    }
    if (rc < 0) {
        if (c->imp.fail_line > 0)
            respond_json(c, 400,
                         json_pack("{s:{s:s,s:s,s:I}}", "error", "code", code, "message", err,
                                   "line", (json_int_t)c->imp.fail_line));
        else
            respond_error(c, 400, code, "%s", err);
        return;
    }
    if (c->allow_duplicates) {
        char *external = qr_import_external_ids(&c->imp);
        if (strcmp(external, "[]")) {
            char proj[24];
            const char *params[] = {i64(c->project->id, proj), external};
            if (qr_pg_query(c->b->pg, QR_SQL_EXTERNAL_IDS_HELD, 2, params, on_external_held, c) < 0)
                respond_backend(c, "PostgreSQL", "pool closing");
            free(external);
            return;
        }
        free(external);
    }
    import_prepare(c);
}

/* The import's query parameters into c: file_name (1-1000 bytes), key
 * (import_key: 1-200 of [A-Za-z0-9_.-]), allow_duplicates (1 or true),
 * count_annotations (1 or true), delimiter (, ; | or tab), external_id_key
 * (1-200 bytes), annotations_as (a user name).
 * Responds 400 and returns -1 on a bad one. */
int import_params(ctx_t *c)
{
    char buf[1024];
    const char *v = query_param(c->req->query, "file_name", buf, sizeof buf);
    if (v) {
        json_t *utf8 = json_string(v); /* NULL: not UTF-8 */
        int ok = utf8 && *v && strlen(v) <= 1000 && qr_validate_text(v);
        json_decref(utf8);
        if (!ok) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "file_name must be 1 to 1000 bytes of UTF-8 text without control "
                          "characters");
            return -1;
        }
        c->import_file = qr_xstrdup(v);
    }
    v = query_param(c->req->query, "import_key", buf, sizeof buf);
    if (v) {
        size_t n = strlen(v);
        if (n < 1 || n > 200 ||
            strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_.-") != n) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "import_key must be 1 to 200 characters of A-Z a-z 0-9 _ . -");
            return -1;
        }
        c->import_key = qr_xstrdup(v);
    }
    v = query_param(c->req->query, "allow_duplicates", buf, sizeof buf);
    if (v) {
        if (strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "0") && strcmp(v, "false")) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "allow_duplicates must be 1, true, 0 or false");
            return -1;
        }
        c->allow_duplicates = !strcmp(v, "1") || !strcmp(v, "true");
    }
    v = query_param(c->req->query, "count_annotations", buf, sizeof buf);
    if (v) {
        if (strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "0") && strcmp(v, "false")) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "count_annotations must be 1, true, 0 or false");
            return -1;
        }
        c->count_annotations = !strcmp(v, "1") || !strcmp(v, "true");
    }
    v = query_param(c->req->query, "delimiter", buf, sizeof buf);
    if (v) {
        if (!strcmp(v, "tab") || !strcmp(v, "\t"))
            c->delimiter = '\t';
        else if (strlen(v) == 1 && strchr(",;|\t", v[0]))
            c->delimiter = v[0];
        else {
            respond_error(c, 400, QR_CODE_BAD_REQUEST, "delimiter must be one of , ; | or tab");
            return -1;
        }
    }
    v = query_param(c->req->query, "external_id_key", buf, sizeof buf);
    if (v) {
        json_t *utf8 = json_string(v);
        int ok = utf8 && *v && strlen(v) <= 200 && qr_validate_text(v);
        json_decref(utf8);
        if (!ok) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "external_id_key must be 1 to 200 bytes of UTF-8 text without control "
                          "characters");
            return -1;
        }
        c->external_id_key = qr_xstrdup(v);
    }
    v = query_param(c->req->query, "annotations_as", buf, sizeof buf);
    if (v) {
        if (!qr_validate_name(v)) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST,
                          "annotations_as must be a user name (1 to 200 characters, no control "
                          "characters)");
            return -1;
        }
        c->annotations_as = qr_xstrdup(v);
    }
    return 0;
}

/* The body by its Content-Type: text/csv is CSV (its delimiter detected
 * from the header unless ?delimiter=), text/tab-separated-values TSV;
 * otherwise a JSON array
 * (its first non-blank byte is '[') or JSON lines. Parsed in the thread
 * pool within the configured budget and task cap, a few imports at a time
 * (import_queue.h): the body stays valid until the request is answered, and
 * the job holds its own copy of the stratify field. */
void h_import(ctx_t *c)
{
    if (import_params(c) < 0)
        return;
    const char *ct = c->req->content_type;
    qr_import_job_t *job = qr_xcalloc(1, sizeof *job);
    int tsv = ct && !strncasecmp(ct, "text/tab-separated-values", 25);
    job->format =
        tsv || (ct && !strncasecmp(ct, "text/csv", 8)) ? QR_IMPORT_CSV : QR_IMPORT_JSON_ANY;
    job->delimiter = c->delimiter ? c->delimiter : tsv ? '\t' : 0;
    job->external_id_key = c->external_id_key;
    job->nlabels = c->project->nlabels;
    job->schema = qr_import_schema_new(c->project->schema);
    char **labels = qr_xcalloc((size_t)job->nlabels + 1, sizeof *labels);
    for (int i = 0; i < job->nlabels; i++)
        labels[i] = qr_xstrdup(c->project->labels[i]);
    job->labels = labels;
    job->body = c->req->body;
    job->len = c->req->body_len;
    job->stratify_field =
        c->project->stratify_field ? qr_xstrdup(c->project->stratify_field) : NULL;
    job->limits = c->b->cfg.import;
    job->data = c;
    int rc = qr_import_queue_submit(c->b->imports, job, on_import_parsed);
    if (rc < 0) {
        free((char *)job->stratify_field);
        for (int i = 0; i < job->nlabels; i++)
            free(job->labels[i]);
        free((char **)job->labels);
        qr_import_schema_free((qr_import_schema_t *)job->schema);
        free(job);
        if (rc == UV_ECANCELED)
            respond_error(c, 503, QR_CODE_UNAVAILABLE, "the broker is stopping; retry");
        else
            respond_backend(c, "the import parser", uv_strerror(rc));
        return;
    }
    qr_http_on_gone(c->req, on_import_gone, job);
}

/* --- GET /v1/projects/{id}/imports[?key=K] ----------------------------------------------- */

/* The project's imports, newest first; with key, only the import made with
 * that import key (none: it did not commit, or not yet). */
void h_import_list(ctx_t *c)
{
    char buf[256], proj[24];
    const char *key = query_param(c->req->query, "key", buf, sizeof buf);
    const char *params[] = {i64(c->project->id, proj), key ? key : ""};
    c->list_key = "imports";
    if (qr_pg_query(c->b->pg, QR_SQL_IMPORT_LIST, 2, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
