package store_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
)

// hostsStateJoinSQL is HostsState's query before 004_host_state: the summary joined to host_health.
const hostsStateJoinSQL = `SELECT n.hypervisor_id, n.ts, n.load1, n.cpu_busy_ratio, n.mem_available_bytes, n.temp_max_celsius,
       n.power_watts, hh.state, hh.predicted_breach_at
FROM host_kpi_now n LEFT JOIN host_health hh ON hh.hypervisor_id = n.hypervisor_id`

// hostsStateSingleSQL is the same read from host_kpi_now alone (the query behind HostsState).
const hostsStateSingleSQL = `SELECT hypervisor_id, ts, load1, cpu_busy_ratio, mem_available_bytes, temp_max_celsius,
       power_watts, health_state, predicted_breach_at FROM host_kpi_now`

// BenchmarkHostsState reads the state of 10,000 hosts (one in ten with a host_health row, as
// `drover bench ingest` seeds them), alternating in every iteration: store.HostsState, then the
// join and the single-table query through the same bare row loop (so the two differ only in
// SQL). Each is reported as its p50 and p99 in ms; alternating spreads the noise of a shared
// machine over all three.
//
//	go test -run '^$' -bench HostsState -benchtime 300x ./internal/store/
func BenchmarkHostsState(b *testing.B) {
	_, pool := testenv.MigratedSchema(b)
	ctx := context.Background()
	for _, sql := range []string{
		`WITH h AS (INSERT INTO hypervisors (name, uri)
		    SELECT 'bench-' || lpad(i::text, 6, '0'), 'qemu:///bench' FROM generate_series(1, 10000) i RETURNING id)
		 INSERT INTO host_kpi_now (hypervisor_id, ts, load1, load5, cpu_busy_ratio, mem_total_bytes, mem_available_bytes,
		                           temp_max_celsius, temp_max_sensor, power_watts, fan_min_rpm, vms, series)
		 SELECT id, now() - (id % 120) * interval '1 second', (id % 32) / 2.0, (id % 32) / 2.5, (id % 100) / 100.0,
		        256e9, (id % 200) * 1e9, 40 + id % 45, 'CPU Temp', 200 + id % 300, 4000 + id % 2000, id % 8, 40 FROM h`,
		`INSERT INTO host_health (hypervisor_id, state, since, worst_sensor, predicted_breach_at)
		 SELECT id, CASE WHEN id % 50 = 0 THEN 'critical' ELSE 'warning' END, now() - interval '5 minutes', 'CPU Temp',
		        CASE WHEN id % 30 = 0 THEN now() + interval '10 minutes' END
		 FROM hypervisors WHERE id % 10 = 0`,
		`VACUUM ANALYZE host_kpi_now`,
		`ANALYZE hypervisors, host_health`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	st := store.New(pool)
	bare := func(sql string) int {
		rows, err := pool.Query(ctx, sql)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n += len(rows.RawValues())
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		return n
	}
	// Warm up the statement caches and the buffers.
	for range 3 {
		bare(hostsStateJoinSQL)
		bare(hostsStateSingleSQL)
		if _, err := st.HostsState(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var store, join, single []time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		hs, err := st.HostsState(ctx)
		if err != nil {
			b.Fatal(err)
		}
		store = append(store, time.Since(t))
		if len(hs) != 10000 {
			b.Fatalf("HostsState: %d hosts, want 10000", len(hs))
		}
		t = time.Now()
		bare(hostsStateJoinSQL)
		join = append(join, time.Since(t))
		t = time.Now()
		bare(hostsStateSingleSQL)
		single = append(single, time.Since(t))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"store", store}, {"join", join}, {"single", single}} {
		b.ReportMetric(percentileMs(m.ds, 0.50), m.name+"-p50-ms")
		b.ReportMetric(percentileMs(m.ds, 0.99), m.name+"-p99-ms")
	}
}

// percentileMs is the p-th percentile of ds in ms (nearest rank).
func percentileMs(ds []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.999999) - 1
	return float64(s[max(0, min(i, len(s)-1))].Microseconds()) / 1000
}
