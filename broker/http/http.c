/*
 * http.c - quorumd's HTTPS/1.1 server (interface and limits in http.h):
 * listening, accepting, and a connection's life from accept to its last
 * close callback. TLS is in http_tls.c, request parsing and the body budget
 * in http_parse.c, responses in http_respond.c (http_int.h lists them).
 *
 * One libuv loop drives everything. Each connection owns a uv_tcp_t, a
 * uv_timer_t and an SSL object whose two memory BIOs sit between the socket
 * and OpenSSL: ciphertext read from the socket is written into the read BIO,
 * and whatever OpenSSL leaves in the write BIO after any SSL call is handed
 * to uv_write. Decrypted bytes collect in the connection's input buffer and
 * are fed to http-parser, which stops (pauses) at the end of each request;
 * the next request is not parsed before the current one was answered.
 *
 * Lifetime rules, which every callback of the server's files relies on:
 *   - A connection is freed only in the close callback of its last handle.
 *     Code that may close a connection (qr_http_conn_abort,
 *     qr_http_conn_finish) only marks it and starts closing, so the
 *     connection stays valid for the rest of the callback chain that is
 *     running.
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
#include <inttypes.h>
#include <signal.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define OUT_HIGH_WATER   (256 << 10) /* stop reading while this much ciphertext is queued */
#define IN_HIGH_WATER    (64 << 10)  /* stop reading while this much plaintext waits unparsed */
#define LINGER_MS        2000        /* longest wait for the client after our last byte */
#define REFUSE_SLACK     64          /* connections past max that still get a 503 */
#define LISTEN_BACKLOG   511
#define READ_SLICE_BYTES (128 << 10) /* one connection's reads per loop turn, at most */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

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
        qr_http_req_free(c->head_ready); /* no handler has seen it */
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
            qr_http_budget_wake(c->srv);
        }
        r->conn = NULL;
        qr_http_gone_cb cb = r->gone_cb;
        r->gone_cb = NULL;
        if (cb)
            cb(&r->pub, r->gone_arg); /* may answer (and so free) r */
        else if (r->continued)
            qr_http_req_free(r); /* the server's, and nobody asked to hear of it */
    }
}

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
    qr_http_unpark(c);
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
void qr_http_conn_abort(conn_t *c)
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
        qr_http_conn_abort(c);
        return;
    }
    /* Our last byte is out; keep reading (and discarding) until the client
     * closes or the linger timer fires, so that unread input does not make
     * the kernel answer with a reset that destroys our response in flight. */
}

void qr_http_conn_on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->parked) {
        /* Waited its turn for body budget as long as a request may take. */
        qr_http_unpark(c);
        qr_http_send_error(c, 507);
        return;
    }
    if (c->state == CONN_OPEN && c->handshake_done && !c->tls_failed) {
        qr_debug("http %s: no complete request in time; closing", c->peer);
        qr_http_conn_finish(c, 1);
    } else {
        qr_http_conn_abort(c);
    }
}

/*
 * Ends the connection gracefully: sends close_notify if notify (and TLS is
 * healthy), queues our FIN behind the pending writes, and gives the client
 * LINGER_MS to read it all before the connection is closed for good.
 */
void qr_http_conn_finish(conn_t *c, int notify)
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
    int rc = qr_http_tls_flush(c);
    if (rc < 0)
        goto fail;
    rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, LINGER_MS, 0);
    if (rc < 0)
        goto fail;
    c->shutdown_req.data = c;
    rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0)
        goto fail;
    qr_http_conn_update_reading(c);
    return;
fail:
    qr_http_conn_abort(c);
}

/* If the client sent close_notify and nothing is left to answer, close. */
void qr_http_conn_maybe_finish(conn_t *c)
{
    /* Not while a streamed body's bytes wait on the handler (paused): they
     * are parsed when it resumes, and the request answered. */
    if (c->state == CONN_OPEN && c->peer_done && !c->inflight && !c->in_process &&
        !(c->body_req && c->in.len > 0))
        qr_http_conn_finish(c, 1);
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
void qr_http_conn_update_reading(conn_t *c)
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
        qr_http_conn_abort(c);
        return;
    }
    c->reading = want;
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
        qr_http_conn_update_reading(c);
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
        qr_http_conn_abort(c);
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
        qr_http_conn_abort(c);
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
        qr_http_conn_abort(c);
        return;
    }
    qr_http_tls_pump(c);
    qr_http_conn_update_reading(c);
    if (c->state != CONN_CLOSED)
        read_slice(c, (size_t)nread);
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
    /* Link first, so that qr_http_conn_abort below unlinks consistently. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    srv->accepted_ms = qr_mono_ms();
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
    if (qr_http_tls_conn_init(c) < 0) {
        qr_warn("http %s: SSL_new: %s", c->peer, qr_tls_errstr(why, sizeof why));
        goto fail;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    rc = uv_timer_start(&c->timer, qr_http_conn_on_timer, srv->idle_timeout_ms, 0);
    if (rc < 0) {
        qr_warn("http %s: uv_timer_start: %s", c->peer, uv_strerror(rc));
        goto fail;
    }
    qr_http_conn_update_reading(c);
    return;
fail:
    qr_http_conn_abort(c);
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
    SSL_CTX *ctx = qr_http_tls_ctx(cfg->cert_file, cfg->key_file, cfg->client_ca_file,
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
    qr_http_server_stop_listening(srv);
    return rc;
}

int qr_http_reload_tls(qr_http_server_t *srv, const char *cert_file, const char *key_file,
                       char *err, size_t errlen)
{
    SSL_CTX *ctx = qr_http_tls_ctx(cert_file, key_file, srv->client_ca_file,
                                   srv->require_client_cert, err, errlen);
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

int64_t qr_http_accepted_ms(const qr_http_server_t *srv)
{
    return srv->accepted_ms;
}

/* 1 if c waits for its client's next request with nothing of it read: no
 * request parsed, with the handler or being read, no byte of a head. */
static int conn_between_requests(const conn_t *c)
{
    return c->state == CONN_OPEN && c->handshake_done && !c->inflight && !c->body_req &&
           !c->head_ready && !c->ready && !c->in_process && c->in_head && c->head_bytes == 0 &&
           c->in.len == 0 && !c->discard_message;
}

void qr_http_server_drain(qr_http_server_t *srv)
{
    if (srv->draining || srv->closing)
        return;
    srv->draining = 1;
    /* next is read first: a finish that fails aborts c, which unlinks it. */
    for (conn_t *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (conn_between_requests(c))
            qr_http_conn_finish(c, 1);
    }
}

void qr_http_server_stop_listening(qr_http_server_t *srv)
{
    if (srv->listener_closed)
        return;
    srv->listener_closed = 1;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

void qr_http_server_close(qr_http_server_t *srv, void (*cb)(void *arg), void *arg)
{
    if (srv->closing)
        return;
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_arg = arg;
    qr_http_server_stop_listening(srv);
    close_aux(srv);
    while (srv->conns)
        qr_http_conn_abort(srv->conns);
}
