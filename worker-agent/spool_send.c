/*
 * spool_send.c - delivering what the spool holds (see spool_send.h): whose
 * each record is, the re-keying of older records, the sending of results
 * and of label's other actions, and the `spool` command's two halves.
 */
#include "spool_send.h"

#include "protocol.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Results per batch submit (the API's maximum). */
#define BATCH_MAX 100

size_t agent_say_foreign(const agent_t *ag, const agent_foreign_t *f)
{
    if (f->deployment)
        fprintf(stderr,
                "quorum-agent: %zu spooled record(s) belong to another deployment (not %s, the "
                "one at %s): never sent here; they stay in the spool\n",
                f->deployment, ag->deployment[0] ? ag->deployment : "?", ag->cfg->url);
    if (f->user)
        fprintf(stderr,
                "quorum-agent: %zu spooled record(s) belong to another user of this deployment "
                "(not user %lld): never sent with this token; they stay in the spool\n",
                f->user, (long long)ag->user_id);
    if (f->old)
        fprintf(stderr,
                "quorum-agent: %zu spooled record(s) of the older format were made for another "
                "broker URL or token (or by simulate): not sent; they stay in the spool\n",
                f->old);
    return f->deployment + f->user + f->old;
}

/* Whose a spooled record is (see the top of session.h). */
typedef enum { OWN_OURS, OWN_LEGACY, OWN_DEPLOYMENT, OWN_USER, OWN_OLD } owner_t;

static owner_t owner_of(const agent_t *ag, json_t *rec)
{
    const char *dep = json_string_value(json_object_get(rec, "deployment"));
    if (dep) {
        if (strcmp(dep, ag->deployment) != 0)
            return OWN_DEPLOYMENT;
        if (json_integer_value(json_object_get(rec, "user")) != ag->user_id)
            return OWN_USER;
        return OWN_OURS;
    }
    const char *url = json_string_value(json_object_get(rec, "url"));
    const char *who = json_string_value(json_object_get(rec, "who"));
    if (url && who && strcmp(url, ag->cfg->url) == 0 && strcmp(who, ag->who) == 0)
        return OWN_LEGACY;
    return OWN_OLD;
}

/* Whether rec is a result (kind "submit", or none: every older record). */
static int is_result(json_t *rec)
{
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    return !kind || strcmp(kind, "submit") == 0;
}

/* The spooled record as JSON if it is ours and well formed (a project; a
 * lease, but for an undo, which names an annotation; a result's value, a
 * "label" string or a "labels" object: session.h), else NULL. */
static json_t *our_record(const agent_t *ag, const qr_spool_record_t *r)
{
    json_error_t jerr;
    json_t *rec = json_loads(r->payload, 0, &jerr);
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    int undo = kind && strcmp(kind, "undo") == 0;
    if (rec && owner_of(ag, rec) == OWN_OURS &&
        json_integer_value(json_object_get(rec, "project")) > 0 &&
        (undo ? json_integer_value(json_object_get(rec, "annotation_id")) > 0
              : json_is_string(json_object_get(rec, "lease"))) &&
        (!is_result(rec) || agent_value_get(rec)))
        return rec;
    json_decref(rec);
    return NULL;
}

/*
 * Counts the records that are not ours by why, and re-keys the older-format
 * ones of this URL and token: each is appended again with the deployment
 * and user (fsynced), then the old one is acknowledged. Returns 0 or
 * -QR_EXIT_SPOOL (after agent_fatal).
 */
