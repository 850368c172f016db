/*
 * tls.c - the one place where Quorum decides how OpenSSL is configured for
 * serving: which protocol versions, which cipher suites, which options. Every
 * server context comes from qr_tls_server_ctx so that a policy change (say,
 * dropping TLS 1.2) is made here once.
 */
#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>

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
