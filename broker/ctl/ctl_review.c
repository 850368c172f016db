/*
 * ctl_review.c - `quorumctl review-select` (ctl_review.h): the command line
 * of POST /v1/projects/{id}/reviews/select.
 */
#include "ctl_review.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "protocol.h"
#include "util.h"

static const char *const prog = "quorumctl";

static const char select_help[] =
    "Usage: quorumctl review-select PROJECT --below X [--method M] [--limit N] [--json]\n"
    "\n"
    "Selects complete tasks for review (POST /v1/projects/{id}/reviews/select):\n"
    "every complete task of the project whose consensus support is below X and\n"
    "that has no review item yet gets one, least sure first, up to N. Reviewers\n"
    "then lease them as any review item (POST /v1/projects/{id}/reviews/leases),\n"
    "whatever the project's review_mode. With dawid_skene the support is the\n"
    "crew model's posterior of the task's consensus (the consensus export's\n"
    "method=dawid_skene support); with majority, the share of the task's\n"
    "annotations giving its most common value. Running it again selects only\n"
    "tasks not selected before. Only the project's own organization's admins\n"
    "and managers may.\n"
    "\n"
    "  PROJECT, --project ID   the project's id\n"
    "  --below X               select tasks whose support is below X (0..1)\n"
    "  --method M              dawid_skene (default) or majority\n"
    "  --limit N               select at most N tasks (1..1000000; default all)\n"
    "  --json                  print the broker's JSON\n"
    "\n"
    "Reads:  no file; the broker's JSON answer.\n"
    "Writes: stdout \"selected 42 of 300 complete task(s) with dawid_skene support\n"
    "        below 0.8 (5 selected before)\"; with --json, stdout\n"
    "        {\"method\":\"dawid_skene\",\"support_below\":0.8,\"considered\":300,\n"
    "        \"selected\":42,\"already_selected\":5}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl review-select 7 --method dawid_skene --below 0.8\n"
    "  quorumctl review-select 7 --method majority --below 0.67 --limit 100 --json\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or no access to the\n"
    "project), 2 usage error.\n";

int qr_ctl_review_select(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *below = NULL, *method = "dawid_skene", *limit = NULL;
    int as_json = 0;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, select_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--below", &below)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--method", &method)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--limit", &limit)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (argv[i][0] != '-' && !project) {
            project = argv[i];
        } else {
            return qr_cli_usage_error(prog, "review-select ",
                                      "review-select: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "review-select ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    double x;
    if (!below || qr_cli_parse_double(below, 0, 1, &x) < 0)
        return qr_cli_usage_error(prog, "review-select ",
                                  "review-select: --below must be a number from 0 to 1");
    if (strcmp(method, "dawid_skene") && strcmp(method, "majority"))
        return qr_cli_usage_error(prog, "review-select ",
                                  "review-select: --method must be dawid_skene or majority");
    long long n = 0;
    if (limit && qr_cli_parse_ll(limit, 1, 1000000, &n) < 0)
        return qr_cli_usage_error(prog, "review-select ",
                                  "review-select: --limit must be an integer from 1 to 1000000");
    json_t *body = json_pack("{s:s s:f}", "method", method, "support_below", x);
    if (limit)
        json_object_set_new(body, "limit", json_integer((json_int_t)n));
    char path[64];
    snprintf(path, sizeof path, QR_API_REVIEW_SELECT("%lld"), pid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "POST", path, body, as_json ? QR_CLI_ECHO : 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json)
        printf("selected %lld of %lld complete task(s) with %s support below %g (%lld selected "
               "before)\n",
               (long long)json_integer_value(json_object_get(o, "selected")),
               (long long)json_integer_value(json_object_get(o, "considered")), method, x,
               (long long)json_integer_value(json_object_get(o, "already_selected")));
    json_decref(o);
    return rc;
}
