/* http.c: being written. */
typedef int qr_placeholder_http_t;
