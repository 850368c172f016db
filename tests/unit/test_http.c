/*
 * test_http.c - the HTTPS server against real TLS clients over loopback.
 *
 * The server's loop runs in the main thread; each test's client is a
 * blocking OpenSSL client in a pthread, which records what it saw and wakes
 * the loop through a uv_async_t when it is done. Assertions are made in the
 * main thread after pthread_join. Every test ends by closing the server and
 * proving that the loop closes with no handle left open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_cert.h"
#include "http.h"
#include "tls.h"
#include "util.h"

static qr_test_cert_t cert; /* made once for the whole group */

/* --- a blocking TLS client, for the client threads ------------------------ */

typedef struct client_s {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    size_t len;        /* bytes in buf not yet returned */
    char buf[1 << 16]; /* received plaintext */
} client_t;

static client_t *client_new(void)
{
    client_t *cl = qr_xcalloc(1, sizeof *cl);
    cl->fd = -1;
    return cl;
}

static void client_free(client_t *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    if (cl->fd >= 0)
        close(cl->fd);
    free(cl);
}

/* A TCP connection to 127.0.0.1:port with 5 s send/receive timeouts. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Connects and runs the TLS handshake, verifying the server against the test
 * certificate. minv/maxv bound the protocol versions (0: library default).
 * weak lowers the security level to 0 so that TLS 1.0/1.1 can really be
 * offered (OpenSSL 3 refuses them by itself otherwise). Returns 0 when the
 * session is up, -1 if TCP failed, -2 if the handshake failed.
 */
static int client_open(client_t *cl, int port, int minv, int maxv, int weak)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    if (!cl->ctx)
        return -1;
    if (weak) {
        SSL_CTX_set_security_level(cl->ctx, 0);
        if (SSL_CTX_set_cipher_list(cl->ctx, "DEFAULT:@SECLEVEL=0") != 1)
            return -1;
    }
    if (minv && SSL_CTX_set_min_proto_version(cl->ctx, minv) != 1)
        return -1;
    if (maxv && SSL_CTX_set_max_proto_version(cl->ctx, maxv) != 1)
        return -1;
    if (SSL_CTX_load_verify_locations(cl->ctx, cert.cert, NULL) != 1)
        return -1;
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    cl->fd = tcp_connect(port);
    if (cl->fd < 0)
        return -1;
    cl->ssl = SSL_new(cl->ctx);
    if (!cl->ssl || SSL_set_fd(cl->ssl, cl->fd) != 1 || SSL_set1_host(cl->ssl, "localhost") != 1 ||
        SSL_set_tlsext_host_name(cl->ssl, "localhost") != 1)
        return -1;
    ERR_clear_error();
    if (SSL_connect(cl->ssl) != 1) {
        ERR_clear_error();
        return -2;
    }
    return 0;
}

static int client_send(client_t *cl, const char *s, size_t n)
{
    ERR_clear_error();
    return SSL_write(cl->ssl, s, (int)n) == (int)n ? 0 : -1;
}

static int client_sends(client_t *cl, const char *s)
{
    return client_send(cl, s, strlen(s));
}

/* Length of the first complete response in buf, or 0 if it is incomplete. */
static size_t complete_response(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    size_t body = 0;
    char tmp[8192];
    size_t n = head < sizeof tmp - 1 ? head : sizeof tmp - 1;
    memcpy(tmp, buf, n);
    tmp[n] = '\0';
    const char *cl = strcasestr(tmp, "\r\nContent-Length:");
    if (cl)
        body = strtoul(cl + 17, NULL, 10);
    return len >= head + body ? head + body : 0;
}

/* Reads one whole response (head and Content-Length body) into out, NUL
 * terminated. Returns its length, or -1 if the connection ended first. */
static int client_response(client_t *cl, char *out, size_t cap)
{
    for (;;) {
        size_t n = complete_response(cl->buf, cl->len);
        if (n) {
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(out, cl->buf, k);
            out[k] = '\0';
            memmove(cl->buf, cl->buf + n, cl->len - n);
            cl->len -= n;
            return (int)k;
        }
        if (cl->len == sizeof cl->buf)
            return -1;
        ERR_clear_error();
        int r = SSL_read(cl->ssl, cl->buf + cl->len, (int)(sizeof cl->buf - cl->len));
        if (r <= 0) {
            ERR_clear_error();
            out[0] = '\0';
            return -1;
        }
        cl->len += (size_t)r;
    }
}

/* Waits up to the socket's 5 s timeout for the server to end the connection.
 * Returns 1 if it did (close_notify, EOF or reset), 0 on timeout. */
static int client_closed(client_t *cl)
{
    char tmp[4096];
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(cl->ssl, tmp, sizeof tmp);
        if (r > 0)
            continue;
        int e = SSL_get_error(cl->ssl, r);
        int timed_out = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_SYSCALL) &&
                        (errno == EAGAIN || errno == EWOULDBLOCK);
        ERR_clear_error();
        return timed_out ? 0 : 1;
    }
}

/* Waits up to ms for input and reports whether the server ended the
 * connection (1) or not (0). Input that is not an end (TLS 1.3 session
 * tickets arrive right after the handshake) is consumed and ignored. */
static int client_poll_closed(client_t *cl, int ms)
{
    struct pollfd pfd = {.fd = cl->fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return 0;
    int flags = fcntl(cl->fd, F_GETFL);
    fcntl(cl->fd, F_SETFL, flags | O_NONBLOCK);
    char tmp[4096];
    int closed;
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(cl->ssl, tmp, sizeof tmp);
        if (r > 0)
            continue;
        int e = SSL_get_error(cl->ssl, r);
        closed = e != SSL_ERROR_WANT_READ;
        break;
    }
    ERR_clear_error();
    fcntl(cl->fd, F_SETFL, flags);
    return closed;
}

static int64_t since(int64_t t0)
{
    return qr_mono_ms() - t0;
}

/* The body of a response: what follows the blank line. */
static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* --- the server side: a loop, a server, a handler ------------------------- */

/* H_STREAM: GET /big is streamed, anything else echoed. */
enum handler_mode { H_ECHO, H_ASYNC, H_HOLD, H_STREAM };

