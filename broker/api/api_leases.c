/*
 * api_leases.c - leases: grant, long-poll waiters and their wake, release, skip, heartbeat, undo.
 */
#include "api_int.h"

/* --- POST /v1/projects/{id}/leases --------------------------------------------------------- */

static void lease_try(ctx_t *c);

/* Long-poll waiters: requests that found nothing and wait for work. They sit
 * on their project's list, newest first, until woken (qr_api_wake), their
 * deadline passes, or their client goes away (on_lease_gone). The lists hang
 * in a small hash by project id (b->api_waiters, made with the first waiter
 * and freed with the last), so that a wake of one project walks its own
 * waiters, not the thousands of idle agents long-polling other projects. */
#define WAIT_BUCKETS 256

struct wait_list_s {
    int64_t project;
    ctx_t *newest, *oldest;
    int n;                     /* waiters on it */
    struct wait_list_s *chain; /* next list in the same bucket */
};

typedef struct waiters_s {
    wait_list_t *bucket[WAIT_BUCKETS];
    int lists; /* lists in the hash */
    int busy;  /* a wake walks the hash: it frees the hash, not waiter_remove */
} waiters_t;

static wait_list_t **wait_slot(waiters_t *w, int64_t project)
{
    wait_list_t **slot = &w->bucket[(uint64_t)project % WAIT_BUCKETS];
    while (*slot && (*slot)->project != project)
        slot = &(*slot)->chain;
    return slot;
}

static void waiters_free_if_empty(qr_broker_t *b)
{
    waiters_t *w = b->api_waiters;
    if (w && w->lists == 0 && w->busy == 0) {
        free(w);
        b->api_waiters = NULL;
    }
}

static void waiter_add(ctx_t *c)
{
    waiters_t *w = c->b->api_waiters;
    if (!w)
        w = c->b->api_waiters = qr_xcalloc(1, sizeof *w);
    wait_list_t **slot = wait_slot(w, c->project->id);
    if (!*slot) {
        *slot = qr_xcalloc(1, sizeof **slot);
        (*slot)->project = c->project->id;
        w->lists++;
    }
    wait_list_t *l = *slot;
    c->wait_list = l;
    c->wait_prev = NULL;
    c->wait_next = l->newest;
    if (l->newest)
        l->newest->wait_prev = c;
    else
        l->oldest = c;
    l->newest = c;
    l->n++;
    c->waiting = 1;
}

static void waiter_remove(ctx_t *c)
{
    if (!c->waiting)
        return;
    wait_list_t *l = c->wait_list;
    if (c->wait_prev)
        c->wait_prev->wait_next = c->wait_next;
    else
        l->newest = c->wait_next;
    if (c->wait_next)
        c->wait_next->wait_prev = c->wait_prev;
    else
        l->oldest = c->wait_prev;
    c->wait_prev = c->wait_next = NULL;
    c->wait_list = NULL;
    c->waiting = 0;
    uv_timer_stop(&c->wait_timer);
    if (--l->n == 0) {
        waiters_t *w = c->b->api_waiters;
        wait_list_t **slot = wait_slot(w, l->project);
        *slot = l->chain;
        free(l);
        w->lists--;
        waiters_free_if_empty(c->b);
    }
}

/* Why a grant gave fewer leases than asked, as the answer's "reason"; NULL
 * when only the window stopped it. */
static const char *why_name(int why)
{
    switch (why) {
    case QR_LEASE_QUOTA_REACHED:
        return "quota_reached";
    case QR_LEASE_CAP_REACHED:
        return "cap_reached";
    case QR_LEASE_MAX_LEASES:
        return "max_leases_reached";
    default:
        return NULL;
    }
}

static void respond_no_lease(ctx_t *c, int complete)
{
    json_t *o = json_pack("{s:[] s:b}", "leases", "project_complete", complete);
    /* Not an error: the vendor's quota, the annotator's cap or their bound
     * on live leases is used up (until a lease of theirs ends). */
    const char *why = why_name(c->why);
    if (why)
        json_object_set_new(o, "reason", json_string(why));
    respond_json(c, 200, o);
}

static void respond_paused(ctx_t *c)
{
    respond_error(c, 409, QR_CODE_PROJECT_PAUSED, "project %" PRId64 " is paused", c->project->id);
}

