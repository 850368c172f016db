/*
 * ctl_import.c - `quorumctl import` (POST /v1/projects/{id}/tasks) and
 * `quorumctl import list` (GET /v1/projects/{id}/imports): a manager fills
 * a project with tasks from a JSONL, JSON or CSV file, and sees what was
 * imported, when and by whom; `quorumctl predictions` (PUT
 * /v1/projects/{id}/predictions) uploads a model's predictions for them the
 * same way.
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
/* An upload that sends nothing for this long is abandoned (ms). Once the
 * whole body is sent there is no bound: the broker answers when the import
 * committed, minutes later for millions of tasks (Ctrl-C stops waiting). */
#define UPLOAD_STALL_MS 60000
/* Bound on the question by import key (ms). */
#define KEY_LOOKUP_TIMEOUT_MS 10000

static const char *const prog = "quorumctl";

static const char import_help[] =
    "Usage: quorumctl import --project ID [--format jsonl|json|csv|tsv]\n"
    "                        [--delimiter C] [--external-id-key K]\n"
    "                        [--annotations-as NAME] [--count-annotations]\n"
    "                        [--allow-duplicates] FILE|-\n"
    "       quorumctl import list --project ID [--import-key K] [--json]\n"
    "\n"
    "Imports tasks into a project from a file (or stdin with -):\n"
    "  jsonl  one task a line: {\"data\": {...}, \"prediction\": {\"label\": ...,\n"
    "         \"score\": ...}, \"gold\": ..., \"external_id\": ...} or a bare JSON\n"
    "         object taken as the data (its \"external_id\" key taken out);\n"
    "  json   a JSON array of such tasks, or of Label Studio task objects\n"
    "         {\"id\", \"data\", \"predictions\", \"annotations\"} (its task export):\n"
    "         the id is kept as the external id, the predictions whole (the best\n"
    "         scored one is the task's prediction), the annotations as made by\n"
    "         --annotations-as NAME or the pseudo-user `imported`;\n"
    "  csv    a header row naming the fields, then a task a row (RFC 4180, UTF-8);\n"
    "         the columns prediction, prediction_score, gold and external_id are\n"
    "         the task's prediction, gold answer and external id, every other\n"
    "         column is data. The delimiter (, ; | or tab) is read from the\n"
    "         header line unless --delimiter says it;\n"
    "  tsv    csv with tab-separated fields.\n"
    "The format defaults to the file's extension (.csv, .tsv, .json, .jsonl,\n"
    ".ndjson); any other file (.txt...) is sniffed: '[' json, '{' jsonl, else csv\n"
    "(said on stderr). Gold answers and prediction labels must be among the\n"
    "project's labels, scores in [0, 1]. For a project with a label schema,\n"
    "gold and a prediction's \"labels\" are labels objects ({\"<field>\": value};\n"
    "in CSV, the cell holds its JSON), and Label Studio results (choices,\n"
    "labels spans, rectanglelabels, rating, textarea) map onto its fields;\n"
    "each is checked against the schema as a submission is.\n"
    "All or nothing: a bad line fails the whole import, naming its line (and\n"
    "the field, for a broken rule: 422).\n"
    "On a terminal, progress shows on stderr (bytes sent, rows/s, ETA); when\n"
    "stderr is not a terminal, a plain progress line every 5 s. An upload that\n"
    "sends nothing for 60 s is abandoned; once the file is sent, the broker's\n"
    "answer is awaited however long it takes to write the tasks.\n"
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
    "  --format F           jsonl, json, csv or tsv\n"
    "  --delimiter C        CSV delimiter: , ; | or tab (default: from the header)\n"
    "  --external-id-key K  the external id is key K (JSON) or column K (CSV)\n"
    "  --annotations-as NAME  imported annotations are this user's (of your\n"
    "                       organization; default: the pseudo-user `imported`)\n"
    "  --count-annotations  imported annotations count toward the overlap\n"
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
    "  quorumctl import --project 3 --delimiter ';' reviews.txt\n"
    "  quorumctl import --project 3 --annotations-as alice ls_export.json\n"
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
    int64_t lines;      /* line feeds sent: rows, for JSONL and CSV */
    int64_t start_ms;   /* when the upload began (qr_now_ms) */
    int64_t shown_ms;   /* when progress was last shown */
    int tty;            /* stderr is a terminal: progress redrawn in place */
    int shown;          /* a progress line is on the terminal */
    const char *doing;  /* what the broker does once the body is sent ("writing the tasks") */
    int64_t moved_ms;   /* when a byte was last sent */
    int64_t moved_at;   /* u->sent then */
    int stalled;        /* the upload stopped moving for UPLOAD_STALL_MS */
} upload_t;

