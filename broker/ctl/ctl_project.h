/*
 * ctl_project.h - `quorumctl project create`.
 */
#ifndef QR_CTL_PROJECT_H
#define QR_CTL_PROJECT_H

#include <jansson.h>

#include "client.h"

/* argv[0] is "project", argv[1] "create" (or --help). cfg holds the
 * connection flags given before the command; those given after it are
 * added. The caller has called qr_client_global_init. Returns the process
 * exit code: 0 ok, 1 broker or network error, 2 usage error. */
int qr_ctl_project(int argc, char **argv, qr_client_config_t *cfg);

/* --auto-accept-confidence C (0-1, or "off": none) and --auto-accept-audit S
 * (0-1), either NULL when not given, into a project body (create or
 * update). Returns 0, or -1 after printing a usage error that starts with
 * cmd ("project create: "). */
int qr_ctl_auto_accept_flags(const char *conf, const char *audit, json_t *body, const char *cmd);

/* --review-mode M, --review-share S and --review-agreement-threshold T,
 * each NULL when not given, into a project body; 0, or -1 after a usage
 * error (printed). */
int qr_ctl_review_flags(const char *mode, const char *share, const char *threshold, json_t *body,
                        const char *cmd);

#endif
