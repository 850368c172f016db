/*
 * simulate.c - N virtual annotators over one libcurl multi handle.
 *
 * Each annotator owns one easy handle, reused for every request; its
 * connection stays alive in the multi handle's connection cache (sized to one
 * per annotator) between requests. Each annotator is a small state machine:
 *
 *   LEASE  --leases-->  SUBMIT (after thinking) --201/200/409--> next lease or LEASE
 *     |  empty, not complete: back off 20-50 ms and lease again
 *     |  empty, project_complete: DONE
 *   SUBMIT --5xx/network--> the same submit again, same idempotency key,
 *                           after an exponential backoff (a label is never lost)
 *
 * Only one request per annotator is ever in flight. The loop sleeps in
 * curl_multi_poll until a transfer has news or the earliest annotator timer
 * (think time, backoff) is due; a linear scan finds due annotators, which is
 * cheap next to one HTTPS round trip for the crew sizes we run.
 *
 * Which label an annotator gives a task, and how long it thinks about it, are
 * hashed from (seed, task id, annotator index): the same seed gives the same
 * decisions for the same task and annotator whatever the timing.
 *
 * Unless --no-spool, every result is appended to a spool before its first
 * send; the submits that fall due in one loop turn share one fdatasync (a
 * group commit), and an answered submit is acknowledged in the spool. The
 * spool lives in a private temporary directory unless --spool names a file;
 * the temporary one is removed when the run ends with nothing pending.
 */
#include "simulate.h"

#include "spool.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each request as a whole may take this long before it is retried (ms). */
#define REQUEST_TIMEOUT_MS 30000L
/* Backoff after an empty lease with work still pending (ms). */
#define EMPTY_BACKOFF_MIN_MS 20
#define EMPTY_BACKOFF_MAX_MS 50
/* Exponential backoff for retried requests: base doubling up to a cap (ms). */
#define RETRY_BASE_MS 50
#define RETRY_MAX_MS  2000
/* Distinct error kinds tracked by name; the rest are counted as "other". */
#define MAX_ERROR_KINDS 32

typedef struct held_lease_s {
    char *lease;     /* lease name (its fencing token), as the broker sent it */
    int64_t task_id; /* the task leased */
    char *truth;     /* data[truth_field] as a string, or NULL if absent */
} held_lease_t;

typedef enum { OP_LEASE, OP_SUBMIT } op_t;

typedef enum {
    ST_WAITING, /* next request goes out at wake_ms */
    ST_BUSY,    /* a request is in flight */
    ST_DONE,    /* saw project_complete */
    ST_FAILED   /* a non-retryable error (bad token, no such project) */
} state_t;

struct sim_s;

typedef struct annotator_s {
    struct sim_s *sim;     /* the run this annotator belongs to */
    int index;             /* 1..N */
    char *name;            /* user name, "sim-<run>-<index>" */
    char *token;           /* its own bearer token */
    qr_client_call_t call; /* the reused request/easy handle */
    int call_ready;        /* call was initialised */
    state_t state;
    op_t op;            /* what the next (or in-flight) request does */
    int64_t wake_ms;    /* monotonic ms when a WAITING annotator acts */
    int attempts;       /* consecutive failed tries of the current request */
    held_lease_t *held; /* leases received, worked through in order */
    size_t nheld;       /* leases in held[] */
    size_t head;        /* the one being worked on */
    const char *label;  /* label chosen for held[head] (borrowed from sim) */
    int active_ms;      /* think time for held[head] */
    char idem[33];      /* idempotency key for held[head]: 16 random bytes */
    uint64_t spool_id;  /* spool record of held[head]'s result, 0 if not spooled yet */
    uint64_t rng;       /* for backoff jitter only */
    long submitted;     /* annotations stored (201, or 200 replayed) */
    long matched_truth; /* of those, how many had the true label */
    long with_truth;    /* of those, how many tasks had a known truth */
    long replayed;      /* submits answered 200 replayed */
    long expired;       /* leases dropped after 409 lease_expired */
    long dropped;       /* leases dropped after another error */
    long retries;       /* requests retried after 5xx/network errors */
} annotator_t;

typedef struct error_kind_s {
    char name[64];
    long count;
} error_kind_t;

