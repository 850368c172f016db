/*
 * lease.c - the lease engine over Redis (see lease.h for the key layout).
 *
 * Each operation is one Lua script call; the scripts are registered with the
 * Redis client, which loads them on every connect and falls back to EVAL on
 * NOSCRIPT. Their text is in lease_scripts.c.
 */
#include "lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease_scripts.h"
#include "log.h"
#include "util.h"

struct qr_lease_engine_s {
    qr_redis_t *redis;
    qr_redis_script_t *script[QR_LEASE_NSCRIPTS]; /* by qr_lease_script_id_t */
    int sweep_wanted;           /* cluster: register the projects of every primary again
                                   (registry_sweep), at the next reap */
    int corked;                 /* qr_lease_cork depth: steps are queued while > 0 */
    struct step_s *queue;       /* the queued steps, oldest first */
    struct step_s **queue_tail; /* where the next queued step goes */
    void (*before)(void *), (*after)(void *); /* around one call's step answers */
    void *hook_arg;
};

const char *qr_lease_script_text(const char *name)
{
    for (int i = 0; i < QR_LEASE_NSCRIPTS; i++)
        if (!strcmp(qr_lease_scripts[i].name, name))
            return qr_lease_scripts[i].lua;
    return NULL;
}

/* The registry of projects the reaper visits (see send_registered). */
#define REGISTRY "quorum:projects"
/* The run_id of the primary that the projects' state was last checked
 * against (behind Sentinel). */
#define PRIMARY "quorum:primary"

/* The primary check behind Sentinel (qr_redis_set_primary_check). KEYS:
 * PRIMARY, REGISTRY; ARGV: the primary's run_id. A primary whose run_id is
 * not the one recorded is one this deployment has not checked: a replica
 * promoted by a failover (or a restarted server) that may lack writes the
 * old primary acknowledged. Then every registered project's state is
 * dropped, as a FLUSHALL would, except its fencing counter (the rebuild
 * lifts it past PostgreSQL's tokens anyway), so the next grant rebuilds it
 * from PostgreSQL; and the run_id is recorded, in the same script, so only
 * the first broker to reach the new primary drops anything. Returns the
 * number of projects dropped, or -1 when the primary was checked already.
 * It names the projects' keys itself (from the registry), which only a
 * single Redis allows: it is never run on a cluster. */
static char *primary_check_lua(void)
{
    size_t cap = 4096, len = 0;
    char *lua = qr_xmalloc(cap);
    len += (size_t)snprintf(lua + len, cap - len, "%s",
                            "if redis.call('GET', KEYS[1]) == ARGV[1] then return -1 end\n"
                            "local n = 0\n"
                            "for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
                            "  local k = '{p:' .. p .. '}:'\n"
                            "  redis.call('DEL'");
    for (const char *const *k = qr_lease_scripts[QR_LEASE_SCRIPT_DROP].keys; *k; k++)
        if (strcmp(*k, "fence"))
            len += (size_t)snprintf(lua + len, cap - len, ", k .. '%s'", *k);
    len += (size_t)snprintf(lua + len, cap - len, "%s",
                            ")\n"
                            "  n = n + 1\n"
                            "end\n"
                            "redis.call('SET', KEYS[1], ARGV[1])\n"
                            "return n\n");
    QR_ASSERT(len < cap);
    return lua;
}

/* The primary check on a cluster (qr_redis_set_node_check): as the
 * Sentinel one, per node, with plain commands (a script may touch one slot
 * only). The node's stamp, <tag>:primary (a slot of the node), holds the
 * run_id it was last checked with; when it differs, every project whose
 * state the node holds (SCAN for {p:*}:built, the first key a build writes
 * after the fence) loses it but its fence, one DEL of its keys (one slot),
 * and then the stamp is written. Two brokers may both drop: as two
 * FLUSHALLs, which the rebuild survives. */
static char *project_key(int64_t project, const char *name);
static int reply_failed(redisReply *r, const char *err, const char *what);

typedef struct node_check_s {
    qr_lease_engine_t *e;
    qr_redis_t *node;
    unsigned token;
    char run_id[64];
    char *stamp;
    int outstanding; /* commands out */
    int scanning;    /* SCAN not at its end */
    int failed;
    int dropped;
} node_check_t;

static void node_check_step(node_check_t *k);

static void node_check_end(node_check_t *k, int ok)
{
    qr_redis_check_done(k->node, k->token, ok);
    free(k->stamp);
    free(k);
}

static void on_node_cmd(redisReply *r, const char *err, void *arg)
{
    node_check_t *k = arg;
    k->outstanding--;
    if (reply_failed(r, err, "node check"))
        k->failed = 1;
    node_check_step(k);
}

/* The registry sweep: after a primary new to the deployment took over,
 * the registry (one key, on one node) may have lost projects that other
 * nodes still hold: at the next reap (the broker reaps only while every
 * slot has a ready primary) every primary is scanned for the projects
 * whose state it holds ({p:*}:built), and each is registered again; a
 * failed step asks for another sweep. */
typedef struct sweep_s {
    qr_lease_engine_t *e;
    qr_redis_t *node;
} sweep_t;

static void on_swept_one(redisReply *r, const char *err, void *arg)
{
    qr_lease_engine_t *e = arg;
    if (reply_failed(r, err, "project registry"))
        e->sweep_wanted = 1;
}

static void sweep_from(sweep_t *w, const char *cursor);

static void on_sweep_scan(redisReply *r, const char *err, void *arg)
{
    sweep_t *w = arg;
    if (reply_failed(r, err, "registry sweep") || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        w->e->sweep_wanted = 1;
        free(w);
        return;
    }
    redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            continue;
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, (int64_t)strtoll(keys->element[i]->str + 3, NULL, 10));
        const char *argv[] = {"SADD", REGISTRY, id};
        if (qr_redis_command(w->e->redis, 3, argv, NULL, on_swept_one, w->e) < 0)
            break; /* closing */
    }
    if (strcmp(r->element[0]->str, "0"))
        sweep_from(w, r->element[0]->str);
    else
        free(w);
}

static void sweep_from(sweep_t *w, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", "{p:*}:built", "COUNT", "1000"};
    if (qr_redis_command(w->node, 6, argv, NULL, on_sweep_scan, w) < 0)
        free(w);
}

static void registry_sweep(qr_lease_engine_t *e)
{
    e->sweep_wanted = 0;
    qr_redis_t *nodes[64];
    int n = qr_redis_primaries(e->redis, nodes, 64);
    for (int i = 0; i < n; i++) {
        sweep_t *w = qr_xcalloc(1, sizeof *w);
        w->e = e;
        w->node = nodes[i];
        sweep_from(w, "0");
    }
}

