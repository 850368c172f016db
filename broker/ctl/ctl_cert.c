/*
 * ctl_cert.c - `quorumctl cert`: map a client certificate to a user so that
 * an agent connecting with it (mutual TLS, quorumd --client-ca) needs no
 * bearer token; list the mappings; revoke one (at once, on every broker).
 * The broker reads the certificate and keeps only its SHA-256 fingerprint,
 * subject and expiry; the private key never leaves the agent's machine.
 */
#include "ctl_cert.h"

#include "cli.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A client certificate in PEM is a few KB; the broker refuses over 16 KB. */
#define MAX_PEM_BYTES 16384

static const char *const prog = "quorumctl";

static const char cert_help[] =
    "usage: quorumctl cert add --user NAME --cert FILE\n"
    "       quorumctl cert list [--json]\n"
    "       quorumctl cert revoke ID\n"
    "\n"
    "Client certificates for mutual TLS (quorumd --client-ca). add maps the\n"
    "certificate in FILE (PEM, the certificate only, not its key) to the user\n"
    "NAME of your organization: a request over TLS with that certificate and no\n"
    "bearer token then acts as NAME. It prints the mapping's id on stdout and\n"
    "the fingerprint on stderr. list shows each mapping's id, user, role,\n"
    "SHA-256 fingerprint, expiry, last use and revocation. revoke takes effect\n"
    "at once on every broker. Admins and managers only; only an admin may map\n"
    "a certificate to an admin.\n"
    "\n"
    "Here --cert names the certificate to map; to connect with a client\n"
    "certificate yourself, give --cert before the command or set QUORUM_CERT.\n"
    "\n"
    "Reads:  add: FILE, one PEM certificate (-----BEGIN CERTIFICATE----- ...),\n"
    "        at most 16 KiB, not a chain.\n"
    "Writes: add: stdout the mapping's id (3), stderr its SHA-256 fingerprint;\n"
    "        list: a table with the columns id, user, role, sha256, not after,\n"
    "        last used, revoked (--json: {\"certificates\":[{\"id\":3,...}]});\n"
    "        revoke: a line on stderr.\n"
    "\n"
    "Examples:\n"
    "  quorumctl cert add --user alice --cert alice.crt\n"
    "  quorumctl cert list\n"
    "  quorumctl cert revoke 3\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error\n"
    "(bad flags, unreadable FILE, missing connection settings).\n";

/* Reads a PEM file of at most MAX_PEM_BYTES into b. 0, or -1 (printed). */
static int read_pem(const char *path, qr_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b->len <= MAX_PEM_BYTES)
        qr_buf_append(b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || b->len == 0 || b->len > MAX_PEM_BYTES) {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                bad      ? "read error"
                : b->len ? "over 16 KB: not one certificate"
                         : "empty");
        return -1;
    }
    return 0;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static int cert_add(qr_client_config_t *cfg, const char *user, const char *file)
{
    if (!user || !user[0] || !file)
        return qr_cli_usage_error(prog, "cert ", "cert: add: --user and --cert are required");
    qr_buf_t pem;
    qr_buf_init(&pem);
    if (read_pem(file, &pem) < 0) {
        qr_buf_free(&pem);
        return QR_EXIT_USAGE;
    }
    json_t *body = json_pack("{s:s s:s%}", "user", user, "certificate", pem.data, pem.len);
    qr_buf_free(&pem);
    if (!body)
        return qr_cli_usage_error(prog, "cert ",
                                  "cert: add: --user and the certificate must be UTF-8 text");
    json_t *o;
    int rc = qr_cli_request(prog, cfg, "POST", QR_API_CERTS, body, 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK) {
        fprintf(stderr, "certificate %s (SHA-256 %s) now acts as %s (%s) until %s\n",
                str_or(o, "subject", "?"), str_or(o, "sha256", "?"), user, str_or(o, "role", "?"),
                str_or(o, "not_after", "?"));
        printf("%lld\n", (long long)json_integer_value(json_object_get(o, "id")));
    }
    json_decref(o);
    return rc;
}

static int cert_list(qr_client_config_t *cfg, int as_json)
{
    json_t *o, *m;
    size_t i;
    int rc = qr_cli_request(prog, cfg, "GET", QR_API_CERTS, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc != QR_EXIT_OK)
        return rc;
    if (!as_json) {
        printf("%-6s %-20s %-10s %-64s %-26s %-26s %s\n", "id", "user", "role", "sha256",
               "not after", "last used", "revoked");
        json_array_foreach(json_object_get(o, "certificates"), i, m)
        {
            printf("%-6lld %-20s %-10s %-64s %-26s %-26s %s\n",
                   (long long)json_integer_value(json_object_get(m, "id")), str_or(m, "user", ""),
                   str_or(m, "role", ""), str_or(m, "sha256", ""), str_or(m, "not_after", ""),
                   str_or(m, "last_used_at", "-"), str_or(m, "revoked_at", "-"));
        }
    }
    json_decref(o);
    return fflush(stdout) == 0 ? QR_EXIT_OK : QR_EXIT_ERROR;
}

static int cert_revoke(qr_client_config_t *cfg, const char *id)
{
    long long v;
    if (!id || qr_cli_parse_ll(id, 1, INT64_MAX, &v) < 0)
        return qr_cli_usage_error(prog, "cert ",
                                  "cert: revoke: wants a mapping id (see cert list)");
    char path[64];
    snprintf(path, sizeof path, QR_API_CERT("%lld"), v);
    json_t *o;
    int rc = qr_cli_request(prog, cfg, "DELETE", path, NULL, 0, &o);
    if (rc == QR_EXIT_OK)
        fprintf(stderr, "certificate mapping %lld revoked\n", v);
    json_decref(o);
    return rc;
}

int qr_ctl_cert(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *user = NULL, *file = NULL, *id = NULL;
    int as_json = 0;
    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, cert_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "revoke"))
        return qr_cli_usage_error(prog, "cert ", "cert: unknown command '%s' (add, list, revoke)",
                                  sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, cert_help);
            return QR_EXIT_OK;
        }
        /* --cert is this command's own flag, before the connection flags. */
        if ((r = qr_cli_take_value(prog, argc, argv, &i, "--user", &user)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--cert", &file)) != 0 ||
            (r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(sub, "revoke") && !id && argv[i][0] != '-') {
            id = argv[i];
        } else {
            return qr_cli_usage_error(prog, "cert ", "cert: unexpected argument '%s'", argv[i]);
        }
    }
    if (!strcmp(sub, "add"))
        return cert_add(cfg, user, file);
    if (!strcmp(sub, "list"))
        return cert_list(cfg, as_json);
    return cert_revoke(cfg, id);
}
