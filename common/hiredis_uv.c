/* hiredis_uv.c: being written. */
typedef int qr_placeholder_hiredis_uv_t;
