/*
 * simulate.h - `quorum-agent simulate`: a crew of virtual annotators in one
 * process, each leasing tasks from the broker, "thinking", and submitting a
 * label that is right with a given probability (or skipping, releasing or
 * abandoning the lease at given rates). Used for demos, load tests and
 * benchmarks, and to check the broker's guarantees (no duplicate
 * assignments, nothing overfilled, nothing acknowledged lost) end to end.
 */
#ifndef QR_SIMULATE_H
#define QR_SIMULATE_H

#include "client.h"

#include <stdint.h>

/* The default task data field with the true label: hidden from annotators
 * (task_view.h); data without it is read from the same name without "_". */
#define QR_SIM_TRUTH_FIELD "_true_label"

typedef struct qr_sim_options_s {
    long long project;        /* project id */
    int annotators;           /* how many virtual annotators (users created) */
    double accuracy;          /* each annotator's probability of the true label is */
    double accuracy_max;      /* drawn uniformly in [accuracy, accuracy_max], 0..1 */
    int think_min_ms;         /* think time is uniform in [min, max] ms */
    int think_max_ms;         /* ... */
    const char *truth_field;  /* data field holding the true label (borrowed) */
    int prefetch;             /* leases asked for at once, 1..100 */
    uint64_t seed;            /* drives label choices, think times and lease outcomes */
    double max_seconds;       /* the run fails if not complete by then */
    const char *json_summary; /* file for the JSON summary, or NULL (borrowed) */
    int use_spool;            /* spool every result (fsync) before sending it */
    const char *spool_path;   /* spool file, or NULL for one in a temporary directory */
    double skip_rate;         /* fraction of leases skipped (with a reason) */
    double release_rate;      /* fraction of leases released (with a reason) */
    double abandon_rate;      /* fraction of leases silently dropped (left to expire) */
    int batch;                /* send the results of one lease request in one batch submit */
    int wait_ms;              /* lease requests long-poll this long when nothing is ready */
    const char *ack_log;      /* file to append acknowledged submits to, or NULL (borrowed) */
    char **urls;              /* brokers to spread the crew over (borrowed), or NULL: cfg->url */
    int nurls;                /* entries in urls */
    double duration;          /* > 0: stop leasing after this many seconds, then exit 0 */
    double arrival_rate;      /* > 0: open loop, tasks/s of the whole crew (sim_open.h) */
    double warmup;            /* open loop: intents before this many seconds are not measured */
    double think_median_ms;   /* > 0: think time log-normal with this median (ms), instead */
    double think_sigma;       /* of think_min/max_ms, and this sigma (of its logarithm) */
    int connect_first;        /* connect every annotator before the run (always in open loop) */
    int idle;                 /* --idle: connected agents long-poll and heartbeat (sim_idle.c) */
    int spread_ms;            /* --idle: each agent starts at a random offset in [0, spread_ms] */
} qr_sim_options_t;

/*
 * Runs the simulation against the broker(s) in cfg / opt->urls (cfg's token
 * must be allowed to create users: admin or manager). Prints a progress line
 * a second to stderr and the summary to stdout. Returns the process exit
 * code: 0 when every annotator saw the project complete (or, with a
 * duration, stopped cleanly with nothing left unanswered), 1 otherwise
 * (broker or network failure, --max-seconds reached, interrupted).
 */
int qr_sim_run(const qr_sim_options_t *opt, const qr_client_config_t *cfg);

#endif
