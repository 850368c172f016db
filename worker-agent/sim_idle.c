/*
 * sim_idle.c - `quorum-agent simulate --idle`: a crew of connected agents
 * that do no work, the shape of 10,000 agents waiting for a project to have
 * tasks (issue 18, idle_agents). Each agent keeps its own TLS connection and
 *
 *   - starts at a random offset in [0, --spread-ms] with a lease request that
 *     does not wait (its "hello": the broker answered, so it is connected);
 *   - then sits in long-poll lease requests (--wait-ms), asking again as soon
 *     as one ends empty (after --wait-ms, jittered, when the broker answered at
 *     once without waiting, so a crew never spins);
 *   - holds any lease it is handed and heartbeats it at the period
 *     `quorum-agent exec` uses (the project's lease_ttl_ms / 3; sooner when
 *     an answer came so late that half the lease's time left is less), never
 *     submitting it: how many agents hold leases is how many tasks the project
 *     has;
 *   - after a failed request (no answer, 5xx, 429) retries it after
 *     exponential backoff with equal jitter (IDLE_RETRY_BASE_MS doubling up to
 *     IDLE_RETRY_MAX_MS), a lease retry as a hello again.
 *
 * SIGUSR1 marks a broker restart: from then on each agent's first answered
 * request sent after the mark counts as "served again" (the next lease
 * request of a long-polling agent is a hello; a holder is served at its next
 * heartbeat, as a real agent would be), and once every agent still running
 * was served again a line says so on stderr (a script waits for it):
 *   quorum-agent: idle: all N agents served again S s after the mark
 * Likewise, once every agent had its first answer:
 *   quorum-agent: idle: all N agents connected (C connections made)
 *
 * The run ends at --duration, SIGINT or SIGTERM (exit 0): the holders
 * release their leases (waiting at most RELEASE_WAIT_MS), long polls are
 * dropped. --max-seconds still fails it (exit 1).
 */
#include "sim_int.h"

#include "cli.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A long-polling lease may take wait_ms plus this long (ms). */
#define IDLE_TIMEOUT_SLACK_MS 15000L
/* Backoff of failed requests: a reconnect storm spread over seconds. */
#define IDLE_RETRY_BASE_MS 200
#define IDLE_RETRY_MAX_MS  5000
/* An answer faster than this did not long-poll (ms). */
#define IDLE_INSTANT_MS 5
/* How long the holders may take to release their leases at the end (ms). */
#define RELEASE_WAIT_MS 5000
/* Heartbeat period when the project does not say its lease_ttl_ms. */
#define DEFAULT_TTL_MS 60000

/* Agents per libcurl multi handle. libcurl 7.88 walks its whole connection
 * cache each time a transfer is removed from a multi handle (to close
 * connect-only connections), so 10,000 agents on one multi handle spend
 * their time there: each shard has its own multi handle, and so its own
 * cache of SHARD_AGENTS connections or so. */
#define SHARD_AGENTS SIM_SHARD_AGENTS
/* Requests that may need a new TLS connection (an agent's first, every one
 * after a failure, and its first after a restart mark) in flight at once. Each costs this process a
 * full client handshake (2+ ms of OpenSSL 3 CPU): 10,000 of them at once would starve it past the
 * request timeout, and the time-outs would cost more handshakes. The rest wait their turn,
 * JOIN_WAIT_MIN..MAX ms at a time; a heartbeat does not wait (its lease would expire). */
#define CONNECT_SLOTS    256
#define JOIN_WAIT_MIN    20
#define JOIN_WAIT_MAX    100
#define IDLE_EPOLL_BATCH 256

typedef enum { IOP_LEASE, IOP_HEARTBEAT, IOP_RELEASE } iop_t;

struct idle_s;

typedef struct shard_s {
    struct idle_s *d;
    int index;
    CURLM *multi;
    int64_t due_ms; /* when libcurl asked to be called back, -1: not asked */
    int news;       /* a transfer may have finished: read its messages */
} shard_t;

typedef struct idle_agent_s {
    iop_t op;
    char *lease;       /* the lease it holds, or NULL */
    int hello;         /* its next lease request asks without waiting */
    int sent_hello;    /* the one in flight does */
    int joining;       /* the one in flight holds a connect slot */
    int cut;           /* a request failed and none was answered since */
    int connected;     /* had an answer at least once */
    int served_mark;   /* answered a request sent after the mark */
    int64_t sent_ms;   /* monotonic ms the in-flight request went out */
    int64_t served_ms; /* monotonic ms of the first answer after the mark */
} idle_agent_t;

