/*
 * sql_export.h - the statements of GET /v1/projects/{id}/export (api_export.c),
 * kept apart from store.h so that export's SQL reads as one piece.
 *
 * An export is a snapshot S (pg_current_snapshot(), taken first) and,
 * for an increment, the cursor C an earlier export printed (the snapshot it
 * was taken at; sql/0020_export.sql says why a snapshot and not an id).
 * A row belongs to the window (C, S] when the transaction that wrote it is
 * visible in S and not in C. Every statement below reads one page of at
 * most $6 rows after the key $5 (keyset paging), so the export streams:
 * each page is written to the client before the next one is asked for,
 * and pages are read on whatever connection is free, each at its own later
 * time; filtering by S makes them all read the same state.
 *
 * What the window holds, kind=annotations:
 *   - each annotation written in it, undone since or not: one undone after
 *     S is read from its undo row (annotation_undos keeps it whole);
 *   - each undo written in it, of an annotation an earlier window held.
 *   An annotation written and undone in the same window is in neither
 *   list, so a full export (no C) holds no undo, and across increments
 *   every annotation is listed exactly once, and its undo at most once,
 *   later.
 * kind=consensus and format=ls list tasks: every task of the project for a
 * full export, the tasks with an annotation or undo in the window for an
 * increment; each with its annotations as of S.
 *
 * Common parameters: $1 project, $2 S (pg_snapshot text), $3 C (text, or
 * NULL for a full export), $4 the organization whose annotators a vendor
 * is limited to (0: every one), $5 the key after which the page starts,
 * $6 the page size.
 */
#ifndef QR_SQL_EXPORT_H
#define QR_SQL_EXPORT_H

// clang-format off

/* Transaction id x is in the window (C, S]. The first test is redundant
 * with the last but lets the planner range-scan the written_xid index. */
#define QR_SQL_IN_WINDOW(x)                                                                        \
    "(pg_visible_in_snapshot(" x ", $2::text::pg_snapshot) AND ($3::text IS NULL OR (" x                 \
    " >= pg_snapshot_xmin($3::text::pg_snapshot) AND NOT pg_visible_in_snapshot(" x                      \
    ", $3::text::pg_snapshot))))"

/* The annotations of the project as of S, live or undone since: the
 * columns id, task_id, annotator_id, label, active_ms, created_at,
 * fencing_token, written_xid, round. tf: a condition on the task id t (SQL). */
#define QR_SQL_AS_OF_S(tf)                                                                         \
    "(SELECT a.id, a.task_id, a.annotator_id, a.label, a.active_ms, a.created_at,"                 \
    "   a.fencing_token, a.written_xid, a.round FROM annotations a"                                \
    "  WHERE a.project_id = $1 AND pg_visible_in_snapshot(a.written_xid, $2::text::pg_snapshot)"         \
    "    AND a.task_id " tf                                                                        \
    " UNION ALL"                                                                                   \
    " SELECT u.annotation_id, u.task_id, u.annotator_id, u.label, u.active_ms, u.annotated_at,"    \
    "   u.fencing_token, u.annotation_xid, u.round FROM annotation_undos u"                        \
    "  WHERE u.project_id = $1 AND pg_visible_in_snapshot(u.annotation_xid, $2::text::pg_snapshot)"      \
    "    AND NOT pg_visible_in_snapshot(u.written_xid, $2::text::pg_snapshot) AND u.task_id " tf ")"

/* The annotator as a reader of the export names them: the user's name, or
 * "name@organization" for an annotator of another organization than the
 * project's (two organizations' "alice" stay apart). */
#define QR_SQL_EXPORT_WHO                                                                          \
    "CASE WHEN us.org_id = p.org_id THEN us.name ELSE us.name || '@' || o.name END"

/* Row r's annotator is in the crew the export covers ($4: 0 for every
 * annotator, else a vendor's organization). Tested in each branch, before
 * its LIMIT, so a page is short only at the end. */
