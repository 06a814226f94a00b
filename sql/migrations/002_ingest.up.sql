-- 002_ingest: the KPI ingest path (kpi/ingest). Like 001, objects are created unqualified in the
-- first schema of the search_path; where a statement needs the schema's name it takes
-- current_schema() through format(). Roles are cluster-wide: they are created only when missing,
-- and creating them concurrently from two databases is tolerated.
--
-- Privileges: agents connect as a login role that is a member of drover_agent and may only add
-- data (samples, events, their own batch records, series of the catalogue); everything they
-- change beyond that goes through the SECURITY DEFINER functions below, each with its search_path
-- pinned to this schema (an unpinned definer function could be steered to another schema's objects
-- by the caller's search_path). drover_reader may read everything, for dashboards and Grafana.
-- Migrations that add tables must grant drover_reader SELECT on them.

-- Delivered batches: (agent, seq) makes delivery exactly-once. The row is inserted in the same
-- transaction as the batch's samples and events; a batch retried after its commit went through
-- (a lost reply, a restarted agent) finds its row and is skipped.
CREATE TABLE ingest_batches (
    agent        text NOT NULL CHECK (agent <> ''),
    seq          bigint NOT NULL CHECK (seq > 0),
    host         text NOT NULL,
    samples      integer NOT NULL CHECK (samples >= 0),
    events       integer NOT NULL CHECK (events >= 0),
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, seq)
);
CREATE INDEX ingest_batches_delivered ON ingest_batches (delivered_at);

