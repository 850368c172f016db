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
 *
 * Whose a spooled record is: every record names the deployment (the id the
 * broker reports, GET /v1/whoami) and the user (the token's user id) it was
 * made for, and is sent to any broker of that deployment with any token of
 * that user, never elsewhere. A record of the older format (keyed by broker
 * URL and a hash of the token) counts as this deployment's and user's when
 * its URL and token hash are the ones in use: on that first contact it is
 * re-keyed (rewritten with the deployment and user) before it is sent.
 *
 * Besides results ("kind" absent or "submit"), `label` spools its other
 * actions the same way: "skip" and "release" of a lease, "undo" of an
 * annotation. They leave the spool once the broker has answered them.
 *
 * A result's value (a "value" argument below) is a JSON string, the label
 * of a plain project, sent and spooled as {"label": "..."} as it always
 * was; or an object, a value per field of a project with a label schema
 * (issue 15), sent and spooled as {"labels": {...}}. The broker validates
 * either (a 422 names the field and the reason); the agent does not.
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

/* What agent_note says. */
typedef enum {
    AGENT_NOTE_INFO,        /* a one-line message */
    AGENT_NOTE_UNREACHABLE, /* the broker cannot be reached; retrying */
    AGENT_NOTE_UNAVAILABLE, /* it answers 5xx (a backend of it is down); retrying */
    AGENT_NOTE_REACHABLE,   /* ... and now it can again */
} agent_note_t;

typedef struct agent_s {
    const qr_client_config_t *cfg; /* borrowed; outlives the agent */
    long long project;             /* project id */
    char **labels;                 /* the project's label choices (owned) */
    size_t nlabels;                /* entries in labels */
    json_t *schema;                /* the project's label schema (owned), NULL: a plain project */
    int64_t lease_ttl_ms;          /* the project's lease TTL */
    char who[17];                  /* first 16 hex of SHA-256(token): older records' owner */
    char deployment[64];           /* the broker's deployment id (whoami), "" until known */
    int64_t user_id;               /* the token's user (whoami), 0 until known */
    /* Where messages go while a run is on: NULL prints "quorum-agent: ..."
     * on stderr; label shows them on its screen. Called from any thread,
     * never with lock held. */
    void (*note)(void *arg, agent_note_t kind, const char *msg);
    void *note_arg;
    int abort_all;               /* the stop flag aborts every transfer, not only
                                    long polls (label: everything is spooled first) */
    qr_spool_t *spool;           /* borrowed, shared; NULL: no spool */
    pthread_mutex_t lock;        /* guards spool, the counters and rejected file */
    volatile sig_atomic_t *stop; /* raised by SIGINT/SIGTERM (borrowed) */
    atomic_int fatal;            /* first fatal exit code, 0 if none */
    long submitted;              /* results the broker stored (201/200) */
    long replayed;               /* of those, answered as replays */
    long rejected;               /* results refused for good (see above) */
    long released;               /* leases given back */
    long skipped;                /* leases skipped */
} agent_t;

typedef struct agent_sess_s {
    agent_t *ag;           /* shared state */
    qr_client_call_t call; /* this thread's request handle */
    int call_ready;        /* call initialised */
    qr_backoff_t backoff;  /* retry delays of this thread */
    int64_t retry_cap_ms;  /* > 0: no retry delay longer (results, see session.c) */
    /* A transfer already under way runs to its end when the stop is the
     * agent's own (agent_fatal), not a signal: a lease the broker grants
     * meanwhile then reaches the caller, which gives it back (exec). */
    int finish_on_fatal;
} agent_sess_t;

/* Initialises ag (not the spool, labels or project: the caller sets them).
 * Returns 0 or -1. */
int agent_init(agent_t *ag, const qr_client_config_t *cfg, volatile sig_atomic_t *stop);
void agent_free(agent_t *ag);

/* Says msg (printf format) through ag->note, or on stderr. */
void agent_note(agent_t *ag, agent_note_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a fatal exit code (the first one wins) and raises the stop flag. */
void agent_fatal(agent_t *ag, int code);

/* Per thread. Returns 0, or -1 with the message printed. */
int agent_sess_init(agent_sess_t *s, agent_t *ag);
void agent_sess_free(agent_sess_t *s);

/* Prints the one line that says the project is paused (or archived, once
 * agent_exit_code saw 409 project_archived), with what the command did
 * about it (what: "the leases held were finished"). */
void agent_say_paused(const agent_t *ag, const char *what);

/* The exit code a failed call deserves (QR_EXIT_*). A paused and an
 * archived project both give QR_EXIT_PAUSED: the agent stops leasing and
 * finishes what it holds; agent_project_archived then tells which. */
int agent_exit_code(const qr_client_call_t *call);

/* 1 once a call was answered 409 project_archived (any thread). */
int agent_project_archived(void);

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

/* GET the project: fills ag->labels, ag->schema (when it has one: then the
 * labels may be none) and ag->lease_ttl_ms. Returns 0, or an QR_EXIT_* code
 * with the message printed. */
int agent_load_project(agent_sess_t *s);

/* GET /v1/whoami: fills ag->deployment and ag->user_id (retrying while the
 * broker is unreachable). Returns 0, AGENT_STOPPED, or a negative QR_EXIT_*
 * code with the reason printed. */
int agent_whoami(agent_sess_t *s);

/*
 * What exec and label do first: learn whose results these are (whoami),
 * send the results spooled for this deployment and user (agent_flush_spool
 * of spool_send.h; with say_foreign, agent_say_foreign on stderr for those
 * that stay), then load the project. Returns 0 to go on, or -1 with the
 * exit code the command ends with in *exit_code (QR_EXIT_OK when stopped
 * with nothing left spooled).
 */
int agent_start(agent_sess_t *s, int say_foreign, int *exit_code);

/*
 * Spools (append + fsync) and delivers one result as described above.
 * Returns 0 when the broker stored it, 1 when it was rejected for good,
 * AGENT_STOPPED (still spooled), or a negative QR_EXIT_* code (fatal:
 * bad token, spool failure) after agent_fatal.
 */
int agent_submit(agent_sess_t *s, const char *lease, int64_t task_id, const json_t *value,
                 int64_t active_ms);

/*
 * The two halves of agent_submit, for a caller that must have the result on
 * disk before it goes on (label): agent_spool_result builds the record
 * (a new idempotency key, written to idem), appends it and fsyncs (no
 * spool: nothing written, *id = 0); agent_send_result sends it and settles
 * it as agent_submit does. Each returns what agent_submit would.
 */
int agent_spool_result(agent_t *ag, const char *lease, int64_t task_id, const json_t *value,
                       int64_t active_ms, char idem[33], uint64_t *id);
int agent_send_result(agent_sess_t *s, uint64_t id, const char *lease, const json_t *value,
                      const char *idem, int64_t active_ms, int64_t *annotation_id);

/* Spools (append + fsync) an action of label: kind "skip" or "release" of
 * lease, or "undo" of annotation_id (then lease may be NULL). Returns 0, or
 * -QR_EXIT_SPOOL after agent_fatal. */
int agent_spool_action(agent_t *ag, const char *kind, const char *lease, int64_t task_id,
                       int64_t annotation_id, uint64_t *id);

/* The spooled record id was answered: it leaves the spool (0: nothing).
 * Returns 0, or -QR_EXIT_SPOOL after agent_fatal. */
int agent_unspool(agent_t *ag, uint64_t id);

/* agent_submit that also gives the stored annotation's id (the answer's
 * annotation_id) in *annotation_id when it returns 0; 0 otherwise or when
 * the answer had none. annotation_id may be NULL. */
int agent_submit_id(agent_sess_t *s, const char *lease, int64_t task_id, const json_t *value,
                    int64_t active_ms, int64_t *annotation_id);

/* Releases (skip = 0) or skips (skip = 1) a lease with a reason (may be
 * NULL). A 409 or 404 counts as done: the lease is gone either way.
 * Returns 0, AGENT_STOPPED or AGENT_FAILED. */
int agent_release(agent_sess_t *s, const char *lease, const char *reason, int skip);

/* agent_release of an action spooled as id (agent_spool_action), which
 * leaves the spool once done. */
int agent_release_spooled(agent_sess_t *s, uint64_t id, const char *lease, const char *reason,
                          int skip);

/* Heartbeat: 0 while the lease is valid, 1 when it is gone (409), or
 * AGENT_STOPPED / AGENT_FAILED. Not retried: the caller beats again later. */
int agent_heartbeat(agent_sess_t *s, const char *lease);

/* agent_heartbeat that also gives the lease's new expiry (the answer's
 * expires_at_ms, wall-clock ms) in *expires_ms when it returns 0 and the
 * answer has one; *expires_ms is left alone otherwise. */
int agent_heartbeat_until(agent_sess_t *s, const char *lease, int64_t *expires_ms);

/* What spool_send.c shares with this file: a nap that wakes on the stop
 * flag (0, or AGENT_STOPPED); the settling of spooled result id after an
 * answer with this HTTP status (0 delivered, 1 rejected for good, 2 kept,
 * or a negative QR_EXIT_* code: see session.c); the cap on the pause
 * between two tries of sending a result (ms, 0: none). */
int agent_nap(const agent_t *ag, int64_t ms);
int agent_settle(agent_sess_t *s, uint64_t id, long status, int replayed, const char *why);
int64_t agent_result_retry_cap(const agent_t *ag);

/* The default spool path ($XDG_STATE_HOME/quorum/spool or
 * ~/.local/state/quorum/spool), heap, or NULL; its directory is created. */
char *agent_default_spool_path(void);

/* Whether label is one of the project's choices. */
int agent_label_known(const agent_t *ag, const char *label);

/* Sets a result's value in obj: "label" for a string, "labels" for an
 * object (see the top). Returns 0, or -1 for any other JSON. */
int agent_value_set(json_t *obj, const json_t *value);

/* A result's value as obj holds it ("label" or "labels"; borrowed), or NULL. */
json_t *agent_value_get(const json_t *obj);

/* A value as the annotator reads it: the label, or the labels as compact
 * JSON; heap. */
char *agent_value_text(const json_t *value);

/* The lease name of a lease object ({"lease": "17"} or 17), heap, or NULL. */
char *agent_lease_name(json_t *lease);

/* The model's prediction a lease carries when its project shows
 * predictions ({"label" or "labels", "score", "model_version"}): a new
 * reference, or NULL when there is none. */
json_t *agent_lease_prediction(json_t *lease);

/* A prediction as the annotator reads it: "positive (score 0.93)"; heap. */
char *agent_prediction_text(const json_t *prediction);

#endif