static void on_node_stamped(redisReply *r, const char *err, void *arg)
{
    node_check_t *k = arg;
    qr_lease_engine_t *e = k->e;
    int ok = !reply_failed(r, err, "node stamp");
    if (ok && k->dropped)
        qr_warn("redis: a cluster primary this deployment has not used before (it may have lost "
                "writes): the state of %d projects on it is rebuilt from PostgreSQL",
                k->dropped);
    node_check_end(k, ok);
    if (ok)
        e->sweep_wanted = 1;
}

static void on_node_scan(redisReply *r, const char *err, void *arg);

static int node_send(node_check_t *k, int argc, const char **argv, qr_redis_cb cb)
{
    int rc = qr_redis_check_command(k->node, k->token, argc, argv, NULL, cb, k);
    if (rc == 0)
        k->outstanding++;
    else
        k->failed = 1;
    return rc;
}

static void scan_from(node_check_t *k, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", "{p:*}:built", "COUNT", "1000"};
    k->scanning = 1;
    if (node_send(k, 6, argv, on_node_scan) < 0)
        k->scanning = 0;
}

static void on_node_scan(redisReply *r, const char *err, void *arg)
{
    node_check_t *k = arg;
    k->outstanding--;
    k->scanning = 0;
    if (reply_failed(r, err, "node scan") || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        k->failed = 1;
        node_check_step(k);
        return;
    }
    redisReply *keys = r->element[1];
    const qr_lease_script_def_t *drop = &qr_lease_scripts[QR_LEASE_SCRIPT_DROP];
    for (size_t i = 0; i < keys->elements && !k->failed; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            continue;
        int64_t project = strtoll(keys->element[i]->str + 3, NULL, 10); /* "{p:" */
        char *argv[QR_LEASE_MAX_KEYS + 1];
        int argc = 0;
        argv[argc++] = qr_xstrdup("DEL");
        for (const char *const *n = drop->keys; *n; n++)
            if (strcmp(*n, "fence"))
                argv[argc++] = project_key(project, *n);
        node_send(k, argc, (const char **)argv, on_node_cmd);
        k->dropped++;
        for (int j = 0; j < argc; j++)
            free(argv[j]);
    }
    if (!k->failed && strcmp(r->element[0]->str, "0"))
        scan_from(k, r->element[0]->str);
    node_check_step(k);
}

static void on_node_stamp(redisReply *r, const char *err, void *arg)
{
    node_check_t *k = arg;
    k->outstanding--;
    if (reply_failed(r, err, "node stamp")) {
        k->failed = 1;
        node_check_step(k);
        return;
    }
    if (r->type == REDIS_REPLY_STRING && !strcmp(r->str, k->run_id)) {
        node_check_end(k, 1); /* checked with this primary already */
        return;
    }
    scan_from(k, "0");
    node_check_step(k);
}

/* Once nothing is out: fail, or write the stamp. */
static void node_check_step(node_check_t *k)
{
    if (k->outstanding > 0 || k->scanning)
        return;
    if (k->failed) {
        node_check_end(k, 0);
        return;
    }
    const char *argv[] = {"SET", k->stamp, k->run_id};
    if (qr_redis_check_command(k->node, k->token, 3, argv, NULL, on_node_stamped, k) < 0)
        node_check_end(k, 0);
}

static void node_check(qr_redis_t *node, unsigned token, const char *run_id, const char *tag,
                       void *arg)
{
    if (!tag) { /* the node serves no slot: it holds no project */
        qr_redis_check_done(node, token, 1);
        return;
    }
    node_check_t *k = qr_xcalloc(1, sizeof *k);
    k->e = arg;
    k->node = node;
    k->token = token;
    snprintf(k->run_id, sizeof k->run_id, "%s", run_id);
    k->stamp = qr_xasprintf("%s:primary", tag);
    const char *argv[] = {"GET", k->stamp};
    if (node_send(k, 2, argv, on_node_stamp) < 0)
        node_check_end(k, 0);
}

qr_lease_engine_t *qr_lease_engine_new(qr_redis_t *redis)
{
    qr_lease_engine_t *e = qr_xcalloc(1, sizeof *e);
    e->redis = redis;
    e->queue_tail = &e->queue;
    for (int i = 0; i < QR_LEASE_NSCRIPTS; i++)
        e->script[i] = qr_redis_script(redis, qr_lease_scripts[i].lua);
    char *lua = primary_check_lua();
    const char *keys[] = {PRIMARY, REGISTRY};
    qr_redis_set_primary_check(redis, lua, 2, keys);
    free(lua);
    if (qr_redis_is_cluster(redis))
        qr_redis_set_node_check(redis, node_check, e);
    return e;
}

void qr_lease_engine_free(qr_lease_engine_t *e)
{
    QR_ASSERT(!e->queue); /* never freed while corked with steps queued */
    free(e);
}

/* One pending script call: what to call back, and its keys and arguments
 * (kept until the reply, for a call sent only once the project is
 * registered). */
typedef struct op_s {
    qr_lease_engine_t *e;
    int64_t project;
    void (*cb)(void);
    void *arg;
    int limited;             /* grant: cb is a qr_lease_grant_limited_cb */
    qr_lease_script_id_t id; /* the script */
    int nkeys;               /* args[0..nkeys) are its keys */
    qr_redis_cb then_cb;     /* registered: the reply callback of the script */
    int nargs, cap;
    char **args;
} op_t;

static op_t *op_new(qr_lease_engine_t *e, int64_t project, void (*cb)(void), void *arg)
{
    op_t *op = qr_xcalloc(1, sizeof *op);
    op->e = e;
    op->project = project;
    op->cb = cb;
    op->arg = arg;
    return op;
}

static void op_arg(op_t *op, char *s)
{
    if (op->nargs == op->cap) {
        op->cap = op->cap ? 2 * op->cap : 32;
        op->args = qr_xrealloc(op->args, (size_t)op->cap * sizeof *op->args);
    }
    op->args[op->nargs++] = s;
}

static void op_free(op_t *op)
{
    for (int i = 0; i < op->nargs; i++)
        free(op->args[i]);
    free(op->args);
    free(op);
}

/* The name of one of the project's keys: {p:P}:name. */
static char *project_key(int64_t project, const char *name)
{
    return qr_xasprintf("{p:%" PRId64 "}:%s", project, name);
}

