/*
 * api_int.h - what the API's files share: the request context (ctx_t), the
 * route table's shape, the handlers the table names and the helpers every
 * handler uses. Each request is a small state machine driven by the
 * callbacks of PostgreSQL (pg.h) and the lease engine (lease.h); nothing in
 * the API blocks. SQL text lives in the store (store.h). Not for use outside
 * broker/api/.
 */
#ifndef QR_API_INT_H
#define QR_API_INT_H

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "protocol.h"
#include "agreement.h"
#include "broker_int.h"
#include "analytics.h"
#include "committer.h"
#include "events.h"
#include "live_agreement.h"
#include "import.h"
#include "import_queue.h"
#include "log.h"
#include "metrics.h"
#include "scrape.h"
#include "store.h"
#include "text_out.h"
#include "tls.h"
#include "util.h"
#include "validate.h"

/* The handlers the core calls (qr_api, api.h). */
void qr_api_head(qr_http_request_t *req, void *user);
void qr_api_handle(qr_http_request_t *req, void *user);
void qr_api_wake(qr_broker_t *b, int64_t project, int slots);

#define SUBMIT_GRACE_MS 30000
/* Who may hold leases: annotators, and managers and admins trying a project;
 * reviewers read, they do not label. */
#define QR_ROLE_LEASE (QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_ANNOTATOR)
/* Who may review (issue 16): reviewers, managers and admins. */
#define QR_ROLE_REVIEW (QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER)

/* JSON bodies larger than this are parsed in libuv's thread pool, not on
 * the loop (up to the JSON limit, 1 MiB by default: some 10 ms of parsing). */
#define PARSE_OFF_LOOP_BYTES (64 << 10)

typedef struct ctx_s ctx_t;
typedef struct wait_list_s wait_list_t; /* a project's long-poll waiters (api_leases.c) */
typedef void (*handler_fn)(ctx_t *c);

/* A body parsed in the thread pool: the result, or why it was refused. */
typedef struct parsed_s {
    uv_work_t work;
    ctx_t *ctx;
    json_t *body;
    qr_invalid_t why;
} parsed_t;

typedef struct route_s {
    const char *method;
    const char *pattern; /* '*' matches one path segment of digits */
    handler_fn fn;
    int roles;       /* QR_ROLE_* allowed; 0 = no authentication */
    int project_arg; /* 1 if the first '*' is a project id */
    int flags;       /* ROUTE_* */
} route_t;

/* Route flags. */
#define ROUTE_NOT_VENDOR 1 /* refused to an organization the project is shared with */
#define ROUTE_IMPORT     2 /* takes an import body (its own limit, parsed by the import queue) */
#define ROUTE_METRICS    4 /* open without a token under --metrics-public */
#define ROUTE_STREAM     8 /* a body streamed by its handler (h_predictions_stream) */

