/*
 * lease.c - the lease engine over Redis (see lease.h for the key layout).
 *
 * Each operation is one Lua script call; the scripts are registered with the
 * Redis client, which loads them on every connect and falls back to EVAL on
 * NOSCRIPT. Times are epoch milliseconds passed in by the broker, so a
 * script is a pure function of its arguments and the keys.
 */
#include "lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* KEYS: ready zset, leases zset, alive hash. Grants up to ARGV[3] leases
 * scanning at most ARGV[6] ready tasks, and no lease past ARGV[7] live ones
 * of this annotator (-1: no bound): {p:P}:alive counts each annotator's
 * live leases, and a lease counted there carries 'alive' so that whatever
 * ends it (END_LUA, REAP_LUA) takes it off again.
 * With ARGV[8] (the annotator's organization) the grant is counted: each
 * lease adds one to {p:P}:vused[org] and {p:P}:aused[ann] (submitted
 * annotations plus live leases; see SEED_LUA), and no lease is granted past
 * the quota ARGV[9] of the organization or the cap ARGV[10] of the annotator
 * (-1: none). Counting needs the counters built ({p:P}:counted): until they
 * are, nothing is granted and the reason is 'uncounted'.
 * Returns {ready_left, {task, token, expires, data}..., reason}; reason is
 * '', 'quota_reached', 'cap_reached', 'max_leases_reached' (fewer leases
 * than asked, or none, because of ARGV[7]) or 'uncounted'. */
static const char GRANT_LUA[] =
    "local p, ann, max, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), "
    "tonumber(ARGV[5])\n"
    "local live = tonumber(ARGV[7] or '-1')\n"
    "local org, quota, cap = ARGV[8], tonumber(ARGV[9] or '-1'), tonumber(ARGV[10] or '-1')\n"
    "local vused, aused = 0, 0\n"
    "if org then\n"
    "  if redis.call('EXISTS', p .. ':counted') == 0 then\n"
    "    return {redis.call('ZCARD', KEYS[1]), {}, 'uncounted'}\n"
    "  end\n"
    "  vused = tonumber(redis.call('HGET', p .. ':vused', org) or '0')\n"
    "  aused = tonumber(redis.call('HGET', p .. ':aused', ann) or '0')\n"
    "  if quota >= 0 and vused >= quota then\n"
    "    return {redis.call('ZCARD', KEYS[1]), {}, 'quota_reached'}\n"
    "  end\n"
    "  if cap >= 0 and aused >= cap then\n"
    "    return {redis.call('ZCARD', KEYS[1]), {}, 'cap_reached'}\n"
    "  end\n"
    "end\n"
    "local alive = tonumber(redis.call('HGET', KEYS[3], ann) or '0')\n"
    "if live >= 0 and alive >= live then\n"
    "  return {redis.call('ZCARD', KEYS[1]), {}, 'max_leases_reached'}\n"
    "end\n"
    "local cands = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[6]) - 1)\n"
    "local out = {}\n"
    "for _, tid in ipairs(cands) do\n"
    "  if #out >= max then break end\n"
    "  if (quota >= 0 and vused >= quota) or (cap >= 0 and aused >= cap) then break end\n"
    "  if live >= 0 and alive >= live then break end\n"
    "  if redis.call('SISMEMBER', p .. ':seen:' .. tid, ann) == 0 then\n"
    "    local free = tonumber(redis.call('HGET', p .. ':free', tid) or '0')\n"
    "    if free <= 0 then\n"
    "      redis.call('ZREM', KEYS[1], tid)\n"
    "    else\n"
    "      free = redis.call('HINCRBY', p .. ':free', tid, -1)\n"
    "      if free <= 0 then redis.call('ZREM', KEYS[1], tid) end\n"
    "      redis.call('HINCRBY', p .. ':held', tid, 1)\n"
    "      redis.call('SADD', p .. ':seen:' .. tid, ann)\n"
    "      local tok = redis.call('INCR', p .. ':fence')\n"
    "      local exp = now + ttl\n"
    "      redis.call('HSET', p .. ':lease:' .. tok, 'task', tid, 'ann', ann, 'granted', now, "
    "'expires', exp, 'state', 'live', 'alive', '1')\n"
    "      redis.call('ZADD', KEYS[2], exp, tok)\n"
    "      alive = redis.call('HINCRBY', KEYS[3], ann, 1)\n"
    "      if org then\n"
    "        redis.call('HSET', p .. ':lease:' .. tok, 'org', org)\n"
    "        vused = redis.call('HINCRBY', p .. ':vused', org, 1)\n"
    "        aused = redis.call('HINCRBY', p .. ':aused', ann, 1)\n"
    "      end\n"
    "      out[#out + 1] = {tid, tok, exp, redis.call('HGET', p .. ':data', tid) or '{}'}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local why = ''\n"
    "if #out < max and live >= 0 and alive >= live then why = 'max_leases_reached' end\n"
    "return {redis.call('ZCARD', KEYS[1]), out, why}\n";

/* KEYS: the counted marker. ARGV: prefix, then (org, annotator, annotations)
 * triples from PostgreSQL. Builds the quota and cap counters of a project
 * unless they exist: each organization's and each annotator's submitted
 * annotations, plus the live leases Redis holds (a lease granted with an
 * organization carries it). Returns 1 when built, 0 when they existed. */
static const char SEED_LUA[] =
    "local p = ARGV[1]\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('DEL', p .. ':vused', p .. ':aused')\n"
    "for i = 2, #ARGV, 3 do\n"
    "  redis.call('HINCRBY', p .. ':vused', ARGV[i], ARGV[i + 2])\n"
    "  redis.call('HINCRBY', p .. ':aused', ARGV[i + 1], ARGV[i + 2])\n"
    "end\n"
    "for _, tok in ipairs(redis.call('ZRANGE', p .. ':leases', 0, -1)) do\n"
    "  local l = redis.call('HMGET', p .. ':lease:' .. tok, 'ann', 'org')\n"
    "  if l[1] and l[2] then\n"
    "    redis.call('HINCRBY', p .. ':vused', l[2], 1)\n"
    "    redis.call('HINCRBY', p .. ':aused', l[1], 1)\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], '1')\n"
    "return 1\n";

/* KEYS: lease hash, leases zset. ARGV: ann, now, new expiry, token, mode.
 * mode 'hb' extends a live lease; 'begin' pins it for the submit until the
 * new expiry. A lease already pinned may be begun again by its annotator
 * while the pin holds: the submit that pinned it may have died with its
 * broker before committing, and the agent's resend (same idempotency key)
 * must then go through; PostgreSQL keeps two racing submits to one row.
 * Returns {task, granted, expires} or 0 when the lease is not live (or
 * pinned) and the caller's. */
static const char TOUCH_LUA[] =
    "local l = redis.call('HMGET', KEYS[1], 'task', 'ann', 'granted', 'expires', 'state',"
    " 'pinned')\n"
    "if not l[1] or l[2] ~= ARGV[1] then return 0 end\n"
    "local now = tonumber(ARGV[2])\n"
    "if l[5] == 'live' then\n"
    "  if tonumber(l[4]) <= now then return 0 end\n"
    "elseif l[5] ~= 'submitting' or ARGV[5] ~= 'begin' or tonumber(l[6]) <= now then\n"
    "  return 0\n"
    "end\n"
    "if ARGV[5] == 'begin' then\n"
    "  redis.call('HSET', KEYS[1], 'state', 'submitting', 'pinned', ARGV[3])\n"
    "  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])\n"
    "  return {l[1], l[3], l[4]}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'expires', ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])\n"
    "return {l[1], l[3], ARGV[3]}\n";

/* KEYS: leases zset, alive hash. ARGV: prefix, task, annotator, now, ttl,
 * priority, data, organization. An undone annotation: its slot goes straight
 * back to the annotator who undid it, as a new lease with a new fencing
 * token (the task re-enters the window if it had left it). The quota
 * counters do not move: one annotation less, one live lease more. The lease
 * counts among the annotator's live ones, but is never refused for them: the
 * annotator asked for this very task back. Returns {token, expires}. */
static const char REGRANT_LUA[] =
    "local p, tid, ann = ARGV[1], ARGV[2], ARGV[3]\n"
    "local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "if redis.call('HEXISTS', p .. ':free', tid) == 0 then\n"
    "  redis.call('HSET', p .. ':free', tid, 0)\n"
    "  redis.call('HSET', p .. ':held', tid, 0)\n"
    "  redis.call('HSET', p .. ':prio', tid, ARGV[6])\n"
    "  redis.call('HSET', p .. ':data', tid, ARGV[7])\n"
    "end\n"
    "redis.call('HINCRBY', p .. ':held', tid, 1)\n"
    "redis.call('SADD', p .. ':seen:' .. tid, ann)\n"
    "local tok = redis.call('INCR', p .. ':fence')\n"
    "local exp = now + ttl\n"
    "redis.call('HSET', p .. ':lease:' .. tok, 'task', tid, 'ann', ann, 'granted', now, "
    "'expires', exp, 'state', 'live', 'alive', '1')\n"
    "redis.call('HINCRBY', KEYS[2], ann, 1)\n"
    "if ARGV[8] then redis.call('HSET', p .. ':lease:' .. tok, 'org', ARGV[8]) end\n"
    "redis.call('ZADD', KEYS[1], exp, tok)\n"
    "return {tok, exp}\n";

/* KEYS: lease hash, leases zset, ready zset, alive hash. ARGV: prefix,
 * token, mode, annotator, now. 'commit' consumes the slot; 'abort' returns
 * it; 'return' returns it and lets the annotator have the task again (a
 * submit refused before anything was stored); 'release' and 'skip' first
 * check the lease is live and the annotator's, then return the slot
 * ('release' also lets the annotator have the task again). Every mode takes
 * the lease off its annotator's live count. Returns {task, granted,
 * expires}, or 0 when there was no such (live) lease. */
static const char END_LUA[] =
    "local p, mode = ARGV[1], ARGV[3]\n"
    "local l = redis.call('HMGET', KEYS[1], 'task', 'ann', 'granted', 'expires', 'state', 'org',"
    " 'alive')\n"
    "local tid = l[1]\n"
    "if not tid then return 0 end\n"
    "if (mode == 'release' or mode == 'skip') and (l[2] ~= ARGV[4] or l[5] ~= 'live' or\n"
    "    tonumber(l[4]) <= tonumber(ARGV[5])) then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "if l[7] and redis.call('HINCRBY', KEYS[4], l[2], -1) <= 0 then\n"
    "  redis.call('HDEL', KEYS[4], l[2])\n"
    "end\n"
    "local held = redis.call('HINCRBY', p .. ':held', tid, -1)\n"
    "if mode ~= 'commit' then\n"
    "  if l[6] and redis.call('EXISTS', p .. ':counted') == 1 then\n"
    "    redis.call('HINCRBY', p .. ':vused', l[6], -1)\n"
    "    redis.call('HINCRBY', p .. ':aused', l[2], -1)\n"
    "  end\n"
    "  redis.call('HINCRBY', p .. ':free', tid, 1)\n"
    "  if mode == 'release' or mode == 'return' then\n"
    "    redis.call('SREM', p .. ':seen:' .. tid, l[2])\n"
    "  end\n"
    "  redis.call('ZADD', KEYS[3], redis.call('HGET', p .. ':prio', tid) or tid, tid)\n"
    "  return {tid, l[3], l[4]}\n"
    "end\n"
    "local free = tonumber(redis.call('HGET', p .. ':free', tid) or '0')\n"
    "if free <= 0 and held <= 0 then\n"
    "  redis.call('DEL', p .. ':seen:' .. tid)\n"
    "  redis.call('HDEL', p .. ':free', tid)\n"
    "  redis.call('HDEL', p .. ':held', tid)\n"
    "  redis.call('HDEL', p .. ':data', tid)\n"
    "  redis.call('HDEL', p .. ':prio', tid)\n"
    "end\n"
    "return {tid, l[3], l[4]}\n";

/* KEYS: leases zset, ready zset, alive hash. ARGV: prefix, now, limit.
 * Returns the expired leases as {token, task, ann, granted, expires}... */
static const char REAP_LUA[] =
    "local p = ARGV[1]\n"
    "local toks = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])\n"
    "local out = {}\n"
    "for _, tok in ipairs(toks) do\n"
    "  local lk = p .. ':lease:' .. tok\n"
    "  local l = redis.call('HMGET', lk, 'task', 'ann', 'granted', 'expires', 'org', 'alive')\n"
    "  redis.call('ZREM', KEYS[1], tok)\n"
    "  redis.call('DEL', lk)\n"
    "  if l[1] then\n"
    "    if l[6] and redis.call('HINCRBY', KEYS[3], l[2], -1) <= 0 then\n"
    "      redis.call('HDEL', KEYS[3], l[2])\n"
    "    end\n"
    "    if l[5] and redis.call('EXISTS', p .. ':counted') == 1 then\n"
    "      redis.call('HINCRBY', p .. ':vused', l[5], -1)\n"
    "      redis.call('HINCRBY', p .. ':aused', l[2], -1)\n"
    "    end\n"
    "    redis.call('HINCRBY', p .. ':free', l[1], 1)\n"
    "    redis.call('HINCRBY', p .. ':held', l[1], -1)\n"
    "    redis.call('SREM', p .. ':seen:' .. l[1], l[2])\n"
    "    redis.call('ZADD', KEYS[2], redis.call('HGET', p .. ':prio', l[1]) or l[1], l[1])\n"
    "    out[#out + 1] = {tok, l[1], l[2], l[3], l[4]}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: ready zset. ARGV: prefix, cursor, then (id, free, priority, data,
 * done-by) quintuples; done-by lists (comma-separated) the annotators who
 * annotated or skipped the task already. The cursor ("priority id" of the
 * last row read from PostgreSQL) is where the next refill starts. */
