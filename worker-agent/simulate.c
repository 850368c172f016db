/*
 * simulate.c - N virtual annotators over one libcurl multi handle.
 *
 * Each annotator owns one easy handle, reused for every request; its
 * connections stay alive in the multi handle's connection cache (sized to one
 * per annotator and broker) between requests. Each annotator is a small state
 * machine with at most one request in flight:
 *
 *   LEASE --leases--> for each lease, in order, after its think time:
 *                       submit  (one request; or, with --batch, held until
 *                                every lease of the answer is worked through,
 *                                then one batch submit for all of them)
 *                       skip / release (one request, with a reason)
 *                       abandon (no request: the lease expires on the broker)
 *         --empty, not complete--> LEASE again (the request long-polled
 *                                   --wait-ms; an instant empty answer backs
 *                                   off 20-50 ms)
 *         --empty, project_complete--> DONE
 *         --409 project_paused--> PAUSED; every other annotator finishes what
 *                                 it holds and stops at its next lease
 *                                 request (the run exits 8)
 *   any request --5xx/network--> the same request again (same idempotency
 *                                keys) after exponential backoff with jitter;
 *                                a network error also moves the annotator to
 *                                the next broker of --urls
 *
 * Waiting annotators sit in a binary heap keyed by the time they act next
 * (end of think time, backoff), so a loop turn costs O(log n) per annotator
 * that acts, not a scan of the crew. The loop sleeps in curl_multi_poll until
 * a transfer has news or the earliest annotator is due.
 *
 * What an annotator does with a task (label, think time, skip / release /
 * abandon / submit) is hashed from (seed, task id, annotator index): the same
 * seed gives the same decisions whatever the timing. An annotator releases or
 * abandons a given task at most once: if the broker hands it the same task
 * again, it submits it (so a small crew always finishes).
 *
 * Unless --no-spool, every result is appended to a spool before its first
 * send; the results that go out in one loop turn share one fdatasync (a group
 * commit), and an answered result is acknowledged in the spool. With
 * --ack-log, every acknowledged submit (201, or 200 replayed) is appended to
 * that file as "task_id<TAB>annotator<TAB>annotation_id<TAB>lease" and the
 * file is flushed before the next request goes out.
 *
 * Latencies (request sent to response received, responses only) go to
 * log-bucket histograms (agent_hist.h): lease requests, and submits (single
 * or batch).
 */
#include "simulate.h"

#include "agent_backoff.h"
#include "agent_hist.h"
#include "cli.h"
#include "protocol.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Each request but a long-polling lease may take this long before it is retried (ms). */
#define REQUEST_TIMEOUT_MS 30000L
/* A long-polling lease may take wait_ms plus this long (ms). */
#define LEASE_TIMEOUT_SLACK_MS 15000L
/* Backoff after an instant empty lease answer with work still pending (ms). */
#define EMPTY_BACKOFF_MIN_MS 20
#define EMPTY_BACKOFF_MAX_MS 50
/* An empty lease answer faster than this did not long-poll (ms). */
#define INSTANT_ANSWER_MS 5
/* Exponential backoff for retried requests: base doubling up to a cap (ms). */
#define RETRY_BASE_MS 50
#define RETRY_MAX_MS  2000
/* Distinct error kinds tracked by name; the rest are counted as "other". */
#define MAX_ERROR_KINDS 32
/* User creation: requests in flight at once, and tries per user. */
#define USER_CONCURRENCY 64
#define USER_ATTEMPTS    8

typedef enum { ACT_SUBMIT, ACT_SKIP, ACT_RELEASE, ACT_ABANDON } action_t;

typedef struct held_lease_s {
    char *lease;       /* lease name (its fencing token), as the broker sent it */
    int64_t task_id;   /* the task leased */
    char *truth;       /* data[truth_field] as a string, or NULL if absent */
    action_t action;   /* what the annotator does with it */
    const char *label; /* label chosen (borrowed from sim) */
    int active_ms;     /* think time */
    char idem[33];     /* idempotency key of the result: 16 random bytes */
    uint64_t spool_id; /* spool record of the result, 0 if not spooled (yet) */
    int ready;         /* batch: thought about; its result waits to be sent */
    int answered;      /* nothing more to do: acknowledged, dropped, skipped, ... */
} held_lease_t;

typedef enum {
    OP_LEASE,
    OP_THINK,
    OP_SUBMIT,
    OP_SKIP,
    OP_RELEASE,
    OP_BATCH,
    OP_USER,
    OP_COUNT
} op_t;

static const char *const op_names[OP_COUNT] = {"lease",   "think",        "submit",     "skip",
                                               "release", "batch_submit", "create_user"};

