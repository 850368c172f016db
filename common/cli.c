/*
 * cli.c - the command-line helpers of quorumctl and quorum-agent (see
 * cli.h): argument parsing, usage errors, and the request helper every
 * command of both programs sends its JSON requests through.
 */
#include "cli.h"

#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* --- arguments ---------------------------------------------------------------------------- */

int qr_cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int qr_cli_take_value(const char *prog, int argc, char **argv, int *i, const char *name,
                      const char **value)
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
        fprintf(stderr, "%s: %s needs a value\n", prog, name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

int qr_cli_flag(const char *arg, const char *name, int *on)
{
    if (strcmp(arg, name) != 0)
        return 0;
    *on = 1;
    return 1;
}

int qr_cli_config_flag(qr_client_config_t *cfg, const char *prog, int argc, char **argv, int *i)
{
    static const char *const names[] = {"--url", "--token", "--ca", "--cert", "--key"};
    char **slots[] = {&cfg->url, &cfg->token, &cfg->ca, &cfg->cert, &cfg->key};

    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const char *value;
        int r = qr_cli_take_value(prog, argc, argv, i, names[k], &value);
        if (r < 0)
            return -1;
        if (r > 0) {
            free(*slots[k]);
            *slots[k] = qr_xstrdup(value);
            return 1;
        }
    }
    return 0;
}

int qr_cli_parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int qr_cli_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int qr_cli_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun `%s %s--help` for usage.\n", prog, cmd);
    return QR_EXIT_USAGE;
}

/* Optimal string alignment distance of a and b (a transposition is one
 * edit), or a number above 2 as soon as it must be: only near words matter. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64 || (n > m ? n - m : m - n) > 2)
        return 3;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *qr_cli_nearest(const char *word, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = 3, len = strlen(word);
    for (; *known; known++) {
        size_t dist = edit_distance(word, *known);
        if (dist < best_d && dist * 2 < len) {
            best = *known;
            best_d = dist;
        }
    }
    return best;
}

int qr_cli_unknown_command(const char *prog, const char *word, const char *const *known)
{
    const char *near = qr_cli_nearest(word, known);
    if (near)
        return qr_cli_usage_error(prog, "", "unknown command '%s'; did you mean '%s'?", word, near);
    return qr_cli_usage_error(prog, "", "unknown command '%s'", word);
}

int qr_cli_project_id(const char *prog, const char *cmd, const char *value, long long *out)
{
    int name_len = cmd[0] ? (int)strlen(cmd) - 1 : 0; /* cmd without its trailing space */
    if (!value)
        return qr_cli_usage_error(prog, cmd, "%.*s: --project ID is required", name_len, cmd);
    if (qr_cli_parse_ll(value, 1, INT64_MAX, out) < 0)
        return qr_cli_usage_error(prog, cmd, "%.*s: --project must be a positive integer, not '%s'",
                                  name_len, cmd, value);
    return QR_EXIT_OK;
}

void qr_cli_help(FILE *out, const char *help_fmt)
{
    fprintf(out, help_fmt, qr_client_help_text);
}

int qr_cli_leading_flags(const char *prog, const char *help_fmt, qr_cli_flag_fn *flag,
                         qr_client_config_t *cfg, int argc, char **argv, int *cmd)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, help_fmt);
            return QR_EXIT_OK;
        }
        int r = flag(cfg, prog, argc, argv, &i);
        if (r == 0)
            fprintf(stderr, "%s: unknown flag '%s'\n", prog, argv[i]);
        if (r <= 0)
            return QR_EXIT_USAGE;
    }
    if (i >= argc) {
        qr_cli_help(stderr, help_fmt);
        return QR_EXIT_USAGE;
    }
    *cmd = i;
    return -1;
}

/* --- requests ----------------------------------------------------------------------------- */

json_t *qr_cli_answer(qr_client_call_t *call)
{
    json_error_t jerr;
    json_t *root = json_loadb(call->body.data ? call->body.data : "", call->body.len, 0, &jerr);
    if (!root)
        snprintf(call->message, sizeof call->message, "broker sent invalid JSON from %s: %s",
                 call->url, jerr.text);
    return root;
}

int qr_cli_call(qr_client_call_t *call, const char *method, const char *path, json_t *body,
                json_t **out)
{
    char *text = NULL;
    if (out)
        *out = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text) {
            /* Nothing was sent: no status, and nothing to retry. */
            call->status = 0;
            call->result = CURLE_OK;
            call->code[0] = '\0';
            snprintf(call->message, sizeof call->message, "cannot encode the request body");
            return -1;
        }
    }
    int r = qr_client_call_perform(call, method, path, text, text ? strlen(text) : 0,
                                   text ? "application/json" : NULL, call->cfg->token);
    free(text);
    if (r < 0)
        return -1;
    if (out && !(*out = qr_cli_answer(call)))
        return -1;
    return 0;
}

int qr_cli_connect(const char *prog, qr_client_config_t *cfg, qr_client_call_t *call)
{
    char err[512];
    if (qr_client_config_resolve(cfg, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return QR_EXIT_USAGE;
    }
    if (qr_client_call_init(call, cfg, 0) < 0) {
        fprintf(stderr, "%s: %s\n", prog, call->message);
        qr_client_call_free(call);
        return QR_EXIT_ERROR;
    }
    return QR_EXIT_OK;
}

int qr_cli_request(const char *prog, qr_client_config_t *cfg, const char *method, const char *path,
                   json_t *body, int flags, json_t **out)
{
    qr_client_call_t call;
    if (out)
        *out = NULL;
    int rc = qr_cli_connect(prog, cfg, &call);
    if (rc != QR_EXIT_OK)
        return rc;
    if (qr_cli_call(&call, method, path, body, out) < 0) {
        fprintf(stderr, "%s: %s\n", prog, call.message);
        rc = QR_EXIT_ERROR;
    } else if (flags & QR_CLI_ECHO) {
        rc = qr_cli_echo(prog, &call);
    }
    qr_client_call_free(&call);
    return rc;
}

json_t *qr_cli_get_object(const char *prog, qr_client_call_t *call, const char *path)
{
    json_t *o;
    if (qr_cli_call(call, "GET", path, NULL, &o) < 0) {
        fprintf(stderr, "%s: %s\n", prog, call->message);
        return NULL;
    }
    if (!json_is_object(o)) {
        fprintf(stderr, "%s: the broker's answer to %s is not a JSON object\n", prog, path);
        json_decref(o);
        return NULL;
    }
    return o;
}

int qr_cli_echo(const char *prog, const qr_client_call_t *call)
{
    size_t n = call->body.len;
    if ((n && fwrite(call->body.data, 1, n, stdout) != n) ||
        ((n == 0 || call->body.data[n - 1] != '\n') && putchar('\n') == EOF) ||
        fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write to stdout\n", prog);
        return QR_EXIT_ERROR;
    }
    return QR_EXIT_OK;
}