static const char WINDOW_ADD_LUA[] =
    "local p = ARGV[1]\n"
    "for i = 3, #ARGV, 5 do\n"
    "  local tid, free = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  if redis.call('HEXISTS', p .. ':free', tid) == 0 then\n"
    "    redis.call('HSET', p .. ':free', tid, free)\n"
    "    redis.call('HSET', p .. ':held', tid, 0)\n"
    "    redis.call('HSET', p .. ':prio', tid, ARGV[i + 2])\n"
    "    redis.call('HSET', p .. ':data', tid, ARGV[i + 3])\n"
    "    for ann in string.gmatch(ARGV[i + 4], '[^,]+') do\n"
    "      redis.call('SADD', p .. ':seen:' .. tid, ann)\n"
    "    end\n"
    "    if free > 0 then redis.call('ZADD', KEYS[1], ARGV[i + 2], tid) end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', p .. ':cursor', ARGV[2])\n"
    "return redis.call('ZCARD', KEYS[1])\n";

/* ARGV: prefix, lock ms, want lock, project id. Returns {cursor, exhausted, locked};
 * the cursor is "" when the window starts from the beginning. */
static const char REFILL_BEGIN_LUA[] =
    "local p = ARGV[1]\n"
    "local cur = redis.call('GET', p .. ':cursor') or ''\n"
    "local ex = redis.call('EXISTS', p .. ':exhausted')\n"
    "local locked = 0\n"
    "local init = redis.call('EXISTS', p .. ':init')\n"
    "if init == 0 then cur = ''; ex = 0 end\n"
    "if ARGV[3] == '1' and ex == 0 then\n"
    "  if redis.call('SET', p .. ':refill', '1', 'NX', 'PX', ARGV[2]) then locked = 1 end\n"
    "end\n"
    "return {cur, ex, locked, init}\n";

