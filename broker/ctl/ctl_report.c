/*
 * ctl_report.c - what a manager reads about a project: `quorumctl report`
 * (GET /v1/projects/{id}/report with the crew's throughput, once or
 * --watch), `quorumctl agreement --project` (the live agreement report) and
 * `quorumctl export` (every annotation as CSV or JSON lines). Names that
 * come from the broker are escaped for the terminal (text_out.h).
 */
#include "ctl_report.h"

#include <ctype.h>

#include "cli.h"
#include "ctl_agreement.h"
#include "ctl_throughput.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const prog = "quorumctl";

static const char report_help[] =
    "Usage: quorumctl report --project ID [--window W] [--json] [--watch[=S]]\n"
    "\n"
    "Prints a project's report: progress, annotations, duplicate and overfilled\n"
    "counts, working time, rate, ETA, agreement, the quality figures (auto-accepted\n"
    "predictions and their audit, dynamic overlap, how often humans gave the\n"
    "prediction they were shown, paused annotators, reviewed tasks), and\n"
    "annotations per annotator (with reviews, the share of each one's reviewed\n"
    "answers the review kept);\n"
    "then the crew's throughput over the window as a table, annotators as rows\n"
    "(rate, time on task, active and idle time, lease outcomes, flags) with\n"
    "totals and the queue (as `quorumctl throughput` prints it). A vendor's\n"
    "manager sees their own crew only.\n"
    "\n"
    "Working time is the time from the first to the last annotation with every\n"
    "pause of more than 5 minutes (no annotation stored) left out; a rate is\n"
    "annotations / working time. The ETA divides the annotations still needed\n"
    "by the pace of the last 10 minutes of work (the annotations of the 10\n"
    "minutes up to the latest one, over their working time). With dynamic\n"
    "overlap, the annotations still needed are those tasks need now, not those\n"
    "disagreement may add.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --window W     15m, 1h, 1d, ... or FROM..TO (default 1h)\n"
    "  --json         the broker's JSON report, its throughput under \"throughput\"\n"
    "  --watch[=S]    clear the screen and refresh every S seconds (default 5)\n"
    "\n"
    "Reads:  no file: the broker's JSON answers (GET .../report, .../throughput).\n"
    "Writes: stdout: text, one figure a line, then the table, for example\n"
    "          tasks                  812 of 2000 complete (40.6%%)\n"
    "          duplicate assignments  0  (as it should be)\n"
    "        with --json the broker's JSON report (docs/API.md, GET .../report),\n"
    "        {\"project\":7,\"tasks\":2000,\"tasks_complete\":812,...}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl report --project 3\n"
    "  quorumctl report --project 3 --window 1d --watch\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* A JSON number (integer or real) as a double; NAN-free default 0. */
static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/* A JSON number, or NAN for null or missing. */
static double num_or_nan(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* What Krippendorff's alpha says, by his usual thresholds (Krippendorff,
 * Content Analysis, 2nd ed., 2004): 0.800 and up reliable, 0.667 up to
 * 0.800 for tentative conclusions only, below 0.667 not to be relied on. */
static const char *alpha_reading(double alpha)
{
    if (alpha >= 0.8)
        return "reliable agreement";
    if (alpha >= 0.667)
        return "tentative agreement: good for tentative conclusions only";
    return "too low to rely on";
}

/* A schema project's agreement by field: a line each, its headline figures
 * (the report's agreement.fields) by the names `quorumctl agreement` prints. */
