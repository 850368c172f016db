/*
 * api_manage.c - managing projects and users (issue 14): the list of an
 * organization's projects, a project's update, archive and delete, the list
 * of an organization's users, and the lookup that lets a user name stand
 * wherever a user id is taken.
 *
 * Who may: listing projects, anyone with a token (each sees its own
 * organization's projects and those shared with it); listing users, the
 * organization's admins, managers and reviewers (their own organization
 * only); changing, archiving and deleting a project, its own organization's
 * admins and managers (ROUTE_NOT_VENDOR). No body is read before that is
 * settled (router.c).
 */
#include "api_int.h"

/* --- paging: ?limit=N&after=ID ------------------------------------------------------------- */

#define PAGE_DEFAULT 100
#define PAGE_MAX     1000

/* Refuses (422, and returns -1) a parameter of c's query not in allowed
 * (a NULL-terminated list). */
static int only_params(ctx_t *c, const char *const *allowed)
{
    const char *q = c->req->query ? c->req->query : "";
    while (*q) {
        size_t n = strcspn(q, "&");
        size_t k = strcspn(q, "=");
        if (k > n)
            k = n;
        int known = 0;
        for (int i = 0; allowed[i] && !known; i++)
            known = strlen(allowed[i]) == k && !strncmp(q, allowed[i], k);
        if (n && !known) {
            qr_buf_t b;
            qr_buf_init(&b);
            for (int i = 0; allowed[i]; i++)
                qr_buf_appendf(&b, "%s%s", i ? ", " : "", allowed[i]);
            respond_error(c, 422, QR_CODE_INVALID, "unknown parameter \"%.*s\" (%s)",
                          (int)(k > 40 ? 40 : k), q, b.data ? b.data : "none");
            qr_buf_free(&b);
            return -1;
        }
        q += n + (q[n] == '&');
    }
    return 0;
}

/* Reads the paging parameters of c's query, the only ones it may have.
 * Responds 422 and returns -1 on a bad one. */
static int page_params(ctx_t *c, int64_t *limit, int64_t *after)
{
    static const char *const allowed[] = {"limit", "after", NULL};
    *limit = PAGE_DEFAULT;
    *after = 0;
    if (only_params(c, allowed) < 0)
        return -1;
    char buf[32];
    const char *v;
    char *end;
    if ((v = query_param(c->req->query, "limit", buf, sizeof buf))) {
        long long l = strtoll(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end || l < 1 || l > PAGE_MAX) {
            respond_error(c, 422, QR_CODE_INVALID, "limit must be an integer from 1 to %d",
                          PAGE_MAX);
            return -1;
        }
        *limit = l;
    }
    if ((v = query_param(c->req->query, "after", buf, sizeof buf))) {
        long long a = strtoll(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end || a < 0 || strlen(v) > 18) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "after must be an id (0 or more): the next_after of the page before");
            return -1;
        }
        *after = a;
    }
    return 0;
}

/* --- GET /v1/projects ------------------------------------------------------------------------ */

/* Rows of QR_SQL_PROJECT_JSON, one more than the page asked (c->max): the
 * page, and next_after when there is more. Each row is answered in the
 * shape of GET /v1/projects/{id}. */
static void on_project_list(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res);
    int more = n > c->max;
    if (more)
        n = c->max;
    json_t *list = json_array();
    int64_t last = 0;
    for (int i = 0; i < n; i++) {
        json_t *o = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        qr_project_t *p = o ? qr_project_from_json(o) : NULL;
        json_decref(o);
        if (!p) {
            json_decref(list);
            respond_backend(c, "PostgreSQL", "bad project row");
            return;
        }
        json_array_append_new(list, qr_project_to_json(p));
        last = p->id;
        qr_project_release(p);
    }
    respond_json(c, 200,
                 json_pack("{s:o s:o}", "projects", list, "next_after",
                           more ? json_integer((json_int_t)last) : json_null()));
}

/* A page of the caller's organization's rows: sql takes $1 the
 * organization, $2 the id to start after, $3 the page size + 1 (the extra
 * row says there is more); cb answers. */