typedef struct fixture_s {
    uv_loop_t loop;
    uv_async_t wake; /* the client thread's "I am done" */
    qr_http_server_t *srv;
    int port;
    volatile int done;          /* set by on_wake */
    int server_closed;          /* qr_http_server_close's callback ran */
    int stopped;                /* qr_http_server_close was called */
    enum handler_mode mode;     /* what the handler does */
    int async_ms;               /* H_ASYNC: delay before answering */
    int handled;                /* handler calls */
    volatile int got_request;   /* a handler call happened */
    int inflight, max_inflight; /* requests with the handler, now and at most */
    volatile int late_done;     /* an asynchronous answer was given */
    int late_rc;                /* what qr_http_respond returned for it */
    qr_http_request_t *held;    /* H_HOLD: the request kept unanswered */
    int heads;                  /* head handler calls */
    size_t head_body_len;       /* body_len the head handler saw last */
    pthread_t thread;
    /* what the client thread saw */
    int rc[8];
    int64_t ms[4];
    int closed[4];
    char resp[6][4096];
    int version[4];
    /* H_STREAM: the streamed answer's progress */
    qr_http_request_t *stream; /* the request being streamed */
    int chunks_sent;           /* chunks written so far */
    int drains;                /* times the handler waited for the client */
    size_t body_bytes;         /* what the client decoded */
    int body_ok;               /* and whether every byte was the expected one */
    volatile int drain_now;    /* the client thread wants the server drained */
    uv_async_t kick;           /* and wakes the loop to see it */
} fixture_t;

static void on_wake(uv_async_t *a)
{
    fixture_t *f = a->data;
    f->done = 1;
}

static void on_server_closed(void *arg)
{
    fixture_t *f = arg;
    f->server_closed = 1;
}

/* Answers "<method> <path>?<query> ct=<content type> auth=<authorization>
 * body=<body>", so the test sees exactly what the server parsed. */
static int echo(fixture_t *f, qr_http_request_t *req)
{
    char *body =
        qr_xasprintf("%s %s?%s ct=%s auth=%s body=%s", req->method, req->path,
                     req->query ? req->query : "", req->content_type ? req->content_type : "-",
                     req->authorization ? req->authorization : "-", req->body);
    f->inflight--;
    int rc = qr_http_respond(req, 200, "text/plain", body, strlen(body), "X-Test: 1\r\n");
    free(body);
    return rc;
}

typedef struct delayed_s {
    uv_timer_t timer;
    qr_http_request_t *req;
    fixture_t *f;
} delayed_t;

static void on_delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_delayed(uv_timer_t *t)
{
    delayed_t *d = t->data;
    d->f->late_rc = echo(d->f, d->req);
    d->f->late_done = 1;
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

/* H_STREAM: STREAM_CHUNKS chunks of STREAM_CHUNK bytes, byte i of the body
 * being 'a' + i % 26, written as fast as the client lets us. */
#define STREAM_CHUNKS 64
#define STREAM_CHUNK  (32 << 10)

static void stream_more(qr_http_request_t *req, void *arg)
{
    fixture_t *f = arg;
    static char chunk[STREAM_CHUNK];
    while (f->chunks_sent < STREAM_CHUNKS) {
        size_t off = (size_t)f->chunks_sent * STREAM_CHUNK;
        for (size_t i = 0; i < STREAM_CHUNK; i++)
            chunk[i] = (char)('a' + (off + i) % 26);
        assert_int_equal(qr_http_stream_write(req, chunk, STREAM_CHUNK), 0);
        f->chunks_sent++;
        if (qr_http_stream_busy(req)) {
            f->drains++;
            qr_http_stream_on_drain(req, stream_more, f);
            return;
        }
    }
    f->inflight--;
    assert_int_equal(qr_http_stream_end(req), 0);
}

static void stream_start(fixture_t *f, qr_http_request_t *req)
{
    f->chunks_sent = 0;
    assert_int_equal(qr_http_stream_start(req, 200, "text/plain", "X-Test: 1\r\n"), 0);
    stream_more(req, f);
}

static void handler(qr_http_request_t *req, void *user)
{
    fixture_t *f = user;
    f->handled++;
    f->got_request = 1;
    if (++f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    if (f->mode == H_ECHO) {
        echo(f, req);
    } else if (f->mode == H_ASYNC) {
        delayed_t *d = qr_xcalloc(1, sizeof *d);
        d->req = req;
        d->f = f;
        d->timer.data = d;
        assert_int_equal(uv_timer_init(&f->loop, &d->timer), 0);
        assert_int_equal(uv_timer_start(&d->timer, on_delayed, (uint64_t)f->async_ms, 0), 0);
    } else if (f->mode == H_STREAM) {
        if (strcmp(req->path, "/big") == 0)
            stream_start(f, req);
        else
            echo(f, req);
    } else {
        f->held = req;
    }
}

static fixture_t *fixture_start(enum handler_mode mode, const qr_http_config_t *over)
{
    fixture_t *f = qr_xcalloc(1, sizeof *f);
    f->mode = mode;
    f->async_ms = 100;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->wake, on_wake), 0);
    f->wake.data = f;
    qr_http_config_t cfg = {.host = "127.0.0.1", .port = 0, .idle_timeout_ms = 5000};
    if (over)
        cfg = *over;
    cfg.host = "127.0.0.1";
    cfg.cert_file = cert.cert;
    cfg.key_file = cert.key;
    char err[256] = "";
    int rc = qr_http_server_start(&f->loop, &cfg, handler, f, &f->srv, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "qr_http_server_start: %s\n", err);
    assert_int_equal(rc, 0);
    f->port = qr_http_port(f->srv);
    assert_true(f->port > 0);
    return f;
}

/* Runs the loop while fn runs in a client thread, until the thread is done. */
static void run_client(fixture_t *f, void *(*fn)(void *))
{
    f->done = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, fn, f), 0);
    int ok = qr_test_run_until(&f->loop, &f->done, 20000);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(ok, 1);
}

static void client_done(fixture_t *f)
{
    uv_async_send(&f->wake);
}

static void fixture_stop(fixture_t *f)
{
    if (!f->stopped)
        qr_http_server_close(f->srv, on_server_closed, f);
    uv_close((uv_handle_t *)&f->wake, NULL);
    qr_test_loop_close(&f->loop);
    assert_int_equal(f->server_closed, 1);
    free(f);
}

/* --- GET and POST ---------------------------------------------------------- */

