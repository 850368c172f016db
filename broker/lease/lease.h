/*
 * lease.h - the lease engine: the hot frontier of each project in Redis.
 *
 * Keys of project P all carry the hash tag {p:P}, so they lie in one hash
 * slot. A Lua script reads and writes only keys of one project, and only
 * keys passed to it in KEYS (lease_scripts.h): it builds no key name of its
 * own, so the scripts would run unchanged on Redis Cluster, which wants
 * every key a script touches declared and in one slot
 * (tests/integration/test_lease_cluster.c checks both). What is per task or
 * per lease is therefore a member of one sorted set or hash, never a key of
 * its own.
 *   {p:P}:ready        ZSET  task ids with a free slot, scored by import order
 *   {p:P}:free         HASH  task id -> free slots (required - done - leased)
 *   {p:P}:held         HASH  task id -> live leases
 *   {p:P}:data         HASH  task id -> task data (JSON text)
 *   {p:P}:prio         HASH  task id -> priority (the ready set's score; a
 *                      predictions update changes it, qr_lease_window_rescore)
 *   {p:P}:seen         ZSET  "task:annotator" scored by task id: who holds or
 *                      did each task
 *   {p:P}:leases       ZSET  fencing token -> expiry (ms since the epoch)
 *   {p:P}:lease        HASH  fencing token -> "task ann granted expires state
 *                      pinned org" (a live lease; '-': no pin, not counted)
 *   {p:P}:fence        STRING the fencing counter (INCR in the grant script)
 *   {p:P}:cursor       STRING "priority id" of the last task read from PostgreSQL
 *   {p:P}:exhausted    STRING set when a refill found no more tasks
 *   {p:P}:refill       STRING the refill lock (SET NX PX)
 *   {p:P}:built        STRING when the project's state was built from
 *                      PostgreSQL (epoch ms); missing after a FLUSHALL, a
 *                      restart without persistence or an upgrade from the
 *                      layout before this one (which had {p:P}:init, and a
 *                      key per task and per lease, {p:P}:seen:<task> and
 *                      {p:P}:lease:<token>): grants find the window empty,
 *                      and the refill they start rebuilds it
 *   {p:P}:vused        HASH  organization -> its annotators' submitted
 *                      annotations + live leases (the vendor quota's count)
 *   {p:P}:aused        HASH  annotator -> submitted + live leases (the cap's)
 *   {p:P}:alive        HASH  annotator -> live leases (the per-annotator
 *                      bound on live leases, qr_lease_limits_t.live)
 *   {p:P}:counted      STRING set once vused/aused were built from PostgreSQL
 *                      (qr_lease_count_seed); missing: grants wait for it
 *   {p:P}:gold         ZSET  the project's gold (control) tasks, scored by how
 *                      often each was served (issue 16): never in ready, free
 *                      or held; a lease of one takes no slot, and its
 *                      annotator stays in seen however it ends
 *   {p:P}:gold_data    HASH  gold task id -> task data (JSON text)
 *   {p:P}:gold_served  HASH  annotator -> gold leases granted (onboarding)
 *   {p:P}:paused       HASH  annotator -> '1': paused below the gold accuracy
 *                      (annotator_pauses in PostgreSQL is the truth)
 *   {p:P}:gold_built   STRING set once gold, gold_served and paused were
 *                      loaded from PostgreSQL (qr_lease_gold_load); a reopen
 *                      (import, settings changed) and a FLUSHALL drop it, and
 *                      a grant of a project serving or judging gold then
 *                      answers QR_LEASE_GOLD_UNLOADED until it is loaded
 *   quorum:projects    SET   projects the reaper visits; outside every
 *                      project's slot, so no script touches it: init and
 *                      reopen add the project with a plain SADD before
 *                      their script runs
 *   quorum:primary     STRING the run_id of the primary the projects' state
 *                      was last checked against, behind Sentinel only: a
 *                      primary with another run_id (a promoted replica)
 *                      gets every registered project's state dropped but
 *                      its fence, once, before any broker uses it (see
 *                      qr_redis_set_primary_check; lease.c)
 *   {q:N}:primary      STRING on a Redis Cluster, one per primary ({q:N} a tag
 *                      of one of its slots): the run_id it was checked
 *                      with; another run_id (a promoted replica) drops the
 *                      state of the projects it holds but their fences
 *                      (qr_redis_set_node_check; lease.c)
 * A task leaves the window once all its slots are done (free = held = 0), so
 * Redis memory follows the window size, not the dataset.
 *
 * The engine knows nothing of HTTP. Every multi-key step is one Lua script.
 *
 * The functions returning int return 0 when the call is on its way, and
 * then its callback runs exactly once, later (with QR_EIO when Redis is
 * down); or a negative code (the client is closing), and then the callback
 * never runs and the caller must finish the work itself: they are marked
 * QR_MUST_CHECK.
 */
