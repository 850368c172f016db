/*
 * http.c - quorumd's HTTPS/1.1 server (interface and limits in http.h).
 *
 * One libuv loop drives everything. Each connection owns a uv_tcp_t, a
 * uv_timer_t and an SSL object whose two memory BIOs sit between the socket
 * and OpenSSL: ciphertext read from the socket is written into the read BIO,
 * and whatever OpenSSL leaves in the write BIO after any SSL call is handed
 * to uv_write. Decrypted bytes collect in the connection's input buffer and
 * are fed to http-parser, which stops (pauses) at the end of each request;
 * the next request is not parsed before the current one was answered.
 *
 * Lifetime rules, which every callback below relies on:
 *   - A connection is freed only in the close callback of its last handle.
 *     Code that may close a connection (conn_abort, conn_finish) only marks
 *     it and starts closing, so the connection stays valid for the rest of
 *     the callback chain that is running.
 *   - A request handed to the handler points at its connection until either
 *     qr_http_respond or the connection's end; whichever comes first cuts
 *     the link, so a late qr_http_respond just frees the request.
 *   - Write buffers are heap blocks that live until their write callback.
 *
 * Timing: one timer per connection is a deadline, not an inactivity timer.
 * It starts when the connection becomes idle (accepted, or its last response
 * sent) and stops when a complete request is handed to the handler, so a
 * client trickling bytes cannot hold a connection past idle_timeout_ms.
 * While the connection closes, the same timer bounds the lingering close.
 */
#include "http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define DEFAULT_MAX_HEADER_BYTES     16384
#define DEFAULT_MAX_BODY_BYTES       ((size_t)64 << 20)
#define DEFAULT_MAX_BODY_TOTAL_BYTES ((size_t)128 << 20)
#define DEFAULT_IDLE_TIMEOUT_MS      30000
#define DEFAULT_MAX_CONNECTIONS      10000

#define READ_BUF_BYTES   65536       /* one socket read, shared by all connections */
#define TLS_READ_BYTES   16384       /* one SSL_read: a full TLS record */
#define OUT_HIGH_WATER   (256 << 10) /* stop reading while this much ciphertext is queued */
#define IN_HIGH_WATER    (64 << 10)  /* stop reading while this much plaintext waits unparsed */
#define LINGER_MS        2000        /* longest wait for the client after our last byte */
#define REFUSE_SLACK     64          /* connections past max that still get a 503 */
#define LISTEN_BACKLOG   511
#define READ_SLICE_BYTES (128 << 10) /* one connection's reads per loop turn, at most */

typedef struct conn_s conn_t;
typedef struct req_s req_t;

/* Where a request is: with the head handler (its body not read yet), its
 * body being read, or complete with the request handler. */
enum req_stage { STAGE_HEAD, STAGE_BODY, STAGE_FULL };

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

enum conn_state {
    CONN_OPEN,     /* TLS handshake or HTTP in progress */
    CONN_DRAINING, /* last bytes queued; waiting for them and for the client's EOF */
    CONN_CLOSED,   /* uv_close called; freed in the last close callback */
};

/* Which request header the value being parsed belongs to. */
enum header_slot { SLOT_NONE, SLOT_AUTH, SLOT_CTYPE, SLOT_EXPECT };

struct qr_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ssl_ctx;
    qr_http_handler_cb handler;
    qr_http_handler_cb head_handler; /* sees each head before its body is read, or NULL */
    void *user;
    size_t max_header_bytes;
    size_t max_body_bytes;
    size_t body_budget;   /* bytes all bodies being read or held may reserve; 0 = no bound */
    size_t body_reserved; /* bytes reserved now by requests past their head */
    conn_t *parked_head;  /* connections waiting for body budget, oldest first */
    conn_t *parked_tail;  /* the newest of them */
    int waking;           /* budget_wake is on the stack */
    uv_prepare_t tick;    /* counts the loop's turns (iteration) */
    uv_idle_t resume;     /* active while connections wait to read again */
    uint64_t iteration;   /* turns of the loop so far */
    conn_t *throttled;    /* connections that read their slice this turn */
    int aux_handles;      /* tick and resume initialised */
    uint64_t idle_timeout_ms;
    int max_connections;
    char *client_ca_file;    /* verify client certificates against it, or NULL */
    int require_client_cert; /* no client certificate: no handshake */
    uint64_t refusals;       /* connections answered 503 past max_connections */
    int port;
    conn_t *conns;                /* connections not yet closing, doubly linked */
    int nconns;                   /* entries in conns */
    int live;                     /* listener + connections not yet freed */
    int closing;                  /* qr_http_server_close was called */
    void (*close_cb)(void *arg);  /* run once everything is freed */
    void *close_arg;              /* its argument */
    char readbuf[READ_BUF_BYTES]; /* safe to share: each read is consumed in its callback */
};

struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;                    /* request deadline, then lingering-close bound */
    uv_shutdown_t shutdown_req;          /* our FIN, after the last write */
    qr_http_server_t *srv;               /* borrowed; outlives the connection */
    conn_t *prev, *next;                 /* in srv->conns while not closing */
    SSL *ssl;                            /* owns rbio and wbio */
    BIO *rbio;                           /* ciphertext from the socket */
    BIO *wbio;                           /* ciphertext for the socket */
    http_parser parser;                  /* parser.data = this connection */
    enum conn_state state;               /* see enum conn_state */
    int handles;                         /* initialised handles not yet closed */
    int reading;                         /* uv_read_start is in effect */
    int handshake_done;                  /* TLS established */
    int tls_failed;                      /* fatal TLS error: no SSL_shutdown */
    int peer_done;                       /* client sent close_notify */
    int refused;                         /* over max_connections: gets a 503 */
    int in_process;                      /* conn_process is on the stack */
    int in_head;                         /* parsing a request line or headers */
    size_t head_bytes;                   /* bytes of the current head so far */
    int fail_status;                     /* a parser callback refused the request (413, 400...) */
    int head_scan;                       /* where head_check is in the head (enum head_scan) */
    int head_cr;                         /* head_check's last byte was a CR */
    int discard_message;                 /* the rest of an answered head-only request: drop it */
    size_t body_limit;                   /* the current request's body limit (qr_http_continue) */
    req_t *head_ready;                   /* head parsed, not yet handed to the head handler */
    req_t *body_req;                     /* head accepted, body being read */
    conn_t *park_next;                   /* in srv's parked list, waiting for body budget */
    int parked;                          /* in that list */
    size_t body_need;                    /* budget the parked request waits for */
    uint64_t read_turn;                  /* the loop turn read_bytes counts for */
    size_t read_bytes;                   /* bytes read in that turn */
    int throttled;                       /* reading stopped until the next turn */
    conn_t *throttle_next;               /* in srv->throttled */
    size_t out_bytes;                    /* ciphertext handed to uv_write, not yet written */
    qr_buf_t in;                         /* decrypted bytes not yet parsed */
    qr_buf_t url;                        /* request target of the request being parsed */
    qr_buf_t field;                      /* header name being parsed */
    qr_buf_t body;                       /* body of the request being parsed */
    qr_buf_t auth, ctype, expect;        /* the headers we keep */
    int has_auth, has_ctype, has_expect; /* seen in this request */
    enum header_slot slot;               /* where the current header value goes */
    int value_started;                   /* last header callback was a value */
    req_t *ready;                        /* parsed, not yet handed to the handler */
    req_t *inflight;                     /* with the handler, not yet answered */
    char peer[64];                       /* "ip:port" */
    char client_cert[65];                /* verified client certificate's SHA-256, or "" */
};

struct req_s {
    qr_http_request_t pub;   /* pub.priv_ points back here */
    conn_t *conn;            /* NULL once answered or the connection is gone */
    int keep_alive;          /* the client allows another request */
    int head;                /* HEAD request: headers only */
    qr_http_gone_cb gone_cb; /* run once if conn goes first (qr_http_on_gone) */
    void *gone_arg;          /* its argument */
    int stage;               /* enum req_stage */
    int64_t content_length;  /* from the head; -1 for chunked */
    int expect_continue;     /* the client waits for 100 Continue before its body */
    size_t reserved;         /* bytes of srv->body_reserved held for this request */
    int continued;           /* between qr_http_continue and the request handler: ours */
    qr_http_server_t *srv;   /* for the budget, when conn is gone */
    char *path, *query, *auth, *ctype, *body;
    char peer[64];
    char client_cert[65]; /* "" when the client sent no verified certificate */
};

typedef struct write_s {
    uv_write_t req;
    conn_t *conn;
    size_t len;
    char data[]; /* len bytes of ciphertext */
} write_t;

static void conn_abort(conn_t *c);
static void conn_finish(conn_t *c, int notify);
static void conn_process(conn_t *c);
static void update_reading(conn_t *c);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* --- small helpers -------------------------------------------------------- */

static void budget_wake(qr_http_server_t *srv);

static void req_free(req_t *r)
{
    if (r->reserved) {
        r->srv->body_reserved -= r->reserved;
        r->reserved = 0;
        budget_wake(r->srv);
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

/* --- output --------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    conn_t *c = w->conn;
    c->out_bytes -= w->len;
    free(w);
    if (status < 0) {
        /* UV_ECANCELED after uv_close is expected; anything else ends it. */
        if (c->state != CONN_CLOSED)
            qr_debug("http %s: write failed: %s", c->peer, uv_strerror(status));
        conn_abort(c);
        return;
    }
    update_reading(c);
}

