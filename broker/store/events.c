/*
 * events.c - the lease log recorder (events.h): buffers lease events in
 * memory and writes them to lease_events (sql/0003_events.sql) as one
 * multi-row INSERT per batch, bound as ten arrays and expanded by unnest, so
 * a batch of any size is one statement with ten parameters. The same
 * statement merges the batch into the per-minute and per-hour rollups the
 * throughput report reads for long windows (sql/0008_event_minutes.sql,
 * sql/0013_event_hours.sql), and once an hour the recorder rolls the
 * annotations of the hours just closed (maybe_roll). Every event added is
 * also counted for GET /metrics (metrics.h).
 *
 * At most one INSERT is in flight: batches stay in order and the recorder
 * never takes more than one connection of the pool from the lease path.
 * Under load (qr_events_set_busy) the recorder waits longer between batches:
 * what a batch costs PostgreSQL is mostly its rollup merges, one per
 * annotator and minute and one per annotator and hour it touches, so a
 * batch holding five times the events costs little more than one. The
 * buffer is a ring that grows up to QR_EVENTS_MAX_BUFFERED events (buffered
 * plus in flight); past that the oldest buffered events are dropped and
 * counted. A batch that fails because PostgreSQL is unreachable goes back to
 * the front of the ring and is retried after flush_ms; one that PostgreSQL
 * refuses for its data (an SQLSTATE outside the connection, resource and
 * operator-intervention classes) is dropped and counted, so one bad row can
 * never wedge the log.
 */
#include "events.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* metrics.h counts lease events by the same kinds, in the same order. */
_Static_assert((int)QR_EV_GRANT == (int)QR_METRIC_GRANT &&
                   (int)QR_EV_HEARTBEAT == (int)QR_METRIC_HEARTBEAT &&
                   (int)QR_EV_SUBMIT == (int)QR_METRIC_SUBMITTED &&
                   (int)QR_EV_SKIP == (int)QR_METRIC_SKIP &&
                   (int)QR_EV_RELEASE == (int)QR_METRIC_RELEASE &&
                   (int)QR_EV_EXPIRE == (int)QR_METRIC_EXPIRE &&
                   (int)QR_EV_EXPIRE + 1 == (int)QR_METRIC_NLEASE,
               "lease event kinds and metric kinds differ");

/* Buffered plus in-flight events, at most (see events.h). */
#define QR_EVENTS_MAX_BUFFERED 100000
/* Largest batch accepted by qr_events_open (rows per INSERT). */
#define QR_EVENTS_MAX_BATCH 10000
/* The ring's first allocation (events). */
#define RING_MIN 256

/* The batch goes into lease_events and, in the same statement (so in the
 * same transaction), into its per-minute rollup (sql/0008_event_minutes.sql)
 * and its per-hour rollup (sql/0013_event_hours.sql): grouped by (project,
 * minute or hour, annotator) in key order, so that two brokers merging into
 * the same rows lock them in the same order. Time on task is the reported
 * active time, else submit - grant, in ms, clamped to [0, 2^31 - 1].
 * Events of a control (gold) task are logged but not rolled up: the
 * throughput report never counts gold work (sql/0028_gold_serving.sql); a
 * hashed lookup over the tasks_control index, empty for projects without
 * gold.
 *
 * The hour rows: counts add up; the histogram (label, bucket, n, sum) is
 * merged and kept sorted; the activity inside the hour (gaps of at most
 * 5 minutes are active, QR_ANALYTICS_IDLE_GAP_MS) adds the batch's own gaps
 * and the gap at the seam when the batch comes wholly after (or before) what
 * the row holds. When it interleaves (two brokers writing for one
 * annotator), the hour's activity is recomputed from its minute rows: those
 * this statement touched as it leaves them (RETURNING of `mins`), the others
 * as they are.
 *
 * The statement is the body of quorum_lease_events_add
 * (sql/0038_generic_plans.sql), which plans it once per session: as a
 * prepared statement it was planned again on every call (about 7 ms). */
#define SQL_EVENTS_INSERT                                                                          \
    "SELECT quorum_lease_events_add($1::bigint[], $2::bigint[], $3::text[], $4::bigint[],"         \
    " $5::bigint[], $6::bigint[], $7::bigint[], $8::int[], $9::text[], $10::text[])"

