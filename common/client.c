/*
 * client.c - a reusable libcurl request for the broker's HTTPS API (see
 * client.h and docs/API.md): one easy handle per call, certificate
 * verification always on, and every failure summed up in one line. The
 * settings it connects with are client_config.c's.
 */
#include "client.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    long status = 0;
    if (call->sink && curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status >= 200 && status < 300) {
        /* A streamed answer (an export): never held whole. */
        if (fwrite(ptr, 1, n, call->sink) != n) {
            call->sink_failed = 1;
            return 0;
        }
        return n;
    }
    if (call->body.len + n > QR_CLIENT_MAX_RESPONSE) {
        call->body_too_large = 1;
        return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
    }
    qr_buf_append(&call->body, ptr, n);
    return n;
}

/* libcurl header callback: keeps X-Quorum-Cursor (an export's next cursor). */
static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
    qr_client_call_t *call = userdata;
    size_t n = size * nitems;
    static const char name[] = "x-quorum-cursor:";
    if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
        const char *v = ptr + sizeof name - 1;
        const char *e = ptr + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        free(call->cursor);
        call->cursor = qr_xmalloc((size_t)(e - v) + 1);
        memcpy(call->cursor, v, (size_t)(e - v));
        call->cursor[e - v] = '\0';
    }
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
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)call);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
    if (cfg->ca && cfg->ca[0])
        SETOPT(CURLOPT_CAINFO, cfg->ca);
    if (cfg->cert && cfg->cert[0]) {
        SETOPT(CURLOPT_SSLCERT, cfg->cert);
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (cfg->key && cfg->key[0]) {
        SETOPT(CURLOPT_SSLKEY, cfg->key);
        SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
    }
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
    free(call->cursor);
    call->cursor = NULL;
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
    call->sink_failed = 0;
    free(call->cursor);
    call->cursor = NULL;
    call->status = 0;
    call->result = CURLE_OK;
    call->code[0] = '\0';
    call->message[0] = '\0';
    call->errbuf[0] = '\0';

    /* "Expect:" stops libcurl from waiting for a 100 Continue on large bodies. */
    if (add_header(call, "Accept: application/json") < 0 || add_header(call, "Expect:") < 0)
        return -1;
    if (token && token[0]) {
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
                 "TLS certificate problem with %s (CA file %s): %s", call->cfg->url,
                 call->cfg->ca ? call->cfg->ca : "(none)", one);
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
        if (call->sink_failed) {
            snprintf(call->message, sizeof call->message, "cannot write the answer of %s: %s",
                     call->url, strerror(errno));
            break;
        }
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
