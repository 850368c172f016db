/*
 * testlib_cert.c - self-signed certificates for tests (see testlib_cert.h).
 */
#include "testlib_cert.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fclose(f) != 0)
        ok = 0;
    return ok == 1 ? 0 : -1;
}

/* Adds one v3 extension given in openssl.cnf syntax. */
static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

int qr_test_cert_make(qr_test_cert_t *tc)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    const char *tmp = getenv("TMPDIR");
    memset(tc, 0, sizeof *tc);
    snprintf(tc->dir, sizeof tc->dir, "%s/qr-cert-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tc->dir)) {
        perror("mkdtemp");
        tc->dir[0] = '\0';
        return -1;
    }
    snprintf(tc->cert, sizeof tc->cert, "%s/cert.pem", tc->dir);
    snprintf(tc->key, sizeof tc->key, "%s/key.pem", tc->dir);

    key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (!key || !cert)
        goto fail;
    X509_NAME *name = X509_get_subject_name(cert);
    if (X509_set_version(cert, 2) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert), (long)getpid()) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600) ||
        X509_set_pubkey(cert, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(cert, name) != 1 ||
        add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") < 0 ||
        X509_sign(cert, key, EVP_sha256()) <= 0)
        goto fail;
    if (write_pem(tc->key, key, NULL) < 0 || write_pem(tc->cert, NULL, cert) < 0)
        goto fail;
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
fail:
    fprintf(stderr, "qr_test_cert_make: %s\n", ERR_error_string(ERR_get_error(), NULL));
    X509_free(cert);
    EVP_PKEY_free(key);
    qr_test_cert_remove(tc);
    return -1;
}

void qr_test_cert_remove(const qr_test_cert_t *tc)
{
    if (!tc->dir[0])
        return;
    unlink(tc->cert);
    unlink(tc->key);
    rmdir(tc->dir);
}
