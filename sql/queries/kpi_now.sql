-- KPI "now" queries: one row per hypervisor from the compact host_kpi_now summary that the ingest
-- path keeps (see sql/migrations/002_ingest.up.sql), cheap enough to read the whole cluster often.

-- name: HostsNow
-- Every hypervisor with its newest KPIs, its health and how old the figures are. $1: seconds after
-- which figures count as stale. age_s is NULL and stale true for a host that never reported.
-- health: host_health's state; a host with no health event yet is 'ok' while it reports
-- (sensors are ok until an event says otherwise) and 'unknown' once its figures are stale.
SELECT h.id, h.name, h.state, n.ts,
       extract(epoch FROM statement_timestamp() - n.ts)::float8 AS age_s,
       n.ts IS NULL OR n.ts < statement_timestamp() - make_interval(secs => $1) AS stale,
       n.load1, n.load5, n.cpu_busy_ratio, n.cpu_iowait_ratio, n.mem_total_bytes, n.mem_available_bytes,
       n.temp_max_celsius, coalesce(n.temp_max_sensor, ''), n.power_watts, n.fan_min_rpm,
       n.pressure_cpu_some_avg10, n.pressure_mem_some_avg10, n.pressure_io_some_avg10,
       coalesce(n.vms, 0), coalesce(n.worst_status, ''),
       coalesce(hh.state, CASE WHEN n.ts >= statement_timestamp() - make_interval(secs => $1) THEN 'ok' ELSE 'unknown' END) AS health,
       hh.since, coalesce(hh.worst_sensor, ''), hh.predicted_breach_at
FROM hypervisors h
LEFT JOIN host_kpi_now n ON n.hypervisor_id = h.id
LEFT JOIN host_health hh ON hh.hypervisor_id = h.id
ORDER BY h.name;