#ifndef QR_LEASE_H
#define QR_LEASE_H

#include <stdint.h>

#include "redis_client.h"
#include "util.h"

typedef struct qr_lease_engine_s qr_lease_engine_t;

typedef struct qr_lease_s {
    int64_t task_id;
    int64_t token;      /* fencing token; also the lease's name */
    int64_t expires_ms; /* epoch ms */
    char *data;         /* task data JSON (owned by the grant result) */
} qr_lease_t;

/* The outcome of a grant. leases[0..n) are valid during the callback only. */
typedef void (*qr_lease_grant_cb)(int rc, const qr_lease_t *leases, int n, int64_t ready_left,
                                  void *arg);

/* Facts about a live lease, for submit. */
typedef struct qr_lease_info_s {
    int64_t task_id;
    int64_t granted_ms;
    int64_t expires_ms;
    int gold; /* heartbeat, submit begin, peek: 1 when the task is a gold task */
} qr_lease_info_t;

/* rc: 0, QR_ECONFLCT (expired, unknown, or someone else's), QR_EIO (Redis). */
typedef void (*qr_lease_info_cb)(int rc, const qr_lease_info_t *info, void *arg);
typedef void (*qr_lease_done_cb)(int rc, void *arg);

/* One expired lease, handed to the expiry callback for the history. */
typedef struct qr_lease_expired_s {
    int64_t project_id, token, task_id, annotator_id, granted_ms, expires_ms;
} qr_lease_expired_t;
typedef void (*qr_lease_expired_cb)(const qr_lease_expired_t *e, int n, void *arg);

qr_lease_engine_t *qr_lease_engine_new(qr_redis_t *redis);

/* The Lua text of a script by name (grant, seed, touch, regrant, end, reap,
 * window_add, rescore, refill_begin, refill_end, init, drop, gold_load,
 * pause), or NULL: for benchmarks and debugging. */
const char *qr_lease_script_text(const char *name);
void qr_lease_engine_free(qr_lease_engine_t *e);

/* Adds tasks to the project's window: ids[i] with free[i] slots, priority
 * priorities[i] (lower first) and data datas[i]; records cursor as where
 * the next refill starts. Tasks already in the window are left as they are. */
QR_MUST_CHECK int qr_lease_window_add(qr_lease_engine_t *e, int64_t project, int n,
                                      const int64_t *ids, const int *free, const double *priorities,
                                      const char *const *datas, const char *const *done_by,
                                      const char *cursor, qr_lease_done_cb cb, void *arg);

/* When the project's Redis state was last built (epoch ms; 0 if never):
 * a lease granted before that and unknown to Redis was lost with Redis. */
QR_MUST_CHECK int qr_lease_init_time(qr_lease_engine_t *e, int64_t project,
                                     void (*cb)(int rc, int64_t init_ms, void *arg), void *arg);

