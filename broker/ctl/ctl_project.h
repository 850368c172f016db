/*
 * ctl_project.h - `quorumctl project create`.
 */
#ifndef QR_CTL_PROJECT_H
#define QR_CTL_PROJECT_H

#include <jansson.h>

#include "client.h"

/* argv[0] is "project", argv[1] "create" (or --help). cfg holds the
 * connection flags given before the command; those given after it are
 * added. The caller has called qr_client_global_init. Returns the process
 * exit code: 0 ok, 1 broker or network error, 2 usage error. */
int qr_ctl_project(int argc, char **argv, qr_client_config_t *cfg);

/* --auto-accept-confidence C (0-1, or "off": none) and --auto-accept-audit S
 * (0-1), either NULL when not given, into a project body (create or
 * update). Returns 0, or -1 after printing a usage error that starts with
 * cmd ("project create: "). */
int qr_ctl_auto_accept_flags(const char *conf, const char *audit, json_t *body, const char *cmd);

/* --show-predictions on|off (NULL: not given) into a project body. Returns
 * 0, or -1 after printing a usage error that starts with cmd. */
int qr_ctl_show_predictions_flag(const char *v, json_t *body, const char *cmd);

/* --overlap-min N, --overlap-max M (1-100) and --overlap-agreement-threshold
 * T (0-1), each "off" for null (all three off: fixed overlap), either NULL
 * when not given, into a project body. The broker judges how they go
 * together. Returns 0, or -1 after printing a usage error starting with cmd. */
int qr_ctl_dynamic_overlap_flags(const char *min, const char *max, const char *thr, json_t *body,
                                 const char *cmd);

/* --overlap-measure support|confidence and --overlap-prior-accuracy Q
 * (above 0, below 1), either NULL when not given, into a project body.
 * Returns 0, or -1 after printing a usage error starting with cmd. */
int qr_ctl_overlap_measure_flags(const char *measure, const char *prior, json_t *body,
                                 const char *cmd);

/* The gold flags (issue 16), each NULL when not given: --gold-rate P (0-1),
 * --gold-onboarding N (0-10000), --gold-min-accuracy A (0-1, or "off":
 * nobody is paused) and --gold-min-count N (1-100000), into a project body.
 * g[] holds them in that order. Returns 0, or -1 after a usage error. */
typedef struct qr_ctl_gold_flags_s {
    const char *rate, *onboarding, *min_accuracy, *min_count;
} qr_ctl_gold_flags_t;
int qr_ctl_gold_flags(const qr_ctl_gold_flags_t *g, json_t *body, const char *cmd);

/* Takes one gold flag at argv[*i] into g (qr_cli_take_value's answer: 1
 * taken, 0 not a gold flag, -1 a usage error printed). */
int qr_ctl_gold_take(qr_ctl_gold_flags_t *g, int argc, char **argv, int *i);

/* Prints a project object's gold settings, one "key: value" line each
 * (quorumctl project show). */
void qr_ctl_gold_print(json_t *project);

/* --review-mode M, --review-share S and --review-agreement-threshold T,
 * each NULL when not given, into a project body; 0, or -1 after a usage
 * error (printed). */
int qr_ctl_review_flags(const char *mode, const char *share, const char *threshold, json_t *body,
                        const char *cmd);

#endif
