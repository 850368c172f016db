/*
 * events.h - the lease log: every grant, heartbeat, submit, skip, release and
 * expiry, written to PostgreSQL in batches off the request path (issue 6).
 *
 * qr_events_add only copies the event into a buffer; a timer (flush_ms) or a
 * full batch (max_batch) sends one multi-row INSERT through the pool. The
 * lease path therefore never waits on it. Events still buffered when the
 * broker stops are flushed by qr_events_close before its callback runs.
 */
#ifndef QR_EVENTS_H
#define QR_EVENTS_H

#include <stdint.h>
#include <uv.h>

#include "pg.h"

typedef enum qr_event_kind_e {
    QR_EV_GRANT = 0,
    QR_EV_HEARTBEAT,
    QR_EV_SUBMIT,
    QR_EV_SKIP,
    QR_EV_RELEASE,
    QR_EV_EXPIRE,
} qr_event_kind_t;

typedef struct qr_event_s {
    qr_event_kind_t kind;
    int64_t project_id;
    int64_t task_id;
    int64_t annotator_id;
    int64_t token;      /* fencing token of the lease */
    int64_t at_ms;      /* when it happened, epoch ms */
    int64_t granted_ms; /* when the lease was granted, epoch ms (0 if unknown) */
    int64_t active_ms;  /* agent-reported time on task (submit), or -1 */
    const char *label;  /* submit: the label; else NULL. Copied. */
    const char *reason; /* skip/release: the reason, or NULL. Copied. */
} qr_event_t;

typedef struct qr_events_s qr_events_t;

/* Creates the recorder. flush_ms: longest an event waits in the buffer
 * (e.g. 200); max_batch: events per INSERT (e.g. 1000). */
int qr_events_open(uv_loop_t *loop, qr_pg_t *pg, int flush_ms, int max_batch, qr_events_t **out);

/* Under load, waits longer between batches so that each holds more events:
 * once a batch of at least busy_rows events has been sent, the next one
 * waits busy_ms (>= flush_ms) instead of flush_ms; a smaller batch brings
 * back flush_ms. busy_rows 0 (the default) turns it off. QR_EINVAL for a
 * negative busy_rows or a busy_ms outside [flush_ms, 3,600,000]; nothing
 * changes then. */
QR_MUST_CHECK int qr_events_set_busy(qr_events_t *ev, int busy_rows, int busy_ms);

/* Buffers one event (copied). Never blocks, never fails: past 100,000
 * buffered events (PostgreSQL down), the oldest are dropped and counted. */
void qr_events_add(qr_events_t *ev, const qr_event_t *e);

/* Events dropped so far because the buffer was full. */
uint64_t qr_events_dropped(const qr_events_t *ev);

/* Flushes what is buffered, stops the timer, frees everything once the
 * last INSERT has answered, then runs cb (may be NULL). */
void qr_events_close(qr_events_t *ev, void (*cb)(void *arg), void *arg);

#endif
