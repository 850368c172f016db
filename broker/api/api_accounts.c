/*
 * api_accounts.c - users, tokens, client certificates and organizations.
 */
#include "api_int.h"

/* --- "organization" in a user or token body ----------------------------------------------- */

static void on_org_resolved(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "no organization \"%s\" you may add users to",
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
            c, 422, QR_CODE_INVALID,
            "organization must be a string of 1 to 200 characters and no control characters");
        return 1;
    }
    if (c->user.role != QR_ROLE_ADMIN) {
        respond_error(c, 403, QR_CODE_FORBIDDEN, "only an admin may name an organization");
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
        respond_error(c, 409, QR_CODE_USER_EXISTS, "a user named \"%s\" exists in the organization",
                      json_string_value(json_object_get(c->out, "name")));
        return;
    }
    json_t *o = c->out;
    c->out = NULL;
    json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(o, "role", json_string(PQgetvalue(res, 0, 1)));
    respond_json(c, 201, o);
}

/* --- GET /v1/whoami ------------------------------------------------------------------------- */

/* The caller as the token resolved it, and the deployment that answered:
 * what an agent keys its spooled results by (docs/LEASES.md). */
void h_whoami(ctx_t *c)
{
    if (!c->b->deployment[0]) {
        respond_error(c, 503, QR_CODE_UNAVAILABLE,
                      "the deployment id is not known yet: PostgreSQL has not answered since "
                      "this broker started; retry");
        return;
    }
    respond_json(c, 200,
                 json_pack("{s:I, s:s, s:s, s:I, s:s}", "user_id", (json_int_t)c->user.id, "name",
                           c->user.name, "role", role_name(c->user.role), "organization_id",
                           (json_int_t)c->user.org_id, "deployment", c->b->deployment));
}

void h_user_create(ctx_t *c)
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
        respond_error(c, 503, QR_CODE_UNAVAILABLE,
                      "the broker could not draw random bytes for a token; retry");
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
            respond_error(c, 403, QR_CODE_FORBIDDEN,
                          "you may not issue a token for the existing user \"%s\"", user);
        else
            respond_error(c, 409, QR_CODE_CONFLICT, "user \"%s\" exists with another role", user);
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

void h_token_create(ctx_t *c)
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
        respond_error(c, 503, QR_CODE_UNAVAILABLE,
                      "the broker could not draw random bytes for a token; retry");
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

void h_token_list(ctx_t *c)
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
        respond_error(c, 404, QR_CODE_NOT_FOUND, "no live token %" PRId64, c->ids[0]);
        return;
    }
    qr_broker_token_revoked(c->b);
    respond_json(c, 200, json_pack("{sI s:b}", "id", (json_int_t)c->ids[0], "revoked", 1));
}

void h_token_revoke(ctx_t *c)
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
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "this certificate is mapped already (see cert list)");
        return;
    }
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "no user \"%s\" in your organization", user);
        return;
    }
    if (PQgetisnull(res, 0, 2)) {
        respond_error(c, 403, QR_CODE_FORBIDDEN, "only an admin may map a certificate to an admin");
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
void h_cert_add(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    const char *user = json_string_value(json_object_get(c->body, "user"));
    json_t *pem = json_object_get(c->body, "certificate");
    if (!valid_name(user)) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "user must be a string of 1 to 200 characters and no control characters");
        return;
    }
    if (!json_is_string(pem) || json_string_length(pem) > MAX_CERT_PEM_BYTES) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "certificate must be a PEM certificate of at most %d bytes",
                      MAX_CERT_PEM_BYTES);
        return;
    }
    char sha[65], subject[1001], why[300], secs[24], org[24], when[32];
    int64_t not_after;
    if (qr_tls_cert_info(json_string_value(pem), json_string_length(pem), sha, subject,
                         sizeof subject, &not_after, why, sizeof why) < 0) {
        respond_error(c, 422, QR_CODE_INVALID, "the certificate cannot be read: %s", why);
        return;
    }
    if (not_after <= qr_now_ms() / 1000) {
        respond_error(c, 422, QR_CODE_INVALID, "the certificate has expired");
        return;
    }
    time_t t = (time_t)not_after;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    c->out = json_pack("{s:s s:s s:s s:s}", "user", user, "sha256", sha, "subject", subject,
                       "not_after", when);
    if (!c->out) {
        respond_error(c, 422, QR_CODE_INVALID, "certificate: the subject is not UTF-8");
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

void h_cert_list(ctx_t *c)
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
        respond_error(c, 404, QR_CODE_NOT_FOUND, "no live certificate mapping %" PRId64, c->ids[0]);
        return;
    }
    qr_broker_token_revoked(c->b); /* every broker forgets its cached credentials */
    respond_json(c, 200, json_pack("{sI s:b}", "id", (json_int_t)c->ids[0], "revoked", 1));
}

void h_cert_revoke(ctx_t *c)
{
    char id[24], org[24];
    const char *params[] = {i64(c->ids[0], id), i64(c->user.org_id, org), role_name(c->user.role)};
    if (qr_pg_query(c->b->pg, QR_SQL_CERT_REVOKE, 3, params, on_cert_revoked, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- organizations: POST /v1/organizations, GET /v1/organizations --------------------------- */

static void on_org_created(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res && sqlstate && !strcmp(sqlstate, "23505")) {
        respond_error(c, 409, QR_CODE_CONFLICT, "an organization named \"%s\" exists",
                      json_string_value(json_object_get(c->body, "name")));
        return;
    }
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 403, QR_CODE_FORBIDDEN,
                      "only an owner organization's admin may create one");
        return;
    }
    respond_json(c, 201,
                 json_pack("{sI s:s s:s}", "id",
                           (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "name",
                           PQgetvalue(res, 0, 1), "kind", PQgetvalue(res, 0, 2)));
}

void h_org_create(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    const char *name = json_string_value(json_object_get(c->body, "name"));
    json_t *kind = json_object_get(c->body, "kind");
    const char *k = kind && !json_is_null(kind) ? json_string_value(kind) : "vendor";
    if (!valid_name(name)) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "name must be a string of 1 to 200 characters and no control characters");
        return;
    }
    if (!k || (strcmp(k, "vendor") && strcmp(k, "owner"))) {
        respond_error(c, 422, QR_CODE_INVALID, "kind must be vendor or owner");
        return;
    }
    char org[24];
    const char *params[] = {i64(c->user.org_id, org), name, k};
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_CREATE, 3, params, on_org_created, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* A JSON array from PostgreSQL, answered as {c->list_key: [...]}. */
void on_json_list(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad list");
        return;
    }
    respond_json(c, 200, json_pack("{s:o}", c->list_key, o));
}

void h_org_list(ctx_t *c)
{
    char org[24];
    const char *params[] = {i64(c->user.org_id, org)};
    c->list_key = "organizations";
    if (qr_pg_query(c->b->pg, QR_SQL_ORG_LIST, 1, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