/* After a failed call: whether the broker got the whole body. It commits
 * only after the body's end, so a connection lost before the request was
 * all sent (a failed send: the body's last bytes or its chunked end never
 * left) changed nothing; one lost after may have. */
static int body_all_sent(const upload_t *u, const qr_client_call_t *call)
{
    return u->body_done && call->result != CURLE_SEND_ERROR;
}

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
            for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
                u->lines++;
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

/* n bytes in a short human unit ("12.3 MB"). */
static void human_bytes(double n, char *out, size_t len)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB"};
    int k = 0;
    while (n >= 1000 && k < 4)
        n /= 1000, k++;
    snprintf(out, len, k ? "%.1f %s" : "%.0f %s", n, unit[k]);
}

/* Progress: on a terminal one line redrawn at most 4 times a second (bytes
 * sent of the total, rows/s, ETA); otherwise a plain line every 5 s. */
static void show_progress(upload_t *u)
{
    int64_t now = qr_now_ms();
    int64_t every = u->tty ? 250 : 5000;
    if (now - u->shown_ms < every || now - u->start_ms < every)
        return;
    u->shown_ms = now;
    double secs = (double)(now - u->start_ms) / 1000.0;
    char sent[32], total[32] = "?", eta[32] = "?";
    human_bytes((double)u->sent, sent, sizeof sent);
    if (u->size >= 0) {
        human_bytes((double)u->size, total, sizeof total);
        if (u->sent > 0) {
            double left = secs * (double)(u->size - u->sent) / (double)u->sent;
            snprintf(eta, sizeof eta, "%d:%02d", (int)left / 60, (int)left % 60);
        }
    }
    double rate = secs > 0 ? (double)u->lines / secs : 0;
    if (u->body_done)
        fprintf(stderr, "%s%s sent (%" PRId64 " lines); the broker is %s...%s",
                u->tty ? "\r\033[K" : "", sent, u->lines, u->doing ? u->doing : "writing the tasks",
                u->tty ? "" : "\n");
    else
        fprintf(stderr, "%s%s / %s  %.0f rows/s  ETA %s%s", u->tty ? "\r\033[K" : "", sent, total,
                rate, eta, u->tty ? "" : "\n");
    u->shown = u->tty;
    fflush(stderr);
}

/* libcurl calls this at least once a second during the transfer: non-zero
 * aborts it. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    upload_t *u = arg;
    if (!interrupts) {
        int64_t now = qr_now_ms();
        if (u->sent != u->moved_at || u->body_done) {
            u->moved_at = u->sent;
            u->moved_ms = now;
        } else if (now - u->moved_ms > UPLOAD_STALL_MS) {
            u->stalled = 1;
            return 1;
        }
        show_progress(u);
        return 0;
    }
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
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)u) != CURLE_OK ||
        /* No low-speed limit: the broker is silent while it writes a large
         * import; a stalled upload is caught by on_progress instead. */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 0L) != CURLE_OK) {
        snprintf(call->message, sizeof call->message, "libcurl: cannot set up the upload");
        return -1;
    }
    u->start_ms = u->shown_ms = u->moved_ms = qr_now_ms();
    u->tty = isatty(STDERR_FILENO);
    int r = qr_client_call_finish(call, curl_easy_perform(e));
    if (u->shown)
        fprintf(stderr, "\r\033[K");
    return r;
}

/* Sends u's file as the body of METHOD path on call, then closes the file.
 * Returns perform_upload's result (-1 when the request could not be set
 * up); u->read_errno says whether reading the file failed. */
