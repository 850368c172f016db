/*
 * api.c - the v1 JSON API (docs/API.md): routing, authentication, role
 * checks and the handlers. Each request is a small state machine driven by
 * the callbacks of PostgreSQL (pg.h) and the lease engine (lease.h); nothing
 * here blocks. SQL text lives in store.h.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"

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

void qr_api_head(qr_http_request_t *req, void *user);
void qr_api_handle(qr_http_request_t *req, void *user);
void qr_api_wake(qr_broker_t *b, int64_t project, int slots);

#define SUBMIT_GRACE_MS 30000
/* Who may hold leases: annotators, and managers and admins trying a project;
 * reviewers read, they do not label. */
#define QR_ROLE_LEASE (QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_ANNOTATOR)

/* JSON bodies larger than this are parsed in libuv's thread pool, not on
 * the loop (up to the JSON limit, 1 MiB by default: some 10 ms of parsing). */
#define PARSE_OFF_LOOP_BYTES (64 << 10)

typedef struct ctx_s ctx_t;
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
} route_t;

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
    int full_precision; /* numbers with 17 significant digits */
    int64_t task_id, granted_ms, expires_ms;
    char *label, *idem_key;
    int64_t idem_annotation, idem_task, idem_token; /* submit: what the key names already */
    int64_t active_ms;
    int64_t org_target; /* users, tokens: the organization named in the body (0: the caller's) */
    int why;            /* lease: why the last grant stopped short (QR_LEASE_*) */
    int seeded;         /* lease: the counters were built since the last grant answered */
    void (*then)(ctx_t *c); /* lease: what runs once project_refresh has the project */
    int64_t ntasks;
    qr_import_t imp;
    qr_strata_t strata;
    int64_t wait_until_ms; /* long poll deadline (monotonic), 0 = none */
    int waiting;           /* on the broker's waiter list */
    uv_timer_t wait_timer;
    int timer_inited;
    ctx_t *wait_prev, *wait_next;
    int handoff;   /* woken for freed slots: waiters to pass the wake on to if
                      this one gets nothing (qr_api_wake) */
    ctx_t *parent; /* batch submit: the request this result belongs to */
    int index;     /* batch submit: position in the parent's results */
    int pending;   /* batch submit: results still running */
    json_t *out;
    uint64_t start_ns; /* uv_hrtime() when the request was complete (metrics) */
    int timed;         /* 1 + the qr_metric_request_t to record, or 0 */
};

/* --- responses ----------------------------------------------------------------- */

static void on_ctx_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ctx_free(ctx_t *c)
{
    qr_import_free(&c->imp);
    for (size_t i = 0; i < c->strata.n; i++)
        free(c->strata.names[i]);
    free(c->strata.names);
    free(c->strata.counts);
    qr_project_release(c->project);
    if (c->parsed) {
        json_decref(c->parsed->body);
        free(c->parsed);
    }
    json_decref(c->body);
    json_decref(c->out);
    free(c->label);
    free(c->idem_key);
    if (c->timer_inited) {
        c->wait_timer.data = c;
        uv_close((uv_handle_t *)&c->wait_timer, on_ctx_timer_closed);
        return;
    }
    free(c);
}

static void batch_result(ctx_t *child, int status, json_t *j);

/* Answers c with j (taken) and frees c. Returns qr_http_respond's code: 0,
 * or negative when the client was gone and the answer went nowhere. */
static int respond_json(ctx_t *c, int status, json_t *j)
{
    if (c->parent) {
        batch_result(c, status, j);
        return 0;
    }
    if (c->timed)
        qr_metrics_request((qr_metric_request_t)(c->timed - 1), uv_hrtime() - c->start_ns, status);
    /* 12 significant digits keep rounded figures readable (891.21, not
     * 891.21000000000004); the agreement report keeps all 17, so it equals
     * the offline computation to the last bit. */
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(c->full_precision ? 17 : 12));
    json_decref(j);
    int rc = qr_http_respond(c->req, status, "application/json", s, s ? strlen(s) : 0, NULL);
    free(s);
    ctx_free(c);
    return rc;
}

static void respond_error(ctx_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void respond_error(ctx_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qr_validate_scrub(msg); /* else json_pack fails on a cut character: an empty answer */
    respond_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

static void respond_backend(ctx_t *c, const char *what, const char *err)
{
    qr_warn("%s %s: %s failed: %s", c->req->method, c->req->path, what, err ? err : "?");
    respond_error(c, 503, "unavailable", "%s is not available right now; retry", what);
}

/* --- helpers ---------------------------------------------------------------------- */

static char *i64(int64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

/* Responds with why validate.h refused a body. */
static void respond_invalid(ctx_t *c, const qr_invalid_t *why)
{
    respond_error(c, why->status, why->code, "%s", why->message);
}

/* Parses the body as a JSON object (qr_validate_body); an empty body is {}
 * when allow_empty. Responds 400 and returns -1 on failure. */
static int parse_body(ctx_t *c, int allow_empty)
{
    qr_invalid_t why;
    if (c->parsed) {
        /* Parsed off the loop already (qr_api_handle); never empty. */
        if (c->parsed->body) {
            c->body = json_incref(c->parsed->body);
            return 0;
        }
        respond_invalid(c, &c->parsed->why);
        return -1;
    }
    c->body = qr_validate_body(c->req->body, c->req->body_len, allow_empty, &why);
    if (!c->body) {
        respond_invalid(c, &why);
        return -1;
    }
    return 0;
}

/* An optional integer field of the body in [lo, hi] (qr_validate_int);
 * responds 422 and returns -1 on a wrong type or range. For handlers whose
 * body has no validator in validate.h yet (hence `unused` when none has). */
__attribute__((unused)) static int int_field(ctx_t *c, const char *key, int64_t lo, int64_t hi,
                                             int64_t dflt, int64_t *out)
{
    qr_invalid_t why;
    if (qr_validate_int(c->body, key, lo, hi, dflt, out, &why) < 0) {
        respond_invalid(c, &why);
        return -1;
    }
    return 0;
}

static const char *role_name(int role)
{
    switch (role) {
    case QR_ROLE_ADMIN:
        return "admin";
    case QR_ROLE_MANAGER:
        return "manager";
    case QR_ROLE_REVIEWER:
        return "reviewer";
    default:
        return "annotator";
    }
}

/* The handlers' short names for two checks of validate.h. */
#define role_of(s)    qr_validate_role(s)
#define valid_name(s) qr_validate_name(s)

/* Records one lease event for the throughput log (batched, off the path). */
static void record(ctx_t *c, qr_event_kind_t kind, int64_t task, int64_t token, int64_t at_ms,
                   int64_t granted_ms, const char *label, const char *reason)
{
    qr_event_t ev = {.kind = kind,
                     .project_id = c->project->id,
                     .task_id = task,
                     .annotator_id = c->user.id,
                     .token = token,
                     .at_ms = at_ms,
                     .granted_ms = granted_ms,
                     .active_ms = kind == QR_EV_SUBMIT ? c->active_ms : -1,
                     .label = label,
                     .reason = reason};
    qr_events_add(c->b->events, &ev);
}

/* --- GET /healthz ---------------------------------------------------------------------- */

static void h_healthz(ctx_t *c)
{
    respond_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

/* --- "organization" in a user or token body ----------------------------------------------- */

static void on_org_resolved(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, "not_found", "no organization \"%s\" you may add users to",
                      json_string_value(json_object_get(c->body, "organization")));
        return;
    }
    c->org_target = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    /* The handler runs again from the start, now knowing the organization. */
    json_decref(c->body);
    c->body = NULL;
    c->route->fn(c);
}

/* A user or token body may name the organization to make the user in
 * ("organization": NAME): admins only, their own organization or, for an
 * owner organization's admin, any (so a vendor gets its first manager).
 * Returns 0 to go on (c->org_target set, or none named), 1 when it has
 * responded or resolves the name and runs the handler again. */
static int target_org(ctx_t *c)
{
    json_t *v = json_object_get(c->body, "organization");
    if (c->org_target || !v || json_is_null(v))
        return 0;
    if (!valid_name(json_string_value(v))) {
        respond_error(
            c, 422, "invalid",
            "organization must be a string of 1 to 200 characters and no control characters");
        return 1;
    }
    if (c->user.role != QR_ROLE_ADMIN) {
        respond_error(c, 403, "forbidden", "only an admin may name an organization");
        return 1;
    }
    char org[24];
    const char *params[] = {i64(c->user.org_id, org), json_string_value(v)};
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_RESOLVE, 2, params, on_org_resolved, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
    return 1;
}

static int64_t org_of(const ctx_t *c)
{
    return c->org_target ? c->org_target : c->user.org_id;
}

/* --- POST /v1/users -------------------------------------------------------------------- */

static void on_user_created(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        /* Never a token for an existing user here: that is POST /v1/tokens,
         * which checks whom the caller may act for. */
        respond_error(c, 409, "user_exists", "a user named \"%s\" exists in the organization",
                      json_string_value(json_object_get(c->out, "name")));
        return;
    }
    json_t *o = c->out;
    c->out = NULL;
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(o, "role", json_string(PQgetvalue(res, 0, 1)));
    respond_json(c, 201, o);
}

static void h_user_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0 || target_org(c))
        return;
    const char *name;
    int r;
    qr_invalid_t why;
    if (qr_validate_user_body(c->body, c->user.role, &name, &r, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    const char *role = role_name(r);
    char token[3 + 64 + 1] = "qr_";
    if (qr_random_hex(32, token + 3) < 0) {
        respond_error(c, 503, "unavailable", "no randomness for a token");
        return;
    }
    char digest[65], prefix[12], org[24];
    qr_sha256_hex(token, strlen(token), digest);
    snprintf(prefix, sizeof prefix, "%.10s", token);
    c->out = json_pack("{s:s s:s}", "name", name, "token", token);
    const char *params[] = {i64(org_of(c), org), name, role, digest, prefix};
    if (qr_pg_query(c->b->pg, QR_SQL_USER_CREATE, 5, params, on_user_created, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- tokens: POST /v1/tokens, GET /v1/tokens, DELETE /v1/tokens/{id} ----------------------- */

static void on_token_created(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "the user changed meanwhile");
        return;
    }
    const char *user = json_string_value(json_object_get(c->out, "user"));
    if (PQgetisnull(res, 0, 3)) {
        /* An existing user the caller may not act for is refused before its
         * role is compared, so the answer tells nothing about that user. */
        int may = qr_validate_role_rank(qr_validate_role(PQgetvalue(res, 0, 1))) <=
                      qr_validate_role_rank(c->user.role) &&
                  org_of(c) == c->user.org_id;
        if (!may)
            respond_error(c, 403, "forbidden",
                          "you may not issue a token for the existing user \"%s\"", user);
        else
            respond_error(c, 409, "conflict", "user \"%s\" exists with another role", user);
        return;
    }
    json_t *o = c->out;
    c->out = NULL;
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, 0, 3), NULL, 10)));
    json_object_set_new(o, "user_id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(o, "expires_at",
                        PQgetisnull(res, 0, 4) ? json_null() : json_string(PQgetvalue(res, 0, 4)));
    respond_json(c, 201, o);
}