/* Archived outranks paused: an archived project takes no more work at all,
 * so a long poll does not wait for it (an archive wakes the ones waiting). */
static void respond_archived(ctx_t *c)
{
    respond_error(c, 409, QR_CODE_PROJECT_ARCHIVED,
                  "project %" PRId64 " is archived: it hands out no more tasks", c->project->id);
}

static void on_project_refreshed(const PGresult *res, const char *err, const char *sqlstate,
                                 void *arg)
{
    ctx_t *c = arg;
    qr_project_t *p = cache_project_result(c, res, err);
    if (!p)
        return;
    qr_project_release(c->project);
    c->project = p;
    c->then(c);
}

/* Runs then(c) with c->project the broker's current copy of the project (a
 * long poll may hold one that a pause or a share change replaced since),
 * loading it from PostgreSQL when no broker copy is cached. */
static void project_refresh(ctx_t *c, void (*then)(ctx_t *c))
{
    qr_project_t *p = qr_project_cache_get(c->b, c->project->id);
    if (p) {
        qr_project_release(c->project);
        c->project = p;
        then(c);
        return;
    }
    char proj[24];
    const char *params[] = {i64(c->project->id, proj)};
    c->then = then;
    if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_GET, 1, params, on_project_refreshed, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* A long poll's deadline: nothing to lease, or the project is paused. */
static void wait_ended(ctx_t *c)
{
    if (c->project->archived_at)
        respond_archived(c);
    else if (c->project->paused_at)
        respond_paused(c);
    else
        respond_no_lease(c, 0);
}

static void on_wait_timeout(uv_timer_t *t)
{
    ctx_t *c = t->data;
    waiter_remove(c);
    project_refresh(c, wait_ended);
}

static void wake(qr_broker_t *b, int64_t project, int slots, int hops, ctx_t *skip);

/* Parks c until work may be ready or its deadline passes. A request whose
 * client is gone is answered (to nobody) instead: nothing may be granted to
 * a waiter nobody listens to. A waiter woken for a freed slot that got
 * nothing passes the wake on to the next one (c->handoff). */
static void wait_for_work(ctx_t *c)
{
    int rc = 0;
    int hops = c->handoff;
    qr_broker_t *b = c->b;
    int64_t project = c->project->id;
    c->handoff = 0;
    if (qr_http_request_gone(c->req)) {
        respond_no_lease(c, 0);
        goto pass;
    }
    if (!c->timer_inited) {
        rc = uv_timer_init(c->b->loop, &c->wait_timer);
        if (rc < 0) {
            respond_no_lease(c, 0);
            goto pass;
        }
        c->timer_inited = 1;
    }
    c->wait_timer.data = c;
    int64_t left = c->wait_until_ms - qr_mono_ms();
    rc = uv_timer_start(&c->wait_timer, on_wait_timeout, (uint64_t)(left > 0 ? left : 0), 0);
    if (rc < 0) {
        respond_no_lease(c, 0);
        goto pass;
    }
    c->timed = 0; /* its time is the long-poll wait, not the broker's */
    waiter_add(c);
    if (hops > 0)
        wake(b, project, 1, hops - 1, c);
    return;
pass:
    /* c is answered and freed; the wake it held goes on all the same. */
    if (hops > 0 && !b->stopping && !b->draining)
        wake(b, project, 1, hops - 1, NULL);
}

/* What a wake takes off the lists: the waiters, oldest first, chained by
 * wait_next from woken, and how many; at most slots when slots > 0. */
typedef struct wake_take_s {
    int slots, hops, n;
    ctx_t *skip, *woken, **tail;
} wake_take_t;

/* Detaches list l's waiters, oldest first, into t. The last to leave frees
 * l (waiter_remove): its links are read before. */
static void wake_take(wait_list_t *l, wake_take_t *t)
{
    for (ctx_t *c = l->oldest, *prev; c && (t->slots <= 0 || t->n < t->slots); c = prev) {
        prev = c->wait_prev;
        if (c == t->skip)
            continue;
        waiter_remove(c);
        c->handoff = t->slots > 0 ? t->hops : 0;
        *t->tail = c;
        t->tail = &c->wait_next;
        t->n++;
    }
}

/* Wakes the waiters of project (of every project when 0), oldest first:
 * all of them when slots <= 0, else at most slots. One woken for a slot
 * carries hops: how many more waiters it passes the wake on to, one at a
 * time, should it get nothing (-1: as many as wait now). So a release wakes
 * one waiter, not all, yet a slot that waiter cannot take (seen the task,
 * at its own bound) still reaches one that can. skip is not woken. */
static void wake(qr_broker_t *b, int64_t project, int slots, int hops, ctx_t *skip)
{
    waiters_t *w = b->api_waiters;
    if (!w)
        return;
    wait_list_t *one = project ? *wait_slot(w, project) : NULL;
    if (project && !one)
        return;
    int waiting = 0;
    if (one)
        waiting = one->n;
    else
        for (int i = 0; i < WAIT_BUCKETS; i++)
            for (wait_list_t *l = w->bucket[i]; l; l = l->chain)
                waiting += l->n;
    wake_take_t t = {.slots = slots, .hops = hops < 0 ? waiting - 1 : hops, .skip = skip};
    t.tail = &t.woken;
    /* Detach them first, oldest first: a retry may park them again. A list
     * emptied here is freed as its last waiter leaves; the hash is kept
     * until the walk is over. */
    w->busy++;
    if (one)
        wake_take(one, &t);
    else
        for (int i = 0; i < WAIT_BUCKETS; i++)
            for (wait_list_t *l = w->bucket[i], *next; l; l = next) {
                next = l->chain;
                wake_take(l, &t);
            }
    w->busy--;
    waiters_free_if_empty(b);
    ctx_t *woken = t.woken;
    while (woken) {
        ctx_t *c = woken;
        woken = c->wait_next;
        c->wait_next = NULL;
        c->retried = 0;
        if (b->stopping || b->draining) /* the drain answers long polls now */
            respond_no_lease(c, 0);
        else
            lease_try(c);
    }
}

void qr_api_wake(qr_broker_t *b, int64_t project, int slots)
{
    wake(b, project, slots, -1, NULL);
}

/* The client of a lease request went away. A waiter leaves the list and is
 * answered (to nobody) at once, before anything can be granted to it; a
 * request whose grant is under way learns it from qr_http_respond, and
 * gives back what it got (on_granted). */
static void on_lease_gone(qr_http_request_t *req, void *arg)
{
    ctx_t *c = arg;
    (void)req;
    if (!c->waiting)
        return;
    waiter_remove(c);
    respond_no_lease(c, 0);
}

/* A lease granted to a client that was gone by the answer. */
typedef struct give_back_s {
    qr_broker_t *b;
    int64_t project, annotator, token;
} give_back_t;

static void on_give_back_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                  void *arg)
{
    if (!res)
        qr_warn("recording a lease given back failed: %s", err ? err : "?");
}

