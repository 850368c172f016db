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
#include <math.h>
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
    "                            [--annotator ID|NAME] [--json] [--watch[=SECONDS]]\n"
    "\n"
    "Prints a project's throughput report: annotations and rates, time on task\n"
    "(median, p90, mean), active and idle time, lease outcomes, the queue, the\n"
    "ETA and fast-response flags, then a table with one row per annotator,\n"
    "vendor or hour and a totals row. A vendor's manager sees only their crew.\n"
    "Rates are over time worked, not over the window: per annotator, their\n"
    "active time; for the crew, its working time (first to last annotation,\n"
    "pauses over the idle threshold left out). The ETA divides what is left by\n"
    "the pace of the last 10 minutes of work.\n"
    "\n"
    "  --project ID     the project's id\n"
    "  --window W       15m, 1h (default), 1d, any N followed by m, h or d, or\n"
    "                   FROM..TO in ISO 8601 (2030-01-01T00:00Z..2030-01-02T00:00Z)\n"
    "  --by B           rows per annotator (default), vendor or hour\n"
    "  --annotator ID   only this annotator: a user id or name (name@organization\n"
    "                   for another organization's; an ambiguous name is refused)\n"
    "  --json           print the broker's JSON instead\n"
    "  --watch[=S]      repeat every S seconds (default 5) until interrupted\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (GET .../throughput).\n"
    "Writes: stdout: text, a figure a line, then the table, for example\n"
    "          time on task    median 1.1s  p90 1.2s  mean 1.1s  (2 timed)\n"
    "          queue           waiting 3  in progress 1  complete 0  leases live 0\n"
    "        with --json the broker's JSON (docs/THROUGHPUT.md).\n"
    "\n"
    "Examples:\n"
    "  quorumctl throughput --project 7\n"
    "  quorumctl throughput --project 7 --window 1d --by vendor --json\n"
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

