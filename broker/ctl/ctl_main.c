/*
 * ctl_main.c - quorumctl, the managers' command line: create projects and
 * users, import tasks, read a project's report (all over the broker's HTTPS
 * API, docs/API.md), and compute agreement on a CSV file offline
 * (ctl_agreement.c).
 *
 * Exit codes: 0 success, 1 the broker or the network failed the request,
 * 2 the command line (or the connection settings) was wrong.
 */
#include "cli.h"
#include "client.h"
#include "ctl_agreement.h"
#include "ctl_cert.h"
#include "ctl_org.h"
#include "ctl_throughput.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest JSONL import we read into memory (bytes). The broker has its own,
 * usually smaller, limit and answers 413 above it. */
#define MAX_IMPORT_BYTES ((size_t)1 << 30)

static const char *const prog = "quorumctl";

static const char main_help[] =
    "Usage: quorumctl [CONNECTION FLAGS] COMMAND [ARGS]\n"
    "\n"
    "Manage a Quorum broker: projects, users, task imports and reports.\n"
    "\n"
    "Commands:\n"
    "  project create --name N --labels a,b,c [--annotations-per-task K]\n"
    "                 [--lease-ttl-ms MS] [--max-leases-per-annotator N] [--json]\n"
    "                                  create a project; prints its id\n"
    "  import --project ID FILE|-                    import tasks from JSONL\n"
    "  report --project ID [--json]                  progress, throughput, agreement\n"
    "  user create --name N --role R                 create a user; prints its token\n"
    "  token create|list|revoke                      API tokens (create shows it once)\n"
    "  cert add|list|revoke                          client certificates for mutual TLS\n"
    "  agreement FILE.csv [--json] [--per-item]      agreement on a CSV (offline)\n"
    "  agreement --project ID [--json] [--fresh]     live agreement of a project\n"
    "  export --project ID [--format csv|jsonl]      every annotation, to stdout\n"
    "  throughput --project ID [--window 1h] [--by annotator|vendor|hour] [--json]\n"
    "                                                rates, time on task, queue, ETA\n"
    "  org create NAME [--kind vendor|owner]         create an organization (admins)\n"
    "  org list [--json]                             organizations you may see\n"
    "  project share|unshare --project ID --org NAME|ID [--quota N] [--cap N]\n"
    "                                                share a project with a vendor\n"
    "  project shares --project ID [--json]          a project's shares and their use\n"
    "  project pause|resume --project ID             stop or restart handing out tasks\n"
    "\n"
    "Run `quorumctl COMMAND --help` for a command's flags.\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error\n"
    "(bad flags or arguments, unreadable FILE, missing connection settings).\n";

