/*
 * test_pg.c - the PostgreSQL pool (broker/store/pg.c) against the private server
 * of the test stack: bound parameters under concurrency, SQL errors and
 * SQLSTATEs, COPY FROM STDIN (and its atomicity, alone and in a transaction
 * with a statement before it), a backend killed
 * server-side, unreachable servers, and closing with work in flight. Every
 * test ends by proving its loop closes with no handle left open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"
#include "testlib.h"
#include "util.h"

/* The outcome of one query, filled by on_result. */
typedef struct {
    int calls;
    int in_call; /* the callback ran inside qr_pg_query */
    int ok;
    char err[512];
    char sqlstate[6];
    int ntuples;
    char val[4][256];
    int isnull[4];
} outcome_t;

static volatile int g_inside_submit; /* set around qr_pg_query calls */
static int g_pending;                /* callbacks still expected */
static volatile int g_all_done;      /* g_pending reached 0 */

static void on_result(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    outcome_t *o = arg;
    o->calls++;
    o->in_call |= g_inside_submit;
    if (res) {
        o->ok = 1;
        o->ntuples = PQntuples(res);
        for (int i = 0; i < PQnfields(res) && i < 4 && o->ntuples > 0; i++) {
            o->isnull[i] = PQgetisnull(res, 0, i);
            snprintf(o->val[i], sizeof o->val[i], "%s", PQgetvalue(res, 0, i));
        }
    } else {
        assert_non_null(err);
        assert_non_null(sqlstate);
        snprintf(o->err, sizeof o->err, "%s", err);
        snprintf(o->sqlstate, sizeof o->sqlstate, "%s", sqlstate);
    }
    if (--g_pending == 0)
        g_all_done = 1;
}

static void submit(qr_pg_t *pg, const char *sql, int n, const char *const *params, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    g_pending++;
    g_all_done = 0;
    g_inside_submit = 1;
    int rc = qr_pg_query(pg, sql, n, params, on_result, o);
    g_inside_submit = 0;
    assert_int_equal(rc, 0);
    assert_int_equal(o->calls, 0);
}

static void wait_all(uv_loop_t *loop, int timeout_ms)
{
    if (g_pending > 0)
        assert_true(qr_test_run_until(loop, &g_all_done, timeout_ms));
}

/* Runs one statement to completion. */
static void run_one(uv_loop_t *loop, qr_pg_t *pg, const char *sql, int n, const char *const *params,
                    outcome_t *o)
{
    submit(pg, sql, n, params, o);
    wait_all(loop, 10000);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->in_call, 0);
}

static void run_ok(uv_loop_t *loop, qr_pg_t *pg, const char *sql)
{
    outcome_t o;
    run_one(loop, pg, sql, 0, NULL, &o);
    if (!o.ok)
        fail_msg("%s: %s", sql, o.err);
}

typedef struct {
    qr_pg_t *pg;
    int want;
} conn_want_t;

static int pg_connected_is(void *arg)
{
    conn_want_t *w = arg;
    return qr_pg_connected(w->pg) == w->want;
}

/* Runs the loop until qr_pg_connected(pg) == want. */
static void wait_connected(uv_loop_t *loop, qr_pg_t *pg, int want, int timeout_ms)
{
    conn_want_t w = {pg, want};
    assert_true(qr_test_poll_until(loop, pg_connected_is, &w, timeout_ms));
}

static void close_pool(uv_loop_t *loop, qr_pg_t *pg)
{
    volatile int closed = 0;
    qr_pg_close(pg, qr_test_set_flag, (void *)&closed);
    assert_true(qr_test_run_until(loop, &closed, 5000));
}

/* A pool on the stack's server; application_name tags its backends so a
 * test only ever terminates its own. */
static qr_pg_t *open_pool(uv_loop_t *loop, int size)
{
    const char *base = qr_test_stack_get("QR_PG_CONNINFO");
    assert_non_null(base);
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s application_name=qr_test_pg", base);
    qr_pg_t *pg = NULL;
    assert_int_equal(qr_pg_open(loop, conninfo, size, 5000, &pg), 0);
    assert_non_null(pg);
    return pg;
}

