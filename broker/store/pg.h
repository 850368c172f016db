/*
 * pg.h - asynchronous PostgreSQL for the event loop: a small pool of libpq
 * connections in non-blocking mode, each driven by a uv_poll_t on PQsocket.
 * No call here blocks the loop.
 *
 * Queries are queued and run in FIFO order on the first idle connection;
 * every query is one statement with its parameters bound (text format). Use
 * CTEs to make several changes atomically in one statement. Each connection
 * prepares a statement the first time it runs its text and then only
 * executes it (pg.c: "Prepared statements"), so callers should pass fixed
 * texts; the first 256 distinct ones are prepared, any further ones run
 * unprepared. COPY FROM STDIN is supported through qr_pg_copy_in, alone or
 * in one transaction with a statement before it (qr_pg_copy_in_tx: the
 * one multi-statement transaction, still within one call), or streamed in
 * as the caller gets its data (qr_pg_copy_open: an import read from the
 * network, in a transaction of its own).
 *
 * A connection that fails is reconnected with backoff; the queries that were
 * running on it fail with an error (they are not retried: the caller decides).
 */
#ifndef QR_PG_H
#define QR_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <uv.h>

#include "histogram.h"
#include "util.h"

typedef struct qr_pg_s qr_pg_t;

/* The result callback. On success res is the PGresult (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; COPY reports PGRES_COMMAND_OK) and err is NULL. On any
 * failure res is NULL and err is the message; sqlstate is the five-character
 * SQLSTATE when the server sent one ("23505" unique violation...), else "".
 * res is owned by the pool and cleared after the callback returns. */
typedef void (*qr_pg_cb)(const PGresult *res, const char *err, const char *sqlstate, void *arg);

/* Opens a pool of `size` connections (conninfo as for PQconnectdb). Returns at
 * once; connections come up in the background and queries queue until one is
 * ready. connect_timeout_ms bounds each attempt (our own timer, since libpq
 * ignores connect_timeout in non-blocking mode). */
QR_MUST_CHECK int qr_pg_open(uv_loop_t *loop, const char *conninfo, int size,
                             int connect_timeout_ms, qr_pg_t **out);

/* Queues one statement with nparams text parameters (values may be NULL for
 * SQL NULL). The strings are copied; the caller may free them on return.
 * cb is always called exactly once, later, never from inside this call.
 * Returns 0, or a negative code (and does not call cb) if the pool is closing. */
QR_MUST_CHECK int qr_pg_query(qr_pg_t *pg, const char *sql, int nparams, const char *const *params,
                              qr_pg_cb cb, void *arg);

/* The same, never prepared: planned afresh for its parameter values each
 * time. For heavy reports whose best plan depends on the values (a window of
 * 15 minutes or of 7 days): a prepared statement may fall back to a generic
 * plan after five runs, which for these is many times slower. */
QR_MUST_CHECK int qr_pg_query_unprepared(qr_pg_t *pg, const char *sql, int nparams,
                                         const char *const *params, qr_pg_cb cb, void *arg);

/* Runs `copy_sql` (a "COPY ... FROM STDIN" statement) and streams `len` bytes
 * of COPY text-format data from `data` (copied) into it. Atomic as COPY is:
 * on error nothing is inserted. cb as for qr_pg_query. */
QR_MUST_CHECK int qr_pg_copy_in(qr_pg_t *pg, const char *copy_sql, const char *data, size_t len,
                                qr_pg_cb cb, void *arg);

/* As qr_pg_copy_in, in one transaction with one statement before it:
 * BEGIN; pre_sql with its nparams text parameters; the COPY; COMMIT, all on
 * one connection, no callback in between. cb gets pre_sql's result once
 * COMMIT succeeded, or the first error (the transaction is then rolled back;
 * a connection lost half-way rolls back on the server's side, and cb gets
 * the loss). So what pre_sql writes is committed exactly when the rows are.
 * pre_sql is never prepared. */
QR_MUST_CHECK int qr_pg_copy_in_tx(qr_pg_t *pg, const char *pre_sql, int nparams,
                                   const char *const *params, const char *copy_sql,
                                   const char *data, size_t len, qr_pg_cb cb, void *arg);

