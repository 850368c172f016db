/*
 * session.c - one annotator's requests with retries, and the delivery of
 * results through the spool (see session.h for the contract).
 */
#include "session.h"

#include "spool_send.h"

#include "cli.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each request may take this long as a whole (ms); long polls add their wait. */
#define REQUEST_TIMEOUT_MS 30000L
/* Retry delays: from 100 ms doubling to 10 s, with jitter. */
#define RETRY_BASE_MS 100
#define RETRY_MAX_MS  10000

int agent_init(agent_t *ag, const qr_client_config_t *cfg, volatile sig_atomic_t *stop)
{
    memset(ag, 0, sizeof *ag);
    ag->cfg = cfg;
    ag->stop = stop;
    atomic_init(&ag->fatal, 0);
    char hex[65];
    qr_sha256_hex(cfg->token ? cfg->token : "", cfg->token ? strlen(cfg->token) : 0, hex);
    memcpy(ag->who, hex, 16);
    ag->who[16] = '\0';
    int rc = pthread_mutex_init(&ag->lock, NULL);
    if (rc != 0) {
        fprintf(stderr, "quorum-agent: pthread_mutex_init: %s\n", strerror(rc));
        return -1;
    }
    return 0;
}

void agent_free(agent_t *ag)
{
    for (size_t i = 0; i < ag->nlabels; i++)
        free(ag->labels[i]);
    free(ag->labels);
    ag->labels = NULL;
    ag->nlabels = 0;
    json_decref(ag->schema);
    ag->schema = NULL;
    pthread_mutex_destroy(&ag->lock);
}

/* Set once by any thread; read when the agent stops. */
static atomic_int archived_seen;
static atomic_int annotator_paused_seen; /* 403 annotator_paused: this annotator, not the project */

int agent_project_archived(void)
{
    return atomic_load(&archived_seen);
}

void agent_say_paused(const agent_t *ag, const char *what)
{
    if (atomic_load(&annotator_paused_seen) && !agent_project_archived()) {
        fprintf(stderr,
                "quorum-agent: you are paused in project %lld (gold accuracy below its "
                "minimum); %s; run again once a manager reinstates you (exit 8)\n",
                ag->project, what);
        return;
    }
    if (agent_project_archived()) {
        fprintf(stderr,
                "quorum-agent: project %lld is archived: it hands out no more tasks; %s; "
                "there is nothing more to do here unless a manager unarchives it (exit 8)\n",
                ag->project, what);
        return;
    }
    fprintf(stderr,
            "quorum-agent: project %lld is paused; %s; run again once a manager resumes it "
            "(exit 8)\n",
            ag->project, what);
}

void agent_note(agent_t *ag, agent_note_t kind, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ag->note)
        ag->note(ag->note_arg, kind, msg);
    else
        fprintf(stderr, "quorum-agent: %s\n", msg);
}

void agent_fatal(agent_t *ag, int code)
{
    int none = 0;
    atomic_compare_exchange_strong(&ag->fatal, &none, code);
    *ag->stop = 1;
}

/* libcurl progress callback of abortable requests: non-zero aborts. */
static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    agent_sess_t *s = clientp;
    if (!*s->ag->stop)
        return 0;
    return s->finish_on_fatal && atomic_load(&s->ag->fatal) ? 0 : 1;
}

