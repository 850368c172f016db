/*
 * quorumd_main.c - the quorumd command: `serve` (the broker), `migrate`
 * (apply sql/) and `bootstrap-admin` (first admin token). Every flag has an
 * environment variable; flags win. Every long option is also a key of the
 * --config file, which both override.
 */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "api.h"
#include "broker.h"
#include "conf.h"
#include "lease.h"
#include "log.h"
#include "loop_watch.h"
#include "tls.h"
#include "util.h"

static const char *default_sql_dir(void);

/* The "Commands:" section is read by tests/e2e/test_docs.sh: one command a
 * line, "  NAME [SUBCOMMAND|SUBCOMMAND] ARGS  description" (two spaces end the
 * synopsis). A command added here needs its row in README.md's table and a
 * --help with "Reads:", "Writes:" and an example. */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: quorumd [COMMAND] [options]\n"
            "\n"
            "quorumd leases labeling tasks to annotator agents through Redis and stores\n"
            "every annotation in PostgreSQL. Any number of brokers may share one\n"
            "PostgreSQL and one Redis.\n"
            "\n"
            "Commands:\n"
            "  serve [options]        run the broker (HTTPS API); the default command\n"
            "  migrate [--pg CONNINFO] [--sql-dir DIR]\n"
            "                         apply the migrations of DIR not applied yet, in order\n"
            "  bootstrap-admin [--pg CONNINFO] [--org NAME] [--user NAME]\n"
            "                         create the first organization and admin; prints a token\n"
            "  print-script NAME      print a lease engine Lua script (benchmarks)\n"
            "  routes                 the API's routes and roles, as JSON lines\n"
            "  openapi                the API's OpenAPI 3.1 document (GET /v1/openapi.json)\n"
            "\n"
            "Reads:  serve: the TLS certificate and key (PEM), PostgreSQL and Redis;\n"
            "        migrate: DIR/NNNN_*.sql.\n"
            "Writes: serve: its log on stderr; bootstrap-admin: the admin's token alone\n"
            "        on stdout (qr_ and 64 hex digits); routes: one JSON object a line,\n"
            "        {\"method\":\"GET\",\"path\":\"/v1/whoami\",\"project\":false,\n"
            "        \"roles\":[\"admin\",\"manager\",\"reviewer\",\"annotator\"]};\n"
            "        openapi: one JSON document; print-script: Lua source.\n"
            "\n"
            "Examples:\n"
            "  quorumd migrate --pg 'host=127.0.0.1 dbname=quorum'\n"
            "  quorumd bootstrap-admin --pg 'host=127.0.0.1 dbname=quorum' > admin.token\n"
            "  quorumd serve --listen 0.0.0.0:8443 --cert server.crt --key server.key\n"
            "  quorumd --config /etc/quorum/quorumd.conf --check-config\n"
            "  quorumd routes | jq -r '.method + \" \" + .path'\n"
            "\n"
            "options (environment variable in brackets):\n"
            "  --config FILE         read options from FILE first: one `key = value` a line,\n"
            "                        the key a long option below without its --\n"
            "                        (`listen = 0.0.0.0:8443`, `metrics-public = yes`), `#`\n"
            "                        comments; a flag or a set variable wins over its key\n"
            "  --check-config        check the options, the file and the files they name\n"
            "                        (certificate and key, client CA, webhook key, sql dir),\n"
            "                        print \"config ok\" and exit 0 (2 if not), connecting to\n"
            "                        nothing\n"
            "  --listen HOST:PORT    HTTPS address [QUORUM_LISTEN] (127.0.0.1:8443; port 0 = any)\n"
            "  --pg CONNINFO         libpq connection string [QUORUM_PG]\n"
            "  --pg-pool N           PostgreSQL connections [QUORUM_PG_POOL] (8)\n"
            "  --pg-read CONNINFO    a streaming replica of --pg that the reports (throughput,\n"
            "                        agreement, report, progress, export) read while it is\n"
            "                        caught up; they say so (\"read_from\") [QUORUM_PG_READ]\n"
            "  --pg-read-pool N      its connections [QUORUM_PG_READ_POOL] (4)\n"
            "  --pg-read-max-lag S   seconds it may lag before reports read the primary\n"
            "                        instead [QUORUM_PG_READ_MAX_LAG] (10)\n"
            "  --redis HOST:PORT     Redis address [QUORUM_REDIS] (127.0.0.1:6379)\n"
            "  --redis-sentinel HOST:PORT[,HOST:PORT...]\n"
            "                        find the Redis primary through these Sentinels (names\n"
            "                        resolved once, at startup), and follow its failovers;\n"
            "                        with --redis-master, instead of --redis\n"
            "                        [QUORUM_REDIS_SENTINEL]\n"
            "  --redis-master NAME   the master's name in Sentinel [QUORUM_REDIS_MASTER]\n"
            "  --redis-cluster HOST:PORT[,HOST:PORT...]\n"
            "                        a Redis Cluster's nodes (any of them: the slot map is\n"
            "                        read from them; names resolved once, at startup),\n"
            "                        instead of --redis [QUORUM_REDIS_CLUSTER]\n"
            "  --cert FILE           TLS certificate chain, PEM [QUORUM_TLS_CERT]\n"
            "  --key FILE            TLS private key, PEM [QUORUM_TLS_KEY]\n"
            "  --max-body-bytes N    largest import body read whole (POST .../tasks with an\n"
            "                        overlap fraction, stratified sampling or\n"
            "                        allow_duplicates) [QUORUM_MAX_BODY_BYTES] (67108864)\n"
            "  --max-stream-bytes N  largest import body streamed into PostgreSQL (every\n"
            "                        other import; never held in memory)\n"
            "                        [QUORUM_MAX_STREAM_BYTES] (17179869184: 16 GiB)\n"
            "  --max-json-bytes N    largest body of every other route\n"
            "                        [QUORUM_MAX_JSON_BYTES] (1048576)\n"
            "  --max-body-total-bytes N  request bodies in memory at once; past it a request\n"
            "                        waits its turn [QUORUM_MAX_BODY_TOTAL_BYTES] (134217728)\n"
            "  --auth-fail-rate N    failed authentications per second per client address,\n"
            "                        bursts of 10N; 0 = off [QUORUM_AUTH_FAIL_RATE] (5);\n"
            "                        past it: 429 with Retry-After\n"
            "  --idle-timeout-ms N   close idle connections after N ms [QUORUM_IDLE_TIMEOUT_MS]\n"
            "                        (30000)\n"
            "  --max-connections N   open connections; past it a new one gets 503 and is\n"
            "                        closed [QUORUM_MAX_CONNECTIONS] (16384, or fewer if the\n"
            "                        hard open-files limit is lower; the soft one is raised)\n"
            "  --client-ca FILE      verify client certificates against this PEM CA bundle;\n"
            "                        a mapped certificate (quorumctl cert add) authenticates\n"
            "                        without a token [QUORUM_CLIENT_CA]\n"
            "  --require-client-cert with --client-ca: refuse clients without a certificate\n"
            "                        [QUORUM_REQUIRE_CLIENT_CERT=1]\n"
            "  --reaper-ms N         return expired leases every N ms [QUORUM_REAPER_MS] (1000)\n"
            "  --rate-limit N        requests per second per token, bursts of 2N; 0 = off\n"
            "                        [QUORUM_RATE_LIMIT] (2000); past it: 429 with Retry-After\n"
            "  --window-tasks N      tasks per project read into Redis per refill\n"
            "                        [QUORUM_WINDOW_TASKS] (4000)\n"
            "  --window-low N        refill when fewer tasks are ready, below --window-tasks\n"
            "                        [QUORUM_WINDOW_LOW] (1500)\n"
            "  --max-import-parse-bytes N  memory one whole-body import's parse may hold, or\n"
            "                        what a streamed one keeps to its end (external ids,\n"
            "                        imported annotations); past it: 413\n"
            "                        [QUORUM_MAX_IMPORT_PARSE_BYTES] (67108864)\n"
            "  --max-import-tasks N  tasks per import [QUORUM_MAX_IMPORT_TASKS] (10000000)\n"
            "  --import-parses N     whole-body imports (an overlap fraction, stratified,\n"
            "                        allow_duplicates) parsed at once; more wait their turn\n"
            "                        [QUORUM_IMPORT_PARSES] (2)\n"
            "  --max-leases-per-annotator N   live leases one annotator may hold in a\n"
            "                        project that sets no bound of its own\n"
            "                        [QUORUM_MAX_LEASES_PER_ANNOTATOR] (10)\n"
            "  --metrics-public      serve GET /metrics without a token (for a Prometheus\n"
            "                        scraper) [QUORUM_METRICS_PUBLIC=1]; default: admins only\n"
            "  --webhook-key-file FILE  64 hex digits (`openssl rand -hex 32`) that seal the\n"
            "                        webhooks' signing secrets in the database; without it\n"
            "                        no webhook is made or delivered [QUORUM_WEBHOOK_KEY_FILE]\n"
            "  --webhook-retry-ms N  a failed webhook delivery's first retry, doubling up to\n"
            "                        1 h, for 24 h [QUORUM_WEBHOOK_RETRY_MS] (1000)\n"
            "  --webhook-allow-private  let webhooks post to loopback, private, link-local\n"
            "                        and other internal addresses (refused by default: a\n"
            "                        manager could make the broker reach what only it can\n"
            "                        reach) [QUORUM_WEBHOOK_ALLOW_PRIVATE=1]\n"
            "  --webhook-keep-days D  webhook events and their delivery log are deleted D\n"
            "                        days after they were made, once none is still being\n"
            "                        delivered (decimals allowed) [QUORUM_WEBHOOK_KEEP_DAYS]\n"
            "                        (30)\n"
            "  --drain-ms N          on SIGTERM, drain for at most N ms before stopping:\n"
            "                        /readyz answers 503 at once; new connections are\n"
            "                        accepted while they still come (at most min(5000, N/4)\n"
            "                        ms) if /readyz was asked in the last 30 s, until it\n"
            "                        saw the 503 (none otherwise); in-flight requests\n"
            "                        and long polls answered, with Connection: close; 0 =\n"
            "                        stop at once [QUORUM_DRAIN_MS] (10000)\n"
            "  --port-file FILE      once listening, write the bound port to FILE (atomically:\n"
            "                        a temporary file renamed over it); with port 0 in\n"
            "                        --listen, how a script learns the port the kernel chose\n"
            "  --sql-dir DIR         migrations (migrate) [QUORUM_SQL_DIR] (%s:\n"
            "                        ../share/quorum/sql beside the binary's folder if it\n"
            "                        exists, as installed, else the source tree's sql/)\n"
            "  --org NAME, --user NAME   bootstrap-admin: organization and admin user\n"
            "                        (owner, admin)\n"
            "  -h, --help            this text\n"
            "\n"
            "signals: SIGTERM drains (--drain-ms), then stops; SIGINT, or a second SIGTERM,\n"
            "stops at once, cleanly; SIGHUP reloads the TLS certificate, key and client CA\n"
            "exit codes: 0 clean stop, 1 start-up or runtime failure, 2 usage error (a bad\n"
            "option or config line)\n",
            default_sql_dir());
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Splits "HOST:PORT"; the host is copied into buf (hostlen bytes). */
static int parse_hostport(const char *s, char *buf, size_t hostlen, const char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= hostlen)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -1;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = '\0';
    *host = buf;
    *port = (int)p;
    return 0;
}

