-- KPI dashboards: what the agents' samples (kpi_series, kpi_samples, kpi_latest) and the health
-- events say about the hypervisors, now and over time. drover's verbs run them by name (drover
-- hosts, health, kpi, energy). To run one by hand, paste its block into psql with the $N replaced
-- by values (each query's comment gives an example), or use it in a Grafana PostgreSQL panel with
-- the $N replaced by dashboard variables ($__timeFrom(), $__interval…).

-- name: HypervisorNames
-- Every hypervisor's name, for checking what an operator typed.
SELECT name FROM hypervisors ORDER BY name;

-- name: HostSeries
-- The KPI series of one hypervisor: what `drover kpi HOST METRIC` can show. $1 host name.
-- psql: $1 = 'hv1'.
SELECT s.metric, s.source, s.vnode, s.sensor, s.unit
FROM kpi_series s JOIN hypervisors h ON h.id = s.hypervisor_id
WHERE h.name = $1
ORDER BY s.metric, s.vnode, s.sensor, s.source;

-- name: LatestByHost
-- The newest value of one host-level metric on every hypervisor (the largest when several
-- sensors give it), e.g. load1 for a hosts table. $1 metric.
-- psql: $1 = 'load1'.
SELECT DISTINCT ON (s.hypervisor_id) h.name AS host, l.value, l.ts
FROM kpi_series s
JOIN kpi_latest l ON l.series_id = s.id
JOIN hypervisors h ON h.id = s.hypervisor_id
WHERE s.metric = $1 AND s.vnode = ''
ORDER BY s.hypervisor_id, l.value DESC;

-- name: HottestHosts
-- Which hypervisors run hottest now? Per hypervisor, its hottest reading among the newest values
-- (kpi_latest) of its host-level temp_celsius series: the sensor, the reading and how old it is,
-- the host's health state, and, when a health event has told it, the sensor's critical bound and
-- the headroom below it. The critical bound is the threshold of the sensor's newest prediction
-- event (a prediction heads for the critical bound) or of its newest state change to or from
-- critical (the bound reached or come back from); changes to or from unknown carry no bound.
-- Hosts without temperature readings are left out. Hottest first. $1 how many hosts.
-- psql: $1 = 10.
SELECT h.name AS host, t.sensor, t.value AS celsius, t.ts AS read_at,
       extract(epoch FROM now() - t.ts)::float8 AS age_seconds,
       coalesce(hh.state, 'unknown') AS health,
       c.threshold AS critical_celsius, c.threshold - t.value AS headroom_celsius
FROM (
    SELECT DISTINCT ON (s.hypervisor_id) s.hypervisor_id, s.sensor, l.value, l.ts
    FROM kpi_series s JOIN kpi_latest l ON l.series_id = s.id
    WHERE s.metric = 'temp_celsius' AND s.vnode = ''
    ORDER BY s.hypervisor_id, l.value DESC, s.sensor
) t
JOIN hypervisors h ON h.id = t.hypervisor_id
LEFT JOIN host_health hh ON hh.hypervisor_id = t.hypervisor_id
LEFT JOIN LATERAL (
    SELECT e.threshold
    FROM health_events e
    WHERE e.hypervisor_id = t.hypervisor_id AND e.sensor = t.sensor AND e.threshold IS NOT NULL
      AND (e.kind = 'prediction'
           OR (e.kind = 'state' AND 'critical' IN (e.from_state, e.to_state)
               AND 'unknown' NOT IN (e.from_state, e.to_state)))
    ORDER BY e.ts DESC, e.id DESC
    LIMIT 1
) c ON true
ORDER BY t.value DESC, h.name
LIMIT $1;

-- name: PredictedBreaches
-- Which hypervisors are expected to reach a critical bound soon? Per (host, sensor), its newest
-- prediction event, kept when the predicted crossing is still ahead and within $1 minutes, and
-- when no later event has made it moot: a newer prediction (which replaces it, even when that
-- one lies beyond $1), or a state change to ok (the trend broke), to critical (the breach
-- happened: see HealthEvents) or to unknown (no readings left to trust it). With the crossing
-- time, the minutes left, the confidence, the bound, the fitted value the prediction started
-- from and the sensor's current value (kpi_latest of the host-level series of that sensor).
-- Soonest first. $1 minutes ahead (a number, fractions allowed).
-- psql: $1 = 15.
SELECT h.name AS host, p.sensor, p.predicted_breach_at,
       extract(epoch FROM p.predicted_breach_at - now())::float8 / 60 AS minutes_left,
       p.confidence, p.threshold AS critical, p.value AS fitted, cur.value AS current_value,
       cur.ts AS current_at, p.from_state AS state, p.ts AS predicted_at, p.message
FROM health_events p
JOIN hypervisors h ON h.id = p.hypervisor_id
LEFT JOIN LATERAL (
    SELECT l.value, l.ts
    FROM kpi_series s JOIN kpi_latest l ON l.series_id = s.id
    WHERE s.hypervisor_id = p.hypervisor_id AND s.sensor = p.sensor AND s.vnode = ''
    ORDER BY l.ts DESC
    LIMIT 1
) cur ON true
WHERE p.kind = 'prediction'
  AND p.predicted_breach_at > now()
  AND p.predicted_breach_at <= now() + $1::float8 * interval '1 minute'
  AND NOT EXISTS (
      SELECT 1 FROM health_events later
      WHERE later.hypervisor_id = p.hypervisor_id AND later.sensor = p.sensor
        AND (later.ts, later.id) > (p.ts, p.id)
        AND (later.kind = 'prediction'
             OR (later.kind = 'state' AND later.to_state IN ('ok', 'critical', 'unknown'))))
ORDER BY p.predicted_breach_at, h.name, p.sensor;

-- name: KpiHistory
-- One hypervisor's KPI over a time range at a chosen resolution: per series of metric $2 (each
-- source, vnode and sensor apart), the samples in [$4, $5) grouped into buckets of $6 aligned on
-- $4 (date_bin), with their mean, minimum, maximum and count. $3 picks one sensor; '' takes
-- every series of the metric (host-level and per-vnode). The series are looked up first, then
-- their samples are read through the (series_id, ts) index of only the daily partitions that
-- overlap [$4, $5) (pruned at plan time, or at executor start for a generic plan).
-- $1 host, $2 metric, $3 sensor, $4 from, $5 to (timestamptz), $6 step (interval, no months).
-- psql: $1 = 'hv1', $2 = 'temp_celsius', $3 = 'CPU Temp', $4 = now() - interval '1 hour',
--       $5 = now(), $6 = interval '1 minute'.
SELECT s.source, s.vnode, s.sensor, s.unit,
       date_bin($6::interval, k.ts, $4::timestamptz) AS bucket,
       avg(k.value) AS avg, min(k.value) AS min, max(k.value) AS max, count(*) AS samples
