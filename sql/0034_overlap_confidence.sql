-- 0034_overlap_confidence.sql - dynamic overlap measured by the posterior
-- confidence of a task's consensus (issue 16, point 3).
--
-- sql/0027 adds an annotator while the support (share of the most common
-- value) is below overlap_agreement_threshold. Support cannot tell two
-- agreeing labels (support 1) from five, so no threshold reaches the
-- accuracy of a fixed overlap of 5. A project may now choose
-- overlap_measure 'confidence': the threshold is then compared with the
-- posterior probability of the task's most likely value under a one-coin
-- model. Each annotator a is right with probability q_a and otherwise
-- picks uniformly among the K - 1 other values; with a uniform prior over
-- the K values, the posterior of value v is proportional to
--   prod_a (q_a if a chose v, else (1 - q_a) / (K - 1))
-- and the measure is the largest posterior (values nobody chose share the
-- rest). 'support' (the default) keeps sql/0027's behaviour unchanged.
--
-- q_a is the annotator's smoothed gold accuracy on the project:
--   (agreeing + 4 * prior) / (compared + 4)
-- over their answers to the project's control (gold) tasks since their last
-- reinstatement (as quorum_gold_tally counts them), where prior is the
-- project's overlap_prior_accuracy (default 0.75, strictly between 0 and
-- 1); an annotator without gold answers gets the prior itself. The
-- pseudo-count 4 keeps q_a strictly inside (0, 1) (so no single vote is
-- certain) and lets a handful of gold answers move it only a little.
--
-- K (quorum_value_count): a plain project's number of labels; a schema
-- project's number of distinct canonical values, the product over its
-- fields of: a choice's choices, a rating's steps, 2^choices for a
-- multi_choice, 1000 for a field with free values (spans, boxes, text),
-- each plus one when the field is not required (absent is a value too);
-- the product capped at 10^6. Never below 2, nor below the number of
-- distinct values the task's annotations carry.
--
-- Curtailment, with confidence only: a task whose most common value leads
-- the next by more than the annotations it may still get (overlap_max less
-- those it has) also stops, whatever its confidence: no further annotation
-- up to overlap_max could change or tie its majority, so it ends with the
-- majority it would have at overlap_max on the same labels, sooner.
--
-- Both are computed inside quorum_submit_batch under the task row locks it
-- already takes (as support is), so the decision is exact across brokers.
-- overlap_extensions records the confidence of each extension made under
-- it (NULL under support).

ALTER TABLE projects
    ADD COLUMN overlap_measure text NOT NULL DEFAULT 'support'
        CHECK (overlap_measure IN ('support', 'confidence')),
    ADD COLUMN overlap_prior_accuracy double precision NOT NULL DEFAULT 0.75
        CHECK (overlap_prior_accuracy > 0 AND overlap_prior_accuracy < 1);

ALTER TABLE overlap_extensions ADD COLUMN confidence double precision;

-- K: the number of values a project's annotation may take (see above).
CREATE FUNCTION quorum_value_count(p_schema jsonb, p_labels jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(2, CASE WHEN p_schema IS NULL THEN jsonb_array_length(p_labels)::double precision
        ELSE least(1e6, coalesce((SELECT round(exp(sum(ln(
                 CASE f->>'type'
                      WHEN 'choice' THEN greatest(1, jsonb_array_length(f->'choices'))
                      WHEN 'rating' THEN greatest(1, floor(((f->>'max')::double precision
                                                            - (f->>'min')::double precision)
                                                           / coalesce((f->>'step')::double precision, 1)
                                                           + 0.5) + 1)
                      WHEN 'multi_choice' THEN least(1e6, power(2, jsonb_array_length(f->'choices')))
                      ELSE 1000 END
                 + CASE WHEN f->>'required' = 'false' THEN 1 ELSE 0 END))))
              FROM jsonb_array_elements(p_schema->'fields') f), 2)) END)
$$;

-- The posterior confidence of a task's consensus: the largest posterior
-- probability of a value given its annotations (see above; 1/K for a task
-- without annotations). Computed in logs, so many annotators do not
-- underflow.
CREATE FUNCTION quorum_task_confidence(p_task bigint) RETURNS double precision
LANGUAGE sql STABLE AS $$
    WITH p AS (
        SELECT pr.id, pr.overlap_prior_accuracy AS prior, quorum_value_count(pr.schema, pr.labels) AS k
          FROM tasks t JOIN projects pr ON pr.id = t.project_id WHERE t.id = p_task),
    a AS (SELECT annotator_id, label FROM annotations WHERE task_id = p_task),
    g AS (
        SELECT ga.annotator_id, count(*) AS n, count(*) FILTER (WHERE ga.label = gt.gold) AS ok
          FROM p JOIN tasks gt ON gt.project_id = p.id AND gt.control
          JOIN annotations ga ON ga.task_id = gt.id
         WHERE ga.annotator_id IN (SELECT annotator_id FROM a)
           AND ga.created_at > coalesce((SELECT max(reinstated_at) FROM annotator_pauses ap
                                          WHERE ap.project_id = p.id
                                            AND ap.annotator_id = ga.annotator_id), '-infinity')
         GROUP BY 1),
    kk AS (SELECT greatest(p.k, (SELECT count(DISTINCT label) FROM a)) AS k, p.prior FROM p),
    q AS (
        SELECT a.label, (coalesce(g.ok, 0) + 4 * kk.prior) / (coalesce(g.n, 0) + 4) AS q, kk.k
          FROM a CROSS JOIN kk LEFT JOIN g ON g.annotator_id = a.annotator_id),
    -- base: the log score of a value nobody chose; each vote for v adds
    -- ln q - ln((1 - q) / (K - 1)) to v's score.
    b AS (SELECT coalesce(sum(ln((1 - q) / (k - 1))), 0) AS base FROM q),
    s AS (
        SELECT b.base + sum(ln(q.q) - ln((1 - q.q) / (q.k - 1))) AS score
          FROM q CROSS JOIN b GROUP BY q.label, b.base),
    m AS (SELECT max(score) AS top, count(*) AS d FROM s)
    SELECT CASE WHEN m.d = 0 THEN 1 / kk.k
           ELSE 1 / ((SELECT sum(exp(s.score - m.top)) FROM s)
                     + (kk.k - m.d) * exp(b.base - m.top)) END
      FROM m, b, kk
$$;

-- The lead of a task's most common value over the next (over 0 when it is
-- the only one; 0 for a task without annotations).
CREATE FUNCTION quorum_task_lead(p_task bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(n) FILTER (WHERE rk = 1) - coalesce(max(n) FILTER (WHERE rk = 2), 0), 0)::integer
      FROM (SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rk
              FROM annotations WHERE task_id = p_task GROUP BY label) v
$$;

-- quorum_submit_batch as in sql/0027_dynamic_overlap.sql; only the
-- extension's measure changes: support or confidence, as the project says
-- (support, the default, exactly as before; confidence with curtailment),
-- and overlap_extensions records the confidence too.
CREATE OR REPLACE FUNCTION quorum_submit_batch(
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
