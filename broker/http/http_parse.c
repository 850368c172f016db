/*
 * http_parse.c - request parsing for quorumd's HTTPS server (see http_int.h
 * for how the server's files divide the work).
 *
 * Decrypted bytes collect in the connection's input buffer and are fed to
 * http-parser, which stops (pauses) at the end of each head and of each
 * request; the next request is not parsed before the current one was
 * answered. Before the parser sees a head, head_check refuses what a proxy
 * in front of us may read differently. A parsed head goes to the head
 * handler; its body is read only once qr_http_continue lets it in, within
 * the server's budget for bodies in memory.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "log.h"
#include "util.h"

/* fail_status of a body past its limit after its request was answered
 * (a streamed body answered before its end): the connection just ends. */
#define FAIL_QUIETLY (-2)

/* head_check's place in the head: the request line, the start of a header
 * line, a header name, a header value, or past the head. */
enum head_scan {
    SCAN_PRELUDE,
    SCAN_REQUEST_LINE,
    SCAN_LINE_START,
    SCAN_NAME,
    SCAN_VALUE,
    SCAN_DONE
};

void qr_http_req_free(req_t *r)
{
    if (r->reserved) {
        r->srv->body_reserved -= r->reserved;
        r->reserved = 0;
        qr_http_budget_wake(r->srv);
    }
    free(r->path);
    free(r->query);
    free(r->auth);
    free(r->ctype);
    free(r->body);
    free(r);
}

