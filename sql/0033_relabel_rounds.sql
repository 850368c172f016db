-- 0033_relabel_rounds.sql - relabel rounds (issue 16, point 6).
--
-- A manager opens a new round over a selection of a project's completed
-- tasks: each goes back to the queue for N more annotations, and the
-- annotations of earlier rounds stay as they are. Rounds are numbered per
-- project: round 1 is the import, each round opened takes the next number,
-- and a task's `round` is the number of the last round that selected it.
-- Every annotation records the round of its task when it was stored (the
-- BEFORE INSERT trigger below, so quorum_submit_batch and the import of
-- annotations are left as they are), and agreement, consensus, dynamic
-- overlap's support and review's vote count the annotations of one round.
--
-- An annotator labels a task at most once across rounds: annotations keep
-- UNIQUE (task_id, annotator_id), the lease engine's seen set and the
-- window refill keep everyone who labeled the task in any round away from
-- it, so a new round goes to other annotators.
--
-- Selected tasks are those complete in PostgreSQL (state 'complete':
-- complete, reviewed, or auto-accepted), never a control (gold) task and
-- never an open one: an open task still collects its current round, and
-- its free slots may be in the Redis window, which a round could not move
-- exactly. Nor a task waiting for its review (a pending review item):
-- the reviewer would decide on a task that is open again. A selected task
-- gets required = done_count + N (all rounds counted: done_count and
-- required keep their CHECKs) and state 'waiting'; an auto-accepted one loses its mark (humans now label it,
-- auto_accept_saved is dropped). The broker then reopens the Redis window.

ALTER TABLE tasks ADD COLUMN round integer NOT NULL DEFAULT 1 CHECK (round >= 1);
ALTER TABLE annotations ADD COLUMN round integer NOT NULL DEFAULT 1 CHECK (round >= 1);
ALTER TABLE annotation_undos ADD COLUMN round integer NOT NULL DEFAULT 1;
ALTER TABLE reviews ADD COLUMN round integer NOT NULL DEFAULT 1;

-- An annotation, and a review item, belong to the round their task is in.
CREATE FUNCTION quorum_round_of_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.round INTO NEW.round FROM tasks t WHERE t.id = NEW.task_id;
    IF NEW.round IS NULL THEN
        NEW.round := 1; -- no such task: the foreign key refuses the row
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER annotations_round BEFORE INSERT ON annotations
    FOR EACH ROW EXECUTE FUNCTION quorum_round_of_task();
CREATE TRIGGER reviews_round BEFORE INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION quorum_round_of_task();

CREATE TABLE rounds (
    id           bigserial PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number       integer NOT NULL CHECK (number >= 2),
    selection    jsonb NOT NULL,          -- the selector as the request gave it
    annotations  integer NOT NULL CHECK (annotations BETWEEN 1 AND 99),
    task_count   integer NOT NULL CHECK (task_count >= 1),
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, number)
);

-- The support of a task's annotations in its current round (1 without any).
CREATE OR REPLACE FUNCTION quorum_task_support(p_task bigint) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(n)::double precision / nullif(sum(n), 0), 1)
      FROM (SELECT count(*) AS n FROM annotations a
             WHERE a.task_id = p_task
               AND a.round = (SELECT t.round FROM tasks t WHERE t.id = p_task)
             GROUP BY a.label) v
$$;

-- The votes of task p_task in its current round (sql/0031_review.sql).
CREATE OR REPLACE FUNCTION quorum_review_consensus(p_task bigint,
                                                   OUT value text, OUT support double precision,
                                                   OUT tie boolean, OUT total bigint)
LANGUAGE sql STABLE AS $$
    WITH v AS (SELECT label, count(*) AS n FROM annotations
                WHERE task_id = p_task
                  AND round = (SELECT t.round FROM tasks t WHERE t.id = p_task)
                GROUP BY label),
         s AS (SELECT sum(n) AS total FROM v)
    SELECT v.label, v.n::double precision / s.total,
           (SELECT count(*) FROM v v2 WHERE v2.n = v.n) > 1, s.total
      FROM v, s ORDER BY v.n DESC, v.label LIMIT 1
$$;

-- When a task completed its current round: its last annotation of that
-- round, or, without one (auto-accepted), when it was imported.
CREATE FUNCTION quorum_task_completed_at(p_task bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT max(a.created_at) FROM annotations a
                      WHERE a.task_id = t.id AND a.round = t.round), t.created_at)
      FROM tasks t WHERE t.id = p_task
$$;

