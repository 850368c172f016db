/*
 * live_agreement.h - GET /v1/projects/{id}/agreement: the agreement report
 * of issue 4 over a project's annotations, kept warm per project.
 *
 * Design (cache and refresh): each project's judgements live in an
 * in-memory qr_agreement_t fed incrementally (annotations with an id above
 * the last one read). A request is answered from the last computed report
 * when one exists; if that report is older than max_age_ms, a refresh runs
 * in the background (one at a time per project) for the next request. The
 * first request of a project, or one with fresh=1, waits for a refresh.
 * The coefficients are computed on libuv's thread pool, never on the loop.
 * A refresh notices annotations committed out of id order (its count does
 * not match PostgreSQL's) and then reloads the project from scratch.
 */
#ifndef QR_LIVE_AGREEMENT_H
#define QR_LIVE_AGREEMENT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "pg.h"
#include "read_pool.h"

typedef struct qr_live_agreement_s qr_live_agreement_t;

/* status: 200 with report (a new reference the callback owns), or 503 with
 * report NULL and err set. */
typedef void (*qr_live_agreement_cb)(int status, json_t *report, const char *err, void *arg);

/* pg: the primary; read: the replica's pool (NULL: none). Each refresh
 * reads where qr_read_pool_choose says, and every report it gives then
 * says so: "read_from" ("replica" or "primary"; absent without a replica)
 * and, from the replica, "stale_seconds_max": how long before the answer
 * the newest commit it may miss was acknowledged (the report's age
 * included). Both are borrowed and outlive la. */
qr_live_agreement_t *qr_live_agreement_new(uv_loop_t *loop, qr_pg_t *pg, qr_read_pool_t *read,
                                           int max_age_ms);

/* The report for project; fresh forces a refresh before answering. schema
 * is the project's label schema ({"fields": [...]}; NULL for a plain
 * project), read the first time a project is asked for (a schema never
 * changes): its report has an entry per field under "fields" (issue 15),
 * with the first choice or rating field's figures at the top level. A plain
 * project's report has today's keys and "fields": {"label": ...}.
 * extras adds what the cached report leaves out, each computed by a refresh
 * of its own, like fresh, and not kept in the cache: QR_LIVE_ITEMS the
 * report's "per_item" list (one entry per task, as qr_agreement_json(a, 1)
 * lists them); QR_LIVE_DAWID_SKENE a plain project's "dawid_skene" fit
 * (agreement_ds.h), which costs several times the rest of a refresh. */
#define QR_LIVE_ITEMS       1
#define QR_LIVE_DAWID_SKENE 2
void qr_live_agreement_get(qr_live_agreement_t *la, int64_t project, const json_t *schema,
                           int fresh, int extras, qr_live_agreement_cb cb, void *arg);

/* Frees every cache; call when no refresh is running (after the loop ran
 * dry, or from the broker's final free). */
void qr_live_agreement_free(qr_live_agreement_t *la);

#endif
