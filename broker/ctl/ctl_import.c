/*
 * ctl_import.c - `quorumctl import` (POST /v1/projects/{id}/tasks) and
 * `quorumctl import list` (GET /v1/projects/{id}/imports): a manager fills
 * a project with tasks from a JSONL, JSON or CSV file, and sees what was
 * imported, when and by whom.
 *
 * The file is streamed as it is read (Content-Length for a regular file,
 * chunked otherwise), with the file's name and a random import key; the
 * broker parses it whole and commits its tasks and its import record in one
 * transaction, or nothing. So Ctrl-C can always be answered in one line:
 *   - before the whole body was sent, the upload is aborted (libcurl's
 *     progress callback returns non-zero): the broker never got a complete
 *     body and commits nothing;
 *   - after, the broker decides: quorumctl waits a few seconds for its
 *     answer (a second Ctrl-C stops waiting), then asks the broker whether an
 *     import with this key exists.
 * The signal handler only counts (async-signal-safe); everything else runs
 * in libcurl's callbacks and after the transfer.
 */
#include "ctl_import.h"

#include "cli.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long quorumctl waits, after Ctrl-C with the body sent, for the
 * broker's answer before asking it by import key (ms). */
#define INTERRUPT_WAIT_MS 10000
/* Bound on the question by import key (ms). */
#define KEY_LOOKUP_TIMEOUT_MS 10000

static const char *const prog = "quorumctl";

static const char import_help[] =
    "Usage: quorumctl import --project ID [--format jsonl|json|csv]\n"
    "                        [--allow-duplicates] FILE|-\n"
    "       quorumctl import list --project ID [--import-key K] [--json]\n"
    "\n"
    "Imports tasks into a project from a file (or stdin with -):\n"
    "  jsonl  one task a line: {\"data\": {...}, \"prediction\": {\"label\": ...,\n"
    "         \"score\": ...}, \"gold\": ..., \"external_id\": ...} or a bare JSON\n"
    "         object taken as the data (its \"external_id\" key taken out);\n"
    "  json   a JSON array of such tasks (Label Studio's task export);\n"
    "  csv    a header row naming the fields, then a task a row (RFC 4180, UTF-8);\n"
    "         the columns prediction, prediction_score, gold and external_id are\n"
    "         the task's prediction, gold answer and external id, every other\n"
    "         column is data.\n"
    "The format defaults to the file's extension (.csv, .json, else jsonl). All\n"
    "or nothing: a bad line fails the whole import, naming its line.\n"
    "Prints \"imported N tasks (ids A..B) as import I\".\n"
    "\n"
    "Every import is recorded (file name, rows, time, who) with its tasks, in\n"
    "one transaction. A file the project imported already (the same bytes), or\n"
    "tasks whose external_id the project holds already, are refused (409\n"
    "duplicate_import, with the count) and nothing is imported, unless\n"
    "--allow-duplicates (tasks whose external_id is taken are then imported\n"
    "without one). An external_id is unique within a project and within a file.\n"
    "\n"
    "Ctrl-C prints one line saying whether the import was committed: before the\n"
    "whole file was sent, the upload stops and nothing is imported; after, the\n"
    "broker's answer is awaited up to 10 s (Ctrl-C again stops waiting) and the\n"
    "broker is asked whether this upload's import exists.\n"
    "\n"
    "list prints the project's imports, newest first: id, file name, rows,\n"
    "time (UTC) and who; --import-key K only the import made with that key.\n"
    "\n"
    "  --project ID         the project's id\n"
    "  --format F           jsonl, json or csv\n"
    "  --allow-duplicates   import even a file or external ids the project has\n"
    "  --import-key K       (list) the import made with this import key\n"
    "  --json               (list) the imports as the broker's JSON\n"
    "\n"
    "Reads:  FILE or stdin, in the format above; for example, the same task as\n"
    "        jsonl  {\"data\": {\"text\": \"great\"}, \"gold\": \"positive\"}\n"
    "        json   [{\"data\": {\"text\": \"great\"}, \"gold\": \"positive\"}]\n"
    "        csv    text,gold\n"
    "               great,positive\n"
    "Writes: stdout: \"imported 2000 tasks (ids 1..2000) as import 7\"; list: a\n"
    "        table with the columns ID, FILE, ROWS, TIME (UTC), BY; with --json the\n"
    "        broker's {\"imports\":[{\"id\":7,\"file_name\":\"tasks.jsonl\",...}]}.\n"
    "\n"
    "Examples:\n"
    "  quorumctl import --project 3 tasks.jsonl\n"
    "  quorumctl import --project 3 --format csv - < reviews.csv\n"
    "  quorumctl import list --project 3\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (a refused duplicate\n"
    "too), 2 usage error (an unreadable FILE too), 130 interrupted by Ctrl-C\n"
    "(the line before says whether the import was committed).\n";

