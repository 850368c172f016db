/*
 * http.h - quorumd's HTTPS/1.1 server: libuv TCP streams, TLS on OpenSSL
 * memory BIOs, requests parsed with http-parser (kept behind this module so
 * it can be swapped for llhttp later).
 *
 * The server knows nothing of routes, JSON, PostgreSQL or Redis: it hands
 * each complete request to one handler callback and sends whatever response
 * the handler gives back, now or later (the handler may wait on a backend).
 * Requests on one connection are answered in order; while a request waits
 * for its response the connection reads no further request (no pipelining
 * ahead of the answer).
 *
 * A request reaches the handler in two steps when a head handler is set:
 * its head first (method, path, headers; no body read yet), which the head
 * handler answers at once (a refusal: 401, 404...) or lets through with a
 * body limit of its choosing (qr_http_continue); then, body complete, the
 * whole request to the request handler. So a server can authenticate and
 * choose the limit per route before it buffers a byte of a body, and sends
 * 100 Continue only to a request it accepted. A route may also take its
 * body in pieces as they arrive (qr_http_continue_stream), pausing the
 * reading while it cannot take more: such a body is never held.
 *
 * Limits are enforced here, before the handler sees anything:
 *   - request line + headers over max_header_bytes -> 431 and close;
 *   - a body (Content-Length or chunked) over max_body_bytes, or over the
 *     limit given to qr_http_continue -> 413 and close;
 *   - whitespace between a header name and its colon, or an obsolete folded
 *     header line (a smuggling risk behind a proxy) -> 400 and close;
 *   - bodies in memory (being read or held by the handler) bounded by
 *     max_body_total_bytes: a request past it waits, reading paused, until
 *     enough is free (oldest first), and gets 503 after idle_timeout_ms;
 *   - malformed HTTP -> 400 and close;
 *   - no complete request within idle_timeout_ms of the last byte -> close;
 *   - TLS below 1.2 -> handshake refused;
 *   - with a client CA: a client certificate that does not verify -> handshake
 *     refused (and no certificate at all, when one is required);
 *   - past max_connections: the connection is accepted, its first request
 *     answered 503 (Connection: close) and the refusal logged.
 * Error responses from the server itself use the API's error shape
 * {"error": {"code": "...", "message": "..."}}.
 */
#ifndef QR_HTTP_H
#define QR_HTTP_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct qr_http_server_s qr_http_server_t;

/* One request. Everything in it is owned by the server and stays valid
 * until qr_http_respond is called for it (after which it is freed). */
typedef struct qr_http_request_s {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* URL path, percent-decoding not applied, no query */
    const char *query;         /* text after '?', or NULL */
    const char *authorization; /* value of the Authorization header, or NULL */
    const char *content_type;  /* value of Content-Type, or NULL */
    const char *body;          /* NUL-terminated copy of the body ("" if none, or not read yet) */
    size_t body_len;           /* bytes in body, without the NUL */
    const char *peer;          /* "ip:port" of the client */
    const char *client_cert;   /* SHA-256 (hex) of the client's verified certificate, or NULL */
    int64_t content_length;    /* from the head: bytes of body announced, -1 if chunked */
    void *data;                /* free for the handler's use */
    void *priv_;               /* private to the server (http_int.h) */
} qr_http_request_t;

/* Called once per complete request. The handler must eventually call
 * qr_http_respond(req, ...) exactly once, from the loop thread, even if the
 * client has gone away meanwhile (the response is then dropped). */
typedef void (*qr_http_handler_cb)(qr_http_request_t *req, void *user);

typedef struct qr_http_config_s {
    const char *host;            /* listen address, e.g. "127.0.0.1" */
    int port;                    /* listen port; 0 picks a free one (see qr_http_port) */
    const char *cert_file;       /* PEM certificate chain */
    const char *key_file;        /* PEM private key */
    size_t max_header_bytes;     /* request line + headers; default 16384 */
    size_t max_body_bytes;       /* the largest body any request may have; default 64 MiB */
    size_t max_body_total_bytes; /* all bodies in memory at once; default 128 MiB; 0 = default */
    qr_http_handler_cb head_handler; /* sees each head first (see above); NULL: every body
                                        is read at max_body_bytes */
    int idle_timeout_ms;             /* default 30000 */
    int max_connections;             /* default 16384; past it new connections get 503 and close */
    const char *client_ca_file; /* PEM CA bundle: verify client certificates (NULL: none asked) */
    int require_client_cert;    /* with client_ca_file: no certificate, no handshake */
} qr_http_config_t;