/* ARGV: prefix, fencing floor, project id, now. Marks the project's Redis state
 * as initialised (after a first use, a FLUSHALL or a restart without
 * persistence) and lifts the fencing counter above every token PostgreSQL
 * has seen, so tokens never repeat. */
static const char INIT_LUA[] =
    "local p = ARGV[1]\n"
    "local cur = tonumber(redis.call('GET', p .. ':fence') or '0')\n"
    "if cur < tonumber(ARGV[2]) then redis.call('SET', p .. ':fence', ARGV[2]) end\n"
    "redis.call('SET', p .. ':init', ARGV[4])\n"
    "redis.call('SADD', 'quorum:projects', ARGV[3])\n"
    "return 1\n";

/* ARGV: prefix, exhausted flag ('1', '0', or 'reopen': new tasks exist, so
 * forget the cursor and exhaustion; tasks already in the window are kept),
 * project id. */
static const char REFILL_END_LUA[] =
    "local p = ARGV[1]\n"
    "if ARGV[2] == 'reopen' then\n"
    "  redis.call('DEL', p .. ':exhausted')\n"
    "  redis.call('DEL', p .. ':cursor')\n"
    "  redis.call('SADD', 'quorum:projects', ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "if ARGV[2] == '1' then redis.call('SET', p .. ':exhausted', '1') end\n"
    "redis.call('DEL', p .. ':refill')\n"
    "return 1\n";

