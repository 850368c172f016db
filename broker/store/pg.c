/*
 * pg.c - asynchronous PostgreSQL pool on libuv (see pg.h).
 *
 * Each connection is a small state machine driven by a uv_poll_t on
 * PQsocket and one uv_timer_t (connect timeout, then reconnect backoff):
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> IDLE <--> BUSY
 *     ^                  |  (fail / timeout)                    |
 *     +------------------+-----------(connection lost)----------+
 *
 * While connecting, libpq may replace its socket between PQconnectPoll
 * calls (another address, SSL/GSS fallback), possibly under the same fd
 * number, so the poll handle is closed and a fresh one made after every
 * step; once connected the socket is stable and one handle serves. Poll
 * handles are allocated apart from the connection and freed in their close
 * callback, because a closing handle cannot be re-initialised.
 *
 * Callbacks. A query's callback runs once. Results are delivered straight
 * from the poll callback; every failure goes through a zero timer (the
 * "done" list), so a callback never runs inside qr_pg_query. A callback may
 * close the pool: every path that runs one checks pg->closing afterwards.
 *
 * When no connection is up or being attempted (all waiting out a backoff),
 * queued and new queries fail at once instead of piling up.
 *
 * Prepared statements. The broker runs a small, fixed set of SQL texts, so
 * parsing and planning them on every call was most of PostgreSQL's work for
 * the cheap ones. The pool numbers each distinct text it is given (up to
 * STMT_MAX; later ones run unprepared) and each connection prepares a text
 * the first time it runs it (PQsendPrepare, its own round trip: without
 * pipeline mode libpq allows one command in flight) and from then on sends
 * only PQsendQueryPrepared. A reconnect is a new session: its connection
 * forgets what it prepared. A statement that fails because the server lost
 * the prepared statement (26000) or because its cached plan can no longer
 * produce the same columns after a schema change (0A000) changed nothing,
 * so it is sent once more, prepared afresh or (after 0A000) unprepared on
 * that connection from then on.
 */
#include "pg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define BACKOFF_MIN_MS 100       /* first reconnect delay */
#define BACKOFF_MAX_MS 5000      /* reconnect delay cap */
#define COPY_CHUNK     65536     /* bytes per PQputCopyData */
#define STREAM_HIGH    (1 << 20) /* a streamed COPY's unsent bytes past which put says "full" */
#define STMT_MAX       256       /* distinct SQL texts prepared, at most */
#define STMT_SLOTS     512       /* hash slots of the text registry (power of 2) */

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY, C_CLOSED };

/* What a BUSY connection is doing with its query. */
enum { P_PREPARE, P_RESULTS, P_COPY_SEND };

/* The steps of a COPY in a transaction (qr_pg_copy_in_tx), in order. */
enum { TX_NONE, TX_BEGIN, TX_PRE, TX_COPY, TX_POST, TX_COMMIT, TX_ROLLBACK };

/* What a connection knows of a registered statement. */
enum { S_NONE, S_READY, S_OFF };

typedef struct query_s query_t;
struct query_s {
    query_t *next;
    qr_pg_cb cb;
    void *arg;
    char *sql;
    int nparams;
    char **params;
    int stmt;    /* registered statement number, or -1: run unprepared */
    int retried; /* sent again after losing its prepared statement */
    /* COPY FROM STDIN only. */
    int is_copy;
    char *data;
    size_t len, off; /* bytes to send, bytes queued with libpq */
    int end_sent;    /* PQputCopyEnd accepted */
    /* qr_pg_copy_open only: data arrives by qr_pg_copy_put. */
    int stream;
    size_t cap;                   /* bytes data has room for */
    struct conn_s *conn;          /* the connection running it, once sent */
    int stream_ready;             /* COPY_IN reached: on_ready was called */
    int stream_full;              /* put said full: on_drain is owed */
    int stream_blocked;           /* libpq cannot take more until the socket is writable */
    int stream_end;               /* finish or abort was called: end after the data */
    char *stream_fail;            /* abort's reason: the COPY fails with it */
    qr_pg_copy_event_cb on_ready; /* the COPY is in progress: put may be called */
    qr_pg_copy_event_cb on_drain; /* after a put said full: room again */
    /* qr_pg_copy_in_tx only: the step running (TX_*), and the statement run
     * before the COPY (its parameters are params) and its result. */
    int tx_step;
    char *pre_sql;
    PGresult *pre_res;
    /* qr_pg_copy_in_tx_post only: the statement run after the COPY. */
    char *post_sql;
    int post_nparams;
    char **post_params;
    /* Outcome. */
    PGresult *res;
    char *err;
    char sqlstate[6];
    /* Round-trip timing (metrics.h): the pool's stats, when sent (ns). */
    qr_latency_t *stats;
    uint64_t sent_ns;
};

typedef struct {
    query_t *head, *tail;
} query_list_t;

typedef struct conn_s {
    qr_pg_t *pg;
    int idx;
    int state;       /* C_* */
    int phase;       /* P_* while C_BUSY */
    PGconn *pq;      /* NULL unless CONNECTING, IDLE or BUSY */
    uv_poll_t *poll; /* on PQsocket(pq), or NULL */
    int poll_fd;
    uv_timer_t timer; /* connect timeout, then reconnect backoff */
    int backoff_ms;
    query_t *q;                         /* running query (BUSY) */
    unsigned char stmt_state[STMT_MAX]; /* S_* per registered statement */
} conn_t;

