/*
 * http_respond.c - responses of quorumd's HTTPS server (see http_int.h for
 * how the server's files divide the work): the handler's answer through
 * qr_http_respond, and the server's own error answers (limits, malformed
 * input, overload) in the API's error shape.
 */
#include <stdio.h>

#include "http_int.h"
#include "log.h"
#include "util.h"

const char *qr_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Entity";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Formats a complete response into out. */
void qr_http_format_response(qr_buf_t *out, int status, const char *content_type, const char *body,
                             size_t body_len, const char *extra_headers, int keep_alive,
                             int head_only)
{
    /* 204 and 304 carry neither a body nor a length (RFC 9110 8.6). */
    int bodyless = status == 204 || status == 304;
    qr_buf_appendf(out, "HTTP/1.1 %d %s\r\n", status, qr_http_reason(status));
    if (content_type)
        qr_buf_appendf(out, "Content-Type: %s\r\n", content_type);
    else if (body_len && !bodyless)
        qr_buf_appends(out, "Content-Type: application/octet-stream\r\n");
    if (!bodyless)
        qr_buf_appendf(out, "Content-Length: %zu\r\n", body_len);
    qr_buf_appendf(out, "Connection: %s\r\n", keep_alive ? "keep-alive" : "close");
    if (extra_headers)
        qr_buf_appends(out, extra_headers);
    qr_buf_appends(out, "\r\n");
    if (body && body_len && !bodyless && !head_only)
        qr_buf_append(out, body, body_len);
}

/*
 * The server's own error answer (limits, malformed input, overload): sends
 * the response with Connection: close and closes the connection gracefully.
 */
void qr_http_send_error(conn_t *c, int status)
{
    const char *code, *message;
    switch (status) {
    case 413:
        code = "body_too_large";
        message = "the request body is over the server's limit";
        break;
    case 431:
        code = "headers_too_large";
        message = "the request line and headers are over the server's limit";
        break;
    case 503:
        code = "unavailable";
        message = "the server has too many connections; retry later";
        break;
    case 507:
        status = 503;
        code = "busy";
        message = "the server is reading too many request bodies; retry later";
        break;
    default:
        status = 400;
        code = "bad_request";
        message = "malformed HTTP request";
        break;
    }
    qr_debug("http %s: %d %s", c->peer, status, code);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    qr_buf_t out;
    qr_buf_init(&out);
    qr_http_format_response(&out, status, "application/json", body, (size_t)n, NULL, 0, 0);
    int rc = qr_http_tls_send(c, out.data, out.len);
    qr_buf_free(&out);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return;
    }
    qr_http_conn_finish(c, 1);
}

/* --- responding ----------------------------------------------------------- */

void qr_http_on_gone(qr_http_request_t *req, qr_http_gone_cb cb, void *arg)
{
    req_t *r = req->priv_;
    r->gone_cb = cb;
    r->gone_arg = arg;
}

int qr_http_request_gone(const qr_http_request_t *req)
{
    const req_t *r = req->priv_;
    return r->conn == NULL;
}

/*
 * What follows an answer sent in full on c: the connection closes
 * gracefully, or (keep) waits for the next request under a new deadline and
 * parses any request already pipelined behind the answered one.
 */
static int after_answer(conn_t *c, int keep)
{
    if (!keep) {
        qr_http_conn_finish(c, 1);
        return 0;
    }
    int rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, c->srv->idle_timeout_ms, 0);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return rc;
    }
    if (!c->in_process) {
        qr_http_conn_process(c); /* requests already pipelined behind this one */
        qr_http_conn_maybe_finish(c);
        qr_http_conn_update_reading(c);
    }
    return 0;
}

void qr_http_request_drop_body(qr_http_request_t *req)
{
    req_t *r = req->priv_;
    if (r->stage != STAGE_FULL)
        return; /* a body still being read stays the reader's */
    free(r->body);
    r->body = qr_xstrdup("");
    req->body = r->body;
    req->body_len = 0;
    if (r->reserved) {
        r->srv->body_reserved -= r->reserved;
        r->reserved = 0;
        qr_http_budget_wake(r->srv);
    }
}

