-- The control loop (internal/server/control.go) and the operator plans of recommend-only mode:
-- what the rebalancer needs to know about running vnodes, drains, and the plans table.

-- name: ControlVMs
-- Every vnode that is booting, running or migrating, with where it runs, its size, its job's end
-- (start + time limit; NULL when unknown or unlimited) and hints, its newest dirty rate sample on
-- that host (NULL: not measured), and its last migration or attempt. Ordered by name.
SELECT v.name, h.name, v.state, v.cpus, v.memory_mib, coalesce(v.job_id, 0),
       j.started_at + j.time_limit AS job_end,
       coalesce(j.hints, '{}'::text[]),
       (SELECT l.value FROM kpi_series s JOIN kpi_latest l ON l.series_id = s.id
        WHERE s.hypervisor_id = v.hypervisor_id AND s.vnode = v.name AND s.metric = 'dirty_rate_bytes_per_second'
        ORDER BY l.ts DESC LIMIT 1) AS dirty_rate,
       m.last_at
FROM vnodes v
JOIN hypervisors h ON h.id = v.hypervisor_id
LEFT JOIN jobs j ON j.job_id = v.job_id AND j.ended_at IS NULL
LEFT JOIN (SELECT vnode, max(coalesce(finished_at, created_at)) AS last_at FROM migrations GROUP BY vnode) m
       ON m.vnode = v.name
WHERE v.state IN ('booting', 'running', 'migrating')
ORDER BY v.name;

-- name: HypervisorSlurmNodes
-- Hypervisors that are Slurm nodes themselves: name, Slurm node name.
SELECT name, slurm_node FROM hypervisors WHERE slurm_node IS NOT NULL AND slurm_node <> '' ORDER BY name;

-- name: NewestHealthEvents
-- For each named hypervisor ($1), its newest state or prediction event that says warning,
-- critical or a predicted breach: the event that triggered an evacuation.
SELECT DISTINCT ON (h.name) h.name, e.id, e.ts
FROM hypervisors h
JOIN health_events e ON e.hypervisor_id = h.id
WHERE h.name = ANY($1::text[])
  AND ((e.kind = 'state' AND e.to_state IN ('warning', 'critical')) OR (e.kind = 'prediction' AND e.predicted_breach_at IS NOT NULL))
ORDER BY h.name, e.ts DESC, e.id DESC;

-- name: RecordControl
-- What the control loop knows about migration $1: the health event that triggered it ($2, NULL
-- for none), when the loop decided ($3) and the plan it belongs to ($4, NULL for none), with the
-- milliseconds from the event to the first byte and to the hand-over to libvirt (started_at).
-- Returns the milliseconds from the event and from the decision to the first byte (NULL when
-- unknown). first_byte_at is the executor's first progress reading with data: on a transfer
-- shorter than its progress interval it is only journaled once libvirt returns.
UPDATE migrations m
SET plan_id = coalesce($4::bigint, m.plan_id),
    params = m.params || jsonb_strip_nulls(jsonb_build_object(
        'trigger_event_id', $2::bigint,
        'trigger_event_at', e.ts,
        'decided_at', $3::timestamptz,
        'trigger_to_first_byte_ms', extract(epoch FROM m.first_byte_at - e.ts) * 1000,
        'trigger_to_started_ms', extract(epoch FROM m.started_at - e.ts) * 1000,
        'decided_to_first_byte_ms', extract(epoch FROM m.first_byte_at - $3::timestamptz) * 1000))
FROM (SELECT NULL::int) AS dummy
LEFT JOIN health_events e ON e.id = $2::bigint
WHERE m.id = $1
RETURNING (extract(epoch FROM m.first_byte_at - e.ts) * 1000)::float8,
          (extract(epoch FROM m.first_byte_at - $3::timestamptz) * 1000)::float8;

-- name: SetHypervisorState
-- Sets hypervisor $1's state to $2 with reason $3; returns the state it had.
UPDATE hypervisors h SET state = $2, state_reason = $3, updated_at = now()
FROM (SELECT id, state FROM hypervisors WHERE name = $1 FOR UPDATE) old
WHERE h.id = old.id
RETURNING old.state;

-- name: FinishDrains
-- Draining hypervisors that hold no vnode and take part in no unfinished migration become
-- drained. Returns their names.
UPDATE hypervisors h SET state = 'drained', state_reason = 'drained: no vnode left (' || h.state_reason || ')', updated_at = now()
WHERE h.state = 'draining'
  AND NOT EXISTS (SELECT 1 FROM vnodes v WHERE v.hypervisor_id = h.id AND v.state IN ('booting', 'running', 'migrating', 'stopping'))
  AND NOT EXISTS (SELECT 1 FROM migrations m WHERE h.id IN (m.src_hypervisor_id, m.dst_hypervisor_id)
                  AND m.phase NOT IN ('done', 'failed', 'rolled_back'))
RETURNING h.name;

-- name: DrainProgress
-- Hypervisor $1's state and reason, and the vnodes still on it with their state (one row per
-- vnode; one row with NULL vnode when none is left).
SELECT h.state, h.state_reason, v.name, v.state
FROM hypervisors h
LEFT JOIN vnodes v ON v.hypervisor_id = h.id AND v.state IN ('booting', 'running', 'migrating', 'stopping')
WHERE h.name = $1
ORDER BY v.name;

-- name: InsertPlan
INSERT INTO plans (kind, reason, actions, proposed_by) VALUES ($1, $2, $3, $4)
RETURNING id, created_at;

-- name: PendingPlans
SELECT id, created_at, kind, state, reason, actions, coalesce(decided_by, ''), decided_at, outcome, proposed_by
FROM plans WHERE state = 'pending' ORDER BY id;

-- name: SupersedePlans
-- Pending plans other than $1 become stale: a newer plan replaces them.
UPDATE plans SET state = 'stale', outcome = 'superseded by plan ' || $1::bigint, decided_at = now(), decided_by = $2
WHERE state = 'pending' AND id <> $1
RETURNING id;

-- name: ListPlans
-- The newest $1 plans; with $2 only the pending ones.
SELECT id, created_at, kind, state, reason, actions, coalesce(decided_by, ''), decided_at, outcome, proposed_by
FROM plans WHERE NOT $2::bool OR state = 'pending'
ORDER BY id DESC LIMIT $1;

-- name: GetPlan
SELECT id, created_at, kind, state, reason, actions, coalesce(decided_by, ''), decided_at, outcome, proposed_by
FROM plans WHERE id = $1;

-- name: DecidePlan
-- Moves plan $1 from pending to $2 (approved, rejected or stale), decided by $3 with outcome $4.
-- No row: it was not pending (someone else decided it first, or it does not exist).
UPDATE plans SET state = $2, decided_by = $3, decided_at = now(), outcome = $4
WHERE id = $1 AND state = 'pending'
RETURNING id;

-- name: FinishPlan
-- An approved plan ($1) ends as applied or failed ($2) with outcome $3.
UPDATE plans SET state = $2, outcome = $3 WHERE id = $1 AND state = 'approved';

-- name: NotifyControl
-- Wakes the leading server's control loop (it LISTENs on drover_health) after an operator action.
SELECT pg_notify('drover_health', $1);
