/*
 * sql_review.h - the SQL of review leases and decisions
 * (sql/0031_review.sql). A review item is one row of reviews; its lease is
 * that row's reviewer, fencing token and expiry, so every statement here
 * checks and changes the lease and the item in one step. Parameters are
 * always bound.
 */
#ifndef QR_SQL_REVIEW_H
#define QR_SQL_REVIEW_H

// clang-format off
/* A stored value as JSON: a plain project's label as a string, a schema
 * project's canonical labels text as its object. p is the projects row. */
#define QR_SQL_REVIEW_VALUE(v)                                                                     \
    "CASE WHEN p.schema IS NULL THEN to_json(" v ") ELSE (" v ")::json END"

/* $1 project, $2 reviewer, $3 the most items, $4 lease TTL ms -> one row per
 * item granted: its lease as a JSON object (lease, fencing_token, review_id,
 * task_id, expires_at_ms, data, annotations, consensus). Only items nobody
 * holds (or whose lease expired), never one whose task the reviewer
 * annotated or reviewed in an earlier round; SKIP LOCKED: two brokers
 * granting at once take different items. */
#define QR_SQL_REVIEW_GRANT                                                                        \
    "WITH pick AS (SELECT r.id FROM reviews r"                                                     \
    "   WHERE r.project_id = $1 AND r.state = 'pending'"                                           \
    "     AND (r.reviewer_id IS NULL OR r.lease_expires_at <= now())"                              \
    "     AND NOT ($2::bigint = ANY (r.past_reviewers))"                                           \
    "     AND NOT EXISTS (SELECT 1 FROM annotations a"                                             \
    "       WHERE a.task_id = r.task_id AND a.annotator_id = $2)"                                  \
    "   ORDER BY r.id LIMIT $3 FOR UPDATE SKIP LOCKED),"                                           \
    " g AS (UPDATE reviews r SET reviewer_id = $2, fencing_token = nextval('reviews_fence'),"      \
    "   lease_expires_at = now() + $4::bigint * interval '1 millisecond'"                          \
    "   FROM pick WHERE r.id = pick.id"                                                            \
    "   RETURNING r.id, r.task_id, r.fencing_token, r.lease_expires_at)"                           \
    " SELECT json_build_object('lease', g.fencing_token::text, 'fencing_token', g.fencing_token,"  \
    "  'review_id', g.id, 'task_id', g.task_id,"                                                   \
    "  'expires_at_ms', floor(extract(epoch FROM g.lease_expires_at) * 1000)::bigint,"             \
    "  'data', t.data,"                                                                            \
    "  'annotations', (SELECT coalesce(json_agg(json_build_object('annotation_id', a.id,"          \
    "     'annotator_id', a.annotator_id, 'annotator', u.name,"                                    \
    "     'value', " QR_SQL_REVIEW_VALUE("a.label") ") ORDER BY a.id), '[]'::json)"               \
    "     FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.task_id = g.task_id),"  \
    "  'consensus', (SELECT json_build_object("                                                    \
    "     'value', CASE WHEN c.tie THEN NULL ELSE " QR_SQL_REVIEW_VALUE("c.value") " END,"        \
    "     'support', round(c.support::numeric, 4), 'tie', c.tie)"                                  \
    "     FROM quorum_review_consensus(g.task_id) c))::text"                                       \
    " FROM g JOIN tasks t ON t.id = g.task_id JOIN projects p ON p.id = t.project_id"              \
    " ORDER BY g.id"

/* $1 project, $2 reviewer, $3 token, $4 TTL ms -> expires_at_ms; no row:
 * not a live lease of this reviewer (expired, decided, released, another's). */
#define QR_SQL_REVIEW_HEARTBEAT                                                                    \
    "UPDATE reviews SET lease_expires_at = now() + $4::bigint * interval '1 millisecond'"          \
    " WHERE project_id = $1 AND reviewer_id = $2 AND fencing_token = $3 AND state = 'pending'"    \
    "   AND lease_expires_at > now()"                                                              \
    " RETURNING floor(extract(epoch FROM lease_expires_at) * 1000)::bigint"

/* $1 project, $2 reviewer, $3 token -> the item's id; no row: not a live
 * lease of this reviewer. The item is free for the next grant. */
