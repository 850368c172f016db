/* redis_client.c: being written. */
typedef int qr_placeholder_redis_client_t;
