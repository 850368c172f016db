/*
 * router.c - routing, authentication and dispatch: the head stage (route, token or client
 * certificate, rate limits, roles, project access) and the body stage (parsed on or off the loop).
 */
#include "api_int.h"

/* --- routing, authentication, project loading --------------------------------------------------
 */

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
static int vendor_may(const route_t *r)
{
    return !(r->flags & ROUTE_NOT_VENDOR);
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
        respond_error(c, 403, QR_CODE_FORBIDDEN, "no access to project %" PRId64, c->ids[0]);
        return 1;
    }
    if (!vendor_may(c->route)) {
        respond_error(c, 403, QR_CODE_FORBIDDEN, "a vendor's %s may not %s %s",
                      role_name(c->user.role), c->req->method, c->req->path);
        return 1;
    }
    return 0;
}

static void on_req_gone(qr_http_request_t *req, void *arg)
{
    ctx_t *c = arg;
    /* The client left before its body was complete: nobody to answer. */
    respond_error(c, 400, QR_CODE_BAD_REQUEST, "the connection ended before the request's body");
}

/*
 * Lets the body in once the caller may use the route (and the project): at
 * most the import limit for an import, the JSON limit for anything else.
 * Nothing of a body is read before this point.
 */
static void let_body_in(ctx_t *c)
{
    if ((c->route->flags & ROUTE_IMPORT) && h_import_stream(c) == 0)
        return; /* streamed: it lets the body in itself */
    if (c->route->flags & ROUTE_STREAM) {
        h_predictions_stream(c);
        return;
    }
    size_t limit =
        c->route->flags & ROUTE_IMPORT ? c->b->cfg.max_body_bytes : c->b->cfg.max_json_body_bytes;
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
    if (!(c->route->flags & ROUTE_IMPORT) && req->body_len > PARSE_OFF_LOOP_BYTES) {
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

/* An error answer with one extra header line ("Name: value\r\n"), and
 * the deployment's, as every JSON answer. */
static void respond_with_header(ctx_t *c, int status, const char *code, const char *message,
                                const char *header)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char *headers = qr_xasprintf("%s%s", header, c->b->deployment_header);
    qr_http_respond(c->req, status, "application/json", s, s ? strlen(s) : 0, headers);
    free(headers);
    free(s);
    ctx_free(c);
}

/* 429 with Retry-After in whole seconds. */
static void respond_rate_limited(ctx_t *c, int64_t retry_ms, const char *message)
{
    char hdr[64];
    int64_t secs = (retry_ms + 999) / 1000;
    snprintf(hdr, sizeof hdr, "Retry-After: %" PRId64 "\r\n", secs);
    respond_with_header(c, 429, "rate_limited", message, hdr);
}

/* 401 with the challenge RFC 6750 asks for: `Bearer realm="quorum"`, and
 * error="invalid_token" when a token (or client certificate) was given
 * but refused; without one, no error code (section 3.1). */
static void respond_unauthorized(ctx_t *c, int refused, const char *message)
{
    respond_with_header(c, 401, QR_CODE_UNAUTHORIZED, message,
                        refused ? "WWW-Authenticate: Bearer realm=\"quorum\", "
                                  "error=\"invalid_token\"\r\n"
                                : "WWW-Authenticate: Bearer realm=\"quorum\"\r\n");
}

static void authorized(ctx_t *c)
{
    int64_t retry_ms = 0;
    if (!qr_rate_take(c->b, c->digest, &retry_ms)) {
        respond_rate_limited(c, retry_ms, "too many requests for this token; retry later");
        return;
    }
    if (!(c->route->roles & c->user.role)) {
        /* "an annotator may not POST /v1/projects" */
        const char *role = role_name(c->user.role);
        respond_error(c, 403, QR_CODE_FORBIDDEN, "%s %s may not %s %s",
                      strchr("aeiou", role[0]) ? "an" : "a", role, c->req->method, c->req->path);
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
        /* The same answer for a token and a client certificate: docs/API.md. */
        respond_unauthorized(c, 1,
                             "the token (or client certificate) is unknown, revoked or expired");
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
    for (size_t i = 0; i < qr_api_nroutes; i++) {
        fprintf(f, "{\"method\":\"%s\",\"path\":\"%s\",\"project\":%s,\"roles\":[",
                qr_api_routes[i].method, qr_api_routes[i].pattern,
                qr_api_routes[i].project_arg ? "true" : "false");
        int first = 1;
        for (int r = 0; r < 4; r++)
            if (qr_api_routes[i].roles & (1 << r)) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", names[r]);
                first = 0;
            }
        fprintf(f, "]}\n");
    }
}

void qr_api_head(qr_http_request_t *req, void *user)
{
    if (qr_api_ui_serve(req))
        return; /* a page: not a route, no token (api_ui.c) */
    ctx_t *c = qr_xcalloc(1, sizeof *c);
    c->b = user;
    c->req = req;
    req->data = c;
    c->start_ns = uv_hrtime();
    int path_known = 0;
    for (size_t i = 0; i < qr_api_nroutes; i++) {
        int64_t ids[2] = {0, 0};
        if (!match(qr_api_routes[i].pattern, req->path, ids))
            continue;
        path_known = 1;
        if (strcmp(qr_api_routes[i].method, req->method))
            continue;
        c->route = &qr_api_routes[i];
        memcpy(c->ids, ids, sizeof ids);
        break;
    }
    if (!c->route) {
        if (path_known)
            respond_error(c, 405, QR_CODE_METHOD_NOT_ALLOWED, "the method %s is not allowed on %s",
                          req->method, req->path);
        else
            respond_error(c, 404, QR_CODE_NOT_FOUND,
                          "there is no route %s %s (docs/API.md lists them)", req->method,
                          req->path);
        return;
    }
    if (!c->route->roles || (c->route->flags & ROUTE_METRICS && c->b->cfg.metrics_public)) {
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
            respond_unauthorized(c, 0,
                                 "this request needs a token: send the header "
                                 "\"Authorization: Bearer TOKEN\"");
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