#define QR_SQL_EXPORT_CREW(r)                                                                      \
    "($4::bigint = 0 OR EXISTS (SELECT 1 FROM users w WHERE w.id = " r ".annotator_id"             \
    " AND w.org_id = $4::bigint))"

/* Time on task in seconds: the active time the client reported, else the
 * time from the lease's grant to the annotation. */
#define QR_SQL_EXPORT_LEAD(x)                                                                      \
    "round(coalesce(" x ".active_ms / 1000.0, (SELECT extract(epoch FROM " x ".created_at -"       \
    " l.granted_at) FROM leases l WHERE l.project_id = $1 AND l.fencing_token = " x                \
    ".fencing_token))::numeric, 3)"

#define QR_SQL_EXPORT_TIME(at) "to_char(" at " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The snapshot S, and whether the cursor $1 (NULL: none) is one this
 * database could have printed (not past S: a cursor from another database
 * or a hand-made one would skip rows). */
#define QR_SQL_EXPORT_BEGIN                                                                        \
    "SELECT pg_current_snapshot()::text, $1::text::pg_snapshot IS NULL OR"                               \
    " (pg_snapshot_xmax($1::text::pg_snapshot) <= pg_snapshot_xmax(pg_current_snapshot())"               \
    "  AND pg_snapshot_xmin($1::text::pg_snapshot) <= pg_snapshot_xmin(pg_current_snapshot()))"

/* kind=annotations, the annotations of the window -> annotation id, task
 * id, external id, annotator (name@organization for another organization
 * than the project's), label, lead time (s), created_at, annotator id,
 * organization, organization id, the user's name, the round it was made in
 * (sql/0033_relabel_rounds.sql), in annotation id order.
 * $5 after annotation id. Each branch is limited before the union, so a
 * page reads $6 rows of an index, not the whole project. */
#define QR_SQL_EXPORT_ANNOTATIONS                                                                  \
    "SELECT x.id, x.task_id, t.external_id, " QR_SQL_EXPORT_WHO ", x.label,"                       \
    " " QR_SQL_EXPORT_LEAD("x") ", " QR_SQL_EXPORT_TIME("x.created_at") ","                        \
    " us.id, o.name, us.org_id, us.name, x.round"                                                  \
    " FROM ((SELECT a.id, a.task_id, a.annotator_id, a.label, a.active_ms, a.created_at,"          \
    "   a.fencing_token, a.round FROM annotations a"                                               \
    "  WHERE a.project_id = $1 AND a.id > $5 AND " QR_SQL_IN_WINDOW("a.written_xid")               \
    "    AND " QR_SQL_EXPORT_CREW("a") " ORDER BY a.id LIMIT $6)"                                  \
    " UNION ALL"                                                                                   \
    " (SELECT u.annotation_id, u.task_id, u.annotator_id, u.label, u.active_ms, u.annotated_at,"   \
    "   u.fencing_token, u.round FROM annotation_undos u"                                          \
    "  WHERE u.project_id = $1 AND u.annotation_id > $5"                                           \
    "    AND NOT pg_visible_in_snapshot(u.written_xid, $2::text::pg_snapshot)"                     \
    "    AND " QR_SQL_IN_WINDOW("u.annotation_xid") " AND " QR_SQL_EXPORT_CREW("u")                \
    "  ORDER BY u.annotation_id LIMIT $6)) x"                                                      \
    " JOIN tasks t ON t.id = x.task_id JOIN users us ON us.id = x.annotator_id"                    \
    " JOIN organizations o ON o.id = us.org_id JOIN projects p ON p.id = $1"                       \
    " ORDER BY x.id LIMIT $6"

/* kind=annotations, the undos of the window (only in an increment) -> undo
 * id, annotation id, task id, external id, annotator, label, undone_at,
 * annotator id, organization, organization id, the user's name, in undo id
 * order. $5 after undo id. */
