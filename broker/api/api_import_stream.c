/*
 * api_import_stream.c - POST /v1/projects/{id}/tasks (JSON lines, a JSON
 * array, CSV or TSV) for a project whose policy needs no whole batch:
 * imported as it arrives, never held whole (issue 14, point 2).
 *
 * The body comes in pieces from the HTTP layer (qr_http_continue_stream)
 * and is cut into batches of about BATCH_BYTES; each batch is parsed in
 * libuv's thread pool, one at a time per import (so in order), into COPY
 * rows with task ids drawn in blocks of ID_BLOCK; the rows go into one COPY
 * streamed into PostgreSQL (stream_open) in the import's transaction,
 * which ends with the import's record and its imported annotations
 * (QR_SQL_IMPORT_STREAM_END) and commits. Backpressure runs back from
 * PostgreSQL's socket: a COPY that cannot take more stops the batches,
 * and received bytes waiting past BATCH_BYTES stop the client's reading.
 * So an import holds a few batches, whatever its size.
 *
 * Any error ends it with the words of the whole-body import (api_tasks.c)
 * as soon as it is known: a bad task, a duplicate external id in the body
 * or a broker limit while the body streams (answered at once, the rest of
 * the body dropped); the COPY's own refusals (an external id the project
 * holds, the same file imported before) at its end. The transaction is
 * then rolled back: nothing is imported.
 *
 * The plumbing of a streamed body (the answer taken once, the COPY
 * abandoned, the client's reading paused) is api_stream.c's.
 *
 * Life: the stream (istream_t) outlives the request: the request's context
 * is answered (and freed) once, and the stream is freed when nothing of it
 * is pending any more (a batch in the pool, the COPY, an id block).
 */
#include "api_int.h"

#include <math.h>

#define BATCH_BYTES (256 << 10) /* bytes of body parsed at once */
#define ID_BLOCK    131072      /* task ids drawn at once */

typedef struct istream_s {
    body_stream_t bs; /* first: the stream's callbacks get &bs */
    qr_import_stream_t *st;
    int64_t *ids; /* fresh task ids, ascending: ids[idpos..nids) unused */
    size_t nids, idpos;
    int ids_pending; /* an id block is being drawn */
    size_t block;    /* ids asked for in that block */
    int64_t length;  /* the body's Content-Length (-1: chunked) */
    int64_t import_id;
    /* The batch in the thread pool (bs.working), and its outcome. */
    uv_work_t work;
    char *batch;
    size_t batch_len;
    int batch_last;
    int64_t *batch_ids;
    size_t batch_nids, batch_used;
    qr_buf_t rows;
    int rc;
    char err[512];
    int more_ids;   /* the last batch stopped for want of ids: go on once there are some */
    int stuck;      /* and took none: wait for a new block first */
    int csv;        /* the body is CSV (or TSV) */
    char delimiter; /* its delimiter; 0: detected from the header line */
} istream_t;

static void maybe_free(body_stream_t *bs)
{
    istream_t *s = (istream_t *)bs;
    if (!bs->answered || bs->working || bs->copy || s->ids_pending)
        return;
    qr_import_stream_free(s->st);
    qr_buf_free(&bs->in);
    qr_buf_free(&s->rows);
    free(s->ids);
    free(s->batch);
    free(s->batch_ids);
    free(s);
}

/* Answers an error with words and status as the whole-body import does;
 * nothing is imported. */
static void fail(istream_t *s, int status, const char *code, const char *msg, int64_t line,
                 const char *field)
{
    ctx_t *c = stream_take_ctx(&s->bs);
    if (!c)
        return;
    stream_abandon(&s->bs, "import refused");
    if (field)
        respond_json(c, status,
                     json_pack("{s:{s:s,s:s,s:I,s:s}}", "error", "code", code, "message", msg,
                               "line", (json_int_t)line, "field", field));
    else if (line > 0)
        respond_json(c, status,
                     json_pack("{s:{s:s,s:s,s:I}}", "error", "code", code, "message", msg, "line",
                               (json_int_t)line));
    else
        respond_error(c, status, code, "%s", msg);
    maybe_free(&s->bs);
}

/* --- task ids, in blocks --------------------------------------------------------------------- */

