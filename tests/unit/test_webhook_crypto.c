/*
 * test_webhook_crypto.c - broker/webhook/webhook_crypto.c: a sealed secret
 * opens again only under its key and untouched; the signature is the
 * HMAC-SHA256 of "t.body" (checked against a value Python's hmac module
 * computed); the URL and event-name checks; which addresses are in
 * private networks (refused unless the broker allows them); the key file.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* text is an IPv4 or IPv6 address; 1 when it counts as private, why set. */
static int addr_private(const char *text, char *why, size_t whylen)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, text, &in.sin_addr) == 1)
        return qr_webhook_addr_private((struct sockaddr *)&in, why, whylen);
    assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
    return qr_webhook_addr_private((struct sockaddr *)&in6, why, whylen);
}

static void test_private_addresses(void **state)
{
    (void)state;
    char why[160];
    const char *priv[] = {"127.0.0.1",
                          "127.255.0.9",
                          "10.1.2.3",
                          "172.16.0.1",
                          "172.31.255.255",
                          "192.168.1.1",
                          "169.254.169.254",
                          "100.64.0.1",
                          "0.0.0.0",
                          "224.0.0.1",
                          "255.255.255.255",
                          "198.18.0.1",
                          "::1",
                          "::",
                          "fe80::1",
                          "fd00::5",
                          "fc00::1",
                          "ff02::1",
                          "::ffff:127.0.0.1",
                          "::ffff:10.0.0.1",
                          "64:ff9b::a9fe:a9fe",
                          "192.0.0.8"};
    for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++) {
        why[0] = 0;
        if (!addr_private(priv[i], why, sizeof why))
            fail_msg("%s is not counted as private", priv[i]);
        assert_true(strlen(why) > 0);
    }
    const char *pub[] = {"8.8.8.8",     "1.1.1.1",        "172.32.0.1", "172.15.255.255",
                         "100.128.0.1", "192.169.0.1",    "11.0.0.1",   "2606:4700::1111",
                         "2001:db9::1", "::ffff:8.8.8.8", "126.0.0.1",  "169.255.0.1"};
    for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++)
        if (addr_private(pub[i], why, sizeof why))
            fail_msg("%s is counted as private: %s", pub[i], why);
    assert_int_equal(addr_private("169.254.169.254", why, sizeof why), 1);
    assert_string_equal(why, "169.254.169.254 is a link-local (169.254/16) address");
    assert_int_equal(addr_private("::ffff:10.0.0.1", why, sizeof why), 1);
    assert_string_equal(why, "::ffff:10.0.0.1 is a private (10/8) address");

    /* The same from a URL's host, written out; names are judged when
     * resolved, but for localhost. */
    const char *priv_urls[] = {"http://127.0.0.1:8080/x",     "https://10.0.0.7/",
                               "http://[::1]:9000/",          "http://[fe80::1%25eth0]/",
                               "http://localhost/",           "http://LOCALHOST.:80/",
                               "http://app.localhost/",       "http://169.254.169.254/latest",
                               "http://[::ffff:192.168.0.1]/"};
    for (size_t i = 0; i < sizeof priv_urls / sizeof priv_urls[0]; i++)
        if (!qr_webhook_url_private(priv_urls[i], why, sizeof why))
            fail_msg("%s is not counted as private", priv_urls[i]);
    const char *pub_urls[] = {"https://ml.example.com/hooks", "http://8.8.8.8/",
                              "http://[2606:4700::1111]/", "http://localhostx.example/"};
    for (size_t i = 0; i < sizeof pub_urls / sizeof pub_urls[0]; i++)
        if (qr_webhook_url_private(pub_urls[i], why, sizeof why))
            fail_msg("%s is counted as private: %s", pub_urls[i], why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_opens_under_its_key_only),
        cmocka_unit_test(test_sign_is_hmac_sha256_of_t_dot_body),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_private_addresses),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
