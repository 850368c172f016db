/*
 * lease_scripts.c - the text of the lease engine's Lua scripts (see
 * lease_scripts.h) and the keys each takes. Each script's comment says what
 * it takes in ARGV and what it returns. Times are epoch milliseconds passed
 * in by the broker, so a script is a pure function of its arguments and the
 * keys.
 *
 * No script builds a key name: what used to be one key per task or per
 * lease ({p:P}:seen:<task>, {p:P}:lease:<token>) is one member of a sorted
 * set or one field of a hash of the project, because a task id read from
 * the window or a token made by INCR cannot be declared before the script
 * runs.
 *
 * {p:P}:seen holds "task:annotator" for each annotator who holds or did a
 * task, scored by the task id (exact: ids stay below 2^53), so that a grant
 * asks about one pair (ZSCORE, O(1)) and a task leaving the window drops
 * all of its pairs at once (ZREMRANGEBYSCORE), however many there are.
 */
#include "lease_scripts.h"

/* The scripts keep one Lua line per C line. */
/* clang-format off */

/* A lease is one field of {p:P}:lease: its fencing token maps to
 * "task annotator granted expires state pinned org", where state is 'live'
 * or 'submitting' (pinned: the end of the submit's grace, ms) and org is
 * the organization a counted lease counts against; '~' and the
 * organization for a lease granted uncounted (its share sets no quota and
 * no cap: SEED_LUA counts it should the counters be built while it is
 * live); '-' for a gold lease or one without an organization. Only a
 * counted lease (lease_counted) moves the counters when it ends. */
#define LEASE_CODEC_LUA                                                                            \
    "local function lease_parse(v)\n"                                                              \
    "  local t, a, g, x, s, pin, org =\n"                                                          \
    "    string.match(v, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')\n"                         \
    "  return {task = t, ann = a, granted = g, expires = x, state = s, pinned = pin, org = org}\n" \
    "end\n"                                                                                        \
    "local function lease_get(key, tok)\n"                                                         \
    "  local v = redis.call('HGET', key, tok)\n"                                                   \
    "  if v then return lease_parse(v) end\n"                                                      \
    "  return nil\n"                                                                               \
    "end\n"                                                                                        \
    "local function lease_counted(l)\n"                                                            \
    "  return l.org ~= '-' and string.byte(l.org, 1) ~= 126\n"                                     \
    "end\n"                                                                                        \
    "local function lease_put(key, tok, l)\n"                                                      \
    "  redis.call('HSET', key, tok, string.format('%s %s %d %d %s %s %s', l.task, l.ann,\n"        \
    "    l.granted, l.expires, l.state, l.pinned, l.org))\n"                                       \
    "end\n"

/* Calls cmd key with the elements of t, at most 1,000 a call (Lua's
 * unpack runs out of C stack a few thousand arguments on); step keeps
 * pairs whole. Answers of the calls, appended (HMGET's). */
#define BULK_LUA                                                                                   \
    "local function bulk(cmd, key, t)\n"                                                           \
    "  local out = {}\n"                                                                           \
    "  for i = 1, #t, 1000 do\n"                                                                   \
    "    local r = redis.call(cmd, key, unpack(t, i, math.min(i + 999, #t)))\n"                    \
    "    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end\n"          \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "end\n"

/* ARGV: annotator, max, now, ttl, scan, live[, org, quota, cap[, gold rate,
 * gold onboarding, judged]]. Grants up
 * to max leases scanning at most scan ready tasks (read a page at a time:
 * 2 max + 8 first, which is nearly always enough, then 64 at a time; the
 * ranks of the next page step back over the members this call took out), and no lease past live
 * ones of this annotator (-1: no bound): alive counts each annotator's live
 * leases, and whatever ends a lease (END_LUA, REAP_LUA) takes it off again.
 * With org (the annotator's organization) and a quota or a cap (-1: none)
 * the grant is counted: each lease adds one to vused[org] and aused[ann]
 * (submitted annotations plus live leases; see SEED_LUA), and no lease is
 * granted past the quota of the organization or the cap of the annotator.
 * Counting needs the counters built (counted): until they are, nothing is
 * granted and the reason is 'uncounted'. With neither a quota nor a cap
 * the counters are neither read nor written (most grants: issue 18), and
 * the lease carries '~org' (see LEASE_CODEC_LUA). Nothing is granted either from a window not built
 * (INIT_LUA): the grant finds it empty, and the broker refills it.
 * Gold (issue 16): with a gold rate p or an onboarding count N above 0, each
 * lease is a gold task while the annotator was served fewer than N
 * (gold_served), else when a hash of the annotator and the next fencing
 * token (uniform, and unknown to the annotator) falls below p; the gold task
 * is the least served one (the gold set's score) the annotator has not seen,
 * and when none is left the lease is normal work. A gold lease takes no
 * slot, counts in alive but not against quota or cap (org '-'), and looks
 * like any other. With judged '1' (the project pauses annotators below a
 * gold accuracy) a paused annotator gets nothing ('annotator_paused').
 * Gold and pauses need the gold set loaded from PostgreSQL (gold_built,
 * GOLD_LOAD_LUA): until it is, nothing is granted ('gold_unloaded').
 * Returns {ready_left, {task, token, expires, data}..., reason, exhausted,
 * refilling}; reason is '', 'quota_reached', 'cap_reached',
 * 'max_leases_reached' (fewer leases than asked, or none, because of live),
 * 'uncounted', 'gold_unloaded' or 'annotator_paused'; exhausted 1 when the
 * last refill found no more tasks, refilling 1 when a refill holds the
 * lock: then a refill now would load nothing, and the broker asks no
 * refill_begin (issue 18). Both are missing from the early answers. */