struct qr_lease_engine_s {
    qr_redis_t *redis;
    qr_redis_script_t *grant, *touch, *end, *reap, *window_add, *refill_begin, *refill_end, *init,
        *regrant, *seed;
};

const char *qr_lease_script_text(const char *name)
{
    static const struct {
        const char *name, *text;
    } scripts[] = {{"grant", GRANT_LUA},
                   {"touch", TOUCH_LUA},
                   {"end", END_LUA},
                   {"reap", REAP_LUA},
                   {"window_add", WINDOW_ADD_LUA},
                   {"refill_begin", REFILL_BEGIN_LUA},
                   {"refill_end", REFILL_END_LUA},
                   {"init", INIT_LUA},
                   {"regrant", REGRANT_LUA},
                   {"seed", SEED_LUA}};
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        if (!strcmp(scripts[i].name, name))
            return scripts[i].text;
    return NULL;
}

qr_lease_engine_t *qr_lease_engine_new(qr_redis_t *redis)
{
    qr_lease_engine_t *e = qr_xcalloc(1, sizeof *e);
    e->redis = redis;
    e->grant = qr_redis_script(redis, GRANT_LUA);
    e->touch = qr_redis_script(redis, TOUCH_LUA);
    e->end = qr_redis_script(redis, END_LUA);
    e->reap = qr_redis_script(redis, REAP_LUA);
    e->window_add = qr_redis_script(redis, WINDOW_ADD_LUA);
    e->refill_begin = qr_redis_script(redis, REFILL_BEGIN_LUA);
    e->refill_end = qr_redis_script(redis, REFILL_END_LUA);
    e->init = qr_redis_script(redis, INIT_LUA);
    e->regrant = qr_redis_script(redis, REGRANT_LUA);
    e->seed = qr_redis_script(redis, SEED_LUA);
    return e;
}

