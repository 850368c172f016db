-- 0019_project_manage.sql - projects can be archived and deleted (issue 14,
-- "management").
--
-- archived_at: while set, lease requests answer 409 project_archived (no
-- new work is handed out, whatever paused_at says); everything the project
-- holds is kept and readable, and leases already held may still be
-- submitted. NULL: the project is in use. The broker caches the column
-- with the project, as it does paused_at.
ALTER TABLE projects ADD COLUMN archived_at timestamptz NULL;

-- Deleting a project deletes its rows through ON DELETE CASCADE alone, so
-- no list of tables has to be kept in step with the schema: every foreign
-- key that points at projects or tasks and does not cascade yet is made to
-- cascade here (0001's tasks, leases and annotations, 0017's imports, ...).
-- Tables made after this migration declare ON DELETE CASCADE themselves.
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conname, c.conrelid::regclass AS tbl, pg_get_constraintdef(c.oid) AS def
          FROM pg_constraint c
         WHERE c.contype = 'f'
           AND c.confrelid IN ('projects'::regclass, 'tasks'::regclass)
           AND c.confdeltype <> 'c'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s ON DELETE CASCADE',
                       fk.tbl, fk.conname, fk.conname, fk.def);
    END LOOP;
END
$$;

-- The lease log and its rollups (0003, 0008, 0013) have no foreign keys on
-- purpose (a batch of log rows is never refused for one row, and no check
-- slows the insert), so no cascade reaches them: their rows of a deleted
-- project go with it here, in the deleting transaction. A table of that
-- kind added later joins this list.
CREATE FUNCTION quorum_project_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lease_events WHERE project_id = OLD.id;
    DELETE FROM lease_event_minutes WHERE project_id = OLD.id;
    DELETE FROM lease_event_hours WHERE project_id = OLD.id;
    DELETE FROM annotation_hours WHERE project_id = OLD.id;
    DELETE FROM annotation_hours_rolled WHERE project_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER projects_deleted AFTER DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION quorum_project_deleted();

-- GET /v1/projects pages through an organization's projects by id (a
-- vendor's shared ones are found by 0007's project_shares_org).
CREATE INDEX projects_org_id ON projects (org_id, id);
