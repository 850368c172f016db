-- 0011_project_pause.sql - a project's managers may pause it (issue 5).
--
-- While paused_at is set, lease requests answer 409 project_paused (a long
-- poll waits for a resume until its deadline first); leases already held
-- may still be heartbeaten, submitted, released or skipped, and tasks may
-- still be imported, so no work is lost. NULL: the project runs. The broker
-- caches the column with the project and drops every broker's copy through
-- Redis pub/sub when it changes.

ALTER TABLE projects ADD COLUMN paused_at timestamptz NULL;
