/*
 * broker.c - quorumd's lifecycle (start, stop), its caches of tokens and
 * projects, the lease reaper and the refill of each project's Redis window
 * from PostgreSQL.
 */
#include "broker_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "committer.h"
#include "events.h"
#include "import_queue.h"
#include "live_agreement.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "util.h"

void qr_broker_config_defaults(qr_broker_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = "127.0.0.1";
    cfg->listen_port = 8443;
    cfg->pg_conninfo = "host=127.0.0.1 dbname=quorum";
    cfg->pg_pool = 8;
    cfg->pg_read_pool = 4;
    cfg->pg_read_max_lag_ms = 10000;
    cfg->redis_host = "127.0.0.1";
    cfg->redis_port = 6379;
    cfg->max_body_bytes = 64u << 20;
    cfg->max_stream_bytes = (size_t)16 << 30;
    cfg->max_header_bytes = 16u << 10;
    cfg->idle_timeout_ms = 30000;
    cfg->max_connections = 16384; /* room above 10,000 agents (issue 18) */
    cfg->reaper_ms = 1000;
    cfg->window_tasks = 4000;
    cfg->window_low = 1500;
    cfg->max_leases_per_annotator = 10;
    cfg->cache_ttl_ms = 5000;
    cfg->rate_per_sec = 2000;
    cfg->rate_burst = 0; /* 2 x rate */
    cfg->auth_fail_per_sec = 5;
    cfg->max_json_body_bytes = 1u << 20;
    cfg->max_body_total_bytes = 128u << 20;
    cfg->import.max_bytes = QR_IMPORT_MAX_BYTES;
    cfg->import.max_tasks = QR_IMPORT_MAX_TASKS;
    cfg->import_parses = 2;
    cfg->webhook_retry_ms = 1000;
    cfg->drain_ms = 10000;
}

/* --- token cache ---------------------------------------------------------- */

struct token_entry_s {
    char digest[65];
    qr_user_t user;
    int64_t loaded_ms;
    token_entry_t *next;
};

/* The largest body any route takes: each route asks for its own limit
 * below this (qr_http_continue caps there). */
static size_t largest_body(const qr_broker_config_t *cfg)
{
    size_t n = cfg->max_body_bytes;
    if (cfg->max_json_body_bytes > n)
        n = cfg->max_json_body_bytes;
    if (cfg->max_stream_bytes > n)
        n = cfg->max_stream_bytes;
    return n;
}

static unsigned bucket_of(const char *digest)
{
    /* The digest is uniformly random hex already. */
    return (unsigned)strtoul((char[3]){digest[0], digest[1], 0}, NULL, 16) & 255u;
}

int qr_auth_cache_get(qr_broker_t *b, const char *digest, qr_user_t *u)
{
    token_entry_t **pp = &b->tokens[bucket_of(digest)];
    int64_t now = qr_mono_ms();
    while (*pp) {
        token_entry_t *t = *pp;
        if (now - t->loaded_ms > b->cfg.cache_ttl_ms) {
            *pp = t->next;
            free(t);
            continue;
        }
        if (!strcmp(t->digest, digest)) {
            /* A token that expired while cached is refused at once. */
            if (t->user.expires_ms && t->user.expires_ms <= qr_now_ms())
                return 0;
            *u = t->user;
            return 1;
        }
        pp = &t->next;
    }
    return 0;
}

/* --- rate limits (token buckets) ------------------------------------------------------ */

struct rate_entry_s {
    char key[65];    /* a token digest, or a client address */
    double tokens;   /* requests left in the bucket */
    int64_t last_ms; /* monotonic time of the last refill */
    rate_entry_t *next;
};

static unsigned bucket_of_key(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a: addresses are not random like digests */
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h & 255u;
}

/*
 * The bucket of key in table, refilled at rate per second up to burst.
 * Takes one request from it if take (and there is one). Returns 1 if the
 * bucket had a request to give; else 0 with *retry_after_ms until it will.
 * Buckets idle long enough to be full again are dropped on the way, so the
 * table holds only clients active in the last few seconds.
 */
