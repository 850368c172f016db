/*
 * test_analytics.c - the lease log (events.c) and the throughput report
 * (analytics.c) against the stack's real PostgreSQL, in a database of their
 * own (created, migrated with qr_admin_migrate, dropped at the end).
 *
 * The report test writes a known history (four annotators of two vendors,
 * fixed think times, an idle pause, skips, a release, an expiry, a live
 * lease, a stale grant) and checks every figure exactly: counts, rates,
 * median/p90/mean time on task overall and by label, active and idle time,
 * outcome shares, expiry rates, the queue, the ETA, the fast-response flag,
 * the vendor and hour breakdowns, and that a vendor's view holds only its
 * own crew. Every event-loop test ends by proving the loop closes cleanly.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "admin.h"
#include "analytics.h"
#include "events.h"
#include "pg.h"
#include "testlib.h"
#include "util.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define T0      1893456000000LL /* 2030-01-01T00:00:00Z */
#define W0      (T0 + HOUR_MS)  /* the report's window is [W0, NOW) */
#define NOW     (T0 + 2 * HOUR_MS)

static char g_dbname[64];
static char g_conninfo[1024];
static PGconn *g_db; /* blocking connection for fixtures and checks */

/* --- blocking helpers (test set-up only, never on the loop) ---------------------- */

/* Runs sql with text params; returns the first value as an integer (0 if
 * none) and fails the test on an error. */
