/*
 * ctl_project.c - `quorumctl project create` (POST /v1/projects): a manager
 * makes a labeling project, with a label list or a label schema
 * (ctl_schema.c reads it); ctl_import.c fills it with tasks.
 */
#include "ctl_project.h"

#include "cli.h"
#include "ctl_schema.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const prog = "quorumctl";

int qr_ctl_auto_accept_flags(const char *conf, const char *audit, json_t *body, const char *cmd)
{
    double v;
    char sub[64];
    snprintf(sub, sizeof sub, "%s ", cmd);
    if (conf && !strcmp(conf, "off")) {
        json_object_set_new(body, "auto_accept_confidence", json_null());
    } else if (conf) {
        if (qr_cli_parse_double(conf, 0, 1, &v) < 0) {
            qr_cli_usage_error(prog, sub,
                               "%s: --auto-accept-confidence must be a score from 0 to 1 (or "
                               "off), not '%s'",
                               cmd, conf);
            return -1;
        }
        json_object_set_new(body, "auto_accept_confidence", json_real(v));
    }
    if (audit) {
        if (qr_cli_parse_double(audit, 0, 1, &v) < 0) {
            qr_cli_usage_error(prog, sub,
                               "%s: --auto-accept-audit must be a share from 0 to 1, not '%s'", cmd,
                               audit);
            return -1;
        }
        json_object_set_new(body, "auto_accept_audit", json_real(v));
    }
    return 0;
}

int qr_ctl_show_predictions_flag(const char *v, json_t *body, const char *cmd)
{
    if (!v)
        return 0;
    if (strcmp(v, "on") && strcmp(v, "off")) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s ", cmd);
        qr_cli_usage_error(prog, sub, "%s: --show-predictions must be on or off, not '%s'", cmd, v);
        return -1;
    }
    json_object_set_new(body, "show_predictions", json_boolean(!strcmp(v, "on")));
    return 0;
}

int qr_ctl_dynamic_overlap_flags(const char *min, const char *max, const char *thr, json_t *body,
                                 const char *cmd)
{
    const char *flags[] = {"--overlap-min", "--overlap-max", "--overlap-agreement-threshold"};
    const char *keys[] = {"overlap_min", "overlap_max", "overlap_agreement_threshold"};
    const char *vals[] = {min, max, thr};
    char sub[64];
    snprintf(sub, sizeof sub, "%s ", cmd);
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        if (!strcmp(vals[i], "off")) {
            json_object_set_new(body, keys[i], json_null());
            continue;
        }
        long long n;
        double v;
        if (i < 2 && qr_cli_parse_ll(vals[i], 1, 100, &n) == 0) {
            json_object_set_new(body, keys[i], json_integer(n));
        } else if (i == 2 && qr_cli_parse_double(vals[i], 0, 1, &v) == 0) {
            json_object_set_new(body, keys[i], json_real(v));
        } else {
            qr_cli_usage_error(prog, sub, "%s: %s must be %s (or off), not '%s'", cmd, flags[i],
                               i < 2 ? "an integer from 1 to 100" : "a support from 0 to 1",
                               vals[i]);
            return -1;
        }
    }
    return 0;
}

int qr_ctl_overlap_measure_flags(const char *measure, const char *prior, json_t *body,
                                 const char *cmd)
{
    char sub[64];
    snprintf(sub, sizeof sub, "%s ", cmd);
    if (measure) {
        if (strcmp(measure, "support") && strcmp(measure, "confidence")) {
            qr_cli_usage_error(prog, sub,
                               "%s: --overlap-measure must be support or confidence, not '%s'", cmd,
                               measure);
            return -1;
        }
        json_object_set_new(body, "overlap_measure", json_string(measure));
    }
    if (prior) {
        double v;
        if (qr_cli_parse_double(prior, 0, 1, &v) < 0 || !(v > 0 && v < 1)) {
            qr_cli_usage_error(prog, sub,
                               "%s: --overlap-prior-accuracy must be a number above 0 and below "
                               "1, not '%s'",
                               cmd, prior);
            return -1;
        }
        json_object_set_new(body, "overlap_prior_accuracy", json_real(v));
    }
    return 0;
}

int qr_ctl_gold_take(qr_ctl_gold_flags_t *g, int argc, char **argv, int *i)
{
    int r;
    if ((r = qr_cli_take_value(prog, argc, argv, i, "--gold-rate", &g->rate)) != 0 ||
        (r = qr_cli_take_value(prog, argc, argv, i, "--gold-onboarding", &g->onboarding)) != 0 ||
        (r = qr_cli_take_value(prog, argc, argv, i, "--gold-min-accuracy", &g->min_accuracy)) !=
            0 ||
        (r = qr_cli_take_value(prog, argc, argv, i, "--gold-min-count", &g->min_count)) != 0)
        return r;
    return 0;
}