/* One request in flight. */
struct ctx_s {
    qr_broker_t *b;
    qr_http_request_t *req;
    const route_t *route;
    int64_t ids[2]; /* the path's numeric segments */
    qr_user_t user;
    qr_project_t *project;
    json_t *body; /* parsed JSON body, if any */
    char digest[65];
    struct parsed_s *parsed; /* a large body parsed in the thread pool, or NULL */
    const char *touch_sql;   /* QR_SQL_*_TOUCH for the credential being looked up */
    const char *touch_key;   /* its parameter (borrowed from req) */
    /* handler state */
    int max;
    int retried;
    int window_more;    /* lease: the refill just run says open tasks remain */
    int full_precision; /* numbers with 17 significant digits */
    int64_t task_id, granted_ms, expires_ms;
    char *label, *idem_key;
    /* submit: a labels object whose span fields still need checking against
     * the task's data (their code-point lengths), or NULL */
    json_t *labels;
    int64_t idem_annotation, idem_task, idem_token; /* submit: what the key names already */
    char *idem_label;    /* submit: the label the key's annotation holds */
    int64_t idem_active; /* submit: its active ms (-1: none) */
    int idem_extended;   /* submit: its commit gave its task one more annotator */
    int64_t active_ms;
    const char *list_key; /* on_json_list: the answer's one key */
    int64_t org_target;   /* users, tokens: the organization named in the body (0: the caller's) */
    int why;              /* lease: why the last grant stopped short (QR_LEASE_*) */
    int seeded;           /* lease: the counters were built since the last grant answered */
    int gold_loaded;      /* lease: the gold set was loaded since the last grant answered */
    int pause_checked;    /* lease: a pause Redis held but PostgreSQL did not was lifted */
    int gold;             /* submit: the lease is of a gold task */
    int gold_changed;     /* project update: a gold key changed */
    qr_project_t *then_project; /* project update: the answer, held while Redis catches up */
    void (*then)(ctx_t *c);     /* lease: what runs once project_refresh has the project */
    int64_t ntasks;
    /* resolve_user: the id the name stands for */
    int64_t user_resolved;
    qr_import_t imp;
    char *import_file, *import_key; /* import: the client's file name and key, or NULL */
    int allow_duplicates;           /* import: ?allow_duplicates=1 */
    int64_t external_dropped;       /* import: external ids held already, so not kept */
    char *external_id_key;          /* import: ?external_id_key=K, or NULL */
    char *annotations_as;           /* import: ?annotations_as=NAME, or NULL (`imported`) */
    int count_annotations;          /* import: ?count_annotations=1 */
    char delimiter;                 /* import: ?delimiter= (CSV), 0: detected */
    char import_sha256[65];         /* import: the body's digest */
    qr_strata_t strata;
    int64_t wait_until_ms; /* long poll deadline (monotonic), 0 = none */
    int waiting;           /* on its project's waiter list (api_leases.c) */
    uv_timer_t wait_timer;
    int timer_inited;
    ctx_t *wait_prev, *wait_next;
    wait_list_t *wait_list; /* the list it waits on */
    int handoff;            /* woken for freed slots: waiters to pass the wake on to if
                               this one gets nothing (qr_api_wake) */
    ctx_t *parent;          /* batch submit: the request this result belongs to */
    /* batch submit: takes this result's answer (status, j taken) instead
     * of the client */
    void (*child_done)(ctx_t *child, int status, json_t *j);
    int index;   /* batch submit: position in the parent's results */
    int pending; /* batch submit: results still running */
    json_t *out;
    struct export_s *exp; /* export: its state (api_export.c), or NULL */
    qr_read_t read;       /* a report: where it reads (report_pg), or QR_READ_NONE */
    uint64_t start_ns;    /* uv_hrtime() when the request was complete (metrics) */
    int timed;            /* 1 + the qr_metric_request_t to record, or 0 */
};

/* The route table (routes.c). */
extern const route_t qr_api_routes[];
extern const size_t qr_api_nroutes;

/* The handlers' short names for two checks of validate.h. */
#define role_of(s)    qr_validate_role(s)
#define valid_name(s) qr_validate_name(s)

/* api_common.c */
void ctx_free(ctx_t *c);
int respond_json(ctx_t *c, int status, json_t *j);
/* Answers c with JSON text already written (valid JSON, as respond_json
 * would send) and frees c; not for a child of a batch (c->parent), which
 * hands its parent a json_t. Returns as respond_json. */