static void org_page(ctx_t *c, const char *sql, qr_pg_cb cb)
{
    int64_t limit, after;
    if (page_params(c, &limit, &after) < 0)
        return;
    char org[24], a[24], l[24];
    c->max = (int)limit;
    const char *params[] = {i64(c->user.org_id, org), i64(after, a), i64(limit + 1, l)};
    if (qr_pg_query(c->b->pg, sql, 3, params, cb, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_project_list(ctx_t *c)
{
    org_page(c, QR_SQL_PROJECT_LIST, on_project_list);
}

/* --- PATCH /v1/projects/{id} ---------------------------------------------------------------- */

/* What a PATCH may change; NULL where the body leaves it. Strings are
 * owned (freed by patch_free). */
typedef struct patch_s {
    char *name, *labels, *apt, *overlap_annotations, *overlap_fraction, *ttl, *sampling, *field;
    char *aa_set, *aa_conf, *aa_audit;       /* auto-accept: "true" when the confidence is given */
    char *ov_set, *ov_min, *ov_max, *ov_thr; /* dynamic overlap: "true" when any key is given */
    const char *shown;                       /* show_predictions: "true", "false" or NULL */
    char *g_rate, *g_onboarding, *g_min_set, *g_min, *g_count; /* gold (issue 16) */
    int gold_changed; /* a gold key is given: the lease engine reloads the gold set */
    char *rv_mode, *rv_share, *rv_threshold; /* review settings given, or NULL */
    char *ov_measure, *ov_prior;             /* dynamic overlap's measure (sql/0034), or NULL */
} patch_t;

static void patch_free(patch_t *pt)
{
    free(pt->name);
    free(pt->labels);
    free(pt->apt);
    free(pt->overlap_annotations);
    free(pt->overlap_fraction);
    free(pt->ttl);
    free(pt->sampling);
    free(pt->field);
    free(pt->aa_set);
    free(pt->aa_conf);
    free(pt->aa_audit);
    free(pt->ov_set);
    free(pt->ov_min);
    free(pt->ov_max);
    free(pt->ov_thr);
    free(pt->g_rate);
    free(pt->g_onboarding);
    free(pt->g_min_set);
    free(pt->g_min);
    free(pt->g_count);
    free(pt->rv_mode);
    free(pt->rv_share);
    free(pt->rv_threshold);
    free(pt->ov_measure);
    free(pt->ov_prior);
}

/* A label as stored: without the white space around it (a copy). */
static char *trimmed(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *t = qr_xmalloc(n + 1);
    memcpy(t, s, n);
    t[n] = '\0';
    return t;
}

/* An integer field that may only rise from now (or move freely when now
 * is negative): fills *out with its text. 0 when absent, 1 when set, -1
 * with why filled. */
static int patch_int(json_t *body, const char *key, int64_t lo, int64_t hi, int64_t now, char **out,
                     qr_invalid_t *why)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    int64_t x;
    if (json_is_null(v) || qr_validate_int(body, key, lo, hi, 0, &x, why) < 0) {
        if (json_is_null(v)) {
            why->status = 422;
            why->code = QR_CODE_INVALID;
            why->field[0] = '\0';
            snprintf(why->message, sizeof why->message,
                     "%s must be an integer from %" PRId64 " to %" PRId64, key, lo, hi);
        }
        return -1;
    }
    if (now >= 0 && x < now) {
        why->status = 422;
        why->code = QR_CODE_INVALID;
        why->field[0] = '\0';
        snprintf(why->message, sizeof why->message,
                 "%s can only rise: it is %" PRId64 ", so %" PRId64 " is refused", key, now, x);
        return -1;
    }
    *out = qr_xasprintf("%" PRId64, x);
    return 1;
}

static int refuse(qr_invalid_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(qr_invalid_t *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->message, sizeof why->message, fmt, ap);
    va_end(ap);
    qr_validate_scrub(why->message);
    why->status = 422;
    why->code = QR_CODE_INVALID;
    why->field[0] = '\0';
    return -1;
}

/* The dynamic overlap keys of a PATCH (validate.h): the three are set
 * together or cleared together. With dynamic overlap on afterwards,
 * annotations_per_task is overlap_min: a new overlap_min sets it (so it may
 * only rise, as annotations_per_task does), and annotations_per_task alone
 * may not move away from it. An overlap fraction's overlap_annotations may
 * not pass overlap_max. Lowering overlap_max below what a task already
 * needs is refused by PostgreSQL (sql/0027, QR_SQLSTATE_OVERLAP_MAX), the
 * only place that knows every task. Turning it off keeps every task's
 * count as it is; the project goes on with fixed overlap. */
static int patch_dynamic_overlap(json_t *body, const qr_project_t *p, patch_t *pt,
                                 qr_invalid_t *why)
{
    int set;
    int64_t min, max;
    double thr;
    if (qr_validate_dynamic_overlap(body, p->overlap_min, p->overlap_max, p->overlap_threshold,
                                    &set, &min, &max, &thr, why) < 0)
        return -1;
    if (min && set && min < p->annotations_per_task)
        return refuse(why,
                      "overlap_min is the annotations a task starts with (annotations_per_task), "
                      "which can only rise: it is %d, so overlap_min %" PRId64 " is refused",
                      p->annotations_per_task, min);
    if (min && pt->apt && strtoll(pt->apt, NULL, 10) != min)
        return refuse(why,
                      "annotations_per_task is overlap_min (%" PRId64 ") with dynamic overlap, "
                      "so %s is refused: change overlap_min instead",
                      min, pt->apt);
    double frac = pt->overlap_fraction ? strtod(pt->overlap_fraction, NULL) : p->overlap_fraction;
    int64_t ova = pt->overlap_annotations ? strtoll(pt->overlap_annotations, NULL, 10)
                                          : p->overlap_annotations;
    if (min && frac > 0 && ova > max)
        return refuse(why,
                      "overlap_annotations (%" PRId64 ") may not pass overlap_max (%" PRId64
                      "): no task may need more than overlap_max annotations",
                      ova, max);
    if (!set)
        return 0;
    pt->ov_set = qr_xstrdup("true");
    if (min) {
        pt->ov_min = qr_xasprintf("%" PRId64, min);
        pt->ov_max = qr_xasprintf("%" PRId64, max);
        pt->ov_thr = qr_xasprintf("%.17g", thr);
    }
    return 0;
}

/*
 * Checks a PATCH body against the project as this broker knows it and
 * fills pt: name; labels (the whole new list, trimmed: every label the
 * project has must still be in it); annotations_per_task,
 * overlap_annotations and overlap_fraction (only upward: tasks already
 * imported keep the count they were given, so a lower one would leave them
 * with more annotations than the project asks); lease_ttl_ms; sampling and
 * stratify_field. The new values apply to tasks imported from now on and to
 * leases granted from now on. The SQL repeats the only-upward guards, so a
 * concurrent change cannot slip past them.
 */
static int patch_check(json_t *body, const qr_project_t *p, patch_t *pt, qr_invalid_t *why)
{
    static const char *const keys[] = {"name",
                                       "labels",
                                       "annotations_per_task",
                                       "overlap_annotations",
                                       "overlap_fraction",
                                       "lease_ttl_ms",
                                       "sampling",
                                       "stratify_field",
                                       "auto_accept_confidence",
                                       "auto_accept_audit",
                                       "overlap_min",
                                       "overlap_max",
                                       "overlap_agreement_threshold",
                                       "show_predictions",
                                       "gold_rate",
                                       "gold_onboarding",
                                       "gold_min_accuracy",
                                       "gold_min_count",
                                       "review_mode",
                                       "review_share",
                                       "review_agreement_threshold",
                                       "overlap_measure",
                                       "overlap_prior_accuracy",
                                       NULL};
    const char *key;
    json_t *v;
    memset(pt, 0, sizeof *pt);
    /* A label schema is fixed when the project is made (annotations are
     * stored in its canonical form, so another schema would misread them),
     * and a schema project has no labels list to add to. */
    if (json_object_get(body, "schema"))
        return refuse(why, "schema is fixed when a project is made: make a new project for "
                           "another schema");
    if (json_object_get(body, "labels") && !p->schema->implied)
        return refuse(why,
                      "labels: project %" PRId64 " has a label schema, fixed when it was "
                      "made; it has no labels list to change",
                      p->id);
    json_object_foreach(body, key, v)
    {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++)
            known = !strcmp(key, keys[i]);
        if (!known)
            return refuse(why,
                          "unknown field \"%.40s\": a project's name, labels, "
                          "annotations_per_task, overlap_annotations, overlap_fraction, "
                          "lease_ttl_ms, sampling, stratify_field, the auto_accept_*, "
                          "overlap_min, overlap_max, overlap_agreement_threshold, "
                          "overlap_measure and overlap_prior_accuracy, show_predictions, the "
                          "gold_* and the review_* settings may change",
                          key);
    }
    if (json_object_size(body) == 0)
        return refuse(why, "nothing to change: the body names no field");
    if ((v = json_object_get(body, "name"))) {
        if (!valid_name(json_string_value(v)))
            return refuse(why,
                          "name must be a string of 1 to 200 characters and no control characters");
        pt->name = qr_xstrdup(json_string_value(v));
    }
    if ((v = json_object_get(body, "labels"))) {
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n < 1 || n > 1000)
            return refuse(why, "labels must be an array of 1 to 1000 strings");
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
            const char *l = json_string_value(json_array_get(v, i));
            char *t = l ? trimmed(l) : NULL;
            if (!t || !valid_name(t)) {
                free(t);
                json_decref(out);
                return refuse(why,
                              "label %zu must be a string of 1 to 200 characters and no control "
                              "characters",
                              i + 1);
            }
            for (size_t j = 0; j < json_array_size(out); j++)
                if (!strcmp(t, json_string_value(json_array_get(out, j)))) {
                    refuse(why, "label \"%s\" appears twice", t);
                    free(t);
                    json_decref(out);
                    return -1;
                }
            json_array_append_new(out, json_string(t));
            free(t);
        }
        for (int i = 0; i < p->nlabels; i++) {
            int kept = 0;
            for (size_t j = 0; j < json_array_size(out) && !kept; j++)
                kept = !strcmp(p->labels[i], json_string_value(json_array_get(out, j)));
            if (!kept) {
                json_decref(out);
                return refuse(why,
                              "labels can only be added: \"%s\" is missing (annotations may "
                              "carry it); send the whole list, old labels and new",
                              p->labels[i]);
            }
        }
        pt->labels = json_dumps(out, JSON_COMPACT);
        json_decref(out);
    }
    if (patch_int(body, "annotations_per_task", 1, 100, p->annotations_per_task, &pt->apt, why) <
            0 ||
        patch_int(body, "overlap_annotations", 1, 100, p->overlap_annotations,
                  &pt->overlap_annotations, why) < 0 ||
        patch_int(body, "lease_ttl_ms", 1000, 86400000, -1, &pt->ttl, why) < 0)
        return -1;
    if ((v = json_object_get(body, "overlap_fraction"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
            return refuse(why, "overlap_fraction must be a number from 0 to 1");
        if (json_number_value(v) < p->overlap_fraction)
            return refuse(why, "overlap_fraction can only rise: it is %g, so %g is refused",
                          p->overlap_fraction, json_number_value(v));
        pt->overlap_fraction = qr_xasprintf("%.17g", json_number_value(v));
    }
    const char *sampling = p->sampling;
    if ((v = json_object_get(body, "sampling"))) {
        const char *s = json_string_value(v);
        if (!(s && (!strcmp(s, "sequential") || !strcmp(s, "random") || !strcmp(s, "uncertainty") ||
                    !strcmp(s, "stratified"))))
            return refuse(why, "sampling must be sequential, random, uncertainty or stratified");
        pt->sampling = qr_xstrdup(s);
        sampling = s;
    }
    if ((v = json_object_get(body, "stratify_field"))) {
        if (!valid_name(json_string_value(v)))
            return refuse(why, "stratify_field must be a data field's name (1 to 200 characters)");
        if (strcmp(sampling, "stratified"))
            return refuse(why, "stratify_field goes with sampling \"stratified\" only");
        pt->field = qr_xstrdup(json_string_value(v));
    }
    if (!strcmp(sampling, "stratified") && !pt->field && !p->stratify_field)
        return refuse(why, "stratified sampling needs stratify_field (a data field)");
    /* Auto-accept applies to tasks imported from then on. */
    int set;
    double conf, audit;
    if (qr_validate_auto_accept(body, p->auto_accept_confidence, &set, &conf, &audit, why) < 0)
        return -1;
    if (set) {
        pt->aa_set = qr_xstrdup("true");
        pt->aa_conf = isnan(conf) ? NULL : qr_xasprintf("%.17g", conf);
    }
    if (!isnan(audit))
        pt->aa_audit = qr_xasprintf("%.17g", audit);
    int shown_set, shown;
    if (qr_validate_show_predictions(body, &shown_set, &shown, why) < 0)
        return -1;
    if (shown_set)
        pt->shown = shown ? "true" : "false";
    /* Gold: switching serving on or off turns the project's open gold tasks
     * into control tasks or back (sql/0028_gold_serving.sql). */
    qr_gold_settings_t g;
    if (qr_validate_gold(body, p->gold_rate, p->gold_onboarding, p->gold_min_accuracy, &g, why) < 0)
        return -1;
    if (!isnan(g.rate))
        pt->g_rate = qr_xasprintf("%.17g", g.rate);
    if (g.onboarding >= 0)
        pt->g_onboarding = qr_xasprintf("%" PRId64, g.onboarding);
    if (g.min_set) {
        pt->g_min_set = qr_xstrdup("true");
        pt->g_min = isnan(g.min_accuracy) ? NULL : qr_xasprintf("%.17g", g.min_accuracy);
    }
    if (g.min_count >= 0)
        pt->g_count = qr_xasprintf("%" PRId64, g.min_count);
    pt->gold_changed = !isnan(g.rate) || g.onboarding >= 0 || g.min_set || g.min_count >= 0;
    /* Review settings apply to tasks completing from then on. */
    const char *rv_mode;
    double rv_share, rv_threshold;
    if (qr_validate_review(body, &rv_mode, &rv_share, &rv_threshold, why) < 0)
        return -1;
    pt->rv_mode = rv_mode ? qr_xstrdup(rv_mode) : NULL;
    pt->rv_share = isnan(rv_share) ? NULL : qr_xasprintf("%.17g", rv_share);
    pt->rv_threshold = isnan(rv_threshold) ? NULL : qr_xasprintf("%.17g", rv_threshold);
    /* The measure applies to tasks reaching their count from then on. */
    const char *measure;
    double prior;
    if (qr_validate_overlap_measure(body, &measure, &prior, why) < 0)
        return -1;
    pt->ov_measure = measure ? qr_xstrdup(measure) : NULL;
    pt->ov_prior = isnan(prior) ? NULL : qr_xasprintf("%.17g", prior);
    return patch_dynamic_overlap(body, p, pt, why);
}

static void on_gold_reopened(int rc, void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = c->then_project;
    c->then_project = NULL;
    if (rc < 0)
        qr_warn("project %" PRId64 ": gold settings changed but the window was not reopened (%d); "
                "an import or a Redis rebuild reloads it",
                p->id, rc);
    respond_json(c, 200, qr_project_to_json(p));
    qr_project_release(p);
}

static void on_gold_emptied(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0 || qr_lease_window_reopen(c->b->lease, c->then_project->id, on_gold_reopened, c) < 0)
        on_gold_reopened(rc < 0 ? rc : QR_EIO, c);
}

