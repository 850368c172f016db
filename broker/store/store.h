/*
 * store.h - every SQL statement quorumd runs on the hot paths, in one place.
 * Parameters are always bound ($1, $2, ...), never pasted into the text.
 * Each statement is one round trip; where several rows must change together
 * they do so in one statement (CTEs), so there is no transaction spanning
 * callbacks.
 */
#ifndef QR_STORE_H
#define QR_STORE_H

#include "sql_work.h"
#include "sql_export.h"

/* $1 token digest -> user id, org id, role, name (live tokens only). */
#define QR_SQL_TOKEN_LOOKUP                                                                        \
    "SELECT u.id, u.org_id, u.role, u.name,"                                                       \
    "  coalesce((extract(epoch FROM t.expires_at) * 1000)::bigint, 0),"                            \
    "  t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'"                     \
    " FROM api_tokens t JOIN users u ON u.id = t.user_id"                                          \
    " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL"                                          \
    "   AND (t.expires_at IS NULL OR t.expires_at > now())"

/* $1 token SHA-256: records a use, at most once a minute (a lookup that
 * finds nothing writes nothing; QR_SQL_TOKEN_LOOKUP says when it is due). */
#define QR_SQL_TOKEN_TOUCH                                                                         \
    "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1"                           \
    "  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"

/* Token lifecycle. Create: $1 org, $2 user name, $3 role, $4 digest,
 * $5 prefix, $6 lifetime in seconds (NULL: never expires), $7 the caller's
 * organization, $8 the caller's role -> the user's id and role, whether it
 * was created now, and the token's id and expires_at (ISO 8601), both NULL
 * when no token was made. A new user gets the role. An existing user is
 * never changed; it gets a token only when it has the role asked, is of
 * the caller's organization and its role is not above the caller's
 * (annotator < reviewer < manager < admin). No row: the user appeared
 * between the insert and the read (a concurrent create); retry. */
#define QR_SQL_ROLE_RANK(r) "array_position(ARRAY['annotator','reviewer','manager','admin'], " r ")"
#define QR_SQL_TOKEN_CREATE                                                                        \
    "WITH ins AS (INSERT INTO users (org_id, name, role) VALUES ($1, $2, $3)"                      \
    "  ON CONFLICT (org_id, name) DO NOTHING RETURNING id, role),"                                 \
    " u AS (SELECT id, role, true AS created FROM ins UNION ALL"                                   \
    "  SELECT id, role, false FROM users WHERE org_id = $1 AND name = $2),"                        \
    " ok AS (SELECT id FROM u WHERE u.role = $3 AND (u.created OR ($1::bigint = $7::bigint"        \
    "  AND " QR_SQL_ROLE_RANK("u.role") " <= " QR_SQL_ROLE_RANK(                                   \
        "$8::text") "))),"                                                                         \
                    " t AS (INSERT INTO api_tokens (user_id, token_sha256, prefix, expires_at)"    \
                    "  SELECT id, $4, $5, now() + make_interval(secs => $6::double precision) "    \
                    "FROM ok"                                                                      \
                    "  RETURNING id, expires_at)"                                                  \
                    " SELECT u.id, u.role, u.created, t.id,"                                       \
                    "  to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" \
                    " FROM u LEFT JOIN t ON true LIMIT 1"

/* $1 org -> the organization's tokens as one JSON array (never the secret). */
#define QR_SQL_TOKEN_LIST                                                                          \
    "SELECT coalesce(json_agg(json_build_object('id', t.id, 'prefix', t.prefix, 'user', u.name,"   \
    "  'role', u.role, 'created_at', t.created_at, 'last_used_at', t.last_used_at,"                \
    "  'expires_at', t.expires_at, 'revoked_at', t.revoked_at) ORDER BY t.id), '[]')::text"        \
    " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.org_id = $1"

/* $1 token id, $2 org, $3 the caller's role -> the token's digest, once
 * revoked (no row: no such live token in this organization, or an admin's
 * token and the caller is no admin). */
#define QR_SQL_TOKEN_REVOKE                                                                        \
    "UPDATE api_tokens t SET revoked_at = now() FROM users u"                                      \
    " WHERE t.id = $1 AND u.id = t.user_id AND u.org_id = $2 AND t.revoked_at IS NULL"             \
    "  AND (u.role <> 'admin' OR $3 = 'admin')"                                                    \
    " RETURNING t.token_sha256"

/* Client certificates (mutual TLS, sql/0009). Lookup: $1 the verified
 * certificate's SHA-256 -> the columns of QR_SQL_TOKEN_LOOKUP (the user,
 * and the certificate's notAfter as the expiry in epoch ms). */
#define QR_SQL_CERT_LOOKUP                                                                         \
    "SELECT u.id, u.org_id, u.role, u.name, (extract(epoch FROM c.not_after) * 1000)::bigint,"     \
    "  c.last_used_at IS NULL OR c.last_used_at < now() - interval '1 minute'"                     \
    " FROM client_certs c JOIN users u ON u.id = c.user_id"                                        \
    " WHERE c.cert_sha256 = $1 AND c.revoked_at IS NULL AND c.not_after > now()"

/* $1 certificate SHA-256: as QR_SQL_TOKEN_TOUCH. */
#define QR_SQL_CERT_TOUCH                                                                          \
    "UPDATE client_certs SET last_used_at = now() WHERE cert_sha256 = $1"                          \
    "  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"

/* $1 org, $2 user name, $3 SHA-256, $4 subject, $5 notAfter (epoch s), $6 the
 * caller's role -> the user's id and role, and the new mapping's id (NULL
 * when the user is an admin and the caller is not). No row: no such user in
 * the organization. A live mapping of the same certificate: 23505. */
#define QR_SQL_CERT_ADD                                                                            \
    "WITH u AS (SELECT id, role FROM users WHERE org_id = $1 AND name = $2),"                      \
    " c AS (INSERT INTO client_certs (user_id, cert_sha256, subject, not_after)"                   \
    "  SELECT id, $3, $4, to_timestamp($5::double precision) FROM u"                               \
    "  WHERE u.role <> 'admin' OR $6 = 'admin' RETURNING id)"                                      \
    " SELECT u.id, u.role, (SELECT id FROM c) FROM u"

/* $1 org -> the organization's certificate mappings as one JSON array. */
#define QR_SQL_CERT_LIST                                                                           \
    "SELECT coalesce(json_agg(json_build_object('id', c.id, 'user', u.name, 'role', u.role,"       \
    "  'sha256', c.cert_sha256, 'subject', c.subject, 'not_after', c.not_after,"                   \
    "  'created_at', c.created_at, 'last_used_at', c.last_used_at,"                                \
    "  'revoked_at', c.revoked_at) ORDER BY c.id), '[]')::text"                                    \
    " FROM client_certs c JOIN users u ON u.id = c.user_id WHERE u.org_id = $1"

/* $1 mapping id, $2 org, $3 the caller's role -> the id, once revoked (no
 * row: no live mapping of that id in the organization, or an admin's and
 * the caller is no admin). */
#define QR_SQL_CERT_REVOKE                                                                         \
    "UPDATE client_certs c SET revoked_at = now() FROM users u"                                    \
    " WHERE c.id = $1 AND u.id = c.user_id AND u.org_id = $2 AND c.revoked_at IS NULL"             \
    "  AND (u.role <> 'admin' OR $3 = 'admin')"                                                    \
    " RETURNING c.id"

/* $1 org, $2 name, $3 role, $4 token digest, $5 token prefix -> id, role.
 * Only a new user: a name that exists in the organization gives no row and
 * changes nothing (its tokens come from QR_SQL_TOKEN_CREATE and its checks). */
