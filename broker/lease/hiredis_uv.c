/*
 * hiredis_uv.c - our libuv adapter for hiredis 0.14 async contexts.
 *
 * It differs from Debian's adapters/libuv.h in three ways: a poll error is
 * not swallowed but turned into the read/write events hiredis was waiting for
 * (so redisAsyncHandleRead/Write run, see the socket error and fire the
 * connect or disconnect callback); the return value of every uv call is
 * checked (a failed poll start is reported the same way, from a zero timer,
 * since hiredis hooks cannot return errors); and the adapter state outlives
 * the context until its poll handle has closed.
 */
#include "hiredis_uv.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef struct adapter_s {
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    uv_poll_t poll;        /* on ac->c.fd; closed in cleanup */
    uv_timer_t kick;       /* reports a failed uv_poll_start (see above) */
    int events;            /* UV_READABLE | UV_WRITABLE hiredis waits for */
    int open_handles;      /* poll + kick not yet closed; free at 0 */
} adapter_t;

/* Hands the events to hiredis. After redisAsyncHandleWrite the context may
 * have been freed (connect failure, write error), which cleanup records by
 * clearing a->ac, so read is only dispatched if it is still alive. */
static void dispatch(adapter_t *a, int events)
{
    if (a->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(a->ac);
    if (a->ac && (events & UV_READABLE))
        redisAsyncHandleRead(a->ac);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    adapter_t *a = handle->data;
    if (!a->ac)
        return;
    if (status < 0) {
        /* libuv stopped the handle (POLLERR). Let hiredis find the error
         * itself by acting on everything it waited for; a read or write on
         * the broken socket fails and hiredis disconnects. */
        qr_debug("redis poll error: %s", uv_strerror(status));
        events = a->events;
    }
    dispatch(a, events);
}

static void on_kick(uv_timer_t *t)
{
    adapter_t *a = t->data;
    dispatch(a, a->events);
}

/* Applies a->events to the poll handle. On failure, arms the kick timer so
 * hiredis attempts the I/O anyway and meets the underlying error. */
static void update(adapter_t *a)
{
    int rc;
    if (!a->ac)
        return; /* after cleanup the poll handle is closing */
    if (a->events)
        rc = uv_poll_start(&a->poll, a->events, on_poll);
    else
        rc = uv_poll_stop(&a->poll);
    if (rc < 0) {
        qr_warn("redis adapter: uv_poll_%s: %s", a->events ? "start" : "stop", uv_strerror(rc));
        rc = uv_timer_start(&a->kick, on_kick, 0, 0);
        if (rc < 0)
            qr_error("redis adapter: uv_timer_start: %s", uv_strerror(rc));
    }
}

static void add_read(void *privdata)
{
    adapter_t *a = privdata;
    a->events |= UV_READABLE;
    update(a);
}

static void del_read(void *privdata)
{
    adapter_t *a = privdata;
    a->events &= ~UV_READABLE;
    update(a);
}

static void add_write(void *privdata)
{
    adapter_t *a = privdata;
    a->events |= UV_WRITABLE;
    update(a);
}

static void del_write(void *privdata)
{
    adapter_t *a = privdata;
    a->events &= ~UV_WRITABLE;
    update(a);
}

static void on_close(uv_handle_t *handle)
{
    adapter_t *a = handle->data;
    if (--a->open_handles == 0)
        free(a);
}

/* hiredis is freeing the context (and will close the fd right after we
 * return): stop polling now, forget the context, free once closed. */
static void cleanup(void *privdata)
{
    adapter_t *a = privdata;
    a->ac = NULL;
    uv_close((uv_handle_t *)&a->poll, on_close);
    uv_close((uv_handle_t *)&a->kick, on_close);
}

int qr_hiredis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    adapter_t *a = qr_xcalloc(1, sizeof *a);
    int rc = uv_poll_init(loop, &a->poll, ac->c.fd);
    if (rc < 0) {
        qr_warn("redis adapter: uv_poll_init(fd %d): %s", ac->c.fd, uv_strerror(rc));
        free(a);
        return REDIS_ERR;
    }
    rc = uv_timer_init(loop, &a->kick);
    if (rc < 0) {
        /* The poll handle is initialised, so it must be closed before a is
         * freed: on_close frees a when open_handles drops to 0. */
        qr_warn("redis adapter: uv_timer_init: %s", uv_strerror(rc));
        a->poll.data = a;
        a->open_handles = 1;
        uv_close((uv_handle_t *)&a->poll, on_close);
        return REDIS_ERR;
    }
    a->ac = ac;
    a->poll.data = a;
    a->kick.data = a;
    a->open_handles = 2;

    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = a;
    return REDIS_OK;
}