/* 1 when list reads "host:port[,host:port...]" (names not resolved). */
static int hostport_list_ok(const char *list)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[300], host[256];
        const char *h;
        int port;
        if (n == 0 || n >= sizeof item)
            return 0;
        memcpy(item, p, n);
        item[n] = '\0';
        if (parse_hostport(item, host, sizeof host, &h, &port) < 0 || !*h || port == 0)
            return 0;
        if (!comma)
            return 1;
        p = comma + 1;
    }
}

/* The Sentinel (or cluster node) list "host:port,..." with every host an IP address (names
 * resolved here, once, before the loop runs); 0, or -1 after saying why. */
static int resolve_sentinels(const char *flag, const char *list, char *out, size_t outlen)
{
    size_t len = 0;
    const char *p = list;
    out[0] = '\0';
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[300], host[256], ip[INET6_ADDRSTRLEN];
        const char *h;
        int port;
        if (n >= sizeof item)
            goto bad;
        memcpy(item, p, n);
        item[n] = '\0';
        if (parse_hostport(item, host, sizeof host, &h, &port) < 0 || !*h || port == 0)
            goto bad;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
        int rc = getaddrinfo(h, NULL, &hints, &res);
        if (rc != 0) {
            fprintf(stderr, "quorumd: %s: cannot resolve '%s': %s\n", flag, h, gai_strerror(rc));
            return -1;
        }
        const void *a = res->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        const char *ok = inet_ntop(res->ai_family, a, ip, sizeof ip);
        freeaddrinfo(res);
        if (!ok)
            goto bad;
        int w = snprintf(out + len, outlen - len, "%s%s:%d", len ? "," : "", ip, port);
        if (w < 0 || (size_t)w >= outlen - len)
            goto bad;
        len += (size_t)w;
        if (!comma)
            return 0;
        p = comma + 1;
    }
