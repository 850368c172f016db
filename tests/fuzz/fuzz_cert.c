/*
 * fuzz_cert.c - libFuzzer harness for the client certificates managers send
 * to POST /v1/certs (mutual TLS): common/tls.c qr_tls_cert_info, which reads
 * one PEM certificate (OpenSSL's PEM and DER parsers underneath), refuses a
 * chain, and takes the SHA-256 fingerprint, the subject and notAfter.
 *
 * Checked beyond the sanitizers: the answer is 0 or -1; on 0 the fingerprint
 * is 64 lowercase hex digits (what the broker compares with the one it hashes
 * at the handshake) and the subject is a NUL-terminated string within its
 * buffer; on -1 there is a message. The same bytes give the same answer
 * twice (no state leaks between calls through OpenSSL's error queue).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_cert(const uint8_t *data, size_t size, char sha[65], char *subject,
                     size_t subject_len, int64_t *not_after)
{
    char err[300] = "";
    int r = qr_tls_cert_info((const char *)data, size, sha, subject, subject_len, not_after, err,
                             sizeof err);
    if (r != 0 && (r != -1 || !err[0] || !memchr(err, '\0', sizeof err)))
        abort();
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sha[65], sha2[65], subject[128], subject2[128];
    int64_t not_after = 0, not_after2 = 0;
    int r = read_cert(data, size, sha, subject, sizeof subject, &not_after);
    if (r == 0) {
        if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
            abort();
        if (!memchr(subject, '\0', sizeof subject))
            abort();
    }
    int r2 = read_cert(data, size, sha2, subject2, sizeof subject2, &not_after2);
    if (r2 != r ||
        (r == 0 && (strcmp(sha, sha2) || strcmp(subject, subject2) || not_after != not_after2)))
        abort();
    return 0;
}
