-- 0024_webhook_retention.sql - old webhook events can be found cheaply.
--
-- The dispatcher deletes events (and, by cascade, their deliveries) older
-- than quorumd --webhook-keep-days once none of their deliveries is pending
-- (broker/store/sql_webhook.h, QR_SQL_WEBHOOK_PRUNE), oldest first.
CREATE INDEX webhook_events_created ON webhook_events (created_at);