static const char project_help[] =
    "Usage: quorumctl project create --name N --labels a,b,c\n"
    "                 [--annotations-per-task K] [--lease-ttl-ms MS]\n"
    "                 [--max-leases-per-annotator N] [--json]\n"
    "\n"
    "Creates a labeling project (POST /v1/projects) and prints its id alone on\n"
    "stdout, or the whole project object with --json.\n"
    "\n"
    "  --name N                   project name\n"
    "  --labels a,b,c             the label choices, comma-separated (1-1000)\n"
    "  --annotations-per-task K   annotations each task needs (broker default 1)\n"
    "  --lease-ttl-ms MS          how long a lease lasts (broker default 60000)\n"
    "  --max-leases-per-annotator N   live leases one annotator may hold at once\n"
    "                             (1-10000; broker default 10)\n"
    "  --json                     print the project as JSON\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char import_help[] =
    "Usage: quorumctl import --project ID [--format jsonl|json|csv] FILE|-\n"
    "\n"
    "Imports tasks into a project from a file (or stdin with -):\n"
    "  jsonl  one task a line: {\"data\": {...}, \"prediction\": {\"label\": ...,\n"
    "         \"score\": ...}, \"gold\": ...} or a bare JSON object taken as the data;\n"
    "  json   a JSON array of such tasks (Label Studio's task export);\n"
    "  csv    a header row naming the fields, then a task a row (RFC 4180, UTF-8);\n"
    "         the columns prediction, prediction_score and gold are the task's\n"
    "         prediction and gold answer, every other column is data.\n"
    "The format defaults to the file's extension (.csv, .json, else jsonl). All\n"
    "or nothing: a bad line fails the whole import, naming its line.\n"
    "Prints \"imported N tasks (ids A..B)\".\n"
    "\n"
    "  --project ID     the project's id\n"
    "  --format F       jsonl, json or csv\n"
    "\n"
    "Examples:\n"
    "  quorumctl import --project 3 tasks.jsonl\n"
    "  quorumctl import --project 3 --format csv - < reviews.csv\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char report_help[] =
    "Usage: quorumctl report --project ID [--window W] [--json] [--watch[=S]]\n"
    "\n"
    "Prints a project's report: progress, annotations, throughput, duplicate\n"
    "and overfilled counts, agreement, and annotations per annotator; then the\n"
    "crew's throughput over the window as a table, annotators as rows (rate,\n"
    "time on task, active and idle time, lease outcomes, flags) with totals,\n"
    "the queue and the ETA (as `quorumctl throughput` prints it). A vendor's\n"
    "manager sees their own crew only.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --window W     15m, 1h, 1d, ... or FROM..TO (default 1h)\n"
    "  --json         the broker's JSON report, its throughput under \"throughput\"\n"
    "  --watch[=S]    clear the screen and refresh every S seconds (default 5)\n"
    "\n"
    "Examples:\n"
    "  quorumctl report --project 3\n"
    "  quorumctl report --project 3 --window 1d --watch\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char user_help[] =
    "Usage: quorumctl user create --name N --role R\n"
    "\n"
    "Creates a user in the caller's organization (POST /v1/users) and prints\n"
    "the new bearer token alone on stdout (it is shown only once); the id and\n"
    "role go to stderr. An existing name is refused (409): to give an\n"
    "existing user a new token, use `quorumctl token create`.\n"
    "\n"
    "  --name N   user name\n"
    "  --role R   admin, manager, reviewer or annotator\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* Splits "a,b,c" into a JSON array of strings; NULL on an empty item. */
static json_t *split_labels(const char *s)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == 0)
            goto fail;
        json_t *label = json_stringn(s, n);
        if (!label || json_array_append_new(arr, label) < 0)
            goto fail;
        if (!comma)
            break;
        s = comma + 1;
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

