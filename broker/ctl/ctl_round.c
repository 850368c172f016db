/*
 * ctl_round.c - `quorumctl round` and `quorumctl rounds` (ctl_round.h): the
 * command line of POST and GET /v1/projects/{id}/rounds.
 */
#include "ctl_round.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

static const char *const prog = "quorumctl";

static const char round_help[] =
    "Usage: quorumctl round --project ID [--annotations N] SELECTOR [--json]\n"
    "\n"
    "Opens a new relabel round (POST /v1/projects/{id}/rounds): the complete\n"
    "tasks the selector picks (complete, reviewed or auto-accepted; never gold\n"
    "tasks, open ones, or ones waiting for their review) go back to the queue\n"
    "for N more annotations each, under the project's current labels. Earlier\n"
    "annotations stay, with their round number; exports, consensus and\n"
    "agreement keep rounds apart. An annotator labels a task at most once\n"
    "across rounds: the new round goes to other annotators. Only the project's\n"
    "own organization's admins and managers may.\n"
    "\n"
    "  --project ID               the project's id\n"
    "  --annotations N            more annotations per task, 1..99 (default: the\n"
    "                             project's annotations per task)\n"
    "  --json                     print the broker's JSON (the round)\n"
    "SELECTOR, exactly one:\n"
    "  --tasks 1,2,3              these task ids\n"
    "  --import ID                the tasks of one import (quorumctl import list)\n"
    "  --field PATH=VALUE         tasks whose data at PATH (a.b for nested keys)\n"
    "                             equals VALUE (JSON: 3, true, \"x\"; else a string)\n"
    "  --completed-after T        tasks that completed their round at or after T\n"
    "  --completed-before T       ... before T (RFC 3339; one or both)\n"
    "  --agreement-below X        tasks whose support (the share of their round's\n"
    "                             annotations giving its most common value) < X\n"
    "\n"
    "Reads:  no file; the broker's JSON answer.\n"
    "Writes: stderr \"round 2 of project 7: 120 task(s), 3 more annotation(s)\n"
    "        each\"; stdout the round's number; with --json, stdout\n"
    "        {\"id\":1,\"project_id\":7,\"number\":2,\"selection\":{...},\n"
    "        \"annotations\":3,\"tasks\":120,...}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl round --project 7 --annotations 3 --agreement-below 0.7\n"
    "  quorumctl round --project 7 --import 4\n"
    "  quorumctl round --project 7 --field meta.source=web --annotations 2\n"
    "  quorumctl round --project 7 --completed-after 2026-12-01T00:00:00Z\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or nothing selected, or\n"
    "no access to the project), 2 usage error.\n";

static const char rounds_help[] =
    "Usage: quorumctl rounds --project ID [--json]\n"
    "\n"
    "Lists a project's relabel rounds (GET /v1/projects/{id}/rounds), oldest\n"
    "first: number, tasks, annotations asked, who, when, the selection. Round 1\n"
    "(the import) is not listed.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --json         print the broker's JSON\n"
    "\n"
    "Reads:  no file; the broker's JSON answer.\n"
    "Writes: stdout one line per round: \"number tasks annotations user\n"
    "        created_at selection\"; with --json, {\"rounds\":[...]}.\n"
    "\n"
    "Example:\n"
    "  quorumctl rounds --project 7\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* The task ids "1,2,3" as a JSON array, or NULL. */
static json_t *parse_ids(const char *s)
{
    json_t *a = json_array();
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char one[32];
        long long id;
        if (len == 0 || len >= sizeof one)
            goto fail;
        memcpy(one, s, len);
        one[len] = '\0';
        if (qr_cli_parse_ll(one, 1, INT64_MAX, &id) < 0)
            goto fail;
        json_array_append_new(a, json_integer((json_int_t)id));
        s += len + (comma ? 1 : 0);
        if (comma && !*s)
            goto fail;
    }
    if (json_array_size(a) > 0)
        return a;
fail:
    json_decref(a);
    return NULL;
}