int qr_http_respond(qr_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t body_len, const char *extra_headers)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c) {
        qr_http_req_free(r);
        return UV_ENOTCONN;
    }
    r->conn = NULL;
    c->inflight = NULL;
    if (c->parked)
        qr_http_unpark(c);
    int unread_body = 0, early = 0;
    if (r->stage == STAGE_BODY && r->stream && c->body_req == r) {
        /* A streamed body answered before its end: the rest is read and
         * dropped (qr_http_continue_stream), then the connection closes. */
        early = 1;
        c->body_req = NULL;
        c->discard_message = 1;
        c->close_after_discard = 1;
        if (c->stream_paused) {
            c->stream_paused = 0;
            http_parser_pause(&c->parser, 0);
        }
    } else if (r->stage == STAGE_HEAD) {
        /* Answered from its head: a body the client may send is never
         * read, so the connection cannot carry another request; a request
         * without one is skipped to its end. */
        unread_body = r->content_length != 0;
        c->discard_message = !unread_body;
        http_parser_pause(&c->parser, 0);
    }
    if (status < 200 || status > 599) {
        qr_warn("http %s: handler answered status %d; sending 500", c->peer, status);
        status = 500;
        content_type = NULL;
        body = NULL;
        body_len = 0;
        extra_headers = NULL;
    }
    if (!body)
        body_len = 0;
    int keep = r->keep_alive && !c->srv->closing && !c->srv->draining && !c->peer_done &&
               !unread_body && !early;
    qr_buf_t out;
    qr_buf_init(&out);
    qr_http_format_response(&out, status, content_type, body, body_len, extra_headers, keep,
                            r->head);
    qr_http_req_free(r);
    int rc = qr_http_tls_send(c, out.data, out.len);
    qr_buf_free(&out);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return rc;
    }
    /* Answered early, the connection reads on (under the client's deadline)
     * to drop the rest of the body, then closes: close_after_discard. */
    return after_answer(c, keep || early);
}

/* --- streamed responses (http.h) ------------------------------------------ */

int qr_http_stream_start(qr_http_request_t *req, int status, const char *content_type,
                         const char *extra_headers)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c)
        return UV_ENOTCONN;
    if (c->parked)
        qr_http_unpark(c);
    int unread_body = 0;
    if (r->stage == STAGE_HEAD) {
        unread_body = r->content_length != 0;
        c->discard_message = !unread_body;
        http_parser_pause(&c->parser, 0);
    }
    /* HTTP/1.0 knows no chunks: the body runs to the connection's end. */
    r->stream_keep = r->keep_alive && !r->http10 && !c->srv->closing && !c->srv->draining &&
                     !c->peer_done && !unread_body;
    r->streaming = 1;
    qr_buf_t out;
    qr_buf_init(&out);
    qr_buf_appendf(&out, "HTTP/1.1 %d %s\r\n", status, qr_http_reason(status));
    if (content_type)
        qr_buf_appendf(&out, "Content-Type: %s\r\n", content_type);
    if (!r->http10)
        qr_buf_appends(&out, "Transfer-Encoding: chunked\r\n");
    qr_buf_appendf(&out, "Connection: %s\r\n", r->stream_keep ? "keep-alive" : "close");
    if (extra_headers)
        qr_buf_appends(&out, extra_headers);
    qr_buf_appends(&out, "\r\n");
    int rc = qr_http_tls_send(c, out.data, out.len);
    qr_buf_free(&out);
    if (rc < 0)
        qr_http_conn_abort(c); /* detaches req: the gone callback runs */
    return rc;
}

int qr_http_stream_write(qr_http_request_t *req, const char *data, size_t len)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c)
        return UV_ENOTCONN;
    if (len == 0 || r->head)
        return 0; /* a zero-length chunk would end the body */
    int rc = 0;
    if (r->http10) {
        rc = qr_http_tls_send(c, data, len);
    } else {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        rc = qr_http_tls_send(c, size, (size_t)n);
        if (rc == 0)
            rc = qr_http_tls_send(c, data, len);
        if (rc == 0)
            rc = qr_http_tls_send(c, "\r\n", 2);
    }
    if (rc < 0)
        qr_http_conn_abort(c);
    return rc;
}

int qr_http_stream_busy(const qr_http_request_t *req)
{
    const req_t *r = req->priv_;
    return r->conn && r->conn->out_bytes > QR_HTTP_STREAM_LOW_WATER;
}

void qr_http_stream_on_drain(qr_http_request_t *req, qr_http_drain_cb cb, void *arg)
{
    req_t *r = req->priv_;
    r->drain_cb = cb;
    r->drain_arg = arg;
}

/* From the write callback: tells a streaming handler waiting for the
 * queue to shrink that it has. */
void qr_http_stream_drained(conn_t *c)
{
    req_t *r = c->inflight;
    if (!r || !r->streaming || !r->drain_cb || c->out_bytes > QR_HTTP_STREAM_LOW_WATER)
        return;
    qr_http_drain_cb cb = r->drain_cb;
    r->drain_cb = NULL;
    cb(&r->pub, r->drain_arg);
}

int qr_http_stream_end(qr_http_request_t *req)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c) {
        qr_http_req_free(r);
        return UV_ENOTCONN;
    }
    r->conn = NULL;
    c->inflight = NULL;
    int keep = r->stream_keep && !c->srv->closing && !c->srv->draining && !c->peer_done;
    int rc = 0;
    if (!r->http10 && !r->head)
        rc = qr_http_tls_send(c, "0\r\n\r\n", 5);
    qr_http_req_free(r);
    if (rc < 0) {
        qr_http_conn_abort(c);
        return rc;
    }
    return after_answer(c, keep);
}

void qr_http_stream_abort(qr_http_request_t *req)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (c) {
        r->conn = NULL;
        c->inflight = NULL;
        qr_http_conn_abort(c);
    }
    qr_http_req_free(r);
}