struct qr_pg_s {
    uv_loop_t *loop;
    char *conninfo;
    int size;
    int connect_timeout_ms;
    conn_t *conns;
    query_list_t queue; /* waiting for an idle connection */
    query_list_t done;  /* failed; callbacks run from `defer` */
    uv_timer_t defer;
    char last_err[256];       /* why the last connection attempt failed */
    qr_latency_t stats;       /* round trips and failed statements (qr_pg_stats) */
    char *stmt_sql[STMT_MAX]; /* registered texts, by statement number */
    int nstmts;
    int stmt_slot[STMT_SLOTS]; /* hash of the text -> statement number + 1 */
    int closing;
    int open_handles; /* uv handles not yet closed; freed at 0 */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void conn_start(conn_t *c);
static void conn_lost(conn_t *c, const char *why);
static void conn_send(conn_t *c, query_t *q);
static void dispatch(qr_pg_t *pg);
static void on_poll(uv_poll_t *h, int status, int events);

/* ---- queries ---- */

static void qlist_push(query_list_t *l, query_t *q)
{
    q->next = NULL;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

static query_t *qlist_pop(query_list_t *l)
{
    query_t *q = l->head;
    if (q) {
        l->head = q->next;
        if (!l->head)
            l->tail = NULL;
        q->next = NULL;
    }
    return q;
}

static void query_free(query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q->data);
    free(q->err);
    free(q->pre_sql);
    free(q->post_sql);
    for (int i = 0; i < q->post_nparams; i++)
        free(q->post_params[i]);
    free(q->post_params);
    free(q->stream_fail);
    PQclear(q->res);
    PQclear(q->pre_res);
    free(q);
}

/* Runs the callback with the query's outcome, then frees the query (and so
 * clears the result: the callback must not keep it). */
static void query_finish(query_t *q)
{
    if (q->stats) {
        if (q->err)
            q->stats->errors++;
        else if (q->sent_ns)
            qr_latency_observe(q->stats, uv_hrtime() - q->sent_ns);
    }
    if (q->err)
        q->cb(NULL, q->err, q->sqlstate, q->arg);
    else
        q->cb(q->res, NULL, "", q->arg);
    query_free(q);
}

/* Copies a libpq message on one line: libpq ends messages with a newline
 * and indents hints with "\n\t"; our logs and callers want one line. */
static void one_line(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    int space = 0;
    for (; *src && n + 1 < size; src++) {
        if (*src == '\n' || *src == '\t' || *src == '\r' || *src == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size)
            dst[n++] = ' ';
        space = 0;
        dst[n++] = *src;
    }
    dst[n] = '\0';
}

static void set_error(query_t *q, const char *msg, const char *sqlstate)
{
    if (q->err)
        return; /* keep the first error: it is the cause */
    PQclear(q->res);
    q->res = NULL;
    char line[1024];
    one_line(line, sizeof line, msg);
    q->err = qr_xstrdup(line);
    snprintf(q->sqlstate, sizeof q->sqlstate, "%s", sqlstate ? sqlstate : "");
}

static void on_defer(uv_timer_t *t)
{
    qr_pg_t *pg = t->data;
    query_t *q;
    /* One at a time: a callback may close the pool, which then fails the
     * rest of the list itself. */
    while (!pg->closing && (q = qlist_pop(&pg->done)))
        query_finish(q);
}

/* Fails q from a later loop turn. */
static void fail_later(qr_pg_t *pg, query_t *q, const char *msg, const char *sqlstate)
{
    set_error(q, msg, sqlstate);
    qlist_push(&pg->done, q);
    int rc = uv_timer_start(&pg->defer, on_defer, 0, 0);
    if (rc < 0) /* cannot fail on an open timer */
        qr_error("pg: uv_timer_start: %s", uv_strerror(rc));
}

/* True when no connection is up or trying to come up. */
static int all_down(const qr_pg_t *pg)
{
    for (int i = 0; i < pg->size; i++)
        if (pg->conns[i].state != C_DOWN && pg->conns[i].state != C_CLOSED)
            return 0;
    return 1;
}

static void fail_queue_if_all_down(qr_pg_t *pg)
{
    if (!all_down(pg))
        return;
    char msg[320];
    snprintf(msg, sizeof msg, "PostgreSQL unavailable: %s", pg->last_err);
    query_t *q;
    while ((q = qlist_pop(&pg->queue)))
        fail_later(pg, q, msg, NULL);
}

/* ---- poll handles ---- */

/* Every uv handle of the pool ends here; the last one frees the pool. */
static void handle_closed(qr_pg_t *pg)
{
    if (--pg->open_handles > 0 || !pg->closing)
        return;
    void (*cb)(void *) = pg->close_cb;
    void *arg = pg->close_arg;
    for (int i = 0; i < pg->nstmts; i++)
        free(pg->stmt_sql[i]);
    free(pg->conns);
    free(pg->conninfo);
    free(pg);
    if (cb)
        cb(arg);
}

static void on_poll_closed(uv_handle_t *h)
{
    qr_pg_t *pg = ((conn_t *)h->data)->pg;
    free(h);
    handle_closed(pg);
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(((conn_t *)h->data)->pg);
}

static void on_defer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* Stops watching the socket. uv_close takes the fd out of epoll at once, so
 * the caller may PQfinish right after. */
static void conn_unwatch(conn_t *c)
{
    if (c->poll) {
        uv_close((uv_handle_t *)c->poll, on_poll_closed);
        c->poll = NULL;
    }
}

/* Watches PQsocket for `events`, making a new poll handle when there is none
 * or the socket changed. Returns 0 or a negative uv error. */
static int conn_watch(conn_t *c, int events)
{
    int fd = PQsocket(c->pq);
    if (fd < 0)
        return UV_EBADF;
    if (c->poll && c->poll_fd != fd)
        conn_unwatch(c);
    if (!c->poll) {
        uv_poll_t *h = qr_xmalloc(sizeof *h);
        int rc = uv_poll_init(c->pg->loop, h, fd);
        if (rc < 0) {
            free(h);
            return rc;
        }
        h->data = c;
        c->poll = h;
        c->poll_fd = fd;
        c->pg->open_handles++;
    }
    return uv_poll_start(c->poll, events, on_poll);
}

/* ---- connection life ---- */

static void on_backoff(uv_timer_t *t)
{
    conn_start(t->data);
}

/* Drops the libpq connection and retries after the backoff delay. */
static void conn_retry_later(conn_t *c)
{
    conn_unwatch(c);
    if (c->pq) {
        PQfinish(c->pq);
        c->pq = NULL;
    }
    c->state = C_DOWN;
    int rc = uv_timer_start(&c->timer, on_backoff, (uint64_t)c->backoff_ms, 0);
    if (rc < 0)
        qr_error("pg: uv_timer_start: %s", uv_strerror(rc));
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    fail_queue_if_all_down(c->pg);
}

static void conn_connect_failed(conn_t *c, const char *why)
{
    one_line(c->pg->last_err, sizeof c->pg->last_err, why);
    qr_warn("pg: connection %d: connect failed: %s (retry in %d ms)", c->idx, c->pg->last_err,
            c->backoff_ms);
    conn_retry_later(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    char msg[64];
    snprintf(msg, sizeof msg, "timeout expired after %d ms", c->pg->connect_timeout_ms);
    conn_connect_failed(c, msg);
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    qr_debug("pg: %s", message);
}

/* The connection is up: from now on its socket is fixed. */
static void conn_ready(conn_t *c)
{
    int rc = uv_timer_stop(&c->timer);
    if (rc < 0)
        qr_error("pg: uv_timer_stop: %s", uv_strerror(rc));
    if (PQsetnonblocking(c->pq, 1) != 0) {
        conn_connect_failed(c, PQerrorMessage(c->pq));
        return;
    }
    PQsetNoticeProcessor(c->pq, on_notice, NULL);
    /* A fresh handle for the final socket (see the top of the file). */
    conn_unwatch(c);
    rc = conn_watch(c, UV_READABLE);
    if (rc < 0) {
        conn_connect_failed(c, uv_strerror(rc));
        return;
    }
    c->state = C_IDLE;
    c->backoff_ms = BACKOFF_MIN_MS;
    memset(c->stmt_state, S_NONE, sizeof c->stmt_state); /* a new session */
    qr_debug("pg: connection %d up (backend pid %d)", c->idx, PQbackendPID(c->pq));
    dispatch(c->pg);
}

/* Acts on what PQconnectPoll (or PQconnectStart) asked for: wait for the
 * socket to become readable or writable, or finish. */
static void conn_connect_step(conn_t *c, PostgresPollingStatusType st)
{
    int events;
    switch (st) {
    case PGRES_POLLING_OK:
        conn_ready(c);
        return;
    case PGRES_POLLING_READING:
        events = UV_READABLE;
        break;
    case PGRES_POLLING_WRITING:
        events = UV_WRITABLE;
        break;
    default:
        conn_connect_failed(c, PQerrorMessage(c->pq));
        return;
    }
    conn_unwatch(c);
    int rc = conn_watch(c, events);
    if (rc < 0)
        conn_connect_failed(c, uv_strerror(rc));
}

static void conn_start(conn_t *c)
{
    qr_pg_t *pg = c->pg;
    if (pg->closing)
        return;
    c->pq = PQconnectStart(pg->conninfo);
    if (!c->pq) {
        conn_connect_failed(c, "out of memory");
        return;
    }
    if (PQstatus(c->pq) == CONNECTION_BAD) {
        conn_connect_failed(c, PQerrorMessage(c->pq));
        return;
    }
    c->state = C_CONNECTING;
    int rc = uv_timer_start(&c->timer, on_connect_timeout, (uint64_t)pg->connect_timeout_ms, 0);
    if (rc < 0) {
        conn_connect_failed(c, uv_strerror(rc));
        return;
    }
    /* libpq: after PQconnectStart, behave as if PQconnectPoll had returned
     * PGRES_POLLING_WRITING. */
    conn_connect_step(c, PGRES_POLLING_WRITING);
}

/* The connection broke: fail its query, reconnect later. */
static void conn_lost(conn_t *c, const char *why)
{
    char msg[320];
    one_line(c->pg->last_err, sizeof c->pg->last_err, why);
    snprintf(msg, sizeof msg, "PostgreSQL connection lost: %s", c->pg->last_err);
    qr_warn("pg: connection %d: %s (retry in %d ms)", c->idx, msg, c->backoff_ms);
    query_t *q = c->q;
    c->q = NULL;
    if (q)
        fail_later(c->pg, q, msg, NULL);
    conn_retry_later(c);
}

/* ---- running a query ---- */

/* Flushes libpq's output and sets the poll events accordingly: read always
 * (the server may be blocked writing to us), write while data remains.
 * Returns 0, or -1 after handling a lost connection. */
static int conn_flush(conn_t *c)
{
    int f = PQflush(c->pq);
    if (f < 0) {
        conn_lost(c, PQerrorMessage(c->pq));
        return -1;
    }
    int rc = conn_watch(c, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    if (rc < 0) {
        conn_lost(c, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Queues as much COPY data as libpq takes without growing without bound,
 * then the end marker; waits for writable whenever libpq is full. */
static void copy_send(conn_t *c)
{
    query_t *q = c->q;
    while (q->off < q->len) {
        size_t n = q->len - q->off < COPY_CHUNK ? q->len - q->off : COPY_CHUNK;
        int r = PQputCopyData(c->pq, q->data + q->off, (int)n);
        if (r < 0) {
            conn_lost(c, PQerrorMessage(c->pq));
            return;
        }
        if (r == 0) { /* buffers full: wait for writable, flush, retry */
            q->stream_blocked = 1;
            if (conn_watch(c, UV_READABLE | UV_WRITABLE) < 0)
                conn_lost(c, "cannot poll the socket");
            return;
        }
        q->off += n;
        int f = PQflush(c->pq);
        if (f < 0) {
            conn_lost(c, PQerrorMessage(c->pq));
            return;
        }
        if (f == 1) { /* the socket is full: continue when writable */
            q->stream_blocked = 1;
            if (conn_watch(c, UV_READABLE | UV_WRITABLE) < 0)
                conn_lost(c, "cannot poll the socket");
            return;
        }
    }
    if (q->stream && !q->stream_end) {
        /* All sent; more comes by qr_pg_copy_put. */
        q->off = q->len = 0;
        if (conn_watch(c, UV_READABLE) < 0) {
            conn_lost(c, "cannot poll the socket");
            return;
        }
        if (q->stream_full) {
            q->stream_full = 0;
            q->on_drain(q->arg); /* may put, finish or abort: nothing follows here */
        }
        return;
    }
    int r = PQputCopyEnd(c->pq, q->stream_fail);
    if (r < 0) {
        conn_lost(c, PQerrorMessage(c->pq));
        return;
    }
    if (r == 0) {
        if (conn_watch(c, UV_READABLE | UV_WRITABLE) < 0)
            conn_lost(c, "cannot poll the socket");
        return;
    }
    q->end_sent = 1;
    c->phase = P_RESULTS;
    conn_flush(c);
}

/* A prepared query that failed for want of its prepared statement (26000:
 * the session lost it) or because the schema changed under its cached plan
 * (0A000: "cached plan must not change result type") changed nothing, since
 * every query is one statement outside any transaction: true (after
 * noting what the connection should do next time) when it is to be sent
 * once more. */
static int should_resend(conn_t *c, query_t *q)
{
    if (q->stmt < 0 || q->retried || !q->err || c->stmt_state[q->stmt] != S_READY ||
        PQstatus(c->pq) != CONNECTION_OK || PQtransactionStatus(c->pq) != PQTRANS_IDLE)
        return 0;
    if (strcmp(q->sqlstate, "26000") == 0)
        c->stmt_state[q->stmt] = S_NONE; /* prepare it again */
    else if (strcmp(q->sqlstate, "0A000") == 0)
        c->stmt_state[q->stmt] = S_OFF; /* unprepared on this connection from now */
    else
        return 0;
    qr_debug("pg: connection %d: statement %d resent: %s", c->idx, q->stmt, q->err);
    free(q->err);
    q->err = NULL;
    q->sqlstate[0] = '\0';
    PQclear(q->res);
    q->res = NULL;
    q->retried = 1;
    return 1;
}

/* Sends step `step` of q's transaction on c (busy with q). Returns 0, or
 * -1 when it could not be sent (q then fails, or the connection is lost). */
static int tx_send(conn_t *c, query_t *q, int step)
{
    q->tx_step = step;
    c->phase = P_RESULTS;
    int sent;
    switch (step) {
    case TX_BEGIN:
        sent = PQsendQuery(c->pq, "BEGIN");
        break;
    case TX_PRE:
        sent = PQsendQueryParams(c->pq, q->pre_sql, q->nparams, NULL,
                                 (const char *const *)q->params, NULL, NULL, 0);
        break;
    case TX_COPY:
        sent = PQsendQuery(c->pq, q->sql);
        break;
    case TX_POST:
        sent = PQsendQueryParams(c->pq, q->post_sql, q->post_nparams, NULL,
                                 (const char *const *)q->post_params, NULL, NULL, 0);
        break;
    case TX_COMMIT:
        sent = PQsendQuery(c->pq, "COMMIT");
        break;
    default:
        sent = PQsendQuery(c->pq, "ROLLBACK");
        break;
    }
    if (!sent) {
        const char *msg = PQerrorMessage(c->pq);
        if (PQstatus(c->pq) == CONNECTION_BAD) {
            conn_lost(c, msg);
            return -1;
        }
        c->q = NULL;
        c->state = C_IDLE;
        /* A step unsent in an open transaction: a new session rolls it back. */
        fail_later(c->pg, q, msg, NULL);
        if (PQtransactionStatus(c->pq) != PQTRANS_IDLE)
            conn_lost(c, "a transaction step could not be sent");
        return -1;
    }
    conn_flush(c);
    return 0;
}

/* The step of q's transaction that just ended (all its results taken):
 * sends the next one and returns 1 (q is then in flight, or was failed by
 * tx_send: either way no longer the caller's), or returns 0 when q is over. The
 * statement's result before the COPY is what the callback gets; on the
 * first error the transaction is rolled back and the callback gets that. */
static int tx_next(conn_t *c, query_t *q)
{
    int step = q->tx_step;
    if (step == TX_ROLLBACK)
        return 0;
    if (q->err) {
        if (step == TX_BEGIN || PQtransactionStatus(c->pq) == PQTRANS_IDLE)
            return 0;
        tx_send(c, q, TX_ROLLBACK); /* sent, or q failed with the connection */
        return 1;
    }
    if (step == TX_PRE || (step == TX_POST && q->stream)) {
        PQclear(q->pre_res); /* a stream's statement before the COPY: the post one's is kept */
        q->pre_res = q->res; /* what the callback gets */
    } else {
        PQclear(q->res);
    }
    q->res = NULL;
    if (step == TX_COMMIT) {
        q->res = q->pre_res;
        q->pre_res = NULL;
        return 0;
    }
    if (step == TX_BEGIN && !q->pre_sql)
        step = TX_PRE; /* no statement before the COPY (a stream) */
    if (step == TX_COPY && !q->post_sql)
        step = TX_POST; /* no statement after the COPY */
    tx_send(c, q, step + 1);
    return 1;
}

/* Takes every result libpq has complete. When the query is over (NULL
 * result), the connection goes idle, the callback runs and the next query
 * is dispatched. When its prepare step is over, the query itself is sent, or
 * fails with the prepare's error (the error it would have met unprepared). */
static void conn_drain(conn_t *c)
{
    qr_pg_t *pg = c->pg;
    while (c->state == C_BUSY && c->phase != P_COPY_SEND && !PQisBusy(c->pq)) {
        query_t *q = c->q;
        PGresult *res = PQgetResult(c->pq);
        if (!res && PQstatus(c->pq) != CONNECTION_BAD &&
            ((c->phase == P_PREPARE && !q->err) || should_resend(c, q))) {
            if (c->phase == P_PREPARE)
                c->stmt_state[q->stmt] = S_READY;
            conn_send(c, q); /* results come through on_poll */
            if (c->state == C_IDLE && !pg->closing)
                dispatch(pg); /* the send failed and q with it */
            return;
        }
        if (res && c->phase == P_PREPARE) {
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                set_error(q, msg ? msg : PQresultErrorMessage(res), state);
            }
            PQclear(res);
            continue;
        }
        if (!res && q->tx_step && PQstatus(c->pq) != CONNECTION_BAD && tx_next(c, q)) {
            if (c->state == C_IDLE && !pg->closing)
                dispatch(pg); /* the send failed and q with it */
            return;           /* the next step's results come through on_poll */
        }
        if (!res) {
            c->q = NULL;
            c->state = C_IDLE;
            if (PQstatus(c->pq) == CONNECTION_BAD) {
                conn_lost(c, PQerrorMessage(c->pq));
            } else {
                int rc = conn_watch(c, UV_READABLE);
                if (rc < 0)
                    conn_lost(c, uv_strerror(rc));
            }
            if (!q->err && !q->res)
                set_error(q, "PostgreSQL sent no result", NULL);
            query_finish(q);
            if (!pg->closing)
                dispatch(pg);
            return;
        }
        switch (PQresultStatus(res)) {
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY:
            if (!q->res && !q->err)
                q->res = res;
            else
                PQclear(res);
            break;
        case PGRES_COPY_IN:
            PQclear(res);
            if (q->is_copy && !q->end_sent) {
                c->phase = P_COPY_SEND;
                if (q->stream && !q->stream_ready) {
                    q->stream_ready = 1;
                    if (!q->stream_end) {
                        if (conn_watch(c, UV_READABLE) < 0) {
                            conn_lost(c, "cannot poll the socket");
                            return;
                        }
                        q->on_ready(q->arg); /* may put, finish or abort */
                        return;
                    }
                }
                copy_send(c);
                continue; /* the results may be buffered already (on_poll) */
            }
            /* A COPY FROM STDIN sent through qr_pg_query: abort it. */
            set_error(q, "COPY FROM STDIN needs qr_pg_copy_in", NULL);
            if (PQputCopyEnd(c->pq, "not supported by qr_pg_query") < 0) {
                conn_lost(c, PQerrorMessage(c->pq));
                return;
            }
            if (conn_flush(c) < 0)
                return;
            break;
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            /* Not supported; the simplest sound way out is a new session. */
            PQclear(res);
            set_error(q, "COPY TO STDOUT is not supported", NULL);
            c->q = NULL;
            fail_later(pg, q, q->err, NULL);
            conn_lost(c, "COPY TO STDOUT is not supported");
            return;
        default: {
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            set_error(q, msg ? msg : PQresultErrorMessage(res), state);
            PQclear(res);
            break;
        }
        }
    }
}

/* Sends q on the idle connection c (or on c busy with q's prepare step):
 * its prepare step if the connection has not prepared it yet, else the
 * prepared statement, else (unregistered, or off on this connection) the
 * text. */
static void conn_send(conn_t *c, query_t *q)
{
    c->q = q;
    q->conn = c;
    c->state = C_BUSY;
    c->phase = P_RESULTS;
    if (!q->sent_ns)
        q->sent_ns = uv_hrtime();
    if (q->pre_sql || q->stream) {
        tx_send(c, q, TX_BEGIN);
        return;
    }
    const char *const *params = (const char *const *)q->params;
    int state = q->stmt >= 0 ? c->stmt_state[q->stmt] : S_OFF;
    char name[16];
    snprintf(name, sizeof name, "qr_%d", q->stmt);
    int sent;
    if (state == S_NONE) {
        /* No parameter types, as PQsendQueryParams sends none: the server
         * infers the same ones. */
        c->phase = P_PREPARE;
        sent = PQsendPrepare(c->pq, name, q->sql, 0, NULL);
    } else if (state == S_READY) {
        sent = PQsendQueryPrepared(c->pq, name, q->nparams, params, NULL, NULL, 0);
    } else {
        sent = PQsendQueryParams(c->pq, q->sql, q->nparams, NULL, params, NULL, NULL, 0);
    }
    if (!sent) {
        const char *msg = PQerrorMessage(c->pq);
        if (PQstatus(c->pq) == CONNECTION_BAD) {
            conn_lost(c, msg);
            return;
        }
        c->q = NULL;
        c->state = C_IDLE;
        fail_later(c->pg, q, msg, NULL);
        return;
    }
    /* Results come through on_poll: none can be buffered yet, and running a
     * callback here would run it inside qr_pg_query. */
    conn_flush(c);
}

static void dispatch(qr_pg_t *pg)
{
    for (int i = 0; i < pg->size && pg->queue.head && !pg->closing; i++) {
        conn_t *c = &pg->conns[i];
        if (c->state == C_IDLE)
            conn_send(c, qlist_pop(&pg->queue));
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    conn_t *c = h->data;
    if (c->pg->closing || c->poll != h)
        return; /* a stale event for a handle being replaced */

    if (c->state == C_CONNECTING) {
        /* On a poll error let libpq find the reason (e.g. refused). */
        conn_connect_step(c, PQconnectPoll(c->pq));
        return;
    }
    if (status < 0) {
        /* libuv stopped the handle on POLLERR; let libpq name the error. */
        conn_lost(c, PQconsumeInput(c->pq) ? uv_strerror(status) : PQerrorMessage(c->pq));
        return;
    }
    if (c->state == C_BUSY && (events & UV_WRITABLE)) {
        if (c->phase == P_COPY_SEND) {
            int f = PQflush(c->pq);
            if (f < 0) {
                conn_lost(c, PQerrorMessage(c->pq));
                return;
            }
            if (f == 0) {
                c->q->stream_blocked = 0;
                copy_send(c);
                /* Its results may be in libpq's buffer already (a COPY that
                 * failed half-way: the server answered while we still sent),
                 * and the socket then never turns readable for them. */
                if (!c->pg->closing && c->state == C_BUSY && c->phase != P_COPY_SEND)
                    conn_drain(c);
                return;
            }
        } else if (conn_flush(c) < 0) {
            return;
        }
    }
    if (!(events & UV_READABLE) || (c->state != C_IDLE && c->state != C_BUSY))
        return;
    if (!PQconsumeInput(c->pq)) {
        conn_lost(c, PQerrorMessage(c->pq));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pq)))
        PQfreemem(n); /* LISTEN belongs on a dedicated connection */
    if (c->state == C_IDLE) {
        /* Input on an idle connection: the server is telling us it is
         * going away (admin shutdown, idle timeout). */
        if (PQstatus(c->pq) == CONNECTION_BAD)
            conn_lost(c, PQerrorMessage(c->pq));
        return;
    }
    conn_drain(c);
}

/* ---- public API ---- */

int qr_pg_open(uv_loop_t *loop, const char *conninfo, int size, int connect_timeout_ms,
               qr_pg_t **out)
{
    if (!loop || !conninfo || size <= 0 || size > 1000 || connect_timeout_ms <= 0 || !out)
        return QR_EINVAL;
    qr_pg_t *pg = qr_xcalloc(1, sizeof *pg);
    pg->loop = loop;
    pg->conninfo = qr_xstrdup(conninfo);
    pg->size = size;
    pg->connect_timeout_ms = connect_timeout_ms;
    pg->conns = qr_xcalloc((size_t)size, sizeof *pg->conns);
    snprintf(pg->last_err, sizeof pg->last_err, "not connected yet");
    /* uv_timer_init cannot fail on Linux; if it did, the handles opened so
     * far are closed and the last close callback frees the pool. */
    int rc = uv_timer_init(loop, &pg->defer);
    if (rc < 0) {
        qr_error("pg: uv_timer_init: %s", uv_strerror(rc));
        free(pg->conns);
        free(pg->conninfo);
        free(pg);
        return rc;
    }
    pg->defer.data = pg;
    pg->open_handles++;
    for (int i = 0; i < size; i++) {
        conn_t *c = &pg->conns[i];
        c->pg = pg;
        c->idx = i;
        c->state = C_DOWN;
        c->backoff_ms = BACKOFF_MIN_MS;
        rc = uv_timer_init(loop, &c->timer);
        if (rc < 0)
            goto fail;
        c->timer.data = c;
        pg->open_handles++;
    }
    for (int i = 0; i < size; i++)
        conn_start(&pg->conns[i]);
    *out = pg;
    return 0;
fail:
    qr_error("pg: uv_timer_init: %s", uv_strerror(rc));
    pg->closing = 1;
    uv_close((uv_handle_t *)&pg->defer, on_defer_closed);
    for (int i = 0; i < size && pg->conns[i].timer.data; i++)
        uv_close((uv_handle_t *)&pg->conns[i].timer, on_timer_closed);
    return rc;
}

static query_t *query_new(qr_pg_cb cb, void *arg, const char *sql)
{
    query_t *q = qr_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    q->sql = qr_xstrdup(sql);
    q->stmt = -1;
    return q;
}

/* The statement number of sql, registering it if it is new; -1 once
 * STMT_MAX texts are registered (the rest run unprepared). FNV-1a hash,
 * linear probing; the table is never more than half full. */
static int stmt_number(qr_pg_t *pg, const char *sql)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    for (size_t i = (size_t)h & (STMT_SLOTS - 1);; i = (i + 1) & (STMT_SLOTS - 1)) {
        int n = pg->stmt_slot[i] - 1;
        if (n < 0) {
            if (pg->nstmts == STMT_MAX)
                return -1;
            n = pg->nstmts++;
            pg->stmt_sql[n] = qr_xstrdup(sql);
            pg->stmt_slot[i] = n + 1;
            return n;
        }
        if (strcmp(pg->stmt_sql[n], sql) == 0)
            return n;
    }
}

/* Queues q, or fails it (later) when no connection can take it soon. */
static void enqueue(qr_pg_t *pg, query_t *q)
{
    q->stats = &pg->stats;
    if (all_down(pg)) {
        char msg[320];
        snprintf(msg, sizeof msg, "PostgreSQL unavailable: %s", pg->last_err);
        fail_later(pg, q, msg, NULL);
        return;
    }
    qlist_push(&pg->queue, q);
    dispatch(pg);
}

static int query_submit(qr_pg_t *pg, const char *sql, int nparams, const char *const *params,
                        qr_pg_cb cb, void *arg, int prepared)
{
    if (pg->closing)
        return QR_EIO;
    if (!sql || !cb || nparams < 0 || nparams > 65535 || (nparams > 0 && !params))
        return QR_EINVAL;
    query_t *q = query_new(cb, arg, sql);
    q->stmt = prepared ? stmt_number(pg, sql) : -1;
    if (nparams > 0) {
        q->nparams = nparams;
        q->params = qr_xcalloc((size_t)nparams, sizeof *q->params);
        for (int i = 0; i < nparams; i++)
            q->params[i] = params[i] ? qr_xstrdup(params[i]) : NULL;
    }
    enqueue(pg, q);
    return 0;
}

int qr_pg_query(qr_pg_t *pg, const char *sql, int nparams, const char *const *params, qr_pg_cb cb,
                void *arg)
{
    return query_submit(pg, sql, nparams, params, cb, arg, 1);
}

int qr_pg_query_unprepared(qr_pg_t *pg, const char *sql, int nparams, const char *const *params,
                           qr_pg_cb cb, void *arg)
{
    return query_submit(pg, sql, nparams, params, cb, arg, 0);
}

/* A COPY query, not yet queued, sending data (len bytes; taken: freed
 * with the query; NULL when len is 0). */
static query_t *copy_query_take(const char *copy_sql, char *data, size_t len, qr_pg_cb cb,
                                void *arg)
{
    query_t *q = query_new(cb, arg, copy_sql);
    q->is_copy = 1;
    q->data = data ? data : qr_xmalloc(1);
    q->len = len;
    return q;
}

/* The same with a copy of data. */
static query_t *copy_query_new(const char *copy_sql, const char *data, size_t len, qr_pg_cb cb,
                               void *arg)
{
    char *copy = qr_xmalloc(len + 1);
    if (len > 0)
        memcpy(copy, data, len);
    return copy_query_take(copy_sql, copy, len, cb, arg);
}

int qr_pg_copy_in(qr_pg_t *pg, const char *copy_sql, const char *data, size_t len, qr_pg_cb cb,
                  void *arg)
{
    if (pg->closing)
        return QR_EIO;
    if (!copy_sql || !cb || (len > 0 && !data))
        return QR_EINVAL;
    enqueue(pg, copy_query_new(copy_sql, data, len, cb, arg));
    return 0;
}

int qr_pg_copy_in_tx(qr_pg_t *pg, const char *pre_sql, int nparams, const char *const *params,
                     const char *copy_sql, const char *data, size_t len, qr_pg_cb cb, void *arg)
{
    if (len > 0 && !data)
        return QR_EINVAL;
    char *copy = qr_xmalloc(len + 1);
    if (len > 0)
        memcpy(copy, data, len);
    return qr_pg_copy_in_tx_post(pg, pre_sql, nparams, params, copy_sql, copy, len, NULL, 0, NULL,
                                 cb, arg);
}

int qr_pg_copy_in_tx_post(qr_pg_t *pg, const char *pre_sql, int nparams, const char *const *params,
                          const char *copy_sql, char *data, size_t len, const char *post_sql,
                          int post_nparams, const char *const *post_params, qr_pg_cb cb, void *arg)
{
    if (pg->closing) {
        free(data);
        return QR_EIO;
    }
    if (!pre_sql || !copy_sql || !cb || (len > 0 && !data) || nparams < 0 || nparams > 65535 ||
        (nparams > 0 && !params) || post_nparams < 0 || post_nparams > 65535 ||
        (post_nparams > 0 && !post_params)) {
        free(data);
        return QR_EINVAL;
    }
    query_t *q = copy_query_take(copy_sql, data, len, cb, arg);
    q->pre_sql = qr_xstrdup(pre_sql);
    q->nparams = nparams;
    q->params = nparams ? qr_xcalloc((size_t)nparams, sizeof *q->params) : NULL;
    for (int i = 0; i < nparams; i++)
        q->params[i] = params[i] ? qr_xstrdup(params[i]) : NULL;
    if (post_sql) {
        q->post_sql = qr_xstrdup(post_sql);
        q->post_nparams = post_nparams;
        q->post_params =
            post_nparams ? qr_xcalloc((size_t)post_nparams, sizeof *q->post_params) : NULL;
        for (int i = 0; i < post_nparams; i++)
            q->post_params[i] = post_params[i] ? qr_xstrdup(post_params[i]) : NULL;
    }
    enqueue(pg, q);
    return 0;
}

int qr_pg_copy_open(qr_pg_t *pg, const char *copy_sql, qr_pg_copy_event_cb on_ready,
                    qr_pg_copy_event_cb on_drain, qr_pg_cb cb, void *arg, qr_pg_copy_t **out)
{
    return qr_pg_copy_open_pre(pg, NULL, copy_sql, on_ready, on_drain, cb, arg, out);
}

int qr_pg_copy_open_pre(qr_pg_t *pg, const char *pre_sql, const char *copy_sql,
                        qr_pg_copy_event_cb on_ready, qr_pg_copy_event_cb on_drain, qr_pg_cb cb,
                        void *arg, qr_pg_copy_t **out)
{
    if (pg->closing)
        return QR_EIO;
    if (!copy_sql || !cb || !on_ready || !on_drain || !out)
        return QR_EINVAL;
    query_t *q = copy_query_take(copy_sql, NULL, 0, cb, arg);
    q->pre_sql = pre_sql ? qr_xstrdup(pre_sql) : NULL;
    q->stream = 1;
    q->cap = 1;
    q->on_ready = on_ready;
    q->on_drain = on_drain;
    *out = q;
    enqueue(pg, q);
    return 0;
}

/* The connection copying q's data now, or NULL (not yet sent, or failed). */
static conn_t *stream_conn(query_t *q)
{
    conn_t *c = q->conn;
    if (q->err || !c || c->q != q || c->state != C_BUSY)
        return NULL;
    return c;
}

int qr_pg_copy_put(qr_pg_copy_t *q, const char *data, size_t len)
{
    conn_t *c = stream_conn(q);
    if (!c || !q->stream_ready || q->stream_end)
        return QR_EIO;
    if (q->off > 0 && q->off == q->len)
        q->off = q->len = 0;
    if (q->len + len > q->cap) {
        if (q->off > 0) { /* what was sent goes first */
            memmove(q->data, q->data + q->off, q->len - q->off);
            q->len -= q->off;
            q->off = 0;
        }
        if (q->len + len > q->cap) {
            size_t cap = q->cap * 2 > q->len + len ? q->cap * 2 : q->len + len;
            q->data = qr_xrealloc(q->data, cap);
            q->cap = cap;
        }
    }
    memcpy(q->data + q->len, data, len);
    q->len += len;
    if (c->phase == P_COPY_SEND && !q->stream_blocked)
        copy_send(c); /* calls no callback: the stream has not ended, nothing is owed */
    if (!stream_conn(q))
        return QR_EIO; /* the connection was lost meanwhile: cb follows */
    if (q->len - q->off >= STREAM_HIGH) {
        q->stream_full = 1;
        return 1;
    }
    return 0;
}

/* After finish or abort: what is left and the end go out from the next
 * writable event (on_poll), not from here: the results that follow may be
 * buffered already, and taking them runs the callback, which must not run
 * inside qr_pg_copy_finish or qr_pg_copy_abort. A COPY not yet started
 * ends as it starts (conn_drain). */
static void stream_end(query_t *q)
{
    conn_t *c = stream_conn(q);
    if (c && c->phase == P_COPY_SEND && q->stream_ready && !q->stream_blocked &&
        conn_watch(c, UV_READABLE | UV_WRITABLE) < 0)
        conn_lost(c, "cannot poll the socket");
}

void qr_pg_copy_finish(qr_pg_copy_t *q, const char *post_sql, int nparams,
                       const char *const *params)
{
    if (q->err || q->stream_end)
        return;
    q->stream_end = 1;
    if (post_sql) {
        q->post_sql = qr_xstrdup(post_sql);
        q->post_nparams = nparams;
        q->post_params = nparams ? qr_xcalloc((size_t)nparams, sizeof *q->post_params) : NULL;
        for (int i = 0; i < nparams; i++)
            q->post_params[i] = params[i] ? qr_xstrdup(params[i]) : NULL;
    }
    stream_end(q);
}

void qr_pg_copy_abort(qr_pg_copy_t *q, const char *why)
{
    if (q->err || q->end_sent)
        return; /* failing already, or ended: cb follows */
    /* Still queued, or starting: the COPY fails as soon as it starts. */
    free(q->stream_fail);
    q->stream_fail = qr_xstrdup(why && *why ? why : "aborted");
    free(q->post_sql); /* an abort overrides a finish not yet sent */
    q->post_sql = NULL;
    q->stream_end = 1;
    q->off = q->len; /* nothing more of the data is sent */
    stream_end(q);
}

const qr_latency_t *qr_pg_stats(const qr_pg_t *pg)
{
    return &pg->stats;
}

int qr_pg_connected(const qr_pg_t *pg)
{
    int n = 0;
    for (int i = 0; i < pg->size; i++)
        if (pg->conns[i].state == C_IDLE || pg->conns[i].state == C_BUSY)
            n++;
    return n;
}

void qr_pg_close(qr_pg_t *pg, void (*cb)(void *arg), void *arg)
{
    if (pg->closing)
        return;
    pg->closing = 1;
    pg->close_cb = cb;
    pg->close_arg = arg;

    /* Close every connection first, so callbacks run below see a pool that
     * is already shut. A running statement is abandoned: the server notices
     * the closed socket (PQcancel would block the loop). */
    query_list_t failed = {NULL, NULL};
    for (int i = 0; i < pg->size; i++) {
        conn_t *c = &pg->conns[i];
        if (c->q) {
            set_error(c->q, "PostgreSQL pool closed", NULL);
            qlist_push(&failed, c->q);
            c->q = NULL;
        }
        conn_unwatch(c);
        if (c->pq) {
            PQfinish(c->pq);
            c->pq = NULL;
        }
        c->state = C_CLOSED;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
    query_t *q;
    while ((q = qlist_pop(&pg->queue))) {
        set_error(q, "PostgreSQL pool closed", NULL);
        qlist_push(&failed, q);
    }
    while ((q = qlist_pop(&pg->done)))
        query_finish(q);
    while ((q = qlist_pop(&failed)))
        query_finish(q);
    uv_close((uv_handle_t *)&pg->defer, on_defer_closed);
}