static int send_file(qr_client_call_t *call, upload_t *u, const char *method, const char *path,
                     const char *content_type, const char *token)
{
    int r = qr_client_call_setup(call, method, path, "", 0, content_type, token);
    if (r == 0)
        r = perform_upload(call, u);
    if (u->fd != STDIN_FILENO)
        close(u->fd);
    return r;
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

/* What the import's flags add to its query. */
typedef struct import_flags_s {
    int allow_duplicates;
    int count_annotations;
    const char *delimiter; /* ",", ";", "|", "tab" or NULL */
    const char *external_id_key;
    const char *annotations_as;
} import_flags_t;

static int import_upload(qr_client_config_t *cfg, long long pid, const char *file,
                         const char *content_type, const import_flags_t *fl)
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
    char *ext = fl->external_id_key ? curl_easy_escape(call.easy, fl->external_id_key, 0) : NULL;
    char *as = fl->annotations_as ? curl_easy_escape(call.easy, fl->annotations_as, 0) : NULL;
    char *delim = fl->delimiter ? curl_easy_escape(call.easy, fl->delimiter, 0) : NULL;
    char *path =
        qr_xasprintf(QR_API_TASKS("%lld") "?import_key=%s&file_name=%s%s%s%s%s%s%s%s%s", pid, key,
                     name ? name : "", fl->allow_duplicates ? "&allow_duplicates=1" : "",
                     fl->count_annotations ? "&count_annotations=1" : "",
                     ext ? "&external_id_key=" : "", ext ? ext : "", as ? "&annotations_as=" : "",
                     as ? as : "", delim ? "&delimiter=" : "", delim ? delim : "");
    curl_free(name);
    curl_free(ext);
    curl_free(as);
    curl_free(delim);
    int r = send_file(&call, &u, "POST", path, content_type, cfg->token);
    free(path);
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
    if (r < 0 && u.stalled) {
        fprintf(stderr, "%s: import failed: the upload sent nothing for %d s (nothing imported)\n",
                prog, UPLOAD_STALL_MS / 1000);
        qr_client_call_free(&call);
        return QR_EXIT_ERROR;
    }
    if (r < 0) {
        /* Nothing was imported unless the whole body was sent; then the
         * import key tells. */
        int all_sent = body_all_sent(&u, &call);
        int refused = call.status >= 400 && call.status < 500;
        fprintf(stderr, "%s: import failed: %s%s\n", prog, call.message,
                refused ? (strstr(call.message, "nothing imported") ? "" : " (nothing imported)")
                : !all_sent ? " (nothing imported: the file was not all sent)"
                            : "");
        if (!refused && all_sent)
            fprintf(stderr,
                    "%s: the whole file was sent, so the broker may have committed the import: "
                    "`quorumctl import list --project %lld --import-key %s` tells\n",
                    prog, pid, key);
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

static int predictions_upload(qr_client_config_t *cfg, long long pid, const char *file);

/* What an upload needs, for Ctrl-C's wrapper below. */
typedef struct upload_job_s {
    qr_client_config_t *cfg;
    long long pid;
    const char *file;
    const char *content_type;
    const import_flags_t *fl; /* NULL: a predictions update */
} upload_job_t;

/* The upload with Ctrl-C counted from its start: a Ctrl-C before anything
 * was sent is answered in one line too. */
static int with_ctrl_c(const upload_job_t *j)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: a blocked open or read returns EINTR */
    sigemptyset(&sa.sa_mask);
    interrupts = 0;
    int have_old = sigaction(SIGINT, &sa, &old) == 0;
    int rc = j->fl ? import_upload(j->cfg, j->pid, j->file, j->content_type, j->fl)
                   : predictions_upload(j->cfg, j->pid, j->file);
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

/* The format of a file whose extension does not say it, from its first
 * bytes: '[' json, '{' jsonl, else csv. NULL when the file cannot be read
 * (the upload then reports it). */
static const char *sniff_format(const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0)
        return NULL;
    ssize_t i = 0;
    if (n >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
        i = 3;
    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i < n && buf[i] == '[')
        return "json";
    if (i < n && buf[i] == '{')
        return "jsonl";
    return "csv";
}

static int has_ext(const char *file, const char *ext)
{
    size_t n = strlen(file), e = strlen(ext);
    return n > e && !strcasecmp(file + n - e, ext);
}

int qr_ctl_import(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *file = NULL, *format = NULL;
    import_flags_t fl = {0};
    long long pid;

    if (argc > 1 && !strcmp(argv[1], "list"))
        return import_list(argc, argv, cfg);
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, import_help);
            return QR_EXIT_OK;
        }
        if (qr_cli_flag(argv[i], "--allow-duplicates", &fl.allow_duplicates) ||
            qr_cli_flag(argv[i], "--count-annotations", &fl.count_annotations))
            continue;
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--format", &format)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--delimiter", &fl.delimiter)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--external-id-key",
                                   &fl.external_id_key)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotations-as", &fl.annotations_as)) !=
                0) {
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
    if (fl.delimiter && strcmp(fl.delimiter, ",") && strcmp(fl.delimiter, ";") &&
        strcmp(fl.delimiter, "|") && strcmp(fl.delimiter, "tab") && strcmp(fl.delimiter, "\t"))
        return qr_cli_usage_error(
            prog, "import ", "import: --delimiter must be , ; | or tab, not '%s'", fl.delimiter);
    if (fl.delimiter && !strcmp(fl.delimiter, "\t"))
        fl.delimiter = "tab";
    if (!format) {
        format = has_ext(file, ".csv")                                 ? "csv"
                 : has_ext(file, ".tsv") || has_ext(file, ".tab")      ? "tsv"
                 : has_ext(file, ".json")                              ? "json"
                 : has_ext(file, ".jsonl") || has_ext(file, ".ndjson") ? "jsonl"
                 : !strcmp(file, "-")                                  ? "jsonl"
                                                                       : NULL;
        if (!format) {
            format = sniff_format(file);
            if (format)
                fprintf(stderr,
                        "%s: reading %s as %s (from its first bytes; --format jsonl|json|csv|tsv "
                        "to choose)\n",
                        prog, base_name(file), !strcmp(format, "csv") ? "CSV" : format);
            else
                format = "jsonl"; /* unreadable: the upload says why */
        }
    }
    const char *content_type = !strcmp(format, "csv")   ? "text/csv; charset=utf-8"
                               : !strcmp(format, "tsv") ? "text/tab-separated-values; charset=utf-8"
                               : !strcmp(format, "json")  ? "application/json"
                               : !strcmp(format, "jsonl") ? "application/x-ndjson"
                                                          : NULL;
    if (!content_type)
        return qr_cli_usage_error(
            prog, "import ", "import: --format must be jsonl, json, csv or tsv, not '%s'", format);
    upload_job_t job = {cfg, pid, file, content_type, &fl};
    return with_ctrl_c(&job);
}

