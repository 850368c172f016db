/*
 * api_webhooks.c - a project's webhooks: POST and GET
 * /v1/projects/{id}/webhooks, DELETE /v1/projects/{id}/webhooks/{wid} and
 * the delivery log, GET /v1/projects/{id}/webhooks/{wid}/deliveries.
 *
 * Only the owning organization's admins and managers reach these (the
 * routes' roles and ROUTE_NOT_VENDOR): a webhook receives every annotation
 * of the project, every vendor's included. Every statement names the
 * project as well as the webhook, so a webhook id of another project is
 * "not found" whatever its number. The secret is made here, shown once in
 * the answer to POST and stored only sealed under the broker's key.
 */
#include <errno.h>

#include "api_int.h"
#include "sql_webhook.h"
#include "webhook.h"

/* The most webhooks one project may have. */
#define MAX_WEBHOOKS_PER_PROJECT 20

/* A JSON body's events: an array of distinct known names (absent: all
 * three). Writes a PostgreSQL array literal ("{a,b}") into lit and the same
 * names into *out (a new array); -1 answered 422. */
static int parse_events(ctx_t *c, json_t *ev, char *lit, size_t litlen, json_t **out)
{
    json_t *names = json_array();
    if (!ev) {
        for (int i = 0; qr_webhook_event_types[i]; i++)
            json_array_append_new(names, json_string(qr_webhook_event_types[i]));
    } else if (!json_is_array(ev) || json_array_size(ev) == 0) {
        json_decref(names);
        respond_error(c, 422, QR_CODE_INVALID,
                      "events must be a non-empty array of annotation.created, task.completed, "
                      "project.completed");
        return -1;
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(ev, i, v)
        {
            const char *s = json_string_value(v);
            if (!s || !qr_webhook_event_known(s)) {
                json_decref(names);
                respond_error(c, 422, QR_CODE_INVALID,
                              "events[%zu] is not one of annotation.created, task.completed, "
                              "project.completed",
                              i);
                return -1;
            }
            for (size_t k = 0; k < json_array_size(names); k++)
                if (!strcmp(json_string_value(json_array_get(names, k)), s)) {
                    json_decref(names);
                    respond_error(c, 422, QR_CODE_INVALID, "events[%zu] repeats %s", i, s);
                    return -1;
                }
            json_array_append_new(names, json_string(s));
        }
    }
    size_t o = 0;
    lit[o++] = '{';
    for (size_t k = 0; k < json_array_size(names); k++) {
        /* Known names only: no quoting needed, and short enough for lit. */
        o += (size_t)snprintf(lit + o, litlen - o, "%s%s", k ? "," : "",
                              json_string_value(json_array_get(names, k)));
    }
    snprintf(lit + o, litlen - o, "}");
    *out = names;
    return 0;
}

static void on_webhook_created(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    json_t *o = c->out;
    c->out = NULL;
    if (!res) {
        json_decref(o);
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        json_decref(o);
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "project %" PRId64 " has %d webhooks already, the most it may have; "
                      "delete one first",
                      c->project->id, MAX_WEBHOOKS_PER_PROJECT);
        return;
    }
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(o, "created_at", json_string(PQgetvalue(res, 0, 1)));
    qr_info("project %" PRId64 ": webhook %s made by user %" PRId64, c->project->id,
            PQgetvalue(res, 0, 0), c->user.id);
    respond_json(c, 201, o);
}

/* Body: {"url": "https://...", "events": [...]} (events optional: all).
 * Everything is checked before anything is written; any other key is
 * refused, so that a misspelt "event" does not silently subscribe to all. */
