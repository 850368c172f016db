/*
 * sql_analytics.h - the SQL of the throughput report and of the queue
 * sizes (reports/analytics.c runs them; docs/THROUGHPUT.md explains them).
 * Kept in the store with every other statement the broker runs; all
 * parameters are bound ($1...$14), never pasted.
 */
#ifndef QR_SQL_ANALYTICS_H
#define QR_SQL_ANALYTICS_H

#include "sql_work.h"

/*
 * The SQL below is kept out of clang-format's hands (it would re-flow the
 * string pieces as if they were code); each line is one clause.
 */
// clang-format off

/* Fragments repeated in the statement. $4/$5: window bounds in epoch ms. */
#define T0         "to_timestamp($4::bigint / 1000.0)"
#define T1         "to_timestamp($5::bigint / 1000.0)"
#define NOW        "to_timestamp($6::bigint / 1000.0)"
#define HOURS      "(($5::bigint - $4::bigint) / 3600000.0)"
#define R1(x)      "round((" x ")::numeric, 1)"
#define ISO(ts)    "to_char((" ts ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ISO_MS(ms) ISO("to_timestamp((" ms ") / 1000.0)")
/* The crew in scope: organization $2 (0: all) and annotator $3 (0: all);
 * u is the users row, a the row carrying annotator_id. */
#define SCOPE(u, a) \
    "($2::bigint = 0 OR " u ".org_id = $2::bigint)" \
    " AND ($3::bigint = 0 OR " a ".annotator_id = $3::bigint)"
/* Not about a control (gold) task of the project (sql/0028_gold_serving.sql):
 * gold leases and their annotations feed gold accuracy, never throughput.
 * x is a row carrying task_id; a hashed subplan over the tasks_control
 * index, empty (and free) for a project without gold served. */
#define GOLD_OUT(x) \
    x ".task_id NOT IN (SELECT ct.id FROM tasks ct WHERE ct.project_id = $1::bigint AND ct.control)"
/* Time on task of a submit event e: reported active time, else submit - grant. */
#define TOT(e) \
    "coalesce(" e ".active_ms::float8," \
    " extract(epoch FROM " e ".at - " e ".granted_at)::float8 * 1000)"
#define STATS(v) \
    "count(" v ") AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY " v ") AS med," \
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY " v ") AS p90, avg(" v ") AS mean"
#define STATS_JSON(a) \
    "json_build_object('n', coalesce(" a ".n, 0), 'median_ms', " R1(a ".med") "," \
    " 'p90_ms', " R1(a ".p90") ", 'mean_ms', " R1(a ".mean") ")"
#define SHARE(x, total) \
    "CASE WHEN " total " > 0 THEN round((" x ")::numeric / (" total ")::numeric, 4) END"
#define LEASES_JSON(g, s, k, r, x) \
    "json_build_object('granted', " g ", 'ended', " s " + " k " + " r " + " x "," \
    " 'submitted', " s ", 'skipped', " k ", 'released', " r ", 'expired', " x ")"
#define HOUR_OF(ts) "(floor(extract(epoch FROM " ts ") / 3600)::bigint * 3600000)"

/*
 * The report. $1 project, $2 organization (0: all), $3 annotator (0: all),
 * $4 window start ms, $5 window end ms, $6 now ms, $7 idle gap ms, $8 by,
 * $9 fast-response minimum submissions, $10 fast-response ratio, $11 ETA
 * rate window ms, $12 the window as asked, $13 the source ("events",
 * "rollup" or "hourly"), $14 the pace span ms -> one row, the report as JSON text; no row when the project
 * does not exist. SQL_HEAD_RAW or SQL_HEAD_ROLLUP computes the figures of
 * the lease log, SQL_TAIL the rest and the JSON.
 *
 * CTEs: ev (the window's events in scope, read once through the
 * (project_id, at) index), crew_each/crew (the project-wide fast-response
 * baseline), presence (active/idle gaps), per (one row per annotator), tot,
 * labels, outc, vstats (per organization), hstats (per hour); then ab
 * (the hours whose annotations are rolled up), annc (annotations in the
 * window, in scope, per annotator and hour: rolled hours plus raw rows),
 * recent (for the ETA), pan/who (one
 * row per annotator), live (live leases from the log), counts/leased/queue,
 * span (all time; unscoped, its count is counts' sum of done_count, which
 * rises and falls with the annotations stored), done_w (tasks whose last
 * annotation is in the window), pres, eta.
 */
