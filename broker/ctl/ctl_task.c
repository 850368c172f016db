/*
 * ctl_task.c - `quorumctl task PROJECT TASK` (ctl_task.h): what a task's
 * annotators said, for a task the quality report lists as disagreed on.
 */
#include "ctl_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

static const char *const prog = "quorumctl";

static const char task_help[] =
    "Usage: quorumctl task PROJECT TASK [--json]\n"
    "\n"
    "Shows one task of a project (GET /v1/projects/{id}/tasks/{task}): its\n"
    "state, round, external id and data, every annotation of it (annotator,\n"
    "organization, round, when, the value given) and its review decision, if\n"
    "any. A vendor's manager sees its own crew's annotations only and no\n"
    "review; the gold answer is shown to the owner's admins and managers only.\n"
    "Admins, managers and reviewers may; annotators may not.\n"
    "\n"
    "  PROJECT   the project's id\n"
    "  TASK      the task's id (as the agreement report's per_item lists it)\n"
    "  --json    print the broker's JSON\n"
    "\n"
    "Reads:  no file; the broker's JSON answer.\n"
    "Writes: stdout \"task 12 of project 7: complete, round 1, 3 of 3\n"
    "        annotation(s)\", the external id, gold and data lines, then one\n"
    "        line per annotation: \"annotation annotator organization round\n"
    "        created_at value\", then \"review: ...\" when reviewed; with --json,\n"
    "        {\"task_id\":12,\"project_id\":7,...,\"annotations\":[...],\"review\":...}.\n"
    "\n"
    "Example:\n"
    "  quorumctl task 7 12\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (no such task, or no\n"
    "access to the project), 2 usage error.\n";

/* A JSON value as one line of terminal-safe text (strings bare). */
static const char *value_text(char *out, size_t size, const json_t *v)
{
    if (json_is_string(v))
        return qr_term_escape_to(out, size, json_string_value(v));
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    qr_term_escape_to(out, size, s ? s : "null");
    free(s);
    return out;
}

/* A positive id, whole. */
static int task_id(const char *s, long long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

static void print_task(const json_t *o)
{
    char a[256], b[256], v[4096];
    const json_t *anns = json_object_get(o, "annotations");
    printf("task %lld of project %lld: %s, round %lld, %lld of %lld annotation(s)\n",
           (long long)json_integer_value(json_object_get(o, "task_id")),
           (long long)json_integer_value(json_object_get(o, "project_id")),
           qr_term_escape_to(a, sizeof a,
                             json_string_value(json_object_get(o, "state"))
                                 ? json_string_value(json_object_get(o, "state"))
                                 : "-"),
           (long long)json_integer_value(json_object_get(o, "round")),
           (long long)json_integer_value(json_object_get(o, "done_count")),
           (long long)json_integer_value(json_object_get(o, "required")));
    printf("external id: %s\n", value_text(v, sizeof v, json_object_get(o, "external_id")));
    if (json_object_get(o, "gold"))
        printf("gold: %s\n", value_text(v, sizeof v, json_object_get(o, "gold")));
    printf("data: %s\n", value_text(v, sizeof v, json_object_get(o, "data")));
    printf("%-10s %-16s %-16s %5s  %-32s %s\n", "annotation", "annotator", "organization", "round",
           "created_at", "value");
    size_t k;
    json_t *r;
    json_array_foreach(anns, k, r)
    {
        const char *name = json_string_value(json_object_get(r, "annotator"));
        const char *org = json_string_value(json_object_get(r, "organization"));
        const char *at = json_string_value(json_object_get(r, "created_at"));
        printf("%-10lld %-16s %-16s %5lld  %-32s %s\n",
               (long long)json_integer_value(json_object_get(r, "annotation_id")),
               qr_term_escape_to(a, sizeof a, name ? name : "-"),
               qr_term_escape_to(b, sizeof b, org ? org : "-"),
               (long long)json_integer_value(json_object_get(r, "round")), at ? at : "-",
               value_text(v, sizeof v, json_object_get(r, "value")));
    }
    const json_t *rv = json_object_get(o, "review");
    if (json_is_object(rv)) {
        const char *st = json_string_value(json_object_get(rv, "state"));
        const char *dec = json_string_value(json_object_get(rv, "decision"));
        const char *who = json_string_value(json_object_get(rv, "reviewer"));
        printf("review: %s", qr_term_escape_to(a, sizeof a, st ? st : "-"));
        if (dec)
            printf(", %s by %s: %s", dec, qr_term_escape_to(b, sizeof b, who ? who : "-"),
                   value_text(v, sizeof v, json_object_get(rv, "value")));
        printf("\n");
    }
}

int qr_ctl_task(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *pos[2] = {NULL, NULL};
    int npos = 0, as_json = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, task_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (argv[i][0] != '-' && npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return qr_cli_usage_error(prog, "task ", "task: unexpected argument '%s'", argv[i]);
        }
    }
    long long pid, tid;
    if (npos < 2)
        return qr_cli_usage_error(prog, "task ", "task: give PROJECT and TASK");
    if (task_id(pos[0], &pid) < 0)
        return qr_cli_usage_error(prog, "task ", "task: PROJECT must be a project id, not '%s'",
                                  pos[0]);
    if (task_id(pos[1], &tid) < 0)
        return qr_cli_usage_error(prog, "task ", "task: TASK must be a task id, not '%s'", pos[1]);
    char path[96];
    snprintf(path, sizeof path, QR_API_TASK("%lld", "%lld"), pid, tid);
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "GET", path, NULL, as_json ? QR_CLI_ECHO : 0, &o);
    if (rc == QR_EXIT_OK && !as_json)
        print_task(o);
    json_decref(o);
    return rc;
}
