/*
 * redis_client.c - one asynchronous Redis connection for the event loop:
 * reconnect with exponential backoff, a registry of Lua scripts loaded on
 * every connect, EVALSHA with a NOSCRIPT fallback to EVAL, and per-command
 * timeouts (hiredis 0.14 has none).
 *
 * Lifetimes. A command (cmd_t) lives until both its user callback has run
 * (done) and hiredis no longer holds it as privdata (in_hiredis == 0): a
 * command that timed out stays allocated until its late reply, or the NULL
 * reply hiredis gives every pending callback when the context is freed,
 * arrives. The hiredis context is only created from a uv timer (or the
 * resolver callback), never from inside a hiredis callback, and r->ac is
 * cleared in the callbacks after which hiredis frees the context, so a freed
 * context is never touched. The client itself is freed from the close
 * callback of its last handle, strictly after hiredis released the context.
 *
 * Timeouts. Every command gets the same timeout, so deadlines grow with
 * submission order: the pending list is kept in deadline order by appending,
 * and one uv timer armed for the list head enforces them all.
 */
#include "redis_client.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hiredis_uv.h"
#include "log.h"
#include "redis_cluster.h"
#include "sentinel.h"
#include "util.h"

#define BACKOFF_MIN_MS      100  /* first reconnect delay */
#define BACKOFF_MAX_MS      5000 /* reconnect delay cap */
#define BACKOFF_SENTINEL_MS 1000 /* the cap behind Sentinel: a failover takes seconds */

/* ST_CHECKING: connected to the address Sentinel gave; ROLE, INFO and the
 * primary check run before commands are taken. */
enum { ST_DOWN, ST_CONNECTING, ST_CHECKING, ST_UP };

struct qr_redis_script_s {
    qr_redis_script_t *next;
    char *lua;
    char sha[41];        /* SHA1 from SCRIPT LOAD; "" until the first load */
    unsigned loaded_gen; /* r->gen of the connection that loaded it */
    int index;           /* registration order: the cluster's handle for it */
};

typedef struct cmd_s cmd_t;
struct cmd_s {
    qr_redis_t *r;
    cmd_t *prev, *next; /* in r->pending (deadline order) or r->failing */
    qr_redis_cb cb;
    void *arg;
    uint64_t deadline; /* uv_now() ms after which the command times out */
    uint64_t sent_ns;  /* uv_hrtime() when handed to hiredis (metrics) */
    int done;          /* the user callback has run */
    int in_hiredis;    /* hiredis holds this as privdata */
    const char *err;   /* reason for a deferred failure (static string) */
    /* EVAL/EVALSHA only: the script and a copy of the keys and args. */
    qr_redis_script_t *script;
    int eval_retried; /* EVAL already sent: no second fallback */
    char numkeys[16];
    int nargs;
    char **args;
    size_t *arglens;
};

typedef struct {
    cmd_t *head, *tail;
} cmd_list_t;

struct qr_redis_s {
    uv_loop_t *loop;
    char *host;
    int port;
    int timeout_ms;
    redisAsyncContext *ac; /* NULL when there is no live context */
    int state;             /* ST_* */
    unsigned gen;          /* bumped on every successful connect */
    int backoff_ms;        /* next reconnect delay */
    uv_timer_t reconnect;  /* backoff before the next connect attempt */
    uv_timer_t deadline;   /* armed for r->pending.head->deadline */
    uv_timer_t defer;      /* runs r->failing callbacks on the next turn */
    uv_getaddrinfo_t gai;  /* resolves host when it is not an address */
    int resolving;         /* gai in flight */
    cmd_list_t pending;    /* sent to hiredis, user callback not yet run */
    cmd_list_t failing;    /* failed before sending; callback deferred */
    qr_redis_script_t *scripts;
    qr_redis_script_t **scripts_tail;
    int closing;
    int open_handles; /* timers not yet closed */
    void (*close_cb)(void *arg);
    void *close_arg;
    char errbuf[160];        /* message for the callback being run */
    qr_sentinel_t *sentinel; /* NULL: host and port are fixed */
    int locating;            /* a locate is running */
    char *check_lua;         /* the primary check (qr_redis_set_primary_check) */
    int check_nkeys;
    char **check_keys;
    qr_cluster_t *cluster;          /* a cluster's router: commands go to its nodes */
    qr_redis_node_check_fn node_fn; /* a cluster node: the check before commands */
    void *node_arg;
    unsigned check_token;           /* bumped on every connect: a check's identity */
    int is_master;                  /* the last ROLE said master */
    int nscripts;                   /* registered so far */
    qr_latency_t stats;             /* round trips and failed commands (qr_redis_stats) */
    qr_redis_redirects_t redirects; /* a cluster's router's (qr_redis_redirects) */
};