/* The same from the prefix {p:P}: formatted once per script call, not
 * once per key. */
static char *prefixed_key(const char *prefix, size_t plen, const char *name)
{
    size_t nlen = strlen(name);
    char *k = qr_xmalloc(plen + nlen + 1);
    memcpy(k, prefix, plen);
    memcpy(k + plen, name, nlen + 1);
    return k;
}

/* A call of script id: the op, with the script's keys as its first
 * arguments (the caller appends the rest). */
static op_t *op_script(qr_lease_engine_t *e, int64_t project, qr_lease_script_id_t id,
                       void (*cb)(void), void *arg)
{
    op_t *op = op_new(e, project, cb, arg);
    op->id = id;
    char prefix[40];
    int plen = snprintf(prefix, sizeof prefix, "{p:%" PRId64 "}:", project);
    for (const char *const *k = qr_lease_scripts[id].keys; *k; k++, op->nkeys++)
        op_arg(op, prefixed_key(prefix, (size_t)plen, *k));
    return op;
}

static int64_t reply_int(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static int reply_failed(redisReply *r, const char *err, const char *what)
{
    if (!r) {
        qr_warn("redis %s failed: %s", what, err ? err : "no reply");
        return 1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        qr_warn("redis %s failed: %s", what, r->str);
        return 1;
    }
    return 0;
}

static int eval_op(op_t *op, qr_redis_cb cb)
{
    return qr_redis_eval(op->e->redis, op->e->script[op->id], op->nkeys, op->nargs,
                         (const char **)op->args, NULL, cb, op);
}

/* Sends op's script call; cb gets the reply and frees op. On failure op is
 * freed and cb never runs. */
static int send_op(op_t *op, qr_redis_cb cb)
{
    int rc = eval_op(op, cb);
    if (rc < 0)
        op_free(op);
    return rc;
}

/* The registry of projects the reaper visits. It lies outside every
 * project's slot, so no script touches it (on Redis Cluster a script may
 * only touch its own slot): init and reopen register the project with a
 * plain command first, and run their script only once it is registered, so
 * a project whose state exists is always in the registry. The reaper
 * tolerates a registered project whose keys are gone. */
static void on_registered(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    if (reply_failed(r, err, "project registry")) {
        op->then_cb(NULL, "project not registered", op);
        return;
    }
    if (eval_op(op, op->then_cb) < 0)
        op->then_cb(NULL, "redis client closing", op);
}

/* As send_op, after adding the project to the registry. */
static int send_registered(op_t *op, qr_redis_cb cb)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, op->project);
    const char *argv[] = {"SADD", REGISTRY, id};
    op->then_cb = cb;
    int rc = qr_redis_command(op->e->redis, 3, argv, NULL, on_registered, op);
    if (rc < 0)
        op_free(op);
    return rc;
}

/* --- grant ------------------------------------------------------------- */

static void on_done(redisReply *r, const char *err, void *arg);

static void on_grant(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_grant_cb cb = (qr_lease_grant_cb)op->cb;
    qr_lease_grant_limited_cb lcb = (qr_lease_grant_limited_cb)op->cb;
    if (reply_failed(r, err, "grant") || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        if (op->limited)
            lcb(QR_EIO, NULL, 0, 0, QR_LEASE_GRANTED, 0, op->arg);
        else
            cb(QR_EIO, NULL, 0, 0, op->arg);
        op_free(op);
        return;
    }
    redisReply *list = r->element[1];
    int n = (int)list->elements;
    qr_lease_t *leases = qr_xcalloc((size_t)(n ? n : 1), sizeof *leases);
    int k = 0;
    for (int i = 0; i < n; i++) {
        redisReply *l = list->element[i];
        if (l->type != REDIS_REPLY_ARRAY || l->elements != 4)
            continue;
        leases[k].task_id = reply_int(l->element[0]);
        leases[k].token = reply_int(l->element[1]);
        leases[k].expires_ms = reply_int(l->element[2]);
        leases[k].data = l->element[3]->type == REDIS_REPLY_STRING ? l->element[3]->str : "{}";
        k++;
    }
    if (op->limited) {
        const char *why =
            r->elements > 2 && r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "";
        lcb(0, leases, k, reply_int(r->element[0]),
            !strcmp(why, "quota_reached")        ? QR_LEASE_QUOTA_REACHED
            : !strcmp(why, "cap_reached")        ? QR_LEASE_CAP_REACHED
            : !strcmp(why, "uncounted")          ? QR_LEASE_UNCOUNTED
            : !strcmp(why, "max_leases_reached") ? QR_LEASE_MAX_LEASES
            : !strcmp(why, "gold_unloaded")      ? QR_LEASE_GOLD_UNLOADED
            : !strcmp(why, "annotator_paused")   ? QR_LEASE_PAUSED
                                                 : QR_LEASE_GRANTED,
            r->elements > 4 && reply_int(r->element[3]) > 0   ? QR_LEASE_EXHAUSTED
            : r->elements > 4 && reply_int(r->element[4]) > 0 ? QR_LEASE_REFILLING
                                                              : QR_LEASE_REFILL_USEFUL,
            op->arg);
    } else {
        cb(0, leases, k, reply_int(r->element[0]), op->arg);
    }
    free(leases);
    op_free(op);
}

/* The grant script's call, without the counting arguments. */
static op_t *grant_op(qr_lease_engine_t *e, int64_t project, int64_t annotator, int max, int live,
                      int64_t now_ms, int ttl_ms, void (*cb)(void), void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_GRANT, cb, arg);
    op_arg(op, qr_xi64(annotator));
    op_arg(op, qr_xi64(max));
    op_arg(op, qr_xi64(now_ms));
    op_arg(op, qr_xi64(ttl_ms));
    /* Scan enough candidates to step over the tasks this annotator has seen
     * at the head of the window. */
    op_arg(op, qr_xi64(256 + 4 * max));
    op_arg(op, qr_xi64(live > 0 ? live : -1));
    return op;
}

int qr_lease_grant(qr_lease_engine_t *e, int64_t project, int64_t annotator, int max,
                   int64_t now_ms, int ttl_ms, qr_lease_grant_cb cb, void *arg)
{
    op_t *op = grant_op(e, project, annotator, max, -1, now_ms, ttl_ms, (void (*)(void))cb, arg);
    return send_op(op, on_grant);
}

