/*
 * test_lease.c - the lease engine's Lua scripts against a real Redis:
 * exact overlap under many annotators, no annotator twice on a task, unique
 * fencing tokens, heartbeat and submit rules, the reaper, and the window
 * leaving Redis once tasks are done.
 */
#include "testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "lease_fixture.h"
#include "redis_client.h"
#include "util.h"

#define NTASKS 60
#define SLOTS  3
#define NANN   10

static uv_loop_t loop;
static qr_redis_t *redis;
static qr_lease_engine_t *engine;
static int64_t project;

/* One awaited call. */
static int done;
static int last_rc;
static qr_lease_t got[16];
static int ngot;
static qr_lease_info_t info;

static void on_done(int rc, void *arg)
{
    last_rc = rc;
    done = 1;
}

static void on_grant(int rc, const qr_lease_t *l, int n, int64_t ready_left, void *arg)
{
    last_rc = rc;
    ngot = n;
    for (int i = 0; i < n && i < 16; i++) {
        got[i] = l[i];
        got[i].data = NULL; /* valid only during the callback */
    }
    done = 1;
}

static void on_info(int rc, const qr_lease_info_t *i, void *arg)
{
    last_rc = rc;
    if (i)
        info = *i;
    done = 1;
}

static void wait_done(void)
{
    assert_true(qr_test_run_until(&loop, &done, 5000));
    done = 0;
}

static void on_any_reply(redisReply *r, const char *err, void *arg)
{
    done = 1;
}

/* Sends a command and waits for its reply. */
static void raw(const char *a, const char *b, const char *c)
{
    const char *argv[] = {a, b, c};
    int argc = c ? 3 : b ? 2 : 1;
    assert_int_equal(qr_redis_command(redis, argc, argv, NULL, on_any_reply, NULL), 0);
    wait_done();
}

static void on_int_reply(redisReply *r, const char *err, void *arg)
{
    /* An integer reply, or a string holding one (HGET). */
    *(long long *)arg = r && r->type == REDIS_REPLY_INTEGER  ? r->integer
                        : r && r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                             : -1;
    done = 1;
}

static long long redis_int(const char *a, const char *b, const char *c)
{
    long long v = -2;
    const char *argv[] = {a, b, c};
    assert_int_equal(qr_redis_command(redis, c ? 3 : 2, argv, NULL, on_int_reply, &v), 0);
    wait_done();
    return v;
}

static int setup(void **state)
{
    lease_fixture_open(&loop, &redis, &engine);
    return 0;
}

static int teardown(void **state)
{
    lease_fixture_close(&loop, redis, engine);
    return 0;
}

/* Builds the project's state (as a broker's first refill does, before it
 * loads tasks) unless it is, and adds n tasks of slots slots. */