/* Ctrl-Cs seen since the upload began: written only by the handler. */
static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
    (void)sig;
    interrupts = interrupts + 1;
}

/* The body being streamed. */
typedef struct upload_s {
    int fd;
    int64_t size;       /* bytes, or -1 when unknown (a pipe: chunked) */
    int64_t sent;       /* bytes handed to libcurl */
    int body_done;      /* the whole body was handed to libcurl */
    int read_errno;     /* a read failed: its errno */
    int waiting;        /* Ctrl-C came after the body: awaiting the answer */
    int64_t waiting_ms; /* since when (qr_now_ms) */
} upload_t;

static size_t read_body(char *buf, size_t size, size_t nmemb, void *arg)
{
    upload_t *u = arg;
    for (;;) {
        if (interrupts)
            return CURL_READFUNC_ABORT;
        size_t want = size * nmemb;
        if (u->size >= 0 && (int64_t)want > u->size - u->sent)
            want = (size_t)(u->size - u->sent);
        ssize_t n = want ? read(u->fd, buf, want) : 0;
        if (n > 0) {
            u->sent += n;
            if (u->size >= 0 && u->sent == u->size)
                u->body_done = 1;
            return (size_t)n;
        }
        if (n == 0) {
            if (u->size >= 0 && u->sent < u->size) {
                u->read_errno = EIO; /* the file shrank while it was sent */
                return CURL_READFUNC_ABORT;
            }
            u->body_done = 1;
            return 0;
        }
        if (errno == EINTR)
            continue; /* a Ctrl-C: seen at the top */
        u->read_errno = errno;
        return CURL_READFUNC_ABORT;
    }
}

/* libcurl calls this at least once a second during the transfer: non-zero
 * aborts it. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    upload_t *u = arg;
    if (!interrupts)
        return 0;
    if (!u->body_done)
        return 1; /* the broker cannot commit a body it did not get whole */
    if (!u->waiting) {
        u->waiting = 1;
        u->waiting_ms = qr_now_ms();
        fprintf(stderr,
                "%s: interrupted after the whole file was sent: waiting up to %d s for the "
                "broker's answer (Ctrl-C again to stop waiting)\n",
                prog, INTERRUPT_WAIT_MS / 1000);
    }
    return interrupts > 1 || qr_now_ms() - u->waiting_ms > INTERRUPT_WAIT_MS;
}

/* After Ctrl-C with the body sent and no answer: asks the broker whether
 * the import of this key committed, and says so in one line. */
static void say_by_key(qr_client_config_t *cfg, long long pid, const char *key)
{
    qr_client_call_t call;
    json_t *res = NULL;
    if (qr_client_call_init(&call, cfg, KEY_LOOKUP_TIMEOUT_MS) < 0) {
        fprintf(stderr,
                "%s: interrupted: cannot tell whether the import was committed (%s); see "
                "`quorumctl import list --project %lld --import-key %s`\n",
                prog, call.message, pid, key);
        return;
    }
    char *path = qr_xasprintf(QR_API_IMPORTS("%lld") "?key=%s", pid, key);
    int r = qr_cli_call(&call, "GET", path, NULL, &res);
    free(path);
    json_t *list = json_object_get(res, "imports");
    json_t *one = json_array_get(list, 0);
    if (r < 0 || !json_is_array(list)) {
        fprintf(stderr,
                "%s: interrupted: cannot tell whether the import was committed (%s); see "
                "`quorumctl import list --project %lld --import-key %s`\n",
                prog, r < 0 ? call.message : "the broker's answer lacks \"imports\"", pid, key);
    } else if (one) {
        fprintf(stderr,
                "%s: interrupted: the import WAS committed as import %" JSON_INTEGER_FORMAT
                " (%" JSON_INTEGER_FORMAT " tasks)\n",
                prog, json_integer_value(json_object_get(one, "id")),
                json_integer_value(json_object_get(one, "rows")));
    } else {
        fprintf(stderr,
                "%s: interrupted: the import was NOT committed by now (import key %s); the "
                "broker may still finish it: see `quorumctl import list --project %lld "
                "--import-key %s`\n",
                prog, key, pid, key);
    }
    json_decref(res);
    qr_client_call_free(&call);
}