static const char GRANT_LUA[] =
    "local built, ready, leases, alive, counted, vused, aused, seen, free, held, fence, lease,"
    " data, gold, gold_data, gold_served, paused, gold_built, exhausted, refill = unpack(KEYS)\n"
    LEASE_CODEC_LUA
    "local ann, max, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local scan, live = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local org, quota, cap = ARGV[7], tonumber(ARGV[8] or '-1'), tonumber(ARGV[9] or '-1')\n"
    "local lorg0 = org and '~' .. org or '-'\n"
    "if quota < 0 and cap < 0 then org = nil end\n"
    "if org then lorg0 = org end\n"
    "local grate, gonb = tonumber(ARGV[10] or '0'), tonumber(ARGV[11] or '0')\n"
    "local judged, gon = ARGV[12] == '1', grate > 0 or gonb > 0\n"
    "if redis.call('EXISTS', built) == 0 then return {0, {}, ''} end\n"
    "if (gon or judged) and redis.call('EXISTS', gold_built) == 0 then\n"
    "  return {redis.call('ZCARD', ready), {}, 'gold_unloaded'}\n"
    "end\n"
    "if judged and redis.call('HEXISTS', paused, ann) == 1 then\n"
    "  return {redis.call('ZCARD', ready), {}, 'annotator_paused'}\n"
    "end\n"
    "local nvused, naused = 0, 0\n"
    "if org then\n"
    "  if redis.call('EXISTS', counted) == 0 then\n"
    "    return {redis.call('ZCARD', ready), {}, 'uncounted'}\n"
    "  end\n"
    "  nvused = tonumber(redis.call('HGET', vused, org) or '0')\n"
    "  naused = tonumber(redis.call('HGET', aused, ann) or '0')\n"
    "  if quota >= 0 and nvused >= quota then\n"
    "    return {redis.call('ZCARD', ready), {}, 'quota_reached'}\n"
    "  end\n"
    "  if cap >= 0 and naused >= cap then\n"
    "    return {redis.call('ZCARD', ready), {}, 'cap_reached'}\n"
    "  end\n"
    "end\n"
    "local nalive = tonumber(redis.call('HGET', alive, ann) or '0')\n"
    "if live >= 0 and nalive >= live then\n"
    "  return {redis.call('ZCARD', ready), {}, 'max_leases_reached'}\n"
    "end\n"
    "local ngold = gon and tonumber(redis.call('HGET', gold_served, ann) or '0') or 0\n"
    "local golds = nil\n"
    "local cand, ci, got, gone = {}, 1, 0, 0\n"
    "local function page()\n"
    "  if got >= scan then return false end\n"
    "  local n = math.min(scan - got, got == 0 and max * 2 + 8 or 64)\n"
    "  cand, ci = redis.call('ZRANGE', ready, got - gone, got - gone + n - 1), 1\n"
    "  got = #cand < n and scan or got + n\n"
    "  return #cand > 0\n"
    "end\n"
    "local out = {}\n"
    "while #out < max do\n"
    "  if (quota >= 0 and nvused >= quota) or (cap >= 0 and naused >= cap) then break end\n"
    "  if live >= 0 and nalive >= live then break end\n"
    "  local tid, isgold = nil, false\n"
    "  if gon then\n"
    "    local due = ngold < gonb\n"
    "    if not due and grate > 0 then\n"
    "      local nexttok = tonumber(redis.call('GET', fence) or '0') + 1\n"
    "      local h = redis.sha1hex(ann .. ':' .. nexttok)\n"
    "      due = tonumber(string.sub(h, 1, 8), 16) < grate * 4294967296\n"
    "    end\n"
    "    if due then\n"
    "      golds = golds or redis.call('ZRANGE', gold, 0, -1)\n"
    "      for _, g in ipairs(golds) do\n"
    "        if not redis.call('ZSCORE', seen, g .. ':' .. ann) then\n"
    "          tid, isgold = g, true\n"
    "          break\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  while not tid and (ci <= #cand or page()) do\n"
    "    local c = cand[ci]\n"
    "    ci = ci + 1\n"
    "    if not redis.call('ZSCORE', seen, c .. ':' .. ann) then\n"
    "      if tonumber(redis.call('HGET', free, c) or '0') <= 0 then\n"
    "        gone = gone + redis.call('ZREM', ready, c)\n"
    "      else\n"
    "        tid = c\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if not tid then break end\n"
    "  local lorg, body = lorg0, nil\n"
    "  if isgold then\n"
    "    redis.call('ZINCRBY', gold, 1, tid)\n"
    "    ngold = redis.call('HINCRBY', gold_served, ann, 1)\n"
    "    lorg = '-'\n"
    "    body = redis.call('HGET', gold_data, tid)\n"
    "  else\n"
    "    if redis.call('HINCRBY', free, tid, -1) <= 0 then\n"
    "      gone = gone + redis.call('ZREM', ready, tid)\n"
    "    end\n"
    "    redis.call('HINCRBY', held, tid, 1)\n"
    "    body = redis.call('HGET', data, tid)\n"
    "    if org then\n"
    "      nvused = redis.call('HINCRBY', vused, org, 1)\n"
    "      naused = redis.call('HINCRBY', aused, ann, 1)\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZADD', seen, tid, tid .. ':' .. ann)\n"
    "  local tok = redis.call('INCR', fence)\n"
    "  local exp = now + ttl\n"
    "  lease_put(lease, tok, {task = tid, ann = ann, granted = now, expires = exp,\n"
    "    state = 'live', pinned = '-', org = lorg})\n"
    "  redis.call('ZADD', leases, exp, tok)\n"
    "  nalive = redis.call('HINCRBY', alive, ann, 1)\n"
    "  out[#out + 1] = {tid, tok, exp, body or '{}'}\n"
    "end\n"
    "local why = ''\n"
    "if #out < max and live >= 0 and nalive >= live then why = 'max_leases_reached' end\n"
    "return {redis.call('ZCARD', ready), out, why, redis.call('EXISTS', exhausted),\n"
    "  redis.call('EXISTS', refill)}\n";

