/*
 * sim_open.c - the open-loop mode of `quorum-agent simulate` (sim_open.h).
 *
 * R is tasks (completions) per second for the whole crew, and an intent is
 * one lease request of up to K tasks (--prefetch K, default 1). The crew's
 * intents are one Poisson process of rate R / K (exponential gaps from a
 * generator seeded from --seed), from the loop's start on; each is handed
 * to a free annotator, the one that has waited longest for work (so every
 * annotator's connection is used in turn), or, when none is free, queued
 * until one is: the first to finish its intent takes the oldest queued one
 * at once, and that intent counts the time it waited. This is a crew
 * offered work, an M/G/N queue: with one annotator it is that annotator's
 * own arrivals, and an intent waits only when all N are busy -- not, as
 * when each annotator had its own process, whenever its one annotator
 * happened to be (at 5 % busy, 5 % of intents waited up to a whole cycle,
 * the generator's share of the lease p99, not the broker's). An annotator
 * serves one intent at a time: it leases up to K tasks, labels them one
 * after another (a think time each) and sends each result when it is
 * ready, or with --batch all of them in one batch submit once the last is
 * ready -- the shape the batched capacity (--prefetch 8 --batch) is
 * measured in. K = 1 without --batch is one lease, think, submit per
 * intent. The arrivals never depend on the broker's answers.
 *
 * Latencies, on the loop's ms clock for intended times and the µs clock
 * for answers (both CLOCK_MONOTONIC):
 *   lease  = lease granted - intended time of its intent (retries and
 *            empty answers included: the intent stays the same), one per
 *            intent;
 *   submit = per acknowledged result, acknowledged - its intended submit
 *            time, retries included: the ms the lease was handled + the
 *            think times of the intent's tasks up to and including its
 *            own, or with --batch of all of them (the batch goes when the
 *            last is ready; an abandoned task takes no time);
 *   wait   = lease request sent - intended time (the annotator still busy,
 *            or the loop late: the generator's own share of the lease
 *            latency).
 * An intended time is a whole ms, never later than the true one, so the
 * latencies err high by less than 1 ms, never low.
 *
 * Intents intended before the end of --warmup are left out of the
 * latencies (with the whole cycle they start: their submits too); the
 * measured window runs from then to the end of --duration (or of the run).
 * Both rates are in tasks per second: offered_per_second counts every
 * intent of the window, served or not (the processes are drawn on to the
 * window's end for the summary), times K; achieved_per_second the
 * acknowledged results of the window's intents (a lease held at the end of
 * --duration is still submitted; an intent not leased by then is
 * "unserved"), so a backlog left by the warm-up does not count toward it.
 * "intents" and the counts beside it are lease requests (intents). cpu_us_per_completion is this
 * process's CPU time (getrusage) from the loop's start to the summary over
 * every completion of the run: user creation and connecting left out.
 */
#include "sim_open.h"

#include "protocol.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Connecting before the run: requests in flight at once (1,000 TLS
 * handshakes at once time out on a loaded machine), and tries per agent. */
#define CONNECT_CONCURRENCY 64
#define CONNECT_ATTEMPTS    3
/* The longest think time drawn (ms), as --think-ms's limit. */
#define THINK_MAX_MS 3600000.0

typedef struct open_agent_s {
    int64_t given_ms; /* intended ms of the intent handed to it, not yet sent, -1: none */
    int64_t cur_ms;   /* intended ms of the intent being served (leasing), -1: none */
    int measured;     /* the cycle's intent lies in the measured window */
    int waited;       /* its intent waited for a free annotator */
    int free;         /* in the free ring, waiting for an intent */
} open_agent_t;

struct sim_open_s {
    open_agent_t *agents; /* one per annotator, by index - 1 */
    uint64_t rng;         /* the crew's arrival process */
    int64_t next_us;      /* monotonic µs of its next intent not yet handed out */
    double gap_us;        /* mean gap between the crew's intents: K / R s */
    int per_intent;       /* K: tasks asked for by one intent's lease request */
    int64_t warm_end_ms;  /* intents from then on are measured */
    annotator_t **free;   /* ring of free annotators, longest free first */
    int free_head, nfree; /* its first slot and length (capacity: N) */
    int64_t *queue;       /* ring of intended ms of intents no annotator was free for */
    size_t queue_head, nqueue, queue_cap;
    int ended;       /* the project is complete or paused: no annotator waits for work */
    qr_hist_t lease; /* µs, measured intents */
    qr_hist_t submit;
    qr_hist_t wait;
    long intents;  /* measured intents taken (a lease request sent for them) */
    long waited;   /* of those, how many waited for a free annotator */
    long achieved; /* acknowledged results of measured intents (tasks) */
};

