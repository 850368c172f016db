/*
 * ctl_user.c - `quorumctl user create` (POST /v1/users) and `quorumctl
 * token create|list|revoke` (/v1/tokens): the people of the caller's
 * organization and their API tokens. A new token is printed once, alone on
 * stdout; the broker keeps only its SHA-256.
 */
#include "ctl_user.h"

#include "cli.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const prog = "quorumctl";

static const char user_help[] =
    "Usage: quorumctl user create --name N --role R\n"
    "       quorumctl user list [--json]   (see quorumctl user list --help)\n"
    "\n"
    "Creates a user in the caller's organization (POST /v1/users) and prints\n"
    "the new bearer token alone on stdout (it is shown only once); the id and\n"
    "role go to stderr. An existing name is refused (409): to give an\n"
    "existing user a new token, use `quorumctl token create`.\n"
    "\n"
    "  --name N   user name\n"
    "  --role R   admin, manager, reviewer or annotator\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (POST /v1/users).\n"
    "Writes: stdout: the token alone (qr_ and 64 hex digits); stderr: a line\n"
    "        such as \"user 7 'alice', role annotator\".\n"
    "\n"
    "Example:\n"
    "  quorumctl user create --name alice --role annotator > alice.token\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

int qr_ctl_user(int argc, char **argv, qr_client_config_t *cfg)
{
    static const char *const roles[] = {QR_ROLE_NAMES};
    const char *name = NULL, *role = NULL;

    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, user_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    if (strcmp(argv[1], "create") != 0)
        return qr_cli_usage_error(prog, "user create ", "unknown user command '%s' (create, list)",
                                  argv[1]);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, user_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--name", &name)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--role", &role)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "user create ", "user create: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (!name || !name[0])
        return qr_cli_usage_error(prog, "user create ", "user create: --name is required");
    if (!role)
        return qr_cli_usage_error(prog, "user create ", "user create: --role is required");
    size_t k = 0;
    while (k < sizeof roles / sizeof roles[0] && strcmp(roles[k], role) != 0)
        k++;
    if (k == sizeof roles / sizeof roles[0])
        return qr_cli_usage_error(prog, "user create ",
                                  "user create: --role must be admin, manager, reviewer or "
                                  "annotator, not '%s'",
                                  role);

    json_t *body = json_pack("{s:s, s:s}", "name", name, "role", role);
    if (!body) {
        fprintf(stderr, "%s: cannot build the request (is --name valid UTF-8?)\n", prog);
        return QR_EXIT_USAGE;
    }
    json_t *user;
    int rc = qr_cli_request(prog, cfg, "POST", QR_API_USERS, body, 0, &user);
    json_decref(body);
    if (rc == QR_EXIT_OK) {
        const char *token = json_string_value(json_object_get(user, "token"));
        const char *got_role = json_string_value(json_object_get(user, "role"));
        json_t *id = json_object_get(user, "id");
        if (!token) {
            fprintf(stderr, "%s: the broker's answer has no token\n", prog);
            rc = QR_EXIT_ERROR;
        } else {
            fprintf(stderr, "user %" JSON_INTEGER_FORMAT " '%s', role %s\n", json_integer_value(id),
                    name, got_role ? got_role : role);
            printf("%s\n", token);
        }
    }
    json_decref(user);
    return rc;
}