/* ARGV: (org, annotator, annotations) triples from PostgreSQL. Builds the
 * quota and cap counters of a project unless they exist: each
 * organization's and each annotator's submitted annotations, plus the live
 * leases Redis holds (a lease carries its organization, '~org' when it was
 * granted uncounted: such a lease is counted from now on, and rewritten as
 * counted so that its end takes it off again). Returns 1 when built, 0 when
 * they existed. */
static const char SEED_LUA[] = "local counted, vused, aused, lease = unpack(KEYS)\n"
    LEASE_CODEC_LUA
                               "if redis.call('EXISTS', counted) == 1 then return 0 end\n"
                               "redis.call('DEL', vused, aused)\n"
                               "for i = 1, #ARGV, 3 do\n"
                               "  redis.call('HINCRBY', vused, ARGV[i], ARGV[i + 2])\n"
                               "  redis.call('HINCRBY', aused, ARGV[i + 1], ARGV[i + 2])\n"
                               "end\n"
                               "local all = redis.call('HGETALL', lease)\n"
                               "for i = 1, #all, 2 do\n"
                               "  local l = lease_parse(all[i + 1])\n"
                               "  l.tok = all[i]\n"
                               "  if l.org ~= '-' then\n"
                               "    if not lease_counted(l) then\n"
                               "      l.org = string.sub(l.org, 2)\n"
                               "      lease_put(lease, l.tok, l)\n"
                               "    end\n"
                               "    redis.call('HINCRBY', vused, l.org, 1)\n"
                               "    redis.call('HINCRBY', aused, l.ann, 1)\n"
                               "  end\n"
                               "end\n"
                               "redis.call('SET', counted, '1')\n"
                               "return 1\n";

/* ARGV: steps of 5 (annotator, now, new expiry, token, mode), each on one
 * lease, taken in order as separate calls would take them: a submit batch
 * pins all of its leases of the project in one call (issue 18). mode 'hb'
 * extends a live lease; 'begin' pins it for the submit until the new
 * expiry; 'peek' changes nothing and answers as 'begin' would (a submit
 * checking its value against the task first). A lease already pinned may
 * be begun again by its annotator while the pin holds: the submit that
 * pinned it may have died with its broker before committing, and the
 * agent's resend (same idempotency key) must then go through; PostgreSQL
 * keeps two racing submits to one row. Returns one answer per step:
 * {task, granted, expires, gold} (gold 1 when the task is one of the gold
 * set's), or 0 when the lease is not live (or pinned) and the caller's. */