static void fill_window(int n, int slots)
{
    assert_int_equal(qr_lease_init(engine, project, 0, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    int64_t ids[NTASKS];
    int free_slots[NTASKS];
    const char *datas[NTASKS];
    double prios[NTASKS];
    for (int i = 0; i < n; i++) {
        ids[i] = i + 1;
        prios[i] = (double)(n - i); /* served last-imported first */
        free_slots[i] = slots;
        datas[i] = "{\"text\":\"t\"}";
    }
    assert_int_equal(qr_lease_window_add(engine, project, n, ids, free_slots, prios, datas, NULL,
                                         "", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

static void test_exact_overlap(void **state)
{
    project = 9001;
    fill_window(NTASKS, SLOTS);
    int count[NTASKS + 1] = {0};
    char seen[NANN][NTASKS + 1];
    memset(seen, 0, sizeof seen);
    int64_t last_token = 0;
    int total = 0;
    /* Annotators take turns, 4 leases a request, until nobody gets any. */
    for (int round = 0; round < 100; round++) {
        int any = 0;
        for (int a = 0; a < NANN; a++) {
            assert_int_equal(
                qr_lease_grant(engine, project, a + 1, 4, qr_now_ms(), 60000, on_grant, NULL), 0);
            wait_done();
            assert_int_equal(last_rc, 0);
            for (int i = 0; i < ngot; i++) {
                int64_t t = got[i].task_id;
                assert_in_range(t, 1, NTASKS);
                assert_false(seen[a][t]); /* never the same task twice */
                seen[a][t] = 1;
                count[t]++;
                assert_true(got[i].token > last_token); /* fencing tokens only grow */
                last_token = got[i].token;
                total++;
                any = 1;
            }
        }
        if (!any)
            break;
    }
    assert_int_equal(total, NTASKS * SLOTS);
    for (int t = 1; t <= NTASKS; t++)
        assert_int_equal(count[t], SLOTS); /* exactly the overlap asked for */
}

/* The grant script reads the window a page at a time (2 max + 8 first,
 * then 64): a page turn after the call took tasks out of the window (their
 * last slot) must go on right after the last member it read, not skip the
 * ones the removals moved up. */
static void test_grant_pages_over_seen_tasks(void **state)
{
    project = 9020;
    fill_window(NTASKS, 2); /* served from task 60 down */
    int held = 0;
    while (held < 14) {
        int want = 14 - held < 4 ? 14 - held : 4;
        assert_int_equal(
            qr_lease_grant(engine, project, 2, want, qr_now_ms(), 60000, on_grant, NULL), 0);
        wait_done();
        assert_int_equal(last_rc, 0);
        assert_int_equal(ngot, want);
        for (int i = 0; i < ngot; i++)
            assert_int_equal(got[i].task_id, NTASKS - held - i); /* 60, 59, ... 47 */
        held += ngot;
    }
    /* Two new tasks of one slot at the head of the window. */
    int64_t ids[2] = {101, 102};
    int free_slots[2] = {1, 1};
    double prios[2] = {0.1, 0.2};
    const char *datas[2] = {"{}", "{}"};
    assert_int_equal(qr_lease_window_add(engine, project, 2, ids, free_slots, prios, datas, NULL,
                                         "", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    /* The first page (16) is 101, 102 and the 14 tasks annotator 2 holds:
     * it takes 101 and 102 (out of the window: their last slot), then the
     * next page starts at task 46. */
    assert_int_equal(qr_lease_grant(engine, project, 2, 4, qr_now_ms(), 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(ngot, 4);
    assert_int_equal(got[0].task_id, 101);
    assert_int_equal(got[1].task_id, 102);
    assert_int_equal(got[2].task_id, 46);
    assert_int_equal(got[3].task_id, 45);
}

static void test_heartbeat_and_submit_rules(void **state)
{
    project = 9002;
    fill_window(2, 1);
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    int64_t tok = got[0].token;
    /* Someone else's lease: conflict. */
    assert_int_equal(qr_lease_heartbeat(engine, project, 2, tok, now, 60000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    /* Mine: extended. */
    assert_int_equal(qr_lease_heartbeat(engine, project, 1, tok, now + 1000, 60000, on_info, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(info.expires_ms, now + 61000);
    /* After its expiry the lease cannot be submitted. */
    assert_int_equal(
        qr_lease_submit_begin(engine, project, 1, tok, now + 62000, 30000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    /* Before it, it can; then commit ends it and the task leaves Redis. */
    assert_int_equal(
        qr_lease_submit_begin(engine, project, 1, tok, now + 2000, 30000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(info.task_id, got[0].task_id);
    /* A pinned lease takes no heartbeat and no other annotator's submit; its
     * own annotator may begin again (a resend after a broker died), until
     * the pin runs out. */
    assert_int_equal(qr_lease_heartbeat(engine, project, 1, tok, now + 2000, 60000, on_info, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    assert_int_equal(
        qr_lease_submit_begin(engine, project, 2, tok, now + 2000, 30000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    assert_int_equal(
        qr_lease_submit_begin(engine, project, 1, tok, now + 3000, 30000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(
        qr_lease_submit_begin(engine, project, 1, tok, now + 40000, 30000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    assert_int_equal(qr_lease_submit_commit(engine, project, tok, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HLEN", "{p:9002}:free", NULL), 1); /* only the other task */
    assert_int_equal(redis_int("HEXISTS", "{p:9002}:lease", "1"), 0);
    assert_int_equal(redis_int("ZCARD", "{p:9002}:seen", NULL), 0); /* nobody did the other */
}

/* Dynamic overlap (sql/0027): a commit that raised its task's required
 * count ends its lease with extend, which consumes the slot and gives the
 * task a new one: the task, which would have left the window, stays ready;
 * its annotators do not get it again, someone else does. An extend of a
 * lease that is gone changes nothing. */
static void test_submit_extend(void **state)
{
    project = 9010;
    fill_window(1, 2);
    int64_t now = qr_now_ms(), tok[3];
    for (int a = 0; a < 2; a++) {
        assert_int_equal(qr_lease_grant(engine, project, a + 1, 1, now, 60000, on_grant, NULL), 0);
        wait_done();
        assert_int_equal(ngot, 1);
        tok[a] = got[0].token;
    }
    assert_int_equal(qr_lease_submit_commit(engine, project, tok[0], on_done, NULL), 0);
    wait_done();
    assert_int_equal(redis_int("ZCARD", "{p:9010}:ready", NULL), 0);
    /* The second annotation brings the task to its count, and PostgreSQL
     * asked for one more. */
    assert_int_equal(qr_lease_submit_extend(engine, project, tok[1], on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HGET", "{p:9010}:free", "1"), 1);
    assert_int_equal(redis_int("HGET", "{p:9010}:held", "1"), 0);
    assert_int_equal(redis_int("ZCARD", "{p:9010}:ready", NULL), 1);
    assert_int_equal(redis_int("ZCARD", "{p:9010}:seen", NULL), 2);
    for (int a = 0; a < 2; a++) {
        assert_int_equal(qr_lease_grant(engine, project, a + 1, 1, now, 60000, on_grant, NULL), 0);
        wait_done();
        assert_int_equal(ngot, 0); /* never the same task twice */
    }
    assert_int_equal(qr_lease_grant(engine, project, 3, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 1);
    tok[2] = got[0].token;
    /* A lease already gone (reaped: its slot came back then) changes nothing. */
    assert_int_equal(qr_lease_submit_extend(engine, project, tok[0], on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HGET", "{p:9010}:free", "1"), 0);
    /* The third agrees: a plain commit, and the task leaves the window. */
    assert_int_equal(qr_lease_submit_commit(engine, project, tok[2], on_done, NULL), 0);
    wait_done();
    assert_int_equal(redis_int("HLEN", "{p:9010}:free", NULL), 0);
    assert_int_equal(redis_int("ZCARD", "{p:9010}:seen", NULL), 0);
}

static int nwindow = -1;
static void on_window_ids(int rc, const int64_t *ids, int n, void *arg)
{
    (void)ids;
    (void)arg;
    last_rc = rc;
    nwindow = n;
    done = 1;
}

/* A predictions update's refresh (qr_lease_window_rescore): a task takes
 * its new place; one PostgreSQL completed leaves the ready set at once, and
 * the window too unless a lease of it is live; a task not in the window is
 * left alone. */
static void test_window_rescore(void **state)
{
    project = 9011;
    fill_window(3, 1); /* served 3, 2, 1 */
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 3);
    int64_t held3 = got[0].token;
    int64_t ids[] = {1, 2, 3, 99};
    double prios[] = {0.5, 2, 1, 7};
    int slots[] = {1, 0, 0, 0};
    assert_int_equal(qr_lease_window_rescore(engine, project, 4, ids, prios, slots, on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HEXISTS", "{p:9011}:free", "2"), 0);  /* gone */
    assert_int_equal(redis_int("HGET", "{p:9011}:free", "3"), 0);     /* held: stays, no slot */
    assert_int_equal(redis_int("ZCARD", "{p:9011}:ready", NULL), 1);  /* task 1 alone */
    assert_int_equal(redis_int("HEXISTS", "{p:9011}:free", "99"), 0); /* not added */
    assert_int_equal(qr_lease_window_ids(engine, project, on_window_ids, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(nwindow, 2);
    assert_int_equal(qr_lease_grant(engine, project, 2, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 1);
    /* The lease held on task 3 meets PostgreSQL's "full": it ends with its
     * slot (nothing returns to the ready set) and the task leaves. */
    assert_int_equal(qr_lease_submit_drop(engine, project, held3, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HEXISTS", "{p:9011}:free", "3"), 0);
    assert_int_equal(redis_int("ZSCORE", "{p:9011}:ready", "3"), -1);
    assert_int_equal(redis_int("HGET", "{p:9011}:alive", "1"), -1);
}

static void on_expired(const qr_lease_expired_t *e, int n, void *arg)
{
    int *count = arg;
    for (int i = 0; i < n; i++)
        if (e[i].project_id == project)
            (*count)++;
}

static void test_reaper_returns_slots(void **state)
{
    project = 9003;
    fill_window(1, 1);
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 5, 1, now, 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    /* The slot is taken: nobody else gets it. */
    assert_int_equal(qr_lease_grant(engine, project, 6, 1, now, 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 0);
    int expired = 0;
    assert_int_equal(qr_lease_reap(engine, now + 5000, on_expired, &expired), 0);
    for (int i = 0; i < 100 && !expired; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(expired, 1);
    /* Back in the queue, for anyone (even the annotator who let it lapse). */
    assert_int_equal(qr_lease_grant(engine, project, 6, 1, now + 5000, 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
}

static void test_scripts_survive_flush(void **state)
{
    project = 9004;
    raw("SCRIPT", "FLUSH", NULL);
    fill_window(3, 1);
    assert_int_equal(qr_lease_grant(engine, project, 1, 3, qr_now_ms(), 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(ngot, 3);
}

static void test_priority_release_and_skip(void **state)
{
    project = 9005;
    fill_window(3, 1); /* priorities 3, 2, 1 for tasks 1, 2, 3 */
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 3); /* lowest priority value first */
    int64_t tok = got[0].token;
    /* Not yours: no release. */
    assert_int_equal(qr_lease_release(engine, project, 2, tok, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    /* Released: the same annotator may get the task again, first in line. */
    assert_int_equal(qr_lease_release(engine, project, 1, tok, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(info.task_id, 3);
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 3);
    tok = got[0].token;
    /* Skipped: annotator 1 never gets task 3 again; annotator 2 does. */
    assert_int_equal(qr_lease_release(engine, project, 1, tok, now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_release(engine, project, 1, tok, now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT); /* a lease ends once */
    assert_int_equal(qr_lease_grant(engine, project, 1, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 2);
    assert_true(got[0].task_id != 3 && got[1].task_id != 3);
    assert_int_equal(qr_lease_grant(engine, project, 2, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got[0].task_id, 3);
}

static void on_refill_state(int rc, const char *cursor, int exhausted, int locked, int init,
                            void *arg)
{
    int *out = arg;
    out[0] = rc;
    out[1] = locked;
    out[2] = init;
    done = 1;
}

/* The edge cases of each script: the last free slot, an annotator who has
 * seen the whole window, expiry racing a heartbeat, two refills at once. */
static void test_script_edges(void **state)
{
    project = 9006;
    fill_window(1, 1);
    int64_t now = qr_now_ms();
    /* Last free slot: two annotators in a row, one gets it. */
    assert_int_equal(qr_lease_grant(engine, project, 1, 5, now, 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    int64_t tok = got[0].token;
    assert_int_equal(qr_lease_grant(engine, project, 2, 5, now, 1000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 0);
    assert_int_equal(redis_int("ZCARD", "{p:9006}:ready", NULL), 0);
    /* Expiry racing a heartbeat: a heartbeat one millisecond after the
     * expiry loses, even before the reaper ran. */
    assert_int_equal(qr_lease_heartbeat(engine, project, 1, tok, now + 1001, 1000, on_info, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, QR_ECONFLCT);
    /* ...and one just before it wins, pushing the expiry out. */
    assert_int_equal(qr_lease_heartbeat(engine, project, 1, tok, now + 999, 1000, on_info, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(info.expires_ms, now + 1999);

    /* An annotator who has seen every task in the window gets nothing
     * while another still gets work. */
    project = 9007;
    fill_window(3, 2);
    assert_int_equal(qr_lease_grant(engine, project, 1, 10, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 3);
    assert_int_equal(qr_lease_grant(engine, project, 1, 10, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 0);
    assert_int_equal(qr_lease_grant(engine, project, 2, 10, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 3);

    /* Two brokers refilling at once: one holds the lock, the other waits
     * its turn; once the first ends, the next may refill. */
    int a[3], b[3];
    assert_int_equal(qr_lease_refill_begin(engine, 9008, 5000, on_refill_state, a), 0);
    wait_done();
    assert_int_equal(qr_lease_refill_begin(engine, 9008, 5000, on_refill_state, b), 0);
    wait_done();
    assert_int_equal(a[0], 0);
    assert_int_equal(a[1], 1);
    assert_int_equal(a[2], 0); /* a new project: not initialised yet */
    assert_int_equal(b[1], 0);
    assert_int_equal(qr_lease_refill_end(engine, 9008, 0, on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_refill_begin(engine, 9008, 5000, on_refill_state, b), 0);
    wait_done();
    assert_int_equal(b[1], 1);
}

static void on_init_time(int rc, int64_t init_ms, void *arg)
{
    last_rc = rc;
    *(int64_t *)arg = init_ms;
    done = 1;
}

/* Sends a command of up to 5 arguments and waits for its reply. */
static void raw5(const char *a, const char *b, const char *c, const char *d, const char *e)
{
    const char *argv[] = {a, b, c, d, e};
    int argc = e ? 5 : d ? 4 : 3;
    assert_int_equal(qr_redis_command(redis, argc, argv, NULL, on_any_reply, NULL), 0);
    wait_done();
}

/* An upgrade from the layout before the one of lease.h ({p:P}:init, a key
 * per task and per lease): grants find the window empty until a refill
 * rebuilds it; init drops what is left of the old window, leases and
 * counters, so the broker loads it again from PostgreSQL, and lifts the
 * fencing counter. A second init (a broker that raced the first) drops
 * nothing. */
static void test_rebuild_drops_older_layout(void **state)
{
    project = 9009;
    raw("SET", "{p:9009}:init", "1");
    raw5("ZADD", "{p:9009}:ready", "1", "1", NULL);
    raw5("HSET", "{p:9009}:free", "1", "1", NULL);
    raw5("ZADD", "{p:9009}:leases", "1", "7", NULL);
    raw5("HSET", "{p:9009}:lease:7", "task", "2", NULL);
    raw5("HSET", "{p:9009}:alive", "3", "1", NULL);
    raw5("SADD", "{p:9009}:seen:2", "3", NULL, NULL);
    raw("SET", "{p:9009}:counted", "1");
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(ngot, 0); /* not from the old window */
    int st[3];
    assert_int_equal(qr_lease_refill_begin(engine, project, 5000, on_refill_state, st), 0);
    wait_done();
    assert_int_equal(st[1], 1);
    assert_int_equal(st[2], 0); /* not built */
    assert_int_equal(qr_lease_init(engine, project, 5000, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("EXISTS", "{p:9009}:ready", "{p:9009}:free"), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9009}:leases", "{p:9009}:alive"), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9009}:init", "{p:9009}:counted"), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9009}:built", NULL), 1);
    int64_t built_ms = 0;
    assert_int_equal(qr_lease_init_time(engine, project, on_init_time, &built_ms), 0);
    wait_done();
    assert_in_range(built_ms, now, qr_now_ms());
    assert_int_equal(qr_lease_refill_end(engine, project, 0, on_done, NULL), 0);
    wait_done();
    fill_window(2, 1);
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_true(got[0].token > 5000); /* above the floor */
    raw("SET", "{p:9009}:init", "1"); /* an older broker still running: no wipe */
    assert_int_equal(qr_lease_init(engine, project, 10, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("ZCARD", "{p:9009}:leases", NULL), 1); /* kept */
    assert_int_equal(redis_int("HLEN", "{p:9009}:free", NULL), 2);
    assert_int_equal(qr_lease_init_time(engine, project, on_init_time, &now), 0);
    wait_done();
    assert_int_equal(now, built_ms); /* built once */
}

/* Every way a lease ends, on one task of 2 slots: a skip, an aborted
 * submit and a commit keep the annotator from the task; a release and an
 * expiry do not. Once its last slot is done, nothing of the task is left. */
static void test_task_leaves_no_trace(void **state)
{
    project = 9010;
    fill_window(1, 2);
    int64_t now = qr_now_ms();
    int64_t tok[7];
    for (int a = 1; a <= 2; a++) {
        assert_int_equal(qr_lease_grant(engine, project, a, 1, now, 60000, on_grant, NULL), 0);
        wait_done();
        assert_int_equal(ngot, 1);
        tok[a] = got[0].token;
    }
    assert_int_equal(qr_lease_release(engine, project, 1, tok[1], now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0); /* skipped */
    assert_int_equal(qr_lease_grant(engine, project, 3, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(qr_lease_release(engine, project, 3, got[0].token, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0); /* released */
    assert_int_equal(qr_lease_grant(engine, project, 4, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    tok[4] = got[0].token;
    assert_int_equal(qr_lease_submit_begin(engine, project, 4, tok[4], now, 30000, on_info, NULL),
                     0);
    wait_done();
    assert_int_equal(qr_lease_submit_abort(engine, project, tok[4], on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_grant(engine, project, 5, 1, now, 1, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    int expired = 0;
    assert_int_equal(qr_lease_reap(engine, now + 5000, on_expired, &expired), 0);
    for (int i = 0; i < 100 && !expired; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(expired, 1);
    /* The skipper and the aborted submitter are kept from it; the releaser
     * and the one whose lease expired are not. */
    for (int a = 1; a <= 5; a++) {
        if (a == 2)
            continue;
        assert_int_equal(qr_lease_grant(engine, project, a, 1, now, 60000, on_grant, NULL), 0);
        wait_done();
        assert_int_equal(ngot, a == 3 || a == 5);
        if (ngot) {
            assert_int_equal(
                qr_lease_release(engine, project, a, got[0].token, now, 0, on_info, NULL), 0);
            wait_done();
        }
    }
    assert_int_equal(qr_lease_grant(engine, project, 6, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    tok[6] = got[0].token;
    for (int a = 2; a <= 6; a += 4) {
        assert_int_equal(qr_lease_submit_commit(engine, project, tok[a], on_done, NULL), 0);
        wait_done();
        assert_int_equal(last_rc, 0);
    }
    assert_int_equal(redis_int("EXISTS", "{p:9010}:free", "{p:9010}:held"), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9010}:seen", NULL), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9010}:lease", "{p:9010}:alive"), 0);
}

/* Steps queued between qr_lease_cork and qr_lease_uncork. */
static int step_rc[8], nanswered, nexpected, all_answered;

static void on_step(int rc, const qr_lease_info_t *i, void *arg)
{
    step_rc[(intptr_t)arg] = rc;
    if (++nanswered == nexpected)
        all_answered = 1;
}

static void on_info_reply(redisReply *r, const char *err, void *arg)
{
    const char *at =
        r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_evalsha:calls=") : NULL;
    *(long long *)arg = at ? atoll(at + strlen("cmdstat_evalsha:calls=")) : 0;
    done = 1;
}

/* Script calls Redis has run so far (INFO commandstats). */
static long long script_calls(void)
{
    long long v = -1;
    const char *argv[] = {"INFO", "commandstats"};
    assert_int_equal(qr_redis_command(redis, 2, argv, NULL, on_info_reply, &v), 0);
    wait_done();
    return v;
}

/* Runs the loop until n steps counted from nanswered's last reset were
 * answered. */
static void run_corked(int n)
{
    nexpected = n;
    all_answered = 0;
    assert_true(qr_test_run_until(&loop, &all_answered, 5000));
}

/* Issue 18: a submit batch pins its leases, and a group commit ends them,
 * in one script call per project, each lease answered as alone: a stale
 * token or another annotator's lease is refused, the others go through. */
static void test_corked_steps(void **state)
{
    int64_t now = qr_now_ms(), tok[4];
    project = 9032;
    fill_window(1, 1);
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    tok[3] = got[0].token;
    project = 9031;
    fill_window(3, 1);
    assert_int_equal(qr_lease_grant(engine, project, 1, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 3);
    for (int i = 0; i < 3; i++)
        tok[i] = got[i].token;

    long long calls = script_calls();
    nanswered = 0;
    qr_lease_cork(engine);
    for (intptr_t i = 0; i < 3; i++)
        assert_int_equal(
            qr_lease_submit_begin(engine, 9031, 1, tok[i], now, 30000, on_step, (void *)i), 0);
    assert_int_equal(
        qr_lease_submit_begin(engine, 9031, 1, tok[2] + 1000, now, 30000, on_step, (void *)3), 0);
    assert_int_equal(qr_lease_submit_begin(engine, 9031, 2, tok[0], now, 30000, on_step, (void *)4),
                     0);
    assert_int_equal(qr_lease_submit_begin(engine, 9032, 1, tok[3], now, 30000, on_step, (void *)5),
                     0);
    qr_test_run_for(&loop, 50);
    assert_int_equal(nanswered, 0); /* nothing sent while corked */
    qr_lease_uncork(engine);
    run_corked(6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(step_rc[i], i == 3 || i == 4 ? QR_ECONFLCT : 0);
    assert_int_equal(script_calls() - calls, 2); /* one per project */

    /* The ends: two commits and an abort in 9031, a commit in 9032 and a
     * stale token, which changes nothing. */
    calls = script_calls();
    nanswered = 0;
    qr_lease_cork(engine);
    qr_lease_cork(engine); /* corks nest */
    assert_int_equal(qr_lease_submit_commit(engine, 9031, tok[0], NULL, NULL), 0);
    assert_int_equal(qr_lease_submit_return(engine, 9031, tok[2] + 1000, on_step, (void *)0), 0);
    assert_int_equal(qr_lease_submit_commit(engine, 9032, tok[3], NULL, NULL), 0);
    assert_int_equal(qr_lease_submit_abort(engine, 9031, tok[1], NULL, NULL), 0);
    assert_int_equal(qr_lease_submit_return(engine, 9031, tok[2], on_step, (void *)1), 0);
    qr_lease_uncork(engine);
    qr_test_run_for(&loop, 50);
    assert_int_equal(nanswered, 0);
    qr_lease_uncork(engine);
    run_corked(2);
    assert_int_equal(step_rc[0], QR_ECONFLCT);
    assert_int_equal(step_rc[1], 0);
    qr_test_run_for(&loop, 50); /* the replies without a callback */
    assert_int_equal(script_calls() - calls, 2);
    assert_int_equal(redis_int("HLEN", "{p:9031}:lease", NULL), 0);
    assert_int_equal(redis_int("HLEN", "{p:9032}:lease", NULL), 0);
    assert_int_equal(redis_int("EXISTS", "{p:9032}:free", NULL), 0); /* its task is done */
    assert_int_equal(redis_int("ZCARD", "{p:9031}:ready", NULL), 2); /* aborted, returned */
    assert_int_equal(redis_int("HLEN", "{p:9031}:free", NULL), 2);
}

static int nadded;

static void on_added(int rc, void *arg)
{
    last_rc = rc;
    nadded++;
    done = 1;
}

static void on_cursor_reply(redisReply *r, const char *err, void *arg)
{
    snprintf(arg, 32, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "(none)");
    done = 1;
}

static int ping_answered, ping_saw_added;

static void on_ping(redisReply *r, const char *err, void *arg)
{
    ping_answered = 1;
    ping_saw_added = nadded;
}

/* A refill of 700 tasks goes to Redis in chunks (of 256): one call of
 * thousands held Redis for tens of ms. Each chunk goes once the one before
 * answered, so a command sent meanwhile waits for one chunk, not for all
 * (it is answered before the add's callback); the chunks are sent from
 * copies (the caller's arrays are freed at once). Its callback runs once,
 * after the last chunk; every task is in the window; the cursor is the
 * refill's (the earlier chunks leave it alone), and a task already in the
 * window keeps its state. A run of corked steps goes 64 to a call the same
 * way. */
static void test_window_add_chunks(void **state)
{
    enum { N = 700 };
    project = 9041;
    assert_int_equal(qr_lease_init(engine, project, 0, on_done, NULL), 0);
    wait_done();
    fill_window(1, 1); /* task 1, one slot */
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1); /* task 1 is out of the ready set now */
    int64_t *ids = calloc(N, sizeof *ids);
    int *free_slots = calloc(N, sizeof *free_slots);
    double *prios = calloc(N, sizeof *prios);
    char **datas = calloc(N, sizeof *datas);
    assert_non_null(ids);
    assert_non_null(free_slots);
    assert_non_null(prios);
    assert_non_null(datas);
    for (int i = 0; i < N; i++) {
        ids[i] = i + 1;
        free_slots[i] = 2;
        prios[i] = (double)i;
        datas[i] = strdup("{\"n\":1}");
        assert_non_null(datas[i]);
    }
    long long calls = script_calls();
    nadded = 0;
    ping_answered = 0;
    assert_int_equal(qr_lease_window_add(engine, project, N, ids, free_slots, prios,
                                         (const char *const *)datas, NULL, "699 700", on_added,
                                         NULL),
                     0);
    for (int i = 0; i < N; i++)
        free(datas[i]);
    free(datas);
    free(prios);
    free(free_slots);
    free(ids);
    const char *ping[] = {"PING"};
    assert_int_equal(qr_redis_command(redis, 1, ping, NULL, on_ping, NULL), 0);
    wait_done();
    assert_int_equal(ping_answered, 1);
    assert_int_equal(ping_saw_added, 0); /* answered between the chunks */
    qr_test_run_for(&loop, 50);          /* a second callback would come now */
    assert_int_equal(nadded, 1);
    assert_int_equal(last_rc, 0);
    assert_int_equal(script_calls() - calls, 3); /* 256 + 256 + 188 */
    assert_int_equal(redis_int("HLEN", "{p:9041}:data", NULL), N);
    assert_int_equal(redis_int("ZCARD", "{p:9041}:ready", NULL), N - 1);
    assert_int_equal(redis_int("HGET", "{p:9041}:free", "1"), 0); /* kept as it was */
    char cursor[32] = "";
    const char *argv[] = {"GET", "{p:9041}:cursor"};
    assert_int_equal(qr_redis_command(redis, 2, argv, NULL, on_cursor_reply, cursor), 0);
    wait_done();
    assert_string_equal(cursor, "699 700");

    /* A group commit's ends likewise go 64 steps to a script call: 70
     * pins of stale tokens, each answered once (refused), in 2 calls. */
    calls = script_calls();
    nanswered = 0;
    qr_lease_cork(engine);
    for (int i = 0; i < 70; i++)
        assert_int_equal(qr_lease_submit_begin(engine, project, 1, 100000 + i, now, 30000, on_step,
                                               (void *)(intptr_t)(i % 8)),
                         0);
    qr_lease_uncork(engine);
    run_corked(70);
    qr_test_run_for(&loop, 50); /* a second answer would come now */
    assert_int_equal(nanswered, 70);
    for (int i = 0; i < 8; i++)
        assert_int_equal(step_rc[i], QR_ECONFLCT);
    assert_int_equal(script_calls() - calls, 2);
}

static int ncommitted;

static void on_committed_step(int rc, void *arg)
{
    if (rc == 0)
        ncommitted++;
    if (ncommitted == 3)
        done = 1;
}

/* window_add writes each key once for all of its tasks, and end takes the
 * tasks that leave the window out once its steps are done: a task named
 * twice in one add is added once (the first), one already in the window is
 * left as it is, a done-by list longer than Lua can unpack at once (10,000 arguments) goes in
 * whole; three corked commits of one annotator in one call leave no trace
 * of their tasks or of the annotator's live count, while a task with a
 * slot left stays. */
static void test_window_add_in_bulk(void **state)
{
    enum { NDONE = 5000 };
    project = 9042;
    assert_int_equal(qr_lease_init(engine, project, 0, on_done, NULL), 0);
    wait_done();
    static char many[NDONE * 5];
    size_t at = 0;
    for (int i = 1; i <= NDONE; i++)
        at += (size_t)snprintf(many + at, sizeof many - at, "%s%d", i > 1 ? "," : "", 1000 + i);
    int64_t ids[] = {1, 2, 1, 3, 4};
    int free_slots[] = {1, 0, 5, 1, 2};
    double prios[] = {1, 2, 3, 4, 5};
    const char *datas[] = {"{\"n\":1}", "{\"n\":2}", "{\"n\":9}", "{\"n\":3}", "{\"n\":4}"};
    const char *done_by[] = {many, "7", "999", "", ""};
    assert_int_equal(qr_lease_window_add(engine, project, 5, ids, free_slots, prios, datas, done_by,
                                         "5 4", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(redis_int("HLEN", "{p:9042}:free", NULL), 4);
    assert_int_equal(redis_int("HGET", "{p:9042}:free", "1"), 1); /* the first of the two */
    assert_int_equal(redis_int("ZCARD", "{p:9042}:seen", NULL), NDONE + 1);
    assert_int_equal(redis_int("ZSCORE", "{p:9042}:seen", "1:1600"), 1);
    assert_int_equal(redis_int("ZCARD", "{p:9042}:ready", NULL), 3); /* not task 2: no slot */
    /* Again, with other values: tasks in the window stay as they are. */
    int other[] = {7, 7, 7, 7, 7};
    assert_int_equal(qr_lease_window_add(engine, project, 2, ids + 3, other, prios, datas, NULL,
                                         "*", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(redis_int("HGET", "{p:9042}:free", "4"), 2);

    /* Annotator 5 takes tasks 1, 3 and 4 (by priority) and commits all
     * three in one call. */
    int64_t now = qr_now_ms();
    assert_int_equal(qr_lease_grant(engine, project, 5, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 3);
    ncommitted = 0;
    qr_lease_cork(engine);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            qr_lease_submit_commit(engine, project, got[i].token, on_committed_step, NULL), 0);
    qr_lease_uncork(engine);
    wait_done();
    assert_int_equal(ncommitted, 3);
    assert_int_equal(redis_int("HLEN", "{p:9042}:free", NULL), 2);   /* tasks 2 and 4 */
    assert_int_equal(redis_int("HEXISTS", "{p:9042}:free", "4"), 1); /* a slot left */
    for (int t = 1; t <= 3; t += 2) {
        char tid[4];
        snprintf(tid, sizeof tid, "%d", t);
        assert_int_equal(redis_int("HEXISTS", "{p:9042}:held", tid), 0);
        assert_int_equal(redis_int("HEXISTS", "{p:9042}:data", tid), 0);
        assert_int_equal(redis_int("HEXISTS", "{p:9042}:prio", tid), 0);
    }
    /* Task 1's 5,000 done-by members went with it; task 2's one and the
     * annotator's mark on task 4 stay. */
    assert_int_equal(redis_int("ZCARD", "{p:9042}:seen", NULL), 2);
    assert_int_equal(redis_int("HEXISTS", "{p:9042}:alive", "5"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_overlap),
        cmocka_unit_test(test_grant_pages_over_seen_tasks),
        cmocka_unit_test(test_heartbeat_and_submit_rules),
        cmocka_unit_test(test_submit_extend),
        cmocka_unit_test(test_window_rescore),
        cmocka_unit_test(test_reaper_returns_slots),
        cmocka_unit_test(test_scripts_survive_flush),
        cmocka_unit_test(test_priority_release_and_skip),
        cmocka_unit_test(test_script_edges),
        cmocka_unit_test(test_rebuild_drops_older_layout),
        cmocka_unit_test(test_task_leaves_no_trace),
        cmocka_unit_test(test_corked_steps),
        cmocka_unit_test(test_window_add_chunks),
        cmocka_unit_test(test_window_add_in_bulk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
