package ingest

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

func TestWriteExactlyOnce(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	w := NewWriter(d.agent, zerolog.Nop(), WriterOptions{})

	listener, err := d.admin.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN drover_health"); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	b := Batch{Host: "hv1", Agent: "a1", Seq: 1,
		Samples: append(cycleSamples(8, t0, 50), cycleSamples(8, t0.Add(time.Second), 51)...),
		Events:  []health.Event{stateEvent("hv1", "CPU Temp", t0, health.OK, health.Warning, 81)}}
	ok, err := w.Write(ctx, b)
	if err != nil || !ok {
		t.Fatalf("first write: delivered %v, err %v", ok, err)
	}
	ok, err = w.Write(ctx, b)
	if err != nil || ok {
		t.Fatalf("second write of the same batch: delivered %v, err %v; want skipped", ok, err)
	}
	// 2 cycles of 8 series; one event.
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 16 {
		t.Errorf("samples = %d, want 16", n)
	}
	if n := d.count(t, `SELECT count(DISTINCT (series_id, ts)) FROM kpi_samples`); n != 16 {
		t.Errorf("distinct (series, ts) = %d, want 16", n)
	}
	if n := d.count(t, `SELECT count(*) FROM health_events`); n != 1 {
		t.Errorf("events = %d, want 1", n)
	}
	if n := d.count(t, `SELECT count(*) FROM ingest_batches WHERE agent = 'a1' AND seq = 1 AND samples = 16 AND events = 1`); n != 1 {
		t.Errorf("batch records = %d, want 1", n)
	}
	// The newest cycle is kpi_latest; the trigger made host_health warning.
	if n := d.count(t, `SELECT count(*) FROM kpi_latest WHERE ts = $1`, t0.Add(time.Second)); n != 8 {
		t.Errorf("latest rows at the second cycle = %d, want 8", n)
	}
	if n := d.count(t, `SELECT count(*) FROM host_health WHERE state = 'warning' AND worst_sensor = 'CPU Temp'`); n != 1 {
		t.Errorf("host_health rows warning on CPU Temp = %d, want 1", n)
	}
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	note, err := listener.Conn().WaitForNotification(nctx)
	if err != nil || !strings.Contains(note.Payload, `"CPU Temp"`) {
		t.Errorf("notification %+v, err %v; want one about CPU Temp", note, err)
	}
}