static const char TOUCH_LUA[] =
    "local lease, leases, gold = unpack(KEYS)\n"
    LEASE_CODEC_LUA
    "local hasgold = redis.call('EXISTS', gold) == 1\n"
    "local function touch(ann, now, newexp, tok, mode)\n"
    "  local l = lease_get(lease, tok)\n"
    "  if not l or l.ann ~= ann then return 0 end\n"
    "  now = tonumber(now)\n"
    "  if l.state == 'live' then\n"
    "    if tonumber(l.expires) <= now then return 0 end\n"
    "  elseif l.state ~= 'submitting' or mode == 'hb' or tonumber(l.pinned) <= now then\n"
    "    return 0\n"
    "  end\n"
    "  local isgold = hasgold and redis.call('ZSCORE', gold, l.task) and 1 or 0\n"
    "  if mode == 'peek' then return {l.task, l.granted, l.expires, isgold} end\n"
    "  if mode == 'begin' then\n"
    "    l.state, l.pinned = 'submitting', newexp\n"
    "  else\n"
    "    l.expires = newexp\n"
    "  end\n"
    "  lease_put(lease, tok, l)\n"
    "  redis.call('ZADD', leases, newexp, tok)\n"
    "  return {l.task, l.granted, l.expires, isgold}\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, #ARGV, 5 do\n"
    "  out[#out + 1] = touch(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])\n"
    "end\n"
    "return out\n";

/* ARGV: task, annotator, now, ttl, priority, data[, organization,
 * counted ('1': the share sets a quota or a cap)]. An
 * undone annotation: its slot goes straight back to the annotator who undid
 * it, as a new lease with a new fencing token (the task re-enters the
 * window if it had left it). The quota counters do not move: one annotation
 * less, one live lease more. The lease counts among the annotator's live
 * ones, but is never refused for them: the annotator asked for this very
 * task back. A gold task (in the gold set) stays out of the window: the
 * lease is uncounted, as its grant was. Returns {token, expires}. */
static const char REGRANT_LUA[] =
    "local leases, alive, free, held, prio, data, seen, fence, lease, gold ="
    " unpack(KEYS)\n"
    LEASE_CODEC_LUA
    "local tid, ann = ARGV[1], ARGV[2]\n"
    "local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local org = ARGV[7] or '-'\n"
    "if ARGV[7] and ARGV[8] ~= '1' then org = '~' .. org end\n"
    "if redis.call('ZSCORE', gold, tid) then\n"
    "  org = '-'\n"
    "else\n"
    "  if redis.call('HEXISTS', free, tid) == 0 then\n"
    "    redis.call('HSET', free, tid, 0)\n"
    "    redis.call('HSET', held, tid, 0)\n"
    "    redis.call('HSET', prio, tid, ARGV[5])\n"
    "    redis.call('HSET', data, tid, ARGV[6])\n"
    "  end\n"
    "  redis.call('HINCRBY', held, tid, 1)\n"
    "end\n"
    "redis.call('ZADD', seen, tid, tid .. ':' .. ann)\n"
    "local tok = redis.call('INCR', fence)\n"
    "local exp = now + ttl\n"
    "lease_put(lease, tok, {task = tid, ann = ann, granted = now, expires = exp, state = 'live',\n"
    "  pinned = '-', org = org})\n"
    "redis.call('HINCRBY', alive, ann, 1)\n"
    "redis.call('ZADD', leases, exp, tok)\n"
    "return {tok, exp}\n";

/* ARGV: steps of 4 (token, mode, annotator, now), each ending one lease,
 * taken in order as separate calls would take them: the leases of one
 * project whose annotations one group commit stored end in one call
 * (issue 18). 'commit' consumes the slot; 'extend'
 * consumes it and gives the task one new free slot (PostgreSQL raised its
 * required count: dynamic overlap), so the task stays in the window, ready,
 * and the annotator stays in its seen set; 'drop' consumes it with
 * nothing stored (PostgreSQL holds the task complete: the counts of the
 * share drop as for an abort, and the task leaves the window as after a
 * commit); 'abort' returns it; 'return' returns it and lets the annotator
 * have the task again (a submit refused before anything was stored);
 * 'release' and 'skip' first check the lease is live and the annotator's,
 * then return the slot ('release' also lets the annotator have the task
 * again). Every mode takes the lease off its annotator's live count. A
 * lease of a gold task (in the gold set) held no slot: it ends without
 * touching the window, and the annotator stays in seen however it ends
 * (nobody sees a gold task twice). A task that leaves the window leaves it
 * once the call's steps are done, each of its keys in one call for all
 * such tasks, and the annotators' live counts move once each (issue 18):
 * no later step of the call can touch such a task (it has no live lease
 * left), and nothing in the call reads a live count. Returns one answer
 * per step: {task, granted, expires}, or 0 when there was no such (live)
 * lease. */
