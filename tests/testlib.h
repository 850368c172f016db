/*
 * testlib.h - what integration tests share: the private stack's addresses
 * (written by deploy/stack.sh start into $QR_TEST_STACK/env) and a helper to
 * run a libuv loop until a flag is set or a deadline passes.
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

#endif