/* 200 statements at once over 4 connections, with bound parameters that
 * would break a query built by pasting text: quotes, backslashes, SQL, NULL. */
static void test_concurrent_bound_params(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 4);

    enum { N = 200 };
    static outcome_t o[N];
    static char nums[N][16];
    const char *tricky = "O'Brien said \"hi\" \\ back\\slash'); DROP TABLE x; --";
    for (int i = 0; i < N; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", i);
        const char *params[3] = {nums[i], tricky, NULL};
        submit(pg,
               "SELECT $1::int * 2, $2::text, $3::text IS NULL, pg_backend_pid() "
               "FROM pg_sleep(0.005)",
               3, params, &o[i]);
    }
    wait_all(&loop, 30000);

    int pids[N], npids = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].in_call, 0);
        if (!o[i].ok)
            fail_msg("query %d: %s", i, o[i].err);
        assert_int_equal(o[i].ntuples, 1);
        assert_int_equal(atoi(o[i].val[0]), 2 * i);
        assert_string_equal(o[i].val[1], tricky);
        assert_string_equal(o[i].val[2], "t");
        int pid = atoi(o[i].val[3]), seen = 0;
        for (int k = 0; k < npids; k++)
            seen |= pids[k] == pid;
        if (!seen)
            pids[npids++] = pid;
    }
    assert_int_equal(npids, 4); /* the work spread over the whole pool */
    assert_int_equal(qr_pg_connected(pg), 4);

    /* A NULL parameter reaches the server as SQL NULL, not as "". */
    outcome_t n;
    const char *null_param[1] = {NULL};
    run_one(&loop, pg, "SELECT $1::text", 1, null_param, &n);
    assert_true(n.ok);
    assert_true(n.isnull[0]);

    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

/* SQL errors arrive as err + SQLSTATE, and the pool keeps working. */
static void test_sql_errors(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 2);
    outcome_t o;

    run_one(&loop, pg, "SELECT 1 / 0", 0, NULL, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "22012");
    assert_non_null(strstr(o.err, "division by zero"));

    run_one(&loop, pg, "SELEC 1", 0, NULL, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "42601");

    run_ok(&loop, pg, "DROP TABLE IF EXISTS qr_test_pg_uniq");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_uniq (k text PRIMARY KEY)");
    const char *k[1] = {"task-1"};
    run_one(&loop, pg, "INSERT INTO qr_test_pg_uniq VALUES ($1)", 1, k, &o);
    assert_true(o.ok);
    run_one(&loop, pg, "INSERT INTO qr_test_pg_uniq VALUES ($1)", 1, k, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "23505");

    /* Wrong parameter count is refused by the server, not by a crash. */
    run_one(&loop, pg, "SELECT $1::int + $2::int", 1, (const char *const[]){"1"}, &o);
    assert_false(o.ok);
    assert_true(strlen(o.err) > 0);

    /* Still healthy: several statements at once, all succeed. */
    outcome_t many[8];
    for (int i = 0; i < 8; i++)
        submit(pg, "SELECT count(*) FROM qr_test_pg_uniq", 0, NULL, &many[i]);
    wait_all(&loop, 10000);
    for (int i = 0; i < 8; i++) {
        assert_true(many[i].ok);
        assert_string_equal(many[i].val[0], "1");
    }
    assert_int_equal(qr_pg_connected(pg), 2);
    run_ok(&loop, pg, "DROP TABLE qr_test_pg_uniq");

    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

/* Statements are prepared once per connection and then only executed; a
 * statement that fails to prepare fails with its SQL error each time; one
 * whose prepared statement the session lost (26000) or whose result columns
 * changed under its cached plan (0A000) still succeeds. One connection, so
 * every statement meets the same session. */
