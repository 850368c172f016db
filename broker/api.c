/* api.c: being written. */
typedef int qr_placeholder_api_t;