int qr_lease_grant_limited(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                           const qr_lease_limits_t *lim, int max, int64_t now_ms, int ttl_ms,
                           qr_lease_grant_limited_cb cb, void *arg)
{
    op_t *op =
        grant_op(e, project, annotator, max, lim->live, now_ms, ttl_ms, (void (*)(void))cb, arg);
    op->limited = 1;
    op_arg(op, qr_xi64(lim->org));
    op_arg(op, qr_xi64(lim->quota));
    op_arg(op, qr_xi64(lim->cap));
    if (lim->gold_rate > 0 || lim->gold_onboarding > 0 || lim->gold_judged) {
        op_arg(op, qr_xasprintf("%.17g", lim->gold_rate));
        op_arg(op, qr_xi64(lim->gold_onboarding));
        op_arg(op, qr_xstrdup(lim->gold_judged ? "1" : "0"));
    }
    return send_op(op, on_grant);
}

int qr_lease_gold_load(qr_lease_engine_t *e, int64_t project, int ntasks, const int64_t *ids,
                       const int64_t *serves, const char *const *datas, const char *const *done_by,
                       int nserved, const int64_t *annotators, const int64_t *served, int npaused,
                       const int64_t *paused, qr_lease_done_cb cb, void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_GOLD_LOAD, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(ntasks));
    op_arg(op, qr_xi64(nserved));
    op_arg(op, qr_xi64(npaused));
    for (int i = 0; i < ntasks; i++) {
        op_arg(op, qr_xi64(ids[i]));
        op_arg(op, qr_xi64(serves[i]));
        op_arg(op, qr_xstrdup(datas[i]));
        op_arg(op, qr_xstrdup(done_by[i] ? done_by[i] : ""));
    }
    for (int i = 0; i < nserved; i++) {
        op_arg(op, qr_xi64(annotators[i]));
        op_arg(op, qr_xi64(served[i]));
    }
    for (int i = 0; i < npaused; i++)
        op_arg(op, qr_xi64(paused[i]));
    return send_op(op, on_done);
}

int qr_lease_annotator_pause(qr_lease_engine_t *e, int64_t project, int64_t annotator, int paused,
                             qr_lease_done_cb cb, void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_PAUSE, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(annotator));
    op_arg(op, qr_xstrdup(paused ? "1" : "0"));
    return send_op(op, on_done);
}

int qr_lease_count_seed(qr_lease_engine_t *e, int64_t project, int n, const int64_t *orgs,
                        const int64_t *annotators, const int64_t *counts, qr_lease_done_cb cb,
                        void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_SEED, (void (*)(void))cb, arg);
    for (int i = 0; i < n; i++) {
        op_arg(op, qr_xi64(orgs[i]));
        op_arg(op, qr_xi64(annotators[i]));
        op_arg(op, qr_xi64(counts[i]));
    }
    return send_op(op, on_done);
}

/* One plain DEL of a key of the project's slot: no script needed. */
int qr_lease_count_reset(qr_lease_engine_t *e, int64_t project, qr_lease_done_cb cb, void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    op_arg(op, qr_xstrdup("DEL"));
    op_arg(op, project_key(project, "counted"));
    int rc = qr_redis_command(e->redis, 2, (const char **)op->args, NULL, on_done, op);
    if (rc < 0)
        op_free(op);
    return rc;
}

/* --- heartbeat and submit ---------------------------------------------- */

/* --- steps: touch and end, batched per project ------------------------------
 *
 * A heartbeat, a submit's pin (or peek) and every way a lease ends are
 * steps of the touch or the end script, which take any number of steps in
 * one call (lease_scripts.c) and answer each as a call of its own would.
 * Uncorked, a step goes out at once, alone. Between qr_lease_cork and
 * qr_lease_uncork steps are queued, and the uncork sends them: one call
 * per run of steps of one script in one project, in the order they were
 * queued, so one project's steps keep their order (issue 18: a submit
 * batch pins its leases in one call, a group commit ends its leases in one
 * call per project). */

typedef struct step_s {
    struct step_s *next;
    int64_t project;
    qr_lease_script_id_t id; /* QR_LEASE_SCRIPT_TOUCH or QR_LEASE_SCRIPT_END */
    char *args[5];           /* the step's ARGV (5 for touch, 4 for end) */
    qr_lease_info_cb cb;
    void *arg;
} step_t;

/* One script call of steps: op's args hold the keys and every step's ARGV. */
typedef struct steps_call_s {
    op_t *op;
    int n;
    step_t **steps;
} steps_call_t;

static int step_nargs(const step_t *st)
{
    return st->id == QR_LEASE_SCRIPT_TOUCH ? 5 : 4;
}

static void step_free(step_t *st)
{
    for (int i = 0; i < 5; i++)
        free(st->args[i]);
    free(st);
}

/* Answers one step from its element of the reply (NULL: the call failed). */
static void step_answer(step_t *st, const redisReply *x)
{
    if (!st->cb)
        return;
    int touch = st->id == QR_LEASE_SCRIPT_TOUCH;
    if (!x) {
        st->cb(QR_EIO, NULL, st->arg);
    } else if (x->type != REDIS_REPLY_ARRAY || x->elements != (touch ? 4u : 3u)) {
        st->cb(QR_ECONFLCT, NULL, st->arg);
    } else {
        qr_lease_info_t info = {reply_int(x->element[0]), reply_int(x->element[1]),
                                reply_int(x->element[2]), touch && reply_int(x->element[3]) == 1};
        st->cb(0, &info, st->arg);
    }
}

static void steps_call_free(steps_call_t *sc)
{
    for (int i = 0; i < sc->n; i++)
        step_free(sc->steps[i]);
    free(sc->steps);
    op_free(sc->op);
    free(sc);
}

static void on_steps(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    steps_call_t *sc = op->arg;
    int ok = !reply_failed(r, err, op->id == QR_LEASE_SCRIPT_TOUCH ? "lease touch" : "lease end");
    if (ok && (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)sc->n)) {
        qr_warn("redis lease steps: %zu answers to %d steps",
                r->type == REDIS_REPLY_ARRAY ? r->elements : 0, sc->n);
        ok = 0;
    }
    qr_lease_engine_t *e = op->e;
    if (e->before)
        e->before(e->hook_arg);
    for (int i = 0; i < sc->n; i++)
        step_answer(sc->steps[i], ok ? r->element[i] : NULL);
    if (e->after)
        e->after(e->hook_arg);
    steps_call_free(sc);
}

void qr_lease_set_step_hooks(qr_lease_engine_t *e, void (*before)(void *arg),
                             void (*after)(void *arg), void *arg)
{
    e->before = before;
    e->after = after;
    e->hook_arg = arg;
}

