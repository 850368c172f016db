/*
 * webhook.c - the webhook dispatcher (webhook.h): a timer claims due
 * deliveries over the dispatcher's own PostgreSQL connection, libcurl's
 * multi interface posts them with its sockets watched by uv_poll_t handles
 * and its timeouts by a uv_timer_t, and each outcome is written back.
 *
 * Ownership: the dispatcher owns its pool, the curl multi handle, one
 * delivery_t per post in flight (easy handle, headers, body) and one
 * sock_t per socket curl watches (freed in its close callback). It is
 * freed once every handle has closed and the pool has closed.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "pg.h"
#include "sql_webhook.h"
#include "webhook.h"

typedef struct delivery_s {
    struct qr_webhook_s *d;
    CURL *easy;
    struct curl_slist *headers;
    char *body;    /* the event's JSON (the signed bytes) */
    int64_t id;    /* webhook_deliveries.id */
    int attempt;   /* 1 for the first post */
    int64_t age_s; /* the event's age when claimed */
    char err[CURL_ERROR_SIZE];
    char refused[160]; /* why the connection was refused (a private address), or "" */
    struct delivery_s *prev, *next;
} delivery_t;

typedef struct sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
    struct qr_webhook_s *d;
    int closing;
    struct sock_s *prev, *next;
} sock_t;

struct qr_webhook_s {
    uv_loop_t *loop;
    qr_webhook_config_t cfg;
    qr_pg_t *pg;
    CURLM *multi;
    uv_timer_t tick;       /* looks for due deliveries every poll_ms */
    uv_timer_t curl_timer; /* curl's own timeouts */
    delivery_t *inflight;  /* posts in flight (a list) */
    sock_t *socks;         /* sockets curl watches (a list) */
    json_t *outcomes;      /* outcomes not yet written (QR_SQL_WEBHOOK_OUTCOMES rows) */
    int ninflight;
    int claiming;           /* a claim query is out */
    int pruning;            /* a prune query is out */
    uint64_t next_prune_ms; /* uv_now when old events are looked for next */
    uint64_t pruned;        /* events deleted by retention */
    int closing;
    int open_handles; /* timers and sockets not yet closed */
    int pg_open;
    uint64_t posted, delivered;
    void (*close_cb)(void *);
    void *close_arg;
};

void qr_webhook_config_defaults(qr_webhook_config_t *cfg)
{
    cfg->poll_ms = 250;
    cfg->timeout_ms = 10000;
    cfg->retry_base_ms = 1000;
    cfg->retry_max_ms = 3600000;
    cfg->give_up_s = 86400;
    cfg->max_inflight = 32;
    cfg->keep_s = 30.0 * 86400;
    cfg->prune_ms = 0;
}

uint64_t qr_webhook_posted(const qr_webhook_t *d)
{
    return d->posted;
}

uint64_t qr_webhook_delivered(const qr_webhook_t *d)
{
    return d->delivered;
}

static void maybe_free(qr_webhook_t *d)
{
    if (!d->closing || d->open_handles || d->pg_open)
        return;
    void (*cb)(void *) = d->close_cb;
    void *arg = d->close_arg;
    json_decref(d->outcomes);
    free(d);
    if (cb)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    qr_webhook_t *d = h->data;
    d->open_handles--;
    maybe_free(d);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    qr_webhook_t *d = s->d;
    if (s->prev)
        s->prev->next = s->next;
    else
        d->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    d->open_handles--;
    maybe_free(d);
}

