-- 0008_event_minutes.sql - the lease log rolled up per annotator and minute
-- (issue 6 item 6), so a throughput report over a long window reads one row
-- per annotator-minute instead of every event (docs/THROUGHPUT.md, "Cost").
--
-- broker/store/events.c keeps it in the same statement that inserts a batch into
-- lease_events: the batch is grouped by (project, annotator, minute) and
-- merged into existing rows (counts added, first/last widened, times on
-- task appended), so the rollup never disagrees with the log. Rows name
-- their project and annotator by id, without foreign keys, like the log.
--
-- What a row keeps is exactly what the report needs of those events:
--  * counts per kind;
--  * the first and last event instant: inside one minute every gap between
--    two events of an annotator is shorter than the idle threshold (5 min),
--    so active time inside the minute is last - first, and the gaps between
--    minutes come from the previous row's last and this row's first: the
--    activity figures stay exact;
--  * every timed submission's time on task (ms) and label, in two parallel
--    arrays: counts and means stay exact; medians and p90 are read from a
--    histogram of these values with 16 log buckets per doubling (each
--    bucket 4.4% wide, reported at its geometric middle: within 2.2%).

CREATE TABLE lease_event_minutes (
    project_id    bigint NOT NULL,
    annotator_id  bigint NOT NULL,
    minute        timestamptz NOT NULL,  -- date_trunc('minute', at)
    granted       integer NOT NULL DEFAULT 0,
    heartbeats    integer NOT NULL DEFAULT 0,
    submitted     integer NOT NULL DEFAULT 0,
    skipped       integer NOT NULL DEFAULT 0,
    released      integer NOT NULL DEFAULT 0,
    expired       integer NOT NULL DEFAULT 0,
    first_at      timestamptz NOT NULL,  -- the minute's first event
    last_at       timestamptz NOT NULL,  -- and its last
    tot_ms        integer[] NOT NULL DEFAULT '{}',  -- time on task of each timed submit
    tot_label     text[] NOT NULL DEFAULT '{}',     -- its label (same order)
    PRIMARY KEY (project_id, minute, annotator_id)
);

-- Whatever the log holds already.
INSERT INTO lease_event_minutes (project_id, annotator_id, minute, granted, heartbeats,
    submitted, skipped, released, expired, first_at, last_at, tot_ms, tot_label)
SELECT project_id, annotator_id, date_trunc('minute', at),
    count(*) FILTER (WHERE kind = 'grant'), count(*) FILTER (WHERE kind = 'heartbeat'),
    count(*) FILTER (WHERE kind = 'submit'), count(*) FILTER (WHERE kind = 'skip'),
    count(*) FILTER (WHERE kind = 'release'), count(*) FILTER (WHERE kind = 'expire'),
    min(at), max(at),
    coalesce(array_agg(tot ORDER BY at) FILTER (WHERE tot IS NOT NULL), '{}'),
    coalesce(array_agg(label ORDER BY at) FILTER (WHERE tot IS NOT NULL), '{}')
FROM (SELECT *, CASE WHEN kind = 'submit' THEN greatest(0, least(coalesce(active_ms::bigint,
        round(extract(epoch FROM at - granted_at) * 1000)::bigint), 2147483647))::integer END AS tot
      FROM lease_events) e
GROUP BY 1, 2, 3;
