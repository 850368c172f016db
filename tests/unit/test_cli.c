/*
 * test_cli.c - common/cli.c, the command-line helpers of quorumctl and
 * quorum-agent: flags with values, the connection flags, numbers in a
 * range, usage errors and project ids (their exact words, read back from a
 * redirected stderr), and the request helper qr_cli_call against a small
 * HTTPS server in a thread of this process (a throwaway certificate from
 * testlib_cert, a loopback port of its own) that records each request and
 * answers with the next canned response.
 */
#include "testlib.h"
#include "testlib_cert.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "protocol.h"
#include "util.h"

/* --- capturing what a helper prints ---------------------------------------------------- */

/* Runs with stream (stdout or stderr) sent to a temporary file; the text is
 * returned on the heap. */
typedef struct capture_s {
    FILE *stream;
    int saved_fd;
    char path[256];
} capture_t;

static void capture_start(capture_t *c, FILE *stream)
{
    c->stream = stream;
    const char *tmp = getenv("TMPDIR");
    snprintf(c->path, sizeof c->path, "%s/test_cli.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stream);
    c->saved_fd = dup(fileno(stream));
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fd, fileno(stream)) >= 0);
    close(fd);
}

static char *capture_end(capture_t *c)
{
    fflush(c->stream);
    assert_true(dup2(c->saved_fd, fileno(c->stream)) >= 0);
    close(c->saved_fd);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    qr_buf_t b;
    qr_buf_init(&b);
    char chunk[1024];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        qr_buf_append(&b, chunk, n);
    fclose(f);
    unlink(c->path);
    qr_buf_appends(&b, "");
    return qr_buf_steal(&b);
}

/* --- arguments ---------------------------------------------------------------------------- */

static void test_take_value(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--project", "7", "--project=8", "--projects", "--window", NULL};
    int argc = 6, i = 1;
    const char *v = NULL;

    assert_int_equal(qr_cli_take_value("prog", argc, argv, &i, "--project", &v), 1);
    assert_string_equal(v, "7");
    assert_int_equal(i, 2); /* on the value: the caller's loop steps past it */
    i = 3;
    assert_int_equal(qr_cli_take_value("prog", argc, argv, &i, "--project", &v), 1);
    assert_string_equal(v, "8");
    assert_int_equal(i, 3);
    i = 4;
    assert_int_equal(qr_cli_take_value("prog", argc, argv, &i, "--project", &v), 0);
    assert_int_equal(i, 4);

    capture_t c;
    i = 5;
    capture_start(&c, stderr);
    int r = qr_cli_take_value("prog", argc, argv, &i, "--window", &v);
    char *err = capture_end(&c);
    assert_int_equal(r, -1);
    assert_string_equal(err, "prog: --window needs a value\n");
    free(err);
}

static void test_flag_and_config_flags(void **state)
{
    (void)state;
    int on = 0;
    assert_int_equal(qr_cli_flag("--json", "--json", &on), 1);
    assert_int_equal(on, 1);
    on = 0;
    assert_int_equal(qr_cli_flag("--jsonl", "--json", &on), 0);
    assert_int_equal(on, 0);

    char *argv[] = {"quorumctl", "--url", "https://a:1", "--url=https://b:2",
                    "--token",   "t",     "--ca=ca.pem", "--cert",
                    "c.pem",     "--key", "k.pem",       "--json",
                    NULL};
    int argc = 12;
    qr_client_config_t cfg;
    qr_client_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        int r = qr_cli_config_flag(&cfg, "quorumctl", argc, argv, &i);
        assert_int_equal(r, strcmp(argv[i], "--json") ? 1 : 0);
    }
    assert_string_equal(cfg.url, "https://b:2"); /* a later flag wins */
    assert_string_equal(cfg.token, "t");
    assert_string_equal(cfg.ca, "ca.pem");
    assert_string_equal(cfg.cert, "c.pem");
    assert_string_equal(cfg.key, "k.pem");
    qr_client_config_free(&cfg);
}

