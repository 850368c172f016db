/*
 * ctl_openapi.h - `quorumctl openapi`: the broker's OpenAPI 3.1 document
 * (GET /v1/openapi.json) on stdout, for code generators and API clients.
 */
#ifndef QR_CTL_OPENAPI_H
#define QR_CTL_OPENAPI_H

#include "client.h"

/* argv[0] is "openapi". Returns the process exit code: 0 ok, 1 broker or
 * network error, 2 usage. */
int qr_ctl_openapi(int argc, char **argv, qr_client_config_t *cfg);

#endif
