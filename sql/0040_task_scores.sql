-- 0040_task_scores.sql - a predictions update appends, it never rewrites
-- the tasks (issue 16, point 5: a predictions update of 1M tasks at >= 0.5x
-- the speed of a COPY of the task rows).
--
-- Before this migration quorum_predictions_apply (sql/0032, sql/0035)
-- rewrote every task its body named: a new version of a wide row, with an
-- entry in each of its indexes when the priority moved. Measured on 1M tasks
-- of one project (psql, the same machine, the same minute): the COPY of the
-- task rows 4.7 s; an UPDATE of them 13-22 s, and still 12.9 s as a HOT
-- update that moves no priority; an UPDATE of a narrow one-row-per-task
-- table 14.3 s; an INSERT of the same 1M rows into a narrow table with the
-- two indexes below 5.2 s. An update in place pays for finding, locking and
-- superseding each row; an insert pays for the row and its index entries.
--
-- So a predictions update now inserts one row per named task into
-- task_scores: the update's id, the new prediction and score, and the
-- priority (the sampling order) they give. A task's current prediction,
-- score and priority are those of its newest task_scores row (highest
-- update_id), else those it was imported with (tasks.prediction,
-- prediction_score, priority, which are never rewritten now); the view
-- tasks_scored gives them per task, and every reader of a prediction or a
-- priority reads it there.
--
-- The window's order: a project whose predictions were never updated is
-- served from tasks_open as before. The first update of a project also
-- copies the import's priority of every task it does not name into
-- task_scores (nothing to copy when it names them all) and sets
-- projects.scores_from: from then on task_scores holds a row for every task
-- of the project (an import into it adds its tasks' rows, in
-- quorum_import_post), and the refill walks task_scores_order, skipping a
-- row that a newer one of its task supersedes, and tasks complete or control.
-- A superseded row is dead weight for that walk, so after each update the
-- broker deletes the project's superseded rows (quorum_task_scores_prune),
-- after its answer, in a statement of its own; until then, or if the broker
-- stops first, the walk skips them and the next prune takes them.
--
-- No foreign keys (as the lease log, sql/0019): the project's rows go with
-- the project in quorum_project_deleted, and a task is never deleted alone.

CREATE TABLE task_scores (
    project_id bigint NOT NULL,
    task_id    bigint NOT NULL,
    update_id  bigint NOT NULL,
    priority   double precision NOT NULL,
    prediction jsonb,
    score      double precision
);
-- A task's rows, newest first; unique: a body naming a task twice fails.
CREATE UNIQUE INDEX task_scores_task ON task_scores (task_id, update_id DESC);
-- The window's order of a project served from task_scores.
CREATE INDEX task_scores_order ON task_scores (project_id, priority, task_id);
CREATE SEQUENCE task_scores_update;
ALTER TABLE projects ADD COLUMN scores_from bigint;

-- Each task's current priority, prediction and score.
CREATE VIEW tasks_scored AS
SELECT t.id, t.project_id,
       CASE WHEN s.task_id IS NULL THEN t.priority ELSE s.priority END AS priority,
       CASE WHEN s.task_id IS NULL THEN t.prediction ELSE s.prediction END AS prediction,
       CASE WHEN s.task_id IS NULL THEN t.prediction_score ELSE s.score END AS prediction_score
  FROM tasks t
  LEFT JOIN LATERAL (SELECT x.task_id, x.priority, x.prediction, x.score FROM task_scores x
                      WHERE x.task_id = t.id ORDER BY x.update_id DESC LIMIT 1) s ON true;

CREATE OR REPLACE FUNCTION quorum_project_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lease_events WHERE project_id = OLD.id;
    DELETE FROM lease_event_minutes WHERE project_id = OLD.id;
    DELETE FROM lease_event_hours WHERE project_id = OLD.id;
    DELETE FROM annotation_hours WHERE project_id = OLD.id;
    DELETE FROM annotation_hours_rolled WHERE project_id = OLD.id;
    DELETE FROM task_scores WHERE project_id = OLD.id;
    RETURN OLD;
END
$$;

