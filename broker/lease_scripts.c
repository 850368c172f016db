/*
 * lease_scripts.c - the text of the lease engine's Lua scripts (see
 * lease_scripts.h). Each script's comment says what it takes in KEYS and
 * ARGV and what it returns. Times are epoch milliseconds passed in by the
 * broker, so a script is a pure function of its arguments and the keys.
 */
#include "lease_scripts.h"

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

/* ARGV: prefix, fencing floor, now. Marks the project's Redis state as
 * initialised (after a first use, a FLUSHALL or a restart without
 * persistence) and lifts the fencing counter above every token PostgreSQL
 * has seen, so tokens never repeat. The caller registered the project for
 * the reaper first (it is outside the project's slot). */
static const char INIT_LUA[] =
    "local p = ARGV[1]\n"
    "local cur = tonumber(redis.call('GET', p .. ':fence') or '0')\n"
    "if cur < tonumber(ARGV[2]) then redis.call('SET', p .. ':fence', ARGV[2]) end\n"
    "redis.call('SET', p .. ':init', ARGV[3])\n"
    "return 1\n";

/* ARGV: prefix, exhausted flag ('1', '0', or 'reopen': new tasks exist, so
 * forget the cursor and exhaustion; tasks already in the window are kept;
 * the caller registered the project for the reaper first). */
static const char REFILL_END_LUA[] =
    "local p = ARGV[1]\n"
    "if ARGV[2] == 'reopen' then\n"
    "  redis.call('DEL', p .. ':exhausted')\n"
    "  redis.call('DEL', p .. ':cursor')\n"
    "  return 1\n"
    "end\n"
    "if ARGV[2] == '1' then redis.call('SET', p .. ':exhausted', '1') end\n"
    "redis.call('DEL', p .. ':refill')\n"
    "return 1\n";

const qr_lease_script_def_t qr_lease_scripts[QR_LEASE_NSCRIPTS] = {
    [QR_LEASE_SCRIPT_GRANT] = {"grant", GRANT_LUA},
    [QR_LEASE_SCRIPT_SEED] = {"seed", SEED_LUA},
    [QR_LEASE_SCRIPT_TOUCH] = {"touch", TOUCH_LUA},
    [QR_LEASE_SCRIPT_REGRANT] = {"regrant", REGRANT_LUA},
    [QR_LEASE_SCRIPT_END] = {"end", END_LUA},
    [QR_LEASE_SCRIPT_REAP] = {"reap", REAP_LUA},
    [QR_LEASE_SCRIPT_WINDOW_ADD] = {"window_add", WINDOW_ADD_LUA},
    [QR_LEASE_SCRIPT_REFILL_BEGIN] = {"refill_begin", REFILL_BEGIN_LUA},
    [QR_LEASE_SCRIPT_INIT] = {"init", INIT_LUA},
    [QR_LEASE_SCRIPT_REFILL_END] = {"refill_end", REFILL_END_LUA},
};
