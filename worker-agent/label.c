/*
 * label.c - `quorum-agent label`: an annotator labels tasks in a terminal.
 *
 * Two threads. The UI thread owns the terminal (raw mode, alternate screen)
 * and never waits on the network: it polls stdin, a wake-up pipe and a 1 s
 * tick (for the time-on-task clock). The network thread keeps `prefetch`
 * tasks leased ahead of the one on screen, beats the heartbeat of every
 * lease held (TTL/3), carries out the UI's actions in order (submit through
 * the spool, skip, release) and refreshes the progress line. They share a
 * label_t under its mutex; the network thread wakes the UI through the pipe.
 *
 * Time on task is the time the task was on screen, in ms, sent as active_ms.
 * Quitting (q, Ctrl-C, SIGTERM) releases every lease held, then restores
 * the terminal.
 *
 * Undo (`u`) retracts the last submit of this session: the network thread
 * keeps the annotation id of the last submit the broker acknowledged and
 * the expiry its lease had then (the latest heartbeat's). The broker undoes
 * only while that lease has not expired, so past it `u` says "too late to
 * undo" without asking. A submit still being sent is waited for: the undo
 * is an action queued behind it, carried out once it is acknowledged. An
 * undo answers with a new lease on the same task; the task goes on screen at
 * once (the one that was there goes back to the head of the queue), shows
 * the label it had, and is heartbeated and submitted like any other.
 */
#include "label.h"

#include "protocol.h"
#include "session.h"
#include "text_out.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* A leased task waiting on screen or in the prefetch queue. */
typedef struct task_s {
    char *lease;          /* lease name (owned) */
    int64_t task_id;      /* the task */
    json_t *data;         /* its data (owned reference) */
    int64_t expires_ms;   /* the lease's expiry as last heard (wall-clock ms), 0 unknown */
    char *prev_label;     /* the label an undo took back (owned), or NULL */
    int64_t on_screen_ms; /* time on screen before it was put back in the queue */
} task_t;

typedef enum { ACT_SUBMIT, ACT_SKIP, ACT_RELEASE, ACT_UNDO } act_kind_t;

/* The last submit of this session the broker acknowledged: what `u` undoes. */
typedef struct last_s {
    int64_t annotation_id; /* 0: nothing to undo */
    int64_t task_id;
    int64_t expires_ms; /* expiry of the lease it was submitted on, 0 unknown */
    char *label;        /* owned */
} last_t;

typedef struct action_s {
    act_kind_t kind;
    task_t task;       /* owned */
    char *label;       /* ACT_SUBMIT (owned) */
    int64_t active_ms; /* ACT_SUBMIT */
} action_t;

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
    char status[256];         /* last message for the status line */
    int wake_w;               /* write end of the UI's wake-up pipe */
} label_t;

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t resized;
static int wake_fd = -1; /* for the signal handlers */

static void on_signal(int signo)
{
    int saved = errno;
    if (signo == SIGWINCH)
        resized = 1;
    else
        stop_flag = 1;
    if (wake_fd >= 0)
        (void)!write(wake_fd, "s", 1);
    errno = saved;
}

static void task_free(task_t *t)
{
    free(t->lease);
    json_decref(t->data);
    free(t->prev_label);
    memset(t, 0, sizeof *t);
}

static void last_clear(last_t *l)
{
    free(l->label);
    memset(l, 0, sizeof *l);
}

static void lock(label_t *lb)
{
    if (pthread_mutex_lock(&lb->mu) != 0)
        abort();
}

static void unlock(label_t *lb)
{
    pthread_mutex_unlock(&lb->mu);
}

/* Called with mu held: wakes the UI. */
static void wake_ui(label_t *lb)
{
    (void)!write(lb->wake_w, "w", 1); /* a full pipe already means "wake up" */
}

