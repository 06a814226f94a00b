-- 004_host_state: each host's health state and earliest predicted breach, copied from host_health
-- into its host_kpi_now row, so that the whole-cluster state read (HostsState: 10,000 hosts in a
-- few ms) scans one table instead of joining two. host_health stays the record (HostsNow and the
-- dashboard read its since and worst_sensor); the copies are kept by triggers, whichever comes
-- first for a host, its health or its first KPI row:
--
--   host_kpi_now_health   BEFORE INSERT on host_kpi_now: a host's first summary row takes the host's
--                         host_health state (kpi_ingest_latest's upserts of an existing row leave
--                         the two columns alone: its ON CONFLICT SET does not name them);
--   host_health_to_now_*  AFTER each change of host_health: the host's summary row follows it
--                         (NULL, NULL once the host_health row is gone).
--
-- NULL health_state: no host_health row, the host has had no health event (store.HostsState reads
-- it as ok while the figures are fresh, unknown once stale, as before).
--
-- Concurrency. A host's first summary row and a health change of the same host in two concurrent
-- transactions could each miss the other's uncommitted row. Both sides therefore take the host's
-- hypervisors row FOR NO KEY UPDATE when the summary row is not there yet (row locks live in the
-- tuple, so a bulk insert of many hosts does not fill the lock table; FOR NO KEY UPDATE does not
-- block foreign-key checks), and look again after the lock: the later one sees the earlier one's
-- committed row. Only hosts without a summary row pay for it. In that window (a host's very first
-- batch) a transaction that writes the summary row and then health, racing another that writes
-- the same host's health, may be cancelled as a deadlock; the agent's batch is rolled back and
-- delivered again (exactly-once by ingest_batches). Updates of an existing summary row wait on its
-- row lock as any update does, and need nothing more.
--
-- The agent role gets nothing new: the trigger functions are SECURITY DEFINER with search_path
-- pinned to this schema, like 002's, and the agent still may not UPDATE host_kpi_now.

ALTER TABLE host_kpi_now
    ADD COLUMN health_state        text, -- host_health.state; NULL: no health event yet
    ADD COLUMN predicted_breach_at timestamptz; -- host_health.predicted_breach_at

CREATE FUNCTION host_kpi_now_health() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF EXISTS (SELECT FROM host_kpi_now WHERE hypervisor_id = NEW.hypervisor_id) THEN
        RETURN NEW;  -- an upsert of an existing row: its health columns are current and stay
    END IF;
    PERFORM FROM hypervisors WHERE id = NEW.hypervisor_id FOR NO KEY UPDATE;
    -- No host_health row: both NULL, whatever the INSERT said.
    SELECT hh.state, hh.predicted_breach_at INTO NEW.health_state, NEW.predicted_breach_at
    FROM host_health hh WHERE hh.hypervisor_id = NEW.hypervisor_id;
    RETURN NEW;
END $$;
CREATE TRIGGER host_kpi_now_health BEFORE INSERT ON host_kpi_now
    FOR EACH ROW EXECUTE FUNCTION host_kpi_now_health();

CREATE FUNCTION host_health_to_now() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    hv integer;
    st text;          -- NULL when the host_health row was deleted
    breach timestamptz;
BEGIN
    IF TG_OP = 'DELETE' THEN
        hv := OLD.hypervisor_id;
    ELSE
        hv := NEW.hypervisor_id;
        st := NEW.state;
        breach := NEW.predicted_breach_at;
    END IF;
    -- Writing only what changed spares the summary row a new version (host_health is rewritten
    -- by every health event, its state and breach far less often).
    UPDATE host_kpi_now SET health_state = st, predicted_breach_at = breach
    WHERE hypervisor_id = hv AND (health_state IS DISTINCT FROM st OR predicted_breach_at IS DISTINCT FROM breach);
    IF NOT FOUND AND NOT EXISTS (SELECT FROM host_kpi_now WHERE hypervisor_id = hv) THEN
        -- No summary row, or one a concurrent transaction is inserting: wait for it, then again.
        PERFORM FROM hypervisors WHERE id = hv FOR NO KEY UPDATE;
        UPDATE host_kpi_now SET health_state = st, predicted_breach_at = breach
        WHERE hypervisor_id = hv AND (health_state IS DISTINCT FROM st OR predicted_breach_at IS DISTINCT FROM breach);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER host_health_to_now_ins_del AFTER INSERT OR DELETE ON host_health
    FOR EACH ROW EXECUTE FUNCTION host_health_to_now();
CREATE TRIGGER host_health_to_now_upd AFTER UPDATE ON host_health
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                       OR OLD.predicted_breach_at IS DISTINCT FROM NEW.predicted_breach_at)
    EXECUTE FUNCTION host_health_to_now();

DO $$
DECLARE
    s text := current_schema();
BEGIN
    EXECUTE format('ALTER FUNCTION host_kpi_now_health() SET search_path = %I, pg_temp', s);
    EXECUTE format('ALTER FUNCTION host_health_to_now() SET search_path = %I, pg_temp', s);
END $$;
REVOKE ALL ON FUNCTION host_kpi_now_health() FROM PUBLIC;
REVOKE ALL ON FUNCTION host_health_to_now() FROM PUBLIC;

-- Backfill, after the triggers: CREATE TRIGGER locked host_health against writes until this
-- migration commits, so no health change falls between this copy and the triggers.
UPDATE host_kpi_now n SET health_state = hh.state, predicted_breach_at = hh.predicted_breach_at
FROM host_health hh WHERE hh.hypervisor_id = n.hypervisor_id;
