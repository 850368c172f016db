/* client.c: being written. */
typedef int qr_placeholder_client_t;