static int sort_records(agent_t *ag, agent_foreign_t *f)
{
    qr_spool_t *sp = ag->spool;
    size_t n, nold = 0;
    int rc = 0;
    char err[sizeof sp->errstr] = "";

    memset(f, 0, sizeof *f);
    if (pthread_mutex_lock(&ag->lock) != 0)
        abort();
    n = sp->npending;
    uint64_t *old = qr_xcalloc(n ? n : 1, sizeof *old);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_error_t jerr;
        json_t *rec = json_loads(sp->pending[i].payload, 0, &jerr);
        owner_t o = rec ? owner_of(ag, rec) : OWN_OLD;
        f->deployment += o == OWN_DEPLOYMENT;
        f->user += o == OWN_USER;
        f->old += o == OWN_OLD;
        if (o == OWN_LEGACY) {
            uint64_t id;
            uint64_t was = sp->pending[i].id; /* the append may move pending[] */
            json_object_del(rec, "who");
            json_object_set_new(rec, "deployment", json_string(ag->deployment));
            json_object_set_new(rec, "user", json_integer(ag->user_id));
            char *text = json_dumps(rec, JSON_COMPACT);
            if (!text)
                abort();
            rc = qr_spool_append(sp, text, strlen(text), &id);
            free(text);
            old[nold++] = was;
        }
        json_decref(rec);
    }
    if (rc == 0)
        rc = qr_spool_sync(sp);
    for (size_t i = 0; i < nold && rc == 0; i++)
        rc = qr_spool_ack(sp, old[i]);
    if (rc < 0)
        memcpy(err, sp->errstr, sizeof err);
    pthread_mutex_unlock(&ag->lock);
    free(old);
    if (rc < 0) {
        agent_note(ag, AGENT_NOTE_INFO, "%s", err);
        agent_fatal(ag, QR_EXIT_SPOOL);
        return -QR_EXIT_SPOOL;
    }
    if (nold)
        agent_note(ag, AGENT_NOTE_INFO,
                   "%zu spooled record(s) of the older format (for %s) now belong to deployment "
                   "%s, user %lld",
                   nold, ag->cfg->url, ag->deployment, (long long)ag->user_id);
    return 0;
}

/*
 * Sends one of label's spooled actions (rec, spool id id): a skip or
 * release of its lease, or an undo of its annotation (whose new lease is
 * given back at once: nobody is there to label it again). Returns 0 when
 * it was answered for good (it left the spool), 1 when it stays, or
 * AGENT_STOPPED / a negative QR_EXIT_* code.
 */
static int send_action(agent_sess_t *s, json_t *rec, uint64_t id)
{
    agent_t *ag = s->ag;
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    const char *lease = json_string_value(json_object_get(rec, "lease"));
    long long project = (long long)json_integer_value(json_object_get(rec, "project"));
    long long saved = ag->project;
    int r;

    ag->project = project; /* the request helpers take it from the agent */
    if (strcmp(kind, "undo") == 0) {
        char *path =
            qr_xasprintf(QR_API_UNDO("%lld", "%lld"), project,
                         (long long)json_integer_value(json_object_get(rec, "annotation_id")));
        json_t *ans = NULL, *body = json_object();
        r = agent_request(s, "POST", path, body, &ans, 1);
        json_decref(body);
        free(path);
        char *name = r == 0 ? agent_lease_name(json_object_get(ans, "lease")) : NULL;
        json_decref(ans);
        if (name)
            (void)agent_release(s, name, "undone in the terminal; the labeler had left", 0);
        free(name);
        if (r == 0 || (r == AGENT_FAILED && (s->call.status == 404 || s->call.status == 409)))
            r = agent_unspool(ag, id) < 0 ? -QR_EXIT_SPOOL : 0;
    } else if (lease && (strcmp(kind, "skip") == 0 || strcmp(kind, "release") == 0)) {
        int skip = kind[0] == 's';
        r = agent_release_spooled(
            s, id, lease, skip ? "skipped in the terminal" : "released in the terminal", skip);
        if (r == AGENT_FAILED && atomic_load(&ag->fatal))
            r = -QR_EXIT_SPOOL;
    } else {
        r = 1; /* a kind this agent does not know: it stays */
    }
    ag->project = saved;
    if (r == AGENT_FAILED) {
        agent_note(ag, AGENT_NOTE_INFO, "spooled %s: %s", kind, s->call.message);
        if (s->call.status == 401 || s->call.status == 403)
            return -agent_exit_code(&s->call);
        return 1;
    }
    return r;
}