static void set_status(label_t *lb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_status(label_t *lb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lb->status, sizeof lb->status, fmt, ap);
    va_end(ap);
    for (char *p = lb->status; *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
}

/* --- the network thread ----------------------------------------------------------------- */

/* Leases up to n more tasks into the queue; returns how many came. */
static int fetch(label_t *lb, agent_sess_t *s, int n)
{
    int got = 0;
    char *path = qr_xasprintf(QR_API_LEASES("%lld"), lb->ag.project);
    json_t *body = json_pack("{s:i}", "max", n);
    json_t *ans = NULL;
    int r = agent_request(s, "POST", path, body, &ans, 1);
    json_decref(body);
    free(path);
    lock(lb);
    if (r == AGENT_FAILED && agent_exit_code(&s->call) == QR_EXIT_PAUSED) {
        /* The tasks already here may still be labeled; then the UI leaves. */
        lb->paused = 1;
        set_status(lb, "project %lld is paused: no new tasks after these", lb->ag.project);
    } else if (r == AGENT_FAILED) {
        set_status(lb, "lease: %s", s->call.message);
        if (s->call.status == 401 || s->call.status == 403 || s->call.status == 404 ||
            agent_exit_code(&s->call) == QR_EXIT_TLS)
            agent_fatal(&lb->ag, agent_exit_code(&s->call));
    } else if (r == 0) {
        json_t *leases = json_object_get(ans, "leases");
        size_t i;
        json_t *l;
        if (json_array_size(leases) == 0 && json_is_true(json_object_get(ans, "project_complete")))
            lb->complete = 1;
        json_array_foreach(leases, i, l)
        {
            char *name = agent_lease_name(l);
            if (!name)
                continue;
            lb->queue = qr_xrealloc(lb->queue, (lb->nqueue + 1) * sizeof *lb->queue);
            lb->queue[lb->nqueue++] =
                (task_t){.lease = name,
                         .task_id = json_integer_value(json_object_get(l, "task_id")),
                         .data = json_incref(json_object_get(l, "data")),
                         .expires_ms = json_integer_value(json_object_get(l, "expires_at_ms"))};
            got++;
        }
    }
    wake_ui(lb);
    unlock(lb);
    json_decref(ans);
    return got;
}

static void refresh_progress(label_t *lb, agent_sess_t *s)
{
    char *path = qr_xasprintf(QR_API_PROGRESS("%lld"), lb->ag.project);
    json_t *ans = NULL;
    int r = agent_request(s, "GET", path, NULL, &ans, 1);
    free(path);
    if (r != 0)
        return;
    lock(lb);
    lb->done_today = (long)json_integer_value(json_object_get(ans, "my_annotations_today"));
    lb->remaining = (long)json_integer_value(json_object_get(ans, "annotations_remaining"));
    wake_ui(lb);
    unlock(lb);
    json_decref(ans);
}

/* Called with mu held: records a heartbeat's new expiry for lease wherever
 * it is now (on screen, prefetched, or handed to an action meanwhile). */
static void note_expiry(label_t *lb, const char *lease, int64_t expires_ms)
{
    if (lb->current && strcmp(lb->current, lease) == 0)
        lb->cur_expires_ms = expires_ms;
    for (size_t k = 0; k < lb->nqueue; k++)
        if (strcmp(lb->queue[k].lease, lease) == 0)
            lb->queue[k].expires_ms = expires_ms;
    for (size_t k = 0; k < lb->nactions; k++)
        if (lb->actions[k].task.lease && strcmp(lb->actions[k].task.lease, lease) == 0)
            lb->actions[k].task.expires_ms = expires_ms;
}

/* Beats the heartbeat of the lease on screen and of every prefetched one.
 * Drops prefetched leases that are gone; says so for the one on screen. */
static void beat(label_t *lb, agent_sess_t *s)
{
    lock(lb);
    size_t n = lb->nqueue + 1;
    char **names = qr_xcalloc(n, sizeof *names);
    for (size_t i = 0; i < lb->nqueue; i++)
        names[i] = qr_xstrdup(lb->queue[i].lease);
    names[n - 1] = lb->current ? qr_xstrdup(lb->current) : NULL;
    unlock(lb);
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            continue;
        int64_t until = 0;
        int hb = agent_heartbeat_until(s, names[i], &until);
        if (hb == 0 && until > 0) {
            lock(lb);
            note_expiry(lb, names[i], until);
            unlock(lb);
        } else if (hb == 1 && i == n - 1) {
            lock(lb);
            set_status(lb, "the lease of the task on screen expired; its label will not count");
            wake_ui(lb);
            unlock(lb);
        } else if (hb == 1) {
            lock(lb);
            for (size_t k = 0; k < lb->nqueue; k++) {
                if (strcmp(lb->queue[k].lease, names[i]) == 0) {
                    set_status(lb, "task %lld: its lease expired; moving on",
                               (long long)lb->queue[k].task_id);
                    task_free(&lb->queue[k]);
                    memmove(&lb->queue[k], &lb->queue[k + 1],
                            (lb->nqueue - k - 1) * sizeof *lb->queue);
                    lb->nqueue--;
                    wake_ui(lb);
                    break;
                }
            }
            unlock(lb);
        }
        free(names[i]);
    }
    free(names);
}