static int cmd_project(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *name = NULL, *labels = NULL, *per_task = NULL, *ttl = NULL, *max_live = NULL;
    int as_json = 0;
    long long k = 0, ttl_ms = 0, max_leases = 0;

    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, project_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    if (strcmp(argv[1], "create") != 0)
        return qr_cli_usage_error(prog, "project create ", "unknown project command '%s'", argv[1]);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, project_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--name", &name)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--labels", &labels)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotations-per-task", &per_task)) !=
                0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--lease-ttl-ms", &ttl)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--max-leases-per-annotator",
                                   &max_live)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else {
            return qr_cli_usage_error(prog, "project create ",
                                      "project create: unexpected argument '%s'", argv[i]);
        }
    }
    if (!name || !name[0])
        return qr_cli_usage_error(prog, "project create ", "project create: --name is required");
    if (!labels)
        return qr_cli_usage_error(prog, "project create ", "project create: --labels is required");
    if (per_task && qr_cli_parse_ll(per_task, 1, 100, &k) < 0)
        return qr_cli_usage_error(prog, "project create ",
                                  "project create: --annotations-per-task must be 1-100, not '%s'",
                                  per_task);
    if (ttl && qr_cli_parse_ll(ttl, 1, 86400000, &ttl_ms) < 0)
        return qr_cli_usage_error(prog, "project create ",
                                  "project create: --lease-ttl-ms must be a positive "
                                  "number of ms, not '%s'",
                                  ttl);
    if (max_live && qr_cli_parse_ll(max_live, 1, 10000, &max_leases) < 0)
        return qr_cli_usage_error(
            prog, "project create ",
            "project create: --max-leases-per-annotator must be 1-10000, not '%s'", max_live);
    json_t *label_arr = split_labels(labels);
    if (!label_arr)
        return qr_cli_usage_error(prog, "project create ",
                                  "project create: --labels has an empty label in '%s'", labels);

    json_t *body = json_object();
    if (!body || json_object_set_new(body, "name", json_string(name)) < 0 ||
        json_object_set_new(body, "labels", label_arr) < 0 ||
        (per_task && json_object_set_new(body, "annotations_per_task", json_integer(k)) < 0) ||
        (ttl && json_object_set_new(body, "lease_ttl_ms", json_integer(ttl_ms)) < 0) ||
        (max_live &&
         json_object_set_new(body, "max_leases_per_annotator", json_integer(max_leases)) < 0)) {
        fprintf(stderr, "%s: cannot build the request (is --name valid UTF-8?)\n", prog);
        json_decref(body);
        return QR_EXIT_USAGE;
    }

    json_t *project;
    int rc = qr_cli_request(prog, cfg, "POST", QR_API_PROJECTS, body, as_json ? QR_CLI_ECHO : 0,
                            &project);
    json_decref(body);
    if (rc == QR_EXIT_OK && !as_json) {
        json_t *id = json_object_get(project, "id");
        if (json_is_integer(id)) {
            printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(id));
        } else if (json_is_string(id)) {
            printf("%s\n", json_string_value(id));
        } else {
            fprintf(stderr, "%s: broker's answer has no project id\n", prog);
            rc = QR_EXIT_ERROR;
        }
    }
    json_decref(project);
    return rc;
}

/*
 * Reads a whole file (or stdin for "-") into b, refusing more than
 * MAX_IMPORT_BYTES. Returns 0 or -1 (message printed).
 */
static int read_input(const char *path, qr_buf_t *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[65536];
    size_t n;
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > MAX_IMPORT_BYTES) {
            fprintf(stderr, "%s: %s is over %zu bytes; split it into several imports\n", prog, path,
                    MAX_IMPORT_BYTES);
            goto fail;
        }
        qr_buf_append(b, chunk, n);
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    return 0;
fail:
    if (f != stdin)
        fclose(f);
    return -1;
}