-- An import into a project served from task_scores gives its new tasks
-- their rows there (their import priority and prediction).
CREATE OR REPLACE FUNCTION quorum_import_post(p_project bigint, p_user text, p_count boolean,
                                              p_tasks bigint[], p_annotations jsonb,
                                              p_import bigint, p_first bigint, p_last bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint := 0;
    v_update bigint;
BEGIN
    IF p_tasks IS NOT NULL THEN
        v_n := quorum_import_annotations(p_project, p_user, p_count, p_tasks, p_annotations);
    END IF;
    PERFORM quorum_auto_accept(p_project, p_import, p_first, p_last);
    -- FOR SHARE waits for a predictions update of the project under way
    -- (it holds the row FOR NO KEY UPDATE) and makes a first one wait for
    -- this import: either the update's copy of the import priorities sees
    -- these tasks, or this sees its scores_from.
    IF (SELECT scores_from FROM projects WHERE id = p_project FOR SHARE) IS NOT NULL THEN
        v_update := nextval('task_scores_update');
        INSERT INTO task_scores (project_id, task_id, update_id, priority, prediction, score)
        SELECT p_project, t.id, v_update, t.priority, t.prediction, t.prediction_score
          FROM tasks t
         WHERE t.project_id = p_project AND t.id BETWEEN p_first AND p_last
           AND t.import_id = p_import;
    END IF;
    RETURN v_n;
END
$$;

-- The update (sql/0029 says what follows a new score at once; unchanged),
-- now an INSERT into task_scores. A row naming a task the project does not
-- have, or a task named by an earlier row too, fails the whole update
-- (SQLSTATE QP422, "line N: ..."): nothing changes.
DROP FUNCTION quorum_predictions_apply(bigint);
CREATE FUNCTION quorum_predictions_apply(p_project bigint)
RETURNS TABLE (updated bigint, auto_accepted bigint, reopened bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
    v_n bigint;
    v_sampling text;
    v_first boolean;
    v_conf double precision;
    v_audit double precision;
    v_from bigint;
    v_update bigint;
    v_line bigint;
    v_msg text;
    v_acc bigint := 0;
    v_reo bigint := 0;
BEGIN
    -- The project's row locked (FOR NO KEY UPDATE: a foreign key's check
    -- on it, as a submit's, does not wait): two updates of one project go
    -- one after the other, and an import waits for a first update or the
    -- first update for it (quorum_import_post).
    SELECT sampling, overlap_first, auto_accept_confidence, auto_accept_audit, scores_from
      INTO v_sampling, v_first, v_conf, v_audit, v_from
      FROM projects WHERE id = p_project FOR NO KEY UPDATE;
    -- No ANALYZE: a temporary table never analyzed is estimated from its
    -- pages when planned, which picks a merge or hash join for a large body
    -- and index lookups for a small one.
    SELECT count(*) INTO v_rows FROM quorum_predictions_in;

    IF EXISTS (SELECT 1 FROM quorum_predictions_in WHERE task_id IS NULL) THEN
        UPDATE quorum_predictions_in i SET task_id = t.id
          FROM tasks t
         WHERE i.task_id IS NULL AND t.project_id = p_project AND t.external_id = i.external_id;
    END IF;

    v_update := nextval('task_scores_update');
    BEGIN
        INSERT INTO task_scores (project_id, task_id, update_id, priority, prediction, score)
        SELECT p_project, t.id, v_update,
               CASE WHEN v_sampling = 'uncertainty'
                    THEN coalesce(i.score, -1)
                         - CASE WHEN v_first AND t.overlap THEN 1e16 ELSE 0 END
                    ELSE t.priority END,
               i.prediction, i.score
          FROM quorum_predictions_in i JOIN tasks t ON t.id = i.task_id
         WHERE t.project_id = p_project;
        GET DIAGNOSTICS v_n = ROW_COUNT;
    EXCEPTION WHEN unique_violation THEN
        v_n := -1; -- a task named twice: the message below finds the line
    END;

    IF v_n <> v_rows THEN
        -- Fewer tasks than rows: the first row naming no task of the
        -- project; else (or a unique violation) one naming a task an
        -- earlier row named.
        SELECT i.line, CASE WHEN i.external_id IS NOT NULL AND i.task_id IS NULL
                            THEN format('external_id %s is not a task of project %s',
                                        to_json(i.external_id), p_project)
                            ELSE format('task %s is not a task of project %s', i.task_id,
                                        p_project) END
          INTO v_line, v_msg
          FROM quorum_predictions_in i
         WHERE i.task_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM tasks t
                            WHERE t.id = i.task_id AND t.project_id = p_project)
         ORDER BY i.line LIMIT 1;
        IF v_line IS NULL THEN
            SELECT d.line, format('task %s is named by line %s too', d.task_id, d.first)
              INTO v_line, v_msg
              FROM (SELECT i.line, i.task_id,
                           min(i.line) OVER (PARTITION BY i.task_id) AS first
                      FROM quorum_predictions_in i) d
             WHERE d.line <> d.first
             ORDER BY d.line LIMIT 1;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'QP422',
            MESSAGE = format('line %s: %s; nothing updated', coalesce(v_line, 0),
                             coalesce(v_msg, 'a row names no task of the project'));
    END IF;

    IF v_from IS NULL THEN
        -- The project's first update: the tasks it did not name keep their
        -- import priority, now in task_scores too (none when it named all).
        IF v_n < (SELECT count(*) FROM tasks WHERE project_id = p_project) THEN
            INSERT INTO task_scores (project_id, task_id, update_id, priority, prediction, score)
            SELECT p_project, t.id, v_update, t.priority, t.prediction, t.prediction_score
              FROM tasks t
             WHERE t.project_id = p_project
               AND NOT EXISTS (SELECT 1 FROM quorum_predictions_in i WHERE i.task_id = t.id);
        END IF;
        UPDATE projects SET scores_from = v_update WHERE id = p_project;
    END IF;

    IF v_conf IS NOT NULL THEN
        -- Confident now, open, labeled by nobody: auto-accepted (or drawn
        -- for the audit, which sends it to humans as before).
        UPDATE tasks t
           SET auto_accept = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN 'audit'
                                  ELSE 'accepted' END,
               auto_accept_saved = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN NULL
                                        ELSE t.required END,
               state = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN t.state ELSE 'complete' END,
               required = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN t.required ELSE 0 END
          FROM quorum_predictions_in i
         WHERE t.id = i.task_id AND t.project_id = p_project AND NOT t.control
           AND t.auto_accept IS NULL AND t.state <> 'complete' AND t.done_count = 0
           AND i.score >= v_conf
           AND (i.prediction->>'label' IS NOT NULL
                OR jsonb_typeof(i.prediction->'labels') = 'object');

        -- Auto-accepted before, not confident enough now: back to humans.
        UPDATE tasks t
           SET auto_accept = NULL, required = t.auto_accept_saved, auto_accept_saved = NULL,
               state = 'waiting'
          FROM quorum_predictions_in i
         WHERE t.id = i.task_id AND t.project_id = p_project AND t.auto_accept = 'accepted'
           AND (i.score IS NULL OR i.score < v_conf
                OR NOT (i.prediction->>'label' IS NOT NULL
                        OR jsonb_typeof(i.prediction->'labels') = 'object'));
        GET DIAGNOSTICS v_reo = ROW_COUNT;
        SELECT count(*) INTO v_acc
          FROM tasks t JOIN quorum_predictions_in i ON t.id = i.task_id
         WHERE t.project_id = p_project AND t.auto_accept = 'accepted';
    END IF;

    RETURN QUERY SELECT v_n, v_acc, v_reo;
END
$$;
-- As sql/0035 says: a hash join larger than work_mem gives its rows in hash
-- order, and the task_scores_task index then takes them at random places.
-- The merge join's sort of a large body fits in 256 MB (1M rows: 96 MB on
-- disk with the default 4 MB, an external merge).
ALTER FUNCTION quorum_predictions_apply(bigint) SET enable_hashjoin = off;
ALTER FUNCTION quorum_predictions_apply(bigint) SET work_mem = '256MB';