bad:
    fprintf(stderr, "quorumd: %s wants HOST:PORT[,HOST:PORT...], not '%s'\n", flag, list);
    return -1;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A number of days in (0, 36500], decimals allowed ("0.5" is 12 h). */
static int parse_days(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v > 0) || v > 36500)
        return -1;
    *out = v;
    return 0;
}

/*
 * The migrations' folder when neither --sql-dir nor QUORUM_SQL_DIR names
 * one: ../share/quorum/sql beside the running binary's folder when it
 * exists (an installed /usr/bin/quorumd finds /usr/share/quorum/sql), else
 * the source tree's sql/ the binary was built from (QR_SQL_DIR).
 */
static const char *default_sql_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    DIR *d = NULL;
    if (slash) {
        *slash = '\0';
        int len = snprintf(dir, sizeof dir, "%s/../share/quorum/sql", exe);
        if (len > 0 && (size_t)len < sizeof dir)
            d = opendir(dir);
    }
    char real[PATH_MAX];
    if (d) {
        closedir(d);
        if (realpath(dir, real)) /* /usr/share/quorum/sql, not /usr/bin/../share/... */
            memcpy(dir, real, strlen(real) + 1);
    } else {
        snprintf(dir, sizeof dir, "%s", QR_SQL_DIR);
    }
    return dir;
}

/* --config's file and, for the arguments it put first in getopt's argv
 * (indices 1 to conf_n), the file line each came from. */
static const char *conf_path;
static int *conf_lines;
static int conf_n;

/* The config file line of the option getopt_long just returned, or 0 when
 * it came from the command line. */
static int conf_line(void)
{
    return conf_lines && optind - 1 >= 1 && optind - 1 <= conf_n ? conf_lines[optind - 1] : 0;
}

/* The variable that stands for the long option name: QUORUM_ and the name
 * upper-cased with '-' as '_', but for the few named otherwise. */
static const char *env_of(const char *name, char *buf, size_t len)
{
    static const char *const renamed[][2] = {{"cert", "QUORUM_TLS_CERT"},
                                             {"key", "QUORUM_TLS_KEY"}};
    for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++)
        if (!strcmp(name, renamed[i][0]))
            return renamed[i][1];
    size_t j = snprintf(buf, len, "QUORUM_");
    for (; *name && j + 1 < len; name++)
        buf[j++] = *name == '-' ? '_' : (char)(*name >= 'a' && *name <= 'z' ? *name - 32 : *name);
    buf[j] = '\0';
    return buf;
}

/*
 * --config FILE: the argv getopt_long reads, argv[0], then one argument per
 * line of the file ("--KEY=VALUE", or "--KEY" for a flag set to yes), then
 * argv[1..]. The command line comes after the file, so its flags win; a key
 * whose QUORUM_* variable is set is left out, so the variable, read before,
 * wins too (its value is then not checked). Any long option is a key but
 * config, check-config and help. Sets conf_lines and conf_n. Returns the
 * new argc with *out (static: it lives as long as the process; cfg points
 * into it), or -1 with the reason printed, naming the file and the line.
 */
static int config_argv(const char *path, const struct option *opts, int argc, char **argv,
                       char ***out)
{
    qr_conf_t conf = {0};
    char err[512];
    if (qr_conf_read(path, &conf, err, sizeof err) < 0) {
        fprintf(stderr, "quorumd: %s\n", err);
        qr_conf_free(&conf);
        return -1;
    }
    static char **args;
    args = qr_xcalloc(conf.n + (size_t)argc + 1, sizeof *args);
    conf_lines = qr_xcalloc(conf.n + 1, sizeof *conf_lines);
    int n = 0;
    args[n++] = argv[0];
    for (size_t i = 0; i < conf.n; i++) {
        const qr_conf_entry_t *e = &conf.entries[i];
        const struct option *o = opts;
        while (o->name && strcmp(o->name, e->key))
            o++;
        if (!o->name || !strcmp(e->key, "config") || !strcmp(e->key, "check-config") ||
            !strcmp(e->key, "help")) {
            fprintf(stderr,
                    "quorumd: %s:%d: unknown key '%s' (the keys are the long options of "
                    "quorumd --help without their --, but config, check-config and help)\n",
                    path, e->line, e->key);
            goto fail;
        }
        char envbuf[128];
        const char *env = getenv(env_of(o->name, envbuf, sizeof envbuf));
        if (env && *env)
            continue;
        if (o->has_arg == no_argument) {
            const char *v = e->value;
            if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
                continue;
            if (strcmp(v, "yes") && strcmp(v, "true") && strcmp(v, "on") && strcmp(v, "1")) {
                fprintf(stderr, "quorumd: %s:%d: %s wants yes or no, not '%s'\n", path, e->line,
                        e->key, v);
                goto fail;
            }
            args[n] = qr_xasprintf("--%s", o->name);
        } else {
            args[n] = qr_xasprintf("--%s=%s", o->name, e->value);
        }
        conf_lines[n++] = e->line;
    }
    conf_n = n - 1;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    qr_conf_free(&conf);
    *out = args;
    return n;
fail:
    qr_conf_free(&conf);
    return -1;
}