int agent_sess_init(agent_sess_t *s, agent_t *ag)
{
    memset(s, 0, sizeof *s);
    s->ag = ag;
    char hex[17];
    uint64_t seed = (uint64_t)qr_now_ms();
    if (qr_random_hex(8, hex) == 0)
        seed = strtoull(hex, NULL, 16);
    qr_backoff_init(&s->backoff, RETRY_BASE_MS, RETRY_MAX_MS, seed);
    if (qr_client_call_init(&s->call, ag->cfg, REQUEST_TIMEOUT_MS) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", s->call.message);
        qr_client_call_free(&s->call);
        return -1;
    }
    s->call_ready = 1;
    CURLcode rc = curl_easy_setopt(s->call.easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(s->call.easy, CURLOPT_XFERINFODATA, (void *)s);
    if (rc != CURLE_OK) {
        fprintf(stderr, "quorum-agent: libcurl: %s\n", curl_easy_strerror(rc));
        agent_sess_free(s);
        return -1;
    }
    return 0;
}

void agent_sess_free(agent_sess_t *s)
{
    if (s->call_ready)
        qr_client_call_free(&s->call);
    s->call_ready = 0;
}

int agent_exit_code(const qr_client_call_t *call)
{
    /* A project the caller's organization neither owns nor shares answers
     * 403 "no access to project N", exactly as one that does not exist. */
    if (call->status == 404 || (call->status == 403 && strstr(call->message, QR_MSG_NO_ACCESS)))
        return QR_EXIT_PROJECT;
    /* Paused below the project's gold accuracy: the token is fine, and a
     * manager's reinstatement lets the annotator lease again. */
    if (call->status == 403 && !strcmp(call->code, QR_CODE_ANNOTATOR_PAUSED)) {
        atomic_store(&annotator_paused_seen, 1);
        return QR_EXIT_PAUSED;
    }
    if (call->status == 401 || call->status == 403)
        return QR_EXIT_AUTH;
    if (call->status == 409 && !strcmp(call->code, QR_CODE_PROJECT_PAUSED))
        return QR_EXIT_PAUSED;
    if (call->status == 409 && !strcmp(call->code, QR_CODE_PROJECT_ARCHIVED)) {
        atomic_store(&archived_seen, 1);
        return QR_EXIT_PAUSED;
    }
    switch (call->result) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return QR_EXIT_TLS;
    default:
        return QR_EXIT_ERROR;
    }
}

/* Sleeps ms, waking every 100 ms to look at the stop flag. Returns 0, or
 * AGENT_STOPPED. */
int agent_nap(const agent_t *ag, int64_t ms)
{
    int64_t until = qr_mono_ms() + ms;
    for (;;) {
        if (*ag->stop)
            return AGENT_STOPPED;
        int64_t left = until - qr_mono_ms();
        if (left <= 0)
            return 0;
        (void)poll(NULL, 0, (int)(left < 100 ? left : 100)); /* EINTR just wakes early */
    }
}

int agent_request(agent_sess_t *s, const char *method, const char *path, json_t *body, json_t **out,
                  int abortable)
{
    agent_t *ag = s->ag;
    int said = 0;

    if (out)
        *out = NULL;
    abortable |= ag->abort_all;
    for (;;) {
        if (abortable && *ag->stop)
            return AGENT_STOPPED;
        CURLcode rc = curl_easy_setopt(s->call.easy, CURLOPT_NOPROGRESS, abortable ? 0L : 1L);
        int r;
        if (rc != CURLE_OK) {
            snprintf(s->call.message, sizeof s->call.message, "libcurl: %s",
                     curl_easy_strerror(rc));
            r = -1;
        } else {
            r = qr_cli_call(&s->call, method, path, body, out);
        }
        if (r == 0) {
            if (said)
                agent_note(ag, AGENT_NOTE_REACHABLE, "broker reachable again");
            qr_backoff_reset(&s->backoff);
            return 0;
        }
        if (s->call.result == CURLE_ABORTED_BY_CALLBACK)
            return AGENT_STOPPED;
        if (!qr_client_call_retryable(&s->call))
            return AGENT_FAILED;
        int64_t delay = qr_backoff_next(&s->backoff);
        if (s->retry_cap_ms > 0 && delay > s->retry_cap_ms)
            delay = s->retry_cap_ms / 2 + delay % (s->retry_cap_ms / 2 + 1);
        if (!said || s->backoff.attempt % 10 == 0)
            agent_note(ag, s->call.status ? AGENT_NOTE_UNAVAILABLE : AGENT_NOTE_UNREACHABLE,
                       "%s; retrying in %lld ms", s->call.message, (long long)delay);
        said = 1;
        if (agent_nap(ag, delay) < 0)
            return AGENT_STOPPED;
    }
}

