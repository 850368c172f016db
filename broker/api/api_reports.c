/*
 * api_reports.c - progress, report, agreement and throughput (export:
 * api_export.c).
 */
#include "api_int.h"

#include "agreement_interval.h"
#include "sql_quality.h"

/* --- GET /v1/projects/{id}/progress ----------------------------------------------------------- */

static void on_progress(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad progress row");
        return;
    }
    put_read_from(c, o);
    respond_json(c, 200, o);
}

void h_progress(ctx_t *c)
{
    char proj[24], user[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user)};
    if (report_query(c, 0, QR_SQL_PROGRESS, 2, params, on_progress) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/report ---------------------------------------------------------------
 */

static json_t *metric_value(json_t *agr, const char *name)
{
    json_t *m = json_object_get(json_object_get(agr, "metrics"), name);
    json_t *v = json_object_get(m, "value");
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

/* The project's label schema as the live agreement reads it; NULL for a
 * plain project. The caller json_decref()s it. */
static json_t *schema_of(const ctx_t *c)
{
    const qr_label_schema_t *s = c->project->schema;
    return s && !s->implied ? qr_label_schema_to_json(s) : NULL;
}

/* The headline figures of each field type, as the report shows them. */
static const struct {
    const char *type;
    const char *metrics[3];
} headline[] = {
    {"choice", {"krippendorff_alpha_nominal", "percent_agreement", NULL}},
    {"multi_choice", {"krippendorff_alpha_masi", "krippendorff_alpha_jaccard", NULL}},
    {"rating", {"krippendorff_alpha_interval", "krippendorff_alpha_ordinal", NULL}},
    {"spans", {"span_f1_exact", "span_f1_overlap", "token_alpha_nominal"}},
    {"boxes", {"box_f1", "box_mean_iou", NULL}},
    {"text", {"text_exact_agreement", "text_mean_similarity", NULL}},
};

/* A schema project's fields for the report: {"<field>": {"type", "pairable_tasks",
 * "<metric>": value or null, ...}}, the headline figures of each type. */
static json_t *report_fields(json_t *fields)
{
    json_t *out = json_object();
    const char *name;
    json_t *f;
    json_object_foreach(fields, name, f)
    {
        const char *type = json_string_value(json_object_get(f, "type"));
        json_t *o = json_pack(
            "{s:s s:I}", "type", type ? type : "", "pairable_tasks",
            json_integer_value(json_object_get(json_object_get(f, "counts"), "pairable_items")));
        for (size_t k = 0; type && k < sizeof headline / sizeof headline[0]; k++)
            for (int m = 0; !strcmp(headline[k].type, type) && m < 3 && headline[k].metrics[m]; m++)
                json_object_set_new(o, headline[k].metrics[m],
                                    metric_value(f, headline[k].metrics[m]));
        json_object_set_new(out, name, o);
    }
    return out;
}

/* The row of rows (a live report's per_annotator) whose annotator_id is id,
 * or NULL. */
static json_t *row_of(const json_t *rows, json_int_t id)
{
    size_t k;
    json_t *g;
    json_array_foreach(rows, k, g)
    {
        if (json_integer_value(json_object_get(g, "annotator_id")) == id)
            return g;
    }
    return NULL;
}

/* Each per_annotator row of the report (o) gets, from the live report
 * (matched by annotator id): "gold_accuracy": {"value", "low", "high" (its
 * 95 % interval), "compared"} from its gold section, null with no gold
 * answer compared; and "estimated_accuracy", its Dawid-Skene estimate (a
 * plain project's), when it has one. */
static void put_live_accuracies(json_t *o, const json_t *live)
{
    const json_t *gold = json_object_get(json_object_get(live, "gold"), "per_annotator");
    const json_t *ds = json_object_get(json_object_get(live, "dawid_skene"), "per_annotator");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(o, "per_annotator"), i, row)
    {
        json_int_t id = json_integer_value(json_object_get(row, "annotator_id"));
        json_t *g = row_of(gold, id), *d = row_of(ds, id);
        json_t *acc =
            g ? json_pack("{s:O s:O s:O s:O}", "value", json_object_get(g, "accuracy"), "low",
                          json_object_get(g, "low"), "high", json_object_get(g, "high"), "compared",
                          json_object_get(g, "compared"))
              : NULL;
        json_object_set_new(row, "gold_accuracy", acc ? acc : json_null());
        if (d)
            json_object_set(row, "estimated_accuracy", json_object_get(d, "estimated_accuracy"));
    }
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
    put_live_accuracies(o, report);
    /* Where the counts were read, merged with where the agreement was. */
    json_t *from = json_object_get(report, "read_from");
    if (from) {
        json_object_set(o, "read_from", from);
        json_t *stale = json_object_get(report, "stale_seconds_max");
        if (stale)
            json_object_set(o, "stale_seconds_max", stale);
    }
    put_read_from(c, o);
    if (c->user.org_id != c->project->org_id) {
        /* A vendor's report covers its crew only; the agreement report
         * covers every organization's annotators, so it is left out (its
         * crew's gold accuracy, per annotator, is theirs). */
        json_object_set_new(o, "agreement", json_null());
        json_decref(report);
        respond_json(c, 200, o);
        return;
    }
    /* pairable_tasks: the tasks with two or more annotations, the ones
     * both figures are computed over; judgements: every annotation read. */
    json_t *counts = json_object_get(report, "counts");
    json_object_set_new(
        o, "agreement",
        json_pack("{s:o s:o s:I s:I}", "percent_agreement",
                  metric_value(report, "percent_agreement"), "krippendorff_alpha_nominal",
                  metric_value(report, "krippendorff_alpha_nominal"), "pairable_tasks",
                  json_integer_value(json_object_get(counts, "pairable_items")), "judgements",
                  json_integer_value(json_object_get(counts, "judgements"))));
    if (c->project->schema && !c->project->schema->implied)
        json_object_set_new(json_object_get(o, "agreement"), "fields",
                            report_fields(json_object_get(report, "fields")));
    json_decref(report);
    respond_json(c, 200, o);
}

/* The quality object's audited_accuracy, {"agree", "compared"} as the
 * report's SQL counts them, gets "value", "low" and "high" (its 95 %
 * Wilson interval), null when no audited task has a human consensus yet. */
static void put_audited_accuracy(json_t *acc)
{
    json_int_t agree = json_integer_value(json_object_get(acc, "agree"));
    json_int_t n = json_integer_value(json_object_get(acc, "compared"));
    double low, high;
    int ok = qr_wilson_interval(agree, n, QR_Z95, &low, &high) == 0;
    if (!acc)
        return;
    json_object_set_new(acc, "value", ok ? json_real((double)agree / (double)n) : json_null());
    json_object_set_new(acc, "low", ok ? json_real(low) : json_null());
    json_object_set_new(acc, "high", ok ? json_real(high) : json_null());
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
    put_audited_accuracy(json_object_get(json_object_get(c->out, "quality"), "audited_accuracy"));
    /* Fresh: the report's agreement covers every annotation it counted. */
    json_t *schema = schema_of(c);
    qr_live_agreement_get(c->b->agreement, c->project->id, schema, 1, QR_LIVE_DAWID_SKENE,
                          on_report_agreement, c);
    json_decref(schema);
}

/* The organization whose crew a vendor's reads are limited to, as a
 * parameter: "0" (everyone) for the project's own organization. */
static const char *crew_scope(const ctx_t *c, char buf[24])
{
    return i64(c->user.org_id == c->project->org_id ? 0 : c->user.org_id, buf);
}

void h_report(ctx_t *c)
{
    char proj[24], org[24], idle[24], pace[24], now[24];
    const char *params[] = {i64(c->project->id, proj), crew_scope(c, org),
                            i64(QR_ANALYTICS_IDLE_GAP_MS, idle),
                            i64(QR_ANALYTICS_PACE_SPAN_MS, pace), i64(qr_now_ms(), now)};
    if (report_query(c, 0, QR_SQL_REPORT, 5, params, on_report_counts) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/agreement ------------------------------------------------------------
 */

/* The agreement report's extras asked in the query string beyond the live
 * report's own (?confusion=1, ?over_time=1), run one after the other on
 * c->out once the live report is in (kept in c->max, which only lease
 * requests use otherwise). */
#define EXTRA_CONFUSION 1
#define EXTRA_OVER_TIME 2

static void agreement_extras(ctx_t *c);

/* The project's choice fields as QR_SQL_AGREEMENT_CONFUSION takes them:
 * [{"field", "labels"}, ...] in schema order (a plain project: "label"). */
static char *choice_fields(const ctx_t *c)
{
    const qr_label_schema_t *s = c->project->schema;
    json_t *a = json_array();
    for (int i = 0; s && i < s->nfields; i++) {
        const qr_label_field_t *f = &s->fields[i];
        if (f->type != QR_LABEL_CHOICE)
            continue;
        json_t *labels = json_array();
        for (int k = 0; k < f->nchoices; k++)
            json_array_append_new(labels, json_string(f->choices[k]));
        json_array_append_new(a, json_pack("{s:s s:o}", "field", f->name, "labels", labels));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static void on_agreement_extra(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "bad agreement row");
        return;
    }
    int which = c->max & EXTRA_CONFUSION ? EXTRA_CONFUSION : EXTRA_OVER_TIME;
    json_object_set_new(c->out, which == EXTRA_CONFUSION ? "confusion" : "over_time", o);
    c->max &= ~which;
    agreement_extras(c);
}

static void agreement_extras(ctx_t *c)
{
    if (!c->max) {
        json_t *o = c->out;
        c->out = NULL;
        put_read_from(c, o);
        respond_json(c, 200, o);
        return;
    }
    char proj[24];
    char *fields = choice_fields(c);
    const char *params[] = {i64(c->project->id, proj), fields,
                            !c->project->schema || c->project->schema->implied ? "true" : "false"};
    /* The extras read where the first of them did. */
    int rc = report_query(
        c, 0, c->max & EXTRA_CONFUSION ? QR_SQL_AGREEMENT_CONFUSION : QR_SQL_AGREEMENT_OVER_TIME, 3,
        params, on_agreement_extra);
    free(fields);
    if (rc < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
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
    c->out = report;
    agreement_extras(c);
}

/* A query flag: present and not "0". */
static int flag_param(const ctx_t *c, const char *key)
{
    char v[16];
    const char *s = query_param(c->req->query, key, v, sizeof v);
    return s && strcmp(s, "0");
}

void h_agreement(ctx_t *c)
{
    int extras = (flag_param(c, "per_item") ? QR_LIVE_ITEMS : 0) |
                 (flag_param(c, "dawid_skene") ? QR_LIVE_DAWID_SKENE : 0);
    c->max = (flag_param(c, "confusion") ? EXTRA_CONFUSION : 0) |
             (flag_param(c, "over_time") ? EXTRA_OVER_TIME : 0);
    json_t *schema = schema_of(c);
    qr_live_agreement_get(c->b->agreement, c->project->id, schema, flag_param(c, "fresh"), extras,
                          on_live_agreement, c);
    json_decref(schema);
}

/* --- GET /v1/projects/{id}/throughput ---------------------------------------- */

static void on_throughput(qr_report_status_t st, json_t *data, const char *message, void *arg)
{
    ctx_t *c = arg;
    switch (st) {
    case QR_REPORT_OK:
        put_read_from(c, data);
        respond_json(c, 200, data);
        return;
    case QR_REPORT_NOT_FOUND:
        respond_error(c, 404, QR_CODE_NOT_FOUND, "%s", message);
        return;
    case QR_REPORT_INVALID:
        respond_error(c, 422, QR_CODE_INVALID, "%s", message);
        return;
    case QR_REPORT_UNAVAILABLE:
        break;
    }
    respond_error(c, 503, QR_CODE_UNAVAILABLE, "%s", message);
}

static void throughput_run(ctx_t *c)
{
    int64_t now_ms = c->granted_ms;
    qr_throughput_query_t q;
    char msg[256];
    if (qr_analytics_parse_query(c->req->query, now_ms, &q, msg, sizeof msg) < 0) {
        respond_error(c, 422, QR_CODE_INVALID, "%s", msg);
        return;
    }
    if (q.annotator_name[0])
        q.annotator = c->user_resolved;
    /* A vendor (another organization than the project's) sees its own crew. */
    int64_t org = c->user.org_id == c->project->org_id ? 0 : c->user.org_id;
    report_pg(c);
    if (qr_analytics_throughput(&c->read, c->project->id, org, &q, now_ms, on_throughput, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* ?annotator= takes a user id or a user name (name@organization for one of
 * another organization): a name is looked up first (resolve_user). */
void h_throughput(ctx_t *c)
{
    qr_throughput_query_t q;
    char msg[256];
    c->granted_ms = qr_now_ms();
    if (qr_analytics_parse_query(c->req->query, c->granted_ms, &q, msg, sizeof msg) < 0) {
        respond_error(c, 422, QR_CODE_INVALID, "%s", msg);
        return;
    }
    if (q.annotator_name[0])
        resolve_user(c, q.annotator_name, throughput_run);
    else
        throughput_run(c);
}
