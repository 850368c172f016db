/*
 * agent_main.c - quorum-agent, the annotators' client: flag parsing, help
 * and the small commands (login, spool); the big ones live in their own
 * files: simulate.c (virtual crews), exec.c (a command as the annotator),
 * label.c (the terminal labeler).
 *
 * Connection settings come as one set from the first of flags, QUORUM_*
 * environment, profile (written by `login`), nearest .quorum/env that names
 * a URL, never mixed (qr_client_config_resolve_profile). Exit codes are
 * the QR_EXIT_* of protocol.h, listed in --help.
 */
#include "cli.h"
#include "client.h"
#include "exec.h"
#include "label.h"
#include "protocol.h"
#include "session.h"
#include "simulate.h"
#include "spool.h"
#include "spool_send.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Upper bound on --annotators: each holds a connection and a file descriptor. */
#define MAX_ANNOTATORS 20000

/* Appended to every help text after the connection flags. */
#define PROFILE_HELP                                                                               \
    "  --insecure     do NOT verify the broker's certificate (testing only; loud,\n"               \
    "                 never the default, never stored in a profile)\n"                             \
    "Where the URL comes from, in order: --url, QUORUM_URL, the profile written by\n"              \
    "`quorum-agent login` ($XDG_CONFIG_HOME/quorum/profile, else\n"                                \
    "~/.config/quorum/profile), the nearest .quorum/env; the token and CA come\n"                  \
    "from the same place (flags may complete QUORUM_URL's or the profile's).\n"

#define EXIT_CODES_HELP                                                                            \
    "Exit codes:\n"                                                                                \
    "  0  done: project complete, idle exit, or stopped with nothing left to send\n"               \
    "  1  broker or network error, or the run did not complete\n"                                  \
    "  2  usage or settings error\n"                                                               \
    "  3  the broker refused the token (401/403)\n"                                                \
    "  4  TLS certificate problem (wrong CA, name mismatch, bad client certificate)\n"             \
    "  5  no such project\n"                                                                       \
    "  6  the spool cannot be opened or written\n"                                                 \
    "  7  stopped with results still spooled (they are sent first at the next start)\n"            \
    "  8  the project is paused or archived (409 project_paused, project_archived):\n"             \
    "     no new task is leased, the tasks held are finished or given back first;\n"               \
    "     run again once it is resumed (an archived one takes no more work); also\n"               \
    "     when you are paused below the project's gold accuracy (403\n"                            \
    "     annotator_paused): run again once a manager reinstates you\n"                            \
    "  9  exec: CMD failed --max-failures times in a row (or --attempts times on one\n"            \
    "     task); its leases were released, spooled results are kept\n"

/* The "Commands:" section is read by tests/e2e/test_docs.sh: one command a
 * line, "  NAME [SUBCOMMAND|SUBCOMMAND] ARGS  description" (two spaces end the
 * synopsis). A command added here needs its row in README.md's table and a
 * --help with "Reads:", "Writes:" and an example. */
static const char main_help[] =
    "Usage: quorum-agent [CONNECTION FLAGS] COMMAND [ARGS]\n"
    "\n"
    "The annotators' client for a Quorum broker.\n"
    "\n"
    "Commands:\n"
    "  login      store the broker URL, token and CA in your profile (mode 0600)\n"
    "  label      label tasks interactively in this terminal\n"
    "  exec       let a program label tasks: task JSON on its stdin, result on stdout\n"
    "  spool      show results waiting in the local spool (or --send them)\n"
    "  simulate   run virtual annotators against a project (load tests, checks)\n"
    "\n"
    "Run `quorum-agent COMMAND --help` for a command's flags.\n"
    "\n"
    "Examples:\n"
    "  quorum-agent login --url https://broker:8443 --token qr_... --ca ca.crt\n"
    "  quorum-agent label --project 7\n"
    "  quorum-agent exec --project 7 --concurrency 4 -- python3 model.py\n"
    "  quorum-agent spool\n"
    "\n"
    "%s" PROFILE_HELP "\n" EXIT_CODES_HELP;