typedef struct sim_s {
    const qr_sim_options_t *opt;
    const qr_client_config_t *cfg;
    CURLM *multi;
    char run_id[9]; /* 4 random bytes in hex: makes user names unique */
    char **labels;  /* the project's label choices */
    size_t nlabels;
    annotator_t *ann;                         /* opt->annotators of them */
    int64_t start_ms;                         /* monotonic start of the annotation loop */
    long total_submitted;                     /* sum over annotators */
    int64_t last_submit_ms;                   /* monotonic time of the last stored annotation */
    error_kind_t errors[MAX_ERROR_KINDS + 1]; /* the last one is "other" */
    size_t nerrors;
    int noisy;        /* failure messages printed so far (capped) */
    qr_spool_t spool; /* results not yet answered (when opt->use_spool) */
    int spool_open;   /* spool is open */
    int spool_failed; /* a spool write failed: the run stops */
    int timed_out;
    int interrupted;
} sim_t;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* splitmix64 finaliser: a good 64-bit mix for hashing small integers. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A deterministic 64-bit value for (seed, task, annotator, purpose). */
static uint64_t decide(const sim_t *s, int64_t task_id, int index, uint64_t salt)
{
    return mix64(s->opt->seed ^ mix64((uint64_t)task_id) ^ mix64(((uint64_t)index << 8) | salt));
}

/* A uniform double in [0, 1) from 53 bits of h. */
static double unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t jitter(annotator_t *a, int64_t min_ms, int64_t max_ms)
{
    a->rng = mix64(a->rng);
    return min_ms + (int64_t)(a->rng % (uint64_t)(max_ms - min_ms + 1));
}

/* Counts one failure under its kind: the API's error code, "http_<status>"
 * when the body had none, or the transport problem. */
static void count_error(sim_t *s, const qr_client_call_t *call)
{
    char kind[64];
    if (call->code[0])
        snprintf(kind, sizeof kind, "%s", call->code);
    else if (call->status)
        snprintf(kind, sizeof kind, "http_%ld", call->status);
    else if (call->result == CURLE_OPERATION_TIMEDOUT)
        snprintf(kind, sizeof kind, "timeout");
    else if (call->result == CURLE_PEER_FAILED_VERIFICATION ||
             call->result == CURLE_SSL_CONNECT_ERROR || call->result == CURLE_SSL_CACERT_BADFILE)
        snprintf(kind, sizeof kind, "tls");
    else
        snprintf(kind, sizeof kind, "network");

    for (size_t i = 0; i < s->nerrors; i++) {
        if (strcmp(s->errors[i].name, kind) == 0) {
            s->errors[i].count++;
            return;
        }
    }
    if (s->nerrors < MAX_ERROR_KINDS) {
        snprintf(s->errors[s->nerrors].name, sizeof s->errors[0].name, "%s", kind);
        s->errors[s->nerrors++].count = 1;
        return;
    }
    snprintf(s->errors[MAX_ERROR_KINDS].name, sizeof s->errors[0].name, "other");
    s->errors[MAX_ERROR_KINDS].count++;
}

static void free_held(annotator_t *a)
{
    for (size_t i = 0; i < a->nheld; i++) {
        free(a->held[i].lease);
        free(a->held[i].truth);
    }
    free(a->held);
    a->held = NULL;
    a->nheld = a->head = 0;
}

/* The label a (as this annotator) gives the task: the truth with probability
 * accuracy, else a different label chosen uniformly. Without a usable truth,
 * any label uniformly. */
static const char *choose_label(const sim_t *s, const annotator_t *a, const held_lease_t *l)
{
    size_t truth = s->nlabels;
    for (size_t i = 0; l->truth && i < s->nlabels; i++) {
        if (strcmp(s->labels[i], l->truth) == 0) {
            truth = i;
            break;
        }
    }
    uint64_t h1 = decide(s, l->task_id, a->index, 1);
    uint64_t h2 = decide(s, l->task_id, a->index, 2);
    if (truth == s->nlabels)
        return s->labels[h2 % s->nlabels];
    if (s->nlabels == 1 || unit(h1) < s->opt->accuracy)
        return s->labels[truth];
    size_t k = (size_t)(h2 % (s->nlabels - 1));
    return s->labels[k >= truth ? k + 1 : k];
}

/* Moves to the next held lease (choosing its label and think time) or, when
 * none is left, to leasing again right away. */
