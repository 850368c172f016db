/*
 * redis_cluster.h - the slot router behind qr_redis_open_cluster: private
 * to the Redis client (redis_client.c delegates to it). See redis_client.h
 * for what it does.
 */
#ifndef QR_REDIS_CLUSTER_H
#define QR_REDIS_CLUSTER_H

#include <stddef.h>
#include <uv.h>

#include "histogram.h"
#include "redis_client.h"

typedef struct qr_cluster_s qr_cluster_t;

/* NULL when the node list does not parse. stats, redirects: the client's
 * figures, which the router counts into. */
qr_cluster_t *qr_cluster_new(uv_loop_t *loop, const char *nodes, int timeout_ms,
                             qr_latency_t *stats, qr_redis_redirects_t *redirects);
/* Registers the client's script number n (in order: 0, 1, ...). */
void qr_cluster_add_script(qr_cluster_t *c, const char *lua);
void qr_cluster_set_node_check(qr_cluster_t *c, qr_redis_node_check_fn fn, void *arg);
/* script: a registered script's number (argv: keys then args), or -1 for
 * a command (argv[1] its key, if any). As qr_redis_eval/qr_redis_command. */
int qr_cluster_send(qr_cluster_t *c, int script, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, qr_redis_cb cb, void *arg);
/* Up to max distinct primaries of the map that take commands, in out;
 * returns how many. */
int qr_cluster_primaries(const qr_cluster_t *c, qr_redis_t **out, int max);
/* 1 when every slot has a primary that is connected and checked. */
int qr_cluster_ready(const qr_cluster_t *c);
/* The hash slot of a key (its {tag} if it has one). */
int qr_cluster_slot(const char *key, size_t len);
void qr_cluster_close(qr_cluster_t *c, void (*done)(void *arg), void *arg);

#endif