static int bucket_take(rate_entry_t **table, const char *key, double rate, double burst, int take,
                       int64_t *retry_after_ms)
{
    int64_t now = qr_mono_ms();
    unsigned k = bucket_of_key(key);
    rate_entry_t **pp = &table[k], *e = NULL;
    while (*pp) {
        rate_entry_t *x = *pp;
        if ((double)(now - x->last_ms) * rate / 1000.0 > burst && strcmp(x->key, key)) {
            *pp = x->next;
            free(x);
            continue;
        }
        if (!strcmp(x->key, key))
            e = x;
        pp = &x->next;
    }
    if (!e) {
        e = qr_xcalloc(1, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
        e->tokens = burst;
        e->last_ms = now;
        e->next = table[k];
        table[k] = e;
    }
    e->tokens += (double)(now - e->last_ms) * rate / 1000.0;
    if (e->tokens > burst)
        e->tokens = burst;
    e->last_ms = now;
    if (e->tokens >= 1.0) {
        if (take)
            e->tokens -= 1.0;
        return 1;
    }
    *retry_after_ms = (int64_t)((1.0 - e->tokens) * 1000.0 / rate) + 1;
    return 0;
}

int qr_rate_take(qr_broker_t *b, const char *digest, int64_t *retry_after_ms)
{
    if (b->cfg.rate_per_sec <= 0)
        return 1;
    double rate = b->cfg.rate_per_sec;
    double burst = b->cfg.rate_burst > 0 ? b->cfg.rate_burst : 2 * rate;
    return bucket_take(b->rates, digest, rate, burst, 1, retry_after_ms);
}

/* The address part of "ip:port" or "[ip6]:port". */
static void peer_address(const char *peer, char out[65])
{
    snprintf(out, 65, "%s", peer);
    char *colon = strrchr(out, ':');
    if (colon && colon != out)
        *colon = '\0';
}

int qr_authfail_allowed(qr_broker_t *b, const char *peer, int64_t *retry_after_ms)
{
    if (b->cfg.auth_fail_per_sec <= 0)
        return 1;
    char addr[65];
    peer_address(peer, addr);
    double rate = b->cfg.auth_fail_per_sec;
    return bucket_take(b->authfails, addr, rate, 10 * rate, 0, retry_after_ms);
}

void qr_authfail_note(qr_broker_t *b, const char *peer)
{
    if (b->cfg.auth_fail_per_sec <= 0)
        return;
    char addr[65];
    int64_t retry;
    peer_address(peer, addr);
    double rate = b->cfg.auth_fail_per_sec;
    (void)bucket_take(b->authfails, addr, rate, 10 * rate, 1, &retry);
}

void qr_auth_cache_clear(qr_broker_t *b)
{
    for (int i = 0; i < 256; i++) {
        while (b->tokens[i]) {
            token_entry_t *t = b->tokens[i];
            b->tokens[i] = t->next;
            free(t);
        }
    }
}

void qr_auth_cache_put(qr_broker_t *b, const char *digest, const qr_user_t *u)
{
    token_entry_t *t = qr_xcalloc(1, sizeof *t);
    memcpy(t->digest, digest, 65);
    t->user = *u;
    t->loaded_ms = qr_mono_ms();
    unsigned k = bucket_of(digest);
    t->next = b->tokens[k];
    b->tokens[k] = t;
}

/* --- project cache -------------------------------------------------------- */

static void project_free(qr_project_t *p)
{
    for (int i = 0; i < p->nlabels; i++)
        free(p->labels[i]);
    free(p->labels);
    free(p->name);
    free(p->sampling);
    free(p->stratify_field);
    free(p->shares);
    free(p->paused_at);
    free(p->archived_at);
    qr_label_schema_free(p->schema);
    free(p);
}

void qr_project_release(qr_project_t *p)
{
    if (p && --p->refs == 0)
        project_free(p);
}

qr_project_t *qr_project_cache_get(qr_broker_t *b, int64_t id)
{
    qr_project_t **pp = &b->projects[(uint64_t)id & 255u];
    int64_t now = qr_mono_ms();
    while (*pp) {
        qr_project_t *p = *pp;
        if (now - p->loaded_ms > b->cfg.cache_ttl_ms) {
            *pp = p->next;
            qr_project_release(p); /* the cache's reference */
            continue;
        }
        if (p->id == id) {
            p->refs++;
            return p;
        }
        pp = &p->next;
    }
    return NULL;
}

void qr_project_cache_put(qr_broker_t *b, qr_project_t *p)
{
    unsigned k = (unsigned)((uint64_t)p->id & 255u);
    qr_project_cache_drop(b, p->id); /* an older copy of the same project */
    p->loaded_ms = qr_mono_ms();
    p->refs++; /* the cache's reference */
    p->next = b->projects[k];
    b->projects[k] = p;
}

void qr_project_cache_drop(qr_broker_t *b, int64_t id)
{
    for (qr_project_t **pp = &b->projects[(uint64_t)id & 255u]; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            qr_project_t *old = *pp;
            *pp = old->next;
            qr_project_release(old); /* the cache's reference */
            return;
        }
    }
}