/*
 * Moves everything OpenSSL left in the write BIO to the socket. Must follow
 * every SSL call: handshakes, reads (TLS 1.3 session tickets, alerts) and
 * writes may all produce output. Returns 0 or a negative code; on failure
 * the caller aborts the connection.
 */
static int flush_out(conn_t *c)
{
    for (;;) {
        size_t pending = BIO_ctrl_pending(c->wbio);
        if (pending == 0)
            return 0;
        if (pending > INT_MAX / 2)
            pending = INT_MAX / 2;
        write_t *w = qr_xmalloc(sizeof *w + pending);
        int n = BIO_read(c->wbio, w->data, (int)pending);
        if (n <= 0) {
            free(w);
            return QR_EIO;
        }
        if (c->state == CONN_CLOSED) {
            free(w); /* nobody to send it to */
            continue;
        }
        w->conn = c;
        w->len = (size_t)n;
        uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
        int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc < 0) {
            free(w);
            qr_debug("http %s: uv_write: %s", c->peer, uv_strerror(rc));
            return rc;
        }
        c->out_bytes += w->len;
    }
}

/* Encrypts len plaintext bytes and queues them. 0 or a negative code. */
static int tls_send(conn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : (int)len;
        ERR_clear_error();
        int n = SSL_write(c->ssl, data, chunk);
        int rc = flush_out(c);
        if (n <= 0) {
            char why[256];
            qr_debug("http %s: SSL_write: %s", c->peer, qr_tls_errstr(why, sizeof why));
            c->tls_failed = 1;
            return QR_EIO;
        }
        if (rc < 0)
            return rc;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Formats a complete response into out. */
static void format_response(qr_buf_t *out, int status, const char *content_type, const char *body,
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
static void send_error(conn_t *c, int status)
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
    format_response(&out, status, "application/json", body, (size_t)n, NULL, 0, 0);
    int rc = tls_send(c, out.data, out.len);
    qr_buf_free(&out);
    if (rc < 0) {
        conn_abort(c);
        return;
    }
    conn_finish(c, 1);
}

/* --- closing -------------------------------------------------------------- */

static void server_maybe_free(qr_http_server_t *srv)
{
    if (!srv->closing || srv->live > 0)
        return;
    void (*cb)(void *) = srv->close_cb;
    void *arg = srv->close_arg;
    SSL_CTX_free(srv->ssl_ctx);
    free(srv->client_ca_file);
    free(srv);
    if (cb)
        cb(arg);
}

static void conn_free(conn_t *c)
{
    qr_http_server_t *srv = c->srv;
    SSL_free(c->ssl); /* frees both BIOs */
    qr_buf_free(&c->in);
    qr_buf_free(&c->url);
    qr_buf_free(&c->field);
    qr_buf_free(&c->body);
    qr_buf_free(&c->auth);
    qr_buf_free(&c->ctype);
    qr_buf_free(&c->expect);
    free(c);
    srv->live--;
    server_maybe_free(srv);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles == 0)
        conn_free(c);
}

/* Cuts the link between a connection and the request its handler holds. */
static void detach_requests(conn_t *c)
{
    if (c->head_ready) {
        req_free(c->head_ready); /* no handler has seen it */
        c->head_ready = NULL;
    }
    req_t *seen[] = {c->inflight, c->body_req, c->ready};
    c->inflight = c->body_req = c->ready = NULL;
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        req_t *r = seen[i];
        if (!r)
            continue;
        /* The body's budget is free now: the server may be gone by the
         * time the handler answers. */
        if (r->reserved) {
            c->srv->body_reserved -= r->reserved;
            r->reserved = 0;
            budget_wake(c->srv);
        }
        r->conn = NULL;
        qr_http_gone_cb cb = r->gone_cb;
        r->gone_cb = NULL;
        if (cb)
            cb(&r->pub, r->gone_arg); /* may answer (and so free) r */
        else if (r->continued)
            req_free(r); /* the server's, and nobody asked to hear of it */
    }
}

static void unpark(conn_t *c);

static void unthrottle(conn_t *c)
{
    if (!c->throttled)
        return;
    conn_t **pp = &c->srv->throttled;
    while (*pp && *pp != c)
        pp = &(*pp)->throttle_next;
    if (*pp)
        *pp = c->throttle_next;
    c->throttle_next = NULL;
    c->throttled = 0;
}

static void unlink_conn(conn_t *c)
{
    qr_http_server_t *srv = c->srv;
    unpark(c);
    unthrottle(c);
    if (!c->prev && srv->conns != c)
        return; /* not linked */
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    srv->nconns--;
}

