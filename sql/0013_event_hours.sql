-- 0013_event_hours.sql - the lease log rolled up per annotator and hour, on
-- top of the per-minute rollup (sql/0008_event_minutes.sql), so that a
-- throughput report over a week reads one row per annotator-hour instead of
-- sixty (docs/THROUGHPUT.md, "Cost").
--
-- broker/store/events.c keeps it in the same statement that inserts a batch into
-- lease_events and merges it into lease_event_minutes, so all three commit
-- together or not at all. Rows name their project and annotator by id,
-- without foreign keys, like the log.
--
-- What a row keeps:
--  * counts per kind (exact, additive);
--  * the first and last event instant of the hour (the gaps between hours
--    come from them, as between minutes);
--  * the activity inside the hour at the default idle threshold, 5 minutes
--    (QR_ANALYTICS_IDLE_GAP_MS): the sum of the gaps between consecutive
--    events of the annotator inside the hour that are at most 5 minutes
--    (active_ms), of those longer (idle_ms) and their number (idle_gaps).
--    A batch whose events all come after the row's last event (or all
--    before its first) merges exactly by adding the gap at the seam; one
--    that interleaves with what the row holds (two brokers writing for the
--    same annotator) makes the writer recompute the hour from its minute
--    rows, which is exact too because inside a minute every gap is active.
--    A report asking for another idle threshold does not read this table;
--  * a histogram of the hour's timed submissions: for each (label, bucket)
--    the number of times on task and their sum (ms), in four parallel
--    arrays sorted by label then bucket. The buckets are those of the
--    report's minute path: floor(ln(ms) * 16 / ln 2), 16 per doubling (ms
--    <= 0: bucket -1). Counts and means stay exact; medians and p90 are read
--    from the buckets, within 2.2% as with the minute rollup.

CREATE TABLE lease_event_hours (
    project_id    bigint NOT NULL,
    annotator_id  bigint NOT NULL,
    hour          timestamptz NOT NULL,  -- date_trunc('hour', at, 'UTC')
    granted       integer NOT NULL DEFAULT 0,
    heartbeats    integer NOT NULL DEFAULT 0,
    submitted     integer NOT NULL DEFAULT 0,
    skipped       integer NOT NULL DEFAULT 0,
    released      integer NOT NULL DEFAULT 0,
    expired       integer NOT NULL DEFAULT 0,
    first_at      timestamptz NOT NULL,  -- the hour's first event
    last_at       timestamptz NOT NULL,  -- and its last
    active_ms     float8 NOT NULL DEFAULT 0,   -- gaps <= 5 min inside the hour
    idle_ms       float8 NOT NULL DEFAULT 0,   -- gaps > 5 min inside the hour
    idle_gaps     integer NOT NULL DEFAULT 0,  -- how many of those
    tot_label     text[] NOT NULL DEFAULT '{}',     -- histogram: label,
    tot_bucket    integer[] NOT NULL DEFAULT '{}',  -- bucket,
    tot_n         integer[] NOT NULL DEFAULT '{}',  -- times on task in it,
    tot_sum       bigint[] NOT NULL DEFAULT '{}',   -- and their sum (ms)
    PRIMARY KEY (project_id, hour, annotator_id)
);

-- Whatever the minute rollup holds already (it holds the whole log: 0008
-- backfilled it). Inside a minute every gap is under 5 minutes, so the
-- activity of an hour is the sum of its minutes' last - first plus the gaps
-- between consecutive minutes.
INSERT INTO lease_event_hours (project_id, annotator_id, hour, granted, heartbeats, submitted,
    skipped, released, expired, first_at, last_at, active_ms, idle_ms, idle_gaps,
    tot_label, tot_bucket, tot_n, tot_sum)
SELECT c.project_id, c.annotator_id, c.hour, c.granted, c.heartbeats, c.submitted, c.skipped,
    c.released, c.expired, c.first_at, c.last_at, c.active_ms, c.idle_ms, c.idle_gaps,
    coalesce(h.l, '{}'), coalesce(h.b, '{}'), coalesce(h.n, '{}'), coalesce(h.s, '{}')
