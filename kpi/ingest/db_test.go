package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/kpi"
)

// testDB is a migrated schema of its own with hypervisors hv1..hvN, an owner's pool and a pool
// logged in as a fresh member of drover_agent (as an agent is).
type testDB struct {
	schema string
	admin  *pgxpool.Pool
	agent  *pgxpool.Pool
}

func newTestDB(t testing.TB, hosts int) *testDB {
	t.Helper()
	schema, admin := testenv.MigratedSchema(t)
	ctx := context.Background()
	for i := 1; i <= hosts; i++ {
		if _, err := admin.Exec(ctx, `INSERT INTO hypervisors (name, uri) VALUES ($1, 'qemu:///x')`, fmt.Sprintf("hv%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return &testDB{schema: schema, admin: admin, agent: testenv.AgentPool(t, admin, schema)}
}

func (d *testDB) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.admin.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// cycleSamples is one collection cycle of a host: series host-level KPIs and sensors at ts.
func cycleSamples(series int, ts time.Time, v float64) []kpi.Sample {
	out := make([]kpi.Sample, 0, series)
	fixed := []struct{ src, metric, sensor, unit string }{
		{kpi.SourceProcfs, kpi.MetricLoad1, "", ""},
		{kpi.SourceProcfs, kpi.MetricCPUBusyRatio, "", "ratio"},
		{kpi.SourceProcfs, kpi.MetricMemoryTotalBytes, "", "bytes"},
		{kpi.SourceProcfs, kpi.MetricMemoryAvailableBytes, "", "bytes"},
		{kpi.SourceIPMI, kpi.MetricPowerWatts, "Pwr Consumption", "watts"},
	}
	for i := 0; i < series; i++ {
		s := kpi.Sample{Source: kpi.SourceSysfs, Metric: kpi.MetricTempCelsius, Unit: "celsius",
			Sensor: fmt.Sprintf("coretemp.0/Core %d", i), Value: v + float64(i), Time: ts}
		if i < len(fixed) {
			f := fixed[i]
			s = kpi.Sample{Source: f.src, Metric: f.metric, Sensor: f.sensor, Unit: f.unit, Value: v, Time: ts}
		}
		out = append(out, s)
	}
	return out
}

func stateEvent(host, sensor string, at time.Time, from, to health.State, v float64) health.Event {
	return health.Event{Host: host, Sensor: sensor, Kind: health.KindState, At: at, From: from, To: to,
		Value: v, Threshold: 80, Message: fmt.Sprintf("%s %q: %s -> %s", host, sensor, from, to)}
}