static int64_t sql_int(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s\n-> %s", sql, PQresultErrorMessage(r));
    int64_t v = 0;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static const char *num(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

static PGconn *connect_db(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static int group_setup(void **state)
{
    const char *base = qr_test_stack_get("QR_PG_CONNINFO");
    assert_non_null(base);
    snprintf(g_dbname, sizeof g_dbname, "analytics_%ld", (long)getpid());
    PGconn *admin = connect_db(base);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", g_dbname);
    sql_int(admin, sql, 0, NULL);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", g_dbname);
    sql_int(admin, sql, 0, NULL);
    PQfinish(admin);
    /* A later keyword wins in a libpq conninfo string. */
    snprintf(g_conninfo, sizeof g_conninfo, "%s dbname=%s", base, g_dbname);
    assert_int_equal(qr_admin_migrate(g_conninfo, QR_SQL_DIR), 0);
    g_db = connect_db(g_conninfo);
    return 0;
}

static int group_teardown(void **state)
{
    PQfinish(g_db);
    PGconn *admin = connect_db(qr_test_stack_get("QR_PG_CONNINFO"));
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", g_dbname);
    sql_int(admin, sql, 0, NULL);
    PQfinish(admin);
    return 0;
}

/* --- loop helpers ------------------------------------------------------------------ */

static uv_loop_t loop;
static qr_pg_t *pool;
static qr_events_t *events;
static volatile int flag;

static void on_flag(void *arg)
{
    flag = 1;
}

static void open_all(const char *conninfo, int flush_ms, int max_batch)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(qr_pg_open(&loop, conninfo, 2, 2000, &pool), 0);
    assert_int_equal(qr_events_open(&loop, pool, flush_ms, max_batch, &events), 0);
}

static void close_events(void)
{
    flag = 0;
    qr_events_close(events, on_flag, NULL);
    assert_true(qr_test_run_until(&loop, &flag, 20000));
    events = NULL;
}

static void close_all(void)
{
    if (events)
        close_events();
    flag = 0;
    qr_pg_close(pool, on_flag, NULL);
    assert_true(qr_test_run_until(&loop, &flag, 5000));
    qr_test_loop_close(&loop);
}

static void add(qr_event_kind_t kind, int64_t project, int64_t task, int64_t ann, int64_t token,
                int64_t at, int64_t granted, int64_t active, const char *label, const char *reason)
{
    qr_event_t e = {kind, project, task, ann, token, at, granted, active, label, reason};
    qr_events_add(events, &e);
}

/* --- the lease log -------------------------------------------------------------------- */

static const char *tricky = "he said \"hi\", {x} \\ NULL é";

/* Batches go out when full; close writes the rest; strings survive quoting. */
static void test_events_close_flushes(void **state)
{
    open_all(g_conninfo, 60000, 1000); /* the timer never fires in this test */
    for (int i = 0; i < 2500; i++)
        add((qr_event_kind_t)(i % 6), 900, i, 7, 10000 + i, T0 + i, i % 3 ? T0 : 0, i % 2 ? i : -1,
            i == 44 ? tricky : NULL, i == 45 ? "unreadable" : NULL);
    assert_int_equal(qr_events_dropped(events), 0);
    close_events();
    char buf[24];
    const char *p[] = {num(buf, 900)};
    assert_int_equal(sql_int(g_db, "SELECT count(*) FROM lease_events WHERE project_id = $1", 1, p),
                     2500);
    assert_int_equal(sql_int(g_db,
                             "SELECT count(*) FROM lease_events WHERE project_id = $1"
                             " AND granted_at IS NULL",
                             1, p),
                     834); /* i % 3 == 0 */
    assert_int_equal(sql_int(g_db,
                             "SELECT count(*) FROM lease_events WHERE project_id = $1"
                             " AND active_ms IS NULL",
                             1, p),
                     1250);
    PGresult *r = PQexecParams(g_db,
                               "SELECT label, kind, (extract(epoch FROM at) * 1000)::bigint"
                               " FROM lease_events WHERE project_id = $1 AND token = 10044",
                               1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), tricky);
    assert_string_equal(PQgetvalue(r, 0, 1), "submit"); /* 44 % 6 == QR_EV_SUBMIT */
    assert_int_equal(strtoll(PQgetvalue(r, 0, 2), NULL, 10), T0 + 44);
    PQclear(r);
    close_all();
}

/* A few events go out on the timer, without a full batch or a close. */
static void test_events_timer_flush(void **state)
{
    open_all(g_conninfo, 20, 1000);
    for (int i = 0; i < 3; i++)
        add(QR_EV_GRANT, 901, i, 7, i, T0, 0, -1, NULL, NULL);
    char buf[24];
    const char *p[] = {num(buf, 901)};
    int64_t n = 0;
    for (int tries = 0; tries < 100 && n < 3; tries++) {
        volatile int never = 0;
        qr_test_run_until(&loop, &never, 20);
        n = sql_int(g_db, "SELECT count(*) FROM lease_events WHERE project_id = $1", 1, p);
    }
    assert_int_equal(n, 3);
    close_all();
}

/* Rows of project p in lease_events, after running the loop for ms. */
static int64_t events_after(int64_t p, int ms)
{
    char buf[24];
    const char *params[] = {num(buf, p)};
    volatile int never = 0;
    qr_test_run_until(&loop, &never, ms);
    return sql_int(g_db, "SELECT count(*) FROM lease_events WHERE project_id = $1", 1, params);
}

/* Under load the recorder waits longer: after a batch of at least
 * busy_rows events the next waits busy_ms, and a smaller batch brings back
 * flush_ms. Bad settings are refused and change nothing. */
static void test_events_busy_wait(void **state)
{
    open_all(g_conninfo, 20, 1000);
    assert_int_equal(qr_events_set_busy(events, -1, 100), QR_EINVAL);
    assert_int_equal(qr_events_set_busy(events, 5, 10), QR_EINVAL); /* below flush_ms */
    assert_int_equal(qr_events_set_busy(events, 5, 3600001), QR_EINVAL);
    assert_int_equal(qr_events_set_busy(events, 5, 1500), 0);
    /* Five events: a busy batch, sent after flush_ms. */
    for (int i = 0; i < 5; i++)
        add(QR_EV_GRANT, 904, i, 7, i, T0 + i, 0, -1, NULL, NULL);
    int64_t n = 0;
    for (int tries = 0; tries < 100 && n < 5; tries++)
        n = events_after(904, 20);
    assert_int_equal(n, 5);
    /* Two more wait busy_ms (1.5 s): not there after 0.5 s, there by 5 s.
     * The loop's clock is brought up to date first: the timer counts from
     * it, so that it cannot fire before 1.5 s of real time have passed
     * (less a margin for the clock reads). */
    uv_update_time(&loop);
    uint64_t t0 = uv_hrtime();
    for (int i = 5; i < 7; i++)
        add(QR_EV_GRANT, 904, i, 7, i, T0 + i, 0, -1, NULL, NULL);
    assert_int_equal(events_after(904, 500), 5);
    for (int tries = 0; tries < 100 && n < 7; tries++)
        n = events_after(904, 50);
    assert_int_equal(n, 7);
    assert_true(uv_hrtime() - t0 >= 1400 * (uint64_t)1000000);
    /* That batch held two: the next goes after flush_ms again. */
    t0 = uv_hrtime();
    add(QR_EV_GRANT, 904, 7, 7, 7, T0 + 7, 0, -1, NULL, NULL);
    for (int tries = 0; tries < 100 && n < 8; tries++)
        n = events_after(904, 20);
    assert_int_equal(n, 8);
    assert_true(uv_hrtime() - t0 < 1500 * (uint64_t)1000000);
    close_all();
}

/* PostgreSQL unreachable: the buffer stays bounded, the oldest events are
 * dropped and counted, and close still ends cleanly. */
static void test_events_bounded_when_down(void **state)
{
    open_all("host=127.0.0.1 port=1 user=nobody dbname=none", 50, 1000);
    for (int i = 0; i < 100010; i++)
        add(QR_EV_HEARTBEAT, 902, i, 7, i, T0 + i, T0, -1, NULL, NULL);
    assert_int_equal(qr_events_dropped(events), 10);
    volatile int never = 0;
    qr_test_run_until(&loop, &never, 200); /* a failed attempt or two, then retries */
    assert_int_equal(qr_events_dropped(events), 10);
    close_all();
}

/* --- the report ------------------------------------------------------------------- */

static int64_t org_a, org_b, owner, project;
static int64_t alice, bob, carol, dave;
static int64_t task_ids[41]; /* task_ids[1..40] */
static int64_t next_token = 1;

static int64_t insert_returning(const char *sql, int n, const char *const *params)
{
    int64_t id = sql_int(g_db, sql, n, params);
    assert_true(id > 0);
    return id;
}

static int64_t make_org(const char *name, const char *kind)
{
    const char *p[] = {name, kind};
    return insert_returning("INSERT INTO organizations (name, kind) VALUES ($1, $2) RETURNING id",
                            2, p);
}

static int64_t make_user(int64_t org, const char *name)
{
    char b[24];
    const char *p[] = {num(b, org), name};
    return insert_returning(
        "INSERT INTO users (org_id, name, role) VALUES ($1, $2, 'annotator') RETURNING id", 2, p);
}

static void annotation(int64_t ann, int task, int64_t token, int64_t at, int64_t active,
                       const char *label)
{
    char b[6][24];
    const char *p[] = {num(b[0], task_ids[task]),
                       num(b[1], project),
                       num(b[2], ann),
                       label,
                       num(b[3], token),
                       active >= 0 ? num(b[4], active) : NULL,
                       num(b[5], at)};
    sql_int(g_db,
            "INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,"
            " active_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6::int,"
            " to_timestamp($7::bigint / 1000.0))",
            7, p);
}

/* A lease granted at g that ends after dur ms with a submit (annotation
 * stored at the same instant), a skip, a release or an expiry. */
static void lease(qr_event_kind_t end, int64_t ann, int task, int64_t g, int64_t dur,
                  int64_t active, const char *label)
{
    int64_t tok = next_token++;
    add(QR_EV_GRANT, project, task_ids[task], ann, tok, g, g, -1, NULL, NULL);
    add(end, project, task_ids[task], ann, tok, g + dur, g, end == QR_EV_SUBMIT ? active : -1,
        end == QR_EV_SUBMIT ? label : NULL, end == QR_EV_SKIP ? "unreadable" : NULL);
    if (end == QR_EV_SUBMIT)
        annotation(ann, task, tok, g + dur, active, label);
}

static void build_history(void)
{
    char b[2][24];
    owner = make_org("owner-co", "owner");
    org_a = make_org("vendor-a", "vendor");
    org_b = make_org("vendor-b", "vendor");
    alice = make_user(org_a, "alice");
    bob = make_user(org_a, "bob");
    carol = make_user(org_b, "carol");
    dave = make_user(org_b, "dave");
    const char *pp[] = {num(b[0], owner)};
    project = insert_returning("INSERT INTO projects (org_id, name, labels, lease_ttl_ms)"
                               " VALUES ($1, 'cats', '[\"cat\",\"dog\"]', 60000) RETURNING id",
                               1, pp);
    /* Tasks 1..33 need one annotation, 34..40 need three. */
    for (int t = 1; t <= 40; t++) {
        const char *p[] = {num(b[0], project), num(b[1], t <= 33 ? 1 : 3)};
        task_ids[t] = insert_returning("INSERT INTO tasks (project_id, data, required)"
                                       " VALUES ($1, '{}', $2) RETURNING id",
                                       2, p);
    }

    /* alice: two annotations in the hour before the window; then ten in it
     * of 10 s, 20 s ... 100 s (agent-reported), 1 s apart except one pause
     * of 10 min after the fifth. Labels alternate cat, dog. */
    lease(QR_EV_SUBMIT, alice, 1, T0, 20000, 20000, "cat");
    lease(QR_EV_SUBMIT, alice, 2, T0 + 10 * MIN_MS, 20000, 20000, "dog");
    int64_t g = W0;
    for (int i = 0; i < 10; i++) {
        int64_t dur = (i + 1) * 10000;
        lease(QR_EV_SUBMIT, alice, 3 + i, g, dur, dur, i % 2 ? "dog" : "cat");
        g += dur + (i == 4 ? 10 * MIN_MS : 1000);
    }
    /* bob: ten of 40 s with no active time reported (submit - grant), the
     * last on a task needing three; then two skips and a release of 5 s. */
    g = W0;
    for (int i = 0; i < 10; i++) {
        lease(QR_EV_SUBMIT, bob, i < 9 ? 13 + i : 34, g, 40000, -1, "dog");
        g += 41000;
    }
    lease(QR_EV_SKIP, bob, 35, g, 5000, -1, NULL);
    g += 6000;
    lease(QR_EV_SKIP, bob, 36, g, 5000, -1, NULL);
    g += 6000;
    lease(QR_EV_RELEASE, bob, 37, g, 5000, -1, NULL);
    /* carol: ten of 5 s reported (6 s between grant and submit): fast. */
    g = W0;
    for (int i = 0; i < 10; i++) {
        lease(QR_EV_SUBMIT, carol, 22 + i, g, 6000, 5000, "cat");
        g += 7000;
    }
    /* dave: two of 30 s, a lease that expires (recorded 1 s after its TTL),
     * a grant long ago never ended (not live: past its TTL), and a live
     * lease granted 10 s before now and renewed 5 s before now. */
    lease(QR_EV_SUBMIT, dave, 32, W0, 30000, 30000, "dog");
    lease(QR_EV_SUBMIT, dave, 33, W0 + 31000, 30000, 30000, "dog");
    lease(QR_EV_EXPIRE, dave, 38, W0 + 62000, 61000, -1, NULL);
    add(QR_EV_GRANT, project, task_ids[39], dave, next_token++, T0 + 1000000, T0 + 1000000, -1,
        NULL, NULL);
    int64_t live = next_token++;
    add(QR_EV_GRANT, project, task_ids[35], dave, live, NOW - 10000, NOW - 10000, -1, NULL, NULL);
    add(QR_EV_HEARTBEAT, project, task_ids[35], dave, live, NOW - 5000, NOW - 10000, -1, NULL,
        NULL);

    const char *p[] = {num(b[0], project)};
    sql_int(g_db,
            "UPDATE tasks t SET done_count = c.n,"
            " state = CASE WHEN c.n = t.required THEN 'complete' ELSE 'waiting' END"
            " FROM (SELECT t2.id, (SELECT count(*) FROM annotations a WHERE a.task_id = t2.id) AS n"
            "       FROM tasks t2 WHERE t2.project_id = $1) c WHERE c.id = t.id",
            1, p);
}

/* One awaited report. */
static int got_status;
static json_t *got_body;

/* The API's mapping of a report's status (api_reports.c), so the checks
 * below read as the HTTP answers do. */
static void on_report(qr_report_status_t st, json_t *data, const char *message, void *arg)
{
    static const int http[] = {200, 404, 422, 503};
    static const char *const code[] = {"", "not_found", "invalid", "unavailable"};
    got_status = http[st];
    got_body = st == QR_REPORT_OK
                   ? data
                   : json_pack("{s:{s:s,s:s}}", "error", "code", code[st], "message", message);
    flag = 1;
}

/* Parses query as the API does, then asks for the report: cb has run
 * (422) or will run from the loop. */
static int throughput(int64_t proj, int64_t org, const char *query)
{
    qr_throughput_query_t q;
    char msg[256];
    if (qr_analytics_parse_query(query, NOW, &q, msg, sizeof msg) < 0) {
        on_report(QR_REPORT_INVALID, NULL, msg, NULL);
        return 0;
    }
    /* The primary alone; static: the report reads it until its callback. */
    static qr_read_t rd;
    rd = (qr_read_t){.pg = pool, .primary = pool, .from = QR_READ_NONE};
    return qr_analytics_throughput(&rd, proj, org, &q, NOW, on_report, NULL);
}

static json_t *report_as(int64_t org, const char *query, int want_status)
{
    flag = 0;
    got_body = NULL;
    assert_int_equal(throughput(project, org, query), 0);
    assert_true(qr_test_run_until(&loop, &flag, 20000));
    if (got_status != want_status) {
        char *s = json_dumps(got_body, JSON_INDENT(1));
        fail_msg("status %d, wanted %d: %s", got_status, want_status, s ? s : "(null)");
    }
    assert_non_null(got_body);
    if (getenv("QR_ANALYTICS_PRINT")) { /* to read the reports by eye */
        char *s = json_dumps(got_body, JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
    }
    return got_body;
}

/* The value at a dotted path; a numeric segment indexes an array. */
static json_t *at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg && j;
         seg = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j))
            j = json_array_get(j, strtoul(seg, NULL, 10));
        else
            j = json_object_get(j, seg);
    }
    return j;
}