static void on_project_updated(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res && sqlstate && !strcmp(sqlstate, QR_SQLSTATE_OVERLAP_MAX)) {
        /* PostgreSQL's message names the count a task already needs. */
        const char *m = err ? strstr(err, "overlap_max") : NULL;
        char msg[200];
        snprintf(msg, sizeof msg, "%s", m ? m : "overlap_max is below what a task needs");
        msg[strcspn(msg, "\r\n")] = '\0';
        respond_error(c, 422, QR_CODE_INVALID, "%s; nothing changed", msg);
        return;
    }
    if (!res && sqlstate && !strcmp(sqlstate, "23514") && err &&
        strstr(err, "projects_dynamic_overlap_check")) {
        /* The project changed meanwhile (another broker's PATCH). */
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "project %" PRId64 " changed meanwhile (overlap): read it again and retry",
                      c->project->id);
        return;
    }
    if (!res && sqlstate && !strcmp(sqlstate, "23514")) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "stratified sampling needs stratify_field (a data field)");
        return;
    }
    if (res && PQntuples(res) == 0) {
        /* The guards failed on a row another request changed meanwhile. */
        respond_error(c, 409, QR_CODE_CONFLICT,
                      "project %" PRId64 " changed meanwhile (labels or overlap): read it again "
                      "and retry",
                      c->project->id);
        return;
    }
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_broker_project_changed(c->b, p->id);
    qr_info("project %" PRId64 " updated by user %" PRId64, p->id, c->user.id);
    if (c->gold_changed) {
        /* Control tasks may have changed: the gold set and the window are
         * read again from PostgreSQL. The answer waits for it, so that the
         * next grant serves the new settings. With serving off no grant
         * asks for the gold set again, so it is emptied now: its tasks are
         * normal tasks again, and the window takes them back. */
        c->then_project = p;
        int rc = p->gold_rate > 0 || p->gold_onboarding > 0
                     ? qr_lease_window_reopen(c->b->lease, p->id, on_gold_reopened, c)
                     : qr_lease_gold_load(c->b->lease, p->id, 0, NULL, NULL, NULL, NULL, 0, NULL,
                                          NULL, 0, NULL, on_gold_emptied, c);
        if (rc < 0)
            on_gold_reopened(QR_EIO, c);
        return;
    }
    respond_json(c, 200, qr_project_to_json(p));
    qr_project_release(p);
}