static void test_prepared(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 1);
    outcome_t o;
    const char *p41[1] = {"41"};
    const char *sum = "SELECT $1::int + 1";

    for (int i = 0; i < 3; i++) {
        run_one(&loop, pg, sum, 1, p41, &o);
        assert_true(o.ok);
        assert_string_equal(o.val[0], "42");
    }
    const char *count_prepared = "SELECT count(*) FROM pg_prepared_statements"
                                 " WHERE statement = 'SELECT $1::int + 1'";
    run_one(&loop, pg, count_prepared, 0, NULL, &o);
    assert_true(o.ok);
    assert_string_equal(o.val[0], "1"); /* prepared once, not three times */

    /* qr_pg_query_unprepared: the same results, never prepared. */
    const char *twice = "SELECT $1::int * 2";
    for (int i = 0; i < 3; i++) {
        memset(&o, 0, sizeof o);
        g_pending++;
        g_all_done = 0;
        assert_int_equal(qr_pg_query_unprepared(pg, twice, 1, p41, on_result, &o), 0);
        wait_all(&loop, 10000);
        assert_true(o.ok);
        assert_string_equal(o.val[0], "82");
    }
    run_one(&loop, pg,
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 2'", 0,
            NULL, &o);
    assert_true(o.ok);
    assert_string_equal(o.val[0], "0");

    /* An error at prepare time is the query's error, every time. */
    for (int i = 0; i < 2; i++) {
        run_one(&loop, pg, "SELECT no_such_column FROM pg_class WHERE oid = $1", 1, p41, &o);
        assert_false(o.ok);
        assert_string_equal(o.sqlstate, "42703");
    }

    /* The session loses the statement: the query is prepared again. */
    run_ok(&loop, pg, "DEALLOCATE ALL");
    run_one(&loop, pg, sum, 1, p41, &o);
    if (!o.ok)
        fail_msg("after DEALLOCATE ALL: %s", o.err);
    assert_string_equal(o.val[0], "42");

    /* The table gains a column: the cached plan of SELECT * cannot give
     * it, so the query runs unprepared and sees both columns. */
    run_ok(&loop, pg, "DROP TABLE IF EXISTS qr_test_pg_prep");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_prep (a int)");
    run_ok(&loop, pg, "INSERT INTO qr_test_pg_prep VALUES (7)");
    const char *star = "SELECT * FROM qr_test_pg_prep";
    run_one(&loop, pg, star, 0, NULL, &o);
    assert_true(o.ok);
    assert_string_equal(o.val[0], "7");
    run_ok(&loop, pg, "ALTER TABLE qr_test_pg_prep ADD COLUMN b int DEFAULT 8");
    for (int i = 0; i < 2; i++) {
        run_one(&loop, pg, star, 0, NULL, &o);
        if (!o.ok)
            fail_msg("after ALTER TABLE: %s", o.err);
        assert_string_equal(o.val[0], "7");
        assert_string_equal(o.val[1], "8");
    }
    run_ok(&loop, pg, "DROP TABLE qr_test_pg_prep");

    /* Still one healthy connection. */
    run_one(&loop, pg, sum, 1, p41, &o);
    assert_true(o.ok);
    assert_int_equal(qr_pg_connected(pg), 1);

    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

static void copy_in(uv_loop_t *loop, qr_pg_t *pg, const char *sql, const qr_buf_t *b, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    g_pending++;
    g_all_done = 0;
    g_inside_submit = 1;
    assert_int_equal(qr_pg_copy_in(pg, sql, b->data, b->len, on_result, o), 0);
    g_inside_submit = 0;
    wait_all(loop, 30000);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->in_call, 0);
}

/* COPY streams thousands of rows (more than one PQputCopyData chunk and
 * more than a socket buffer); a bad row makes the whole COPY insert nothing. */
