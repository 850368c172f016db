/*
 * simulate.c - N virtual annotators over libcurl multi handles: the
 * run's set-up (project, users, spool, ack log), its loop and its summary.
 * The crew model, the libcurl driver and the report are files of their own
 * (sim_int.h lists them); this comment describes the whole.
 *
 * Each annotator owns one easy handle, reused for every request; its
 * connections stay alive in its multi handle's connection cache (a multi
 * handle per 64 annotators, its cache sized to one connection per annotator
 * and broker) between requests. Each annotator is a small state
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
 *         --403 annotator_paused--> BENCHED (the gold gate stopped this
 *                                   one; the others go on)
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
 * that acts, not a scan of the crew. The loop sleeps in epoll_wait until a
 * connection has news, libcurl's timer or the earliest annotator is due, and
 * libcurl then acts on those connections alone (the multi-socket API), so
 * neither side scans the crew.
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
#include "sim_int.h"
#include "sim_open.h"

#include "cli.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Exponential backoff for retried requests: base doubling up to a cap (ms). */
#define RETRY_BASE_MS 50
#define RETRY_MAX_MS  2000

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

/* Fetches the project's label choices, or its label schema (issue 15),
 * with the admin call. Returns 0 or -1. */
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
    json_t *schema = json_object_get(root, "schema");
    size_t n = json_array_size(labels);
    if (json_is_object(schema)) {
        s->schema = json_incref(schema); /* its labels are [] */
    } else if (!json_is_array(labels) || n == 0) {
        fprintf(stderr, "quorum-agent: project %lld: the broker's answer has no labels\n",
                s->opt->project);
        json_decref(root);
        return -1;
    }
    s->labels = qr_xcalloc(n ? n : 1, sizeof *s->labels);
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
    s.epfd = -1;
    s.opt = opt;
    s.cfg = cfg;
    make_configs(&s);
    raise_fd_limit(&s);
    if (qr_random_hex(4, s.run_id) < 0) {
        fprintf(stderr, "quorum-agent: cannot draw random bytes for the run id\n");
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
        a->rng = sim_mix64(opt->seed ^ (uint64_t)(i + 1));
        a->heap_pos = -1;
        a->url = i % s.nurls;
        a->accuracy = opt->accuracy +
                      (opt->accuracy_max - opt->accuracy) *
                          sim_unit(sim_mix64(opt->seed ^ sim_mix64((uint64_t)(i + 1) << 8 | 5)));
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

    if (sim_driver_open(&s, opt->annotators) < 0)
        goto out;
    for (int i = 0; i < opt->annotators; i++) {
        annotator_t *a = &s.ann[i];
        if (qr_client_call_init(&a->call, &s.cfgs[a->url], REQUEST_TIMEOUT_MS) < 0) {
            fprintf(stderr, "quorum-agent: %s\n", a->call.message);
            goto out;
        }
        a->call.data = a;
        a->call_ready = 1;
    }
    sim_install_stop_handlers();
    int64_t setup_start = qr_mono_ms();
    if (sim_create_users(&s) < 0)
        goto out;
    if (opt->idle) { /* no results, so no spool (sim_idle.c) */
        /* The idle crew uses multi handles of its own: the connections
         * the users' creation left in the driver's would stay open beside
         * theirs (with a multi handle per 64 annotators, one per annotator:
         * 20,000 connections for 10,000 agents, past the broker's cap). */
        sim_driver_close(&s);
        rc = sim_idle_run(&s);
        goto out;
    }
    if (opt->use_spool && open_sim_spool(&s, spool_dir, sizeof spool_dir) < 0)
        goto out;
    char what[64];
    if (s.schema)
        snprintf(what, sizeof what, "a label schema of %zu fields",
                 json_array_size(json_object_get(s.schema, "fields")));
    else
        snprintf(what, sizeof what, "%zu labels", s.nlabels);
    fprintf(stderr,
            "quorum-agent: run %s: %d annotators on project %lld (%s), %d broker(s); "
            "users created in %.2f s\n",
            s.run_id, opt->annotators, opt->project, what, s.nurls,
            (double)(qr_mono_ms() - setup_start) / 1000.0);

    if (opt->arrival_rate > 0 || opt->connect_first) {
        int64_t connect_start = qr_mono_ms();
        if (sim_open_connect(&s) < 0)
            goto out;
        /* Benchmarks read this line to take their own CPU figures from here. */
        fprintf(stderr, "quorum-agent: %d annotators connected in %.2f s; the run starts\n",
                opt->annotators, (double)(qr_mono_ms() - connect_start) / 1000.0);
    }
    s.start_ms = qr_mono_ms();
    s.cpu0_us = sim_cpu_us();
    s.setup_seconds = (double)(s.start_ms - setup_start) / 1000.0;
    s.stop_ms = s.start_ms + (int64_t)(opt->duration * 1000.0);
    s.warm_end_ms = s.start_ms + (int64_t)(opt->warmup * 1000.0);
    int loop_rc = sim_run_loop(&s);
    double elapsed = (double)(qr_mono_ms() - s.start_ms) / 1000.0;

    /* Complete: the crew saw project_complete, every annotator but those
     * the gold gate stopped (403 annotator_paused) to the end. */
    int complete = loop_rc == 0 && !s.timed_out && !s.interrupted;
    int finished = complete, done = 0;
    for (int i = 0; i < opt->annotators; i++) {
        state_t st = s.ann[i].state;
        done += st == ST_DONE;
        complete = complete && (st == ST_DONE || st == ST_BENCHED);
        finished = finished && (st == ST_DONE || st == ST_STOPPED || st == ST_BENCHED);
    }
    complete = complete && done > 0;
    sim_print_summary(&s, elapsed, complete);
    rc = complete || (opt->duration > 0 && finished) ? 0 : 1;
    if (rc && s.paused && s.archived && loop_rc == 0 && !s.timed_out && !s.interrupted) {
        fprintf(stderr,
                "quorum-agent: project %lld is archived: it hands out no more tasks; the "
                "annotators finished the tasks they held (exit 8)\n",
                opt->project);
        rc = QR_EXIT_PAUSED;
    } else if (rc && s.paused && loop_rc == 0 && !s.timed_out && !s.interrupted) {
        fprintf(stderr,
                "quorum-agent: project %lld is paused; the annotators finished the tasks they "
                "held; run again once a manager resumes it (exit 8)\n",
                opt->project);
        rc = QR_EXIT_PAUSED;
    }
    if (opt->json_summary && sim_write_summary(&s, opt->json_summary, elapsed, complete) < 0)
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
            if (a->state == ST_BUSY && s.shards) {
                CURLMcode rmc = curl_multi_remove_handle(sim_multi_of(&s, a), a->call.easy);
                if (rmc != CURLM_OK)
                    fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                            curl_multi_strerror(rmc));
            }
            qr_client_call_free(&a->call);
        }
        sim_free_held(a);
        free(a->batch);
        free(a->given_up);
        free(a->name);
        free(a->token);
    }
    sim_driver_close(&s); /* the multi handles, then the epoll set */
    for (size_t i = 0; i < s.nlabels; i++)
        free(s.labels[i]);
    free(s.labels);
    json_decref(s.schema);
    sim_open_free(&s);
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