/* Rolls the closed hours of every project's annotations into
 * annotation_hours (sql/0013_event_hours.sql), stopping 5 minutes short of
 * now so that a submission still committing is not missed. */
#define SQL_ROLL_ANNOTATION_HOURS                                                                  \
    "SELECT quorum_roll_annotation_hours(clock_timestamp() - interval '5 minutes')"
/* The roll runs this long (ms) after each hour boundary, and again this
 * long after a failure. */
#define ROLL_DELAY_MS (6 * 60000)

/* One buffered event; label and reason are owned copies (or NULL). */
typedef struct rec_s {
    qr_event_kind_t kind;
    int64_t project_id, task_id, annotator_id, token;
    int64_t at_ms, granted_ms, active_ms;
    char *label;
    char *reason;
} rec_t;

struct qr_events_s {
    uv_loop_t *loop;
    qr_pg_t *pg;          /* borrowed; must outlive the recorder */
    uv_timer_t timer;     /* one-shot: next flush, or the retry after a failure */
    int flush_ms;         /* longest an event waits in the buffer */
    int busy_ms;          /* the wait instead, after a busy batch (qr_events_set_busy) */
    int busy_rows;        /* a batch of at least this many events is busy; 0: never */
    int busy;             /* the last batch sent was busy */
    int max_batch;        /* rows per INSERT */
    rec_t *ring;          /* buffered events, oldest at head */
    size_t cap;           /* ring slots */
    size_t head;          /* index of the oldest buffered event */
    size_t count;         /* buffered events */
    rec_t *batch;         /* the events of the INSERT in flight (max_batch slots) */
    size_t nbatch;        /* events in batch; 0 when nothing is in flight */
    int in_flight;        /* an INSERT is running */
    int backing_off;      /* the last INSERT failed: wait for the timer */
    int failing;          /* the last INSERT failed (to log changes only) */
    int closing;          /* qr_events_close was called */
    int finished;         /* the timer is closing; nothing more is accepted */
    int rolling;          /* the annotation-hours roll is running */
    int64_t next_roll_ms; /* wall clock (ms) after which the next batch starts a roll */
    uint64_t dropped;     /* events lost: buffer full, refused, or closing */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static const char *const kind_names[] = {
    [QR_EV_GRANT] = "grant", [QR_EV_HEARTBEAT] = "heartbeat", [QR_EV_SUBMIT] = "submit",
    [QR_EV_SKIP] = "skip",   [QR_EV_RELEASE] = "release",     [QR_EV_EXPIRE] = "expire",
};

static void flush(qr_events_t *ev);
static void on_timer(uv_timer_t *t);

static void rec_free(rec_t *r)
{
    free(r->label);
    free(r->reason);
    r->label = r->reason = NULL;
}

/* --- the ring ------------------------------------------------------------------ */

static rec_t *ring_at(qr_events_t *ev, size_t i)
{
    return &ev->ring[(ev->head + i) % ev->cap];
}

/* Makes room for `need` events in total, keeping their order. */
static void ring_reserve(qr_events_t *ev, size_t need)
{
    if (need <= ev->cap)
        return;
    size_t cap = ev->cap ? ev->cap : RING_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > QR_EVENTS_MAX_BUFFERED)
        cap = QR_EVENTS_MAX_BUFFERED;
    rec_t *ring = qr_xmalloc(cap * sizeof *ring);
    for (size_t i = 0; i < ev->count; i++)
        ring[i] = *ring_at(ev, i);
    free(ev->ring);
    ev->ring = ring;
    ev->cap = cap;
    ev->head = 0;
}

/* Drops the oldest buffered event (the buffer is full). */
static void ring_drop_oldest(qr_events_t *ev)
{
    rec_free(ring_at(ev, 0));
    ev->head = (ev->head + 1) % ev->cap;
    ev->count--;
    ev->dropped++;
}

/* Puts the failed batch back in front of the buffered events. Room exists:
 * buffered plus in flight never passes QR_EVENTS_MAX_BUFFERED. */
static void ring_requeue_batch(qr_events_t *ev)
{
    ring_reserve(ev, ev->count + ev->nbatch);
    ev->head = (ev->head + ev->cap - ev->nbatch % ev->cap) % ev->cap;
    for (size_t i = 0; i < ev->nbatch; i++)
        *ring_at(ev, i) = ev->batch[i];
    ev->count += ev->nbatch;
    ev->nbatch = 0;
}