/* Sends every spooled action of ours (not results), oldest first. */
static int flush_actions(agent_sess_t *s, size_t *sent)
{
    agent_t *ag = s->ag;
    uint64_t after = 0; /* ids at or below were tried */
    for (;;) {
        json_t *rec = NULL;
        uint64_t id = 0;
        if (pthread_mutex_lock(&ag->lock) != 0)
            abort();
        for (size_t i = 0; i < ag->spool->npending && !rec; i++) {
            const qr_spool_record_t *r = &ag->spool->pending[i];
            if (r->id <= after)
                continue;
            json_t *j = our_record(ag, r);
            if (j && !is_result(j)) {
                rec = j;
                id = r->id;
            } else {
                json_decref(j);
            }
        }
        pthread_mutex_unlock(&ag->lock);
        if (!rec)
            return 0;
        after = id;
        int r = send_action(s, rec, id);
        json_decref(rec);
        if (r < 0)
            return r;
        *sent += r == 0;
    }
}

int agent_flush_spool(agent_sess_t *s, agent_foreign_t *foreign)
{
    agent_t *ag = s->ag;
    size_t sent = 0;
    agent_foreign_t others;
    int r;

    memset(&others, 0, sizeof others);
    if (foreign)
        *foreign = others;
    if (!ag->spool || ag->spool->npending == 0)
        return 0;
    if (!ag->deployment[0] && (r = agent_whoami(s)) != 0)
        return r;
    if ((r = sort_records(ag, &others)) < 0)
        return r;
    if (foreign)
        *foreign = others;

    for (;;) {
        /* Up to BATCH_MAX of our results for one project, oldest first. */
        uint64_t ids[BATCH_MAX];
        json_t *results = json_array();
        json_int_t project = 0;
        size_t n = 0;
        if (!results)
            abort();
        if (pthread_mutex_lock(&ag->lock) != 0)
            abort();
        for (size_t i = 0; i < ag->spool->npending && n < BATCH_MAX; i++) {
            const qr_spool_record_t *r = &ag->spool->pending[i];
            json_t *rec = our_record(ag, r);
            json_int_t p = json_integer_value(json_object_get(rec, "project"));
            if (!rec || !is_result(rec) || (project && p != project)) {
                json_decref(rec);
                continue;
            }
            project = p;
            json_t *item = json_pack("{s:O}", "lease", json_object_get(rec, "lease"));
            if (!item || agent_value_set(item, agent_value_get(rec)) < 0 ||
                json_object_set(item, "idempotency_key", json_object_get(rec, "idempotency_key")) <
                    0 ||
                json_object_set(item, "active_ms", json_object_get(rec, "active_ms")) < 0)
                abort(); /* out of memory (our_record checked the value) */
            json_decref(rec);
            if (json_array_append_new(results, item) < 0)
                abort(); /* out of memory */
            ids[n++] = r->id;
        }
        pthread_mutex_unlock(&ag->lock);
        if (n == 0) {
            json_decref(results);
            break;
        }
        json_t *body = json_pack("{s:o}", "results", results);
        char *path = qr_xasprintf(QR_API_BATCH_SUBMIT("%lld"), (long long)project);
        json_t *answer = NULL;
        s->retry_cap_ms = agent_result_retry_cap(ag);
        r = agent_request(s, "POST", path, body, &answer, 1);
        s->retry_cap_ms = 0;
        free(path);
        json_decref(body);
        if (r == AGENT_STOPPED)
            return AGENT_STOPPED;
        if (r < 0) {
            agent_note(ag, AGENT_NOTE_INFO, "sending spooled results: %s", s->call.message);
            json_decref(answer);
            return -agent_exit_code(&s->call);
        }
        json_t *list = json_object_get(answer, "results");
        int kept = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(list, i);
            long status = (long)json_integer_value(json_object_get(e, "status"));
            const char *msg =
                json_string_value(json_object_get(json_object_get(e, "error"), "message"));
            char why[512];
            snprintf(why, sizeof why, "%ld %s", status, msg ? msg : "");
            if (status == 401 || status == 403) {
                json_decref(answer);
                agent_note(ag, AGENT_NOTE_INFO, "spooled result refused: %s", why);
                return -QR_EXIT_AUTH;
            }
            int o =
                agent_settle(s, ids[i], status, json_is_true(json_object_get(e, "replayed")), why);
            if (o < 0) {
                json_decref(answer);
                return o;
            }
            kept += o == 2;
            sent += o != 2;
        }
        json_decref(answer);
        if (kept) {
            /* A 5xx for some entries: try them again after a pause. */
            if (agent_nap(ag, qr_backoff_next(&s->backoff)) < 0)
                return AGENT_STOPPED;
        }
    }
    size_t acts = 0;
    if ((r = flush_actions(s, &acts)) < 0)
        return r;
    if (sent)
        agent_note(ag, AGENT_NOTE_INFO, "sent %zu spooled result(s) first", sent);
    if (acts)
        agent_note(ag, AGENT_NOTE_INFO, "sent %zu spooled skip(s), release(s) or undo(s)", acts);
    return 0;
}