/* Called with mu held: whether the last acknowledged submit cannot be undone
 * (nothing acknowledged, or its lease has expired: then it is forgotten);
 * if so the status line says why. */
static int undo_refused(label_t *lb)
{
    if (!lb->last.annotation_id && lb->unstored_task) {
        set_status(lb, "cannot undo: task %lld's label %s", (long long)lb->unstored_task,
                   lb->unstored_why);
        return 1;
    }
    if (!lb->last.annotation_id) {
        set_status(lb, "nothing to undo");
        return 1;
    }
    if (lb->last.expires_ms > 0 && qr_now_ms() >= lb->last.expires_ms) {
        set_status(lb, "too late to undo: task %lld's lease has ended (label %s kept)",
                   (long long)lb->last.task_id, lb->last.label);
        last_clear(&lb->last);
        return 1;
    }
    return 0;
}

/*
 * Undoes the last acknowledged submit, if its lease allows: on success the
 * task comes back at the head of the queue on the new lease, flagged for the
 * UI to show at once.
 */
static void undo(label_t *lb, agent_sess_t *s)
{
    lock(lb);
    if (undo_refused(lb)) {
        wake_ui(lb);
        unlock(lb);
        return;
    }
    int64_t id = lb->last.annotation_id, task = lb->last.task_id;
    char *label = qr_xstrdup(lb->last.label);
    unlock(lb);

    char *path = qr_xasprintf(QR_API_UNDO("%lld", "%lld"), lb->ag.project, (long long)id);
    json_t *body = json_object();
    json_t *ans = NULL;
    int r = agent_request(s, "POST", path, body, &ans, 0);
    json_decref(body);
    free(path);
    lock(lb);
    if (r == 0) {
        if (lb->last.annotation_id == id)
            last_clear(&lb->last);
        json_t *l = json_object_get(ans, "lease");
        char *name = agent_lease_name(l);
        if (!name) {
            set_status(lb, "task %lld: label %s undone; the task will come back from the queue",
                       (long long)task, label);
        } else {
            json_int_t tid = json_integer_value(json_object_get(l, "task_id"));
            task_t t = {.lease = name,
                        .task_id = tid ? tid : task,
                        .data = json_incref(json_object_get(l, "data")),
                        .expires_ms = json_integer_value(json_object_get(l, "expires_at_ms")),
                        .prev_label = qr_xstrdup(label)};
            lb->queue = qr_xrealloc(lb->queue, (lb->nqueue + 1) * sizeof *lb->queue);
            memmove(&lb->queue[1], &lb->queue[0], lb->nqueue * sizeof *lb->queue);
            lb->queue[0] = t;
            lb->nqueue++;
            lb->undo_ready = 1;
            set_status(lb, "task %lld: label %s undone; choose again", (long long)t.task_id, label);
        }
    } else if (r == AGENT_FAILED && s->call.status == 409) {
        if (lb->last.annotation_id == id)
            last_clear(&lb->last);
        set_status(lb, "too late to undo: task %lld's lease has ended (label %s kept)",
                   (long long)task, label);
    } else if (r == AGENT_FAILED) {
        set_status(lb, "undo: %s", s->call.message);
        if (s->call.status == 401 || s->call.status == 403 ||
            agent_exit_code(&s->call) == QR_EXIT_TLS)
            agent_fatal(&lb->ag, agent_exit_code(&s->call));
    }
    wake_ui(lb);
    unlock(lb);
    json_decref(ans);
    free(label);
}