int qr_ctl_gold_flags(const qr_ctl_gold_flags_t *g, json_t *body, const char *cmd)
{
    double v;
    long long n;
    char sub[64];
    snprintf(sub, sizeof sub, "%s ", cmd);
    if (g->rate) {
        if (qr_cli_parse_double(g->rate, 0, 1, &v) < 0) {
            qr_cli_usage_error(prog, sub, "%s: --gold-rate must be a share from 0 to 1, not '%s'",
                               cmd, g->rate);
            return -1;
        }
        json_object_set_new(body, "gold_rate", json_real(v));
    }
    if (g->onboarding) {
        if (qr_cli_parse_ll(g->onboarding, 0, 10000, &n) < 0) {
            qr_cli_usage_error(prog, sub, "%s: --gold-onboarding must be 0-10000, not '%s'", cmd,
                               g->onboarding);
            return -1;
        }
        json_object_set_new(body, "gold_onboarding", json_integer(n));
    }
    if (g->min_accuracy && !strcmp(g->min_accuracy, "off")) {
        json_object_set_new(body, "gold_min_accuracy", json_null());
    } else if (g->min_accuracy) {
        if (qr_cli_parse_double(g->min_accuracy, 0, 1, &v) < 0) {
            qr_cli_usage_error(prog, sub,
                               "%s: --gold-min-accuracy must be an accuracy from 0 to 1 (or "
                               "off), not '%s'",
                               cmd, g->min_accuracy);
            return -1;
        }
        json_object_set_new(body, "gold_min_accuracy", json_real(v));
    }
    if (g->min_count) {
        if (qr_cli_parse_ll(g->min_count, 1, 100000, &n) < 0) {
            qr_cli_usage_error(prog, sub, "%s: --gold-min-count must be 1-100000, not '%s'", cmd,
                               g->min_count);
            return -1;
        }
        json_object_set_new(body, "gold_min_count", json_integer(n));
    }
    return 0;
}

int qr_ctl_review_flags(const char *mode, const char *share, const char *threshold, json_t *body,
                        const char *cmd)
{
    double v;
    char sub[64];
    snprintf(sub, sizeof sub, "%s ", cmd);
    if (mode) {
        if (strcmp(mode, "none") && strcmp(mode, "all") && strcmp(mode, "share") &&
            strcmp(mode, "low_agreement")) {
            qr_cli_usage_error(prog, sub,
                               "%s: --review-mode must be none, all, share or low_agreement, "
                               "not '%s'",
                               cmd, mode);
            return -1;
        }
        json_object_set_new(body, "review_mode", json_string(mode));
    }
    if (share) {
        if (qr_cli_parse_double(share, 0, 1, &v) < 0) {
            qr_cli_usage_error(
                prog, sub, "%s: --review-share must be a share from 0 to 1, not '%s'", cmd, share);
            return -1;
        }
        json_object_set_new(body, "review_share", json_real(v));
    }
    if (threshold) {
        if (qr_cli_parse_double(threshold, 0, 1, &v) < 0) {
            qr_cli_usage_error(prog, sub,
                               "%s: --review-agreement-threshold must be a share from 0 to 1, "
                               "not '%s'",
                               cmd, threshold);
            return -1;
        }
        json_object_set_new(body, "review_agreement_threshold", json_real(v));
    }
    return 0;
}

void qr_ctl_gold_print(json_t *p)
{
    double rate = json_number_value(json_object_get(p, "gold_rate"));
    json_int_t onb = json_integer_value(json_object_get(p, "gold_onboarding"));
    json_t *min = json_object_get(p, "gold_min_accuracy");
    if (rate > 0 || onb > 0)
        printf("gold_rate: %g\ngold_onboarding: %" JSON_INTEGER_FORMAT "\n", rate, onb);
    else
        printf("gold served: off\n");
    if (json_is_number(min))
        printf("gold_min_accuracy: %g\ngold_min_count: %" JSON_INTEGER_FORMAT "\n",
               json_number_value(min), json_integer_value(json_object_get(p, "gold_min_count")));
    else
        printf("gold_min_accuracy: off\n");
}