/*
 * Closes the connection now: pending writes are cancelled (their callbacks
 * run with UV_ECANCELED) and the connection is freed in the last close
 * callback. Safe to call more than once and from any callback of c.
 */
static void conn_abort(conn_t *c)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    c->reading = 0;
    detach_requests(c);
    unlink_conn(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0) {
        conn_abort(c);
        return;
    }
    /* Our last byte is out; keep reading (and discarding) until the client
     * closes or the linger timer fires, so that unread input does not make
     * the kernel answer with a reset that destroys our response in flight. */
}

static void send_error(conn_t *c, int status);

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->parked) {
        /* Waited its turn for body budget as long as a request may take. */
        unpark(c);
        send_error(c, 507);
        return;
    }
    if (c->state == CONN_OPEN && c->handshake_done && !c->tls_failed) {
        qr_debug("http %s: no complete request in time; closing", c->peer);
        conn_finish(c, 1);
    } else {
        conn_abort(c);
    }
}

/*
 * Ends the connection gracefully: sends close_notify if notify (and TLS is
 * healthy), queues our FIN behind the pending writes, and gives the client
 * LINGER_MS to read it all before the connection is closed for good.
 */
static void conn_finish(conn_t *c, int notify)
{
    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_DRAINING;
    detach_requests(c);
    if (notify && c->handshake_done && !c->tls_failed) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* 0: sent, not yet answered; both fine here */
        ERR_clear_error();
    }
    int rc = flush_out(c);
    if (rc < 0)
        goto fail;
    rc = uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    if (rc < 0)
        goto fail;
    c->shutdown_req.data = c;
    rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0)
        goto fail;
    update_reading(c);
    return;
fail:
    conn_abort(c);
}

/* If the client sent close_notify and nothing is left to answer, close. */
static void maybe_finish(conn_t *c)
{
    if (c->state == CONN_OPEN && c->peer_done && !c->inflight && !c->in_process)
        conn_finish(c, 1);
}

/* --- input ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->readbuf, sizeof c->srv->readbuf);
}

/*
 * Reads from the socket only while doing so is useful and bounded: not while
 * too much ciphertext waits to be written (a client that does not read) or
 * too much plaintext waits behind an unanswered request (pipelining).
 */
static void update_reading(conn_t *c)
{
    int want;
    if (c->state == CONN_CLOSED)
        return;
    if (c->throttled)
        want = 0; /* read its slice this turn; the next turn resumes it */
    else if (c->state == CONN_DRAINING)
        want = 1; /* discard input; notice the client's EOF */
    else
        want = c->out_bytes < OUT_HIGH_WATER && c->in.len < IN_HIGH_WATER;
    if (want == c->reading)
        return;
    int rc = want ? uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)
                  : uv_read_stop((uv_stream_t *)&c->tcp);
    if (rc < 0) {
        qr_warn("http %s: uv_read_%s: %s", c->peer, want ? "start" : "stop", uv_strerror(rc));
        conn_abort(c);
        return;
    }
    c->reading = want;
}

/*
 * Keeps the fingerprint of the client's certificate once the handshake is
 * done, if OpenSSL verified it (a certificate that fails verification has
 * failed the handshake already; the check is a second lock on that door).
 */
static void note_client_cert(conn_t *c)
{
    if (!c->srv->client_ca_file)
        return;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;
    if (qr_tls_cert_sha256(peer, c->client_cert) < 0) {
        c->client_cert[0] = '\0';
        qr_warn("http %s: cannot hash the client certificate", c->peer);
    }
}

/*
 * Runs TLS over the ciphertext now in the read BIO: finishes the handshake,
 * then decrypts everything available into c->in and parses it.
 */
static void tls_pump(conn_t *c)
{
    char why[256];
    if (!c->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (flush_out(c) < 0) {
            conn_abort(c);
            return;
        }
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return;
            qr_debug("http %s: TLS handshake failed: %s", c->peer, qr_tls_errstr(why, sizeof why));
            c->tls_failed = 1;
            conn_finish(c, 0); /* let the alert reach the client */
            return;
        }
        c->handshake_done = 1;
        note_client_cert(c);
    }
    char plain[TLS_READ_BYTES];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, plain, sizeof plain);
        if (flush_out(c) < 0) {
            conn_abort(c);
            return;
        }
        if (n > 0) {
            qr_buf_append(&c->in, plain, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->peer_done = 1;
            break;
        }
        qr_debug("http %s: TLS read failed: %s", c->peer, qr_tls_errstr(why, sizeof why));
        c->tls_failed = 1;
        conn_finish(c, 0);
        return;
    }
    conn_process(c);
    maybe_finish(c);
}