/* Opens FILE ("-": stdin) for the upload. Returns 0, or -1 (printed). */
static int open_input(const char *path, upload_t *u)
{
    u->fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    u->size = -1;
    if (u->fd < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(u->fd, &st) == 0 && S_ISREG(st.st_mode))
        u->size = (int64_t)st.st_size - (int64_t)lseek(u->fd, 0, SEEK_CUR);
    if (u->size < -1)
        u->size = -1;
    return 0;
}

/* The file's base name, as the import's record names it. */
static const char *base_name(const char *path)
{
    if (!strcmp(path, "-"))
        return "stdin";
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

/* Streams the upload on call (set up for the POST) with Ctrl-C counted.
 * Returns qr_client_call_finish's result. */
static int perform_upload(qr_client_call_t *call, upload_t *u)
{
    CURL *e = call->easy;
    if (curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u->size) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_READDATA, (void *)u) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)u) != CURLE_OK) {
        snprintf(call->message, sizeof call->message, "libcurl: cannot set up the upload");
        return -1;
    }
    return qr_client_call_finish(call, curl_easy_perform(e));
}

/* Says in one line how an interrupted import ended. Returns the exit code. */
static int say_interrupted(int r, qr_client_call_t *call, const upload_t *u,
                           qr_client_config_t *cfg, long long pid, const char *key)
{
    if (!u->body_done) {
        fprintf(stderr, "%s: interrupted: the import was NOT committed (nothing imported)\n", prog);
    } else if (r == 0) {
        json_t *res = qr_cli_answer(call);
        fprintf(stderr,
                "%s: interrupted: the import WAS committed as import %" JSON_INTEGER_FORMAT
                " (%" JSON_INTEGER_FORMAT " tasks)\n",
                prog, json_integer_value(json_object_get(res, "import_id")),
                json_integer_value(json_object_get(res, "imported")));
        json_decref(res);
    } else if (call->status >= 400 && call->status < 500) {
        fprintf(stderr, "%s: interrupted: the import was NOT committed: %s\n", prog, call->message);
    } else {
        say_by_key(cfg, pid, key);
    }
    return QR_EXIT_INTERRUPTED;
}

static int import_upload(qr_client_config_t *cfg, long long pid, const char *file,
                         const char *content_type, int allow_duplicates)
{
    upload_t u = {0};
    if (open_input(file, &u) < 0) {
        if (!interrupts)
            return QR_EXIT_USAGE;
        fprintf(stderr, "%s: interrupted: the import was NOT committed (nothing imported)\n", prog);
        return QR_EXIT_INTERRUPTED;
    }
    char key[33];
    if (qr_random_hex(16, key) < 0) {
        fprintf(stderr, "%s: cannot draw a random import key\n", prog);
        if (u.fd != STDIN_FILENO)
            close(u.fd);
        return QR_EXIT_ERROR;
    }
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK) {
        if (u.fd != STDIN_FILENO)
            close(u.fd);
        return rc;
    }
    char *name = curl_easy_escape(call.easy, base_name(file), 0);
    char *path = qr_xasprintf(QR_API_TASKS("%lld") "?import_key=%s&file_name=%s%s", pid, key,
                              name ? name : "", allow_duplicates ? "&allow_duplicates=1" : "");
    curl_free(name);
    int r = qr_client_call_setup(&call, "POST", path, "", 0, content_type, cfg->token);
    free(path);
    if (r == 0)
        r = perform_upload(&call, &u);
    if (u.fd != STDIN_FILENO)
        close(u.fd);
    if (u.read_errno) {
        fprintf(stderr, "%s: cannot read %s: %s (nothing imported)\n", prog, file,
                strerror(u.read_errno));
        qr_client_call_free(&call);
        return QR_EXIT_USAGE;
    }
    if (interrupts) {
        rc = say_interrupted(r, &call, &u, cfg, pid, key);
        qr_client_call_free(&call);
        return rc;
    }
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
    json_t *id = json_object_get(res, "import_id");
    json_t *dropped = json_object_get(res, "external_ids_dropped");
    if (!json_is_integer(n)) {
        fprintf(stderr, "%s: broker's answer lacks \"imported\"\n", prog);
        rc = QR_EXIT_ERROR;
    } else {
        printf("imported %" JSON_INTEGER_FORMAT " tasks", json_integer_value(n));
        if (json_is_integer(first) && json_is_integer(last))
            printf(" (ids %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ")",
                   json_integer_value(first), json_integer_value(last));
        if (json_is_integer(id))
            printf(" as import %" JSON_INTEGER_FORMAT, json_integer_value(id));
        if (json_is_integer(dropped))
            printf("; %" JSON_INTEGER_FORMAT " external ids the project held already were "
                   "left out",
                   json_integer_value(dropped));
        printf("\n");
    }
    json_decref(res);
    qr_client_call_free(&call);
    return rc;
}

