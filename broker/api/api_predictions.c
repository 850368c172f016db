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
    ctx_t *c; /* NULL once answered */
    qr_broker_t *b;
    qr_pg_copy_t *copy; /* until its callback ran */
    int copy_full;      /* qr_pg_copy_put said full: waiting for on_drain */
    qr_buf_t in;        /* received, not yet parsed */
    size_t need;        /* bytes of in that make the next batch */
    qr_import_opts_t opts;
    qr_import_schema_t *schema;
    char **labels;
    qr_predictions_parse_t parse;
    /* The batch in the thread pool (working), and its outcome. */
    uv_work_t work;
    int working;
    qr_buf_t batch;
    int batch_last;
    size_t taken;
    qr_buf_t rows;
    int rc;
    int body_done; /* the body ended (on_end) */
    int last_sent; /* the batch with the body's end was handed to the pool */
    int finished;  /* qr_pg_copy_finish was called */
    int paused;    /* the client's reading is paused */
    int answered;  /* the client has its answer, or is gone */
} pstream_t;

static void pump(pstream_t *s);

static void maybe_free(pstream_t *s)
{
    if (!s->answered || s->working || s->copy)
        return;
    qr_import_schema_free(s->schema);
    for (int i = 0; s->labels && i < s->opts.nlabels; i++)
        free(s->labels[i]);
    free(s->labels);
    qr_buf_free(&s->in);
    qr_buf_free(&s->batch);
    qr_buf_free(&s->rows);
    free(s);
}

/* Takes the request's context out of the stream for an answer: NULL when
 * answered already. */
static ctx_t *take_ctx(pstream_t *s)
{
    if (s->answered)
        return NULL;
    s->answered = 1;
    ctx_t *c = s->c;
    s->c = NULL;
    if (c->req)
        qr_http_on_gone(c->req, NULL, NULL);
    return c;
}

static void abandon(pstream_t *s, const char *why)
{
    if (s->copy && !s->finished)
        qr_pg_copy_abort(s->copy, why);
}

static void fail(pstream_t *s, int status, const char *code, const char *msg, int64_t line)
{
    ctx_t *c = take_ctx(s);
    if (!c)
        return;
    abandon(s, "predictions refused");
    if (line > 0)
        respond_json(c, status,
                     json_pack("{s:{s:s,s:s,s:I}}", "error", "code", code, "message", msg, "line",
                               (json_int_t)line));
    else
        respond_error(c, status, code, "%s", msg);
    maybe_free(s);
}

static void fail_backend(pstream_t *s, const char *what, const char *err)
{
    ctx_t *c = take_ctx(s);
    if (!c)
        return;
    abandon(s, "backend failure");
    respond_backend(c, what, err);
    maybe_free(s);
}

static void on_gone(qr_http_request_t *req, void *arg)
{
    pstream_t *s = arg;
    (void)req;
    if (s->body_done)
        return; /* the body is whole: the update goes on and commits, answered to nobody */
    ctx_t *c = take_ctx(s);
    if (!c)
        return;
    abandon(s, "the client went away");
    respond_error(c, 400, QR_CODE_BAD_REQUEST, "the connection ended before the body's end");
    maybe_free(s);
}

/* --- the end ------------------------------------------------------------------------------- */

static void on_refreshed(void *arg)
{
    ctx_t *c = arg;
    qr_broker_work_ready(c->b, c->project->id); /* reopened tasks wake long polls */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 200, o);
}

