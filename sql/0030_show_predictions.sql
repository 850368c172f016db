-- 0030_show_predictions.sql - predictions shown to annotators (issue 16,
-- point 9: pre-annotation).
--
-- A project may show its model's prediction with each leased task: the
-- lease answer carries the task's prediction (label or labels, score,
-- model version), the terminal labeler shows it (a key accepts it) and the
-- exec bridge hands it to its command. The report then compares the human
-- labels with the predictions (how often humans just accept).
ALTER TABLE projects ADD COLUMN show_predictions boolean NOT NULL DEFAULT false;