static void next_step(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    a->attempts = 0;
    a->state = ST_WAITING;
    if (a->head >= a->nheld) {
        free_held(a);
        a->op = OP_LEASE;
        a->wake_ms = now;
        return;
    }
    const held_lease_t *l = &a->held[a->head];
    int span = s->opt->think_max_ms - s->opt->think_min_ms;
    a->label = choose_label(s, a, l);
    a->active_ms =
        s->opt->think_min_ms + (int)(decide(s, l->task_id, a->index, 3) % (uint64_t)(span + 1));
    if (qr_random_hex(16, a->idem) < 0) {
        /* The CSPRNG failing is not expected; a unique-enough fallback keeps
         * the idempotency contract within this run. */
        snprintf(a->idem, sizeof a->idem, "%s%08x%012llx", s->run_id, (unsigned)a->index,
                 (unsigned long long)(a->head + (size_t)now));
    }
    a->op = OP_SUBMIT;
    a->wake_ms = now + a->active_ms;
}

/* Drops the current lease (counted by the caller) and moves on; its result,
 * if spooled, was answered and leaves the spool. */
static void drop_current(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    if (a->spool_id && s->spool_open && qr_spool_ack(&s->spool, a->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
        s->spool_failed = 1;
    }
    a->spool_id = 0;
    a->head++;
    next_step(a, now);
}

/* Schedules a retry of the same request after an exponential backoff. */
static void retry_later(annotator_t *a, int64_t now)
{
    int shift = a->attempts < 6 ? a->attempts : 6;
    int64_t cap = (int64_t)RETRY_BASE_MS << shift;
    if (cap > RETRY_MAX_MS)
        cap = RETRY_MAX_MS;
    a->attempts++;
    a->retries++;
    a->state = ST_WAITING;
    a->wake_ms = now + jitter(a, cap / 2, cap);
}

/* Prints a per-annotator failure to stderr, at most MAX_NOISY of them: with
 * a bad setting every annotator fails the same way. */
#define MAX_NOISY 10
static void say(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sim_t *s, const char *fmt, ...)
{
    va_list ap;
    if (++s->noisy > MAX_NOISY) {
        if (s->noisy == MAX_NOISY + 1)
            fprintf(stderr, "quorum-agent: (further failures are only counted)\n");
        return;
    }
    fprintf(stderr, "quorum-agent: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void fail_annotator(annotator_t *a, const char *what)
{
    say(a->sim, "%s: %s failed, stopping it: %s", a->name, what, a->call.message);
    free_held(a);
    a->state = ST_FAILED;
}

/* Starts the annotator's next request; returns 0, or -1 if the annotator
 * could not even build it (then it is marked failed). */
static int start_request(annotator_t *a)
{
    sim_t *s = a->sim;
    char *path = NULL, *body = NULL;
    int rc = -1;

    if (a->op == OP_LEASE) {
        path = qr_xasprintf("/v1/projects/%lld/leases", s->opt->project);
        body = qr_xasprintf("{\"max\":%d}", s->opt->prefetch);
    } else {
        const held_lease_t *l = &a->held[a->head];
        char *esc = curl_easy_escape(a->call.easy, l->lease, 0);
        json_t *j = json_pack("{s:s, s:s, s:i}", "label", a->label, "idempotency_key", a->idem,
                              "active_ms", a->active_ms);
        if (!esc || !j) {
            snprintf(a->call.message, sizeof a->call.message, "cannot build the submit request");
            curl_free(esc);
            json_decref(j);
            goto out;
        }
        path = qr_xasprintf("/v1/projects/%lld/leases/%s/submit", s->opt->project, esc);
        curl_free(esc);
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!body) {
            snprintf(a->call.message, sizeof a->call.message, "cannot encode the submit request");
            goto out;
        }
    }
    if (qr_client_call_setup(&a->call, "POST", path, body, strlen(body), "application/json",
                             a->token) < 0)
        goto out;
    CURLMcode mc = curl_multi_add_handle(s->multi, a->call.easy);
    if (mc != CURLM_OK) {
        snprintf(a->call.message, sizeof a->call.message, "curl_multi_add_handle: %s",
                 curl_multi_strerror(mc));
        goto out;
    }
    a->state = ST_BUSY;
    rc = 0;
out:
    free(path);
    free(body);
    if (rc < 0)
        fail_annotator(a, a->op == OP_LEASE ? "lease" : "submit");
    return rc;
}

/* Copies data[truth_field] as a string (numbers formatted), or NULL. */
static char *truth_of(const sim_t *s, json_t *data)
{
    json_t *v = json_object_get(data, s->opt->truth_field);
    if (json_is_string(v))
        return qr_xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return qr_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_true(v) || json_is_false(v))
        return qr_xstrdup(json_is_true(v) ? "true" : "false");
    return NULL;
}

/* Handles a finished lease request. */
static void on_lease_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    if (!ok) {
        count_error(s, &a->call);
        if (qr_client_call_retryable(&a->call))
            retry_later(a, now);
        else
            fail_annotator(a, "lease");
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
        count_error(s, &a->call);
        retry_later(a, now); /* a broker mid-upgrade may answer oddly: try again */
        return;
    }
    size_t n = json_array_size(leases);
    if (n == 0) {
        int complete = json_is_true(json_object_get(root, "project_complete"));
        json_decref(root);
        a->attempts = 0;
        a->state = complete ? ST_DONE : ST_WAITING;
        a->op = OP_LEASE;
        a->wake_ms = now + jitter(a, EMPTY_BACKOFF_MIN_MS, EMPTY_BACKOFF_MAX_MS);
        return;
    }
    free_held(a);
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
        h->truth = truth_of(s, json_object_get(l, "data"));
        a->nheld++;
    }
    json_decref(root);
    next_step(a, now);
}

