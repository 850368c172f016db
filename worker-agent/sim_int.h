/*
 * sim_int.h - what the files of `quorum-agent simulate` share, and nothing
 * else includes: the crew's types (a run, its annotators, the leases they
 * hold) and the functions one file of the simulation calls in another.
 *   simulate.c    the run: set-up, user creation, the loop, the summary
 *   sim_crew.c    the crew model: decisions, the heap of waiting
 *                 annotators, their state changes, results and the spool
 *   sim_driver.c  the libcurl multi driver: requests out, answers in
 *   sim_report.c  the progress lines and the summary (text and JSON)
 *   sim_open.c    the open loop (--arrival-rate) and log-normal think
 *                 times: its hooks are declared in sim_open.h
 *   sim_idle.c    --idle: connected agents that long-poll and heartbeat
 * The state machine is described at the top of simulate.c.
 */
#ifndef QR_SIM_INT_H
#define QR_SIM_INT_H

#include "agent_backoff.h"
#include "agent_hist.h"
#include "client.h"
#include "simulate.h"
#include "spool.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Each request but a long-polling lease may take this long before it is retried (ms). */
#define REQUEST_TIMEOUT_MS 30000L
/* Distinct error kinds tracked by name; the rest are counted as "other". */
#define MAX_ERROR_KINDS 32

typedef enum { ACT_SUBMIT, ACT_SKIP, ACT_RELEASE, ACT_ABANDON } action_t;

