/*
 * ctl_throughput.h - `quorumctl throughput --project ID [--window 1h]
 * [--by annotator|vendor|hour] [--annotator ID] [--json] [--watch[=S]]`:
 * the throughput report (GET /v1/projects/{id}/throughput, docs/THROUGHPUT.md)
 * as an aligned table with totals, or as the broker's JSON.
 */
#ifndef QR_CTL_THROUGHPUT_H
#define QR_CTL_THROUGHPUT_H

#include <jansson.h>

#include "client.h"
#include "util.h"

/* argv[0] is "throughput". cfg holds the connection flags given before the
 * command; those given after it are added. The caller has called
 * qr_client_global_init. Returns the process exit code: 0 ok, 1 broker or
 * network error, 2 usage (also a window the broker refuses). */
int qr_ctl_throughput(int argc, char **argv, qr_client_config_t *cfg);

/* Prints a GET /v1/projects/{id}/throughput answer as `quorumctl throughput`
 * does: the window, the crew as a table with totals, the queue and the ETA. */
void qr_ctl_throughput_print(json_t *r);

/* Appends "?key=value" (or "&key=value") to q, the value percent-encoded. */
void qr_ctl_query_add(qr_buf_t *q, const char *key, const char *value);

#endif
