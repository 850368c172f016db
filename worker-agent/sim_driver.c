/*
 * sim_driver.c - the libcurl multi driver of `quorum-agent simulate`: it
 * starts each annotator's next request on its own easy handle (lease,
 * submit, batch submit, skip, release, user creation), collects finished
 * transfers and hands each answer to the crew model (sim_crew.c), and runs
 * the loop that sleeps in epoll_wait until a connection has news, libcurl's
 * timer is due, or the earliest waiting annotator is. libcurl's multi-socket
 * API tells which sockets to watch (on_curl_socket) and when to call it back
 * (on_curl_timer), so a turn of the loop costs the connections with news,
 * not a scan of every transfer as curl_multi_perform would (issue 18: 10,000
 * agents in one process).
 */
#include "sim_int.h"

#include "protocol.h"
#include "sim_open.h"
#include "sim_values.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A long-polling lease may take wait_ms plus this long (ms). */
#define LEASE_TIMEOUT_SLACK_MS 15000L
/* Backoff after an instant empty lease answer with work still pending (ms). */
#define EMPTY_BACKOFF_MIN_MS 20
#define EMPTY_BACKOFF_MAX_MS 50
/* An empty lease answer faster than this did not long-poll (ms). */
#define INSTANT_ANSWER_MS 5
/* User creation: requests in flight at once, and tries per user. */
#define USER_CONCURRENCY 64
#define USER_ATTEMPTS    8

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

void sim_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int64_t sim_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

annotator_t *sim_msg_annotator(CURLMsg *msg)
{
    char *priv = NULL;
    annotator_t *a = NULL;
    if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) == CURLE_OK && priv)
        a = ((qr_client_call_t *)(void *)priv)->data;
    if (!a)
        fprintf(stderr, "quorum-agent: transfer without its annotator\n");
    return a;
}

/* --- the multi-socket driver ----------------------------------------------------------------- */

/* Events taken from the epoll set per wait. */
#define EPOLL_BATCH 256

/* CURLMOPT_SOCKETFUNCTION: watch fd for what libcurl waits on (or stop). */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    sim_shard_t *h = userp;
    sim_t *s = h->s;
    struct epoll_event ev = {0};
    /* The shard and the socket: epoll hands both back. */
    ev.data.u64 = (uint64_t)(h - s->shards) << 32 | (uint32_t)fd;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl may already have closed it: ENOENT/EBADF are expected. */
        if (socketp && epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT &&
            errno != EBADF)
            fprintf(stderr, "quorum-agent: epoll_ctl(DEL): %s\n", strerror(errno));
        (void)curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
        if (op == EPOLL_CTL_ADD && errno == EEXIST)
            op = EPOLL_CTL_MOD, errno = 0;
        else if (op == EPOLL_CTL_MOD && errno == ENOENT)
            op = EPOLL_CTL_ADD, errno = 0;
        if (errno || epoll_ctl(s->epfd, op, fd, &ev) < 0) {
            fprintf(stderr, "quorum-agent: epoll_ctl: %s\n", strerror(errno));
            return -1; /* libcurl fails the transfer */
        }
    }
    if (!socketp && curl_multi_assign(h->multi, fd, h) != CURLM_OK)
        return -1;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms (-1: no timer). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    sim_shard_t *h = userp;
    h->curl_due_ms = timeout_ms < 0 ? -1 : qr_mono_ms() + timeout_ms;
    return 0;
}

CURLM *sim_multi_new(long max_connects, curl_socket_callback on_socket,
                     curl_multi_timer_callback on_timer, void *data)
{
    CURLM *multi = curl_multi_init();
    if (!multi) {
        fprintf(stderr, "quorum-agent: cannot start libcurl (curl_multi_init failed)\n");
        return NULL;
    }
    CURLMcode mc = curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, max_connects);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, data);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, data);
    if (mc != CURLM_OK) {
        fprintf(stderr, "quorum-agent: libcurl multi-socket set-up: %s\n", curl_multi_strerror(mc));
        curl_multi_cleanup(multi);
        return NULL;
    }
    return multi;
}