typedef struct held_lease_s {
    char *lease;       /* lease name (its fencing token), as the broker sent it */
    int64_t task_id;   /* the task leased */
    char *truth;       /* data[truth_field] as a string, or NULL if absent */
    json_t *truths;    /* schema projects: the truth of every field (owned), else NULL */
    action_t action;   /* what the annotator does with it */
    const char *label; /* label chosen (borrowed from sim); NULL for a schema project */
    json_t *labels;    /* schema projects: the values given (owned, sim_values.h) */
    int active_ms;     /* think time */
    int64_t submit_ms; /* open loop: monotonic ms its result is intended to be sent (sim_open.h) */
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

typedef enum {
    ST_IDLE,    /* not started */
    ST_WAITING, /* next step at wake_ms (in the heap) */
    ST_BUSY,    /* a request is in flight */
    ST_DONE,    /* saw project_complete */
    ST_STOPPED, /* --duration over: stopped leasing with nothing left to send */
    ST_PAUSED,  /* the project was paused: stopped leasing with nothing left to send */
    ST_BENCHED, /* 403 annotator_paused: the project's gold gate stopped this one */
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
    long matched_truth; /* of those, how many had the true label (schema: field values) */
    long with_truth;    /* of those, how many tasks had a known truth (schema: field values) */
    long replayed;      /* submits answered 200 replayed */
    long expired;       /* leases dropped after 409 lease_expired */
    long dropped;       /* leases dropped after another error */
    long retries;       /* requests retried after 5xx/network errors */
    long skipped;       /* leases skipped */
    long released;      /* leases released */
    long abandoned;     /* leases abandoned */
    long failovers;     /* moves to the next broker after a network error */
    int fresh;          /* sends of the current request on a new connection (resend_fresh) */
} annotator_t;

typedef struct error_kind_s {
    char name[64];
    long count;
} error_kind_t;

/* Annotators per multi handle: libcurl 7.88 walks a multi handle's whole
 * connection cache on every curl_multi_remove_handle, once per answer, so
 * one multi handle for a crew of 1,000 cost that walk of 1,000 connections
 * per request (10-15 % of simulate's CPU in a batched run). Annotator i
 * uses shard (i - 1) / SIM_SHARD_AGENTS. */
#define SIM_SHARD_AGENTS 64

typedef struct sim_shard_s {
    struct sim_s *s;
    CURLM *multi;
    int64_t curl_due_ms; /* when libcurl asked to be called back, -1: not asked */
} sim_shard_t;

typedef struct sim_s {
    const qr_sim_options_t *opt;
    const qr_client_config_t *cfg;
    qr_client_config_t *cfgs; /* one per broker: cfg with another url (shallow copies) */
    int nurls;
    sim_shard_t *shards; /* the multi handles, SIM_SHARD_AGENTS annotators each */
    int nshards;
    int epfd;       /* epoll set of the multi handles' sockets (sim_driver.c), or -1 */
    char run_id[9]; /* 4 random bytes in hex: makes user names unique */
    char **labels;  /* the project's label choices */
    size_t nlabels;
    /* --arrival-rate: the open loop's state (sim_open.c), else NULL */
    struct sim_open_s *open;
    json_t *schema;       /* the project's label schema (owned), NULL: a plain project */
    annotator_t *ann;     /* opt->annotators of them */
    annotator_t **heap;   /* waiting annotators, earliest wake_ms first */
    int nheap;            /* entries in heap */
    int live;             /* annotators not yet DONE, STOPPED or FAILED */
    int failed;           /* annotators FAILED */
    int64_t start_ms;     /* monotonic start of the annotation loop */
    double setup_seconds; /* user creation and connection set-up before it */
    int64_t cpu0_us;      /* this process's CPU time when the loop started, -1: unknown */
    int64_t stop_ms;      /* --duration: no lease requested from then on */
    int64_t warm_end_ms;  /* closed loop: answers from then on are in lease_hist, submit_hist */
    int stopping;         /* stop_ms passed */
    long total_submitted; /* sum over annotators */
    long total_skipped, total_released, total_abandoned;
    long reconnects;         /* requests sent again on a new connection, their first one dead */
    int64_t first_submit_ms; /* monotonic time of the first stored annotation */
    int64_t last_submit_ms;  /* monotonic time of the last stored annotation */
    long requests[OP_COUNT]; /* requests sent, by kind */
    qr_hist_t lease_hist;    /* lease request latency (µs), whole run */
    qr_hist_t submit_hist;   /* submit / batch submit latency (µs), whole run */
    qr_hist_t lease_second;  /* lease latency since the last progress line */
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
    int paused;   /* a lease request answered 409 project_paused (or project_archived) */
    int benched;  /* annotators the gold gate stopped (403 annotator_paused) */
    int archived; /* it was project_archived */
} sim_t;

/* The multi handle annotator a's requests go through. */
static inline CURLM *sim_multi_of(const sim_t *s, const annotator_t *a)
{
    return s->shards[(a->index - 1) / SIM_SHARD_AGENTS].multi;
}

/* What each op_t is called in messages and in the summary's "requests". */
extern const char *const sim_op_names[OP_COUNT];

/* --- sim_crew.c ----------------------------------------------------------------------------- */

/* splitmix64's finaliser; a uniform double in [0, 1) from 53 bits of h; a
 * random ms in [min_ms, max_ms] from the annotator's own generator. */
uint64_t sim_mix64(uint64_t x);
double sim_unit(uint64_t h);
/* This process's CPU time so far (µs, user + system), -1 if unknown. */
int64_t sim_cpu_us(void);
int64_t sim_jitter(annotator_t *a, int64_t min_ms, int64_t max_ms);

/* Takes a out of the heap of waiting annotators (no-op when not in it). */
void sim_heap_remove(sim_t *s, annotator_t *a);
/* Makes a WAITING annotator act at when_ms (monotonic). */
void sim_schedule(annotator_t *a, int64_t when_ms);

/* Counts one failure under its kind; one failed call under the API's
 * error code, "http_<status>", "timeout", "tls" or "network". */
void sim_count_kind(sim_t *s, const char *kind);
void sim_count_error(sim_t *s, const qr_client_call_t *call);
/* Prints a per-annotator failure to stderr, the first few only. */
void sim_say(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forgets the leases a holds. */
void sim_free_held(annotator_t *a);
/* Ends a's run in state st (DONE, STOPPED, PAUSED or FAILED). */
void sim_finish(annotator_t *a, state_t st);
/* Ends a's run as FAILED, saying what failed and why (a->call.message). */
void sim_fail(annotator_t *a, const char *what);
/* Decides what a does with lease l of a task with this data: action, label
 * (or labels), think time, idempotency key. */
void sim_plan(annotator_t *a, held_lease_t *l, json_t *data, int64_t now);
/* Works through the held leases and schedules a's next request. */
void sim_next_step(annotator_t *a, int64_t now);
/* Schedules the same request again after a backoff (the next broker of
 * --urls after a network error). */
void sim_retry_later(annotator_t *a, int64_t now);
/* The result of l is answered: it leaves the spool. */
void sim_unspool(annotator_t *a, held_lease_t *l);
/* A submit of l was acknowledged with status (201, 200) and answer: counts
 * it, logs it to --ack-log, unspools it. */
void sim_acknowledged(annotator_t *a, held_lease_t *l, long status, json_t *answer, int64_t now);
/* Spools (not yet synced) the results a is about to send for the first
 * time. Returns 0, or -1 with s->spool_failed set. */
int sim_spool_due(sim_t *s, annotator_t *a);

/* --- sim_driver.c --------------------------------------------------------------------------- */

/* SIGINT and SIGTERM stop the run at the next loop turn. */
void sim_install_stop_handlers(void);
/* Microseconds on the monotonic clock. */
int64_t sim_mono_us(void);
/* The annotator of a finished transfer (its private pointer is the
 * annotator's call, qr_client_call_init), or NULL after a message. */
annotator_t *sim_msg_annotator(CURLMsg *msg);
/* Creates the crew's users over the multi handle. Returns 0 or -1 (printed). */
int sim_create_users(sim_t *s);

/* Makes the multi handles for a crew of annotators (one per
 * SIM_SHARD_AGENTS) and hooks their sockets and timers to one epoll set, so
 * each turn of the loops handles only the connections with news (the
 * multi-socket API: no scan of every transfer). Returns 0 or -1 (printed);
 * sim_driver_close frees what it made either way. */
int sim_driver_open(sim_t *s, int annotators);
/* A multi handle whose sockets and timer go to on_socket and on_timer
 * (both with data), its connection cache max_connects; NULL (printed) when
 * libcurl refuses. */
CURLM *sim_multi_new(long max_connects, curl_socket_callback on_socket,
                     curl_multi_timer_callback on_timer, void *data);
void sim_driver_close(sim_t *s);
/* The next finished transfer of any multi handle, its easy handle already
 * removed from it: 1 (*a, *easy and *result set), 0 (none left), -1
 * (printed). *shard starts at 0 and carries the walk from call to call. */
int sim_next_done(sim_t *s, int *shard, annotator_t **a, CURL **easy, CURLcode *result);
/* The annotation loop, until every annotator is done or the run must end.
 * Returns 0, or -1 on a libcurl, spool or ack-log failure (printed). */
int sim_run_loop(sim_t *s);

/* --- sim_idle.c ----------------------------------------------------------------------------- */

/* The --idle run, once the users exist: its loop, its summary (text, and
 * JSON to opt->json_summary). Returns the process exit code. */
int sim_idle_run(sim_t *s);

/* --- sim_report.c --------------------------------------------------------------------------- */

/* The progress line on stderr (once a second). */
void sim_print_progress(sim_t *s, int64_t now, long *last_total, int64_t *last_ms);
/* The summary on stdout; as JSON into path (0, or -1 printed). */
void sim_print_summary(const sim_t *s, double elapsed, int complete);
int sim_write_summary(const sim_t *s, const char *path, double elapsed, int complete);

#endif