static void print_fields(json_t *fields)
{
    static const struct {
        const char *key, *name;
    } names[] = {
        {"krippendorff_alpha_nominal", "alpha nominal"},
        {"percent_agreement", "percent"},
        {"krippendorff_alpha_masi", "alpha MASI"},
        {"krippendorff_alpha_jaccard", "alpha Jaccard"},
        {"krippendorff_alpha_interval", "alpha interval"},
        {"krippendorff_alpha_ordinal", "alpha ordinal"},
        {"span_f1_exact", "F1 exact"},
        {"span_f1_overlap", "F1 overlap"},
        {"token_alpha_nominal", "token alpha"},
        {"box_f1", "F1 at IoU 0.5"},
        {"box_mean_iou", "mean IoU"},
        {"text_exact_agreement", "exact"},
        {"text_mean_similarity", "similarity"},
    };
    if (!json_is_object(fields) || json_object_size(fields) == 0)
        return;
    printf("%-22s (quorumctl agreement --project ID for every figure)\n", "agreement by field");
    const char *field;
    json_t *f;
    json_object_foreach(fields, field, f)
    {
        char head[128];
        snprintf(head, sizeof head, "%s (%s)", field,
                 json_string_value(json_object_get(f, "type")));
        printf("  %-20s", head);
        int shown = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            json_t *v = json_object_get(f, names[k].key);
            if (!v)
                continue;
            if (json_is_number(v))
                printf("%s%s %.3f", shown++ ? ", " : " ", names[k].name, json_number_value(v));
            else
                printf("%s%s undefined", shown++ ? ", " : " ", names[k].name);
        }
        printf("  (%lld tasks)\n",
               (long long)json_integer_value(json_object_get(f, "pairable_tasks")));
    }
}

/* What dynamic overlap did (the report's quality.dynamic_overlap), when
 * the project has it: annotations per complete task, those saved against
 * a fixed overlap_max, and the measure that decided (support or
 * confidence, below its threshold). */
static void print_dynamic_overlap(json_t *d)
{
    if (!json_is_object(d))
        return;
    json_t *per = json_object_get(d, "per_task");
    printf("%-22s %" JSON_INTEGER_FORMAT " complete tasks, %" JSON_INTEGER_FORMAT " annotations (",
           "dynamic overlap", json_integer_value(json_object_get(d, "tasks_complete")),
           json_integer_value(json_object_get(d, "annotations")));
    if (json_is_number(per))
        printf("%.2f per task", json_number_value(per));
    else
        printf("none yet");
    const char *measure = json_string_value(json_object_get(d, "measure"));
    printf("), %" JSON_INTEGER_FORMAT " annotators added, %" JSON_INTEGER_FORMAT
           " annotations saved against a fixed maximum (one more while %s < %g)\n",
           json_integer_value(json_object_get(d, "extensions")),
           json_integer_value(json_object_get(d, "saved_vs_max")), measure ? measure : "support",
           json_number_value(json_object_get(d, "threshold")));
}

/* How often humans gave the prediction they were shown (the report's
 * quality.shown_predictions), when the project shows predictions. */
static void print_shown_predictions(json_t *d)
{
    if (!json_is_object(d))
        return;
    json_t *rate = json_object_get(d, "rate");
    printf("%-22s humans gave the model's prediction in %" JSON_INTEGER_FORMAT
           " of %" JSON_INTEGER_FORMAT " labels",
           "predictions shown", json_integer_value(json_object_get(d, "accepted")),
           json_integer_value(json_object_get(d, "compared")));
    if (json_is_number(rate))
        printf(" (%.1f %%)", 100 * json_number_value(rate));
    printf("\n");
}

/* Annotators paused below the project's gold accuracy (the report's
 * quality.paused_annotators), live and past, one line each. */
static void print_paused(json_t *q)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(q, "paused_annotators"), i, p)
    {
        const char *back = json_string_value(json_object_get(p, "reinstated_at"));
        const char *n = json_string_value(json_object_get(p, "annotator"));
        const char *why = json_string_value(json_object_get(p, "reason"));
        const char *when = json_string_value(json_object_get(p, "paused_at"));
        char name[256], reason[512], at[64], rat[64];
        qr_term_escape_to(name, sizeof name, n ? n : "?");
        qr_term_escape_to(reason, sizeof reason, why ? why : "");
        qr_term_escape_to(at, sizeof at, when ? when : "?");
        qr_term_escape_to(rat, sizeof rat, back ? back : "");
        printf("%-22s %s: %s; paused at %s, %s%s\n", "paused", name, reason, at,
               back ? "reinstated at " : "still paused", back ? rat : "");
    }
}

