-- 003_plans: what became of an operator plan (recommend-only mode). `reason` says why the plan was
-- proposed; `outcome` what happened once decided: the stale moves and why, the rejection's reason,
-- or each move's migration and its result. `proposed_by` is the server instance that wrote it.
ALTER TABLE plans
    ADD COLUMN outcome     text NOT NULL DEFAULT '',
    ADD COLUMN proposed_by text NOT NULL DEFAULT '';
CREATE INDEX plans_pending ON plans (id) WHERE state = 'pending';
