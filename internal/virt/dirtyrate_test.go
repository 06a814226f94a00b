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
	start := time.Now()
	if err := c.StartDirtyRateCalc(ctx, name, time.Second); err != nil {
		t.Fatal(err)
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
			t.Fatalf("dirty rate still %s 30 s after a 1 s calculation: %+v", got.Status, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s: %+v (%.1f MiB/s) after %v", name, got, got.BytesPerSecond/(1<<20), time.Since(start).Round(time.Millisecond))
	if math.IsNaN(got.BytesPerSecond) || math.IsInf(got.BytesPerSecond, 0) || got.BytesPerSecond < 0 {
		t.Errorf("rate %v is not a finite non-negative number", got.BytesPerSecond)
	}
	if got.Period != time.Second || got.Started <= 0 {
		t.Errorf("period %v started %v, want 1 s and a start stamp", got.Period, got.Started)
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
