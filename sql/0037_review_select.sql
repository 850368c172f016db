-- 0037_review_select.sql - review items selected on request (issue 16,
-- point 7): POST /v1/projects/{id}/reviews/select records a pending review
-- item for every complete task whose consensus support is below a share,
-- by the majority or by the crew's Dawid-Skene model (broker/api/api_review.c,
-- SQL in broker/store/sql_review.h).
--
-- Such an item is a row of reviews like one the completion trigger of
-- sql/0031_review.sql makes: the same lease, the same decision, one item
-- per task. What the row did not say is why it exists: support was the
-- majority's share at completion, and a Dawid-Skene posterior is not that.
-- selected_by says which measure support is: 'completion' (the project's
-- review_mode when the task completed; the majority's share), 'majority'
-- (the same share, selected on request) or 'dawid_skene' (the model's
-- posterior of its consensus, as the consensus export with
-- method=dawid_skene shows it, to 4 decimals). Existing rows were all made
-- at completion.

ALTER TABLE reviews
    ADD COLUMN selected_by text NOT NULL DEFAULT 'completion'
        CHECK (selected_by IN ('completion', 'majority', 'dawid_skene'));

COMMENT ON COLUMN reviews.support IS
    'the consensus support when selected, by the measure selected_by names';
