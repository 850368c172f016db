/*
 * ctl_manage.c - `quorumctl project list|show|update|archive|unarchive|delete`
 * and `quorumctl user list` (GET /v1/projects, GET, PATCH and DELETE
 * /v1/projects/{id}, POST .../archive and .../unarchive, GET /v1/users): a
 * manager finds, changes, retires and removes projects, and sees who is in
 * the organization.
 */
#include "ctl_manage.h"

#include "cli.h"
#include "ctl_project.h"
#include "ctl_schema.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const prog = "quorumctl";

static const char list_help[] =
    "Usage: quorumctl project list [--json]\n"
    "\n"
    "Lists the projects you may see (GET /v1/projects, every page): your\n"
    "organization's and, for a vendor, those shared with it. Writes a table\n"
    "to stdout, one project a line:\n"
    "  id    state     per-task  name            labels\n"
    "  7     active    3         sentiment       positive,negative,neutral\n"
    "A project made with a label schema lists its fields: schema:sentiment,score.\n"
    "state is active, paused or archived. --json writes the API's pages as\n"
    "they come, one JSON object a line ({\"projects\": [...], \"next_after\": N|null}).\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (GET /v1/projects).\n"
    "Writes: stdout: the table above; with --json, JSON lines.\n"
    "\n"
    "Examples:\n"
    "  quorumctl project list\n"
    "  quorumctl project list --json | jq -c '.projects[]'\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char show_help[] =
    "Usage: quorumctl project show ID [--json]\n"
    "       quorumctl project show --project ID [--json]\n"
    "\n"
    "Shows one project (GET /v1/projects/{id}) as \"key: value\" lines on stdout,\n"
    "e.g. \"name: sentiment\", \"labels: positive,negative\", \"archived: no\";\n"
    "--json writes the API's JSON object instead. A project made with a label\n"
    "schema shows \"schema: 2 fields\" and a line per field with its type, e.g.\n"
    "\"field: score rating required min=1 max=5 step=1\" or\n"
    "\"field: entities spans required over=text overlap=yes labels=PER,ORG\".\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (GET /v1/projects/{id}).\n"
    "Writes: stdout: \"key: value\" lines; with --json one JSON object.\n"
    "\n"
    "Example:\n"
    "  quorumctl project show 7\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char update_help[] =
    "Usage: quorumctl project update ID [--name N] [--labels a,b,c] [--add-label L]...\n"
    "                [--annotations-per-task K] [--overlap-annotations K]\n"
    "                [--overlap-fraction F] [--lease-ttl-ms MS]\n"
    "                [--sampling sequential|random|uncertainty|stratified]\n"
    "                [--stratify-field FIELD] [--auto-accept-confidence C|off]\n"
    "                [--auto-accept-audit S] [--overlap-min N|off]\n"
    "                [--overlap-max M|off] [--overlap-agreement-threshold T|off]\n"
    "                [--overlap-measure support|confidence] [--overlap-prior-accuracy Q]\n"
    "                [--show-predictions on|off] [--gold-rate P] [--gold-onboarding N]\n"
    "                [--gold-min-accuracy A|off] [--gold-min-count N]\n"
    "                [--review-mode M] [--review-share S]\n"
    "                [--review-agreement-threshold T] [--json]\n"
    "\n"
    "Changes a project (PATCH /v1/projects/{id}); what is not named stays.\n"
    "Labels can only be added: --labels is the whole new list (every current\n"
    "label must be in it), --add-label adds one (repeatable). Overlap\n"
    "(--annotations-per-task, --overlap-annotations, --overlap-fraction) can\n"
    "only rise; it applies to tasks imported from now on, as --sampling does.\n"
    "--lease-ttl-ms applies to leases granted from now on, and\n"
    "--auto-accept-confidence (off: none) and --auto-accept-audit (see project\n"
    "create --help) to tasks imported from now on. Dynamic overlap\n"
    "(--overlap-min, --overlap-max, --overlap-agreement-threshold,\n"
    "--overlap-measure, --overlap-prior-accuracy; see project create --help;\n"
    "off on the first three: fixed overlap) applies to tasks as they complete; --overlap-min sets "
    "annotations-per-task and can only rise, and\n"
    "--overlap-max may not drop below what a task already needs.\n"
    "--show-predictions (see project create --help) applies to leases granted\n"
    "from now on; the gold flags (see project create --help;\n"
    "--gold-min-accuracy off: nobody is paused) to the next lease requests, and\n"
    "serving gold on or off turns the tasks with a gold answer into control\n"
    "tasks or back at once; the --review-* flags (see project create --help) to\n"
    "tasks completing from now on. Prints the project\n"
    "as \"key: value\" lines (as project show), or its JSON with --json.\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (PATCH /v1/projects/{id}).\n"
    "Writes: stdout: the project as \"key: value\" lines; with --json one JSON object.\n"
    "\n"
    "Example:\n"
    "  quorumctl project update 7 --name reviews --add-label sarcastic\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char archive_help[] =
    "Usage: quorumctl project archive ID\n"
    "       quorumctl project unarchive ID\n"
    "\n"
    "archive: the project hands out no more tasks (lease requests answer 409\n"
    "project_archived; quorum-agent stops with a message and exit code 8).\n"
    "Everything it holds is kept: reports and exports still work, and leases\n"
    "already held may still be submitted. unarchive puts it back in use.\n"
    "Prints one line to stderr: \"project 7 archived (since 2030-01-01T...)\".\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (POST /v1/projects/{id}/archive).\n"
    "Writes: stderr: the one line above; nothing on stdout.\n"
    "\n"
    "Examples:\n"
    "  quorumctl project archive 7\n"
    "  quorumctl project unarchive 7\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char delete_help[] =
    "Usage: quorumctl project delete ID [--yes] [--force]\n"
    "\n"
    "Deletes a project and everything it holds: tasks, annotations, imports,\n"
    "shares, its lease history (DELETE /v1/projects/{id}). There is no undo.\n"
    "On a terminal it asks you to type the project's id to confirm; --yes\n"
    "skips the question (and is required when stdin is not a terminal).\n"
    "While any lease of the project is live the broker refuses (409\n"
    "tasks_leased): archive the project and wait for the leases to end, or\n"
    "give --force to drop them (their submits then fail as expired).\n"
    "Prints one line to stderr: \"project 7 deleted: 120 tasks, 300 annotations,\n"
    "0 live leases dropped\".\n"
    "\n"
    "Reads:  stdin on a terminal: the project's id typed to confirm; else no file.\n"
    "Writes: stderr: the one line above; nothing on stdout.\n"
    "\n"
    "Examples:\n"
    "  quorumctl project delete 7\n"
    "  quorumctl project delete 7 --yes --force\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error or not confirmed,\n"
    "2 usage error.\n";

