/*
 * exec.c - `quorum-agent exec`: a bridge that lets any program label tasks.
 *
 * N worker threads (--concurrency) each lease one task at a time, hand it to
 * CMD and submit CMD's answer through the spool. One-shot mode runs CMD once
 * per task: the task JSON on its stdin (then EOF), the result JSON on its
 * stdout until EOF, exit status 0. With --persistent each worker keeps one
 * CMD running and speaks JSON lines: one task line in, one result line out.
 *
 * CMD's process is exec_child.c's. A worker talks to it with poll() over
 * non-blocking pipes, so a CMD that neither reads nor writes cannot block us;
 * it beats the lease's heartbeat every TTL/3 meanwhile.
 *
 * For a project with a label schema (issue 15) the task also carries
 * "schema" (the project's, as the broker gives it) and CMD answers
 * {"labels": {"<field>": value, ...}}; {"labels": ...} is accepted for plain
 * projects too, and {"label": ...} for a schema whose one field is a choice
 * (the broker decides). The agent checks only the answer's shape and, for a
 * plain {"label": ...}, the choice; the broker validates every value and
 * its 422 ("<field>: <reason>") is the reason given.
 *
 * A CMD that cannot be started, exits non-zero or crashes, gives no answer
 * within --timeout-ms, or answers something that is not a valid result
 * (not JSON, no label, a label outside the project's choices, or one the
 * broker refuses with 422) has failed: its process group is killed and
 * reaped and the lease is released with the reason (never skipped: the task
 * goes back to the queue, for another annotator or a later run). A valid
 * answer resets the count. --max-failures failures in a row (all workers
 * together), or --attempts failures of one task (a released task comes
 * back, so a task that breaks CMD would otherwise return for ever), stop
 * exec: every lease in hand is released, results already spooled stay
 * spooled and are sent as always, and one line names the cause; the exit
 * status is QR_EXIT_COMMAND. A lease is skipped only when CMD answers
 * {"skip": true}.
 */
#include "exec.h"

#include "cli.h"
#include "exec_child.h"
#include "protocol.h"
#include "session.h"
#include "task_view.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Largest answer accepted from CMD (bytes). */
#define MAX_OUTPUT (16u * 1024 * 1024)
/* How long to wait for CMD to exit after it closed stdout (ms). */
#define EXIT_GRACE_MS 2000

/* How CMD did on one task. */
typedef enum {
    CMD_OK,          /* a valid answer */
    CMD_NOT_STARTED, /* these four are failures of CMD: they count */
    CMD_FAILED,
    CMD_TIMED_OUT,
    CMD_INVALID,
    CMD_NOT_COUNTED /* not CMD's doing: the agent stopped, the lease ended */
} cmd_outcome_t;

/* "CMD <verb> (detail)" for each outcome that counts. */
static const char *const outcome_verbs[] = {
    [CMD_NOT_STARTED] = "could not be started",
    [CMD_FAILED] = "failed",
    [CMD_TIMED_OUT] = "timed out",
    [CMD_INVALID] = "gave an invalid result",
};

/* Failures counted together: in a row, or of one task. */
typedef struct tally_s {
    int count;          /* how many */
    cmd_outcome_t kind; /* of the last one */
    int mixed;          /* not all of one kind */
} tally_t;

typedef struct failure_s {
    int64_t task_id; /* task that failed on this agent */
    tally_t tally;   /* its failures here */
} failure_t;

typedef struct exec_run_s {
    const qr_exec_options_t *opt;
    agent_t ag;
    failure_t *failures; /* guarded by ag.lock, like the next three */
    size_t nfailures;
    tally_t in_a_row;          /* failures since the last valid answer */
    char cause[1024];          /* why exec stops ("" while it does not) */
    atomic_int complete;       /* a worker saw project_complete */
    atomic_int paused;         /* a worker saw 409 project_paused: lease no more */
    atomic_llong last_work_ms; /* monotonic time a task was last leased */
} exec_run_t;