int sim_driver_open(sim_t *s, int annotators)
{
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        fprintf(stderr, "quorum-agent: epoll_create1: %s\n", strerror(errno));
        return -1;
    }
    s->nshards = (annotators + SIM_SHARD_AGENTS - 1) / SIM_SHARD_AGENTS;
    s->shards = qr_xcalloc((size_t)s->nshards, sizeof *s->shards);
    for (int i = 0; i < s->nshards; i++) {
        sim_shard_t *h = &s->shards[i];
        h->s = s;
        h->curl_due_ms = -1;
        /* The multi handle owns the connection cache, and by default sizes
         * it by the handles currently added: annotators that are thinking
         * are not, so their connections would be closed. Keep one per
         * annotator and broker. */
        h->multi =
            sim_multi_new((long)SIM_SHARD_AGENTS * s->nurls + 8, on_curl_socket, on_curl_timer, h);
        if (!h->multi)
            return -1;
    }
    return 0;
}

void sim_driver_close(sim_t *s)
{
    for (int i = 0; i < s->nshards; i++)
        if (s->shards[i].multi) {
            CURLMcode mc = curl_multi_cleanup(s->shards[i].multi);
            if (mc != CURLM_OK)
                fprintf(stderr, "quorum-agent: curl_multi_cleanup: %s\n", curl_multi_strerror(mc));
        }
    free(s->shards);
    s->shards = NULL;
    s->nshards = 0;
    /* After the cleanups, which may still tell sockets to go. */
    if (s->epfd >= 0 && close(s->epfd) < 0)
        fprintf(stderr, "quorum-agent: close(epoll): %s\n", strerror(errno));
    s->epfd = -1;
}

/* Waits until the ms tick wait_ms after the current one begins (sooner
 * when libcurl's timer is due) for socket news, and lets libcurl act on
 * each socket that has some and on its timer. The sleep is timed to the µs
 * (epoll_pwait2), not rounded up to whole ms past now: an open-loop intent
 * due at a tick goes out at that tick (sim_open.c). Returns 0 or -1
 * (printed). */
