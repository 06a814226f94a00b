package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/fleet"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
)

// TestSnapshot seeds three hypervisors and checks what the scheduler would see:
//   - hv-a reports fresh KPIs and runs two 2-vCPU, 1024 MiB vnodes (a third is absent and does
//     not count): AllocCPUs 4, AllocMemoryMiB 2048, VNodes 2; one failed migration from it in
//     the last hour, one done migration an hour and a half ago (outside the window);
//   - hv-b's newest KPIs are 10 minutes old and its health is critical: KPIAt stays zero (the
//     stale filter drops it) but Health says critical;
//   - hv-c never reported: Health unknown, KPIAt zero.
func TestSnapshot(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO hypervisors (name, uri, cpus, memory_mib, features, rack, power_cap_watts, state)
	      VALUES ('hv-a', 'qemu+tcp://a/system', 32, 131072, '{ib,avx512}', 'r1', 800, 'active'),
	             ('hv-b', 'qemu+tcp://b/system', 16, 65536, '{}', NULL, NULL, 'active'),
	             ('hv-c', 'qemu+tcp://c/system', 8, 32768, '{}', NULL, NULL, 'draining')`)
	exec(`INSERT INTO vnodes (name, cpus, memory_mib, state, hypervisor_id)
	      SELECT v, 2, 1024, s, (SELECT id FROM hypervisors WHERE name = 'hv-a')
	      FROM (VALUES ('vn1', 'running'), ('vn2', 'migrating'), ('vn3', 'absent')) AS x (v, s)`)
	exec(`INSERT INTO host_kpi_now (hypervisor_id, ts, load1, cpu_busy_ratio, temp_max_celsius, power_watts)
	      SELECT id, $1, 3.5, 0.25, 61, 412 FROM hypervisors WHERE name = 'hv-a'`, now.Add(-5*time.Second))
	exec(`INSERT INTO host_kpi_now (hypervisor_id, ts, load1, cpu_busy_ratio, temp_max_celsius, power_watts)
	      SELECT id, $1, 0.5, 0.1, 95, 300 FROM hypervisors WHERE name = 'hv-b'`, now.Add(-10*time.Minute))
	exec(`INSERT INTO host_health (hypervisor_id, state, worst_sensor, predicted_breach_at)
	      SELECT id, 'critical', 'CPU Temp', $1 FROM hypervisors WHERE name = 'hv-b'`, now.Add(5*time.Minute))
	// hv-a was predicted to breach a minute ago, but cooled: no prediction any more
	exec(`INSERT INTO host_health (hypervisor_id, state, predicted_breach_at)
	      SELECT id, 'ok', $1 FROM hypervisors WHERE name = 'hv-a'`, now.Add(-time.Minute))
	exec(`INSERT INTO migrations (vnode, src_hypervisor_id, dst_hypervisor_id, reason, phase, created_at, finished_at)
	      SELECT 'vn1', a.id, b.id, 'manual', 'failed', $1, $1 FROM hypervisors a, hypervisors b
	      WHERE a.name = 'hv-a' AND b.name = 'hv-b'`, now.Add(-10*time.Minute))
	exec(`INSERT INTO migrations (vnode, src_hypervisor_id, dst_hypervisor_id, reason, phase, created_at, finished_at)
	      SELECT 'vn1', b.id, a.id, 'manual', 'done', $1, $1 FROM hypervisors a, hypervisors b
	      WHERE a.name = 'hv-a' AND b.name = 'hv-b'`, now.Add(-90*time.Minute))

	hosts, err := fleet.Snapshot(ctx, store.New(pool), fleet.Options{Now: now, TempWarnC: 80, TempCritC: 90,
		Unreachable: map[string]bool{"hv-c": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 3 || hosts[0].Name != "hv-a" || hosts[1].Name != "hv-b" || hosts[2].Name != "hv-c" {
		t.Fatalf("hosts = %+v, want hv-a, hv-b, hv-c in order", hosts)
	}
	a, b, c := hosts[0], hosts[1], hosts[2]
	if a.CPUs != 32 || a.MemoryMiB != 131072 || a.AllocCPUs != 4 || a.AllocMemoryMiB != 2048 || a.VNodes != 2 {
		t.Errorf("hv-a capacity/allocation = %+v", a)
	}
	if a.Rack != "r1" || a.PowerCapWatts != 800 || len(a.Features) != 2 || a.Features[0] != "ib" {
		t.Errorf("hv-a inventory = rack %q cap %v features %v", a.Rack, a.PowerCapWatts, a.Features)
	}
	if !a.KPIAt.Equal(now.Add(-5*time.Second)) || a.Load1 != 3.5 || a.CPUBusy != 0.25 || a.PowerWatts != 412 ||
		a.TempC != 61 || a.TempWarnC != 80 || a.TempCritC != 90 {
		t.Errorf("hv-a KPIs = at %v load %v busy %v W %v temp %v/%v/%v", a.KPIAt, a.Load1, a.CPUBusy,
			a.PowerWatts, a.TempC, a.TempWarnC, a.TempCritC)
	}
	if !a.BreachAt.IsZero() || !b.BreachAt.Equal(now.Add(5*time.Minute)) {
		t.Errorf("breaches: hv-a %v (passed: want none), hv-b %v (want in 5 minutes)", a.BreachAt, b.BreachAt)
	}
	if a.Health != "ok" || !a.Reachable {
		t.Errorf("hv-a health %q reachable %v, want ok (fresh, no events) and reachable", a.Health, a.Reachable)
	}
	if a.RecentFailures != 1 || a.RecentMigrations != 0 || !a.LastFailureAt.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("hv-a trouble = failures %d at %v, migrations %d", a.RecentFailures, a.LastFailureAt, a.RecentMigrations)
	}
	if !b.KPIAt.IsZero() || b.Load1 != 0 || b.TempC != 0 || b.Health != "critical" {
		t.Errorf("hv-b (stale, critical) = at %v load %v temp %v health %q", b.KPIAt, b.Load1, b.TempC, b.Health)
	}
	if b.RecentFailures != 1 {
		t.Errorf("hv-b was the failed migration's destination: failures = %d, want 1", b.RecentFailures)
	}
	if !c.KPIAt.IsZero() || c.Health != "unknown" || c.Reachable || c.State != "draining" {
		t.Errorf("hv-c (never reported, unreachable, draining) = %+v", c)
	}
}
