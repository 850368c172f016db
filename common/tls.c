/* tls.c: being written. */
typedef int qr_placeholder_tls_t;