static int cmd_import(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *file = NULL, *format = NULL;
    long long pid;

    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, import_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--format", &format)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return qr_cli_usage_error(prog, "import ", "import: unknown flag '%s'", argv[i]);
        } else if (file) {
            return qr_cli_usage_error(prog, "import ", "import: only one FILE, got also '%s'",
                                      argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (qr_cli_project_id(prog, "import ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!file)
        return qr_cli_usage_error(prog, "import ", "import: FILE (or - for stdin) is required");
    if (!format) {
        size_t n = strlen(file);
        format = n > 4 && !strcasecmp(file + n - 4, ".csv")    ? "csv"
                 : n > 5 && !strcasecmp(file + n - 5, ".json") ? "json"
                                                               : "jsonl";
    }
    const char *content_type = !strcmp(format, "csv")     ? "text/csv; charset=utf-8"
                               : !strcmp(format, "json")  ? "application/json"
                               : !strcmp(format, "jsonl") ? "application/x-ndjson"
                                                          : NULL;
    if (!content_type)
        return qr_cli_usage_error(prog, "import ",
                                  "import: --format must be jsonl, json or csv, not '%s'", format);

    qr_buf_t data;
    qr_buf_init(&data);
    if (read_input(file, &data) < 0) {
        qr_buf_free(&data);
        return QR_EXIT_USAGE;
    }
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK) {
        qr_buf_free(&data);
        return rc;
    }
    char *path = qr_xasprintf(QR_API_TASKS("%lld"), pid);
    int r = qr_client_call_perform(&call, "POST", path, data.data ? data.data : "", data.len,
                                   content_type, cfg->token);
    free(path);
    qr_buf_free(&data);
    if (r < 0) {
        fprintf(stderr, "%s: import failed: %s\n", prog, call.message);
        qr_client_call_free(&call);
        return QR_EXIT_ERROR;
    }
    json_t *res = qr_cli_answer(&call);
    if (!res) {
        fprintf(stderr, "%s: %s\n", prog, call.message);
        qr_client_call_free(&call);
        return QR_EXIT_ERROR;
    }
    json_t *n = json_object_get(res, "imported");
    json_t *first = json_object_get(res, "first_task_id");
    json_t *last = json_object_get(res, "last_task_id");
    if (!json_is_integer(n)) {
        fprintf(stderr, "%s: broker's answer lacks \"imported\"\n", prog);
        rc = QR_EXIT_ERROR;
    } else if (json_is_integer(first) && json_is_integer(last)) {
        printf("imported %" JSON_INTEGER_FORMAT " tasks (ids %" JSON_INTEGER_FORMAT
               "..%" JSON_INTEGER_FORMAT ")\n",
               json_integer_value(n), json_integer_value(first), json_integer_value(last));
    } else {
        printf("imported %" JSON_INTEGER_FORMAT " tasks\n", json_integer_value(n));
    }
    json_decref(res);
    qr_client_call_free(&call);
    return rc;
}

/* A JSON number (integer or real) as a double; NAN-free default 0. */
static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/* Prints "label  value" where value is a number to `decimals` places, or
 * "undefined" for null/missing. */
static void print_metric(const char *label, json_t *v, int decimals)
{
    if (json_is_number(v))
        printf("%-24s %.*f\n", label, decimals, json_number_value(v));
    else
        printf("%-24s undefined\n", label);
}

/*
 * How a table names an annotator: the row's name under `key`, or
 * "name@organization" when the row's organization (`prefix` +
 * "organization_id", `prefix` + "organization") is not the project's
 * (report's "project_org_id"), so that two organizations' "alice" stay two
 * rows. Written into buf (n bytes); returns buf.
 */
static const char *annotator_label(const json_t *report, const json_t *row, const char *key,
                                   const char *prefix, char *buf, size_t n)
{
    char k_id[40], k_org[40];
    snprintf(k_id, sizeof k_id, "%sorganization_id", prefix);
    snprintf(k_org, sizeof k_org, "%sorganization", prefix);
    const json_t *who = json_object_get(row, key);
    const json_t *own = json_object_get(report, "project_org_id");
    const json_t *org_id = json_object_get(row, k_id);
    const char *org = json_string_value(json_object_get(row, k_org));
    if (json_is_string(who))
        snprintf(buf, n, "%s", json_string_value(who));
    else if (json_is_integer(who))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(who));
    else
        snprintf(buf, n, "?");
    if (org && json_is_integer(org_id) && json_is_integer(own) &&
        json_integer_value(org_id) != json_integer_value(own)) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "@%s", org);
    }
    return buf;
}

