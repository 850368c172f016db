/*
 * client.c - connection settings and a reusable libcurl request for the
 * broker's HTTPS API (see client.h and docs/API.md).
 *
 * The settings come from three places in decreasing priority: flags, the
 * environment, and the nearest `.quorum/env` file. The file is read with a
 * small subset of shell quoting so it can also be `source`d by a shell.
 */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char qr_client_help_text[] =
    "Connection (flags override environment, which overrides .quorum/env):\n"
    "  --url URL      broker base URL, https only    (QUORUM_URL)\n"
    "  --token TOKEN  bearer token                   (QUORUM_TOKEN)\n"
    "  --ca FILE      CA certificate (PEM) that signed the broker's certificate\n"
    "                 (QUORUM_CA); certificates are always verified\n"
    "  .quorum/env is searched in the current directory and its parents;\n"
    "  lines look like QUORUM_URL='https://127.0.0.1:8443' or export QUORUM_CA=...\n";

void qr_client_config_init(qr_client_config_t *cfg)
{
    cfg->url = NULL;
    cfg->token = NULL;
    cfg->ca = NULL;
}

void qr_client_config_free(qr_client_config_t *cfg)
{
    free(cfg->url);
    free(cfg->token);
    free(cfg->ca);
    qr_client_config_init(cfg);
}

static void set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = qr_xstrdup(value);
}

int qr_client_config_flag(qr_client_config_t *cfg, const char *prog, int argc, char **argv, int *i)
{
    static const char *const names[] = {"--url", "--token", "--ca"};
    char **slots[] = {&cfg->url, &cfg->token, &cfg->ca};
    const char *arg = argv[*i];

    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg, names[k], n) != 0)
            continue;
        if (arg[n] == '=') {
            set_str(slots[k], arg + n + 1);
            return 1;
        }
        if (arg[n] != '\0')
            continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, names[k]);
            return -1;
        }
        *i += 1;
        set_str(slots[k], argv[*i]);
        return 1;
    }
    return 0;
}

/*
 * Parses one shell-like value starting at p: a concatenation of bare words,
 * '...' (literal) and "..." (backslash escapes \ " $ `) segments, ending at
 * unquoted whitespace, '#' or the end of the line. Returns a heap string, or
 * NULL on an unterminated quote.
 */
static char *parse_value(const char *p)
{
    qr_buf_t out;
    qr_buf_init(&out);
    qr_buf_appends(&out, "");
    while (*p && *p != '\n' && *p != '\r') {
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                goto fail;
            qr_buf_append(&out, p + 1, (size_t)(end - p - 1));
            p = end + 1;
        } else if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1] && strchr("\\\"$`", p[1]))
                    p++;
                qr_buf_append(&out, p, 1);
                p++;
            }
            if (*p != '"')
                goto fail;
            p++;
        } else if (isspace((unsigned char)*p) || *p == '#') {
            break;
        } else {
            if (*p == '\\' && p[1] && p[1] != '\n')
                p++;
            qr_buf_append(&out, p, 1);
            p++;
        }
    }
    return qr_buf_steal(&out);
fail:
    qr_buf_free(&out);
    return NULL;
}

/*
 * Reads QUORUM_URL, QUORUM_TOKEN and QUORUM_CA from the env file at path
 * into the slots that are still NULL. base_dir: the directory relative CA
 * paths are taken from. Returns 0, or -1 with err set.
 */
