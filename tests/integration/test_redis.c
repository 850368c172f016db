/*
 * test_redis.c - the Redis client (broker/lease/redis_client.c, on our hiredis
 * adapter) against real servers: the test stack's redis-server, and private
 * redis-servers this test starts and kills on loopback ports it holds, to
 * prove reconnects. Covers commands, scripts with the NOSCRIPT fallback, command
 * timeouts, server-side kills and restarts, unreachable servers and closing.
 * Every test ends by proving its loop closes with no handle left open.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "redis_client.h"
#include "testlib.h"

/* What one command's callback saw. */
typedef struct {
    int calls;
    int in_call; /* ran inside the submitting call */
    int type;    /* reply->type, 0 when the command failed */
    char err[256];
    char str[256];
    size_t len;
    long long integer;
    size_t elements;
    char elem[4][64];
    long long elemint[4];
    uint64_t at; /* uv_now when the callback ran */
} outcome_t;

static uv_loop_t *g_loop;
static volatile int g_inside_submit;
static int g_pending;
static volatile int g_all_done;

static void on_reply(redisReply *reply, const char *err, void *arg)
{
    outcome_t *o = arg;
    o->calls++;
    o->in_call |= g_inside_submit;
    o->at = uv_now(g_loop);
    if (reply) {
        assert_null(err);
        o->type = reply->type;
        if (reply->str) {
            o->len = reply->len;
            memcpy(o->str, reply->str, reply->len < sizeof o->str ? reply->len : sizeof o->str);
        }
        o->integer = reply->integer;
        o->elements = reply->elements;
        for (size_t i = 0; i < reply->elements && i < 4; i++) {
            o->elemint[i] = reply->element[i]->integer;
            if (reply->element[i]->str)
                snprintf(o->elem[i], sizeof o->elem[i], "%s", reply->element[i]->str);
        }
    } else {
        assert_non_null(err);
        snprintf(o->err, sizeof o->err, "%s", err);
    }
    if (--g_pending == 0)
        g_all_done = 1;
}

static void begin(outcome_t *o)
{
    memset(o, 0, sizeof *o);
    g_pending++;
    g_all_done = 0;
    g_inside_submit = 1;
}

static void end(int rc, outcome_t *o)
{
    g_inside_submit = 0;
    assert_int_equal(rc, 0);
    assert_int_equal(o->calls, 0); /* never called inside the call */
}

static void cmd(qr_redis_t *r, outcome_t *o, int argc, const char **argv, const size_t *lens)
{
    begin(o);
    end(qr_redis_command(r, argc, argv, lens, on_reply, o), o);
}

static void eval(qr_redis_t *r, qr_redis_script_t *s, outcome_t *o, int nkeys, int argc,
                 const char **argv)
{
    begin(o);
    end(qr_redis_eval(r, s, nkeys, argc, argv, NULL, on_reply, o), o);
}

static void wait_all(uv_loop_t *loop, int timeout_ms)
{
    if (g_pending > 0)
        assert_true(qr_test_run_until(loop, &g_all_done, timeout_ms));
}

/* Runs one command to completion. */
#define RUN(r, o, ...)                                                                             \
    do {                                                                                           \
        const char *argv_[] = {__VA_ARGS__};                                                       \
        cmd(r, o, (int)(sizeof argv_ / sizeof *argv_), argv_, NULL);                               \
        wait_all(g_loop, 10000);                                                                   \
        assert_int_equal((o)->calls, 1);                                                           \
    } while (0)

typedef struct {
    qr_redis_t *r;
    int want;
} ready_want_t;

static int redis_ready_is(void *arg)
{
    ready_want_t *w = arg;
    return qr_redis_ready(w->r) == w->want;
}

/* Runs the loop until qr_redis_ready(r) == want. */
static void wait_ready(uv_loop_t *loop, qr_redis_t *r, int want, int timeout_ms)
{
    ready_want_t w = {r, want};
    assert_true(qr_test_poll_until(loop, redis_ready_is, &w, timeout_ms));
}