/* Drops n bytes from the front of b. */
static void buf_consume(qr_buf_t *b, size_t n)
{
    if (n >= b->len) {
        qr_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* --- http-parser callbacks ------------------------------------------------ */

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    qr_buf_reset(&c->url);
    qr_buf_reset(&c->field);
    qr_buf_reset(&c->body);
    c->body_count = 0;
    qr_buf_reset(&c->auth);
    qr_buf_reset(&c->ctype);
    qr_buf_reset(&c->expect);
    c->has_auth = c->has_ctype = c->has_expect = 0;
    c->slot = SLOT_NONE;
    c->value_started = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    qr_buf_append(&c->url, at, len); /* bounded by the head limit */
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (!c->in_head)
        return 0; /* a chunked trailer: ignored */
    if (c->value_started) {
        qr_buf_reset(&c->field);
        c->value_started = 0;
    }
    qr_buf_append(&c->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (!c->in_head)
        return 0;
    if (!c->value_started) {
        /* The name is complete: decide where the value goes. Repeating a
         * header we act on is ambiguous, so it is refused. */
        int *seen = NULL;
        c->value_started = 1;
        c->slot = SLOT_NONE;
        if (!strcasecmp(c->field.data, "authorization")) {
            c->slot = SLOT_AUTH;
            seen = &c->has_auth;
        } else if (!strcasecmp(c->field.data, "content-type")) {
            c->slot = SLOT_CTYPE;
            seen = &c->has_ctype;
        } else if (!strcasecmp(c->field.data, "expect")) {
            c->slot = SLOT_EXPECT;
            seen = &c->has_expect;
        }
        if (seen) {
            if (*seen) {
                c->fail_status = 400;
                return -1;
            }
            *seen = 1;
        }
    }
    switch (c->slot) {
    case SLOT_AUTH:
        qr_buf_append(&c->auth, at, len);
        break;
    case SLOT_CTYPE:
        qr_buf_append(&c->ctype, at, len);
        break;
    case SLOT_EXPECT:
        qr_buf_append(&c->expect, at, len);
        break;
    case SLOT_NONE:
        break;
    }
    return 0;
}

/*
 * Builds the request from its head and pauses the parser, which returns at
 * once: the head handler decides (qr_http_continue) whether and how much of
 * the body is read. Nothing of the body is buffered before that.
 */
static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    qr_http_server_t *srv = c->srv;
    c->in_head = 0;
    if (c->refused) {
        c->fail_status = 503;
        return -1;
    }
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_length = !chunked && p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > srv->max_body_bytes) {
        c->fail_status = 413; /* refused before a byte of the body is read */
        return -1;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (c->url.len == 0 ||
        http_parser_parse_url(c->url.data, c->url.len, p->method == HTTP_CONNECT, &u) != 0) {
        c->fail_status = 400;
        return -1;
    }
    req_t *r = qr_xcalloc(1, sizeof *r);
    r->pub.priv_ = r;
    r->srv = srv;
    r->stage = STAGE_HEAD;
    r->content_length = chunked ? -1 : has_length ? (int64_t)p->content_length : 0;
    /* A client that asks before sending its body (curl does, for large
     * ones) is told to go ahead once the head handler accepted the head. */
    r->expect_continue = c->has_expect && !strcasecmp(c->expect.data, "100-continue") &&
                         p->http_major == 1 && p->http_minor >= 1 && r->content_length != 0;
    r->pub.method = http_method_str((enum http_method)p->method);
    if (u.field_set & (1 << UF_PATH))
        r->path = qr_xstrndup(c->url.data + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        r->path = qr_xstrdup("/");
    if (u.field_set & (1 << UF_QUERY))
        r->query =
            qr_xstrndup(c->url.data + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    r->auth = c->has_auth ? qr_buf_steal(&c->auth) : NULL;
    r->ctype = c->has_ctype ? qr_buf_steal(&c->ctype) : NULL;
    r->body = qr_xstrdup(""); /* the body comes later, if the head is accepted */
    snprintf(r->peer, sizeof r->peer, "%s", c->peer);
    memcpy(r->client_cert, c->client_cert, sizeof r->client_cert);
    r->pub.path = r->path;
    r->pub.query = r->query;
    r->pub.authorization = r->auth;
    r->pub.content_type = r->ctype;
    r->pub.body = r->body;
    r->pub.peer = r->peer;
    r->pub.client_cert = r->client_cert[0] ? r->client_cert : NULL;
    r->pub.content_length = r->content_length;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    r->head = p->method == HTTP_HEAD;
    r->conn = c;
    c->head_ready = r;
    http_parser_pause(p, 1);
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    conn_t *c = p->data;
    /* p->content_length is this chunk's size: refuse before buffering it. */
    if (p->content_length > c->body_limit - c->body_count) {
        c->fail_status = c->close_after_discard ? FAIL_QUIETLY : 413;
        return -1;
    }
    return 0;
}

/* Restarts c's deadline: a streamed body's is per byte (http.h). */
static int stream_deadline(conn_t *c)
{
    int rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, c->srv->idle_timeout_ms, 0);
    if (rc < 0) {
        c->fail_status = -1; /* qr_http_conn_process aborts the connection */
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (len > c->body_limit - c->body_count) {
        c->fail_status = c->close_after_discard ? FAIL_QUIETLY : 413;
        return -1;
    }
    c->body_count += len;
    if (c->discard_message)
        return c->close_after_discard ? stream_deadline(c) : 0;
    req_t *r = c->body_req;
    if (!r->stream) {
        qr_buf_append(&c->body, at, len);
        return 0;
    }
    if (stream_deadline(c) < 0)
        return -1;
    /* The handler may pause, answer (r is then freed: the rest of the body
     * is dropped) or see the connection end; none of it frees c. */
    r->chunk_cb(&r->pub, at, len, r->stream_arg);
    if (c->stream_paused)
        http_parser_pause(p, 1);
    return 0;
}

/* Completes the request with its body and pauses the parser, which then
 * returns at once; qr_http_conn_process hands the request to the handler. */
static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    /* What follows is the next request's head. */
    c->in_head = 1;
    c->head_bytes = 0;
    c->head_scan = SCAN_PRELUDE;
    c->head_cr = 0;
    http_parser_pause(p, 1);
    if (c->discard_message) {
        /* The head was answered already (a refusal without a body), or a
         * streamed body before its end: that connection closes now. */
        c->discard_message = 0;
        c->finish_now = c->close_after_discard;
        c->close_after_discard = 0;
        return 0;
    }
    req_t *r = c->body_req;
    c->body_req = NULL;
    r->stage = STAGE_FULL;
    if (r->stream) {
        c->ready = r; /* its body went to the handler already; body stays "" */
        return 0;
    }
    free(r->body);
    r->pub.body_len = c->body.len;
    r->body = qr_buf_steal(&c->body);
    r->pub.body = r->body;
    c->ready = r;
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/*
 * Refuses what http-parser lets through but a proxy in front of us may read
 * differently (request smuggling): whitespace between a header's name and
 * its colon ("Transfer-Encoding : chunked") and obsolete line folding (a
 * header line that starts with a space or tab), and a bare CR. Scans the head's bytes once
 * each, before the parser sees them; stops at the empty line that ends the
 * head. Returns 0, or -1 for a head to refuse with 400.
 */
static int head_check(conn_t *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n && c->head_scan != SCAN_DONE; i++) {
        char ch = p[i];
        /* A CR not followed by LF: http-parser ends a line (or the head)
         * there, a proxy may not. */
        if (c->head_cr && ch != '\n')
            return -1;
        c->head_cr = ch == '\r';
        switch (c->head_scan) {
        case SCAN_PRELUDE:
            /* Empty lines before a request line are allowed (RFC 9112 2.2). */
            if (ch != '\r' && ch != '\n')
                c->head_scan = SCAN_REQUEST_LINE;
            break;
        case SCAN_REQUEST_LINE:
            if (ch == '\n')
                c->head_scan = SCAN_LINE_START;
            break;
        case SCAN_LINE_START:
            if (ch == ' ' || ch == '\t')
                return -1; /* obs-fold */
            if (ch == '\n')
                c->head_scan = SCAN_DONE;
            else if (ch != '\r')
                c->head_scan = ch == ':' ? SCAN_VALUE : SCAN_NAME;
            break;
        case SCAN_NAME:
            if (ch == ':') {
                c->head_scan = SCAN_VALUE;
            } else if (ch == ' ' || ch == '\t') {
                return -1; /* whitespace in or after a name, before its colon */
            } else if (ch == '\n') {
                c->head_scan = SCAN_LINE_START; /* no colon: the parser refuses it */
            }
            break;
        case SCAN_VALUE:
            if (ch == '\n')
                c->head_scan = SCAN_LINE_START;
            break;
        }
    }
    return 0;
}

static void hand_head(conn_t *c, req_t *r);

/*
 * Parses the buffered plaintext, one request at a time: each complete
 * request goes to the handler, and parsing stops until it was answered
 * (qr_http_respond calls back in here). The head is fed to the parser in
 * slices no longer than what is left of max_header_bytes, so the limit is
 * exact whatever the parser's own compiled-in limit.
 */
void qr_http_conn_process(conn_t *c)
{
    qr_http_server_t *srv = c->srv;
    if (c->in_process)
        return; /* the loop below, further up the stack, carries on */
    c->in_process = 1;
    while (c->state == CONN_OPEN && !c->inflight && !c->stream_paused && c->in.len > 0) {
        size_t n = c->in.len;
        int was_head = c->in_head;
        if (was_head && n > srv->max_header_bytes - c->head_bytes)
            n = srv->max_header_bytes - c->head_bytes;
        if (was_head && head_check(c, c->in.data, n) < 0) {
            qr_debug("http %s: whitespace before a header colon or a folded header line", c->peer);
            qr_http_send_error(c, 400);
            break;
        }
        size_t used = http_parser_execute(&c->parser, &parser_settings, c->in.data, n);
        if (c->state != CONN_OPEN)
            break; /* a callback ended the connection */
        buf_consume(&c->in, used);
        if (c->finish_now) {
            c->finish_now = 0;
            qr_http_conn_finish(c, 1);
            break;
        }
        if (was_head && c->in_head && !c->head_ready)
            c->head_bytes += used;
        if (c->head_ready) {
            req_t *r = c->head_ready;
            c->head_ready = NULL;
            hand_head(c, r);
            continue;
        }
        if (c->ready) {
            req_t *r = c->ready;
            c->ready = NULL;
            http_parser_pause(&c->parser, 0);
            c->inflight = r;
            r->continued = 0; /* the handler's now */
            /* The handler's time is not the client's: no deadline now. */
            int rc = uv_timer_stop(&c->timer);
            if (rc < 0) {
                qr_http_conn_abort(c);
                break;
            }
            if (r->stream)
                r->end_cb(&r->pub, r->stream_arg);
            else
                srv->handler(&r->pub, srv->user);
            continue;
        }
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED && c->stream_paused)
            break; /* qr_http_stream_resume carries on */
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0); /* a discarded request's end */
            continue;
        }
        if (e != HPE_OK) {
            int status = c->fail_status;
            if (status == FAIL_QUIETLY) {
                qr_http_conn_finish(c, 1); /* answered already: no second answer */
                break;
            }
            if (status < 0) {
                qr_http_conn_abort(c);
                break;
            }
            if (!status)
                status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
            if (status == 400)
                qr_debug("http %s: %s", c->peer, http_errno_description(e));
            qr_http_send_error(c, status);
            break;
        }
        if (c->in_head && c->head_bytes >= srv->max_header_bytes) {
            qr_http_send_error(c, 431);
            break;
        }
    }
    /* An idle connection should not keep the buffer a burst needed. */
    if (c->in.len == 0 && c->in.cap > TLS_READ_BYTES)
        qr_buf_free(&c->in);
    c->in_process = 0;
}

