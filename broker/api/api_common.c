/*
 * api_common.c - what every handler shares: answering (JSON, errors, backend failures), body
 * parsing, the project cache rows, the lease event record.
 */
#include "api_int.h"

/* --- responses ----------------------------------------------------------------- */

static void on_ctx_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ctx_free(ctx_t *c)
{
    qr_import_free(&c->imp);
    export_free(c);
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
    json_decref(c->labels);
    free(c->idem_key);
    free(c->idem_label);
    free(c->import_file);
    free(c->import_key);
    free(c->external_id_key);
    free(c->annotations_as);
    if (c->timer_inited) {
        c->wait_timer.data = c;
        uv_close((uv_handle_t *)&c->wait_timer, on_ctx_timer_closed);
        return;
    }
    free(c);
}

/* Answers c with j (taken) and frees c. Returns qr_http_respond's code: 0,
 * or negative when the client was gone and the answer went nowhere. */
int respond_json(ctx_t *c, int status, json_t *j)
{
    if (c->parent) {
        c->child_done(c, status, j);
        return 0;
    }
    if (c->timed)
        qr_metrics_request((qr_metric_request_t)(c->timed - 1), uv_hrtime() - c->start_ns, status);
    /* 12 significant digits keep rounded figures readable (891.21, not
     * 891.21000000000004); the agreement report keeps all 17, so it equals
     * the offline computation to the last bit. */
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(c->full_precision ? 17 : 12));
    json_decref(j);
    int rc = qr_http_respond(c->req, status, "application/json", s, s ? strlen(s) : 0,
                             c->b->deployment_header);
    free(s);
    ctx_free(c);
    return rc;
}

qr_pg_t *report_pg(ctx_t *c)
{
    c->read = qr_read_pool_choose(c->b->read, c->b->pg);
    return c->read.pg;
}

int report_query(ctx_t *c, int unprepared, const char *sql, int nparams, const char *const *params,
                 qr_pg_cb cb)
{
    if (!c->read.pg)
        report_pg(c);
    return qr_read_query(&c->read, unprepared, sql, nparams, params, cb, c);
}

void put_read_from(const ctx_t *c, json_t *o)
{
    if (c->read.from == QR_READ_NONE || !json_is_object(o))
        return;
    if (c->read.from == QR_READ_REPLICA) {
        double stale = qr_read_stale_s(&c->read);
        json_t *had = json_object_get(o, "stale_seconds_max");
        if (json_is_number(had) && json_number_value(had) > stale)
            stale = json_number_value(had);
        json_object_set_new(o, "read_from", json_string("replica"));
        json_object_set_new(o, "stale_seconds_max", json_real(stale));
    } else if (!json_object_get(o, "read_from")) {
        json_object_set_new(o, "read_from", json_string("primary"));
    }
}

int respond_json_text(ctx_t *c, int status, const char *s, size_t len)
{
    if (c->timed)
        qr_metrics_request((qr_metric_request_t)(c->timed - 1), uv_hrtime() - c->start_ns, status);
    int rc = qr_http_respond(c->req, status, "application/json", s, len, c->b->deployment_header);
    ctx_free(c);
    return rc;
}

