/*
 * cli.h - what quorumctl and quorum-agent share on the command line: the
 * argument helpers (flags with a value, boolean flags, the connection
 * flags, numbers in a range, a project id, usage errors that point at
 * --help) and the one helper that sends a request to the broker and reads
 * its JSON answer, qr_cli_call, with quorumctl's one-shot form around it.
 *
 * prog is the program's name as messages start with it ("quorumctl",
 * "quorum-agent"). Every message goes to stderr as one line "PROG: why".
 * Exit codes are protocol.h's QR_EXIT_*. Nothing here keeps state.
 */
#ifndef QR_CLI_H
#define QR_CLI_H

#include "client.h"

#include <jansson.h>
#include <stdio.h>

/* --- arguments ---------------------------------------------------------------------------- */

/* Whether arg asks for help: "--help" or "-h". */
int qr_cli_is_help(const char *arg);

/*
 * If argv[*i] is the flag `name`, given as `name VALUE` or `name=VALUE`,
 * stores a pointer to the value (borrowed from argv) in *value, advances *i
 * past it and returns 1. Returns 0 for any other argument (including
 * `nameX`), and -1 after printing "PROG: NAME needs a value" when `name` is
 * the last argument.
 */
int qr_cli_take_value(const char *prog, int argc, char **argv, int *i, const char *name,
                      const char **value);

/* A boolean flag: sets *on to 1 and returns 1 when arg is name; else 0. */
int qr_cli_flag(const char *arg, const char *name, int *on);

/*
 * If argv[*i] is one of the connection flags (`--url URL`, `--token TOKEN`,
 * `--ca FILE`, `--cert FILE`, `--key FILE`, or their `--flag=value` forms),
 * stores a copy of its value in cfg (a later flag wins), advances *i past
 * the value and returns 1. Returns 0 for anything else, and -1 (message
 * printed) when the value is missing.
 */
int qr_cli_config_flag(qr_client_config_t *cfg, const char *prog, int argc, char **argv, int *i);

/* A decimal integer in [min, max], the whole of s, into *out: 0, or -1. */
int qr_cli_parse_ll(const char *s, long long min, long long max, long long *out);

/* A finite decimal number in [min, max], the whole of s, into *out: 0, or -1. */
int qr_cli_parse_double(const char *s, double min, double max, double *out);

/*
 * Prints "PROG: <why>" and "Run `PROG CMD--help` for usage." to stderr and
 * returns QR_EXIT_USAGE. cmd is "" for the program's own help, or the
 * command with a trailing space ("import ", "project create ").
 */
int qr_cli_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The known word nearest to word (edit distance with transpositions), when
 * it is near enough to be a typo of it (at most 2 edits, and fewer than
 * half the word's length); NULL otherwise. known ends with NULL.
 */
const char *qr_cli_nearest(const char *word, const char *const *known);

/*
 * The usage error for an unknown command: "PROG: unknown command 'X'", with
 * "; did you mean 'Y'?" when a known one is near (qr_cli_nearest). Returns
 * QR_EXIT_USAGE. known ends with NULL.
 */
int qr_cli_unknown_command(const char *prog, const char *word, const char *const *known);

/*
 * The value of a command's `--project ID` (NULL when not given) as a
 * positive integer in *out. Returns QR_EXIT_OK, or QR_EXIT_USAGE after a
 * usage error "CMD: --project ID is required" or "CMD: --project must be a
 * positive integer, not 'X'"; cmd as for qr_cli_usage_error ("report ").
 */
int qr_cli_project_id(const char *prog, const char *cmd, const char *value, long long *out);

/* Prints a help text to out: help_fmt holds one %s, where the connection
 * flags (qr_client_help_text) go. */
void qr_cli_help(FILE *out, const char *help_fmt);

/* A parser of flags that go with cfg, as qr_cli_config_flag. */
typedef int qr_cli_flag_fn(qr_client_config_t *cfg, const char *prog, int argc, char **argv,
                           int *i);

/*
 * The flags before the command in `PROG [FLAGS] COMMAND [ARGS]`: each is
 * --help, or taken by flag (qr_cli_config_flag, or one that adds the
 * program's own). Sets *cmd to the command's index in argv. Returns -1 to
 * go on with that command, or the exit code to end with: QR_EXIT_OK after
 * the help (help_fmt, see qr_cli_help) on stdout, QR_EXIT_USAGE after
 * "PROG: unknown flag 'X'" or, when no command follows, the help on stderr.
 */
int qr_cli_leading_flags(const char *prog, const char *help_fmt, qr_cli_flag_fn *flag,
                         qr_client_config_t *cfg, int argc, char **argv, int *cmd);

/* --- requests ----------------------------------------------------------------------------- */

/*
 * The one request of quorumctl and quorum-agent, on call (set up with
 * qr_client_call_init): method on path with the token of call->cfg, body
 * (NULL: none) sent as compact JSON; when out is given, the 2xx answer is
 * parsed into *out (a new reference the caller decrefs; NULL on failure).
 * Blocks until the answer. Returns 0, or -1 with call->message set:
 *   - no 2xx answer: call->status is 0 (transport) or the HTTP status,
 *     call->code the API's error code; qr_client_call_retryable says
 *     whether the same request may succeed later;
 *   - body cannot be encoded: status 0 and not retryable;
 *   - a 2xx answer that is not JSON: status 2xx, not retryable.
 */
int qr_cli_call(qr_client_call_t *call, const char *method, const char *path, json_t *body,
                json_t **out);

/* The 2xx answer on call parsed as JSON (a new reference), or NULL with
 * call->message saying why ("broker sent invalid JSON from URL: ..."). */
json_t *qr_cli_answer(qr_client_call_t *call);

/*
 * quorumctl's connection: resolves cfg from one source
 * (qr_client_config_resolve, a token needed) and initialises call on it,
 * without a time limit. Returns QR_EXIT_OK (free call with
 * qr_client_call_free), or after printing why QR_EXIT_USAGE (settings
 * incomplete or mixed) or QR_EXIT_ERROR (call not initialised).
 */
int qr_cli_connect(const char *prog, qr_client_config_t *cfg, qr_client_call_t *call);

/* qr_cli_request flag: write the 2xx answer to stdout as received. */
#define QR_CLI_ECHO 1

/*
 * A command's one request: qr_cli_connect, qr_cli_call, and with
 * QR_CLI_ECHO the answer on stdout (qr_cli_echo). On failure prints
 * "PROG: <call->message>". Returns QR_EXIT_OK with *out set as by
 * qr_cli_call (the caller decrefs; out may be NULL: the answer is not
 * parsed, e.g. CSV), or QR_EXIT_USAGE / QR_EXIT_ERROR.
 */
int qr_cli_request(const char *prog, qr_client_config_t *cfg, const char *method, const char *path,
                   json_t *body, int flags, json_t **out);

/* GETs path on call into a JSON object (a new reference), or NULL after
 * printing why (call->status tells a refusal from a failure). */
json_t *qr_cli_get_object(const char *prog, qr_client_call_t *call, const char *path);

/* Writes call's answer to stdout byte for byte, then a newline unless it
 * ends with one, and flushes. QR_EXIT_OK, or QR_EXIT_ERROR (printed) when
 * stdout cannot be written. */
int qr_cli_echo(const char *prog, const qr_client_call_t *call);

#endif