static void on_tick(uv_prepare_t *h)
{
    qr_http_server_t *srv = h->data;
    srv->iteration++;
}

/* The next turn: connections that read their slice read again. */
static void on_resume(uv_idle_t *h)
{
    qr_http_server_t *srv = h->data;
    conn_t *list = srv->throttled;
    srv->throttled = NULL;
    (void)uv_idle_stop(&srv->resume); /* cannot fail on an initialised handle */
    while (list) {
        conn_t *c = list;
        list = c->throttle_next;
        c->throttle_next = NULL;
        c->throttled = 0;
        update_reading(c);
    }
}

/*
 * libuv reads a readable socket up to 32 times in a row: a client sending
 * at line rate would hold the loop for megabytes while everyone else
 * waits. Counts what c read this turn of the loop; after its slice, c
 * stops reading until the next turn (on_resume).
 */
static void read_slice(conn_t *c, size_t n)
{
    qr_http_server_t *srv = c->srv;
    if (c->read_turn != srv->iteration) {
        c->read_turn = srv->iteration;
        c->read_bytes = 0;
    }
    c->read_bytes += n;
    if (c->read_bytes < READ_SLICE_BYTES || !c->reading || !srv->aux_handles)
        return;
    int rc = uv_read_stop((uv_stream_t *)&c->tcp);
    if (rc < 0) {
        conn_abort(c);
        return;
    }
    c->reading = 0;
    c->throttled = 1;
    c->throttle_next = srv->throttled;
    srv->throttled = c;
    rc = uv_idle_start(&srv->resume, on_resume);
    if (rc < 0)
        qr_warn("http: uv_idle_start: %s", uv_strerror(rc)); /* a closed server only */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or reset. A request still with the handler is detached: the
         * client cannot be answered any more. */
        conn_abort(c);
        return;
    }
    if (c->state != CONN_OPEN || c->peer_done) {
        /* Draining, or after the client's close_notify: nothing more is
         * read, but reading goes on (a slice a turn) so that its EOF is
         * seen and a request still waiting (a long poll) learns it is
         * gone. */
        read_slice(c, (size_t)nread);
        return;
    }
    int n = BIO_write(c->rbio, buf->base, (int)nread);
    if (n != (int)nread) {
        qr_warn("http %s: BIO_write failed", c->peer);
        conn_abort(c);
        return;
    }
    tls_pump(c);
    update_reading(c);
    if (c->state != CONN_CLOSED)
        read_slice(c, (size_t)nread);
}

/* --- http-parser callbacks ------------------------------------------------ */

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    qr_buf_reset(&c->url);
    qr_buf_reset(&c->field);
    qr_buf_reset(&c->body);
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
    if (p->content_length > c->body_limit - c->body.len) {
        c->fail_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->discard_message)
        return 0;
    if (len > c->body_limit - c->body.len) {
        c->fail_status = 413;
        return -1;
    }
    qr_buf_append(&c->body, at, len);
    return 0;
}

/* Completes the request with its body and pauses the parser, which then
 * returns at once; conn_process hands the request to the handler. */
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
        /* The head was answered already (a refusal without a body). */
        c->discard_message = 0;
        return 0;
    }
    req_t *r = c->body_req;
    c->body_req = NULL;
    free(r->body);
    r->pub.body_len = c->body.len;
    r->body = qr_buf_steal(&c->body);
    r->pub.body = r->body;
    r->stage = STAGE_FULL;
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
 * Parses the buffered plaintext, one request at a time: each complete
 * request goes to the handler, and parsing stops until it was answered
 * (qr_http_respond calls back in here). The head is fed to the parser in
 * slices no longer than what is left of max_header_bytes, so the limit is
 * exact whatever the parser's own compiled-in limit.
 */
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

