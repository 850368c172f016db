/*
 * redis_cluster.c - a small Redis Cluster slot router over our clients
 * (redis_cluster.h). hiredis 0.14 has no cluster support.
 *
 * Nodes. Each primary of the slot map (and each seed) gets a client of its
 * own (qr_redis_open), which reconnects and loads the scripts. A client
 * that finds its server a replica takes commands (CLUSTER SLOTS answers
 * there) but is routed nothing; when the map later names it a primary (a
 * failover promoted it) it is made to connect again, so its check runs.
 * The check (qr_redis_set_node_check) runs before a primary takes commands,
 * with a hash tag of one of its slots, once the map is known.
 *
 * The map. CLUSTER SLOTS is asked on a short-lived connection of its own
 * (so discovery never waits for a node's check), of each known address in
 * turn, at start, then every 5 s, and every 300 ms while a slot has no
 * ready primary or after a MOVED or a lost connection.
 *
 * Requests. A request keeps a copy of its arguments until its callback ran,
 * so that a MOVED or ASK answer resends it (up to 5 times in a row). While
 * a slot migrates, a script whose keys are split between the two nodes (or,
 * on the importing node, not all there yet) is answered TRYAGAIN: it is
 * routed again after 25 ms, as long as the command timeout since it was
 * first sent allows; the migration finishes meanwhile (a failed request
 * would be a 503, and the reaper's would be lost for a round). A request
 * that cannot be sent fails from the next loop turn (503 upstream), never
 * inside the call that sent it. The client counts what was followed
 * (qr_redis_redirects).
 */
#include "redis_cluster.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hiredis_uv.h"
#include "log.h"
#include "util.h"

#define NSLOTS        16384
#define ASK_MS        1000 /* one node's connect and CLUSTER SLOTS answer */
#define REFRESH_MS    5000 /* the map's refresh when all is well */
#define HURRY_MS      300  /* ... when it is not */
#define MAX_REDIRECTS 5    /* MOVED/ASK answers followed for one request */
#define TRYAGAIN_MS   25   /* the pause before a TRYAGAIN answer's retry */

typedef struct node_s {
    qr_cluster_t *c;
    char *host;
    int port;
    qr_redis_t *r;
    qr_redis_script_t **scripts; /* by script number */
    int nscripts;
    int first_slot; /* a slot the map gives it, or -1 */
    /* a check waiting for the map */
    int check_waiting;
    unsigned check_token;
    char run_id[64];
} node_t;

typedef struct req_s req_t;
struct req_s {
    qr_cluster_t *c;
    req_t *next; /* in c->failing or c->waiting */
    int script;  /* -1: a command */
    int nkeys;
    int argc;
    char **argv;
    size_t *lens;
    qr_redis_cb cb;
    void *arg;
    int redirects;     /* MOVED/ASK followed since the last (re)route */
    uint64_t first_ms; /* uv_now() when first routed: TRYAGAIN's deadline */
    uint64_t sent_ns;  /* uv_hrtime() when first sent (the metrics' round trip) */
    const char *err;
};

struct qr_cluster_s {
    uv_loop_t *loop;
    int timeout_ms;
    qr_latency_t *stats;
    qr_redis_redirects_t *redirects; /* the client's counters */
    node_t **nodes;
    int nnodes;
    int16_t owner[NSLOTS]; /* node index, -1: unknown */
    int mapped;            /* a map was read at least once */
    char **luas;
    int nluas;
    qr_redis_node_check_fn check_fn;
    void *check_arg;
    /* discovery */
    redisAsyncContext *ac;
    int asking; /* node index asked */
    int asked;  /* addresses asked in this round */
    int hurry;  /* refresh soon */
    uv_timer_t refresh;
    uv_timer_t defer;
    req_t *failing, **failing_tail;
    uv_timer_t retry;               /* routes c->waiting again */
    req_t *waiting, **waiting_tail; /* answered TRYAGAIN, to route again */
    int closing;
    int open; /* timers and clients not yet closed */
    void (*done)(void *);
    void *done_arg;
};