/* --- quorumctl predictions ------------------------------------------------------------------ */

static const char predictions_help[] =
    "Usage: quorumctl predictions --project ID FILE|-\n"
    "\n"
    "Updates the predictions of tasks the project holds, in bulk, from a JSON\n"
    "lines file (or stdin with -): one line a task,\n"
    "  {\"task_id\": 17, \"value\": \"positive\", \"score\": 0.97, \"model_version\": \"m2\"}\n"
    "or {\"external_id\": \"rev-17\", ...} to name the task by its external id.\n"
    "\"value\" is one of the project's labels, or for a project with a label\n"
    "schema a labels object ({\"<field>\": value}; span fields cannot be\n"
    "predicted here: they need the task's text, so they come with the import);\n"
    "\"score\" is in [0, 1]. Each is optional: the task's prediction becomes\n"
    "exactly what its line says (a line with neither clears it).\n"
    "What follows at once: a project sampled by uncertainty serves the least\n"
    "confident tasks first by the new scores; with auto-accept on, an open task\n"
    "nobody labeled whose new score reaches the threshold is auto-accepted\n"
    "(unless drawn for the audit), and an auto-accepted one whose new score\n"
    "falls below it goes back to humans.\n"
    "All or nothing: a bad line (not JSON, an unknown key, a label the project\n"
    "does not have, a task it does not hold, a task named twice) fails the\n"
    "whole update, naming its line; nothing changes. Running the same file\n"
    "twice sets the same values twice.\n"
    "Ctrl-C before the whole file was sent stops the upload: nothing changes;\n"
    "after, the broker may still commit it (run the same file again to be sure).\n"
    "\n"
    "  --project ID   the project's id\n"
    "\n"
    "Reads:  FILE or stdin, JSON lines as above.\n"
    "Writes: stdout: \"updated 1000000 predictions (3120 auto-accepted, 4 reopened)\".\n"
    "\n"
    "Examples:\n"
    "  quorumctl predictions --project 3 predictions.jsonl\n"
    "  my-model --predict | quorumctl predictions --project 3 -\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error (a refused line too), 2\n"
    "usage error (an unreadable FILE too), 130 interrupted by Ctrl-C.\n";

