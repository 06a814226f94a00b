//go:build linux

package kpi

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestRealProcfs reads this machine's /proc: every value the procfs collectors return must pass
// their own checks, which a wrong parser of real files would not.
func TestRealProcfs(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("no /proc here")
	}
	ctx := context.Background()
	env := Env{}

	load, err := NewLoadavg(env).Collect(ctx)
	if err != nil || len(load) != 3 {
		t.Errorf("loadavg: %v, %v", load, err)
	}

	mem, err := NewMeminfo(env).Collect(ctx)
	if err != nil {
		t.Errorf("meminfo: %v", err)
	}
	values := map[string]float64{}
	for _, s := range mem {
		values[s.Metric] = s.Value
	}
	if total, avail := values[MetricMemoryTotalBytes], values[MetricMemoryAvailableBytes]; total < 64<<20 || avail <= 0 || avail > total {
		t.Errorf("meminfo: total %v B, available %v B", total, avail)
	}

	cpu := NewCPU(env)
	if _, err := cpu.Collect(ctx); !errors.Is(err, ErrNoData) {
		t.Errorf("cpu: first Collect = %v, want ErrNoData", err)
	}
	var ratios []Sample
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ratios, err = cpu.Collect(ctx)
		if !errors.Is(err, ErrNoData) {
			break
		}
	}
	if err != nil || len(ratios) != 4 {
		t.Errorf("cpu: %v, %v; want 4 ratios within 3 s", ratios, err)
	}

	if _, err := os.Stat("/proc/pressure"); err == nil {
		psi, err := NewPressure(env).Collect(ctx)
		if err != nil && !errors.Is(err, ErrNoData) {
			t.Errorf("pressure: %v", err)
		}
		if err == nil && len(psi) < 24 { // cpu, memory, io: some and full, 4 values each
			t.Errorf("pressure: %d samples", len(psi))
		}
	}
}