/* Auto-accepted predictions and their audit (the report's quality), when
 * the project auto-accepted or audited any; dynamic overlap; predictions
 * shown to annotators; paused annotators. */
static void print_quality(json_t *q)
{
    print_dynamic_overlap(json_object_get(q, "dynamic_overlap"));
    print_shown_predictions(json_object_get(q, "shown_predictions"));
    json_int_t accepted = json_integer_value(json_object_get(q, "auto_accepted"));
    json_int_t audited = json_integer_value(json_object_get(q, "audited"));
    print_paused(q);
    json_int_t reviewed = json_integer_value(json_object_get(q, "reviewed"));
    if (reviewed > 0)
        printf("%-22s %" JSON_INTEGER_FORMAT " tasks, their answer the reviewer's\n", "reviewed",
               reviewed);
    if (accepted == 0 && audited == 0)
        return;
    printf("%-22s %" JSON_INTEGER_FORMAT
           " tasks completed by a confident prediction, %" JSON_INTEGER_FORMAT
           " human labels saved\n",
           "auto-accepted", accepted, json_integer_value(json_object_get(q, "human_labels_saved")));
    json_t *acc = json_object_get(q, "audited_accuracy");
    printf("%-22s %" JSON_INTEGER_FORMAT " confident tasks sent to humans instead; ", "audit",
           audited);
    if (json_is_number(json_object_get(acc, "value")))
        printf("the prediction matched their consensus on %" JSON_INTEGER_FORMAT
               " of %" JSON_INTEGER_FORMAT ": accuracy %.3f, 95%% interval %.3f-%.3f\n",
               json_integer_value(json_object_get(acc, "agree")),
               json_integer_value(json_object_get(acc, "compared")),
               json_number_value(json_object_get(acc, "value")),
               json_number_value(json_object_get(acc, "low")),
               json_number_value(json_object_get(acc, "high")));
    else
        printf("no human consensus on them yet\n");
}

