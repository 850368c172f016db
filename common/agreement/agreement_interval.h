/*
 * agreement_interval.h - a confidence interval for a proportion: how far an
 * accuracy measured on a few judgements (an annotator's gold answers, an
 * audit sample) may be from the true one. Pure.
 */
#ifndef QR_AGREEMENT_INTERVAL_H
#define QR_AGREEMENT_INTERVAL_H

#include <stdint.h>

/* z for a two-sided 95 % interval. */
#define QR_Z95 1.959963984540054

/*
 * The Wilson score interval of agree successes in n trials at z (QR_Z95
 * for 95 %): it stays within [0, 1] and holds its coverage for small n and
 * for proportions near 0 or 1, where the normal approximation does not
 * (Wilson 1927; Brown, Cai & DasGupta 2001). Returns 0 with *low and *high
 * set, or -1 when n is 0 or agree is outside [0, n].
 */
int qr_wilson_interval(int64_t agree, int64_t n, double z, double *low, double *high);

#endif