int agent_load_project(agent_sess_t *s)
{
    agent_t *ag = s->ag;
    json_t *root = NULL;
    char *path = qr_xasprintf(QR_API_PROJECT("%lld"), ag->project);
    int r = agent_request(s, "GET", path, NULL, &root, 1);
    free(path);
    if (r == AGENT_STOPPED)
        return QR_EXIT_PENDING;
    if (r < 0) {
        fprintf(stderr, "quorum-agent: cannot read project %lld: %s\n", ag->project,
                s->call.message);
        return agent_exit_code(&s->call);
    }
    json_t *labels = json_object_get(root, "labels");
    json_t *schema = json_object_get(root, "schema");
    size_t n = json_array_size(labels);
    if (json_is_object(schema)) {
        ag->schema = json_incref(schema); /* its labels are [] */
    } else if (n == 0) {
        fprintf(stderr, "quorum-agent: project %lld has no labels in the broker's answer\n",
                ag->project);
        json_decref(root);
        return QR_EXIT_ERROR;
    }
    ag->labels = qr_xcalloc(n ? n : 1, sizeof *ag->labels);
    for (size_t i = 0; i < n; i++) {
        const char *l = json_string_value(json_array_get(labels, i));
        if (!l) {
            fprintf(stderr, "quorum-agent: project %lld: label %zu is not a string\n", ag->project,
                    i);
            json_decref(root);
            return QR_EXIT_ERROR;
        }
        ag->labels[ag->nlabels++] = qr_xstrdup(l);
    }
    json_t *ttl = json_object_get(root, "lease_ttl_ms");
    ag->lease_ttl_ms = json_is_integer(ttl) ? json_integer_value(ttl) : 60000;
    json_decref(root);
    return 0;
}

int agent_whoami(agent_sess_t *s)
{
    agent_t *ag = s->ag;
    json_t *who = NULL;
    int r = agent_request(s, "GET", QR_API_WHOAMI, NULL, &who, 1);
    if (r == AGENT_STOPPED)
        return AGENT_STOPPED;
    if (r < 0) {
        fprintf(stderr, "quorum-agent: cannot learn whose results these are (%s): %s\n",
                QR_API_WHOAMI, s->call.message);
        agent_fatal(ag, agent_exit_code(&s->call)); /* -1 would read as AGENT_STOPPED */
        return -agent_exit_code(&s->call);
    }
    const char *dep = json_string_value(json_object_get(who, "deployment"));
    json_int_t user = json_integer_value(json_object_get(who, "user_id"));
    if (!dep || !dep[0] || strlen(dep) >= sizeof ag->deployment || user <= 0) {
        fprintf(stderr,
                "quorum-agent: the broker at %s reports no deployment id or user "
                "(an older broker?); nothing is sent\n",
                ag->cfg->url);
        json_decref(who);
        agent_fatal(ag, QR_EXIT_ERROR);
        return -QR_EXIT_ERROR;
    }
    snprintf(ag->deployment, sizeof ag->deployment, "%s", dep);
    ag->user_id = (int64_t)user;
    json_decref(who);
    return 0;
}

int agent_start(agent_sess_t *s, int say_foreign, int *exit_code)
{
    const qr_spool_t *spool = s->ag->spool;
    agent_foreign_t foreign = {0, 0, 0};
    int r = agent_whoami(s);
    if (r == 0)
        r = agent_flush_spool(s, &foreign);
    if (r < 0 && atomic_load(&s->ag->fatal)) {
        *exit_code = atomic_load(&s->ag->fatal);
        return -1;
    }
    if (r == AGENT_STOPPED) {
        *exit_code = spool && spool->npending ? QR_EXIT_PENDING : QR_EXIT_OK;
        return -1;
    }
    if (r < 0) {
        *exit_code = -r;
        return -1;
    }
    if (say_foreign)
        agent_say_foreign(s->ag, &foreign);
    if ((r = agent_load_project(s)) != 0) {
        /* Stopped while the broker was unreachable: 7 only if results are
         * still spooled, as the exit codes say. */
        *exit_code = r == QR_EXIT_PENDING && !(spool && spool->npending) ? QR_EXIT_OK : r;
        return -1;
    }
    return 0;
}

