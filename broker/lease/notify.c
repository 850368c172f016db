/*
 * notify.c - Redis pub/sub subscriber for cross-broker wake-ups (notify.h).
 *
 * hiredis 0.14 async in subscribe mode on its own connection, attached to
 * the loop with our adapter. Reconnects from a uv_timer with exponential
 * backoff (100 ms doubling to 5 s), never from inside a hiredis callback.
 */
#include "notify.h"

#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "hiredis_uv.h"
#include "log.h"
#include "sentinel.h"
#include "util.h"

#define CHANNEL "quorum:ready"

struct qr_notify_s {
    uv_loop_t *loop;
    char *host;
    int port;
    qr_notify_cb cb;
    void *arg;
    redisAsyncContext *ac; /* NULL while disconnected */
    uv_timer_t retry;
    int backoff_ms;
    int closing;
    void (*done)(void *);
    void *done_arg;
    qr_sentinel_t *sentinel; /* NULL: host and port are fixed */
    int locating;            /* a locate is running */
    int open;                /* handles (timer, locator) not yet closed */
    char *nodes;             /* a cluster's nodes "ip:port,...": tried in turn */
    int next_node;
};

/* A cluster: the next node of the list, in n->host and n->port (a message
 * published on any node of a cluster reaches the subscribers of every
 * node). */
static void next_node(qr_notify_t *n)
{
    int count = 1;
    for (const char *p = n->nodes; *p; p++)
        count += *p == ',';
    int want = n->next_node++ % count;
    const char *p = n->nodes;
    for (int i = 0; i < want; i++)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    char item[80];
    if (len >= sizeof item)
        return;
    memcpy(item, p, len);
    item[len] = '\0';
    char *colon = strrchr(item, ':');
    if (!colon)
        return;
    *colon = '\0';
    free(n->host);
    n->host = qr_xstrdup(item);
    n->port = atoi(colon + 1);
}

static void on_retry(uv_timer_t *t);

/* Tries again after the current backoff, which then doubles (to 5 s). */
static void schedule_retry(qr_notify_t *n)
{
    if (n->closing)
        return;
    int rc = uv_timer_start(&n->retry, on_retry, (uint64_t)n->backoff_ms, 0);
    if (rc < 0)
        qr_error("notify: uv_timer_start: %s", uv_strerror(rc));
    int cap = n->sentinel ? 1000 : 5000; /* a failover takes seconds */
    n->backoff_ms = n->backoff_ms * 2 > cap ? cap : n->backoff_ms * 2;
}

static void on_message(redisAsyncContext *ac, void *r, void *priv)
{
    qr_notify_t *n = priv;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    if (reply->element[0]->type == REDIS_REPLY_STRING &&
        !strcmp(reply->element[0]->str, "message") &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        /* "P", or "P SLOTS ORIGIN" (qr_notify_cb). */
        char *end;
        int64_t project = strtoll(reply->element[2]->str, &end, 10);
        long slots = strtol(end, &end, 10);
        unsigned long long origin = strtoull(end, NULL, 16);
        if (project != 0 && !n->closing)
            n->cb(project, slots > 0 && slots <= INT32_MAX ? (int)slots : 0, (uint64_t)origin,
                  n->arg);
    }
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    qr_notify_t *n = ac->data;
    if (status != REDIS_OK) {
        qr_warn("notify: cannot connect to redis: %s", ac->errstr);
        n->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(n);
        return;
    }
    n->backoff_ms = 100;
    qr_info("notify: subscribed to %s", CHANNEL);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    qr_notify_t *n = ac->data;
    n->ac = NULL;
    if (n->closing)
        return;
    qr_warn("notify: redis connection lost: %s", status == REDIS_OK ? "closed" : ac->errstr);
    schedule_retry(n);
}

static int connect_now(qr_notify_t *n)
{
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac)
        return QR_EIO;
    if (ac->err) {
        qr_warn("notify: %s", ac->errstr);
        redisAsyncFree(ac);
        return QR_EIO;
    }
    ac->data = n;
    if (qr_hiredis_uv_attach(ac, n->loop) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connected) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnected) != REDIS_OK ||
        redisAsyncCommand(ac, on_message, n, "SUBSCRIBE %s", CHANNEL) != REDIS_OK) {
        redisAsyncFree(ac);
        return QR_EIO;
    }
    n->ac = ac;
    return 0;
}

