-- Crash safety of the live-migration journal: who may touch a vnode's migration, and admission
-- under the concurrency limits. Advisory-lock keys are scoped to the schema (current_schema()), so
-- installations and test schemas sharing one database never block each other.

-- name: TryLockVnode
-- A session lock on one vnode, held for as long as a process migrates or reconciles it: a journal
-- row whose vnode lock is free has no live owner. Returns whether the lock was taken.
SELECT pg_try_advisory_lock(hashtext('drover.migrate.vnode'), hashtext(current_schema() || '/' || $1::text));

-- name: UnlockVnode
SELECT pg_advisory_unlock(hashtext('drover.migrate.vnode'), hashtext(current_schema() || '/' || $1::text));

-- name: LockMigrationAdmission
-- Serialises admissions (count the unfinished migrations, then journal a new one) until the
-- transaction ends, so concurrent processes obey the migration limits together.
SELECT pg_advisory_xact_lock(hashtext('drover.migrate.admission'), hashtext(current_schema()));

-- name: UnfinishedMigrations
-- Every migration that has not reached done, failed or rolled_back, oldest first, with its owner.
SELECT m.id, m.vnode, s.name, d.name, m.reason, m.phase, m.created_at, m.started_at, m.first_byte_at,
       m.finished_at, m.total_ms, m.downtime_ms, m.bytes_total, m.bytes_processed, m.iterations, m.error, m.owner
FROM migrations m
JOIN hypervisors s ON s.id = m.src_hypervisor_id
JOIN hypervisors d ON d.id = m.dst_hypervisor_id
WHERE m.phase NOT IN ('done', 'failed', 'rolled_back')
ORDER BY m.id;