static void expect_num(json_t *j, const char *path, double want)
{
    json_t *v = at(j, path);
    if (!json_is_number(v))
        fail_msg("%s: not a number (wanted %.4f)", path, want);
    if (fabs(json_number_value(v) - want) > 1e-6)
        fail_msg("%s: %.6f, wanted %.6f", path, json_number_value(v), want);
}

static void expect_null(json_t *j, const char *path)
{
    if (!json_is_null(at(j, path)))
        fail_msg("%s: not null", path);
}

static void expect_str(json_t *j, const char *path, const char *want)
{
    const char *s = json_string_value(at(j, path));
    if (!s || strcmp(s, want))
        fail_msg("%s: \"%s\", wanted \"%s\"", path, s ? s : "(none)", want);
}

/* The row of `rows` whose `key` is the string `value`. */
static json_t *row(json_t *body, const char *key, const char *value)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(body, "rows"), i, r)
    {
        const char *s = json_string_value(json_object_get(r, key));
        if (s && !strcmp(s, value))
            return r;
    }
    fail_msg("no row with %s = %s", key, value);
    return NULL;
}

static void check_project_hour(json_t *j)
{
    expect_num(j, "window.from_ms", (double)W0);
    expect_num(j, "window.to_ms", (double)NOW);
    expect_num(j, "totals.annotations", 32);
    expect_num(j, "totals.annotations_per_hour", 32);
    expect_num(j, "totals.annotations_all_time", 34);
    /* 34 annotations from T0+20 s to W0+1158 s: 4738 s. */
    expect_num(j, "totals.annotations_per_hour_all_time", 25.83);
    expect_str(j, "totals.first_annotation_at", "2030-01-01T00:00:20.000Z");
    expect_num(j, "totals.annotators", 4);
    expect_num(j, "totals.tasks_completed", 33);
    expect_num(j, "totals.tasks_completed_in_window", 31);
    expect_num(j, "totals.leases_granted", 37);

    /* 32 times: 5 s x10, 10, 20, 30 x3, 40 x11, 50 ... 100 s. */
    expect_num(j, "time_on_task.n", 32);
    expect_num(j, "time_on_task.median_ms", 40000);
    expect_num(j, "time_on_task.p90_ms", 69000);
    expect_num(j, "time_on_task.mean_ms", 33125);
    expect_str(j, "time_on_task.by_label.0.label", "cat");
    expect_num(j, "time_on_task.by_label.0.n", 15);
    expect_num(j, "time_on_task.by_label.0.median_ms", 5000);
    expect_num(j, "time_on_task.by_label.0.p90_ms", 62000);
    expect_num(j, "time_on_task.by_label.0.mean_ms", 20000);
    expect_str(j, "time_on_task.by_label.1.label", "dog");
    expect_num(j, "time_on_task.by_label.1.n", 17);
    expect_num(j, "time_on_task.by_label.1.median_ms", 40000);
    expect_num(j, "time_on_task.by_label.1.mean_ms", 44705.9);

    expect_num(j, "activity.idle_gap_ms", 300000);
    expect_num(j, "activity.active_ms", 558000 + 427000 + 69000 + 128000);
    expect_num(j, "activity.idle_ms", 600000 + 3467000);
    expect_num(j, "activity.idle_gaps", 2);
    expect_num(j, "activity.utilisation", 0.2252);

    expect_num(j, "outcomes.ended", 36);
    expect_num(j, "outcomes.submitted", 32);
    expect_num(j, "outcomes.skipped", 2);
    expect_num(j, "outcomes.released", 1);
    expect_num(j, "outcomes.expired", 1);
    expect_num(j, "outcomes.submitted_share", 0.8889);
    expect_num(j, "outcomes.skipped_share", 0.0556);
    expect_num(j, "outcomes.released_share", 0.0278);
    expect_num(j, "outcomes.expired_share", 0.0278);

    expect_num(j, "queue.tasks", 40);
    expect_num(j, "queue.complete", 33);
    expect_num(j, "queue.in_progress", 2); /* task 34 (1 of 3), task 35 (live lease) */
    expect_num(j, "queue.waiting", 5);
    expect_num(j, "queue.auto_accepted", 0);
    expect_null(j, "queue.ready_window");
    expect_num(j, "queue.leases_live", 1);
    expect_num(j, "queue.annotations_remaining", 20);

    expect_num(j, "eta.annotations_remaining", 20);
    expect_num(j, "eta.rate_window_ms", 3600000);
    expect_num(j, "eta.rate_per_hour", 32);
    expect_num(j, "eta.seconds", 2250);
    expect_str(j, "eta.at", "2030-01-01T02:37:30.000Z");
    /* The pace (sql_work.h): the 10 minutes of annotations up to the latest
     * one (W0 + 1158 s), their working time, and the ETA they give. */
    expect_num(j, "eta.pace.span_ms", 600000);
    expect_str(j, "eta.pace.last_annotation_at", "2030-01-01T01:19:18.000Z");
    double pn = json_number_value(at(j, "eta.pace.annotations"));
    double pms = json_number_value(at(j, "eta.pace.working_ms"));
    assert_true(pn >= 1 && pms > 0 && pms <= 600000 + 300000);
    expect_num(j, "eta.pace.per_hour", round(pn * 3600000 / pms * 100) / 100);
    expect_num(j, "eta.pace.seconds", round(20 * pms / pn / 1000));

    expect_num(j, "fast_response.crew_median_ms", 40000); /* of 55, 40 and 5 s */
    expect_num(j, "fast_response.crew_annotators", 3);
    assert_int_equal(json_array_size(at(j, "fast_response.flagged")), 1);
    expect_str(j, "fast_response.flagged.0.annotator", "carol");
    expect_num(j, "fast_response.flagged.0.median_ms", 5000);
}