static void connect_now(qr_redis_t *r);
static void finish_close(qr_redis_t *r);
static void on_handle_closed(uv_handle_t *h);
static void on_sentinel_closed(void *arg);

static void on_reconnect_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

/* ---- command lists ---- */

static void list_push(cmd_list_t *l, cmd_t *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_remove(cmd_list_t *l, cmd_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static cmd_t *cmd_new(qr_redis_t *r, qr_redis_cb cb, void *arg)
{
    cmd_t *c = qr_xcalloc(1, sizeof *c);
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    return c;
}

static void cmd_free(cmd_t *c)
{
    for (int i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args);
    free(c->arglens);
    free(c);
}

/* ---- deferred failures ---- */

static void on_defer(uv_timer_t *t)
{
    qr_redis_t *r = t->data;
    cmd_t *c;
    /* One at a time from the list head: a callback may close the client,
     * which then fails the rest itself. */
    while (!r->closing && (c = r->failing.head)) {
        list_remove(&r->failing, c);
        c->done = 1;
        c->cb(NULL, c->err, c->arg);
        cmd_free(c);
    }
}

/* Fails c from the next loop turn, so the callback never runs inside the
 * call that submitted it. */
static void fail_later(qr_redis_t *r, cmd_t *c, const char *err)
{
    c->err = err;
    r->stats.errors++;
    list_push(&r->failing, c);
    int rc = uv_timer_start(&r->defer, on_defer, 0, 0);
    if (rc < 0) /* cannot happen for an initialised, open timer */
        qr_error("redis: uv_timer_start: %s", uv_strerror(rc));
}

/* ---- timeouts ---- */

static void on_deadline(uv_timer_t *t);

static void arm_deadline(qr_redis_t *r)
{
    int rc;
    if (!r->pending.head) {
        rc = uv_timer_stop(&r->deadline);
    } else {
        uint64_t now = uv_now(r->loop);
        uint64_t d = r->pending.head->deadline;
        rc = uv_timer_start(&r->deadline, on_deadline, d > now ? d - now : 0, 0);
    }
    if (rc < 0)
        qr_error("redis: deadline timer: %s", uv_strerror(rc));
}

static void on_deadline(uv_timer_t *t)
{
    qr_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    cmd_t *c;
    while ((c = r->pending.head) && c->deadline <= now) {
        /* The reply may still come: the command stays with hiredis and is
         * freed by on_reply, which ignores it. */
        list_remove(&r->pending, c);
        c->done = 1;
        r->stats.errors++;
        c->cb(NULL, "redis command timed out", c->arg);
        if (r->closing)
            return;
    }
    arm_deadline(r);
}

/* ---- replies ---- */

static int send_eval(qr_redis_t *r, cmd_t *c, int by_sha);

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    cmd_t *c = privdata;
    qr_redis_t *r = c->r;
    redisReply *rep = reply;

    c->in_hiredis = 0;
    if (c->done) { /* timed out or failed by close: ignore the late reply */
        cmd_free(c);
        return;
    }
    if (rep && c->script && !c->eval_retried && rep->type == REDIS_REPLY_ERROR && rep->str &&
        !strncmp(rep->str, "NOSCRIPT", 8)) {
        /* The server lost the script (restart, failover, SCRIPT FLUSH):
         * resend with the text, keeping the original deadline. */
        c->eval_retried = 1;
        if (send_eval(r, c, 0) == REDIS_OK) {
            c->in_hiredis = 1;
            return;
        }
        rep = NULL;
    }
    if (rep && r->sentinel && rep->type == REDIS_REPLY_ERROR && rep->str &&
        !strncmp(rep->str, "READONLY", 8) && r->ac == ac && r->state == ST_UP) {
        /* The server was demoted to a replica: this command fails (the
         * caller answers 503 or retries), and the client asks Sentinel for
         * the primary again once the connection is closed. */
        qr_warn("redis: %s:%d is a replica now; asking Sentinel for the primary", r->host, r->port);
        r->state = ST_CONNECTING;
        redisAsyncDisconnect(ac);
    }
    list_remove(&r->pending, c);
    c->done = 1;
    if (rep && rep->type != REDIS_REPLY_ERROR)
        qr_latency_observe(&r->stats, uv_hrtime() - c->sent_ns);
    else
        r->stats.errors++;
    if (rep) {
        c->cb(rep, NULL, c->arg);
    } else {
        snprintf(r->errbuf, sizeof r->errbuf, "redis connection lost: %s",
                 ac->err && ac->errstr ? ac->errstr : "closed");
        c->cb(NULL, r->errbuf, c->arg);
    }
    cmd_free(c);
}

/* ---- connection ---- */

static void schedule_reconnect(qr_redis_t *r)
{
    if (r->closing)
        return;
    int rc = uv_timer_start(&r->reconnect, on_reconnect_timer, (uint64_t)r->backoff_ms, 0);
    if (rc < 0)
        qr_error("redis: reconnect timer: %s", uv_strerror(rc));
    int cap = r->sentinel ? BACKOFF_SENTINEL_MS : BACKOFF_MAX_MS;
    r->backoff_ms = r->backoff_ms * 2 > cap ? cap : r->backoff_ms * 2;
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_redis_t *r = ac->data;
    qr_redis_script_t *s = privdata;
    redisReply *rep = reply;
    if (!rep)
        return; /* connection gone; the next connect loads it again */
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        memcpy(s->sha, rep->str, 40);
        s->sha[40] = '\0';
        s->loaded_gen = r->gen;
    } else {
        qr_error("redis: SCRIPT LOAD failed: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    }
}

static void load_script(qr_redis_t *r, qr_redis_script_t *s)
{
    const char *argv[3] = {"SCRIPT", "LOAD", s->lua};
    if (redisAsyncCommandArgv(r->ac, on_script_loaded, s, 3, argv, NULL) != REDIS_OK)
        qr_warn("redis: cannot queue SCRIPT LOAD");
}

/* Takes commands from now on: loads the scripts. */
static void mark_up(qr_redis_t *r)
{
    r->state = ST_UP;
    r->gen++;
    r->backoff_ms = BACKOFF_MIN_MS;
    qr_info("redis: connected to %s:%d%s", r->host, r->port, r->sentinel ? " (primary)" : "");
    for (qr_redis_script_t *s = r->scripts; s; s = s->next)
        load_script(r, s);
}

/* The check of a new connection failed: close it; the disconnect callback
 * asks Sentinel again after the backoff. */
static void check_failed(qr_redis_t *r, redisAsyncContext *ac, const char *what, const char *why)
{
    qr_warn("redis: %s:%d %s: %s", r->host, r->port, what, why);
    r->state = ST_CONNECTING;
    redisAsyncDisconnect(ac);
}

static void on_primary_checked(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_redis_t *r = ac->data;
    redisReply *rep = reply;
    (void)privdata;
    if (!rep || r->ac != ac || r->state != ST_CHECKING)
        return; /* the connection is going */
    if (rep->type != REDIS_REPLY_INTEGER) {
        check_failed(r, ac, "primary check failed",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        return;
    }
    if (rep->integer > 0)
        qr_warn("redis: %s:%d is a primary this deployment has not used before: it may have lost "
                "writes, so the state of %lld projects is rebuilt from PostgreSQL",
                r->host, r->port, (long long)rep->integer);
    else if (rep->integer == 0)
        qr_info("redis: %s:%d is a primary this deployment has not used before (no project "
                "state on it yet)",
                r->host, r->port);
    mark_up(r);
}

/* "run_id:<40 hex>" in INFO server's text, copied to out; 0 or -1. */
static int find_run_id(const char *info, char *out, size_t outlen)
{
    const char *p = strstr(info, "run_id:");
    if (!p)
        return -1;
    p += 7;
    size_t n = strcspn(p, "\r\n");
    if (n == 0 || n >= outlen)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void on_info(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_redis_t *r = ac->data;
    redisReply *rep = reply;
    (void)privdata;
    if (!rep || r->ac != ac || r->state != ST_CHECKING)
        return;
    char run_id[64];
    if (rep->type != REDIS_REPLY_STRING || find_run_id(rep->str, run_id, sizeof run_id) < 0) {
        check_failed(r, ac, "INFO server", rep->type == REDIS_REPLY_ERROR ? rep->str : "no run_id");
        return;
    }
    if (r->node_fn) {
        r->node_fn(r, r->check_token, run_id, NULL, r->node_arg);
        return;
    }
    if (!r->check_lua) {
        mark_up(r);
        return;
    }
    int argc = 4 + r->check_nkeys;
    const char **argv = qr_xcalloc((size_t)argc, sizeof *argv);
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", r->check_nkeys);
    argv[0] = "EVAL";
    argv[1] = r->check_lua;
    argv[2] = nkeys;
    for (int i = 0; i < r->check_nkeys; i++)
        argv[3 + i] = r->check_keys[i];
    argv[argc - 1] = run_id;
    int rc = redisAsyncCommandArgv(ac, on_primary_checked, NULL, argc, argv, NULL);
    free(argv);
    if (rc != REDIS_OK)
        check_failed(r, ac, "primary check", "cannot queue it");
}

static void on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_redis_t *r = ac->data;
    redisReply *rep = reply;
    (void)privdata;
    if (!rep || r->ac != ac || r->state != ST_CHECKING)
        return;
    if (r->node_fn) { /* a cluster node: a replica serves CLUSTER SLOTS only */
        r->is_master = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                       rep->element[0]->type == REDIS_REPLY_STRING &&
                       !strcmp(rep->element[0]->str, "master");
        if (!r->is_master) {
            mark_up(r);
            return;
        }
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
               rep->element[0]->type != REDIS_REPLY_STRING ||
               strcmp(rep->element[0]->str, "master")) {
        check_failed(r, ac, "is not the primary (ROLE)",
                     rep->type == REDIS_REPLY_ERROR ? rep->str
                     : rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                             rep->element[0]->type == REDIS_REPLY_STRING
                         ? rep->element[0]->str
                         : "unexpected reply");
        return;
    }
    const char *argv[] = {"INFO", "server"};
    if (redisAsyncCommandArgv(ac, on_info, NULL, 2, argv, NULL) != REDIS_OK)
        check_failed(r, ac, "INFO server", "cannot queue it");
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    qr_redis_t *r = cac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return. */
        qr_warn("redis: connect to %s:%d failed: %s (retry in %d ms)", r->host, r->port,
                cac->c.errstr, r->backoff_ms);
        r->ac = NULL;
        r->state = ST_DOWN;
        schedule_reconnect(r);
        return;
    }
    if (!r->sentinel && !r->node_fn) {
        mark_up(r);
        return;
    }
    r->check_token++;
    r->is_master = 0;
    /* Sentinel's answer may be stale (a failover under way): take commands
     * only once the server says it is the primary, and the primary check
     * has run on it. */
    r->state = ST_CHECKING;
    const char *argv[] = {"ROLE"};
    redisAsyncContext *ac = r->ac;
    if (redisAsyncCommandArgv(ac, on_role, NULL, 1, argv, NULL) != REDIS_OK)
        check_failed(r, ac, "ROLE", "cannot queue it");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    qr_redis_t *r = cac->data;
    /* hiredis has failed every pending command and frees the context when
     * we return. */
    r->ac = NULL;
    r->state = ST_DOWN;
    if (r->closing)
        return;
    qr_warn("redis: connection to %s:%d lost: %s (retry in %d ms)", r->host, r->port,
            cac->err && cac->errstr ? cac->errstr : "closed", r->backoff_ms);
    schedule_reconnect(r);
}

/* Starts a non-blocking connect to a numeric address. */
static void connect_to(qr_redis_t *r, const char *addr)
{
    redisAsyncContext *ac = redisAsyncConnect(addr, r->port);
    if (!ac) {
        qr_error("redis: out of memory creating a context");
        goto fail;
    }
    if (ac->err) {
        qr_warn("redis: connect to %s:%d failed: %s (retry in %d ms)", r->host, r->port, ac->errstr,
                r->backoff_ms);
        redisAsyncFree(ac);
        goto fail;
    }
    ac->data = r;
    if (qr_hiredis_uv_attach(ac, r->loop) != REDIS_OK) {
        qr_warn("redis: cannot attach the connection to the loop");
        redisAsyncFree(ac);
        goto fail;
    }
    if (redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
        qr_warn("redis: cannot set connection callbacks");
        redisAsyncFree(ac);
        goto fail;
    }
    r->ac = ac;
    r->state = ST_CONNECTING;
    return;
fail:
    r->state = ST_DOWN;
    schedule_reconnect(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    qr_redis_t *r = req->data;
    char addr[64] = "";
    int rc = status;
    r->resolving = 0;
    if (rc == 0) {
        if (res->ai_family == AF_INET6)
            rc = uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, addr, sizeof addr);
        else
            rc = uv_ip4_name((const struct sockaddr_in *)res->ai_addr, addr, sizeof addr);
    }
    uv_freeaddrinfo(res);
    if (r->closing) {
        finish_close(r);
        return;
    }
    if (rc < 0) {
        qr_warn("redis: cannot resolve %s: %s (retry in %d ms)", r->host, uv_strerror(rc),
                r->backoff_ms);
        r->state = ST_DOWN;
        schedule_reconnect(r);
        return;
    }
    connect_to(r, addr);
}

static void connect_host(qr_redis_t *r);

static void on_located(const char *host, int port, void *arg)
{
    qr_redis_t *r = arg;
    r->locating = 0;
    if (r->closing)
        return;
    if (!host) {
        r->state = ST_DOWN;
        schedule_reconnect(r);
        return;
    }
    if (strcmp(r->host, host) || r->port != port)
        qr_info("redis: Sentinel names %s:%d the primary", host, port);
    free(r->host);
    r->host = qr_xstrdup(host);
    r->port = port;
    connect_host(r);
}

/* Starts one connect attempt: behind Sentinel, asks it for the primary
 * first. */
static void connect_now(qr_redis_t *r)
{
    if (r->closing)
        return;
    if (r->sentinel) {
        int rc = qr_sentinel_locate(r->sentinel, on_located, r);
        if (rc < 0) {
            qr_warn("redis: cannot ask Sentinel (%d)", rc);
            r->state = ST_DOWN;
            schedule_reconnect(r);
            return;
        }
        r->locating = 1;
        r->state = ST_CONNECTING;
        return;
    }
    connect_host(r);
}

/* Connects to r->host: resolves it without blocking the loop (hiredis
 * would call getaddrinfo itself) unless it is already an address. */
static void connect_host(qr_redis_t *r)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, r->host, buf) == 1 || inet_pton(AF_INET6, r->host, buf) == 1) {
        connect_to(r, r->host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->gai.data = r;
    int rc = uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->host, NULL, &hints);
    if (rc < 0) {
        qr_warn("redis: cannot resolve %s: %s", r->host, uv_strerror(rc));
        r->state = ST_DOWN;
        schedule_reconnect(r);
        return;
    }
    r->resolving = 1;
    r->state = ST_CONNECTING;
}