#define QR_SQL_USER_CREATE                                                                         \
    "WITH u AS (INSERT INTO users (org_id, name, role) VALUES ($1, $2, $3)"                        \
    "  ON CONFLICT (org_id, name) DO NOTHING RETURNING id, role)"                                  \
    " INSERT INTO api_tokens (user_id, token_sha256, prefix)"                                      \
    "  SELECT id, $4, $5 FROM u RETURNING user_id, (SELECT role FROM u)"

/* The organizations a project is shared with and the bounds of each share
 * (NULL: none), as a JSON array; part of the cached project row. */
#define QR_SQL_PROJECT_SHARES                                                                      \
    "(SELECT coalesce(json_agg(json_build_object('org_id', s.org_id,"                              \
    "  'quota_annotations', s.quota_annotations,"                                                  \
    "  'max_tasks_per_annotator', s.max_tasks_per_annotator)), '[]'::json)"                        \
    " FROM project_shares s WHERE s.project_id = projects.id)"

#define QR_SQL_PROJECT_JSON                                                                        \
    "json_build_object('id', id, 'org_id', org_id, 'name', name, 'labels', labels,"                \
    " 'annotations_per_task', annotations_per_task, 'lease_ttl_ms', lease_ttl_ms,"                 \
    " 'overlap_fraction', overlap_fraction, 'overlap_annotations', overlap_annotations,"           \
    " 'overlap_first', overlap_first, 'sampling', sampling, 'stratify_field', "                    \
    "stratify_field, 'paused_at', paused_at, 'max_leases_per_annotator', "                         \
    "max_leases_per_annotator, 'archived_at', archived_at, 'schema', schema,"                      \
    " 'auto_accept_confidence', auto_accept_confidence, 'auto_accept_audit', auto_accept_audit,"   \
    " 'overlap_min', overlap_min, 'overlap_max', overlap_max,"                                     \
    " 'overlap_agreement_threshold', overlap_agreement_threshold,"                                 \
    " 'show_predictions', show_predictions,"                                                       \
    " 'gold_rate', gold_rate, 'gold_onboarding', gold_onboarding,"                                 \
    " 'gold_min_accuracy', gold_min_accuracy, 'gold_min_count', gold_min_count,"                   \
    " 'review_mode', review_mode, 'review_share', review_share,"                                   \
    " 'review_agreement_threshold', review_agreement_threshold,"                                   \
    " 'overlap_measure', overlap_measure, 'overlap_prior_accuracy', overlap_prior_accuracy,"       \
    " 'shares', " QR_SQL_PROJECT_SHARES ")::text"

/* $1 org, $2 name, $3 labels (JSON array; [] with a schema), $4 annotations
 * per task, $5 lease TTL ms, $6 creator, $7 overlap fraction, $8 overlap
 * annotations, $9 overlap first, $10 sampling, $11 stratify field, $12 the
 * bound on each annotator's live leases (NULL: the broker's default), $13
 * the label schema (normalized JSON; NULL: a plain project), $14 the
 * auto-accept confidence (NULL: none), $15 its audit share, $16 overlap_min,
 * $17 overlap_max, $18 overlap_agreement_threshold (all NULL: fixed
 * overlap; sql/0027_dynamic_overlap.sql), $19 show_predictions (sql/0030),
 * $20 the gold rate, $21 gold onboarding, $22 gold minimum accuracy (NULL:
 * none), $23 gold minimum count (sql/0028), $24 the review mode, $25 review
 * share, $26 review agreement threshold (NULL: the defaults; sql/0031), $27
 * the dynamic overlap measure, $28 its prior accuracy (NULL: the defaults;
 * sql/0034) -> the project as JSON. */
#define QR_SQL_PROJECT_CREATE                                                                      \
    "INSERT INTO projects (org_id, name, labels, annotations_per_task, lease_ttl_ms, created_by,"  \
    " overlap_fraction, overlap_annotations, overlap_first, sampling, stratify_field,"             \
    " max_leases_per_annotator, schema, auto_accept_confidence, auto_accept_audit,"                \
    " overlap_min, overlap_max, overlap_agreement_threshold, show_predictions, gold_rate,"         \
    " gold_onboarding, gold_min_accuracy, gold_min_count, review_mode, review_share,"              \
    " review_agreement_threshold, overlap_measure, overlap_prior_accuracy)"                        \
    " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb,"               \
    "  $14::double precision, $15::double precision, $16::integer, $17::integer,"                  \
    "  $18::double precision, $19::boolean, $20::double precision, $21::integer,"                  \
    "  $22::double precision, $23::integer, coalesce($24, 'none'),"                                \
    "  coalesce($25::double precision, 0), coalesce($26::double precision, 0.5),"                  \
    "  coalesce($27, 'support'), coalesce($28::double precision, 0.75)) "                          \
    "RETURNING " QR_SQL_PROJECT_JSON

/* $1 project id -> the project as JSON. */
#define QR_SQL_PROJECT_GET "SELECT " QR_SQL_PROJECT_JSON " FROM projects WHERE id = $1"

/* $1 project, $2 its organization, $3 true to pause, false to resume -> the
 * project as JSON; no row when the project is not that organization's. A
 * second pause keeps the time of the first (idempotent). */
#define QR_SQL_PROJECT_PAUSE                                                                       \
    "UPDATE projects SET paused_at = CASE WHEN $3::boolean THEN coalesce(paused_at, now()) END"    \
    " WHERE id = $1 AND org_id = $2 RETURNING " QR_SQL_PROJECT_JSON

/* The next tasks for a project's Redis window, in priority order, after the
 * cursor ("" for the beginning, else "priority id" of the last row read).
 * Control (gold) tasks are not in the window: the gold set serves them.
 * The order is tasks_open's until the project's first predictions update,
 * then task_scores_order's, each task at its newest row
 * (sql/0040_task_scores.sql): one branch runs, the other stops at its
 * one-time filter (the second is quorum_window_scores, whose walk of the
 * index stops at its limit).
 * $1 project, $2 cursor, $3 limit -> id, free slots, priority, data, cursor,
 * and who annotated or skipped the task already (comma-separated ids; an
 * id may appear twice, which the seen set's ZADD absorbs: UNION ALL spares a
 * hash aggregate per task, most of the refill's time). Each chosen task is
 * read by its key (LATERAL, OFFSET 0 keeps it a nested loop): the planner
 * cannot tell how few rows o gives, and joined plainly it hashed all of the
 * project's tasks for every refill (200 ms instead of 30 for 4,000 of 100,000).
 * The cursor is one row comparison, "" being (-infinity, 0) (ids start at
 * 1), so that a generic plan still starts tasks_open's walk at the cursor:
 * the statement is prepared, and PostgreSQL may switch to its generic plan
 * whenever that one's estimate looks no worse. Written "$2 = '' OR (...) >
 * (...)", the cursor was a filter there, and each refill walked every open
 * task before it (the 4,000 after 100,000 tasks: 112 ms instead of 31). */
#define QR_SQL_WINDOW_REFILL                                                                       \
    "WITH o AS ((SELECT t.id, t.priority AS pr FROM tasks t"                                       \
    "  WHERE t.project_id = $1 AND t.state <> 'complete' AND NOT t.control"                        \
    "   AND NOT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND scores_from IS NOT NULL)"         \
    "   AND (t.priority, t.id) >"                                                                  \
    "    (coalesce(nullif(split_part($2, ' ', 1), '')::float8, '-infinity'),"                      \
    "     coalesce(nullif(split_part($2, ' ', 2), '')::bigint, 0))"                                \
    "  ORDER BY t.priority, t.id LIMIT $3)"                                                        \
    " UNION ALL (SELECT w.id, w.pr FROM quorum_window_scores($1, $2, $3) w"                        \
    "  WHERE EXISTS (SELECT 1 FROM projects WHERE id = $1 AND scores_from IS NOT NULL)))"          \
    " SELECT t.id, t.required - t.done_count, o.pr, t.data::text,"                                 \
    "  o.pr::text || ' ' || t.id::text,"                                                           \
    "  coalesce((SELECT string_agg(x.a::text, ',') FROM ("                                         \
    "    SELECT annotator_id AS a FROM annotations WHERE task_id = t.id UNION ALL"                 \
    "    SELECT annotator_id FROM leases WHERE task_id = t.id AND outcome = 'skipped') x), '')"    \
    " FROM o CROSS JOIN LATERAL (SELECT * FROM tasks x WHERE x.id = o.id OFFSET 0) t"              \
    " ORDER BY o.pr, o.id"

