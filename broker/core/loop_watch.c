/*
 * loop_watch.c - the busy time of each turn of the event loop (see
 * loop_watch.h).
 */
#include "loop_watch.h"

#include "metrics.h"

static void on_prepare(uv_prepare_t *h)
{
    qr_loop_watch_t *w = h->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(h->loop);
    if (w->last_ns) {
        uint64_t span = now - w->last_ns, slept = idle - w->last_idle;
        qr_metrics_loop_turn(span > slept ? span - slept : 0);
    }
    w->last_ns = now;
    w->last_idle = idle;
}

int qr_loop_watch_start(uv_loop_t *loop, qr_loop_watch_t *w)
{
    w->last_ns = w->last_idle = 0;
    w->open = 0;
    int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (rc < 0)
        return rc;
    if ((rc = uv_prepare_init(loop, &w->prepare)) < 0)
        return rc;
    w->open = 1;
    w->prepare.data = w;
    uv_unref((uv_handle_t *)&w->prepare);
    return uv_prepare_start(&w->prepare, on_prepare);
}

void qr_loop_watch_close(qr_loop_watch_t *w)
{
    if (!w->open)
        return;
    w->open = 0;
    uv_close((uv_handle_t *)&w->prepare, NULL);
}
