/*
 * read_pool.c - the reports' pool on a streaming replica and its probe of
 * staleness (see read_pool.h).
 *
 * The probe is two statements, one after the other, never two probes at
 * once (a tick that finds one under way is skipped): the primary's WAL
 * insert position (and system identifier), read on the broker's pool, then
 * on the replica whether it is in recovery, a copy of the same cluster, and
 * has replayed that far. The insert position is at
 * or past the commit record of every transaction acknowledged before the
 * statement ran, whatever synchronous_commit says, so "replayed that far"
 * means "holds every commit acknowledged before the probe was sent". The
 * replica's statement runs on a connection of its own, so that long
 * reports queued on the read pool do not delay the probe (and so make the
 * replica look staler than it is).
 */
#include "read_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The primary's WAL insert position and its cluster's system identifier,
 * as text. */
#define SQL_PRIMARY_LSN                                                                            \
    "SELECT pg_current_wal_insert_lsn()::text,"                                                    \
    " (SELECT system_identifier FROM pg_control_system())::text"

/* $1 a position of the primary's WAL, $2 the primary's system identifier
 * -> whether this server is a standby, whether it has replayed up to $1,
 * and whether it is a copy of the primary's cluster (a physical replica
 * keeps its system identifier; positions of another cluster's WAL mean
 * nothing here). */
#define SQL_REPLICA_CAUGHT                                                                         \
    "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false),"         \
    " (SELECT system_identifier FROM pg_control_system())::text = $2"

struct qr_read_pool_s {
    qr_pg_t *primary;     /* borrowed */
    qr_pg_t *read;        /* the reports' connections to the replica */
    qr_pg_t *probe;       /* one connection to the replica, for the probe */
    uv_timer_t timer;     /* the probe's period */
    int max_lag_ms;       /* staler than this: reports read the primary */
    int size;             /* connections of read */
    int known;            /* confirmed_ms holds (a probe succeeded since the last failure) */
    int64_t confirmed_ms; /* monotonic: the start of the last probe that found the
                             replica caught up */
    int64_t probe_ms;     /* monotonic: when the probe under way began */
    int probing;          /* a probe is under way */
    int usable;           /* what was last logged: 1 the replica serves reports */
    int closing;          /* qr_read_pool_close was called */
    int open;             /* handles and pools not yet closed */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void maybe_free(qr_read_pool_t *r)
{
    if (!r->closing || r->open > 0 || r->probing)
        return;
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    free(r);
    if (cb)
        cb(arg);
}

/* Logs when the replica starts or stops serving reports (not on every
 * probe). */
static void note_usable(qr_read_pool_t *r, int usable, const char *why)
{
    if (usable == r->usable)
        return;
    r->usable = usable;
    if (usable)
        qr_info("pg-read: the replica holds every commit of the primary; reports read it");
    else
        qr_warn("pg-read: %s; reports read the primary until it is back", why);
}

static void probe_end(qr_read_pool_t *r)
{
    r->probing = 0;
    maybe_free(r);
}

static void on_replica(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    qr_read_pool_t *r = arg;
    if (r->closing) {
        probe_end(r);
        return;
    }
    if (!res || PQntuples(res) != 1) {
        /* Down, or refusing: what was known of it no longer holds. */
        r->known = 0;
        char why[320];
        snprintf(why, sizeof why, "the replica does not answer (%s)", err ? err : "no row");
        note_usable(r, 0, why);
        probe_end(r);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        r->known = 0;
        note_usable(r, 0, "the --pg-read server is not a standby (not in recovery)");
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        r->known = 0;
        note_usable(r, 0,
                    "the --pg-read server is a standby of another cluster than --pg's (another "
                    "system identifier)");
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        if (!r->known || r->probe_ms > r->confirmed_ms)
            r->confirmed_ms = r->probe_ms;
        r->known = 1;
        note_usable(r, 1, NULL);
    }
    /* Else behind: the bound keeps growing from the last probe that found
     * it caught up, until it passes max_lag_ms. */
    probe_end(r);
}

static void on_primary_lsn(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    qr_read_pool_t *r = arg;
    if (r->closing || !res || PQntuples(res) != 1) {
        /* The primary did not answer: nothing is learnt of the replica. */
        if (!r->closing)
            qr_debug("pg-read: probe: the primary did not answer: %s", err ? err : "no row");
        probe_end(r);
        return;
    }
    const char *params[] = {PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)};
    if (qr_pg_query(r->probe, SQL_REPLICA_CAUGHT, 2, params, on_replica, r) < 0)
        probe_end(r);
}

static void on_tick(uv_timer_t *t)
{
    qr_read_pool_t *r = t->data;
    if (r->probing || r->closing)
        return;
    r->probing = 1;
    r->probe_ms = qr_mono_ms();
    if (qr_pg_query(r->primary, SQL_PRIMARY_LSN, 0, NULL, on_primary_lsn, r) < 0)
        r->probing = 0;
}