#define SQL_HEAD_RAW \
    " proj AS (SELECT id, org_id, lease_ttl_ms FROM projects WHERE id = $1::bigint)," \
    " ev AS (SELECT e.kind, e.at, e.annotator_id, u.org_id, e.label," \
    "   CASE WHEN e.kind = 'submit' THEN " TOT("e") " END AS tot" \
    "  FROM lease_events e JOIN users u ON u.id = e.annotator_id" \
    "  WHERE e.project_id = $1::bigint AND e.at >= " T0 " AND e.at < " T1 \
    "   AND " SCOPE("u", "e") " AND " GOLD_OUT("e") ")," \
    " crew_each AS (SELECT e.annotator_id, count(*) AS n," \
    "   percentile_cont(0.5) WITHIN GROUP (ORDER BY " TOT("e") ") AS med" \
    "  FROM lease_events e WHERE e.project_id = $1::bigint AND e.kind = 'submit'" \
    "   AND e.at >= " T0 " AND e.at < " T1 \
    "   AND (e.active_ms IS NOT NULL OR e.granted_at IS NOT NULL) AND " GOLD_OUT("e") \
    "  GROUP BY e.annotator_id)," \
    " crew AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY med) AS med, count(*) AS n" \
    "  FROM crew_each WHERE n >= $9::int)," \
    " gaps AS (SELECT annotator_id, extract(epoch FROM at - lag(at)" \
    "   OVER (PARTITION BY annotator_id ORDER BY at))::float8 * 1000 AS gap FROM ev)," \
    " presence AS (SELECT annotator_id," \
    "   coalesce(sum(gap) FILTER (WHERE gap <= $7::float8), 0) AS active_ms," \
    "   coalesce(sum(gap) FILTER (WHERE gap > $7::float8), 0) AS idle_ms," \
    "   count(*) FILTER (WHERE gap > $7::float8) AS idle_gaps" \
    "  FROM gaps GROUP BY annotator_id)," \
    " per AS (SELECT annotator_id, " STATS("tot") "," \
    "   count(*) FILTER (WHERE kind = 'grant') AS granted," \
    "   count(*) FILTER (WHERE kind = 'submit') AS submitted," \
    "   count(*) FILTER (WHERE kind = 'skip') AS skipped," \
    "   count(*) FILTER (WHERE kind = 'release') AS released," \
    "   count(*) FILTER (WHERE kind = 'expire') AS expired" \
    "  FROM ev GROUP BY annotator_id)," \
    " tot AS (SELECT " STATS("tot") " FROM ev)," \
    " labels AS (SELECT label, " STATS("tot") " FROM ev WHERE kind = 'submit'" \
    "  AND tot IS NOT NULL GROUP BY label)," \
    " outc AS (SELECT count(*) FILTER (WHERE kind = 'grant') AS granted," \
    "   count(*) FILTER (WHERE kind = 'submit') AS s, count(*) FILTER (WHERE kind = 'skip') AS k," \
    "   count(*) FILTER (WHERE kind = 'release') AS r," \
    "   count(*) FILTER (WHERE kind = 'expire') AS x," \
    "   count(*) FILTER (WHERE kind IN ('submit', 'skip', 'release', 'expire')) AS ended" \
    "  FROM ev)," \
    " vstats AS (SELECT org_id, " STATS("tot") " FROM ev GROUP BY org_id)," \
    " hstats AS (SELECT " HOUR_OF("at") " AS h, " STATS("tot") "," \
    "   count(DISTINCT annotator_id) AS annotators," \
    "   count(*) FILTER (WHERE kind = 'grant') AS granted," \
    "   count(*) FILTER (WHERE kind = 'expire') AS expired FROM ev GROUP BY 1),"

/* The whole hours of the window whose annotations come from the hourly
 * rollup (sql/0013_event_hours.sql): [ab.a0, ab.a1), from the first whole
 * hour to the last one rolled, none for the "events" source; the rest of
 * the window, [T0, a0) and [a1, T1), is read from annotations. */
#define ANN_BOUNDS \
    " ab AS MATERIALIZED (SELECT a0, CASE WHEN $13::text = 'events' THEN a0" \
    "   ELSE greatest(a0, least(to_timestamp(floor($5::bigint / 3600000.0) * 3600)," \
    "    coalesce((SELECT r.rolled_to FROM annotation_hours_rolled r" \
    "     WHERE r.project_id = $1::bigint), a0))) END AS a1" \
    "  FROM (SELECT CASE WHEN $13::text = 'events' THEN " T0 \
    "   ELSE to_timestamp(ceil($4::bigint / 3600000.0) * 3600) END AS a0) b),"
/* Raw annotations a of the window outside the rolled hours. */
#define ANN_RAW(a) \
    "((" a ".created_at >= " T0 " AND " a ".created_at < ab.a0)" \
    " OR (" a ".created_at >= ab.a1 AND " a ".created_at < " T1 "))"

/* The crew's working time in the window (sql_work.h), from the window's
 * annotations in scope: for the "events" source only (a long window would
 * sort months of annotations; its working time is NULL); and the pace: the
 * annotations in scope of the last $14 ms up to the latest one, read with
 * the idle threshold before them so the first one's gap is known, and the
 * ETA it gives. $7 is the idle threshold. */
#define WORK_AND_PACE \
    " wg AS (SELECT " QR_SQL_GAP_MS("a.created_at") " AS gap" \
    "  FROM annotations a JOIN users u ON u.id = a.annotator_id" \
    "  WHERE $13::text = 'events' AND a.project_id = $1::bigint" \
    "   AND a.created_at >= " T0 " AND a.created_at < " T1 " AND " SCOPE("u", "a") \
    "   AND " GOLD_OUT("a") ")," \
    " wk AS (SELECT CASE WHEN $13::text = 'events' THEN " QR_SQL_WORK_MS("gap", "$7::float8") \
    "   END AS ms, count(*) AS n FROM wg)," \
    " pg AS (SELECT a.created_at AS at, " QR_SQL_GAP_MS("a.created_at") " AS gap" \
    "  FROM span, annotations a JOIN users u ON u.id = a.annotator_id" \
    "  WHERE a.project_id = $1::bigint AND a.created_at <= span.last" \
    "   AND a.created_at > span.last - ($14::bigint + $7::bigint) * interval '1 millisecond'" \
    "   AND " SCOPE("u", "a") " AND " GOLD_OUT("a") ")," \
    " pace0 AS (SELECT count(*) AS n, " QR_SQL_WORK_MS("gap", "$7::float8") " AS ms" \
    "  FROM pg, span WHERE pg.at > span.last - $14::bigint * interval '1 millisecond')," \
    " pace AS (SELECT pace0.*, CASE WHEN queue.remaining = 0 THEN 0 WHEN pace0.ms > 0" \
    "   THEN round(queue.remaining * pace0.ms / pace0.n / 1000) END AS s FROM pace0, queue)"

