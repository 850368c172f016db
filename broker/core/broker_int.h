/*
 * broker_int.h - what the core (broker.c: lifecycle, caches, refill,
 * reaper; scrape.c) offers the API handlers (broker/api/): the caller and
 * project types, the caches, the wake-ups across brokers. Not for use
 * below the API.
 */
#ifndef QR_BROKER_INT_H
#define QR_BROKER_INT_H

#include <jansson.h>
#include <stdio.h>

#include "broker.h"
#include "label_schema.h"
#include "notify.h"

enum {
    QR_ROLE_ADMIN = 1,
    QR_ROLE_MANAGER = 2,
    QR_ROLE_REVIEWER = 4,
    QR_ROLE_ANNOTATOR = 8,
    QR_ROLE_ANY = 15,
};

/* The caller, resolved from the bearer token. */
typedef struct qr_user_s {
    int64_t id;
    int64_t org_id;
    int role; /* one QR_ROLE_* bit */
    char name[201];
    int64_t expires_ms; /* when the token used expires (epoch ms), 0 = never */
} qr_user_t;

/* An organization a project is shared with (a vendor), and the bounds of
 * the share, enforced at lease time (lease.h). */
typedef struct qr_share_s {
    int64_t org_id;
    int64_t quota; /* annotations of the vendor's crew (submitted + live leases); -1: none */
    int64_t cap;   /* tasks per annotator of the vendor (submitted + live leases); -1: none */
} qr_share_t;

/* A project as the hot paths need it (cached for cache_ttl_ms). */
typedef struct qr_project_s {
    int64_t id;
    int64_t org_id;
    char *name;
    char **labels;
    int nlabels;
    int annotations_per_task;
    int lease_ttl_ms;
    double overlap_fraction; /* share of each import that gets overlap_annotations */
    int overlap_annotations;
    int overlap_first;             /* overlap tasks served first */
    char *sampling;                /* sequential, random, uncertainty, stratified */
    char *stratify_field;          /* NULL unless stratified */
    qr_share_t *shares;            /* the vendors it is shared with (nshares of them) */
    int nshares;                   /* 0: the project is its organization's alone */
    char *paused_at;               /* when it was paused (PostgreSQL's text), NULL: it runs */
    char *archived_at;             /* when it was archived (PostgreSQL's text), NULL: in use */
    int max_leases;                /* live leases per annotator; 0: the broker's default */
    double auto_accept_confidence; /* NAN: no prediction is auto-accepted */
    double auto_accept_audit;      /* the share of those audited by humans */
    /* Dynamic overlap (sql/0027): overlap_min to overlap_max annotations a
     * task, one more while support < overlap_threshold; 0, 0, NAN: off. */
    int overlap_min, overlap_max;
    double overlap_threshold;
    /* What the threshold is compared with (sql/0034): "support" or
     * "confidence"; the annotator accuracy assumed without gold answers. */
    char overlap_measure[16];
    double overlap_prior_accuracy;
    int show_predictions;     /* each lease carries its task's prediction (sql/0030) */
    double gold_rate;         /* share of gold leases after onboarding (issue 16) */
    int gold_onboarding;      /* the first gold leases of each annotator */
    double gold_min_accuracy; /* NAN: nobody is paused */
    int gold_min_count;       /* gold answers judged before a pause */
    char review_mode[16];     /* none, all, share, low_agreement (sql/0031) */
    double review_share, review_agreement_threshold;
    /* The label schema submissions are checked against: the project's own
     * (sql/0025), or for a plain project the one its labels imply
     * (schema->implied: one choice field "label", stored as the label). */
    qr_label_schema_t *schema;
    int64_t loaded_ms; /* monotonic */
    int refs;          /* requests using it; freed when 0 and evicted */
    struct qr_project_s *next;
} qr_project_t;

typedef struct token_entry_s token_entry_t;
typedef struct rate_entry_s rate_entry_t;

struct qr_broker_s {
    uv_loop_t *loop;
    qr_broker_config_t cfg;
    qr_pg_t *pg;
    qr_read_pool_t *read; /* the reports' replica (--pg-read), or NULL */
    qr_redis_t *redis;
    qr_lease_engine_t *lease;
    qr_http_server_t *http;
    qr_broker_api_t api; /* the API's handlers and wake (quorumd_main.c) */
    qr_notify_t *notify;
    struct qr_events_s *events;            /* lease event log, batched */
    struct qr_committer_s *committer;      /* group commit of annotations */
    struct qr_live_agreement_s *agreement; /* warm agreement reports */
    struct qr_import_queue_s *imports;     /* import parses, off the loop (import_queue.h) */
    struct qr_webhook_s *webhooks;         /* the webhook dispatcher, NULL when off */
    uv_timer_t reaper;
    token_entry_t *tokens[256];   /* auth cache by token digest */
    qr_project_t *projects[256];  /* project cache by id */
    rate_entry_t *rates[256];     /* request rate buckets by token digest */
    rate_entry_t *authfails[256]; /* failed-authentication buckets by client address */
    void *api_waiters;            /* long-poll lease requests by project (api_leases.c) */
    uint64_t instance;            /* random id of this broker in pub/sub messages */
    char deployment[37];          /* the deployment's id (sql/0016), "" until known */
    char deployment_header[80];   /* "Quorum-Deployment: <id>\r\n" once known, else "" */
    int deployment_asked;         /* the query for it is under way */
    int deployment_warned;        /* why it is not known was logged */
    int stopping;                 /* qr_broker_stop was called */
    int draining;                 /* qr_broker_drain was called */
    uv_timer_t drain_timer;       /* the drain's progress, every DRAIN_TICK_MS */
    int drain_timer_open;         /* it is initialised and not yet closed */
    int64_t drain_start_ms;       /* monotonic */
    int64_t drain_listen_ms;      /* how long the drain still accepts connections */
    int64_t readyz_ms;            /* the last GET /readyz (monotonic), 0: none yet */
    int background;               /* work started after an answer, not done yet */
    int closing;                  /* handles still to close before freeing */
    void (*stop_cb)(void *);
    void *stop_arg;
};