static void conn_process(conn_t *c)
{
    qr_http_server_t *srv = c->srv;
    if (c->in_process)
        return; /* the loop below, further up the stack, carries on */
    c->in_process = 1;
    while (c->state == CONN_OPEN && !c->inflight && c->in.len > 0) {
        size_t n = c->in.len;
        int was_head = c->in_head;
        if (was_head && n > srv->max_header_bytes - c->head_bytes)
            n = srv->max_header_bytes - c->head_bytes;
        if (was_head && head_check(c, c->in.data, n) < 0) {
            qr_debug("http %s: whitespace before a header colon or a folded header line", c->peer);
            send_error(c, 400);
            break;
        }
        size_t used = http_parser_execute(&c->parser, &parser_settings, c->in.data, n);
        if (c->state != CONN_OPEN)
            break; /* a callback ended the connection */
        buf_consume(&c->in, used);
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
                conn_abort(c);
                break;
            }
            srv->handler(&r->pub, srv->user);
            continue;
        }
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0); /* a discarded request's end */
            continue;
        }
        if (e != HPE_OK) {
            int status = c->fail_status;
            if (status < 0) {
                conn_abort(c);
                break;
            }
            if (!status)
                status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
            if (status == 400)
                qr_debug("http %s: %s", c->peer, http_errno_description(e));
            send_error(c, status);
            break;
        }
        if (c->in_head && c->head_bytes >= srv->max_header_bytes) {
            send_error(c, 431);
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
static void unpark(conn_t *c)
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
    if (r->content_length > 0)
        qr_buf_reserve(&c->body, (size_t)r->content_length); /* one block, not doublings */
    if (r->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (tls_send(c, cont, sizeof cont - 1) < 0) {
            conn_abort(c);
            return;
        }
    }
    http_parser_pause(&c->parser, 0);
    int rc = uv_timer_start(&c->timer, on_timer, srv->idle_timeout_ms, 0);
    if (rc < 0) {
        conn_abort(c);
        return;
    }
    if (!c->in_process) {
        conn_process(c);
        maybe_finish(c);
        update_reading(c);
    }
}

/* Starts the bodies of parked requests, oldest first, while they fit. */
static void budget_wake(qr_http_server_t *srv)
{
    if (srv->waking)
        return; /* the loop below, further up the stack, carries on */
    srv->waking = 1;
    while (srv->parked_head) {
        conn_t *c = srv->parked_head;
        if (srv->body_reserved > 0 && srv->body_reserved + c->body_need > srv->body_budget)
            break;
        unpark(c);
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
        req_free(r);
        conn_abort(c);
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
        req_free(r);
        return UV_ENOTCONN;
    }
    qr_http_server_t *srv = c->srv;
    if (max_body_bytes > srv->max_body_bytes)
        max_body_bytes = srv->max_body_bytes;
    if (r->content_length > 0 && (uint64_t)r->content_length > max_body_bytes) {
        c->inflight = NULL;
        r->conn = NULL;
        req_free(r);
        send_error(c, 413); /* refused before a byte of the body is read */
        return QR_EINVAL;
    }
    r->continued = 1;
    c->body_limit = max_body_bytes;
    c->body_need = r->content_length > 0   ? (size_t)r->content_length
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
        int rc = uv_timer_start(&c->timer, on_timer, srv->idle_timeout_ms, 0);
        if (rc < 0)
            conn_abort(c); /* the handler learns it through the gone callback */
        return 0;
    }
    body_start(c, r);
    return 0;
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

int qr_http_respond(qr_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t body_len, const char *extra_headers)
{
    req_t *r = req->priv_;
    conn_t *c = r->conn;
    if (!c) {
        req_free(r);
        return UV_ENOTCONN;
    }
    r->conn = NULL;
    c->inflight = NULL;
    if (c->parked)
        unpark(c);
    int unread_body = 0;
    if (r->stage == STAGE_HEAD) {
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
    int keep = r->keep_alive && !c->srv->closing && !c->peer_done && !unread_body;
    qr_buf_t out;
    qr_buf_init(&out);
    format_response(&out, status, content_type, body, body_len, extra_headers, keep, r->head);
    req_free(r);
    int rc = tls_send(c, out.data, out.len);
    qr_buf_free(&out);
    if (rc < 0) {
        conn_abort(c);
        return rc;
    }
    if (!keep) {
        conn_finish(c, 1);
        return 0;
    }
    /* A new deadline for the next request. */
    rc = uv_timer_start(&c->timer, on_timer, c->srv->idle_timeout_ms, 0);
    if (rc < 0) {
        conn_abort(c);
        return rc;
    }
    if (!c->in_process) {
        conn_process(c); /* requests already pipelined behind this one */
        maybe_finish(c);
        update_reading(c);
    }
    return 0;
}

/* --- accepting ------------------------------------------------------------ */

static void format_peer(conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            if (uv_ip6_name(a, ip, sizeof ip) < 0)
                snprintf(ip, sizeof ip, "?");
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
            return;
        }
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (uv_ip4_name(a, ip, sizeof ip) < 0)
            snprintf(ip, sizeof ip, "?");
        port = ntohs(a->sin_port);
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
}

