-- 0035_tasks_update_room.sql - a task row updated in place costs less
-- (issue 16, point 5: a predictions update of 1M tasks at >= 0.5x COPY).
--
-- A predictions update (sql/0029, 0032) rewrites every row it names. With
-- full pages each new row version went to a new page at the end of the
-- table, logged whole, with an entry in each of the table's indexes. Two
-- changes make that cheaper, measured on 1M tasks after a checkpoint
-- (WAL written by the UPDATE of tasks alone):
--   - fillfactor 50: pages written from now on (an import's COPY, a row
--     moved by an update) keep half their room free, so the new version of
--     a row stays on its page: its WAL record carries only the bytes that
--     changed, and an update that changes no indexed column (a prediction
--     of a project not sampled by uncertainty; a submit's done_count that
--     does not complete the task) is a HOT update, with no index entry at
--     all (1,372 MB -> 1,059 MB for an update that moves the priority;
--     433 MB for one that does not);
--   - tasks_stratum dropped: every task row and every non-HOT update paid
--     an entry in it (1,059 MB -> 894 MB), for one query, the strata's
--     counts before a stratified import (QR_SQL_STRATA), which now reads
--     the project's rows through tasks_project_id instead of the index
--     alone.
-- Pages written before this migration stay full until their rows move.

DROP INDEX tasks_stratum;
ALTER TABLE tasks SET (fillfactor = 50);
