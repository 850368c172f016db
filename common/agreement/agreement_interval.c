/*
 * agreement_interval.c - the Wilson score interval (agreement_interval.h).
 */
#include "agreement_interval.h"

#include <math.h>

int qr_wilson_interval(int64_t agree, int64_t n, double z, double *low, double *high)
{
    if (n <= 0 || agree < 0 || agree > n)
        return -1;
    double nn = (double)n, p = (double)agree / nn, z2 = z * z;
    double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    double half = z / (1 + z2 / nn) * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *low = agree == 0 ? 0.0 : fmax(0.0, centre - half);
    *high = agree == n ? 1.0 : fmin(1.0, centre + half);
    return 0;
}
