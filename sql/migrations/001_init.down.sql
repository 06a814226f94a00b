-- 001_init, undone in reverse order of creation.
DROP TABLE migration_events;
DROP TABLE migrations;
DROP TABLE plans;
DROP TABLE placements;
DROP TRIGGER health_events_notify ON health_events;
DROP FUNCTION notify_health_event();
DROP TABLE host_health;
DROP TABLE health_events;
DROP TABLE kpi_latest;
DROP TABLE kpi_samples;
DROP TABLE kpi_series;
DROP TABLE jobs;
DROP TABLE vnode_events;
DROP TABLE vnodes;
DROP TABLE bmcs;
DROP TABLE hypervisors;
