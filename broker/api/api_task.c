/*
 * api_task.c - GET /v1/projects/{id}/tasks/{task}: one task with its
 * annotations and review (issue 17: the quality view's link from a
 * low-agreement task to what its annotators said).
 */
#include "api_int.h"

#include "sql_quality.h"

static void on_task(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 0) {
        respond_error(c, 404, QR_CODE_NOT_FOUND, "project %" PRId64 " has no task %" PRId64,
                      c->project->id, c->ids[1]);
        return;
    }
    json_t *o = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (!o) {
        respond_backend(c, "PostgreSQL", "bad task row");
        return;
    }
    /* Gold answers are for the owner's admins and managers only: the key
     * is left out for everyone else, not shown empty. */
    if (c->user.org_id != c->project->org_id || !(c->user.role & (QR_ROLE_ADMIN | QR_ROLE_MANAGER)))
        json_object_del(o, "gold");
    respond_json(c, 200, o);
}

/* Admins, managers and reviewers of the project's organization, and those
 * of a vendor it is shared with (the router's checks); a vendor reads its
 * own crew's annotations only, and no review. */
void h_task_get(ctx_t *c)
{
    int own = c->user.org_id == c->project->org_id;
    int gold = own && (c->user.role & (QR_ROLE_ADMIN | QR_ROLE_MANAGER));
    char proj[24], task[24], org[24];
    const char *params[] = {i64(c->project->id, proj), i64(c->ids[1], task),
                            i64(own ? 0 : c->user.org_id, org), gold ? "true" : "false"};
    if (qr_pg_query(c->b->pg, QR_SQL_TASK_READ, 4, params, on_task, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}
