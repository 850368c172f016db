/*
 * ctl_throughput.c - `quorumctl throughput`: asks the broker for a project's
 * throughput report (GET /v1/projects/{id}/throughput) and prints it for a
 * team lead: a summary (rates, time on task, outcomes, queue, ETA, flags)
 * and a table, one row per annotator, vendor or hour, with aligned columns
 * and a totals row. --json prints the broker's JSON unchanged; --watch
 * repeats every few seconds until interrupted.
 */
#include "ctl_throughput.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "protocol.h"
#include "text_out.h"

#define MAX_COLS 16
#define CELL     48

static const char *const prog = "quorumctl";

static const char help[] =
    "Usage: quorumctl throughput --project ID [--window W] [--by annotator|vendor|hour]\n"
    "                            [--annotator ID] [--json] [--watch[=SECONDS]]\n"
    "\n"
    "Prints a project's throughput report: annotations and rates, time on task\n"
    "(median, p90, mean), active and idle time, lease outcomes, the queue, the\n"
    "ETA and fast-response flags, then a table with one row per annotator,\n"
    "vendor or hour and a totals row. A vendor's manager sees only their crew.\n"
    "\n"
    "  --project ID     the project's id\n"
    "  --window W       15m, 1h (default), 1d, any N followed by m, h or d, or\n"
    "                   FROM..TO in ISO 8601 (2030-01-01T00:00Z..2030-01-02T00:00Z)\n"
    "  --by B           rows per annotator (default), vendor or hour\n"
    "  --annotator ID   only this annotator\n"
    "  --json           print the broker's JSON instead\n"
    "  --watch[=S]      repeat every S seconds (default 5) until interrupted\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* --- formatting --------------------------------------------------------------------- */

static json_t *at(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg && j;
         seg = strtok_r(NULL, ".", &save))
        j = json_object_get(j, seg);
    return j;
}

/* "-" for null or missing; else the number with `decimals` places. */
static const char *fmt_num(char out[CELL], json_t *v, int decimals)
{
    if (!json_is_number(v))
        return strcpy(out, "-");
    snprintf(out, CELL, "%.*f", decimals, json_number_value(v));
    return out;
}

static const char *fmt_pct(char out[CELL], json_t *v)
{
    if (!json_is_number(v))
        return strcpy(out, "-");
    snprintf(out, CELL, "%.1f%%", 100.0 * json_number_value(v));
    return out;
}

/* A duration in ms as "850ms", "42.0s", "9m18s" or "3h07m". */
static const char *fmt_dur(char out[CELL], json_t *v)
{
    if (!json_is_number(v))
        return strcpy(out, "-");
    double ms = json_number_value(v);
    if (ms == 0)
        snprintf(out, CELL, "0s");
    else if (ms < 1000)
        snprintf(out, CELL, "%.0fms", ms);
    else if (ms < 60000)
        snprintf(out, CELL, "%.1fs", ms / 1000);
    else if (ms < 3600000)
        snprintf(out, CELL, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000) % 60);
    else
        snprintf(out, CELL, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000) % 60);
    return out;
}

static const char *fmt_str(char out[CELL], json_t *v)
{
    const char *s = json_string_value(v);
    if (!s && json_is_integer(v))
        snprintf(out, CELL, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        qr_term_escape_to(out, CELL, s ? s : "?"); /* a name cannot forge rows */
    return out;
}

/* A table of nrows x ncols cells; column 0 (and 1 when text) left-aligned. */
typedef struct table_s {
    int ncols, nrows, left; /* left: leading left-aligned columns */
    const char *head[MAX_COLS];
    char (*cells)[MAX_COLS][CELL];
} table_t;

static void table_print(const table_t *t)
{
    int w[MAX_COLS];
    for (int c = 0; c < t->ncols; c++) {
        w[c] = (int)strlen(t->head[c]);
        for (int r = 0; r < t->nrows; r++)
            if ((int)strlen(t->cells[r][c]) > w[c])
                w[c] = (int)strlen(t->cells[r][c]);
    }
    for (int r = -1; r < t->nrows; r++) {
        if (r == t->nrows - 1 && t->nrows > 0) { /* a rule above the totals */
            int total = 0;
            for (int c = 0; c < t->ncols; c++)
                total += w[c] + (c ? 2 : 0);
            for (int i = 0; i < total; i++)
                putchar('-');
            putchar('\n');
        }
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->head[c] : t->cells[r][c];
            if (c < t->left)
                printf("%s%-*s", c ? "  " : "", c == t->ncols - 1 ? 0 : w[c], s);
            else
                printf("%s%*s", c ? "  " : "", w[c], s);
        }
        putchar('\n');
    }
}

