-- KPI "now": one row per hypervisor from the compact host_kpi_now summary that the ingest path
-- keeps (see sql/migrations/002_ingest.up.sql), cheap enough to read the whole cluster often; and
-- the statements of the ingest path itself (kpi/ingest), which runs them as a drover_agent member.

-- name: HostsNow
-- Every hypervisor with its newest KPIs (NULL: never reported) and its health row (NULL: no
-- health event yet). Kept lean for whole-cluster reads (10,000 hosts in a few ms): no sort, no
-- per-row arithmetic; store.HostsNow orders by name and works out age and staleness.
SELECT h.id, h.name, h.state, n.ts,
       n.load1, n.load5, n.cpu_busy_ratio, n.cpu_iowait_ratio, n.mem_total_bytes, n.mem_available_bytes,
       n.temp_max_celsius, n.temp_max_sensor, n.power_watts, n.fan_min_rpm,
       n.pressure_cpu_some_avg10, n.pressure_mem_some_avg10, n.pressure_io_some_avg10,
       n.vms, n.worst_status, hh.state, hh.since, hh.worst_sensor, hh.predicted_breach_at
FROM hypervisors h
LEFT JOIN host_kpi_now n ON n.hypervisor_id = h.id
LEFT JOIN host_health hh ON hh.hypervisor_id = h.id;

-- name: HostsNowDashboard
-- HostsNow for people (psql, Grafana): how old each host's figures are, whether they are stale
-- (older than $1 seconds, or none), and its health: host_health's state; a host with no health
-- event yet is 'ok' while it reports (sensors are ok until an event says otherwise) and 'unknown'
-- once its figures are stale.
SELECT h.name, h.state, n.ts, date_trunc('second', statement_timestamp() - n.ts) AS age,
       n.ts IS NULL OR n.ts < statement_timestamp() - make_interval(secs => $1) AS stale,
       coalesce(hh.state, CASE WHEN n.ts >= statement_timestamp() - make_interval(secs => $1) THEN 'ok' ELSE 'unknown' END) AS health,
       hh.worst_sensor, hh.predicted_breach_at,
       n.load1, round(n.cpu_busy_ratio::numeric, 2) AS cpu_busy, round((n.mem_available_bytes / 2^30)::numeric, 1) AS mem_avail_gib,
       n.temp_max_celsius, n.temp_max_sensor, n.power_watts, n.vms, n.worst_status
FROM hypervisors h
LEFT JOIN host_kpi_now n ON n.hypervisor_id = h.id
LEFT JOIN host_health hh ON hh.hypervisor_id = h.id
ORDER BY h.name;

-- name: IngestHostID
-- The id of a hypervisor, by name (drover_agent may read only these two columns).
SELECT id FROM hypervisors WHERE name = $1;

-- name: IngestSeries
-- Get-or-create series of host $1: the ids of the given (source, metric, vnode, sensor) keys,
-- created (with their unit) when missing. A key created concurrently by another agent may be
-- missing from the answer (it is not in this statement's snapshot): ask again for those.
WITH input AS (
    SELECT DISTINCT ON (source, metric, vnode, sensor) *
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u (source, metric, vnode, sensor, unit)
), created AS (
    INSERT INTO kpi_series (hypervisor_id, source, metric, vnode, sensor, unit)
    SELECT $1, source, metric, vnode, sensor, unit FROM input
    ON CONFLICT DO NOTHING
    RETURNING id, source, metric, vnode, sensor
)
SELECT id, source, metric, vnode, sensor FROM created
UNION ALL
SELECT s.id, s.source, s.metric, s.vnode, s.sensor
FROM kpi_series s JOIN input i USING (source, metric, vnode, sensor)
WHERE s.hypervisor_id = $1;

-- name: IngestBatch
-- Record a batch as delivered; no row affected: it was delivered before.
INSERT INTO ingest_batches (agent, seq, host, samples, events) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING;

-- name: IngestLatest
-- Newest value per series and the host's summary (kpi_ingest_latest, SECURITY DEFINER).
SELECT kpi_ingest_latest($1, $2, $3, $4, $5);

-- name: IngestEvents
-- A batch's health events; the triggers maintain host_health and NOTIFY drover_health.
INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state, value, threshold,
                           predicted_breach_at, confidence, message)
SELECT $1, u.ts, u.sensor, u.kind, u.from_state, u.to_state, u.value, u.threshold, u.predicted, u.confidence, u.message
FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[],
            $9::timestamptz[], $10::real[], $11::text[])
     AS u (ts, sensor, kind, from_state, to_state, value, threshold, predicted, confidence, message);

-- name: IngestPartitions
-- Daily kpi_samples partitions ahead, old ones dropped (kpi_partitions, SECURITY DEFINER).
SELECT action, partition_name, rows FROM kpi_partitions($1, $2);

-- name: HostsState
-- The state of every hypervisor that has reported, keyed by its id, as lean as a whole-cluster read
-- can be: the newest sample's time, the KPIs placement weighs, health state (NULL: no health event
-- yet) and the earliest predicted breach. One scan of one table, no join: host_kpi_now carries
-- copies of host_health's state and breach, kept by triggers (sql/migrations/004_host_state.up.sql).
-- Names and inventory come from FleetInventory, which changes rarely. Hosts that never reported
-- are absent.
SELECT hypervisor_id, ts, load1, cpu_busy_ratio, mem_available_bytes, temp_max_celsius, power_watts,
       health_state, predicted_breach_at
FROM host_kpi_now;