/* Registers the project for the reaper, lifts its fencing counter to at
 * least fence_floor (so a rebuilt Redis never reissues a token) and, unless
 * another broker did so already, drops what is left of the project's state
 * (the layout before this one, after an upgrade) and marks it built: the
 * caller loads the window next. */
QR_MUST_CHECK int qr_lease_init(qr_lease_engine_t *e, int64_t project, int64_t fence_floor,
                                qr_lease_done_cb cb, void *arg);

/* New tasks exist (after an import): the next refill starts from the
 * beginning again and the window is no longer exhausted. */
QR_MUST_CHECK int qr_lease_window_reopen(qr_lease_engine_t *e, int64_t project, qr_lease_done_cb cb,
                                         void *arg);

/* The ids of the tasks in the project's window (ready or held), in no
 * order; ids valid during the callback. */
typedef void (*qr_lease_ids_cb)(int rc, const int64_t *ids, int n, void *arg);
QR_MUST_CHECK int qr_lease_window_ids(qr_lease_engine_t *e, int64_t project, qr_lease_ids_cb cb,
                                      void *arg);

/* Gives tasks of the window what PostgreSQL holds now (after their
 * predictions changed): ids[i] takes priority priorities[i], or leaves the
 * ready set when slots[i] is 0 (complete, auto-accepted), and the window
 * once no lease of it is live. Tasks not in the window are left alone. */
QR_MUST_CHECK int qr_lease_window_rescore(qr_lease_engine_t *e, int64_t project, int n,
                                          const int64_t *ids, const double *priorities,
                                          const int *slots, qr_lease_done_cb cb, void *arg);

/* Reads the refill state: cursor ("" or "priority id", valid during the
 * callback) and whether the last refill found nothing; takes the project's
 * refill lock for lock_ms when lock_ms > 0. initialised is 0 when Redis holds
 * no state for the project (new, or lost): the caller runs qr_lease_init
 * before loading tasks. cb(rc, cursor, exhausted, locked, initialised). */
typedef void (*qr_lease_refill_cb)(int rc, const char *cursor, int exhausted, int locked,
                                   int initialised, void *arg);
QR_MUST_CHECK int qr_lease_refill_begin(qr_lease_engine_t *e, int64_t project, int lock_ms,
                                        qr_lease_refill_cb cb, void *arg);
/* Marks the window exhausted (nothing left in PostgreSQL past the cursor)
 * and drops the refill lock. */
QR_MUST_CHECK int qr_lease_refill_end(qr_lease_engine_t *e, int64_t project, int exhausted,
                                      qr_lease_done_cb cb, void *arg);

/* Grants up to max leases of tasks the annotator has not held or done,
 * in window order, each with a fresh fencing token, expiring ttl_ms after
 * now_ms. */
QR_MUST_CHECK int qr_lease_grant(qr_lease_engine_t *e, int64_t project, int64_t annotator, int max,
                                 int64_t now_ms, int ttl_ms, qr_lease_grant_cb cb, void *arg);

/* Who asks for a counted grant, and the bounds of their share (-1: none). */
typedef struct qr_lease_limits_s {
    int64_t org;         /* the annotator's organization */
    int64_t quota;       /* annotations (submitted + live leases) of all of org's annotators */
    int64_t cap;         /* tasks (submitted + live leases) of this annotator */
    int live;            /* live leases of this annotator (0: no bound) */
    double gold_rate;    /* share of gold leases after onboarding (0: none) */
    int gold_onboarding; /* the first gold leases of each annotator (0: none) */
    int gold_judged;     /* 1: a paused annotator gets nothing */
} qr_lease_limits_t;