static void print_summary(json_t *r)
{
    char a[CELL], b[CELL], c[CELL], d[CELL], e[CELL], f[CELL];
    json_t *org = json_object_get(r, "organization_id");
    printf("project %s  window %s (%s .. %s)  %s", fmt_str(a, at(r, "project")),
           json_string_value(at(r, "window.spec")) ? json_string_value(at(r, "window.spec")) : "?",
           fmt_str(b, at(r, "window.from")), fmt_str(c, at(r, "window.to")),
           json_is_integer(org) ? "organization " : "all annotators");
    if (json_is_integer(org))
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(org));
    printf("\n");
    printf("annotations     %s in window (%s/h); %s in all (%s/h); tasks completed %s (%s in "
           "window)\n",
           fmt_num(a, at(r, "totals.annotations"), 0),
           fmt_num(b, at(r, "totals.annotations_per_hour"), 1),
           fmt_num(c, at(r, "totals.annotations_all_time"), 0),
           fmt_num(d, at(r, "totals.annotations_per_hour_all_time"), 1),
           fmt_num(e, at(r, "totals.tasks_completed"), 0),
           fmt_num(f, at(r, "totals.tasks_completed_in_window"), 0));
    printf("time on task    median %s  p90 %s  mean %s  (%s timed)\n",
           fmt_dur(a, at(r, "time_on_task.median_ms")), fmt_dur(b, at(r, "time_on_task.p90_ms")),
           fmt_dur(c, at(r, "time_on_task.mean_ms")), fmt_num(d, at(r, "time_on_task.n"), 0));
    printf("outcomes        submitted %s  skipped %s  released %s  expired %s  (of %s ended)\n",
           fmt_pct(a, at(r, "outcomes.submitted_share")),
           fmt_pct(b, at(r, "outcomes.skipped_share")),
           fmt_pct(c, at(r, "outcomes.released_share")),
           fmt_pct(d, at(r, "outcomes.expired_share")), fmt_num(e, at(r, "outcomes.ended"), 0));
    printf("queue           waiting %s  in progress %s  complete %s  auto-accepted %s  leases live "
           "%s\n",
           fmt_num(a, at(r, "queue.waiting"), 0), fmt_num(b, at(r, "queue.in_progress"), 0),
           fmt_num(c, at(r, "queue.complete"), 0), fmt_num(d, at(r, "queue.auto_accepted"), 0),
           fmt_num(e, at(r, "queue.leases_live"), 0));
    printf("ETA             %s annotations left; ",
           fmt_num(a, at(r, "eta.annotations_remaining"), 0));
    json_t *secs = at(r, "eta.seconds");
    if (!json_is_number(secs)) {
        printf("no work done in the last %s: no estimate\n",
               fmt_dur(b, at(r, "eta.rate_window_ms")));
        return;
    }
    json_t *ms = json_real(json_number_value(secs) * 1000);
    printf("done in %s at %s/h (the rate of the last %s) -> %s\n", fmt_dur(b, ms),
           fmt_num(c, at(r, "eta.rate_per_hour"), 1), fmt_dur(d, at(r, "eta.rate_window_ms")),
           json_string_value(at(r, "eta.at")) ? json_string_value(at(r, "eta.at")) : "?");
    json_decref(ms);
}

static void print_flags(json_t *r)
{
    char a[CELL], b[CELL], c[CELL];
    json_t *flagged = at(r, "fast_response.flagged");
    size_t i;
    json_t *f;
    printf("fast response   ");
    if (json_array_size(flagged) == 0)
        printf("none flagged");
    json_array_foreach(flagged, i, f)
    {
        /* Another organization's annotator is "name@organization": two
         * organizations may each have an "alice". */
        json_t *org = json_object_get(f, "organization");
        json_t *own = json_object_get(r, "project_org_id");
        int other =
            json_is_string(org) && json_is_integer(own) &&
            json_integer_value(json_object_get(f, "organization_id")) != json_integer_value(own);
        printf("%s%s%s%s (median %s)", i ? ", " : "", fmt_str(a, json_object_get(f, "annotator")),
               other ? "@" : "", other ? json_string_value(org) : "",
               fmt_dur(b, json_object_get(f, "median_ms")));
    }
    printf("  [rule: median < %s x crew median %s, >= %s timed]\n",
           fmt_num(a, at(r, "fast_response.ratio"), 2),
           fmt_dur(b, at(r, "fast_response.crew_median_ms")),
           fmt_num(c, at(r, "fast_response.min_annotations"), 0));
}