static void carry_out(label_t *lb, agent_sess_t *s, action_t *a)
{
    int r;
    if (a->kind == ACT_UNDO) {
        undo(lb, s);
    } else if (a->kind == ACT_SUBMIT) {
        int64_t annotation = 0;
        r = agent_submit_id(s, a->task.lease, a->task.task_id, a->label, a->active_ms, &annotation);
        lock(lb);
        last_clear(&lb->last);
        lb->unstored_task = 0;
        if (r == 0 && annotation > 0) {
            lb->last.annotation_id = annotation;
            lb->last.task_id = a->task.task_id;
            lb->last.expires_ms = a->task.expires_ms;
            lb->last.label = qr_xstrdup(a->label);
        } else {
            lb->unstored_task = a->task.task_id;
            lb->unstored_why = r == 0   ? "has no annotation id in the broker's answer"
                               : r == 1 ? "was not stored"
                               : r == AGENT_STOPPED
                                   ? "is still only in the spool (not acknowledged)"
                                   : "was not acknowledged";
        }
        if (r == 1)
            set_status(lb, "task %lld: not stored (see the .rejected file)",
                       (long long)a->task.task_id);
        else if (r < 0 && r != AGENT_STOPPED)
            set_status(lb, "task %lld: %s", (long long)a->task.task_id, s->call.message);
        unlock(lb);
    } else {
        r = agent_release(s, a->task.lease,
                          a->kind == ACT_SKIP ? "skipped in the terminal"
                                              : "released in the terminal",
                          a->kind == ACT_SKIP);
        if (r == AGENT_FAILED) {
            lock(lb);
            set_status(lb, "task %lld: %s", (long long)a->task.task_id, s->call.message);
            unlock(lb);
        }
    }
}

static void *net_main(void *arg)
{
    label_t *lb = arg;
    agent_sess_t s;
    int64_t next_beat = 0, next_progress = 0, next_fetch = 0;
    int64_t beat_every = lb->ag.lease_ttl_ms / 3 > 200 ? lb->ag.lease_ttl_ms / 3 : 200;

    if (agent_sess_init(&s, &lb->ag) < 0) {
        lock(lb);
        agent_fatal(&lb->ag, QR_EXIT_ERROR);
        lb->quitting = 1;
        wake_ui(lb);
        unlock(lb);
        return NULL;
    }
    lock(lb);
    for (;;) {
        if (lb->nactions) {
            action_t a = lb->actions[0];
            memmove(&lb->actions[0], &lb->actions[1], (lb->nactions - 1) * sizeof *lb->actions);
            lb->nactions--;
            lb->busy = 1;
            lb->doing = a.kind;
            lb->doing_task = a.task.task_id;
            unlock(lb);
            carry_out(lb, &s, &a);
            task_free(&a.task);
            free(a.label);
            next_progress = 0;
            lock(lb);
            lb->busy = 0;
            wake_ui(lb);
            continue;
        }
        if (lb->quitting)
            break;
        int64_t now = qr_mono_ms();
        int want = lb->opt->prefetch + 1 - (int)lb->nqueue;
        int complete = lb->complete || lb->paused;
        unlock(lb);
        if (want > 0 && !complete && now >= next_fetch && !stop_flag) {
            /* When nothing came, ask again in a second. */
            next_fetch = fetch(lb, &s, want) > 0 ? 0 : now + 1000;
        }
        if (now >= next_beat) {
            beat(lb, &s);
            next_beat = now + beat_every;
        }
        if (now >= next_progress) {
            refresh_progress(lb, &s);
            next_progress = now + 10000;
        }
        lock(lb);
        if (!lb->nactions && !lb->quitting) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&lb->cond, &lb->mu, &ts);
        }
    }
    /* Quitting: give back every lease still queued. */
    while (lb->nqueue) {
        task_t t = lb->queue[--lb->nqueue];
        unlock(lb);
        if (agent_release(&s, t.lease, "annotator quit", 0) == AGENT_FAILED)
            fprintf(stderr, "quorum-agent: cannot release lease %s: %s\n", t.lease, s.call.message);
        task_free(&t);
        lock(lb);
    }
    unlock(lb);
    agent_sess_free(&s);
    return NULL;
}

/* --- the terminal ------------------------------------------------------------------------ */