static void delivery_free(delivery_t *dl)
{
    qr_webhook_t *d = dl->d;
    if (dl->prev)
        dl->prev->next = dl->next;
    else
        d->inflight = dl->next;
    if (dl->next)
        dl->next->prev = dl->prev;
    d->ninflight--;
    if (dl->easy) {
        CURLMcode mc = curl_multi_remove_handle(d->multi, dl->easy);
        if (mc != CURLM_OK)
            qr_warn("webhook: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
        curl_easy_cleanup(dl->easy);
    }
    curl_slist_free_all(dl->headers);
    free(dl->body);
    free(dl);
}

/* --- outcomes ----------------------------------------------------------------- */

static void on_recorded(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    /* Lost outcomes leave their deliveries claimed: they are posted again
     * once the claim lapses (at least once). */
    if (!res)
        qr_warn("webhook: cannot record %s delivery outcomes: %s", (const char *)arg,
                err ? err : "?");
}

/* Writes the outcomes gathered since the last flush in one statement (one
 * round trip and one commit for a tick's worth of posts, not one each). */
static void flush_outcomes(qr_webhook_t *d)
{
    size_t n = json_array_size(d->outcomes);
    if (!n)
        return;
    char *text = json_dumps(d->outcomes, JSON_COMPACT);
    json_array_clear(d->outcomes);
    if (!text) {
        qr_warn("webhook: cannot encode %zu delivery outcomes", n);
        return;
    }
    const char *params[] = {text};
    if (qr_pg_query(d->pg, QR_SQL_WEBHOOK_OUTCOMES, 1, params, on_recorded, "some") < 0)
        qr_warn("webhook: pool closing, %zu deliveries stay claimed", n);
    free(text);
}

/* The delay before attempt `attempt` + 1, in ms: retry_base_ms doubled for
 * each attempt made, at most retry_max_ms, spread by -25%..+25% so that the
 * deliveries of one outage do not all come back at once. */
static int64_t backoff_ms(const qr_webhook_config_t *cfg, int attempt)
{
    double ms = cfg->retry_base_ms;
    for (int i = 1; i < attempt && ms < cfg->retry_max_ms; i++)
        ms *= 2;
    if (ms > cfg->retry_max_ms)
        ms = cfg->retry_max_ms;
    unsigned char r[2] = {0, 0};
    if (RAND_bytes(r, sizeof r) != 1)
        r[0] = r[1] = 0x80;
    double spread = 0.75 + 0.5 * ((r[0] << 8 | r[1]) / 65535.0);
    return (int64_t)(ms * spread);
}

/* Gathers one post's outcome (status 0: no answer) for the next flush:
 * delivered on a 2xx, else retried later or, once the event is too old,
 * failed. */
static void record(delivery_t *dl, long status, const char *why)
{
    qr_webhook_t *d = dl->d;
    int ok = status >= 200 && status < 300;
    int64_t ms = 0;
    int give_up = 0;
    if (ok) {
        d->delivered++;
    } else {
        ms = backoff_ms(&d->cfg, dl->attempt);
        give_up = dl->age_s + ms / 1000 > d->cfg.give_up_s;
        if (give_up)
            qr_warn("webhook: delivery %" PRId64 " failed for good after %d attempts: %s", dl->id,
                    dl->attempt, why);
    }
    json_t *o = json_pack("{sI ss? sI sb sb}", "id", (json_int_t)dl->id, "why", ok ? NULL : why,
                          "delay_ms", (json_int_t)ms, "give_up", give_up, "ok", ok);
    if (o && status > 0)
        json_object_set_new(o, "status", json_integer(status));
    if (!o || json_array_append_new(d->outcomes, o) < 0) {
        qr_warn("webhook: cannot keep delivery %" PRId64 "'s outcome", dl->id);
        return;
    }
    if (json_array_size(d->outcomes) >= 256)
        flush_outcomes(d);
}

/* Takes the finished transfers from curl and records them. */
static void check_done(qr_webhook_t *d)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        delivery_t *dl = NULL;
        if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&dl) != CURLE_OK || !dl)
            continue;
        CURLcode result = m->data.result;
        long status = 0;
        if (result == CURLE_OK &&
            curl_easy_getinfo(dl->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        char why[CURL_ERROR_SIZE + 64];
        if (result != CURLE_OK && dl->refused[0])
            snprintf(why, sizeof why, "refused: %s (quorumd --webhook-allow-private allows it)",
                     dl->refused);
        else if (result != CURLE_OK)
            snprintf(why, sizeof why, "%s", dl->err[0] ? dl->err : curl_easy_strerror(result));
        else
            snprintf(why, sizeof why, "the receiver answered %ld", status);
        record(dl, result == CURLE_OK ? status : 0, why);
        delivery_free(dl);
    }
}

