/*
 * sentinel.c - finds a Redis primary through Sentinel (sentinel.h).
 *
 * One locate at a time, one sentinel connection at a time. The next step
 * (the next sentinel, or the answer) always runs from the uv timer, never
 * from inside a hiredis callback, and s->ac is cleared before a context is
 * freed or in the callbacks after which hiredis frees it, so a freed
 * context is never touched.
 */
#include "sentinel.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hiredis_uv.h"
#include "log.h"
#include "util.h"

#define ASK_MS 1000 /* one sentinel's connect and answer */

struct qr_sentinel_s {
    uv_loop_t *loop;
    char *master;
    int n;      /* sentinels */
    char **ips; /* their addresses */
    int *ports; /* and ports */
    int first;  /* the sentinel asked first: the one that answered last */
    int busy;   /* a locate is running */
    int idx;    /* the sentinel being asked */
    int asked;  /* sentinels asked in this locate */
    int found;  /* host/port hold the answer */
    char host[64];
    int port;
    redisAsyncContext *ac; /* the connection to sentinel idx, or NULL */
    uv_timer_t timer;      /* the ask's deadline, or the next step (0 ms) */
    qr_sentinel_cb cb;
    void *arg;
    void (*done)(void *);
    void *done_arg;
};

static int parse_one(const char *s, size_t len, char *ip, size_t iplen, int *port)
{
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon || colon == s || (size_t)(colon - s) >= iplen)
        return -1;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
        return -1;
    char num[8];
    size_t nlen = len - (size_t)(colon + 1 - s);
    if (nlen == 0 || nlen >= sizeof num)
        return -1;
    memcpy(num, colon + 1, nlen);
    num[nlen] = '\0';
    char *end;
    long p = strtol(num, &end, 10);
    if (*end || p <= 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* Parses the list into s (when s is not NULL); returns the count or -1. */
static int parse_list(const char *list, qr_sentinel_t *s)
{
    int n = 0;
    const char *p = list;
    if (!list || !*list)
        return -1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char ip[64];
        int port;
        if (parse_one(p, len, ip, sizeof ip, &port) < 0)
            return -1;
        if (s) {
            s->ips[n] = qr_xstrdup(ip);
            s->ports[n] = port;
        }
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

int qr_sentinel_list_valid(const char *sentinels)
{
    return parse_list(sentinels, NULL) > 0 ? 0 : -1;
}

/* Frees what qr_sentinel_new allocated (its timer closed or never open). */
static void sentinel_free(qr_sentinel_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->ips[i]);
    free(s->ips);
    free(s->ports);
    free(s->master);
    free(s);
}

qr_sentinel_t *qr_sentinel_new(uv_loop_t *loop, const char *sentinels, const char *master)
{
    int n = parse_list(sentinels, NULL);
    if (n <= 0 || !master || !*master)
        return NULL;
    qr_sentinel_t *s = qr_xcalloc(1, sizeof *s);
    s->loop = loop;
    s->master = qr_xstrdup(master);
    s->ips = qr_xcalloc((size_t)n, sizeof *s->ips);
    s->ports = qr_xcalloc((size_t)n, sizeof *s->ports);
    s->n = parse_list(sentinels, s);
    int rc = uv_timer_init(loop, &s->timer);
    if (rc < 0) {
        qr_error("sentinel: uv_timer_init: %s", uv_strerror(rc));
        sentinel_free(s);
        return NULL;
    }
    s->timer.data = s;
    return s;
}

static void on_timer(uv_timer_t *t);

static void arm(qr_sentinel_t *s, uint64_t ms)
{
    int rc = uv_timer_start(&s->timer, on_timer, ms, 0);
    if (rc < 0) /* cannot happen for an initialised, open timer */
        qr_error("sentinel: uv_timer_start: %s", uv_strerror(rc));
}

static void on_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_sentinel_t *s = privdata;
    redisReply *r = reply;
    if (!r || s->ac != ac)
        return; /* the context is going; its disconnect moves on */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len < sizeof s->host) {
        long port = strtol(r->element[1]->str, NULL, 10);
        if (port > 0 && port <= 65535) {
            memcpy(s->host, r->element[0]->str, r->element[0]->len);
            s->host[r->element[0]->len] = '\0';
            s->port = (int)port;
            s->found = 1;
        }
    } else {
        qr_warn("sentinel %s:%d does not know master %s: %s", s->ips[s->idx], s->ports[s->idx],
                s->master, r->type == REDIS_REPLY_ERROR ? r->str : "no address");
    }
    /* Closes once this callback returns (nothing else is pending); the
     * disconnect callback then moves on. */
    redisAsyncDisconnect(ac);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    qr_sentinel_t *s = ac->data;
    if (status == REDIS_OK || s->ac != ac)
        return;
    qr_warn("sentinel %s:%d: %s", s->ips[s->idx], s->ports[s->idx], ac->errstr);
    s->ac = NULL; /* hiredis frees it when we return */
    arm(s, 0);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    qr_sentinel_t *s = ac->data;
    if (s->ac != ac)
        return;
    s->ac = NULL; /* hiredis frees it when we return */
    arm(s, 0);
}

/* Connects to sentinel s->idx and asks; 0, or -1 (move on). */
static int ask(qr_sentinel_t *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->ips[s->idx], s->ports[s->idx]);
    if (!ac)
        return -1;
    if (ac->err) {
        qr_warn("sentinel %s:%d: %s", s->ips[s->idx], s->ports[s->idx], ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = s;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->master};
    if (qr_hiredis_uv_attach(ac, s->loop) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connected) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnected) != REDIS_OK ||
        redisAsyncCommandArgv(ac, on_addr, s, 3, argv, NULL) != REDIS_OK) {
        redisAsyncFree(ac);
        return -1;
    }
    s->ac = ac;
    arm(s, ASK_MS);
    return 0;
}

static void finish(qr_sentinel_t *s)
{
    s->busy = 0;
    if (s->found) {
        s->first = s->idx;
        s->cb(s->host, s->port, s->arg);
    } else {
        qr_warn("sentinel: no sentinel gave the address of master %s", s->master);
        s->cb(NULL, 0, s->arg);
    }
}

/* The next step of a locate: the answer, or the next sentinel. */
static void step(qr_sentinel_t *s)
{
    while (!s->found && s->asked < s->n) {
        s->idx = (s->first + s->asked) % s->n;
        s->asked++;
        if (ask(s) == 0)
            return;
    }
    finish(s);
}

static void on_timer(uv_timer_t *t)
{
    qr_sentinel_t *s = t->data;
    if (!s->busy)
        return;
    if (s->ac) { /* the ask's deadline passed */
        qr_warn("sentinel %s:%d: no answer in %d ms", s->ips[s->idx], s->ports[s->idx], ASK_MS);
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    step(s);
}

int qr_sentinel_locate(qr_sentinel_t *s, qr_sentinel_cb cb, void *arg)
{
    if (s->busy || s->done)
        return QR_ECONFLCT;
    s->busy = 1;
    s->found = 0;
    s->asked = 0;
    s->cb = cb;
    s->arg = arg;
    arm(s, 0);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    qr_sentinel_t *s = h->data;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    sentinel_free(s);
    done(arg);
}

static void noop(void *arg)
{
    (void)arg;
}

void qr_sentinel_close(qr_sentinel_t *s, void (*done)(void *arg), void *arg)
{
    s->done = done ? done : noop;
    s->done_arg = arg;
    s->busy = 0;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