/* ---- slots ---- */

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int qr_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) % NSLOTS;
    }
    return crc16(key, len) % NSLOTS;
}

/* A hash tag "{q:N}" whose slot is slot, in out. */
static void tag_for_slot(int slot, char *out, size_t outlen)
{
    for (unsigned n = 0;; n++) {
        char t[24];
        int len = snprintf(t, sizeof t, "q:%u", n);
        if (crc16(t, (size_t)len) % NSLOTS == slot) {
            snprintf(out, outlen, "{%s}", t);
            return;
        }
    }
}

/* ---- nodes ---- */

static void on_node_check(qr_redis_t *r, unsigned token, const char *run_id, const char *tag,
                          void *arg);

static void run_check(qr_cluster_t *c, node_t *n)
{
    n->check_waiting = 0;
    if (!c->check_fn) {
        qr_redis_check_done(n->r, n->check_token, 1);
        return;
    }
    char tag[40];
    if (n->first_slot >= 0)
        tag_for_slot(n->first_slot, tag, sizeof tag);
    c->check_fn(n->r, n->check_token, n->run_id, n->first_slot >= 0 ? tag : NULL, c->check_arg);
}

static void on_node_check(qr_redis_t *r, unsigned token, const char *run_id, const char *tag,
                          void *arg)
{
    node_t *n = arg;
    (void)r;
    (void)tag;
    n->check_token = token;
    snprintf(n->run_id, sizeof n->run_id, "%s", run_id);
    n->check_waiting = 1;
    /* The check needs a slot of the node: it runs once the map says which
     * it serves (apply_map), or now if the map is known. */
    if (n->c->mapped)
        run_check(n->c, n);
}

static int find_node(qr_cluster_t *c, const char *host, int port)
{
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i]->port == port && !strcmp(c->nodes[i]->host, host))
            return i;
    return -1;
}

static int add_node(qr_cluster_t *c, const char *host, int port)
{
    int i = find_node(c, host, port);
    if (i >= 0)
        return i;
    if (c->nnodes >= INT16_MAX)
        return -1;
    node_t *n = qr_xcalloc(1, sizeof *n);
    n->c = c;
    n->host = qr_xstrdup(host);
    n->port = port;
    n->first_slot = -1;
    if (qr_redis_open(c->loop, host, port, c->timeout_ms, &n->r) < 0) {
        free(n->host);
        free(n);
        return -1;
    }
    c->open++;
    qr_redis_set_node_check(n->r, on_node_check, n);
    n->scripts = qr_xcalloc((size_t)c->nluas + 1, sizeof *n->scripts);
    for (int k = 0; k < c->nluas; k++)
        n->scripts[k] = qr_redis_script(n->r, c->luas[k]);
    n->nscripts = c->nluas;
    c->nodes = qr_xrealloc(c->nodes, (size_t)(c->nnodes + 1) * sizeof *c->nodes);
    c->nodes[c->nnodes] = n;
    qr_info("redis cluster: node %s:%d", host, port);
    return c->nnodes++;
}

/* ---- the map ---- */

static void on_refresh(uv_timer_t *t);

static void arm_refresh(qr_cluster_t *c, uint64_t ms)
{
    if (c->closing)
        return;
    int rc = uv_timer_start(&c->refresh, on_refresh, ms, 0);
    if (rc < 0)
        qr_error("redis cluster: refresh timer: %s", uv_strerror(rc));
}

/* Soon: a MOVED answer, a lost connection, a slot without a primary. */
static void hurry(qr_cluster_t *c)
{
    if (c->hurry || c->ac)
        return;
    c->hurry = 1;
    arm_refresh(c, HURRY_MS);
}