/* --- libcurl on the event loop ------------------------------------------------- */

static void sock_close(sock_t *s);

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    qr_webhook_t *d = s->d;
    int flags = 0, running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    CURLMcode mc = curl_multi_socket_action(d->multi, s->fd, flags, &running);
    if (mc != CURLM_OK)
        qr_warn("webhook: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    check_done(d);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    qr_webhook_t *d = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (curl_multi_assign(d->multi, fd, NULL) != CURLM_OK)
                qr_warn("webhook: curl_multi_assign failed");
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = qr_xcalloc(1, sizeof *s);
        s->fd = fd;
        s->d = d;
        int rc = uv_poll_init_socket(d->loop, &s->poll, fd);
        if (rc < 0) {
            qr_warn("webhook: uv_poll_init_socket: %s", uv_strerror(rc));
            free(s);
            return -1; /* curl fails the transfer */
        }
        s->poll.data = s;
        s->next = d->socks;
        if (d->socks)
            d->socks->prev = s;
        d->socks = s;
        d->open_handles++;
        if (curl_multi_assign(d->multi, fd, s) != CURLM_OK)
            qr_warn("webhook: curl_multi_assign failed");
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc < 0) {
        qr_warn("webhook: uv_poll_start: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Stops watching a socket; the sock_t goes in its close callback. */
static void sock_close(sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    int rc = uv_poll_stop(&s->poll);
    if (rc < 0)
        qr_warn("webhook: uv_poll_stop: %s", uv_strerror(rc));
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_curl_timeout(uv_timer_t *t)
{
    qr_webhook_t *d = t->data;
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK)
        qr_warn("webhook: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    check_done(d);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    qr_webhook_t *d = userp;
    int rc = timeout_ms < 0
                 ? uv_timer_stop(&d->curl_timer)
                 : uv_timer_start(&d->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    if (rc < 0) {
        qr_warn("webhook: curl timer: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* libcurl's socket for a connection to addr: refused (no socket) when addr
 * is in a private network and the broker does not allow that, so the check
 * is on the very address connected to, whatever the name resolved to. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    delivery_t *dl = arg;
    (void)purpose;
    if (!dl->d->cfg.allow_private &&
        qr_webhook_addr_private(&addr->addr, dl->refused, sizeof dl->refused))
        return CURL_SOCKET_BAD;
    return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n; /* the receiver's answer body is not kept */
}

/* --- posting -------------------------------------------------------------------- */

/* Starts the post of one claimed row (QR_SQL_WEBHOOK_CLAIM's columns). A
 * row that cannot be posted (a secret that does not open under this
 * broker's key, curl refusing) is recorded as a failed attempt. */
static void post_row(qr_webhook_t *d, const PGresult *res, int row)
{
    delivery_t *dl = qr_xcalloc(1, sizeof *dl);
    dl->d = d;
    dl->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    dl->attempt = atoi(PQgetvalue(res, row, 1));
    dl->age_s = strtoll(PQgetvalue(res, row, 7), NULL, 10);
    dl->body = qr_xstrdup(PQgetvalue(res, row, 6));
    dl->next = d->inflight;
    if (d->inflight)
        d->inflight->prev = dl;
    d->inflight = dl;
    d->ninflight++;
    const char *url = PQgetvalue(res, row, 2), *uid = PQgetvalue(res, row, 4),
               *type = PQgetvalue(res, row, 5);

    char *secret = qr_webhook_unseal(d->cfg.key, PQgetvalue(res, row, 3));
    if (!secret) {
        record(dl, 0, "the secret does not open under this broker's webhook key");
        delivery_free(dl);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    char sig[65];
    int rc = qr_webhook_sign(secret, now, dl->body, strlen(dl->body), sig);
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    if (rc < 0) {
        record(dl, 0, "cannot sign the body");
        delivery_free(dl);
        return;
    }
    char *h;
    struct curl_slist *l = NULL, *t;
#define ADD_HEADER(...)                                                                            \
    do {                                                                                           \
        h = qr_xasprintf(__VA_ARGS__);                                                             \
        t = curl_slist_append(l, h);                                                               \
        free(h);                                                                                   \
        if (!t)                                                                                    \
            goto fail;                                                                             \
        l = t;                                                                                     \
    } while (0)
    ADD_HEADER("Content-Type: application/json");
    ADD_HEADER("User-Agent: quorumd-webhook/1");
    ADD_HEADER("X-Quorum-Event: %s", type);
    ADD_HEADER("X-Quorum-Event-Id: %s", uid);
    ADD_HEADER("X-Quorum-Delivery: %" PRId64, dl->id);
    ADD_HEADER("X-Quorum-Attempt: %d", dl->attempt);
    ADD_HEADER("X-Quorum-Signature: t=%" PRId64 ",v1=%s", now, sig);
    ADD_HEADER("Expect:"); /* no 100-continue round trip */
#undef ADD_HEADER
    dl->headers = l;
    dl->easy = curl_easy_init();
    if (!dl->easy)
        goto fail;
    CURL *e = dl->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, dl->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, dl->body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(dl->body)) !=
            CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->cfg.timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->cfg.timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, dl->err) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, dl) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, dl) != CURLE_OK)
        goto fail;
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK)
        goto fail;
    d->posted++;
    return;
fail:
    if (!dl->headers)
        curl_slist_free_all(l);
    if (dl->easy) {
        curl_easy_cleanup(dl->easy);
        dl->easy = NULL;
    }
    record(dl, 0, "cannot set up the post (libcurl)");
    delivery_free(dl);
}

static void claim(qr_webhook_t *d);

static void on_claimed(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    qr_webhook_t *d = arg;
    d->claiming = 0;
    if (d->closing)
        return;
    if (!res) {
        qr_warn("webhook: cannot claim deliveries: %s", err ? err : "?");
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        post_row(d, res, i);
    /* A full batch: more may be due; look again at once. */
    if (n > 0 && d->ninflight < d->cfg.max_inflight)
        claim(d);
}

static void claim(qr_webhook_t *d)
{
    if (d->closing || d->claiming || d->ninflight >= d->cfg.max_inflight)
        return;
    char n[24], lease[24];
    snprintf(n, sizeof n, "%d", d->cfg.max_inflight - d->ninflight);
    snprintf(lease, sizeof lease, "%d", d->cfg.timeout_ms / 1000 + 30);
    const char *params[] = {n, lease};
    if (qr_pg_query(d->pg, QR_SQL_WEBHOOK_CLAIM, 2, params, on_claimed, d) == 0)
        d->claiming = 1;
}

/* Retention (QR_SQL_WEBHOOK_PRUNE): a batch at a time, again at once while
 * a batch is full, else at the next prune time. */
#define PRUNE_BATCH 10000

static void prune(qr_webhook_t *d);

static void on_pruned(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    qr_webhook_t *d = arg;
    (void)sqlstate;
    d->pruning = 0;
    if (d->closing)
        return;
    if (!res) {
        qr_warn("webhook: cannot delete old events: %s", err ? err : "?");
        return;
    }
    int n = PQntuples(res);
    d->pruned += (uint64_t)n;
    if (n > 0)
        qr_info("webhook: %d events older than %.0f s deleted with their deliveries", n,
                d->cfg.keep_s);
    if (n == PRUNE_BATCH)
        prune(d);
}

static void prune(qr_webhook_t *d)
{
    if (d->closing || d->pruning)
        return;
    char keep[40], batch[24];
    snprintf(keep, sizeof keep, "%.3f", d->cfg.keep_s);
    snprintf(batch, sizeof batch, "%d", PRUNE_BATCH);
    const char *params[] = {keep, batch};
    if (qr_pg_query(d->pg, QR_SQL_WEBHOOK_PRUNE, 2, params, on_pruned, d) == 0)
        d->pruning = 1;
}

static void on_tick(uv_timer_t *t)
{
    qr_webhook_t *d = t->data;
    flush_outcomes(d);
    claim(d);
    uint64_t now = uv_now(d->loop);
    if (now >= d->next_prune_ms) {
        d->next_prune_ms = now + (uint64_t)d->cfg.prune_ms;
        prune(d);
    }
}

/* --- lifecycle -------------------------------------------------------------------- */

int qr_webhook_open(uv_loop_t *loop, const qr_webhook_config_t *cfg, qr_webhook_t **out)
{
    /* Once per process, on the loop's thread before any transfer (the one
     * libcurl call that is not thread-safe). */
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return QR_EIO;
        curl_ready = 1;
    }
    qr_webhook_t *d = qr_xcalloc(1, sizeof *d);
    d->loop = loop;
    d->cfg = *cfg;
    if (d->cfg.keep_s <= 0)
        d->cfg.keep_s = 30.0 * 86400;
    if (d->cfg.prune_ms <= 0) {
        double half_ms = d->cfg.keep_s * 500.0;
        d->cfg.prune_ms = half_ms < 1000 ? 1000 : half_ms > 3600000 ? 3600000 : (int)half_ms;
    }
    d->next_prune_ms = uv_now(loop) + (uint64_t)d->cfg.prune_ms;
    d->outcomes = json_array();
    int rc = uv_timer_init(loop, &d->tick);
    if (rc < 0)
        goto fail_free;
    d->tick.data = d;
    rc = uv_timer_init(loop, &d->curl_timer);
    if (rc < 0) {
        d->closing = 1;
        d->open_handles = 1;
        uv_close((uv_handle_t *)&d->tick, on_handle_closed);
        *out = NULL;
        return rc;
    }
    d->curl_timer.data = d;
    d->open_handles = 2;
    d->multi = curl_multi_init();
    if (!d->multi) {
        rc = QR_EIO;
        goto fail_close;
    }
    if (curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d) != CURLM_OK ||
        curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d) != CURLM_OK) {
        rc = QR_EIO;
        goto fail_close;
    }
    rc = qr_pg_open(loop, cfg->pg_conninfo, 1, 5000, &d->pg);
    if (rc < 0)
        goto fail_close;
    d->pg_open = 1;
    rc = uv_timer_start(&d->tick, on_tick, (uint64_t)cfg->poll_ms, (uint64_t)cfg->poll_ms);
    if (rc < 0) {
        qr_webhook_close(d, NULL, NULL);
        *out = NULL;
        return rc;
    }
    *out = d;
    return 0;