/* The two agreement lines, each with what it means and what it counts. */
static void print_agreement(json_t *agreement)
{
    if (!json_is_object(agreement)) {
        printf("%-22s not shown to another organization's manager: it covers every "
               "organization's annotators\n",
               "agreement");
        return;
    }
    double pairable = json_number_value(json_object_get(agreement, "pairable_tasks"));
    double pa = num_or_nan(json_object_get(agreement, "percent_agreement"));
    double alpha = num_or_nan(json_object_get(agreement, "krippendorff_alpha_nominal"));
    json_t *fields = json_object_get(agreement, "fields");
    if (pairable <= 0 && json_object_size(fields) > 0) {
        /* A schema project without a choice or rating field has no
         * top-level figures: its fields say it all. */
        print_fields(fields);
        return;
    }
    if (pairable <= 0) {
        printf("%-22s none yet: no task has two or more annotations to compare\n", "agreement");
        return;
    }
    if (isnan(pa))
        printf("%-22s undefined\n", "percent agreement");
    else
        printf("%-22s %.1f%%  of the pairs of annotations of one task, the share with the same "
               "label\n%-22s (over %.0f tasks with two or more annotations)\n",
               "percent agreement", 100 * pa, "", pairable);
    if (isnan(alpha))
        printf("%-22s undefined: every annotation compared has the same label, so agreement "
               "cannot be told from chance\n",
               "Krippendorff's alpha");
    else
        printf("%-22s %.3f  %s\n%-22s (agreement beyond chance, over the same %.0f tasks; "
               ">= 0.80 is reliable,\n%-22s  0.67 to 0.80 tentative, < 0.67 too low to use)\n",
               "Krippendorff's alpha", alpha, alpha_reading(alpha), "", pairable, "");
    print_fields(fields);
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

/* The manager-facing text rendering of GET /v1/projects/{id}/report:
 * percentages as percentages, rates over working time (store/sql_work.h),
 * each figure with what it counts. */
static void print_report(json_t *r)
{
    double tasks = num(r, "tasks"), complete = num(r, "tasks_complete");
    json_t *per = json_object_get(r, "per_annotator");
    json_t *pace = json_object_get(r, "pace");
    char a[48], rate[64];

    printf("%-22s %.0f\n", "project", num(r, "project"));
    if (tasks > 0)
        printf("%-22s %.0f of %.0f complete (%.1f%%)\n", "tasks", complete, tasks,
               100.0 * complete / tasks);
    else
        printf("%-22s none imported yet\n", "tasks");
    printf("%-22s %.0f stored, by %.0f annotator%s\n", "annotations", num(r, "annotations"),
           num(r, "annotators"), num(r, "annotators") == 1 ? "" : "s");
    printf("%-22s %.0f%s\n", "duplicate assignments", num(r, "duplicate_assignments"),
           num(r, "duplicate_assignments") > 0
               ? "  (should be 0: an annotator labeled a task twice)"
               : "  (as it should be)");
    printf("%-22s %.0f%s\n", "overfilled tasks", num(r, "overfilled_tasks"),
           num(r, "overfilled_tasks") > 0 ? "  (should be 0: more annotations than required)"
                                          : "  (as it should be)");
    double idle_ms = 1000 * num(r, "idle_gap_seconds");
    printf("%-22s %s  (from the first to the last annotation, pauses over %.0f minutes left "
           "out)\n",
           "working time", qr_ctl_fmt_duration(a, 1000 * num(r, "working_seconds")),
           idle_ms / 60000);
    double per_hour = num_or_nan(json_object_get(r, "annotations_per_hour"));
    if (isnan(per_hour))
        printf("%-22s none yet (it needs working time)\n", "rate");
    else
        printf("%-22s %s  (annotations / working time)\n", "rate", qr_ctl_fmt_rate(rate, per_hour));
    printf("%-22s ", "ETA");
    qr_ctl_print_eta(
        23, num(r, "annotations_remaining"), num_or_nan(json_object_get(r, "eta_seconds")),
        num_or_nan(json_object_get(pace, "per_hour")), num(pace, "annotations"),
        1000 * num(pace, "working_seconds"), 1000 * num(pace, "span_seconds"),
        num_or_nan(json_object_get(r, "seconds_since_last_annotation")), idle_ms, NULL);
    print_agreement(json_object_get(r, "agreement"));
    print_quality(json_object_get(r, "quality"));

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
    /* With reviews, the share of each one's reviewed answers the review kept. */
    int reviewed =
        json_integer_value(json_object_get(json_object_get(r, "quality"), "reviewed")) > 0;
    printf("\n%-*s  %11s%s\n", width, "annotator", "annotations",
           reviewed ? "  review accepted" : "");
    json_array_foreach(per, i, row)
    {
        char esc[512]; /* a name cannot forge rows (text_out.h) */
        printf("%-*s  %11.0f", width,
               qr_term_escape_to(esc, sizeof esc,
                                 annotator_label(r, row, "annotator", "", name, sizeof name)),
               num(row, "annotations"));
        json_t *acc = json_object_get(row, "review_acceptance");
        if (reviewed && json_is_number(json_object_get(acc, "value")))
            printf("  %.4f of %" JSON_INTEGER_FORMAT,
                   json_number_value(json_object_get(acc, "value")),
                   json_integer_value(json_object_get(acc, "compared")));
        else if (reviewed)
            printf("  -");
        printf("\n");
    }
}

int qr_ctl_report(int argc, char **argv, qr_client_config_t *cfg)
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
            qr_ctl_throughput_print(tp, QR_CTL_TP_NO_ETA);
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

/* "  95% interval 0.8343-0.9543" of an accuracy with "low" and "high",
 * then the line's end. */
static void print_interval(const json_t *acc)
{
    json_t *low = json_object_get(acc, "low"), *high = json_object_get(acc, "high");
    if (json_is_number(low) && json_is_number(high))
        printf("  95%% interval %.4f-%.4f", json_number_value(low), json_number_value(high));
    printf("\n");
}

/* "gold accuracy  0.9100  (82 of 90 judgements on gold tasks)  95% interval
 * 0.8343-0.9543", or why there is none. */
static void print_gold_accuracy(json_t *o)
{
    json_t *gold = json_object_get(json_object_get(o, "gold"), "accuracy");
    if (json_is_number(json_object_get(gold, "value"))) {
        printf("%-28s %.4f  (%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
               " judgements on gold tasks)",
               "gold accuracy", json_number_value(json_object_get(gold, "value")),
               json_integer_value(json_object_get(gold, "agree")),
               json_integer_value(json_object_get(gold, "compared")));
        print_interval(gold);
    } else if (json_is_object(gold))
        printf("%-28s n/a (%s)\n", "gold accuracy",
               json_string_value(json_object_get(gold, "reason")));
}

/* Names a row's annotator as the tables do ("name@organization" for
 * another organization's), in place. */
static void relabel(json_t *report, json_t *row, const char *key, const char *prefix)
{
    char name[512];
    json_object_set_new(row, key,
                        json_string(annotator_label(report, row, key, prefix, name, sizeof name)));
}

static void print_dawid_skene(json_t *o);

/* --per-item: the offline command's text (coefficients, labels, pairwise,
 * per annotator, per item), then the gold answers. */
static void show_agreement_items(json_t *o)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(o, "per_annotator"), i, row)
    {
        relabel(o, row, "annotator", "");
    }
    json_array_foreach(json_object_get(o, "pairwise"), i, row)
    {
        relabel(o, row, "a", "a_");
        relabel(o, row, "b", "b_");
    }
    char source[64];
    snprintf(source, sizeof source, "project %" JSON_INTEGER_FORMAT " (live)",
             json_integer_value(json_object_get(o, "project")));
    qr_ctl_agreement_text(stdout, o, source);
    printf("\nGold answers\n");
    print_gold_accuracy(o);
    json_array_foreach(json_object_get(json_object_get(o, "gold"), "per_annotator"), i, row)
    {
        char name[512];
        printf("  %-26s %.4f  (%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT ")",
               annotator_label(o, row, "annotator", "", name, sizeof name),
               json_number_value(json_object_get(row, "accuracy")),
               json_integer_value(json_object_get(row, "agree")),
               json_integer_value(json_object_get(row, "compared")));
        print_interval(row);
    }
    print_dawid_skene(o);
}

