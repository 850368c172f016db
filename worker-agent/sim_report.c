/*
 * sim_report.c - what `quorum-agent simulate` prints: a progress line a
 * second on stderr (completions/s, lease p99) and, at the end, the summary
 * on stdout (per annotator counts, totals, latencies, errors by kind) and,
 * with --json-summary, the same as JSON.
 */
#include "sim_int.h"
#include "sim_open.h"

#include <stdio.h>
#include <string.h>

/* Milliseconds, with microsecond precision, from a histogram value in µs. */
static double us_to_ms(uint64_t us)
{
    return (double)us / 1000.0;
}

void sim_print_progress(sim_t *s, int64_t now, long *last_total, int64_t *last_ms)
{
    double secs = (double)(now - s->start_ms) / 1000.0;
    double window = (double)(now - *last_ms) / 1000.0;
    fprintf(stderr,
            "[%6.1fs] submitted %ld  %.1f/s now  %.1f/s avg  lease p99 %.2f ms (%llu)  "
            "annotators active %d/%d\n",
            secs, s->total_submitted,
            window > 0 ? (double)(s->total_submitted - *last_total) / window : 0.0,
            secs > 0 ? (double)s->total_submitted / secs : 0.0,
            us_to_ms(qr_hist_quantile(&s->lease_second, 0.99)),
            (unsigned long long)s->lease_second.count, s->live, s->opt->annotators);
    qr_hist_reset(&s->lease_second);
    *last_total = s->total_submitted;
    *last_ms = now;
}

static const char *state_name(state_t st)
{
    switch (st) {
    case ST_DONE:
        return "done";
    case ST_STOPPED:
        return "stopped";
    case ST_PAUSED:
        return "paused";
    case ST_BENCHED:
        return "paused_by_gold";
    case ST_FAILED:
        return "failed";
    default:
        return "unfinished";
    }
}

/* Seconds from the start to the last stored annotation. */
static double to_last(const sim_t *s)
{
    return s->total_submitted ? (double)(s->last_submit_ms - s->start_ms) / 1000.0 : 0.0;
}

/* Seconds from the first to the last stored annotation: the working time
 * as `quorumctl report` defines it (broker/store/sql_work.h) for a run
 * without pauses over 5 minutes, on this process's clock. */
static double working(const sim_t *s)
{
    return s->total_submitted > 1 ? (double)(s->last_submit_ms - s->first_submit_ms) / 1000.0 : 0.0;
}

/* Completions per second over the working time: annotations / working
 * time, the definition `quorumctl report` uses, so the two agree up to the
 * clocks (the broker stamps an annotation when it stores it, this process
 * when the answer arrives). The time before the first annotation (leases,
 * the first think) is set-up, not work. */
static double rate(const sim_t *s)
{
    double span = working(s);
    return span > 0 ? (double)s->total_submitted / span : 0.0;
}

/* {"p50", "p99", "p999", "n"} in ms from a histogram in µs. */
static json_t *latency_json(const qr_hist_t *h)
{
    return json_pack("{s:f, s:f, s:f, s:I}", "p50", us_to_ms(qr_hist_quantile(h, 0.50)), "p99",
                     us_to_ms(qr_hist_quantile(h, 0.99)), "p999",
                     us_to_ms(qr_hist_quantile(h, 0.999)), "n", (json_int_t)h->count);
}

static long total_requests(const sim_t *s)
{
    long n = 0;
    for (int i = 0; i < OP_COUNT; i++)
        if (i != OP_USER)
            n += s->requests[i];
    return n;
}

/* This process's CPU time (ms) from the annotation loop's start, set-up
 * (users, --connect-first) left out; null when unknown. */
static json_t *loop_cpu_ms(const sim_t *s)
{
    int64_t now = sim_cpu_us();
    return now >= 0 && s->cpu0_us >= 0 ? json_real((double)(now - s->cpu0_us) / 1000.0)
                                       : json_null();
}

