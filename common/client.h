/*
 * client.h - HTTPS client plumbing shared by quorumctl and quorum-agent.
 *
 * Two parts, each in a file of its own:
 *   - connection settings (client_config.c: broker URL, bearer token, CA
 *     file, optional client certificate and key), taken as one set from one
 *     source: the first of the command-line flags, the QUORUM_URL /
 *     QUORUM_TOKEN / QUORUM_CA / QUORUM_CERT / QUORUM_KEY environment
 *     variables, (quorum-agent only, through
 *     qr_client_config_resolve_profile) the user's profile written by
 *     `quorum-agent login`, and the nearest `.quorum/env` file in the
 *     current directory or one of its parents, that names a broker URL. A
 *     token is never sent to a URL from another source (details at
 *     qr_client_config_resolve). The flags are parsed by cli.h;
 *   - a call object (client.c) wrapping one reusable libcurl easy handle. A
 *     call is set up for one request at a time; quorumctl performs it
 *     blocking (qr_client_call_perform, or cli.h's qr_cli_call with JSON),
 *     quorum-agent adds the easy handle to a multi handle and calls
 *     qr_client_call_finish when libcurl reports it done. Reusing the same
 *     call keeps the kept-alive connection.
 *
 * Certificate verification is on, against the configured CA file, and TLS
 * 1.2 is the minimum. The only way to turn verification off is the config's
 * insecure field, which quorum-agent sets for its loud `--insecure` flag; it
 * is never read from a file or the environment.
 *
 * Every failure is summarised as one line in call->message: "cannot reach
 * the broker at URL: ...", "TLS certificate problem with URL: ...", or, for
 * an HTTP error, "401 unauthorized: <the API's error message>".
 */
#ifndef QR_CLIENT_H
#define QR_CLIENT_H

#include "util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stddef.h>

/* Largest response body we accept (bytes); a bigger one fails the call. */
#define QR_CLIENT_MAX_RESPONSE (64u * 1024 * 1024)

/* Connection settings. All strings are owned by the config (heap) and freed by
 * qr_client_config_free; any may be NULL until resolved. */
typedef struct qr_client_config_s {
    char *url;    /* broker base URL without trailing '/', e.g. https://127.0.0.1:8443 */
    char *token;  /* bearer token (admin/manager for quorumctl) */
    char *ca;     /* PEM file of the CA that signed the broker's certificate */
    char *cert;   /* client certificate (PEM) for mutual TLS, or NULL */
    char *key;    /* its private key (PEM), or NULL (then taken from cert) */
    int insecure; /* 1: do not verify the broker's certificate (--insecure) */
} qr_client_config_t;

void qr_client_config_init(qr_client_config_t *cfg);
void qr_client_config_free(qr_client_config_t *cfg);

/*
 * Completes cfg, which holds only what the command line gave, from one
 * source; the rule, in full:
 *   1. --url given: every setting comes from the command line. If
 *      QUORUM_TOKEN is set and --token is not, that is an error (the token
 *      is never sent to a URL typed for this command); so is QUORUM_CA set
 *      without --ca. Files are not read.
 *   2. QUORUM_URL set: the environment's settings, each overridden by its
 *      flag if given (both are the user's own, for this shell or command).
 *      Files are not read.
 *   3. Otherwise the nearest `.quorum/env` (lines `KEY=value` or `export
 *      KEY=value`, value bare, 'single-' or "double-quoted"; `#` comments;
 *      a relative QUORUM_CA taken relative to the directory that holds
 *      `.quorum/`), if it names a URL: all settings from it alone. Any
 *      QUORUM_TOKEN/_CA/_CERT/_KEY in the environment, or --token/--ca/
 *      --cert/--key on the command line, is then an error: they would be
 *      mixed with a URL from a file found by where one stands. Only the
 *      nearest file is considered; one that is not a regular file owned by
 *      the user, or is writable by group or others, is ignored with one
 *      warning line on stderr.
 *
 * need_token: whether a missing token is an error. Returns 0, or -1 with a
 * one-line reason in err (err_size bytes): a conflict above, or a missing
 * URL, CA file or needed token. Callers exit 2 (usage) on -1.
 */
int qr_client_config_resolve(qr_client_config_t *cfg, int need_token, char *err, size_t err_size);

