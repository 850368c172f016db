/*
 * ctl_import.h - `quorumctl import`, `quorumctl import list` and
 * `quorumctl predictions`.
 */
#ifndef QR_CTL_IMPORT_H
#define QR_CTL_IMPORT_H

#include "client.h"

/* argv[0] is "import" (argv[1] "list" for the list). cfg holds the
 * connection flags given before the command; those given after it are
 * added. The caller has called qr_client_global_init. Returns the process
 * exit code: 0 ok, 1 broker or network error (a refused duplicate too), 2
 * usage error (an unreadable FILE too), QR_EXIT_INTERRUPTED after Ctrl-C. */
int qr_ctl_import(int argc, char **argv, qr_client_config_t *cfg);

/* argv[0] is "predictions": PUT /v1/projects/{id}/predictions from a JSON
 * lines file. Exit codes as for qr_ctl_import. */
int qr_ctl_predictions(int argc, char **argv, qr_client_config_t *cfg);

#endif