static void h_token_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0 || target_org(c))
        return;
    qr_token_body_t tb;
    qr_invalid_t why;
    if (qr_validate_token_body(c->body, c->user.role, &tb, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    const char *user = tb.user, *role = tb.role;
    int64_t lifetime = tb.lifetime_s;
    char token[3 + 64 + 1] = "qr_";
    if (qr_random_hex(32, token + 3) < 0) {
        respond_error(c, 503, "unavailable", "no randomness for a token");
        return;
    }
    char digest[65], prefix[12], org[24], secs[24];
    qr_sha256_hex(token, strlen(token), digest);
    snprintf(prefix, sizeof prefix, "%.10s", token);
    c->out = json_pack("{s:s s:s s:s s:s}", "user", user, "role", role, "token", token, "prefix",
                       prefix);
    char caller_org[24];
    const char *params[] = {i64(org_of(c), org),
                            user,
                            role,
                            digest,
                            prefix,
                            lifetime ? i64(lifetime, secs) : NULL,
                            i64(c->user.org_id, caller_org),
                            role_name(c->user.role)};
    if (qr_pg_query(c->b->pg, QR_SQL_TOKEN_CREATE, 8, params, on_token_created, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_tokens_listed(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad token list");
        return;
    }
    respond_json(c, 200, json_pack("{s:o}", "tokens", o));
}

static void h_token_list(ctx_t *c)
{
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_TOKEN_LIST, 1, params, on_tokens_listed, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_token_revoked(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, "not_found", "no live token %" PRId64, c->ids[0]);
        return;
    }
    qr_broker_token_revoked(c->b);
    respond_json(c, 200, json_pack("{sI s:b}", "id", (json_int_t)c->ids[0], "revoked", 1));
}

static void h_token_revoke(ctx_t *c)
{
    char id[24], org[24];
    const char *params[] = {i64(c->ids[0], id), i64(c->user.org_id, org), role_name(c->user.role)};
    if (qr_pg_query(c->b->pg, QR_SQL_TOKEN_REVOKE, 3, params, on_token_revoked, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- client certificates: POST /v1/certs, GET /v1/certs, DELETE /v1/certs/{id} ----------- */

#define MAX_CERT_PEM_BYTES 16384

static void on_cert_added(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    const char *user = json_string_value(json_object_get(c->body, "user"));
    if (!res && sqlstate && !strcmp(sqlstate, "23505")) {
        respond_error(c, 409, "conflict", "this certificate is mapped already (see cert list)");
        return;
    }
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, "not_found", "no user \"%s\" in your organization", user);
        return;
    }
    if (PQgetisnull(res, 0, 2)) {
        respond_error(c, 403, "forbidden", "only an admin may map a certificate to an admin");
        return;
    }
    json_t *o = c->out;
    c->out = NULL;
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
    json_object_set_new(o, "user_id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(o, "role", json_string(PQgetvalue(res, 0, 1)));
    respond_json(c, 201, o);
}

/* Maps a client certificate (PEM, the certificate itself, not its key) to
 * a user of the caller's organization: requests over TLS with that
 * certificate and no bearer token then act as that user. */
static void h_cert_add(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    const char *user = json_string_value(json_object_get(c->body, "user"));
    json_t *pem = json_object_get(c->body, "certificate");
    if (!valid_name(user)) {
        respond_error(c, 422, "invalid",
                      "user must be a string of 1 to 200 characters and no control characters");
        return;
    }
    if (!json_is_string(pem) || json_string_length(pem) > MAX_CERT_PEM_BYTES) {
        respond_error(c, 422, "invalid",
                      "certificate must be a PEM certificate of at most %d bytes",
                      MAX_CERT_PEM_BYTES);
        return;
    }
    char sha[65], subject[1001], why[300], secs[24], org[24], when[32];
    int64_t not_after;
    if (qr_tls_cert_info(json_string_value(pem), json_string_length(pem), sha, subject,
                         sizeof subject, &not_after, why, sizeof why) < 0) {
        respond_error(c, 422, "invalid", "certificate: %s", why);
        return;
    }
    if (not_after <= qr_now_ms() / 1000) {
        respond_error(c, 422, "invalid", "the certificate has expired");
        return;
    }
    time_t t = (time_t)not_after;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    c->out = json_pack("{s:s s:s s:s s:s}", "user", user, "sha256", sha, "subject", subject,
                       "not_after", when);
    if (!c->out) {
        respond_error(c, 422, "invalid", "certificate: the subject is not UTF-8");
        return;
    }
    const char *params[] = {i64(c->user.org_id, org), user, sha, subject, i64(not_after, secs),
                            role_name(c->user.role)};
    if (qr_pg_query(c->b->pg, QR_SQL_CERT_ADD, 6, params, on_cert_added, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_certs_listed(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad certificate list");
        return;
    }
    respond_json(c, 200, json_pack("{s:o}", "certificates", o));
}

static void h_cert_list(ctx_t *c)
{
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_CERT_LIST, 1, params, on_certs_listed, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_cert_revoked(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, "not_found", "no live certificate mapping %" PRId64, c->ids[0]);
        return;
    }
    qr_broker_token_revoked(c->b); /* every broker forgets its cached credentials */
    respond_json(c, 200, json_pack("{sI s:b}", "id", (json_int_t)c->ids[0], "revoked", 1));
}

static void h_cert_revoke(ctx_t *c)
{
    char id[24], org[24];
    const char *params[] = {i64(c->ids[0], id), i64(c->user.org_id, org), role_name(c->user.role)};
    if (qr_pg_query(c->b->pg, QR_SQL_CERT_REVOKE, 3, params, on_cert_revoked, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects, GET /v1/projects/{id} ------------------------------------------ */

/* Caches the project row (JSON text) of a PostgreSQL answer and returns
 * it referenced, or responds 503 and returns NULL. */
static qr_project_t *cache_project_row(ctx_t *c, const PGresult *res)
{
    json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    qr_project_t *p = o ? qr_project_from_json(o) : NULL;
    json_decref(o);
    if (!p) {
        respond_backend(c, "PostgreSQL", "bad project row");
        return NULL;
    }
    qr_project_cache_put(c->b, p);
    return p;
}

static void on_project_created(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    qr_project_t *p = cache_project_row(c, res);
    if (!p)
        return;
    respond_json(c, 201, qr_project_to_json(p));
    qr_project_release(p);
}

static void h_project_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    qr_project_body_t pb;
    qr_invalid_t why;
    if (qr_validate_project_body(c->body, &pb, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    const char *name = pb.name, *sampling = pb.sampling, *field = pb.stratify_field;
    json_t *labels = pb.labels;
    int64_t apt = pb.annotations_per_task, ttl = pb.lease_ttl_ms, ov_ann = pb.overlap_annotations;
    double fraction = pb.overlap_fraction;
    char *labels_text = json_dumps(labels, JSON_COMPACT);
    char org[24], user[24], a[24], t[24], fr[40], oa[24], ml[24];
    snprintf(fr, sizeof fr, "%.17g", fraction);
    const char *params[] = {i64(c->user.org_id, org),
                            name,
                            labels_text,
                            i64(apt, a),
                            i64(ttl, t),
                            i64(c->user.id, user),
                            fr,
                            i64(ov_ann, oa),
                            pb.overlap_first ? "true" : "false",
                            sampling,
                            field,
                            pb.max_leases_per_annotator ? i64(pb.max_leases_per_annotator, ml)
                                                        : NULL};
    int rc = qr_pg_query(c->b->pg, QR_SQL_PROJECT_CREATE, 12, params, on_project_created, c);
    free(labels_text);
    if (rc < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void h_project_get(ctx_t *c)
{
    respond_json(c, 200, qr_project_to_json(c->project));
}

/* --- POST /v1/projects/{id}/pause and /resume ------------------------------------------------ */

/* The project in res (one row of QR_SQL_PROJECT_JSON), cached and referenced;
 * NULL, answered 503, when res has none. */
static qr_project_t *cache_project_result(ctx_t *c, const PGresult *res, const char *err)
{
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "project gone");
        return NULL;
    }
    return cache_project_row(c, res);
}

/* The project is stored paused or running: this broker's copy is replaced at
 * once and every other broker drops its own through pub/sub, so the next
 * lease request anywhere sees the change. A resume also wakes the long polls
 * waiting for it, here and on every broker. */
static void on_project_paused(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_broker_project_changed(c->b, p->id);
    if (!p->paused_at)
        qr_broker_work_ready(c->b, p->id);
    qr_info("project %" PRId64 " %s", p->id, p->paused_at ? "paused" : "resumed");
    respond_json(c, 200,
                 json_pack("{sI s:b s:s?}", "id", (json_int_t)p->id, "paused", p->paused_at != NULL,
                           "paused_at", p->paused_at));
    qr_project_release(p);
}

/* Idempotent: pausing a paused project, or resuming a running one, answers
 * its state unchanged. Who may: the owning organization's admins and
 * managers (the route's roles, and vendor_may). */
static void h_project_pause(ctx_t *c)
{
    int pause = !strcmp(c->route->pattern + strlen(c->route->pattern) - 5, "pause");
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, org),
                            pause ? "true" : "false"};
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_PAUSE, 3, params, on_project_paused, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects/{id}/tasks (JSONL import) ----------------------------------------- */

static void on_import_reopened(int rc, void *arg)
{
    ctx_t *c = arg;
    qr_broker_work_ready(c->b, c->project->id);
    /* Redis being down does not undo the import: the window reloads later. */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 201, o);
}

static void on_import_copied(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    qr_info("project %" PRId64 ": imported %" PRId64 " tasks", c->project->id, c->ntasks);
    if (qr_lease_window_reopen(c->b->lease, c->project->id, on_import_reopened, c) < 0)
        on_import_reopened(QR_EIO, c);
}

static void on_import_ids(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != c->imp.n) {
        respond_backend(c, "PostgreSQL", err ? err : "wrong id count");
        return;
    }
    int64_t n = c->imp.n;
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    qr_project_t *p = c->project;
    qr_import_policy_t pol = {
        .project_id = p->id,
        .annotations_per_task = p->annotations_per_task,
        .overlap_fraction = p->overlap_fraction,
        .overlap_annotations = p->overlap_annotations,
        .overlap_first = p->overlap_first,
        .sampling = p->sampling,
        .stratify_field = p->stratify_field,
    };
    uint64_t seed;
    char hex[17];
    if (qr_random_hex(8, hex) < 0)
        seed = (uint64_t)qr_now_ms();
    else
        seed = strtoull(hex, NULL, 16);
    qr_buf_t rows;
    qr_buf_init(&rows);
    qr_import_rows(&c->imp, ids, &pol, c->strata.n ? &c->strata : NULL, seed, &rows);
    c->ntasks = n;
    c->out = json_pack("{sI sI sI}", "imported", (json_int_t)n, "first_task_id", (json_int_t)ids[0],
                       "last_task_id", (json_int_t)ids[n - 1]);
    free(ids);
    qr_import_free(&c->imp);
    if (qr_pg_copy_in(c->b->pg, QR_SQL_TASKS_COPY, rows.data, rows.len, on_import_copied, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
    qr_buf_free(&rows);
}

static void import_allocate_ids(ctx_t *c)
{
    char n[24];
    const char *params[] = {i64(c->imp.n, n)};
    if (qr_pg_query(c->b->pg, QR_SQL_TASK_IDS, 1, params, on_import_ids, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_import_strata(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    c->strata.n = n;
    c->strata.names = qr_xcalloc(n + 1, sizeof *c->strata.names);
    c->strata.counts = qr_xcalloc(n + 1, sizeof *c->strata.counts);
    for (size_t i = 0; i < n; i++) {
        c->strata.names[i] = qr_xstrdup(PQgetvalue(res, (int)i, 0));
        c->strata.counts[i] = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
    }
    import_allocate_ids(c);
}

/* The client went away while its import waited for a parse slot: it is not
 * parsed for nobody (import_queue.h). */
static void on_import_gone(qr_http_request_t *req, void *arg)
{
    (void)req;
    qr_import_job_t *job = arg;
    job->cancelled = 1;
}

/* Back on the loop once the parse ran in the thread pool (or did not: the
 * client left, or the broker is stopping). */
static void on_import_parsed(qr_import_job_t *job, int status)
{
    ctx_t *c = job->data;
    qr_http_on_gone(c->req, NULL, NULL);
    int rc = job->rc;
    char err[sizeof job->err];
    memcpy(err, job->err, sizeof err);
    const char *code = job->format == QR_IMPORT_CSV          ? "invalid_csv"
                       : job->format == QR_IMPORT_JSON_ARRAY ? "invalid_json"
                                                             : "invalid_jsonl";
    c->imp = job->imp;
    free((char *)job->stratify_field);
    free(job);
    if (status < 0 || qr_http_request_gone(c->req)) {
        /* Nobody to tell: a client that left imports nothing. */
        qr_import_free(&c->imp);
        respond_error(c, 503, "unavailable", "the broker is stopping; retry");
        return;
    }
    if (rc == QR_ETOOBIG) {
        respond_error(c, 413, "import_too_large", "%s", err);
        return;
    }
    if (rc < 0) {
        respond_error(c, 400, code, "%s", err);
        return;
    }
    if (!strcmp(c->project->sampling, "stratified")) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (qr_pg_query(c->b->pg, QR_SQL_STRATA, 1, params, on_import_strata, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    import_allocate_ids(c);
}

/* The body by its Content-Type: text/csv is CSV; otherwise a JSON array
 * (its first non-blank byte is '[') or JSON lines. Parsed in the thread
 * pool within the configured budget and task cap, a few imports at a time
 * (import_queue.h): the body stays valid until the request is answered, and
 * the job holds its own copy of the stratify field. */
static void h_import(ctx_t *c)
{
    const char *ct = c->req->content_type;
    qr_import_job_t *job = qr_xcalloc(1, sizeof *job);
    job->format = ct && !strncasecmp(ct, "text/csv", 8) ? QR_IMPORT_CSV : QR_IMPORT_JSON_ANY;
    job->body = c->req->body;
    job->len = c->req->body_len;
    job->stratify_field =
        c->project->stratify_field ? qr_xstrdup(c->project->stratify_field) : NULL;
    job->limits = c->b->cfg.import;
    job->data = c;
    int rc = qr_import_queue_submit(c->b->imports, job, on_import_parsed);
    if (rc < 0) {
        free((char *)job->stratify_field);
        free(job);
        if (rc == UV_ECANCELED)
            respond_error(c, 503, "unavailable", "the broker is stopping; retry");
        else
            respond_backend(c, "the import parser", uv_strerror(rc));
        return;
    }
    qr_http_on_gone(c->req, on_import_gone, job);
}

/* --- POST /v1/projects/{id}/leases --------------------------------------------------------- */

static void lease_try(ctx_t *c);

/* Long-poll waiters: requests that found nothing and wait for work. They sit
 * on the broker's list, newest first, until woken (qr_api_wake), their
 * deadline passes, or their client goes away (on_lease_gone). */
static void waiter_remove(ctx_t *c)
{
    if (!c->waiting)
        return;
    if (c->wait_prev)
        c->wait_prev->wait_next = c->wait_next;
    else
        c->b->api_waiters = c->wait_next;
    if (c->wait_next)
        c->wait_next->wait_prev = c->wait_prev;
    c->wait_prev = c->wait_next = NULL;
    c->waiting = 0;
    uv_timer_stop(&c->wait_timer);
}

/* Why a grant gave fewer leases than asked, as the answer's "reason"; NULL
 * when only the window stopped it. */
static const char *why_name(int why)
{
    switch (why) {
    case QR_LEASE_QUOTA_REACHED:
        return "quota_reached";
    case QR_LEASE_CAP_REACHED:
        return "cap_reached";
    case QR_LEASE_MAX_LEASES:
        return "max_leases_reached";
    default:
        return NULL;
    }
}

static void respond_no_lease(ctx_t *c, int complete)
{
    json_t *o = json_pack("{s:[] s:b}", "leases", "project_complete", complete);
    /* Not an error: the vendor's quota, the annotator's cap or their bound
     * on live leases is used up (until a lease of theirs ends). */
    const char *why = why_name(c->why);
    if (why)
        json_object_set_new(o, "reason", json_string(why));
    respond_json(c, 200, o);
}

static void respond_paused(ctx_t *c)
{
    respond_error(c, 409, "project_paused", "project %" PRId64 " is paused", c->project->id);
}

static void on_project_refreshed(const PGresult *res, const char *err, const char *sqlstate,
                                 void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_project_release(c->project);
    c->project = p;
    c->then(c);
}

/* Runs then(c) with c->project the broker's current copy of the project (a
 * long poll may hold one that a pause or a share change replaced since),
 * loading it from PostgreSQL when no broker copy is cached. */
static void project_refresh(ctx_t *c, void (*then)(ctx_t *c))
{
    qr_project_t *p = qr_project_cache_get(c->b, c->project->id);
    if (p) {
        qr_project_release(c->project);
        c->project = p;
        then(c);
        return;
    }
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->then = then;
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_GET, 1, params, on_project_refreshed, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* A long poll's deadline: nothing to lease, or the project is paused. */
static void wait_ended(ctx_t *c)
{
    if (c->project->paused_at)
        respond_paused(c);
    else
        respond_no_lease(c, 0);
}

static void on_wait_timeout(uv_timer_t *t)
{
    ctx_t *c = t->data;
    waiter_remove(c);
    project_refresh(c, wait_ended);
}

static void wake(qr_broker_t *b, int64_t project, int slots, int hops, ctx_t *skip);

/* Parks c until work may be ready or its deadline passes. A request whose
 * client is gone is answered (to nobody) instead: nothing may be granted to
 * a waiter nobody listens to. A waiter woken for a freed slot that got
 * nothing passes the wake on to the next one (c->handoff). */
static void wait_for_work(ctx_t *c)
{
    int rc = 0;
    int hops = c->handoff;
    qr_broker_t *b = c->b;
    int64_t project = c->project->id;
    c->handoff = 0;
    if (qr_http_request_gone(c->req)) {
        respond_no_lease(c, 0);
        goto pass;
    }
    if (!c->timer_inited) {
        rc = uv_timer_init(c->b->loop, &c->wait_timer);
        if (rc < 0) {
            respond_no_lease(c, 0);
            goto pass;
        }
        c->timer_inited = 1;
    }
    c->wait_timer.data = c;
    int64_t left = c->wait_until_ms - qr_mono_ms();
    rc = uv_timer_start(&c->wait_timer, on_wait_timeout, (uint64_t)(left > 0 ? left : 0), 0);
    if (rc < 0) {
        respond_no_lease(c, 0);
        goto pass;
    }
    c->waiting = 1;
    c->timed = 0; /* its time is the long-poll wait, not the broker's */
    c->wait_prev = NULL;
    c->wait_next = c->b->api_waiters;
    if (c->wait_next)
        c->wait_next->wait_prev = c;
    c->b->api_waiters = c;
    if (hops > 0)
        wake(b, project, 1, hops - 1, c);
    return;
pass:
    /* c is answered and freed; the wake it held goes on all the same. */
    if (hops > 0 && !b->stopping)
        wake(b, project, 1, hops - 1, NULL);
}

/* Wakes the waiters of project (of every project when 0), oldest first:
 * all of them when slots <= 0, else at most slots. One woken for a slot
 * carries hops: how many more waiters it passes the wake on to, one at a
 * time, should it get nothing (-1: as many as wait now). So a release wakes
 * one waiter, not all, yet a slot that waiter cannot take (seen the task,
 * at its own bound) still reaches one that can. skip is not woken. */
static void wake(qr_broker_t *b, int64_t project, int slots, int hops, ctx_t *skip)
{
    ctx_t *oldest = NULL;
    int waiting = 0;
    for (ctx_t *c = b->api_waiters; c; c = c->wait_next) {
        oldest = c;
        if (!project || c->project->id == project)
            waiting++;
    }
    if (hops < 0)
        hops = waiting - 1;
    /* Detach them first, oldest first: a retry may park them again. */
    ctx_t *woken = NULL, **tail = &woken;
    int n = 0;
    for (ctx_t *c = oldest, *prev; c && (slots <= 0 || n < slots); c = prev) {
        prev = c->wait_prev;
        if ((project && c->project->id != project) || c == skip)
            continue;
        waiter_remove(c);
        c->handoff = slots > 0 ? hops : 0;
        *tail = c;
        tail = &c->wait_next;
        n++;
    }
    while (woken) {
        ctx_t *c = woken;
        woken = c->wait_next;
        c->wait_next = NULL;
        c->retried = 0;
        if (b->stopping)
            respond_no_lease(c, 0);
        else
            lease_try(c);
    }
}

void qr_api_wake(qr_broker_t *b, int64_t project, int slots)
{
    wake(b, project, slots, -1, NULL);
}

/* The client of a lease request went away. A waiter leaves the list and is
 * answered (to nobody) at once, before anything can be granted to it; a
 * request whose grant is under way learns it from qr_http_respond, and
 * gives back what it got (on_granted). */
static void on_lease_gone(qr_http_request_t *req, void *arg)
{
    ctx_t *c = arg;
    (void)req;
    if (!c->waiting)
        return;
    waiter_remove(c);
    respond_no_lease(c, 0);
}

/* A lease granted to a client that was gone by the answer. */
typedef struct give_back_s {
    qr_broker_t *b;
    int64_t project, annotator, token;
} give_back_t;

static void on_give_back_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                  void *arg)
{
    if (!res)
        qr_warn("recording a lease given back failed: %s", err ? err : "?");
}

static void on_given_back(int rc, const qr_lease_info_t *info, void *arg)
{
    give_back_t *g = arg;
    if (rc < 0) {
        /* Gone already (or Redis is down): the reaper returns it at expiry. */
        qr_warn("project %" PRId64 ": lease %" PRId64 " of a gone client not given back (%d)",
                g->project, g->token, rc);
        free(g);
        return;
    }
    const char *reason = "client gone before the answer";
    qr_event_t ev = {.kind = QR_EV_RELEASE,
                     .project_id = g->project,
                     .task_id = info->task_id,
                     .annotator_id = g->annotator,
                     .token = g->token,
                     .at_ms = qr_now_ms(),
                     .granted_ms = info->granted_ms,
                     .active_ms = -1,
                     .reason = reason};
    qr_events_add(g->b->events, &ev);
    char proj[24], tok[24], task[24], ann[24], gr[24], x[24];
    const char *params[] = {i64(g->project, proj),
                            i64(g->token, tok),
                            i64(info->task_id, task),
                            i64(g->annotator, ann),
                            i64(info->granted_ms, gr),
                            i64(info->expires_ms, x),
                            "released",
                            reason};
    qr_pg_query(g->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_give_back_recorded, NULL);
    qr_broker_slots_freed(g->b, g->project, 1);
    free(g);
}

/* Releases leases[0..n) of annotator at once: their answer reached nobody. */
static void give_back(qr_broker_t *b, int64_t project, int64_t annotator, const qr_lease_t *leases,
                      int n)
{
    qr_info("project %" PRId64 ": client of annotator %" PRId64 " gone; %d lease(s) given back",
            project, annotator, n);
    for (int i = 0; i < n; i++) {
        give_back_t *g = qr_xcalloc(1, sizeof *g);
        *g = (give_back_t){b, project, annotator, leases[i].token};
        if (qr_lease_release(b->lease, project, annotator, leases[i].token, qr_now_ms(), 0,
                             on_given_back, g) < 0)
            on_given_back(QR_EIO, NULL, g);
    }
}

static void on_complete_checked(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int complete = PQgetvalue(res, 0, 0)[0] == 't';
    if (!complete && c->wait_until_ms > qr_mono_ms() && !c->b->stopping) {
        wait_for_work(c);
        return;
    }
    respond_no_lease(c, complete);
}

static void on_refilled(void *arg)
{
    ctx_t *c = arg;
    lease_try(c);
}

static void on_background_refill(void *arg) {}

static void on_counts_seeded(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "lease counters");
        return;
    }
    lease_try(c);
}

/* The project's quota and cap counters are not in Redis (a new project, or
 * Redis lost its state): build them from PostgreSQL, then grant again. */
static void on_lease_counts(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res);
    int64_t *v = qr_xcalloc((size_t)(3 * n + 1), sizeof *v);
    for (int i = 0; i < n; i++) {
        v[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        v[n + i] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        v[2 * n + i] = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    }
    int rc = qr_lease_count_seed(c->b->lease, c->project->id, n, v, v + n, v + 2 * n,
                                 on_counts_seeded, c);
    free(v);
    if (rc < 0)
        respond_backend(c, "Redis", "lease counters");
}

static void on_granted(int rc, const qr_lease_t *leases, int n, int64_t ready_left, int why,
                       void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "lease grant");
        return;
    }
    if (why == QR_LEASE_UNCOUNTED) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (c->seeded)
            respond_backend(c, "Redis", "lease counters (lost again)");
        else if (qr_pg_query(c->b->pg, QR_SQL_LEASE_COUNTS, 1, params, on_lease_counts, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        c->seeded = 1;
        return;
    }
    c->seeded = 0; /* built: should Redis lose them again later, rebuild again */
    c->why = why;
    if (n == 0 && why != QR_LEASE_GRANTED) {
        /* Quota, cap or bound on live leases: a long poll waits for a lease
         * of theirs to end. */
        if (c->wait_until_ms > qr_mono_ms() && !c->b->stopping)
            wait_for_work(c);
        else
            respond_no_lease(c, 0);
        return;
    }
    if (n == 0 && !c->retried) {
        /* The window may just be empty: load more and try once again. */
        c->retried = 1;
        qr_window_refill(c->b, c->project->id, on_refilled, c);
        return;
    }
    if (ready_left < c->b->cfg.window_low)
        qr_window_refill(c->b, c->project->id, on_background_refill, NULL);
    if (n == 0) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_COMPLETE, 1, params, on_complete_checked, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char tok[24];
        record(c, QR_EV_GRANT, leases[i].task_id, leases[i].token, c->granted_ms, c->granted_ms,
               NULL, NULL);
        json_t *data = json_loads(leases[i].data, JSON_DECODE_ANY, NULL);
        json_array_append_new(
            arr, json_pack("{s:s sI sI sI s:o}", "lease", i64(leases[i].token, tok), "task_id",
                           (json_int_t)leases[i].task_id, "fencing_token",
                           (json_int_t)leases[i].token, "expires_at_ms",
                           (json_int_t)leases[i].expires_ms, "data", data ? data : json_object()));
    }
    json_t *o = json_pack("{s:o s:b}", "leases", arr, "project_complete", 0);
    /* Fewer than asked because of a bound: say which. */
    if (why_name(why))
        json_object_set_new(o, "reason", json_string(why_name(why)));
    qr_broker_t *b = c->b;
    int64_t project = c->project->id, annotator = c->user.id;
    if (respond_json(c, 200, o) < 0)
        give_back(b, project, annotator, leases, n); /* leases[] live until we return */
}

/* The share of the caller's organization in c's project; NULL for the
 * project's own organization. */
static const qr_share_t *caller_share(const ctx_t *c)
{
    for (int i = 0; i < c->project->nshares; i++)
        if (c->project->shares[i].org_id == c->user.org_id)
            return &c->project->shares[i];
    return NULL;
}

/* One grant attempt on the current copy of the project. A paused project
 * grants nothing: a long poll waits (a resume wakes it), else 409. */
static void lease_grant(ctx_t *c)
{
    if (c->project->paused_at) {
        if (c->wait_until_ms > qr_mono_ms() && !c->b->stopping)
            wait_for_work(c);
        else
            respond_paused(c);
        return;
    }
    c->granted_ms = qr_now_ms();
    const qr_share_t *s = caller_share(c);
    qr_lease_limits_t lim = {c->user.org_id, s ? s->quota : -1, s ? s->cap : -1,
                             c->project->max_leases ? c->project->max_leases
                                                    : c->b->cfg.max_leases_per_annotator};
    if (qr_lease_grant_limited(c->b->lease, c->project->id, c->user.id, &lim, c->max, c->granted_ms,
                               c->project->lease_ttl_ms, on_granted, c) < 0)
        respond_backend(c, "Redis", "lease grant");
}

static void lease_try(ctx_t *c)
{
    project_refresh(c, lease_grant);
}

static void h_lease(ctx_t *c)
{
    int64_t max, wait_ms;
    qr_invalid_t why;
    if (parse_body(c, 1) < 0)
        return;
    if (qr_validate_lease_body(c->body, &max, &wait_ms, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    c->max = (int)max;
    c->timed = 1 + QR_METRIC_LEASE;
    c->wait_until_ms = wait_ms ? qr_mono_ms() + wait_ms : 0;
    qr_http_on_gone(c->req, on_lease_gone, c);
    lease_try(c);
}

/* --- release and skip --------------------------------------------------------------------- */

static void on_release_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    if (!res)
        qr_warn("recording lease %" PRId64 " failed: %s", c->ids[1], err);
    char tok[24];
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    respond_json(
        c, 200,
        json_pack("{s:s s:b}", "lease", i64(c->ids[1], tok), skip ? "skipped" : "released", 1));
}

static void on_released(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc == QR_ECONFLCT) {
        respond_error(c, 409, "lease_expired",
                      "lease %" PRId64 " is not live (expired, ended or not yours)", c->ids[1]);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "release");
        return;
    }
    qr_broker_slots_freed(c->b, c->project->id, 1);
    int skip_ev = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    record(c, skip_ev ? QR_EV_SKIP : QR_EV_RELEASE, info->task_id, c->ids[1], qr_now_ms(),
           info->granted_ms, NULL, json_string_value(json_object_get(c->body, "reason")));
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    char proj[24], tok[24], task[24], ann[24], g[24], x[24];
    const char *reason = json_string_value(json_object_get(c->body, "reason"));
    const char *params[] = {i64(c->project->id, proj),     i64(c->ids[1], tok),
                            i64(info->task_id, task),      i64(c->user.id, ann),
                            i64(info->granted_ms, g),      i64(info->expires_ms, x),
                            skip ? "skipped" : "released", reason};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_release_recorded, c) < 0)
        on_release_recorded(NULL, "pool closing", "", c);
}

static void h_release(ctx_t *c)
{
    if (parse_body(c, 1) < 0)
        return;
    const char *reason; /* read again from the body once released */
    qr_invalid_t why;
    if (qr_validate_release_body(c->body, &reason, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    if (qr_lease_release(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(), skip,
                         on_released, c) < 0)
        respond_backend(c, "Redis", "release");
}

/* --- POST /v1/projects/{id}/annotations/{annotation}/undo ------------------------------------ */

static void on_regranted(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* The annotation is gone and its slot back in PostgreSQL; Redis
         * will offer the task again once the window is rebuilt. */
        respond_json(c, 200, json_pack("{s:b s:n}", "undone", 1, "lease"));
        return;
    }
    char tok[24];
    json_t *data = json_loads(c->label, JSON_DECODE_ANY, NULL);
    respond_json(c, 200,
                 json_pack("{s:b s:{s:s sI sI sI s:o}}", "undone", 1, "lease", "lease",
                           i64(info->task_id, tok), "task_id", (json_int_t)c->task_id,
                           "fencing_token", (json_int_t)info->task_id, "expires_at_ms",
                           (json_int_t)info->expires_ms, "data", data ? data : json_object()));
}

static void on_undone(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 409, "lease_expired",
                      "annotation %" PRId64 " cannot be undone (not yours, or its lease ended)",
                      c->ids[1]);
        return;
    }
    c->task_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->label = qr_xstrdup(PQgetvalue(res, 0, 2)); /* the task's data, kept for the answer */
    if (qr_lease_regrant(c->b->lease, c->project->id, c->task_id, c->user.id, c->user.org_id,
                         qr_now_ms(), c->project->lease_ttl_ms, strtod(PQgetvalue(res, 0, 1), NULL),
                         c->label, on_regranted, c) < 0)
        on_regranted(QR_EIO, NULL, c);
}

static void h_undo(ctx_t *c)
{
    char ann[24], user[24], proj[24];
    const char *params[] = {i64(c->ids[1], ann), i64(c->user.id, user), i64(c->project->id, proj)};
    if (qr_pg_query(c->b->pg, QR_SQL_UNDO, 3, params, on_undone, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/progress ----------------------------------------------------------- */

static void on_progress(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad progress row");
        return;
    }
    respond_json(c, 200, o);
}

static void h_progress(ctx_t *c)
{
    char proj[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user)};
    if (qr_pg_query(c->b->pg, QR_SQL_PROGRESS, 2, params, on_progress, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects/{id}/leases/{lease}/heartbeat ---------------------------------------- */

static void on_heartbeat(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    char tok[24];
    if (rc == QR_ECONFLCT) {
        respond_error(c, 409, "lease_expired",
                      "lease %" PRId64 " is not live (expired, ended or "
                      "not yours)",
                      c->ids[1]);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "heartbeat");
        return;
    }
    record(c, QR_EV_HEARTBEAT, info->task_id, c->ids[1], qr_now_ms(), info->granted_ms, NULL, NULL);
    respond_json(c, 200,
                 json_pack("{s:s sI}", "lease", i64(c->ids[1], tok), "expires_at_ms",
                           (json_int_t)info->expires_ms));
}

static void h_heartbeat(ctx_t *c)
{
    if (qr_lease_heartbeat(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(),
                           c->project->lease_ttl_ms, on_heartbeat, c) < 0)
        respond_backend(c, "Redis", "heartbeat");
}

/* --- POST /v1/projects/{id}/leases/{lease}/submit -------------------------------------------- */

static void on_lease_ended(int rc, void *arg)
{
    ctx_t *c = arg;
    json_t *o = c->out;
    int status = json_is_true(json_object_get(o, "replayed")) ? 200 : 201;
    c->out = NULL;
    if (o) {
        respond_json(c, status, o);
        return;
    }
    respond_error(c, 409, "conflict",
                  "task %" PRId64 " needs no more annotations, or you labeled it already",
                  c->task_id);
}

static void lease_unknown(ctx_t *c);

static void respond_idem_conflict(ctx_t *c)
{
    respond_error(c, 409, "idempotency_conflict",
                  "idempotency key \"%s\" was used for annotation %" PRId64 " (task %" PRId64
                  ", lease %" PRId64 ") in this project; nothing stored, lease %" PRId64
                  " given back",
                  c->idem_key, c->idem_annotation, c->idem_task, c->idem_token, c->ids[1]);
}

static void on_idem_release_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                     void *arg)
{
    ctx_t *c = arg;
    if (!res)
        qr_warn("recording lease %" PRId64 " failed: %s", c->ids[1], err);
    respond_idem_conflict(c);
}

static void on_idem_returned(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* Gone meanwhile, or Redis is down: the reaper returns it at expiry. */
        respond_idem_conflict(c);
        return;
    }
    qr_broker_slots_freed(c->b, c->project->id, 1);
    const char *reason = "idempotency_conflict";
    record(c, QR_EV_RELEASE, info->task_id, c->ids[1], qr_now_ms(), info->granted_ms, NULL, reason);
    char proj[24], tok[24], task[24], ann[24], g[24], x[24];
    const char *params[] = {i64(c->project->id, proj),
                            i64(c->ids[1], tok),
                            i64(info->task_id, task),
                            i64(c->user.id, ann),
                            i64(info->granted_ms, g),
                            i64(info->expires_ms, x),
                            "released",
                            reason};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_idem_release_recorded, c) < 0)
        on_idem_release_recorded(NULL, "pool closing", "", c);
}

/* The idempotency key names another annotation of this annotator in this
 * project (another task, or another lease): this is no resend, and storing
 * nothing while answering the other annotation would lose this one. Nothing
 * is stored; a lease still held is given back as released (the slot returns
 * to the queue and the annotator may have the task again), never committed:
 * 409 idempotency_conflict. */
static void idem_conflict(ctx_t *c)
{
    if (c->task_id &&
        qr_lease_submit_return(c->b->lease, c->project->id, c->ids[1], on_idem_returned, c) == 0)
        return;
    respond_idem_conflict(c);
}

/* An earlier submission with this idempotency key, if any, is the answer,
 * when it was made on this very lease (a resend); on another lease it is a
 * conflict (idem_conflict). */
static void on_idem_found(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 1) {
        c->idem_annotation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        c->idem_task = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        c->idem_token = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        /* A token names one lease of one task in the project; c->task_id is
         * 0 when the lease is no longer live (the resend of a committed
         * submit). */
        if (c->idem_token != c->ids[1] || (c->task_id && c->idem_task != c->task_id)) {
            idem_conflict(c);
            return;
        }
        c->out = json_pack("{sI sI s:b}", "annotation_id", (json_int_t)c->idem_annotation,
                           "task_id", (json_int_t)c->idem_task, "replayed", 1);
        /* The lease, if still pinned by a submit that died half-way, ends. */
        if (c->task_id &&
            qr_lease_submit_commit(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c) == 0)
            return;
        on_lease_ended(0, c);
        return;
    }
    if (c->task_id) {
        /* Lease was live but PostgreSQL refused: give the slot back. */
        if (qr_lease_submit_abort(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c) < 0)
            on_lease_ended(QR_EIO, c);
        return;
    }
    lease_unknown(c);
}

static void find_idempotent(ctx_t *c)
{
    char proj[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), c->idem_key};
    if (qr_pg_query(c->b->pg, QR_SQL_ANNOTATION_BY_KEY, 3, params, on_idem_found, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_committed(int rc, int64_t annotation_id, const char *outcome, const char *err,
                         void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* Unknown whether PostgreSQL committed. The lease stays pinned, so
         * the agent's resend (same lease, same idempotency key) within the
         * grace goes through or finds the first result; past it the reaper
         * returns the slot, and PostgreSQL's constraints keep it exact. */
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (strcmp(outcome, "created")) {
        /* "duplicate": this idempotency key was used before; "full": the
         * task needs nothing more, or this annotator labeled it already
         * (perhaps with this very key, by a submit whose answer was lost). */
        if (c->idem_key) {
            find_idempotent(c);
            return;
        }
        if (qr_lease_submit_abort(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c) < 0)
            on_lease_ended(QR_EIO, c);
        return;
    }
    c->out = json_pack("{sI sI s:b}", "annotation_id", (json_int_t)annotation_id, "task_id",
                       (json_int_t)c->task_id, "replayed", 0);
    record(c, QR_EV_SUBMIT, c->task_id, c->ids[1], qr_now_ms(), c->granted_ms, c->label, NULL);
    /* The annotation is committed: the answer is "created" even if Redis is
     * unreachable now (the pinned lease then expires, and PostgreSQL's
     * done_count keeps the task from being over-filled). */
    if (qr_lease_submit_commit(c->b->lease, c->project->id, c->ids[1], on_lease_ended, c) < 0)
        on_lease_ended(QR_EIO, c);
}

static void on_submit_begun(int rc, const qr_lease_info_t *info, void *arg);

/* The lease is unknown to Redis. If Redis lost its state after granting
 * it (the project's state was rebuilt since) and PostgreSQL's lease log
 * shows it granted to this annotator, unexpired and not ended, the submit
 * goes through on the log's word; PostgreSQL's constraints still keep the
 * task from being over-filled. Anything else is 409. */
static void lease_refused(ctx_t *c)
{
    respond_error(c, 409, "lease_expired",
                  "lease %" PRId64 " is not live (expired, ended or not yours); nothing stored",
                  c->ids[1]);
}

static void on_init_time(int rc, int64_t init_ms, void *arg)
{
    ctx_t *c = arg;
    int64_t now = qr_now_ms();
    if (rc < 0 || init_ms <= c->granted_ms || c->granted_ms + c->project->lease_ttl_ms <= now) {
        lease_refused(c);
        return;
    }
    qr_info("project %" PRId64 ": lease %" PRId64 " lost with Redis; accepted from the lease log",
            c->project->id, c->ids[1]);
    qr_lease_info_t info = {c->task_id, c->granted_ms, c->granted_ms + c->project->lease_ttl_ms};
    c->task_id = 0;
    on_submit_begun(0, &info, c);
}

static void on_lease_from_log(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        lease_refused(c);
        return;
    }
    c->task_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->granted_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    if (qr_lease_init_time(c->b->lease, c->project->id, on_init_time, c) < 0)
        lease_refused(c);
}

static void lease_unknown(ctx_t *c)
{
    char proj[24], tok[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], tok), i64(c->user.id, user)};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_FROM_LOG, 3, params, on_lease_from_log, c) < 0)
        lease_refused(c);
}

