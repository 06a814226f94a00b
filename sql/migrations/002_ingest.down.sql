-- 002_ingest, undone. The roles drover_agent and drover_reader are cluster-wide and may serve other
-- schemas and databases (and hold login roles as members): they are left in place, with their
-- privileges in this schema revoked. Drop them by hand once no database uses them.
-- Daily partitions of kpi_samples made by kpi_partitions hold 001's data and stay; 001's down
-- drops them with kpi_samples.
DO $$
DECLARE
    s text := current_schema();
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['drover_agent', 'drover_reader'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', s, r);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', s, r);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', s, r);
    END LOOP;
END $$;

DROP FUNCTION kpi_partitions(integer, integer);
DROP TRIGGER health_events_apply ON health_events;
DROP FUNCTION health_event_apply();
DROP FUNCTION kpi_ingest_latest(integer, integer[], timestamptz[], double precision[], text[]);
DROP TABLE sensor_health;
DROP TABLE host_kpi_now;
DROP TABLE ingest_batches;
