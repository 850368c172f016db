-- 0043_annotation_round.sql - the round of a submitted annotation taken
-- with its task's row, not by a trigger per annotation (issue 18).
--
-- The BEFORE INSERT trigger annotations_round (sql/0033_relabel_rounds.sql)
-- looked up each new annotation's task for its round: one PL/pgSQL call
-- and one lookup per annotation, though quorum_submit_batch reads that
-- task's row anyway (it checks the task is the project's) and holds it
-- locked (FOR NO KEY UPDATE), so the round cannot move meanwhile. The
-- commit function now writes the round itself; the trigger runs only for
-- an insert that gives none (the column loses its default, so such an
-- insert gives NULL, which the trigger replaces, and NOT NULL still holds
-- after it). Every other writer of annotations is unchanged.
--
-- tests/bench/commit_fn_bench.sh --passes 5, three pairs in turn on a quiet
-- machine: 87.5, 84.4 and 82.8 us of PostgreSQL CPU per annotation without
-- this, 79.7, 79.7 and 81.2 with it.
--
-- quorum_submit_batch as in sql/0034_overlap_confidence.sql, with the
-- plan_cache_mode of sql/0038_generic_plans.sql (a CREATE OR REPLACE
-- replaces a function's settings too); only its insert changes.

ALTER TABLE annotations ALTER COLUMN round DROP DEFAULT;
DROP TRIGGER annotations_round ON annotations;
CREATE TRIGGER annotations_round BEFORE INSERT ON annotations
    FOR EACH ROW WHEN (NEW.round IS NULL) EXECUTE FUNCTION quorum_round_of_task();

CREATE OR REPLACE FUNCTION quorum_submit_batch(
    p_task bigint[], p_project bigint[], p_annotator bigint[], p_label text[],
    p_token bigint[], p_idem text[], p_active integer[], p_granted bigint[], p_expires bigint[])
RETURNS TABLE (ord integer, annotation_id bigint, outcome text, extended boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    ins_ord integer[];  -- rows whose annotation went in (step 2)
    ins_id bigint[];    -- their annotation ids (same order)
    ok_ord integer[];   -- those that fit in their task's free slots
    ext_task bigint[] := '{}';  -- tasks that get one more annotator
    ext_ord integer[] := '{}';  -- the row answering extended, per such task
BEGIN
    PERFORM 1 FROM tasks WHERE id = ANY (p_task) ORDER BY id FOR NO KEY UPDATE;

    WITH r AS (
        SELECT x.* FROM unnest(p_task, p_project, p_annotator, p_label, p_token, p_idem,
                               p_active) WITH ORDINALITY
                        AS x(task, project, annotator, label, token, idem, active, o)),
    ins AS (
        INSERT INTO annotations (task_id, project_id, annotator_id, label, fencing_token,
                                 idempotency_key, active_ms, round)
        SELECT r.task, r.project, r.annotator, r.label, r.token, r.idem, r.active, t.round
          FROM r JOIN tasks t ON t.id = r.task AND t.project_id = r.project
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

    -- Dynamic overlap: the tasks this batch brings to their required count
    -- in projects that may still add an annotator.
    SELECT coalesce(array_agg(c.task ORDER BY c.task), '{}') INTO ext_task
      FROM (SELECT p_task[o] AS task, count(*)::integer AS n FROM unnest(ok_ord) AS o
             GROUP BY 1) c
      JOIN tasks t ON t.id = c.task JOIN projects p ON p.id = t.project_id
     WHERE p.overlap_max IS NOT NULL AND t.done_count + c.n = t.required
       AND t.required < p.overlap_max;
    IF cardinality(ext_task) > 0 THEN
        PERFORM 1 FROM projects
          WHERE id IN (SELECT project_id FROM tasks WHERE id = ANY (ext_task))
          ORDER BY id FOR SHARE;
        SELECT coalesce(array_agg(t.id ORDER BY t.id), '{}') INTO ext_task
          FROM tasks t JOIN projects p ON p.id = t.project_id
         WHERE t.id = ANY (ext_task) AND p.overlap_max IS NOT NULL
           AND t.required < p.overlap_max
           AND CASE WHEN p.overlap_measure = 'confidence'
                    THEN quorum_task_confidence(t.id) < p.overlap_agreement_threshold
                         AND quorum_task_lead(t.id) <= p.overlap_max - t.required
                    ELSE quorum_task_support(t.id) < p.overlap_agreement_threshold END;
        SELECT coalesce(array_agg(m.o ORDER BY m.o), '{}') INTO ext_ord
          FROM (SELECT max(o) AS o FROM unnest(ok_ord) AS o
                 WHERE p_task[o] = ANY (ext_task) GROUP BY p_task[o]) m;
        INSERT INTO overlap_extensions (task_id, project_id, annotation_id, required_before,
                                        support, confidence)
        SELECT t.id, t.project_id, i.id, t.required, quorum_task_support(t.id),
               CASE WHEN p.overlap_measure = 'confidence' THEN quorum_task_confidence(t.id) END
          FROM unnest(ext_ord) AS e(o) JOIN tasks t ON t.id = p_task[e.o]
          JOIN projects p ON p.id = t.project_id
          JOIN unnest(ins_ord, ins_id) AS i(o, id) ON i.o = e.o;
    END IF;

    UPDATE tasks t SET done_count = t.done_count + c.n,
           required = t.required + CASE WHEN t.id = ANY (ext_task) THEN 1 ELSE 0 END,
           state = CASE WHEN t.done_count + c.n = t.required AND NOT t.id = ANY (ext_task)
                        THEN 'complete' ELSE t.state END
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
                ELSE 'full' END,
           g = ANY (ext_ord)
      FROM generate_subscripts(p_task, 1) AS g
      LEFT JOIN unnest(ins_ord, ins_id) AS i(o, id) ON i.o = g
      LEFT JOIN unnest(ok_ord) AS k(o) ON k.o = g
     ORDER BY p_task[g], g;
END
$$;