static void apply_map(qr_cluster_t *c, redisReply *r)
{
    int16_t owner[NSLOTS];
    for (int s = 0; s < NSLOTS; s++)
        owner[s] = -1;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        int port = (int)e->element[2]->element[1]->integer;
        if (lo < 0 || hi >= NSLOTS || lo > hi || !*host || port <= 0 || port > 65535)
            continue;
        int k = add_node(c, host, port);
        if (k < 0)
            continue;
        for (long long s = lo; s <= hi; s++)
            owner[s] = (int16_t)k;
    }
    for (int k = 0; k < c->nnodes; k++)
        c->nodes[k]->first_slot = -1;
    int moved = 0;
    for (int s = 0; s < NSLOTS; s++) {
        if (owner[s] != c->owner[s])
            moved++;
        c->owner[s] = owner[s];
        if (owner[s] >= 0 && c->nodes[owner[s]]->first_slot < 0)
            c->nodes[owner[s]]->first_slot = s;
    }
    if (moved)
        qr_info("redis cluster: slot map read (%d slots moved)", moved);
    c->mapped = 1;
    for (int k = 0; k < c->nnodes; k++) {
        node_t *n = c->nodes[k];
        if (n->check_waiting)
            run_check(c, n);
        else if (n->first_slot >= 0 && qr_redis_ready(n->r) && !qr_redis_is_master(n->r)) {
            /* A replica the map now names a primary (a failover): connect
             * again, so that it is checked. */
            qr_info("redis cluster: %s:%d is a primary now", n->host, n->port);
            qr_redis_reconnect(n->r);
        }
    }
}

static void on_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    qr_cluster_t *c = privdata;
    redisReply *r = reply;
    if (!r || c->ac != ac)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        apply_map(c, r);
        c->asked = c->nnodes; /* done for this round */
    } else {
        qr_warn("redis cluster: CLUSTER SLOTS on %s:%d: %s", c->nodes[c->asking]->host,
                c->nodes[c->asking]->port, r->type == REDIS_REPLY_ERROR ? r->str : "no slots");
    }
    redisAsyncDisconnect(ac); /* once this callback returns */
}

static void on_ask_connected(const redisAsyncContext *ac, int status)
{
    qr_cluster_t *c = ac->data;
    if (status == REDIS_OK || c->ac != ac)
        return;
    c->ac = NULL; /* hiredis frees it when we return */
    arm_refresh(c, 0);
}

static void on_ask_disconnected(const redisAsyncContext *ac, int status)
{
    qr_cluster_t *c = ac->data;
    (void)status;
    if (c->ac != ac)
        return;
    c->ac = NULL;
    arm_refresh(c, 0);
}

/* Asks node k for the map; 0, or -1 (try the next). */
static int ask_slots(qr_cluster_t *c, int k)
{
    redisAsyncContext *ac = redisAsyncConnect(c->nodes[k]->host, c->nodes[k]->port);
    if (!ac)
        return -1;
    if (ac->err) {
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = c;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    if (qr_hiredis_uv_attach(ac, c->loop) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_ask_connected) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_ask_disconnected) != REDIS_OK ||
        redisAsyncCommandArgv(ac, on_slots, c, 2, argv, NULL) != REDIS_OK) {
        redisAsyncFree(ac);
        return -1;
    }
    c->ac = ac;
    c->asking = k;
    arm_refresh(c, ASK_MS);
    return 0;
}

static int all_ready(const qr_cluster_t *c)
{
    if (!c->mapped)
        return 0;
    for (int s = 0; s < NSLOTS; s++)
        if (c->owner[s] < 0 || !qr_redis_is_master(c->nodes[c->owner[s]]->r))
            return 0;
    return 1;
}

/* The refresh timer: the next address of a round, the deadline of an ask,
 * or the start of a round. */