qr_project_t *qr_project_from_json(json_t *o)
{
    json_t *labels = json_object_get(o, "labels");
    if (!json_is_object(o) || !json_is_array(labels))
        return NULL;
    qr_project_t *p = qr_xcalloc(1, sizeof *p);
    p->id = (int64_t)json_integer_value(json_object_get(o, "id"));
    p->org_id = (int64_t)json_integer_value(json_object_get(o, "org_id"));
    const char *name = json_string_value(json_object_get(o, "name"));
    p->name = qr_xstrdup(name ? name : "");
    p->annotations_per_task = (int)json_integer_value(json_object_get(o, "annotations_per_task"));
    p->lease_ttl_ms = (int)json_integer_value(json_object_get(o, "lease_ttl_ms"));
    p->overlap_fraction = json_number_value(json_object_get(o, "overlap_fraction"));
    p->overlap_annotations = (int)json_integer_value(json_object_get(o, "overlap_annotations"));
    p->overlap_first = json_is_true(json_object_get(o, "overlap_first"));
    const char *sampling = json_string_value(json_object_get(o, "sampling"));
    p->sampling = qr_xstrdup(sampling ? sampling : "sequential");
    const char *field = json_string_value(json_object_get(o, "stratify_field"));
    p->stratify_field = field ? qr_xstrdup(field) : NULL;
    p->nlabels = (int)json_array_size(labels);
    p->labels = qr_xcalloc((size_t)p->nlabels + 1, sizeof *p->labels);
    for (int i = 0; i < p->nlabels; i++) {
        const char *l = json_string_value(json_array_get(labels, (size_t)i));
        p->labels[i] = qr_xstrdup(l ? l : "");
    }
    json_t *shares = json_object_get(o, "shares");
    p->nshares = (int)json_array_size(shares);
    p->shares = qr_xcalloc((size_t)p->nshares + 1, sizeof *p->shares);
    for (int i = 0; i < p->nshares; i++) {
        json_t *s = json_array_get(shares, (size_t)i);
        json_t *quota = json_object_get(s, "quota_annotations");
        json_t *cap = json_object_get(s, "max_tasks_per_annotator");
        p->shares[i].org_id = (int64_t)json_integer_value(json_object_get(s, "org_id"));
        p->shares[i].quota = json_is_integer(quota) ? (int64_t)json_integer_value(quota) : -1;
        p->shares[i].cap = json_is_integer(cap) ? (int64_t)json_integer_value(cap) : -1;
    }
    const char *paused_at = json_string_value(json_object_get(o, "paused_at"));
    p->paused_at = paused_at ? qr_xstrdup(paused_at) : NULL;
    const char *archived_at = json_string_value(json_object_get(o, "archived_at"));
    p->archived_at = archived_at ? qr_xstrdup(archived_at) : NULL;
    p->max_leases = (int)json_integer_value(json_object_get(o, "max_leases_per_annotator"));
    json_t *conf = json_object_get(o, "auto_accept_confidence");
    p->auto_accept_confidence = json_is_number(conf) ? json_number_value(conf) : NAN;
    p->auto_accept_audit = json_number_value(json_object_get(o, "auto_accept_audit"));
    p->overlap_min = (int)json_integer_value(json_object_get(o, "overlap_min"));
    p->overlap_max = (int)json_integer_value(json_object_get(o, "overlap_max"));
    json_t *thr = json_object_get(o, "overlap_agreement_threshold");
    p->overlap_threshold = json_is_number(thr) ? json_number_value(thr) : NAN;
    p->show_predictions = json_is_true(json_object_get(o, "show_predictions"));
    p->gold_rate = json_number_value(json_object_get(o, "gold_rate"));
    p->gold_onboarding = (int)json_integer_value(json_object_get(o, "gold_onboarding"));
    json_t *gmin = json_object_get(o, "gold_min_accuracy");
    p->gold_min_accuracy = json_is_number(gmin) ? json_number_value(gmin) : NAN;
    p->gold_min_count = (int)json_integer_value(json_object_get(o, "gold_min_count"));
    const char *rv_mode = json_string_value(json_object_get(o, "review_mode"));
    snprintf(p->review_mode, sizeof p->review_mode, "%s", rv_mode ? rv_mode : "none");
    p->review_share = json_number_value(json_object_get(o, "review_share"));
    p->review_agreement_threshold =
        json_number_value(json_object_get(o, "review_agreement_threshold"));
    const char *measure = json_string_value(json_object_get(o, "overlap_measure"));
    snprintf(p->overlap_measure, sizeof p->overlap_measure, "%s", measure ? measure : "support");
    p->overlap_prior_accuracy = json_number_value(json_object_get(o, "overlap_prior_accuracy"));
    p->refs = 1;
    json_t *schema = json_object_get(o, "schema");
    if (json_is_null(schema) || !schema) {
        p->schema = qr_label_schema_implied((const char *const *)p->labels, p->nlabels);
    } else {
        qr_label_error_t err;
        if (qr_label_schema_parse(schema, &p->schema, &err) < 0) {
            qr_warn("project %" PRId64 ": its stored schema does not parse: %s", p->id,
                    err.message);
            project_free(p);
            return NULL;
        }
    }
    return p;
}

json_t *qr_project_to_json(const qr_project_t *p)
{
    json_t *labels = json_array();
    for (int i = 0; i < p->nlabels; i++)
        json_array_append_new(labels, json_string(p->labels[i]));
    json_t *o =
        json_pack("{sI s:s s:o s:i s:i s:f s:i s:b s:s s:s? s:b s:s?}", "id", (json_int_t)p->id,
                  "name", p->name, "labels", labels, "annotations_per_task",
                  p->annotations_per_task, "lease_ttl_ms", p->lease_ttl_ms, "overlap_fraction",
                  p->overlap_fraction, "overlap_annotations", p->overlap_annotations,
                  "overlap_first", p->overlap_first, "sampling", p->sampling, "stratify_field",
                  p->stratify_field, "paused", p->paused_at != NULL, "paused_at", p->paused_at);
    /* null: the broker's default (quorumd --max-leases-per-annotator) */
    json_object_set_new(o, "max_leases_per_annotator",
                        p->max_leases ? json_integer(p->max_leases) : json_null());
    json_object_set_new(o, "org_id", json_integer((json_int_t)p->org_id));
    json_object_set_new(o, "archived", json_boolean(p->archived_at != NULL));
    json_object_set_new(o, "archived_at",
                        p->archived_at ? json_string(p->archived_at) : json_null());
    json_object_set_new(o, "schema",
                        p->schema && !p->schema->implied ? qr_label_schema_to_json(p->schema)
                                                         : json_null());
    json_object_set_new(o, "auto_accept_confidence",
                        isnan(p->auto_accept_confidence) ? json_null()
                                                         : json_real(p->auto_accept_confidence));
    json_object_set_new(o, "auto_accept_audit", json_real(p->auto_accept_audit));
    json_object_set_new(o, "overlap_min",
                        p->overlap_min ? json_integer(p->overlap_min) : json_null());
    json_object_set_new(o, "overlap_max",
                        p->overlap_max ? json_integer(p->overlap_max) : json_null());
    json_object_set_new(o, "overlap_agreement_threshold",
                        isnan(p->overlap_threshold) ? json_null()
                                                    : json_real(p->overlap_threshold));
    json_object_set_new(o, "show_predictions", json_boolean(p->show_predictions));
    json_object_set_new(o, "gold_rate", json_real(p->gold_rate));
    json_object_set_new(o, "gold_onboarding", json_integer(p->gold_onboarding));
    json_object_set_new(o, "gold_min_accuracy",
                        isnan(p->gold_min_accuracy) ? json_null()
                                                    : json_real(p->gold_min_accuracy));
    json_object_set_new(o, "gold_min_count", json_integer(p->gold_min_count));
    json_object_set_new(o, "review_mode", json_string(p->review_mode));
    json_object_set_new(o, "review_share", json_real(p->review_share));
    json_object_set_new(o, "review_agreement_threshold", json_real(p->review_agreement_threshold));
    json_object_set_new(o, "overlap_measure", json_string(p->overlap_measure));
    json_object_set_new(o, "overlap_prior_accuracy", json_real(p->overlap_prior_accuracy));
    return o;
}