/* The ids to draw next: ID_BLOCK, or fewer when the body's length says
 * fewer can follow (a task takes 3 bytes at least: "{}" and a separator),
 * so that a small import leaves no large gap in the sequence. */
static size_t block_size(const istream_t *s)
{
    if (s->length < 0 || s->stuck)
        return ID_BLOCK; /* unknown, or a batch of rows shorter than 3 bytes waits */
    int64_t left = s->length - s->bs.received;
    int64_t n = (left > 0 ? left : 0) / 3 + 16;
    return n < ID_BLOCK ? (size_t)n : ID_BLOCK;
}

static void add_ids(istream_t *s, const int64_t *ids, size_t n)
{
    if (s->idpos > 0) { /* the used ones go first */
        memmove(s->ids, s->ids + s->idpos, (s->nids - s->idpos) * sizeof *s->ids);
        s->nids -= s->idpos;
        s->idpos = 0;
    }
    s->ids = qr_xrealloc(s->ids, (s->nids + n + 1) * sizeof *s->ids);
    memcpy(s->ids + s->nids, ids, n * sizeof *ids);
    s->nids += n;
    s->stuck = 0; /* a batch that wanted more gets them all next */
}

static void on_id_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    istream_t *s = arg;
    (void)sqlstate;
    s->ids_pending = 0;
    if (s->bs.answered) {
        maybe_free(&s->bs);
        return;
    }
    if (!res || PQntuples(res) < 1) {
        stream_fail_backend(&s->bs, "PostgreSQL", err ? err : "no task ids");
        return;
    }
    size_t n = (size_t)PQntuples(res);
    int64_t *ids = qr_xcalloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    add_ids(s, ids, n);
    free(ids);
    stream_pump(&s->bs);
}

/* A block drawn as a range (QR_SQL_TASK_ID_RANGE, or the first one with
 * the import id, QR_SQL_IMPORT_ID_RANGE): used when it is one, else drawn
 * again one by one. 0, or -1 after failing the import. */
static int take_range(istream_t *s, const PGresult *res)
{
    int64_t lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    int64_t count = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (count != (int64_t)s->block || hi - lo + 1 != count) {
        /* Another import drew ids meanwhile: draw them one by one. */
        char num[24];
        const char *params[] = {i64((int64_t)s->block, num)};
        if (qr_pg_query(s->bs.b->pg, QR_SQL_TASK_IDS, 1, params, on_id_rows, s) < 0) {
            stream_fail_backend(&s->bs, "PostgreSQL", "pool closing");
            return -1;
        }
        s->ids_pending = 1;
        return 0;
    }
    int64_t *ids = qr_xcalloc((size_t)count, sizeof *ids);
    for (int64_t i = 0; i < count; i++)
        ids[i] = lo + i;
    add_ids(s, ids, (size_t)count);
    free(ids);
    return 0;
}

/* The answer to a draw of ids: 1 when it may be used; else 0, the stream
 * being answered already (freed when done) or failed now. */
static int ids_arrived(istream_t *s, const PGresult *res, const char *err, const char *what)
{
    s->ids_pending = 0;
    if (s->bs.answered) {
        maybe_free(&s->bs);
        return 0;
    }
    if (!res || PQntuples(res) != 1) {
        stream_fail_backend(&s->bs, "PostgreSQL", err ? err : what);
        return 0;
    }
    return 1;
}

static void on_id_range(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    istream_t *s = arg;
    (void)sqlstate;
    if (!ids_arrived(s, res, err, "no task ids"))
        return;
    if (take_range(s, res) == 0 && !s->ids_pending)
        stream_pump(&s->bs);
}

/* Draws the next block unless one is on its way. */
static void draw_ids(istream_t *s)
{
    if (s->ids_pending)
        return;
    char num[24];
    s->block = block_size(s);
    const char *params[] = {i64((int64_t)s->block, num)};
    if (qr_pg_query(s->bs.b->pg, QR_SQL_TASK_ID_RANGE, 1, params, on_id_range, s) < 0) {
        stream_fail_backend(&s->bs, "PostgreSQL", "pool closing");
        return;
    }
    s->ids_pending = 1;
}

/* --- the end -----------------------------------------------------------------------------------
 */

static void on_window_reopened(int rc, void *arg)
{
    ctx_t *c = arg;
    (void)rc; /* Redis being down does not undo the import: the window reloads later */
    qr_broker_work_ready(c->b, c->project->id);
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 201, o);
}