static void on_given_back(int rc, const qr_lease_info_t *info, void *arg)
{
    give_back_t *g = arg;
    if (rc < 0) {
        /* Gone already (or Redis is down): the reaper returns it at expiry. */
        qr_warn("project %" PRId64 ": lease %" PRId64 " of a gone client not given back (%d)",
                g->project, g->token, rc);
        free(g);
        return;
    }
    const char *reason = "client gone before the answer";
    qr_event_t ev = {.kind = QR_EV_RELEASE,
                     .project_id = g->project,
                     .task_id = info->task_id,
                     .annotator_id = g->annotator,
                     .token = g->token,
                     .at_ms = qr_now_ms(),
                     .granted_ms = info->granted_ms,
                     .active_ms = -1,
                     .reason = reason};
    qr_events_add(g->b->events, &ev);
    char proj[24], tok[24], task[24], ann[24], gr[24], x[24];
    const char *params[] = {i64(g->project, proj),
                            i64(g->token, tok),
                            i64(info->task_id, task),
                            i64(g->annotator, ann),
                            i64(info->granted_ms, gr),
                            i64(info->expires_ms, x),
                            "released",
                            reason};
    if (qr_pg_query(g->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_give_back_recorded, NULL) < 0)
        qr_warn("recording a given-back lease: the PostgreSQL pool is closing");
    qr_broker_slots_freed(g->b, g->project, 1);
    free(g);
}

