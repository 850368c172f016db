/*
 * api_predictions.c - PUT /v1/projects/{id}/predictions: a model's
 * predictions for tasks the project holds, in bulk (issue 16, point 5).
 *
 * The body (JSON lines, import_predictions.c says what a line holds) is
 * read as it arrives, never held whole: pieces of about BATCH_BYTES are
 * parsed in libuv's thread pool, one at a time (so in order), into COPY
 * rows for a temporary table, streamed into PostgreSQL in one transaction
 * (qr_pg_copy_open_pre); at the body's end quorum_predictions_apply
 * (sql/0029_predictions_update.sql) updates the tasks from it, auto-accepts
 * or reopens them, and the transaction commits: all of the body or nothing.
 * Then the Redis window takes the new order (qr_window_refresh) before the
 * answer, so the next grant follows the new scores.
 *
 * A bad line ends it at once with its number (400 for JSON, 422 for a value,
 * score or task the project does not have, 413 past the limits); the rest
 * of the body is dropped and the transaction rolled back.
 */
#include "api_int.h"

#define BATCH_BYTES   (256 << 10) /* bytes of body parsed at once */
#define PRED_LINE_MAX (1 << 20)   /* the longest line */

typedef struct pstream_s {
    body_stream_t bs; /* first: the stream's callbacks get &bs */
    size_t need;      /* bytes of bs.in that make the next batch */
    qr_import_opts_t opts;
    qr_import_schema_t *schema;
    char **labels;
    qr_predictions_parse_t parse;
    /* The batch in the thread pool (bs.working), and its outcome. */
    uv_work_t work;
    qr_buf_t batch;
    int batch_last;
    size_t taken;
    qr_buf_t rows;
    int rc;
} pstream_t;

static void maybe_free(body_stream_t *bs)
{
    pstream_t *s = (pstream_t *)bs;
    if (!bs->answered || bs->working || bs->copy)
        return;
    qr_import_schema_free(s->schema);
    for (int i = 0; s->labels && i < s->opts.nlabels; i++)
        free(s->labels[i]);
    free(s->labels);
    qr_buf_free(&bs->in);
    qr_buf_free(&s->batch);
    qr_buf_free(&s->rows);
    free(s);
}

static void fail(pstream_t *s, int status, const char *code, const char *msg, int64_t line)
{
    ctx_t *c = stream_take_ctx(&s->bs);
    if (!c)
        return;
    stream_abandon(&s->bs, "predictions refused");
    if (line > 0)
        respond_json(c, status,
                     json_pack("{s:{s:s,s:s,s:I}}", "error", "code", code, "message", msg, "line",
                               (json_int_t)line));
    else
        respond_error(c, status, code, "%s", msg);
    maybe_free(&s->bs);
}

/* --- the end ------------------------------------------------------------------------------- */

typedef struct prune_s {
    qr_broker_t *b;
    int64_t project;
} prune_t;

static void on_pruned(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    prune_t *pr = arg;
    (void)sqlstate;
    if (!res)
        qr_warn("project %" PRId64 ": deleting superseded predictions failed (the next update "
                "tries again): %s",
                pr->project, err);
    else if (PQntuples(res) == 1)
        qr_info("project %" PRId64 ": %s superseded predictions deleted", pr->project,
                PQgetvalue(res, 0, 0));
    qr_broker_background_end(pr->b);
    free(pr);
}

static void on_refreshed(void *arg)
{
    ctx_t *c = arg;
    prune_t *pr = qr_xcalloc(1, sizeof *pr);
    pr->b = c->b;
    pr->project = c->project->id;
    qr_broker_work_ready(pr->b, pr->project); /* reopened tasks wake long polls */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 200, o);
    /* After the answer: the rows this update superseded, which the window's
     * refill would otherwise step over (sql/0040_task_scores.sql); a drain
     * waits for it. */
    char proj[24];
    const char *params[] = {i64(pr->project, proj)};
    qr_broker_background_begin(pr->b);
    if (qr_pg_query(pr->b->pg, QR_SQL_TASK_SCORES_PRUNE, 1, params, on_pruned, pr) < 0) {
        qr_warn("project %" PRId64 ": superseded predictions kept: the PostgreSQL pool is closing",
                pr->project);
        qr_broker_background_end(pr->b);
        free(pr);
    }
}

