/*
 * read_pool.h - the reports' PostgreSQL: a second pool on a streaming
 * replica (quorumd --pg-read), and how far behind the primary it may be.
 *
 * Reports (throughput, agreement, report, progress, export) may read a
 * little in the past; everything else reads the primary. Each report asks
 * qr_read_pool_choose where to send its statements: the replica while it is
 * connected and known to hold every commit acknowledged up to at most
 * max_lag_ms ago, else the primary (the fallback).
 *
 * How stale the replica may be is measured without trusting either
 * server's clock: every interval_ms a probe reads the primary's WAL insert
 * position (on the primary pool), then asks the replica, on a connection of
 * its own, whether it has replayed that far. When it has, every commit the
 * primary acknowledged before the probe was sent is visible on the replica:
 * a read from it now is stale by at most the time since that probe began
 * (monotonic clock). A failed probe forgets what was known, so a replica
 * that stopped is left at once. No call blocks the loop.
 */
#ifndef QR_READ_POOL_H
#define QR_READ_POOL_H

#include <stdint.h>
#include <uv.h>

#include "pg.h"
#include "util.h"

typedef struct qr_read_pool_s qr_read_pool_t;

typedef struct qr_read_pool_config_s {
    const char *conninfo; /* the replica, libpq connection string */
    int size;             /* connections for the reports */
    int max_lag_ms;       /* staler than this: reports read the primary */
    int interval_ms;      /* between probes */
} qr_read_pool_config_t;

/* Where a report reads. */
enum {
    QR_READ_NONE = 0, /* no replica configured: the primary, as always */
    QR_READ_REPLICA,  /* the replica */
    QR_READ_PRIMARY   /* a replica is configured but down or too far behind */
};

typedef struct qr_read_s {
    qr_pg_t *pg;      /* the pool to send the report's statements to */
    qr_pg_t *primary; /* the primary's pool (qr_read_query's second try) */
    int from;         /* QR_READ_* */
    int64_t as_of_ms; /* QR_READ_REPLICA: monotonic time (qr_mono_ms) before
                         which every acknowledged commit is visible there */
} qr_read_t;

/* Opens the replica's pools and starts probing at once. primary is the
 * broker's pool (borrowed: it must outlive the read pool's close). Returns
 * 0, or a negative code. */
QR_MUST_CHECK int qr_read_pool_open(uv_loop_t *loop, qr_pg_t *primary,
                                    const qr_read_pool_config_t *cfg, qr_read_pool_t **out);

/* Where a report should read now. r may be NULL (no replica): the primary,
 * QR_READ_NONE. */
qr_read_t qr_read_pool_choose(const qr_read_pool_t *r, qr_pg_t *primary);

/* As qr_pg_query (unprepared: qr_pg_query_unprepared) on rd->pg. When rd
 * is the replica and the statement fails there for want of the replica
 * (the connection lost or none up, SQLSTATE class 08 or 57, or 40001: a
 * query cancelled by a conflict with recovery), it is sent once more to
 * the primary, and *rd says so (QR_READ_PRIMARY) before cb runs. Any other
 * error, and every error on the primary, goes to cb as it is. rd is the
 * caller's and must stay valid until cb has run. Returns as qr_pg_query. */
QR_MUST_CHECK int qr_read_query(qr_read_t *rd, int unprepared, const char *sql, int nparams,
                                const char *const *params, qr_pg_cb cb, void *arg);

/* Seconds a read from the replica may be stale, as of now: rd is what
 * qr_read_pool_choose gave (0 unless QR_READ_REPLICA). */
double qr_read_stale_s(const qr_read_t *rd);

/* For GET /metrics: the replica's staleness bound now in seconds (negative:
 * not known, no probe has succeeded since the last failure), its pool's
 * connections up and size. */
double qr_read_pool_lag_s(const qr_read_pool_t *r);
int qr_read_pool_connected(const qr_read_pool_t *r);
int qr_read_pool_size(const qr_read_pool_t *r);

/* Stops probing, closes both pools (their queued statements fail), and
 * frees r once every handle is closed and the probe under way has ended;
 * then cb (may be NULL). */
void qr_read_pool_close(qr_read_pool_t *r, void (*cb)(void *arg), void *arg);

#endif