/* Releases leases[0..n) of annotator at once: their answer reached nobody. */
static void give_back(qr_broker_t *b, int64_t project, int64_t annotator, const qr_lease_t *leases,
                      int n)
{
    qr_info("project %" PRId64 ": client of annotator %" PRId64 " gone; %d lease(s) given back",
            project, annotator, n);
    for (int i = 0; i < n; i++) {
        give_back_t *g = qr_xcalloc(1, sizeof *g);
        *g = (give_back_t){b, project, annotator, leases[i].token};
        if (qr_lease_release(b->lease, project, annotator, leases[i].token, qr_now_ms(), 0,
                             on_given_back, g) < 0)
            on_given_back(QR_EIO, NULL, g);
    }
}

static void on_complete_checked(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int complete = PQgetvalue(res, 0, 0)[0] == 't';
    if (!complete && c->wait_until_ms > qr_mono_ms() && !c->b->draining && !c->b->stopping) {
        wait_for_work(c);
        return;
    }
    respond_no_lease(c, complete);
}

static void on_refilled(int more, void *arg)
{
    ctx_t *c = arg;
    c->window_more = more;
    lease_try(c);
}

static void on_background_refill(int more, void *arg)
{
    (void)more;
    (void)arg;
}

static void on_counts_seeded(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "lease counters");
        return;
    }
    lease_try(c);
}

/* The project's quota and cap counters are not in Redis (a new project, or
 * Redis lost its state): build them from PostgreSQL, then grant again. */
static void on_lease_counts(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res);
    int64_t *v = qr_xcalloc((size_t)(3 * n + 1), sizeof *v);
    for (int i = 0; i < n; i++) {
        v[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        v[n + i] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        v[2 * n + i] = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    }
    int rc = qr_lease_count_seed(c->b->lease, c->project->id, n, v, v + n, v + 2 * n,
                                 on_counts_seeded, c);
    free(v);
    if (rc < 0)
        respond_backend(c, "Redis", "lease counters");
}

/* A grant's answer waiting for its tasks' predictions (show_predictions). */
typedef struct shown_s {
    ctx_t *c;
    json_t *answer;     /* {"leases": [...], ...} */
    qr_lease_t *leases; /* tokens and tasks, to give back if nobody takes them */
    int n;
} shown_t;

static void on_predictions(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    shown_t *s = arg;
    ctx_t *c = s->c;
    (void)sqlstate;
    if (!res)
        qr_warn("project %" PRId64 ": the leased tasks' predictions could not be read (%s); "
                "the leases go without them",
                c->project->id, err);
    /* Each lease gets its task's prediction, or null. */
    json_t *arr = json_object_get(s->answer, "leases");
    size_t i;
    json_t *l;
    json_array_foreach(arr, i, l)
    {
        json_t *p = NULL;
        json_int_t task = json_integer_value(json_object_get(l, "task_id"));
        for (int r = 0; res && r < PQntuples(res) && !p; r++)
            if (strtoll(PQgetvalue(res, r, 0), NULL, 10) == task && !PQgetisnull(res, r, 1))
                p = json_loads(PQgetvalue(res, r, 1), 0, NULL);
        json_object_set_new(l, "prediction", p ? p : json_null());
    }
    qr_broker_t *b = c->b;
    int64_t project = c->project->id, annotator = c->user.id;
    if (respond_json(c, 200, s->answer) < 0)
        give_back(b, project, annotator, s->leases, s->n);
    free(s->leases);
    free(s);
}

/* Answers a grant once its tasks' predictions are read (one statement for
 * the batch); the leases are given back if the client is gone by then. */
static void with_predictions(ctx_t *c, json_t *answer, const qr_lease_t *leases, int n)
{
    shown_t *s = qr_xcalloc(1, sizeof *s);
    s->c = c;
    s->answer = answer;
    s->n = n;
    s->leases = qr_xcalloc((size_t)n, sizeof *s->leases);
    qr_buf_t ids;
    qr_buf_init(&ids);
    qr_buf_appends(&ids, "{");
    for (int i = 0; i < n; i++) {
        s->leases[i] = (qr_lease_t){.task_id = leases[i].task_id, .token = leases[i].token};
        if (i)
            qr_buf_append(&ids, ",", 1);
        qr_buf_append_i64(&ids, leases[i].task_id);
    }
    qr_buf_appends(&ids, "}");
    char proj[24];
    const char *params[] = {i64(c->project->id, proj), ids.data};
    int rc = qr_pg_query(c->b->pg, QR_SQL_TASK_PREDICTIONS, 2, params, on_predictions, s);
    qr_buf_free(&ids);
    if (rc < 0)
        on_predictions(NULL, "pool closing", "", s);
}

