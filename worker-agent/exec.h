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
    int attempts;         /* failures of one task here before it is skipped */
    int64_t idle_exit_ms; /* exit after this long without a task (0: never) */
} qr_exec_options_t;

/*
 * Sends what is spooled for this broker and token first, then works until
 * the project is complete, --idle-exit passes, a fatal error, or SIGINT /
 * SIGTERM (leases in hand are released). spool: open, borrowed. Returns an
 * QR_EXIT_* code.
 */
int qr_exec_run(const qr_exec_options_t *opt, const qr_client_config_t *cfg, qr_spool_t *spool);

#endif