/* The tasks of project $1 among ids $2 (an array: the Redis window's) as
 * they are now: id, priority, free slots (0 once complete), for a window
 * refresh after their priorities changed (qr_window_refresh). */
#define QR_SQL_WINDOW_RESCORE                                                                      \
    "SELECT t.id, s.priority, t.required - t.done_count FROM tasks t"                              \
    " JOIN tasks_scored s ON s.id = t.id WHERE t.project_id = $1 AND t.id = ANY ($2::bigint[])"

/* $1 project -> the highest fencing token PostgreSQL holds for it. */
#define QR_SQL_MAX_TOKEN                                                                           \
    "SELECT greatest((SELECT max(fencing_token) FROM leases WHERE project_id = $1),"               \
    "  (SELECT max(fencing_token) FROM annotations WHERE project_id = $1), 0)"

/* $1 project -> stratum, count (sorted by stratum, byte order). */
#define QR_SQL_STRATA                                                                              \
    "SELECT coalesce(stratum, ''), count(*) FROM tasks WHERE project_id = $1"                      \
    " GROUP BY 1 ORDER BY 1 COLLATE \"C\""

/* $1 count -> that many fresh task ids, ascending (import order). */
#define QR_SQL_TASK_IDS "SELECT nextval('tasks_id_seq') FROM generate_series(1, $1::int)"

/* $1 count -> that many fresh task ids, ascending (import order), and on
 * every row the same fresh import id (an uncorrelated subquery runs once). */
#define QR_SQL_IMPORT_IDS                                                                          \
    "SELECT nextval('tasks_id_seq'), (SELECT nextval('imports_id_seq'))"                           \
    " FROM generate_series(1, $1::int)"

/* $1 count -> one row: the least and the greatest of that many fresh task
 * ids, their count and a fresh import id. An import's ids are one range
 * (ascending, min..max) when max - min + 1 = count, as they are unless
 * another import drew ids at the same moment; then the import draws its ids
 * again with QR_SQL_IMPORT_IDS (the range is left unused: ids may have
 * gaps). One row instead of one per task: a 1M-row result held a 60 MB
 * PGresult in the broker. */
#define QR_SQL_IMPORT_ID_RANGE                                                                     \
    "SELECT min(v), max(v), count(*), (SELECT nextval('imports_id_seq'))"                          \
    " FROM (SELECT nextval('tasks_id_seq') AS v FROM generate_series(1, $1::int)) s"

/* $1 count -> one row: the least and the greatest of that many fresh task
 * ids and their count: one block of a streamed import's ids (one range
 * unless another import drew ids at the same moment; then the block is
 * drawn again with QR_SQL_TASK_IDS). */
#define QR_SQL_TASK_ID_RANGE                                                                       \
    "SELECT min(v), max(v), count(*)"                                                              \
    " FROM (SELECT nextval('tasks_id_seq') AS v FROM generate_series(1, $1::int)) s"

/* The end of a streamed import, after its COPY, in its transaction
 * (qr_pg_copy_finish): records import $2 of project $1 as
 * QR_SQL_IMPORT_BEGIN does ($3 key, $4 file name, $5 SHA-256 of the body,
 * $6 user, $7 tasks, $8 first and $9 last task id; refused with
 * QR_SQLSTATE_DUPLICATE_IMPORT when the project imported the same file
 * already; its external ids were checked by the COPY itself, against the
 * unique index), then writes the imported annotations as
 * QR_SQL_IMPORT_ANNOTATIONS does ($10 user name or NULL, $11 counted, $12
 * task ids, $13 their annotations; none when $12 is NULL). */
#define QR_SQL_IMPORT_STREAM_END                                                                   \
    "SELECT quorum_import_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, false, NULL),"                 \
    " quorum_import_post($1, $10, $11::boolean, $12::bigint[], $13::jsonb, $2, $8, $9)"

/* After a streamed import's COPY failed on an external id the project
 * holds: $1 project, $2 SHA-256 of the body, $3 the file's external ids
 * (JSON array) -> an earlier import of the same file (or NULL), how many
 * of those ids the project holds, and the earliest import one of them
 * came from (the words of QR_SQL_IMPORT_BEGIN's refusal). */
#define QR_SQL_IMPORT_DUPLICATES                                                                   \
    "SELECT (SELECT id FROM imports WHERE project_id = $1 AND sha256 = $2 ORDER BY id LIMIT 1),"   \
    " count(*), min(t.import_id) FROM tasks t WHERE t.project_id = $1"                             \
    " AND t.external_id IN (SELECT jsonb_array_elements_text($3::jsonb))"

/* COPY text rows: id, project, data, required, ... (import.h, qr_import_rows). */
#define QR_SQL_TASKS_COPY                                                                          \
    "COPY tasks (id, project_id, data, required, priority, overlap, prediction,"                   \
    " prediction_score, gold, stratum, import_id, external_id, predictions) FROM STDIN"

/* After an import's COPY, in its transaction (qr_pg_copy_in_tx_post): the
 * imported annotations of project $1 by user $2 (a name; NULL: the
 * `imported` pseudo-user), counted toward the overlap when $3; $4 the task
 * ids (a bigint[] literal; NULL: none) and $5 their annotations, a JSON
 * array of arrays aligned with $4 (sql/0021_import_rules.sql); then the
 * auto-accept of import $6's confident tasks, ids $7..$8
 * (sql/0026_auto_accept.sql). An unknown user raises
 * QR_SQLSTATE_IMPORT_USER. */
#define QR_SQL_IMPORT_POST                                                                         \
    "SELECT quorum_import_post($1, $2, $3, $4::bigint[], $5::jsonb, $6, $7, $8)"
#define QR_SQLSTATE_IMPORT_USER "QI422"

/* PUT /v1/projects/{id}/predictions, in one transaction streamed by
 * qr_pg_copy_open_pre: the temporary table the body's rows are copied into
 * (dropped at commit), the COPY, and the update of project $1's tasks from
 * them -> one row: updated, auto_accepted, reopened
 * (sql/0029_predictions_update.sql). A row naming no task of the project,
 * or one named before, raises QR_SQLSTATE_PREDICTIONS with "line N: ...". */
#define QR_SQL_PREDICTIONS_TABLE                                                                   \
    "CREATE TEMPORARY TABLE quorum_predictions_in (line bigint NOT NULL, task_id bigint,"          \
    " external_id text, prediction jsonb, score double precision) ON COMMIT DROP"
#define QR_SQL_PREDICTIONS_COPY                                                                    \
    "COPY quorum_predictions_in (line, task_id, external_id, prediction, score) FROM STDIN"
#define QR_SQL_PREDICTIONS_APPLY "SELECT * FROM quorum_predictions_apply($1)"
#define QR_SQLSTATE_PREDICTIONS  "QP422"
/* After an update: $1 project -> how many of its task_scores rows a newer
 * row of their task superseded, now deleted (sql/0040_task_scores.sql). */
#define QR_SQL_TASK_SCORES_PRUNE "SELECT quorum_task_scores_prune($1)"

/* The predictions shown with leased tasks (sql/0030): $1 project, $2 task
 * ids (an array) -> id, prediction (JSON text, or NULL). */
