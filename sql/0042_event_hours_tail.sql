-- 0042_event_hours_tail.sql - the lease log's hour rollup merges a batch
-- that interleaves with what its row holds by recomputing only the tail of
-- the hour, not the whole hour (issue 18).
--
-- A batch usually interleaves: the broker logs a grant at once but a submit
-- only after its group commit, with the time the request arrived, so the
-- next batch often starts before the last event the previous one wrote for
-- the same annotator. quorum_lease_events_add (sql/0038_generic_plans.sql)
-- then recomputed the hour's activity from every minute row of the hour,
-- found through the minute rollup's key (project, minute, annotator): all
-- of the project's rows of that hour, for each annotator of the batch.
--
-- The row's activity as this statement's snapshot sees it is a sum over
-- its minute rows as that snapshot sees them, in order: each row's
-- span (last - first: every gap inside a minute is active) and the gap
-- from the row before (active up to 300,000 ms, else idle). A batch only
-- changes the rows from the minute of its first event in the hour (m0)
-- on, so the new activity is the snapshot's, minus that sum over the rows
-- from m0 on as the snapshot has them, plus the same sum as they are now
-- (another broker's batch for the same annotator, committed since the
-- snapshot, counts as the old recomputation counted it); the first of
-- those rows' gap is measured from the last row before m0, read among the
-- five minutes before m0 (an older one is more than 300,000 ms away: that
-- gap is idle either way, and only its end moves). Rows are found by
-- their whole key, minute by minute, from m0 to the row's last minute.
-- The differences are summed as numeric (exact to the microsecond) and
-- added to the snapshot's figures as numeric (float8 to numeric keeps 15
-- digits, which drops the float noise of earlier merges), so the row's
-- figures move by exactly what the batch added and every report figure,
-- rounded as the reports round them, stays the same
-- (tests/integration/test_analytics.c, test_event_hours_merge;
-- tests/e2e/test_throughput_crew.sh). Everything else is the body of
-- sql/0038_generic_plans.sql, unchanged.

CREATE OR REPLACE FUNCTION quorum_lease_events_add(bigint[], bigint[], text[], bigint[], bigint[],
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
        CASE WHEN s.gap IS NULL THEN (h0.a::numeric + r.a)::float8
         ELSE o.active_ms + excluded.active_ms
          + CASE WHEN s.gap <= 300000 THEN s.gap ELSE 0 END END,
        CASE WHEN s.gap IS NULL THEN (h0.i::numeric + r.i)::float8
         ELSE o.idle_ms + excluded.idle_ms
          + CASE WHEN s.gap > 300000 THEN s.gap ELSE 0 END END,
        CASE WHEN s.gap IS NULL THEN h0.g + r.g
         ELSE o.idle_gaps + excluded.idle_gaps + (s.gap > 300000)::int END
       FROM (SELECT CASE WHEN excluded.first_at >= o.last_at
          THEN (extract(epoch FROM excluded.first_at - o.last_at)::float8 * 1000)
         WHEN excluded.last_at <= o.first_at THEN (extract(epoch FROM o.first_at - excluded.last_at)::float8 * 1000)
         END AS gap,
         date_trunc('minute', excluded.first_at) AS m0) s
       LEFT JOIN LATERAL (SELECT coalesce(hs.active_ms, 0) AS a, coalesce(hs.idle_ms, 0) AS i,
          coalesce(hs.idle_gaps, 0) AS g, hs.first_at AS f
        FROM (SELECT 1) one LEFT JOIN lease_event_hours hs ON hs.project_id = o.project_id
         AND hs.hour = o.hour AND hs.annotator_id = o.annotator_id
        WHERE s.gap IS NULL) h0 ON true
       LEFT JOIN LATERAL (SELECT
          sum(q.sign * q.span) + coalesce(sum(q.sign * q.gap) FILTER (WHERE q.gap <= 300000), 0) AS a,
          coalesce(sum(q.sign * q.gap) FILTER (WHERE q.gap > 300000), 0) AS i,
          coalesce(sum(q.sign) FILTER (WHERE q.gap > 300000), 0)::int AS g
        FROM (SELECT w.sign, extract(epoch FROM w.last_at - w.first_at) * 1000 AS span,
          extract(epoch FROM w.first_at - coalesce(lag(w.last_at)
            OVER (PARTITION BY w.sign ORDER BY w.minute), pv.l)) * 1000 AS gap
         FROM (SELECT coalesce((SELECT v.last_at FROM lease_event_minutes v
            WHERE v.project_id = o.project_id AND v.annotator_id = o.annotator_id
             AND v.minute = ANY (ARRAY[s.m0 - interval '1 minute', s.m0 - interval '2 minutes',
              s.m0 - interval '3 minutes', s.m0 - interval '4 minutes',
              s.m0 - interval '5 minutes'])
             AND v.minute >= o.hour
            ORDER BY v.minute DESC LIMIT 1),
           CASE WHEN h0.f < s.m0 THEN s.m0 - interval '6 minutes' END) AS l) pv,
          (SELECT 1 AS sign, x.minute, x.first_at, x.last_at FROM mins x
            WHERE x.project_id = o.project_id AND x.annotator_id = o.annotator_id
             AND x.minute >= s.m0 AND x.minute < o.hour + interval '1 hour'
           UNION ALL SELECT 1, y.minute, y.first_at, y.last_at FROM lease_event_minutes y
            WHERE y.project_id = o.project_id AND y.annotator_id = o.annotator_id
             AND y.minute = ANY (ARRAY(SELECT generate_series(s.m0,
              date_trunc('minute', o.last_at), interval '1 minute')))
             AND NOT EXISTS (SELECT 1 FROM mins z WHERE z.project_id = y.project_id
              AND z.annotator_id = y.annotator_id AND z.minute = y.minute)
           UNION ALL SELECT -1, y.minute, y.first_at, y.last_at FROM lease_event_minutes y
            WHERE y.project_id = o.project_id AND y.annotator_id = o.annotator_id
             AND y.minute = ANY (ARRAY(SELECT generate_series(s.m0,
              date_trunc('minute', o.last_at), interval '1 minute')))) w) q
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
