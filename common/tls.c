/*
 * tls.c - the one place where Quorum decides how OpenSSL is configured for
 * serving: which protocol versions, which cipher suites, which options. Every
 * server context comes from qr_tls_server_ctx so that a policy change (say,
 * dropping TLS 1.2) is made here once.
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <time.h>

/* TLS 1.2 suites: forward secret AEADs only (Mozilla "intermediate" minus the
 * finite-field DHE suites, which need parameters we would have to ship). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* TLS 1.3 suites: all three that OpenSSL enables by default. */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

const char *qr_tls_errstr(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!len)
        return buf;
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown TLS error");
    /* The rest of the queue belongs to the same failure; leaving it would
     * make the next SSL_get_error on this thread misreport. */
    ERR_clear_error();
    return buf;
}

/*
 * Builds the server context. The failure label reports which step failed,
 * with OpenSSL's reason, and frees the half-built context.
 */
SSL_CTX *qr_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    const char *step = "SSL_CTX_new";
    char reason[256];
    SSL_CTX *ctx = NULL;

    if (!cert_file || !key_file) {
        snprintf(err, errlen, "TLS: a certificate file and a key file are required");
        return NULL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    step = "SSL_CTX_set_min_proto_version";
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    /* No renegotiation (a CPU-exhaustion lever for clients), no compression
     * (CRIME), and the server picks the cipher from its own ordered list. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their read/write buffers back (about 15 KB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    step = "SSL_CTX_set_cipher_list";
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1)
        goto fail;
    step = "SSL_CTX_set_ciphersuites";
    if (SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1)
        goto fail;
    step = cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        goto fail;
    step = key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
        goto fail;
    step = "the private key does not match the certificate";
    if (SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;

fail:
    snprintf(err, errlen, "TLS: %s: %s", step, qr_tls_errstr(reason, sizeof reason));
    SSL_CTX_free(ctx);
    return NULL;
}

/*
 * Client certificates (mutual TLS). The CA bundle both verifies what clients
 * send and names the acceptable issuers in the CertificateRequest. A session
 * id context is needed once peers are verified, or OpenSSL refuses to resume
 * sessions; every Quorum server context shares the one below.
 */
int qr_tls_verify_clients(SSL_CTX *ctx, const char *ca_file, int required, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "quorumd";
    const char *step = ca_file;
    char reason[256];

    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
        goto fail;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (!names)
        goto fail;
    SSL_CTX_set_client_CA_list(ctx, names); /* the context owns names now */
    step = "SSL_CTX_set_session_id_context";
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       NULL);
    /* A client chain longer than this is not what a private CA issues. */
    SSL_CTX_set_verify_depth(ctx, 4);
    return 0;

fail:
    snprintf(err, errlen, "TLS client CA: %s: %s", step, qr_tls_errstr(reason, sizeof reason));
    return -1;
}

int qr_tls_cert_sha256(X509 *cert, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
        ERR_clear_error();
        return -1;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

int qr_tls_cert_info(const char *pem, size_t len, char sha256_hex[65], char *subject,
                     size_t subject_len, int64_t *not_after, char *err, size_t errlen)
{
    char reason[256];
    X509 *cert = NULL;
    BIO *bio = NULL;
    ERR_clear_error();
    if (len > INT32_MAX || !(bio = BIO_new_mem_buf(pem, (int)len))) {
        snprintf(err, errlen, "cannot read the certificate");
        goto fail;
    }
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!cert) {
        snprintf(err, errlen, "not a PEM certificate: %s", qr_tls_errstr(reason, sizeof reason));
        goto fail;
    }
    /* One certificate, not a chain: which of several would be mapped? */
    X509 *extra = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (extra) {
        X509_free(extra);
        snprintf(err, errlen, "more than one certificate: give the client's own certificate only");
        goto fail;
    }
    ERR_clear_error(); /* the second read's "no start line" */
    struct tm tm;
    if (qr_tls_cert_sha256(cert, sha256_hex) < 0 ||
        ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
        snprintf(err, errlen, "cannot read the certificate: %s",
                 qr_tls_errstr(reason, sizeof reason));
        goto fail;
    }
    *not_after = (int64_t)timegm(&tm);
    if (subject_len) {
        /* Whole, then cut: given a short buffer, OpenSSL would drop whole
         * entries instead. Non-ASCII bytes come escaped (\xC3...). */
        char *line = X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0);
        snprintf(subject, subject_len, "%s", line ? line : "");
        OPENSSL_free(line);
    }
    X509_free(cert);
    BIO_free(bio);
    return 0;

fail:
    X509_free(cert);
    BIO_free(bio);
    return -1;
}