#define QR_SQL_TASK_PREDICTIONS                                                                    \
    "SELECT id, prediction::text FROM tasks_scored"                                                \
    " WHERE project_id = $1 AND id = ANY ($2::bigint[])"

/* $1 task -> its free slots in PostgreSQL (required - done_count): after a
 * submit refused as full, 0 says the task is complete. */
#define QR_SQL_TASK_SLOTS_LEFT "SELECT required - done_count FROM tasks WHERE id = $1"

/* Before an import's COPY, in its transaction (qr_pg_copy_in_tx): records
 * import $2 of project $1, or refuses a duplicate with SQLSTATE QI409
 * (sql/0017_imports.sql). $3 import key, $4 file name, $5 SHA-256 of the
 * body, $6 user, $7 tasks, $8 first and $9 last task id, $10 allow
 * duplicates, $11 the file's external ids (JSON array) -> the import id. */
#define QR_SQL_IMPORT_BEGIN                                                                        \
    "SELECT quorum_import_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

/* $1 project, $2 external ids (JSON array) -> those the project holds. */
#define QR_SQL_EXTERNAL_IDS_HELD                                                                   \
    "SELECT external_id FROM tasks WHERE project_id = $1"                                          \
    " AND external_id IN (SELECT jsonb_array_elements_text($2::jsonb))"

/* The SQLSTATE of QR_SQL_IMPORT_BEGIN's refusal; its message is
 * "DUPLICATES EARLIER_IMPORT SAME_FILE". */
#define QR_SQLSTATE_DUPLICATE_IMPORT "QI409"

/* sql/0027_dynamic_overlap.sql's refusal of a task's required count above
 * its project's overlap_max (a PATCH lowering it, answered 422 with the
 * message). */
#define QR_SQLSTATE_OVERLAP_MAX "QO422"

/* --- relabel rounds (issue 16, point 6; sql/0033_relabel_rounds.sql) -------------------------- */

/* Opens the next round of project $1 for user $2: the tasks selector $4
 * (JSON: exactly one of task_ids, import_id, field, completed_after and/or
 * completed_before, agreement_below) selects need $3 more annotations each
 * -> the round as JSON text. Refusals raise QR_SQLSTATE_ROUND_NOT_FOUND (an
 * id that is not the project's) or QR_SQLSTATE_ROUND_INVALID (nothing
 * selected, a listed task not complete, more than 100 annotations), or
 * QR_SQLSTATE_OVERLAP_MAX; each with a message for the client. */
#define QR_SQL_ROUND_OPEN           "SELECT quorum_round_open($1, $2, $3::integer, $4::jsonb)"
#define QR_SQLSTATE_ROUND_NOT_FOUND "QR404"
#define QR_SQLSTATE_ROUND_INVALID   "QR422"

/* $1 project -> its rounds as one JSON array, oldest first. */
#define QR_SQL_ROUND_LIST                                                                          \
    "SELECT coalesce(json_agg(quorum_round_json(r)::json ORDER BY r.number), '[]')::text"          \
    " FROM rounds r WHERE r.project_id = $1"

/* $1 project, $2 import key ("" for all) -> the project's imports as one
 * JSON array, newest first, with who made each. */
#define QR_SQL_IMPORT_LIST                                                                         \
    "SELECT coalesce(json_agg(json_build_object('id', i.id, 'file_name', i.file_name,"             \
    "  'rows', i.task_count, 'first_task_id', i.first_task_id, 'last_task_id', i.last_task_id,"    \
    "  'sha256', i.sha256, 'import_key', i.import_key, 'created_at', i.created_at,"                \
    "  'user_id', i.created_by, 'user', u.name) ORDER BY i.id DESC), '[]')::text"                  \
    " FROM imports i LEFT JOIN users u ON u.id = i.created_by"                                     \
    " WHERE i.project_id = $1 AND ($2 = '' OR i.import_key = $2)"

/* What a submission's span fields need of its task's data (issue 15): $1
 * task, $2 project, $3 the data keys (a JSON array of strings) -> per key:
 * the key, the JSON type of its value (NULL: no such key), and the length
 * of a string value in characters (code points, in a UTF8 database). No
 * row: the task is not the project's (gone). */
#define QR_SQL_TASK_TEXT_LENGTHS                                                                   \
    "SELECT k, jsonb_typeof(t.data -> k),"                                                         \
    " CASE WHEN jsonb_typeof(t.data -> k) = 'string' THEN length(t.data ->> k) END"                \
    " FROM tasks t, jsonb_array_elements_text($3::jsonb) AS k"                                     \
    " WHERE t.id = $1 AND t.project_id = $2"

/* $1 project -> true when every task has all its annotations. */
#define QR_SQL_PROJECT_COMPLETE                                                                    \
    "SELECT NOT EXISTS (SELECT 1 FROM tasks WHERE project_id = $1 AND state <> 'complete'"         \
    " AND NOT control)"

/* Records a released or skipped lease. $1 project, $2 token, $3 task,
 * $4 annotator, $5 granted ms, $6 expires ms, $7 outcome, $8 reason. */
#define QR_SQL_LEASE_ENDED                                                                         \
    "INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at, "           \
    "expires_at,"                                                                                  \
    " outcome, reason) VALUES ($1, $2, $3, $4, to_timestamp($5::bigint / 1000.0),"                 \
    " to_timestamp($6::bigint / 1000.0), $7, $8) ON CONFLICT DO NOTHING"

/* $1 project, $2 annotator -> the progress line's figures as JSON. Control
 * (gold) tasks are not counted: they are never done. */
#define QR_SQL_PROGRESS                                                                            \
    "SELECT json_build_object("                                                                    \
    "  'tasks', (SELECT count(*) FROM tasks WHERE project_id = $1 AND NOT control),"               \
    "  'tasks_complete', (SELECT count(*) FROM tasks WHERE project_id = $1 AND state = "           \
    "'complete'),"                                                                                 \
    "  'annotations_remaining', (SELECT coalesce(sum(required - done_count), 0) FROM tasks"        \
    "     WHERE project_id = $1 AND state <> 'complete' AND NOT control),"                         \
    "  'my_annotations', (SELECT count(*) FROM annotations WHERE project_id = $1"                  \
    "     AND annotator_id = $2),"                                                                 \
    "  'my_annotations_today', (SELECT count(*) FROM annotations WHERE project_id = $1"            \
    "     AND annotator_id = $2 AND created_at >= date_trunc('day', now())))::text"

/* Undo: deletes the annotation if it is the caller's and its lease has not
 * expired yet, counts it off its task and keeps the undo as an event for
 * incremental exports (annotation_undos, sql/0020_export.sql), in one
 * statement.
 * $1 annotation id, $2 annotator, $3 project -> task id, priority, data
 * (no row: not theirs, or too late). */
#define QR_SQL_UNDO                                                                                \
    "WITH a AS (DELETE FROM annotations an USING leases l"                                         \
    "  WHERE an.id = $1 AND an.annotator_id = $2 AND an.project_id = $3"                           \
    "    AND l.project_id = an.project_id AND l.fencing_token = an.fencing_token"                  \
    "    AND l.expires_at > now()"                                                                 \
    "  RETURNING an.*),"                                                                           \
    " u AS (INSERT INTO annotation_undos (project_id, task_id, annotation_id, annotator_id,"       \
    "  label, active_ms, fencing_token, annotated_at, annotation_xid, round)"                      \
    "  SELECT project_id, task_id, id, annotator_id, label, active_ms, fencing_token, created_at," \
    "  written_xid, round FROM a),"                                                                \
    " l AS (UPDATE leases SET outcome = 'released', reason = 'undone'"                             \
    "  FROM a WHERE leases.project_id = $3 AND leases.fencing_token = a.fencing_token),"           \
    " t AS (UPDATE tasks SET done_count = done_count - 1, state = 'waiting'"                       \
    "  FROM a WHERE tasks.id = a.task_id RETURNING tasks.id, tasks.data::text)"                    \
    " SELECT t.id, s.priority, t.data FROM t JOIN tasks_scored s ON s.id = t.id"