static void on_submit_begun(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc == QR_ECONFLCT) {
        if (c->idem_key) {
            find_idempotent(c);
            return;
        }
        lease_unknown(c);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "submit");
        return;
    }
    c->task_id = info->task_id;
    c->granted_ms = info->granted_ms;
    qr_commit_row_t row = {
        .task_id = info->task_id,
        .project_id = c->project->id,
        .annotator_id = c->user.id,
        .token = c->ids[1],
        .granted_ms = info->granted_ms,
        .expires_ms = info->expires_ms,
        .active_ms = c->active_ms,
        .label = c->label,
        .idempotency_key = c->idem_key,
    };
    qr_committer_add(c->b->committer, &row, on_committed, c);
}

/* Reads one result object (label, idempotency_key, active_ms) into c.
 * Responds 422 and returns -1 when a field is wrong. */
static int read_result(ctx_t *c, json_t *o)
{
    qr_result_body_t r;
    qr_invalid_t why;
    if (qr_validate_result(o, c->project->labels, c->project->nlabels, &r, &why) < 0) {
        respond_invalid(c, &why);
        return -1;
    }
    c->active_ms = r.active_ms;
    c->label = qr_xstrdup(r.label);
    c->idem_key = r.idempotency_key ? qr_xstrdup(r.idempotency_key) : NULL;
    return 0;
}