#define SQL_TAIL(DONE_W) \
    ANN_BOUNDS \
    " annc AS (SELECT h.annotator_id, h.hour AS h, h.annotations::bigint AS n" \
    "  FROM ab, annotation_hours h JOIN users u ON u.id = h.annotator_id" \
    "  WHERE h.project_id = $1::bigint AND h.hour >= ab.a0 AND h.hour < ab.a1" \
    "   AND h.annotations <> 0 AND " SCOPE("u", "h") \
    "  UNION ALL SELECT a.annotator_id, date_trunc('hour', a.created_at, 'UTC'), count(*)" \
    "  FROM ab, annotations a JOIN users u ON u.id = a.annotator_id" \
    "  WHERE a.project_id = $1::bigint AND " ANN_RAW("a") " AND " SCOPE("u", "a") \
    "   AND " GOLD_OUT("a") " GROUP BY 1, 2)," \
    " recent AS (SELECT count(*) AS n FROM annotations a JOIN users u ON u.id = a.annotator_id" \
    "  WHERE a.project_id = $1::bigint AND a.created_at < " NOW \
    "   AND a.created_at >= to_timestamp(($6::bigint - $11::bigint) / 1000.0)" \
    "   AND " SCOPE("u", "a") " AND " GOLD_OUT("a") ")," \
    " pan AS (SELECT annotator_id, sum(n) AS n FROM annc GROUP BY annotator_id)," \
    " who AS (SELECT w.annotator_id, u.name, u.org_id, o.name AS org," \
    "   coalesce(pan.n, 0) AS annotations, coalesce(per.n, 0) AS n, per.med, per.p90, per.mean," \
    "   coalesce(per.granted, 0) AS granted, coalesce(per.submitted, 0) AS submitted," \
    "   coalesce(per.skipped, 0) AS skipped, coalesce(per.released, 0) AS released," \
    "   coalesce(per.expired, 0) AS expired," \
    "   coalesce(per.submitted + per.skipped + per.released + per.expired, 0) AS ended," \
    "   coalesce(pr.active_ms, 0) AS active_ms, coalesce(pr.idle_ms, 0) AS idle_ms," \
    "   coalesce(pr.idle_gaps, 0) AS idle_gaps," \
    "   (per.n >= $9::int AND per.med < $10::float8 * crew.med) IS TRUE AS fast" \
    "  FROM (SELECT annotator_id FROM per UNION SELECT annotator_id FROM pan) w" \
    "  JOIN users u ON u.id = w.annotator_id JOIN organizations o ON o.id = u.org_id" \
    "  LEFT JOIN per ON per.annotator_id = w.annotator_id" \
    "  LEFT JOIN pan ON pan.annotator_id = w.annotator_id" \
    "  LEFT JOIN presence pr ON pr.annotator_id = w.annotator_id CROSS JOIN crew)," \
    " live AS (SELECT e.token, min(e.task_id) AS task_id FROM lease_events e" \
    "  WHERE e.project_id = $1::bigint AND e.at <= " NOW \
    "   AND e.at > " NOW " - (SELECT lease_ttl_ms FROM proj) * interval '1 millisecond'" \
    "  GROUP BY e.token HAVING bool_and(e.kind IN ('grant', 'heartbeat')))," \
    " counts AS (SELECT count(*) AS tasks," \
    "   count(*) FILTER (WHERE state = 'complete' AND auto_accept IS DISTINCT FROM 'accepted')" \
    "    AS complete," \
    "   count(*) FILTER (WHERE auto_accept = 'accepted') AS accepted," \
    "   (SELECT count(*) FROM reviews WHERE project_id = $1::bigint AND state = 'done')" \
    "    AS reviewed," \
    "   count(*) FILTER (WHERE state <> 'complete' AND done_count > 0) AS partial," \
    "   coalesce(sum(required - done_count) FILTER (WHERE state <> 'complete'), 0) AS remaining," \
    "   coalesce(sum(done_count), 0) AS annotations" \
    "  FROM tasks WHERE project_id = $1::bigint AND NOT control)," \
    " span AS MATERIALIZED (SELECT CASE WHEN $2::bigint = 0 AND $3::bigint = 0" \
    "    THEN (SELECT annotations FROM counts)" \
    "    ELSE (SELECT coalesce(sum(c.n), 0) FROM (SELECT annotator_id, count(*) AS n" \
    "     FROM annotations a WHERE a.project_id = $1::bigint AND " GOLD_OUT("a") \
    "     GROUP BY annotator_id) c" \
    "     JOIN users u ON u.id = c.annotator_id WHERE " SCOPE("u", "c") ") END AS n," \
    "   (SELECT a.created_at FROM annotations a JOIN users u ON u.id = a.annotator_id" \
    "    WHERE a.project_id = $1::bigint AND " SCOPE("u", "a") " AND " GOLD_OUT("a") \
    "    ORDER BY a.created_at LIMIT 1) AS first," \
    "   (SELECT a.created_at FROM annotations a JOIN users u ON u.id = a.annotator_id" \
    "    WHERE a.project_id = $1::bigint AND " SCOPE("u", "a") " AND " GOLD_OUT("a") \
    "    ORDER BY a.created_at DESC LIMIT 1) AS last)," \
    " leased AS (SELECT count(*) AS n FROM tasks t WHERE t.id IN (SELECT task_id FROM live)" \
    "  AND t.project_id = $1::bigint AND t.state <> 'complete' AND t.done_count = 0)," \
    " queue AS (SELECT c.tasks, c.complete - c.reviewed AS complete, c.reviewed, c.accepted," \
    "   c.partial + l.n AS in_progress," \
    "   c.tasks - c.complete - c.accepted - c.partial - l.n AS waiting, c.remaining" \
    "  FROM counts c, leased l)," \
    DONE_W \
    " pres AS (SELECT coalesce(sum(active_ms), 0) AS a, coalesce(sum(idle_ms), 0) AS i," \
    "   coalesce(sum(idle_gaps), 0) AS g FROM presence)," \
    " eta AS (SELECT CASE WHEN queue.remaining = 0 THEN 0 WHEN recent.n > 0" \
    "   THEN round(queue.remaining * ($11::bigint / 1000.0) / recent.n) END AS s" \
    "  FROM queue, recent)," \
    WORK_AND_PACE \
    " SELECT json_build_object(" \
    "  'project', proj.id, 'project_org_id', proj.org_id," \
    "  'organization_id', nullif($2::bigint, 0)," \
    "  'annotator_id', nullif($3::bigint, 0), 'by', $8::text, 'now_ms', $6::bigint," \
    "  'window', json_build_object('spec', $12::text, 'from', " ISO_MS("$4::bigint") "," \
    "   'to', " ISO_MS("$5::bigint") ", 'from_ms', $4::bigint, 'to_ms', $5::bigint," \
    "   'hours', round(" HOURS ", 4), 'source', $13::text)," \
    "  'totals', json_build_object(" \
    "   'annotations', (SELECT coalesce(sum(n), 0) FROM annc)," \
    "   'annotations_per_hour', round((SELECT coalesce(sum(n), 0) FROM annc) / " HOURS ", 2)," \
    "   'annotations_all_time', span.n," \
    "   'annotations_per_hour_all_time', CASE WHEN span.last > span.first THEN round(span.n" \
    "     / (extract(epoch FROM span.last - span.first) / 3600), 2) END," \
    "   'first_annotation_at', " ISO("span.first") ", 'last_annotation_at', " ISO("span.last") "," \
    "   'annotators', (SELECT count(*) FROM who)," \
    "   'working_ms', round(wk.ms)::bigint, 'annotations_per_working_hour', CASE WHEN wk.ms > 0" \
    "    THEN round((wk.n * 3600000 / wk.ms)::numeric, 2) END," \
    "   'tasks_completed', queue.complete + queue.reviewed," \
    "   'tasks_completed_in_window', done_w.n," \
    "   'leases_granted', outc.granted)," \
    "  'time_on_task', json_build_object('n', tot.n, 'median_ms', " R1("tot.med") "," \
    "   'p90_ms', " R1("tot.p90") ", 'mean_ms', " R1("tot.mean") "," \
    "   'by_label', (SELECT coalesce(json_agg(json_build_object('label', l.label, 'n', l.n," \
    "     'median_ms', " R1("l.med") ", 'p90_ms', " R1("l.p90") ", 'mean_ms', " R1("l.mean") ")" \
    "     ORDER BY l.label), '[]'::json) FROM labels l))," \
    "  'activity', json_build_object('idle_gap_ms', $7::float8::bigint," \
    "   'active_ms', round(pres.a)::bigint, 'idle_ms', round(pres.i)::bigint," \
    "   'idle_gaps', pres.g, 'utilisation', " SHARE("pres.a", "(pres.a + pres.i)") ")," \
    "  'outcomes', json_build_object('ended', outc.ended, 'submitted', outc.s," \
    "   'skipped', outc.k, 'released', outc.r, 'expired', outc.x," \
    "   'submitted_share', " SHARE("outc.s", "outc.ended") "," \
    "   'skipped_share', " SHARE("outc.k", "outc.ended") "," \
    "   'released_share', " SHARE("outc.r", "outc.ended") "," \
    "   'expired_share', " SHARE("outc.x", "outc.ended") ")," \
    "  'queue', json_build_object('tasks', queue.tasks, 'waiting', queue.waiting," \
    "   'in_progress', queue.in_progress, 'complete', queue.complete," \
    "   'auto_accepted', queue.accepted, 'reviewed', queue.reviewed," \
    "   'ready_window', NULL, 'leases_live', (SELECT count(*) FROM live)," \
    "   'annotations_remaining', queue.remaining)," \
    "  'eta', json_build_object('annotations_remaining', queue.remaining," \
    "   'rate_window_ms', $11::bigint, 'annotations_in_rate_window', recent.n," \
    "   'rate_per_hour', round(recent.n / ($11::bigint / 3600000.0), 2)," \
    "   'seconds', eta.s, 'at', " ISO(NOW " + eta.s * interval '1 second'") "," \
    "   'pace', json_build_object('span_ms', $14::bigint, 'annotations', pace.n," \
    "    'working_ms', round(pace.ms)::bigint, 'per_hour', CASE WHEN pace.ms > 0" \
    "     THEN round((pace.n * 3600000 / pace.ms)::numeric, 2) END," \
    "    'seconds', pace.s, 'at', " ISO(NOW " + pace.s * interval '1 second'") "," \
    "    'last_annotation_at', " ISO("span.last") "," \
    "    'last_annotation_ms', (extract(epoch FROM span.last) * 1000)::bigint))," \
    "  'fast_response', json_build_object('min_annotations', $9::int, 'ratio', $10::float8," \
    "   'crew_median_ms', " R1("crew.med") ", 'crew_annotators', crew.n," \
    "   'flagged', (SELECT coalesce(json_agg(json_build_object('annotator_id', w.annotator_id," \
    "     'annotator', w.name, 'organization_id', w.org_id, 'organization', w.org," \
    "     'median_ms', " R1("w.med") "," \
    "     'n', w.n) ORDER BY w.name, w.annotator_id), '[]'::json) FROM who w WHERE w.fast))," \
    "  'rows', CASE $8::text" \
    "   WHEN 'vendor' THEN (" SQL_ROWS_VENDOR ")" \
    "   WHEN 'hour' THEN (" SQL_ROWS_HOUR ")" \
    "   ELSE (" SQL_ROWS_ANNOTATOR ") END" \
    " )::text" \
    " FROM proj, span, tot, outc, queue, recent, eta, crew, done_w, pres, wk, pace"