void h_project_update(ctx_t *c)
{
    if (parse_body(c, 0) < 0)
        return;
    patch_t pt;
    qr_invalid_t why;
    if (patch_check(c->body, c->project, &pt, &why) < 0) {
        patch_free(&pt);
        respond_invalid(c, &why);
        return;
    }
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj),
                            i64(c->user.org_id, org),
                            pt.name,
                            pt.labels,
                            pt.apt,
                            pt.overlap_annotations,
                            pt.overlap_fraction,
                            pt.ttl,
                            pt.sampling,
                            pt.field,
                            pt.aa_set ? pt.aa_set : "false",
                            pt.aa_conf,
                            pt.aa_audit,
                            pt.ov_set ? pt.ov_set : "false",
                            pt.ov_min,
                            pt.ov_max,
                            pt.ov_thr,
                            pt.shown,
                            pt.g_rate,
                            pt.g_onboarding,
                            pt.g_min_set ? pt.g_min_set : "false",
                            pt.g_min,
                            pt.g_count,
                            pt.rv_mode,
                            pt.rv_share,
                            pt.rv_threshold,
                            pt.ov_measure,
                            pt.ov_prior};
    c->gold_changed = pt.gold_changed;
    int rc = qr_pg_query(c->b->pg, QR_SQL_PROJECT_UPDATE, 28, params, on_project_updated, c);
    patch_free(&pt);
    if (rc < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects/{id}/archive and /unarchive -------------------------------------------
 */

/* As a pause (api_projects.c): this broker's copy is replaced, every other
 * broker drops its own, and the long polls of the project wake, so that
 * each answers 409 project_archived now rather than at its deadline. */
static void on_project_archived(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_broker_project_changed(c->b, p->id);
    qr_broker_work_ready(c->b, p->id);
    qr_info("project %" PRId64 " %s", p->id, p->archived_at ? "archived" : "unarchived");
    respond_json(c, 200,
                 json_pack("{sI s:b s:s?}", "id", (json_int_t)p->id, "archived",
                           p->archived_at != NULL, "archived_at", p->archived_at));
    qr_project_release(p);
}

/* Idempotent, as pause and resume are. */
void h_project_archive(ctx_t *c)
{
    const char *tail = strrchr(c->route->pattern, '/');
    int archive = tail && !strcmp(tail, "/archive");
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, org),
                            archive ? "true" : "false"};
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_ARCHIVE, 3, params, on_project_archived, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- DELETE /v1/projects/{id}[?force=true] -------------------------------------------------- */

