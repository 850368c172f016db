/*
 * sim_open.h - the open-loop mode of `quorum-agent simulate`
 * (--arrival-rate R, tasks per second): the crew's lease intents (one lease
 * request of up to K = --prefetch tasks each) arrive as a Poisson process of
 * rate R / K whatever the broker does, each handed to a free annotator (or
 * queued until one is free), and latencies run from the intended send
 * time, so an intent that waits (for a free annotator, or for the broker)
 * counts its wait: no coordinated omission. Also the log-normal think time
 * (--think-lognormal), which the closed loop may use too.
 *
 * The crew (sim_crew.c) and the driver (sim_driver.c) call these hooks
 * only when s->open is set (open mode), but for sim_open_think_ms.
 */
#ifndef QR_SIM_OPEN_H
#define QR_SIM_OPEN_H

#include "sim_int.h"

/* A log-normal think time in ms: median * exp(sigma * z), z standard normal
 * from the two uniforms u1, u2 in [0, 1) (Box-Muller), capped at 1 hour. */
int sim_open_think_ms(double median_ms, double sigma, double u1, double u2);

/* Open mode (or --connect-first): connects every annotator before the run, each with a request
 * of its own (GET /v1/whoami with its token), all in flight at once so
 * that each gets a connection of its own and the broker knows its token:
 * the TLS handshakes and token lookups of N agents are set-up, not the
 * run's first seconds. Returns 0 or -1 (printed). */
int sim_open_connect(sim_t *s);
/* sim_driver.c: waits up to wait_ms for socket news and lets libcurl act. */
int sim_drive(sim_t *s, int64_t wait_ms);

/* Sets up the open mode (when opt->arrival_rate > 0): every annotator free,
 * the crew's first intent one random gap after the loop's start. Without
 * the open mode, schedules every annotator to lease at once. */
void sim_open_start(sim_t *s);
/* Hands each intent intended by now to a free annotator (scheduled to
 * lease now), or queues it; returns the ms the next intent is intended at. */
int64_t sim_open_dispatch(sim_t *s, int64_t now);
/* The time (ms) an annotator that has finished an intent leases next: now,
 * with the oldest queued intent, or it is free until an intent is handed to
 * it (the end of --duration, when it wakes to stop). */
int64_t sim_open_next_lease_ms(annotator_t *a, int64_t now);
/* The project is complete or paused: the free annotators end in state st
 * (they would wait for intents nobody can serve). */
void sim_open_end(sim_t *s, state_t st);
/* A lease request is about to go out: the annotator takes its next intent
 * unless it is still serving one (a retry, or a lease answered empty). */
void sim_open_lease_sending(annotator_t *a, int64_t now);
/* A lease request was granted (its held leases are planned): records the
 * lease latency from the intended time, and sets each held lease's
 * intended submit time (submit_ms): now plus the think times up to and
 * including its own, or with --batch of all the held leases. */
void sim_open_leased(annotator_t *a, int64_t now);
/* The submit of held lease l was acknowledged: records its latency from
 * l's intended submit time and counts it toward the achieved rate. */
void sim_open_acknowledged(annotator_t *a, const held_lease_t *l);

/* Adds "think_lognormal" (when set) and "open_loop" (open mode) to the
 * JSON summary of a run that lasted elapsed seconds (0, or -1 when jansson
 * runs out of memory); prints the open-loop lines of the text summary. */
int sim_open_summary_json(const sim_t *s, json_t *root, double elapsed);
void sim_open_print(const sim_t *s, double elapsed);
/* Frees the open mode's state. */
void sim_open_free(sim_t *s);

#endif
