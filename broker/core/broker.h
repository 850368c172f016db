/*
 * broker.h - quorumd's running state: configuration, the backends
 * (PostgreSQL pool, Redis, lease engine), the HTTPS server, and the caches
 * of tokens and projects. One broker per event loop; it holds nothing that
 * another replica needs (PostgreSQL and Redis do).
 */
#ifndef QR_BROKER_H
#define QR_BROKER_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "import.h"
#include "lease.h"
#include "pg.h"
#include "read_pool.h"
#include "redis_client.h"
#include "webhook.h"

typedef struct qr_broker_config_s {
    const char *listen_host;     /* default 127.0.0.1 */
    int listen_port;             /* default 8443; 0 picks a free port */
    const char *pg_conninfo;     /* libpq connection string */
    int pg_pool;                 /* connections; default 8 */
    const char *redis_host;      /* default 127.0.0.1 */
    int redis_port;              /* default 6379 */
    const char *redis_sentinels; /* "ip:port,...": find the primary through Sentinel (NULL:
                                    redis_host) */
    const char *redis_master;    /* with redis_sentinels: the master's name */
    const char *redis_cluster;   /* "ip:port,...": a Redis Cluster's nodes (NULL: none) */
    const char *cert_file, *key_file;
    size_t max_body_bytes;        /* import bodies read whole; default 64 MiB */
    size_t max_stream_bytes;      /* import bodies streamed (never held); default 16 GiB */
    size_t max_json_body_bytes;   /* every other route's JSON body; default 1 MiB */
    size_t max_body_total_bytes;  /* all bodies in memory at once; default 128 MiB */
    int auth_fail_per_sec;        /* failed authentications per client address; bursts of 10x;
                                     0 = no limit; default 5 */
    size_t max_header_bytes;      /* default 16 KiB */
    int idle_timeout_ms;          /* default 30000 */
    int max_connections;          /* past it: 503; default min(10000, what RLIMIT_NOFILE allows) */
    const char *client_ca_file;   /* verify client certificates (mutual TLS); NULL: none asked */
    int require_client_cert;      /* with client_ca_file: refuse clients without one */
    int reaper_ms;                /* how often expired leases are returned; default 1000 */
    int window_tasks;             /* tasks loaded per refill; default 4000 */
    int window_low;               /* refill when fewer are ready; default 1500 */
    int max_leases_per_annotator; /* live leases per annotator where the project sets
                                     none; default 10 */
    int cache_ttl_ms;             /* token and project cache lifetime; default 5000 */
    int rate_per_sec;             /* requests per second per token; 0 = no limit; default 2000 */
    int rate_burst;               /* bucket size; default 2 x rate_per_sec */
    const char *port_file;        /* if set, the bound port is written here */
    int metrics_public;           /* GET /metrics without a token (default 0: admins) */
    qr_import_limits_t import;    /* one import's parse: budget 64 MiB, cap 10,000,000 tasks */
    int import_parses;            /* import parses at once (thread pool); more wait; default 2 */
    int webhooks;                 /* 1: webhook_key is set; the dispatcher runs and webhooks
                                     may be made (0: they are refused, 503) */
    unsigned char webhook_key[QR_WEBHOOK_KEY_BYTES]; /* seals webhook secrets (never stored) */
    int webhook_retry_ms;      /* the first retry's delay, doubling; default 1000 */
    int webhook_allow_private; /* 1: webhooks may post into private networks (default 0) */
    double webhook_keep_days;  /* events and their deliveries kept this long; 0: 30 */
    int drain_ms;              /* qr_broker_drain's deadline; default 10000 */
    /* A streaming replica the reports read (read_pool.h); NULL: they read
     * the primary. Its connections (default 4), and how stale it may be
     * before reports read the primary instead (ms, default 10000). */
    const char *pg_read_conninfo;
    int pg_read_pool;
    int pg_read_max_lag_ms;
} qr_broker_config_t;

typedef struct qr_broker_s qr_broker_t;

/* What the API gives the core (quorumd_main.c wires it): the HTTP head and
 * request handlers (user: the broker), and the wake of long-poll lease
 * requests, which the core calls when work may have become ready in project
 * (0: any): all waiters of it when slots <= 0, else that many. */
typedef struct qr_broker_api_s {
    void (*head)(qr_http_request_t *req, void *broker);
    void (*handle)(qr_http_request_t *req, void *broker);
    void (*wake)(qr_broker_t *b, int64_t project, int slots);
} qr_broker_api_t;

/* Fills cfg with defaults. */
void qr_broker_config_defaults(qr_broker_config_t *cfg);

/* Starts the broker on loop: connects to PostgreSQL and Redis (in the
 * background) and listens. 0, or negative with a message in err. */
int qr_broker_start(uv_loop_t *loop, const qr_broker_config_t *cfg, const qr_broker_api_t *api,
                    qr_broker_t **out, char *err, size_t errlen);

/* Reloads the TLS certificate and key from the configured files (SIGHUP).
 * 0, or negative with the reason in err; the old certificate stays then. */
int qr_broker_reload_tls(qr_broker_t *b, char *err, size_t errlen);

/* The HTTPS port bound. */
int qr_broker_port(const qr_broker_t *b);

/*
 * Leaves the pool gracefully (SIGTERM behind a load balancer): GET /readyz
 * answers 503 at once; long polls are answered now, empty, as their timeout
 * would, and new ones do not wait; every response carries Connection: close
 * and idle connections close (qr_http_server_drain). If a health checker
 * asked GET /readyz within the last QR_DRAIN_CHECKER_MS, new connections are
 * still accepted until it was answered the 503 and no connection came for
 * QR_DRAIN_QUIET_MS (the balancer took the broker out), for at most
 * QR_DRAIN_LISTEN_MS (and a quarter of the deadline): a connection the
 * balancer had already handed over is then served, not reset in the
 * listener's queue; without a checker, nobody is there to tell, and the
 * listener closes at once. Once every client was answered and
 * gone, or at cfg.drain_ms, whichever comes first, the broker stops as qr_broker_stop does and
 * cb(arg) runs after it is freed. Leases are left as they are in Redis: the other brokers serve
 * them. qr_broker_stop during a drain stops at once (its cb replaces this one). A second call does
 * nothing.
 */
#define QR_DRAIN_LISTEN_MS  5000
#define QR_DRAIN_QUIET_MS   1000
#define QR_DRAIN_CHECKER_MS 30000
void qr_broker_drain(qr_broker_t *b, void (*cb)(void *arg), void *arg);

/* 1 from qr_broker_drain on (GET /readyz answers 503). */
int qr_broker_draining(const qr_broker_t *b);

/* Stops listening and closes every backend; frees the broker when all its
 * handles are closed, then runs cb (may be NULL). */
void qr_broker_stop(qr_broker_t *b, void (*cb)(void *arg), void *arg);

#endif