/* Time on task histogram: bucket b holds values v with
 * floor(ln(v) * HB_K) = b, that is HB_PER_DOUBLING buckets per doubling
 * (v <= 0: bucket -1); a bucket is reported at its geometric middle. */
#define HB_K "23.083120654223414" /* 16 / ln 2 */
#define BREP(b) "(CASE WHEN (" b ") < 0 THEN 0 ELSE exp(((" b ") + 0.5) / " HB_K ") END)"
/* n, med, p90 (nearest rank on the histogram, at percentile_cont's rank
 * p * (n - 1) + 1) and mean (exact) per `keys` of the histogram rows (b, n
 * values, sum s) of `src` matching `where`. */
#define HSTATS(keys, src, where) \
    "SELECT " keys ", sum(n)::bigint AS n," \
    " " BREP("min(b) FILTER (WHERE cum >= 0.5 * (cnt - 1) + 1)") " AS med," \
    " " BREP("min(b) FILTER (WHERE cum >= 0.9 * (cnt - 1) + 1)") " AS p90," \
    " sum(s)::float8 / nullif(sum(n), 0) AS mean" \
    " FROM (SELECT " keys ", b, n, s, sum(n) OVER (PARTITION BY " keys " ORDER BY b) AS cum," \
    "   sum(n) OVER (PARTITION BY " keys ") AS cnt" \
    "  FROM (SELECT " keys ", b, sum(n) AS n, sum(s) AS s FROM " src " WHERE " where \
    "   GROUP BY " keys ", b) h) c" \
    " GROUP BY " keys

