/*
 * redis_client.h - one asynchronous Redis connection for the event loop,
 * with reconnect and a registry of Lua scripts.
 *
 * Built on hiredis 0.14 async and our adapter (broker/lease/hiredis_uv.h). The
 * client reconnects with exponential backoff (from a uv_timer, never from
 * inside a hiredis callback). On every (re)connect it sends SCRIPT LOAD for
 * each registered script. qr_redis_eval sends EVALSHA and, on a NOSCRIPT
 * error, resends the same call as EVAL with the script text (so a restarted
 * or flushed Redis costs one extra round trip, never an error). hiredis has
 * no timeouts: each command is failed by our own timer after
 * command_timeout_ms.
 */
#ifndef QR_REDIS_CLIENT_H
#define QR_REDIS_CLIENT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "histogram.h"

typedef struct qr_redis_s qr_redis_t;
typedef struct qr_redis_script_s qr_redis_script_t;

/* reply is valid only during the callback. On failure (not connected,
 * connection lost, timeout) reply is NULL and err says why. A Redis error
 * reply (REDIS_REPLY_ERROR) is delivered as a reply, err NULL. */
typedef void (*qr_redis_cb)(redisReply *reply, const char *err, void *arg);

/* Starts connecting to host:port; returns at once. Commands sent before the
 * connection is up fail at once with err "redis not connected" (callers
 * retry), so they never pile up unboundedly. */
int qr_redis_open(uv_loop_t *loop, const char *host, int port, int command_timeout_ms,
                  qr_redis_t **out);

/* As qr_redis_open, with the primary found through Redis Sentinel: the
 * sentinels "ip:port[,ip:port...]" are asked for master's address before
 * every connect (after a lost connection, or a READONLY error that says the
 * server was demoted), and a connection takes commands only once ROLE says
 * master and the primary check (below) has run. QR_EINVAL when the list
 * does not parse. */
int qr_redis_open_sentinel(uv_loop_t *loop, const char *sentinels, const char *master,
                           int command_timeout_ms, qr_redis_t **out);

/* Behind Sentinel only: on every connect to a primary, before any other
 * command, EVAL lua nkeys keys... RUN_ID (the server's INFO run_id) runs and
 * must answer an integer (negative: nothing to say; else logged as the
 * projects whose state it dropped); an error closes the connection and the
 * client tries again. Copies its arguments. */
void qr_redis_set_primary_check(qr_redis_t *r, const char *lua, int nkeys, const char *const *keys);

/* A Redis Cluster: the nodes "ip:port[,ip:port...]" are asked for the slot
 * map (CLUSTER SLOTS); the client keeps a connection per primary (each a
 * client of its own, reconnecting, loading the scripts) and sends each
 * command or script call to the primary of the hash slot of its first key
 * (a command without a key: to any primary), follows MOVED (and asks for
 * the map again) and ASK (ASKING, then the command), and asks for the map
 * again when a connection is lost (a failover). QR_EINVAL when the list does
 * not parse. */
int qr_redis_open_cluster(uv_loop_t *loop, const char *nodes, int command_timeout_ms,
                          qr_redis_t **out);

/* A cluster's check of a primary it connects to, before the node takes
 * commands: run_id is the node's INFO run_id, tag a hash tag ("{...}")
 * whose slot the node serves (NULL: it serves none). The check sends its
 * commands with qr_redis_check_command(node, token, ...) and ends with
 * qr_redis_check_done(node, token, ok); a check whose connection is lost
 * meanwhile is forgotten (its later calls do nothing). */
typedef void (*qr_redis_node_check_fn)(qr_redis_t *node, unsigned token, const char *run_id,
                                       const char *tag, void *arg);
/* On a cluster client: the check of each primary. (On a plain client, as
 * the router uses it: the client itself is checked on every connect.) */
void qr_redis_set_node_check(qr_redis_t *r, qr_redis_node_check_fn fn, void *arg);
/* cb runs exactly once (reply NULL and err set when the connection went);
 * QR_ECONFLCT, and cb never runs, when the check is not current. */
int qr_redis_check_command(qr_redis_t *node, unsigned token, int argc, const char **argv,
                           const size_t *argvlen, qr_redis_cb cb, void *arg);
void qr_redis_check_done(qr_redis_t *node, unsigned token, int ok);

/* For the cluster's router: 1 when the node is connected and said master;
 * drop the connection and connect again (the check runs again). */
int qr_redis_is_master(const qr_redis_t *r);
/* A cluster's primaries that take commands now (at most max, in out; 0 for
 * a client that is not a cluster's): each a client of its own, whose
 * commands go to that node alone (SCAN a node's keys). */
int qr_redis_primaries(const qr_redis_t *r, qr_redis_t **out, int max);
/* 1 for a client opened with qr_redis_open_cluster. */
int qr_redis_is_cluster(const qr_redis_t *r);
void qr_redis_reconnect(qr_redis_t *r);

/* Registers a Lua script (text copied). Do this before or after open; the
 * script is loaded on every connect. The handle lives as long as the client. */
qr_redis_script_t *qr_redis_script(qr_redis_t *r, const char *lua);

/* EVALSHA script numkeys keys... args... with NOSCRIPT fallback. argv holds
 * the keys first, then the args; argvlen may be NULL for NUL-terminated
 * strings. cb is called exactly once, never from inside this call. */
int qr_redis_eval(qr_redis_t *r, qr_redis_script_t *s, int nkeys, int argc, const char **argv,
                  const size_t *argvlen, qr_redis_cb cb, void *arg);

/* Any other command, as redisAsyncCommandArgv. Same callback rules. */
int qr_redis_command(qr_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     qr_redis_cb cb, void *arg);

/* Round-trip times of the commands answered (sent to reply; a NOSCRIPT
 * retry counts from the first send) and the count of those that failed
 * (error reply, timeout, not connected, connection lost) since open
 * (GET /metrics). Valid as long as the client. */
const qr_latency_t *qr_redis_stats(const qr_redis_t *r);

/* What a cluster client's router did with the answers that name another
 * node or ask to wait (GET /metrics): MOVED and ASK answers followed (the
 * command resent to the node named), TRYAGAIN answers retried after a
 * pause (a multi-key script on a slot being migrated whose keys are split
 * between its two nodes). All zero for a client that is not a cluster's.
 * Valid as long as the client. */
typedef struct qr_redis_redirects_s {
    uint64_t moved;    /* MOVED answers followed */
    uint64_t ask;      /* ASK answers followed (ASKING, then the command) */
    uint64_t tryagain; /* TRYAGAIN answers retried */
} qr_redis_redirects_t;
const qr_redis_redirects_t *qr_redis_redirects(const qr_redis_t *r);

/* 1 when connected and every script is loaded. */
int qr_redis_ready(const qr_redis_t *r);

/* Fails pending commands, disconnects, frees once handles are closed. */
void qr_redis_close(qr_redis_t *r, void (*cb)(void *arg), void *arg);

#endif