#define QR_SQL_EXPORT_UNDOS                                                                        \
    "SELECT u.id, u.annotation_id, u.task_id, t.external_id, " QR_SQL_EXPORT_WHO ", u.label,"      \
    " " QR_SQL_EXPORT_TIME("u.undone_at") ", us.id, o.name, us.org_id, us.name"                   \
    " FROM annotation_undos u JOIN tasks t ON t.id = u.task_id"                                    \
    " JOIN users us ON us.id = u.annotator_id JOIN organizations o ON o.id = us.org_id"            \
    " JOIN projects p ON p.id = $1"                                                                \
    " WHERE u.project_id = $1 AND $3::text IS NOT NULL AND u.id > $5"                              \
    "  AND " QR_SQL_IN_WINDOW("u.written_xid")                                                     \
    "  AND pg_visible_in_snapshot(u.annotation_xid, $3::text::pg_snapshot)"                              \
    "  AND ($4::bigint = 0 OR us.org_id = $4::bigint)"                                             \
    " ORDER BY u.id LIMIT $6"

/* The tasks of a page of kind=consensus or format=ls: every task after $5
 * for a full export, else those with an annotation or undo in the window. */
#define QR_SQL_EXPORT_TASK_PAGE                                                                    \
    "pg AS (SELECT t.* FROM tasks t WHERE t.project_id = $1 AND t.id > $5 AND ($3::text IS NULL"   \
    "   OR t.id IN (SELECT a.task_id FROM annotations a WHERE a.project_id = $1"                   \
    "      AND " QR_SQL_IN_WINDOW("a.written_xid")                                                 \
    "    UNION SELECT u.task_id FROM annotation_undos u WHERE u.project_id = $1"                   \
    "      AND (" QR_SQL_IN_WINDOW("u.written_xid") " OR "                                         \
    QR_SQL_IN_WINDOW("u.annotation_xid") ")"                                                       \
    "    UNION SELECT rv.task_id FROM reviews rv WHERE rv.project_id = $1 AND rv.state = 'done'"    \
    "      AND " QR_SQL_IN_WINDOW("rv.written_xid") "))"                                           \
    "  ORDER BY t.id LIMIT $6),"                                                                   \
    " s AS (SELECT x.* FROM " QR_SQL_AS_OF_S("IN (SELECT id FROM pg)") " x"                        \
    "  JOIN users us ON us.id = x.annotator_id"                                                    \
    "  WHERE $4::bigint = 0 OR us.org_id = $4::bigint)"

/* A task's review decided as of S (sql/0031_review.sql): rv, and its
 * reviewer ru; none for a vendor's export (the review weighs every
 * organization's answers). */
#define QR_SQL_EXPORT_REVIEW QR_SQL_EXPORT_REVIEW_IF("")
/* The same, with a further condition on rv (SQL, starting with AND). */
#define QR_SQL_EXPORT_REVIEW_IF(cond)                                                              \
    " LEFT JOIN reviews rv ON rv.task_id = pg.id AND rv.state = 'done' AND $4::bigint = 0"         \
    "  AND pg_visible_in_snapshot(rv.written_xid, $2::text::pg_snapshot)" cond                     \
    " LEFT JOIN users ru ON ru.id = rv.reviewer_id"

/* kind=consensus -> one row per task and round (sql/0033_relabel_rounds.sql:
 * each round the task has annotations in, and its current round): task
 * id, external id, consensus (NULL: a tie, or fewer annotations than
 * min(2, the round's overlap: the task's required in round 1, the
 * annotations a later round asked, or those a past round got)), support (the share of the
 * annotations that gave it), annotations, gold (NULL in a vendor's crew
 * export, $4: a vendor never learns the gold answers its crew is measured
 * by), data (JSON text), whether the task was auto-accepted, in task id
 * order. The majority is the unique most frequent label, as `quorumctl agreement --per-item` computes it; an
 * auto-accepted task's consensus is its prediction, its support the
 * prediction's score (sql/0026_auto_accept.sql); a reviewed task's is the
 * reviewer's value, without a support; then the reviewed value, the
 * reviewer's name and the decision (NULLs: not reviewed; a review belongs
 * to the round its task was in when selected), then the round. */
