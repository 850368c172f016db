-- 0022_webhooks.sql - webhooks: a project's subscriptions, the outbox of
-- events they report, and one delivery row per (subscription, event).
--
-- Events are written by triggers in the transaction that makes the change
-- they report, so an event exists exactly when its change was committed.
-- The broker's dispatcher (broker/webhook/) reads due deliveries in its own
-- connection, off the lease and submit paths, and posts them; a receiver
-- that is down only leaves rows pending here.
--
-- The annotation and task triggers are deferred constraint triggers: they
-- run at commit, after quorum_submit_batch has dropped the annotations that
-- did not fit their task, so an event names only what was kept.

CREATE TABLE webhooks (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url            text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    events         text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 3
                   AND events <@ ARRAY['annotation.created', 'task.completed', 'project.completed']),
    -- The signing secret sealed with the broker's webhook key (AES-256-GCM,
    -- broker/webhook/webhook_crypto.c): never stored in the clear.
    secret_sealed  text NOT NULL,
    created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project ON webhooks (project_id);

CREATE TABLE webhook_events (
    id          bigserial PRIMARY KEY,
    uid         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE, -- the idempotency id
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_events_project ON webhook_events (project_id, id);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status      integer,      -- the receiver's HTTP status; NULL: no answer
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

-- Writes one event of project p_project and a delivery for each webhook
-- subscribed to its type; nothing when none is (the common case costs one
-- index lookup).
CREATE FUNCTION quorum_webhook_emit(p_project bigint, p_type text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ev bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE project_id = p_project
                    AND p_type = ANY (events)) THEN
        RETURN;
    END IF;
    INSERT INTO webhook_events (project_id, type, payload)
    VALUES (p_project, p_type, p_payload) RETURNING id INTO ev;
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT id, ev FROM webhooks WHERE project_id = p_project AND p_type = ANY (events);
END
$$;

-- annotation.created, at commit, for an annotation still there then. One
-- statement per row (each statement of a trigger costs more than its work
-- here): the subscribed webhooks, the event, its deliveries.
CREATE FUNCTION quorum_webhook_annotation() RETURNS trigger LANGUAGE plpgsql AS $$
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
          FROM annotations a JOIN tasks t ON t.id = a.task_id
          JOIN users u ON u.id = a.annotator_id
         WHERE a.id = NEW.id AND EXISTS (SELECT 1 FROM w)
        RETURNING id)
    INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT w.id, ev.id FROM w, ev;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER webhook_annotation_created AFTER INSERT ON annotations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION quorum_webhook_annotation();

-- task.completed, at commit, for a task still complete then; and
-- project.completed when it was the project's last open task. Two
-- transactions completing a project's last two tasks at once each see the
-- other's task open under their snapshots, so the check for open tasks
-- runs under a per-project advisory lock: the second to take it runs its
-- query after the first committed and sees both. One transaction reports
-- a project's completion once (a transaction-local setting remembers it).
CREATE FUNCTION quorum_webhook_task() RETURNS trigger LANGUAGE plpgsql AS $$
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
                   'labels', coalesce((SELECT jsonb_agg(jsonb_build_object('annotator_id',
                                           a.annotator_id, 'label', a.label) ORDER BY a.id)
                                         FROM annotations a WHERE a.task_id = t.id), '[]'))
          FROM tasks t WHERE t.id = NEW.id AND t.state = 'complete' AND EXISTS (SELECT 1 FROM w)
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

CREATE CONSTRAINT TRIGGER webhook_task_completed AFTER UPDATE OF state ON tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.state = 'complete' AND OLD.state <> 'complete')
    EXECUTE FUNCTION quorum_webhook_task();
