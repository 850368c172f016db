/*
 * session.h - what `exec` and `label` share: one annotator's view of one
 * project, blocking requests with retries, and results that go through the
 * spool.
 *
 * An agent_t is shared by every worker thread of a command; each thread has
 * its own agent_sess_t (its own libcurl handle and backoff). The spool is
 * shared under agent_t.lock.
 *
 * Delivery of a result: it is appended to the spool and fsynced, then sent
 * with its idempotency key; network errors and 5xx are retried with
 * exponential backoff and jitter until the broker answers (or the agent is
 * stopped: the result stays spooled and is sent first at the next start).
 * An answer removes it from the spool: 201/200 as delivered, and a refusal
 * that resending cannot change (409 lease_expired, 422, 404) as rejected;
 * rejected results are appended to "<spool>.rejected" (JSON lines, with the
 * reason) so no label disappears unseen. 401/403 stop the agent and keep the
 * result spooled.
 */
#ifndef QR_AGENT_SESSION_H
#define QR_AGENT_SESSION_H

#include "agent_backoff.h"
#include "client.h"
#include "protocol.h"
#include "spool.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

/* Exit codes: QR_EXIT_* of protocol.h (listed in --help). */

/* Return codes of the request helpers besides 0. */
#define AGENT_STOPPED (-1) /* the stop flag was raised while retrying */
#define AGENT_FAILED  (-2) /* the broker answered with an error (see sess->call) */

typedef struct agent_s {
    const qr_client_config_t *cfg; /* borrowed; outlives the agent */
    long long project;             /* project id */
    char **labels;                 /* the project's label choices (owned) */
    size_t nlabels;                /* entries in labels */
    int64_t lease_ttl_ms;          /* the project's lease TTL */
    char who[17];                  /* first 16 hex of SHA-256(token): whose results */
    qr_spool_t *spool;             /* borrowed, shared; NULL: no spool */
    pthread_mutex_t lock;          /* guards spool, the counters and rejected file */
    volatile sig_atomic_t *stop;   /* raised by SIGINT/SIGTERM (borrowed) */
    atomic_int fatal;              /* first fatal exit code, 0 if none */
    long submitted;                /* results the broker stored (201/200) */
    long replayed;                 /* of those, answered as replays */
    long rejected;                 /* results refused for good (see above) */
    long released;                 /* leases given back */
    long skipped;                  /* leases skipped */
} agent_t;

typedef struct agent_sess_s {
    agent_t *ag;           /* shared state */
    qr_client_call_t call; /* this thread's request handle */
    int call_ready;        /* call initialised */
    qr_backoff_t backoff;  /* retry delays of this thread */
    int64_t retry_cap_ms;  /* > 0: no retry delay longer (results, see session.c) */
} agent_sess_t;

/* Initialises ag (not the spool, labels or project: the caller sets them).
 * Returns 0 or -1. */
int agent_init(agent_t *ag, const qr_client_config_t *cfg, volatile sig_atomic_t *stop);
void agent_free(agent_t *ag);

/* Records a fatal exit code (the first one wins) and raises the stop flag. */
void agent_fatal(agent_t *ag, int code);

/* Per thread. Returns 0, or -1 with the message printed. */
int agent_sess_init(agent_sess_t *s, agent_t *ag);
void agent_sess_free(agent_sess_t *s);

/* Prints the one line that says the project is paused, with what the
 * command did about it (what: "the leases held were finished"). */
void agent_say_paused(const agent_t *ag, const char *what);

/* The exit code a failed call deserves (QR_EXIT_*). */
int agent_exit_code(const qr_client_call_t *call);

/*
 * One request with retries: a transport failure or 5xx is retried after the
 * session's backoff (at most s->retry_cap_ms when that is set), for ever,
 * until an answer or the stop flag (checked at
 * least every 100 ms while waiting). body (may be NULL) is sent as JSON; the
 * parsed 2xx answer is stored in *out (caller decrefs) when out is given.
 * abortable: the stop flag also aborts a transfer in flight (long polls).
 * Returns 0, AGENT_STOPPED, or AGENT_FAILED (s->call holds status, code and
 * message).
 */
int agent_request(agent_sess_t *s, const char *method, const char *path, json_t *body, json_t **out,
                  int abortable);

/* GET the project: fills ag->labels and ag->lease_ttl_ms. Returns 0, or an
 * QR_EXIT_* code with the message printed. */
int agent_load_project(agent_sess_t *s);

/*
 * What exec and label do first: send the results spooled for this broker
 * and token (agent_flush_spool; with say_foreign, one line on stderr counts
 * those of another broker or token, which stay), then load the project.
 * Returns 0 to go on, or -1 with the exit code the command ends with in
 * *exit_code (QR_EXIT_OK when stopped with nothing left spooled).
 */
int agent_start(agent_sess_t *s, int say_foreign, int *exit_code);

/*
 * Spools (append + fsync) and delivers one result as described above.
 * Returns 0 when the broker stored it, 1 when it was rejected for good,
 * AGENT_STOPPED (still spooled), or a negative QR_EXIT_* code (fatal:
 * bad token, spool failure) after agent_fatal.
 */
int agent_submit(agent_sess_t *s, const char *lease, int64_t task_id, const char *label,
                 int64_t active_ms);

/* agent_submit that also gives the stored annotation's id (the answer's
 * annotation_id) in *annotation_id when it returns 0; 0 otherwise or when
 * the answer had none. annotation_id may be NULL. */
int agent_submit_id(agent_sess_t *s, const char *lease, int64_t task_id, const char *label,
                    int64_t active_ms, int64_t *annotation_id);

/* Releases (skip = 0) or skips (skip = 1) a lease with a reason (may be
 * NULL). A 409 counts as done: the lease is gone either way. Returns 0,
 * AGENT_STOPPED or AGENT_FAILED. */
int agent_release(agent_sess_t *s, const char *lease, const char *reason, int skip);

/* Heartbeat: 0 while the lease is valid, 1 when it is gone (409), or
 * AGENT_STOPPED / AGENT_FAILED. Not retried: the caller beats again later. */
int agent_heartbeat(agent_sess_t *s, const char *lease);

/* agent_heartbeat that also gives the lease's new expiry (the answer's
 * expires_at_ms, wall-clock ms) in *expires_ms when it returns 0 and the
 * answer has one; *expires_ms is left alone otherwise. */
int agent_heartbeat_until(agent_sess_t *s, const char *lease, int64_t *expires_ms);

/*
 * Sends every spooled result of this broker and token (batch submit, 100 at
 * a time), removing each that is answered. Results of another broker or
 * token stay spooled and are counted in *foreign (may be NULL). Returns 0,
 * AGENT_STOPPED, or a negative QR_EXIT_* code.
 */
int agent_flush_spool(agent_sess_t *s, size_t *foreign);

/* The default spool path ($XDG_STATE_HOME/quorum/spool or
 * ~/.local/state/quorum/spool), heap, or NULL; its directory is created. */
char *agent_default_spool_path(void);

/* Whether label is one of the project's choices. */
int agent_label_known(const agent_t *ag, const char *label);

/* The lease name of a lease object ({"lease": "17"} or 17), heap, or NULL. */
char *agent_lease_name(json_t *lease);

#endif