static void test_copy(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 2);
    run_ok(&loop, pg, "DROP TABLE IF EXISTS qr_test_pg_copy");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_copy (id int PRIMARY KEY, label text)");

    enum { ROWS = 20000 };
    qr_buf_t b;
    qr_buf_init(&b);
    for (int i = 1; i <= ROWS; i++)
        qr_buf_appendf(&b, "%d\tlabel %d\\twith tab 'q' \\\\\n", i, i);
    outcome_t o;
    copy_in(&loop, pg, "COPY qr_test_pg_copy (id, label) FROM STDIN", &b, &o);
    if (!o.ok)
        fail_msg("COPY: %s", o.err);

    run_one(&loop, pg, "SELECT count(*), sum(id) FROM qr_test_pg_copy", 0, NULL, &o);
    assert_true(o.ok);
    assert_int_equal(atoi(o.val[0]), ROWS);
    assert_int_equal(atoll(o.val[1]), (long long)ROWS * (ROWS + 1) / 2);
    run_one(&loop, pg, "SELECT label FROM qr_test_pg_copy WHERE id = 7", 0, NULL, &o);
    assert_string_equal(o.val[0], "label 7\twith tab 'q' \\");

    /* Row 1500 of 3000 is bad: nothing of this COPY lands. */
    qr_buf_reset(&b);
    for (int i = 1; i <= 3000; i++) {
        if (i == 1500)
            qr_buf_appends(&b, "not-a-number\tbad\n");
        else
            qr_buf_appendf(&b, "%d\tmore %d\n", ROWS + i, i);
    }
    copy_in(&loop, pg, "COPY qr_test_pg_copy (id, label) FROM STDIN", &b, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "22P02");
    run_one(&loop, pg, "SELECT count(*) FROM qr_test_pg_copy", 0, NULL, &o);
    assert_true(o.ok);
    assert_int_equal(atoi(o.val[0]), ROWS);

    /* A COPY whose statement fails before any data is sent. */
    copy_in(&loop, pg, "COPY qr_test_pg_no_such_table FROM STDIN", &b, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "42P01");

    /* The connections are still usable afterwards. */
    run_ok(&loop, pg, "SELECT 1");
    run_ok(&loop, pg, "DROP TABLE qr_test_pg_copy");
    qr_buf_free(&b);
    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

static void copy_in_tx(uv_loop_t *loop, qr_pg_t *pg, const char *pre, const char *param,
                       const qr_buf_t *b, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    g_pending++;
    g_all_done = 0;
    g_inside_submit = 1;
    const char *params[] = {param};
    assert_int_equal(qr_pg_copy_in_tx(pg, pre, 1, params, "COPY qr_test_pg_tx (id) FROM STDIN",
                                      b->data, b->len, on_result, o),
                     0);
    g_inside_submit = 0;
    wait_all(loop, 30000);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->in_call, 0);
}

/* A COPY in one transaction with the statement before it: both commit,
 * or neither (a bad row, or a failing statement before); the callback gets
 * the statement's result; the connections come back out of the
 * transaction, ready for the next query. */
static void test_copy_tx(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 2);
    run_ok(&loop, pg, "DROP TABLE IF EXISTS qr_test_pg_tx, qr_test_pg_tx_log");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_tx (id int PRIMARY KEY)");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_tx_log (n text NOT NULL)");
    const char *pre = "INSERT INTO qr_test_pg_tx_log (n) VALUES ($1) RETURNING n || '!'";
    const char *count = "SELECT (SELECT count(*) FROM qr_test_pg_tx),"
                        " (SELECT string_agg(n, ',' ORDER BY n) FROM qr_test_pg_tx_log)";

    qr_buf_t b;
    qr_buf_init(&b);
    for (int i = 1; i <= 5000; i++)
        qr_buf_appendf(&b, "%d\n", i);
    outcome_t o;
    copy_in_tx(&loop, pg, pre, "one", &b, &o);
    if (!o.ok)
        fail_msg("COPY in a transaction: %s", o.err);
    assert_string_equal(o.val[0], "one!");
    run_one(&loop, pg, count, 0, NULL, &o);
    assert_string_equal(o.val[0], "5000");
    assert_string_equal(o.val[1], "one");

    /* The same ids again: the COPY fails, and the statement's row goes too. */
    copy_in_tx(&loop, pg, pre, "two", &b, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "23505");
    /* The statement before fails: no COPY. */
    qr_buf_reset(&b);
    qr_buf_appends(&b, "6001\n6002\n");
    copy_in_tx(&loop, pg, pre, NULL, &b, &o);
    assert_false(o.ok);
    assert_string_equal(o.sqlstate, "23502");
    run_one(&loop, pg, count, 0, NULL, &o);
    assert_string_equal(o.val[0], "5000");
    assert_string_equal(o.val[1], "one");

    /* Both connections are out of any transaction: what they run next
     * commits on its own. */
    outcome_t a, c;
    const char *p1[] = {"after-1"}, *p2[] = {"after-2"};
    submit(pg, "INSERT INTO qr_test_pg_tx_log (n) VALUES ($1)", 1, p1, &a);
    submit(pg, "INSERT INTO qr_test_pg_tx_log (n) VALUES ($1)", 1, p2, &c);
    wait_all(&loop, 10000);
    assert_true(a.ok && c.ok);
    copy_in_tx(&loop, pg, pre, "three", &b, &o);
    assert_true(o.ok);
    run_one(&loop, pg, count, 0, NULL, &o);
    assert_string_equal(o.val[0], "5002");
    assert_string_equal(o.val[1], "after-1,after-2,one,three");

    run_ok(&loop, pg, "DROP TABLE qr_test_pg_tx, qr_test_pg_tx_log");
    qr_buf_free(&b);
    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

