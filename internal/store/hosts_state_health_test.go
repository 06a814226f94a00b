package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/db"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/kpi"
	"github.com/drover-hpc/drover/kpi/ingest"
	"github.com/drover-hpc/drover/sql/migrations"
)

// hostStateDB is a migrated schema with the given hypervisors, the owner's pool and a Writer
// logged in as a member of drover_agent, so health and KPIs arrive by the agent's own path.
type hostStateDB struct {
	admin *pgxpool.Pool
	agent *pgxpool.Pool
	w     *ingest.Writer
	ids   map[string]int
	seq   uint64
}

func newHostStateDB(t *testing.T, hosts ...string) *hostStateDB {
	t.Helper()
	schema, admin := testenv.MigratedSchema(t)
	ctx := context.Background()
	d := &hostStateDB{admin: admin, ids: map[string]int{}}
	for _, h := range hosts {
		var id int
		if err := admin.QueryRow(ctx, `INSERT INTO hypervisors (name, uri) VALUES ($1, 'qemu:///x') RETURNING id`, h).Scan(&id); err != nil {
			t.Fatal(err)
		}
		d.ids[h] = id
	}
	agent := testenv.AgentPool(t, admin, schema)
	d.agent, d.w = agent, ingest.NewWriter(agent, zerolog.Nop(), ingest.WriterOptions{})
	return d
}

// kpis sends one collection cycle of host at ts (load1 = v) as the agent does.
func (d *hostStateDB) kpis(t *testing.T, host string, ts time.Time, v float64) {
	t.Helper()
	d.send(t, ingest.Batch{Host: host, Samples: []kpi.Sample{
		{Source: kpi.SourceProcfs, Metric: kpi.MetricLoad1, Value: v, Time: ts},
		{Source: kpi.SourceIPMI, Metric: kpi.MetricTempCelsius, Sensor: "CPU Temp", Unit: "celsius", Value: 60, Time: ts},
	}})
}

// events sends host's health events as the agent does.
func (d *hostStateDB) events(t *testing.T, host string, evs ...health.Event) {
	t.Helper()
	for i := range evs {
		evs[i].Host = host
	}
	d.send(t, ingest.Batch{Host: host, Events: evs})
}

func (d *hostStateDB) send(t *testing.T, b ingest.Batch) {
	t.Helper()
	d.seq++
	b.Agent, b.Seq = "test-agent", d.seq
	if ok, err := d.w.Write(context.Background(), b); err != nil || !ok {
		t.Fatalf("write batch %d of %s: delivered %v, %v", b.Seq, b.Host, ok, err)
	}
}

// state is HostsState's entry of host; ok false when the host is absent.
func (d *hostStateDB) state(t *testing.T, host string) (store.HostState, bool) {
	t.Helper()
	list, err := store.New(d.admin).HostsState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range list {
		if h.ID == d.ids[host] {
			return h, true
		}
	}
	return store.HostState{}, false
}

// consistent fails the test when a summary row's copies differ from host_health.
func (d *hostStateDB) consistent(t *testing.T) {
	t.Helper()
	var n int
	if err := d.admin.QueryRow(context.Background(), `SELECT count(*) FROM host_kpi_now n
		LEFT JOIN host_health hh ON hh.hypervisor_id = n.hypervisor_id
		WHERE n.health_state IS DISTINCT FROM hh.state OR n.predicted_breach_at IS DISTINCT FROM hh.predicted_breach_at`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d host_kpi_now rows whose health differs from host_health", n)
	}
}

func stateChange(sensor string, at time.Time, from, to health.State) health.Event {
	return health.Event{Sensor: sensor, Kind: health.KindState, At: at, From: from, To: to, Value: 81, Threshold: 80,
		Message: fmt.Sprintf("%s: %s -> %s", sensor, from, to)}
}

func prediction(sensor string, at, breach time.Time, from health.State) health.Event {
	return health.Event{Sensor: sensor, Kind: health.KindPrediction, At: at, From: from, To: health.Critical,
		Value: 85, Threshold: 95, PredictedAt: breach, Confidence: 0.9, Message: sensor + ": breach predicted"}
}