typedef enum {
    ST_IDLE,    /* not started */
    ST_WAITING, /* next step at wake_ms (in the heap) */
    ST_BUSY,    /* a request is in flight */
    ST_DONE,    /* saw project_complete */
    ST_STOPPED, /* --duration over: stopped leasing with nothing left to send */
    ST_PAUSED,  /* the project was paused: stopped leasing with nothing left to send */
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
    op_t op;              /* what the next (or in-flight) request does */
    int64_t wake_ms;      /* monotonic ms when a WAITING annotator acts */
    int heap_pos;         /* position in the sim's heap, -1 when not in it */
    int64_t sent_us;      /* monotonic µs the in-flight request went out */
    int url;              /* index of the broker it talks to (sim->cfgs) */
    double accuracy;      /* its probability of the true label */
    qr_backoff_t backoff; /* for retried requests */
    held_lease_t *held;   /* leases received, worked through in order */
    size_t nheld;         /* leases in held[] */
    size_t head;          /* the one being worked on */
    size_t *batch;        /* held[] indexes of the results in the in-flight batch */
    size_t nbatch;
    int64_t *given_up; /* tasks it released or abandoned once (it submits them next time) */
    size_t ngiven, given_cap;
    uint64_t rng;       /* for backoff jitter only */
    int attempts;       /* tries of the current user creation */
    long submitted;     /* annotations stored (201, or 200 replayed) */
    long matched_truth; /* of those, how many had the true label */
    long with_truth;    /* of those, how many tasks had a known truth */
    long replayed;      /* submits answered 200 replayed */
    long expired;       /* leases dropped after 409 lease_expired */
    long dropped;       /* leases dropped after another error */
    long retries;       /* requests retried after 5xx/network errors */
    long skipped;       /* leases skipped */
    long released;      /* leases released */
    long abandoned;     /* leases abandoned */
    long failovers;     /* moves to the next broker after a network error */
} annotator_t;

typedef struct error_kind_s {
    char name[64];
    long count;
} error_kind_t;

typedef struct sim_s {
    const qr_sim_options_t *opt;
    const qr_client_config_t *cfg;
    qr_client_config_t *cfgs; /* one per broker: cfg with another url (shallow copies) */
    int nurls;
    CURLM *multi;
    char run_id[9]; /* 4 random bytes in hex: makes user names unique */
    char **labels;  /* the project's label choices */
    size_t nlabels;
    annotator_t *ann;     /* opt->annotators of them */
    annotator_t **heap;   /* waiting annotators, earliest wake_ms first */
    int nheap;            /* entries in heap */
    int live;             /* annotators not yet DONE, STOPPED or FAILED */
    int64_t start_ms;     /* monotonic start of the annotation loop */
    double setup_seconds; /* user creation and connection set-up before it */
    int64_t stop_ms;      /* --duration: no lease requested from then on */
    int stopping;         /* stop_ms passed */
    long total_submitted; /* sum over annotators */
    long total_skipped, total_released, total_abandoned;
    int64_t last_submit_ms;                   /* monotonic time of the last stored annotation */
    long requests[OP_COUNT];                  /* requests sent, by kind */
    qr_hist_t lease_hist;                     /* lease request latency (µs), whole run */
    qr_hist_t submit_hist;                    /* submit / batch submit latency (µs), whole run */
    qr_hist_t lease_second;                   /* lease latency since the last progress line */
    error_kind_t errors[MAX_ERROR_KINDS + 1]; /* the last one is "other" */
    size_t nerrors;
    int noisy;        /* failure messages printed so far (capped) */
    qr_spool_t spool; /* results not yet answered (when opt->use_spool) */
    int spool_open;   /* spool is open */
    int spool_failed; /* a spool write failed: the run stops */
    FILE *ack;        /* --ack-log, or NULL */
    int ack_dirty;    /* lines written since the last flush */
    int ack_failed;   /* an ack-log write failed: the run stops */
    int timed_out;
    int interrupted;
    int paused; /* a lease request answered 409 project_paused */
} sim_t;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

/* --- the heap of waiting annotators --------------------------------------- */

static int earlier(const annotator_t *x, const annotator_t *y)
{
    return x->wake_ms < y->wake_ms || (x->wake_ms == y->wake_ms && x->index < y->index);
}

static void heap_set(sim_t *s, int i, annotator_t *a)
{
    s->heap[i] = a;
    a->heap_pos = i;
}

static void heap_up(sim_t *s, int i)
{
    annotator_t *a = s->heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!earlier(a, s->heap[p]))
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, a);
}

static void heap_down(sim_t *s, int i)
{
    annotator_t *a = s->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && earlier(s->heap[c + 1], s->heap[c]))
            c++;
        if (!earlier(s->heap[c], a))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, a);
}

static void heap_remove(sim_t *s, annotator_t *a)
{
    int i = a->heap_pos;
    if (i < 0)
        return;
    a->heap_pos = -1;
    s->nheap--;
    if (i == s->nheap)
        return;
    annotator_t *m = s->heap[s->nheap];
    heap_set(s, i, m);
    heap_up(s, i);
    heap_down(s, m->heap_pos);
}

/* Makes a WAITING annotator act at when_ms. */
static void schedule(annotator_t *a, int64_t when_ms)
{
    sim_t *s = a->sim;
    a->state = ST_WAITING;
    a->wake_ms = when_ms;
    if (a->heap_pos < 0) {
        heap_set(s, s->nheap++, a);
        heap_up(s, a->heap_pos);
    } else {
        heap_up(s, a->heap_pos);
        heap_down(s, a->heap_pos);
    }
}

/* Counts one failure under its kind. */
static void count_kind(sim_t *s, const char *kind)
{
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

/* Counts one failed call under its kind: the API's error code, "http_<status>"
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
    count_kind(s, kind);
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

static void free_held(annotator_t *a)
{
    for (size_t i = 0; i < a->nheld; i++) {
        free(a->held[i].lease);
        free(a->held[i].truth);
    }
    free(a->held);
    a->held = NULL;
    a->nheld = a->head = 0;
    a->nbatch = 0;
}

/* Ends the annotator's run in state st (DONE, STOPPED or FAILED). */
static void finish(annotator_t *a, state_t st)
{
    sim_t *s = a->sim;
    heap_remove(s, a);
    if (a->state != ST_DONE && a->state != ST_STOPPED && a->state != ST_PAUSED &&
        a->state != ST_FAILED)
        s->live--;
    a->state = st;
    free_held(a);
}

static void fail_annotator(annotator_t *a, const char *what)
{
    say(a->sim, "%s: %s failed, stopping it: %s", a->name, what, a->call.message);
    finish(a, ST_FAILED);
}

/* The label a gives the task: the truth with probability a->accuracy, else
 * a different label chosen uniformly. Without a usable truth, any label
 * uniformly. */
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
    if (s->nlabels == 1 || unit(h1) < a->accuracy)
        return s->labels[truth];
    size_t k = (size_t)(h2 % (s->nlabels - 1));
    return s->labels[k >= truth ? k + 1 : k];
}