/* After the COPY was refused for an external id the project holds: the
 * whole-body import's 409, with its count and earlier import. */
static void on_duplicates(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    istream_t *s = arg;
    (void)sqlstate;
    s->ids_pending = 0;
    ctx_t *c = stream_take_ctx(&s->bs);
    if (!c) {
        maybe_free(&s->bs);
        return;
    }
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no answer");
        maybe_free(&s->bs);
        return;
    }
    int same = !PQgetisnull(res, 0, 0);
    long long dups = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long long earlier =
        same ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    c->ntasks = s->st->tasks;
    memcpy(c->import_sha256, s->st->sha256, sizeof c->import_sha256);
    if (same && dups < s->st->tasks)
        dups = s->st->tasks;
    if (same || dups > 0)
        respond_duplicate(c, dups, earlier, same);
    else
        /* Another import took one of these external ids meanwhile. */
        respond_error(c, 409, QR_CODE_DUPLICATE_IMPORT,
                      "an external_id of this file, or its import key, is in project %" PRId64
                      " already (another import took it meanwhile); nothing imported",
                      c->project->id);
    maybe_free(&s->bs);
}

static void on_copy_done(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    istream_t *s = arg;
    s->bs.copy = NULL;
    if (s->bs.answered) {
        maybe_free(&s->bs);
        return;
    }
    ctx_t *c = s->bs.c;
    if (!res) {
        long long dups = 0, earlier = 0;
        int same = 0;
        if (!s->bs.finished) {
            /* Failed before the end was sent: the connection, or the pool. */
            stream_fail_backend(&s->bs, "PostgreSQL", err);
            return;
        }
        if (!strcmp(sqlstate, QR_SQLSTATE_DUPLICATE_IMPORT) &&
            sscanf(err, "%lld %lld %d", &dups, &earlier, &same) == 3) {
            stream_take_ctx(&s->bs);
            c->ntasks = s->st->tasks;
            memcpy(c->import_sha256, s->st->sha256, sizeof c->import_sha256);
            respond_duplicate(c, dups, earlier, same);
            maybe_free(&s->bs);
            return;
        }
        if (!strcmp(sqlstate, QR_SQLSTATE_IMPORT_USER)) {
            stream_take_ctx(&s->bs);
            respond_error(c, 422, QR_CODE_IMPORT_UNKNOWN_USER,
                          "annotations_as: %s; nothing imported", err);
            maybe_free(&s->bs);
            return;
        }
        if (!strcmp(sqlstate, "23505")) {
            /* An external id the project holds (or this import key): the
             * count and the earlier import, as the whole-body import says. */
            char proj[24];
            char *external = qr_import_stream_external_ids(s->st);
            const char *params[] = {i64(c->project->id, proj), s->st->sha256, external};
            int rc =
                qr_pg_query(s->bs.b->pg, QR_SQL_IMPORT_DUPLICATES, 3, params, on_duplicates, s);
            free(external);
            if (rc < 0) {
                stream_fail_backend(&s->bs, "PostgreSQL", "pool closing");
                return;
            }
            s->ids_pending = 1; /* pending, as an id block is */
            return;
        }
        stream_fail_backend(&s->bs, "PostgreSQL", err);
        return;
    }
    stream_take_ctx(&s->bs);
    qr_import_stream_t *st = s->st;
    c->ntasks = st->tasks;
    c->out = json_pack("{sI sI sI sI}", "imported", (json_int_t)st->tasks, "first_task_id",
                       (json_int_t)st->first_id, "last_task_id", (json_int_t)st->last_id,
                       "import_id", (json_int_t)s->import_id);
    qr_info("project %" PRId64 ": imported %" PRId64 " tasks (streamed)", c->project->id,
            st->tasks);
    maybe_free(&s->bs);
    if (qr_lease_window_reopen(c->b->lease, c->project->id, on_window_reopened, c) < 0)
        on_window_reopened(QR_EIO, c);
}

/* The body is read, every batch parsed and put: the import's record, its
 * annotations, COMMIT. */
