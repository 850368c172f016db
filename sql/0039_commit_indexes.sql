-- 0039_commit_indexes.sql - fewer index entries per durable completion
-- (issue 18): three indexes that another index already serves and one that
-- no statement reads, each written on every commit.
--
-- annotations_project_order (sql/0020_export.sql) is annotations_project_id
-- (sql/0005_agreement.sql) again: the same columns, (project_id, id).
-- annotations_project (sql/0001_init.sql), (project_id, annotator_id), is a
-- prefix of the unique annotations_project_annotator_key (project_id,
-- annotator_id, idempotency_key) of sql/0014_idempotency_scope.sql, which
-- holds every row (a btree keeps NULL keys). leases_token
-- (sql/0002_overlap_sampling.sql), (project_id, fencing_token DESC), is the
-- leases primary key read backwards: the highest token of a project
-- (QR_SQL_MAX_TOKEN) is one descent of either. lease_events_annotator_at
-- (sql/0003_events.sql), (annotator_id, at), was for one annotator's history
-- across projects, which no statement reads: every read of the lease log
-- names its project (lease_events_project_at, lease_events_token), so it only
-- cost each of the ~2 events of a completion one more index entry.
--
-- An annotation goes from 9 index entries to 7, a submitted lease's history
-- row from 2 to 1 (leases_skipped holds skipped leases only), a lease event
-- from 3 to 2.

DROP INDEX annotations_project_order;
DROP INDEX annotations_project;
DROP INDEX leases_token;
DROP INDEX lease_events_annotator_at;