/* Sends steps[0..n) (one project, one script) in one call. Returns 0, or a
 * negative code (the client is closing) with no callback run and the steps
 * still the caller's. */
static int steps_send(qr_lease_engine_t *e, step_t **steps, int n)
{
    steps_call_t *sc = qr_xcalloc(1, sizeof *sc);
    sc->op = op_script(e, steps[0]->project, steps[0]->id, NULL, sc);
    sc->n = n;
    sc->steps = qr_xmalloc((size_t)n * sizeof *sc->steps);
    for (int i = 0; i < n; i++) {
        sc->steps[i] = steps[i];
        for (int k = 0; k < step_nargs(steps[i]); k++) {
            op_arg(sc->op, steps[i]->args[k]);
            steps[i]->args[k] = NULL; /* the op owns it now */
        }
    }
    int rc = eval_op(sc->op, on_steps);
    if (rc < 0) {
        sc->n = 0; /* the steps stay the caller's */
        steps_call_free(sc);
    }
    return rc;
}

/* Queues st while corked, else sends it alone. Returns 0 (its callback will
 * run) or a negative code (closing: st freed, no callback). */
static int step_run(qr_lease_engine_t *e, step_t *st)
{
    if (e->corked > 0) {
        *e->queue_tail = st;
        e->queue_tail = &st->next;
        return 0;
    }
    int rc = steps_send(e, &st, 1);
    if (rc < 0)
        step_free(st);
    return rc;
}

/* Steps per script call of a run: a group commit's ends are hundreds of
 * steps, and one call of them all held Redis for milliseconds (6.3 ms in
 * its slow log at half the batched capacity), every grant queued behind. */
#define STEPS_PER_CALL 64

void qr_lease_cork(qr_lease_engine_t *e)
{
    e->corked++;
}

void qr_lease_uncork(qr_lease_engine_t *e)
{
    QR_ASSERT(e->corked > 0);
    if (--e->corked > 0 || !e->queue)
        return;
    step_t *q = e->queue;
    e->queue = NULL;
    e->queue_tail = &e->queue;
    int n = 0;
    for (step_t *st = q; st; st = st->next)
        n++;
    step_t **all = qr_xmalloc((size_t)n * sizeof *all);
    step_t **run = qr_xmalloc((size_t)n * sizeof *run);
    n = 0;
    for (step_t *st = q; st; st = st->next)
        all[n++] = st;
    /* Runs of steps: each run takes, in order, the pending steps of the
     * first project not yet sent, up to the first step of the other script
     * (which starts the project's next run). */
    for (int i = 0; i < n; i++) {
        if (!all[i])
            continue;
        int64_t project = all[i]->project;
        qr_lease_script_id_t id = all[i]->id;
        int m = 0;
        for (int j = i; j < n; j++) {
            if (!all[j] || all[j]->project != project)
                continue;
            if (all[j]->id != id)
                break;
            run[m++] = all[j];
            all[j] = NULL;
        }
        for (int at = 0; at < m; at += STEPS_PER_CALL) {
            int k = m - at < STEPS_PER_CALL ? m - at : STEPS_PER_CALL;
            if (steps_send(e, run + at, k) < 0)
                for (int s = at; s < at + k; s++) {
                    /* The client is closing: each step hears so, as if
                     * Redis were down (its caller was told the step is on
                     * its way). */
                    step_answer(run[s], NULL);
                    step_free(run[s]);
                }
        }
    }
    free(run);
    free(all);
}

static step_t *step_new(int64_t project, qr_lease_script_id_t id, qr_lease_info_cb cb, void *arg)
{
    step_t *st = qr_xcalloc(1, sizeof *st);
    st->project = project;
    st->id = id;
    st->cb = cb;
    st->arg = arg;
    return st;
}

static int touch(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                 int64_t now_ms, int64_t new_expiry, const char *mode, qr_lease_info_cb cb,
                 void *arg)
{
    step_t *st = step_new(project, QR_LEASE_SCRIPT_TOUCH, cb, arg);
    st->args[0] = qr_xi64(annotator);
    st->args[1] = qr_xi64(now_ms);
    st->args[2] = qr_xi64(new_expiry);
    st->args[3] = qr_xi64(token);
    st->args[4] = qr_xstrdup(mode);
    return step_run(e, st);
}

int qr_lease_heartbeat(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                       int64_t now_ms, int ttl_ms, qr_lease_info_cb cb, void *arg)
{
    return touch(e, project, annotator, token, now_ms, now_ms + ttl_ms, "hb", cb, arg);
}

int qr_lease_submit_begin(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                          int64_t now_ms, int grace_ms, qr_lease_info_cb cb, void *arg)
{
    return touch(e, project, annotator, token, now_ms, now_ms + grace_ms, "begin", cb, arg);
}

int qr_lease_peek(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                  int64_t now_ms, qr_lease_info_cb cb, void *arg)
{
    return touch(e, project, annotator, token, now_ms, now_ms, "peek", cb, arg);
}

static void on_done(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_done_cb cb = (qr_lease_done_cb)op->cb;
    int rc = reply_failed(r, err, "lease step") ? QR_EIO : 0;
    if (cb)
        cb(rc, op->arg);
    op_free(op);
}

static int end_lease(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                     int64_t now_ms, const char *mode, qr_lease_info_cb cb, void *arg)
{
    step_t *st = step_new(project, QR_LEASE_SCRIPT_END, cb, arg);
    st->args[0] = qr_xi64(token);
    st->args[1] = qr_xstrdup(mode);
    st->args[2] = qr_xi64(annotator);
    st->args[3] = qr_xi64(now_ms);
    return step_run(e, st);
}

/* Adapts a done-callback to the info-callback end_lease reports through. */
typedef struct done_adapter_s {
    qr_lease_done_cb cb;
    void *arg;
} done_adapter_t;

static void on_end_done(int rc, const qr_lease_info_t *info, void *arg)
{
    done_adapter_t *d = arg;
    if (d->cb)
        d->cb(rc == QR_ECONFLCT ? 0 : rc, d->arg);
    free(d);
}

static int end_simple(qr_lease_engine_t *e, int64_t project, int64_t token, const char *mode,
                      qr_lease_done_cb cb, void *arg)
{
    done_adapter_t *d = qr_xcalloc(1, sizeof *d);
    d->cb = cb;
    d->arg = arg;
    int rc = end_lease(e, project, 0, token, 0, mode, on_end_done, d);
    if (rc < 0)
        free(d);
    return rc;
}