/* The upload with Ctrl-C counted from its start: a Ctrl-C before anything
 * was sent is answered in one line too. */
static int import_file(qr_client_config_t *cfg, long long pid, const char *file,
                       const char *content_type, int allow_duplicates)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: a blocked open or read returns EINTR */
    sigemptyset(&sa.sa_mask);
    interrupts = 0;
    int have_old = sigaction(SIGINT, &sa, &old) == 0;
    int rc = import_upload(cfg, pid, file, content_type, allow_duplicates);
    if (have_old)
        sigaction(SIGINT, &old, NULL);
    return rc;
}

/* `import list`: id, file name, rows, time, who; or the JSON. */
static int import_list(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *key = NULL;
    int as_json = 0;
    long long pid;
    for (int i = 2; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, import_help);
            return QR_EXIT_OK;
        }
        if (qr_cli_flag(argv[i], "--json", &as_json))
            continue;
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--import-key", &key)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "import ", "import list: unknown argument '%s'",
                                      argv[i]);
        }
    }
    if (qr_cli_project_id(prog, "import ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK)
        return rc;
    char *k = key ? curl_easy_escape(call.easy, key, 0) : NULL;
    char *path = qr_xasprintf(QR_API_IMPORTS("%lld") "%s%s", pid, k ? "?key=" : "", k ? k : "");
    curl_free(k);
    json_t *res = qr_cli_get_object(prog, &call, path);
    free(path);
    json_t *list = json_object_get(res, "imports");
    if (!res) {
        rc = QR_EXIT_ERROR;
    } else if (!json_is_array(list)) {
        fprintf(stderr, "%s: broker's answer lacks \"imports\"\n", prog);
        rc = QR_EXIT_ERROR;
    } else if (as_json) {
        rc = qr_cli_echo(prog, &call);
    } else {
        printf("%-8s %-32s %10s  %-19s  %s\n", "ID", "FILE", "ROWS", "TIME (UTC)", "BY");
        size_t i;
        json_t *one;
        json_array_foreach(list, i, one)
        {
            const char *file = json_string_value(json_object_get(one, "file_name"));
            const char *at = json_string_value(json_object_get(one, "created_at"));
            const char *who = json_string_value(json_object_get(one, "user"));
            printf("%-8" JSON_INTEGER_FORMAT " %-32s %10" JSON_INTEGER_FORMAT "  %.10s %.8s  %s\n",
                   json_integer_value(json_object_get(one, "id")), file ? file : "-",
                   json_integer_value(json_object_get(one, "rows")), at ? at : "-",
                   at && strlen(at) > 11 ? at + 11 : "", who ? who : "-");
        }
    }
    json_decref(res);
    qr_client_call_free(&call);
    return rc;
}

int qr_ctl_import(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *file = NULL, *format = NULL;
    int allow_duplicates = 0;
    long long pid;

    if (argc > 1 && !strcmp(argv[1], "list"))
        return import_list(argc, argv, cfg);
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, import_help);
            return QR_EXIT_OK;
        }
        if (qr_cli_flag(argv[i], "--allow-duplicates", &allow_duplicates))
            continue;
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
    return import_file(cfg, pid, file, content_type, allow_duplicates);
}