static const char END_LUA[] =
    "local lease, leases, ready, alive, held, free, seen, prio, data, counted, vused, aused,"
    " gold = unpack(KEYS)\n"
    LEASE_CODEC_LUA
    "local hasgold = redis.call('EXISTS', gold) == 1\n"
    BULK_LUA
    "local gone, dropped, left = {}, {}, {}\n"
    "local function uncount(l)\n"
    "  if lease_counted(l) and redis.call('EXISTS', counted) == 1 then\n"
    "    redis.call('HINCRBY', vused, l.org, -1)\n"
    "    redis.call('HINCRBY', aused, l.ann, -1)\n"
    "  end\n"
    "end\n"
    "local function finish(tok, mode, ann, now)\n"
    "  local l = lease_get(lease, tok)\n"
    "  if not l then return 0 end\n"
    "  if (mode == 'release' or mode == 'skip') and (l.ann ~= ann or l.state ~= 'live' or\n"
    "      tonumber(l.expires) <= tonumber(now)) then return 0 end\n"
    "  local tid = l.task\n"
    "  redis.call('HDEL', lease, tok)\n"
    "  redis.call('ZREM', leases, tok)\n"
    "  left[l.ann] = (left[l.ann] or 0) + 1\n"
    "  if hasgold and redis.call('ZSCORE', gold, tid) then return {tid, l.granted, l.expires} end\n"
    "  local nheld = redis.call('HINCRBY', held, tid, -1)\n"
    "  if mode == 'release' or mode == 'return' then\n"
    "    redis.call('ZREM', seen, tid .. ':' .. l.ann)\n"
    "  end\n"
    "  if mode == 'extend' then\n"
    "    redis.call('HINCRBY', free, tid, 1)\n"
    "    redis.call('ZADD', ready, redis.call('HGET', prio, tid) or tid, tid)\n"
    "    return {tid, l.granted, l.expires}\n"
    "  end\n"
    "  if mode == 'drop' then\n"
    "    uncount(l)\n"
    "    mode = 'commit'\n"
    "  end\n"
    "  if mode ~= 'commit' then\n"
    "    uncount(l)\n"
    "    redis.call('HINCRBY', free, tid, 1)\n"
    "    redis.call('ZADD', ready, redis.call('HGET', prio, tid) or tid, tid)\n"
    "    return {tid, l.granted, l.expires}\n"
    "  end\n"
    "  if not dropped[tid] and tonumber(redis.call('HGET', free, tid) or '0') <= 0 and\n"
    "      nheld <= 0 then\n"
    "    dropped[tid] = true\n"
    "    gone[#gone + 1] = tid\n"
    "  end\n"
    "  return {tid, l.granted, l.expires}\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, #ARGV, 4 do\n"
    "  out[#out + 1] = finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])\n"
    "end\n"
    "for ann, n in pairs(left) do\n"
    "  if redis.call('HINCRBY', alive, ann, -n) <= 0 then redis.call('HDEL', alive, ann) end\n"
    "end\n"
    "if #gone > 0 then\n"
    "  for _, tid in ipairs(gone) do redis.call('ZREMRANGEBYSCORE', seen, tid, tid) end\n"
    "  bulk('HDEL', free, gone)\n"
    "  bulk('HDEL', held, gone)\n"
    "  bulk('HDEL', data, gone)\n"
    "  bulk('HDEL', prio, gone)\n"
    "end\n"
    "return out\n";

/* ARGV: now, limit. Ends up to limit leases expired at now and returns
 * their slots (a gold task's lease has none, and its annotator stays in
 * seen). Returns them as {token, task, ann, granted, expires}... */
static const char REAP_LUA[] =
    "local leases, lease, ready, alive, held, free, seen, prio, counted, vused, aused, gold ="
    " unpack(KEYS)\n"
    LEASE_CODEC_LUA
    "local out = {}\n"
    "for _, tok in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', ARGV[1], 'LIMIT', 0,\n"
    "    ARGV[2])) do\n"
    "  local l = lease_get(lease, tok)\n"
    "  redis.call('ZREM', leases, tok)\n"
    "  redis.call('HDEL', lease, tok)\n"
    "  if l then\n"
    "    if redis.call('HINCRBY', alive, l.ann, -1) <= 0 then redis.call('HDEL', alive, l.ann) "
    "end\n"
    "    if lease_counted(l) and redis.call('EXISTS', counted) == 1 then\n"
    "      redis.call('HINCRBY', vused, l.org, -1)\n"
    "      redis.call('HINCRBY', aused, l.ann, -1)\n"
    "    end\n"
    "    if not redis.call('ZSCORE', gold, l.task) then\n"
    "      redis.call('ZREM', seen, l.task .. ':' .. l.ann)\n"
    "      redis.call('HINCRBY', free, l.task, 1)\n"
    "      redis.call('HINCRBY', held, l.task, -1)\n"
    "      redis.call('ZADD', ready, redis.call('HGET', prio, l.task) or l.task, l.task)\n"
    "    end\n"
    "    out[#out + 1] = {tok, l.task, l.ann, l.granted, l.expires}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: cursor, then (id, free, priority, data, done-by) quintuples;
 * done-by lists (comma-separated) the annotators who annotated or skipped
 * the task already. A task already in the window is left as it is (and one
 * named twice is added once). The cursor ("priority id" of the last row
 * read from PostgreSQL) is where the next refill starts; '*' leaves it as it
 * is (the chunks of a refill but its last, qr_lease_window_add). Each key is
 * written by one call for all the tasks (issue 18: six calls a task took
 * Redis about 4.5 us a task on a quiet machine, 11 under load). Returns the
 * ready count. */