// HostsState reads health and predicted breaches from host_kpi_now alone: whether a host's health
// is known before its first KPI row or after, it shows host_health's state and breach; a
// prediction ends when a later event finds its time passed or the sensor turns critical; a host
// whose host_health row goes is ok again while fresh.
func TestHostsStateHealthEitherOrder(t *testing.T) {
	d := newHostStateDB(t, "early", "late", "quiet")
	now := time.Now().Truncate(time.Microsecond)
	ev := now.Add(-20 * time.Minute) // events are older than the KPIs, which are fresh
	breach := now.Add(-10 * time.Minute)

	// early: health first (warning, breach predicted), no KPI row yet: absent.
	d.events(t, "early", stateChange("CPU Temp", ev, health.OK, health.Warning),
		prediction("CPU Temp", ev.Add(time.Second), breach, health.Warning))
	if h, ok := d.state(t, "early"); ok {
		t.Fatalf("early before its first KPIs = %+v, want absent", h)
	}
	// Its first KPI row picks the health up.
	d.kpis(t, "early", now, 1.5)
	if h, ok := d.state(t, "early"); !ok || h.Health != "warning" || !h.BreachAt.Equal(breach) || h.Stale || h.Load1 != 1.5 {
		t.Errorf("early after its first KPIs = %+v (present %v), want fresh, warning, breach at %s, load 1.5", h, ok, breach)
	}
	// Later KPI rows (the upsert path) keep it.
	d.kpis(t, "early", now.Add(time.Second), 2.5)
	if h, _ := d.state(t, "early"); h.Health != "warning" || !h.BreachAt.Equal(breach) || h.Load1 != 2.5 {
		t.Errorf("early after more KPIs = %+v, want warning, breach at %s, load 2.5", h, breach)
	}

	// late: KPIs first: no health event yet, ok while fresh.
	d.kpis(t, "late", now, 0.5)
	if h, ok := d.state(t, "late"); !ok || h.Health != "ok" || !h.BreachAt.IsZero() {
		t.Errorf("late before health events = %+v (present %v), want ok, no breach", h, ok)
	}
	// Then health: a prediction, then a warning.
	d.events(t, "late", prediction("Inlet Temp", ev, breach, health.OK))
	if h, _ := d.state(t, "late"); h.Health != "ok" || !h.BreachAt.Equal(breach) {
		// The prediction's sensor is recorded in its From state, ok (002's trigger).
		t.Errorf("late after a prediction = %+v, want ok, breach at %s", h, breach)
	}
	d.events(t, "late", stateChange("CPU Temp", ev.Add(time.Second), health.OK, health.Warning))
	if h, _ := d.state(t, "late"); h.Health != "warning" || !h.BreachAt.Equal(breach) {
		t.Errorf("late after a warning = %+v, want warning, breach at %s", h, breach)
	}
	d.consistent(t)

	// A passed prediction clears: the next event comes after the predicted time.
	d.events(t, "early", stateChange("CPU Temp", breach.Add(time.Minute), health.Warning, health.OK))
	if h, _ := d.state(t, "early"); h.Health != "ok" || !h.BreachAt.IsZero() {
		t.Errorf("early after an event past the breach = %+v, want ok, no breach", h)
	}
	// A sensor turning critical ends its prediction.
	d.events(t, "late", stateChange("Inlet Temp", ev.Add(2*time.Second), health.OK, health.Critical))
	if h, _ := d.state(t, "late"); h.Health != "critical" || !h.BreachAt.IsZero() {
		t.Errorf("late after its predicted sensor turned critical = %+v, want critical, no breach", h)
	}
	d.consistent(t)

	// host_health row removed: no health event known, ok while fresh.
	if _, err := d.admin.Exec(context.Background(), `DELETE FROM host_health WHERE hypervisor_id = $1`, d.ids["late"]); err != nil {
		t.Fatal(err)
	}
	if h, _ := d.state(t, "late"); h.Health != "ok" || !h.BreachAt.IsZero() {
		t.Errorf("late without a host_health row = %+v, want ok, no breach", h)
	}
	if h, ok := d.state(t, "quiet"); ok {
		t.Errorf("quiet = %+v, want absent (never reported)", h)
	}
	d.consistent(t)

	// The agent gained nothing: it still may not write the summary's health.
	_, err := d.agent.Exec(context.Background(), `UPDATE host_kpi_now SET health_state = 'ok'`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("agent UPDATE host_kpi_now: err = %v, want permission denied (42501)", err)
	}
}

