/*
 * tls.h - OpenSSL context setup shared by the broker (server side) and any
 * tool that speaks TLS without libcurl. TLS 1.2 is the minimum, always.
 */
#ifndef QR_TLS_H
#define QR_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* A server context: TLS 1.2+, SSL_OP_NO_RENEGOTIATION, SSL_MODE_RELEASE_BUFFERS,
 * modern cipher suites, cert chain and key loaded and checked against each
 * other. Returns NULL and writes the OpenSSL reason into err on failure. */
SSL_CTX *qr_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Asks clients for a certificate and verifies it against the PEM CA bundle
 * ca_file (SSL_VERIFY_PEER); with required, a client without one fails the
 * handshake (SSL_VERIFY_FAIL_IF_NO_PEER_CERT). A certificate that does not
 * verify fails the handshake either way. 0, or -1 with the reason in err. */
int qr_tls_verify_clients(SSL_CTX *ctx, const char *ca_file, int required, char *err,
                          size_t errlen);

/* The SHA-256 of cert's DER encoding as 64 lowercase hex digits (what a
 * client certificate is mapped to a user by). 0 or -1. */
int qr_tls_cert_sha256(X509 *cert, char hex[65]);

/* Reads one PEM certificate of len bytes (a chain is refused): its SHA-256
 * fingerprint, its subject (one line, cut to subject_len), and its notAfter
 * (epoch seconds). 0, or -1 with a message for the user in err. */
int qr_tls_cert_info(const char *pem, size_t len, char sha256_hex[65], char *subject,
                     size_t subject_len, int64_t *not_after, char *err, size_t errlen);

/* The first queued OpenSSL error as text (or "unknown TLS error"), into buf. */
const char *qr_tls_errstr(char *buf, size_t len);

#endif