/* Builds the run's summary as JSON (NULL only if jansson runs out of memory). */
static json_t *summary_json(const sim_t *s, double elapsed, int complete)
{
    const qr_sim_options_t *o = s->opt;
    json_t *root = json_object();
    json_t *per = json_array();
    json_t *errors = json_object();
    json_t *requests = json_object();
    json_t *urls = json_array();
    if (!root || !per || !errors || !requests || !urls)
        goto fail;
    for (int i = 0; i < o->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        json_t *row =
            json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
                      "annotator", a->name, "accuracy", a->accuracy, "submitted",
                      (json_int_t)a->submitted, "matched_truth", (json_int_t)a->matched_truth,
                      "with_truth", (json_int_t)a->with_truth, "replayed", (json_int_t)a->replayed,
                      "lease_expired", (json_int_t)a->expired, "dropped", (json_int_t)a->dropped,
                      "retries", (json_int_t)a->retries, "skipped", (json_int_t)a->skipped,
                      "released", (json_int_t)a->released, "abandoned", (json_int_t)a->abandoned,
                      "failovers", (json_int_t)a->failovers, "state", state_name(a->state));
        if (!row || json_array_append_new(per, row) < 0)
            goto fail;
    }
    for (size_t i = 0; i <= MAX_ERROR_KINDS; i++) {
        const error_kind_t *e = &s->errors[i];
        if (e->count && json_object_set_new(errors, e->name, json_integer(e->count)) < 0)
            goto fail;
    }
    for (int i = 0; i < OP_COUNT; i++) {
        if (i != OP_THINK && json_object_set_new(requests, sim_op_names[i],
                                                 json_integer((json_int_t)s->requests[i])) < 0)
            goto fail;
    }
    if (json_object_set_new(requests, "total", json_integer((json_int_t)total_requests(s))) < 0)
        goto fail;
    for (int i = 0; i < s->nurls; i++)
        if (json_array_append_new(urls, json_string(s->cfgs[i].url)) < 0)
            goto fail;
    double span = to_last(s);
    json_t *body = json_pack(
        "{s:I, s:s, s:I, s:i, s:f, s:[f,f], s:i, s:[i,i], s:b, s:i, s:f, s:f, s:f, s:f, s:f, s:O, "
        "s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:o, s:o, s:b, s:b, s:b, s:b, s:b}",
        "project", (json_int_t)o->project, "run", s->run_id, "seed", (json_int_t)o->seed,
        "annotators", o->annotators, "accuracy", (o->accuracy + o->accuracy_max) / 2,
        "accuracy_range", o->accuracy, o->accuracy_max, "prefetch", o->prefetch, "think_ms",
        o->think_min_ms, o->think_max_ms, "batch", o->batch, "wait_ms", o->wait_ms, "skip_rate",
        o->skip_rate, "release_rate", o->release_rate, "abandon_rate", o->abandon_rate,
        "duration_seconds", o->duration, "warmup_seconds", o->warmup, "urls", urls,
        "total_submitted", (json_int_t)s->total_submitted, "completions",
        (json_int_t)s->total_submitted, "setup_seconds", s->setup_seconds, "elapsed_seconds",
        elapsed, "last_annotation_seconds", span, "skipped", (json_int_t)s->total_skipped,
        "released", (json_int_t)s->total_released, "abandoned", (json_int_t)s->total_abandoned,
        "lease_latency_ms", latency_json(&s->lease_hist), "submit_latency_ms",
        latency_json(&s->submit_hist), "project_complete", complete, "stopped_by_duration",
        s->stopping, "timed_out", s->timed_out, "interrupted", s->interrupted, "paused", s->paused);
    if (body &&
        json_object_set_new(body, "annotators_paused_by_gold", json_integer(s->benched)) < 0) {
        json_decref(body);
        body = NULL;
    }
    if (!body || json_object_update(root, body) < 0) {
        json_decref(body);
        goto fail;
    }
    json_decref(body);
    if (json_object_set_new(root, "completions_per_second", json_real(rate(s))) < 0 ||
        json_object_set_new(root, "reconnects", json_integer((json_int_t)s->reconnects)) < 0 ||
        json_object_set_new(root, "working_seconds", json_real(working(s))) < 0 ||
        json_object_set_new(root, "loop_cpu_ms", loop_cpu_ms(s)) < 0 ||
        json_object_set(root, "requests", requests) < 0 ||
        json_object_set(root, "errors", errors) < 0 ||
        sim_open_summary_json(s, root, elapsed) < 0 ||
        json_object_set(root, "per_annotator", per) < 0)
        goto fail;
    json_decref(requests);
    json_decref(errors);
    json_decref(per);
    json_decref(urls);
    return root;
