/*
 * protocol.h - the one spelling of what quorumd, quorumctl and quorum-agent
 * must agree on: the API's paths, the error codes of its JSON error bodies,
 * the role names, and the exit codes of the two command-line programs.
 * docs/API.md says what each means; this header only spells them, so that a
 * renamed route or code cannot drift apart between the broker and a client.
 *
 * Paths are string literals built by concatenation. A macro's parameters
 * are string literals for its variable segments: "*" gives the broker's
 * route pattern, "%lld" (or "%s" for a lease name) a printf format for a
 * client: QR_API_LEASES("*") is the broker's route for a lease request on
 * any project, and qr_xasprintf(QR_API_LEASES("%lld"), project) the path a
 * client asks for.
 */
#ifndef QR_PROTOCOL_H
#define QR_PROTOCOL_H

/* --- paths ------------------------------------------------------------------------------ */

/* The response header naming the deployment (one PostgreSQL + Redis, any
 * number of brokers) that answered: on every JSON answer, and in the body
 * of GET QR_API_WHOAMI. */
#define QR_HEADER_DEPLOYMENT "Quorum-Deployment"

#define QR_API_HEALTHZ "/healthz"
#define QR_API_READYZ  "/readyz"
#define QR_API_METRICS "/metrics"
/* The OpenAPI 3.1 document of every route (no authentication). */
#define QR_API_OPENAPI "/v1/openapi.json"

#define QR_API_WHOAMI        "/v1/whoami"
#define QR_API_USERS         "/v1/users"
#define QR_API_TOKENS        "/v1/tokens"
#define QR_API_TOKEN(id)     QR_API_TOKENS "/" id
#define QR_API_CERTS         "/v1/certs"
#define QR_API_CERT(id)      QR_API_CERTS "/" id
#define QR_API_ORGANIZATIONS "/v1/organizations"

#define QR_API_PROJECTS              "/v1/projects"
#define QR_API_PROJECT(p)            QR_API_PROJECTS "/" p
#define QR_API_PAUSE(p)              QR_API_PROJECT(p) "/pause"
#define QR_API_REINSTATE(p, user)    QR_API_PROJECT(p) "/annotators/" user "/reinstate"
#define QR_API_RESUME(p)             QR_API_PROJECT(p) "/resume"
#define QR_API_TASKS(p)              QR_API_PROJECT(p) "/tasks"
#define QR_API_TASK(p, t)            QR_API_TASKS(p) "/" t
#define QR_API_IMPORTS(p)            QR_API_PROJECT(p) "/imports"
#define QR_API_LEASES(p)             QR_API_PROJECT(p) "/leases"
#define QR_API_LEASE_HEARTBEAT(p, l) QR_API_LEASES(p) "/" l "/heartbeat"
#define QR_API_LEASE_SUBMIT(p, l)    QR_API_LEASES(p) "/" l "/submit"
#define QR_API_LEASE_RELEASE(p, l)   QR_API_LEASES(p) "/" l "/release"
#define QR_API_LEASE_SKIP(p, l)      QR_API_LEASES(p) "/" l "/skip"
#define QR_API_BATCH_SUBMIT(p)       QR_API_PROJECT(p) "/submit"
#define QR_API_UNDO(p, annotation)   QR_API_PROJECT(p) "/annotations/" annotation "/undo"
#define QR_API_PROGRESS(p)           QR_API_PROJECT(p) "/progress"
#define QR_API_AGREEMENT(p)          QR_API_PROJECT(p) "/agreement"
#define QR_API_THROUGHPUT(p)         QR_API_PROJECT(p) "/throughput"
#define QR_API_EXPORT(p)             QR_API_PROJECT(p) "/export"
#define QR_API_REPORT(p)             QR_API_PROJECT(p) "/report"
#define QR_API_SHARES(p)             QR_API_PROJECT(p) "/shares"
#define QR_API_SHARE(p, org)         QR_API_SHARES(p) "/" org
/* Project management (issue 14): GET QR_API_PROJECTS lists, PATCH and DELETE
 * QR_API_PROJECT change and delete; GET QR_API_USERS lists users. */