/* --- window refill ---------------------------------------------------------- */

typedef struct refill_s {
    qr_broker_t *b;
    int64_t project;
    void (*cb)(int more, void *arg);
    void *arg;
    int exhausted;
    int more; /* open tasks are known to remain: rows loaded, or another refill under way */
} refill_t;

static void refill_finish(refill_t *r)
{
    if (r->cb)
        r->cb(r->more, r->arg);
    free(r);
}

static void on_refill_ended(int rc, void *arg)
{
    refill_finish(arg);
}

static void on_window_added(int rc, void *arg)
{
    refill_t *r = arg;
    /* Long polls that found the window empty while another request held the
     * refill lock are waiting: wake them now that there is work. */
    if (rc == 0)
        qr_broker_work_ready(r->b, r->project);
    if (qr_lease_refill_end(r->b->lease, r->project, rc == 0 && r->exhausted, on_refill_ended, r) <
        0)
        refill_finish(r);
}

static void on_refill_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    refill_t *r = arg;
    if (!res) {
        qr_warn("refill of project %" PRId64 " failed: %s", r->project, err);
        if (qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
            refill_finish(r);
        return;
    }
    int n = PQntuples(res);
    r->exhausted = n < r->b->cfg.window_tasks;
    r->more = n > 0;
    if (n == 0) {
        if (qr_lease_refill_end(r->b->lease, r->project, 1, on_refill_ended, r) < 0)
            refill_finish(r);
        return;
    }
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    int *free_slots = qr_xcalloc((size_t)n, sizeof *free_slots);
    double *prios = qr_xcalloc((size_t)n, sizeof *prios);
    const char **datas = qr_xcalloc((size_t)n, sizeof *datas);
    const char **done_by = qr_xcalloc((size_t)n, sizeof *done_by);
    for (int i = 0; i < n; i++) {
        done_by[i] = PQgetvalue(res, i, 5);
        ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        free_slots[i] = atoi(PQgetvalue(res, i, 1));
        prios[i] = strtod(PQgetvalue(res, i, 2), NULL);
        datas[i] = PQgetvalue(res, i, 3);
    }
    int rc = qr_lease_window_add(r->b->lease, r->project, n, ids, free_slots, prios, datas, done_by,
                                 PQgetvalue(res, n - 1, 4), on_window_added, r);
    free(done_by);
    free(ids);
    free(free_slots);
    free(prios);
    free(datas);
    if (rc < 0 && qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
        refill_finish(r);
}

static void refill_load(refill_t *r, const char *cursor);

static void on_initialised(int rc, void *arg)
{
    refill_t *r = arg;
    if (rc < 0) {
        if (qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
            refill_finish(r);
        return;
    }
    refill_load(r, "");
}

static void on_max_token(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    refill_t *r = arg;
    if (!res || PQntuples(res) != 1) {
        qr_warn("project %" PRId64 ": cannot read its fencing tokens: %s", r->project, err);
        if (qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
            refill_finish(r);
        return;
    }
    /* Leases granted but not yet recorded in PostgreSQL when Redis lost
     * its state may have used tokens above the recorded maximum: leave a
     * gap wider than any such run. */
    int64_t floor = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1000000;
    qr_info("project %" PRId64 ": building its Redis state from PostgreSQL (tokens from %" PRId64
            ")",
            r->project, floor);
    if (qr_lease_init(r->b->lease, r->project, floor, on_initialised, r) < 0)
        on_initialised(QR_EIO, r);
}

static void on_refill_begun(int rc, const char *cursor, int exhausted, int locked, int initialised,
                            void *arg)
{
    refill_t *r = arg;
    /* Another refill holds the lock of a window not exhausted: it is
     * loading open tasks. */
    r->more = rc == 0 && !exhausted && !locked;
    if (rc < 0 || exhausted || !locked) {
        refill_finish(r);
        return;
    }
    if (!initialised) {
        char project[24];
        snprintf(project, sizeof project, "%" PRId64, r->project);
        const char *params[] = {project};
        if (qr_pg_query(r->b->pg, QR_SQL_MAX_TOKEN, 1, params, on_max_token, r) < 0) {
            if (qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
                refill_finish(r);
        }
        return;
    }
    refill_load(r, cursor);
}

static void refill_load(refill_t *r, const char *cursor)
{
    char project[24], limit[16];
    snprintf(project, sizeof project, "%" PRId64, r->project);
    snprintf(limit, sizeof limit, "%d", r->b->cfg.window_tasks);
    const char *params[] = {project, cursor, limit};
    if (qr_pg_query(r->b->pg, QR_SQL_WINDOW_REFILL, 3, params, on_refill_rows, r) < 0) {
        if (qr_lease_refill_end(r->b->lease, r->project, 0, on_refill_ended, r) < 0)
            refill_finish(r);
    }
}

void qr_window_refill(qr_broker_t *b, int64_t project, void (*cb)(int more, void *arg), void *arg)
{
    refill_t *r = qr_xcalloc(1, sizeof *r);
    r->b = b;
    r->project = project;
    r->cb = cb;
    r->arg = arg;
    if (qr_lease_refill_begin(b->lease, project, 10000, on_refill_begun, r) < 0)
        refill_finish(r);
}

/* --- window refresh --------------------------------------------------------- */

typedef struct refresh_s {
    qr_broker_t *b;
    int64_t project;
    void (*cb)(void *);
    void *arg;
} refresh_t;

static void refresh_finish(void *arg)
{
    refresh_t *r = arg;
    if (r->cb)
        r->cb(r->arg);
    free(r);
}

static void on_refresh_refilled(int more, void *arg)
{
    (void)more;
    refresh_finish(arg);
}

static void on_refresh_reopened(int rc, void *arg)
{
    refresh_t *r = arg;
    (void)rc; /* Redis down: the window reloads when it is back */
    qr_window_refill(r->b, r->project, on_refresh_refilled, r);
}

static void refresh_reopen(refresh_t *r)
{
    if (qr_lease_window_reopen(r->b->lease, r->project, on_refresh_reopened, r) < 0)
        refresh_finish(r);
}

static void on_rescored(int rc, void *arg)
{
    refresh_t *r = arg;
    if (rc < 0)
        qr_warn("project %" PRId64 ": the window's new priorities were not set in Redis",
                r->project);
    refresh_reopen(r);
}

static void on_rescore_rows(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    refresh_t *r = arg;
    (void)sqlstate;
    if (!res) {
        qr_warn("project %" PRId64 ": reading the window's new priorities failed: %s", r->project,
                err);
        refresh_reopen(r);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        refresh_reopen(r);
        return;
    }
    int64_t *ids = qr_xcalloc((size_t)n, sizeof *ids);
    double *prios = qr_xcalloc((size_t)n, sizeof *prios);
    int *slots = qr_xcalloc((size_t)n, sizeof *slots);
    for (int i = 0; i < n; i++) {
        ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        prios[i] = strtod(PQgetvalue(res, i, 1), NULL);
        slots[i] = atoi(PQgetvalue(res, i, 2));
    }
    int rc = qr_lease_window_rescore(r->b->lease, r->project, n, ids, prios, slots, on_rescored, r);
    free(ids);
    free(prios);
    free(slots);
    if (rc < 0)
        refresh_finish(r);
}

static void on_window_ids(int rc, const int64_t *ids, int n, void *arg)
{
    refresh_t *r = arg;
    if (rc < 0 || n == 0) {
        refresh_reopen(r);
        return;
    }
    qr_buf_t list;
    qr_buf_init(&list);
    qr_buf_appends(&list, "{");
    for (int i = 0; i < n; i++)
        qr_buf_appendf(&list, "%s%" PRId64, i ? "," : "", ids[i]);
    qr_buf_appends(&list, "}");
    char project[24];
    snprintf(project, sizeof project, "%" PRId64, r->project);
    const char *params[] = {project, list.data};
    rc = qr_pg_query(r->b->pg, QR_SQL_WINDOW_RESCORE, 2, params, on_rescore_rows, r);
    qr_buf_free(&list);
    if (rc < 0)
        refresh_finish(r);
}

void qr_window_refresh(qr_broker_t *b, int64_t project, void (*cb)(void *arg), void *arg)
{
    refresh_t *r = qr_xcalloc(1, sizeof *r);
    r->b = b;
    r->project = project;
    r->cb = cb;
    r->arg = arg;
    if (qr_lease_window_ids(b->lease, project, on_window_ids, r) < 0)
        refresh_finish(r);
}

/* --- reaper ----------------------------------------------------------------- */

static void on_history_written(const PGresult *res, const char *err, const char *sqlstate,
                               void *arg)
{
    if (!res)
        qr_warn("recording expired leases failed: %s", err);
}

/* Records expired leases in the history, one statement per batch. */
static void on_expired(const qr_lease_expired_t *e, int n, void *arg)
{
    qr_broker_t *b = arg;
    qr_buf_t cols[6];
    for (int c = 0; c < 6; c++) {
        qr_buf_init(&cols[c]);
        qr_buf_appends(&cols[c], "{");
    }
    for (int i = 0; i < n; i++) {
        const char *sep = i ? "," : "";
        qr_buf_appendf(&cols[0], "%s%" PRId64, sep, e[i].project_id);
        qr_buf_appendf(&cols[1], "%s%" PRId64, sep, e[i].token);
        qr_buf_appendf(&cols[2], "%s%" PRId64, sep, e[i].task_id);
        qr_buf_appendf(&cols[3], "%s%" PRId64, sep, e[i].annotator_id);
        qr_buf_appendf(&cols[4], "%s%" PRId64, sep, e[i].granted_ms);
        qr_buf_appendf(&cols[5], "%s%" PRId64, sep, e[i].expires_ms);
    }
    const char *params[6];
    for (int c = 0; c < 6; c++) {
        qr_buf_appends(&cols[c], "}");
        params[c] = cols[c].data;
    }
    for (int i = 0; i < n; i++) {
        qr_event_t ev = {.kind = QR_EV_EXPIRE,
                         .project_id = e[i].project_id,
                         .task_id = e[i].task_id,
                         .annotator_id = e[i].annotator_id,
                         .token = e[i].token,
                         .at_ms = e[i].expires_ms,
                         .granted_ms = e[i].granted_ms,
                         .active_ms = -1};
        qr_events_add(b->events, &ev);
    }
    qr_info("reaper: %d expired lease(s) of project %" PRId64 " returned to the queue", n,
            e[0].project_id);
    qr_broker_slots_freed(b, e[0].project_id, n);
    if (qr_pg_query(b->pg, QR_SQL_LEASES_EXPIRED, 6, params, on_history_written, b) < 0)
        qr_warn("recording %d expired lease(s): the PostgreSQL pool is closing", n);
    for (int c = 0; c < 6; c++)
        qr_buf_free(&cols[c]);
}

/* --- the deployment's id ------------------------------------------------------ */

/*
 * Asked at start and on every reaper tick until known: PostgreSQL may be
 * down when the broker starts, which must not keep it from starting. Until
 * then answers carry no Quorum-Deployment header and GET /v1/whoami
 * answers 503, which agents retry.
 */
static void on_deployment(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    qr_broker_t *b = arg;
    b->deployment_asked = 0;
    if (res && PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 36) {
        memcpy(b->deployment, PQgetvalue(res, 0, 0), 36);
        b->deployment[36] = '\0';
        snprintf(b->deployment_header, sizeof b->deployment_header, "%s: %s\r\n",
                 QR_HEADER_DEPLOYMENT, b->deployment);
        qr_info("deployment %s", b->deployment);
        return;
    }
    if (b->deployment_warned || b->stopping) /* a pool closed on the way out */
        return;
    b->deployment_warned = 1;
    if (res || strcmp(sqlstate, "42P01") == 0) /* no row, or no table */
        qr_warn("the database has no deployment id: run `quorumd migrate`");
    else
        qr_warn("cannot read the deployment id yet (retrying every tick): %s", err);
}

static void ask_deployment(qr_broker_t *b)
{
    if (b->deployment[0] || b->deployment_asked || b->stopping)
        return;
    if (qr_pg_query(b->pg, QR_SQL_DEPLOYMENT_ID, 0, NULL, on_deployment, b) == 0)
        b->deployment_asked = 1;
}

static void on_reaper_tick(uv_timer_t *t)
{
    qr_broker_t *b = t->data;
    ask_deployment(b);
    /* Not connected after all (the ready check raced a disconnect): the
     * next tick tries again. */
    if (qr_redis_ready(b->redis) && qr_lease_reap(b->lease, qr_now_ms(), on_expired, b) < 0)
        qr_warn("reaper: cannot ask Redis for expired leases; retrying on the next tick");
}

/* --- wake-ups across brokers ------------------------------------------------ */

static void on_published(redisReply *r, const char *err, void *arg) {}

void qr_broker_work_ready(qr_broker_t *b, int64_t project)
{
    qr_broker_slots_freed(b, project, 0);
}

void qr_broker_slots_freed(qr_broker_t *b, int64_t project, int slots)
{
    b->api.wake(b, project, slots);
    char msg[80];
    snprintf(msg, sizeof msg, "%" PRId64 " %d %" PRIx64, project, slots > 0 ? slots : 0,
             b->instance);
    const char *argv[] = {"PUBLISH", "quorum:ready", msg};
    qr_redis_command(b->redis, 3, argv, NULL, on_published, NULL);
}

static void on_notified(int64_t project, int slots, uint64_t origin, void *arg)
{
    qr_broker_t *b = arg;
    if (project == QR_NOTIFY_REVOKED)
        qr_auth_cache_clear(b);
    else if (project < 0)
        qr_project_cache_drop(b, -1 - project);
    else if (origin != b->instance) /* our own waiters were woken already */
        b->api.wake(b, project, slots);
}

void qr_broker_token_revoked(qr_broker_t *b)
{
    qr_auth_cache_clear(b);
    char id[24];
    snprintf(id, sizeof id, "%d", QR_NOTIFY_REVOKED);
    const char *argv[] = {"PUBLISH", "quorum:ready", id};
    qr_redis_command(b->redis, 3, argv, NULL, on_published, NULL);
}

void qr_broker_project_changed(qr_broker_t *b, int64_t project)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, QR_NOTIFY_CHANGED(project));
    const char *argv[] = {"PUBLISH", "quorum:ready", id};
    qr_redis_command(b->redis, 3, argv, NULL, on_published, NULL);
}

/* Around the callbacks of one group commit: the leases its rows end go to
 * Redis in one call per project (qr_lease_cork). */
static void lease_cork(void *arg)
{
    qr_lease_cork(arg);
}

static void lease_uncork(void *arg)
{
    qr_lease_uncork(arg);
}

/* Around the answers of one call of lease steps: the rows a submit
 * batch's pins let through go to PostgreSQL in one batch. */
static void committer_hold(void *arg)
{
    qr_committer_hold(arg);
}

static void committer_release(void *arg)
{
    qr_committer_release(arg);
}

/* --- lifecycle -------------------------------------------------------------- */

static void broker_abort(qr_broker_t *b, int reaper_open);

int qr_broker_start(uv_loop_t *loop, const qr_broker_config_t *cfg, const qr_broker_api_t *api,
                    qr_broker_t **out, char *err, size_t errlen)
{
    int rc, reaper_open = 0;
    qr_broker_t *b = qr_xcalloc(1, sizeof *b);
    b->loop = loop;
    b->api = *api;
    /* Tells this broker's wake-ups from others' on the shared channel. */
    b->instance = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 40) ^ (uint64_t)qr_now_ms() << 20;
    if (!b->instance)
        b->instance = 1;
    b->cfg = *cfg;
    rc = qr_pg_open(loop, cfg->pg_conninfo, cfg->pg_pool, 5000, &b->pg);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the PostgreSQL pool (%d)", rc);
        goto fail;
    }
    if (cfg->pg_read_conninfo) {
        qr_read_pool_config_t rc_cfg = {
            .conninfo = cfg->pg_read_conninfo,
            .size = cfg->pg_read_pool,
            .max_lag_ms = cfg->pg_read_max_lag_ms,
            .interval_ms = 1000,
        };
        rc = qr_read_pool_open(loop, b->pg, &rc_cfg, &b->read);
        if (rc < 0) {
            snprintf(err, errlen, "cannot open the --pg-read pool (%d)", rc);
            goto fail;
        }
    }
    /* The lease log: a batch every 200 ms, or every second once a batch held
     * 1,000 events or more (over 5,000 events/s), up to 10,000 events a
     * batch: its rollup merges cost per annotator and batch, not per event
     * (docs/DESIGN.md, 4.1). */
    rc = qr_events_open(loop, b->pg, 200, 10000, &b->events);
    if (rc == 0)
        rc = qr_events_set_busy(b->events, 1000, 1000);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the event log (%d)", rc);
        goto fail;
    }
    if (cfg->redis_cluster)
        rc = qr_redis_open_cluster(loop, cfg->redis_cluster, 5000, &b->redis);
    else if (cfg->redis_sentinels)
        rc = qr_redis_open_sentinel(loop, cfg->redis_sentinels, cfg->redis_master, 5000, &b->redis);
    else
        rc = qr_redis_open(loop, cfg->redis_host, cfg->redis_port, 5000, &b->redis);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the Redis client (%d)", rc);
        goto fail;
    }
    ask_deployment(b);
    b->lease = qr_lease_engine_new(b->redis);
    b->agreement = qr_live_agreement_new(loop, b->pg, b->read, 1000);
    b->imports = qr_import_queue_new(loop, cfg->import_parses);
    b->committer = qr_committer_new(b->pg, cfg->pg_pool > 1 ? cfg->pg_pool / 2 : 1, 256);
    qr_committer_set_batch_hooks(b->committer, lease_cork, lease_uncork, b->lease);
    qr_lease_set_step_hooks(b->lease, committer_hold, committer_release, b->committer);
    if (cfg->webhooks) {
        qr_webhook_config_t wc;
        qr_webhook_config_defaults(&wc);
        wc.pg_conninfo = cfg->pg_conninfo;
        wc.key = b->cfg.webhook_key;
        wc.retry_base_ms = cfg->webhook_retry_ms;
        wc.allow_private = cfg->webhook_allow_private;
        if (cfg->webhook_keep_days > 0)
            wc.keep_s = cfg->webhook_keep_days * 86400;
        rc = qr_webhook_open(loop, &wc, &b->webhooks);
        if (rc < 0) {
            snprintf(err, errlen, "cannot start the webhook dispatcher (%d)", rc);
            goto fail;
        }
    }
    if (cfg->redis_cluster)
        rc = qr_notify_open_cluster(loop, cfg->redis_cluster, on_notified, b, &b->notify);
    else if (cfg->redis_sentinels)
        rc = qr_notify_open_sentinel(loop, cfg->redis_sentinels, cfg->redis_master, on_notified, b,
                                     &b->notify);
    else
        rc = qr_notify_open(loop, cfg->redis_host, cfg->redis_port, on_notified, b, &b->notify);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the Redis subscriber (%d)", rc);
        goto fail;
    }
    qr_http_config_t hc = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = largest_body(cfg),
        .max_body_total_bytes = cfg->max_body_total_bytes,
        .head_handler = api->head,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
        .client_ca_file = cfg->client_ca_file,
        .require_client_cert = cfg->require_client_cert,
    };
    rc = qr_http_server_start(loop, &hc, api->handle, b, &b->http, err, errlen);
    if (rc < 0)
        goto fail;
    rc = uv_timer_init(loop, &b->reaper);
    if (rc < 0) {
        snprintf(err, errlen, "uv_timer_init: %s", uv_strerror(rc));
        goto fail;
    }
    reaper_open = 1;
    b->reaper.data = b;
    rc = uv_timer_start(&b->reaper, on_reaper_tick, (uint64_t)cfg->reaper_ms,
                        (uint64_t)cfg->reaper_ms);
    if (rc < 0) {
        snprintf(err, errlen, "uv_timer_start: %s", uv_strerror(rc));
        goto fail;
    }
    *out = b;
    return 0;
