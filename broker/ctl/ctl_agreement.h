/*
 * ctl_agreement.h - `quorumctl agreement FILE.csv [--json] [--per-item]`.
 */
#ifndef QR_CTL_AGREEMENT_H
#define QR_CTL_AGREEMENT_H

#include <stdio.h>

#include <jansson.h>

/* The text report of a JSON agreement report (qr_agreement_json's keys,
 * with "per_item" listed when present) as `quorumctl agreement FILE.csv`
 * prints it; source names what was read ("project 7"). */
void qr_ctl_agreement_text(FILE *out, const json_t *report, const char *source);

/* For the tables of the agreement sections: the columns s takes on a
 * terminal once escaped (text_out.h), and s printed so, padded with spaces
 * to width columns. */
int qr_ctl_agreement_name_width(const char *s);
void qr_ctl_agreement_put_name(FILE *out, const char *s, int width);

/* argv[0] is "agreement". Returns the process exit code (0 ok, 2 bad input). */
int qr_ctl_agreement(int argc, char **argv);

#endif