typedef struct idle_s {
    sim_t *s;
    shard_t *shards; /* agent i is on shard (i - 1) / SHARD_AGENTS */
    int nshards;
    int epfd;               /* every shard's sockets, or -1 */
    int joining;            /* connect slots in use */
    idle_agent_t *ag;       /* one per annotator, by index - 1 */
    int64_t beat_ms;        /* heartbeat period */
    int64_t ttl_ms;         /* the project's lease_ttl_ms */
    int connected;          /* agents answered at least once */
    int64_t connected_ms;   /* monotonic ms the last of them was, 0: not yet */
    long connects;          /* TCP+TLS connections libcurl made */
    long connects_start;    /* ... by the time every agent was connected */
    int holding;            /* leases held now */
    int holding_max;        /* the most held at once */
    long long_polls;        /* lease requests that waited (answered) */
    long hellos;            /* lease requests that did not wait (answered) */
    long heartbeats;        /* heartbeats answered 200 */
    long lost;              /* leases lost: a heartbeat answered 409 */
    long outages;           /* agents cut: a failed request after an answered one */
    long retries;           /* requests retried */
    int cut_now;            /* agents cut now */
    int marks;              /* SIGUSR1s seen */
    int64_t mark_ms;        /* monotonic ms of the last one, 0: none */
    int64_t mark_unix_ms;   /* ... as wall-clock ms */
    int served_again;       /* agents served since the mark */
    int64_t last_served_ms; /* monotonic ms of the last of them */
    int announced;          /* the "all served again" line was printed */
    qr_hist_t hello_hist;   /* latency of lease requests that did not wait (µs) */
    qr_hist_t beat_hist;    /* heartbeat latency (µs) */
} idle_t;

static volatile sig_atomic_t idle_stop, idle_mark;

static void on_idle_signal(int signo)
{
    if (signo == SIGUSR1)
        idle_mark = 1;
    else
        idle_stop = 1;
}

static void install_idle_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_idle_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static idle_agent_t *agent_of(idle_t *d, const annotator_t *a)
{
    return &d->ag[a->index - 1];
}

static CURLM *multi_of(idle_t *d, const annotator_t *a)
{
    return d->shards[(a->index - 1) / SHARD_AGENTS].multi;
}

/* --- the sharded multi-socket driver (as sim_driver.c's, one multi per shard) --- */

/* The epoll entry of a socket: its shard in the high half, its fd in the low. */
static uint64_t ev_key(const shard_t *h, curl_socket_t fd)
{
    return (uint64_t)(uint32_t)h->index << 32 | (uint32_t)fd;
}

static int on_shard_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    shard_t *h = userp;
    struct epoll_event ev = {0};
    ev.data.u64 = ev_key(h, fd);
    if (what == CURL_POLL_REMOVE) {
        if (socketp && epoll_ctl(h->d->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT &&
            errno != EBADF)
            fprintf(stderr, "quorum-agent: epoll_ctl(DEL): %s\n", strerror(errno));
        (void)curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(h->d->epfd, op, fd, &ev) < 0) {
        if (op == EPOLL_CTL_ADD && errno == EEXIST)
            op = EPOLL_CTL_MOD, errno = 0;
        else if (op == EPOLL_CTL_MOD && errno == ENOENT)
            op = EPOLL_CTL_ADD, errno = 0;
        if (errno || epoll_ctl(h->d->epfd, op, fd, &ev) < 0) {
            fprintf(stderr, "quorum-agent: epoll_ctl: %s\n", strerror(errno));
            return -1;
        }
    }
    if (!socketp && curl_multi_assign(h->multi, fd, h) != CURLM_OK)
        return -1;
    return 0;
}

static int on_shard_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    shard_t *h = userp;
    h->due_ms = timeout_ms < 0 ? -1 : qr_mono_ms() + timeout_ms;
    return 0;
}

/* Opens the epoll set and a multi handle per shard. Returns 0 or -1. */
static int shards_open(idle_t *d)
{
    sim_t *s = d->s;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0) {
        fprintf(stderr, "quorum-agent: epoll_create1: %s\n", strerror(errno));
        return -1;
    }
    d->nshards = (s->opt->annotators + SHARD_AGENTS - 1) / SHARD_AGENTS;
    d->shards = qr_xcalloc((size_t)d->nshards, sizeof *d->shards);
    for (int k = 0; k < d->nshards; k++) {
        shard_t *h = &d->shards[k];
        h->d = d;
        h->index = k;
        h->due_ms = -1;
        h->multi = sim_multi_new((long)SHARD_AGENTS + 8, on_shard_socket, on_shard_timer, h);
        if (!h->multi)
            return -1;
    }
    return 0;
}