static int read_env_file(qr_client_config_t *cfg, const char *path, const char *base_dir, char *err,
                         size_t err_size)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0;
    qr_client_config_t found;

    if (!f) {
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    qr_client_config_init(&found);
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        char **slot = NULL;
        lineno++;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        if (strncmp(p, "export", 6) == 0 && isspace((unsigned char)p[6])) {
            p += 6;
            while (isspace((unsigned char)*p))
                p++;
        }
        if (strncmp(p, "QUORUM_URL=", 11) == 0) {
            slot = &found.url;
            p += 11;
        } else if (strncmp(p, "QUORUM_TOKEN=", 13) == 0) {
            slot = &found.token;
            p += 13;
        } else if (strncmp(p, "QUORUM_CA=", 10) == 0) {
            slot = &found.ca;
            p += 10;
        } else {
            continue; /* other variables are someone else's */
        }
        char *value = parse_value(p);
        if (!value) {
            snprintf(err, err_size, "%s:%d: unterminated quote", path, lineno);
            qr_client_config_free(&found);
            fclose(f);
            return -1;
        }
        free(*slot);
        *slot = value; /* the last assignment wins, as in a shell */
    }
    if (ferror(f)) {
        snprintf(err, err_size, "cannot read %s", path);
        qr_client_config_free(&found);
        fclose(f);
        return -1;
    }
    fclose(f);

    if (found.ca && found.ca[0] && found.ca[0] != '/') {
        char *abs = qr_xasprintf("%s/%s", base_dir, found.ca);
        free(found.ca);
        found.ca = abs;
    }
    if (!cfg->url && found.url && found.url[0])
        cfg->url = qr_xstrdup(found.url);
    if (!cfg->token && found.token && found.token[0])
        cfg->token = qr_xstrdup(found.token);
    if (!cfg->ca && found.ca && found.ca[0])
        cfg->ca = qr_xstrdup(found.ca);
    qr_client_config_free(&found);
    return 0;
}

/* Finds the nearest .quorum/env from the current directory upwards and reads
 * it. No file is not an error. */
static int read_nearest_env_file(qr_client_config_t *cfg, char *err, size_t err_size)
{
    char dir[PATH_MAX];
    if (!getcwd(dir, sizeof dir))
        return 0; /* a vanished cwd just means no file */
    for (;;) {
        char *path = qr_xasprintf("%s%s.quorum/env", dir, strcmp(dir, "/") == 0 ? "" : "/");
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            int rc = read_env_file(cfg, path, dir, err, err_size);
            free(path);
            return rc;
        }
        free(path);
        if (strcmp(dir, "/") == 0)
            return 0;
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

static void fill_from_env(char **slot, const char *name)
{
    const char *v = getenv(name);
    if (!*slot && v && v[0])
        *slot = qr_xstrdup(v);
}

int qr_client_config_resolve(qr_client_config_t *cfg, int need_token, char *err, size_t err_size)
{
    fill_from_env(&cfg->url, "QUORUM_URL");
    fill_from_env(&cfg->token, "QUORUM_TOKEN");
    fill_from_env(&cfg->ca, "QUORUM_CA");
    if ((!cfg->url || !cfg->token || !cfg->ca) && read_nearest_env_file(cfg, err, err_size) < 0)
        return -1;

    if (!cfg->url || !cfg->url[0]) {
        snprintf(err, err_size, "no broker URL: give --url, set QUORUM_URL or write .quorum/env");
        return -1;
    }
    if (strncmp(cfg->url, "https://", 8) != 0) {
        snprintf(err, err_size, "broker URL must start with https:// (got '%s')", cfg->url);
        return -1;
    }
    size_t n = strlen(cfg->url);
    while (n > 8 && cfg->url[n - 1] == '/')
        cfg->url[--n] = '\0';
    if (!cfg->ca || !cfg->ca[0]) {
        snprintf(err, err_size,
                 "no CA file: give --ca, set QUORUM_CA or write .quorum/env "
                 "(certificates are always verified)");
        return -1;
    }
    if (access(cfg->ca, R_OK) != 0) {
        snprintf(err, err_size, "cannot read CA file %s: %s", cfg->ca, strerror(errno));
        return -1;
    }
    if (need_token && (!cfg->token || !cfg->token[0])) {
        snprintf(err, err_size, "no token: give --token, set QUORUM_TOKEN or write .quorum/env");
        return -1;
    }
    /* The token goes into a header line: refuse anything that could split it. */
    for (const char *p = cfg->token; p && *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            snprintf(err, err_size, "token contains a space or control character");
            return -1;
        }
    }
    return 0;
}