#define QR_SQL_EXPORT_CONSENSUS                                                                    \
    "WITH " QR_SQL_EXPORT_TASK_PAGE ","                                                            \
    " pr AS (SELECT pg.id, x.rn FROM pg, LATERAL (SELECT s.round FROM s WHERE s.task_id = pg.id"   \
    "   UNION SELECT pg.round) x(rn)),"                                                            \
    " c AS (SELECT task_id, round, label, count(*) AS n FROM s GROUP BY 1, 2, 3),"                \
    " r AS (SELECT task_id, round, label, n, sum(n) OVER w AS total,"                              \
    "   row_number() OVER (PARTITION BY task_id, round ORDER BY n DESC, label) AS rk,"             \
    "   count(*) OVER (PARTITION BY task_id, round, n) AS same"                                    \
    "   FROM c WINDOW w AS (PARTITION BY task_id, round)),"                                        \
    " q AS (SELECT pg.*, pr.rn, r.label AS top, r.n, r.total, r.same,"                             \
    "   r.total >= CASE WHEN pr.rn < pg.round THEN least(2, r.total)"                              \
    "    WHEN pg.round = 1 THEN least(2, pg.required)"                                             \
    "    ELSE least(2, (SELECT rd.annotations FROM rounds rd WHERE rd.project_id = $1"             \
    "                   AND rd.number = pg.round)) END AS enough"                                  \
    "   FROM pg JOIN pr ON pr.id = pg.id"                                                          \
    "   LEFT JOIN r ON r.task_id = pg.id AND r.round = pr.rn AND r.rk = 1)"                        \
    " SELECT pg.id, pg.external_id,"                                                               \
    "  CASE WHEN rv.id IS NOT NULL THEN rv.value"                                                  \
    "   WHEN pg.auto_accept = 'accepted' THEN coalesce(ps.prediction->>'label',"                   \
    "    (ps.prediction->'labels')::text)"                                                         \
    "   WHEN pg.same = 1 AND pg.enough THEN pg.top END,"                                           \
    "  CASE WHEN rv.id IS NOT NULL THEN NULL"                                                      \
    "   WHEN pg.auto_accept = 'accepted' THEN round(ps.prediction_score::numeric, 4)"              \
    "   WHEN pg.same = 1 AND pg.enough THEN round(pg.n::numeric / pg.total, 4) END,"               \
    "  coalesce(pg.total, 0), CASE WHEN $4::bigint = 0 THEN pg.gold END, pg.data::text,"           \
    "  pg.auto_accept = 'accepted',"                                                               \
    "  rv.value, ru.name, rv.decision, pg.rn"                                                      \
    " FROM q pg LEFT JOIN tasks_scored ps ON pg.auto_accept = 'accepted' AND ps.id = pg.id"        \
    QR_SQL_EXPORT_REVIEW_IF(" AND rv.round = pg.rn")                                  \
    " ORDER BY pg.id, pg.rn"

/* kind=consensus&method=dawid_skene: every judgement of the project as of
 * S ($1 project, $2 snapshot S, $3 the crew's organization or 0) in one
 * row: the labels (a JSON array, sorted) and the judgements as one text,
 * "task annotator k" triples joined by ',' in (task, annotator) order, k
 * the label's index in that array. One row: a million judgements are some
 * 20 MB of text rather than a million rows of a result. */
