/* ctl_agreement.c: being written. */
#include "ctl_agreement.h"

#include <stdio.h>

int qr_ctl_agreement(int argc, char **argv)
{
    fprintf(stderr, "quorumctl agreement: not built yet\n");
    return 2;
}