int qr_client_global_init(void)
{
    /* With CURLOPT_NOSIGNAL libcurl leaves SIGPIPE alone, and a write to a
     * connection the broker closed would kill the process: ignore it. */
    signal(SIGPIPE, SIG_IGN);
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        fprintf(stderr, "quorum: cannot initialise libcurl: %s\n", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void qr_client_global_cleanup(void)
{
    curl_global_cleanup();
}

/* libcurl write callback: appends to call->body, refusing oversize bodies. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    qr_client_call_t *call = userdata;
    size_t n = size * nmemb;
    if (call->body.len + n > QR_CLIENT_MAX_RESPONSE) {
        call->body_too_large = 1;
        return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
    }
    qr_buf_append(&call->body, ptr, n);
    return n;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode rc_ = curl_easy_setopt(call->easy, opt, val);                                     \
        if (rc_ != CURLE_OK) {                                                                     \
            snprintf(call->message, sizeof call->message, "libcurl: cannot set %s: %s", #opt,      \
                     curl_easy_strerror(rc_));                                                     \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

int qr_client_call_init(qr_client_call_t *call, const qr_client_config_t *cfg, long timeout_ms)
{
    memset(call, 0, sizeof *call);
    call->cfg = cfg;
    qr_buf_init(&call->request_body);
    qr_buf_init(&call->body);
    call->easy = curl_easy_init();
    if (!call->easy) {
        snprintf(call->message, sizeof call->message, "libcurl: cannot create a handle");
        return -1;
    }
    SETOPT(CURLOPT_PRIVATE, (void *)call);
    SETOPT(CURLOPT_ERRORBUFFER, call->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)call);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_CAINFO, cfg->ca);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, 60L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_USERAGENT, "quorum-client/1");
    return 0;
fail:
    curl_easy_cleanup(call->easy);
    call->easy = NULL;
    return -1;
}

void qr_client_call_free(qr_client_call_t *call)
{
    if (call->easy)
        curl_easy_cleanup(call->easy);
    call->easy = NULL;
    curl_slist_free_all(call->headers);
    call->headers = NULL;
    free(call->url);
    call->url = NULL;
    qr_buf_free(&call->request_body);
    qr_buf_free(&call->body);
}

/* Appends a header line to the call's list; returns 0 or -1. */
static int add_header(qr_client_call_t *call, const char *line)
{
    struct curl_slist *l = curl_slist_append(call->headers, line);
    if (!l) {
        snprintf(call->message, sizeof call->message, "libcurl: cannot build headers");
        return -1;
    }
    call->headers = l;
    return 0;
}

/*
 * Shared by qr_client_call_setup and qr_client_call_perform. copy_body: whether
 * the body must be copied (the caller's buffer may go away before the transfer
 * runs, as in the agent's multi loop) or may be sent in place (a blocking
 * perform; spares a second copy of a large import).
 */
static int setup_request(qr_client_call_t *call, const char *method, const char *path,
                         const void *body, size_t body_len, const char *content_type,
                         const char *token, int copy_body)
{
    curl_slist_free_all(call->headers);
    call->headers = NULL;
    free(call->url);
    call->url = qr_xasprintf("%s%s", call->cfg->url, path);
    qr_buf_reset(&call->body);
    qr_buf_reset(&call->request_body);
    call->body_too_large = 0;
    call->status = 0;
    call->result = CURLE_OK;
    call->code[0] = '\0';
    call->message[0] = '\0';
    call->errbuf[0] = '\0';

    /* "Expect:" stops libcurl from waiting for a 100 Continue on large bodies. */
    if (add_header(call, "Accept: application/json") < 0 || add_header(call, "Expect:") < 0)
        return -1;
    if (token) {
        char *h = qr_xasprintf("Authorization: Bearer %s", token);
        int rc = add_header(call, h);
        free(h);
        if (rc < 0)
            return -1;
    }
    if (body && content_type) {
        char *h = qr_xasprintf("Content-Type: %s", content_type);
        int rc = add_header(call, h);
        free(h);
        if (rc < 0)
            return -1;
    }

    SETOPT(CURLOPT_URL, call->url);
    SETOPT(CURLOPT_HTTPHEADER, call->headers);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (strcmp(method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        const char *send = body ? body : "";
        size_t len = body ? body_len : 0;
        if (copy_body) {
            qr_buf_append(&call->request_body, send, len);
            send = call->request_body.data;
        }
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        SETOPT(CURLOPT_POSTFIELDS, send);
        if (strcmp(method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
fail:
    return -1;
}

#undef SETOPT

int qr_client_call_setup(qr_client_call_t *call, const char *method, const char *path,
                         const void *body, size_t body_len, const char *content_type,
                         const char *token)
{
    return setup_request(call, method, path, body, body_len, content_type, token, 1);
}

/* A short lowercase reason for statuses whose body is not the API's error JSON. */
static const char *reason(long status)
{
    switch (status) {
    case 400:
        return "bad request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 409:
        return "conflict";
    case 413:
        return "body too large";
    case 422:
        return "unprocessable";
    case 500:
        return "internal server error";
    case 502:
        return "bad gateway";
    case 503:
        return "unavailable";
    case 504:
        return "gateway timeout";
    default:
        return status >= 500 ? "server error" : "error";
    }
}

/* Copies s into dst (dst_size bytes), turning control characters into spaces
 * so the result stays on one line. */
static void copy_one_line(char *dst, size_t dst_size, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < dst_size; i++)
        dst[i] = (unsigned char)s[i] < ' ' ? ' ' : s[i];
    dst[i] = '\0';
}

/* Fills call->message for a transport failure, by kind of failure. */
static void describe_transport_error(qr_client_call_t *call)
{
    const char *detail = call->errbuf[0] ? call->errbuf : curl_easy_strerror(call->result);
    char one[CURL_ERROR_SIZE];
    copy_one_line(one, sizeof one, detail);

    switch (call->result) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        snprintf(call->message, sizeof call->message, "cannot reach the broker at %s: %s",
                 call->cfg->url, one);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(call->message, sizeof call->message, "broker at %s timed out: %s", call->cfg->url,
                 one);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(call->message, sizeof call->message,
                 "TLS certificate problem with %s (CA file %s): %s", call->cfg->url, call->cfg->ca,
                 one);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(call->message, sizeof call->message, "TLS handshake with %s failed: %s",
                 call->cfg->url, one);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(call->message, sizeof call->message, "bad broker URL %s: %s", call->url, one);
        break;
    case CURLE_WRITE_ERROR:
        if (call->body_too_large) {
            snprintf(call->message, sizeof call->message,
                     "response from %s is over %u bytes; refused", call->url,
                     QR_CLIENT_MAX_RESPONSE);
            break;
        }
        /* fall through */
    default:
        snprintf(call->message, sizeof call->message, "request to %s failed: %s", call->url, one);
        break;
    }
}

/* Fills code and message for an HTTP error status from the API's error JSON
 * {"error": {"code": ..., "message": ...}}, or from the raw body. */
static void describe_http_error(qr_client_call_t *call)
{
    json_error_t jerr;
    json_t *root = json_loadb(call->body.data ? call->body.data : "", call->body.len, 0, &jerr);
    const char *code = NULL, *msg = NULL;
    json_t *e = root ? json_object_get(root, "error") : NULL;
    if (json_is_object(e)) {
        code = json_string_value(json_object_get(e, "code"));
        msg = json_string_value(json_object_get(e, "message"));
    }
    copy_one_line(call->code, sizeof call->code, code ? code : "");

    char text[400];
    if (msg)
        copy_one_line(text, sizeof text, msg);
    else if (call->body.len)
        copy_one_line(text, sizeof text, call->body.data);
    else
        snprintf(text, sizeof text, "(empty response body)");
    snprintf(call->message, sizeof call->message, "%ld %s: %s", call->status,
             code ? call->code : reason(call->status), text);
    json_decref(root);
}

int qr_client_call_finish(qr_client_call_t *call, CURLcode result)
{
    call->result = result;
    call->status = 0;
    if (result != CURLE_OK) {
        describe_transport_error(call);
        return -1;
    }
    long status = 0;
    CURLcode rc = curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status == 0) {
        snprintf(call->message, sizeof call->message, "no HTTP status from %s", call->url);
        return -1;
    }
    call->status = status;
    if (status >= 200 && status < 300)
        return 0;
    describe_http_error(call);
    return -1;
}

int qr_client_call_perform(qr_client_call_t *call, const char *method, const char *path,
                           const void *body, size_t body_len, const char *content_type,
                           const char *token)
{
    if (setup_request(call, method, path, body, body_len, content_type, token, 0) < 0)
        return -1;
    CURLcode result = curl_easy_perform(call->easy);
    /* Forget the caller's buffer, which is only valid during this call. */
    CURLcode rc = curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, (char *)NULL);
    if (result == CURLE_OK && rc != CURLE_OK)
        result = rc;
    return qr_client_call_finish(call, result);
}

int qr_client_call_retryable(const qr_client_call_t *call)
{
    if (call->status == 0) {
        /* Certificate and URL problems will not fix themselves. */
        switch (call->result) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_OK:
            return 0;
        default:
            return !call->body_too_large;
        }
    }
    return call->status >= 500;
}
