//go:build linux

package kpi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// maxRange is the max_energy_range_uj of the fixture's package domains (about 262 kJ: at 200 W
// the counter wraps every 22 minutes).
const maxRange = 262143328850

func TestRAPLDelta(t *testing.T) {
	tests := []struct {
		name           string
		prev, cur, max uint64
		want           uint64
		wantErr        bool
	}{
		{"counting up", 1_000_000, 3_000_000, maxRange, 2_000_000, false},
		{"no energy", 5, 5, maxRange, 0, false},
		// 1 J before the wrap, 1 J after it: (max − prev) + cur = 1e6 + 1e6 µJ
		{"wrap", maxRange - 1_000_000, 1_000_000, maxRange, 2_000_000, false},
		{"wrap at the very top", maxRange, 0, maxRange, 0, false},
		{"back without a known range", 3_000_000, 1_000_000, 0, 0, true},
		{"back from beyond the range", maxRange + 10, 1, maxRange, 0, true},
	}
	for _, tt := range tests {
		got, err := raplDelta(tt.prev, tt.cur, tt.max)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: raplDelta = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBadValue) {
			t.Errorf("%s: %v does not match ErrBadValue", tt.name, err)
		}
	}
}

func TestRAPLStep(t *testing.T) {
	prev := raplState{raw: 10_000_000, maxRange: maxRange, at: t0, joules: 10}
	nearTop := raplState{raw: maxRange - 1_000_000, maxRange: maxRange, at: t0, joules: 262142.32885}
	half := t0.Add(500 * time.Millisecond)
	tests := []struct {
		name       string
		prev       raplState
		uj         uint64
		at         time.Time
		wantWatts  float64
		wantJoules float64 // energy_joules after the step
		wantRaw    uint64  // the new baseline
		wantErr    bool
	}{
		// 12 J − 10 J = 2 J over 0.5 s = 4 W
		{"2 J in half a second", prev, 12_000_000, half, 4, 12, 12_000_000, false},
		// wraps: 1 J to the top + 1 J after = 2 J over 0.5 s = 4 W; energy keeps counting up
		{"wrap", nearTop, 1_000_000, half, 4, 262144.32885, 1_000_000, false},
		// no time passed: nothing changes, no power
		{"same instant", prev, 12_000_000, t0, 0, 10, 10_000_000, false},
		// 100 000 J in 0.5 s would be 200 kW: a broken counter; re-baseline, energy unchanged
		{"absurd", prev, 100_010_000_000, half, 0, 10, 100_010_000_000, true},
		{"back without a known range", raplState{raw: 10_000_000, at: t0, joules: 10}, 1_000_000, half, 0, 10, 1_000_000, true},
	}
	for _, tt := range tests {
		next, watts, err := raplStep(tt.prev, tt.uj, tt.at)
		if (err != nil) != tt.wantErr || !approx(watts, tt.wantWatts) || !approx(next.joules, tt.wantJoules) || next.raw != tt.wantRaw {
			t.Errorf("%s: raplStep = %+v, %v W, %v; want %v W, %v J, raw %d, error %v",
				tt.name, next, watts, err, tt.wantWatts, tt.wantJoules, tt.wantRaw, tt.wantErr)
		}
	}
}

func TestRAPLCollect(t *testing.T) {
	sys := copyTree(t, "testdata/sys")
	zone := func(z string) string { return filepath.Join(sys, "class/powercap", z, "energy_uj") }
	// socket 1's package counter 30 J before its wrap
	writeFile(t, zone("intel-rapl:1"), "262113328850\n")
	clock := newClock()
	c := NewRAPL(Env{SysRoot: sys, Now: clock.Now})
	ctx := context.Background()
	s := func(metric, sensor, unit string, v float64, at time.Time) Sample {
		return Sample{Source: "sysfs", Metric: metric, Sensor: sensor, Unit: unit, Value: v, Time: at}
	}

	// first Collect: the counters as energy, no power (that needs two readings)
	got, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		s("energy_joules", "intel-rapl:0/package-0", "joules", 78561.234567, t0), // 78561234567 µJ
		s("energy_joules", "intel-rapl:0:0/dram", "joules", 12845.123456, t0),
		s("energy_joules", "intel-rapl:1/package-1", "joules", 262113.32885, t0),
		s("energy_joules", "intel-rapl:1:0/dram", "joules", 13012.345678, t0),
	}
	if d := diffSamples(got, want); d != "" {
		t.Errorf("first Collect:\n%s", d)
	}

	// half a second later
	clock.Advance(500 * time.Millisecond)
	at := t0.Add(500 * time.Millisecond)
	writeFile(t, zone("intel-rapl:0"), "78621234567\n")   // +60 J: 60 / 0.5 = 120 W
	writeFile(t, zone("intel-rapl:0:0"), "12850123456\n") // +5 J: 10 W
	writeFile(t, zone("intel-rapl:1"), "20000000\n")      // wrapped: 30 J + 20 J = 50 J: 100 W
	got, err = c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []Sample{
		s("energy_joules", "intel-rapl:0/package-0", "joules", 78621.234567, at),
		s("power_watts", "intel-rapl:0/package-0", "watts", 120, at),
		s("energy_joules", "intel-rapl:0:0/dram", "joules", 12850.123456, at),
		s("power_watts", "intel-rapl:0:0/dram", "watts", 10, at),
		s("energy_joules", "intel-rapl:1/package-1", "joules", 262163.32885, at), // past the wrap, still counting up
		s("power_watts", "intel-rapl:1/package-1", "watts", 100, at),
		s("energy_joules", "intel-rapl:1:0/dram", "joules", 13012.345678, at),
		s("power_watts", "intel-rapl:1:0/dram", "watts", 0, at), // unchanged counter: a real 0 W
	}
	if d := diffSamples(got, want); d != "" {
		t.Errorf("second Collect:\n%s", d)
	}

	// socket 1 goes (its package and dram zones), socket 0's dram counter becomes garbage
	clock.Advance(time.Second)
	for _, z := range []string{"intel-rapl:1", "intel-rapl:1:0"} {
		if err := os.Remove(filepath.Join(sys, "class/powercap", z)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, zone("intel-rapl:0:0"), "12850x\n")
	got, err = c.Collect(ctx)
	if len(got) != 2 || got[1].Metric != "power_watts" || got[1].Value != 0 {
		t.Errorf("third Collect: %v; want package-0 energy and 0 W", got)
	}
	wantErrs := []string{
		"sysfs|intel-rapl:0:0/dram|energy_joules|12850x|bad value",
		"sysfs|intel-rapl:1/package-1|energy_joules||sensor vanished",
		"sysfs|intel-rapl:1/package-1|power_watts||sensor vanished",
		"sysfs|intel-rapl:1:0/dram|energy_joules||sensor vanished",
		"sysfs|intel-rapl:1:0/dram|power_watts||sensor vanished",
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}
}

func TestRAPLAbsent(t *testing.T) {
	if _, err := NewRAPL(Env{SysRoot: t.TempDir()}).Collect(context.Background()); !errors.Is(err, ErrNoData) {
		t.Errorf("Collect = %v, want ErrNoData", err)
	}
}