static const char project_help[] =
    "Usage: quorumctl project create --name N (--labels a,b,c | --schema FILE|-)\n"
    "                 [--annotations-per-task K] [--lease-ttl-ms MS]\n"
    "                 [--max-leases-per-annotator N]\n"
    "                 [--auto-accept-confidence C [--auto-accept-audit S]]\n"
    "                 [--overlap-min N --overlap-max M --overlap-agreement-threshold T\n"
    "                  [--overlap-measure support|confidence] [--overlap-prior-accuracy Q]]\n"
    "                 [--show-predictions on|off] [--gold-rate P] [--gold-onboarding N]\n"
    "                 [--gold-min-accuracy A [--gold-min-count N]]\n"
    "                 [--review-mode none|all|share|low_agreement] [--review-share S]\n"
    "                 [--review-agreement-threshold T] [--json]\n"
    "\n"
    "Creates a labeling project (POST /v1/projects) and prints its id alone on\n"
    "stdout, or the whole project object with --json.\n"
    "\n"
    "  --name N                   project name\n"
    "  --labels a,b,c             the label choices, comma-separated (1-1000):\n"
    "                             each task gets one of them\n"
    "  --schema FILE|-            a label schema instead: one or more named fields\n"
    "                             (choice, multi_choice, rating, spans, boxes, text),\n"
    "                             from a JSON file (- for stdin) holding\n"
    "                             {\"fields\": [...]} or {\"schema\": {\"fields\": [...]}}\n"
    "                             (docs/API.md, \"Label schemas\"); fixed once made\n"
    "  --annotations-per-task K   annotations each task needs (broker default 1)\n"
    "  --lease-ttl-ms MS          how long a lease lasts (broker default 60000)\n"
    "  --max-leases-per-annotator N   live leases one annotator may hold at once\n"
    "                             (1-10000; broker default 10)\n"
    "  --auto-accept-confidence C   a task imported with a prediction scored C or\n"
    "                             more (0-1) completes without a human, as\n"
    "                             auto-accepted (default: none is)\n"
    "  --auto-accept-audit S      the share of those sent to humans anyway (0-1,\n"
    "                             drawn uniformly), so the report can tell how\n"
    "                             often the confident predictions are right\n"
    "  --overlap-min N --overlap-max M --overlap-agreement-threshold T\n"
    "                             dynamic overlap, the three together: each task\n"
    "                             gets N annotations (N is annotations-per-task),\n"
    "                             then one more at a time while the share of its\n"
    "                             annotations that agree on its most common value\n"
    "                             is below T (0-1), up to M (N <= M <= 100)\n"
    "  --overlap-measure support|confidence   what T is compared with: support\n"
    "                             (default: the share above) or confidence (the\n"
    "                             posterior probability of the task's consensus,\n"
    "                             each annotator right with their smoothed gold\n"
    "                             accuracy, else --overlap-prior-accuracy)\n"
    "  --overlap-prior-accuracy Q   the accuracy assumed of an annotator without\n"
    "                             gold answers (above 0, below 1; default 0.75)\n"
    "  --show-predictions on|off  each leased task comes with its model prediction\n"
    "                             (pre-annotation: the labeler shows it, `a`\n"
    "                             accepts it; the exec bridge gets it); the report\n"
    "                             says how often humans gave it (default off)\n"
    "  --gold-rate P              the share of each annotator's tasks, after the\n"
    "                             onboarding ones, that are gold tasks (0-1;\n"
    "                             tasks imported with a gold answer; default 0)\n"
    "  --gold-onboarding N        each annotator's first N tasks are gold tasks\n"
    "  --gold-min-accuracy A      pause an annotator whose accuracy on gold tasks\n"
    "                             is below A (0-1) after --gold-min-count of them\n"
    "                             (default 10), until `quorumctl reinstate`\n"
    "  --review-mode M            which completed tasks reviewers see: none (default),\n"
    "                             all, share (--review-share of them) or\n"
    "                             low_agreement (majority share below\n"
    "                             --review-agreement-threshold, default 0.5, or a tie)\n"
    "  --review-share S           the share reviewed under --review-mode share (0-1)\n"
    "  --review-agreement-threshold T   the majority share under which a task is\n"
    "                             reviewed under --review-mode low_agreement (0-1)\n"
    "  --json                     print the project as JSON\n"
    "\n"
    "Reads:  with --schema, FILE (or stdin): a JSON label schema; the broker's\n"
    "        JSON answer (POST /v1/projects).\n"
    "Writes: stdout: the new project's id (7); with --json the project object,\n"
    "        {\"id\":7,\"name\":\"sentiment\",\"labels\":[\"positive\",\"negative\"],...}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl project create --name sentiment --labels positive,negative,neutral \\\n"
    "      --annotations-per-task 3\n"
    "  echo '{\"fields\": [{\"name\": \"score\", \"type\": \"rating\", \"min\": 1, \"max\": 5},\n"
    "        {\"name\": \"note\", \"type\": \"text\", \"required\": false}]}' |\n"
    "      quorumctl project create --name reviews --schema -\n"
    "  quorumctl project create --name triage --labels spam,ham \\\n"
    "      --auto-accept-confidence 0.95 --auto-accept-audit 0.1\n"
    "  quorumctl project create --name triage --labels spam,ham \\\n"
    "      --overlap-min 2 --overlap-max 5 --overlap-agreement-threshold 0.7\n"
    "  quorumctl project create --name triage --labels spam,ham --overlap-min 2 \\\n"
    "      --overlap-max 5 --overlap-agreement-threshold 0.95 --overlap-measure confidence\n"
    "  quorumctl project create --name checked --labels spam,ham --gold-rate 0.1 \\\n"
    "      --gold-onboarding 10 --gold-min-accuracy 0.8 --gold-min-count 20\n"
    "\n"
    "Other project commands, each with its own --help: list, show, update,\n"
    "archive, unarchive, delete, share, unshare, shares, pause, resume.\n"
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

