/*
 * ctl_report.h - `quorumctl report`, `quorumctl agreement --project` and
 * `quorumctl export`: a project's report, live agreement and annotations.
 */
#ifndef QR_CTL_REPORT_H
#define QR_CTL_REPORT_H

#include "client.h"

/* argv[0] is "report". cfg holds the connection flags given before the
 * command; those given after it are added. The caller has called
 * qr_client_global_init. Returns the process exit code: 0 ok, 1 broker or
 * network error, 2 usage error (also a window the broker refuses). */
int qr_ctl_report(int argc, char **argv, qr_client_config_t *cfg);

/* argv[0] is "agreement", with --project (without it the agreement is
 * computed offline: ctl_agreement.h); as qr_ctl_report. */
int qr_ctl_live_agreement(int argc, char **argv, qr_client_config_t *cfg);

/* argv[0] is "export"; as qr_ctl_report. The annotations go to stdout as
 * the broker sent them. */
int qr_ctl_export(int argc, char **argv, qr_client_config_t *cfg);

#endif