/* The hour path: a window of more than two hours, whose whole hours come
 * from lease_event_hours and annotation_hours, its whole minutes at the
 * edges from lease_event_minutes and its partial minutes from the log,
 * gives the figures of exact=1 (counts, activity to the millisecond), and
 * the medians of the minute rollup's histogram. */
static void expect_close(json_t *fast, json_t *exact, const char *path, double tol)
{
    json_t *f = at(fast, path), *e = at(exact, path);
    if (json_is_null(f) && json_is_null(e))
        return;
    if (!json_is_number(f) || !json_is_number(e))
        fail_msg("%s: not numbers", path);
    double a = json_number_value(f), b = json_number_value(e);
    if (fabs(a - b) > tol * fabs(b) + 1e-9)
        fail_msg("%s: %.3f from the rollups, %.3f exact", path, a, b);
}

static void expect_same(json_t *fast, json_t *exact, const char *path)
{
    if (!json_equal(at(fast, path), at(exact, path))) {
        char *a = json_dumps(at(fast, path), JSON_SORT_KEYS);
        char *b = json_dumps(at(exact, path), JSON_SORT_KEYS);
        fail_msg("%s: %s from the rollups, %s exact", path, a ? a : "-", b ? b : "-");
    }
}

static void compare_hourly(int64_t org, const char *window, const char *by)
{
    char q[256], qe[272];
    snprintf(q, sizeof q, "window=%s&by=%s", window, by);
    snprintf(qe, sizeof qe, "%s&exact=1", q);
    json_t *f = report_as(org, q, 200);
    json_t *e = report_as(org, qe, 200);
    expect_str(f, "window.source", "hourly");
    expect_str(e, "window.source", "events");
    /* The crew's working time is read from raw annotations, for raw
     * windows only (docs/THROUGHPUT.md): null from the rollups. */
    assert_true(json_is_null(at(f, "totals.working_ms")));
    assert_true(json_is_null(at(f, "totals.annotations_per_working_hour")));
    assert_true(json_is_number(at(e, "totals.working_ms")));
    json_object_del(json_object_get(e, "totals"), "working_ms");
    json_object_del(json_object_get(e, "totals"), "annotations_per_working_hour");
    json_object_del(json_object_get(f, "totals"), "working_ms");
    json_object_del(json_object_get(f, "totals"), "annotations_per_working_hour");
    static const char *const same[] = {"totals",
                                       "outcomes",
                                       "queue",
                                       "eta",
                                       "activity",
                                       "time_on_task.n",
                                       "fast_response.crew_annotators"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        expect_same(f, e, same[i]);
    expect_close(f, e, "time_on_task.mean_ms", 0.0001);
    /* Medians and p90: the minute rollup reads the same histogram (an idle
     * threshold of 299999 ms keeps the report off the hour rows), so they
     * must be the very same figures. */
    char qm[288];
    snprintf(qm, sizeof qm, "%s&idle_gap_ms=299999", q);
    json_t *m = report_as(org, qm, 200);
    expect_str(m, "window.source", "rollup");
    expect_same(f, m, "time_on_task");
    expect_same(f, m, "fast_response");
    assert_int_equal(json_array_size(json_object_get(f, "rows")),
                     json_array_size(json_object_get(e, "rows")));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(e, "rows"), i, r)
    {
        json_t *fr = json_array_get(json_object_get(f, "rows"), i);
        static const char *const keys[] = {"annotator",      "organization",   "hour",
                                           "annotations",    "leases",         "idle_gaps",
                                           "active_ms",      "idle_ms",        "annotators_active",
                                           "leases_granted", "leases_expired", "time_on_task.n"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (at(r, keys[k]))
                expect_same(fr, r, keys[k]);
        expect_close(fr, r, "time_on_task.mean_ms", 0.0001);
        expect_same(fr, json_array_get(json_object_get(m, "rows"), i), "time_on_task");
    }
    json_decref(m);
    json_decref(f);
    json_decref(e);
}

static void test_report(void **state)
{
    char b0[24];
    open_all(g_conninfo, 50, 1000);
    build_history();
    close_events(); /* flushes the whole history */

    /* The project, last hour, per annotator. */
    json_t *j = report_as(0, "window=1h&by=annotator", 200);
    check_project_hour(j);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 4);
    json_t *a = row(j, "annotator", "alice");
    expect_num(a, "annotations", 10);
    expect_num(a, "time_on_task.n", 10);
    expect_num(a, "time_on_task.median_ms", 55000);
    expect_num(a, "time_on_task.p90_ms", 91000);
    expect_num(a, "time_on_task.mean_ms", 55000);
    expect_num(a, "active_ms", 558000);
    expect_num(a, "idle_ms", 600000);
    expect_num(a, "idle_gaps", 1);
    expect_num(a, "utilisation", 0.4819);
    expect_num(a, "expiry_rate", 0);
    assert_true(json_is_false(json_object_get(a, "fast_response")));
    json_t *b = row(j, "annotator", "bob");
    expect_num(b, "time_on_task.median_ms", 40000); /* submit - grant */
    expect_num(b, "leases.granted", 13);
    expect_num(b, "leases.ended", 13);
    expect_num(b, "leases.skipped", 2);
    expect_num(b, "leases.released", 1);
    expect_num(b, "active_ms", 427000);
    expect_num(b, "utilisation", 1);
    json_t *c = row(j, "annotator", "carol");
    expect_num(c, "time_on_task.median_ms", 5000); /* reported active time wins */
    assert_true(json_is_true(json_object_get(c, "fast_response")));
    json_t *d = row(j, "annotator", "dave");
    expect_num(d, "annotations", 2);
    expect_num(d, "leases.granted", 4);
    expect_num(d, "leases.expired", 1);
    expect_num(d, "expiry_rate", 0.3333);
    expect_num(d, "active_ms", 128000);
    expect_num(d, "idle_ms", 3467000);
    expect_num(d, "utilisation", 0.0356);
    assert_true(json_is_false(json_object_get(d, "fast_response"))); /* 2 < 10 submissions */
    json_decref(j);

    /* The same window given as FROM..TO, in UTC and with an offset. */
    j = report_as(0, "window=2030-01-01T01:00:00Z..2030-01-01T02:00:00Z", 200);
    check_project_hour(j);
    json_decref(j);
    j = report_as(0, "window=2030-01-01T02:00%2B01:00..2030-01-01T03:00:00.000+01:00", 200);
    check_project_hour(j);
    json_decref(j);

    /* Per vendor. */
    j = report_as(0, "by=vendor", 200);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 2);
    json_t *va = row(j, "organization", "vendor-a");
    expect_num(va, "annotators", 2);
    expect_num(va, "annotations", 20);
    expect_num(va, "leases.ended", 23);
    expect_num(va, "expiry_rate", 0);
    expect_num(va, "fast_response_flagged", 0);
    json_t *vb = row(j, "organization", "vendor-b");
    expect_num(vb, "annotations", 12);
    expect_num(vb, "time_on_task.median_ms", 5000);
    expect_num(vb, "expiry_rate", 0.0769);
    expect_num(vb, "fast_response_flagged", 1);
    json_decref(j);

    /* Per hour over two hours. */
    j = report_as(0, "window=2h&by=hour", 200);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 2);
    expect_str(j, "rows.0.hour", "2030-01-01T00:00:00.000Z");
    expect_num(j, "rows.0.annotations", 2);
    expect_num(j, "rows.0.time_on_task.median_ms", 20000);
    expect_num(j, "rows.0.leases_granted", 3);
    expect_num(j, "rows.1.annotations", 32);
    expect_num(j, "rows.1.time_on_task.median_ms", 40000);
    expect_num(j, "rows.1.annotators_active", 4);
    expect_num(j, "rows.1.leases_expired", 1);
    expect_num(j, "totals.annotations", 34);
    json_decref(j);

    /* Vendor A's manager: only alice and bob, anywhere in the answer. */
    j = report_as(org_a, "window=1h", 200);
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, "carol"));
    assert_null(strstr(text, "dave"));
    assert_null(strstr(text, "vendor-b"));
    free(text);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 2);
    expect_num(j, "totals.annotations", 20);
    expect_num(j, "totals.annotators", 2);
    expect_num(j, "outcomes.ended", 23);
    expect_num(j, "outcomes.submitted_share", 0.8696);
    expect_num(j, "outcomes.skipped_share", 0.087);
    expect_num(j, "outcomes.released_share", 0.0435);
    expect_num(j, "outcomes.expired_share", 0);
    expect_num(j, "eta.seconds", 3600);                   /* 20 remaining at the crew's 20/h */
    expect_num(j, "fast_response.crew_median_ms", 40000); /* the project's baseline */
    assert_int_equal(json_array_size(at(j, "fast_response.flagged")), 0);
    json_decref(j);
    j = report_as(org_a, "by=vendor", 200);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 1);
    json_decref(j);
    /* ... and asking for another vendor's annotator gives nothing. */
    char q[64];
    snprintf(q, sizeof q, "annotator=%" PRId64, carol);
    j = report_as(org_a, q, 200);
    expect_num(j, "totals.annotations", 0);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 0);
    json_decref(j);
    /* One annotator, seen by the owner. */
    j = report_as(0, q, 200);
    expect_num(j, "totals.annotations", 10);
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 1);
    assert_int_equal(json_array_size(at(j, "fast_response.flagged")), 1);
    json_decref(j);

    /* The hour path. 00:00-01:00 from the hour rows (alice's two leases
     * 10 minutes apart: an idle gap inside the hour); 01:00-01:59 from the
     * minute rows; 23:58:30.5-23:59 and 01:59-01:59:30.25 from the log.
     * Annotations: hours up to 01:00 rolled, the rest read raw. */
    assert_int_equal(
        sql_int(g_db, "SELECT quorum_roll_annotation_hours('2030-01-01T01:05:00Z')", 0, NULL), 1);
    {
        const char *p[] = {num(b0, project)};
        assert_int_equal(sql_int(g_db,
                                 "SELECT sum(annotations) * 1000 + sum(tasks_completed)"
                                 " FROM annotation_hours WHERE project_id = $1",
                                 1, p),
                         2002); /* alice's two, each completing its task */
        assert_int_equal(sql_int(g_db,
                                 "SELECT count(*) FROM lease_event_hours WHERE project_id = $1"
                                 " AND idle_gaps = 1 AND hour = '2030-01-01T00:00:00Z'",
                                 1, p),
                         1); /* alice's 9 m 40 s between her two leases */
    }
    static const char *const hourly = "2029-12-31T23:58:30.500Z..2030-01-01T01:59:30.250Z";
    compare_hourly(0, hourly, "annotator");
    compare_hourly(0, hourly, "vendor");
    compare_hourly(0, hourly, "hour");
    compare_hourly(org_a, hourly, "annotator");
    /* Another idle threshold: the minute rollup alone. */
    j = report_as(0, "window=3h&idle_gap_ms=120000", 200);
    expect_str(j, "window.source", "rollup");
    expect_num(j, "totals.annotations", 34);
    json_decref(j);

    /* Bad query strings: 422, through the callback, before returning. */
    static const char *const bad[] = {
        "window=2x",
        "window=0m",
        "window=93d",
        "by=task",
        "colour=red",
        "window=2030-01-02..2030-01-01",
        "window=2030-02-30..2030-03-01",
        "annotator=0",
        "annotator=",
        "window=%zz",
        "window",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        flag = 0;
        assert_int_equal(throughput(project, 0, bad[i]), 0);
        assert_true(flag);
        if (got_status != 422)
            fail_msg("%s: status %d", bad[i], got_status);
        expect_str(got_body, "error.code", "invalid");
        json_decref(got_body);
    }
    /* No such project. */
    flag = 0;
    assert_int_equal(throughput(987654, 0, NULL), 0);
    assert_true(qr_test_run_until(&loop, &flag, 20000));
    assert_int_equal(got_status, 404);
    json_decref(got_body);
    close_all();
}