int qr_ctl_project(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *name = NULL, *labels = NULL, *per_task = NULL, *ttl = NULL, *max_live = NULL,
               *schema_file = NULL, *aa_conf = NULL, *aa_audit = NULL, *ov_min = NULL,
               *ov_max = NULL, *ov_thr = NULL, *shown = NULL, *rv_mode = NULL, *rv_share = NULL,
               *rv_threshold = NULL, *ov_measure = NULL, *ov_prior = NULL;
    qr_ctl_gold_flags_t gold = {0};
    int as_json = 0;
    long long k = 0, ttl_ms = 0, max_leases = 0;

    if (argc < 2 || qr_cli_is_help(argv[1])) {
        qr_cli_help(argc < 2 ? stderr : stdout, project_help);
        return argc < 2 ? QR_EXIT_USAGE : QR_EXIT_OK;
    }
    if (strcmp(argv[1], "create") != 0)
        return qr_cli_usage_error(prog, "",
                                  "unknown project command '%s' (create, list, show, update, "
                                  "archive, unarchive, delete, share, unshare, shares, pause, "
                                  "resume)",
                                  argv[1]);
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, project_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--name", &name)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--labels", &labels)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--schema", &schema_file)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotations-per-task", &per_task)) !=
                0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--lease-ttl-ms", &ttl)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--max-leases-per-annotator",
                                   &max_live)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--auto-accept-confidence", &aa_conf)) !=
                0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--auto-accept-audit", &aa_audit)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-min", &ov_min)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-max", &ov_max)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-agreement-threshold",
                                   &ov_thr)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-measure", &ov_measure)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--overlap-prior-accuracy", &ov_prior)) !=
                0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--show-predictions", &shown)) != 0 ||
            (r = qr_ctl_gold_take(&gold, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--review-mode", &rv_mode)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--review-share", &rv_share)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--review-agreement-threshold",
                                   &rv_threshold)) != 0) {
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
    if (!labels == !schema_file)
        return qr_cli_usage_error(prog, "project create ",
                                  "project create: give --labels or --schema (one of them)");
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
    json_t *label_arr = NULL, *schema = NULL;
    if (labels && !(label_arr = split_labels(labels)))
        return qr_cli_usage_error(prog, "project create ",
                                  "project create: --labels has an empty label in '%s'", labels);
    char why[300];
    if (schema_file && !(schema = qr_ctl_schema_load(schema_file, why, sizeof why)))
        return qr_cli_usage_error(prog, "project create ", "project create: %s", why);

    json_t *body = json_object();
    if (!body || json_object_set_new(body, "name", json_string(name)) < 0 ||
        json_object_set_new(body, labels ? "labels" : "schema", labels ? label_arr : schema) < 0 ||
        (per_task && json_object_set_new(body, "annotations_per_task", json_integer(k)) < 0) ||
        (ttl && json_object_set_new(body, "lease_ttl_ms", json_integer(ttl_ms)) < 0) ||
        (max_live &&
         json_object_set_new(body, "max_leases_per_annotator", json_integer(max_leases)) < 0)) {
        fprintf(stderr, "%s: cannot build the request (is --name valid UTF-8?)\n", prog);
        json_decref(body);
        return QR_EXIT_USAGE;
    }
    if (qr_ctl_auto_accept_flags(aa_conf, aa_audit, body, "project create") < 0 ||
        qr_ctl_dynamic_overlap_flags(ov_min, ov_max, ov_thr, body, "project create") < 0 ||
        qr_ctl_overlap_measure_flags(ov_measure, ov_prior, body, "project create") < 0 ||
        qr_ctl_show_predictions_flag(shown, body, "project create") < 0 ||
        qr_ctl_gold_flags(&gold, body, "project create") < 0 ||
        qr_ctl_review_flags(rv_mode, rv_share, rv_threshold, body, "project create") < 0) {
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