static struct termios saved_tio;
static int tio_saved;

static void restore_terminal(void)
{
    if (!tio_saved)
        return;
    fputs("\x1b[?25h\x1b[?1049l", stdout);
    fflush(stdout);
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    tio_saved = 0;
}

static int raw_terminal(void)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
        return -1;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN); /* ISIG stays: Ctrl-C quits cleanly */
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
        return -1;
    tio_saved = 1;
    fputs("\x1b[?1049h\x1b[?25l", stdout); /* alternate screen, hide the cursor */
    return 0;
}

/* Appends s to out escaped for the terminal (text_out.h: task data, labels
 * and messages from the server can neither move the cursor nor add lines),
 * cut to width columns (bytes), then a line break. Returns 1. */
static int line(qr_buf_t *out, const char *s, int width)
{
    qr_buf_t esc;
    qr_buf_init(&esc);
    qr_term_escape(&esc, s);
    qr_buf_append(out, esc.data ? esc.data : "", esc.len < (size_t)width ? esc.len : (size_t)width);
    qr_buf_free(&esc);
    qr_buf_appends(out, "\x1b[K\r\n");
    return 1;
}

/* Appends text wrapped to width, at most max_lines lines. Returns lines used. */
static int wrapped(qr_buf_t *out, const char *text, int width, int max_lines)
{
    int used = 0;
    size_t len = strlen(text);
    while (len > 0 && used < max_lines) {
        size_t take = len < (size_t)width ? len : (size_t)width;
        const char *nl = memchr(text, '\n', take);
        if (nl)
            take = (size_t)(nl - text);
        char *piece = qr_xstrndup(text, take);
        used += line(out, piece, width);
        free(piece);
        text += take + (nl ? 1 : 0);
        len -= take + (nl ? 1 : 0);
    }
    return used;
}

/* Draws the whole screen for the task on screen (NULL: waiting). */
static void draw(label_t *lb, const task_t *cur, int64_t shown_ms)
{
    struct winsize ws;
    int rows = 24, cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    qr_buf_t out;
    qr_buf_init(&out);
    qr_buf_appends(&out, "\x1b[H");
    char head[256];
    lock(lb);
    int64_t secs = cur ? (qr_mono_ms() - shown_ms) / 1000 : 0;
    char today[32] = "-", left[32] = "-";
    if (lb->done_today >= 0)
        snprintf(today, sizeof today, "%ld", lb->done_today);
    if (lb->remaining >= 0)
        snprintf(left, sizeof left, "%ld", lb->remaining);
    snprintf(
        head, sizeof head,
        "Quorum  project %lld  |  done today %s  |  queue left %s  |  time on task %lld:%02lld",
        lb->ag.project, today, left, (long long)(secs / 60), (long long)(secs % 60));
    int used = line(&out, head, cols);
    used += line(&out, "", cols);
    int body = rows - 4 - (int)lb->ag.nlabels / 3 - 3;
    if (body < 1)
        body = 1;
    if (!cur) {
        used += line(&out,
                     lb->complete ? "The project is complete. Press q to quit."
                     : lb->paused ? "The project is paused."
                                  : "Waiting for a task...",
                     cols);
    } else {
        char title[192];
        if (cur->prev_label)
            snprintf(title, sizeof title, "Task %lld   (undone; it was labeled %.100s)",
                     (long long)cur->task_id, cur->prev_label);
        else
            snprintf(title, sizeof title, "Task %lld", (long long)cur->task_id);
        used += line(&out, title, cols);
        const char *key;
        json_t *v;
        int shown = 0;
        json_object_foreach(cur->data, key, v)
        {
            if (shown >= body)
                break;
            char *text = json_is_string(v) ? qr_xstrdup(json_string_value(v))
                                           : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            char *fieldline = qr_xasprintf("%s: %s", key, text ? text : "");
            int k = wrapped(&out, fieldline, cols, body - shown);
            shown += k;
            used += k;
            free(fieldline);
            free(text);
        }
        if (!json_is_object(cur->data)) {
            char *text = json_dumps(cur->data, JSON_COMPACT | JSON_ENCODE_ANY);
            used += wrapped(&out, text ? text : "null", cols, body);
            free(text);
        }
    }
    /* Blank lines down to the choices. */
    int choice_rows = 0;
    qr_buf_t choices;
    qr_buf_init(&choices);
    qr_buf_t row;
    qr_buf_init(&row);
    for (size_t i = 0; i < lb->ag.nlabels && i < 10; i++) {
        char item[128];
        snprintf(item, sizeof item, "[%zu] %s   ", (i + 1) % 10, lb->ag.labels[i]);
        if (row.len && row.len + strlen(item) > (size_t)cols) {
            choice_rows += line(&choices, row.data, cols);
            qr_buf_reset(&row);
        }
        qr_buf_appends(&row, item);
    }
    if (row.len)
        choice_rows += line(&choices, row.data, cols);
    qr_buf_free(&row);
    while (used < rows - choice_rows - 3)
        used += line(&out, "", cols);
    qr_buf_append(&out, choices.data ? choices.data : "", choices.len);
    qr_buf_free(&choices);
    line(&out, "", cols);
    line(&out, "digits choose   s skip   r release   u undo   q quit", cols);
    char status[300];
    snprintf(status, sizeof status, "%s%s", lb->busy || lb->nactions ? "(sending) " : "",
             lb->status);
    unlock(lb);
    qr_buf_appends(&out, "\x1b[K");
    char safe[sizeof status];
    qr_term_escape_to(safe, sizeof safe, status);
    qr_buf_append(&out, safe, strlen(safe) < (size_t)cols ? strlen(safe) : (size_t)cols);
    qr_buf_appends(&out, "\x1b[J");
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    qr_buf_free(&out);
}