#define QR_SQL_EXPORT_DS_JUDGEMENTS                                                                \
    "WITH j AS (SELECT x.task_id, x.annotator_id, x.label FROM " QR_SQL_AS_OF_S("> 0") " x"        \
    "  JOIN users us ON us.id = x.annotator_id WHERE $3::bigint = 0 OR us.org_id = $3::bigint),"   \
    " labs AS (SELECT label, row_number() OVER (ORDER BY label COLLATE \"C\") - 1 AS k"             \
    "  FROM (SELECT DISTINCT label FROM j) d)"                                                     \
    " SELECT (SELECT coalesce(json_agg(label ORDER BY k), '[]'::json) FROM labs)::text,"           \
    "  (SELECT coalesce(string_agg(j.task_id::text || ' ' || j.annotator_id::text || ' '"          \
    "     || labs.k::text, ',' ORDER BY j.task_id, j.annotator_id), '')"                           \
    "   FROM j JOIN labs ON labs.label = j.label)"

/* kind=consensus of a schema project -> one row per task and round, as
 * QR_SQL_EXPORT_CONSENSUS: task id, external id, the round's labels
 * objects (a JSON array of the canonical values), its overlap (the task's
 * required in round 1, the annotations a later round asked, those a past
 * round got), annotations, gold, data (JSON text), whether it was
 * auto-accepted, then its prediction's labels and score (an auto-accepted
 * task only), then the reviewed value, the reviewer's name and the
 * decision (NULLs: not reviewed), then the round, in task and round order;
 * the broker takes each field's consensus (agreement_fields.h). */
#define QR_SQL_EXPORT_CONSENSUS_FIELDS                                                             \
    "WITH " QR_SQL_EXPORT_TASK_PAGE ","                                                            \
    " pr AS (SELECT pg.id, x.rn FROM pg, LATERAL (SELECT s.round FROM s WHERE s.task_id = pg.id"   \
    "   UNION SELECT pg.round) x(rn)),"                                                            \
    " c AS (SELECT task_id, round, jsonb_agg(label::jsonb) AS labels, count(*) AS n FROM s"        \
    "   GROUP BY 1, 2),"                                                                           \
    " q AS (SELECT pg.*, pr.rn, c.labels, c.n,"                                                    \
    "   CASE WHEN pr.rn < pg.round THEN coalesce(c.n, 0) WHEN pg.round = 1 THEN pg.required"       \
    "    ELSE (SELECT rd.annotations FROM rounds rd WHERE rd.project_id = $1"                      \
    "          AND rd.number = pg.round) END AS round_overlap"                                     \
    "   FROM pg JOIN pr ON pr.id = pg.id LEFT JOIN c ON c.task_id = pg.id AND c.round = pr.rn)"   \
    " SELECT pg.id, pg.external_id, pg.labels::text, pg.round_overlap, coalesce(pg.n, 0),"         \
    "  CASE WHEN $4::bigint = 0 THEN pg.gold END, pg.data::text, pg.auto_accept = 'accepted',"     \
    "  CASE WHEN pg.auto_accept = 'accepted' THEN (ps.prediction->'labels')::text END,"            \
    "  ps.prediction_score, rv.value, ru.name, rv.decision, pg.rn"                                 \
    " FROM q pg JOIN tasks_scored ps ON ps.id = pg.id"                                             \
    QR_SQL_EXPORT_REVIEW_IF(" AND rv.round = pg.rn") " ORDER BY pg.id, pg.rn"

/* format=ls -> task id, and the task as one Label Studio task object (JSON
 * text): data, meta (Quorum's task id and the external id), predictions
 * (kept whole at import), and annotations: the imported ones as they came
 * (completed_by: the user id at their source, else the broker's user),
 * then the broker's in Label Studio's result shape (a "choices" result
 * whose from_name/to_name are those of the project's imported results,
 * else "label"/"text"). An annotation of the broker that mirrors an
 * imported one (an import counted toward overlap) is left out. */
