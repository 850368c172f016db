-- 0002_overlap_sampling.sql - overlap policy and sampling order per project;
-- per task its priority (the window's order), prediction, gold answer and
-- stratum; reasons on ended leases.

ALTER TABLE projects
    ADD COLUMN overlap_fraction    double precision NOT NULL DEFAULT 0
        CHECK (overlap_fraction >= 0 AND overlap_fraction <= 1),
    ADD COLUMN overlap_annotations integer NOT NULL DEFAULT 1
        CHECK (overlap_annotations BETWEEN 1 AND 100),
    ADD COLUMN overlap_first       boolean NOT NULL DEFAULT false,
    ADD COLUMN sampling            text NOT NULL DEFAULT 'sequential'
        CHECK (sampling IN ('sequential', 'random', 'uncertainty', 'stratified')),
    ADD COLUMN stratify_field      text,
    ADD CONSTRAINT stratified_needs_field
        CHECK (sampling <> 'stratified' OR stratify_field IS NOT NULL);

-- priority: lower is served first. It encodes the sampling order (and
-- overlap-first), fixed at import, so choosing the next task is a sorted-set
-- head lookup, never a scan.
ALTER TABLE tasks
    ADD COLUMN priority          double precision NOT NULL DEFAULT 0,
    ADD COLUMN overlap           boolean NOT NULL DEFAULT false,
    ADD COLUMN prediction        jsonb,
    ADD COLUMN prediction_score  double precision,
    ADD COLUMN gold              text,
    ADD COLUMN stratum           text;
UPDATE tasks SET priority = id;
DROP INDEX tasks_open;
CREATE INDEX tasks_open ON tasks (project_id, priority, id) WHERE state <> 'complete';
CREATE INDEX tasks_stratum ON tasks (project_id, stratum);

ALTER TABLE leases ADD COLUMN reason text CHECK (length(reason) <= 500);
-- Who skipped a task, for rebuilding Redis after it lost its state.
CREATE INDEX leases_skipped ON leases (task_id) WHERE outcome = 'skipped';
-- The highest fencing token of a project, for the same rebuild.
CREATE INDEX leases_token ON leases (project_id, fencing_token DESC);
CREATE INDEX annotations_token ON annotations (project_id, fencing_token DESC);