/*
 * A delete runs in three steps. (1) The lease engine drops the project's
 * Redis state in one script, unless a lease is live and force is off: then
 * 409 tasks_leased and nothing changed. (2) PostgreSQL deletes the project
 * row; every row of the project goes with it (ON DELETE CASCADE, and a
 * trigger for the lease log, sql/0019). (3) Every broker forgets the
 * project, and the lease engine drops again whatever a grant racing step
 * (2) rebuilt from PostgreSQL meanwhile. c->ntasks holds the leases live at
 * step (1); c->task_id and c->active_ms the tasks and annotations deleted.
 */
static void on_redis_cleared(int rc, int dropped, int64_t live, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0)
        qr_warn("project %" PRId64 " deleted; its Redis state was not dropped again: %d",
                c->project->id, rc);
    respond_json(c, 200,
                 json_pack("{sI s:b sI sI sI}", "id", (json_int_t)c->project->id, "deleted", 1,
                           "tasks", (json_int_t)c->task_id, "annotations", (json_int_t)c->active_ms,
                           "leases_dropped", (json_int_t)c->ntasks));
}

static void on_project_deleted(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "project %" PRId64 " is gone already",
                      c->project->id);
        return;
    }
    c->task_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    c->active_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    qr_project_cache_drop(c->b, c->project->id);
    qr_broker_project_changed(c->b, c->project->id);
    qr_info("project %" PRId64 " deleted by user %" PRId64 " (%" PRId64 " tasks, %" PRId64
            " annotations, %" PRId64 " live leases dropped)",
            c->project->id, c->user.id, c->task_id, c->active_ms, c->ntasks);
    if (qr_lease_project_drop(c->b->lease, c->project->id, qr_now_ms(), 1, on_redis_cleared, c) < 0)
        on_redis_cleared(QR_EIO, 0, 0, c);
}

