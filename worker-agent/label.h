/*
 * label.h - `quorum-agent label`: the interactive terminal labeler. See
 * label.c.
 */
#ifndef QR_LABEL_H
#define QR_LABEL_H

#include "client.h"
#include "spool.h"

typedef struct qr_label_options_s {
    long long project; /* project id */
    int prefetch;      /* tasks kept leased ahead of the one on screen, 0..10 */
} qr_label_options_t;

/*
 * Runs the labeler on the terminal on stdin/stdout until q, Ctrl-C, or the
 * project is complete. Refuses (QR_EXIT_USAGE) when stdin is not a
 * terminal. spool: open, borrowed. Returns an QR_EXIT_* code.
 */
int qr_label_run(const qr_label_options_t *opt, const qr_client_config_t *cfg, qr_spool_t *spool);

#endif