fail_close:
    qr_webhook_close(d, NULL, NULL);
    *out = NULL;
    return rc;
fail_free:
    free(d);
    *out = NULL;
    return rc;
}

static void on_pg_closed(void *arg)
{
    qr_webhook_t *d = arg;
    d->pg_open = 0;
    maybe_free(d);
}

void qr_webhook_close(qr_webhook_t *d, void (*cb)(void *arg), void *arg)
{
    d->close_cb = cb;
    d->close_arg = arg;
    d->closing = 1;
    qr_info("webhook: the dispatcher stops after %" PRIu64 " posts, %" PRIu64 " delivered",
            d->posted, d->delivered);
    while (d->inflight)
        delivery_free(d->inflight);
    /* Queued behind nothing else, these usually reach PostgreSQL before the
     * pool closes; if not, the deliveries are posted again later. */
    if (d->pg)
        flush_outcomes(d);
    if (d->multi) {
        /* Closes the sockets curl still watches (CURL_POLL_REMOVE). */
        CURLMcode mc = curl_multi_cleanup(d->multi);
        if (mc != CURLM_OK)
            qr_warn("webhook: curl_multi_cleanup: %s", curl_multi_strerror(mc));
        d->multi = NULL;
    }
    /* Any socket curl did not say goodbye to. */
    for (sock_t *s = d->socks; s; s = s->next)
        sock_close(s);
    uv_close((uv_handle_t *)&d->tick, on_handle_closed);
    uv_close((uv_handle_t *)&d->curl_timer, on_handle_closed);
    if (d->pg)
        qr_pg_close(d->pg, on_pg_closed, d);
}
