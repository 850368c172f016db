/*
 * ctl_agreement.h - `quorumctl agreement FILE.csv [--json] [--per-item]`.
 */
#ifndef QR_CTL_AGREEMENT_H
#define QR_CTL_AGREEMENT_H

/* argv[0] is "agreement". Returns the process exit code (0 ok, 2 bad input). */
int qr_ctl_agreement(int argc, char **argv);

#endif