static int drive(sim_t *s, int64_t wait_ms)
{
    struct epoll_event ev[EPOLL_BATCH];
    int64_t now_us = sim_mono_us(), now = now_us / 1000;
    for (int i = 0; i < s->nshards; i++) {
        int64_t due = s->shards[i].curl_due_ms;
        if (due >= 0 && due - now < wait_ms)
            wait_ms = due > now ? due - now : 0;
    }
    if (wait_ms < 0)
        wait_ms = 0;
    int64_t left_us = wait_ms > 0 ? (now + wait_ms) * 1000 - now_us : 0;
    struct timespec ts = {(time_t)(left_us / 1000000), (long)(left_us % 1000000) * 1000};
    int n = epoll_pwait2(s->epfd, ev, EPOLL_BATCH, &ts, NULL);
    if (n < 0 && errno == ENOSYS) /* a kernel before 5.11 */
        n = epoll_wait(s->epfd, ev, EPOLL_BATCH, (int)wait_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0; /* a stop signal: the caller looks */
        fprintf(stderr, "quorum-agent: epoll_wait: %s\n", strerror(errno));
        return -1;
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        sim_shard_t *h = &s->shards[ev[i].data.u64 >> 32];
        curl_socket_t fd = (curl_socket_t)(uint32_t)ev[i].data.u64;
        CURLMcode mc = curl_multi_socket_action(h->multi, fd, flags, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_socket_action: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
    }
    now = qr_mono_ms();
    for (int i = 0; i < s->nshards; i++) {
        sim_shard_t *h = &s->shards[i];
        if (h->curl_due_ms < 0 || now < h->curl_due_ms)
            continue;
        h->curl_due_ms = -1;
        CURLMcode mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_socket_action: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
    }
    return 0;
}

int sim_drive(sim_t *s, int64_t wait_ms)
{
    return drive(s, wait_ms);
}

/* JSON body for a submit of l (single, or one entry of a batch): "label"
 * for a plain project, "labels" for a schema project. */
static json_t *result_json(const held_lease_t *l, int with_lease)
{
    const char *key = l->labels ? "labels" : "label";
    json_t *value = l->labels ? json_incref(l->labels) : json_string(l->label);
    if (with_lease)
        return json_pack("{s:s, s:o, s:s, s:i}", "lease", l->lease, key, value, "idempotency_key",
                         l->idem, "active_ms", l->active_ms);
    return json_pack("{s:o, s:s, s:i}", key, value, "idempotency_key", l->idem, "active_ms",
                     l->active_ms);
}

/* Starts the annotator's next request (op). Returns 0, or -1 if it could
 * not even be built (then the annotator is marked failed). */
static int start_request(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    char *path = NULL, *body = NULL;
    const char *token = a->token;
    long timeout = REQUEST_TIMEOUT_MS;
    int rc = -1;

    if (a->op == OP_USER) {
        json_t *j = json_pack("{s:s, s:s}", "name", a->name, "role", QR_ROLE_NAME_ANNOTATOR);
        path = qr_xstrdup(QR_API_USERS);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        token = s->cfg->token;
    } else if (a->op == OP_LEASE) {
        int64_t wait = s->opt->wait_ms;
        if (s->opt->duration > 0 && wait > s->stop_ms - now)
            wait = s->stop_ms > now ? s->stop_ms - now : 0;
        path = qr_xasprintf(QR_API_LEASES("%lld"), s->opt->project);
        if (wait > 0)
            body = qr_xasprintf("{\"max\":%d,\"wait_ms\":%lld}", s->opt->prefetch, (long long)wait);
        else
            body = qr_xasprintf("{\"max\":%d}", s->opt->prefetch);
        timeout = wait + LEASE_TIMEOUT_SLACK_MS;
    } else if (a->op == OP_BATCH) {
        json_t *results = json_array();
        a->batch = qr_xrealloc(a->batch, (a->nheld ? a->nheld : 1) * sizeof *a->batch);
        a->nbatch = 0;
        for (size_t i = 0; results && i < a->nheld; i++) {
            const held_lease_t *l = &a->held[i];
            if (l->ready && !l->answered) {
                json_array_append_new(results, result_json(l, 1));
                a->batch[a->nbatch++] = i;
            }
        }
        json_t *j = results ? json_pack("{s:o}", "results", results) : NULL;
        path = qr_xasprintf(QR_API_BATCH_SUBMIT("%lld"), s->opt->project);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    } else {
        const held_lease_t *l = &a->held[a->head];
        char *esc = curl_easy_escape(a->call.easy, l->lease, 0);
        json_t *j = a->op == OP_SUBMIT ? result_json(l, 0)
                                       : json_pack("{s:s}", "reason",
                                                   a->op == OP_SKIP ? "simulated: cannot label this"
                                                                    : "simulated: giving it back");
        if (esc)
            path = qr_xasprintf(a->op == OP_SUBMIT ? QR_API_LEASE_SUBMIT("%lld", "%s")
                                : a->op == OP_SKIP ? QR_API_LEASE_SKIP("%lld", "%s")
                                                   : QR_API_LEASE_RELEASE("%lld", "%s"),
                                s->opt->project, esc);
        curl_free(esc);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    if (!path || !body) {
        snprintf(a->call.message, sizeof a->call.message, "cannot build the %s request",
                 sim_op_names[a->op]);
        goto out;
    }
    if (qr_client_call_setup(&a->call, "POST", path, body, strlen(body), "application/json",
                             token) < 0)
        goto out;
    CURLcode cc = curl_easy_setopt(a->call.easy, CURLOPT_TIMEOUT_MS, timeout);
    if (cc != CURLE_OK) {
        snprintf(a->call.message, sizeof a->call.message, "CURLOPT_TIMEOUT_MS: %s",
                 curl_easy_strerror(cc));
        goto out;
    }
    CURLMcode mc = curl_multi_add_handle(sim_multi_of(s, a), a->call.easy);
    if (mc != CURLM_OK) {
        snprintf(a->call.message, sizeof a->call.message, "curl_multi_add_handle: %s",
                 curl_multi_strerror(mc));
        goto out;
    }
    sim_heap_remove(s, a);
    a->state = ST_BUSY;
    a->sent_us = sim_mono_us();
    s->requests[a->op]++;
    rc = 0;
out:
    free(path);
    free(body);
    if (rc < 0)
        sim_fail(a, sim_op_names[a->op]);
    return rc;
}

/* data[truth_field], borrowed, or NULL. The default field, "_true_label"
 * (hidden from annotators: task_view.h), falls back to "true_label", where
 * data made before that convention keeps it. */
static json_t *truth_value(const sim_t *s, json_t *data)
{
    json_t *v = json_object_get(data, s->opt->truth_field);
    if (!v && !strcmp(s->opt->truth_field, QR_SIM_TRUTH_FIELD))
        v = json_object_get(data, QR_SIM_TRUTH_FIELD + 1);
    return v;
}

/* Copies data[truth_field] as a string (numbers formatted), or NULL. */
static char *truth_of(const sim_t *s, json_t *data)
{
    json_t *v = truth_value(s, data);
    if (json_is_string(v))
        return qr_xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return qr_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_true(v) || json_is_false(v))
        return qr_xstrdup(json_is_true(v) ? "true" : "false");
    return NULL;
}

/* Handles a finished lease request. */
static void on_lease_done(annotator_t *a, int ok, int64_t now, int64_t took_ms)
{
    sim_t *s = a->sim;
    if (!ok) {
        sim_count_error(s, &a->call);
        if (a->call.status == 409 && (!strcmp(a->call.code, QR_CODE_PROJECT_PAUSED) ||
                                      !strcmp(a->call.code, QR_CODE_PROJECT_ARCHIVED))) {
            s->paused = 1;
            s->archived |= !strcmp(a->call.code, QR_CODE_PROJECT_ARCHIVED);
            sim_finish(a, ST_PAUSED); /* it holds nothing: it leases only then */
            if (s->open)
                sim_open_end(s, ST_PAUSED);
        } else if (a->call.status == 403 && !strcmp(a->call.code, QR_CODE_ANNOTATOR_PAUSED)) {
            /* The project's gold gate at work, not a fault: this annotator
             * stops (holding nothing) and the others go on. */
            sim_say(s, "%s: paused by the project: %s", a->name, a->call.message);
            s->benched++;
            sim_finish(a, ST_BENCHED);
        } else if (qr_client_call_retryable(&a->call)) {
            sim_retry_later(a, now);
        } else {
            sim_fail(a, "lease");
        }
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(a->call.body.data, a->call.body.len, 0, &jerr);
    json_t *leases = json_object_get(root, "leases");
    if (!json_is_array(leases)) {
        snprintf(a->call.message, sizeof a->call.message,
                 "lease answer is not {\"leases\": [...]}: %s",
                 root ? "no leases array" : jerr.text);
        json_decref(root);
        sim_count_kind(s, "bad_lease_answer");
        sim_retry_later(a, now); /* a broker mid-upgrade may answer oddly: try again */
        return;
    }
    size_t n = json_array_size(leases);
    if (n == 0) {
        int complete = json_is_true(json_object_get(root, "project_complete"));
        json_decref(root);
        qr_backoff_reset(&a->backoff);
        a->op = OP_LEASE;
        if (complete) {
            sim_finish(a, ST_DONE);
            if (s->open)
                sim_open_end(s, ST_DONE);
        } else if (s->paused) {
            sim_finish(a, ST_PAUSED);
            if (s->open)
                sim_open_end(s, ST_PAUSED);
        } else if (s->stopping)
            sim_finish(a, ST_STOPPED);
        else if (took_ms < INSTANT_ANSWER_MS)
            sim_schedule(a, now + sim_jitter(a, EMPTY_BACKOFF_MIN_MS, EMPTY_BACKOFF_MAX_MS));
        else
            sim_schedule(a, now); /* it long-polled: ask again at once */
        return;
    }
    sim_free_held(a);
    a->held = qr_xcalloc(n, sizeof *a->held);
    size_t i;
    json_t *l;
    json_array_foreach(leases, i, l)
    {
        json_t *name = json_object_get(l, "lease");
        json_t *task = json_object_get(l, "task_id");
        held_lease_t *h = &a->held[a->nheld];
        if (json_is_string(name))
            h->lease = qr_xstrdup(json_string_value(name));
        else if (json_is_integer(name))
            h->lease = qr_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(name));
        else
            continue; /* unusable; it will expire on the broker */
        h->task_id = json_integer_value(task);
        json_t *data = json_object_get(l, "data");
        h->truth = truth_of(s, data);
        if (s->schema) /* the data's truth object (or a choice's string), the rest derived */
            h->truths = qr_sim_truths(s->schema, data, truth_value(s, data), h->task_id);
        sim_plan(a, h, data, now);
        a->nheld++;
    }
    json_decref(root);
    if (s->open)
        sim_open_leased(a, now);
    sim_next_step(a, now);
}

/* A request about held[head] (submit, skip, release) failed: retried, the
 * lease dropped, or the annotator stopped. */
static void on_single_failed(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    held_lease_t *l = &a->held[a->head];
    sim_count_error(s, &a->call);
    if (a->call.status == 409) {
        a->expired++;
    } else if (qr_client_call_retryable(&a->call)) {
        sim_retry_later(a, now); /* same request, same idempotency key */
        return;
    } else if (a->call.status == 401 || a->call.status == 403 || a->call.status == 0) {
        sim_fail(a, sim_op_names[a->op]);
        return;
    } else {
        sim_say(s, "%s: dropping lease %s after %s: %s", a->name, l->lease, sim_op_names[a->op],
                a->call.message);
        a->dropped++;
    }
    sim_unspool(a, l);
    a->head++;
    sim_next_step(a, now);
}

/* Handles a finished single submit, skip or release. */
static void on_single_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    held_lease_t *l = &a->held[a->head];
    if (!ok) {
        on_single_failed(a, now);
        return;
    }
    if (a->op == OP_SUBMIT) {
        json_error_t jerr;
        json_t *root = json_loadb(a->call.body.data, a->call.body.len, 0, &jerr);
        sim_acknowledged(a, l, a->call.status, root, now);
        json_decref(root);
    } else if (a->op == OP_SKIP) {
        a->skipped++;
        s->total_skipped++;
        l->answered = 1;
    } else {
        a->released++;
        s->total_released++;
        l->answered = 1;
    }
    a->head++;
    sim_next_step(a, now);
}

