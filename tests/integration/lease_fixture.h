/*
 * lease_fixture.h - the lease engine on the test stack's Redis, for the
 * integration tests of the Lua scripts (test_lease*.c). Header-only: those
 * tests link the broker, the shared test library does not.
 */
#ifndef QR_LEASE_FIXTURE_H
#define QR_LEASE_FIXTURE_H

#include <stdlib.h>
#include <uv.h>

#include "lease.h"
#include "redis_client.h"
#include "testlib.h"

static void lease_fixture_flag(redisReply *r, const char *err, void *arg)
{
    (void)r;
    (void)err;
    *(volatile int *)arg = 1;
}

static void lease_fixture_closed(void *arg)
{
    *(volatile int *)arg = 1;
}

/* Opens loop, connects to the stack's Redis, waits for the scripts to load,
 * flushes Redis and makes the engine. */
static void lease_fixture_open(uv_loop_t *loop, qr_redis_t **redis, qr_lease_engine_t **engine)
{
    assert_int_equal(uv_loop_init(loop), 0);
    const char *port = qr_test_stack_get("QR_REDIS_PORT");
    assert_non_null(port);
    assert_int_equal(qr_redis_open(loop, "127.0.0.1", atoi(port), 2000, redis), 0);
    *engine = qr_lease_engine_new(*redis);
    for (int i = 0; i < 200 && !qr_redis_ready(*redis); i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(qr_redis_ready(*redis));
    volatile int flushed = 0;
    const char *argv[] = {"FLUSHALL"};
    assert_int_equal(qr_redis_command(*redis, 1, argv, NULL, lease_fixture_flag, (void *)&flushed),
                     0);
    assert_true(qr_test_run_until(loop, &flushed, 5000));
}

/* Frees the engine, closes Redis and the loop. */
static void lease_fixture_close(uv_loop_t *loop, qr_redis_t *redis, qr_lease_engine_t *engine)
{
    volatile int closed = 0;
    qr_lease_engine_free(engine);
    qr_redis_close(redis, lease_fixture_closed, (void *)&closed);
    assert_true(qr_test_run_until(loop, &closed, 5000));
    qr_test_loop_close(loop);
}

#endif
