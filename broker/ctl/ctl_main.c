/*
 * ctl_main.c - quorumctl, the managers' command line: the connection flags
 * given before the command, the help, and the dispatch to a command's own
 * file (all over the broker's HTTPS API, docs/API.md):
 *   ctl_project.c     project create
 *   ctl_import.c      import, import list, predictions
 *   ctl_user.c        user create, token create|list|revoke
 *   ctl_report.c      report, agreement --project, export
 *   ctl_throughput.c  throughput
 *   ctl_org.c         org create|list, project share|unshare|shares|pause|resume,
 *                     reinstate
 *   ctl_cert.c        cert add|list|revoke
 *   ctl_manage.c      project list|show|update|archive|unarchive|delete, user list
 *   ctl_agreement.c   agreement FILE.csv (offline, no broker)
 *   ctl_webhook.c     webhook add|list|rm|deliveries
 *   ctl_openapi.c     openapi
 *   ctl_round.c       round, rounds
 *   ctl_review.c      review-select
 *   ctl_task.c        task
 *
 * Exit codes (protocol.h): 0 success, 1 the broker or the network failed
 * the request, 2 the command line (or the connection settings) was wrong.
 */
#include "cli.h"
#include "client.h"
#include "ctl_agreement.h"
#include "ctl_cert.h"
#include "ctl_import.h"
#include "ctl_manage.h"
#include "ctl_openapi.h"
#include "ctl_org.h"
#include "ctl_project.h"
#include "ctl_report.h"
#include "ctl_review.h"
#include "ctl_round.h"
#include "ctl_task.h"
#include "ctl_throughput.h"
#include "ctl_user.h"
#include "ctl_webhook.h"
#include "protocol.h"

#include <stdio.h>
#include <string.h>

static const char *const prog = "quorumctl";

/* The "Commands:" section is read by tests/e2e/test_docs.sh: one command a
 * line, "  NAME [SUBCOMMAND|SUBCOMMAND] ARGS  description" (two spaces end the
 * synopsis). A command added here needs its row in README.md's table and a
 * --help with "Reads:", "Writes:" and an example. */
static const char main_help[] =
    "Usage: quorumctl [CONNECTION FLAGS] COMMAND [ARGS]\n"
    "\n"
    "Manage a Quorum broker: projects, users, task imports and reports.\n"
    "\n"
    "Commands:\n"
    "  project create --name N --labels a,b,c [--annotations-per-task K]\n"
    "                 [--lease-ttl-ms MS] [--max-leases-per-annotator N] [--json]\n"
    "                                  create a project; prints its id\n"
    "  import --project ID [--allow-duplicates] FILE|-\n"
    "                                                import tasks (JSONL, JSON, CSV)\n"
    "  import list --project ID [--json]             a project's imports: id, file, rows,\n"
    "                                                time, who\n"
    "  predictions --project ID FILE|-               update tasks' predictions (JSONL)\n"
    "  report --project ID [--json]                  progress, throughput, agreement\n"
    "  user create --name N --role R                 create a user; prints its token\n"
    "  token create|list|revoke                      API tokens (create shows it once)\n"
    "  cert add|list|revoke                          client certificates for mutual TLS\n"
    "  agreement FILE.csv|FILE.jsonl [--json] [--per-item] [--schema FILE]\n"
    "                                                agreement on a CSV, or per field on\n"
    "                                                JSONL judgements (offline)\n"
    "  agreement --project ID [--json] [--fresh]     live agreement of a project\n"
    "  export --project ID [--format csv|jsonl|ls] [--kind annotations|consensus] [--since C]\n"
    "                                                annotations or consensus per task, to\n"
    "                                                stdout; the next cursor to stderr\n"
    "  throughput --project ID [--window 1h] [--by annotator|vendor|hour] [--json]\n"
    "                                                rates, time on task, queue, ETA\n"
    "  org create NAME [--kind vendor|owner]         create an organization (admins)\n"
    "  org list [--json]                             organizations you may see\n"
    "  project share|unshare --project ID --org NAME|ID [--quota N] [--cap N]\n"
    "                                                share a project with a vendor\n"
    "  project shares --project ID [--json]          a project's shares and their use\n"
    "  project pause|resume --project ID             stop or restart handing out tasks\n"
    "  reinstate --project ID --user NAME|ID         lease again to an annotator paused\n"
    "                                                below the gold accuracy\n"
    "  project list [--json]                         the projects you may see\n"
    "  project show ID [--json]                      one project's settings and state\n"
    "  project update ID [--name N] [--add-label L] [--labels a,b,c] ... [--json]\n"
    "                                                rename, add labels, raise overlap,\n"
    "                                                lease TTL, sampling\n"
    "  project archive|unarchive ID                  stop handing out tasks for good\n"
    "                                                (data kept), or undo that\n"
    "  project delete ID [--yes] [--force]           delete a project and all it holds\n"
    "  user list [--json]                            your organization's users\n"
    "  webhook add|list|rm|deliveries --project ID   a project's webhooks (signed POSTs of\n"
    "                                                its events) and their delivery log\n"
    "  openapi                                       the API's OpenAPI 3.1 document\n"
    "  round --project ID [--annotations N] (--tasks 1,2,3 | --import ID | --field PATH=VALUE |\n"
    "        --completed-after T --completed-before T | --agreement-below X)\n"
    "                                                send complete tasks back for N more\n"
    "                                                annotations in a new round\n"
    "  rounds --project ID [--json]                  a project's relabel rounds\n"
    "  review-select PROJECT --below X [--method dawid_skene|majority] [--limit N]\n"
    "                                                review the complete tasks whose\n"
    "                                                consensus support is below X\n"
    "  task PROJECT TASK [--json]                    one task: its data, annotations, review\n"
    "\n"
    "Run `quorumctl COMMAND --help` for a command's flags.\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error\n"
    "(bad flags or arguments, unreadable FILE, missing connection settings),\n"
    "130 import interrupted by Ctrl-C (a line says whether it was committed).\n";

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag) || !strncmp(argv[i], "--project=", 10))
            return 1;
    return 0;
}