FROM kpi_series s
JOIN hypervisors h ON h.id = s.hypervisor_id
JOIN kpi_samples k ON k.series_id = s.id
WHERE h.name = $1 AND s.metric = $2 AND ($3::text = '' OR s.sensor = $3::text)
  AND k.ts >= $4::timestamptz AND k.ts < $5::timestamptz
GROUP BY s.source, s.vnode, s.sensor, s.unit, bucket
ORDER BY s.vnode, s.sensor, s.source, bucket;

-- name: HealthEvents
-- What happened to the hypervisors' health: state changes, predictions and sensor errors since
-- $2, newest first. $1 host ('' = every host), $2 since (timestamptz), $3 at most this many.
-- psql: $1 = '', $2 = now() - interval '1 day', $3 = 100.
SELECT e.id, e.ts, h.name AS host, e.sensor, e.kind, e.from_state, e.to_state, e.value, e.threshold,
       e.predicted_breach_at, e.confidence, e.message
FROM health_events e
JOIN hypervisors h ON h.id = e.hypervisor_id
WHERE ($1::text = '' OR h.name = $1::text) AND e.ts >= $2::timestamptz
ORDER BY e.ts DESC, e.id DESC
LIMIT $3;

-- name: EnergyPerJob
-- How much energy did each Slurm job use? A job is charged, for each of its vnodes, a share of
-- the power of the hypervisor the vnode ran on, while the job ran:
--
--   E(job) = Σ_v∈nodes(job) ∫_[started_at, ended_at] P_h(v,t)(t) · cpus(v) / Σ_w∈on(h,t) cpus(w) dt
--
-- where h(v,t) is the hypervisor v ran on at t and on(h,t) every vnode there at t (busy or idle,
-- in this job or another), so a host's power is shared among the VMs it ran in proportion to
-- their vCPUs (vnodes.cpus); a host's power while it runs no vnode is charged to no job.
--   * Where a vnode was when comes from vnode_events: each event with a hypervisor (resume,
--     migrated — written by the migration executor with the destination when it finishes —,
--     migration-rolled-back, migration-failed, reconciled) starts a stay there that lasts until
--     the vnode's next event; suspend and resume-failed end the stay. A migration is charged
--     to its source until the executor's event.
--   * P_h is the host's wall power from its BMC (ipmi power_watts series, summed when there are
--     several), or, when the host has no IPMI power series, RAPL's CPU package and DRAM zones
--     (sysfs power_watts of sensors intel-rapl:…/package-N and …/dram, summed; the core and
--     uncore zones are parts of a package and are not added again).
--   * Between two samples of a series the power is taken as linear; two samples more than 5
--     minutes apart (an agent that stopped) leave the time between them without data rather
--     than guessing. powered_seconds against vnode_seconds says how much of a job's vnode time
--     had power data.
--   * A running job is charged up to now. Two jobs sharing a vnode at the same time would each
--     be charged the whole vnode's share.
-- $1 job id (0 = every job), $2 jobs that ran at some time since then (timestamptz); the whole
-- job is charged, not only the part after $2. Newest job first.
-- psql: $1 = 0, $2 = now() - interval '1 day'.
WITH job AS (
    SELECT j.job_id, j.name, j.user_name, j.state, j.nodes, j.started_at, j.ended_at,
           coalesce(j.ended_at, now()) AS until
    FROM jobs j
    WHERE ($1::bigint = 0 OR j.job_id = $1::bigint) AND j.started_at IS NOT NULL
      AND coalesce(j.ended_at, now()) >= $2::timestamptz
),
-- every vnode event starts a stay that lasts until the vnode's next event
placed AS (
    SELECT e.vnode, e.hypervisor_id, e.event, e.ts AS t0,
           coalesce(lead(e.ts) OVER (PARTITION BY e.vnode ORDER BY e.ts, e.id), now()) AS t1
    FROM vnode_events e
),
-- stays on a hypervisor that overlap the jobs asked about
stay AS (
    SELECT p.vnode, p.hypervisor_id, p.t0, p.t1, coalesce(v.cpus, 1) AS cpus
    FROM placed p LEFT JOIN vnodes v ON v.name = p.vnode
    WHERE p.hypervisor_id IS NOT NULL AND p.event NOT IN ('suspend', 'resume-failed') AND p.t1 > p.t0
      AND p.t1 > (SELECT min(started_at) FROM job) AND p.t0 < (SELECT max(until) FROM job)
),
-- per hypervisor, the times at which the set of vnodes on it changes, and the segments between
cut AS (
    SELECT hypervisor_id, t0 AS t FROM stay UNION SELECT hypervisor_id, t1 FROM stay
),
seg AS (
    SELECT hypervisor_id, t AS s0, lead(t) OVER (PARTITION BY hypervisor_id ORDER BY t) AS s1 FROM cut
),
-- each vnode's share of its hypervisor in each segment (MATERIALIZED: once, not once per job)
share AS MATERIALIZED (
    SELECT g.hypervisor_id, g.s0, g.s1, st.vnode,
           st.cpus::float8 / sum(st.cpus) OVER (PARTITION BY g.hypervisor_id, g.s0) AS frac
    FROM seg g
    JOIN stay st ON st.hypervisor_id = g.hypervisor_id AND st.t0 <= g.s0 AND st.t1 >= g.s1
    WHERE g.s1 IS NOT NULL
),
-- the parts of those segments during which a vnode ran a job
piece AS (
    SELECT j.job_id, sh.vnode, sh.hypervisor_id, sh.frac,
           greatest(sh.s0, j.started_at) AS p0, least(sh.s1, j.until) AS p1
    FROM job j
    JOIN share sh ON sh.vnode = ANY (j.nodes) AND sh.s0 < j.until AND sh.s1 > j.started_at
),
-- the series giving each hypervisor's power
power AS (
    SELECT s.id, s.hypervisor_id
    FROM kpi_series s
    WHERE s.metric = 'power_watts' AND s.vnode = ''
      AND (s.source = 'ipmi'
           OR (s.source = 'sysfs' AND s.sensor ~ '^intel-rapl:[0-9:]+/(package-[0-9]+|dram)$'
               AND NOT EXISTS (SELECT 1 FROM kpi_series i
                               WHERE i.hypervisor_id = s.hypervisor_id AND i.metric = 'power_watts'
                                 AND i.vnode = '' AND i.source = 'ipmi')))
),
-- each piece's energy: the power integrated over it (per series, summed), times the share;
-- MATERIALIZED: computed once, not once per job by a nested loop of a generic plan
charged AS MATERIALIZED (
    SELECT pc.job_id, pc.vnode, pc.hypervisor_id, extract(epoch FROM pc.p1 - pc.p0)::float8 AS secs,
           pc.frac * coalesce(e.joules, 0) AS joules, coalesce(e.covered, 0) AS covered
    FROM piece pc
    LEFT JOIN LATERAL (
        SELECT sum(per.joules) AS joules, max(per.covered) AS covered
        FROM (
            -- each sample interval [ts, next_ts] clipped to [a, b] = its overlap with the piece;
            -- with linear power, the mean over [a, b] is the value at its middle
            SELECT iv.series_id,
                   sum(extract(epoch FROM iv.b - iv.a)::float8
                       * (iv.value + (iv.next_value - iv.value)
                          * extract(epoch FROM iv.a + (iv.b - iv.a) / 2 - iv.ts)::float8
                          / extract(epoch FROM iv.next_ts - iv.ts)::float8)) AS joules,
                   sum(extract(epoch FROM iv.b - iv.a)::float8) AS covered
            FROM (
                SELECT k.series_id, k.ts, k.value, k.next_ts, k.next_value,
                       greatest(k.ts, pc.p0) AS a, least(k.next_ts, pc.p1) AS b
                FROM (
                    SELECT x.series_id, x.ts, x.value,
                           lead(x.ts) OVER w AS next_ts, lead(x.value) OVER w AS next_value
                    FROM kpi_samples x
                    WHERE x.series_id IN (SELECT pw.id FROM power pw WHERE pw.hypervisor_id = pc.hypervisor_id)
                      AND x.ts >= pc.p0 - interval '5 minutes' AND x.ts < pc.p1 + interval '5 minutes'
                    WINDOW w AS (PARTITION BY x.series_id ORDER BY x.ts)
                ) k
                WHERE k.next_ts IS NOT NULL AND k.next_ts - k.ts <= interval '5 minutes'
                  AND k.next_ts > pc.p0 AND k.ts < pc.p1
            ) iv
            GROUP BY iv.series_id
        ) per
    ) e ON true
)
SELECT j.job_id, j.name, j.user_name, j.state, j.started_at, j.ended_at,
       coalesce(array_agg(DISTINCT h.name) FILTER (WHERE h.name IS NOT NULL), '{}') AS hypervisors,
       count(DISTINCT c.vnode) AS vnodes,
       coalesce(sum(c.secs), 0)::float8 AS vnode_seconds, coalesce(sum(c.covered), 0)::float8 AS powered_seconds,
       coalesce(sum(c.joules), 0)::float8 AS joules, coalesce(sum(c.joules), 0)::float8 / 3.6e6 AS kwh
FROM job j
LEFT JOIN charged c ON c.job_id = j.job_id
LEFT JOIN hypervisors h ON h.id = c.hypervisor_id
GROUP BY j.job_id, j.name, j.user_name, j.state, j.started_at, j.ended_at
ORDER BY j.started_at DESC, j.job_id DESC;