static void *get_post_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "GET /hello?x=1&y=2 HTTP/1.1\r\nHost: localhost\r\n"
                         "Authorization: Bearer t0k\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        client_sends(cl, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                         "application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
                         "{\"a\":1}");
        f->rc[2] = client_response(cl, f->resp[1], sizeof f->resp[1]);
        f->closed[0] = client_closed(cl);
        f->version[0] = SSL_version(cl->ssl);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_get_and_post(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, get_post_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(f->rc[1] > 0);
    assert_true(f->rc[2] > 0);
    assert_int_equal(f->version[0], TLS1_3_VERSION);
    assert_non_null(strstr(f->resp[0], "HTTP/1.1 200 OK\r\n") == f->resp[0] ? f->resp[0] : NULL);
    assert_non_null(strstr(f->resp[0], "\r\nContent-Type: text/plain\r\n"));
    assert_non_null(strstr(f->resp[0], "\r\nConnection: keep-alive\r\n"));
    assert_non_null(strstr(f->resp[0], "\r\nX-Test: 1\r\n"));
    assert_string_equal(body_of(f->resp[0]), "GET /hello?x=1&y=2 ct=- auth=Bearer t0k body=");
    assert_true(strncmp(f->resp[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(f->resp[1], "\r\nConnection: close\r\n"));
    assert_string_equal(body_of(f->resp[1]),
                        "POST /echo? ct=application/json auth=- body={\"a\":1}");
    assert_int_equal(f->closed[0], 1); /* Connection: close was honoured */
    assert_int_equal(f->handled, 2);
    fixture_stop(f);
}

/* --- keep-alive, pipelining and in-order answers -------------------------- */

static void *pipeline_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        /* Three requests in one write; the handler answers each 30 ms later. */
        client_sends(cl, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbbb"
                         "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "2\r\ncc\r\n1\r\nC\r\n0\r\n\r\n");
        for (int i = 0; i < 3; i++)
            f->rc[1 + i] = client_response(cl, f->resp[i], sizeof f->resp[i]);
        /* And one more afterwards on the same connection. */
        client_sends(cl, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[4] = client_response(cl, f->resp[3], sizeof f->resp[3]);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_keepalive_pipelined(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ASYNC, NULL);
    f->async_ms = 30;
    run_client(f, pipeline_client);
    assert_int_equal(f->rc[0], 0);
    for (int i = 1; i <= 4; i++)
        assert_true(f->rc[i] > 0);
    assert_string_equal(body_of(f->resp[0]), "GET /a? ct=- auth=- body=");
    assert_string_equal(body_of(f->resp[1]), "POST /b? ct=- auth=- body=bbb");
    assert_string_equal(body_of(f->resp[2]), "POST /c? ct=- auth=- body=ccC");
    assert_string_equal(body_of(f->resp[3]), "GET /d? ct=- auth=- body=");
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(f->resp[i], "\r\nConnection: keep-alive\r\n"));
    assert_int_equal(f->handled, 4);
    assert_int_equal(f->max_inflight, 1); /* never parsed ahead of an answer */
    fixture_stop(f);
}

/* --- a streamed (chunked) answer ------------------------------------------- */

/* Reads a chunked body after the head: returns its decoded length, or -1;
 * *ok says whether every byte was the expected one. Reads slowly at first
 * (the server must wait for us, not buffer the answer). */
static long read_chunked(client_t *cl, int *ok)
{
    char head[4096];
    size_t got = 0;
    long total = 0;
    *ok = 1;
    usleep(300 * 1000);
    /* the head */
    for (;;) {
        char *end = memmem(cl->buf, cl->len, "\r\n\r\n", 4);
        if (end) {
            size_t n = (size_t)(end - cl->buf) + 4;
            memcpy(head, cl->buf, n < sizeof head - 1 ? n : sizeof head - 1);
            head[n < sizeof head - 1 ? n : sizeof head - 1] = '\0';
            memmove(cl->buf, cl->buf + n, cl->len - n);
            cl->len -= n;
            break;
        }
        int r = SSL_read(cl->ssl, cl->buf + cl->len, (int)(sizeof cl->buf - cl->len));
        if (r <= 0)
            return -1;
        cl->len += (size_t)r;
    }
    if (!strcasestr(head, "\r\nTransfer-Encoding: chunked\r\n") || !strstr(head, "X-Test: 1"))
        return -1;
    for (;;) {
        char *crlf = memmem(cl->buf, cl->len, "\r\n", 2);
        size_t size = crlf ? strtoul(cl->buf, NULL, 16) : 0;
        size_t need = crlf ? (size_t)(crlf - cl->buf) + 2 + size + 2 : 0;
        if (crlf && cl->len >= need) {
            const char *data = crlf + 2;
            for (size_t i = 0; i < size; i++)
                if (data[i] != (char)('a' + (got + i) % 26))
                    *ok = 0;
            got += size;
            total += (long)size;
            memmove(cl->buf, cl->buf + need, cl->len - need);
            cl->len -= need;
            if (size == 0)
                return total;
            continue;
        }
        ERR_clear_error();
        int r = SSL_read(cl->ssl, cl->buf + cl->len, (int)(sizeof cl->buf - cl->len));
        if (r <= 0)
            return -1;
        cl->len += (size_t)r;
    }
}

static void *stream_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
        long n = read_chunked(cl, &f->body_ok);
        f->body_bytes = n < 0 ? 0 : (size_t)n;
        /* The connection carries the next request (answered whole). */
        client_sends(cl, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_streamed_response(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_STREAM, NULL);
    run_client(f, stream_client);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->body_bytes, (size_t)STREAM_CHUNKS * STREAM_CHUNK);
    assert_int_equal(f->body_ok, 1);
    assert_int_equal(f->chunks_sent, STREAM_CHUNKS);
    assert_true(f->drains > 0); /* it waited for the slow client */
    assert_true(f->rc[1] > 0);
    assert_string_equal(body_of(f->resp[0]), "GET /next? ct=- auth=- body=");
    assert_int_equal(f->handled, 2);
    fixture_stop(f);
}

/* --- HTTP/1.0 --------------------------------------------------------------- */

static void *http10_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        client_sends(cl, "GET /c HTTP/1.0\r\n\r\n");
        f->rc[2] = client_response(cl, f->resp[1], sizeof f->resp[1]);
        f->closed[0] = client_closed(cl);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_http10(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, http10_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(f->rc[1] > 0);
    assert_true(f->rc[2] > 0);
    assert_non_null(strstr(f->resp[0], "\r\nConnection: keep-alive\r\n"));
    assert_non_null(strstr(f->resp[1], "\r\nConnection: close\r\n"));
    assert_int_equal(f->closed[0], 1);
    assert_int_equal(f->handled, 2);
    fixture_stop(f);
}

/* --- 100-continue ------------------------------------------------------------ */

static void *continue_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 5\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        client_sends(cl, "hello");
        f->rc[2] = client_response(cl, f->resp[1], sizeof f->resp[1]);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_expect_continue(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, continue_client);
    assert_int_equal(f->rc[0], 0);
    assert_string_equal(f->resp[0], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_string_equal(body_of(f->resp[1]), "PUT /up? ct=- auth=- body=hello");
    fixture_stop(f);
}

/* --- limits ------------------------------------------------------------------ */

static void *body_limit_client(void *arg)
{
    fixture_t *f = arg;
    char big[1100];
    memset(big, 'a', sizeof big);
    /* 1: a Content-Length over the limit is refused before any body is sent. */
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        f->closed[0] = client_closed(cl);
    }
    client_free(cl);
    /* 2: a chunked body is counted as it arrives: 1024 + 16 bytes. */
    cl = client_new();
    f->rc[2] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[2] == 0) {
        client_sends(cl,
                     "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n");
        client_send(cl, big, 1024);
        client_sends(cl, "\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n");
        f->rc[3] = client_response(cl, f->resp[1], sizeof f->resp[1]);
        f->closed[1] = client_closed(cl);
    }
    client_free(cl);
    /* 3: exactly the limit is fine. */
    cl = client_new();
    f->rc[4] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[4] == 0) {
        client_sends(cl, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
        client_send(cl, big, 1024);
        f->rc[5] = client_response(cl, f->resp[2], sizeof f->resp[2]);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_body_too_large(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.max_body_bytes = 1024, .idle_timeout_ms = 5000};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, body_limit_client);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->rc[2 * i], 0);
        assert_true(f->rc[2 * i + 1] > 0);
        assert_true(strncmp(f->resp[i], "HTTP/1.1 413 Payload Too Large\r\n", 32) == 0);
        assert_non_null(strstr(f->resp[i], "\r\nContent-Type: application/json\r\n"));
        assert_non_null(strstr(f->resp[i], "\r\nConnection: close\r\n"));
        assert_non_null(strstr(body_of(f->resp[i]), "{\"error\":{\"code\":\"body_too_large\""));
        assert_int_equal(f->closed[i], 1);
    }
    assert_true(f->rc[5] > 0);
    assert_true(strncmp(f->resp[2], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_int_equal(f->handled, 1); /* only the request within the limit */
    fixture_stop(f);
}

static void *header_limit_client(void *arg)
{
    fixture_t *f = arg;
    char pad[5001];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    char req[6000];
    for (int i = 0; i < 2; i++) {
        /* First 5000 bytes of header (over 4096), then 3000 (under). */
        pad[i == 0 ? 5000 : 3000] = '\0';
        snprintf(req, sizeof req, "GET /h HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", pad);
        client_t *cl = client_new();
        f->rc[2 * i] = client_open(cl, f->port, 0, 0, 0);
        if (f->rc[2 * i] == 0) {
            client_sends(cl, req);
            f->rc[2 * i + 1] = client_response(cl, f->resp[i], sizeof f->resp[i]);
            if (i == 0)
                f->closed[0] = client_closed(cl);
        }
        client_free(cl);
    }
    client_done(f);
    return NULL;
}

static void test_headers_too_large(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.max_header_bytes = 4096, .idle_timeout_ms = 5000};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, header_limit_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(f->rc[1] > 0);
    assert_true(strncmp(f->resp[0], "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
    assert_non_null(strstr(body_of(f->resp[0]), "\"code\":\"headers_too_large\""));
    assert_int_equal(f->closed[0], 1);
    assert_true(f->rc[3] > 0);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_int_equal(f->handled, 1);
    fixture_stop(f);
}

static void *garbage_client(void *arg)
{
    fixture_t *f = arg;
    static const char *bad[] = {
        "HELLO WORLD\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
    };
    for (int i = 0; i < 3; i++) {
        client_t *cl = client_new();
        f->rc[2 * i] = client_open(cl, f->port, 0, 0, 0);
        if (f->rc[2 * i] == 0) {
            client_sends(cl, bad[i]);
            f->rc[2 * i + 1] = client_response(cl, f->resp[i], sizeof f->resp[i]);
            f->closed[i] = client_closed(cl);
        }
        client_free(cl);
    }
    client_done(f);
    return NULL;
}

static void test_bad_request(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, garbage_client);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->rc[2 * i], 0);
        assert_true(f->rc[2 * i + 1] > 0);
        assert_true(strncmp(f->resp[i], "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
        assert_non_null(strstr(body_of(f->resp[i]), "{\"error\":{\"code\":\"bad_request\""));
        assert_int_equal(f->closed[i], 1);
    }
    assert_int_equal(f->handled, 0);
    fixture_stop(f);
}

/* --- timeouts ---------------------------------------------------------------- */

static void *silent_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    int64_t t0 = qr_mono_ms();
    if (f->rc[0] == 0)
        f->closed[0] = client_closed(cl);
    f->ms[0] = since(t0);
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_idle_timeout(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.idle_timeout_ms = 300};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, silent_client);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->closed[0], 1);
    assert_true(f->ms[0] >= 150); /* 300 ms from accept, less the handshake */
    assert_true(f->ms[0] < 2000);
    fixture_stop(f);
}

