/*
 * ctl_org.c - `quorumctl org create|list` and `quorumctl project
 * share|unshare|shares|pause|resume`: an owner's admin makes vendor
 * organizations and shares projects with them, with an optional quota of
 * annotations for the vendor and a cap of tasks per annotator (enforced by
 * the broker at lease time). An organization is named by its id or its name;
 * a name is looked up in GET /v1/organizations. The owner's admins and
 * managers pause a project (no new leases anywhere) and resume it.
 */
#include "ctl_org.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "protocol.h"
#include "text_out.h"

static const char *const prog = "quorumctl";

static const char org_help[] =
    "Usage: quorumctl org create NAME [--kind vendor|owner] [--json]\n"
    "       quorumctl org list [--json]\n"
    "\n"
    "Organizations (admins only). create makes one (a vendor unless --kind\n"
    "owner) and prints its id; only an owner organization's admin may. list\n"
    "prints id, kind and name: every organization for an owner's admin, only\n"
    "their own for a vendor's. An admin gives a vendor its first users with\n"
    "POST /v1/tokens or /v1/users and \"organization\": NAME (docs/API.md).\n"
    "\n"
    "  --kind K   vendor (default) or owner\n"
    "  --json     print the broker's JSON\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (POST or GET /v1/organizations).\n"
    "Writes: create: stdout the new organization's id (2), with --json\n"
    "        {\"id\":2,\"name\":\"acme-labeling\",\"kind\":\"vendor\"}; list: a table\n"
    "        with the columns id, kind, name (--json: {\"organizations\":[...]}).\n"
    "\n"
    "Examples:\n"
    "  quorumctl org create acme-labeling\n"
    "  quorumctl org list\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char share_help[] =
    "Usage: quorumctl project share --project ID --org NAME|ID [--quota N] [--cap N] [--json]\n"
    "       quorumctl project unshare --project ID --org NAME|ID\n"
    "       quorumctl project shares --project ID [--json]\n"
    "\n"
    "Shares a project with a vendor organization, or changes the share: the\n"
    "vendor's annotators may then lease its tasks and its managers read its\n"
    "progress and their own crew's throughput, report and export. The bounds\n"
    "hold at lease time across every broker; each counts submitted\n"
    "annotations plus live leases. A bound not given is removed. unshare ends\n"
    "the share: the vendor gets 403 on its next request, on every broker.\n"
    "shares lists the shares and each vendor's annotations.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --org O        the vendor organization, by name or id\n"
    "  --quota N      annotations the vendor's whole crew may do (0 and up)\n"
    "  --cap N        tasks each of the vendor's annotators may do (0 and up)\n"
    "  --json         print the broker's JSON\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (/v1/projects/ID/shares).\n"
    "Writes: share: stdout \"project 7 shared with organization 2 (quota 5000,\n"
    "        cap 200)\"; unshare: \"project 7 no longer shared with organization 2\";\n"
    "        shares: a table with the columns org, name, quota, cap, annotations;\n"
    "        with --json the broker's JSON ({\"shares\":[{\"org_id\":2,...}]}).\n"
    "\n"
    "Examples:\n"
    "  quorumctl project share --project 7 --org acme-labeling --quota 5000 --cap 200\n"
    "  quorumctl project shares --project 7\n"
    "  quorumctl project unshare --project 7 --org acme-labeling\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or no such\n"
    "organization), 2 usage error.\n";

static const char pause_help[] =
    "Usage: quorumctl project pause --project ID [--json]\n"
    "       quorumctl project resume --project ID [--json]\n"
    "\n"
    "pause stops handing out the project's tasks on every broker at once: lease\n"
    "requests answer 409 project_paused (quorum-agent then exits with code 8).\n"
    "Leases already held may still be submitted, released or skipped, and tasks\n"
    "may still be imported, so no work is lost. resume hands out tasks again and\n"
    "wakes the agents' waiting lease requests. Both are idempotent; only the\n"
    "project's own organization's admins and managers may.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --json         print the broker's JSON\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (POST .../pause or .../resume).\n"
    "Writes: stdout \"project 7 is paused (since 2026-12-05T23:57:34.124115+00:00)\"\n"
    "        or \"project 7 is running\"; with --json the broker's\n"
    "        {\"id\":7,\"paused\":true,\"paused_at\":\"2026-12-05T23:57:34.124115+00:00\"}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl project pause --project 7\n"
    "  quorumctl project resume --project 7\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or no access to the\n"
    "project), 2 usage error.\n";