/*
 * The same figures from the rollups, for the window cut into tiers: its
 * whole hours from the per-hour rollup (sql/0013_event_hours.sql) when the
 * source is "hourly" (the idle threshold is the default, which the hour
 * rows' inner activity assumes), the whole minutes outside those hours from
 * the per-minute rollup (sql/0008_event_minutes.sql), and the partial
 * minutes at the two edges from lease_events; with the source "rollup" the
 * hour range is empty and every whole minute comes from the minute rollup.
 * Each tier gives one row per annotator and segment (hour, minute) in mm:
 * counts, first and last event, the activity inside the segment (for a
 * minute, last - first: every gap inside a minute is under the threshold,
 * which is then at least a minute; for an hour, the row's active and idle
 * time), and the times on task, as values (tms, tlab: minutes and edges) or
 * as histogram entries (hl, hb, hn, hs: hours). Counts, means and activity
 * are exact; medians and p90 come from the histogram above. CTEs: mm, mmu
 * (with organization and scope), evm (in scope), tv (histogram rows per
 * annotator, organization and label), ann (per annotator, project-wide: per
 * and the crew baseline), then the CTEs of SQL_HEAD_RAW under the same names.
 */
/* The first and the end of the window's whole minutes. */
#define M0 "to_timestamp(ceil($4::bigint / 60000.0) * 60)"
#define M1 "to_timestamp(floor($5::bigint / 60000.0) * 60)"
/* The first and the end of the whole hours read from the hour rollup: none
 * (an empty range at M0) unless the source is "hourly". A window longer
 * than QR_ANALYTICS_EXACT_MAX_MS always holds a whole hour. */
#define H0 \
    "(CASE WHEN $13::text = 'hourly' THEN to_timestamp(ceil($4::bigint / 3600000.0) * 3600)" \
    " ELSE " M0 " END)"
