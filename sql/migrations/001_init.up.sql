-- 001_init: drover's core schema. Objects are created unqualified, in the first schema of the
-- connection's search_path (tests give each test its own schema).

-- Hypervisors: the libvirt hosts drover may place vnodes on.
CREATE TABLE hypervisors (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    uri             text NOT NULL,
    migration_uri   text,
    cpus            integer CHECK (cpus >= 0),
    memory_mib      bigint CHECK (memory_mib >= 0),
    features        text[] NOT NULL DEFAULT '{}',
    rack            text,
    power_cap_watts double precision CHECK (power_cap_watts > 0),
    slurm_node      text,  -- set when the hypervisor is itself a Slurm node (drained on failure)
    state           text NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'draining', 'drained', 'maintenance', 'down')),
    state_reason    text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- BMC endpoints. Credentials stay in drover's configuration, never in the database.
CREATE TABLE bmcs (
    hypervisor_id integer PRIMARY KEY REFERENCES hypervisors (id) ON DELETE CASCADE,
    host          text NOT NULL,
    port          integer NOT NULL DEFAULT 623 CHECK (port BETWEEN 1 AND 65535),
    interface     text NOT NULL DEFAULT 'lanplus' CHECK (interface IN ('lanplus', 'lan', 'open')),
    username      text NOT NULL DEFAULT '',
    cipher_suite  smallint,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- vnodes: Slurm nodes that are VMs, and where each one runs now.
CREATE TABLE vnodes (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    address       inet,
    mac           macaddr,
    cpus          integer NOT NULL DEFAULT 1 CHECK (cpus > 0),
    memory_mib    bigint NOT NULL DEFAULT 512 CHECK (memory_mib > 0),
    features      text[] NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'absent'
                  CHECK (state IN ('absent', 'booting', 'running', 'migrating', 'stopping', 'failed')),
    state_reason  text NOT NULL DEFAULT '',
    hypervisor_id integer REFERENCES hypervisors (id),
    domain_uuid   uuid,
    job_id        bigint,  -- the job the vnode was resumed for; no FK: Slurm may tell us in any order
    booted_at     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vnodes_hypervisor ON vnodes (hypervisor_id);

-- Lifecycle history of vnodes (resume, boot, suspend, failures) for operators and dashboards.
CREATE TABLE vnode_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vnode         text NOT NULL,
    ts            timestamptz NOT NULL DEFAULT now(),
    event         text NOT NULL,
    hypervisor_id integer REFERENCES hypervisors (id) ON DELETE SET NULL,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX vnode_events_vnode_ts ON vnode_events (vnode, ts DESC);

-- Slurm jobs that ran on vnodes, recorded by the PrologSlurmctld/EpilogSlurmctld hooks.
CREATE TABLE jobs (
    job_id       bigint PRIMARY KEY CHECK (job_id > 0),
    name         text NOT NULL DEFAULT '',
    user_name    text NOT NULL DEFAULT '',
    account      text NOT NULL DEFAULT '',
    partition    text NOT NULL DEFAULT '',
    nodes        text[] NOT NULL DEFAULT '{}',
    cpus         integer CHECK (cpus >= 0),
    memory_mib   bigint CHECK (memory_mib >= 0),
    constraints  text NOT NULL DEFAULT '',
    time_limit   interval,
    hints        text[] NOT NULL DEFAULT '{}',  -- drover:spread, drover:pack, drover:no-migrate
    state        text NOT NULL DEFAULT 'pending',
    exit_code    integer,
    submitted_at timestamptz,
    started_at   timestamptz,
    ended_at     timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_started ON jobs (started_at DESC);

-- KPI series: one row per (host, source, metric, vnode, sensor); samples refer to it by id.
CREATE TABLE kpi_series (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hypervisor_id integer NOT NULL REFERENCES hypervisors (id) ON DELETE CASCADE,
    source        text NOT NULL CHECK (source IN ('procfs', 'sysfs', 'ipmi', 'libvirt', 'node_exporter')),
    metric        text NOT NULL,           -- base-unit name, e.g. cpu_temp_celsius, load1
    vnode         text NOT NULL DEFAULT '', -- '' for host-level series
    sensor        text NOT NULL DEFAULT '', -- BMC sensor or hwmon label
    unit          text NOT NULL DEFAULT '',
    UNIQUE (hypervisor_id, source, metric, vnode, sensor)
);

-- KPI samples, range-partitioned by time (daily partitions are created ahead by the ingester;
-- the default partition catches anything outside them so no sample is ever refused).
-- No foreign key to kpi_series: it would cost a lookup per row on the COPY path.
CREATE TABLE kpi_samples (
    series_id integer NOT NULL,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL
              CHECK (value <> 'NaN'::float8 AND value <> 'Infinity'::float8 AND value <> '-Infinity'::float8)
) PARTITION BY RANGE (ts);
CREATE TABLE kpi_samples_default PARTITION OF kpi_samples DEFAULT;
CREATE INDEX kpi_samples_series_ts ON kpi_samples (series_id, ts);

-- The newest value of every series: cheap to read for the whole cluster.
CREATE TABLE kpi_latest (
    series_id integer PRIMARY KEY REFERENCES kpi_series (id) ON DELETE CASCADE,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL,
    status    text NOT NULL DEFAULT 'ok'
);

-- Health events: state changes (ok/warning/critical) and predicted threshold crossings.
CREATE TABLE health_events (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hypervisor_id       integer NOT NULL REFERENCES hypervisors (id) ON DELETE CASCADE,
    ts                  timestamptz NOT NULL DEFAULT now(),
    sensor              text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('state', 'prediction', 'error')),
    from_state          text CHECK (from_state IN ('ok', 'warning', 'critical', 'unknown')),
    to_state            text CHECK (to_state IN ('ok', 'warning', 'critical', 'unknown')),
    value               double precision,
    threshold           double precision,
    predicted_breach_at timestamptz,
    confidence          real CHECK (confidence BETWEEN 0 AND 1),
    message             text NOT NULL DEFAULT ''
);
CREATE INDEX health_events_host_ts ON health_events (hypervisor_id, ts DESC);

-- The current health of each hypervisor, maintained with the events.
CREATE TABLE host_health (
    hypervisor_id       integer PRIMARY KEY REFERENCES hypervisors (id) ON DELETE CASCADE,
    state               text NOT NULL DEFAULT 'unknown' CHECK (state IN ('ok', 'warning', 'critical', 'unknown')),
    since               timestamptz NOT NULL DEFAULT now(),
    predicted_breach_at timestamptz,
    worst_sensor        text NOT NULL DEFAULT '',
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Every new health event is announced, so the server reacts without polling.
CREATE FUNCTION notify_health_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drover_health', json_build_object(
        'id', NEW.id, 'hypervisor_id', NEW.hypervisor_id, 'kind', NEW.kind,
        'sensor', NEW.sensor, 'to_state', NEW.to_state)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER health_events_notify AFTER INSERT ON health_events
    FOR EACH ROW EXECUTE FUNCTION notify_health_event();

-- Placement decisions, each with its explain document: per hypervisor, the filter that dropped it
-- or every scorer's value and the total.
CREATE TABLE placements (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    vnode         text NOT NULL,
    job_id        bigint,
    hypervisor_id integer REFERENCES hypervisors (id) ON DELETE SET NULL,  -- NULL when none fits
    outcome       text NOT NULL CHECK (outcome IN ('placed', 'unplaceable', 'failed')),
    policy        text NOT NULL DEFAULT 'balanced',
    seed          bigint,
    reason        text NOT NULL DEFAULT '',
    explain       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX placements_vnode ON placements (vnode, created_at DESC);
CREATE INDEX placements_job ON placements (job_id);

-- Operator plans (recommend-only mode): proposed actions waiting for approval.
CREATE TABLE plans (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL CHECK (kind IN ('evacuation', 'rebalance', 'consolidation', 'drain')),
    state      text NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'approved', 'rejected', 'applied', 'stale', 'failed')),
    reason     text NOT NULL DEFAULT '',
    actions    jsonb NOT NULL DEFAULT '[]',
    decided_by text,
    decided_at timestamptz
);

-- The live-migration journal: one row per migration, moved through its phases by the executor,
-- so a restarted server can reconcile unfinished ones with both hypervisors.
CREATE TABLE migrations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vnode             text NOT NULL,
    src_hypervisor_id integer NOT NULL REFERENCES hypervisors (id),
    dst_hypervisor_id integer NOT NULL REFERENCES hypervisors (id),
    reason            text NOT NULL CHECK (reason IN ('manual', 'evacuation', 'rebalance', 'consolidation', 'drain')),
    phase             text NOT NULL DEFAULT 'planned'
                      CHECK (phase IN ('planned', 'preparing', 'transferring', 'switching_over', 'verifying',
                                       'done', 'failed', 'rolled_back')),
    plan_id           bigint REFERENCES plans (id),
    owner             text NOT NULL DEFAULT '',       -- server instance executing it
    params            jsonb NOT NULL DEFAULT '{}',    -- max downtime, bandwidth, auto-converge, post-copy
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    first_byte_at     timestamptz,
    finished_at       timestamptz,
    total_ms          double precision,
    downtime_ms       double precision,
    bytes_total       bigint,
    bytes_processed   bigint,
    iterations        integer,
    error             text NOT NULL DEFAULT '',
    CHECK (src_hypervisor_id <> dst_hypervisor_id)
);
-- At most one unfinished migration per vnode.
CREATE UNIQUE INDEX migrations_active_vnode ON migrations (vnode)
    WHERE phase NOT IN ('done', 'failed', 'rolled_back');

CREATE TABLE migration_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id bigint NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL DEFAULT now(),
    phase        text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX migration_events_migration ON migration_events (migration_id, ts);