// A host's first summary row and its first health change, made in two transactions at once,
// still leave the summary row with the health, whichever starts first: the second waits for the
// first to commit when the summary row is not there yet. The first transaction is held open until
// the second has either finished or is seen waiting on a lock, then both commit.
func TestHostsStateHealthConcurrentFirst(t *testing.T) {
	d := newHostStateDB(t, "kpi-first", "health-first")
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	var series [2]int
	for i, h := range []string{"kpi-first", "health-first"} {
		if err := d.admin.QueryRow(ctx, `INSERT INTO kpi_series (hypervisor_id, source, metric) VALUES ($1, 'procfs', 'load1') RETURNING id`,
			d.ids[h]).Scan(&series[i]); err != nil {
			t.Fatal(err)
		}
	}
	// What the agent's Writer runs (IngestLatest, IngestEvents), each in a transaction of its own.
	summary := func(h string, s int) (string, []any) {
		return `SELECT kpi_ingest_latest($1, ARRAY[$2::int], ARRAY[$3::timestamptz], ARRAY[1.5::float8], ARRAY['ok'])`,
			[]any{d.ids[h], s, now}
	}
	event := func(h string) (string, []any) {
		return `INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state)
			VALUES ($1, $2, 'CPU Temp', 'state', 'ok', 'critical')`, []any{d.ids[h], now}
	}
	type stmt func() (string, []any)
	run := func(host string, first, second stmt) {
		a, err := d.agent.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		sql, args := first()
		if _, err := a.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: first: %v", host, err)
		}
		b, err := d.agent.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release()
		var pid int
		if err := b.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			sql, args := second()
			_, err := b.Exec(ctx, sql, args...) // autocommitted
			done <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
	wait:
		for {
			select {
			case err := <-done:
				done <- err
				break wait
			default:
			}
			var waiting bool
			if err := d.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)`,
				pid).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the second transaction neither finished nor waited on a lock in 30 s", host)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := a.Commit(ctx); err != nil {
			t.Fatalf("%s: commit first: %v", host, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s: second: %v", host, err)
		}
	}
	run("kpi-first", func() (string, []any) { return summary("kpi-first", series[0]) }, func() (string, []any) { return event("kpi-first") })
	run("health-first", func() (string, []any) { return event("health-first") }, func() (string, []any) { return summary("health-first", series[1]) })
	for _, h := range []string{"kpi-first", "health-first"} {
		if st, ok := d.state(t, h); !ok || st.Health != "critical" {
			t.Errorf("%s = %+v (present %v), want critical", h, st, ok)
		}
	}
	d.consistent(t)
}

// 004 down leaves host_health and host_kpi_now as 002 made them, and up again backfills the
// copies from host_health.
func TestHostStateMigrationDownUp(t *testing.T) {
	d := newHostStateDB(t, "a", "b")
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	d.kpis(t, "a", now, 1)
	d.kpis(t, "b", now, 1)
	d.events(t, "a", stateChange("CPU Temp", now, health.OK, health.Warning))

	ms, err := db.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	down := 0 // 004 and any later migration
	for _, m := range ms {
		if m.Version >= 4 {
			down++
		}
	}
	m := db.NewMigrator(d.admin, ms)
	if did, err := m.Down(ctx, down); err != nil || len(did) != down || did[len(did)-1].Version != 4 {
		t.Fatalf("down to 003: %v, %v", did, err)
	}
	var left int
	if err := d.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM information_schema.columns
		    WHERE table_schema = current_schema() AND table_name = 'host_kpi_now'
		      AND column_name IN ('health_state', 'predicted_breach_at'))
		  + (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal
		      AND tgrelid IN ('host_kpi_now'::regclass, 'host_health'::regclass) AND tgname LIKE 'host_%')
		  + (SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
		      AND proname IN ('host_kpi_now_health', 'host_health_to_now'))`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("after 004 down, %d of its columns, triggers and functions are left", left)
	}
	// Health changes while 004 is down, then up again: the backfill copies them.
	d.events(t, "b", stateChange("CPU Temp", now, health.OK, health.Critical))
	d.kpis(t, "b", now.Add(time.Second), 2) // and the ingest path works without 004
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if h, _ := d.state(t, "a"); h.Health != "warning" {
		t.Errorf("a after down and up = %+v, want warning", h)
	}
	if h, _ := d.state(t, "b"); h.Health != "critical" || h.Load1 != 2 {
		t.Errorf("b after down and up = %+v, want critical, load 2", h)
	}
	// 005 rebuilt the table with HostsState's columns first, its trigger and the reader's grant
	var first string
	var trig, readable bool
	if err := d.admin.QueryRow(ctx, `SELECT
		  (SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns
		    WHERE table_schema = current_schema() AND table_name = 'host_kpi_now' AND ordinal_position <= 9),
		  EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'host_kpi_now'::regclass AND tgname = 'host_kpi_now_health'),
		  has_table_privilege('drover_reader', 'host_kpi_now', 'SELECT')`).Scan(&first, &trig, &readable); err != nil {
		t.Fatal(err)
	}
	if want := "hypervisor_id,ts,load1,cpu_busy_ratio,mem_available_bytes,temp_max_celsius,power_watts,health_state,predicted_breach_at"; first != want {
		t.Errorf("host_kpi_now's first columns %s, want %s", first, want)
	}
	if !trig || !readable {
		t.Errorf("after up: trigger %v, drover_reader may read %v; want both", trig, readable)
	}
	d.consistent(t)
}

// HostsState over more hosts than its first chunk (1,024) holds: every host once, with its own
// figures and health.
func TestHostsStateManyHosts(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	const n = 5000
	for _, sql := range []string{
		`WITH h AS (INSERT INTO hypervisors (name, uri) SELECT 'h' || i, 'qemu:///h' FROM generate_series(1, 5000) i RETURNING id)
		 INSERT INTO host_kpi_now (hypervisor_id, ts, load1) SELECT id, now(), id FROM h`,
		`INSERT INTO host_health (hypervisor_id, state) SELECT id, 'critical' FROM hypervisors WHERE id % 10 = 0`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	list, err := store.New(pool).HostsState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	bad := 0
	for _, h := range list {
		want := "ok" // fresh, no health event
		if h.ID%10 == 0 {
			want = "critical"
		}
		if seen[h.ID] || h.Load1 != float64(h.ID) || h.Health != want {
			if bad++; bad <= 3 {
				t.Errorf("host %d = %+v (seen before: %v), want load %d, %s", h.ID, h, seen[h.ID], h.ID, want)
			}
		}
		seen[h.ID] = true
	}
	if len(list) != n || len(seen) != n || bad != 0 {
		t.Errorf("%d hosts, %d distinct (want %d each), %d wrong", len(list), len(seen), n, bad)
	}
}
