/*
 * sentinel.h - asks Redis Sentinel where a master (the primary) is.
 *
 * A locator holds a list of sentinels and a master name. Each locate asks
 * the sentinels in turn (starting with the one that answered last) with
 * SENTINEL get-master-addr-by-name, one short-lived hiredis async connection
 * at a time, each given one second, and reports the first address a
 * sentinel gives, or that none did. Nothing blocks the loop: sentinel hosts
 * must be IP addresses (quorumd resolves names once, at startup).
 */
#ifndef QR_SENTINEL_H
#define QR_SENTINEL_H

#include <uv.h>

typedef struct qr_sentinel_s qr_sentinel_t;

/* host is the primary's address (valid during the call), or NULL when no
 * sentinel knew it (port 0). */
typedef void (*qr_sentinel_cb)(const char *host, int port, void *arg);

/* A locator for master on the sentinels "ip:port[,ip:port...]"; NULL (and
 * nothing done) when the list does not parse or the timer cannot start. */
qr_sentinel_t *qr_sentinel_new(uv_loop_t *loop, const char *sentinels, const char *master);

/* Starts a locate; cb runs exactly once, later, unless the locator is closed
 * first. One locate at a time: QR_ECONFLCT while one is running. */
int qr_sentinel_locate(qr_sentinel_t *s, qr_sentinel_cb cb, void *arg);

/* Checks a sentinel list ("ip:port[,ip:port...]"): 0, or -1. */
int qr_sentinel_list_valid(const char *sentinels);

/* Drops a running locate (its callback never runs), closes, frees; done
 * runs once all is closed. */
void qr_sentinel_close(qr_sentinel_t *s, void (*done)(void *arg), void *arg);

#endif