static void on_located(const char *host, int port, void *arg)
{
    qr_notify_t *n = arg;
    n->locating = 0;
    if (n->closing)
        return;
    if (host) {
        free(n->host);
        n->host = qr_xstrdup(host);
        n->port = port;
    }
    if (!host || connect_now(n) < 0)
        schedule_retry(n);
}

/* Connects (behind Sentinel: once it named the primary, which gets every
 * message published on it, and its replicas too). */
static void start(qr_notify_t *n)
{
    if (n->nodes)
        next_node(n);
    if (n->sentinel) {
        if (qr_sentinel_locate(n->sentinel, on_located, n) < 0)
            schedule_retry(n);
        else
            n->locating = 1;
        return;
    }
    if (connect_now(n) < 0)
        schedule_retry(n);
}

static void on_retry(uv_timer_t *t)
{
    qr_notify_t *n = t->data;
    if (n->closing || n->ac || n->locating)
        return;
    start(n);
}

static int open_notify(uv_loop_t *loop, const char *host, int port, qr_sentinel_t *sentinel,
                       const char *nodes, qr_notify_cb cb, void *arg, qr_notify_t **out);

int qr_notify_open(uv_loop_t *loop, const char *host, int port, qr_notify_cb cb, void *arg,
                   qr_notify_t **out)
{
    return open_notify(loop, host, port, NULL, NULL, cb, arg, out);
}

static void on_part_closed(void *arg);

int qr_notify_open_cluster(uv_loop_t *loop, const char *nodes, qr_notify_cb cb, void *arg,
                           qr_notify_t **out)
{
    if (!nodes || !*nodes)
        return QR_EINVAL;
    return open_notify(loop, "", 0, NULL, nodes, cb, arg, out);
}

int qr_notify_open_sentinel(uv_loop_t *loop, const char *sentinels, const char *master,
                            qr_notify_cb cb, void *arg, qr_notify_t **out)
{
    qr_sentinel_t *s = qr_sentinel_new(loop, sentinels, master);
    if (!s)
        return QR_EINVAL;
    int rc = open_notify(loop, master, 0, s, NULL, cb, arg, out);
    if (rc < 0)
        qr_sentinel_close(s, NULL, NULL);
    return rc;
}

static int open_notify(uv_loop_t *loop, const char *host, int port, qr_sentinel_t *sentinel,
                       const char *nodes, qr_notify_cb cb, void *arg, qr_notify_t **out)
{
    qr_notify_t *n = qr_xcalloc(1, sizeof *n);
    n->sentinel = sentinel;
    n->nodes = nodes ? qr_xstrdup(nodes) : NULL;
    n->loop = loop;
    n->host = qr_xstrdup(host);
    n->port = port;
    n->cb = cb;
    n->arg = arg;
    n->backoff_ms = 100;
    int rc = uv_timer_init(loop, &n->retry);
    if (rc < 0) {
        free(n->host);
        free(n->nodes);
        free(n);
        return rc;
    }
    n->retry.data = n;
    n->open = sentinel ? 2 : 1;
    start(n);
    *out = n;
    return 0;
}

static void on_part_closed(void *part)
{
    qr_notify_t *n = part;
    if (--n->open > 0)
        return;
    void (*done)(void *) = n->done;
    void *arg = n->done_arg;
    free(n->host);
    free(n->nodes);
    free(n);
    if (done)
        done(arg);
}

static void on_retry_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

void qr_notify_close(qr_notify_t *n, void (*done)(void *arg), void *arg)
{
    n->closing = 1;
    n->done = done;
    n->done_arg = arg;
    uv_timer_stop(&n->retry);
    if (n->ac) {
        redisAsyncContext *ac = n->ac;
        n->ac = NULL;
        /* Frees the context now: pending callbacks (the subscription) get a
         * NULL reply, and the disconnect callback runs with closing set. */
        redisAsyncFree(ac);
    }
    if (!uv_is_closing((uv_handle_t *)&n->retry))
        uv_close((uv_handle_t *)&n->retry, on_retry_closed);
    if (n->sentinel) { /* a running locate is dropped: its callback never runs */
        qr_sentinel_t *s = n->sentinel;
        n->sentinel = NULL;
        n->locating = 0;
        qr_sentinel_close(s, on_part_closed, n);
    }
}
