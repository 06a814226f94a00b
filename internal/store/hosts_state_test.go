package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
)

// HostsState: a fresh host without health events is ok, a stale one with a critical event is
// critical and flagged stale, a host that never reported is absent, and unreported figures are
// told from zeros.
func TestHostsState(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO hypervisors (name, uri) VALUES ('a', 'qemu:///a'), ('b', 'qemu:///b'), ('c', 'qemu:///c')`, nil},
		{`INSERT INTO host_kpi_now (hypervisor_id, ts, load1, cpu_busy_ratio, temp_max_celsius)
		  SELECT id, $1, 2.5, 0, 61 FROM hypervisors WHERE name = 'a'`, []any{now.Add(-3 * time.Second)}},
		{`INSERT INTO host_kpi_now (hypervisor_id, ts, load1, power_watts) SELECT id, $1, 0.5, 300 FROM hypervisors WHERE name = 'b'`,
			[]any{now.Add(-10 * time.Minute)}},
		{`INSERT INTO host_health (hypervisor_id, state, predicted_breach_at) SELECT id, 'critical', $1 FROM hypervisors WHERE name = 'b'`,
			[]any{now.Add(time.Minute)}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	ids := map[string]int{}
	rows, _ := pool.Query(ctx, `SELECT name, id FROM hypervisors`)
	for rows.Next() {
		var n string
		var id int
		_ = rows.Scan(&n, &id)
		ids[n] = id
	}
	list, err := store.New(pool).HostsState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]store.HostState{}
	for _, h := range list {
		got[h.ID] = h
	}
	if len(got) != 2 {
		t.Fatalf("%d hosts, want 2 (c never reported): %+v", len(got), got)
	}
	a, b := got[ids["a"]], got[ids["b"]]
	if a.Stale || a.Health != "ok" || a.Load1 != 2.5 || !a.Has[1] || a.CPUBusy != 0 || a.TempMax != 61 || a.Has[4] || !a.BreachAt.IsZero() {
		t.Errorf("a = %+v, want fresh, ok, load 2.5, cpu 0 reported, 61 °C, no power", a)
	}
	if !b.Stale || b.Health != "critical" || !b.BreachAt.Equal(now.Add(time.Minute)) || b.Watts != 300 {
		t.Errorf("b = %+v, want stale, critical, breach in a minute, 300 W", b)
	}
}