/* Why a counted grant gave fewer leases than asked (or none). */
enum {
    QR_LEASE_GRANTED = 0,   /* nothing stopped it but the window */
    QR_LEASE_QUOTA_REACHED, /* the organization's quota is used up */
    QR_LEASE_CAP_REACHED,   /* this annotator's cap is used up */
    QR_LEASE_UNCOUNTED,     /* the counters are not built: qr_lease_count_seed first */
    QR_LEASE_MAX_LEASES,    /* this annotator holds lim.live live leases */
    QR_LEASE_GOLD_UNLOADED, /* the gold set is not loaded: qr_lease_gold_load first */
    QR_LEASE_PAUSED,        /* the annotator is paused (gold accuracy too low) */
};
/* What a refill started now would do, as the grant saw the window. */
enum {
    QR_LEASE_REFILL_USEFUL = 0, /* it may load tasks (or the state is not built) */
    QR_LEASE_EXHAUSTED,         /* nothing: the last refill found no more tasks */
    QR_LEASE_REFILLING,         /* nothing: another refill holds the lock */
};
/* window is one of the QR_LEASE_REFILL_USEFUL... values. */
typedef void (*qr_lease_grant_limited_cb)(int rc, const qr_lease_t *leases, int n,
                                          int64_t ready_left, int why, int window, void *arg);

/* As qr_lease_grant, and counted when lim sets a quota or a cap: in the
 * same script that grants, each lease adds one to the organization's and
 * the annotator's counts, and no lease is granted past lim's quota or cap,
 * so the bounds hold exactly whatever the number of brokers. A lease granted
 * so carries its organization; when it ends without an annotation (release,
 * skip, expiry, abort) the counts drop by one; a submit turns it into an
 * annotation and leaves them. With neither a quota nor a cap the counters
 * are not touched (nor needed: no QR_LEASE_UNCOUNTED); the lease is marked
 * with its organization as uncounted, so that counters built while it is
 * live (qr_lease_count_seed) count it. A share that gains or changes a
 * quota or cap must have its counters rebuilt: qr_lease_count_reset. */
QR_MUST_CHECK int qr_lease_grant_limited(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                         const qr_lease_limits_t *lim, int max, int64_t now_ms,
                                         int ttl_ms, qr_lease_grant_limited_cb cb, void *arg);

/* Builds the project's counters, unless they exist: n (organization,
 * annotator, submitted annotations) rows read from PostgreSQL, plus the live
 * leases Redis holds. Run after a grant answered QR_LEASE_UNCOUNTED (a new
 * project, or Redis lost its state); two brokers may race: the first wins. */
QR_MUST_CHECK int qr_lease_count_seed(qr_lease_engine_t *e, int64_t project, int n,
                                      const int64_t *orgs, const int64_t *annotators,
                                      const int64_t *counts, qr_lease_done_cb cb, void *arg);

/* Drops the project's counters, so that the next counted grant answers
 * QR_LEASE_UNCOUNTED and they are built again from PostgreSQL: after a
 * share's quota or cap was set or changed (grants of a share without
 * either were not counted). */
QR_MUST_CHECK int qr_lease_count_reset(qr_lease_engine_t *e, int64_t project, qr_lease_done_cb cb,
                                       void *arg);

/* Loads the project's gold set from PostgreSQL, as the grant asks after
 * QR_LEASE_GOLD_UNLOADED: ntasks control tasks ids[i] with serves[i]
 * annotations so far, data datas[i] and done_by[i] (comma-separated
 * annotators who answered or skipped it); nserved annotators[i] with
 * served[i] gold answers (the onboarding count); npaused paused
 * annotators. Counts already higher in Redis are kept; the paused set is
 * replaced. Two brokers may race: both load the same rows. */
QR_MUST_CHECK int qr_lease_gold_load(qr_lease_engine_t *e, int64_t project, int ntasks,
                                     const int64_t *ids, const int64_t *serves,
                                     const char *const *datas, const char *const *done_by,
                                     int nserved, const int64_t *annotators, const int64_t *served,
                                     int npaused, const int64_t *paused, qr_lease_done_cb cb,
                                     void *arg);

/* Marks an annotator paused (paused 1) or reinstated (0) in the project:
 * every broker's next grant to them sees it. */