/* ---- public API ---- */

static int open_client(uv_loop_t *loop, const char *host, int port, qr_sentinel_t *sentinel,
                       int command_timeout_ms, qr_redis_t **out);

int qr_redis_open(uv_loop_t *loop, const char *host, int port, int command_timeout_ms,
                  qr_redis_t **out)
{
    if (!loop || !host || port <= 0 || port > 65535 || command_timeout_ms <= 0 || !out)
        return QR_EINVAL;
    return open_client(loop, host, port, NULL, command_timeout_ms, out);
}

int qr_redis_open_sentinel(uv_loop_t *loop, const char *sentinels, const char *master,
                           int command_timeout_ms, qr_redis_t **out)
{
    if (!loop || !sentinels || !master || !*master || command_timeout_ms <= 0 || !out)
        return QR_EINVAL;
    qr_sentinel_t *s = qr_sentinel_new(loop, sentinels, master);
    if (!s)
        return QR_EINVAL;
    return open_client(loop, master, 0, s, command_timeout_ms, out);
}

static int open_client(uv_loop_t *loop, const char *host, int port, qr_sentinel_t *sentinel,
                       int command_timeout_ms, qr_redis_t **out)
{
    qr_redis_t *r = qr_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->host = qr_xstrdup(host);
    r->port = port;
    r->sentinel = sentinel;
    r->timeout_ms = command_timeout_ms;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->scripts_tail = &r->scripts;
    r->reconnect.data = r->deadline.data = r->defer.data = r;
    /* uv_timer_init cannot fail on Linux; checked all the same. */
    uv_timer_t *timers[3] = {&r->reconnect, &r->deadline, &r->defer};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = uv_timer_init(loop, timers[i]);
        if (rc == 0)
            r->open_handles++;
    }
    if (rc < 0)
        goto fail;
    connect_now(r);
    *out = r;
    return 0;