void respond_error(ctx_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qr_validate_scrub(msg); /* else json_pack fails on a cut character: an empty answer */
    respond_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void respond_backend(ctx_t *c, const char *what, const char *err)
{
    qr_warn("%s %s: %s failed: %s", c->req->method, c->req->path, what, err ? err : "?");
    respond_error(c, 503, QR_CODE_UNAVAILABLE, "%s is not available right now; retry", what);
}

/* --- helpers ---------------------------------------------------------------------- */

char *i64(int64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

uint64_t import_seed(void)
{
    char hex[17];
    if (qr_random_hex(8, hex) < 0)
        return (uint64_t)qr_now_ms();
    return strtoull(hex, NULL, 16);
}

static int hex_value(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Value of key in a URL query string ("a=1&b=2"), percent-decoded ('+' is
 * a space) into buf (len bytes, cut to fit); NULL if absent. A "%00" or a
 * bad escape is kept as it is written. */
const char *query_param(const char *query, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n >= klen + 1 && !strncmp(p, key, klen) && p[klen] == '=') {
            size_t o = 0;
            for (const char *v = p + klen + 1, *e = p + n; v < e && o + 1 < len; v++) {
                int hi, lo;
                if (*v == '%' && e - v >= 3 && (hi = hex_value(v[1])) >= 0 &&
                    (lo = hex_value(v[2])) >= 0 && (hi | lo)) {
                    buf[o++] = (char)(hi * 16 + lo);
                    v += 2;
                } else {
                    buf[o++] = *v == '+' ? ' ' : *v;
                }
            }
            buf[o] = '\0';
            return buf;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* Responds with why validate.h refused a body. */
void respond_invalid(ctx_t *c, const qr_invalid_t *why)
{
    /* Only these two refusals carry a field (validate.h): a qr_invalid_t
     * filled by hand elsewhere need not set it. */
    if ((strcmp(why->code, QR_CODE_INVALID_SCHEMA) && strcmp(why->code, QR_CODE_INVALID_LABELS)) ||
        !why->field[0]) {
        respond_error(c, why->status, why->code, "%s", why->message);
        return;
    }
    /* A label schema's or a submission's labels: the field they broke. */
    respond_json(c, why->status,
                 json_pack("{s:{s:s,s:s,s:s}}", "error", "code", why->code, "message", why->message,
                           "field", why->field));
}

/* Parses the body as a JSON object (qr_validate_body); an empty body is {}
 * when allow_empty. Responds 400 and returns -1 on failure. */
int parse_body(ctx_t *c, int allow_empty)
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
 * body has no validator in validate.h yet. */
int int_field(ctx_t *c, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    qr_invalid_t why;
    if (qr_validate_int(c->body, key, lo, hi, dflt, out, &why) < 0) {
        respond_invalid(c, &why);
        return -1;
    }
    return 0;
}

const char *role_name(int role)
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

/* Records one lease event for the throughput log (batched, off the path). */
void record_event(ctx_t *c, qr_event_kind_t kind, int64_t task, int64_t token, int64_t at_ms,
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

int query_text_lengths(ctx_t *c, const char *task, qr_pg_cb cb)
{
    const char *keys[QR_LABEL_FIELDS_MAX];
    int n = qr_label_data_keys(c->project->schema, c->labels, keys, QR_LABEL_FIELDS_MAX);
    json_t *list = json_array();
    for (int i = 0; i < n && i < QR_LABEL_FIELDS_MAX; i++)
        json_array_append_new(list, json_string(keys[i]));
    char *keys_text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    char proj[24];
    const char *params[] = {task, i64(c->project->id, proj), keys_text};
    int rc = qr_pg_query(c->b->pg, QR_SQL_TASK_TEXT_LENGTHS, 3, params, cb, c);
    free(keys_text);
    return rc;
}

int check_text_lengths(ctx_t *c, const PGresult *res)
{
    int n = PQntuples(res);
    const char *keys[QR_LABEL_FIELDS_MAX];
    int64_t lengths[QR_LABEL_FIELDS_MAX];
    for (int i = 0; i < n && i < QR_LABEL_FIELDS_MAX; i++) {
        keys[i] = PQgetvalue(res, i, 0);
        lengths[i] = PQgetisnull(res, i, 1) ? QR_LABEL_DATA_MISSING
                     : strcmp(PQgetvalue(res, i, 1), "string")
                         ? QR_LABEL_DATA_NOT_TEXT
                         : strtoll(PQgetvalue(res, i, 2), NULL, 10);
    }
    qr_label_data_t data = {n < QR_LABEL_FIELDS_MAX ? n : QR_LABEL_FIELDS_MAX, keys, lengths};
    qr_label_error_t lerr;
    if (qr_label_check(c->project->schema, c->labels, &data, NULL, &lerr) < 0) {
        qr_invalid_t why;
        qr_validate_labels_refusal(&lerr, &why);
        respond_invalid(c, &why);
        return -1;
    }
    return 0;
}