/* As qr_pg_copy_in_tx with one more statement, post_sql with its
 * post_nparams text parameters, run after the COPY and before COMMIT
 * (NULL: none). Its result is not returned; its error is (and rolls all
 * back). post_sql is never prepared. data (len bytes, from malloc) is taken,
 * not copied: the pool frees it, whatever this returns, so that the rows of
 * a large import are held once. */
QR_MUST_CHECK int qr_pg_copy_in_tx_post(qr_pg_t *pg, const char *pre_sql, int nparams,
                                        const char *const *params, const char *copy_sql, char *data,
                                        size_t len, const char *post_sql, int post_nparams,
                                        const char *const *post_params, qr_pg_cb cb, void *arg);

/* A COPY FROM STDIN streamed in as its data arrives (an import read from
 * the network), in a transaction of its own on one pooled connection:
 * BEGIN; the COPY; then, once qr_pg_copy_finish gives it, one statement
 * (its result is the callback's); COMMIT. What is put is sent as the socket
 * takes it, never blocking the loop; the caller is told to wait when more
 * than about 1 MiB is unsent. The handle is the pool's: valid from
 * qr_pg_copy_open until cb runs (exactly once, later, never from inside a
 * call below), then gone. */
typedef struct query_s qr_pg_copy_t;
typedef void (*qr_pg_copy_event_cb)(void *arg);

/* Queues the stream. on_ready(arg) runs once the COPY is in progress (put
 * may be called from then on); cb(res or error, arg) runs at the end: the
 * post statement's result once COMMIT succeeded, or the first error (the
 * transaction is then rolled back; an error of the COPY itself, such as a
 * unique violation, is known only at its end). on_drain(arg) runs after a
 * put returned 1, once everything put is sent. Returns 0, or a negative
 * code (no callback runs) if the pool is closing. */
QR_MUST_CHECK int qr_pg_copy_open(qr_pg_t *pg, const char *copy_sql, qr_pg_copy_event_cb on_ready,
                                  qr_pg_copy_event_cb on_drain, qr_pg_cb cb, void *arg,
                                  qr_pg_copy_t **out);

/* As qr_pg_copy_open with one statement (no parameters, never prepared)
 * between BEGIN and the COPY, such as the CREATE TEMPORARY TABLE the COPY
 * fills; NULL: none. Its result is dropped; its error fails the stream. */
QR_MUST_CHECK int qr_pg_copy_open_pre(qr_pg_t *pg, const char *pre_sql, const char *copy_sql,
                                      qr_pg_copy_event_cb on_ready, qr_pg_copy_event_cb on_drain,
                                      qr_pg_cb cb, void *arg, qr_pg_copy_t **out);

/* Adds len bytes of COPY text (copied) after on_ready. Returns 0; 1 when
 * the caller should wait for on_drain before the next put (the bytes were
 * taken all the same); or QR_EIO when the stream is failing (cb follows). */
QR_MUST_CHECK int qr_pg_copy_put(qr_pg_copy_t *s, const char *data, size_t len);

/* Ends the COPY after what was put; then post_sql with its nparams text
 * parameters (copied), then COMMIT; cb gets post_sql's result. May be
 * called before on_ready. Does nothing on a failing stream (cb follows). */
void qr_pg_copy_finish(qr_pg_copy_t *s, const char *post_sql, int nparams,
                       const char *const *params);

/* Fails the COPY with why (what is unsent is dropped) and rolls the
 * transaction back; cb then gets an error. May be called at any time
 * before cb ran, even before on_ready. */
void qr_pg_copy_abort(qr_pg_copy_t *s, const char *why);

/* Round-trip times of the statements that succeeded (sent to last result)
 * and the count of those that failed, since the pool opened (GET /metrics).
 * Valid as long as the pool. */
const qr_latency_t *qr_pg_stats(const qr_pg_t *pg);

/* Number of connections currently connected (for /readyz and tests). */
int qr_pg_connected(const qr_pg_t *pg);

/* Fails every queued query, closes every connection and frees the pool once
 * all handles are closed; cb (may be NULL) runs then. */
void qr_pg_close(qr_pg_t *pg, void (*cb)(void *arg), void *arg);

#endif
