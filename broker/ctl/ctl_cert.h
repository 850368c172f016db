/*
 * ctl_cert.h - `quorumctl cert add|list|revoke`: client certificates mapped
 * to users for mutual TLS (POST/GET /v1/certs, DELETE /v1/certs/{id}).
 */
#ifndef QR_CTL_CERT_H
#define QR_CTL_CERT_H

#include "client.h"

/* argv[0] is "cert". cfg holds the connection settings given before the
 * command; those given after it are added. The caller has called
 * qr_client_global_init. Returns the process exit code: 0 ok, 1 broker or
 * network error, 2 usage error (or an unreadable certificate file). */
int qr_ctl_cert(int argc, char **argv, qr_client_config_t *cfg);

#endif