#define QR_API_ARCHIVE(p)       QR_API_PROJECT(p) "/archive"
#define QR_API_UNARCHIVE(p)     QR_API_PROJECT(p) "/unarchive"
#define QR_API_WEBHOOKS(p)      QR_API_PROJECT(p) "/webhooks"
#define QR_API_WEBHOOK(p, w)    QR_API_WEBHOOKS(p) "/" w
#define QR_API_DELIVERIES(p, w) QR_API_WEBHOOK(p, w) "/deliveries"
/* PUT: predictions updated in bulk (issue 16, point 5). */
#define QR_API_PREDICTIONS(p) QR_API_PROJECT(p) "/predictions"
/* Review leases (issue 16, point 2): POST to lease review items, then a
 * lease's decision (submit), heartbeat and release. */
#define QR_API_REVIEW_LEASES(p)             QR_API_PROJECT(p) "/reviews/leases"
#define QR_API_REVIEW_LEASE_SUBMIT(p, l)    QR_API_REVIEW_LEASES(p) "/" l "/submit"
#define QR_API_REVIEW_LEASE_HEARTBEAT(p, l) QR_API_REVIEW_LEASES(p) "/" l "/heartbeat"
#define QR_API_REVIEW_LEASE_RELEASE(p, l)   QR_API_REVIEW_LEASES(p) "/" l "/release"
/* POST: complete tasks selected for review by their consensus support
 * (issue 16, point 7: what the crew model is least sure of). */
#define QR_API_REVIEW_SELECT(p) QR_API_PROJECT(p) "/reviews/select"
/* Relabel rounds (issue 16, point 6): POST opens one, GET lists them. */
#define QR_API_ROUNDS(p) QR_API_PROJECT(p) "/rounds"

/* --- error codes: {"error": {"code": CODE, "message": "..."}} ------------------------------ */

/* 400: malformed HTTP, JSON, or an import line or row (the message names it). */
#define QR_CODE_BAD_REQUEST   "bad_request"
#define QR_CODE_INVALID_JSON  "invalid_json"
#define QR_CODE_INVALID_JSONL "invalid_jsonl"
#define QR_CODE_INVALID_CSV   "invalid_csv"
/* 400: a JSON body of too many values, refused before it is parsed. */
#define QR_CODE_TOO_MANY_VALUES "too_many_values"
/* 401: missing, unknown, revoked, expired or malformed token. */
#define QR_CODE_UNAUTHORIZED "unauthorized"
/* 403: the role may not do this, or the project is not visible (see QR_MSG_NO_ACCESS). */
#define QR_CODE_FORBIDDEN "forbidden"
/* 404: no such route, lease, token, certificate mapping or organization. */
#define QR_CODE_NOT_FOUND "not_found"
/* 405: the path exists, not with this method. */
#define QR_CODE_METHOD_NOT_ALLOWED "method_not_allowed"
/* 409: conflicts with what exists (a name taken, a user with another role, ...). */
#define QR_CODE_CONFLICT    "conflict"
#define QR_CODE_USER_EXISTS "user_exists"
/* 409: the lease is no longer valid (expired, superseded, or not the caller's). */
#define QR_CODE_LEASE_EXPIRED "lease_expired"
/* 409: an idempotency key reused with another request: on another lease, or on the same
 * lease with another body (label, active_ms). */
#define QR_CODE_IDEMPOTENCY_CONFLICT "idempotency_conflict"
/* 409: an import of a file the project imported already (same SHA-256), or of tasks whose
 * external_id it holds already; the error carries "duplicates" and "import_id". */
#define QR_CODE_DUPLICATE_IMPORT "duplicate_import"
/* 409: a lease request on a paused project (quorum-agent exits QR_EXIT_PAUSED). */
#define QR_CODE_PROJECT_PAUSED "project_paused"
/* 409: a lease request on an archived project (quorum-agent exits QR_EXIT_PAUSED). */
#define QR_CODE_PROJECT_ARCHIVED "project_archived"
/* 403: the annotator is paused in this project (gold accuracy below its
 * minimum) until a manager reinstates them. */
