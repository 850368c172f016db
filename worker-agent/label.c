/*
 * label.c - `quorum-agent label`: an annotator labels tasks in a terminal.
 * This file is the UI thread and the state both threads share; the network
 * thread is label_net.c.
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
 *
 * Nothing typed is lost: a label (and a skip or release) is appended to the
 * spool and fsynced by the UI thread before the next task is shown; the
 * network thread then sends it, and it leaves the spool once the broker
 * answered. While the broker is unreachable the network thread retries, the
 * status line says how many labels are kept on disk, and the annotator goes
 * on with the tasks already prefetched; after a crash (even kill -9) the
 * next start, or `quorum-agent spool --send`, sends them (exactly once:
 * each has its idempotency key). An undo is spooled by the network thread
 * before it is sent (it waits for the submit it takes back).
 *
 * Quitting (q, Ctrl-C, SIGTERM) gives back every lease held, waiting at most
 * QUIT_GRACE_MS for the broker: then the stop flag aborts what is left (the
 * leases not given back expire on their own, as the screen and the summary
 * say), and the terminal is restored. The summary counts what the broker
 * acknowledged, and what stays spooled.
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
 *
 * A project with a label schema (issue 15) is labeled one field at a time
 * (label_form.c) and its labels submitted together; a project whose
 * required fields the terminal cannot label (spans, boxes) is refused
 * before anything is leased.
 */
#include "label_int.h"

#include "protocol.h"
#include "task_view.h"
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

/* The longest a quit waits for the broker to take back the leases (ms). */
#define QUIT_GRACE_MS 3000

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

void label_task_free(task_t *t)
{
    free(t->lease);
    json_decref(t->data);
    json_decref(t->prediction);
    free(t->prev_label);
    memset(t, 0, sizeof *t);
}

void label_last_clear(last_t *l)
{
    free(l->label);
    memset(l, 0, sizeof *l);
}

void label_lock(label_t *lb)
{
    if (pthread_mutex_lock(&lb->mu) != 0)
        abort();
}

void label_unlock(label_t *lb)
{
    pthread_mutex_unlock(&lb->mu);
}

/* Called with mu held: wakes the UI. */
void label_wake_ui(label_t *lb)
{
    (void)!write(lb->wake_w, "w", 1); /* a full pipe already means "wake up" */
}

void label_set_status(label_t *lb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lb->status, sizeof lb->status, fmt, ap);
    va_end(ap);
    for (char *p = lb->status; *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
}

/* agent_note's target while the screen is up (any thread, mu not held):
 * messages go to the status line, not across the screen. */
static void on_note(void *arg, agent_note_t kind, const char *msg)
{
    label_t *lb = arg;
    label_lock(lb);
    lb->unreachable = kind == AGENT_NOTE_UNREACHABLE ? 1 : kind == AGENT_NOTE_UNAVAILABLE ? 2 : 0;
    label_set_status(lb, "%s", msg);
    label_wake_ui(lb);
    label_unlock(lb);
}

/* Called with mu held: whether the last acknowledged submit cannot be undone
 * (nothing acknowledged, or its lease has expired: then it is forgotten);
 * if so the status line says why. */
int label_undo_refused(label_t *lb)
{
    if (!lb->last.annotation_id && lb->unstored_task) {
        label_set_status(lb, "cannot undo: task %lld's label %s", (long long)lb->unstored_task,
                         lb->unstored_why);
        return 1;
    }
    if (!lb->last.annotation_id) {
        label_set_status(lb, "nothing to undo");
        return 1;
    }
    if (lb->last.expires_ms > 0 && qr_now_ms() >= lb->last.expires_ms) {
        label_set_status(lb, "too late to undo: task %lld's lease has ended (label %s kept)",
                         (long long)lb->last.task_id, lb->last.label);
        label_last_clear(&lb->last);
        return 1;
    }
    return 0;
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
int label_line(qr_buf_t *out, const char *s, int width)
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
        used += label_line(out, piece, width);
        free(piece);
        text += take + (nl ? 1 : 0);
        len -= take + (nl ? 1 : 0);
    }
    return used;
}