/* Prints one pending result of the spool as a table row (or JSON line). */
static void show_record(const qr_spool_record_t *r, int as_json)
{
    json_error_t jerr;
    json_t *rec = json_loads(r->payload, 0, &jerr);
    if (as_json) {
        json_t *row = json_pack("{s:I, s:O*}", "id", (json_int_t)r->id, "result", rec);
        char *text = row ? json_dumps(row, JSON_COMPACT) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(row);
        json_decref(rec);
        return;
    }
    if (!rec) {
        printf("%6llu  (not JSON: %zu bytes)\n", (unsigned long long)r->id, r->len);
        return;
    }
    char when[32] = "-";
    json_int_t ms = json_integer_value(json_object_get(rec, "spooled_at_ms"));
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms > 0 && gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *lease = json_string_value(json_object_get(rec, "lease"));
    char *label = agent_value_get(rec) ? agent_value_text(agent_value_get(rec)) : NULL;
    const char *url = json_string_value(json_object_get(rec, "url"));
    const char *dep = json_string_value(json_object_get(rec, "deployment"));
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    char owner[160];
    if (dep)
        snprintf(owner, sizeof owner, "deployment %.8s user %lld (via %s)", dep,
                 (long long)json_integer_value(json_object_get(rec, "user")), url ? url : "-");
    else
        snprintf(owner, sizeof owner, "%s (older format)", url ? url : "-");
    printf("%6llu  %-20s  %7lld  %7lld  %8s  %-16s  %s\n", (unsigned long long)r->id, when,
           (long long)json_integer_value(json_object_get(rec, "project")),
           (long long)json_integer_value(json_object_get(rec, "task_id")), lease ? lease : "-",
           kind && strcmp(kind, "submit") ? kind
           : label                        ? label
                                          : "-",
           owner);
    free(label);
    json_decref(rec);
}

void agent_spool_list(const qr_spool_t *sp, int as_json)
{
    if (!as_json) {
        printf("spool %s: %zu result(s) pending\n", sp->path, sp->npending);
        if (sp->npending)
            printf("%6s  %-20s  %7s  %7s  %8s  %-16s  %s\n", "id", "spooled at", "project", "task",
                   "lease", "label", "made for");
    }
    for (size_t i = 0; i < sp->npending; i++)
        show_record(&sp->pending[i], as_json);
}

/* Raised only by agent_fatal: `spool --send` ends with its work or with the process. */
static volatile sig_atomic_t spool_stop;

int agent_spool_send(qr_spool_t *sp, const qr_client_config_t *cfg)
{
    agent_t ag;
    agent_sess_t sess;
    agent_foreign_t foreign = {0, 0, 0};
    int rc = QR_EXIT_ERROR;
    if (agent_init(&ag, cfg, &spool_stop) < 0)
        return rc;
    ag.spool = sp;
    if (agent_sess_init(&sess, &ag) == 0) {
        int r = agent_flush_spool(&sess, &foreign);
        rc = r == 0                   ? 0
             : atomic_load(&ag.fatal) ? atomic_load(&ag.fatal)
             : r == AGENT_STOPPED     ? QR_EXIT_PENDING
                                      : -r;
        agent_sess_free(&sess);
    }
    printf("sent: %ld stored (%ld replayed), %ld rejected; %zu pending\n", ag.submitted,
           ag.replayed, ag.rejected, sp->npending);
    fflush(stdout); /* before the lines on stderr that follow */
    /* Records never sent here are not "nothing left to send". */
    if (agent_say_foreign(&ag, &foreign) && rc == 0)
        rc = QR_EXIT_PENDING;
    agent_free(&ag);
    return rc;
}