/* Sets up TLS for an accepted connection. 0 or a negative code. */
static int conn_tls_init(conn_t *c)
{
    c->ssl = SSL_new(c->srv->ssl_ctx);
    if (!c->ssl)
        return QR_EIO;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return QR_EIO;
    }
    /* An empty read BIO means "no data yet", not EOF. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns them now */
    SSL_set_accept_state(c->ssl);
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    qr_http_server_t *srv = listener->data;
    char why[256];
    if (status < 0) {
        qr_warn("http: accept: %s", uv_strerror(status));
        return;
    }
    conn_t *c = qr_xcalloc(1, sizeof *c);
    c->srv = srv;
    c->state = CONN_OPEN;
    c->in_head = 1;
    int rc = uv_tcp_init(srv->loop, &c->tcp);
    if (rc < 0) {
        qr_warn("http: uv_tcp_init: %s", uv_strerror(rc));
        free(c);
        return;
    }
    srv->live++;
    c->handles = 1;
    c->tcp.data = c;
    rc = uv_timer_init(srv->loop, &c->timer);
    if (rc < 0) {
        qr_warn("http: uv_timer_init: %s", uv_strerror(rc));
        c->state = CONN_CLOSED;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->handles = 2;
    c->timer.data = c;
    /* Link first, so that conn_abort below unlinks consistently. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        qr_warn("http: uv_accept: %s", uv_strerror(rc));
        goto fail;
    }
    format_peer(c);
    if (srv->nconns > srv->max_connections + REFUSE_SLACK) {
        qr_debug("http %s: far over max_connections; dropped", c->peer);
        goto fail;
    }
    if (srv->nconns > srv->max_connections) {
        /* Logged at the first refusal and then at every power of two, so a
         * flood of connections cannot flood the log too. */
        c->refused = 1;
        srv->refusals++;
        if ((srv->refusals & (srv->refusals - 1)) == 0)
            qr_warn("http %s: over --max-connections (%d open): answered 503 "
                    "(%" PRIu64 " refused so far)",
                    c->peer, srv->max_connections, srv->refusals);
    }
    rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc < 0) {
        qr_warn("http %s: uv_tcp_nodelay: %s", c->peer, uv_strerror(rc));
        goto fail;
    }
    if (conn_tls_init(c) < 0) {
        qr_warn("http %s: SSL_new: %s", c->peer, qr_tls_errstr(why, sizeof why));
        goto fail;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    rc = uv_timer_start(&c->timer, on_timer, srv->idle_timeout_ms, 0);
    if (rc < 0) {
        qr_warn("http %s: uv_timer_start: %s", c->peer, uv_strerror(rc));
        goto fail;
    }
    update_reading(c);
    return;
fail:
    conn_abort(c);
}

/* --- server --------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    qr_http_server_t *srv = h->data;
    srv->live--;
    server_maybe_free(srv);
}

/* Closes the loop-turn counter and the resume handle, if they were made. */
static void close_aux(qr_http_server_t *srv)
{
    if (!srv->aux_handles)
        return;
    srv->aux_handles = 0;
    uv_close((uv_handle_t *)&srv->tick, on_listener_closed);
    uv_close((uv_handle_t *)&srv->resume, on_listener_closed);
}

/* The TLS context of qr_tls_server_ctx, plus client verification when a
 * client CA bundle is configured. NULL with the reason in err. */