fail:
    qr_error("redis: uv_timer_init: %s", uv_strerror(rc));
    /* r is freed by finish_close once the timers that did open are closed. */
    r->closing = 1;
    for (int i = 0; i < r->open_handles; i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
    if (r->sentinel) {
        r->open_handles++;
        qr_sentinel_close(r->sentinel, on_sentinel_closed, r);
    }
    if (r->open_handles == 0)
        finish_close(r);
    return rc;
}

void qr_redis_set_primary_check(qr_redis_t *r, const char *lua, int nkeys, const char *const *keys)
{
    free(r->check_lua);
    for (int i = 0; i < r->check_nkeys; i++)
        free(r->check_keys[i]);
    free(r->check_keys);
    r->check_lua = qr_xstrdup(lua);
    r->check_nkeys = nkeys;
    r->check_keys = qr_xcalloc(nkeys > 0 ? (size_t)nkeys : 1, sizeof *r->check_keys);
    for (int i = 0; i < nkeys; i++)
        r->check_keys[i] = qr_xstrdup(keys[i]);
}

qr_redis_script_t *qr_redis_script(qr_redis_t *r, const char *lua)
{
    qr_redis_script_t *s = qr_xcalloc(1, sizeof *s);
    s->lua = qr_xstrdup(lua);
    s->index = r->nscripts++;
    if (r->cluster)
        qr_cluster_add_script(r->cluster, lua);
    *r->scripts_tail = s;
    r->scripts_tail = &s->next;
    if (r->state == ST_UP && r->ac)
        load_script(r, s);
    return s;
}