int qr_lease_submit_commit(qr_lease_engine_t *e, int64_t project, int64_t token,
                           qr_lease_done_cb cb, void *arg)
{
    return end_simple(e, project, token, "commit", cb, arg);
}

int qr_lease_submit_drop(qr_lease_engine_t *e, int64_t project, int64_t token, qr_lease_done_cb cb,
                         void *arg)
{
    return end_simple(e, project, token, "drop", cb, arg);
}

int qr_lease_submit_extend(qr_lease_engine_t *e, int64_t project, int64_t token,
                           qr_lease_done_cb cb, void *arg)
{
    return end_simple(e, project, token, "extend", cb, arg);
}

int qr_lease_submit_abort(qr_lease_engine_t *e, int64_t project, int64_t token, qr_lease_done_cb cb,
                          void *arg)
{
    return end_simple(e, project, token, "abort", cb, arg);
}

int qr_lease_submit_return(qr_lease_engine_t *e, int64_t project, int64_t token,
                           qr_lease_info_cb cb, void *arg)
{
    return end_lease(e, project, 0, token, 0, "return", cb, arg);
}

static void on_regranted(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_info_cb cb = (qr_lease_info_cb)op->cb;
    if (reply_failed(r, err, "regrant") || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        cb(QR_EIO, NULL, op->arg);
    } else {
        /* For a regrant, info carries the new token in task_id's place. */
        qr_lease_info_t info = {reply_int(r->element[0]), 0, reply_int(r->element[1]), 0};
        cb(0, &info, op->arg);
    }
    op_free(op);
}

int qr_lease_regrant(qr_lease_engine_t *e, int64_t project, int64_t task, int64_t annotator,
                     int64_t org, int counted, int64_t now_ms, int ttl_ms, double priority,
                     const char *data, qr_lease_info_cb cb, void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_REGRANT, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(task));
    op_arg(op, qr_xi64(annotator));
    op_arg(op, qr_xi64(now_ms));
    op_arg(op, qr_xi64(ttl_ms));
    op_arg(op, qr_xasprintf("%.17g", priority));
    op_arg(op, qr_xstrdup(data));
    if (org > 0) {
        op_arg(op, qr_xi64(org));
        op_arg(op, qr_xstrdup(counted ? "1" : "0"));
    }
    return send_op(op, on_regranted);
}

int qr_lease_release(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                     int64_t now_ms, int skip, qr_lease_info_cb cb, void *arg)
{
    return end_lease(e, project, annotator, token, now_ms, skip ? "skip" : "release", cb, arg);
}

/* --- window ------------------------------------------------------------- */

/* One window_add script call of n tasks (cursor "*": the cursor is left as
 * it is). Returns 0 (cb will run) or a negative code (it will not). */
static int window_add_call(qr_lease_engine_t *e, int64_t project, int n, const int64_t *ids,
                           const int *free_slots, const double *priorities,
                           const char *const *datas, const char *const *done_by, const char *cursor,
                           qr_lease_done_cb cb, void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_WINDOW_ADD, (void (*)(void))cb, arg);
    op_arg(op, qr_xstrdup(cursor));
    for (int i = 0; i < n; i++) {
        op_arg(op, qr_xi64(ids[i]));
        op_arg(op, qr_xi64(free_slots[i]));
        op_arg(op, qr_xasprintf("%.17g", priorities[i]));
    }
    /* The task data and done-by lists are large: argv borrows them, in
     * between op's own strings. */
    int head = op->nkeys + 1, argc = head + 5 * n;
    const char **argv = qr_xcalloc((size_t)argc, sizeof *argv);
    for (int i = 0; i < head; i++)
        argv[i] = op->args[i];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            argv[head + 5 * i + k] = op->args[head + 3 * i + k];
        argv[head + 5 * i + 3] = datas[i];
        argv[head + 5 * i + 4] = done_by ? done_by[i] : "";
    }
    int rc = qr_redis_eval(e->redis, e->script[op->id], op->nkeys, argc, argv, NULL, on_done, op);
    free(argv);
    if (rc < 0)
        op_free(op);
    return rc;
}

/*
 * A refill's tasks go to Redis WINDOW_ADD_CHUNK at a time, each chunk its
 * own script call, the cursor moved by the last, and each chunk sent only
 * once the one before it has answered. One call of a 4,000-task refill
 * held Redis for 21-43 ms (its slow log, at half the batched capacity);
 * sent all at once, the chunks still stood in one queue on the broker's one
 * connection, and a grant or submit sent behind them waited for all of
 * them. Sent one after another, a command waits for one chunk at most. A
 * chunk leaves the tasks already in the window as they are, so a failed
 * chunk is repaired by the next refill, which starts from the cursor not
 * moved; the chunks after a failed one are not sent.
 */
#define WINDOW_ADD_CHUNK 256

/* The rest of a window add, copied: its chunks are sent from callbacks,
 * after the caller's arrays are gone. */
typedef struct add_chain_s {
    qr_lease_engine_t *e;
    int64_t project;
    int n, at;    /* tasks, and the first not yet sent */
    int64_t *ids; /* n each */
    int *free_slots;
    double *priorities;
    const char **datas; /* into text */
    const char **done_by;
    char *text;   /* the data and done-by strings, one block */
    char *cursor; /* the last chunk's */
    qr_lease_done_cb cb;
    void *arg;
} add_chain_t;

static void add_chain_free(add_chain_t *c)
{
    free(c->ids);
    free(c->free_slots);
    free(c->priorities);
    free(c->datas);
    free(c->done_by);
    free(c->text);
    free(c->cursor);
    free(c);
}

static void on_add_chunk(int rc, void *arg);

static void *copy_of(const void *p, size_t n)
{
    return memcpy(qr_xmalloc(n), p, n);
}

/* Sends the chain's next chunk: 0, or a negative code (nothing sent). */
static int add_chain_next(add_chain_t *c)
{
    int m = c->n - c->at < WINDOW_ADD_CHUNK ? c->n - c->at : WINDOW_ADD_CHUNK;
    int at = c->at;
    c->at += m;
    return window_add_call(c->e, c->project, m, c->ids + at, c->free_slots + at, c->priorities + at,
                           c->datas + at, c->done_by + at, c->at == c->n ? c->cursor : "*",
                           on_add_chunk, c);
}

static void on_add_chunk(int rc, void *arg)
{
    add_chain_t *c = arg;
    if (rc == 0 && c->at < c->n && (rc = add_chain_next(c)) == 0)
        return;
    if (c->cb)
        c->cb(rc, c->arg);
    add_chain_free(c);
}