static const char WINDOW_ADD_LUA[] =
    "local ready, free, held, prio, data, seen, cursor = unpack(KEYS)\n"
    BULK_LUA
    "local ids = {}\n"
    "for i = 2, #ARGV, 5 do ids[#ids + 1] = ARGV[i] end\n"
    "local have = bulk('HMGET', free, ids)\n"
    "local fv, hv, pv, dv, rv, sv, taken = {}, {}, {}, {}, {}, {}, {}\n"
    "for k, tid in ipairs(ids) do\n"
    "  if not have[k] and not taken[tid] then\n"
    "    taken[tid] = true\n"
    "    local i = 5 * k - 3\n"
    "    local nfree, pr = tonumber(ARGV[i + 1]), ARGV[i + 2]\n"
    "    fv[#fv + 1] = tid; fv[#fv + 1] = nfree\n"
    "    hv[#hv + 1] = tid; hv[#hv + 1] = 0\n"
    "    pv[#pv + 1] = tid; pv[#pv + 1] = pr\n"
    "    dv[#dv + 1] = tid; dv[#dv + 1] = ARGV[i + 3]\n"
    "    for ann in string.gmatch(ARGV[i + 4], '[^,]+') do\n"
    "      sv[#sv + 1] = tid; sv[#sv + 1] = tid .. ':' .. ann\n"
    "    end\n"
    "    if nfree > 0 then rv[#rv + 1] = pr; rv[#rv + 1] = tid end\n"
    "  end\n"
    "end\n"
    "if #fv > 0 then\n"
    "  bulk('HSET', free, fv)\n"
    "  bulk('HSET', held, hv)\n"
    "  bulk('HSET', prio, pv)\n"
    "  bulk('HSET', data, dv)\n"
    "end\n"
    "if #sv > 0 then bulk('ZADD', seen, sv) end\n"
    "if #rv > 0 then bulk('ZADD', ready, rv) end\n"
    "if ARGV[1] ~= '*' then redis.call('SET', cursor, ARGV[1]) end\n"
    "return redis.call('ZCARD', ready)\n";

/* ARGV: (id, priority, slots) triples: tasks of the window as PostgreSQL
 * holds them now (slots: required - done_count). A task still in the window
 * takes its new priority (its place in the ready set, if it is there); one
 * with no slot left in PostgreSQL (auto-accepted meanwhile) leaves the ready
 * set at once, and the window once no lease of it is live. Tasks not in the
 * window are left to the refill. Returns how many tasks it changed. */
static const char RESCORE_LUA[] =
    "local ready, free, held, prio, data, seen = unpack(KEYS)\n"
    "local n = 0\n"
    "for i = 1, #ARGV, 3 do\n"
    "  local tid = ARGV[i]\n"
    "  if redis.call('HEXISTS', free, tid) == 1 then\n"
    "    n = n + 1\n"
    "    if tonumber(ARGV[i + 2]) <= 0 then\n"
    "      redis.call('ZREM', ready, tid)\n"
    "      redis.call('HSET', free, tid, 0)\n"
    "      if tonumber(redis.call('HGET', held, tid) or '0') <= 0 then\n"
    "        redis.call('HDEL', free, tid)\n"
    "        redis.call('HDEL', held, tid)\n"
    "        redis.call('HDEL', prio, tid)\n"
    "        redis.call('HDEL', data, tid)\n"
    "        redis.call('ZREMRANGEBYSCORE', seen, tid, tid)\n"
    "      end\n"
    "    else\n"
    "      redis.call('HSET', prio, tid, ARGV[i + 1])\n"
    "      if redis.call('ZSCORE', ready, tid) then redis.call('ZADD', ready, ARGV[i + 1], tid) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n\n";

/* ARGV: lock ms, want lock ('1' or '0'). Returns {cursor, exhausted,
 * locked, built}; the cursor is "" when the window starts from the
 * beginning, and built 0 when the project's state must be built first. */
static const char REFILL_BEGIN_LUA[] =
    "local cursor, exhausted, built, refill = unpack(KEYS)\n"
    "local cur = redis.call('GET', cursor) or ''\n"
    "local ex = redis.call('EXISTS', exhausted)\n"
    "local nbuilt = redis.call('EXISTS', built)\n"
    "if nbuilt == 0 then cur = ''; ex = 0 end\n"
    "local locked = 0\n"
    "if ARGV[2] == '1' and ex == 0 then\n"
    "  if redis.call('SET', refill, '1', 'NX', 'PX', ARGV[1]) then locked = 1 end\n"
    "end\n"
    "return {cur, ex, locked, nbuilt}\n";