static void batch_drop(qr_events_t *ev)
{
    for (size_t i = 0; i < ev->nbatch; i++)
        rec_free(&ev->batch[i]);
    ev->dropped += ev->nbatch;
    ev->nbatch = 0;
}

/* --- building the INSERT ------------------------------------------------------------ */

/* Appends s as an element of a PostgreSQL text array literal: NULL, or
 * double-quoted with '"' and '\' escaped. */
static void append_text_elem(qr_buf_t *b, const char *s)
{
    if (!s) {
        qr_buf_appends(b, "NULL");
        return;
    }
    qr_buf_appends(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            qr_buf_appends(b, "\\");
        qr_buf_append(b, p, 1);
    }
    qr_buf_appends(b, "\"");
}

enum {
    COL_PROJECT,
    COL_AT,
    COL_KIND,
    COL_TASK,
    COL_ANN,
    COL_TOKEN,
    COL_GRANTED,
    COL_ACTIVE,
    COL_LABEL,
    COL_REASON,
    NCOLS
};

/* Fills cols[] with the ten array literals of the batch. */
static void build_arrays(const qr_events_t *ev, qr_buf_t cols[NCOLS])
{
    for (int c = 0; c < NCOLS; c++) {
        qr_buf_init(&cols[c]);
        qr_buf_appends(&cols[c], "{");
    }
    for (size_t i = 0; i < ev->nbatch; i++) {
        const rec_t *r = &ev->batch[i];
        if (i)
            for (int c = 0; c < NCOLS; c++)
                qr_buf_appends(&cols[c], ",");
        qr_buf_append_i64(&cols[COL_PROJECT], r->project_id);
        qr_buf_append_i64(&cols[COL_AT], r->at_ms);
        qr_buf_appends(&cols[COL_KIND], kind_names[r->kind]);
        qr_buf_append_i64(&cols[COL_TASK], r->task_id);
        qr_buf_append_i64(&cols[COL_ANN], r->annotator_id);
        qr_buf_append_i64(&cols[COL_TOKEN], r->token);
        if (r->granted_ms > 0)
            qr_buf_append_i64(&cols[COL_GRANTED], r->granted_ms);
        else
            qr_buf_appends(&cols[COL_GRANTED], "NULL");
        if (r->active_ms >= 0)
            qr_buf_append_i64(&cols[COL_ACTIVE], r->active_ms);
        else
            qr_buf_appends(&cols[COL_ACTIVE], "NULL");
        append_text_elem(&cols[COL_LABEL], r->label);
        append_text_elem(&cols[COL_REASON], r->reason);
    }
    for (int c = 0; c < NCOLS; c++)
        qr_buf_appends(&cols[c], "}");
}

/* --- flushing ---------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    qr_events_t *ev = h->data;
    for (size_t i = 0; i < ev->count; i++)
        rec_free(ring_at(ev, i));
    void (*cb)(void *) = ev->close_cb;
    void *arg = ev->close_arg;
    free(ev->ring);
    free(ev->batch);
    free(ev);
    if (cb)
        cb(arg);
}

/* Closing and nothing left to write: close the timer, then free. */
static void finish(qr_events_t *ev)
{
    if (ev->finished || ev->rolling)
        return; /* on_rolled finishes */
    ev->finished = 1;
    if (ev->dropped)
        qr_warn("lease log: closed; %" PRIu64 " event(s) were dropped in all", ev->dropped);
    uv_close((uv_handle_t *)&ev->timer, on_timer_closed);
}

/* Arms the one-shot timer unless it is armed already: flush_ms, or busy_ms
 * after a busy batch (a retry after a failure waits flush_ms). */
static void arm_timer(qr_events_t *ev)
{
    if (ev->closing || uv_is_active((uv_handle_t *)&ev->timer))
        return;
    int ms = ev->busy && !ev->backing_off ? ev->busy_ms : ev->flush_ms;
    int rc = uv_timer_start(&ev->timer, on_timer, (uint64_t)ms, 0);
    if (rc < 0) /* only for a closing handle, which closing above rules out */
        qr_error("lease log: uv_timer_start: %s", uv_strerror(rc));
}

/* SQLSTATE classes worth retrying unchanged: no server answer at all,
 * connection exceptions (08), insufficient resources (53), operator
 * intervention (57: shutdown, cancel), system errors (58), and transaction
 * rollbacks (40: serialization, deadlock). */