static void on_redis_dropped(int rc, int dropped, int64_t live, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "project drop");
        return;
    }
    if (!dropped) {
        respond_error(c, 409, QR_CODE_TASKS_LEASED,
                      "project %" PRId64 " has %" PRId64
                      " live lease(s): wait until they end, archive the project first so no "
                      "new ones start, or delete with ?force=true to drop them",
                      c->project->id, live);
        return;
    }
    c->ntasks = live;
    char proj[24], org[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_DELETE, 2, params, on_project_deleted, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

void h_project_delete(ctx_t *c)
{
    static const char *const allowed[] = {"force", NULL};
    char buf[16];
    if (only_params(c, allowed) < 0)
        return;
    const char *f = query_param(c->req->query, "force", buf, sizeof buf);
    int force = 0;
    if (f) {
        if (!strcmp(f, "true") || !strcmp(f, "1"))
            force = 1;
        else if (strcmp(f, "false") && strcmp(f, "0")) {
            respond_error(c, 422, QR_CODE_INVALID, "force must be true or false");
            return;
        }
    }
    if (qr_lease_project_drop(c->b->lease, c->project->id, qr_now_ms(), force, on_redis_dropped,
                              c) < 0)
        respond_backend(c, "Redis", "client closing");
}

/* --- GET /v1/users -------------------------------------------------------------------------- */

static void on_user_list(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    json_t *list = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!json_is_array(list)) {
        json_decref(list);
        respond_backend(c, "PostgreSQL", err ? err : "bad user list");
        return;
    }
    json_t *next = json_null();
    if (json_array_size(list) > (size_t)c->max) {
        json_array_remove(list, (size_t)c->max);
        json_t *last = json_array_get(list, (size_t)c->max - 1);
        json_decref(next);
        next = json_integer(json_integer_value(json_object_get(last, "id")));
    }
    respond_json(c, 200, json_pack("{s:o s:o}", "users", list, "next_after", next));
}