const char *qr_ctl_fmt_duration(char out[CELL], double ms)
{
    if (!(ms >= 0) || ms > 1e15)
        snprintf(out, CELL, "-");
    else if (ms == 0)
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

/* A duration in ms as qr_ctl_fmt_duration writes it; "-" for null. */
static const char *fmt_dur(char out[CELL], json_t *v)
{
    if (!json_is_number(v))
        return strcpy(out, "-");
    return qr_ctl_fmt_duration(out, json_number_value(v));
}

/* A whole number with thousands separators: 2,285,963. */
static const char *fmt_thousands(char *out, size_t n, double v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v < 0 ? -v : v);
    size_t len = strlen(digits), o = 0;
    if (v < 0 && o + 1 < n)
        out[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

/* A duration in words when it is whole minutes ("5 minutes"), else as
 * qr_ctl_fmt_duration writes it. */
static const char *fmt_minutes(char out[CELL], double ms)
{
    if (ms >= 60000 && ms <= 86400000 && (long long)ms % 60000 == 0) {
        long long m = (long long)ms / 60000;
        snprintf(out, CELL, "%lld minute%s", m, m == 1 ? "" : "s");
        return out;
    }
    return qr_ctl_fmt_duration(out, ms);
}

const char *qr_ctl_fmt_rate(char out[64], double per_hour)
{
    char h[32];
    if (!(per_hour >= 0))
        snprintf(out, 64, "-");
    else if (per_hour >= 3600)
        snprintf(out, 64, "%.1f/s (%s/h)", per_hour / 3600, fmt_thousands(h, sizeof h, per_hour));
    else if (per_hour >= 100)
        snprintf(out, 64, "%s/h", fmt_thousands(h, sizeof h, per_hour));
    else
        snprintf(out, 64, "%.1f/h", per_hour);
    return out;
}

void qr_ctl_print_eta(int indent, double remaining, double eta_s, double per_hour, double pace_n,
                      double pace_ms, double span_ms, double since_last_s, double idle_ms,
                      const char *at)
{
    char a[CELL], b[CELL], c[CELL], r[64];
    if (remaining <= 0) {
        printf("nothing left: every task has the annotations it needs\n");
        return;
    }
    printf("%.0f annotations still needed; ", remaining);
    if (isnan(eta_s) || isnan(per_hour)) {
        printf("no estimate yet (no working time recorded: it needs two annotations less than "
               "%s apart)\n",
               fmt_minutes(a, idle_ms));
        return;
    }
    printf("about %s at the pace of the last %s of work\n%*s(%.0f annotations in %s of work: %s)",
           qr_ctl_fmt_duration(a, eta_s * 1000), fmt_minutes(b, span_ms), indent, "", pace_n,
           qr_ctl_fmt_duration(c, pace_ms), qr_ctl_fmt_rate(r, per_hour));
    if (!isnan(since_last_s) && since_last_s * 1000 > idle_ms)
        printf("; nobody has annotated for %s, so count from when work resumes\n",
               qr_ctl_fmt_duration(a, since_last_s * 1000));
    else if (at)
        printf(" -> %s\n", at);
    else
        printf("\n");
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

static void print_summary(json_t *r, int flags)
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
    /* Rates are over working time (sql_work.h), never over the window's
     * length: a crew that worked 43 s of the hour did not work the hour. */
    char rate[64];
    printf("annotations     %s in the window, %s in all; tasks completed %s (%s in the window)\n",
           fmt_num(a, at(r, "totals.annotations"), 0),
           fmt_num(c, at(r, "totals.annotations_all_time"), 0),
           fmt_num(e, at(r, "totals.tasks_completed"), 0),
           fmt_num(f, at(r, "totals.tasks_completed_in_window"), 0));
    if (json_is_number(at(r, "totals.working_ms")))
        printf("working time    %s in the window (pauses over %s left out): %s\n",
               fmt_dur(a, at(r, "totals.working_ms")),
               fmt_minutes(b, json_number_value(at(r, "activity.idle_gap_ms"))),
               json_is_number(at(r, "totals.annotations_per_working_hour"))
                   ? qr_ctl_fmt_rate(
                         rate, json_number_value(at(r, "totals.annotations_per_working_hour")))
                   : "no rate yet");
    else
        printf("working time    not computed for a window over 2 hours\n");
    printf("time on task    median %s  p90 %s  mean %s  (%s timed)\n",
           fmt_dur(a, at(r, "time_on_task.median_ms")), fmt_dur(b, at(r, "time_on_task.p90_ms")),
           fmt_dur(c, at(r, "time_on_task.mean_ms")), fmt_num(d, at(r, "time_on_task.n"), 0));
    printf("outcomes        submitted %s  skipped %s  released %s  expired %s  (of %s ended)\n",
           fmt_pct(a, at(r, "outcomes.submitted_share")),
           fmt_pct(b, at(r, "outcomes.skipped_share")),
           fmt_pct(c, at(r, "outcomes.released_share")),
           fmt_pct(d, at(r, "outcomes.expired_share")), fmt_num(e, at(r, "outcomes.ended"), 0));
    printf("queue           waiting %s  in progress %s  complete %s  leases live %s",
           fmt_num(a, at(r, "queue.waiting"), 0), fmt_num(b, at(r, "queue.in_progress"), 0),
           fmt_num(c, at(r, "queue.complete"), 0), fmt_num(d, at(r, "queue.leases_live"), 0));
    if (json_number_value(at(r, "queue.auto_accepted")) > 0)
        printf("  auto-accepted %s", fmt_num(a, at(r, "queue.auto_accepted"), 0));
    if (json_number_value(at(r, "queue.reviewed")) > 0)
        printf("  reviewed %s", fmt_num(a, at(r, "queue.reviewed"), 0));
    printf("\n");
    if (flags & QR_CTL_TP_NO_ETA)
        return;
    printf("ETA             ");
    json_t *p = at(r, "eta.pace");
    json_t *last = json_object_get(p, "last_annotation_ms");
    double since = json_is_number(last) && json_is_number(at(r, "now_ms"))
                       ? (json_number_value(at(r, "now_ms")) - json_number_value(last)) / 1000
                       : NAN;
    qr_ctl_print_eta(16, json_number_value(at(r, "eta.annotations_remaining")),
                     json_is_number(json_object_get(p, "seconds"))
                         ? json_number_value(json_object_get(p, "seconds"))
                         : NAN,
                     json_is_number(json_object_get(p, "per_hour"))
                         ? json_number_value(json_object_get(p, "per_hour"))
                         : NAN,
                     json_number_value(json_object_get(p, "annotations")),
                     json_number_value(json_object_get(p, "working_ms")),
                     json_number_value(json_object_get(p, "span_ms")), since,
                     json_number_value(at(r, "activity.idle_gap_ms")),
                     json_string_value(json_object_get(p, "at")));
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
    /* The rule in words (docs/THROUGHPUT.md, "fast_response"). */
    json_t *ratio = at(r, "fast_response.ratio");
    printf("\n                (flagged: whoever works much faster than the rest, which may mean "
           "not reading:\n                 a median time on task under %.0f%% of the crew's "
           "median",
           json_is_number(ratio) ? 100 * json_number_value(ratio) : 25.0);
    if (json_is_number(at(r, "fast_response.crew_median_ms")))
        printf(" of %s", fmt_dur(b, at(r, "fast_response.crew_median_ms")));
    printf(",\n                 after at least %s timed tasks in the window)\n",
           fmt_num(c, at(r, "fast_response.min_annotations"), 0));
}

/* A per-hour figure for a table cell: 12.5, or 1,674 from 100 up. */
static void fmt_rate_value(char out[CELL], double per_hour)
{
    if (per_hour >= 100)
        fmt_thousands(out, CELL, per_hour);
    else
        snprintf(out, CELL, "%.1f", per_hour);
}

/* The "per h" cell: annotations per hour of working time (ms), the one
 * definition of a rate (broker/store/sql_work.h); "-" without working time. */
static void fmt_rate_cell(char out[CELL], json_t *annotations, json_t *working_ms)
{
    double ms = json_number_value(working_ms);
    if (!json_is_number(working_ms) || ms <= 0) {
        strcpy(out, "-");
        return;
    }
    fmt_rate_value(out, json_number_value(annotations) * 3600000.0 / ms);
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
        if (json_is_number(at(report, "totals.annotations_per_working_hour")))
            fmt_rate_value(cells[c++],
                           json_number_value(at(report, "totals.annotations_per_working_hour")));
        else
            strcpy(cells[c++], "-");
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
    fmt_rate_cell(cells[c++], json_object_get(row, "annotations"),
                  json_object_get(row, "active_ms"));
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

void qr_ctl_throughput_print(json_t *r, int flags)
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
    print_summary(r, flags);
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
    long long pid, watch = 0;

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
    if (annotator && !annotator[0])
        return qr_cli_usage_error(prog, "throughput ",
                                  "throughput: --annotator wants a user id or a user name");

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
            qr_ctl_throughput_print(r, 0);
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