static int retryable(const char *sqlstate)
{
    if (!sqlstate || !sqlstate[0])
        return 1;
    return !strncmp(sqlstate, "08", 2) || !strncmp(sqlstate, "53", 2) ||
           !strncmp(sqlstate, "57", 2) || !strncmp(sqlstate, "58", 2) ||
           !strncmp(sqlstate, "40", 2);
}

static void on_rolled(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    qr_events_t *ev = arg;
    ev->rolling = 0;
    if (!res) {
        qr_warn("lease log: rolling annotations into hours failed, will retry: %s%s%s",
                err ? err : "?", sqlstate && sqlstate[0] ? " SQLSTATE " : "",
                sqlstate ? sqlstate : "");
        ev->next_roll_ms = qr_now_ms() + ROLL_DELAY_MS;
    }
    if (ev->closing && !ev->in_flight && ev->count == 0)
        finish(ev);
}

/*
 * Once an hour, a few minutes past the hour, the recorder asks PostgreSQL to
 * roll the hours just closed of every project's annotations into
 * annotation_hours (the throughput report reads hours that are not rolled
 * yet from annotations, so a late or missed roll costs time, not
 * exactness). It rides on the lease log because that is the one writer
 * every broker has that runs off the request path: a broker with no lease
 * traffic does not roll, and several brokers rolling at once take turns in
 * PostgreSQL (an advisory lock) and find nothing left to do. The first
 * batch after start rolls whatever was missed.
 */
static void maybe_roll(qr_events_t *ev)
{
    if (ev->closing || ev->rolling)
        return;
    int64_t now = qr_now_ms();
    if (now < ev->next_roll_ms)
        return;
    ev->next_roll_ms = (now / 3600000 + 1) * 3600000 + ROLL_DELAY_MS;
    if (qr_pg_query(ev->pg, SQL_ROLL_ANNOTATION_HOURS, 0, NULL, on_rolled, ev) == 0)
        ev->rolling = 1;
}

/* What to do once the batch in flight has answered (or failed to start). */
static void after_batch(qr_events_t *ev)
{
    if (ev->closing) {
        if (ev->count > 0)
            flush(ev);
        else if (!ev->in_flight)
            finish(ev);
        return;
    }
    if (ev->count >= (size_t)ev->max_batch && !ev->backing_off)
        flush(ev);
    else if (ev->count > 0)
        arm_timer(ev);
}

static void on_inserted(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    qr_events_t *ev = arg;
    ev->in_flight = 0;
    if (res) {
        for (size_t i = 0; i < ev->nbatch; i++)
            rec_free(&ev->batch[i]);
        ev->nbatch = 0;
        if (ev->failing)
            qr_info("lease log: writing to PostgreSQL again");
        ev->failing = 0;
        maybe_roll(ev);
    } else if (!ev->closing && retryable(sqlstate)) {
        if (!ev->failing)
            qr_warn("lease log: INSERT failed, will retry every %d ms: %s", ev->flush_ms,
                    err ? err : "?");
        ev->failing = 1;
        ev->backing_off = 1;
        ring_requeue_batch(ev);
    } else {
        if (!ev->closing || !ev->failing)
            qr_warn("lease log: %zu event(s) dropped: %s%s%s", ev->nbatch, err ? err : "?",
                    sqlstate && sqlstate[0] ? " SQLSTATE " : "", sqlstate ? sqlstate : "");
        ev->failing = 1;
        batch_drop(ev);
    }
    after_batch(ev);
}

/*
 * Sends the oldest buffered events (up to max_batch) as one INSERT, unless
 * one is in flight already. When the pool refuses the query (it is closing)
 * the batch is dropped and counted; while closing, that repeats until the
 * buffer is empty, and the recorder then finishes.
 */