static void test_parse_numbers(void **state)
{
    (void)state;
    long long v = -1;
    assert_int_equal(qr_cli_parse_ll("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(qr_cli_parse_ll("0", 1, 100, &v), -1);
    assert_int_equal(qr_cli_parse_ll("101", 1, 100, &v), -1);
    assert_int_equal(qr_cli_parse_ll("", 0, 100, &v), -1);
    assert_int_equal(qr_cli_parse_ll("12x", 0, 100, &v), -1);
    assert_int_equal(qr_cli_parse_ll("99999999999999999999", 0, INT64_MAX, &v), -1);
    assert_int_equal(v, 42); /* untouched on failure */

    double d = -1;
    assert_int_equal(qr_cli_parse_double("0.25", 0.0, 1.0, &d), 0);
    assert_true(d == 0.25);
    assert_int_equal(qr_cli_parse_double("1.5", 0.0, 1.0, &d), -1);
    assert_int_equal(qr_cli_parse_double("nan", 0.0, 1.0, &d), -1);
    assert_int_equal(qr_cli_parse_double("inf", 0.0, 1e300, &d), -1);
    assert_int_equal(qr_cli_parse_double("0.5s", 0.0, 1.0, &d), -1);
    assert_true(d == 0.25);
}

static void test_unknown_command_suggests_the_nearest(void **state)
{
    (void)state;
    static const char *const known[] = {"report", "review-select", "task", "import", NULL};
    assert_string_equal(qr_cli_nearest("reveiw-select", known), "review-select"); /* swap */
    assert_string_equal(qr_cli_nearest("repot", known), "report");                /* drop */
    assert_string_equal(qr_cli_nearest("imports", known), "import");              /* add */
    assert_string_equal(qr_cli_nearest("taks", known), "task");
    assert_null(qr_cli_nearest("xyz", known));     /* nothing near */
    assert_null(qr_cli_nearest("ta", known));      /* 2 edits of a 2-letter word: not a typo */
    assert_null(qr_cli_nearest("reprtxx", known)); /* 3 edits */
    assert_null(qr_cli_nearest("", known));

    capture_t c;
    capture_start(&c, stderr);
    int rc = qr_cli_unknown_command("quorumctl", "repot", known);
    char *err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: unknown command 'repot'; did you mean 'report'?\n"
                             "Run `quorumctl --help` for usage.\n");
    free(err);
    capture_start(&c, stderr);
    rc = qr_cli_unknown_command("quorumctl", "frobnicate", known);
    err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: unknown command 'frobnicate'\n"
                             "Run `quorumctl --help` for usage.\n");
    free(err);
}

static void test_usage_error_and_project_id(void **state)
{
    (void)state;
    capture_t c;
    capture_start(&c, stderr);
    int rc = qr_cli_usage_error("quorumctl", "import ", "import: unknown flag '%s'", "--x");
    char *err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: import: unknown flag '--x'\n"
                             "Run `quorumctl import --help` for usage.\n");
    free(err);

    capture_start(&c, stderr);
    rc = qr_cli_usage_error("quorum-agent", "", "unknown command '%s'", "lable");
    err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorum-agent: unknown command 'lable'\n"
                             "Run `quorum-agent --help` for usage.\n");
    free(err);

    long long pid = 0;
    assert_int_equal(qr_cli_project_id("quorumctl", "report ", "12", &pid), QR_EXIT_OK);
    assert_int_equal(pid, 12);
    capture_start(&c, stderr);
    rc = qr_cli_project_id("quorumctl", "project pause ", NULL, &pid);
    err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: project pause: --project ID is required\n"
                             "Run `quorumctl project pause --help` for usage.\n");
    free(err);
    capture_start(&c, stderr);
    rc = qr_cli_project_id("quorumctl", "export ", "0", &pid);
    err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: export: --project must be a positive integer, not '0'\n"
                             "Run `quorumctl export --help` for usage.\n");
    free(err);
    assert_int_equal(pid, 12);
}

static void test_leading_flags(void **state)
{
    (void)state;
    qr_client_config_t cfg;
    capture_t c;
    int cmd = 0;
    qr_client_config_init(&cfg);

    char *go[] = {"quorumctl", "--url=https://a:1", "--token", "t",
                  "report",    "--project",         "1",       NULL};
    assert_int_equal(
        qr_cli_leading_flags("quorumctl", "HELP %s", qr_cli_config_flag, &cfg, 7, go, &cmd), -1);
    assert_int_equal(cmd, 4);
    assert_string_equal(cfg.url, "https://a:1");
    assert_string_equal(cfg.token, "t");

    char *help[] = {"quorumctl", "-h", "report", NULL};
    capture_start(&c, stdout);
    int rc = qr_cli_leading_flags("quorumctl", "HELP\n", qr_cli_config_flag, &cfg, 3, help, &cmd);
    char *out = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_OK);
    assert_string_equal(out, "HELP\n");
    free(out);

    char *typo[] = {"quorumctl", "--urll", "x", "report", NULL};
    capture_start(&c, stderr);
    rc = qr_cli_leading_flags("quorumctl", "HELP\n", qr_cli_config_flag, &cfg, 4, typo, &cmd);
    char *err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "quorumctl: unknown flag '--urll'\n");
    free(err);

    char *none[] = {"quorumctl", "--token", "t", NULL};
    capture_start(&c, stderr);
    rc = qr_cli_leading_flags("quorumctl", "HELP\n", qr_cli_config_flag, &cfg, 3, none, &cmd);
    err = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_USAGE);
    assert_string_equal(err, "HELP\n");
    free(err);
    qr_client_config_free(&cfg);
}