static int predictions_upload(qr_client_config_t *cfg, long long pid, const char *file)
{
    upload_t u = {.doing = "updating the predictions"};
    if (open_input(file, &u) < 0)
        return interrupts ? QR_EXIT_INTERRUPTED : QR_EXIT_USAGE;
    qr_client_call_t call;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK) {
        if (u.fd != STDIN_FILENO)
            close(u.fd);
        return rc;
    }
    char *path = qr_xasprintf(QR_API_PREDICTIONS("%lld"), pid);
    int r = send_file(&call, &u, "PUT", path, "application/x-ndjson", cfg->token);
    free(path);
    if (u.read_errno) {
        fprintf(stderr, "%s: cannot read %s: %s (nothing updated)\n", prog, file,
                strerror(u.read_errno));
        qr_client_call_free(&call);
        return QR_EXIT_USAGE;
    }
    if (interrupts) {
        if (!u.body_done)
            fprintf(stderr, "%s: interrupted: the update was NOT committed (nothing changed)\n",
                    prog);
        else if (r == 0 && call.status < 300)
            fprintf(stderr, "%s: interrupted: the update WAS committed\n", prog);
        else if (call.status >= 400 && call.status < 500)
            fprintf(stderr, "%s: interrupted: the update was NOT committed: %s\n", prog,
                    call.message);
        else
            fprintf(stderr,
                    "%s: interrupted after the whole file was sent: the broker may still commit "
                    "the update; run the same file again to be sure\n",
                    prog);
        qr_client_call_free(&call);
        return QR_EXIT_INTERRUPTED;
    }
    if (r < 0) {
        /* Nothing changed unless the whole body was sent (the same file
         * again gives the same values). */
        int all_sent = body_all_sent(&u, &call);
        fprintf(stderr, "%s: predictions update failed: %s%s\n", prog,
                u.stalled ? "the upload sent nothing for 60 s" : call.message,
                call.status >= 400 && call.status < 500 ? " (nothing changed)"
                : !all_sent ? " (nothing changed: the file was not all sent)"
                            : " (the broker may have committed the update: run the same file "
                              "again to be sure)");
        qr_client_call_free(&call);
        return QR_EXIT_ERROR;
    }
    json_t *res = qr_cli_answer(&call);
    json_t *n = json_object_get(res, "updated");
    if (!json_is_integer(n)) {
        fprintf(stderr, "%s: %s\n", prog, res ? "broker's answer lacks \"updated\"" : call.message);
        rc = QR_EXIT_ERROR;
    } else {
        printf("updated %" JSON_INTEGER_FORMAT " predictions (%" JSON_INTEGER_FORMAT
               " auto-accepted, %" JSON_INTEGER_FORMAT " reopened)\n",
               json_integer_value(n), json_integer_value(json_object_get(res, "auto_accepted")),
               json_integer_value(json_object_get(res, "reopened")));
    }
    json_decref(res);
    qr_client_call_free(&call);
    return rc;
}

int qr_ctl_predictions(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *file = NULL;
    long long pid;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, predictions_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return qr_cli_usage_error(prog, "predictions ", "predictions: unknown flag '%s'",
                                      argv[i]);
        } else if (file) {
            return qr_cli_usage_error(prog, "predictions ",
                                      "predictions: only one FILE, got also '%s'", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (qr_cli_project_id(prog, "predictions ", project, &pid) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!file)
        return qr_cli_usage_error(prog, "predictions ",
                                  "predictions: FILE (or - for stdin) is required");
    upload_job_t job = {cfg, pid, file, "application/x-ndjson", NULL};
    return with_ctrl_c(&job);
}
