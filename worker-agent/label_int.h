/*
 * label_int.h - what the two threads of `quorum-agent label` share, and
 * nothing else includes: the tasks, actions and state under the label_t
 * mutex, the helpers both threads use on it (label.c), the network
 * thread's entry point (label_net.c) and the UI thread's form for projects
 * with a label schema (label_form.c). The design is described at the top
 * of label.c.
 */
#ifndef QR_LABEL_INT_H
#define QR_LABEL_INT_H

#include "label.h"
#include "session.h"
#include "util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

/* A leased task waiting on screen or in the prefetch queue. */
typedef struct task_s {
    char *lease;          /* lease name (owned) */
    int64_t task_id;      /* the task */
    json_t *data;         /* its data (owned reference) */
    json_t *prediction;   /* the model's prediction shown with it (owned), or NULL */
    int64_t expires_ms;   /* the lease's expiry as last heard (wall-clock ms), 0 unknown */
    char *prev_label;     /* the label an undo took back, as text (owned), or NULL */
    int64_t on_screen_ms; /* time on screen before it was put back in the queue */
} task_t;

typedef enum { ACT_SUBMIT, ACT_SKIP, ACT_RELEASE, ACT_UNDO } act_kind_t;

/* The last submit of this session the broker acknowledged: what `u` undoes. */
typedef struct last_s {
    int64_t annotation_id; /* 0: nothing to undo */
    int64_t task_id;
    int64_t expires_ms; /* expiry of the lease it was submitted on, 0 unknown */
    char *label;        /* its value as text (agent_value_text), owned */
} last_t;

/* An action of the UI. Submits, skips and releases are in the spool
 * (fsynced) before the UI shows the next task; the network thread sends
 * them and they leave the spool once answered. */
typedef struct action_s {
    act_kind_t kind;
    task_t task;       /* owned */
    json_t *value;     /* ACT_SUBMIT: the label or labels (session.h; owned) */
    int64_t active_ms; /* ACT_SUBMIT */
    uint64_t spool_id; /* its spool record, 0: none (no spool, or the spool failed) */
    char idem[33];     /* ACT_SUBMIT: its idempotency key */
} action_t;

/* The form of a schema project's task on screen (label_form.c): the UI
 * thread's alone. */
typedef struct form_s {
    size_t field;   /* index in the schema's fields of the field on screen */
    json_t *labels; /* the values given so far (owned); NULL: no form (no task) */
    char *sel;      /* multi_choice on screen: a flag per choice (owned) */
    size_t nsel;    /* flags in sel */
    qr_buf_t input; /* rating or text on screen: what was typed */
} form_t;

typedef struct label_s {
    const qr_label_options_t *opt;
    agent_t ag;
    pthread_mutex_t mu;  /* guards everything below */
    pthread_cond_t cond; /* the network thread waits on it */
    task_t *queue;       /* prefetched tasks, oldest first */
    size_t nqueue;
    action_t *actions; /* the UI's actions, in order */
    size_t nactions;
    int busy;                 /* the network thread is carrying out an action */
    int complete;             /* the broker said project_complete */
    int paused;               /* the broker said project_paused: no more fetching */
    int quitting;             /* the UI is leaving: release everything and stop */
    char *current;            /* lease of the task on screen (owned), or NULL */
    int64_t cur_expires_ms;   /* expiry of that lease as last heard, 0 unknown */
    act_kind_t doing;         /* the action being carried out, when busy */
    int64_t doing_task;       /* its task (0 for an undo) */
    last_t last;              /* the last acknowledged submit (see the top) */
    int64_t unstored_task;    /* the last submit cannot be undone: its task, else 0 */
    const char *unstored_why; /* why not (static text) */
    int undo_ready;           /* an undone task is at the head of the queue: show it now */
    long done_today;          /* progress: my_annotations_today, -1 unknown */
    long remaining;           /* progress: annotations_remaining, -1 unknown */
    long unacked;             /* labels on disk the broker has not acknowledged yet */
    int unreachable;          /* the network thread is retrying: 1 the broker is unreachable,
                                 2 it answers 5xx (unavailable); 0 neither */
    long not_returned;        /* leases the quit could not give back (they expire) */
    int net_done;             /* the network thread has finished */
    char status[256];         /* last message for the status line */
    int wake_w;               /* write end of the UI's wake-up pipe */
    form_t form;              /* schema projects: the task's fields (UI thread only) */
} label_t;

/* --- label.c -------------------------------------------------------------------------------- */

/* Frees what t owns and zeroes it; the same for the last submit. */
void label_task_free(task_t *t);
void label_last_clear(last_t *l);
/* Takes and gives back lb->mu (a failure to take it aborts). */
void label_lock(label_t *lb);
void label_unlock(label_t *lb);
/* Called with mu held: wakes the UI. */
void label_wake_ui(label_t *lb);
/* Called with mu held: the status line, control characters made spaces. */
void label_set_status(label_t *lb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Called with mu held: whether the last acknowledged submit cannot be
 * undone (nothing acknowledged, or its lease has ended: then it is
 * forgotten); if so the status line says why. */
int label_undo_refused(label_t *lb);

/* Appends s to out escaped for the terminal, cut to width columns, then a
 * line break. Returns 1 (the lines used). */
int label_line(qr_buf_t *out, const char *s, int width);

/* --- label_form.c --------------------------------------------------------------------------- */

/* What label_form_key did with a key. */
enum { FORM_IGNORED, FORM_HANDLED, FORM_DONE };

/* Whether the terminal can label schema: 0, or -1 with why (a required
 * field of a type it cannot label, or no field it can). */
int label_form_check(const json_t *schema, char *why, size_t size);
/* A new task is on screen: its form starts at the first field. */
void label_form_reset(label_t *lb);
void label_form_free(form_t *fm);
/* Whether a text field is on screen (every printable key is text). */
int label_form_typing(const label_t *lb);
/* Handles key c (mu not held). FORM_DONE: the labels are complete, in
 * *value (the caller's). */
int label_form_key(label_t *lb, int c, json_t **value);
/* The form's lines for the screen (called with mu held); returns how many. */
int label_form_draw(const label_t *lb, qr_buf_t *out, int cols);
/* The key line for the field on screen. */
const char *label_form_hint(const label_t *lb);

/* --- label_net.c ---------------------------------------------------------------------------- */

/* The network thread (arg: the label_t): prefetches, heartbeats, carries
 * out the UI's actions in order, refreshes the progress line; when the UI
 * quits, gives back every lease still queued. */
void *label_net_main(void *arg);

#endif