/* Takes every transfer still in flight off its multi handle, then closes
 * the multi handles and the epoll set. */
static void shards_close(idle_t *d)
{
    sim_t *s = d->s;
    for (int i = 0; d->shards && i < s->opt->annotators; i++) {
        annotator_t *a = &s->ann[i];
        if (a->state != ST_BUSY)
            continue;
        CURLMcode mc = curl_multi_remove_handle(multi_of(d, a), a->call.easy);
        if (mc != CURLM_OK)
            fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                    curl_multi_strerror(mc));
        a->state = ST_STOPPED;
    }
    for (int k = 0; k < d->nshards; k++) {
        CURLMcode mc = d->shards[k].multi ? curl_multi_cleanup(d->shards[k].multi) : CURLM_OK;
        if (mc != CURLM_OK)
            fprintf(stderr, "quorum-agent: curl_multi_cleanup: %s\n", curl_multi_strerror(mc));
    }
    free(d->shards);
    d->shards = NULL;
    if (d->epfd >= 0 && close(d->epfd) < 0)
        fprintf(stderr, "quorum-agent: close(epoll): %s\n", strerror(errno));
    d->epfd = -1;
}

/* Waits up to wait_ms (less when a shard's timer is due sooner) for socket
 * news and lets each shard's libcurl act on it. Returns 0 or -1. */
