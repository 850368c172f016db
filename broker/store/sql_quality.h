/*
 * sql_quality.h - the quality view's statements (issue 17): the agreement
 * report's per-label confusion against the consensus and its agreement per
 * field over time (GET /v1/projects/{id}/agreement?confusion=1&over_time=1,
 * api_reports.c), and one task with its annotations
 * (GET /v1/projects/{id}/tasks/{task}, api_task.c). Each answers one row,
 * one column: the JSON text the API sends. Parameters are always bound.
 *
 * Both agreement statements read the complete tasks of the project (never a
 * control task), each with the annotations of its current round (the
 * agreement of different rounds is never compared), per choice field: $2
 * is a JSON array [{"field": NAME, "labels": [CHOICE, ...]}, ...] of the
 * project's choice fields in schema order (a plain project: the one field
 * "label" with its labels), $3 true for a plain project (the stored label
 * is the value) and false for a schema project (the value is the field's
 * key of the stored labels object). A task counts for a field when two or
 * more of its annotations give the field a value.
 */
#ifndef QR_SQL_QUALITY_H
#define QR_SQL_QUALITY_H

// clang-format off

/* The fields (f: field, labels, o its position) and each annotation's
 * value per field (v: field, task_id, done_at (when the task completed: its
 * last annotation of its current round), val (NULL when the annotation
 * leaves the field out)), then the values counted per task (c: field,
 * task_id, done_at, val, n). Everything after v is computed with window
 * functions and GROUP BY over one relation, never a join of two of these
 * CTEs: the planner cannot estimate their sizes, and a nested loop over two
 * CTE scans is quadratic in the tasks (measured: 101 s for 20,000 tasks
 * right after a bulk load, before the join was taken out). */
#define QR_SQL_QUALITY_VALUES                                                                      \
    " f AS (SELECT e.v->>'field' AS field, e.v->'labels' AS labels, e.o"                           \
    "   FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY e(v, o)),"                            \
    " v AS (SELECT f.field, a.task_id,"                                                            \
    "   max(a.created_at) OVER (PARTITION BY f.field, a.task_id) AS done_at,"                      \
    "   CASE WHEN $3::boolean THEN a.label ELSE a.label::jsonb->>f.field END AS val"               \
    "   FROM annotations a JOIN tasks t ON t.id = a.task_id AND t.state = 'complete'"              \
    "    AND NOT t.control AND a.round = t.round"                                                  \
    "   CROSS JOIN f WHERE a.project_id = $1),"                                                    \
    " c AS (SELECT field, task_id, done_at, val, count(*) AS n FROM v WHERE val IS NOT NULL"       \
    "   GROUP BY 1, 2, 3, 4)"

/* ?confusion=1: per choice field, {"labels": [...], "matrix": [[...]],
 * "annotations", "tasks", "tasks_without_consensus"}: matrix[i][j] counts
 * the annotations that gave labels[i] on a task whose consensus is
 * labels[j]. The consensus of a task is the unique most common value among
 * its annotations (the annotator's own included, as the export's consensus
 * is), over two or more; a tie has none, and its annotations are counted
 * in no cell (tasks_without_consensus). labels: the field's choices in
 * schema order, then any other value stored (a label since removed), in
 * byte order. $1 project, $2 fields, $3 plain. */
