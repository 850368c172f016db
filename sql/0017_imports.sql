-- 0017_imports.sql - every import is recorded, and a duplicate one refused.
--
-- A retried import silently duplicated every task, and nothing said what had
-- been imported or whether an interrupted import had committed. Each import
-- now writes one row of `imports` in the same transaction as its tasks
-- (broker/api/api_tasks.c, qr_pg_copy_in_tx), so a recorded import is a
-- committed one and a rolled-back one leaves nothing. The client's import
-- key (random, one per upload) lets it ask afterwards whether its upload
-- committed.
--
-- A task may carry an external id (the row's "external_id"), unique within
-- its project. quorum_import_begin refuses, under a per-project lock, a file
-- the project imported already (same SHA-256 of the body) or tasks whose
-- external id the project holds already, unless the client allows
-- duplicates.
CREATE TABLE imports (
    id             bigserial PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects (id),
    import_key     text CHECK (length(import_key) BETWEEN 1 AND 200),
    file_name      text CHECK (length(file_name) BETWEEN 1 AND 1000),
    task_count     bigint NOT NULL CHECK (task_count >= 0),
    first_task_id  bigint,
    last_task_id   bigint,
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_by     bigint REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, import_key)
);
CREATE INDEX imports_project_sha256 ON imports (project_id, sha256);

-- The import a task came from (NULL for tasks imported before this
-- migration). No foreign key: checking one per row would slow COPY, and the
-- import's row is written in the same transaction as its tasks.
ALTER TABLE tasks ADD COLUMN import_id bigint;
ALTER TABLE tasks ADD COLUMN external_id text CHECK (length(external_id) BETWEEN 1 AND 1000);
CREATE UNIQUE INDEX tasks_external_id ON tasks (project_id, external_id)
    WHERE external_id IS NOT NULL;

-- Records import p_id before its tasks are copied, in the caller's
-- transaction; refuses a duplicate first, unless p_allow. p_external is a
-- JSON array of the file's external ids (strings). A refusal raises SQLSTATE
-- QI409 with the message "DUPLICATES EARLIER_IMPORT SAME_FILE" (numbers;
-- EARLIER_IMPORT 0 when unknown, SAME_FILE 1 or 0), which the broker answers
-- as 409 duplicate_import; the transaction then rolls back.
CREATE FUNCTION quorum_import_begin(
    p_project bigint, p_id bigint, p_key text, p_file text, p_sha256 text, p_user bigint,
    p_count bigint, p_first bigint, p_last bigint, p_allow boolean, p_external text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    same_file bigint;   -- an earlier import of the same body
    dups bigint := 0;   -- tasks of this file whose external id the project holds
    dup_import bigint;  -- the import one of those came from
BEGIN
    -- One import at a time per project: two uploads of one file at once
    -- cannot both pass the check below.
    PERFORM pg_advisory_xact_lock(72070017, (p_project % 2147483647)::integer);
    IF NOT p_allow THEN
        SELECT id INTO same_file FROM imports
         WHERE project_id = p_project AND sha256 = p_sha256 ORDER BY id LIMIT 1;
        IF p_external IS NOT NULL AND p_external <> '[]' THEN
            SELECT count(*), min(t.import_id) INTO dups, dup_import
              FROM tasks t
             WHERE t.project_id = p_project
               AND t.external_id IN (SELECT jsonb_array_elements_text(p_external::jsonb));
        END IF;
        IF same_file IS NOT NULL OR dups > 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'QI409',
                MESSAGE = format('%s %s %s',
                                 CASE WHEN same_file IS NOT NULL THEN greatest(dups, p_count)
                                      ELSE dups END,
                                 coalesce(same_file, dup_import, 0),
                                 CASE WHEN same_file IS NOT NULL THEN 1 ELSE 0 END);
        END IF;
    END IF;
    INSERT INTO imports (id, project_id, import_key, file_name, task_count, first_task_id,
                         last_task_id, sha256, created_by)
    VALUES (p_id, p_project, p_key, p_file, p_count, p_first, p_last, p_sha256, p_user);
    RETURN p_id;
END
$$;
