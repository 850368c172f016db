/*
 * test_lease_cluster.c - the lease engine keeps Redis Cluster's rules for
 * scripts: every key a script reads or writes is declared in KEYS, and all
 * the keys of one call hash to the project's {p:<id>} slot.
 *
 * A workload touching every script (refill, init, window add, grants plain
 * and counted, heartbeat, submit commit/abort/return, release, skip, undo,
 * expiry and the reaper) runs on two projects while a second connection
 * watches MONITOR. Redis shows the commands a script runs with the source
 * "lua"; each is attributed to its script call, and Redis itself says which
 * keys it touches (COMMAND GETKEYS). A key touched but not declared, or a
 * call whose declared keys carry another hash tag than {p:<id>} or more
 * than one, is a breach; the test prints each and wants none. It also wants
 * every script seen at least once, so that it proves something of each. A
 * second test checks that each script binds its keys by the names, and in
 * the order, its table in lease_scripts.c passes them.
 */
#include "testlib.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "lease.h"
#include "lease_fixture.h"
#include "lease_scripts.h"
#include "redis_client.h"
#include "util.h"

#define NSCRIPTS QR_LEASE_NSCRIPTS

static uv_loop_t loop;
static qr_redis_t *redis;
static qr_lease_engine_t *engine;
static redisContext *mon; /* in MONITOR mode from setup on */
static redisContext *aux; /* blocking questions: SCRIPT LOAD, COMMAND GETKEYS */
static char shas[NSCRIPTS][41];
static int calls_after; /* MONITOR shows a script call after its commands */

/* --- one awaited engine call ------------------------------------------- */

static int done;
static int last_rc;
static int64_t tokens[16];
static int64_t got_tasks[16];
static int ngot;
static int why;
static int refill[3]; /* rc, locked, initialised */
static int expired[2];

static void wait_done(void)
{
    assert_true(qr_test_run_until(&loop, &done, 5000));
    done = 0;
}

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
        tokens[i] = l[i].token;
        got_tasks[i] = l[i].task_id;
    }
    done = 1;
}

static void on_limited(int rc, const qr_lease_t *l, int n, int64_t ready_left, int w, int idle,
                       void *arg)
{
    why = w;
    on_grant(rc, l, n, ready_left, arg);
}

static void on_info(int rc, const qr_lease_info_t *i, void *arg)
{
    last_rc = rc;
    if (i && arg)
        *(int64_t *)arg = i->task_id; /* regrant: the new token */
    done = 1;
}

static void on_refill(int rc, const char *cursor, int exhausted, int locked, int init, void *arg)
{
    refill[0] = rc;
    refill[1] = locked;
    refill[2] = init;
    done = 1;
}

static void on_init_time(int rc, int64_t init_ms, void *arg)
{
    last_rc = rc;
    done = 1;
}

static int dropped;
static int64_t live_at_drop;

static void on_drop(int rc, int d, int64_t live, void *arg)
{
    last_rc = rc;
    dropped = d;
    live_at_drop = live;
    done = 1;
}

static void on_expired(const qr_lease_expired_t *e, int n, void *arg)
{
    for (int i = 0; i < n; i++)
        expired[e[i].project_id == 71 ? 0 : 1]++;
}

/* --- the workload --------------------------------------------------------- */

/* Refill begin, init, a window of 8 tasks of 2 slots (annotator 9 did task
 * 1 already), refill end, reopen. */
