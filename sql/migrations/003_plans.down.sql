-- 003_plans, undone.
DROP INDEX plans_pending;
ALTER TABLE plans DROP COLUMN proposed_by, DROP COLUMN outcome;