static void close_client(uv_loop_t *loop, qr_redis_t *r)
{
    volatile int closed = 0;
    qr_redis_close(r, qr_test_set_flag, (void *)&closed);
    assert_true(qr_test_run_until(loop, &closed, 5000));
}

static int stack_port(void)
{
    const char *p = qr_test_stack_get("QR_REDIS_PORT");
    assert_non_null(p);
    return atoi(p);
}

static qr_redis_t *open_client(uv_loop_t *loop, int port, int timeout_ms)
{
    qr_redis_t *r = NULL;
    assert_int_equal(qr_redis_open(loop, "127.0.0.1", port, timeout_ms, &r), 0);
    assert_non_null(r);
    return r;
}

/* Forks and execs a private redis-server in the foreground on port. */
static pid_t spawn_redis(int port)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* 1 if the redis-server answering on the loopback port is process pid (its
 * INFO says so), 0 if none answers or another one does. Blocking, at most
 * about a second. */
static int redis_answers_as(int port, pid_t pid)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 1};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char want[32], buf[8192];
    size_t len = 0;
    int ours = 0;
    snprintf(want, sizeof want, "\nprocess_id:%d\r", (int)pid);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, "INFO server\r\n", 13) == 13) {
        ssize_t n;
        while (!ours && len < sizeof buf - 1 &&
               (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            ours = strstr(buf, want) != NULL;
        }
    }
    close(fd);
    return ours;
}

/*
 * Starts a private redis-server on port, which the test holds bound in *held
 * (qr_test_hold_port) so that nobody else listens there while it is meant
 * to be down; returns its pid once it answers. The hold is let go just
 * before the start: if another process takes the port in that moment, the
 * server exits (address already in use) and it is started again, for up to
 * about 10 s, on the same port (the client under test is pointed at it).
 */
static pid_t start_redis(int port, int *held)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        if (*held >= 0) {
            close(*held);
            *held = -1;
        }
        pid_t pid = spawn_redis(port);
        for (int i = 0; i < 100; i++) {
            if (redis_answers_as(port, pid))
                return pid;
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1; /* it exited: the port was taken */
                break;
            }
            usleep(100 * 1000);
        }
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("redis-server on port %d runs but does not answer", port);
        }
        usleep(500 * 1000);
    }
    fail_msg("redis-server could not listen on port %d: it stays taken", port);
    return -1;
}

static void stop_redis(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void sha1_hex(const char *s, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL), 1);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Plain commands: binary-safe arguments, error replies delivered as replies,
 * many commands in flight, and a command before the connection is up
 * failing later with "redis not connected". */
static void test_commands(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_redis_t *r = open_client(&loop, stack_port(), 2000);

    outcome_t early;
    const char *ping[] = {"PING"};
    cmd(r, &early, 1, ping, NULL);
    wait_all(&loop, 2000);
    assert_int_equal(early.calls, 1);
    assert_string_equal(early.err, "redis not connected");

    wait_ready(&loop, r, 1, 5000);
    outcome_t o;
    const char *set[] = {"SET", "qr:test:bin", "a\0b\"'\\"};
    const size_t setlen[] = {3, 11, 6};
    cmd(r, &o, 3, set, setlen);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_STATUS);
    assert_string_equal(o.str, "OK");

    RUN(r, &o, "GET", "qr:test:bin");
    assert_int_equal(o.type, REDIS_REPLY_STRING);
    assert_int_equal(o.len, 6);
    assert_memory_equal(o.str, "a\0b\"'\\", 6);

    RUN(r, &o, "INCR", "qr:test:bin");
    assert_int_equal(o.type, REDIS_REPLY_ERROR);
    assert_string_equal(o.err, "");

    RUN(r, &o, "DEL", "qr:test:n");
    enum { N = 200 };
    static outcome_t many[N];
    const char *incr[] = {"INCR", "qr:test:n"};
    for (int i = 0; i < N; i++)
        cmd(r, &many[i], 2, incr, NULL);
    wait_all(&loop, 10000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(many[i].calls, 1);
        assert_int_equal(many[i].type, REDIS_REPLY_INTEGER);
        assert_int_equal(many[i].integer, i + 1); /* in order, each once */
    }
    RUN(r, &o, "DEL", "qr:test:n", "qr:test:bin");
    assert_int_equal(o.integer, 2);

    close_client(&loop, r);
    qr_test_loop_close(&loop);
}