fail:
    /* What was opened is closed on the loop's next turns: the caller runs
     * the loop until it is empty, then closes it. */
    *out = NULL;
    broker_abort(b, reaper_open);
    return rc < 0 ? rc : QR_EIO;
}

int qr_broker_reload_tls(qr_broker_t *b, char *err, size_t errlen)
{
    if (b->stopping) { /* the server may be freed already; the broker follows */
        snprintf(err, errlen, "the broker is stopping");
        return QR_EINVAL;
    }
    return qr_http_reload_tls(b->http, b->cfg.cert_file, b->cfg.key_file, err, errlen);
}

int qr_broker_port(const qr_broker_t *b)
{
    return qr_http_port(b->http);
}

static void rate_table_free(rate_entry_t **head)
{
    while (*head) {
        rate_entry_t *r = *head;
        *head = r->next;
        free(r);
    }
}

static void broker_free(qr_broker_t *b)
{
    qr_auth_cache_clear(b);
    for (int i = 0; i < 256; i++) {
        rate_table_free(&b->rates[i]);
        rate_table_free(&b->authfails[i]);
        while (b->projects[i]) {
            qr_project_t *p = b->projects[i];
            b->projects[i] = p->next;
            qr_project_release(p);
        }
    }
    qr_lease_engine_free(b->lease);
    qr_committer_free(b->committer);
    if (b->agreement)
        qr_live_agreement_free(b->agreement);
    void (*cb)(void *) = b->stop_cb;
    void *arg = b->stop_arg;
    free(b);
    if (cb)
        cb(arg);
}

