/*
 * ctl_task.h - `quorumctl task PROJECT TASK`: one task with its
 * annotations and review, over GET /v1/projects/{id}/tasks/{task}
 * (docs/API.md).
 */
#ifndef QR_CTL_TASK_H
#define QR_CTL_TASK_H

#include "client.h"

/* argv[0] is "task". The caller holds cfg and has called
 * qr_client_global_init. Returns the exit code: 0 ok, 1 broker or network
 * error, 2 usage. */
int qr_ctl_task(int argc, char **argv, qr_client_config_t *cfg);

#endif