QR_MUST_CHECK int qr_lease_annotator_pause(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                           int paused, qr_lease_done_cb cb, void *arg);

/* Corks the engine: until the matching qr_lease_uncork, heartbeats, submit
 * begins, peeks and every way a lease ends (submit commit, extend, drop,
 * abort, return, release, skip) are queued instead of sent; their
 * functions return 0 and their callbacks run later, as uncorked. Corks
 * nest. */
void qr_lease_cork(qr_lease_engine_t *e);

/* Ends a cork; the outermost sends what was queued, one script call per
 * project (and per run of steps of one kind: a begin queued after an end
 * of the same project goes in a call after it), each step answered as its
 * own call would be: the same checks, per lease, in the order queued (a
 * stale token is refused, the others go through). A client closing
 * answers each queued step QR_EIO, from within this call. */
void qr_lease_uncork(qr_lease_engine_t *e);

/* Hooks run around the answers of one call of steps: before(arg) ahead of
 * the first step's callback, after(arg) behind the last, so the caller can
 * gather what those callbacks start (the group commit's hold: a submit
 * batch's rows, pinned in one call, go to PostgreSQL in one batch). Either
 * may be NULL. */
void qr_lease_set_step_hooks(qr_lease_engine_t *e, void (*before)(void *arg),
                             void (*after)(void *arg), void *arg);

/* Extends a live lease of this annotator to now + ttl. cb gets the info. */
QR_MUST_CHECK int qr_lease_heartbeat(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                     int64_t token, int64_t now_ms, int ttl_ms, qr_lease_info_cb cb,
                                     void *arg);

/* First half of a submit: checks the lease is live and the annotator's,
 * and pins it for grace_ms so the reaper leaves it while PostgreSQL commits. */
QR_MUST_CHECK int qr_lease_submit_begin(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                        int64_t token, int64_t now_ms, int grace_ms,
                                        qr_lease_info_cb cb, void *arg);

/* Whether a submit could begin now (qr_lease_submit_begin's checks), and
 * the lease's task, changing nothing: a submit whose value needs the task's
 * data looks first, so that a refused value leaves the lease as it was
 * (live, its expiry unchanged, heartbeats allowed). cb gets the info, or
 * QR_ECONFLCT as qr_lease_submit_begin would. */
QR_MUST_CHECK int qr_lease_peek(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                int64_t token, int64_t now_ms, qr_lease_info_cb cb, void *arg);

/* Second half: the annotation is committed; the slot is consumed and the
 * lease ends. When the task has no slot left, it leaves the window. */
QR_MUST_CHECK int qr_lease_submit_commit(qr_lease_engine_t *e, int64_t project, int64_t token,
                                         qr_lease_done_cb cb, void *arg);

/* The submit was refused because PostgreSQL holds the task complete
 * (filled by others, or auto-accepted while leased): the lease ends and
 * its slot goes with it, nothing stored, so the window does not grant the
 * task again; the share's counts drop as for an abort. */
QR_MUST_CHECK int qr_lease_submit_drop(qr_lease_engine_t *e, int64_t project, int64_t token,
                                       qr_lease_done_cb cb, void *arg);

/* As qr_lease_submit_commit, for a submit whose commit raised its task's
 * required count by one (dynamic overlap, sql/0027): the slot is consumed
 * and the task gets one new free slot, so it stays in the window (even if
 * it would have left it) and goes back to the ready set; the annotator
 * stays among those who did it. Nothing happens when the lease is gone (a
 * reaped lease returned its slot already, which is the new one). */
QR_MUST_CHECK int qr_lease_submit_extend(qr_lease_engine_t *e, int64_t project, int64_t token,
                                         qr_lease_done_cb cb, void *arg);

/* The submit failed in PostgreSQL: the lease ends and its slot returns. */
QR_MUST_CHECK int qr_lease_submit_abort(qr_lease_engine_t *e, int64_t project, int64_t token,
                                        qr_lease_done_cb cb, void *arg);

