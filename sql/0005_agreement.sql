-- 0005_agreement.sql - indexes for the live agreement endpoint: reading a
-- project's annotations in id order (incremental refresh) and its tasks
-- that carry a gold answer.
CREATE INDEX annotations_project_id ON annotations (project_id, id);
CREATE INDEX tasks_gold ON tasks (project_id) WHERE gold IS NOT NULL;
