-- 0027_dynamic_overlap.sql - dynamic overlap (issue 16, point 3).
--
-- A project may ask for overlap_min annotations per task and up to
-- overlap_max: once a task has its required annotations, if their support
-- (the share that carries the most common value: the label of a plain
-- project, the canonical labels text of a schema project, so equal values
-- are equal bytes) is below overlap_agreement_threshold and required is
-- below overlap_max, required rises by one and the task stays open for one
-- more annotator. The three keys are set together or not at all (NULL:
-- fixed overlap, as before).
--
-- With dynamic overlap, annotations_per_task is overlap_min (the count a
-- task is imported with), and the tasks of an overlap fraction start with
-- overlap_annotations, which may not pass overlap_max: every path that
-- sets a task's required from the project stays within overlap_max. Both
-- only rise (docs/API.md, PATCH), so a broker importing with a cached copy
-- of the project never uses a count above the current overlap_max.
--
-- PostgreSQL stays the truth: the extension happens in quorum_submit_batch
-- under the task row locks it already takes, so it is exact whatever the
-- number of brokers; the broker's lease engine only learns from the
-- batch's answer (extended) to leave the task one free slot in Redis.
-- Two triggers keep required within overlap_max against any writer: a task
-- whose required rises past it is refused, and so is an overlap_max
-- lowered below a task's required (SQLSTATE QO422, which the broker
-- answers 422).

ALTER TABLE projects
    ADD COLUMN overlap_min integer CHECK (overlap_min BETWEEN 1 AND 100),
    ADD COLUMN overlap_max integer CHECK (overlap_max BETWEEN 1 AND 100),
    ADD COLUMN overlap_agreement_threshold double precision
        CHECK (overlap_agreement_threshold > 0 AND overlap_agreement_threshold <= 1),
    ADD CONSTRAINT projects_dynamic_overlap_check CHECK (
        (overlap_min IS NULL AND overlap_max IS NULL AND overlap_agreement_threshold IS NULL)
        OR (overlap_min IS NOT NULL AND overlap_max IS NOT NULL
            AND overlap_agreement_threshold IS NOT NULL AND overlap_min <= overlap_max
            AND annotations_per_task = overlap_min
            AND (overlap_fraction = 0 OR overlap_annotations <= overlap_max)));

-- Every extension, for the report and for a resend: the annotation whose
-- commit raised its task's required (from required_before), and the
-- support that was below the threshold.
CREATE TABLE overlap_extensions (
    id               bigserial PRIMARY KEY,
    task_id          bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    annotation_id    bigint NOT NULL,
    required_before  integer NOT NULL,
    support          double precision NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX overlap_extensions_task ON overlap_extensions (task_id);
CREATE INDEX overlap_extensions_project ON overlap_extensions (project_id);
CREATE INDEX overlap_extensions_annotation ON overlap_extensions (annotation_id);

-- A task's required never passes its project's overlap_max. Fires only
-- when required rises (an extension), never on an import's COPY (whose
-- counts come from the project row and its CHECK above).
CREATE FUNCTION quorum_required_within_max() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id AND NEW.required > overlap_max)
    THEN
        RAISE EXCEPTION 'task % would need % annotations, above its project''s overlap_max',
            NEW.id, NEW.required USING ERRCODE = 'QO422';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_required_within_max BEFORE UPDATE OF required ON tasks
    FOR EACH ROW WHEN (NEW.required > OLD.required)
    EXECUTE FUNCTION quorum_required_within_max();

-- An overlap_max set or lowered below what a task of the project already
-- needs is refused: that task could never be within it. The message names
-- the count (the broker passes it on).
CREATE FUNCTION quorum_overlap_max_fits() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_top integer;
BEGIN
    SELECT max(required) INTO v_top FROM tasks WHERE project_id = NEW.id;
    IF v_top > NEW.overlap_max THEN
        RAISE EXCEPTION 'overlap_max % is below the % annotations a task of project % already needs',
            NEW.overlap_max, v_top, NEW.id USING ERRCODE = 'QO422';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER projects_overlap_max_fits BEFORE UPDATE OF overlap_max ON projects
    FOR EACH ROW WHEN (NEW.overlap_max IS NOT NULL
                       AND (OLD.overlap_max IS NULL OR NEW.overlap_max < OLD.overlap_max))
    EXECUTE FUNCTION quorum_overlap_max_fits();

-- The support of a task's annotations: the share of them carrying the most
-- common stored value (1 for a task without annotations).
CREATE FUNCTION quorum_task_support(p_task bigint) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(n)::double precision / nullif(sum(n), 0), 1)
      FROM (SELECT count(*) AS n FROM annotations WHERE task_id = p_task GROUP BY label) v
$$;

-- quorum_submit_batch as in 0014, plus dynamic overlap; its answer gains a
-- column, extended, so it is dropped and made anew. Once the rows that fit
-- are known, each task they bring to its required count whose project has
-- dynamic overlap, whose required is below overlap_max and whose support is
-- below the threshold gets one more required annotation and stays
-- 'waiting' (in the same UPDATE that counts the new annotations, so the
-- task is never seen complete: no task.completed event fires). The row
-- that answers extended is the last that fitted of its task: its broker
-- leaves the task one free slot in Redis (qr_lease_submit_extend). The
-- projects concerned are locked FOR SHARE first, only when some task may
-- extend, so a PATCH lowering overlap_max waits for this transaction (and
-- its trigger sees the new required) or this one reads the new max.
DROP FUNCTION quorum_submit_batch(bigint[], bigint[], bigint[], text[], bigint[], text[],
                                  integer[], bigint[], bigint[]);
CREATE FUNCTION quorum_submit_batch(
    p_task bigint[], p_project bigint[], p_annotator bigint[], p_label text[],
    p_token bigint[], p_idem text[], p_active integer[], p_granted bigint[], p_expires bigint[])
RETURNS TABLE (ord integer, annotation_id bigint, outcome text, extended boolean)
LANGUAGE plpgsql AS $$
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
           AND quorum_task_support(t.id) < p.overlap_agreement_threshold;
        SELECT coalesce(array_agg(m.o ORDER BY m.o), '{}') INTO ext_ord
          FROM (SELECT max(o) AS o FROM unnest(ok_ord) AS o
                 WHERE p_task[o] = ANY (ext_task) GROUP BY p_task[o]) m;
        INSERT INTO overlap_extensions (task_id, project_id, annotation_id, required_before,
                                        support)
        SELECT t.id, t.project_id, i.id, t.required, quorum_task_support(t.id)
          FROM unnest(ext_ord) AS e(o) JOIN tasks t ON t.id = p_task[e.o]
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