/*
 * As qr_client_config_resolve, with the profile at profile_path (NULL:
 * qr_client_profile_path(); a missing file is fine) as a source between the
 * environment and `.quorum/env`: when neither flags nor the environment
 * name a URL and the profile does, every setting comes from the profile,
 * each overridden by its flag if given (the profile is the user's own);
 * QUORUM_TOKEN and the like without QUORUM_URL are an error as in step 3.
 * A profile readable by group or others is refused, as ssh refuses such a
 * key.
 */
int qr_client_config_resolve_profile(qr_client_config_t *cfg, int need_token,
                                     const char *profile_path, char *err, size_t err_size);

/*
 * The default profile path, $XDG_CONFIG_HOME/quorum/profile or
 * ~/.config/quorum/profile (heap; the caller frees), or NULL when neither
 * XDG_CONFIG_HOME nor HOME is set.
 */
char *qr_client_profile_path(void);

/*
 * Writes cfg's url, token, ca, cert and key (never insecure) to the profile
 * at path in the `.quorum/env` syntax: the parent directory is created with
 * mode 0700, the file written to a temporary name with mode 0600, fsynced
 * and renamed into place. Relative file paths are made absolute first.
 * Returns 0, or -1 with a one-line reason in err.
 */
int qr_client_profile_write(const char *path, const qr_client_config_t *cfg, char *err,
                            size_t err_size);

/* Text listing the connection flags and variables, for --help output. */
extern const char qr_client_help_text[];

/* curl_global_init (and SIGPIPE ignored) / curl_global_cleanup; call once per process, before any
 * other thread exists. qr_client_global_init returns 0 or -1 (message printed). */
int qr_client_global_init(void);
void qr_client_global_cleanup(void);

/* One request/response at a time over one easy handle. */
typedef struct qr_client_call_s {
    CURL *easy;                    /* owned; reused so the connection stays alive */
    const qr_client_config_t *cfg; /* borrowed; must outlive the call */
    struct curl_slist *headers;    /* owned; for the current request */
    char *url;                     /* owned; full URL of the current request */
    qr_buf_t request_body;         /* owned copy of the body being sent */
    qr_buf_t body;                 /* response body (NUL-terminated) */
    int body_too_large;            /* response exceeded QR_CLIENT_MAX_RESPONSE */
    long status;                   /* HTTP status, 0 when no response arrived */
    CURLcode result;               /* libcurl's result for the transfer */
    char code[64];                 /* API error code ("lease_expired") or "" */
    char message[512];             /* one-line summary of a failure, or "" */
    char errbuf[CURL_ERROR_SIZE];  /* libcurl's detailed error text */
    void *data;                    /* for the caller */
    FILE *sink;                    /* set: a 2xx body goes here as it arrives, not into body */
    int sink_failed;               /* writing to sink failed (the transfer then fails) */
    char *cursor; /* owned: X-Quorum-Cursor of the last answer (an export), or NULL */
} qr_client_call_t;

/*
 * Creates the easy handle with the options every request shares (CA file,
 * TLS 1.2+, HTTP/1.1, connect timeout). timeout_ms bounds each whole request
 * (0 = no bound; a stall of 60 s without progress still fails it).
 * Returns 0, or -1 with call->message set.
 */
int qr_client_call_init(qr_client_call_t *call, const qr_client_config_t *cfg, long timeout_ms);
/* Frees everything the call owns. The easy handle must not be in a multi. */
void qr_client_call_free(qr_client_call_t *call);

/*
 * Prepares the next request: method ("GET", "POST"), path ("/v1/..."), body
 * (copied; may be NULL for none) of body_len bytes with content_type, and the
 * bearer token (NULL: no Authorization header). Resets the previous response.
 * Returns 0, or -1 with call->message set.
 */
int qr_client_call_setup(qr_client_call_t *call, const char *method, const char *path,
                         const void *body, size_t body_len, const char *content_type,
                         const char *token);

/*
 * Records the outcome of the transfer (result as given by libcurl) and fills
 * status, code and message. Returns 0 when a response with a 2xx status
 * arrived, -1 otherwise (transport failure: status 0; HTTP error: status >= 300,
 * code = the API's error code).
 */
int qr_client_call_finish(qr_client_call_t *call, CURLcode result);

/* setup + curl_easy_perform + finish, blocking. The body is sent in place,
 * not copied. Same return as finish. */
int qr_client_call_perform(qr_client_call_t *call, const char *method, const char *path,
                           const void *body, size_t body_len, const char *content_type,
                           const char *token);

/* Whether a failed call is worth retrying unchanged: no response, or 5xx. */
int qr_client_call_retryable(const qr_client_call_t *call);

#endif