/* Sends a request head one byte per 50 ms, and notes when the server ends
 * the connection. */
static void *trickle_client(void *arg)
{
    fixture_t *f = arg;
    static const char req[] =
        "GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    int64_t t0 = qr_mono_ms();
    if (f->rc[0] == 0) {
        for (size_t i = 0; i < sizeof req - 1; i++) {
            if (client_poll_closed(cl, 50)) {
                f->closed[0] = 1;
                break;
            }
            if (client_send(cl, req + i, 1) < 0) {
                f->closed[0] = 1;
                break;
            }
        }
    }
    f->ms[0] = since(t0);
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_trickled_request_cut_off(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.idle_timeout_ms = 300};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, trickle_client);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->closed[0], 1);
    assert_true(f->ms[0] < 1500); /* the whole head would take over 4 s */
    assert_int_equal(f->handled, 0);
    fixture_stop(f);
}

/* --- asynchronous answers ------------------------------------------------------ */

static void *async_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    int64_t t0 = qr_mono_ms();
    if (f->rc[0] == 0) {
        client_sends(cl, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
    }
    f->ms[0] = since(t0);
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_async_response(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ASYNC, NULL);
    f->async_ms = 150;
    run_client(f, async_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(f->rc[1] > 0);
    assert_string_equal(body_of(f->resp[0]), "GET /later? ct=- auth=- body=");
    assert_true(f->ms[0] >= 140);
    assert_int_equal(f->late_done, 1);
    assert_int_equal(f->late_rc, 0);
    fixture_stop(f);
}

static void *vanishing_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0)
        f->rc[1] = client_sends(cl, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    client_free(cl); /* gone, without reading or close_notify */
    client_done(f);
    return NULL;
}