static const char token_help[] =
    "usage: quorumctl token create --user U --role R [--expires 30d]\n"
    "       quorumctl token list [--json]\n"
    "       quorumctl token revoke ID\n"
    "\n"
    "API tokens of the caller's organization. create makes the user if needed\n"
    "and prints the new token alone on stdout: it is shown once, only its\n"
    "SHA-256 is stored. --expires takes 30d, 12h, 90m or 45s. list prints a\n"
    "table with the columns id, prefix, user, role, last used, expires, revoked\n"
    "(--json: the broker's JSON, with created_at too). revoke takes effect at\n"
    "once on every broker.\n"
    "\n"
    "Reads:  no file: the broker's JSON answers (/v1/tokens).\n"
    "Writes: create: stdout the token alone, stderr \"token 7 for alice (annotator),\n"
    "        expires 2027-01-04T23:57:33Z\"; list: the table on stdout, one token a\n"
    "        row (--json: {\"tokens\":[{\"id\":3,\"prefix\":\"qr_ad94841\",...}]});\n"
    "        revoke: stderr \"token 3 revoked\".\n"
    "\n"
    "Examples:\n"
    "  quorumctl token create --user alice --role annotator --expires 30d\n"
    "  quorumctl token list\n"
    "  quorumctl token revoke 3\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char *json_str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static void show_tokens(json_t *o)
{
    json_t *t;
    size_t i;
    printf("%-6s %-12s %-20s %-10s %-26s %-26s %s\n", "id", "prefix", "user", "role", "last used",
           "expires", "revoked");
    json_array_foreach(json_object_get(o, "tokens"), i, t)
    {
        char user[256];
        printf("%-6lld %-12s %-20s %-10s %-26s %-26s %s\n",
               (long long)json_integer_value(json_object_get(t, "id")),
               json_str_or(t, "prefix", ""),
               qr_term_escape_to(user, sizeof user, json_str_or(t, "user", "")),
               json_str_or(t, "role", ""), json_str_or(t, "last_used_at", "-"),
               json_str_or(t, "expires_at", "never"), json_str_or(t, "revoked_at", "-"));
    }
}

int qr_ctl_token(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *user = NULL, *role = NULL, *expires = NULL, *id = NULL;
    int as_json = 0;
    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, token_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"))
        return qr_cli_usage_error(prog, "token ",
                                  "unknown token command '%s' (create, list, revoke)", sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, token_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--user", &user)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--role", &role)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--expires", &expires)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(sub, "revoke") && !id && argv[i][0] != '-') {
            id = argv[i];
        } else {
            return qr_cli_usage_error(prog, "token ", "token %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    int rc;
    if (!strcmp(sub, "list")) {
        json_t *o = NULL;
        rc = qr_cli_request(prog, cfg, "GET", QR_API_TOKENS, NULL, as_json ? QR_CLI_ECHO : 0,
                            as_json ? NULL : &o);
        if (rc == QR_EXIT_OK && !as_json)
            show_tokens(o);
        json_decref(o);
        return rc;
    }
    if (!strcmp(sub, "revoke")) {
        long long tid;
        if (!id || qr_cli_parse_ll(id, 1, INT64_MAX, &tid) < 0)
            return qr_cli_usage_error(prog, "token ",
                                      "token revoke: wants a token id (see token list)");
        char *path = qr_xasprintf(QR_API_TOKEN("%lld"), tid);
        rc = qr_cli_request(prog, cfg, "DELETE", path, NULL, 0, NULL);
        free(path);
        if (rc == QR_EXIT_OK)
            fprintf(stderr, "token %lld revoked\n", tid);
        return rc;
    }
    if (!user || !user[0] || !role)
        return qr_cli_usage_error(prog, "token ", "token create: --user and --role are required");
    json_t *body = json_pack("{s:s s:s}", "user", user, "role", role);
    if (!body)
        return qr_cli_usage_error(prog, "token ", "token create: --user must be valid UTF-8");
    if (expires)
        json_object_set_new(body, "expires", json_string(expires));
    json_t *t;
    rc = qr_cli_request(prog, cfg, "POST", QR_API_TOKENS, body, 0, &t);
    json_decref(body);
    if (rc == QR_EXIT_OK) {
        fprintf(stderr, "token %lld for %s (%s), expires %s\n",
                (long long)json_integer_value(json_object_get(t, "id")), user, role,
                json_str_or(t, "expires_at", "never"));
        printf("%s\n", json_str_or(t, "token", ""));
    }
    json_decref(t);
    return rc;
}
