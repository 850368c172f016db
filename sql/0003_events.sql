-- 0003_events.sql - the lease log (issue 6): one row per lease grant,
-- heartbeat, submit, skip, release and expiry, written in batches by
-- broker/store/events.c and read by the throughput report (broker/reports/analytics.c).
--
-- It is an append-only log, so it deliberately has no foreign keys and no
-- primary key: a batch must never be refused as a whole because of one row,
-- and every index makes each insert dearer. Rows name their project, task and
-- annotator by id; the report joins users and organizations to scope them.

CREATE TABLE lease_events (
    project_id    bigint NOT NULL,
    at            timestamptz NOT NULL,  -- when it happened (broker clock)
    kind          text NOT NULL
        CHECK (kind IN ('grant', 'heartbeat', 'submit', 'skip', 'release', 'expire')),
    task_id       bigint NOT NULL,
    annotator_id  bigint NOT NULL,
    token         bigint NOT NULL,       -- the lease's fencing token (unique per project)
    granted_at    timestamptz,           -- when the lease was granted, if known
    active_ms     integer CHECK (active_ms >= 0),  -- submit: agent-reported time on task
    label         text,                  -- submit: the label given
    reason        text                   -- skip, release: the reason given
);

-- Every report reads one project's events in a time window.
CREATE INDEX lease_events_project_at ON lease_events (project_id, at);
-- One annotator's history across projects (and the report's annotator filter).
CREATE INDEX lease_events_annotator_at ON lease_events (annotator_id, at);

-- Annotations counted per window (rates, ETA, tasks completed in a window).
CREATE INDEX annotations_project_created ON annotations (project_id, created_at);