static int shards_drive(idle_t *d, int64_t wait_ms)
{
    struct epoll_event ev[IDLE_EPOLL_BATCH];
    int64_t now = qr_mono_ms();
    for (int k = 0; k < d->nshards; k++) {
        int64_t due = d->shards[k].due_ms;
        if (due >= 0 && due - now < wait_ms)
            wait_ms = due > now ? due - now : 0;
    }
    if (wait_ms < 0)
        wait_ms = 0;
    int n = epoll_wait(d->epfd, ev, IDLE_EPOLL_BATCH, (int)wait_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        fprintf(stderr, "quorum-agent: epoll_wait: %s\n", strerror(errno));
        return -1;
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        shard_t *h = &d->shards[ev[i].data.u64 >> 32];
        curl_socket_t fd = (curl_socket_t)(uint32_t)ev[i].data.u64;
        int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        CURLMcode mc = curl_multi_socket_action(h->multi, fd, flags, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_socket_action: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
        h->news = 1;
    }
    now = qr_mono_ms();
    for (int k = 0; k < d->nshards; k++) {
        shard_t *h = &d->shards[k];
        if (h->due_ms < 0 || now < h->due_ms)
            continue;
        h->due_ms = -1;
        CURLMcode mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_socket_action: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
        h->news = 1;
    }
    return 0;
}

/* The project's lease_ttl_ms (a heartbeat every third of it, as
 * `quorum-agent exec` beats). Returns 0 or -1 (printed). */
static int load_ttl(idle_t *d)
{
    sim_t *s = d->s;
    qr_client_call_t call;
    if (qr_client_call_init(&call, &s->cfgs[0], REQUEST_TIMEOUT_MS) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", call.message);
        return -1;
    }
    char *path = qr_xasprintf(QR_API_PROJECT("%lld"), s->opt->project);
    json_t *root = NULL;
    int r = qr_cli_call(&call, "GET", path, NULL, &root);
    free(path);
    if (r < 0) {
        fprintf(stderr, "quorum-agent: cannot read project %lld: %s\n", s->opt->project,
                call.message);
        qr_client_call_free(&call);
        return -1;
    }
    json_t *ttl = json_object_get(root, "lease_ttl_ms");
    d->ttl_ms = json_is_integer(ttl) ? (int64_t)json_integer_value(ttl) : DEFAULT_TTL_MS;
    d->beat_ms = d->ttl_ms / 3 > 200 ? d->ttl_ms / 3 : 200;
    json_decref(root);
    qr_client_call_free(&call);
    return 0;
}

/* Starts a's request (its op). Returns 0, or -1 when it could not even be
 * built (the agent is then failed). */
static int start_idle(idle_t *d, annotator_t *a, int64_t now)
{
    sim_t *s = d->s;
    idle_agent_t *g = agent_of(d, a);
    char *path = NULL, *body = NULL;
    long timeout = REQUEST_TIMEOUT_MS;
    int rc = -1;

    if (g->op == IOP_LEASE) {
        path = qr_xasprintf(QR_API_LEASES("%lld"), s->opt->project);
        g->sent_hello = g->hello || s->opt->wait_ms == 0;
        if (g->sent_hello) {
            body = qr_xstrdup("{\"max\":1}");
        } else {
            body = qr_xasprintf("{\"max\":1,\"wait_ms\":%d}", s->opt->wait_ms);
            timeout = s->opt->wait_ms + IDLE_TIMEOUT_SLACK_MS;
        }
    } else {
        char *esc = curl_easy_escape(a->call.easy, g->lease, 0);
        if (esc)
            path = qr_xasprintf(g->op == IOP_HEARTBEAT ? QR_API_LEASE_HEARTBEAT("%lld", "%s")
                                                       : QR_API_LEASE_RELEASE("%lld", "%s"),
                                s->opt->project, esc);
        curl_free(esc);
        body =
            qr_xstrdup(g->op == IOP_HEARTBEAT ? "" : "{\"reason\":\"simulated: idle run over\"}");
    }
    if (!path) {
        snprintf(a->call.message, sizeof a->call.message, "cannot build the request");
        goto out;
    }
    if (qr_client_call_setup(&a->call, "POST", path, body, strlen(body), "application/json",
                             a->token) < 0)
        goto out;
    CURLcode cc = curl_easy_setopt(a->call.easy, CURLOPT_TIMEOUT_MS, timeout);
    if (cc != CURLE_OK) {
        snprintf(a->call.message, sizeof a->call.message, "CURLOPT_TIMEOUT_MS: %s",
                 curl_easy_strerror(cc));
        goto out;
    }
    CURLMcode mc = curl_multi_add_handle(multi_of(d, a), a->call.easy);
    if (mc != CURLM_OK) {
        snprintf(a->call.message, sizeof a->call.message, "curl_multi_add_handle: %s",
                 curl_multi_strerror(mc));
        goto out;
    }
    sim_heap_remove(s, a);
    a->state = ST_BUSY;
    a->sent_us = sim_mono_us();
    g->sent_ms = now;
    s->requests[g->op == IOP_LEASE ? OP_LEASE : OP_RELEASE]++;
    rc = 0;
out:
    free(path);
    free(body);
    if (rc < 0)
        sim_fail(a, g->op == IOP_LEASE       ? "lease"
                    : g->op == IOP_HEARTBEAT ? "heartbeat"
                                             : "release");
    return rc;
}

/* When to beat next: the period, or sooner when the answer came so late
 * that half of what is left of the lease (its expires_at_ms, wall clock) is
 * less. */
static int64_t next_beat(const idle_t *d, json_t *answer, int64_t now)
{
    json_t *exp = json_object_get(answer, "expires_at_ms");
    int64_t in = d->beat_ms;
    if (json_is_integer(exp)) {
        int64_t half = ((int64_t)json_integer_value(exp) - qr_now_ms()) / 2;
        if (half < in)
            in = half > 100 ? half : 100;
    }
    return now + in;
}

static void drop_lease(idle_t *d, idle_agent_t *g)
{
    if (!g->lease)
        return;
    free(g->lease);
    g->lease = NULL;
    d->holding--;
}

/* The broker answered a's request (whatever it said). */
static void served(idle_t *d, annotator_t *a, int64_t now)
{
    sim_t *s = d->s;
    idle_agent_t *g = agent_of(d, a);
    if (g->cut) {
        g->cut = 0;
        d->cut_now--;
    }
    qr_backoff_reset(&a->backoff);
    if (!g->connected) {
        g->connected = 1;
        if (++d->connected == s->opt->annotators) {
            d->connected_ms = now;
            d->connects_start = d->connects;
            fprintf(stderr, "quorum-agent: idle: all %d agents connected (%ld connections made)\n",
                    s->opt->annotators, d->connects);
        }
    }
    if (d->mark_ms && !g->served_mark && g->sent_ms >= d->mark_ms) {
        g->served_mark = 1;
        g->served_ms = now;
        d->served_again++;
        d->last_served_ms = now;
    }
}

/* a's request got no answer, a 5xx or a 429: the same request again later
 * (a lease as a hello). */
static void cut(idle_t *d, annotator_t *a, int64_t now)
{
    idle_agent_t *g = agent_of(d, a);
    sim_count_error(d->s, &a->call);
    if (!g->cut) {
        g->cut = 1;
        d->cut_now++;
        if (g->connected)
            d->outages++;
    }
    if (g->op == IOP_LEASE)
        g->hello = 1;
    d->retries++;
    sim_schedule(a, now + qr_backoff_next(&a->backoff));
}

static int answered(const qr_client_call_t *call)
{
    return call->status > 0 && call->status < 500 && call->status != 429;
}

static void on_lease_answer(idle_t *d, annotator_t *a, int ok, int64_t now, int64_t took_us)
{
    sim_t *s = d->s;
    idle_agent_t *g = agent_of(d, a);
    int was_hello = g->sent_hello;
    if (!ok) {
        sim_count_error(s, &a->call);
        sim_fail(a, "lease");
        return;
    }
    /* Not served since a restart mark (this answer was to a request sent
     * before it): the next lease request is a hello too. */
    g->hello = d->mark_ms && !g->served_mark;
    if (was_hello) {
        d->hellos++;
        qr_hist_record(&d->hello_hist, (uint64_t)took_us);
    } else {
        d->long_polls++;
    }
    json_error_t jerr;
    json_t *root =
        json_loadb(a->call.body.data ? a->call.body.data : "", a->call.body.len, 0, &jerr);
    json_t *l = json_array_get(json_object_get(root, "leases"), 0);
    json_t *name = json_object_get(l, "lease");
    if (json_is_string(name) || json_is_integer(name)) {
        g->lease = json_is_string(name)
                       ? qr_xstrdup(json_string_value(name))
                       : qr_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(name));
        if (++d->holding > d->holding_max)
            d->holding_max = d->holding;
        g->op = IOP_HEARTBEAT;
        sim_schedule(a, next_beat(d, l, now));
    } else if (g->hello || was_hello || took_us / 1000 >= IDLE_INSTANT_MS) {
        sim_schedule(a, now); /* long-poll at once */
    } else {
        /* Answered at once without waiting (the project has nothing to
         * wait for): ask again later, not in a loop. */
        sim_schedule(a, now + sim_jitter(a, s->opt->wait_ms / 2, s->opt->wait_ms));
    }
    json_decref(root);
}

