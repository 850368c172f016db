-- 0025_label_schema.sql - a project's label schema (issue 15).
--
-- A plain project labels one choice among projects.labels, as before. A
-- project made with a schema labels one value per named field (choice,
-- multi_choice, rating, spans, boxes, text): projects.schema holds the
-- schema as the broker normalized it ({"fields": [...]}, every default
-- filled in, common/label_schema.c), and projects.labels is [] (the CHECK
-- below). The schema is fixed when the project is made.
--
-- An annotation of a schema project stores its value in annotations.label
-- as the canonical JSON text of the labels object (keys in schema field
-- order, values in canonical order: docs/API.md, "Label schemas"), so that
-- the same submission is the same bytes and an idempotent resend compares
-- equal. Span fields are checked against the length of a string of the
-- task's data in characters: PostgreSQL's length() counts code points in a
-- UTF8 database (deploy/stack.sh creates it so).
ALTER TABLE projects ADD COLUMN schema jsonb
    CHECK (schema IS NULL OR jsonb_typeof(schema -> 'fields') = 'array');
ALTER TABLE projects ADD CONSTRAINT projects_schema_no_labels
    CHECK (schema IS NULL OR labels = '[]'::jsonb);

-- A stored label as JSON: the parsed object of a schema project's canonical
-- text, else the text as a JSON string (a label some other path stored,
-- which must not fail the transaction that delivers a webhook).
CREATE FUNCTION quorum_label_json(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN to_jsonb(t);
END
$$;

-- Webhook payloads (sql/0022_webhooks.sql) of a schema project carry the
-- value as export does: "label" null and "labels" the parsed object. A plain
-- project's payloads are unchanged.
CREATE OR REPLACE FUNCTION quorum_webhook_annotation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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

CREATE OR REPLACE FUNCTION quorum_webhook_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    flag text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE project_id = NEW.project_id
                    AND events && ARRAY['task.completed', 'project.completed']) THEN
        RETURN NULL;
    END IF;
    WITH w AS (SELECT id FROM webhooks WHERE project_id = NEW.project_id
                AND 'task.completed' = ANY (events)),
    ev AS (
        INSERT INTO webhook_events (project_id, type, payload)
        SELECT NEW.project_id, 'task.completed',
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
         WHERE t.id = NEW.id AND t.state = 'complete' AND EXISTS (SELECT 1 FROM w)
        RETURNING id)
    INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT w.id, ev.id FROM w, ev;

    IF EXISTS (SELECT 1 FROM webhooks WHERE project_id = NEW.project_id
                AND 'project.completed' = ANY (events)) THEN
        flag := 'quorum.project_completed_' || NEW.project_id;
        IF coalesce(current_setting(flag, true), '') = '' THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('quorum.project.completed',
                                                           NEW.project_id));
            IF NOT EXISTS (SELECT 1 FROM tasks WHERE project_id = NEW.project_id
                            AND state <> 'complete') THEN
                PERFORM set_config(flag, '1', true);
                PERFORM quorum_webhook_emit(NEW.project_id, 'project.completed',
                    jsonb_build_object('tasks', (SELECT count(*) FROM tasks
                                                  WHERE project_id = NEW.project_id)));
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