#define H1 \
    "(CASE WHEN $13::text = 'hourly' THEN to_timestamp(floor($5::bigint / 3600000.0) * 3600)" \
    " ELSE " M0 " END)"
/* A time on task's histogram bucket (as sql/0013_event_hours.sql and
 * broker/store/events.c compute it). */
#define BUCKET(v) "CASE WHEN " v " <= 0 THEN -1 ELSE floor(ln(" v ") * " HB_K ")::int END"
#define MS(iv) "(extract(epoch FROM " iv ")::float8 * 1000)"
/* Segments of the minute rollup, r a lease_event_minutes row. */
#define MINUTE_SEG \
    " SELECT r.annotator_id, r.minute, r.granted, r.submitted, r.skipped, r.released," \
    "   r.expired, r.first_at, r.last_at, " MS("r.last_at - r.first_at") ", 0::float8, 0" \
    "  FROM lease_event_minutes r WHERE r.project_id = $1::bigint"
/* Times on task of minute rows, one row per value. */
#define MINUTE_TOT \
    " SELECT annotator_id, minute, label, " BUCKET("v") ", 1::bigint, v::bigint" \
    "  FROM (SELECT r.annotator_id, r.minute, unnest(r.tot_label) AS label," \
    "    unnest(r.tot_ms) AS v FROM lease_event_minutes r WHERE r.project_id = $1::bigint"
/* The histogram entries of the window (annotator, segment start, label,
 * bucket b, count n, sum s), read where they are: the hour rows'
 * histograms, the minute rows' values, the edges' events. A subquery, not
 * a CTE: it runs once for tv and, for by=hour only, once more for tvh,
 * without storing its rows. */
#define HSRC \
    "(SELECT r.annotator_id, r.hour AS seg, unnest(r.tot_label) AS label," \
    "   unnest(r.tot_bucket) AS b, unnest(r.tot_n)::bigint AS n, unnest(r.tot_sum) AS s" \
    "  FROM lease_event_hours r WHERE r.project_id = $1::bigint" \
    "   AND r.hour >= " H0 " AND r.hour < " H1 \
    "  UNION ALL" MINUTE_TOT " AND r.minute >= " M0 " AND r.minute < " H0 ") x" \
    "  UNION ALL" MINUTE_TOT " AND r.minute >= " H1 " AND r.minute < " M1 ") x" \
    "  UNION ALL SELECT annotator_id, at, label, " BUCKET("tot") ", 1, tot FROM edge" \
    "   WHERE tot IS NOT NULL) z"