/* The manager-facing text rendering of GET /v1/projects/{id}/report. */
static void print_report(json_t *r)
{
    double tasks = num(r, "tasks"), complete = num(r, "tasks_complete");
    json_t *agreement = json_object_get(r, "agreement");
    json_t *per = json_object_get(r, "per_annotator");

    printf("%-24s %.0f\n", "project", num(r, "project"));
    printf("%-24s %.0f\n", "tasks", tasks);
    if (tasks > 0)
        printf("%-24s %.0f (%.1f%%)\n", "complete", complete, 100.0 * complete / tasks);
    else
        printf("%-24s %.0f\n", "complete", complete);
    printf("%-24s %.0f\n", "annotations", num(r, "annotations"));
    printf("%-24s %.0f\n", "annotators", num(r, "annotators"));
    printf("%-24s %.0f%s\n", "duplicate assignments", num(r, "duplicate_assignments"),
           num(r, "duplicate_assignments") > 0 ? "  (should be 0)" : "");
    printf("%-24s %.0f%s\n", "overfilled tasks", num(r, "overfilled_tasks"),
           num(r, "overfilled_tasks") > 0 ? "  (should be 0)" : "");
    print_metric("completions/s", json_object_get(r, "completions_per_second"), 1);
    if (json_is_number(json_object_get(r, "elapsed_seconds")))
        printf("%-24s %.2f s\n", "elapsed", num(r, "elapsed_seconds"));
    else
        printf("%-24s undefined\n", "elapsed");
    print_metric("percent agreement", json_object_get(agreement, "percent_agreement"), 3);
    print_metric("krippendorff alpha", json_object_get(agreement, "krippendorff_alpha_nominal"), 3);

    if (!json_is_array(per) || json_array_size(per) == 0)
        return;
    int width = 9; /* strlen("annotator") */
    size_t i;
    json_t *row;
    char name[512];
    json_array_foreach(per, i, row)
    {
        char esc[512];
        int len = (int)strlen(qr_term_escape_to(
            esc, sizeof esc, annotator_label(r, row, "annotator", "", name, sizeof name)));
        if (len > width && len <= 64)
            width = len;
    }
    printf("\n%-*s  %11s\n", width, "annotator", "annotations");
    json_array_foreach(per, i, row)
    {
        char esc[512]; /* a name cannot forge rows (text_out.h) */
        printf("%-*s  %11.0f\n", width,
               qr_term_escape_to(esc, sizeof esc,
                                 annotator_label(r, row, "annotator", "", name, sizeof name)),
               num(row, "annotations"));
    }
}

static int cmd_report(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *window = "1h";
    int as_json = 0;
    long watch = 0;
    long long pid;

    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, report_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--window", &window)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch = 5;
        } else if (strncmp(argv[i], "--watch=", 8) == 0) {
            char *end;
            watch = strtol(argv[i] + 8, &end, 10);
            if (*end || end == argv[i] + 8 || watch < 1 || watch > 3600)
                return qr_cli_usage_error(prog, "report ",
                                          "report: --watch must be 1 to 3600 seconds, not '%s'",
                                          argv[i] + 8);
        } else {
            return qr_cli_usage_error(prog, "report ", "report: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "report ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK)
        return rc;
    char *report_path = qr_xasprintf(QR_API_REPORT("%lld"), pid);
    qr_buf_t q;
    qr_buf_init(&q);
    qr_ctl_query_add(&q, "window", window);
    char *tp_path = qr_xasprintf(QR_API_THROUGHPUT("%lld") "%s", pid, q.data);
    qr_buf_free(&q);
    for (;;) {
        json_t *report = qr_cli_get_object(prog, &call, report_path);
        /* A window the broker refuses is the user's mistake (422). */
        json_t *tp = report ? qr_cli_get_object(prog, &call, tp_path) : NULL;
        if (!tp) {
            rc = call.status == 422 ? QR_EXIT_USAGE : QR_EXIT_ERROR;
            json_decref(report);
            break;
        }
        if (watch)
            printf("\033[H\033[2J"); /* clear the terminal */
        if (as_json) {
            json_object_set_new(report, "throughput", tp);
            char *s = json_dumps(report, JSON_COMPACT | JSON_REAL_PRECISION(17));
            if (!s || puts(s) == EOF)
                rc = QR_EXIT_ERROR;
            free(s);
        } else {
            print_report(report);
            putchar('\n');
            qr_ctl_throughput_print(tp);
            json_decref(tp);
        }
        json_decref(report);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "%s: cannot write to stdout\n", prog);
            rc = QR_EXIT_ERROR;
        }
        if (!watch || rc != QR_EXIT_OK)
            break;
        sleep((unsigned)watch);
    }
    free(report_path);
    free(tp_path);
    qr_client_call_free(&call);
    return rc;
}

