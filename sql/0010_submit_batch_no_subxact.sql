-- 0010_submit_batch_no_subxact.sql - the group commit without a
-- subtransaction per row.
--
-- 0004 caught unique violations with BEGIN ... EXCEPTION, which opens a
-- subtransaction (and assigns it an XID) for every row; past 64 in one
-- transaction every concurrent snapshot overflows its subtransaction cache.
-- Here the annotation goes in first with ON CONFLICT DO NOTHING, so a
-- conflict costs nothing to undo; the task's counter rises only if it is
-- below required (otherwise the fresh annotation is deleted again and the
-- row is 'full'). Rows are taken in task order so two batches lock their
-- tasks in the same order and cannot deadlock. Same arguments, same
-- outcomes as 0004: 'created', 'full' (the task needs nothing more, or this
-- annotator labeled it already) or 'duplicate' (the idempotency key was used
-- for another task).
CREATE OR REPLACE FUNCTION quorum_submit_batch(
    p_task bigint[], p_project bigint[], p_annotator bigint[], p_label text[],
    p_token bigint[], p_idem text[], p_active integer[], p_granted bigint[], p_expires bigint[])
RETURNS TABLE (ord integer, annotation_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    aid bigint;
BEGIN
    FOR i IN SELECT g FROM generate_subscripts(p_task, 1) AS g ORDER BY p_task[g], g LOOP
        ord := i;
        annotation_id := NULL;
        aid := NULL;
        INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,
                                 idempotency_key, active_ms)
        SELECT p_task[i], p_project[i], p_annotator[i], p_label[i], p_token[i], p_idem[i],
               p_active[i]
         WHERE EXISTS (SELECT 1 FROM tasks WHERE id = p_task[i] AND project_id = p_project[i])
        ON CONFLICT DO NOTHING
        RETURNING id INTO aid;
        IF aid IS NULL THEN
            IF EXISTS (SELECT 1 FROM annotations a
                        WHERE a.task_id = p_task[i] AND a.annotator_id = p_annotator[i])
               OR NOT EXISTS (SELECT 1 FROM tasks WHERE id = p_task[i]
                                                    AND project_id = p_project[i]) THEN
                outcome := 'full';
            ELSE
                outcome := 'duplicate';
            END IF;
        ELSE
            UPDATE tasks SET done_count = done_count + 1,
                   state = CASE WHEN done_count + 1 = required THEN 'complete' ELSE state END
             WHERE id = p_task[i] AND done_count < required;
            IF NOT FOUND THEN
                DELETE FROM annotations WHERE id = aid;
                outcome := 'full';
            ELSE
                INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at,
                                    expires_at, outcome)
                VALUES (p_project[i], p_token[i], p_task[i], p_annotator[i],
                        to_timestamp(p_granted[i] / 1000.0), to_timestamp(p_expires[i] / 1000.0),
                        'submitted')
                ON CONFLICT DO NOTHING;
                annotation_id := aid;
                outcome := 'created';
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