static void finish(istream_t *s)
{
    ctx_t *c = s->bs.c;
    qr_import_stream_t *st = s->st;
    char proj[24], imp[24], user[24], count[24], first[24], last[24];
    const char *params[] = {i64(c->project->id, proj),
                            i64(s->import_id, imp),
                            c->import_key,
                            c->import_file,
                            st->sha256,
                            i64(c->user.id, user),
                            i64(st->tasks, count),
                            i64(st->first_id, first),
                            i64(st->last_id, last),
                            c->annotations_as,
                            c->count_annotations ? "true" : "false",
                            st->annotated ? st->ann_tasks.data : NULL,
                            st->annotated ? st->anns.data : NULL};
    s->bs.finished = 1;
    qr_pg_copy_finish(s->bs.copy, QR_SQL_IMPORT_STREAM_END, 13, params);
}

/* --- batches ------------------------------------------------------------------------------------
 */

/* In a worker thread: the batch, touching only the stream and the batch. */
static void batch_work(uv_work_t *w)
{
    istream_t *s = w->data;
    qr_thread_background();
    s->err[0] = '\0';
    s->rc = qr_import_stream_batch(s->st, s->batch, s->batch_len, s->batch_last, s->batch_ids,
                                   s->batch_nids, &s->batch_used, &s->rows, s->err, sizeof s->err);
}

static void batch_done(uv_work_t *w, int status)
{
    istream_t *s = w->data;
    s->bs.working = 0;
    free(s->batch);
    s->batch = NULL;
    s->idpos += s->batch_used;
    if (s->bs.answered || status < 0) {
        qr_buf_reset(&s->rows);
        if (status < 0)
            stream_fail_backend(&s->bs, "the import parser", uv_strerror(status));
        maybe_free(&s->bs);
        return;
    }
    if (s->rc < 0) {
        qr_buf_reset(&s->rows);
        const char *code = s->rc == QR_ETOOBIG          ? QR_CODE_IMPORT_TOO_LARGE
                           : s->rc == QR_IMPORT_EREJECT ? QR_CODE_INVALID_TASK
                           : s->csv                     ? "invalid_csv"
                           : s->st->json_array          ? "invalid_json"
                                                        : "invalid_jsonl";
        int status_code = s->rc == QR_ETOOBIG ? 413 : s->rc == QR_IMPORT_EREJECT ? 422 : 400;
        fail(s, status_code, code, s->err, s->rc == QR_ETOOBIG ? 0 : s->st->fail_line,
             s->rc == QR_IMPORT_EREJECT ? s->st->fail_field : NULL);
        return;
    }
    if (s->rows.len) {
        int r = qr_pg_copy_put(s->bs.copy, s->rows.data, s->rows.len);
        qr_buf_reset(&s->rows);
        if (r < 0)
            return; /* the COPY is failing: its callback answers */
        s->bs.copy_full = r == 1;
    }
    s->more_ids = s->rc == 1;
    s->stuck = s->more_ids && s->batch_used == 0;
    if (s->rc == 0 && s->batch_last) {
        finish(s);
        return;
    }
    stream_pump(&s->bs);
}

/* Hands what was received to the pool as the next batch, when it is time
 * and the way is clear (no batch working, the COPY not full, ids on hand). */