/* With --method dawid_skene: the crew's model, an annotator a line. */
static void print_dawid_skene(json_t *o)
{
    json_t *ds = json_object_get(o, "dawid_skene");
    if (!json_is_object(ds))
        return;
    printf("\nDawid-Skene (%" JSON_INTEGER_FORMAT " iterations, %s)\n%-28s %10s  %s\n",
           json_integer_value(json_object_get(ds, "iterations")),
           json_is_true(json_object_get(ds, "converged")) ? "converged" : "stopped at the cap",
           "annotator", "judgements", "estimated accuracy");
    size_t i;
    json_t *row;
    char name[512];
    json_array_foreach(json_object_get(ds, "per_annotator"), i, row)
    {
        printf("%-28s %10" JSON_INTEGER_FORMAT "  %.4f\n",
               annotator_label(o, row, "annotator", "", name, sizeof name),
               json_integer_value(json_object_get(row, "judgements")),
               json_number_value(json_object_get(row, "estimated_accuracy")));
    }
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
    print_gold_accuracy(o);
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
    print_dawid_skene(o);
}

static const char live_agreement_help[] =
    "usage: quorumctl agreement --project ID [--json] [--fresh] [--per-item]\n"
    "                           [--method dawid_skene] [connection flags]\n"
    "       quorumctl agreement FILE.csv [--json] [--per-item]   (offline)\n"
    "\n"
    "With --project, the broker's live agreement report over the project's\n"
    "annotations (GET /v1/projects/ID/agreement): the same coefficients as the\n"
    "offline command on `quorumctl export --project ID`, plus agreement with\n"
    "gold answers. Reports are at most a second old; --fresh waits for one\n"
    "that includes every annotation committed before the request.\n"
    "\n"
    "  --project ID   the project's id\n"
    "  --json         the broker's JSON report\n"
    "  --fresh        wait for a report that includes every annotation so far\n"
    "  --per-item     the offline command's sections too (labels, pairwise, per\n"
    "                 annotator) and one line per task: its agreement and\n"
    "                 majority label (computed for this request, like --fresh)\n"
    "  --method dawid_skene  also the Dawid-Skene model of the crew (a project\n"
    "                 of one choice): each annotator's estimated accuracy,\n"
    "                 without gold answers (computed for this request)\n"
    "\n"
    "Reads:  no file: the broker's JSON answer (GET .../agreement).\n"
    "Writes: stdout: text, one coefficient a line, then one annotator a line:\n"
    "          krippendorff_alpha_nominal   0.7312\n"
    "          gold accuracy                0.9100  (82 of 90 judgements on gold tasks)"
    "  95% interval 0.8343-0.9543\n"
    "        with --json the broker's JSON (docs/API.md, GET .../agreement),\n"
    "        {\"counts\":{\"items\":1400,...},\"metrics\":{...},\"gold\":{...},...}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl agreement --project 7 --fresh\n"
    "  quorumctl agreement --project 7 --per-item\n"
    "  quorumctl agreement --project 7 --method dawid_skene\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* `agreement --project ID`: the live report; anything else is offline. */