static void one_closed(void *arg)
{
    qr_broker_t *b = arg;
    if (--b->closing == 0)
        broker_free(b);
}

/* The replica's pool closes last: a report's statement failing on the
 * primary's close may still ask where to read (qr_read_pool_choose), and
 * the replica's probe may be waiting on the primary. */
static void on_pg_closed(void *arg)
{
    qr_broker_t *b = arg;
    if (b->read)
        qr_read_pool_close(b->read, one_closed, b);
    else
        one_closed(b);
}

static void on_events_closed(void *arg)
{
    qr_broker_t *b = arg;
    qr_pg_close(b->pg, on_pg_closed, b);
}

static void on_reaper_closed(uv_handle_t *h)
{
    one_closed(h->data);
}

/*
 * Undoes a qr_broker_start that failed part way: closes whatever it had
 * opened, in the order qr_broker_stop closes it, and frees the broker once
 * the last of them has closed (on later turns of the loop). The one extra
 * count taken here is dropped at the end, so a broker that had opened
 * nothing is freed at once.
 */
static void broker_abort(qr_broker_t *b, int reaper_open)
{
    b->stopping = 1;
    b->closing = 1;
    if (reaper_open) {
        b->closing++;
        uv_close((uv_handle_t *)&b->reaper, on_reaper_closed);
    }
    if (b->notify) {
        b->closing++;
        qr_notify_close(b->notify, one_closed, b);
    }
    if (b->http) {
        b->closing++;
        qr_http_server_close(b->http, one_closed, b);
    }
    if (b->imports) {
        b->closing++;
        qr_import_queue_close(b->imports, one_closed, b);
    }
    if (b->webhooks) {
        b->closing++;
        qr_webhook_close(b->webhooks, one_closed, b);
    }
    if (b->redis) {
        b->closing++;
        qr_redis_close(b->redis, one_closed, b);
    }
    if (b->events) {
        b->closing++;
        qr_events_close(b->events, on_events_closed, b);
    } else if (b->pg) {
        b->closing++;
        qr_pg_close(b->pg, on_pg_closed, b);
    }
    one_closed(b);
}