static int gave_up(const annotator_t *a, int64_t task_id)
{
    for (size_t i = 0; i < a->ngiven; i++)
        if (a->given_up[i] == task_id)
            return 1;
    return 0;
}

static void give_up(annotator_t *a, int64_t task_id)
{
    if (a->ngiven == a->given_cap) {
        a->given_cap = a->given_cap ? 2 * a->given_cap : 8;
        a->given_up = qr_xrealloc(a->given_up, a->given_cap * sizeof *a->given_up);
    }
    a->given_up[a->ngiven++] = task_id;
}

/* Decides what a does with lease l: its action, label, think time and
 * idempotency key. */
static void plan(annotator_t *a, held_lease_t *l, int64_t now)
{
    const sim_t *s = a->sim;
    const qr_sim_options_t *o = s->opt;
    double r = unit(decide(s, l->task_id, a->index, 4));
    int again = gave_up(a, l->task_id);

    l->action = ACT_SUBMIT;
    if (r < o->skip_rate)
        l->action = ACT_SKIP;
    else if (r < o->skip_rate + o->release_rate && !again)
        l->action = ACT_RELEASE;
    else if (r < o->skip_rate + o->release_rate + o->abandon_rate && !again)
        l->action = ACT_ABANDON;
    if (l->action == ACT_RELEASE || l->action == ACT_ABANDON)
        give_up(a, l->task_id);

    int span = o->think_max_ms - o->think_min_ms;
    l->label = choose_label(s, a, l);
    l->active_ms =
        o->think_min_ms + (int)(decide(s, l->task_id, a->index, 3) % (uint64_t)(span + 1));
    if (qr_random_hex(16, l->idem) < 0) {
        /* The CSPRNG failing is not expected; a unique-enough fallback keeps
         * the idempotency contract within this run. */
        snprintf(l->idem, sizeof l->idem, "%s%08x%012llx", s->run_id, (unsigned)a->index,
                 (unsigned long long)(l->task_id * 1000003 + now));
    }
}

/* Works through the held leases from head: abandons need no request; the
 * next one to think about sets the wake time. When none is left, sends the
 * batch of held results (--batch), or leases again. */
static void next_step(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    qr_backoff_reset(&a->backoff);
    while (a->head < a->nheld) {
        held_lease_t *l = &a->held[a->head];
        if (l->action == ACT_ABANDON) {
            a->abandoned++;
            s->total_abandoned++;
            l->answered = 1;
            a->head++;
            continue;
        }
        if (l->action == ACT_SKIP)
            a->op = OP_SKIP;
        else if (l->action == ACT_RELEASE)
            a->op = OP_RELEASE;
        else
            a->op = s->opt->batch ? OP_THINK : OP_SUBMIT;
        schedule(a, now + l->active_ms);
        return;
    }
    for (size_t i = 0; i < a->nheld; i++) {
        if (a->held[i].ready && !a->held[i].answered) {
            a->op = OP_BATCH;
            schedule(a, now);
            return;
        }
    }
    free_held(a);
    a->op = OP_LEASE;
    schedule(a, now);
}

/* Schedules the same request again after a backoff; after a network error
 * with several brokers, against the next one. */
static void retry_later(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    if (a->call.status == 0 && s->nurls > 1) {
        a->url = (a->url + 1) % s->nurls;
        a->call.cfg = &s->cfgs[a->url];
        a->failovers++;
    }
    a->retries++;
    schedule(a, now + qr_backoff_next(&a->backoff));
}

/* The result of l is answered: it leaves the spool. */
static void unspool(annotator_t *a, held_lease_t *l)
{
    sim_t *s = a->sim;
    if (l->spool_id && s->spool_open && qr_spool_ack(&s->spool, l->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
        s->spool_failed = 1;
    }
    l->spool_id = 0;
    l->answered = 1;
}

/* A submit of l was acknowledged with status (201 or 200) and answer
 * {"annotation_id", "task_id", ...}: counts it and logs it. */
static void acknowledged(annotator_t *a, held_lease_t *l, long status, json_t *answer, int64_t now)
{
    sim_t *s = a->sim;
    a->submitted++;
    s->total_submitted++;
    s->last_submit_ms = now;
    if (status == 200)
        a->replayed++;
    if (l->truth) {
        a->with_truth++;
        if (strcmp(l->truth, l->label) == 0)
            a->matched_truth++;
    }
    if (s->ack) {
        json_t *id = json_object_get(answer, "annotation_id");
        json_t *task = json_object_get(answer, "task_id");
        int64_t task_id = json_is_integer(task) ? (int64_t)json_integer_value(task) : l->task_id;
        if (json_is_integer(id)) {
            if (fprintf(s->ack, "%lld\t%s\t%lld\t%s\n", (long long)task_id, a->name,
                        (long long)json_integer_value(id), l->lease) < 0)
                s->ack_failed = 1;
            s->ack_dirty = 1;
        } else {
            say(s, "%s: acknowledgement of lease %s has no annotation_id", a->name, l->lease);
        }
    }
    unspool(a, l);
}

/* Appends the result of l (about to be sent for the first time) to the
 * spool (not yet synced). Returns 0 or -1 (spool_failed set, message printed). */
static int spool_result(sim_t *s, annotator_t *a, held_lease_t *l)
{
    json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:i, s:I}", "url",
                            a->call.cfg->url, "run", s->run_id, "annotator", a->name, "project",
                            (json_int_t)s->opt->project, "lease", l->lease, "task_id",
                            (json_int_t)l->task_id, "label", l->label, "idempotency_key", l->idem,
                            "active_ms", l->active_ms, "spooled_at_ms", (json_int_t)qr_now_ms());
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text || qr_spool_append(&s->spool, text, strlen(text), &l->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", text ? s->spool.errstr : "cannot encode a result");
        free(text);
        s->spool_failed = 1;
        return -1;
    }
    free(text);
    return 0;
}