/* --- the head, the body budget ------------------------------------------------ */

/* Takes c out of the server's list of connections waiting for budget. */
void qr_http_unpark(conn_t *c)
{
    if (!c->parked)
        return;
    qr_http_server_t *srv = c->srv;
    conn_t **pp = &srv->parked_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->park_next;
    }
    if (*pp)
        *pp = c->park_next;
    if (srv->parked_tail == c)
        srv->parked_tail = prev;
    c->park_next = NULL;
    c->parked = 0;
}

/*
 * Lets the body of r in: reserves its budget, sends 100 Continue if the
 * client waits for it, and resumes parsing. The body must arrive within
 * idle_timeout_ms from now.
 */
static void body_start(conn_t *c, req_t *r)
{
    qr_http_server_t *srv = c->srv;
    r->reserved = c->body_need;
    srv->body_reserved += c->body_need;
    c->inflight = NULL;
    c->body_req = r;
    r->stage = STAGE_BODY;
    c->body_count = 0;
    if (r->content_length > 0 && !r->stream)
        qr_buf_reserve(&c->body, (size_t)r->content_length); /* one block, not doublings */
    if (r->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (qr_http_tls_send(c, cont, sizeof cont - 1) < 0) {
            qr_http_conn_abort(c);
            return;
        }
    }
    http_parser_pause(&c->parser, 0);
    int rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, srv->idle_timeout_ms, 0);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return;
    }
    if (!c->in_process) {
        qr_http_conn_process(c);
        qr_http_conn_maybe_finish(c);
        qr_http_conn_update_reading(c);
    }
}