static const char simulate_help[] =
    "Usage: quorum-agent simulate --project ID --annotators N --accuracy P[-Q]\n"
    "           [--think-ms MIN[-MAX]] [--truth-field NAME] [--prefetch K] [--batch]\n"
    "           [--skip-rate P] [--release-rate P] [--abandon-rate P] [--wait-ms N]\n"
    "           [--urls URL1,URL2,...] [--ack-log FILE] [--duration S]\n"
    "           [--seed S] [--max-seconds S] [--json-summary FILE]\n"
    "           [--arrival-rate R] [--warmup S] [--think-lognormal MEDIAN_MS,SIGMA]\n"
    "           [--connect-first]\n"
    "       quorum-agent simulate --idle --project ID --annotators N [--wait-ms N]\n"
    "           [--spread-ms N] [--duration S] [--max-seconds S] [--json-summary FILE]\n"
    "\n"
    "Creates N annotator users (sim-<run>-<i>, new names each run) with the\n"
    "admin or manager token of the connection settings, then runs them in one\n"
    "process until the project is complete (or --duration is over). Each leases\n"
    "tasks, thinks, and submits the true label (the task data's truth field)\n"
    "with its accuracy, else a different label chosen uniformly; or skips,\n"
    "releases or abandons the lease at the given rates. Failed requests are\n"
    "retried with the same idempotency keys; expired leases are dropped.\n"
    "\n"
    "A project with a label schema gets a value for every field. The truth field\n"
    "is then an object by field name (a string is the first choice field's);\n"
    "fields it lacks get a truth derived from the task id, valid for the schema\n"
    "and the same for every annotator. With accuracy P: a choice is the truth\n"
    "with probability P, else another; a multi_choice flips each choice with\n"
    "probability (1-P)/2, then keeps within min..max; a rating is one or two\n"
    "steps off with probability 1-P; spans are each kept with probability P,\n"
    "else moved by 1-3 characters or dropped, and now and then one is added;\n"
    "boxes move by up to (1-P)*10 percent points, inside the image; a text gets\n"
    "a typo with probability 1-P. The \"correct\" column then counts field values\n"
    "equal to their truth; a value the broker refuses (422, field: reason) is\n"
    "logged on stderr and its lease dropped.\n"
    "\n"
    "  --project ID          the project's id\n"
    "  --annotators N        number of virtual annotators (1-20000)\n"
    "  --accuracy P[-Q]      probability of the true label, 0 to 1; with a range,\n"
    "                        each annotator's is drawn uniformly in [P, Q]\n"
    "  --think-ms MIN[-MAX]  think time per task, uniform in ms (default 0-5)\n"
    "  --think-lognormal MEDIAN_MS,SIGMA\n"
    "                        think time log-normal instead: MEDIAN_MS * e^(SIGMA*z),\n"
    "                        z standard normal (median 0-3600000 ms, sigma 0-5)\n"
    "  --truth-field NAME    task data field with the true label (default _true_label,\n"
    "                        else true_label; keys starting with _ are never shown\n"
    "                        to annotators); for a schema, an object by field name\n"
    "  --prefetch K          leases asked for at a time, 1-100 (default 1)\n"
    "  --batch               send the results of one lease request together in\n"
    "                        one batch submit (each with its own idempotency key)\n"
    "  --skip-rate P         fraction of leases skipped, with a reason (default 0)\n"
    "  --release-rate P      fraction of leases released, with a reason (default 0)\n"
    "  --abandon-rate P      fraction of leases silently dropped, left to expire on\n"
    "                        the broker (default 0); the three rates sum to <= 1.\n"
    "                        An annotator releases or abandons a task only once\n"
    "  --wait-ms N           lease requests wait up to N ms for work when none is\n"
    "                        ready (long poll; 0-60000, default 2000)\n"
    "  --urls URL1,URL2,...  brokers sharing one PostgreSQL and Redis: annotator i\n"
    "                        starts on URL[i mod n] and moves to the next one after\n"
    "                        a network error (instead of --url; same CA and token)\n"
    "  --ack-log FILE        append \"task_id<TAB>annotator<TAB>annotation_id<TAB>lease\"\n"
    "                        for every acknowledged submit (201 or 200 replayed),\n"
    "                        flushed as the acknowledgements arrive\n"
    "  --duration S          stop leasing after S seconds, finish and send what is\n"
    "                        held, and exit 0 even if the project is not complete\n"
    "                        (benchmarks)\n"
    "  --arrival-rate R      open loop: the crew is offered R tasks per second.\n"
    "                        An intent is one lease request of up to K tasks\n"
    "                        (--prefetch K, default 1); the crew's intents\n"
    "                        arrive as one Poisson process of rate R/K, whatever\n"
    "                        the broker answers, each taken by the annotator\n"
    "                        free longest (queued while none is free). An\n"
    "                        annotator serves one intent at a time: it leases,\n"
    "                        labels the tasks one after another (a think time\n"
    "                        each) and submits each when ready, or with --batch\n"
    "                        all in one batch submit once the last is ready\n"
    "                        (--prefetch 8 --batch: the shape of the batched\n"
    "                        capacity); an intent due while all are busy waits.\n"
    "                        Latencies run from the INTENDED time: lease granted\n"
    "                        - intent (one per intent); per result, submit\n"
    "                        acknowledged - (lease + the think times up to its\n"
    "                        own, or with --batch of all the tasks leased), waits\n"
    "                        included. Rates are in tasks/s.\n"
    "                        Every agent connects first (set-up, not measured)\n"
    "  --connect-first       connect every agent (its own TLS connection, its token\n"
    "                        checked) before the run starts, as the open loop\n"
    "                        always does: N handshakes at once are set-up, not\n"
    "                        the run's first seconds\n"
    "  --warmup S            the first S seconds are left out of the latencies\n"
    "                        (default 0; below --duration): with --arrival-rate,\n"
    "                        the intents before them (and out of the rates); else\n"
    "                        the lease and submit answers before them\n"
    "  --seed S              seed for label choices, think times and lease outcomes\n"
    "                        (default: random, printed in the summary); same seed,\n"
    "                        same decisions per task and annotator\n"
    "  --max-seconds S       give up (exit 1) after S seconds (default 600)\n"
    "  --json-summary FILE   also write the summary as JSON to FILE (completions,\n"
    "                        completions_per_second, lease_latency_ms and\n"
    "                        submit_latency_ms {p50, p99, p999, n}, requests,\n"
    "                        skipped, released, abandoned, errors by kind,\n"
    "                        loop_cpu_ms (this process's CPU from the run's\n"
    "                        start, set-up left out), ...;\n"
    "                        with --arrival-rate, open_loop {arrival_rate,\n"
    "                        offered_per_second, achieved_per_second (tasks/s),\n"
    "                        tasks_per_intent (K), batch, intents (lease\n"
    "                        requests), lease, submit and wait {p50, p99, p999,\n"
    "                        n}, waited_share, cpu_us_per_completion, ...})\n"
    "  --spool FILE          spool results in FILE (default: a private temporary\n"
    "                        directory, removed when the run ends with nothing\n"
    "                        pending); each result is fsynced before it is sent\n"
    "  --no-spool            do not spool (pure load tests)\n"
    "\n"
    "--idle: N connected agents that do no work (10,000 waiting agents, say).\n"
    "Each sits in long-poll lease requests (--wait-ms, default 30000) over\n"
    "keep-alive TLS connections (libcurl's pool, about one per agent); an agent\n"
    "handed a lease holds it and heartbeats it every lease_ttl_ms / 3, as\n"
    "`quorum-agent exec` does (sooner if an answer came late), never submitting\n"
    "it (so as many agents hold leases as the project has tasks). A failed\n"
    "request is retried after exponential backoff with jitter (200 ms doubling\n"
    "up to 5 s).\n"
    "SIGUSR1 marks a broker restart: stderr then says when every agent had an\n"
    "answer to a request sent after it (\"idle: all N agents served again S s\n"
    "after the mark\"). The run ends at --duration, SIGINT or SIGTERM (exit 0;\n"
    "the holders release their leases first). Without --accuracy; --batch,\n"
    "--prefetch, --think-ms, the rates, --ack-log and the spool do not apply.\n"
    "  --idle                connected idle agents (above)\n"
    "  --spread-ms N         each agent starts at a random offset in [0, N] ms\n"
    "                        (0-600000, default 5000; --idle only)\n"
    "\n"
    "Progress goes to stderr once a second (completions/s, lease p99); the\n"
    "summary (per annotator counts, total, elapsed, completions/s, latencies,\n"
    "errors by kind) to stdout.\n"
    "\n"
    "Reads:  each task's data as the broker sends it; the truth field names the\n"
    "        label to give, e.g. {\"text\": \"...\", \"_true_label\": \"sports\"}, or for\n"
    "        a schema the fields' values, {\"_true_label\": {\"sentiment\": \"pos\",\n"
    "        \"entities\": [{\"start\": 0, \"end\": 4, \"label\": \"ORG\"}]}}.\n"
    "Writes: stdout: the summary as text; stderr: a progress line a second;\n"
    "        --json-summary FILE: {\"completions\":6000,\"completions_per_second\":...,\n"
    "        \"lease_latency_ms\":{\"p50\":...,\"p99\":...,\"p999\":...,\"n\":...},...};\n"
    "        --ack-log FILE: lines task_id<TAB>annotator<TAB>annotation_id<TAB>lease,\n"
    "        e.g. \"5\tsim-ab12-3\t99\t1000017\".\n"
    "        --idle --json-summary FILE: {\"mode\":\"idle\",\"agents\":N,\"connected\":N,\n"
    "        \"connections\":...,\"long_polls\":...,\"heartbeats\":...,\"leases_lost\":0,\n"
    "        \"restart\":{\"mark_unix_ms\":...,\"served_again\":N,\n"
    "        \"all_served_again_seconds\":...},...}.\n"
    "\n"
    "Examples:\n"
    "  quorum-agent simulate --project 7 --annotators 8 --accuracy 0.7-0.95 --think-ms 200-2000\n"
    "  quorum-agent simulate --project 7 --annotators 1000 --accuracy 0.9 --think-ms 0 \\\n"
    "      --prefetch 8 --batch --no-spool --duration 30 --json-summary sim.json\n"
    "  quorum-agent simulate --project 7 --annotators 1000 --accuracy 0.9 --no-spool \\\n"
    "      --arrival-rate 3000 --think-lognormal 20,0.5 --warmup 5 --duration 20\n"
    "  quorum-agent simulate --project 7 --annotators 1000 --accuracy 0.9 --no-spool \\\n"
    "      --arrival-rate 4000 --prefetch 8 --batch --think-lognormal 10,0.5 \\\n"
    "      --warmup 5 --duration 20\n"
    "  quorum-agent simulate --idle --project 8 --annotators 10000 --wait-ms 30000 \\\n"
    "      --spread-ms 10000 --duration 120 --json-summary idle.json\n"
    "\n"
    "%s" PROFILE_HELP "\n"
    "Exit codes: 0 the project completed (or --duration ended cleanly), 1 broker\n"
    "or network error, --max-seconds reached first, or SIGINT/SIGTERM before the\n"
    "end, 2 usage error, 8 the project was paused (annotators finished what they\n"
    "held, then stopped).\n";

