/*
 * committer.h - group commit of submitted annotations.
 *
 * Submits arriving while earlier batches are in flight wait in a queue and
 * go to PostgreSQL together: one statement (quorum_submit_batch, sql/0004)
 * and one commit for up to max_batch annotations. At low load a submit goes
 * out alone at once; under load the batches grow by themselves, so commits
 * per annotation fall without adding a timer's latency. Every submitter
 * hears back only after the commit of its batch (invariant 1).
 */
#ifndef QR_COMMITTER_H
#define QR_COMMITTER_H

#include <stdint.h>

#include "pg.h"

typedef struct qr_committer_s qr_committer_t;

typedef struct qr_commit_row_s {
    int64_t task_id, project_id, annotator_id, token, granted_ms, expires_ms;
    int64_t active_ms;           /* -1 for none */
    const char *label;           /* copied */
    const char *idempotency_key; /* NULL for none; copied */
} qr_commit_row_t;

/* rc 0: outcome is "created" (annotation_id set), "full" (the task needs no
 * more annotations, or this annotator labeled it before) or "duplicate" (a
 * unique constraint refused the row: a reused idempotency key); extended is
 * 1 when this annotation's commit raised its task's required count by one
 * (dynamic overlap, sql/0027: one row per such task says so), so the lease
 * engine must leave the task a new free slot. rc < 0: PostgreSQL failed,
 * err says why, nothing of this row was stored. */
typedef void (*qr_commit_cb)(int rc, int64_t annotation_id, const char *outcome, int extended,
                             const char *err, void *arg);

qr_committer_t *qr_committer_new(qr_pg_t *pg, int max_inflight, int max_batch);

/* Hooks run around the callbacks of one batch: before(arg) ahead of the
 * first, after(arg) behind the last, so the caller can gather what those
 * callbacks start (the lease engine's cork: one Redis call ends the
 * batch's leases of a project). Either may be NULL. */
void qr_committer_set_batch_hooks(qr_committer_t *c, void (*before)(void *arg),
                                  void (*after)(void *arg), void *arg);

/* Holds the committer: until the matching qr_committer_release, added rows
 * only queue; the outermost release sends them (as many batches as the
 * rows and the batches in flight allow). Holds nest. For rows added in one
 * go (a submit batch's, pinned in one Redis call), so they commit together
 * rather than the first ones alone. */
void qr_committer_hold(qr_committer_t *c);
void qr_committer_release(qr_committer_t *c);

/* Queues one annotation; cb runs once, later (or before this returns when
 * the pool is already closing). */
void qr_committer_add(qr_committer_t *c, const qr_commit_row_t *row, qr_commit_cb cb, void *arg);

/* Statements (= transactions) sent and rows committed so far. */
uint64_t qr_committer_batches(const qr_committer_t *c);
uint64_t qr_committer_rows(const qr_committer_t *c);

/* Frees the committer; call only once nothing is queued or in flight
 * (after the pool has failed everything, as qr_pg_close does). */
void qr_committer_free(qr_committer_t *c);

#endif
