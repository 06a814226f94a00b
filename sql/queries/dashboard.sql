-- Dashboard queries: run them by hand (psql: copy the block) or from Grafana.

-- name: HostsOverview
-- Every hypervisor: state, health, and how many vnodes it runs.
SELECT h.name, h.state, coalesce(hh.state, 'unknown') AS health, hh.worst_sensor,
       count(v.name) FILTER (WHERE v.state IN ('booting', 'running', 'migrating')) AS vnodes,
       coalesce(sum(v.memory_mib) FILTER (WHERE v.state IN ('booting', 'running', 'migrating')), 0) AS vnode_mib
FROM hypervisors h
LEFT JOIN host_health hh ON hh.hypervisor_id = h.id
LEFT JOIN vnodes v ON v.hypervisor_id = h.id
GROUP BY h.name, h.state, hh.state, hh.worst_sensor
ORDER BY h.name;

-- name: VnodesOverview
-- Where every vnode runs, for which job, since when.
SELECT v.name, v.state, coalesce(h.name, '-') AS hypervisor, v.job_id, j.user_name, v.booted_at,
       v.updated_at, v.state_reason
FROM vnodes v
LEFT JOIN hypervisors h ON h.id = v.hypervisor_id
LEFT JOIN jobs j ON j.job_id = v.job_id
ORDER BY v.name;

-- name: RecentMigrations
-- The newest live migrations with their figures.
SELECT m.id, m.vnode, s.name AS src, d.name AS dst, m.reason, m.phase,
       round(m.total_ms::numeric) AS total_ms, round(m.downtime_ms::numeric) AS downtime_ms,
       round(m.bytes_processed / 1048576.0, 1) AS mib_sent, m.iterations, m.created_at, m.error
FROM migrations m
JOIN hypervisors s ON s.id = m.src_hypervisor_id
JOIN hypervisors d ON d.id = m.dst_hypervisor_id
ORDER BY m.id DESC
LIMIT 50;

-- name: RecentPlacements
-- The newest placement decisions and why.
SELECT p.id, p.created_at, p.vnode, p.job_id, coalesce(h.name, '-') AS hypervisor, p.outcome, p.policy, p.reason
FROM placements p LEFT JOIN hypervisors h ON h.id = p.hypervisor_id
ORDER BY p.id DESC
LIMIT 50;