/* --- a COPY streamed in as its data arrives (qr_pg_copy_open) ------------------------- */

typedef struct producer_s {
    qr_pg_copy_t *copy;
    int next, last; /* rows next..last are still to put */
    int dup_at;     /* put row dup_at twice (0: never) */
    int abort_at;   /* abort once this row is put (0: never) */
    int ready, drains, fulls;
    int finished;
    outcome_t o;
} producer_t;

/* Puts rows until the COPY says full or all are put; then finishes. */
static void produce(producer_t *p)
{
    qr_buf_t b;
    qr_buf_init(&b);
    while (p->next <= p->last) {
        qr_buf_reset(&b);
        for (int k = 0; k < 2000 && p->next <= p->last; k++, p->next++) {
            qr_buf_appendf(&b, "%d\t%0100d\n", p->next, p->next);
            if (p->next == p->dup_at)
                qr_buf_appendf(&b, "%d\tdup\n", p->next);
        }
        g_inside_submit = 1;
        int r = qr_pg_copy_put(p->copy, b.data, b.len);
        g_inside_submit = 0;
        assert_true(r == 0 || r == 1);
        if (p->abort_at && p->next > p->abort_at) {
            qr_pg_copy_abort(p->copy, "stopped by the test");
            p->finished = 1;
            qr_buf_free(&b);
            return;
        }
        if (r == 1) {
            p->fulls++;
            qr_buf_free(&b);
            return; /* on_drain carries on */
        }
    }
    qr_buf_free(&b);
    if (!p->finished) {
        p->finished = 1;
        const char *params[] = {"done"};
        g_inside_submit = 1;
        qr_pg_copy_finish(
            p->copy, "SELECT $1::text || '!', (SELECT count(*) FROM qr_test_pg_stream)", 1, params);
        g_inside_submit = 0;
    }
}

static void on_stream_ready(void *arg)
{
    producer_t *p = arg;
    assert_false(g_inside_submit);
    p->ready++;
    produce(p);
}

static void on_stream_drain(void *arg)
{
    producer_t *p = arg;
    assert_false(g_inside_submit);
    p->drains++;
    produce(p);
}

static void on_stream_done(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    producer_t *p = arg;
    on_result(res, err, sqlstate, &p->o);
}

static void stream(uv_loop_t *loop, qr_pg_t *pg, producer_t *p, int abort_now)
{
    g_pending++;
    g_all_done = 0;
    g_inside_submit = 1;
    assert_int_equal(qr_pg_copy_open(pg, "COPY qr_test_pg_stream (id, pad) FROM STDIN",
                                     on_stream_ready, on_stream_drain, on_stream_done, p, &p->copy),
                     0);
    if (abort_now) {
        qr_pg_copy_abort(p->copy, "stopped before it began");
        p->finished = 1;
    }
    g_inside_submit = 0;
    if (g_pending > 0 && !qr_test_run_until(loop, &g_all_done, 60000))
        fail_msg("stream: no end (ready %d, fulls %d, drains %d, next %d, finished %d)", p->ready,
                 p->fulls, p->drains, p->next, p->finished);
    assert_int_equal(p->o.calls, 1);
    assert_int_equal(p->o.in_call, 0);
}

