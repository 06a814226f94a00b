-- The live-migration journal: rows in `migrations` move through their phases; every transition
-- is also appended to `migration_events`.

-- name: InsertMigration
INSERT INTO migrations (vnode, src_hypervisor_id, dst_hypervisor_id, reason, owner, params)
VALUES ($1, (SELECT id FROM hypervisors WHERE name = $2), (SELECT id FROM hypervisors WHERE name = $3), $4, $5, $6)
RETURNING id, created_at;

-- name: SetMigrationPhase
UPDATE migrations
SET phase = $2,
    started_at = CASE WHEN $2 = 'preparing' THEN coalesce(started_at, now()) ELSE started_at END,
    first_byte_at = CASE WHEN $2 = 'transferring' THEN coalesce(first_byte_at, now()) ELSE first_byte_at END,
    finished_at = CASE WHEN $2 IN ('done', 'failed', 'rolled_back') THEN now() ELSE finished_at END,
    error = coalesce(NULLIF($3, ''), error)
WHERE id = $1;

-- name: SetMigrationFigures
UPDATE migrations
SET total_ms = $2, downtime_ms = $3, bytes_total = $4, bytes_processed = $5, iterations = $6
WHERE id = $1;

-- name: InsertMigrationEvent
INSERT INTO migration_events (migration_id, phase, detail) VALUES ($1, $2, $3);

-- name: GetMigration
SELECT m.id, m.vnode, s.name, d.name, m.reason, m.phase, m.created_at, m.started_at, m.first_byte_at,
       m.finished_at, m.total_ms, m.downtime_ms, m.bytes_total, m.bytes_processed, m.iterations, m.error
FROM migrations m
JOIN hypervisors s ON s.id = m.src_hypervisor_id
JOIN hypervisors d ON d.id = m.dst_hypervisor_id
WHERE m.id = $1;

-- name: UnfinishedMigration
-- The vnode's migration that has not reached done, failed or rolled_back (at most one), with its owner.
SELECT m.id, m.vnode, s.name, d.name, m.reason, m.phase, m.created_at, m.started_at, m.first_byte_at,
       m.finished_at, m.total_ms, m.downtime_ms, m.bytes_total, m.bytes_processed, m.iterations, m.error, m.owner
FROM migrations m
JOIN hypervisors s ON s.id = m.src_hypervisor_id
JOIN hypervisors d ON d.id = m.dst_hypervisor_id
WHERE m.vnode = $1 AND m.phase NOT IN ('done', 'failed', 'rolled_back');

-- name: MigrationsOfVnode
-- A vnode's migrations, oldest first.
SELECT m.id, m.vnode, s.name, d.name, m.reason, m.phase, m.created_at, m.started_at, m.first_byte_at,
       m.finished_at, m.total_ms, m.downtime_ms, m.bytes_total, m.bytes_processed, m.iterations, m.error
FROM migrations m
JOIN hypervisors s ON s.id = m.src_hypervisor_id
JOIN hypervisors d ON d.id = m.dst_hypervisor_id
WHERE m.vnode = $1
ORDER BY m.id;

-- name: MigrationEvents
-- One migration's journal entries in the order they were written.
SELECT phase, ts, detail FROM migration_events WHERE migration_id = $1 ORDER BY id;

-- name: VnodeHistory
-- A vnode's lifecycle events (boots, migrations, reconciliations), oldest first.
SELECT e.event, e.ts, coalesce(h.name, ''), e.detail
FROM vnode_events e LEFT JOIN hypervisors h ON h.id = e.hypervisor_id
WHERE e.vnode = $1
ORDER BY e.id;