static int cmd_user(int argc, char **argv, qr_client_config_t *cfg)
{
    static const char *const roles[] = {QR_ROLE_NAMES};
    const char *name = NULL, *role = NULL;

    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, user_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    if (strcmp(argv[1], "create") != 0)
        return qr_cli_usage_error(prog, "user create ", "unknown user command '%s'", argv[1]);
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
            fprintf(stderr, "%s: broker's answer has no token\n", prog);
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

/* GET path; the body goes to stdout as it is (raw) or through show(). */
static int get_and_print(qr_client_config_t *cfg, const char *path, int raw,
                         void (*show)(json_t *o))
{
    json_t *o = NULL;
    int rc = qr_cli_request(prog, cfg, "GET", path, NULL, raw ? QR_CLI_ECHO : 0, raw ? NULL : &o);
    if (rc == QR_EXIT_OK && !raw)
        show(o);
    json_decref(o);
    return rc;
}

static void show_agreement(json_t *o)
{
    json_t *counts = json_object_get(o, "counts");
    printf("items %lld, annotators %lld, judgements %lld, pairable items %lld\n",
           (long long)json_integer_value(json_object_get(counts, "items")),
           (long long)json_integer_value(json_object_get(counts, "annotators")),
           (long long)json_integer_value(json_object_get(counts, "judgements")),
           (long long)json_integer_value(json_object_get(counts, "pairable_items")));
    const char *key;
    json_t *m;
    json_object_foreach(json_object_get(o, "metrics"), key, m)
    {
        const char *status = json_string_value(json_object_get(m, "status"));
        if (status && !strcmp(status, "defined"))
            printf("%-28s %.4f\n", key, json_number_value(json_object_get(m, "value")));
        else
            printf("%-28s %s (%s)\n", key,
                   status && !strcmp(status, "undefined") ? "undefined" : "n/a",
                   json_string_value(json_object_get(m, "reason")));
    }
    json_t *gold = json_object_get(json_object_get(o, "gold"), "accuracy");
    if (json_is_number(json_object_get(gold, "value")))
        printf("%-28s %.4f\n", "gold accuracy", json_number_value(json_object_get(gold, "value")));
    json_t *per = json_object_get(o, "per_annotator");
    if (json_array_size(per) == 0)
        return;
    char name[512];
    size_t i;
    json_t *row;
    printf("\n%-28s %10s  %s\n", "annotator", "judgements", "majority agreement");
    json_array_foreach(per, i, row)
    {
        json_t *maj = json_object_get(row, "majority_agreement");
        printf("%-28s %10" JSON_INTEGER_FORMAT "  ",
               annotator_label(o, row, "annotator", "", name, sizeof name),
               json_integer_value(json_object_get(row, "judgements")));
        if (json_is_number(json_object_get(maj, "value")))
            printf("%.4f\n", json_number_value(json_object_get(maj, "value")));
        else
            printf("undefined\n");
    }
}

static const char token_help[] =
    "usage: quorumctl token create --user U --role R [--expires 30d]\n"
    "       quorumctl token list [--json]\n"
    "       quorumctl token revoke ID\n"
    "\n"
    "API tokens of the caller's organization. create makes the user if needed\n"
    "and prints the new token alone on stdout: it is shown once, only its\n"
    "SHA-256 is stored. --expires takes 30d, 12h, 90m or 45s. list shows each\n"
    "token's id, prefix, owner, role, created, last used, expiry and revocation.\n"
    "revoke takes effect at once on every broker.\n"
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

static int cmd_token(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *user = NULL, *role = NULL, *expires = NULL, *id = NULL;
    int as_json = 0;
    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, token_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"))
        return qr_cli_usage_error(prog, "token ", "unknown token command '%s'", sub);
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
    if (!strcmp(sub, "list"))
        return get_and_print(cfg, QR_API_TOKENS, as_json, show_tokens);
    int rc;
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

static const char live_agreement_help[] =
    "usage: quorumctl agreement --project ID [--json] [--fresh] [connection flags]\n"
    "       quorumctl agreement FILE.csv [--json] [--per-item]   (offline)\n"
    "\n"
    "With --project, the broker's live agreement report over the project's\n"
    "annotations (GET /v1/projects/ID/agreement): the same coefficients as the\n"
    "offline command on `quorumctl export --project ID`, plus agreement with\n"
    "gold answers. Reports are at most a second old; --fresh waits for one\n"
    "that includes every annotation committed before the request.\n";

/* `agreement --project ID`: the live report; anything else is offline. */
static int cmd_live_agreement(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL;
    int as_json = 0, fresh = 0;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, live_agreement_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--fresh") == 0) {
            fresh = 1;
        } else {
            return qr_cli_usage_error(prog, "agreement ", "agreement: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "agreement ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    char *path = qr_xasprintf(QR_API_AGREEMENT("%lld") "%s", pid, fresh ? "?fresh=1" : "");
    int rc = get_and_print(cfg, path, as_json, show_agreement);
    free(path);
    return rc;
}

static const char export_help[] =
    "usage: quorumctl export --project ID [--format csv|jsonl] [connection flags]\n"
    "\n"
    "Every annotation of the project, in the order they were stored: CSV with\n"
    "the header item,annotator,label,created_at,annotator_id,organization (the\n"
    "input of `quorumctl agreement FILE.csv`; an annotator of another\n"
    "organization than the project's is named name@organization), or JSON\n"
    "lines. Written to stdout.\n";

static int cmd_export(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *format = "csv";
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, export_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--format", &format)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "export ", "export: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "export ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (strcmp(format, "csv") && strcmp(format, "jsonl"))
        return qr_cli_usage_error(prog, "export ", "export: --format must be csv or jsonl");
    char *path = qr_xasprintf(QR_API_EXPORT("%lld") "?format=%s", pid, format);
    int rc = get_and_print(cfg, path, 1, NULL);
    free(path);
    return rc;
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag) || !strncmp(argv[i], "--project=", 10))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    qr_client_config_t cfg;
    int i = 1, rc;

    qr_client_config_init(&cfg);
    /* Connection flags may come before the command too. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, main_help);
            qr_client_config_free(&cfg);
            return QR_EXIT_OK;
        }
        r = qr_cli_config_flag(&cfg, prog, argc, argv, &i);
        if (r == 0)
            fprintf(stderr, "%s: unknown flag '%s'\n", prog, argv[i]);
        if (r <= 0) {
            qr_client_config_free(&cfg);
            return QR_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        qr_cli_help(stderr, main_help);
        qr_client_config_free(&cfg);
        return QR_EXIT_USAGE;
    }
    const char *cmd = argv[i];
    if (strcmp(cmd, "agreement") == 0 && !has_flag(argc - i, argv + i, "--project")) {
        qr_client_config_free(&cfg);
        return qr_ctl_agreement(argc - i, argv + i);
    }
    if (strcmp(cmd, "help") == 0) {
        qr_cli_help(stdout, main_help);
        qr_client_config_free(&cfg);
        return QR_EXIT_OK;
    }
    if (qr_client_global_init() < 0) {
        qr_client_config_free(&cfg);
        return QR_EXIT_ERROR;
    }
    if (strcmp(cmd, "org") == 0)
        rc = qr_ctl_org(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "project") == 0 && i + 1 < argc && qr_ctl_share_command(argv[i + 1]))
        rc = qr_ctl_share(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "project") == 0)
        rc = cmd_project(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "import") == 0)
        rc = cmd_import(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "report") == 0)
        rc = cmd_report(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "user") == 0)
        rc = cmd_user(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "agreement") == 0)
        rc = cmd_live_agreement(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "token") == 0)
        rc = cmd_token(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "cert") == 0)
        rc = qr_ctl_cert(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "throughput") == 0)
        rc = qr_ctl_throughput(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "export") == 0)
        rc = cmd_export(argc - i, argv + i, &cfg);
    else
        rc = qr_cli_usage_error(prog, "", "unknown command '%s'", cmd);
    qr_client_global_cleanup();
    qr_client_config_free(&cfg);
    return rc;
}