// The commit went through but its reply was lost: the retry finds the batch and adds nothing.
func TestWriteCommitOutcomeUnknown(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	w := NewWriter(d.agent, zerolog.Nop(), WriterOptions{})
	lost := errors.New("connection reset after COMMIT was sent")
	w.afterCommit = func() error { return lost }
	b := Batch{Host: "hv1", Agent: "a1", Seq: 7, Samples: cycleSamples(10, time.Now(), 1)}
	if _, err := w.Write(ctx, b); !errors.Is(err, lost) || Permanent(err) {
		t.Fatalf("err = %v, want the lost reply, not a rejection", err)
	}
	w.afterCommit = nil
	ok, err := w.Write(ctx, b)
	if err != nil || ok {
		t.Fatalf("retry: delivered %v, err %v; want skipped as delivered", ok, err)
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 10 {
		t.Errorf("samples = %d, want 10", n)
	}
}

func TestWriteRejects(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	w := NewWriter(d.agent, zerolog.Nop(), WriterOptions{})
	now := time.Now()
	nan := cycleSamples(6, now, 40)
	nan[5].Value = math.NaN() // coretemp.0/Core 5
	inf := cycleSamples(3, now, 1)
	inf[2].Value = math.Inf(1)
	for _, tc := range []struct {
		name string
		b    Batch
		want []string
	}{
		{"NaN", Batch{Host: "hv1", Agent: "a", Seq: 1, Samples: nan}, []string{"hv1", `"coretemp.0/Core 5"`, "temp_celsius", "NaN"}},
		{"Inf", Batch{Host: "hv1", Agent: "a", Seq: 2, Samples: inf}, []string{"hv1", "memory_total_bytes", "+Inf"}},
		{"unknown host", Batch{Host: "hv9", Agent: "a", Seq: 3, Samples: cycleSamples(2, now, 1)}, []string{`"hv9"`, "no such hypervisor"}},
		{"bad source", Batch{Host: "hv1", Agent: "a", Seq: 4, Samples: []kpi.Sample{{Source: "proc", Metric: "load1", Time: now}}}, []string{`unknown source "proc"`}},
		{"bad event", Batch{Host: "hv1", Agent: "a", Seq: 5, Events: []health.Event{{Sensor: "CPU Temp", Kind: "guess", At: now}}}, []string{`"CPU Temp"`, `unknown kind "guess"`}},
		{"no seq", Batch{Host: "hv1", Agent: "a"}, []string{"sequence number 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := w.Write(ctx, tc.b)
			if ok || !errors.Is(err, ErrRejected) || !Permanent(err) {
				t.Fatalf("delivered %v, err %v; want a rejection", ok, err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
	// Nothing of them was written.
	if n := d.count(t, `SELECT (SELECT count(*) FROM kpi_samples) + (SELECT count(*) FROM ingest_batches) + (SELECT count(*) FROM health_events)`); n != 0 {
		t.Errorf("%d rows written by rejected batches", n)
	}

	// A batch the database refuses (an event state the schema does not know) is a rejection too.
	b := Batch{Host: "hv1", Agent: "a", Seq: 6, Events: []health.Event{{Sensor: "x", Kind: health.KindState, At: now, To: health.State(7)}}}
	if _, err := w.Write(ctx, b); !Permanent(err) {
		t.Fatalf("err = %v, want a rejection from the database", err)
	}
}

// kpi_latest and host_kpi_now keep the newest reading when an older batch arrives later.
func TestLatestNeverGoesBack(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	w := NewWriter(d.agent, zerolog.Nop(), WriterOptions{})
	t2 := time.Now().Truncate(time.Second)
	t1 := t2.Add(-30 * time.Second)
	for _, b := range []Batch{
		{Host: "hv1", Agent: "a", Seq: 1, Samples: cycleSamples(6, t2, 2)},
		{Host: "hv1", Agent: "a", Seq: 2, Samples: cycleSamples(6, t1, 9)}, // late
	} {
		if _, err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// load1 is the first series: 2 at t2, not the late 9.
	var v float64
	var at time.Time
	if err := d.admin.QueryRow(ctx, `SELECT l.value, l.ts FROM kpi_latest l JOIN kpi_series s ON s.id = l.series_id WHERE s.metric = 'load1'`).Scan(&v, &at); err != nil {
		t.Fatal(err)
	}
	if v != 2 || !at.Equal(t2) {
		t.Errorf("latest load1 = %v at %v, want 2 at %v", v, at, t2)
	}
	if err := d.admin.QueryRow(ctx, `SELECT load1, ts FROM host_kpi_now`).Scan(&v, &at); err != nil {
		t.Fatal(err)
	}
	if v != 2 || !at.Equal(t2) {
		t.Errorf("host_kpi_now load1 = %v at %v, want 2 at %v", v, at, t2)
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 12 {
		t.Errorf("samples = %d, want both batches' 12", n)
	}
}

// The agent role may add data and call its functions, and nothing else.
func TestAgentPrivileges(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	if _, err := d.agent.Exec(ctx, `INSERT INTO kpi_series (hypervisor_id, source, metric) SELECT id, 'procfs', 'load1' FROM hypervisors`); err != nil {
		t.Fatalf("agent cannot add a series: %v", err)
	}
	if _, err := d.agent.Exec(ctx, `INSERT INTO kpi_samples (series_id, ts, value) VALUES (1, now(), 1)`); err != nil {
		t.Fatalf("agent cannot insert a sample: %v", err)
	}
	if _, err := MaintainPartitions(ctx, d.agent, 1, 30); err != nil {
		t.Fatalf("agent cannot maintain partitions: %v", err)
	}
	for _, sql := range []string{
		`DELETE FROM kpi_samples`,
		`SELECT * FROM vnodes`,
		`UPDATE kpi_latest SET value = 0`,
		`SELECT uri FROM hypervisors`,
		`INSERT INTO jobs (job_id) VALUES (1)`,
		`SELECT * FROM migrations`,
		`UPDATE hypervisors SET state = 'down'`,
		`INSERT INTO kpi_latest (series_id, ts, value) VALUES (1, now(), 1)`,
		`SELECT health_event_apply()`,
		`TRUNCATE kpi_samples`,
	} {
		_, err := d.agent.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the agent: err = %v, want permission denied (42501)", sql, err)
		}
	}
	// Only drover_agent may call the definer functions: not PUBLIC, not the reader.
	for _, role := range []string{"drover_reader", "public"} {
		var can bool
		if err := d.admin.QueryRow(ctx, `SELECT has_function_privilege($1, 'kpi_ingest_latest(integer, integer[], timestamptz[], double precision[], text[])', 'EXECUTE')`, role).Scan(&can); err != nil {
			t.Fatal(err)
		}
		if can {
			t.Errorf("%s may execute kpi_ingest_latest", role)
		}
	}
	// Each definer function runs with its search_path pinned to the schema.
	if n := d.count(t, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.prosecdef AND NOT (p.proconfig @> ARRAY[format('search_path=%s, pg_temp', $1)])`, d.schema); n != 0 {
		t.Errorf("%d SECURITY DEFINER functions without a pinned search_path", n)
	}
}

func TestPartitions(t *testing.T) {
	d := newTestDB(t, 1)
	ctx := context.Background()
	day := func(n int) time.Time {
		return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, n).Add(6 * time.Hour)
	}
	// Rows for yesterday, today and 40 days ago, written while only the default partition exists.
	if _, err := d.admin.Exec(ctx, `INSERT INTO kpi_samples (series_id, ts, value) VALUES (1, $1, 1), (1, $2, 2), (2, $2, 3), (1, $3, 4)`,
		day(-1), day(0), day(-40)); err != nil {
		t.Fatal(err)
	}
	// A daily partition 50 days old, past the retention.
	old := "kpi_samples_p" + day(-50).Format("20060102")
	if _, err := d.admin.Exec(ctx, `CREATE TABLE `+old+` PARTITION OF kpi_samples FOR VALUES FROM ('`+
		day(-50).Truncate(24*time.Hour).Format(time.RFC3339)+`') TO ('`+day(-49).Truncate(24*time.Hour).Format(time.RFC3339)+`')`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.admin.Exec(ctx, `INSERT INTO kpi_samples (series_id, ts, value) VALUES (1, $1, 5)`, day(-50)); err != nil {
		t.Fatal(err)
	}

	got, err := MaintainPartitions(ctx, d.agent, 2, 30)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	p := func(n int) string { return "kpi_samples_p" + day(n).Format("20060102") }
	// Yesterday (1 row moved), today (2), tomorrow and the day after (none); the old partition
	// dropped (its estimate unknown: never analysed); the 40-day-old row purged from the default.
	want := []string{
		"created " + p(-1) + " (1 rows)", "created " + p(0) + " (2 rows)", "created " + p(1) + " (0 rows)",
		"created " + p(2) + " (0 rows)", "dropped " + old, "purged kpi_samples_default (1 rows)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples WHERE tableoid::regclass::text = $1`, p(0)); n != 2 {
		t.Errorf("rows of today in %s: %d, want 2", p(0), n)
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples`); n != 3 {
		t.Errorf("rows left: %d, want 3 (yesterday, today twice)", n)
	}
	// Again: nothing to do. New rows of today go to today's partition.
	if got, err := MaintainPartitions(ctx, d.agent, 2, 30); err != nil || len(got) != 0 {
		t.Errorf("second run: %v, %v; want nothing done", got, err)
	}
	if _, err := d.agent.Exec(ctx, `INSERT INTO kpi_samples (series_id, ts, value) VALUES (1, now(), 6)`); err != nil {
		t.Fatal(err)
	}
	if n := d.count(t, `SELECT count(*) FROM kpi_samples_default`); n != 0 {
		t.Errorf("default partition holds %d rows, want 0", n)
	}
	for _, bad := range [][2]int{{-1, 30}, {400, 30}, {1, 0}} {
		if _, err := MaintainPartitions(ctx, d.agent, bad[0], bad[1]); err == nil {
			t.Errorf("MaintainPartitions(%d, %d) succeeded", bad[0], bad[1])
		}
	}
}
