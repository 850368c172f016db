/* pg.c: being written. */
typedef int qr_placeholder_pg_t;
