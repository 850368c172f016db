/*
 * test_tls.c - common/tls.c's client-certificate helpers (mutual TLS): the
 * PEM reader behind POST /v1/certs and the verification settings behind
 * quorumd --client-ca. Certificates come from testlib_cert (a fresh key and
 * self-signed certificate per run); the fingerprint is checked against one
 * computed here with OpenSSL directly.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "testlib_cert.h"
#include "tls.h"
#include "util.h"

static qr_test_cert_t cert;
static char *cert_pem; /* the certificate file's text */
static char *key_pem;  /* the private key file's text */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    qr_buf_t b;
    qr_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        qr_buf_append(&b, chunk, n);
    fclose(f);
    return qr_buf_steal(&b);
}

/* The SHA-256 of the certificate's DER as hex, computed without tls.c. */
static void expected_sha256(const char *pem, char hex[65])
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
    assert_int_equal(n, 32);
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    X509_free(x);
    BIO_free(bio);
}

static void test_cert_info_reads_one_certificate(void **state)
{
    (void)state;
    char sha[65], want[65], subject[256], err[256] = "";
    int64_t not_after = 0;
    assert_int_equal(qr_tls_cert_info(cert_pem, strlen(cert_pem), sha, subject, sizeof subject,
                                      &not_after, err, sizeof err),
                     0);
    expected_sha256(cert_pem, want);
    assert_string_equal(sha, want);
    assert_string_equal(subject, "/CN=localhost");
    assert_true(not_after > (int64_t)time(NULL));
    assert_true(not_after < (int64_t)time(NULL) + 3650LL * 86400);
}

static void test_cert_info_cuts_the_subject(void **state)
{
    (void)state;
    char sha[65], subject[6], err[256];
    int64_t not_after;
    memset(subject, 'x', sizeof subject);
    assert_int_equal(qr_tls_cert_info(cert_pem, strlen(cert_pem), sha, subject, sizeof subject,
                                      &not_after, err, sizeof err),
                     0);
    assert_non_null(memchr(subject, '\0', sizeof subject));
    assert_int_equal(strncmp(subject, "/CN=l", 5), 0);
}

/* Each refused input gives -1 and a message containing `why`. */
static void refused(const char *text, size_t len, const char *why)
{
    char sha[65], subject[64], err[256] = "";
    int64_t not_after;
    assert_int_equal(
        qr_tls_cert_info(text, len, sha, subject, sizeof subject, &not_after, err, sizeof err), -1);
    if (!strstr(err, why))
        fail_msg("message '%s' lacks '%s'", err, why);
}

static void test_cert_info_refuses_what_is_not_one_certificate(void **state)
{
    (void)state;
    refused("", 0, "not a PEM certificate");
    refused("hello", 5, "not a PEM certificate");
    refused(key_pem, strlen(key_pem), "not a PEM certificate");
    refused(cert_pem, strlen(cert_pem) / 2, "not a PEM certificate");
    char *two = qr_xasprintf("%s%s", cert_pem, cert_pem);
    refused(two, strlen(two), "more than one certificate");
    free(two);
    /* Bytes after the certificate's own length are not read. */
    char sha[65], subject[64], err[256];
    int64_t not_after;
    assert_int_equal(qr_tls_cert_info(cert_pem, strlen(cert_pem) - 30, sha, subject, sizeof subject,
                                      &not_after, err, sizeof err),
                     -1);
}

static void test_verify_clients_settings(void **state)
{
    (void)state;
    char err[512] = "";
    SSL_CTX *ctx = qr_tls_server_ctx(cert.cert, cert.key, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    assert_int_equal(qr_tls_verify_clients(ctx, cert.cert, 0, err, sizeof err), 0);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 1);
    assert_int_equal(qr_tls_verify_clients(ctx, cert.cert, 1, err, sizeof err), 0);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    SSL_CTX_free(ctx);

    ctx = qr_tls_server_ctx(cert.cert, cert.key, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(qr_tls_verify_clients(ctx, "/nonexistent/ca.pem", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    assert_int_equal(qr_tls_verify_clients(ctx, cert.key, 1, err, sizeof err), -1);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    SSL_CTX_free(ctx);
}

static int group_setup(void **state)
{
    (void)state;
    if (qr_test_cert_make(&cert) < 0)
        return -1;
    cert_pem = slurp(cert.cert);
    key_pem = slurp(cert.key);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(cert_pem);
    free(key_pem);
    qr_test_cert_remove(&cert);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_info_reads_one_certificate),
        cmocka_unit_test(test_cert_info_cuts_the_subject),
        cmocka_unit_test(test_cert_info_refuses_what_is_not_one_certificate),
        cmocka_unit_test(test_verify_clients_settings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
