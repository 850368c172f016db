-- 0032_predictions_control.sql - a predictions update (sql/0029) never
-- auto-accepts a control (gold) task of sql/0028_gold_serving.sql: such a
-- task never completes, it measures the annotators. quorum_predictions_apply
-- as in 0029, with control tasks left out of auto-accept and reopening.

CREATE OR REPLACE FUNCTION quorum_predictions_apply(p_project bigint)
RETURNS TABLE (updated bigint, auto_accepted bigint, reopened bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
    v_n bigint;
    v_sampling text;
    v_first boolean;
    v_conf double precision;
    v_audit double precision;
    v_line bigint;
    v_msg text;
    v_acc bigint := 0;
    v_reo bigint := 0;
BEGIN
    SELECT sampling, overlap_first, auto_accept_confidence, auto_accept_audit
      INTO v_sampling, v_first, v_conf, v_audit
      FROM projects WHERE id = p_project;
    -- No ANALYZE: a temporary table never analyzed is estimated from its
    -- pages when planned, which picks a hash join for a large body and
    -- index lookups for a small one.
    SELECT count(*) INTO v_rows FROM quorum_predictions_in;

    UPDATE quorum_predictions_in i SET task_id = t.id
      FROM tasks t
     WHERE i.task_id IS NULL AND t.project_id = p_project AND t.external_id = i.external_id;

    UPDATE tasks t
       SET prediction = i.prediction, prediction_score = i.score,
           priority = CASE WHEN v_sampling = 'uncertainty'
                           THEN coalesce(i.score, -1)
                                - CASE WHEN v_first AND t.overlap THEN 1e16 ELSE 0 END
                           ELSE t.priority END
      FROM quorum_predictions_in i
     WHERE t.id = i.task_id AND t.project_id = p_project;
    GET DIAGNOSTICS v_n = ROW_COUNT;

    IF v_n <> v_rows THEN
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

    IF v_conf IS NOT NULL THEN
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
           AND t.prediction_score >= v_conf
           AND (t.prediction->>'label' IS NOT NULL
                OR jsonb_typeof(t.prediction->'labels') = 'object');

        UPDATE tasks t
           SET auto_accept = NULL, required = t.auto_accept_saved, auto_accept_saved = NULL,
               state = 'waiting'
          FROM quorum_predictions_in i
         WHERE t.id = i.task_id AND t.project_id = p_project AND t.auto_accept = 'accepted'
           AND (t.prediction_score IS NULL OR t.prediction_score < v_conf
                OR NOT (t.prediction->>'label' IS NOT NULL
                        OR jsonb_typeof(t.prediction->'labels') = 'object'));
        GET DIAGNOSTICS v_reo = ROW_COUNT;
        SELECT count(*) INTO v_acc
          FROM tasks t JOIN quorum_predictions_in i ON t.id = i.task_id
         WHERE t.project_id = p_project AND t.auto_accept = 'accepted';
    END IF;

    RETURN QUERY SELECT v_n, v_acc, v_reo;
END
$$;