/* 400,000 rows (some 42 MB) put as they are made: the COPY says "full"
 * and later "drained" while the socket cannot take more, commits with the
 * statement after it, whose result the callback gets; a duplicate row
 * fails it at its end, and an abort (before the COPY began, or half-way)
 * rolls it back: nothing of either is kept. */
static void test_copy_stream(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 2);
    run_ok(&loop, pg, "DROP TABLE IF EXISTS qr_test_pg_stream");
    run_ok(&loop, pg, "CREATE TABLE qr_test_pg_stream (id int PRIMARY KEY, pad text)");
    outcome_t o;

    producer_t *p = calloc(1, sizeof *p);
    p->next = 1;
    p->last = 400000;
    stream(&loop, pg, p, 0);
    if (!p->o.ok)
        fail_msg("streamed COPY: %s", p->o.err);
    assert_string_equal(p->o.val[0], "done!");
    assert_string_equal(p->o.val[1], "400000");
    assert_int_equal(p->ready, 1);
    assert_true(p->fulls > 0);
    assert_int_equal(p->drains, p->fulls);

    memset(p, 0, sizeof *p);
    p->next = 400001;
    p->last = 500000;
    p->dup_at = 450000;
    stream(&loop, pg, p, 0);
    assert_false(p->o.ok);
    assert_string_equal(p->o.sqlstate, "23505");

    memset(p, 0, sizeof *p);
    p->next = 400001;
    p->last = 500000;
    p->abort_at = 420000;
    stream(&loop, pg, p, 0);
    assert_false(p->o.ok);
    assert_int_equal(p->ready, 1);

    memset(p, 0, sizeof *p);
    p->next = 400001;
    p->last = 400010;
    stream(&loop, pg, p, 1);
    assert_false(p->o.ok);
    assert_int_equal(p->ready, 0);
    free(p);

    run_one(&loop, pg, "SELECT count(*), max(id) FROM qr_test_pg_stream", 0, NULL, &o);
    assert_string_equal(o.val[0], "400000");
    assert_string_equal(o.val[1], "400000");
    /* Both connections are out of any transaction. */
    run_ok(&loop, pg, "INSERT INTO qr_test_pg_stream (id) VALUES (0)");
    run_ok(&loop, pg, "INSERT INTO qr_test_pg_stream (id) VALUES (-1)");
    run_one(&loop, pg, "SELECT count(*) FROM qr_test_pg_stream", 0, NULL, &o);
    assert_string_equal(o.val[0], "400002");
    run_ok(&loop, pg, "DROP TABLE qr_test_pg_stream");
    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

/* A backend killed by the server: its running query fails, the pool
 * reconnects that connection, and later queries succeed. */
