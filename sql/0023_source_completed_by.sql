-- 0023_source_completed_by.sql - an imported annotation keeps who made it
-- at its source.
--
-- A Label Studio annotation's "completed_by" is a user id of the Label
-- Studio instance it came from. The broker attributes the annotation to a
-- user of its own (--annotations-as NAME, or the pseudo-user `imported`),
-- and keeps the source's id here, so that its Label Studio export gives it
-- back as it came (`completed_by`), and the round trip loses nothing.

ALTER TABLE imported_annotations ADD COLUMN source_completed_by bigint;

-- As in 0021_import_rules.sql, with "completed_by" (an integer or null) read
-- from each annotation object into source_completed_by.
CREATE OR REPLACE FUNCTION quorum_import_annotations(
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
                                      was_cancelled, ground_truth, source_id, created_at,
                                      source_completed_by)
    SELECT p_project, t.task_id, v_user, a->>'label', a->'result', (a->>'lead_time')::float8,
           (a->>'was_cancelled')::boolean, (a->>'ground_truth')::boolean, a->>'source_id',
           coalesce((a->>'created_at')::timestamptz, now()),
           CASE WHEN jsonb_typeof(a->'completed_by') = 'number'
                THEN (a->>'completed_by')::bigint END
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
