-- 0006_lease_recovery.sql - find a lease's events by its fencing token: a
-- submit whose lease Redis lost (FLUSHALL, restart without persistence) is
-- accepted when PostgreSQL's lease log shows it granted to that annotator,
-- unexpired and not ended.
CREATE INDEX lease_events_token ON lease_events (project_id, token);