/* Handles a finished submit request. */
static void on_submit_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    const held_lease_t *l = &a->held[a->head];
    if (ok) {
        a->submitted++;
        s->total_submitted++;
        s->last_submit_ms = now;
        if (a->call.status == 200)
            a->replayed++;
        if (l->truth) {
            a->with_truth++;
            if (strcmp(l->truth, a->label) == 0)
                a->matched_truth++;
        }
        drop_current(a, now);
        return;
    }
    count_error(s, &a->call);
    if (a->call.status == 409) {
        a->expired++;
        drop_current(a, now);
    } else if (qr_client_call_retryable(&a->call)) {
        retry_later(a, now); /* same label, same idempotency key */
    } else if (a->call.status == 401 || a->call.status == 403 || a->call.status == 0) {
        fail_annotator(a, "submit");
    } else {
        say(s, "%s: dropping lease %s: %s", a->name, l->lease, a->call.message);
        a->dropped++;
        drop_current(a, now);
    }
}

/* Collects finished transfers from the multi handle. Returns 0 or -1. */
static int collect_done(sim_t *s)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(s->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv) {
            fprintf(stderr, "quorum-agent: transfer without its annotator\n");
            return -1;
        }
        /* qr_client_call_init stores the call as the private pointer. */
        annotator_t *a = ((qr_client_call_t *)(void *)priv)->data;
        if (!a) {
            fprintf(stderr, "quorum-agent: transfer without its annotator\n");
            return -1;
        }
        /* Removing the handle invalidates msg: everything needed was copied. */
        CURLMcode mc = curl_multi_remove_handle(s->multi, easy);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
        a->state = ST_WAITING;
        int ok = qr_client_call_finish(&a->call, result) == 0;
        int64_t now = qr_mono_ms();
        if (a->op == OP_LEASE)
            on_lease_done(a, ok, now);
        else
            on_submit_done(a, ok, now);
    }
    return 0;
}

/* Fetches the project's label choices with the admin call. Returns 0 or -1. */
static int load_project(sim_t *s, qr_client_call_t *call)
{
    char *path = qr_xasprintf("/v1/projects/%lld", s->opt->project);
    int r = qr_client_call_perform(call, "GET", path, NULL, 0, NULL, s->cfg->token);
    free(path);
    if (r < 0) {
        fprintf(stderr, "quorum-agent: cannot read project %lld: %s\n", s->opt->project,
                call->message);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(call->body.data, call->body.len, 0, &jerr);
    json_t *labels = json_object_get(root, "labels");
    size_t n = json_array_size(labels);
    if (!json_is_array(labels) || n == 0) {
        fprintf(stderr, "quorum-agent: project %lld: the broker's answer has no labels\n",
                s->opt->project);
        json_decref(root);
        return -1;
    }
    s->labels = qr_xcalloc(n, sizeof *s->labels);
    for (size_t i = 0; i < n; i++) {
        const char *l = json_string_value(json_array_get(labels, i));
        if (!l) {
            fprintf(stderr, "quorum-agent: project %lld: label %zu is not a string\n",
                    s->opt->project, i);
            json_decref(root);
            return -1;
        }
        s->labels[s->nlabels++] = qr_xstrdup(l);
    }
    json_decref(root);
    return 0;
}

/* Creates the crew's users, each with its own token. Returns 0 or -1. */
static int create_users(sim_t *s, qr_client_call_t *call)
{
    for (int i = 0; i < s->opt->annotators; i++) {
        annotator_t *a = &s->ann[i];
        json_t *body = json_pack("{s:s, s:s}", "name", a->name, "role", "annotator");
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text) {
            fprintf(stderr, "quorum-agent: cannot encode a user request\n");
            return -1;
        }
        int r = qr_client_call_perform(call, "POST", "/v1/users", text, strlen(text),
                                       "application/json", s->cfg->token);
        free(text);
        if (r < 0) {
            fprintf(stderr, "quorum-agent: cannot create user %s: %s\n", a->name, call->message);
            return -1;
        }
        json_error_t jerr;
        json_t *root = json_loadb(call->body.data, call->body.len, 0, &jerr);
        const char *token = json_string_value(json_object_get(root, "token"));
        if (!token) {
            fprintf(stderr, "quorum-agent: user %s: the broker's answer has no token\n", a->name);
            json_decref(root);
            return -1;
        }
        a->token = qr_xstrdup(token);
        json_decref(root);
    }
    return 0;
}

