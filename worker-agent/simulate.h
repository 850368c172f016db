/*
 * simulate.h - `quorum-agent simulate`: a crew of virtual annotators in one
 * process, each leasing tasks from the broker, "thinking", and submitting a
 * label that is right with a given probability. Used for load tests and to
 * check the broker's guarantees (no duplicate assignments, nothing overfilled)
 * end to end.
 */
#ifndef QR_SIMULATE_H
#define QR_SIMULATE_H

#include "client.h"

#include <stdint.h>

typedef struct qr_sim_options_s {
    long long project;        /* project id */
    int annotators;           /* how many virtual annotators (users created) */
    double accuracy;          /* probability of submitting the true label, 0..1 */
    int think_min_ms;         /* think time is uniform in [min, max] ms */
    int think_max_ms;         /* ... */
    const char *truth_field;  /* data field holding the true label (borrowed) */
    int prefetch;             /* leases asked for at once, 1..100 */
    uint64_t seed;            /* drives label choices and think times */
    double max_seconds;       /* the run fails if not complete by then */
    const char *json_summary; /* file for the JSON summary, or NULL (borrowed) */
    int use_spool;            /* spool every result (fsync) before sending it */
    const char *spool_path;   /* spool file, or NULL for one in a temporary directory */
} qr_sim_options_t;

/*
 * Runs the simulation against the broker in cfg (whose token must be allowed
 * to create users: admin or manager). Prints a progress line a second to
 * stderr and the summary to stdout. Returns the process exit code: 0 when
 * every annotator saw the project complete, 1 otherwise (broker or network
 * failure, --max-seconds reached, interrupted).
 */
int qr_sim_run(const qr_sim_options_t *opt, const qr_client_config_t *cfg);

#endif
