/*
 * admin.h - quorumd's one-shot commands that run before or beside the event
 * loop and may therefore use blocking libpq: `migrate` (apply sql/ in order)
 * and `bootstrap-admin` (create an organization, an admin user and a token).
 */
#ifndef QR_ADMIN_H
#define QR_ADMIN_H

/* Applies every sql/NNNN_*.sql not yet recorded in schema_migrations, each
 * in its own transaction, under an advisory lock so two brokers starting at
 * once do not race. Safe to run any number of times. 0, or -1 with a
 * message on stderr. */
int qr_admin_migrate(const char *conninfo, const char *sql_dir);

/* Ensures organization `org` (kind owner) and admin user `user` exist and
 * creates a new API token for that user, printed on stdout. Only its SHA-256
 * digest is stored. 0 or -1. */
int qr_admin_bootstrap(const char *conninfo, const char *org, const char *user);

#endif