/* Spools the results a is about to send that are not spooled yet. */
static int spool_due(sim_t *s, annotator_t *a)
{
    if (a->op == OP_SUBMIT) {
        held_lease_t *l = &a->held[a->head];
        return l->spool_id ? 0 : spool_result(s, a, l);
    }
    if (a->op == OP_BATCH) {
        for (size_t i = 0; i < a->nheld; i++) {
            held_lease_t *l = &a->held[i];
            if (l->ready && !l->answered && !l->spool_id && spool_result(s, a, l) < 0)
                return -1;
        }
    }
    return 0;
}

/* JSON body for a submit of l (single, or one entry of a batch). */
static json_t *result_json(const held_lease_t *l, int with_lease)
{
    if (with_lease)
        return json_pack("{s:s, s:s, s:s, s:i}", "lease", l->lease, "label", l->label,
                         "idempotency_key", l->idem, "active_ms", l->active_ms);
    return json_pack("{s:s, s:s, s:i}", "label", l->label, "idempotency_key", l->idem, "active_ms",
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
                 op_names[a->op]);
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
    CURLMcode mc = curl_multi_add_handle(s->multi, a->call.easy);
    if (mc != CURLM_OK) {
        snprintf(a->call.message, sizeof a->call.message, "curl_multi_add_handle: %s",
                 curl_multi_strerror(mc));
        goto out;
    }
    heap_remove(s, a);
    a->state = ST_BUSY;
    a->sent_us = mono_us();
    s->requests[a->op]++;
    rc = 0;
out:
    free(path);
    free(body);
    if (rc < 0)
        fail_annotator(a, op_names[a->op]);
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
static void on_lease_done(annotator_t *a, int ok, int64_t now, int64_t took_ms)
{
    sim_t *s = a->sim;
    if (!ok) {
        count_error(s, &a->call);
        if (a->call.status == 409 && !strcmp(a->call.code, QR_CODE_PROJECT_PAUSED)) {
            s->paused = 1;
            finish(a, ST_PAUSED); /* it holds nothing: it leases only then */
        } else if (qr_client_call_retryable(&a->call)) {
            retry_later(a, now);
        } else {
            fail_annotator(a, "lease");
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
        count_kind(s, "bad_lease_answer");
        retry_later(a, now); /* a broker mid-upgrade may answer oddly: try again */
        return;
    }
    size_t n = json_array_size(leases);
    if (n == 0) {
        int complete = json_is_true(json_object_get(root, "project_complete"));
        json_decref(root);
        qr_backoff_reset(&a->backoff);
        a->op = OP_LEASE;
        if (complete)
            finish(a, ST_DONE);
        else if (s->paused)
            finish(a, ST_PAUSED);
        else if (s->stopping)
            finish(a, ST_STOPPED);
        else if (took_ms < INSTANT_ANSWER_MS)
            schedule(a, now + jitter(a, EMPTY_BACKOFF_MIN_MS, EMPTY_BACKOFF_MAX_MS));
        else
            schedule(a, now); /* it long-polled: ask again at once */
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
        plan(a, h, now);
        a->nheld++;
    }
    json_decref(root);
    next_step(a, now);
}

/* A request about held[head] (submit, skip, release) failed: retried, the
 * lease dropped, or the annotator stopped. */
static void on_single_failed(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    held_lease_t *l = &a->held[a->head];
    count_error(s, &a->call);
    if (a->call.status == 409) {
        a->expired++;
    } else if (qr_client_call_retryable(&a->call)) {
        retry_later(a, now); /* same request, same idempotency key */
        return;
    } else if (a->call.status == 401 || a->call.status == 403 || a->call.status == 0) {
        fail_annotator(a, op_names[a->op]);
        return;
    } else {
        say(s, "%s: dropping lease %s after %s: %s", a->name, l->lease, op_names[a->op],
            a->call.message);
        a->dropped++;
    }
    unspool(a, l);
    a->head++;
    next_step(a, now);
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
        acknowledged(a, l, a->call.status, root, now);
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
    next_step(a, now);
}

/* Handles a finished batch submit: per result, 201/200 acknowledged, 409 and
 * other 4xx dropped, 5xx (or no entry) kept and sent again with the same key. */
static void on_batch_done(annotator_t *a, int ok, int64_t now)
{
    sim_t *s = a->sim;
    if (!ok) {
        count_error(s, &a->call);
        if (qr_client_call_retryable(&a->call)) {
            retry_later(a, now);
        } else if (a->call.status == 401 || a->call.status == 403 || a->call.status == 0) {
            fail_annotator(a, "batch submit");
        } else {
            say(s, "%s: dropping %zu result(s) after a batch submit: %s", a->name, a->nbatch,
                a->call.message);
            for (size_t k = 0; k < a->nbatch; k++) {
                a->dropped++;
                unspool(a, &a->held[a->batch[k]]);
            }
            next_step(a, now);
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
            acknowledged(a, l, status, r, now);
            continue;
        }
        const char *code = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
        char kind[64];
        if (code)
            snprintf(kind, sizeof kind, "%s", code);
        else
            snprintf(kind, sizeof kind, status ? "http_%ld" : "batch_no_status", status);
        count_kind(s, kind);
        if (status == 0 || status >= 500) {
            again = 1; /* sent again with the same idempotency key */
        } else {
            if (status == 409)
                a->expired++;
            else
                a->dropped++;
            unspool(a, l);
        }
    }
    json_decref(root);
    if (again)
        retry_later(a, now);
    else
        next_step(a, now);
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
        count_error(s, &a->call);
        retry_later(a, now);
        return 0;
    }
    fprintf(stderr, "quorum-agent: cannot create user %s: %s\n", a->name, a->call.message);
    return -1;
}

/* Collects finished transfers from the multi handle and hands each to its
 * annotator. Returns 0 or -1. */
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
        int64_t took_us = mono_us() - a->sent_us;
        int64_t now = qr_mono_ms();
        if (a->call.status != 0) {
            if (a->op == OP_LEASE) {
                qr_hist_record(&s->lease_hist, (uint64_t)took_us);
                qr_hist_record(&s->lease_second, (uint64_t)took_us);
            } else if (a->op == OP_SUBMIT || a->op == OP_BATCH) {
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
static int create_users(sim_t *s)
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
        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            return -1;
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
        if (running > 0 || wait > 0) {
            mc = curl_multi_poll(s->multi, NULL, 0, wait, NULL);
            if (mc != CURLM_OK) {
                fprintf(stderr, "quorum-agent: curl_multi_poll: %s\n", curl_multi_strerror(mc));
                return -1;
            }
        }
    }
    return 0;
}

/* Milliseconds, with microsecond precision, from a histogram value in µs. */
static double us_to_ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void print_progress(sim_t *s, int64_t now, long *last_total, int64_t *last_ms)
{
    double secs = (double)(now - s->start_ms) / 1000.0;
    double window = (double)(now - *last_ms) / 1000.0;
    fprintf(stderr,
            "[%6.1fs] submitted %ld  %.1f/s now  %.1f/s avg  lease p99 %.2f ms (%llu)  "
            "annotators active %d/%d\n",
            secs, s->total_submitted,
            window > 0 ? (double)(s->total_submitted - *last_total) / window : 0.0,
            secs > 0 ? (double)s->total_submitted / secs : 0.0,
            us_to_ms(qr_hist_quantile(&s->lease_second, 0.99)),
            (unsigned long long)s->lease_second.count, s->live, s->opt->annotators);
    qr_hist_reset(&s->lease_second);
    *last_total = s->total_submitted;
    *last_ms = now;
}

/* Acts for an annotator whose wake time came. */
static void wake(sim_t *s, annotator_t *a, int64_t now)
{
    switch (a->op) {
    case OP_LEASE:
        if (s->paused)
            finish(a, ST_PAUSED);
        else if (s->stopping)
            finish(a, ST_STOPPED);
        else
            (void)start_request(a, now);
        break;
    case OP_THINK:
        a->held[a->head].ready = 1;
        a->head++;
        next_step(a, now);
        break;
    default:
        (void)start_request(a, now);
        break;
    }
}

/* The annotation loop: runs until every annotator is done, stopped or
 * failed, the deadline passes, or a stop signal arrives. Returns 0, or -1 on
 * a libcurl multi error or a failed spool or ack-log write. */
static int run_loop(sim_t *s)
{
    int n = s->opt->annotators;
    int64_t deadline = s->start_ms + (int64_t)(s->opt->max_seconds * 1000.0);
    int64_t last_ms = s->start_ms, next_report = s->start_ms + 1000;
    long last_total = 0;
    annotator_t **due = qr_xcalloc((size_t)n, sizeof *due);
    int rc = 0;

    for (int i = 0; i < n; i++) {
        s->ann[i].op = OP_LEASE;
        schedule(&s->ann[i], s->start_ms);
    }
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
        /* The annotators due now, earliest first. */
        int ndue = 0;
        while (s->nheap > 0 && s->heap[0]->wake_ms <= now) {
            annotator_t *a = s->heap[0];
            heap_remove(s, a);
            due[ndue++] = a;
        }
        /* Spool the results about to be sent for the first time, then make
         * them durable with one sync before any of them goes out. */
        if (s->spool_open && ndue > 0) {
            for (int i = 0; i < ndue; i++) {
                if (spool_due(s, due[i]) < 0) {
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

        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            rc = -1;
            goto out;
        }
        if (collect_done(s) < 0 || s->spool_failed) {
            rc = -1;
            goto out;
        }
        if (s->live == 0)
            break;

        now = qr_mono_ms();
        if (now >= next_report) {
            print_progress(s, now, &last_total, &last_ms);
            next_report = now + 1000;
        }
        /* Sleep until a transfer has news, an annotator wakes, the next
         * progress line, the end of --duration, or the deadline. */
        int64_t until = next_report < deadline ? next_report : deadline;
        if (s->opt->duration > 0 && !s->stopping && s->stop_ms < until)
            until = s->stop_ms;
        if (s->nheap > 0 && s->heap[0]->wake_ms < until)
            until = s->heap[0]->wake_ms;
        int64_t wait = until - now;
        if (wait <= 0)
            continue;
        if (wait > 250)
            wait = 250; /* bounds the latency of noticing a stop signal */
        mc = curl_multi_poll(s->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_poll: %s\n", curl_multi_strerror(mc));
            rc = -1;
            goto out;
        }
    }
out:
    free(due);
    return rc;
}

static const char *state_name(state_t st)
{
    switch (st) {
    case ST_DONE:
        return "done";
    case ST_STOPPED:
        return "stopped";
    case ST_PAUSED:
        return "paused";
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

/* Completions per second from the start of the annotation loop (after the
 * users were created) to the last stored annotation: the crew's throughput,
 * not diluted by the final polls that discover completion. */
static double rate(const sim_t *s)
{
    double span = to_last(s);
    return span > 0 ? (double)s->total_submitted / span : 0.0;
}

/* {"p50", "p99", "p999", "n"} in ms from a histogram in µs. */
static json_t *latency_json(const qr_hist_t *h)
{
    return json_pack("{s:f, s:f, s:f, s:I}", "p50", us_to_ms(qr_hist_quantile(h, 0.50)), "p99",
                     us_to_ms(qr_hist_quantile(h, 0.99)), "p999",
                     us_to_ms(qr_hist_quantile(h, 0.999)), "n", (json_int_t)h->count);
}

static long total_requests(const sim_t *s)
{
    long n = 0;
    for (int i = 0; i < OP_COUNT; i++)
        if (i != OP_USER)
            n += s->requests[i];
    return n;
}

/* Builds the run's summary as JSON (NULL only if jansson runs out of memory). */
static json_t *summary_json(const sim_t *s, double elapsed, int complete)
{
    const qr_sim_options_t *o = s->opt;
    json_t *root = json_object();
    json_t *per = json_array();
    json_t *errors = json_object();
    json_t *requests = json_object();
    json_t *urls = json_array();
    if (!root || !per || !errors || !requests || !urls)
        goto fail;
    for (int i = 0; i < o->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        json_t *row =
            json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
                      "annotator", a->name, "accuracy", a->accuracy, "submitted",
                      (json_int_t)a->submitted, "matched_truth", (json_int_t)a->matched_truth,
                      "with_truth", (json_int_t)a->with_truth, "replayed", (json_int_t)a->replayed,
                      "lease_expired", (json_int_t)a->expired, "dropped", (json_int_t)a->dropped,
                      "retries", (json_int_t)a->retries, "skipped", (json_int_t)a->skipped,
                      "released", (json_int_t)a->released, "abandoned", (json_int_t)a->abandoned,
                      "failovers", (json_int_t)a->failovers, "state", state_name(a->state));
        if (!row || json_array_append_new(per, row) < 0)
            goto fail;
    }
    for (size_t i = 0; i <= MAX_ERROR_KINDS; i++) {
        const error_kind_t *e = &s->errors[i];
        if (e->count && json_object_set_new(errors, e->name, json_integer(e->count)) < 0)
            goto fail;
    }
    for (int i = 0; i < OP_COUNT; i++) {
        if (i != OP_THINK && json_object_set_new(requests, op_names[i],
                                                 json_integer((json_int_t)s->requests[i])) < 0)
            goto fail;
    }
    if (json_object_set_new(requests, "total", json_integer((json_int_t)total_requests(s))) < 0)
        goto fail;
    for (int i = 0; i < s->nurls; i++)
        if (json_array_append_new(urls, json_string(s->cfgs[i].url)) < 0)
            goto fail;
    double span = to_last(s);
    json_t *body = json_pack(
        "{s:I, s:s, s:I, s:i, s:f, s:[f,f], s:i, s:[i,i], s:b, s:i, s:f, s:f, s:f, s:f, s:O, "
        "s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:o, s:o, s:b, s:b, s:b, s:b, s:b}",
        "project", (json_int_t)o->project, "run", s->run_id, "seed", (json_int_t)o->seed,
        "annotators", o->annotators, "accuracy", (o->accuracy + o->accuracy_max) / 2,
        "accuracy_range", o->accuracy, o->accuracy_max, "prefetch", o->prefetch, "think_ms",
        o->think_min_ms, o->think_max_ms, "batch", o->batch, "wait_ms", o->wait_ms, "skip_rate",
        o->skip_rate, "release_rate", o->release_rate, "abandon_rate", o->abandon_rate,
        "duration_seconds", o->duration, "urls", urls, "total_submitted",
        (json_int_t)s->total_submitted, "completions", (json_int_t)s->total_submitted,
        "setup_seconds", s->setup_seconds, "elapsed_seconds", elapsed, "last_annotation_seconds",
        span, "skipped", (json_int_t)s->total_skipped, "released", (json_int_t)s->total_released,
        "abandoned", (json_int_t)s->total_abandoned, "lease_latency_ms",
        latency_json(&s->lease_hist), "submit_latency_ms", latency_json(&s->submit_hist),
        "project_complete", complete, "stopped_by_duration", s->stopping, "timed_out", s->timed_out,
        "interrupted", s->interrupted, "paused", s->paused);
    if (!body || json_object_update(root, body) < 0) {
        json_decref(body);
        goto fail;
    }
    json_decref(body);
    if (json_object_set_new(root, "completions_per_second", json_real(rate(s))) < 0 ||
        json_object_set(root, "requests", requests) < 0 ||
        json_object_set(root, "errors", errors) < 0 ||
        json_object_set(root, "per_annotator", per) < 0)
        goto fail;
    json_decref(requests);
    json_decref(errors);
    json_decref(per);
    json_decref(urls);
    return root;
fail:
    json_decref(root);
    json_decref(per);
    json_decref(errors);
    json_decref(requests);
    json_decref(urls);
    return NULL;
}

static void print_latency(const char *what, const qr_hist_t *h)
{
    printf("%s latency: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms (%llu requests)\n", what,
           us_to_ms(qr_hist_quantile(h, 0.50)), us_to_ms(qr_hist_quantile(h, 0.99)),
           us_to_ms(qr_hist_quantile(h, 0.999)), (unsigned long long)h->count);
}

static void print_summary(const sim_t *s, double elapsed, int complete)
{
    const qr_sim_options_t *o = s->opt;
    int width = 9;
    for (int i = 0; i < o->annotators; i++) {
        int len = (int)strlen(s->ann[i].name);
        if (len > width)
            width = len;
    }
    if (o->accuracy == o->accuracy_max)
        printf("simulate: project %lld, run %s, %d annotators, accuracy %.3f, seed %llu\n",
               o->project, s->run_id, o->annotators, o->accuracy, (unsigned long long)o->seed);
    else
        printf("simulate: project %lld, run %s, %d annotators, accuracy %.3f-%.3f, seed %llu\n",
               o->project, s->run_id, o->annotators, o->accuracy, o->accuracy_max,
               (unsigned long long)o->seed);
    printf("%-*s  %9s  %8s  %8s  %7s  %7s  %7s  %7s  %7s  %7s  %s\n", width, "annotator",
           "submitted", "correct", "replayed", "expired", "dropped", "retries", "skipped",
           "release", "abandon", "state");
    for (int i = 0; i < o->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        char correct[32];
        if (a->with_truth)
            snprintf(correct, sizeof correct, "%.1f%%",
                     100.0 * (double)a->matched_truth / (double)a->with_truth);
        else
            snprintf(correct, sizeof correct, "-");
        printf("%-*s  %9ld  %8s  %8ld  %7ld  %7ld  %7ld  %7ld  %7ld  %7ld  %s\n", width, a->name,
               a->submitted, correct, a->replayed, a->expired, a->dropped, a->retries, a->skipped,
               a->released, a->abandoned, state_name(a->state));
    }
    printf("total %ld annotations; elapsed %.2f s (after %.2f s of set-up), last annotation at "
           "%.2f s: %.1f completions/s\n",
           s->total_submitted, elapsed, s->setup_seconds, to_last(s), rate(s));
    printf("skipped %ld, released %ld, abandoned %ld; %ld requests\n", s->total_skipped,
           s->total_released, s->total_abandoned, total_requests(s));
    print_latency("lease", &s->lease_hist);
    print_latency("submit", &s->submit_hist);
    printf("project complete: %s%s%s%s%s\n", complete ? "yes" : "no",
           s->stopping ? " (--duration over)" : "", s->timed_out ? " (--max-seconds reached)" : "",
           s->interrupted ? " (interrupted)" : "", s->paused ? " (paused)" : "");
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

/* Raises the soft limit on open files to the hard one: each annotator holds
 * a connection per broker. Warns when even that is short. */
static void raise_fd_limit(const sim_t *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)s->opt->annotators * (rlim_t)s->nurls + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        fprintf(stderr,
                "quorum-agent: warning: the open-file limit is %llu, %d annotators on %d "
                "broker(s) may need %llu\n",
                (unsigned long long)rl.rlim_cur, s->opt->annotators, s->nurls,
                (unsigned long long)need);
}
/* Fetches the project's label choices with the admin call. Returns 0 or -1. */
static int load_project(sim_t *s, qr_client_call_t *call)
{
    char *path = qr_xasprintf(QR_API_PROJECT("%lld"), s->opt->project);
    json_t *root;
    int r = qr_cli_call(call, "GET", path, NULL, &root);
    free(path);
    if (r < 0) {
        fprintf(stderr, "quorum-agent: cannot read project %lld: %s\n", s->opt->project,
                call->message);
        return -1;
    }
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

/* One config per broker: shallow copies of cfg (token, CA, client
 * certificate shared) with their own url. */
static void make_configs(sim_t *s)
{
    const qr_sim_options_t *o = s->opt;
    s->nurls = o->nurls > 0 ? o->nurls : 1;
    s->cfgs = qr_xcalloc((size_t)s->nurls, sizeof *s->cfgs);
    for (int i = 0; i < s->nurls; i++) {
        s->cfgs[i] = *s->cfg;
        s->cfgs[i].url = o->nurls > 0 ? o->urls[i] : s->cfg->url;
    }
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
    make_configs(&s);
    raise_fd_limit(&s);
    if (qr_random_hex(4, s.run_id) < 0) {
        fprintf(stderr, "quorum-agent: no randomness for the run id\n");
        free(s.cfgs);
        return 1;
    }
    s.ann = qr_xcalloc((size_t)opt->annotators, sizeof *s.ann);
    s.heap = qr_xcalloc((size_t)opt->annotators, sizeof *s.heap);
    s.live = opt->annotators;
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        a->sim = &s;
        a->index = i + 1;
        a->name = qr_xasprintf("sim-%s-%d", s.run_id, i + 1);
        a->rng = mix64(opt->seed ^ (uint64_t)(i + 1));
        a->heap_pos = -1;
        a->url = i % s.nurls;
        a->accuracy =
            opt->accuracy + (opt->accuracy_max - opt->accuracy) *
                                unit(mix64(opt->seed ^ mix64((uint64_t)(i + 1) << 8 | 5)));
        qr_backoff_init(&a->backoff, RETRY_BASE_MS, RETRY_MAX_MS, a->rng ^ 0x5bd1e995u);
        a->state = ST_IDLE;
    }

    if (qr_client_call_init(&admin, &s.cfgs[0], REQUEST_TIMEOUT_MS) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", admin.message);
        goto out;
    }
    admin_ready = 1;
    if (load_project(&s, &admin) < 0)
        goto out;
    qr_client_call_free(&admin);
    admin_ready = 0;

    if (opt->ack_log) {
        s.ack = fopen(opt->ack_log, "a");
        if (!s.ack) {
            fprintf(stderr, "quorum-agent: cannot open the ack log %s: %s\n", opt->ack_log,
                    strerror(errno));
            goto out;
        }
    }

    s.multi = curl_multi_init();
    if (!s.multi) {
        fprintf(stderr, "quorum-agent: curl_multi_init failed\n");
        goto out;
    }
    /* The multi handle owns the connection cache, and by default sizes it by
     * the handles currently added: annotators that are thinking are not, so
     * their connections would be closed. Keep one per annotator and broker. */
    CURLMcode mc =
        curl_multi_setopt(s.multi, CURLMOPT_MAXCONNECTS, (long)opt->annotators * s.nurls + 8);
    if (mc != CURLM_OK) {
        fprintf(stderr, "quorum-agent: CURLMOPT_MAXCONNECTS: %s\n", curl_multi_strerror(mc));
        goto out;
    }
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        if (qr_client_call_init(&a->call, &s.cfgs[a->url], REQUEST_TIMEOUT_MS) < 0) {
            fprintf(stderr, "quorum-agent: %s\n", a->call.message);
            goto out;
        }
        a->call.data = a;
        a->call_ready = 1;
    }
    install_stop_handlers();
    int64_t setup_start = qr_mono_ms();
    if (create_users(&s) < 0)
        goto out;
    if (opt->use_spool && open_sim_spool(&s, spool_dir, sizeof spool_dir) < 0)
        goto out;
    fprintf(stderr,
            "quorum-agent: run %s: %d annotators on project %lld (%zu labels), %d broker(s); "
            "users created in %.2f s\n",
            s.run_id, opt->annotators, opt->project, s.nlabels, s.nurls,
            (double)(qr_mono_ms() - setup_start) / 1000.0);

    s.start_ms = qr_mono_ms();
    s.setup_seconds = (double)(s.start_ms - setup_start) / 1000.0;
    s.stop_ms = s.start_ms + (int64_t)(opt->duration * 1000.0);
    int loop_rc = run_loop(&s);
    double elapsed = (double)(qr_mono_ms() - s.start_ms) / 1000.0;

    int complete = loop_rc == 0 && !s.timed_out && !s.interrupted;
    int finished = complete;
    for (int i = 0; i < opt->annotators; i++) {
        complete = complete && s.ann[i].state == ST_DONE;
        finished = finished && (s.ann[i].state == ST_DONE || s.ann[i].state == ST_STOPPED);
    }
    print_summary(&s, elapsed, complete);
    rc = complete || (opt->duration > 0 && finished) ? 0 : 1;
    if (rc && s.paused && loop_rc == 0 && !s.timed_out && !s.interrupted) {
        fprintf(stderr,
                "quorum-agent: project %lld is paused; the annotators finished the tasks they "
                "held; run again once a manager resumes it (exit 8)\n",
                opt->project);
        rc = QR_EXIT_PAUSED;
    }
    if (opt->json_summary && write_summary(&s, opt->json_summary, elapsed, complete) < 0)
        rc = 1;
    if (s.timed_out)
        fprintf(stderr, "quorum-agent: --max-seconds %.0f reached before the %s\n",
                opt->max_seconds, opt->duration > 0 ? "crew stopped" : "project completed");

out:
    if (admin_ready)
        qr_client_call_free(&admin);
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        if (a->call_ready) {
            if (a->state == ST_BUSY) {
                CURLMcode rmc = curl_multi_remove_handle(s.multi, a->call.easy);
                if (rmc != CURLM_OK)
                    fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                            curl_multi_strerror(rmc));
            }
            qr_client_call_free(&a->call);
        }
        free_held(a);
        free(a->batch);
        free(a->given_up);
        free(a->name);
        free(a->token);
    }
    if (s.multi) {
        CURLMcode cmc = curl_multi_cleanup(s.multi);
        if (cmc != CURLM_OK)
            fprintf(stderr, "quorum-agent: curl_multi_cleanup: %s\n", curl_multi_strerror(cmc));
    }
    for (size_t i = 0; i < s.nlabels; i++)
        free(s.labels[i]);
    free(s.labels);
    free(s.ann);
    free(s.heap);
    free(s.cfgs);
    if (s.ack && fclose(s.ack) != 0) {
        fprintf(stderr, "quorum-agent: cannot write the ack log %s: %s\n", opt->ack_log,
                strerror(errno));
        rc = 1;
    }
    if (close_sim_spool(&s, spool_dir) < 0)
        rc = 1;
    return rc;
}