/* Writes "<mark><n>\r\n" at p without printf; returns the end. */
static char *put_header(char *p, char mark, size_t n)
{
    char tmp[24];
    char *q = tmp + sizeof tmp;
    *--q = '\n';
    *--q = '\r';
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    *--q = mark;
    size_t len = (size_t)(tmp + sizeof tmp - q);
    memcpy(p, q, len);
    return p + len;
}

/* Queues a command with hiredis in the protocol's own form, written here
 * in one buffer sized in advance: hiredis's argv formatting (sdscatfmt
 * for every argument's header) cost more than building the whole script
 * call. argvlen NULL: each argument is a C string. */
static int send_argv(redisAsyncContext *ac, void *privdata, int argc, const char **argv,
                     const size_t *argvlen)
{
    size_t total = 24;
    for (int i = 0; i < argc; i++)
        total += (argvlen ? argvlen[i] : strlen(argv[i])) + 26; /* "$<20 digits>\r\n" "\r\n" */
    char *buf = qr_xmalloc(total);
    char *p = put_header(buf, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        p = put_header(p, '$', n);
        memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r';
        *p++ = '\n';
    }
    int rc = redisAsyncFormattedCommand(ac, on_reply, privdata, buf, (size_t)(p - buf));
    free(buf);
    return rc;
}

