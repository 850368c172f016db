/*
 * testlib.h - what integration tests share: the private stack's addresses
 * (written by deploy/stack.sh start into $QR_TEST_STACK/env), helpers that run
 * a libuv loop until a flag is set, a state is reached or a deadline passes,
 * and loopback ports for servers that are down or never answer.
 *
 * Linking it makes a test hermetic: before main, every QUORUM_* variable is
 * removed from the environment (the code under test reads some, such as
 * QUORUM_LOG_LEVEL); the tests take what they use from QR_TEST_STACK.
 */
#ifndef QR_TESTLIB_H
#define QR_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

/* Value of KEY in $QR_TEST_STACK/env (static storage), or NULL. */
const char *qr_test_stack_get(const char *key);

/* Runs loop until *done becomes non-zero or timeout_ms passes; returns 1 if
 * done, 0 on timeout. */
int qr_test_run_until(uv_loop_t *loop, volatile int *done, int timeout_ms);

/* Runs loop until nothing is active and asserts uv_loop_close succeeds: no
 * handle was left open. */
void qr_test_loop_close(uv_loop_t *loop);

/* Runs loop for ms milliseconds (a timer of its own ends the run). */
void qr_test_run_for(uv_loop_t *loop, int ms);

/* Runs loop, calling check(arg) every 10 ms (first at once), until it returns
 * non-zero or timeout_ms passes; returns 1 if check said so, 0 on timeout.
 * For states a client reaches on its own: connected, ready, closed. */
int qr_test_poll_until(uv_loop_t *loop, int (*check)(void *arg), void *arg, int timeout_ms);

/* A done-callback (`void (*)(void *)`) that sets the volatile int at arg to 1:
 * pass it with a flag to qr_pg_close, qr_redis_close and the like. */
void qr_test_set_flag(void *arg);

/* A loopback TCP port that listens (backlog 16) on *listen_fd, which the
 * caller closes: connections complete through the backlog but are never
 * answered. The kernel picks the port (bind to port 0). */
int qr_test_loopback_port(int *listen_fd);

/* A loopback TCP port held bound but not listening on *held_fd, until the
 * caller closes it: connecting is refused, and no other process can listen
 * on the port meanwhile (so a "nothing listens here" test cannot meet a
 * stranger's server). port 0 lets the kernel pick; a given port (one a
 * server of the test just left) is bound with SO_REUSEADDR, so the
 * connections that server left closing do not stand in the way. Returns the
 * port, or -1 (*held_fd -1) when the given port is taken now. To start a
 * server there, close *held_fd just before and retry if another process
 * took the port in between. */
int qr_test_hold_port(int port, int *held_fd);

#endif