/* Fills one table row from a row object (or the totals for the last row). */
static void fill_row(char cells[MAX_COLS][CELL], const char *by, json_t *row, json_t *report)
{
    int c = 0;
    int total = row == NULL;
    if (!strcmp(by, "hour")) {
        if (total)
            strcpy(cells[c++], "total");
        else
            fmt_str(cells[c++], json_object_get(row, "hour"));
        fmt_num(cells[c++],
                total ? at(report, "totals.annotations") : json_object_get(row, "annotations"), 0);
        fmt_dur(cells[c++],
                total ? at(report, "time_on_task.median_ms") : at(row, "time_on_task.median_ms"));
        fmt_dur(cells[c++],
                total ? at(report, "time_on_task.mean_ms") : at(row, "time_on_task.mean_ms"));
        fmt_num(cells[c++],
                total ? at(report, "totals.annotators") : json_object_get(row, "annotators_active"),
                0);
        fmt_num(cells[c++],
                total ? at(report, "totals.leases_granted")
                      : json_object_get(row, "leases_granted"),
                0);
        fmt_num(cells[c++],
                total ? at(report, "outcomes.expired") : json_object_get(row, "leases_expired"), 0);
        return;
    }
    int vendor = !strcmp(by, "vendor");
    if (total) {
        strcpy(cells[c++], "total");
        if (!vendor)
            strcpy(cells[c++], "");
        else
            fmt_num(cells[c++], at(report, "totals.annotators"), 0);
        fmt_num(cells[c++], at(report, "totals.annotations"), 0);
        fmt_num(cells[c++], at(report, "totals.annotations_per_hour"), 1);
        fmt_dur(cells[c++], at(report, "time_on_task.median_ms"));
        fmt_dur(cells[c++], at(report, "time_on_task.p90_ms"));
        fmt_dur(cells[c++], at(report, "activity.active_ms"));
        fmt_dur(cells[c++], at(report, "activity.idle_ms"));
        fmt_pct(cells[c++], at(report, "activity.utilisation"));
        fmt_num(cells[c++], at(report, "outcomes.submitted"), 0);
        fmt_num(cells[c++], at(report, "outcomes.skipped"), 0);
        fmt_num(cells[c++], at(report, "outcomes.released"), 0);
        fmt_num(cells[c++], at(report, "outcomes.expired"), 0);
        fmt_pct(cells[c++], at(report, "outcomes.expired_share"));
        json_t *n = json_integer((json_int_t)json_array_size(at(report, "fast_response.flagged")));
        fmt_num(cells[c++], n, 0);
        json_decref(n);
        return;
    }
    fmt_str(cells[c++], json_object_get(row, vendor ? "organization" : "annotator"));
    if (vendor)
        fmt_num(cells[c++], json_object_get(row, "annotators"), 0);
    else
        fmt_str(cells[c++], json_object_get(row, "organization"));
    fmt_num(cells[c++], json_object_get(row, "annotations"), 0);
    fmt_num(cells[c++], json_object_get(row, "annotations_per_hour"), 1);
    fmt_dur(cells[c++], at(row, "time_on_task.median_ms"));
    fmt_dur(cells[c++], at(row, "time_on_task.p90_ms"));
    fmt_dur(cells[c++], json_object_get(row, "active_ms"));
    fmt_dur(cells[c++], json_object_get(row, "idle_ms"));
    fmt_pct(cells[c++], json_object_get(row, "utilisation"));
    fmt_num(cells[c++], at(row, "leases.submitted"), 0);
    fmt_num(cells[c++], at(row, "leases.skipped"), 0);
    fmt_num(cells[c++], at(row, "leases.released"), 0);
    fmt_num(cells[c++], at(row, "leases.expired"), 0);
    fmt_pct(cells[c++], json_object_get(row, "expiry_rate"));
    if (vendor)
        fmt_num(cells[c++], json_object_get(row, "fast_response_flagged"), 0);
    else
        strcpy(cells[c++], json_is_true(json_object_get(row, "fast_response")) ? "FAST" : "");
}