static SSL_CTX *server_ctx(const char *cert_file, const char *key_file, const char *client_ca,
                           int require_client_cert, char *err, size_t errlen)
{
    SSL_CTX *ctx = qr_tls_server_ctx(cert_file, key_file, err, errlen);
    if (ctx && client_ca &&
        qr_tls_verify_clients(ctx, client_ca, require_client_cert, err, errlen)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int qr_http_server_start(uv_loop_t *loop, const qr_http_config_t *cfg, qr_http_handler_cb handler,
                         void *user, qr_http_server_t **out, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc;
    *out = NULL;
    if (!cfg || !cfg->host || !handler || cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "http: a listen host, a port in 0..65535 and a handler are needed");
        return QR_EINVAL;
    }
    if (strchr(cfg->host, ':'))
        rc = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        snprintf(err, errlen, "http: bad listen address %s: %s", cfg->host, uv_strerror(rc));
        return rc;
    }
    SSL_CTX *ctx = server_ctx(cfg->cert_file, cfg->key_file, cfg->client_ca_file,
                              cfg->require_client_cert, err, errlen);
    if (!ctx)
        return QR_EINVAL;

    qr_http_server_t *srv = qr_xcalloc(1, sizeof *srv);
    srv->client_ca_file = cfg->client_ca_file ? qr_xstrdup(cfg->client_ca_file) : NULL;
    srv->require_client_cert = cfg->require_client_cert;
    srv->loop = loop;
    srv->ssl_ctx = ctx;
    srv->handler = handler;
    srv->user = user;
    srv->max_header_bytes =
        cfg->max_header_bytes ? cfg->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    srv->max_body_bytes = cfg->max_body_bytes ? cfg->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    srv->body_budget =
        cfg->max_body_total_bytes ? cfg->max_body_total_bytes : DEFAULT_MAX_BODY_TOTAL_BYTES;
    srv->head_handler = cfg->head_handler;
    srv->idle_timeout_ms =
        cfg->idle_timeout_ms > 0 ? (uint64_t)cfg->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    srv->max_connections =
        cfg->max_connections > 0 ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    if (srv->max_header_bytes > (1u << 30))
        srv->max_header_bytes = 1u << 30;
    /* http-parser's own head limit is a process-wide setting (80 KB by
     * default); keep it above ours so that ours is the one that applies. It
     * also bounds chunk-size lines and trailers, which we do not count. */
    static uint32_t parser_limit = HTTP_MAX_HEADER_SIZE;
    if (srv->max_header_bytes + 1024 > parser_limit) {
        parser_limit = (uint32_t)srv->max_header_bytes + 1024;
        http_parser_set_max_header_size(parser_limit);
    }

    /* libuv writes with write(2): a client that reset its connection would
     * kill the process with SIGPIPE. Unless someone installed a handler, the
     * signal is ignored and the write fails with EPIPE instead. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    rc = uv_tcp_init(loop, &srv->listener);
    if (rc < 0) {
        snprintf(err, errlen, "http: uv_tcp_init: %s", uv_strerror(rc));
        SSL_CTX_free(ctx);
        free(srv->client_ca_file);
        free(srv);
        return rc;
    }
    srv->listener.data = srv;
    srv->live = 1;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc < 0) {
        snprintf(err, errlen, "http: bind %s:%d: %s", cfg->host, cfg->port, uv_strerror(rc));
        goto fail;
    }
    rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "http: listen %s:%d: %s", cfg->host, cfg->port, uv_strerror(rc));
        goto fail;
    }
    int len = sizeof addr;
    rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &len);
    if (rc < 0) {
        snprintf(err, errlen, "http: getsockname: %s", uv_strerror(rc));
        goto fail;
    }
    srv->port = addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&addr)->sin_port);
    if ((rc = uv_prepare_init(loop, &srv->tick)) < 0 ||
        (rc = uv_idle_init(loop, &srv->resume)) < 0) {
        /* Neither allocates: they do not fail on a loop that works. */
        snprintf(err, errlen, "http: uv_prepare_init/uv_idle_init: %s", uv_strerror(rc));
        goto fail;
    }
    srv->tick.data = srv->resume.data = srv;
    srv->aux_handles = 1;
    srv->live += 2;
    rc = uv_prepare_start(&srv->tick, on_tick);
    if (rc < 0) {
        snprintf(err, errlen, "http: uv_prepare_start: %s", uv_strerror(rc));
        goto fail;
    }
    uv_unref((uv_handle_t *)&srv->tick); /* the listener keeps the loop alive, not this */
    *out = srv;
    return 0;
fail:
    /* The listener handle exists: the server is freed in its close callback,
     * on the caller's next turn of the loop. */
    srv->closing = 1;
    close_aux(srv);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    return rc;
}

int qr_http_reload_tls(qr_http_server_t *srv, const char *cert_file, const char *key_file,
                       char *err, size_t errlen)
{
    SSL_CTX *ctx =
        server_ctx(cert_file, key_file, srv->client_ca_file, srv->require_client_cert, err, errlen);
    if (!ctx)
        return QR_EINVAL;
    /* Connections made so far keep the context they hold a reference to;
     * new ones get the new certificate. */
    SSL_CTX_free(srv->ssl_ctx);
    srv->ssl_ctx = ctx;
    return 0;
}

int qr_http_port(const qr_http_server_t *srv)
{
    return srv->port;
}

int qr_http_connections(const qr_http_server_t *srv)
{
    return srv->nconns;
}

void qr_http_server_close(qr_http_server_t *srv, void (*cb)(void *arg), void *arg)
{
    if (srv->closing)
        return;
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    close_aux(srv);
    while (srv->conns)
        conn_abort(srv->conns);
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
 * request parsing (conn_process and the http-parser callbacks above,
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

    /* The connection as on_connection sets it up, minus accept. */
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
    if (conn_tls_init(c) < 0) {
        conn_abort(c);
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
            format_response(&out, 200, "application/json", "{}", 2, NULL, keep, r->head);
            qr_buf_free(&out);
            req_free(r);
            if (!keep) {
                conn_finish(c, 1);
                break;
            }
            conn_process(c); /* requests pipelined behind this one */
            continue;
        }
        if (off == len)
            break;
        size_t n = chunk && chunk < len - off ? chunk : len - off;
        qr_buf_append(&c->in, data + off, n);
        off += n;
        conn_process(c);
    }
    conn_abort(c);
out:
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks free c, then srv */
    uv_loop_close(&loop);
    return parsed;
}