-- The refill's walk of a project served from task_scores
-- (QR_SQL_WINDOW_REFILL): after the cursor ('' or "priority id"), up to
-- p_limit tasks, open and not control, each at its newest row -> task id,
-- priority, in order. Its checks run per row as the walk of
-- task_scores_order goes, which stops at the limit; planned with the call's
-- own values (a SQL function with settings is not inlined), and with sorts
-- and bitmap scans off: a plan that reads the project's every row and
-- sorts them (chosen on a stale estimate of the rows the checks keep) took
-- 9.6-11.7 s at 1M tasks, where the walk takes milliseconds.
CREATE FUNCTION quorum_window_scores(p_project bigint, p_cursor text, p_limit bigint)
RETURNS TABLE (id bigint, pr double precision)
LANGUAGE sql STABLE
SET enable_sort = off SET enable_bitmapscan = off
AS $$
    SELECT s.task_id, s.priority FROM task_scores s
     WHERE s.project_id = p_project
       AND (p_cursor = '' OR (s.priority, s.task_id) > (split_part(p_cursor, ' ', 1)::float8,
                                                        split_part(p_cursor, ' ', 2)::bigint))
       AND s.update_id = (SELECT max(n.update_id) FROM task_scores n WHERE n.task_id = s.task_id)
       AND (SELECT t.state <> 'complete' AND NOT t.control FROM tasks t WHERE t.id = s.task_id)
     ORDER BY s.priority, s.task_id LIMIT p_limit
$$;

-- Deletes project p_project's task_scores rows that a newer row of their
-- task supersedes -> how many. The broker runs it after an update's answer.
CREATE FUNCTION quorum_task_scores_prune(p_project bigint) RETURNS bigint
LANGUAGE sql AS $$
    WITH d AS (
        DELETE FROM task_scores s
         WHERE s.project_id = p_project
           AND EXISTS (SELECT 1 FROM task_scores n
                        WHERE n.task_id = s.task_id AND n.update_id > s.update_id)
        RETURNING 1)
    SELECT count(*) FROM d
$$;
