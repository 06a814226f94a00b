package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/sql/queries"
)

// kpiStore is a store on a fresh schema with hypervisors hv1, hv2 and hv3, and its pool for
// seeding.
func kpiStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	_, pool := testenv.MigratedSchema(t)
	s := store.New(pool)
	hs := append(append([]config.Hypervisor(nil), hvs...), config.Hypervisor{Name: "hv3", URI: "qemu+tcp://198.18.0.4/system"})
	if err := s.SyncHypervisors(context.Background(), hs); err != nil {
		t.Fatal(err)
	}
	return s, pool
}

func kpiExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// series records a KPI series and returns its id.
func kpiSeries(t *testing.T, pool *pgxpool.Pool, host, source, metric, vnode, sensor string) int {
	t.Helper()
	var id int
	err := pool.QueryRow(context.Background(), `INSERT INTO kpi_series (hypervisor_id, source, metric, vnode, sensor)
		VALUES ((SELECT id FROM hypervisors WHERE name = $1), $2, $3, $4, $5) RETURNING id`,
		host, source, metric, vnode, sensor).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// latest sets a series' newest value, read ago before the database's now.
func kpiLatest(t *testing.T, pool *pgxpool.Pool, id int, v float64, ago time.Duration) {
	t.Helper()
	kpiExec(t, pool, `INSERT INTO kpi_latest (series_id, ts, value) VALUES ($1, now() - $2::interval, $3)`, id, ago, v)
}

// healthEvent is a health event recorded at now - ago.
type healthEvent struct {
	host, sensor, kind, from, to string
	ago                          time.Duration
	value, threshold             float64
	breachIn                     time.Duration // predictions: crossing at now + breachIn
	confidence                   float64
}

func (e healthEvent) insert(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	kpiExec(t, pool, `INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state, value, threshold,
			predicted_breach_at, confidence, message)
		VALUES ((SELECT id FROM hypervisors WHERE name = $1), now() - $2::interval, $3, $4, NULLIF($5, ''), NULLIF($6, ''),
			$7, $8, CASE WHEN $4 = 'prediction' THEN now() + $9::interval END,
			CASE WHEN $4 = 'prediction' THEN $10::real END, $3 || ' ' || $4)`,
		e.host, e.ago, e.sensor, e.kind, e.from, e.to, e.value, e.threshold, e.breachIn, e.confidence)
}

func closeTo(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestHottestHosts(t *testing.T) {
	s, pool := kpiStore(t)
	ctx := context.Background()
	// hv1: CPU Temp 71 is the hottest; the vnode-level 99 is a guest's, not the host's.
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "ipmi", "temp_celsius", "", "CPU Temp"), 71, 30*time.Second)
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "ipmi", "temp_celsius", "", "Inlet Temp"), 25, 30*time.Second)
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "sysfs", "temp_celsius", "", "coretemp.0/Core 0"), 68, 30*time.Second)
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "libvirt", "temp_celsius", "vn1", ""), 99, 30*time.Second)
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "ipmi", "power_watts", "", "Pwr Consumption"), 300, 30*time.Second)
	// hv2: its package sensor (58) beats its CPU Temp (55).
	kpiLatest(t, pool, kpiSeries(t, pool, "hv2", "ipmi", "temp_celsius", "", "CPU Temp"), 55, 2*time.Minute)
	kpiLatest(t, pool, kpiSeries(t, pool, "hv2", "sysfs", "temp_celsius", "", "coretemp.0/Package id 0"), 58, 2*time.Minute)
	// hv3: no temperature at all: not listed.
	kpiLatest(t, pool, kpiSeries(t, pool, "hv3", "procfs", "load1", "", ""), 0.5, time.Second)
	for _, e := range []healthEvent{
		// the warning bound 80 is not the critical one
		{host: "hv1", sensor: "CPU Temp", kind: "state", from: "ok", to: "warning", ago: 10 * time.Minute, value: 81, threshold: 80},
		// a prediction heads for the critical bound: 90
		{host: "hv1", sensor: "CPU Temp", kind: "prediction", from: "warning", to: "critical", ago: 5 * time.Minute, value: 82, threshold: 90, breachIn: time.Minute, confidence: 0.9},
		// newer, but a change to unknown carries no bound (threshold 0)
		{host: "hv1", sensor: "CPU Temp", kind: "state", from: "warning", to: "unknown", ago: 2 * time.Minute},
		// hv2's bound is for CPU Temp, not for its hottest sensor
		{host: "hv2", sensor: "CPU Temp", kind: "state", from: "critical", to: "warning", ago: time.Minute, value: 90, threshold: 95},
	} {
		e.insert(t, pool)
	}
	// Set after the events, which may maintain host_health themselves (a trigger).
	kpiExec(t, pool, `INSERT INTO host_health (hypervisor_id, state, worst_sensor)
		SELECT id, CASE name WHEN 'hv1' THEN 'warning' ELSE 'ok' END, '' FROM hypervisors WHERE name IN ('hv1', 'hv2')
		ON CONFLICT (hypervisor_id) DO UPDATE SET state = excluded.state`)

	got, err := s.HottestHosts(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d hosts, want hv1 and hv2: %+v", len(got), got)
	}
	h1, h2 := got[0], got[1]
	// hv1: 90 - 71 = 19 degrees of headroom.
	if h1.Host != "hv1" || h1.Sensor != "CPU Temp" || h1.Celsius != 71 || h1.Health != "warning" ||
		h1.Critical == nil || *h1.Critical != 90 || h1.Headroom == nil || *h1.Headroom != 19 {
		t.Errorf("hv1 = %+v", h1)
	}
	if h1.Age < 29*time.Second || h1.Age > 10*time.Minute {
		t.Errorf("hv1 reading age %v, read 30s before the query", h1.Age)
	}
	if h2.Host != "hv2" || h2.Sensor != "coretemp.0/Package id 0" || h2.Celsius != 58 || h2.Health != "ok" ||
		h2.Critical != nil || h2.Headroom != nil {
		t.Errorf("hv2 = %+v", h2)
	}
	if got, err := s.HottestHosts(ctx, 1); err != nil || len(got) != 1 || got[0].Host != "hv1" {
		t.Errorf("limit 1: %+v, %v", got, err)
	}
	if _, err := s.HottestHosts(ctx, 0); err == nil {
		t.Error("limit 0 accepted")
	}

	load, err := s.LatestByHost(ctx, "load1")
	if err != nil {
		t.Fatal(err)
	}
	if len(load) != 1 || load["hv3"].Value != 0.5 {
		t.Errorf("load1 by host = %+v, want hv3 only", load)
	}
}

