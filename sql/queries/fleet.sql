-- Fleet queries: what the placement engine needs to know about every hypervisor, besides its
-- KPIs (HostsNow in kpi_now.sql): inventory, what its vnodes hold, and recent trouble.

-- name: FleetInventory
-- Every hypervisor's inventory row with what its vnodes hold now (booting, running or migrating
-- vnodes count where the journal says they are).
SELECT h.id, h.name, h.state, coalesce(h.cpus, 0), coalesce(h.memory_mib, 0), h.features, coalesce(h.rack, ''),
       coalesce(h.power_cap_watts, 0),
       coalesce(sum(v.cpus) FILTER (WHERE v.state IN ('booting', 'running', 'migrating')), 0)::int AS alloc_cpus,
       coalesce(sum(v.memory_mib) FILTER (WHERE v.state IN ('booting', 'running', 'migrating')), 0)::bigint AS alloc_mib,
       count(v.name) FILTER (WHERE v.state IN ('booting', 'running', 'migrating'))::int AS vnodes
FROM hypervisors h
LEFT JOIN vnodes v ON v.hypervisor_id = h.id
GROUP BY h.id
ORDER BY h.name;

-- name: FleetTrouble
-- Per hypervisor, migrations that touched it and migrations that failed there since $1: counts
-- and the newest time of each.
SELECT h.name,
       count(m.id) FILTER (WHERE m.phase = 'done')::int AS migrations,
       max(m.finished_at) FILTER (WHERE m.phase = 'done') AS last_migration,
       count(m.id) FILTER (WHERE m.phase IN ('failed', 'rolled_back'))::int AS failures,
       max(coalesce(m.finished_at, m.created_at)) FILTER (WHERE m.phase IN ('failed', 'rolled_back')) AS last_failure
FROM hypervisors h
JOIN migrations m ON h.id IN (m.src_hypervisor_id, m.dst_hypervisor_id)
WHERE m.created_at >= $1
GROUP BY h.name
ORDER BY h.name;

-- name: PlacementsFor
-- The newest placement decisions for a vnode ($1, '' = any) or a job ($2, 0 = any), newest first,
-- at most $3, each with its explain document.
SELECT p.id, p.created_at, p.vnode, p.job_id, coalesce(h.name, ''), p.outcome, p.policy, p.seed, p.reason, p.explain
FROM placements p LEFT JOIN hypervisors h ON h.id = p.hypervisor_id
WHERE ($1 = '' OR p.vnode = $1) AND ($2::bigint = 0 OR p.job_id = $2)
ORDER BY p.id DESC
LIMIT $3;

-- name: SetHypervisorCapacity
-- What libvirt says a hypervisor has: $1 name, $2 logical CPUs, $3 memory in MiB. Changes
-- nothing when it already says so.
UPDATE hypervisors SET cpus = $2, memory_mib = $3, updated_at = now()
WHERE name = $1 AND (cpus IS DISTINCT FROM $2 OR memory_mib IS DISTINCT FROM $3);
