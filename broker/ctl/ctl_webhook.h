/*
 * ctl_webhook.h - quorumctl's webhooks: `webhook add|list|rm|deliveries`
 * over /v1/projects/{id}/webhooks (docs/API.md).
 */
#ifndef QR_CTL_WEBHOOK_H
#define QR_CTL_WEBHOOK_H

#include "client.h"

/* argv[0] is "webhook". The caller holds cfg (flags given before the
 * command; those after it are added) and has called qr_client_global_init.
 * Returns the exit code: 0 ok, 1 broker or network error, 2 usage. */
int qr_ctl_webhook(int argc, char **argv, qr_client_config_t *cfg);

#endif