static void build_window(int64_t p)
{
    assert_int_equal(qr_lease_refill_begin(engine, p, 10000, on_refill, NULL), 0);
    wait_done();
    assert_int_equal(refill[0], 0);
    assert_int_equal(refill[1], 1);
    assert_int_equal(refill[2], 0); /* nothing in Redis yet */
    assert_int_equal(qr_lease_init(engine, p, 1000, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    int64_t ids[8];
    int free_slots[8];
    double prios[8];
    const char *datas[8], *done_by[8];
    for (int i = 0; i < 8; i++) {
        ids[i] = i + 1;
        free_slots[i] = 2;
        prios[i] = i + 1;
        datas[i] = "{\"text\":\"t\"}";
        done_by[i] = i == 0 ? "9" : "";
    }
    assert_int_equal(qr_lease_window_add(engine, p, 8, ids, free_slots, prios, datas, done_by,
                                         "8 8", on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    /* A predictions update's refresh: new places, one task not in the window. */
    int64_t moved[] = {8, 99};
    double places[] = {8.5, 1};
    int left[] = {2, 0};
    assert_int_equal(qr_lease_window_rescore(engine, p, 2, moved, places, left, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_refill_end(engine, p, 1, on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_window_reopen(engine, p, on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_init_time(engine, p, on_init_time, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

/* Plain grants and every way a lease ends. */
static void plain_leases(int64_t p, int64_t now)
{
    assert_int_equal(qr_lease_grant(engine, p, 1, 3, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 3);
    int64_t t[3] = {tokens[0], tokens[1], tokens[2]};
    assert_int_equal(qr_lease_heartbeat(engine, p, 1, t[0], now, 60000, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qr_lease_submit_begin(engine, p, 1, t[i], now, 30000, on_info, NULL), 0);
        wait_done();
        assert_int_equal(last_rc, 0);
    }
    assert_int_equal(qr_lease_submit_commit(engine, p, t[0], on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_submit_abort(engine, p, t[1], on_done, NULL), 0);
    wait_done();
    assert_int_equal(qr_lease_submit_return(engine, p, t[2], on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    /* Release and skip. */
    assert_int_equal(qr_lease_grant(engine, p, 2, 2, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 2);
    t[0] = tokens[0];
    t[1] = tokens[1];
    assert_int_equal(qr_lease_release(engine, p, 2, t[0], now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_release(engine, p, 2, t[1], now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

/* Counted grants: refused until the counters are built, then bounded. */
static void counted_leases(int64_t p, int64_t now)
{
    qr_lease_limits_t lim = {.org = 3, .quota = 10, .cap = 5, .live = 4};
    assert_int_equal(qr_lease_grant_limited(engine, p, 4, &lim, 2, now, 60000, on_limited, NULL),
                     0);
    wait_done();
    assert_int_equal(why, QR_LEASE_UNCOUNTED);
    int64_t orgs[] = {3}, anns[] = {4}, counts[] = {1};
    assert_int_equal(qr_lease_count_seed(engine, p, 1, orgs, anns, counts, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_grant_limited(engine, p, 4, &lim, 2, now, 60000, on_limited, NULL),
                     0);
    wait_done();
    assert_int_equal(ngot, 2);
    int64_t t = tokens[0];
    assert_int_equal(qr_lease_release(engine, p, 4, t, now, 1, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    /* Undo: task 1 straight back to annotator 4, counted. */
    int64_t regranted = 0;
    assert_int_equal(qr_lease_regrant(engine, p, 1, 4, 3, 1, now, 60000, 1.0, "{\"text\":\"t\"}",
                                      on_info, &regranted),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_true(regranted > 1000); /* above the fencing floor */
}

/* Gold tasks (issue 16): refused until the gold set is loaded, then served
 * first during onboarding, ended without a slot, and nothing for a paused
 * annotator. */
static void gold_leases(int64_t p, int64_t now)
{
    qr_lease_limits_t lim = {.org = 3,
                             .quota = -1,
                             .cap = -1,
                             .live = 0,
                             .gold_rate = 0.5,
                             .gold_onboarding = 1,
                             .gold_judged = 1};
    assert_int_equal(qr_lease_grant_limited(engine, p, 7, &lim, 1, now, 60000, on_limited, NULL),
                     0);
    wait_done();
    assert_int_equal(why, QR_LEASE_GOLD_UNLOADED);
    int64_t ids[] = {900}, serves[] = {0}, anns[] = {8}, served[] = {1}, paused[] = {9};
    const char *datas[] = {"{\"text\":\"gold\"}"}, *done_by[] = {"8"};
    assert_int_equal(qr_lease_gold_load(engine, p, 1, ids, serves, datas, done_by, 1, anns, served,
                                        1, paused, on_done, NULL),
                     0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_grant_limited(engine, p, 7, &lim, 1, now, 60000, on_limited, NULL),
                     0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(got_tasks[0], 900);
    int64_t t = tokens[0];
    assert_int_equal(qr_lease_release(engine, p, 7, t, now, 0, on_info, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(qr_lease_grant_limited(engine, p, 9, &lim, 1, now, 60000, on_limited, NULL),
                     0);
    wait_done();
    assert_int_equal(why, QR_LEASE_PAUSED);
    assert_int_equal(qr_lease_annotator_pause(engine, p, 9, 0, on_done, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
}

/* Short leases the reaper returns; the project was registered by init,
 * not by the test. */
static void expiring_leases(int64_t p, int64_t now)
{
    assert_int_equal(qr_lease_grant(engine, p, 5, 2, now, 1, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 2);
}

/* --- reading MONITOR ------------------------------------------------------ */

/* One command as MONITOR shows it. */
typedef struct cmd_s {
    int lua; /* run by a script */
    int argc;
    char **argv;
} cmd_t;

static void cmd_free(cmd_t *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    c->argv = NULL;
    c->argc = 0;
}

/* Parses `TIME [DB SOURCE] "arg" "arg"...` (arguments escaped as
 * sdscatrepr does: \\ \" \n \r \t \a \b \xHH). Returns 0, or -1. */
static int parse_monitor_line(const char *s, cmd_t *c)
{
    memset(c, 0, sizeof *c);
    const char *b = strchr(s, '[');
    const char *e = b ? strchr(b, ']') : NULL;
    if (!e)
        return -1;
    const char *sp = memchr(b, ' ', (size_t)(e - b));
    c->lua = sp && (size_t)(e - sp - 1) == 3 && !strncmp(sp + 1, "lua", 3);
    for (s = e + 1; *s;) {
        if (*s == ' ') {
            s++;
            continue;
        }
        if (*s != '"')
            return -1;
        qr_buf_t a;
        qr_buf_init(&a);
        for (s++; *s && *s != '"'; s++) {
            char ch = *s;
            if (ch == '\\' && s[1]) {
                s++;
                switch (*s) {
                case 'n':
                    ch = '\n';
                    break;
                case 'r':
                    ch = '\r';
                    break;
                case 't':
                    ch = '\t';
                    break;
                case 'a':
                    ch = '\a';
                    break;
                case 'b':
                    ch = '\b';
                    break;
                case 'x': {
                    char hex[3] = {s[1], s[2], 0};
                    ch = (char)strtol(hex, NULL, 16);
                    s += 2;
                    break;
                }
                default:
                    ch = *s;
                    break;
                }
            }
            qr_buf_append(&a, &ch, 1);
        }
        if (*s != '"') {
            qr_buf_free(&a);
            return -1;
        }
        s++;
        c->argv = qr_xrealloc(c->argv, (size_t)(c->argc + 1) * sizeof *c->argv);
        c->argv[c->argc++] = a.data ? qr_buf_steal(&a) : qr_xstrdup("");
    }
    return c->argc > 0 ? 0 : -1;
}

/* The hash tag of a key as Redis Cluster takes it (the text between the
 * first '{' and the next '}', when not empty), or the whole key. */
static void hash_tag(const char *key, const char **tag, size_t *len)
{
    const char *o = strchr(key, '{');
    const char *c = o ? strchr(o + 1, '}') : NULL;
    if (c && c > o + 1) {
        *tag = o + 1;
        *len = (size_t)(c - o - 1);
    } else {
        *tag = key;
        *len = strlen(key);
    }
}

/* The script a call runs, by its SHA1 or its text; -1 if none of ours. */
static int script_of(const cmd_t *c)
{
    for (int i = 0; i < NSCRIPTS; i++)
        if (!strcasecmp(c->argv[0], "EVALSHA")
                ? !strcasecmp(c->argv[1], shas[i])
                : !strcmp(c->argv[1], qr_lease_script_text(qr_lease_scripts[i].name)))
            return i;
    return -1;
}

static int checked;                       /* commands run by scripts, checked */
static int breaches;                      /* in all */
static int outside;                       /* keys touched outside the call's slot */
static int script_breaches[NSCRIPTS + 1]; /* by script; the last: none of ours */

/* Counts a breach of script s (-1: unknown) and prints the first few. */
static void breach(int s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void breach(int s, const char *fmt, ...)
{
    script_breaches[s >= 0 ? s : NSCRIPTS]++;
    if (breaches++ < 40) {
        va_list ap;
        va_start(ap, fmt);
        char line[512];
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        print_message("breach: %s\n", line);
    }
}

/* Checks one script call and the commands it ran; counts what it ran. */
static void check_call(const cmd_t *call, const cmd_t *inner, int ninner, int *seen)
{
    if (call->argc < 3)
        return;
    int s = script_of(call);
    const char *name = s >= 0 ? qr_lease_scripts[s].name : "(unknown script)";
    if (s >= 0)
        seen[s]++;
    int nkeys = atoi(call->argv[2]);
    if (nkeys < 1 || 3 + nkeys > call->argc) {
        breach(s, "%s: called with %d keys", name, nkeys);
        return;
    }
    char **keys = call->argv + 3;
    const char *tag0;
    size_t len0;
    hash_tag(keys[0], &tag0, &len0);
    if (len0 < 3 || strncmp(tag0, "p:", 2) || strspn(tag0 + 2, "0123456789") != len0 - 2)
        breach(s, "%s: key %s is not in a project's {p:<id>} slot", name, keys[0]);
    for (int k = 1; k < nkeys; k++) {
        const char *tag;
        size_t len;
        hash_tag(keys[k], &tag, &len);
        if (len != len0 || memcmp(tag, tag0, len))
            breach(s, "%s: keys %s and %s are in different slots", name, keys[0], keys[k]);
    }
    for (int i = 0; i < ninner; i++) {
        const cmd_t *c = &inner[i];
        const char *argv[64];
        int argc = 0;
        argv[argc++] = "COMMAND";
        argv[argc++] = "GETKEYS";
        for (int a = 0; a < c->argc && argc < 64; a++)
            argv[argc++] = c->argv[a];
        checked++;
        redisReply *r = redisCommandArgv(aux, argc, argv, NULL);
        assert_non_null(r);
        /* An error reply: a command without keys (none of ours). */
        if (r->type == REDIS_REPLY_ARRAY)
            for (size_t j = 0; j < r->elements; j++) {
                const char *key = r->element[j]->str;
                int declared = 0;
                for (int k = 0; k < nkeys && !declared; k++)
                    declared = !strcmp(key, keys[k]);
                if (declared)
                    continue;
                const char *tag;
                size_t len;
                hash_tag(key, &tag, &len);
                if (len != len0 || memcmp(tag, tag0, len))
                    outside++;
                breach(s, "%s: %s %s, a key not in KEYS", name, c->argv[0], key);
            }
        freeReplyObject(r);
    }
}

/* Reads MONITOR up to the marker and checks every script call seen. */
static void check_monitor(int *seen, int after)
{
    redisReply *r = redisCommand(aux, "ECHO quorum-monitor-end");
    assert_non_null(r);
    freeReplyObject(r);

    cmd_t pending_call = {0};
    int have_call = 0;
    cmd_t *inner = NULL;
    int ninner = 0;
    for (;;) {
        redisReply *line = NULL;
        assert_int_equal(redisGetReply(mon, (void **)&line), REDIS_OK);
        assert_int_equal(line->type, REDIS_REPLY_STATUS);
        cmd_t c;
        int ok = parse_monitor_line(line->str, &c) == 0;
        if (!ok)
            print_message("unparsed MONITOR line: %s\n", line->str);
        freeReplyObject(line);
        assert_true(ok);
        if (c.lua) {
            inner = qr_xrealloc(inner, (size_t)(ninner + 1) * sizeof *inner);
            inner[ninner++] = c;
            continue;
        }
        int is_eval = !strcasecmp(c.argv[0], "EVALSHA") || !strcasecmp(c.argv[0], "EVAL");
        if (after) {
            if (is_eval)
                check_call(&c, inner, ninner, seen);
            else if (ninner)
                breach(-1, "%d script commands with no script call after them", ninner);
        } else {
            if (have_call)
                check_call(&pending_call, inner, ninner, seen);
            else if (ninner)
                breach(-1, "%d script commands with no script call before them", ninner);
            cmd_free(&pending_call);
            have_call = is_eval;
            if (is_eval) {
                pending_call = c;
                c.argv = NULL;
                c.argc = 0;
            }
        }
        for (int i = 0; i < ninner; i++)
            cmd_free(&inner[i]);
        ninner = 0;
        int end = c.argc == 2 && !strcasecmp(c.argv[0], "ECHO") &&
                  !strcmp(c.argv[1], "quorum-monitor-end");
        cmd_free(&c);
        if (end)
            break;
    }
    cmd_free(&pending_call);
    free(inner);
}

/* Whether MONITOR shows a script call after the commands it ran (as newer
 * Redis versions do) or before them (7.0): asked of Redis with a probe. */
static int monitor_order(void)
{
    redisReply *r = redisCommand(aux, "EVAL %s 1 %s", "return redis.call('EXISTS', KEYS[1])",
                                 "quorum:monitor-probe");
    assert_true(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    int first_lua = -1;
    for (int n = 0; n < 2;) {
        redisReply *line = NULL;
        assert_int_equal(redisGetReply(mon, (void **)&line), REDIS_OK);
        cmd_t c;
        assert_int_equal(parse_monitor_line(line->str, &c), 0);
        freeReplyObject(line);
        int probe = c.argc >= 2 &&
                    (!strcasecmp(c.argv[0], "EVAL") || (c.lua && !strcasecmp(c.argv[0], "EXISTS")));
        if (probe && n++ == 0)
            first_lua = c.lua;
        cmd_free(&c);
    }
    return first_lua;
}

/* --- the test ------------------------------------------------------------- */

static int setup(void **state)
{
    lease_fixture_open(&loop, &redis, &engine);
    int port = atoi(qr_test_stack_get("QR_REDIS_PORT"));
    struct timeval tv = {10, 0};
    aux = redisConnectWithTimeout("127.0.0.1", port, tv);
    mon = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_true(aux && !aux->err && mon && !mon->err);
    assert_int_equal(redisSetTimeout(mon, tv), REDIS_OK);
    assert_int_equal(redisSetTimeout(aux, tv), REDIS_OK);
    for (int i = 0; i < NSCRIPTS; i++) {
        const char *text = qr_lease_script_text(qr_lease_scripts[i].name);
        assert_non_null(text);
        redisReply *r = redisCommand(aux, "SCRIPT LOAD %s", text);
        assert_true(r && r->type == REDIS_REPLY_STRING && r->len == 40);
        memcpy(shas[i], r->str, 41);
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(mon, "MONITOR");
    assert_true(r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK"));
    freeReplyObject(r);
    calls_after = monitor_order();
    return 0;
}

static int teardown(void **state)
{
    redisFree(mon);
    redisFree(aux);
    lease_fixture_close(&loop, redis, engine);
    return 0;
}

static void test_scripts_touch_only_declared_keys_of_one_slot(void **state)
{
    int64_t now = qr_now_ms();
    int64_t projects[] = {71, 72};
    for (int i = 0; i < 2; i++) {
        build_window(projects[i]);
        plain_leases(projects[i], now);
        counted_leases(projects[i], now);
        gold_leases(projects[i], now);
        expiring_leases(projects[i], now);
    }
    /* The reaper finds both projects through the registry alone. */
    assert_int_equal(qr_lease_reap(engine, now + 10000, on_expired, NULL), 0);
    for (int i = 0; i < 200 && (expired[0] < 2 || expired[1] < 2); i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(expired[0], 2);
    assert_int_equal(expired[1], 2);

    /* A project's end: refused while a lease is live, then forced. */
    build_window(73);
    assert_int_equal(qr_lease_grant(engine, 73, 1, 1, now, 60000, on_grant, NULL), 0);
    wait_done();
    assert_int_equal(ngot, 1);
    assert_int_equal(qr_lease_project_drop(engine, 73, now, 0, on_drop, NULL), 0);
    wait_done();
    assert_int_equal(last_rc, 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(live_at_drop, 1);
    assert_int_equal(qr_lease_project_drop(engine, 73, now, 1, on_drop, NULL), 0);
    wait_done();
    assert_int_equal(dropped, 1);
    redisReply *k = redisCommand(aux, "KEYS {p:73}:*");
    assert_true(k && k->type == REDIS_REPLY_ARRAY);
    assert_int_equal(k->elements, 0);
    freeReplyObject(k);

    int seen[NSCRIPTS] = {0};
    check_monitor(seen, calls_after);
    for (int i = 0; i < NSCRIPTS; i++) {
        print_message("%-13s %3d call(s), %3d breach(es)\n", qr_lease_scripts[i].name, seen[i],
                      script_breaches[i]);
        assert_true(seen[i] > 0); /* the workload ran every script */
    }
    print_message("%d command(s) run by scripts checked; %d breach(es) in all, %d of them outside "
                  "the call's slot\n",
                  checked, breaches, outside);
    assert_true(checked > 100); /* MONITOR did show what the scripts ran */
    assert_int_equal(breaches, 0);
}

/* Each script names its keys in its first line, in the order the engine
 * passes them: `local <keys> = unpack(KEYS)`. */
static void test_scripts_bind_the_keys_they_declare(void **state)
{
    for (int i = 0; i < QR_LEASE_NSCRIPTS; i++) {
        const qr_lease_script_def_t *d = &qr_lease_scripts[i];
        qr_buf_t want;
        qr_buf_init(&want);
        qr_buf_appends(&want, "local ");
        for (int k = 0; d->keys[k]; k++)
            qr_buf_appendf(&want, "%s%s", k ? ", " : "", d->keys[k]);
        qr_buf_appends(&want, " = unpack(KEYS)\n");
        if (strncmp(d->lua, want.data, want.len))
            print_message("%s: wants its first line to be %s", d->name, want.data);
        assert_int_equal(strncmp(d->lua, want.data, want.len), 0);
        assert_ptr_equal(qr_lease_script_text(d->name), d->lua);
        qr_buf_free(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripts_bind_the_keys_they_declare),
        cmocka_unit_test_setup_teardown(test_scripts_touch_only_declared_keys_of_one_slot, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