/* Queues an action on the task on screen (taken over by the action). */
static void act(label_t *lb, act_kind_t kind, task_t *cur, const char *label, int64_t active_ms)
{
    lock(lb);
    cur->expires_ms = lb->cur_expires_ms;
    lb->actions = qr_xrealloc(lb->actions, (lb->nactions + 1) * sizeof *lb->actions);
    lb->actions[lb->nactions++] =
        (action_t){kind, *cur, label ? qr_xstrdup(label) : NULL, active_ms};
    free(lb->current);
    lb->current = NULL;
    memset(cur, 0, sizeof *cur);
    pthread_cond_signal(&lb->cond);
    unlock(lb);
}

/*
 * Takes the next prefetched task, if any, as the one on screen when there is
 * none (have = 0); an undone task at the head of the queue goes on screen even
 * when there is one, which then takes its place at the head of the queue
 * (keeping its time on screen). *shown_ms: when the one now on screen came,
 * counting its earlier time on screen. Returns 1 when cur changed.
 */
static int take_current(label_t *lb, task_t *cur, int have, int64_t *shown_ms)
{
    int got = 0;
    int64_t now = qr_mono_ms();
    lock(lb);
    if (lb->undo_ready && have && lb->nqueue && lb->queue[0].prev_label) {
        task_t undone = lb->queue[0];
        cur->expires_ms = lb->cur_expires_ms;
        cur->on_screen_ms = now - *shown_ms;
        lb->queue[0] = *cur;
        *cur = undone;
        got = 1;
    } else if (!have && lb->nqueue) {
        *cur = lb->queue[0];
        memmove(&lb->queue[0], &lb->queue[1], (lb->nqueue - 1) * sizeof *lb->queue);
        lb->nqueue--;
        got = 1;
        pthread_cond_signal(&lb->cond); /* prefetch the next */
    }
    lb->undo_ready = 0;
    if (got) {
        free(lb->current);
        lb->current = qr_xstrdup(cur->lease);
        lb->cur_expires_ms = cur->expires_ms;
        *shown_ms = now - cur->on_screen_ms;
    }
    unlock(lb);
    return got;
}

/* `u`: queues an undo of the last submit, behind a submit still being sent
 * (it waits for the broker's answer), or says at once why there is none. */
