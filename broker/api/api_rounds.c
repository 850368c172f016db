/*
 * api_rounds.c - relabel rounds (issue 16, point 6): POST
 * /v1/projects/{id}/rounds opens a round over a selection of the project's
 * completed tasks, GET lists the rounds.
 *
 * The body names how many more annotations each selected task needs and
 * exactly one selector: task ids, an import, a data field equal to a value,
 * a completion time range, or a per-task agreement below a share. The
 * handler checks its shape; PostgreSQL selects, numbers the round and
 * reopens the tasks in one statement (quorum_round_open,
 * sql/0033_relabel_rounds.sql), so a refusal changes nothing. The reopened
 * tasks then come back to the Redis window the way a predictions update's
 * do (qr_window_refresh: the window reopens and refills from the start of
 * the order) before the answer, so the next grant can take them.
 *
 * The routes are the owning organization's admins and managers
 * (ROUTE_NOT_VENDOR).
 */
#include <ctype.h>

#include "api_int.h"

/* The most task ids one body may list. */
#define ROUND_MAX_IDS 100000

/* --- POST /v1/projects/{id}/rounds ----------------------------------------------------------- */

static void on_round_refreshed(void *arg)
{
    ctx_t *c = arg;
    qr_broker_work_ready(c->b, c->project->id); /* reopened tasks wake long polls */
    json_t *o = c->out;
    c->out = NULL;
    respond_json(c, 201, o);
}

static void on_round_opened(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res && sqlstate && !strcmp(sqlstate, QR_SQLSTATE_ROUND_NOT_FOUND)) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "%s; nothing changed", err);
        return;
    }
    /* Class 22, a data exception: a time of the right shape that is no
     * date (2026-13-45T00:00:00Z), which PostgreSQL's cast refuses. */
    if (!res && sqlstate &&
        (!strcmp(sqlstate, QR_SQLSTATE_ROUND_INVALID) ||
         !strcmp(sqlstate, QR_SQLSTATE_OVERLAP_MAX) || !strncmp(sqlstate, "22", 2))) {
        respond_error(c, 422, QR_CODE_INVALID, "%s; nothing changed", err);
        return;
    }
    json_t *o = res && PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", err ? err : "no round");
        return;
    }
    qr_info("project %" PRId64 ": round %" PRId64 " opened by user %" PRId64 " over %" PRId64
            " task(s)",
            c->project->id, (int64_t)json_integer_value(json_object_get(o, "number")), c->user.id,
            (int64_t)json_integer_value(json_object_get(o, "tasks")));
    c->out = o;
    qr_window_refresh(c->b, c->project->id, on_round_refreshed, c);
}

/* Whether s is an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int is_rfc3339(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; shape[i]; i++) {
        char ch = s[i];
        if (shape[i] == 'd'   ? !isdigit((unsigned char)ch)
            : shape[i] == 'T' ? (ch != 'T' && ch != 't' && ch != ' ')
                              : ch != shape[i])
            return 0;
    }
    if (s[i] == '.') {
        i++;
        if (!isdigit((unsigned char)s[i]))
            return 0;
        while (isdigit((unsigned char)s[i]))
            i++;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && !s[i + 1])
        return 1;
    return (s[i] == '+' || s[i] == '-') && isdigit((unsigned char)s[i + 1]) &&
           isdigit((unsigned char)s[i + 2]) && s[i + 3] == ':' &&
           isdigit((unsigned char)s[i + 4]) && isdigit((unsigned char)s[i + 5]) && !s[i + 6];
}

/* Checks the body's selector and copies it into sel. Answers 422 and
 * returns -1 when it is not exactly one well-formed selector. */
