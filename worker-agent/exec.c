/*
 * exec.c - `quorum-agent exec`: a bridge that lets any program label tasks.
 *
 * N worker threads (--concurrency) each lease one task at a time, hand it to
 * CMD and submit CMD's answer through the spool. One-shot mode runs CMD once
 * per task: the task JSON on its stdin (then EOF), the result JSON on its
 * stdout until EOF, exit status 0. With --persistent each worker keeps one
 * CMD running and speaks JSON lines: one task line in, one result line out.
 *
 * CMD runs in its own process group, with the default signal dispositions,
 * and nothing of ours but stdin/stdout/stderr (every descriptor we open is
 * close-on-exec). A worker talks to it with poll() over non-blocking pipes,
 * so a CMD that neither reads nor writes cannot block us; it beats the
 * lease's heartbeat every TTL/3 meanwhile. A timeout, a non-zero exit, a
 * crash, or output that is not {"label": <one of the choices>} ends with the
 * whole process group killed and reaped, and the lease released with the
 * reason; a task that fails --attempts times on this agent is skipped
 * instead, so one poisonous task cannot loop for ever. Every child is waited
 * for: no zombie outlives its task.
 */
#include "exec.h"

#include "protocol.h"
#include "session.h"
#include "task_view.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Largest answer accepted from CMD (bytes). */
#define MAX_OUTPUT (16u * 1024 * 1024)
/* How long to wait for CMD to exit after it closed stdout (ms). */
#define EXIT_GRACE_MS 2000

typedef struct failure_s {
    int64_t task_id; /* task that failed on this agent */
    int count;       /* how many times */
} failure_t;

typedef struct exec_run_s {
    const qr_exec_options_t *opt;
    agent_t ag;
    failure_t *failures; /* guarded by ag.lock */
    size_t nfailures;
    atomic_int complete;       /* a worker saw project_complete */
    atomic_int paused;         /* a worker saw 409 project_paused: lease no more */
    atomic_llong last_work_ms; /* monotonic time a task was last leased */
} exec_run_t;

typedef struct child_s {
    pid_t pid;    /* -1 when none */
    int in_fd;    /* our end of CMD's stdin, -1 once closed */
    int out_fd;   /* our end of CMD's stdout, -1 once closed */
    qr_buf_t out; /* what CMD wrote and we have not consumed */
} child_t;

typedef struct worker_s {
    exec_run_t *run;
    int index;
    agent_sess_t sess;
    child_t child;
    pthread_t thread;
    int started;
} worker_t;

static volatile sig_atomic_t stop_flag;

static void on_stop(int signo)
{
    (void)signo;
    stop_flag = 1;
}

static void child_init(child_t *c)
{
    c->pid = -1;
    c->in_fd = c->out_fd = -1;
    qr_buf_init(&c->out);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd); /* a pipe end: nothing buffered to lose */
    *fd = -1;
}

/*
 * Starts CMD with pipes for stdin and stdout. Returns 0, or -1 with a reason
 * in err.
 */