fail:
    json_decref(root);
    json_decref(per);
    json_decref(errors);
    json_decref(requests);
    json_decref(urls);
    return NULL;
}

static void print_latency(const char *what, const qr_hist_t *h)
{
    printf("%s latency: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms (%llu requests)\n", what,
           us_to_ms(qr_hist_quantile(h, 0.50)), us_to_ms(qr_hist_quantile(h, 0.99)),
           us_to_ms(qr_hist_quantile(h, 0.999)), (unsigned long long)h->count);
}

void sim_print_summary(const sim_t *s, double elapsed, int complete)
{
    const qr_sim_options_t *o = s->opt;
    int width = 9;
    for (int i = 0; i < o->annotators; i++) {
        int len = (int)strlen(s->ann[i].name);
        if (len > width)
            width = len;
    }
    if (o->accuracy == o->accuracy_max)
        printf("simulate: project %lld, run %s, %d annotators, accuracy %.3f, seed %llu\n",
               o->project, s->run_id, o->annotators, o->accuracy, (unsigned long long)o->seed);
    else
        printf("simulate: project %lld, run %s, %d annotators, accuracy %.3f-%.3f, seed %llu\n",
               o->project, s->run_id, o->annotators, o->accuracy, o->accuracy_max,
               (unsigned long long)o->seed);
    printf("%-*s  %9s  %8s  %8s  %7s  %7s  %7s  %7s  %7s  %7s  %s\n", width, "annotator",
           "submitted", "correct", "replayed", "expired", "dropped", "retries", "skipped",
           "release", "abandon", "state");
    for (int i = 0; i < o->annotators; i++) {
        const annotator_t *a = &s->ann[i];
        char correct[32];
        if (a->with_truth)
            snprintf(correct, sizeof correct, "%.1f%%",
                     100.0 * (double)a->matched_truth / (double)a->with_truth);
        else
            snprintf(correct, sizeof correct, "-");
        printf("%-*s  %9ld  %8s  %8ld  %7ld  %7ld  %7ld  %7ld  %7ld  %7ld  %s\n", width, a->name,
               a->submitted, correct, a->replayed, a->expired, a->dropped, a->retries, a->skipped,
               a->released, a->abandoned, state_name(a->state));
    }
    printf("total %ld annotations; elapsed %.2f s (after %.2f s of set-up), last annotation at "
           "%.2f s\n",
           s->total_submitted, elapsed, s->setup_seconds, to_last(s));
    printf("rate %.1f completions/s over %.2f s of work (first to last annotation, as "
           "`quorumctl report` counts it)\n",
           rate(s), working(s));
    printf("skipped %ld, released %ld, abandoned %ld; %ld requests\n", s->total_skipped,
           s->total_released, s->total_abandoned, total_requests(s));
    if (!s->open && o->warmup > 0)
        printf("latencies of the answers after the %.3g s warm-up:\n", o->warmup);
    print_latency("lease", &s->lease_hist);
    print_latency("submit", &s->submit_hist);
    sim_open_print(s, elapsed);
    printf("project complete: %s%s%s%s%s\n", complete ? "yes" : "no",
           s->stopping ? " (--duration over)" : "", s->timed_out ? " (--max-seconds reached)" : "",
           s->interrupted ? " (interrupted)" : "", s->paused ? " (paused)" : "");
    if (s->benched)
        printf("annotators paused by the project's gold gate: %d\n", s->benched);
    printf("errors:");
    int any = 0;
    for (size_t i = 0; i <= MAX_ERROR_KINDS; i++) {
        if (s->errors[i].count) {
            printf(" %s=%ld", s->errors[i].name, s->errors[i].count);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    fflush(stdout);
}

/* Writes the summary as JSON to path. Returns 0 or -1 (message printed). */
int sim_write_summary(const sim_t *s, const char *path, double elapsed, int complete)
{
    json_t *j = summary_json(s, elapsed, complete);
    if (!j) {
        fprintf(stderr, "quorum-agent: cannot build the JSON summary\n");
        return -1;
    }
    int r = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (r != 0) {
        fprintf(stderr, "quorum-agent: cannot write %s\n", path);
        return -1;
    }
    return 0;
}