static void test_client_gone_before_async_response(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ASYNC, NULL);
    f->async_ms = 300;
    run_client(f, vanishing_client);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->rc[1], 0);
    assert_int_equal(qr_test_run_until(&f->loop, &f->late_done, 5000), 1);
    assert_int_equal(f->handled, 1);
    assert_true(f->late_rc < 0); /* nobody to answer; the request was freed */
    fixture_stop(f);
}

static void *held_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        f->closed[0] = client_closed(cl);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_server_close_with_pending_request(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_HOLD, NULL);
    f->done = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, held_client, f), 0);
    assert_int_equal(qr_test_run_until(&f->loop, &f->got_request, 10000), 1);
    assert_non_null(f->held);
    qr_http_server_close(f->srv, on_server_closed, f);
    f->stopped = 1;
    assert_int_equal(qr_test_run_until(&f->loop, &f->done, 10000), 1);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(f->closed[0], 1);
    /* Answering after the server is gone is safe and just frees the request. */
    assert_true(qr_http_respond(f->held, 200, "text/plain", "late", 4, NULL) < 0);
    fixture_stop(f);
}

/* --- graceful drain ------------------------------------------------------------ */

/* An idle kept-alive connection (b) and one whose request is with the
 * handler (a) when the server drains; then a new connection once the
 * listener is closed. */
static void *drain_client(void *arg)
{
    fixture_t *f = arg;
    client_t *a = client_new(), *b = client_new(), *c = client_new();
    f->rc[0] = client_open(b, f->port, 0, 0, 0);
    f->rc[1] = client_open(a, f->port, 0, 0, 0);
    if (f->rc[0] == 0 && f->rc[1] == 0) {
        client_sends(b, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[2] = client_response(b, f->resp[0], sizeof f->resp[0]);
        client_sends(a, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        usleep(100 * 1000); /* with the handler by now (async_ms 300) */
        f->drain_now = 1;
        uv_async_send(&f->kick);
        f->closed[0] = client_closed(b);
        f->rc[3] = client_response(a, f->resp[1], sizeof f->resp[1]);
        f->closed[1] = client_closed(a);
        f->rc[4] = client_open(c, f->port, 0, 0, 0);
    }
    client_free(c);
    client_free(b);
    client_free(a);
    client_done(f);
    return NULL;
}

static void test_drain(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ASYNC, NULL);
    f->async_ms = 300;
    f->done = 0;
    assert_int_equal(uv_async_init(&f->loop, &f->kick, NULL), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, drain_client, f), 0);
    assert_int_equal(qr_test_run_until(&f->loop, &f->drain_now, 10000), 1);
    qr_http_server_drain(f->srv);
    qr_http_server_stop_listening(f->srv);
    qr_http_server_drain(f->srv); /* a second call changes nothing */
    qr_http_server_stop_listening(f->srv);
    assert_int_equal(qr_test_run_until(&f->loop, &f->done, 10000), 1);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->rc[1], 0);
    assert_true(f->rc[2] > 0);
    assert_non_null(strstr(f->resp[0], "\r\nConnection: keep-alive\r\n"));
    assert_int_equal(f->closed[0], 1); /* idle: closed at once */
    assert_true(f->rc[3] > 0);         /* in flight: answered, */
    assert_string_equal(body_of(f->resp[1]), "GET /slow? ct=- auth=- body=");
    assert_non_null(strstr(f->resp[1], "\r\nConnection: close\r\n")); /* with close, */
    assert_int_equal(f->closed[1], 1);                                /* then closed */
    assert_int_equal(f->rc[4], -1);                                   /* nobody listens */
    assert_int_equal(f->handled, 2);
    for (int i = 0; i < 200 && qr_http_connections(f->srv) > 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10 * 1000);
    }
    assert_int_equal(qr_http_connections(f->srv), 0);
    uv_close((uv_handle_t *)&f->kick, NULL);
    fixture_stop(f);
}

/* --- overload ------------------------------------------------------------------ */

static void *overload_client(void *arg)
{
    fixture_t *f = arg;
    static const char get[] = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
    client_t *a = client_new(), *b = client_new();
    f->rc[0] = client_open(a, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(a, get);
        f->rc[1] = client_response(a, f->resp[0], sizeof f->resp[0]);
        f->rc[2] = client_open(b, f->port, 0, 0, 0);
        if (f->rc[2] == 0) {
            client_sends(b, get);
            f->rc[3] = client_response(b, f->resp[1], sizeof f->resp[1]);
            f->closed[0] = client_closed(b);
        }
        client_sends(a, get);
        f->rc[4] = client_response(a, f->resp[2], sizeof f->resp[2]);
    }
    client_free(b);
    client_free(a);
    client_done(f);
    return NULL;
}

static void test_max_connections(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.max_connections = 1, .idle_timeout_ms = 5000};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, overload_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(f->rc[1] > 0);
    assert_int_equal(f->rc[2], 0);
    assert_true(f->rc[3] > 0);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    assert_non_null(strstr(body_of(f->resp[1]), "{\"error\":{\"code\":\"unavailable\""));
    assert_int_equal(f->closed[0], 1);
    assert_true(f->rc[4] > 0); /* the first connection still works */
    assert_true(strncmp(f->resp[2], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_int_equal(f->handled, 2);
    fixture_stop(f);
}

/* --- TLS versions --------------------------------------------------------------- */

/* A plain blocking OpenSSL server that speaks only TLS 1.1: the control that
 * proves the test client really offers TLS 1.1. */
typedef struct control_s {
    int lfd;
    int accepted; /* SSL_accept succeeded */
    int version;  /* the version it negotiated */
} control_t;

static void *control_main(void *arg)
{
    control_t *ctl = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_security_level(ctx, 0);
    int fd = -1;
    SSL *ssl = NULL;
    if (SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1 ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cert.key, SSL_FILETYPE_PEM) != 1)
        goto out;
    fd = accept(ctl->lfd, NULL, NULL);
    if (fd < 0)
        goto out;
    ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto out;
    if (SSL_accept(ssl) == 1) {
        ctl->accepted = 1;
        ctl->version = SSL_version(ssl);
        char c;
        (void)SSL_read(ssl, &c, 1); /* until the client leaves */
    }
out:
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return NULL;
}

