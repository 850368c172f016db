/*
 * admin.c - one-shot administrative commands of quorumd (see admin.h).
 * These run outside the event loop, so blocking libpq calls are fine here.
 */
#include "admin.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int exec_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    fprintf(stderr, "quorumd: %s: %s", what, PQerrorMessage(c));
    return -1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    qr_buf_t b;
    qr_buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        qr_buf_append(&b, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err) {
        qr_buf_free(&b);
        return NULL;
    }
    return qr_buf_steal(&b);
}

/* Migration files are named NNNN_description.sql; anything else is ignored. */
static int is_migration(const char *name)
{
    size_t n = strlen(name);
    if (n < 9 || strcmp(name + n - 4, ".sql"))
        return 0;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return name[4] == '_';
}

static PGconn *connect_or_complain(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "quorumd: cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

int qr_admin_migrate(const char *conninfo, const char *sql_dir)
{
    int rc = -1;
    char **names = NULL;
    size_t count = 0;
    PGresult *r = NULL;
    PGconn *c = connect_or_complain(conninfo);
    if (!c)
        return -1;

    DIR *d = opendir(sql_dir);
    if (!d) {
        fprintf(stderr, "quorumd: cannot open migrations folder %s\n", sql_dir);
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_migration(e->d_name))
            continue;
        names = qr_xrealloc(names, (count + 1) * sizeof *names);
        names[count++] = qr_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof *names, cmp_names);

    r = PQexec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    if (exec_ok(c, r, "creating schema_migrations"))
        goto fail;
    PQclear(r);
    /* One migrator at a time across brokers. */
    r = PQexec(c, "SELECT pg_advisory_lock(7263402)");
    if (exec_ok(c, r, "taking the migration lock"))
        goto fail;
    PQclear(r);
    r = NULL;

    int applied = 0;
    for (size_t i = 0; i < count; i++) {
        const char *version = names[i];
        const char *params[1] = {version};
        r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, params,
                         NULL, NULL, 0);
        if (exec_ok(c, r, "reading schema_migrations"))
            goto fail;
        int done = PQntuples(r) > 0;
        PQclear(r);
        r = NULL;
        if (done)
            continue;
        char *path = qr_xasprintf("%s/%s", sql_dir, version);
        char *sql = read_file(path);
        free(path);
        if (!sql) {
            fprintf(stderr, "quorumd: cannot read migration %s\n", version);
            goto fail;
        }
        r = PQexec(c, "BEGIN");
        if (exec_ok(c, r, "BEGIN")) {
            free(sql);
            goto fail;
        }
        PQclear(r);
        r = PQexec(c, sql);
        free(sql);
        if (exec_ok(c, r, version)) {
            PQclear(r);
            r = PQexec(c, "ROLLBACK");
            goto fail;
        }
        PQclear(r);
        r = PQexecParams(c, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, NULL, params,
                         NULL, NULL, 0);
        if (exec_ok(c, r, "recording the migration"))
            goto fail;
        PQclear(r);
        r = PQexec(c, "COMMIT");
        if (exec_ok(c, r, "COMMIT"))
            goto fail;
        PQclear(r);
        r = NULL;
        applied++;
        fprintf(stderr, "quorumd: applied migration %s\n", version);
    }
    fprintf(stderr, "quorumd: schema up to date (%d applied, %zu known)\n", applied, count);
    rc = 0;
fail:
    PQclear(r);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    PQfinish(c);
    return rc;
}

int qr_admin_bootstrap(const char *conninfo, const char *org, const char *user)
{
    int rc = -1;
    PGresult *r = NULL;
    PGconn *c = connect_or_complain(conninfo);
    if (!c)
        return -1;
    char token[3 + 64 + 1] = "qr_";
    if (qr_random_hex(32, token + 3) < 0) {
        fprintf(stderr, "quorumd: no randomness for a token\n");
        goto fail;
    }
    char digest[65];
    qr_sha256_hex(token, strlen(token), digest);
    char prefix[12];
    snprintf(prefix, sizeof prefix, "%.10s", token);
    const char *params[4] = {org, user, digest, prefix};
    r = PQexecParams(c,
                     "WITH o AS ("
                     "  INSERT INTO organizations (name, kind) VALUES ($1, 'owner')"
                     "  ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
                     "), u AS ("
                     "  INSERT INTO users (org_id, name, role) SELECT id, $2, 'admin' FROM o"
                     "  ON CONFLICT (org_id, name) DO UPDATE SET role = 'admin' RETURNING id"
                     ") INSERT INTO api_tokens (user_id, token_sha256, prefix)"
                     "  SELECT id, $3, $4 FROM u RETURNING user_id",
                     4, NULL, params, NULL, NULL, 0);
    if (exec_ok(c, r, "creating the admin token"))
        goto fail;
    printf("%s\n", token);
    rc = 0;
fail:
    PQclear(r);
    PQfinish(c);
    return rc;
}
