/*
 * test_webhook_crypto.c - broker/webhook/webhook_crypto.c: a sealed secret
 * opens again only under its key and untouched; the signature is the
 * HMAC-SHA256 of "t.body" (checked against a value Python's hmac module
 * computed); the URL and event-name checks; the key file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "util.h"
#include "webhook.h"

static const unsigned char KEY[QR_WEBHOOK_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void test_seal_opens_under_its_key_only(void **state)
{
    char secret[QR_WEBHOOK_SECRET_LEN + 1], other_secret[QR_WEBHOOK_SECRET_LEN + 1];
    assert_int_equal(qr_webhook_secret_new(secret), 0);
    assert_int_equal(qr_webhook_secret_new(other_secret), 0);
    assert_int_equal(strlen(secret), QR_WEBHOOK_SECRET_LEN);
    assert_memory_equal(secret, "whsec_", 6);
    assert_string_not_equal(secret, other_secret);

    char *a = qr_webhook_seal(KEY, secret), *b = qr_webhook_seal(KEY, secret);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b); /* a fresh nonce each time */
    assert_null(strstr(a, secret + 6));
    char *open = qr_webhook_unseal(KEY, a);
    assert_non_null(open);
    assert_string_equal(open, secret);
    free(open);

    unsigned char other[QR_WEBHOOK_KEY_BYTES] = {9};
    assert_null(qr_webhook_unseal(other, a));
    /* One flipped hex digit anywhere: the tag does not verify. */
    for (size_t i = 3; i < strlen(a); i += 7) {
        char *t = qr_xstrdup(a);
        t[i] = t[i] == '0' ? '1' : '0';
        assert_null(qr_webhook_unseal(KEY, t));
        free(t);
    }
    assert_null(qr_webhook_unseal(KEY, "v1:"));
    assert_null(qr_webhook_unseal(KEY, "v2:00"));
    assert_null(qr_webhook_unseal(KEY, secret));
    free(a);
    free(b);
}

static void test_sign_is_hmac_sha256_of_t_dot_body(void **state)
{
    char out[65];
    assert_int_equal(qr_webhook_sign("Jefe", 12, "ab", 2, out), 0);
    /* python3 -c 'import hmac,hashlib;print(hmac.new(b"Jefe",b"12.ab",hashlib.sha256).hexdigest())'
     */
    assert_string_equal(out, "11d6a572a281aab60fb5ed4c621bfaf1c0c5c68f5786bbf21dc8ef5bfff0a41d");
}

static void test_url_check(void **state)
{
    char err[256];
    assert_int_equal(qr_webhook_url_check("https://ml.example.com/hooks?x=1", err, sizeof err), 0);
    assert_int_equal(qr_webhook_url_check("http://127.0.0.1:8080/", err, sizeof err), 0);
    const char *bad[] = {
        "ftp://example.com/",       "example.com/x",          "https://",    "http://a b/",
        "https://u:p@example.com/", "https://example.com/#x", "http://\x01/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(qr_webhook_url_check(bad[i], err, sizeof err), QR_EINVAL);
        assert_true(strlen(err) > 0);
    }
    char *longurl = qr_xmalloc(QR_WEBHOOK_MAX_URL + 32);
    strcpy(longurl, "https://example.com/");
    memset(longurl + 20, 'a', QR_WEBHOOK_MAX_URL);
    longurl[QR_WEBHOOK_MAX_URL + 1] = 0;
    assert_int_equal(qr_webhook_url_check(longurl, err, sizeof err), QR_EINVAL);
    free(longurl);
}

static void test_event_names(void **state)
{
    assert_true(qr_webhook_event_known("annotation.created"));
    assert_true(qr_webhook_event_known("task.completed"));
    assert_true(qr_webhook_event_known("project.completed"));
    assert_false(qr_webhook_event_known("task.done"));
    assert_false(qr_webhook_event_known(""));
}

static void test_key_file(void **state)
{
    char path[] = "/tmp/qr-webhook-key.XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "  %s\n", "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF");
    fclose(f);
    unsigned char key[QR_WEBHOOK_KEY_BYTES];
    assert_int_equal(qr_webhook_key_load(path, key, err, sizeof err), 0);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[5], 0x55);
    assert_int_equal(key[31], 0xff);
    f = fopen(path, "w");
    fprintf(f, "0011\n");
    fclose(f);
    assert_true(qr_webhook_key_load(path, key, err, sizeof err) < 0);
    assert_non_null(strstr(err, "64 hex digits"));
    unlink(path);
    assert_true(qr_webhook_key_load(path, key, err, sizeof err) < 0);
    assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_opens_under_its_key_only),
        cmocka_unit_test(test_sign_is_hmac_sha256_of_t_dot_body),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