/* The queue of every project, as GET /metrics reports it. */
static qr_analytics_queue_t got_queue;
static int got_queue_n;

static void on_queue(const qr_analytics_queue_t *rows, int n, const char *err, void *arg)
{
    got_queue_n = -1;
    for (int i = 0; rows && i < n; i++)
        if (rows[i].project == project) {
            got_queue = rows[i];
            got_queue_n = n;
        }
    flag = 1;
}

static void test_metrics_queue(void **state)
{
    open_all(g_conninfo, 50, 1000);
    flag = 0;
    assert_int_equal(qr_analytics_queue(pool, on_queue, NULL), 0);
    assert_true(qr_test_run_until(&loop, &flag, 20000));
    assert_true(got_queue_n >= 1);
    assert_int_equal(got_queue.complete, 33);
    assert_int_equal(got_queue.remaining, 20);
    assert_int_equal(got_queue.annotations, 34);
    /* 40 tasks: 33 complete, the rest waiting or partly annotated. */
    assert_int_equal(got_queue.waiting + got_queue.in_progress, 7);
    close_all();
}

/* The hour rollup merges batches exactly: one after the other (the gap at
 * the seam), and one interleaving with what a row holds (recomputed from
 * the minute rows), for counts, activity and the histogram. */
static void test_event_hours_merge(void **state)
{
    /* Events at 0, 30, 60, 400, 700, 720 and 2000 s after T0: gaps 30, 30,
     * 340 (idle), 300 (active: at most 5 min), 20 and 1280 s (idle). */
    static const int64_t batch1[] = {0, 60, 700, 720}, batch2[] = {30, 400}, batch3[] = {2000};
    const int64_t *batches[] = {batch1, batch2, batch3};
    size_t sizes[] = {4, 2, 1};
    for (int b = 0; b < 3; b++) {
        open_all(g_conninfo, 60000, 1000);
        for (size_t i = 0; i < sizes[b]; i++) {
            int64_t t = T0 + batches[b][i] * 1000;
            add(QR_EV_SUBMIT, 903, i, 7, 100 * b + (int64_t)i, t, t - 5000, 1000 * (b + 1),
                b == 2 ? "dog" : "cat", NULL);
        }
        close_all();
    }
    char buf[24];
    const char *p[] = {num(buf, 903)};
    assert_int_equal(sql_int(g_db,
                             "SELECT count(*) FROM lease_event_hours WHERE project_id = $1"
                             " AND submitted = 7 AND active_ms = 380000 AND idle_ms = 1620000"
                             " AND idle_gaps = 2 AND first_at = to_timestamp(1893456000)"
                             " AND last_at = to_timestamp(1893458000)",
                             1, p),
                     1);
    /* The histogram: cat 1000 ms x4, cat 2000 ms x2, dog 3000 ms x1, by
     * label then bucket, merged across the three batches. */
    PGresult *r =
        PQexecParams(g_db,
                     "SELECT tot_label::text, tot_n::text, tot_sum::text,"
                     " tot_bucket = ARRAY[floor(ln(1000) * 16 / ln(2)),"
                     "  floor(ln(2000) * 16 / ln(2)), floor(ln(3000) * 16 / ln(2))]::int[]"
                     " FROM lease_event_hours WHERE project_id = $1",
                     1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "{cat,cat,dog}");
    assert_string_equal(PQgetvalue(r, 0, 1), "{4,2,1}");
    assert_string_equal(PQgetvalue(r, 0, 2), "{4000,4000,3000}");
    assert_string_equal(PQgetvalue(r, 0, 3), "t");
    PQclear(r);
}