static void on_drain_timer_closed(uv_handle_t *h)
{
    one_closed(h->data);
}

void qr_broker_stop(qr_broker_t *b, void (*cb)(void *arg), void *arg)
{
    if (b->stopping)
        return;
    b->stop_cb = cb;
    b->stop_arg = arg;
    b->stopping = 1;
    b->api.wake(b, 0, 0); /* long polls end now, empty */
    b->closing = b->webhooks ? 7 : 6;
    if (b->drain_timer_open) {
        b->drain_timer_open = 0;
        b->closing++;
        uv_close((uv_handle_t *)&b->drain_timer, on_drain_timer_closed);
    }
    if (b->webhooks)
        qr_webhook_close(b->webhooks, one_closed, b);
    uv_close((uv_handle_t *)&b->reaper, on_reaper_closed);
    qr_notify_close(b->notify, one_closed, b);
    qr_http_server_close(b->http, one_closed, b);
    /* Imports waiting to parse are answered 503; running parses end first. */
    qr_import_queue_close(b->imports, one_closed, b);
    qr_redis_close(b->redis, one_closed, b);
    /* The event log writes what it holds first: only then may the pool go. */
    qr_events_close(b->events, on_events_closed, b);
}

/* --- drain ------------------------------------------------------------------ */

#define DRAIN_TICK_MS 50 /* how often the drain looks at what is left */