#define SQL_HEAD_ROLLUP \
    " proj AS (SELECT id, org_id, lease_ttl_ms FROM projects WHERE id = $1::bigint)," \
    " edge AS (SELECT e.annotator_id, e.at, e.kind, e.label, CASE WHEN e.kind = 'submit'" \
    "   THEN greatest(0, least(round(" TOT("e") "), 2147483647))::integer END AS tot" \
    "  FROM lease_events e WHERE e.project_id = $1::bigint AND " GOLD_OUT("e") \
    "   AND ((e.at >= " T0 " AND e.at < " M0 ") OR (e.at >= " M1 " AND e.at < " T1 ")))," \
    " mm AS (SELECT r.annotator_id, r.hour AS minute, r.granted, r.submitted, r.skipped," \
    "   r.released, r.expired, r.first_at, r.last_at, r.active_ms AS ia, r.idle_ms AS ii," \
    "   r.idle_gaps AS ig" \
    "  FROM lease_event_hours r WHERE r.project_id = $1::bigint" \
    "   AND r.hour >= " H0 " AND r.hour < " H1 \
    "  UNION ALL" MINUTE_SEG " AND r.minute >= " M0 " AND r.minute < " H0 \
    "  UNION ALL" MINUTE_SEG " AND r.minute >= " H1 " AND r.minute < " M1 \
    "  UNION ALL SELECT annotator_id, date_trunc('minute', at)," \
    "   count(*) FILTER (WHERE kind = 'grant'), count(*) FILTER (WHERE kind = 'submit')," \
    "   count(*) FILTER (WHERE kind = 'skip'), count(*) FILTER (WHERE kind = 'release')," \
    "   count(*) FILTER (WHERE kind = 'expire'), min(at), max(at)," \
    "   " MS("max(at) - min(at)") ", 0::float8, 0" \
    "  FROM edge GROUP BY 1, 2)," \
    " mmu AS (SELECT mm.*, u.org_id, " SCOPE("u", "mm") " AS inscope" \
    "  FROM mm JOIN users u ON u.id = mm.annotator_id)," \
    " evm AS (SELECT annotator_id, minute, granted, submitted, skipped, released, expired," \
    "   first_at, last_at, ia, ii, ig, " HOUR_OF("minute") " AS hour FROM mmu WHERE inscope)," \
    " tv AS (SELECT h.annotator_id, u.org_id, " SCOPE("u", "h") " AS inscope, h.label, h.b," \
    "   h.n, h.s" \
    "  FROM (SELECT annotator_id, label, b, sum(n) AS n, sum(s) AS s FROM " HSRC \
    "   GROUP BY 1, 2, 3) h JOIN users u ON u.id = h.annotator_id)," \
    " ann AS (" HSTATS("annotator_id", "tv", "true") ")," \
    " crew AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY med) AS med, count(*) AS n" \
    "  FROM ann WHERE n >= $9::int)," \
    " gaps AS (SELECT annotator_id, " MS("first_at - lag(last_at) OVER (PARTITION BY annotator_id" \
    "   ORDER BY minute)") " AS gap, ia, ii, ig FROM evm)," \
    " presence AS (SELECT annotator_id," \
    "   coalesce(sum(gap) FILTER (WHERE gap <= $7::float8), 0) + sum(ia) AS active_ms," \
    "   coalesce(sum(gap) FILTER (WHERE gap > $7::float8), 0) + sum(ii) AS idle_ms," \
    "   count(*) FILTER (WHERE gap > $7::float8) + sum(ig) AS idle_gaps" \
    "  FROM gaps GROUP BY annotator_id)," \
    " per AS (SELECT c.annotator_id, coalesce(a.n, 0) AS n, a.med, a.p90, a.mean, c.granted," \
    "   c.submitted, c.skipped, c.released, c.expired" \
    "  FROM (SELECT annotator_id, sum(granted) AS granted, sum(submitted) AS submitted," \
    "    sum(skipped) AS skipped, sum(released) AS released, sum(expired) AS expired" \
    "   FROM evm GROUP BY annotator_id) c LEFT JOIN ann a ON a.annotator_id = c.annotator_id)," \
    " tot AS (SELECT coalesce(t.n, 0) AS n, t.med, t.p90, t.mean" \
    "  FROM (SELECT 1) one LEFT JOIN (" HSTATS("z", "(SELECT 0 AS z, * FROM tv) tz", "inscope") ") t" \
    "  ON true)," \
    " labels AS (" HSTATS("label", "tv", "inscope") ")," \
    " outc AS (SELECT coalesce(sum(granted), 0) AS granted, coalesce(sum(submitted), 0) AS s," \
    "   coalesce(sum(skipped), 0) AS k, coalesce(sum(released), 0) AS r," \
    "   coalesce(sum(expired), 0) AS x," \
    "   coalesce(sum(submitted + skipped + released + expired), 0) AS ended FROM evm)," \
    " vstats AS MATERIALIZED (" HSTATS("org_id", "tv", "inscope") ")," \
    " tvh AS (SELECT " HOUR_OF("z.seg") " AS hour, z.b, sum(z.n) AS n, sum(z.s) AS s" \
    "  FROM " HSRC " JOIN users u ON u.id = z.annotator_id WHERE " SCOPE("u", "z") \
    "  GROUP BY 1, 2)," \
    " hstats AS MATERIALIZED (SELECT c.h, coalesce(s.n, 0) AS n, s.med, s.p90, s.mean," \
    "   c.annotators," \
    "   c.granted, c.expired" \
    "  FROM (SELECT hour AS h, count(DISTINCT annotator_id) AS annotators," \
    "    sum(granted) AS granted, sum(expired) AS expired FROM evm GROUP BY hour) c" \
    "  LEFT JOIN (" HSTATS("hour", "tvh", "true") ") s ON s.hour = c.h),"

/* Tasks completed in the window (project-wide): complete tasks whose last
 * annotation is in it. Raw: through the window's annotations. */
#define DONE_W_RAW \
    " done_w AS (SELECT count(*) AS n FROM (SELECT DISTINCT a.task_id FROM annotations a" \
    "   WHERE a.project_id = $1::bigint AND a.created_at >= " T0 " AND a.created_at < " T1 ") w" \
    "  JOIN tasks t ON t.id = w.task_id AND t.state = 'complete'" \
    "  WHERE NOT EXISTS (SELECT 1 FROM annotations b WHERE b.project_id = $1::bigint" \
    "   AND b.created_at >= " T1 " AND b.task_id = w.task_id)),"
/* With the rollups: the rolled hours' counts, plus the raw pieces, each
 * task counted in the piece holding its last annotation (none later than
 * the piece's end, wb). The pieces are short (under an hour each): one
 * look-up per task through the indexes, as subplans, which the planner
 * cannot turn into a hash join over every annotation of the project. */
#define DONE_W_ROLLUP \
    " done_w AS (SELECT (SELECT coalesce(sum(h.tasks_completed), 0) FROM ab, annotation_hours h" \
    "   WHERE h.project_id = $1::bigint AND h.hour >= ab.a0 AND h.hour < ab.a1)" \
    "  + (SELECT count(*) FROM (SELECT DISTINCT a.task_id," \
    "     CASE WHEN a.created_at < ab.a0 THEN ab.a0 ELSE " T1 " END AS wb" \
    "    FROM ab, annotations a WHERE a.project_id = $1::bigint AND " ANN_RAW("a") ") w" \
    "   WHERE (SELECT t.state FROM tasks t WHERE t.id = w.task_id) = 'complete'" \
    "    AND (SELECT max(b.created_at) FROM annotations b WHERE b.task_id = w.task_id)" \
    "     < w.wb) AS n),"

#define SQL_THROUGHPUT "WITH" SQL_HEAD_RAW SQL_TAIL(DONE_W_RAW)
#define SQL_THROUGHPUT_ROLLUP "WITH" SQL_HEAD_ROLLUP SQL_TAIL(DONE_W_ROLLUP)