int respond_json_text(ctx_t *c, int status, const char *s, size_t len);
void respond_error(ctx_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void respond_backend(ctx_t *c, const char *what, const char *err);
char *i64(int64_t v, char buf[24]);
/* A report's pool: the replica or the primary (qr_read_pool_choose), noted
 * in c->read for put_read_from. Only for reads that may lag the latest
 * commit (docs/DESIGN.md, "The reports' replica"). */
qr_pg_t *report_pg(ctx_t *c);
/* One statement of a report (cb's arg is c): where c->read says, chosen
 * first if it is not yet (report_pg); sent again to the primary, and
 * c->read changed, if the replica fails it (qr_read_query). Returns as
 * qr_pg_query. */
int report_query(ctx_t *c, int unprepared, const char *sql, int nparams, const char *const *params,
                 qr_pg_cb cb);
/* A report's answer o gets, when a replica is configured, "read_from"
 * ("replica" or "primary") and, read from the replica, "stale_seconds_max";
 * keys o holds already (a part read apart, such as the live agreement's)
 * are merged: "replica" and the larger bound win. */
void put_read_from(const ctx_t *c, json_t *o);

/* A fresh seed for an import's random choices (overlap draw, random order):
 * from the system's random source, else the clock. */
uint64_t import_seed(void);
void respond_invalid(ctx_t *c, const qr_invalid_t *why);

/* A span-carrying value (c->labels) checked against its task's text: res
 * is QR_SQL_TASK_TEXT_LENGTHS's answer (key, JSON type, length in code
 * points). 0 when it fits; else -1, answered 422 as a submit's refusal. */
int check_text_lengths(ctx_t *c, const PGresult *res);
/* Asks QR_SQL_TASK_TEXT_LENGTHS for task (its id as text) and the data keys
 * c->labels' span fields need; cb(arg = c) gets the answer for
 * check_text_lengths. Returns qr_pg_query's code. */
int query_text_lengths(ctx_t *c, const char *task, qr_pg_cb cb);
int parse_body(ctx_t *c, int allow_empty);
int int_field(ctx_t *c, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out);
const char *query_param(const char *query, const char *key, char *buf, size_t len);
const char *role_name(int role);
void record_event(ctx_t *c, qr_event_kind_t kind, int64_t task, int64_t token, int64_t at_ms,
                  int64_t granted_ms, const char *label, const char *reason);

/* api_ops.c */
void h_healthz(ctx_t *c);
void h_openapi(ctx_t *c);
/* The OpenAPI document (openapi.c), or NULL and why in err. */
json_t *qr_api_openapi(char *err, size_t errlen);

/* Answers a request for /ui or a page under /ui/ from its head (api_ui.c)
 * and returns 1; 0 when the path is not the pages' (the API's, then). */
int qr_api_ui_serve(qr_http_request_t *req);
void h_metrics(ctx_t *c);
void h_readyz(ctx_t *c);

/* api_accounts.c */
void h_whoami(ctx_t *c);
void h_user_create(ctx_t *c);
void h_token_create(ctx_t *c);
void h_token_list(ctx_t *c);
void h_token_revoke(ctx_t *c);
void h_cert_add(ctx_t *c);
void h_cert_list(ctx_t *c);
void h_cert_revoke(ctx_t *c);
void h_org_create(ctx_t *c);
void on_json_list(const PGresult *res, const char *err, const char *sqlstate, void *arg);
void h_org_list(ctx_t *c);

/* api_projects.c */
qr_project_t *cache_project_row(ctx_t *c, const PGresult *res);
void h_project_create(ctx_t *c);
void h_project_get(ctx_t *c);
qr_project_t *cache_project_result(ctx_t *c, const PGresult *res, const char *err);
void h_project_pause(ctx_t *c);
void h_annotator_reinstate(ctx_t *c);
void h_share_put(ctx_t *c);
void h_share_delete(ctx_t *c);
void h_share_list(ctx_t *c);

/* api_manage.c */
void h_project_list(ctx_t *c);
void h_project_update(ctx_t *c);
void h_project_archive(ctx_t *c);
void h_project_delete(ctx_t *c);
void h_user_list(ctx_t *c);
/* Looks up the user name stands for (a name, or name@organization) among
 * those the caller may see on c->project; sets c->user_resolved and runs
 * then(c), or answers 422 (no such user; ambiguous_user, naming each) or
 * 503. Returns -1 when it answered before returning. c->label holds the
 * name meanwhile. */
int resolve_user(ctx_t *c, const char *name, void (*then)(ctx_t *c));

/* api_tasks.c */
void h_import(ctx_t *c);
int import_params(ctx_t *c);
void respond_duplicate(ctx_t *c, long long dups, long long earlier, int same_file);

/* api_import_stream.c: takes an import whose body can stream (a policy
 * that needs no whole batch, no allow_duplicates) from its head: 0 (it answers), or 1
 * (the whole-body import, h_import, takes it). */
int h_import_stream(ctx_t *c);
void h_import_list(ctx_t *c);

/* api_stream.c: a body streamed into a PostgreSQL COPY as it arrives (an
 * import, a predictions update). The owner's struct starts with it; the
 * owner fills c, b, what, pause_at, submit and maybe_free, then calls
 * stream_open and stream_watch. */
typedef struct body_stream_s body_stream_t;
struct body_stream_s {
    ctx_t *c; /* NULL once answered */
    qr_broker_t *b;
    const char *what;   /* "import": the words of a refusal */
    qr_pg_copy_t *copy; /* until its callback ran */
    int copy_full;      /* qr_pg_copy_put said full: waiting for its drain */
    qr_buf_t in;        /* received, not yet in a batch */
    size_t pause_at;    /* the client's reading pauses while in holds this much */
    int64_t received;   /* bytes of the body so far */
    int working;        /* a batch is in the thread pool */
    int body_done;      /* the body ended */
    int last_sent;      /* the batch with the body's end was handed to the pool */
    int finished;       /* qr_pg_copy_finish was called */
    int paused;         /* the client's reading is paused */
    int answered;       /* the client has its answer, or is gone */
    /* Hands what is due to the pool as the next batch (not while working). */
    void (*submit)(body_stream_t *s);
    /* Frees the owner when nothing of it is pending any more. */
    void (*maybe_free)(body_stream_t *s);
};
/* Takes the request's context out of the stream for an answer: NULL when
 * answered already. */
ctx_t *stream_take_ctx(body_stream_t *s);
/* Fails the COPY (rolled back: nothing changes) unless its end was sent. */
void stream_abandon(body_stream_t *s, const char *why);
void stream_fail_backend(body_stream_t *s, const char *what, const char *err);
/* Submits what is due; pauses and resumes the client's reading. */
void stream_pump(body_stream_t *s);
/* Opens the COPY (after pre_sql, unless NULL) in a transaction of its own;
 * once it is in progress the body is let in. on_done(arg = s) gets its
 * end. -1: the pool is closing (nothing was opened). */
int stream_open(body_stream_t *s, const char *pre_sql, const char *copy_sql, qr_pg_cb on_done);
/* A client gone before the body's end changes nothing: the COPY is
 * abandoned and the context answered to nobody. */
void stream_watch(body_stream_t *s);

/* api_predictions.c: PUT .../predictions, streamed from its head (the
 * route's ROUTE_STREAM); h_predictions, its table entry, is never reached. */
void h_predictions_stream(ctx_t *c);
void h_predictions(ctx_t *c);

/* api_leases.c */
void h_lease(ctx_t *c);
void h_release(ctx_t *c);
void h_undo(ctx_t *c);
void h_heartbeat(ctx_t *c);

/* api_reports.c */
void h_progress(ctx_t *c);
void h_report(ctx_t *c);
void h_agreement(ctx_t *c);
/* api_task.c */
void h_task_get(ctx_t *c);
void h_throughput(ctx_t *c);

/* api_export.c */
void h_export(ctx_t *c);
void export_free(ctx_t *c);
/* api_webhooks.c */
void h_webhook_create(ctx_t *c);
void h_webhook_list(ctx_t *c);
void h_webhook_delete(ctx_t *c);
void h_webhook_deliveries(ctx_t *c);

/* api_review.c */
void h_review_lease(ctx_t *c);
void h_review_submit(ctx_t *c);
void h_review_heartbeat(ctx_t *c);
void h_review_release(ctx_t *c);
void h_review_select(ctx_t *c);

/* api_rounds.c */
void h_round_open(ctx_t *c);
void h_round_list(ctx_t *c);

/* api_submit.c */
void h_submit(ctx_t *c);
void h_batch_submit(ctx_t *c);

#endif