/* The submit was refused before anything was stored (its idempotency key
 * names another annotation): the lease ends as if released, pinned or not;
 * the slot returns and the annotator may have the task again. cb gets the
 * lease's task and times, or QR_ECONFLCT when the lease was gone. */
QR_MUST_CHECK int qr_lease_submit_return(qr_lease_engine_t *e, int64_t project, int64_t token,
                                         qr_lease_info_cb cb, void *arg);

/* Ends a live lease of this annotator early and returns its slot to the
 * queue: a release (the annotator may get the task again) or, with skip,
 * a skip (they never get it again). cb gets the lease's task and grant time,
 * or QR_ECONFLCT when the lease is not live or not theirs. */
QR_MUST_CHECK int qr_lease_release(qr_lease_engine_t *e, int64_t project, int64_t annotator,
                                   int64_t token, int64_t now_ms, int skip, qr_lease_info_cb cb,
                                   void *arg);

/* Undo: a new lease of task for annotator of organization org (who just
 * retracted their annotation of it), bypassing the queue; the task re-enters
 * the window with priority and data if it had left it. The lease is counted
 * like a granted one when org > 0 and counted is 1 (the annotator's share
 * sets a quota or a cap, as qr_lease_grant_limited counts). cb's info holds
 * the new fencing token in task_id and the expiry in expires_ms. */
QR_MUST_CHECK int qr_lease_regrant(qr_lease_engine_t *e, int64_t project, int64_t task,
                                   int64_t annotator, int64_t org, int counted, int64_t now_ms,
                                   int ttl_ms, double priority, const char *data,
                                   qr_lease_info_cb cb, void *arg);

/* Returns every lease expired at now_ms, in every project, to its queue;
 * reports them (batched per project) through expired_cb. */
QR_MUST_CHECK int qr_lease_reap(qr_lease_engine_t *e, int64_t now_ms,
                                qr_lease_expired_cb expired_cb, void *arg);

/* --- a project's end ----------------------------------------------------- */

/* The outcome of qr_lease_project_drop: rc 0 or QR_EIO (Redis); dropped 1
 * when the project's state is gone, 0 when live leases kept it; live, the
 * leases of it that were live (expiring after now_ms). */
typedef void (*qr_lease_drop_cb)(int rc, int dropped, int64_t live, void *arg);

/* Drops every key of a project being deleted, in one script, unless a lease
 * of it is live at now_ms and force is 0; a dropped project also leaves the
 * reaper's registry. Leases dropped so are gone: their submits answer as
 * for an expired lease. A grant racing the drop may rebuild part of the
 * state from PostgreSQL until the project's rows are gone; the caller drops
 * again (force) after deleting them. */
QR_MUST_CHECK int qr_lease_project_drop(qr_lease_engine_t *e, int64_t project, int64_t now_ms,
                                        int force, qr_lease_drop_cb cb, void *arg);

/* --- what the broker's probes ask of the lease engine -------------------- */

/* The sizes of projects' ready windows and live leases: ready[i] and
 * live[i] belong to projects[i], -1 where Redis did not answer. Valid
 * during the callback only; cb runs exactly once (also when Redis is down). */
typedef void (*qr_lease_sizes_cb)(const int64_t *ready, const int64_t *live, int n, void *arg);
void qr_lease_window_sizes(qr_lease_engine_t *e, const int64_t *projects, int n,
                           qr_lease_sizes_cb cb, void *arg);

/* 1 when Redis is connected and the scripts are loaded. */
int qr_lease_ready(const qr_lease_engine_t *e);

/* Round-trips a PING: cb(0) when Redis answered PONG, cb(QR_EIO) otherwise.
 * Returns a negative code, without calling cb, when the client is closing. */
QR_MUST_CHECK int qr_lease_ping(qr_lease_engine_t *e, qr_lease_done_cb cb, void *arg);

#endif
