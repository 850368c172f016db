/*
 * sim_crew.c - the crew model of `quorum-agent simulate`: what each virtual
 * annotator decides (hashed from the seed, the task and the annotator, so
 * the same seed gives the same decisions whatever the timing), the heap of
 * annotators waiting for their next step, the changes of an annotator's
 * state, and its results' way through the spool and the ack log. No
 * request is sent here: sim_driver.c does that.
 */
#include "sim_int.h"

#include "sim_open.h"
#include "sim_values.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const char *const sim_op_names[OP_COUNT] = {"lease",   "think",        "submit",     "skip",
                                            "release", "batch_submit", "create_user"};

/* splitmix64 finaliser: a good 64-bit mix for hashing small integers. */
uint64_t sim_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A deterministic 64-bit value for (seed, task, annotator, purpose). */
static uint64_t decide(const sim_t *s, int64_t task_id, int index, uint64_t salt)
{
    return sim_mix64(s->opt->seed ^ sim_mix64((uint64_t)task_id) ^
                     sim_mix64(((uint64_t)index << 8) | salt));
}

/* A uniform double in [0, 1) from 53 bits of h. */
double sim_unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

int64_t sim_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

int64_t sim_jitter(annotator_t *a, int64_t min_ms, int64_t max_ms)
{
    a->rng = sim_mix64(a->rng);
    return min_ms + (int64_t)(a->rng % (uint64_t)(max_ms - min_ms + 1));
}

/* --- the heap of waiting annotators --------------------------------------- */

static int earlier(const annotator_t *x, const annotator_t *y)
{
    return x->wake_ms < y->wake_ms || (x->wake_ms == y->wake_ms && x->index < y->index);
}

static void heap_set(sim_t *s, int i, annotator_t *a)
{
    s->heap[i] = a;
    a->heap_pos = i;
}

static void heap_up(sim_t *s, int i)
{
    annotator_t *a = s->heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!earlier(a, s->heap[p]))
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, a);
}

static void heap_down(sim_t *s, int i)
{
    annotator_t *a = s->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && earlier(s->heap[c + 1], s->heap[c]))
            c++;
        if (!earlier(s->heap[c], a))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, a);
}

void sim_heap_remove(sim_t *s, annotator_t *a)
{
    int i = a->heap_pos;
    if (i < 0)
        return;
    a->heap_pos = -1;
    s->nheap--;
    if (i == s->nheap)
        return;
    annotator_t *m = s->heap[s->nheap];
    heap_set(s, i, m);
    heap_up(s, i);
    heap_down(s, m->heap_pos);
}

/* Makes a WAITING annotator act at when_ms. */
void sim_schedule(annotator_t *a, int64_t when_ms)
{
    sim_t *s = a->sim;
    a->state = ST_WAITING;
    a->wake_ms = when_ms;
    if (a->heap_pos < 0) {
        heap_set(s, s->nheap++, a);
        heap_up(s, a->heap_pos);
    } else {
        heap_up(s, a->heap_pos);
        heap_down(s, a->heap_pos);
    }
}

/* Counts one failure under its kind. */
void sim_count_kind(sim_t *s, const char *kind)
{
    for (size_t i = 0; i < s->nerrors; i++) {
        if (strcmp(s->errors[i].name, kind) == 0) {
            s->errors[i].count++;
            return;
        }
    }
    if (s->nerrors < MAX_ERROR_KINDS) {
        snprintf(s->errors[s->nerrors].name, sizeof s->errors[0].name, "%s", kind);
        s->errors[s->nerrors++].count = 1;
        return;
    }
    snprintf(s->errors[MAX_ERROR_KINDS].name, sizeof s->errors[0].name, "other");
    s->errors[MAX_ERROR_KINDS].count++;
}

/* Counts one failed call under its kind: the API's error code, "http_<status>"
 * when the body had none, or the transport problem. */
void sim_count_error(sim_t *s, const qr_client_call_t *call)
{
    char kind[64];
    if (call->code[0])
        snprintf(kind, sizeof kind, "%s", call->code);
    else if (call->status)
        snprintf(kind, sizeof kind, "http_%ld", call->status);
    else if (call->result == CURLE_OPERATION_TIMEDOUT)
        snprintf(kind, sizeof kind, "timeout");
    else if (call->result == CURLE_PEER_FAILED_VERIFICATION ||
             call->result == CURLE_SSL_CONNECT_ERROR || call->result == CURLE_SSL_CACERT_BADFILE)
        snprintf(kind, sizeof kind, "tls");
    else
        snprintf(kind, sizeof kind, "network");
    sim_count_kind(s, kind);
}

/* Prints a per-annotator failure to stderr, at most MAX_NOISY of them: with
 * a bad setting every annotator fails the same way. */
