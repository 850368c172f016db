-- 0028_gold_serving.sql - gold (control) tasks served at a rate, and
-- annotators paused below a gold accuracy (issue 16, point 1).
--
-- A project serves gold when gold_rate (the share p of each annotator's
-- leases after onboarding) or gold_onboarding (the first N leases of each
-- annotator) is above 0. Its tasks with a gold answer are then control
-- tasks: tasks.control is true, they are never in the normal queue (the
-- window refill skips them), and their required count is QR_CONTROL_REQUIRED
-- (1,000,000), so that one annotation per annotator always fits under the
-- constraints of sql/0001_init.sql without changing quorum_submit_batch:
-- a control task never completes and its annotations never consume an
-- overlap. The lease engine serves them from a set of its own in Redis
-- (broker/lease/lease.h). Which tasks are control follows the setting: a
-- trigger marks a gold task when it is imported into a serving project,
-- and another turns a project's open gold tasks into control tasks when
-- serving is switched on, and back when it is switched off.
--
-- gold_min_accuracy and gold_min_count: after a gold annotation commits,
-- quorum_gold_judge compares the annotator's gold answers since their last
-- reinstatement with the gold; at least gold_min_count of them and an
-- accuracy below gold_min_accuracy record a pause (annotator_pauses, one
-- live pause per project and annotator), and the broker stops granting
-- them leases until a manager reinstates them.

ALTER TABLE projects
    ADD COLUMN gold_rate double precision NOT NULL DEFAULT 0
        CHECK (gold_rate BETWEEN 0 AND 1),
    ADD COLUMN gold_onboarding integer NOT NULL DEFAULT 0
        CHECK (gold_onboarding BETWEEN 0 AND 10000),
    ADD COLUMN gold_min_accuracy double precision
        CHECK (gold_min_accuracy BETWEEN 0 AND 1),
    ADD COLUMN gold_min_count integer NOT NULL DEFAULT 10
        CHECK (gold_min_count BETWEEN 1 AND 100000);

ALTER TABLE tasks
    ADD COLUMN control boolean NOT NULL DEFAULT false,
    DROP CONSTRAINT tasks_required_check,
    ADD CONSTRAINT tasks_required_check CHECK (required BETWEEN 0 AND 100
        OR (control AND required = 1000000)),
    ADD CONSTRAINT tasks_control_check CHECK (NOT control
        OR (gold IS NOT NULL AND state <> 'complete' AND required = 1000000));

-- The gold tasks the lease engine serves, per project.
CREATE INDEX tasks_control ON tasks (project_id, id) WHERE control;

CREATE TABLE annotator_pauses (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    annotator_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason         text NOT NULL,
    accuracy       double precision NOT NULL,
    compared       integer NOT NULL,
    paused_at      timestamptz NOT NULL DEFAULT now(),
    reinstated_at  timestamptz,
    reinstated_by  bigint REFERENCES users (id) ON DELETE SET NULL
);

-- One live pause per annotator and project.
CREATE UNIQUE INDEX annotator_pauses_live ON annotator_pauses (project_id, annotator_id)
    WHERE reinstated_at IS NULL;

-- Whether project p serves gold.
CREATE FUNCTION quorum_gold_serving(p_project bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT gold_rate > 0 OR gold_onboarding > 0 FROM projects
                      WHERE id = p_project), false)
$$;

-- A task imported with a gold answer into a project serving gold is a
-- control task. A row trigger whose WHEN skips every task without gold, so
-- an import without gold pays nothing.
CREATE FUNCTION quorum_task_control() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.control AND NEW.done_count = 0 AND quorum_gold_serving(NEW.project_id) THEN
        NEW.control := true;
        NEW.required := 1000000;
        NEW.state := 'waiting';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_control BEFORE INSERT ON tasks
    FOR EACH ROW WHEN (NEW.gold IS NOT NULL) EXECUTE FUNCTION quorum_task_control();

-- Serving switched on: the project's open gold tasks become control tasks
-- (their annotations so far count as gold answers). Switched off: control
-- tasks go back to the queue, with the overlap of their kind, complete when
-- they hold that many annotations already (a task with more than 100 stays
-- a control task: no overlap may be that high).
CREATE FUNCTION quorum_project_gold() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.gold_rate > 0 OR NEW.gold_onboarding > 0 THEN
        UPDATE tasks SET control = true, required = 1000000
         WHERE project_id = NEW.id AND gold IS NOT NULL AND NOT control AND state <> 'complete';
    ELSE
        UPDATE tasks t SET control = false, required = r.req,
               state = CASE WHEN t.done_count = r.req THEN 'complete' ELSE 'waiting' END
          FROM (SELECT id, greatest(done_count, CASE WHEN overlap THEN NEW.overlap_annotations
                                                     ELSE NEW.annotations_per_task END) AS req
                  FROM tasks WHERE project_id = NEW.id AND control) r
         WHERE t.id = r.id AND r.req <= 100;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER projects_gold AFTER UPDATE OF gold_rate, gold_onboarding ON projects
    FOR EACH ROW
    WHEN ((OLD.gold_rate > 0 OR OLD.gold_onboarding > 0)
          IS DISTINCT FROM (NEW.gold_rate > 0 OR NEW.gold_onboarding > 0))
    EXECUTE FUNCTION quorum_project_gold();

