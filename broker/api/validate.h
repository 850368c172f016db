/*
 * validate.h - the checks the v1 API makes on JSON request bodies, as pure
 * functions: no I/O, no request context, no PostgreSQL or Redis. the handlers turn
 * a failure into its HTTP answer; tests/fuzz/fuzz_json.c runs the very same
 * functions on arbitrary bytes.
 *
 * Each body validator takes a parsed body (a JSON object, borrowed) and
 * either fills its output and returns 0, or fills a qr_invalid_t with the
 * HTTP status, the API error code and a one-line message and returns -1.
 * Strings and JSON values handed back are borrowed from the body and live as
 * long as it does. Checks run in the order the API documents its errors, so
 * the first wrong field is the one reported.
 */
#ifndef QR_VALIDATE_H
#define QR_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "label_schema.h"

/* Most leases one lease request may take, and most results one batch submit may carry. */
#define QR_MAX_LEASES_PER_REQUEST 100

/* Why a body was refused. */
typedef struct qr_invalid_s {
    int status;        /* HTTP status: 400, 403 or 422 */
    const char *code;  /* API error code ("invalid_json", "invalid", ...); static */
    char message[320]; /* one line, no trailing newline */
    /* The field a label schema or a submission's labels was refused for
     * (422 invalid_schema, invalid_labels: the answer's "field"); "" for
     * every other refusal. */
    char field[QR_LABEL_NAME_MAX + 8];
} qr_invalid_t;

/*
 * Makes message fit for the JSON error answer, in place: control characters
 * (a newline jansson quoted from the body) become '?', and if the text is
 * not valid UTF-8 (a multibyte character cut by a length limit, or bytes
 * quoted from a malformed body) so does every non-ASCII byte. Every refusal
 * below is scrubbed so; the API scrubs its own messages the same way.
 */
void qr_validate_scrub(char *message);

/* The most values (objects, arrays, scalars) a request body may hold: a
 * 1 MiB body of "[]," would otherwise take some 30 times its size in
 * memory once parsed. Far above what any route needs (a batch submit of a
 * thousand results is some 5,000 values). */
#define QR_JSON_MAX_VALUES 100000

/*
 * Parses a request body as a JSON object: leading white space is skipped, an
 * empty body is {} when allow_empty, duplicate keys are refused, and a body
 * of more than QR_JSON_MAX_VALUES values is refused before it is parsed
 * (400 too_many_values). Returns a new reference (the caller decrefs), or
 * NULL with why filled (400 invalid_json). Thread-safe: touches nothing but
 * its arguments.
 */
json_t *qr_validate_body(const char *body, size_t len, int allow_empty, qr_invalid_t *why);

/*
 * An optional integer field of body in [lo, hi]: *out = dflt when it is
 * absent or null. Returns 0, or -1 (422 invalid) on a wrong type or range.
 */
int qr_validate_int(json_t *body, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                    int64_t *out, qr_invalid_t *why);

/* 1 when s holds no control character: no byte below 0x20, no DEL (0x7f)
 * and no C1 control (U+0080-U+009F); else 0. Names, labels and reasons are
 * shown on terminals and in spreadsheets, so they may not carry any. */
int qr_validate_text(const char *s);

/* 1 when s is a string of 1 to 200 bytes (names, labels, keys) with no
 * control character (qr_validate_text), else 0. */
int qr_validate_name(const char *s);

/* The QR_ROLE_* bit of "admin", "manager", "reviewer" or "annotator"; 0 otherwise (or NULL). */
int qr_validate_role(const char *s);

/* The rank of a QR_ROLE_* bit, lowest first: annotator 1, reviewer 2,
 * manager 3, admin 4 (0 for anything else). A caller acts for an existing
 * user only up to its own rank (the same order as QR_SQL_ROLE_RANK). */
int qr_validate_role_rank(int role);

/* A token lifetime "30d", "12h", "90m", "45s" or plain seconds, in seconds;
 * -1 when malformed, not positive or over 10 years. */
int64_t qr_validate_lifetime(const char *s);

/*
 * POST /v1/users: name and role. caller_role is the caller's QR_ROLE_* bit:
 * only an admin may create an admin (403 forbidden).
 */
int qr_validate_user_body(json_t *body, int caller_role, const char **name, int *role,
                          qr_invalid_t *why);

/* POST /v1/tokens: user, role and an optional expires (lifetime_s = 0: never). */
typedef struct qr_token_body_s {
    const char *user;
    const char *role; /* as given, known valid */
    int role_bit;     /* its QR_ROLE_* bit */
    int64_t lifetime_s;
} qr_token_body_t;