static const char login_help[] =
    "Usage: quorum-agent login --url URL --token TOKEN [--ca FILE] [--cert FILE --key FILE]\n"
    "           [--no-check]\n"
    "\n"
    "Checks the settings against the broker (TLS and token) and stores them in\n"
    "your profile, $XDG_CONFIG_HOME/quorum/profile (else ~/.config/quorum/profile),\n"
    "mode 0600 in a 0700 directory, read by every other command. File paths are\n"
    "stored absolute. Settings not given are taken from the environment.\n"
    "\n"
    "  --no-check   store without contacting the broker\n"
    "\n"
    "Reads:  the CA (and client certificate and key) files, PEM.\n"
    "Writes: the profile, lines such as QUORUM_URL='https://broker.example:8443'\n"
    "        (the same shape as .quorum/env); stdout: \"logged in to URL; settings\n"
    "        stored in PATH\".\n"
    "\n"
    "Example:\n"
    "  quorum-agent login --url https://broker.example:8443 --token qr_... --ca ca.crt\n"
    "\n"
    "%s"
    "\n" EXIT_CODES_HELP;

static const char exec_help[] =
    "Usage: quorum-agent exec --project ID [--concurrency N] [--persistent]\n"
    "           [--timeout-ms T] [--max-failures N] [--attempts K] [--idle-exit S]\n"
    "           [--spool FILE] -- CMD [ARGS]\n"
    "\n"
    "Lets a program label tasks. For each leased task CMD gets on stdin one JSON\n"
    "object: {\"project\": 7, \"lease\": \"17\", \"task_id\": 5, \"labels\": [...],\n"
    "\"data\": {...}} and answers on stdout {\"label\": \"positive\"} (or {\"skip\": true,\n"
    "\"reason\": \"...\"}) and exits 0. With --persistent one CMD per worker stays\n"
    "up and gets one task per line, answering one line per task.\n"
    "For a project with a label schema the object also has \"schema\":\n"
    "{\"fields\": [...]} (the project's; its \"labels\" is then []) and CMD answers\n"
    "{\"labels\": {\"sentiment\": \"pos\", \"tags\": [\"a\"], ...}}, a value per field;\n"
    "{\"labels\": ...} is taken for plain projects too. The broker checks every\n"
    "value: a refusal (422, \"<field>: <reason>\") is a failure of CMD, with that\n"
    "reason.\n"
    "In a project that shows predictions (show_predictions), a task with one also\n"
    "has \"prediction\": {\"label\" (or \"labels\"), \"score\", \"model_version\"}.\n"
    "A CMD that cannot be started, exits non-zero or crashes, gives no answer within\n"
    "the timeout, or answers invalid JSON or a label not among the project's has\n"
    "failed: the lease is released with the reason (never skipped: the task goes\n"
    "back to the queue) and the agent goes on; a valid answer resets the count.\n"
    "After N failures in a row (or K of one task) exec stops: it releases every\n"
    "lease it holds, prints one line naming the cause and exits 9. Only CMD's\n"
    "{\"skip\": true} skips a task. Heartbeats keep the lease while CMD runs.\n"
    "Results are spooled (fsynced) before they are sent; spooled results are sent\n"
    "first at start-up. SIGINT/SIGTERM stop cleanly, releasing leases.\n"
    "\n"
    "  --project ID       the project's id\n"
    "  --concurrency N    tasks worked on at once, 1-256 (default 1)\n"
    "  --persistent       keep one CMD per worker, JSON lines\n"
    "  --timeout-ms T     per task (default 60000)\n"
    "  --max-failures N   failures in a row that stop exec, 1-1000 (default 3)\n"
    "  --attempts K       failures of one task that stop exec, 1-1000 (default 3)\n"
    "  --idle-exit S      exit 0 after S seconds without a task (default: wait for\n"
    "                     the project to complete)\n"
    "  --spool FILE       spool file (default $XDG_STATE_HOME/quorum/spool, else\n"
    "                     ~/.local/state/quorum/spool)\n"
    "\n"
    "Reads:  CMD's stdout: one JSON object, {\"label\": \"positive\"},\n"
    "        {\"labels\": {\"sentiment\": \"pos\", \"score\": 4}} (schema projects) or\n"
    "        {\"skip\": true, \"reason\": \"unreadable\"} (one line per task with\n"
    "        --persistent).\n"
    "Writes: CMD's stdin: one JSON object per task, {\"project\": 7, \"lease\":\n"
    "        \"1000001\", \"task_id\": 5, \"labels\": [\"positive\", \"negative\"],\n"
    "        \"data\": {\"text\": \"great\"}} (keys starting with _ left out of data;\n"
    "        \"schema\": {...} besides for a project with a label schema);\n"
    "        the spool FILE; stderr when it stops: \"quorum-agent: exec: 40 submitted\n"
    "        (0 replayed), 0 released, 2 skipped, 0 rejected; project complete\".\n"
    "\n"
    "Example:\n"
    "  quorum-agent exec --project 7 --concurrency 4 --timeout-ms 5000 -- ./classify.py\n"
    "\n"
    "%s" PROFILE_HELP "\n" EXIT_CODES_HELP;