-- A control task is never auto-accepted: the same function as in
-- sql/0026_auto_accept.sql, skipping control tasks.
CREATE OR REPLACE FUNCTION quorum_auto_accept(p_project bigint, p_import bigint, p_first bigint,
                                              p_last bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_conf double precision;
    v_audit double precision;
    v_n bigint;
BEGIN
    SELECT auto_accept_confidence, auto_accept_audit INTO v_conf, v_audit
      FROM projects WHERE id = p_project;
    IF v_conf IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE tasks t
       SET auto_accept = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN 'audit' ELSE 'accepted' END,
           auto_accept_saved = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN NULL
                                    ELSE t.required END,
           state = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN t.state ELSE 'complete' END,
           required = CASE WHEN quorum_audit_draw(t.id, v_audit) THEN t.required ELSE 0 END
     WHERE t.project_id = p_project AND t.id BETWEEN p_first AND p_last
       AND t.import_id = p_import AND t.done_count = 0 AND NOT t.control
       AND t.prediction_score >= v_conf
       AND (t.prediction->>'label' IS NOT NULL OR jsonb_typeof(t.prediction->'labels') = 'object');
    SELECT count(*) INTO v_n FROM tasks
     WHERE project_id = p_project AND id BETWEEN p_first AND p_last AND import_id = p_import
       AND auto_accept = 'accepted';
    RETURN v_n;
END
$$;

-- An annotator's gold answers on project p since their last reinstatement
-- (a reinstated annotator is judged on new answers only): compared, agreeing.
CREATE FUNCTION quorum_gold_tally(p_project bigint, p_annotator bigint,
                                  OUT compared bigint, OUT agree bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*), count(*) FILTER (WHERE a.label = t.gold)
      FROM annotations a JOIN tasks t ON t.id = a.task_id
     WHERE a.project_id = p_project AND a.annotator_id = p_annotator AND t.control
       AND a.created_at > coalesce((SELECT max(reinstated_at) FROM annotator_pauses
                                     WHERE project_id = p_project
                                       AND annotator_id = p_annotator), '-infinity')
$$;

-- After a gold annotation of p_annotator committed: whether they are
-- paused (a live pause, found or made now), whether this call made it, and
-- its reason. A pause is made when the project sets gold_min_accuracy, the
-- annotator answered at least gold_min_count gold tasks since their last
-- reinstatement and fewer than that share of them right. Two brokers
-- judging at once make one pause (the unique index annotator_pauses_live).
CREATE FUNCTION quorum_gold_judge(p_project bigint, p_annotator bigint,
                                  OUT paused boolean, OUT created boolean, OUT reason text)
LANGUAGE plpgsql AS $$
DECLARE
    v_min double precision;
    v_count integer;
    v_n bigint;
    v_k bigint;
BEGIN
    paused := false;
    created := false;
    SELECT p.reason INTO reason FROM annotator_pauses p
     WHERE p.project_id = p_project AND p.annotator_id = p_annotator AND p.reinstated_at IS NULL;
    IF FOUND THEN
        paused := true;
        RETURN;
    END IF;
    SELECT gold_min_accuracy, gold_min_count INTO v_min, v_count FROM projects
     WHERE id = p_project;
    IF v_min IS NULL THEN
        RETURN;
    END IF;
    SELECT g.compared, g.agree INTO v_n, v_k FROM quorum_gold_tally(p_project, p_annotator) g;
    IF v_n < v_count OR v_k::double precision / v_n >= v_min THEN
        RETURN;
    END IF;
    reason := format('gold accuracy %s over %s gold tasks is below the project''s minimum %s',
                     round(v_k::numeric / v_n, 3), v_n, v_min);
    INSERT INTO annotator_pauses (project_id, annotator_id, reason, accuracy, compared)
    VALUES (p_project, p_annotator, reason, v_k::double precision / v_n, v_n)
    ON CONFLICT (project_id, annotator_id) WHERE reinstated_at IS NULL DO NOTHING;
    created := FOUND;
    IF NOT created THEN
        SELECT p.reason INTO reason FROM annotator_pauses p
         WHERE p.project_id = p_project AND p.annotator_id = p_annotator
           AND p.reinstated_at IS NULL;
    END IF;
    paused := true;
END
$$;

-- The hourly annotation rollup of sql/0013_event_hours.sql, leaving out
-- annotations of control tasks (throughput never counts gold answers); the
-- same function otherwise. Hours rolled before a task became (or stopped
-- being) a control task keep what they counted then.
CREATE OR REPLACE FUNCTION quorum_roll_annotation_hours(p_upto timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(72070013);
    WITH st AS (
        SELECT p.id AS project_id,
               coalesce(r.rolled_to, (SELECT date_trunc('hour', min(a.created_at), 'UTC')
                                        FROM annotations a WHERE a.project_id = p.id),
                        date_trunc('hour', p_upto, 'UTC')) AS from_t,
               date_trunc('hour', p_upto, 'UTC') AS to_t
          FROM projects p LEFT JOIN annotation_hours_rolled r ON r.project_id = p.id),
    ins AS (
        INSERT INTO annotation_hours AS o (project_id, hour, annotator_id, annotations,
                                           tasks_completed)
        SELECT a.project_id, date_trunc('hour', a.created_at, 'UTC'), a.annotator_id, count(*),
               count(*) FILTER (WHERE t.state = 'complete' AND NOT EXISTS (
                   SELECT 1 FROM annotations b WHERE b.task_id = a.task_id
                      AND (b.created_at > a.created_at
                           OR (b.created_at = a.created_at AND b.id > a.id))))
          FROM st JOIN annotations a ON a.project_id = st.project_id
                   AND a.created_at >= st.from_t AND a.created_at < st.to_t
          LEFT JOIN tasks t ON t.id = a.task_id
         WHERE st.from_t < st.to_t AND NOT coalesce(t.control, false)
         GROUP BY 1, 2, 3
        ON CONFLICT (project_id, hour, annotator_id) DO UPDATE
           SET annotations = o.annotations + excluded.annotations,
               tasks_completed = o.tasks_completed + excluded.tasks_completed)
    INSERT INTO annotation_hours_rolled AS r (project_id, rolled_to)
    SELECT project_id, to_t FROM st WHERE from_t <= to_t
    ON CONFLICT (project_id) DO UPDATE SET rolled_to = excluded.rolled_to
     WHERE r.rolled_to < excluded.rolled_to;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- An undone gold answer was never rolled up: nothing to take back. The
-- function of sql/0013_event_hours.sql otherwise.
CREATE OR REPLACE FUNCTION quorum_annotation_hours_unroll() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    upto timestamptz;
    last_at timestamptz;
    last_by bigint;
BEGIN
    SELECT rolled_to INTO upto FROM annotation_hours_rolled WHERE project_id = OLD.project_id;
    -- Not rolled yet: neither is the task's last annotation (it is no older).
    IF upto IS NULL OR OLD.created_at >= upto THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM tasks t WHERE t.id = OLD.task_id AND t.control) THEN
        RETURN NULL;
    END IF;
    UPDATE annotation_hours SET annotations = annotations - 1
     WHERE project_id = OLD.project_id AND hour = date_trunc('hour', OLD.created_at, 'UTC')
       AND annotator_id = OLD.annotator_id;
    IF EXISTS (SELECT 1 FROM tasks t WHERE t.id = OLD.task_id AND t.done_count + 1 = t.required)
    THEN
        SELECT z.created_at, z.annotator_id INTO last_at, last_by
          FROM (SELECT OLD.created_at AS created_at, OLD.annotator_id AS annotator_id, OLD.id AS id
                UNION ALL
                SELECT a.created_at, a.annotator_id, a.id FROM annotations a
                 WHERE a.task_id = OLD.task_id) z
         ORDER BY z.created_at DESC, z.id DESC LIMIT 1;
        IF last_at < upto THEN
            UPDATE annotation_hours SET tasks_completed = tasks_completed - 1
             WHERE project_id = OLD.project_id AND hour = date_trunc('hour', last_at, 'UTC')
               AND annotator_id = last_by;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Dynamic overlap (sql/0027_dynamic_overlap.sql) bounds what a task needs
-- by overlap_max; a control task's 1,000,000 is no overlap, so both guards
-- leave control tasks out (else serving gold in a project with dynamic
-- overlap, or setting overlap_max in one serving gold, would be refused).
CREATE OR REPLACE FUNCTION quorum_required_within_max() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.control
       AND EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id AND NEW.required > overlap_max)
    THEN
        RAISE EXCEPTION 'task % would need % annotations, above its project''s overlap_max',
            NEW.id, NEW.required USING ERRCODE = 'QO422';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION quorum_overlap_max_fits() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_top integer;
BEGIN
    SELECT max(required) INTO v_top FROM tasks WHERE project_id = NEW.id AND NOT control;
    IF v_top > NEW.overlap_max THEN
        RAISE EXCEPTION 'overlap_max % is below the % annotations a task of project % already needs',
            NEW.overlap_max, v_top, NEW.id USING ERRCODE = 'QO422';
    END IF;
    RETURN NEW;
END
$$;