FROM (SELECT project_id, annotator_id, hour, sum(granted) AS granted,
        sum(heartbeats) AS heartbeats, sum(submitted) AS submitted, sum(skipped) AS skipped,
        sum(released) AS released, sum(expired) AS expired, min(first_at) AS first_at,
        max(last_at) AS last_at,
        sum(inner_ms) + coalesce(sum(gap) FILTER (WHERE gap <= 300000), 0) AS active_ms,
        coalesce(sum(gap) FILTER (WHERE gap > 300000), 0) AS idle_ms,
        count(*) FILTER (WHERE gap > 300000) AS idle_gaps
      FROM (SELECT m.*, date_trunc('hour', m.minute, 'UTC') AS hour,
              extract(epoch FROM m.last_at - m.first_at)::float8 * 1000 AS inner_ms,
              extract(epoch FROM m.first_at - lag(m.last_at) OVER (PARTITION BY m.project_id,
                m.annotator_id, date_trunc('hour', m.minute, 'UTC') ORDER BY m.minute))::float8 * 1000
                AS gap
            FROM lease_event_minutes m) g
      GROUP BY project_id, annotator_id, hour) c
LEFT JOIN (SELECT project_id, annotator_id, hour, array_agg(l ORDER BY l, b) AS l,
             array_agg(b ORDER BY l, b) AS b, array_agg(n ORDER BY l, b) AS n,
             array_agg(s ORDER BY l, b) AS s
           FROM (SELECT m.project_id, m.annotator_id, date_trunc('hour', m.minute, 'UTC') AS hour,
                   x.l, CASE WHEN x.v <= 0 THEN -1
                     ELSE floor(ln(x.v) * 23.083120654223414)::int END AS b,
                   count(*)::integer AS n, sum(x.v)::bigint AS s
                 FROM lease_event_minutes m, unnest(m.tot_ms, m.tot_label) AS x(v, l)
                 GROUP BY 1, 2, 3, 4, 5) z
           GROUP BY project_id, annotator_id, hour) h
  ON h.project_id = c.project_id AND h.annotator_id = c.annotator_id AND h.hour = c.hour;

-- Annotations and completed tasks per annotator and hour, so that a report
-- over a week does not read the week's annotations (docs/THROUGHPUT.md,
-- "Cost"). The table of record stays `annotations`: this is a rollup of its
-- closed hours, filled off the lease path by quorum_roll_annotation_hours
-- (broker/store/events.c calls it once an hour, a few minutes after the hour
-- closes), never by a trigger on INSERT, so a submission costs nothing more.
--
--  * annotations: the annotator's annotations created in the hour;
--  * tasks_completed: complete tasks whose last annotation (latest
--    created_at, then highest id) is this annotator's, in this hour: summed
--    over annotators, the report's tasks_completed_in_window for the hour.
--
-- annotation_hours_rolled says, per project, up to where (an hour boundary)
-- the rollup is complete; the report reads annotations past it raw. Once an
-- hour is rolled only a delete can change it (created_at is the insert's
-- clock_timestamp(), and a task is complete from its last annotation on), so
-- a row trigger on DELETE takes deleted annotations (an undo) back
-- out of rolled hours, with the completion they may have carried. Rolling
-- stops 5 minutes short of now, so that an insert still uncommitted when
-- the hour closes is counted (a transaction holding an annotation open for
-- longer than that would be missed: the submit batch runs in milliseconds).

CREATE TABLE annotation_hours (
    project_id       bigint NOT NULL,
    hour             timestamptz NOT NULL,  -- date_trunc('hour', created_at, 'UTC')
    annotator_id     bigint NOT NULL,
    annotations      integer NOT NULL DEFAULT 0,
    tasks_completed  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, hour, annotator_id)
);

CREATE TABLE annotation_hours_rolled (
    project_id  bigint PRIMARY KEY,
    rolled_to   timestamptz NOT NULL  -- every hour before this is in annotation_hours
);