func TestPredictedBreaches(t *testing.T) {
	s, pool := kpiStore(t)
	ctx := context.Background()
	kpiLatest(t, pool, kpiSeries(t, pool, "hv1", "ipmi", "temp_celsius", "", "CPU Temp"), 71, 10*time.Second)
	for _, e := range []healthEvent{
		// hv1 CPU Temp: the newer prediction (6 min, 0.95) replaces the older one.
		{host: "hv1", sensor: "CPU Temp", kind: "prediction", from: "ok", ago: 2 * time.Minute, value: 65, threshold: 90, breachIn: 8 * time.Minute, confidence: 0.9},
		{host: "hv1", sensor: "CPU Temp", kind: "prediction", from: "warning", ago: time.Minute, value: 70, threshold: 90, breachIn: 6 * time.Minute, confidence: 0.95},
		// hv1 Inlet Temp: back to ok since: moot.
		{host: "hv1", sensor: "Inlet Temp", kind: "prediction", from: "warning", ago: 3 * time.Minute, value: 30, threshold: 40, breachIn: 5 * time.Minute, confidence: 0.9},
		{host: "hv1", sensor: "Inlet Temp", kind: "state", from: "warning", to: "ok", ago: time.Minute, value: 28, threshold: 35},
		// hv1 FAN1: the breach happened (state critical since): moot.
		{host: "hv1", sensor: "FAN1", kind: "prediction", from: "ok", ago: 3 * time.Minute, value: 900, threshold: 500, breachIn: 4 * time.Minute, confidence: 0.9},
		{host: "hv1", sensor: "FAN1", kind: "state", from: "ok", to: "critical", ago: time.Minute, value: 450, threshold: 500},
		// hv2 CPU Temp: 20 minutes ahead; a later change to warning does not make it moot.
		{host: "hv2", sensor: "CPU Temp", kind: "prediction", from: "ok", ago: time.Minute, value: 60, threshold: 90, breachIn: 20 * time.Minute, confidence: 0.85},
		{host: "hv2", sensor: "CPU Temp", kind: "state", from: "ok", to: "warning", ago: 30 * time.Second, value: 81, threshold: 80},
		// hv2 PSU Temp: an older prediction within 10 minutes, replaced by one 25 minutes ahead.
		{host: "hv2", sensor: "PSU Temp", kind: "prediction", from: "ok", ago: 5 * time.Minute, value: 50, threshold: 70, breachIn: 4 * time.Minute, confidence: 0.9},
		{host: "hv2", sensor: "PSU Temp", kind: "prediction", from: "ok", ago: time.Minute, value: 51, threshold: 70, breachIn: 25 * time.Minute, confidence: 0.8},
		// hv3: its predicted time has passed without a critical state: not a coming breach.
		{host: "hv3", sensor: "CPU Temp", kind: "prediction", from: "ok", ago: 10 * time.Minute, value: 60, threshold: 90, breachIn: -time.Minute, confidence: 0.9},
	} {
		e.insert(t, pool)
	}

	got, err := s.PredictedBreaches(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("within 10m: %d breaches, want hv1 CPU Temp only: %+v", len(got), got)
	}
	b := got[0]
	// Crossing 6 minutes after the seeding: a little less than 6 minutes left when queried.
	if b.Host != "hv1" || b.Sensor != "CPU Temp" || !closeTo(b.Confidence, 0.95, 1e-6) || b.Critical != 90 || b.Fitted != 70 ||
		b.State != "warning" || b.Current == nil || *b.Current != 71 || b.Left > 6*time.Minute || b.Left < 5*time.Minute {
		t.Errorf("breach = %+v", b)
	}
	got, err = s.PredictedBreaches(ctx, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got {
		names = append(names, b.Host+"/"+b.Sensor)
	}
	// Soonest first: 6, 20 and 25 minutes ahead; hv2's sensors have no current value.
	if want := []string{"hv1/CPU Temp", "hv2/CPU Temp", "hv2/PSU Temp"}; !slices.Equal(names, want) {
		t.Fatalf("within 30m: %v, want %v", names, want)
	}
	if got[1].Current != nil || got[2].Critical != 70 {
		t.Errorf("hv2 breaches = %+v", got[1:])
	}
	if _, err := s.PredictedBreaches(ctx, 0); err == nil {
		t.Error("window 0 accepted")
	}
}

func TestHealthEvents(t *testing.T) {
	s, pool := kpiStore(t)
	ctx := context.Background()
	for _, e := range []healthEvent{
		{host: "hv1", sensor: "CPU Temp", kind: "state", from: "ok", to: "warning", ago: 50 * time.Minute, value: 81, threshold: 80},
		{host: "hv2", sensor: "FAN1", kind: "error", from: "ok", to: "ok", ago: 40 * time.Minute},
		{host: "hv1", sensor: "CPU Temp", kind: "prediction", from: "warning", ago: 30 * time.Minute, value: 84, threshold: 90, breachIn: time.Minute, confidence: 0.9},
		{host: "hv2", sensor: "CPU Temp", kind: "state", from: "ok", to: "warning", ago: 20 * time.Minute, value: 82, threshold: 80},
		{host: "hv1", sensor: "CPU Temp", kind: "state", from: "warning", to: "critical", ago: 10 * time.Minute, value: 91, threshold: 90},
		{host: "hv1", sensor: "CPU Temp", kind: "state", from: "critical", to: "ok", ago: 3 * time.Hour, value: 50, threshold: 90},
	} {
		e.insert(t, pool)
	}
	hour := time.Now().Add(-time.Hour)
	all, err := s.HealthEvents(ctx, "", hour, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, e := range all {
		seq = append(seq, e.Host+" "+e.Kind)
	}
	// Newest first; the one 3 hours ago is before since.
	if want := []string{"hv1 state", "hv2 state", "hv1 prediction", "hv2 error", "hv1 state"}; !slices.Equal(seq, want) {
		t.Fatalf("events = %v, want %v", seq, want)
	}
	if e := all[0]; e.From != "warning" || e.To != "critical" || e.Value == nil || *e.Value != 91 || e.Threshold == nil ||
		*e.Threshold != 90 || e.PredictedAt != nil || e.Confidence != nil || e.Message != "CPU Temp state" {
		t.Errorf("newest = %+v", e)
	}
	if e := all[2]; e.PredictedAt == nil || e.Confidence == nil || !closeTo(*e.Confidence, 0.9, 1e-6) {
		t.Errorf("prediction = %+v", e)
	}
	hv1, err := s.HealthEvents(ctx, "hv1", hour, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hv1) != 2 || hv1[0].Kind != "state" || hv1[1].Kind != "prediction" || hv1[1].Host != "hv1" {
		t.Errorf("hv1, limit 2 = %+v", hv1)
	}
	if none, err := s.HealthEvents(ctx, "hv9", hour, 10); err != nil || len(none) != 0 {
		t.Errorf("unknown host: %+v, %v", none, err)
	}
	err = s.CheckHost(ctx, "hv9")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `no hypervisor named "hv9" (known: hv1, hv2, hv3)` {
		t.Errorf("CheckHost(hv9) = %v", err)
	}
	if err := s.CheckHost(ctx, "hv2"); err != nil {
		t.Errorf("CheckHost(hv2) = %v", err)
	}
}

// historyDay is the middle one of three days with a partition each.
var historyDay = time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)

// seedHistory creates daily partitions for 2024-06-02..04 and one sample a minute over those
// days for: hv1 load1 = the minute of the hour (0..59); hv1 "CPU Temp" = 60 + minute/10; hv1
// "coretemp.0/Core 0" = 50; hv1 vm_cpu_busy_ratio of vn1 = 0.5; hv2 load1 = 100; and 16 other
// hv1 series, so that one series is a small part of a partition.
func seedHistory(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for d := -1; d <= 1; d++ {
		from := historyDay.AddDate(0, 0, d)
		kpiExec(t, pool, `CREATE TABLE kpi_samples_`+from.Format("20060102")+` PARTITION OF kpi_samples
			FOR VALUES FROM ('`+from.Format(time.RFC3339)+`') TO ('`+from.AddDate(0, 0, 1).Format(time.RFC3339)+`')`)
	}
	add := func(id int, expr string) {
		kpiExec(t, pool, `INSERT INTO kpi_samples (series_id, ts, value)
			SELECT $1, ts, `+expr+` FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 minute', interval '1 minute') ts`,
			id, historyDay.AddDate(0, 0, -1), historyDay.AddDate(0, 0, 2))
	}
	minute := `extract(minute FROM ts AT TIME ZONE 'UTC')::float8`
	add(kpiSeries(t, pool, "hv1", "procfs", "load1", "", ""), minute)
	add(kpiSeries(t, pool, "hv1", "ipmi", "temp_celsius", "", "CPU Temp"), "60 + "+minute+" / 10")
	add(kpiSeries(t, pool, "hv1", "sysfs", "temp_celsius", "", "coretemp.0/Core 0"), "50")
	add(kpiSeries(t, pool, "hv1", "libvirt", "vm_cpu_busy_ratio", "vn1", ""), "0.5")
	add(kpiSeries(t, pool, "hv2", "procfs", "load1", "", ""), "100")
	for i := range 16 {
		add(kpiSeries(t, pool, "hv1", "procfs", "filler_"+string(rune('a'+i)), "", ""), "1")
	}
	kpiExec(t, pool, "ANALYZE kpi_samples")
	kpiExec(t, pool, "ANALYZE kpi_series")
	kpiExec(t, pool, "ANALYZE hypervisors")
}

func histAt(hhmm string) time.Time {
	d, err := time.ParseDuration(strings.Replace(hhmm, ":", "h", 1) + "m")
	if err != nil {
		panic(err)
	}
	return historyDay.Add(d)
}

func TestKpiHistory(t *testing.T) {
	s, pool := kpiStore(t)
	seedHistory(t, pool)
	ctx := context.Background()
	type pt struct {
		bucket        string
		avg, min, max float64
		n             int64
	}
	points := func(h store.HistoryQuery) map[string][]pt {
		t.Helper()
		got, err := s.KpiHistory(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]pt{}
		for _, p := range got {
			k := p.Source + "/" + p.VNode + "/" + p.Sensor
			out[k] = append(out[k], pt{p.Bucket.UTC().Format("01-02 15:04"), p.Avg, p.Min, p.Max, p.Count})
		}
		return out
	}
	check := func(name string, got []pt, want ...pt) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %d buckets, want %d: %+v", name, len(got), len(want), got)
			return
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.bucket != w.bucket || !closeTo(g.avg, w.avg, 1e-9) || g.min != w.min || g.max != w.max || g.n != w.n {
				t.Errorf("%s bucket %d = %+v, want %+v", name, i, g, w)
			}
		}
	}

	// 10:00-10:30 in 10 minutes: minutes 0..9 (mean 4.5), 10..19, 20..29; hv2's load1 stays out.
	got := points(store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("10:00"), To: histAt("10:30"), Step: 10 * time.Minute})
	if len(got) != 1 {
		t.Fatalf("load1 series: %v", got)
	}
	check("load1", got["procfs//"], pt{"06-03 10:00", 4.5, 0, 9, 10}, pt{"06-03 10:10", 14.5, 10, 19, 10}, pt{"06-03 10:20", 24.5, 20, 29, 10})

	// Buckets start at From: 10:05-10:15 holds minutes 5..14 (mean 9.5); To is excluded.
	got = points(store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("10:05"), To: histAt("10:25"), Step: 10 * time.Minute})
	check("load1 from 10:05", got["procfs//"], pt{"06-03 10:05", 9.5, 5, 14, 10}, pt{"06-03 10:15", 19.5, 15, 24, 10})

	// Across midnight, so across two partitions: 23:50-00:00 (minutes 50..59) and 00:00-00:10.
	got = points(store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("-0:10"), To: histAt("0:10"), Step: 10 * time.Minute})
	check("load1 at midnight", got["procfs//"], pt{"06-02 23:50", 54.5, 50, 59, 10}, pt{"06-03 00:00", 4.5, 0, 9, 10})

	// Every sensor of a metric, each apart: CPU Temp 60 + minute/10 over minutes 0..9 → mean 60.45.
	got = points(store.HistoryQuery{Host: "hv1", Metric: "temp_celsius", From: histAt("10:00"), To: histAt("10:10"), Step: 10 * time.Minute})
	if len(got) != 2 {
		t.Fatalf("temp_celsius series: %v", got)
	}
	check("CPU Temp", got["ipmi//CPU Temp"], pt{"06-03 10:00", 60.45, 60, 60.9, 10})
	check("Core 0", got["sysfs//coretemp.0/Core 0"], pt{"06-03 10:00", 50, 50, 50, 10})
	got = points(store.HistoryQuery{Host: "hv1", Metric: "temp_celsius", Sensor: "CPU Temp", From: histAt("10:00"), To: histAt("10:02"), Step: time.Minute})
	if len(got) != 1 {
		t.Fatalf("one sensor: %v", got)
	}
	check("CPU Temp by minute", got["ipmi//CPU Temp"], pt{"06-03 10:00", 60, 60, 60, 1}, pt{"06-03 10:01", 60.1, 60.1, 60.1, 1})
	// Per-vnode series come with their vnode.
	got = points(store.HistoryQuery{Host: "hv1", Metric: "vm_cpu_busy_ratio", From: histAt("10:00"), To: histAt("11:00"), Step: time.Hour})
	check("vn1", got["libvirt/vn1/"], pt{"06-03 10:00", 0.5, 0.5, 0.5, 60})

	for _, bad := range []struct {
		h    store.HistoryQuery
		want string
	}{
		{store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("10:00"), To: histAt("11:00")}, "step 0s is not positive"},
		{store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("11:00"), To: histAt("10:00"), Step: time.Minute}, "is empty"},
		{store.HistoryQuery{Host: "hv1", Metric: "load1", From: histAt("0:00"), To: histAt("48:00"), Step: time.Second}, "172800 buckets"},
		{store.HistoryQuery{Host: "hv1", From: histAt("10:00"), To: histAt("11:00"), Step: time.Minute}, "no metric"},
	} {
		if _, err := s.KpiHistory(ctx, bad.h); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err = %v, want %q", bad.h, err, bad.want)
		}
	}
}