/* Handles a finished batch submit: per result, 201/200 acknowledged, 409 and
 * other 4xx dropped, 5xx (or no entry) kept and sent again with the same key. */
static void on_batch_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    if (!ok) {
        sim_count_error(s, &a->call);
        if (qr_client_call_retryable(&a->call)) {
            sim_retry_later(a, now);
        } else if (a->call.status == 401 || a->call.status == 403 || a->call.status == 0) {
            sim_fail(a, "batch submit");
        } else {
            sim_say(s, "%s: dropping %zu result(s) after a batch submit: %s", a->name, a->nbatch,
                    a->call.message);
            for (size_t k = 0; k < a->nbatch; k++) {
                a->dropped++;
                sim_unspool(a, &a->held[a->batch[k]]);
            }
            sim_next_step(a, now);
        }
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(a->call.body.data, a->call.body.len, 0, &jerr);
    json_t *results = json_object_get(root, "results");
    int again = 0;
    for (size_t k = 0; k < a->nbatch; k++) {
        held_lease_t *l = &a->held[a->batch[k]];
        json_t *r = json_array_get(results, k);
        json_t *st = json_object_get(r, "status");
        long status = json_is_integer(st) ? (long)json_integer_value(st) : 0;
        if (status == 201 || status == 200) {
            sim_acknowledged(a, l, status, r, now);
            continue;
        }
        json_t *error = json_object_get(r, "error");
        const char *code = json_string_value(json_object_get(error, "code"));
        const char *message = json_string_value(json_object_get(error, "message"));
        if (status >= 400 && status < 500 && status != 409) /* a 422 names the field and why */
            sim_say(s, "%s: dropping the result for lease %s: %ld %s", a->name, l->lease, status,
                    message ? message : "");
        char kind[64];
        if (code)
            snprintf(kind, sizeof kind, "%s", code);
        else
            snprintf(kind, sizeof kind, status ? "http_%ld" : "batch_no_status", status);
        sim_count_kind(s, kind);
        if (status == 0 || status >= 500) {
            again = 1; /* sent again with the same idempotency key */
        } else {
            if (status == 409)
                a->expired++;
            else
                a->dropped++;
            sim_unspool(a, l);
        }
    }
    json_decref(root);
    if (again)
        sim_retry_later(a, now);
    else
        sim_next_step(a, now);
}