#define QR_SQL_AGREEMENT_CONFUSION                                                                 \
    "WITH" QR_SQL_QUALITY_VALUES ","                                                               \
    " k1 AS (SELECT field, task_id, val, n, sum(n) OVER t AS total, max(n) OVER t AS topn,"        \
    "   first_value(val) OVER (t ORDER BY n DESC, val) AS top"                                     \
    "   FROM c WINDOW t AS (PARTITION BY field, task_id)),"                                        \
    " k AS (SELECT *, count(*) FILTER (WHERE n = topn) OVER (PARTITION BY field, task_id) AS ntop" \
    "   FROM k1),"                                                                                 \
    " tk AS (SELECT field, count(DISTINCT task_id) FILTER (WHERE total >= 2) AS pairable,"         \
    "   count(DISTINCT task_id) FILTER (WHERE total >= 2 AND ntop = 1) AS agreed"                  \
    "   FROM k GROUP BY 1),"                                                                       \
    " p AS (SELECT field, val, top AS maj, sum(n) AS n FROM k WHERE total >= 2 AND ntop = 1"       \
    "   GROUP BY 1, 2, 3),"                                                                        \
    " extra AS (SELECT field, val AS l FROM p UNION SELECT field, maj FROM p),"                    \
    " lab AS (SELECT field, l, row_number() OVER (PARTITION BY field ORDER BY o1, o2, l) AS i"      \
    "   FROM (SELECT f.field, e.l, 0 AS o1, e.o AS o2"                                             \
    "     FROM f, jsonb_array_elements_text(f.labels) WITH ORDINALITY e(l, o)"                     \
    "    UNION ALL SELECT x.field, x.l, 1, 0 FROM extra x JOIN f USING (field)"                    \
    "     WHERE NOT f.labels ? x.l) s)"                                                            \
    " SELECT coalesce(json_object_agg(f.field, json_build_object("                                 \
    "  'labels', (SELECT coalesce(json_agg(lab.l ORDER BY lab.i), '[]') FROM lab"                  \
    "    WHERE lab.field = f.field),"                                                              \
    "  'matrix', (SELECT coalesce(json_agg((SELECT json_agg(coalesce(p.n, 0) ORDER BY cj.i)"       \
    "    FROM lab cj LEFT JOIN p ON p.field = f.field AND p.val = ri.l AND p.maj = cj.l"           \
    "    WHERE cj.field = f.field) ORDER BY ri.i), '[]') FROM lab ri WHERE ri.field = f.field),"    \
    "  'annotations', (SELECT coalesce(sum(p.n), 0) FROM p WHERE p.field = f.field),"              \
    "  'tasks', coalesce(tk.agreed, 0),"                                                           \
    "  'tasks_without_consensus', coalesce(tk.pairable - tk.agreed, 0)) ORDER BY f.o), '{}')::text" \
    " FROM f LEFT JOIN tk USING (field)"

/* ?over_time=1: {"bucket", "completed_tasks", "fields": {FIELD: [point,
 * ...]}}. A task completed when its last annotation of its current round
 * was made; the bucket is chosen from the span between the first and the
 * last completion: "minute" up to 3 hours, "hour" up to 14 days, else
 * "day" (UTC; null while no task is complete). A point per bucket in which some task counts for the field:
 * {"start" (ISO 8601, UTC), "start_ms", "tasks", "percent_agreement" (the
 * mean over those tasks of the share of their pairs of annotations that
 * agree, as the report's percent_agreement), "krippendorff_alpha_nominal"
 * (over those tasks; null when they hold one value only)}, oldest first.
 * $1 project, $2 fields, $3 plain. */
