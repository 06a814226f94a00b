-- 005_host_kpi_now_order: host_kpi_now rebuilt with the columns HostsState reads first.
--
-- PostgreSQL takes a row apart column by column from the first up to the last one asked for. In
-- 002's order the health columns that 004 added came last, so the whole-cluster state read (10,000
-- hosts, goal ≤ 10 ms) took apart all 21 columns of every row; now it stops at the ninth. Nothing
-- else changes: the same columns, constraints, trigger and grants, and every statement names its
-- columns. The copy and the swap happen in this migration's transaction, which holds the table.
ALTER TABLE host_kpi_now RENAME TO host_kpi_now_002;
ALTER INDEX host_kpi_now_pkey RENAME TO host_kpi_now_002_pkey;

CREATE TABLE host_kpi_now (
    hypervisor_id           integer PRIMARY KEY REFERENCES hypervisors (id) ON DELETE CASCADE,
    ts                      timestamptz NOT NULL,
    -- what HostsState reads, in its order
    load1                   double precision,
    cpu_busy_ratio          double precision,
    mem_available_bytes     double precision,
    temp_max_celsius        double precision, -- hottest host temperature sensor (hwmon, thermal zones, BMC)
    power_watts             double precision, -- BMC power reading; else the sum of RAPL packages
    health_state            text,             -- host_health.state; NULL: no health event yet
    predicted_breach_at     timestamptz,      -- host_health.predicted_breach_at
    -- the rest
    load5                   double precision,
    load15                  double precision,
    cpu_iowait_ratio        double precision,
    mem_total_bytes         double precision,
    temp_max_sensor         text,
    fan_min_rpm             double precision,
    pressure_cpu_some_avg10 double precision,
    pressure_mem_some_avg10 double precision,
    pressure_io_some_avg10  double precision,
    vms                     integer NOT NULL DEFAULT 0, -- vnodes with libvirt samples
    worst_status            text NOT NULL DEFAULT 'ok',  -- the hardware's own most severe sensor status
    series                  integer NOT NULL DEFAULT 0,  -- series the row was made from
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- before the trigger exists: the rows keep their health columns as they are
INSERT INTO host_kpi_now (hypervisor_id, ts, load1, cpu_busy_ratio, mem_available_bytes, temp_max_celsius,
    power_watts, health_state, predicted_breach_at, load5, load15, cpu_iowait_ratio, mem_total_bytes,
    temp_max_sensor, fan_min_rpm, pressure_cpu_some_avg10, pressure_mem_some_avg10, pressure_io_some_avg10,
    vms, worst_status, series, updated_at)
SELECT hypervisor_id, ts, load1, cpu_busy_ratio, mem_available_bytes, temp_max_celsius,
    power_watts, health_state, predicted_breach_at, load5, load15, cpu_iowait_ratio, mem_total_bytes,
    temp_max_sensor, fan_min_rpm, pressure_cpu_some_avg10, pressure_mem_some_avg10, pressure_io_some_avg10,
    vms, worst_status, series, updated_at
FROM host_kpi_now_002;

DROP TABLE host_kpi_now_002; -- and 004's trigger on it

CREATE TRIGGER host_kpi_now_health BEFORE INSERT ON host_kpi_now
    FOR EACH ROW EXECUTE FUNCTION host_kpi_now_health();
GRANT SELECT ON host_kpi_now TO drover_reader;