/* Every command main dispatches, for "did you mean" on a typo. */
static const char *const commands[] = {
    "agreement", "help",  "org",    "project",       "user",   "import",  "predictions",
    "report",    "token", "cert",   "throughput",    "export", "webhook", "reinstate",
    "openapi",   "round", "rounds", "review-select", "task",   NULL};

int main(int argc, char **argv)
{
    qr_client_config_t cfg;
    int i = 1, rc;

    qr_client_config_init(&cfg);
    /* Connection flags may come before the command too. */
    rc = qr_cli_leading_flags(prog, main_help, qr_cli_config_flag, &cfg, argc, argv, &i);
    if (rc >= 0) {
        qr_client_config_free(&cfg);
        return rc;
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
    else if (strcmp(cmd, "project") == 0 && i + 1 < argc && qr_ctl_manage_command(argv[i + 1]))
        rc = qr_ctl_project_manage(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "user") == 0 && i + 1 < argc && strcmp(argv[i + 1], "list") == 0)
        rc = qr_ctl_user_list(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "project") == 0 && i + 1 < argc && qr_ctl_share_command(argv[i + 1]))
        rc = qr_ctl_share(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "project") == 0)
        rc = qr_ctl_project(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "import") == 0)
        rc = qr_ctl_import(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "predictions") == 0)
        rc = qr_ctl_predictions(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "report") == 0)
        rc = qr_ctl_report(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "user") == 0)
        rc = qr_ctl_user(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "agreement") == 0)
        rc = qr_ctl_live_agreement(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "token") == 0)
        rc = qr_ctl_token(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "cert") == 0)
        rc = qr_ctl_cert(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "throughput") == 0)
        rc = qr_ctl_throughput(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "export") == 0)
        rc = qr_ctl_export(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "webhook") == 0)
        rc = qr_ctl_webhook(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "reinstate") == 0)
        rc = qr_ctl_reinstate(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "openapi") == 0)
        rc = qr_ctl_openapi(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "round") == 0)
        rc = qr_ctl_round(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "rounds") == 0)
        rc = qr_ctl_rounds(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "review-select") == 0)
        rc = qr_ctl_review_select(argc - i, argv + i, &cfg);
    else if (strcmp(cmd, "task") == 0)
        rc = qr_ctl_task(argc - i, argv + i, &cfg);
    else
        rc = qr_cli_unknown_command(prog, cmd, commands);
    qr_client_global_cleanup();
    qr_client_config_free(&cfg);
    return rc;
}