static void on_copy_done(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    pstream_t *s = arg;
    s->bs.copy = NULL;
    if (s->bs.answered) {
        maybe_free(&s->bs);
        return;
    }
    if (!res) {
        if (s->bs.finished && !strcmp(sqlstate, QR_SQLSTATE_PREDICTIONS)) {
            long long line = 0;
            sscanf(err, "line %lld", &line);
            fail(s, 422, QR_CODE_INVALID_PREDICTION, err, line);
            return;
        }
        stream_fail_backend(&s->bs, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        stream_fail_backend(&s->bs, "PostgreSQL", "no answer from quorum_predictions_apply");
        return;
    }
    ctx_t *c = stream_take_ctx(&s->bs);
    long long updated = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long accepted = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long long reopened = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    c->out = json_pack("{sI sI sI}", "updated", (json_int_t)updated, "auto_accepted",
                       (json_int_t)accepted, "reopened", (json_int_t)reopened);
    qr_info("project %" PRId64 ": predictions of %lld tasks updated (%lld auto-accepted, %lld "
            "reopened)",
            c->project->id, updated, accepted, reopened);
    maybe_free(&s->bs);
    qr_window_refresh(c->b, c->project->id, on_refreshed, c);
}

static void finish(pstream_t *s)
{
    if (s->parse.rows == 0) {
        fail(s, 400, QR_CODE_BAD_REQUEST,
             "the body holds no prediction (JSON lines: {\"task_id\": N, \"value\": ..., "
             "\"score\": ...})",
             0);
        return;
    }
    char proj[24];
    const char *params[] = {i64(s->bs.c->project->id, proj)};
    s->bs.finished = 1;
    qr_pg_copy_finish(s->bs.copy, QR_SQL_PREDICTIONS_APPLY, 1, params);
}

/* --- batches ------------------------------------------------------------------------------- */

static void batch_work(uv_work_t *w)
{
    pstream_t *s = w->data;
    qr_thread_background();
    s->rc = qr_predictions_parse(&s->parse, s->batch.data, s->batch.len, s->batch_last, &s->rows,
                                 &s->taken);
}

static void batch_done(uv_work_t *w, int status)
{
    pstream_t *s = w->data;
    s->bs.working = 0;
    /* What the parse left (a line's beginning) goes before what came since. */
    size_t left = s->batch.len - s->taken;
    if (left > 0 && !s->bs.answered && status == 0 && s->rc == 0) {
        qr_buf_t joined;
        qr_buf_init(&joined);
        qr_buf_append(&joined, s->batch.data + s->taken, left);
        if (s->bs.in.len)
            qr_buf_append(&joined, s->bs.in.data, s->bs.in.len);
        qr_buf_free(&s->bs.in);
        s->bs.in = joined;
    }
    qr_buf_reset(&s->batch);
    if (s->bs.answered || status < 0) {
        qr_buf_reset(&s->rows);
        if (status < 0)
            stream_fail_backend(&s->bs, "the predictions parser", uv_strerror(status));
        maybe_free(&s->bs);
        return;
    }
    if (s->rc < 0) {
        qr_buf_reset(&s->rows);
        int st = s->rc == QR_ETOOBIG ? 413 : s->rc == QR_IMPORT_EREJECT ? 422 : 400;
        const char *code = s->rc == QR_ETOOBIG          ? QR_CODE_IMPORT_TOO_LARGE
                           : s->rc == QR_IMPORT_EREJECT ? QR_CODE_INVALID_PREDICTION
                                                        : QR_CODE_INVALID_JSONL;
        fail(s, st, code, s->parse.err, s->parse.fail_line);
        return;
    }
    if (s->taken == 0 && left > PRED_LINE_MAX) {
        char msg[160];
        snprintf(msg, sizeof msg, "line %" PRId64 " is longer than %d bytes", s->parse.line + 1,
                 PRED_LINE_MAX);
        fail(s, 413, QR_CODE_BODY_TOO_LARGE, msg, s->parse.line + 1);
        return;
    }
    /* A batch that held no whole line waits for more of it. */
    s->need = s->taken == 0 ? s->bs.in.len + BATCH_BYTES : BATCH_BYTES;
    s->bs.pause_at = s->need;
    if (s->rows.len) {
        int r = qr_pg_copy_put(s->bs.copy, s->rows.data, s->rows.len);
        qr_buf_reset(&s->rows);
        if (r < 0)
            return; /* the COPY is failing: its callback answers */
        s->bs.copy_full = r == 1;
    }
    if (s->batch_last) {
        finish(s);
        return;
    }
    stream_pump(&s->bs);
}

/* Hands what was received to the pool as the next batch, when it is time
 * and the way is clear (the COPY not full). */
static void submit(body_stream_t *bs)
{
    pstream_t *s = (pstream_t *)bs;
    int ready = bs->in.len >= s->need || (bs->body_done && !bs->last_sent);
    if (!ready || bs->copy_full || bs->answered)
        return;
    qr_buf_free(&s->batch);
    s->batch = bs->in;
    qr_buf_init(&bs->in);
    s->batch_last = bs->body_done;
    bs->last_sent = bs->body_done;
    s->taken = 0;
    s->work.data = s;
    int rc = uv_queue_work(bs->b->loop, &s->work, batch_work, batch_done);
    if (rc < 0) {
        stream_fail_backend(bs, "the predictions parser", uv_strerror(rc));
        return;
    }
    bs->working = 1;
}

void h_predictions_stream(ctx_t *c)
{
    qr_project_t *p = c->project;
    pstream_t *s = qr_xcalloc(1, sizeof *s);
    s->bs.c = c;
    s->bs.b = c->b;
    s->bs.what = "predictions update";
    s->bs.pause_at = s->need = BATCH_BYTES;
    s->bs.submit = submit;
    s->bs.maybe_free = maybe_free;
    qr_buf_init(&s->bs.in);
    qr_buf_init(&s->batch);
    qr_buf_init(&s->rows);
    /* Owned copies: the parse runs in the pool while the project cache's
     * entry may be replaced. */
    s->schema = qr_import_schema_new(p->schema);
    s->labels = qr_xcalloc((size_t)p->nlabels + 1, sizeof *s->labels);
    for (int i = 0; i < p->nlabels; i++)
        s->labels[i] = qr_xstrdup(p->labels[i]);
    s->opts.labels = s->labels;
    s->opts.nlabels = p->nlabels;
    s->opts.schema = s->schema;
    s->parse.opts = &s->opts;
    s->parse.max_rows = c->b->cfg.import.max_tasks;
    if (stream_open(&s->bs, QR_SQL_PREDICTIONS_TABLE, QR_SQL_PREDICTIONS_COPY, on_copy_done) < 0) {
        s->bs.answered = 1;
        maybe_free(&s->bs);
        respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    stream_watch(&s->bs);
}

/* The route's handler: never called, the body being streamed. */
void h_predictions(ctx_t *c)
{
    respond_backend(c, "the router", "PUT predictions reached the whole-body path");
}
