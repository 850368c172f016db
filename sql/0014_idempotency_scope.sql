-- 0014_idempotency_scope.sql - idempotency keys belong to (project,
-- annotator), not to the annotator alone.
--
-- A key was unique per annotator across all projects, and the submit path
-- looked it up by annotator alone. Fencing tokens restart at 1000001 in
-- every project, so a client that uses its lease id as the key met, in
-- project 3, the annotation it made in project 1: the broker answered that
-- one as a replay, stored nothing, and ended the lease as committed. Keys
-- are now unique per (project, annotator), and the broker looks them up so
-- (broker/store/store.h, QR_SQL_ANNOTATION_BY_KEY). Every pair of rows distinct
-- under the old constraint is distinct under the new one.
ALTER TABLE annotations DROP CONSTRAINT annotations_annotator_id_idempotency_key_key;
ALTER TABLE annotations
    ADD CONSTRAINT annotations_project_annotator_key UNIQUE (project_id, annotator_id, idempotency_key);

-- quorum_submit_batch as in 0012, but 'duplicate' means the key names an
-- annotation of another task in the same project (the only kind the new
-- constraint refuses); the rest is unchanged.
CREATE OR REPLACE FUNCTION quorum_submit_batch(
    p_task bigint[], p_project bigint[], p_annotator bigint[], p_label text[],
    p_token bigint[], p_idem text[], p_active integer[], p_granted bigint[], p_expires bigint[])
RETURNS TABLE (ord integer, annotation_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    ins_ord integer[];  -- rows whose annotation went in (step 2)
    ins_id bigint[];    -- their annotation ids (same order)
    ok_ord integer[];   -- those that fit in their task's free slots
BEGIN
    PERFORM 1 FROM tasks WHERE id = ANY (p_task) ORDER BY id FOR NO KEY UPDATE;

    -- Each inserted annotation is matched to its row by (task, annotator,
    -- key): unique among the inserted ones; among rows alike in all three
    -- the first went in and the others met it as a conflict. (Joins, not
    -- correlated subqueries: a batch has up to 256 rows. A key is never
    -- '', so '' stands for none.)
    WITH r AS (
        SELECT x.* FROM unnest(p_task, p_project, p_annotator, p_label, p_token, p_idem,
                               p_active) WITH ORDINALITY
                        AS x(task, project, annotator, label, token, idem, active, o)),
    ins AS (
        INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,
                                 idempotency_key, active_ms)
        SELECT r.task, r.project, r.annotator, r.label, r.token, r.idem, r.active FROM r
         WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task AND t.project_id = r.project)
         ORDER BY r.task, r.o
        ON CONFLICT DO NOTHING
        RETURNING id, task_id, annotator_id, coalesce(idempotency_key, '') AS idem),
    firsts AS (
        SELECT task, annotator, coalesce(idem, '') AS idem, min(o)::integer AS o FROM r
         GROUP BY 1, 2, 3)
    SELECT coalesce(array_agg(firsts.o ORDER BY firsts.o), '{}'),
           coalesce(array_agg(ins.id ORDER BY firsts.o), '{}')
      INTO ins_ord, ins_id
      FROM ins JOIN firsts ON firsts.task = ins.task_id AND firsts.annotator = ins.annotator_id
                          AND firsts.idem = ins.idem;

    -- The first free-slots' worth of each task's new annotations (row order)
    -- count; done_count is current: the tasks are locked since step 1.
    WITH n AS (
        SELECT u.o, u.id, row_number() OVER (PARTITION BY p_task[u.o] ORDER BY u.o) AS k,
               p_task[u.o] AS task
          FROM unnest(ins_ord, ins_id) AS u(o, id)),
    f AS (
        SELECT n.o, n.id, n.k <= t.required - t.done_count AS fits
          FROM n JOIN tasks t ON t.id = n.task),
    gone AS (
        DELETE FROM annotations a USING f WHERE a.id = f.id AND NOT f.fits)
    SELECT coalesce(array_agg(f.o ORDER BY f.o) FILTER (WHERE f.fits), '{}') INTO ok_ord FROM f;

    UPDATE tasks t SET done_count = t.done_count + c.n,
           state = CASE WHEN t.done_count + c.n = t.required THEN 'complete' ELSE t.state END
      FROM (SELECT p_task[o] AS task, count(*)::integer AS n FROM unnest(ok_ord) AS o
             GROUP BY 1) c
     WHERE t.id = c.task;

    INSERT INTO leases (project_id, fencing_token, task_id, annotator_id, granted_at,
                        expires_at, outcome)
    SELECT p_project[o], p_token[o], p_task[o], p_annotator[o],
           to_timestamp(p_granted[o] / 1000.0), to_timestamp(p_expires[o] / 1000.0), 'submitted'
      FROM unnest(ok_ord) AS o
     ORDER BY p_project[o], p_token[o]
    ON CONFLICT DO NOTHING;

    RETURN QUERY
    SELECT g::integer, CASE WHEN k.o IS NOT NULL THEN i.id END,
           CASE WHEN k.o IS NOT NULL THEN 'created'
                WHEN i.o IS NULL AND p_idem[g] IS NOT NULL
                 AND EXISTS (SELECT 1 FROM tasks t
                              WHERE t.id = p_task[g] AND t.project_id = p_project[g])
                 AND EXISTS (SELECT 1 FROM annotations a
                              WHERE a.project_id = p_project[g]
                                AND a.annotator_id = p_annotator[g]
                                AND a.idempotency_key = p_idem[g] AND a.task_id <> p_task[g])
                THEN 'duplicate'
                ELSE 'full' END
      FROM generate_subscripts(p_task, 1) AS g
      LEFT JOIN unnest(ins_ord, ins_id) AS i(o, id) ON i.o = g
      LEFT JOIN unnest(ok_ord) AS k(o) ON k.o = g
     ORDER BY p_task[g], g;
END
$$;