static const char *LUA_PAIR = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1] .. ':n')}";

/* EVALSHA of registered scripts, the NOSCRIPT fallback after SCRIPT FLUSH,
 * scripts registered after connecting, and script errors. */
static void test_scripts(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_redis_t *r = open_client(&loop, stack_port(), 2000);
    qr_redis_script_t *pair = qr_redis_script(r, LUA_PAIR);
    assert_non_null(pair);
    wait_ready(&loop, r, 1, 5000);

    char sha[41];
    sha1_hex(LUA_PAIR, sha);
    outcome_t o;
    RUN(r, &o, "DEL", "qr:test:task:n");
    RUN(r, &o, "SCRIPT", "EXISTS", sha);
    assert_int_equal(o.elemint[0], 1); /* loaded on connect */

    const char *args[] = {"qr:test:task", "annotator-7"};
    eval(r, pair, &o, 1, 2, args);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_ARRAY);
    assert_int_equal(o.elements, 3);
    assert_string_equal(o.elem[0], "qr:test:task");
    assert_string_equal(o.elem[1], "annotator-7");

    /* The server forgets every script: the next eval still succeeds
     * (NOSCRIPT -> EVAL) and EVAL puts the script back in the cache. */
    RUN(r, &o, "SCRIPT", "FLUSH");
    assert_int_equal(o.type, REDIS_REPLY_STATUS);
    const char *exists[] = {"SCRIPT", "EXISTS", sha};
    outcome_t ex;
    cmd(r, &ex, 3, exists, NULL);
    wait_all(&loop, 5000);
    assert_int_equal(ex.type, REDIS_REPLY_ARRAY);
    assert_int_equal(ex.elemint[0], 0); /* gone: EVALSHA will say NOSCRIPT */
    eval(r, pair, &o, 1, 2, args);
    wait_all(&loop, 5000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.type, REDIS_REPLY_ARRAY);
    assert_string_equal(o.elem[1], "annotator-7");
    RUN(r, &ex, "SCRIPT", "EXISTS", sha);
    assert_int_equal(ex.elemint[0], 1); /* cached again by the EVAL */
    RUN(r, &o, "GET", "qr:test:task:n");
    assert_string_equal(o.str, "2"); /* the script ran exactly twice */

    /* A script registered while connected is loaded at once. */
    qr_redis_script_t *boom = qr_redis_script(r, "return redis.error_reply('lease conflict')");
    wait_ready(&loop, r, 1, 5000);
    eval(r, boom, &o, 0, 0, NULL);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_ERROR); /* a reply, not a failure */
    assert_string_equal(o.str, "lease conflict");
    assert_string_equal(o.err, "");

    RUN(r, &o, "DEL", "qr:test:task:n");
    close_client(&loop, r);
    qr_test_loop_close(&loop);
}

/* A command the server holds longer than the timeout fails with our timer;
 * its late reply is ignored and the connection keeps working. */