-- Opens round N+1 of project p_project for user p_user: the tasks p_sel
-- selects (exactly one selector, checked by the broker: task_ids,
-- import_id, field {path, value}, completed_after/completed_before,
-- agreement_below) each need p_annotations more annotations. Returns the
-- round as JSON text. Refusals raise, so nothing changes:
--   QR404 an import or task id that is not the project's,
--   QR422 a listed task that is not complete, a control task, an empty
--         selection, or a task that would need more than 100 annotations;
--   QO422 (the trigger of sql/0027) past dynamic overlap's overlap_max.
CREATE FUNCTION quorum_round_open(p_project bigint, p_user bigint, p_annotations integer,
                                  p_sel jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_number integer;
    v_count integer;
    v_ids bigint[];
    v_bad bigint;
    v_state text;
    v_path text[];
    v_round rounds;
BEGIN
    -- One round at a time per project: the numbers follow each other.
    PERFORM 1 FROM projects WHERE id = p_project FOR UPDATE;
    IF p_sel ? 'task_ids' THEN
        SELECT array_agg(DISTINCT x::bigint) INTO v_ids
          FROM jsonb_array_elements_text(p_sel->'task_ids') x;
        SELECT i INTO v_bad FROM unnest(v_ids) i
         WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = i AND t.project_id = p_project)
         ORDER BY i LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'task % is not a task of project %', v_bad, p_project
                USING ERRCODE = 'QR404';
        END IF;
        SELECT t.id, CASE WHEN t.control THEN 'a control (gold) task'
                          WHEN t.state <> 'complete' THEN 'open'
                          ELSE 'waiting for its review' END
          INTO v_bad, v_state FROM tasks t
         WHERE t.id = ANY (v_ids)
           AND (t.control OR t.state <> 'complete'
                OR EXISTS (SELECT 1 FROM reviews rv WHERE rv.task_id = t.id
                                                      AND rv.state <> 'done'))
         ORDER BY t.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'task % is %: only complete tasks go to a new round', v_bad, v_state
                USING ERRCODE = 'QR422';
        END IF;
    ELSE
        IF p_sel ? 'import_id' AND NOT EXISTS (
               SELECT 1 FROM imports WHERE id = (p_sel->>'import_id')::bigint
                                       AND project_id = p_project) THEN
            RAISE EXCEPTION 'import % is not an import of project %', p_sel->>'import_id',
                p_project USING ERRCODE = 'QR404';
        END IF;
        IF p_sel ? 'field' THEN
            v_path := string_to_array(p_sel->'field'->>'path', '.');
        END IF;
        SELECT array_agg(t.id ORDER BY t.id) INTO v_ids FROM tasks t
         WHERE t.project_id = p_project AND t.state = 'complete' AND NOT t.control
           AND NOT EXISTS (SELECT 1 FROM reviews rv WHERE rv.task_id = t.id AND rv.state <> 'done')
           AND (NOT p_sel ? 'import_id' OR t.import_id = (p_sel->>'import_id')::bigint)
           AND (NOT p_sel ? 'field' OR t.data #> v_path = p_sel->'field'->'value')
           AND (NOT p_sel ? 'completed_after'
                OR quorum_task_completed_at(t.id) >= (p_sel->>'completed_after')::timestamptz)
           AND (NOT p_sel ? 'completed_before'
                OR quorum_task_completed_at(t.id) < (p_sel->>'completed_before')::timestamptz)
           AND (NOT p_sel ? 'agreement_below' OR t.id IN (
                -- the support of every task's current round in one pass,
                -- as quorum_task_support counts it (no annotation: 1)
                SELECT v.task_id FROM (
                    SELECT a.task_id, count(*) AS n,
                           sum(count(*)) OVER (PARTITION BY a.task_id) AS total
                      FROM annotations a JOIN tasks ta ON ta.id = a.task_id
                     WHERE a.project_id = p_project AND a.round = ta.round
                     GROUP BY a.task_id, a.label) v
                 GROUP BY v.task_id
                HAVING max(v.n)::double precision / max(v.total)
                       < (p_sel->>'agreement_below')::double precision));
    END IF;
    v_count := coalesce(cardinality(v_ids), 0);
    IF v_count = 0 THEN
        RAISE EXCEPTION 'no complete task of project % matches the selection', p_project
            USING ERRCODE = 'QR422';
    END IF;
    SELECT t.id INTO v_bad FROM tasks t
     WHERE t.id = ANY (v_ids) AND t.done_count + p_annotations > 100 ORDER BY t.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'task % would need more than 100 annotations (the most a task may have)',
            v_bad USING ERRCODE = 'QR422';
    END IF;
    SELECT coalesce(max(number), 1) + 1 INTO v_number FROM rounds WHERE project_id = p_project;
    UPDATE tasks t
       SET round = v_number, required = t.done_count + p_annotations, state = 'waiting',
           auto_accept = CASE WHEN t.auto_accept = 'accepted' THEN NULL ELSE t.auto_accept END,
           auto_accept_saved = CASE WHEN t.auto_accept = 'accepted' THEN NULL
                                    ELSE t.auto_accept_saved END
     WHERE t.id = ANY (v_ids);
    INSERT INTO rounds (project_id, number, selection, annotations, task_count, created_by)
    VALUES (p_project, v_number, p_sel, p_annotations, v_count, p_user)
    RETURNING * INTO v_round;
    RETURN quorum_round_json(v_round);
END
$$;

-- A round as the API shows it.
CREATE FUNCTION quorum_round_json(r rounds) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', r.id, 'project_id', r.project_id, 'number', r.number,
                             'selection', r.selection, 'annotations', r.annotations,
                             'tasks', r.task_count, 'created_by', r.created_by,
                             'user', (SELECT name FROM users WHERE id = r.created_by),
                             'created_at', r.created_at)::text
$$;