/* c was handed to hiredis: start its timeout. */
static void track(qr_redis_t *r, cmd_t *c)
{
    c->in_hiredis = 1;
    c->deadline = uv_now(r->loop) + (uint64_t)r->timeout_ms;
    c->sent_ns = uv_hrtime();
    list_push(&r->pending, c);
    if (r->pending.head == c)
        arm_deadline(r);
}

/* Queues c with hiredis and starts its timeout; on failure fails it later. */
static int submit(qr_redis_t *r, cmd_t *c, int argc, const char **argv, const size_t *argvlen)
{
    if (r->state != ST_UP || !r->ac) {
        fail_later(r, c, "redis not connected");
        return 0;
    }
    if (send_argv(r->ac, c, argc, argv, argvlen) != REDIS_OK) {
        fail_later(r, c, "redis connection is closing");
        return 0;
    }
    track(r, c);
    return 0;
}

/* Sends c as EVALSHA (by_sha) or EVAL with its stored keys and args. */
static int send_eval(qr_redis_t *r, cmd_t *c, int by_sha)
{
    int argc = 3 + c->nargs;
    const char **argv = qr_xmalloc((size_t)argc * sizeof *argv);
    size_t *lens = qr_xmalloc((size_t)argc * sizeof *lens);
    argv[0] = by_sha ? "EVALSHA" : "EVAL";
    argv[1] = by_sha ? c->script->sha : c->script->lua;
    argv[2] = c->numkeys;
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < c->nargs; i++) {
        argv[3 + i] = c->args[i];
        lens[3 + i] = c->arglens[i];
    }
    int rc = REDIS_ERR;
    if (r->ac && r->state == ST_UP)
        rc = send_argv(r->ac, c, argc, argv, lens);
    free(argv);
    free(lens);
    return rc;
}