static void *old_tls_client(void *arg)
{
    fixture_t *f = arg;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, TLS1_1_VERSION, TLS1_1_VERSION, 1);
    client_free(cl);
    cl = client_new();
    f->rc[1] = client_open(cl, f->port, TLS1_VERSION, TLS1_VERSION, 1);
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_tls_old_versions_refused(void **state)
{
    (void)state;
    /* Control: the same weak client completes a TLS 1.1 handshake against a
     * server that allows it, so a refusal below is the server's doing. */
    control_t ctl = {.lfd = socket(AF_INET, SOCK_STREAM, 0)};
    assert_true(ctl.lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(ctl.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ctl.lfd, 4), 0);
    assert_int_equal(getsockname(ctl.lfd, (struct sockaddr *)&a, &alen), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, control_main, &ctl), 0);
    client_t *cl = client_new();
    int rc = client_open(cl, ntohs(a.sin_port), TLS1_1_VERSION, TLS1_1_VERSION, 1);
    int version = rc == 0 ? SSL_version(cl->ssl) : 0;
    client_free(cl);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(ctl.lfd);
    assert_int_equal(rc, 0);
    assert_int_equal(version, TLS1_1_VERSION);
    assert_int_equal(ctl.accepted, 1);
    assert_int_equal(ctl.version, TLS1_1_VERSION);

    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, old_tls_client);
    assert_int_equal(f->rc[0], -2); /* TCP fine, handshake refused */
    assert_int_equal(f->rc[1], -2);
    assert_int_equal(f->handled, 0);
    fixture_stop(f);
}

static void *modern_tls_client(void *arg)
{
    fixture_t *f = arg;
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int i = 0; i < 2; i++) {
        client_t *cl = client_new();
        f->rc[2 * i] = client_open(cl, f->port, versions[i], versions[i], 0);
        if (f->rc[2 * i] == 0) {
            f->version[i] = SSL_version(cl->ssl);
            client_sends(cl, "GET /v HTTP/1.1\r\nHost: x\r\n\r\n");
            f->rc[2 * i + 1] = client_response(cl, f->resp[i], sizeof f->resp[i]);
        }
        client_free(cl);
    }
    client_done(f);
    return NULL;
}

static void test_tls12_and_tls13_accepted(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, modern_tls_client);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->version[0], TLS1_2_VERSION);
    assert_true(f->rc[1] > 0);
    assert_string_equal(body_of(f->resp[0]), "GET /v? ct=- auth=- body=");
    assert_int_equal(f->rc[2], 0);
    assert_int_equal(f->version[1], TLS1_3_VERSION);
    assert_true(f->rc[3] > 0);
    assert_string_equal(body_of(f->resp[1]), "GET /v? ct=- auth=- body=");
    fixture_stop(f);
}

/* --- start-up errors and small helpers ----------------------------------------- */

static void test_start_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    qr_http_server_t *srv = (qr_http_server_t *)&loop; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_http_config_t cfg = {
        .host = "127.0.0.1", .cert_file = "/nonexistent.pem", .key_file = cert.key};
    assert_true(qr_http_server_start(&loop, &cfg, handler, NULL, &srv, err, sizeof err) < 0);
    assert_null(srv);
    assert_non_null(strstr(err, "/nonexistent.pem"));
    cfg.cert_file = cert.cert;
    cfg.host = "not-an-address";
    assert_true(qr_http_server_start(&loop, &cfg, handler, NULL, &srv, err, sizeof err) < 0);
    assert_null(srv);
    /* A port already taken: the failure path closes its own listener. */
    fixture_t *f = fixture_start(H_ECHO, NULL);
    cfg.host = "127.0.0.1";
    cfg.port = f->port;
    assert_true(qr_http_server_start(&loop, &cfg, handler, NULL, &srv, err, sizeof err) < 0);
    assert_null(srv);
    fixture_stop(f);
    qr_test_loop_close(&loop);
    assert_string_equal(qr_http_reason(404), "Not Found");
    assert_string_equal(qr_http_reason(431), "Request Header Fields Too Large");
}

/* The context policy itself: the end-to-end refusal above cannot tell the
 * version floor from OpenSSL 3's own defaults, so check the settings. */
static void test_tls_context_policy(void **state)
{
    (void)state;
    char err[256] = "";
    SSL_CTX *ctx = qr_tls_server_ctx(cert.cert, cert.key, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    assert_true(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS);
    /* No TLS 1.2 suite without forward secrecy or AEAD. */
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(ciphers, i);
        assert_true(SSL_CIPHER_is_aead(ci));
        int kx = SSL_CIPHER_get_kx_nid(ci);
        assert_true(kx == NID_kx_ecdhe || kx == NID_kx_any);
    }
    SSL_CTX_free(ctx);
    assert_null(qr_tls_server_ctx(cert.key, cert.key, err, sizeof err));
    assert_non_null(strstr(err, cert.key));
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* the client threads write to sockets the server closes */
    return qr_test_cert_make(&cert);
}

static int group_teardown(void **state)
{
    (void)state;
    qr_test_cert_remove(&cert);
    return 0;
}

/* --- the head handler: refusal before the body, per-request limits ---------- */

/* Refuses paths under /deny (401) from the head alone; lets /small in with a
 * 10-byte limit and anything else with the server's limit. */
static void head_handler(qr_http_request_t *req, void *user)
{
    fixture_t *f = user;
    f->heads++;
    f->head_body_len = req->body_len;
    if (!strncmp(req->path, "/deny", 5)) {
        static const char msg[] = "{\"error\":{\"code\":\"unauthorized\",\"message\":\"no\"}}";
        qr_http_respond(req, 401, "application/json", msg, sizeof msg - 1, NULL);
        return;
    }
    (void)qr_http_continue(req, !strcmp(req->path, "/small") ? 10 : (size_t)1 << 20);
}