static int read_selector(ctx_t *c, json_t *sel)
{
    static const char *const kinds =
        "task_ids, import_id, field, completed_after/completed_before or agreement_below";
    int n = 0;
    json_t *v;
    if ((v = json_object_get(c->body, "task_ids"))) {
        n++;
        size_t len = json_array_size(v);
        if (!json_is_array(v) || len == 0 || len > ROUND_MAX_IDS) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "task_ids must be a non-empty array of at most %d task ids",
                          ROUND_MAX_IDS);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            json_t *id = json_array_get(v, i);
            if (!json_is_integer(id) || json_integer_value(id) < 1) {
                respond_error(c, 422, QR_CODE_INVALID,
                              "task_ids[%zu] is not a task id (a positive integer)", i);
                return -1;
            }
        }
        json_object_set(sel, "task_ids", v);
    }
    if ((v = json_object_get(c->body, "import_id"))) {
        n++;
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            respond_error(c, 422, QR_CODE_INVALID, "import_id must be an import's id");
            return -1;
        }
        json_object_set(sel, "import_id", v);
    }
    if ((v = json_object_get(c->body, "field"))) {
        n++;
        json_t *path = json_object_get(v, "path");
        json_t *value = json_object_get(v, "value");
        const char *p = json_string_value(path);
        if (!json_is_object(v) || json_object_size(v) != 2 || !p || !value || !*p ||
            strlen(p) > 1000 || p[0] == '.' || p[strlen(p) - 1] == '.' || strstr(p, "..")) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "field must be {\"path\": \"key\" or \"a.b\", \"value\": a JSON "
                          "value}: a task is selected when its data at path equals value");
            return -1;
        }
        json_object_set(sel, "field", v);
    }
    json_t *after = json_object_get(c->body, "completed_after");
    json_t *before = json_object_get(c->body, "completed_before");
    if (after || before) {
        n++;
        const char *names[] = {"completed_after", "completed_before"};
        json_t *ts[] = {after, before};
        for (int i = 0; i < 2; i++) {
            if (!ts[i])
                continue;
            const char *s = json_string_value(ts[i]);
            if (!s || !is_rfc3339(s)) {
                respond_error(c, 422, QR_CODE_INVALID,
                              "%s must be an RFC 3339 time such as 2026-12-07T03:00:00Z", names[i]);
                return -1;
            }
            json_object_set(sel, names[i], ts[i]);
        }
    }
    if ((v = json_object_get(c->body, "agreement_below"))) {
        n++;
        double x = json_number_value(v);
        if (!json_is_number(v) || !(x > 0 && x <= 1)) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "agreement_below must be a number above 0 and at most 1 (a task is "
                          "selected when its support, the share of its annotations giving its "
                          "most common value, is below it)");
            return -1;
        }
        json_object_set(sel, "agreement_below", v);
    }
    if (n != 1) {
        respond_error(c, 422, QR_CODE_INVALID, "a round needs exactly one selector (%s); got %d",
                      kinds, n);
        return -1;
    }
    return 0;
}

void h_round_open(ctx_t *c)
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
        if (strcmp(key, "annotations") && strcmp(key, "task_ids") && strcmp(key, "import_id") &&
            strcmp(key, "field") && strcmp(key, "completed_after") &&
            strcmp(key, "completed_before") && strcmp(key, "agreement_below")) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "unknown field '%.64s' (a round has annotations and one of task_ids, "
                          "import_id, field, completed_after/completed_before, agreement_below)",
                          key);
            return;
        }
    }
    json_t *ann = json_object_get(c->body, "annotations");
    json_int_t n = c->project->annotations_per_task;
    if (ann) {
        if (!json_is_integer(ann) || json_integer_value(ann) < 1 || json_integer_value(ann) > 99) {
            respond_error(c, 422, QR_CODE_INVALID,
                          "annotations must be an integer from 1 to 99 (the more annotations each "
                          "selected task needs in the new round)");
            return;
        }
        n = json_integer_value(ann);
    }
    json_t *sel = json_object();
    if (read_selector(c, sel) < 0) {
        json_decref(sel);
        return;
    }
    /* 15 digits: a share the client wrote as 0.7 is stored as 0.7. */
    char *seltext = json_dumps(sel, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(sel);
    if (!seltext) {
        respond_backend(c, "the broker", "selector text");
        return;
    }
    char proj[24], user[24], count[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user), i64(n, count),
                            seltext};
    int rc = qr_pg_query(c->b->pg, QR_SQL_ROUND_OPEN, 4, params, on_round_opened, c);
    free(seltext);
    if (rc < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- GET /v1/projects/{id}/rounds ------------------------------------------------------------ */

void h_round_list(ctx_t *c)
{
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->list_key = "rounds";
    if (qr_pg_query(c->b->pg, QR_SQL_ROUND_LIST, 1, params, on_json_list, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