int agent_label_known(const agent_t *ag, const char *label)
{
    for (size_t i = 0; i < ag->nlabels; i++) {
        if (strcmp(ag->labels[i], label) == 0)
            return 1;
    }
    return 0;
}

int agent_value_set(json_t *obj, const json_t *value)
{
    if (!json_is_string(value) && !json_is_object(value))
        return -1;
    if (json_object_set_new(obj, json_is_string(value) ? "label" : "labels",
                            json_deep_copy(value)) < 0)
        abort(); /* out of memory */
    return 0;
}

json_t *agent_value_get(const json_t *obj)
{
    json_t *v = json_object_get(obj, "labels");
    if (json_is_object(v))
        return v;
    v = json_object_get(obj, "label");
    return json_is_string(v) ? v : NULL;
}

char *agent_value_text(const json_t *value)
{
    if (json_is_string(value))
        return qr_xstrdup(json_string_value(value));
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        abort(); /* out of memory */
    return text;
}

char *agent_lease_name(json_t *lease)
{
    json_t *name = json_object_get(lease, "lease");
    if (json_is_string(name))
        return qr_xstrdup(json_string_value(name));
    if (json_is_integer(name))
        return qr_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(name));
    return NULL;
}

json_t *agent_lease_prediction(json_t *lease)
{
    json_t *p = json_object_get(lease, "prediction");
    return json_is_object(p) ? json_incref(p) : NULL;
}

char *agent_prediction_text(const json_t *prediction)
{
    json_t *v = json_object_get(prediction, "labels");
    if (!v)
        v = json_object_get(prediction, "label");
    char *value = v ? agent_value_text(v) : qr_xstrdup("(no value)");
    json_t *score = json_object_get(prediction, "score");
    char *text = json_is_number(score)
                     ? qr_xasprintf("%s (score %.2f)", value, json_number_value(score))
                     : qr_xstrdup(value);
    free(value);
    return text;
}

/* Appends a rejected result with its reason to "<spool>.rejected" (fsynced).
 * Called with ag->lock held. Failure is only reported. */
static void write_rejected(agent_t *ag, const char *payload, const char *reason)
{
    if (!ag->spool)
        return;
    char *path = qr_xasprintf("%s.rejected", ag->spool->path);
    json_error_t jerr;
    json_t *result = json_loads(payload, 0, &jerr);
    json_t *line = json_pack("{s:I, s:s, s:o*}", "rejected_at_ms", (json_int_t)qr_now_ms(),
                             "reason", reason, "result", result);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    int ok = fd >= 0 && text;
    if (ok) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL; written with its length */
        ok = write(fd, text, n + 1) == (ssize_t)(n + 1) && fsync(fd) == 0;
    }
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    if (!ok)
        agent_note(ag, AGENT_NOTE_INFO, "cannot record a rejected result in %s: %s", path,
                   strerror(errno));
    free(text);
    free(path);
}

/*
 * Settles spooled result id after an answer with this HTTP status:
 * delivered (2xx) or rejected for good (403 no access to the project: it is
 * no longer shared with the annotator's organization; 404, 409, 422) leave
 * the spool.
 * Returns 0 delivered, 1 rejected, 2 kept (anything else), or a negative
 * QR_EXIT_* code when removing it from the spool failed.
 */