/* Creates the TLS context (TLS 1.2+, no renegotiation, RELEASE_BUFFERS), binds
 * and listens. On failure returns a negative code and writes a message to
 * err (errlen bytes). The server is freed by qr_http_server_close. */
int qr_http_server_start(uv_loop_t *loop, const qr_http_config_t *cfg, qr_http_handler_cb handler,
                         void *user, qr_http_server_t **out, char *err, size_t errlen);

/* Loads a new certificate chain and key, and the client CA bundle again if
 * one was configured (e.g. on SIGHUP): new connections are served with
 * them, open ones keep theirs. On failure (bad files, key not matching)
 * nothing changes and err says why. */
int qr_http_reload_tls(qr_http_server_t *srv, const char *cert_file, const char *key_file,
                       char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int qr_http_port(const qr_http_server_t *srv);

/* Connections open now (accepted and not yet closing; GET /metrics). */
int qr_http_connections(const qr_http_server_t *srv);

/* When the last connection was accepted (qr_mono_ms), 0 if none was. */
int64_t qr_http_accepted_ms(const qr_http_server_t *srv);

/* From the head handler: lets req's body in, at most max_body_bytes of it
 * (capped by the server's max_body_bytes), then passes the complete
 * request to the request handler. Sends 100 Continue if the client asked.
 * Returns 0; or a negative code when req was not let through: its body is
 * over the limit (answered 413) or its connection is gone; req is then
 * freed and must not be touched. A handler that keeps state for req must
 * register qr_http_on_gone first: if the connection ends before the body
 * is complete, that callback is how it learns (and it answers then, which
 * frees req); without one, req is freed silently. */
int qr_http_continue(qr_http_request_t *req, size_t max_body_bytes);

/* Streamed bodies. on_chunk gets the body's bytes as they arrive (decoded:
 * Content-Length or chunked), data valid during the call only; on_end runs
 * once the body is complete, and the request is then the handler's as a
 * complete one is (it must still be answered). Both run on the loop thread. */
typedef void (*qr_http_chunk_cb)(qr_http_request_t *req, const char *data, size_t len, void *arg);
typedef void (*qr_http_end_cb)(qr_http_request_t *req, void *arg);

/* From the head handler, instead of qr_http_continue: lets req's body in,
 * at most max_body_bytes of it (capped by the server's max_body_bytes), but
 * hands it to on_chunk piece by piece instead of holding it: a streamed
 * body takes nothing of max_body_total_bytes, and is never held whole. The
 * request handler is not called; on_end is. Over the limit the server
 * answers 413 and closes, and the handler learns it through
 * qr_http_on_gone, as it does of a client gone mid-body. The deadline is
 * per byte here, not per body: idle_timeout_ms without a byte from the
 * client (while reading is not paused by the handler) ends the connection.
 * The handler may answer before the body's end (an error found half-way):
 * the answer goes out at once, with Connection: close, and the rest of the
 * body is read and dropped (within the same limit), then the connection
 * closes. Returns as qr_http_continue does. */
int qr_http_continue_stream(qr_http_request_t *req, size_t max_body_bytes,
                            qr_http_chunk_cb on_chunk, qr_http_end_cb on_end, void *arg);

/* Backpressure for a streamed body: after pause, on_chunk is not called
 * again (not even for the rest of the bytes of the call it is made from)
 * and the connection stops reading once its small input buffer is full,
 * until resume. The client's deadline does not run while paused. Either
 * may be called from on_chunk or later; both do nothing on a request that
 * is not streaming its body any more. */
void qr_http_stream_pause(qr_http_request_t *req);
void qr_http_stream_resume(qr_http_request_t *req);

/* Called at most once, on the loop thread, when req's connection goes away
 * before qr_http_respond was called for it (the client closed or reset it,
 * or the server is closing). The handler still owns req and must still call
 * qr_http_respond, which then only frees it; cb may do so itself. Lets a
 * handler that waits (a long poll) give back what it holds for a client
 * that is gone, instead of granting it to nobody. */
typedef void (*qr_http_gone_cb)(qr_http_request_t *req, void *arg);
void qr_http_on_gone(qr_http_request_t *req, qr_http_gone_cb cb, void *arg);

/* 1 if req's connection is gone (its response can no longer be sent). */
int qr_http_request_gone(const qr_http_request_t *req);

/* Frees req's body before the response, for a handler done with it while
 * it still waits (an import, once parsed, until its COPY commits): body
 * becomes "" (body_len 0) and its bytes leave the server's body budget
 * (max_body_total_bytes) at once, so the next body may be read. */
void qr_http_request_drop_body(qr_http_request_t *req);

/* Sends the response and frees req. body may be NULL for no body; it is
 * copied. extra_headers, if not NULL, is a block of "Name: value\r\n" lines.
 * Returns 0, or a negative code if req's connection was already gone (the
 * request is freed all the same). */
int qr_http_respond(qr_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t body_len, const char *extra_headers);

/*
 * A response streamed in chunks (Transfer-Encoding: chunked), for answers
 * too large to hold in memory (an export). qr_http_stream_start sends the
 * head; the handler then sends the body piece by piece with
 * qr_http_stream_write and ends with qr_http_stream_end, which sends the
 * last chunk and frees req as qr_http_respond does. The request stays the
 * connection's until then (no other request is read), and qr_http_on_gone
 * still tells of a client that went away: the handler then calls
 * qr_http_stream_end, which only frees req.
 *
 * Backpressure: after a write, qr_http_stream_busy says whether more than
 * QR_HTTP_STREAM_LOW_WATER bytes wait to go out; if so, the handler should
 * stop producing and ask qr_http_stream_on_drain to be called back (once,
 * from a write callback) when they have gone below it. So a slow reader
 * costs at most one page of the export in memory, not the export.
 *
 * A failure after the head was sent cannot change the status: the handler
 * calls qr_http_stream_abort, which closes the connection without the last
 * chunk (the client sees a truncated transfer, never a short one that
 * looks whole) and frees req. All return 0, or a negative code when the
 * connection is gone (req is then still the handler's until stream_end or
 * stream_abort, except after those two, which always free it).
 */
#define QR_HTTP_STREAM_LOW_WATER (64 << 10)
typedef void (*qr_http_drain_cb)(qr_http_request_t *req, void *arg);
int qr_http_stream_start(qr_http_request_t *req, int status, const char *content_type,
                         const char *extra_headers);
int qr_http_stream_write(qr_http_request_t *req, const char *data, size_t len);
int qr_http_stream_busy(const qr_http_request_t *req);
void qr_http_stream_on_drain(qr_http_request_t *req, qr_http_drain_cb cb, void *arg);
int qr_http_stream_end(qr_http_request_t *req);
void qr_http_stream_abort(qr_http_request_t *req);

/*
 * Graceful drain, for a broker leaving a pool behind a load balancer. From
 * qr_http_server_drain on, every response carries Connection: close and its
 * connection closes once it is sent (close_notify, then FIN); connections
 * idle between requests close at once, the same way; a request already
 * being read or with the handler is answered as usual. New connections are
 * still accepted (each gets one answer, then closes) until
 * qr_http_server_stop_listening, so a health checker can still be told "not
 * ready". qr_http_connections then falls to 0 once every client was answered
 * and has gone (the caller watches it, with its own deadline, and ends with
 * qr_http_server_close, which cuts whatever is left). Both may be called more
 * than once; neither fails.
 */
void qr_http_server_drain(qr_http_server_t *srv);
void qr_http_server_stop_listening(qr_http_server_t *srv);

/* Stops listening, closes every connection (pending requests are answered
 * by nobody: their later qr_http_respond calls just free them), and frees
 * the server once all handles have closed. cb (may be NULL) runs then. */
void qr_http_server_close(qr_http_server_t *srv, void (*cb)(void *arg), void *arg);

/* The reason phrase for a status code ("Not Found"). */
const char *qr_http_reason(int status);

/* For the fuzz harness (tests/fuzz/fuzz_http.c) only; quorumd never calls
 * it. Parses len bytes of plain HTTP (no TLS, no socket) with the server's
 * own per-connection parser, fed chunk bytes at a time (0: all at once);
 * returns the number of complete requests parsed (see http_parse.c). */
int qr_http_fuzz_parse(const uint8_t *data, size_t len, size_t chunk);

#endif