static void submit_start(ctx_t *c)
{
    if (qr_lease_submit_begin(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(),
                              SUBMIT_GRACE_MS, on_submit_begun, c) < 0)
        respond_backend(c, "Redis", "submit");
}

static void h_submit(ctx_t *c)
{
    c->timed = 1 + QR_METRIC_SUBMIT;
    if (parse_body(c, 0) < 0 || read_result(c, c->body) < 0)
        return;
    submit_start(c);
}

/* --- POST /v1/projects/{id}/submit (batch) -----------------------------------------------------
 */

static void batch_result(ctx_t *child, int status, json_t *j)
{
    ctx_t *parent = child->parent;
    char tok[24];
    json_t *entry = json_pack("{s:s s:i}", "lease", i64(child->ids[1], tok), "status", status);
    json_object_update(entry, j);
    json_decref(j);
    json_array_set_new(parent->out, (size_t)child->index, entry);
    child->parent = NULL;
    ctx_free(child);
    if (--parent->pending == 0) {
        json_t *o = json_pack("{s:O}", "results", parent->out);
        respond_json(parent, 200, o);
    }
}

static void h_batch_submit(ctx_t *c)
{
    c->timed = 1 + QR_METRIC_BATCH_SUBMIT;
    if (parse_body(c, 0) < 0)
        return;
    json_t *results;
    qr_invalid_t why;
    if (qr_validate_batch_body(c->body, &results, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    size_t n = json_array_size(results);
    c->out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(c->out, json_null());
    c->pending = (int)n + 1; /* +1 until every child has started */
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(results, i);
        ctx_t *k = qr_xcalloc(1, sizeof *k);
        k->b = c->b;
        /* Borrowed for logging: the parent holds the request until every
         * child has answered through batch_result. */
        k->req = c->req;
        k->route = c->route;
        k->user = c->user;
        k->project = c->project;
        k->project->refs++;
        k->parent = c;
        k->index = (int)i;
        k->ids[0] = c->ids[0];
        if (qr_validate_batch_entry(o, &k->ids[1], &why) < 0) {
            respond_invalid(k, &why);
            continue;
        }
        if (read_result(k, o) < 0)
            continue;
        submit_start(k);
    }
    if (--c->pending == 0) {
        json_t *o = json_pack("{s:O}", "results", c->out);
        respond_json(c, 200, o);
    }
}

/* --- GET /v1/projects/{id}/report ---------------------------------------------------------------
 */

static json_t *metric_value(json_t *agr, const char *name)
{
    json_t *m = json_object_get(json_object_get(agr, "metrics"), name);
    json_t *v = json_object_get(m, "value");
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

static void on_report_agreement(int status, json_t *report, const char *err, void *arg)
{
    ctx_t *c = arg;
    if (status != 200) {
        respond_backend(c, "agreement", err);
        return;
    }
    json_t *o = c->out;
    c->out = NULL;
    json_object_set_new(o, "agreement",
                        json_pack("{s:o s:o}", "percent_agreement",
                                  metric_value(report, "percent_agreement"),
                                  "krippendorff_alpha_nominal",
                                  metric_value(report, "krippendorff_alpha_nominal")));
    json_decref(report);
    respond_json(c, 200, o);
}

static void on_report_counts(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    c->out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!c->out) {
        respond_backend(c, "PostgreSQL", "bad report row");
        return;
    }
    if (c->user.org_id != c->project->org_id) {
        /* A vendor's report covers its crew only; the agreement report
         * covers every organization's annotators, so it is left out. */
        json_t *o = c->out;
        c->out = NULL;
        json_object_set_new(o, "agreement", json_null());
        respond_json(c, 200, o);
        return;
    }
    /* Fresh: the report's agreement covers every annotation it counted. */
    qr_live_agreement_get(c->b->agreement, c->project->id, 1, on_report_agreement, c);
}

/* The organization whose crew a vendor's reads are limited to, as a
 * parameter: "0" (everyone) for the project's own organization. */
static const char *crew_scope(const ctx_t *c, char buf[24])
{
    return i64(c->user.org_id == c->project->org_id ? 0 : c->user.org_id, buf);
}

static void h_report(ctx_t *c)
{
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), crew_scope(c, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_REPORT, 2, params, on_report_counts, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/agreement ------------------------------------------------------------
 */

/* Value of key in a URL query string ("a=1&b=2"), copied into buf; NULL if absent. */
static const char *query_param(const char *query, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
            snprintf(buf, len, "%.*s", (int)(n - klen - 1), p + klen + 1);
            return buf;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void on_live_agreement(int status, json_t *report, const char *err, void *arg)
{
    ctx_t *c = arg;
    if (status != 200) {
        respond_backend(c, "agreement", err);
        return;
    }
    c->full_precision = 1;
    /* Tables name annotators of other organizations "name@organization". */
    json_object_set_new(report, "project_org_id", json_integer((json_int_t)c->project->org_id));
    respond_json(c, 200, report);
}

static void h_agreement(ctx_t *c)
{
    char v[16];
    const char *fresh = query_param(c->req->query, "fresh", v, sizeof v);
    qr_live_agreement_get(c->b->agreement, c->project->id, fresh && strcmp(fresh, "0"),
                          on_live_agreement, c);
}

/* --- GET /v1/projects/{id}/export
 * ------------------------------------------------------------------ */

static void on_export_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int csv = c->max == 1;
    qr_buf_t b;
    qr_buf_init(&b);
    if (csv)
        qr_buf_appends(&b, "item,annotator,label,created_at,annotator_id,organization\r\n");
    for (int i = 0; i < PQntuples(res); i++) {
        if (csv) {
            for (int k = 0; k < 6; k++) {
                if (k)
                    qr_buf_append(&b, ",", 1);
                qr_csv_cell(&b, PQgetvalue(res, i, k)); /* neutralized: text_out.h */
            }
            qr_buf_appends(&b, "\r\n");
        } else {
            json_t *o =
                json_pack("{s:s s:s s:s s:s sI sI s:s}", "task_id", PQgetvalue(res, i, 0),
                          "annotator", PQgetvalue(res, i, 7), "label", PQgetvalue(res, i, 2),
                          "created_at", PQgetvalue(res, i, 3), "annotator_id",
                          (json_int_t)strtoll(PQgetvalue(res, i, 4), NULL, 10), "organization_id",
                          (json_int_t)strtoll(PQgetvalue(res, i, 6), NULL, 10), "organization",
                          PQgetvalue(res, i, 5));
            char *line = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            qr_buf_appends(&b, line);
            qr_buf_append(&b, "\n", 1);
            free(line);
        }
    }
    qr_http_respond(c->req, 200, csv ? "text/csv; charset=utf-8" : "application/x-ndjson", b.data,
                    b.len, NULL);
    qr_buf_free(&b);
    ctx_free(c);
}

static void h_export(ctx_t *c)
{
    char v[16];
    const char *format = query_param(c->req->query, "format", v, sizeof v);
    if (format && strcmp(format, "csv") && strcmp(format, "jsonl")) {
        respond_error(c, 422, "invalid", "format must be csv or jsonl");
        return;
    }
    c->max = !format || !strcmp(format, "csv");
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), crew_scope(c, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_EXPORT, 2, params, on_export_rows, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/throughput, GET /metrics ---------------------------------------- */

static void on_throughput(int status, json_t *body, void *arg)
{
    respond_json(arg, status, body);
}

static void h_throughput(ctx_t *c)
{
    /* A vendor (another organization than the project's) sees its own crew. */
    int64_t org = c->user.org_id == c->project->org_id ? 0 : c->user.org_id;
    if (qr_analytics_throughput(c->b->pg, c->project->id, org, c->req->query, qr_now_ms(),
                                on_throughput, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_metrics_scraped(const char *text, size_t len, void *arg)
{
    ctx_t *c = arg;
    qr_http_respond(c->req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
    ctx_free(c);
}

/* Admins, or anyone with --metrics-public (qr_api_handle): the text format
 * of metrics.h, with the queue sizes from PostgreSQL and Redis. */
static void metrics_scrape(ctx_t *c);

/* $1 organization -> true when it is an owner (not a vendor) organization. */
#define SQL_ORG_IS_OWNER "SELECT kind = 'owner' FROM organizations WHERE id = $1"

static void on_metrics_org(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    (void)sqlstate;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t")) {
        respond_error(c, 403, "forbidden",
                      "metrics cover every organization's projects: an owner admin's only");
        return;
    }
    metrics_scrape(c);
}

/* /metrics shows every organization's queues: an admin of an owner
 * organization only (a vendor's admin is refused), unless quorumd runs with
 * --metrics-public (then no token is asked for at all). */
static void h_metrics(ctx_t *c)
{
    if (c->b->cfg.metrics_public) {
        metrics_scrape(c);
        return;
    }
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, SQL_ORG_IS_OWNER, 1, params, on_metrics_org, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void metrics_scrape(ctx_t *c)
{
    if (qr_broker_scrape(c->b, on_metrics_scraped, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /readyz ------------------------------------------------------------------------------ */

/* How long /readyz waits for PostgreSQL's and Redis's answers (ms). */
#define READY_DEADLINE_MS 1000

/* One readiness probe: a SELECT 1 and a PING in flight, and a deadline.
 * Freed once it answered, both probes called back and the timer closed. */
typedef struct ready_s {
    ctx_t *c; /* NULL once answered */
    uv_timer_t timer;
    int pending;       /* probes not yet called back */
    int timer_open;    /* the timer is initialised and not yet closed */
    int ok[2];         /* 0 PostgreSQL, 1 Redis: answered fine */
    char why[2][200];  /* why not, when answered badly */
    uint64_t start_ns; /* probes sent */
    double ms[2];      /* round trip of each, ms */
} ready_t;

static void ready_free_maybe(ready_t *r)
{
    if (!r->c && r->pending == 0 && !r->timer_open)
        free(r);
}

static void on_ready_timer_closed(uv_handle_t *h)
{
    ready_t *r = h->data;
    r->timer_open = 0;
    ready_free_maybe(r);
}

/* Answers with what is known now; a probe still out counts as down. */
static void ready_answer(ready_t *r)
{
    ctx_t *c = r->c;
    if (!c)
        return;
    r->c = NULL;
    static const char *const names[2] = {"postgresql", "redis"};
    json_t *o = json_pack("{s:b}", "ready", r->ok[0] && r->ok[1]);
    char down[512] = "";
    for (int i = 0; i < 2; i++) {
        if (r->ok[i]) {
            json_object_set_new(o, names[i], json_pack("{s:b s:f}", "ok", 1, "ms", r->ms[i]));
            continue;
        }
        const char *why = r->why[i][0] ? r->why[i] : "no answer within 1000 ms";
        json_object_set_new(o, names[i], json_pack("{s:b s:s}", "ok", 0, "error", why));
        size_t n = strlen(down);
        snprintf(down + n, sizeof down - n, "%s%s is down: %s", n ? "; " : "", names[i], why);
    }
    if (!(r->ok[0] && r->ok[1]))
        json_object_set_new(o, "error",
                            json_pack("{s:s s:s}", "code", "unavailable", "message", down));
    respond_json(c, r->ok[0] && r->ok[1] ? 200 : 503, o);
    if (r->timer_open)
        uv_close((uv_handle_t *)&r->timer, on_ready_timer_closed);
}

static void ready_probe_done(ready_t *r, int which, int ok, const char *why)
{
    r->ok[which] = ok;
    r->ms[which] = (double)(uv_hrtime() - r->start_ns) / 1e6;
    if (!ok)
        snprintf(r->why[which], sizeof r->why[which], "%s", why ? why : "?");
    if (--r->pending == 0)
        ready_answer(r);
    ready_free_maybe(r);
}

static void on_ready_pg(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ready_probe_done(arg, 0, res != NULL, err);
}

static void on_ready_redis(int rc, void *arg)
{
    ready_probe_done(arg, 1, rc == 0, rc == 0 ? "" : "no PONG from Redis");
}

static void on_ready_deadline(uv_timer_t *t)
{
    ready_answer(t->data);
}

static void h_readyz(ctx_t *c)
{
    ready_t *r = qr_xcalloc(1, sizeof *r);
    r->c = c;
    r->start_ns = uv_hrtime();
    int rc = uv_timer_init(c->b->loop, &r->timer);
    if (rc == 0) {
        r->timer_open = 1;
        r->timer.data = r;
        rc = uv_timer_start(&r->timer, on_ready_deadline, READY_DEADLINE_MS, 0);
        if (rc < 0) /* cannot fail on a new timer; answer when both are back */
            qr_warn("readyz: uv_timer_start: %s", uv_strerror(rc));
    } else {
        qr_warn("readyz: uv_timer_init: %s", uv_strerror(rc));
    }
    r->pending = 2;
    if (qr_pg_query(c->b->pg, "SELECT 1", 0, NULL, on_ready_pg, r) < 0)
        ready_probe_done(r, 0, 0, "the PostgreSQL pool is closing");
    if (qr_lease_ping(c->b->lease, on_ready_redis, r) < 0)
        ready_probe_done(r, 1, 0, "the Redis client is closing");
}

/* --- organizations: POST /v1/organizations, GET /v1/organizations --------------------------- */

static void on_org_created(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res && sqlstate && !strcmp(sqlstate, "23505")) {
        respond_error(c, 409, "conflict", "an organization named \"%s\" exists",
                      json_string_value(json_object_get(c->body, "name")));
        return;
    }
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 403, "forbidden", "only an owner organization's admin may create one");
        return;
    }
    respond_json(c, 201,
                 json_pack("{sI s:s s:s}", "id",
                           (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "name",
                           PQgetvalue(res, 0, 1), "kind", PQgetvalue(res, 0, 2)));
}

static void h_org_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    const char *name = json_string_value(json_object_get(c->body, "name"));
    json_t *kind = json_object_get(c->body, "kind");
    const char *k = kind && !json_is_null(kind) ? json_string_value(kind) : "vendor";
    if (!valid_name(name)) {
        respond_error(c, 422, "invalid",
                      "name must be a string of 1 to 200 characters and no control characters");
        return;
    }
    if (!k || (strcmp(k, "vendor") && strcmp(k, "owner"))) {
        respond_error(c, 422, "invalid", "kind must be vendor or owner");
        return;
    }
    char org[24];
    const char *params[] = {i64(c->user.org_id, org), name, k};
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_CREATE, 3, params, on_org_created, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void h_share_list(ctx_t *c);

/* A JSON array from PostgreSQL, answered as {"organizations": [...]} or,
 * for the share list, {"shares": [...]}. */
static void on_json_list(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad list");
        return;
    }
    respond_json(c, 200,
                 json_pack("{s:o}", c->route->fn == h_share_list ? "shares" : "organizations", o));
}

static void h_org_list(ctx_t *c)
{
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_LIST, 1, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- shares: PUT, DELETE /v1/projects/{id}/shares/{org}, GET /v1/projects/{id}/shares -------- */

/* After a share changed: this broker's copy of the project is replaced at
 * once, and other brokers drop theirs when Redis pub/sub tells them (or,
 * should that message be lost, when it expires: cache_ttl_ms). */
static void on_share_reloaded(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = res && PQntuples(res) == 1 ? cache_project_row(c, res) : NULL;
    if (!p) {
        if (!res || PQntuples(res) != 1)
            respond_backend(c, "PostgreSQL", err ? err : "project gone");
        return;
    }
    qr_project_release(p);
    qr_broker_project_changed(c->b, c->project->id);
    /* Long polls of the project try again: a raised quota frees work. */
    qr_broker_work_ready(c->b, c->project->id);
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, c->max, o);
}

/* Answers status with o once the project is reloaded (c->max holds the
 * status meanwhile). */
static void share_reload(ctx_t *c, int status, json_t *o)
{
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->out = o;
    c->max = status;
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_GET, 1, params, on_share_reloaded, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static json_t *int_or_null(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null()
                                    : json_integer(strtoll(PQgetvalue(res, 0, col), NULL, 10));
}

static void on_share_put(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    /* No such organization (23503) and an owner organization (23514) get
     * the same answer: a share does not tell which organizations exist. */
    if (!res && sqlstate && (!strcmp(sqlstate, "23503") || !strcmp(sqlstate, "23514"))) {
        respond_error(c, 404, "not_found", "no vendor organization %" PRId64, c->ids[1]);
        return;
    }
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no share row");
        return;
    }
    int created = PQgetvalue(res, 0, 3)[0] == 't';
    share_reload(c, created ? 201 : 200,
                 json_pack("{sI sI s:o s:o s:b}", "project_id", (json_int_t)c->project->id,
                           "org_id", (json_int_t)c->ids[1], "quota_annotations",
                           int_or_null(res, 1), "max_tasks_per_annotator", int_or_null(res, 2),
                           "created", created));
}

static void h_share_put(ctx_t *c)
{
    int64_t quota, cap;
    if (parse_body(c, 1) < 0 || int_field(c, "quota_annotations", 0, 1000000000, -1, &quota) < 0 ||
        int_field(c, "max_tasks_per_annotator", 0, 1000000000, -1, &cap) < 0)
        return;
    char proj[24], org[24], q[24], k[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], org),
                            quota < 0 ? NULL : i64(quota, q), cap < 0 ? NULL : i64(cap, k),
                            i64(c->user.org_id, owner)};
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_PUT, 5, params, on_share_put, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_share_deleted(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, "not_found",
                      "project %" PRId64 " is not shared with organization %" PRId64,
                      c->project->id, c->ids[1]);
        return;
    }
    share_reload(c, 200,
                 json_pack("{sI sI s:b}", "project_id", (json_int_t)c->project->id, "org_id",
                           (json_int_t)c->ids[1], "removed", 1));
}

static void h_share_delete(ctx_t *c)
{
    char proj[24], org[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], org),
                            i64(c->user.org_id, owner)};
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_DELETE, 3, params, on_share_deleted, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void h_share_list(ctx_t *c)
{
    char proj[24], owner[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, owner)};
    if (qr_pg_query(c->b->pg, QR_SQL_SHARE_LIST, 2, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- routing, authentication, project loading --------------------------------------------------
 */

static const route_t routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0},
    {"GET", "/readyz", h_readyz, 0, 0},
    {"POST", "/v1/users", h_user_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"POST", "/v1/projects", h_project_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"POST", "/v1/tokens", h_token_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"GET", "/v1/tokens", h_token_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"DELETE", "/v1/tokens/*", h_token_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"POST", "/v1/certs", h_cert_add, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"GET", "/v1/certs", h_cert_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"DELETE", "/v1/certs/*", h_cert_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0},
    {"GET", "/v1/projects/*", h_project_get, QR_ROLE_ANY, 1},
    {"POST", "/v1/projects/*/pause", h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
    {"POST", "/v1/projects/*/resume", h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
    {"POST", "/v1/projects/*/tasks", h_import, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
    {"POST", "/v1/projects/*/leases", h_lease, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/leases/*/heartbeat", h_heartbeat, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/leases/*/submit", h_submit, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/leases/*/release", h_release, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/leases/*/skip", h_release, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/submit", h_batch_submit, QR_ROLE_LEASE, 1},
    {"POST", "/v1/projects/*/annotations/*/undo", h_undo, QR_ROLE_LEASE, 1},
    {"GET", "/v1/projects/*/progress", h_progress, QR_ROLE_ANY, 1},
    {"GET", "/v1/projects/*/agreement", h_agreement,
     QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1},
    {"GET", "/v1/projects/*/throughput", h_throughput,
     QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1},
    /* Metrics cover every organization's projects: admins only. */
    {"GET", "/metrics", h_metrics, QR_ROLE_ADMIN, 0},
    {"GET", "/v1/projects/*/export", h_export, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1},
    {"GET", "/v1/projects/*/report", h_report, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1},
    {"POST", "/v1/organizations", h_org_create, QR_ROLE_ADMIN, 0},
    {"GET", "/v1/organizations", h_org_list, QR_ROLE_ADMIN, 0},
    {"GET", "/v1/projects/*/shares", h_share_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
    {"PUT", "/v1/projects/*/shares/*", h_share_put, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
    {"DELETE", "/v1/projects/*/shares/*", h_share_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1},
};

/* Matches path against pattern; fills ids with the '*' segments. */
static int match(const char *pattern, const char *path, int64_t ids[2])
{
    int k = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            if (!isdigit((unsigned char)*path))
                return 0;
            char *end;
            long long v = strtoll(path, &end, 10);
            if (end - path > 18)
                return 0;
            if (k < 2)
                ids[k++] = v;
            path = end;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    if (*path == '/' && path[1] == '\0')
        path++; /* a trailing slash is fine */
    return *pattern == '\0' && *path == '\0';
}

static void on_project_loaded(const PGresult *res, const char *err, const char *sqlstate,
                              void *arg);

/* What an organization a project is shared with may not do there: import
 * tasks, read or change the shares, read the agreement report (it covers
 * every organization's annotators; a vendor exports its own crew's
 * annotations instead), pause or resume the project. */
static int vendor_may(handler_fn fn)
{
    return fn != h_import && fn != h_share_put && fn != h_share_delete && fn != h_share_list &&
           fn != h_agreement && fn != h_project_pause;
}

/* The one access rule for a project (issue 7): its own organization sees it
 * (each role as the route allows), and so do the vendor organizations it is
 * shared with, within vendor_may. To anyone else a project answers the same
 * 403 whether it exists or not, so ids cannot be enumerated. Responds and
 * returns 1 when c may not go on. */
static int project_denied(ctx_t *c, const qr_project_t *p)
{
    if (p && p->org_id == c->user.org_id)
        return 0;
    int shared = 0;
    for (int i = 0; p && i < p->nshares; i++)
        shared |= p->shares[i].org_id == c->user.org_id;
    if (!shared) {
        respond_error(c, 403, "forbidden", "no access to project %" PRId64, c->ids[0]);
        return 1;
    }
    if (!vendor_may(c->route->fn)) {
        respond_error(c, 403, "forbidden", "a vendor's %s may not %s %s", role_name(c->user.role),
                      c->req->method, c->req->path);
        return 1;
    }
    return 0;
}

static void on_req_gone(qr_http_request_t *req, void *arg)
{
    ctx_t *c = arg;
    /* The client left before its body was complete: nobody to answer. */
    respond_error(c, 400, "bad_request", "the connection ended before the request's body");
}

/*
 * Lets the body in once the caller may use the route (and the project): at
 * most the import limit for an import, the JSON limit for anything else.
 * Nothing of a body is read before this point.
 */
static void let_body_in(ctx_t *c)
{
    size_t limit =
        c->route->fn == h_import ? c->b->cfg.max_body_bytes : c->b->cfg.max_json_body_bytes;
    qr_http_on_gone(c->req, on_req_gone, c);
    if (qr_http_continue(c->req, limit) < 0) {
        /* Answered (413) or gone, and freed: only our state is left. */
        c->req = NULL;
        ctx_free(c);
    }
}

static void parse_work(uv_work_t *w)
{
    parsed_t *pb = w->data;
    const qr_http_request_t *req = pb->ctx->req;
    qr_thread_background();
    pb->body = qr_validate_body(req->body, req->body_len, 0, &pb->why);
}

static void on_parsed(uv_work_t *w, int status)
{
    parsed_t *pb = w->data;
    ctx_t *c = pb->ctx;
    if (status < 0) {
        respond_backend(c, "the parser", uv_strerror(status));
        return;
    }
    c->route->fn(c);
}

void qr_api_handle(qr_http_request_t *req, void *user)
{
    ctx_t *c = req->data;
    (void)user;
    qr_http_on_gone(req, NULL, NULL); /* the route's handler may set its own */
    if (c->route->fn != h_import && req->body_len > PARSE_OFF_LOOP_BYTES) {
        /* The request (and so its body) stays alive until answered. */
        parsed_t *pb = qr_xcalloc(1, sizeof *pb);
        pb->ctx = c;
        pb->work.data = pb;
        c->parsed = pb;
        int rc = uv_queue_work(c->b->loop, &pb->work, parse_work, on_parsed);
        if (rc < 0)
            respond_backend(c, "the parser", uv_strerror(rc));
        return;
    }
    c->route->fn(c);
}

static void run(ctx_t *c)
{
    if (c->route->project_arg) {
        qr_project_t *p = qr_project_cache_get(c->b, c->ids[0]);
        if (!p) {
            char id[24];
            const char *params[] = {i64(c->ids[0], id)};
            if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_GET, 1, params, on_project_loaded, c) < 0)
                respond_backend(c, "PostgreSQL", "pool closing");
            return;
        }
        if (project_denied(c, p)) {
            qr_project_release(p);
            return;
        }
        c->project = p;
    }
    let_body_in(c);
}

static void on_project_loaded(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        project_denied(c, NULL);
        return;
    }
    qr_project_t *p = cache_project_row(c, res);
    if (!p)
        return;
    qr_project_release(p);
    run(c);
}

/* 429 with Retry-After in whole seconds. */
static void respond_rate_limited(ctx_t *c, int64_t retry_ms, const char *message)
{
    char hdr[64];
    int64_t secs = (retry_ms + 999) / 1000;
    snprintf(hdr, sizeof hdr, "Retry-After: %" PRId64 "\r\n", secs);
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", "rate_limited", "message", message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    qr_http_respond(c->req, 429, "application/json", s, s ? strlen(s) : 0, hdr);
    free(s);
    ctx_free(c);
}

static void authorized(ctx_t *c)
{
    int64_t retry_ms = 0;
    if (!qr_rate_take(c->b, c->digest, &retry_ms)) {
        respond_rate_limited(c, retry_ms, "too many requests for this token; retry later");
        return;
    }
    if (!(c->route->roles & c->user.role)) {
        respond_error(c, 403, "forbidden", "a %s may not %s %s", role_name(c->user.role),
                      c->req->method, c->req->path);
        return;
    }
    run(c);
}

static void on_token_touched(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    if (!res)
        qr_debug("token last_used_at: %s", err ? err : "?");
}

static void on_token_loaded(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        qr_authfail_note(c->b, c->req->peer);
        respond_error(c, 401, "unauthorized", "unknown, revoked or expired token");
        return;
    }
    /* last_used_at is written at most once a minute, not per lookup. */
    if (!strcmp(PQgetvalue(res, 0, 5), "t")) {
        const char *params[] = {c->touch_key};
        if (qr_pg_query(c->b->pg, c->touch_sql, 1, params, on_token_touched, NULL) < 0)
            qr_debug("token last_used_at: pool closing");
    }
    c->user.id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->user.org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    c->user.role = role_of(PQgetvalue(res, 0, 2));
    snprintf(c->user.name, sizeof c->user.name, "%s", PQgetvalue(res, 0, 3));
    c->user.expires_ms = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    qr_auth_cache_put(c->b, c->digest, &c->user);
    authorized(c);
}

void qr_api_print_routes(FILE *f)
{
    static const char *names[] = {"admin", "manager", "reviewer", "annotator"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        fprintf(f, "{\"method\":\"%s\",\"path\":\"%s\",\"project\":%s,\"roles\":[",
                routes[i].method, routes[i].pattern, routes[i].project_arg ? "true" : "false");
        int first = 1;
        for (int r = 0; r < 4; r++)
            if (routes[i].roles & (1 << r)) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", names[r]);
                first = 0;
            }
        fprintf(f, "]}\n");
    }
}

void qr_api_head(qr_http_request_t *req, void *user)
{
    ctx_t *c = qr_xcalloc(1, sizeof *c);
    c->b = user;
    c->req = req;
    req->data = c;
    c->start_ns = uv_hrtime();
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int64_t ids[2] = {0, 0};
        if (!match(routes[i].pattern, req->path, ids))
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, req->method))
            continue;
        c->route = &routes[i];
        memcpy(c->ids, ids, sizeof ids);
        break;
    }
    if (!c->route) {
        if (path_known)
            respond_error(c, 405, "method_not_allowed", "%s is not allowed on %s", req->method,
                          req->path);
        else
            respond_error(c, 404, "not_found", "no route %s %s", req->method, req->path);
        return;
    }
    if (!c->route->roles || (c->route->fn == h_metrics && c->b->cfg.metrics_public)) {
        let_body_in(c);
        return;
    }
    const char *auth = req->authorization;
    const char *lookup = QR_SQL_TOKEN_LOOKUP, *key = c->digest;
    if (!auth && req->client_cert) {
        /* Mutual TLS: a verified client certificate and no token. Its
         * mapping (sql/0009) stands for a token, through the same cache,
         * rate limit and 401; the cache key is kept apart from token
         * digests by hashing it with a prefix. */
        char tagged[80];
        snprintf(tagged, sizeof tagged, "client-cert:%s", req->client_cert);
        qr_sha256_hex(tagged, strlen(tagged), c->digest);
        lookup = QR_SQL_CERT_LOOKUP;
        c->touch_sql = QR_SQL_CERT_TOUCH;
        key = req->client_cert;
    } else {
        if (!auth || strncasecmp(auth, "Bearer ", 7) || !auth[7]) {
            respond_error(c, 401, "unauthorized",
                          "missing bearer token (Authorization: Bearer ...)");
            return;
        }
        const char *token = auth + 7;
        while (*token == ' ')
            token++;
        qr_sha256_hex(token, strlen(token), c->digest);
        c->touch_sql = QR_SQL_TOKEN_TOUCH;
    }
    if (qr_auth_cache_get(c->b, c->digest, &c->user)) {
        authorized(c);
        return;
    }
    /* An address that keeps failing waits before it may try again: one
     * cannot guess tokens, or make PostgreSQL look them up, at line rate. */
    int64_t retry_ms = 0;
    if (!qr_authfail_allowed(c->b, req->peer, &retry_ms)) {
        respond_rate_limited(c, retry_ms, "too many failed authentications from this address");
        return;
    }
    c->touch_key = key;
    const char *params[] = {key};
    if (qr_pg_query(c->b->pg, lookup, 1, params, on_token_loaded, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

const qr_broker_api_t qr_api = {
    .head = qr_api_head,
    .handle = qr_api_handle,
    .wake = qr_api_wake,
};
