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

/* What qr_ctl_throughput_print leaves out. */
enum { QR_CTL_TP_NO_ETA = 1 }; /* the caller printed the ETA already */

/* Prints a GET /v1/projects/{id}/throughput answer as `quorumctl throughput`
 * does: the window, the crew as a table with totals, the queue and the ETA.
 * flags: 0 or QR_CTL_TP_NO_ETA. */
void qr_ctl_throughput_print(json_t *r, int flags);

/* A duration in ms as "850ms", "42.0s", "9m18s" or "3h07m" into out (48
 * bytes); "-" for a negative or non-finite value. Returns out. */
const char *qr_ctl_fmt_duration(char out[48], double ms);

/* A rate in annotations per hour as "1,674/h", or "635.0/s (2,286,000/h)"
 * from one a second up, into out (64 bytes). Returns out. */
const char *qr_ctl_fmt_rate(char out[64], double per_hour);

/* The ETA sentence both reports print after "ETA" (its second line
 * indented by indent spaces): remaining annotations
 * still needed; eta_s the estimate in seconds (NAN: none); the pace it
 * comes from (per hour, annotations and working ms of the pace span of
 * span_ms); since_last_s the seconds since the latest annotation (NAN:
 * unknown) and idle_ms the pause threshold; at the ISO instant or NULL.
 * Ends with a newline. */
void qr_ctl_print_eta(int indent, double remaining, double eta_s, double per_hour, double pace_n,
                      double pace_ms, double span_ms, double since_last_s, double idle_ms,
                      const char *at);

/* Appends "?key=value" (or "&key=value") to q, the value percent-encoded. */
void qr_ctl_query_add(qr_buf_t *q, const char *key, const char *value);

#endif
