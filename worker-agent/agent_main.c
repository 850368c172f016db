/*
 * agent_main.c - quorum-agent, the annotators' client. For now it has one
 * command, `simulate`, which runs a crew of virtual annotators against a
 * project (simulate.c); flag parsing and help live here.
 *
 * Exit codes: 0 success, 1 broker or network error (or the run did not
 * complete), 2 usage error.
 */
#include "client.h"
#include "simulate.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

/* Upper bound on --annotators: each holds a connection and a file descriptor. */
#define MAX_ANNOTATORS 1000

static const char main_help[] =
    "Usage: quorum-agent [CONNECTION FLAGS] COMMAND [ARGS]\n"
    "\n"
    "The annotators' client for a Quorum broker.\n"
    "\n"
    "Commands:\n"
    "  simulate   run virtual annotators against a project (load tests, checks)\n"
    "\n"
    "Run `quorum-agent COMMAND --help` for a command's flags.\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

static const char simulate_help[] =
    "Usage: quorum-agent simulate --project ID --annotators N --accuracy P\n"
    "           [--think-ms MIN[-MAX]] [--truth-field NAME] [--prefetch K]\n"
    "           [--seed S] [--max-seconds S] [--json-summary FILE]\n"
    "\n"
    "Creates N annotator users (sim-<run>-<i>, new names each run) with the\n"
    "admin or manager token of the connection settings, then runs them in one\n"
    "process until the project is complete. Each leases tasks, thinks, and\n"
    "submits the true label (the task data's truth field) with probability P,\n"
    "else a different label chosen uniformly. Failed submits are retried with\n"
    "the same idempotency key; expired leases are dropped.\n"
    "\n"
    "  --project ID          the project's id\n"
    "  --annotators N        number of virtual annotators (1-1000)\n"
    "  --accuracy P          probability of the true label, 0 to 1\n"
    "  --think-ms MIN[-MAX]  think time per task, uniform in ms (default 0-5)\n"
    "  --truth-field NAME    task data field with the true label (default true_label)\n"
    "  --prefetch K          leases asked for at a time, 1-100 (default 1)\n"
    "  --seed S              seed for label choices and think times (default:\n"
    "                        random, printed in the summary); same seed, same\n"
    "                        decisions per task and annotator\n"
    "  --max-seconds S       give up after S seconds (default 600)\n"
    "  --json-summary FILE   also write the summary as JSON to FILE\n"
    "\n"
    "Progress goes to stderr once a second; the summary (per annotator counts,\n"
    "total, elapsed, completions/s, errors by kind) to stdout.\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 the project completed, 1 broker or network error, or\n"
    "--max-seconds reached first, 2 usage error.\n";

static int is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "quorum-agent: <why>" and a pointer to the help; returns EXIT_USAGE. */
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "quorum-agent: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun `quorum-agent %s--help` for usage.\n", cmd);
    return EXIT_USAGE;
}

/* See take_value in broker/ctl_main.c: `name VALUE` or `name=VALUE`. */
static int take_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "quorum-agent: %s needs a value\n", name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "MIN" or "MIN-MAX" in ms, 0 <= MIN <= MAX <= 1 hour. */
static int parse_think(const char *s, int *min, int *max)
{
    const char *dash = strchr(s, '-');
    long long lo, hi;
    char first[32];
    if (!dash)
        return parse_ll(s, 0, 3600000, &lo) < 0 ? -1 : (*min = *max = (int)lo, 0);
    if ((size_t)(dash - s) >= sizeof first)
        return -1;
    memcpy(first, s, (size_t)(dash - s));
    first[dash - s] = '\0';
    if (parse_ll(first, 0, 3600000, &lo) < 0 || parse_ll(dash + 1, 0, 3600000, &hi) < 0 || hi < lo)
        return -1;
    *min = (int)lo;
    *max = (int)hi;
    return 0;
}