static int child_start(child_t *c, char *const argv[], char *err, size_t err_size)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0, rc;
    sigset_t def, none;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        goto fail;
    }
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        snprintf(err, err_size, "posix_spawn_file_actions_init: %s", strerror(rc));
        goto fail;
    }
    fa_ok = 1;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        snprintf(err, err_size, "posix_spawnattr_init: %s", strerror(rc));
        goto fail;
    }
    attr_ok = 1;
    /* dup2 clears close-on-exec on the copies; the originals close at exec. */
    sigfillset(&def);
    sigemptyset(&none);
    if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0 ||
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETSIGMASK)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr, &def)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) {
        snprintf(err, err_size, "posix_spawn setup: %s", strerror(rc));
        goto fail;
    }
    rc = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, environ);
    if (rc != 0) {
        c->pid = -1;
        snprintf(err, err_size, "cannot run %s: %s", argv[0], strerror(rc));
        goto fail;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&in[0]);
    close_fd(&out[1]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    if (fcntl(c->in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(c->out_fd, F_SETFL, O_NONBLOCK) < 0) {
        snprintf(err, err_size, "fcntl: %s", strerror(errno));
        return -1; /* the caller kills and reaps the child */
    }
    qr_buf_reset(&c->out);
    return 0;
fail:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    return -1;
}

/* Waits for CMD until deadline (monotonic ms). Returns 1 with *status when
 * it exited, 0 if it is still running at the deadline. */
static int child_wait(child_t *c, int64_t deadline, int *status)
{
    for (;;) {
        pid_t p = waitpid(c->pid, status, WNOHANG);
        if (p == c->pid || (p < 0 && errno == ECHILD)) {
            c->pid = -1;
            return 1;
        }
        if (p < 0 && errno != EINTR)
            return 0;
        if (qr_mono_ms() >= deadline)
            return 0;
        (void)poll(NULL, 0, 5);
    }
}

/* Kills CMD's whole process group, reaps it, and closes the pipes. */
static void child_kill(child_t *c)
{
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    if (c->pid > 0) {
        int status;
        if (kill(-c->pid, SIGKILL) < 0 && errno != ESRCH)
            (void)kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
        c->pid = -1;
    }
    qr_buf_reset(&c->out);
}

static void child_free(child_t *c)
{
    child_kill(c);
    qr_buf_free(&c->out);
}

/*
 * Sends request to CMD and collects its answer: in one-shot mode until EOF,
 * then the exit status; in persistent mode one line. Beats the lease's
 * heartbeat meanwhile. Returns 0 with the answer in *answer (heap), or -1
 * with the reason in why (the caller kills CMD).
 */
static int exchange(worker_t *w, const char *lease, const char *request, size_t len, char **answer,
                    char *why, size_t why_size)
{
    exec_run_t *run = w->run;
    child_t *c = &w->child;
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
            return -1;
        }
        if (now >= deadline) {
            snprintf(why, why_size, "timed out after %lld ms", (long long)opt->timeout_ms);
            return -1;
        }
        if (now >= next_beat) {
            int hb = agent_heartbeat(&w->sess, lease);
            if (hb == 1) {
                snprintf(why, why_size, "lease expired while the command ran");
                return -1;
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
            return -1;
        }
        if (iw >= 0 && (pf[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t k = write(c->in_fd, request + woff, len - woff);
            if (k >= 0) {
                woff += (size_t)k;
            } else if (errno == EPIPE) {
                close_fd(&c->in_fd); /* CMD does not read its input: its choice */
                woff = len;
            } else if (errno != EAGAIN && errno != EINTR) {
                snprintf(why, why_size, "writing to the command: %s", strerror(errno));
                return -1;
            }
        }
        if (woff >= len && !opt->persistent)
            close_fd(&c->in_fd); /* end of the task: EOF on CMD's stdin */
        if (pf[ir].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[65536];
            ssize_t k = read(c->out_fd, chunk, sizeof chunk);
            if (k > 0) {
                if (c->out.len + (size_t)k > MAX_OUTPUT) {
                    snprintf(why, why_size, "output over %u bytes", MAX_OUTPUT);
                    return -1;
                }
                qr_buf_append(&c->out, chunk, (size_t)k);
            } else if (k == 0) {
                eof = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                snprintf(why, why_size, "reading from the command: %s", strerror(errno));
                return -1;
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
                return 0;
            }
            if (eof) {
                int status = 0;
                if (child_wait(c, qr_mono_ms() + EXIT_GRACE_MS, &status) && WIFSIGNALED(status))
                    snprintf(why, why_size, "command killed by signal %d without answering",
                             WTERMSIG(status));
                else if (c->pid < 0)
                    snprintf(why, why_size, "command exited with status %d without answering",
                             WEXITSTATUS(status));
                else
                    snprintf(why, why_size, "command closed its output without answering");
                return -1;
            }
        }
    }
    /* One-shot: the answer is complete; the exit status decides. */
    int status = 0;
    int64_t grace = qr_mono_ms() + EXIT_GRACE_MS;
    if (!child_wait(c, grace < deadline ? grace : deadline, &status)) {
        snprintf(why, why_size, "command closed its output but did not exit");
        return -1;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, why_size, "command killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, why_size, "command exited with status %d", WEXITSTATUS(status));
        return -1;
    }
    *answer = qr_xstrndup(c->out.data ? c->out.data : "", c->out.len);
    qr_buf_reset(&c->out);
    return 0;
}

/* Counts one more failure of task_id on this agent; returns the count. */
static int count_failure(exec_run_t *run, int64_t task_id)
{
    int n = 0;
    if (pthread_mutex_lock(&run->ag.lock) != 0)
        abort();
    for (size_t i = 0; i < run->nfailures; i++) {
        if (run->failures[i].task_id == task_id) {
            n = ++run->failures[i].count;
            break;
        }
    }
    if (!n) {
        run->failures = qr_xrealloc(run->failures, (run->nfailures + 1) * sizeof *run->failures);
        run->failures[run->nfailures++] = (failure_t){task_id, 1};
        n = 1;
    }
    pthread_mutex_unlock(&run->ag.lock);
    return n;
}

/* Copies s into dst as one printable line. */
static void one_line(char *dst, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        dst[i] = (unsigned char)s[i] < ' ' ? ' ' : s[i];
    dst[i] = '\0';
}

/*
 * Validates CMD's answer. Returns 0 with *label (borrowed from root) for a
 * label, 1 with *reason for {"skip": true, "reason": ...}, -1 with why.
 */
static int parse_answer(exec_run_t *run, json_t *root, const char *text, const char **label,
                        const char **reason, char *why, size_t why_size)
{
    char shown[80];
    one_line(shown, sizeof shown, text);
    if (!json_is_object(root)) {
        snprintf(why, why_size, "invalid JSON from the command: '%s'", shown);
        return -1;
    }
    if (json_is_true(json_object_get(root, "skip"))) {
        *reason = json_string_value(json_object_get(root, "reason"));
        return 1;
    }
    *label = json_string_value(json_object_get(root, "label"));
    if (!*label) {
        snprintf(why, why_size, "the command's answer has no \"label\" string: '%s'", shown);
        return -1;
    }
    if (!agent_label_known(&run->ag, *label)) {
        one_line(shown, sizeof shown, *label);
        snprintf(why, why_size, "the command answered label '%s', not one of the project's", shown);
        return -1;
    }
    return 0;
}

/* Gives the lease back after a failure: released, or skipped once the task
 * has failed --attempts times here. */
static void give_back(worker_t *w, const char *lease, int64_t task_id, const char *why)
{
    exec_run_t *run = w->run;
    int n = count_failure(run, task_id);
    int skip = n >= run->opt->attempts;
    char *reason = qr_xasprintf("exec: %s%s", why, skip ? " (again; skipped)" : "");
    fprintf(stderr, "quorum-agent: task %lld: %s; %s the lease\n", (long long)task_id, why,
            skip ? "skipping" : "releasing");
    int r = agent_release(&w->sess, lease, reason, skip);
    if (r == AGENT_FAILED)
        fprintf(stderr, "quorum-agent: task %lld: cannot %s the lease: %s\n", (long long)task_id,
                skip ? "skip" : "release", w->sess.call.message);
    free(reason);
}

/* Works on one leased task. */
static void work_on(worker_t *w, json_t *l)
{
    exec_run_t *run = w->run;
    char *lease = agent_lease_name(l);
    int64_t task_id = json_integer_value(json_object_get(l, "task_id"));
    char why[512];
    char *answer = NULL;
    json_t *root = NULL;

    if (!lease)
        return; /* unusable; it expires on the broker */
    json_t *labels = json_array();
    for (size_t i = 0; labels && i < run->ag.nlabels; i++)
        json_array_append_new(labels, json_string(run->ag.labels[i]));
    json_t *data = qr_task_visible_data(json_object_get(l, "data")); /* task_view.h */
    json_t *task = json_pack("{s:I, s:s, s:I, s:o, s:o}", "project", (json_int_t)run->ag.project,
                             "lease", lease, "task_id", (json_int_t)task_id, "labels", labels,
                             "data", data ? data : json_null());
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    json_decref(task);
    if (!text) {
        give_back(w, lease, task_id, "cannot encode the task");
        free(lease);
        return;
    }
    qr_buf_t req;
    qr_buf_init(&req);
    qr_buf_appends(&req, text);
    qr_buf_appends(&req, "\n");
    free(text);

    int64_t start = qr_mono_ms();
    if (w->child.pid < 0 &&
        child_start(&w->child, (char *const *)run->opt->argv, why, sizeof why) < 0) {
        child_kill(&w->child);
        give_back(w, lease, task_id, why);
        goto out;
    }
    if (exchange(w, lease, req.data, req.len, &answer, why, sizeof why) < 0) {
        child_kill(&w->child);
        if (stop_flag) {
            if (agent_release(&w->sess, lease, "agent stopped", 0) == AGENT_FAILED)
                fprintf(stderr, "quorum-agent: cannot release lease %s: %s\n", lease,
                        w->sess.call.message);
        } else {
            give_back(w, lease, task_id, why);
        }
        goto out;
    }
    if (!run->opt->persistent)
        child_kill(&w->child); /* already reaped; closes the pipes */
    int64_t active = qr_mono_ms() - start;

    json_error_t jerr;
    const char *label = NULL, *reason = NULL;
    root = json_loads(answer, 0, &jerr);
    int p = parse_answer(run, root, answer, &label, &reason, why, sizeof why);
    if (p < 0) {
        give_back(w, lease, task_id, why);
    } else if (p == 1) {
        char *r = qr_xasprintf("exec: %s", reason ? reason : "skipped by the command");
        if (agent_release(&w->sess, lease, r, 1) == AGENT_FAILED)
            fprintf(stderr, "quorum-agent: cannot skip lease %s: %s\n", lease,
                    w->sess.call.message);
        free(r);
    } else {
        (void)agent_submit(&w->sess, lease, task_id, label, active);
    }
out:
    json_decref(root);
    free(answer);
    qr_buf_free(&req);
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
    child_kill(&w->child);
    free(path);
    return NULL;
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
        child_init(&w->child);
        if (agent_sess_init(&w->sess, &run.ag) < 0) {
            agent_fatal(&run.ag, QR_EXIT_ERROR);
            break;
        }
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
        child_free(&workers[i].child);
    }
    fprintf(stderr,
            "quorum-agent: exec: %ld submitted (%ld replayed), %ld released, %ld skipped, %ld "
            "rejected%s\n",
            run.ag.submitted, run.ag.replayed, run.ag.released, run.ag.skipped, run.ag.rejected,
            atomic_load(&run.complete) ? "; project complete" : "");
    rc = atomic_load(&run.ag.fatal);
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