#define QR_CODE_ANNOTATOR_PAUSED "annotator_paused"
/* 409: DELETE of a project while leases of it are live (?force=true drops them). */
#define QR_CODE_TASKS_LEASED "tasks_leased"
/* 422: a user name that names several users (name@organization tells them apart). */
#define QR_CODE_AMBIGUOUS_USER "ambiguous_user"
/* 413: body over the server's limit; an import over its budget. */
#define QR_CODE_BODY_TOO_LARGE   "body_too_large"
#define QR_CODE_IMPORT_TOO_LARGE "import_too_large"
/* 422: a field with a wrong value; a label outside the project's choices. */
#define QR_CODE_INVALID       "invalid"
#define QR_CODE_UNKNOWN_LABEL "unknown_label"
/* 422 (import): a task breaking the project's rules (the error names its
 * "line" and "field"); annotations_as naming no user of the organization. */
#define QR_CODE_INVALID_TASK "invalid_task"
/* 422 (PUT .../predictions): a line naming no task of the project, a task
 * named twice, or a value or score against the project's rules (the error
 * names its "line"). */
#define QR_CODE_INVALID_PREDICTION  "invalid_prediction"
#define QR_CODE_IMPORT_UNKNOWN_USER "unknown_user"
/* 422 (issue 15): a project's label schema, or a submission's labels against
 * it, breaks a rule; the error names the "field" and its message starts
 * with it. */
#define QR_CODE_INVALID_SCHEMA "invalid_schema"
#define QR_CODE_INVALID_LABELS "invalid_labels"
/* 429: over the token's request rate, or too many failed authentications. */
#define QR_CODE_RATE_LIMITED "rate_limited"
/* 431: request line and headers over the limit. */
#define QR_CODE_HEADERS_TOO_LARGE "headers_too_large"
/* 500: the broker broke a rule of its own (a bug); the message says which. */
#define QR_CODE_INTERNAL "internal"
/* 503: PostgreSQL or Redis unreachable, the broker stopping or full; retry. */
#define QR_CODE_UNAVAILABLE "unavailable"
#define QR_CODE_BUSY        "busy"

/* The start of the 403 message for a project the caller may not see, whether
 * it exists or not ("no access to project 7"): quorum-agent tells "no such
 * project" (QR_EXIT_PROJECT) from a refused token by it. */
#define QR_MSG_NO_ACCESS "no access to project"

/* --- roles -------------------------------------------------------------------------------- */

#define QR_ROLE_NAME_ADMIN     "admin"
#define QR_ROLE_NAME_MANAGER   "manager"
#define QR_ROLE_NAME_REVIEWER  "reviewer"
#define QR_ROLE_NAME_ANNOTATOR "annotator"
/* Every role, most powerful first, as an initializer: {QR_ROLE_NAMES}. */
#define QR_ROLE_NAMES                                                                              \
    QR_ROLE_NAME_ADMIN, QR_ROLE_NAME_MANAGER, QR_ROLE_NAME_REVIEWER, QR_ROLE_NAME_ANNOTATOR

/* --- exit codes of quorumctl and quorum-agent (listed in their --help) ------------------ */

#define QR_EXIT_OK      0 /* done (quorum-agent: project complete, idle exit, nothing left to send) */
#define QR_EXIT_ERROR   1 /* broker or network error (quorum-agent: or the run did not complete) */
#define QR_EXIT_USAGE   2 /* bad flags, arguments, input file or connection settings */
#define QR_EXIT_AUTH    3 /* quorum-agent: the broker refused the token (401/403) */
#define QR_EXIT_TLS     4 /* quorum-agent: TLS certificate problem */
#define QR_EXIT_PROJECT 5 /* quorum-agent: no such project */
#define QR_EXIT_SPOOL   6 /* quorum-agent: the spool cannot be opened or written */
#define QR_EXIT_PENDING 7 /* quorum-agent: stopped with results still spooled */
#define QR_EXIT_PAUSED  8 /* quorum-agent: the project is paused or archived (409) */
#define QR_EXIT_COMMAND 9 /* quorum-agent exec: CMD failed --max-failures times in a row */
/* quorumctl import: stopped by Ctrl-C; the line before says whether the import committed
 * (128 + SIGINT, as a shell reports a command killed by it). */
#define QR_EXIT_INTERRUPTED 130

#endif