static const char spool_help[] =
    "Usage: quorum-agent spool [--spool FILE] [--json] [--send]\n"
    "\n"
    "Shows the results waiting in the spool (not yet acknowledged by a broker),\n"
    "and whether its tail is torn (a write cut by a crash or power loss: the\n"
    "records before it are intact; the next exec or label moves the torn bytes\n"
    "to FILE.torn-<ms> and goes on). Read-only unless --send.\n"
    "\n"
    "  --spool FILE   spool file (default $XDG_STATE_HOME/quorum/spool, else\n"
    "                 ~/.local/state/quorum/spool)\n"
    "  --json         one JSON object per pending result, one per line\n"
    "  --send         send now, through the configured broker, the results of its\n"
    "                 deployment and of the token's user (made through any broker\n"
    "                 of that deployment); results of another deployment or user\n"
    "                 are never sent: one line per kind says why, and the exit\n"
    "                 status is 7\n"
    "\n"
    "Reads:  the spool FILE (records of JSON, each with a CRC-32).\n"
    "Writes: stdout: \"spool FILE: N result(s) pending\", then a row per result\n"
    "        (id, spooled at, project, task, lease, label, made for); with --json\n"
    "        one line per result, {\"id\":1,\"result\":{\"project\":7,\"lease\":\n"
    "        \"1000001\",\"label\":\"positive\",...}}; --send: \"sent: 3 stored\n"
    "        (0 replayed), 0 rejected; 0 pending\".\n"
    "\n"
    "Examples:\n"
    "  quorum-agent spool                 # what is waiting, and whether the tail is torn\n"
    "  quorum-agent spool --json | jq .   # the same, one JSON object per result\n"
    "  quorum-agent spool --send          # send them now to the configured broker\n"
    "\n"
    "%s" PROFILE_HELP "\n" EXIT_CODES_HELP;

static const char label_help[] =
    "Usage: quorum-agent label --project ID [--prefetch K] [--spool FILE]\n"
    "\n"
    "Label tasks interactively in this terminal (80x24 or larger; resizing is\n"
    "fine). The screen shows the task's fields, the numbered choices, your\n"
    "progress (done today, annotations left in the queue) and the time the task\n"
    "has been on screen, which is sent with the label as active_ms.\n"
    "\n"
    "Keys: 1-9 (0 for the 10th) choose a label and submit it; s skip the task\n"
    "(you will not get it again); r release it (back to the queue); u undo the\n"
    "last submit while the lease it was submitted on lasts (the task comes back\n"
    "on screen to be labeled again; once that lease has ended the label is kept\n"
    "and the status line says so); q quit, giving back every task held. Ctrl-C\n"
    "quits the same way. In a project that shows predictions, the task's model\n"
    "prediction is shown under its title (\"model suggests: positive (score\n"
    "0.93)\"); a submits it.\n"
    "\n"
    "A project with a label schema is labeled one field at a time, then submitted:\n"
    "choice: a digit; multi_choice: digits toggle, Enter confirms; rating: a digit\n"
    "on a scale of whole numbers within 0-9, else type the number and Enter; text:\n"
    "type it and Enter (while typing, Ctrl-S skips the task and Ctrl-R releases\n"
    "it). Esc goes back a field; n leaves out a field that is not required. spans\n"
    "and boxes cannot be drawn here: such a field is left out when it is not\n"
    "required; a project that requires one is refused (exit 2) before anything is\n"
    "leased: label it with `quorum-agent exec` or `simulate`.\n"
    "\n"
    "The next K tasks are leased ahead so the next one appears at once; a\n"
    "background thread beats their heartbeats. Labels are spooled (fsynced)\n"
    "before they are sent: each label, skip, release and undo is on disk before\n"
    "the next task shows. While the broker is unreachable the status line says\n"
    "how many labels are kept on disk and you go on with the tasks leased ahead;\n"
    "they are sent first at the next start (or by `quorum-agent spool --send`),\n"
    "through any broker of the same deployment. q waits at most 3 s for the\n"
    "broker: leases it cannot give back expire on their own. The summary counts\n"
    "what the broker stored. Refuses to run when stdin is not a terminal.\n"
    "\n"
    "  --project ID    the project's id\n"
    "  --prefetch K    tasks leased ahead, 0-10 (default 2)\n"
    "  --spool FILE    spool file (default $XDG_STATE_HOME/quorum/spool, else\n"
    "                  ~/.local/state/quorum/spool)\n"
    "\n"
    "Reads:  keys from the terminal; each task's data, shown field by field\n"
    "        (keys starting with _ are not shown).\n"
    "Writes: the screen; the spool FILE; stdout when it quits: \"quorum-agent:\n"
    "        label: 12 labels stored by the broker, 1 skipped, 0 released\".\n"
    "\n"
    "Example:\n"
    "  quorum-agent label --project 7\n"
    "\n"
    "%s" PROFILE_HELP "\n" EXIT_CODES_HELP;