/* Handles a finished user creation. Returns 0, or -1 when the run cannot
 * go on (message printed). */
static int on_user_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    if (ok) {
        json_error_t jerr;
        json_t *root = json_loadb(a->call.body.data, a->call.body.len, 0, &jerr);
        const char *token = json_string_value(json_object_get(root, "token"));
        if (!token) {
            fprintf(stderr, "quorum-agent: user %s: the broker's answer has no token\n", a->name);
            json_decref(root);
            return -1;
        }
        a->token = qr_xstrdup(token);
        json_decref(root);
        a->state = ST_IDLE;
        return 0;
    }
    if (qr_client_call_retryable(&a->call) && ++a->attempts < USER_ATTEMPTS) {
        sim_count_error(s, &a->call);
        sim_retry_later(a, now);
        return 0;
    }
    fprintf(stderr, "quorum-agent: cannot create user %s: %s\n", a->name, a->call.message);
    return -1;
}

/* Sends of one request on a new connection after its connection died. */
#define FRESH_ATTEMPTS 3

/*
 * A request whose connection closed before any byte of an answer came back
 * (a broker that drains, or closes an idle kept-alive connection just as
 * the request goes out) never reached a handler or got no answer from one:
 * it is sent again at once, on a new connection, and is not a failure.
 * libcurl retries such a request itself, but on the next connection of the
 * multi handle's shared pool, and a draining broker (or the proxy in front
 * of it) closes many of those at once: five dead ones in a row and libcurl
 * gives up. A lease sent twice is safe (one whose answer reached nobody is
 * given back by the broker, or expires); submits carry their idempotency
 * keys. Returns 1 when easy was added again, 0 when the caller goes on.
 */