static void on_beat_answer(idle_t *d, annotator_t *a, int ok, int64_t now, int64_t took_us)
{
    sim_t *s = d->s;
    idle_agent_t *g = agent_of(d, a);
    if (ok) {
        json_error_t jerr;
        json_t *root =
            json_loadb(a->call.body.data ? a->call.body.data : "", a->call.body.len, 0, &jerr);
        d->heartbeats++;
        qr_hist_record(&d->beat_hist, (uint64_t)took_us);
        sim_schedule(a, next_beat(d, root, now));
        json_decref(root);
        return;
    }
    sim_count_error(s, &a->call);
    if (a->call.status == 409 || a->call.status == 404) { /* expired, or gone */
        d->lost++;
        drop_lease(d, g);
        g->op = IOP_LEASE;
        sim_schedule(a, now);
        return;
    }
    sim_fail(a, "heartbeat");
    drop_lease(d, g);
}

/* Collects finished transfers. Returns 0 or -1. */
static int collect_shard(idle_t *d, shard_t *h);

static int collect_idle(idle_t *d)
{
    for (int k = 0; k < d->nshards; k++) {
        shard_t *h = &d->shards[k];
        if (!h->news)
            continue;
        h->news = 0;
        if (collect_shard(d, h) < 0)
            return -1;
    }
    return 0;
}

/* Collects the finished transfers of shard h. Returns 0 or -1. */
static int collect_shard(idle_t *d, shard_t *h)
{
    sim_t *s = d->s;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        long nconn = 0;
        annotator_t *a = sim_msg_annotator(msg);
        if (!a)
            return -1;
        if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK)
            d->connects += nconn;
        CURLMcode mc = curl_multi_remove_handle(h->multi, easy);
        if (mc != CURLM_OK) {
            fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                    curl_multi_strerror(mc));
            return -1;
        }
        a->state = ST_WAITING;
        idle_agent_t *g = agent_of(d, a);
        if (g->joining) {
            g->joining = 0;
            d->joining--;
        }
        int ok = qr_client_call_finish(&a->call, result) == 0;
        int64_t took_us = sim_mono_us() - a->sent_us;
        int64_t now = qr_mono_ms();
        if (!answered(&a->call)) {
            if (g->op == IOP_RELEASE) { /* the run is over: not retried */
                sim_count_error(s, &a->call);
                drop_lease(d, g);
                sim_finish(a, ST_STOPPED);
            } else {
                cut(d, a, now);
            }
            continue;
        }
        served(d, a, now);
        if (g->op == IOP_LEASE) {
            on_lease_answer(d, a, ok, now, took_us);
        } else if (g->op == IOP_HEARTBEAT) {
            on_beat_answer(d, a, ok, now, took_us);
        } else {
            if (!ok)
                sim_count_error(s, &a->call);
            drop_lease(d, g);
            sim_finish(a, ST_STOPPED);
        }
    }
    return 0;
}