static const char user_list_help[] =
    "Usage: quorumctl user list [--json]\n"
    "\n"
    "Lists the users of your organization (GET /v1/users, every page; admins,\n"
    "managers and reviewers may). Writes a table to stdout, one user a line:\n"
    "  id    name                 role       tokens  created\n"
    "  12    alice                annotator  1       2030-01-01T10:00:00+00:00\n"
    "tokens counts the user's live tokens. --json writes the API's pages as\n"
    "they come, one JSON object a line ({\"users\": [...], \"next_after\": N|null}).\n"
    "A user's name goes wherever a user id is taken, e.g. `quorumctl throughput\n"
    "--annotator alice` (alice@ORGANIZATION for another organization's alice).\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (GET /v1/users).\n"
    "Writes: stdout: the table above; with --json, JSON lines.\n"
    "\n"
    "Example:\n"
    "  quorumctl user list\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

int qr_ctl_manage_command(const char *sub)
{
    static const char *const subs[] = {"list",      "show",   "update", "archive",
                                       "unarchive", "delete", NULL};
    for (int i = 0; subs[i]; i++)
        if (!strcmp(sub, subs[i]))
            return 1;
    return 0;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* The labels of a project as "a,b,c" in b (terminal-safe); a schema
 * project's fields as "schema:name,name". */
static void labels_text(qr_buf_t *b, json_t *p)
{
    size_t i;
    json_t *l;
    if (qr_ctl_schema_summary(b, p))
        return;
    json_array_foreach(json_object_get(p, "labels"), i, l)
    {
        if (i)
            qr_buf_appends(b, ",");
        qr_term_escape(b, json_string_value(l) ? json_string_value(l) : "");
    }
}

static const char *state_of(json_t *p)
{
    if (json_is_true(json_object_get(p, "archived")))
        return "archived";
    if (json_is_true(json_object_get(p, "paused")))
        return "paused";
    return "active";
}

/* A project as "key: value" lines. */
static void show_project(json_t *p)
{
    char name[512];
    qr_buf_t b;
    qr_buf_init(&b);
    labels_text(&b, p);
    printf("id: %lld\n", (long long)json_integer_value(json_object_get(p, "id")));
    printf("name: %s\n", qr_term_escape_to(name, sizeof name, str_or(p, "name", "")));
    printf("organization_id: %lld\n", (long long)json_integer_value(json_object_get(p, "org_id")));
    printf("state: %s\n", state_of(p));
    printf("labels: %s\n", b.data ? b.data : "");
    qr_ctl_schema_show(p);
    printf("annotations_per_task: %lld\n",
           (long long)json_integer_value(json_object_get(p, "annotations_per_task")));
    printf("overlap_annotations: %lld\n",
           (long long)json_integer_value(json_object_get(p, "overlap_annotations")));
    printf("overlap_fraction: %g\n", json_number_value(json_object_get(p, "overlap_fraction")));
    printf("lease_ttl_ms: %lld\n",
           (long long)json_integer_value(json_object_get(p, "lease_ttl_ms")));
    printf("sampling: %s\n", str_or(p, "sampling", "sequential"));
    if (json_is_string(json_object_get(p, "stratify_field")))
        printf("stratify_field: %s\n",
               qr_term_escape_to(name, sizeof name, str_or(p, "stratify_field", "")));
    json_t *conf = json_object_get(p, "auto_accept_confidence");
    if (json_is_number(conf))
        printf("auto_accept_confidence: %g\nauto_accept_audit: %g\n", json_number_value(conf),
               json_number_value(json_object_get(p, "auto_accept_audit")));
    else
        printf("auto_accept_confidence: off\n");
    if (json_is_integer(json_object_get(p, "overlap_max")) &&
        !strcmp(str_or(p, "overlap_measure", "support"), "confidence"))
        printf("dynamic_overlap: %lld to %lld annotations, one more while confidence < %g "
               "(prior accuracy %g)\n",
               (long long)json_integer_value(json_object_get(p, "overlap_min")),
               (long long)json_integer_value(json_object_get(p, "overlap_max")),
               json_number_value(json_object_get(p, "overlap_agreement_threshold")),
               json_number_value(json_object_get(p, "overlap_prior_accuracy")));
    else if (json_is_integer(json_object_get(p, "overlap_max")))
        printf("dynamic_overlap: %lld to %lld annotations, one more while support < %g\n",
               (long long)json_integer_value(json_object_get(p, "overlap_min")),
               (long long)json_integer_value(json_object_get(p, "overlap_max")),
               json_number_value(json_object_get(p, "overlap_agreement_threshold")));
    else
        printf("dynamic_overlap: off\n");
    printf("show_predictions: %s\n",
           json_is_true(json_object_get(p, "show_predictions")) ? "on" : "off");
    qr_ctl_gold_print(p);
    printf("review_mode: %s\n", str_or(p, "review_mode", "none"));
    if (!strcmp(str_or(p, "review_mode", "none"), "share"))
        printf("review_share: %g\n", json_number_value(json_object_get(p, "review_share")));
    if (!strcmp(str_or(p, "review_mode", "none"), "low_agreement"))
        printf("review_agreement_threshold: %g\n",
               json_number_value(json_object_get(p, "review_agreement_threshold")));
    printf("paused_at: %s\n", str_or(p, "paused_at", "-"));
    printf("archived_at: %s\n", str_or(p, "archived_at", "-"));
    qr_buf_free(&b);
}

/* Pages through a list route (path: GET /v1/projects or /v1/users),
 * calling row(item) for each element of key, or echoing each page on a
 * line of its own with as_json. */
static int list_all(qr_client_config_t *cfg, const char *path, const char *key, int as_json,
                    void (*row)(json_t *item))
{
    long long after = 0;
    for (;;) {
        char *p = qr_xasprintf("%s?limit=1000&after=%lld", path, after);
        json_t *page = NULL;
        int rc = qr_cli_request(prog, cfg, "GET", p, NULL, 0, &page);
        free(p);
        if (rc != QR_EXIT_OK)
            return rc;
        if (as_json) {
            char *s = json_dumps(page, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
        } else {
            size_t i;
            json_t *item;
            json_array_foreach(json_object_get(page, key), i, item) row(item);
        }
        json_t *next = json_object_get(page, "next_after");
        after = json_is_integer(next) ? (long long)json_integer_value(next) : 0;
        json_decref(page);
        if (!after)
            return QR_EXIT_OK;
    }
}

static void project_row(json_t *p)
{
    char name[256];
    qr_buf_t b;
    qr_buf_init(&b);
    labels_text(&b, p);
    printf("%-6lld %-9s %-9lld %-15s %s\n", (long long)json_integer_value(json_object_get(p, "id")),
           state_of(p), (long long)json_integer_value(json_object_get(p, "annotations_per_task")),
           qr_term_escape_to(name, sizeof name, str_or(p, "name", "")), b.data ? b.data : "");
    qr_buf_free(&b);
}

static void user_row(json_t *u)
{
    char name[256];
    printf(
        "%-6lld %-20s %-10s %-7lld %s\n", (long long)json_integer_value(json_object_get(u, "id")),
        qr_term_escape_to(name, sizeof name, str_or(u, "name", "")), str_or(u, "role", ""),
        (long long)json_integer_value(json_object_get(u, "tokens")), str_or(u, "created_at", ""));
}

/* Splits "a,b,c" onto the end of arr; -1 on an empty item. */
static int append_labels(json_t *arr, const char *s)
{
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == 0)
            return -1;
        json_array_append_new(arr, json_stringn(s, n));
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

/* The flags of `project update` as a PATCH body; NULL after a usage error
 * (printed). add holds the --add-label values (count nadd). */
typedef struct update_flags_s {
    const char *name, *labels, *apt, *ov_ann, *ov_frac, *ttl, *sampling, *field;
    const char *aa_conf, *aa_audit;
    const char *ov_min, *ov_max, *ov_thr;
    const char *ov_measure, *ov_prior;
    const char *shown;
    qr_ctl_gold_flags_t gold;
    const char *rv_mode, *rv_share, *rv_threshold;
    const char *add[64];
    int nadd;
} update_flags_t;

static json_t *update_body(qr_client_config_t *cfg, long long id, const update_flags_t *f, int *rc)
{
    const char *cmd = "project update ";
    json_t *body = json_object();
    long long v;
    double d;
    *rc = QR_EXIT_USAGE;
    if (f->name)
        json_object_set_new(body, "name", json_string(f->name));
    if (f->labels || f->nadd) {
        json_t *labels = json_array();
        if (f->labels && append_labels(labels, f->labels) < 0) {
            json_decref(labels);
            json_decref(body);
            qr_cli_usage_error(prog, cmd, "project update: --labels has an empty label in '%s'",
                               f->labels);
            return NULL;
        }
        if (!f->labels) { /* --add-label alone: the current list, then the new ones */
            char *path = qr_xasprintf(QR_API_PROJECT("%lld"), id);
            json_t *p = NULL;
            *rc = qr_cli_request(prog, cfg, "GET", path, NULL, 0, &p);
            free(path);
            if (*rc != QR_EXIT_OK) {
                json_decref(labels);
                json_decref(body);
                return NULL;
            }
            json_array_extend(labels, json_object_get(p, "labels"));
            json_decref(p);
            *rc = QR_EXIT_USAGE;
        }
        for (int i = 0; i < f->nadd; i++)
            json_array_append_new(labels, json_string(f->add[i]));
        json_object_set_new(body, "labels", labels);
    }
    if (f->apt) {
        if (qr_cli_parse_ll(f->apt, 1, 100, &v) < 0)
            goto bad_int;
        json_object_set_new(body, "annotations_per_task", json_integer(v));
    }
    if (f->ov_ann) {
        if (qr_cli_parse_ll(f->ov_ann, 1, 100, &v) < 0)
            goto bad_int;
        json_object_set_new(body, "overlap_annotations", json_integer(v));
    }
    if (f->ttl) {
        if (qr_cli_parse_ll(f->ttl, 1000, 86400000, &v) < 0) {
            qr_cli_usage_error(prog, cmd, "project update: --lease-ttl-ms must be 1000-86400000");
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, "lease_ttl_ms", json_integer(v));
    }
    if (f->ov_frac) {
        if (qr_cli_parse_double(f->ov_frac, 0, 1, &d) < 0) {
            qr_cli_usage_error(prog, cmd, "project update: --overlap-fraction must be 0-1");
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, "overlap_fraction", json_real(d));
    }
    if (f->sampling)
        json_object_set_new(body, "sampling", json_string(f->sampling));
    if (f->field)
        json_object_set_new(body, "stratify_field", json_string(f->field));
    if (qr_ctl_auto_accept_flags(f->aa_conf, f->aa_audit, body, "project update") < 0 ||
        qr_ctl_dynamic_overlap_flags(f->ov_min, f->ov_max, f->ov_thr, body, "project update") < 0 ||
        qr_ctl_overlap_measure_flags(f->ov_measure, f->ov_prior, body, "project update") < 0 ||
        qr_ctl_show_predictions_flag(f->shown, body, "project update") < 0 ||
        qr_ctl_gold_flags(&f->gold, body, "project update") < 0 ||
        qr_ctl_review_flags(f->rv_mode, f->rv_share, f->rv_threshold, body, "project update") < 0) {
        json_decref(body);
        return NULL;
    }
    if (json_object_size(body) == 0) {
        qr_cli_usage_error(prog, cmd, "project update: nothing to change (see --help)");
        json_decref(body);
        return NULL;
    }
    *rc = QR_EXIT_OK;
    return body;
bad_int:
    qr_cli_usage_error(prog, cmd,
                       "project update: --annotations-per-task and --overlap-annotations "
                       "must be 1-100");
    json_decref(body);
    return NULL;
}

/* Asks on the terminal for the project's id; 1 when typed back. */
static int confirmed(long long id, json_t *p)
{
    char name[256], line[64];
    fprintf(stderr,
            "Delete project %lld '%s' and all its tasks and annotations? This cannot be undone.\n"
            "Type the project's id to confirm: ",
            id, qr_term_escape_to(name, sizeof name, str_or(p, "name", "")));
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin))
        return 0;
    line[strcspn(line, "\r\n")] = '\0';
    char want[32];
    snprintf(want, sizeof want, "%lld", id);
    return !strcmp(line, want);
}

