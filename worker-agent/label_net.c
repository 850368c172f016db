/*
 * label_net.c - the network thread of `quorum-agent label`: it keeps
 * `prefetch` tasks leased ahead of the one on screen, beats the heartbeat of
 * every lease held (TTL/3), carries out the UI's actions in order (submit
 * through the spool, skip, release, undo) and refreshes the progress line,
 * waking the UI through its pipe whenever what it shows changed. It never
 * touches the terminal.
 */
#include "label_int.h"

#include "protocol.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    label_lock(lb);
    if (r == AGENT_FAILED && agent_exit_code(&s->call) == QR_EXIT_PAUSED) {
        /* The tasks already here may still be labeled; then the UI leaves. */
        lb->paused = 1;
        if (s->call.status == 403)
            label_set_status(lb,
                             "you are paused in project %lld (gold accuracy below its "
                             "minimum): no new tasks after these",
                             lb->ag.project);
        else
            label_set_status(lb, "project %lld is %s: no new tasks after these", lb->ag.project,
                             agent_project_archived() ? "archived" : "paused");
    } else if (r == AGENT_FAILED) {
        label_set_status(lb, "lease: %s", s->call.message);
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
                         .prediction = agent_lease_prediction(l),
                         .expires_ms = json_integer_value(json_object_get(l, "expires_at_ms"))};
            got++;
        }
    }
    label_wake_ui(lb);
    label_unlock(lb);
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
    label_lock(lb);
    lb->done_today = (long)json_integer_value(json_object_get(ans, "my_annotations_today"));
    lb->remaining = (long)json_integer_value(json_object_get(ans, "annotations_remaining"));
    label_wake_ui(lb);
    label_unlock(lb);
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
    label_lock(lb);
    size_t n = lb->nqueue + 1;
    char **names = qr_xcalloc(n, sizeof *names);
    for (size_t i = 0; i < lb->nqueue; i++)
        names[i] = qr_xstrdup(lb->queue[i].lease);
    names[n - 1] = lb->current ? qr_xstrdup(lb->current) : NULL;
    label_unlock(lb);
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            continue;
        int64_t until = 0;
        int hb = agent_heartbeat_until(s, names[i], &until);
        if (hb == 0 && until > 0) {
            label_lock(lb);
            note_expiry(lb, names[i], until);
            label_unlock(lb);
        } else if (hb == 1 && i == n - 1) {
            label_lock(lb);
            label_set_status(lb,
                             "the lease of the task on screen expired; its label will not count");
            label_wake_ui(lb);
            label_unlock(lb);
        } else if (hb == 1) {
            label_lock(lb);
            for (size_t k = 0; k < lb->nqueue; k++) {
                if (strcmp(lb->queue[k].lease, names[i]) == 0) {
                    label_set_status(lb, "task %lld: its lease expired; moving on",
                                     (long long)lb->queue[k].task_id);
                    label_task_free(&lb->queue[k]);
                    memmove(&lb->queue[k], &lb->queue[k + 1],
                            (lb->nqueue - k - 1) * sizeof *lb->queue);
                    lb->nqueue--;
                    label_wake_ui(lb);
                    break;
                }
            }
            label_unlock(lb);
        }
        free(names[i]);
    }
    free(names);
}

/*
 * Undoes the last acknowledged submit, if its lease allows: on success the
 * task comes back at the head of the queue on the new lease, flagged for the
 * UI to show at once.
 */
