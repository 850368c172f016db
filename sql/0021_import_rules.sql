-- 0021_import_rules.sql - imported annotations land with their tasks.
--
-- A Label Studio task's annotations (tasks with "annotations", see
-- 0018_data_io.sql) are written by quorum_import_annotations after the
-- import's COPY, in the same transaction (qr_pg_copy_in_tx_post), so an
-- import commits its tasks, its record and its annotations together or
-- nothing. They are attributed to a named user of the project's
-- organization, or to the pseudo-user `imported` (an annotator of that
-- organization without a token, created on first use). Counted toward the
-- overlap only when the import asks for it: then the first annotation of
-- each task with a single label (not cancelled) is also a row of
-- `annotations` by that user (fencing token 0: no lease wrote it), and the
-- task's done_count and state follow, as a submit would leave them.

-- p_tasks[i] is the task whose annotations are p_annotations->(i-1), an array
-- of {"label", "result", "lead_time", "was_cancelled", "ground_truth",
-- "source_id", "created_at"} (broker/import/import.h). An unknown p_user
-- raises SQLSTATE QI422 (the broker answers 422 unknown_user). Returns the
-- number of imported annotations written.
CREATE FUNCTION quorum_import_annotations(
    p_project bigint, p_user text, p_count boolean, p_tasks bigint[], p_annotations jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_org bigint;
    v_user bigint;
    v_n bigint;
BEGIN
    SELECT org_id INTO v_org FROM projects WHERE id = p_project;
    IF p_user IS NULL THEN
        INSERT INTO users (org_id, name, role) VALUES (v_org, 'imported', 'annotator')
            ON CONFLICT (org_id, name) DO NOTHING;
        p_user := 'imported';
    END IF;
    SELECT id INTO v_user FROM users WHERE org_id = v_org AND name = p_user;
    IF v_user IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'QI422',
            MESSAGE = format('no user named "%s" in the project''s organization', p_user);
    END IF;
    INSERT INTO imported_annotations (project_id, task_id, annotator_id, label, result, lead_time,
                                      was_cancelled, ground_truth, source_id, created_at)
    SELECT p_project, t.task_id, v_user, a->>'label', a->'result', (a->>'lead_time')::float8,
           (a->>'was_cancelled')::boolean, (a->>'ground_truth')::boolean, a->>'source_id',
           coalesce((a->>'created_at')::timestamptz, now())
      FROM unnest(p_tasks) WITH ORDINALITY AS t(task_id, i),
           jsonb_array_elements(p_annotations->(t.i::int - 1)) AS a;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF p_count THEN
        WITH firsts AS (
            SELECT DISTINCT ON (t.task_id) t.task_id, a->>'label' AS label,
                   coalesce((a->>'created_at')::timestamptz, now()) AS at,
                   least(round((a->>'lead_time')::float8 * 1000), 2147483647)::integer AS active_ms
              FROM unnest(p_tasks) WITH ORDINALITY AS t(task_id, i),
                   jsonb_array_elements(p_annotations->(t.i::int - 1)) WITH ORDINALITY AS x(a, k)
             WHERE a->>'label' IS NOT NULL AND NOT (a->>'was_cancelled')::boolean
             ORDER BY t.task_id, x.k),
        ins AS (
            INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,
                                     active_ms, created_at)
            SELECT f.task_id, p_project, v_user, f.label, 0, f.active_ms, f.at FROM firsts f
            ON CONFLICT DO NOTHING
            RETURNING task_id)
        UPDATE tasks t SET done_count = t.done_count + 1,
               state = CASE WHEN t.done_count + 1 = t.required THEN 'complete' ELSE t.state END
          FROM ins WHERE t.id = ins.task_id;
    END IF;
    RETURN v_n;
END
$$;