static int project_delete(qr_client_config_t *cfg, long long id, int yes, int force)
{
    if (!yes && !isatty(STDIN_FILENO))
        return qr_cli_usage_error(prog, "project delete ",
                                  "project delete: stdin is not a terminal to confirm on; give "
                                  "--yes to delete without asking");
    char *path = qr_xasprintf(QR_API_PROJECT("%lld"), id);
    int rc = QR_EXIT_OK;
    if (!yes) {
        json_t *p = NULL;
        rc = qr_cli_request(prog, cfg, "GET", path, NULL, 0, &p);
        if (rc == QR_EXIT_OK && !confirmed(id, p)) {
            fprintf(stderr, "%s: not confirmed; project %lld is kept\n", prog, id);
            rc = QR_EXIT_ERROR;
        }
        json_decref(p);
    }
    if (rc == QR_EXIT_OK) {
        char *del = qr_xasprintf("%s%s", path, force ? "?force=true" : "");
        json_t *r = NULL;
        rc = qr_cli_request(prog, cfg, "DELETE", del, NULL, 0, &r);
        free(del);
        if (rc == QR_EXIT_OK)
            fprintf(stderr,
                    "project %lld deleted: %lld tasks, %lld annotations, %lld live leases "
                    "dropped\n",
                    id, (long long)json_integer_value(json_object_get(r, "tasks")),
                    (long long)json_integer_value(json_object_get(r, "annotations")),
                    (long long)json_integer_value(json_object_get(r, "leases_dropped")));
        json_decref(r);
    }
    free(path);
    return rc;
}