static void on_copy_done(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    pstream_t *s = arg;
    s->copy = NULL;
    if (s->answered) {
        maybe_free(s);
        return;
    }
    if (!res) {
        if (s->finished && !strcmp(sqlstate, QR_SQLSTATE_PREDICTIONS)) {
            long long line = 0;
            sscanf(err, "line %lld", &line);
            fail(s, 422, QR_CODE_INVALID_PREDICTION, err, line);
            return;
        }
        fail_backend(s, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        fail_backend(s, "PostgreSQL", "no answer from quorum_predictions_apply");
        return;
    }
    ctx_t *c = take_ctx(s);
    long long updated = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long accepted = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long long reopened = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    c->out = json_pack("{sI sI sI}", "updated", (json_int_t)updated, "auto_accepted",
                       (json_int_t)accepted, "reopened", (json_int_t)reopened);
    qr_info("project %" PRId64 ": predictions of %lld tasks updated (%lld auto-accepted, %lld "
            "reopened)",
            c->project->id, updated, accepted, reopened);
    maybe_free(s);
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
    const char *params[] = {i64(s->c->project->id, proj)};
    s->finished = 1;
    qr_pg_copy_finish(s->copy, QR_SQL_PREDICTIONS_APPLY, 1, params);
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
    s->working = 0;
    /* What the parse left (a line's beginning) goes before what came since. */
    size_t left = s->batch.len - s->taken;
    if (left > 0 && !s->answered && status == 0 && s->rc == 0) {
        qr_buf_t joined;
        qr_buf_init(&joined);
        qr_buf_append(&joined, s->batch.data + s->taken, left);
        if (s->in.len)
            qr_buf_append(&joined, s->in.data, s->in.len);
        qr_buf_free(&s->in);
        s->in = joined;
    }
    qr_buf_reset(&s->batch);
    if (s->answered || status < 0) {
        qr_buf_reset(&s->rows);
        if (status < 0)
            fail_backend(s, "the predictions parser", uv_strerror(status));
        maybe_free(s);
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
    s->need = s->taken == 0 ? s->in.len + BATCH_BYTES : BATCH_BYTES;
    if (s->rows.len) {
        int r = qr_pg_copy_put(s->copy, s->rows.data, s->rows.len);
        qr_buf_reset(&s->rows);
        if (r < 0)
            return; /* the COPY is failing: its callback answers */
        s->copy_full = r == 1;
    }
    if (s->batch_last) {
        finish(s);
        return;
    }
    pump(s);
}

/* Hands what was received to the pool as the next batch, when it is time
 * and the way is clear (no batch working, the COPY not full). */
static void submit(pstream_t *s)
{
    int ready = s->in.len >= s->need || (s->body_done && !s->last_sent);
    if (!ready || s->copy_full || s->answered)
        return;
    qr_buf_free(&s->batch);
    s->batch = s->in;
    qr_buf_init(&s->in);
    s->batch_last = s->body_done;
    s->last_sent = s->body_done;
    s->taken = 0;
    s->work.data = s;
    int rc = uv_queue_work(s->b->loop, &s->work, batch_work, batch_done);
    if (rc < 0) {
        fail_backend(s, "the predictions parser", uv_strerror(rc));
        return;
    }
    s->working = 1;
}

static void pump(pstream_t *s)
{
    if (s->answered || s->finished)
        return;
    if (!s->working)
        submit(s);
    if (s->answered || s->body_done)
        return;
    int full = s->in.len >= s->need;
    if (full && !s->paused) {
        s->paused = 1;
        qr_http_stream_pause(s->c->req);
    } else if (!full && s->paused) {
        s->paused = 0;
        qr_http_stream_resume(s->c->req); /* may call on_chunk: pump runs again, nested */
    }
}

static void on_chunk(qr_http_request_t *req, const char *data, size_t len, void *arg)
{
    pstream_t *s = arg;
    (void)req;
    if (s->answered)
        return;
    qr_buf_append(&s->in, data, len);
    if (s->in.len >= s->need)
        pump(s);
}

static void on_end(qr_http_request_t *req, void *arg)
{
    pstream_t *s = arg;
    (void)req;
    s->body_done = 1;
    s->paused = 0;
    pump(s);
}

static void on_copy_drain(void *arg)
{
    pstream_t *s = arg;
    s->copy_full = 0;
    pump(s);
}

static void on_copy_ready(void *arg)
{
    pstream_t *s = arg;
    if (s->answered)
        return; /* abandoned already: the COPY's callback follows */
    ctx_t *c = s->c;
    if (qr_http_continue_stream(c->req, c->b->cfg.max_stream_bytes, on_chunk, on_end, s) < 0) {
        /* Answered (413) or gone, and freed. */
        c->req = NULL;
        take_ctx(s);
        ctx_free(c);
        qr_pg_copy_abort(s->copy, "no body");
        maybe_free(s);
    }
}

void h_predictions_stream(ctx_t *c)
{
    qr_project_t *p = c->project;
    pstream_t *s = qr_xcalloc(1, sizeof *s);
    s->c = c;
    s->b = c->b;
    s->need = BATCH_BYTES;
    qr_buf_init(&s->in);
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
    if (qr_pg_copy_open_pre(c->b->pg, QR_SQL_PREDICTIONS_TABLE, QR_SQL_PREDICTIONS_COPY,
                            on_copy_ready, on_copy_drain, on_copy_done, s, &s->copy) < 0) {
        s->copy = NULL;
        s->answered = 1;
        maybe_free(s);
        respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    qr_http_on_gone(c->req, on_gone, s);
}

/* The route's handler: never called, the body being streamed. */
void h_predictions(ctx_t *c)
{
    respond_backend(c, "the router", "PUT predictions reached the whole-body path");
}