static const char *const prog = "quorum-agent";

/* Connection flags plus --insecure: see qr_cli_config_flag. */
static int agent_flag(qr_client_config_t *cfg, const char *prog, int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--insecure") == 0) {
        cfg->insecure = 1;
        return 1;
    }
    return qr_cli_config_flag(cfg, prog, argc, argv, i);
}

/* Resolves the settings (one source: flags, env, profile or .quorum/env);
 * prints the reason and returns -1 when they are incomplete or mixed. */
static int resolve_settings(qr_client_config_t *cfg)
{
    char err[512];
    if (qr_client_config_resolve_profile(cfg, 1, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "quorum-agent: %s\n", err);
        return -1;
    }
    if (cfg->insecure)
        fprintf(stderr,
                "quorum-agent: WARNING: --insecure: the broker's TLS certificate is NOT "
                "verified;\nquorum-agent: WARNING: anyone on the network path can read your "
                "token and your labels.\n");
    return 0;
}

/* "MIN" or "MIN-MAX" in ms, 0 <= MIN <= MAX <= 1 hour. */
static int parse_think(const char *s, int *min, int *max)
{
    const char *dash = strchr(s, '-');
    long long lo, hi;
    char first[32];
    if (!dash)
        return qr_cli_parse_ll(s, 0, 3600000, &lo) < 0 ? -1 : (*min = *max = (int)lo, 0);
    if ((size_t)(dash - s) >= sizeof first)
        return -1;
    memcpy(first, s, (size_t)(dash - s));
    first[dash - s] = '\0';
    if (qr_cli_parse_ll(first, 0, 3600000, &lo) < 0 ||
        qr_cli_parse_ll(dash + 1, 0, 3600000, &hi) < 0 || hi < lo)
        return -1;
    *min = (int)lo;
    *max = (int)hi;
    return 0;
}

/* "MEDIAN_MS,SIGMA" with 0 < MEDIAN_MS <= 1 hour and 0 <= SIGMA <= 5. */
static int parse_lognormal(const char *s, double *median, double *sigma)
{
    const char *comma = strchr(s, ',');
    char first[64];
    if (!comma || (size_t)(comma - s) >= sizeof first)
        return -1;
    memcpy(first, s, (size_t)(comma - s));
    first[comma - s] = '\0';
    if (qr_cli_parse_double(first, 0.0, 3600000.0, median) < 0 || !(*median > 0) ||
        qr_cli_parse_double(comma + 1, 0.0, 5.0, sigma) < 0)
        return -1;
    return 0;
}

/* "P" or "P-Q" with 0 <= P <= Q <= 1. */
static int parse_accuracy(const char *s, double *lo, double *hi)
{
    if (qr_cli_parse_double(s, 0.0, 1.0, lo) == 0) {
        *hi = *lo;
        return 0;
    }
    const char *dash = strchr(s, '-');
    char first[64];
    if (!dash || (size_t)(dash - s) >= sizeof first)
        return -1;
    memcpy(first, s, (size_t)(dash - s));
    first[dash - s] = '\0';
    if (qr_cli_parse_double(first, 0.0, 1.0, lo) < 0 ||
        qr_cli_parse_double(dash + 1, 0.0, 1.0, hi) < 0 || *hi < *lo)
        return -1;
    return 0;
}

/* Splits "URL1,URL2,..." into *urls (heap copies, trailing '/' removed).
 * Returns the count, or -1 on an empty entry or a URL that is not https. */
static int split_urls(const char *list, char ***urls)
{
    int n = 0;
    char **out = NULL;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == '/')
            len--;
        if (len == 0 || strncmp(p, "https://", 8) != 0 || len <= 8) {
            for (int i = 0; i < n; i++)
                free(out[i]);
            free(out);
            *urls = NULL;
            return -1;
        }
        out = qr_xrealloc(out, (size_t)(n + 1) * sizeof *out);
        out[n++] = qr_xstrndup(p, len);
        if (!end)
            break;
        p = end + 1;
    }
    *urls = out;
    return n;
}