/* A lease as PostgreSQL's lease log knows it, if granted to this annotator
 * and not ended since. $1 project, $2 token, $3 annotator -> task id,
 * granted ms. */
#define QR_SQL_LEASE_FROM_LOG                                                                      \
    "SELECT g.task_id, (extract(epoch FROM g.at) * 1000)::bigint FROM lease_events g"              \
    " WHERE g.project_id = $1 AND g.token = $2 AND g.annotator_id = $3 AND g.kind = 'grant'"       \
    "  AND NOT EXISTS (SELECT 1 FROM lease_events e WHERE e.project_id = $1 AND e.token = $2"      \
    "    AND e.kind IN ('submit', 'skip', 'release', 'expire'))"

/* $1 project, $2 annotator, $3 idempotency key -> annotation id, task id,
 * fencing token, label, active ms (-1: none), and whether its commit gave
 * its task one more annotator (sql/0027: the lease, if still pinned, ends
 * as qr_lease_submit_extend). Keys are unique per (project, annotator)
 * (sql/0014_idempotency_scope.sql); the label and active ms are what the
 * submit's body said, so a resend is told from a conflict. */
#define QR_SQL_ANNOTATION_BY_KEY                                                                   \
    "SELECT id, task_id, fencing_token, label, coalesce(active_ms, -1),"                           \
    " EXISTS (SELECT 1 FROM overlap_extensions e WHERE e.annotation_id = annotations.id)"          \
    " FROM annotations WHERE project_id = $1 AND annotator_id = $2 AND idempotency_key = $3"

/* The report's quality counts (sql/0026_auto_accept.sql): tasks
 * auto-accepted and audited, the human labels saved, and how many audited
 * tasks have a human consensus (the unique most common label) and how many
 * of those agree with the prediction (a schema project's labels compared
 * as JSON values); and what dynamic overlap did (sql/0027): over the
 * complete tasks humans labeled, their count, their annotations and
 * overlap_max less those (saved against a fixed overlap_max), and the
 * annotators it added; and, for a project that shows predictions
 * (sql/0030), the human labels on tasks with a prediction and how many
 * equal it (the prediction as the task holds it now). */
#define QR_SQL_REPORT_QUALITY                                                                      \
    " votes AS (SELECT an.task_id, an.label, count(*) AS n FROM annotations an"                    \
    "   JOIN tasks t ON t.id = an.task_id"                                                         \
    "   WHERE t.project_id = $1 AND t.auto_accept = 'audit' GROUP BY 1, 2),"                       \
    " top AS (SELECT task_id, label, rank() OVER (PARTITION BY task_id ORDER BY n DESC) AS r,"     \
    "   count(*) OVER (PARTITION BY task_id, n) AS same FROM votes),"                              \
    " cons AS (SELECT task_id, label FROM top WHERE r = 1 AND same = 1),"                          \
    " dyn AS (SELECT p.overlap_max AS mx, p.overlap_measure AS ms,"                                \
    "   p.overlap_agreement_threshold AS thr, count(t.id) AS n,"                                   \
    "   coalesce(sum(t.done_count), 0) AS a, coalesce(sum(p.overlap_max - t.done_count), 0) AS s," \
    "   (SELECT count(*) FROM overlap_extensions WHERE project_id = $1) AS ext"                    \
    "   FROM projects p LEFT JOIN tasks t ON t.project_id = p.id AND t.state = 'complete'"         \
    "    AND t.auto_accept IS DISTINCT FROM 'accepted' WHERE p.id = $1 GROUP BY 1, 2, 3),"         \
    " shown AS (SELECT p.show_predictions AS on, count(an.id) AS n, count(an.id) FILTER (WHERE"    \
    "   CASE WHEN t.prediction ? 'labels' THEN an.label::jsonb = t.prediction->'labels'"           \
    "   ELSE an.label = t.prediction->>'label' END) AS k"                                          \
    "   FROM projects p LEFT JOIN (SELECT s.id, s.prediction FROM tasks_scored s JOIN tasks c"     \
    "    ON c.id = s.id WHERE s.project_id = $1 AND NOT c.control) t ON p.show_predictions"        \
    "    AND (t.prediction ? 'label' OR t.prediction ? 'labels')"                                  \
    "   LEFT JOIN annotations an ON an.task_id = t.id WHERE p.id = $1 GROUP BY 1),"                \
    " quality AS (SELECT"                                                                          \
    "   (SELECT count(*) FROM tasks WHERE project_id = $1 AND auto_accept = 'accepted')"           \
    "     AS accepted,"                                                                            \
    "   (SELECT count(*) FROM tasks WHERE project_id = $1 AND auto_accept = 'audit') AS audited,"  \
    "   (SELECT coalesce(sum(auto_accept_saved), 0) FROM tasks WHERE project_id = $1"              \
    "     AND auto_accept = 'accepted') AS saved,"                                                 \
    "   (SELECT count(*) FROM cons) AS compared,"                                                  \
    "   (SELECT count(*) FROM cons c JOIN tasks_scored t ON t.id = c.task_id"                      \
    "     WHERE CASE WHEN t.prediction ? 'labels' THEN c.label::jsonb = t.prediction->'labels'"    \
    "       ELSE c.label = t.prediction->>'label' END) AS agree)"

/* $1 project, $2 organization (0: every annotator; else only that
 * organization's crew), $3 idle threshold ms, $4 pace span ms, $5 now ms ->
 * the report's counts as one JSON object. Annotations of control (gold)
 * tasks are left out of every count and rate (they feed gold accuracy
 * only); quality.paused_annotators lists the pauses (live and past) of the
 * annotators in scope. Rows of per_annotator are one per
 * annotator id, with the organization's name. duplicate_assignments and
 * overfilled_tasks are counted over what PostgreSQL holds. Working time,
 * rates, pace and ETA follow sql_work.h: completions_per_second and
 * annotations_per_hour are annotations / working time (all time, in
 * scope); pace covers the annotations of the last $4 ms up to the latest
 * one; eta_seconds = annotations still needed / pace (0 when none are
 * needed, NULL without a pace). */
/* Kept out of clang-format's hands: it would re-flow the SQL pieces
 * around the sql_work.h macros as if they were code. */