/* by=annotator: one row per annotator of `who`, by name. */
#define SQL_ROWS_ANNOTATOR \
    "SELECT coalesce(json_agg(json_build_object('annotator_id', w.annotator_id," \
    " 'annotator', w.name, 'organization_id', w.org_id, 'organization', w.org," \
    " 'annotations', w.annotations, 'annotations_per_hour', round(w.annotations / " HOURS ", 2)," \
    " 'time_on_task', " STATS_JSON("w") "," \
    " 'active_ms', round(w.active_ms)::bigint, 'idle_ms', round(w.idle_ms)::bigint," \
    " 'idle_gaps', w.idle_gaps," \
    " 'utilisation', " SHARE("w.active_ms", "(w.active_ms + w.idle_ms)") "," \
    " 'leases', " \
    LEASES_JSON("w.granted", "w.submitted", "w.skipped", "w.released", "w.expired") "," \
    " 'expiry_rate', " SHARE("w.expired", "w.ended") ", 'fast_response', w.fast)" \
    " ORDER BY w.name, w.annotator_id), '[]'::json) FROM who w"

/* by=vendor: `who` summed per organization; time on task over its events. */
#define SQL_ROWS_VENDOR \
    "SELECT coalesce(json_agg(json_build_object('organization_id', g.org_id," \
    " 'organization', g.org, 'annotators', g.annotators, 'annotations', g.annotations," \
    " 'annotations_per_hour', round(g.annotations / " HOURS ", 2)," \
    " 'time_on_task', " STATS_JSON("v") "," \
    " 'active_ms', round(g.active_ms)::bigint, 'idle_ms', round(g.idle_ms)::bigint," \
    " 'utilisation', " SHARE("g.active_ms", "(g.active_ms + g.idle_ms)") "," \
    " 'leases', " \
    LEASES_JSON("g.granted", "g.submitted", "g.skipped", "g.released", "g.expired") "," \
    " 'expiry_rate', " SHARE("g.expired", "g.ended") ", 'fast_response_flagged', g.fast)" \
    " ORDER BY g.org, g.org_id), '[]'::json)" \
    " FROM (SELECT org_id, org, count(*) AS annotators, sum(annotations) AS annotations," \
    "   sum(active_ms) AS active_ms, sum(idle_ms) AS idle_ms, sum(granted) AS granted," \
    "   sum(submitted) AS submitted, sum(skipped) AS skipped, sum(released) AS released," \
    "   sum(expired) AS expired, sum(ended) AS ended, count(*) FILTER (WHERE fast) AS fast" \
    "  FROM who GROUP BY org_id, org) g" \
    " LEFT JOIN vstats v ON v.org_id = g.org_id"

/* by=hour: every UTC hour overlapping the window, empty ones included. */
#define SQL_ROWS_HOUR \
    "SELECT coalesce(json_agg(json_build_object('hour', " ISO_MS("h.h") ", 'hour_ms', h.h," \
    " 'annotations', coalesce(a.n, 0), 'time_on_task', " STATS_JSON("e") "," \
    " 'annotators_active', coalesce(e.annotators, 0)," \
    " 'leases_granted', coalesce(e.granted, 0), 'leases_expired', coalesce(e.expired, 0))" \
    " ORDER BY h.h), '[]'::json)" \
    " FROM generate_series(floor($4::bigint / 3600000.0)::bigint * 3600000, $5::bigint - 1," \
    "   3600000::bigint) AS h(h)" \
    " LEFT JOIN (SELECT " HOUR_OF("h") " AS h, sum(n) AS n FROM annc GROUP BY 1) a" \
    "  ON a.h = h.h" \
    " LEFT JOIN hstats e ON e.h = h.h"

/* Per project: waiting, in progress and complete tasks (the auto-accepted
 * and reviewed apart), annotations remaining, annotations stored,
 * auto-accepted tasks, reviewed tasks (a decided review, sql/0031). */
#define SQL_QUEUE \
    "SELECT p.id, coalesce(t.waiting, 0), coalesce(t.in_progress, 0), coalesce(t.complete, 0)," \
    " coalesce(t.remaining, 0), coalesce(a.n, 0), coalesce(t.accepted, 0), coalesce(rv.n, 0)" \
    " FROM projects p" \
    " LEFT JOIN (SELECT project_id," \
    "   count(*) FILTER (WHERE state <> 'complete' AND done_count = 0) AS waiting," \
    "   count(*) FILTER (WHERE state <> 'complete' AND done_count > 0) AS in_progress," \
    "   count(*) FILTER (WHERE state = 'complete' AND auto_accept IS DISTINCT FROM 'accepted')" \
    "    AS complete," \
    "   count(*) FILTER (WHERE auto_accept = 'accepted') AS accepted," \
    "   sum(required - done_count) FILTER (WHERE state <> 'complete') AS remaining" \
    "  FROM tasks WHERE NOT control GROUP BY project_id) t ON t.project_id = p.id" \
    " LEFT JOIN (SELECT project_id, count(*) AS n FROM annotations GROUP BY project_id) a" \
    "  ON a.project_id = p.id" \
    " LEFT JOIN (SELECT project_id, count(*) AS n FROM reviews WHERE state = 'done'" \
    "  GROUP BY project_id) rv ON rv.project_id = p.id" \
    " ORDER BY p.id"

// clang-format on

#endif
