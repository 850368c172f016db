/*
 * test_conf.c - common/conf.c, the `key = value` file reader behind
 * quorumd --config: both spellings of an entry, comments, blank lines,
 * quotes and trimming; and each refusal, which must name the file and the
 * line and leave nothing parsed.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static int parse(const char *text, qr_conf_t *c, char *err, size_t errlen)
{
    return qr_conf_parse("q.conf", text, strlen(text), c, err, errlen);
}

static void test_entries(void **state)
{
    (void)state;
    qr_conf_t c = {0};
    char err[256] = "";
    const char *text = "# quorumd\n"
                       "\n"
                       "listen = 127.0.0.1:8443\n"
                       "   pg    host=/run/postgresql dbname=quorum password=a#b  \n"
                       "\t# indented comment\n"
                       "metrics-public=yes\r\n"
                       "cert = \"  /etc/quorum/my cert.pem \"\n"
                       "empty = \"\"\n"
                       "last.key value with = inside";
    assert_int_equal(parse(text, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 6);
    const char *want[][2] = {{"listen", "127.0.0.1:8443"},
                             {"pg", "host=/run/postgresql dbname=quorum password=a#b"},
                             {"metrics-public", "yes"},
                             {"cert", "  /etc/quorum/my cert.pem "},
                             {"empty", ""},
                             {"last.key", "value with = inside"}};
    const int lines[] = {3, 4, 6, 7, 8, 9};
    for (size_t i = 0; i < c.n; i++) {
        assert_string_equal(c.entries[i].key, want[i][0]);
        assert_string_equal(c.entries[i].value, want[i][1]);
        assert_int_equal(c.entries[i].line, lines[i]);
    }
    qr_conf_free(&c);
    assert_int_equal(c.n, 0);
    assert_null(c.entries);
    /* An empty file, and one of comments only, are fine and empty. */
    assert_int_equal(parse("", &c, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(parse("# nothing\n\n   \n", &c, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
    qr_conf_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"listen = 1:2\npg\n", "q.conf:2: pg has no value"},
        {"listen =   \n", "q.conf:1: listen has no value"},
        {"a = 1\n\n# c\na = 2\n", "q.conf:4: a is already set on line 1"},
        {"= 5\n", "q.conf:1: expected `key = value`, not a line starting with '='"},
        {"\"k\" = 5\n", "q.conf:1: expected `key = value`, not a line starting with '\"'"},
        {"ok = 1\nli$ten = 5\n", "q.conf:2: '$' cannot be part of a key"},
        {"k\xc3\xa9 = 5\n", "q.conf:1: byte 0xc3 cannot be part of a key"},
        {"cert = \"/a\n", "q.conf:1: cert: a quoted value is one \"...\" (no quote inside)"},
        {"cert = \"/a\"b\"\n", "q.conf:1: cert: a quoted value is one"},
        {"cert = \"\n", "q.conf:1: cert: a quoted value is one"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qr_conf_t c = {0};
        char err[256] = "";
        assert_int_equal(parse(cases[i].text, &c, err, sizeof err), -1);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)))
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].err);
        assert_int_equal(c.n, 0);
        assert_null(c.entries);
    }
    /* A NUL byte: refused, naming its line. */
    qr_conf_t c = {0};
    char err[256] = "";
    assert_int_equal(qr_conf_parse("q.conf", "a = 1\nb = \0\n", 11, &c, err, sizeof err), -1);
    assert_string_equal(err, "q.conf:2: a NUL byte (not a text file?)");
    assert_int_equal(c.n, 0);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_conf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("listen = 0.0.0.0:8443\nbad line here\n", f);
    assert_int_equal(fclose(f), 0);
    qr_conf_t c = {0};
    char err[512] = "", want[512];
    /* "bad line here" is key "bad" with value "line here": fine for the reader. */
    assert_int_equal(qr_conf_read(path, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.entries[1].value, "line here");
    qr_conf_free(&c);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("listen = 0.0.0.0:8443\nmax-json-bytes\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(qr_conf_read(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: max-json-bytes has no value", path);
    assert_string_equal(err, want);
    /* Too big: refused as a whole. */
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < QR_CONF_MAX_BYTES / 16 + 1; i++)
        fputs("# padding......\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(qr_conf_read(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: larger than %d bytes", path, QR_CONF_MAX_BYTES);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path), 0);
    /* Missing: the path and the reason. */
    assert_int_equal(qr_conf_read(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);
    assert_int_equal(c.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
