/*
 * ctl_webhook.c - `quorumctl webhook add|list|rm|deliveries`: a project's
 * webhooks over /v1/projects/{id}/webhooks (docs/API.md, "Webhooks").
 * add prints the signing secret, which the broker shows only then.
 */
#include "ctl_webhook.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "protocol.h"
#include "text_out.h"

static const char *const prog = "quorumctl";

static const char webhook_help[] =
    "Usage: quorumctl webhook add --project ID [--events E1,E2] [--json] URL\n"
    "       quorumctl webhook list --project ID [--json]\n"
    "       quorumctl webhook rm --project ID --id WID\n"
    "       quorumctl webhook deliveries --project ID --id WID [--after N] [--limit N]\n"
    "                                    [--json]\n"
    "\n"
    "A project's webhooks (its organization's admins and managers). The broker\n"
    "POSTs each event as JSON to the URL, off the labeling path, at least once,\n"
    "retrying with exponential backoff for 24 hours while the receiver fails.\n"
    "Events: annotation.created, task.completed, project.completed (default:\n"
    "all three). Each request carries X-Quorum-Event-Id (the same on every\n"
    "retry: deduplicate by it) and X-Quorum-Signature: t=UNIX,v1=HEX, HEX being\n"
    "HMAC-SHA256 of \"UNIX.BODY\" keyed with the webhook's secret.\n"
    "\n"
    "add prints the secret on stdout (shown only now; the broker keeps it\n"
    "sealed) and what it made on stderr. list prints id, events, deliveries\n"
    "pending, delivered and failed, and the URL. rm deletes a webhook and its\n"
    "undelivered events. deliveries prints a page of the delivery log: id,\n"
    "event, state, attempts, last HTTP status, event id and last error.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  URL            (add) the receiver, http:// or https:// (--url is the\n"
    "                 broker's, as for every command)\n"
    "  --events LIST  comma-separated event names (default: all)\n"
    "  --id WID       the webhook's id (from add or list)\n"
    "  --after N      deliveries after this id (default 0)\n"
    "  --limit N      deliveries per page, 1-1000 (default 100)\n"
    "  --json         print the broker's JSON\n"
    "\n"
    "Reads:  no file: the broker's JSON answers (/v1/projects/{id}/webhooks...).\n"
    "Writes: stdout: add the secret (one line, whsec_ and 64 hex digits); list and\n"
    "        deliveries a table, one row a line; with --json the broker's JSON.\n"
    "        stderr: what add made, e.g. \"webhook 3 of project 7 posts to URL ...\".\n"
    "\n"
    "Examples:\n"
    "  quorumctl webhook add --project 7 --events task.completed,project.completed \\\n"
    "      https://ml.example.com/hooks > secret.txt\n"
    "  quorumctl webhook deliveries --project 7 --id 3 --limit 20\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (or no such webhook),\n"
    "2 usage error.\n";

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int add(qr_client_config_t *cfg, long long pid, const char *url, const char *events,
               int as_json)
{
    json_t *body = json_pack("{ss}", "url", url);
    if (events) {
        json_t *list = json_array();
        char *copy = strdup(events), *save = NULL;
        if (!copy) {
            json_decref(list);
            json_decref(body);
            return QR_EXIT_ERROR;
        }
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(list, json_string(t));
        free(copy);
        json_object_set_new(body, "events", list);
    }
    char path[96];
    snprintf(path, sizeof path, QR_API_WEBHOOKS("%lld"), pid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "POST", path, body, as_json ? QR_CLI_ECHO : 0, &o);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json) {
        char u[512];
        fprintf(stderr, "webhook %lld of project %lld posts to %s (secret below, shown only now)\n",
                (long long)json_integer_value(json_object_get(o, "id")), pid,
                qr_term_escape_to(u, sizeof u, str(o, "url")));
        printf("%s\n", str(o, "secret"));
    }
    json_decref(o);
    return rc;
}