void qr_lease_engine_free(qr_lease_engine_t *e)
{
    free(e);
}

/* One pending script call: what to call back and the strings its argv
 * points into (kept until the call returns, for the NOSCRIPT resend). */
typedef struct op_s {
    qr_lease_engine_t *e;
    int64_t project;
    void (*cb)(void);
    void *arg;
    int limited; /* grant: cb is a qr_lease_grant_limited_cb */
    int nargs;
    char *args[16];
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
    op->args[op->nargs++] = s;
}

static void op_free(op_t *op)
{
    for (int i = 0; i < op->nargs; i++)
        free(op->args[i]);
    free(op);
}

static char *prefix(int64_t project)
{
    return qr_xasprintf("{p:%" PRId64 "}", project);
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

static int send_op(op_t *op, qr_redis_script_t *s, int nkeys, qr_redis_cb cb)
{
    int rc =
        qr_redis_eval(op->e->redis, s, nkeys, op->nargs, (const char **)op->args, NULL, cb, op);
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
            lcb(QR_EIO, NULL, 0, 0, QR_LEASE_GRANTED, op->arg);
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
                                                 : QR_LEASE_GRANTED,
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
    op_t *op = op_new(e, project, cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:ready", p));
    op_arg(op, qr_xasprintf("%s:leases", p));
    op_arg(op, qr_xasprintf("%s:alive", p));
    op_arg(op, p);
    op_arg(op, qr_xasprintf("%" PRId64, annotator));
    op_arg(op, qr_xasprintf("%d", max));
    op_arg(op, qr_xasprintf("%" PRId64, now_ms));
    op_arg(op, qr_xasprintf("%d", ttl_ms));
    /* Scan enough candidates to step over the tasks this annotator has seen
     * at the head of the window. */
    op_arg(op, qr_xasprintf("%d", 256 + 4 * max));
    op_arg(op, qr_xasprintf("%d", live > 0 ? live : -1));
    return op;
}

int qr_lease_grant(qr_lease_engine_t *e, int64_t project, int64_t annotator, int max,
                   int64_t now_ms, int ttl_ms, qr_lease_grant_cb cb, void *arg)
{
    op_t *op = grant_op(e, project, annotator, max, -1, now_ms, ttl_ms, (void (*)(void))cb, arg);
    return send_op(op, e->grant, 3, on_grant);
}

int qr_lease_grant_limited(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                           const qr_lease_limits_t *lim, int max, int64_t now_ms, int ttl_ms,
                           qr_lease_grant_limited_cb cb, void *arg)
{
    op_t *op =
        grant_op(e, project, annotator, max, lim->live, now_ms, ttl_ms, (void (*)(void))cb, arg);
    op->limited = 1;
    op_arg(op, qr_xasprintf("%" PRId64, lim->org));
    op_arg(op, qr_xasprintf("%" PRId64, lim->quota));
    op_arg(op, qr_xasprintf("%" PRId64, lim->cap));
    return send_op(op, e->grant, 3, on_grant);
}

int qr_lease_count_seed(qr_lease_engine_t *e, int64_t project, int n, const int64_t *orgs,
                        const int64_t *annotators, const int64_t *counts, qr_lease_done_cb cb,
                        void *arg)
{
    /* Variable-length, like qr_lease_window_add. */
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    int argc = 2 + 3 * n;
    char **argv = qr_xcalloc((size_t)argc, sizeof *argv);
    char *p = prefix(project);
    argv[0] = qr_xasprintf("%s:counted", p);
    argv[1] = p;
    for (int i = 0; i < n; i++) {
        argv[2 + 3 * i] = qr_xasprintf("%" PRId64, orgs[i]);
        argv[3 + 3 * i] = qr_xasprintf("%" PRId64, annotators[i]);
        argv[4 + 3 * i] = qr_xasprintf("%" PRId64, counts[i]);
    }
    int rc = qr_redis_eval(e->redis, e->seed, 1, argc, (const char **)argv, NULL, on_done, op);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    if (rc < 0)
        op_free(op);
    return rc;
}

/* --- heartbeat and submit ---------------------------------------------- */

static void on_touch(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_info_cb cb = (qr_lease_info_cb)op->cb;
    if (reply_failed(r, err, "lease touch")) {
        cb(QR_EIO, NULL, op->arg);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        cb(QR_ECONFLCT, NULL, op->arg);
    } else {
        qr_lease_info_t info = {reply_int(r->element[0]), reply_int(r->element[1]),
                                reply_int(r->element[2])};
        cb(0, &info, op->arg);
    }
    op_free(op);
}

static int touch(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                 int64_t now_ms, int64_t new_expiry, const char *mode, qr_lease_info_cb cb,
                 void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:lease:%" PRId64, p, token));
    op_arg(op, qr_xasprintf("%s:leases", p));
    op_arg(op, qr_xasprintf("%" PRId64, annotator));
    op_arg(op, qr_xasprintf("%" PRId64, now_ms));
    op_arg(op, qr_xasprintf("%" PRId64, new_expiry));
    op_arg(op, qr_xasprintf("%" PRId64, token));
    op_arg(op, qr_xstrdup(mode));
    free(p);
    return send_op(op, e->touch, 2, on_touch);
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

static void on_done(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_done_cb cb = (qr_lease_done_cb)op->cb;
    int rc = reply_failed(r, err, "lease step") ? QR_EIO : 0;
    if (cb)
        cb(rc, op->arg);
    op_free(op);
}

static void on_ended(redisReply *r, const char *err, void *arg)
{
    op_t *op = arg;
    qr_lease_info_cb cb = (qr_lease_info_cb)op->cb;
    if (reply_failed(r, err, "lease end")) {
        if (cb)
            cb(QR_EIO, NULL, op->arg);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        if (cb)
            cb(QR_ECONFLCT, NULL, op->arg);
    } else if (cb) {
        qr_lease_info_t info = {reply_int(r->element[0]), reply_int(r->element[1]),
                                reply_int(r->element[2])};
        cb(0, &info, op->arg);
    }
    op_free(op);
}

static int end_lease(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                     int64_t now_ms, const char *mode, qr_lease_info_cb cb, void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:lease:%" PRId64, p, token));
    op_arg(op, qr_xasprintf("%s:leases", p));
    op_arg(op, qr_xasprintf("%s:ready", p));
    op_arg(op, qr_xasprintf("%s:alive", p));
    op_arg(op, p);
    op_arg(op, qr_xasprintf("%" PRId64, token));
    op_arg(op, qr_xstrdup(mode));
    op_arg(op, qr_xasprintf("%" PRId64, annotator));
    op_arg(op, qr_xasprintf("%" PRId64, now_ms));
    return send_op(op, e->end, 4, on_ended);
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
        qr_lease_info_t info = {reply_int(r->element[0]), 0, reply_int(r->element[1])};
        cb(0, &info, op->arg);
    }
    op_free(op);
}

int qr_lease_regrant(qr_lease_engine_t *e, int64_t project, int64_t task, int64_t annotator,
                     int64_t org, int64_t now_ms, int ttl_ms, double priority, const char *data,
                     qr_lease_info_cb cb, void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:leases", p));
    op_arg(op, qr_xasprintf("%s:alive", p));
    op_arg(op, p);
    op_arg(op, qr_xasprintf("%" PRId64, task));
    op_arg(op, qr_xasprintf("%" PRId64, annotator));
    op_arg(op, qr_xasprintf("%" PRId64, now_ms));
    op_arg(op, qr_xasprintf("%d", ttl_ms));
    op_arg(op, qr_xasprintf("%.17g", priority));
    op_arg(op, qr_xstrdup(data));
    if (org > 0)
        op_arg(op, qr_xasprintf("%" PRId64, org));
    return send_op(op, e->regrant, 2, on_regranted);
}

int qr_lease_release(qr_lease_engine_t *e, int64_t project, int64_t annotator, int64_t token,
                     int64_t now_ms, int skip, qr_lease_info_cb cb, void *arg)
{
    return end_lease(e, project, annotator, token, now_ms, skip ? "skip" : "release", cb, arg);
}

/* --- window ------------------------------------------------------------- */

int qr_lease_window_add(qr_lease_engine_t *e, int64_t project, int n, const int64_t *ids,
                        const int *free_slots, const double *priorities, const char *const *datas,
                        const char *const *done_by, const char *cursor, qr_lease_done_cb cb,
                        void *arg)
{
    /* Variable-length: build argv directly rather than through op->args. */
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    int argc = 3 + 5 * n;
    const char **argv = qr_xcalloc((size_t)argc, sizeof *argv);
    char **owned = qr_xcalloc((size_t)argc, sizeof *owned);
    char *p = prefix(project);
    owned[0] = qr_xasprintf("%s:ready", p);
    owned[1] = p;
    owned[2] = qr_xstrdup(cursor);
    for (int i = 0; i < n; i++) {
        owned[3 + 5 * i] = qr_xasprintf("%" PRId64, ids[i]);
        owned[4 + 5 * i] = qr_xasprintf("%d", free_slots[i]);
        owned[5 + 5 * i] = qr_xasprintf("%.17g", priorities[i]);
        argv[6 + 5 * i] = datas[i];
        argv[7 + 5 * i] = done_by ? done_by[i] : "";
    }
    for (int i = 0; i < argc; i++)
        if (owned[i])
            argv[i] = owned[i];
    int rc = qr_redis_eval(e->redis, e->window_add, 1, argc, argv, NULL, on_done, op);
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    if (rc < 0)
        op_free(op);
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
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:refill", p));
    op_arg(op, p);
    op_arg(op, qr_xasprintf("%d", lock_ms));
    op_arg(op, qr_xstrdup(lock_ms > 0 ? "1" : "0"));
    op_arg(op, qr_xasprintf("%" PRId64, project));
    return send_op(op, e->refill_begin, 1, on_refill_begin);
}

static int refill_end(qr_lease_engine_t *e, int64_t project, const char *flag, qr_lease_done_cb cb,
                      void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:refill", p));
    op_arg(op, p);
    op_arg(op, qr_xstrdup(flag));
    op_arg(op, qr_xasprintf("%" PRId64, project));
    return send_op(op, e->refill_end, 1, on_done);
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
    char *p = prefix(project);
    op_arg(op, qr_xstrdup("GET"));
    op_arg(op, qr_xasprintf("%s:init", p));
    free(p);
    int rc = qr_redis_command(e->redis, 2, (const char **)op->args, NULL, on_init_time, op);
    if (rc < 0)
        op_free(op);
    return rc;
}

int qr_lease_init(qr_lease_engine_t *e, int64_t project, int64_t fence_floor, qr_lease_done_cb cb,
                  void *arg)
{
    op_t *op = op_new(e, project, (void (*)(void))cb, arg);
    char *p = prefix(project);
    op_arg(op, qr_xasprintf("%s:init", p));
    op_arg(op, p);
    op_arg(op, qr_xasprintf("%" PRId64, fence_floor));
    op_arg(op, qr_xasprintf("%" PRId64, project));
    op_arg(op, qr_xasprintf("%" PRId64, qr_now_ms()));
    return send_op(op, e->init, 1, on_done);
}

int qr_lease_window_reopen(qr_lease_engine_t *e, int64_t project, qr_lease_done_cb cb, void *arg)
{
    return refill_end(e, project, "reopen", cb, arg);
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
        op_t *op = op_new(rp->e, project, NULL, rp);
        char *p = prefix(project);
        op_arg(op, qr_xasprintf("%s:leases", p));
        op_arg(op, qr_xasprintf("%s:ready", p));
        op_arg(op, qr_xasprintf("%s:alive", p));
        op_arg(op, p);
        op_arg(op, qr_xasprintf("%" PRId64, rp->now_ms));
        op_arg(op, qr_xstrdup("1000"));
        rp->pending++;
        if (send_op(op, rp->e->reap, 3, on_reap_project) < 0)
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
    const char *argv[] = {"SMEMBERS", "quorum:projects"};
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
            char *p = prefix(projects[i]);
            char *key = qr_xasprintf("%s:%s", p, k ? "leases" : "ready");
            free(p);
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
