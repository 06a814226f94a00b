package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
	"github.com/drover-hpc/drover/sql/migrations"
)

func init() { benchVerbs = append(benchVerbs, (*app).benchIngestCommand) }

// benchIngestOpts are the flags of `drover bench ingest`.
type benchIngestOpts struct {
	agents, hosts, batch int
	duration, baseline   time.Duration
	reads, readHosts     int
	seed                 uint64
	keep                 bool
}

// benchIngestResult is the JSON line `drover bench ingest` ends with.
type benchIngestResult struct {
	Bench               string  `json:"bench"`
	Agents              int     `json:"agents"`
	Hosts               int     `json:"hosts"`
	SeriesPerHost       int     `json:"series_per_host"`
	BatchSamples        int     `json:"batch_samples"`
	DurationS           float64 `json:"duration_s"`
	Samples             int64   `json:"samples"`
	Batches             int64   `json:"batches"`
	Events              int64   `json:"events"`
	SamplesPerS         float64 `json:"samples_per_s"`
	BatchP50Ms          float64 `json:"batch_p50_ms"`
	BatchP99Ms          float64 `json:"batch_p99_ms"`
	BaselineSamples     int64   `json:"baseline_samples"`
	BaselineSamplesPerS float64 `json:"baseline_samples_per_s"`
	Ratio               float64 `json:"ratio"`
	DBRows              int64   `json:"db_rows"`
	HostsNowHosts       int     `json:"hosts_now_hosts"`
	HostsNowReads       int     `json:"hosts_now_reads"`
	HostsNowP50Ms       float64 `json:"hosts_now_p50_ms"`
	HostsNowP99Ms       float64 `json:"hosts_now_p99_ms"`
	// HostsState is the lean read of every host's current state the scheduler's view uses.
	HostsStateHosts int     `json:"hosts_state_hosts"`
	HostsStateP50Ms float64 `json:"hosts_state_p50_ms"`
	HostsStateP99Ms float64 `json:"hosts_state_p99_ms"`
	Schema          string  `json:"schema,omitempty"` // kept with --keep-schema
}

func (a *app) benchIngestCommand() *cobra.Command {
	var o benchIngestOpts
	c := &cobra.Command{
		Use:   "ingest",
		Short: "KPI ingest throughput (real Writer vs single-row INSERTs) and whole-cluster HostsNow reads",
		Long: `ingest measures the KPI ingest path in the configured database, in a scratch schema of its own
(migrated at the start, dropped at the end):

  1. --agents simulated agents (goroutines, each with its own connection and Writer) send the
     batches of --hosts hypervisors each (~40 series per host, 1 s collection cycles compressed,
     --batch samples per batch, some health events) through kpi/ingest's Writer for --duration;
  2. baseline: the same data shape as one autocommitted single-row INSERT per sample, for
     --baseline;
  3. HostsNow (the scheduler's whole-cluster read) over --read-hosts hypervisors (seeded when the
     run had fewer), --reads times.

It prints progress and figures, and as its last line one JSON object.`,
		Example: "  drover bench ingest\n  drover bench ingest --agents 4 --hosts 20 --duration 5s --reads 20",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.agents < 1 || o.hosts < 1 || o.batch < 40 || o.duration <= 0 || o.baseline < 0 || o.reads < 1 || o.readHosts < 1 {
				return errors.New("bench ingest: --agents, --hosts, --reads, --read-hosts must be at least 1, --batch at least 40 and --duration positive")
			}
			res, err := a.benchIngest(cmd.Context(), o)
			if err != nil {
				return err
			}
			line, err := json.Marshal(res)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, string(line))
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.agents, "agents", 8, "simulated agents, each with its own connection")
	f.IntVar(&o.hosts, "hosts", 50, "hypervisors per agent")
	f.IntVar(&o.batch, "batch", ingest.DefaultBatchMaxSamples, "samples per batch (whole collection cycles of one host; the Shipper's default batch size)")
	f.DurationVar(&o.duration, "duration", 20*time.Second, "how long the agents send")
	f.DurationVar(&o.baseline, "baseline", 5*time.Second, "how long the single-row INSERT baseline runs (0: skip)")
	f.IntVar(&o.reads, "reads", 50, "HostsNow reads")
	f.IntVar(&o.readHosts, "read-hosts", 10000, "hypervisors HostsNow reads (extra ones seeded)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the simulated readings")
	f.BoolVar(&o.keep, "keep-schema", false, "keep the scratch schema (its name is in the JSON line)")
	return c
}

