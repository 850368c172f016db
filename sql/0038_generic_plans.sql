-- 0038_generic_plans.sql - the commit path's statements planned once per
-- session, not on every call (issue 18).
--
-- Measured (tests/bench/pg_commit_bench.sh, pg_stat_statements with
-- track_planning): PL/pgSQL caches the plans of quorum_submit_batch's
-- statements per session, but with plan_cache_mode auto each of them kept a
-- custom plan (its array parameters make the generic plan's estimate look
-- dearer), so every call planned them all again: about 2.6 ms of planning
-- per call. The lease log's INSERT (broker/store/events.c) is a prepared
-- statement of one large WITH query and was planned again on every call
-- for the same reason: about 7 ms per call. Their plans do not depend on
-- the values bound: every row arrives through unnest of an array, and each
-- table is reached by its key, so one generic plan serves all calls.
--
-- quorum_submit_batch keeps its body (sql/0034_overlap_confidence.sql) and
-- only gets the setting. The lease log's statement moves, unchanged, into
-- quorum_lease_events_add (its ten arrays as before, read as $1 to $10),
-- which events.c calls: a function's SET applies to the statements it
-- runs, where a prepared statement has no setting of its own.

ALTER FUNCTION quorum_submit_batch(bigint[], bigint[], bigint[], text[], bigint[], text[],
                                   integer[], bigint[], bigint[])
    SET plan_cache_mode = force_generic_plan;