// clang-format off
#define QR_SQL_REPORT                                                                              \
    "WITH a AS (SELECT an.* FROM annotations an JOIN users u ON u.id = an.annotator_id"            \
    "  JOIN tasks ct ON ct.id = an.task_id"                                                        \
    "  WHERE an.project_id = $1 AND ($2::bigint = 0 OR u.org_id = $2::bigint) AND NOT ct.control)," \
    " span AS (SELECT extract(epoch FROM max(created_at) - min(created_at)) AS s,"                 \
    "   max(created_at) AS last FROM a),"                                                          \
    " g AS (SELECT created_at, " QR_SQL_GAP_MS("created_at") " AS gap FROM a),"                    \
    " work AS (SELECT " QR_SQL_WORK_MS("gap", "$3::float8") " / 1000 AS s, count(*) AS n FROM g)," \
    " pace AS (SELECT count(*) AS n, " QR_SQL_WORK_MS("gap", "$3::float8") " / 1000 AS s"          \
    "   FROM g, span WHERE g.created_at > span.last - $4::bigint * interval '1 millisecond'),"     \
    " rem AS (SELECT coalesce(sum(required - done_count) FILTER (WHERE state <> 'complete'), 0)"  \
    "   AS n FROM tasks WHERE project_id = $1 AND NOT control),"                                   \
    " paused AS (SELECT coalesce(json_agg(json_build_object('annotator', u.name,"                  \
    "     'annotator_id', u.id, 'organization', o.name, 'reason', ap.reason,"                      \
    "     'accuracy', ap.accuracy, 'count', ap.compared, 'paused_at', ap.paused_at,"               \
    "     'reinstated_at', ap.reinstated_at) ORDER BY ap.paused_at, ap.id), '[]'::json) AS j"      \
    "   FROM annotator_pauses ap JOIN users u ON u.id = ap.annotator_id"                           \
    "   JOIN organizations o ON o.id = u.org_id"                                                   \
    "   WHERE ap.project_id = $1 AND ($2::bigint = 0 OR u.org_id = $2::bigint)),"                  \
    QR_SQL_REPORT_QUALITY                                                                          \
    " SELECT json_build_object("                                                                   \
    "  'project', $1::bigint,"                                                                     \
    "  'tasks', (SELECT count(*) FROM tasks WHERE project_id = $1 AND NOT control),"               \
    "  'tasks_complete', (SELECT count(*) FROM tasks WHERE project_id = $1 AND state = "           \
    "'complete'),"                                                                                 \
    "  'annotations', work.n,"                                                                     \
    "  'annotations_remaining', rem.n,"                                                            \
    "  'annotators', (SELECT count(DISTINCT annotator_id) FROM a),"                                \
    "  'duplicate_assignments', (SELECT count(*) FROM (SELECT 1 FROM a"                            \
    "     GROUP BY task_id, annotator_id HAVING count(*) > 1) d),"                                 \
    "  'overfilled_tasks', (SELECT count(*) FROM (SELECT 1 FROM a JOIN tasks t ON t.id = "         \
    "a.task_id"                                                                                    \
    "     GROUP BY t.id, t.required HAVING count(*) > t.required) o),"                             \
    "  'elapsed_seconds', round(coalesce(span.s, 0)::numeric, 3),"                                 \
    "  'idle_gap_seconds', round($3::numeric / 1000, 3),"                                          \
    "  'working_seconds', round(work.s::numeric, 3),"                                              \
    "  'completions_per_second', CASE WHEN work.s > 0"                                             \
    "     THEN round((work.n / work.s)::numeric, 2) ELSE 0 END,"                                   \
    "  'annotations_per_hour', CASE WHEN work.s > 0"                                               \
    "     THEN round((work.n * 3600 / work.s)::numeric, 1) END,"                                   \
    "  'last_annotation_at', to_char(span.last AT TIME ZONE 'UTC',"                                \
    "     'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"                                                  \
    "  'seconds_since_last_annotation', round(extract(epoch FROM"                                  \
    "     to_timestamp($5::bigint / 1000.0) - span.last)::numeric, 1),"                            \
    "  'pace', json_build_object('span_seconds', round($4::numeric / 1000, 3),"                    \
    "     'annotations', pace.n, 'working_seconds', round(pace.s::numeric, 3),"                    \
    "     'per_hour', CASE WHEN pace.s > 0 THEN round((pace.n * 3600 / pace.s)::numeric, 1) END)," \
    "  'eta_seconds', CASE WHEN rem.n = 0 THEN 0 WHEN pace.s > 0"                                  \
    "     THEN round((rem.n * pace.s / pace.n)::numeric, 1) END,"                                  \
    "  'project_org_id', (SELECT org_id FROM projects WHERE id = $1),"                             \
    "  'per_annotator', (SELECT coalesce(json_agg(json_build_object('annotator', u.name,"          \
    "     'annotations', x.n, 'annotator_id', u.id, 'organization_id', u.org_id,"                  \
    "     'organization', o.name, 'review_acceptance', (SELECT json_build_object('value',"         \
    "       round(avg((an.label = rv.value)::int)::numeric, 4), 'compared', count(*))"             \
    "       FROM a an JOIN reviews rv ON rv.task_id = an.task_id AND rv.state = 'done'"            \
    "       WHERE an.annotator_id = u.id)) ORDER BY u.name, u.id), '[]'::json)"                    \
    "     FROM (SELECT annotator_id, count(*) AS n FROM a GROUP BY annotator_id) x"                \
    "     JOIN users u ON u.id = x.annotator_id JOIN organizations o ON o.id = u.org_id),"         \
    "  'quality', CASE WHEN $2::bigint = 0 THEN json_build_object("                                \
    "     'auto_accepted', quality.accepted, 'audited', quality.audited,"                          \
    "     'audited_accuracy', json_build_object('agree', quality.agree,"                           \
    "       'compared', quality.compared),"                                                        \
    "     'human_labels_saved', quality.saved,"                                                    \
    "     'dynamic_overlap', CASE WHEN dyn.mx IS NOT NULL THEN json_build_object("                 \
    "       'tasks_complete', dyn.n, 'annotations', dyn.a, 'per_task', CASE WHEN dyn.n > 0"        \
    "       THEN round(dyn.a::numeric / dyn.n, 3) END, 'saved_vs_max', dyn.s,"                     \
    "       'extensions', dyn.ext, 'measure', dyn.ms, 'threshold', dyn.thr) END,"                  \
    "     'shown_predictions', CASE WHEN shown.on THEN json_build_object("                         \
    "       'compared', shown.n, 'accepted', shown.k, 'rate', CASE WHEN shown.n > 0"               \
    "       THEN round(shown.k::numeric / shown.n, 4) END) END,"                                   \
    "     'reviewed', (SELECT count(*) FROM reviews WHERE project_id = $1 AND state = 'done'),"    \
    "     'paused_annotators', paused.j)"                                                          \
    "     ELSE json_build_object('paused_annotators', paused.j) END"                               \
    " )::text FROM span, work, pace, rem, quality, dyn, shown, paused"
// clang-format on

/* --- agreement (live_agreement.c) -------------------------------------------------------------
 * Annotators are told apart by id, never by name: two organizations may each
 * have an "alice". */

/* New annotations of a project since an id, and the project's total (to
 * notice rows committed out of id order), those of control (gold) tasks
 * left out: they feed gold accuracy only. $1 project, $2 after id, $3 the
 * data keys whose text span fields refer to (a text[]; NULL: none) -> id,
 * the item (the task id, and "/N" for an annotation of round N > 1: the
 * agreement of different rounds is never compared), label, total,
 * annotator id, annotator name, organization id, organization name, the
 * task's texts under those keys (a JSON object, or NULL). */
#define QR_SQL_AGREEMENT_NEW                                                                       \
    "SELECT a.id, a.task_id::text || CASE WHEN a.round > 1 THEN '/' || a.round ELSE '' END,"       \
    " a.label,"                                                                                    \
    " (SELECT count(*) FROM annotations ca JOIN tasks ct ON ct.id = ca.task_id"                    \
    "   WHERE ca.project_id = $1 AND NOT ct.control),"                                             \
    " u.id, u.name, u.org_id, o.name, x.texts"                                                     \
    " FROM annotations a JOIN users u ON u.id = a.annotator_id"                                    \
    " JOIN tasks tk ON tk.id = a.task_id AND NOT tk.control"                                       \
    " JOIN organizations o ON o.id = u.org_id"                                                     \
    " LEFT JOIN LATERAL (SELECT jsonb_object_agg(k, t.data->k)::text AS texts"                     \
    "   FROM tasks t, unnest($3::text[]) k"                                                        \
    "   WHERE $3::text[] IS NOT NULL AND t.id = a.task_id AND jsonb_typeof(t.data->k) = 'string')" \
    "   x ON true"                                                                                 \
    " WHERE a.project_id = $1 AND a.id > $2 ORDER BY a.id"

/* Agreement with gold answers, per annotator. $1 project -> annotator id,
 * name, organization id, organization name, compared, agreeing. */