/* Annotations and completed tasks per hour: rolled once an hour closes, an
 * undo taken back out of a rolled hour, a second roll idempotent. */
static void test_annotation_hours(void **state)
{
    char b[4][24];
    int64_t org = make_org("roll-co", "owner");
    int64_t ann1 = make_user(org, "roll-1"), ann2 = make_user(org, "roll-2");
    const char *pp[] = {num(b[0], org)};
    int64_t proj = insert_returning("INSERT INTO projects (org_id, name, labels)"
                                    " VALUES ($1, 'roll', '[\"x\"]') RETURNING id",
                                    1, pp);
    /* t1 needs one (ann1 at 00:10), t2 two (ann1 at 00:20, ann2 at 00:40:
     * ann2 completes it), t3 one (ann2 at 01:10). */
    static const struct {
        int task, who, required;
        const char *at;
    } rows[] = {{0, 0, 1, "00:10"}, {1, 0, 2, "00:20"}, {1, 1, 2, "00:40"}, {2, 1, 1, "01:10"}};
    int64_t tasks[3];
    for (int t = 0; t < 3; t++) {
        const char *p[] = {num(b[0], proj), num(b[1], t == 1 ? 2 : 1)};
        tasks[t] = insert_returning("INSERT INTO tasks (project_id, data, required, done_count,"
                                    " state) VALUES ($1, '{}', $2, $2, 'complete') RETURNING id",
                                    2, p);
    }
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char at[64];
        snprintf(at, sizeof at, "2030-01-01T%s:00Z", rows[i].at);
        const char *p[] = {num(b[0], tasks[rows[i].task]), num(b[1], proj),
                           num(b[2], rows[i].who ? ann2 : ann1), num(b[3], 1000 + (int64_t)i), at};
        sql_int(g_db,
                "INSERT INTO annotations (task_id, project_id, annotator_id, label,"
                " fencing_token, created_at) VALUES ($1, $2, $3, 'x', $4, $5)",
                5, p);
    }
    char pbuf[24];
    const char *pj[] = {num(pbuf, proj)};
    const char *hours_sql = "SELECT string_agg(to_char(hour AT TIME ZONE 'UTC', 'HH24') || ':' ||"
                            " a.name || '=' || annotations || '/' || tasks_completed, ' '"
                            " ORDER BY hour, a.name) FROM annotation_hours h"
                            " JOIN users a ON a.id = h.annotator_id WHERE project_id = $1";
    sql_int(g_db, "SELECT quorum_roll_annotation_hours('2030-01-01T01:05:00Z')", 0, NULL);
    PGresult *r = PQexecParams(g_db, hours_sql, 1, NULL, pj, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "00:roll-1=2/1 00:roll-2=1/1");
    PQclear(r);
    assert_int_equal(sql_int(g_db,
                             "SELECT extract(epoch FROM rolled_to)::bigint"
                             " FROM annotation_hours_rolled WHERE project_id = $1",
                             1, pj),
                     1893459600); /* 01:00 */
    /* An undo of ann1's annotation of t2 (as QR_SQL_UNDO does it): its count
     * leaves 00:00, and so does t2's completion, credited to ann2. */
    const char *pu[] = {num(b[0], tasks[1]), num(b[1], ann1)};
    sql_int(g_db,
            "WITH a AS (DELETE FROM annotations WHERE task_id = $1 AND annotator_id = $2"
            "  RETURNING task_id)"
            " UPDATE tasks SET done_count = done_count - 1, state = 'waiting'"
            " FROM a WHERE tasks.id = a.task_id",
            2, pu);
    r = PQexecParams(g_db, hours_sql, 1, NULL, pj, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "00:roll-1=1/1 00:roll-2=1/0");
    PQclear(r);
    /* The next hour; then a roll that has nothing left to do. */
    sql_int(g_db, "SELECT quorum_roll_annotation_hours('2030-01-01T02:05:00Z')", 0, NULL);
    sql_int(g_db, "SELECT quorum_roll_annotation_hours('2030-01-01T02:10:00Z')", 0, NULL);
    sql_int(g_db, "SELECT quorum_roll_annotation_hours('2030-01-01T01:10:00Z')", 0, NULL);
    r = PQexecParams(g_db, hours_sql, 1, NULL, pj, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "00:roll-1=1/1 00:roll-2=1/0 01:roll-2=1/1");
    PQclear(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_close_flushes),
        cmocka_unit_test(test_events_timer_flush),
        cmocka_unit_test(test_events_busy_wait),
        cmocka_unit_test(test_events_bounded_when_down),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_metrics_queue),
        cmocka_unit_test(test_event_hours_merge),
        cmocka_unit_test(test_annotation_hours),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