/* The drain's clock: the listener closes after its window; the broker
 * stops once no connection is left, or at the deadline. */
static void on_drain_tick(uv_timer_t *t)
{
    qr_broker_t *b = t->data;
    int64_t now = qr_mono_ms(), took = now - b->drain_start_ms;
    if (took < b->drain_listen_ms) {
        /* Open while the health checker has not seen the 503, or clients
         * still come: they were sent before it did. */
        int64_t last = qr_http_accepted_ms(b->http);
        if (last < b->drain_start_ms)
            last = b->drain_start_ms;
        if (b->readyz_ms < b->drain_start_ms || now - last < QR_DRAIN_QUIET_MS)
            return;
    }
    qr_http_server_stop_listening(b->http);
    int left = qr_http_connections(b->http);
    if (left == 0 && b->background == 0) {
        qr_info("drained in %" PRId64 " ms: every client answered; stopping", took);
    } else if (took >= b->cfg.drain_ms) {
        qr_warn("drain deadline (%d ms) reached with %d connection(s) open and %d piece(s) of "
                "work after an answer unfinished: cut; stopping",
                b->cfg.drain_ms, left, b->background);
    } else {
        return;
    }
    qr_broker_stop(b, b->stop_cb, b->stop_arg);
}

void qr_broker_drain(qr_broker_t *b, void (*cb)(void *arg), void *arg)
{
    if (b->draining || b->stopping)
        return;
    b->draining = 1;
    b->stop_cb = cb;
    b->stop_arg = arg;
    b->drain_start_ms = qr_mono_ms();
    b->drain_listen_ms = 0;
    if (b->readyz_ms && b->drain_start_ms - b->readyz_ms < QR_DRAIN_CHECKER_MS)
        b->drain_listen_ms =
            b->cfg.drain_ms / 4 < QR_DRAIN_LISTEN_MS ? b->cfg.drain_ms / 4 : QR_DRAIN_LISTEN_MS;
    qr_info("draining: /readyz answers 503; new connections accepted until the health checker saw "
            "it and none came for %d ms, for at most %" PRId64 " ms; at most %d ms in all",
            QR_DRAIN_QUIET_MS, b->drain_listen_ms, b->cfg.drain_ms);
    qr_http_server_drain(b->http);
    if (b->drain_listen_ms == 0)
        qr_http_server_stop_listening(b->http);
    b->api.wake(b, 0, 0); /* long polls end now, empty */
    int rc = uv_timer_init(b->loop, &b->drain_timer);
    if (rc == 0) {
        b->drain_timer_open = 1;
        b->drain_timer.data = b;
        rc = uv_timer_start(&b->drain_timer, on_drain_tick, DRAIN_TICK_MS, DRAIN_TICK_MS);
    }
    if (rc < 0) {
        /* Neither fails on a working loop; without the clock, stop now. */
        qr_warn("drain: uv_timer_init/start: %s; stopping now", uv_strerror(rc));
        qr_broker_stop(b, cb, arg);
    }
}

void qr_broker_background_begin(qr_broker_t *b)
{
    b->background++;
}

void qr_broker_background_end(qr_broker_t *b)
{
    if (b->background > 0)
        b->background--;
}

int qr_broker_draining(const qr_broker_t *b)
{
    return b->draining;
}
