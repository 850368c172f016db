-- 0041_commit_triggers.sql - less work per durable completion (issue 18)
-- in what fires around quorum_submit_batch, the same rows and events
-- written.
--
-- Measured: quorum_submit_batch called 100 times with 64 new annotations
-- each, in one backend, deferred triggers fired at once, rolled back; the
-- backend's CPU time per annotation (/proc), two passes: 136-142 us before,
-- 106-108 us after (the three changes together; each alone: 8, 13 and 5).
--
-- 1. A task reaching 'complete' fired two deferred triggers, each a
--    PL/pgSQL call with its own lookups: review_task_completed
--    (sql/0031_review.sql: is the task still complete, then
--    quorum_review_select: a requeued review?, the project's review_mode)
--    and webhook_task_completed (sql/0022, 0025: a webhook subscribed?).
--    One trigger, tasks_completed, now asks all of it in one query and
--    returns when there is nothing to do, as it is for most projects; else
--    it runs quorum_review_select, then the webhook's part
--    (quorum_webhook_task_completed, the body of the old trigger function),
--    in the order the two triggers fired (by name). A task no longer
--    complete at commit gets neither, as before: its review needs it
--    complete, its task.completed event was written only for a complete
--    task, and its project has an open task, so no project.completed.
--    review_task_inserted (a task imported complete) is unchanged.
-- 2. annotations and leases had a foreign key to projects beside the one
--    to tasks: two more key-share row locks per annotation, all on the same
--    project row. Every writer names a task of the project (the submit
--    checks it; the lease engine's rows come from the project's own keys),
--    deleting a project deletes its tasks and so, through their ON DELETE
--    CASCADE, its annotations and leases. The two keys go.
-- 3. annotation.created: the trigger on annotations ran its whole
--    statement (a CTE, an INSERT ... SELECT over four tables) for every
--    annotation to find that no webhook is subscribed. It now asks first.

CREATE FUNCTION quorum_webhook_task_completed(p_project bigint, p_task bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    flag text;
BEGIN
    WITH w AS (SELECT id FROM webhooks WHERE project_id = p_project
                AND 'task.completed' = ANY (events)),
    ev AS (
        INSERT INTO webhook_events (project_id, type, payload)
        SELECT p_project, 'task.completed',
               jsonb_build_object('task_id', t.id, 'external_id', t.external_id,
                   'annotations', t.done_count,
                   'labels', coalesce((SELECT jsonb_agg(
                                           CASE WHEN p.schema IS NULL
                                           THEN jsonb_build_object('annotator_id', a.annotator_id,
                                                                   'label', a.label)
                                           ELSE jsonb_build_object('annotator_id', a.annotator_id,
                                                   'label', NULL,
                                                   'labels', quorum_label_json(a.label)) END
                                           ORDER BY a.id)
                                         FROM annotations a WHERE a.task_id = t.id), '[]'))
          FROM tasks t JOIN projects p ON p.id = t.project_id
         WHERE t.id = p_task AND t.state = 'complete' AND EXISTS (SELECT 1 FROM w)
        RETURNING id)
    INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT w.id, ev.id FROM w, ev;

    IF EXISTS (SELECT 1 FROM webhooks WHERE project_id = p_project
                AND 'project.completed' = ANY (events)) THEN
        flag := 'quorum.project_completed_' || p_project;
        IF coalesce(current_setting(flag, true), '') = '' THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('quorum.project.completed',
                                                           p_project));
            IF NOT EXISTS (SELECT 1 FROM tasks WHERE project_id = p_project
                            AND state <> 'complete') THEN
                PERFORM set_config(flag, '1', true);
                PERFORM quorum_webhook_emit(p_project, 'project.completed',
                    jsonb_build_object('tasks', (SELECT count(*) FROM tasks
                                                  WHERE project_id = p_project)));
            END IF;
        END IF;
    END IF;
END
$$;

CREATE FUNCTION quorum_task_completed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    still boolean;
    review boolean;
    hooks boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.id = NEW.id AND t.state = 'complete'),
           p.review_mode <> 'none'
            OR EXISTS (SELECT 1 FROM reviews r WHERE r.task_id = NEW.id AND r.state = 'requeued'),
           EXISTS (SELECT 1 FROM webhooks w WHERE w.project_id = NEW.project_id
                    AND w.events && ARRAY['task.completed', 'project.completed'])
      INTO still, review, hooks
      FROM projects p WHERE p.id = NEW.project_id;
    IF NOT coalesce(still, false) THEN
        RETURN NULL;
    END IF;
    IF review THEN
        PERFORM quorum_review_select(NEW.project_id, NEW.id);
    END IF;
    IF hooks THEN
        PERFORM quorum_webhook_task_completed(NEW.project_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER review_task_completed ON tasks;
DROP TRIGGER webhook_task_completed ON tasks;
DROP FUNCTION quorum_webhook_task();
CREATE CONSTRAINT TRIGGER tasks_completed AFTER UPDATE OF state ON tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.state = 'complete' AND OLD.state <> 'complete')
    EXECUTE FUNCTION quorum_task_completed();

ALTER TABLE annotations DROP CONSTRAINT annotations_project_id_fkey;
ALTER TABLE leases DROP CONSTRAINT leases_project_id_fkey;

CREATE OR REPLACE FUNCTION quorum_webhook_annotation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE project_id = NEW.project_id
                    AND 'annotation.created' = ANY (events)) THEN
        RETURN NULL;
    END IF;
    WITH w AS (SELECT id FROM webhooks WHERE project_id = NEW.project_id
                AND 'annotation.created' = ANY (events)),
    ev AS (
        INSERT INTO webhook_events (project_id, type, payload)
        SELECT NEW.project_id, 'annotation.created',
               jsonb_build_object('annotation_id', a.id, 'task_id', a.task_id,
                   'external_id', t.external_id, 'annotator_id', a.annotator_id,
                   'annotator', u.name, 'label', a.label, 'active_ms', a.active_ms,
                   'created_at', to_char(a.created_at AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
               || CASE WHEN p.schema IS NULL THEN '{}'::jsonb
                  ELSE jsonb_build_object('label', NULL, 'labels', quorum_label_json(a.label)) END
          FROM annotations a JOIN tasks t ON t.id = a.task_id
          JOIN users u ON u.id = a.annotator_id JOIN projects p ON p.id = a.project_id
         WHERE a.id = NEW.id AND EXISTS (SELECT 1 FROM w)
        RETURNING id)
    INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT w.id, ev.id FROM w, ev;
    RETURN NULL;
END
$$;