-- Rolls every project's whole hours up to date_trunc('hour', p_upto, 'UTC') into
-- annotation_hours. One roll at a time across brokers (an advisory lock);
-- the next one starts where the last one stopped. Returns the number of
-- projects rolled forward.
CREATE FUNCTION quorum_roll_annotation_hours(p_upto timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(72070013);
    WITH st AS (
        SELECT p.id AS project_id,
               coalesce(r.rolled_to, (SELECT date_trunc('hour', min(a.created_at), 'UTC')
                                        FROM annotations a WHERE a.project_id = p.id),
                        date_trunc('hour', p_upto, 'UTC')) AS from_t,
               date_trunc('hour', p_upto, 'UTC') AS to_t
          FROM projects p LEFT JOIN annotation_hours_rolled r ON r.project_id = p.id),
    ins AS (
        INSERT INTO annotation_hours AS o (project_id, hour, annotator_id, annotations,
                                           tasks_completed)
        SELECT a.project_id, date_trunc('hour', a.created_at, 'UTC'), a.annotator_id, count(*),
               count(*) FILTER (WHERE t.state = 'complete' AND NOT EXISTS (
                   SELECT 1 FROM annotations b WHERE b.task_id = a.task_id
                      AND (b.created_at > a.created_at
                           OR (b.created_at = a.created_at AND b.id > a.id))))
          FROM st JOIN annotations a ON a.project_id = st.project_id
                   AND a.created_at >= st.from_t AND a.created_at < st.to_t
          LEFT JOIN tasks t ON t.id = a.task_id
         WHERE st.from_t < st.to_t
         GROUP BY 1, 2, 3
        ON CONFLICT (project_id, hour, annotator_id) DO UPDATE
           SET annotations = o.annotations + excluded.annotations,
               tasks_completed = o.tasks_completed + excluded.tasks_completed)
    INSERT INTO annotation_hours_rolled AS r (project_id, rolled_to)
    SELECT project_id, to_t FROM st WHERE from_t <= to_t
    ON CONFLICT (project_id) DO UPDATE SET rolled_to = excluded.rolled_to
     WHERE r.rolled_to < excluded.rolled_to;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- A deleted annotation (an undo; the submit batch's rare delete of a row it
-- could not count) leaves the rolled hours: its own count, and the
-- completion credited to its task's last annotation when the task was
-- complete before this delete (its done_count, lowered by the same
-- statement, is one short of required). A row trigger, so that a statement
-- deleting nothing costs nothing; it runs at the end of the statement and
-- sees the task as the statement left it.
CREATE FUNCTION quorum_annotation_hours_unroll() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    upto timestamptz;
    last_at timestamptz;
    last_by bigint;
BEGIN
    SELECT rolled_to INTO upto FROM annotation_hours_rolled WHERE project_id = OLD.project_id;
    -- Not rolled yet: neither is the task's last annotation (it is no older).
    IF upto IS NULL OR OLD.created_at >= upto THEN
        RETURN NULL;
    END IF;
    UPDATE annotation_hours SET annotations = annotations - 1
     WHERE project_id = OLD.project_id AND hour = date_trunc('hour', OLD.created_at, 'UTC')
       AND annotator_id = OLD.annotator_id;
    IF EXISTS (SELECT 1 FROM tasks t WHERE t.id = OLD.task_id AND t.done_count + 1 = t.required)
    THEN
        SELECT z.created_at, z.annotator_id INTO last_at, last_by
          FROM (SELECT OLD.created_at AS created_at, OLD.annotator_id AS annotator_id, OLD.id AS id
                UNION ALL
                SELECT a.created_at, a.annotator_id, a.id FROM annotations a
                 WHERE a.task_id = OLD.task_id) z
         ORDER BY z.created_at DESC, z.id DESC LIMIT 1;
        IF last_at < upto THEN
            UPDATE annotation_hours SET tasks_completed = tasks_completed - 1
             WHERE project_id = OLD.project_id AND hour = date_trunc('hour', last_at, 'UTC')
               AND annotator_id = last_by;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER annotations_unroll AFTER DELETE ON annotations
    FOR EACH ROW EXECUTE FUNCTION quorum_annotation_hours_unroll();

-- Whatever is there already, up to 5 minutes ago.
SELECT quorum_roll_annotation_hours(clock_timestamp() - interval '5 minutes');
