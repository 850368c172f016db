/*
 * committer.c - group commit of submitted annotations (see committer.h).
 */
#include "committer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define SUBMIT_BATCH_SQL                                                                           \
    "SELECT ord, annotation_id, outcome, extended FROM quorum_submit_batch($1::bigint[],"          \
    " $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::integer[],"            \
    " $8::bigint[], $9::bigint[])"

typedef struct item_s {
    qr_commit_row_t row; /* label and key owned */
    qr_commit_cb cb;
    void *arg;
    struct item_s *next;
} item_t;

typedef struct batch_s {
    qr_committer_t *c;
    item_t **items;
    int n;
} batch_t;

struct qr_committer_s {
    qr_pg_t *pg;
    int max_inflight, max_batch;
    int inflight;
    item_t *head, *tail; /* queued, oldest first */
    int queued;
    uint64_t batches, rows;
    void (*before)(void *), (*after)(void *); /* around a batch's callbacks */
    void *hook_arg;
    int held; /* qr_committer_hold depth: rows only queue while > 0 */
};

qr_committer_t *qr_committer_new(qr_pg_t *pg, int max_inflight, int max_batch)
{
    qr_committer_t *c = qr_xcalloc(1, sizeof *c);
    c->pg = pg;
    c->max_inflight = max_inflight < 1 ? 1 : max_inflight;
    c->max_batch = max_batch < 1 ? 1 : max_batch;
    return c;
}

void qr_committer_set_batch_hooks(qr_committer_t *c, void (*before)(void *arg),
                                  void (*after)(void *arg), void *arg)
{
    c->before = before;
    c->after = after;
    c->hook_arg = arg;
}

void qr_committer_free(qr_committer_t *c)
{
    free(c);
}

uint64_t qr_committer_batches(const qr_committer_t *c)
{
    return c->batches;
}

uint64_t qr_committer_rows(const qr_committer_t *c)
{
    return c->rows;
}

/* Appends s as one element of a PostgreSQL array literal: quoted, with
 * backslashes and quotes escaped; NULL as NULL. */
static void array_text(qr_buf_t *b, const char *s, int first)
{
    if (!first)
        qr_buf_append(b, ",", 1);
    if (!s) {
        qr_buf_appends(b, "NULL");
        return;
    }
    qr_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            qr_buf_append(b, "\\", 1);
        qr_buf_append(b, s, 1);
    }
    qr_buf_append(b, "\"", 1);
}

static void array_int(qr_buf_t *b, int64_t v, int null, int first)
{
    if (!first)
        qr_buf_append(b, ",", 1);
    if (null)
        qr_buf_appends(b, "NULL");
    else
        qr_buf_append_i64(b, v);
}

static void item_free(item_t *it)
{
    free((char *)it->row.label);
    free((char *)it->row.idempotency_key);
    free(it);
}

static void flush(qr_committer_t *c);

static void on_batch(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    batch_t *bt = arg;
    qr_committer_t *c = bt->c;
    c->inflight--;
    int ok = res && PQntuples(res) == bt->n;
    if (res && !ok)
        err = "quorum_submit_batch returned the wrong number of rows";
    if (ok)
        c->rows += (uint64_t)bt->n;
    if (c->before)
        c->before(c->hook_arg);
    for (int i = 0; i < bt->n; i++) {
        item_t *it = bt->items[i];
        if (!ok) {
            it->cb(QR_EIO, 0, NULL, 0, err ? err : "PostgreSQL failed", it->arg);
        } else {
            int ord = atoi(PQgetvalue(res, i, 0)) - 1;
            item_t *x = ord >= 0 && ord < bt->n ? bt->items[ord] : it;
            int64_t id = PQgetisnull(res, i, 1) ? 0 : strtoll(PQgetvalue(res, i, 1), NULL, 10);
            int extended = !strcmp(PQgetvalue(res, i, 3), "t");
            x->cb(0, id, PQgetvalue(res, i, 2), extended, NULL, x->arg);
        }
    }
    if (c->after)
        c->after(c->hook_arg);
    for (int i = 0; i < bt->n; i++)
        item_free(bt->items[i]);
    free(bt->items);
    free(bt);
    flush(c);
}

/* Sends queued items while fewer than max_inflight batches are out and
 * nobody holds the committer. */
static void flush(qr_committer_t *c)
{
    while (c->head && c->inflight < c->max_inflight && !c->held) {
        batch_t *bt = qr_xcalloc(1, sizeof *bt);
        bt->c = c;
        int n = c->queued < c->max_batch ? c->queued : c->max_batch;
        bt->items = qr_xcalloc((size_t)n, sizeof *bt->items);
        qr_buf_t a[9];
        for (int k = 0; k < 9; k++) {
            qr_buf_init(&a[k]);
            qr_buf_append(&a[k], "{", 1);
        }
        for (int i = 0; i < n; i++) {
            item_t *it = c->head;
            c->head = it->next;
            if (!c->head)
                c->tail = NULL;
            c->queued--;
            bt->items[bt->n++] = it;
            const qr_commit_row_t *r = &it->row;
            int first = i == 0;
            array_int(&a[0], r->task_id, 0, first);
            array_int(&a[1], r->project_id, 0, first);
            array_int(&a[2], r->annotator_id, 0, first);
            array_text(&a[3], r->label, first);
            array_int(&a[4], r->token, 0, first);
            array_text(&a[5], r->idempotency_key, first);
            array_int(&a[6], r->active_ms, r->active_ms < 0, first);
            array_int(&a[7], r->granted_ms, 0, first);
            array_int(&a[8], r->expires_ms, 0, first);
        }
        const char *params[9];
        for (int k = 0; k < 9; k++) {
            qr_buf_append(&a[k], "}", 1);
            params[k] = a[k].data;
        }
        c->inflight++;
        c->batches++;
        int rc = qr_pg_query(c->pg, SUBMIT_BATCH_SQL, 9, params, on_batch, bt);
        for (int k = 0; k < 9; k++)
            qr_buf_free(&a[k]);
        if (rc < 0) {
            /* The pool is closing: fail this batch now (no callback will come). */
            on_batch(NULL, "PostgreSQL pool closing", "", bt);
            return;
        }
    }
}

void qr_committer_add(qr_committer_t *c, const qr_commit_row_t *row, qr_commit_cb cb, void *arg)
{
    item_t *it = qr_xcalloc(1, sizeof *it);
    it->row = *row;
    it->row.label = qr_xstrdup(row->label);
    it->row.idempotency_key = row->idempotency_key ? qr_xstrdup(row->idempotency_key) : NULL;
    it->cb = cb;
    it->arg = arg;
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->queued++;
    flush(c);
}

void qr_committer_hold(qr_committer_t *c)
{
    c->held++;
}

void qr_committer_release(qr_committer_t *c)
{
    QR_ASSERT(c->held > 0);
    if (--c->held == 0)
        flush(c);
}