static void undo(label_t *lb, agent_sess_t *s)
{
    label_lock(lb);
    if (label_undo_refused(lb)) {
        label_wake_ui(lb);
        label_unlock(lb);
        return;
    }
    int64_t id = lb->last.annotation_id, task = lb->last.task_id;
    char *label = qr_xstrdup(lb->last.label);
    label_unlock(lb);
    uint64_t spooled = 0;
    if (agent_spool_action(&lb->ag, "undo", NULL, task, id, &spooled) < 0) {
        free(label);
        return; /* fatal: the UI leaves */
    }

    char *path = qr_xasprintf(QR_API_UNDO("%lld", "%lld"), lb->ag.project, (long long)id);
    json_t *body = json_object();
    json_t *ans = NULL;
    int r = agent_request(s, "POST", path, body, &ans, 0);
    json_decref(body);
    free(path);
    /* Answered for good: the undo leaves the spool. */
    if (r == 0 || (r == AGENT_FAILED && (s->call.status == 404 || s->call.status == 409)))
        (void)agent_unspool(&lb->ag, spooled); /* a failure is fatal: the UI leaves */
    label_lock(lb);
    if (r == 0) {
        if (lb->last.annotation_id == id)
            label_last_clear(&lb->last);
        json_t *l = json_object_get(ans, "lease");
        char *name = agent_lease_name(l);
        if (!name) {
            label_set_status(lb,
                             "task %lld: label %s undone; the task will come back from the queue",
                             (long long)task, label);
        } else {
            json_int_t tid = json_integer_value(json_object_get(l, "task_id"));
            task_t t = {.lease = name,
                        .task_id = tid ? tid : task,
                        .data = json_incref(json_object_get(l, "data")),
                        .prediction = agent_lease_prediction(l),
                        .expires_ms = json_integer_value(json_object_get(l, "expires_at_ms")),
                        .prev_label = qr_xstrdup(label)};
            lb->queue = qr_xrealloc(lb->queue, (lb->nqueue + 1) * sizeof *lb->queue);
            memmove(&lb->queue[1], &lb->queue[0], lb->nqueue * sizeof *lb->queue);
            lb->queue[0] = t;
            lb->nqueue++;
            lb->undo_ready = 1;
            label_set_status(lb, "task %lld: label %s undone; choose again", (long long)t.task_id,
                             label);
        }
    } else if (r == AGENT_FAILED && s->call.status == 409) {
        if (lb->last.annotation_id == id)
            label_last_clear(&lb->last);
        label_set_status(lb, "too late to undo: task %lld's lease has ended (label %s kept)",
                         (long long)task, label);
    } else if (r == AGENT_FAILED) {
        label_set_status(lb, "undo: %s", s->call.message);
        if (s->call.status == 401 || s->call.status == 403 ||
            agent_exit_code(&s->call) == QR_EXIT_TLS)
            agent_fatal(&lb->ag, agent_exit_code(&s->call));
    }
    label_wake_ui(lb);
    label_unlock(lb);
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
        r = agent_send_result(s, a->spool_id, a->task.lease, a->value, a->idem, a->active_ms,
                              &annotation);
        label_lock(lb);
        if ((r == 0 || r == 1) && a->spool_id)
            lb->unacked--; /* stored, or refused for good: no longer on disk */
        label_last_clear(&lb->last);
        lb->unstored_task = 0;
        if (r == 0 && annotation > 0) {
            lb->last.annotation_id = annotation;
            lb->last.task_id = a->task.task_id;
            lb->last.expires_ms = a->task.expires_ms;
            lb->last.label = agent_value_text(a->value);
        } else {
            lb->unstored_task = a->task.task_id;
            lb->unstored_why = r == 0   ? "has no annotation id in the broker's answer"
                               : r == 1 ? "was not stored"
                               : r == AGENT_STOPPED
                                   ? "is still only in the spool (not acknowledged)"
                                   : "was not acknowledged";
        }
        if (r == 1) /* the broker's reason: for a schema's 422, "<field>: <why>" */
            label_set_status(lb, "task %lld: not stored (see the .rejected file): %s",
                             (long long)a->task.task_id, s->call.message);
        else if (r < 0 && r != AGENT_STOPPED)
            label_set_status(lb, "task %lld: %s", (long long)a->task.task_id, s->call.message);
        label_unlock(lb);
    } else {
        r = agent_release_spooled(s, a->spool_id, a->task.lease,
                                  a->kind == ACT_SKIP ? "skipped in the terminal"
                                                      : "released in the terminal",
                                  a->kind == ACT_SKIP);
        label_lock(lb);
        if (r == AGENT_FAILED)
            label_set_status(lb, "task %lld: %s", (long long)a->task.task_id, s->call.message);
        if (r != 0 && a->kind == ACT_RELEASE && lb->quitting)
            lb->not_returned++;
        label_unlock(lb);
    }
}

void *label_net_main(void *arg)
{
    label_t *lb = arg;
    agent_sess_t s;
    int64_t next_beat = 0, next_progress = 0, next_fetch = 0;
    int64_t beat_every = lb->ag.lease_ttl_ms / 3 > 200 ? lb->ag.lease_ttl_ms / 3 : 200;

    if (agent_sess_init(&s, &lb->ag) < 0) {
        label_lock(lb);
        agent_fatal(&lb->ag, QR_EXIT_ERROR);
        lb->quitting = 1;
        label_wake_ui(lb);
        label_unlock(lb);
        return NULL;
    }
    label_lock(lb);
    for (;;) {
        if (lb->nactions) {
            action_t a = lb->actions[0];
            memmove(&lb->actions[0], &lb->actions[1], (lb->nactions - 1) * sizeof *lb->actions);
            lb->nactions--;
            lb->busy = 1;
            lb->doing = a.kind;
            lb->doing_task = a.task.task_id;
            label_unlock(lb);
            carry_out(lb, &s, &a);
            label_task_free(&a.task);
            json_decref(a.value);
            next_progress = 0;
            label_lock(lb);
            lb->busy = 0;
            label_wake_ui(lb);
            continue;
        }
        if (lb->quitting)
            break;
        int64_t now = qr_mono_ms();
        int want = lb->opt->prefetch + 1 - (int)lb->nqueue;
        int complete = lb->complete || lb->paused;
        label_unlock(lb);
        if (want > 0 && !complete && now >= next_fetch && !*lb->ag.stop) {
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
        label_lock(lb);
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
    /* Quitting: give back every lease still queued (the UI raises the stop
     * flag when that takes too long: those left expire on their own). */
    while (lb->nqueue) {
        task_t t = lb->queue[--lb->nqueue];
        label_unlock(lb);
        int r = agent_release(&s, t.lease, "annotator quit", 0);
        label_lock(lb);
        if (r != 0)
            lb->not_returned++;
        if (r == AGENT_FAILED)
            label_set_status(lb, "cannot release lease %s: %s", t.lease, s.call.message);
        label_task_free(&t);
    }
    lb->net_done = 1;
    label_wake_ui(lb);
    label_unlock(lb);
    agent_sess_free(&s);
    return NULL;
}
