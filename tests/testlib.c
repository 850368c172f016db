/*
 * testlib.c - shared helpers for integration tests (see testlib.h).
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

const char *qr_test_stack_get(const char *key)
{
    static char values[16][512];
    static int used;
    const char *dir = getenv("QR_TEST_STACK");
    if (!dir)
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/env", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024];
    const char *found = NULL;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        if (!strncmp(p, "export ", 7))
            p += 7;
        if (strncmp(p, key, klen) || p[klen] != '=')
            continue;
        p += klen + 1;
        char *slot = values[used++ % 16];
        snprintf(slot, 512, "%s", p);
        size_t n = strlen(slot);
        if (n >= 2 && (slot[0] == '\'' || slot[0] == '"') && slot[n - 1] == slot[0]) {
            memmove(slot, slot + 1, n - 2);
            slot[n - 2] = '\0';
        }
        found = slot;
        break;
    }
    fclose(f);
    return found;
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

int qr_test_run_until(uv_loop_t *loop, volatile int *done, int timeout_ms)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, on_deadline, (uint64_t)timeout_ms, 0);
    while (!*done && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *done ? 1 : 0;
}

void qr_test_loop_close(uv_loop_t *loop)
{
    /* Everything the test opened must already be closing: run the loop dry,
     * then uv_loop_close fails with UV_EBUSY if any handle is still open. */
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

void qr_test_run_for(uv_loop_t *loop, int ms)
{
    volatile int never = 0;
    assert_false(qr_test_run_until(loop, &never, ms));
}

typedef struct poll_s {
    int (*check)(void *arg);
    void *arg;
    volatile int met;
} poll_t;

static void on_poll(uv_timer_t *t)
{
    poll_t *p = t->data;
    if (!p->met && p->check(p->arg))
        p->met = 1;
}

int qr_test_poll_until(uv_loop_t *loop, int (*check)(void *arg), void *arg, int timeout_ms)
{
    poll_t p = {check, arg, 0};
    uv_timer_t t;
    assert_int_equal(uv_timer_init(loop, &t), 0);
    t.data = &p;
    assert_int_equal(uv_timer_start(&t, on_poll, 0, 10), 0);
    int met = qr_test_run_until(loop, &p.met, timeout_ms);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return met;
}

void qr_test_set_flag(void *arg)
{
    *(volatile int *)arg = 1;
}

/* Binds a TCP socket to 127.0.0.1:port (0: the kernel's choice), with
 * SO_REUSEADDR when reuse is set; returns it, *port set to the bound port,
 * or -1 when the bind fails (the port is taken). */
static int bind_loopback(int *port, int reuse)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (reuse) {
        int on = 1;
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on), 0);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

int qr_test_loopback_port(int *listen_fd)
{
    int port = 0;
    int fd = bind_loopback(&port, 0);
    assert_true(fd >= 0);
    assert_int_equal(listen(fd, 16), 0);
    *listen_fd = fd;
    return port;
}

int qr_test_hold_port(int port, int *held_fd)
{
    *held_fd = bind_loopback(&port, port != 0);
    if (*held_fd < 0 && port == 0)
        fail_msg("bind 127.0.0.1:0: %s", strerror(errno));
    return *held_fd < 0 ? -1 : port;
}

/* Runs before main in every test that links this file: the environment a
 * developer's shell holds (a sourced .quorum/env, QUORUM_LOG_LEVEL, ...)
 * must not change what a test sees. Names are collected first: unsetenv
 * changes environ under a loop walking it. */
__attribute__((constructor)) static void unset_quorum_env(void)
{
    extern char **environ;
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n += strncmp(*e, "QUORUM_", 7) == 0;
    if (n == 0)
        return;
    char **names = qr_xmalloc(n * sizeof *names);
    size_t k = 0;
    for (char **e = environ; *e && k < n; e++) {
        if (strncmp(*e, "QUORUM_", 7) == 0) {
            size_t len = strcspn(*e, "=");
            names[k++] = qr_xstrndup(*e, len);
        }
    }
    for (size_t i = 0; i < k; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    free(names);
}
