/*
 * openapi.c - GET /v1/openapi.json: the OpenAPI 3.1 document of the API,
 * built from the route table and the descriptions in openapi.json.
 *
 * openapi.json (built into the binary) holds the document's head
 * (info, components, security) and one description per operation, keyed
 * "METHOD /path/{param}". The paths of the document come from the route
 * table: each route takes its description, and its roles from the table
 * (x-quorum-roles), so what the document says a role may do is what the
 * router enforces. A route without a description, or a description
 * without a route, makes the build fail: `quorumd openapi` exits 1 naming
 * it (the tests run it), and the route answers 500 rather than a document
 * that forgets a route.
 */
#include <ctype.h>

#include "api_int.h"

extern const unsigned char qr_openapi_desc[];
extern const size_t qr_openapi_desc_len;

/* "/v1/projects/{id}/leases/{lease}" -> 1 when it is PATTERN with each
 * "{name}" where PATTERN has '*'. */
static int same_path(const char *described, const char *pattern)
{
    while (*described && *pattern) {
        if (*described == '{' && *pattern == '*') {
            const char *close = strchr(described, '}');
            if (!close || close == described + 1)
                return 0;
            described = close + 1;
            pattern++;
            continue;
        }
        if (*described != *pattern)
            return 0;
        described++;
        pattern++;
    }
    return !*described && !*pattern;
}

static json_t *roles_of(int roles)
{
    static const char *names[] = {QR_ROLE_NAMES};
    static const int bits[] = {QR_ROLE_ADMIN, QR_ROLE_MANAGER, QR_ROLE_REVIEWER, QR_ROLE_ANNOTATOR};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (roles & bits[i])
            json_array_append_new(a, json_string(names[i]));
    return a;
}

json_t *qr_api_openapi(char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)qr_openapi_desc, qr_openapi_desc_len, 0, &jerr);
    if (!doc) {
        snprintf(err, errlen, "openapi.json: line %d: %s", jerr.line, jerr.text);
        return NULL;
    }
    json_t *ops = json_object_get(doc, "operations");
    if (!json_is_object(ops)) {
        snprintf(err, errlen, "openapi.json: no \"operations\" object");
        json_decref(doc);
        return NULL;
    }
    json_incref(ops);
    json_object_del(doc, "operations");
    json_t *paths = json_object();
    json_t *used = json_object();
    int bad = 0;
    for (size_t i = 0; i < qr_api_nroutes && !bad; i++) {
        const route_t *r = &qr_api_routes[i];
        const char *key;
        json_t *op, *found = NULL;
        const char *found_path = NULL;
        json_object_foreach(ops, key, op)
        {
            const char *sp = strchr(key, ' ');
            if (!sp || (size_t)(sp - key) != strlen(r->method) ||
                strncmp(key, r->method, (size_t)(sp - key)) || !same_path(sp + 1, r->pattern))
                continue;
            found = op;
            found_path = sp + 1;
            json_object_set_new(used, key, json_true());
            break;
        }
        if (!found) {
            snprintf(err, errlen, "route %s %s has no description in openapi.json", r->method,
                     r->pattern);
            bad = 1;
            break;
        }
        json_t *o = json_deep_copy(found);
        if (r->roles)
            json_object_set_new(o, "x-quorum-roles", roles_of(r->roles));
        else
            json_object_set_new(o, "security", json_array()); /* no authentication */
        char method[16];
        size_t n = strlen(r->method);
        for (size_t k = 0; k < n && k < sizeof method - 1; k++)
            method[k] = (char)tolower((unsigned char)r->method[k]);
        method[n < sizeof method - 1 ? n : sizeof method - 1] = '\0';
        json_t *item = json_object_get(paths, found_path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, found_path, item);
        }
        json_object_set_new(item, method, o);
    }
    if (!bad && json_object_size(used) != json_object_size(ops)) {
        const char *key;
        json_t *op;
        json_object_foreach(ops, key, op)
        {
            if (!json_object_get(used, key)) {
                snprintf(err, errlen, "openapi.json describes %s, which is no route", key);
                break;
            }
        }
        bad = 1;
    }
    json_decref(used);
    json_decref(ops);
    if (bad) {
        json_decref(paths);
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "paths", paths);
    return doc;
}

/* --- GET /v1/openapi.json ------------------------------------------------------------------ */

void h_openapi(ctx_t *c)
{
    char err[256];
    json_t *doc = qr_api_openapi(err, sizeof err);
    if (!doc) {
        qr_error("openapi: %s", err);
        respond_error(c, 500, QR_CODE_INTERNAL, "the API description is broken: %s", err);
        return;
    }
    respond_json(c, 200, doc);
}

int qr_api_print_openapi(FILE *f)
{
    char err[256];
    json_t *doc = qr_api_openapi(err, sizeof err);
    if (!doc) {
        fprintf(stderr, "quorumd: %s\n", err);
        return -1;
    }
    int rc = json_dumpf(doc, f, JSON_INDENT(1)) == 0 && fputc('\n', f) != EOF ? 0 : -1;
    json_decref(doc);
    return rc;
}