int agent_settle(agent_sess_t *s, uint64_t id, long status, int replayed, const char *why)
{
    agent_t *ag = s->ag;
    int outcome;
    if (status >= 200 && status < 300)
        outcome = 0;
    else if (status == 403 || status == 404 || status == 409 || status == 422)
        outcome = 1;
    else
        return 2;

    int rc = pthread_mutex_lock(&ag->lock);
    if (rc != 0)
        abort(); /* only fails on a corrupted mutex */
    if (outcome == 0) {
        ag->submitted++;
        ag->replayed += replayed;
    } else {
        ag->rejected++;
    }
    int ret = outcome;
    char said[700] = "";
    if (ag->spool) {
        const qr_spool_record_t *r = qr_spool_find(ag->spool, id);
        if (r && outcome == 1) {
            write_rejected(ag, r->payload, why);
            snprintf(said, sizeof said, "result not stored, kept in %s.rejected: %s",
                     ag->spool->path, why);
        }
        if (qr_spool_ack(ag->spool, id) < 0) {
            snprintf(said, sizeof said, "%s", ag->spool->errstr);
            ret = -QR_EXIT_SPOOL;
        }
    } else if (outcome == 1) {
        snprintf(said, sizeof said, "result not stored: %s", why);
    }
    pthread_mutex_unlock(&ag->lock);
    if (said[0])
        agent_note(ag, AGENT_NOTE_INFO, "%s", said);
    if (ret == -QR_EXIT_SPOOL)
        agent_fatal(ag, QR_EXIT_SPOOL);
    return ret;
}

int agent_submit(agent_sess_t *s, const char *lease, int64_t task_id, const json_t *value,
                 int64_t active_ms)
{
    return agent_submit_id(s, lease, task_id, value, active_ms, NULL);
}

/*
 * The longest pause between two tries of sending a result. A result only
 * counts while its lease lives (a lease_ttl_ms after the last heartbeat), so
 * the full backoff of up to RETRY_MAX_MS could sleep through the short window
 * between two outages and let the lease expire with the label in the spool.
 * An eighth of the TTL gives several tries inside any window of an eighth of
 * the TTL or longer: 1.9 s for a 15 s lease, 7.5 s for the default minute.
 * 0 (no cap) when the project's TTL is unknown.
 */
int64_t agent_result_retry_cap(const agent_t *ag)
{
    if (ag->lease_ttl_ms <= 0)
        return 0; /* the project was not read: the plain backoff */
    int64_t cap = ag->lease_ttl_ms / 8;
    if (cap < 2 * RETRY_BASE_MS)
        cap = 2 * RETRY_BASE_MS;
    return cap < RETRY_MAX_MS ? cap : RETRY_MAX_MS;
}

/* A new record of ag's deployment and user (kind "submit" for a result),
 * for lease (may be NULL). */
static json_t *new_record(const agent_t *ag, const char *kind, const char *lease, int64_t task_id)
{
    json_t *rec = json_pack("{s:s, s:I, s:s, s:I, s:s, s:I, s:I}", "deployment", ag->deployment,
                            "user", (json_int_t)ag->user_id, "url", ag->cfg->url, "project",
                            (json_int_t)ag->project, "kind", kind, "task_id", (json_int_t)task_id,
                            "spooled_at_ms", (json_int_t)qr_now_ms());
    if (!rec || (lease && json_object_set_new(rec, "lease", json_string(lease)) < 0))
        abort(); /* out of memory */
    return rec;
}

/* Appends rec (taken) to the spool and fsyncs it; *id its spool id (0
 * without a spool). Returns 0, or -QR_EXIT_SPOOL after agent_fatal. */
static int spool_record(agent_t *ag, json_t *rec, uint64_t *id)
{
    char *payload = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    int r = 0;
    *id = 0;
    if (!payload)
        abort(); /* out of memory: jansson fails on nothing else here */
    if (ag->spool) {
        char err[sizeof ag->spool->errstr] = "";
        if (pthread_mutex_lock(&ag->lock) != 0)
            abort();
        r = qr_spool_put(ag->spool, payload, strlen(payload), id);
        if (r < 0)
            memcpy(err, ag->spool->errstr, sizeof err);
        pthread_mutex_unlock(&ag->lock);
        if (r < 0) {
            agent_note(ag, AGENT_NOTE_INFO, "%s", err);
            agent_fatal(ag, QR_EXIT_SPOOL);
            r = -QR_EXIT_SPOOL;
        }
    }
    free(payload);
    return r;
}

