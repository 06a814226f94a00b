package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
)

// seedSeries creates a series of host and returns its id.
func seedSeries(t *testing.T, pool *pgxpool.Pool, host, source, metric, vnode, sensor string) int {
	t.Helper()
	var id int
	err := pool.QueryRow(context.Background(), `
		INSERT INTO kpi_series (hypervisor_id, source, metric, vnode, sensor)
		SELECT id, $2, $3, $4, $5 FROM hypervisors WHERE name = $1 RETURNING id`,
		host, source, metric, vnode, sensor).Scan(&id)
	if err != nil {
		t.Fatalf("series %s %s %s: %v", host, metric, sensor, err)
	}
	return id
}

type reading struct {
	series int
	at     time.Time
	value  float64
	status string
}

// latest hands readings to kpi_ingest_latest as the ingest writer does.
func latest(t *testing.T, pool *pgxpool.Pool, host string, rs ...reading) {
	t.Helper()
	var ids []int32
	var ts []time.Time
	var vs []float64
	var st []string
	for _, r := range rs {
		ids, ts, vs, st = append(ids, int32(r.series)), append(ts, r.at), append(vs, r.value), append(st, r.status)
	}
	_, err := pool.Exec(context.Background(),
		`SELECT kpi_ingest_latest((SELECT id FROM hypervisors WHERE name = $1), $2, $3, $4, $5)`, host, ids, ts, vs, st)
	if err != nil {
		t.Fatal(err)
	}
}