static void test_timeout(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_redis_t *r = open_client(&loop, stack_port(), 200);
    wait_ready(&loop, r, 1, 5000);

    outcome_t blocked;
    const char *blpop[] = {"BLPOP", "qr:test:empty", "1"};
    uint64_t t0 = uv_now(&loop);
    cmd(r, &blocked, 3, blpop, NULL);
    wait_all(&loop, 5000);
    assert_int_equal(blocked.calls, 1);
    assert_string_equal(blocked.err, "redis command timed out");
    assert_true(blocked.at - t0 >= 190 && blocked.at - t0 < 800);

    /* Let BLPOP's real (nil) reply arrive: it must not call back again. */
    qr_test_run_for(&loop, 1200);
    assert_int_equal(blocked.calls, 1);
    outcome_t o;
    RUN(r, &o, "PING");
    assert_string_equal(o.str, "PONG");

    /* A server busy with someone else's command (a script spinning for
     * 600 ms on another connection) times us out the same way. */
    qr_redis_t *other = open_client(&loop, stack_port(), 5000);
    qr_redis_script_t *spin =
        qr_redis_script(other, "local t = redis.call('TIME') local t0 = t[1] * 1000000 + t[2] "
                               "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - t0 > "
                               "tonumber(ARGV[1]) return 1");
    wait_ready(&loop, other, 1, 5000);
    outcome_t spun, ping;
    eval(other, spin, &spun, 0, 1, (const char *[]){"600000"});
    qr_test_run_for(&loop, 50);
    assert_int_equal(spun.calls, 0); /* the server is stuck in the script */
    t0 = uv_now(&loop);
    cmd(r, &ping, 1, (const char *[]){"PING"}, NULL);
    wait_all(&loop, 5000);
    assert_string_equal(ping.err, "redis command timed out");
    assert_true(ping.at - t0 < 500);
    assert_int_equal(spun.calls, 1);
    assert_int_equal(spun.integer, 1);
    wait_all(&loop, 5000);
    qr_test_run_for(&loop, 100);
    RUN(r, &o, "PING");
    assert_string_equal(o.str, "PONG");

    close_client(&loop, other);
    close_client(&loop, r);
    qr_test_loop_close(&loop);
}

/* CLIENT KILL: the command in flight fails, commands while down fail with
 * "redis not connected", and the client reconnects with its scripts. */
static void test_client_kill(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_redis_t *r = open_client(&loop, stack_port(), 10000);
    qr_redis_script_t *pair = qr_redis_script(r, LUA_PAIR);
    qr_redis_t *killer = open_client(&loop, stack_port(), 5000);
    wait_ready(&loop, r, 1, 5000);
    wait_ready(&loop, killer, 1, 5000);

    outcome_t inflight, k;
    const char *blpop[] = {"BLPOP", "qr:test:empty", "5"};
    cmd(r, &inflight, 3, blpop, NULL);
    qr_test_run_for(&loop, 100);
    const char *kill_cmd[] = {"CLIENT", "KILL", "TYPE", "normal"};
    cmd(killer, &k, 4, kill_cmd, NULL);
    wait_all(&loop, 5000);
    assert_int_equal(k.type, REDIS_REPLY_INTEGER);
    assert_true(k.integer >= 1);
    assert_int_equal(inflight.calls, 1);
    assert_non_null(strstr(inflight.err, "connection lost"));

    assert_int_equal(qr_redis_ready(r), 0);
    outcome_t o;
    RUN(r, &o, "PING");
    assert_string_equal(o.err, "redis not connected");

    wait_ready(&loop, r, 1, 5000);
    const char *args[] = {"qr:test:kill", "a"};
    eval(r, pair, &o, 1, 2, args);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_ARRAY);
    RUN(r, &o, "DEL", "qr:test:kill:n");

    close_client(&loop, killer);
    close_client(&loop, r);
    qr_test_loop_close(&loop);
}

/* The server dies and comes back on the same port: the client notices,
 * retries with backoff, reloads its scripts and serves again. While it is
 * down the test holds the port (connections are refused, as with no
 * server, and no other process can take it before the restart). */