int qr_ctl_live_agreement(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *method = NULL;
    int as_json = 0, fresh = 0, per_item = 0;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, live_agreement_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--method", &method)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--fresh") == 0) {
            fresh = 1;
        } else if (strcmp(argv[i], "--per-item") == 0) {
            per_item = 1;
        } else {
            return qr_cli_usage_error(prog, "agreement ", "agreement: unexpected argument '%s'",
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "agreement ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (method && strcmp(method, "majority") && strcmp(method, "dawid_skene"))
        return qr_cli_usage_error(prog, "agreement ",
                                  "agreement: --method is majority or dawid_skene; got %s", method);
    int ds = method && !strcmp(method, "dawid_skene");
    char *path = qr_xasprintf(QR_API_AGREEMENT("%lld") "?fresh=%d&per_item=%d&dawid_skene=%d", pid,
                              fresh, per_item, ds);
    int rc = get_and_print(cfg, path, as_json, per_item ? show_agreement_items : show_agreement);
    free(path);
    return rc;
}

static const char export_help[] =
    "usage: quorumctl export --project ID [--format csv|jsonl|ls]\n"
    "                        [--kind annotations|consensus] [--since CURSOR]\n"
    "                        [--method majority|dawid_skene]\n"
    "                        [connection flags]\n"
    "\n"
    "Writes the project's labels to stdout as they stream from the broker (never\n"
    "held whole in memory), and the export's cursor to stderr as the line\n"
    "`X-Quorum-Cursor: CURSOR`. Given to --since, a cursor makes the next export\n"
    "return only what changed after it: a job that exports with the cursor of its\n"
    "last run gets every annotation exactly once.\n"
    "\n"
    "  --format csv   (default) RFC 4180 CSV with a header line\n"
    "  --format jsonl one JSON object per line\n"
    "  --format ls    a JSON array of Label Studio tasks (data, meta.external_id,\n"
    "                 predictions, annotations with result in Label Studio's\n"
    "                 shape, completed_by, lead_time, was_cancelled,\n"
    "                 ground_truth) that Label Studio imports back\n"
    "  --kind annotations  (default) one row per annotation: task_id, annotator\n"
    "                 (name@organization for another organization than the\n"
    "                 project's in CSV), label, created_at, annotator_id,\n"
    "                 organization, external_id, lead_time (seconds),\n"
    "                 annotation_id, event (annotation; undo in an increment).\n"
    "                 The CSV is the input of `quorumctl agreement FILE.csv`.\n"
    "  --kind consensus    one row per task: task_id, external_id, consensus\n"
    "                 (the majority label, empty/null on a tie or with fewer\n"
    "                 than two annotations where two or more are asked for),\n"
    "                 support (its share), annotators, gold, data, auto_accepted\n"
    "  --method dawid_skene  with --kind consensus: each task's label from the\n"
    "                 Dawid-Skene model of the crew (EM over each annotator's\n"
    "                 confusion matrix), support its posterior; annotators who\n"
    "                 are often right count for more. Default majority\n"
    "  --since CURSOR only what changed after the export that printed CURSOR\n"
    "\n"
    "Reads:  no file: the broker's export (GET /v1/projects/{id}/export), streamed.\n"
    "Writes: stdout: csv\n"
    "          task_id,annotator,label,created_at,annotator_id,organization,...\n"
    "          1,bob,positive,2026-12-05T23:57:26.882Z,4,owner,...\n"
    "        or jsonl ({\"task_id\":1,\"annotator\":\"bob\",\"label\":\"positive\",...})\n"
    "        or ls (a JSON array of Label Studio tasks); stderr: the cursor line.\n"
    "\n"
    "Examples:\n"
    "  quorumctl export --project 3 > annotations.csv\n"
    "  quorumctl export --project 3 --kind consensus --format jsonl\n"
    "  quorumctl export --project 3 --format ls > labelstudio.json\n"
    "  quorumctl export --project 3 --format jsonl 2>cursor.txt >all.jsonl\n"
    "  quorumctl export --project 3 --format jsonl \\\n"
    "    --since \"$(sed -n 's/^X-Quorum-Cursor: //p' cursor.txt)\" >new.jsonl\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

/* s percent-encoded for a query string (every byte but unreserved ones). */
static char *query_escape(const char *s)
{
    qr_buf_t b;
    qr_buf_init(&b);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == ':' ||
            ch == ',')
            qr_buf_append(&b, s, 1);
        else
            qr_buf_appendf(&b, "%%%02X", ch);
    }
    qr_buf_append(&b, "", 1);
    return b.data;
}