// planNodes flattens an EXPLAIN (FORMAT JSON) plan into its nodes.
func planNodes(t *testing.T, doc []byte) []map[string]any {
	t.Helper()
	var top []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(doc, &top); err != nil || len(top) != 1 {
		t.Fatalf("plan %s: %v", doc, err)
	}
	var out []map[string]any
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		out = append(out, n)
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				walk(m)
			}
		}
	}
	walk(top[0].Plan)
	return out
}

// KpiHistory reads only the partition of the day asked about, through its (series_id, ts)
// index: with the bounds known when planning (EXPLAIN with values: a custom plan), and with
// them known only when executing (a prepared statement's generic plan, as one run many times
// gets): there the other partitions are pruned at executor start ("Subplans Removed").
func TestKpiHistoryPlan(t *testing.T) {
	_, pool := kpiStore(t)
	seedHistory(t, pool)
	ctx := context.Background()
	sql := queries.MustLoad().Get("KpiHistory")
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const values = `'hv1', 'load1', '', '2024-06-03T10:00:00Z', '2024-06-03T10:30:00Z', '10 minutes'`
	if _, err := conn.Exec(ctx, "PREPARE kpi_history(text, text, text, timestamptz, timestamptz, interval) AS "+sql); err != nil {
		t.Fatal(err)
	}
	// every partition but the one of 2024-06-03 is pruned: the other two days, the default one
	// and any the migrations made
	var parts float64
	if err := conn.QueryRow(ctx, "SELECT count(*)::float8 FROM pg_inherits WHERE inhparent = 'kpi_samples'::regclass").Scan(&parts); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, setup, explain string
		removed              float64 // Subplans Removed
	}{
		{"custom", "SET plan_cache_mode = force_custom_plan", "EXPLAIN (FORMAT JSON) EXECUTE kpi_history(" + values + ")", 0},
		{"generic", "SET plan_cache_mode = force_generic_plan", "EXPLAIN (FORMAT JSON) EXECUTE kpi_history(" + values + ")", parts - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
			var doc []byte
			if err := conn.QueryRow(ctx, tc.explain, pgx.QueryExecModeSimpleProtocol).Scan(&doc); err != nil {
				t.Fatal(err)
			}
			var parts, indexed []string
			var removed float64
			for _, n := range planNodes(t, doc) {
				if r, ok := n["Subplans Removed"].(float64); ok {
					removed += r
				}
				rel, _ := n["Relation Name"].(string)
				if !strings.HasPrefix(rel, "kpi_samples") {
					continue
				}
				parts = append(parts, rel)
				if typ, _ := n["Node Type"].(string); strings.Contains(typ, "Index") {
					indexed = append(indexed, rel)
				}
			}
			if !slices.Equal(parts, []string{"kpi_samples_20240603"}) || !slices.Equal(indexed, parts) || removed != tc.removed {
				t.Errorf("samples read from %v (by index: %v, %v subplans removed), want kpi_samples_20240603 by index only (%v removed)\n%s",
					parts, indexed, removed, tc.removed, doc)
			}
		})
	}
}

