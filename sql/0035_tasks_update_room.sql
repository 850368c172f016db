-- 0035_tasks_update_room.sql - a predictions update rewrites its tasks
-- cheaply (issue 16, point 5: a predictions update of 1M tasks at >= 0.5x
-- the speed of a COPY of the task rows).
--
-- quorum_predictions_apply (sql/0032) rewrites every task its body names.
-- What that cost, and what each change here saves, measured on 1M tasks of
-- one project right after a checkpoint, in WAL written by its UPDATE of
-- tasks (times on the shared 2-core test machine vary with its load; the
-- WAL does not):
--   before: 1,432 to 2,595 MB (tests/bench/predictions_bench.sh, three
--           rounds; the COPY of the task rows: 491 MB): every new row
--           version on another page, logged whole, with an entry in each
--           of four indexes, the pages visited in hash order (below).
--   after:  870 to 902 MB (the COPY: 418 MB).
--   - The join without a hash join. A hash join larger than work_mem runs
--     in batches, and its output then visits the table in hash order:
--     each page is dirtied once per batch, evicted between them, and logged
--     whole again after each checkpoint the update's own WAL sets off
--     (with fillfactor 50 below: 2,910 MB, 390,607 full-page images).
--     Joined in task id order (a merge join on the sorted rows, or index
--     lookups for a small body) each page is visited once, in the order
--     the import wrote it: 1,128 MB with full pages, 900 MB with
--     fillfactor 50 (92,197 full-page images).
--   - fillfactor 50: pages written from now on (an import's COPY, a row
--     an update moves) keep half their room, so a row's new version stays
--     on its page: its WAL record carries only the bytes that changed, and
--     an update that changes no indexed column is a HOT update, with no
--     index entry at all (529 MB for a predictions update that moves no
--     priority: a project not sampled by uncertainty; a submit's done_count
--     that does not complete its task is one too).
--   - tasks_stratum dropped: every task row and every non-HOT update paid
--     an entry in it, for one query, the strata's counts before a
--     stratified import (QR_SQL_STRATA), which now reads the project's rows
--     through tasks_project_id instead of the index alone.
-- Pages written before this migration stay full until their rows move.

DROP INDEX tasks_stratum;
ALTER TABLE tasks SET (fillfactor = 50);
ALTER FUNCTION quorum_predictions_apply(bigint) SET enable_hashjoin = off;