/* --- a canned HTTPS server ------------------------------------------------------------------ */

#define MAX_CANNED 8

typedef struct server_s {
    qr_test_cert_t cert;
    SSL_CTX *ctx;
    int listen_fd;
    int port;
    pthread_t thread;
    const char *answers[MAX_CANNED]; /* whole HTTP responses, in order */
    int nanswers;
    char requests[MAX_CANNED][2048]; /* what each connection sent, head and body */
    int nrequests;
} server_t;

static server_t srv;

/* Reads one request (headers, then Content-Length bytes of body) into buf. */
static void read_request(SSL *ssl, char *buf, size_t size)
{
    size_t len = 0;
    long want = -1;
    for (;;) {
        int n = SSL_read(ssl, buf + len, (int)(size - 1 - len));
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && want < 0) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            want = (long)(end + 4 - buf) + (cl && cl < end ? strtol(cl + 17, NULL, 10) : 0);
        }
        if (want >= 0 && (long)len >= want)
            break;
    }
    buf[len] = '\0';
}

/* One connection per request: the answers say "Connection: close". */
static void *server_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < srv.nanswers; k++) {
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        SSL *ssl = SSL_new(srv.ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            read_request(ssl, srv.requests[srv.nrequests++], sizeof srv.requests[0]);
            SSL_write(ssl, srv.answers[k], (int)strlen(srv.answers[k]));
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    if (qr_test_cert_make(&srv.cert) < 0)
        return -1;
    srv.ctx = SSL_CTX_new(TLS_server_method());
    if (!srv.ctx || SSL_CTX_use_certificate_file(srv.ctx, srv.cert.cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(srv.ctx, srv.cert.key, SSL_FILETYPE_PEM) != 1)
        return -1;
    srv.port = qr_test_loopback_port(&srv.listen_fd);
    return qr_client_global_init();
}

static int group_teardown(void **state)
{
    (void)state;
    qr_client_global_cleanup();
    close(srv.listen_fd);
    SSL_CTX_free(srv.ctx);
    qr_test_cert_remove(&srv.cert);
    return 0;
}

/* Serves answers (NULL-terminated) to the next requests, in a thread. */
static void serve(const char *const *answers)
{
    srv.nanswers = srv.nrequests = 0;
    while (answers[srv.nanswers])
        srv.answers[srv.nanswers] = answers[srv.nanswers], srv.nanswers++;
    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
}

static void served(void)
{
    assert_int_equal(pthread_join(srv.thread, NULL), 0);
}

/* A call on the test server with token "tok". */
static void open_call(qr_client_call_t *call, qr_client_config_t *cfg)
{
    qr_client_config_init(cfg);
    cfg->url = qr_xasprintf("https://127.0.0.1:%d", srv.port);
    cfg->token = qr_xstrdup("tok");
    cfg->ca = qr_xstrdup(srv.cert.cert);
    assert_int_equal(qr_client_call_init(call, cfg, 10000), 0);
}

/* An answer with its Content-Length filled in (static storage, one per slot). */
static const char *answer(int slot, const char *status, const char *type, const char *body)
{
    static char buf[MAX_CANNED][1024];
    snprintf(
        buf[slot], sizeof buf[slot],
        "HTTP/1.1 %s\r\nContent-Type: %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
        status, type, strlen(body), body);
    return buf[slot];
}

static void test_call_sends_json_and_parses_the_answer(void **state)
{
    (void)state;
    const char *answers[] = {answer(0, "201 Created", "application/json", "{\"id\":7}"), NULL};
    qr_client_call_t call;
    qr_client_config_t cfg;
    open_call(&call, &cfg);
    serve(answers);
    json_t *body = json_pack("{s:s, s:[s,s]}", "name", "p", "labels", "a", "b");
    json_t *out = NULL;
    int r = qr_cli_call(&call, "POST", QR_API_PROJECTS, body, &out);
    served();
    assert_int_equal(r, 0);
    assert_int_equal(call.status, 201);
    assert_int_equal(json_integer_value(json_object_get(out, "id")), 7);
    const char *req = srv.requests[0];
    assert_non_null(strstr(req, "POST /v1/projects HTTP/1.1\r\n"));
    assert_non_null(strcasestr(req, "\r\nAuthorization: Bearer tok\r\n"));
    assert_non_null(strcasestr(req, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(req, "\r\n\r\n{\"name\":\"p\",\"labels\":[\"a\",\"b\"]}"));
    json_decref(out);
    json_decref(body);
    qr_client_call_free(&call);
    qr_client_config_free(&cfg);
}

static void test_call_reports_the_api_error(void **state)
{
    (void)state;
    const char *answers[] = {
        answer(0, "409 Conflict", "application/json",
               "{\"error\":{\"code\":\"project_paused\",\"message\":\"project 7 is paused\"}}"),
        answer(1, "503 Service Unavailable", "application/json",
               "{\"error\":{\"code\":\"unavailable\",\"message\":\"retry\"}}"),
        NULL};
    qr_client_call_t call;
    qr_client_config_t cfg;
    open_call(&call, &cfg);
    serve(answers);
    json_t *out = (json_t *)&out; /* must be reset */
    int r = qr_cli_call(&call, "POST", "/v1/projects/7/leases", NULL, &out);
    assert_int_equal(r, -1);
    assert_null(out);
    assert_int_equal(call.status, 409);
    assert_string_equal(call.code, QR_CODE_PROJECT_PAUSED);
    assert_string_equal(call.message, "409 project_paused: project 7 is paused");
    assert_false(qr_client_call_retryable(&call));
    r = qr_cli_call(&call, "GET", "/v1/projects/7", NULL, &out);
    served();
    assert_int_equal(r, -1);
    assert_int_equal(call.status, 503);
    assert_true(qr_client_call_retryable(&call));
    qr_client_call_free(&call);
    qr_client_config_free(&cfg);
}

static void test_call_refuses_an_answer_that_is_not_json(void **state)
{
    (void)state;
    const char *answers[] = {answer(0, "200 OK", "application/json", "not json"),
                             answer(1, "200 OK", "text/csv", "item,label\n1,a\n"), NULL};
    qr_client_call_t call;
    qr_client_config_t cfg;
    open_call(&call, &cfg);
    serve(answers);
    json_t *out = NULL;
    int r = qr_cli_call(&call, "GET", "/v1/projects/7/report", NULL, &out);
    assert_int_equal(r, -1);
    assert_null(out);
    assert_int_equal(call.status, 200);
    assert_false(qr_client_call_retryable(&call)); /* the same request would get the same */
    char want[128];
    snprintf(want, sizeof want,
             "broker sent invalid JSON from https://127.0.0.1:%d/v1/projects/7/report: ", srv.port);
    assert_memory_equal(call.message, want, strlen(want));

    /* Without out the answer is not parsed (an export's CSV), and echoed as is. */
    r = qr_cli_call(&call, "GET", "/v1/projects/7/export?format=csv", NULL, NULL);
    served();
    assert_int_equal(r, 0);
    capture_t c;
    capture_start(&c, stdout);
    int rc = qr_cli_echo("quorumctl", &call);
    char *text = capture_end(&c);
    assert_int_equal(rc, QR_EXIT_OK);
    assert_string_equal(text, "item,label\n1,a\n"); /* no second newline */
    free(text);
    qr_client_call_free(&call);
    qr_client_config_free(&cfg);
}

static void test_call_without_a_broker(void **state)
{
    (void)state;
    qr_client_config_t cfg;
    qr_client_config_init(&cfg);
    /* A port held bound but not listening: connecting is refused. */
    int held = -1;
    int port = qr_test_hold_port(0, &held);
    assert_true(port > 0);
    cfg.url = qr_xasprintf("https://127.0.0.1:%d", port);
    cfg.token = qr_xstrdup("tok");
    cfg.ca = qr_xstrdup(srv.cert.cert);
    qr_client_call_t call;
    assert_int_equal(qr_client_call_init(&call, &cfg, 10000), 0);
    json_t *out = NULL;
    assert_int_equal(qr_cli_call(&call, "GET", "/v1/tokens", NULL, &out), -1);
    assert_null(out);
    assert_int_equal(call.status, 0);
    assert_true(qr_client_call_retryable(&call));
    assert_non_null(strstr(call.message, "cannot reach the broker at https://127.0.0.1:"));
    qr_client_call_free(&call);
    qr_client_config_free(&cfg);
    close(held);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_value),
        cmocka_unit_test(test_flag_and_config_flags),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_usage_error_and_project_id),
        cmocka_unit_test(test_leading_flags),
        cmocka_unit_test(test_call_sends_json_and_parses_the_answer),
        cmocka_unit_test(test_call_reports_the_api_error),
        cmocka_unit_test(test_call_refuses_an_answer_that_is_not_json),
        cmocka_unit_test(test_call_without_a_broker),
        cmocka_unit_test(test_unknown_command_suggests_the_nearest),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