int qr_lease_window_add(qr_lease_engine_t *e, int64_t project, int n, const int64_t *ids,
                        const int *free_slots, const double *priorities, const char *const *datas,
                        const char *const *done_by, const char *cursor, qr_lease_done_cb cb,
                        void *arg)
{
    if (n <= WINDOW_ADD_CHUNK)
        return window_add_call(e, project, n, ids, free_slots, priorities, datas, done_by, cursor,
                               cb, arg);
    add_chain_t *c = qr_xcalloc(1, sizeof *c);
    c->e = e;
    c->project = project;
    c->n = n;
    c->cb = cb;
    c->arg = arg;
    c->cursor = qr_xstrdup(cursor);
    c->ids = copy_of(ids, (size_t)n * sizeof *ids);
    c->free_slots = copy_of(free_slots, (size_t)n * sizeof *free_slots);
    c->priorities = copy_of(priorities, (size_t)n * sizeof *priorities);
    c->datas = qr_xcalloc((size_t)n, sizeof *c->datas);
    c->done_by = qr_xcalloc((size_t)n, sizeof *c->done_by);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += strlen(datas[i]) + 1 + (done_by ? strlen(done_by[i]) : 0) + 1;
    char *p = c->text = qr_xmalloc(total);
    for (int i = 0; i < n; i++) {
        size_t k = strlen(datas[i]) + 1;
        c->datas[i] = memcpy(p, datas[i], k);
        p += k;
        k = done_by ? strlen(done_by[i]) + 1 : 1;
        c->done_by[i] = memcpy(p, done_by ? done_by[i] : "", k);
        p += k;
    }
    int rc = add_chain_next(c);
    if (rc < 0)
        add_chain_free(c); /* nothing sent: no callback */
    return rc;
}

static void on_refill_begin(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_refill_cb cb = (qr_lease_refill_cb)op->cb;
    if (reply_failed(r, err, "refill") || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        cb(QR_EIO, "", 0, 0, 0, op->arg);
    else
        cb(0, r->element[0]->str, (int)reply_int(r->element[1]), (int)reply_int(r->element[2]),
           (int)reply_int(r->element[3]), op->arg);
    op_free(op);
}

int qr_lease_refill_begin(qr_lease_engine_t *e, int64_t project, int lock_ms, qr_lease_refill_cb cb,
                          void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_REFILL_BEGIN, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(lock_ms));
    op_arg(op, qr_xstrdup(lock_ms > 0 ? "1" : "0"));
    return send_op(op, on_refill_begin);
}

static int refill_end(qr_lease_engine_t *e, int64_t project, const char *flag, qr_lease_done_cb cb,
                      void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_REFILL_END, (void (*)(void))cb, arg);
    op_arg(op, qr_xstrdup(flag));
    /* A reopen registers the project again: it may predate the registry. */
    return !strcmp(flag, "reopen") ? send_registered(op, on_done) : send_op(op, on_done);
}

int qr_lease_refill_end(qr_lease_engine_t *e, int64_t project, int exhausted, qr_lease_done_cb cb,
                        void *arg)
{
    return refill_end(e, project, exhausted ? "1" : "0", cb, arg);
}

static void on_init_time(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    void (*cb)(int, int64_t, void *) = (void (*)(int, int64_t, void *))op->cb;
    if (reply_failed(r, err, "init time"))
        cb(QR_EIO, 0, op->arg);
    else
        cb(0, r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0, op->arg);
    op_free(op);
}

int qr_lease_init_time(qr_lease_engine_t *e, int64_t project,
                       void (*cb)(int rc, int64_t init_ms, void *arg), void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    op_arg(op, qr_xstrdup("GET"));
    op_arg(op, project_key(project, "built"));
    int rc = qr_redis_command(e->redis, 2, (const char **)op->args, NULL, on_init_time, op);
    if (rc < 0)
        op_free(op);
    return rc;
}

int qr_lease_init(qr_lease_engine_t *e, int64_t project, int64_t fence_floor, qr_lease_done_cb cb,
                  void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_INIT, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(fence_floor));
    op_arg(op, qr_xi64(qr_now_ms()));
    return send_registered(op, on_done);
}

int qr_lease_window_reopen(qr_lease_engine_t *e, int64_t project, qr_lease_done_cb cb, void *arg)
{
    return refill_end(e, project, "reopen", cb, arg);
}

/* --- window refresh ------------------------------------------------------ */

static void on_window_ids(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_ids_cb cb = (qr_lease_ids_cb)op->cb;
    if (reply_failed(r, err, "window ids") || r->type != REDIS_REPLY_ARRAY) {
        cb(QR_EIO, NULL, 0, op->arg);
        op_free(op);
        return;
    }
    int64_t *ids = qr_xcalloc(r->elements + 1, sizeof *ids);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            ids[n++] = strtoll(r->element[i]->str, NULL, 10);
    cb(0, ids, n, op->arg);
    free(ids);
    op_free(op);
}

int qr_lease_window_ids(qr_lease_engine_t *e, int64_t project, qr_lease_ids_cb cb, void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    op_arg(op, qr_xstrdup("HKEYS"));
    op_arg(op, project_key(project, "free"));
    int rc = qr_redis_command(e->redis, 2, (const char **)op->args, NULL, on_window_ids, op);
    if (rc < 0)
        op_free(op);
    return rc;
}

int qr_lease_window_rescore(qr_lease_engine_t *e, int64_t project, int n, const int64_t *ids,
                            const double *priorities, const int *slots, qr_lease_done_cb cb,
                            void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_RESCORE, (void (*)(void))cb, arg);
    for (int i = 0; i < n; i++) {
        op_arg(op, qr_xi64(ids[i]));
        op_arg(op, qr_xasprintf("%.17g", priorities[i]));
        op_arg(op, qr_xi64(slots[i]));
    }
    return send_op(op, on_done);
}

/* --- a project's end ---------------------------------------------------- */

static void on_unregistered(redisReply *r, const char *err, void *arg)
{
    /* A registered project without keys is harmless (the reaper finds
     * nothing); only worth a line in the log. */
    reply_failed(r, err, "project unregister");
}

static void on_dropped(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_drop_cb cb = (qr_lease_drop_cb)op->cb;
    if (reply_failed(r, err, "project drop") || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        cb(QR_EIO, 0, 0, op->arg);
        op_free(op);
        return;
    }
    int dropped = reply_int(r->element[0]) == 1;
    int64_t live = reply_int(r->element[1]);
    if (dropped) {
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, op->project);
        const char *argv[] = {"SREM", REGISTRY, id};
        if (qr_redis_command(op->e->redis, 3, argv, NULL, on_unregistered, NULL) < 0)
            qr_warn("redis project unregister: the client is closing");
    }
    cb(0, dropped, live, op->arg);
    op_free(op);
}

