package virt_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/internal/virt"
)

// A guest dirtying memory on hv1 gets a finite, non-negative dirty rate once a calculation
// has run.
func TestTestbedDirtyRate(t *testing.T) {
	cfg := testenv.Config(t)
	c := connect(t, cfg, cfg.Hypervisors[0])
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name, serial := startGuest(t, ctx, []*virt.Conn{c}, 256, "dirty_mb=64 dirty_rate=32")
	waitHeartbeat(t, serial, 2, 90*time.Second)

	if err := c.StartDirtyRateCalc(ctx, name, 0); err == nil {
		t.Error("a period of 0 s was accepted")
	}
	if err := c.StartDirtyRateCalc(ctx, "no-such-domain", time.Second); !errors.Is(err, virt.ErrNoDomain) {
		t.Errorf("unknown domain: %v, want ErrNoDomain", err)
	}
	// nothing else should measure a test guest (the agents measure vnodes only), but a
	// calculation found running is waited out rather than failing the test
	var start time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		start = time.Now()
		err := c.StartDirtyRateCalc(ctx, name, 2*time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, virt.ErrDirtyRateBusy) || start.After(deadline) {
			t.Fatal(err)
		}
		t.Logf("another calculation runs on %s; waiting: %v", name, err)
		time.Sleep(500 * time.Millisecond)
	}
	// QEMU measures one calculation at a time per domain
	if err := c.StartDirtyRateCalc(ctx, name, time.Second); !errors.Is(err, virt.ErrDirtyRateBusy) {
		t.Errorf("a second calculation while the first runs: %v, want ErrDirtyRateBusy", err)
	}
	var got virt.DirtyRate
	for {
		rates, err := c.DirtyRates(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(rates) != 1 || rates[0].Name != name {
			t.Fatalf("DirtyRates(%s) = %+v", name, rates)
		}
		got = rates[0]
		if got.Status == virt.DirtyRateMeasured {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("dirty rate still %s 30 s after a 2 s calculation: %+v", got.Status, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s: %+v (%.1f MiB/s) after %v", name, got, got.BytesPerSecond/(1<<20), time.Since(start).Round(time.Millisecond))
	if math.IsNaN(got.BytesPerSecond) || math.IsInf(got.BytesPerSecond, 0) || got.BytesPerSecond < 0 {
		t.Errorf("rate %v is not a finite non-negative number", got.BytesPerSecond)
	}
	if got.Period != 2*time.Second || got.Started <= 0 {
		t.Errorf("period %v started %v, want 2 s and a start stamp", got.Period, got.Started)
	}
	all, err := c.DirtyRates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range all {
		found = found || r.Name == name
	}
	if !found {
		t.Errorf("DirtyRates() of every domain lacks %s: %+v", name, all)
	}
}