typedef struct worker_s {
    exec_run_t *run;
    int index;
    agent_sess_t sess;
    exec_child_t child;
    pthread_t thread;
    int started;
} worker_t;

static volatile sig_atomic_t stop_flag;

static void on_stop(int signo)
{
    (void)signo;
    stop_flag = 1;
}

/*
 * Sends request to CMD and collects its answer: in one-shot mode until EOF,
 * then the exit status; in persistent mode one line. Beats the lease's
 * heartbeat meanwhile. Returns CMD_OK with the answer in *answer (heap), or
 * another outcome with the reason in why (the caller kills CMD).
 */
static cmd_outcome_t exchange(worker_t *w, const char *lease, const char *request, size_t len,
                              char **answer, char *why, size_t why_size)
{
    exec_run_t *run = w->run;
    exec_child_t *c = &w->child;
    const qr_exec_options_t *opt = run->opt;
    int64_t start = qr_mono_ms();
    int64_t deadline = start + opt->timeout_ms;
    int64_t beat_every = run->ag.lease_ttl_ms / 3 > 200 ? run->ag.lease_ttl_ms / 3 : 200;
    int64_t next_beat = start + beat_every;
    size_t woff = 0, scanned = 0;
    int eof = 0;

    *answer = NULL;
    while (!eof) {
        int64_t now = qr_mono_ms();
        if (stop_flag) {
            snprintf(why, why_size, "agent stopped");
            return CMD_NOT_COUNTED;
        }
        if (now >= deadline) {
            snprintf(why, why_size, "no answer within %lld ms", (long long)opt->timeout_ms);
            return CMD_TIMED_OUT;
        }
        if (now >= next_beat) {
            int hb = agent_heartbeat(&w->sess, lease);
            if (hb == 1) {
                snprintf(why, why_size, "the lease expired while the command ran");
                return CMD_NOT_COUNTED;
            }
            /* A failed heartbeat (network) is tried again at the next beat. */
            next_beat = now + beat_every;
        }
        struct pollfd pf[2];
        int n = 0, iw = -1;
        if (c->in_fd >= 0 && woff < len) {
            pf[n] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT};
            iw = n++;
        }
        int ir = n;
        pf[n++] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
        int64_t until = deadline < next_beat ? deadline : next_beat;
        int64_t wait = until - now;
        if (wait > 100)
            wait = 100;
        if (poll(pf, (nfds_t)n, (int)wait) < 0 && errno != EINTR) {
            snprintf(why, why_size, "poll: %s", strerror(errno));
            return CMD_FAILED;
        }
        if (iw >= 0 && (pf[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t k = write(c->in_fd, request + woff, len - woff);
            if (k >= 0) {
                woff += (size_t)k;
            } else if (errno == EPIPE) {
                exec_close_fd(&c->in_fd); /* CMD does not read its input: its choice */
                woff = len;
            } else if (errno != EAGAIN && errno != EINTR) {
                snprintf(why, why_size, "writing to it: %s", strerror(errno));
                return CMD_FAILED;
            }
        }
        if (woff >= len && !opt->persistent)
            exec_close_fd(&c->in_fd); /* end of the task: EOF on CMD's stdin */
        if (pf[ir].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[65536];
            ssize_t k = read(c->out_fd, chunk, sizeof chunk);
            if (k > 0) {
                if (c->out.len + (size_t)k > MAX_OUTPUT) {
                    snprintf(why, why_size, "an answer over %u bytes", MAX_OUTPUT);
                    return CMD_INVALID;
                }
                qr_buf_append(&c->out, chunk, (size_t)k);
            } else if (k == 0) {
                eof = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                snprintf(why, why_size, "reading from it: %s", strerror(errno));
                return CMD_FAILED;
            }
        }
        if (opt->persistent) {
            char *nl = c->out.len > scanned
                           ? memchr(c->out.data + scanned, '\n', c->out.len - scanned)
                           : NULL;
            scanned = c->out.len;
            if (nl) {
                size_t line = (size_t)(nl - c->out.data);
                *answer = qr_xstrndup(c->out.data, line);
                /* Keep what follows the line for the next task. */
                memmove(c->out.data, nl + 1, c->out.len - line - 1);
                c->out.len -= line + 1;
                c->out.data[c->out.len] = '\0';
                return CMD_OK;
            }
            if (eof) {
                int status = 0;
                if (exec_child_wait(c, qr_mono_ms() + EXIT_GRACE_MS, &status) &&
                    WIFSIGNALED(status))
                    snprintf(why, why_size, "killed by signal %d: %s, without answering",
                             WTERMSIG(status), strsignal(WTERMSIG(status)));
                else if (c->pid < 0)
                    snprintf(why, why_size, "exited with status %d without answering",
                             WEXITSTATUS(status));
                else
                    snprintf(why, why_size, "closed its output without answering");
                return CMD_FAILED;
            }
        }
    }
    /* One-shot: the answer is complete; the exit status decides. */
    int status = 0;
    int64_t grace = qr_mono_ms() + EXIT_GRACE_MS;
    if (!exec_child_wait(c, grace < deadline ? grace : deadline, &status)) {
        snprintf(why, why_size, "closed its output but did not exit");
        return CMD_FAILED;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, why_size, "killed by signal %d: %s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        return CMD_FAILED;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, why_size, "exited with status %d", WEXITSTATUS(status));
        return CMD_FAILED;
    }
    *answer = qr_xstrndup(c->out.data ? c->out.data : "", c->out.len);
    qr_buf_reset(&c->out);
    return CMD_OK;
}

/* Copies s into dst as one printable line, without trailing blanks. */
static void one_line(char *dst, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        dst[i] = (unsigned char)s[i] < ' ' ? ' ' : s[i];
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

/*
 * Validates CMD's answer. Returns 0 with *value (borrowed from root: the
 * "label" string or the "labels" object) for a result, 1 with *reason for
 * {"skip": true, "reason": ...}, -1 with why.
 */
static int parse_answer(exec_run_t *run, json_t *root, const char *text, json_t **value,
                        const char **reason, char *why, size_t why_size)
{
    char shown[80];
    one_line(shown, sizeof shown, text);
    if (!json_is_object(root)) {
        snprintf(why, why_size, "invalid JSON: '%s'", shown);
        return -1;
    }
    if (json_is_true(json_object_get(root, "skip"))) {
        *reason = json_string_value(json_object_get(root, "reason"));
        return 1;
    }
    json_t *labels = json_object_get(root, "labels");
    if (labels && !json_is_object(labels)) {
        snprintf(why, why_size, "\"labels\" is not an object in '%s'", shown);
        return -1;
    }
    if (labels) {
        *value = labels; /* the broker validates it */
        return 0;
    }
    *value = json_object_get(root, "label");
    const char *label = json_string_value(*value);
    if (!label) {
        snprintf(why, why_size,
                 run->ag.schema ? "no \"labels\" object in '%s'" : "no \"label\" string in '%s'",
                 shown);
        return -1;
    }
    if (!run->ag.schema && !agent_label_known(&run->ag, label)) {
        qr_buf_t known;
        qr_buf_init(&known);
        for (size_t i = 0; i < run->ag.nlabels && known.len < 200; i++)
            qr_buf_appendf(&known, "%s%s", i ? ", " : "", run->ag.labels[i]);
        one_line(shown, sizeof shown, label);
        snprintf(why, why_size, "label '%s' is not one of the project's: %s", shown,
                 known.data ? known.data : "");
        qr_buf_free(&known);
        return -1;
    }
    return 0;
}

static void tally_add(tally_t *t, cmd_outcome_t kind)
{
    t->mixed |= t->count > 0 && t->kind != kind;
    t->kind = kind;
    t->count++;
}

/* The one line that names why exec stops: "./x.py could not be started 3
 * times in a row (No such file or directory)"; where: "in a row", "on task
 * 5"; detail: the reason of the last failure. */
static void say_cause(char *dst, size_t size, const char *cmd, const tally_t *t, const char *where,
                      const char *detail)
{
    if (t->mixed)
        snprintf(dst, size, "%s failed %d times %s (the last time it %s: %s)", cmd, t->count, where,
                 outcome_verbs[t->kind], detail);
    else
        snprintf(dst, size, "%s %s %d times %s (%s)", cmd, outcome_verbs[t->kind], t->count, where,
                 detail);
}

/*
 * Counts a failure of CMD on task_id (kind: an outcome that counts) and
 * returns the failures in a row; names the cause and returns it in stop when
 * this one reaches --max-failures in a row or --attempts on the task (the
 * first cause wins; stop is 1 only for the worker that named it).
 */
static int count_failure(exec_run_t *run, int64_t task_id, cmd_outcome_t kind, const char *why,
                         int *stop)
{
    const qr_exec_options_t *opt = run->opt;
    failure_t *f = NULL;
    if (pthread_mutex_lock(&run->ag.lock) != 0)
        abort();
    for (size_t i = 0; i < run->nfailures && !f; i++)
        if (run->failures[i].task_id == task_id)
            f = &run->failures[i];
    if (!f) {
        run->failures = qr_xrealloc(run->failures, (run->nfailures + 1) * sizeof *run->failures);
        f = &run->failures[run->nfailures++];
        *f = (failure_t){.task_id = task_id};
    }
    tally_add(&f->tally, kind);
    tally_add(&run->in_a_row, kind);
    int n = run->in_a_row.count;
    *stop = 0;
    if (!run->cause[0] && n >= opt->max_failures) {
        say_cause(run->cause, sizeof run->cause, opt->argv[0], &run->in_a_row, "in a row", why);
        *stop = 1;
    } else if (!run->cause[0] && f->tally.count >= opt->attempts) {
        char where[48];
        snprintf(where, sizeof where, "on task %lld", (long long)task_id);
        say_cause(run->cause, sizeof run->cause, opt->argv[0], &f->tally, where, why);
        *stop = 1;
    }
    pthread_mutex_unlock(&run->ag.lock);
    return n;
}

/* CMD gave a valid answer: the failures in a row start again from 0. */
static void count_success(exec_run_t *run)
{
    if (pthread_mutex_lock(&run->ag.lock) != 0)
        abort();
    run->in_a_row = (tally_t){0};
    pthread_mutex_unlock(&run->ag.lock);
}

/*
 * Releases the lease after outcome (never skips: the task goes back to the
 * queue). A failure of CMD is counted and said in one line; the one that
 * reaches a bound stops exec (QR_EXIT_COMMAND).
 */
static void give_back(worker_t *w, const char *lease, int64_t task_id, cmd_outcome_t outcome,
                      const char *why)
{
    exec_run_t *run = w->run;
    const char *cmd = run->opt->argv[0];
    char *reason;
    if (outcome == CMD_NOT_COUNTED) {
        reason = qr_xasprintf("exec: %s", why);
    } else {
        int stop;
        int n = count_failure(run, task_id, outcome, why, &stop);
        reason = qr_xasprintf("exec: %s %s (%s)", cmd, outcome_verbs[outcome], why);
        fprintf(stderr,
                "quorum-agent: task %lld: %s %s (%s); releasing the lease (%d failure%s in a "
                "row, exec stops at %d)\n",
                (long long)task_id, cmd, outcome_verbs[outcome], why, n, n == 1 ? "" : "s",
                run->opt->max_failures);
        if (stop)
            agent_fatal(&run->ag, QR_EXIT_COMMAND); /* the other workers give theirs back */
    }
    if (agent_release(&w->sess, lease, reason, 0) == AGENT_FAILED)
        fprintf(stderr, "quorum-agent: task %lld: cannot release the lease: %s\n",
                (long long)task_id, w->sess.call.message);
    free(reason);
}

/* Hands the task to CMD. Returns CMD_OK with its answer (heap) in *answer
 * and the time it took in *active_ms, or another outcome with why. */
static cmd_outcome_t ask_command(worker_t *w, json_t *l, const char *lease, int64_t task_id,
                                 char **answer, int64_t *active_ms, char *why, size_t why_size)
{
    exec_run_t *run = w->run;
    json_t *labels = json_array();
    for (size_t i = 0; labels && i < run->ag.nlabels; i++)
        json_array_append_new(labels, json_string(run->ag.labels[i]));
    json_t *data = qr_task_visible_data(json_object_get(l, "data")); /* task_view.h */
    json_t *task = json_pack("{s:I, s:s, s:I, s:o, s:o}", "project", (json_int_t)run->ag.project,
                             "lease", lease, "task_id", (json_int_t)task_id, "labels", labels,
                             "data", data ? data : json_null());
    /* A schema project's fields; plain projects' tasks stay as they were. */
    if (task && run->ag.schema && json_object_set(task, "schema", run->ag.schema) < 0)
        abort(); /* out of memory */
    /* Pre-annotation: the model's prediction, when the project shows it. */
    json_t *prediction = agent_lease_prediction(l);
    if (task && prediction && json_object_set_new(task, "prediction", prediction) < 0)
        abort(); /* out of memory */
    if (!task)
        json_decref(prediction);
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    json_decref(task);
    *answer = NULL;
    if (!text) {
        snprintf(why, why_size, "cannot encode the task");
        return CMD_NOT_COUNTED;
    }
    qr_buf_t req;
    qr_buf_init(&req);
    qr_buf_appends(&req, text);
    qr_buf_appends(&req, "\n");
    free(text);

    int64_t start = qr_mono_ms();
    cmd_outcome_t o = CMD_OK;
    if (w->child.pid < 0 &&
        exec_child_start(&w->child, (char *const *)run->opt->argv, why, why_size) < 0)
        o = CMD_NOT_STARTED;
    if (o == CMD_OK)
        o = exchange(w, lease, req.data, req.len, answer, why, why_size);
    if (o != CMD_OK || !run->opt->persistent)
        exec_child_kill(&w->child); /* one-shot: already reaped; closes the pipes */
    *active_ms = qr_mono_ms() - start;
    qr_buf_free(&req);
    return o;
}

/* Works on one leased task. */
static void work_on(worker_t *w, json_t *l)
{
    exec_run_t *run = w->run;
    char *lease = agent_lease_name(l);
    int64_t task_id = json_integer_value(json_object_get(l, "task_id"));
    char why[512];
    char *answer = NULL;
    int64_t active = 0;

    if (!lease)
        return; /* unusable; it expires on the broker */
    cmd_outcome_t o = ask_command(w, l, lease, task_id, &answer, &active, why, sizeof why);
    if (o != CMD_OK) {
        give_back(w, lease, task_id, o, why);
        free(lease);
        return;
    }
    json_error_t jerr;
    const char *reason = NULL;
    json_t *value = NULL;
    json_t *root = json_loads(answer, 0, &jerr);
    int p = parse_answer(run, root, answer, &value, &reason, why, sizeof why);
    if (p < 0) {
        give_back(w, lease, task_id, CMD_INVALID, why);
    } else if (p == 1) {
        count_success(run);
        char *r = qr_xasprintf("exec: %s", reason ? reason : "skipped by the command");
        if (agent_release(&w->sess, lease, r, 1) == AGENT_FAILED)
            fprintf(stderr, "quorum-agent: cannot skip lease %s: %s\n", lease,
                    w->sess.call.message);
        free(r);
    } else {
        count_success(run);
        /* The broker refuses a label it does not know (the labels read at
         * start are then out of date) or a value its schema does not allow
         * with 422, naming the field and why: the lease still lives. */
        if (agent_submit(&w->sess, lease, task_id, value, active) == 1 &&
            w->sess.call.status == 422) {
            snprintf(why, sizeof why, "the broker refused it: %.400s", w->sess.call.message);
            give_back(w, lease, task_id, CMD_INVALID, why);
        }
    }
    json_decref(root);
    free(answer);
    free(lease);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    exec_run_t *run = w->run;
    const qr_exec_options_t *opt = run->opt;
    char *path = qr_xasprintf(QR_API_LEASES("%lld"), run->ag.project);
    int64_t wait_ms = 5000;
    if (opt->idle_exit_ms > 0 && opt->idle_exit_ms < wait_ms)
        wait_ms = opt->idle_exit_ms;

    while (!stop_flag && !atomic_load(&run->complete) && !atomic_load(&run->paused)) {
        json_t *body = json_pack("{s:i, s:I}", "max", 1, "wait_ms", (json_int_t)wait_ms);
        json_t *ans = NULL;
        int r = agent_request(&w->sess, "POST", path, body, &ans, 1);
        json_decref(body);
        if (r == AGENT_STOPPED)
            break;
        if (r < 0 && agent_exit_code(&w->sess.call) == QR_EXIT_PAUSED) {
            /* The other workers finish the task they hold (submits still
             * work) and stop at their next lease request. */
            atomic_store(&run->paused, 1);
            break;
        }
        if (r < 0) {
            fprintf(stderr, "quorum-agent: lease: %s\n", w->sess.call.message);
            agent_fatal(&run->ag, agent_exit_code(&w->sess.call));
            break;
        }
        json_t *leases = json_object_get(ans, "leases");
        if (json_array_size(leases) == 0) {
            if (json_is_true(json_object_get(ans, "project_complete")))
                atomic_store(&run->complete, 1);
            json_decref(ans);
            if (opt->idle_exit_ms > 0 &&
                qr_mono_ms() - atomic_load(&run->last_work_ms) >= opt->idle_exit_ms)
                break;
            continue;
        }
        atomic_store(&run->last_work_ms, qr_mono_ms());
        size_t i;
        json_t *l;
        json_array_foreach(leases, i, l)
        {
            if (stop_flag) {
                char *name = agent_lease_name(l);
                if (name && agent_release(&w->sess, name, "agent stopped", 0) == AGENT_FAILED)
                    fprintf(stderr, "quorum-agent: cannot release lease %s: %s\n", name,
                            w->sess.call.message);
                free(name);
                continue;
            }
            work_on(w, l);
        }
        atomic_store(&run->last_work_ms, qr_mono_ms());
        json_decref(ans);
    }
    exec_child_kill(&w->child);
    free(path);
    return NULL;
}

/* *out = the number value gives, def when it is NULL. Returns 0, or
 * QR_EXIT_USAGE with the error printed. */
static int number_flag(const char *prog, const char *name, const char *value, long long min,
                       long long max, long long def, long long *out)
{
    *out = def;
    if (value && qr_cli_parse_ll(value, min, max, out) < 0)
        return qr_cli_usage_error(prog, "exec ", "exec: %s must be %lld-%lld, not '%s'", name, min,
                                  max, value);
    return 0;
}

int qr_exec_options_set(qr_exec_options_t *opt, const qr_exec_flags_t *f, const char *prog)
{
    long long conc, timeout, attempts, max_failures;
    if (number_flag(prog, "--concurrency", f->concurrency, 1, 256, 1, &conc) ||
        number_flag(prog, "--timeout-ms", f->timeout_ms, 1, 86400000, 60000, &timeout) ||
        number_flag(prog, "--attempts", f->attempts, 1, 1000, 3, &attempts) ||
        number_flag(prog, "--max-failures", f->max_failures, 1, 1000, 3, &max_failures))
        return QR_EXIT_USAGE;
    opt->concurrency = (int)conc;
    opt->timeout_ms = timeout;
    opt->attempts = (int)attempts;
    opt->max_failures = (int)max_failures;
    opt->idle_exit_ms = 0;
    if (f->idle_exit) {
        double d;
        if (qr_cli_parse_double(f->idle_exit, 0.001, 1e7, &d) < 0)
            return qr_cli_usage_error(prog, "exec ",
                                      "exec: --idle-exit must be a positive number, not '%s'",
                                      f->idle_exit);
        opt->idle_exit_ms = (int64_t)(d * 1000.0);
    }
    return 0;
}

int qr_exec_run(const qr_exec_options_t *opt, const qr_client_config_t *cfg, qr_spool_t *spool)
{
    exec_run_t run;
    worker_t *workers = NULL;
    int rc = QR_EXIT_ERROR;
    agent_sess_t main_sess;
    int main_ready = 0;

    memset(&run, 0, sizeof run);
    run.opt = opt;
    if (agent_init(&run.ag, cfg, &stop_flag) < 0)
        return QR_EXIT_ERROR;
    run.ag.project = opt->project;
    run.ag.spool = spool;
    atomic_init(&run.complete, 0);
    atomic_init(&run.paused, 0);
    atomic_init(&run.last_work_ms, qr_mono_ms());

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        fprintf(stderr, "quorum-agent: sigaction: %s\n", strerror(errno));
        goto out;
    }
    json_object_seed(0); /* before any thread creates objects */

    if (agent_sess_init(&main_sess, &run.ag) < 0)
        goto out;
    main_ready = 1;
    if (agent_start(&main_sess, 1, &rc) < 0)
        goto out;

    workers = qr_xcalloc((size_t)opt->concurrency, sizeof *workers);
    for (int i = 0; i < opt->concurrency; i++) {
        worker_t *w = &workers[i];
        w->run = &run;
        w->index = i;
        exec_child_init(&w->child);
        if (agent_sess_init(&w->sess, &run.ag) < 0) {
            agent_fatal(&run.ag, QR_EXIT_ERROR);
            break;
        }
        /* When another worker stops exec, a lease request under way ends
         * (within its wait) and what it got is released, not left to expire. */
        w->sess.finish_on_fatal = 1;
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            fprintf(stderr, "quorum-agent: pthread_create: %s\n", strerror(e));
            agent_sess_free(&w->sess);
            agent_fatal(&run.ag, QR_EXIT_ERROR);
            break;
        }
        w->started = 1;
    }
    for (int i = 0; i < opt->concurrency; i++) {
        if (workers[i].started) {
            int e = pthread_join(workers[i].thread, NULL);
            if (e != 0)
                fprintf(stderr, "quorum-agent: pthread_join: %s\n", strerror(e));
            agent_sess_free(&workers[i].sess);
        }
        exec_child_free(&workers[i].child);
    }
    fprintf(stderr,
            "quorum-agent: exec: %ld submitted (%ld replayed), %ld released, %ld skipped, %ld "
            "rejected%s\n",
            run.ag.submitted, run.ag.replayed, run.ag.released, run.ag.skipped, run.ag.rejected,
            atomic_load(&run.complete) ? "; project complete" : "");
    rc = atomic_load(&run.ag.fatal);
    if (rc == QR_EXIT_COMMAND)
        fprintf(stderr, "quorum-agent: stopping: %s; %ld lease%s released\n", run.cause,
                run.ag.released, run.ag.released == 1 ? "" : "s");
    if (!rc && atomic_load(&run.paused)) {
        agent_say_paused(&run.ag, spool && spool->npending
                                      ? "no new task was leased, some results stay spooled"
                                      : "no new task was leased and every result was sent");
        rc = QR_EXIT_PAUSED;
    }
    if (!rc && spool && spool->npending)
        rc = QR_EXIT_PENDING;
out:
    if (main_ready)
        agent_sess_free(&main_sess);
    free(workers);
    free(run.failures);
    agent_free(&run.ag);
    return rc;
}
