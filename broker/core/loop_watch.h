/*
 * loop_watch.h - how long each turn of the broker's event loop kept it from
 * waiting for events: the time between two turns' prepare phases less the
 * time the loop slept in epoll (libuv's idle time). A turn that runs long
 * delays every request under way (the loop never blocks on I/O, but a long
 * callback is a block all the same); the turns go to the Prometheus
 * histogram quorum_loop_busy_seconds (metrics.h).
 */
#ifndef QR_LOOP_WATCH_H
#define QR_LOOP_WATCH_H

#include <stdint.h>
#include <uv.h>

typedef struct qr_loop_watch_s {
    uv_prepare_t prepare;
    uint64_t last_ns;   /* uv_hrtime() at the last prepare, 0 before the first */
    uint64_t last_idle; /* uv_metrics_idle_time() then */
    int open;           /* the handle is initialised and not yet closed */
} qr_loop_watch_t;

/* Starts watching loop; call before the loop first runs (libuv counts its
 * idle time only once asked to, before the loop's first wait). The handle
 * is unreferenced: it keeps no loop running. 0, or a libuv error. */
int qr_loop_watch_start(uv_loop_t *loop, qr_loop_watch_t *w);

/* Closes the handle (the close completes on the loop's next turn). */
void qr_loop_watch_close(qr_loop_watch_t *w);

#endif
