/*
 * test_lease.c - the lease engine's Lua scripts against a real Redis:
 * exact overlap under many annotators, no annotator twice on a task, unique
 * fencing tokens, heartbeat and submit rules, the reaper, and the window
 * leaving Redis once tasks are done.
 */
#include "testlib.h"

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
    *(long long *)arg = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
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

static void fill_window(int n, int slots)
{
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
    assert_int_equal(redis_int("EXISTS", "{p:9002}:lease:1", NULL), 0);
}

static void on_expired(const qr_lease_expired_t *e, int n, void *arg)
{
    int *count = arg;
    for (int i = 0; i < n; i++)
        if (e[i].project_id == 9003)
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
    raw("SADD", "quorum:projects", "9003");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_overlap),
        cmocka_unit_test(test_heartbeat_and_submit_rules),
        cmocka_unit_test(test_reaper_returns_slots),
        cmocka_unit_test(test_scripts_survive_flush),
        cmocka_unit_test(test_priority_release_and_skip),
        cmocka_unit_test(test_script_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
