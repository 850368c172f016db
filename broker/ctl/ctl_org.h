/*
 * ctl_org.h - quorumctl's organizations and project shares (issue 7):
 * `org create|list` and `project share|unshare|shares`, over
 * /v1/organizations and /v1/projects/{id}/shares (docs/API.md); and
 * `project pause|resume` over /v1/projects/{id}/pause and /resume.
 */
#ifndef QR_CTL_ORG_H
#define QR_CTL_ORG_H

#include "client.h"

/* argv[0] is "org". The caller holds cfg (flags given before the command;
 * those after it are added) and has called qr_client_global_init. Returns the
 * exit code: 0 ok, 1 broker or network error, 2 usage. */
int qr_ctl_org(int argc, char **argv, qr_client_config_t *cfg);

/* 1 when `project SUB` is one of this module's (share, unshare, shares,
 * pause, resume). */
int qr_ctl_share_command(const char *sub);

/* argv[0] is "project", argv[1] share, unshare, shares, pause or resume; as
 * qr_ctl_org. */
int qr_ctl_share(int argc, char **argv, qr_client_config_t *cfg);

/* `quorumctl reinstate --project ID --user NAME|ID`: an annotator paused
 * below the project's gold accuracy gets leases again (issue 16). Returns an
 * exit code. */
int qr_ctl_reinstate(int argc, char **argv, qr_client_config_t *cfg);

#endif