static void submit(body_stream_t *bs)
{
    istream_t *s = (istream_t *)bs;
    int ready = s->more_ids || s->bs.in.len >= BATCH_BYTES || (s->bs.body_done && !s->bs.last_sent);
    size_t avail = s->nids - s->idpos;
    if ((avail < ID_BLOCK / 2 && !s->bs.body_done) || (ready && (avail == 0 || s->stuck)))
        draw_ids(s); /* ahead of need, or needed now */
    if (!ready || s->bs.copy_full || avail == 0 || s->bs.answered || (s->stuck && s->ids_pending))
        return;
    s->batch_len = s->bs.in.len;
    s->batch = s->bs.in.len ? qr_buf_steal(&s->bs.in) : NULL;
    s->batch_last = s->bs.body_done;
    s->bs.last_sent = s->bs.body_done;
    /* As many ids as it likely takes (one a line, or a task every 64
     * bytes, whichever is more; all of them when the last batch wanted
     * more): a batch that needs more asks again. */
    size_t want = 16 + s->batch_len / 64;
    for (const char *p = s->batch, *e = s->batch + s->batch_len;
         p && (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        want++;
    if (want > avail || s->more_ids)
        want = avail;
    s->more_ids = s->stuck = 0;
    free(s->batch_ids);
    avail = want;
    s->batch_nids = avail;
    s->batch_ids = qr_xcalloc(avail, sizeof *s->batch_ids);
    memcpy(s->batch_ids, s->ids + s->idpos, avail * sizeof *s->batch_ids);
    s->batch_used = 0;
    s->work.data = s;
    int rc = uv_queue_work(s->bs.b->loop, &s->work, batch_work, batch_done);
    if (rc < 0) {
        stream_fail_backend(&s->bs, "the import parser", uv_strerror(rc));
        return;
    }
    s->bs.working = 1;
}

/* The first block of ids, with the import's id: the stream and its COPY. */
static void on_first_ids(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    istream_t *s = arg;
    (void)sqlstate;
    if (!ids_arrived(s, res, err, "no id range"))
        return;
    s->import_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    ctx_t *c = s->bs.c;
    qr_project_t *p = c->project;
    qr_import_schema_t *schema = qr_import_schema_new(p->schema); /* the stream copies it */
    qr_import_opts_t opts = {.stratify_field = p->stratify_field,
                             .labels = p->labels,
                             .nlabels = p->nlabels,
                             .schema = schema,
                             .external_id_key = c->external_id_key,
                             .delimiter = s->delimiter};
    qr_import_policy_t pol = {
        .project_id = p->id,
        .annotations_per_task = p->annotations_per_task,
        .overlap_fraction = 0,
        .overlap_annotations = p->annotations_per_task,
        .overlap_first = p->overlap_first,
        .sampling = p->sampling,
        .stratify_field = p->stratify_field,
        .import_id = s->import_id,
    };
    uint64_t seed = import_seed();
    s->st = qr_import_stream_new(s->csv ? QR_IMPORT_CSV : QR_IMPORT_JSON_ANY, &opts,
                                 &c->b->cfg.import, &pol, seed);
    qr_import_schema_free(schema);
    if (take_range(s, res) < 0)
        return;
    if (stream_open(&s->bs, NULL, QR_SQL_TASKS_COPY, on_copy_done) < 0)
        stream_fail_backend(&s->bs, "PostgreSQL", "pool closing");
}

int h_import_stream(ctx_t *c)
{
    const char *ct = c->req->content_type;
    qr_project_t *p = c->project;
    char buf[16];
    const char *dup = query_param(c->req->query, "allow_duplicates", buf, sizeof buf);
    /* What needs the whole batch first stays with the whole-body import
     * (api_tasks.c): an overlap fraction (exactly round(f * n)
     * tasks get the higher overlap); stratified sampling (n per stratum);
     * allow_duplicates (the held ids are looked up before the COPY). */
    if ((dup && (!strcmp(dup, "1") || !strcmp(dup, "true"))) ||
        !strcmp(p->sampling, "stratified") ||
        (p->overlap_fraction > 0 && p->overlap_annotations != p->annotations_per_task))
        return 1;
    if (import_params(c) < 0)
        return 0; /* answered */
    istream_t *s = qr_xcalloc(1, sizeof *s);
    s->bs.c = c;
    s->bs.b = c->b;
    s->bs.what = "import";
    s->bs.pause_at = BATCH_BYTES;
    s->bs.submit = submit;
    s->bs.maybe_free = maybe_free;
    /* As h_import reads the Content-Type: text/csv is CSV (its delimiter
     * ?delimiter= or detected), text/tab-separated-values TSV. */
    int tsv = ct && !strncasecmp(ct, "text/tab-separated-values", 25);
    s->csv = tsv || (ct && !strncasecmp(ct, "text/csv", 8));
    s->delimiter = c->delimiter ? c->delimiter : tsv ? '\t' : 0;
    s->length = c->req->content_length;
    qr_buf_init(&s->bs.in);
    qr_buf_init(&s->rows);
    char num[24];
    s->block = block_size(s);
    const char *params[] = {i64((int64_t)s->block, num)};
    if (qr_pg_query(c->b->pg, QR_SQL_IMPORT_ID_RANGE, 1, params, on_first_ids, s) < 0) {
        free(s);
        respond_backend(c, "PostgreSQL", "pool closing");
        return 0;
    }
    s->ids_pending = 1;
    stream_watch(&s->bs);
    return 0;
}
