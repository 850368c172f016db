-- 0004_submit_batch.sql - store many submitted annotations in one
-- statement and one commit (group commit), each row with its own outcome.
--
-- Per row, exactly what a single submit does: the task's done_count rises
-- only while it is below required and the annotator has not labeled the
-- task before; the annotation and its lease's history are written. A row
-- that breaks a unique constraint (a reused idempotency key, or a race on
-- (task, annotator)) is rolled back alone (a subtransaction) and reported
-- as 'duplicate'; a task that needs nothing more is 'full'.
CREATE FUNCTION quorum_submit_batch(
    p_task bigint[], p_project bigint[], p_annotator bigint[], p_label text[],
    p_token bigint[], p_idem text[], p_active integer[], p_granted bigint[], p_expires bigint[])
RETURNS TABLE (ord integer, annotation_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    aid bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_task, 1), 0) LOOP
        ord := i;
        annotation_id := NULL;
        BEGIN
            UPDATE tasks SET done_count = done_count + 1,
                   state = CASE WHEN done_count + 1 = required THEN 'complete' ELSE state END
             WHERE id = p_task[i] AND project_id = p_project[i] AND done_count < required
               AND NOT EXISTS (SELECT 1 FROM annotations a
                                WHERE a.task_id = p_task[i] AND a.annotator_id = p_annotator[i]);
            IF NOT FOUND THEN
                outcome := 'full';
            ELSE
                INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,
                                         idempotency_key, active_ms)
                VALUES (p_task[i], p_project[i], p_annotator[i], p_label[i], p_token[i],
                        p_idem[i], p_active[i])
                RETURNING id INTO aid;
                INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at,
                                    expires_at, outcome)
                VALUES (p_project[i], p_token[i], p_task[i], p_annotator[i],
                        to_timestamp(p_granted[i] / 1000.0), to_timestamp(p_expires[i] / 1000.0),
                        'submitted')
                ON CONFLICT DO NOTHING;
                annotation_id := aid;
                outcome := 'created';
            END IF;
        EXCEPTION WHEN unique_violation THEN
            outcome := 'duplicate';
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