#define QR_SQL_AGREEMENT_GOLD                                                                      \
    "SELECT u.id, u.name, u.org_id, o.name, count(*), count(*) FILTER (WHERE a.label = t.gold)"    \
    " FROM tasks t JOIN annotations a ON a.task_id = t.id JOIN users u ON u.id = a.annotator_id"   \
    " JOIN organizations o ON o.id = u.org_id"                                                     \
    " WHERE t.project_id = $1 AND t.gold IS NOT NULL"                                              \
    " GROUP BY u.id, u.name, u.org_id, o.name ORDER BY u.name, u.id"

/* --- organizations and project shares (issue 7) --------------------------------------------- */

/* $1 the caller's organization, $2 name, $3 kind -> id, name, kind. No row
 * when the caller's organization is not an owner: vendors make no orgs. */
#define QR_SQL_ORG_CREATE                                                                          \
    "INSERT INTO organizations (name, kind) SELECT $2, $3"                                         \
    " WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $1 AND kind = 'owner')"                 \
    " RETURNING id, name, kind"

/* $1 the caller's organization -> the organizations it may see as one JSON
 * array: every one for an owner organization, only itself for a vendor. */
/* Whether an organization is an owner (GET /metrics: owner admins only). */
#define QR_SQL_ORG_IS_OWNER "SELECT kind = 'owner' FROM organizations WHERE id = $1"

/* A round trip that touches nothing (GET /readyz). */
#define QR_SQL_PING "SELECT 1"

/* The deployment's id (sql/0016_deployment.sql), asked at start until known. */
#define QR_SQL_DEPLOYMENT_ID "SELECT id::text FROM deployment"

#define QR_SQL_ORG_LIST                                                                            \
    "SELECT coalesce(json_agg(json_build_object('id', o.id, 'name', o.name, 'kind', o.kind,"       \
    "  'created_at', o.created_at) ORDER BY o.id), '[]')::text FROM organizations o"               \
    " WHERE o.id = $1 OR EXISTS (SELECT 1 FROM organizations c WHERE c.id = $1 AND c.kind = "      \
    "'owner')"

/* $1 the caller's organization, $2 an organization's name -> its id, if the
 * caller may make users there: their own, or any when theirs is an owner. */
#define QR_SQL_ORG_RESOLVE                                                                         \
    "SELECT o.id FROM organizations o WHERE o.name = $2 AND (o.id = $1"                            \
    " OR EXISTS (SELECT 1 FROM organizations c WHERE c.id = $1 AND c.kind = 'owner'))"

/* Shares a project of organization $5 with organization $2, or changes the
 * share's bounds. $1 project, $3 quota of annotations, $4 tasks per
 * annotator (NULL: none) -> org id, quota, cap, whether it is new. No row
 * when the project is not $5's. The trigger of 0007_sharing.sql refuses an
 * organization that is not a vendor (23514); an unknown one breaks the
 * foreign key (23503). */
#define QR_SQL_SHARE_PUT                                                                           \
    "INSERT INTO project_shares (project_id, org_id, quota_annotations, max_tasks_per_annotator)"  \
    " SELECT p.id, $2, $3, $4 FROM projects p WHERE p.id = $1 AND p.org_id = $5"                   \
    " ON CONFLICT (project_id, org_id) DO UPDATE SET"                                              \
    "  quota_annotations = EXCLUDED.quota_annotations,"                                            \
    "  max_tasks_per_annotator = EXCLUDED.max_tasks_per_annotator"                                 \
    " RETURNING org_id, quota_annotations, max_tasks_per_annotator, (xmax = 0)"

/* $1 project, $2 organization, $3 the project's organization -> the org id
 * (no row: no such share). */
#define QR_SQL_SHARE_DELETE                                                                        \
    "DELETE FROM project_shares s USING projects p WHERE s.project_id = $1 AND s.org_id = $2"      \
    " AND p.id = s.project_id AND p.org_id = $3 RETURNING s.org_id"

/* $1 project, $2 the project's organization -> its shares as one JSON array,
 * with the annotations each vendor's crew has submitted. */
#define QR_SQL_SHARE_LIST                                                                          \
    "SELECT coalesce(json_agg(json_build_object('org_id', s.org_id, 'organization', o.name,"       \
    "  'quota_annotations', s.quota_annotations,"                                                  \
    "  'max_tasks_per_annotator', s.max_tasks_per_annotator, 'created_at', s.created_at,"          \
    "  'annotations', (SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id"   \
    "     WHERE a.project_id = s.project_id AND u.org_id = s.org_id)) ORDER BY s.org_id), '[]')"   \
    "  ::text FROM project_shares s JOIN organizations o ON o.id = s.org_id"                       \
    " JOIN projects p ON p.id = s.project_id WHERE s.project_id = $1 AND p.org_id = $2"

/* $1 project -> organization, annotator, annotations: what the lease
 * engine's quota and cap counters start from (qr_lease_count_seed). */
#define QR_SQL_LEASE_COUNTS                                                                        \
    "SELECT u.org_id, a.annotator_id, count(*) FROM annotations a"                                 \
    " JOIN users u ON u.id = a.annotator_id JOIN tasks t ON t.id = a.task_id"                      \
    " WHERE a.project_id = $1 AND NOT t.control GROUP BY 1, 2"

/* --- gold served at a rate, annotators paused (sql/0028_gold_serving.sql) --------------------- */

/* What the lease engine's gold set is built from (qr_lease_gold_load), $1
 * project -> kind, id, count, data, done-by; kind 't': a control task (id),
 * its annotations so far, its data and who answered or skipped it ('' when
 * nobody; none when the project serves no gold); 'a': an annotator (id) and
 * their gold answers; 'p': a paused annotator (id). */
#define QR_SQL_GOLD_LOAD                                                                           \
    "SELECT 't', t.id, t.done_count::bigint, t.data::text,"                                        \
    "  coalesce((SELECT string_agg(x.a::text, ',') FROM ("                                         \
    "    SELECT annotator_id AS a FROM annotations WHERE task_id = t.id UNION"                     \
    "    SELECT annotator_id FROM leases WHERE task_id = t.id AND outcome = 'skipped') x), '')"    \
    " FROM tasks t WHERE t.project_id = $1 AND t.control AND quorum_gold_serving($1)"              \
    " UNION ALL SELECT 'a', a.annotator_id, count(*), NULL, NULL FROM annotations a"               \
    "  JOIN tasks t ON t.id = a.task_id WHERE a.project_id = $1 AND t.control"                     \
    "  GROUP BY a.annotator_id"                                                                    \
    " UNION ALL SELECT 'p', annotator_id, 0, NULL, NULL FROM annotator_pauses"                     \
    "  WHERE project_id = $1 AND reinstated_at IS NULL"

/* After a gold annotation committed: $1 project, $2 annotator -> paused,
 * whether this call paused them, the reason (quorum_gold_judge). */
#define QR_SQL_GOLD_JUDGE "SELECT paused, created, reason FROM quorum_gold_judge($1, $2)"

/* $1 project, $2 annotator -> the reason of their live pause (no row: none). */
#define QR_SQL_PAUSE_REASON                                                                        \
    "SELECT reason FROM annotator_pauses WHERE project_id = $1 AND annotator_id = $2"              \
    " AND reinstated_at IS NULL"

/* Reinstates a paused annotator: $1 project, $2 annotator, $3 the manager
 * -> the pause as JSON (no row: they were not paused). Their gold accuracy
 * is judged again on gold answers given from now on (quorum_gold_tally). */
#define QR_SQL_REINSTATE                                                                           \
    "UPDATE annotator_pauses SET reinstated_at = now(), reinstated_by = $3"                        \
    " WHERE project_id = $1 AND annotator_id = $2 AND reinstated_at IS NULL"                       \
    " RETURNING json_build_object('annotator_id', annotator_id, 'reason', reason,"                 \
    "  'accuracy', accuracy, 'compared', compared, 'paused_at', paused_at,"                        \
    "  'reinstated_at', reinstated_at, 'reinstated_by', reinstated_by)::text"