int qr_validate_token_body(json_t *body, int caller_role, qr_token_body_t *out, qr_invalid_t *why);

/* Gold served at a rate and annotators paused below a gold accuracy (issue
 * 16): the keys of a project body, each as given or "not given". */
typedef struct qr_gold_settings_s {
    double rate;         /* gold_rate, 0 to 1; NAN: not given */
    int64_t onboarding;  /* gold_onboarding, 0 to 10000; -1: not given */
    int min_set;         /* 1: gold_min_accuracy given (min_accuracy NAN for null) */
    double min_accuracy; /* gold_min_accuracy, 0 to 1 */
    int64_t min_count;   /* gold_min_count, 1 to 100000; -1: not given */
} qr_gold_settings_t;

/* POST /v1/projects: labels (a plain project) or schema, not both. */
typedef struct qr_project_body_s {
    const char *name;
    json_t *labels; /* array of 1 to 1000 distinct valid names; NULL with a schema */
    /* The label schema, normalized (qr_label_schema_to_json: defaults filled
     * in), put back into the body in place of the one given; NULL for a
     * plain project. A refused schema is 422 invalid_schema with its field. */
    json_t *schema;
    int64_t annotations_per_task;
    int64_t lease_ttl_ms;
    int64_t overlap_annotations;
    double overlap_fraction;    /* 0 to 1 */
    int overlap_first;          /* 0 or 1 */
    const char *sampling;       /* "sequential" (default), "random", "uncertainty", "stratified" */
    const char *stratify_field; /* set only for stratified sampling, else NULL */
    int64_t max_leases_per_annotator; /* 1 to 10000; 0 when absent (the broker's default) */
    /* Confident predictions auto-accepted (issue 16): a score from 0 to 1,
     * or NAN when absent or null (none are); the share of them audited by
     * humans, 0 to 1 (default 0). */
    double auto_accept_confidence;
    double auto_accept_audit;
    /* Dynamic overlap (issue 16): overlap_min to overlap_max annotations per
     * task, one more while support is below overlap_agreement_threshold; 0,
     * 0 and NAN when off (fixed overlap). With it on, annotations_per_task
     * is overlap_min. */
    int64_t overlap_min, overlap_max;
    double overlap_agreement_threshold;
    /* Predictions shown to annotators with each lease (issue 16, point 9):
     * 0 or 1 (default 0). */
    int show_predictions;
    qr_gold_settings_t gold; /* the gold keys (qr_validate_gold) */
    /* Review (issue 16): review_mode (NULL: absent), review_share and
     * review_agreement_threshold (NAN: absent). */
    const char *review_mode;
    double review_share, review_agreement_threshold;
    /* What dynamic overlap compares with its threshold (sql/0034):
     * overlap_measure "support" or "confidence" (NULL: absent, the default
     * support), overlap_prior_accuracy in (0, 1) (NAN: absent, 0.75). */
    const char *overlap_measure;
    double overlap_prior_accuracy;
} qr_project_body_t;

/* show_predictions of a project body, when given: 0 with *set 1 and *on
 * the value (true or false), or *set 0 when absent or null; -1 with why
 * (422) when it is not a boolean. */
int qr_validate_show_predictions(json_t *body, int *set, int *on, qr_invalid_t *why);

/* The dynamic overlap keys of a project body (POST, or PATCH over the
 * held values: held_min 0 and held_thr NAN when the project has none):
 * overlap_min and overlap_max (integers from 1 to 100, min <= max) and
 * overlap_agreement_threshold (a number in (0, 1]), each may be null. *set
 * is 1 when the body names any of them; *min, *max, *thr are the values the
 * project has after it (0, 0, NAN: off). Refused (422): a bad value, the
 * keys not all set or all null after it, min above max. */
int qr_validate_dynamic_overlap(json_t *body, int64_t held_min, int64_t held_max, double held_thr,
                                int *set, int64_t *min, int64_t *max, double *thr,
                                qr_invalid_t *why);

/* overlap_measure (support or confidence) and overlap_prior_accuracy (a
 * number above 0 and below 1) of a project body, when given: *measure NULL
 * and *prior NAN for those absent. Refused (422): another measure, a prior
 * out of range; null is refused too (both always have a value). */
int qr_validate_overlap_measure(json_t *body, const char **measure, double *prior,
                                qr_invalid_t *why);

/* review_mode (none, all, share, low_agreement), review_share (0-1) and
 * review_agreement_threshold (0-1) of a project body, when given: *mode
 * NULL and the numbers NAN for those absent. */