void h_webhook_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    if (!json_is_object(c->body)) {
        respond_error(c, 422, QR_CODE_INVALID, "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(c->body, key, v)
    {
        if (strcmp(key, "url") && strcmp(key, "events")) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "unknown field '%.64s' (a webhook has url and events)", key);
            return;
        }
    }
    const char *url = json_string_value(json_object_get(c->body, "url"));
    if (!url) {
        respond_error(c, 422, QR_CODE_INVALID, "url is required (a string: http:// or https://)");
        return;
    }
    char why[256];
    if (qr_webhook_url_check(url, why, sizeof why) < 0) {
        respond_error(c, 422, QR_CODE_INVALID, "%s", why);
        return;
    }
    char lit[128];
    json_t *names = NULL;
    if (parse_events(c, json_object_get(c->body, "events"), lit, sizeof lit, &names) < 0)
        return;
    if (!c->b->cfg.webhooks) {
        json_decref(names);
        respond_error(c, 503, QR_CODE_UNAVAILABLE,
                      "webhooks are off on this broker: start quorumd with --webhook-key-file "
                      "(the key that seals their secrets)");
        return;
    }
    /* After the checks of the body: a broker that makes no webhooks says
     * that first. */
    if (!c->b->cfg.webhook_allow_private && qr_webhook_url_private(url, why, sizeof why)) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "url points into a private network: %s; this broker posts only to public "
                      "addresses (quorumd --webhook-allow-private allows others)",
                      why);
        json_decref(names);
        return;
    }
    char secret[QR_WEBHOOK_SECRET_LEN + 1];
    char *sealed = NULL;
    if (qr_webhook_secret_new(secret) < 0 ||
        !(sealed = qr_webhook_seal(c->b->cfg.webhook_key, secret))) {
        json_decref(names);
        respond_backend(c, "the random source", "no secret");
        return;
    }
    c->out = json_pack("{sI ss so ss}", "project_id", (json_int_t)c->project->id, "url", url,
                       "events", names, "secret", secret);
    char proj[24], user[24], max[24];
    const char *params[] = {
        i64(c->project->id, proj),         url, lit, sealed, i64(c->user.id, user),
        i64(MAX_WEBHOOKS_PER_PROJECT, max)};
    int rc = qr_pg_query(c->b->pg, QR_SQL_WEBHOOK_CREATE, 6, params, on_webhook_created, c);
    free(sealed);
    memset(secret, 0, sizeof secret);
    if (rc < 0) {
        json_decref(c->out);
        c->out = NULL;
        respond_backend(c, "PostgreSQL", "pool closing");
    }
}

void h_webhook_list(ctx_t *c)
{
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->list_key = "webhooks";
    if (qr_pg_query(c->b->pg, QR_SQL_WEBHOOK_LIST, 1, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_webhook_deleted(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "project %" PRId64 " has no webhook %" PRId64,
                      c->project->id, c->ids[1]);
        return;
    }
    qr_info("project %" PRId64 ": webhook %" PRId64 " deleted by user %" PRId64, c->project->id,
            c->ids[1], c->user.id);
    respond_json(c, 200,
                 json_pack("{sI sI sb}", "project_id", (json_int_t)c->project->id, "id",
                           (json_int_t)c->ids[1], "deleted", 1));
}

/* Deletes the webhook and its pending deliveries (nothing more is posted to
 * it; a post in flight may still arrive). */
void h_webhook_delete(ctx_t *c)
{
    char id[24], proj[24];
    const char *params[] = {i64(c->ids[1], id), i64(c->project->id, proj)};
    if (qr_pg_query(c->b->pg, QR_SQL_WEBHOOK_DELETE, 2, params, on_webhook_deleted, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

static void on_deliveries(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "bad delivery log");
        return;
    }
    if (PQgetisnull(res, 0, 0)) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "project %" PRId64 " has no webhook %" PRId64,
                      c->project->id, c->ids[1]);
        return;
    }
    json_t *list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!list) {
        respond_backend(c, "PostgreSQL", "bad delivery log");
        return;
    }
    json_t *o = json_pack("{sI sI so}", "project_id", (json_int_t)c->project->id, "webhook_id",
                          (json_int_t)c->ids[1], "deliveries", list);
    size_t n = json_array_size(list);
    /* The next page starts after the last row of this one. */
    json_object_set_new(o, "next_after",
                        n == (size_t)c->max
                            ? json_copy(json_object_get(json_array_get(list, n - 1), "id"))
                            : json_null());
    respond_json(c, 200, o);
}

/* ?after=ID (default 0) and ?limit=N (1..1000, default 100): a page of the
 * delivery log in id order; next_after is the after= of the next page, or
 * null when this one is the last. */
void h_webhook_deliveries(ctx_t *c)
{
    char v[32], after_s[24], lim_s[24], id[24], proj[24];
    int64_t after = 0, limit = 100;
    const char *p;
    char *end;
    if ((p = query_param(c->req->query, "after", v, sizeof v))) {
        errno = 0;
        after = strtoll(p, &end, 10);
        if (!*p || *end || errno || after < 0) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST, "after must be a delivery id (0 or more)");
            return;
        }
    }
    if ((p = query_param(c->req->query, "limit", v, sizeof v))) {
        errno = 0;
        limit = strtoll(p, &end, 10);
        if (!*p || *end || errno || limit < 1 || limit > 1000) {
            respond_error(c, 400, QR_CODE_BAD_REQUEST, "limit must be from 1 to 1000");
            return;
        }
    }
    c->max = (int)limit;
    const char *params[] = {i64(c->ids[1], id), i64(c->project->id, proj), i64(after, after_s),
                            i64(limit, lim_s)};
    if (qr_pg_query(c->b->pg, QR_SQL_WEBHOOK_DELIVERIES, 4, params, on_deliveries, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
