/*
 * webhook.h - webhooks: the dispatcher that posts a project's events to the
 * URLs subscribed to them, and the secrets that sign them.
 *
 * Events are written to an outbox by PostgreSQL triggers in the transaction
 * of the change they report (sql/0022_webhooks.sql). The dispatcher claims
 * due deliveries over its own PostgreSQL connection, posts them with
 * libcurl's multi interface driven by the event loop, and records each
 * outcome: delivered on a 2xx, else retried with exponential backoff until
 * the event is give_up_s old. Nothing here runs on the lease or submit
 * path, and no call blocks the loop, so a dead receiver never slows
 * labeling; it only leaves deliveries pending.
 *
 * At least once: a delivery is claimed for timeout + 30 s before it is
 * posted, so a broker that dies with it in flight leaves it to be retried.
 * Receivers deduplicate by the event's id (header X-Quorum-Event-Id).
 *
 * Each body is signed: X-Quorum-Signature: t=UNIX_SECONDS,v1=HEX, HEX
 * being HMAC-SHA256 over "UNIX_SECONDS.BODY" keyed with the webhook's
 * secret. Secrets are stored sealed (AES-256-GCM) under the broker's
 * webhook key, which never reaches the database.
 */
#ifndef QR_WEBHOOK_H
#define QR_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util.h"

#define QR_WEBHOOK_KEY_BYTES  32
#define QR_WEBHOOK_SECRET_LEN 70 /* "whsec_" and 64 hex digits */
#define QR_WEBHOOK_MAX_URL    2048

/* The event types a webhook may subscribe to, NULL-terminated. */
extern const char *const qr_webhook_event_types[];

/* 1 when name is one of qr_webhook_event_types. */
int qr_webhook_event_known(const char *name);

/* Checks a receiver URL: http or https, a host, at most QR_WEBHOOK_MAX_URL
 * bytes, no user or password, no fragment. 0, or QR_EINVAL with the reason
 * in err. */
QR_MUST_CHECK int qr_webhook_url_check(const char *url, char *err, size_t errlen);

/* Receivers inside the broker's own networks. Unless quorumd is started
 * with --webhook-allow-private, a webhook may not post to an address that is
 * loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
 * (169.254/16, where cloud metadata services answer; fe80::/10), shared
 * (100.64/10), unspecified, multicast or reserved, IPv4-mapped IPv6
 * included: a manager could otherwise make the broker reach what only it
 * can reach. Checked when a webhook is made (a literal address, or the name
 * localhost) and again on every connection, on the address libcurl is about
 * to connect to, so a name that resolves there later is refused too. */

/* 1 when sa (AF_INET or AF_INET6) is such an address, with its text and
 * kind in why ("127.0.0.1 is a loopback address"); else 0. */
struct sockaddr;
int qr_webhook_addr_private(const struct sockaddr *sa, char *why, size_t whylen);

/* 1 when url's host is such an address written out, or localhost, with the
 * reason in why; 0 otherwise (a name is checked when it is resolved). url
 * has passed qr_webhook_url_check. */
int qr_webhook_url_private(const char *url, char *why, size_t whylen);

/* Reads the webhook key: a file of 64 hex digits (surrounding white space
 * ignored). Blocking: call at start, before the loop runs. 0, or
 * QR_EINVAL/-errno with the reason in err. */
QR_MUST_CHECK int qr_webhook_key_load(const char *path, unsigned char key[QR_WEBHOOK_KEY_BYTES],
                                      char *err, size_t errlen);

/* A fresh secret ("whsec_" and 64 random hex digits) into out (71 bytes
 * with the NUL). 0, or QR_EIO when the random source failed. */
QR_MUST_CHECK int qr_webhook_secret_new(char out[QR_WEBHOOK_SECRET_LEN + 1]);

/* The secret sealed under key: "v1:" and the hex of nonce, ciphertext and
 * tag. Returns a string the caller frees, or NULL when OpenSSL failed. */
char *qr_webhook_seal(const unsigned char key[QR_WEBHOOK_KEY_BYTES], const char *secret);

/* The secret of a sealed string, or NULL when it is malformed or was not
 * sealed under key (the tag does not verify). The caller frees it. */
char *qr_webhook_unseal(const unsigned char key[QR_WEBHOOK_KEY_BYTES], const char *sealed);

/* The v1 signature (64 hex digits and a NUL into out) of body at time t
 * (Unix seconds). 0, or QR_EIO when OpenSSL failed. */
QR_MUST_CHECK int qr_webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                                  char out[65]);

typedef struct qr_webhook_config_s {
    const char *pg_conninfo;  /* the dispatcher's own connection (not the request pool) */
    const unsigned char *key; /* QR_WEBHOOK_KEY_BYTES; borrowed for the dispatcher's life */
    int poll_ms;              /* how often due deliveries are looked for; default 250 */
    int timeout_ms;           /* one post, connect to answer; default 10000 */
    int retry_base_ms;        /* the first retry's delay; doubles each time; default 1000 */
    int retry_max_ms;         /* the longest delay; default 3600000 (1 h) */
    int give_up_s;            /* no more attempts once the event is this old; default 86400 */
    int max_inflight;         /* posts at once; default 32 */
    int allow_private;        /* 1: receivers in private networks are allowed (see above) */
    double keep_s;            /* events are kept this long once none of their deliveries is
                                 pending, then deleted with them; default 2592000 (30 days) */
    int prune_ms;             /* how often old events are looked for; default keep_s / 2,
                                 between 1 s and 1 h */
} qr_webhook_config_t;

typedef struct qr_webhook_s qr_webhook_t;

/* Fills cfg's numbers with their defaults. */
void qr_webhook_config_defaults(qr_webhook_config_t *cfg);

/* Starts the dispatcher on loop (cfg is copied; key stays borrowed).
 * 0, or a negative code and nothing left open. */
QR_MUST_CHECK int qr_webhook_open(uv_loop_t *loop, const qr_webhook_config_t *cfg,
                                  qr_webhook_t **out);

/* Deliveries posted, and of them delivered (2xx), since the start. */
uint64_t qr_webhook_posted(const qr_webhook_t *d);
uint64_t qr_webhook_delivered(const qr_webhook_t *d);

/* Abandons the posts in flight (they stay claimed and are retried once the
 * claim lapses), closes every handle and the connection, frees the
 * dispatcher and then runs cb (may be NULL) on a later turn of the loop. */
void qr_webhook_close(qr_webhook_t *d, void (*cb)(void *arg), void *arg);

#endif