void qr_ctl_throughput_print(json_t *r)
{
    static const char *const head_ann[] = {
        "annotator", "organization", "annot.", "per h", "median", "p90",    "active", "idle",
        "util",      "subm.",        "skip",   "rel.",  "exp.",   "expiry", "flag"};
    static const char *const head_ven[] = {"organization", "crew",   "annot.", "per h",  "median",
                                           "p90",          "active", "idle",   "util",   "subm.",
                                           "skip",         "rel.",   "exp.",   "expiry", "fast"};
    static const char *const head_hour[] = {"hour (UTC)", "annot.",  "median", "mean",
                                            "annotators", "granted", "expired"};
    const char *by = json_string_value(json_object_get(r, "by"));
    by = by ? by : "annotator";
    print_summary(r);
    print_flags(r);
    printf("\n");

    json_t *rows = json_object_get(r, "rows");
    table_t t = {0};
    int hour = !strcmp(by, "hour"), vendor = !strcmp(by, "vendor");
    const char *const *head = hour ? head_hour : vendor ? head_ven : head_ann;
    t.ncols = hour ? 7 : 15;
    t.left = hour ? 1 : vendor ? 1 : 2;
    for (int c = 0; c < t.ncols; c++)
        t.head[c] = head[c];
    t.nrows = (int)json_array_size(rows) + 1;
    t.cells = calloc((size_t)t.nrows, sizeof *t.cells);
    if (!t.cells) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return;
    }
    for (int i = 0; i < t.nrows - 1; i++)
        fill_row(t.cells[i], by, json_array_get(rows, (size_t)i), r);
    fill_row(t.cells[t.nrows - 1], by, NULL, r);
    table_print(&t);
    free(t.cells);
}

/* --- the command ---------------------------------------------------------------------- */

/* Appends key=value to the query, value percent-encoded. */
void qr_ctl_query_add(qr_buf_t *q, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    qr_buf_appendf(q, "%s%s=", q->len ? "&" : "?", key);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == ':') {
            qr_buf_append(q, p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            qr_buf_append(q, esc, 3);
        }
    }
}

int qr_ctl_throughput(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *window = NULL, *by = NULL, *annotator = NULL;
    int as_json = 0;
    long long pid, watch = 0, tmp;

    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--window", &window)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--by", &by)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotator", &annotator)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--watch")) {
            watch = 5;
        } else if (!strncmp(argv[i], "--watch=", 8)) {
            if (qr_cli_parse_ll(argv[i] + 8, 1, 3600, &watch) < 0)
                return qr_cli_usage_error(prog, "throughput ",
                                          "throughput: --watch must be 1 to 3600 seconds, not '%s'",
                                          argv[i] + 8);
        } else {
            return qr_cli_usage_error(prog, "throughput ", "throughput: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "throughput ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (by && strcmp(by, "annotator") && strcmp(by, "vendor") && strcmp(by, "hour"))
        return qr_cli_usage_error(prog, "throughput ",
                                  "throughput: --by must be annotator, vendor or hour, not '%s'",
                                  by);
    if (annotator && qr_cli_parse_ll(annotator, 1, INT64_MAX, &tmp) < 0)
        return qr_cli_usage_error(prog, "throughput ",
                                  "throughput: --annotator must be a user id, not '%s'", annotator);

    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK)
        return rc;
    qr_buf_t path;
    qr_buf_init(&path);
    qr_buf_t q;
    qr_buf_init(&q);
    if (window)
        qr_ctl_query_add(&q, "window", window);
    if (by)
        qr_ctl_query_add(&q, "by", by);
    if (annotator)
        qr_ctl_query_add(&q, "annotator", annotator);
    qr_buf_appendf(&path, QR_API_THROUGHPUT("%lld") "%s", pid, q.data ? q.data : "");
    qr_buf_free(&q);

    for (;;) {
        json_t *r = qr_cli_get_object(prog, &call, path.data);
        if (!r) {
            /* A window the broker refuses is the user's mistake (422). */
            rc = call.status == 422 ? QR_EXIT_USAGE : QR_EXIT_ERROR;
            break;
        }
        if (watch)
            printf("\033[H\033[2J"); /* clear the terminal */
        if (as_json) {
            rc = qr_cli_echo(prog, &call);
        } else {
            qr_ctl_throughput_print(r);
            if (fflush(stdout) != 0) {
                fprintf(stderr, "%s: cannot write to stdout\n", prog);
                rc = QR_EXIT_ERROR;
            }
        }
        json_decref(r);
        if (!watch || rc != QR_EXIT_OK)
            break;
        sleep((unsigned)watch);
    }
    qr_buf_free(&path);
    qr_client_call_free(&call);
    return rc;
}