int agent_spool_result(agent_t *ag, const char *lease, int64_t task_id, const json_t *value,
                       int64_t active_ms, char idem[33], uint64_t *id)
{
    *id = 0;
    if (qr_random_hex(16, idem) < 0) {
        agent_note(ag, AGENT_NOTE_INFO, "no randomness for an idempotency key");
        agent_fatal(ag, QR_EXIT_ERROR);
        return -QR_EXIT_ERROR;
    }
    json_t *rec = new_record(ag, "submit", lease, task_id);
    if (agent_value_set(rec, value) < 0 ||
        json_object_set_new(rec, "idempotency_key", json_string(idem)) < 0 ||
        json_object_set_new(rec, "active_ms", json_integer(active_ms)) < 0)
        abort(); /* out of memory, or a value neither string nor object (the caller's bug) */
    return spool_record(ag, rec, id);
}

int agent_spool_action(agent_t *ag, const char *kind, const char *lease, int64_t task_id,
                       int64_t annotation_id, uint64_t *id)
{
    json_t *rec = new_record(ag, kind, lease, task_id);
    if (annotation_id && json_object_set_new(rec, "annotation_id", json_integer(annotation_id)) < 0)
        abort();
    return spool_record(ag, rec, id);
}

int agent_unspool(agent_t *ag, uint64_t id)
{
    int r = 0;
    char err[sizeof ag->spool->errstr] = "";
    if (!ag->spool || !id)
        return 0;
    if (pthread_mutex_lock(&ag->lock) != 0)
        abort();
    if (qr_spool_ack(ag->spool, id) < 0) {
        memcpy(err, ag->spool->errstr, sizeof err);
        r = -QR_EXIT_SPOOL;
    }
    pthread_mutex_unlock(&ag->lock);
    if (r < 0) {
        agent_note(ag, AGENT_NOTE_INFO, "%s", err);
        agent_fatal(ag, QR_EXIT_SPOOL);
    }
    return r;
}

int agent_submit_id(agent_sess_t *s, const char *lease, int64_t task_id, const json_t *value,
                    int64_t active_ms, int64_t *annotation_id)
{
    char idem[33];
    uint64_t id = 0;
    if (annotation_id)
        *annotation_id = 0;
    int r = agent_spool_result(s->ag, lease, task_id, value, active_ms, idem, &id);
    if (r < 0)
        return r;
    return agent_send_result(s, id, lease, value, idem, active_ms, annotation_id);
}

int agent_send_result(agent_sess_t *s, uint64_t id, const char *lease, const json_t *value,
                      const char *idem, int64_t active_ms, int64_t *annotation_id)
{
    agent_t *ag = s->ag;
    int r;

    if (annotation_id)
        *annotation_id = 0;
    json_t *body = json_object();
    if (!body || agent_value_set(body, value) < 0 ||
        json_object_set_new(body, "idempotency_key", json_string(idem)) < 0 ||
        json_object_set_new(body, "active_ms", json_integer(active_ms)) < 0)
        abort(); /* out of memory, or a value neither string nor object (the caller's bug) */
    char *esc = curl_easy_escape(s->call.easy, lease, 0);
    char *path = qr_xasprintf(QR_API_LEASE_SUBMIT("%lld", "%s"), ag->project, esc ? esc : "");
    curl_free(esc);
    json_t *answer = NULL;
    s->retry_cap_ms = agent_result_retry_cap(ag);
    r = agent_request(s, "POST", path, body, &answer, 0);
    s->retry_cap_ms = 0;
    json_decref(body);
    free(path);
    if (r == AGENT_STOPPED) {
        json_decref(answer);
        return AGENT_STOPPED;
    }
    int replayed = json_is_true(json_object_get(answer, "replayed"));
    json_int_t stored = json_integer_value(json_object_get(answer, "annotation_id"));
    json_decref(answer);
    if (r < 0 && (s->call.status == 401 || s->call.status == 403)) {
        agent_note(ag, AGENT_NOTE_INFO, "%s (the result stays spooled)", s->call.message);
        agent_fatal(ag, QR_EXIT_AUTH);
        return -QR_EXIT_AUTH;
    }
    if (r < 0 && s->call.status == 0) {
        agent_note(ag, AGENT_NOTE_INFO, "%s (the result stays spooled)", s->call.message);
        agent_fatal(ag, agent_exit_code(&s->call));
        return -agent_exit_code(&s->call);
    }
    int o = agent_settle(s, id, s->call.status, replayed, s->call.message);
    if (o == 2) {
        agent_note(ag, AGENT_NOTE_INFO, "submit: %s (the result stays spooled)", s->call.message);
        agent_fatal(ag, QR_EXIT_ERROR);
        return -QR_EXIT_ERROR;
    }
    if (o == 0 && annotation_id)
        *annotation_id = (int64_t)stored;
    return o;
}