int qr_ctl_project_manage(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *sub = argv[1];
    const char *help = !strcmp(sub, "list")     ? list_help
                       : !strcmp(sub, "show")   ? show_help
                       : !strcmp(sub, "update") ? update_help
                       : !strcmp(sub, "delete") ? delete_help
                                                : archive_help;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "project %s ", sub);
    update_flags_t f;
    memset(&f, 0, sizeof f);
    const char *project = NULL, *add = NULL;
    int as_json = 0, yes = 0, force = 0;
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, help);
            return QR_EXIT_OK;
        }
        add = NULL;
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (!strcmp(sub, "update") &&
             ((r = qr_cli_take_value(prog, argc, argv, &i, "--name", &f.name)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--labels", &f.labels)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--add-label", &add)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--annotations-per-task", &f.apt)) !=
                  0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-annotations", &f.ov_ann)) !=
                  0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-fraction", &f.ov_frac)) !=
                  0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--lease-ttl-ms", &f.ttl)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--sampling", &f.sampling)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--stratify-field", &f.field)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--auto-accept-confidence",
                                     &f.aa_conf)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--auto-accept-audit", &f.aa_audit)) !=
                  0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-min", &f.ov_min)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-max", &f.ov_max)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-agreement-threshold",
                                     &f.ov_thr)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-measure", &f.ov_measure)) !=
                  0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-prior-accuracy",
                                     &f.ov_prior)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--show-predictions", &f.shown)) != 0 ||
              (r = qr_ctl_gold_take(&f.gold, argc, argv, &i)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--review-mode", &f.rv_mode)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--review-share", &f.rv_share)) != 0 ||
              (r = qr_cli_take_value(prog, argc, argv, &i, "--review-agreement-threshold",
                                     &f.rv_threshold)) != 0))) {
            if (r < 0)
                return QR_EXIT_USAGE;
            if (add) {
                if (f.nadd == (int)(sizeof f.add / sizeof f.add[0]))
                    return qr_cli_usage_error(prog, cmd, "project update: at most 64 --add-label");
                f.add[f.nadd++] = add;
            }
        } else if (!strcmp(argv[i], "--json") && strcmp(sub, "delete") && strcmp(sub, "archive") &&
                   strcmp(sub, "unarchive")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--yes") && !strcmp(sub, "delete")) {
            yes = 1;
        } else if (!strcmp(argv[i], "--force") && !strcmp(sub, "delete")) {
            force = 1;
        } else if (strcmp(sub, "list") && !project && argv[i][0] != '-') {
            project = argv[i];
        } else {
            return qr_cli_usage_error(prog, cmd, "project %s: unexpected argument '%s'", sub,
                                      argv[i]);
        }
    }
    if (!strcmp(sub, "list")) {
        if (!as_json)
            printf("%-6s %-9s %-9s %-15s %s\n", "id", "state", "per-task", "name", "labels");
        return list_all(cfg, QR_API_PROJECTS, "projects", as_json, project_row);
    }
    long long id;
    if (qr_cli_project_id(prog, cmd, project, &id) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!strcmp(sub, "delete"))
        return project_delete(cfg, id, yes, force);
    char *path = NULL;
    json_t *body = NULL, *out = NULL;
    const char *method = "GET";
    int rc = QR_EXIT_OK;
    if (!strcmp(sub, "show")) {
        path = qr_xasprintf(QR_API_PROJECT("%lld"), id);
    } else if (!strcmp(sub, "update")) {
        body = update_body(cfg, id, &f, &rc);
        if (!body)
            return rc;
        method = "PATCH";
        path = qr_xasprintf(QR_API_PROJECT("%lld"), id);
    } else {
        method = "POST";
        path = !strcmp(sub, "archive") ? qr_xasprintf(QR_API_ARCHIVE("%lld"), id)
                                       : qr_xasprintf(QR_API_UNARCHIVE("%lld"), id);
    }
    rc = qr_cli_request(prog, cfg, method, path, body, as_json ? QR_CLI_ECHO : 0,
                        as_json ? NULL : &out);
    free(path);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json) {
        if (!strcmp(sub, "show") || !strcmp(sub, "update"))
            show_project(out);
        else if (json_is_true(json_object_get(out, "archived")))
            fprintf(stderr, "project %lld archived (since %s)\n", id,
                    str_or(out, "archived_at", "?"));
        else
            fprintf(stderr, "project %lld in use again (unarchived)\n", id);
    }
    json_decref(out);
    return rc;
}

int qr_ctl_user_list(int argc, char **argv, qr_client_config_t *cfg)
{
    int as_json = 0;
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, user_list_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, "user list ", "user list: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (!as_json)
        printf("%-6s %-20s %-10s %-7s %s\n", "id", "name", "role", "tokens", "created");
    return list_all(cfg, QR_API_USERS, "users", as_json, user_row);
}