static void request_undo(label_t *lb)
{
    lock(lb);
    int64_t sending = lb->busy && lb->doing == ACT_SUBMIT ? lb->doing_task : 0;
    int undoing = lb->busy && lb->doing == ACT_UNDO;
    for (size_t i = 0; i < lb->nactions; i++) {
        if (lb->actions[i].kind == ACT_SUBMIT)
            sending = lb->actions[i].task.task_id;
        undoing |= lb->actions[i].kind == ACT_UNDO;
    }
    if (undoing) {
        set_status(lb, "undo: already on its way");
    } else if (sending || !undo_refused(lb)) {
        if (sending)
            set_status(lb, "undo: waiting for the broker to acknowledge task %lld's label...",
                       (long long)sending);
        else
            set_status(lb, "undo: taking back task %lld's label %s...", (long long)lb->last.task_id,
                       lb->last.label);
        lb->actions = qr_xrealloc(lb->actions, (lb->nactions + 1) * sizeof *lb->actions);
        lb->actions[lb->nactions++] = (action_t){.kind = ACT_UNDO};
        pthread_cond_signal(&lb->cond);
    }
    unlock(lb);
}

int qr_label_run(const qr_label_options_t *opt, const qr_client_config_t *cfg, qr_spool_t *spool)
{
    label_t lb;
    int pipefd[2] = {-1, -1}, rc = QR_EXIT_ERROR, thread_started = 0;
    pthread_t net;
    agent_sess_t main_sess;
    int main_ready = 0, mu_ok = 0, cond_ok = 0;
    task_t cur;

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "quorum-agent: label needs a terminal on stdin and stdout; for programs "
                        "use `quorum-agent exec`\n");
        return QR_EXIT_USAGE;
    }
    memset(&lb, 0, sizeof lb);
    memset(&cur, 0, sizeof cur);
    lb.opt = opt;
    lb.done_today = lb.remaining = -1;
    if (agent_init(&lb.ag, cfg, &stop_flag) < 0)
        return QR_EXIT_ERROR;
    lb.ag.project = opt->project;
    lb.ag.spool = spool;
    if (pthread_mutex_init(&lb.mu, NULL) != 0 || !(mu_ok = 1) ||
        pthread_cond_init(&lb.cond, NULL) != 0 || !(cond_ok = 1)) {
        fprintf(stderr, "quorum-agent: cannot create a mutex\n");
        goto out;
    }
    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "quorum-agent: pipe: %s\n", strerror(errno));
        goto out;
    }
    lb.wake_w = pipefd[1];
    wake_fd = pipefd[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGWINCH, &sa, NULL) < 0 || sigaction(SIGHUP, &sa, NULL) < 0) {
        fprintf(stderr, "quorum-agent: sigaction: %s\n", strerror(errno));
        goto out;
    }
    json_object_seed(0);
    if (agent_sess_init(&main_sess, &lb.ag) < 0)
        goto out;
    main_ready = 1;
    int r = agent_flush_spool(&main_sess, NULL);
    if (r == AGENT_STOPPED) {
        rc = spool && spool->npending ? QR_EXIT_PENDING : QR_EXIT_OK;
        goto out;
    }
    if (r < 0) {
        rc = -r;
        goto out;
    }
    if ((r = agent_load_project(&main_sess)) != 0) {
        /* Stopped while the broker was unreachable: 7 only if results are
         * still spooled, as the exit codes say. */
        rc = r == QR_EXIT_PENDING && !(spool && spool->npending) ? QR_EXIT_OK : r;
        goto out;
    }
    if (raw_terminal() < 0) {
        fprintf(stderr, "quorum-agent: cannot set the terminal to raw mode: %s\n", strerror(errno));
        rc = QR_EXIT_USAGE;
        goto out;
    }
    int e = pthread_create(&net, NULL, net_main, &lb);
    if (e != 0) {
        restore_terminal();
        fprintf(stderr, "quorum-agent: pthread_create: %s\n", strerror(e));
        goto out;
    }
    thread_started = 1;

    int64_t shown_ms = 0;
    int have = 0;
    for (;;) {
        if (stop_flag || atomic_load(&lb.ag.fatal))
            break;
        if (take_current(&lb, &cur, have, &shown_ms))
            have = 1;
        lock(&lb);
        int paused_out = lb.paused && !have && !lb.nqueue;
        unlock(&lb);
        if (paused_out)
            break; /* paused, and every task held is done */
        resized = 0;
        draw(&lb, have ? &cur : NULL, shown_ms);
        struct pollfd pf[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                               {.fd = pipefd[0], .events = POLLIN}};
        if (poll(pf, 2, 1000) < 0 && errno != EINTR)
            break;
        if (pf[1].revents & POLLIN) {
            char drain[64];
            while (read(pipefd[0], drain, sizeof drain) > 0)
                ;
        }
        if (!(pf[0].revents & (POLLIN | POLLHUP)))
            continue;
        char c;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            break; /* the terminal went away */
        if (n < 0)
            continue;
        if (c == 'q' || c == 'Q')
            break;
        if (c == 'u' || c == 'U') {
            request_undo(&lb);
            continue;
        }
        if (!have)
            continue;
        int64_t active = qr_mono_ms() - shown_ms;
        if (c >= '0' && c <= '9') {
            size_t k = c == '0' ? 9 : (size_t)(c - '1');
            if (k >= lb.ag.nlabels) {
                lock(&lb);
                set_status(&lb, "no choice %c", c);
                unlock(&lb);
                continue;
            }
            lock(&lb);
            set_status(&lb, "task %lld: %s", (long long)cur.task_id, lb.ag.labels[k]);
            unlock(&lb);
            act(&lb, ACT_SUBMIT, &cur, lb.ag.labels[k], active);
            have = 0;
        } else if (c == 's' || c == 'S') {
            lock(&lb);
            set_status(&lb, "task %lld: skipped", (long long)cur.task_id);
            unlock(&lb);
            act(&lb, ACT_SKIP, &cur, NULL, 0);
            have = 0;
        } else if (c == 'r' || c == 'R') {
            lock(&lb);
            set_status(&lb, "task %lld: released", (long long)cur.task_id);
            unlock(&lb);
            act(&lb, ACT_RELEASE, &cur, NULL, 0);
            have = 0;
        }
    }
    /* Leaving: the task on screen goes back, then everything prefetched. */
    if (have) {
        act(&lb, ACT_RELEASE, &cur, NULL, 0);
        have = 0;
    }
    lock(&lb);
    lb.quitting = 1;
    set_status(&lb, "quitting: giving back the tasks held...");
    pthread_cond_signal(&lb.cond);
    unlock(&lb);
    draw(&lb, NULL, 0);
    e = pthread_join(net, NULL);
    if (e != 0)
        fprintf(stderr, "quorum-agent: pthread_join: %s\n", strerror(e));
    thread_started = 0;
    restore_terminal();
    printf("quorum-agent: label: %ld submitted, %ld skipped, %ld released%s\n", lb.ag.submitted,
           lb.ag.skipped, lb.ag.released, lb.complete ? "; project complete" : "");
    rc = atomic_load(&lb.ag.fatal);
    if (!rc && lb.paused) {
        agent_say_paused(&lb.ag, spool && spool->npending
                                     ? "the tasks held were labeled or given back, some results "
                                       "stay spooled"
                                     : "the tasks held were labeled or given back");
        rc = QR_EXIT_PAUSED;
    }
    if (!rc && spool && spool->npending)
        rc = QR_EXIT_PENDING;
out:
    if (thread_started) {
        lock(&lb);
        lb.quitting = 1;
        pthread_cond_signal(&lb.cond);
        unlock(&lb);
        (void)pthread_join(net, NULL);
    }
    restore_terminal();
    if (lb.status[0] && rc != 0) {
        char safe[sizeof lb.status];
        fprintf(stderr, "quorum-agent: %s\n", qr_term_escape_to(safe, sizeof safe, lb.status));
    }
    if (main_ready)
        agent_sess_free(&main_sess);
    task_free(&cur);
    for (size_t i = 0; i < lb.nqueue; i++)
        task_free(&lb.queue[i]);
    free(lb.queue);
    for (size_t i = 0; i < lb.nactions; i++) {
        task_free(&lb.actions[i].task);
        free(lb.actions[i].label);
    }
    free(lb.actions);
    free(lb.current);
    last_clear(&lb.last);
    wake_fd = -1;
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (cond_ok)
        pthread_cond_destroy(&lb.cond);
    if (mu_ok)
        pthread_mutex_destroy(&lb.mu);
    agent_free(&lb.ag);
    return rc;
}