int qr_lease_project_drop(qr_lease_engine_t *e, int64_t project, int64_t now_ms, int force,
                          qr_lease_drop_cb cb, void *arg)
{
    op_t *op = op_script(e, project, QR_LEASE_SCRIPT_DROP, (void (*)(void))cb, arg);
    op_arg(op, qr_xi64(now_ms));
    op_arg(op, qr_xstrdup(force ? "1" : "0"));
    return send_op(op, on_dropped);
}

/* --- reaper ------------------------------------------------------------- */

typedef struct reap_s {
    qr_lease_engine_t *e;
    int64_t now_ms;
    qr_lease_expired_cb cb;
    void *arg;
    int pending; /* per-project calls still out; the last one frees this */
} reap_t;

static void reap_release(reap_t *rp)
{
    if (--rp->pending == 0)
        free(rp);
}

static void on_reap_project(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    reap_t *rp = (reap_t *)op->arg;
    if (!reply_failed(r, err, "reap") && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        qr_lease_expired_t *ex = qr_xcalloc(r->elements, sizeof *ex);
        int k = 0;
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *x = r->element[i];
            if (x->type != REDIS_REPLY_ARRAY || x->elements != 5)
                continue;
            ex[k].project_id = op->project;
            ex[k].token = reply_int(x->element[0]);
            ex[k].task_id = reply_int(x->element[1]);
            ex[k].annotator_id = reply_int(x->element[2]);
            ex[k].granted_ms = reply_int(x->element[3]);
            ex[k].expires_ms = reply_int(x->element[4]);
            k++;
        }
        if (k && rp->cb)
            rp->cb(ex, k, rp->arg);
        free(ex);
    }
    op_free(op);
    reap_release(rp);
}

static void on_reap_projects(redisReply *r, const char *err, void *arg)
{
    reap_t *rp = arg;
    if (reply_failed(r, err, "reap projects") || r->type != REDIS_REPLY_ARRAY) {
        reap_release(rp);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        int64_t project = strtoll(r->element[i]->str, NULL, 10);
        op_t *op = op_script(rp->e, project, QR_LEASE_SCRIPT_REAP, NULL, rp);
        op_arg(op, qr_xi64(rp->now_ms));
        op_arg(op, qr_xstrdup("1000"));
        rp->pending++;
        if (send_op(op, on_reap_project) < 0)
            rp->pending--;
    }
    reap_release(rp);
}

int qr_lease_reap(qr_lease_engine_t *e, int64_t now_ms, qr_lease_expired_cb expired_cb, void *arg)
{
    reap_t *rp = qr_xcalloc(1, sizeof *rp);
    rp->e = e;
    rp->now_ms = now_ms;
    rp->cb = expired_cb;
    rp->arg = arg;
    rp->pending = 1;
    if (e->sweep_wanted && qr_redis_ready(e->redis))
        registry_sweep(e);
    const char *argv[] = {"SMEMBERS", REGISTRY};
    int rc = qr_redis_command(e->redis, 2, argv, NULL, on_reap_projects, rp);
    if (rc < 0)
        free(rp);
    return rc;
}

/* --- probes -------------------------------------------------------------- */

typedef struct sizes_s {
    qr_lease_sizes_cb cb;
    void *arg;
    int n;
    int64_t *ready, *live;
    int pending; /* replies still to come, plus one while sending */
} sizes_t;

typedef struct size_reply_s {
    sizes_t *s;
    int64_t *slot;
} size_reply_t;

static void sizes_finish(sizes_t *s)
{
    s->cb(s->ready, s->live, s->n, s->arg);
    free(s->ready);
    free(s->live);
    free(s);
}

static void on_size(redisReply *r, const char *err, void *arg)
{
    size_reply_t *z = arg;
    sizes_t *s = z->s;
    if (r && r->type == REDIS_REPLY_INTEGER)
        *z->slot = r->integer;
    free(z);
    if (--s->pending == 0)
        sizes_finish(s);
}

void qr_lease_window_sizes(qr_lease_engine_t *e, const int64_t *projects, int n,
                           qr_lease_sizes_cb cb, void *arg)
{
    sizes_t *s = qr_xcalloc(1, sizeof *s);
    s->cb = cb;
    s->arg = arg;
    s->n = n;
    s->ready = qr_xmalloc((n ? (size_t)n : 1) * sizeof *s->ready);
    s->live = qr_xmalloc((n ? (size_t)n : 1) * sizeof *s->live);
    for (int i = 0; i < n; i++)
        s->ready[i] = s->live[i] = -1;
    /* One more than the replies, so a reply cannot finish while commands
     * are still being sent. */
    s->pending = 1;
    for (int i = 0; e && qr_redis_ready(e->redis) && i < n; i++)
        for (int k = 0; k < 2; k++) {
            char *key = project_key(projects[i], k ? "leases" : "ready");
            const char *argv[] = {"ZCARD", key};
            size_reply_t *z = qr_xmalloc(sizeof *z);
            z->s = s;
            z->slot = k ? &s->live[i] : &s->ready[i];
            s->pending++;
            if (qr_redis_command(e->redis, 2, argv, NULL, on_size, z) < 0) {
                s->pending--;
                free(z);
            }
            free(key);
        }
    if (--s->pending == 0)
        sizes_finish(s);
}

int qr_lease_ready(const qr_lease_engine_t *e)
{
    return e && qr_redis_ready(e->redis);
}

typedef struct ping_s {
    qr_lease_done_cb cb;
    void *arg;
} ping_t;

static void on_ping(redisReply *r, const char *err, void *arg)
{
    ping_t *p = arg;
    int ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
    if (!ok)
        qr_warn("redis PING failed: %s", err ? err : r && r->str ? r->str : "unexpected reply");
    p->cb(ok ? 0 : QR_EIO, p->arg);
    free(p);
}

int qr_lease_ping(qr_lease_engine_t *e, qr_lease_done_cb cb, void *arg)
{
    ping_t *p = qr_xmalloc(sizeof *p);
    p->cb = cb;
    p->arg = arg;
    const char *argv[] = {"PING"};
    int rc = qr_redis_command(e->redis, 1, argv, NULL, on_ping, p);
    if (rc < 0)
        free(p);
    return rc;
}