/* SIGUSR1: a broker restart. Every agent is to be served again. */
static void mark_restart(idle_t *d, int64_t now)
{
    sim_t *s = d->s;
    d->marks++;
    d->mark_ms = now;
    d->mark_unix_ms = qr_now_ms();
    d->served_again = 0;
    d->last_served_ms = 0;
    d->announced = 0;
    for (int i = 0; i < s->opt->annotators; i++) {
        d->ag[i].served_mark = 0;
        d->ag[i].served_ms = 0;
        if (d->ag[i].op == IOP_LEASE)
            d->ag[i].hello = 1;
    }
    fprintf(stderr, "quorum-agent: idle: restart mark at %lld (unix ms)\n",
            (long long)d->mark_unix_ms);
}

/* Drops the long polls in flight (the broker answers them to nobody and
 * grants them nothing), so that the leases released next do not go to
 * agents that would only release them in turn. */
static void drop_long_polls(idle_t *d)
{
    sim_t *s = d->s;
    for (int i = 0; i < s->opt->annotators; i++) {
        annotator_t *a = &s->ann[i];
        if (a->state != ST_BUSY || d->ag[i].op != IOP_LEASE)
            continue;
        CURLMcode mc = curl_multi_remove_handle(multi_of(d, a), a->call.easy);
        if (mc != CURLM_OK)
            fprintf(stderr, "quorum-agent: curl_multi_remove_handle: %s\n",
                    curl_multi_strerror(mc));
        a->state = ST_WAITING;
        sim_finish(a, ST_STOPPED);
    }
}

/* The end: holders release their leases, every other agent stops. */
static void begin_stop(idle_t *d, int64_t now)
{
    sim_t *s = d->s;
    for (int i = 0; i < s->opt->annotators; i++) {
        annotator_t *a = &s->ann[i];
        idle_agent_t *g = &d->ag[i];
        if (a->state != ST_WAITING)
            continue; /* busy: handled when its answer comes (or dropped) */
        if (g->lease) {
            g->op = IOP_RELEASE;
            (void)start_idle(d, a, now);
        } else {
            sim_finish(a, ST_STOPPED);
        }
    }
}

static void print_progress(idle_t *d, int64_t now)
{
    sim_t *s = d->s;
    fprintf(stderr,
            "[%6.1fs] idle: connected %d/%d  holding %d  long polls %ld  hellos %ld  "
            "heartbeats %ld  cut %d  served again %d  lost %ld\n",
            (double)(now - s->start_ms) / 1000.0, d->connected, s->opt->annotators, d->holding,
            d->long_polls, d->hellos, d->heartbeats, d->cut_now, d->served_again, d->lost);
}

static double ms_of(uint64_t us)
{
    return (double)us / 1000.0;
}

static json_t *hist_json(const qr_hist_t *h)
{
    return json_pack("{s:f, s:f, s:f, s:I}", "p50", ms_of(qr_hist_quantile(h, 0.5)), "p99",
                     ms_of(qr_hist_quantile(h, 0.99)), "p999", ms_of(qr_hist_quantile(h, 0.999)),
                     "n", (json_int_t)h->count);
}

/* Seconds from the mark to the last agent served again, or -1. */
static double reconnect_seconds(const idle_t *d, int running)
{
    if (!d->mark_ms || d->served_again < running || running == 0)
        return -1;
    return (double)(d->last_served_ms - d->mark_ms) / 1000.0;
}