static int resend_fresh(sim_t *s, annotator_t *a, CURL *easy, CURLcode result)
{
    long status = 0;
    if ((result != CURLE_SEND_ERROR && result != CURLE_RECV_ERROR && result != CURLE_GOT_NOTHING) ||
        a->fresh >= FRESH_ATTEMPTS ||
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 0)
        return 0;
    qr_buf_reset(&a->call.body);
    if (curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK ||
        curl_multi_add_handle(sim_multi_of(s, a), easy) != CURLM_OK)
        return 0;
    a->fresh++;
    a->state = ST_BUSY;
    s->reconnects++;
    return 1;
}

int sim_next_done(sim_t *s, int *shard, annotator_t **a, CURL **easy, CURLcode *result)
{
    for (; *shard < s->nshards; (*shard)++) {
        CURLM *multi = s->shards[*shard].multi;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            *easy = msg->easy_handle;
            *result = msg->data.result;
            if (!(*a = sim_msg_annotator(msg)))
                return -1;
            /* Removing the handle invalidates msg: everything needed was copied. */
            CURLMcode mc = curl_multi_remove_handle(multi, *easy);
            if (mc != CURLM_OK) {
                fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                        curl_multi_strerror(mc));
                return -1;
            }
            return 1;
        }
    }
    return 0;
}