static int cmd_simulate(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *annotators = NULL, *accuracy = NULL, *think = NULL, *truth = NULL,
               *prefetch = NULL, *seed = NULL, *max_seconds = NULL, *summary = NULL, *spool = NULL,
               *skip = NULL, *release = NULL, *abandon = NULL, *wait = NULL, *ack_log = NULL,
               *urls = NULL, *duration = NULL, *arrival = NULL, *warmup = NULL, *lognormal = NULL,
               *spread = NULL;
    int no_spool = 0, batch = 0, connect_first = 0, idle = 0;
    qr_sim_options_t opt;
    long long v;

    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, simulate_help);
            return 0;
        }
        if ((r = agent_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--spool", &spool)) != 0 ||
            (r = qr_cli_flag(argv[i], "--no-spool", &no_spool)) != 0 ||
            (r = qr_cli_flag(argv[i], "--batch", &batch)) != 0 ||
            (r = qr_cli_flag(argv[i], "--connect-first", &connect_first)) != 0 ||
            (r = qr_cli_flag(argv[i], "--idle", &idle)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--spread-ms", &spread)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--annotators", &annotators)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--accuracy", &accuracy)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--think-ms", &think)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--truth-field", &truth)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--prefetch", &prefetch)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--seed", &seed)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--max-seconds", &max_seconds)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--json-summary", &summary)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--skip-rate", &skip)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--release-rate", &release)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--abandon-rate", &abandon)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--wait-ms", &wait)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--ack-log", &ack_log)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--urls", &urls)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--duration", &duration)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--arrival-rate", &arrival)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--warmup", &warmup)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--think-lognormal", &lognormal)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "simulate ", "simulate: unexpected argument '%s'",
                                      argv[i]);
        }
    }

    memset(&opt, 0, sizeof opt);
    if (qr_cli_project_id(prog, "simulate ", project, &opt.project) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (!annotators)
        return qr_cli_usage_error(prog, "simulate ", "simulate: --annotators N is required");
    if (qr_cli_parse_ll(annotators, 1, MAX_ANNOTATORS, &v) < 0)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --annotators must be 1-%d, not '%s'", MAX_ANNOTATORS,
                                  annotators);
    opt.annotators = (int)v;
    if (idle) {
        const char *given = batch           ? "--batch"
                            : accuracy      ? "--accuracy"
                            : think         ? "--think-ms"
                            : truth         ? "--truth-field"
                            : prefetch      ? "--prefetch"
                            : skip          ? "--skip-rate"
                            : release       ? "--release-rate"
                            : abandon       ? "--abandon-rate"
                            : ack_log       ? "--ack-log"
                            : spool         ? "--spool"
                            : arrival       ? "--arrival-rate"
                            : lognormal     ? "--think-lognormal"
                            : connect_first ? "--connect-first"
                            : warmup        ? "--warmup"
                                            : NULL;
        if (given)
            return qr_cli_usage_error(
                prog, "simulate ", "simulate: --idle sends no results: %s does not apply", given);
        accuracy = "1";
    } else if (spread) {
        return qr_cli_usage_error(prog, "simulate ", "simulate: --spread-ms needs --idle");
    }
    opt.idle = idle;
    opt.spread_ms = 5000;
    if (spread) {
        if (qr_cli_parse_ll(spread, 0, 600000, &v) < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: --spread-ms must be 0-600000, not '%s'", spread);
        opt.spread_ms = (int)v;
    }
    if (!accuracy)
        return qr_cli_usage_error(prog, "simulate ", "simulate: --accuracy P is required");
    if (parse_accuracy(accuracy, &opt.accuracy, &opt.accuracy_max) < 0)
        return qr_cli_usage_error(
            prog, "simulate ",
            "simulate: --accuracy must be P or P-Q with 0 <= P <= Q <= 1, not '%s'", accuracy);
    opt.think_min_ms = 0;
    opt.think_max_ms = 5;
    if (think && parse_think(think, &opt.think_min_ms, &opt.think_max_ms) < 0)
        return qr_cli_usage_error(
            prog, "simulate ",
            "simulate: --think-ms must be MIN or MIN-MAX in ms (MIN <= MAX <= "
            "3600000), not '%s'",
            think);
    if (lognormal && think)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --think-ms and --think-lognormal exclude each other");
    if (lognormal && parse_lognormal(lognormal, &opt.think_median_ms, &opt.think_sigma) < 0)
        return qr_cli_usage_error(
            prog, "simulate ",
            "simulate: --think-lognormal must be MEDIAN_MS,SIGMA with 0 < MEDIAN_MS <= 3600000 "
            "and 0 <= SIGMA <= 5, not '%s'",
            lognormal);
    opt.truth_field = truth ? truth : QR_SIM_TRUTH_FIELD;
    if (!opt.truth_field[0])
        return qr_cli_usage_error(prog, "simulate ", "simulate: --truth-field must not be empty");
    opt.prefetch = 1;
    if (prefetch) {
        if (qr_cli_parse_ll(prefetch, 1, 100, &v) < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: --prefetch must be 1-100, not '%s'", prefetch);
        opt.prefetch = (int)v;
    }
    opt.batch = batch;
    opt.connect_first = connect_first;
    const char *rate_names[] = {"--skip-rate", "--release-rate", "--abandon-rate"};
    const char *rate_values[] = {skip, release, abandon};
    double *rate_slots[] = {&opt.skip_rate, &opt.release_rate, &opt.abandon_rate};
    for (int k = 0; k < 3; k++) {
        if (rate_values[k] && qr_cli_parse_double(rate_values[k], 0.0, 1.0, rate_slots[k]) < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: %s must be between 0 and 1, not '%s'",
                                      rate_names[k], rate_values[k]);
    }
    if (opt.skip_rate + opt.release_rate + opt.abandon_rate > 1.0 + 1e-9)
        return qr_cli_usage_error(
            prog, "simulate ",
            "simulate: --skip-rate, --release-rate and --abandon-rate add up to "
            "more than 1");
    opt.wait_ms = idle ? 30000 : 2000;
    if (wait) {
        if (qr_cli_parse_ll(wait, 0, 60000, &v) < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: --wait-ms must be 0-60000, not '%s'", wait);
        opt.wait_ms = (int)v;
    }
    if (duration && qr_cli_parse_double(duration, 0.001, 1e7, &opt.duration) < 0)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --duration must be a positive number, not '%s'",
                                  duration);
    if (arrival && qr_cli_parse_double(arrival, 0.001, 1e6, &opt.arrival_rate) < 0)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --arrival-rate must be a number of tasks per "
                                  "second from 0.001 to 1000000, not '%s'",
                                  arrival);
    if (warmup && qr_cli_parse_double(warmup, 0.0, 1e7, &opt.warmup) < 0)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --warmup must be a number of seconds >= 0, not '%s'",
                                  warmup);
    if (warmup && opt.duration > 0 && opt.warmup >= opt.duration)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --warmup %s leaves nothing of --duration %s to "
                                  "measure: it must be shorter",
                                  warmup, duration);
    opt.ack_log = ack_log;
    if (ack_log && !ack_log[0])
        return qr_cli_usage_error(prog, "simulate ", "simulate: --ack-log must name a file");
    if (seed) {
        if (qr_cli_parse_ll(seed, 0, INT64_MAX, &v) < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: --seed must be a non-negative integer, not '%s'",
                                      seed);
        opt.seed = (uint64_t)v;
    } else {
        char hex[17];
        if (qr_random_hex(7, hex) < 0) {
            fprintf(stderr,
                    "quorum-agent: cannot draw random bytes for a seed; give one with --seed N\n");
            return 1;
        }
        opt.seed = strtoull(hex, NULL, 16); /* 56 bits: fits a JSON integer */
    }
    /* An idle run of a given duration is not cut short by the default. */
    opt.max_seconds = idle && opt.duration > 0 ? opt.duration + 60 : 600;
    if (max_seconds && qr_cli_parse_double(max_seconds, 0.001, 1e7, &opt.max_seconds) < 0)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --max-seconds must be a positive number, not '%s'",
                                  max_seconds);
    opt.json_summary = summary;
    if (spool && no_spool)
        return qr_cli_usage_error(prog, "simulate ",
                                  "simulate: --spool and --no-spool exclude each other");
    opt.spool_path = spool;
    opt.use_spool = !no_spool;
    if (urls) {
        opt.nurls = split_urls(urls, &opt.urls);
        if (opt.nurls < 0)
            return qr_cli_usage_error(prog, "simulate ",
                                      "simulate: --urls must be a comma-separated list of https:// "
                                      "URLs, not '%s'",
                                      urls);
        /* The first broker is the one the settings name (for the project and
         * user set-up); the others share its token and CA. */
        free(cfg->url);
        cfg->url = qr_xstrdup(opt.urls[0]);
    }

    int rc = QR_EXIT_USAGE;
    if (resolve_settings(cfg) < 0)
        goto out;
    rc = 1;
    if (qr_client_global_init() < 0)
        goto out;
    rc = qr_sim_run(&opt, cfg);
    qr_client_global_cleanup();