static json_t *summary_json(const idle_t *d, double elapsed, int running)
{
    const sim_t *s = d->s;
    double rs = reconnect_seconds(d, running);
    json_t *errors = json_object();
    for (size_t i = 0; errors && i < s->nerrors; i++)
        if (s->errors[i].count)
            json_object_set_new(errors, s->errors[i].name, json_integer(s->errors[i].count));
    json_t *restart = json_pack("{s:i, s:I, s:i, s:o}", "marks", d->marks, "mark_unix_ms",
                                (json_int_t)d->mark_unix_ms, "served_again", d->served_again,
                                "all_served_again_seconds", rs >= 0 ? json_real(rs) : json_null());
    return json_pack(
        "{s:s, s:I, s:s, s:f, s:i, s:i, s:f, s:I, s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:o, s:o, s:o, s:o}",
        "mode", "idle", "seed", (json_int_t)s->opt->seed, "run", s->run_id, "elapsed_seconds",
        elapsed, "agents", s->opt->annotators, "connected", d->connected, "connect_seconds",
        d->connected_ms ? (double)(d->connected_ms - s->start_ms) / 1000.0 : -1.0, "connections",
        (json_int_t)d->connects, "heartbeat_period_ms", (json_int_t)d->beat_ms, "lease_ttl_ms",
        (json_int_t)d->ttl_ms, "holding_max", d->holding_max, "long_polls",
        (json_int_t)d->long_polls, "hellos", (json_int_t)d->hellos, "heartbeats",
        (json_int_t)d->heartbeats, "leases_lost", (json_int_t)d->lost, "outages",
        (json_int_t)d->outages, "retries", (json_int_t)d->retries, "wait_ms",
        (json_int_t)s->opt->wait_ms, "restart", restart, "hello_latency_ms",
        hist_json(&d->hello_hist), "heartbeat_latency_ms", hist_json(&d->beat_hist), "errors",
        errors);
}

static void print_summary(const idle_t *d, double elapsed, int running)
{
    const sim_t *s = d->s;
    double rs = reconnect_seconds(d, running);
    printf("idle run %s: %d agents, %.1f s\n", s->run_id, s->opt->annotators, elapsed);
    printf("connected: %d (all after %.2f s), %ld connections made\n", d->connected,
           d->connected_ms ? (double)(d->connected_ms - s->start_ms) / 1000.0 : -1.0, d->connects);
    printf("long polls: %ld (wait %d ms), hellos: %ld, hello p99 %.2f ms\n", d->long_polls,
           s->opt->wait_ms, d->hellos, ms_of(qr_hist_quantile(&d->hello_hist, 0.99)));
    printf("leases held at most: %d, heartbeats: %ld every %lld ms (p99 %.2f ms), lost: %ld\n",
           d->holding_max, d->heartbeats, (long long)d->beat_ms,
           ms_of(qr_hist_quantile(&d->beat_hist, 0.99)), d->lost);
    printf("outages: %ld, retries: %ld", d->outages, d->retries);
    if (d->marks)
        printf(", restart mark: served again %d/%d, all after %s%.2f s", d->served_again, running,
               rs >= 0 ? "" : "(not all) ", rs >= 0 ? rs : 0.0);
    printf("\nerrors:");
    int any = 0;
    for (size_t i = 0; i < s->nerrors; i++)
        if (s->errors[i].count) {
            printf(" %s=%ld", s->errors[i].name, s->errors[i].count);
            any = 1;
        }
    printf("%s\n", any ? "" : " none");
    fflush(stdout);
}

static int write_summary(const idle_t *d, double elapsed, int running)
{
    const char *path = d->s->opt->json_summary;
    json_t *j = summary_json(d, elapsed, running);
    int rc = j ? json_dump_file(j, path, JSON_INDENT(2)) : -1;
    json_decref(j);
    if (rc < 0)
        fprintf(stderr, "quorum-agent: cannot write the JSON summary %s\n", path);
    return rc < 0 ? -1 : 0;
}

/* Agents still running the idle loop (not failed). Once per loop turn, so
 * a count, not a walk over 10,000 agents. */
static int running_agents(const sim_t *s)
{
    return s->opt->annotators - s->failed;
}