// The energy scenario (T = 2024-06-03 10:00 UTC, times in minutes after T):
//
//	hv1: IPMI "Pwr Consumption" 200 W (every 10 s, off the minute grid); RAPL package-0 120 W is
//	     ignored because the host has IPMI power.
//	hv2: no IPMI power; RAPL package-0 = 100 W + 0.01 W/s from T+60, package-1 50 W, dram 10 W
//	     count; the core zone (40 W, part of a package) and an hwmon power sensor (30 W) do not.
//	     No samples strictly between T+70 and T+80: ten minutes without data.
//	vn1, vn2 (4 vCPUs each): on hv1 from T-5 (resume) until T+40 (suspend).
//	vn3 (2 vCPUs): resumed on hv1 at T+30, migrated to hv2 at T+60, suspended at T+95.
//
//	job 101 {vn1, vn2} T..T+30: hv1 runs only vn1 and vn2: 200 W × 1800 s = 360 kJ, 180 kJ each.
//	job 104 {vn2} T+5..T+15: half of hv1: 200 W × 600 s / 2 = 60 kJ.
//	job 102 {vn3} T+30..T+90:
//	  T+30..40 on hv1 with vn1 and vn2: 2/10 × 200 W × 600 s          =  24 000 J
//	  T+40..60 on hv1 alone:           200 W × 1200 s                 = 240 000 J
//	  T+60..90 on hv2, minus T+70..80 without data (1200 s powered):
//	    package-0: ∫ 100 + 0.01 s ds over s in [0, 600] ∪ [1200, 1800] = 61 800 + 69 000 = 130 800 J
//	    package-1 50 W × 1200 s = 60 000 J; dram 10 W × 1200 s = 12 000 J  → 202 800 J
//	  total 466 800 J = 0.129667 kWh; vnode time 3600 s, powered 600 + 1200 + 1200 = 3000 s.
//	job 103 {vn9} from T+100, still running: vn9 never ran anywhere: 0 J.
func TestEnergyPerJob(t *testing.T) {
	s, pool := kpiStore(t)
	ctx := context.Background()
	T := time.Date(2024, 6, 3, 10, 0, 0, 0, time.UTC)
	m := func(min float64) time.Time { return T.Add(time.Duration(min * float64(time.Minute))) }
	samples := func(id int, from, to time.Time, expr string) {
		kpiExec(t, pool, `INSERT INTO kpi_samples (series_id, ts, value)
			SELECT $1, ts, `+expr+` FROM generate_series($2::timestamptz, $3::timestamptz, interval '10 seconds') ts`, id, from, to)
	}
	samples(kpiSeries(t, pool, "hv1", "ipmi", "power_watts", "", "Pwr Consumption"), m(-10).Add(7*time.Second), m(120), "200")
	samples(kpiSeries(t, pool, "hv1", "sysfs", "power_watts", "", "intel-rapl:0/package-0"), m(-10), m(120), "120")
	pkg0 := kpiSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:0/package-0")
	pkg1 := kpiSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:1/package-1")
	dram := kpiSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:0:1/dram")
	core := kpiSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:0:0/core")
	hwmon := kpiSeries(t, pool, "hv2", "sysfs", "power_watts", "", "amdgpu-pci-0300/PPT")
	for _, span := range [][2]time.Time{{m(-10), m(70)}, {m(80), m(120)}} {
		samples(pkg0, span[0], span[1], `100 + 0.01 * extract(epoch FROM ts - '`+m(60).Format(time.RFC3339)+`'::timestamptz)::float8`)
		samples(pkg1, span[0], span[1], "50")
		samples(dram, span[0], span[1], "10")
		samples(core, span[0], span[1], "40")
		samples(hwmon, span[0], span[1], "30")
	}
	kpiExec(t, pool, `INSERT INTO vnodes (name, cpus) VALUES ('vn1', 4), ('vn2', 4), ('vn3', 2)`)
	for _, e := range []struct {
		vnode, event, hv string
		at               float64
	}{
		{"vn1", "resume", "hv1", -5}, {"vn2", "resume", "hv1", -5},
		{"vn1", "suspend", "hv1", 40}, {"vn2", "suspend", "hv1", 40},
		{"vn3", "resume", "hv1", 30}, {"vn3", "migrated", "hv2", 60}, {"vn3", "suspend", "hv2", 95},
	} {
		kpiExec(t, pool, `INSERT INTO vnode_events (vnode, ts, event, hypervisor_id)
			VALUES ($1, $2, $3, (SELECT id FROM hypervisors WHERE name = $4))`, e.vnode, m(e.at), e.event, e.hv)
	}
	for _, j := range []struct {
		id    int64
		nodes []string
		from  float64
		to    *float64
	}{
		{101, []string{"vn1", "vn2"}, 0, ptrTo(30.0)},
		{104, []string{"vn2"}, 5, ptrTo(15.0)},
		{102, []string{"vn3"}, 30, ptrTo(90.0)},
		{103, []string{"vn9"}, 100, nil},
	} {
		var end *time.Time
		state := "running"
		if j.to != nil {
			end, state = ptrTo(m(*j.to)), "completed"
		}
		kpiExec(t, pool, `INSERT INTO jobs (job_id, name, user_name, nodes, state, started_at, ended_at)
			VALUES ($1, 'job', 'alice', $2, $3, $4, $5)`, j.id, j.nodes, state, m(j.from), end)
	}

	type want struct {
		id                    int64
		hosts                 []string
		vnodes                int64
		joules, secs, powered float64
	}
	check := func(got []store.JobEnergy, wants ...want) {
		t.Helper()
		if len(got) != len(wants) {
			t.Fatalf("%d jobs, want %d: %+v", len(got), len(wants), got)
		}
		for i, w := range wants {
			g := got[i]
			if g.JobID != w.id || !slices.Equal(g.Hypervisors, w.hosts) || g.Vnodes != w.vnodes ||
				!closeTo(g.Joules, w.joules, 1e-6*max(w.joules, 1)) || !closeTo(g.KWh, w.joules/3.6e6, 1e-9) ||
				!closeTo(g.VnodeSeconds, w.secs, 1e-6) || !closeTo(g.PoweredSeconds, w.powered, 1e-6) {
				t.Errorf("job %d = %+v, want %+v", w.id, g, w)
			}
		}
	}
	all, err := s.EnergyPerJob(ctx, 0, m(-60))
	if err != nil {
		t.Fatal(err)
	}
	// Newest job first.
	check(all,
		want{103, []string{}, 0, 0, 0, 0},
		want{102, []string{"hv1", "hv2"}, 1, 466800, 3600, 3000},
		want{104, []string{"hv1"}, 1, 60000, 600, 600},
		want{101, []string{"hv1"}, 2, 360000, 3600, 3600},
	)
	if all[0].EndedAt != nil || all[0].State != "running" || all[1].EndedAt == nil {
		t.Errorf("running job 103 = %+v, job 102 = %+v", all[0], all[1])
	}
	one, err := s.EnergyPerJob(ctx, 101, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	check(one, want{101, []string{"hv1"}, 2, 360000, 3600, 3600})
	// Since T+95: only the running job ran after it.
	later, err := s.EnergyPerJob(ctx, 0, m(95))
	if err != nil {
		t.Fatal(err)
	}
	check(later, want{103, []string{}, 0, 0, 0, 0})
	if none, err := s.EnergyPerJob(ctx, 999, time.Time{}); err != nil || len(none) != 0 {
		t.Errorf("unknown job: %+v, %v", none, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestHostsOverview(t *testing.T) {
	s, pool := kpiStore(t)
	kpiExec(t, pool, `INSERT INTO vnodes (name, state, memory_mib, hypervisor_id)
		SELECT n, st, 1024, (SELECT id FROM hypervisors WHERE name = 'hv1')
		FROM (VALUES ('vn1', 'running'), ('vn2', 'booting'), ('vn3', 'absent')) v(n, st)`)
	kpiExec(t, pool, `INSERT INTO host_health (hypervisor_id, state, worst_sensor) SELECT id, 'critical', 'CPU Temp' FROM hypervisors WHERE name = 'hv1'`)
	got, err := s.HostsOverview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Host != "hv1" || got[0].Health != "critical" || got[0].WorstSensor != "CPU Temp" ||
		got[0].Vnodes != 2 || got[0].VnodeMemMiB != 2048 || got[1].Health != "unknown" || got[1].Vnodes != 0 {
		t.Fatalf("overview = %+v", got)
	}
}

// Benchmarks on a day of agent data: two hypervisors with wall power every 10 s and 30 other
// series each every 10 s (540k samples), 8 vnodes of 2 vCPUs (4 per host) each running 24
// one-hour jobs back to back, every vnode moving to the other host at 06:00, 12:00 and 18:00.
func seedDay(b *testing.B) (*store.Store, time.Time) {
	b.Helper()
	_, pool := testenv.MigratedSchema(b)
	s := store.New(pool)
	ctx := context.Background()
	if err := s.SyncHypervisors(ctx, hvs); err != nil {
		b.Fatal(err)
	}
	day := time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)
	run := func(sql string, args ...any) {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%v\n%s", err, sql)
		}
	}
	run(`CREATE TABLE kpi_samples_20240603 PARTITION OF kpi_samples FOR VALUES FROM ('2024-06-03T00:00:00Z') TO ('2024-06-04T00:00:00Z')`)
	run(`INSERT INTO kpi_series (hypervisor_id, source, metric, sensor)
		SELECT h.id, 'ipmi', 'power_watts', 'Pwr Consumption' FROM hypervisors h
		UNION ALL SELECT h.id, 'procfs', 'metric_' || i, '' FROM hypervisors h, generate_series(1, 30) i`)
	run(`INSERT INTO kpi_samples (series_id, ts, value)
		SELECT s.id, ts, 150 + 50 * sin(extract(epoch FROM ts) / 600)
		FROM kpi_series s, generate_series($1::timestamptz, $2::timestamptz, interval '10 seconds') ts`,
		day, day.Add(24*time.Hour-time.Second))
	run(`INSERT INTO vnodes (name, cpus) SELECT 'vn' || i, 2 FROM generate_series(1, 8) i`)
	// vnode i starts on hv1 (i <= 4) or hv2 and swaps every 6 hours; suspended at the end of the day
	run(`INSERT INTO vnode_events (vnode, ts, event, hypervisor_id)
		SELECT 'vn' || i, $1::timestamptz + q * interval '6 hours', CASE q WHEN 0 THEN 'resume' ELSE 'migrated' END,
		       (SELECT id FROM hypervisors WHERE name = CASE WHEN (i <= 4) = (q % 2 = 0) THEN 'hv1' ELSE 'hv2' END)
		FROM generate_series(1, 8) i, generate_series(0, 3) q`, day)
	run(`INSERT INTO vnode_events (vnode, ts, event) SELECT 'vn' || i, $1::timestamptz, 'suspend' FROM generate_series(1, 8) i`,
		day.Add(24*time.Hour))
	run(`INSERT INTO jobs (job_id, nodes, state, started_at, ended_at)
		SELECT 1000 * i + h, ARRAY['vn' || i], 'completed', $1::timestamptz + h * interval '1 hour',
		       $1::timestamptz + (h + 1) * interval '1 hour'
		FROM generate_series(1, 8) i, generate_series(0, 23) h`, day)
	for _, t := range []string{"kpi_samples", "kpi_series", "vnode_events", "vnodes", "jobs", "hypervisors"} {
		run("ANALYZE " + t)
	}
	return s, day
}

func BenchmarkKpiHistory(b *testing.B) {
	s, day := seedDay(b)
	ctx := context.Background()
	h := store.HistoryQuery{Host: "hv1", Metric: "power_watts", From: day.Add(10 * time.Hour), To: day.Add(16 * time.Hour), Step: time.Minute}
	var n int
	for b.Loop() {
		pts, err := s.KpiHistory(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		n = len(pts)
	}
	if n != 360 {
		b.Fatalf("%d buckets, want 6 h of 1 min = 360", n)
	}
	b.ReportMetric(360*6, "samples/op")
}

func BenchmarkEnergyPerJob(b *testing.B) {
	s, day := seedDay(b)
	ctx := context.Background()
	var n int
	for b.Loop() {
		jobs, err := s.EnergyPerJob(ctx, 0, day)
		if err != nil {
			b.Fatal(err)
		}
		n = len(jobs)
	}
	if n != 192 {
		b.Fatalf("%d jobs, want 192", n)
	}
	b.ReportMetric(float64(n), "jobs/op")
}
