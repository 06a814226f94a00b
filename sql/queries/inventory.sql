-- Hypervisors, BMC endpoints, vnodes and jobs: what drover writes as it places and moves vnodes.

-- name: UpsertHypervisor
-- The configuration is the source of truth for which hypervisors exist; rows are kept in step.
INSERT INTO hypervisors (name, uri, migration_uri)
VALUES ($1, $2, NULLIF($3, ''))
ON CONFLICT (name) DO UPDATE
    SET uri = EXCLUDED.uri, migration_uri = EXCLUDED.migration_uri, updated_at = now()
    WHERE hypervisors.uri IS DISTINCT FROM EXCLUDED.uri
       OR hypervisors.migration_uri IS DISTINCT FROM EXCLUDED.migration_uri
RETURNING id;

-- name: HypervisorID
SELECT id FROM hypervisors WHERE name = $1;

-- name: UpsertBMC
INSERT INTO bmcs (hypervisor_id, host, port, interface, username, cipher_suite)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (hypervisor_id) DO UPDATE
    SET host = EXCLUDED.host, port = EXCLUDED.port, interface = EXCLUDED.interface,
        username = EXCLUDED.username, cipher_suite = EXCLUDED.cipher_suite, updated_at = now();

-- name: GetVnode
SELECT v.name, v.state, v.state_reason, coalesce(h.name, ''), v.domain_uuid, v.job_id, v.updated_at
FROM vnodes v LEFT JOIN hypervisors h ON h.id = v.hypervisor_id
WHERE v.name = $1;

-- name: VnodeBooting
-- A vnode's VM was started on a hypervisor (or found already running there).
INSERT INTO vnodes (name, address, mac, cpus, memory_mib, state, state_reason, hypervisor_id, domain_uuid, job_id, booted_at)
VALUES ($1, $2, $3, $4, $5, 'booting', '', (SELECT id FROM hypervisors WHERE name = $6), NULLIF($7, '')::uuid, $8, now())
ON CONFLICT (name) DO UPDATE
    SET address = EXCLUDED.address, mac = EXCLUDED.mac, cpus = EXCLUDED.cpus, memory_mib = EXCLUDED.memory_mib,
        state = 'booting', state_reason = '', hypervisor_id = EXCLUDED.hypervisor_id,
        domain_uuid = EXCLUDED.domain_uuid, job_id = coalesce(EXCLUDED.job_id, vnodes.job_id),
        booted_at = now(), updated_at = now();

-- name: SetVnodeState
-- $3 is the reason shown to operators; $4 the hypervisor it now runs on ('' = none, NULL = unchanged).
UPDATE vnodes
SET state = $2, state_reason = $3, updated_at = now(),
    hypervisor_id = CASE WHEN $4::text IS NULL THEN hypervisor_id
                         ELSE (SELECT id FROM hypervisors WHERE name = $4::text) END,
    domain_uuid = CASE WHEN $2 = 'absent' THEN NULL ELSE domain_uuid END,
    job_id = CASE WHEN $2 = 'absent' THEN NULL ELSE job_id END
WHERE name = $1;

-- name: VnodesRunning
-- The vnodes of a job that started: their slurmd registered, so they are up.
UPDATE vnodes SET state = 'running', job_id = $2, state_reason = '', updated_at = now()
WHERE name = ANY($1) AND state IN ('booting', 'running');

-- name: EnsureVnode
INSERT INTO vnodes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING;

-- name: VnodeVanished
-- A vnode whose VM no hypervisor has: when its row still says state $2 on hypervisor $3 ('' =
-- none), it becomes failed with reason $4 and a 'vanished' event with detail $5 is appended, in
-- one statement. No row: it changed meanwhile, and nothing is written.
WITH gone AS (
    UPDATE vnodes SET state = 'failed', state_reason = $4, updated_at = now()
    WHERE name = $1 AND state = $2
      AND hypervisor_id IS NOT DISTINCT FROM (SELECT id FROM hypervisors WHERE name = NULLIF($3::text, ''))
    RETURNING name, hypervisor_id
)
INSERT INTO vnode_events (vnode, event, hypervisor_id, detail)
SELECT name, 'vanished', hypervisor_id, $5 FROM gone;

-- name: LiveVnodes
-- The vnodes recorded booting or running, with their hypervisor ('' = none): what the server's
-- audit compares with the domains the hypervisors list.
SELECT v.name, v.state, coalesce(h.name, '')
FROM vnodes v LEFT JOIN hypervisors h ON h.id = v.hypervisor_id
WHERE v.state IN ('booting', 'running')
ORDER BY v.name;

-- name: InsertVnodeEvent
INSERT INTO vnode_events (vnode, event, hypervisor_id, detail)
VALUES ($1, $2, (SELECT id FROM hypervisors WHERE name = NULLIF($3, '')), $4);

-- name: JobStarted
INSERT INTO jobs (job_id, name, user_name, account, partition, nodes, cpus, memory_mib, constraints,
                  time_limit, hints, state, submitted_at, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'running', $12, coalesce($13, now()))
ON CONFLICT (job_id) DO UPDATE
    SET name = EXCLUDED.name, user_name = EXCLUDED.user_name, account = EXCLUDED.account,
        partition = EXCLUDED.partition, nodes = EXCLUDED.nodes,
        cpus = coalesce(EXCLUDED.cpus, jobs.cpus), memory_mib = coalesce(EXCLUDED.memory_mib, jobs.memory_mib),
        constraints = EXCLUDED.constraints, time_limit = coalesce(EXCLUDED.time_limit, jobs.time_limit),
        hints = EXCLUDED.hints, state = 'running',
        submitted_at = coalesce(EXCLUDED.submitted_at, jobs.submitted_at),
        started_at = coalesce(jobs.started_at, EXCLUDED.started_at), updated_at = now();

-- name: JobEnded
INSERT INTO jobs (job_id, name, user_name, partition, nodes, state, exit_code, ended_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (job_id) DO UPDATE
    SET state = EXCLUDED.state, exit_code = EXCLUDED.exit_code, ended_at = now(), updated_at = now();

-- name: GetJob
SELECT job_id, name, user_name, partition, nodes, state, exit_code, time_limit, hints, started_at, ended_at
FROM jobs WHERE job_id = $1;

-- name: InsertPlacement
INSERT INTO placements (vnode, job_id, hypervisor_id, outcome, policy, seed, reason, explain)
VALUES ($1, $2, (SELECT id FROM hypervisors WHERE name = NULLIF($3, '')), $4, $5, $6, $7, $8)
RETURNING id;