int agent_release(agent_sess_t *s, const char *lease, const char *reason, int skip)
{
    agent_t *ag = s->ag;
    char *esc = curl_easy_escape(s->call.easy, lease, 0);
    char *path =
        qr_xasprintf(skip ? QR_API_LEASE_SKIP("%lld", "%s") : QR_API_LEASE_RELEASE("%lld", "%s"),
                     ag->project, esc ? esc : "");
    curl_free(esc);
    char cut[501];
    snprintf(cut, sizeof cut, "%s", reason ? reason : "");
    json_t *body = reason ? json_pack("{s:s}", "reason", cut) : json_object();
    int r = agent_request(s, "POST", path, body, NULL, 0);
    json_decref(body);
    free(path);
    if (r == AGENT_FAILED && s->call.status == 409)
        r = 0;
    if (r == 0) {
        if (pthread_mutex_lock(&ag->lock) != 0)
            abort();
        if (skip)
            ag->skipped++;
        else
            ag->released++;
        pthread_mutex_unlock(&ag->lock);
    }
    return r;
}

int agent_release_spooled(agent_sess_t *s, uint64_t id, const char *lease, const char *reason,
                          int skip)
{
    int r = agent_release(s, lease, reason, skip);
    /* Done, or refused for good (no such project or lease name): it leaves. */
    int gone = r == 0 || (r == AGENT_FAILED && (s->call.status == 404 || s->call.status == 422));
    if (gone && agent_unspool(s->ag, id) < 0)
        return AGENT_FAILED;
    return r;
}

int agent_heartbeat(agent_sess_t *s, const char *lease)
{
    return agent_heartbeat_until(s, lease, NULL);
}

int agent_heartbeat_until(agent_sess_t *s, const char *lease, int64_t *expires_ms)
{
    agent_t *ag = s->ag;
    char *esc = curl_easy_escape(s->call.easy, lease, 0);
    char *path = qr_xasprintf(QR_API_LEASE_HEARTBEAT("%lld", "%s"), ag->project, esc ? esc : "");
    curl_free(esc);
    int r =
        qr_client_call_perform(&s->call, "POST", path, "", 0, "application/json", ag->cfg->token);
    free(path);
    if (r == 0) {
        if (expires_ms) {
            json_error_t jerr;
            json_t *ans =
                json_loadb(s->call.body.data ? s->call.body.data : "", s->call.body.len, 0, &jerr);
            json_t *exp = json_object_get(ans, "expires_at_ms");
            if (json_is_integer(exp))
                *expires_ms = (int64_t)json_integer_value(exp);
            json_decref(ans);
        }
        return 0;
    }
    if (s->call.status == 409)
        return 1;
    return AGENT_FAILED;
}

char *agent_default_spool_path(void)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char *dir;
    if (state && state[0] == '/')
        dir = qr_xasprintf("%s/quorum", state);
    else if (home && home[0])
        dir = qr_xasprintf("%s/.local/state/quorum", home);
    else
        return NULL;
    /* mkdir -p with 0700 for the levels we create. */
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            fprintf(stderr, "quorum-agent: cannot create %s: %s\n", dir, strerror(errno));
            free(dir);
            return NULL;
        }
        *p = c;
        if (!c)
            break;
    }
    char *path = qr_xasprintf("%s/spool", dir);
    free(dir);
    return path;
}