/* ARGV: fencing floor, now. Lifts the fencing counter above every token
 * PostgreSQL has seen, so tokens never repeat, and, unless another broker
 * did so already, marks the project's state built (at now): after a first
 * use, a FLUSHALL or a restart without persistence. After an upgrade from
 * the older layout (marked by init, with a key per task and per lease that
 * no script may name) it first drops what is left of that layout's window,
 * leases and counters. The caller registered the project for the reaper
 * first (the registry is outside the project's slot) and loads the window
 * next. Returns 1 when it built, 0 when the state was built already. */
static const char INIT_LUA[] =
    "local fence, built, init, ready, free, held, prio, data, seen, leases, lease, alive, counted,"
    " vused, aused, cursor, exhausted = unpack(KEYS)\n"
    "if tonumber(redis.call('GET', fence) or '0') < tonumber(ARGV[1]) then\n"
    "  redis.call('SET', fence, ARGV[1])\n"
    "end\n"
    "if redis.call('EXISTS', built) == 1 then return 0 end\n"
    "if redis.call('EXISTS', init) == 1 then\n"
    "  redis.call('DEL', init, ready, free, held, prio, data, seen, leases, lease, alive, counted,\n"
    "    vused, aused, cursor, exhausted)\n"
    "end\n"
    "redis.call('SET', built, ARGV[2])\n"
    "return 1\n";

/* ARGV: exhausted flag ('1', '0', or 'reopen': new tasks exist, so forget
 * the cursor and exhaustion; tasks already in the window are kept; the
 * caller registered the project for the reaper first). '1' and '0' drop
 * the refill lock. A reopen also marks the gold set for a reload (new gold
 * tasks, or the project's gold settings changed). */
static const char REFILL_END_LUA[] =
    "local exhausted, cursor, refill, gold_built = unpack(KEYS)\n"
    "if ARGV[1] == 'reopen' then\n"
    "  redis.call('DEL', exhausted, cursor, gold_built)\n"
    "  return 1\n"
    "end\n"
    "if ARGV[1] == '1' then redis.call('SET', exhausted, '1') end\n"
    "redis.call('DEL', refill)\n"
    "return 1\n";

/* ARGV: now (ms), force ('1' or '0'). Drops the whole state of a project
 * being deleted, unless a lease of it is live (expires after now) and not
 * force. The fencing counter goes too: a deleted project's id is never
 * used again. Returns {dropped (1 or 0), live leases}; the caller takes the
 * project out of the reaper's registry (outside the project's slot). */
static const char DROP_LUA[] =
    "local leases, lease, ready, free, held, prio, data, seen, alive, counted, vused, aused,"
    " cursor, exhausted, refill, built, fence, init, gold, gold_data, gold_served, paused,"
    " gold_built = unpack(KEYS)\n"
    "local live = redis.call('ZCOUNT', leases, '(' .. ARGV[1], '+inf')\n"
    "if live > 0 and ARGV[2] ~= '1' then return {0, live} end\n"
    "redis.call('DEL', leases, lease, ready, free, held, prio, data, seen, alive, counted, vused,\n"
    "  aused, cursor, exhausted, refill, built, fence, init, gold, gold_data, gold_served, paused,\n"
    "  gold_built)\n"
    "return {1, live}\n";
/* ARGV: ntasks, nserved, npaused, then ntasks (id, serves, data, done-by)
 * quadruples, nserved (annotator, gold served) pairs and npaused
 * annotators, all from PostgreSQL. Builds the gold set (control tasks by
 * how often they were served, keeping the higher of Redis's and
 * PostgreSQL's count, with their data), each annotator's gold served count
 * (the higher one too), the paused annotators, and adds the done-by lists
 * to seen; a task of the set leaves the normal window (it was open work
 * before serving was switched on). Tasks in the set that PostgreSQL no
 * longer lists leave it. Marks the set built. Returns the set's size. */
