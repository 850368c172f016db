/*
 * test_log.c - common/log.c: one line per event in key=value pairs, the
 * message quoted so that no text (quotes, backslashes, line breaks, control
 * bytes) can split an event or forge a key; the threshold; and the journald
 * form (syslog priority first, no timestamp) only when stderr is the
 * stream JOURNAL_STREAM names.
 */
#include "testlib.h"

#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/test_log.XXXXXX";
static int saved = -1;

/* Sends stderr to a fresh temporary file. */
static int setup(void **state)
{
    (void)state;
    strcpy(path, "/tmp/test_log.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    if (saved < 0 || dup2(fd, STDERR_FILENO) < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    unlink(path);
    unsetenv("JOURNAL_STREAM");
    unsetenv("QUORUM_LOG_LEVEL");
    return 0;
}

/* What was logged since setup, into buf. */
static const char *logged(char *buf, size_t len)
{
    fflush(stderr);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_logfmt(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    unsetenv("QUORUM_LOG_LEVEL");
    qr_log_init("quorumd", QR_LOG_INFO);
    qr_info("listening on https://%s:%d", "127.0.0.1", 8443);
    qr_debug("below the threshold");
    qr_error("pg: connection refused\n\tIs the server running?\n");
    qr_warn("a \"quoted\" name\\path\x01 end");
    char buf[2048];
    const char *out = logged(buf, sizeof buf);
    regex_t re;
    assert_int_equal(
        regcomp(&re,
                "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z level=info "
                "prog=quorumd msg=\"listening on https://127\\.0\\.0\\.1:8443\"\n"
                "ts=[^ ]+Z level=error prog=quorumd "
                "msg=\"pg: connection refused\\\\n\\\\tIs the server running\\?\"\n"
                "ts=[^ ]+Z level=warn prog=quorumd "
                "msg=\"a \\\\\"quoted\\\\\" name\\\\\\\\path\\\\x01 end\"\n$",
                REG_EXTENDED),
        0);
    if (regexec(&re, out, 0, NULL, 0) != 0)
        fail_msg("unexpected log:\n%s", out);
    regfree(&re);
}

static void test_threshold(void **state)
{
    (void)state;
    setenv("QUORUM_LOG_LEVEL", "warn", 1);
    qr_log_init("quorumctl", QR_LOG_DEBUG);
    qr_info("hidden");
    qr_warn("shown");
    char buf[512];
    const char *out = logged(buf, sizeof buf);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, " level=warn prog=quorumctl msg=\"shown\"\n"));
}

static void test_journal(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    char js[64];
    /* Another stream's numbers (inherited from a parent): not the journal. */
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", js, 1);
    qr_log_init("quorumd", QR_LOG_INFO);
    qr_info("not journal");
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    qr_log_init("quorumd", QR_LOG_INFO);
    qr_info("stopped");
    qr_warn("redis: reconnecting");
    qr_error("bad\nthing");
    char buf[1024];
    const char *out = logged(buf, sizeof buf);
    const char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_true(!strncmp(out, "ts=", 3));
    assert_string_equal(nl + 1, "<6>level=info msg=\"stopped\"\n"
                                "<4>level=warn msg=\"redis: reconnecting\"\n"
                                "<3>level=error msg=\"bad\\nthing\"\n");
}

static void test_long_message(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    qr_log_init("quorumd", QR_LOG_INFO);
    char big[3000];
    memset(big, '"', sizeof big - 1); /* each escapes to two bytes */
    big[sizeof big - 1] = '\0';
    qr_info("%s", big);
    char buf[8192];
    const char *out = logged(buf, sizeof buf);
    size_t n = strlen(out);
    /* Cut, but still one line whose quote is closed after a whole escape. */
    assert_true(n > 1000 && n < 4700);
    assert_int_equal(out[n - 1], '\n');
    assert_int_equal(out[n - 2], '"');
    assert_int_equal(out[n - 3], '"');
    assert_int_equal(out[n - 4], '\\');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_logfmt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
