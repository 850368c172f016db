/* agreement.c: being written. */
typedef int qr_placeholder_agreement_t;