/* The reaper's history of expired leases: $1..$6 arrays of project,
 * fencing token, task, annotator, granted and expiry (epoch ms). */
#define QR_SQL_LEASES_EXPIRED                                                                      \
    "INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at,"            \
    " expires_at, outcome)"                                                                        \
    " SELECT p, t, k, a, to_timestamp(g / 1000.0), to_timestamp(x / 1000.0), 'expired'"            \
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],"                         \
    " $5::bigint[], $6::bigint[]) AS u(p, t, k, a, g, x)"                                          \
    " ON CONFLICT DO NOTHING"

/* --- project and user management (issue 14) ------------------------------------------------- */

/* $1 the caller's organization, $2 after this project id, $3 at most this
 * many rows -> rows of QR_SQL_PROJECT_JSON in id order: the organization's
 * own projects and those shared with it. */
#define QR_SQL_PROJECT_LIST                                                                        \
    "SELECT " QR_SQL_PROJECT_JSON " FROM projects"                                                 \
    " WHERE (org_id = $1 OR id IN (SELECT project_id FROM project_shares WHERE org_id = $1))"      \
    "   AND id > $2 ORDER BY id LIMIT $3"

/* Changes a project. $1 project, $2 its organization, $3 name, $4 labels
 * (JSON array), $5 annotations per task, $6 overlap annotations, $7 overlap
 * fraction, $8 lease TTL ms, $9 sampling, $10 stratify field; NULL keeps a
 * value; $11 true when $12 is the new auto-accept confidence, $13 its
 * audit share; $14 true when $15..$17 are the new overlap_min, overlap_max
 * and overlap_agreement_threshold (all NULL: fixed overlap from now on;
 * set, annotations_per_task becomes overlap_min); $18 show_predictions;
 * $19 gold rate, $20 gold onboarding, $21 whether $22 is the gold minimum
 * accuracy, $23 gold minimum count; $24 review mode, $25 review share,
 * $26 review agreement threshold; $27 overlap measure, $28 overlap prior
 * accuracy (sql/0034). The guards hold the rules
 * against a concurrent change: labels are only added (the new list holds
 * every old one), overlap (and overlap_min) only rises. -> the project as
 * JSON; no row: not the organization's, or a guard failed. A stratified
 * sampling without a field, or dynamic overlap keys that do not fit the
 * project (projects_dynamic_overlap_check): 23514; an overlap_max below a
 * task's required count: QR_SQLSTATE_OVERLAP_MAX. */
#define QR_SQL_PROJECT_UPDATE                                                                      \
    "UPDATE projects SET name = coalesce($3, name), labels = coalesce($4::jsonb, labels),"         \
    " annotations_per_task = coalesce($15::integer, $5::integer, annotations_per_task),"           \
    " overlap_annotations = coalesce($6::integer, overlap_annotations),"                           \
    " overlap_fraction = coalesce($7::double precision, overlap_fraction),"                        \
    " lease_ttl_ms = coalesce($8::integer, lease_ttl_ms), sampling = coalesce($9, sampling),"      \
    " stratify_field = CASE WHEN coalesce($9, sampling) = 'stratified'"                            \
    "   THEN coalesce($10, stratify_field) END,"                                                   \
    " auto_accept_confidence = CASE WHEN $11::boolean THEN $12::double precision"                  \
    "   ELSE auto_accept_confidence END,"                                                          \
    " auto_accept_audit = coalesce($13::double precision, auto_accept_audit),"                     \
    " overlap_min = CASE WHEN $14::boolean THEN $15::integer ELSE overlap_min END,"                \
    " overlap_max = CASE WHEN $14::boolean THEN $16::integer ELSE overlap_max END,"                \
    " overlap_agreement_threshold = CASE WHEN $14::boolean THEN $17::double precision"             \
    "   ELSE overlap_agreement_threshold END,"                                                     \
    " show_predictions = coalesce($18::boolean, show_predictions),"                                \
    " gold_rate = coalesce($19::double precision, gold_rate),"                                     \
    " gold_onboarding = coalesce($20::integer, gold_onboarding),"                                  \
    " gold_min_accuracy = CASE WHEN $21::boolean THEN $22::double precision"                       \
    "   ELSE gold_min_accuracy END,"                                                               \
    " gold_min_count = coalesce($23::integer, gold_min_count),"                                    \
    " review_mode = coalesce($24, review_mode),"                                                   \
    " review_share = coalesce($25::double precision, review_share),"                               \
    " review_agreement_threshold = coalesce($26::double precision, review_agreement_threshold),"   \
    " overlap_measure = coalesce($27, overlap_measure),"                                           \
    " overlap_prior_accuracy = coalesce($28::double precision, overlap_prior_accuracy)"            \
    " WHERE id = $1 AND org_id = $2 AND ($4::jsonb IS NULL OR ($4::jsonb @> labels"                \
    "   AND schema IS NULL))"                                                                      \
    "  AND ($15::integer IS NULL OR $15::integer >= annotations_per_task)"                         \
    "  AND ($5::integer IS NULL OR $5::integer >= annotations_per_task)"                           \
    "  AND ($6::integer IS NULL OR $6::integer >= overlap_annotations)"                            \
    "  AND ($7::double precision IS NULL OR $7::double precision >= overlap_fraction)"             \
    " RETURNING " QR_SQL_PROJECT_JSON

/* $1 project, $2 its organization, $3 true to archive, false to bring it
 * back -> the project as JSON; no row when it is not that organization's.
 * A second archive keeps the time of the first. */
#define QR_SQL_PROJECT_ARCHIVE                                                                     \
    "UPDATE projects SET archived_at = CASE WHEN $3::boolean THEN coalesce(archived_at, now())"    \
    " END WHERE id = $1 AND org_id = $2 RETURNING " QR_SQL_PROJECT_JSON

/* $1 project, $2 its organization -> id, and the tasks and annotations it
 * held; every row of the project goes by ON DELETE CASCADE and the log's
 * by a trigger (sql/0019). No row: not that organization's. */
#define QR_SQL_PROJECT_DELETE                                                                      \
    "WITH n AS (SELECT (SELECT count(*) FROM tasks WHERE project_id = $1) AS tasks,"               \
    "  (SELECT count(*) FROM annotations WHERE project_id = $1) AS annotations)"                   \
    " DELETE FROM projects p USING n WHERE p.id = $1 AND p.org_id = $2"                            \
    " RETURNING p.id, n.tasks, n.annotations"

/* $1 organization, $2 after this user id, $3 at most this many -> one JSON
 * array of its users in id order (id, name, role, created_at, live tokens). */
#define QR_SQL_USER_LIST                                                                           \
    "SELECT coalesce(json_agg(x ORDER BY x.id), '[]')::text FROM (SELECT u.id, u.name, u.role,"    \
    "  u.created_at, (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id"                    \
    "   AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())) AS tokens"    \
    "  FROM users u WHERE u.org_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3) x"

/* A user named where an id is taken. $1 the name, or name@organization,
 * $2 project, $3 the caller's organization -> id, name, organization name
 * of each user it may mean (at most 10): the caller's organization's and,
 * when the caller's organization owns the project, those of the vendors
 * it is shared with. */
#define QR_SQL_USER_RESOLVE                                                                        \
    "SELECT u.id, u.name, o.name FROM users u JOIN organizations o ON o.id = u.org_id"             \
    " WHERE (u.name = $1 OR u.name || '@' || o.name = $1)"                                         \
    "  AND (u.org_id = $3 OR (u.org_id IN (SELECT s.org_id FROM project_shares s"                  \
    "   JOIN projects p ON p.id = s.project_id WHERE s.project_id = $2 AND p.org_id = $3)))"       \
    " ORDER BY u.id LIMIT 10"

#endif
