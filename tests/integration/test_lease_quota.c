/*
 * test_lease_quota.c - the quota and cap counters of the lease engine
 * (qr_lease_grant_limited, qr_lease_count_seed) against a real Redis: no
 * counted grant before the counters are built; the build counts
 * PostgreSQL's annotations plus the live leases Redis holds, and happens
 * once; every way a lease ends without an annotation (release, skip, abort,
 * expiry) gives its unit back and a submit keeps it; uncounted leases never
 * move the counters. The bound on each annotator's live leases
 * (qr_lease_limits_t.live) holds exactly, and every way a lease ends
 * (release, skip, submit, abort, return, expiry) takes it off the count.
 */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "lease_fixture.h"
#include "redis_client.h"
#include "util.h"

#define ORG_V 7
#define ORG_W 8

static uv_loop_t loop;
static qr_redis_t *redis;
static qr_lease_engine_t *engine;
static int64_t project = 41;

static int done;
static int last_rc;
static int last_why;
static int last_idle;
static int ngot;
static int64_t tokens[16];

static void on_done(int rc, void *arg)
{
    last_rc = rc;
    done = 1;
}

static void on_limited(int rc, const qr_lease_t *l, int n, int64_t ready_left, int why, int idle,
                       void *arg)
{
    last_rc = rc;
    last_why = why;
    last_idle = idle;
    ngot = n;
    for (int i = 0; i < n && i < 16; i++)
        tokens[i] = l[i].token;
    done = 1;
}

static void on_plain(int rc, const qr_lease_t *l, int n, int64_t ready_left, void *arg)
{
    on_limited(rc, l, n, ready_left, QR_LEASE_GRANTED, 0, arg);
}

static void on_info(int rc, const qr_lease_info_t *i, void *arg)
{
    last_rc = rc;
    if (i)
        tokens[0] = i->task_id; /* regrant: the new token */
    done = 1;
}

static void wait_done(void)
{
    assert_true(qr_test_run_until(&loop, &done, 5000));
    done = 0;
}

static void on_reply(redisReply *r, const char *err, void *arg)
{
    long long *v = arg;
    if (v)
        *v = r && r->type == REDIS_REPLY_STRING    ? strtoll(r->str, NULL, 10)
             : r && r->type == REDIS_REPLY_INTEGER ? r->integer
                                                   : 0;
    done = 1;
}

static long long command(const char *a, const char *b, const char *c)
{
    long long v = 0;
    const char *argv[] = {a, b, c};
    assert_int_equal(qr_redis_command(redis, c ? 3 : b ? 2 : 1, argv, NULL, on_reply, &v), 0);
    wait_done();
    return v;
}

/* The organization's count (vused) and the annotator's (aused). */
static long long vused(int org)
{
    char key[32], field[16];
    snprintf(key, sizeof key, "{p:%d}:vused", (int)project);
    snprintf(field, sizeof field, "%d", org);
    return command("HGET", key, field);
}

static long long aused(int ann)
{
    char key[32], field[16];
    snprintf(key, sizeof key, "{p:%d}:aused", (int)project);
    snprintf(field, sizeof field, "%d", ann);
    return command("HGET", key, field);
}

static long long alive(int ann)
{
    char key[32], field[16];
    snprintf(key, sizeof key, "{p:%d}:alive", (int)project);
    snprintf(field, sizeof field, "%d", ann);
    return command("HGET", key, field);
}