#define QR_SQL_REVIEW_RELEASE                                                                      \
    "UPDATE reviews SET reviewer_id = NULL, fencing_token = NULL, lease_expires_at = NULL"         \
    " WHERE project_id = $1 AND reviewer_id = $2 AND fencing_token = $3 AND state = 'pending'"    \
    "   AND lease_expires_at > now()"                                                              \
    " RETURNING id"

/* $1 project, $2 reviewer, $3 token -> the item's task id; no row: no such
 * lease in the project (a correct value with span fields reads the task's
 * text lengths before it is decided). */
#define QR_SQL_REVIEW_TASK                                                                         \
    "SELECT task_id FROM reviews WHERE project_id = $1 AND fencing_token = $3"                     \
    "  AND reviewer_id = $2"

/* $1 project, $2 reviewer, $3 token, $4 decision (accept, pick, correct),
 * $5 the annotation picked (NULL), $6 the corrected value (NULL), $7 true to
 * requeue the task for one more annotator -> result (ok, no_lease,
 * not_yours, expired, tie, bad_annotation, full), task, the final value. */
#define QR_SQL_REVIEW_DECIDE                                                                       \
    "SELECT result, task, value FROM quorum_review_decide($1, $2, $3, $4, $5, $6, $7::boolean)"
/* POST .../reviews/select (sql/0037_review_select.sql): cand(task_id,
 * support) is each task's consensus support by the chosen measure; of the
 * project's complete tasks (never a control task) among them, those below
 * $2 that have no review item yet get one, pending, least sure first (then
 * by task id), at most $3 (NULL: no limit), selected_by $4. -> considered
 * (complete tasks with a support), selected (items made), already_selected
 * (below $2 but an item of any state exists). ON CONFLICT: a task another
 * selection (or its completion) recorded meanwhile is skipped, counted in
 * neither. */
#define QR_SQL_REVIEW_SELECT_TAIL                                                                  \
    " elig AS (SELECT cand.task_id, cand.support FROM cand JOIN tasks t ON t.id = cand.task_id"    \
    "   WHERE t.project_id = $1 AND t.state = 'complete' AND NOT t.control),"                      \
    " low AS (SELECT elig.task_id, elig.support,"                                                  \
    "   EXISTS (SELECT 1 FROM reviews r WHERE r.task_id = elig.task_id) AS had"                    \
    "   FROM elig WHERE elig.support < $2::float8),"                                               \
    " ins AS (INSERT INTO reviews (project_id, task_id, support, selected_by)"                     \
    "   SELECT $1, low.task_id, low.support, $4::text FROM low WHERE NOT low.had"                  \
    "   ORDER BY low.support, low.task_id LIMIT $3::bigint"                                        \
    "   ON CONFLICT (task_id) DO NOTHING RETURNING task_id)"                                       \
    " SELECT (SELECT count(*) FROM elig), (SELECT count(*) FROM ins),"                             \
    "  (SELECT count(*) FROM low WHERE low.had)"

/* $1 project, $2 below, $3 limit, $4 'majority' -> as the tail. The
 * majority's support as quorum_review_consensus takes it (the share of the
 * task's current round's annotations giving its most common value), every
 * task in one pass. */
#define QR_SQL_REVIEW_SELECT_MAJORITY                                                              \
    "WITH v AS (SELECT a.task_id, a.label, count(*) AS n FROM annotations a"                       \
    "   JOIN tasks t ON t.id = a.task_id AND a.round = t.round"                                    \
    "  WHERE a.project_id = $1 AND t.state = 'complete' AND NOT t.control GROUP BY 1, 2),"         \
    " cand AS (SELECT v.task_id, max(v.n)::float8 / sum(v.n)::float8 AS support FROM v"            \
    "  GROUP BY 1)," QR_SQL_REVIEW_SELECT_TAIL

/* $1 project, $2 below, $3 limit, $4 'dawid_skene', $5 task ids (a bigint[]
 * literal), $6 their supports (a float8[] literal, in the same order) ->
 * as the tail. The broker fitted the model (broker/reports/ds_fit.h). */
#define QR_SQL_REVIEW_SELECT_GIVEN                                                                 \
    "WITH cand AS (SELECT u.task_id, u.support"                                                    \
    "  FROM unnest($5::bigint[], $6::float8[]) AS u(task_id, support)),"                           \
    QR_SQL_REVIEW_SELECT_TAIL
// clang-format on

#endif
