/*
 * api_stream.c - what the two bodies streamed into a PostgreSQL COPY share
 * (an import, api_import_stream.c; a predictions update,
 * api_predictions.c): the answer taken once, the COPY abandoned on a
 * failure, the client's reading paused while a batch's worth waits, and
 * the callbacks of the HTTP body and of the COPY. What a batch is, and
 * when one is due, is the owner's (its submit and maybe_free).
 */
#include "api_int.h"

ctx_t *stream_take_ctx(body_stream_t *s)
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

void stream_abandon(body_stream_t *s, const char *why)
{
    if (s->copy && !s->finished)
        qr_pg_copy_abort(s->copy, why);
}

void stream_fail_backend(body_stream_t *s, const char *what, const char *err)
{
    ctx_t *c = stream_take_ctx(s);
    if (!c)
        return;
    stream_abandon(s, "backend failure");
    respond_backend(c, what, err);
    s->maybe_free(s);
}

void stream_pump(body_stream_t *s)
{
    if (s->answered || s->finished)
        return;
    if (!s->working)
        s->submit(s);
    if (s->answered || s->body_done)
        return;
    /* Reading waits while a batch's worth waits its turn. */
    int full = s->in.len >= s->pause_at;
    if (full && !s->paused) {
        s->paused = 1;
        qr_http_stream_pause(s->c->req);
    } else if (!full && s->paused) {
        s->paused = 0;
        qr_http_stream_resume(s->c->req); /* may call on_chunk: the pump runs again, nested */
    }
}

/* The client went away before its answer. */
static void on_gone(qr_http_request_t *req, void *arg)
{
    body_stream_t *s = arg;
    (void)req;
    if (s->body_done)
        return; /* the body is whole: it goes on and commits, answered to nobody */
    ctx_t *c = stream_take_ctx(s);
    if (!c)
        return;
    stream_abandon(s, "the client went away");
    /* Nobody to tell: a client that left mid-body changes nothing. */
    respond_error(c, 400, QR_CODE_BAD_REQUEST, "the connection ended before the %s's end", s->what);
    s->maybe_free(s);
}

static void on_chunk(qr_http_request_t *req, const char *data, size_t len, void *arg)
{
    body_stream_t *s = arg;
    (void)req;
    if (s->answered)
        return;
    qr_buf_append(&s->in, data, len);
    s->received += (int64_t)len;
    if (s->in.len >= s->pause_at)
        stream_pump(s);
}

static void on_end(qr_http_request_t *req, void *arg)
{
    body_stream_t *s = arg;
    (void)req;
    s->body_done = 1;
    s->paused = 0;
    stream_pump(s);
}

static void on_copy_drain(void *arg)
{
    body_stream_t *s = arg;
    s->copy_full = 0;
    stream_pump(s);
}

/* The COPY is open: the body may come. */
static void on_copy_ready(void *arg)
{
    body_stream_t *s = arg;
    if (s->answered)
        return; /* abandoned already: the COPY's callback follows */
    ctx_t *c = s->c;
    if (qr_http_continue_stream(c->req, c->b->cfg.max_stream_bytes, on_chunk, on_end, s) < 0) {
        /* Answered (413: over the limit from its head) or gone, and freed:
         * the request is no more, so it is forgotten before anything else
         * touches it. */
        c->req = NULL;
        stream_take_ctx(s);
        ctx_free(c);
        qr_pg_copy_abort(s->copy, "no body");
        s->maybe_free(s);
    }
}

int stream_open(body_stream_t *s, const char *pre_sql, const char *copy_sql, qr_pg_cb on_done)
{
    if (qr_pg_copy_open_pre(s->b->pg, pre_sql, copy_sql, on_copy_ready, on_copy_drain, on_done, s,
                            &s->copy) < 0) {
        s->copy = NULL;
        return -1;
    }
    return 0;
}

void stream_watch(body_stream_t *s)
{
    qr_http_on_gone(s->c->req, on_gone, s);
}