/*
 * --check-config: what serve would read from the files the options name,
 * read now: the certificate and key (loaded and matched), the client CA,
 * the migrations' folder. The webhook key was read before. Connects to
 * nothing. Prints "config ok" and returns 0, or the reason and 2.
 */
static int check_config(const qr_broker_config_t *cfg, const char *cmd, const char *sql_dir)
{
    char err[512] = "";
    if (!cfg->cert_file != !cfg->key_file) {
        fprintf(stderr, "quorumd: --cert and --key go together: only --%s is set\n",
                cfg->cert_file ? "cert" : "key");
        return 2;
    }
    if (cfg->cert_file) {
        SSL_CTX *ctx = qr_tls_server_ctx(cfg->cert_file, cfg->key_file, err, sizeof err);
        int bad = !ctx;
        if (ctx && cfg->client_ca_file &&
            qr_tls_verify_clients(ctx, cfg->client_ca_file, cfg->require_client_cert, err,
                                  sizeof err) < 0)
            bad = 1;
        SSL_CTX_free(ctx);
        if (bad) {
            fprintf(stderr, "quorumd: %s\n", err);
            return 2;
        }
    } else if (!strcmp(cmd, "serve")) {
        fprintf(stderr, "quorumd: note: no --cert and --key (cert and key in the file): serve "
                        "will not start without them\n");
    }
    if (cfg->require_client_cert && !cfg->client_ca_file) {
        fprintf(stderr, "quorumd: --require-client-cert needs --client-ca FILE\n");
        return 2;
    }
    DIR *d = opendir(sql_dir);
    if (!d) {
        fprintf(stderr, "quorumd: --sql-dir %s: %s\n", sql_dir, strerror(errno));
        return 2;
    }
    closedir(d);
    printf("config ok\n");
    return 0;
}

/* A number of seconds in [0.001, 86400], decimals allowed, as whole ms. */
static int parse_seconds_ms(const char *s, int *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0.001) || v > 86400)
        return -1;
    *out = (int)(v * 1000 + 0.5);
    return 0;
}

/* --max-connections or QUORUM_MAX_CONNECTIONS was given (not the default). */
static int max_connections_given;

/*
 * Makes room for cfg->max_connections descriptors. Each connection is one;
 * the PostgreSQL pool, Redis, the listener, logs and the 64 connections past
 * the cap that still get their 503 need theirs too. The soft open-files
 * limit is raised as far as needed and the hard limit allows (a soft limit
 * of 1024 is a common default). If that is still short, the default cap is
 * lowered to fit (never below 16); a cap given explicitly is kept, with a
 * warning, and connections past the limit fail at accept.
 */
static void fit_max_connections(qr_broker_config_t *cfg)
{
    struct rlimit rl;
    rlim_t reserve = 64 + 32 + 2 * (rlim_t)cfg->pg_pool +
                     (cfg->pg_read_conninfo ? 2 * ((rlim_t)cfg->pg_read_pool + 1) : 0);
    rlim_t need = (rlim_t)cfg->max_connections + reserve;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    struct rlimit more = rl;
    more.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (more.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &more) == 0)
        rl = more;
    if (rl.rlim_cur >= need)
        return;
    long fit = rl.rlim_cur > reserve + 16 ? (long)(rl.rlim_cur - reserve) : 16;
    if (max_connections_given)
        qr_warn("--max-connections %d: the open-files limit (%llu) has room for about %ld",
                cfg->max_connections, (unsigned long long)rl.rlim_cur, fit);
    else
        cfg->max_connections = (int)fit;
}

static uv_signal_t sig_int, sig_term, sig_hup;
static qr_broker_t *broker;

static void on_hup(uv_signal_t *s, int signum)
{
    char err[512] = "";
    if (broker && qr_broker_reload_tls(broker, err, sizeof err) == 0)
        qr_info("SIGHUP: TLS certificate reloaded");
    else if (broker)
        qr_error("SIGHUP: TLS certificate not reloaded, the old one stays: %s", err);
}

static int signals_open; /* sig_int, sig_term and sig_hup are to be closed */

/* The broker is freed (stopped, after a drain or not): the signal handlers
 * go too, and the loop ends. */
static void on_broker_stopped(void *arg)
{
    broker = NULL;
    if (!signals_open)
        return;
    signals_open = 0;
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
}

/* SIGTERM drains first (a rolling restart behind a load balancer), unless
 * --drain-ms is 0; SIGINT, or a signal during the drain, stops at once. */
static void on_signal(uv_signal_t *s, int signum)
{
    int drain_ms = *(const int *)s->data;
    if (!broker)
        return; /* stopping already */
    if (signum == SIGTERM && drain_ms > 0 && !qr_broker_draining(broker)) {
        qr_info("signal %d: draining, then stopping", signum);
        qr_broker_drain(broker, on_broker_stopped, NULL);
        return;
    }
    qr_info("signal %d: stopping", signum);
    qr_broker_stop(broker, on_broker_stopped, NULL);
}

/*
 * Writes port to path as one line, atomically: into a temporary file next
 * to it, then renamed over it, so a reader polling for path never sees it
 * empty or half written. Runs before the loop does (it may block).
 * Returns 0, or -1 with the reason printed.
 */