static void print_progress(sim_t *s, int64_t now, long *last_total, int64_t *last_ms)
{
    int active = 0;
    for (int i = 0; i < s->opt->annotators; i++)
        active += s->ann[i].state == ST_WAITING || s->ann[i].state == ST_BUSY;
    double secs = (double)(now - s->start_ms) / 1000.0;
    double window = (double)(now - *last_ms) / 1000.0;
    fprintf(stderr, "[%6.1fs] submitted %ld  %.1f/s now  %.1f/s avg  annotators active %d/%d\n",
            secs, s->total_submitted,
            window > 0 ? (double)(s->total_submitted - *last_total) / window : 0.0,
            secs > 0 ? (double)s->total_submitted / secs : 0.0, active, s->opt->annotators);
    *last_total = s->total_submitted;
    *last_ms = now;
}

/* Appends the result a is about to submit for the first time to the spool
 * (not yet synced). Returns 0 or -1 (spool_failed set, message printed). */
static int spool_result(sim_t *s, annotator_t *a)
{
    const held_lease_t *l = &a->held[a->head];
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:i, s:I}", "url", s->cfg->url, "run",
                  s->run_id, "annotator", a->name, "project", (json_int_t)s->opt->project, "lease",
                  l->lease, "task_id", (json_int_t)l->task_id, "label", a->label, "idempotency_key",
                  a->idem, "active_ms", a->active_ms, "spooled_at_ms", (json_int_t)qr_now_ms());
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text || qr_spool_append(&s->spool, text, strlen(text), &a->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", text ? s->spool.errstr : "cannot encode a result");
        free(text);
        s->spool_failed = 1;
        return -1;
    }
    free(text);
    return 0;
}

/* The annotation loop: runs until every annotator is done or failed, the
 * deadline passes, or a stop signal arrives. Returns 0, or -1 on a libcurl
 * multi error. */
static int run_loop(sim_t *s)
{
    int n = s->opt->annotators;
    int64_t deadline = s->start_ms + (int64_t)(s->opt->max_seconds * 1000.0);
    int64_t last_ms = s->start_ms, next_report = s->start_ms + 1000;
    long last_total = 0;

    for (int i = 0; i < n; i++) {
        s->ann[i].state = ST_WAITING;
        s->ann[i].op = OP_LEASE;
        s->ann[i].wake_ms = s->start_ms;
    }
    for (;;) {
        int64_t now = qr_mono_ms();
        int live = 0;

        if (stop_requested) {
            s->interrupted = 1;
            return 0;
        }
        if (now >= deadline) {
            s->timed_out = 1;
            return 0;
        }
        /* Spool the results about to be sent for the first time, then make
         * them durable with one sync before any of them goes out. */
        if (s->spool_open) {
            for (int i = 0; i < n; i++) {
                annotator_t *a = &s->ann[i];
                if (a->state == ST_WAITING && a->wake_ms <= now && a->op == OP_SUBMIT &&
                    !a->spool_id && spool_result(s, a) < 0)
                    return -1;
            }
            if (qr_spool_sync(&s->spool) < 0) {
                fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
                return -1;
            }
        }
        if (s->spool_failed)
            return -1;
        for (int i = 0; i < n; i++) {
            annotator_t *a = &s->ann[i];
            if (a->state == ST_WAITING && a->wake_ms <= now)
                start_request(a);
            live += a->state == ST_WAITING || a->state == ST_BUSY;
        }
        if (!live)
            return 0;

        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            return -1;
        }
        if (collect_done(s) < 0)
            return -1;

        now = qr_mono_ms();
        if (now >= next_report) {
            print_progress(s, now, &last_total, &last_ms);
            next_report = now + 1000;
        }
        /* Sleep until a transfer has news, an annotator wakes (the handlers
         * above may have made one due already), the next progress line, or
         * the deadline. */
        int64_t until = next_report < deadline ? next_report : deadline;
        for (int i = 0; i < n; i++) {
            if (s->ann[i].state == ST_WAITING && s->ann[i].wake_ms < until)
                until = s->ann[i].wake_ms;
        }
        int64_t wait = until - now;
        if (wait <= 0)
            continue;
        if (wait > 250)
            wait = 250; /* bounds the latency of noticing a stop signal */
        mc = curl_multi_poll(s->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_poll: %s\n", curl_multi_strerror(mc));
            return -1;
        }
    }
}