void h_user_list(ctx_t *c)
{
    org_page(c, QR_SQL_USER_LIST, on_user_list);
}

/* --- a user named where an id is taken ---------------------------------------------------- */

static void on_user_resolved(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "no user \"%s\" works on project %" PRId64
                      " as far as you may see (GET /v1/users lists yours)",
                      c->label, c->project->id);
        return;
    }
    if (n > 1) {
        qr_buf_t b;
        qr_buf_init(&b);
        for (int i = 0; i < n; i++)
            qr_buf_appendf(&b, "%s%s@%s (id %s)", i ? ", " : "", PQgetvalue(res, i, 1),
                           PQgetvalue(res, i, 2), PQgetvalue(res, i, 0));
        respond_error(c, 422, QR_CODE_AMBIGUOUS_USER,
                      "\"%s\" names %d users: %s; give name@organization or the id", c->label, n,
                      b.data);
        qr_buf_free(&b);
        return;
    }
    c->user_resolved = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->then(c);
}

int resolve_user(ctx_t *c, const char *name, void (*then)(ctx_t *c))
{
    if (!valid_name(name)) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "a user is named by an id or a name of 1 to 200 characters");
        return -1;
    }
    free(c->label);
    c->label = qr_xstrdup(name);
    c->then = then;
    char proj[24], org[24];
    const char *params[] = {name, i64(c->project->id, proj), i64(c->user.org_id, org)};
    if (qr_pg_query(c->b->pg, QR_SQL_USER_RESOLVE, 3, params, on_user_resolved, c) < 0) {
        respond_backend(c, "PostgreSQL", "pool closing");
        return -1;
    }
    return 0;
}