static void on_refresh(uv_timer_t *t)
{
    qr_cluster_t *c = t->data;
    if (c->closing)
        return;
    if (c->ac) { /* the ask's deadline passed */
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    while (c->asked < c->nnodes) {
        int k = (c->asking + 1) % c->nnodes;
        c->asking = k;
        c->asked++;
        if (ask_slots(c, k) == 0)
            return;
    }
    /* The round is over: the next one starts after a while. */
    c->asked = 0;
    c->hurry = 0;
    arm_refresh(c, all_ready(c) ? REFRESH_MS : HURRY_MS);
}

/* ---- requests ---- */

static void req_free(req_t *q)
{
    for (int i = 0; i < q->argc; i++)
        free(q->argv[i]);
    free(q->argv);
    free(q->lens);
    free(q);
}

static void on_defer(uv_timer_t *t)
{
    qr_cluster_t *c = t->data;
    req_t *q;
    while (!c->closing && (q = c->failing)) {
        c->failing = q->next;
        if (!c->failing)
            c->failing_tail = &c->failing;
        q->cb(NULL, q->err, q->arg);
        req_free(q);
    }
}

static void fail_later(qr_cluster_t *c, req_t *q, const char *err)
{
    q->err = err;
    q->next = NULL;
    *c->failing_tail = q;
    c->failing_tail = &q->next;
    c->stats->errors++;
    int rc = uv_timer_start(&c->defer, on_defer, 0, 0);
    if (rc < 0)
        qr_error("redis cluster: defer timer: %s", uv_strerror(rc));
}

static void on_reply(redisReply *r, const char *err, void *arg);

/* Sends q to node k, after ASKING when asking. */
static void send_to(qr_cluster_t *c, req_t *q, int k, int asking)
{
    node_t *n = c->nodes[k];
    if (!q->sent_ns)
        q->sent_ns = uv_hrtime();
    if (asking) {
        const char *a[] = {"ASKING"};
        /* Its answer is not needed: the command after it says all. */
        if (qr_redis_command(n->r, 1, a, NULL, on_reply, NULL) < 0) {
            fail_later(c, q, "redis cluster: closing");
            return;
        }
    }
    int rc;
    if (q->script >= 0)
        rc = qr_redis_eval(n->r, n->scripts[q->script], q->nkeys, q->argc, (const char **)q->argv,
                           q->lens, on_reply, q);
    else
        rc = qr_redis_command(n->r, q->argc, (const char **)q->argv, q->lens, on_reply, q);
    if (rc < 0)
        fail_later(c, q, "redis cluster: closing");
}

static void route(qr_cluster_t *c, req_t *q)
{
    int slot = -1;
    if (q->script >= 0 && q->nkeys > 0)
        slot = qr_cluster_slot(q->argv[0], q->lens[0]);
    else if (q->script < 0 && q->argc > 1)
        slot = qr_cluster_slot(q->argv[1], q->lens[1]);
    int k = -1;
    if (slot >= 0) {
        k = c->owner[slot];
    } else { /* no key: any primary that is up */
        for (int s = 0; s < NSLOTS && k < 0; s += 1)
            if (c->owner[s] >= 0 && qr_redis_is_master(c->nodes[c->owner[s]]->r))
                k = c->owner[s];
    }
    if (k < 0 || !qr_redis_ready(c->nodes[k]->r)) {
        hurry(c);
        fail_later(c, q, "redis cluster: no primary ready for the slot");
        return;
    }
    send_to(c, q, k, 0);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node's index, or -1. */
static int redirect_target(qr_cluster_t *c, const char *s, int *slot)
{
    const char *sp = strchr(s, ' ');
    if (!sp)
        return -1;
    *slot = atoi(sp + 1);
    const char *addr = strchr(sp + 1, ' ');
    if (!addr)
        return -1;
    addr++;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= 64)
        return -1;
    char host[64];
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535 || *slot < 0 || *slot >= NSLOTS)
        return -1;
    return add_node(c, host, port);
}

static void on_retry(uv_timer_t *t)
{
    qr_cluster_t *c = t->data;
    req_t *q = c->waiting;
    c->waiting = NULL;
    c->waiting_tail = &c->waiting;
    while (q && !c->closing) {
        req_t *next = q->next;
        route(c, q);
        q = next;
    }
}

