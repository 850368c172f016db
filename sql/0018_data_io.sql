-- 0018_data_io.sql - the schema that import, export and project deletion
-- share (issue "data in and out without loss").
--
-- A Label Studio task arrives with `predictions` (each with model_version,
-- score and a result in Label Studio's shape) and `annotations` made in
-- Label Studio. Both are kept whole, so an export in Label Studio's format
-- gives back every one of them. `tasks.prediction` / `prediction_score`
-- (0002) stay the broker's working copy: the label and confidence that
-- drive uncertainty sampling and auto-acceptance.
ALTER TABLE tasks ADD COLUMN predictions jsonb
    CHECK (predictions IS NULL OR jsonb_typeof(predictions) = 'array');

-- Annotations imported from another tool. They are kept apart from
-- `annotations` (which only a lease can write, under the fencing token),
-- and count toward a task's overlap only when the import asked for it; the
-- broker then also writes a row of `annotations` for the same user, so
-- done_count keeps counting rows of `annotations` only.
CREATE TABLE imported_annotations (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id        bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    annotator_id   bigint NOT NULL REFERENCES users (id),
    label          text,                 -- the single choice, when the result has one
    result         jsonb NOT NULL CHECK (jsonb_typeof(result) = 'array'),
    lead_time      double precision CHECK (lead_time >= 0),
    was_cancelled  boolean NOT NULL DEFAULT false,
    ground_truth   boolean NOT NULL DEFAULT false,
    source_id      text CHECK (length(source_id) BETWEEN 1 AND 1000),  -- the annotation's id there
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX imported_annotations_task ON imported_annotations (project_id, task_id);
