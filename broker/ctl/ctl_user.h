/*
 * ctl_user.h - `quorumctl user create` and `quorumctl token
 * create|list|revoke`.
 */
#ifndef QR_CTL_USER_H
#define QR_CTL_USER_H

#include "client.h"

/* argv[0] is "user". cfg holds the connection flags given before the
 * command; those given after it are added. The caller has called
 * qr_client_global_init. Returns the process exit code: 0 ok, 1 broker or
 * network error, 2 usage error. */
int qr_ctl_user(int argc, char **argv, qr_client_config_t *cfg);

/* argv[0] is "token"; as qr_ctl_user. */
int qr_ctl_token(int argc, char **argv, qr_client_config_t *cfg);

#endif