static const char *state_name(state_t st)
{
    switch (st) {
    case ST_DONE:
        return "done";
    case ST_FAILED:
        return "failed";
    default:
        return "unfinished";
    }
}

/* Seconds from the start to the last stored annotation. */
static double to_last(const sim_t *s)
{
    return s->total_submitted ? (double)(s->last_submit_ms - s->start_ms) / 1000.0 : 0.0;
}

/* Completions per second up to the last stored annotation: the crew's
 * throughput, not diluted by the final polls that discover completion. */
static double rate(const sim_t *s)
{
    double span = to_last(s);
    return span > 0 ? (double)s->total_submitted / span : 0.0;
}

/* Builds the run's summary as JSON (NULL only if jansson runs out of memory). */
static json_t *summary_json(const sim_t *s, double elapsed, int complete)
{
    json_t *root = json_object();
    json_t *per = json_array();
    json_t *errors = json_object();
    if (!root || !per || !errors)
        goto fail;
    for (int i = 0; i < s->opt->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        json_t *row = json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "annotator", a->name, "submitted",
            (json_int_t)a->submitted, "matched_truth", (json_int_t)a->matched_truth, "with_truth",
            (json_int_t)a->with_truth, "replayed", (json_int_t)a->replayed, "lease_expired",
            (json_int_t)a->expired, "dropped", (json_int_t)a->dropped, "retries",
            (json_int_t)a->retries, "state", state_name(a->state));
        if (!row || json_array_append_new(per, row) < 0)
            goto fail;
    }
    for (size_t i = 0; i <= MAX_ERROR_KINDS; i++) {
        const error_kind_t *e = &s->errors[i];
        if (e->count && json_object_set_new(errors, e->name, json_integer(e->count)) < 0)
            goto fail;
    }
    json_t *body = json_pack(
        "{s:I, s:s, s:I, s:i, s:f, s:i, s:[i,i], s:I, s:f, s:f, s:f, s:b, s:b, s:b}", "project",
        (json_int_t)s->opt->project, "run", s->run_id, "seed", (json_int_t)s->opt->seed,
        "annotators", s->opt->annotators, "accuracy", s->opt->accuracy, "prefetch",
        s->opt->prefetch, "think_ms", s->opt->think_min_ms, s->opt->think_max_ms, "total_submitted",
        (json_int_t)s->total_submitted, "elapsed_seconds", elapsed, "last_annotation_seconds",
        to_last(s), "completions_per_second", rate(s), "project_complete", complete, "timed_out",
        s->timed_out, "interrupted", s->interrupted);
    if (!body || json_object_update(root, body) < 0) {
        json_decref(body);
        goto fail;
    }
    json_decref(body);
    if (json_object_set_new(root, "per_annotator", per) < 0) {
        per = NULL;
        goto fail;
    }
    per = NULL;
    if (json_object_set_new(root, "errors", errors) < 0) {
        errors = NULL;
        goto fail;
    }
    return root;
fail:
    json_decref(root);
    json_decref(per);
    json_decref(errors);
    return NULL;
}