// benchSeries is the shape of one simulated host: ~40 series as the collectors name them.
var benchSeries = func() []kpi.Sample {
	var out []kpi.Sample
	add := func(src, metric, sensor, unit string) {
		out = append(out, kpi.Sample{Source: src, Metric: metric, Sensor: sensor, Unit: unit})
	}
	for _, m := range []string{kpi.MetricLoad1, kpi.MetricLoad5, kpi.MetricLoad15} {
		add(kpi.SourceProcfs, m, "", "")
	}
	for _, m := range []string{kpi.MetricCPUBusyRatio, kpi.MetricCPUIOWaitRatio, kpi.MetricCPUStealRatio, kpi.MetricCPUGuestRatio} {
		add(kpi.SourceProcfs, m, "", "ratio")
	}
	for _, m := range []string{kpi.MetricMemoryTotalBytes, kpi.MetricMemoryAvailableBytes, kpi.MetricMemoryFreeBytes,
		kpi.MetricMemoryBuffersBytes, kpi.MetricMemoryCachedBytes, kpi.MetricSwapTotalBytes, kpi.MetricSwapFreeBytes} {
		add(kpi.SourceProcfs, m, "", "bytes")
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		add(kpi.SourceProcfs, "pressure_"+r+"_some_avg10", "", "ratio")
		add(kpi.SourceProcfs, "pressure_"+r+"_some_avg60", "", "ratio")
	}
	for i := 0; i < 8; i++ {
		add(kpi.SourceSysfs, kpi.MetricTempCelsius, fmt.Sprintf("coretemp.0/Core %d", i), "celsius")
	}
	for _, s := range []string{"CPU Temp", "Inlet Temp", "Exhaust Temp"} {
		add(kpi.SourceIPMI, kpi.MetricTempCelsius, s, "celsius")
	}
	for i := 1; i <= 4; i++ {
		add(kpi.SourceIPMI, kpi.MetricFanRPM, fmt.Sprintf("FAN%d", i), "rpm")
	}
	add(kpi.SourceIPMI, kpi.MetricPowerWatts, "Pwr Consumption", "watts")
	add(kpi.SourceSysfs, kpi.MetricPowerWatts, "intel-rapl:0/package-0", "watts")
	add(kpi.SourceIPMI, kpi.MetricVoltageVolts, "12V", "volts")
	add(kpi.SourceIPMI, kpi.MetricVoltageVolts, "5V", "volts")
	add(kpi.SourceLibvirt, kpi.MetricVMCPUBusyRatio, "", "ratio")
	return out
}()

// simHost produces one host's readings, a random walk per series.
type simHost struct {
	name  string
	level []float64
}

func (h *simHost) cycle(out []kpi.Sample, at time.Time, r *mrand.Rand) []kpi.Sample {
	for i, s := range benchSeries {
		h.level[i] = math.Max(0, h.level[i]+r.NormFloat64()*0.01*math.Max(1, h.level[i]))
		switch s.Unit {
		case "ratio":
			h.level[i] = math.Min(h.level[i], 1)
		case "celsius":
			h.level[i] = math.Min(h.level[i], 110)
		}
		s.Value, s.Time = h.level[i], at
		if s.Source == kpi.SourceLibvirt {
			s.VNode = "vn1"
		}
		out = append(out, s)
	}
	return out
}

func newSimHost(name string, r *mrand.Rand) *simHost {
	h := &simHost{name: name, level: make([]float64, len(benchSeries))}
	for i, s := range benchSeries {
		switch s.Unit {
		case "ratio":
			h.level[i] = r.Float64() * 0.8
		case "bytes":
			h.level[i] = float64(int64(64+r.IntN(448)) << 30)
		case "celsius":
			h.level[i] = 35 + r.Float64()*30
		case "rpm":
			h.level[i] = 3000 + r.Float64()*4000
		case "watts":
			h.level[i] = 150 + r.Float64()*300
		case "volts":
			h.level[i] = 5 + r.Float64()*7
		default:
			h.level[i] = r.Float64() * 32
		}
	}
	return h
}

