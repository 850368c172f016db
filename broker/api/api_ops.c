/*
 * api_ops.c - GET /healthz, GET /readyz, GET /metrics.
 */
#include "api_int.h"

/* --- GET /healthz ---------------------------------------------------------------------- */

void h_healthz(ctx_t *c)
{
    respond_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

/* --- GET /metrics ---------------------------------------------------------------------------- */

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

static void on_metrics_org(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    (void)sqlstate;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t")) {
        respond_error(
            c, 403, QR_CODE_FORBIDDEN,
            "the metrics cover every organization's projects: only an owner organization's "
            "admin may read them");
        return;
    }
    metrics_scrape(c);
}

/* /metrics shows every organization's queues: an admin of an owner
 * organization only (a vendor's admin is refused), unless quorumd runs with
 * --metrics-public (then no token is asked for at all). */
void h_metrics(ctx_t *c)
{
    if (c->b->cfg.metrics_public) {
        metrics_scrape(c);
        return;
    }
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_IS_OWNER, 1, params, on_metrics_org, c) < 0)
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

void h_readyz(ctx_t *c)
{
    c->b->readyz_ms = qr_mono_ms(); /* a health checker watches: a drain tells it first */
    if (c->b->draining) {
        /* Leaving the pool (SIGTERM): a load balancer's health check
         * learns it here, before the listener closes. */
        respond_json(c, 503,
                     json_pack("{s:b s:b s:{s:s s:s}}", "ready", 0, "draining", 1, "error", "code",
                               QR_CODE_UNAVAILABLE, "message",
                               "the broker is draining before it stops; use another one"));
        return;
    }
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
    if (qr_pg_query(c->b->pg, QR_SQL_PING, 0, NULL, on_ready_pg, r) < 0)
        ready_probe_done(r, 0, 0, "the PostgreSQL pool is closing");
    if (qr_lease_ping(c->b->lease, on_ready_redis, r) < 0)
        ready_probe_done(r, 1, 0, "the Redis client is closing");
}