#define QR_SQL_AGREEMENT_OVER_TIME                                                                 \
    "WITH" QR_SQL_QUALITY_VALUES ","                                                               \
    " sp AS (SELECT CASE WHEN count(*) = 0 THEN NULL"                                              \
    "   WHEN max(done_at) - min(done_at) <= interval '3 hours' THEN 'minute'"                      \
    "   WHEN max(done_at) - min(done_at) <= interval '14 days' THEN 'hour' ELSE 'day' END AS b,"   \
    "   count(DISTINCT task_id) AS tasks FROM v),"                                                 \
    " k AS (SELECT field, task_id, val, n, sum(n) OVER t AS m, sum(n * (n - 1)) OVER t AS agree,"  \
    "   date_trunc((SELECT b FROM sp), done_at AT TIME ZONE 'UTC') AS bk"                          \
    "   FROM c WINDOW t AS (PARTITION BY field, task_id)),"                                        \
    " b AS (SELECT field, bk, count(*) AS tasks, avg(agree::float8 / (m * (m - 1))) AS pa,"        \
    "   sum(agree::float8 / (m - 1)) AS occ, sum(m)::float8 AS n"                                  \
    "   FROM (SELECT DISTINCT field, task_id, bk, m, agree FROM k WHERE m >= 2) u GROUP BY 1, 2),"  \
    " be AS (SELECT field, bk, sum(nc * (nc - 1))::float8 AS e FROM (SELECT field, bk, val,"       \
    "   sum(n) AS nc FROM k WHERE m >= 2 GROUP BY 1, 2, 3) x GROUP BY 1, 2),"                      \
    " pt AS (SELECT b.field, b.bk, b.tasks, b.pa,"                                                 \
    "   CASE WHEN b.n * (b.n - 1) - be.e > 0"                                                      \
    "   THEN ((b.n - 1) * b.occ - be.e) / (b.n * (b.n - 1) - be.e) END AS alpha"                   \
    "   FROM b JOIN be USING (field, bk))"                                                         \
    " SELECT json_build_object('bucket', (SELECT b FROM sp),"                                      \
    "  'completed_tasks', (SELECT tasks FROM sp),"                                                 \
    "  'fields', (SELECT coalesce(json_object_agg(f.field, (SELECT coalesce(json_agg("             \
    "    json_build_object('start', to_char(pt.bk, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"             \
    "     'start_ms', (extract(epoch FROM pt.bk) * 1000)::bigint, 'tasks', pt.tasks,"              \
    "     'percent_agreement', pt.pa, 'krippendorff_alpha_nominal', pt.alpha)"                     \
    "    ORDER BY pt.bk), '[]') FROM pt WHERE pt.field = f.field) ORDER BY f.o), '{}')"            \
    "   FROM f))::text"

/* One task of a project with its annotations, as JSON text: task_id,
 * project_id, external_id, state, round, required, done_count, data,
 * created_at, gold (NULL unless $4), annotations (each: annotation_id,
 * annotator_id, annotator, organization_id, organization, value (a plain
 * project's label as a string, a schema project's labels as their
 * object), round, created_at, active_ms; in id order, every round's) and
 * review (its state, decision, value, reviewer, round, decided_at; NULL
 * when the task was never selected for review, and for a vendor). No row
 * when the task is not the project's. $1 project, $2 task, $3 the
 * organization whose crew a vendor's reads are limited to (0: everyone),
 * $4 whether the caller may see gold answers. */
#define QR_SQL_TASK_READ                                                                           \
    "SELECT json_build_object('task_id', t.id, 'project_id', t.project_id,"                        \
    " 'external_id', t.external_id, 'state', t.state, 'round', t.round,"                           \
    " 'required', t.required, 'done_count', t.done_count, 'data', t.data,"                         \
    " 'created_at', t.created_at, 'gold', CASE WHEN $4::boolean THEN t.gold END,"                  \
    " 'annotations', (SELECT coalesce(json_agg(json_build_object('annotation_id', a.id,"           \
    "   'annotator_id', u.id, 'annotator', u.name, 'organization_id', u.org_id,"                   \
    "   'organization', o.name,"                                                                   \
    "   'value', CASE WHEN p.schema IS NULL THEN to_json(a.label) ELSE a.label::json END,"         \
    "   'round', a.round, 'created_at', a.created_at, 'active_ms', a.active_ms) ORDER BY a.id),"   \
    "   '[]') FROM annotations a JOIN users u ON u.id = a.annotator_id"                            \
    "   JOIN organizations o ON o.id = u.org_id"                                                   \
    "   WHERE a.task_id = t.id AND ($3::bigint = 0 OR u.org_id = $3::bigint)),"                    \
    " 'review', (SELECT json_build_object('state', rv.state, 'decision', rv.decision,"             \
    "   'value', CASE WHEN rv.value IS NULL THEN NULL WHEN p.schema IS NULL"                       \
    "    THEN to_json(rv.value) ELSE rv.value::json END,"                                          \
    "   'reviewer', ru.name, 'round', rv.round, 'decided_at', rv.decided_at)"                      \
    "   FROM reviews rv LEFT JOIN users ru ON ru.id = rv.reviewer_id AND rv.state <> 'pending'"    \
    "   WHERE rv.task_id = t.id AND $3::bigint = 0)"                                               \
    " )::text FROM tasks t JOIN projects p ON p.id = t.project_id"                                 \
    " WHERE t.id = $2 AND t.project_id = $1"

// clang-format on

#endif