/* Collects finished transfers from the multi handles and hands each to its
 * annotator. Returns 0 or -1. */
static int collect_done(sim_t *s)
{
    annotator_t *a;
    CURL *easy;
    CURLcode result;
    int shard = 0, got;
    while ((got = sim_next_done(s, &shard, &a, &easy, &result)) > 0) {
        if (resend_fresh(s, a, easy, result))
            continue;
        if (a->fresh) {
            a->fresh = 0;
            if (curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 0L) != CURLE_OK)
                return -1; /* cannot fail on an option libcurl knows */
        }
        a->state = ST_WAITING;
        int ok = qr_client_call_finish(&a->call, result) == 0;
        int64_t took_us = sim_mono_us() - a->sent_us;
        int64_t now = qr_mono_ms();
        if (a->call.status != 0) {
            /* A closed loop's --warmup: answers before it are left out of
             * the run's latencies (not of its progress lines). */
            int measured = s->open || now >= s->warm_end_ms;
            if (a->op == OP_LEASE) {
                if (measured)
                    qr_hist_record(&s->lease_hist, (uint64_t)took_us);
                qr_hist_record(&s->lease_second, (uint64_t)took_us);
            } else if ((a->op == OP_SUBMIT || a->op == OP_BATCH) && measured) {
                qr_hist_record(&s->submit_hist, (uint64_t)took_us);
            }
        }
        switch (a->op) {
        case OP_USER:
            if (on_user_done(a, ok, now) < 0)
                return -1;
            break;
        case OP_LEASE:
            on_lease_done(a, ok, now, took_us / 1000);
            break;
        case OP_BATCH:
            on_batch_done(a, ok, now);
            break;
        default:
            on_single_done(a, ok, now);
            break;
        }
    }
    if (got < 0)
        return -1;
    if (s->ack && s->ack_dirty) {
        if (fflush(s->ack) != 0)
            s->ack_failed = 1;
        s->ack_dirty = 0;
    }
    if (s->ack_failed) {
        fprintf(stderr, "quorum-agent: cannot write the ack log %s: %s\n", s->opt->ack_log,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Creates the crew's users, each with its own token, USER_CONCURRENCY at a
 * time over the multi handle (each on its own starting broker). Returns 0
 * or -1 (message printed). */
int sim_create_users(sim_t *s)
{
    int n = s->opt->annotators, next = 0, inflight = 0, created = 0;
    while (created < n) {
        if (stop_requested) {
            fprintf(stderr, "quorum-agent: interrupted while creating users\n");
            return -1;
        }
        int64_t now = qr_mono_ms();
        /* Retries whose backoff is over, then new users, up to the limit. */
        while (inflight < USER_CONCURRENCY && s->nheap > 0 && s->heap[0]->wake_ms <= now) {
            if (start_request(s->heap[0], now) < 0)
                return -1;
            inflight++;
        }
        while (inflight < USER_CONCURRENCY && next < n) {
            annotator_t *a = &s->ann[next++];
            a->op = OP_USER;
            if (start_request(a, now) < 0)
                return -1;
            inflight++;
        }
        if (collect_done(s) < 0)
            return -1;
        created = 0;
        inflight = 0;
        for (int i = 0; i < next; i++) {
            created += s->ann[i].token != NULL;
            inflight += s->ann[i].state == ST_BUSY;
        }
        if (created == n)
            break;
        int wait = 100;
        if (s->nheap > 0 && s->heap[0]->wake_ms - now < wait)
            wait = (int)(s->heap[0]->wake_ms > now ? s->heap[0]->wake_ms - now : 0);
        if (drive(s, wait) < 0)
            return -1;
    }
    return 0;
}

/* Acts for an annotator whose wake time came. */
static void wake(sim_t *s, annotator_t *a, int64_t now)
{
    switch (a->op) {
    case OP_LEASE:
        if (s->paused)
            sim_finish(a, ST_PAUSED);
        else if (s->stopping)
            sim_finish(a, ST_STOPPED);
        else {
            if (s->open)
                sim_open_lease_sending(a, now);
            (void)start_request(a, now);
        }
        break;
    case OP_THINK:
        a->held[a->head].ready = 1;
        a->head++;
        sim_next_step(a, now);
        break;
    default:
        (void)start_request(a, now);
        break;
    }
}

/* The annotation loop: runs until every annotator is done, stopped or
 * failed, the deadline passes, or a stop signal arrives. Returns 0, or -1 on
 * a libcurl multi error or a failed spool or ack-log write. */
int sim_run_loop(sim_t *s)
{
    int n = s->opt->annotators;
    int64_t deadline = s->start_ms + (int64_t)(s->opt->max_seconds * 1000.0);
    int64_t last_ms = s->start_ms, next_report = s->start_ms + 1000;
    long last_total = 0;
    annotator_t **due = qr_xcalloc((size_t)n, sizeof *due);
    int rc = 0;

    sim_open_start(s); /* every annotator leases now, or at its first intent */
    for (;;) {
        int64_t now = qr_mono_ms();

        if (stop_requested) {
            s->interrupted = 1;
            break;
        }
        if (now >= deadline) {
            s->timed_out = 1;
            break;
        }
        if (s->opt->duration > 0 && !s->stopping && now >= s->stop_ms)
            s->stopping = 1;
        /* The open loop's intents due now go to free annotators. */
        int64_t next_intent = s->open ? sim_open_dispatch(s, now) : INT64_MAX;
        /* The annotators due now, earliest first. */
        int ndue = 0;
        while (s->nheap > 0 && s->heap[0]->wake_ms <= now) {
            annotator_t *a = s->heap[0];
            sim_heap_remove(s, a);
            due[ndue++] = a;
        }
        /* Spool the results about to be sent for the first time, then make
         * them durable with one sync before any of them goes out. */
        if (s->spool_open && ndue > 0) {
            for (int i = 0; i < ndue; i++) {
                if (sim_spool_due(s, due[i]) < 0) {
                    rc = -1;
                    goto out;
                }
            }
            if (qr_spool_sync(&s->spool) < 0) {
                fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
                rc = -1;
                goto out;
            }
        }
        if (s->spool_failed) {
            rc = -1;
            goto out;
        }
        for (int i = 0; i < ndue; i++)
            wake(s, due[i], now);
        if (s->live == 0)
            break;

        if (collect_done(s) < 0 || s->spool_failed) {
            rc = -1;
            goto out;
        }
        if (s->live == 0)
            break;

        now = qr_mono_ms();
        if (now >= next_report) {
            sim_print_progress(s, now, &last_total, &last_ms);
            next_report = now + 1000;
        }
        /* Sleep until a transfer has news, an annotator wakes, the next
         * progress line, the end of --duration, or the deadline. */
        int64_t until = next_report < deadline ? next_report : deadline;
        if (s->opt->duration > 0 && !s->stopping && s->stop_ms < until)
            until = s->stop_ms;
        if (s->nheap > 0 && s->heap[0]->wake_ms < until)
            until = s->heap[0]->wake_ms;
        if (next_intent < until)
            until = next_intent;
        int64_t wait = until - now;
        if (wait > 250)
            wait = 250; /* bounds the latency of noticing a stop signal */
        if (drive(s, wait) < 0) {
            rc = -1;
            goto out;
        }
    }
out:
    free(due);
    return rc;
}