int qr_ctl_round(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *ann = NULL, *tasks = NULL, *import = NULL, *field = NULL,
               *after = NULL, *before = NULL, *below = NULL;
    int as_json = 0, rc;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, round_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotations", &ann)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--tasks", &tasks)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--import", &import)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--field", &field)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--completed-after", &after)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--completed-before", &before)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--agreement-below", &below)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, "round ", "round: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "round ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    int kinds = !!tasks + !!import + !!field + !!(after || before) + !!below;
    if (kinds != 1)
        return qr_cli_usage_error(prog, "round ",
                                  "round: give exactly one selector: --tasks, --import, --field, "
                                  "--completed-after/--completed-before or --agreement-below");
    json_t *body = json_object();
    long long n;
    if (ann) {
        if (qr_cli_parse_ll(ann, 1, 99, &n) < 0) {
            json_decref(body);
            return qr_cli_usage_error(prog, "round ",
                                      "round: --annotations must be an integer from 1 to 99");
        }
        json_object_set_new(body, "annotations", json_integer((json_int_t)n));
    }
    const char *bad = NULL;
    if (tasks) {
        json_t *ids = parse_ids(tasks);
        if (!ids)
            bad = "--tasks must be task ids separated by commas (1,2,3)";
        else
            json_object_set_new(body, "task_ids", ids);
    } else if (import) {
        if (qr_cli_parse_ll(import, 1, INT64_MAX, &n) < 0)
            bad = "--import must be an import's id (quorumctl import list)";
        else
            json_object_set_new(body, "import_id", json_integer((json_int_t)n));
    } else if (field) {
        const char *eq = strchr(field, '=');
        if (!eq || eq == field) {
            bad = "--field must be PATH=VALUE";
        } else {
            char *path = qr_xstrndup(field, (size_t)(eq - field));
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
            if (!v)
                v = json_string(eq + 1);
            if (!v)
                bad = "--field's VALUE must be UTF-8 text";
            else
                json_object_set_new(body, "field",
                                    json_pack("{s:s s:o}", "path", path, "value", v));
            free(path);
        }
    } else if (below) {
        double x;
        if (qr_cli_parse_double(below, 0, 1, &x) < 0 || x <= 0)
            bad = "--agreement-below must be a number above 0 and at most 1";
        else
            json_object_set_new(body, "agreement_below", json_real(x));
    } else {
        if (after)
            json_object_set_new(body, "completed_after", json_string(after));
        if (before)
            json_object_set_new(body, "completed_before", json_string(before));
    }
    if (bad) {
        json_decref(body);
        return qr_cli_usage_error(prog, "round ", "round: %s", bad);
    }
    char path[64];
    snprintf(path, sizeof path, QR_API_ROUNDS("%lld"), pid);
    json_t *o = NULL;
    rc = qr_cli_request(prog, cfg, "POST", path, body, as_json ? QR_CLI_ECHO : 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json) {
        long long number = (long long)json_integer_value(json_object_get(o, "number"));
        fprintf(stderr, "round %lld of project %lld: %lld task(s), %lld more annotation(s) each\n",
                number, pid, (long long)json_integer_value(json_object_get(o, "tasks")),
                (long long)json_integer_value(json_object_get(o, "annotations")));
        printf("%lld\n", number);
    }
    json_decref(o);
    return rc;
}

int qr_ctl_rounds(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL;
    int as_json = 0;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, rounds_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, "rounds ", "rounds: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "rounds ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    char path[64];
    snprintf(path, sizeof path, QR_API_ROUNDS("%lld"), pid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "GET", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json) {
        size_t k;
        json_t *r;
        printf("%-6s %8s %11s  %-16s %-26s %s\n", "round", "tasks", "annotations", "user",
               "created_at", "selection");
        json_array_foreach(json_object_get(o, "rounds"), k, r)
        {
            char *sel = json_dumps(json_object_get(r, "selection"),
                                   JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
            const char *user = json_string_value(json_object_get(r, "user"));
            const char *at = json_string_value(json_object_get(r, "created_at"));
            char esc[256], sesc[1024];
            printf("%-6lld %8lld %11lld  %-16s %-26s %s\n",
                   (long long)json_integer_value(json_object_get(r, "number")),
                   (long long)json_integer_value(json_object_get(r, "tasks")),
                   (long long)json_integer_value(json_object_get(r, "annotations")),
                   qr_term_escape_to(esc, sizeof esc, user ? user : "-"), at ? at : "-",
                   qr_term_escape_to(sesc, sizeof sesc, sel ? sel : "{}"));
            free(sel);
        }
    }
    json_decref(o);
    return rc;
}