static void grant_live(int ann, int org, int quota, int cap, int live, int max, int64_t now)
{
    qr_lease_limits_t lim = {.org = org, .quota = quota, .cap = cap, .live = live};
    assert_int_equal(
        qr_lease_grant_limited(engine, project, ann, &lim, max, now, 1000, on_limited, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

static void grant(int ann, int org, int quota, int cap, int max, int64_t now)
{
    qr_lease_limits_t lim = {.org = org, .quota = quota, .cap = cap, .live = 0};
    assert_int_equal(
        qr_lease_grant_limited(engine, project, ann, &lim, max, now, 1000, on_limited, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

/* Builds the project's state, as a broker's first refill does: the reaper
 * visits it, and grants serve its window. */
static void build(void)
{
    assert_int_equal(qr_lease_init(engine, project, 0, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

static int setup(void **state)
{
    lease_fixture_open(&loop, &redis, &engine);
    build();
    /* 20 tasks of 3 slots each. */
    int64_t ids[20];
    int free_slots[20];
    double prios[20];
    const char *datas[20];
    for (int i = 0; i < 20; i++) {
        ids[i] = i + 1;
        free_slots[i] = 3;
        prios[i] = i;
        datas[i] = "{}";
    }
    assert_int_equal(qr_lease_window_add(engine, project, 20, ids, free_slots, prios, datas, NULL,
                                         "", on_done, NULL),
                     0);
    wait_done();
    return 0;
}

static int teardown(void **state)
{
    lease_fixture_close(&loop, redis, engine);
    return 0;
}

static void test_counters(void **state)
{
    int64_t now = qr_now_ms();
    /* A lease granted without counting (no organization) before the build. */
    assert_int_equal(qr_lease_grant(engine, project, 99, 1, now, 1000, on_plain, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    /* An undone annotation's lease (it carries its organization) before it. */
    assert_int_equal(
        qr_lease_regrant(engine, project, 20, 1, ORG_V, 1, now, 60000, 20, "{}", on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);

    /* A grant of a share with neither quota nor cap needs no counters and
     * moves none: it is not counted (issue 18). */
    grant(5, ORG_V, -1, -1, 1, now);
    assert_int_equal(last_why, QR_LEASE_GRANTED);
    assert_int_equal(ngot, 1);
    int64_t uncounted = tokens[0];
    assert_int_equal(command("EXISTS", "{p:41}:vused", NULL), 0);

    /* No counted grant until the counters exist. */
    grant(1, ORG_V, 10, 10, 1, now);
    assert_int_equal(last_why, QR_LEASE_UNCOUNTED);
    assert_int_equal(ngot, 0);

    /* PostgreSQL says: annotator 1 of V did 2, annotator 2 of V did 1,
     * annotator 3 of W did 4. */
    int64_t orgs[] = {ORG_V, ORG_V, ORG_W}, anns[] = {1, 2, 3}, counts[] = {2, 1, 4};
    assert_int_equal(qr_lease_count_seed(engine, project, 3, orgs, anns, counts, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    /* 3 annotations + the regranted live lease + the uncounted one, which
     * the build counts from now on: its release takes it off again. */
    assert_int_equal(vused(ORG_V), 5);
    assert_int_equal(aused(5), 1);
    assert_int_equal(qr_lease_release(engine, project, 5, uncounted, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(vused(ORG_V), 4);
    assert_int_equal(aused(5), 0);
    assert_int_equal(aused(1), 3);
    assert_int_equal(vused(ORG_W), 4);
    assert_int_equal(aused(99), 0); /* uncounted */
    /* A second build (another broker racing) changes nothing. */
    int64_t zero[] = {0, 0, 0};
    assert_int_equal(qr_lease_count_seed(engine, project, 3, orgs, anns, zero, on_done, NULL), 0);
    wait_done();
    assert_int_equal(vused(ORG_V), 4);

    /* Quota 6 for V: annotator 2 asks 5, gets 2, then none (quota). */
    grant(2, ORG_V, 6, -1, 5, now);
    assert_int_equal(ngot, 2);
    int64_t t1 = tokens[0], t2 = tokens[1];
    assert_int_equal(vused(ORG_V), 6);
    assert_int_equal(aused(2), 3);
    grant(2, ORG_V, 6, -1, 5, now);
    assert_int_equal(ngot, 0);
    assert_int_equal(last_why, QR_LEASE_QUOTA_REACHED);
    /* Cap 3 for annotator 2 while the quota has room: cap first. */
    grant(2, ORG_V, 100, 3, 1, now);
    assert_int_equal(ngot, 0);
    assert_int_equal(last_why, QR_LEASE_CAP_REACHED);

    /* A release and an abort give units back; a submit keeps its unit. */
    assert_int_equal(qr_lease_release(engine, project, 2, t1, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(vused(ORG_V), 5);
    assert_int_equal(aused(2), 2);
    assert_int_equal(qr_lease_submit_commit(engine, project, t2, on_done, NULL), 0);
    wait_done();
    assert_int_equal(vused(ORG_V), 5);
    grant(2, ORG_V, 6, 3, 1, now);
    assert_int_equal(ngot, 1);
    assert_int_equal(qr_lease_submit_abort(engine, project, tokens[0], on_done, NULL), 0);
    wait_done();
    assert_int_equal(vused(ORG_V), 5);
    assert_int_equal(aused(2), 2);
    /* A skip gives it back too. */
    grant(2, ORG_V, 6, 3, 1, now);
    assert_int_equal(ngot, 1);
    assert_int_equal(qr_lease_release(engine, project, 2, tokens[0], now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(vused(ORG_V), 5);

    /* Once the counters exist, a grant without quota or cap still leaves
     * them alone, and so does its end. */
    grant(4, ORG_W, -1, -1, 1, now);
    assert_int_equal(ngot, 1);
    assert_int_equal(vused(ORG_W), 4);
    assert_int_equal(aused(4), 0);
    assert_int_equal(qr_lease_release(engine, project, 4, tokens[0], now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(vused(ORG_W), 4);

    /* Expiry: W's annotator 3 takes 2 leases (1 s); the reaper returns them. */
    grant(3, ORG_W, 100, -1, 2, now);
    assert_int_equal(ngot, 2);
    assert_int_equal(vused(ORG_W), 6);
    assert_int_equal(qr_lease_reap(engine, now + 1500, NULL, NULL), 0);
    qr_test_run_for(&loop, 200);
    assert_int_equal(vused(ORG_W), 4);
    assert_int_equal(aused(3), 4);
    /* The uncounted lease expired with them and moved nothing. */
    assert_int_equal(aused(99), 0);
    assert_int_equal(vused(ORG_V), 5);
    /* V's regranted lease (60 s) is still live and still counted. */
    assert_int_equal(aused(1), 3);
}

/* One annotator cannot hold more than `live` leases at once, however they
 * ask; the count follows every way a lease ends. */
static void test_live_bound(void **state)
{
    project = 42;
    build();
    int64_t ids[12];
    int free_slots[12];
    double prios[12];
    const char *datas[12];
    for (int i = 0; i < 12; i++) {
        ids[i] = i + 1;
        free_slots[i] = 1;
        prios[i] = i;
        datas[i] = "{}";
    }
    assert_int_equal(qr_lease_window_add(engine, project, 12, ids, free_slots, prios, datas, NULL,
                                         "", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(qr_lease_count_seed(engine, project, 0, NULL, NULL, NULL, on_done, NULL), 0);
    wait_done();
    int64_t now = qr_now_ms();

    /* Asks 10 with a bound of 3: gets 3, and the answer says why. */
    grant_live(5, ORG_V, -1, -1, 3, 10, now);
    assert_int_equal(ngot, 3);
    assert_int_equal(last_why, QR_LEASE_MAX_LEASES);
    assert_int_equal(alive(5), 3);
    int64_t t[3] = {tokens[0], tokens[1], tokens[2]};
    /* Again: nothing. Another annotator has a bound of their own. */
    grant_live(5, ORG_V, -1, -1, 3, 10, now);
    assert_int_equal(ngot, 0);
    assert_int_equal(last_why, QR_LEASE_MAX_LEASES);
    grant_live(6, ORG_V, -1, -1, 3, 2, now);
    assert_int_equal(ngot, 2);
    assert_int_equal(last_why, QR_LEASE_GRANTED); /* asked 2, got 2 */
    assert_int_equal(alive(6), 2);

    /* The grant tells whether a refill would load anything (issue 18):
     * not once the window is exhausted, again after a reopen. */
    assert_int_equal(last_idle, QR_LEASE_REFILL_USEFUL);
    assert_int_equal(qr_lease_refill_end(engine, project, 1, on_done, NULL), 0);
    wait_done();
    grant_live(7, ORG_V, -1, -1, 3, 1, now);
    assert_int_equal(ngot, 1);
    assert_int_equal(last_idle, QR_LEASE_EXHAUSTED);
    assert_int_equal(qr_lease_window_reopen(engine, project, on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_release(engine, project, 7, tokens[0], now, 0, on_info, NULL), 0);
    wait_done();
    grant_live(7, ORG_V, -1, -1, 3, 1, now);
    assert_int_equal(ngot, 1);
    assert_int_equal(last_idle, QR_LEASE_REFILL_USEFUL);
    /* A refill under way (its lock held): a refill now would load nothing. */
    assert_int_equal(command("SET", "{p:42}:refill", "1"), 0);
    assert_int_equal(qr_lease_release(engine, project, 7, tokens[0], now, 0, on_info, NULL), 0);
    wait_done();
    grant_live(7, ORG_V, -1, -1, 3, 1, now);
    assert_int_equal(last_idle, QR_LEASE_REFILLING);
    assert_int_equal(command("DEL", "{p:42}:refill", NULL), 1);
    assert_int_equal(qr_lease_release(engine, project, 7, tokens[0], now, 0, on_info, NULL), 0);
    wait_done();

    /* A release, a submit, a returned submit each free one place. */
    assert_int_equal(qr_lease_release(engine, project, 5, t[0], now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(alive(5), 2);
    assert_int_equal(qr_lease_submit_commit(engine, project, t[1], on_done, NULL), 0);
    wait_done();
    assert_int_equal(alive(5), 1);
    assert_int_equal(qr_lease_submit_return(engine, project, t[2], on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(command("EXISTS", "{p:42}:alive", NULL), 1); /* annotator 6 still */
    grant_live(5, ORG_V, -1, -1, 3, 10, now);
    assert_int_equal(ngot, 3);
    assert_int_equal(alive(5), 3);

    /* Expiry takes them all off; an empty count leaves no field behind. */
    assert_int_equal(qr_lease_reap(engine, now + 1500, NULL, NULL), 0);
    qr_test_run_for(&loop, 200);
    assert_int_equal(alive(5), 0);
    assert_int_equal(alive(6), 0);
    assert_int_equal(command("EXISTS", "{p:42}:alive", NULL), 0);
    project = 41;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_live_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