func TestHostsNow(t *testing.T) {
	_, pool := testenv.MigratedSchema(t)
	ctx := context.Background()
	s := store.New(pool)
	if err := s.SyncHypervisors(ctx, []config.Hypervisor{
		{Name: "hv1", URI: "qemu:///a"}, {Name: "hv2", URI: "qemu:///b"}, {Name: "hv3", URI: "qemu:///c"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	t10 := now.Add(-10 * time.Second)

	// hv1 reports everything, 10 s ago.
	sr := func(source, metric, vnode, sensor string) int {
		return seedSeries(t, pool, "hv1", source, metric, vnode, sensor)
	}
	load1 := sr("procfs", "load1", "", "")
	latest(t, pool, "hv1",
		reading{load1, t10, 2.5, ""},
		reading{sr("procfs", "cpu_busy_ratio", "", ""), t10, 0.4, ""},
		reading{sr("procfs", "memory_total_bytes", "", ""), t10, 64e9, ""},
		reading{sr("procfs", "memory_available_bytes", "", ""), t10, 48e9, ""},
		reading{sr("sysfs", "temp_celsius", "", "coretemp.0/Core 0"), t10, 61, ""},
		reading{sr("ipmi", "temp_celsius", "", "CPU Temp"), t10, 67, "upper-non-critical"},
		reading{sr("ipmi", "temp_celsius", "", "Inlet Temp"), t10, 24, "ok"},
		reading{sr("ipmi", "power_watts", "", "Pwr Consumption"), t10, 310, "ok"},
		reading{sr("sysfs", "power_watts", "", "intel-rapl:0/package-0"), t10, 90, ""},
		reading{sr("ipmi", "fan_rpm", "", "FAN1"), t10, 5000, "ok"},
		reading{sr("ipmi", "fan_rpm", "", "FAN2"), t10, 4200, "ok"},
		reading{sr("libvirt", "vm_cpu_busy_ratio", "vn1", ""), t10, 0.9, ""},
		reading{sr("libvirt", "vm_cpu_busy_ratio", "vn2", ""), t10, 0.1, ""},
		reading{sr("libvirt", "vm_memory_bytes", "vn2", ""), t10, 1e9, ""},
	)
	// A late reading older than the one kept never replaces it: load1 stays 2.5.
	latest(t, pool, "hv1", reading{load1, now.Add(-time.Minute), 9, ""})
	// CPU Temp went warning 20 s ago, and is predicted to reach critical in 10 minutes.
	breach := now.Add(10 * time.Minute).Truncate(time.Microsecond)
	if _, err := pool.Exec(ctx, `
		INSERT INTO health_events (hypervisor_id, ts, sensor, kind, from_state, to_state, value, threshold, predicted_breach_at, confidence)
		SELECT id, $2::timestamptz, 'CPU Temp', 'state', 'ok', 'warning', 67, 65, NULL::timestamptz, NULL::real FROM hypervisors WHERE name = $1
		UNION ALL
		SELECT id, $3::timestamptz, 'CPU Temp', 'prediction', 'warning', 'critical', 68, 90, $4::timestamptz, 0.9 FROM hypervisors WHERE name = $1`,
		"hv1", now.Add(-20*time.Second), now.Add(-15*time.Second), breach); err != nil {
		t.Fatal(err)
	}

	// hv2 reported only RAPL power, 10 minutes ago: stale.
	t600 := now.Add(-10 * time.Minute)
	latest(t, pool, "hv2",
		reading{seedSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:0/package-0"), t600, 50, ""},
		reading{seedSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:1/package-1"), t600, 45, ""},
		reading{seedSeries(t, pool, "hv2", "sysfs", "power_watts", "", "intel-rapl:0:0/core"), t600, 30, ""},
	)
	// hv3 never reported.

	hs, err := s.HostsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[0].Name != "hv1" || hs[1].Name != "hv2" || hs[2].Name != "hv3" {
		t.Fatalf("hosts = %+v", hs)
	}
	h1, h2, h3 := hs[0], hs[1], hs[2]

	eq := func(what string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", what, deref(got), want)
		}
	}
	if h1.Stale || h1.At == nil || h1.Age < 5*time.Second || h1.Age > time.Minute {
		t.Errorf("hv1: stale %v at %v age %v, want fresh, about 10 s old", h1.Stale, h1.At, h1.Age)
	}
	eq("hv1 load1 (the late 9 ignored)", h1.Load1, 2.5)
	if h1.Load5 != nil {
		t.Errorf("hv1 load5 = %v, want nil (not reported)", *h1.Load5)
	}
	eq("hv1 cpu busy", h1.CPUBusyRatio, 0.4)
	eq("hv1 mem total", h1.MemTotalBytes, 64e9)
	eq("hv1 mem available", h1.MemAvailableBytes, 48e9)
	// The hottest of 61 (hwmon), 67 (BMC CPU Temp) and 24 (inlet).
	eq("hv1 temp max", h1.TempMaxCelsius, 67)
	if h1.TempMaxSensor != "CPU Temp" {
		t.Errorf("hv1 temp max sensor = %q", h1.TempMaxSensor)
	}
	// The BMC's 310 W, not RAPL's 90 W package power.
	eq("hv1 power", h1.PowerWatts, 310)
	eq("hv1 fan min", h1.FanMinRPM, 4200)
	// vn1 and vn2 have libvirt series.
	if h1.VMs != 2 || h1.WorstStatus != "upper-non-critical" {
		t.Errorf("hv1 vms %d worst status %q, want 2 and upper-non-critical", h1.VMs, h1.WorstStatus)
	}
	if h1.Health != "warning" || h1.WorstSensor != "CPU Temp" || h1.HealthSince == nil ||
		h1.PredictedBreachAt == nil || !h1.PredictedBreachAt.Equal(breach) {
		t.Errorf("hv1 health %q worst %q since %v breach %v, want warning, CPU Temp, breach at %v",
			h1.Health, h1.WorstSensor, h1.HealthSince, h1.PredictedBreachAt, breach)
	}

	// hv2: RAPL packages 50 + 45 = 95 W; the core subzone (30) is part of package 0.
	eq("hv2 power", h2.PowerWatts, 95)
	if !h2.Stale || h2.Age < 9*time.Minute || h2.Health != "unknown" || h2.Load1 != nil {
		t.Errorf("hv2: stale %v age %v health %q load1 %v, want stale, 10 min old, unknown, nil", h2.Stale, h2.Age, h2.Health, h2.Load1)
	}
	if !h3.Stale || h3.At != nil || h3.Age != 0 || h3.Health != "unknown" || h3.PowerWatts != nil {
		t.Errorf("hv3 = %+v, want stale without figures", h3)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
