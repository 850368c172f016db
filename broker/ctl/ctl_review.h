/*
 * ctl_review.h - quorumctl's review selection (issue 16, point 7):
 * `review-select` records review items for a project's complete tasks
 * whose consensus support is below a share, over
 * POST /v1/projects/{id}/reviews/select (docs/API.md).
 */
#ifndef QR_CTL_REVIEW_H
#define QR_CTL_REVIEW_H

#include "client.h"

/* argv[0] is "review-select". The caller holds cfg (flags given before the
 * command; those after it are added) and has called
 * qr_client_global_init. Returns the exit code: 0 ok, 1 broker or network
 * error, 2 usage. */
int qr_ctl_review_select(int argc, char **argv, qr_client_config_t *cfg);

#endif