static void test_backend_terminated(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 4);
    wait_connected(&loop, pg, 4, 10000);

    outcome_t victim, killer;
    submit(pg, "SELECT /* qr-victim */ pg_sleep(30)", 0, NULL, &victim);
    qr_test_run_for(&loop, 300);
    assert_int_equal(victim.calls, 0);
    uint64_t t0 = uv_now(&loop);
    submit(pg,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE application_name = 'qr_test_pg' AND query LIKE '%qr-' || 'victim%' "
           "AND pid <> pg_backend_pid()",
           0, NULL, &killer);
    wait_all(&loop, 10000);
    assert_true(uv_now(&loop) - t0 < 10000);
    assert_int_equal(killer.calls, 1);
    if (!killer.ok)
        fail_msg("terminate: %s", killer.err);
    assert_string_equal(killer.val[0], "1");
    assert_int_equal(victim.calls, 1);
    assert_false(victim.ok);
    assert_true(strlen(victim.err) > 0);

    /* The killed connection comes back; the pool serves everything. */
    wait_connected(&loop, pg, 4, 10000);
    outcome_t after[16];
    for (int i = 0; i < 16; i++)
        submit(pg, "SELECT 7", 0, NULL, &after[i]);
    wait_all(&loop, 10000);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(after[i].calls, 1);
        assert_true(after[i].ok);
        assert_string_equal(after[i].val[0], "7");
    }

    /* An idle connection killed server-side is noticed and replaced too. */
    outcome_t o;
    run_one(&loop, pg,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'qr_test_pg' AND pid <> pg_backend_pid()",
            0, NULL, &o);
    assert_true(o.ok);
    assert_string_equal(o.val[0], "3");
    wait_connected(&loop, pg, 1, 5000);  /* the three deaths are noticed... */
    wait_connected(&loop, pg, 4, 10000); /* ...and repaired */
    run_ok(&loop, pg, "SELECT 1");

    close_pool(&loop, pg);
    qr_test_loop_close(&loop);
}

/* Nothing listens: queries fail quickly with the connect error; a query
 * submitted while every connection waits out its backoff fails later, not
 * inside the call. */
static void test_closed_port(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int held = -1; /* the port stays bound, not listening: refused, and nobody else's */
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=quorum dbname=quorum",
             qr_test_hold_port(0, &held));
    qr_pg_t *pg = NULL;
    assert_int_equal(qr_pg_open(&loop, conninfo, 2, 2000, &pg), 0);

    outcome_t o;
    uint64_t t0 = uv_now(&loop);
    run_one(&loop, pg, "SELECT 1", 0, NULL, &o);
    assert_false(o.ok);
    assert_non_null(strstr(o.err, "unavailable"));
    assert_true(uv_now(&loop) - t0 < 2000);
    assert_int_equal(qr_pg_connected(pg), 0);

    run_one(&loop, pg, "SELECT 1", 0, NULL, &o);
    assert_false(o.ok);

    close_pool(&loop, pg);
    close(held);
    qr_test_loop_close(&loop);
}

/* The server accepts TCP but never answers: our own timer ends the attempt. */
static void test_connect_timeout(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int lfd = -1;
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d user=quorum dbname=quorum",
             qr_test_loopback_port(&lfd));
    qr_pg_t *pg = NULL;
    assert_int_equal(qr_pg_open(&loop, conninfo, 2, 300, &pg), 0);

    outcome_t o;
    uint64_t t0 = uv_now(&loop);
    run_one(&loop, pg, "SELECT 1", 0, NULL, &o);
    uint64_t took = uv_now(&loop) - t0;
    assert_false(o.ok);
    assert_non_null(strstr(o.err, "timeout"));
    assert_true(took >= 250 && took < 3000);

    close_pool(&loop, pg);
    close(lfd);
    qr_test_loop_close(&loop);
}

/* Closing with statements running and queued fails each exactly once,
 * refuses new work, and frees everything (the loop closes). */
static void test_close_in_flight(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    qr_pg_t *pg = open_pool(&loop, 2);
    wait_connected(&loop, pg, 2, 10000);

    enum { N = 10 };
    outcome_t o[N];
    for (int i = 0; i < N; i++)
        submit(pg, "SELECT pg_sleep(0.2)", 0, NULL, &o[i]);
    qr_test_run_for(&loop, 50);

    volatile int closed = 0;
    qr_pg_close(pg, qr_test_set_flag, (void *)&closed);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_false(o[i].ok);
        assert_non_null(strstr(o[i].err, "closed"));
    }
    assert_int_equal(g_pending, 0);
    outcome_t late;
    assert_true(qr_pg_query(pg, "SELECT 1", 0, NULL, on_result, &late) < 0);
    assert_true(qr_test_run_until(&loop, &closed, 5000));
    qr_test_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_bound_params),
        cmocka_unit_test(test_sql_errors),
        cmocka_unit_test(test_prepared),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_copy_tx),
        cmocka_unit_test(test_copy_stream),
        cmocka_unit_test(test_backend_terminated),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_close_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
