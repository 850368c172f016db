/*
 * hiredis_uv.h - our libuv adapter for hiredis 0.14 async contexts.
 *
 * Debian's hiredis 0.14 adapters/libuv.h returns early when uv_poll reports
 * an error status, so a failed connect or a reset socket is never noticed.
 * This adapter, on a poll error, dispatches the events it was waiting for
 * (redisAsyncHandleRead/Write), so hiredis sees the failure and calls the
 * connect/disconnect callbacks.
 */
#ifndef QR_HIREDIS_UV_H
#define QR_HIREDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop. Returns 0, or REDIS_ERR if ac already has an adapter
 * or the poll handle cannot be initialised. The adapter frees itself when
 * hiredis calls its cleanup hook (the poll handle is closed first). */
int qr_hiredis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