static void print_summary(const sim_t *s, double elapsed, int complete)
{
    int width = 9;
    for (int i = 0; i < s->opt->annotators; i++) {
        int len = (int)strlen(s->ann[i].name);
        if (len > width)
            width = len;
    }
    printf("simulate: project %lld, run %s, %d annotators, accuracy %.3f, seed %llu\n",
           s->opt->project, s->run_id, s->opt->annotators, s->opt->accuracy,
           (unsigned long long)s->opt->seed);
    printf("%-*s  %9s  %8s  %8s  %7s  %7s  %7s  %s\n", width, "annotator", "submitted", "correct",
           "replayed", "expired", "dropped", "retries", "state");
    for (int i = 0; i < s->opt->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        char correct[32];
        if (a->with_truth)
            snprintf(correct, sizeof correct, "%.1f%%",
                     100.0 * (double)a->matched_truth / (double)a->with_truth);
        else
            snprintf(correct, sizeof correct, "-");
        printf("%-*s  %9ld  %8s  %8ld  %7ld  %7ld  %7ld  %s\n", width, a->name, a->submitted,
               correct, a->replayed, a->expired, a->dropped, a->retries, state_name(a->state));
    }
    printf("total %ld annotations; elapsed %.2f s, last annotation at %.2f s: %.1f "
           "completions/s\n",
           s->total_submitted, elapsed, to_last(s), rate(s));
    printf("project complete: %s%s%s\n", complete ? "yes" : "no",
           s->timed_out ? " (--max-seconds reached)" : "", s->interrupted ? " (interrupted)" : "");
    printf("errors:");
    int any = 0;
    for (size_t i = 0; i <= MAX_ERROR_KINDS; i++) {
        if (s->errors[i].count) {
            printf(" %s=%ld", s->errors[i].name, s->errors[i].count);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    fflush(stdout);
}

/* Writes the summary as JSON to path. Returns 0 or -1 (message printed). */
static int write_summary(const sim_t *s, const char *path, double elapsed, int complete)
{
    json_t *j = summary_json(s, elapsed, complete);
    if (!j) {
        fprintf(stderr, "quorum-agent: cannot build the JSON summary\n");
        return -1;
    }
    int r = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (r != 0) {
        fprintf(stderr, "quorum-agent: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/*
 * Opens the run's spool: opt->spool_path, or "spool" in a new private
 * directory under $TMPDIR (its path stored in dir). Results of an earlier run
 * found in a given file cannot be resent (their annotators' tokens are gone):
 * they are reported and left for `quorum-agent spool`. Returns 0 or -1.
 */
static int open_sim_spool(sim_t *s, char *dir, size_t dir_size)
{
    char *path;
    if (s->opt->spool_path) {
        path = qr_xstrdup(s->opt->spool_path);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, dir_size, "%s/quorum-sim.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "quorum-agent: cannot create a spool directory %s: %s\n", dir,
                    strerror(errno));
            dir[0] = '\0';
            return -1;
        }
        path = qr_xasprintf("%s/spool", dir);
    }
    int rc = qr_spool_open(&s->spool, path, 0);
    free(path);
    if (rc < 0) {
        fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
        return -1;
    }
    s->spool_open = 1;
    if (s->spool.torn_offset >= 0)
        fprintf(stderr, "quorum-agent: spool %s: torn record at byte %lld (%s), moved to %s\n",
                s->spool.path, (long long)s->spool.torn_offset, s->spool.torn_reason,
                s->spool.torn_copy ? s->spool.torn_copy : "-");
    if (s->spool.npending)
        fprintf(stderr,
                "quorum-agent: spool %s holds %zu result(s) of an earlier run; they stay there "
                "(see `quorum-agent spool --spool %s`)\n",
                s->spool.path, s->spool.npending, s->spool.path);
    return 0;
}

/* Closes the spool; removes the temporary directory when nothing is left
 * pending in it. Returns 0, or -1 when a spool write had failed. */
static int close_sim_spool(sim_t *s, const char *dir)
{
    if (!s->spool_open)
        return 0;
    size_t pending = s->spool.npending;
    char *path = qr_xstrdup(s->spool.path);
    qr_spool_close(&s->spool);
    s->spool_open = 0;
    if (dir[0] && pending == 0) {
        char *lock = qr_xasprintf("%s.lock", path);
        if (unlink(path) < 0 || unlink(lock) < 0 || rmdir(dir) < 0)
            fprintf(stderr, "quorum-agent: cannot remove the spool directory %s: %s\n", dir,
                    strerror(errno));
        free(lock);
    } else if (pending) {
        fprintf(stderr, "quorum-agent: %zu result(s) were not answered and stay in spool %s\n",
                pending, path);
    }
    free(path);
    return s->spool_failed ? -1 : 0;
}

int qr_sim_run(const qr_sim_options_t *opt, const qr_client_config_t *cfg)
{
    sim_t s;
    qr_client_call_t admin;
    int rc = 1, admin_ready = 0;
    char spool_dir[256] = "";

    memset(&s, 0, sizeof s);
    s.opt = opt;
    s.cfg = cfg;
    if (qr_random_hex(4, s.run_id) < 0) {
        fprintf(stderr, "quorum-agent: no randomness for the run id\n");
        return 1;
    }
    s.ann = qr_xcalloc((size_t)opt->annotators, sizeof *s.ann);
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        a->sim = &s;
        a->index = i + 1;
        a->name = qr_xasprintf("sim-%s-%d", s.run_id, i + 1);
        a->rng = mix64(opt->seed ^ (uint64_t)(i + 1));
        a->state = ST_WAITING;
    }

    if (qr_client_call_init(&admin, cfg, REQUEST_TIMEOUT_MS) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", admin.message);
        goto out;
    }
    admin_ready = 1;
    if (load_project(&s, &admin) < 0 || create_users(&s, &admin) < 0)
        goto out;
    qr_client_call_free(&admin);
    admin_ready = 0;

    s.multi = curl_multi_init();
    if (!s.multi) {
        fprintf(stderr, "quorum-agent: curl_multi_init failed\n");
        goto out;
    }
    /* The multi handle owns the connection cache, and by default sizes it by
     * the handles currently added: annotators that are thinking are not, so
     * their connections would be closed. Keep one per annotator. */
    CURLMcode mc = curl_multi_setopt(s.multi, CURLMOPT_MAXCONNECTS, (long)opt->annotators + 4);
    if (mc != CURLM_OK) {
        fprintf(stderr, "quorum-agent: CURLMOPT_MAXCONNECTS: %s\n", curl_multi_strerror(mc));
        goto out;
    }
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        if (qr_client_call_init(&a->call, cfg, REQUEST_TIMEOUT_MS) < 0) {
            fprintf(stderr, "quorum-agent: %s\n", a->call.message);
            goto out;
        }
        a->call.data = a;
        a->call_ready = 1;
    }
    if (opt->use_spool && open_sim_spool(&s, spool_dir, sizeof spool_dir) < 0)
        goto out;
    fprintf(stderr, "quorum-agent: run %s: %d annotators on project %lld (%zu labels)\n", s.run_id,
            opt->annotators, opt->project, s.nlabels);

    install_stop_handlers();
    s.start_ms = qr_mono_ms();
    int loop_rc = run_loop(&s);
    double elapsed = (double)(qr_mono_ms() - s.start_ms) / 1000.0;

    int complete = loop_rc == 0 && !s.timed_out && !s.interrupted;
    for (int i = 0; i < opt->annotators; i++)
        complete = complete && s.ann[i].state == ST_DONE;
    print_summary(&s, elapsed, complete);
    rc = complete ? 0 : 1;
    if (opt->json_summary && write_summary(&s, opt->json_summary, elapsed, complete) < 0)
        rc = 1;
    if (s.timed_out)
        fprintf(stderr, "quorum-agent: --max-seconds %.0f reached before the project completed\n",
                opt->max_seconds);

out:
    if (admin_ready)
        qr_client_call_free(&admin);
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        if (a->call_ready) {
            if (a->state == ST_BUSY) {
                CURLMcode mc = curl_multi_remove_handle(s.multi, a->call.easy);
                if (mc != CURLM_OK)
                    fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                            curl_multi_strerror(mc));
            }
            qr_client_call_free(&a->call);
        }
        free_held(a);
        free(a->name);
        free(a->token);
    }
    if (s.multi) {
        CURLMcode mc = curl_multi_cleanup(s.multi);
        if (mc != CURLM_OK)
            fprintf(stderr, "quorum-agent: curl_multi_cleanup: %s\n", curl_multi_strerror(mc));
    }
    for (size_t i = 0; i < s.nlabels; i++)
        free(s.labels[i]);
    free(s.labels);
    free(s.ann);
    if (close_sim_spool(&s, spool_dir) < 0)
        rc = 1;
    return rc;
}