/* q was answered TRYAGAIN: it waits TRYAGAIN_MS and is routed again (its
 * slot's owner may have changed meanwhile). */
static void retry_later(qr_cluster_t *c, req_t *q)
{
    c->redirects->tryagain++;
    q->redirects = 0;
    q->next = NULL;
    *c->waiting_tail = q;
    c->waiting_tail = &q->next;
    if (uv_is_active((uv_handle_t *)&c->retry))
        return;
    int rc = uv_timer_start(&c->retry, on_retry, TRYAGAIN_MS, 0);
    if (rc < 0)
        qr_error("redis cluster: retry timer: %s", uv_strerror(rc));
}

static void on_reply(redisReply *r, const char *err, void *arg)
{
    req_t *q = arg;
    if (!q)
        return; /* ASKING's answer */
    qr_cluster_t *c = q->c;
    if (r && r->type == REDIS_REPLY_ERROR && r->str && !c->closing &&
        !strncmp(r->str, "TRYAGAIN", 8) &&
        uv_now(c->loop) + TRYAGAIN_MS < q->first_ms + (uint64_t)c->timeout_ms) {
        retry_later(c, q);
        return;
    }
    if (r && r->type == REDIS_REPLY_ERROR && r->str && !c->closing &&
        q->redirects < MAX_REDIRECTS &&
        (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4))) {
        int slot, ask = r->str[0] == 'A';
        int k = redirect_target(c, r->str, &slot);
        q->redirects++;
        if (k >= 0 && qr_redis_ready(c->nodes[k]->r)) {
            if (ask) {
                c->redirects->ask++;
            } else {
                c->redirects->moved++;
                c->owner[slot] = (int16_t)k;
                hurry(c);
            }
            send_to(c, q, k, ask);
            return;
        }
        hurry(c);
    }
    if (!r || (r->type == REDIS_REPLY_ERROR && r->str &&
               (!strncmp(r->str, "CLUSTERDOWN", 11) || !strncmp(r->str, "MOVED", 5))))
        hurry(c); /* a lost node, a failover under way */
    /* The client's figures, as a single Redis counts them: a round trip
     * from the first send, redirections and retries included. */
    if (r && r->type != REDIS_REPLY_ERROR)
        qr_latency_observe(c->stats, uv_hrtime() - q->sent_ns);
    else
        c->stats->errors++;
    q->cb(r, err, q->arg);
    req_free(q);
}

int qr_cluster_send(qr_cluster_t *c, int script, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, qr_redis_cb cb, void *arg)
{
    if (c->closing)
        return QR_EIO;
    req_t *q = qr_xcalloc(1, sizeof *q);
    q->c = c;
    q->script = script;
    q->nkeys = nkeys;
    q->argc = argc;
    q->cb = cb;
    q->arg = arg;
    q->first_ms = uv_now(c->loop);
    q->argv = qr_xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *q->argv);
    q->lens = qr_xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *q->lens);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        q->argv[i] = qr_xmalloc(n + 1);
        memcpy(q->argv[i], argv[i], n);
        q->argv[i][n] = '\0';
        q->lens[i] = n;
    }
    route(c, q);
    return 0;
}

/* ---- the rest of the API ---- */

void qr_cluster_add_script(qr_cluster_t *c, const char *lua)
{
    c->luas = qr_xrealloc(c->luas, (size_t)(c->nluas + 1) * sizeof *c->luas);
    c->luas[c->nluas++] = qr_xstrdup(lua);
    for (int k = 0; k < c->nnodes; k++) {
        node_t *n = c->nodes[k];
        n->scripts = qr_xrealloc(n->scripts, (size_t)c->nluas * sizeof *n->scripts);
        n->scripts[n->nscripts++] = qr_redis_script(n->r, lua);
    }
}