/* Starts the bodies of parked requests, oldest first, while they fit. */
void qr_http_budget_wake(qr_http_server_t *srv)
{
    if (srv->waking)
        return; /* the loop below, further up the stack, carries on */
    srv->waking = 1;
    while (srv->parked_head) {
        conn_t *c = srv->parked_head;
        if (srv->body_reserved > 0 && srv->body_reserved + c->body_need > srv->body_budget)
            break;
        qr_http_unpark(c);
        body_start(c, c->inflight);
    }
    srv->waking = 0;
}

/* Gives a parsed head to the head handler, or without one lets its body in
 * at the server's limit. The handler's time is not the client's: the
 * deadline stops until the body is let in. */
static void hand_head(conn_t *c, req_t *r)
{
    qr_http_server_t *srv = c->srv;
    int rc = uv_timer_stop(&c->timer);
    if (rc < 0) {
        qr_http_req_free(r);
        qr_http_conn_abort(c);
        return;
    }
    c->inflight = r;
    if (srv->head_handler)
        srv->head_handler(&r->pub, srv->user);
    else
        (void)qr_http_continue(&r->pub, srv->max_body_bytes);
}

int qr_http_continue(qr_http_request_t *req, size_t max_body_bytes)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c || r->stage != STAGE_HEAD || c->inflight != r) {
        if (c && c->inflight == r)
            c->inflight = NULL;
        r->conn = NULL;
        qr_http_req_free(r);
        return UV_ENOTCONN;
    }
    qr_http_server_t *srv = c->srv;
    if (max_body_bytes > srv->max_body_bytes)
        max_body_bytes = srv->max_body_bytes;
    if (r->content_length > 0 && (uint64_t)r->content_length > max_body_bytes) {
        c->inflight = NULL;
        r->conn = NULL;
        qr_http_req_free(r);
        qr_http_send_error(c, 413); /* refused before a byte of the body is read */
        return QR_EINVAL;
    }
    r->continued = 1;
    c->body_limit = max_body_bytes;
    c->body_need = r->stream               ? 0 /* never held: no budget */
                   : r->content_length > 0 ? (size_t)r->content_length
                   : r->content_length < 0 ? max_body_bytes
                                           : 0;
    /* Wait for budget behind those already waiting, unless nothing is held:
     * a body larger than the whole budget still gets its turn alone. */
    if (srv->body_budget && c->body_need > 0 &&
        (srv->parked_head ||
         (srv->body_reserved > 0 && srv->body_reserved + c->body_need > srv->body_budget))) {
        c->parked = 1;
        if (srv->parked_tail)
            srv->parked_tail->park_next = c;
        else
            srv->parked_head = c;
        srv->parked_tail = c;
        int rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, srv->idle_timeout_ms, 0);
        if (rc < 0)
            qr_http_conn_abort(c); /* the handler learns it through the gone callback */
        return 0;
    }
    body_start(c, r);
    return 0;
}