/* Draws the whole screen for the task on screen (NULL: waiting). */
/* The label `a` submits on a plain project: the prediction's, when it is
 * one of the project's labels; else NULL. */
static const char *accept_label(const label_t *lb, const task_t *cur)
{
    const char *l = json_string_value(json_object_get(cur->prediction, "label"));
    for (size_t i = 0; l && !lb->ag.schema && i < lb->ag.nlabels; i++)
        if (!strcmp(lb->ag.labels[i], l))
            return lb->ag.labels[i];
    return NULL;
}

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
    label_lock(lb);
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
    int used = label_line(&out, head, cols);
    used += label_line(&out, "", cols);
    /* A schema project's form takes the place of the choices. */
    qr_buf_t form;
    qr_buf_init(&form);
    int form_rows = lb->ag.schema && cur ? label_form_draw(lb, &form, cols) : 0;
    int body = lb->ag.schema ? rows - 6 - form_rows : rows - 4 - (int)lb->ag.nlabels / 3 - 3;
    if (body < 1)
        body = 1;
    if (!cur) {
        used += label_line(&out,
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
        used += label_line(&out, title, cols);
        if (cur->prediction) {
            /* Pre-annotation: the project shows its model's prediction. */
            char *text = agent_prediction_text(cur->prediction);
            char *line = qr_xasprintf("model suggests: %s%s", text,
                                      accept_label(lb, cur) ? "   (a accepts)" : "");
            used += wrapped(&out, line, cols, 2);
            free(line);
            free(text);
        }
        const char *key;
        json_t *v;
        int shown = 0;
        json_object_foreach(cur->data, key, v)
        {
            if (shown >= body)
                break;
            if (qr_task_key_hidden(key)) /* tools' keys, e.g. the simulation's truth */
                continue;
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
    int choice_rows = form_rows;
    qr_buf_t choices = form;
    qr_buf_t row;
    qr_buf_init(&row);
    for (size_t i = 0; !lb->ag.schema && i < lb->ag.nlabels && i < 10; i++) {
        char item[128];
        snprintf(item, sizeof item, "[%zu] %s   ", (i + 1) % 10, lb->ag.labels[i]);
        if (row.len && row.len + strlen(item) > (size_t)cols) {
            choice_rows += label_line(&choices, row.data, cols);
            qr_buf_reset(&row);
        }
        qr_buf_appends(&row, item);
    }
    if (row.len)
        choice_rows += label_line(&choices, row.data, cols);
    qr_buf_free(&row);
    while (used < rows - choice_rows - 3)
        used += label_line(&out, "", cols);
    qr_buf_append(&out, choices.data ? choices.data : "", choices.len);
    qr_buf_free(&choices);
    label_line(&out, "", cols);
    label_line(&out,
               lb->ag.schema && cur ? label_form_hint(lb)
                                    : "digits choose   s skip   r release   u undo   q quit",
               cols);
    char status[400];
    if (lb->unreachable)
        snprintf(status, sizeof status, "broker %s \u2014 %ld label%s kept on disk; %s",
                 lb->unreachable == 1 ? "unreachable" : "unavailable", lb->unacked,
                 lb->unacked == 1 ? "" : "s", lb->quitting ? lb->status : "sent when it is back");
    else
        snprintf(status, sizeof status, "%s%s", lb->busy || lb->nactions ? "(sending) " : "",
                 lb->status);
    label_unlock(lb);
    qr_buf_appends(&out, "\x1b[K");
    char safe[sizeof status];
    qr_term_escape_to(safe, sizeof safe, status);
    qr_buf_append(&out, safe, strlen(safe) < (size_t)cols ? strlen(safe) : (size_t)cols);
    qr_buf_appends(&out, "\x1b[J");
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    qr_buf_free(&out);
}

/* Spools (fsynced) and queues an action on the task on screen (taken over
 * by the action). A spool that fails is fatal (the UI leaves); the action
 * is queued all the same, unspooled. */
static void act(label_t *lb, act_kind_t kind, task_t *cur, const json_t *value, int64_t active_ms)
{
    action_t a = {kind, *cur, value ? json_deep_copy(value) : NULL, active_ms, 0, ""};
    int r = kind == ACT_SUBMIT ? agent_spool_result(&lb->ag, cur->lease, cur->task_id, value,
                                                    active_ms, a.idem, &a.spool_id)
                               : agent_spool_action(&lb->ag, kind == ACT_SKIP ? "skip" : "release",
                                                    cur->lease, cur->task_id, 0, &a.spool_id);
    label_lock(lb);
    if (r == 0 && kind == ACT_SUBMIT && a.spool_id)
        lb->unacked++;
    a.task.expires_ms = lb->cur_expires_ms;
    lb->actions = qr_xrealloc(lb->actions, (lb->nactions + 1) * sizeof *lb->actions);
    lb->actions[lb->nactions++] = a;
    free(lb->current);
    lb->current = NULL;
    memset(cur, 0, sizeof *cur);
    pthread_cond_signal(&lb->cond);
    label_unlock(lb);
}

/* Submits value (taken: a label string or a labels object) for the task on
 * screen, saying so on the status line. */
static void submit(label_t *lb, task_t *cur, json_t *value, int64_t active_ms)
{
    char *text = agent_value_text(value);
    label_lock(lb);
    label_set_status(lb, "task %lld: %s", (long long)cur->task_id, text);
    label_unlock(lb);
    act(lb, ACT_SUBMIT, cur, value, active_ms);
    free(text);
    json_decref(value);
}

/* After an Esc byte: whether more bytes follow at once (the sequence of an
 * arrow or function key, read and dropped) rather than Esc alone. */
static int escape_sequence(void)
{
    struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
    int more = 0;
    while (poll(&pf, 1, more ? 0 : 30) > 0 && (pf.revents & POLLIN)) {
        char junk[16];
        if (read(STDIN_FILENO, junk, sizeof junk) <= 0)
            break;
        more = 1;
    }
    return more;
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
    label_lock(lb);
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
    label_unlock(lb);
    return got;
}

/* `u`: queues an undo of the last submit, behind a submit still being sent
 * (it waits for the broker's answer), or says at once why there is none. */
static void request_undo(label_t *lb)
{
    label_lock(lb);
    int64_t sending = lb->busy && lb->doing == ACT_SUBMIT ? lb->doing_task : 0;
    int undoing = lb->busy && lb->doing == ACT_UNDO;
    for (size_t i = 0; i < lb->nactions; i++) {
        if (lb->actions[i].kind == ACT_SUBMIT)
            sending = lb->actions[i].task.task_id;
        undoing |= lb->actions[i].kind == ACT_UNDO;
    }
    if (undoing) {
        label_set_status(lb, "undo: already on its way");
    } else if (sending || !label_undo_refused(lb)) {
        if (sending)
            label_set_status(lb, "undo: waiting for the broker to acknowledge task %lld's label...",
                             (long long)sending);
        else
            label_set_status(lb, "undo: taking back task %lld's label %s...",
                             (long long)lb->last.task_id, lb->last.label);
        lb->actions = qr_xrealloc(lb->actions, (lb->nactions + 1) * sizeof *lb->actions);
        lb->actions[lb->nactions++] = (action_t){.kind = ACT_UNDO};
        pthread_cond_signal(&lb->cond);
    }
    label_unlock(lb);
}

/* Waits up to ms for the network thread to finish. Returns 0, or -1 when
 * it has not. */
static int wait_net_done(label_t *lb, int64_t ms)
{
    int64_t until = qr_mono_ms() + ms;
    label_lock(lb);
    while (!lb->net_done && qr_mono_ms() < until) {
        label_unlock(lb);
        (void)poll(NULL, 0, 50); /* EINTR just wakes early */
        label_lock(lb);
    }
    int done = lb->net_done;
    label_unlock(lb);
    return done ? 0 : -1;
}

/* The end-of-session lines: what the broker acknowledged, what stays on
 * disk, and the leases left to expire. */
static void say_summary(const label_t *lb)
{
    const agent_t *ag = &lb->ag;
    printf("quorum-agent: label: %ld label%s stored by the broker, %ld skipped, %ld released%s\n",
           ag->submitted, ag->submitted == 1 ? "" : "s", ag->skipped, ag->released,
           lb->complete ? "; project complete" : "");
    if (lb->unacked > 0)
        printf("quorum-agent: label: %ld label%s not acknowledged yet stay%s spooled in %s (sent "
               "at the next start, or by `quorum-agent spool --send`)\n",
               lb->unacked, lb->unacked == 1 ? "" : "s", lb->unacked == 1 ? "s" : "",
               ag->spool ? ag->spool->path : "?");
    if (lb->not_returned > 0)
        printf("quorum-agent: label: %ld lease%s could not be given back; %s on %s own within "
               "the lease TTL (%lld s)\n",
               lb->not_returned, lb->not_returned == 1 ? "" : "s",
               lb->not_returned == 1 ? "it expires" : "they expire",
               lb->not_returned == 1 ? "its" : "their", (long long)(ag->lease_ttl_ms / 1000));
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
    if (agent_start(&main_sess, 1, &rc) < 0)
        goto out;
    char why[256];
    if (lb.ag.schema && label_form_check(lb.ag.schema, why, sizeof why) < 0) {
        fprintf(stderr,
                "quorum-agent: project %lld cannot be labeled in the terminal: %s; it needs "
                "another labeler (`quorum-agent exec`, or `simulate`); nothing was leased\n",
                opt->project, why);
        rc = QR_EXIT_USAGE;
        goto out;
    }
    /* From here on messages go to the status line, and every action is on
     * disk before it is sent, so a quit may abort any transfer. */
    lb.ag.note = on_note;
    lb.ag.note_arg = &lb;
    lb.ag.abort_all = 1;
    if (raw_terminal() < 0) {
        fprintf(stderr, "quorum-agent: cannot set the terminal to raw mode: %s\n", strerror(errno));
        rc = QR_EXIT_USAGE;
        goto out;
    }
    int e = pthread_create(&net, NULL, label_net_main, &lb);
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
        if (take_current(&lb, &cur, have, &shown_ms)) {
            have = 1;
            if (lb.ag.schema)
                label_form_reset(&lb); /* its first field */
        }
        label_lock(&lb);
        int paused_out = lb.paused && !have && !lb.nqueue;
        label_unlock(&lb);
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
        if (lb.ag.schema && c == 0x1b && escape_sequence())
            continue; /* an arrow or function key, not Esc */
        /* A text field on screen takes every key but Ctrl-S and Ctrl-R. */
        int typing = lb.ag.schema && have && label_form_typing(&lb);
        if (typing && c != 0x13 && c != 0x12) {
            json_t *value = NULL;
            if (label_form_key(&lb, c, &value) == FORM_DONE) {
                submit(&lb, &cur, value, qr_mono_ms() - shown_ms);
                have = 0;
            }
            continue;
        }
        if (typing)
            c = c == 0x13 ? 's' : 'r';
        if (c == 'q' || c == 'Q')
            break;
        if (c == 'u' || c == 'U') {
            request_undo(&lb);
            continue;
        }
        if (!have)
            continue;
        int64_t active = qr_mono_ms() - shown_ms;
        if (lb.ag.schema && c != 's' && c != 'S' && c != 'r' && c != 'R') {
            json_t *value = NULL;
            if (label_form_key(&lb, c, &value) == FORM_DONE) {
                submit(&lb, &cur, value, active);
                have = 0;
            }
        } else if (c >= '0' && c <= '9') {
            size_t k = c == '0' ? 9 : (size_t)(c - '1');
            if (k >= lb.ag.nlabels) {
                label_lock(&lb);
                label_set_status(&lb, "no choice %c", c);
                label_unlock(&lb);
                continue;
            }
            submit(&lb, &cur, json_string(lb.ag.labels[k]), active);
            have = 0;
        } else if ((c == 'a' || c == 'A') && cur.prediction) {
            const char *l = accept_label(&lb, &cur);
            if (!l) {
                label_lock(&lb);
                label_set_status(&lb, "the suggestion is not one of the project's labels");
                label_unlock(&lb);
                continue;
            }
            submit(&lb, &cur, json_string(l), active);
            have = 0;
        } else if (c == 's' || c == 'S') {
            label_lock(&lb);
            label_set_status(&lb, "task %lld: skipped", (long long)cur.task_id);
            label_unlock(&lb);
            act(&lb, ACT_SKIP, &cur, NULL, 0);
            have = 0;
        } else if (c == 'r' || c == 'R') {
            label_lock(&lb);
            label_set_status(&lb, "task %lld: released", (long long)cur.task_id);
            label_unlock(&lb);
            act(&lb, ACT_RELEASE, &cur, NULL, 0);
            have = 0;
        }
    }
    /* Leaving: the task on screen goes back, then everything prefetched.
     * A signal quits as q does (the stop flag would abort every request):
     * a second one, or the grace running out, raises it again. */
    if (!atomic_load(&lb.ag.fatal))
        stop_flag = 0;
    if (have) {
        act(&lb, ACT_RELEASE, &cur, NULL, 0);
        have = 0;
    }
    label_lock(&lb);
    lb.quitting = 1;
    label_set_status(&lb, "quitting: giving back the tasks held (at most %d s)...",
                     QUIT_GRACE_MS / 1000);
    pthread_cond_signal(&lb.cond);
    label_unlock(&lb);
    draw(&lb, NULL, 0);
    if (wait_net_done(&lb, QUIT_GRACE_MS) < 0) {
        /* The broker does not answer: stop retrying; what is on disk stays. */
        stop_flag = 1;
        label_lock(&lb);
        label_set_status(&lb, "leases not given back expire on their own");
        label_unlock(&lb);
        draw(&lb, NULL, 0);
    }
    e = pthread_join(net, NULL);
    if (e != 0)
        fprintf(stderr, "quorum-agent: pthread_join: %s\n", strerror(e));
    thread_started = 0;
    restore_terminal();
    lb.ag.note = NULL;
    say_summary(&lb);
    lb.status[0] = '\0'; /* the summary said it all */
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
        label_lock(&lb);
        lb.quitting = 1;
        pthread_cond_signal(&lb.cond);
        label_unlock(&lb);
        (void)pthread_join(net, NULL);
    }
    restore_terminal();
    if (lb.status[0] && rc != 0) {
        char safe[sizeof lb.status];
        fprintf(stderr, "quorum-agent: %s\n", qr_term_escape_to(safe, sizeof safe, lb.status));
    }
    if (main_ready)
        agent_sess_free(&main_sess);
    label_task_free(&cur);
    for (size_t i = 0; i < lb.nqueue; i++)
        label_task_free(&lb.queue[i]);
    free(lb.queue);
    for (size_t i = 0; i < lb.nactions; i++) {
        label_task_free(&lb.actions[i].task);
        json_decref(lb.actions[i].value);
    }
    free(lb.actions);
    free(lb.current);
    label_last_clear(&lb.last);
    label_form_free(&lb.form);
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
