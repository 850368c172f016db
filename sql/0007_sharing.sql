-- 0007_sharing.sql - projects shared with vendor organizations (issue 7).
--
-- A project belongs to one organization (its owner); a share lets the
-- members of a vendor organization work on it: its annotators lease, its
-- managers read progress and their own crew's throughput. A share may bound
-- the vendor's work: quota_annotations caps the annotations of all the
-- vendor's annotators together, max_tasks_per_annotator the tasks of each
-- one (both count submitted annotations plus live leases, and are enforced
-- by the lease grant in Redis; NULL: no bound).

CREATE TABLE project_shares (
    project_id               bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    org_id                   bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    quota_annotations        integer CHECK (quota_annotations BETWEEN 0 AND 1000000000),
    max_tasks_per_annotator  integer CHECK (max_tasks_per_annotator BETWEEN 0 AND 1000000000),
    created_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, org_id)
);
-- The projects shared with one organization.
CREATE INDEX project_shares_org ON project_shares (org_id);

-- A project is shared only with a vendor organization, never with its owner.
-- A CHECK cannot read other tables, so a trigger keeps this invariant.
CREATE FUNCTION project_shares_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- (An unknown organization is left to the foreign key.)
    IF EXISTS (SELECT 1 FROM organizations WHERE id = NEW.org_id AND kind <> 'vendor') THEN
        RAISE EXCEPTION 'organization % is not a vendor', NEW.org_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id AND org_id = NEW.org_id) THEN
        RAISE EXCEPTION 'project % belongs to organization %', NEW.project_id, NEW.org_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER project_shares_check BEFORE INSERT OR UPDATE ON project_shares
    FOR EACH ROW EXECUTE FUNCTION project_shares_check();

-- Scoping a project's annotations and users to one organization.
CREATE INDEX users_org ON users (org_id, id);