static void *head_client(void *arg)
{
    fixture_t *f = arg;
    /* 1: refused from its head: no 100 Continue, the body is never read,
     * and the connection ends (the unread body cannot be skipped safely). */
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        client_sends(cl, "POST /deny HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 100000\r\n\r\n");
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        f->closed[0] = client_closed(cl);
    }
    client_free(cl);
    /* 2: a per-request limit: 11 bytes where 10 are allowed -> 413; then a
     * refused GET without a body keeps the connection for the next one. */
    cl = client_new();
    f->rc[2] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[2] == 0) {
        client_sends(cl, "GET /deny HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[3] = client_response(cl, f->resp[1], sizeof f->resp[1]);
        client_sends(cl, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
                         "0123456789");
        f->rc[4] = client_response(cl, f->resp[2], sizeof f->resp[2]);
        client_sends(cl, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
        f->rc[5] = client_response(cl, f->resp[3], sizeof f->resp[3]);
        f->closed[1] = client_closed(cl);
    }
    client_free(cl);
    client_done(f);
    return NULL;
}

static void test_head_handler(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.idle_timeout_ms = 5000, .head_handler = head_handler};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, head_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(strncmp(f->resp[0], "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
    assert_non_null(strstr(f->resp[0], "\r\nConnection: close\r\n"));
    assert_int_equal(f->closed[0], 1);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
    assert_non_null(strstr(f->resp[1], "\r\nConnection: keep-alive\r\n"));
    assert_true(strncmp(f->resp[2], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_string_equal(body_of(f->resp[2]), "POST /small? ct=- auth=- body=0123456789");
    assert_true(strncmp(f->resp[3], "HTTP/1.1 413 ", 13) == 0);
    assert_int_equal(f->closed[1], 1);
    assert_int_equal(f->heads, 4);
    assert_int_equal(f->head_body_len, 0); /* the head handler never sees a body */
    assert_int_equal(f->handled, 1);       /* only the accepted one */
    fixture_stop(f);
}

/* --- the body budget: a request past it waits its turn ------------------- */

static void *budget_client(void *arg)
{
    fixture_t *f = arg;
    client_t *a = client_new(), *b = client_new();
    f->rc[0] = client_open(a, f->port, 0, 0, 0);
    f->rc[1] = client_open(b, f->port, 0, 0, 0);
    if (f->rc[0] == 0 && f->rc[1] == 0) {
        /* a holds 80 of the 100 budget bytes while its body trickles in. */
        client_sends(a, "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Content-Length: 80\r\n\r\n");
        f->rc[2] = client_response(a, f->resp[0], sizeof f->resp[0]);
        /* b's 80 do not fit: no 100 Continue for it while a is open. */
        client_sends(b, "POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Content-Length: 80\r\n\r\n");
        f->closed[0] = client_poll_closed(b, 300);
        f->rc[3] = (int)b->len; /* nothing arrived for b */
        char body[80];
        memset(body, 'x', sizeof body);
        client_send(a, body, sizeof body);
        f->rc[4] = client_response(a, f->resp[1], sizeof f->resp[1]);
        /* a answered: b gets its turn. */
        f->rc[5] = client_response(b, f->resp[2], sizeof f->resp[2]);
        client_send(b, body, sizeof body);
        f->rc[6] = client_response(b, f->resp[3], sizeof f->resp[3]);
    }
    client_free(a);
    client_free(b);
    client_done(f);
    return NULL;
}

static void test_body_budget(void **state)
{
    (void)state;
    qr_http_config_t cfg = {.idle_timeout_ms = 5000, .max_body_total_bytes = 100};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, budget_client);
    assert_string_equal(f->resp[0], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(f->closed[0], 0);
    assert_int_equal(f->rc[3], 0);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_string_equal(f->resp[2], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_true(strncmp(f->resp[3], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_int_equal(f->handled, 2);
    fixture_stop(f);
}

/* --- streamed bodies: pieces, pause and resume, an answer before the end --- */

typedef struct stream_s {
    fixture_t *f;
    uv_timer_t timer; /* resumes a paused body */
    qr_http_request_t *req;
    size_t bytes;      /* received so far */
    unsigned long sum; /* of their values */
    int pauses;        /* times paused */
    int early;         /* answer at the first piece */
} stream_t;

static stream_t streams[8];
static int nstreams;

static void on_stream_timer_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_resume_timer(uv_timer_t *t)
{
    stream_t *st = t->data;
    qr_http_stream_resume(st->req);
}

static void on_stream_chunk(qr_http_request_t *req, const char *data, size_t len, void *arg)
{
    stream_t *st = arg;
    for (size_t i = 0; i < len; i++)
        st->sum += (unsigned char)data[i];
    size_t before = st->bytes;
    st->bytes += len;
    if (st->early && before == 0) {
        static const char msg[] = "refused early";
        qr_http_respond(req, 422, "text/plain", msg, sizeof msg - 1, NULL);
        uv_close((uv_handle_t *)&st->timer, on_stream_timer_closed);
        return;
    }
    /* Every 64 KiB: wait 5 ms, as an import waits for PostgreSQL. */
    if (before / 65536 != st->bytes / 65536) {
        st->pauses++;
        qr_http_stream_pause(req);
        assert_int_equal(uv_timer_start(&st->timer, on_resume_timer, 5, 0), 0);
    }
}

static void on_stream_end(qr_http_request_t *req, void *arg)
{
    stream_t *st = arg;
    char *body = qr_xasprintf("bytes=%zu sum=%lu paused=%d body_len=%zu", st->bytes, st->sum,
                              st->pauses > 0, req->body_len);
    qr_http_respond(req, 200, "text/plain", body, strlen(body), NULL);
    free(body);
    uv_close((uv_handle_t *)&st->timer, on_stream_timer_closed);
}

/* /stream and /early stream their bodies (at most 1 MiB); the rest echo. */
static void stream_head(qr_http_request_t *req, void *user)
{
    fixture_t *f = user;
    f->heads++;
    if (strcmp(req->path, "/stream") && strcmp(req->path, "/early")) {
        (void)qr_http_continue(req, (size_t)1 << 20);
        return;
    }
    stream_t *st = &streams[nstreams++];
    memset(st, 0, sizeof *st);
    st->f = f;
    st->req = req;
    st->early = !strcmp(req->path, "/early");
    assert_int_equal(uv_timer_init(&f->loop, &st->timer), 0);
    st->timer.data = st;
    if (qr_http_continue_stream(req, (size_t)1 << 20, on_stream_chunk, on_stream_end, st) < 0)
        uv_close((uv_handle_t *)&st->timer, on_stream_timer_closed); /* 413, answered */
}

static void *body_stream_client(void *arg)
{
    fixture_t *f = arg;
    size_t n = 300000;
    char *body = malloc(n);
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)('a' + i % 26);
        sum += (unsigned char)body[i];
    }
    f->ms[0] = (int64_t)sum;
    client_t *cl = client_new();
    f->rc[0] = client_open(cl, f->port, 0, 0, 0);
    if (f->rc[0] == 0) {
        /* 1: 300,000 bytes by Content-Length, then a request on the same
         * connection: the body went to the route, none of it held. */
        char head[128];
        snprintf(head, sizeof head,
                 "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
        client_sends(cl, head);
        client_send(cl, body, n);
        f->rc[1] = client_response(cl, f->resp[0], sizeof f->resp[0]);
        client_sends(cl, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        f->rc[2] = client_response(cl, f->resp[1], sizeof f->resp[1]);
        /* 2: chunked. */
        client_sends(cl, "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        f->rc[3] = client_response(cl, f->resp[2], sizeof f->resp[2]);
    }
    client_free(cl);
    /* 3: answered at its first piece: the answer comes while the client
     * still sends; the rest is read and dropped, then the connection ends. */
    cl = client_new();
    if (client_open(cl, f->port, 0, 0, 0) == 0) {
        char head[128];
        snprintf(head, sizeof head,
                 "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
        client_sends(cl, head);
        f->rc[4] = client_send(cl, body, n);
        f->rc[5] = client_response(cl, f->resp[3], sizeof f->resp[3]);
        f->closed[0] = client_closed(cl);
    }
    client_free(cl);
    /* 5: answered early, then a chunk past the route's limit: no second
     * answer, the connection just ends. */
    cl = client_new();
    if (client_open(cl, f->port, 0, 0, 0) == 0) {
        client_sends(cl, "POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n");
        f->rc[7] = client_response(cl, f->resp[5], sizeof f->resp[5]);
        client_sends(cl, "200000\r\n");
        char tmp[4096];
        int extra = 0, r;
        ERR_clear_error();
        while ((r = SSL_read(cl->ssl, tmp, sizeof tmp)) > 0)
            extra += r;
        ERR_clear_error();
        f->version[0] = extra; /* bytes after the answer: none */
    }
    client_free(cl);
    /* 4: over the route's limit, by its Content-Length: 413 from the head. */
    cl = client_new();
    if (client_open(cl, f->port, 0, 0, 0) == 0) {
        client_sends(cl, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
        f->rc[6] = client_response(cl, f->resp[4], sizeof f->resp[4]);
    }
    client_free(cl);
    free(body);
    client_done(f);
    return NULL;
}

static void test_streamed_body(void **state)
{
    (void)state;
    nstreams = 0;
    qr_http_config_t cfg = {.idle_timeout_ms = 5000, .head_handler = stream_head};
    fixture_t *f = fixture_start(H_ECHO, &cfg);
    run_client(f, body_stream_client);
    assert_int_equal(f->rc[0], 0);
    assert_true(strncmp(f->resp[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    char want[128];
    snprintf(want, sizeof want, "bytes=300000 sum=%lu paused=1 body_len=0",
             (unsigned long)f->ms[0]);
    assert_string_equal(body_of(f->resp[0]), want);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_string_equal(body_of(f->resp[1]), "GET /after? ct=- auth=- body=");
    assert_string_equal(body_of(f->resp[2]), "bytes=11 sum=1116 paused=0 body_len=0");
    assert_true(strncmp(f->resp[3], "HTTP/1.1 422 ", 13) == 0);
    assert_non_null(strstr(f->resp[3], "\r\nConnection: close\r\n"));
    assert_string_equal(body_of(f->resp[3]), "refused early");
    assert_int_equal(f->closed[0], 1);
    assert_true(strncmp(f->resp[4], "HTTP/1.1 413 ", 13) == 0);
    assert_true(strncmp(f->resp[5], "HTTP/1.1 422 ", 13) == 0);
    assert_int_equal(f->version[0], 0);
    assert_int_equal(nstreams, 5);
    assert_int_equal(streams[2].bytes > 0, 1);
    assert_int_equal(f->handled, 1); /* only /after: streamed bodies never reach the handler */
    fixture_stop(f);
}

/* --- header rules a proxy may read differently (request smuggling) ------- */

static void *smuggle_client(void *arg)
{
    fixture_t *f = arg;
    static const char *heads[] = {
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length\t: 1\r\n\r\na",
        "GET /x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded: yes\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",
    };
    for (int i = 0; i < 4; i++) {
        client_t *cl = client_new();
        if (client_open(cl, f->port, 0, 0, 0) == 0) {
            client_sends(cl, heads[i]);
            f->rc[i] = client_response(cl, f->resp[i], sizeof f->resp[i]);
            f->closed[i] = client_closed(cl);
        }
        client_free(cl);
    }
    client_done(f);
    return NULL;
}

static void test_header_whitespace_and_folding(void **state)
{
    (void)state;
    fixture_t *f = fixture_start(H_ECHO, NULL);
    run_client(f, smuggle_client);
    for (int i = 0; i < 4; i++) {
        assert_true(strncmp(f->resp[i], "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
        assert_int_equal(f->closed[i], 1);
    }
    assert_int_equal(f->handled, 0);
    fixture_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_post),
        cmocka_unit_test(test_keepalive_pipelined),
        cmocka_unit_test(test_streamed_response),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_bad_request),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_trickled_request_cut_off),
        cmocka_unit_test(test_async_response),
        cmocka_unit_test(test_client_gone_before_async_response),
        cmocka_unit_test(test_server_close_with_pending_request),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_tls_old_versions_refused),
        cmocka_unit_test(test_tls12_and_tls13_accepted),
        cmocka_unit_test(test_tls_context_policy),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_head_handler),
        cmocka_unit_test(test_streamed_body),
        cmocka_unit_test(test_body_budget),
        cmocka_unit_test(test_header_whitespace_and_folding),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
