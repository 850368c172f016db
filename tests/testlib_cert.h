/*
 * testlib_cert.h - a throwaway TLS identity for tests: a fresh P-256 key and
 * a self-signed certificate for "localhost" / 127.0.0.1, written as PEM into
 * a new temporary folder, made with the OpenSSL API (no openssl binary).
 */
#ifndef QR_TESTLIB_CERT_H
#define QR_TESTLIB_CERT_H

typedef struct qr_test_cert_s {
    char dir[256];  /* the temporary folder */
    char cert[320]; /* PEM certificate (also usable as the clients' trust anchor) */
    char key[320];  /* PEM private key */
} qr_test_cert_t;

/* Creates the folder and both files. Returns 0, or -1 with a message on stderr. */
int qr_test_cert_make(qr_test_cert_t *tc);

/* Removes both files and the folder. */
void qr_test_cert_remove(const qr_test_cert_t *tc);

#endif