static void flush(qr_events_t *ev)
{
    while (!ev->in_flight && ev->count > 0) {
        size_t n = ev->count < (size_t)ev->max_batch ? ev->count : (size_t)ev->max_batch;
        for (size_t i = 0; i < n; i++)
            ev->batch[i] = *ring_at(ev, i);
        ev->head = (ev->head + n) % ev->cap;
        ev->count -= n;
        ev->nbatch = n;
        ev->busy = ev->busy_rows > 0 && n >= (size_t)ev->busy_rows;

        qr_buf_t cols[NCOLS];
        build_arrays(ev, cols);
        const char *params[NCOLS];
        for (int c = 0; c < NCOLS; c++)
            params[c] = cols[c].data;
        int rc = qr_pg_query(ev->pg, SQL_EVENTS_INSERT, NCOLS, params, on_inserted, ev);
        for (int c = 0; c < NCOLS; c++)
            qr_buf_free(&cols[c]);
        if (rc == 0) {
            ev->in_flight = 1;
            return;
        }
        if (!ev->failing)
            qr_warn("lease log: %zu event(s) dropped: the PostgreSQL pool refused the INSERT (%d)",
                    n, rc);
        ev->failing = 1;
        batch_drop(ev);
        if (!ev->closing)
            break;
    }
    if (ev->closing) {
        if (!ev->in_flight && ev->count == 0)
            finish(ev);
    } else if (!ev->in_flight && ev->count > 0) {
        arm_timer(ev);
    }
}

static void on_timer(uv_timer_t *t)
{
    qr_events_t *ev = t->data;
    ev->backing_off = 0;
    flush(ev);
}

/* --- public ------------------------------------------------------------------------- */

int qr_events_open(uv_loop_t *loop, qr_pg_t *pg, int flush_ms, int max_batch, qr_events_t **out)
{
    *out = NULL;
    if (!loop || !pg || flush_ms < 1 || flush_ms > 3600000 || max_batch < 1 ||
        max_batch > QR_EVENTS_MAX_BATCH)
        return QR_EINVAL;
    qr_events_t *ev = qr_xcalloc(1, sizeof *ev);
    int rc = uv_timer_init(loop, &ev->timer);
    if (rc < 0) {
        qr_error("lease log: uv_timer_init: %s", uv_strerror(rc));
        free(ev);
        return rc;
    }
    ev->timer.data = ev;
    ev->loop = loop;
    ev->pg = pg;
    ev->flush_ms = flush_ms;
    ev->max_batch = max_batch;
    ev->batch = qr_xmalloc((size_t)max_batch * sizeof *ev->batch);
    *out = ev;
    return 0;
}

void qr_events_add(qr_events_t *ev, const qr_event_t *e)
{
    /* Prometheus counts what happened, whether or not the log keeps it. */
    qr_metrics_lease_event((qr_metric_lease_t)e->kind, e->project_id);
    if (ev->finished || (unsigned)e->kind > QR_EV_EXPIRE) {
        ev->dropped++;
        return;
    }
    if (ev->count + ev->nbatch >= QR_EVENTS_MAX_BUFFERED) {
        if (ev->count == 0) {
            ev->dropped++;
            return;
        }
        ring_drop_oldest(ev);
    }
    ring_reserve(ev, ev->count + 1);
    rec_t *r = ring_at(ev, ev->count);
    r->kind = e->kind;
    r->project_id = e->project_id;
    r->task_id = e->task_id;
    r->annotator_id = e->annotator_id;
    r->token = e->token;
    r->at_ms = e->at_ms;
    r->granted_ms = e->granted_ms;
    r->active_ms = e->active_ms;
    r->label = e->label ? qr_xstrdup(e->label) : NULL;
    r->reason = e->reason ? qr_xstrdup(e->reason) : NULL;
    ev->count++;
    if (ev->in_flight)
        return; /* on_inserted takes it from here */
    if (ev->count >= (size_t)ev->max_batch && !ev->backing_off)
        flush(ev);
    else
        arm_timer(ev);
}

int qr_events_set_busy(qr_events_t *ev, int busy_rows, int busy_ms)
{
    if (busy_rows < 0 || busy_ms < ev->flush_ms || busy_ms > 3600000)
        return QR_EINVAL;
    ev->busy_rows = busy_rows;
    ev->busy_ms = busy_ms;
    return 0;
}

uint64_t qr_events_dropped(const qr_events_t *ev)
{
    return ev->dropped;
}

void qr_events_close(qr_events_t *ev, void (*cb)(void *arg), void *arg)
{
    ev->close_cb = cb;
    ev->close_arg = arg;
    ev->closing = 1;
    /* uv_timer_stop cannot fail on an initialised timer; it returns 0. */
    (void)uv_timer_stop(&ev->timer);
    if (ev->in_flight)
        return; /* after_batch drains the rest */
    flush(ev);
}