func (a *app) benchIngest(ctx context.Context, o benchIngestOpts) (*benchIngestResult, error) {
	say := func(format string, args ...any) { fmt.Fprintf(a.stderr, "bench ingest: "+format+"\n", args...) }
	pc, err := db.PoolConfig(a.cfg.Database)
	if err != nil {
		return nil, err
	}
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	schema := "bench_ingest_" + hex.EncodeToString(rb[:])
	admin, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", db.Describe(pc), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create scratch schema %s: %w", schema, err)
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if _, err := admin.Exec(dctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
				say("could not drop scratch schema %s: %v (drop it by hand)", schema, err)
			}
		}()
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pc.ConnConfig.RuntimeParams["application_name"] = "drover bench ingest"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil {
		return nil, err
	}
	if _, err := db.NewMigrator(pool, ms).Up(ctx); err != nil {
		return nil, fmt.Errorf("migrate scratch schema %s: %w", schema, err)
	}
	changes, err := ingest.MaintainPartitions(ctx, pool, 2, 30)
	if err != nil {
		return nil, err
	}
	say("scratch schema %s migrated; %d daily partitions of kpi_samples", schema, len(changes))

	total := o.agents * o.hosts
	names := make([]string, 0, total)
	for ag := 0; ag < o.agents; ag++ {
		for h := 0; h < o.hosts; h++ {
			names = append(names, fmt.Sprintf("bench-a%03d-h%05d", ag, h))
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO hypervisors (name, uri) SELECT n, 'qemu:///bench' FROM unnest($1::text[]) n`, names); err != nil {
		return nil, fmt.Errorf("seed hypervisors: %w", err)
	}

	res := &benchIngestResult{Bench: "ingest", Agents: o.agents, Hosts: total, SeriesPerHost: len(benchSeries), BatchSamples: o.batch}
	if o.keep {
		res.Schema = schema
	}
	say("%d agents x %d hosts x %d series, batches of %d samples, for %s", o.agents, o.hosts, len(benchSeries), o.batch, o.duration)
	// Simulated time starts an hour ago and advances a second per cycle: within today's or
	// yesterday's partition.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	cycles, lats, err := a.benchWriters(ctx, pc, o, names, t0, res, say)
	if err != nil {
		return nil, err
	}
	res.BatchP50Ms, res.BatchP99Ms = benchPercentileMs(lats, 0.50), benchPercentileMs(lats, 0.99)
	say("writer: %d samples in %d batches (%d events) in %.1f s: %.0f samples/s; batch p50 %.2f ms, p99 %.2f ms",
		res.Samples, res.Batches, res.Events, res.DurationS, res.SamplesPerS, res.BatchP50Ms, res.BatchP99Ms)

	if o.baseline > 0 {
		if err := benchBaseline(ctx, pc, o, t0.Add(time.Duration(cycles+1)*time.Second), res, say); err != nil {
			return nil, err
		}
		if res.BaselineSamplesPerS > 0 {
			res.Ratio = res.SamplesPerS / res.BaselineSamplesPerS
		}
		say("baseline: %d single-row INSERTs in %s: %.0f samples/s; the writer is %.1fx faster", res.BaselineSamples, o.baseline, res.BaselineSamplesPerS, res.Ratio)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kpi_samples`).Scan(&res.DBRows); err != nil {
		return nil, err
	}
	if res.DBRows != res.Samples+res.BaselineSamples {
		return nil, fmt.Errorf("kpi_samples holds %d rows, but %d + %d were written", res.DBRows, res.Samples, res.BaselineSamples)
	}

	if err := benchHostsNow(ctx, pool, o, total, res, say); err != nil {
		return nil, err
	}
	return res, nil
}