static const char GOLD_LOAD_LUA[] =
    "local gold, gold_data, gold_served, paused, gold_built, seen, ready, free, held, prio, data ="
    " unpack(KEYS)\n"
    "local nt, ns, np = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local keep = {}\n"
    "local i = 4\n"
    "for _ = 1, nt do\n"
    "  local tid, serves = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  keep[tid] = true\n"
    "  local s = tonumber(redis.call('ZSCORE', gold, tid) or '-1')\n"
    "  if s < serves then redis.call('ZADD', gold, serves, tid) end\n"
    "  redis.call('HSET', gold_data, tid, ARGV[i + 2])\n"
    "  for a in string.gmatch(ARGV[i + 3], '[^,]+') do\n"
    "    redis.call('ZADD', seen, tid, tid .. ':' .. a)\n"
    "  end\n"
    "  redis.call('ZREM', ready, tid)\n"
    "  redis.call('HDEL', free, tid)\n"
    "  redis.call('HDEL', held, tid)\n"
    "  redis.call('HDEL', prio, tid)\n"
    "  redis.call('HDEL', data, tid)\n"
    "  i = i + 4\n"
    "end\n"
    "for _, tid in ipairs(redis.call('ZRANGE', gold, 0, -1)) do\n"
    "  if not keep[tid] then\n"
    "    redis.call('ZREM', gold, tid)\n"
    "    redis.call('HDEL', gold_data, tid)\n"
    "  end\n"
    "end\n"
    "for _ = 1, ns do\n"
    "  local n = tonumber(redis.call('HGET', gold_served, ARGV[i]) or '0')\n"
    "  if n < tonumber(ARGV[i + 1]) then redis.call('HSET', gold_served, ARGV[i], ARGV[i + 1]) end\n"
    "  i = i + 2\n"
    "end\n"
    "redis.call('DEL', paused)\n"
    "for _ = 1, np do\n"
    "  redis.call('HSET', paused, ARGV[i], '1')\n"
    "  i = i + 1\n"
    "end\n"
    "redis.call('SET', gold_built, '1')\n"
    "return redis.call('ZCARD', gold)\n";

/* ARGV: annotator, '1' to pause them or '0' to reinstate them. Every grant
 * of a project that judges gold reads this (GRANT_LUA), so a pause holds on
 * every broker at once. */
static const char PAUSE_LUA[] =
    "local paused = unpack(KEYS)\n"
    "if ARGV[2] == '1' then return redis.call('HSET', paused, ARGV[1], '1') end\n"
    "return redis.call('HDEL', paused, ARGV[1])\n";
/* clang-format on */

const qr_lease_script_def_t qr_lease_scripts[QR_LEASE_NSCRIPTS] = {
    [QR_LEASE_SCRIPT_GRANT] = {"grant",
                               GRANT_LUA,
                               {"built",       "ready",  "leases",     "alive",     "counted",
                                "vused",       "aused",  "seen",       "free",      "held",
                                "fence",       "lease",  "data",       "gold",      "gold_data",
                                "gold_served", "paused", "gold_built", "exhausted", "refill"}},
    [QR_LEASE_SCRIPT_SEED] = {"seed", SEED_LUA, {"counted", "vused", "aused", "lease"}},
    [QR_LEASE_SCRIPT_TOUCH] = {"touch", TOUCH_LUA, {"lease", "leases", "gold"}},
    [QR_LEASE_SCRIPT_REGRANT] = {"regrant",
                                 REGRANT_LUA,
                                 {"leases", "alive", "free", "held", "prio", "data", "seen",
                                  "fence", "lease", "gold"}},
    [QR_LEASE_SCRIPT_END] = {"end",
                             END_LUA,
                             {"lease", "leases", "ready", "alive", "held", "free", "seen", "prio",
                              "data", "counted", "vused", "aused", "gold"}},
    [QR_LEASE_SCRIPT_REAP] = {"reap",
                              REAP_LUA,
                              {"leases", "lease", "ready", "alive", "held", "free", "seen", "prio",
                               "counted", "vused", "aused", "gold"}},
    [QR_LEASE_SCRIPT_WINDOW_ADD] = {"window_add",
                                    WINDOW_ADD_LUA,
                                    {"ready", "free", "held", "prio", "data", "seen", "cursor"}},
    [QR_LEASE_SCRIPT_RESCORE] = {"rescore",
                                 RESCORE_LUA,
                                 {"ready", "free", "held", "prio", "data", "seen"}},
    [QR_LEASE_SCRIPT_REFILL_BEGIN] = {"refill_begin",
                                      REFILL_BEGIN_LUA,
                                      {"cursor", "exhausted", "built", "refill"}},
    [QR_LEASE_SCRIPT_INIT] = {"init",
                              INIT_LUA,
                              {"fence", "built", "init", "ready", "free", "held", "prio", "data",
                               "seen", "leases", "lease", "alive", "counted", "vused", "aused",
                               "cursor", "exhausted"}},
    [QR_LEASE_SCRIPT_REFILL_END] = {"refill_end",
                                    REFILL_END_LUA,
                                    {"exhausted", "cursor", "refill", "gold_built"}},
    [QR_LEASE_SCRIPT_DROP] =
        {"drop", DROP_LUA, {"leases", "lease",     "ready",       "free",    "held",      "prio",
                            "data",   "seen",      "alive",       "counted", "vused",     "aused",
                            "cursor", "exhausted", "refill",      "built",   "fence",     "init",
                            "gold",   "gold_data", "gold_served", "paused",  "gold_built"}},
    [QR_LEASE_SCRIPT_GOLD_LOAD] = {"gold_load",
                                   GOLD_LOAD_LUA,
                                   {"gold", "gold_data", "gold_served", "paused", "gold_built",
                                    "seen", "ready", "free", "held", "prio", "data"}},
    [QR_LEASE_SCRIPT_PAUSE] = {"pause", PAUSE_LUA, {"paused"}},
};
