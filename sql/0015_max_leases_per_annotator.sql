-- 0015_max_leases_per_annotator.sql - a bound on each annotator's live
-- leases in a project.
--
-- One annotator asking for 100 leases three times held all 300 tasks of a
-- project for the lease TTL. The lease script now refuses a lease past this
-- many live ones of the annotator (broker/lease/lease.c, GRANT_LUA). NULL: the
-- broker's default (quorumd --max-leases-per-annotator, 10).
ALTER TABLE projects
    ADD COLUMN max_leases_per_annotator integer CHECK (max_leases_per_annotator BETWEEN 1 AND 10000);
