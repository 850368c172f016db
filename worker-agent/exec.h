/*
 * exec.h - `quorum-agent exec`: runs a command per leased task (or keeps one
 * running with --persistent) and submits its answers. See exec.c.
 */
#ifndef QR_EXEC_H
#define QR_EXEC_H

#include "client.h"
#include "spool.h"

#include <stdint.h>

typedef struct qr_exec_options_s {
    long long project;    /* project id */
    const char **argv;    /* CMD and its arguments, NULL-terminated (borrowed) */
    int concurrency;      /* worker threads, each with one task at a time */
    int persistent;       /* one long-running CMD per worker, JSON lines */
    int64_t timeout_ms;   /* per task, from handing it over to the answer */
    int attempts;         /* failures of one task here that stop exec */
    int max_failures;     /* failures in a row (all workers) that stop exec */
    int64_t idle_exit_ms; /* exit after this long without a task (0: never) */
} qr_exec_options_t;

/* exec's flags that take a number, as given (NULL: not given). */
typedef struct qr_exec_flags_s {
    const char *concurrency, *timeout_ms, *attempts, *max_failures, *idle_exit;
} qr_exec_flags_t;

/*
 * Sets opt's numbers from f, the defaults for flags not given (concurrency
 * 1, timeout 60 s, attempts 3, max_failures 3, no idle exit). Returns 0, or
 * QR_EXIT_USAGE with the one-line error printed (prog: the program's name).
 */
int qr_exec_options_set(qr_exec_options_t *opt, const qr_exec_flags_t *f, const char *prog);

/*
 * Sends what is spooled for this broker and token first, then works until
 * the project is complete, --idle-exit passes, a fatal error, CMD fails
 * --max-failures times in a row or --attempts times on one task
 * (QR_EXIT_COMMAND, one line names the cause), or SIGINT / SIGTERM. Leases
 * in hand when it stops are released. spool: open, borrowed. Returns an
 * QR_EXIT_* code.
 */
int qr_exec_run(const qr_exec_options_t *opt, const qr_client_config_t *cfg, qr_spool_t *spool);

#endif
