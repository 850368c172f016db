-- 0026_auto_accept.sql - confident predictions auto-accepted, with an audit
-- (issue 16, point 4).
--
-- A project may set auto_accept_confidence: a task imported with a
-- prediction (a label, or a schema project's labels) scored at least that
-- completes without a human, as auto-accepted, unless it is drawn for the
-- audit (a share auto_accept_audit of those tasks, drawn uniformly by a hash
-- of the task id, so the draw is the same on every broker and every run):
-- an audited task goes to humans like any other, and the report compares
-- its prediction with their consensus (the audited accuracy).
--
-- An auto-accepted task is complete with nothing left to do: its required
-- count becomes 0 (done_count is 0), so every reader of state = 'complete'
-- and required - done_count sees it done, the Redis window never loads it,
-- and no annotation can be stored on it. auto_accept_saved keeps the
-- annotations it would have needed (the human labels saved).

ALTER TABLE projects
    ADD COLUMN auto_accept_confidence double precision
        CHECK (auto_accept_confidence BETWEEN 0 AND 1),
    ADD COLUMN auto_accept_audit double precision NOT NULL DEFAULT 0
        CHECK (auto_accept_audit BETWEEN 0 AND 1);

ALTER TABLE tasks
    ADD COLUMN auto_accept text CHECK (auto_accept IN ('accepted', 'audit')),
    ADD COLUMN auto_accept_saved integer,
    DROP CONSTRAINT tasks_required_check,
    ADD CONSTRAINT tasks_required_check CHECK (required BETWEEN 0 AND 100),
    ADD CONSTRAINT tasks_accepted_check CHECK (auto_accept IS DISTINCT FROM 'accepted'
        OR (required = 0 AND done_count = 0 AND state = 'complete' AND auto_accept_saved >= 1));

-- Whether task p_id falls in an audit sample of share p_share: a uniform,
-- stable draw (hashint8 is PostgreSQL's hash of a bigint, the same on every
-- server of one major version).
CREATE FUNCTION quorum_audit_draw(p_id bigint, p_share double precision)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (hashint8(p_id) & 65535) < p_share * 65536
$$;

-- Auto-accepts the tasks of import p_import (ids p_first..p_last) of project
-- p_project whose prediction is confident enough, drawing the audit sample
-- among them. Tasks that already hold an annotation (an import counted
-- toward the overlap) are left to humans. Returns how many were accepted.
CREATE FUNCTION quorum_auto_accept(p_project bigint, p_import bigint, p_first bigint,
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
       AND t.import_id = p_import AND t.done_count = 0
       AND t.prediction_score >= v_conf
       AND (t.prediction->>'label' IS NOT NULL OR jsonb_typeof(t.prediction->'labels') = 'object');
    SELECT count(*) INTO v_n FROM tasks
     WHERE project_id = p_project AND id BETWEEN p_first AND p_last AND import_id = p_import
       AND auto_accept = 'accepted';
    RETURN v_n;
END
$$;

-- After an import's COPY, in its transaction: the imported annotations
-- (quorum_import_annotations; none when p_tasks is NULL), then the
-- auto-accept, in that order (a task counted by an imported annotation is
-- no longer one to auto-accept). Returns the annotations written.
CREATE FUNCTION quorum_import_post(p_project bigint, p_user text, p_count boolean,
                                   p_tasks bigint[], p_annotations jsonb, p_import bigint,
                                   p_first bigint, p_last bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint := 0;
BEGIN
    IF p_tasks IS NOT NULL THEN
        v_n := quorum_import_annotations(p_project, p_user, p_count, p_tasks, p_annotations);
    END IF;
    PERFORM quorum_auto_accept(p_project, p_import, p_first, p_last);
    RETURN v_n;
END
$$;