static void one_closed(void *arg)
{
    qr_read_pool_t *r = arg;
    r->open--;
    maybe_free(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    one_closed(h->data);
}

int qr_read_pool_open(uv_loop_t *loop, qr_pg_t *primary, const qr_read_pool_config_t *cfg,
                      qr_read_pool_t **out)
{
    qr_read_pool_t *r = qr_xcalloc(1, sizeof *r);
    r->primary = primary;
    r->max_lag_ms = cfg->max_lag_ms;
    r->size = cfg->size;
    r->usable = -1; /* nothing logged yet */
    int rc = qr_pg_open(loop, cfg->conninfo, cfg->size, 5000, &r->read);
    if (rc < 0)
        goto fail;
    r->open++;
    rc = qr_pg_open(loop, cfg->conninfo, 1, 5000, &r->probe);
    if (rc < 0)
        goto fail;
    r->open++;
    rc = uv_timer_init(loop, &r->timer);
    if (rc < 0)
        goto fail;
    r->open++;
    r->timer.data = r;
    rc = uv_timer_start(&r->timer, on_tick, 0, (uint64_t)cfg->interval_ms);
    if (rc < 0)
        goto fail;
    *out = r;
    return 0;
fail:
    qr_error("pg-read: cannot open the replica's pool (%d)", rc);
    *out = NULL;
    qr_read_pool_close(r, NULL, NULL);
    return rc;
}

qr_read_t qr_read_pool_choose(const qr_read_pool_t *r, qr_pg_t *primary)
{
    qr_read_t rd = {.pg = primary, .primary = primary, .from = QR_READ_NONE, .as_of_ms = 0};
    if (!r)
        return rd;
    rd.from = QR_READ_PRIMARY;
    if (r->closing || !r->known || qr_pg_connected(r->read) == 0 ||
        qr_mono_ms() - r->confirmed_ms > r->max_lag_ms)
        return rd;
    rd.pg = r->read;
    rd.from = QR_READ_REPLICA;
    rd.as_of_ms = r->confirmed_ms;
    return rd;
}

/* --- a report's statement, tried on the primary when the replica fails --- */

typedef struct read_query_s {
    qr_read_t *rd; /* the caller's */
    int unprepared;
    char *sql;
    int nparams;
    char **params; /* copies, for the second try */
    qr_pg_cb cb;
    void *arg;
} read_query_t;

static void read_query_free(read_query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

/* A failure that says the replica, not the statement, is at fault. */
static int replica_failed(const char *sqlstate)
{
    return !sqlstate || !sqlstate[0] || !strncmp(sqlstate, "08", 2) ||
           !strncmp(sqlstate, "57", 2) || !strcmp(sqlstate, "40001");
}

static int read_query_send(read_query_t *q);

static void on_read_result(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    read_query_t *q = arg;
    qr_read_t *rd = q->rd;
    if (!res && rd->from == QR_READ_REPLICA && rd->primary && replica_failed(sqlstate)) {
        qr_warn("pg-read: a report's statement failed on the replica (%s%s%s); sent to the "
                "primary",
                err ? err : "?", sqlstate && sqlstate[0] ? ", SQLSTATE " : "",
                sqlstate ? sqlstate : "");
        rd->pg = rd->primary;
        rd->from = QR_READ_PRIMARY;
        rd->as_of_ms = 0;
        if (read_query_send(q) == 0)
            return;
        res = NULL;
        err = "the PostgreSQL pool is closing";
        sqlstate = "";
    }
    q->cb(res, err, sqlstate, q->arg);
    read_query_free(q);
}

static int read_query_send(read_query_t *q)
{
    const char *const *params = (const char *const *)q->params;
    return q->unprepared
               ? qr_pg_query_unprepared(q->rd->pg, q->sql, q->nparams, params, on_read_result, q)
               : qr_pg_query(q->rd->pg, q->sql, q->nparams, params, on_read_result, q);
}

int qr_read_query(qr_read_t *rd, int unprepared, const char *sql, int nparams,
                  const char *const *params, qr_pg_cb cb, void *arg)
{
    read_query_t *q = qr_xcalloc(1, sizeof *q);
    q->rd = rd;
    q->unprepared = unprepared;
    q->sql = qr_xstrdup(sql);
    q->nparams = nparams;
    q->params = qr_xcalloc(nparams > 0 ? (size_t)nparams : 1, sizeof *q->params);
    for (int i = 0; i < nparams; i++)
        q->params[i] = params[i] ? qr_xstrdup(params[i]) : NULL;
    q->cb = cb;
    q->arg = arg;
    int rc = read_query_send(q);
    if (rc < 0)
        read_query_free(q);
    return rc;
}

double qr_read_stale_s(const qr_read_t *rd)
{
    if (rd->from != QR_READ_REPLICA)
        return 0;
    int64_t ms = qr_mono_ms() - rd->as_of_ms;
    return ms > 0 ? (double)ms / 1000.0 : 0;
}

double qr_read_pool_lag_s(const qr_read_pool_t *r)
{
    if (!r->known)
        return -1;
    int64_t ms = qr_mono_ms() - r->confirmed_ms;
    return ms > 0 ? (double)ms / 1000.0 : 0;
}

int qr_read_pool_connected(const qr_read_pool_t *r)
{
    return qr_pg_connected(r->read);
}

int qr_read_pool_size(const qr_read_pool_t *r)
{
    return r->size;
}

void qr_read_pool_close(qr_read_pool_t *r, void (*cb)(void *arg), void *arg)
{
    r->closing = 1;
    r->close_cb = cb;
    r->close_arg = arg;
    /* Counted up front: a pool may finish closing within its close call. */
    int timer = r->open >= 3, probe = r->open >= 2, read = r->open >= 1;
    r->open++;
    if (timer)
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    if (probe)
        qr_pg_close(r->probe, one_closed, r);
    if (read)
        qr_pg_close(r->read, one_closed, r);
    one_closed(r);
}