int qr_validate_review(json_t *body, const char **mode, double *share, double *threshold,
                       qr_invalid_t *why);

/* auto_accept_confidence (a number from 0 to 1, or null: off) and
 * auto_accept_audit (0 to 1) of a project body, when given: *set_conf 1
 * and *conf (NAN for null) when the first is given, *audit (or NAN when not
 * given). An audit share without a confidence, given or held (held: the
 * project's current one, NAN when none), is refused. */
int qr_validate_auto_accept(json_t *body, double held, int *set_conf, double *conf, double *audit,
                            qr_invalid_t *why);

/* Reads the gold keys of a project body into out. held_*: the project's
 * current values (a new project's defaults: 0, 0, NAN). A minimum accuracy
 * (given or held) without gold served (a rate or an onboarding above 0,
 * given or held) is refused: nobody could be judged. */
int qr_validate_gold(json_t *body, double held_rate, int held_onboarding, double held_min,
                     qr_gold_settings_t *out, qr_invalid_t *why);

int qr_validate_project_body(json_t *body, qr_project_body_t *out, qr_invalid_t *why);

/* POST .../leases: max (1 to QR_MAX_LEASES_PER_REQUEST, default 1) and wait_ms
 * (0 to 60000 ms, default 0). */
int qr_validate_lease_body(json_t *body, int64_t *max, int64_t *wait_ms, qr_invalid_t *why);

/* POST .../release and .../skip: an optional reason of at most 500 bytes (NULL when absent). */
int qr_validate_release_body(json_t *body, const char **reason, qr_invalid_t *why);

/* One submitted result. */
typedef struct qr_result_body_s {
    const char *label;           /* one of the project's labels */
    const char *idempotency_key; /* NULL when absent or null */
    int64_t active_ms;           /* 0 to 86400000, or -1 when absent */
} qr_result_body_t;

/* A result object (a submit's body, or one entry of a batch) against the project's labels. */
int qr_validate_result(json_t *o, char *const *labels, int nlabels, qr_result_body_t *out,
                       qr_invalid_t *why);

/*
 * A result object against a label schema (issue 15): "labels", an object
 * of the schema's fields, or "label" where the schema takes one (a plain
 * project's, or one of a single choice field: qr_label_from_single), not
 * both; idempotency_key and active_ms as qr_validate_result. Runs every
 * rule of the schema but those needing the task's data (span ends), so a
 * span field's value is checked again with the data (qr_label_check). On
 * success *canonical is the stored text (heap: the caller frees) and
 * *labels the labels object (a new reference: the caller decrefs); out's
 * label is NULL. A refusal of the labels is 422 invalid_labels with the
 * field; of anything else as qr_validate_result.
 */
int qr_validate_result_labels(json_t *o, const qr_label_schema_t *schema, qr_result_body_t *out,
                              char **canonical, json_t **labels, qr_invalid_t *why);

/* A refusal of labels by the schema (qr_label_check with the task's data)
 * as the API answers it: 422 invalid_labels, the message and the field. */
void qr_validate_labels_refusal(const qr_label_error_t *err, qr_invalid_t *why);

/* POST .../submit (batch): results must be an array of 1 to QR_MAX_LEASES_PER_REQUEST
 * (400 bad_request). *results is borrowed from body. */
int qr_validate_batch_body(json_t *body, json_t **results, qr_invalid_t *why);

/*
 * One entry of a batch: an object whose lease is an integer or a string of
 * digits. *lease gets what could be read of it (0 if nothing) even when the
 * entry is refused, since the answer echoes it.
 */
int qr_validate_batch_entry(json_t *o, int64_t *lease, qr_invalid_t *why);

/* The most review items one POST .../reviews/select may record. */
#define QR_REVIEW_SELECT_MAX 1000000

/* POST .../reviews/select (issue 16, point 7): which measure of a task's
 * consensus support picks the tasks to review, below what. */
typedef struct {
    const char *method;   /* "majority" or "dawid_skene" (static) */
    double support_below; /* 0..1: tasks whose support is below it */
    int64_t limit;        /* at most this many items; 0: no limit */
} qr_review_select_body_t;

/*
 * The body of POST .../reviews/select: method (majority or dawid_skene,
 * required), support_below (a number from 0 to 1, required), limit (an
 * integer from 1 to QR_REVIEW_SELECT_MAX, optional), no other key. A
 * refusal is 422 invalid.
 */
int qr_validate_review_select(json_t *body, qr_review_select_body_t *out, qr_invalid_t *why);

#endif