static int cmd_simulate(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *annotators = NULL, *accuracy = NULL, *think = NULL, *truth = NULL,
               *prefetch = NULL, *seed = NULL, *max_seconds = NULL, *summary = NULL;
    qr_sim_options_t opt;
    long long v;

    for (int i = 1; i < argc; i++) {
        int r;
        if (is_help(argv[i])) {
            printf(simulate_help, qr_client_help_text);
            return 0;
        }
        if ((r = qr_client_config_flag(cfg, "quorum-agent", argc, argv, &i)) != 0 ||
            (r = take_value(argc, argv, &i, "--project", &project)) != 0 ||
            (r = take_value(argc, argv, &i, "--annotators", &annotators)) != 0 ||
            (r = take_value(argc, argv, &i, "--accuracy", &accuracy)) != 0 ||
            (r = take_value(argc, argv, &i, "--think-ms", &think)) != 0 ||
            (r = take_value(argc, argv, &i, "--truth-field", &truth)) != 0 ||
            (r = take_value(argc, argv, &i, "--prefetch", &prefetch)) != 0 ||
            (r = take_value(argc, argv, &i, "--seed", &seed)) != 0 ||
            (r = take_value(argc, argv, &i, "--max-seconds", &max_seconds)) != 0 ||
            (r = take_value(argc, argv, &i, "--json-summary", &summary)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
        } else {
            return usage_error("simulate ", "simulate: unexpected argument '%s'", argv[i]);
        }
    }

    memset(&opt, 0, sizeof opt);
    if (!project)
        return usage_error("simulate ", "simulate: --project ID is required");
    if (parse_ll(project, 1, INT64_MAX, &opt.project) < 0)
        return usage_error("simulate ", "simulate: --project must be a positive integer, not '%s'",
                           project);
    if (!annotators)
        return usage_error("simulate ", "simulate: --annotators N is required");
    if (parse_ll(annotators, 1, MAX_ANNOTATORS, &v) < 0)
        return usage_error("simulate ", "simulate: --annotators must be 1-%d, not '%s'",
                           MAX_ANNOTATORS, annotators);
    opt.annotators = (int)v;
    if (!accuracy)
        return usage_error("simulate ", "simulate: --accuracy P is required");
    if (parse_double(accuracy, 0.0, 1.0, &opt.accuracy) < 0)
        return usage_error("simulate ", "simulate: --accuracy must be between 0 and 1, not '%s'",
                           accuracy);
    opt.think_min_ms = 0;
    opt.think_max_ms = 5;
    if (think && parse_think(think, &opt.think_min_ms, &opt.think_max_ms) < 0)
        return usage_error("simulate ",
                           "simulate: --think-ms must be MIN or MIN-MAX in ms (MIN <= MAX <= "
                           "3600000), not '%s'",
                           think);
    opt.truth_field = truth ? truth : "true_label";
    if (!opt.truth_field[0])
        return usage_error("simulate ", "simulate: --truth-field must not be empty");
    opt.prefetch = 1;
    if (prefetch) {
        if (parse_ll(prefetch, 1, 100, &v) < 0)
            return usage_error("simulate ", "simulate: --prefetch must be 1-100, not '%s'",
                               prefetch);
        opt.prefetch = (int)v;
    }
    if (seed) {
        if (parse_ll(seed, 0, INT64_MAX, &v) < 0)
            return usage_error("simulate ",
                               "simulate: --seed must be a non-negative integer, not '%s'", seed);
        opt.seed = (uint64_t)v;
    } else {
        char hex[17];
        if (qr_random_hex(7, hex) < 0) {
            fprintf(stderr, "quorum-agent: no randomness for a seed; give --seed\n");
            return 1;
        }
        opt.seed = strtoull(hex, NULL, 16); /* 56 bits: fits a JSON integer */
    }
    opt.max_seconds = 600;
    if (max_seconds && parse_double(max_seconds, 0.001, 1e7, &opt.max_seconds) < 0)
        return usage_error("simulate ",
                           "simulate: --max-seconds must be a positive number, not '%s'",
                           max_seconds);
    opt.json_summary = summary;

    char err[512];
    if (qr_client_config_resolve(cfg, 1, err, sizeof err) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", err);
        return EXIT_USAGE;
    }
    if (qr_client_global_init() < 0)
        return 1;
    int rc = qr_sim_run(&opt, cfg);
    qr_client_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    qr_client_config_t cfg;
    int i = 1, rc;

    qr_client_config_init(&cfg);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (is_help(argv[i])) {
            printf(main_help, qr_client_help_text);
            qr_client_config_free(&cfg);
            return 0;
        }
        int r = qr_client_config_flag(&cfg, "quorum-agent", argc, argv, &i);
        if (r == 0)
            fprintf(stderr, "quorum-agent: unknown flag '%s'\n", argv[i]);
        if (r <= 0) {
            qr_client_config_free(&cfg);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, main_help, qr_client_help_text);
        qr_client_config_free(&cfg);
        return EXIT_USAGE;
    }
    if (strcmp(argv[i], "simulate") == 0)
        rc = cmd_simulate(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "help") == 0)
        rc = (printf(main_help, qr_client_help_text), 0);
    else
        rc = usage_error("", "unknown command '%s'", argv[i]);
    qr_client_config_free(&cfg);
    return rc;
}