int qr_http_continue_stream(qr_http_request_t *req, size_t max_body_bytes,
                            qr_http_chunk_cb on_chunk, qr_http_end_cb on_end, void *arg)
{
    req_t *r = req->priv_;
    r->stream = 1;
    r->chunk_cb = on_chunk;
    r->end_cb = on_end;
    r->stream_arg = arg;
    if (r->conn)
        r->conn->stream_paused = 0;
    return qr_http_continue(req, max_body_bytes);
}

/* The connection whose body req is streaming now, or NULL. */
static conn_t *streaming_conn(qr_http_request_t *req)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!r->stream || r->stage != STAGE_BODY || !c || c->body_req != r || c->state != CONN_OPEN)
        return NULL;
    return c;
}

void qr_http_stream_pause(qr_http_request_t *req)
{
    conn_t *c = streaming_conn(req);
    if (!c || c->stream_paused)
        return;
    c->stream_paused = 1;
    /* The handler's time is not the client's. */
    int rc = uv_timer_stop(&c->timer);
    if (rc < 0)
        qr_http_conn_abort(c);
}

void qr_http_stream_resume(qr_http_request_t *req)
{
    conn_t *c = streaming_conn(req);
    if (!c || !c->stream_paused)
        return;
    c->stream_paused = 0;
    http_parser_pause(&c->parser, 0);
    int rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, c->srv->idle_timeout_ms, 0);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return;
    }
    if (!c->in_process) {
        qr_http_conn_process(c); /* the bytes that waited */
        qr_http_conn_maybe_finish(c);
        qr_http_conn_update_reading(c);
    }
}

/* --- for the fuzz harness (tests/fuzz/fuzz_http.c) ------------------------ */

