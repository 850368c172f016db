/*
 * http_tls.c - TLS for quorumd's HTTPS server, over two memory BIOs (see
 * http_int.h for how the server's files divide the work).
 *
 * OpenSSL never touches a socket here: ciphertext read from the socket is
 * written into the read BIO (http.c, on_read), and whatever OpenSSL leaves
 * in the write BIO after any SSL call is handed to uv_write.
 * qr_http_tls_pump runs the handshake and decrypts into the connection's
 * input buffer, which the parser (http_parse.c) consumes; responses go out
 * through qr_http_tls_send.
 */
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <stdlib.h>

#include "http_int.h"
#include "log.h"
#include "tls.h"
#include "util.h"

typedef struct write_s {
    uv_write_t req;
    conn_t *conn;
    size_t len;
    char data[]; /* len bytes of ciphertext */
} write_t;

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
        qr_http_conn_abort(c);
        return;
    }
    qr_http_stream_drained(c);
    qr_http_conn_update_reading(c);
}

/*
 * Moves everything OpenSSL left in the write BIO to the socket. Must follow
 * every SSL call: handshakes, reads (TLS 1.3 session tickets, alerts) and
 * writes may all produce output. Returns 0 or a negative code; on failure
 * the caller aborts the connection.
 */
int qr_http_tls_flush(conn_t *c)
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
int qr_http_tls_send(conn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : (int)len;
        ERR_clear_error();
        int n = SSL_write(c->ssl, data, chunk);
        int rc = qr_http_tls_flush(c);
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
void qr_http_tls_pump(conn_t *c)
{
    char why[256];
    if (!c->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (qr_http_tls_flush(c) < 0) {
            qr_http_conn_abort(c);
            return;
        }
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return;
            qr_debug("http %s: TLS handshake failed: %s", c->peer, qr_tls_errstr(why, sizeof why));
            c->tls_failed = 1;
            qr_http_conn_finish(c, 0); /* let the alert reach the client */
            return;
        }
        c->handshake_done = 1;
        note_client_cert(c);
    }
    char plain[TLS_READ_BYTES];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, plain, sizeof plain);
        if (qr_http_tls_flush(c) < 0) {
            qr_http_conn_abort(c);
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
        qr_http_conn_finish(c, 0);
        return;
    }
    qr_http_conn_process(c);
    qr_http_conn_maybe_finish(c);
}

/* Sets up TLS for an accepted connection. 0 or a negative code. */
int qr_http_tls_conn_init(conn_t *c)
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

/* The TLS context of qr_tls_server_ctx, plus client verification when a
 * client CA bundle is configured. NULL with the reason in err. */
SSL_CTX *qr_http_tls_ctx(const char *cert_file, const char *key_file, const char *client_ca,
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