int sim_open_think_ms(double median_ms, double sigma, double u1, double u2)
{
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
    double v = median_ms * exp(sigma * z);
    if (!(v < THINK_MAX_MS)) /* also NaN */
        v = THINK_MAX_MS;
    return (int)(v + 0.5);
}

/* Starts annotator a's connecting request on a connection of its own.
 * Returns 0 or -1 (printed). */
static int start_connect(sim_t *s, annotator_t *a)
{
    if (qr_client_call_setup(&a->call, "GET", QR_API_WHOAMI, NULL, 0, NULL, a->token) < 0) {
        fprintf(stderr, "quorum-agent: %s: %s\n", a->name, a->call.message);
        return -1;
    }
    CURLcode cc = curl_easy_setopt(a->call.easy, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(a->call.easy, CURLOPT_FRESH_CONNECT, 1L);
    if (cc != CURLE_OK) {
        fprintf(stderr, "quorum-agent: curl_easy_setopt: %s\n", curl_easy_strerror(cc));
        return -1;
    }
    CURLMcode mc = curl_multi_add_handle(sim_multi_of(s, a), a->call.easy);
    if (mc != CURLM_OK) {
        fprintf(stderr, "quorum-agent: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
        return -1;
    }
    a->state = ST_BUSY;
    a->attempts++;
    return 0;
}

/* Handles the connecting requests that finished: a failed one is tried
 * again (queued at *retry) up to CONNECT_ATTEMPTS times. Returns the count
 * finished for good, or -1 (printed). */
static int connects_done(sim_t *s, annotator_t **retry, int *nretry, int *failed, char *first,
                         size_t first_size)
{
    annotator_t *a;
    CURL *easy;
    CURLcode result;
    int n = 0, shard = 0, got;
    while ((got = sim_next_done(s, &shard, &a, &easy, &result)) > 0) {
        CURLcode cc = curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 0L);
        if (cc != CURLE_OK) {
            fprintf(stderr, "quorum-agent: %s\n", curl_easy_strerror(cc));
            return -1;
        }
        a->state = ST_IDLE;
        if (qr_client_call_finish(&a->call, result) == 0) {
            n++;
        } else if (a->attempts < CONNECT_ATTEMPTS && qr_client_call_retryable(&a->call)) {
            retry[(*nretry)++] = a;
        } else {
            if ((*failed)++ == 0)
                snprintf(first, first_size, "%s: %s", a->name, a->call.message);
            n++;
        }
    }
    return got < 0 ? -1 : n;
}

int sim_open_connect(sim_t *s)
{
    int n = s->opt->annotators, next = 0, inflight = 0, done = 0, failed = 0, nretry = 0;
    char first[sizeof s->ann[0].call.message + 128] = "";
    annotator_t **retry = qr_xcalloc((size_t)n, sizeof *retry);
    int rc = -1;
    for (int i = 0; i < n; i++)
        s->ann[i].attempts = 0;
    while (done < n) {
        while (inflight < CONNECT_CONCURRENCY && (nretry > 0 || next < n)) {
            annotator_t *a = nretry > 0 ? retry[--nretry] : &s->ann[next++];
            if (start_connect(s, a) < 0)
                goto out;
            inflight++;
        }
        if (sim_drive(s, 100) < 0)
            goto out;
        int before = nretry;
        int k = connects_done(s, retry, &nretry, &failed, first, sizeof first);
        if (k < 0)
            goto out;
        done += k;
        inflight -= k + (nretry - before);
    }
    if (failed) /* not fatal: their first lease connects again */
        fprintf(stderr,
                "quorum-agent: warning: %d of %d annotators could not connect before the "
                "run (%s)\n",
                failed, n, first);
    rc = 0;
out:
    free(retry);
    return rc;
}

/* An exponential gap (µs) of mean m from the generator at *rng. */
static double exp_gap(uint64_t *rng, double m)
{
    *rng = sim_mix64(*rng);
    return -log(1.0 - sim_unit(*rng)) * m;
}

/* The whole ms an intent at t_us is intended at (t rounded down: never
 * later than the truth). */
static int64_t intent_ms(int64_t t_us)
{
    return t_us / 1000;
}

/* End (ms) of the measured window of a run that lasted elapsed seconds. */
static int64_t window_end_ms(const sim_t *s, double elapsed)
{
    int64_t end = s->start_ms + (int64_t)(elapsed * 1000.0);
    if (s->opt->duration > 0 && s->stop_ms < end)
        end = s->stop_ms;
    return end;
}

static int in_window(const sim_t *s, int64_t ms)
{
    return ms >= s->open->warm_end_ms && (s->opt->duration <= 0 || ms < s->stop_ms);
}

void sim_open_start(sim_t *s)
{
    const qr_sim_options_t *o = s->opt;
    int n = o->annotators;
    if (o->arrival_rate <= 0) {
        for (int i = 0; i < n; i++) {
            s->ann[i].op = OP_LEASE;
            sim_schedule(&s->ann[i], s->start_ms);
        }
        return;
    }
    struct sim_open_s *p = qr_xcalloc(1, sizeof *p);
    s->open = p;
    p->agents = qr_xcalloc((size_t)n, sizeof *p->agents);
    p->free = qr_xcalloc((size_t)n, sizeof *p->free);
    p->per_intent = o->prefetch > 0 ? o->prefetch : 1;
    p->gap_us = 1e6 * (double)p->per_intent / o->arrival_rate;
    p->warm_end_ms = s->start_ms + (int64_t)(o->warmup * 1000.0);
    p->rng = sim_mix64(sim_mix64(o->seed ^ 0x6f70656e6c6f6f70ULL));
    p->next_us = s->start_ms * 1000 + (int64_t)exp_gap(&p->rng, p->gap_us);
    for (int i = 0; i < n; i++) {
        p->agents[i].given_ms = p->agents[i].cur_ms = -1;
        s->ann[i].op = OP_LEASE;
        sim_schedule(&s->ann[i], sim_open_next_lease_ms(&s->ann[i], s->start_ms)); /* free */
    }
}

/* When a free annotator wakes: to stop at the end of --duration, else not
 * before an intent is handed to it. */
static int64_t free_until(const sim_t *s)
{
    return s->opt->duration > 0 ? s->stop_ms : INT64_MAX / 4;
}

/* Hands the intent intended at t_ms to annotator a, to be leased at now. */
static void hand(sim_t *s, annotator_t *a, int64_t t_ms, int64_t now)
{
    open_agent_t *oa = &s->open->agents[a->index - 1];
    oa->given_ms = t_ms;
    oa->waited = 0;
    sim_schedule(a, now);
}

int64_t sim_open_dispatch(sim_t *s, int64_t now)
{
    struct sim_open_s *p = s->open;
    for (;;) {
        int64_t t = intent_ms(p->next_us);
        if (t > now || (s->opt->duration > 0 && t >= s->stop_ms))
            return t;
        p->next_us += (int64_t)exp_gap(&p->rng, p->gap_us);
        annotator_t *a = NULL;
        while (p->nfree > 0 && !a) {
            a = p->free[p->free_head];
            p->free_head = (p->free_head + 1) % s->opt->annotators;
            p->nfree--;
            p->agents[a->index - 1].free = 0;
            if (a->state != ST_WAITING) /* finished meanwhile (stopped, done) */
                a = NULL;
        }
        if (a) {
            hand(s, a, t, now);
            continue;
        }
        if (p->nqueue == p->queue_cap) { /* grow the ring, oldest first */
            size_t cap = p->queue_cap ? 2 * p->queue_cap : 256;
            int64_t *q = qr_xcalloc(cap, sizeof *q);
            for (size_t i = 0; i < p->nqueue; i++)
                q[i] = p->queue[(p->queue_head + i) % p->queue_cap];
            free(p->queue);
            p->queue = q;
            p->queue_head = 0;
            p->queue_cap = cap;
        }
        p->queue[(p->queue_head + p->nqueue++) % p->queue_cap] = t;
    }
}

int64_t sim_open_next_lease_ms(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    struct sim_open_s *p = s->open;
    open_agent_t *oa = &p->agents[a->index - 1];
    if (oa->cur_ms >= 0 || oa->given_ms >= 0)
        return now;      /* still serving an intent, or handed one */
    if (p->nqueue > 0) { /* the oldest intent no annotator was free for */
        int64_t t = p->queue[p->queue_head];
        p->queue_head = (p->queue_head + 1) % p->queue_cap;
        p->nqueue--;
        oa->given_ms = t;
        oa->waited = 1;
        return now;
    }
    if (p->ended)
        return now; /* a lease of no intent, to hear that the project ended */
    if (!oa->free) {
        p->free[(p->free_head + p->nfree++) % s->opt->annotators] = a;
        oa->free = 1;
    }
    return free_until(s);
}

void sim_open_end(sim_t *s, state_t st)
{
    struct sim_open_s *p = s->open;
    p->ended = 1;
    for (; p->nfree > 0; p->nfree--) {
        annotator_t *a = p->free[p->free_head];
        p->free_head = (p->free_head + 1) % s->opt->annotators;
        p->agents[a->index - 1].free = 0;
        if (a->state == ST_WAITING)
            sim_finish(a, st);
    }
}

void sim_open_lease_sending(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    struct sim_open_s *p = s->open;
    open_agent_t *oa = &p->agents[a->index - 1];
    if (oa->cur_ms >= 0)
        return; /* the same intent, asked again */
    /* Leasing without an intent (once the project ended, or a free
     * annotator woken, which only stops): left out of the figures. */
    oa->cur_ms = oa->given_ms >= 0 ? oa->given_ms : now;
    oa->measured = oa->given_ms >= 0 && in_window(s, oa->cur_ms);
    oa->given_ms = -1;
    if (oa->measured) {
        int64_t w = sim_mono_us() - oa->cur_ms * 1000;
        p->intents++;
        p->waited += oa->waited;
        qr_hist_record(&p->wait, (uint64_t)(w > 0 ? w : 0));
    }
    oa->waited = 0;
}

void sim_open_leased(annotator_t *a, int64_t now)
{
    struct sim_open_s *p = a->sim->open;
    open_agent_t *oa = &p->agents[a->index - 1];
    /* The held leases are worked through in order, each after the one
     * before was thought about (and, one by one, sent): an abandoned one
     * takes no time (sim_next_step). */
    int64_t think = 0;
    for (size_t i = 0; i < a->nheld; i++) {
        if (a->held[i].action != ACT_ABANDON)
            think += a->held[i].active_ms;
        a->held[i].submit_ms = now + think;
    }
    if (a->sim->opt->batch)
        for (size_t i = 0; i < a->nheld; i++)
            a->held[i].submit_ms = now + think;
    if (oa->cur_ms < 0)
        return;
    int64_t lat = sim_mono_us() - oa->cur_ms * 1000;
    if (oa->measured)
        qr_hist_record(&p->lease, (uint64_t)(lat > 0 ? lat : 0));
    oa->cur_ms = -1;
}

void sim_open_acknowledged(annotator_t *a, const held_lease_t *l)
{
    struct sim_open_s *p = a->sim->open;
    open_agent_t *oa = &p->agents[a->index - 1];
    int64_t lat = sim_mono_us() - l->submit_ms * 1000;
    if (oa->measured) {
        qr_hist_record(&p->submit, (uint64_t)(lat > 0 ? lat : 0));
        p->achieved++;
    }
}

/* Intents of the window not taken by the end: those queued, those handed
 * out but not sent, and the crew's process drawn on (on a copy of its
 * state) to the window's end. */
static long unserved(const sim_t *s, int64_t end_ms)
{
    const struct sim_open_s *p = s->open;
    long n = 0;
    for (size_t i = 0; i < p->nqueue; i++) {
        int64_t t = p->queue[(p->queue_head + i) % p->queue_cap];
        n += t >= p->warm_end_ms && t < end_ms;
    }
    for (int i = 0; i < s->opt->annotators; i++) {
        int64_t t = p->agents[i].given_ms;
        n += t >= p->warm_end_ms && t < end_ms;
    }
    uint64_t rng = p->rng;
    for (int64_t t = p->next_us; intent_ms(t) < end_ms; t += (int64_t)exp_gap(&rng, p->gap_us))
        n += intent_ms(t) >= p->warm_end_ms;
    return n;
}

/* The measured window's figures. */
typedef struct window_s {
    double seconds;   /* its length */
    long offered;     /* intents in it, served or not */
    long left;        /* of those, never sent */
    double offered_s; /* tasks per second: intents * K / seconds */
    double achieved_s;
    double cpu_us; /* this process's CPU per completion of the run since the loop started */
} window_t;

static window_t window_of(const sim_t *s, double elapsed)
{
    const struct sim_open_s *p = s->open;
    window_t w;
    int64_t end = window_end_ms(s, elapsed);
    w.seconds = end > p->warm_end_ms ? (double)(end - p->warm_end_ms) / 1000.0 : 0.0;
    w.left = end > p->warm_end_ms ? unserved(s, end) : 0;
    w.offered = p->intents + w.left;
    w.offered_s = w.seconds > 0 ? (double)w.offered * p->per_intent / w.seconds : 0.0;
    w.achieved_s = w.seconds > 0 ? (double)p->achieved / w.seconds : 0.0;
    int64_t cpu = sim_cpu_us();
    w.cpu_us = cpu >= 0 && s->cpu0_us >= 0 && s->total_submitted > 0
                   ? (double)(cpu - s->cpu0_us) / (double)s->total_submitted
                   : 0.0;
    return w;
}

static double ms_of(uint64_t us)
{
    return (double)us / 1000.0;
}

/* {"p50", "p99", "p999", "n"} in ms from a histogram in µs. */
static json_t *percentiles(const qr_hist_t *h)
{
    return json_pack("{s:f, s:f, s:f, s:I}", "p50", ms_of(qr_hist_quantile(h, 0.50)), "p99",
                     ms_of(qr_hist_quantile(h, 0.99)), "p999", ms_of(qr_hist_quantile(h, 0.999)),
                     "n", (json_int_t)h->count);
}

int sim_open_summary_json(const sim_t *s, json_t *root, double elapsed)
{
    const qr_sim_options_t *o = s->opt;
    if (o->think_median_ms > 0 &&
        json_object_set_new(
            root, "think_lognormal",
            json_pack("{s:f, s:f}", "median_ms", o->think_median_ms, "sigma", o->think_sigma)) < 0)
        return -1;
    if (!s->open)
        return 0;
    const struct sim_open_s *p = s->open;
    window_t w = window_of(s, elapsed);
    json_t *j = json_pack(
        "{s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o}", "arrival_rate",
        o->arrival_rate, "offered_per_second", w.offered_s, "achieved_per_second", w.achieved_s,
        "warmup_seconds", o->warmup, "measured_seconds", w.seconds, "intents",
        (json_int_t)w.offered, "intents_unserved", (json_int_t)w.left, "intents_waited",
        (json_int_t)p->waited, "completions", (json_int_t)p->achieved, "waited_share",
        p->intents ? (double)p->waited / (double)p->intents : 0.0, "lease", percentiles(&p->lease),
        "submit", percentiles(&p->submit), "wait", percentiles(&p->wait));
    if (j && (json_object_set_new(j, "cpu_us_per_completion", json_real(w.cpu_us)) < 0 ||
              json_object_set_new(j, "tasks_per_intent", json_integer(p->per_intent)) < 0 ||
              json_object_set_new(j, "batch", json_boolean(o->batch)) < 0)) {
        json_decref(j);
        return -1;
    }
    return j ? json_object_set_new(root, "open_loop", j) : -1;
}

static void print_line(const char *what, const qr_hist_t *h)
{
    printf("open loop %s: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms (%llu)\n", what,
           ms_of(qr_hist_quantile(h, 0.50)), ms_of(qr_hist_quantile(h, 0.99)),
           ms_of(qr_hist_quantile(h, 0.999)), (unsigned long long)h->count);
}

void sim_open_print(const sim_t *s, double elapsed)
{
    if (!s->open)
        return;
    const struct sim_open_s *p = s->open;
    window_t w = window_of(s, elapsed);
    printf("open loop: %.1f tasks/s asked (K = %d tasks per lease intent, %s), %.1f tasks/s "
           "offered, %.1f completions/s achieved over %.2f s after a %.2f s warm-up; %.1f%% of "
           "intents waited for a free annotator, %ld never sent\n",
           s->opt->arrival_rate, p->per_intent,
           s->opt->batch ? "one batch submit each" : "one submit per task", w.offered_s,
           w.achieved_s, w.seconds, s->opt->warmup,
           p->intents ? 100.0 * (double)p->waited / (double)p->intents : 0.0, w.left);
    print_line("lease latency from the intended time", &p->lease);
    print_line("submit latency from the intended time", &p->submit);
    print_line("wait before the lease went out", &p->wait);
    printf("open loop CPU of this process: %.1f us per completion (the run, not its set-up)\n",
           w.cpu_us);
}

void sim_open_free(sim_t *s)
{
    if (!s->open)
        return;
    free(s->open->agents);
    free(s->open->free);
    free(s->open->queue);
    free(s->open);
    s->open = NULL;
}
