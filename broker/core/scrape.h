/*
 * scrape.h - one GET /metrics scrape: every project's queue from
 * PostgreSQL (reports/analytics.h), each project's ready window and live
 * leases from the lease engine, then the process-local families of the
 * Prometheus registry (metrics.h).
 */
#ifndef QR_SCRAPE_H
#define QR_SCRAPE_H

#include <stddef.h>

#include "broker.h"

/* At most this many projects' Redis sizes are asked for in one scrape. */
#define QR_METRICS_MAX_PROJECTS 5000

/* The whole exposition, valid during the callback only. */
typedef void (*qr_scrape_cb)(const char *text, size_t len, void *arg);

/* When PostgreSQL or Redis fails, the families they feed are left without
 * samples and quorum_queue_up / quorum_redis_up say so: a scrape always
 * answers. Returns a negative code, without calling cb, only when the
 * PostgreSQL pool is closing. */
QR_MUST_CHECK int qr_broker_scrape(qr_broker_t *b, qr_scrape_cb cb, void *arg);

#endif
