/*
 * ctl_manage.h - `quorumctl project list|show|update|archive|unarchive|delete`
 * and `quorumctl user list`: managing projects and users (issue 14).
 */
#ifndef QR_CTL_MANAGE_H
#define QR_CTL_MANAGE_H

#include "client.h"

/* 1 when sub is one of the project commands below (list, show, update,
 * archive, unarchive, delete). */
int qr_ctl_manage_command(const char *sub);

/* argv[0] is "project", argv[1] one of qr_ctl_manage_command's. cfg holds
 * the connection flags given before the command; those given after it are
 * added. The caller has called qr_client_global_init. Returns the process
 * exit code: 0 ok, 1 broker or network error (or a delete not confirmed),
 * 2 usage error. */
int qr_ctl_project_manage(int argc, char **argv, qr_client_config_t *cfg);

/* argv[0] is "user", argv[1] "list"; as qr_ctl_project_manage. */
int qr_ctl_user_list(int argc, char **argv, qr_client_config_t *cfg);

#endif
