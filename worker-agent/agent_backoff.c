/*
 * agent_backoff.c - exponential backoff with "equal jitter" (see
 * agent_backoff.h).
 */
#include "agent_backoff.h"

void qr_backoff_init(qr_backoff_t *b, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
    b->attempt = 0;
    b->rng = seed;
}

/* splitmix64: small, fast and good enough for jitter. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = (*state += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int64_t qr_backoff_next(qr_backoff_t *b)
{
    int64_t cap = b->base_ms;
    /* Doubling stops at max_ms, so the shift never overflows. */
    for (int i = 0; i < b->attempt && cap < b->max_ms; i++)
        cap *= 2;
    if (cap > b->max_ms)
        cap = b->max_ms;
    if (b->attempt < 1000)
        b->attempt++;
    int64_t half = cap / 2;
    return half + (int64_t)(next_random(&b->rng) % (uint64_t)(cap - half + 1));
}

void qr_backoff_reset(qr_backoff_t *b)
{
    b->attempt = 0;
}