out:
    for (int i = 0; i < opt.nurls; i++)
        free(opt.urls[i]);
    free(opt.urls);
    return rc;
}

static int cmd_login(int argc, char **argv, qr_client_config_t *cfg)
{
    int no_check = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, login_help);
            return 0;
        }
        if (strcmp(argv[i], "--insecure") == 0)
            return qr_cli_usage_error(prog, "login ",
                                      "login: --insecure is never stored in a profile");
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_flag(argv[i], "--no-check", &no_check)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "login ", "login: unexpected argument '%s'", argv[i]);
        }
    }
    /* Not the profile: an older profile must not fill gaps. */
    char err[512];
    char *none = qr_xstrdup("/nonexistent/quorum-profile");
    int r = qr_client_config_resolve_profile(cfg, 1, none, err, sizeof err);
    free(none);
    if (r < 0) {
        fprintf(stderr, "quorum-agent: login: %s\n", err);
        return QR_EXIT_USAGE;
    }
    if (!no_check) {
        qr_client_call_t call;
        if (qr_client_global_init() < 0)
            return QR_EXIT_ERROR;
        if (qr_client_call_init(&call, cfg, 15000) < 0) {
            fprintf(stderr, "quorum-agent: login: %s\n", call.message);
            qr_client_call_free(&call);
            qr_client_global_cleanup();
            return QR_EXIT_ERROR;
        }
        /* Project 0 never exists: 403 "no access to project 0" (or 404 from
         * an older broker) proves TLS and the token are good. */
        r = qr_cli_call(&call, "GET", QR_API_PROJECT("0"), NULL, NULL);
        int code = 0;
        if (r < 0 && agent_exit_code(&call) != QR_EXIT_PROJECT) {
            fprintf(stderr, "quorum-agent: login: %s\n", call.message);
            code = agent_exit_code(&call);
            if (code == QR_EXIT_PROJECT)
                code = QR_EXIT_ERROR;
        }
        qr_client_call_free(&call);
        qr_client_global_cleanup();
        if (code)
            return code;
    }
    char *path = qr_client_profile_path();
    if (!path) {
        fprintf(stderr, "quorum-agent: login: neither XDG_CONFIG_HOME nor HOME is set\n");
        return QR_EXIT_USAGE;
    }
    if (qr_client_profile_write(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "quorum-agent: login: %s\n", err);
        free(path);
        return QR_EXIT_ERROR;
    }
    printf("logged in to %s; settings stored in %s\n", cfg->url, path);
    free(path);
    return 0;
}

/* Opens the spool at path (NULL: the default). Returns 0, or an exit code
 * with the reason printed. Reports a torn tail. */
static int open_spool(qr_spool_t *sp, const char *path, int flags)
{
    char *def = path ? NULL : agent_default_spool_path();
    if (!path && !def)
        return QR_EXIT_SPOOL;
    int rc = qr_spool_open(sp, path ? path : def, flags);
    free(def);
    if (rc < 0) {
        fprintf(stderr, "quorum-agent: %s\n", sp->errstr);
        return QR_EXIT_SPOOL;
    }
    if (sp->torn_offset >= 0) {
        fprintf(stderr,
                "quorum-agent: spool %s: torn record at byte %lld (%s); the %zu result(s) "
                "before it are intact; %lld byte(s) after it %s%s\n",
                sp->path, (long long)sp->torn_offset, sp->torn_reason, sp->npending,
                (long long)sp->torn_bytes,
                sp->torn_copy ? "were moved to " : "are ignored (read-only)",
                sp->torn_copy ? sp->torn_copy : "");
    }
    return 0;
}

/* What exec and label do before their run: the settings resolved, the
 * spool at spool_path (NULL: the default) open, libcurl initialised.
 * Returns 0, or the exit code (reason printed). */