-- A batch of lease events: lease_events, and merged into the per-minute and
-- per-hour rollups in the same statement (as events.c describes). The
-- arrays, one element per event: project, at (ms), kind, task, annotator,
-- fencing token, granted (ms), active ms, label, reason. Two constants
-- must agree with broker/reports/analytics.c: 300000, the idle gap (ms,
-- QR_ANALYTICS_IDLE_GAP_MS), and the time-on-task histogram's bucket,
-- floor(ln(ms) * 23.083120654223414).
CREATE FUNCTION quorum_lease_events_add(bigint[], bigint[], text[], bigint[], bigint[],
                                        bigint[], bigint[], integer[], text[], text[])
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    WITH e AS (SELECT p, to_timestamp(a / 1000.0) AS at, k, t, u, f,
       to_timestamp(g / 1000.0) AS g, m, l, r,
       CASE WHEN k = 'submit' THEN greatest(0, least(coalesce(m::bigint, a - g),
         2147483647))::integer END AS tot
      FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
       $6::bigint[], $7::bigint[], $8::int[], $9::text[], $10::text[])
       AS x(p, a, k, t, u, f, g, m, l, r)),
     ins AS (INSERT INTO lease_events (project_id, at, kind, task_id, annotator_id, token,
       granted_at, active_ms, label, reason) SELECT p, at, k, t, u, f, g, m, l, r FROM e),
     er AS (SELECT * FROM e WHERE e.t IS NULL OR e.t NOT IN (SELECT ct.id FROM tasks ct
       WHERE ct.control AND ct.project_id IN (SELECT DISTINCT p FROM e))),
     mins AS (INSERT INTO lease_event_minutes AS o (project_id, minute, annotator_id, granted,
      heartbeats, submitted, skipped, released, expired, first_at, last_at, tot_ms, tot_label)
     SELECT p, date_trunc('minute', at), u, count(*) FILTER (WHERE k = 'grant'),
      count(*) FILTER (WHERE k = 'heartbeat'), count(*) FILTER (WHERE k = 'submit'),
      count(*) FILTER (WHERE k = 'skip'), count(*) FILTER (WHERE k = 'release'),
      count(*) FILTER (WHERE k = 'expire'), min(at), max(at),
      coalesce(array_agg(tot) FILTER (WHERE tot IS NOT NULL), '{}'),
      coalesce(array_agg(l) FILTER (WHERE tot IS NOT NULL), '{}')
     FROM er GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
     ON CONFLICT (project_id, minute, annotator_id) DO UPDATE SET
      granted = o.granted + excluded.granted, heartbeats = o.heartbeats + excluded.heartbeats,
      submitted = o.submitted + excluded.submitted, skipped = o.skipped + excluded.skipped,
      released = o.released + excluded.released, expired = o.expired + excluded.expired,
      first_at = least(o.first_at, excluded.first_at),
      last_at = greatest(o.last_at, excluded.last_at),
      tot_ms = o.tot_ms || excluded.tot_ms, tot_label = o.tot_label || excluded.tot_label
      RETURNING o.project_id, o.annotator_id, o.minute, o.first_at, o.last_at),
     eh AS (SELECT p, u, date_trunc('hour', at, 'UTC') AS h, at, k, l, tot,
       (extract(epoch FROM at - lag(at) OVER (PARTITION BY p, u, date_trunc('hour', at, 'UTC') ORDER BY at))::float8 * 1000) AS gap
      FROM er),
     hh AS (SELECT p, h, u, count(*) FILTER (WHERE k = 'grant') AS granted,
       count(*) FILTER (WHERE k = 'heartbeat') AS heartbeats,
       count(*) FILTER (WHERE k = 'submit') AS submitted,
       count(*) FILTER (WHERE k = 'skip') AS skipped,
       count(*) FILTER (WHERE k = 'release') AS released,
       count(*) FILTER (WHERE k = 'expire') AS expired, min(at) AS first_at, max(at) AS last_at,
       coalesce(sum(gap) FILTER (WHERE gap <= 300000), 0) AS active_ms,
       coalesce(sum(gap) FILTER (WHERE gap > 300000), 0) AS idle_ms,
       count(*) FILTER (WHERE gap > 300000) AS idle_gaps
      FROM eh GROUP BY p, h, u),
     hg AS (SELECT p, h, u, array_agg(l ORDER BY l, b) AS l, array_agg(b ORDER BY l, b) AS b,
       array_agg(n ORDER BY l, b) AS n, array_agg(s ORDER BY l, b) AS s
      FROM (SELECT p, h, u, l, CASE WHEN tot <= 0 THEN -1 ELSE floor(ln(tot) * 23.083120654223414)::int END AS b, count(*)::integer AS n,
        sum(tot)::bigint AS s FROM eh WHERE tot IS NOT NULL GROUP BY 1, 2, 3, 4, 5) z
      GROUP BY p, h, u)
     INSERT INTO lease_event_hours AS o (project_id, hour, annotator_id, granted, heartbeats,
      submitted, skipped, released, expired, first_at, last_at, active_ms, idle_ms, idle_gaps,
      tot_label, tot_bucket, tot_n, tot_sum)
     SELECT hh.p, hh.h, hh.u, granted, heartbeats, submitted, skipped, released, expired,
      first_at, last_at, active_ms, idle_ms, idle_gaps, coalesce(hg.l, '{}'),
      coalesce(hg.b, '{}'), coalesce(hg.n, '{}'), coalesce(hg.s, '{}')
     FROM hh LEFT JOIN hg ON hg.p = hh.p AND hg.h = hh.h AND hg.u = hh.u
     ORDER BY 1, 2, 3
     ON CONFLICT (project_id, hour, annotator_id) DO UPDATE SET
      granted = o.granted + excluded.granted, heartbeats = o.heartbeats + excluded.heartbeats,
      submitted = o.submitted + excluded.submitted, skipped = o.skipped + excluded.skipped,
      released = o.released + excluded.released, expired = o.expired + excluded.expired,
      first_at = least(o.first_at, excluded.first_at),
      last_at = greatest(o.last_at, excluded.last_at),
      (active_ms, idle_ms, idle_gaps) = (SELECT
        CASE WHEN s.gap IS NULL THEN r.a
         ELSE o.active_ms + excluded.active_ms
          + CASE WHEN s.gap <= 300000 THEN s.gap ELSE 0 END END,
        CASE WHEN s.gap IS NULL THEN r.i
         ELSE o.idle_ms + excluded.idle_ms
          + CASE WHEN s.gap > 300000 THEN s.gap ELSE 0 END END,
        CASE WHEN s.gap IS NULL THEN r.g
         ELSE o.idle_gaps + excluded.idle_gaps + (s.gap > 300000)::int END
       FROM (SELECT CASE WHEN excluded.first_at >= o.last_at
          THEN (extract(epoch FROM excluded.first_at - o.last_at)::float8 * 1000)
         WHEN excluded.last_at <= o.first_at THEN (extract(epoch FROM o.first_at - excluded.last_at)::float8 * 1000)
         END AS gap) s
       LEFT JOIN LATERAL (SELECT sum((extract(epoch FROM q.last_at - q.first_at)::float8 * 1000))
          + coalesce(sum(q.gap) FILTER (WHERE q.gap <= 300000), 0) AS a,
         coalesce(sum(q.gap) FILTER (WHERE q.gap > 300000), 0) AS i,
         count(*) FILTER (WHERE q.gap > 300000)::int AS g
        FROM (SELECT w.first_at, w.last_at,
          (extract(epoch FROM w.first_at - lag(w.last_at) OVER (ORDER BY w.minute))::float8 * 1000) AS gap
         FROM (SELECT x.minute, x.first_at, x.last_at FROM mins x
           WHERE x.project_id = o.project_id AND x.annotator_id = o.annotator_id
            AND x.minute >= o.hour AND x.minute < o.hour + interval '1 hour'
          UNION ALL SELECT y.minute, y.first_at, y.last_at FROM lease_event_minutes y
           WHERE y.project_id = o.project_id AND y.annotator_id = o.annotator_id
            AND y.minute >= o.hour AND y.minute < o.hour + interval '1 hour'
            AND NOT EXISTS (SELECT 1 FROM mins z WHERE z.project_id = y.project_id
             AND z.annotator_id = y.annotator_id AND z.minute = y.minute)) w) q
        WHERE s.gap IS NULL) r ON true),
      (tot_label, tot_bucket, tot_n, tot_sum) = (SELECT coalesce(array_agg(l ORDER BY l, b), '{}'),
        coalesce(array_agg(b ORDER BY l, b), '{}'), coalesce(array_agg(n ORDER BY l, b), '{}'),
        coalesce(array_agg(s ORDER BY l, b), '{}')
       FROM (SELECT l, b, sum(n)::integer AS n, sum(s)::bigint AS s
        FROM unnest(o.tot_label || excluded.tot_label, o.tot_bucket || excluded.tot_bucket,
         o.tot_n || excluded.tot_n, o.tot_sum || excluded.tot_sum) AS x(l, b, n, s)
        GROUP BY l, b) y);
END
$fn$;
