/*
 * notify.h - "work is ready" across brokers, over Redis pub/sub.
 *
 * A broker that makes work ready in a project (an import, a release, a skip,
 * an expired lease) publishes the project id on the channel quorum:ready;
 * every broker subscribes to it on a connection of its own and wakes its
 * long-poll lease requests for that project. A lost message costs at most
 * one long-poll period: waiters also wake on their own deadline.
 *
 * A message is "P" (work is ready in project P: wake every waiter) or
 * "P SLOTS ORIGIN" (SLOTS slots of P were freed, by the broker whose
 * instance id is ORIGIN in hex: wake that many waiters; the publisher woke
 * its own already).
 */
#ifndef QR_NOTIFY_H
#define QR_NOTIFY_H

#include <stdint.h>
#include <uv.h>

typedef struct qr_notify_s qr_notify_t;

/* The message that means "a token was revoked" instead of a project id. */
#define QR_NOTIFY_REVOKED (-1)
/* A message below -1 means "project P changed (its shares)": it is -1 - P.
 * Brokers drop their cached copy of P. */
#define QR_NOTIFY_CHANGED(p) (-1 - (p))
/* slots: 0 for every waiter; origin: the publisher's instance id, 0 if none. */
typedef void (*qr_notify_cb)(int64_t project, int slots, uint64_t origin, void *arg);

/* Subscribes (reconnecting with backoff) and calls cb for every message.
 * host should be an IP address: hiredis resolves names with a blocking call. */
int qr_notify_open(uv_loop_t *loop, const char *host, int port, qr_notify_cb cb, void *arg,
                   qr_notify_t **out);

/* As qr_notify_open, subscribed on the primary that Redis Sentinel names
 * (sentinels "ip:port[,ip:port...]", master's name), asked again after
 * every lost connection. QR_EINVAL when the list does not parse. */
int qr_notify_open_sentinel(uv_loop_t *loop, const char *sentinels, const char *master,
                            qr_notify_cb cb, void *arg, qr_notify_t **out);

/* As qr_notify_open, on one node of a Redis Cluster ("ip:port,..."; the
 * next one after every lost connection): a cluster delivers a message
 * published on any node to the subscribers of every node. */
int qr_notify_open_cluster(uv_loop_t *loop, const char *nodes, qr_notify_cb cb, void *arg,
                           qr_notify_t **out);

/* Unsubscribes, closes, frees; done (may be NULL) runs once all is closed. */
void qr_notify_close(qr_notify_t *n, void (*done)(void *arg), void *arg);

#endif