/* --- org ------------------------------------------------------------------------------ */

int qr_ctl_org(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *kind = "vendor", *name = NULL;
    int as_json = 0;
    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, org_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") && strcmp(sub, "list"))
        return qr_cli_usage_error(prog, "org ", "unknown org command '%s' (create, list)", sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, org_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--kind", &kind)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(sub, "create") && !name && (argv[i][0] != '-' || !argv[i][0])) {
            name = argv[i];
        } else {
            return qr_cli_usage_error(prog, "org ", "org %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    json_t *o;
    if (!strcmp(sub, "list")) {
        int rc = qr_cli_request(prog, cfg, "GET", QR_API_ORGANIZATIONS, NULL,
                                as_json ? QR_CLI_ECHO : 0, &o);
        json_t *org;
        size_t k;
        if (rc == QR_EXIT_OK && !as_json) {
            printf("%-8s %-7s %s\n", "id", "kind", "name");
            json_array_foreach(json_object_get(o, "organizations"), k, org)
            {
                char name[256];
                const char *n = json_string_value(json_object_get(org, "name"));
                printf("%-8lld %-7s %s\n",
                       (long long)json_integer_value(json_object_get(org, "id")),
                       json_string_value(json_object_get(org, "kind")),
                       qr_term_escape_to(name, sizeof name, n ? n : ""));
            }
        }
        json_decref(o);
        return rc;
    }
    if (!name || !name[0] || strlen(name) > 200)
        return qr_cli_usage_error(prog, "org ", "org create: wants a NAME of 1 to 200 characters");
    if (strcmp(kind, "vendor") && strcmp(kind, "owner"))
        return qr_cli_usage_error(prog, "org ",
                                  "org create: --kind must be vendor or owner, not '%s'", kind);
    json_t *body = json_pack("{s:s s:s}", "name", name, "kind", kind);
    if (!body)
        return qr_cli_usage_error(prog, "org ", "org create: NAME must be valid UTF-8");
    int rc = qr_cli_request(prog, cfg, "POST", QR_API_ORGANIZATIONS, body,
                            as_json ? QR_CLI_ECHO : 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json)
        printf("%lld\n", (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    return rc;
}

/* --- project share, unshare, shares ------------------------------------------------------- */

int qr_ctl_share_command(const char *sub)
{
    return !strcmp(sub, "share") || !strcmp(sub, "unshare") || !strcmp(sub, "shares") ||
           !strcmp(sub, "pause") || !strcmp(sub, "resume");
}

/* `project pause|resume --project ID`: POST /v1/projects/{id}/pause or
 * /resume; prints the project's state on stderr (its JSON on stdout with
 * --json). */
static int project_pause(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *sub = argv[1];
    int as_json = 0;
    long long pid;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "project %s ", sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, pause_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, cmd, "project %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, cmd, project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    char path[96];
    snprintf(path, sizeof path,
             !strcmp(sub, "pause") ? QR_API_PAUSE("%lld") : QR_API_RESUME("%lld"), pid);
    json_t *o;
    int rc = qr_cli_request(prog, cfg, "POST", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json) {
        const char *at = json_string_value(json_object_get(o, "paused_at"));
        if (json_is_true(json_object_get(o, "paused")))
            fprintf(stderr, "project %lld is paused (since %s)\n", pid, at ? at : "?");
        else
            fprintf(stderr, "project %lld is running\n", pid);
    }
    json_decref(o);
    return rc;
}

/* The id of organization `org` (an id, or a name looked up on the broker),
 * or -1 (message printed, *rc the exit code). */
static long long org_id(qr_client_config_t *cfg, const char *org, int *rc)
{
    long long id;
    if (qr_cli_parse_ll(org, 1, INT64_MAX, &id) == 0)
        return id;
    json_t *o, *x;
    size_t k;
    *rc = qr_cli_request(prog, cfg, "GET", QR_API_ORGANIZATIONS, NULL, 0, &o);
    id = -1;
    json_array_foreach(json_object_get(o, "organizations"), k, x)
    {
        const char *name = json_string_value(json_object_get(x, "name"));
        if (name && !strcmp(name, org))
            id = (long long)json_integer_value(json_object_get(x, "id"));
    }
    json_decref(o);
    if (*rc == QR_EXIT_OK && id < 0) {
        fprintf(stderr, "%s: no organization '%s' (see quorumctl org list)\n", prog, org);
        *rc = QR_EXIT_ERROR;
    }
    return id;
}

int qr_ctl_share(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *org = NULL, *quota = NULL, *cap = NULL;
    int as_json = 0;
    long long pid, q = -1, k = -1;
    const char *sub = argv[1];
    char cmd[32];
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume"))
        return project_pause(argc, argv, cfg);
    snprintf(cmd, sizeof cmd, "project %s ", sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, share_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--org", &org)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--quota", &quota)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--cap", &cap)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, cmd, "project %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, cmd, project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (strcmp(sub, "shares") && (!org || !org[0]))
        return qr_cli_usage_error(prog, cmd, "project %s: --org NAME|ID is required", sub);
    if (quota && qr_cli_parse_ll(quota, 0, 1000000000, &q) < 0)
        return qr_cli_usage_error(prog, cmd, "project %s: --quota must be a count from 0, not '%s'",
                                  sub, quota);
    if (cap && qr_cli_parse_ll(cap, 0, 1000000000, &k) < 0)
        return qr_cli_usage_error(prog, cmd, "project %s: --cap must be a count from 0, not '%s'",
                                  sub, cap);
    if (strcmp(sub, "share") && (quota || cap))
        return qr_cli_usage_error(prog, cmd, "project %s: --quota and --cap go with share", sub);

    json_t *o = NULL;
    char path[96];
    int rc = QR_EXIT_OK;
    if (!strcmp(sub, "shares")) {
        snprintf(path, sizeof path, QR_API_SHARES("%lld"), pid);
        rc = qr_cli_request(prog, cfg, "GET", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
        json_t *s;
        size_t n;
        if (rc == QR_EXIT_OK && !as_json) {
            printf("%-8s %-24s %-12s %-12s %s\n", "org", "name", "quota", "cap", "annotations");
            json_array_foreach(json_object_get(o, "shares"), n, s)
            {
                json_t *sq = json_object_get(s, "quota_annotations");
                json_t *sc = json_object_get(s, "max_tasks_per_annotator");
                char qs[24] = "-", cs[24] = "-";
                if (json_is_integer(sq))
                    snprintf(qs, sizeof qs, "%lld", (long long)json_integer_value(sq));
                if (json_is_integer(sc))
                    snprintf(cs, sizeof cs, "%lld", (long long)json_integer_value(sc));
                char name[256];
                const char *n = json_string_value(json_object_get(s, "organization"));
                printf("%-8lld %-24s %-12s %-12s %lld\n",
                       (long long)json_integer_value(json_object_get(s, "org_id")),
                       qr_term_escape_to(name, sizeof name, n ? n : ""), qs, cs,
                       (long long)json_integer_value(json_object_get(s, "annotations")));
            }
        }
        json_decref(o);
        return rc;
    }
    long long oid = org_id(cfg, org, &rc);
    if (oid < 0)
        return rc;
    snprintf(path, sizeof path, QR_API_SHARE("%lld", "%lld"), pid, oid);
    if (!strcmp(sub, "unshare")) {
        rc = qr_cli_request(prog, cfg, "DELETE", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
        if (rc == QR_EXIT_OK && !as_json)
            fprintf(stderr, "project %lld no longer shared with organization %lld\n", pid, oid);
        json_decref(o);
        return rc;
    }
    json_t *body =
        json_pack("{s:o s:o}", "quota_annotations", q < 0 ? json_null() : json_integer(q),
                  "max_tasks_per_annotator", k < 0 ? json_null() : json_integer(k));
    rc = qr_cli_request(prog, cfg, "PUT", path, body, as_json ? QR_CLI_ECHO : 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json)
        fprintf(stderr, "project %lld shared with organization %lld (quota %s, cap %s)\n", pid, oid,
                quota ? quota : "none", cap ? cap : "none");
    json_decref(o);
    return rc;
}

/* --- reinstate ------------------------------------------------------------------------------ */

static const char reinstate_help[] =
    "Usage: quorumctl reinstate --project ID --user NAME|ID [--json]\n"
    "\n"
    "Reinstates an annotator the project paused because their accuracy on gold\n"
    "tasks fell below its gold_min_accuracy (POST\n"
    "/v1/projects/{id}/annotators/{user_id}/reinstate): every broker grants them\n"
    "leases again, and their gold accuracy is judged afresh, on the gold tasks\n"
    "they answer from now on. A NAME is looked up among the project's paused\n"
    "annotators (the report's quality.paused_annotators; NAME@ORGANIZATION\n"
    "tells two of one name apart). Only the project's own organization's admins\n"
    "and managers may.\n"
    "\n"
    "  --project ID      the project's id\n"
    "  --user NAME|ID    the paused annotator\n"
    "  --json            print the broker's JSON (the pause, now reinstated)\n"
    "\n"
    "Reads:  no file: with a NAME, the project's report (GET .../report), then\n"
    "        the broker's JSON answer.\n"
    "Writes: stderr \"annotator 12 (alice) reinstated in project 7\"; with --json,\n"
    "        stdout {\"annotator_id\":12,\"reason\":\"...\",\"accuracy\":0.55,\n"
    "        \"compared\":20,\"paused_at\":\"...\",\"reinstated_at\":\"...\",\n"
    "        \"reinstated_by\":1}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl reinstate --project 7 --user alice\n"
    "  quorumctl reinstate --project 7 --user 12 --json\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or the annotator is\n"
    "not paused, or no access to the project), 2 usage error.\n";

/* The id of the live pause's annotator named `user` in project pid's
 * report, or -1 (message printed, *rc the exit code). */
static long long paused_user_id(qr_client_config_t *cfg, long long pid, const char *user, int *rc)
{
    char path[64];
    snprintf(path, sizeof path, QR_API_REPORT("%lld"), pid);
    json_t *o, *x;
    size_t k;
    long long id = -1;
    int found = 0;
    *rc = qr_cli_request(prog, cfg, "GET", path, NULL, 0, &o);
    json_array_foreach(json_object_get(json_object_get(o, "quality"), "paused_annotators"), k, x)
    {
        const char *name = json_string_value(json_object_get(x, "annotator"));
        const char *org = json_string_value(json_object_get(x, "organization"));
        char full[512];
        snprintf(full, sizeof full, "%s@%s", name ? name : "", org ? org : "");
        if (!json_is_null(json_object_get(x, "reinstated_at")) || !name ||
            (strcmp(name, user) && strcmp(full, user)))
            continue;
        id = (long long)json_integer_value(json_object_get(x, "annotator_id"));
        found++;
    }
    json_decref(o);
    if (*rc != QR_EXIT_OK)
        return -1;
    if (found != 1) {
        char esc[256];
        fprintf(stderr,
                found ? "%s: several paused annotators are named '%s': give NAME@ORGANIZATION "
                        "or the id\n"
                      : "%s: no paused annotator '%s' in project %lld (see quorumctl report)\n",
                prog, qr_term_escape_to(esc, sizeof esc, user), pid);
        *rc = QR_EXIT_ERROR;
        return -1;
    }
    return id;
}

int qr_ctl_reinstate(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *user = NULL;
    int as_json = 0, rc;
    long long pid, uid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, reinstate_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--user", &user)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, "reinstate ", "reinstate: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "reinstate ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!user || !*user)
        return qr_cli_usage_error(prog, "reinstate ", "reinstate: --user NAME|ID is required");
    if (qr_cli_parse_ll(user, 1, INT64_MAX, &uid) < 0 &&
        (uid = paused_user_id(cfg, pid, user, &rc)) < 0)
        return rc;
    char path[128];
    snprintf(path, sizeof path, QR_API_REINSTATE("%lld", "%lld"), pid, uid);
    json_t *o;
    rc = qr_cli_request(prog, cfg, "POST", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json) {
        char esc[256];
        fprintf(stderr, "annotator %lld (%s) reinstated in project %lld\n", uid,
                qr_term_escape_to(esc, sizeof esc, user), pid);
    }
    json_decref(o);
    return rc;
}
