/*
 * ctl_round.h - quorumctl's relabel rounds (issue 16, point 6): `round`
 * opens one over a selection of a project's completed tasks, `rounds`
 * lists them, over /v1/projects/{id}/rounds (docs/API.md).
 */
#ifndef QR_CTL_ROUND_H
#define QR_CTL_ROUND_H

#include "client.h"

/* argv[0] is "round" or "rounds". The caller holds cfg (flags given before
 * the command; those after it are added) and has called
 * qr_client_global_init. Returns the exit code: 0 ok, 1 broker or network
 * error, 2 usage. */
int qr_ctl_round(int argc, char **argv, qr_client_config_t *cfg);
int qr_ctl_rounds(int argc, char **argv, qr_client_config_t *cfg);

#endif