/* Work a route starts after its answer (the deletion of superseded
 * predictions) begins and ends: a drain waits for it as for a client,
 * within its deadline. */
void qr_broker_background_begin(qr_broker_t *b);
void qr_broker_background_end(qr_broker_t *b);

/* Work became ready in project (an import, a refill, a resume): wakes every
 * long poll of it, this broker's now and every other broker's through
 * Redis pub/sub. */
void qr_broker_work_ready(qr_broker_t *b, int64_t project);

/* slots leases of project ended and their slots are back in the queue (a
 * release, a skip, expiries): wakes that many long polls of it on this
 * broker now and on every other broker through pub/sub, not all of them. */
void qr_broker_slots_freed(qr_broker_t *b, int64_t project, int slots);

/* A token was revoked: every broker forgets its cached tokens now (through
 * Redis pub/sub), so the revocation holds everywhere at once. */
void qr_broker_token_revoked(qr_broker_t *b);

/* A project's shares or pause changed: every other broker drops its cached copy now
 * (through Redis pub/sub; a lost message leaves the copy until it expires,
 * cache_ttl_ms). The caller refreshes this broker's copy itself. */
void qr_broker_project_changed(qr_broker_t *b, int64_t project);

/* Token cache (broker.c). Returns 1 and fills u when cached and fresh. */
int qr_auth_cache_get(qr_broker_t *b, const char *digest, qr_user_t *u);
void qr_auth_cache_put(qr_broker_t *b, const char *digest, const qr_user_t *u);
/* Takes one request from the token's bucket: 1 if allowed; 0 if over the
 * limit, with *retry_after_ms until the next request would be. */
int qr_rate_take(qr_broker_t *b, const char *digest, int64_t *retry_after_ms);

/* Failed authentications per client address (peer "ip:port"): allowed
 * says whether the address may try another unknown token now (else
 * *retry_after_ms); note counts one failure. */
int qr_authfail_allowed(qr_broker_t *b, const char *peer, int64_t *retry_after_ms);
void qr_authfail_note(qr_broker_t *b, const char *peer);

/* Forgets every cached token (after a revocation on any broker). */
void qr_auth_cache_clear(qr_broker_t *b);

/* Project cache (broker.c). get returns a referenced project or NULL;
 * put takes ownership; release drops a reference. */
qr_project_t *qr_project_cache_get(qr_broker_t *b, int64_t id);
void qr_project_cache_put(qr_broker_t *b, qr_project_t *p);
/* Forgets the cached copy of project id, if any. */
void qr_project_cache_drop(qr_broker_t *b, int64_t id);
void qr_project_release(qr_project_t *p);
/* Builds a project from a JSON object (id, org_id, name, labels, schema,
 * ...); NULL when it is not one (a schema that does not parse). */
qr_project_t *qr_project_from_json(json_t *o);
json_t *qr_project_to_json(const qr_project_t *p);

/* Loads more of a project's tasks from PostgreSQL into its Redis window
 * (one refill at a time across all brokers); cb(more, arg) runs when done,
 * whatever happened (it may be NULL). more is 1 when open tasks are known
 * to remain (this refill loaded some, or another broker's refill of a window
 * not exhausted is under way): the project is not complete, and nothing
 * needs to scan PostgreSQL to say so. 0 says nothing either way. */
void qr_window_refill(qr_broker_t *b, int64_t project, void (*cb)(int more, void *arg), void *arg);

/* After tasks' priorities or auto-accept changed in PostgreSQL (a
 * predictions update): the tasks of the Redis window take their new
 * priorities (those completed leave it), and the window reopens and refills
 * from the start of the new order, so the next grants follow it at once.
 * Touches the window's tasks only, not the project's. cb(arg) runs when
 * done, whatever happened (Redis down: the next refill catches up). */
void qr_window_refresh(qr_broker_t *b, int64_t project, void (*cb)(void *arg), void *arg);

#endif