static void on_gold_loaded(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "gold set");
        return;
    }
    lease_try(c);
}

/* The project's gold set is not in Redis (new, settings changed, new gold
 * tasks, or Redis lost its state): load it from PostgreSQL with the
 * annotators' gold counts and the paused annotators, then grant again. */
static void on_gold_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    int n = PQntuples(res), nt = 0, ns = 0, np = 0;
    int64_t *ids = qr_xcalloc((size_t)n + 1, sizeof *ids);
    int64_t *serves = qr_xcalloc((size_t)n + 1, sizeof *serves);
    const char **datas = qr_xcalloc((size_t)n + 1, sizeof *datas);
    const char **done_by = qr_xcalloc((size_t)n + 1, sizeof *done_by);
    int64_t *anns = qr_xcalloc((size_t)n + 1, sizeof *anns);
    int64_t *served = qr_xcalloc((size_t)n + 1, sizeof *served);
    int64_t *paused = qr_xcalloc((size_t)n + 1, sizeof *paused);
    for (int i = 0; i < n; i++) {
        char kind = PQgetvalue(res, i, 0)[0];
        int64_t id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        int64_t count = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        if (kind == 't') {
            ids[nt] = id;
            serves[nt] = count;
            datas[nt] = PQgetvalue(res, i, 3);
            done_by[nt++] = PQgetvalue(res, i, 4);
        } else if (kind == 'a') {
            anns[ns] = id;
            served[ns++] = count;
        } else {
            paused[np++] = id;
        }
    }
    int rc = qr_lease_gold_load(c->b->lease, c->project->id, nt, ids, serves, datas, done_by, ns,
                                anns, served, np, paused, on_gold_loaded, c);
    free(ids);
    free(serves);
    free(datas);
    free(done_by);
    free(anns);
    free(served);
    free(paused);
    if (rc < 0)
        respond_backend(c, "Redis", "gold set");
}

static void on_pause_cleared(int rc, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "annotator pause");
        return;
    }
    lease_try(c);
}

/* A paused annotator: 403 annotator_paused with the pause's reason. Redis
 * said paused; PostgreSQL has the reason. A pause PostgreSQL no longer
 * holds (a reinstatement whose Redis step failed) is lifted in Redis, and
 * the grant runs again. */
static void on_pause_reason(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) == 0 && !c->pause_checked) {
        c->pause_checked = 1;
        if (qr_lease_annotator_pause(c->b->lease, c->project->id, c->user.id, 0, on_pause_cleared,
                                     c) < 0)
            respond_backend(c, "Redis", "annotator pause");
        return;
    }
    respond_error(c, 403, QR_CODE_ANNOTATOR_PAUSED,
                  "you are paused in project %" PRId64 ": %s; a manager of the project may "
                  "reinstate you",
                  c->project->id,
                  PQntuples(res) ? PQgetvalue(res, 0, 0) : "gold accuracy below the minimum");
}

static void respond_leases_text(ctx_t *c, const qr_lease_t *leases, int n, int why);