int qr_redis_eval(qr_redis_t *r, qr_redis_script_t *s, int nkeys, int argc, const char **argv,
                  const size_t *argvlen, qr_redis_cb cb, void *arg)
{
    if (r->closing)
        return QR_EIO;
    if (!s || !cb || nkeys < 0 || argc < nkeys || (argc > 0 && !argv))
        return QR_EINVAL;
    if (r->cluster)
        return qr_cluster_send(r->cluster, s->index, nkeys, argc, argv, argvlen, cb, arg);
    cmd_t *c = cmd_new(r, cb, arg);
    c->script = s;
    snprintf(c->numkeys, sizeof c->numkeys, "%d", nkeys);
    c->nargs = argc;
    if (argc > 0) {
        c->args = qr_xmalloc((size_t)argc * sizeof *c->args);
        c->arglens = qr_xmalloc((size_t)argc * sizeof *c->arglens);
    }
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        c->args[i] = qr_xmalloc(n + 1);
        memcpy(c->args[i], argv[i], n);
        c->args[i][n] = '\0';
        c->arglens[i] = n;
    }
    if (r->state != ST_UP || !r->ac) {
        fail_later(r, c, "redis not connected");
        return 0;
    }
    /* Until the first SCRIPT LOAD answered we do not know the SHA1: send the
     * text (EVAL caches it on the server as well). */
    int by_sha = s->sha[0] != '\0';
    if (!by_sha)
        c->eval_retried = 1;
    if (send_eval(r, c, by_sha) != REDIS_OK) {
        fail_later(r, c, "redis connection is closing");
        return 0;
    }
    track(r, c);
    return 0;
}

int qr_redis_command(qr_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     qr_redis_cb cb, void *arg)
{
    if (r->closing)
        return QR_EIO;
    if (!cb || argc <= 0 || !argv)
        return QR_EINVAL;
    if (r->cluster)
        return qr_cluster_send(r->cluster, -1, 0, argc, argv, argvlen, cb, arg);
    return submit(r, cmd_new(r, cb, arg), argc, argv, argvlen);
}

const qr_latency_t *qr_redis_stats(const qr_redis_t *r)
{
    return &r->stats;
}

const qr_redis_redirects_t *qr_redis_redirects(const qr_redis_t *r)
{
    return &r->redirects;
}

int qr_redis_ready(const qr_redis_t *r)
{
    if (r->cluster)
        return qr_cluster_ready(r->cluster);
    if (r->state != ST_UP || !r->ac)
        return 0;
    for (const qr_redis_script_t *s = r->scripts; s; s = s->next)
        if (s->loaded_gen != r->gen)
            return 0;
    return 1;
}

/* ---- what a cluster's router asks of its nodes ---- */

void qr_redis_set_node_check(qr_redis_t *r, qr_redis_node_check_fn fn, void *arg)
{
    if (r->cluster) {
        qr_cluster_set_node_check(r->cluster, fn, arg);
        return;
    }
    r->node_fn = fn;
    r->node_arg = arg;
}

typedef struct check_cmd_s {
    qr_redis_cb cb;
    void *arg;
} check_cmd_t;

static void on_check_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    check_cmd_t *k = privdata;
    (void)ac;
    if (reply)
        k->cb(reply, NULL, k->arg);
    else
        k->cb(NULL, "redis connection lost", k->arg);
    free(k);
}

int qr_redis_check_command(qr_redis_t *r, unsigned token, int argc, const char **argv,
                           const size_t *argvlen, qr_redis_cb cb, void *arg)
{
    if (r->closing || r->state != ST_CHECKING || !r->ac || token != r->check_token)
        return QR_ECONFLCT;
    check_cmd_t *k = qr_xmalloc(sizeof *k);
    k->cb = cb;
    k->arg = arg;
    if (redisAsyncCommandArgv(r->ac, on_check_reply, k, argc, argv, argvlen) != REDIS_OK) {
        free(k);
        return QR_EIO;
    }
    return 0;
}

