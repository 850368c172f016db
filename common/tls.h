/*
 * tls.h - OpenSSL context setup shared by the broker (server side) and any
 * tool that speaks TLS without libcurl. TLS 1.2 is the minimum, always.
 */
#ifndef QR_TLS_H
#define QR_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A server context: TLS 1.2+, SSL_OP_NO_RENEGOTIATION, SSL_MODE_RELEASE_BUFFERS,
 * modern cipher suites, cert chain and key loaded and checked against each
 * other. Returns NULL and writes the OpenSSL reason into err on failure. */
SSL_CTX *qr_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* The first queued OpenSSL error as text (or "unknown TLS error"), into buf. */
const char *qr_tls_errstr(char *buf, size_t len);

#endif