static void events_text(json_t *events, char *out, size_t len)
{
    size_t k, n = 0;
    json_t *e;
    out[0] = 0;
    json_array_foreach(events, k, e)
    {
        int w = snprintf(out + n, len - n, "%s%s", k ? "," : "", json_string_value(e));
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

static int list(qr_client_config_t *cfg, long long pid, int as_json)
{
    char path[96];
    snprintf(path, sizeof path, QR_API_WEBHOOKS("%lld"), pid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "GET", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json) {
        printf("%-6s %-50s %8s %10s %7s  %s\n", "id", "events", "pending", "delivered", "failed",
               "url");
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(o, "webhooks"), k, w)
        {
            char ev[128], u[512];
            events_text(json_object_get(w, "events"), ev, sizeof ev);
            printf("%-6lld %-50s %8lld %10lld %7lld  %s\n",
                   (long long)json_integer_value(json_object_get(w, "id")), ev,
                   (long long)json_integer_value(json_object_get(w, "pending")),
                   (long long)json_integer_value(json_object_get(w, "delivered")),
                   (long long)json_integer_value(json_object_get(w, "failed")),
                   qr_term_escape_to(u, sizeof u, str(w, "url")));
        }
    }
    json_decref(o);
    return rc;
}

static int rm(qr_client_config_t *cfg, long long pid, long long wid)
{
    char path[128];
    snprintf(path, sizeof path, QR_API_WEBHOOK("%lld", "%lld"), pid, wid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "DELETE", path, NULL, 0, &o);
    if (rc == QR_EXIT_OK)
        fprintf(stderr, "webhook %lld of project %lld deleted\n", wid, pid);
    json_decref(o);
    return rc;
}

static int deliveries(qr_client_config_t *cfg, long long pid, long long wid, long long after,
                      long long limit, int as_json)
{
    char path[192];
    snprintf(path, sizeof path, QR_API_DELIVERIES("%lld", "%lld") "?after=%lld&limit=%lld", pid,
             wid, after, limit);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "GET", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json) {
        printf("%-8s %-18s %-9s %8s %6s  %-36s  %s\n", "id", "event", "state", "attempts", "status",
               "event_id", "last_error");
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(o, "deliveries"), k, d)
        {
            char st[16] = "-", err[256];
            json_t *s = json_object_get(d, "last_status");
            if (json_is_integer(s))
                snprintf(st, sizeof st, "%lld", (long long)json_integer_value(s));
            printf("%-8lld %-18s %-9s %8lld %6s  %-36s  %s\n",
                   (long long)json_integer_value(json_object_get(d, "id")), str(d, "event"),
                   str(d, "state"), (long long)json_integer_value(json_object_get(d, "attempts")),
                   st, str(d, "event_id"),
                   qr_term_escape_to(err, sizeof err, str(d, "last_error")));
        }
        json_t *next = json_object_get(o, "next_after");
        if (json_is_integer(next))
            fprintf(stderr, "more: --after %lld\n", (long long)json_integer_value(next));
    }
    json_decref(o);
    return rc;
}

int qr_ctl_webhook(int argc, char **argv, qr_client_config_t *cfg)
{
    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, webhook_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "rm") && strcmp(sub, "deliveries"))
        return qr_cli_usage_error(prog, "webhook ",
                                  "unknown webhook command '%s' (add, list, rm, deliveries)", sub);
    const char *project = NULL, *url = NULL, *events = NULL, *id = NULL, *after_s = NULL,
               *limit_s = NULL;
    int as_json = 0;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "webhook %s ", sub);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, webhook_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--events", &events)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--id", &id)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--after", &after_s)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--limit", &limit_s)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(sub, "add") && !url && argv[i][0] != '-') {
            url = argv[i];
        } else {
            return qr_cli_usage_error(prog, cmd, "webhook %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    long long pid, wid = 0, after = 0, limit = 100;
    if (qr_cli_project_id(prog, cmd, project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!strcmp(sub, "add")) {
        if (!url)
            return qr_cli_usage_error(prog, cmd, "webhook add: the receiver's URL is required");
        if (id || after_s || limit_s)
            return qr_cli_usage_error(prog, cmd, "webhook add takes --project, --url, --events");
        return add(cfg, pid, url, events, as_json);
    }
    if (events)
        return qr_cli_usage_error(prog, cmd, "--events is for webhook add");
    if (!strcmp(sub, "list"))
        return list(cfg, pid, as_json);
    if (!id || qr_cli_parse_ll(id, 1, (long long)1 << 62, &wid) < 0)
        return qr_cli_usage_error(prog, cmd, "webhook %s: --id WID (a webhook id) is required",
                                  sub);
    if (!strcmp(sub, "rm"))
        return rm(cfg, pid, wid);
    if (after_s && qr_cli_parse_ll(after_s, 0, (long long)1 << 62, &after) < 0)
        return qr_cli_usage_error(prog, cmd, "--after wants a delivery id (0 or more)");
    if (limit_s && qr_cli_parse_ll(limit_s, 1, 1000, &limit) < 0)
        return qr_cli_usage_error(prog, cmd, "--limit wants 1 to 1000");
    return deliveries(cfg, pid, wid, after, limit, as_json);
}