static int begin_run(qr_client_config_t *cfg, const char *spool_path, qr_spool_t *spool)
{
    if (resolve_settings(cfg) < 0)
        return QR_EXIT_USAGE;
    int rc = open_spool(spool, spool_path, 0);
    if (rc)
        return rc;
    if (qr_client_global_init() < 0) {
        qr_spool_close(spool);
        return QR_EXIT_ERROR;
    }
    return 0;
}

/* ... and after it, which ended with exit code rc: says what stays
 * spooled, closes the spool. Returns rc. */
static int end_run(qr_spool_t *spool, int rc)
{
    qr_client_global_cleanup();
    if (spool->npending)
        fprintf(stderr, "quorum-agent: %zu result(s) stay in spool %s\n", spool->npending,
                spool->path);
    qr_spool_close(spool);
    return rc;
}

static int cmd_exec(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *spool_path = NULL;
    qr_exec_flags_t f = {0};
    int persistent = 0, i;
    qr_exec_options_t opt;

    for (i = 1; i < argc; i++) {
        int r;
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, exec_help);
            return 0;
        }
        if ((r = agent_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--concurrency", &f.concurrency)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--timeout-ms", &f.timeout_ms)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--attempts", &f.attempts)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--max-failures", &f.max_failures)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--idle-exit", &f.idle_exit)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--spool", &spool_path)) != 0 ||
            (r = qr_cli_flag(argv[i], "--persistent", &persistent)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(
                prog, "exec ", "exec: unexpected argument '%s' (CMD goes after --)", argv[i]);
        }
    }
    memset(&opt, 0, sizeof opt);
    if (i >= argc)
        return qr_cli_usage_error(prog, "exec ", "exec: no command: give -- CMD [ARGS]");
    opt.argv = (const char **)(argv + i); /* argv is NULL-terminated */
    if (qr_cli_project_id(prog, "exec ", project, &opt.project) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    if (qr_exec_options_set(&opt, &f, prog) != 0)
        return QR_EXIT_USAGE;
    opt.persistent = persistent;
    qr_spool_t spool;
    int rc = begin_run(cfg, spool_path, &spool);
    if (rc)
        return rc;
    return end_run(&spool, qr_exec_run(&opt, cfg, &spool));
}

static int cmd_label(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *project = NULL, *prefetch = NULL, *spool_path = NULL;
    qr_label_options_t opt;
    long long v;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, label_help);
            return 0;
        }
        if ((r = agent_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--project", &project)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--prefetch", &prefetch)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--spool", &spool_path)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "label ", "label: unexpected argument '%s'", argv[i]);
        }
    }
    memset(&opt, 0, sizeof opt);
    if (qr_cli_project_id(prog, "label ", project, &opt.project) != QR_EXIT_OK)
        return QR_EXIT_USAGE;
    opt.prefetch = 2;
    if (prefetch) {
        if (qr_cli_parse_ll(prefetch, 0, 10, &v) < 0)
            return qr_cli_usage_error(prog, "label ", "label: --prefetch must be 0-10, not '%s'",
                                      prefetch);
        opt.prefetch = (int)v;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "quorum-agent: label needs a terminal on stdin and stdout; for "
                        "programs use `quorum-agent exec`\n");
        return QR_EXIT_USAGE;
    }
    qr_spool_t spool;
    int rc = begin_run(cfg, spool_path, &spool);
    if (rc)
        return rc;
    return end_run(&spool, qr_label_run(&opt, cfg, &spool));
}

static int cmd_spool(int argc, char **argv, qr_client_config_t *cfg)
{
    const char *path = NULL;
    int as_json = 0, send = 0, rc;
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, spool_help);
            return 0;
        }
        if ((r = agent_flag(cfg, prog, argc, argv, &i)) != 0 ||
            (r = qr_cli_take_value(prog, argc, argv, &i, "--spool", &path)) != 0 ||
            (r = qr_cli_flag(argv[i], "--json", &as_json)) != 0 ||
            (r = qr_cli_flag(argv[i], "--send", &send)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
        } else {
            return qr_cli_usage_error(prog, "spool ", "spool: unexpected argument '%s'", argv[i]);
        }
    }
    if (send && resolve_settings(cfg) < 0)
        return QR_EXIT_USAGE;
    qr_spool_t sp;
    char *def = path ? NULL : agent_default_spool_path();
    if (!path && !def)
        return QR_EXIT_SPOOL;
    if (!send && access(path ? path : def, F_OK) != 0) {
        if (!as_json)
            printf("spool %s: no file, nothing pending\n", path ? path : def);
        free(def);
        return 0;
    }
    rc = open_spool(&sp, path ? path : def, send ? 0 : QR_SPOOL_READONLY);
    free(def);
    if (rc)
        return rc;
    rc = 0;
    if (send && qr_client_global_init() < 0) {
        rc = QR_EXIT_ERROR;
    } else if (send) {
        rc = agent_spool_send(&sp, cfg);
        qr_client_global_cleanup();
    } else {
        agent_spool_list(&sp, as_json);
    }
    qr_spool_close(&sp);
    return rc;
}

/* Every command main dispatches, for "did you mean" on a typo. */
static const char *const commands[] = {"simulate", "login", "label", "exec", "spool", "help", NULL};

int main(int argc, char **argv)
{
    qr_client_config_t cfg;
    int i = 1, rc;

    qr_client_config_init(&cfg);
    rc = qr_cli_leading_flags(prog, main_help, agent_flag, &cfg, argc, argv, &i);
    if (rc >= 0) {
        qr_client_config_free(&cfg);
        return rc;
    }
    if (strcmp(argv[i], "simulate") == 0)
        rc = cmd_simulate(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "login") == 0)
        rc = cmd_login(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "label") == 0)
        rc = cmd_label(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "exec") == 0)
        rc = cmd_exec(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "spool") == 0)
        rc = cmd_spool(argc - i, argv + i, &cfg);
    else if (strcmp(argv[i], "help") == 0)
        rc = (qr_cli_help(stdout, main_help), 0);
    else
        rc = qr_cli_unknown_command(prog, argv[i], commands);
    qr_client_config_free(&cfg);
    return rc;
}