void qr_cluster_set_node_check(qr_cluster_t *c, qr_redis_node_check_fn fn, void *arg)
{
    c->check_fn = fn;
    c->check_arg = arg;
}

int qr_cluster_primaries(const qr_cluster_t *c, qr_redis_t **out, int max)
{
    int n = 0;
    for (int k = 0; k < c->nnodes && n < max; k++)
        if (c->nodes[k]->first_slot >= 0 && qr_redis_is_master(c->nodes[k]->r))
            out[n++] = c->nodes[k]->r;
    return n;
}

int qr_cluster_ready(const qr_cluster_t *c)
{
    return !c->closing && all_ready(c);
}

static int parse_nodes(qr_cluster_t *c, const char *list)
{
    const char *p = list;
    int n = 0;
    if (!list || !*list)
        return -1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[80];
        if (len == 0 || len >= sizeof item)
            return -1;
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strrchr(item, ':');
        if (!colon || colon == item)
            return -1;
        *colon = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        unsigned char buf[sizeof(struct in6_addr)];
        if (*end || port <= 0 || port > 65535 ||
            (inet_pton(AF_INET, item, buf) != 1 && inet_pton(AF_INET6, item, buf) != 1))
            return -1;
        if (c && add_node(c, item, (int)port) < 0)
            return -1;
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

qr_cluster_t *qr_cluster_new(uv_loop_t *loop, const char *nodes, int timeout_ms,
                             qr_latency_t *stats, qr_redis_redirects_t *redirects)
{
    if (parse_nodes(NULL, nodes) <= 0)
        return NULL;
    qr_cluster_t *c = qr_xcalloc(1, sizeof *c);
    c->loop = loop;
    c->timeout_ms = timeout_ms;
    c->stats = stats;
    c->redirects = redirects;
    c->failing_tail = &c->failing;
    c->waiting_tail = &c->waiting;
    for (int s = 0; s < NSLOTS; s++)
        c->owner[s] = -1;
    int rc = uv_timer_init(loop, &c->refresh);
    if (rc == 0) {
        c->open++;
        rc = uv_timer_init(loop, &c->defer);
        if (rc == 0) {
            c->open++;
            rc = uv_timer_init(loop, &c->retry);
            if (rc == 0)
                c->open++;
        }
    }
    QR_ASSERT(rc == 0); /* uv_timer_init cannot fail on Linux */
    c->refresh.data = c->defer.data = c->retry.data = c;
    parse_nodes(c, nodes);
    c->asking = -1;
    arm_refresh(c, 0);
    return c;
}

static void part_closed(qr_cluster_t *c)
{
    if (--c->open > 0)
        return;
    for (int k = 0; k < c->nnodes; k++) {
        free(c->nodes[k]->host);
        free(c->nodes[k]->scripts);
        free(c->nodes[k]);
    }
    free(c->nodes);
    for (int i = 0; i < c->nluas; i++)
        free(c->luas[i]);
    free(c->luas);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done)
        done(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void on_node_closed(void *arg)
{
    part_closed(arg);
}

void qr_cluster_close(qr_cluster_t *c, void (*done)(void *arg), void *arg)
{
    c->closing = 1;
    c->done = done;
    c->done_arg = arg;
    req_t *q;
    while ((q = c->failing)) {
        c->failing = q->next;
        q->cb(NULL, q->err, q->arg);
        req_free(q);
    }
    c->failing_tail = &c->failing;
    while ((q = c->waiting)) {
        c->waiting = q->next;
        q->cb(NULL, "redis cluster: closing", q->arg);
        req_free(q);
    }
    c->waiting_tail = &c->waiting;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&c->refresh, on_timer_closed);
    uv_close((uv_handle_t *)&c->defer, on_timer_closed);
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
    /* Each node's client fails what it holds (their callbacks free the
     * requests) and closes. */
    for (int k = 0; k < c->nnodes; k++)
        qr_redis_close(c->nodes[k]->r, on_node_closed, c);
}