/* The request handler while fuzzing: reads every field the way a real
 * handler would (so that the sanitizers check them) and counts requests. */
static void fuzz_handler(qr_http_request_t *req, void *user)
{
    int *count = user;
    size_t n = strlen(req->method) + strlen(req->path) + strlen(req->peer);
    if (req->query)
        n += strlen(req->query);
    if (req->authorization)
        n += strlen(req->authorization);
    if (req->content_type)
        n += strlen(req->content_type);
    if (req->body[req->body_len] != '\0' || n == 0)
        abort(); /* the body is documented as NUL-terminated; a method is never empty */
    (*count)++;
}

/*
 * For the fuzz harness only; not called by quorumd. Runs one connection's
 * request parsing (qr_http_conn_process and the http-parser callbacks above,
 * unchanged) over plain bytes: no socket, no TLS session. The bytes are
 * added to the connection's input chunk bytes at a time (0: all at once),
 * as successive socket reads would add them. Each complete request goes to
 * fuzz_handler and is then answered as qr_http_respond does, minus the
 * encryption and the write: the response is formatted and dropped, and
 * parsing resumes if the request allows keep-alive. What cannot be sent
 * without a TLS session (the server's own 4xx answers, a 100 Continue)
 * fails to encrypt and ends the connection, as a broken TLS write would.
 * Limits: 1024 bytes of head, 4096 of body. Returns the number of requests
 * parsed, or a negative code if the setup failed.
 */
int qr_http_fuzz_parse(const uint8_t *data, size_t len, size_t chunk)
{
    static SSL_CTX *ctx; /* shared by every call; each server holds a reference */
    if (!ctx && !(ctx = SSL_CTX_new(TLS_server_method())))
        return QR_EIO;
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0)
        return rc;
    int parsed = 0;
    qr_http_server_t *srv = qr_xcalloc(1, sizeof *srv);
    srv->loop = &loop;
    SSL_CTX_up_ref(ctx);
    srv->ssl_ctx = ctx;
    srv->handler = fuzz_handler;
    srv->user = &parsed;
    srv->max_header_bytes = 1024;
    srv->max_body_bytes = 4096;
    srv->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    srv->max_connections = 1;
    srv->closing = 1; /* freed with its last connection, at the end */

    /* The connection as on_connection (http.c) sets it up, minus accept. */
    conn_t *c = qr_xcalloc(1, sizeof *c);
    c->srv = srv;
    c->state = CONN_OPEN;
    c->in_head = 1;
    snprintf(c->peer, sizeof c->peer, "fuzz:0");
    if (uv_tcp_init(&loop, &c->tcp) < 0 || uv_timer_init(&loop, &c->timer) < 0)
        abort(); /* neither allocates nor touches a socket: cannot fail */
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    srv->live = 1;
    c->next = srv->conns;
    srv->conns = c;
    srv->nconns = 1;
    if (qr_http_tls_conn_init(c) < 0) {
        qr_http_conn_abort(c);
        goto out;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;

    size_t off = 0;
    while (c->state == CONN_OPEN) {
        if (c->inflight) {
            req_t *r = c->inflight;
            r->conn = NULL;
            c->inflight = NULL;
            int keep = r->keep_alive;
            qr_buf_t out;
            qr_buf_init(&out);
            qr_http_format_response(&out, 200, "application/json", "{}", 2, NULL, keep, r->head);
            qr_buf_free(&out);
            qr_http_req_free(r);
            if (!keep) {
                qr_http_conn_finish(c, 1);
                break;
            }
            qr_http_conn_process(c); /* requests pipelined behind this one */
            continue;
        }
        if (off == len)
            break;
        size_t n = chunk && chunk < len - off ? chunk : len - off;
        qr_buf_append(&c->in, data + off, n);
        off += n;
        qr_http_conn_process(c);
    }
    qr_http_conn_abort(c);
out:
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks free c, then srv */
    uv_loop_close(&loop);
    return parsed;
}