void qr_redis_check_done(qr_redis_t *r, unsigned token, int ok)
{
    if (r->closing || r->state != ST_CHECKING || !r->ac || token != r->check_token)
        return; /* a check of a connection that is gone */
    if (ok)
        mark_up(r);
    else
        check_failed(r, r->ac, "node check", "failed");
}

int qr_redis_primaries(const qr_redis_t *r, qr_redis_t **out, int max)
{
    return r->cluster ? qr_cluster_primaries(r->cluster, out, max) : 0;
}

int qr_redis_is_cluster(const qr_redis_t *r)
{
    return r->cluster != NULL;
}

int qr_redis_is_master(const qr_redis_t *r)
{
    return r->state == ST_UP && r->is_master;
}

void qr_redis_reconnect(qr_redis_t *r)
{
    if (r->closing || r->state != ST_UP || !r->ac)
        return;
    r->state = ST_CONNECTING;
    redisAsyncDisconnect(r->ac);
}

int qr_redis_open_cluster(uv_loop_t *loop, const char *nodes, int command_timeout_ms,
                          qr_redis_t **out)
{
    if (!loop || !nodes || command_timeout_ms <= 0 || !out)
        return QR_EINVAL;
    qr_redis_t *r = qr_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->host = qr_xstrdup("cluster");
    r->timeout_ms = command_timeout_ms;
    r->scripts_tail = &r->scripts;
    r->cluster = qr_cluster_new(loop, nodes, command_timeout_ms, &r->stats, &r->redirects);
    if (!r->cluster) {
        free(r->host);
        free(r);
        return QR_EINVAL;
    }
    *out = r;
    return 0;
}

static void finish_close(qr_redis_t *r)
{
    if (r->open_handles > 0 || r->resolving)
        return;
    free(r->check_lua);
    for (int i = 0; i < r->check_nkeys; i++)
        free(r->check_keys[i]);
    free(r->check_keys);
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    qr_redis_script_t *s = r->scripts;
    while (s) {
        qr_redis_script_t *next = s->next;
        free(s->lua);
        free(s);
        s = next;
    }
    free(r->host);
    free(r);
    if (cb)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    qr_redis_t *r = h->data;
    r->open_handles--;
    finish_close(r);
}

static void on_sentinel_closed(void *arg)
{
    qr_redis_t *r = arg;
    r->sentinel = NULL;
    r->locating = 0;
    r->open_handles--;
    finish_close(r);
}

static void on_cluster_closed(void *arg)
{
    qr_redis_t *r = arg;
    r->cluster = NULL;
    r->open_handles--;
    finish_close(r);
}

void qr_redis_close(qr_redis_t *r, void (*cb)(void *arg), void *arg)
{
    if (r->closing)
        return;
    r->closing = 1;
    r->close_cb = cb;
    r->close_arg = arg;
    int router = r->cluster != NULL;
    if (router) {
        r->open_handles++;
        qr_cluster_close(r->cluster, on_cluster_closed, r);
    }

    /* Fail everything the user waits for. Commands still held by hiredis are
     * freed when hiredis hands them back (NULL reply) in redisAsyncFree. */
    cmd_t *c;
    while ((c = r->pending.head)) {
        list_remove(&r->pending, c);
        c->done = 1;
        c->cb(NULL, "redis client closed", c->arg);
    }
    while ((c = r->failing.head)) {
        list_remove(&r->failing, c);
        c->done = 1;
        c->cb(NULL, c->err, c->arg);
        cmd_free(c);
    }
    if (r->ac) {
        /* Inside a hiredis callback this only marks the context; hiredis
         * frees it when the callback returns, before r can be freed (r goes
         * in a close callback, on a later loop phase). */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    r->state = ST_DOWN;
    if (r->resolving) {
        int rc = uv_cancel((uv_req_t *)&r->gai);
        if (rc < 0) /* already running: its callback comes anyway */
            qr_debug("redis: uv_cancel(getaddrinfo): %s", uv_strerror(rc));
    }
    if (router)
        return; /* a router has no timers of its own */
    uv_close((uv_handle_t *)&r->reconnect, on_handle_closed);
    uv_close((uv_handle_t *)&r->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&r->defer, on_handle_closed);
    if (r->sentinel) { /* a running locate is dropped: its callback never runs */
        r->open_handles++;
        qr_sentinel_close(r->sentinel, on_sentinel_closed, r);
    }
}
