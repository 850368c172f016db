-- 0031_review.sql - review and adjudication (issue 16, point 2).
--
-- A project's review_mode says which completed tasks a reviewer looks at:
-- none, all, a share (review_share, drawn by a stable hash of the task id),
-- or low_agreement (the task's majority support below
-- review_agreement_threshold, or a tie for the top value). A task is
-- selected when it completes (the deferred trigger below, at commit, so it
-- sees exactly the annotations the completing transaction kept); tasks
-- complete before the setting changed are not selected afterwards: the
-- setting applies to tasks completing from then on.
--
-- A selected task gets one row of reviews (UNIQUE (task_id): one item is
-- reviewed once). The row is also the review's lease: a reviewer holds it
-- with a fencing token (from reviews_fence, so tokens never repeat) until
-- lease_expires_at; a grant takes only rows nobody holds or whose lease
-- expired (FOR UPDATE SKIP LOCKED, so two brokers never grant one item
-- twice), never to a reviewer who annotated the task or reviewed it in an
-- earlier round. Review traffic is a small share of annotation traffic, so
-- PostgreSQL is its lease engine: nothing to rebuild when Redis loses its
-- state, and the reviewer's decision commits with the lease check.
--
-- A decision (accept the consensus, pick an annotation, correct the value)
-- stores the final value; the task stays 'complete' in tasks (its CHECKs
-- are untouched) and shows as 'reviewed' wherever a state is shown. With
-- requeue the task reopens for one more annotator (required + 1) and the
-- row waits ('requeued') until the task completes again, then is pending
-- for another reviewer.

ALTER TABLE projects
    ADD COLUMN review_mode text NOT NULL DEFAULT 'none'
        CHECK (review_mode IN ('none', 'all', 'share', 'low_agreement')),
    ADD COLUMN review_share double precision NOT NULL DEFAULT 0
        CHECK (review_share BETWEEN 0 AND 1),
    ADD COLUMN review_agreement_threshold double precision NOT NULL DEFAULT 0.5
        CHECK (review_agreement_threshold BETWEEN 0 AND 1);

CREATE SEQUENCE reviews_fence;

CREATE TABLE reviews (
    id               bigserial PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id          bigint NOT NULL UNIQUE REFERENCES tasks (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'done', 'requeued')),
    support          double precision,   -- the majority's share when selected
    reviewer_id      bigint REFERENCES users (id), -- the lease holder, then the decider
    fencing_token    bigint,             -- the live (or deciding) lease's token
    lease_expires_at timestamptz,
    past_reviewers   bigint[] NOT NULL DEFAULT '{}', -- reviewers of earlier rounds
    decision         text CHECK (decision IN ('accept', 'pick', 'correct')),
    annotation_id    bigint,             -- pick: the annotation chosen
    value            text,               -- the final value (a label or canonical labels text)
    requeues         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    -- the transaction that last decided it: an export as of snapshot S
    -- shows the decision when S sees it (sql/0020_export.sql's cursor)
    written_xid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CHECK (state <> 'done' OR (decision IS NOT NULL AND value IS NOT NULL
                               AND reviewer_id IS NOT NULL AND decided_at IS NOT NULL)),
    CHECK ((reviewer_id IS NULL) = (fencing_token IS NULL))
);
CREATE INDEX reviews_pending ON reviews (project_id, id) WHERE state = 'pending';
CREATE INDEX reviews_reviewer ON reviews (reviewer_id);

-- The votes of task p_task: the top value, its share of the annotations and
-- whether another value has as many (a tie). NULLs when it has none.
CREATE FUNCTION quorum_review_consensus(p_task bigint,
                                        OUT value text, OUT support double precision,
                                        OUT tie boolean, OUT total bigint)
LANGUAGE sql STABLE AS $$
    WITH v AS (SELECT label, count(*) AS n FROM annotations WHERE task_id = p_task GROUP BY label),
         s AS (SELECT sum(n) AS total FROM v)
    SELECT v.label, v.n::double precision / s.total,
           (SELECT count(*) FROM v v2 WHERE v2.n = v.n) > 1, s.total
      FROM v, s ORDER BY v.n DESC, v.label LIMIT 1
$$;

