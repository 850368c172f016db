/*
 * agent_backoff.h - exponential backoff with jitter for the agent's retries
 * (reconnecting to a broker that restarts, resending spooled results).
 *
 * The n-th consecutive delay is drawn uniformly from [cap/2, cap], where cap
 * = min(max_ms, base_ms * 2^n): it grows quickly, never exceeds max_ms, and
 * the jitter keeps a crew of agents that lost the broker at the same moment
 * from coming back in lock step. Reset after a success.
 */
#ifndef QR_AGENT_BACKOFF_H
#define QR_AGENT_BACKOFF_H

#include <stdint.h>

typedef struct qr_backoff_s {
    int64_t base_ms; /* first cap (ms), > 0 */
    int64_t max_ms;  /* largest delay (ms), >= base_ms */
    int attempt;     /* consecutive failures so far */
    uint64_t rng;    /* jitter state (splitmix64) */
} qr_backoff_t;

/* seed: any value; agents should pass something random so they differ. */
void qr_backoff_init(qr_backoff_t *b, int64_t base_ms, int64_t max_ms, uint64_t seed);

/* The delay (ms) before the next try; counts one more failure. */
int64_t qr_backoff_next(qr_backoff_t *b);

/* After a success: the next delay starts from base_ms again. */
void qr_backoff_reset(qr_backoff_t *b);

#endif
