-- 0036_round_confidence.sql - dynamic overlap's confidence measure per
-- relabel round.
--
-- sql/0033_relabel_rounds.sql made quorum_task_support (dynamic overlap's
-- support measure) and the review's consensus count a task's current round
-- only; sql/0034_overlap_confidence.sql, written beside it, added the
-- confidence measure and the lead its curtailment uses over all of a
-- task's annotations. In a later round those would weigh the earlier
-- rounds' labels: a task relabeled because round 1 was wrong could stop
-- at once on round 1's votes. Both now read the current round only, as
-- support does (the gold accuracies they weigh annotators by come from
-- control tasks, which no round selects). quorum_submit_batch calls them
-- by name, so it is unchanged.

CREATE OR REPLACE FUNCTION quorum_task_confidence(p_task bigint) RETURNS double precision
LANGUAGE sql STABLE AS $$
    WITH p AS (
        SELECT pr.id, pr.overlap_prior_accuracy AS prior, quorum_value_count(pr.schema, pr.labels) AS k
          FROM tasks t JOIN projects pr ON pr.id = t.project_id WHERE t.id = p_task),
    a AS (SELECT annotator_id, label FROM annotations
           WHERE task_id = p_task
             AND round = (SELECT t.round FROM tasks t WHERE t.id = p_task)),
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
CREATE OR REPLACE FUNCTION quorum_task_lead(p_task bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(n) FILTER (WHERE rk = 1) - coalesce(max(n) FILTER (WHERE rk = 2), 0), 0)::integer
      FROM (SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rk
              FROM annotations
             WHERE task_id = p_task
               AND round = (SELECT t.round FROM tasks t WHERE t.id = p_task)
             GROUP BY label) v
$$;