int sim_idle_run(sim_t *s)
{
    idle_t d;
    memset(&d, 0, sizeof d);
    d.s = s;
    if (load_ttl(&d) < 0)
        return 1;
    d.epfd = -1;
    if (shards_open(&d) < 0) {
        shards_close(&d);
        return 1;
    }
    d.ag = qr_xcalloc((size_t)s->opt->annotators, sizeof *d.ag);
    install_idle_signals();

    int n = s->opt->annotators, rc = 0, stopping = 0, failed_loop = 0;
    s->start_ms = qr_mono_ms();
    int64_t deadline = s->start_ms + (int64_t)(s->opt->max_seconds * 1000.0);
    int64_t stop_ms =
        s->opt->duration > 0 ? s->start_ms + (int64_t)(s->opt->duration * 1000.0) : INT64_MAX;
    int64_t stop_deadline = 0, next_report = s->start_ms + 1000;
    for (int i = 0; i < n; i++) {
        annotator_t *a = &s->ann[i];
        qr_backoff_init(&a->backoff, IDLE_RETRY_BASE_MS, IDLE_RETRY_MAX_MS, a->rng ^ 0x9e3779b9u);
        d.ag[i].op = IOP_LEASE;
        d.ag[i].hello = 1;
        sim_schedule(a,
                     s->start_ms + (s->opt->spread_ms ? sim_jitter(a, 0, s->opt->spread_ms) : 0));
    }
    fprintf(stderr,
            "quorum-agent: idle: %d agents start within %d ms; long polls of %d ms, heartbeats "
            "every %lld ms\n",
            n, s->opt->spread_ms, s->opt->wait_ms, (long long)d.beat_ms);
    for (;;) {
        int64_t now = qr_mono_ms();
        if (now >= deadline) {
            s->timed_out = 1;
            break;
        }
        if (idle_mark) {
            idle_mark = 0;
            mark_restart(&d, now);
        }
        if (!stopping && (idle_stop || now >= stop_ms)) {
            stopping = 1;
            stop_deadline = now + RELEASE_WAIT_MS;
            drop_long_polls(&d);
            begin_stop(&d, now);
        }
        if (stopping) {
            int pending = 0;
            for (int i = 0; i < n; i++)
                pending += d.ag[i].lease != NULL && s->ann[i].state != ST_FAILED;
            if (pending == 0 || now >= stop_deadline)
                break;
        } else {
            while (s->nheap > 0 && s->heap[0]->wake_ms <= now) {
                annotator_t *a = s->heap[0];
                idle_agent_t *g = agent_of(&d, a);
                /* A heartbeat never waits: its lease would expire. After a
                 * restart mark every connection is new: a lease request not
                 * yet served since takes a connect slot too (9,000 TLS
                 * handshakes under way at once here and in the broker each
                 * took so long that thousands timed out and began again). */
                int joins = (!g->connected || g->cut || (d.mark_ms && !g->served_mark)) &&
                            g->op == IOP_LEASE;
                if (joins && d.joining >= CONNECT_SLOTS) {
                    sim_schedule(a, now + sim_jitter(a, JOIN_WAIT_MIN, JOIN_WAIT_MAX));
                    continue;
                }
                sim_heap_remove(s, a);
                if (start_idle(&d, a, now) == 0 && joins) {
                    g->joining = 1;
                    d.joining++;
                }
            }
        }
        if (collect_idle(&d) < 0) {
            failed_loop = 1;
            break;
        }
        if (stopping) /* agents whose long poll or heartbeat just ended */
            begin_stop(&d, now);
        int running = running_agents(s);
        if (d.mark_ms && !d.announced && running > 0 && d.served_again >= running) {
            d.announced = 1;
            fprintf(stderr,
                    "quorum-agent: idle: all %d agents served again %.2f s after the mark\n",
                    running, reconnect_seconds(&d, running));
        }
        if (running == 0) {
            fprintf(stderr, "quorum-agent: idle: every agent failed\n");
            failed_loop = 1;
            break;
        }
        now = qr_mono_ms();
        if (now >= next_report) {
            print_progress(&d, now);
            next_report = now + 1000;
        }
        int64_t until = next_report;
        if (!stopping && s->nheap > 0 && s->heap[0]->wake_ms < until)
            until = s->heap[0]->wake_ms;
        int64_t wait = until - now;
        if (wait > 250)
            wait = 250; /* bounds the latency of noticing a signal */
        if (shards_drive(&d, wait) < 0) {
            failed_loop = 1;
            break;
        }
    }
    double elapsed = (double)(qr_mono_ms() - s->start_ms) / 1000.0;
    int running = running_agents(s);
    print_summary(&d, elapsed, running);
    if (s->opt->json_summary && write_summary(&d, elapsed, running) < 0)
        rc = 1;
    if (failed_loop || running < n)
        rc = 1;
    if (s->timed_out) {
        fprintf(stderr, "quorum-agent: --max-seconds %.0f reached before the idle run ended\n",
                s->opt->max_seconds);
        rc = 1;
    }
    shards_close(&d);
    for (int i = 0; i < n; i++)
        free(d.ag[i].lease);
    free(d.ag);
    return rc;
}
