-- 0020_export.sql - what incremental exports need (issue "data in and out
-- without loss", point 3).
--
-- An export prints a cursor; the next export given it returns what changed
-- after it, so a retraining job can pull increments forever without
-- missing or repeating a row. The cursor is a PostgreSQL snapshot
-- (pg_current_snapshot(): xmin, xmax and the transactions in progress), not
-- the largest id seen: ids are taken when a row is inserted, not when it
-- commits, so a transaction that took id 10 and commits after another one
-- wrote id 11 would be missed by "id > 11". A row is in the increment after
-- cursor C up to snapshot S when the transaction that wrote it is visible
-- in S and not in C (pg_visible_in_snapshot), which is exact whatever the
-- order of commits.
--
-- So every row an export reads carries the id of the transaction that
-- wrote it (xid8, 64-bit: no wraparound). Rows that exist before this
-- migration get its transaction's id: they are in every export's first
-- increment, as they should be.
ALTER TABLE annotations ADD COLUMN written_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX annotations_written ON annotations (project_id, written_xid);
-- An export reads a project's annotations in pages, in id order, each page
-- starting after the last id of the one before (keyset paging).
CREATE INDEX annotations_project_order ON annotations (project_id, id);

-- Annotations are immutable; an undo is an event of its own. The undo
-- statement deletes the annotation (the task is counted down and leased
-- again) and, in the same statement, writes this row, so an increment
-- carries the undo of an annotation an earlier export returned. The row
-- keeps the annotation whole: an export taken from a snapshot in which the
-- annotation still existed can still list it (export pages are read after
-- the snapshot was taken).
CREATE TABLE annotation_undos (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id         bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    annotation_id   bigint NOT NULL,       -- the deleted annotation's id
    annotator_id    bigint NOT NULL,       -- its annotator (users are never deleted)
    label           text NOT NULL,
    active_ms       integer,
    fencing_token   bigint,                -- its lease (time on task)
    annotated_at    timestamptz NOT NULL,  -- the annotation's created_at
    annotation_xid  xid8 NOT NULL,         -- the transaction that wrote the annotation
    undone_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    written_xid     xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX annotation_undos_written ON annotation_undos (project_id, written_xid);
CREATE INDEX annotation_undos_task ON annotation_undos (project_id, task_id);