-- Whether completed task p_task of project p_project is to be reviewed, by
-- the project's review_mode; records it (pending), or puts a requeued
-- review back to pending. A task without annotations (auto-accepted) is
-- never reviewed.
CREATE FUNCTION quorum_review_select(p_project bigint, p_task bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_mode text;
    v_share double precision;
    v_threshold double precision;
    c record;
BEGIN
    -- A requeued review is the reviewer's own request: it is reviewed again
    -- whatever the mode says now.
    IF EXISTS (SELECT 1 FROM reviews WHERE task_id = p_task AND state = 'requeued') THEN
        SELECT * INTO c FROM quorum_review_consensus(p_task);
        UPDATE reviews SET state = 'pending', support = c.support
         WHERE task_id = p_task AND state = 'requeued';
        RETURN;
    END IF;
    -- Most projects review nothing: one lookup by primary key, no vote.
    SELECT review_mode, review_share, review_agreement_threshold
      INTO v_mode, v_share, v_threshold FROM projects WHERE id = p_project;
    IF v_mode IS NULL OR v_mode = 'none' THEN
        RETURN;
    END IF;
    SELECT * INTO c FROM quorum_review_consensus(p_task);
    IF c.total IS NULL THEN
        RETURN;
    END IF;
    IF v_mode = 'all'
       OR (v_mode = 'share'
           AND (hashint8(p_task # 6148914691236517205) & 65535) < v_share * 65536)
       OR (v_mode = 'low_agreement' AND (c.support < v_threshold OR c.tie)) THEN
        INSERT INTO reviews (project_id, task_id, support) VALUES (p_project, p_task, c.support)
        ON CONFLICT (task_id) DO NOTHING;
    END IF;
END
$$;

CREATE FUNCTION quorum_review_task_completed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Deferred: the task may have changed since; only a task still complete.
    IF EXISTS (SELECT 1 FROM tasks WHERE id = NEW.id AND state = 'complete') THEN
        PERFORM quorum_review_select(NEW.project_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER review_task_completed AFTER UPDATE OF state ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.state = 'complete' AND OLD.state <> 'complete')
    EXECUTE FUNCTION quorum_review_task_completed();
CREATE CONSTRAINT TRIGGER review_task_inserted AFTER INSERT ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.state = 'complete')
    EXECUTE FUNCTION quorum_review_task_completed();

-- A review's decision on lease p_token of reviewer p_reviewer in project
-- p_project: 'accept' (the consensus; refused on a tie), 'pick' (annotation
-- p_annotation of the task) or 'correct' (p_value, checked by the caller);
-- with p_requeue the task reopens for one more annotator. Returns one of:
-- ok, no_lease (no such lease in the project), not_yours, decided, expired,
-- tie (accept without a consensus), bad_annotation (not of this task),
-- full (requeue beyond 100 annotations); nothing changes unless ok.
CREATE FUNCTION quorum_review_decide(p_project bigint, p_reviewer bigint, p_token bigint,
                                     p_decision text, p_annotation bigint, p_value text,
                                     p_requeue boolean,
                                     OUT result text, OUT task bigint, OUT value text)
LANGUAGE plpgsql AS $$
DECLARE
    r reviews;
    c record;
BEGIN
    SELECT * INTO r FROM reviews
     WHERE project_id = p_project AND fencing_token = p_token FOR UPDATE;
    IF NOT FOUND THEN
        result := 'no_lease';
        RETURN;
    END IF;
    task := r.task_id;
    IF r.reviewer_id IS DISTINCT FROM p_reviewer THEN
        result := 'not_yours';
        RETURN;
    END IF;
    IF r.state <> 'pending' THEN
        result := 'decided';
        RETURN;
    END IF;
    IF r.lease_expires_at <= now() THEN
        result := 'expired';
        RETURN;
    END IF;
    IF p_decision = 'accept' THEN
        SELECT * INTO c FROM quorum_review_consensus(r.task_id);
        IF c.tie OR c.value IS NULL THEN
            result := 'tie';
            RETURN;
        END IF;
        value := c.value;
    ELSIF p_decision = 'pick' THEN
        SELECT label INTO value FROM annotations WHERE id = p_annotation AND task_id = r.task_id;
        IF NOT FOUND THEN
            result := 'bad_annotation';
            RETURN;
        END IF;
    ELSE
        value := p_value;
    END IF;
    IF p_requeue THEN
        UPDATE tasks SET required = required + 1, state = 'waiting'
         WHERE id = r.task_id AND required < 100;
        IF NOT FOUND THEN
            result := 'full';
            RETURN;
        END IF;
        UPDATE reviews SET state = 'requeued', decision = p_decision,
               annotation_id = CASE WHEN p_decision = 'pick' THEN p_annotation END,
               value = quorum_review_decide.value, decided_at = now(),
               past_reviewers = past_reviewers || p_reviewer,
               reviewer_id = NULL, fencing_token = NULL, lease_expires_at = NULL,
               requeues = requeues + 1, written_xid = pg_current_xact_id()
         WHERE id = r.id;
    ELSE
        UPDATE reviews SET state = 'done', decision = p_decision,
               annotation_id = CASE WHEN p_decision = 'pick' THEN p_annotation END,
               value = quorum_review_decide.value, decided_at = now(),
               written_xid = pg_current_xact_id()
         WHERE id = r.id;
    END IF;
    result := 'ok';
END
$$;