static void test_server_restart(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int held = -1;
    int port = qr_test_hold_port(0, &held);
    pid_t pid = start_redis(port, &held);
    qr_redis_t *r = open_client(&loop, port, 2000);
    qr_redis_script_t *pair = qr_redis_script(r, LUA_PAIR);
    wait_ready(&loop, r, 1, 10000);

    const char *args[] = {"qr:test:restart", "x"};
    outcome_t o;
    eval(r, pair, &o, 1, 2, args);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_ARRAY);

    stop_redis(pid);
    (void)qr_test_hold_port(port, &held); /* if taken already, start_redis retries */
    wait_ready(&loop, r, 0, 5000);
    RUN(r, &o, "PING");
    assert_string_equal(o.err, "redis not connected");
    qr_test_run_for(&loop, 500); /* a few failed attempts */

    pid = start_redis(port, &held);
    wait_ready(&loop, r, 1, 15000);
    char sha[41];
    sha1_hex(LUA_PAIR, sha);
    RUN(r, &o, "SCRIPT", "EXISTS", sha);
    assert_int_equal(o.elemint[0], 1); /* reloaded on reconnect */
    eval(r, pair, &o, 1, 2, args);
    wait_all(&loop, 5000);
    assert_int_equal(o.type, REDIS_REPLY_ARRAY);
    assert_string_equal(o.elem[1], "x");

    close_client(&loop, r);
    stop_redis(pid);
    qr_test_loop_close(&loop);
}

/* Nothing listens (the test holds the port bound, not listening): the
 * client reports not connected, keeps retrying with backoff, and connects
 * once a server appears on that port. */
static void test_closed_port(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int held = -1;
    int port = qr_test_hold_port(0, &held);
    qr_redis_t *r = open_client(&loop, port, 2000);
    qr_test_run_for(&loop, 800);
    assert_int_equal(qr_redis_ready(r), 0);
    outcome_t o;
    RUN(r, &o, "PING");
    assert_string_equal(o.err, "redis not connected");

    pid_t pid = start_redis(port, &held);
    wait_ready(&loop, r, 1, 15000);
    RUN(r, &o, "PING");
    assert_string_equal(o.str, "PONG");

    close_client(&loop, r);
    stop_redis(pid);
    qr_test_loop_close(&loop);
}

static qr_redis_t *g_close_me;
static volatile int g_closed_in_cb;

static void on_reply_then_close(redisReply *reply, const char *err, void *arg)
{
    on_reply(reply, err, arg);
    qr_redis_close(g_close_me, qr_test_set_flag, (void *)&g_closed_in_cb);
}

/* Closing fails what is in flight exactly once, refuses new commands, and
 * works from inside a reply callback (hiredis frees its context after the
 * callback returns). */
static void test_close(void **state)
{
    uv_loop_t loop;
    g_loop = &loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_redis_t *r = open_client(&loop, stack_port(), 5000);
    wait_ready(&loop, r, 1, 5000);
    outcome_t blocked;
    const char *blpop[] = {"BLPOP", "qr:test:empty", "3"};
    cmd(r, &blocked, 3, blpop, NULL);
    qr_test_run_for(&loop, 50);
    volatile int closed = 0;
    qr_redis_close(r, qr_test_set_flag, (void *)&closed);
    assert_int_equal(blocked.calls, 1);
    assert_string_equal(blocked.err, "redis client closed");
    outcome_t late;
    assert_true(qr_redis_command(r, 1, (const char *[]){"PING"}, NULL, on_reply, &late) < 0);
    assert_true(qr_test_run_until(&loop, &closed, 5000));
    assert_int_equal(blocked.calls, 1);

    /* Close from inside a callback, with another command still pending. */
    g_close_me = open_client(&loop, stack_port(), 5000);
    wait_ready(&loop, g_close_me, 1, 5000);
    outcome_t first, second;
    begin(&first);
    end(qr_redis_command(g_close_me, 1, (const char *[]){"PING"}, NULL, on_reply_then_close,
                         &first),
        &first);
    cmd(g_close_me, &second, 3, blpop, NULL);
    assert_true(qr_test_run_until(&loop, &g_closed_in_cb, 5000));
    assert_int_equal(first.calls, 1);
    assert_string_equal(first.str, "PONG");
    assert_int_equal(second.calls, 1);
    assert_string_equal(second.err, "redis client closed");
    qr_test_loop_close(&loop);
}

int main(void)
{
    qr_log_init("test_redis", QR_LOG_INFO); /* QR_LOG_DEBUG for more */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),       cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_timeout),        cmocka_unit_test(test_client_kill),
        cmocka_unit_test(test_server_restart), cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