#define QR_SQL_EXPORT_LS                                                                           \
    QR_SQL_EXPORT_LS_OF("'result', jsonb_build_array(jsonb_build_object("                           \
                        "'from_name', coalesce(names.from_name, 'label'),"                         \
                        "'to_name', coalesce(names.to_name, 'text'), 'type', 'choices',"           \
                        "'value', jsonb_build_object('choices', jsonb_build_array(s.label))))", "")

/* format=ls of a schema project: as QR_SQL_EXPORT_LS, but each of the
 * broker's annotations carries "labels", its labels object, where Label
 * Studio's "result" goes (the broker maps it, ls_result.h), and a third
 * column gives the to_name of the project's imported results (NULL: none). */
#define QR_SQL_EXPORT_LS_FIELDS QR_SQL_EXPORT_LS_OF("'labels', s.label::jsonb", ", names.to_name")

/* The format=ls query: ann is the pair(s) of a broker annotation's object
 * that say its value; extra, columns after the task object. */
#define QR_SQL_EXPORT_LS_OF(ann, extra)                                                            \
    "WITH " QR_SQL_EXPORT_TASK_PAGE ","                                                            \
    " names AS (SELECT (SELECT r->>'from_name' FROM imported_annotations ia,"                      \
    "     jsonb_array_elements(ia.result) r WHERE ia.project_id = $1 AND r ? 'from_name' LIMIT 1)" \
    "   AS from_name,"                                                                             \
    "   (SELECT r->>'to_name' FROM imported_annotations ia,"                                       \
    "     jsonb_array_elements(ia.result) r WHERE ia.project_id = $1 AND r ? 'to_name' LIMIT 1)"   \
    "   AS to_name)"                                                                               \
    " SELECT pg.id, jsonb_build_object('id', pg.id, 'data', pg.data,"                              \
    "  'meta', jsonb_build_object('quorum_task_id', pg.id, 'external_id', pg.external_id),"        \
    "  'predictions', coalesce(pg.predictions, '[]'::jsonb),"                                      \
    "  'annotations', coalesce((SELECT jsonb_agg(z.o ORDER BY z.k, z.id) FROM ("                   \
    "   SELECT 0 AS k, ia.id, jsonb_build_object("                                                 \
    "     'id', CASE WHEN ia.source_id ~ '^[0-9]{1,15}$' THEN to_jsonb(ia.source_id::bigint)"      \
    "       ELSE to_jsonb(ia.source_id) END,"                                                      \
    "     'result', ia.result, 'completed_by', coalesce(ia.source_completed_by, ia.annotator_id),"\
    "     'lead_time', ia.lead_time,"                                                              \
    "     'was_cancelled', ia.was_cancelled, 'ground_truth', ia.ground_truth,"                     \
    "     'created_at', " QR_SQL_EXPORT_TIME("ia.created_at") ") AS o"                             \
    "   FROM imported_annotations ia WHERE ia.project_id = $1 AND ia.task_id = pg.id"              \
    "     AND ($4::bigint = 0 OR EXISTS (SELECT 1 FROM users w WHERE w.id = ia.annotator_id"       \
    "       AND w.org_id = $4::bigint))"                                                           \
    "   UNION ALL"                                                                                 \
    "   SELECT 1, s.id, jsonb_build_object('id', s.id, " ann ","                                   \
    "     'completed_by', s.annotator_id, 'lead_time', " QR_SQL_EXPORT_LEAD("s") ","               \
    "     'was_cancelled', false, 'ground_truth',"                                                 \
    "      coalesce($4::bigint = 0 AND s.label = pg.gold, false),"                                 \
    "     'created_at', " QR_SQL_EXPORT_TIME("s.created_at") ")"                                   \
    "   FROM s WHERE s.task_id = pg.id AND NOT EXISTS (SELECT 1 FROM imported_annotations"         \
    "     m WHERE m.task_id = pg.id AND m.annotator_id = s.annotator_id)) z), '[]'::jsonb)"        \
    " )::text" extra " FROM pg, names ORDER BY pg.id"

// clang-format on

#endif