static int write_port_file(const char *path, int port)
{
    char *tmp = qr_xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto fail;
    int bad = fprintf(f, "%d\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
        goto fail;
    free(tmp);
    return 0;
fail:
    fprintf(stderr, "quorumd: cannot write the port file %s: %s\n", path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
}

/*
 * Runs the broker until SIGTERM or SIGINT. Every exit, clean or not, runs
 * the loop until whatever was opened has closed and then closes the loop,
 * so a failed start-up (a port already in use, say) ends with one line on
 * stderr, status 1, and nothing for LeakSanitizer to report.
 */
static int serve(qr_broker_config_t *cfg)
{
    if (!cfg->cert_file || !cfg->key_file) {
        fprintf(stderr, "quorumd: --cert and --key are required (TLS is not optional)\n");
        return 2;
    }
    if (cfg->require_client_cert && !cfg->client_ca_file) {
        fprintf(stderr, "quorumd: --require-client-cert needs --client-ca FILE\n");
        return 2;
    }
    fit_max_connections(cfg);
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        fprintf(stderr, "quorumd: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }
    int status = 1;
    char err[512] = "";
    qr_loop_watch_t watch;
    if ((rc = qr_loop_watch_start(&loop, &watch)) < 0)
        qr_warn("event loop busy times not measured: %s", uv_strerror(rc));
    rc = qr_broker_start(&loop, cfg, &qr_api, &broker, err, sizeof err);
    if (rc < 0) {
        /* qr_broker_start has closed what it opened: drain and go. */
        fprintf(stderr, "quorumd: %s\n", err);
        goto drain;
    }
    int port = qr_broker_port(broker);
    qr_info("listening on https://%s:%d", cfg->listen_host, port);
    qr_info("at most %d connections at once", cfg->max_connections);
    if (cfg->port_file && write_port_file(cfg->port_file, port) < 0)
        goto stop;
    uv_signal_t *sigs[] = {&sig_int, &sig_term, &sig_hup};
    uv_signal_cb cbs[] = {on_signal, on_signal, on_hup};
    int signums[] = {SIGINT, SIGTERM, SIGHUP};
    int nsigs = 0;
    for (; nsigs < 3; nsigs++) {
        if ((rc = uv_signal_init(&loop, sigs[nsigs])) < 0)
            break;
        sigs[nsigs]->data = &cfg->drain_ms;
        if ((rc = uv_signal_start(sigs[nsigs], cbs[nsigs], signums[nsigs])) < 0) {
            nsigs++; /* initialised: it is closed below */
            break;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "quorumd: signals: %s\n", uv_strerror(rc));
        for (int i = 0; i < nsigs; i++)
            uv_close((uv_handle_t *)sigs[i], NULL);
        goto stop;
    }
    signals_open = 1;
    status = 0;
    goto drain;
stop:
    qr_broker_stop(broker, NULL, NULL);
    broker = NULL;
drain:
    uv_run(&loop, UV_RUN_DEFAULT);
    qr_loop_watch_close(&watch);
    uv_run(&loop, UV_RUN_NOWAIT); /* its close */
    rc = uv_loop_close(&loop);
    if (rc < 0)
        qr_warn("loop closed with handles open: %s", uv_strerror(rc));
    if (status == 0)
        qr_info("stopped");
    return status;
}

int main(int argc, char **argv)
{
    /* PostgreSQL's JIT costs more than it saves on the broker's short
     * statements and the throughput report; an explicit PGOPTIONS wins. */
    setenv("PGOPTIONS", "-c jit=off", 0);
    qr_log_init("quorumd", QR_LOG_INFO);
    qr_broker_config_t cfg;
    qr_broker_config_defaults(&cfg);
    const char *cmd = "serve";
    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        argv++;
        argc--;
    }
    const char *listen = env_or("QUORUM_LISTEN", NULL);
    const char *redis = env_or("QUORUM_REDIS", NULL);
    const char *sentinel = env_or("QUORUM_REDIS_SENTINEL", NULL);
    const char *master = env_or("QUORUM_REDIS_MASTER", NULL);
    char sentinel_ips[1024], cluster_ips[1024];
    const char *cluster = env_or("QUORUM_REDIS_CLUSTER", NULL);
    const char *sql_dir = env_or("QUORUM_SQL_DIR", default_sql_dir());
    const char *org = "owner", *user = "admin";
    char listen_host[256], redis_host[256];
    cfg.pg_conninfo = env_or("QUORUM_PG", cfg.pg_conninfo);
    cfg.pg_read_conninfo = env_or("QUORUM_PG_READ", NULL);
    int read_tuned = 0; /* a --pg-read-* flag or variable was given */
    cfg.cert_file = env_or("QUORUM_TLS_CERT", NULL);
    cfg.key_file = env_or("QUORUM_TLS_KEY", NULL);
    long v;
    const char *e;
    if ((e = env_or("QUORUM_PG_POOL", NULL)) && parse_int(e, 1, 100, &v) == 0)
        cfg.pg_pool = (int)v;
    if ((e = env_or("QUORUM_MAX_BODY_BYTES", NULL)) && parse_int(e, 1024, 1L << 32, &v) == 0)
        cfg.max_body_bytes = (size_t)v;
    if ((e = env_or("QUORUM_MAX_STREAM_BYTES", NULL)) && parse_int(e, 1024, 1L << 40, &v) == 0)
        cfg.max_stream_bytes = (size_t)v;
    if ((e = env_or("QUORUM_MAX_JSON_BYTES", NULL)) && parse_int(e, 1024, 1L << 32, &v) == 0)
        cfg.max_json_body_bytes = (size_t)v;
    if ((e = env_or("QUORUM_MAX_BODY_TOTAL_BYTES", NULL)) && parse_int(e, 1024, 1L << 40, &v) == 0)
        cfg.max_body_total_bytes = (size_t)v;
    if ((e = env_or("QUORUM_AUTH_FAIL_RATE", NULL)) && parse_int(e, 0, 1000000, &v) == 0)
        cfg.auth_fail_per_sec = (int)v;
    if ((e = env_or("QUORUM_IDLE_TIMEOUT_MS", NULL)) && parse_int(e, 100, 3600000, &v) == 0)
        cfg.idle_timeout_ms = (int)v;
    if ((e = env_or("QUORUM_REAPER_MS", NULL)) && parse_int(e, 10, 60000, &v) == 0)
        cfg.reaper_ms = (int)v;
    if ((e = env_or("QUORUM_RATE_LIMIT", NULL)) && parse_int(e, 0, 10000000, &v) == 0)
        cfg.rate_per_sec = (int)v;
    if ((e = env_or("QUORUM_WINDOW_TASKS", NULL)) && parse_int(e, 2, 1000000, &v) == 0)
        cfg.window_tasks = (int)v;
    if ((e = env_or("QUORUM_WINDOW_LOW", NULL)) && parse_int(e, 1, 1000000, &v) == 0)
        cfg.window_low = (int)v;
    if ((e = env_or("QUORUM_MAX_IMPORT_PARSE_BYTES", NULL)) &&
        parse_int(e, 1024, 1L << 40, &v) == 0)
        cfg.import.max_bytes = (size_t)v;
    if ((e = env_or("QUORUM_MAX_IMPORT_TASKS", NULL)) && parse_int(e, 1, 1000000000, &v) == 0)
        cfg.import.max_tasks = v;
    if ((e = env_or("QUORUM_IMPORT_PARSES", NULL)) && parse_int(e, 1, 64, &v) == 0)
        cfg.import_parses = (int)v;
    if ((e = env_or("QUORUM_MAX_LEASES_PER_ANNOTATOR", NULL)) && parse_int(e, 1, 10000, &v) == 0)
        cfg.max_leases_per_annotator = (int)v;
    if ((e = env_or("QUORUM_MAX_CONNECTIONS", NULL)) && parse_int(e, 1, 1000000, &v) == 0) {
        cfg.max_connections = (int)v;
        max_connections_given = 1;
    }
    cfg.client_ca_file = env_or("QUORUM_CLIENT_CA", NULL);
    if ((e = env_or("QUORUM_REQUIRE_CLIENT_CERT", NULL)) && !strcmp(e, "1"))
        cfg.require_client_cert = 1;
    if ((e = env_or("QUORUM_METRICS_PUBLIC", NULL)) && !strcmp(e, "1"))
        cfg.metrics_public = 1;
    const char *webhook_key_file = env_or("QUORUM_WEBHOOK_KEY_FILE", NULL);
    if ((e = env_or("QUORUM_WEBHOOK_RETRY_MS", NULL)) && parse_int(e, 10, 3600000, &v) == 0)
        cfg.webhook_retry_ms = (int)v;
    if ((e = env_or("QUORUM_WEBHOOK_ALLOW_PRIVATE", NULL)) && !strcmp(e, "1"))
        cfg.webhook_allow_private = 1;
    if ((e = env_or("QUORUM_WEBHOOK_KEEP_DAYS", NULL)) &&
        parse_days(e, &cfg.webhook_keep_days) < 0) {
        fprintf(
            stderr,
            "quorumd: QUORUM_WEBHOOK_KEEP_DAYS must be a number of days in (0, 36500], not '%s'\n",
            e);
        return 2;
    }
    if ((e = env_or("QUORUM_DRAIN_MS", NULL))) {
        if (parse_int(e, 0, 3600000, &v) < 0) {
            fprintf(stderr, "quorumd: QUORUM_DRAIN_MS wants ms in 0..3600000, not '%s'\n", e);
            return 2;
        }
        cfg.drain_ms = (int)v;
    }

    if ((e = env_or("QUORUM_PG_READ_POOL", NULL))) {
        if (parse_int(e, 1, 100, &v) < 0) {
            fprintf(stderr, "quorumd: QUORUM_PG_READ_POOL must be a number in [1, 100], not '%s'\n",
                    e);
            return 2;
        }
        cfg.pg_read_pool = (int)v;
        read_tuned = 1;
    }
    if ((e = env_or("QUORUM_PG_READ_MAX_LAG", NULL))) {
        if (parse_seconds_ms(e, &cfg.pg_read_max_lag_ms) < 0) {
            fprintf(stderr,
                    "quorumd: QUORUM_PG_READ_MAX_LAG must be a number of seconds in [0.001, "
                    "86400], not '%s'\n",
                    e);
            return 2;
        }
        read_tuned = 1;
    }

    enum {
        O_LISTEN = 1000,
        O_JSON_BODY,
        O_BODY_TOTAL,
        O_AUTH_FAIL,
        O_PG,
        O_POOL,
        O_REDIS,
        O_SENTINEL,
        O_MASTER,
        O_CLUSTER,
        O_CERT,
        O_KEY,
        O_BODY,
        O_IDLE,
        O_REAPER,
        O_PORTFILE,
        O_SQL,
        O_ORG,
        O_USER,
        O_RATE,
        O_MAXCONN,
        O_CLIENT_CA,
        O_REQUIRE_CERT,
        O_METRICS_PUBLIC,
        O_WINDOW,
        O_WINDOW_LOW,
        O_IPB,
        O_ITASKS,
        O_IPARSES,
        O_MAX_LEASES,
        O_WEBHOOK_KEY,
        O_WEBHOOK_RETRY,
        O_WEBHOOK_PRIVATE,
        O_WEBHOOK_KEEP,
        O_STREAM_BODY,
        O_CONFIG,
        O_CHECK_CONFIG,
        O_DRAIN,
        O_PG_READ,
        O_PG_READ_POOL,
        O_PG_READ_MAX_LAG
    };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"pg", required_argument, 0, O_PG},
        {"pg-pool", required_argument, 0, O_POOL},
        {"pg-read", required_argument, 0, O_PG_READ},
        {"pg-read-pool", required_argument, 0, O_PG_READ_POOL},
        {"pg-read-max-lag", required_argument, 0, O_PG_READ_MAX_LAG},
        {"redis", required_argument, 0, O_REDIS},
        {"redis-sentinel", required_argument, 0, O_SENTINEL},
        {"redis-master", required_argument, 0, O_MASTER},
        {"redis-cluster", required_argument, 0, O_CLUSTER},
        {"cert", required_argument, 0, O_CERT},
        {"key", required_argument, 0, O_KEY},
        {"max-body-bytes", required_argument, 0, O_BODY},
        {"max-stream-bytes", required_argument, 0, O_STREAM_BODY},
        {"max-json-bytes", required_argument, 0, O_JSON_BODY},
        {"max-body-total-bytes", required_argument, 0, O_BODY_TOTAL},
        {"auth-fail-rate", required_argument, 0, O_AUTH_FAIL},
        {"idle-timeout-ms", required_argument, 0, O_IDLE},
        {"reaper-ms", required_argument, 0, O_REAPER},
        {"port-file", required_argument, 0, O_PORTFILE},
        {"sql-dir", required_argument, 0, O_SQL},
        {"org", required_argument, 0, O_ORG},
        {"user", required_argument, 0, O_USER},
        {"rate-limit", required_argument, 0, O_RATE},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"client-ca", required_argument, 0, O_CLIENT_CA},
        {"require-client-cert", no_argument, 0, O_REQUIRE_CERT},
        {"metrics-public", no_argument, 0, O_METRICS_PUBLIC},
        {"window-tasks", required_argument, 0, O_WINDOW},
        {"window-low", required_argument, 0, O_WINDOW_LOW},
        {"max-import-parse-bytes", required_argument, 0, O_IPB},
        {"max-import-tasks", required_argument, 0, O_ITASKS},
        {"import-parses", required_argument, 0, O_IPARSES},
        {"max-leases-per-annotator", required_argument, 0, O_MAX_LEASES},
        {"webhook-key-file", required_argument, 0, O_WEBHOOK_KEY},
        {"webhook-retry-ms", required_argument, 0, O_WEBHOOK_RETRY},
        {"webhook-allow-private", no_argument, 0, O_WEBHOOK_PRIVATE},
        {"webhook-keep-days", required_argument, 0, O_WEBHOOK_KEEP},
        {"drain-ms", required_argument, 0, O_DRAIN},
        {"config", required_argument, 0, O_CONFIG},
        {"check-config", no_argument, 0, O_CHECK_CONFIG},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int o, checking = 0;
    /* --config is read before the other options, which it puts first. */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *path = !strcmp(argv[i], "--config") && i + 1 < argc ? argv[++i]
                           : !strncmp(argv[i], "--config=", 9)          ? argv[i] + 9
                                                                        : NULL;
        if (path && conf_path) {
            fprintf(stderr, "quorumd: --config is given twice\n");
            return 2;
        }
        conf_path = path ? path : conf_path;
    }
    if (conf_path && (argc = config_argv(conf_path, opts, argc, argv, &argv)) < 0)
        return 2;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_LISTEN:
            listen = optarg;
            if (conf_line() && parse_hostport(listen, listen_host, sizeof listen_host,
                                              &cfg.listen_host, &cfg.listen_port) < 0)
                goto bad;
            break;
        case O_PG:
            cfg.pg_conninfo = optarg;
            break;
        case O_POOL:
            if (parse_int(optarg, 1, 100, &v) < 0)
                goto bad;
            cfg.pg_pool = (int)v;
            break;
        case O_PG_READ:
            if (!*optarg)
                goto bad;
            cfg.pg_read_conninfo = optarg;
            break;
        case O_PG_READ_POOL:
            if (parse_int(optarg, 1, 100, &v) < 0)
                goto bad;
            cfg.pg_read_pool = (int)v;
            read_tuned = 1;
            break;
        case O_PG_READ_MAX_LAG:
            if (parse_seconds_ms(optarg, &cfg.pg_read_max_lag_ms) < 0)
                goto bad;
            read_tuned = 1;
            break;
        case O_REDIS:
            redis = optarg;
            if (conf_line() && parse_hostport(redis, redis_host, sizeof redis_host, &cfg.redis_host,
                                              &cfg.redis_port) < 0)
                goto bad;
            break;
        case O_SENTINEL:
            sentinel = optarg;
            if (conf_line() && !hostport_list_ok(sentinel))
                goto bad;
            break;
        case O_MASTER:
            master = optarg;
            if (conf_line() && !*master)
                goto bad;
            break;
        case O_CLUSTER:
            cluster = optarg;
            if (conf_line() && !hostport_list_ok(cluster))
                goto bad;
            break;
        case O_CERT:
            cfg.cert_file = optarg;
            break;
        case O_KEY:
            cfg.key_file = optarg;
            break;
        case O_BODY:
            if (parse_int(optarg, 1024, 1L << 32, &v) < 0)
                goto bad;
            cfg.max_body_bytes = (size_t)v;
            break;
        case O_STREAM_BODY:
            if (parse_int(optarg, 1024, 1L << 40, &v) < 0)
                goto bad;
            cfg.max_stream_bytes = (size_t)v;
            break;
        case O_JSON_BODY:
            if (parse_int(optarg, 1024, 1L << 32, &v) < 0)
                goto bad;
            cfg.max_json_body_bytes = (size_t)v;
            break;
        case O_BODY_TOTAL:
            if (parse_int(optarg, 1024, 1L << 40, &v) < 0)
                goto bad;
            cfg.max_body_total_bytes = (size_t)v;
            break;
        case O_AUTH_FAIL:
            if (parse_int(optarg, 0, 1000000, &v) < 0)
                goto bad;
            cfg.auth_fail_per_sec = (int)v;
            break;
        case O_IDLE:
            if (parse_int(optarg, 100, 3600000, &v) < 0)
                goto bad;
            cfg.idle_timeout_ms = (int)v;
            break;
        case O_REAPER:
            if (parse_int(optarg, 10, 60000, &v) < 0)
                goto bad;
            cfg.reaper_ms = (int)v;
            break;
        case O_PORTFILE:
            cfg.port_file = optarg;
            break;
        case O_SQL:
            sql_dir = optarg;
            break;
        case O_ORG:
            org = optarg;
            break;
        case O_USER:
            user = optarg;
            break;
        case O_RATE:
            if (parse_int(optarg, 0, 10000000, &v) < 0)
                goto bad;
            cfg.rate_per_sec = (int)v;
            break;
        case O_WINDOW:
            if (parse_int(optarg, 2, 1000000, &v) < 0)
                goto bad;
            cfg.window_tasks = (int)v;
            break;
        case O_WINDOW_LOW:
            if (parse_int(optarg, 1, 1000000, &v) < 0)
                goto bad;
            cfg.window_low = (int)v;
            break;
        case O_IPB:
            if (parse_int(optarg, 1024, 1L << 40, &v) < 0)
                goto bad;
            cfg.import.max_bytes = (size_t)v;
            break;
        case O_ITASKS:
            if (parse_int(optarg, 1, 1000000000, &v) < 0)
                goto bad;
            cfg.import.max_tasks = v;
            break;
        case O_IPARSES:
            if (parse_int(optarg, 1, 64, &v) < 0)
                goto bad;
            cfg.import_parses = (int)v;
            break;
        case O_MAX_LEASES:
            if (parse_int(optarg, 1, 10000, &v) < 0)
                goto bad;
            cfg.max_leases_per_annotator = (int)v;
            break;
        case O_MAXCONN:
            if (parse_int(optarg, 1, 1000000, &v) < 0)
                goto bad;
            cfg.max_connections = (int)v;
            max_connections_given = 1;
            break;
        case O_CLIENT_CA:
            cfg.client_ca_file = optarg;
            break;
        case O_REQUIRE_CERT:
            cfg.require_client_cert = 1;
            break;
        case O_METRICS_PUBLIC:
            cfg.metrics_public = 1;
            break;
        case O_WEBHOOK_KEY:
            webhook_key_file = optarg;
            break;
        case O_WEBHOOK_RETRY:
            if (parse_int(optarg, 10, 3600000, &v) < 0)
                goto bad;
            cfg.webhook_retry_ms = (int)v;
            break;
        case O_WEBHOOK_PRIVATE:
            cfg.webhook_allow_private = 1;
            break;
        case O_WEBHOOK_KEEP:
            if (parse_days(optarg, &cfg.webhook_keep_days) < 0)
                goto bad;
            break;
        case O_DRAIN:
            if (parse_int(optarg, 0, 3600000, &v) < 0)
                goto bad;
            cfg.drain_ms = (int)v;
            break;
        case O_CONFIG:
            if (!conf_path || strcmp(optarg, conf_path)) {
                fprintf(stderr, "quorumd: spell --config out in full\n");
                return 2;
            }
            break;
        case O_CHECK_CONFIG:
            checking = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc && strcmp(cmd, "print-script")) {
        fprintf(stderr, "quorumd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (read_tuned && !cfg.pg_read_conninfo) {
        fprintf(stderr, "quorumd: --pg-read-pool and --pg-read-max-lag tune --pg-read, which is "
                        "not given (nor QUORUM_PG_READ)\n");
        return 2;
    }
    if (cfg.window_low >= cfg.window_tasks) {
        fprintf(stderr, "quorumd: --window-low (%d) must be below --window-tasks (%d)\n",
                cfg.window_low, cfg.window_tasks);
        return 2;
    }
    if (listen && parse_hostport(listen, listen_host, sizeof listen_host, &cfg.listen_host,
                                 &cfg.listen_port) < 0) {
        fprintf(stderr, "quorumd: --listen wants HOST:PORT, not '%s'\n", listen);
        return 2;
    }
    if (redis && parse_hostport(redis, redis_host, sizeof redis_host, &cfg.redis_host,
                                &cfg.redis_port) < 0) {
        fprintf(stderr, "quorumd: --redis wants HOST:PORT, not '%s'\n", redis);
        return 2;
    }
    if (sentinel || master) {
        if (!sentinel || !*sentinel || !master || !*master) {
            fprintf(stderr, "quorumd: --redis-sentinel and --redis-master go together\n");
            return 2;
        }
        if (redis) {
            fprintf(stderr, "quorumd: --redis and --redis-sentinel exclude each other\n");
            return 2;
        }
        if (resolve_sentinels("--redis-sentinel", sentinel, sentinel_ips, sizeof sentinel_ips) < 0)
            return 2;
        cfg.redis_sentinels = sentinel_ips;
        cfg.redis_master = master;
    }
    if (cluster) {
        if (redis || sentinel) {
            fprintf(stderr, "quorumd: --redis-cluster excludes --redis and --redis-sentinel\n");
            return 2;
        }
        if (resolve_sentinels("--redis-cluster", cluster, cluster_ips, sizeof cluster_ips) < 0)
            return 2;
        cfg.redis_cluster = cluster_ips;
    }
    if (webhook_key_file && (!strcmp(cmd, "serve") || checking)) {
        char err[256];
        if (qr_webhook_key_load(webhook_key_file, cfg.webhook_key, err, sizeof err) < 0) {
            fprintf(stderr, "quorumd: %s\n", err);
            return 2;
        }
        cfg.webhooks = 1;
    }
    if (checking)
        return check_config(&cfg, cmd, sql_dir);
    if (!strcmp(cmd, "serve"))
        return serve(&cfg);
    if (!strcmp(cmd, "migrate"))
        return qr_admin_migrate(cfg.pg_conninfo, sql_dir) == 0 ? 0 : 1;
    if (!strcmp(cmd, "bootstrap-admin"))
        return qr_admin_bootstrap(cfg.pg_conninfo, org, user) == 0 ? 0 : 1;
    if (!strcmp(cmd, "routes")) {
        qr_api_print_routes(stdout);
        return 0;
    }
    if (!strcmp(cmd, "openapi"))
        return qr_api_print_openapi(stdout) == 0 ? 0 : 1;
    if (!strcmp(cmd, "print-script")) {
        const char *text = argc > optind ? qr_lease_script_text(argv[optind]) : NULL;
        if (!text) {
            fprintf(stderr, "quorumd: print-script wants one of grant, seed, touch, regrant, end, "
                            "reap, window_add, refill_begin, refill_end, init, drop, gold_load, "
                            "pause\n");
            return 2;
        }
        fputs(text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "quorumd: unknown command '%s' (try --help)\n", cmd);
    return 2;
bad:
    /* The option by its value: the table's order need not follow the enum's. */
    for (const struct option *x = opts; x->name; x++) {
        if (x->val == o && conf_line())
            fprintf(stderr, "quorumd: %s:%d: bad value '%s' for %s\n", conf_path, conf_line(),
                    optarg, x->name);
        else if (x->val == o)
            fprintf(stderr, "quorumd: bad value '%s' for --%s\n", optarg, x->name);
    }
    return 2;
}
