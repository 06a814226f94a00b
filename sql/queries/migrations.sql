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