static void on_granted(int rc, const qr_lease_t *leases, int n, int64_t ready_left, int why,
                       int window, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        respond_backend(c, "Redis", "lease grant");
        return;
    }
    if (why == QR_LEASE_GOLD_UNLOADED || why == QR_LEASE_PAUSED) {
        char proj[24], user[24];
        const char *params[] = {i64(c->project->id, proj), i64(c->user.id, user)};
        if (why == QR_LEASE_PAUSED) {
            if (qr_pg_query(c->b->pg, QR_SQL_PAUSE_REASON, 2, params, on_pause_reason, c) < 0)
                respond_backend(c, "PostgreSQL", "pool closing");
            return;
        }
        if (c->gold_loaded) {
            respond_backend(c, "Redis", "gold set (lost again)");
            return;
        }
        c->gold_loaded = 1;
        if (qr_pg_query(c->b->pg, QR_SQL_GOLD_LOAD, 1, params, on_gold_rows, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    c->gold_loaded = 0;
    if (why == QR_LEASE_UNCOUNTED) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (c->seeded) {
            respond_backend(c, "Redis", "lease counters (lost again)");
            return;
        }
        /* Set before the query: an answer frees c. */
        c->seeded = 1;
        if (qr_pg_query(c->b->pg, QR_SQL_LEASE_COUNTS, 1, params, on_lease_counts, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    c->seeded = 0; /* built: should Redis lose them again later, rebuild again */
    c->why = why;
    if (n == 0 && why != QR_LEASE_GRANTED) {
        /* Quota, cap or bound on live leases: a long poll waits for a lease
         * of theirs to end. */
        if (c->wait_until_ms > qr_mono_ms() && !c->b->draining && !c->b->stopping)
            wait_for_work(c);
        else
            respond_no_lease(c, 0);
        return;
    }
    if (n == 0 && !c->retried && window != QR_LEASE_EXHAUSTED) {
        /* The window may just be empty: load more and try once again. An
         * exhausted window (the grant says so) would load nothing, and the
         * grant again would find what this one found: on to the checks
         * below at once (issue 18: one Redis call per lease request). */
        c->retried = 1;
        qr_window_refill(c->b, c->project->id, on_refilled, c);
        return;
    }
    /* Below the low mark, load more in the background, unless the grant
     * said a refill would load nothing (exhausted, or one under way): that
     * refill_begin call was one in ten per completion near a project's end
     * (issue 18). */
    if (ready_left < c->b->cfg.window_low && window == QR_LEASE_REFILL_USEFUL)
        qr_window_refill(c->b, c->project->id, on_background_refill, NULL);
    if (n == 0 && c->window_more) {
        /* The refill just run found open tasks (or another is loading
         * them): not complete, known without scanning the project's tasks
         * (that scan cost 24 ms a call under load, run about once per 80
         * completions while the window was smaller than the leases in
         * flight). Used once: a later wake asks again. */
        c->window_more = 0;
        if (c->wait_until_ms > qr_mono_ms() && !c->b->draining && !c->b->stopping)
            wait_for_work(c);
        else
            respond_no_lease(c, 0);
        return;
    }
    if (n == 0) {
        char proj[24];
        const char *params[] = {i64(c->project->id, proj)};
        if (qr_pg_query(c->b->pg, QR_SQL_PROJECT_COMPLETE, 1, params, on_complete_checked, c) < 0)
            respond_backend(c, "PostgreSQL", "pool closing");
        return;
    }
    for (int i = 0; i < n; i++)
        record_event(c, QR_EV_GRANT, leases[i].task_id, leases[i].token, c->granted_ms,
                     c->granted_ms, NULL, NULL);
    if (!c->project->show_predictions && !c->parent) {
        respond_leases_text(c, leases, n, why);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char tok[24];
        json_t *data = json_loads(leases[i].data, JSON_DECODE_ANY, NULL);
        json_array_append_new(
            arr, json_pack("{s:s sI sI sI s:o}", "lease", i64(leases[i].token, tok), "task_id",
                           (json_int_t)leases[i].task_id, "fencing_token",
                           (json_int_t)leases[i].token, "expires_at_ms",
                           (json_int_t)leases[i].expires_ms, "data", data ? data : json_object()));
    }
    json_t *o = json_pack("{s:o s:b}", "leases", arr, "project_complete", 0);
    /* Fewer than asked because of a bound: say which. */
    if (why_name(why))
        json_object_set_new(o, "reason", json_string(why_name(why)));
    if (c->project->show_predictions) {
        with_predictions(c, o, leases, n);
        return;
    }
    qr_broker_t *b = c->b;
    int64_t project = c->project->id, annotator = c->user.id;
    if (respond_json(c, 200, o) < 0)
        give_back(b, project, annotator, leases, n); /* leases[] live until we return */
}

/* The grant's answer written straight from the leases: each task's data
 * is the JSON text the window holds (PostgreSQL's jsonb text), spliced in
 * as it is. Parsing it into jansson and dumping it again was a fifth of
 * the broker's instructions on a batched crew (callgrind). */
static void respond_leases_text(ctx_t *c, const qr_lease_t *leases, int n, int why)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_buf_appends(&b, "{\"leases\":[");
    for (int i = 0; i < n; i++) {
        qr_buf_appends(&b, i ? ",{\"lease\":\"" : "{\"lease\":\"");
        qr_buf_append_i64(&b, leases[i].token);
        qr_buf_appends(&b, "\",\"task_id\":");
        qr_buf_append_i64(&b, leases[i].task_id);
        qr_buf_appends(&b, ",\"fencing_token\":");
        qr_buf_append_i64(&b, leases[i].token);
        qr_buf_appends(&b, ",\"expires_at_ms\":");
        qr_buf_append_i64(&b, leases[i].expires_ms);
        qr_buf_appends(&b, ",\"data\":");
        qr_buf_appends(&b, leases[i].data && leases[i].data[0] ? leases[i].data : "{}");
        qr_buf_appends(&b, "}");
    }
    qr_buf_appends(&b, "],\"project_complete\":false");
    if (why_name(why)) {
        qr_buf_appends(&b, ",\"reason\":\"");
        qr_buf_appends(&b, why_name(why));
        qr_buf_appends(&b, "\"");
    }
    qr_buf_appends(&b, "}");
    qr_broker_t *br = c->b;
    int64_t project = c->project->id, annotator = c->user.id;
    if (respond_json_text(c, 200, b.data, b.len) < 0)
        give_back(br, project, annotator, leases, n); /* leases[] live until we return */
    qr_buf_free(&b);
}

/* The share of the caller's organization in c's project; NULL for the
 * project's own organization. */
static const qr_share_t *caller_share(const ctx_t *c)
{
    for (int i = 0; i < c->project->nshares; i++)
        if (c->project->shares[i].org_id == c->user.org_id)
            return &c->project->shares[i];
    return NULL;
}

/* One grant attempt on the current copy of the project. A paused project
 * grants nothing: a long poll waits (a resume wakes it), else 409. */
static void lease_grant(ctx_t *c)
{
    if (c->project->archived_at) {
        respond_archived(c);
        return;
    }
    if (c->project->paused_at) {
        if (c->wait_until_ms > qr_mono_ms() && !c->b->draining && !c->b->stopping)
            wait_for_work(c);
        else
            respond_paused(c);
        return;
    }
    c->granted_ms = qr_now_ms();
    const qr_share_t *s = caller_share(c);
    qr_lease_limits_t lim = {c->user.org_id,
                             s ? s->quota : -1,
                             s ? s->cap : -1,
                             c->project->max_leases ? c->project->max_leases
                                                    : c->b->cfg.max_leases_per_annotator,
                             c->project->gold_rate,
                             c->project->gold_onboarding,
                             !isnan(c->project->gold_min_accuracy)};
    if (qr_lease_grant_limited(c->b->lease, c->project->id, c->user.id, &lim, c->max, c->granted_ms,
                               c->project->lease_ttl_ms, on_granted, c) < 0)
        respond_backend(c, "Redis", "lease grant");
}

static void lease_try(ctx_t *c)
{
    project_refresh(c, lease_grant);
}

void h_lease(ctx_t *c)
{
    int64_t max, wait_ms;
    qr_invalid_t why;
    if (parse_body(c, 1) < 0)
        return;
    if (qr_validate_lease_body(c->body, &max, &wait_ms, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    c->max = (int)max;
    c->timed = 1 + QR_METRIC_LEASE;
    c->wait_until_ms = wait_ms ? qr_mono_ms() + wait_ms : 0;
    qr_http_on_gone(c->req, on_lease_gone, c);
    lease_try(c);
}

/* --- release and skip --------------------------------------------------------------------- */

static void on_release_recorded(const PGresult *res, const char *err, const char *sqlstate,
                                void *arg)
{
    ctx_t *c = arg;
    if (!res)
        qr_warn("recording lease %" PRId64 " failed: %s", c->ids[1], err);
    char tok[24];
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    respond_json(
        c, 200,
        json_pack("{s:s s:b}", "lease", i64(c->ids[1], tok), skip ? "skipped" : "released", 1));
}

static void on_released(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc == QR_ECONFLCT) {
        respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                      "lease %" PRId64 " is not live (expired, ended or not yours)", c->ids[1]);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "release");
        return;
    }
    qr_broker_slots_freed(c->b, c->project->id, 1);
    int skip_ev = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    record_event(c, skip_ev ? QR_EV_SKIP : QR_EV_RELEASE, info->task_id, c->ids[1], qr_now_ms(),
                 info->granted_ms, NULL, json_string_value(json_object_get(c->body, "reason")));
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    char proj[24], tok[24], task[24], ann[24], g[24], x[24];
    const char *reason = json_string_value(json_object_get(c->body, "reason"));
    const char *params[] = {i64(c->project->id, proj),     i64(c->ids[1], tok),
                            i64(info->task_id, task),      i64(c->user.id, ann),
                            i64(info->granted_ms, g),      i64(info->expires_ms, x),
                            skip ? "skipped" : "released", reason};
    if (qr_pg_query(c->b->pg, QR_SQL_LEASE_ENDED, 8, params, on_release_recorded, c) < 0)
        on_release_recorded(NULL, "pool closing", "", c);
}

void h_release(ctx_t *c)
{
    if (parse_body(c, 1) < 0)
        return;
    const char *reason; /* read again from the body once released */
    qr_invalid_t why;
    if (qr_validate_release_body(c->body, &reason, &why) < 0) {
        respond_invalid(c, &why);
        return;
    }
    int skip = !strcmp(c->route->pattern + strlen(c->route->pattern) - 4, "skip");
    if (qr_lease_release(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(), skip,
                         on_released, c) < 0)
        respond_backend(c, "Redis", "release");
}

/* --- POST /v1/projects/{id}/annotations/{annotation}/undo ------------------------------------ */

static void on_regranted(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    if (rc < 0) {
        /* The annotation is gone and its slot back in PostgreSQL; Redis
         * will offer the task again once the window is rebuilt. */
        respond_json(c, 200, json_pack("{s:b s:n}", "undone", 1, "lease"));
        return;
    }
    char tok[24];
    json_t *data = json_loads(c->label, JSON_DECODE_ANY, NULL);
    respond_json(c, 200,
                 json_pack("{s:b s:{s:s sI sI sI s:o}}", "undone", 1, "lease", "lease",
                           i64(info->task_id, tok), "task_id", (json_int_t)c->task_id,
                           "fencing_token", (json_int_t)info->task_id, "expires_at_ms",
                           (json_int_t)info->expires_ms, "data", data ? data : json_object()));
}

static void on_undone(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    if (!res) {
        respond_backend(c, "PostgreSQL", err);
        return;
    }
    if (PQntuples(res) != 1) {
        respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                      "annotation %" PRId64 " cannot be undone (not yours, or its lease ended)",
                      c->ids[1]);
        return;
    }
    c->task_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    c->label = qr_xstrdup(PQgetvalue(res, 0, 2)); /* the task's data, kept for the answer */
    const qr_share_t *s = caller_share(c);
    if (qr_lease_regrant(c->b->lease, c->project->id, c->task_id, c->user.id, c->user.org_id,
                         s && (s->quota >= 0 || s->cap >= 0), qr_now_ms(), c->project->lease_ttl_ms,
                         strtod(PQgetvalue(res, 0, 1), NULL), c->label, on_regranted, c) < 0)
        on_regranted(QR_EIO, NULL, c);
}

void h_undo(ctx_t *c)
{
    char ann[24], user[24], proj[24];
    const char *params[] = {i64(c->ids[1], ann), i64(c->user.id, user), i64(c->project->id, proj)};
    if (qr_pg_query(c->b->pg, QR_SQL_UNDO, 3, params, on_undone, c) < 0)
        respond_backend(c, "PostgreSQL", "pool closing");
}

/* --- POST /v1/projects/{id}/leases/{lease}/heartbeat ---------------------------------------- */

static void on_heartbeat(int rc, const qr_lease_info_t *info, void *arg)
{
    ctx_t *c = arg;
    char tok[24];
    if (rc == QR_ECONFLCT) {
        respond_error(c, 409, QR_CODE_LEASE_EXPIRED,
                      "lease %" PRId64 " is not live (expired, ended or "
                      "not yours)",
                      c->ids[1]);
        return;
    }
    if (rc < 0) {
        respond_backend(c, "Redis", "heartbeat");
        return;
    }
    record_event(c, QR_EV_HEARTBEAT, info->task_id, c->ids[1], qr_now_ms(), info->granted_ms, NULL,
                 NULL);
    respond_json(c, 200,
                 json_pack("{s:s sI}", "lease", i64(c->ids[1], tok), "expires_at_ms",
                           (json_int_t)info->expires_ms));
}

void h_heartbeat(ctx_t *c)
{
    if (qr_lease_heartbeat(c->b->lease, c->project->id, c->user.id, c->ids[1], qr_now_ms(),
                           c->project->lease_ttl_ms, on_heartbeat, c) < 0)
        respond_backend(c, "Redis", "heartbeat");
}