-- The "now" of every host in one row: whole-cluster reads scan one row per host, not one per
-- series. Made from kpi_latest by kpi_ingest_latest; ts is the host's newest sample, so a reader
-- sees how old the figures are. NULL: the host does not report that KPI.
CREATE TABLE host_kpi_now (
    hypervisor_id           integer PRIMARY KEY REFERENCES hypervisors (id) ON DELETE CASCADE,
    ts                      timestamptz NOT NULL,
    load1                   double precision,
    load5                   double precision,
    load15                  double precision,
    cpu_busy_ratio          double precision,
    cpu_iowait_ratio        double precision,
    mem_total_bytes         double precision,
    mem_available_bytes     double precision,
    temp_max_celsius        double precision, -- hottest host temperature sensor (hwmon, thermal zones, BMC)
    temp_max_sensor         text,
    power_watts             double precision, -- BMC power reading; else the sum of RAPL packages
    fan_min_rpm             double precision,
    pressure_cpu_some_avg10 double precision,
    pressure_mem_some_avg10 double precision,
    pressure_io_some_avg10  double precision,
    vms                     integer NOT NULL DEFAULT 0, -- vnodes with libvirt samples
    worst_status            text NOT NULL DEFAULT 'ok',  -- the hardware's own most severe sensor status
    series                  integer NOT NULL DEFAULT 0,  -- series the row was made from
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- The health of each sensor that had an event, from which host_health is made.
CREATE TABLE sensor_health (
    hypervisor_id       integer NOT NULL REFERENCES hypervisors (id) ON DELETE CASCADE,
    sensor              text NOT NULL,
    state               text NOT NULL CHECK (state IN ('ok', 'warning', 'critical', 'unknown')),
    since               timestamptz NOT NULL,
    ts                  timestamptz NOT NULL, -- time of the newest event applied
    predicted_breach_at timestamptz,
    PRIMARY KEY (hypervisor_id, sensor)
);

-- kpi_ingest_latest: the agent's one call per batch after its samples are in. It keeps the newest
-- value of each given series in kpi_latest (a newer ts wins, an older one never does, so replayed
-- or late batches cannot turn the clock back) and then remakes the host's host_kpi_now row from
-- its series seen in the 5 minutes before its newest sample. Series of another host are ignored.
-- Returns the number of kpi_latest rows written.
CREATE FUNCTION kpi_ingest_latest(p_hypervisor_id integer, p_series integer[], p_ts timestamptz[],
                                  p_value double precision[], p_status text[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO kpi_latest AS l (series_id, ts, value, status)
    SELECT DISTINCT ON (u.series_id) u.series_id, u.ts, u.value, coalesce(nullif(u.status, ''), 'ok')
    FROM unnest(p_series, p_ts, p_value, p_status) AS u (series_id, ts, value, status)
    JOIN kpi_series s ON s.id = u.series_id AND s.hypervisor_id = p_hypervisor_id
    WHERE u.ts IS NOT NULL AND u.value IS NOT NULL
    ORDER BY u.series_id, u.ts DESC
    ON CONFLICT (series_id) DO UPDATE SET ts = excluded.ts, value = excluded.value, status = excluded.status
        WHERE l.ts < excluded.ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;  -- nothing newer: the summary stands
    END IF;

    WITH cur AS (
        SELECT s.source, s.metric, s.vnode, s.sensor, l.ts, l.value, l.status
        FROM kpi_series s JOIN kpi_latest l ON l.series_id = s.id
        WHERE s.hypervisor_id = p_hypervisor_id
    ), f AS (
        SELECT cur.* FROM cur WHERE cur.ts >= (SELECT max(ts) FROM cur) - interval '5 minutes'
    )
    INSERT INTO host_kpi_now AS h (hypervisor_id, ts, load1, load5, load15, cpu_busy_ratio, cpu_iowait_ratio,
        mem_total_bytes, mem_available_bytes, temp_max_celsius, temp_max_sensor, power_watts, fan_min_rpm,
        pressure_cpu_some_avg10, pressure_mem_some_avg10, pressure_io_some_avg10, vms, worst_status, series,
        updated_at)
    SELECT p_hypervisor_id, max(ts),
        max(value) FILTER (WHERE vnode = '' AND metric = 'load1'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'load5'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'load15'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'cpu_busy_ratio'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'cpu_iowait_ratio'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'memory_total_bytes'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'memory_available_bytes'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'temp_celsius'),
        (array_agg(sensor ORDER BY value DESC, sensor) FILTER (WHERE vnode = '' AND metric = 'temp_celsius'))[1],
        coalesce(max(value) FILTER (WHERE vnode = '' AND metric = 'power_watts' AND source = 'ipmi'),
                 sum(value) FILTER (WHERE vnode = '' AND metric = 'power_watts' AND source = 'sysfs'
                                    AND sensor ~ '^intel-rapl:[0-9]+/')),
        min(value) FILTER (WHERE vnode = '' AND metric = 'fan_rpm'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'pressure_cpu_some_avg10'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'pressure_memory_some_avg10'),
        max(value) FILTER (WHERE vnode = '' AND metric = 'pressure_io_some_avg10'),
        count(DISTINCT vnode) FILTER (WHERE vnode <> ''),
        coalesce((array_agg(status ORDER BY CASE
            WHEN status LIKE '%non-recoverable' THEN 4
            WHEN status LIKE '%-critical' AND status NOT LIKE '%non-critical' THEN 3
            WHEN status = 'alarm' THEN 2
            WHEN status LIKE '%non-critical' THEN 1
            ELSE 0 END DESC) FILTER (WHERE status <> ''))[1], 'ok'),
        count(*), now()
    FROM f
    HAVING count(*) > 0
    ON CONFLICT (hypervisor_id) DO UPDATE SET ts = excluded.ts, load1 = excluded.load1, load5 = excluded.load5,
        load15 = excluded.load15, cpu_busy_ratio = excluded.cpu_busy_ratio,
        cpu_iowait_ratio = excluded.cpu_iowait_ratio, mem_total_bytes = excluded.mem_total_bytes,
        mem_available_bytes = excluded.mem_available_bytes, temp_max_celsius = excluded.temp_max_celsius,
        temp_max_sensor = excluded.temp_max_sensor, power_watts = excluded.power_watts,
        fan_min_rpm = excluded.fan_min_rpm, pressure_cpu_some_avg10 = excluded.pressure_cpu_some_avg10,
        pressure_mem_some_avg10 = excluded.pressure_mem_some_avg10,
        pressure_io_some_avg10 = excluded.pressure_io_some_avg10, vms = excluded.vms,
        worst_status = excluded.worst_status, series = excluded.series, updated_at = excluded.updated_at
        WHERE h.ts <= excluded.ts;
    RETURN n;
END $$;

-- health_event_apply: every state change and prediction updates sensor_health (a newer event wins;
-- a critical state ends the sensor's prediction), then the host's host_health row: the worst
-- sensor state (unknown < ok < warning < critical, as in health.State), since when the host has
-- been in it, the worst sensor's name when it is not ok, and the earliest predicted breach still
-- ahead. Error events leave health as it is.
CREATE FUNCTION health_event_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.kind = 'state' AND NEW.to_state IS NOT NULL THEN
        INSERT INTO sensor_health AS s (hypervisor_id, sensor, state, since, ts)
        VALUES (NEW.hypervisor_id, NEW.sensor, NEW.to_state, NEW.ts, NEW.ts)
        ON CONFLICT (hypervisor_id, sensor) DO UPDATE SET
            state = excluded.state,
            since = CASE WHEN s.state = excluded.state THEN s.since ELSE excluded.since END,
            ts = excluded.ts,
            predicted_breach_at = CASE WHEN excluded.state = 'critical' THEN NULL ELSE s.predicted_breach_at END
            WHERE s.ts <= excluded.ts;
    ELSIF NEW.kind = 'prediction' AND NEW.predicted_breach_at IS NOT NULL THEN
        INSERT INTO sensor_health AS s (hypervisor_id, sensor, state, since, ts, predicted_breach_at)
        VALUES (NEW.hypervisor_id, NEW.sensor, coalesce(NEW.from_state, 'unknown'), NEW.ts, NEW.ts,
                NEW.predicted_breach_at)
        ON CONFLICT (hypervisor_id, sensor) DO UPDATE SET
            ts = excluded.ts, predicted_breach_at = excluded.predicted_breach_at
            WHERE s.ts <= excluded.ts AND s.state <> 'critical';
    ELSE
        RETURN NULL;
    END IF;

    INSERT INTO host_health AS hh (hypervisor_id, state, since, predicted_breach_at, worst_sensor, updated_at)
    SELECT NEW.hypervisor_id, w.state, NEW.ts,
           (SELECT min(predicted_breach_at) FROM sensor_health
            WHERE hypervisor_id = NEW.hypervisor_id AND predicted_breach_at > NEW.ts AND state <> 'critical'),
           CASE WHEN w.state IN ('warning', 'critical') THEN w.sensor ELSE '' END, now()
    FROM (SELECT state, sensor FROM sensor_health WHERE hypervisor_id = NEW.hypervisor_id
          ORDER BY array_position(ARRAY['unknown', 'ok', 'warning', 'critical'], state) DESC, since, sensor
          LIMIT 1) w
    ON CONFLICT (hypervisor_id) DO UPDATE SET
        state = excluded.state,
        since = CASE WHEN hh.state = excluded.state THEN hh.since ELSE excluded.since END,
        predicted_breach_at = excluded.predicted_breach_at,
        worst_sensor = excluded.worst_sensor,
        updated_at = excluded.updated_at;
    RETURN NULL;
END $$;
CREATE TRIGGER health_events_apply AFTER INSERT ON health_events
    FOR EACH ROW EXECUTE FUNCTION health_event_apply();

-- kpi_partitions: daily partitions kpi_samples_pYYYYMMDD (UTC days) from yesterday to today +
-- ahead_days, and drops those older than retention_days. A day's rows that sit in the default
-- partition (written before its partition existed) are moved into the new partition first, in the
-- same transaction: PostgreSQL refuses to attach a partition whose rows are in the default one.
-- It also deletes default-partition rows and delivered-batch records older than the retention
-- (keeping each agent's newest record). Returns one row per thing done: action 'created' (rows:
-- rows moved in), 'dropped' (rows: the planner's estimate, NULL if never analysed), 'purged'
-- (default-partition rows deleted) or 'pruned' (ingest_batches rows deleted). Concurrent calls
-- queue on an advisory lock.
CREATE FUNCTION kpi_partitions(ahead_days integer DEFAULT 3, retention_days integer DEFAULT 30)
RETURNS TABLE (action text, partition_name text, rows bigint)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    cutoff timestamptz;
    d date;
    lo timestamptz;
    hi timestamptz;
    part text;
    n bigint;
    r record;
BEGIN
    IF ahead_days IS NULL OR ahead_days < 0 OR ahead_days > 366 THEN
        RAISE EXCEPTION 'kpi_partitions: ahead_days must be between 0 and 366, got %', ahead_days;
    END IF;
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'kpi_partitions: retention_days must be at least 1, got %', retention_days;
    END IF;
    cutoff := (today - retention_days)::timestamp AT TIME ZONE 'UTC';
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.kpi_partitions'));

    FOR d IN SELECT today + i FROM generate_series(-1, ahead_days) AS i LOOP
        part := 'kpi_samples_p' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('%I.%I', current_schema(), part)) IS NOT NULL;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        -- No insert may land in the default partition for this day between the move and the attach.
        LOCK TABLE kpi_samples_default IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('CREATE TABLE %I (LIKE kpi_samples INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('WITH m AS (DELETE FROM kpi_samples_default WHERE ts >= $1 AND ts < $2 RETURNING series_id, ts, value) '
                       'INSERT INTO %I (series_id, ts, value) SELECT series_id, ts, value FROM m', part) USING lo, hi;
        GET DIAGNOSTICS n = ROW_COUNT;
        -- The range as a constraint lets ATTACH skip scanning the new table.
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)', part, part || '_range', lo, hi);
        EXECUTE format('ALTER TABLE kpi_samples ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
        action := 'created'; partition_name := part; rows := n;
        RETURN NEXT;
    END LOOP;

    FOR r IN
        SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'kpi_samples'::regclass AND c.relname ~ '^kpi_samples_p[0-9]{8}$'
          AND to_date(substr(c.relname, 14, 8), 'YYYYMMDD') < today - retention_days
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        action := 'dropped'; partition_name := r.relname; rows := nullif(r.reltuples, -1)::bigint;
        RETURN NEXT;
    END LOOP;

    DELETE FROM kpi_samples_default WHERE ts < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        action := 'purged'; partition_name := 'kpi_samples_default'; rows := n;
        RETURN NEXT;
    END IF;

    DELETE FROM ingest_batches b WHERE b.delivered_at < cutoff
        AND b.seq < (SELECT max(x.seq) FROM ingest_batches x WHERE x.agent = b.agent);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        action := 'pruned'; partition_name := 'ingest_batches'; rows := n;
        RETURN NEXT;
    END IF;
END $$;

-- Pin every definer function to this schema (pg_temp last, so a caller's temporary objects cannot
-- shadow ours), and let only drover_agent call them: functions are executable by PUBLIC by default.
DO $$
DECLARE
    s text := current_schema();
BEGIN
    EXECUTE format('ALTER FUNCTION kpi_ingest_latest(integer, integer[], timestamptz[], double precision[], text[]) SET search_path = %I, pg_temp', s);
    EXECUTE format('ALTER FUNCTION health_event_apply() SET search_path = %I, pg_temp', s);
    EXECUTE format('ALTER FUNCTION kpi_partitions(integer, integer) SET search_path = %I, pg_temp', s);
END $$;
REVOKE ALL ON FUNCTION kpi_ingest_latest(integer, integer[], timestamptz[], double precision[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION health_event_apply() FROM PUBLIC;
REVOKE ALL ON FUNCTION kpi_partitions(integer, integer) FROM PUBLIC;

-- The roles, when missing. Two databases migrating at once may both try: the loser's error is
-- swallowed. Without CREATEROLE the migration stops with what a superuser has to run.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['drover_agent', 'drover_reader'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create role %: %', r, SQLERRM
                    USING HINT = 'as a superuser run: CREATE ROLE drover_agent NOLOGIN; CREATE ROLE drover_reader NOLOGIN; or give the migrating role CREATEROLE';
        END;
    END LOOP;
END $$;

DO $$
DECLARE
    s text := current_schema();
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO drover_agent, drover_reader', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO drover_reader', s);
END $$;
GRANT INSERT ON kpi_samples, health_events, ingest_batches TO drover_agent;
GRANT INSERT, SELECT ON kpi_series TO drover_agent;
GRANT SELECT (id, name) ON hypervisors TO drover_agent;
GRANT EXECUTE ON FUNCTION kpi_ingest_latest(integer, integer[], timestamptz[], double precision[], text[]) TO drover_agent;
GRANT EXECUTE ON FUNCTION kpi_partitions(integer, integer) TO drover_agent;