int qr_ctl_export(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *format = "csv", *kind = "annotations", *since = NULL,
               *method = NULL;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, export_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--format", &format)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--kind", &kind)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--since", &since)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--method", &method)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "export ", "export: unexpected argument '%s'", argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "export ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (strcmp(format, "csv") && strcmp(format, "jsonl") && strcmp(format, "ls"))
        return qr_cli_usage_error(prog, "export ", "export: --format must be csv, jsonl or ls");
    if (strcmp(kind, "annotations") && strcmp(kind, "consensus"))
        return qr_cli_usage_error(prog, "export ",
                                  "export: --kind must be annotations or consensus");
    if (since && !since[0])
        return qr_cli_usage_error(prog, "export ", "export: --since needs a cursor");
    if (method && strcmp(method, "majority") && strcmp(method, "dawid_skene"))
        return qr_cli_usage_error(prog, "export ",
                                  "export: --method must be majority or dawid_skene");
    if (method && strcmp(kind, "consensus"))
        return qr_cli_usage_error(prog, "export ",
                                  "export: --method is how the consensus is taken: it goes with "
                                  "--kind consensus");
    char *esc = since ? query_escape(since) : NULL;
    char *path = qr_xasprintf(QR_API_EXPORT("%lld") "?format=%s&kind=%s%s%s%s%s", pid, format, kind,
                              esc ? "&since=" : "", esc ? esc : "", method ? "&method=" : "",
                              method ? method : "");
    free(esc);
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK) {
        free(path);
        return rc;
    }
    call.sink = stdout;
    if (qr_cli_call(&call, "GET", path, NULL, NULL) < 0) {
        fprintf(stderr, "%s: %s\n", prog, call.message);
        rc = QR_EXIT_ERROR;
    } else if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write to stdout\n", prog);
        rc = QR_EXIT_ERROR;
    } else if (!call.cursor) {
        fprintf(stderr, "%s: the broker sent no X-Quorum-Cursor\n", prog);
        rc = QR_EXIT_ERROR;
    } else {
        fprintf(stderr, "X-Quorum-Cursor: %s\n", call.cursor);
    }
    qr_client_call_free(&call);
    free(path);
    return rc;
}