#define MAX_NOISY 10
void sim_say(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_say(sim_t *s, const char *fmt, ...)
{
    va_list ap;
    if (++s->noisy > MAX_NOISY) {
        if (s->noisy == MAX_NOISY + 1)
            fprintf(stderr, "quorum-agent: (further failures are only counted)\n");
        return;
    }
    fprintf(stderr, "quorum-agent: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void sim_free_held(annotator_t *a)
{
    for (size_t i = 0; i < a->nheld; i++) {
        free(a->held[i].lease);
        free(a->held[i].truth);
        json_decref(a->held[i].truths);
        json_decref(a->held[i].labels);
    }
    free(a->held);
    a->held = NULL;
    a->nheld = a->head = 0;
    a->nbatch = 0;
}

/* Ends the annotator's run in state st (DONE, STOPPED or FAILED). */
void sim_finish(annotator_t *a, state_t st)
{
    sim_t *s = a->sim;
    sim_heap_remove(s, a);
    if (a->state != ST_DONE && a->state != ST_STOPPED && a->state != ST_PAUSED &&
        a->state != ST_BENCHED && a->state != ST_FAILED)
        s->live--;
    if (st == ST_FAILED && a->state != ST_FAILED)
        s->failed++;
    a->state = st;
    sim_free_held(a);
}

void sim_fail(annotator_t *a, const char *what)
{
    sim_say(a->sim, "%s: %s failed, stopping it: %s", a->name, what, a->call.message);
    sim_finish(a, ST_FAILED);
}

/* The label a gives the task: the truth with probability a->accuracy, else
 * a different label chosen uniformly. Without a usable truth, any label
 * uniformly. */
static const char *choose_label(const sim_t *s, const annotator_t *a, const held_lease_t *l)
{
    size_t truth = s->nlabels;
    for (size_t i = 0; l->truth && i < s->nlabels; i++) {
        if (strcmp(s->labels[i], l->truth) == 0) {
            truth = i;
            break;
        }
    }
    uint64_t h1 = decide(s, l->task_id, a->index, 1);
    uint64_t h2 = decide(s, l->task_id, a->index, 2);
    if (truth == s->nlabels)
        return s->labels[h2 % s->nlabels];
    if (s->nlabels == 1 || sim_unit(h1) < a->accuracy)
        return s->labels[truth];
    size_t k = (size_t)(h2 % (s->nlabels - 1));
    return s->labels[k >= truth ? k + 1 : k];
}

static int gave_up(const annotator_t *a, int64_t task_id)
{
    for (size_t i = 0; i < a->ngiven; i++)
        if (a->given_up[i] == task_id)
            return 1;
    return 0;
}

static void give_up(annotator_t *a, int64_t task_id)
{
    if (a->ngiven == a->given_cap) {
        a->given_cap = a->given_cap ? 2 * a->given_cap : 8;
        a->given_up = qr_xrealloc(a->given_up, a->given_cap * sizeof *a->given_up);
    }
    a->given_up[a->ngiven++] = task_id;
}

/* Decides what a does with lease l: its action, label, think time and
 * idempotency key. A schema project's labels are drawn from the truths
 * (sim_values.h) with the stream the label of a plain project is drawn from. */
void sim_plan(annotator_t *a, held_lease_t *l, json_t *data, int64_t now)
{
    const sim_t *s = a->sim;
    const qr_sim_options_t *o = s->opt;
    double r = sim_unit(decide(s, l->task_id, a->index, 4));
    int again = gave_up(a, l->task_id);

    l->action = ACT_SUBMIT;
    if (r < o->skip_rate)
        l->action = ACT_SKIP;
    else if (r < o->skip_rate + o->release_rate && !again)
        l->action = ACT_RELEASE;
    else if (r < o->skip_rate + o->release_rate + o->abandon_rate && !again)
        l->action = ACT_ABANDON;
    if (l->action == ACT_RELEASE || l->action == ACT_ABANDON)
        give_up(a, l->task_id);

    int span = o->think_max_ms - o->think_min_ms;
    if (s->schema)
        l->labels = qr_sim_labels(s->schema, data, l->truths, a->accuracy,
                                  decide(s, l->task_id, a->index, 1));
    else
        l->label = choose_label(s, a, l);
    l->active_ms =
        o->think_min_ms + (int)(decide(s, l->task_id, a->index, 3) % (uint64_t)(span + 1));
    if (o->think_median_ms > 0)
        l->active_ms = sim_open_think_ms(o->think_median_ms, o->think_sigma,
                                         sim_unit(decide(s, l->task_id, a->index, 3)),
                                         sim_unit(decide(s, l->task_id, a->index, 6)));
    if (qr_random_hex(16, l->idem) < 0) {
        /* The CSPRNG failing is not expected; a unique-enough fallback keeps
         * the idempotency contract within this run. */
        snprintf(l->idem, sizeof l->idem, "%s%08x%012llx", s->run_id, (unsigned)a->index,
                 (unsigned long long)(l->task_id * 1000003 + now));
    }
}

/* Works through the held leases from head: abandons need no request; the
 * next one to think about sets the wake time. When none is left, sends the
 * batch of held results (--batch), or leases again. */
void sim_next_step(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    qr_backoff_reset(&a->backoff);
    while (a->head < a->nheld) {
        held_lease_t *l = &a->held[a->head];
        if (l->action == ACT_ABANDON) {
            a->abandoned++;
            s->total_abandoned++;
            l->answered = 1;
            a->head++;
            continue;
        }
        if (l->action == ACT_SKIP)
            a->op = OP_SKIP;
        else if (l->action == ACT_RELEASE)
            a->op = OP_RELEASE;
        else
            a->op = s->opt->batch ? OP_THINK : OP_SUBMIT;
        sim_schedule(a, now + l->active_ms);
        return;
    }
    for (size_t i = 0; i < a->nheld; i++) {
        if (a->held[i].ready && !a->held[i].answered) {
            a->op = OP_BATCH;
            sim_schedule(a, now);
            return;
        }
    }
    sim_free_held(a);
    a->op = OP_LEASE;
    sim_schedule(a, s->open ? sim_open_next_lease_ms(a, now) : now);
}

/* Schedules the same request again after a backoff; after a network error
 * with several brokers, against the next one. */
void sim_retry_later(annotator_t *a, int64_t now)
{
    sim_t *s = a->sim;
    if (a->call.status == 0 && s->nurls > 1) {
        a->url = (a->url + 1) % s->nurls;
        a->call.cfg = &s->cfgs[a->url];
        a->failovers++;
    }
    a->retries++;
    sim_schedule(a, now + qr_backoff_next(&a->backoff));
}

/* The result of l is answered: it leaves the spool. */
void sim_unspool(annotator_t *a, held_lease_t *l)
{
    sim_t *s = a->sim;
    if (l->spool_id && s->spool_open && qr_spool_ack(&s->spool, l->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", s->spool.errstr);
        s->spool_failed = 1;
    }
    l->spool_id = 0;
    l->answered = 1;
}

/* A submit of l was acknowledged with status (201 or 200) and answer
 * {"annotation_id", "task_id", ...}: counts it and logs it. */
void sim_acknowledged(annotator_t *a, held_lease_t *l, long status, json_t *answer, int64_t now)
{
    sim_t *s = a->sim;
    a->submitted++;
    s->total_submitted++;
    if (!s->first_submit_ms)
        s->first_submit_ms = now;
    s->last_submit_ms = now;
    if (status == 200)
        a->replayed++;
    if (s->open)
        sim_open_acknowledged(a, l);
    if (l->truths) {
        /* Each field's value against its truth. */
        const char *field;
        json_t *t;
        json_object_foreach(l->truths, field, t)
        {
            a->with_truth++;
            a->matched_truth += json_equal(t, json_object_get(l->labels, field));
        }
    } else if (l->truth) {
        a->with_truth++;
        if (strcmp(l->truth, l->label) == 0)
            a->matched_truth++;
    }
    if (s->ack) {
        json_t *id = json_object_get(answer, "annotation_id");
        json_t *task = json_object_get(answer, "task_id");
        int64_t task_id = json_is_integer(task) ? (int64_t)json_integer_value(task) : l->task_id;
        if (json_is_integer(id)) {
            if (fprintf(s->ack, "%lld\t%s\t%lld\t%s\n", (long long)task_id, a->name,
                        (long long)json_integer_value(id), l->lease) < 0)
                s->ack_failed = 1;
            s->ack_dirty = 1;
        } else {
            sim_say(s, "%s: acknowledgement of lease %s has no annotation_id", a->name, l->lease);
        }
    }
    sim_unspool(a, l);
}

/* Appends the result of l (about to be sent for the first time) to the
 * spool (not yet synced). Returns 0 or -1 (spool_failed set, message printed). */
static int spool_result(sim_t *s, annotator_t *a, held_lease_t *l)
{
    /* A plain project's "label", a schema project's "labels" (session.h). */
    json_t *value = l->labels ? json_incref(l->labels) : json_string(l->label);
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:s, s:i, s:I}", "url", a->call.cfg->url, "run",
        s->run_id, "annotator", a->name, "project", (json_int_t)s->opt->project, "lease", l->lease,
        "task_id", (json_int_t)l->task_id, l->labels ? "labels" : "label", value, "idempotency_key",
        l->idem, "active_ms", l->active_ms, "spooled_at_ms", (json_int_t)qr_now_ms());
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text || qr_spool_append(&s->spool, text, strlen(text), &l->spool_id) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", text ? s->spool.errstr : "cannot encode a result");
        free(text);
        s->spool_failed = 1;
        return -1;
    }
    free(text);
    return 0;
}

/* Spools the results a is about to send that are not spooled yet. */
int sim_spool_due(sim_t *s, annotator_t *a)
{
    if (a->op == OP_SUBMIT) {
        held_lease_t *l = &a->held[a->head];
        return l->spool_id ? 0 : spool_result(s, a, l);
    }
    if (a->op == OP_BATCH) {
        for (size_t i = 0; i < a->nheld; i++) {
            held_lease_t *l = &a->held[i];
            if (l->ready && !l->answered && !l->spool_id && spool_result(s, a, l) < 0)
                return -1;
        }
    }
    return 0;
}