// benchWriters runs the agents; it returns the cycles simulated and every batch's latency.
func (a *app) benchWriters(ctx context.Context, pc *pgxpool.Config, o benchIngestOpts, names []string, t0 time.Time,
	res *benchIngestResult, say func(string, ...any)) (int, []time.Duration, error) {
	var samples, batches, events atomic.Int64
	var maxCycle atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, o.agents)
	lats := make([][]time.Duration, o.agents)
	perBatch := max(1, o.batch/len(benchSeries))
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	start := time.Now()
	for ag := 0; ag < o.agents; ag++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			apc := pc.Copy()
			apc.MaxConns, apc.MinConns = 1, 1
			apool, err := pgxpool.NewWithConfig(ctx, apc)
			if err != nil {
				errs <- err
				return
			}
			defer apool.Close()
			w := ingest.NewWriter(apool, zerolog.Nop(), ingest.WriterOptions{})
			r := mrand.New(mrand.NewPCG(o.seed, uint64(ag)))
			hosts := make([]*simHost, o.hosts)
			for i := range hosts {
				hosts[i] = newSimHost(names[ag*o.hosts+i], r)
			}
			buf := make([]kpi.Sample, 0, perBatch*len(benchSeries))
			agent := fmt.Sprintf("bench-agent-%d", ag)
			var seq uint64
			// Each round: every host sends one batch of perBatch cycles.
			for round := 0; time.Now().Before(deadline); round++ {
				for _, h := range hosts {
					buf = buf[:0]
					c0 := round * perBatch
					for c := 0; c < perBatch; c++ {
						buf = h.cycle(buf, t0.Add(time.Duration(c0+c)*time.Second), r)
					}
					var evs []health.Event
					if r.IntN(20) == 0 { // now and then a sensor changes state
						evs = []health.Event{{Host: h.name, Sensor: "CPU Temp", Kind: health.KindState,
							At: t0.Add(time.Duration(c0) * time.Second), From: health.OK, To: health.Warning,
							Value: 81, Threshold: 80, Message: "bench"}}
					}
					seq++
					bt := time.Now()
					if _, err := w.Write(ctx, ingest.Batch{Host: h.name, Agent: agent, Seq: seq, Samples: buf, Events: evs}); err != nil {
						errs <- fmt.Errorf("agent %d: %w", ag, err)
						return
					}
					lats[ag] = append(lats[ag], time.Since(bt))
					samples.Add(int64(len(buf)))
					events.Add(int64(len(evs)))
					batches.Add(1)
					if !time.Now().Before(deadline) {
						break
					}
				}
				if c := int64((round + 1) * perBatch); c > maxCycle.Load() {
					maxCycle.Store(c)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var last int64
	lastAt := start
loop:
	for {
		select {
		case <-done:
			break loop
		case err := <-errs:
			cancel()
			<-done
			return 0, nil, err
		case now := <-tick.C:
			n := samples.Load()
			say("%4.0fs %12d samples  %9.0f samples/s", now.Sub(start).Seconds(), n, float64(n-last)/now.Sub(lastAt).Seconds())
			last, lastAt = n, now
		}
	}
	select {
	case err := <-errs:
		return 0, nil, err
	default:
	}
	el := time.Since(start)
	res.DurationS = el.Seconds()
	res.Samples, res.Batches, res.Events = samples.Load(), batches.Load(), events.Load()
	res.SamplesPerS = float64(res.Samples) / el.Seconds()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return int(maxCycle.Load()) + perBatch, all, nil
}

// benchBaseline inserts the same shape of data one autocommitted row at a time.
func benchBaseline(ctx context.Context, pc *pgxpool.Config, o benchIngestOpts, t0 time.Time, res *benchIngestResult, say func(string, ...any)) error {
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	var ids []int32
	if err := pool.QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM kpi_series`).Scan(&ids); err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("baseline: no series (the writer phase wrote nothing)")
	}
	say("baseline: single-row INSERT per sample, %d connections, for %s", o.agents, o.baseline)
	var n atomic.Int64
	deadline := time.Now().Add(o.baseline)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, o.agents)
	for ag := 0; ag < o.agents; ag++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			r := mrand.New(mrand.NewPCG(o.seed, 1000+uint64(ag)))
			for i := ag; time.Now().Before(deadline); i += o.agents {
				id := ids[i%len(ids)]
				at := t0.Add(time.Duration(i/len(ids)) * time.Second)
				if _, err := conn.Exec(ctx, `INSERT INTO kpi_samples (series_id, ts, value) VALUES ($1, $2, $3)`, id, at, r.Float64()*100); err != nil {
					errs <- fmt.Errorf("baseline: %w", err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	res.BaselineSamples = n.Load()
	res.BaselineSamplesPerS = float64(res.BaselineSamples) / time.Since(start).Seconds()
	return nil
}

// benchHostsNow seeds hypervisors (with summary and health rows) up to --read-hosts and times
// HostsNow.
func benchHostsNow(ctx context.Context, pool *pgxpool.Pool, o benchIngestOpts, have int, res *benchIngestResult, say func(string, ...any)) error {
	if extra := o.readHosts - have; extra > 0 {
		say("seeding %d more hypervisors with KPI summaries for the read test", extra)
		if _, err := pool.Exec(ctx, `
			WITH h AS (
				INSERT INTO hypervisors (name, uri)
				SELECT 'bench-r' || lpad(i::text, 6, '0'), 'qemu:///bench' FROM generate_series(1, $1) i
				RETURNING id)
			INSERT INTO host_kpi_now (hypervisor_id, ts, load1, load5, cpu_busy_ratio, mem_total_bytes, mem_available_bytes,
			                          temp_max_celsius, temp_max_sensor, power_watts, fan_min_rpm, vms, series)
			SELECT id, now() - (id % 120) * interval '1 second', (id % 32) / 2.0, (id % 32) / 2.5, (id % 100) / 100.0,
			       256e9, (id % 200) * 1e9, 40 + id % 45, 'CPU Temp', 200 + id % 300, 4000 + id % 2000, id % 8, 40
			FROM h`, extra); err != nil {
			return fmt.Errorf("seed read hosts: %w", err)
		}
		if _, err := pool.Exec(ctx, `
			INSERT INTO host_health (hypervisor_id, state, since, worst_sensor)
			SELECT id, CASE WHEN id % 50 = 0 THEN 'critical' ELSE 'warning' END, now() - interval '5 minutes', 'CPU Temp'
			FROM hypervisors WHERE id % 10 = 0
			ON CONFLICT (hypervisor_id) DO NOTHING`); err != nil {
			return fmt.Errorf("seed read hosts' health: %w", err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE hypervisors; ANALYZE host_kpi_now; ANALYZE host_health`); err != nil {
		return err
	}
	st := store.New(pool)
	var lats []time.Duration
	for i := 0; i < o.reads; i++ {
		t := time.Now()
		hs, err := st.HostsNow(ctx)
		if err != nil {
			return err
		}
		lats = append(lats, time.Since(t))
		res.HostsNowHosts = len(hs)
	}
	res.HostsNowReads = o.reads
	res.HostsNowP50Ms, res.HostsNowP99Ms = benchPercentileMs(lats, 0.50), benchPercentileMs(lats, 0.99)
	say("HostsNow (dashboard, every column, sorted by name): %d hosts, %d reads: p50 %.2f ms, p99 %.2f ms",
		res.HostsNowHosts, o.reads, res.HostsNowP50Ms, res.HostsNowP99Ms)
	lats = lats[:0]
	for i := 0; i < o.reads; i++ {
		t := time.Now()
		hs, err := st.HostsState(ctx)
		if err != nil {
			return err
		}
		lats = append(lats, time.Since(t))
		res.HostsStateHosts = len(hs)
	}
	res.HostsStateP50Ms, res.HostsStateP99Ms = benchPercentileMs(lats, 0.50), benchPercentileMs(lats, 0.99)
	say("HostsState (the scheduler's current state of every host): %d hosts, %d reads: p50 %.2f ms, p99 %.2f ms",
		res.HostsStateHosts, o.reads, res.HostsStateP50Ms, res.HostsStateP99Ms)
	return nil
}

// benchPercentileMs is the p-th percentile of ds in milliseconds (nearest rank).
func benchPercentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return float64(s[max(0, min(i, len(s)-1))].Microseconds()) / 1000
}
